package sys

import (
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shared memory between the daemon and one client (the permission ring, internal/proto's
// ring): a sealed memfd, its mapping, futex waits and wakes on words in it, and the pipe the
// client kicks the daemon's event loop with.

// MemfdSealed creates an anonymous shared-memory file of size bytes (memfd_create, Linux 3.17,
// with sealing) whose size can never change again: F_SEAL_SHRINK and F_SEAL_GROW, then
// F_SEAL_SEAL. A process the descriptor is passed to can write its pages but not shrink it
// under a mapping of ours (a shrunk file's pages would fault, SIGBUS, in whoever reads them).
// A kernel without memfd or sealing is a *FeatureError matching ErrNotSupported.
func MemfdSealed(name string, size int) (int, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			return -1, &FeatureError{Feature: "memfd_create(MFD_ALLOW_SEALING)", Err: errors.Join(ErrNotSupported, err)}
		}
		return -1, os.NewSyscallError("memfd_create", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("ftruncate(memfd, "+strconv.Itoa(size)+")", err)
	}
	const seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			return -1, &FeatureError{Feature: "memfd F_ADD_SEALS", Err: errors.Join(ErrNotSupported, err)}
		}
		return -1, os.NewSyscallError("fcntl(memfd, F_ADD_SEALS)", err)
	}
	return fd, nil
}

// CheckSealedSize verifies that fd is a file of exactly size bytes whose size is sealed
// (F_SEAL_SHRINK and F_SEAL_GROW): what a process needs before it maps a file another
// process handed it, so that its reads cannot fault.
func CheckSealedSize(fd int, size int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat(fd "+strconv.Itoa(fd)+")", err)
	}
	if st.Size != int64(size) {
		return errors.New("shared memory of " + strconv.FormatInt(st.Size, 10) + " bytes, want " + strconv.Itoa(size))
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return os.NewSyscallError("fcntl(fd "+strconv.Itoa(fd)+", F_GET_SEALS)", err)
	}
	const need = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW
	if seals&need != need {
		return errors.New("shared memory whose size is not sealed (seals " + strconv.Itoa(seals) + ")")
	}
	return nil
}

// MmapShared maps size bytes of fd read-write and shared (MAP_SHARED). Unmap with Munmap.
func MmapShared(fd int, size int) ([]byte, error) {
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap(fd "+strconv.Itoa(fd)+")", err)
	}
	return b, nil
}

// Munmap unmaps a mapping of MmapShared.
func Munmap(b []byte) error {
	if err := unix.Munmap(b); err != nil {
		return os.NewSyscallError("munmap", err)
	}
	return nil
}

// Word32 returns the 32-bit word at offset off of a mapping (4-aligned) for atomic access.
func Word32(b []byte, off int) *atomic.Uint32 {
	_ = b[off+3]
	if off%4 != 0 {
		panic("sys.Word32: unaligned offset " + strconv.Itoa(off))
	}
	return (*atomic.Uint32)(unsafe.Pointer(&b[off]))
}

// FutexWait sleeps while *w == val, until a FutexWake on the same word from any process
// mapping it (a shared futex: no FUTEX_PRIVATE_FLAG), or a signal. It returns nil when woken
// or when *w already differed (EAGAIN) or a signal interrupted it (EINTR): the caller looks
// at the word again either way.
func FutexWait(w *atomic.Uint32, val uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(val), 0, 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR:
		return nil
	case unix.ENOSYS:
		return &FeatureError{Feature: "futex", Err: errors.Join(ErrNotSupported, syscall.Errno(e))}
	}
	return os.NewSyscallError("futex(FUTEX_WAIT)", syscall.Errno(e))
}

// FutexWake wakes up to n waiters on w (shared) and returns how many it woke. It never waits,
// so it is made as a raw system call (no entersyscall, exitsyscall: see FstatTo), once per
// permission event through the ring.
func FutexWake(w *atomic.Uint32, n int) (woken int, err error) {
	r, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, os.NewSyscallError("futex(FUTEX_WAKE)", syscall.Errno(e))
	}
	return int(r), nil
}

// KickPipe returns a pipe, both ends non-blocking and close-on-exec: a process that holds
// only the write end can make the read end readable, and cannot change how the read end's
// owner reads it (the two ends are separate open file descriptions: an eventfd passed to
// another process shares its one description, O_NONBLOCK included, and its counter).
func KickPipe() (r, w int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}

// Kick writes one byte to a KickPipe's write end; a full pipe (EAGAIN: kicks already wait to
// be read) is not an error.
func Kick(w int) error {
	b := [1]byte{1}
	_, err := unix.Write(w, b[:])
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		return os.NewSyscallError("write(kick)", err)
	}
	return nil
}

// DrainKicks reads what a KickPipe's read end holds, at most len(buf) bytes, without
// waiting, and reports whether the write end is closed (end of file). r must be a KickPipe's
// read end, which is non-blocking and whose flags the write end's holder cannot change (its
// own open file description): the read never waits, so it is made as a raw system call (no
// entersyscall, exitsyscall: see FstatTo), once per kick.
func DrainKicks(r int, buf []byte) (eof bool, err error) {
	if len(buf) == 0 {
		return false, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(r), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	switch {
	case e == unix.EAGAIN || e == unix.EINTR:
		return false, nil
	case e != 0:
		return false, os.NewSyscallError("read(kick)", e)
	}
	return n == 0, nil
}

// futex(2) operations (linux/futex.h), shared (no FUTEX_PRIVATE_FLAG): the word is in memory
// two processes map.
const (
	futexWait = 0
	futexWake = 1
)
