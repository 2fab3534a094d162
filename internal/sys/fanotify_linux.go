package sys

import (
	"errors"
	"os"
	"strconv"
	"sync"
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
	raw := mayWriteRaw(response)
	for {
		// write(2) itself: unix.Write's race-detector hooks would move r to the heap. Direct
		// calls in both branches: the pointer-to-uintptr rule holds only for a direct call.
		var n uintptr
		var e unix.Errno
		if raw {
			n, _, e = unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&r)), uintptr(sizeofFanotifyResponse))
		} else {
			n, _, e = unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&r)), uintptr(sizeofFanotifyResponse))
		}
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

// mayWriteRaw says whether a response may be written without the runtime's system call
// bookkeeping (RawSyscall: no entersyscall/exitsyscall, about 1% of an embedded guard's
// listener CPU per open). Invariant: fanotify's write handler (fanotify_write,
// process_access_response) takes only the group's spinlock and wakes the waiting process; the
// one place it can sleep is audit_log_start, for a response with FAN_AUDIT, which waits while
// the audit backlog is full (up to audit_backlog_wait_time). A raw call that sleeps keeps its
// P, and a stop-the-world (GC) would wait for it: so FAN_AUDIT responses, and FAN_INFO ones
// (which carry more for the kernel to parse), go through Syscall.
func mayWriteRaw(response uint32) bool { return response&(FAN_AUDIT|FAN_INFO) == 0 }

// ResponseBatch holds answers to permission events to be written together, in one writev(2)
// (WriteResponses): fanotify has no write_iter, so the kernel hands each iovec of a writev to
// its write handler in turn (do_loop_readv_writev), which takes exactly one struct
// fanotify_response per call and returns its size; the loop goes on to the next iovec while
// each answer is taken and stops at the first the kernel refuses (verified on 6.18:
// TestWriteResponsesBatch). So n answers cost one system call instead of n. Reused without
// allocating once grown; not safe for concurrent use.
type ResponseBatch struct {
	rs  []fanotifyResponse
	iov []unix.Iovec
}

// Add queues the answer response to the event whose descriptor is eventFd.
func (b *ResponseBatch) Add(eventFd int32, response uint32) {
	b.rs = append(b.rs, fanotifyResponse{Fd: eventFd, Response: response})
}

// At returns the i-th answer queued: its event's descriptor and its response.
func (b *ResponseBatch) At(i int) (int32, uint32) { return b.rs[i].Fd, b.rs[i].Response }

// Len returns how many answers are queued.
func (b *ResponseBatch) Len() int { return len(b.rs) }

// Reset forgets the answers queued (keeping the memory).
func (b *ResponseBatch) Reset() { b.rs, b.iov = b.rs[:0], b.iov[:0] }

// WriteResponses writes the answers of b from index from on to the fanotify group fd in one
// writev(2). It returns how many of them it dealt with, n: all of them with err nil, or up to
// and including one the kernel refused, whose error is err (the answers after it are not
// written yet: call again from from+n). The caller still owns the events' descriptors and
// closes them after answering.
func WriteResponses(fd int, b *ResponseBatch, from int) (int, error) {
	rs := b.rs[from:]
	if len(rs) == 0 {
		return 0, nil
	}
	b.iov = b.iov[:0]
	for i := range rs {
		b.iov = append(b.iov, unix.Iovec{Base: (*byte)(unsafe.Pointer(&rs[i])), Len: uint64(sizeofFanotifyResponse)})
	}
	for {
		n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&b.iov[0])), uintptr(len(b.iov)))
		if e == unix.EINTR {
			continue // nothing was taken: an interrupted writev that took some returns their size
		}
		if e != 0 {
			// The first answer was refused (the kernel returns the error only when it took none).
			return 1, os.NewSyscallError("writev(fanotify response fd "+strconv.Itoa(int(rs[0].Fd))+", "+
				ResponseString(rs[0].Response)+")", e)
		}
		took := int(n) / sizeofFanotifyResponse
		if took >= len(rs) {
			return len(rs), nil
		}
		// Stopped at answer took, which the kernel refused: write it alone to learn why.
		return took + 1, WriteResponse(fd, rs[took].Fd, rs[took].Response)
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

// FanotifyWaker wakes a thread blocked in read(2) on a fanotify group, which nothing else
// does: closing the group's descriptor does not end a read under way (the read holds a
// reference), and Go's signal handlers restart it (SA_RESTART). It gives the group an event
// of its own: the group marks a private memfd for FAN_MODIFY, and Wake writes one byte to
// it. The reader recognizes that event (IsWake), closes its descriptor and ignores it.
//
// The write goes through a descriptor reopened from /proc/self/fd: since Linux 6.14 files
// made by memfd_create are pseudo files, whose own writes generate no fsnotify event; a file
// opened by path does. Nobody else can reach the memfd's inode, so the mark can never report
// or block anything but Wake.
type FanotifyWaker struct {
	mu       sync.Mutex
	memfd    int // the memfd itself (keeps the inode; its dev and ino identify the wake)
	wfd      int // the memfd reopened by path, written by Wake
	dev, ino uint64
	closed   bool
}

// NewFanotifyWaker makes a waker for the fanotify group group (any class, FD or FID mode).
func NewFanotifyWaker(group int) (*FanotifyWaker, error) {
	memfd, err := memfdCreate("fsnotifyd-wake")
	if err != nil {
		return nil, err
	}
	w := &FanotifyWaker{memfd: memfd, wfd: -1}
	st, err := Fstat(memfd)
	if err == nil {
		w.dev, w.ino = st.Dev, st.Ino
		w.wfd, err = Open("/proc/self/fd/"+strconv.Itoa(memfd), O_WRONLY|O_CLOEXEC, 0)
	}
	if err == nil {
		err = FanotifyMark(group, FAN_MARK_ADD, FAN_MODIFY, memfd, "")
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Wake queues one FAN_MODIFY event on the group (the kernel merges it with one still unread).
// Safe from any goroutine, before or after Close (then it does nothing).
func (w *FanotifyWaker) Wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	var b [1]byte
	unix.Pwrite(w.wfd, b[:], 0)
}

// IsWake reports whether the event of mask mask, from process pid, whose descriptor is
// eventFd, is a Wake of this process: its fstat is made only for a FAN_MODIFY of this process.
func (w *FanotifyWaker) IsWake(mask uint64, pid int32, self int32, eventFd int32) bool {
	if mask&FAN_MODIFY == 0 || pid != self || eventFd < 0 {
		return false
	}
	st, err := Fstat(int(eventFd))
	return err == nil && st.Dev == w.dev && st.Ino == w.ino
}

// Close closes the memfd (the group's mark on it goes with the inode). Idempotent.
func (w *FanotifyWaker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.wfd >= 0 {
		unix.Close(w.wfd)
	}
	unix.Close(w.memfd)
}

// SetNonblock sets or clears O_NONBLOCK on fd (fcntl F_SETFL): for a fanotify group, whose
// reads then return EAGAIN on an empty queue, or wait.
func SetNonblock(fd int, nonblocking bool) error {
	if err := unix.SetNonblock(fd, nonblocking); err != nil {
		return os.NewSyscallError("fcntl(fd "+strconv.Itoa(fd)+", F_SETFL)", err)
	}
	return nil
}

// FanotifyQueued returns how many events a fanotify group's queue holds: its FIONREAD, which
// the kernel computes as FAN_EVENT_METADATA_LEN bytes per queued event (fanotify_ioctl walks
// the notification list; an event's real size, with its info records, is not counted), an
// overflow event included. Events that arrive later are not counted, and merges into queued
// events add none.
func FanotifyQueued(fd int) (int, error) {
	n, err := BytesQueued(fd)
	return n / FAN_EVENT_METADATA_LEN, err
}
