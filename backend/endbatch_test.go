//go:build linux

package backend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// standInGroup is an FD group of b whose descriptor is one end of a stream socketpair rather
// than a fanotify group: the test writes prepared events into the other end (peer), which the
// group reads, and reads the group's 8-byte answers from it. Its buffer holds at most
// bufEvents 24-byte events, so that one read takes that many. Nothing of it is registered
// with the loop: the caller runs readAndDispatch on the loop (onLoop).
func standInGroup(t testing.TB, b *Backend, bufEvents int) (g *fdGroup, peer int) {
	t.Helper()
	sp, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	g = &fdGroup{buf: make([]byte, bufEvents*fanMetaLen)}
	g.kgroup = kgroup{b: b, k: kFD, name: "stand-in", fd: sp[0], class: sys.FAN_CLASS_CONTENT}
	if real := b.fdGroupAtomic.Load(); real != nil {
		g.class = real.class
	}
	if g.file, err = sys.NewUnpolledFile(sp[0], "stand-in"); err != nil {
		t.Fatal(err)
	}
	if g.rc, err = g.file.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.file.Close(); syscall.Close(sp[1]) })
	return g, sp[1]
}

// onLoop runs fn on b's loop and returns what it panicked with (nil if it did not).
func onLoop(b *Backend, fn func()) (panicked any) {
	done := make(chan any, 1)
	b.loop.Post(func() {
		defer func() { done <- recover() }()
		fn()
	})
	return <-done
}

// readAnswers reads the answers queued on peer (the stand-in group's other end) without
// waiting: each answered descriptor with its responses, in order.
func readAnswers(t *testing.T, peer int) map[int32][]uint32 {
	t.Helper()
	if err := syscall.SetNonblock(peer, true); err != nil {
		t.Fatal(err)
	}
	got := map[int32][]uint32{}
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(peer, buf)
		if errors.Is(err, syscall.EAGAIN) || n == 0 {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		if n%8 != 0 {
			t.Fatalf("read %d bytes of answers, not a multiple of 8", n)
		}
		for off := 0; off < n; off += 8 {
			fd := int32(binary.NativeEndian.Uint32(buf[off:]))
			got[fd] = append(got[fd], binary.NativeEndian.Uint32(buf[off+4:]))
		}
	}
}

// A Handler that panics while the loop dispatches a batch: the event it panicked on is
// answered (allowed) once, the answers decided before it in the batch are written with their
// own verdicts once, and the panic goes on (readAndDispatch's endBatch; handlePerm defers
// nothing per event). Events after it in the batch are never handled. Fails when endBatch
// does not answer the event being dispatched (it waits in the kernel until the group closes)
// or does not write the held answers.
func TestBatchPanicAnswersDispatching(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verdict []engine.Verdict // of the events before the panic, in order
		after   int              // events after the one that panics
	}{
		{"alone", nil, 0},
		{"after a deny and an allow", []engine.Verdict{engine.Deny, engine.Allow}, 0},
		{"first of three", nil, 2},
		{"between", []engine.Verdict{engine.Allow}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackendWith(t, Options{Mode: ModeFanotify, ReusePermEvents: true})
			dir := filepath.Join(testenv.Tmpfs(t), "d")
			file := filepath.Join(dir, "f")
			writeFile(t, file, "x")
			calls := 0
			g := newGroup(t, b, engine.Options{Name: "panics", Class: engine.ClassContent,
				Handler: func(engine.Delivery) (engine.Response, bool) {
					i := calls
					calls++
					if i < len(tc.verdict) {
						return engine.Response{Verdict: tc.verdict[i]}, true
					}
					panic(fmt.Sprintf("handler panics on event %d", i))
				}})
			mark(t, b, g, dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm})
			n := len(tc.verdict) + 1 + tc.after
			fg, peer := standInGroup(t, b, n)
			src, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(src)
			var evs []byte
			fds := make([]int32, n)
			for i := range n {
				fd, err := syscall.Dup(src)
				if err != nil {
					t.Fatal(err)
				}
				fds[i] = int32(fd)
				evs = append(evs, fanEvent(sys.FAN_OPEN_PERM, fds[i], int32(syscall.Getppid()), 0)...)
			}
			if _, err := syscall.Write(peer, evs); err != nil {
				t.Fatal(err)
			}
			if r := onLoop(b, func() { fg.readAndDispatch() }); r == nil {
				t.Fatal("the Handler's panic did not go on")
			}
			got := readAnswers(t, peer)
			for i, fd := range fds {
				var want []uint32
				switch {
				case i < len(tc.verdict) && tc.verdict[i] == engine.Deny:
					want = []uint32{sys.FAN_DENY}
				case i <= len(tc.verdict): // allowed, or the one the Handler panicked on
					want = []uint32{sys.FAN_ALLOW}
				default: // never handled
				}
				if fmt.Sprint(got[fd]) != fmt.Sprint(want) {
					t.Errorf("event %d (fd %d): answers %v, want %v", i, fd, got[fd], want)
				}
				if i > len(tc.verdict) {
					syscall.Close(int(fd)) // never handled: nobody else closes it
				}
			}
		})
	}
}
