// Package workslot is about the places a piece of work holds in bounded pools, and whose work
// it is.
//
// A goroutine that holds a place in a bounded pool of workers (a guard's handlers) gives it
// back before a wait that may be long and needs no worker: a wait for one of the few hash
// slots, or for another's hash of the same file (WithRelease, Release). The pool then goes on
// serving what needs no hash while the waiters wait, instead of being held by them.
//
// A Fair pool (the trust Verifier's hash slots) shares its slots among the owners of the work
// waiting for one — the user a decision is made for (WithOwner) — round robin, one step of
// work at a time: the slot's holder gives it up between two steps when another owner waits
// (Slot.Yield). One user who asks for a thousand hashes then delays another user's hash by
// one step of each, not by the thousand.
//
// Locks: Fair.mu, a leaf (no call out while held; owner functions are called before it is
// taken). The package starts no goroutine.
package workslot

import (
	"context"
	"sync"
	"sync/atomic"
)

type releaseKey struct{}

// WithRelease returns ctx carrying release, which gives the caller's place back. release
// must be safe to call more than once and from any goroutine: only the first call counts.
func WithRelease(ctx context.Context, release func()) context.Context {
	return context.WithValue(ctx, releaseKey{}, release)
}

// Release gives back the place that ctx's WithRelease carries, if any: call it before a wait
// that needs no worker. Once given back, the place is not taken again: the work goes on
// outside the pool's bound (bounded by what it waited for).
func Release(ctx context.Context) {
	if f, ok := ctx.Value(releaseKey{}).(func()); ok {
		f()
	}
}

type ownerKey struct{}

// NoOwner is the owner of work whose ctx names none (WithOwner).
const NoOwner = ^uint64(0)

// WithOwner returns ctx carrying owner, which names the owner of the work done under ctx (a
// guard: the user of the process whose access is decided, its login uid, else its real uid). It is called at most once, and
// only when a Fair pool's slots are contended, so it may read /proc; it must not wait on a
// Fair pool.
func WithOwner(ctx context.Context, owner func() uint64) context.Context {
	return context.WithValue(ctx, ownerKey{}, sync.OnceValue(owner))
}

// ownerOf is the owner ctx names, NoOwner if none.
func ownerOf(ctx context.Context) uint64 {
	if f, ok := ctx.Value(ownerKey{}).(func() uint64); ok {
		return f()
	}
	return NoOwner
}

// Fair is a pool of n slots shared fairly among owners: a slot that comes free goes to the
// first waiter of the next owner in turn (owners take turns in the order they began to wait),
// and Slot.Yield passes a held slot on to another owner that waits. Within one owner, waiters
// are served in the order they came. It is safe for concurrent use.
type Fair struct {
	mu     sync.Mutex
	free   int           // slots no one holds; > 0 only when no one waits
	queues []*ownerQueue // the owners with waiters, in turn order
	turn   int           // the index in queues of the owner served next
	// waiting counts the waiters queued (under mu for writes): Yield's check without mu.
	waiting atomic.Int64
}

type ownerQueue struct {
	owner   uint64
	waiters []*waiter
}

type waiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // under Fair.mu: the slot is the waiter's
}

// NewFair returns a Fair pool of n slots (at least 1).
func NewFair(n int) *Fair {
	return &Fair{free: max(n, 1)}
}

// Slot is a slot held in a Fair pool, for one goroutine. Its zero value holds nothing.
type Slot struct {
	p    *Fair
	held bool
}

// Acquire takes a slot: at once if one is free and no one waits; else, having given the
// caller's worker place back (Release), it waits for its owner's turn, until ctx ends (then
// ctx's error, and no slot).
func (p *Fair) Acquire(ctx context.Context) (Slot, error) {
	p.mu.Lock()
	if p.free > 0 && len(p.queues) == 0 {
		p.free--
		p.mu.Unlock()
		return Slot{p: p, held: true}, nil
	}
	p.mu.Unlock()
	Release(ctx) // a wait that needs no worker: give the caller's place back
	owner := ownerOf(ctx)
	p.mu.Lock()
	if p.free > 0 && len(p.queues) == 0 {
		p.free--
		p.mu.Unlock()
		return Slot{p: p, held: true}, nil
	}
	w := p.enqueueLocked(owner, false)
	p.mu.Unlock()
	if err := p.wait(ctx, w); err != nil {
		return Slot{}, err
	}
	return Slot{p: p, held: true}, nil
}

// Release gives the slot back, to the next owner's first waiter if any waits. Releasing a
// Slot that holds nothing (never acquired, released already, or lost in a Yield) does nothing.
func (s *Slot) Release() {
	if !s.held {
		return
	}
	s.held = false
	s.p.mu.Lock()
	s.p.releaseLocked()
	s.p.mu.Unlock()
}

// Yield, between two steps of the holder's work: when another owner waits, the slot goes to
// the next owner in turn, and the caller waits for its own owner's next turn, first among its
// owner's waiters, having given the caller's worker place back (Release); otherwise it
// returns at once. An error (ctx's: it ended while waiting) means the Slot holds nothing any
// more.
func (s *Slot) Yield(ctx context.Context) error {
	p := s.p
	if !s.held || p.waiting.Load() == 0 {
		return nil
	}
	owner := ownerOf(ctx)
	p.mu.Lock()
	other := false // another owner waits: only then does the caller wait, and give its place back
	for _, q := range p.queues {
		if q.owner != owner {
			other = true
			break
		}
	}
	if !other {
		p.mu.Unlock()
		return nil
	}
	w := p.enqueueLocked(owner, true)
	if p.turn >= len(p.queues) {
		p.turn = 0
	}
	if p.queues[p.turn].owner == owner {
		p.turn = (p.turn + 1) % len(p.queues) // the turn goes to another owner
	}
	p.releaseLocked()
	p.mu.Unlock()
	Release(ctx) // a wait that needs no worker: give the caller's place back
	if err := p.wait(ctx, w); err != nil {
		s.held = false
		return err
	}
	return nil
}

// wait waits for w's grant or ctx's end; at the end, a grant that came meanwhile is passed on.
func (p *Fair) wait(ctx context.Context, w *waiter) error {
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if w.granted {
		p.releaseLocked() // granted as ctx ended: the slot goes on to the next
	} else {
		p.removeLocked(w)
	}
	p.mu.Unlock()
	return ctx.Err()
}

// enqueueLocked queues a waiter of owner: last among its owner's, or first (front); an owner
// with no waiters yet takes its turn after every owner waiting now.
func (p *Fair) enqueueLocked(owner uint64, front bool) *waiter {
	w := &waiter{ready: make(chan struct{})}
	p.waiting.Add(1)
	for _, q := range p.queues {
		if q.owner == owner {
			if front {
				q.waiters = append([]*waiter{w}, q.waiters...)
			} else {
				q.waiters = append(q.waiters, w)
			}
			return w
		}
	}
	q := &ownerQueue{owner: owner, waiters: []*waiter{w}}
	if p.turn >= len(p.queues) {
		p.turn = 0
	}
	// Last in turn order: just before the owner served next (the queue is a ring).
	p.queues = append(p.queues, nil)
	copy(p.queues[p.turn+1:], p.queues[p.turn:])
	p.queues[p.turn] = q
	p.turn++
	if p.turn == len(p.queues) {
		p.turn = 0
	}
	return w
}

// releaseLocked hands a slot that comes free to the first waiter of the owner whose turn it
// is, or frees it.
func (p *Fair) releaseLocked() {
	if len(p.queues) == 0 {
		p.free++
		return
	}
	if p.turn >= len(p.queues) {
		p.turn = 0
	}
	q := p.queues[p.turn]
	w := q.waiters[0]
	q.waiters[0] = nil
	q.waiters = q.waiters[1:]
	if len(q.waiters) == 0 {
		p.dropQueueLocked(p.turn) // the next owner now has this index
	} else {
		p.turn++
	}
	p.waiting.Add(-1)
	w.granted = true
	close(w.ready)
}

// removeLocked takes w, which gave up, out of its queue.
func (p *Fair) removeLocked(w *waiter) {
	for i, q := range p.queues {
		for j, x := range q.waiters {
			if x != w {
				continue
			}
			q.waiters = append(q.waiters[:j], q.waiters[j+1:]...)
			if len(q.waiters) == 0 {
				p.dropQueueLocked(i)
			}
			p.waiting.Add(-1)
			return
		}
	}
}

// dropQueueLocked removes the empty queue at index i, keeping the turn on the same owner (or
// on the one after a dropped one).
func (p *Fair) dropQueueLocked(i int) {
	p.queues = append(p.queues[:i], p.queues[i+1:]...)
	if i < p.turn {
		p.turn--
	}
	if p.turn >= len(p.queues) {
		p.turn = 0
	}
}
