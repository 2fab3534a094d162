//go:build linux

package backend

import (
	"testing"
	"time"
)

// batchClock's times (one monotonic read each, on a full reading at most wallEvery old) are
// the time of their call: between time.Now's before and after it, on the wall clock and on the
// monotonic one, and never going back; and it takes a full reading again once wallEvery has
// passed (after a pause, and within a run of calls), not more often.
func TestBatchClock(t *testing.T) {
	var c batchClock
	var last time.Time
	check := func(i int) {
		before := time.Now()
		got := c.now()
		after := time.Now()
		// Round(0) strips the monotonic reading: compare the wall clocks too.
		if got.Before(before) || got.After(after) {
			t.Fatalf("call %d: monotonic %v not within [%v, %v]", i, got, before, after)
		}
		const slack = 100 * time.Microsecond // slewing over wallEvery is at most 4 µs
		if w := got.Round(0); w.Before(before.Round(0).Add(-slack)) || w.After(after.Round(0).Add(slack)) {
			t.Fatalf("call %d: wall %v not within [%v, %v]", i, w, before.Round(0), after.Round(0))
		}
		if got.Before(last) {
			t.Fatalf("call %d: %v before the previous %v", i, got, last)
		}
		last = got
	}
	start := time.Now()
	for i := 0; time.Since(start) < 5*wallEvery; i++ {
		check(i)
	}
	// In 5 wallEvery of back-to-back calls: a full reading about every wallEvery.
	if c.reads < 3 || c.reads > 7 {
		t.Errorf("%d full readings in %v of calls, want 3-7 (one per %v)", c.reads, 5*wallEvery, wallEvery)
	}
	reads := c.reads
	time.Sleep(wallEvery + time.Millisecond)
	check(-1)
	if c.reads != reads+1 {
		t.Errorf("after a pause of more than %v: %d full readings, want 1", wallEvery, c.reads-reads)
	}
	check(-2)
	if c.reads != reads+1 {
		t.Errorf("a call right after a full reading read in full again")
	}
}
