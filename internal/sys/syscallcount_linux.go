package sys

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SyscallCounter counts the system calls of the thread that opened it, in the kernel
// (perf_event_open(2) of the raw_syscalls:sys_enter tracepoint, for that thread alone): for
// tests that pin the system calls of a path (testenv.CountSyscalls). The caller must keep
// its goroutine locked to the thread (runtime.LockOSThread) from Open to Close.
type SyscallCounter struct{ fd int }

// RuntimeSyscalls are the system calls of the Go runtime's housekeeping — signals (a
// preempted goroutine's rt_sigreturn), the scheduler's (futex, sched_yield, nanosleep) and
// the allocator's (mmap, munmap, madvise) — which a counter may leave out: a loaded machine
// gives any loop some of them.
var RuntimeSyscalls = []int{
	unix.SYS_RT_SIGRETURN, unix.SYS_RT_SIGPROCMASK, unix.SYS_SIGALTSTACK, unix.SYS_TGKILL, unix.SYS_GETPID,
	unix.SYS_GETTID, unix.SYS_FUTEX, unix.SYS_SCHED_YIELD, unix.SYS_NANOSLEEP, unix.SYS_MMAP,
	unix.SYS_MUNMAP, unix.SYS_MADVISE,
}

// ErrNoSyscallTracepoint says the raw_syscalls:sys_enter tracepoint is not there (no tracefs).
var ErrNoSyscallTracepoint = errors.New("no tracefs raw_syscalls:sys_enter tracepoint")

// OpenSyscallCounter opens a counter of the calling thread's system calls, leaving out those
// numbered in exclude (a tracepoint filter). It needs tracefs and root (or
// perf_event_paranoid below 2).
func OpenSyscallCounter(exclude []int) (*SyscallCounter, error) {
	id := -1
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		b, err := os.ReadFile(dir + "/events/raw_syscalls/sys_enter/id")
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			id = n
			break
		}
	}
	if id < 0 {
		return nil, ErrNoSyscallTracepoint
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: uint64(id), Bits: unix.PerfBitDisabled}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("perf_event_open(raw_syscalls:sys_enter)", err)
	}
	if len(exclude) > 0 {
		var filter strings.Builder
		for i, nr := range exclude {
			if i > 0 {
				filter.WriteString(" && ")
			}
			filter.WriteString("id != " + strconv.Itoa(nr))
		}
		f := append([]byte(filter.String()), 0)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_SET_FILTER, uintptr(unsafe.Pointer(&f[0]))); e != 0 {
			unix.Close(fd)
			return nil, os.NewSyscallError("ioctl(PERF_EVENT_IOC_SET_FILTER, "+filter.String()+")", e)
		}
	}
	return &SyscallCounter{fd: fd}, nil
}

// Count returns how many system calls the thread made while fn ran, plus one: the call that
// stops the counter is counted (its entry comes first; the one that starts it entered before
// it was on). Subtract what Count of an empty function gives.
func (c *SyscallCounter) Count(fn func()) (int, error) {
	if err := unix.IoctlSetInt(c.fd, unix.PERF_EVENT_IOC_RESET, 0); err != nil {
		return 0, os.NewSyscallError("ioctl(PERF_EVENT_IOC_RESET)", err)
	}
	if err := unix.IoctlSetInt(c.fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return 0, os.NewSyscallError("ioctl(PERF_EVENT_IOC_ENABLE)", err)
	}
	fn()
	if err := unix.IoctlSetInt(c.fd, unix.PERF_EVENT_IOC_DISABLE, 0); err != nil {
		return 0, os.NewSyscallError("ioctl(PERF_EVENT_IOC_DISABLE)", err)
	}
	var buf [8]byte
	if n, err := unix.Read(c.fd, buf[:]); err != nil || n != len(buf) {
		if err == nil {
			err = errors.New("short read")
		}
		return 0, os.NewSyscallError("read(perf counter)", err)
	}
	return int(binary.NativeEndian.Uint64(buf[:])), nil
}

// Close closes the counter.
func (c *SyscallCounter) Close() error { return unix.Close(c.fd) }
