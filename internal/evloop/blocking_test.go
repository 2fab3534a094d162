//go:build linux

package evloop

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// blockingSock is a socket registered with RegisterBlocking: its Wake writes a NUL byte that
// its callback drops; the callback hands over what else it read and records the mode it ran in.
type blockingSock struct {
	t             *testing.T
	l             *Loop
	r, w          int
	reg           *Registration
	got           chan string
	sets          chan bool // each SetBlocking call's argument
	failSet       atomic.Bool
	wakes         atomic.Int32
	blockingCalls atomic.Int32
	pollCalls     atomic.Int32
	offLoop       atomic.Int32
	mu            sync.Mutex
	blockingNow   bool // SetBlocking's last successful argument
}

// newBlockingSock makes the socket pair before the loop, so that the loop closes first (a
// socket closed under a blocked read does not end the read).
func newBlockingSock(t *testing.T) *blockingSock {
	s := &blockingSock{t: t, got: make(chan string, 64), sets: make(chan bool, 64)}
	s.r, s.w = testenv.SocketPair(t)
	s.l = newLoop(t)
	reg, err := s.l.RegisterBlocking(s.r, s.onReadable, Blocking{SetBlocking: s.setBlocking, Wake: s.wake})
	if err != nil {
		t.Fatal(err)
	}
	s.reg = reg // only the test's goroutine uses it
	return s
}

func (s *blockingSock) setBlocking(on bool) error {
	s.sets <- on
	if s.failSet.Load() {
		return errors.New("test: SetBlocking fails")
	}
	if err := setNonblock(s.r, !on); err != nil {
		return err
	}
	s.mu.Lock()
	s.blockingNow = on
	s.mu.Unlock()
	return nil
}

func setNonblock(fd int, nonblocking bool) error { return syscall.SetNonblock(fd, nonblocking) }

func (s *blockingSock) wake() {
	s.wakes.Add(1)
	syscall.Write(s.w, []byte{0})
}

func (s *blockingSock) onReadable() {
	if !s.l.OnLoop() {
		s.offLoop.Add(1)
	}
	if s.l.Blocking() {
		s.blockingCalls.Add(1)
	} else {
		s.pollCalls.Add(1)
	}
	var buf [64]byte
	n, err := syscall.Read(s.r, buf[:])
	s.l.Awake()
	if err != nil || n <= 0 {
		return
	}
	if data := strings.ReplaceAll(string(buf[:n]), "\x00", ""); data != "" {
		s.got <- data
	}
}

// waitBlocked waits until the loop waits in a blocking read (it is in one, or about to
// enter it: then a little more).
func waitBlocked(t *testing.T, l *Loop) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !l.InBlockingRead() {
		if time.Now().After(deadline) {
			_, waits := l.Waits()
			t.Fatalf("the loop never waited in a blocking read (%d waits so far)", waits)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
}

func expectSet(t *testing.T, sets <-chan bool, want bool) {
	t.Helper()
	select {
	case on := <-sets:
		if on != want {
			t.Fatalf("SetBlocking(%v), want SetBlocking(%v)", on, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("SetBlocking(%v) never called", want)
	}
}

// Alone, a RegisterBlocking descriptor is waited for in its callback's blocking read: data
// is read with no wake and no poll; work posted from another goroutine while the loop is
// blocked wakes it through Wake (once), and runs on the loop.
func TestBlockingReadWhenAlone(t *testing.T) {
	s := newBlockingSock(t)
	expectSet(t, s.sets, true)
	waitBlocked(t, s.l)
	syscall.Write(s.w, []byte("one"))
	expect(t, s.got, "one")
	if n := s.wakes.Load(); n != 0 {
		t.Fatalf("%d wakes to read data that came by itself", n)
	}
	waitBlocked(t, s.l)
	loopWakes := s.l.wakes.Load() // the Register's (the loop may have been in poll, alone)
	ran := make(chan bool, 1)
	s.l.Post(func() { ran <- s.l.OnLoop() })
	select {
	case onLoop := <-ran:
		if !onLoop {
			t.Fatal("posted work ran off the loop")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("work posted while the loop was blocked in a read never ran")
	}
	if n := s.wakes.Load(); n != 1 {
		t.Fatalf("%d wakes for one post while blocked, want 1", n)
	}
	syscall.Write(s.w, []byte("two"))
	expect(t, s.got, "two")
	if p := s.pollCalls.Load(); p != 0 {
		t.Fatalf("%d callbacks in poll mode with one descriptor registered", p)
	}
	if n := s.l.wakes.Load() - loopWakes; n != 1 {
		t.Fatalf("the loop counts %d wakes since the post, want 1 (the descriptor's: the eventfd is not used)", n)
	}
	if n := s.offLoop.Load(); n != 0 {
		t.Fatalf("%d callbacks off the loop", n)
	}
}

// Work posted by the callback itself after Awake runs right after it, with no wake.
func TestBlockingPostFromCallbackNeedsNoWake(t *testing.T) {
	r, w := testenv.SocketPair(t)
	l := newLoop(t)
	ran := make(chan struct{}, 4)
	var wakes atomic.Int32
	_, err := l.RegisterBlocking(r, func() {
		var buf [8]byte
		n, _ := syscall.Read(r, buf[:])
		l.Awake()
		if n > 0 && buf[0] != 0 {
			l.Post(func() { ran <- struct{}{} })
		}
	}, Blocking{
		SetBlocking: func(on bool) error { return setNonblock(r, !on) },
		Wake:        func() { wakes.Add(1); syscall.Write(w, []byte{0}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	waitBlocked(t, l)
	syscall.Write(w, []byte("x"))
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("work posted by the callback never ran")
	}
	if n := wakes.Load(); n != 0 {
		t.Fatalf("%d wakes for work posted by the callback after Awake", n)
	}
}

// A second descriptor turns blocking mode off (the first is made non-blocking, both are
// polled, and a post wakes the eventfd); once it is unregistered the loop blocks again.
func TestBlockingOffWithSecondDescriptor(t *testing.T) {
	s := newBlockingSock(t)
	expectSet(t, s.sets, true)
	waitBlocked(t, s.l)
	got2 := make(chan string, 16)
	var off atomic.Int32
	r2, w2 := testenv.SocketPair(t)
	reg2, err := s.l.Register(r2, reader(s.l, r2, got2, &off))
	if err != nil {
		t.Fatal(err)
	}
	expectSet(t, s.sets, false) // the Register woke the blocked read, then poll mode
	syscall.Write(w2, []byte("second"))
	expect(t, got2, "second")
	calls := s.blockingCalls.Load()
	syscall.Write(s.w, []byte("first"))
	expect(t, s.got, "first")
	if s.blockingCalls.Load() != calls {
		t.Fatal("the first descriptor's callback ran in blocking mode beside a second one")
	}
	s.mu.Lock()
	blocking := s.blockingNow
	s.mu.Unlock()
	if blocking {
		t.Fatal("the first descriptor is still blocking while two are polled")
	}
	wakes := s.wakes.Load()
	ran := make(chan struct{})
	time.Sleep(20 * time.Millisecond)
	s.l.Post(func() { close(ran) })
	<-ran
	if s.wakes.Load() != wakes {
		t.Fatal("a post in poll mode went through the descriptor's Wake")
	}
	reg2.Unregister()
	expectSet(t, s.sets, true)
	waitBlocked(t, s.l)
	syscall.Write(s.w, []byte("again"))
	expect(t, s.got, "again")
	if n := off.Load(); n != 0 {
		t.Fatalf("%d callbacks off the loop", n)
	}
}

// Pause while blocked makes the descriptor non-blocking and stops reading it; Resume blocks
// again. Unregister while blocked returns (the read is woken), and the descriptor is left
// non-blocking for its owner.
func TestBlockingPauseUnregister(t *testing.T) {
	s := newBlockingSock(t)
	expectSet(t, s.sets, true)
	waitBlocked(t, s.l)
	s.reg.Pause()
	expectSet(t, s.sets, false)
	syscall.Write(s.w, []byte("held"))
	expectNothing(t, s.got)
	s.reg.Resume()
	expectSet(t, s.sets, true)
	expect(t, s.got, "held")
	waitBlocked(t, s.l)
	done := make(chan struct{})
	go func() {
		s.reg.Unregister()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Unregister while the loop was blocked in the read never returned")
	}
	expectSet(t, s.sets, false)
	syscall.Write(s.w, []byte("after"))
	expectNothing(t, s.got)
}

// Close while the loop is blocked in the read wakes it and ends it (goleak, in TestMain,
// checks the goroutine is gone), and leaves the descriptor non-blocking.
func TestBlockingClose(t *testing.T) {
	s := newBlockingSock(t)
	expectSet(t, s.sets, true)
	waitBlocked(t, s.l)
	closed := make(chan struct{})
	go func() {
		s.l.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close while the loop was blocked in the read never returned")
	}
	expectSet(t, s.sets, false)
	if n := s.wakes.Load(); n != 1 {
		t.Fatalf("%d wakes for Close, want 1", n)
	}
}

// A SetBlocking that fails turns blocking mode off for good: the descriptor is polled.
func TestBlockingSetFails(t *testing.T) {
	r, w := testenv.SocketPair(t)
	l := newLoop(t)
	var sets atomic.Int32
	got := make(chan string, 4)
	var off atomic.Int32
	read := reader(l, r, got, &off)
	_, err := l.RegisterBlocking(r, func() {
		if l.Blocking() {
			t.Error("callback in blocking mode after SetBlocking failed")
		}
		read()
	}, Blocking{
		SetBlocking: func(bool) error { sets.Add(1); return errors.New("test: no") },
		Wake:        func() { t.Error("Wake called in poll mode") },
	})
	if err != nil {
		t.Fatal(err)
	}
	syscall.Write(w, []byte("polled"))
	expect(t, got, "polled")
	ran := make(chan struct{})
	l.Post(func() { close(ran) })
	<-ran
	if n := sets.Load(); n != 1 {
		t.Fatalf("SetBlocking called %d times, want once", n)
	}
	if _, waits := l.Waits(); waits != 0 {
		t.Fatal("the loop waited in a blocking read")
	}
}

// A blocking-mode callback that pauses or unregisters its own registration (on the loop:
// applied at once) is not called again — not in the loop's next round, which in blocking mode
// follows the callback without going through the loop's changes — until it is resumed: the
// loop goes round (a post runs) and no call comes meanwhile.
func TestBlockingCallbackStopsItself(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*Registration)
	}{
		{"unregister", (*Registration).Unregister},
		{"pause", (*Registration).Pause},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := testenv.SocketPair(t)
			l := newLoop(t)
			var reg atomic.Pointer[Registration]
			var stopped atomic.Bool
			var after atomic.Int32
			got, err := l.RegisterBlocking(r, func() {
				if stopped.Load() {
					after.Add(1)
					return
				}
				var buf [8]byte
				n, _ := syscall.Read(r, buf[:])
				l.Awake()
				if n > 0 && buf[0] == 'x' && l.Blocking() {
					stopped.Store(true)
					tc.stop(reg.Load())
				}
			}, Blocking{
				SetBlocking: func(on bool) error { return setNonblock(r, !on) },
				Wake:        func() { syscall.Write(w, []byte{0}) },
			})
			if err != nil {
				t.Fatal(err)
			}
			reg.Store(got)
			waitBlocked(t, l)
			syscall.Write(w, []byte("x"))
			deadline := time.Now().Add(10 * time.Second)
			for !stopped.Load() {
				if time.Now().After(deadline) {
					t.Fatal("the callback never read x in blocking mode")
				}
				time.Sleep(time.Millisecond)
			}
			for range 3 { // the loop goes round, more than once
				ran := make(chan struct{})
				l.Post(func() { close(ran) })
				select {
				case <-ran:
				case <-time.After(10 * time.Second):
					t.Fatal("posted work never ran")
				}
			}
			if n := after.Load(); n != 0 {
				t.Fatalf("the callback was called %d times after it stopped its registration", n)
			}
		})
	}
}
