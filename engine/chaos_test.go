package engine

// TestChaos runs random concurrent operations for a while — groups created and closed, marks
// added, modified and removed, notification and permission events notified, readers answering
// at once, late, twice or never, deadlines expiring, contexts cancelled — and checks the
// invariants that must hold whatever the interleaving:
//
//   - every Notify returns, with a Response that makes sense for the group it names (a deadline
//     verdict from a group with a deadline, a close verdict, a full-queue verdict, a cancel only
//     after the context ended, an answer only as the group's reader gave it);
//   - a permission event is answered once: a second Respond fails, a refused answer is explained
//     by a deadline, a cancel or a close, and each group's Answered count equals the number of
//     Respond calls that succeeded plus its Handler's answers;
//   - no group receives an event through marks all removed before the Notify began (see
//     markState for how that is decided soundly), and no group receives an event twice;
//   - every payload is released exactly once, after the source released the event and after
//     every delivery of it was released;
//   - the MaskHook sees each object's calls in order, and a refused bit never stays in a mark;
//   - a change the MaskHook refuses undoes only itself: the hook takes its time to refuse now
//     and then, and a removal of the same mark that runs meanwhile (refusedRace) is never
//     undone with it;
//   - a group that is closing answers every permission event with its close verdict, also one
//     that reaches it while Close runs;
//   - no goroutine leaks (TestMain's goleak), and once every group is closed nothing is left:
//     no group, mark, connector, queued or pending event, hook mask.
//
// Some groups have a Handler, which answers part of their permission events at once; a
// sentinel goroutine checks, in a group and objects of its own, that a mark attached during
// a Notify gets the event and that one removed before it does not, amid everything else.
// TestCloseWhileWithdrawing (below) aims at one race that TestChaos found.
//
// Some permission events come from a slow source, which dispatches and only later waits
// (Dispatch, then Wait or Await): their deadline runs all the same, and a Close does not wait
// for them.
//
// It runs for -chaos.duration (default 2s; also $CHAOS_DURATION) or until -chaos.ops
// operations on the engine (default no limit; also $CHAOS_OPS), whichever comes first, and
// logs how many operations it did. The long run (the flags after the package, or go test
// takes them for test-binary flags and tests "."):
//
//	go test -race -timeout 20m -run 'TestChaos$' ./engine -chaos.duration=15m -chaos.ops=12000000
//	CHAOS_DURATION=15m CHAOS_OPS=12000000 go test -race -timeout 20m -run 'TestChaos$' ./engine

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	chaosDuration = flag.Duration("chaos.duration", envDuration("CHAOS_DURATION", 2*time.Second),
		"how long TestChaos runs random concurrent operations at most (also $CHAOS_DURATION)")
	chaosOps = flag.Int64("chaos.ops", envInt("CHAOS_OPS", 0),
		"stop TestChaos after this many operations on the engine; 0: no limit (also $CHAOS_OPS)")
)

func envInt(name string, def int64) int64 {
	if s := os.Getenv(name); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if s := os.Getenv(name); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	return def
}

const (
	chaosSlots     = 5  // groups alive at a time, each with a reader
	chaosNotifiers = 3  // goroutines notifying events
	chaosMarkers   = 2  // goroutines changing marks
	chaosMaxPerm   = 24 // permission Notify calls in flight at most
	chaosMaxLate   = 16 // late answers in flight at most
)

// markState is the test's knowledge of one group's mark on one object, for the check that a
// mark removed before a Notify began never receives its event. Operations on one (group,
// object) are serialized by mu (the test's, not the engine's), and state holds an epoch and
// an "absent" bit: before any operation that may create the mark the epoch goes up with the
// bit clear ("maybe present"); after an operation whose result says there is no mark
// (RemoveMark, FlushMarks, ErrNoMark, or a query of Mark) it goes up again with the bit set.
// A notifier reads the states before calling Notify. If, for a group, every involved object's
// state was "absent" then and is still the same state when the group's reader holds a
// delivery of the event, then no mark of that group existed on any involved object from before
// the Notify began until after the delivery was queued: the delivery is a violation.
type markState struct {
	mu    sync.Mutex
	state atomic.Uint64
}

const absentBit = 1

// begin records that the mark may exist from now on; it returns the epoch. Needs mu.
func (ms *markState) begin() uint64 {
	ep := ms.state.Load() >> 1
	ms.state.Store((ep + 1) << 1)
	return ep + 1
}

// absent records that the mark does not exist. Needs mu.
func (ms *markState) absent(ep uint64) { ms.state.Store((ep+1)<<1 | absentBit) }

type chaosGroup struct {
	g          *Group
	opts       Options
	marks      [len(chaosObjects)]markState
	answered   atomic.Uint64 // Respond calls that returned nil
	readerDone chan struct{}
}

// chaosObjects are the objects marks go on (the model test's universe).
var chaosObjects = [13]Object(uObjects)

func chaosIndex(obj Object) int {
	for i, o := range chaosObjects {
		if o == obj {
			return i
		}
	}
	return -1
}

type groupSnap struct {
	cg     *chaosGroup
	states []uint64 // per involved object
}

// chaosPayload is an event's payload: it checks its own release and carries what the readers
// need to check a delivery.
type chaosPayload struct {
	c           *chaos
	ev          *Event
	ctx         context.Context
	involved    []int       // indexes in chaosObjects of the objects the event may reach marks on
	snaps       []groupSnap // the mark states when Notify began; written before Notify
	released    atomic.Int32
	sourceDone  atomic.Bool
	outstanding atomic.Int32 // deliveries read and not yet released

	mu        sync.Mutex
	delivered map[*chaosGroup]bool
	answers   map[uint64]Response // each group's (first valid) answer, by group id
}

func (p *chaosPayload) Release() {
	if n := p.released.Add(1); n != 1 {
		p.c.errorf("payload of %v released %d times", p.ev.Mask, n)
	}
	if !p.sourceDone.Load() {
		p.c.errorf("payload of %v released before the source released the event", p.ev.Mask)
	}
	if n := p.outstanding.Load(); n != 0 {
		p.c.errorf("payload of %v released while %d deliveries of it are held", p.ev.Mask, n)
	}
	p.c.released.Add(1)
}

func (p *chaosPayload) answer(group uint64) (Response, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.answers[group]
	return r, ok
}

type chaos struct {
	e      *Engine
	hook   *chaosHook
	slots  [chaosSlots]atomic.Pointer[chaosGroup]
	stop   atomic.Bool
	loops  sync.WaitGroup // the notifier, marker, churner and prober loops
	wg     sync.WaitGroup // permission Notify calls and late answers
	perm   chan struct{}  // semaphore: permission Notify calls in flight
	late   chan struct{}  // semaphore: late answers in flight
	seed   uint64
	nextRN atomic.Uint64

	groupsMu  sync.Mutex
	allGroups []*chaosGroup
	opts      sync.Map // group id → Options

	errMu  sync.Mutex
	errs   []string
	nerrs  int
	counts sync.Map // name → *atomic.Int64: what happened, for the log

	created, released atomic.Int64 // payloads
	ops               atomic.Int64 // operations on the engine, for -chaos.ops and the log
}

// op counts one operation on the engine (n of them).
func (c *chaos) op(n int64) { c.ops.Add(n) }

// errorf records a failure; goroutines must not call t.Errorf once the test may have ended.
func (c *chaos) errorf(format string, args ...any) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	c.nerrs++
	if len(c.errs) < 20 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

func (c *chaos) count(name string) {
	v, ok := c.counts.Load(name)
	if !ok {
		v, _ = c.counts.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

func (c *chaos) rng() *rand.Rand {
	return rand.New(rand.NewPCG(c.seed, c.nextRN.Add(1)))
}

// chaosHook is a MaskHook that checks that each object's calls come in order and refuses any
// union with refusedBit, taking its time to refuse half the time (as a kernel mark that
// fails after a path walk; here by yielding the CPU a few times): other changes of the same marks start meanwhile, and must not be
// undone with the refused one.
type chaosHook struct {
	c     *chaos
	mu    sync.Mutex
	masks map[Object]Mask
}

func (h *chaosHook) hook(obj Object, old, new Mask) error {
	h.mu.Lock()
	if h.masks[obj] != old {
		h.c.errorf("MaskHook(%v): old %v, but the last new was %v", obj, old, h.masks[obj])
	}
	if new&refusedBit != 0 && new&^old != 0 {
		h.mu.Unlock()
		if rand.IntN(2) == 0 {
			for n := 1 + rand.IntN(8); n > 0; n-- {
				runtime.Gosched() // a sleep would cost milliseconds on a loaded machine
			}
		}
		h.c.count("hook-refusals")
		return syscall.EXDEV
	}
	if new == 0 {
		delete(h.masks, obj)
	} else {
		h.masks[obj] = new
	}
	h.mu.Unlock()
	return nil
}

// hang runs f and reports a hang (with every goroutine's stack) if it does not return within
// hangTimeout; it returns false then.
func (c *chaos) hang(what string, f func()) bool {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return true
	case <-time.After(hangTimeout):
		buf := make([]byte, 1<<20)
		c.errorf("%s did not return within %v; goroutines:\n%s", what, hangTimeout, buf[:runtime.Stack(buf, true)])
		return false
	}
}

func TestChaos(t *testing.T) {
	d := *chaosDuration
	if testing.Short() {
		d = min(d, 500*time.Millisecond)
	}
	c := &chaos{
		perm: make(chan struct{}, chaosMaxPerm),
		late: make(chan struct{}, chaosMaxLate),
		seed: rand.Uint64(),
	}
	c.hook = &chaosHook{c: c, masks: map[Object]Mask{}}
	c.e = New(Config{MaskHook: c.hook.hook})
	t.Logf("seed %d, duration %v (the interleaving is not reproducible; the seed shapes the mix)", c.seed, d)

	for i := range c.slots {
		c.slots[i].Store(c.newGroup(c.rng()))
	}
	start := func(f func(*rand.Rand)) {
		c.loops.Add(1)
		go func() { defer c.loops.Done(); f(c.rng()) }()
	}
	for range chaosNotifiers {
		start(c.notifier)
	}
	for range chaosMarkers {
		start(c.marker)
	}
	start(c.churner)
	start(c.prober)
	start(c.sentinel)

	began := time.Now()
	for time.Since(began) < d && (*chaosOps <= 0 || c.ops.Load() < *chaosOps) {
		time.Sleep(min(100*time.Millisecond, d))
	}
	ran := time.Since(began)
	c.stop.Store(true)
	// The loops stop promptly: nothing they do waits for a listener.
	ok := c.hang("the test's loops", c.loops.Wait)
	// Close every group: that answers every pending permission event, so every Notify, every
	// reader and every late answer ends.
	for i := range c.slots {
		if cg := c.slots[i].Swap(nil); cg != nil {
			c.closeGroup(cg)
		}
	}
	if ok && c.hang("the permission Notify calls and late answers", c.wg.Wait) {
		c.final(t)
	}
	var counts []string
	c.counts.Range(func(k, v any) bool {
		counts = append(counts, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(counts)
	c.groupsMu.Lock()
	t.Logf("%d operations in %v (%.0f/s), events %d, groups %d; %v", c.ops.Load(), ran.Round(time.Millisecond),
		float64(c.ops.Load())/ran.Seconds(), c.created.Load(), len(c.allGroups), counts)
	c.groupsMu.Unlock()
	c.errMu.Lock()
	defer c.errMu.Unlock()
	for _, e := range c.errs {
		t.Error(e)
	}
	if c.nerrs > len(c.errs) {
		t.Errorf("... and %d more failures", c.nerrs-len(c.errs))
	}
}

// final checks that nothing is left once every group is closed.
func (c *chaos) final(t *testing.T) {
	if st := c.e.Stats(); st.Groups != 0 || st.Marks != 0 || st.Connectors != 0 {
		c.errorf("left over after closing every group: %+v", st)
	}
	c.hook.mu.Lock()
	if len(c.hook.masks) != 0 {
		c.errorf("MaskHook still has masks: %v", c.hook.masks)
	}
	c.hook.mu.Unlock()
	if cr, rl := c.created.Load(), c.released.Load(); cr != rl {
		c.errorf("%d payloads created, %d released", cr, rl)
	}
	for _, cg := range c.allGroups {
		st := cg.g.Stats()
		if st.Queued != 0 || st.Pending != 0 || st.Marks != 0 {
			c.errorf("closed group %d still has %d queued, %d pending, %d marks", st.ID, st.Queued, st.Pending, st.Marks)
		}
		if n := cg.answered.Load(); st.Answered-st.Handled != n {
			c.errorf("group %d counts %d answers (%d by its Handler), its reader had %d accepted",
				st.ID, st.Answered, st.Handled, n)
		}
	}
	if c.created.Load() == 0 {
		t.Error("no event was notified")
	}
}

func (c *chaos) newGroup(rng *rand.Rand) *chaosGroup {
	pick := func(n int) int { return rng.IntN(n) }
	opts := Options{
		Class:            []Class{ClassNotification, ClassContent, ClassContent, ClassPreContent}[pick(4)],
		QueueLimit:       []int{0, -1, 4, 16}[pick(4)],
		MarkLimit:        []int{0, 0, 6}[pick(3)],
		Deadline:         []time.Duration{0, 0, time.Millisecond, 5 * time.Millisecond}[pick(4)],
		DeadlineVerdict:  Verdict(pick(2)),
		CloseVerdict:     Verdict(pick(2)),
		QueueFullVerdict: Verdict(pick(2)),
	}
	cg := &chaosGroup{readerDone: make(chan struct{})}
	if opts.Class != ClassNotification && rng.IntN(3) == 0 {
		opts.Handler = func(d Delivery) (Response, bool) { return c.handle(cg, d) }
	}
	g, err := c.e.NewGroup(opts)
	if err != nil {
		c.errorf("NewGroup(%+v): %v", opts, err)
		return nil
	}
	cg.g, cg.opts = g, opts
	c.op(1)
	for i := range cg.marks {
		cg.marks[i].state.Store(absentBit)
	}
	c.opts.Store(g.ID(), opts)
	c.groupsMu.Lock()
	c.allGroups = append(c.allGroups, cg)
	c.groupsMu.Unlock()
	go c.reader(cg, c.rng())
	return cg
}

// closeGroup closes cg, which must return promptly whatever is pending, and waits for its
// reader to stop.
func (c *chaos) closeGroup(cg *chaosGroup) {
	if c.hang(fmt.Sprintf("Close of group %d", cg.g.ID()), func() { cg.g.Close() }) {
		c.hang(fmt.Sprintf("the reader of group %d", cg.g.ID()), func() { <-cg.readerDone })
	}
	c.count("closes")
	c.op(1)
}

// churner replaces groups: the old one closes with whatever it has pending.
func (c *chaos) churner(rng *rand.Rand) {
	for !c.stop.Load() {
		time.Sleep(time.Duration(1+rng.IntN(15)) * time.Millisecond)
		i := rng.IntN(chaosSlots)
		if ng := c.newGroup(rng); ng != nil {
			if old := c.slots[i].Swap(ng); old != nil {
				c.closeGroup(old)
			}
		}
	}
}

// prober reads figures concurrently with everything else (for the race detector), checks the
// ones that must never go wrong, and now and then queues an overflow event.
func (c *chaos) prober(rng *rand.Rand) {
	for !c.stop.Load() {
		time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		c.e.Stats()
		c.e.Groups()
		c.e.MarksOn(chaosObjects[rng.IntN(len(chaosObjects))])
		if cg := c.slots[rng.IntN(chaosSlots)].Load(); cg != nil {
			if st := cg.g.Stats(); st.Queued < 0 || st.Pending < 0 || st.Marks < 0 {
				c.errorf("group %d figures went negative: %+v", st.ID, st)
			}
			cg.g.Marks()
			if rng.IntN(20) == 0 {
				cg.g.Overflow()
				c.op(1)
			}
		}
	}
}

// --- Marks -----------------------------------------------------------------------------------

var chaosNotifBits = []Mask{Open, Modify, Access, Create, Attrib, CloseWrite, CloseNoWrite,
	Delete, MovedFrom, MovedTo, Rename, DeleteSelf, MoveSelf}

var chaosPermBits = map[Class][]Mask{
	ClassNotification: nil,
	ClassContent:      {OpenPerm, AccessPerm, OpenExecPerm},
	ClassPreContent:   {OpenPerm, AccessPerm, OpenExecPerm, PreAccess},
}

// chaosSpec draws a valid spec for the class (refusedBit now and then, which the hook refuses).
func chaosSpec(class Class, rng *rand.Rand) MarkSpec {
	pool := chaosNotifBits
	if perm := chaosPermBits[class]; perm != nil && rng.IntN(2) == 0 {
		pool = perm
	}
	bits := func() Mask {
		var m Mask
		for n := 1 + rng.IntN(3); n > 0; n-- {
			m |= pool[rng.IntN(len(pool))]
		}
		if m&PreAccess == 0 && rng.IntN(2) == 0 {
			m |= OnDir
		}
		if rng.IntN(2) == 0 {
			m |= EventOnChild
		}
		return m
	}
	s := MarkSpec{Mask: bits()}
	if rng.IntN(4) == 0 {
		s.Ignore = bits()
	}
	if rng.IntN(2) == 0 {
		s.Flags = IgnoreSurviveModify
	}
	if rng.IntN(30) == 0 {
		s.Mask |= refusedBit
	}
	return s
}

func (c *chaos) marker(rng *rand.Rand) {
	for !c.stop.Load() {
		cg := c.slots[rng.IntN(chaosSlots)].Load()
		if cg == nil {
			continue
		}
		if rng.IntN(40) == 0 {
			c.flush(cg, []Kind{0, KindInode, KindMount, KindFilesystem, KindSubtree}[rng.IntN(5)])
			continue
		}
		i := rng.IntN(len(chaosObjects))
		c.markOp(cg, i, rng)
		if rng.IntN(16) == 0 {
			time.Sleep(50 * time.Microsecond) // leave the CPUs to events too
		}
	}
}

func (c *chaos) markOp(cg *chaosGroup, i int, rng *rand.Rand) {
	obj, ms := chaosObjects[i], &cg.marks[i]
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ep := ms.begin()
	exists := func() bool { _, ok := cg.g.Mark(obj); return ok }
	var err error
	var op string
	gone := false
	c.op(1)
	switch n := rng.IntN(12); {
	case n >= 10:
		c.op(1)
		op, gone = "refusedRace", c.refusedRace(cg, obj, rng)
	case n < 5:
		op, err = "AddMark", cg.g.AddMark(obj, chaosSpec(cg.opts.Class, rng))
		gone = err != nil && !exists()
	case n < 6:
		op, err = "ModifyMark", cg.g.ModifyMark(obj, chaosSpec(cg.opts.Class, rng))
		gone = err == ErrNoMark || (err != nil && !exists())
	case n < 8:
		s := chaosSpec(cg.opts.Class, rng)
		op, err = "RemoveFromMark", cg.g.RemoveFromMark(obj, s.Mask, s.Ignore)
		gone = err == ErrNoMark || !exists()
	default:
		op, err = "RemoveMark", cg.g.RemoveMark(obj)
		gone = true // nil or ErrNoMark: once RemoveMark returns there is no mark
	}
	switch err {
	case nil, ErrClosed, ErrNoMark, ErrMarkLimit, syscall.EXDEV:
	default:
		c.errorf("%s(%v) on group %d: %v", op, obj, cg.g.ID(), err)
	}
	if s, ok := cg.g.Mark(obj); ok && s.Mask&refusedBit != 0 {
		c.errorf("%s(%v) on group %d left the refused bit in the mark: %v (%v)", op, obj, cg.g.ID(), s.Mask, err)
	}
	if gone {
		ms.absent(ep)
	}
	c.count(op)
}

// refusedRace runs a mark change that the MaskHook refuses (refusedBit) and, while it runs —
// often while the hook takes its time to refuse —, a removal from the same mark. The caller
// holds the test's lock of the mark: nothing else of the test changes it. Whatever the
// interleaving, the refused change has no effect, so the mark must end as the removal left
// it: the bits removed stay removed. It reports whether the mark is gone.
func (c *chaos) refusedRace(cg *chaosGroup, obj Object, rng *rand.Rand) (gone bool) {
	pre, had := cg.g.Mark(obj)
	spec := chaosSpec(cg.opts.Class, rng)
	spec.Mask |= refusedBit
	rm := chaosSpec(cg.opts.Class, rng)
	removeAll, modify := rng.IntN(4) == 0, rng.IntN(2) == 0
	changed := make(chan error, 1)
	go func() {
		if modify {
			changed <- cg.g.ModifyMark(obj, spec)
		} else {
			changed <- cg.g.AddMark(obj, spec)
		}
	}()
	for n := rng.IntN(4); n > 0; n-- {
		runtime.Gosched() // start the removal at various points of the change
	}
	var err error
	if removeAll {
		err = cg.g.RemoveMark(obj)
	} else {
		err = cg.g.RemoveFromMark(obj, rm.Mask, rm.Ignore)
	}
	cerr := <-changed
	post, has := cg.g.Mark(obj)
	select {
	case <-cg.g.Done():
		return !has // Close removes marks as it likes
	default: // no Close had begun when post was read
	}
	switch {
	case cerr == syscall.EXDEV, cerr == ErrMarkLimit, cerr == ErrNoMark && modify:
	default:
		c.errorf("refusedRace: refused change %+v of %v on group %d: %v", spec, obj, cg.g.ID(), cerr)
	}
	want, wantHas, wantErr := pre, had, error(nil)
	switch {
	case !had:
		wantErr = ErrNoMark // the refused change's mark never existed
	case removeAll:
		wantHas = false
	default:
		want.Mask &^= rm.Mask
		want.Ignore &^= rm.Ignore
		wantHas = want.Mask&AllEvents != 0 || want.Ignore&AllEvents != 0
	}
	// A modification event may clear the ignore mask at any time: compare the rest, and let a
	// mark that would keep only such an ignore mask go.
	mayGo := want.Mask&AllEvents == 0 && want.Flags&IgnoreSurviveModify == 0
	if err != wantErr || (has != wantHas && !(mayGo && !has)) || (has && (post.Mask != want.Mask ||
		post.Flags != want.Flags || post.Ignore&^want.Ignore != 0)) {
		c.errorf("refusedRace on group %d, %v: mark %+v (present %v); refused %v of %+v (%v) while removing %v: %v;"+
			" the mark is %+v (present %v), want %+v (present %v) and %v",
			cg.g.ID(), obj, pre, had, map[bool]string{true: "ModifyMark", false: "AddMark"}[modify], spec, cerr,
			map[bool]string{true: "all", false: fmt.Sprintf("%+v", MarkSpec{Mask: rm.Mask, Ignore: rm.Ignore})}[removeAll],
			err, post, has, want, wantHas, wantErr)
	}
	return !has
}

// flush removes cg's marks of kind k, holding the test's lock of every object of that kind.
func (c *chaos) flush(cg *chaosGroup, k Kind) {
	var held []*markState
	var eps []uint64
	for i, obj := range chaosObjects {
		if k == 0 || obj.Kind == k {
			ms := &cg.marks[i]
			ms.mu.Lock() // always in chaosObjects order: no deadlock between flushes
			held = append(held, ms)
			eps = append(eps, ms.begin())
		}
	}
	cg.g.FlushMarks(k)
	c.op(1)
	for i, ms := range held {
		ms.absent(eps[i])
		ms.mu.Unlock()
	}
	c.count("FlushMarks")
}

// sentinel checks the guarantee at its sharpest, amid everything else: in a group of its own
// (nobody else touches its marks), a mark attached during the whole Notify receives the event,
// and once RemoveMark returns, a Notify that starts afterwards delivers nothing through it.
func (c *chaos) sentinel(rng *rand.Rand) {
	g, err := c.e.NewGroup(Options{Name: "sentinel", QueueLimit: -1})
	if err != nil {
		c.errorf("NewGroup: %v", err)
		return
	}
	defer g.Close()
	spec := MarkSpec{Mask: NotificationEvents&^refusedBit | OnDir}
	for !c.stop.Load() {
		ev := sentinelEvent(chaosEvent(rng, false))
		// An object the event involves directly (no EventOnChild needed).
		objs := []Object{Inode(ev.Inode), Mount(ev.Mount), Filesystem(ev.Filesystem), Subtree(ev.Inode)}
		for _, a := range ev.Ancestors {
			objs = append(objs, Subtree(a))
		}
		obj := objs[rng.IntN(len(objs))]
		if err := g.AddMark(obj, spec); err != nil {
			c.errorf("sentinel AddMark(%v): %v", obj, err)
			return
		}
		c.notify(context.Background(), ev)
		want := ev.Mask & spec.Mask & AllEvents
		d, err := g.TryRead()
		switch {
		case want == 0 && err != ErrWouldBlock:
			c.errorf("sentinel: %v through %v: got %+v, %v, want nothing", ev.Mask, obj, d, err)
		case want != 0 && (err != nil || d.Event != ev || d.Mask != want|ev.Mask&OnDir):
			c.errorf("sentinel: %v through %v: got %+v, %v, want mask %v", ev.Mask, obj, d, err, want|ev.Mask&OnDir)
		}
		if err == nil {
			d.Release()
		}
		if err := g.RemoveMark(obj); err != nil {
			c.errorf("sentinel RemoveMark(%v): %v", obj, err)
			return
		}
		// The same event again: had the mark stayed, it would report it.
		ev = &Event{Mask: ev.Mask, Inode: ev.Inode, Parent: ev.Parent, Target: ev.Target,
			Mount: ev.Mount, Filesystem: ev.Filesystem, Ancestors: ev.Ancestors,
			TargetAncestors: ev.TargetAncestors, Name: ev.Name, NewName: ev.NewName, Pid: ev.Pid}
		c.notify(context.Background(), ev)
		if d, err := g.TryRead(); err != ErrWouldBlock {
			c.errorf("sentinel: %v after RemoveMark(%v) returned: got %+v, %v", ev.Mask, obj, d, err)
			if err == nil {
				d.Release()
			}
		}
		c.count("sentinel")
		c.op(4)                            // AddMark, two TryReads, RemoveMark; c.notify counts its own
		time.Sleep(100 * time.Microsecond) // a probe, not a load
	}
}

// sentinelEvent moves an event to a copy of the universe that only the sentinel uses (other
// groups' marks and other notifiers' events never meet it), with the same shape.
func sentinelEvent(ev *Event) *Event {
	mv := func(id ID) ID {
		if id.IsZero() {
			return id
		}
		return ID{Hi: id.Hi + 1000, Lo: id.Lo}
	}
	mvAll := func(ids []ID) []ID {
		out := make([]ID, len(ids))
		for i, id := range ids {
			out[i] = mv(id)
		}
		return out
	}
	ev.Inode, ev.Parent, ev.Target = mv(ev.Inode), mv(ev.Parent), mv(ev.Target)
	ev.Mount, ev.Filesystem = mv(ev.Mount), mv(ev.Filesystem)
	ev.Ancestors, ev.TargetAncestors = mvAll(ev.Ancestors), mvAll(ev.TargetAncestors)
	return ev
}

// --- Events ----------------------------------------------------------------------------------

func chaosEvent(rng *rand.Rand, perm bool) *Event {
	pick := func(ids []ID) ID { return ids[rng.IntN(len(ids))] }
	var ev *Event
	switch k := rng.IntN(10); {
	case perm:
		x := pick(uInodes)
		m := []Mask{OpenPerm, OpenPerm, AccessPerm, OpenExecPerm, PreAccess}[rng.IntN(5)]
		if m == PreAccess && uTree[x].dir {
			m = OpenPerm
		}
		ev = uSelfEvent(x, m|[]Mask{0, 0, Open, Modify}[rng.IntN(4)])
	case k < 6:
		ev = uSelfEvent(pick(uInodes), selfBits[rng.IntN(len(selfBits))])
	case k < 9:
		d := pick(uDirs)
		ev = &Event{Mask: []Mask{Create, Delete, MovedFrom, MovedTo}[rng.IntN(4)], Inode: d,
			Filesystem: uFS, Ancestors: uAncestors(d), Name: uNames[rng.IntN(len(uNames))]}
	default:
		from, to := pick(uDirs), pick(uDirs)
		ev = &Event{Mask: Rename, Inode: from, Target: to, Filesystem: uFS,
			Ancestors: uAncestors(from), TargetAncestors: append([]ID{to}, uAncestors(to)...),
			Name: "x", NewName: "y"}
	}
	ev.Mount = []ID{uMnt1, uMnt2}[rng.IntN(2)]
	ev.Pid = int32(100 + rng.IntN(4))
	return ev
}

// involvedIndexes lists the marked objects an event may reach, a superset of what Notify
// looks at (the parent for any event, every subtree): the removal check is sound only if no
// mark can deliver from outside this list.
func involvedIndexes(ev *Event) []int {
	objs := []Object{Inode(ev.Inode), Mount(ev.Mount), Filesystem(ev.Filesystem), Subtree(ev.Inode)}
	if !ev.Parent.IsZero() {
		objs = append(objs, Inode(ev.Parent))
	}
	if !ev.Target.IsZero() {
		objs = append(objs, Inode(ev.Target))
	}
	for _, a := range append(ev.Ancestors, ev.TargetAncestors...) {
		objs = append(objs, Subtree(a))
	}
	var out []int
	for _, o := range objs {
		if i := chaosIndex(o); i >= 0 && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out
}

func (c *chaos) notifier(rng *rand.Rand) {
	for !c.stop.Load() {
		if rng.IntN(10) < 3 {
			select {
			case c.perm <- struct{}{}:
				ev := chaosEvent(rng, true)
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				switch rng.IntN(8) {
				case 0, 1:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(4000))*time.Microsecond)
				case 2:
					ctx, cancel = context.WithCancel(ctx)
					cancel() // already over: every group's event is withdrawn at once
				}
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					defer func() { <-c.perm }()
					defer cancel()
					c.notify(ctx, ev)
				}()
				continue
			default: // enough permission events in flight
			}
		}
		c.notify(context.Background(), chaosEvent(rng, false))
	}
}

func (c *chaos) notify(ctx context.Context, ev *Event) {
	p := &chaosPayload{c: c, ev: ev, ctx: ctx, involved: involvedIndexes(ev),
		delivered: map[*chaosGroup]bool{}, answers: map[uint64]Response{}}
	ev.Payload = p
	c.created.Add(1)
	for i := range c.slots {
		if cg := c.slots[i].Load(); cg != nil {
			s := groupSnap{cg: cg, states: make([]uint64, len(p.involved))}
			for j, oi := range p.involved {
				s.states[j] = cg.marks[oi].state.Load()
			}
			p.snaps = append(p.snaps, s)
		}
	}
	c.op(1)
	// Permission events finish through Notify, or Dispatch then Wait or Await (callbacks on
	// the answering goroutine), some from a slow source that waits a while before it waits
	// for the answer — one in eight until the group holding the event has closed (Close must
	// not wait for it). All must keep every invariant.
	var r Response
	switch mode := rand.IntN(8); {
	case ev.Mask&PermissionEvents == 0 || mode < 2:
		r = c.e.Notify(ctx, ev)
	default:
		var w *Walk
		if r, w = c.e.Dispatch(ev); w == nil {
			break
		}
		switch mode {
		case 6:
			c.count("slow-sources")
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		case 7:
			c.count("sources-waiting-for-close")
			<-w.g.closed // Close returns before this source waits for the answer
		}
		if rand.IntN(2) == 0 {
			r = w.Wait(ctx)
			break
		}
		got := make(chan Response, 1)
		w.Await(ctx, func(r Response) { got <- r })
		r = <-got
	}
	c.checkResponse(p, r)
	for _, s := range p.snaps {
		if len(p.involved) > 0 && c.removedThroughout(p, s) {
			c.count("must-not-deliver") // how often the removal check had something to check
		}
	}
	p.sourceDone.Store(true)
	ev.Release()
}

func (c *chaos) groupOpts(id uint64) (Options, bool) {
	v, ok := c.opts.Load(id)
	if !ok {
		return Options{}, false
	}
	return v.(Options), true
}

func (c *chaos) checkResponse(p *chaosPayload, r Response) {
	ev := p.ev
	if ev.Mask&PermissionEvents == 0 {
		if r != (Response{}) {
			c.errorf("Notify of notification %v returned %+v", ev.Mask, r)
		}
		return
	}
	c.count("reason-" + r.Reason.String())
	bad := func(why string) { c.errorf("Notify(%v) = %+v: %s", ev.Mask, r, why) }
	if r.Reason == ReasonNone {
		if r != (Response{}) {
			bad("no group took the event, yet the response is not empty")
		}
		return
	}
	o, ok := c.groupOpts(r.Group)
	if !ok {
		bad("no such group")
		return
	}
	if r.Cache && (r.Verdict != Allow || r.Reason != ReasonAnswered) {
		bad("only an answered allow may be cached")
	}
	switch r.Reason {
	case ReasonAnswered:
		a, ok := p.answer(r.Group)
		if !ok {
			bad("the group's reader never answered")
		} else if a.Verdict != r.Verdict || a.Errno != r.Errno {
			bad(fmt.Sprintf("the group's reader answered %+v", a))
		}
	case ReasonDeadline:
		if o.Deadline == 0 || r.Verdict != o.DeadlineVerdict {
			bad(fmt.Sprintf("the group's deadline is %v with verdict %v", o.Deadline, o.DeadlineVerdict))
		}
	case ReasonClosed:
		// Pending at Close, or reaching the group while it closed: the close verdict.
		if r.Verdict != o.CloseVerdict {
			bad(fmt.Sprintf("the group's close verdict is %v", o.CloseVerdict))
		}
	case ReasonQueueFull:
		if r.Verdict != o.QueueFullVerdict {
			bad(fmt.Sprintf("the group's queue-full verdict is %v", o.QueueFullVerdict))
		}
	case ReasonCancelled:
		if p.ctx.Err() == nil || r.Verdict != Allow {
			bad("cancelled, but the context is not done or the verdict is not allow")
		}
	default:
		bad("unknown reason")
	}
}

// removedThroughout reports whether, for the group of s, every involved object had no mark
// when Notify began and has had none since (see markState).
func (c *chaos) removedThroughout(p *chaosPayload, s groupSnap) bool {
	for j, oi := range p.involved {
		if s.states[j]&absentBit == 0 || s.cg.marks[oi].state.Load() != s.states[j] {
			return false
		}
	}
	return true
}

// --- Readers ---------------------------------------------------------------------------------

func (c *chaos) reader(cg *chaosGroup, rng *rand.Rand) {
	defer close(cg.readerDone)
	buf := make([]Delivery, 8)
	for {
		if rng.IntN(40) == 0 {
			// A slow reader: queues fill, overflow, and permission events meet a full queue.
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		}
		n, err := cg.g.ReadBatch(context.Background(), buf[:1+rng.IntN(len(buf))])
		if err != nil {
			if err != ErrClosed {
				c.errorf("ReadBatch on group %d: %v", cg.g.ID(), err)
			}
			return
		}
		for _, d := range buf[:n] {
			c.deliver(cg, d, rng)
		}
	}
}

// received checks a delivery of p's event to cg, read from the queue or offered to the Handler.
func (c *chaos) received(cg *chaosGroup, p *chaosPayload, d Delivery) {
	if p.released.Load() != 0 {
		c.errorf("group %d received %v whose payload was already released", cg.g.ID(), d.Mask)
	}
	p.mu.Lock()
	twice := p.delivered[cg]
	p.delivered[cg] = true
	p.mu.Unlock()
	if twice {
		c.errorf("group %d received %v twice", cg.g.ID(), p.ev.Mask)
	}
	for _, s := range p.snaps {
		if s.cg == cg && c.removedThroughout(p, s) {
			c.errorf("group %d received %v on %v through marks all removed before the Notify began",
				cg.g.ID(), d.Mask, p.ev.Inode)
		}
	}
	if d.Mask&^(AllEvents|OnDir) != 0 || d.Mask&AllEvents == 0 {
		c.errorf("group %d received mask %v for event %v", cg.g.ID(), d.Mask, p.ev.Mask)
	}
}

// handle is a Handler: it answers some permission events at once (by the event's pid) and
// defers the rest to the reader. It runs on the notifying goroutine and must not block.
func (c *chaos) handle(cg *chaosGroup, d Delivery) (Response, bool) {
	p := d.Event.Payload.(*chaosPayload)
	c.received(cg, p, d)
	if d.ID != 0 || d.Mask&PermissionEvents == 0 {
		c.errorf("group %d's Handler was offered %+v", cg.g.ID(), d)
	}
	var r Response
	switch p.ev.Pid % 4 {
	case 0:
		// Deferred: the reader gets it; let it count as not delivered yet.
		p.mu.Lock()
		delete(p.delivered, cg)
		p.mu.Unlock()
		return Response{}, false
	case 1:
		r.Cache = true
	case 2:
		r.Verdict = Deny
	}
	p.mu.Lock()
	p.answers[cg.g.ID()] = r
	p.mu.Unlock()
	c.count("handler-answers")
	return r, true
}

func (c *chaos) deliver(cg *chaosGroup, d Delivery, rng *rand.Rand) {
	c.op(1) // the read
	if d.Event == nil {
		if d.Mask != QueueOverflow || d.ID != 0 {
			c.errorf("group %d read a delivery without an event: %+v", cg.g.ID(), d)
		}
		c.count("overflows-read")
		return
	}
	p := d.Event.Payload.(*chaosPayload)
	p.outstanding.Add(1)
	done := func() {
		p.outstanding.Add(-1)
		d.Release()
	}
	c.received(cg, p, d)
	if d.ID == 0 {
		if d.Mask&PermissionEvents != 0 {
			c.errorf("group %d read permission bits %v without an id", cg.g.ID(), d.Mask)
		}
		c.count("notifications-read")
		done()
		return
	}
	c.count("permissions-read")
	r := Response{Verdict: Verdict(rng.IntN(2))}
	switch {
	case r.Verdict == Allow && rng.IntN(3) == 0:
		r.Cache = true
	case r.Verdict == Deny && cg.opts.Class == ClassPreContent && rng.IntN(2) == 0:
		r.Errno = DenyErrnos[rng.IntN(len(DenyErrnos))]
	}
	switch n := rng.IntN(10); {
	case n < 5:
		c.respond(cg, p, d, r, false)
		done()
	case n == 5:
		c.respond(cg, p, d, r, false)
		c.respond(cg, p, d, r, true)
		done()
	case n == 6:
		c.respond(cg, p, d, Response{Verdict: 7}, false) // no verdict: a deny
		done()
	case n == 7:
		c.count("never-answered")
		done() // never answered: the deadline, a cancel or the close settles it
	default:
		select {
		case c.late <- struct{}{}:
			// Late: sometimes well after the group's deadline.
			wait := time.Duration(rng.IntN(3000)) * time.Microsecond
			if cg.opts.Deadline > 0 {
				wait = time.Duration(rng.Int64N(int64(2 * cg.opts.Deadline)))
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { <-c.late }()
				time.Sleep(wait)
				c.respond(cg, p, d, r, false)
				done()
			}()
		default:
			c.respond(cg, p, d, r, false)
			done()
		}
	}
}

// respond answers d and checks the outcome: accepted, or refused with a reason that holds.
// An answer that is no verdict denies the event, and Respond says so (ErrInvalidAnswer).
func (c *chaos) respond(cg *chaosGroup, p *chaosPayload, d Delivery, r Response, again bool) {
	given, accepted := r, error(nil)
	if r.Verdict > Deny {
		given, accepted = Response{Verdict: Deny}, ErrInvalidAnswer
	}
	if !again {
		p.mu.Lock()
		if _, ok := p.answers[cg.g.ID()]; !ok {
			p.answers[cg.g.ID()] = given // before Respond: Notify may return as soon as it is in
		}
		p.mu.Unlock()
	}
	err := cg.g.Respond(d.ID, r)
	c.op(1)
	switch {
	case (err == nil || err == ErrInvalidAnswer) && again:
		c.errorf("group %d accepted a second answer to event %d", cg.g.ID(), d.ID)
	case err == accepted:
		cg.answered.Add(1)
		c.count("answers-accepted")
	case err == ErrNoSuchEvent:
		// Refused: answered already, or withdrawn by the deadline or the notifier's context.
		if !again && cg.opts.Deadline == 0 && p.ctx.Err() == nil {
			c.errorf("group %d refused the first answer to event %d, which was neither withdrawn nor answered", cg.g.ID(), d.ID)
		}
		c.count("answers-refused")
	case err == ErrClosed:
		// Close had begun: Done is closed as soon as it has answered the pending events.
		select {
		case <-cg.g.Done():
		case <-time.After(hangTimeout):
			c.errorf("group %d refused an answer with ErrClosed, yet it is not closing", cg.g.ID())
		}
		c.count("answers-after-close")
	default:
		c.errorf("group %d: Respond(%+v): %v", cg.g.ID(), r, err)
	}
}

// --- A race ----------------------------------------------------------------------------------

// TestCloseWhileWithdrawing: a permission event whose Notify gives up (context or deadline)
// just as its group closes is answered once. Close used to answer pending events after
// dropping the group's lock, so a withdraw in that window answered them too (a second close of
// the answer channel — a panic —, a second release of the event, a negative queue length).
// TestChaos hits that window now and then; this test hits it at once.
func TestCloseWhileWithdrawing(t *testing.T) {
	const rounds, waiters = 100, 4
	for i := range rounds {
		var released atomic.Int32
		e := New(Config{})
		opts := Options{Class: ClassContent}
		if i%2 == 1 {
			opts.Deadline = time.Duration(i%5+1) * 20 * time.Microsecond
		}
		g, err := e.NewGroup(opts)
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, g, Inode(uF), MarkSpec{Mask: OpenPerm})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev := uSelfEvent(uF, OpenPerm)
				ev.Payload = countPayload{&released}
				e.Notify(ctx, ev)
				ev.Release()
			}()
		}
		if i%2 == 0 {
			deadline := time.Now().Add(hangTimeout)
			for g.Stats().Pending < waiters {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the permission events never arrived", i)
				}
				runtime.Gosched()
			}
			go cancel()
		}
		g.Close()
		wg.Wait()
		cancel()
		if n := released.Load(); n != waiters {
			t.Fatalf("round %d: %d payloads released, want %d", i, n, waiters)
		}
		if st := g.Stats(); st.Queued != 0 || st.Pending != 0 {
			t.Fatalf("round %d: %+v", i, st)
		}
	}
}
