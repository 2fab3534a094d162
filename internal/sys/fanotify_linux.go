package sys

import (
	"errors"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// open(2) flags, for fanotify_init's event_f_flags and OpenByHandleAt. Their values differ
// between architectures, hence untyped constants taken from x/sys/unix.
const (
	O_RDONLY    = unix.O_RDONLY
	O_WRONLY    = unix.O_WRONLY
	O_RDWR      = unix.O_RDWR
	O_CLOEXEC   = unix.O_CLOEXEC
	O_NONBLOCK  = unix.O_NONBLOCK
	O_LARGEFILE = unix.O_LARGEFILE
	O_NOATIME   = unix.O_NOATIME
	O_PATH      = unix.O_PATH
	O_DIRECTORY = unix.O_DIRECTORY
	O_NOFOLLOW  = unix.O_NOFOLLOW
	O_CREAT     = unix.O_CREAT
	O_EXCL      = unix.O_EXCL
)

// FanotifyInit creates a fanotify group (fanotify_init(2)) and returns its fd. flags are FAN_*
// init flags (class, FAN_REPORT_*, FAN_NONBLOCK ...); eventFFlags are the open(2) flags of the
// event fds (O_RDONLY, O_LARGEFILE ...).
//
// It always adds FAN_CLOEXEC and O_CLOEXEC: a group fd inherited by a child keeps the group
// alive after the parent closes it, and a child that then touches a marked file waits for an
// answer nobody will give (kernel-facts §4).
func FanotifyInit(flags, eventFFlags uint) (fd int, err error) {
	flags |= FAN_CLOEXEC
	eventFFlags |= O_CLOEXEC
	fd, err = unix.FanotifyInit(flags, eventFFlags)
	if err != nil {
		return -1, os.NewSyscallError("fanotify_init("+InitFlagsString(flags)+", 0x"+
			strconv.FormatUint(uint64(eventFFlags), 16)+")", err)
	}
	return fd, nil
}

// FanotifyMark adds, removes or flushes a mark (fanotify_mark(2)) of group fd. The object is
// path resolved relative to dirfd (AT_FDCWD for the working directory), or with path == "" the
// file dirfd refers to (the kernel gets a NULL pathname). The error names the flags, mask and
// object: "fanotify_mark(ADD|FILESYSTEM, OPEN_PERM, /mnt/x): operation not permitted".
func FanotifyMark(fd int, flags uint, mask uint64, dirfd int, path string) error {
	// unix.FanotifyMark passes a NULL pathname for "", which is what we document.
	if err := unix.FanotifyMark(fd, flags, mask, dirfd, path); err != nil {
		return os.NewSyscallError("fanotify_mark("+MarkFlagsString(flags)+", "+EventMaskString(mask)+
			", "+objectString(dirfd, path)+")", err)
	}
	return nil
}

// objectString names the file a *at call refers to, for error messages.
func objectString(dirfd int, path string) string {
	switch {
	case path == "":
		return "fd " + strconv.Itoa(dirfd)
	case dirfd == unix.AT_FDCWD || path[0] == '/':
		return path
	default:
		return "fd " + strconv.Itoa(dirfd) + "/" + path
	}
}

// WriteResponse answers the permission event whose event fd is eventFd with response
// (FAN_ALLOW, FAN_DENY, FAN_DENY_ERRNO(e), optionally |FAN_AUDIT), writing one struct
// fanotify_response: the kernel processes one response per write. It does not allocate on
// success. ENOENT means no pending permission event has that fd (already answered, or not a
// permission event); EINVAL means a response the group may not give.
//
// The caller still owns eventFd and closes it after answering.
func WriteResponse(fd int, eventFd int32, response uint32) error {
	r := fanotifyResponse{Fd: eventFd, Response: response}
	for {
		// A raw write(2): unix.Write's race-detector hooks would move r to the heap.
		n, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&r)), uintptr(sizeofFanotifyResponse))
		if e == unix.EINTR {
			continue
		}
		var err error
		switch {
		case e != 0:
			err = e
		case int(n) != sizeofFanotifyResponse:
			err = errors.New("short write of " + strconv.Itoa(int(n)) + " bytes")
		default:
			return nil
		}
		return os.NewSyscallError("write(fanotify response fd "+strconv.Itoa(int(eventFd))+", "+
			ResponseString(response)+")", err)
	}
}

// ResponseString formats a response: "ALLOW", "DENY", "DENY(EIO)", "ALLOW|AUDIT".
func ResponseString(response uint32) string {
	var s string
	switch response & (FAN_ALLOW | FAN_DENY) {
	case FAN_ALLOW:
		s = "ALLOW"
	case FAN_DENY:
		s = "DENY"
		if e := ResponseErrno(response); e != 0 {
			s += "(" + unix.ErrnoName(e) + ")"
		}
	default:
		s = "0x" + strconv.FormatUint(uint64(response), 16)
		return s
	}
	if response&FAN_AUDIT != 0 {
		s += "|AUDIT"
	}
	if response&FAN_INFO != 0 {
		s += "|INFO"
	}
	return s
}

// Read reads from fd (a fanotify group, an inotify instance), retrying on EINTR. A buffer too
// small for the next event fails with EINVAL; an empty non-blocking queue with EAGAIN.
func Read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("read(fd "+strconv.Itoa(fd)+")", err)
		}
		return n, nil
	}
}
