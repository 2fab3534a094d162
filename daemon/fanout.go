//go:build linux

package daemon

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// Notification fan-out: how a notification client's events leave its engine group.
//
// A kernel notification event is queued to every client that marked its object. Waking a
// writer goroutine per client for each event cost more than everything else the daemon does
// for it (bench/fanout.sh, docs/design/performance.md: the Go scheduler's wake-ups, one
// sendmsg per event per client). So no goroutine is woken per event:
//
//   - A group's OnQueue (called by the engine on the goroutine that queued the event, only
//     when the group's queue goes from empty to not empty) puts the session on the server's
//     dirty list (fanout.queued). Events queued to a queue that is not empty cost nothing more.
//   - The dirty sessions are flushed together (fanout.flush): at once, on the goroutine that
//     queued the event, if the last flush is at least the interval (fanout.every) old — so a
//     lone event leaves with no delay and no hand-off — else once the interval has passed
//     since the last one: by the backend's FID reader, which queues almost every
//     notification, if it is awake (it calls readerHook.Idle before it waits, and its wait
//     ends when the flush is due), else by a timer. A timer's flush wakes a thread of its own
//     each time, and under a flood those wake-ups and parks were a tenth of the daemon's CPU
//     (docs/design/performance.md, session 7). So a client gets at most one write per
//     interval (plus one) however many events it is sent, each event waits at most the
//     interval (or until the FID reader's batch under way ends), and under a flood the
//     events of an interval go in one sendmsg per client.
//   - The interval grows with the clients a flush wrote to (flushPerClient each, from
//     flushEvery up to maxFlushEvery): under a flood each flush costs a sendmsg and a
//     wake-up of the client's reader per client, whatever the number of events, and with
//     ten clients those were most of the daemon's and the clients' CPU per event
//     (docs/design/performance.md). It never exceeds what the smallest queue among them
//     absorbs at one event a microsecond (session.absorb), so a flood does not overflow a
//     client only because the flush waited longer.
//   - A client whose queue is small (below eagerQueue events) is flushed at once, each time:
//     a millisecond of a fast producer's events would overflow it.
//   - A flush encodes each event once for all the clients that see it alike (privileged
//     clients of the same protocol version and wishes, with the same mask: the memo, found
//     by a cursor without hashing when clients get the same events in the same order), and
//     writes each client's frames without waiting (proto.Conn.TryWriteFrames: whole frames,
//     nothing half written): from the memo's own bytes while they are one stretch of it
//     (the run: clients that get the same events in the same order), else from the
//     client's buffer, where they are copied. What does not fit in
//     the socket (a client reading slowly), or a client whose events need checks with its
//     own credentials (unprivileged: session.view, which may walk paths), is handed to the
//     session's writer goroutine (notifyWriter): it writes with waiting, drains the group
//     and goes back to sleep. The engine queue in front of it absorbs the rest and overflows
//     for that client alone.
//
// A flush runs on a backend reader's goroutine (the event loop, or the FID reader: in queued
// or in its Idle) or on the timer's, never waits (TryLock only, non-blocking writes) and makes no allocation per event
// once its buffers have grown.

// flushEvery is the least time between two flushes, and the most a notification waits in its
// client's group for a flush while a flush writes to one or two clients (the first event after
// a quiet interval goes at once).
const flushEvery = time.Millisecond

// flushPerClient is how much the interval grows per client a flush wrote to, up to
// maxFlushEvery, the most a notification ever waits for a flush (fanout.every).
const (
	flushPerClient = 500 * time.Microsecond
	maxFlushEvery  = 5 * time.Millisecond
)

// eagerQueue: a client whose queue limit is below it is flushed without waiting (flushEvery
// of events at full speed, about one per microsecond, must fit in the queue).
const eagerQueue = 1024

// fanoutBatch is how many deliveries a flush reads from a group at a time.
const fanoutBatch = 256

// maxAgain bounds the flushes one call of flush makes in a row (see flush).
const maxAgain = 4

// flushBytes bounds what a flush encodes for one client (about what its socket takes), so
// that a flood is sent in pieces the socket can take while the client reads, and a flush
// holds a reader's goroutine for a bounded time: the rest waits in the group for the next
// flush (128 KiB a millisecond, some 800,000 events a second, per client).
const flushBytes = 128 << 10

// maxKeptBytes bounds the buffers a flush or a session keeps between flushes.
const maxKeptBytes = 1 << 20

// fanout is the server's notification flusher.
type fanout struct {
	s *Server

	mu    sync.Mutex // a leaf: dirty, spare, last, every, due, armed, readerAwake, closed
	dirty []*session // sessions with events queued since their last flush
	spare []*session
	last  time.Duration // when the last flush began, since Server.start
	every time.Duration // the interval after the last flush (flushEvery..maxFlushEvery)
	// due: when a flush is wanted (zero: none); cleared by a flush, which takes every dirty
	// session.
	due   time.Duration
	armed bool // timer is set to flush
	timer *time.Timer
	// readerAwake: the backend's FID reader took up events and will call Idle before it
	// waits again (readerHook): a flush wanted later is left to it, not to the timer.
	readerAwake bool
	// closed: the server closed; no more timer.
	closed bool

	// flushMu is held by the one flush under way (TryLock only: a flush never waits for
	// another; the timer takes over what it could not do). It guards what follows.
	flushMu sync.Mutex
	again   atomic.Bool // a flush found flushMu held: its holder flushes again
	buf     []engine.Delivery
	// The memo: each event's frame, encoded once per flush for the clients that see it
	// alike. seq holds the entries in the order they were encoded; clients usually get the
	// same events in the same order, so the next entry a client needs is most often the one
	// after the last it used (cur): found without hashing. index finds the others among
	// the entries earlier clients' sends made (seq[:theirs]; it holds seq[:indexed], filled
	// only when a client's next event is not at cur). The entries the client being sent
	// made itself are never looked for there: its group holds each of its deliveries once,
	// so a key it encoded does not come again in this send (if it did, the event would be
	// encoded again, into an entry of its own: the same bytes, and each entry releases the
	// references it took). So the first client of a flush, which encodes every event, hashes
	// none of them (the index's inserts and misses were 12% of a send with ten clients).
	seq     []memoEntry
	cur     int
	theirs  int
	index   map[memoKey]int
	indexed int
	arena   []byte // the memo's encoded frames
	// The run: while a client's frames so far are one stretch of the arena, arena[runOff:
	// runEnd] (inRun), they are written from there, not copied into its buffer first (when
	// clients get the same events in the same order, every client's are: the first's
	// frames are encoded one after the other, and the others' are found in that order).
	// For one send at a time.
	runOff, runEnd int
	inRun          bool
}

// memoEntry is one event's memoised frame for one memoKey, and the references the flush
// holds on the event for it: the deliveries of it the flush has written, released together
// when the flush ends (one atomic add per event, not one per client), which also keeps the
// event's address from being taken by another event while it is a key of the memo.
type memoEntry struct {
	k    memoKey
	sp   span
	refs int32
}

// memoKey is what decides an event's bytes for a privileged client that did not ask for uids:
// the event, the mask its group was told, and the client's protocol version and wish for
// process names.
type memoKey struct {
	ev   *engine.Event
	mask engine.Mask
	v    uint16
	comm bool
}

// span is a memoised frame: arena[off:end], or nothing to send (skip) — for every client
// of its key an overflow instead when the event could not be encoded (failed).
type span struct {
	off, end     int
	skip, failed bool
}

func (f *fanout) init(s *Server) {
	f.s = s
	f.timer = time.AfterFunc(time.Hour, f.onTimer)
	f.timer.Stop()
	f.buf = make([]engine.Delivery, fanoutBatch)
	f.index = make(map[memoKey]int)
	f.every = flushEvery
}

// close stops the timer; sessions still dirty are closed by then (Server.Close).
func (f *fanout) close() {
	f.mu.Lock()
	f.closed = true
	f.timer.Stop()
	f.mu.Unlock()
}

// queued is a notification session's OnQueue: its group's queue was empty and is not. It
// never waits.
func (f *fanout) queued(c *session) {
	if !c.dirty.CompareAndSwap(false, true) {
		return // on the list already
	}
	now := time.Since(f.s.start)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.dirty = append(f.dirty, c)
	due := now >= f.last+f.every || c.eager
	if !due {
		f.wantLocked(now, f.last+f.every-now)
	}
	f.mu.Unlock()
	if due {
		f.flush()
	}
}

// wantLocked asks for a flush in d (now is the time since Server.start): by the FID reader's
// Idle if the reader is awake, which calls it before it waits again, else by the timer.
// Needs f.mu.
func (f *fanout) wantLocked(now, d time.Duration) {
	if f.due == 0 || now+d < f.due {
		f.due = now + d
	}
	if !f.readerAwake {
		f.armLocked(d)
	}
}

// armLocked sets the timer to flush in d, unless it is set. Needs f.mu.
func (f *fanout) armLocked(d time.Duration) {
	if !f.armed && !f.closed {
		f.armed = true
		f.timer.Reset(d)
	}
}

// readerHook is the fan-out's backend.ReaderHook: while the FID reader — which queues
// almost every notification — is awake, the flushes its events need are made by it, in
// Idle, before it waits, and its wait ends when the next one is due; the timer is armed only
// for events queued while it sleeps (by another reader). A timer's flush wakes a thread of
// its own each time: under bench/fanout.sh's load that thread's wake-ups and parks were a
// tenth of the daemon's CPU (docs/design/performance.md). An event still waits at most the
// interval, or until the reader's batch under way ends.
type readerHook struct{ f *fanout }

// Awake: the reader takes up events.
func (h readerHook) Awake() {
	h.f.mu.Lock()
	h.f.readerAwake = true
	h.f.mu.Unlock()
}

// Idle flushes if a flush is due, and returns when the next one is (below zero: none
// wanted). From now until the reader's next Awake, a flush wanted goes to the timer; and
// when the reader ends (last), the one wanted already too.
func (h readerHook) Idle(last bool) time.Duration {
	f := h.f
	for i := 0; ; i++ {
		now := time.Since(f.s.start)
		f.mu.Lock()
		if f.due == 0 || f.closed {
			f.readerAwake = false
			f.mu.Unlock()
			return -1
		}
		if now < f.due || i == maxAgain {
			// Not due (or flushed maxAgain times already and wanted again at once): the
			// reader waits until it is.
			f.readerAwake = false
			d := max(f.due-now, 0)
			if last {
				f.armLocked(d)
			}
			f.mu.Unlock()
			return d
		}
		f.mu.Unlock()
		f.flush()
	}
}

func (f *fanout) onTimer() {
	f.mu.Lock()
	f.armed = false
	f.mu.Unlock()
	f.flush()
}

// flush sends what the dirty sessions have queued. If another flush is under way, that one
// flushes again once done (again), for what it may have missed: a flush never waits.
func (f *fanout) flush() {
	for i := 0; ; i++ {
		if i == maxAgain {
			// Events keep coming to clients flushed at once (small queues) faster than
			// this goroutine (maybe a kernel reader) should keep flushing: the timer
			// goes on.
			f.mu.Lock()
			f.wantLocked(time.Since(f.s.start), flushEvery)
			f.mu.Unlock()
			return
		}
		if !f.flushMu.TryLock() {
			f.again.Store(true)
			// The holder looks at again after it unlocks: if it is still held now, it will
			// see it; if not, this call flushes.
			if !f.flushMu.TryLock() {
				return
			}
		}
		f.again.Store(false)
		f.flushLocked()
		f.flushMu.Unlock()
		if !f.again.Load() {
			return
		}
	}
}

// flushLocked is one flush. Needs flushMu.
func (f *fanout) flushLocked() {
	f.mu.Lock()
	dirty := f.dirty
	f.dirty, f.spare = f.spare, nil
	f.last = time.Since(f.s.start)
	f.every = flushInterval(dirty)
	f.due = 0 // every dirty session is flushed now; one queued from now on asks again
	f.mu.Unlock()
	for _, c := range dirty {
		// Cleared first: an event queued to c once the group has been read again puts it
		// back on the list (its queue goes from empty to not empty), one queued before is
		// read here.
		c.dirty.Store(false)
		f.send(c)
	}
	clear(dirty)
	for i := range f.seq {
		f.seq[i].k.ev.ReleaseN(f.seq[i].refs)
	}
	if f.indexed > 0 {
		clear(f.index)
		f.indexed = 0
	}
	clear(f.seq)
	f.seq = f.seq[:0]
	if cap(f.arena) > maxKeptBytes {
		f.arena = nil
	}
	f.arena = f.arena[:0]
	f.mu.Lock()
	if f.spare == nil {
		f.spare = dirty[:0]
	}
	f.mu.Unlock()
}

// flushInterval is the interval after a flush of dirty: flushPerClient per client, from
// flushEvery to maxFlushEvery, and no more than any of them absorbs (session.absorb).
func flushInterval(dirty []*session) time.Duration {
	d := min(time.Duration(len(dirty))*flushPerClient, maxFlushEvery)
	for _, c := range dirty {
		d = min(d, c.absorb)
	}
	return max(d, flushEvery)
}

// absorbFor is how long a flush may wait for a client whose queue holds limit events (below
// zero: no limit): the time its queue fills at one event a microsecond, which is faster than
// the daemon reads the kernel here (docs/design/performance.md), at most maxFlushEvery.
func absorbFor(limit int) time.Duration {
	if limit < 0 {
		return maxFlushEvery
	}
	return min(time.Duration(limit)*time.Microsecond, maxFlushEvery)
}

// send writes what c has queued without waiting, or hands it to c's writer. Needs flushMu.
func (f *fanout) send(c *session) {
	if !c.privileged || !c.sendMu.TryLock() {
		// An unprivileged client's events are checked with its credentials (path walks)
		// by its writer, never here; a busy sendMu is its writer, which drains the group
		// before it sleeps again.
		c.kickWriter()
		return
	}
	if c.backlog {
		c.sendMu.Unlock()
		c.kickWriter()
		return
	}
	out := c.out[:0]
	f.cur = 0
	f.theirs = len(f.seq)
	f.inRun = false
	more := false // the group holds more than this flush takes
	for {
		if len(out)+f.runLen() >= flushBytes {
			more = true
			break
		}
		n, err := c.g.TryReadBatch(f.buf)
		if err != nil || n == 0 {
			break
		}
		out = c.appendEventsLocked(out, f.buf[:n], f)
		if n < len(f.buf) {
			break
		}
	}
	data := out
	if f.inRun {
		data = f.arena[f.runOff:f.runEnd] // out is empty: all of it is the run
		f.inRun = false
	}
	w := 0
	var err error
	if len(data) > 0 {
		w, err = c.conn.TryWriteFrames(data)
	}
	switch {
	case w < len(data) || err != nil:
		// The socket is full: the writer writes the rest first, then drains the group (or,
		// the connection broken, fails and closes the session).
		c.pending = append(c.pending[:0], data[w:]...)
		c.backlog = true
		c.kickWriter()
	case more:
		// A flood: the next flush, an interval later, goes on with the rest (still encoded
		// once for all clients; this flush does not hold a reader for longer).
		if c.dirty.CompareAndSwap(false, true) {
			f.mu.Lock()
			f.dirty = append(f.dirty, c)
			f.wantLocked(time.Since(f.s.start), f.every)
			f.mu.Unlock()
		}
	}
	if cap(out) > maxKeptBytes {
		out = nil
	}
	c.out = out[:0]
	c.sendMu.Unlock()
}

// appendEventsLocked appends the frames of deliveries ds for c to out and releases ds; with
// f (a flush), events seen alike by several clients are encoded once. An event that cannot
// be encoded (it never should) becomes an overflow: the client is told it lost one. Needs
// c.sendMu (and f.flushMu with f).
func (c *session) appendEventsLocked(out []byte, ds []engine.Delivery, f *fanout) []byte {
	clear(c.listMemo) // a new batch: permissions are checked again (mayListLocked)
	clear(c.pidMemo)
	share := f != nil && c.privileged && !c.wantUID
	v := c.conn.Version()
	for i := range ds {
		d := ds[i]
		ds[i] = engine.Delivery{}
		if d.Event == nil {
			out = c.appendOverflowLocked(f.endRun(out), c.overflowReasonLocked())
			continue
		}
		if share {
			// d's reference goes to the memo entry, released when the flush ends.
			k := memoKey{ev: d.Event, mask: d.Mask, v: v, comm: c.wantComm}
			var sp span
			if i, ok := f.lookup(k); ok {
				f.seq[i].refs++
				sp = f.seq[i].sp
			} else {
				var ev proto.Event
				sp.off = len(f.arena)
				if sp.skip = !c.view(d, &ev); !sp.skip {
					var err error
					if f.arena, err = proto.AppendEvent(f.arena, &ev); err != nil {
						sp.skip, sp.failed = true, true
					}
				}
				sp.end = len(f.arena)
				f.seq = append(f.seq, memoEntry{k: k, sp: sp, refs: 1})
				f.cur = len(f.seq)
			}
			switch {
			case sp.failed:
				out = c.appendOverflowLocked(f.endRun(out), proto.OverflowQueue)
			case !sp.skip:
				out = f.appendSpan(out, sp)
			}
			continue
		}
		var ev proto.Event
		if c.view(d, &ev) {
			var err error
			if out, err = proto.AppendEvent(out, &ev); err != nil {
				out = c.appendOverflowLocked(out, proto.OverflowQueue)
			}
		}
		d.Release()
	}
	return out
}

// appendSpan adds sp's frame to a client's frames: to the run if it is the first or it
// follows the run in the arena, else to out (the run copied there first). Needs flushMu.
func (f *fanout) appendSpan(out []byte, sp span) []byte {
	switch {
	case len(out) == 0 && !f.inRun:
		f.runOff, f.runEnd, f.inRun = sp.off, sp.end, true
		return out
	case f.inRun && sp.off == f.runEnd:
		f.runEnd = sp.end
		return out
	}
	return append(f.endRun(out), f.arena[sp.off:sp.end]...)
}

// endRun copies the run, if any, to out (empty until then), before bytes that are not in
// the arena or not next in it. f may be nil (no run). Needs flushMu.
func (f *fanout) endRun(out []byte) []byte {
	if f != nil && f.inRun {
		out = append(out, f.arena[f.runOff:f.runEnd]...)
		f.inRun = false
	}
	return out
}

// runLen is the run's length in bytes (0: none).
func (f *fanout) runLen() int {
	if !f.inRun {
		return 0
	}
	return f.runEnd - f.runOff
}

// lookup finds k's memo entry (its index in seq): at the cursor, else among the entries of
// earlier clients' sends (seq[:theirs]) through the index, brought up to date first. The
// cursor moves past the entry found. Needs flushMu.
func (f *fanout) lookup(k memoKey) (int, bool) {
	if i := f.cur; i < len(f.seq) && f.seq[i].k == k {
		f.cur = i + 1
		return i, true
	}
	if f.theirs == 0 {
		return 0, false
	}
	for ; f.indexed < f.theirs; f.indexed++ {
		f.index[f.seq[f.indexed].k] = f.indexed
	}
	i, ok := f.index[k]
	if !ok {
		return 0, false
	}
	f.cur = i + 1
	return i, true
}

// appendOverflowLocked appends an Overflow frame. Needs sendMu.
func (c *session) appendOverflowLocked(out []byte, reason proto.OverflowReason) []byte {
	out, _, _ = proto.Append(out, nil, &proto.Overflow{Reason: reason})
	return out
}

// notifyWriter is a notification session's writer goroutine: it sleeps until a flush hands it
// work (kickWriter) — what did not fit in the socket, or an unprivileged client's events —
// then writes, waiting for the socket as long as it takes, drains the group, and sleeps
// again. It returns when the session closes, or closes it when the connection breaks.
func (c *session) notifyWriter() {
	buf := make([]engine.Delivery, fanoutBatch)
	for {
		select {
		case <-c.kick:
		case <-c.ctx.Done():
			return
		}
		c.sendMu.Lock()
		ok := c.drainLocked(buf)
		c.sendMu.Unlock()
		if !ok {
			c.close()
			return
		}
	}
}

// drainLocked writes the session's pending bytes and then everything its group holds,
// waiting for the socket, until the group is empty; false if the connection broke. Needs
// sendMu.
func (c *session) drainLocked(buf []engine.Delivery) bool {
	for {
		if len(c.pending) > 0 {
			if err := c.conn.WriteFrames(c.pending); err != nil {
				c.releasePendingLocked()
				c.pending = nil
				return false
			}
			if cap(c.pending) > maxKeptBytes {
				c.pending = nil
			}
			c.pending = c.pending[:0]
		}
		c.releasePendingLocked() // written, or none sent (every event checked out)
		// Held here until written, they count against the group's queue budget still (an
		// unprivileged client's: its uid's and all unprivileged uids'): before, a stopped
		// client's writer held a batch outside every budget, for each of its connections.
		n, err := c.g.TryReadBatchHeld(buf)
		if err != nil || n == 0 {
			c.backlog = false // ErrClosed: the session is closing, nothing more to send
			return true
		}
		c.pendingEvents.Store(int64(n))
		c.pending = c.appendEventsLocked(c.pending, buf[:n], nil)
	}
}

// releasePendingLocked gives back to the group's queue budget the events drainLocked held
// in pending (written, or the connection broken). Needs sendMu.
func (c *session) releasePendingLocked() {
	if n := c.pendingEvents.Swap(0); n > 0 {
		if b := c.g.Options().QueueBudget; b != nil {
			b.Release(int(n))
		}
	}
}
