//go:build linux

package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// BenchmarkFanout measures the daemon's side of the notification fan-out alone, without the
// kernel: b.N notification events are dispatched to the engine as a backend reader would
// (Engine.Notify, on this goroutine), each to K privileged clients that marked the directory
// (raw connections, drained as bytes by a goroutine each), until every client's group is
// empty. Each event names another child (none merges, by either rule). ns/op is the CPU of the whole process per event (the drains included), allocs/op
// the allocations per event (the benchmark's own event among them: 1).
//
// The events come back to back (a flood: the most a reader could dispatch); cpu-ns/event is
// this process's CPU time (user and system) per event: the daemon's side and the producer's
// dispatch; the clients are cat processes. (Pacing the producer with sleeps measures the Go
// runtime's timers instead: a kernel reader is woken by its descriptor, not by a timer.)
func BenchmarkFanout(b *testing.B) {
	for _, k := range []int{1, 10} {
		b.Run(fmt.Sprintf("%dclients", k), func(b *testing.B) { benchFanout(b, k) })
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchFanout(b *testing.B, k int) {
	testenv.RequireRoot(b)
	dir := testenv.Tmpfs(b)
	s, sock := fanServer(b)
	for i := 0; i < k; i++ {
		conn := fanClient(b, sock, dir, proto.Hello{Name: "bench", QueueLimit: -1}, engine.Open|engine.CloseNoWrite)
		// The client reads in a process of its own (cat), as in bench/fanout.sh: its CPU is
		// not counted here.
		f, err := conn.UnixConn().File()
		if err != nil {
			b.Fatal(err)
		}
		cat := exec.Command("cat")
		cat.Stdin, cat.Stdout = f, io.Discard
		if err := cat.Start(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		defer cat.Wait()
		defer cat.Process.Kill()
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		b.Fatal(err)
	}
	parent := engine.ID{Hi: st.Dev, Lo: st.Ino}
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Stat(path, &st); err != nil {
		b.Fatal(err)
	}
	inode := engine.ID{Hi: st.Dev, Lo: st.Ino}
	s.mu.Lock()
	var groups []*engine.Group
	for _, c := range s.clients {
		groups = append(groups, c.g)
	}
	s.mu.Unlock()
	// Names that differ from one event to the next: nothing merges, by any rule.
	names := make([]string, 4096)
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
	}
	eng := s.b.Engine()
	now := time.Now()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := engine.Open
		if i&1 == 1 {
			m = engine.CloseNoWrite
		}
		ev := &engine.Event{Mask: m, Inode: inode, Parent: parent, Name: names[i%len(names)], Path: path, Pid: 100, Time: now}
		eng.Notify(context.Background(), ev)
		ev.Release()
	}
	for _, g := range groups {
		for g.Stats().Queued > 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
	var delivered uint64
	for _, g := range groups {
		delivered += g.Stats().Delivered
	}
	if delivered < uint64(b.N*k) {
		b.Fatalf("%d events delivered to %d clients, want %d", delivered, k, b.N*k)
	}
}
