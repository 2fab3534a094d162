//go:build linux

package evloop

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// kicked models the permission ring's answers (daemon/ring.go): a producer publishes items
// (head) and writes the kick descriptor only if the consumer armed it; the consumer arms it
// only in Before, just before the loop sleeps, and disarms it in After.
type kicked struct {
	head, tail atomic.Uint64 // tail: the loop's
	armed      atomic.Bool
	kicks      atomic.Uint64
	taken      atomic.Uint64
	w          int
}

func (k *kicked) publish() {
	k.head.Add(1)
	if k.armed.Load() && k.armed.Swap(false) {
		k.kicks.Add(1)
		syscall.Write(k.w, []byte{1})
	}
}

func (k *kicked) take() bool {
	h := k.head.Load()
	if h == k.tail.Load() {
		return false
	}
	k.taken.Add(h - k.tail.Load())
	k.tail.Store(h)
	return true
}

// registerKicked has l poll a socket whose writes are kicked's kicks, with the ring's hooks:
// Before arms the kick and takes what was published instead if there is any, After disarms
// it; the callback reads the kick and takes. Armed from the start; unregistered at cleanup.
func registerKicked(t *testing.T, l *Loop) *kicked {
	t.Helper()
	r, w := testenv.SocketPair(t)
	k := &kicked{w: w}
	k.armed.Store(true)
	var buf [64]byte
	reg, err := l.RegisterHooks(r, func() {
		syscall.Read(r, buf[:])
		k.take()
	}, Hooks{
		Before: func() bool {
			k.armed.Store(true)
			if k.head.Load() != k.tail.Load() {
				k.armed.Store(false)
				return k.take()
			}
			return false
		},
		After: func() { k.armed.Store(false) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Unregister)
	return k
}

// TestHooksNoItemWaitsForAWait: with the kick armed only before the loop sleeps, every item a
// producer publishes is taken promptly, whether it comes while the loop sleeps (a kick wakes
// it) or while it is busy (Before finds it, no kick): 20,000 items from two producers, in
// bursts and one by one, all taken, each burst within a bound; and items published while the
// loop is busy cost no kick (fewer kicks than items).
func TestHooksNoItemWaitsForAWait(t *testing.T) {
	l := newLoop(t)
	k := registerKicked(t, l)
	const producers, per = 2, 10000
	done := make(chan struct{})
	for p := 0; p < producers; p++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < per; i++ {
				k.publish()
				if i%100 == 0 {
					// Let the loop sleep now and then, and check that nothing waits.
					deadline := time.Now().Add(5 * time.Second)
					for k.taken.Load() < k.head.Load() && time.Now().Before(deadline) {
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
		}()
	}
	for p := 0; p < producers; p++ {
		<-done
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.taken.Load() < producers*per && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := k.taken.Load(); got != producers*per {
		t.Fatalf("%d of %d items taken 5 s after the last: an item waited for a wait nobody ended", got, producers*per)
	}
	t.Logf("%d items, %d kicks, %d polls without waiting", producers*per, k.kicks.Load(), l.HookPolls())
	if k.kicks.Load() >= producers*per {
		t.Errorf("%d kicks for %d items: items that came while the loop was busy were kicked", k.kicks.Load(), producers*per)
	}
}

// TestHooksOneTakeOnePoll: an item published while the loop is busy (here by work posted to
// it, as a daemon's client answers while the loop forwards its next event) is taken by Before
// just before the loop would sleep, and the loop then goes round and waits: one poll(2) per
// item (the wait), not a poll without waiting first and then the wait (h30-daemonsys: one
// ppoll per permission event through the daemon fewer). 200 items one at a time, each taken,
// none kicked, no poll without waiting; a descriptor that becomes readable meanwhile is
// still served.
func TestHooksOneTakeOnePoll(t *testing.T) {
	l := newLoop(t)
	k := registerKicked(t, l)
	got := make(chan string, 16)
	var off atomic.Int32
	sr, sw := testenv.SocketPair(t)
	sreg, err := l.Register(sr, reader(l, sr, got, &off))
	if err != nil {
		t.Fatal(err)
	}
	defer sreg.Unregister()
	waitTaken := func(n uint64) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); k.taken.Load() < n; {
			if time.Now().After(end) {
				t.Fatalf("%d of %d items taken after 5 s", k.taken.Load(), n)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	// Each item is published by work posted to the loop: the loop is awake (After ran:
	// not armed), so the item is not kicked and Before finds it. The next is posted once the
	// loop has gone to wait again (a post before that would be a second item found with no
	// poll in between, which is polled for).
	publish := func(n uint64) {
		t.Helper()
		waits, _ := l.Waits()
		l.Post(func() { k.head.Add(1) })
		waitTaken(n)
		for end := time.Now().Add(5 * time.Second); ; {
			if w, _ := l.Waits(); w > waits {
				return
			}
			if time.Now().After(end) {
				t.Fatal("the loop did not wait again after taking an item")
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	publish(1)
	hookPolls := l.HookPolls()
	const n = 200
	for i := range n {
		publish(uint64(i + 2))
	}
	if k.kicks.Load() != 0 {
		t.Errorf("%d kicks: items published while the loop was awake were kicked", k.kicks.Load())
	}
	if extra := l.HookPolls() - hookPolls; extra > 0 {
		t.Errorf("%d polls without waiting for %d items taken one by one by Before: want 0 (the wait that follows serves the other descriptors)", extra, n)
	}
	syscall.Write(sw, []byte("served"))
	expect(t, got, "served")
	if off.Load() != 0 {
		t.Errorf("%d callbacks ran off the loop", off.Load())
	}
}

// TestHooksBusyBeforeStarvesNothing: a Before that finds work at every turn (a client that
// floods) never keeps the loop from serving its other descriptors: their data is read, and
// the loop never sleeps meanwhile (it polls without waiting). Work Before posts runs on the
// loop without a wake. After is not called while the loop does not wait.
func TestHooksBusyBeforeStarvesNothing(t *testing.T) {
	l := newLoop(t)
	hr, _ := testenv.SocketPair(t)
	var befores, afters, postedOff atomic.Int64
	var busy atomic.Bool
	busy.Store(true)
	hreg, err := l.RegisterHooks(hr, func() {}, Hooks{
		Before: func() bool {
			befores.Add(1)
			if !busy.Load() {
				return false
			}
			l.Post(func() {
				if !l.OnLoop() {
					postedOff.Add(1)
				}
			})
			return true
		},
		After: func() { afters.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hreg.Unregister()
	got := make(chan string, 16)
	var off atomic.Int32
	r, w := testenv.SocketPair(t)
	reg, err := l.Register(r, reader(l, r, got, &off))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	for befores.Load() < 1000 {
		time.Sleep(time.Millisecond)
	}
	wakes, polls := l.wakes.Load(), l.polls.Load()
	aftersThen := afters.Load()
	syscall.Write(w, []byte("served"))
	expect(t, got, "served")
	if l.polls.Load() != polls || afters.Load() != aftersThen {
		t.Errorf("the loop waited while Before found work (polls %d -> %d, After %d -> %d)", polls, l.polls.Load(), aftersThen, afters.Load())
	}
	if l.wakes.Load() > wakes+1 { // the one write above may wake nothing: the loop is not asleep
		t.Errorf("work posted by Before woke the loop: %d wakes", l.wakes.Load()-wakes)
	}
	if postedOff.Load() != 0 || off.Load() != 0 {
		t.Errorf("work ran off the loop: %d posted, %d callbacks", postedOff.Load(), off.Load())
	}
	busy.Store(false)
	// Once Before finds nothing, the loop sleeps again (a wait, After once it ends).
	start := l.polls.Load()
	syscall.Write(w, []byte("again"))
	expect(t, got, "again")
	for end := time.Now().Add(5 * time.Second); l.polls.Load() == start && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if l.polls.Load() == start {
		t.Fatalf("the loop did not wait again once Before found nothing")
	}
	// The wait is counted as it starts; After runs once it ends: end it.
	syscall.Write(w, []byte("end"))
	expect(t, got, "end")
	for end := time.Now().Add(5 * time.Second); afters.Load() == aftersThen && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if afters.Load() == aftersThen {
		t.Errorf("After was not called when the loop's wait ended")
	}
}
