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

// waitLoopBlocked waits until the loop waits in a blocking read of the FD group (it is in
// it, or about to enter it: then a little more).
func waitLoopBlocked(t *testing.T, b *Backend) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !b.Loop().InBlockingRead() {
		if time.Now().After(deadline) {
			t.Fatal("the loop never waited in a blocking read of the FD group")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
}

// allowAllOnLoop is a backend whose one group allows every open of the children of a tmpfs
// directory with a Handler (on the loop), counting them; it returns the file to open.
func allowAllOnLoop(t *testing.T) (b *Backend, f string, handled *atomic.Int32) {
	b = newBackend(t, ModeFanotify)
	dir := testenv.Tmpfs(t)
	f = filepath.Join(dir, "f")
	writeFile(t, f, "x")
	handled = new(atomic.Int32)
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(engine.Delivery) (engine.Response, bool) {
		handled.Add(1)
		return engine.Response{}, true
	}})
	mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	return b, f, handled
}

// With the FD group alone on the loop, the loop waits for permission events in a blocking
// read (no poll per event); what must wake that read does: an answer from another
// goroutine (the walk's continuation, posted), a deadline (posted by a timer), and Close.
// Every open is answered, with the verdict asked.
func TestFDGroupBlockingRead(t *testing.T) {
	b, f, handled := allowAllOnLoop(t)
	dir := filepath.Dir(f)
	waitLoopBlocked(t, b)

	// Opens answered by the Handler on the loop: one blocking read each, no poll. (A wait is
	// counted as it begins: the one under way at the first snapshot returns the first open,
	// and the one after the last open may not have begun at the second: opens-1 at least.)
	polls0, reads0 := b.Loop().Waits()
	const opens = 5
	for range opens {
		if res := startAccess(t, "open:"+f).result(); res.errno != 0 {
			t.Fatalf("open: %v", res)
		}
	}
	polls1, reads1 := b.Loop().Waits()
	if handled.Load() != opens {
		t.Fatalf("the Handler saw %d opens, want %d", handled.Load(), opens)
	}
	if polls1 != polls0 || reads1-reads0 < opens-1 {
		t.Fatalf("over %d opens the loop polled %d times and waited in a read %d times; want 0 polls and >= %d reads",
			opens, polls1-polls0, reads1-reads0, opens-1)
	}

	// An answer from another goroutine: the continuation is posted while the loop waits in
	// the read, and wakes it.
	hi := newGroup(t, b, engine.Options{Class: engine.ClassPreContent, Deadline: permDeadline})
	mark(t, b, hi, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	p := startAccess(t, "open:"+f)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	d, err := hi.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitLoopBlocked(t, b)
	start := time.Now()
	if err := hi.Respond(d.ID, engine.Response{Verdict: engine.Deny}); err != nil {
		t.Fatal(err)
	}
	d.Release()
	if res := p.result(); res.errno != syscall.EPERM {
		t.Fatalf("open denied by an answer from another goroutine: %v, want EPERM", res)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the answer took %v to reach the kernel: the blocked read was not woken", el)
	}
	hi.Close()

	// A deadline: its timer posts the continuation while the loop waits in the read.
	const dl = 200 * time.Millisecond
	slow := newGroup(t, b, engine.Options{Class: engine.ClassPreContent, Deadline: dl, DeadlineVerdict: engine.Deny})
	mark(t, b, slow, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	start = time.Now()
	if res := startAccess(t, "open:"+f).result(); res.errno != syscall.EPERM {
		t.Fatalf("open past a deny deadline: %v, want EPERM", res)
	}
	if el := time.Since(start); el < dl || el > dl+5*time.Second {
		t.Fatalf("open past a %v deadline took %v", dl, el)
	}
	slow.Close()

	// Close while the loop waits in the read.
	waitLoopBlocked(t, b)
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close while the loop waited in a blocking read never returned")
	}
	if res := startAccess(t, "open:"+f).result(); res.errno != 0 {
		t.Fatalf("open after Close: %v", res)
	}
}

// A second descriptor on the loop (a daemon's client socket) turns the blocking read off:
// the loop polls both, permission events are still answered and the socket read; once the
// socket is unregistered the loop reads the FD group blocking again.
func TestFDGroupPollsBesideAnotherDescriptor(t *testing.T) {
	b, f, _ := allowAllOnLoop(t)
	waitLoopBlocked(t, b)
	got := make(chan string, 4)
	var off atomic.Int32
	r, w := testenv.SocketPair(t)
	reg, err := b.Loop().Register(r, sockReader(b, r, got, &off))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Write(w, []byte("client"))
	select {
	case s := <-got:
		if s != "client" {
			t.Fatalf("read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the socket registered beside the FD group was never read")
	}
	polls0, reads0 := b.Loop().Waits()
	for range 3 {
		if res := startAccess(t, "open:"+f).result(); res.errno != 0 {
			t.Fatalf("open: %v", res)
		}
	}
	polls1, reads1 := b.Loop().Waits()
	// Waits are counted as they begin (see TestFDGroupBlockingRead): 2 polls at least.
	if reads1 != reads0 || polls1-polls0 < 2 {
		t.Fatalf("with two descriptors, over 3 opens: %d polls and %d blocking reads; want >= 2 and 0", polls1-polls0, reads1-reads0)
	}
	reg.Unregister()
	waitLoopBlocked(t, b)
	if res := startAccess(t, "open:"+f).result(); res.errno != 0 {
		t.Fatalf("open: %v", res)
	}
	if n := off.Load(); n != 0 {
		t.Fatalf("%d callbacks off the loop", n)
	}
}
