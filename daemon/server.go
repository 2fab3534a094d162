//go:build linux

package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/fsnotifyd/fsnotifyd.sock"

// Options configure a Server.
type Options struct {
	Config  Config
	Logger  *slog.Logger // nil: discard
	Version string       // reported to clients
	// Backend to serve (nil: a new fanotify backend, closed with the server).
	Backend *backend.Backend
	// ThreadPerClient reads each permission client's socket on a thread of its own (in
	// blocking recvmsg) instead of on the backend's event loop (see inline.go); the walk's
	// continuation still runs on the loop, woken for it: a slower permission round trip
	// (bench/daemon.sh column d), for comparison.
	ThreadPerClient bool
	// Export, if set, receives the events of the config's export lines and the decisions
	// clients report (serve --export; export.go). The caller closes it after the server.
	Export *fleet.Exporter
	// MaxVersion, if set, is the highest protocol version the server speaks (at least 1;
	// 0: the newest, proto.MaxVersion): a server that plays an older daemon, for tests of
	// clients against one.
	MaxVersion uint16
}

// Server serves clients on listeners given to Run.
type Server struct {
	cfg      Config
	log      *slog.Logger
	version  string
	b        *backend.Backend
	ownB     bool
	instance fsevent.InstanceID
	start    time.Time

	mu      lockorder.Mutex // lockServer
	clients map[uint64]*session
	nextID  uint64
	closed  bool
	conns   connTable // connections held, by privilege and uid (see takeConn)
	held    heldTable // unprivileged marks on objects the backend holds a descriptor of (takeHeld)
	marks   heldTable // unprivileged marks, all of them (takeMark: max_marks_per_uid, max_marks_unprivileged)
	// budgets are the queue budgets of unprivileged uids with a client (queue_limit_per_uid):
	// each uid's clients share one, so that clients that stop reading hold at most that many
	// events of the daemon's memory between them, not queue_limit times max_clients_per_uid.
	budgets map[uint32]*uidBudget
	// unprivBudget is queue_limit_unprivileged, the budget every uid's is within: a user
	// with many uids (subordinate ids) gets a budget for each, but all of them together
	// hold at most this many events. Its count is an atomic (engine.QueueBudget).
	unprivBudget *engine.QueueBudget
	wg           sync.WaitGroup

	cst                  connCounters
	acceptLog, refuseLog rateLog
	// unprivLog limits the lines an unprivileged client's connection logs (refused,
	// connected, left, closed) to one a second: any user may connect in a loop (clientLog).
	unprivLog rateLog

	lat             latencyHist
	gone            goneTotals // figures of clients that left (an unprivileged uid's: uidBudget.gone)
	threadPerClient bool       // Options.ThreadPerClient
	maxVersion      uint16     // Options.MaxVersion, or proto.MaxVersion
	export          *exporter  // nil without Options.Export (export.go)
	fan             fanout     // notification clients' flushes (fanout.go)
}

// goneTotals accumulate the counters of disconnected clients, so that daemon totals never go
// backwards (and an unprivileged uid's, in its uidBudget, while it has a client). Guarded by
// Server.mu.
type goneTotals struct {
	delivered, dropped, overflows                uint64
	deadline, closeAnswered, answered, queueFull uint64
}

// add counts a client that left: its figures before its group closed (st) and after (closed,
// for the events its close answered).
func (g *goneTotals) add(st, closed engine.GroupStats) {
	g.delivered += st.Delivered
	g.dropped += st.Dropped
	g.overflows += st.Overflows
	g.deadline += st.DeadlineExpired
	g.closeAnswered += closed.ClosedAnswered
	g.answered += st.Answered
	g.queueFull += st.QueueFull
}

// New creates a server (and its backend, unless given one).
func New(opts Options) (*Server, error) {
	s := &Server{cfg: opts.Config, log: opts.Logger, version: opts.Version, b: opts.Backend,
		clients: make(map[uint64]*session), start: time.Now()}
	s.mu.Init(lockServer)
	s.fan.init(s)
	s.threadPerClient = opts.ThreadPerClient
	s.maxVersion = proto.MaxVersion
	if opts.MaxVersion != 0 {
		s.maxVersion = opts.MaxVersion
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.cfg.MaxClients == 0 {
		s.cfg = DefaultConfig()
	}
	s.cfg.fill()
	if err := s.cfg.check(); err != nil {
		return nil, err
	}
	s.unprivBudget = engine.NewQueueBudget(s.cfg.QueueLimitUnprivileged)
	s.marks.limit, s.marks.perUIDLimit = s.cfg.MaxMarksUnprivileged, s.cfg.MaxMarksPerUID
	s.fitFileLimit()
	if _, err := rand.Read(s.instance[:]); err != nil {
		return nil, err
	}
	if s.b == nil {
		b, err := backend.New(backend.Options{Mode: backend.ModeFanotify, Logger: s.log})
		if err != nil {
			return nil, fmt.Errorf("the daemon needs fanotify: %w", err)
		}
		s.b, s.ownB = b, true
	}
	s.lat.init()
	s.b.SetReaderHook(readerHook{&s.fan}) // flushes on the FID reader (fanout.go)
	if err := s.startExport(opts.Export, s.cfg.Exports); err != nil {
		s.b.ClearReaderHook(readerHook{&s.fan})
		if s.ownB {
			s.b.Close()
		}
		return nil, err
	}
	return s, nil
}

// Backend returns the server's backend.
func (s *Server) Backend() *backend.Backend { return s.b }

// Instance identifies this run of the daemon (clients see it in their Welcome).
func (s *Server) Instance() fsevent.InstanceID { return s.instance }

// sinceStart is the time since the server started: one monotonic clock reading (time.Since of
// a time with a monotonic reading), where time.Now makes two (wall and monotonic). The
// daemon's own times (a client's last request, a permission event's send time) are kept so.
func (s *Server) sinceStart() time.Duration { return time.Since(s.start) }

// Run accepts clients on ln until ctx ends or ln is closed, then closes every client
// (answering their pending permission events with their close verdicts) and returns. Tests
// bring their own listener.
//
// No other accept error ends it: out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
// ENOMEM), a connection aborted — the daemon's end would end every client, and the kernel
// would then allow every access their guards decide on. It waits a moment (5 ms, doubling to
// 1 s while errors last), logs at most once a second, counts them (Metrics), and goes on.
func (s *Server) Run(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// conns ends with Run: it closes the connections Run accepted, including those still in
	// their handshake (a silent peer would otherwise hold Run for its handshake_timeout, and one
	// saying Hello after closeClients would become a client of a stopped daemon).
	conns, endConns := context.WithCancel(ctx)
	defer endConns()
	var reaper sync.WaitGroup
	reaper.Add(1)
	go func() {
		defer reaper.Done()
		s.reapIdle(conns)
	}()
	var err error
	var backoff time.Duration
	for {
		uc, aerr := ln.AcceptUnix()
		if aerr == nil {
			backoff = 0
			s.accept(conns, uc)
			continue
		}
		if errors.Is(aerr, net.ErrClosed) || ctx.Err() != nil {
			err = aerr
			break
		}
		s.cst.acceptErrors.Add(1)
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		if ok, dropped := s.acceptLog.allow(); ok {
			s.log.Warn("accepting a connection failed; retrying", "err", aerr, "retry_in", backoff, "errors_not_logged", dropped)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
	endConns()
	reaper.Wait()
	s.closeClients()
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// peer is what the kernel recorded of a connection's process when it connected.
type peer struct {
	cred       syscall.Ucred
	groups     []uint32 // gid and the supplementary groups
	privileged bool     // uid 0, or allowed by allow_uid / allow_gid
}

// accept admits a new connection by its peer's credentials (takeConn) and serves it, or
// refuses it at once with a Fatal saying which limit it met.
func (s *Server) accept(ctx context.Context, uc *net.UnixConn) {
	conn := proto.NewConn(uc, proto.DaemonSide)
	cred, err := conn.PeerCred()
	if err != nil {
		s.log.Warn("client without credentials", "err", err)
		conn.Close()
		return
	}
	p := peer{cred: *cred, groups: peerGroups(conn, cred.Pid, cred.Gid)}
	p.privileged = s.cfg.privileged(cred.Uid, p.groups)
	if err := s.takeConn(p); err != nil {
		if ok, dropped := s.refuseLog.allow(); ok {
			s.log.Info("connection refused", "pid", cred.Pid, "uid", cred.Uid, "err", err, "refusals_not_logged", dropped)
		}
		// A fresh connection's buffer is empty: the Fatal fits, the deadline is a backstop.
		conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		conn.WriteMsg(proto.FatalFor(0, err))
		conn.Close()
		return
	}
	s.wg.Add(1)
	go s.serve(ctx, conn, p)
}

// uidBudget is one unprivileged uid's queue budget and the number of its clients using it,
// and the totals of its clients gone meanwhile, for its stats: forgotten with its last client
// (a user with subordinate uids connecting once under each would otherwise grow the daemon by
// an entry per uid for as long as it runs: TestGoneUnprivilegedUIDsForgotten). Guarded by
// Server.mu.
type uidBudget struct {
	b       *engine.QueueBudget
	clients int
	gone    goneTotals
}

// takeBudgetLocked returns uid's queue budget, made for its first client. Needs s.mu.
func (s *Server) takeBudgetLocked(uid uint32) *engine.QueueBudget {
	u := s.budgets[uid]
	if u == nil {
		if s.budgets == nil {
			s.budgets = make(map[uint32]*uidBudget)
		}
		u = &uidBudget{b: engine.NewQueueBudgetWithin(s.unprivBudget, s.cfg.QueueLimitPerUID)}
		s.budgets[uid] = u
	}
	u.clients++
	return u.b
}

// releaseBudgetLocked forgets uid's budget with its last client (whose group has closed: it
// holds nothing of it). Needs s.mu.
func (s *Server) releaseBudgetLocked(uid uint32) {
	if u := s.budgets[uid]; u != nil {
		if u.clients--; u.clients <= 0 {
			delete(s.budgets, uid)
		}
	}
}

// connTable counts the connections held, from accept to close. Guarded by Server.mu.
type connTable struct {
	total, unprivileged int
	perUID              map[uint32]int // unprivileged connections by uid
}

// connCounters are the connection figures of Metrics.
type connCounters struct {
	acceptErrors                           atomic.Uint64
	refusedTotal, refusedShare, refusedUID atomic.Uint64
	reapedHandshake, reapedIdle            atomic.Uint64
}

// takeConn counts a new connection against the limits, or says which one it meets:
// max_clients for everyone; for unprivileged peers also the share left by reserved_clients
// (so that root and allowed uids can always connect, whatever unprivileged users hold) and
// max_clients_per_uid (so that no one user takes that share alone).
func (s *Server) takeConn(p peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.conns
	uid := p.cred.Uid
	switch {
	case t.total >= s.cfg.MaxClients:
		s.cst.refusedTotal.Add(1)
		return proto.Errorf(proto.CodeLimit, "the daemon serves %d connections already (max_clients)", t.total)
	case p.privileged:
	case t.unprivileged >= s.cfg.MaxClients-s.cfg.ReservedClients:
		s.cst.refusedShare.Add(1)
		return proto.Errorf(proto.CodeLimit,
			"the daemon serves %d connections of unprivileged users already; the other %d of max_clients %d are kept for root and allowed uids (reserved_clients)",
			t.unprivileged, s.cfg.ReservedClients, s.cfg.MaxClients)
	case t.perUID[uid] >= s.cfg.MaxClientsPerUID:
		s.cst.refusedUID.Add(1)
		return proto.Errorf(proto.CodeLimit, "uid %d has %d connections to the daemon already (max_clients_per_uid); close some", uid, t.perUID[uid])
	}
	t.total++
	if !p.privileged {
		if t.perUID == nil {
			t.perUID = make(map[uint32]int)
		}
		t.unprivileged++
		t.perUID[uid]++
	}
	return nil
}

// releaseConn gives back what takeConn counted.
func (s *Server) releaseConn(p peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.conns
	t.total--
	if !p.privileged {
		t.unprivileged--
		if t.perUID[p.cred.Uid]--; t.perUID[p.cred.Uid] <= 0 {
			delete(t.perUID, p.cred.Uid)
		}
	}
}

// ConnStats are the daemon's connection figures (Metrics).
type ConnStats struct {
	// Conns and Unprivileged are the connections held now, handshakes included.
	Conns, Unprivileged int
	// AcceptErrors counts accept(2) failures survived (see Run).
	AcceptErrors uint64
	// Refused counts connections refused at once: over max_clients (Total), over the
	// unprivileged share (Share: max_clients less reserved_clients), over max_clients_per_uid
	// (UID).
	RefusedTotal, RefusedShare, RefusedUID uint64
	// Reaped counts connections closed for saying no Hello within handshake_timeout
	// (Handshake), and unprivileged clients with no marks idle for idle_timeout (Idle).
	ReapedHandshake, ReapedIdle uint64
}

// ConnStats returns the connection figures.
func (s *Server) ConnStats() ConnStats {
	s.mu.Lock()
	cs := ConnStats{Conns: s.conns.total, Unprivileged: s.conns.unprivileged}
	s.mu.Unlock()
	cs.AcceptErrors = s.cst.acceptErrors.Load()
	cs.RefusedTotal, cs.RefusedShare, cs.RefusedUID = s.cst.refusedTotal.Load(), s.cst.refusedShare.Load(), s.cst.refusedUID.Load()
	cs.ReapedHandshake, cs.ReapedIdle = s.cst.reapedHandshake.Load(), s.cst.reapedIdle.Load()
	return cs
}

// reapIdle closes, until ctx ends, the unprivileged clients that hold no mark and sent no
// request for idle_timeout: a user could otherwise hold its share of connections with
// clients that do nothing. Privileged clients are trusted with their connections.
func (s *Server) reapIdle(ctx context.Context) {
	tick := time.NewTicker(min(s.cfg.IdleTimeout/4, time.Second))
	defer tick.Stop()
	var cs []*session
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cs = cs[:0]
		s.mu.Lock()
		for _, c := range s.clients {
			if !c.privileged {
				cs = append(cs, c)
			}
		}
		s.mu.Unlock()
		for _, c := range cs {
			if idle := c.idle(); idle >= s.cfg.IdleTimeout {
				c.reap(fmt.Sprintf("closed: no marks and no request for %v (the daemon's idle_timeout)", idle.Round(time.Second)))
			}
		}
		clear(cs)
	}
}

// rateLog lets a message through at most once a second; it counts what it held back.
type rateLog struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

// allow reports whether to log now, and how many were held back since the last time.
func (r *rateLog) allow() (ok bool, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < time.Second {
		r.dropped++
		return false, 0
	}
	r.last, dropped, r.dropped = now, r.dropped, 0
	return true, dropped
}

// fitFileLimit raises the soft limit on open files to the hard one (Go's runtime does so at
// start too; this does not rely on it) and lowers max_clients to what that leaves after the
// daemon's own needs, so that clients cannot exhaust the descriptors the daemon needs for its
// kernel events: a permission event whose descriptor cannot be created is denied by the
// kernel.
func (s *Server) fitFileLimit() {
	lim, err := raiseFileLimit()
	if err != nil {
		s.log.Warn("reading the open-file limit", "err", err)
		s.held.limit, s.held.perUIDLimit = heldBudget(1024, s.cfg.MaxHeldFDs)
		return
	}
	s.held.limit, s.held.perUIDLimit = heldBudget(lim, s.cfg.MaxHeldFDs)
	room := int(min(lim, 1<<30)) - fileHeadroom(lim)
	if s.cfg.MaxClients <= room {
		return
	}
	old := s.cfg.MaxClients
	s.cfg.MaxClients = max(room, 2)
	s.cfg.ReservedClients = min(s.cfg.ReservedClients, s.cfg.MaxClients/8)
	s.log.Warn("max_clients lowered to fit the open-file limit (raise it: LimitNOFILE= in the unit)",
		"max_clients", s.cfg.MaxClients, "configured", old, "reserved_clients", s.cfg.ReservedClients, "nofile", lim)
}

// heldBudget is how many marks on objects the backend must keep a descriptor of (no file
// handle: procfs, sysfs) all unprivileged clients together may hold, with the daemon's
// open-file limit lim: half the headroom, so that they can never take the descriptors its
// connections and kernel events need, or less with max_held_fds (configured). One uid may
// hold a quarter of it.
func heldBudget(lim uint64, configured int) (total, perUID int) {
	total = fileHeadroom(lim) / 2
	if configured > 0 {
		total = min(total, configured)
	}
	return total, max(1, total/4)
}

// heldTable counts marks of unprivileged clients, by uid and in all: Server.held those on
// objects the backend holds a descriptor of (backend.Target.HeldFd), Server.marks all of
// them. Guarded by Server.mu.
type heldTable struct {
	limit, perUIDLimit int
	total              int
	perUID             map[uint32]int
}

// takeHeld counts one more mark of uid's on an object the backend holds a descriptor of, or
// says which limit it meets.
func (s *Server) takeHeld(uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.held
	switch {
	case h.total >= h.limit:
		return proto.Errorf(proto.CodeLimit,
			"unprivileged clients hold %d marks on files the daemon must keep open (no file handles on their filesystem: procfs, sysfs), the most it allows", h.total)
	case h.perUID[uid] >= h.perUIDLimit:
		return proto.Errorf(proto.CodeLimit,
			"uid %d holds %d marks on files the daemon must keep open (no file handles on their filesystem: procfs, sysfs), the most it allows one user; remove some", uid, h.perUID[uid])
	}
	h.take(uid)
	return nil
}

// takeMark counts one more mark of unprivileged uid's, or says which limit it meets: the
// uid's (max_marks_per_uid) first, then all unprivileged uids' (max_marks_unprivileged). A
// mark holds the daemon's memory (the engine's, the backend's) and, in the kernel, its
// object's inode: max_marks bounds one connection only, and a user has max_clients_per_uid
// connections for each of its uids (subordinate uids: up to 65536).
func (s *Server) takeMark(uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.marks
	switch {
	case h.perUID[uid] >= h.perUIDLimit:
		return proto.Errorf(proto.CodeLimit,
			"uid %d's clients hold %d marks, the most one user may (max_marks_per_uid); remove some", uid, h.perUID[uid])
	case h.total >= h.limit:
		return proto.Errorf(proto.CodeLimit,
			"unprivileged clients hold %d marks between them, the most the daemon gives all users but root and its allowed uids (max_marks_unprivileged); try again later", h.total)
	}
	h.take(uid)
	return nil
}

// take counts one more for uid. Needs Server.mu.
func (h *heldTable) take(uid uint32) {
	if h.perUID == nil {
		h.perUID = make(map[uint32]int)
	}
	h.total++
	h.perUID[uid]++
}

// release gives back n that take counted for uid. Needs Server.mu.
func (h *heldTable) release(uid uint32, n int) {
	if n == 0 {
		return
	}
	h.total -= n
	if h.perUID[uid] -= n; h.perUID[uid] <= 0 {
		delete(h.perUID, uid)
	}
}

// releaseMarks gives back what takeMark (marks) and takeHeld (held) counted for uid.
func (s *Server) releaseMarks(uid uint32, marks, held int) {
	if marks == 0 && held == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks.release(uid, marks)
	s.held.release(uid, held)
}

// fileHeadroom is the descriptors kept for the daemon besides its connections: kernel groups,
// filesystem anchors, the descriptors of permission events in flight.
func fileHeadroom(lim uint64) int { return max(256, int(min(lim, 1<<30)/8)) }

// raiseFileLimit sets RLIMIT_NOFILE's soft limit to its hard limit and returns it.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// Close closes every client and, if the server made it, the backend.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeClients()
	s.wg.Wait()
	s.b.ClearReaderHook(readerHook{&s.fan})
	s.fan.close()
	s.stopExport()
	if s.ownB {
		return s.b.Close()
	}
	return nil
}

func (s *Server) closeClients() {
	s.mu.Lock()
	cs := make([]*session, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// serve runs one connection, until it ends or ctx does.
func (s *Server) serve(ctx context.Context, conn *proto.Conn, p peer) {
	defer s.wg.Done()
	defer s.releaseConn(p)
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	cred := &p.cred
	// A silent peer must not keep its place: it has handshake_timeout to say Hello. (Replies
	// to a peer that does not read have a deadline too: nothing here waits on it for long.)
	conn.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	conn.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout + time.Second))
	m, err := conn.ReadMsg()
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.cst.reapedHandshake.Add(1)
			conn.WriteMsg(proto.FatalFor(0, proto.Errorf(proto.CodeLimit,
				"no Hello within %v of connecting (the daemon's handshake_timeout)", s.cfg.HandshakeTimeout)))
		case !errors.Is(err, io.EOF):
			conn.WriteMsg(proto.FatalFor(0, err))
		}
		return
	}
	conn.SetReadDeadline(time.Time{})
	hello := m.(*proto.Hello) // the Conn accepts nothing else first
	c, err := s.admit(conn, p, hello)
	if err != nil {
		s.clientLog(p.privileged, "client refused", "pid", cred.Pid, "uid", cred.Uid, "err", err)
		conn.WriteMsg(proto.FatalFor(hello.Req, err))
		return
	}
	conn.SetWriteDeadline(time.Time{})
	s.clientLog(p.privileged, "client connected", "client", c.id, "name", c.name, "pid", cred.Pid, "uid", cred.Uid,
		"class", c.g.Options().Class)
	// A permission client's answers are read on the backend's event loop, the thread that
	// sent it its events and on which the walks' continuations run (inline.go); with
	// ThreadPerClient by a thread of its own, blocked in recvmsg, which hands each answer's
	// continuation to the loop (one wake-up more per answer: for comparison).
	if c.g.Options().Class != engine.ClassNotification {
		if err := conn.SetBlockingReads(); err != nil {
			s.log.Info("client connection", "client", c.id, "err", err)
			c.close()
			return
		}
		if !s.threadPerClient {
			if c.runInline() {
				s.clientLog(p.privileged, "client left", "client", c.id, "name", c.name, "uid", cred.Uid)
				return
			}
			s.log.Info("the backend's loop is closed: the client is read by a thread of its own", "client", c.id)
		}
	}
	c.run()
	s.clientLog(p.privileged, "client left", "client", c.id, "name", c.name, "uid", cred.Uid)
}

// clientLog logs, at info, a line about a client's connection: every one of root's and
// allowed uids', and of unprivileged users' at most one a second, with how many were held
// back (unprivileged_not_logged): a user connecting in a loop would otherwise grow the log
// without bound, and make journald's rate limit drop the daemon's own lines.
func (s *Server) clientLog(privileged bool, msg string, args ...any) {
	if !privileged {
		ok, dropped := s.unprivLog.allow()
		if !ok {
			return
		}
		args = append(args, "unprivileged_not_logged", dropped)
	}
	s.log.Info(msg, args...)
}

// admit checks a Hello, creates the client's group and sends the Welcome.
func (s *Server) admit(conn *proto.Conn, p peer, h *proto.Hello) (*session, error) {
	version, err := proto.NegotiateUpTo(h, s.maxVersion)
	if err != nil {
		return nil, err
	}
	cred, groups, privileged := &p.cred, p.groups, p.privileged
	opts := groupOptions(h)
	if opts.Class != engine.ClassNotification && !privileged {
		return nil, proto.Errorf(proto.CodePermission,
			"%s-class clients (permission events) need uid 0 or a uid/gid allowed by allow_uid/allow_gid in the daemon's config; uid %d is not",
			opts.Class, cred.Uid)
	}
	if opts.Class != engine.ClassNotification && s.cfg.MaxDeadline > 0 &&
		(opts.Deadline == 0 || opts.Deadline > s.cfg.MaxDeadline) {
		opts.Deadline = s.cfg.MaxDeadline // no client holds an access longer than the config allows
	}
	if opts.QueueLimit == 0 || (opts.QueueLimit < 0 && !privileged) || opts.QueueLimit > s.cfg.QueueLimit && !privileged {
		opts.QueueLimit = s.cfg.QueueLimit
	}
	opts.MarkLimit = s.cfg.MaxMarks
	name := h.Name
	if name == "" {
		name = fmt.Sprintf("pid%d", cred.Pid)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, proto.Errorf(proto.CodeUnavailable, "the daemon is shutting down")
	}
	s.nextID++
	id := s.nextID
	if !privileged {
		opts.QueueBudget = s.takeBudgetLocked(cred.Uid) // given back by session.close, or below
	}
	s.mu.Unlock()
	giveBack := func() {
		if !privileged {
			s.mu.Lock()
			s.releaseBudgetLocked(cred.Uid)
			s.mu.Unlock()
		}
	}

	opts.Name = fmt.Sprintf("%s#%d", name, id)
	// A permission client's events are forwarded by the goroutine that queues them (see
	// session.forward), a notification client's flushed with the others' (fanout.go); the
	// client exists once the group does, and no event can be queued before it places a mark.
	var self atomic.Pointer[session]
	direct := opts.Class != engine.ClassNotification
	opts.OnQueue = func() {
		if c := self.Load(); c != nil {
			if c.direct {
				c.forward()
			} else {
				s.fan.queued(c)
			}
		}
	}
	// One operation per event, in order, as the embedded Watcher's group (issue 11): a
	// notification merges only into an exact repeat of the newest unread one (inotify's
	// rule), never into an earlier event of the same object (fanotify's), which would put a
	// later operation before those queued in between. Permission events never merge.
	opts.MergeLast = true
	g, err := s.b.Engine().NewGroup(opts)
	if err != nil {
		giveBack()
		return nil, proto.Errorf(proto.CodeInvalid, "group options: %v", err)
	}
	c := &session{
		s: s, id: id, name: name, conn: conn, g: g, cred: *cred, groups: groups,
		privileged: privileged,
		eventFDs:   h.WantEventFDs && opts.Class != engine.ClassNotification && s.cfg.mayReceiveFds(cred.Uid, groups),
		wantUID:    h.WantUID, wantComm: h.WantComm,
		// Only a privileged client's events go unchecked by path (session.event).
		noPaths: h.NoPaths && privileged,
		marks:   make(map[uint64]*clientMark), byObj: make(map[engine.Object]uint64),
		sent: lru.New[uint64, time.Duration](sentLimit), done: make(chan struct{}),
		direct: direct, kick: make(chan struct{}, 1), lastKernel: s.b.Stats().KernelOverflows,
		eager: opts.QueueLimit >= 0 && opts.QueueLimit < eagerQueue, absorb: absorbFor(opts.QueueLimit),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.initLocks()
	self.Store(c)
	c.touch()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		g.Close()
		giveBack()
		return nil, proto.Errorf(proto.CodeUnavailable, "the daemon is shutting down")
	}
	s.clients[id] = c // from here session.close gives the budget back
	s.mu.Unlock()

	w := &proto.Welcome{
		Req: h.Req, Version: version, ClientID: id, Instance: s.instance,
		Fresh: h.LastInstance != s.instance, DaemonVersion: s.version,
		Class: opts.Class, QueueLimit: opts.QueueLimit, MarkLimit: opts.MarkLimit,
		Deadline: opts.Deadline, DeadlineVerdict: opts.DeadlineVerdict, CloseVerdict: opts.CloseVerdict,
		QueueFullVerdict: opts.QueueFullVerdict, EventFDs: c.eventFDs, MountMarks: privileged,
		UID: cred.Uid, GID: cred.Gid, PID: cred.Pid,
	}
	if err := conn.WriteMsg(w); err != nil {
		c.close()
		return nil, err
	}
	if version >= 5 && h.WantRing {
		if err := c.offerRing(h.Req); err != nil { // ring.go
			c.close()
			c.endRing()
			return nil, err
		}
	}
	return c, nil
}

// Stats returns daemon-wide figures and, with all, every client's (else only client only's,
// if it is one).
func (s *Server) Stats(all bool, only uint64) fsevent.Stats {
	return s.stats(statsScope{all: all, only: only})
}

// statsScope says whose figures a Stats holds.
type statsScope struct {
	all  bool   // list every client in scope, else only the client `only`
	only uint64 // the asking client
	// ownUID: the figures of uid's clients only, for an unprivileged caller. Daemon-wide
	// counters would let any user watch activity in directories it cannot read (events and
	// verdicts caused there, others' clients and marks).
	ownUID bool
	uid    uint32
}

func (s *Server) stats(sc statsScope) fsevent.Stats {
	var st fsevent.Stats
	d := &st.Daemon
	// The clients, their figures and the totals of those gone in one step (see session.close).
	s.mu.Lock()
	cs := make([]*session, 0, len(s.clients))
	for _, c := range s.clients {
		if !sc.ownUID || c.cred.Uid == sc.uid {
			cs = append(cs, c)
		}
	}
	gss := make([]engine.GroupStats, len(cs))
	for i, c := range cs {
		gss[i] = c.g.Stats()
	}
	gone := s.gone
	if sc.ownUID {
		gone = goneTotals{}
		if u := s.budgets[sc.uid]; u != nil { // the asking client's uid: it has one
			gone = u.gone
		}
	}
	s.mu.Unlock()
	d.Delivered, d.Dropped, d.Overflows = gone.delivered, gone.dropped, gone.overflows
	d.DeadlineExpired, d.CloseAnswered = gone.deadline, gone.closeAnswered
	sort.Sort(byClientID{cs, gss})
	d.Uptime = time.Since(s.start)
	d.Clients = uint32(len(cs))
	// The kernel's overflows concern every client (each is told of them with an Overflow).
	d.KernelOverflows = s.b.Stats().KernelOverflows
	if !sc.ownUID {
		bs := s.b.Stats()
		d.Events, d.PermissionEvents = bs.Events, bs.PermissionEvents
		d.Marks = uint64(s.b.Engine().Stats().Marks)
		d.Latency, d.Buckets = s.lat.snapshot()
	}
	for i, c := range cs {
		gs := gss[i]
		d.Delivered += gs.Delivered
		d.Dropped += gs.Dropped
		d.Overflows += gs.Overflows
		d.DeadlineExpired += gs.DeadlineExpired
		d.CloseAnswered += gs.ClosedAnswered
		d.Pending += uint64(gs.Pending)
		if sc.ownUID {
			d.Marks += uint64(gs.Marks)
			d.Latency.Count += gs.Answered
			d.Latency.Sum += gs.AnswerLatency * time.Duration(gs.Answered)
		}
		if (sc.all || c.id == sc.only) && len(st.Clients) < proto.MaxStatsClients {
			st.Clients = append(st.Clients, c.stats(gs))
		} else if sc.all {
			st.Truncated = true
		}
	}
	return st
}

// byClientID sorts clients and their figures by client id.
type byClientID struct {
	cs  []*session
	gss []engine.GroupStats
}

func (b byClientID) Len() int           { return len(b.cs) }
func (b byClientID) Less(i, j int) bool { return b.cs[i].id < b.cs[j].id }
func (b byClientID) Swap(i, j int) {
	b.cs[i], b.cs[j] = b.cs[j], b.cs[i]
	b.gss[i], b.gss[j] = b.gss[j], b.gss[i]
}

// latencyHist is the verdict latency histogram (client answers), lock-free.
type latencyHist struct {
	bounds []time.Duration
	counts []atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Int64
	max    atomic.Int64
}

func (h *latencyHist) init() {
	for d := 50 * time.Microsecond; d <= 10*time.Second; d *= 2 {
		h.bounds = append(h.bounds, d)
	}
	h.counts = make([]atomic.Uint64, len(h.bounds))
}

func (h *latencyHist) observe(d time.Duration) {
	h.count.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	i := sort.Search(len(h.bounds), func(i int) bool { return h.bounds[i] >= d })
	if i < len(h.bounds) {
		h.counts[i].Add(1)
	}
}

func (h *latencyHist) snapshot() (fsevent.Latency, []fsevent.Bucket) {
	l := fsevent.Latency{Count: h.count.Load(), Sum: time.Duration(h.sum.Load()), Max: time.Duration(h.max.Load())}
	bs := make([]fsevent.Bucket, len(h.bounds))
	for i := range h.bounds {
		bs[i] = fsevent.Bucket{Le: h.bounds[i], Count: h.counts[i].Load()}
	}
	return l, bs
}

// peerGroups returns the peer's supplementary groups, always including gid. They come from
// SO_PEERGROUPS, recorded by the kernel at connect time as SO_PEERCRED is: reading them from
// /proc/PID/status instead would let a client that exits before its Hello (which it may
// delay for 10 s) pass for whatever process reuses its pid. /proc is the fallback for
// kernels before 4.13 only.
func peerGroups(conn *proto.Conn, pid int32, gid uint32) []uint32 {
	out := []uint32{gid}
	add := func(g uint32) {
		if g != gid {
			out = append(out, g)
		}
	}
	var gs []uint32
	var gerr error
	if rc, err := conn.UnixConn().SyscallConn(); err != nil {
		gerr = err
	} else if err := rc.Control(func(fd uintptr) { gs, gerr = sys.PeerGroups(int(fd)) }); err != nil {
		gerr = err
	}
	if gerr == nil {
		for _, g := range gs {
			add(g)
		}
		return out
	}
	if !errors.Is(gerr, syscall.ENOPROTOOPT) {
		return out // no supplementary groups rather than a guess
	}
	supp, _ := procfs.ReadSupplementaryGroups(pid)
	for _, g := range supp {
		add(g)
	}
	return out
}
