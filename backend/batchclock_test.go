//go:build linux

package backend

import (
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
)

// batchClock's times (one monotonic read each, on a full reading at most wallEvery old) are
// the time of their call: between time.Now's before and after it, on the wall clock and on the
// monotonic one, and never going back; and a call takes a full reading exactly when the last
// one is wallEvery old: checked call by call against the times around it, so that a test
// goroutine descheduled for a while (a loaded CI machine) changes which calls read, not
// whether the rule held.
func TestBatchClock(t *testing.T) {
	var c batchClock
	var last, lastFull time.Time
	check := func(i int) {
		reads := c.reads
		before := time.Now()
		got, mono := c.now()
		after := time.Now()
		// Round(0) strips the monotonic reading: compare the wall clocks too.
		if got.Before(before) || got.After(after) {
			t.Fatalf("call %d: monotonic %v not within [%v, %v]", i, got, before, after)
		}
		const slack = 100 * time.Microsecond // slewing over wallEvery is at most 4 µs
		if w := got.Round(0); w.Before(before.Round(0).Add(-slack)) || w.After(after.Round(0).Add(slack)) {
			t.Fatalf("call %d: wall %v not within [%v, %v]", i, w, before.Round(0), after.Round(0))
		}
		if m := schedtick.Mono(got); m != mono {
			t.Fatalf("call %d: time %v is %v on schedtick's clock, but the reading returned says %v", i, got, m, mono)
		}
		if got.Before(last) {
			t.Fatalf("call %d: %v before the previous %v", i, got, last)
		}
		last = got
		switch full := c.reads - reads; {
		case full > 1:
			t.Fatalf("call %d: %d full readings", i, full)
		case full == 1 && !lastFull.IsZero() && after.Sub(lastFull) < wallEvery:
			t.Fatalf("call %d: a full reading %v after the last, under %v", i, after.Sub(lastFull), wallEvery)
		case full == 0 && (lastFull.IsZero() || before.Sub(lastFull) >= wallEvery):
			t.Fatalf("call %d: no full reading %v after the last (at most %v)", i, before.Sub(lastFull), wallEvery)
		case full == 1:
			lastFull = got
		}
	}
	// Back-to-back calls until four full readings (about 3 wallEvery), each call checked.
	start := time.Now()
	for i := 0; c.reads < 4; i++ {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%d full readings in 10s of calls", c.reads)
		}
		check(i)
	}
	reads := c.reads
	time.Sleep(wallEvery + time.Millisecond)
	check(-1)
	if c.reads != reads+1 {
		t.Errorf("after a pause of more than %v: %d full readings, want 1", wallEvery, c.reads-reads)
	}
}
