//go:build linux

package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// session is the daemon side of one client connection: an engine group, the marks the client
// placed, and the goroutines that serve it. (Named so that it is not taken for package client,
// the other side.)
type session struct {
	s          *Server
	id         uint64
	name       string
	conn       *proto.Conn
	g          *engine.Group
	cred       syscall.Ucred
	groups     []uint32
	privileged bool
	eventFDs   bool
	wantUID    bool
	wantComm   bool
	noPaths    bool // Hello.NoPaths, privileged: no path is read for its permission events

	mu        lockorder.Mutex // lockSession
	marks     map[uint64]*clientMark
	byObj     map[engine.Object]uint64
	heldGiven bool // close gave back what the marks counted (Server.releaseMarks): count no more
	nextMark  uint64

	// sent holds the send times of the permission events sent and not answered yet, for the
	// verdict latency: the sentLimit most recent (a client that lets its events reach their
	// deadline would otherwise pile them up for its lifetime). A time is kept as time since
	// Server.start (sinceStart): one monotonic clock reading, not time.Now's two.
	sent *lru.Cache[uint64, time.Duration]

	closeOnce sync.Once
	done      chan struct{}
	ctx       context.Context // cancelled by close, with done closed
	cancel    context.CancelFunc
	active    atomic.Int64 // when the client last sent a request, as time since Server.start

	// Sending (see writeLoop and forward). sendMu is held while events are taken from the
	// group and written; lastKernel, leftover and the buffers are under it.
	direct     bool            // a permission client: forward writes its events at once
	kick       chan struct{}   // capacity 1: forward left work for writeLoop
	sendMu     lockorder.Mutex // lockSend
	lastKernel uint64          // the backend's kernel overflow count last told of
	leftover   []proto.Msg     // built and taken from the group, not written yet
	fbuf       []engine.Delivery
	fmsgs      []proto.Msg
	evFree     []*proto.Event     // ring sessions: events written to the ring, reused by event (recycleLocked)
	listMemo   map[string]listing // directories' listability, for one batch (mayListLocked)
	pidMemo    map[int32]bool     // processes that are the client's own, for one batch (ownProcessLocked)

	// A notification session's sending (fanout.go): on the fanout's dirty list; bytes a
	// flush could not write, for notifyWriter (backlog says it has them), under sendMu.
	dirty   atomic.Bool
	eager   bool          // a small queue: flushed at once (eagerQueue)
	absorb  time.Duration // the most a flush may wait for this client (absorbFor)
	backlog bool
	pending []byte
	// pendingEvents is how many events pending holds that the writer took from the group
	// (drainLocked): counted against the group's queue budget until written. Written under
	// sendMu, read by the tests without it.
	pendingEvents atomic.Int64
	out           []byte

	inlineState // a permission client read on the backend's event loop (inline.go)
	ringState   // its permission ring, if it asked for one (ring.go)
}

// sentLimit bounds client.sent: past it, the latencies of the oldest unanswered events (there
// are rarely that many waiting on one client at once) go uncounted.
const sentLimit = 1024

// clientMark is a mark a client placed: its object, and the path of that object when the mark
// was added (for unprivileged clients, paths in events are cut to what lies below it).
type clientMark struct {
	id      uint64
	obj     engine.Object
	root    string
	held    bool // an unprivileged client's mark counted by Server.takeHeld
	counted bool // an unprivileged client's mark counted by Server.takeMark
}

// release takes m's counts (Server.takeMark, takeHeld) off it and adds them to marks and held,
// for Server.releaseMarks. Needs session.mu.
func (m *clientMark) release(marks, held *int) {
	if m.counted {
		*marks++
		m.counted = false
	}
	if m.held {
		*held++
		m.held = false
	}
}

// initLocks gives the session's mutexes their place in the lock tree (doc.go).
func (c *session) initLocks() {
	c.mu.Init(lockSession)
	c.sendMu.Init(lockSend)
	c.inlineMu.Init(lockInline)
}

// run serves the connection until it ends.
func (c *session) run() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if c.direct {
			c.writeLoop()
		} else {
			c.notifyWriter()
		}
	}()
	c.readLoop()
	c.close()
	wg.Wait()
}

// close ends the client: its group closes, which answers its pending permission events with
// its close verdict at once; its marks go with the group.
func (c *session) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cancel()
		st := c.g.Stats()
		c.g.Close()
		st2 := c.g.Stats()
		c.conn.Close()
		s := c.s
		marks, held := 0, 0
		c.mu.Lock()
		for _, m := range c.marks {
			m.release(&marks, &held)
		}
		c.heldGiven = true
		c.mu.Unlock()
		s.releaseMarks(c.cred.Uid, marks, held) // the group's marks went with it
		// One step for Stats, which reads the clients and the totals of those gone under
		// s.mu: the client's figures are counted once, as a client's or as gone.
		s.mu.Lock()
		delete(s.clients, c.id)
		s.gone.add(st, st2)
		if !c.privileged {
			if u := s.budgets[c.cred.Uid]; u != nil {
				u.gone.add(st, st2) // the uid's totals, for its stats, while it has a client
			}
			s.releaseBudgetLocked(c.cred.Uid) // its group, closed, holds none of it
		}
		s.mu.Unlock()
	})
}

// touch records a request, for idle.
func (c *session) touch() { c.touchAt(c.s.sinceStart()) }

// touchAt is touch with the time read by the caller (a ring take's one reading, sinceStart).
func (c *session) touchAt(now time.Duration) { c.active.Store(int64(now)) }

// idle is how long the client has held no mark and sent no request; 0 while it holds a mark.
func (c *session) idle() time.Duration {
	c.mu.Lock()
	marks := len(c.marks)
	c.mu.Unlock()
	if marks > 0 {
		return 0
	}
	return c.s.sinceStart() - time.Duration(c.active.Load())
}

// reap closes an idle client (Server.reapIdle), telling it why.
func (c *session) reap(why string) {
	c.s.cst.reapedIdle.Add(1)
	c.s.clientLog(c.privileged, "client closed", "client", c.id, "name", c.name, "pid", c.cred.Pid, "uid", c.cred.Uid, "reason", why)
	c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) // it may not read
	c.conn.WriteMsg(&proto.Fatal{Code: proto.CodeLimit, Message: why})
	c.close()
}

// readLoop handles the client's requests in order.
func (c *session) readLoop() {
	for {
		m, err := c.conn.ReadMsg()
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.handle(m) {
			return
		}
	}
}

// readFailed ends a connection whose reading failed: a malformed or oversized frame gets an
// error reply first.
func (c *session) readFailed(err error) {
	var pe *proto.Error
	if errors.As(err, &pe) && pe.Code.Protocol() {
		// A malformed or oversized frame: say why, and close this connection only.
		c.conn.WriteMsg(proto.FatalFor(0, err))
		c.s.clientLog(c.privileged, "client sent a bad frame", "client", c.id, "uid", c.cred.Uid, "err", err)
	}
}

// handle carries out one request and writes its reply; it reports whether the connection
// ends (a Bye, or a reply that could not be written).
func (c *session) handle(m proto.Msg) (end bool) {
	c.touch()
	var reply proto.Msg
	switch m := m.(type) {
	case *proto.AddMark:
		id, err := c.addMark(m)
		reply = proto.ResultFor(m.Req, id, err)
	case *proto.RemoveMark:
		id, err := c.removeMark(m)
		reply = proto.ResultFor(m.Req, id, err)
	case *proto.Respond:
		err := c.respond(m)
		if m.Req != 0 || err != nil {
			reply = proto.ResultFor(m.Req, m.EventID, err)
		}
	case *proto.StatsRequest:
		sc := statsScope{all: m.AllClients, only: c.id}
		if !c.privileged {
			// Its own uid's clients only: others' figures, names and pids are for the
			// privileged (statsScope).
			sc.ownUID, sc.uid = true, c.cred.Uid
		}
		st := c.s.stats(sc)
		reply = &proto.Stats{Req: m.Req, Daemon: st.Daemon, Clients: st.Clients, Truncated: st.Truncated}
	case *proto.Ping:
		reply = &proto.Pong{Req: m.Req}
	case *proto.FlushCache:
		reply = proto.ResultFor(m.Req, 0, c.flushCache())
	case *proto.Report:
		c.report(m) // export.go
	case *proto.Bye:
		// Answer the pending permission events (close verdict) before the Result, so that
		// a client waiting for it knows they are answered; then close.
		c.g.Close()
		c.conn.WriteMsg(proto.ResultFor(m.Req, 0, nil))
		return true
	default:
		proto.CloseFDs(m)
		reply = proto.ResultFor(m.RequestID(), 0, proto.Errorf(proto.CodeInvalid, "unexpected %T", m))
	}
	if reply != nil {
		if err := c.conn.WriteMsg(reply); err != nil {
			return true
		}
	}
	return false
}

// addMark places a mark on the object of the client's descriptor.
func (c *session) addMark(m *proto.AddMark) (uint64, error) {
	defer m.Target.Close()
	fd := m.Target.Int()
	switch m.Kind {
	case engine.KindMount, engine.KindFilesystem:
		if !c.privileged {
			return 0, proto.Errorf(proto.CodePermission,
				"%s marks need uid 0 or a uid/gid allowed by allow_uid/allow_gid in the daemon's config; uid %d is not",
				m.Kind, c.cred.Uid)
		}
	case engine.KindInode, engine.KindSubtree:
	default:
		return 0, proto.Errorf(proto.CodeInvalid, "unknown object kind %d", m.Kind)
	}
	if c.cred.Uid != 0 {
		// No confused deputy: the client must be able to read what it watches itself.
		ok, err := sys.AccessAs(fd, c.cred.Uid, c.cred.Gid, c.groups, sys.R_OK)
		if err != nil {
			return 0, proto.Errorf(proto.CodeInternal, "checking your access: %v", err)
		}
		if !ok {
			path, _ := sys.FdPath(fd)
			return 0, proto.Errorf(proto.CodePermission, "you (uid %d) cannot read %s, so you cannot watch it", c.cred.Uid, path)
		}
	}
	if !c.privileged {
		// No FUSE filesystem: the kernel asks its daemon (statfs) within fanotify_mark, which
		// the backend calls holding the lock that every mark change, every client's close
		// and the daemon's Close take — a user's FUSE daemon that stops answering would hold
		// them all up. Asked here, with no lock held: a stalled answer stalls this client only.
		st, err := sys.Fstatfs(fd)
		if err != nil {
			return 0, proto.Errorf(proto.CodeInternal, "checking your file's filesystem: %v", err)
		}
		if st.Type == sys.FUSE_SUPER_MAGIC {
			path, _ := sys.FdPath(fd)
			return 0, proto.Errorf(proto.CodePermission,
				"%s is on a FUSE filesystem, whose daemon the daemon's marks would wait for: only root and allowed uids may watch there", path)
		}
		// No filesystem the daemon's mount namespace does not show (a tmpfs of the user's own
		// namespace): the backend keeps descriptors of every filesystem it takes up, so a
		// user who can make filesystems would make it hold descriptors without bound.
		foreign, err := c.s.b.ForeignFilesystem(fd)
		if err != nil {
			return 0, proto.Errorf(proto.CodeInternal, "checking your file's filesystem: %v", err)
		}
		if foreign {
			path, _ := sys.FdPath(fd)
			return 0, proto.Errorf(proto.CodePermission,
				"%s is on a filesystem not mounted in the daemon's mount namespace (one of your own namespace's, say): only root and allowed uids may watch there", path)
		}
	}
	t, err := c.s.b.ResolveFd(fd, m.Kind)
	if err != nil {
		return 0, requestError(err)
	}
	if m.Kind == engine.KindSubtree && !t.IsDir {
		c.s.b.Release(t)
		return 0, proto.Errorf(proto.CodeInvalid, "%s is not a directory: a subtree mark needs one", t.Path)
	}
	// An object the backend must keep a descriptor of while it has marks (no file handle)
	// counts against what unprivileged clients may make the daemon hold: without a bound, a
	// user marking /proc and /sys files from many connections would take the descriptors the
	// daemon needs for its connections and its kernel events.
	// Every new mark of an unprivileged client counts against its uid's and all unprivileged
	// uids' marks (takeMark), the uid's first.
	counted, held := false, false
	if !c.privileged {
		c.mu.Lock()
		_, had := c.byObj[t.Object]
		c.mu.Unlock()
		if !had {
			if err := c.s.takeMark(c.cred.Uid); err != nil {
				c.s.b.Release(t)
				return 0, err
			}
			counted = true
			if t.HeldFd {
				if err := c.s.takeHeld(c.cred.Uid); err != nil {
					c.s.releaseMarks(c.cred.Uid, 1, 0)
					c.s.b.Release(t)
					return 0, err
				}
				held = true
			}
		}
	}
	// What this call counted, for releaseMarks should the mark not be placed.
	takenMarks, takenHeld := 0, 0
	if counted {
		takenMarks = 1
	}
	if held {
		takenHeld = 1
	}
	spec := markSpec(m)
	if m.Replace {
		if _, ok := c.g.Mark(t.Object); ok {
			c.s.b.Release(t)
			err = c.g.ModifyMark(t.Object, spec)
		} else {
			err = c.s.b.AddMark(c.g, t, spec)
		}
	} else {
		err = c.s.b.AddMark(c.g, t, spec)
	}
	if err != nil {
		c.s.releaseMarks(c.cred.Uid, takenMarks, takenHeld)
		return 0, requestError(err)
	}
	c.mu.Lock()
	if id, ok := c.byObj[t.Object]; ok || c.heldGiven {
		// Marked already (not reached: requests are handled one at a time), or the session
		// closed meanwhile, having given back what its marks held then.
		c.mu.Unlock()
		// After c.mu (Server.mu is never taken under it). Until 2026-12-07 a deferred call
		// ran before the deferred Unlock, taking Server.mu under session.mu.
		c.s.releaseMarks(c.cred.Uid, takenMarks, takenHeld)
		if !ok {
			return 0, proto.Errorf(proto.CodeInternal, "the connection is closing")
		}
		return id, nil
	}
	c.nextMark++
	cm := &clientMark{id: c.nextMark, obj: t.Object, root: t.Path, held: held, counted: counted}
	c.marks[cm.id] = cm
	c.byObj[t.Object] = cm.id
	c.mu.Unlock()
	return cm.id, nil
}

// removeMark removes (or shrinks) a mark.
func (c *session) removeMark(m *proto.RemoveMark) (uint64, error) {
	defer m.Target.Close()
	var cm *clientMark
	switch m.By {
	case proto.RemoveAll:
		c.g.FlushMarks(m.Kind)
		marks, held := 0, 0
		c.mu.Lock()
		for id, x := range c.marks {
			if m.Kind == 0 || x.obj.Kind == m.Kind {
				delete(c.marks, id)
				delete(c.byObj, x.obj)
				x.release(&marks, &held)
			}
		}
		c.mu.Unlock()
		c.s.releaseMarks(c.cred.Uid, marks, held)
		return 0, nil
	case proto.RemoveByID:
		c.mu.Lock()
		cm = c.marks[m.MarkID]
		c.mu.Unlock()
	case proto.RemoveByTarget:
		// Looked up, not resolved: resolving takes the object's filesystem up for good (its
		// descriptors and state), which an unprivileged client may not make the daemon do
		// for a filesystem of its own namespace (ForeignFilesystem), nor through a removal.
		obj, err := c.s.b.ObjectOf(m.Target.Int(), m.Kind)
		if err != nil {
			return 0, requestError(err)
		}
		c.mu.Lock()
		if id, ok := c.byObj[obj]; ok {
			cm = c.marks[id]
		}
		c.mu.Unlock()
	}
	if cm == nil {
		return 0, proto.Errorf(proto.CodeNotFound, "no such mark")
	}
	var err error
	gone := m.Mask == 0 && m.Ignore == 0
	if gone {
		err = c.g.RemoveMark(cm.obj)
	} else {
		err = c.g.RemoveFromMark(cm.obj, m.Mask, m.Ignore)
		if _, ok := c.g.Mark(cm.obj); !ok {
			gone = true
		}
	}
	if gone {
		marks, held := 0, 0
		c.mu.Lock()
		if _, was := c.marks[cm.id]; was {
			cm.release(&marks, &held)
		}
		delete(c.marks, cm.id)
		delete(c.byObj, cm.obj)
		c.mu.Unlock()
		c.s.releaseMarks(c.cred.Uid, marks, held)
	}
	if err != nil {
		return 0, requestError(err)
	}
	return cm.id, nil
}

// flushCache withdraws every allow cached in the backend's kernel groups (FlushCache, version
// 6), for a permission client. It returns once their ignore marks are gone, and no answer to
// an event the backend read before it is cached afterwards (backend.FlushVerdictCache: the
// flush generation, which each permission event reads before its walk). Every client's
// cached allows go, not the caller's alone: a cached allow stands for the answers of every
// group that took the event (docs/security.md, invariant 6), and the caller's are among
// them. A notification client, which never answers, may not make others' accesses decided
// again (docs/protocol.md, "FlushCache"). It runs on the client's own goroutine (readLoop,
// or inlineLoop for a client read on the loop), never on the loop: the flush waits for a mark
// the loop may be placing (backend.dropNameMarks), and the loop never waits for this goroutine.
func (c *session) flushCache() error {
	if c.g.Options().Class == engine.ClassNotification {
		return proto.Errorf(proto.CodePermission, "FlushCache is for permission clients (class content or pre-content): a notification client has no cached allow")
	}
	c.s.b.FlushVerdictCache()
	return nil
}

// respond answers a permission event. The engine answers a pending event whatever the
// answer holds (engine.Group.Respond): a deny with an errno this client's class cannot send is
// a plain deny (EPERM), never a refusal that would leave the access waiting. What fails here
// leaves nothing pending: an id that is not pending (unknown, answered, past its deadline:
// not-found), or a closed client.
func (c *session) respond(m *proto.Respond) error { return c.respondAt(m, readClock) }

// readClock asks respondAt to read the clock itself.
const readClock = time.Duration(-1)

// respondAt is respond with the verdict latency measured to now (sinceStart), read by the
// caller: a ring take of several answers reads the clock once for all (ringState.ansAt).
func (c *session) respondAt(m *proto.Respond, now time.Duration) error {
	err := c.g.Respond(m.EventID, response(m))
	t, ok := c.sent.Get(m.EventID)
	c.sent.Delete(m.EventID)
	if ok && (err == nil || errors.Is(err, engine.ErrInvalidAnswer)) {
		if now == readClock {
			now = c.s.sinceStart()
		}
		c.s.lat.observe(now - t)
	}
	if err != nil {
		return requestError(err)
	}
	return nil
}

// requestError maps an engine or backend error to a request error code.
func requestError(err error) error {
	code := proto.CodeInternal
	switch {
	case errors.Is(err, engine.ErrNoSuchEvent), errors.Is(err, engine.ErrNoMark), errors.Is(err, os.ErrNotExist):
		code = proto.CodeNotFound
	case errors.Is(err, engine.ErrMarkLimit):
		code = proto.CodeLimit
	case errors.Is(err, engine.ErrInvalid), errors.Is(err, engine.ErrPermissionBit),
		errors.Is(err, engine.ErrPreContentBit), errors.Is(err, backend.ErrMountDirent),
		errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EINVAL):
		code = proto.CodeInvalid
	case errors.Is(err, sys.ErrNotSupported), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EXDEV):
		code = proto.CodeNotSupported
	case errors.Is(err, os.ErrPermission):
		code = proto.CodePermission
	case errors.Is(err, engine.ErrClosed), errors.Is(err, backend.ErrClosed):
		code = proto.CodeUnavailable
	}
	return proto.Errorf(code, "%v", err)
}

// writeLoop sends the client's events, in batches, until the group closes. Only this
// goroutine waits on the client's socket; the engine queue in front of it absorbs bursts and
// overflows for this client alone. For a permission client, forward sends most events
// before this goroutine wakes: it only finishes what forward could not write at once.
func (c *session) writeLoop() {
	ctx := c.ctx // cancelled by close: no goroutine of its own to watch done
	buf := make([]engine.Delivery, 128)
	var msgs []proto.Msg
	for {
		var n int
		var err error
		if c.direct {
			select {
			case <-c.kick:
			case <-ctx.Done():
				err = ctx.Err()
			}
		} else {
			n, err = c.g.ReadBatch(ctx, buf)
		}
		c.sendMu.Lock()
		if err != nil {
			for _, m := range c.leftover {
				proto.CloseFDs(m)
			}
			c.leftover = nil
			c.sendMu.Unlock()
			for i := range buf[:n] {
				buf[i].Release()
			}
			return
		}
		ok := true
		for ok {
			msgs = append(c.leftover, c.messagesLocked(buf[:n], msgs[:0])...)
			c.leftover = nil
			if len(msgs) > 0 && c.ring != nil {
				// The ring never waits: what does not fit waits in leftover for a kick.
				ok = c.ringWaitLocked(msgs)
				full := len(c.leftover) > 0
				clear(msgs)
				if !ok || full {
					break
				}
			} else if len(msgs) > 0 {
				err := c.conn.WriteMsgs(msgs...)
				// The duplicates of the events' files are ours whether or not they were
				// sent (once sendmsg returns, the client holds its own reference).
				for _, m := range msgs {
					proto.CloseFDs(m)
				}
				clear(msgs)
				ok = err == nil
			}
			if !c.direct || !ok {
				break
			}
			// Whatever was queued meanwhile (forward left it to us, or could not lock).
			if n, err = c.g.TryReadBatch(buf); err != nil || n == 0 {
				break
			}
		}
		if c.pubPosted {
			// forward's records, whose publishRing found sendMu held (by this round).
			c.publishPostedLocked()
		}
		c.sendMu.Unlock()
		if !ok {
			c.close()
			return
		}
	}
}

// forward is a permission client's engine OnQueue: it sends the client's queued events
// from the goroutine that queued them — for permission events the backend's event loop, whose
// thread the kernel just woke — without waiting for writeLoop to be scheduled, which on a
// 2-vCPU VM is ~10% of the daemon round trip (bench/daemon.sh). It never waits: not for
// sendMu (writeLoop or another forward holds it: they will send what is queued), nor for
// the socket (TryWriteMsgs stops where it would block; writeLoop writes the rest).
func (c *session) forward() {
	if !c.sendMu.TryLock() {
		c.kickWriter()
		return
	}
	defer c.sendMu.Unlock()
	if len(c.leftover) > 0 {
		c.kickWriter() // they go first
		return
	}
	if c.fbuf == nil {
		c.fbuf = make([]engine.Delivery, 32)
	}
	for {
		n, err := c.g.TryReadBatch(c.fbuf)
		if err != nil || n == 0 {
			return
		}
		msgs := c.messagesLocked(c.fbuf[:n], c.fmsgs[:0])
		w, err := c.tryWriteLocked(msgs)
		for _, m := range msgs[:w] {
			proto.CloseFDs(m)
		}
		c.recycleLocked(msgs[:w])
		if w < len(msgs) || err != nil {
			// writeLoop writes them (or, the connection broken, fails and closes it).
			c.leftover = append(c.leftover, msgs[w:]...)
			clear(msgs)
			c.fmsgs = msgs[:0]
			c.kickWriter()
			return
		}
		clear(msgs)
		c.fmsgs = msgs[:0]
	}
}

func (c *session) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// messagesLocked appends the messages for deliveries ds to out and releases ds. Needs sendMu.
func (c *session) messagesLocked(ds []engine.Delivery, out []proto.Msg) []proto.Msg {
	clear(c.listMemo) // a new batch: permissions are checked again (mayListLocked)
	clear(c.pidMemo)
	for i := range ds {
		d := ds[i]
		ds[i] = engine.Delivery{}
		if d.Event == nil { // overflow
			out = append(out, &proto.Overflow{Reason: c.overflowReasonLocked()})
			continue
		}
		ev := c.event(d)
		d.Release() // the event's descriptor, if sent, is a duplicate the message owns
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out
}

// overflowReasonLocked says whose overflow the client is told of: the kernel's if the
// backend counted one since the last overflow this client was told of (it counts before it
// queues them), else this client's queue's. (The client's drop count cannot tell: drops after
// an overflow was queued are counted before it is read, and the next overflow of the queue
// would then look like the kernel's.) Needs sendMu.
func (c *session) overflowReasonLocked() proto.OverflowReason {
	reason := proto.OverflowQueue
	if k := c.s.b.Stats().KernelOverflows; k != c.lastKernel {
		reason, c.lastKernel = proto.OverflowKernel, k
	}
	return reason
}

// fder is the backend's permission-event payload.
type fder interface{ Fd() int }

// event builds what the client may see of one delivery (view); nil if nothing. Needs sendMu.
func (c *session) event(d engine.Delivery) *proto.Event {
	var ev *proto.Event
	if n := len(c.evFree); n > 0 {
		ev, c.evFree = c.evFree[n-1], c.evFree[:n-1]
		*ev = proto.Event{} // nothing of the last event it carried
	} else {
		ev = new(proto.Event)
	}
	if !c.view(d, ev) {
		c.evFree = append(c.evFree, ev)
		return nil
	}
	return ev
}

// evFreeMax bounds a session's evFree: more than a batch's worth is never reused.
const evFreeMax = 64

// recycleLocked keeps the events of msgs, written to the ring, for event to reuse: the ring
// holds a copy of their bytes (proto.DaemonRing.Put), and nothing else refers to them (a
// ring session's events carry no descriptor; the callers drop msgs). Not for the socket:
// what a partial write keeps of a message is the connection's business. Needs sendMu.
func (c *session) recycleLocked(msgs []proto.Msg) {
	if c.ring == nil {
		return
	}
	for _, m := range msgs {
		if ev, ok := m.(*proto.Event); ok && len(c.evFree) < evFreeMax {
			c.evFree = append(c.evFree, ev)
		}
	}
}

// view fills ev with what the client may see of delivery d (not an overflow), and reports
// false if that is nothing (a notification it may not see). Needs sendMu.
func (c *session) view(d engine.Delivery, ev *proto.Event) bool {
	wireEventInto(d, !c.noPaths, ev)
	if !c.privileged && ev.PathUnknown {
		// The daemon could not read the path (deeper than the kernel prints, or printed
		// wrong), so it cannot check that the event lies below what the client marked, nor
		// that the client could list its directory: it may be anywhere on the filesystem
		// (possibly inside the client's subtree, which is why it came). A notification is not
		// sent; a permission event (only privileged clients get them) still must be answered.
		if d.ID == 0 {
			return false
		}
		ev.Name, ev.NewName, ev.HasObject, ev.Dev, ev.Ino = "", "", false, 0, 0
	}
	if !c.privileged {
		if !c.hide(d, ev) {
			return false
		}
	}
	if !c.privileged && ev.Path == "" {
		ev.HasObject, ev.Dev, ev.Ino = false, 0, 0 // what it may not see by path, not by inode either
	}
	if !c.privileged && ev.Pid != 0 && !c.ownProcessLocked(ev.Pid) {
		// Who acted is told only of the client's own processes, as the kernel's unprivileged
		// fanotify tells a listener no pid but its own: another user's process reading a
		// file the client may read is not the client's to know (nor its command or uid).
		ev.Pid, ev.Tid = 0, 0
	}
	// A version-1 client gets no version-2 fields; a path longer than version 1 allows
	// becomes "" (unknown, in version 1's terms).
	ev.ForVersion(c.conn.Version())
	if c.wantComm && ev.Pid != 0 {
		ev.Comm = d.Event.Comm
		if ev.Comm == "" {
			ev.Comm = procfs.Comm(ev.Pid)
		}
	}
	if c.wantUID && ev.Pid > 0 {
		if uid, ok := procfs.EUID(ev.Pid); ok {
			ev.UID, ev.HasUID = uid, true
		}
	}
	if d.ID != 0 {
		if c.eventFDs {
			if p, ok := d.Event.Payload.(fder); ok {
				if fd, err := sys.Dup(p.Fd()); err == nil {
					ev.FD = proto.NewFD(fd)
				}
			}
		}
		c.sent.Put(d.ID, c.s.sinceStart())
	}
	return true
}

// hide takes from an unprivileged client's event every path and name it may not learn, and
// reports false if the event is a notification it may not see at all. Needs sendMu.
//
// An event has two sides: the new one (Path, and its name: NewName for a Rename, Name for
// any other event) and, for a Rename, the old one (OldPath and Name). A side is shown only if
// its path lies below what the client marked (the marked object's own path included: the
// client opened it) and the client could list the directory holding it (mayListLocked). A name
// goes with its side: without its path it would still say what lies in a directory the
// client may not list — a hard link's name in a 0700 directory, the entries of a watched
// directory or tree that was moved under a 0700 directory after the mark, a file's name before
// it was renamed out of a 0700 directory.
func (c *session) hide(d engine.Delivery, ev *proto.Event) bool {
	rename := ev.Mask&engine.Rename != 0
	hideNew := func() {
		ev.Path, ev.NewName = "", ""
		if !rename {
			ev.Name = ""
		}
	}
	hideOld := func() {
		ev.OldPath = ""
		if rename {
			ev.Name = ""
		}
	}
	newInside, oldInside := c.within(ev.Path, ev.OldPath)
	if !oldInside {
		hideOld() // came from elsewhere: the client may not learn from where
	}
	if !newInside {
		// The event reached the client through one of its marks, but by a path outside what
		// it marked (a hard link, a bind mount, a rename away, a move of the marked
		// directory): it is the client's event, so send it — a permission event must be
		// answered anyway — without the path or the name.
		hideNew()
	}
	if ev.Path != "" {
		switch c.mayListLocked(ev.Path) {
		case listDenied:
			// Below a mark, in a directory the client could not list itself (a 0700
			// subdirectory of a tree it watches): it may not learn the names there. A
			// notification is not sent (as inotify could not have watched there); a
			// permission event still must be answered, so it goes without names.
			if d.ID == 0 {
				return false
			}
			hideNew()
			hideOld()
		case listGone:
			// In a directory removed before the event could be checked (rm -rf's removals
			// below the top): whether the client could list it is not known any more, so
			// it may not learn the names, nor who acted there — but that something
			// happened in its tree is not withheld (it was, silently: an unprivileged
			// `watch -r` of an rm -rf reported the top directory's removal alone). It goes
			// as an event whose path is unknown.
			hideNew()
			hideOld()
			ev.PathUnknown, ev.Pid = true, 0
		}
	}
	if ev.OldPath != "" && c.mayListLocked(ev.OldPath) != listAllowed {
		hideOld() // renamed out of a directory the client could not list (or one gone)
	}
	if ev.Path == "" {
		hideNew() // no name without its path: not one whose directory is unknown either
	}
	if rename && ev.OldPath == "" {
		hideOld()
	}
	return true
}

// within reports whether each of an unprivileged client's event paths lies below what it
// marked; "" (no path) is not below anything.
func (c *session) within(path, oldPath string) (pathInside, oldInside bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inside := func(p string) bool {
		if p == "" {
			return false
		}
		for _, m := range c.marks {
			if paths.Within(p, m.root) {
				return true
			}
		}
		return false
	}
	return inside(path), inside(oldPath)
}

func (c *session) stats(gs engine.GroupStats) fsevent.ClientStats {
	return fsevent.ClientStats{
		ID: c.id, Name: c.name, PID: c.cred.Pid, UID: c.cred.Uid, Class: gs.Class,
		Queued: uint32(gs.Queued), Pending: uint32(gs.Pending), Marks: uint32(gs.Marks),
		Delivered: gs.Delivered, Merged: gs.Merged, Dropped: gs.Dropped, Overflows: gs.Overflows,
		Answered: gs.Answered, DeadlineExpired: gs.DeadlineExpired, CloseAnswered: gs.ClosedAnswered,
		QueueFull: gs.QueueFull,
		Latency:   fsevent.Latency{Count: gs.Answered, Sum: gs.AnswerLatency * time.Duration(gs.Answered)},
	}
}

// mayListLocked reports whether the client, with its own credentials, could list the
// directory holding path (read it, and reach it: every directory on the way searchable), which
// is what it would need to learn path's name by itself. The object it marked itself is always
// visible to it. Needs sendMu.
//
// Answers are remembered for one batch of events only (listMemo, cleared by messagesLocked),
// never longer: every event of a batch was queued before the batch was read from the group,
// and every check runs after that, so a remembered answer is never older than an event it
// decides. Thus no name created after a chmod or chown of the directory, or of one above it,
// has returned reaches the client, with no delay; a burst of events in one directory still
// costs one credential switch. (It was a cache trusted for 1 s: a watcher kept learning names
// in a directory for up to 1 s after chmod 700.)
func (c *session) mayListLocked(path string) listing {
	c.mu.Lock()
	for _, m := range c.marks {
		if path == m.root {
			c.mu.Unlock()
			return listAllowed
		}
	}
	c.mu.Unlock()
	dir := filepath.Dir(path)
	if l, found := c.listMemo[dir]; found {
		return l
	}
	l := listDenied
	switch ok, err := sys.AccessPathAs(dir, c.cred.Uid, c.cred.Gid, c.groups, sys.R_OK|sys.X_OK); {
	case ok:
		l = listAllowed
	case err == sys.ErrGone:
		l = listGone
	}
	if c.listMemo == nil {
		c.listMemo = make(map[string]listing)
	}
	c.listMemo[dir] = l
	return l
}

// ownProcessLocked reports whether process pid (in the daemon's pid namespace) is the
// unprivileged client's own: its real and effective uids are the client's. A process gone, or
// whose uids cannot be read, is not. Answers are remembered for one batch of events, as
// mayListLocked's (pidMemo, cleared with listMemo). Needs sendMu.
func (c *session) ownProcessLocked(pid int32) bool {
	if own, found := c.pidMemo[pid]; found {
		return own
	}
	own := false
	if pid > 0 {
		r, e, err := procfs.ReadUIDs(pid)
		own = err == nil && r == c.cred.Uid && e == c.cred.Uid
	}
	if c.pidMemo == nil {
		c.pidMemo = make(map[int32]bool)
	}
	c.pidMemo[pid] = own
	return own
}

// listing is what mayListLocked found of a directory.
type listing uint8

const (
	listDenied  listing = iota // the client could not list it (or the check failed)
	listAllowed                // it could
	listGone                   // it is gone: the directories above it are searchable by the client
)
