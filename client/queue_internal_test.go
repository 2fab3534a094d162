//go:build linux

package client

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/ring"
)

// pumpOnly is a Client with nothing but its queue and pump: deliver and Events, no
// connection.
func pumpOnly(t *testing.T, buffer, queue int) *Client {
	c := &Client{opts: Options{Queue: queue}, q: ring.Ring[Event]{Keep: queueKeep}, events: make(chan Event, buffer), done: make(chan struct{}),
		qwake: make(chan struct{}, 1)}
	c.qidle.Store(true) // as Dial
	c.wg.Add(1)
	go c.pump()
	t.Cleanup(func() { close(c.done); c.wg.Wait() })
	return c
}

// drained reports whether the client holds nothing more for Events: nothing queued, lost or
// held by the pump, and the channel empty.
func drained(c *Client) bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.q.Len() == 0 && c.qheld == 0 && len(c.events) == 0
}

// seqEvent is the i-th event of a test (ID carries i).
func seqEvent(i int) *Event {
	ev := &Event{}
	ev.ID = uint64(i) + 1
	return ev
}

// next receives the next event, failing the test after a bound.
func next(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event on Events within 5 s: the pump was not woken, or an event was lost")
		return Event{}
	}
}

// TestDeliverKeepsOrderAndBound: whatever the channel's buffer and the queue's bound, with
// nobody reading, the client accepts exactly Buffer+Queue events (the channel's buffer,
// then Queue held between the socket and the channel: the bound a consumer derives its
// loss bound from) and drops the rest; Events then gives the buffer's events, then every
// queued one in order with an Overflow among them (one, or more if the pump took one while
// events were still being dropped: then the last comes after the events; the others before
// the events still queued when the drop came; the pump may already hold some), and nothing
// else once the pump is idle. A second burst, read while it is sent,
// comes in order too, with an Overflow for any it dropped: nothing is lost silently.
func TestDeliverKeepsOrderAndBound(t *testing.T) {
	for _, tc := range []struct{ buffer, queue, sent int }{
		{0, 1, 5}, {0, 3, 10}, {1, 1, 4}, {4, 8, 40}, {0, pumpBatch, 3 * pumpBatch},
		{2, pumpBatch + 1, 100}, {16, 3*pumpBatch + 5, 500}, {0, 1000, 1000},
	} {
		t.Run(fmt.Sprintf("buffer%d/queue%d/sent%d", tc.buffer, tc.queue, tc.sent), func(t *testing.T) {
			c := pumpOnly(t, tc.buffer, tc.queue)
			accepted := 0
			for i := 0; i < tc.sent; i++ {
				if c.deliver(seqEvent(i)) {
					if accepted != i {
						t.Fatalf("event %d accepted after event %d was dropped", i, accepted)
					}
					accepted++
				}
			}
			want := min(tc.sent, tc.buffer+tc.queue)
			if accepted != want {
				t.Fatalf("accepted %d of %d events with nobody reading, want Buffer+Queue = %d", accepted, tc.sent, want)
			}
			for i := 0; i < min(accepted, tc.buffer); i++ {
				if ev := next(t, c); ev.Overflow || ev.ID != uint64(i)+1 {
					t.Fatalf("event %d from the channel's buffer: got overflow %v, ID %d", i, ev.Overflow, ev.ID)
				}
			}
			wantOverflows := 0
			if accepted < tc.sent {
				wantOverflows = 1
			}
			overflows := 0
			for i := tc.buffer; i < accepted; {
				ev := next(t, c)
				if ev.Overflow {
					overflows++
					continue
				}
				if ev.ID != uint64(i)+1 {
					t.Fatalf("queued event %d: got ID %d", i, ev.ID)
				}
				i++
			}
			// The rest of the first burst: Overflows only. One may come after the last event
			// (an Overflow goes before the batch the pump takes with it, so events dropped
			// after the pump took its batch — deliver still sending — have theirs after it).
			// Left unread, it would pass for one of the second burst's.
			for deadline := time.Now().Add(5 * time.Second); ; {
				select {
				case ev := <-c.events:
					if !ev.Overflow {
						t.Fatalf("first burst: event ID %d after every accepted one", ev.ID)
					}
					overflows++
					continue
				default:
				}
				if drained(c) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("first burst: the pump still holds events after 5 s")
				}
				time.Sleep(time.Millisecond)
			}
			if (overflows > 0) != (wantOverflows > 0) {
				t.Fatalf("%d Overflows for %d dropped events", overflows, tc.sent-accepted)
			}
			// A second burst, read while it is sent.
			n := 4 * tc.queue
			type got struct {
				ids       []uint64
				overflows int
			}
			res := make(chan got, 1)
			stop := make(chan struct{})
			go func() {
				var g got
				for {
					select {
					case ev := <-c.events:
						if ev.Overflow {
							g.overflows++
						} else {
							g.ids = append(g.ids, ev.ID)
						}
					case <-stop:
						res <- g
						return
					}
				}
			}()
			var kept []uint64
			for i := 0; i < n; i++ {
				ev := seqEvent(tc.sent + i)
				if c.deliver(ev) {
					kept = append(kept, ev.ID)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				if drained(c) || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond) // the last receive
			close(stop)
			g := <-res
			if fmt.Sprint(g.ids) != fmt.Sprint(kept) {
				t.Fatalf("second burst: received %d events, accepted %d, or out of order", len(g.ids), len(kept))
			}
			if (len(kept) < n) != (g.overflows > 0) {
				t.Fatalf("second burst: %d of %d dropped, %d Overflows", n-len(kept), n, g.overflows)
			}
		})
	}
}

// TestPumpWakesForEveryQueuedEvent: deliver wakes the pump only when the queue goes from
// empty (and nothing lost) to not; each event here is queued while the pump sleeps (an
// unbuffered channel nobody waits on) and must still come out.
func TestPumpWakesForEveryQueuedEvent(t *testing.T) {
	c := pumpOnly(t, 0, 16)
	for i := 0; i < 50; i++ {
		if !c.deliver(seqEvent(i)) {
			t.Fatalf("event %d dropped with an empty queue", i)
		}
		if i%5 == 0 {
			time.Sleep(time.Millisecond) // the pump takes it, blocks on the send
		}
		if ev := next(t, c); ev.ID != uint64(i)+1 {
			t.Fatalf("event %d: got ID %d", i, ev.ID)
		}
		if i%3 == 0 {
			time.Sleep(time.Millisecond) // the pump finds the queue empty and sleeps
		}
	}
}

// TestQueueKeepsBufferForLikeBursts: a consumer that falls behind Events by a like amount at
// every flush costs the client no allocation per burst once its queue has grown (the queue
// had been a slice dropped when emptied and regrown at each burst: a third of bench/fanout's
// clients' CPU in growslice, the collector and page faults). And the memory is given back
// after ring.ShrinkAfter bursts of a quarter of it or less.
func TestQueueKeepsBufferForLikeBursts(t *testing.T) {
	c := pumpOnly(t, 4, 16384)
	burst := func(n int) {
		for i := 0; i < n; i++ {
			c.deliver(seqEvent(i))
		}
		for i := 0; i < n; i++ {
			if ev := <-c.events; ev.Overflow {
				t.Fatal("overflow")
			}
		}
		// Until the pump has handed everything over and found the queue empty.
		for {
			c.qmu.Lock()
			idle := c.q.Len() == 0 && c.qheld == 0
			c.qmu.Unlock()
			if idle {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	burst(2000) // grows the queue (and the pump's batch)
	if allocs := testing.AllocsPerRun(10, func() { burst(2000) }); allocs > 1 {
		t.Errorf("%.0f allocations per burst of 2000 events, want none once grown", allocs)
	}
	c.qmu.Lock()
	grown := c.q.Cap()
	c.qmu.Unlock()
	if grown < 2000 {
		t.Fatalf("queue buffer of %d slots after bursts of 2000", grown)
	}
	for i := 0; i < ring.ShrinkAfter; i++ {
		burst(grown/4 - 4) // the channel's 4 slots take the rest
	}
	c.qmu.Lock()
	after := c.q.Cap()
	c.qmu.Unlock()
	if after >= grown {
		t.Errorf("queue buffer of %d slots kept after %d bursts of a quarter of it or less", after, ring.ShrinkAfter)
	}
}

// TestQueueBoundExactWhileTheApplicationIsSlow: while the application reads slowly, the
// client holds up to Queue events besides the channel's buffer, however the pump's batch
// was split between the channel and the wait: each event the application reads makes room
// for one more. (The pump counts its batch as held until it waits with some of it not yet
// handed over; it then counts exactly those.)
func TestQueueBoundExactWhileTheApplicationIsSlow(t *testing.T) {
	const buffer, queue = 8, 20
	c := pumpOnly(t, buffer, queue)
	id := 0
	deliverN := func(n int) int {
		ok := 0
		for i := 0; i < n; i++ {
			if c.deliver(seqEvent(id)) {
				ok++
			}
			id++
		}
		return ok
	}
	settle := func() { // until the channel is full and the pump waits on it
		deadline := time.Now().Add(5 * time.Second)
		for len(c.events) < buffer && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := deliverN(buffer + queue); got != buffer+queue {
		t.Fatalf("accepted %d of the first %d", got, buffer+queue)
	}
	want := 0
	for round, read := range []int{4, 1, 7, 3} {
		settle()
		for i := 0; i < read; i++ {
			ev := next(t, c)
			if ev.Overflow || ev.ID != uint64(want)+1 {
				t.Fatalf("round %d: got overflow %v ID %d, want event %d", round, ev.Overflow, ev.ID, want)
			}
			want++
		}
		settle()
		if got := deliverN(read); got != read {
			t.Fatalf("round %d: after the application read %d, the client took %d more, want %d", round, read, got, read)
		}
	}
	// Not each round: a drop queues an Overflow, which counts as held until handed over.
	settle()
	if deliverN(1) != 0 {
		t.Fatal("the client took one more than Buffer+Queue")
	}
}

// TestNoDirectHandOverPastThePumpsBatch: an event delivered while the pump is between two
// hand-overs of its batch (the queue empty, the channel with room) goes after the batch's
// remaining events, not straight into the channel ahead of them.
func TestNoDirectHandOverPastThePumpsBatch(t *testing.T) {
	const buffer, queued = 64, 10
	c := pumpOnly(t, buffer, 1000)
	id := 0
	for ; id < buffer+queued; id++ { // the channel's buffer, then the pump's batch
		if !c.deliver(seqEvent(id)) {
			t.Fatalf("event %d dropped", id)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.qmu.Lock()
		taken := c.q.Len() == 0 && c.qheld > 0
		c.qmu.Unlock()
		if taken || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	var injected atomic.Int64
	hook := func() {
		if injected.Load() < queued {
			c.deliver(seqEvent(buffer + queued + int(injected.Add(1)) - 1))
		}
	}
	pumpHandHook.Store(&hook)
	defer pumpHandHook.Store(nil)
	for i := 0; i < buffer+2*queued; i++ {
		ev := next(t, c)
		if ev.Overflow || ev.ID != uint64(i)+1 {
			t.Fatalf("event %d: got overflow %v, ID %d (%d delivered while the pump held its batch)", i, ev.Overflow, ev.ID, injected.Load())
		}
		if i == buffer+queued-1 && injected.Load() == 0 {
			t.Fatal("the hook never ran: the pump's batch was not split")
		}
	}
}

// TestIdleHandOverTakesNoQueueLock: while nothing is queued, lost or held by the pump (qidle),
// deliver hands an event with room in Events straight over without qmu (it returns while
// another goroutine holds qmu); once an event is queued (Events full), the next deliver
// goes through qmu (it waits for it), so it cannot pass the queued event; once the pump
// has handed that over and found the queue empty, the direct way is open again.
func TestIdleHandOverTakesNoQueueLock(t *testing.T) {
	c := pumpOnly(t, 1, 8)
	// deliverHolding delivers event i while this goroutine holds qmu, and reports whether
	// deliver returned within wait (then it took no qmu); it releases qmu after wait.
	deliverHolding := func(i int, wait time.Duration) (returned bool) {
		c.qmu.Lock()
		done := make(chan bool, 1)
		go func() { done <- c.deliver(seqEvent(i)) }()
		select {
		case ok := <-done:
			c.qmu.Unlock()
			if !ok {
				t.Fatalf("event %d dropped", i)
			}
			return true
		case <-time.After(wait):
			c.qmu.Unlock()
			if !<-done {
				t.Fatalf("event %d dropped", i)
			}
			return false
		}
	}
	if !deliverHolding(0, 5*time.Second) { // a bound for a loaded machine: it returns at once
		t.Fatal("event 0: deliver waited for qmu with nothing queued, lost or held")
	}
	if !c.deliver(seqEvent(1)) { // Events (buffer 1) is full: queued
		t.Fatal("event 1 dropped")
	}
	if deliverHolding(2, 200*time.Millisecond) {
		t.Fatal("event 2: deliver did not take qmu with an event queued")
	}
	for i := 0; i < 3; i++ {
		if ev := next(t, c); ev.ID != uint64(i)+1 || ev.Overflow {
			t.Fatalf("event %d: got ID %d overflow %v", i, ev.ID, ev.Overflow)
		}
	}
	idle := func() bool { return c.qidle.Load() }
	for end := time.Now().Add(5 * time.Second); !idle() && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if !deliverHolding(3, 5*time.Second) {
		t.Fatal("event 3: deliver waited for qmu after the pump emptied the queue")
	}
	if ev := next(t, c); ev.ID != 4 {
		t.Fatalf("event 3: got ID %d", ev.ID)
	}
}

// TestOverflowInThePlaceOfTheDrop: the Overflow of a run of drops comes after every event
// read before the first dropped one and before every event read after the last (a consumer
// rescans at the marker and misses nothing: what came before it is complete, what comes after
// is new), one per run, however long; a second run after room was made gets its own.
func TestOverflowInThePlaceOfTheDrop(t *testing.T) {
	for _, tc := range []struct{ buffer, queue int }{{0, 1}, {0, 3}, {2, 5}, {0, pumpBatch + 3}} {
		t.Run(fmt.Sprintf("buffer%d/queue%d", tc.buffer, tc.queue), func(t *testing.T) {
			c := pumpOnly(t, tc.buffer, tc.queue)
			id := 0
			send := func(n int) (accepted []int) {
				for range n {
					if c.deliver(seqEvent(id)) {
						accepted = append(accepted, id)
					}
					id++
				}
				return accepted
			}
			// readAll reads until the client holds nothing more: "e<ID>" or "O" per event.
			readAll := func() []string {
				var got []string
				for deadline := time.Now().Add(5 * time.Second); ; {
					select {
					case ev := <-c.events:
						if ev.Overflow {
							got = append(got, "O")
						} else {
							got = append(got, fmt.Sprint("e", ev.ID-1))
						}
						continue
					default:
					}
					if drained(c) {
						return got
					}
					if time.Now().After(deadline) {
						t.Fatal("the pump still holds events after 5 s")
					}
					time.Sleep(time.Millisecond)
				}
			}
			want := func(accepted []int, overflow bool) []string {
				var w []string
				for _, i := range accepted {
					w = append(w, fmt.Sprint("e", i))
				}
				if overflow {
					w = append(w, "O")
				}
				return w
			}
			first := send(tc.buffer + tc.queue + 50) // nobody reads: 50 dropped
			if got, w := readAll(), want(first, true); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("first burst: got %v, want %v (the Overflow after the last accepted event)", got, w)
			}
			second := send(tc.buffer + tc.queue) // fits: no Overflow
			if got, w := readAll(), want(second, false); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("second burst: got %v, want %v", got, w)
			}
			third := send(tc.buffer + tc.queue + 1)
			c.deliver(&Event{Overflow: true}) // the daemon's own, in the same run: still one
			if got, w := readAll(), want(third, true); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("third burst: got %v, want %v", got, w)
			}
		})
	}
}
