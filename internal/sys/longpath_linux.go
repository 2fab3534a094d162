package sys

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Paths longer than the kernel prints.
//
// readlink(/proc/self/fd/N) — FdPath — fails with ENAMETOOLONG once an object's path is longer
// than PATH_MAX (d_path uses a page-sized buffer), and any user who may create directories
// can make one. Nothing else limits a path's length, so from a directory's descriptor the
// helpers here find what FdPath cannot:
//
//   - WalkUp: the directories above it (their identities), by openat(fd, "..") from level to
//     level;
//   - LongPath: its full path, of any length up to a bound: the path of the nearest ancestor
//     whose path FdPath can print, then the rest read in pieces by FdPath on a thread whose
//     root directory (chroot) is an ancestor, where d_path prints paths relative to it.
//
// Every descriptor they open is O_PATH: opening one causes no fanotify event and never waits
// for a permission listener (this process's own, or another's), so a fanotify reader may call
// them. A non-directory's parent cannot be reached from its descriptor (".." needs a
// directory), so for a file whose path is too long only its own identity is known.

// MaxLongPath bounds the paths LongPath builds (32 KiB, eight times PATH_MAX). Beyond it a
// path is reported unknown: the bound keeps one event's cost and its wire size in check.
const MaxLongPath = 32 << 10

// RESOLVE_* flags of openat2(2) (how.resolve).
const (
	RESOLVE_NO_XDEV       = unix.RESOLVE_NO_XDEV
	RESOLVE_NO_MAGICLINKS = unix.RESOLVE_NO_MAGICLINKS
	RESOLVE_NO_SYMLINKS   = unix.RESOLVE_NO_SYMLINKS
	RESOLVE_BENEATH       = unix.RESOLVE_BENEATH
	RESOLVE_IN_ROOT       = unix.RESOLVE_IN_ROOT
	// RESOLVE_CACHED (5.12) resolves only through the kernel's lookup caches: a path that
	// would need the filesystem (a FUSE or network lookup, a dentry to revalidate, which could
	// block) fails with EAGAIN instead. x/sys/unix lacks it on Linux.
	RESOLVE_CACHED = 0x20
)

// Openat opens path relative to dirfd (openat(2); O_CLOEXEC is always added), retrying on
// EINTR.
func Openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, flags|O_CLOEXEC, mode)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("openat("+objectString(dirfd, path)+")", err)
		}
		return fd, nil
	}
}

// Openat2 opens path relative to dirfd with openat2(2): flags and mode as for open, resolve
// the RESOLVE_* flags. O_CLOEXEC is always added.
func Openat2(dirfd int, path string, flags int, mode uint32, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | O_CLOEXEC), Mode: uint64(mode), Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, path, &how)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("openat2("+objectString(dirfd, path)+", resolve 0x"+
				strconv.FormatUint(resolve, 16)+")", err)
		}
		return fd, nil
	}
}

// OpenParent opens the directory above directory dirfd (openat(dirfd, "..")) as an O_PATH
// descriptor. Above the root of a mount it is the directory the mount sits on (another
// mount); above this process's root directory, that directory again.
func OpenParent(dirfd int) (int, error) {
	return Openat(dirfd, "..", O_PATH|O_DIRECTORY, 0)
}

// WalkUp returns the directory dirfd and the directories above it, nearest first, up to the
// root of its mount (included) or this process's root directory, whichever comes first:
// complete is then true. It reads no path, so it works at any depth. It stops, incomplete,
// after max levels (max ≤ 0: no bound) or at an error (returned with the levels found so
// far); a directory moved meanwhile gives the ancestry of one of its places, as any walk.
//
// The root of a mount need not be the root of its filesystem (a bind mount of a
// subdirectory): the caller compares the last level with the filesystem's root when it needs
// the filesystem's ancestry.
func WalkUp(dirfd int, max int) (levels []Stat, complete bool, err error) {
	st, err := Fstat(dirfd)
	if err != nil {
		return nil, false, err
	}
	if !st.IsDir() {
		return nil, false, os.NewSyscallError("WalkUp(fd "+strconv.Itoa(dirfd)+")", syscall.ENOTDIR)
	}
	levels = append(levels, st)
	cur := dirfd
	defer func() {
		if cur != dirfd {
			Close(cur)
		}
	}()
	for max <= 0 || len(levels) < max {
		if st.MountRoot {
			return levels, true, nil
		}
		up, err := OpenParent(cur)
		if err != nil {
			return levels, false, err
		}
		if cur != dirfd {
			Close(cur)
		}
		cur = up
		pst, err := Fstat(up)
		if err != nil {
			return levels, false, err
		}
		if pst.Dev == st.Dev && pst.Ino == st.Ino {
			return levels, true, nil // ".." of the process's root is itself
		}
		if pst.Dev != st.Dev {
			// Only a mount root's ".." leaves its mount, and we stopped there: the directory
			// was moved across mounts meanwhile (impossible) or the kernel lied. Say so.
			return levels, false, nil
		}
		levels = append(levels, pst)
		st = pst
	}
	return levels, false, nil
}

// LongPath returns the path of directory dirfd even where FdPath fails with ENAMETOOLONG,
// as long as it is at most max bytes (max ≤ 0 or above MaxLongPath: MaxLongPath); beyond, it
// fails with ENAMETOOLONG. Where FdPath works it returns what FdPath does, " (deleted)"
// included.
//
// It walks up with O_PATH descriptors (across mounts, as d_path does) to the nearest ancestor
// whose path FdPath can print, then, on a thread of its own whose root directory it moves from ancestor to ancestor
// (unshare(CLONE_FS) and chroot(2): the rest of the process keeps its root), reads the
// path below in pieces shorter than PATH_MAX. Each piece is checked by opening it from the
// ancestor it is relative to: a directory moved meanwhile makes the call fail (EAGAIN), it
// never yields a path that did not lead to the directory. It needs CAP_SYS_CHROOT for
// paths longer than PATH_MAX.
func LongPath(dirfd int, max int) (string, error) {
	if max <= 0 || max > MaxLongPath {
		max = MaxLongPath
	}
	p, err := FdPath(dirfd)
	if err == nil || !errors.Is(err, syscall.ENAMETOOLONG) {
		if err == nil && len(p) > max {
			return "", os.NewSyscallError("LongPath(fd "+strconv.Itoa(dirfd)+")", syscall.ENAMETOOLONG)
		}
		return p, err
	}
	st, err := Fstat(dirfd)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", os.NewSyscallError("LongPath(fd "+strconv.Itoa(dirfd)+")", syscall.ENOTDIR)
	}
	// fds[i] and sts[i] are the directory i levels up; fds[0] is dirfd (not ours to close).
	fds, sts := []int{dirfd}, []Stat{st}
	defer func() {
		for _, fd := range fds[1:] {
			Close(fd)
		}
	}()
	var prefix string
	// Each level adds at least two bytes ("/" and a name), so a path of max bytes has at
	// most max/2 levels below the ancestor whose path is printed.
	for {
		if len(fds) > max/2+1 {
			return "", os.NewSyscallError("LongPath(fd "+strconv.Itoa(dirfd)+")", syscall.ENAMETOOLONG)
		}
		up, err := OpenParent(fds[len(fds)-1])
		if err != nil {
			return "", err
		}
		fds = append(fds, up)
		ust, err := Fstat(up)
		if err != nil {
			return "", err
		}
		if below := sts[len(sts)-1]; ust.Dev == below.Dev && ust.Ino == below.Ino {
			return "", os.NewSyscallError("LongPath(fd "+strconv.Itoa(dirfd)+")", syscall.ENAMETOOLONG)
		}
		sts = append(sts, ust)
		p, err := FdPath(up)
		if err == nil {
			prefix = p
			break
		}
		if !errors.Is(err, syscall.ENAMETOOLONG) {
			return "", err
		}
	}
	var rel string
	err = onOwnRoot(func(readlink func(fd int) (string, error), chroot func(fd int) error) error {
		cur := len(fds) - 1 // the ancestor the pieces are relative to
		for cur > 0 {
			if err := chroot(fds[cur]); err != nil {
				return err
			}
			// The deepest level whose path below fds[cur] prints: lengths grow with depth,
			// so the levels that print are those above some level; bisect for it, knowing
			// that the level right below fds[cur] (one name) prints.
			next, piece := 0, ""
			p, err := readlink(fds[0])
			switch {
			case err == nil:
				piece = p
			case !errors.Is(err, syscall.ENAMETOOLONG):
				return err
			default:
				lo, hi := 0, cur-1 // level lo does not print, level hi does
				if piece, err = readlink(fds[hi]); err != nil {
					return syscall.EAGAIN // one name too long to print: it moved meanwhile
				}
				for hi-lo > 1 {
					mid := (lo + hi) / 2
					p, err := readlink(fds[mid])
					switch {
					case err == nil:
						hi, piece = mid, p
					case errors.Is(err, syscall.ENAMETOOLONG):
						lo = mid
					default:
						return err
					}
				}
				next = hi
			}
			if len(prefix)+len(rel)+len(piece) > max {
				return syscall.ENAMETOOLONG
			}
			// A piece is relative only if the level is still below fds[cur] (else d_path
			// printed its absolute path): check that it leads there.
			if err := samePlace(fds[cur], piece, sts[next]); err != nil {
				return err
			}
			rel += piece
			cur = next
		}
		return nil
	})
	if err != nil {
		return "", os.NewSyscallError("LongPath(fd "+strconv.Itoa(dirfd)+")", err)
	}
	if prefix == "/" {
		prefix = ""
	}
	return prefix + rel, nil
}

// samePlace checks that piece ("/a/b"), resolved from directory dirfd, is the directory st.
func samePlace(dirfd int, piece string, st Stat) error {
	if len(piece) < 2 || piece[0] != '/' {
		return syscall.EAGAIN
	}
	fd, err := Openat(dirfd, piece[1:], O_PATH|O_DIRECTORY|O_NOFOLLOW, 0)
	if err != nil {
		return syscall.EAGAIN
	}
	got, err := Fstat(fd)
	Close(fd)
	if err != nil || got.Dev != st.Dev || got.Ino != st.Ino {
		return syscall.EAGAIN
	}
	return nil
}

// onOwnRoot runs f on a goroutine locked to a thread that has its own root directory and
// working directory (unshare(CLONE_FS)). f gets readlink, which reads /proc/thread-self/fd/N
// (through a descriptor of /proc opened before any chroot), and chroot, which makes a
// directory descriptor that thread's root. The goroutine never unlocks its thread, so the
// thread ends with it and no other goroutine ever runs with a changed root — except the
// process's first thread, which Go does not end (it wedges it) and whose root is what
// /proc/self/mountinfo, /proc/self/root and others' /proc/PID/root show: so the thread's
// root and working directory are put back before it is let go.
func onOwnRoot(f func(readlink func(fd int) (string, error), chroot func(fd int) error) error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		done <- func() error {
			root, err := Open("/", O_PATH|O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			defer Close(root)
			cwd, err := Open(".", O_PATH|O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			defer Close(cwd)
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return os.NewSyscallError("unshare(CLONE_FS)", err)
			}
			defer func() {
				// Back to where the process is (restoring cannot fail where chroot worked).
				if unix.Fchdir(root) == nil && unix.Chroot(".") == nil {
					unix.Fchdir(cwd)
				}
			}()
			proc, err := Open("/proc", O_PATH|O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			defer Close(proc)
			var buf [unix.PathMax]byte
			readlink := func(fd int) (string, error) {
				n, err := readlinkat(proc, "thread-self/fd/"+strconv.Itoa(fd), buf[:])
				if err != nil {
					return "", err
				}
				if n == len(buf) {
					return "", syscall.ENAMETOOLONG
				}
				return string(buf[:n]), nil
			}
			chroot := func(fd int) error {
				if err := unix.Fchdir(fd); err != nil {
					return os.NewSyscallError("fchdir", err)
				}
				if err := unix.Chroot("."); err != nil {
					return os.NewSyscallError("chroot", err)
				}
				return nil
			}
			return f(readlink, chroot)
		}()
	}()
	return <-done
}

// readlinkat is unix.Readlinkat without its allocation of the path.
func readlinkat(dirfd int, path string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return 0, err
	}
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// PathMax is PATH_MAX: the longest path a system call takes, its NUL included. A path of
// PathMax bytes or more fails with ENAMETOOLONG; ProcFdPath names the object of a descriptor
// with a short one instead.
const PathMax = unix.PathMax

// ProcFdPath is /proc/self/fd/N, a path that names the object of descriptor fd for any system
// call that follows it (a magic link): below a directory's descriptor, "ProcFdPath(fd)/name"
// names its entry name however long the directory's own path is. It is what inotify, which
// has no *at form of inotify_add_watch, is given for a directory deeper than PATH_MAX.
func ProcFdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// Birth returns the birth time (STATX_BTIME) and change time of path relative to dirfd, in
// nanoseconds since the epoch (flags as for Statx). Where the filesystem keeps no birth time
// hasBirth is false and birth is the change time: the latest time at which the object could
// have been created.
func Birth(dirfd int, path string, flags int) (birth, ctime int64, hasBirth bool, err error) {
	var sx unix.Statx_t
	if err := unix.Statx(dirfd, path, flags|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_CTIME|unix.STATX_BTIME, &sx); err != nil {
		return 0, 0, false, os.NewSyscallError("statx("+objectString(dirfd, path)+", STATX_BTIME)", err)
	}
	ctime = sx.Ctime.Sec*1e9 + int64(sx.Ctime.Nsec)
	if sx.Mask&unix.STATX_BTIME == 0 {
		return ctime, ctime, false, nil
	}
	return sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec), ctime, true, nil
}
