//go:build linux

package backend

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// fidGroup is the FID kernel group (FAN_CLASS_NOTIF, FAN_REPORT_DFID_NAME): every
// notification event — open, access, modify, close, open-exec (where fsState.notifyFID),
// attrib, create, delete, moves, rename, delete-self, move-self and fs-error — with file
// handles, in one kernel queue: the kernel's order is the order its reader dispatches them
// in. It is read by a goroutine of its own (readLoop): its events are notifications, and
// their translation (handles opened, directories walked, name marks dropped) is kept off the
// loop that answers permission events.
//
// The reader waits in poll(2) for the group (or its waker) on its own thread, as a C reader
// waits in read(2), rather than in Go's netpoller: parked there, each
// batch cost a read that found the queue empty, the scheduler's search for work on the way
// to the park (runtime.findRunnable, a quarter of the daemon's CPU under bench/fanout.sh's
// load) and another thread's epoll_wait to wake it; docs/design/performance.md. It never
// blocks in read(2): busy must be set before events leave the kernel's queue (idle), which a
// blocking read would take without a word. While the queue fills faster than it is read (a
// batch of more than one event, or one a read tried first found), it reads again before it
// polls (readFirst): under a flood the queue has most often filled again while the batch was
// dispatched, and a poll would only say so (a poll that finds the queue readable costs about
// twice a read that finds it empty here; docs/design/performance.md, session 10). When
// events come one per wake-up it polls first, as an empty read would be a system call more
// per event. Whichever way a read is reached, busy is set before it
// (TestFIDReadFirstKeepsBusyBeforeEveryRead); Backend.dirsSettled needs nothing else.
// Between batches it passes through the Go scheduler once per few milliseconds (package
// schedtick): a goroutine that only makes system calls otherwise has its P retaken by sysmon
// in every wait, and keeps sysmon polling every 20 µs (12-14% of the daemon's CPU under
// bench/fanout.sh's load). It is not locked to its thread: a locked goroutine's yield hands
// its P to another thread and waits for that thread to run and hand it back, which on a
// host whose CPUs are all busy can hold the reader for as long as the kernel takes to run
// that other thread (long enough for the kernel to merge an unread event with the next);
// unlocked, the yield reschedules it on its own thread at once.
type fidGroup struct {
	kgroup
	// busy is set from just before a read takes events off the kernel queue until they are
	// processed: with the queue's readability it tells the FD group's reader whether a
	// directory move may be in flight (see Backend.dirsSettled).
	busy atomic.Int32
	// waker ends the reader's wait in poll(2) when the group closes (close): closing the
	// descriptor does not.
	waker *sys.Waker
	// The reader's own: the kernel events it has dispatched, and the directories'
	// DELETE_SELFs it holds until the events queued before them are dispatched (orphans.go).
	dispatched uint64
	held       []heldSelf
	// moveOverride: the place of the adopted MOVE_SELF being dispatched again (handleOrphan).
	moveOverride *movePlace
	// targetFID: the kernel names the object of a DELETE too (FAN_REPORT_TARGET_FID), so a
	// file's events read after it went can wait for its DELETE to be named (orphans.go).
	targetFID bool
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
	g := &fidGroup{targetFID: report == sys.FAN_REPORT_DFID_NAME_TARGET}
	if err := b.initGroupLocked(&g.kgroup, kFID, "fid", flags, sys.FAN_CLASS_NOTIF); err != nil {
		return nil, err
	}
	var err error
	if g.waker, err = sys.NewWaker(); err != nil {
		sys.Close(g.fd)
		return nil, err
	}
	// Outside the netpoller (the reader polls it on its own thread); the RawConn keeps the
	// descriptor open while a read is under way, so a read racing with close never reaches a
	// reused descriptor number.
	if g.file, err = sys.NewUnpolledFile(g.fd, "fanotify"); err != nil {
		g.waker.Close()
		sys.Close(g.fd)
		return nil, err
	}
	if g.rc, err = g.file.SyscallConn(); err != nil {
		g.waker.Close()
		g.file.Close()
		return nil, err
	}
	b.fidGrp = g
	b.fidGroupAtomic.Store(g)
	b.wg.Add(1)
	go g.readLoop()
	return g, nil
}

// close closes the group and ends its reader's wait (the reader then returns).
func (g *fidGroup) close() {
	g.closeFile()
	g.waker.Wake()
}

// readLoop reads the group until it closes. Between batches it waits in poll(2) on its own
// thread. While orphans wait (orphans.go) it reads again without waiting, to find the queue
// empty; from then the orphans are dispatched once the queue has stayed empty for
// orphanGrace (the poll's timeout), as a read deadline did in the netpoller. Held
// DELETE_SELFs (orphans.go, hold) go once the events counted for them are dispatched, or
// when a read finds the queue empty, or when the reader ends.
func (g *fidGroup) readLoop() {
	b := g.b
	defer b.wg.Done()
	defer g.waker.Close()
	buf := make([]byte, sys.FanotifyReadSize)
	var ps sys.PollSet
	fds := []int{g.fd, g.waker.Fd()}
	ready := make([]bool, len(fds))
	wait := true
	// graceEnd: when the orphans go out unplaced if the queue stays empty until then (zero:
	// no grace running). It starts when the queue is first found empty with orphans waiting.
	var graceEnd time.Time
	// A pass through the scheduler every few milliseconds: without it sysmon takes the
	// reader, which only makes system calls, for a goroutine running too long, and retakes
	// its P in every poll (package schedtick).
	var tick schedtick.Tick
	// The reader hook (Backend.SetReaderHook): hook is the one told Awake, until its Idle,
	// which is called before every wait and bounds it (hookWait).
	var hook ReaderHook
	hookWait := time.Duration(-1)
	awake := func() {
		hookWait = -1 // the wait it bounded is over (or was skipped: the queue had events)
		if hook == nil {
			if h := b.readerHook.Load(); h != nil {
				hook = *h
				hook.Awake()
			}
		}
	}
	idle := func(last bool) {
		if hook != nil {
			h := hook
			hook = nil
			hookWait = h.Idle(last)
		}
	}
	defer idle(true)
	// Held DELETE_SELFs are not lost when the reader ends (orphans.go): the events after
	// them will not be dispatched either.
	defer func() {
		if len(g.held) > 0 {
			awake()
			g.releaseHeld(b.view.Load(), true)
		}
	}()
	// readFirst: the next read is tried before the wait (after the hook's Idle), because
	// the queue fills faster than it is read — the last batch held more than one event, or
	// came from a read tried first: under a flood the queue has most often filled again
	// while the batch was dispatched, and the poll would only say so. When events come one
	// per wake-up the reader polls first, as a read that finds the queue empty would be a
	// system call more per event.
	readFirst, triedFirst := false, false
	for {
		triedFirst = false
		if wait && readFirst {
			readFirst, triedFirst = false, true
			idle(false)
		} else if wait {
			idle(false)
			timeout := time.Duration(-1)
			if !graceEnd.IsZero() {
				timeout = max(time.Until(graceEnd), 0)
			}
			if hookWait >= 0 && (timeout < 0 || hookWait < timeout) {
				timeout = hookWait
			}
			any, err := ps.WaitFor(fds, ready, timeout)
			if g.closed.Load() {
				return
			}
			if err != nil {
				b.log.Error("waiting for fanotify group", "group", g.name, "err", err)
				time.Sleep(errorPause) // do not spin
				continue
			}
			awake()
			if !any {
				if !graceEnd.IsZero() && !time.Now().Before(graceEnd) {
					// The queue stayed empty for orphanGrace: nothing queued can name
					// the orphans' directories any more (orphans.go).
					graceEnd = time.Time{}
					g.busy.Store(1)
					g.flushAllOrphans()
					g.busy.Store(0)
				}
				continue // the hook's time (Idle, before the next wait), or the grace's
			}
			if ready[1] {
				g.waker.Drain() // a wake without a close: nothing else to do
			}
			if !ready[0] {
				continue
			}
		}
		g.busy.Store(1) // before the events leave the kernel's queue
		if b.beforeFIDRead != nil {
			b.beforeFIDRead()
		}
		n, err := g.readBatch(buf)
		if g.closed.Load() {
			g.busy.Store(0)
			return
		}
		if err != nil {
			g.busy.Store(0)
			b.log.Error("reading fanotify group", "group", g.name, "err", err)
			time.Sleep(errorPause) // e.g. EMFILE: do not spin
			wait = true
			continue
		}
		if n == 0 {
			// The queue is empty (or the read was interrupted: then it is read again
			// after the wait). After a read tried first, the wait is bounded by what the
			// hook's Idle before it returned (hookWait), and no Awake came between.
			if len(g.held) > 0 {
				// Every event queued when they were read is dispatched (orphans.go).
				g.releaseHeld(b.view.Load(), true)
			}
			if graceEnd.IsZero() && g.orphansWaiting() {
				graceEnd = time.Now().Add(b.orphanGrace)
			}
			g.busy.Store(0)
			wait = true
			continue
		}
		// Awake before the events are dispatched (already after a wait; not for a read that
		// found nothing, which goes on to the wait the Idle before it bounded).
		awake()
		graceEnd = time.Time{} // the queue was not empty: a new grace when it is
		now := time.Now()
		v := b.view.Load()
		events := 0
		ok := g.dispatchBatch(buf[:n], now, func(kev *sys.FanotifyEvent) {
			events++
			g.handle(kev, v, now)
			g.dispatched++
			if len(g.held) > 0 {
				g.releaseHeld(v, false)
			}
		})
		g.busy.Store(0)
		tick.MaybeYieldAt(now) // between batches: no event held, busy clear
		if !ok {
			g.close()
			b.dropAllNameMarks() // nothing watches names any more
			return
		}
		// With orphans or DELETE_SELFs waiting, read again at once: only a read finds the
		// queue empty. Else Idle, then wait, or read first while the queue fills faster
		// than it is read.
		wait = len(g.held) == 0 && !g.orphansWaiting()
		readFirst = wait && (events > 1 || triedFirst)
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
//
// The poll never waits (a zero timeout), so it is made raw (sys.PollReadNow): without the
// runtime's entersyscall and exitsyscall, 40-50 ns of a poll made at most once per batch of
// permission events (h12-poll, docs/design/performance.md session 12).
func (g *fidGroup) idle() (bool, error) {
	readable, err := sys.PollReadNow(g.fd)
	if err != nil || readable {
		return false, err
	}
	return g.busy.Load() == 0, nil
}
