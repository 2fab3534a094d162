//go:build linux

package client

// evQueue is the client's queue of events for Events (under qmu): a ring whose buffer
// survives the queue emptying. A reader that falls behind its Events channel does so in
// bursts of a like size, one per daemon flush; a slice popped from the front and dropped
// when empty was allocated and regrown (and its pages faulted in) at every burst:
// growslice, the garbage collector and page faults were a third of bench/fanout's clients'
// CPU (docs/design/performance.md, session 11). Invariant: an emptied buffer of more than
// keepSlots entries is given back only after shrinkAfter bursts in a row that each used a
// quarter of it or less, so the memory kept is bounded by a recent burst's (and by Queue).
type evQueue struct {
	buf        []Event // len is 0 or a power of two
	head, size int
	peak       int // the largest size since the queue was last empty
	small      int // bursts in a row that used a quarter of buf or less
}

const (
	keepSlots   = 256 // a buffer this small is always kept
	shrinkAfter = 8
)

func (q *evQueue) len() int { return q.size }

// push appends ev, growing the buffer when it is full.
func (q *evQueue) push(ev *Event) {
	if q.size == len(q.buf) {
		n := make([]Event, max(16, 2*len(q.buf)))
		for i := 0; i < q.size; i++ {
			n[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = n, 0
	}
	q.buf[(q.head+q.size)&(len(q.buf)-1)] = *ev
	q.size++
	q.peak = max(q.peak, q.size)
}

// popInto moves up to len(dst) events from the head into dst, clearing their slots (no
// descriptor or string stays referenced from the buffer), and returns how many it moved.
func (q *evQueue) popInto(dst []Event) int {
	n := min(len(dst), q.size)
	for i := 0; i < n; i++ {
		dst[i] = q.buf[q.head]
		q.buf[q.head] = Event{}
		q.head = (q.head + 1) & (len(q.buf) - 1)
	}
	q.size -= n
	if n > 0 && q.size == 0 {
		q.emptied()
	}
	return n
}

// emptied applies the buffer's keep-or-give-back rule at the end of a burst.
func (q *evQueue) emptied() {
	q.small++
	if len(q.buf) <= keepSlots || q.peak*4 > len(q.buf) {
		q.small = 0
	} else if q.small >= shrinkAfter {
		q.buf, q.head, q.small = nil, 0, 0
	}
	q.peak = 0
}

// drain calls f on every queued event, in order, and empties the queue, giving back its
// buffer (the client is closing).
func (q *evQueue) drain(f func(*Event)) {
	for i := 0; i < q.size; i++ {
		f(&q.buf[(q.head+i)&(len(q.buf)-1)])
	}
	*q = evQueue{}
}
