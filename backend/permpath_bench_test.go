//go:build linux

package backend

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// BenchmarkGuardPermPath is the backend's part of the embedded guard's path for one
// permission event (allow-all, ReusePermEvents, a subtree mark): from the read of a batch of
// one event through parse, handle, handlePerm, translateFD (one statx), the engine's Dispatch
// to a Handler that allows at once, finishPerm and flushAnswers' write and close. It runs on
// the backend's loop (a posted function), as the guard's does. The group it reads is a
// stand-in: one end of a stream socketpair, into which the benchmark queues prepared 24-byte
// permission events (whose descriptors are dups of a file on the benchmark's tmpfs, so no
// kernel event is made) and from whose other end it drains the 8-byte answers; the stand-in
// group's buffer is one event long, so that each read returns one event, as under a
// one-thread load. The Backend's real FD group (the subtree mark's) sees no event. Beside
// ns/op it reports cpu-ns/op, the loop thread's CPU time per event in readAndDispatch alone,
// which the time it waits for a CPU on a shared machine does not move.
func BenchmarkGuardPermPath(bm *testing.B) {
	root := testenv.Tmpfs(bm)
	dir := filepath.Join(root, "d")
	file := filepath.Join(dir, "f")
	writeFile(bm, file, "x")
	b, err := New(Options{Mode: ModeFanotify, ReusePermEvents: true})
	if err != nil {
		bm.Fatal(err)
	}
	defer b.Close()
	eg, err := b.Engine().NewGroup(engine.Options{Name: "bench", Class: engine.ClassContent,
		Handler: func(engine.Delivery) (engine.Response, bool) { return engine.Response{Verdict: engine.Allow}, true }})
	if err != nil {
		bm.Fatal(err)
	}
	defer eg.Close()
	if err := addMark(b, eg, dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		bm.Fatal(err)
	}
	src, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		bm.Fatal(err)
	}
	defer syscall.Close(src)
	g, peer := standInGroup(bm, b, 1)

	// chunk events are queued at a time (well inside the socket's buffer), their answers
	// drained after.
	const chunk = 64
	pid := int32(syscall.Getppid()) // not exempt
	evs := make([]byte, 0, chunk*fanMetaLen)
	drain := make([]byte, chunk*8)
	fail := make(chan error, 1)
	var cpu time.Duration // the loop thread's CPU time in readAndDispatch, in the timed run
	run := func(n int) {
		cpu = 0
		for done := 0; done < n; {
			k := min(chunk, n-done)
			evs = evs[:0]
			for range k {
				fd, err := syscall.Dup(src)
				if err != nil {
					fail <- err
					return
				}
				evs = append(evs, fanEvent(sys.FAN_OPEN_PERM, int32(fd), pid, 0)...)
			}
			if _, err := syscall.Write(peer, evs); err != nil {
				fail <- err
				return
			}
			t0 := sys.ThreadCPUTime()
			for range k {
				if g.readAndDispatch() != fanMetaLen {
					fail <- syscall.EIO
					return
				}
			}
			cpu += sys.ThreadCPUTime() - t0
			for got := 0; got < k*8; {
				m, err := syscall.Read(peer, drain[got:k*8])
				if err != nil {
					fail <- err
					return
				}
				got += m
			}
			done += k
		}
		fail <- nil
	}
	onLoop := func(n int) {
		b.loop.Post(func() { run(n) })
		if err := <-fail; err != nil {
			bm.Fatal(err)
		}
	}
	onLoop(chunk) // warm up: the chain walked and cached, the permEvents allocated
	allocs := b.Stats().PermEventsAllocated
	bm.ReportAllocs()
	bm.ResetTimer()
	onLoop(bm.N)
	bm.StopTimer()
	// The loop thread's CPU time (user and system) per event in readAndDispatch (the dups,
	// the queueing and the draining left out): unlike ns/op, not moved by the time the thread
	// waited for a CPU (other work on a shared machine).
	bm.ReportMetric(float64(cpu.Nanoseconds())/float64(bm.N), "cpu-ns/op")
	if got := b.Stats().PermEventsAllocated; got != allocs {
		bm.Errorf("%d permEvents allocated in the loop, want 0 (reused)", got-allocs)
	}
}

// BenchmarkEventPath is the path of an exec's or open's permission event as the guard reads
// it (permEvent.Path's eventPath): the readlink of the event's descriptor and the statx that
// checks the path names the same file, for a regular file on a tmpfs a few levels deep.
func BenchmarkEventPath(bm *testing.B) {
	root := testenv.Tmpfs(bm)
	file := filepath.Join(root, "usr", "local", "bin", "tool")
	writeFile(bm, file, "x")
	fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		bm.Fatal(err)
	}
	defer syscall.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		bm.Fatal(err)
	}
	bm.ReportAllocs()
	for bm.Loop() {
		s := st
		if p, ok, _ := eventPath(fd, &s); !ok || p != file {
			bm.Fatalf("eventPath = %q, %v; want %q", p, ok, file)
		}
	}
}
