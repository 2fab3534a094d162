package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/ring"
)

// Group is a listener (struct fsnotify_group): it owns marks, a queue of events to read and,
// for content and pre-content classes, the permission events it must answer.
//
// Channel and queue contract: the queue holds up to Options.QueueLimit events; when it is
// full, a QueueOverflow event is queued and later events are dropped (counted in Stats)
// until the reader catches up. Each gap has its overflow in place: an event dropped after
// events that were queued behind the last overflow queues another one (the kernel queues
// one at a time, so a reader that resumed past its first overflow while it was still queued
// could meet a second gap with none). Notify never blocks on a full queue; a permission event that
// meets a full queue gets the group's QueueFullVerdict at once.
type Group struct {
	e  *Engine
	id uint64
	// What a walk reads of each group it reaches, and writes of one whose Handler answers,
	// in the cache line of id and opts.Class (before's): the embedded guard's listener meets
	// its group with cold caches at each event, and these were four lines apart.
	handler func(d Delivery) (Response, bool) // opts.Handler
	closing atomic.Bool                       // set with shutdown; read without mu
	handled atomic.Uint64                     // answered by the Handler (groupCounters)
	opts    Options
	limit   int // resolved queue limit; negative: unlimited

	markMu     sync.Mutex
	marks      *Mark // guarded by markMu
	nmarks     int   // guarded by markMu
	permMarks  int   // marks whose event mask holds permission events; guarded by markMu
	markClosed bool  // guarded by markMu: no new marks

	mu sync.Mutex
	// q is the queue: notifications by value (a slot holds the shared *Event, which every
	// group's slot references, and this group's mask), permission events through their
	// entry. A notification costs a group no allocation and no entry of its own: with many
	// groups (the daemon's clients) each event is queued as a 32-byte slot per group.
	q    ring.Ring[slot] // guarded by mu
	qlen int             // live queued entries; guarded by mu
	// ovfAt is the queue position of the newest overflow slot, plus one (0: none yet);
	// afterOvf counts the live entries queued after it. Guarded by mu.
	ovfAt      uint64
	afterOvf   int
	pending    map[uint64]*queued // read, unanswered permission events; guarded by mu
	unanswered int                // permission events queued or read, not answered; guarded by mu
	shutdown   bool               // guarded by mu
	// The deadlines of the permission events queued and not answered, in queueing order,
	// which is deadline order (every event gets the same Options.Deadline, from a time taken
	// under mu): dl holds them, answered ones at its head dropped at once and elsewhere when
	// they reach the head; dlTimer fires at its head's deadline. One runtime timer per group,
	// not per event: arming a timer that is the earliest of its P wakes a thread of the Go
	// runtime (wakeNetPoller), which on a 2-vCPU VM cost a thread wake-up per permission
	// event. Guarded by mu.
	dl      ring.Ring[*queued]
	dlTimer *time.Timer
	dlArmed bool
	// mergeIdx remembers the newest unread notification per merge-key bucket (the kernel
	// hashes unread events into 128 buckets for fanotify_merge), as its position in q plus
	// one (0: none; a position q has popped is stale: ring.live); guarded by mu.
	mergeIdx [mergeBuckets]uint64

	wake   chan struct{} // capacity 1: a token that something was queued
	done   chan struct{} // closed when Close starts
	closed chan struct{} // closed when Close has finished

	// qst counts what the queue took and lost. Guarded by mu, which every count is made
	// under anyway: an atomic add per group per event (ten groups: ten adds per event, each a
	// locked instruction) was a sixth of queueNotification's time (docs/design/performance.md).
	qst queueCounters

	st groupCounters
}

// queueCounters are a group's queue figures (Stats): events queued, merged into an unread
// event, dropped on a full queue, overflows queued. Guarded by Group.mu.
type queueCounters struct {
	delivered, merged, dropped, overflows uint64
}

// groupCounters are a group's permission figures, counted without its lock. An event answered
// at once by the Handler counts in Group.handled alone (kept beside the Handler) and one
// answered from the queue in queueAnswered alone (Stats adds them up for Answered): one
// locked add per handled event where there were two, on the embedded guard's path.
type groupCounters struct {
	queueAnswered, permDeadline, permClosed, permQueueFull, permCancelled atomic.Uint64
	handlerInvalid                                                        atomic.Uint64
	latencyNanos                                                          atomic.Uint64 // sum over events answered from the queue
}

// slot is one entry of a group's queue: a notification (ev, mask, hash), a permission
// event (p), or the overflow event (neither ev nor p; kernel: overflow_event).
type slot struct {
	ev   *Event  // a notification's event; nil for a permission event and the overflow
	p    *queued // a permission event's entry
	mask Mask    // a notification's mask (QueueOverflow for the overflow)
	hash uint64  // a notification's merge key; 0 never merges
}

// queued is a permission event's entry (struct fanotify_perm_event): it lives from queueing
// to the answer, on the queue, then on the access list.
type queued struct {
	ev    *Event
	mask  Mask
	id    uint64 // permission event id
	pos   uint64 // its position in the queue (ring.end when pushed)
	dead  bool   // withdrawn while unread (deadline or cancel); skipped by readers
	read  bool   // a reader has it (moved to the access list)
	done  chan struct{}
	resp  Response      // valid once done is closed; guarded by Group.mu until then
	start time.Duration // when queued, on the engine's clock (Engine.since): 8 bytes, not 24
	// deadline is when the group's deadline withdraws the event, on the engine's clock,
	// counted from queueing whoever waits for the answer and however (Wait, Await, or nobody
	// yet); 0 without a deadline. Set under Group.mu when queued (Group.dl).
	deadline time.Duration
	over     bool // answered (answeredLocked); guarded by Group.mu
	// waiter, if set (under Group.mu), is a suspended Walk to resume with the answer, through
	// the engine's Executor or on the goroutine that answers (Walk.Await); else a goroutine
	// waits on done (Walk.Wait).
	waiter *Walk
}

// Delivery is an event as one group reads it.
type Delivery struct {
	// Event is the source's event; nil for a QueueOverflow.
	Event *Event
	// Mask is what this group is told: the event's bits that its marks select, plus OnDir
	// for a directory; QueueOverflow for an overflow. Repeats merged into this delivery have
	// their bits ORed in.
	Mask Mask
	// ID identifies a permission event for Respond; 0 for notifications.
	ID uint64
}

// Release drops the delivery's reference on its event (and payload). Call it once when done
// with the delivery — for a permission event, after Respond.
func (d Delivery) Release() {
	if d.Event != nil {
		d.Event.Release()
	}
}

// NewGroup creates a group.
func (e *Engine) NewGroup(opts Options) (*Group, error) {
	if opts.Class > ClassPreContent || opts.DeadlineVerdict > Deny || opts.CloseVerdict > Deny ||
		opts.QueueFullVerdict > Deny || opts.Deadline < 0 || opts.MarkLimit < 0 {
		return nil, ErrInvalid
	}
	g := &Group{
		e:       e,
		id:      e.nextGroup.Add(1),
		handler: opts.Handler,
		opts:    opts,
		limit:   opts.QueueLimit,
		pending: make(map[uint64]*queued),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
	}
	if g.limit == 0 {
		g.limit = DefaultQueueLimit
	}
	e.groupsMu.Lock()
	e.groups[g.id] = g
	e.groupsMu.Unlock()
	return g, nil
}

// ID returns the group's id, unique in its engine.
func (g *Group) ID() uint64 { return g.id }

// Options returns the group's options.
func (g *Group) Options() Options { return g.opts }

// Done is closed when the group starts closing.
func (g *Group) Done() <-chan struct{} { return g.done }

// signal hands the reader a wake-up token and calls OnQueue; never blocks (unless OnQueue
// does). Called with no lock held.
func (g *Group) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
	if f := g.opts.OnQueue; f != nil {
		f()
	}
}

// TryReadBatch fills dst with as many queued events as there are, without blocking, and
// returns how many (0 if none); ErrClosed once the group is closed.
func (g *Group) TryReadBatch(dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, ErrInvalid
	}
	return g.readSome(dst, false)
}

// TryReadBatchHeld is TryReadBatch for a reader that holds what it reads for a while (the
// daemon's writer, waiting for a client's socket): the entries read stay counted in the
// group's QueueBudget, if it has one, until the reader gives them back with its Release. So
// they never make room for more, even for a moment (a Hold after the read would let
// concurrent groups take the room between the two).
func (g *Group) TryReadBatchHeld(dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, ErrInvalid
	}
	return g.readSome(dst, true)
}

// mergeKey hashes what makes two unread notifications the same (fanotify_merge: same object,
// same pid, same directory-ness, same name; sameObject also compares the directory, which
// the hash leaves out); events that never merge get 0.
func mergeKey(ev *Event) uint64 {
	if ev.Mask&(PermissionEvents|Rename|FSError|QueueOverflow) != 0 {
		return 0
	}
	h := hashObject(Object{KindInode, ev.Inode}) ^ hashObject(Object{KindMount, ev.Mount})
	h ^= uint64(uint32(ev.Pid)) * 0x9e3779b97f4a7c15
	if ev.Mask&OnDir != 0 {
		h ^= 0x5bd1e995
	}
	for i := 0; i < len(ev.Name); i++ {
		h = (h ^ uint64(ev.Name[i])) * 0x100000001b3
	}
	if h == 0 {
		h = 1
	}
	return h
}

// sameObject reports whether two notifications are on the same object through the same
// directory entry: a file's hard links named alike in two directories are one inode and one
// name, but two entries, whose events neither kernel merges (fanotify compares the
// directory's fid, inotify the watch): merged, the second directory's watch lost its event
// (TestMergeKeepsEachDirectoryOfALinkedFile).
func sameObject(a, b *Event) bool {
	return a.Inode == b.Inode && a.Parent == b.Parent && a.Mount == b.Mount && a.Pid == b.Pid &&
		a.Mask&OnDir == b.Mask&OnDir && a.Name == b.Name &&
		a.Mask&DirentEvents != 0 == (b.Mask&DirentEvents != 0)
}

const (
	// mergeBuckets: a notification merges into the newest unread identical event of its bucket.
	mergeBuckets = 128
)

// queueNotification queues ev for g with mask m, merging it into an identical unread event.
// key is mergeKey(ev), computed once per walk for all the groups it reaches. It reports
// whether it queued ev: then the queued slot owns one of the references the caller (a walk,
// walk.credit) took on ev beforehand; merged or dropped, it took none.
func (g *Group) queueNotification(ev *Event, m Mask, key uint64) (queued bool) {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return false
	}
	if key != 0 && (g.opts.MergeLast || m&DeleteSelf != 0) {
		// Only a notification can be the newest slot and merge (a permission event's slot
		// has p, the overflow's no ev); a read one has left the queue. A DELETE_SELF merges
		// only into the newest event, even under fanotify's rule: merged into an older one
		// (the directory's own open or close before the removals inside it) it would be
		// read before events that happened before it — and nothing happens to an object,
		// or in a directory, after it goes (docs/events.md, "One order"). Into the newest
		// it ORs its bits under fanotify's rule, and only as an exact repeat under MergeLast.
		if n := g.q.Len(); n > 0 {
			if s := g.q.Ptr(n - 1); s.hash == key && s.ev != nil && sameObject(s.ev, ev) &&
				(s.mask == m || !g.opts.MergeLast) {
				s.mask |= m
				g.qst.merged++
				g.mu.Unlock()
				return false
			}
		}
	} else if key != 0 {
		if at := g.mergeIdx[key%mergeBuckets]; at != 0 && g.q.Live(at-1) {
			if s := g.q.Abs(at - 1); s.hash == key && sameObject(s.ev, ev) {
				s.mask |= m
				g.qst.merged++
				g.mu.Unlock()
				return false
			}
		}
	}
	if g.fullLocked() {
		g.mu.Unlock()
		return false
	}
	if key != 0 && !g.opts.MergeLast {
		g.mergeIdx[key%mergeBuckets] = g.q.End() + 1
	}
	wake := g.pushLocked(slot{ev: ev, mask: m, hash: key})
	g.qst.delivered++
	g.mu.Unlock()
	if wake {
		g.signal()
	}
	return true
}

// pushLocked queues q and reports whether the queue was empty, i.e. whether a reader may be
// waiting for a wake-up token. Readers that leave events behind pass the token on, so one
// token per empty → non-empty transition is enough. Needs g.mu.
func (g *Group) pushLocked(s slot) bool {
	if s.ev == nil && s.p == nil {
		g.ovfAt, g.afterOvf = g.q.End()+1, 0
	} else {
		g.afterOvf++
	}
	g.q.Push(s)
	g.qlen++
	if b := g.opts.QueueBudget; b != nil {
		b.add(1)
	}
	return g.qlen == 1
}

// overflowNewestLocked reports whether the newest live entry of the queue is an overflow:
// a loss now is in the gap it reports. Needs g.mu.
func (g *Group) overflowNewestLocked() bool {
	return g.ovfAt != 0 && g.q.Live(g.ovfAt-1) && g.afterOvf == 0
}

// fullLocked reports whether the queue is full, queueing an overflow event unless the newest
// entry is one, and counting the drop (fsnotify_insert_event's overflow path). Needs g.mu.
func (g *Group) fullLocked() bool {
	if (g.limit < 0 || g.qlen < g.limit) && (g.opts.QueueBudget == nil || g.opts.QueueBudget.room()) {
		return false
	}
	g.qst.dropped++
	if !g.overflowNewestLocked() {
		// The queue is full (no reader waits for a token), and holds at most one entry
		// more than its limit: another overflow needs an event queued after this one,
		// which needs room.
		g.pushLocked(slot{mask: QueueOverflow})
		g.qst.overflows++
	}
	return true
}

// Overflow queues a QueueOverflow event (unless the newest queued entry is one): the source
// lost events that this group may have wanted, e.g. when the kernel's own queue overflowed.
func (g *Group) Overflow() {
	g.mu.Lock()
	if g.shutdown || g.overflowNewestLocked() {
		g.mu.Unlock()
		return
	}
	wake := g.pushLocked(slot{mask: QueueOverflow})
	g.qst.overflows++
	g.mu.Unlock()
	if wake {
		g.signal()
	}
}

// queuePermission queues a permission event, with its deadline timer if the group has a
// deadline. It returns nil with a response when the event is not queued (shutdown: the
// group's CloseVerdict, as for the events pending at Close — a walk can still reach a closing
// group's marks until Close detaches them; full queue: the group's QueueFullVerdict).
func (g *Group) queuePermission(ev *Event, m Mask, id uint64) (*queued, Response) {
	q := &queued{ev: ev, mask: m, id: id, done: make(chan struct{}), start: g.e.since()}
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		g.st.permClosed.Add(1)
		return nil, g.closeResponse()
	}
	if g.fullLocked() {
		g.mu.Unlock()
		g.st.permQueueFull.Add(1)
		return nil, Response{Verdict: g.opts.QueueFullVerdict, Reason: ReasonQueueFull, Group: g.id}
	}
	ev.Hold()
	q.pos = g.q.End()
	wake := g.pushLocked(slot{p: q})
	g.unanswered++
	if d := g.opts.Deadline; d > 0 {
		// Under g.mu: the expiry that may run at once waits for q to be queued.
		q.deadline = g.e.since() + d
		g.dl.Push(q)
		if !g.dlArmed {
			g.dlArmed = true
			if g.dlTimer == nil {
				g.dlTimer = time.AfterFunc(d, g.expire)
			} else {
				g.dlTimer.Reset(d)
			}
		}
	}
	g.qst.delivered++
	g.mu.Unlock()
	if wake {
		g.signal()
	}
	return q, Response{}
}

// expire is the deadline timer's: it withdraws, with the deadline verdict, the events whose
// deadline passed, and arms the timer for the next one.
func (g *Group) expire() {
	for {
		var due []*queued
		g.mu.Lock()
		now := g.e.since()
		for g.dl.Len() > 0 {
			q := g.dl.At(0)
			if !q.over && q.deadline > now {
				break
			}
			g.dl.Pop()
			if !q.over {
				due = append(due, q)
			}
		}
		if len(due) == 0 {
			if g.dl.Len() == 0 || g.shutdown {
				g.dlArmed = false
			} else {
				g.dlTimer.Reset(g.dl.At(0).deadline - now)
			}
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		// Outside g.mu, in deadline order; an answer that won the race holds (withdraw).
		for _, q := range due {
			g.withdraw(q, Response{Verdict: g.opts.DeadlineVerdict, Reason: ReasonDeadline, Group: g.id})
		}
	}
}

// waitPermission waits for q's answer (which the deadline's timer may give) or ctx (fanotify's
// get_perm_response, with no lock held: the kernel's fsnotify_prepare_user_wait dropped SRCU).
func (g *Group) waitPermission(ctx context.Context, q *queued) Response {
	select {
	case <-q.done:
		return q.resp // written before done was closed
	case <-ctx.Done():
		return g.withdraw(q, Response{Verdict: Allow, Reason: ReasonCancelled, Group: g.id})
	}
}

// Closing reports whether Close has begun.
func (g *Group) Closing() bool { return g.closing.Load() }

// closeResponse is the answer a closing group gives.
func (g *Group) closeResponse() Response {
	return Response{Verdict: g.opts.CloseVerdict, Reason: ReasonClosed, Group: g.id}
}

// answeredLocked records that q is answered with r: it wakes whoever waits on q and returns
// q's suspended walk (to resume once g.mu is dropped). Needs g.mu.
func (g *Group) answeredLocked(q *queued, r Response) *Walk {
	q.resp = r
	close(q.done)
	g.unanswered--
	q.over = true
	// Drop answered deadlines from the head (in order, usually q itself): those behind an
	// unanswered one wait for it to be answered or expire.
	for g.dl.Len() > 0 && g.dl.At(0).over {
		g.dl.Pop()
	}
	return q.waiter
}

// withdraw answers q with r unless an answer won the race, and returns the answer that holds.
func (g *Group) withdraw(q *queued, r Response) Response {
	g.mu.Lock()
	select {
	case <-q.done:
		g.mu.Unlock()
		return q.resp
	default:
	}
	var release *Event
	if q.read {
		delete(g.pending, q.id) // the reader's late answer gets ErrNoSuchEvent
	} else {
		q.dead = true
		g.qlen--
		if b := g.opts.QueueBudget; b != nil {
			b.add(-1)
		}
		if g.ovfAt != 0 && q.pos >= g.ovfAt {
			g.afterOvf-- // queued after the newest overflow: no longer in the way
		}
		release = q.ev
	}
	// Counted before the answer is seen (answeredLocked wakes the waiter): whoever got the
	// deadline verdict finds it in Stats.
	switch r.Reason {
	case ReasonDeadline:
		g.st.permDeadline.Add(1)
	case ReasonCancelled:
		g.st.permCancelled.Add(1)
	}
	w := g.answeredLocked(q, r)
	g.mu.Unlock()
	if release != nil {
		release.Release()
	}
	if w != nil {
		w.deliver(r)
	}
	return r
}

// Respond answers the permission event id, which must have been read from g and not answered
// yet; otherwise it returns ErrNoSuchEvent (the kernel's ENOENT), or ErrClosed, and answers
// nothing. A pending event is always answered, whatever r holds (see answer): a deny with an
// errno g cannot send is a plain deny (EPERM); an answer that is no verdict at all (an unknown
// verdict, an errno with allow) denies it, and Respond returns ErrInvalidAnswer. (The kernel
// refuses such answers with EINVAL and leaves the event waiting; here a caller's mistake must
// never leave an access waiting for the deadline, or forever without one.)
func (g *Group) Respond(id uint64, r Response) error {
	valid := g.answer(&r)
	g.mu.Lock()
	q := g.pending[id]
	if q == nil {
		closed := g.shutdown
		g.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return ErrNoSuchEvent
	}
	delete(g.pending, id)
	r.Reason = ReasonAnswered
	r.Group = g.id
	// Counted before the answer is given (answeredLocked may end the waiting Notify): whoever
	// sees its answer sees it in Stats.
	g.st.queueAnswered.Add(1)
	g.st.latencyNanos.Add(uint64(g.e.since() - q.start))
	w := g.answeredLocked(q, r)
	g.mu.Unlock()
	if w != nil {
		w.deliver(r) // the walk goes on here, or through the engine's Executor
	}
	if !valid {
		return ErrInvalidAnswer
	}
	return nil
}

// answer returns the verdict g gives for r, so that every answer is one. A deny keeps its
// errno only where the kernel honours it (FAN_DENY_ERRNO: a pre-content group, one of
// DenyErrnos); elsewhere it is a plain deny (EPERM), as documented for notify.DenyErrno and
// policy errno= rules. An answer that is no verdict — an unknown verdict, an errno with
// allow — is a deny, and ok is false. Only an allow may be cached.
func (g *Group) answer(r *Response) (ok bool) {
	if r.Verdict > Deny || (r.Errno != 0 && r.Verdict != Deny) {
		*r = Response{Verdict: Deny}
		return false
	}
	if r.Errno != 0 && (g.opts.Class != ClassPreContent || !slices.Contains(DenyErrnos, r.Errno)) {
		r.Errno = 0
	}
	if r.Verdict != Allow {
		r.Cache = false
	}
	r.Reason, r.Group = ReasonNone, 0
	return true
}

// Read returns the next event, blocking until there is one, ctx ends (ctx.Err()) or the group
// closes (ErrClosed). A permission event moves to the group's access list: answer it with
// Respond. Release each delivery when done.
func (g *Group) Read(ctx context.Context) (Delivery, error) {
	var one [1]Delivery
	_, err := g.ReadBatch(ctx, one[:])
	return one[0], err
}

// TryRead returns the next event without blocking; ErrWouldBlock if there is none.
func (g *Group) TryRead() (Delivery, error) {
	var one [1]Delivery
	n, err := g.readSome(one[:], false)
	if err == nil && n == 0 {
		err = ErrWouldBlock
	}
	return one[0], err
}

// ReadBatch blocks like Read, then fills dst with as many queued events as there are (at
// least one) and returns how many.
func (g *Group) ReadBatch(ctx context.Context, dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, ErrInvalid
	}
	for {
		n, err := g.readSome(dst, false)
		if n > 0 || err != nil {
			return n, err
		}
		select {
		case <-g.wake:
		case <-g.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (g *Group) readSome(dst []Delivery, held bool) (int, error) {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return 0, ErrClosed
	}
	n := 0
	for n < len(dst) && g.q.Len() > 0 {
		// A read notification takes no more merges: its position is stale once popped.
		s := g.q.Pop()
		switch q := s.p; {
		case q != nil:
			if q.dead {
				continue
			}
			q.read = true
			g.pending[q.id] = q
			dst[n] = Delivery{Event: q.ev, Mask: q.mask, ID: q.id}
		case s.ev == nil:
			dst[n] = Delivery{Mask: QueueOverflow}
		default:
			dst[n] = Delivery{Event: s.ev, Mask: s.mask}
		}
		g.qlen--
		n++
	}
	if b := g.opts.QueueBudget; b != nil && n > 0 && !held {
		b.add(-int64(n))
	}
	more := g.qlen > 0
	g.mu.Unlock()
	if more {
		g.signal() // let another reader in
	}
	return n, nil
}

// Close closes the group (fanotify_release, then fsnotify_destroy_group): it answers every
// pending permission event (queued or read and unanswered) with the close verdict, and any
// that reaches the group until its marks are gone too, drops the queue and removes the
// group's marks. Readers get ErrClosed. It waits for no walk and no source: a walk waiting
// on the group through Wait goes on when its source calls Wait (the kernel waits for
// user_waits only to free the group, which the garbage collector does here); one waiting
// through Await goes on, to lower-priority groups and its callback, through the engine's
// Executor, or without one on Close's goroutine.
// Close is idempotent; concurrent calls wait for the first.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		<-g.closed
		return nil
	}
	g.shutdown = true
	g.closing.Store(true)
	var answer []*queued
	var release []*Event
	for g.q.Len() > 0 {
		s := g.q.Pop()
		switch q := s.p; {
		case q != nil:
			if !q.dead {
				answer = append(answer, q)
				release = append(release, q.ev)
			}
		case s.ev != nil:
			release = append(release, s.ev)
		}
	}
	if b := g.opts.QueueBudget; b != nil {
		b.add(-int64(g.qlen))
	}
	g.qlen = 0
	g.mergeIdx = [mergeBuckets]uint64{}
	for id, q := range g.pending {
		answer = append(answer, q)
		delete(g.pending, id)
	}
	resp := g.closeResponse()
	waiters := make([]*Walk, 0, len(answer))
	for _, q := range answer {
		// Answered under g.mu, as Respond and withdraw do: a Notify whose deadline or context
		// ends now must find the event answered, or it withdraws it too (a second close of
		// q.done, a second release of the event, a negative qlen).
		if w := g.answeredLocked(q, resp); w != nil {
			waiters = append(waiters, w)
		}
	}
	dlTimer := g.dlTimer
	g.mu.Unlock()

	close(g.done)
	if dlTimer != nil {
		dlTimer.Stop() // one that fired already finds every event answered
	}
	g.st.permClosed.Add(uint64(len(answer)))
	for _, ev := range release {
		ev.Release()
	}
	// Awaiting walks go on to lower-priority groups, here or through the engine's Executor
	// (each waiter was read under the lock: nobody else resumes them, as q.done is closed).
	for _, w := range waiters {
		w.deliver(resp)
	}

	g.markMu.Lock()
	g.markClosed = true
	g.markMu.Unlock()
	g.FlushMarks(0)

	g.e.groupsMu.Lock()
	delete(g.e.groups, g.id)
	g.e.groupsMu.Unlock()
	close(g.closed)
	return nil
}

// GroupStats are a group's figures.
type GroupStats struct {
	ID    uint64
	Name  string
	Class Class
	// Queued events not read yet; Pending permission events not answered yet (queued or read);
	// Marks held.
	Queued, Pending, Marks int
	// Delivered events queued; Merged into an unread event; Dropped on a full queue;
	// Overflows queued.
	Delivered, Merged, Dropped, Overflows uint64
	// Permission outcomes: answered by the group (Handled of them by its Handler, at once),
	// deadline verdicts, close verdicts, full-queue verdicts, withdrawn because the source
	// gave up; HandlerInvalid counts invalid Handler answers (turned into denies).
	Answered, Handled, HandlerInvalid, DeadlineExpired, ClosedAnswered, QueueFull, Cancelled uint64
	// AnswerLatency is the mean time from queueing to answer for answered events.
	AnswerLatency time.Duration
}

// Stats returns the group's figures.
func (g *Group) Stats() GroupStats {
	g.mu.Lock()
	queued, pending, qst := g.qlen, g.unanswered, g.qst
	g.mu.Unlock()
	g.markMu.Lock()
	nm := g.nmarks
	g.markMu.Unlock()
	handled := g.handled.Load() // before the sum: Handled ≤ Answered
	s := GroupStats{
		ID: g.id, Name: g.opts.Name, Class: g.opts.Class,
		Queued: queued, Pending: pending, Marks: nm,
		Delivered: qst.delivered, Merged: qst.merged, Dropped: qst.dropped,
		Overflows: qst.overflows, Answered: g.st.queueAnswered.Load() + handled,
		Handled: handled, HandlerInvalid: g.st.handlerInvalid.Load(),
		DeadlineExpired: g.st.permDeadline.Load(), ClosedAnswered: g.st.permClosed.Load(),
		QueueFull: g.st.permQueueFull.Load(), Cancelled: g.st.permCancelled.Load(),
	}
	if s.Answered > 0 {
		s.AnswerLatency = time.Duration(g.st.latencyNanos.Load() / s.Answered)
	}
	return s
}

// handle answers a permission event through the group's Handler, if it has one and the
// Handler answers at once: the group's verdict, and whether it may be cached.
func (g *Group) handle(ev *Event, m Mask) (_ verdict, cache, ok bool) {
	h := g.handler
	if h == nil || g.closing.Load() {
		return verdict{}, false, false
	}
	r, ok := h(Delivery{Event: ev, Mask: m})
	if !ok {
		return verdict{}, false, false
	}
	g.handled.Add(1) // and answered (groupCounters)
	if r.Verdict == Allow && r.Errno == 0 {
		// What answer leaves of a plain allow (the embedded guard's answer): no call, and
		// r stays in registers (answer takes its address).
		return verdict{Allow, 0, ReasonAnswered, g.id}, r.Cache, true
	}
	if !g.answer(&r) {
		g.st.handlerInvalid.Add(1) // denied, loudly in stats
	}
	return verdict{r.Verdict, r.Errno, ReasonAnswered, g.id}, r.Cache, true
}
