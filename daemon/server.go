//go:build linux

// Package daemon is fsnotifyd's server: it holds the kernel side (one backend) once and serves
// many client processes over a unix socket, each client an engine group with its own marks,
// queue and permission answers, so that no client can stall another, the daemon or the host.
//
// Each connection has two goroutines: one reads the client's requests in order, one writes the
// client's events from its engine group. The kernel's readers only ever queue into engine
// groups: they never wait on a client socket, a log write, or a client's lock. A client that
// reads slowly overflows its own queue (it gets an Overflow); a client that disconnects, crashes
// or is killed has its group closed, which answers its pending permission events with its close
// verdict at once.
//
// Authorization (no confused deputy): a client names what to watch by a file descriptor it
// opened itself, never by a path the daemon would resolve with its own privileges; the daemon
// checks that the client could read it (AccessAs with the client's credentials). Mount and
// filesystem marks and the permission classes need uid 0 or a uid/gid the config allows, and so
// does receiving permission events' descriptors. Other clients see only paths below what they
// marked.
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
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
	// blocking recvmsg) instead of on the backend's kernel reader (see inline.go): about 1.4
	// times slower a permission round trip on a 2-vCPU VM; for comparison.
	ThreadPerClient bool
}

// Server serves clients on listeners given to Run.
type Server struct {
	cfg      Config
	log      *slog.Logger
	version  string
	b        *backend.Backend
	ownB     bool
	instance proto.InstanceID
	start    time.Time

	mu      sync.Mutex
	clients map[uint64]*client
	nextID  uint64
	closed  bool
	wg      sync.WaitGroup

	lat             latencyHist
	gone            goneTotals // figures of clients that left
	inline          inlineSet  // permission clients read by the backend's reader
	threadPerClient bool
}

// goneTotals accumulate the counters of disconnected clients, so that daemon totals never go
// backwards. Guarded by Server.mu.
type goneTotals struct {
	delivered, dropped, overflows                uint64
	deadline, closeAnswered, answered, queueFull uint64
}

// New creates a server (and its backend, unless given one).
func New(opts Options) (*Server, error) {
	s := &Server{cfg: opts.Config, log: opts.Logger, version: opts.Version, b: opts.Backend,
		clients: make(map[uint64]*client), start: time.Now()}
	s.inline.s = s
	s.threadPerClient = opts.ThreadPerClient
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.cfg.MaxClients == 0 {
		s.cfg = DefaultConfig()
	}
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
	return s, nil
}

// Backend returns the server's backend.
func (s *Server) Backend() *backend.Backend { return s.b }

// Instance identifies this run of the daemon.
func (s *Server) Instance() proto.InstanceID { return s.instance }

// Run accepts clients on ln until ctx ends or ln fails, then closes every client (answering
// their pending permission events with their close verdicts) and returns. Tests bring their own
// listener.
func (s *Server) Run(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// conns ends with Run: it closes the connections Run accepted, including those still in
	// their handshake (a silent peer would otherwise hold Run for its 10 s, and one saying
	// Hello after closeClients would become a client of a stopped daemon).
	conns, endConns := context.WithCancel(ctx)
	defer endConns()
	var err error
	for {
		var uc *net.UnixConn
		uc, err = ln.AcceptUnix()
		if err != nil {
			break
		}
		s.wg.Add(1)
		go s.serve(conns, uc)
	}
	endConns()
	s.closeClients()
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close closes every client and, if the server made it, the backend.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeClients()
	s.wg.Wait()
	if s.ownB {
		return s.b.Close()
	}
	return nil
}

func (s *Server) closeClients() {
	s.mu.Lock()
	cs := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// serve runs one connection, until it ends or ctx does.
func (s *Server) serve(ctx context.Context, uc *net.UnixConn) {
	defer s.wg.Done()
	conn := proto.NewConn(uc, proto.DaemonSide)
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	cred, err := conn.PeerCred()
	if err != nil {
		s.log.Warn("client without credentials", "err", err)
		return
	}
	// A client has 10 s to say Hello; a silent peer must not hold a slot.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := conn.ReadMsg()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			conn.WriteMsg(proto.FatalFor(0, err))
		}
		return
	}
	conn.SetReadDeadline(time.Time{})
	hello := m.(*proto.Hello) // the Conn accepts nothing else first
	c, err := s.admit(conn, cred, hello)
	if err != nil {
		s.log.Info("client refused", "pid", cred.Pid, "uid", cred.Uid, "err", err)
		conn.WriteMsg(proto.FatalFor(hello.Req, err))
		return
	}
	s.log.Info("client connected", "client", c.id, "name", c.name, "pid", cred.Pid, "uid", cred.Uid,
		"class", c.g.Options().Class)
	// A permission client's answers are read where they are acted on: by the backend's
	// kernel reader, which sent it its events (inline.go), or with ThreadPerClient by a
	// thread of its own, blocked in recvmsg; either way the answer's continuation
	// (Walk.Await) writes the verdict to the kernel on the thread the client's write woke.
	if c.g.Options().Class != engine.ClassNotification {
		if err := conn.SetBlockingReads(); err != nil {
			s.log.Info("client connection", "client", c.id, "err", err)
			c.close()
			return
		}
		if !s.threadPerClient && s.inline.start() {
			c.runInline()
			s.log.Info("client left", "client", c.id, "name", c.name)
			return
		}
	}
	c.run()
	s.log.Info("client left", "client", c.id, "name", c.name)
}

// admit checks a Hello, creates the client's group and sends the Welcome.
func (s *Server) admit(conn *proto.Conn, cred *syscall.Ucred, h *proto.Hello) (*client, error) {
	version, err := proto.Negotiate(h)
	if err != nil {
		return nil, err
	}
	groups := peerGroups(conn, cred.Pid, cred.Gid)
	privileged := s.cfg.privileged(cred.Uid, groups)
	opts := h.Options()
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
	if len(s.clients) >= s.cfg.MaxClients {
		s.mu.Unlock()
		return nil, proto.Errorf(proto.CodeLimit, "the daemon serves %d clients already (max_clients)", s.cfg.MaxClients)
	}
	s.nextID++
	id := s.nextID
	s.mu.Unlock()

	opts.Name = fmt.Sprintf("%s#%d", name, id)
	// A permission client's events are forwarded by the goroutine that queues them (see
	// client.forward); the client exists once the group does, and no event can be queued
	// before it places a mark.
	var self atomic.Pointer[client]
	direct := opts.Class != engine.ClassNotification
	if direct {
		opts.OnQueue = func() {
			if c := self.Load(); c != nil {
				c.forward()
			}
		}
	}
	g, err := s.b.Engine().NewGroup(opts)
	if err != nil {
		return nil, proto.Errorf(proto.CodeInvalid, "group options: %v", err)
	}
	c := &client{
		s: s, id: id, name: name, conn: conn, g: g, cred: *cred, groups: groups,
		privileged: privileged,
		eventFDs:   h.WantEventFDs && opts.Class != engine.ClassNotification && s.cfg.mayReceiveFds(cred.Uid, groups),
		wantUID:    h.WantUID, wantComm: h.WantComm,
		marks: make(map[uint64]*clientMark), byObj: make(map[engine.Object]uint64),
		sent: make(map[uint64]time.Time), done: make(chan struct{}),
		direct: direct, kick: make(chan struct{}, 1), lastKernel: s.b.Stats().KernelOverflows,
	}
	self.Store(c)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		g.Close()
		return nil, proto.Errorf(proto.CodeUnavailable, "the daemon is shutting down")
	}
	s.clients[id] = c
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
	return c, nil
}

// Stats returns daemon-wide figures and, with all, every client's (else only none).
func (s *Server) Stats(all bool, only uint64) proto.Stats {
	bs := s.b.Stats()
	es := s.b.Engine().Stats()
	var st proto.Stats
	d := &st.Daemon
	// The clients, their figures and the totals of those gone in one step (see client.close).
	s.mu.Lock()
	cs := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	gss := make([]engine.GroupStats, len(cs))
	for i, c := range cs {
		gss[i] = c.g.Stats()
	}
	d.Delivered, d.Dropped, d.Overflows = s.gone.delivered, s.gone.dropped, s.gone.overflows
	d.DeadlineExpired, d.CloseAnswered = s.gone.deadline, s.gone.closeAnswered
	s.mu.Unlock()
	sort.Sort(byClientID{cs, gss})
	d.Uptime = time.Since(s.start)
	d.Clients = uint32(len(cs))
	d.Events, d.PermissionEvents, d.KernelOverflows = bs.Events, bs.PermissionEvents, bs.KernelOverflows
	d.Marks = uint64(es.Marks)
	for i, c := range cs {
		gs := gss[i]
		d.Delivered += gs.Delivered
		d.Dropped += gs.Dropped
		d.Overflows += gs.Overflows
		d.DeadlineExpired += gs.DeadlineExpired
		d.CloseAnswered += gs.ClosedAnswered
		d.Pending += uint64(gs.Pending)
		if (all || c.id == only) && len(st.Clients) < proto.MaxStatsClients {
			st.Clients = append(st.Clients, c.stats(gs))
		} else if all {
			st.Truncated = true
		}
	}
	d.Latency, d.Buckets = s.lat.snapshot()
	return st
}

// byClientID sorts clients and their figures by client id.
type byClientID struct {
	cs  []*client
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

func (h *latencyHist) snapshot() (proto.Latency, []proto.Bucket) {
	l := proto.Latency{Count: h.count.Load(), Sum: time.Duration(h.sum.Load()), Max: time.Duration(h.max.Load())}
	bs := make([]proto.Bucket, len(h.bounds))
	for i := range h.bounds {
		bs[i] = proto.Bucket{Le: h.bounds[i], Count: h.counts[i].Load()}
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
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			var g uint32
			for _, f := range strings.Fields(rest) {
				if _, err := fmt.Sscan(f, &g); err == nil {
					add(g)
				}
			}
		}
	}
	return out
}
