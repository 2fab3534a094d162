package sys

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// mount(2), umount2(2) and unshare(2) flags.
const (
	MS_RDONLY  = unix.MS_RDONLY
	MS_NOSUID  = unix.MS_NOSUID
	MS_NODEV   = unix.MS_NODEV
	MS_NOEXEC  = unix.MS_NOEXEC
	MS_REMOUNT = unix.MS_REMOUNT
	MS_BIND    = unix.MS_BIND
	MS_REC     = unix.MS_REC
	MS_PRIVATE = unix.MS_PRIVATE
	MS_SHARED  = unix.MS_SHARED
	MS_SLAVE   = unix.MS_SLAVE

	MNT_FORCE       = unix.MNT_FORCE
	MNT_DETACH      = unix.MNT_DETACH
	UMOUNT_NOFOLLOW = unix.UMOUNT_NOFOLLOW

	CLONE_NEWNS   = unix.CLONE_NEWNS
	CLONE_NEWUSER = unix.CLONE_NEWUSER

	PIDFD_NONBLOCK = unix.PIDFD_NONBLOCK
)

// Getpid returns the process id.
func Getpid() int { return unix.Getpid() }

// Gettid returns the calling thread's id (what FAN_REPORT_TID reports).
func Gettid() int { return unix.Gettid() }

// Geteuid returns the effective user id.
func Geteuid() int { return unix.Geteuid() }

// PidfdOpen returns a pidfd for process pid (pidfd_open(2), 5.3); pidfds are always
// close-on-exec.
func PidfdOpen(pid int, flags int) (int, error) {
	fd, err := unix.PidfdOpen(pid, flags)
	if err != nil {
		return -1, os.NewSyscallError("pidfd_open("+strconv.Itoa(pid)+")", err)
	}
	return fd, nil
}

// PidfdPid returns the pid of the process pidfd refers to, from the "Pid:" line of
// /proc/self/fdinfo/N: -1 once the process has exited (and been reaped), 0 when it is outside
// this pid namespace.
func PidfdPid(pidfd int) (int, error) {
	path := "/proc/self/fdinfo/" + strconv.Itoa(pidfd)
	fd, err := Open(path, O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var buf [1024]byte // fdinfo of a pidfd is a few lines
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("read("+path+")", err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	data := buf[:n]
	const key = "\nPid:"
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, os.NewSyscallError("read("+path+"): no Pid line, not a pidfd", syscall.EINVAL)
	}
	line := data[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	if err != nil {
		return 0, os.NewSyscallError("read("+path+"): bad Pid line", syscall.EINVAL)
	}
	return pid, nil
}

// Mount is mount(2).
func Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return os.NewSyscallError("mount("+source+", "+target+", "+fstype+", 0x"+
			strconv.FormatUint(uint64(flags), 16)+", "+strconv.Quote(data)+")", err)
	}
	return nil
}

// Unmount is umount2(2); flags: MNT_DETACH, MNT_FORCE, UMOUNT_NOFOLLOW.
func Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil {
		return os.NewSyscallError("umount2("+target+", 0x"+strconv.FormatUint(uint64(flags), 16)+")", err)
	}
	return nil
}

// Unshare is unshare(2). It changes the calling thread only: call it from a goroutine that has
// called runtime.LockOSThread and never unlocks, so that the thread exits with the goroutine
// instead of returning to the Go scheduler in another namespace.
func Unshare(flags int) error {
	if err := unix.Unshare(flags); err != nil {
		return os.NewSyscallError("unshare(0x"+strconv.FormatUint(uint64(flags), 16)+")", err)
	}
	return nil
}

// memfdCreate creates an anonymous private file (memfd_create(2), close-on-exec). The probes
// mark it: nobody else can reach its inode, so a mark on it can never block anybody.
func memfdCreate(name string) (int, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("memfd_create("+name+")", err)
	}
	return fd, nil
}

// PidfdAlive reports whether the process pidfd refers to still holds its pid: it is running
// or a zombie not yet reaped (pidfd_send_signal with signal 0, 5.1). Once the process is
// reaped its pid may be given to another process, and this returns false for good.
func PidfdAlive(pidfd int) bool {
	return unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil
}
