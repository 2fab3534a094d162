//go:build linux

package testenv

import (
	"runtime"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// CountSyscalls returns how many system calls the calling goroutine's thread makes while fn
// runs (fn must not leave its goroutine: it runs locked to the thread), counted by the
// kernel (sys.SyscallCounter: the raw_syscalls:sys_enter tracepoint, for that thread alone):
// a count that does not depend on how busy the machine is, for tests that pin the system
// calls of a path. The counter's own calls are not counted, nor the Go runtime's
// housekeeping (sys.RuntimeSyscalls: a preempted goroutine's rt_sigreturn, which a loaded
// machine gives any loop, the allocator's mmap, a futex), so a path's hand-off to another
// goroutine is not seen here. It skips the test where the tracepoint cannot be opened (no
// tracefs, or no privilege: it needs root or perf_event_paranoid below 2). Leave a little
// room in a bound all the same.
func CountSyscalls(t testing.TB, fn func()) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := sys.OpenSyscallCounter(sys.RuntimeSyscalls)
	if err != nil {
		t.Skipf("system calls cannot be counted here: %v", err)
	}
	defer c.Close()
	base, err := c.Count(func() {})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Count(fn)
	if err != nil {
		t.Fatal(err)
	}
	return n - base
}
