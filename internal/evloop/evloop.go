//go:build linux

// Package evloop is the event loop of the permission fast path: one goroutine, locked to one
// OS thread, that waits in poll(2) for the descriptors registered with it, calls each one's
// callback when it is readable, and runs the work posted to it. When the only descriptor
// registered offers it (RegisterBlocking: the backend's fanotify group, when no daemon client
// is registered), the loop waits for it in its callback's blocking read(2) instead, as a C
// responder does: one system call per event fewer (see "Blocking mode").
//
// Why one thread: a kernel permission event wakes the thread that waits for it, often on the
// CPU of the process that is waiting for the answer. If the answer comes back to that same
// thread (a daemon's client socket registered here, a walk's continuation posted here), the
// verdict is written to the kernel by the thread that read the event, with no hand-off to a
// thread on another CPU: on a 2-vCPU VM each hand-off costs about as much as the rest of the
// round trip (bench/relayfloor, bench/daemon.sh). (It does not yield per event,
// runtime.Gosched: a goroutine locked to its thread that yields hands its P to another
// thread and waits to be handed it back — two wake-ups; bench/backend.sh lost 2-3 times its
// per-open time with it. It yields once per 8 ms of work, unlocked from its thread for the
// while: see maybeYield and yield.)
//
// # Rules
//
//   - Callbacks and posted work run on the loop goroutine, one at a time, and must never
//     block: no wait on a socket, a channel, a lock held by others across a wait (TryLock
//     only), or anything without a small bound. Everything registered on the loop waits
//     while one of them runs.
//   - Work posted while the loop runs a callback or posted work (by it, or by whatever it
//     called) runs on the loop right after it returns, before the loop waits again, in the
//     order posted, without any wake-up. Work posted from another goroutine wakes the loop
//     (an eventfd) only if the loop is waiting or about to.
//   - A callback runs when its descriptor is readable, hung up or in error. Poll is level
//     triggered: a callback that leaves data unread (it reads a bounded amount per call) is
//     called again at once after the others. It must consume the condition, Pause or
//     Unregister, or the loop spins.
//   - Register, Pause, Resume and Post may be called from any goroutine; Pause and Resume
//     take effect before the loop's next poll (at once on the loop). Unregister called on
//     the loop takes effect at once; from another goroutine it waits until the loop has let
//     go of the descriptor (the callback is not running and will not run again, the
//     descriptor is not polled): only then may the owner close it. That wait is short
//     because callbacks never block, and it must not be made while holding a lock that a
//     callback takes with Lock rather than TryLock.
//   - A paused registration may still see one call of its callback that the loop had
//     decided on before the pause (when paused from another goroutine): callbacks check
//     their owner's state.
//
// # Wait hooks
//
// A descriptor registered with RegisterHooks also has the loop call two functions of its
// owner around each wait in poll (never in a blocking read: a loop with it registered polls):
// Before, after the loop's last look at the posted work and just before it would wait, and
// After, once the wait ends. They serve a descriptor that only needs to be made readable
// while the loop sleeps (the permission ring's kick pipe: its client writes it only when the
// daemon asked, and the daemon asks only in Before, so that answers that come while the loop
// is busy cost no write, no read and no wake-up). Before may do its owner's work itself and
// report that it did: the loop then does not sleep but goes round again, and polls without
// waiting first if the round before found work too (every descriptor is still served after
// at most two calls of Before that found work, however much work they find; one that finds
// none is followed by the wait, which serves them all). Both run on the loop under its rules.
//
// # Blocking mode
//
// A descriptor registered with RegisterBlocking offers two things: a way to make its reads
// wait (SetBlocking) and a way to make a waiting read return from any goroutine (Wake: the
// backend queues an event of its own on its fanotify group, sys.FanotifyWaker). Whenever it
// is the only active registration, the loop makes it blocking and, instead of polling, calls
// its callback, which reads once: the read is the wait. Work posted or a registration
// changed from another goroutine then wakes the loop through Wake instead of the eventfd.
// As soon as another descriptor is active (a daemon's client socket) or the descriptor is
// paused or unregistered, the loop makes it non-blocking again and polls them all. A
// SetBlocking that fails turns blocking mode off for that registration for good (if it
// could not be made non-blocking again, Blocking keeps saying so and its callback keeps
// reading once per call, which poll says will not wait). The callback tells the modes apart
// with Loop.Blocking, and calls Loop.Awake once its read returned (a post made after that,
// by the callback itself, needs no wake), or Loop.AwakeAt with the clock it read then.
//
// # Lock order
//
//	Loop.mu    the posted work, pending registration changes and the closed flag (a leaf:
//	           nothing is called while it is held)
//
// The loop's own state (the registrations polled, the poll set) belongs to the loop
// goroutine and takes no lock.
//
// # Goroutines
//
// One: the loop goroutine, started by the first Register or Post, locked to its OS thread for
// its whole life but for its yields (Loop.yield: unlocked for a runtime.Gosched, locked again
// to whichever thread runs it next; the thread it ends on ends with it). Close ends it: it stops
// calling callbacks, runs the work still posted, and returns; Close waits for that. Work
// posted after Close runs at once on the posting goroutine, so that nothing posted is ever
// lost (a walk's continuation answers a kernel event).
package evloop

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/schedtick"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// ErrClosed is returned by Register on a closed loop.
var ErrClosed = errors.New("evloop: closed")

// Loop is an event loop. The zero value is not usable: call New.
type Loop struct {
	name string

	startOnce sync.Once
	started   atomic.Bool
	startErr  error
	waker     *sys.Waker
	tid       atomic.Int64 // the loop's thread id, once it runs

	// sleepState's low bit (sleeping) is set while the loop waits in poll or in a blocking
	// read, or is about to (from before its last look at the queues); the bits above it
	// count the waits in a blocking read (Waits), added with the sleeping bit in one locked
	// add (a blocking-mode round costs two locked instructions, that add and the clear,
	// where a Swap, a count and a Store made three). Only the loop writes it, and the
	// sleeping bit is clear at the top of every round. woken is set once a wake was sent for
	// this wait; blockOn is the registration whose blocking read is the wait (nil: poll).
	// See wake.
	sleepState atomic.Uint64
	woken      atomic.Bool
	blockOn    atomic.Pointer[Registration]
	// queued is len(posted) > 0 || len(changes) > 0 || closed, kept so whenever mu is
	// released (setQueuedLocked), so that the loop looks at its queues without taking mu
	// when they are empty, which they are for nearly every event (see wake for why a
	// lock-free look before a wait misses nothing). Beside sleepState, woken and blockOn,
	// and the loop goroutine's dirty, cur and now: the fields a round in blocking mode
	// touches (blockingRounds), side by side.
	queued atomic.Bool
	dirty  bool          // regs changed: rebuild fds (the loop goroutine's)
	cur    *Registration // the registration whose callback runs (the loop goroutine's)
	// now is the clock a callback read once its wait ended (AwakeAt: a schedtick.Now
	// reading), for the next maybeYield; zero: none, maybeYield reads the clock itself. The
	// loop goroutine's.
	now time.Duration
	// hookWorked: the Before hooks did work since the loop last polled (run, poll; the loop
	// goroutine's).
	hookWorked bool
	// tick is maybeYield's, also in every round (the loop goroutine's); its Every is
	// yieldEvery.
	tick schedtick.Tick

	tidEpoch  atomic.Uint64 // odd while the loop goroutine is unlocked from its thread (yield)
	done      chan struct{} // closed when the loop goroutine has returned (or never will run)
	wakes     atomic.Uint64 // wakes sent (eventfd or Blocking.Wake), for the tests
	yields    atomic.Uint64 // yields made (yield), for the tests
	polls     atomic.Uint64 // waits in poll (Waits)
	hookPolls atomic.Uint64 // polls without waiting because a Before hook worked (HookPolls)

	mu      sync.Mutex
	posted  []func() // guarded by mu
	spare   []func() // guarded by mu: a drained slice for Post to reuse
	changes []change // guarded by mu: registration changes for the loop to apply
	closed  bool     // guarded by mu

	// The loop goroutine's own.
	regs  []*Registration // polled, in order: regs[i] is fds[i+1] (copy on write)
	fds   []int
	ready []bool
	ps    sys.PollSet
}

// Registration is a descriptor registered with a Loop.
type Registration struct {
	l      *Loop
	fd     int
	cb     func()
	wakeFn func() // RegisterBlocking's Blocking.Wake

	// The loop goroutine's: the registration was added, removed, is paused; active: polled;
	// bl: RegisterBlocking's (nil once a SetBlocking failed); blocking: its descriptor was
	// made blocking.
	added, removed, paused, active bool
	bl                             *Blocking
	blocking                       bool
	hooks                          *Hooks // RegisterHooks's (set once, before the loop sees r)
}

// Hooks are what RegisterHooks has the loop call around its waits (see "Wait hooks").
type Hooks struct {
	// Before is called on the loop just before it waits in poll. It reports whether it did
	// work (then the loop polls without waiting instead, and calls it again after).
	Before func() (worked bool)
	// After is called on the loop once a wait in poll ended (for whatever reason), before
	// the callbacks of the descriptors found ready. May be nil.
	After func()
}

// Blocking is what a descriptor registered with RegisterBlocking offers for the loop to wait
// for it in a blocking read instead of poll(2) when it is the only one registered.
type Blocking struct {
	// SetBlocking makes the descriptor's reads wait for data (true) or return at once when
	// there is none (false, as at registration). Called on the loop.
	SetBlocking func(blocking bool) error
	// Wake makes a read blocked on the descriptor return, by queueing something that the
	// callback reads and ignores. Called from any goroutine while the registration is
	// active, so it must work until Unregister returns; called at most once per wait.
	Wake func()
}

type changeKind uint8

const (
	chAdd changeKind = iota
	chPause
	chResume
	chRemove
)

type change struct {
	kind changeKind
	r    *Registration
	done chan struct{} // chRemove from another goroutine: closed once applied
}

// New returns a loop named name (for errors). Its goroutine starts on first use.
func New(name string) *Loop {
	l := &Loop{name: name, done: make(chan struct{}), tick: schedtick.Tick{Every: yieldEvery}}
	l.tick.Yield = l.yield
	return l
}

// start starts the loop goroutine, once (not after Close).
func (l *Loop) start() error {
	l.startOnce.Do(func() {
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			l.startErr = ErrClosed
			close(l.done)
			return
		}
		w, err := sys.NewWaker()
		if err != nil {
			l.startErr = fmt.Errorf("evloop %s: %w", l.name, err)
			close(l.done)
			return
		}
		l.waker = w
		l.started.Store(true)
		go l.run()
	})
	return l.startErr
}

// OnLoop reports whether the caller runs on the loop goroutine (inside a callback or posted
// work). It costs a gettid(2).
//
// The loop goroutine is locked to its thread, so no other goroutine runs on that thread,
// except while it yields (yield unlocks it): then tidEpoch is odd, and OnLoop answers false
// (the loop goroutine, in its yield, is not asking). Its thread id is compared only inside one
// even epoch, whose whole span the loop is locked to the thread tid names: a goroutine whose
// gettid(2) falls in it runs on another thread. (Without the epoch, a goroutine could read
// tid before a yield and call gettid on the thread the loop has just left.)
func (l *Loop) OnLoop() bool {
	if !l.started.Load() {
		return false
	}
	for {
		e := l.tidEpoch.Load()
		if e&1 != 0 {
			return false
		}
		on := l.tid.Load() == int64(syscall.Gettid())
		if l.tidEpoch.Load() == e {
			return on
		}
	}
}

// Register has cb called on the loop whenever fd is readable, hung up or in error, until
// Unregister. The first call may come before Register returns.
func (l *Loop) Register(fd int, cb func()) (*Registration, error) {
	return l.add(&Registration{fd: fd, cb: cb})
}

// add starts the loop if need be and has it poll r (Register and its variants).
func (l *Loop) add(r *Registration) (*Registration, error) {
	if err := l.start(); err != nil {
		return nil, err
	}
	r.l = l
	if !l.enqueue(change{kind: chAdd, r: r}) {
		return nil, ErrClosed
	}
	return r, nil
}

// RegisterBlocking is Register for a descriptor that the loop may also wait for by reading
// it (see "Blocking mode" in the package doc): cb then runs with the descriptor blocking, and
// must read it at most once per call (Loop.Blocking says which mode it runs in).
func (l *Loop) RegisterBlocking(fd int, cb func(), bl Blocking) (*Registration, error) {
	if bl.SetBlocking == nil || bl.Wake == nil {
		return nil, errors.New("evloop: RegisterBlocking needs SetBlocking and Wake")
	}
	return l.add(&Registration{fd: fd, cb: cb, wakeFn: bl.Wake, bl: &bl})
}

// RegisterHooks is Register with hooks the loop calls around each of its waits (see "Wait
// hooks" in the package doc); h.Before is required.
func (l *Loop) RegisterHooks(fd int, cb func(), h Hooks) (*Registration, error) {
	if h.Before == nil {
		return nil, errors.New("evloop: RegisterHooks needs Before")
	}
	return l.add(&Registration{fd: fd, cb: cb, hooks: &h})
}

// Blocking reports, in a callback, whether its descriptor is blocking: then the callback
// reads it at most once (the loop may have called it to wait in that read rather than
// because poll said it is readable). Only on the loop. (A method of the loop, not of the
// Registration: a callback may run before Register has returned it.)
func (l *Loop) Blocking() bool { return l.cur != nil && l.cur.blocking }

// Awake is called by a callback in blocking mode as soon as its read returned: from then on
// work posted needs no wake (the loop looks at the queues once the callback returns). Only
// on the loop.
func (l *Loop) Awake() {
	if l.sleepState.Load()&sleeping != 0 {
		l.sleepState.Add(^uint64(0)) // minus one: clears it (only the loop writes sleepState)
	}
}

// The parts of Loop.sleepState.
const (
	sleeping    = 1 // the loop waits, or is about to
	blockedWait = 2 // one wait in a blocking read, counted (Waits)
)

// sleepingBlocked is sleepState's add for a wait in a blocking read: the sleeping bit and
// its count.
const sleepingBlocked = sleeping + blockedWait

// AwakeAt is Awake for a callback that read the clock once its read returned (now, a
// schedtick.Now reading: the monotonic clock alone, as a duration): the loop takes it for its
// own clock reading after the callback (its yield check, maybeYield) rather than reading the
// clock again (two clock reads per event, of the three to five an event costs, on the
// embedded guard's path), and compares it as it is (one integer comparison, no time.Time
// arithmetic). now must have been read after the wait ended, in this call of the callback;
// the check then runs late by what the callback (and the work it posted, which runs right
// after it) took after reading it, which callbacks keep short (the rules). Only on the loop.
func (l *Loop) AwakeAt(now time.Duration) {
	l.Awake()
	l.now = now
}

// Pause stops the loop from polling r's descriptor, until Resume; see the package rules.
func (r *Registration) Pause() { r.l.enqueue(change{kind: chPause, r: r}) }

// Resume polls r's descriptor again after Pause.
func (r *Registration) Resume() { r.l.enqueue(change{kind: chResume, r: r}) }

// Unregister ends r: once it returns, r's callback is not running (unless Unregister was
// called from it) and never runs again, and the loop does not poll r's descriptor, so the
// owner may close it. Idempotent. From another goroutine it waits for the loop (see the
// package rules).
func (r *Registration) Unregister() {
	l := r.l
	if l.OnLoop() {
		l.apply(change{kind: chRemove, r: r})
		return
	}
	done := make(chan struct{})
	if l.enqueue(change{kind: chRemove, r: r, done: done}) {
		<-done
	}
	// Else closed: the loop polls nothing any more.
}

// enqueue hands a registration change to the loop, or applies it at once on the loop. It
// reports false if the loop is closed (it polls nothing any more).
func (l *Loop) enqueue(c change) bool {
	if l.OnLoop() {
		l.apply(c)
		return true
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.changes = append(l.changes, c)
	l.setQueuedLocked()
	l.mu.Unlock()
	l.wake()
	return true
}

// Post runs fn on the loop: after the current callback or posted work when called on the
// loop, else as soon as the loop is free (waking it if it waits). After Close, or if the loop
// could not start, fn runs at once on the caller's goroutine.
func (l *Loop) Post(fn func()) {
	if l.start() != nil {
		fn()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		fn()
		return
	}
	if l.posted == nil && l.spare != nil {
		l.posted, l.spare = l.spare, nil
	}
	l.posted = append(l.posted, fn)
	l.setQueuedLocked()
	l.mu.Unlock()
	l.wake()
}

// setQueuedLocked makes queued say whether anything is queued for the loop. Needs mu; every
// holder of mu that changes posted, changes or closed calls it before letting go.
func (l *Loop) setQueuedLocked() {
	q := len(l.posted) > 0 || len(l.changes) > 0 || l.closed
	if l.queued.Load() != q {
		l.queued.Store(q)
	}
}

// wake interrupts the loop's wait if it waits or is about to, once per wait. Before each
// wait the loop sets blockOn, clears woken, then sets sleeping, then takes its last look at
// the queues (queued, an atomic load; a poster sets it under mu once it has queued); a
// poster queues and sets queued, then reads sleeping, takes woken, then reads blockOn. Each
// side's store comes before its look with a full barrier between (the loop's is a locked
// add; the poster's lets go of mu, a locked instruction), so one of them sees the other, and
// nothing queued waits for a wait that nobody interrupts; a poster that takes woken for this
// wait reads this wait's blockOn, so its wake goes where the loop waits (the eventfd it
// polls, or the descriptor it reads). A poster that took woken for an earlier wait had queued before
// that wait ended, so the loop finds its work without a wake. A wake that comes as the loop
// wakes anyway only makes a later wait return at once.
func (l *Loop) wake() {
	if l.sleepState.Load()&sleeping != 0 && l.woken.CompareAndSwap(false, true) {
		l.wakes.Add(1)
		if r := l.blockOn.Load(); r != nil {
			r.wakeFn()
		} else {
			l.waker.Wake()
		}
	}
}

// Waits reports how many times the loop has waited in poll(2) and in a blocking read (for
// tests and diagnostics: which mode the loop runs in).
func (l *Loop) Waits() (polls, blockingReads uint64) {
	return l.polls.Load(), l.sleepState.Load() / blockedWait
}

// HookPolls reports how many times the loop polled without waiting because a Before hook
// did work (for tests and diagnostics).
func (l *Loop) HookPolls() uint64 { return l.hookPolls.Load() }

// InBlockingRead reports whether the loop waits in a blocking read, or is about to (for
// tests: a wake is then needed to run posted work).
func (l *Loop) InBlockingRead() bool {
	return l.sleepState.Load()&sleeping != 0 && l.blockOn.Load() != nil
}

// Close stops the loop: callbacks are no longer called, the work posted so far runs, and
// Close returns once the loop goroutine has ended — at once when called on the loop, which
// then ends after the current callback. Later Posts run on their caller. Idempotent.
func (l *Loop) Close() {
	l.mu.Lock()
	l.closed = true
	l.setQueuedLocked()
	l.mu.Unlock()
	l.start() // never started: marks it so (ErrClosed), and it never will
	if !l.started.Load() || l.OnLoop() {
		return
	}
	l.wake()
	<-l.done
}

// run is the loop goroutine.
func (l *Loop) run() {
	runtime.LockOSThread() // unlocked only for a yield (see yield): the thread ends with the goroutine
	l.tid.Store(int64(syscall.Gettid()))
	sys.SetSlice(0, loopSlice) // a hint: without it the loop only waits longer (see loopSlice)
	defer close(l.done)
	defer l.waker.Close()
	l.fds = append(l.fds, l.waker.Fd())
	for {
		closed := l.takeChanges()
		l.runPosted()
		if closed {
			l.finish()
			return
		}
		if l.dirty {
			l.rebuild()
		}
		l.maybeYield()
		br := l.setModes()
		worked := br == nil && l.beforeWait()
		if l.dirty {
			l.rebuild() // a hook paused or unregistered something: fds must match regs
		}
		if worked {
			// The hooks did work, which may have posted more (a walk's continuation: it
			// runs now, with no wake, sleeping not being set); then round again (Before
			// again before any wait). The other descriptors are served by the wait that
			// follows if Before then finds nothing (a poll that returns at once if one is
			// ready), or, if it finds work a second time with no poll in between, by a poll
			// without waiting here first: one poll(2) per take where one take is all there
			// is (a daemon's ring answer taken just before it would sleep: h30-daemonsys,
			// TestHooksOneTakeOnePoll), and never more than two takes between two looks at
			// the other descriptors.
			l.runPosted()
			if l.dirty {
				l.rebuild()
			}
			if l.hookWorked {
				l.hookPolls.Add(1)
				l.poll(0) // clears hookWorked
			} else {
				l.hookWorked = true
			}
			continue
		}
		// Only the loop writes blockOn, and clears woken: a store (a locked instruction) only
		// where the value changes.
		if l.blockOn.Load() != br {
			l.blockOn.Store(br)
		}
		if l.woken.Load() {
			l.woken.Store(false)
		}
		// A locked add, not a Store: the look at queued must come after sleeping is visible
		// to posters (Dekker's pairing, see wake), which a Store does not ensure under the race
		// detector (its stores are release-only: internal/proto's ring doc, "Full barriers").
		// A blocking read is counted with it.
		add := uint64(sleeping)
		if br != nil {
			add = sleepingBlocked
		}
		l.sleepState.Add(add)
		if l.queued.Load() {
			l.sleepState.Add(-add) // no wait after all: neither sleeping nor a wait counted
			if br == nil {
				l.afterWait() // no wait after all: what Before armed for it is disarmed
			}
			continue
		}
		if br != nil {
			// Blocking mode: the callback's read is the wait, round after round while
			// nothing else is to be done (blockingRounds).
			l.blockingRounds(br)
			l.runPosted()
			continue
		}
		l.polls.Add(1)
		l.poll(-1)
	}
}

// blockingRounds waits in br's blocking read (its callback), then again, for as long as
// nothing else is to be done between two waits: no registration change made on the loop
// (dirty: a callback's Register, Pause or Unregister, applied at once), no work posted, no
// registration change or Close queued (queued). It returns once the callback has returned
// with dirty set, or when queued is found set just before a wait (then without waiting:
// work the callback posted included); run then does what
// its round does (the posted work, the changes, the mode) and comes back. Each wait is run's
// own, step for step — the yield check, woken cleared, the sleeping bit set with a locked add
// and queued looked at after it (see wake) — without what only a change can alter (the
// changes, the rebuild, the mode, blockOn: br's is set already, and only run sets it): the
// embedded guard's every batch goes round here. Called with sleepingBlocked added and
// queued found clear, as run does before a wait.
func (l *Loop) blockingRounds(br *Registration) {
	add := uint64(sleepingBlocked)
	for {
		l.call(br)
		l.Awake() // if the callback did not
		if l.dirty {
			return // a registration changed on the loop (br's own Pause or Unregister, say)
		}
		l.maybeYield()
		if l.woken.Load() {
			l.woken.Store(false)
		}
		l.sleepState.Add(add)
		if l.queued.Load() {
			l.sleepState.Add(-add) // no wait after all, as in run
			return
		}
	}
}

// poll waits in poll(2) for at most timeout (negative: until a descriptor is ready) and calls
// the callbacks of those ready, each followed by the work it posted. A wait (timeout not 0)
// ends sleeping and calls the After hooks first.
func (l *Loop) poll(timeout time.Duration) {
	l.hookWorked = false
	if cap(l.ready) < len(l.fds) {
		l.ready = make([]bool, len(l.fds))
	}
	ready := l.ready[:len(l.fds)]
	_, err := l.ps.WaitFor(l.fds, ready, timeout)
	if timeout != 0 {
		l.Awake() // clears sleeping
		l.afterWait()
	}
	if err != nil {
		// Not a closed descriptor (poll reports that in its slot, POLLNVAL): ENOMEM or
		// EFAULT. Nothing better to do than to try again.
		return
	}
	if ready[0] {
		l.waker.Drain()
	}
	regs := l.regs // callbacks may change l.regs (copy on write)
	for i, r := range regs {
		if ready[i+1] && r.active {
			l.call(r)
			l.runPosted()
		}
	}
}

// beforeWait calls the active registrations' Before hooks and reports whether any did work.
func (l *Loop) beforeWait() bool {
	worked := false
	for _, r := range l.regs { // a hook may change l.regs (copy on write): this is the old one
		if r.hooks != nil && r.active {
			l.cur = r
			if r.hooks.Before() {
				worked = true
			}
			l.cur = nil
		}
	}
	return worked
}

// afterWait calls the active registrations' After hooks.
func (l *Loop) afterWait() {
	for _, r := range l.regs { // as in beforeWait
		if r.hooks != nil && r.hooks.After != nil && r.active {
			l.cur = r
			r.hooks.After()
			l.cur = nil
		}
	}
}

// yieldEvery is how often a busy loop lets the Go scheduler run it again (see maybeYield).
const yieldEvery = 8 * time.Millisecond

// maybeYield yields the loop's P (runtime.Gosched) when it has not been rescheduled for
// yieldEvery (package schedtick says why: sysmon's preemption, its P taken away in the
// middle of a system call and sysmon polling every 20 µs, some 1,500 wake-ups per second
// under a steady load here: docs/design/performance.md), 125 times a second at most, with the
// goroutine unlocked from its thread (yield). It takes the time a callback read (AwakeAt), or
// reads the monotonic clock alone (schedtick.Now: a reading of exactly zero, possible only at
// the package's initialisation, just makes it read its own).
func (l *Loop) maybeYield() {
	now := l.now
	if now == 0 {
		now = schedtick.Now() // the monotonic clock alone
	}
	l.now = 0
	l.tick.MaybeYieldMono(now)
}

// yield is runtime.Gosched with the goroutine unlocked from its thread for the while. A
// locked goroutine that yields is put back on the run queue while its thread may not run
// anything else: the thread hands its P to another, sleeps, and is woken and handed the P
// back when the goroutine's turn comes (two futex wake-ups and two sleeps, about 4 futex
// calls and 3 context switches per yield, measured: docs/design/performance.md, h7-guard).
// Unlocked, the thread that yields runs the goroutine again itself (or another thread takes
// it). The loop's thread has no state of its own to keep (no signal mask, namespace or
// affinity is ever changed on it), so only OnLoop depends on which thread it is: tidEpoch
// is odd while the goroutine is unlocked, so that nothing that runs on the old thread
// meanwhile passes for the loop, and tid names the thread it is locked to afterwards.
func (l *Loop) yield() {
	old := l.tid.Load()
	l.tidEpoch.Add(1) // odd: OnLoop is false for everyone until the loop is locked again
	runtime.UnlockOSThread()
	runtime.Gosched()
	runtime.LockOSThread()
	tid := int64(syscall.Gettid())
	l.tid.Store(tid)
	l.tidEpoch.Add(1)
	if tid != old {
		// The loop's slice goes with it; the thread it left runs other goroutines now. (A
		// hint, as in run: an error only leaves the default.)
		sys.SetSlice(int(tid), loopSlice)
		sys.SetSlice(int(old), 0)
	}
	l.yields.Add(1)
}

// loopSlice is the scheduler time slice the loop's thread asks for (sys.SetSlice), instead of
// the default (sysctl base_slice: 0.7 ms times 1 + log2 of the CPUs, 1.4 ms on 2 vCPUs). The
// loop runs in short bursts (an event: tens of µs) and someone waits for each: with the
// default, a loop thread woken on a core where a busy loop runs, or preempted by a thread it
// just woke itself (the runtime's sysmon, at the return of a long read(2)), waited for the end
// of that task's slice; with a shorter slice than theirs it runs first. Measured with the loop
// and a busy loop on one core (docs/design/performance.md, h7-exec): the 90th percentile of
// an exec's wait for the guard 0.14-2.2 ms with the default (median of 9 runs 1.45 ms),
// 0.09-3.0 ms with this (median of 9 runs 0.15 ms). It asks for no more CPU than before (a
// task with a short slice is preempted sooner, not favoured in its share). 0.1 ms is the
// kernel's smallest.
const loopSlice = 100 * time.Microsecond

// call runs r's callback.
func (l *Loop) call(r *Registration) {
	l.cur = r
	r.cb()
	l.cur = nil
}

// takeChanges applies the queued registration changes and reports whether the loop is
// closed.
func (l *Loop) takeChanges() (closed bool) {
	if !l.queued.Load() {
		return false // nothing queued, and not closed (see queued)
	}
	l.mu.Lock()
	cs := l.changes
	l.changes = nil
	closed = l.closed
	l.setQueuedLocked()
	l.mu.Unlock()
	for _, c := range cs {
		l.apply(c)
	}
	return closed
}

// apply applies one change, on the loop goroutine.
func (l *Loop) apply(c change) {
	r := c.r
	switch c.kind {
	case chAdd:
		r.added = true
	case chPause:
		r.paused = true
	case chResume:
		r.paused = false
	case chRemove:
		r.removed = true
	}
	if r.removed || r.paused {
		l.setBlocking(r, false) // as it was registered, for its owner
	}
	if on := r.added && !r.removed && !r.paused; on != r.active {
		r.active = on
		l.setPolled(r, on)
	}
	if c.done != nil {
		close(c.done)
	}
}

// setPolled puts r in or out of the polled set (copy on write: the loop may be iterating
// the old one).
func (l *Loop) setPolled(r *Registration, on bool) {
	if on {
		l.regs = append(l.regs[:len(l.regs):len(l.regs)], r)
	} else {
		regs := make([]*Registration, 0, len(l.regs))
		for _, x := range l.regs {
			if x != r {
				regs = append(regs, x)
			}
		}
		l.regs = regs
	}
	l.dirty = true
}

// setModes picks how the loop waits next: for the only active registration in its blocking
// read when it offers that (made blocking here), else in poll with every active
// registration non-blocking. It returns the registration to read, or nil. On the loop.
func (l *Loop) setModes() *Registration {
	if len(l.regs) == 1 && l.regs[0].bl != nil {
		if r := l.regs[0]; l.setBlocking(r, true) {
			return r
		}
	}
	for _, r := range l.regs {
		l.setBlocking(r, false)
	}
	return nil
}

// setBlocking makes r's descriptor blocking or not, unless it is already or r offers no
// blocking mode (any more); it reports whether the descriptor is now as asked. A failure
// turns blocking mode off for r for good (see the package doc).
func (l *Loop) setBlocking(r *Registration, on bool) bool {
	if r.bl == nil || r.blocking == on {
		return r.blocking == on
	}
	if err := r.bl.SetBlocking(on); err != nil {
		r.bl = nil
		return false
	}
	r.blocking = on
	return true
}

// rebuild makes the poll set match regs.
func (l *Loop) rebuild() {
	l.fds = l.fds[:1]
	for _, r := range l.regs {
		l.fds = append(l.fds, r.fd)
	}
	l.dirty = false
}

// runPosted runs the posted work, including work posted meanwhile, until there is none.
func (l *Loop) runPosted() {
	for {
		if !l.queued.Load() {
			return // nothing posted (see queued)
		}
		l.mu.Lock()
		work := l.posted
		l.posted = nil
		l.setQueuedLocked()
		l.mu.Unlock()
		if len(work) == 0 {
			return
		}
		for i, fn := range work {
			work[i] = nil
			fn()
		}
		l.mu.Lock()
		if l.spare == nil {
			l.spare = work[:0]
		}
		l.mu.Unlock()
	}
}

// finish ends a closed loop: every waiting Unregister is released (nothing is polled any
// more), and the work posted so far runs (Post runs later work on its caller).
func (l *Loop) finish() {
	l.mu.Lock()
	cs := l.changes
	l.changes = nil
	l.setQueuedLocked()
	l.mu.Unlock()
	for _, c := range cs {
		if c.done != nil {
			close(c.done)
		}
	}
	for _, r := range l.regs {
		l.setBlocking(r, false) // as it was registered, for its owner
	}
	l.regs = nil
	l.runPosted()
}
