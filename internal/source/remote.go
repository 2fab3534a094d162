//go:build linux

package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// remote runs through the daemon. A notification source reads the client's Events; a
// permission source takes the client's events on the connection's reader (client's Handler),
// offers them to Inline there and queues the rest for ReadBatch, without limit (a full queue
// would answer for the listener).
type remote struct {
	cl      *client.Client
	opts    Options
	exempts *backend.Exemptions // this process and its helpers (the daemon exempts only itself)
	socket  string

	mu    sync.Mutex
	marks map[client.MarkID]*Mark

	qmu    sync.Mutex
	q      []Event       // permission sources: events for ReadBatch
	qwake  chan struct{} // capacity 1: q grew
	closed chan struct{} // closed by Close
	once   sync.Once

	// inlEv is the event offered to Options.Inline: handle runs one call at a time
	// (client.Options.Handler), and Inline keeps no pointer to it.
	inlEv Event
	// flushable: the connection's daemon speaks protocol version 6 (FlushCache), read at
	// Dial and at each reconnection (its Resync); CacheFlushable, on every answer, loads it.
	flushable atomic.Bool
}

func openRemote(ctx context.Context, opts Options) (*remote, error) {
	s := &remote{opts: opts, exempts: backend.NewExemptions(), socket: opts.Daemon,
		marks: map[client.MarkID]*Mark{}, qwake: make(chan struct{}, 1), closed: make(chan struct{})}
	copts := client.Options{Socket: opts.Daemon, Name: opts.Name, Class: opts.Class, QueueLimit: opts.QueueLimit,
		Deadline: opts.Deadline, DeadlineVerdict: opts.DeadlineVerdict, CloseVerdict: opts.CloseVerdict,
		WantEventFDs: opts.EventFDs, WantComm: opts.WantComm, Reconnect: true, Buffer: opts.Buffer,
		NoPaths: opts.NoPaths, OnDisconnected: opts.OnDisconnected,
		// An answer's Cache only where FlushCache can take it back (protocol version 6).
		CacheOnlyIfFlushable: true,
		// A permission client's events and answers go through the shared-memory ring
		// (docs/protocol.md, "The permission ring"; its invariant: docs/security.md) when the
		// daemon grants it (not with event fds), else through the socket as before.
		Ring: true}
	if opts.QueueLimit > 0 {
		// QueueLimit bounds the events queued for ReadBatch here as embedded: the client's
		// own queue (between the socket and Events) is bounded alike, and overflows in band.
		copts.Queue = opts.QueueLimit
	}
	if opts.Class != engine.ClassNotification {
		copts.Handler = s.handle
	}
	cl, err := client.Dial(ctx, copts)
	if err != nil {
		return nil, err
	}
	s.cl = cl
	s.flushable.Store(cl.Welcome().Version >= proto.VersionFlush)
	return s, nil
}

// handle takes one of a permission source's events, on the connection's reader: it must not
// wait for the daemon (client.Options.Handler).
func (s *remote) handle(cev client.Event) {
	if cev.Resync {
		s.flushable.Store(s.cl.Welcome().Version >= proto.VersionFlush)
		if s.opts.OnResync != nil {
			s.opts.OnResync()
		}
	}
	ev := s.event(cev)
	if ev.ID == 0 {
		s.push(ev) // a notice, or a notification
		return
	}
	if s.exempts.Exempt(ev.Pid) {
		s.cl.Respond(ev.ID, engine.Response{})
		ev.FD.Close()
		return
	}
	if s.opts.Inline != nil {
		ev.inl = true
		s.inlEv = ev // &ev would escape: an allocation per event
		a, tag, ok := s.opts.Inline(&s.inlEv)
		s.inlEv = Event{} // holds nothing of it afterwards
		if ok {
			// Respond does not wait for the daemon's acknowledgement: a decision this quick is
			// in time unless the deadline is shorter than the trip to the daemon.
			err := s.cl.Respond(ev.ID, a.response())
			ev.FD.Close()
			if s.opts.Answered != nil {
				s.opts.Answered(tag, err)
			}
			return
		}
		ev.inl = false
	}
	s.push(ev)
}

// event is the source's Event for a client event.
func (s *remote) event(cev client.Event) Event {
	switch {
	case cev.Overflow:
		return Event{Event: overflowRecord()}
	case cev.Resync:
		return Event{Event: overflowRecord(), Resync: true}
	}
	ev := Event{Event: cev.Event, Lost: cev.Lost}
	if ev.ID != 0 {
		ev.src = s
	}
	return ev
}

func (s *remote) push(ev Event) {
	s.qmu.Lock()
	select {
	case <-s.closed:
		s.qmu.Unlock()
		ev.FD.Close() // the daemon answers it with the close verdict
		return
	default:
	}
	s.q = append(s.q, ev)
	s.qmu.Unlock()
	select {
	case s.qwake <- struct{}{}:
	default:
	}
}

func (s *remote) ReadBatch(ctx context.Context, dst []Event) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if s.opts.Class == engine.ClassNotification {
		return s.readEvents(ctx, dst)
	}
	for {
		s.qmu.Lock()
		n := copy(dst, s.q)
		clear(s.q[:n])
		s.q = s.q[n:]
		if len(s.q) == 0 {
			s.q = nil
		}
		s.qmu.Unlock()
		if n > 0 {
			return n, nil
		}
		select {
		case <-s.qwake:
		case <-s.closed:
			return 0, ErrClosed
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// readEvents is ReadBatch from the client's Events: it waits for one, then takes whatever
// else is ready.
func (s *remote) readEvents(ctx context.Context, dst []Event) (int, error) {
	var cev client.Event
	var ok bool
	select {
	case cev, ok = <-s.cl.Events():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if !ok {
		return 0, s.lost()
	}
	dst[0] = s.event(cev)
	n := 1
	for n < len(dst) {
		select {
		case cev, ok = <-s.cl.Events():
			if !ok {
				return n, nil
			}
			dst[n] = s.event(cev)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// lost is ReadBatch's error once the client's Events closed.
func (s *remote) lost() error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
		return errors.New("the daemon closed the connection")
	}
}

func (s *remote) AddMark(ctx context.Context, path string, k engine.Kind, spec engine.MarkSpec) (*Mark, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var id engine.ID
	if k == engine.KindInode || k == engine.KindSubtree {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			id = engine.ID{Hi: sys.Dev, Lo: sys.Ino}
		}
	}
	mid, err := s.cl.AddMark(ctx, path, k, fitSpec(k, st.IsDir(), spec))
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(path)
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real // as the daemon reports paths
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.marks[mid]
	if m == nil {
		m = &Mark{Kind: k, Path: abs, IsDir: st.IsDir(), ID: id, remote: mid}
		s.marks[mid] = m
	}
	return m, nil
}

func (s *remote) ModifyMark(ctx context.Context, m *Mark, spec engine.MarkSpec) error {
	return s.cl.ModifyMark(ctx, m.remote, fitSpec(m.Kind, m.IsDir, spec))
}

func (s *remote) RemoveMark(ctx context.Context, m *Mark) error {
	s.mu.Lock()
	if s.marks[m.remote] == m {
		delete(s.marks, m.remote)
	}
	s.mu.Unlock()
	return s.cl.RemoveMark(ctx, m.remote)
}

// respond answers a permission event read with ReadBatch, and waits for the daemon's
// acknowledgement to learn whether it was in time; an event offered to Inline is answered
// without waiting (the connection's reader must not).
func (s *remote) respond(ctx context.Context, e *Event, r engine.Response) error {
	if e.inl {
		return s.cl.Respond(e.ID, r)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.cl.RespondWait(ctx, e.ID, r)
	if errors.Is(err, client.ErrNotFound) {
		return ErrTooLate
	}
	return err
}

func (s *remote) release(e *Event)     { e.FD.Close() }
func (s *remote) fd(e *Event) int      { return e.FD.Int() }
func (s *remote) path(e *Event) string { return e.Path }

// Exempt exempts pid, a helper of this process, when the daemon's pid namespace is this
// process's: its events name processes by their pids there, which would otherwise be other
// processes'. Welcome.PID is this process as the daemon sees it, Welcome.DaemonPID the daemon
// as this process sees it (the kernel's, 0 if it cannot). A process sees another's pid only
// if the other's namespace is its own or one below it, so both together mean the same
// namespace; the daemon's word alone could be a coincidence of numbers across namespaces.
func (s *remote) Exempt(pid int) (func(), error) {
	if w := s.cl.Welcome(); w.PID != int32(os.Getpid()) || w.DaemonPID == 0 {
		return func() {}, fmt.Errorf("exempting process %d through the daemon at %s: the daemon runs in another pid namespace (it sees this process as pid %d, not %d; this process sees the daemon as pid %d, 0: not at all), so its events cannot be told apart by pid; run in the daemon's pid namespace, or embedded",
			pid, s.socket, w.PID, os.Getpid(), w.DaemonPID)
	}
	return s.exempts.Add(pid)
}

func (s *remote) Spawning() func()         { return s.exempts.Spawning() }
func (s *remote) Deadline() time.Duration  { return s.cl.Welcome().Deadline }
func (s *remote) Stats() engine.GroupStats { return engine.GroupStats{} }
func (s *remote) CacheFlushable() bool     { return s.flushable.Load() }
func (s *remote) EventFiles() bool         { return s.cl.Welcome().EventFDs }

// FlushCache has the daemon withdraw its cached allows (client.FlushCache). A daemon of
// protocol version 5 or older was never sent a Cache (CacheOnlyIfFlushable): nothing to do.
// While the client reconnects, nothing either: its marks are placed again, and a permission
// mark placed flushes the daemon's cached allows before it is in place (and its new
// connection's version decides whether Cache is sent again). After Close, nothing: the
// source decides no more access (a reload's second flush may come after it).
func (s *remote) FlushCache() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.cl.FlushCache(ctx)
	if errors.Is(err, client.ErrFlushUnsupported) || errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrClosed) {
		return nil
	}
	return err
}

// Welcome returns what the daemon granted (for tests).
func (s *remote) Welcome() client.Welcome { return s.cl.Welcome() }

func (s *remote) Close() error {
	var err error
	s.once.Do(func() {
		s.qmu.Lock()
		close(s.closed)
		q := s.q
		s.q = nil
		s.qmu.Unlock()
		// The daemon answers the client's pending events with its close verdict; Close waits
		// for the connection's reader (and so for Inline and OnResync).
		err = s.cl.Close() // a daemon that did not end the session: client.ErrByeUnanswered
		for i := range q {
			q[i].FD.Close()
		}
	})
	return err
}
