package sys

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PeerGroups returns the supplementary groups of a unix socket's peer as the kernel recorded
// them at connect (getsockopt SO_PEERGROUPS, Linux 4.13): unlike /proc/PID/status, a peer
// cannot change them afterwards, nor lend them to a reused pid.
func PeerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e == unix.ERANGE && int(n) > len(buf)*4 {
			buf = make([]uint32, n/4)
			continue
		}
		if e != 0 {
			return nil, os.NewSyscallError("getsockopt(SO_PEERGROUPS)", syscall.Errno(e))
		}
		return buf[:n/4], nil
	}
}

// MonotonicNanos is CLOCK_MONOTONIC in nanoseconds: comparable across the processes of one
// boot (Go's monotonic clock readings are not).
func MonotonicNanos() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
