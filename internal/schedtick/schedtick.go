// Package schedtick keeps a goroutine that lives in system calls visible to the Go scheduler
// as one that is rescheduled now and then.
//
// Why: a goroutine that loops wait → read → handle on system calls (a kernel reader, locked
// to its OS thread or not) never passes through the scheduler: each system call's exit takes
// its P straight back, so the P's scheduling tick never moves. After 10 ms of that the
// runtime's sysmon thread takes it for a goroutine running too long (runtime.retake,
// forcePreemptNS): it asks for a preemption (a signal when the goroutine is running, which
// for a goroutine locked to its thread means two thread hand-offs), and — because the stale
// tick also skips the check that the system call is a new one — retakes the P every time it
// finds the goroutine in a system call, however short; each retake resets sysmon to polling
// every 20 µs for the next millisecond. On a small VM that is sysmon waking a few thousand
// times a second and a P handed around on every wait (docs/design/performance.md: the
// daemon's FID reader, 12-14% of its CPU in sysmon under bench/fanout.sh's load; a
// permission client's 1.6-2.7 futex and ~1.9 nanosleep per event). One pass through the
// scheduler every few milliseconds (runtime.Gosched: the tick moves) stops it, at the cost of
// a yield — for a goroutine locked to its thread two thread hand-offs — once per period.
//
// A Tick is used by one goroutine; it has no lock.
//
// # Clock
//
// A Tick keeps time on the monotonic clock alone, as a time.Duration since a reading taken
// when the package was initialised (Now): a yield check is then one integer comparison, with
// no time.Time arithmetic (Sub, Add and their monotonic/wall bookkeeping were a visible part
// of the embedded guard's per-event path: docs/design/performance.md, session 14). A caller
// that reads the clock for its own use as well (evloop's loop, the backend's FD group) reads
// Now once and hands the reading to MaybeYieldMono, or turns a time.Time it read into one with
// Mono. Invariant: a reading passed in was taken on this goroutine's clock, Now or Mono of a
// time.Now; the Tick's next yield is due at its last yield plus Every, and a reading earlier
// than that (a later one never is, but a reading stepped back is) does not yield.
package schedtick

import (
	"runtime"
	"time"
)

// DefaultEvery is the period of a Tick whose Every is zero: half of sysmon's forcePreemptNS
// (10 ms), so that the tick moves before sysmon looks twice.
const DefaultEvery = 5 * time.Millisecond

// gosched is runtime.Gosched; tests count the yields through it.
var gosched = runtime.Gosched

// Tick yields its goroutine once per period (MaybeYield).
type Tick struct {
	// Every is the period; zero means DefaultEvery.
	Every time.Duration
	// Yield, if set, is how the goroutine yields instead of runtime.Gosched (evloop: with
	// the goroutine unlocked from its thread for the while).
	Yield func()
	// next is when the next yield is due (Now's clock): the last yield plus Every; zero (a
	// Tick never used) makes the first call yield (Now is positive from the package's
	// initialisation on).
	next time.Duration
}

// origin is Now's zero: a reading of time.Now (its monotonic clock) at initialisation.
var origin = time.Now()

// Now reads the monotonic clock alone (time.Since of a reading with a monotonic clock does
// not read the wall clock), as the time since the package's origin: positive, and never going
// back.
func Now() time.Duration { return time.Since(origin) }

// Mono returns t on Now's clock: t's monotonic reading's distance from the origin (t read by
// time.Now; a t without a monotonic reading is taken by its wall clock).
func Mono(t time.Time) time.Duration { return t.Sub(origin) }

// MaybeYield yields (runtime.Gosched) if the goroutine has not for the period, and reports
// whether it did. Call it on the goroutine's loop, before a blocking call or after a batch.
func (t *Tick) MaybeYield() bool {
	return t.MaybeYieldMono(Now())
}

// MaybeYieldAt is MaybeYield for a caller that has read the clock already (now, a time.Now).
func (t *Tick) MaybeYieldAt(now time.Time) bool {
	return t.MaybeYieldMono(Mono(now))
}

// MaybeYieldMono is MaybeYield for a caller that has read Now already (now): the check is one
// comparison.
func (t *Tick) MaybeYieldMono(now time.Duration) bool {
	if now < t.next {
		return false
	}
	every := t.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t.next = now + every
	if t.Yield != nil {
		t.Yield()
	} else {
		gosched()
	}
	return true
}
