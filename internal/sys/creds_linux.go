package sys

import (
	"errors"
	"os"
	"runtime"
	"strconv"

	"unsafe"

	"golang.org/x/sys/unix"
)

// Access modes for AccessAs (access(2)).
const (
	R_OK = unix.R_OK
	W_OK = unix.W_OK
	X_OK = unix.X_OK
)

// AccessAs reports whether a process with the given user, group and supplementary groups may
// access the object fd refers to with mode (R_OK ...), as the kernel decides it (permission
// bits, ACLs, LSMs), without opening it: the daemon checks that a client could read what it
// asks to watch, so that it never acts as a confused deputy.
//
// It switches one locked OS thread's filesystem credentials (setfsuid, setfsgid, setgroups —
// per-thread system calls, unlike Go's syscall.Setuid), which also drops that thread's
// filesystem capabilities, calls faccessat2 with AT_EACCESS on /proc/self/fd/N, and switches
// back. If the credentials cannot be restored the thread is left locked, so that the runtime
// retires it with the goroutine rather than reuse it.
func AccessAs(fd int, uid, gid uint32, groups []uint32, mode uint32) (bool, error) {
	ok, err := accessAs("/proc/self/fd/"+strconv.Itoa(fd), uid, gid, groups, mode)
	if err == ErrGone {
		err = nil // the descriptor's object is what is asked about, not a path to it
	}
	return ok, err
}

// AccessPathAs is AccessAs for a path, resolved with those credentials too: every directory
// on the way must be searchable by them. The daemon uses it to decide whether a client may
// learn the names in a directory (the paths come from the kernel, not from the client).
//
// It returns ErrGone when the path does not exist (ENOENT, ENOTDIR): the lookup checks
// search permission on each directory before it looks up the next name, so the directories
// above the missing one are searchable with those credentials, and the missing one is gone
// (what it allowed is not known any more).
func AccessPathAs(path string, uid, gid uint32, groups []uint32, mode uint32) (bool, error) {
	return accessAs(path, uid, gid, groups, mode)
}

// ErrGone: AccessPathAs's path does not exist.
var ErrGone = errors.New("no such file or directory")

func accessAs(path string, uid, gid uint32, groups []uint32, mode uint32) (bool, error) {
	runtime.LockOSThread()
	restored := false
	defer func() {
		if restored {
			runtime.UnlockOSThread()
		}
	}()
	oldGroups, err := unix.Getgroups()
	if err != nil {
		restored = true
		return false, os.NewSyscallError("getgroups", err)
	}
	gids := make([]int, len(groups))
	for i, g := range groups {
		gids[i] = int(g)
	}
	// Raw setgroups: Go's unix.Setgroups would apply to every thread of the process.
	if err := rawSetgroups(gids); err != nil {
		restored = true
		return false, os.NewSyscallError("setgroups", err)
	}
	prevGid, _ := unix.SetfsgidRetGid(int(gid))
	prevUid, _ := unix.SetfsuidRetUid(int(uid))
	aerr := unix.Faccessat2(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
	unix.SetfsuidRetUid(prevUid)
	unix.SetfsgidRetGid(prevGid)
	if rawSetgroups(oldGroups) == nil {
		uidNow, _ := unix.SetfsuidRetUid(-1) // -1 queries
		gidNow, _ := unix.SetfsgidRetGid(-1)
		restored = uidNow == prevUid && gidNow == prevGid
	}
	switch aerr {
	case nil:
		return true, nil
	case unix.EACCES, unix.EPERM:
		return false, nil // not reachable by them: nothing they may see
	case unix.ENOENT, unix.ENOTDIR:
		return false, ErrGone
	}
	return false, os.NewSyscallError("faccessat2", aerr)
}

func rawSetgroups(gids []int) error {
	if len(gids) == 0 {
		_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}
	a := make([]uint32, len(gids))
	for i, g := range gids {
		a[i] = uint32(g)
	}
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(a)), uintptr(unsafePointer(&a[0])), 0)
	if e != 0 {
		return e
	}
	return nil
}

func unsafePointer(p *uint32) unsafe.Pointer { return unsafe.Pointer(p) }
