//go:build linux

package source

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

// embedded is a backend and an engine group in this process.
type embedded struct {
	b     *backend.Backend
	dropB func() // drops b (closes it, or a shared reference), or nil
	g     *engine.Group
	opts  Options
	buf   []engine.Delivery // ReadBatch's (one reader at a time)
	// inl is the event offered to Options.Inline, rewritten for each: the group's Handler
	// (inline) runs on the backend's loop only — the FD group's reader notifies there, and
	// walks resumed by an answer continue there (engine.Config.Executor) — so one call at a
	// time, and Inline keeps no pointer to it (docs/security.md, "the embedded source's
	// inline event").
	inl Event

	closeOnce sync.Once
	// stopAhead withdraws the offer to answer ahead (backend.AnswerAhead), if made.
	stopAhead func()

	mu    sync.Mutex
	marks map[engine.Object]*Mark
}

func openEmbedded(opts Options) (*embedded, error) {
	s := &embedded{b: opts.Backend, dropB: opts.Release, opts: opts, marks: map[engine.Object]*Mark{}}
	if s.b == nil {
		b, err := backend.New(backend.Options{Mode: backend.ModeAuto, Exe: opts.Exe, Logger: opts.Logger, Prune: opts.Prune})
		if err != nil {
			return nil, err
		}
		s.b, s.dropB = b, func() { b.Close() }
	}
	if opts.Class != engine.ClassNotification && !s.b.Privileged() {
		s.drop()
		return nil, ErrNeedsPrivilege
	}
	gopts := engine.Options{Name: opts.Name, Class: opts.Class, QueueLimit: opts.QueueLimit,
		Deadline: opts.Deadline, DeadlineVerdict: opts.DeadlineVerdict, CloseVerdict: opts.CloseVerdict,
		MergeLast: opts.MergeLast}
	if opts.Inline != nil {
		gopts.Handler = s.inlineHandler()
	}
	g, err := s.b.Engine().NewGroup(gopts)
	if err != nil {
		s.drop()
		return nil, err
	}
	s.g = g
	if opts.Inline != nil && opts.InlineTable != nil {
		// The table's Allows answer ahead while this group is the backend's only permission
		// group: one backend offer at a time (another source's group on a shared backend
		// answers as before).
		s.stopAhead, _ = s.b.AnswerAhead(g, opts.InlineTable.allowsAhead)
	}
	return s, nil
}

func (s *embedded) drop() {
	if s.dropB != nil {
		s.dropB()
		s.dropB = nil
	}
}

// inlineHandler returns the group's Handler: it offers the event to Options.Inline on the
// kernel reader. The delivery has no id and is not ours to release. A function literal, not
// the method value of a method (whose generated wrapper would receive the Response through
// memory and return it again), with the Response built in its return statement from
// Inline's Answer (see Answer).
//
// Options.InlineTable comes first: an event its kind decides is answered from one load of the
// table's word, without its record, its place or Inline's Request being built (RecordTo,
// place.set and notify's Request.init write some 800 bytes per event, of which an allow-all
// guard reads the mask), and without a call: the closure's context and the table's line are
// all it touches. Not inlined into openEmbedded: the compiler's copy of a function literal
// inlined with its enclosing function does not inline the table's take (a call per event).
//
//go:noinline
func (s *embedded) inlineHandler() func(d engine.Delivery) (engine.Response, bool) {
	tab := s.opts.InlineTable
	if tab == nil {
		tab = &noTable
	}
	return func(d engine.Delivery) (engine.Response, bool) {
		if d.Event.AllowedAhead {
			// Answered Allow already, by the table (allowsAhead): counted as that Allow,
			// whatever the table says now.
			tab.n[0].Add(1)
			return engine.Response{Verdict: engine.Allow}, true
		}
		if v := tab.take(d.Mask); v&entrySet != 0 {
			return engine.Response{Verdict: engine.Verdict(v >> 1 & 1), Errno: errnoOf(v), Cache: v&entryCache != 0}, true
		}
		// Built in place and passed by pointer: the event is ~400 bytes, and this runs for
		// every permission event. Every field is written (RecordTo and set write all of theirs).
		e := &s.inl
		backend.RecordTo(&e.Event, d, false)
		e.Resync, e.Lost = false, nil
		e.place.set(d.Event)
		e.src, e.eng, e.held, e.inl = s, d.Event, false, false
		a, tag, ok := s.opts.Inline(e)
		if ok && s.opts.Answered != nil {
			s.opts.Answered(tag, nil)
		}
		return engine.Response{Verdict: a.Verdict, Errno: a.Errno, Cache: a.Cache}, ok
	}
}

func (s *embedded) AddMark(ctx context.Context, path string, k engine.Kind, spec engine.MarkSpec) (*Mark, error) {
	t, err := s.b.Resolve(path, k, false)
	if err != nil {
		return nil, err
	}
	if err := s.b.AddMark(s.g, t, fitSpec(k, t.IsDir, spec)); err != nil {
		return nil, &MarkError{err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.marks[t.Object]
	if m == nil {
		m = &Mark{Kind: k, Path: t.Path, IsDir: t.IsDir, ID: t.Object.ID, obj: t.Object}
		s.marks[t.Object] = m
	}
	return m, nil
}

func (s *embedded) ModifyMark(ctx context.Context, m *Mark, spec engine.MarkSpec) error {
	return s.g.ModifyMark(m.obj, fitSpec(m.Kind, m.IsDir, spec))
}

func (s *embedded) RemoveMark(ctx context.Context, m *Mark) error {
	s.mu.Lock()
	if s.marks[m.obj] == m {
		delete(s.marks, m.obj)
	}
	s.mu.Unlock()
	return s.g.RemoveMark(m.obj)
}

func (s *embedded) ReadBatch(ctx context.Context, dst []Event) (int, error) {
	if len(s.buf) < len(dst) {
		s.buf = make([]engine.Delivery, len(dst))
	}
	n, err := s.g.ReadBatch(ctx, s.buf[:len(dst)])
	if errors.Is(err, engine.ErrClosed) {
		err = ErrClosed
	}
	for i := range s.buf[:n] {
		d := s.buf[i]
		s.buf[i] = engine.Delivery{}
		if d.Event == nil {
			dst[i] = Event{Event: overflowRecord()}
			continue
		}
		perm := d.ID != 0
		// A notification's path is resolved now (its descriptor goes with the delivery);
		// a permission event's only if the consumer asks (GetPath).
		dst[i] = Event{Event: backend.Record(d, !perm), place: placeOf(d.Event)}
		if perm {
			dst[i].src, dst[i].eng, dst[i].held = s, d.Event, true
		} else {
			d.Release()
		}
	}
	return n, err
}

func (s *embedded) respond(ctx context.Context, e *Event, r engine.Response) error {
	err := s.g.Respond(e.ID, r)
	if errors.Is(err, engine.ErrNoSuchEvent) {
		return ErrTooLate
	}
	return err
}

func (s *embedded) release(e *Event) {
	if e.held {
		e.eng.Release()
		e.held = false
	}
}

// fder is implemented by the backend's permission-event payload.
type fder interface{ Fd() int }

func (s *embedded) fd(e *Event) int {
	if p, ok := e.eng.Payload.(fder); ok {
		return p.Fd()
	}
	return -1
}

func (s *embedded) path(e *Event) string { return e.eng.GetPath() }

func (s *embedded) Exempt(pid int) (func(), error) { return s.b.Exemptions().Add(pid) }
func (s *embedded) Spawning() func()               { return s.b.Spawning() }
func (s *embedded) FlushCache() error              { s.b.FlushVerdictCache(); return nil }
func (s *embedded) CacheFlushable() bool           { return true }
func (s *embedded) EventFiles() bool               { return true }
func (s *embedded) Deadline() time.Duration        { return s.opts.Deadline }
func (s *embedded) Stats() engine.GroupStats       { return s.g.Stats() }

// Group returns the source's engine group, and Backend its backend (for tests).
func (s *embedded) Group() *engine.Group      { return s.g }
func (s *embedded) Backend() *backend.Backend { return s.b }

func (s *embedded) Close() error {
	s.closeOnce.Do(func() {
		if s.stopAhead != nil {
			s.stopAhead()
		}
		s.g.Close() // answers the pending permission events; ReadBatch returns
		s.drop()
	})
	return nil
}
