package sys_test

import (
	"os"
	"runtime"
	"testing"
	"time"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestKernelFanotifyWakerEndsBlockedRead: a read(2) blocked on an empty fanotify group (no
// O_NONBLOCK) returns once Wake is called from another goroutine, with one event that IsWake
// recognizes; an event of another file of this process is not a wake; after Close, Wake does
// nothing and nothing is queued.
func TestKernelFanotifyWakerEndsBlockedRead(t *testing.T) {
	testenv.RequireRoot(t)
	fd, err := FanotifyInit(FAN_CLASS_CONTENT, O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	w, err := NewFanotifyWaker(fd)
	if err != nil {
		t.Fatal(err)
	}
	self := int32(os.Getpid())
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, FanotifyReadSize)
	read := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			n, err := Read(fd, buf)
			ch <- result{n, err}
		}()
		return ch
	}
	ch := read()
	select {
	case r := <-ch:
		t.Fatalf("read returned before any wake: %d bytes, %v", r.n, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	w.Wake()
	var r result
	select {
	case r = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a read blocked on the group did not return within 5s of Wake")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	var wakes, others int
	if err := ParseFanotify(buf[:r.n], func(ev *FanotifyEvent) error {
		if w.IsWake(ev.Mask, ev.Pid, self, ev.Fd) {
			wakes++
		} else {
			others++
		}
		Close(int(ev.Fd))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if wakes != 1 || others != 0 {
		t.Fatalf("after one Wake: %d wake events and %d others, want 1 and 0", wakes, others)
	}

	// Another file of this process, modified: not a wake.
	f, err := os.CreateTemp(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if w.IsWake(FAN_MODIFY, self, self, int32(f.Fd())) {
		t.Error("IsWake says yes for another file of this process")
	}
	if w.IsWake(FAN_MODIFY, self+1, self, -1) {
		t.Error("IsWake says yes for another process's event")
	}

	w.Close()
	w.Wake() // does nothing
	if err := SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	if n, err := Read(fd, buf); n != 0 || err == nil {
		t.Fatalf("after Close and Wake the group has %d bytes queued (err %v), want none (EAGAIN)", n, err)
	}
}
