package sys

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// *at(2) flags and file type bits.
const (
	AT_FDCWD            = unix.AT_FDCWD
	AT_EMPTY_PATH       = unix.AT_EMPTY_PATH
	AT_SYMLINK_NOFOLLOW = unix.AT_SYMLINK_NOFOLLOW
	AT_SYMLINK_FOLLOW   = unix.AT_SYMLINK_FOLLOW
	// AT_STATX_DONT_SYNC makes statx report the attributes the kernel has cached, never asking
	// the filesystem (a FUSE daemon or an NFS server, which could take forever).
	AT_STATX_DONT_SYNC = unix.AT_STATX_DONT_SYNC

	// name_to_handle_at flags (include/uapi/linux/fcntl.h; x/sys/unix lacks them).
	AT_HANDLE_FID           = 0x200 // 6.5: a handle for identification only, maybe not decodable
	AT_HANDLE_MNT_ID_UNIQUE = 0x001 // 6.12: report the unique 64-bit mount id
	AT_HANDLE_CONNECTABLE   = 0x002 // 6.13: a handle open_by_handle_at can reconnect to a path

	S_IFMT   = unix.S_IFMT
	S_IFDIR  = unix.S_IFDIR
	S_IFREG  = unix.S_IFREG
	S_IFLNK  = unix.S_IFLNK
	S_IFCHR  = unix.S_IFCHR
	S_IFBLK  = unix.S_IFBLK
	S_IFIFO  = unix.S_IFIFO
	S_IFSOCK = unix.S_IFSOCK
)

// NameToHandleAt returns the file handle of path relative to dirfd (name_to_handle_at(2);
// AT_EMPTY_PATH with path "" for dirfd itself) and the mount id: the unique 64-bit one when
// flags has AT_HANDLE_MNT_ID_UNIQUE, the reusable 32-bit one otherwise. The handle equals the
// one fanotify reports in fid records for the same object. The handle's Bytes is a fresh copy.
func NameToHandleAt(dirfd int, path string, flags int) (h FileHandle, mountID uint64, err error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return FileHandle{}, 0, os.NewSyscallError("name_to_handle_at("+objectString(dirfd, path)+")", err)
	}
	var buf [sizeofFileHandle + MAX_HANDLE_SZ]byte
	ne.PutUint32(buf[:], MAX_HANDLE_SZ)
	// The kernel writes an int, or a u64 with AT_HANDLE_MNT_ID_UNIQUE; mnt has room for both.
	var mnt uint64
	_, _, e := unix.Syscall6(unix.SYS_NAME_TO_HANDLE_AT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&mnt)), uintptr(flags), 0)
	if e != 0 {
		return FileHandle{}, 0, os.NewSyscallError("name_to_handle_at("+objectString(dirfd, path)+
			", 0x"+strconv.FormatUint(uint64(flags), 16)+")", e)
	}
	if flags&AT_HANDLE_MNT_ID_UNIQUE != 0 {
		mountID = mnt
	} else {
		// An int in the first 4 bytes, whatever the byte order.
		mountID = uint64(uint32(*(*int32)(unsafe.Pointer(&mnt))))
	}
	n := ne.Uint32(buf[:])
	if n > MAX_HANDLE_SZ {
		return FileHandle{}, 0, os.NewSyscallError("name_to_handle_at("+objectString(dirfd, path)+")",
			syscall.EOVERFLOW)
	}
	h.Type = int32(ne.Uint32(buf[offHandleType:]))
	h.Bytes = bytes.Clone(buf[sizeofFileHandle : sizeofFileHandle+int(n)])
	return h, mountID, nil
}

// OpenByHandleAt opens the object of handle h (open_by_handle_at(2)). mountFd is any open fd
// on the filesystem the handle belongs to (for a fid record: one whose Fstatfs fsid matches),
// but not an O_PATH one (the kernel answers EBADF).
// flags are open flags; O_CLOEXEC is always added. It needs CAP_DAC_READ_SEARCH. ESTALE means
// the object no longer exists.
func OpenByHandleAt(mountFd int, h FileHandle, flags int) (fd int, err error) {
	if len(h.Bytes) > MAX_HANDLE_SZ {
		return -1, os.NewSyscallError("open_by_handle_at("+h.String()+")", syscall.EINVAL)
	}
	var buf [sizeofFileHandle + MAX_HANDLE_SZ]byte
	ne.PutUint32(buf[:], uint32(len(h.Bytes)))
	ne.PutUint32(buf[offHandleType:], uint32(h.Type))
	copy(buf[sizeofFileHandle:], h.Bytes)
	for {
		r, _, e := unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, uintptr(mountFd),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(flags|O_CLOEXEC))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, os.NewSyscallError("open_by_handle_at(fd "+strconv.Itoa(mountFd)+", "+h.String()+")", e)
		}
		return int(r), nil
	}
}

// Stat is what fsnotifyd needs from statx(2).
type Stat struct {
	Dev   uint64 // device of the filesystem (st_dev), unix.Mkdev(major, minor)
	Ino   uint64
	Mode  uint32 // file type (S_IF*) and permission bits
	Nlink uint32
	Uid   uint32
	Gid   uint32
	Size  uint64
	Rdev  uint64
	// MntID is the mount's id: with MntIDUnique the 64-bit id that is never reused
	// (STATX_MNT_ID_UNIQUE, 6.8+, as in fanotify mnt records and AT_HANDLE_MNT_ID_UNIQUE),
	// otherwise the reusable id of /proc/self/mountinfo (STATX_MNT_ID).
	MntID       uint64
	MntIDUnique bool
	// MountRoot: the object is the root of its mount (STATX_ATTR_MOUNT_ROOT, 5.8).
	MountRoot bool
	// Ctime is the inode's change time in nanoseconds since the epoch: rename, link, unlink,
	// chmod and writes all move it, so an unchanged Ctime means the inode kept its names.
	Ctime int64
	// Mtime is the content's modification time in nanoseconds since the epoch.
	Mtime int64
}

// IsDir reports whether st is a directory.
func (st *Stat) IsDir() bool { return st.Mode&S_IFMT == S_IFDIR }

// Statx stats path relative to dirfd (flags: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH). It asks for
// STATX_MNT_ID_UNIQUE; a kernel that does not know it ignores the bit and reports STATX_MNT_ID,
// so one call gives the best mount id available (see Stat.MntIDUnique).
func Statx(dirfd int, path string, flags int) (Stat, error) {
	var sx unix.Statx_t
	var err error
	if path == "" {
		err = statxEmptyPath(dirfd, flags|unix.AT_STATX_SYNC_AS_STAT,
			unix.STATX_BASIC_STATS|unix.STATX_MNT_ID_UNIQUE, &sx, false)
	} else {
		err = statxPath(dirfd, path, flags|unix.AT_STATX_SYNC_AS_STAT,
			unix.STATX_BASIC_STATS|unix.STATX_MNT_ID_UNIQUE, &sx)
	}
	if err != nil {
		return Stat{}, os.NewSyscallError("statx("+objectString(dirfd, path)+")", err)
	}
	var st Stat
	statFrom(&sx, &st)
	return st, nil
}

// statxPath is unix.Statx with a path shorter than shortPath passed from a buffer on the
// stack instead of a copy on the heap (unix.BytePtrFromString): the guard checks the path of
// every exec and open it decides by path with one (backend's eventPath), and the allocation
// was one of the two of that check (BenchmarkEventPath). A path with a NUL byte is EINVAL, as
// there.
func statxPath(dirfd int, path string, flags, mask int, sx *unix.Statx_t) error {
	if len(path) >= shortPath {
		return unix.Statx(dirfd, path, flags, mask, sx)
	}
	if strings.IndexByte(path, 0) >= 0 {
		return unix.EINVAL
	}
	var buf [shortPath]byte
	copy(buf[:], path) // and the NUL after it: buf is zeroed
	for {
		_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&buf[0])),
			uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(sx)), 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// shortPath bounds the paths statxPath passes from the stack (with their NUL).
const shortPath = 256

// FstatTo is Fstat into *st, every field of which it writes (all zero on an error). For a
// hot path: Fstat's 80-byte result is copied from the callee's narrow stores with 16-byte
// loads, which stall store forwarding, five per call. With raw, the statx is a raw system
// call: without the runtime's entersyscall and exitsyscall around it (four locked
// instructions, about 60 ns here), so the goroutine keeps its P while the kernel works and a
// stop-the-world waits until the call returns. Raw only for a descriptor on a filesystem
// where the call cannot wait for another process or the network (RawSafeFs).
func FstatTo(fd int, st *Stat, raw bool) error {
	var sx unix.Statx_t
	if err := statxEmptyPath(fd, AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_BASIC_STATS|unix.STATX_MNT_ID_UNIQUE, &sx, raw); err != nil {
		*st = Stat{}
		return os.NewSyscallError("statx("+objectString(fd, "")+")", err)
	}
	statFrom(&sx, st)
	return nil
}

// CloseRaw is Close made as a raw system call (see FstatTo), for a read-only descriptor on
// a filesystem where closing it cannot wait for another process or the network (RawSafeFs).
func CloseRaw(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return os.NewSyscallError("close(fd "+strconv.Itoa(fd)+")", e)
	}
	return nil
}

// Filesystem types (statfs f_type) RawSafeFs knows.
const (
	TMPFS_MAGIC       = 0x01021994
	EXT4_SUPER_MAGIC  = 0xef53 // ext2, ext3 and ext4
	XFS_SUPER_MAGIC   = 0x58465342
	BTRFS_SUPER_MAGIC = 0x9123683e
	// OVERLAYFS_SUPER_MAGIC: overlayfs, whose files are its layers' files.
	OVERLAYFS_SUPER_MAGIC = 0x794c7630
	// FUSE_SUPER_MAGIC: fuse and fuseblk, whose operations — and the kernel's on their
	// behalf, fanotify_mark's statfs included — wait for a user-space server.
	FUSE_SUPER_MAGIC = 0x65735546
)

// RawSafeFs reports whether, on a filesystem of type fsType (statfs f_type), statx(2) of an
// open file and close(2) of a read-only descriptor to it wait for nothing but the CPU and local
// I/O, so that FstatTo (raw) and CloseRaw may make them: tmpfs, ext2/3/4, xfs and btrfs, whose
// getattr reads the inode in memory (the descriptor pins it) and which have no flush for a
// read-only file; a last close that frees an unlinked file truncates it in the caller, which
// waits for the local disk. Not FUSE (its flush on every close, and getattr, wait for the
// server), NFS, CIFS, 9p, ceph (the network), overlayfs (the layer below, which may be any of
// these), nor any type not listed.
func RawSafeFs(fsType int64) bool {
	switch fsType {
	case TMPFS_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC:
		return true
	}
	return false
}

// Filesystem types (statfs f_type) WritesSeen knows besides RawSafeFs's.
const (
	SQUASHFS_MAGIC       = 0x73717368
	EROFS_SUPER_MAGIC_V1 = 0xe0f5e1e2
)

// WritesSeen reports whether, on a filesystem of type fsType (statfs f_type), every change of
// a file's content can be seen by a reader of its descriptor: either the change moves the
// file's ctime — every write(2), and the first write through each new shared writable
// mapping (its page_mkwrite calls file_update_time) — or, for a write through a mapping to a
// page it has already dirtied, which moves nothing, OpenForWrite says the file is open for
// writing while the mapping lasts. tmpfs, ext2/3/4, xfs and btrfs; and squashfs and erofs,
// which the kernel cannot write at all. Not ramfs (a write through a mapping never moves its
// times), nor overlayfs (a mapping maps the upper layer's file, and once the writer's
// descriptor is closed the overlay inode is not open for writing: OpenForWrite cannot see
// it), nor FUSE, NFS or other network filesystems (the server's clock and rules), nor any
// type not listed. trust's TestHostileDirtyMappedPage tries tmpfs, ext4, ramfs and overlayfs.
func WritesSeen(fsType int64) bool {
	switch fsType {
	case TMPFS_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, SQUASHFS_MAGIC, EROFS_SUPER_MAGIC_V1:
		return true
	}
	return false
}

// DeviceWritesSeen reports whether the blocks under a filesystem on device dev (a stat's
// st_dev) change only through that filesystem, so that WritesSeen's argument holds there too:
// false when dev, or a device it is built on (device-mapper's slaves, a partition's disk), is
// a loop device whose backing file anyone but root may write (not root's, or group- or
// other-writable, or gone, or not the file its path names now: its user writes the image,
// and a file in it changes with no time moved and no event), or a network or user-space
// block device (nbd, ublk: another machine or process serves its blocks), or cannot be
// looked at. A device with major 0 (tmpfs, btrfs's anonymous devices) has no block device
// to look at: true (a btrfs on a loop device is not seen through).
func DeviceWritesSeen(dev uint64) bool {
	if unix.Major(dev) == 0 {
		return true
	}
	return blockWritesSeen("/sys/dev/block/"+strconv.FormatUint(uint64(unix.Major(dev)), 10)+":"+
		strconv.FormatUint(uint64(unix.Minor(dev)), 10), 8)
}

// blockWritesSeen is DeviceWritesSeen for the device whose sysfs directory is dir, looking at
// most depth devices down.
func blockWritesSeen(dir string, depth int) bool {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil || depth == 0 {
		return false
	}
	name := filepath.Base(real)
	if strings.HasPrefix(name, "nbd") || strings.HasPrefix(name, "ublkb") {
		return false
	}
	for _, d := range []string{real, filepath.Dir(real)} { // a partition's loop is its disk's
		if _, err := os.Stat(filepath.Join(d, "loop")); err == nil {
			return loopBackingRootOnly(d)
		}
	}
	slaves, err := os.ReadDir(filepath.Join(real, "slaves"))
	if err != nil && !os.IsNotExist(err) {
		return false
	}
	for _, sl := range slaves {
		if !blockWritesSeen(filepath.Join(real, "slaves", sl.Name()), depth-1) {
			return false
		}
	}
	return true
}

// loopBackingRootOnly reports whether the loop device whose sysfs directory is dir reads a
// backing file that root alone may write: root's, not group- or other-writable, and the very
// file (device, inode) the device holds, by LOOP_GET_STATUS64 on /dev/NAME.
func loopBackingRootOnly(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "loop", "backing_file"))
	if err != nil {
		return false
	}
	path := strings.TrimSuffix(string(b), "\n")
	var st unix.Stat_t
	if strings.HasSuffix(path, " (deleted)") || unix.Stat(path, &st) != nil ||
		st.Uid != 0 || st.Mode&0o022 != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	fd, err := unix.Open("/dev/"+filepath.Base(dir), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	return err == nil && info.Device == st.Dev && info.Inode == st.Ino
}

// statFrom writes every field of st from sx, one by one (a literal assigned through the
// pointer would be built in a temporary and copied).
func statFrom(sx *unix.Statx_t, st *Stat) {
	st.Dev = unix.Mkdev(sx.Dev_major, sx.Dev_minor)
	st.Ino = sx.Ino
	st.Mode = uint32(sx.Mode)
	st.Nlink = sx.Nlink
	st.Uid = sx.Uid
	st.Gid = sx.Gid
	st.Size = sx.Size
	st.Rdev = unix.Mkdev(sx.Rdev_major, sx.Rdev_minor)
	st.MntID, st.MntIDUnique = 0, false
	switch {
	case sx.Mask&unix.STATX_MNT_ID_UNIQUE != 0:
		st.MntID, st.MntIDUnique = sx.Mnt_id, true
	case sx.Mask&unix.STATX_MNT_ID != 0:
		st.MntID = sx.Mnt_id
	}
	st.MountRoot = sx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 &&
		sx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	st.Ctime = sx.Ctime.Sec*1e9 + int64(sx.Ctime.Nsec)
	st.Mtime = sx.Mtime.Sec*1e9 + int64(sx.Mtime.Nsec)
}

// emptyPath is the "" statxEmptyPath passes: unix.Statx copies its path to the heap on
// every call, one allocation per event for Fstat of an event's descriptor.
var emptyPath = [1]byte{0}

// statxNoNull is set once a statx with a NULL path and AT_EMPTY_PATH failed with EFAULT: a
// kernel older than 6.11, which takes no NULL path; statxEmptyPath then passes "".
var statxNoNull atomic.Bool

// statxEmptyPath is statx(2) of dirfd with the path "" (flags should hold AT_EMPTY_PATH);
// with raw, a raw system call (see FstatTo). With AT_EMPTY_PATH the path is NULL, which
// Linux 6.11+ takes for "" without reading it from user memory (getname: about 15 ns of a
// permission event's statx here); an older kernel's EFAULT turns that off for good.
func statxEmptyPath(dirfd int, flags int, mask int, sx *unix.Statx_t, raw bool) error {
	null := flags&AT_EMPTY_PATH != 0 && !statxNoNull.Load()
	for {
		// emptyPath is a global (it never moves); sx is converted in the calls' argument
		// lists, where the compiler keeps it alive and in place.
		a2 := uintptr(unsafe.Pointer(&emptyPath[0]))
		if null {
			a2 = 0
		}
		var e syscall.Errno
		if raw {
			_, _, e = unix.RawSyscall6(unix.SYS_STATX, uintptr(dirfd), a2, uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(sx)), 0)
		} else {
			_, _, e = unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), a2, uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(sx)), 0)
		}
		switch {
		case e == 0:
			return nil
		case e == unix.EINTR:
			continue
		case e == unix.EFAULT && null:
			// sx is the caller's: only the NULL path can be at fault.
			statxNoNull.Store(true)
			null = false
			continue
		}
		return e
	}
}

// Fstat is Statx of the open file fd itself (AT_EMPTY_PATH).
func Fstat(fd int) (Stat, error) { return Statx(fd, "", AT_EMPTY_PATH) }

// FsStat is what fsnotifyd needs from statfs(2).
type FsStat struct {
	Type  int64 // magic number: TMPFS_MAGIC 0x01021994, EXT4_SUPER_MAGIC 0xef53 ...
	Fsid  Fsid  // the fsid fanotify fid records carry
	Flags int64 // ST_* mount flags
}

// Fstatfs returns the statfs of the filesystem fd is on.
func Fstatfs(fd int) (FsStat, error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return FsStat{}, os.NewSyscallError("fstatfs(fd "+strconv.Itoa(fd)+")", err)
	}
	return FsStat{Type: int64(s.Type), Fsid: Fsid(s.Fsid.Val), Flags: int64(s.Flags)}, nil
}

// Statfs returns the statfs of the filesystem path is on.
func Statfs(path string) (FsStat, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return FsStat{}, os.NewSyscallError("statfs("+path+")", err)
	}
	return FsStat{Type: int64(s.Type), Fsid: Fsid(s.Fsid.Val), Flags: int64(s.Flags)}, nil
}

// FdPath returns the path of open file fd, read from /proc/self/fd/N. The kernel appends
// " (deleted)" to the path of an unlinked file; FdPath returns it unchanged.
//
// It reads the link relative to a descriptor of this process's /proc/self/fd opened once
// (procSelfFd): the kernel then walks one name instead of four, and the link's name is built
// on the stack (0.99-1.06 µs a call in a C loop here, against 1.56-1.68 for the whole path:
// h9-exec, docs/design/performance.md). The descriptor names this process's fd table for the
// process's life (a /proc/PID/fd directory is tied to its task when opened; threads share the
// table); without it (no /proc at start) FdPath reads the whole path.
func FdPath(fd int) (string, error) {
	if procSelfFd < 0 || fd < 0 {
		return Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	}
	var buf [unix.PathMax]byte
	var name [24]byte // the decimal fd and its NUL
	num := strconv.AppendInt(name[:0], int64(fd), 10)
	name[len(num)] = 0
	for {
		// Raw (no entersyscall, exitsyscall: see FstatTo): the kernel looks the number up in
		// this process's descriptor table and prints the file's path from its dentries,
		// waiting for no filesystem, device or other process.
		n, _, e := unix.RawSyscall6(unix.SYS_READLINKAT, uintptr(procSelfFd), uintptr(unsafe.Pointer(&name[0])),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == 0 && int(n) == len(buf) {
			e = unix.ENAMETOOLONG
		}
		if e != 0 {
			return "", os.NewSyscallError("readlink(/proc/self/fd/"+strconv.Itoa(fd)+")", e)
		}
		return string(buf[:n]), nil
	}
}

// procSelfFd is this process's /proc/self/fd, opened at start (O_PATH: a handle to walk from,
// close-on-exec), or -1. At start, so that it is there before any test or caller counts its
// descriptors.
var procSelfFd = func() int {
	fd, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}()

// Readlink returns the target of symbolic link path (PATH_MAX bytes at most: a longer one
// is ENAMETOOLONG). Of a magic link in /proc the kernel writes the object's path, with
// " (deleted)" after an unlinked one.
func Readlink(path string) (string, error) {
	var buf [unix.PathMax]byte
	n, err := unix.Readlink(path, buf[:])
	if err == nil && n == len(buf) {
		err = syscall.ENAMETOOLONG
	}
	if err != nil {
		return "", os.NewSyscallError("readlink("+path+")", err)
	}
	return string(buf[:n]), nil
}

// Open opens path (open(2) flags; O_CLOEXEC is always added), retrying on EINTR.
func Open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("open("+path+")", err)
		}
		return fd, nil
	}
}

// Pread reads up to len(p) bytes of fd at offset off (pread(2): the file offset, which the
// descriptor may share with another process, is neither used nor moved), retrying on EINTR.
// It returns 0, nil at the end of the file.
func Pread(fd int, p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("pread(fd "+strconv.Itoa(fd)+", "+strconv.Itoa(len(p))+" bytes at "+
				strconv.FormatInt(off, 10)+")", err)
		}
		return n, nil
	}
}

// HasAccessACL reports whether the object of fd (any descriptor, O_PATH included) carries a
// POSIX access ACL (the extended attribute system.posix_acl_access). A filesystem without
// extended attributes has none.
func HasAccessACL(fd int) (bool, error) {
	// Through the descriptor's magic link: fgetxattr refuses O_PATH descriptors.
	_, err := unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), "system.posix_acl_access", nil)
	switch err {
	case nil:
		return true, nil
	case unix.ENODATA, unix.EOPNOTSUPP:
		return false, nil
	}
	return false, os.NewSyscallError("getxattr(fd "+strconv.Itoa(fd)+", system.posix_acl_access)", err)
}

// Close closes fd.
func Close(fd int) error {
	if err := unix.Close(fd); err != nil {
		return os.NewSyscallError("close(fd "+strconv.Itoa(fd)+")", err)
	}
	return nil
}

// RenameExchange swaps the names old and new atomically (renameat2 with RENAME_EXCHANGE): each
// then names what the other did. Both must exist. (The kernel reports it as two moves, one
// each way: tests of the recursive watches use it.)
func RenameExchange(old, new string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_EXCHANGE); err != nil {
		return &os.LinkError{Op: "renameat2(RENAME_EXCHANGE)", Old: old, New: new, Err: err}
	}
	return nil
}

// Dup duplicates fd with close-on-exec set (F_DUPFD_CLOEXEC).
func Dup(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl(fd "+strconv.Itoa(fd)+", F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}

// PollRead waits until fd is readable or timeout passes (a negative timeout waits forever) and
// reports whether it is readable. EINTR restarts the wait with the remaining time. A zero
// timeout reads no clock (the FID group's idle check makes one per batch of permission
// events on filesystems whose ancestries are not pinned: two clock reads were a third of it).
func PollRead(fd int, timeout time.Duration) (bool, error) {
	if timeout == 0 {
		return pollReadNow(fd, false)
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			// Round up so that a short positive timeout does not become a busy poll of 0.
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds[:], ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, os.NewSyscallError("poll(fd "+strconv.Itoa(fd)+")", err)
		}
		if n == 0 {
			return false, nil
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return false, os.NewSyscallError("poll(fd "+strconv.Itoa(fd)+")", syscall.EBADF)
		}
		return true, nil
	}
}

// PollReadNow is PollRead(fd, 0) made as a raw system call (no entersyscall, exitsyscall: see
// FstatTo), for a descriptor whose poll never sleeps: fanotify, inotify, eventfd, pipes and
// sockets. Not a FUSE file's (its poll asks the FUSE server and waits for the reply), nor one
// of another filesystem's or driver's that may.
func PollReadNow(fd int) (bool, error) { return pollReadNow(fd, true) }

// pollReadNow is PollRead(fd, 0): ppoll(2) with a zero timeout, raw or not.
func pollReadNow(fd int, raw bool) (bool, error) {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	var ts unix.Timespec // zero: the call does not wait
	for {
		// The pointers are converted in the calls' argument lists, where the compiler keeps
		// what they point to alive and in place.
		var n uintptr
		var e syscall.Errno
		if raw {
			n, _, e = unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		} else {
			n, _, e = unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		}
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return false, os.NewSyscallError("poll(fd "+strconv.Itoa(fd)+")", e)
		case n == 0:
			return false, nil
		case fds[0].Revents&unix.POLLNVAL != 0:
			return false, os.NewSyscallError("poll(fd "+strconv.Itoa(fd)+")", syscall.EBADF)
		}
		return true, nil
	}
}

// PollWrite waits, in poll(2) on the calling thread, until fd is writable or in error.
func PollWrite(fd int) error {
	for {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		_, err := unix.Poll(fds[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll(fd "+strconv.Itoa(fd)+")", err)
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return os.NewSyscallError("poll(fd "+strconv.Itoa(fd)+")", syscall.EBADF)
		}
		if fds[0].Revents != 0 {
			return nil
		}
	}
}

// PollReadable waits in poll(2), on the calling goroutine's thread, until at least one of fds
// is readable, hung up, in error or not open (POLLNVAL: a descriptor closed meanwhile), and
// sets ready[i] for each that is: reading it then says which (ready must be as long as fds).
func PollReadable(fds []int, ready []bool) error {
	var p PollSet
	return p.Wait(fds, ready)
}

// PollSet is PollReadable that keeps its buffer from one wait to the next: for a goroutine
// that waits in a loop (one at a time).
type PollSet struct {
	pfds []unix.PollFd
	ts   unix.Timespec // WaitFor's timeout (kept here: a local would escape, one allocation per wait)
}

// Wait is PollReadable.
func (p *PollSet) Wait(fds []int, ready []bool) error {
	_, err := p.WaitFor(fds, ready, -1)
	return err
}

// WaitFor is Wait for at most timeout (a negative timeout waits forever): false, with every
// ready[i] false, when it passed with none of fds ready. EINTR restarts the wait with the
// time left.
func (p *PollSet) WaitFor(fds []int, ready []bool, timeout time.Duration) (bool, error) {
	if len(ready) != len(fds) {
		return false, fmt.Errorf("PollReadable: %d fds but %d ready slots", len(fds), len(ready))
	}
	p.pfds = p.pfds[:0]
	for _, fd := range fds {
		p.pfds = append(p.pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	// A zero timeout (the event loop's look before it sleeps, about once per event) needs no
	// clock: the call does not wait, and its answer is final.
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		// ppoll(2) rather than poll(2): its timeout is a timespec, so that a wait of a
		// fraction of a millisecond (the FID reader's until the fan-out's next flush) is not
		// rounded to a whole one.
		var ts *unix.Timespec
		if timeout > 0 {
			p.ts = unix.NsecToTimespec(int64(max(time.Until(deadline), 0)))
			ts = &p.ts
		} else if timeout == 0 {
			p.ts = unix.Timespec{}
			ts = &p.ts
		}
		_, err := unix.Ppoll(p.pfds, ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, os.NewSyscallError("poll", err)
		}
		any := false
		for i := range p.pfds {
			ready[i] = p.pfds[i].Revents != 0
			any = any || ready[i]
		}
		if any {
			return true, nil
		}
		if timeout == 0 || timeout > 0 && !time.Now().Before(deadline) {
			return false, nil
		}
	}
}

// Waker is an eventfd that interrupts a PollReadable on its Fd: the way to wake a goroutine
// blocked in poll(2) on its own thread (closing the polled descriptor does not).
type Waker struct {
	mu     sync.Mutex
	fd     int
	closed bool
}

// NewWaker creates a Waker.
func NewWaker() (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &Waker{fd: fd}, nil
}

// Wake makes w's Fd readable for every present and future wait, until Drain. Safe from any
// goroutine, before or after Close (then it does nothing).
func (w *Waker) Wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	var one [8]byte
	one[0] = 1 // little-endian 1; eventfd counts, so repeated wakes never block
	unix.Write(w.fd, one[:])
}

// Fd is the eventfd, readable once woken: for waiting on it among other descriptors
// (PollReadable).
func (w *Waker) Fd() int { return w.fd }

// Drain undoes the wakes so far: for a Waker used as a nudge, read by the goroutine it wakes.
func (w *Waker) Drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		var buf [8]byte
		unix.Read(w.fd, buf[:])
	}
}

// Close closes the eventfd; call it once no wait can still use it. Idempotent.
func (w *Waker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return unix.Close(w.fd)
}

// NewUnpolledFile wraps a non-blocking fd in an *os.File that Go's netpoller does not know
// of: os.NewFile registers a non-blocking descriptor with the poller, whose thread the kernel
// then wakes for every event in addition to a reader waiting in poll(2) on its own. The
// descriptor is wrapped while blocking and set non-blocking again after; its RawConn still
// keeps it open while a callback runs, but a callback must not ask to wait (return false).
func NewUnpolledFile(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, os.NewSyscallError("fcntl(F_SETFL)", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := unix.SetNonblock(fd, true); err != nil {
		f.Close()
		return nil, os.NewSyscallError("fcntl(F_SETFL)", err)
	}
	return f, nil
}

// OpenForWrite reports whether the regular file open as fd is open for writing anywhere on the
// machine: by a descriptor, or by a shared writable mapping whose descriptor was closed (the
// kernel's inode_is_open_for_write). A write through such a mapping to a page it has already
// dirtied changes the content without moving the file's ctime or mtime and without any
// fanotify event until its last reference goes (CLOSE_WRITE), so a digest taken while one is
// open cannot be vouched for (trust.Verifier). The question is asked by taking a read lease
// (fcntl F_SETLEASE F_RDLCK), which the kernel refuses with EAGAIN exactly while the file is
// open for writing (or another process holds a write lease), and letting go of it at once: an
// open for writing made between the two waits for the second, a few microseconds. A running
// executable is not open for writing (execve denies writers). fd must be open read-only, and
// the caller must own the file or have CAP_LEASE; where the kernel has no leases for the
// filesystem (or fs.leases-enable is 0) the error says so and the answer is unknown.
func OpenForWrite(fd int) (bool, error) {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == unix.EAGAIN:
		return true, nil
	case err != nil:
		return false, os.NewSyscallError("fcntl(fd "+strconv.Itoa(fd)+", F_SETLEASE, F_RDLCK)", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
		return false, os.NewSyscallError("fcntl(fd "+strconv.Itoa(fd)+", F_SETLEASE, F_UNLCK)", err)
	}
	return false, nil
}
