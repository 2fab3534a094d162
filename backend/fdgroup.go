//go:build linux

package backend

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/evloop"
	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// fdGroup is the FD kernel group: every permission event, each with an open descriptor (and
// the notification events of a filesystem the FID group cannot report them for:
// fsState.notifyFID). It is read on the backend's event loop
// (internal/evloop), one batch per readiness: the kernel wakes the loop's thread, which
// translates and dispatches each event, and answers a permission event there too when every
// group that takes it answers at once (a Handler) or its answer comes back to the loop (a
// daemon client's socket, or a walk's continuation posted there: engine.Config.Executor).
// docs/design/fastpath.md follows one permission event through it.
//
// When the group is the only descriptor on the loop (no daemon client registered), the loop
// waits for it in a blocking read(2) rather than in poll(2) (evloop's blocking mode): one
// system call per event fewer, as fanref's C responder. What wakes that read for work posted
// from elsewhere, a registration change or Close is waker: an event of the group's own (a
// FAN_MODIFY of a private memfd, sys.FanotifyWaker), which handle drops.
type fdGroup struct {
	kgroup
	reg   *evloop.Registration
	waker *sys.FanotifyWaker // nil: the loop always polls the group
	buf   []byte             // the loop's

	// respond's operation, reused by whoever holds respMu (a leaf, only TryLocked).
	respMu sync.Mutex
	resp   respondOp
	respFn func(uintptr) bool
	// awaited is set by handlePerm when a walk of the current batch waits for a group's
	// answer (the loop's).
	awaited bool
	// dispatching is the permission event the loop is dispatching (handlePerm), and between
	// events the last one it dispatched: with inflight (events a walk waits for) what
	// Backend.Close answers. An event decided during the dispatch is answered with the batch
	// and was never in inflight, so it costs no lock and no map update; one a walk waits for
	// goes into inflight before it leaves dispatching, and Close reads dispatching before
	// inflight, so it misses neither. It is not cleared after the dispatch (two locked
	// instructions per event less, and none when a reused permEvent is the one it names):
	// Close answers the generation it reads (answerGen), and the last event's is answered
	// already, by the loop or through inflight, so that answer does nothing (a reused
	// permEvent's next generation is published, with its descriptor, before it is
	// dispatched, and is the event being dispatched then). It keeps that one permEvent from
	// the garbage collector meanwhile.
	dispatching atomic.Pointer[permEvent]
	// fidIdle: the FID group was found idle after the current batch was read (the loop's;
	// see Backend.dirsSettled).
	fidIdle bool
	// clock reads each batch's time (the loop's).
	clock batchClock

	// The answers decided during the current batch's dispatch, and their events (the
	// loop's): written together by flushAnswers at the end of the batch (permEvent.
	// answerInBatch).
	held []*permEvent
	// written: events answered ahead (answerAhead wrote their answers; handlePerm adds them),
	// until flushAnswers settles them at the end of the batch (the loop's).
	written []*permEvent
	// ahead: the descriptors of the batch's events answerAhead answered, in order, and
	// aheadNext the first of them handlePerm has not come to yet; aheadAnswers their answers
	// while they are written (the loop's).
	ahead        []int32
	aheadNext    int
	aheadAnswers sys.ResponseBatch
	// free: permEvents whose answer is written and payload released, for the next events
	// (Options.ReusePermEvents; newPermEvent). The loop's.
	free        []*permEvent
	heldAnswers sys.ResponseBatch
}

// maxHeldAnswers bounds how many answers wait for the end of their batch: an opener whose
// event came early in a large batch waits for at most this many decisions after its own.
const maxHeldAnswers = 16

// rereadBatches bounds how many batches onReadable reads in a row before it lets the loop
// poll (and serve its other descriptors) again.
const rereadBatches = 8

// errorPause is how long the loop stops reading the FD group after a read error (EMFILE,
// say, which leaves the event queued and the descriptor readable): so that it does not spin.
const errorPause = 10 * time.Millisecond

// startFDGroupLocked creates the FD group and registers it with the loop. Needs b.mu.
func (b *Backend) startFDGroupLocked() (*fdGroup, error) {
	// Pre-content when the kernel has it: its class is fixed here while marks come and go
	// (see the package doc).
	g := &fdGroup{buf: make([]byte, sys.FanotifyReadSize)}
	err := b.initGroupLocked(&g.kgroup, kFD, "fd", sys.FAN_UNLIMITED_QUEUE|sys.FAN_UNLIMITED_MARKS,
		sys.FAN_CLASS_PRE_CONTENT, sys.FAN_CLASS_CONTENT, sys.FAN_CLASS_NOTIF)
	if err != nil {
		return nil, err
	}
	// Outside the netpoller: the loop waits for it in poll(2) on its own thread, which the
	// kernel then wakes directly (os.NewFile would register it with the netpoller, whose
	// thread the kernel would wake too).
	if g.file, err = sys.NewUnpolledFile(g.fd, "fanotify"); err != nil {
		sys.Close(g.fd)
		return nil, err
	}
	if g.rc, err = g.file.SyscallConn(); err != nil {
		g.file.Close()
		return nil, err
	}
	if g.waker, err = sys.NewFanotifyWaker(g.fd); err != nil {
		// Then the loop polls the group, as it does beside a daemon's clients.
		b.log.Debug("no blocking read of the fanotify group", "err", err)
		g.waker = nil
	}
	if g.waker != nil {
		g.reg, err = b.loop.RegisterBlocking(g.fd, g.onReadable(), evloop.Blocking{
			SetBlocking: func(on bool) error { return sys.SetNonblock(g.fd, !on) },
			Wake:        g.waker.Wake,
		})
	} else {
		g.reg, err = b.loop.Register(g.fd, g.onReadable())
	}
	if err != nil {
		if g.waker != nil {
			g.waker.Close()
		}
		g.file.Close()
		return nil, err
	}
	b.fdGroup = g
	b.fdGroupAtomic.Store(g)
	return g, nil
}

// close stops the loop from reading the group, then closes it. Called on the loop (a
// malformed batch) it stops at once; from elsewhere it waits until the loop has let go.
func (g *fdGroup) close() {
	g.reg.Unregister()
	if g.waker != nil {
		g.waker.Close() // the loop reads the group no more: nothing to wake
	}
	g.release()
	g.closeFile()
}

// releaseQuiet is how long the queue must stay empty, once the marks are gone, before
// release takes it that nothing more comes (an event being queued as the marks went).
const releaseQuiet = 20 * time.Millisecond

// release does what the kernel does when a group's last descriptor is closed — queue no more
// events, allow those queued — before this process closes its own, which may not be the
// last: a child forked a moment before (os/exec forks, then execs) holds a copy until its exec
// closes it (FAN_CLOEXEC acts only then), and that exec's open of the program may be a
// permission event in this very queue. Left to the kernel, the child would wait for an
// answer nobody reads while holding the descriptor whose close would answer it (a test hung
// so in execve, 2026-12-05; TestCloseReleasesGroupHeldByAChild). So the marks go first, then
// what is queued is read and allowed, until the queue has stayed empty for releaseQuiet.
func (g *fdGroup) release() {
	if g.closed.Load() {
		return
	}
	for _, kind := range []uint{0, sys.FAN_MARK_MOUNT, sys.FAN_MARK_FILESYSTEM} {
		sys.FanotifyMark(g.fd, sys.FAN_MARK_FLUSH|kind, 0, sys.AT_FDCWD, "") // nothing to do if it fails: the kernel's release still comes
	}
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if ready, err := sys.PollRead(g.fd, releaseQuiet); err != nil || !ready {
			return
		}
		n, err := sys.Read(g.fd, buf)
		if err != nil || n == 0 {
			return
		}
		sys.ParseFanotify(buf[:n], func(ev *sys.FanotifyEvent) error {
			if ev.Fd >= 0 {
				if ev.IsPerm() {
					sys.WriteResponse(g.fd, ev.Fd, sys.FAN_ALLOW)
				}
				sys.Close(int(ev.Fd))
			}
			if ev.Pidfd >= 0 && ev.Records.Has(sys.FAN_EVENT_INFO_TYPE_PIDFD) {
				sys.Close(int(ev.Pidfd))
			}
			return nil
		})
	}
}

// The loop's own read and the answers of its batch (readOnLoop, flushAnswers) use the group's
// descriptor number directly, without the RawConn that keeps it open under a concurrent
// close: none can happen while the loop runs the group's callback. The file is closed only
// by close, after Unregister, which from another goroutine returns only once the loop has
// left the callback (the loop applies registration changes between callbacks) and on the loop
// runs before; so in the callback the descriptor is open unless the loop itself closed it
// earlier in the same callback (a malformed batch, or a Handler that closed the Backend on
// the loop), which closed, read after closeFile sets it, tells. Every other reader or writer
// (respond from another goroutine, a walk's continuation posted to the loop, which may run
// after the group is gone) goes through the RawConn.

// readOnLoop is readBatch for the loop, in the group's callback: 0 and nil when there is
// nothing, or when the loop closed the group.
func (g *fdGroup) readOnLoop(buf []byte) (int, error) {
	if g.closed.Load() {
		return 0, nil
	}
	n, err := sys.Read(g.fd, buf)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, syscall.EAGAIN) {
		return 0, nil
	}
	return 0, err
}

// respond writes one answer for the kernel event whose descriptor is fd. On the loop (or
// whoever holds respMu) it costs no allocation: the operation run by the RawConn is the
// group's, bound once; a concurrent caller (Backend.Close answering what is left) makes its
// own.
func (g *fdGroup) respond(fd int32, response uint32) error {
	if !g.respMu.TryLock() {
		op := &respondOp{fd: fd, response: response}
		return op.run(g.rc, op.do)
	}
	if g.respFn == nil {
		g.respFn = g.resp.do
	}
	g.resp = respondOp{fd: fd, response: response}
	err := g.resp.run(g.rc, g.respFn)
	g.respMu.Unlock()
	return err
}

// respondOp is one kernel answer, written by the RawConn.
type respondOp struct {
	fd       int32
	response uint32
	err      error
}

func (o *respondOp) do(kfd uintptr) bool {
	o.err = sys.WriteResponse(int(kfd), o.fd, o.response)
	return true
}

func (o *respondOp) run(rc syscall.RawConn, do func(uintptr) bool) error {
	if err := rc.Write(do); err != nil {
		return err
	}
	return o.err
}

// flushAnswers writes the answers held during the batch (answerInBatch): one write(2) for
// one, one writev(2) for several, in the order they were decided. Then it closes the
// descriptors of the events already released, and forgets them. On the loop only, in the
// group's callback (readAndDispatch's endBatch, answerInBatch).
//
// Holding the answers until the batch ends delays an early event's opener by the decisions
// of the (at most maxHeldAnswers) events after it, a few microseconds each on the loop, and
// saves a system call per answer after the first; it also wakes the batch's openers together,
// where one write each let the first opener woken preempt the loop before it answered the
// next (bench: docs/design/performance.md, "Embedded guard"). Writing them as soon as the
// batch's last event is decided, before its bookkeeping (its release, the closes), made no
// difference to the per-open time at one load thread (docs/design/performance.md, session
// 14, h14-backend), so they are written here, at the end.
func (g *fdGroup) flushAnswers() {
	g.writeResponses(&g.heldAnswers)
	g.heldAnswers.Reset()
	g.held = g.settleAll(g.held)
	g.written = g.settleAll(g.written)
}

// settleAll settles each event of evs, whose answers are written, and returns evs emptied.
func (g *fdGroup) settleAll(evs []*permEvent) []*permEvent {
	for i, p := range evs {
		g.settle(p)
		evs[i] = nil
	}
	return evs[:0]
}

// writeResponses writes rs to the kernel: one write(2) for one answer, one writev(2) for
// several (as many as it takes). On the loop only, in the group's callback: the descriptor is
// open unless closed says otherwise (see readOnLoop); closed, the kernel allowed every pending
// event.
func (g *fdGroup) writeResponses(rs *sys.ResponseBatch) {
	b := g.b
	n := rs.Len()
	switch {
	case n == 0 || g.closed.Load():
	case n == 1:
		fd, response := rs.At(0)
		if err := sys.WriteResponse(g.fd, fd, response); err != nil {
			b.log.Error("answering a permission event", "err", err)
		}
	default:
		b.stats.AnswerBatches.Add(1)
		b.stats.AnswersBatched.Add(uint64(n))
		for from := 0; from < n; {
			k, err := sys.WriteResponses(g.fd, rs, from)
			if err != nil {
				b.log.Error("answering a permission event", "err", err)
			}
			if k <= 0 {
				break
			}
			from += k
		}
	}
}

// answerAhead is the first pass over a batch that AnswerAhead's offer covers, before any of
// its events is handled: it answers Allow, in one write, every permission event of buf that
// the offer's group allows by kind while it is the only permission group (and whose process
// cannot be exempt: those take their own path), reading only the events' fixed headers, and
// records their descriptors in order (ahead) for handlePerm, which takes each event's
// descriptor off the front as it comes to it (takeAhead). So the batch's openers get their
// answers before the first statx, and a batch of several costs one system call for them, as
// its answers held to its end did.
func (g *fdGroup) answerAhead(buf []byte, a *aheadAnswers) {
	b := g.b
	g.ahead, g.aheadNext = g.ahead[:0], 0
	for off := 0; ; {
		h, ok := fanHeaderAt(buf, off)
		if !ok {
			break // the parse that follows reports a header that does not fit
		}
		if h.mask&sys.FAN_PERM_EVENTS != 0 && h.fd >= 0 && !b.exempts.mayExempt(h.pid) && b.allowsAhead(a, h.mask) {
			g.ahead = append(g.ahead, h.fd)
			g.aheadAnswers.Add(h.fd, sys.FAN_ALLOW)
		}
		off += h.size
	}
	if len(g.ahead) > 0 {
		g.writeResponses(&g.aheadAnswers)
		g.aheadAnswers.Reset()
		b.stats.AnsweredAhead.Add(uint64(len(g.ahead)))
	}
}

// takeAhead reports whether the event with descriptor fd, the next permission event of the
// batch that handlePerm handles, was answered by answerAhead.
func (g *fdGroup) takeAhead(fd int32) bool {
	if g.aheadNext < len(g.ahead) && g.ahead[g.aheadNext] == fd {
		g.aheadNext++
		return true
	}
	return false
}

// endAnswers ends a batch's answers, at each of its ends (endBatch, a malformed event): the
// held answers written and every answered event settled (flushAnswers), then the entries
// answerAhead left closed (dropAhead). Not flushAnswers alone: that also runs in the middle of
// a batch (answerInBatch, at maxHeldAnswers), where the batch's later events still take their
// entries.
func (g *fdGroup) endAnswers() {
	g.flushAnswers()
	g.dropAhead()
}

// dropAhead closes the descriptors of the events answered ahead that the batch's dispatch
// never came to (a malformed event before them, or a panic): answered, nothing else will. At
// every batch's end: an entry left for the next batch could match a reused descriptor number
// there, and take an unanswered event for an answered one.
func (g *fdGroup) dropAhead() {
	for _, fd := range g.ahead[g.aheadNext:] {
		sys.Close(int(fd))
	}
	g.ahead, g.aheadNext = g.ahead[:0], 0
}

// settle ends the hold of p, whose answer is written: released already, its descriptor is
// closed here (or p taken back for reuse); else its Release will close it.
func (g *fdGroup) settle(p *permEvent) {
	if p.unhold() {
		// Answered, never in inflight, its payload released: nothing refers to p any more
		// (the engine's contract: no use of an event after its release).
		if p.reuse && len(g.free) < maxFreePermEvents {
			// No Path runs or will run on this generation (the same contract), so its
			// path state is left as it is (newPermEvent resets it if a Path moved it).
			p.close()
			g.free = append(g.free, p)
		} else {
			p.closeFd()
		}
	}
}

// endBatch ends the dispatch of a batch (readAndDispatch defers it): the held answers are
// written. When the dispatch panicked (a Handler's panic, or a bug), the event being
// dispatched (dispatching) is answered first if it is not yet — allowed: never leave the
// opener blocked — then the batch's answers are written, then the panic goes on. One
// deferred call per batch: handlePerm defers nothing per event (its event is dispatching's
// from newPermEvent on, so a panic anywhere in its handling, its translation included, has it
// answered here).
func (g *fdGroup) endBatch() {
	if r := recover(); r != nil {
		if p := g.dispatching.Load(); p != nil {
			p.answer(sys.FAN_ALLOW) // nothing if it was answered (claim), or is held
		}
		g.endAnswers()
		panic(r)
	}
	g.endAnswers() // no ahead entry left: every permission event of the batch took its own (takeAhead)
}

// onReadable returns the loop's callback for the group's descriptor, a function literal (the
// method value of a method would add its generated wrapper's call to every batch). It runs
// on the loop when the descriptor is readable: it reads a batch and dispatches it. When
// every permission event of the batch was answered during its dispatch (an in-process
// Handler, the embedded guard), it reads again before it lets the loop poll:
// the openers just answered are likely to have queued their next events already, and a read
// that finds them saves the poll (one system call of the three or four an event costs,
// docs/design/performance.md). When a walk waits for an answer (a daemon client's), the
// answer comes through another descriptor, so a second read would find the queue empty:
// then it returns at once. At most rereadBatches in a row, so the loop's other descriptors
// and posted work are not kept waiting. In the loop's blocking mode it reads once: the read
// waits for the next batch, and the loop calls it again at once (after any posted work).
func (g *fdGroup) onReadable() func() {
	return func() {
		if g.b.loop.Blocking() {
			g.readAndDispatch()
			return
		}
		for i := 0; i < rereadBatches; i++ {
			g.awaited = false
			if n := g.readAndDispatch(); n == 0 || g.awaited {
				return
			}
		}
	}
}

// readAndDispatch reads one batch and dispatches it; it returns the bytes read (0: the queue
// was empty, or the read failed and the group is paused).
func (g *fdGroup) readAndDispatch() int {
	b := g.b
	n, err := g.readOnLoop(g.buf)
	// A new batch: its events may follow moves not yet read.
	g.fidIdle = false
	if err != nil || n == 0 {
		b.loop.Awake() // the read is over: work posted from now on needs no wake
		if err != nil {
			b.log.Error("reading fanotify group", "group", g.name, "err", err)
			g.reg.Pause()
			time.AfterFunc(errorPause, g.reg.Resume)
		}
		return 0
	}
	now, mono := g.clock.now()
	b.loop.AwakeAt(mono) // as Awake; and the loop's yield check takes this clock reading
	v := b.view.Load()
	// The batch's answers are written at its end, also when a Handler panics (the panic goes
	// on once they are, with the event being dispatched answered).
	defer g.endBatch()
	// dispatchBatch's work, with the events parsed in this loop and handled by a direct call:
	// its callback through ParseFanotifyInto made two indirect calls per event (three with
	// parseEach's of the parser), on the embedded guard's path.
	buf := g.buf[:n]
	g.countBatch(buf, now)
	if a := b.ahead.Load(); a != nil {
		g.answerAhead(buf, a)
	}
	for off := 0; off < len(buf); {
		size, err := sys.ParseFanotifyEventAt(buf, off, &g.kev)
		if err != nil {
			g.malformed(err)
			g.endAnswers()
			g.close()
			return 0
		}
		g.handle(&g.kev, v, now)
		off += size
	}
	return n
}

// handle turns one FD-group event into an engine event: a notification (from a filesystem
// whose notification events the FID group does not take: fsState.notifyFID) is dispatched
// here (Notify never blocks for one, and order is kept), a permission event by handlePerm.
func (g *fdGroup) handle(kev *sys.FanotifyEvent, v *view, now time.Time) {
	b := g.b
	if kev.Mask&sys.FAN_Q_OVERFLOW != 0 {
		g.overflow(fdBits)
		return
	}
	if kev.Fd < 0 {
		return // FAN_NOFD without overflow, or an FD_ERROR: nothing to answer or report
	}
	if kev.Pid == b.pid && g.waker != nil && g.waker.IsWake(kev.Mask, kev.Pid, b.pid, kev.Fd) {
		sys.Close(int(kev.Fd)) // the loop's wake-up (see fdGroup): nothing to report
		return
	}
	if kev.IsPerm() {
		g.handlePerm(kev, v, now)
		return
	}
	ev, ok := b.translateFD(kev, v, now, true, nil)
	sys.Close(int(kev.Fd))
	if ok {
		ev.Comm, ev.Exe, ev.ExeDeleted = b.comms.get(kev.Pid, now)
		b.eng.Notify(b.ctx, ev)
		b.maybeIgnore(ev, v, nil)
		ev.Release()
	}
}

// batchClock reads the time of each batch (the events' Time) with one clock read, the
// monotonic clock's alone (schedtick.Now), where time.Now makes two (the wall clock's too):
// the time is the last full reading's plus the monotonic time elapsed since, and a full
// reading is taken again once the last is wallEvery old. Both clocks advance together but for
// a step of the wall clock (settimeofday) or its slewing (at most 500 ppm: 4 µs in
// wallEvery), which a batch's time then shows at most wallEvery late. Event times are records
// (a trace line's, an audit line's latency) and the start of a Handler's deadline; no
// decision answered at once reads them. The same reading, as a duration on schedtick's clock,
// is the loop's yield check's (evloop's AwakeAt): one clock read per batch for both, and no
// time.Time arithmetic but the one Add that makes the batch's time.
type batchClock struct {
	base     time.Time     // the last full reading
	baseMono time.Duration // base on schedtick's clock (schedtick.Mono(base))
	reads    uint64        // full readings (tests; zero: none yet)
}

// wallEvery is how old batchClock's full reading may get.
const wallEvery = 8 * time.Millisecond

// now returns the batch's time and the same instant on schedtick's clock.
func (c *batchClock) now() (time.Time, time.Duration) {
	m := schedtick.Now()
	if d := m - c.baseMono; c.reads != 0 && d >= 0 && d < wallEvery {
		return c.base.Add(d), m
	}
	c.base = time.Now()
	c.baseMono = schedtick.Mono(c.base)
	c.reads++
	return c.base, c.baseMono
}
