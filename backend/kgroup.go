//go:build linux

package backend

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// kgroup is one kernel fanotify group. One goroutine reads it (fsnotify/fsnotify's rule: one
// goroutine owns each kernel fd); answers are written through the same *os.File, whose
// RawConn keeps the descriptor alive while a write is under way, so an answer racing with
// close can never write into a reused descriptor number.
type kgroup struct {
	b     *Backend
	k     int // kFD or kFID
	fd    int
	file  *os.File
	class uint
	// busy is set (FID group) from just before a read takes events off the kernel queue
	// until they are processed: with the queue's readability it tells the FD reader whether a
	// directory move may be in flight (see Backend.dirsSettled).
	busy atomic.Int32
	// batches counts the batches read and dispatched (bumped before busy is cleared).
	batches atomic.Uint64
	// waker, for the FD group, interrupts its reader's poll(2): that reader waits in poll on
	// its own thread, not in the netpoller (see readLoop). nudge makes it ask the
	// ReaderHook for its descriptors again.
	waker, nudge *sys.Waker
	// Reader-thread state for waitReadable.
	pollSet sys.PollSet
	pollFds []int
	ready   []bool

	closeOnce sync.Once
	closed    atomic.Bool
}

// startGroupLocked creates kernel group k and its reader. Needs b.mu.
func (b *Backend) startGroupLocked(k int) (*kgroup, error) {
	if b.closed {
		return nil, ErrClosed
	}
	if b.mode != ModeFanotify {
		return nil, ErrNeedsPrivilege
	}
	g := &kgroup{b: b, k: k}
	var flags uint
	switch k {
	case kFD:
		// The highest class the kernel has, found by creating the group itself (EINVAL for a
		// class it lacks), without a mark-based probe.
		flags = sys.FAN_UNLIMITED_QUEUE | sys.FAN_UNLIMITED_MARKS
	case kFID:
		g.class = sys.FAN_CLASS_NOTIF
		report := sys.FAN_REPORT_DFID_NAME | sys.FAN_REPORT_FID
		if s, _ := sys.Probe(sys.FeatureReportTargetFID); s == sys.Supported {
			report = sys.FAN_REPORT_DFID_NAME_TARGET
		}
		if err := sys.Require(sys.FeatureReportDFIDName); err != nil {
			return nil, fmt.Errorf("directory-entry events: %w", err)
		}
		flags = g.class | report | sys.FAN_UNLIMITED_MARKS
		if b.opts.FIDQueueUnlimited {
			flags |= sys.FAN_UNLIMITED_QUEUE
		}
	}
	var fd int
	var err error
	if k == kFD {
		for _, class := range []uint{sys.FAN_CLASS_PRE_CONTENT, sys.FAN_CLASS_CONTENT, sys.FAN_CLASS_NOTIF} {
			g.class = class
			fd, err = sys.FanotifyInit(flags|class|sys.FAN_CLOEXEC|sys.FAN_NONBLOCK, sys.O_RDONLY|sys.O_LARGEFILE|sys.O_CLOEXEC)
			if !errors.Is(err, syscall.EINVAL) {
				break
			}
		}
	} else {
		fd, err = sys.FanotifyInit(flags|sys.FAN_CLOEXEC|sys.FAN_NONBLOCK, sys.O_RDONLY|sys.O_LARGEFILE|sys.O_CLOEXEC)
	}
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("%w (%w)", err, ErrNeedsPrivilege)
		}
		return nil, err
	}
	g.fd = fd
	if k == kFD {
		if g.waker, err = sys.NewWaker(); err != nil {
			sys.Close(fd)
			return nil, err
		}
		if g.nudge, err = sys.NewWaker(); err != nil {
			sys.Close(fd)
			g.waker.Close()
			return nil, err
		}
	}
	if k == kFD {
		// Outside the netpoller: its reader waits in poll(2) (see readLoop). Close then
		// does not wait for the reader, but the descriptor stays open until it has left.
		if g.file, err = sys.NewUnpolledFile(fd, "fanotify"); err != nil {
			sys.Close(fd)
			g.waker.Close()
			g.nudge.Close()
			return nil, err
		}
	} else {
		// A non-blocking descriptor lets os.File park the FID reader in the netpoller, so
		// that Close unblocks it, and makes Close wait until the reader has left.
		g.file = os.NewFile(uintptr(fd), "fanotify")
	}
	if k == kFD {
		b.fdGroup = g
		b.fdGroupAtomic.Store(g)
		b.fdNudge.Store(g.nudge)
	} else {
		b.fidGrp = g
		b.fidGroupAtomic.Store(g)
	}
	b.wg.Add(1)
	go g.readLoop()
	return g, nil
}

func (g *kgroup) close() {
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		if g.waker != nil {
			g.waker.Wake()
		}
		g.file.Close()
	})
}

// respond writes one answer for the kernel event whose descriptor is fd.
func (g *kgroup) respond(fd int32, response uint32) error {
	rc, err := g.file.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(kfd uintptr) bool {
		werr = sys.WriteResponse(int(kfd), fd, response)
		return true
	})
	if err != nil {
		return err
	}
	return werr
}

func (g *kgroup) readLoop() {
	b := g.b
	defer b.wg.Done()
	if g.waker != nil {
		defer g.waker.Close() // a later Wake does nothing
		defer g.nudge.Close()
	}
	buf := make([]byte, sys.FanotifyReadSize)
	rc, err := g.file.SyscallConn()
	if err != nil {
		b.log.Error("fanotify group", "err", err)
		return
	}
	// The FD group's reader (permission events) waits in poll(2) on its own thread rather
	// than in the netpoller: the kernel then wakes the thread that handles the event, often on
	// the CPU of the process that is waiting for the answer, where the netpoller's thread
	// hands the goroutine on to another. Before it blocks, the reader yields once, so that a
	// goroutine its events made runnable (a guard's worker, a group's reader) runs on this
	// thread at once instead of waiting for another thread to be woken to take it. With a
	// ReaderHook (the daemon) it does not: the answers come back to this very thread, and the
	// yield would only wake an idle thread to look for work (bench/daemon.sh: about 10% of
	// the round trip).
	blocking := g.waker != nil
	for {
		var n int
		var rerr error
		yielded := false
		err := rc.Read(func(fd uintptr) bool {
			for {
				g.busy.Store(1) // before the events leave the kernel's queue
				n, rerr = sys.Read(int(fd), buf)
				if !errors.Is(rerr, syscall.EAGAIN) {
					return true
				}
				g.busy.Store(0)
				if !blocking {
					return false // wait in the netpoller until readable
				}
				if !yielded && b.readerHook.Load() == nil {
					yielded = true
					runtime.Gosched()
					continue
				}
				yielded = false
				readable, perr := g.waitReadable(int(fd))
				if perr != nil || !readable {
					rerr = perr
					if !readable && perr == nil {
						rerr = os.ErrClosed // woken by close
					}
					return true
				}
			}
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			g.busy.Store(0)
			// RawConn reports a closed file as internal/poll's ErrFileClosing, not
			// os.ErrClosed: the flag says it for sure.
			if g.closed.Load() || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
				continue
			}
			b.log.Error("reading fanotify group", "group", g.name(), "err", err)
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		now := time.Now()
		v := b.view.Load()
		// Name the processes first: a short-lived one (a cat) may exit while the batch is
		// translated, and /proc forgets it once it is reaped.
		var last int32
		notifications := false
		sys.ParseFanotify(buf[:n], func(kev *sys.FanotifyEvent) error {
			if !kev.IsPerm() {
				notifications = true
				if kev.Pid != last && kev.Pid > 0 && kev.Pid != b.pid {
					b.comms.get(kev.Pid, now)
					last = kev.Pid
				}
			}
			return nil
		})
		if g.k == kFD && notifications {
			b.awaitFIDSettled()
		}
		perr := sys.ParseFanotify(buf[:n], func(kev *sys.FanotifyEvent) error {
			b.stats.Events.Add(1)
			if g.k == kFD {
				g.handleFD(kev, v, now)
			} else {
				g.handleFID(kev, v, now)
			}
			return nil
		})
		g.batches.Add(1)
		g.busy.Store(0)
		if perr != nil {
			// The events after a malformed one are lost, and so are their permission
			// answers: only closing the group releases them (allowed by the kernel).
			b.log.Error("malformed fanotify buffer; closing the group", "group", g.name(), "err", perr)
			g.close()
			if g.k == kFID {
				b.dropAllNameMarks() // nothing watches names any more
			}
			return
		}
	}
}

func (g *kgroup) name() string {
	if g.k == kFD {
		return "fd"
	}
	return "fid"
}

// overflow tells every engine group that may have wanted events of this kernel group that
// it lost some.
func (g *kgroup) overflow() {
	b := g.b
	b.stats.KernelOverflows.Add(1)
	if g.k == kFID {
		// Moves and links may be among the lost events: the directory caches and every name
		// mark that rested on seeing them go.
		b.dropAllNameMarks()
	}
	bits := fdBits
	if g.k == kFID {
		bits = fidBits
	}
	for _, eg := range b.eng.Groups() {
		for _, m := range eg.Marks() {
			if m.Mask&bits != 0 {
				eg.Overflow()
				break
			}
		}
	}
}

// waitReadable waits until the FD group's descriptor is readable (true) or the group closes
// (false). With a ReaderHook it waits for the hook's descriptors too and hands each that is
// readable to the hook, on this thread, meanwhile.
func (g *kgroup) waitReadable(fd int) (bool, error) {
	for {
		h := g.b.readerHook.Load()
		const own = 3 // fd, waker, nudge (which also says a hook was installed)
		g.pollFds = append(g.pollFds[:0], fd, g.waker.Fd(), g.nudge.Fd())
		if h != nil {
			g.pollFds = (*h).AppendPollFds(g.pollFds)
		}
		if cap(g.ready) < len(g.pollFds) {
			g.ready = make([]bool, len(g.pollFds))
		}
		ready := g.ready[:len(g.pollFds)]
		if err := g.pollSet.Wait(g.pollFds, ready); err != nil {
			return false, err
		}
		if ready[1] {
			return false, nil // closing
		}
		if ready[2] {
			g.nudge.Drain() // the set changed: ask again
		}
		if h != nil && g.b.readerHook.Load() == h { // not replaced or removed meanwhile
			for i := own; i < len(ready); i++ {
				if ready[i] {
					(*h).Readable(i - own)
				}
			}
		}
		if ready[0] {
			return true, nil
		}
	}
}

// fidSettleMax bounds awaitFIDSettled, should the FID reader make no progress.
const fidSettleMax = 5 * time.Millisecond

// awaitFIDSettled runs on the FD reader before it dispatches notification events: it waits
// until the FID group has dispatched what the kernel queued to it before them, so that a
// file's CREATE (FID group) comes before its OPEN, MODIFY and CLOSE_WRITE (FD group), as one
// syscall queued them. What was queued to the FID group before now is in its queue (then
// it is readable), or in the batch its reader is dispatching (then it is busy): so wait until
// it is neither, or until it has finished two batches since (the one in progress and the
// next), or fidSettleMax. Usually it is neither at once: one poll(2).
func (b *Backend) awaitFIDSettled() {
	g := b.fidGroupAtomic.Load()
	if g == nil {
		return
	}
	start := g.batches.Load()
	var deadline time.Time
	for i := 0; ; i++ {
		if idle, err := g.idle(); err != nil || idle || g.batches.Load() >= start+2 {
			return
		}
		if i == 0 {
			deadline = time.Now().Add(fidSettleMax)
		} else if time.Now().After(deadline) {
			b.stats.OrderWaitTimeouts.Add(1)
			return
		}
		// Sleep, not Gosched: the FID reader waits in the netpoller, which an idle P polls;
		// a yield loop keeps this P busy and lets it wait for sysmon's 10 ms poll.
		time.Sleep(20 * time.Microsecond)
	}
}

// idle reports whether the group has dispatched every event the kernel queued to it so far:
// its queue is empty and its reader holds none. The order of the checks matters:
// readability, then busy (which the reader sets before taking events off the queue).
func (g *kgroup) idle() (bool, error) {
	readable, err := sys.PollRead(g.fd, 0)
	if err != nil || readable {
		return false, err
	}
	return g.busy.Load() == 0, nil
}
