package sys

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MountState is what statmount(2) says of a mount of this process's mount namespace.
type MountState struct {
	// ReadOnly: the mount is read-only (MOUNT_ATTR_RDONLY) or its filesystem is (SB_RDONLY).
	ReadOnly bool
}

// ErrMountElsewhere: the mount is not one of this process's mount namespace (statmount(2)
// finds no mount of that id here): another namespace's (a container's, a user's own), or a
// detached mount (open_tree(2)).
var ErrMountElsewhere = errors.New("the mount is not in this process's mount namespace")

// mntIDReq is struct mnt_id_req (linux/mount.h), version 0.
type mntIDReq struct {
	size  uint32
	spare uint32
	mntID uint64
	param uint64
}

// statmountHead is the start of struct statmount (linux/mount.h) up to mnt_attr.
type statmountHead struct {
	size         uint32
	mntOpts      uint32
	mask         uint64
	sbDevMajor   uint32
	sbDevMinor   uint32
	sbMagic      uint64
	sbFlags      uint32
	fsType       uint32
	mntID        uint64
	mntParentID  uint64
	mntIDOld     uint32
	mntParentOld uint32
	mntAttr      uint64
}

const (
	statmountSBBasic  = 0x1 // STATMOUNT_SB_BASIC
	statmountMntBasic = 0x2 // STATMOUNT_MNT_BASIC
	sbRdonly          = 0x1 // SB_RDONLY
)

// StatMount returns the state of the mount of unique id mntID (Stat.MntID with MntIDUnique)
// in this process's mount namespace: ErrMountElsewhere when it has none of that id.
// Linux 6.8+ (statmount(2)); on an older kernel the error wraps ENOSYS.
func StatMount(mntID uint64) (MountState, error) {
	req := mntIDReq{size: uint32(unsafe.Sizeof(mntIDReq{})), mntID: mntID, param: statmountSBBasic | statmountMntBasic}
	var buf [1024]byte // struct statmount is 512 bytes before its strings; none asked
	_, _, e := unix.Syscall6(unix.SYS_STATMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if e == unix.ENOENT {
		return MountState{}, ErrMountElsewhere
	}
	if e != 0 {
		return MountState{}, os.NewSyscallError("statmount(mount "+strconv.FormatUint(mntID, 10)+")", e)
	}
	h := (*statmountHead)(unsafe.Pointer(&buf[0]))
	if h.mask&(statmountSBBasic|statmountMntBasic) != statmountSBBasic|statmountMntBasic {
		return MountState{}, errors.New("statmount: the kernel gave no basic mount and superblock state")
	}
	return MountState{ReadOnly: h.mntAttr&unix.MOUNT_ATTR_RDONLY != 0 || h.sbFlags&sbRdonly != 0}, nil
}

// MountPlace says where a mount is, as MountPlaceOf tells it.
type MountPlace int

const (
	// MountUnknown: it could not be told (no unique mount id: Linux before 6.8; or
	// statmount failed otherwise).
	MountUnknown MountPlace = iota
	// MountHere: a mount of this process's mount namespace (statmount(2) finds its id).
	MountHere
	// MountElsewhere: another namespace's (a container's, a user's own) or a detached one.
	MountElsewhere
)

// MountPlaceOf tells whether st's mount is one of this process's mount namespace. A path
// the kernel prints for a descriptor opened through a mount elsewhere is another
// namespace's.
func MountPlaceOf(st *Stat) MountPlace {
	if !st.MntIDUnique {
		return MountUnknown
	}
	_, err := StatMount(st.MntID)
	switch {
	case err == nil:
		return MountHere
	case errors.Is(err, ErrMountElsewhere):
		return MountElsewhere
	}
	return MountUnknown
}

// nsIno is the inode of the namespace file path (/proc/PID/ns/KIND): two processes are in
// the same namespace of that kind when theirs are the same.
func nsIno(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, os.NewSyscallError("stat("+path+")", err)
	}
	return st.Ino, nil
}

// ownUserNS is the inode of this process's user namespace, read once.
var ownUserNS = sync.OnceValues(func() (uint64, error) { return nsIno("/proc/self/ns/user") })

// UserNSForeign reports whether process pid is in a user namespace other than this process's.
// There it holds every capability over its own namespace, CAP_CHECKPOINT_RESTORE included,
// which is all that prctl(PR_SET_MM_MAP) asks to set the process's /proc/PID/exe to any
// executable file it can open: what its executable says, it chose. A namespace this process
// may not look at (EACCES: the process is in a user namespace above ours, as pid 1 of a
// sandbox's host is) is another.
func UserNSForeign(pid int) (bool, error) {
	own, err := ownUserNS()
	if err != nil {
		return false, err
	}
	var st unix.Stat_t
	switch err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/user", &st); {
	case err == unix.EACCES || err == unix.EPERM:
		return true, nil
	case err != nil:
		return false, os.NewSyscallError("stat(/proc/"+strconv.Itoa(pid)+"/ns/user)", err)
	}
	return st.Ino != own, nil
}

// GroupsMayLack reports whether process pid may have dropped a group it had (setgroups(2) of
// fewer supplementary groups, or a setgid(2) that left one): it is in a user namespace other
// than this process's, and setgroups may have been allowed there or on the way — its own
// namespace's /proc/PID/setgroups says "allow" (a privileged helper, newgidmap, wrote its
// gid_map with subordinate gids), or the namespace is not a child of ours (nested: a parent
// may have allowed it). A namespace one level down whose setgroups says "deny" never let its
// members call setgroups (an unprivileged gid_map needs "deny" first, and it cannot change
// once the map is written), nor could a process enter it from another (setns needs a
// capability over its owner there). A namespace this process may not look at (EACCES: one
// above ours) may have allowed it.
func GroupsMayLack(pid int) (bool, error) {
	own, err := ownUserNS()
	if err != nil {
		return false, err
	}
	dir := "/proc/" + strconv.Itoa(pid)
	fd, err := unix.Open(dir+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	switch {
	case err == unix.EACCES || err == unix.EPERM:
		return true, nil
	case err != nil:
		return false, os.NewSyscallError("open("+dir+"/ns/user)", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, os.NewSyscallError("fstat(user namespace)", err)
	}
	if st.Ino == own {
		return false, nil
	}
	parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
	if err != nil {
		return true, nil // no parent we may see: not below ours
	}
	err = unix.Fstat(parent, &st)
	unix.Close(parent)
	if err != nil {
		return false, os.NewSyscallError("fstat(parent user namespace)", err)
	}
	if st.Ino != own {
		return true, nil
	}
	b, err := os.ReadFile(dir + "/setgroups")
	if err != nil {
		return false, err
	}
	return string(bytesTrimSpace(b)) != "deny", nil
}

// UnprivilegedUserNS reports whether an unprivileged process may create a user namespace
// in which it holds capabilities on this host, by the switches the kernel and distributions
// give: user.max_user_namespaces above 0, kernel.unprivileged_userns_clone (Debian's older
// kernels) not 0, kernel.apparmor_restrict_unprivileged_userns (Ubuntu) not 1. A switch that
// is missing is not in the way. Read each time: an administrator may change them.
func UnprivilegedUserNS() bool {
	read := func(name string) (int64, bool) {
		b, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseInt(string(bytesTrimSpace(b)), 10, 64)
		return v, err == nil
	}
	if v, ok := read("user/max_user_namespaces"); ok && v == 0 {
		return false
	}
	if v, ok := read("kernel/unprivileged_userns_clone"); ok && v == 0 {
		return false
	}
	if v, ok := read("kernel/apparmor_restrict_unprivileged_userns"); ok && v == 1 {
		return false
	}
	return true
}

func bytesTrimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// ownMountNS is the inode of this process's mount namespace, read once.
var ownMountNS = sync.OnceValues(func() (uint64, error) { return nsIno("/proc/self/ns/mnt") })

// MountNSOwn reports whether process pid is in this process's mount namespace.
func MountNSOwn(pid int) (bool, error) {
	own, err := ownMountNS()
	if err != nil {
		return false, err
	}
	ino, err := nsIno("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	if err != nil {
		return false, err
	}
	return ino == own, nil
}

// MountNSForeign reports whether the mount namespace of process pid is owned by a user
// namespace other than this process's (NS_GET_USERNS): one that an unprivileged user made
// (unshare -Urm), where that user may mount any file over any path. A namespace a privileged
// process made from this one (a container of root's) is owned by the same user namespace.
func MountNSForeign(pid int) (bool, error) {
	own, err := ownUserNS()
	if err != nil {
		return false, err
	}
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, os.NewSyscallError("open(/proc/"+strconv.Itoa(pid)+"/ns/mnt)", err)
	}
	defer unix.Close(fd)
	userFd, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	if err != nil {
		return false, os.NewSyscallError("ioctl(NS_GET_USERNS)", err)
	}
	defer unix.Close(userFd)
	var st unix.Stat_t
	if err := unix.Fstat(userFd, &st); err != nil {
		return false, os.NewSyscallError("fstat(user namespace)", err)
	}
	return st.Ino != own, nil
}
