package workslot

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRelease(t *testing.T) {
	Release(context.Background()) // nothing to give back: no effect
	n := 0
	ctx := WithRelease(context.Background(), func() { n++ })
	Release(ctx)
	if n != 1 {
		t.Fatalf("release called %d times, want 1", n)
	}
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	Release(child) // a derived ctx carries it too
	if n != 2 {
		t.Fatalf("release through a derived ctx: called %d times, want 2 (the caller's func dedups)", n)
	}
}

func owned(o uint64) context.Context {
	return WithOwner(context.Background(), func() uint64 { return o })
}

// waitWaiting waits until n waiters are queued in p.
func waitWaiting(t *testing.T, p *Fair, n int64) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); p.waiting.Load() != n; {
		if time.Now().After(end) {
			t.Fatalf("%d waiters queued, want %d", p.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// order records who got the slot, in order, each releasing it at once.
type order struct {
	mu  sync.Mutex
	got []string
	wg  sync.WaitGroup
}

func (o *order) acquire(t *testing.T, p *Fair, ctx context.Context, name string) {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		s, err := p.Acquire(ctx)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		o.mu.Lock()
		o.got = append(o.got, name)
		o.mu.Unlock()
		s.Release()
	}()
}

// TestFairTurns: a slot that comes free goes to the owners that wait in turn, not to the
// waiters in the order they came: three waiters of A, then one of B and one of C, are served
// A, B, C, A, A.
func TestFairTurns(t *testing.T) {
	const A, B, C = 1, 2, 3
	p := NewFair(1)
	held, err := p.Acquire(owned(A))
	if err != nil {
		t.Fatal(err)
	}
	var o order
	for i, w := range []struct {
		name  string
		owner uint64
	}{{"a1", A}, {"a2", A}, {"a3", A}, {"b1", B}, {"c1", C}} {
		o.acquire(t, p, owned(w.owner), w.name)
		waitWaiting(t, p, int64(i+1))
	}
	held.Release()
	o.wg.Wait()
	if got, want := strings.Join(o.got, " "), "a1 b1 c1 a2 a3"; got != want {
		t.Fatalf("served %s, want %s", got, want)
	}
	checkIdle(t, p, 1)
}

// TestFairYield: a holder's Yield returns at once when no one waits or only its own owner's
// work does; when another owner waits, that owner gets the slot, and the holder gets it back
// next, before its own owner's waiters.
func TestFairYield(t *testing.T) {
	const A, B = 1, 2
	p := NewFair(1)
	released := 0
	ctxA := WithRelease(owned(A), func() { released++ })
	s, err := p.Acquire(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Yield(ctxA); err != nil || !s.held {
		t.Fatalf("yield with no one waiting: %v, held %v", err, s.held)
	}
	var o order
	o.acquire(t, p, owned(A), "a2")
	waitWaiting(t, p, 1)
	if err := s.Yield(ctxA); err != nil || !s.held || p.waiting.Load() != 1 || released != 0 {
		t.Fatalf("yield with only its own owner waiting: %v, held %v, %d waiting, place given back %d times", err, s.held, p.waiting.Load(), released)
	}
	o.acquire(t, p, owned(B), "b1")
	waitWaiting(t, p, 2)
	if err := s.Yield(ctxA); err != nil || !s.held || released != 1 {
		t.Fatalf("yield to B: %v, held %v, place given back %d times (want once: it waited)", err, s.held, released)
	}
	o.mu.Lock()
	o.got = append(o.got, "holder")
	o.mu.Unlock()
	s.Release()
	s.Release() // a second release does nothing
	o.wg.Wait()
	if got, want := strings.Join(o.got, " "), "b1 holder a2"; got != want {
		t.Fatalf("served %s, want %s", got, want)
	}
	checkIdle(t, p, 1)
}

// TestFairWaitEnds: a waiter whose ctx ends gets its error within its bound and leaves no
// trace: the slot, released after, is free; a Yield whose ctx ends while waiting holds nothing.
func TestFairWaitEnds(t *testing.T) {
	p := NewFair(1)
	s, err := p.Acquire(owned(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(owned(2), 50*time.Millisecond)
	defer cancel()
	released := 0
	ctx = WithRelease(ctx, func() { released++ })
	t0 := time.Now()
	if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) < 50*time.Millisecond || time.Since(t0) > 2*time.Second {
		t.Fatalf("acquire with the slot held: %v after %v, want the deadline's error after 50 ms", err, time.Since(t0))
	}
	if released != 1 {
		t.Fatalf("the waiter gave its worker place back %d times, want 1", released)
	}
	s.Release()
	checkIdle(t, p, 1)

	s, _ = p.Acquire(owned(1))
	other, err := func() (Slot, error) { // B holds nothing yet: wait in a goroutine
		ch := make(chan Slot, 1)
		go func() { o, _ := p.Acquire(owned(2)); ch <- o }()
		waitWaiting(t, p, 1)
		yctx, cancel := context.WithTimeout(owned(1), 50*time.Millisecond)
		defer cancel()
		if err := s.Yield(yctx); !errors.Is(err, context.DeadlineExceeded) || s.held {
			t.Errorf("yield whose ctx ends while B holds the slot: %v, held %v", err, s.held)
		}
		return <-ch, nil
	}()
	if err != nil || !other.held {
		t.Fatalf("B: %v", err)
	}
	s.Release() // holds nothing: no effect
	other.Release()
	checkIdle(t, p, 1)
}

// TestFairStress: owners acquiring, yielding and giving up at random never hold more than the
// slots, and leave every slot free and no waiter behind.
func TestFairStress(t *testing.T) {
	const slots, workers, rounds = 2, 8, 300
	p := NewFair(slots)
	var holding, most atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				ctx, cancel := context.WithTimeout(owned(uint64(w%3)), time.Duration(r.IntN(300))*time.Microsecond)
				s, err := p.Acquire(ctx)
				if err == nil {
					for range r.IntN(3) {
						n := holding.Add(1)
						for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
						}
						holding.Add(-1)
						if s.Yield(ctx) != nil {
							break
						}
					}
					s.Release()
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if m := most.Load(); m > slots {
		t.Errorf("%d held at once, want at most %d", m, slots)
	}
	checkIdle(t, p, slots)
}

func checkIdle(t *testing.T, p *Fair, slots int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free != slots || len(p.queues) != 0 || p.waiting.Load() != 0 {
		t.Fatalf("idle pool: %d free, %d owners queued, %d waiting; want %d free, none", p.free, len(p.queues), p.waiting.Load(), slots)
	}
}
