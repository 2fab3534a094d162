//go:build linux

package backend

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// permEvent is a kernel permission event: the engine payload of its engine event. It is
// answered exactly once (answer), and its descriptor is closed once the engine and every
// group are done with it (Release).
//
// With Options.ReusePermEvents the FD group reuses a permEvent for a later kernel event once
// the loop has written its answer and its payload was released (fdGroup.flushAnswers,
// newPermEvent): then no allocation is made per event (docs/security.md, "Reused permission
// events"). state carries the event's generation, so that an answer meant for an earlier event
// (Backend.Close answers from a snapshot of inflight, taken under a lock it then lets go) can
// never answer the later one.
type permEvent struct {
	g  *fdGroup
	fd int32
	// state is the generation << stateGenShift and the bits stateAnswered (once the event
	// is answered: claim), stateHeld (the answer is decided but waits in the FD group's batch
	// of answers until the batch is written: answerInBatch sets it with stateAnswered, in
	// the same compare-and-swap) and stateReleased (Release came while it was held, so
	// flushAnswers closes the descriptor, after the answer). An unanswered event's state is
	// its generation alone: held and released come only with answered.
	state atomic.Uint64
	// reuse: the loop may take it back after its answer (finishPerm: answered in the batch of
	// a backend with ReusePermEvents). The loop's.
	reuse bool

	// rawClose: the descriptor is closed with a raw system call (translateFD: a filesystem
	// where close waits for nothing but the CPU and the local disk). The loop's.
	rawClose bool

	// st is the event object's statx; pathTried says translateFD looked for the path already
	// (path is then what it found, "" if unknown, and Path does not look again).
	st        sys.Stat
	pathTried bool
	path      string
	// fs is the state of the event object's filesystem when a view holds it (translateFD):
	// Path looks for the object's real path through its anchor, as translateFD does.
	fs *fsState
	// pathState says whether Path may still read the descriptor (pathOpen), is reading it
	// (pathReading, under pathMu), or never will (pathSettled: path is final). closeFd
	// settles it before the descriptor goes: with one compare-and-swap when no Path is
	// reading, else after waiting for that Path on pathMu. A permEvent that goes back for
	// reuse is closed without it (flushAnswers: nothing uses the event after its release),
	// and newPermEvent sets pathOpen again if a Path moved it.
	pathState atomic.Uint32
	pathMu    sync.Mutex

	// What the verdict cache needs to know that the decision still stands when it places its
	// mark: the generations from before the object's path was read (and st's ctime).
	markGen, cacheGn uint64

	// ev is the event's engine event (translateFD fills it): allocated with the permEvent,
	// its payload.
	ev engine.Event
}

// The bits of permEvent.state below the generation.
const (
	stateAnswered = 1 << iota
	stateHeld
	stateReleased
	stateGenShift = iota
)

// claim marks the event answered; it reports false when it was already.
func (p *permEvent) claim() bool { return p.claimWith(0) }

// claimWith is claim that sets bits with stateAnswered, in the same compare-and-swap.
func (p *permEvent) claimWith(bits uint64) bool {
	s := p.state.Load()
	return s&stateAnswered == 0 && p.state.CompareAndSwap(s, s|stateAnswered|bits)
}

// generation is the event's generation, for answerGen.
func (p *permEvent) generation() uint64 { return p.state.Load() >> stateGenShift }

// answer writes the kernel answer, once; later calls do nothing.
func (p *permEvent) answer(response uint32) {
	if p.claim() {
		p.write(response)
	}
}

// answerGen answers the event of generation gen, once: nothing if p has been answered, or
// reused for another kernel event since gen was read.
func (p *permEvent) answerGen(gen uint64, response uint32) {
	if p.state.CompareAndSwap(gen<<stateGenShift, gen<<stateGenShift|stateAnswered) {
		p.write(response)
	}
}

// write writes the answer of a claimed event and takes it out of inflight (where only an
// event a walk waited for is; answers decided during the batch's dispatch go through
// answerInBatch instead).
func (p *permEvent) write(response uint32) {
	b := p.g.b
	if err := p.g.respond(p.fd, response); err != nil && !isClosedErr(err) {
		b.log.Error("answering a permission event", "err", err)
	}
	b.inflightMu.Lock()
	delete(b.inflight, p)
	b.inflightMu.Unlock()
}

// answerInBatch decides the answer, once, and queues it in the FD group's batch of answers,
// which flushAnswers writes in one system call at the end of the batch being dispatched (or
// once it holds maxHeldAnswers). Only the loop calls it, while it dispatches a batch.
func (p *permEvent) answerInBatch(response uint32) {
	if !p.claimWith(stateHeld) { // answered and held in one compare-and-swap
		return
	}
	g := p.g
	g.held = append(g.held, p)
	g.heldAnswers.Add(p.fd, response)
	if len(g.held) >= maxHeldAnswers {
		g.flushAnswers()
	}
}

// testPathReading, set by tests, runs in Path while it holds the descriptor to read it
// (pathReading).
var testPathReading func()

// The states of permEvent.pathState.
const (
	pathOpen    = 0
	pathReading = 1
	pathSettled = 2
)

// Release closes the event's descriptor (engine.Payload): at once, or, while its answer is
// held in the batch, once the answer is written (an event's descriptor is closed after its
// answer, so that its number is never that of another pending event when the answer names it).
func (p *permEvent) Release() {
	for {
		s := p.state.Load()
		if s&(stateHeld|stateReleased) != stateHeld {
			break
		}
		if p.state.CompareAndSwap(s, s|stateReleased) {
			return // flushAnswers closes it
		}
	}
	p.closeFd()
}

// unhold ends the wait of a held answer once flushAnswers wrote it, and reports whether the
// event was released meanwhile (then its descriptor is flushAnswers' to close). Released
// already (the embedded guard's case: the payload is released on the loop before the batch
// ends), nothing can change the state any more but newPermEvent's next generation (Release
// comes once per event, and every answer's compare-and-swap fails on an answered one), so it
// is left as it is: no locked instruction.
func (p *permEvent) unhold() (released bool) {
	for {
		s := p.state.Load()
		if s&stateReleased != 0 {
			return true
		}
		if p.state.CompareAndSwap(s, s&^stateHeld) {
			return false
		}
	}
}

// closeFd closes the event's descriptor, with its path settled first: a Path asked later (a
// notify.Request kept past its decision) must not read the descriptor's number, which may
// name another event's file by then; it gets what was read before, or "" (unknown).
func (p *permEvent) closeFd() {
	if !p.pathState.CompareAndSwap(pathOpen, pathSettled) && p.pathState.Load() != pathSettled {
		// A Path is reading the descriptor (pathReading): wait until it has.
		p.pathMu.Lock()
		p.pathMu.Unlock()
	}
	p.close()
}

// close closes the event's descriptor: a raw system call when translateFD said so.
func (p *permEvent) close() {
	if p.rawClose {
		sys.CloseRaw(int(p.fd))
	} else {
		sys.Close(int(p.fd))
	}
}

// Fd returns the event's open descriptor, for reading the file's content (reads through it
// cause no events). Valid until the delivery is released; do not close it.
func (p *permEvent) Fd() int { return int(p.fd) }

// Stat returns the statx of the event's object that translateFD took when the event was read
// (taken again by Path for a file unlinked meanwhile: restatIfDeleted). Read it on the
// goroutine that reads the path, before the delivery is released: the engine's Handler
// (notify's Inline) does.
func (p *permEvent) Stat() sys.Stat { return p.st }

// Path returns the path of the file, resolved on first use: "" if it is unknown (longer
// than the kernel prints for a file, or printed wrong: see eventPath).
func (p *permEvent) Path() string {
	if p.pathState.Load() == pathSettled {
		return p.path
	}
	p.pathMu.Lock()
	if p.pathState.CompareAndSwap(pathOpen, pathReading) {
		if testPathReading != nil {
			testPathReading()
		}
		if p.path == "" && !p.pathTried {
			p.path = p.lookPath()
		}
		p.pathState.Store(pathSettled)
	}
	// Else settled: by an earlier Path, or by closeFd (the descriptor may be gone).
	p.pathMu.Unlock()
	return p.path
}

// lookPath is the path translateFD would have found: eventPath's, or, for an object whose path
// the kernel printed in another mount namespace (an overlay's layer, whose backing file is on
// the overlay's private copy of the layer's mount; a bind mount in a user's namespace), its
// real one (verifyPath: by handle through the filesystem's anchor). Without it, a file whose
// ancestry came from the chain cache (every access but the first) had its path unknown.
func (p *permEvent) lookPath() string {
	path, known, _ := eventPath(int(p.fd), &p.st)
	if known || p.fs == nil || p.st.Nlink == 0 {
		return path
	}
	raw, _ := sys.FdPath(int(p.fd))
	if raw == "" {
		return ""
	}
	if vpath, ok := verifyPath(p.fs, int(p.fd), p.st, raw, p.ev.Pid, false); ok {
		return vpath
	}
	return ""
}

func isClosedErr(err error) bool {
	return err == os.ErrClosed || strings.Contains(err.Error(), "file already closed")
}

// handlePerm dispatches a kernel permission event on the loop, and answers it there if it
// can: the event of an exempt process at once; else its engine event walks the groups as far
// as possible here (groups with a Handler answer at once), and the kernel is answered without
// a hand-off. A walk that must wait for a group's answer goes on, and answers the kernel, on
// the loop too: the engine hands its continuation to the loop (engine.Config.Executor).
func (g *fdGroup) handlePerm(kev *sys.FanotifyEvent, v *view, now time.Time) {
	b := g.b
	// Taken first, by every permission event, so that the batch's events answered ahead are
	// matched in order whatever path an event takes (an answered one never takes the exempt
	// path, whose answer would be a second).
	ahead := g.takeAhead(kev.Fd)
	if !ahead && b.exempts.mayExempt(kev.Pid) && b.exempts.Exempt(kev.Pid) {
		b.stats.SelfExempt.Add(1)
		g.respond(kev.Fd, sys.FAN_ALLOW)
		sys.Close(int(kev.Fd))
		return
	}
	p := g.newPermEvent(kev.Fd)
	// Unanswered from here: Close answers it through dispatching while the loop dispatches
	// it, and through inflight once a walk waits for a group (see fdGroup.dispatching). Stored
	// only when it changes: a reused permEvent is often the one dispatching names already.
	if g.dispatching.Load() != p {
		g.dispatching.Store(p)
	}
	// Read before the walk: a group that adds a permission mark later flushes the cache, and
	// an allow decided without it must not be cached after that.
	p.cacheGn = b.cacheGen.Load()
	// Answered ahead (AnswerAhead, fdGroup.answerAhead): Allow went out before the batch was
	// handled; the event is translated and walked as any other, its descriptor held open until
	// the batch ends (flushAnswers settles it), and the walk's answer is not sent (claim).
	if ahead {
		p.reuse = b.opts.ReusePermEvents
		p.claimWith(stateHeld)
		g.written = append(g.written, p)
	}
	ev, ok := b.translateFD(kev, v, now, false, p)
	if !ok {
		// The kernel fails open on errors of its own; so do we, and count it.
		p.answer(sys.FAN_ALLOW)
		p.Release()
		return
	}
	ev.Payload = p
	ev.AllowedAhead = ahead
	// A Handler that panics has p answered (allowed) by the batch's endBatch, which finds it
	// in dispatching, and the panic goes on: no defer per event. DispatchInto, and finishPerm
	// taking the fields it needs, so that the Response is never copied whole: its copies went
	// through memory, wide loads of what narrow stores had just written (a store-forwarding
	// stall, half of this function's samples in BenchmarkGuardPermPath).
	var r engine.Response
	if w := b.eng.DispatchInto(ev, &r); w != nil {
		g.awaitPerm(p, ev, v, w)
		return
	}
	b.finishPerm(p, ev, v, r.Verdict, r.Errno, r.Cache && r.Reason == engine.ReasonAnswered, true)
}

// awaitPerm finishes, once its group answers, the walk of a permission event that handlePerm
// dispatched.
func (g *fdGroup) awaitPerm(p *permEvent, ev *engine.Event, v *view, w *engine.Walk) {
	b := g.b
	// The rest of the walk runs once the group holding the event answers (a client's
	// Respond, its deadline's timer, its Close, Close of the backend), on the loop: no
	// goroutine per waiting event. Until then Close finds it in inflight, where it is
	// before dispatching lets go of it (Close looks at dispatching first).
	// (An event answered ahead is answered: nothing for Close to answer, and no answer's
	// write to take it out of inflight again.)
	if !ev.AllowedAhead {
		b.inflightMu.Lock()
		b.inflight[p] = struct{}{}
		b.inflightMu.Unlock()
	}
	g.awaited = true
	b.wg.Add(1)
	w.Await(b.ctx, func(r engine.Response) {
		defer b.wg.Done()
		defer func() {
			if x := recover(); x != nil {
				p.answer(sys.FAN_ALLOW) // never leave the opener blocked, even on a bug
				panic(x)
			}
		}()
		b.finishPerm(p, ev, v, r.Verdict, r.Errno, r.Cache && r.Reason == engine.ReasonAnswered, false)
	})
}

// finishPerm answers the kernel with the engine's verdict (its Response's Verdict and Errno;
// cache: its Cache, of an answer, ReasonAnswered): inBatch (on the loop, during the dispatch
// of the batch that read the event) in the batch's answers, written together at its end;
// otherwise at once.
func (b *Backend) finishPerm(p *permEvent, ev *engine.Event, v *view, verdict engine.Verdict, errno syscall.Errno, cache, inBatch bool) {
	response := sys.FAN_ALLOW
	if verdict == engine.Deny {
		response = sys.FAN_DENY
		if errno != 0 && p.g.class == sys.FAN_CLASS_PRE_CONTENT {
			response = sys.FAN_DENY_ERRNO(errno)
		}
	} else if cache {
		b.cacheVerdict(p, ev, v)
	}
	if inBatch {
		// Answered here, on the loop: nothing waits on p but the batch's answers, and its
		// payload's release (ev.Release below, unless a group still holds the event).
		p.reuse = b.opts.ReusePermEvents
		p.answerInBatch(response)
	} else {
		p.answer(response)
	}
	b.maybeIgnore(ev, v, nil)
	ev.Release()
}

// maxFreePermEvents bounds the FD group's reusable permEvents (fdGroup.free): one batch's.
const maxFreePermEvents = maxHeldAnswers

// newPermEvent is the permEvent of a kernel event whose descriptor is fd: a reused one when the
// loop has one (Options.ReusePermEvents), with a new generation. On the loop only.
func (g *fdGroup) newPermEvent(fd int32) *permEvent {
	n := len(g.free)
	if n == 0 {
		g.b.stats.PermEventsAllocated.Add(1) // counted here, off the path of a reused one
		return &permEvent{g: g, fd: fd}
	}
	p := g.free[n-1]
	g.free[n-1] = nil
	g.free = g.free[:n-1]
	// Everything but the generation starts over. The new generation is published right after
	// the one field it guards (answerGen, on another goroutine, reads fd once its
	// compare-and-swap succeeds, and nothing else of the event), and before the rest is
	// reset: the exchange that publishes it waits for the stores before it to drain, which
	// the event's reset (some 500 bytes) made the bulk of. No other goroutine reads the rest
	// of this generation before the engine delivers the event (Dispatch), or of the last
	// after its release (the engine's contract).
	gen := p.generation() + 1
	p.fd = fd
	p.state.Store(gen << stateGenShift) // not held, not released: flushAnswers unheld it
	p.reuse, p.rawClose = false, false
	p.st, p.pathTried, p.path, p.fs = sys.Stat{}, false, "", nil
	if p.pathState.Load() != pathOpen { // a Path read the last generation's (flushAnswers)
		p.pathState.Store(pathOpen)
	}
	p.markGen, p.cacheGn = 0, 0
	p.ev = engine.Event{}
	return p
}
