//go:build linux

package backend

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// fidGroup is the FID kernel group (FAN_CLASS_NOTIF, FAN_REPORT_DFID_NAME): every
// notification event — open, access, modify, close, open-exec (where fsState.notifyFID),
// attrib, create, delete, moves, rename, delete-self, move-self and fs-error — with file
// handles, in one kernel queue: the kernel's order is the order its reader dispatches them
// in. It is read by a goroutine of its own that waits in the netpoller (readLoop): its
// events are notifications, and its translation (handles opened, directories walked, name
// marks dropped) is kept off the loop that answers permission events.
type fidGroup struct {
	kgroup
	// busy is set from just before a read takes events off the kernel queue until they are
	// processed: with the queue's readability it tells the FD group's reader whether a
	// directory move may be in flight (see Backend.dirsSettled).
	busy atomic.Int32
}

// startFIDGroupLocked creates the FID group and starts its reader. Needs b.mu.
func (b *Backend) startFIDGroupLocked() (*fidGroup, error) {
	if err := b.groupsAllowedLocked(); err != nil {
		return nil, err
	}
	if err := sys.Require(sys.FeatureReportDFIDName); err != nil {
		return nil, fmt.Errorf("directory-entry events: %w", err)
	}
	report := sys.FAN_REPORT_DFID_NAME | sys.FAN_REPORT_FID
	if s, _ := sys.Probe(sys.FeatureReportTargetFID); s == sys.Supported {
		report = sys.FAN_REPORT_DFID_NAME_TARGET
	}
	flags := report | sys.FAN_UNLIMITED_MARKS
	if b.opts.FIDQueueUnlimited {
		flags |= sys.FAN_UNLIMITED_QUEUE
	}
	g := &fidGroup{}
	if err := b.initGroupLocked(&g.kgroup, kFID, "fid", flags, sys.FAN_CLASS_NOTIF); err != nil {
		return nil, err
	}
	var err error
	// A non-blocking descriptor lets os.File park the reader in the netpoller, so that Close
	// unblocks it, and makes Close wait until the reader has left.
	g.file = os.NewFile(uintptr(g.fd), "fanotify")
	if g.rc, err = g.file.SyscallConn(); err != nil {
		g.file.Close()
		return nil, err
	}
	b.fidGrp = g
	b.fidGroupAtomic.Store(g)
	b.wg.Add(1)
	go g.readLoop()
	return g, nil
}

// readLoop reads the group until it closes.
func (g *fidGroup) readLoop() {
	b := g.b
	defer b.wg.Done()
	buf := make([]byte, sys.FanotifyReadSize)
	// graceSet: a read deadline is set, orphanGrace after the queue was first found empty
	// with orphans waiting (orphans.go); the queue staying empty until then dispatches them.
	graceSet := false
	for {
		var n int
		var rerr error
		err := g.rc.Read(func(fd uintptr) bool {
			g.busy.Store(1) // before the events leave the kernel's queue
			if b.beforeFIDRead != nil {
				b.beforeFIDRead()
			}
			n, rerr = sys.Read(int(fd), buf)
			if !errors.Is(rerr, syscall.EAGAIN) {
				return true
			}
			if !graceSet && g.orphansWaiting() {
				g.file.SetReadDeadline(time.Now().Add(b.orphanGrace))
				graceSet = true
			}
			g.busy.Store(0)
			return false // wait in the netpoller until readable (or the grace is over)
		})
		if graceSet && (err == nil || errors.Is(err, os.ErrDeadlineExceeded)) {
			g.file.SetReadDeadline(time.Time{})
			graceSet = false
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The queue stayed empty for orphanGrace: nothing queued can name the
			// orphans' directories any more (orphans.go).
			g.busy.Store(1)
			g.flushAllOrphans()
			g.busy.Store(0)
			continue
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			g.busy.Store(0)
			if g.closed.Load() || isClosedErr(err) {
				return
			}
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
				continue
			}
			b.log.Error("reading fanotify group", "group", g.name, "err", err)
			time.Sleep(errorPause) // e.g. EMFILE: do not spin
			continue
		}
		now := time.Now()
		v := b.view.Load()
		ok := g.dispatchBatch(buf[:n], now, func(kev *sys.FanotifyEvent) { g.handle(kev, v, now) })
		g.busy.Store(0)
		if !ok {
			g.closeFile()
			b.dropAllNameMarks() // nothing watches names any more
			return
		}
	}
}

// overflow reports a lost FID event: moves and links may be among them, so the directory
// caches and every name mark that rested on seeing them go too.
func (g *fidGroup) overflow() {
	g.b.dropAllNameMarks()
	g.kgroup.overflow(fidBits | notifBits)
}

// idle reports whether the group has dispatched every event the kernel queued to it so far:
// its queue is empty and its reader holds none. The order of the checks matters:
// readability, then busy (which the reader sets before taking events off the queue).
func (g *fidGroup) idle() (bool, error) {
	readable, err := sys.PollRead(g.fd, 0)
	if err != nil || readable {
		return false, err
	}
	return g.busy.Load() == 0, nil
}
