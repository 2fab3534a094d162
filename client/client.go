//go:build linux

// Package client talks to a running fsnotifyd daemon (fsnotifyd serve): it places marks on
// objects it opens itself, receives their events, and answers permission events. The notify
// library and the CLI use it when asked to run through the daemon (--daemon).
//
// With Options.Reconnect, a client survives daemon restarts: it reconnects with backoff,
// places its marks again and then delivers an Event with Resync set — it may have missed
// events meanwhile, so it should rescan what it watches (like watchman's is_fresh_instance).
//
// Placing a mark again never marks a stranger. The client keeps no descriptor of a marked
// object (an open descriptor, even O_PATH, pins the object's dentry, and the kernel would
// report the object's deletion, DELETE_SELF, only once it closed): it keeps the object's path
// as it resolved when marked and its identity — device, inode and file handle (which holds
// the inode's generation where the filesystem has one, so a reused inode number does not
// pass) for inode and subtree marks; the mount's id for mount marks; the device for
// filesystem marks. After a reconnection it opens the path again (O_PATH|O_NOFOLLOW), checks
// that identity on that very descriptor, and hands that descriptor to the daemon (which checks
// the client's access on it, as for AddMark) and closes it. A mark whose path is gone, names
// another object, or that the daemon refuses now, is lost: it is not placed, and the client
// delivers, after the Resync, an Event with Lost set (see there) — as a DELETE_SELF of the
// object it marked, so that a consumer that ends a watch on DELETE_SELF ends this one. A mark
// whose object's DELETE_SELF the client delivered is not placed again either (the kernel
// dropped it). ModifyMark finds the object the same way, so it fails (ErrLost) once the object
// left the path it was marked by.
//
// Channel contract: Events is unbuffered unless Options.Buffer sizes it. Between the socket
// and the channel the client queues up to Options.Queue events (default 16384), so that
// replies to requests are never stuck behind events the application has not read yet; when
// that queue is full, events are dropped and the application gets one Event with Overflow set
// (as it does when the daemon's queue for it overflows), in the place of the events dropped:
// after every event read before the first of them, before every event read after the last. Events is closed by Close, or when
// the connection is lost without Reconnect, after the events read by then (an application
// that stops reading holds the client until Close; Close drops what is still queued).
//
// The queue for Events (deliver, pump, under qmu) keeps three invariants. Order: deliver hands
// an event straight to Events only when nothing is queued, lost or held by the pump (qheld), so
// events reach Events in the order they were read, and a drop queues an Overflow in its place
// (one for a run of drops: the queue's last event is then that Overflow), so it comes after
// every event read before the drop and before every one read after it
// (TestNoDirectHandOverPastThePumpsBatch, TestDeliverKeepsOrderAndBound,
// TestOverflowInThePlaceOfTheDrop). It learns that state without qmu from qidle, which the pump
// sets only once it found the queue empty after its last send and a deliver that queues or
// drops clears, both under qmu (TestIdleHandOverTakesNoQueueLock). Bound: the queued events plus qheld count every event read
// and not yet in the channel — the pump's batch (up to pumpBatch events taken under one lock)
// from when it takes it, and exactly what it still holds whenever it must wait on a send — so
// Queue bounds them, and each event the application reads makes room for one more
// (TestQueueBoundExactWhileTheApplicationIsSlow). Wake-up: the pump waits on qwake only after
// finding, under qmu, nothing queued or lost, so deliver wakes it only on the change from that
// state, not per event (TestPumpWakesForEveryQueuedEvent). The queue's buffer outlives
// bursts of a like size (internal/ring, with Keep queueKeep; TestQueueKeepsBufferForLikeBursts).
//
// A permission client that must be fast sets Options.Handler instead: each event is handed to
// it on the goroutine that read it, with no queue and no goroutine hand-off, and it answers
// with Respond there (or hands the event to a goroutine of its own if deciding takes time).
//
// Goroutines: every one is the Client's, and Close waits for all of them. Dial starts the
// reader (readLoop: reads the connection, runs Handler), the pump (hands queued events to
// Events) and the closer (close: once shutdown and the others have returned, it releases the
// undelivered events' descriptors and closes Events). With Options.Ring, when the daemon
// grants the permission ring, Dial also starts the ring reader (ringLoop: sleeps in
// FUTEX_WAIT, reads the events the daemon puts in the ring, runs Handler); it returns when the
// ring is closed, by the daemon or by the reader once the connection ends (readLoop stops it),
// and unmaps it (an Answer racing with that finds it closed, under the ring's own lock, and
// goes to the socket). With Reconnect, a lost
// connection starts the reconnector (reconnect), which starts the next reader; shutdown ends
// its attempts. A connection lost without Reconnect closes ended from the reader, which
// then returns; the pump hands over what is queued (the reader's last events included) and
// shuts the client down; the closer finishes. (A permission event the ring reader queues
// after the pump found the queue empty is not delivered: the daemon answered it with its
// close verdict when the connection ended.) Close with requests in flight says goodbye and
// leaves the connection to the reader until the daemon ends it, after the replies to those
// requests (at most byeWait, then it closes it itself), so that a request the daemon carried
// out (a RespondWait's answer, applied) is not reported failed. Locks: mu (the connection, the waiters, the marks)
// and qmu (the queue for Events) are never held together, nor across a blocking call (deliver
// tries a non-blocking send on Events under qmu, to keep the queue's order).
package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/ring"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// DefaultSocket is the daemon's default socket.
const DefaultSocket = "/run/fsnotifyd/fsnotifyd.sock"

// Typed errors; each also matches the matching errno or fs error with errors.Is where one
// exists (ErrPermission is fs.ErrPermission's kin, ErrNotFound fs.ErrNotExist's).
var (
	// ErrUnavailable: no daemon answers on the socket (start it with "fsnotifyd serve").
	ErrUnavailable = errors.New("fsnotifyd daemon unavailable")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("fsnotifyd client closed")
	// ErrPermission: the daemon refused (see the message for what is needed).
	ErrPermission = &codeError{fsevent.CodePermission}
	// ErrNotFound: no such mark or permission event (answered already, or past its deadline).
	ErrNotFound = &codeError{fsevent.CodeNotFound}
	// ErrInvalid: the daemon found the request invalid.
	ErrInvalid = &codeError{fsevent.CodeInvalid}
	// ErrLimit: a daemon limit was reached (clients, marks).
	ErrLimit = &codeError{fsevent.CodeLimit}
	// ErrNotSupported: the kernel or filesystem cannot do it.
	ErrNotSupported = &codeError{fsevent.CodeNotSupported}
	// ErrLost: a mark's object is no longer at the path it was marked by (deleted, moved or
	// replaced), or could not be marked again after a reconnection (Event.Lost).
	ErrLost = errors.New("fsnotifyd mark lost")
	// ErrByeUnanswered: Close found a daemon that did not end the session within byeWait
	// (stopped with SIGSTOP, stuck): it closed the connection itself. The daemon gives the
	// client's pending permission events its close verdict when it runs again.
	ErrByeUnanswered = errors.New("fsnotifyd daemon did not end the session")
)

// codeError is a sentinel matched by code.
type codeError struct{ code fsevent.Code }

func (e *codeError) Error() string { return "fsnotifyd: " + e.code.String() }

// Is matches the fs error of the code, as Error.Is does.
func (e *codeError) Is(target error) bool {
	return (&Error{Code: e.code}).Is(target)
}

// Error is a request the daemon refused: its code (docs/protocol.md) and message.
type Error struct {
	Code fsevent.Code
	Msg  string
}

func (e *Error) Error() string { return "fsnotifyd daemon: " + e.Msg }

// Is matches the sentinels of the same code and the matching fs errors.
func (e *Error) Is(target error) bool {
	if ce, ok := target.(*codeError); ok {
		return ce.code == e.Code
	}
	switch target {
	case fs.ErrPermission:
		return e.Code == fsevent.CodePermission
	case fs.ErrNotExist:
		return e.Code == fsevent.CodeNotFound
	}
	return false
}

func toError(err error) error {
	var pe *proto.Error
	if errors.As(err, &pe) {
		return &Error{Code: pe.Code, Msg: pe.Msg}
	}
	return err
}

// Options configure a client.
type Options struct {
	// Socket is the daemon's socket (default DefaultSocket). Its listener must be root or
	// this process's user (SO_PEERCRED): another user's socket is refused as not the daemon.
	Socket string
	// Name labels the client in the daemon's logs and stats.
	Name string
	// Class: notification (default), content or pre-content (permission events need uid 0 or
	// a uid/gid the daemon's config allows).
	Class engine.Class
	// QueueLimit of the client's queue in the daemon (0: the daemon's default).
	QueueLimit int
	// Deadline for answering permission events (capped by the daemon) and the verdict then;
	// the verdict given to pending events if the client goes away.
	Deadline        time.Duration
	DeadlineVerdict engine.Verdict
	CloseVerdict    engine.Verdict
	// WantEventFDs asks for permission events' file descriptors (for content inspection).
	WantEventFDs bool
	// WantComm and WantUID ask for the accessing process's command and uid.
	WantComm, WantUID bool
	// NoPaths says the client needs no paths in its permission events (an allow-all
	// responder, a decision by uid or by content): the daemon then reads no path for them,
	// which saves it a readlink and a statx per event, and their Path is empty (PathUnknown
	// false) unless it had read it anyway to find the event's place. Only a
	// daemon of protocol version 4 or later honours it (Welcome.Version); an older one sends
	// paths, and so does any daemon to an unprivileged client.
	NoPaths bool
	// Ring asks a permission client's daemon for the permission ring (protocol version 5,
	// docs/protocol.md): its events then come through memory shared with the daemon, read
	// by a goroutine of the client that sleeps in FUTEX_WAIT, and Respond answers through it
	// (no socket write, no skb, no poll). It is not used with WantEventFDs (the fds go over
	// the socket), nor after a reconnection (the socket then), nor by a daemon that does not
	// grant it (an older one, one that reads clients on threads of their own): the client
	// then uses the socket as without it. Welcome.Ring says whether it is in use.
	Ring bool
	// CacheOnlyIfFlushable sends an allow's Cache (engine.Response.Cache) only on a connection
	// whose daemon can withdraw it (protocol version 6: FlushCache); to an older daemon the
	// allow goes without it, a plain allow. A client whose rules may change sets it, and
	// calls FlushCache when they do: an allow it had cached on a daemon that cannot withdraw
	// it would still pass every access of the file after the change (docs/protocol.md).
	CacheOnlyIfFlushable bool
	// Reconnect makes the client survive daemon restarts (see the package doc).
	Reconnect bool
	// OnDisconnected, if set (with Reconnect), is called when the connection to the daemon
	// is lost, and then whenever an attempt to reconnect fails with another error than the
	// one it was last called with (the daemon gone, then back but refusing the client: a
	// configuration that no longer allows it), so that the application can say that it is
	// not served meanwhile; the Resync event says when it is again. It runs on the client's
	// goroutines, holding no lock of the client: it must not block for long.
	OnDisconnected func(err error)
	// Buffer sizes the Events channel (0: unbuffered); Queue bounds the events waiting in
	// the client for the application (default 16384).
	Buffer, Queue int
	Logger        *slog.Logger
	// Handler, if set, receives the events instead of Events (which then stays empty), on
	// the goroutine that reads the connection: one call at a time, in order, and nothing
	// else is read while it runs — replies to requests included. So it must return quickly
	// and must not call what waits for the daemon (AddMark, RemoveMark, RespondWait, Stats,
	// Ping); Respond, which does not wait, is what it is for. The Handler owns the event's FD
	// (close it). The connection is then read with blocking reads (the thread the kernel
	// wakes for an event is the one that answers it): the fastest permission round trip,
	// about 1.3 times as fast as through Events on a 2-vCPU VM (bench/daemonallow -events).
	// Hand slow decisions to another goroutine and Respond from there.
	Handler func(Event)
}

// Event is an event from the daemon: the record (its FD, a permission event's file for a
// client granted Welcome.EventFDs, is the receiver's to close), or a notice that events were
// lost (Overflow) or may have been (Resync).
type Event struct {
	fsevent.Event
	// Mark is the id of the client's mark whose subtree or object the path is in, when it can
	// tell (0 otherwise).
	Mark MarkID
	// Overflow: the client lost events (its queue or the kernel's overflowed): rescan.
	Overflow bool
	// Resync: the client reconnected to a daemon (a restart) and placed its marks again: it
	// may have missed events. (Not sent when it had no marks to place.)
	Resync bool
	// Lost, after a Resync: mark Mark could not be placed again (see the package doc), and
	// says why (it matches ErrLost; also fs.ErrNotExist when the path is gone). The record is
	// then a DELETE_SELF of the marked object (OnDir for a directory), whatever the mark's
	// mask: its path, and its device and inode for an inode or subtree mark — the object was
	// deleted, replaced or moved while the client was away, and the kernel's own DELETE_SELF
	// or MOVE_SELF may have been missed. The mark stays the client's until RemoveMark (which
	// then asks nothing of the daemon); it is never placed again.
	Lost error
}

// MarkID names a mark of this client; it stays valid across reconnections.
type MarkID uint64

// mark is what the client keeps to place a mark again after a reconnection: no descriptor
// of the object (it would hold back the object's DELETE_SELF), but where it was and what it
// was (see the package doc).
type mark struct {
	id     MarkID
	daemon uint64 // the daemon's id on the current connection; 0: none (yet)
	path   string // the object's path as it resolved when marked
	ident  ident
	kind   engine.Kind
	spec   engine.MarkSpec
	gone   bool // the object's DELETE_SELF was delivered: the kernel dropped the mark
	lost   bool // not placed again after a reconnection (Event.Lost): never will be
}

// live reports whether m is placed, or will be after a reconnection.
func (m *mark) live() bool { return !m.gone && !m.lost }

// Client is a connection to the daemon.
type Client struct {
	opts   Options
	log    *slog.Logger
	events chan Event
	done   chan struct{}      // closed by shutdown: every goroutine of the client returns
	ended  chan struct{}      // closed when the connection is lost without Reconnect: the pump delivers what is queued, then shuts the client down
	ctx    context.Context    // ends with done: bounds the reconnection attempts
	cancel context.CancelFunc // ends ctx
	wg     sync.WaitGroup     // the reader, the pump and the reconnector
	closer chan struct{}      // closed by the closer once the others returned and it cleaned up

	mu       sync.Mutex
	conn     *proto.Conn
	welcome  *proto.Welcome
	instance proto.InstanceID
	waiters  map[uint64]chan proto.Msg
	marks    map[MarkID]*mark
	nextMark MarkID
	// marksGen changes (under mu) whenever markOf's answer for a path may change: a mark
	// added, removed, gone or lost. markOf's memo is good while it stays the same.
	marksGen atomic.Uint64
	closed   bool
	ready    chan struct{} // closed when a connection is up; replaced on loss
	byeTimer *time.Timer   // shutdown's bound on the replies to the requests in flight
	byeCut   bool          // byeTimer closed the connection: the daemon did not answer the Bye

	nextReq   atomic.Uint64
	daemonPID atomic.Int32                     // the last connection's listener's pid (Welcome.DaemonPID)
	ring      atomic.Pointer[proto.ClientRing] // the first connection's, if granted; nil once lost

	qmu   sync.Mutex
	q     ring.Ring[Event] // events read from the socket, not yet delivered (Keep: queueKeep)
	qheld int              // events (an Overflow included) the pump took from q and has not all handed over
	// qtailLost: q's last event is the Overflow of the drops since it was queued: a drop
	// now adds nothing (a run of drops has one Overflow, in its place).
	qtailLost bool
	qwake     chan struct{}
	// qidle: nothing is queued or held by the pump (q empty, qheld 0). Written
	// under qmu by whoever makes it so or not so (the pump, when it finds q empty and waits;
	// deliver, when it queues or drops), read by deliver without qmu: a reader that finds it
	// set hands its event straight to Events with no lock of qmu (two locked instructions
	// per event; see deliver).
	qidle atomic.Bool
}

// Dial connects to the daemon; a daemon that is not running is ErrUnavailable at once, with
// or without Reconnect (which is about connections lost later). ctx bounds the handshake.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(os.Args[0])
	}
	c := &Client{opts: opts, log: opts.Logger, q: ring.Ring[Event]{Keep: queueKeep}, events: make(chan Event, opts.Buffer), done: make(chan struct{}),
		ended: make(chan struct{}), closer: make(chan struct{}), waiters: make(map[uint64]chan proto.Msg), marks: make(map[MarkID]*mark),
		ready: make(chan struct{}), qwake: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.qidle.Store(true)
	if c.opts.Queue <= 0 {
		c.opts.Queue = 16384
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	conn, w, ring, err := c.connect(ctx, opts.Ring)
	if err != nil {
		c.cancel()
		return nil, err
	}
	if ring != nil {
		c.ring.Store(ring)
		c.wg.Add(1)
		go c.ringLoop(conn, ring)
	}
	c.mu.Lock()
	c.conn, c.welcome, c.instance = conn, w, w.Instance
	close(c.ready)
	c.mu.Unlock()
	c.wg.Add(2)
	go c.readLoop(conn)
	go c.pump()
	go c.close()
	return c, nil
}

// Welcome is what the daemon granted a connection, in answer to the client's hello.
type Welcome struct {
	// Version is the protocol version spoken (docs/protocol.md).
	Version uint16
	// ClientID identifies the client in the daemon's logs and stats; Instance the daemon's
	// run. Fresh says the instance differs from the one the client was connected to before
	// (a restart: events may have been missed), or that there was none.
	ClientID      uint64
	Instance      fsevent.InstanceID
	Fresh         bool
	DaemonVersion string
	// The options that apply, after the daemon's caps and defaults: the class, the queue
	// limit (-1: unlimited), the mark limit (0: none), the deadline for answers and the
	// verdicts at the deadline, when the client goes away and when its queue is full.
	Class                                           fsevent.Class
	QueueLimit, MarkLimit                           int
	Deadline                                        time.Duration
	DeadlineVerdict, CloseVerdict, QueueFullVerdict fsevent.Verdict
	// EventFDs says permission events carry their file (Event.FD); MountMarks that the client
	// may place mount and filesystem marks.
	EventFDs, MountMarks bool
	// Ring says the client's events and answers go through the permission ring
	// (Options.Ring) on this connection.
	Ring bool
	// UID, GID and PID are the client's credentials as the daemon saw them when it connected
	// (in the daemon's user and pid namespaces): they decide what it may do.
	UID, GID uint32
	PID      int32
	// DaemonPID is the daemon's pid as this process sees it (SO_PEERCRED of the socket's
	// listener, the kernel's word, not the daemon's): 0 when the daemon runs in a pid
	// namespace this process cannot see (one above its own). With PID equal to this
	// process's pid, a nonzero DaemonPID proves that both run in the same pid namespace.
	DaemonPID int32
}

// Welcome returns what the daemon granted on the current connection.
func (c *Client) Welcome() Welcome {
	c.mu.Lock()
	w := c.welcome
	c.mu.Unlock()
	return Welcome{Version: w.Version, ClientID: w.ClientID, Instance: w.Instance, Fresh: w.Fresh,
		DaemonVersion: w.DaemonVersion, Class: w.Class, QueueLimit: w.QueueLimit, MarkLimit: w.MarkLimit,
		Deadline: w.Deadline, DeadlineVerdict: w.DeadlineVerdict, CloseVerdict: w.CloseVerdict,
		QueueFullVerdict: w.QueueFullVerdict, EventFDs: w.EventFDs, MountMarks: w.MountMarks,
		UID: w.UID, GID: w.GID, PID: w.PID, DaemonPID: c.daemonPID.Load(), Ring: c.ring.Load() != nil}
}

// connect dials and says Hello; with wantRing, a permission client without event fds asks for
// the ring, and ring is the one granted (or nil).
func (c *Client) connect(ctx context.Context, wantRing bool) (*proto.Conn, *proto.Welcome, *proto.ClientRing, error) {
	wantRing = wantRing && c.opts.Class != engine.ClassNotification && !c.opts.WantEventFDs
	conn, err := proto.Dial(c.opts.Socket)
	for errors.Is(err, syscall.EAGAIN) {
		// The daemon's listen backlog is full (a burst of connections): it drains it, so
		// try again shortly, within ctx.
		select {
		case <-ctx.Done():
			return nil, nil, nil, fmt.Errorf("%w at %s: the daemon's connection queue stayed full: %v", ErrUnavailable, c.opts.Socket, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
		conn, err = proto.Dial(c.opts.Socket)
	}
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, nil, fmt.Errorf("%w at %s (start it with \"fsnotifyd serve\", or name another socket): %v", ErrUnavailable, c.opts.Socket, err)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, nil, nil, fmt.Errorf("%w: %s: permission denied (ask the administrator for access to the socket)", ErrUnavailable, c.opts.Socket)
		}
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	daemonPID, err := checkDaemonPeer(conn, c.opts.Socket)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	c.daemonPID.Store(daemonPID)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	// ctx's end interrupts the handshake (Close does, during a reconnection).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	h := &proto.Hello{
		Req: c.nextReq.Add(1), MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
		Name: c.opts.Name, Class: c.opts.Class, QueueLimit: c.opts.QueueLimit, Deadline: c.opts.Deadline,
		DeadlineVerdict: c.opts.DeadlineVerdict, CloseVerdict: c.opts.CloseVerdict,
		WantEventFDs: c.opts.WantEventFDs, WantComm: c.opts.WantComm, WantUID: c.opts.WantUID,
		LastInstance: c.instance, NoPaths: c.opts.NoPaths, WantRing: wantRing,
	}
	if err := conn.WriteMsg(h); err != nil {
		var pe *proto.Error
		if !errors.As(err, &pe) {
			// The connection broke: a daemon that refuses a connection at once (a
			// connection limit) sends its Fatal and closes, maybe before the Hello arrives.
			if m, rerr := conn.ReadMsg(); rerr == nil {
				if f, ok := m.(*proto.Fatal); ok {
					conn.Close()
					return nil, nil, nil, toError(f.Err())
				}
			}
		}
		conn.Close()
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	hello := time.Now()
	m, err := conn.ReadMsg()
	if err != nil {
		conn.Close()
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			// Accepted (the kernel does, into the listener's backlog, for a stopped daemon
			// too) and never answered: say so, not "use of closed network connection".
			return nil, nil, nil, fmt.Errorf("%w: the daemon at %s (pid %d) accepted the connection but did not answer its Hello within %v (stopped or stuck?)",
				ErrUnavailable, c.opts.Socket, daemonPID, time.Since(hello).Round(time.Millisecond))
		}
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch m := m.(type) {
	case *proto.Welcome:
		if m.Class != c.opts.Class {
			// A daemon refuses a class (Fatal), it never grants another: a permission client
			// made a notification client would decide nothing while it seemed to guard.
			conn.Close()
			return nil, nil, nil, fmt.Errorf("%w: %w: the daemon at %s granted class %s to a Hello that asked for %s",
				ErrUnavailable, errBadReply, c.opts.Socket, m.Class, c.opts.Class)
		}
		var ring *proto.ClientRing
		if wantRing && m.Version >= 5 {
			// A RingGrant, or a Result saying why not, follows the Welcome.
			r, err := conn.ReadMsg()
			if err != nil {
				conn.Close()
				return nil, nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			switch r := r.(type) {
			case *proto.RingGrant:
				if ring, err = proto.NewClientRing(r); err != nil {
					c.log.Warn("fsnotifyd permission ring refused: using the socket", "err", err)
					ring = nil
				}
			case *proto.Result:
				c.log.Debug("fsnotifyd daemon grants no permission ring: using the socket", "err", r.Err())
			default:
				proto.CloseFDs(r)
				conn.Close()
				return nil, nil, nil, fmt.Errorf("%w: unexpected %T after Welcome", ErrUnavailable, r)
			}
		}
		if !stop() {
			if ring != nil {
				ring.Close()
			}
			return nil, nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
		conn.SetDeadline(time.Time{})
		if c.opts.Handler != nil {
			if err := conn.SetBlockingReads(); err != nil {
				conn.Close()
				if ring != nil {
					ring.Close()
				}
				return nil, nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
		}
		return conn, m, ring, nil
	case *proto.Fatal:
		conn.Close()
		return nil, nil, nil, toError(m.Err())
	}
	conn.Close()
	return nil, nil, nil, fmt.Errorf("%w: unexpected %T before Welcome", ErrUnavailable, m)
}

// checkDaemonPeer refuses a connection whose listener is neither root nor this process's
// user, by the credentials the kernel recorded when it called listen(2) (SO_PEERCRED, as the
// daemon judges its clients): such a socket is not the daemon, whatever it answers. Another
// user can listen at a --socket path in a directory they may write (a sticky /tmp included,
// once a stopped daemon's socket is gone), and a root guard that took their Welcome would
// decide nothing. An unprivileged user's own daemon serves them. It is checked before the
// Hello, so that nothing is said to an impostor.
func checkDaemonPeer(conn *proto.Conn, socket string) (pid int32, err error) {
	cred, err := conn.PeerCred()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: the daemon's credentials: %v", ErrUnavailable, socket, err)
	}
	if euid := uint32(os.Geteuid()); cred.Uid != 0 && cred.Uid != euid {
		return 0, fmt.Errorf("%w: %s is served by uid %d (pid %d), neither root nor this user: %w "+
			"(someone put a socket there: keep the daemon's socket in a directory only root may write, such as the default %s's)",
			ErrUnavailable, socket, cred.Uid, cred.Pid, errImpostor, filepath.Dir(DefaultSocket))
	}
	return cred.Pid, nil
}

// errImpostor is checkDaemonPeer's refusal (a reconnecting client logs it as a warning).
var errImpostor = errors.New("refused as not the fsnotifyd daemon")

// Events returns the channel of events (see the package doc for its contract). With
// Options.Handler, nothing is sent on it; it is closed by Close all the same.
func (c *Client) Events() <-chan Event { return c.events }

// readLoop reads one connection's messages: replies go to their waiters, events to Events.
func (c *Client) readLoop(conn *proto.Conn) {
	defer c.wg.Done()
	// However the connection ends, the ring's reader must end with it, before lost: the
	// daemon's own close of the ring wakes that reader once, and that wake can be lost
	// (ClientRing.Stop).
	stopRing := func() {
		if r := c.ring.Swap(nil); r != nil {
			r.Stop() // its reader returns and closes it
		}
	}
	// Each event is decoded into scratch's record (proto.Event is fsevent.Event) and copied
	// once, into Events or the queue: no allocation, no copy in between.
	var scratch Event
	var memo markMemo
	for {
		m, err := conn.ReadMsgInto((*proto.Event)(&scratch.Event))
		if err != nil {
			conn.Close()
			stopRing()
			c.lost(conn, err)
			return
		}
		switch m := m.(type) {
		case *proto.Event, *proto.Overflow:
			c.received(m, &scratch, &memo)
		case *proto.Fatal:
			conn.Close()
			stopRing()
			c.lost(conn, toError(m.Err()))
			return
		default:
			if m.RequestID() == 0 {
				if r, ok := m.(*proto.Result); ok && r.Err() != nil {
					c.log.Warn("fsnotifyd daemon refused an answer", "event", r.ID, "err", r.Err())
				}
				continue
			}
			c.mu.Lock()
			w := c.waiters[m.RequestID()]
			delete(c.waiters, m.RequestID())
			c.mu.Unlock()
			if w != nil {
				w <- m
			}
		}
	}
}

// received delivers an event or an overflow read from the connection or the ring; an
// event m was decoded into ev's record (ev is the reader's scratch: only Mark is set here,
// its other fields stay zero).
func (c *Client) received(m proto.Msg, ev *Event, memo *markMemo) {
	switch m := m.(type) {
	case *proto.Event:
		ev.Mark = c.markOf(m.Path, memo)
		c.noteDeleted(&ev.Event)
		if !c.deliver(ev) {
			proto.CloseFDs(m)
		}
	case *proto.Overflow:
		c.deliver(&Event{Overflow: true})
	}
}

// ringLoop reads the events the daemon puts in the permission ring, in order, until the
// ring is closed: by the daemon (the session ended) or by readLoop (the connection ended).
// A record that does not decode ends the connection: the daemon wrote it, so the daemon
// and the client disagree on the protocol.
func (c *Client) ringLoop(conn *proto.Conn, ring *proto.ClientRing) {
	defer c.wg.Done()
	defer ring.Close()
	var scratch Event // as readLoop's
	var last string
	var memo markMemo
	for {
		ok, err := ring.Next(func(frame []byte) error {
			m, err := proto.DecodeRingFrame(frame, (*proto.Event)(&scratch.Event), &last)
			if err != nil {
				return err
			}
			c.received(m, &scratch, &memo)
			return nil
		})
		if err != nil {
			c.log.Warn("fsnotifyd permission ring: closing the connection", "err", err)
			conn.Close() // readLoop sees it and handles the loss
		}
		if !ok || err != nil {
			c.ring.CompareAndSwap(ring, nil)
			return
		}
	}
}

// markMemo is markOf's last answer, kept by the goroutine that reads a connection: a flood's
// events name the same few paths one after the other, and the marks seldom change, so most
// events find their mark without taking mu or walking the marks.
type markMemo struct {
	path string
	gen  uint64 // marksGen when id was found
	id   MarkID
	ok   bool
}

// markOf finds the mark whose path contains p; with memo (the caller's own), the answer for
// the last path it was asked about is reused while no mark changed (marksGen).
func (c *Client) markOf(p string, memo *markMemo) MarkID {
	if p == "" {
		return 0
	}
	if memo != nil && memo.ok && memo.path == p && memo.gen == c.marksGen.Load() {
		return memo.id
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.markOfLocked(p)
	if memo != nil {
		// Read under mu: every change to the marks moves marksGen under mu too.
		*memo = markMemo{path: p, gen: c.marksGen.Load(), id: id, ok: true}
	}
	return id
}

// marksChangedLocked notes a change to the marks that may change markOf's answers. Needs mu.
func (c *Client) marksChangedLocked() { c.marksGen.Add(1) }

// markOfLocked is markOf without a memo. Needs mu.
func (c *Client) markOfLocked(p string) MarkID {
	var best *mark
	for _, m := range c.marks {
		if m.live() && paths.Within(p, m.path) {
			if best == nil || len(m.path) > len(best.path) {
				best = m
			}
		}
	}
	if best == nil {
		return 0
	}
	return best.id
}

// noteDeleted remembers the marks whose object ev reports deleted: the kernel dropped them
// with the inode, and after a reconnection they are neither placed again nor reported lost
// (their DELETE_SELF was delivered).
func (c *Client) noteDeleted(ev *fsevent.Event) {
	if ev.Mask&engine.DeleteSelf == 0 || !ev.HasObject {
		return
	}
	c.mu.Lock()
	for _, m := range c.marks {
		if (m.kind == engine.KindInode || m.kind == engine.KindSubtree) && m.ident.dev == ev.Dev && m.ident.ino == ev.Ino {
			m.gone = true
			c.marksChangedLocked()
		}
	}
	c.mu.Unlock()
}

// deliver queues ev for the application without blocking; it reports false if ev was dropped.
func (c *Client) deliver(ev *Event) bool {
	if h := c.opts.Handler; h != nil {
		h(*ev)
		return true
	}
	if c.qidle.Load() {
		// Nothing queued, lost or held (see qidle): hand it over directly without qmu. Only
		// a deliver can end that state, and the pump sets qidle only after its last send
		// (under qmu, once it found q empty), so every event read before this one is in
		// Events already. (A second reader — the ring's — may deliver at once: events of
		// two readers at the same time have no order between them.)
		select {
		case c.events <- *ev:
			return true
		default:
		}
	}
	c.qmu.Lock()
	idle := c.q.Len() == 0
	if idle && c.qheld == 0 {
		// Nothing queued or held: hand it over directly if the channel takes it (one
		// goroutine hand-off less per event, which a permission round trip feels).
		select {
		case c.events <- *ev:
			c.qtailLost = false
			c.qmu.Unlock()
			return true
		default:
		}
	}
	// The events the pump holds count too: Queue bounds every event waiting in the client
	// (a consumer derives its loss bound from it: notify's TestWatcherOverflow), but for the
	// Overflow a drop queues in its place, one beyond the bound.
	ok := c.q.Len()+c.qheld < c.opts.Queue
	switch {
	case ok:
		c.q.PushFrom(ev)
		c.qtailLost = ev.Overflow
	case !c.qtailLost:
		c.q.PushFrom(&Event{Overflow: true})
		c.qtailLost = true
	}
	c.qidle.Store(false)
	c.qmu.Unlock()
	if idle {
		// The pump waits for qwake only after it found q empty and nothing lost, under qmu:
		// so only the change from that state needs to wake it, once (qwake holds one token).
		select {
		case c.qwake <- struct{}{}:
		default:
		}
	}
	return ok
}

// queueKeep is the queue's ring.Keep: an emptied buffer of this many events or fewer is always
// kept (a larger one is given back after bursts that each used a quarter of it or less).
const queueKeep = 256

// pumpBatch is how many queued events the pump takes from the queue under one lock.
const pumpBatch = 32

// pump moves queued events to the Events channel, up to pumpBatch at a time: it takes them
// (Overflows included, in their places) from the queue under qmu and counts them in
// qheld until every one is in the channel. Sends that the channel takes at once cost no
// lock; before a send that must wait, qheld is brought down to the events not yet handed
// over, so that while the application is slow the bound on what the client holds counts
// exactly what it holds.
func (c *Client) pump() {
	defer c.wg.Done()
	var batch []Event // allocated at the first event queued: a Handler client never queues
	for {
		c.qmu.Lock()
		c.qheld = 0 // the last batch is in the channel
		if batch == nil && c.q.Len() > 0 {
			c.qmu.Unlock()
			batch = make([]Event, pumpBatch)
			continue
		}
		n := c.q.PopInto(batch)
		c.qheld = n
		if n == 0 {
			// Every event taken before, an Overflow included, is in Events: deliver may hand
			// over directly, and a drop needs an Overflow of its own. (While the pump holds a
			// batch that ends with an Overflow, a drop is still in its place.)
			c.qtailLost = false
			c.qidle.Store(true)
		}
		c.qmu.Unlock()
		if n == 0 {
			select {
			case <-c.qwake:
				continue
			case <-c.ended:
				// The connection is gone without Reconnect: the reader has returned, so once
				// the queue is found empty under qmu, every event it read is in Events.
				c.qmu.Lock()
				empty := c.q.Len() == 0
				c.qmu.Unlock()
				if !empty {
					continue // a deliver raced the check above: hand it over first
				}
				c.shutdown()
				return
			case <-c.done:
				return
			}
		}
		for i := 0; i < n; i++ {
			if !c.hand(batch[i], n-i) {
				closeEvents(batch[i:n])
				return
			}
			batch[i] = Event{}
		}
	}
}

// hand sends ev on Events for the pump; left is how many events the pump holds, ev
// included. It reports false if the client shut down first (ev is then not sent).
func (c *Client) hand(ev Event, left int) bool {
	if h := pumpHandHook.Load(); h != nil {
		(*h)()
	}
	select {
	case c.events <- ev:
		return true
	default:
	}
	c.qmu.Lock()
	c.qheld = left
	c.qmu.Unlock()
	select {
	case c.events <- ev:
		return true
	case <-c.done:
		return false
	}
}

// pumpHandHook, for tests, runs on the pump before each hand-over.
var pumpHandHook atomic.Pointer[func()]

// closeEvents closes the descriptors of events that will never be delivered.
func closeEvents(evs []Event) {
	for i := range evs {
		evs[i].FD.Close()
		evs[i] = Event{}
	}
}

// lost handles the end of a connection: without Reconnect the client is done; with it, a
// goroutine reconnects with backoff and places the marks again.
func (c *Client) lost(conn *proto.Conn, err error) {
	c.mu.Lock()
	if c.conn != conn {
		c.mu.Unlock()
		return
	}
	c.conn = nil
	for req, w := range c.waiters {
		close(w)
		delete(c.waiters, req)
	}
	for _, m := range c.marks {
		m.daemon = 0 // means nothing on the next connection: RemoveMark meanwhile only forgets
	}
	c.ready = make(chan struct{})
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if !c.opts.Reconnect {
		c.log.Warn("fsnotifyd daemon connection lost", "err", err)
		// The pump delivers the events read so far, then shuts the client down; the closer
		// finishes once this reader has returned. (Once per client: without Reconnect there
		// is one connection, and c.conn != conn above turns away a second call.)
		close(c.ended)
		return
	}
	c.log.Warn("fsnotifyd daemon connection lost; reconnecting", "err", err)
	c.wg.Add(1)
	go c.reconnect(err)
}

// reconnect connects again with backoff and places the marks again; cause is why the last
// connection was lost. Options.OnDisconnected hears the cause, then each new reason a
// reconnection fails for.
func (c *Client) reconnect(cause error) {
	defer c.wg.Done()
	said := ""
	disconnected := func(err error) {
		// Not for an attempt Close interrupted: the client is going, not lost.
		if c.opts.OnDisconnected != nil && err != nil && c.ctx.Err() == nil && err.Error() != said {
			said = err.Error()
			c.opts.OnDisconnected(err)
		}
	}
	disconnected(cause)
	backoff := 50 * time.Millisecond
	var lost []Event // notices of the marks that could not be placed (kept across attempts)
	for {
		select {
		case <-c.done:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second) // Close interrupts the attempt
		conn, w, _, err := c.connect(ctx, false)                  // no ring after a reconnection: the socket
		cancel()
		if err != nil {
			if errors.Is(err, errImpostor) {
				c.log.Warn("reconnecting to the fsnotifyd daemon", "err", err)
			} else {
				c.log.Debug("reconnecting to the fsnotifyd daemon", "err", err)
			}
			disconnected(err)
			continue
		}
		// Place the marks again before anyone may use the connection. A daemon that stops
		// answering meanwhile (stopped, stuck) holds neither this attempt (each round trip has
		// remarkWait) nor Close (which cancels c.ctx: the connection closes); before, the
		// reconnection waited for its Result with no bound, and Close for the reconnection
		// (TestCloseDuringRemarkWithStalledDaemon).
		stopRemark := context.AfterFunc(c.ctx, func() { conn.Close() })
		c.mu.Lock()
		marks := make([]*mark, 0, len(c.marks))
		for _, m := range c.marks {
			if m.live() {
				marks = append(marks, m)
			}
		}
		c.mu.Unlock()
		var early []Event // events for marks placed again, read before the last Result
		var broken error
		for _, m := range marks {
			id, err := c.addOn(conn, m, &early)
			if err != nil {
				if !errors.Is(err, ErrLost) {
					broken = err // the connection failed: try another
					break
				}
				c.log.Warn("a mark could not be placed again after reconnecting: it is lost", "path", m.path, "err", err)
				c.mu.Lock()
				m.lost = true
				c.marksChangedLocked()
				removed := c.marks[m.id] != m
				c.mu.Unlock()
				if !removed { // removed meanwhile: the application is done with it
					lost = append(lost, lostEvent(m, err))
				}
				continue
			}
			c.mu.Lock()
			removed := c.marks[m.id] != m
			if !removed {
				m.daemon = id
			}
			c.mu.Unlock()
			if removed {
				// RemoveMark took it while it was being placed: take it off again.
				if _, err := c.roundTrip(conn, &proto.RemoveMark{Req: c.nextReq.Add(1), By: proto.RemoveByID, MarkID: id}, &early); err != nil && !isRefusal(err) {
					broken = err
					break
				}
			}
		}
		if !stopRemark() {
			broken = ErrClosed // Close closed the connection meanwhile
		}
		conn.SetDeadline(time.Time{})
		if broken != nil {
			c.log.Debug("placing the marks again after reconnecting", "err", broken)
			disconnected(broken)
			conn.Close()
			c.mu.Lock()
			for _, m := range c.marks {
				m.daemon = 0
			}
			c.mu.Unlock()
			for i := range early {
				early[i].FD.Close()
			}
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			for i := range early {
				early[i].FD.Close()
			}
			return
		}
		c.conn, c.welcome, c.instance = conn, w, w.Instance
		close(c.ready)
		c.mu.Unlock()
		// The Resync comes before any event of the new connection: those read while the
		// marks were placed (a permission event among them must still be answered), then
		// the reader's. A client with no marks missed nothing (a client the daemon closed
		// for idling with none, say): no Resync.
		if len(marks) > 0 {
			c.deliver(&Event{Resync: true})
		}
		for _, ev := range lost {
			c.deliver(&ev)
		}
		for _, ev := range early {
			if !c.deliver(&ev) {
				ev.FD.Close()
			}
		}
		c.wg.Add(1)
		go c.readLoop(conn)
		return
	}
}

// addOn places m on conn synchronously, before conn's reader runs (reconnection only): on the
// object found at m's path if it is still m's (reopen), else it fails with ErrLost. Events
// that arrive meanwhile (for marks placed a moment ago) are appended to early. An error that
// does not match ErrLost (the mark's) is the connection's.
func (c *Client) addOn(conn *proto.Conn, m *mark, early *[]Event) (uint64, error) {
	fd, err := reopen(m.path, m.kind, m.ident)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	spec := m.spec
	c.mu.Unlock()
	r, err := c.roundTrip(conn, &proto.AddMark{Req: c.nextReq.Add(1), Kind: m.kind, Mask: spec.Mask, Ignore: spec.Ignore,
		Flags: spec.Flags, Target: proto.NewFD(fd)}, early)
	if err != nil {
		if isRefusal(err) {
			return 0, fmt.Errorf("%w: %s: the daemon refused it: %w", ErrLost, m.path, err)
		}
		return 0, err
	}
	return r.ID, nil
}

// refusal is a request the daemon (or the encoder) refused, as opposed to a broken connection.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// roundTrip sends req on conn and reads until its Result, before conn's reader runs
// (reconnection only); it closes req's descriptors. Events that arrive meanwhile (for marks
// placed a moment ago) are appended to early. A refused request is a *refusal; any other
// error is the connection's.
func (c *Client) roundTrip(conn *proto.Conn, req proto.Msg, early *[]Event) (*proto.Result, error) {
	conn.SetDeadline(time.Now().Add(remarkWait))
	err := conn.WriteMsg(req)
	proto.CloseFDs(req) // sent: the daemon holds its own reference until it is done with them
	if err != nil {
		var pe *proto.Error
		if errors.As(err, &pe) {
			return nil, &refusal{toError(err)} // a bad field: not the connection's
		}
		return nil, err
	}
	for {
		msg, err := conn.ReadMsg()
		if err != nil {
			return nil, err
		}
		switch msg := msg.(type) {
		case *proto.Result:
			if msg.Req == req.RequestID() {
				if err := toError(msg.Err()); err != nil {
					return nil, &refusal{err}
				}
				return msg, nil
			}
		case *proto.Event:
			// An event for a mark placed a moment ago: keep it for after the Resync (a
			// permission event dropped here would wait for its deadline).
			ev := Event{Event: fsevent.Event(*msg), Mark: c.markOf(msg.Path, nil)}
			c.noteDeleted(&ev.Event)
			*early = append(*early, ev)
		case *proto.Overflow:
			*early = append(*early, Event{Overflow: true})
		case *proto.Fatal:
			return nil, fmt.Errorf("the daemon closed the connection: %v", msg.Err()) // retried
		}
	}
}

// errBadReply is a reply the protocol does not allow for its request (a daemon's bug).
var errBadReply = errors.New("fsnotifyd daemon: bad reply")

// requestResult is request for a request whose reply is a Result: another reply is an error
// matching errBadReply, a refusal the daemon's error (toError).
func (c *Client) requestResult(ctx context.Context, m proto.Msg) (*proto.Result, error) {
	t := m.Type()
	r, err := c.request(ctx, m)
	if err != nil {
		return nil, err
	}
	res, ok := r.(*proto.Result)
	if !ok {
		proto.CloseFDs(r)
		return nil, fmt.Errorf("%w: %s to %s, want a Result", errBadReply, r.Type(), t)
	}
	if err := toError(res.Err()); err != nil {
		return nil, err
	}
	return res, nil
}

// request sends m and waits for its reply. It closes m's descriptors (once sent, the daemon
// holds its own reference).
func (c *Client) request(ctx context.Context, m proto.Msg) (proto.Msg, error) {
	defer proto.CloseFDs(m)
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			proto.CloseFDs(m)
			return nil, ErrClosed
		}
		conn, ready := c.conn, c.ready
		if conn == nil {
			c.mu.Unlock()
			if !c.opts.Reconnect {
				proto.CloseFDs(m)
				return nil, ErrUnavailable
			}
			select {
			case <-ready:
				continue
			case <-ctx.Done():
				proto.CloseFDs(m)
				return nil, ctx.Err()
			case <-c.done: // closed while reconnecting: ready never comes
				proto.CloseFDs(m)
				return nil, ErrClosed
			}
		}
		ch := make(chan proto.Msg, 1)
		c.waiters[m.RequestID()] = ch
		c.mu.Unlock()
		if err := conn.WriteMsg(m); err != nil {
			c.mu.Lock()
			delete(c.waiters, m.RequestID())
			c.mu.Unlock()
			proto.CloseFDs(m)
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		// Not c.done: a request written before Close's goodbye gets its reply (the daemon
		// carried it out: a RespondWait's answer applied), or ch closes with the connection,
		// which shutdown ends within byeWait.
		select {
		case r, ok := <-ch:
			if !ok {
				select {
				case <-c.done:
					return nil, ErrClosed // written after the goodbye: the daemon never read it
				default:
				}
				return nil, fmt.Errorf("%w: connection lost", ErrUnavailable)
			}
			return r, nil
		case <-ctx.Done():
			select {
			case r, ok := <-ch:
				if ok { // the reply came too (Close's caller may end ctx once Close returns)
					return r, nil
				}
			default:
			}
			return nil, ctx.Err()
		}
	}
}

// AddMark watches path (opened by this process, with its own privileges) as an object of kind
// k with spec. Its events are reported once it returns. The client keeps no descriptor of the
// object: after a daemon restart it marks the object at the same path again only if it is
// still the same object (see the package doc).
func (c *Client) AddMark(ctx context.Context, path string, k engine.Kind, spec engine.MarkSpec) (MarkID, error) {
	fd, err := sys.Open(path, sys.O_PATH, 0)
	if err != nil {
		return 0, err
	}
	id, err := identify(fd)
	if err != nil {
		sys.Close(fd)
		return 0, err
	}
	abs, _ := filepath.Abs(path)
	if p, err := sys.FdPath(fd); err == nil {
		abs = p
	}
	m := &mark{path: abs, ident: id, kind: k, spec: spec}
	// request closes fd once sent: the daemon checks the client's access on it and marks its
	// object, and nothing here pins the object afterwards.
	r, err := c.requestResult(ctx, &proto.AddMark{Req: c.nextReq.Add(1), Kind: k, Mask: spec.Mask, Ignore: spec.Ignore,
		Flags: spec.Flags, Target: proto.NewFD(fd)})
	if err == nil && r.ID == 0 {
		err = fmt.Errorf("%w: the daemon placed it but gave no mark id", errBadReply)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	m.daemon = r.ID
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	for _, old := range c.marks {
		if old.daemon == m.daemon { // the same object again: one mark, as the kernel
			old.spec.Mask |= spec.Mask
			old.spec.Ignore |= spec.Ignore
			return old.id, nil
		}
	}
	c.nextMark++
	m.id = c.nextMark
	c.marks[m.id] = m
	c.marksChangedLocked()
	return m.id, nil
}

// ModifyMark sets the masks and flags of mark id to spec, replacing them (AddMark adds to
// them): a mark shrinks this way without going away. Its events are as spec says once it
// returns. The daemon is handed the object found at the mark's path again, so ModifyMark fails
// with ErrLost once the object left that path (deleted, moved or replaced; remove the mark),
// or after the mark was lost in a reconnection.
func (c *Client) ModifyMark(ctx context.Context, id MarkID, spec engine.MarkSpec) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	m := c.marks[id]
	var placed bool
	if m != nil {
		placed = m.live()
	}
	c.mu.Unlock()
	if m == nil {
		return fmt.Errorf("mark %d: %w", id, ErrNotFound)
	}
	if !placed {
		return fmt.Errorf("mark %d (%s): %w: its object was deleted, or the mark could not be placed again after a reconnection", id, m.path, ErrLost)
	}
	fd, err := reopen(m.path, m.kind, m.ident)
	if err != nil {
		return fmt.Errorf("mark %d: %w (remove the mark)", id, err)
	}
	_, err = c.requestResult(ctx, &proto.AddMark{Req: c.nextReq.Add(1), Kind: m.kind, Mask: spec.Mask, Ignore: spec.Ignore,
		Flags: spec.Flags, Replace: true, Target: proto.NewFD(fd)})
	if err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	c.mu.Lock()
	m.spec = spec // placed again so after a reconnection
	c.mu.Unlock()
	return nil
}

// RemoveMark removes a mark; no event that starts after it returns is reported through it. A
// mark lost in a reconnection (Event.Lost) is only forgotten: the daemon has none.
func (c *Client) RemoveMark(ctx context.Context, id MarkID) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	m := c.marks[id]
	delete(c.marks, id)
	c.marksChangedLocked()
	var daemonID uint64
	if m != nil {
		daemonID = m.daemon
	}
	c.mu.Unlock()
	if m == nil {
		return fmt.Errorf("mark %d: %w", id, ErrNotFound)
	}
	if daemonID == 0 {
		return nil
	}
	_, err := c.requestResult(ctx, &proto.RemoveMark{Req: c.nextReq.Add(1), By: proto.RemoveByID, MarkID: daemonID})
	return err
}

// Marks returns the paths of the client's marks.
func (c *Client) Marks() map[MarkID]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[MarkID]string, len(c.marks))
	for id, m := range c.marks {
		out[id] = m.path
	}
	return out
}

// liveConn returns the current connection for a one-way message: ErrClosed after Close,
// ErrUnavailable while reconnecting.
func (c *Client) liveConn() (*proto.Conn, error) {
	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if conn == nil {
		return nil, ErrUnavailable
	}
	return conn, nil
}

// Respond answers a permission event. It does not wait for the daemon: a refused answer
// (unknown id, past its deadline) is logged. Use RespondWait to learn the outcome.
//
// Every answer is a verdict: a deny with an errno is a plain deny (EPERM) unless the client is
// pre-content and the errno one of engine.DenyErrnos (the daemon decides); an answer that is
// no verdict at all (an unknown verdict, an errno with allow) is sent as a deny, and Respond
// returns an error matching ErrInvalid.
func (c *Client) Respond(id uint64, r engine.Response) error {
	conn, err := c.liveConn()
	if err != nil {
		return err
	}
	m, valid := proto.NewRespond(0, id, r.Verdict, r.Errno, c.cacheOn(conn, r.Cache))
	if ring := c.ring.Load(); ring != nil && ring.Answer(m) {
		return invalidAnswer(valid, r)
	}
	// No ring, or its answer slots are full (the daemon takes them on its loop): the socket.
	if err := conn.WriteMsg(m); err != nil {
		return err
	}
	return invalidAnswer(valid, r)
}

// RespondWait answers a permission event as Respond does and waits for the daemon's
// acknowledgement; ErrNotFound means it was answered already or its deadline passed. Racing
// Close, it still reports the daemon's acknowledgement if its answer went out before Close's
// goodbye (Close waits for it); ErrClosed then means the answer never reached the daemon,
// and the close verdict applied. (Only a daemon that does not reply to the goodbye within
// byeWait leaves the outcome unknown: ErrClosed or ErrUnavailable.)
func (c *Client) RespondWait(ctx context.Context, id uint64, r engine.Response) error {
	if r.Cache {
		// The connection it goes on is request's: an event of this one is pending on no other
		// (a reconnection makes a new group), so an answer written on another caches nothing.
		conn, err := c.liveConn()
		r.Cache = err == nil && c.cacheOn(conn, true)
	}
	m, valid := proto.NewRespond(c.nextReq.Add(1), id, r.Verdict, r.Errno, r.Cache)
	if _, err := c.requestResult(ctx, m); err != nil {
		return err
	}
	return invalidAnswer(valid, r)
}

// cacheOn is the Cache bit of an answer on conn: cache, unless Options.CacheOnlyIfFlushable
// and conn's daemon cannot withdraw it (protocol version 6).
func (c *Client) cacheOn(conn *proto.Conn, cache bool) bool {
	return cache && (!c.opts.CacheOnlyIfFlushable || conn.Version() >= proto.VersionFlush)
}

// ErrFlushUnsupported: the daemon speaks a protocol version without FlushCache (before 6).
var ErrFlushUnsupported = errors.New("fsnotifyd daemon: too old to withdraw cached allows (protocol version 6)")

// FlushCache has the daemon withdraw every allow cached in its kernel groups (this client's
// answers with Cache among them) and returns once they are gone: no access after it returns
// is skipped on an allow cached before it was called, and no answer to an event the daemon had
// sent before is cached (it still applies). For permission clients (another is refused with
// ErrPermission); ErrFlushUnsupported from a daemon of protocol version 5 or older (see
// Options.CacheOnlyIfFlushable); ErrUnavailable while the client is reconnecting (a
// reconnection places the marks again, and a permission mark placed withdraws every cached
// allow of the daemon before it is in place: docs/security.md, invariant 6).
func (c *Client) FlushCache(ctx context.Context) error {
	conn, err := c.liveConn()
	if err != nil {
		return err
	}
	if conn.Version() < proto.VersionFlush {
		return ErrFlushUnsupported
	}
	_, err = c.requestResult(ctx, &proto.FlushCache{Req: c.nextReq.Add(1)})
	return err
}

// invalidAnswer is the error for an answer that was no verdict (and went as a deny).
func invalidAnswer(valid bool, r engine.Response) error {
	if valid {
		return nil
	}
	return &Error{Code: fsevent.CodeInvalid, Msg: fmt.Sprintf("answer %+v is no verdict (allow, or deny with an optional errno): sent a deny", r)}
}

// Stats asks the daemon for its figures (all clients' if all and the client is privileged).
func (c *Client) Stats(ctx context.Context, all bool) (*fsevent.Stats, error) {
	r, err := c.request(ctx, &proto.StatsRequest{Req: c.nextReq.Add(1), AllClients: all})
	if err != nil {
		return nil, err
	}
	switch m := r.(type) {
	case *proto.Stats:
		return &fsevent.Stats{Daemon: m.Daemon, Clients: m.Clients, Truncated: m.Truncated}, nil
	case *proto.Result:
		if err := toError(m.Err()); err != nil {
			return nil, err
		}
	}
	proto.CloseFDs(r)
	return nil, fmt.Errorf("%w: %s to StatsRequest, want Stats", errBadReply, r.Type())
}

// Ping waits until the daemon has handled every earlier request.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.request(ctx, &proto.Ping{Req: c.nextReq.Add(1)})
	return err
}

// Close says goodbye and waits until the daemon has ended the session — answered this
// client's pending permission events with its close verdict, removed its marks, replied to
// the requests in flight (a RespondWait, say) and closed the connection — waiting at most
// byeWait (1 s) for a daemon that does not; then it closes Events and waits for the client's
// goroutines. Once it returns, no access is decided by this client: none waits for it, none
// gets its close verdict. It is idempotent, and waits for all that whoever closed the client
// first.
//
// It returns an error matching ErrByeUnanswered when the daemon did not end the session
// within byeWait (the connection is then closed, and the daemon gives this client's pending
// events its close verdict when it runs again), nil otherwise.
func (c *Client) Close() error {
	c.shutdown()
	<-c.closer
	c.mu.Lock()
	cut := c.byeCut
	c.mu.Unlock()
	if cut {
		return fmt.Errorf("%w within %v (stopped or stuck?): closed the connection; it gives this client's pending events their close verdict when it runs again", ErrByeUnanswered, byeWait)
	}
	return nil
}

// remarkWait bounds each round trip of a reconnection's placing the marks again (roundTrip):
// a daemon that does not answer within it is stopped or stuck, and the attempt is given up
// (another follows, with backoff).
const remarkWait = 30 * time.Second

// byeWait bounds how long Close waits for the replies to the requests in flight: the daemon
// handles a Bye in microseconds; one that does not within this is stopped or stuck.
const byeWait = time.Second

// shutdown ends the client without waiting for it: it says goodbye and tells every goroutine
// to return (done). The closer does the rest. It leaves the connection to the reader: the
// daemon closes the session's group (its pending events answered, its marks removed), replies
// to every request written before the Bye, then to the Bye, then closes its end, which ends
// the reader, which closes the waiters left; a timer closes it after byeWait if the daemon
// does not (a stopped daemon cannot hold Close). (Until 2026-12-06, without requests in
// flight it closed the connection at once: the daemon could then still give the closing
// session an access that came after Close returned, and its close verdict with it —
// TestCloseEndsTheSessionFirst.)
func (c *Client) shutdown() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true // no request registers a waiter after this
	conn := c.conn
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	if conn == nil {
		return
	}
	// The timer first: the reader may end as soon as the Bye is out, and the closer stops
	// the timer once the reader has returned.
	t := time.AfterFunc(byeWait, func() { conn.Close() })
	c.mu.Lock()
	c.byeTimer = t
	c.mu.Unlock()
	if err := conn.WriteMsg(&proto.Bye{Req: c.nextReq.Add(1)}); err != nil {
		conn.Close()
	}
}

// close is the closer: once the client is shut down (Close, or a connection lost without
// Reconnect) and its other goroutines have returned, it releases what they held — the
// descriptors of events never delivered — and closes Events.
func (c *Client) close() {
	defer close(c.closer)
	<-c.done
	c.wg.Wait()
	c.mu.Lock()
	if c.byeTimer != nil && !c.byeTimer.Stop() { // the reader returned: the connection is closed
		c.byeCut = true // by the timer: the daemon did not
	}
	c.marks = nil
	c.marksChangedLocked()
	c.mu.Unlock()
	c.qmu.Lock()
	c.q.Drain(func(ev *Event) { ev.FD.Close() })
	c.qmu.Unlock()
	close(c.events)
}

// IsUnavailable reports whether err means no daemon answered.
func IsUnavailable(err error) bool {
	var ne *net.OpError
	return errors.Is(err, ErrUnavailable) || errors.As(err, &ne)
}
