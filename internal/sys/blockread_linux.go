package sys

import (
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The runtime's entry to a system call known to block, and its exit (runtime/proc.go: both
// are kept for linkname by the runtime, "Do not remove or change the type signature").
//
//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()

// ReadWaiting is Read for a read that is expected to wait for a long time (a descriptor read
// in blocking mode while events are sparse): the calling goroutine gives up its P when the
// call starts (entersyscallblock), instead of holding it until the runtime's sysmon thread
// takes it back after 10 ms of a system call that has not returned. That take-back wakes
// sysmon up from its deep sleep each time the call returns, and sysmon then polls every
// 20 µs for a millisecond or more: under a sparse event stream (an exec every few ms) that is
// more CPU per event than the event's own work (docs/design/performance.md). With the P given
// up at once, the runtime is idle while the call waits and nothing is taken back. The cost is
// a P taken from the idle list when the call returns, which Read's fast path saves: use Read
// when the call is expected to find something queued.
func ReadWaiting(fd int, p []byte) (int, error) {
	for {
		var ptr unsafe.Pointer
		if len(p) > 0 {
			ptr = unsafe.Pointer(&p[0])
		}
		n, errno := readBlock(uintptr(fd), ptr, uintptr(len(p)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, os.NewSyscallError("read(fd "+strconv.Itoa(fd)+")", errno)
		}
		return int(n), nil
	}
}

// readBlock is read(2) between entersyscallblock and exitsyscall: nosplit, since the stack must
// not move while the goroutine is marked as in a system call.
//
//go:nosplit
//go:norace
func readBlock(fd uintptr, p unsafe.Pointer, n uintptr) (uintptr, syscall.Errno) {
	entersyscallblock()
	r, _, errno := syscall.RawSyscall(unix.SYS_READ, fd, uintptr(p), n)
	exitsyscall()
	return r, errno
}
