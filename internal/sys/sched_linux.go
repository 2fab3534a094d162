package sys

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// The fair policies (uapi linux/sched.h), whose sched_runtime is the slice.
const (
	schedOther = 0
	schedBatch = 3
)

// SetSlice asks the scheduler for a time slice of d for thread tid (0: the calling thread),
// keeping its policy (SCHED_OTHER) and nice value: sched_setattr(2) with sched_runtime, which
// since Linux 6.12 sets the EEVDF request size of a fair task (clamped by the kernel to
// 0.1-100 ms; 0 restores the default, sysctl base_slice). A task with a shorter slice gets an
// earlier deadline: woken, it preempts a task with a longer slice (a busy loop) at once rather
// than at the end of that task's slice, and a thread it wakes does not preempt it. No extra
// CPU is asked for. Earlier kernels ignore sched_runtime for SCHED_OTHER: nil, no effect. A
// thread under another policy (chosen by an administrator: real-time, or SCHED_DEADLINE, whose
// sched_runtime means something else) is left as it is: nil.
func SetSlice(tid int, d time.Duration) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr(%d): %w", tid, err)
	}
	if attr.Policy != schedOther && attr.Policy != schedBatch {
		return nil
	}
	attr.Runtime = uint64(d.Nanoseconds())
	attr.Flags = 0
	if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
		return fmt.Errorf("sched_setattr(%d, runtime %v): %w", tid, d, err)
	}
	return nil
}

// Slice returns thread tid's time slice (sched_getattr's sched_runtime; 0: the calling thread).
func Slice(tid int) (time.Duration, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, fmt.Errorf("sched_getattr(%d): %w", tid, err)
	}
	return time.Duration(attr.Runtime), nil
}

// ThreadCPUTime returns the calling thread's CPU time, user and system
// (CLOCK_THREAD_CPUTIME_ID): 0 if the clock cannot be read. For benchmarks of a loop locked
// to its thread, which time spent waiting for a CPU must not move.
func ThreadCPUTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
