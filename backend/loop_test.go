//go:build linux

package backend

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// sockReader is a loop callback that reads what came on fd and hands it over, counting the
// calls that ran off the loop.
func sockReader(b *Backend, fd int, got chan<- string, off *atomic.Int32) func() {
	return func() {
		if !b.Loop().OnLoop() {
			off.Add(1)
		}
		var buf [64]byte
		if n, err := syscall.Read(fd, buf[:]); err == nil && n > 0 {
			got <- string(buf[:n])
		}
	}
}

// The backend's loop serves other descriptors beside the FD group's, also before any mark
// and in inotify mode (where there is no FD group); one unregistered is never read again.
// (It replaces ShareReader's test: the daemon registers its clients' sockets there.)
func TestLoopReadsOtherDescriptors(t *testing.T) {
	for _, mode := range []Mode{ModeFanotify, ModeInotify} {
		t.Run(mode.String(), func(t *testing.T) {
			b := newBackend(t, mode)
			got := make(chan string, 16)
			var off atomic.Int32
			expect := func(want string) {
				t.Helper()
				select {
				case s := <-got:
					if s != want {
						t.Fatalf("read %q, want %q", s, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("never read %q", want)
				}
			}
			r1, w1 := testenv.SocketPair(t)
			reg1, err := b.Loop().Register(r1, sockReader(b, r1, got, &off))
			if err != nil {
				t.Fatal(err)
			}
			syscall.Write(w1, []byte("one"))
			expect("one")
			r2, w2 := testenv.SocketPair(t)
			reg2, err := b.Loop().Register(r2, sockReader(b, r2, got, &off))
			if err != nil {
				t.Fatal(err)
			}
			syscall.Write(w2, []byte("two"))
			expect("two")
			reg1.Unregister()
			syscall.Write(w1, []byte("three"))
			select {
			case s := <-got:
				t.Fatalf("an unregistered descriptor was read: %q", s)
			case <-time.After(100 * time.Millisecond):
			}
			reg2.Unregister()
			if n := off.Load(); n != 0 {
				t.Fatalf("%d callbacks ran off the loop", n)
			}
		})
	}
}

// A permission event whose group answers from another goroutine goes on on the loop: the
// lower group's Handler and the kernel answer run there, not on the answering goroutine.
func TestWalkGoesOnOnTheLoop(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	dir := testenv.Tmpfs(t)
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	hi := newGroup(t, b, engine.Options{Class: engine.ClassPreContent, Deadline: permDeadline})
	mark(t, b, hi, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	var onLoop, offLoop atomic.Int32
	lo := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(engine.Delivery) (engine.Response, bool) {
		if b.Loop().OnLoop() {
			onLoop.Add(1)
		} else {
			offLoop.Add(1)
		}
		return engine.Response{}, true
	}})
	mark(t, b, lo, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	p := startAccess(t, "open:"+f)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	d, err := hi.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := hi.Respond(d.ID, engine.Response{}); err != nil {
		t.Fatal(err)
	}
	d.Release()
	if res := p.result(); res.errno != 0 {
		t.Fatalf("the open: %v", res)
	}
	if onLoop.Load() != 1 || offLoop.Load() != 0 {
		t.Fatalf("the lower group's Handler ran %d times on the loop, %d off it; want once, on it", onLoop.Load(), offLoop.Load())
	}
}
