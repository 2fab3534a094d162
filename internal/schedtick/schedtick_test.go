package schedtick

import (
	"testing"
	"time"
)

// TestMaybeYieldOncePerPeriod: the first call yields, calls within the period do not, the
// first call a period later does, and Every overrides the default period.
func TestMaybeYieldOncePerPeriod(t *testing.T) {
	n := 0
	orig := gosched
	gosched = func() { n++ }
	defer func() { gosched = orig }()
	t0 := time.Now() // a monotonic reading, as the callers' (Mono)
	for _, tc := range []struct {
		every time.Duration
		steps []time.Duration // offsets from t0 of successive calls
		want  []bool
	}{
		{0, []time.Duration{0, time.Millisecond, DefaultEvery - 1, DefaultEvery, DefaultEvery + 1, 2 * DefaultEvery}, []bool{true, false, false, true, false, true}},
		{8 * time.Millisecond, []time.Duration{0, 5 * time.Millisecond, 8*time.Millisecond - 1, 8 * time.Millisecond}, []bool{true, false, false, true}},
		// A clock that steps back (another goroutine's reading passed in) does not yield.
		{0, []time.Duration{10 * time.Millisecond, 9 * time.Millisecond}, []bool{true, false}},
	} {
		tick := Tick{Every: tc.every}
		n = 0
		yields := 0
		for i, d := range tc.steps {
			var got bool
			if i%2 == 0 { // both entry points, alternately, on one Tick
				got = tick.MaybeYieldAt(t0.Add(d))
			} else {
				got = tick.MaybeYieldMono(Mono(t0) + d)
			}
			if got != tc.want[i] {
				t.Errorf("Every %v, call %d at +%v: yielded %v, want %v", tc.every, i, d, got, tc.want[i])
			}
			if got {
				yields++
			}
		}
		if n != yields {
			t.Errorf("Every %v: runtime.Gosched called %d times, MaybeYieldAt reported %d", tc.every, n, yields)
		}
	}
}

// TestMaybeYieldReal: with the real clock and runtime.Gosched, back-to-back calls yield once.
func TestMaybeYieldReal(t *testing.T) {
	var tick Tick
	if !tick.MaybeYield() {
		t.Fatal("first MaybeYield did not yield")
	}
	if tick.MaybeYield() {
		t.Fatal("a second MaybeYield right after the first yielded")
	}
}
