package proto

import (
	"runtime"
	"time"
)

// schedTick keeps a goroutine that lives in blocking system calls visible to the Go
// scheduler as one that is scheduled now and then.
//
// Why: a goroutine that loops read → handle → read on blocking system calls never passes
// through the scheduler (each syscall's exit takes its P straight back), so its P's
// scheduling tick never moves. Sysmon takes that for a goroutine running for over 10 ms and,
// finding it in a system call, retakes the P (runtime.retake); with nothing else to run the
// P goes idle, every P is then idle, and sysmon goes to sleep on a futex. The next system
// call's exit finds no P of its own, takes the idle one and wakes sysmon (a futex wake, and
// sysmon's own futex wait and 20 µs sleeps after it); that P's tick is just as stale, so it is
// retaken again during the next wait. Measured (strace -f -c, bench/syscalls.sh) on a
// permission client of the daemon: 1.6-2.7 futex and ~1.9 nanosleep per event, on a machine
// where a system call costs ~1.1 µs. One yield every yieldEvery (a pass through the
// scheduler: schedtick moves) stops it at the cost of a wake-up of an idle thread once per
// yieldEvery.
type schedTick struct{ last time.Time }

// yieldEvery is half of sysmon's forcePreemptNS (10 ms).
const yieldEvery = 5 * time.Millisecond

// maybeYield yields if the goroutine has not for yieldEvery. Call it before a blocking call.
func (t *schedTick) maybeYield() {
	now := time.Now()
	if now.Sub(t.last) < yieldEvery {
		return
	}
	t.last = now
	runtime.Gosched()
}
