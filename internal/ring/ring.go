// Package ring is the growable FIFO of the engine's group queues and of the client library's
// queue for Events: a ring buffer whose buffer survives the queue emptying.
//
// A reader that falls behind does so in bursts of a like size (a daemon client's group at
// every flush; a client application behind its Events channel at every daemon flush). A queue
// that gave its buffer back each time it emptied allocated and regrew it (and faulted its
// pages in) for every burst: with 10 clients that regrowth was 85% of the bytes the daemon
// allocated, and a third of bench/fanout's clients' CPU (docs/design/performance.md, sessions
// 10 and 11). Invariant: an emptied buffer of more than Keep entries is given back only after
// ShrinkAfter bursts in a row that each used a quarter of it or less, so the memory kept is
// bounded by a recent burst's.
//
// A Ring is not safe for concurrent use: its owner guards it.
package ring

// ShrinkAfter is how many bursts in a row must each use a quarter of an emptied ring's
// buffer or less before it is given back.
const ShrinkAfter = 8

// DefaultKeep is Keep's value when it is 0.
const DefaultKeep = 1024

// Ring is a growable FIFO. Its entries also have absolute positions, counted from the first
// push (Abs, Live, End): a position stays the entry's until it is popped. The zero Ring is
// empty and ready to use.
type Ring[T any] struct {
	// Keep: an emptied buffer of Keep entries or fewer is always kept (0: DefaultKeep).
	Keep int

	buf        []T // len is 0 or a power of two
	head, size int
	peak       int    // the largest size since the ring was last empty
	small      int    // bursts in a row that used a quarter of buf or less
	popped     uint64 // how many entries were popped: the absolute position of the head
}

// Len is the number of entries.
func (r *Ring[T]) Len() int { return r.size }

// Cap is the size of the buffer (0 when it was given back).
func (r *Ring[T]) Cap() int { return len(r.buf) }

// At is the i-th entry from the head.
func (r *Ring[T]) At(i int) T { return *r.Ptr(i) }

// Ptr is the i-th entry from the head, in place.
func (r *Ring[T]) Ptr(i int) *T { return &r.buf[(r.head+i)&(len(r.buf)-1)] }

// End is the absolute position the next push takes.
func (r *Ring[T]) End() uint64 { return r.popped + uint64(r.size) }

// Live reports whether absolute position p holds an entry (pushed and not popped).
func (r *Ring[T]) Live(p uint64) bool { return p >= r.popped && p < r.End() }

// Abs is the entry at absolute position p, in place; p must be live.
func (r *Ring[T]) Abs(p uint64) *T { return r.Ptr(int(p - r.popped)) }

// Push appends v, growing the buffer when it is full.
func (r *Ring[T]) Push(v T) { *r.tail() = v }

// PushFrom appends *v: for a large T, one copy (from *v into the buffer) where Push's
// argument is a second.
func (r *Ring[T]) PushFrom(v *T) { *r.tail() = *v }

// tail makes room for one more entry and returns its slot.
func (r *Ring[T]) tail() *T {
	if r.size == len(r.buf) {
		n := make([]T, max(8, 2*len(r.buf)))
		for i := 0; i < r.size; i++ {
			n[i] = r.At(i)
		}
		r.buf, r.head = n, 0
	}
	p := &r.buf[(r.head+r.size)&(len(r.buf)-1)]
	r.size++
	r.peak = max(r.peak, r.size)
	return p
}

// Pop removes and returns the head entry; the ring must not be empty. Its slot is cleared
// (nothing stays referenced from the buffer).
func (r *Ring[T]) Pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.size--
	r.popped++
	if r.size == 0 {
		r.emptied()
	}
	return v
}

// PopInto moves up to len(dst) entries from the head into dst, clearing their slots, and
// returns how many it moved.
func (r *Ring[T]) PopInto(dst []T) int {
	var zero T
	n := min(len(dst), r.size)
	for i := 0; i < n; i++ {
		dst[i] = r.buf[r.head]
		r.buf[r.head] = zero
		r.head = (r.head + 1) & (len(r.buf) - 1)
	}
	r.size -= n
	r.popped += uint64(n)
	if n > 0 && r.size == 0 {
		r.emptied()
	}
	return n
}

// Drain calls f on every entry, in order, and empties the ring, giving back its buffer (Keep
// stays).
func (r *Ring[T]) Drain(f func(*T)) {
	for i := 0; i < r.size; i++ {
		f(r.Ptr(i))
	}
	*r = Ring[T]{Keep: r.Keep, popped: r.popped + uint64(r.size)}
}

// emptied applies the buffer's keep-or-give-back rule at the end of a burst.
func (r *Ring[T]) emptied() {
	keep := r.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	r.small++
	if len(r.buf) <= keep || r.peak*4 > len(r.buf) {
		r.small = 0
	} else if r.small >= ShrinkAfter {
		r.buf, r.head, r.small = nil, 0, 0 // give back earlier, larger bursts' memory
	}
	r.peak = 0
}
