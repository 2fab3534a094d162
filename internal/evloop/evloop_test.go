//go:build linux

package evloop

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newLoop(t *testing.T) *Loop {
	l := New("test")
	t.Cleanup(l.Close)
	return l
}

// reader is a callback that reads what came on fd and hands it over, noting whether it ran
// on the loop.
func reader(l *Loop, fd int, got chan<- string, offLoop *atomic.Int32) func() {
	return func() {
		if !l.OnLoop() {
			offLoop.Add(1)
		}
		var buf [64]byte
		n, err := syscall.Read(fd, buf[:])
		if err != nil || n <= 0 {
			return
		}
		got <- string(buf[:n])
	}
}

func expect(t *testing.T, got <-chan string, want string) {
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

func expectNothing(t *testing.T, got <-chan string) {
	t.Helper()
	select {
	case s := <-got:
		t.Fatalf("read %q after it should have stopped", s)
	case <-time.After(100 * time.Millisecond):
	}
}

// Registered descriptors are read on the loop, also ones registered while it waits in poll
// (the registration wakes it), and a descriptor unregistered from another goroutine is never
// read again once Unregister returns.
func TestRegisterUnregister(t *testing.T) {
	l := newLoop(t)
	got := make(chan string, 16)
	var off atomic.Int32
	r1, w1 := testenv.SocketPair(t)
	reg1, err := l.Register(r1, reader(l, r1, got, &off))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Write(w1, []byte("one"))
	expect(t, got, "one")
	time.Sleep(10 * time.Millisecond) // the loop waits in poll again
	r2, w2 := testenv.SocketPair(t)
	reg2, err := l.Register(r2, reader(l, r2, got, &off))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Write(w2, []byte("two"))
	expect(t, got, "two")
	reg1.Unregister()
	syscall.Write(w1, []byte("three"))
	expectNothing(t, got)
	reg1.Unregister() // idempotent
	syscall.Write(w2, []byte("four"))
	expect(t, got, "four")
	reg2.Unregister()
	if n := off.Load(); n != 0 {
		t.Fatalf("%d callbacks ran off the loop", n)
	}
}

// Unregister from another goroutine waits for a callback that is running: once it returns,
// the owner may close the descriptor.
func TestUnregisterWaitsForCallback(t *testing.T) {
	l := newLoop(t)
	r, w := testenv.SocketPair(t)
	in, release := make(chan struct{}), make(chan struct{})
	var running atomic.Bool
	reg, err := l.Register(r, func() {
		running.Store(true)
		in <- struct{}{}
		<-release // a test's callback breaking the rule, briefly, to be caught running
		var buf [8]byte
		syscall.Read(r, buf[:])
		running.Store(false)
	})
	if err != nil {
		t.Fatal(err)
	}
	syscall.Write(w, []byte("x"))
	<-in
	done := make(chan struct{})
	go func() {
		reg.Unregister()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Unregister returned while the callback ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Unregister never returned")
	}
	if running.Load() {
		t.Fatal("Unregister returned before the callback did")
	}
}

// A paused registration is not polled (data waits in the socket) until Resume.
func TestPauseResume(t *testing.T) {
	l := newLoop(t)
	got := make(chan string, 16)
	var off atomic.Int32
	r, w := testenv.SocketPair(t)
	reg, err := l.Register(r, reader(l, r, got, &off))
	if err != nil {
		t.Fatal(err)
	}
	reg.Pause()
	syscall.Write(w, []byte("held"))
	expectNothing(t, got)
	reg.Resume()
	expect(t, got, "held")
	reg.Unregister()
}

// Work posted by a callback runs on the loop right after it, before the next callback and
// without any wake-up; work posted from elsewhere runs on the loop, in the order posted.
func TestPost(t *testing.T) {
	l := newLoop(t)
	r, w := testenv.SocketPair(t)
	var order []string
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	ranOnLoop := make(chan bool, 1)
	var wakesAtPost uint64
	reg, err := l.Register(r, func() {
		var buf [8]byte
		syscall.Read(r, buf[:])
		note("callback")
		wakesAtPost = l.wakes.Load()
		l.Post(func() {
			note("posted by callback")
			if l.wakes.Load() != wakesAtPost {
				t.Error("a post on the loop woke the loop")
			}
			ranOnLoop <- l.OnLoop()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	syscall.Write(w, []byte("x"))
	if !<-ranOnLoop {
		t.Fatal("posted work ran off the loop")
	}
	reg.Unregister()
	mu.Lock()
	if len(order) != 2 || order[0] != "callback" || order[1] != "posted by callback" {
		t.Fatalf("order %q", order)
	}
	mu.Unlock()

	const n = 1000
	var seq []int
	all := make(chan struct{})
	var off atomic.Int32
	for i := range n {
		l.Post(func() {
			if !l.OnLoop() {
				off.Add(1)
			}
			seq = append(seq, i) // the loop's only: no lock
			if i == n-1 {
				close(all)
			}
		})
	}
	<-all
	if off.Load() != 0 {
		t.Fatalf("%d posted functions ran off the loop", off.Load())
	}
	for i, v := range seq {
		if v != i {
			t.Fatalf("posted work ran out of order: %d at %d", v, i)
		}
	}
}

// TestOnLoopAcrossYields: the loop goroutine leaves its thread for each yield (Loop.yield) and
// may come back on another; OnLoop must stay exact throughout: true in every callback and in
// the work they post, false for every other goroutine, also those that run on the thread the
// loop has just left. Other goroutines keep the scheduler busy and call OnLoop meanwhile.
func TestOnLoopAcrossYields(t *testing.T) {
	l := newLoop(t)
	r, w := testenv.SocketPair(t)
	var calls, offLoop, postedOff atomic.Int32
	reg, err := l.Register(r, func() {
		var buf [64]byte
		syscall.Read(r, buf[:])
		calls.Add(1)
		if !l.OnLoop() {
			offLoop.Add(1)
		}
		l.Post(func() {
			if !l.OnLoop() {
				postedOff.Add(1)
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	stopChecks := checkOffLoop(l, 8, 0)
	yields := l.yields.Load()
	// Writes for at least 250 ms (about 30 yield intervals) and until 5 yields were made.
	deadline := time.Now().Add(10 * time.Second)
	for start := time.Now(); time.Since(start) < 250*time.Millisecond || l.yields.Load()-yields < 5; {
		if time.Now().After(deadline) {
			break
		}
		syscall.Write(w, []byte("x"))
		time.Sleep(100 * time.Microsecond)
	}
	falseOnLoop := stopChecks()
	if n := l.yields.Load() - yields; n < 5 {
		t.Fatalf("%d yields in 10 s of steady work, want at least 5 (one per %v)", n, yieldEvery)
	}
	if calls.Load() == 0 {
		t.Fatal("the callback never ran")
	}
	if n := offLoop.Load(); n != 0 {
		t.Errorf("OnLoop false in %d of %d callbacks", n, calls.Load())
	}
	if n := postedOff.Load(); n != 0 {
		t.Errorf("OnLoop false in %d functions posted by callbacks", n)
	}
	if falseOnLoop != 0 {
		t.Errorf("OnLoop true %d times on goroutines other than the loop", falseOnLoop)
	}
}

// Close runs the work posted before it, lets every registration go (Unregister returns at
// once), and after it Post runs on the caller; closing on the loop does not wait for itself.
func TestClose(t *testing.T) {
	l := New("test")
	r, _ := testenv.SocketPair(t)
	reg, err := l.Register(r, func() {})
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	l.Post(func() { <-block }) // holds the loop so that the next ones queue
	var ran atomic.Int32
	for range 10 {
		l.Post(func() { ran.Add(1) })
	}
	closed := make(chan struct{})
	go func() {
		l.Close()
		close(closed)
	}()
	time.Sleep(10 * time.Millisecond)
	close(block)
	<-closed
	if n := ran.Load(); n != 10 {
		t.Fatalf("Close ran %d of the 10 functions posted before it", n)
	}
	inline := false
	l.Post(func() { inline = true })
	if !inline {
		t.Fatal("Post after Close did not run on the caller")
	}
	reg.Unregister()
	if _, err := l.Register(r, func() {}); err != ErrClosed {
		t.Fatalf("Register after Close: %v, want ErrClosed", err)
	}
	l.Close() // idempotent

	l2 := New("test")
	done := make(chan struct{})
	l2.Post(func() {
		l2.Close() // on the loop: returns at once, the loop ends after this
		close(done)
	})
	<-done
	l2.Close()

	l3 := New("never started")
	l3.Close()
	l3.Post(func() {}) // runs on the caller
}

// TestYieldKeepsTheLoopIdentity: across the loop's yields (unlocked from its thread for the
// moment, so it may go on on another thread), work posted runs on the loop goroutine, OnLoop
// is true there and false on every other goroutine, and the loop is locked to whichever thread
// it runs on (the thread id OnLoop compares is that of the thread running the work).
func TestYieldKeepsTheLoopIdentity(t *testing.T) {
	l := newLoop(t)
	var bad, badSlice atomic.Int32
	sliced := kernelKeepsSlices(t)
	stopChecks := checkOffLoop(l, 1, 50*time.Microsecond) // may run on the loop's old thread after a yield
	deadline := time.Now().Add(5 * time.Second)
	for l.yields.Load() < 5 && time.Now().Before(deadline) {
		done := make(chan struct{})
		l.Post(func() {
			if !l.OnLoop() || l.tid.Load() != int64(syscall.Gettid()) {
				bad.Add(1)
			}
			if d, err := sys.Slice(0); err == nil && sliced && d != loopSlice {
				badSlice.Add(1) // the slice did not follow the loop to this thread
			}
			close(done)
		})
		<-done
		time.Sleep(time.Millisecond)
	}
	bad.Add(stopChecks())
	if n := l.yields.Load(); n < 5 {
		t.Fatalf("the loop yielded %d times in 5 s of posts 1 ms apart, want >= 5 (one per %v)", n, yieldEvery)
	}
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d checks saw the wrong loop identity across yields", n)
	}
	if n := badSlice.Load(); n != 0 {
		t.Fatalf("%d posts ran on a loop thread without the loop's slice (%v)", n, loopSlice)
	}
}

// checkOffLoop starts n goroutines that ask OnLoop over and over (pause apart) until the
// returned stop is called; stop waits for them and returns how often OnLoop said true, which
// it must never say on a goroutine other than the loop's.
func checkOffLoop(l *Loop, n int, pause time.Duration) (stop func() int32) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var onLoop atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if l.OnLoop() {
					onLoop.Add(1)
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	return func() int32 {
		close(done)
		wg.Wait()
		return onLoop.Load()
	}
}

// kernelKeepsSlices reports whether the kernel keeps a custom slice for SCHED_OTHER (6.12+).
func kernelKeepsSlices(t *testing.T) bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer sys.SetSlice(0, 0)
	if err := sys.SetSlice(0, 2*loopSlice); err != nil {
		t.Logf("no custom slices: %v", err)
		return false
	}
	d, err := sys.Slice(0)
	return err == nil && d == 2*loopSlice
}

// TestLoopThreadSlice: the loop's thread runs with loopSlice, and a thread the loop left
// after a yield gets the default back (checked in TestYieldKeepsTheLoopIdentity for the
// threads it moves to).
func TestLoopThreadSlice(t *testing.T) {
	if !kernelKeepsSlices(t) {
		t.Skip("the kernel keeps no custom slice for SCHED_OTHER (before 6.12)")
	}
	l := newLoop(t)
	got := make(chan time.Duration, 1)
	l.Post(func() {
		d, err := sys.Slice(0)
		if err != nil {
			t.Error(err)
		}
		got <- d
	})
	if d := <-got; d != loopSlice {
		t.Fatalf("the loop's thread runs with slice %v, want %v", d, loopSlice)
	}
}
