package sys

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// inotify_init1 flags; their values differ between architectures.
const (
	IN_CLOEXEC  = unix.IN_CLOEXEC
	IN_NONBLOCK = unix.IN_NONBLOCK
)

// InotifyInit creates an inotify instance (inotify_init1(2)); flags may hold IN_NONBLOCK. It
// always adds IN_CLOEXEC, like FanotifyInit.
func InotifyInit(flags int) (fd int, err error) {
	flags |= IN_CLOEXEC
	fd, err = unix.InotifyInit1(flags)
	if err != nil {
		return -1, os.NewSyscallError("inotify_init1(0x"+strconv.FormatUint(uint64(flags), 16)+")", err)
	}
	return fd, nil
}

// InotifyAddWatch adds or modifies the watch of path (inotify_add_watch(2)) and returns its
// watch descriptor; one inode has one watch per instance, so a hard link returns the same wd.
func InotifyAddWatch(fd int, path string, mask uint32) (wd int, err error) {
	wd, err = unix.InotifyAddWatch(fd, path, mask)
	if err != nil {
		return -1, os.NewSyscallError("inotify_add_watch("+path+", "+InotifyMaskString(mask)+")", err)
	}
	return wd, nil
}

// InotifyRmWatch removes watch wd (inotify_rm_watch(2)); the kernel queues IN_IGNORED for it.
// EINVAL means wd is not a watch of fd (for example already removed with IN_IGNORED).
func InotifyRmWatch(fd int, wd int) error {
	if _, err := unix.InotifyRmWatch(fd, uint32(wd)); err != nil {
		return os.NewSyscallError("inotify_rm_watch(wd "+strconv.Itoa(wd)+")", err)
	}
	return nil
}
