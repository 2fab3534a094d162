//go:build linux

package backend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// kgroup is what the two kernel fanotify groups share: the descriptor, its class, closing,
// and the dispatch of a batch read from it. How each is read differs: the FD group on the
// backend's event loop (fdGroup), the FID group on a goroutine of its own (fidGroup).
//
// One goroutine reads each (fsnotify/fsnotify's rule: one goroutine owns each kernel fd);
// answers are written through the same *os.File, whose RawConn keeps the descriptor alive
// while a read or write is under way, so a read or an answer racing with close can never
// reach a reused descriptor number (the FD group's loop, which nothing can race with, reads
// and writes its batch's answers on the number itself: fdgroup.go, readOnLoop).
type kgroup struct {
	b     *Backend
	k     int    // kFD or kFID: the index of this group's kernel mark masks
	name  string // "fd" or "fid", for messages
	fd    int
	file  *os.File
	rc    syscall.RawConn
	class uint

	closeOnce sync.Once
	closed    atomic.Bool

	// The reader's (one goroutine reads each group), so that a batch costs no allocation:
	// readBatch's operation on the RawConn (readFn, bound once) and the event the batch is
	// parsed into.
	rd     readOp
	readFn func(fd uintptr) bool
	kev    sys.FanotifyEvent
	// batchLeft: the events of the batch being dispatched (dispatchBatch) not yet handed to
	// handle — after the one being handled.
	batchLeft int
}

// readOp is one read(2) of a group, run by the RawConn.
type readOp struct {
	buf []byte
	n   int
	err error
}

func (o *readOp) do(fd uintptr) bool {
	o.n, o.err = sys.Read(int(fd), o.buf)
	return true
}

// groupsAllowedLocked says why no kernel group can be created, if so. Needs b.mu.
func (b *Backend) groupsAllowedLocked() error {
	if b.closed {
		return ErrClosed
	}
	if b.mode != ModeFanotify {
		return ErrNeedsPrivilege
	}
	return nil
}

// initGroup creates a kernel group with flags (and FAN_CLOEXEC, FAN_NONBLOCK), trying each
// class in turn until the kernel takes one (EINVAL for a class it lacks: the highest it has
// is found by creating the group itself, without a mark-based probe). Needs b.mu.
func (b *Backend) initGroupLocked(g *kgroup, k int, name string, flags uint, classes ...uint) error {
	if err := b.groupsAllowedLocked(); err != nil {
		return err
	}
	g.b, g.k, g.name = b, k, name
	var fd int
	var err error
	for _, class := range classes {
		g.class = class
		fd, err = sys.FanotifyInit(flags|class|sys.FAN_CLOEXEC|sys.FAN_NONBLOCK, sys.O_RDONLY|sys.O_LARGEFILE|sys.O_CLOEXEC)
		if !errors.Is(err, syscall.EINVAL) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("%w (%w)", err, ErrNeedsPrivilege)
		}
		return err
	}
	g.fd = fd
	return nil
}

// closeFile closes the group's file, once (later answers and reads get os.ErrClosed).
func (g *kgroup) closeFile() {
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		g.file.Close()
	})
}

// readBatch reads what the kernel has queued (up to buf) without waiting: 0 and nil when
// there is nothing, or when the group is closed.
func (g *kgroup) readBatch(buf []byte) (int, error) {
	if g.readFn == nil {
		g.readFn = g.rd.do
	}
	g.rd.buf, g.rd.n, g.rd.err = buf, 0, nil
	err := g.rc.Read(g.readFn)
	n := g.rd.n
	if err == nil {
		err = g.rd.err
	}
	g.rd.buf, g.rd.err = nil, nil
	if err == nil {
		return n, nil
	}
	// RawConn reports a closed file as internal/poll's ErrFileClosing, not os.ErrClosed:
	// the flag says it for sure.
	if g.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		return 0, nil
	}
	return 0, err
}

// dispatchBatch hands each event of a batch read at now to handle, in order; it reports
// whether the batch was well formed. It names the processes of the notifications first: a
// short-lived one (a cat) may exit while the batch is translated, and /proc forgets it once
// it is reaped. That first pass reads only each event's fixed header (notificationPids), so a
// batch is parsed once: a batch of permission events only (the embedded guard's) costs
// nothing more.
func (g *kgroup) dispatchBatch(buf []byte, now time.Time, handle func(*sys.FanotifyEvent)) bool {
	g.batchLeft = g.countBatch(buf, now)
	perr := sys.ParseFanotifyInto(buf, &g.kev, func(kev *sys.FanotifyEvent) error {
		g.batchLeft--
		handle(kev)
		return nil
	})
	g.batchLeft = 0
	if perr != nil {
		g.malformed(perr)
		return false
	}
	return true
}

// malformed logs a parse error of a batch. The events after a malformed one are lost, and so
// are their permission answers: only closing the group releases them (allowed by the
// kernel), which the caller does.
func (g *kgroup) malformed(err error) {
	g.b.log.Error("malformed fanotify buffer; closing the group", "group", g.name, "err", err)
}

// countBatch is the first pass over a batch read at now, before any of its events is
// handled: it reads the processes of its notifications (their comm and exe are read while
// the processes likely still run) and counts its events in Stats. It returns how many events
// the batch holds.
func (g *kgroup) countBatch(buf []byte, now time.Time) int {
	b := g.b
	var last, execed int32
	n, perm := notificationPids(buf, func(pid int32, mask uint64) {
		if pid <= 0 || pid == b.pid {
			return
		}
		if mask&sys.FAN_OPEN_EXEC != 0 && pid != execed {
			// It runs a new program: what is known of it is the old one's (comm.go).
			b.comms.refresh(pid, now, true)
			execed, last = pid, pid
		}
		if pid != last {
			b.comms.refresh(pid, now, false)
			last = pid
		}
	})
	// Once per batch (a locked instruction per event less; one per batch of permission
	// events only, the embedded guard's), and before any is handled: whoever sees an event
	// sees it counted in Stats.
	if n > perm {
		b.stats.OtherEvents.Add(uint64(n - perm))
	}
	if perm > 0 {
		b.stats.PermissionEvents.Add(uint64(perm))
	}
	return n
}

// The fixed header of a fanotify event (struct fanotify_event_metadata): event_len u32 at 0,
// vers u8, reserved u8, metadata_len u16, mask u64 at 8, fd s32 at 16, pid s32 at 20.
const (
	fanMetaLen  = 24
	fanMetaMask = 8
	fanMetaFd   = 16
	fanMetaPid  = 20
)

// notificationPids calls fn with the pid of each notification event of buf (not a permission
// event), in order, reading only the events' fixed headers, and returns how many events it
// walked and how many of them are permission events. It stops at the first header that does
// not fit (the parse that follows reports it).
func notificationPids(buf []byte, fn func(pid int32, mask uint64)) (events, perm int) {
	for off := 0; ; {
		h, ok := fanHeaderAt(buf, off)
		if !ok {
			return events, perm
		}
		events++
		if h.mask&sys.FAN_PERM_EVENTS == 0 {
			fn(h.pid, h.mask)
		} else {
			perm++
		}
		off += h.size
	}
}

// fanHeader is an event's fixed header, as fanHeaderAt reads it.
type fanHeader struct {
	size    int // event_len: the next event is this far on
	mask    uint64
	fd, pid int32
}

// fanHeaderAt reads the fixed header of the event at off in buf; ok is false when there is
// none, or it does not fit (the parse that follows reports that). For the passes over a batch
// that need no more than the headers (notificationPids, fdGroup.answerAhead).
func fanHeaderAt(buf []byte, off int) (h fanHeader, ok bool) {
	if off+fanMetaLen > len(buf) {
		return h, false
	}
	h.size = int(binary.NativeEndian.Uint32(buf[off:]))
	if h.size < fanMetaLen || h.size > len(buf)-off {
		return h, false
	}
	h.mask = binary.NativeEndian.Uint64(buf[off+fanMetaMask:])
	h.fd = int32(binary.NativeEndian.Uint32(buf[off+fanMetaFd:]))
	h.pid = int32(binary.NativeEndian.Uint32(buf[off+fanMetaPid:]))
	return h, true
}

// overflow tells every engine group that may have wanted events of kinds bits that it lost
// some.
func (g *kgroup) overflow(bits engine.Mask) {
	b := g.b
	b.stats.KernelOverflows.Add(1)
	for _, eg := range b.eng.Groups() {
		for _, m := range eg.Marks() {
			if m.Mask&bits != 0 {
				eg.Overflow()
				break
			}
		}
	}
}
