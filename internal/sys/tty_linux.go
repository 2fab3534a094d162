package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// BytesQueued returns how many bytes wait to be read on fd (FIONREAD: a pipe's, a socket's,
// a terminal's input queue).
func BytesQueued(fd int) (int, error) {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD's number on every architecture
	if err != nil {
		return 0, os.NewSyscallError("ioctl(FIONREAD)", err)
	}
	return n, nil
}

// UnlockPty unlocks the pseudo-terminal whose master is fd (a descriptor of /dev/ptmx) and
// returns its number N: its slave is /dev/pts/N (what unlockpt and ptsname do).
func UnlockPty(fd int) (int, error) {
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return 0, os.NewSyscallError("ioctl(TIOCSPTLCK)", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return 0, os.NewSyscallError("ioctl(TIOCGPTN)", err)
	}
	return n, nil
}
