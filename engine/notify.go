package engine

import (
	"context"
	"sync/atomic"
	"syscall"
)

// iterType says through which of the event's objects a mark was found
// (FSNOTIFY_ITER_TYPE_*); it decides how the mark's masks apply.
type iterType uint8

const (
	itInode  iterType = iota // the object the event is reported on
	itParent                 // its directory: reports only with EventOnChild
	itInode2                 // Rename's new directory
	itMount
	itFilesystem
	itSubtree
)

// head is one involved connector's list in a walk: a snapshot and a position in it. 32
// bytes (a list holds far fewer than 2^31 marks): every dispatch zeroes stackHeads of them on
// the stack, each cache line of it a write miss for a listener whose caches are cold.
type head struct {
	marks []*Mark
	pos   int32
	typ   iterType
}

// stackHeads is how many heads a walk keeps on the stack (four cache lines): the involved
// objects that have marks — inode, parent, target, mount, filesystem, and a few subtree
// roots; more spill to the heap.
const stackHeads = 8

// Notify dispatches ev to every group whose marks on the involved objects select it, one
// delivery per group, highest priority class first (fsnotify()). A notification is queued
// and Notify goes on; a permission event waits for the group's answer, its deadline, its
// close, or ctx, without holding any lock, then goes on to the next group, and the first deny
// ends the walk and is the result. ctx ending withdraws a pending event and allows it
// (ReasonCancelled). The caller keeps its reference on ev and drops it with ev.Release.
func (e *Engine) Notify(ctx context.Context, ev *Event) Response {
	first := e.firstMarked(ev)
	if first == nil {
		// Return the zero Response itself: copying Dispatch's result through memory costs
		// a store-forwarding stall, a quarter of this path (Response has five fields, too
		// many for the compiler to keep it in registers).
		return Response{}
	}
	v, cache, w := e.dispatch(ev, first)
	if w != nil {
		return w.Wait(ctx)
	}
	return v.response(cache)
}

// Dispatch is Notify without the waiting: it walks as far as it can without waiting for a
// group. If the walk finished (no permission event, or every group answered at once through
// its Handler) it returns the result and a nil Walk; otherwise the event is queued to a group
// and the caller must call Wait on the returned Walk (from any goroutine) to finish it. A
// source reading many events on one goroutine uses it to answer at once whatever can be
// answered at once, and hands only the rest to other goroutines.
func (e *Engine) Dispatch(ev *Event) (Response, *Walk) {
	var r Response
	w := e.DispatchInto(ev, &r)
	return r, w
}

// DispatchInto is Dispatch with the result written into *r (set in full, the zero Response
// when the walk is suspended: then finish it through the returned Walk). For a source that
// dispatches each event it reads: Dispatch's Response, five fields, comes back through
// memory, and the caller's copy of it reads with wide loads what narrow stores just wrote, a
// store-forwarding stall per event; here each field is stored once, where the caller reads
// it field by field.
func (e *Engine) DispatchInto(ev *Event, r *Response) *Walk {
	first := e.firstMarked(ev)
	if first == nil {
		r.Verdict, r.Errno, r.Cache, r.Reason, r.Group = 0, 0, false, 0, 0
		return nil
	}
	v, cache, w := e.dispatch(ev, first)
	r.Verdict, r.Errno, r.Cache, r.Reason, r.Group = v.verdict, v.errno, cache, v.reason, v.group
	return w
}

// firstMarked returns the connector of the first object ev involves that has one (in
// collect's order, which it follows check for check), or nil: most events concern objects
// nobody marks. collect takes the connector from here rather than looking its object up a
// second time (the embedded guard's event has one marked object: its lookup was a third of
// the engine's time, done twice).
func (e *Engine) firstMarked(ev *Event) *connector {
	if c := e.marked(Object{KindInode, ev.Inode}); c != nil {
		return c
	}
	if !ev.Parent.IsZero() && ev.Mask&PossibleOnChild != 0 {
		if c := e.marked(Object{KindInode, ev.Parent}); c != nil {
			return c
		}
	}
	if ev.Mask&Rename != 0 {
		if c := e.marked(Object{KindInode, ev.Target}); c != nil {
			return c
		}
	}
	if c := e.marked(Object{KindMount, ev.Mount}); c != nil {
		return c
	}
	if c := e.marked(Object{KindFilesystem, ev.Filesystem}); c != nil {
		return c
	}
	if ev.AncestryUnknown {
		for _, id := range ev.PossibleAncestors {
			if ev.Mask&PossibleOnChild != 0 {
				if c := e.marked(Object{KindInode, id}); c != nil {
					return c
				}
			}
			if c := e.marked(Object{KindSubtree, id}); c != nil {
				return c
			}
		}
	}
	if e.present[KindSubtree].Load() == 0 {
		return nil
	}
	if c := e.marked(Object{KindSubtree, ev.Inode}); c != nil {
		return c
	}
	for _, id := range ev.Ancestors {
		if c := e.marked(Object{KindSubtree, id}); c != nil {
			return c
		}
	}
	if ev.Mask&Rename != 0 {
		for _, id := range ev.TargetAncestors {
			if c := e.marked(Object{KindSubtree, id}); c != nil {
				return c
			}
		}
	}
	return nil
}

// marked returns obj's connector, or nil, without looking it up when the filter says no.
func (e *Engine) marked(obj Object) *connector {
	if obj.ID.IsZero() {
		return nil
	}
	return e.lookup(obj)
}

// dispatch is Dispatch for an event with marks; it returns the result as a verdict and
// whether it may be cached (see verdict), or the suspended Walk.
func (e *Engine) dispatch(ev *Event, first *connector) (_ verdict, cache bool, _ *Walk) {
	var buf [stackHeads]head
	heads := e.collect(ev, buf[:0], first)
	if len(heads) == 0 {
		return verdict{}, false, nil
	}
	var w walk
	w.init(e, ev)
	if w.perm {
		e.permNotified.Add(1)
	} else {
		e.notifications.Add(1)
	}
	if w.run(heads) {
		return w.result, w.cached(), nil
	}
	// Suspend: the walk's state moves to the heap for the waiter (buf stays on this stack).
	h := &Walk{walk: w}
	if len(heads) <= stackHeads {
		h.heads = h.buf[:len(heads)]
		copy(h.heads, heads)
	} else {
		h.heads = append([]head(nil), heads...)
	}
	return verdict{}, false, h
}

// Walk is a dispatch suspended while a group holds its permission event. Finish it with
// Wait (a goroutine blocks) or Await (a callback runs where the answer arrives), once.
type Walk struct {
	walk
	heads []head
	buf   [stackHeads]head

	// Await's state: the callback, the context, and what cancels the context watcher of the
	// current suspension (the deadline's timer belongs to the queued event).
	ctx      context.Context
	done     func(Response)
	stopCtx  func() bool
	resuming atomic.Bool // one resume per suspension (defensive: answers are exactly-once)
	// With an Executor: the answer to go on with, and the continuation handed to it (made
	// once per walk).
	answer Response
	cont   func()
}

// Await finishes the walk without blocking anyone: done is called exactly once with Notify's
// result — at once if the walk can finish now, else once the group holding the event
// answers, through the engine's Executor (Config.Executor) if it has one, else on the
// goroutine that delivers the answer (a Respond, Close, the deadline's timer, or ctx's end).
// Each time the walk goes on to another group it may run that group's Handler there too.
// done must not block for long (it answers the kernel, say); it runs with no engine lock
// held.
//
// It saves a goroutine per waiting permission event and a wake-up per answer: a source that
// answers a kernel through Await has the kernel answered where the answer arrived, or on its
// own event loop.
func (w *Walk) Await(ctx context.Context, done func(Response)) {
	w.ctx, w.done = ctx, done
	w.arm()
}

// deliver hands the walk the answer of the group holding the event, once per suspension: it
// goes on through the engine's Executor, or at once. Called with no lock held.
func (w *Walk) deliver(r Response) {
	exec := w.e.exec
	if exec == nil {
		w.resume(r)
		return
	}
	w.answer = r
	if w.cont == nil {
		w.cont = func() { w.resume(w.answer) }
	}
	exec(w.cont)
}

// arm registers the walk on the entry its group holds, with a context watcher (set up first:
// if it fires, or the entry's deadline passes, before the registration, the registration
// finds the entry answered and resumes at once).
func (w *Walk) arm() {
	g, q := w.g, w.q
	w.resuming.Store(false)
	if w.ctx != nil && w.ctx.Done() != nil {
		w.stopCtx = context.AfterFunc(w.ctx, func() {
			g.withdraw(q, Response{Verdict: Allow, Reason: ReasonCancelled, Group: g.id})
		})
	}
	g.mu.Lock()
	select {
	case <-q.done:
		r := q.resp
		g.mu.Unlock()
		w.resume(r)
		return
	default:
	}
	q.waiter = w
	g.mu.Unlock()
}

// resume is called once per suspension with the answer of the group holding the event; it
// walks on, and suspends again or calls done.
func (w *Walk) resume(r Response) {
	if !w.resuming.CompareAndSwap(false, true) {
		return
	}
	if w.stopCtx != nil {
		w.stopCtx()
		w.stopCtx = nil
	}
	w.g, w.q = nil, nil
	if w.answeredWith(r) || w.run(w.heads) {
		w.done(w.finish())
		return
	}
	w.arm()
}

// Wait waits for the group holding the event (its answer, deadline, close, or ctx), then
// finishes the walk, waiting for further groups as needed, and returns Notify's result.
func (w *Walk) Wait(ctx context.Context) Response {
	for {
		r := w.g.waitPermission(ctx, w.q)
		w.g, w.q = nil, nil
		if w.answeredWith(r) || w.run(w.heads) {
			return w.finish()
		}
	}
}

// walk is the state of one dispatch besides its heads (the involved connectors' lists and
// positions, fsnotify_iter_info, which run takes apart so that they can stay on the stack):
// the verdict so far and, while suspended, the group holding the event.
type walk struct {
	e           *Engine
	ev          *Event
	perm, ondir bool
	clearIgnore bool
	result      verdict
	asked       bool
	cacheable   bool
	denied      bool
	g           *Group  // the group holding the event while suspended
	q           *queued // its queue entry
	// key is the event's merge key (mergeKey), once keyed: computed for the first group
	// the event is queued to as a notification, for all of them.
	key   uint64
	keyed bool
	// credit is how many references the walk took on ev, in one atomic add, for the groups
	// it is still to queue ev to as a notification (each queued slot owns one: Event.Hold's,
	// without an atomic add per group); run returns what is left before it returns (the
	// source's own reference keeps ev alive meanwhile, so that never releases it).
	credit int32
}

func (w *walk) init(e *Engine, ev *Event) {
	w.e, w.ev = e, ev
	w.perm = ev.Mask&PermissionEvents != 0
	w.ondir = ev.Mask&OnDir != 0
	w.clearIgnore = ev.Mask&Modify != 0
	w.cacheable = true
}

// verdict is what a walk keeps of a group's answer: a Response but for Cache, which the walk
// works out over all the groups it asked (walk.cacheable). Four fields, so that the compiler
// keeps one in registers: a Response has five, and every copy of it goes through memory, a
// store-forwarding stall where wide loads read what narrow stores just wrote (Group.handle
// and dispatch had three such copies of the Handler's answer on the embedded guard's path).
type verdict struct {
	verdict Verdict
	errno   syscall.Errno
	reason  Reason
	group   uint64
}

// response is the Response of v, with cache. Built in the return statement, so that an
// inlined call writes the fields where they are returned (a local Response would be copied).
func (v verdict) response(cache bool) Response {
	return Response{Verdict: v.verdict, Errno: v.errno, Cache: cache, Reason: v.reason, Group: v.group}
}

// verdictOf is r without Cache (see verdict).
func verdictOf(r Response) verdict { return verdict{r.Verdict, r.Errno, r.Reason, r.Group} }

// answered records one group's verdict, and whether the group allows caching it; it reports
// whether the walk is over (a deny).
func (w *walk) answered(v verdict, cache bool) bool {
	w.asked = true
	if v.reason != ReasonAnswered || !cache {
		w.cacheable = false
	}
	w.result = v
	if v.verdict == Deny {
		w.denied = true
	}
	return w.denied
}

// answeredWith is answered for a group's Response.
func (w *walk) answeredWith(r Response) bool { return w.answered(verdictOf(r), r.Cache) }

// cached reports whether the walk's result may be cached: every group asked allowed it with
// Cache.
func (w *walk) cached() bool { return w.asked && w.cacheable && !w.denied }

// finish returns the walk's result.
func (w *walk) finish() Response { return w.result.response(w.cached()) }

// run walks the groups in priority order until the walk is over (true) or a group holds the
// permission event (false, with w.g and w.q set). It gives back the walk's unused credit
// before each return, without a defer (the embedded guard's every event runs it): the only
// call that could panic with credit taken, a Handler's, runs under handleCredited's.
func (w *walk) run(heads []head) bool {
	ev := w.ev
	for {
		// fsnotify_iter_select_report_types: the highest-priority group among the heads.
		var best *Group
		for i := range heads {
			h := &heads[i]
			for int(h.pos) < len(h.marks) && !h.marks[h.pos].attached.Load() {
				h.pos++ // detached while we held the snapshot
			}
			if int(h.pos) < len(h.marks) {
				if g := h.marks[h.pos].group; best == nil || before(g, best) {
					best = g
				}
			}
		}
		if best == nil {
			w.returnCredit()
			return true
		}
		// send_to_group + fanotify_group_event_mask over best's marks; fsnotify_iter_next.
		var marksMask, ignore Mask
		for i := range heads {
			h := &heads[i]
			if int(h.pos) >= len(h.marks) || h.marks[h.pos].group != best {
				continue
			}
			m := h.marks[h.pos]
			h.pos++
			mm, ig := Mask(m.mask.Load()), Mask(m.ignore.Load())
			if h.typ == itParent && mm&EventOnChild == 0 && ig&EventOnChild == 0 {
				continue // this directory mark does not watch children
			}
			if w.clearIgnore && ig != 0 && MarkFlags(m.flags.Load())&IgnoreSurviveModify == 0 {
				m.ignore.Store(0) // a modification clears the ignore mask (send_to_group)
				ig = 0
			}
			ignore |= effectiveIgnore(ig, w.ondir, h.typ)
			if applicable(mm, w.ondir, h.typ) {
				marksMask |= mm
			}
		}
		test := ev.Mask & marksMask & AllEvents &^ ignore
		if test == 0 {
			continue
		}
		deliver := test | ev.Mask&OnDir
		if !w.perm || test&PermissionEvents == 0 {
			if !w.keyed {
				w.key, w.keyed = mergeKey(ev), true // once for every group of the walk
			}
			if w.credit == 0 {
				// Enough for this group and every mark still ahead (each further group
				// has one at least).
				w.credit = 1 + remaining(heads)
				ev.refs.Add(w.credit)
			}
			if best.queueNotification(ev, deliver, w.key) {
				w.credit--
			}
			continue
		}
		var v verdict
		var cache, ok bool
		if w.credit == 0 {
			v, cache, ok = best.handle(ev, deliver)
		} else {
			v, cache, ok = w.handleCredited(best, deliver)
		}
		if ok {
			if w.answered(v, cache) {
				w.returnCredit()
				return true
			}
			continue
		}
		q, r := best.queuePermission(ev, deliver, w.e.nextPerm.Add(1))
		if q != nil {
			w.returnCredit()
			w.g, w.q = best, q
			return false
		}
		if w.answeredWith(r) {
			w.returnCredit()
			return true
		}
	}
}

// handleCredited is g.handle for a walk holding credit (it queued the event as a
// notification to a group before): should the Handler panic, the credit goes back, so that
// the event is still released once its holders are done.
func (w *walk) handleCredited(g *Group, m Mask) (verdict, bool, bool) {
	panicking := true
	defer func() {
		if panicking {
			w.returnCredit()
		}
	}()
	v, cache, ok := g.handle(w.ev, m)
	panicking = false
	return v, cache, ok
}

// returnCredit drops the references the walk took for groups that did not queue ev
// (walk.credit). The source's reference is held through the walk: this never releases ev.
func (w *walk) returnCredit() {
	if w.credit != 0 {
		w.ev.refs.Add(-w.credit)
		w.credit = 0
	}
}

// remaining counts the marks the heads hold past their positions: at most one group each.
func remaining(heads []head) int32 {
	n := 0
	for i := range heads {
		n += len(heads[i].marks) - int(heads[i].pos)
	}
	return int32(n)
}

// applicable reports whether a mask (or ignore mask) applies to the event: a directory's
// events need OnDir, a child's events reach a parent's mark only with EventOnChild
// (fsnotify_mask_applicable).
func applicable(m Mask, ondir bool, t iterType) bool {
	if ondir && m&OnDir == 0 {
		return false
	}
	return t != itParent || m&EventOnChild != 0
}

// effectiveIgnore is the part of an ignore mask that applies to the event
// (fsnotify_effective_ignore_mask, FAN_MARK_IGNORE semantics).
func effectiveIgnore(ig Mask, ondir bool, t iterType) Mask {
	if ig&AllEvents == 0 {
		return 0
	}
	if !ondir && t != itParent {
		return ig & AllEvents
	}
	if !applicable(ig, ondir, t) {
		return 0
	}
	return ig & AllEvents
}

// collect appends the involved connectors' lists to heads. first, if not nil, is a connector
// firstMarked found in this dispatch: its object is not looked up again.
func (e *Engine) collect(ev *Event, heads []head, first *connector) []head {
	if first != nil && first.obj.Kind == KindSubtree && !ev.AncestryUnknown {
		return e.collectFromSubtree(ev, heads, first)
	}
	heads = e.addHead(heads, first, Object{KindInode, ev.Inode}, itInode)
	if !ev.Parent.IsZero() && ev.Mask&PossibleOnChild != 0 {
		heads = e.addHead(heads, first, Object{KindInode, ev.Parent}, itParent)
	}
	if ev.Mask&Rename != 0 && !ev.Target.IsZero() {
		heads = e.addHead(heads, first, Object{KindInode, ev.Target}, itInode2)
	}
	if !ev.Mount.IsZero() {
		heads = e.addHead(heads, first, Object{KindMount, ev.Mount}, itMount)
	}
	if !ev.Filesystem.IsZero() {
		heads = e.addHead(heads, first, Object{KindFilesystem, ev.Filesystem}, itFilesystem)
	}
	if ev.AncestryUnknown {
		// Possibly below any of them: each may be its parent, or the root of a subtree it
		// is in. (A group with marks on several of them still gets one delivery: the walk
		// merges a group's marks across heads.)
		for _, id := range ev.PossibleAncestors {
			if ev.Mask&PossibleOnChild != 0 {
				heads = e.addHead(heads, first, Object{KindInode, id}, itParent)
			}
			if e.present[KindSubtree].Load() != 0 {
				heads = e.addHead(heads, first, Object{KindSubtree, id}, itSubtree)
			}
		}
	}
	if e.present[KindSubtree].Load() == 0 {
		return heads
	}
	heads = e.addHead(heads, first, Object{KindSubtree, ev.Inode}, itSubtree)
	for _, id := range ev.Ancestors {
		heads = e.addHead(heads, first, Object{KindSubtree, id}, itSubtree)
	}
	if ev.Mask&Rename != 0 {
		for _, id := range ev.TargetAncestors {
			heads = e.addHead(heads, first, Object{KindSubtree, id}, itSubtree)
		}
	}
	return heads
}

// collectFromSubtree is collect for an event (of known ancestry) whose first marked object,
// first, is a subtree: firstMarked checked every object collect looks at before it, in
// collect's order, and found none with a connector, so none of them can hold a mark that was
// attached during the whole Notify; it takes the heads from first on (the embedded guard's
// every event: its file's inode, directory, mount, filesystem and subtree are not looked up
// twice).
func (e *Engine) collectFromSubtree(ev *Event, heads []head, first *connector) []head {
	found := first.obj.ID == ev.Inode
	if found {
		heads = addList(heads, first, itSubtree)
	}
	for _, id := range ev.Ancestors {
		if found {
			heads = e.addHead(heads, first, Object{KindSubtree, id}, itSubtree)
		} else if id == first.obj.ID {
			found = true
			heads = addList(heads, first, itSubtree)
		}
	}
	if ev.Mask&Rename != 0 {
		// The ancestors' loop again, for the rename's target chain: one function for both
		// (not inlined: it loops) cost the guard's every dispatch a call —
		// BenchmarkPermissionHandledGuard, -count 8 each, benchstat: cold +2.9% (p=0.005),
		// hot 54.9 -> 56.7 ns (p=0.061), 2026-12-06.
		for _, id := range ev.TargetAncestors {
			if found {
				heads = e.addHead(heads, first, Object{KindSubtree, id}, itSubtree)
			} else if id == first.obj.ID {
				found = true
				heads = addList(heads, first, itSubtree)
			}
		}
	}
	return heads
}

// addList appends c's list to heads, if it has marks.
func addList(heads []head, c *connector, t iterType) []head {
	if l := *c.list.Load(); len(l) > 0 {
		heads = append(heads, head{marks: l, typ: t})
	}
	return heads
}

func (e *Engine) addHead(heads []head, first *connector, obj Object, t iterType) []head {
	if obj.ID.IsZero() {
		return heads
	}
	var c *connector
	if first != nil && first.obj == obj {
		c = first
	} else if c = e.lookup(obj); c == nil {
		return heads
	}
	if l := *c.list.Load(); len(l) > 0 {
		heads = append(heads, head{marks: l, typ: t})
	}
	return heads
}
