//go:build linux

package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

// WithDaemon makes the Watcher run through a running fsnotifyd daemon (fsnotifyd serve) on
// socket ("" for client.DefaultSocket) instead of in this process: it needs no privilege of
// its own for recursive watches without the mkdir race (the daemon's fanotify), and it
// survives daemon restarts (an Overflow event then says events may have been missed).
// Events carry paths below what the Watcher added, as the daemon reports them.
func WithDaemon(socket string) Option {
	return func(c *watcherConfig) {
		if socket == "" {
			socket = client.DefaultSocket
		}
		c.daemon = socket
	}
}

// daemonWatch is a watch placed through the daemon.
type daemonWatch struct {
	name  string // as added, cleaned
	abs   string
	kind  engine.Kind
	isDir bool
	ops   Op
	mark  client.MarkID
}

func newDaemonWatcher(c watcherConfig) (*Watcher, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Socket: c.daemon, Name: "notify.Watcher", QueueLimit: c.queue,
		WantComm: true, Reconnect: true})
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		Events:  make(chan Event, c.buffer),
		Errors:  make(chan error, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		watches: map[string]*watch{},
		cl:      cl,
		dw:      map[string]*daemonWatch{},
	}
	go w.runDaemon()
	return w, nil
}

// addDaemon is AddWith through the daemon.
func (w *Watcher) addDaemon(name, abs string, kind engine.Kind, ops Op) error {
	st, err := os.Stat(abs)
	if err != nil {
		return err
	}
	mask := engineMask(ops) | engine.OnDir
	switch {
	case kind == engine.KindInode && st.IsDir():
		mask |= engine.EventOnChild | engine.DeleteSelf | engine.MoveSelf
	case kind == engine.KindInode:
		mask |= engine.DeleteSelf | engine.MoveSelf
		mask &^= engine.DirentEvents | engine.OnDir | engine.EventOnChild
	case kind == engine.KindMount:
		mask &^= engine.OnDir
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if old := w.dw[name]; old != nil {
		if ops&^old.ops == 0 && old.kind == kind {
			w.mu.Unlock()
			return nil
		}
		ops |= old.ops
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := w.cl.AddMark(ctx, abs, kind, engine.MarkSpec{Mask: mask})
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dw[name] = &daemonWatch{name: name, abs: abs, kind: kind, isDir: st.IsDir(), ops: ops, mark: id}
	return nil
}

func (w *Watcher) removeDaemon(name, path string) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	dw := w.dw[name]
	delete(w.dw, name)
	w.mu.Unlock()
	if dw == nil {
		return fmt.Errorf("%w: %s", ErrNonExistentWatch, path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.cl.RemoveMark(ctx, dw.mark); err != nil && !errors.Is(err, client.ErrNotFound) {
		return err
	}
	return nil
}

// runDaemon converts the daemon's events until Close.
func (w *Watcher) runDaemon() {
	defer func() {
		close(w.Events)
		close(w.Errors)
		close(w.exited)
	}()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.cl.Events():
			if !ok {
				return
			}
			ev.FD.Close()
			if ev.Overflow || ev.Resync {
				if !w.send(Event{Op: Overflow}) {
					return
				}
				continue
			}
			for _, e := range w.convertDaemon(ev) {
				if !w.send(e) {
					return
				}
			}
		}
	}
}

// convertDaemon maps a daemon event onto the watches by path.
func (w *Watcher) convertDaemon(ev client.Event) []Event {
	m := ev.Mask &^ engine.Rename
	ops := opsOf(m)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	base := Event{Pid: int(ev.Pid), Comm: ev.Comm, IsDir: m&engine.OnDir != 0, PathUnknown: ev.PathUnknown}
	var out []Event
	if ops != 0 && ev.PathUnknown {
		// The daemon sent it because one of our marks may contain it; which one, nobody can
		// tell: report it once, for the operations any watch asked for.
		var allowed Op
		for _, dw := range w.dw {
			allowed |= ops & dw.ops
		}
		if allowed != 0 {
			e := base
			e.Op = allowed
			out = append(out, e)
		}
	} else if ops != 0 {
		if name, allowed := w.daemonNameLocked(ev.Path, m&engine.DirentEvents == 0, ops); allowed != 0 {
			e := base
			e.Name, e.Op = name, allowed
			if allowed.Has(Create) && m&engine.MovedTo != 0 && ev.OldPath != "" {
				e.OldName, _ = w.daemonNameLocked(ev.OldPath, false, Create|Remove|Rename|Write|Chmod)
			}
			out = append(out, e)
		}
	}
	if m&(engine.DeleteSelf|engine.MoveSelf) != 0 {
		for name, dw := range w.dw {
			if dw.abs != ev.Path || dw.kind == engine.KindMount || dw.kind == engine.KindFilesystem {
				continue
			}
			var op Op
			if m&engine.DeleteSelf != 0 && dw.ops.Has(Remove) {
				op |= Remove
			}
			if m&engine.MoveSelf != 0 && dw.ops.Has(Rename) {
				op |= Rename
			}
			if op != 0 {
				e := base
				e.Name, e.Op = dw.name, op
				out = append(out, e)
			}
			delete(w.dw, name)
			go w.cl.RemoveMark(context.Background(), dw.mark)
		}
	}
	return out
}

// daemonNameLocked finds the watch covering path (its own, its directory's, a tree's, a
// mount's or a filesystem's) and returns path in that watch's form and the operations the
// covering watches asked for.
func (w *Watcher) daemonNameLocked(path string, self bool, ops Op) (string, Op) {
	var (
		best    *daemonWatch
		rank    int
		name    string
		allowed Op
	)
	dir := filepath.Dir(path)
	for _, dw := range w.dw {
		r, n := -1, ""
		switch dw.kind {
		case engine.KindInode:
			switch {
			case self && dw.abs == path:
				r, n = 0, dw.name
			case dw.isDir && dw.abs == dir:
				r, n = 1, filepath.Join(dw.name, filepath.Base(path))
			}
		case engine.KindSubtree:
			if path == dw.abs {
				r, n = 2, dw.name
			} else if rest, ok := strings.CutPrefix(path, strings.TrimSuffix(dw.abs, "/")+"/"); ok {
				r, n = 2, filepath.Join(dw.name, rest)
			}
		default:
			r, n = 3, path
		}
		if r < 0 || ops&dw.ops == 0 {
			continue
		}
		allowed |= ops & dw.ops
		if best == nil || r < rank || (r == rank && len(dw.abs) > len(best.abs)) {
			best, rank, name = dw, r, n
		}
	}
	return name, allowed
}

// newDaemonGuard connects a Guard to the daemon as a permission client and places its marks.
func newDaemonGuard(gd *Guard, socket string) error {
	cfg := gd.cfg
	class := engine.ClassContent
	if cfg.Events&AccessPreAccess != 0 {
		class = engine.ClassPreContent
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Events arrive on the connection's reading goroutine (client.Options.Handler): inline
	// decisions are answered there, without a hand-off; handlers run on their own goroutines.
	var remote atomic.Pointer[client.Client]
	name := cfg.Name
	if name == "" {
		name = "notify.Guard"
	}
	cl, err := client.Dial(ctx, client.Options{Socket: socket, Name: name, Class: class,
		// Unlimited, as embedded: a full queue would answer for the Guard (permission clients
		// are privileged, so the daemon grants it).
		QueueLimit: -1,
		Deadline:   cfg.Deadline, DeadlineVerdict: cfg.OnTimeout.engineVerdict(), CloseVerdict: cfg.OnClose.engineVerdict(),
		WantEventFDs: true, Reconnect: true,
		Handler: func(ev client.Event) { gd.onRemoteEvent(remote.Load(), ev) }})
	if err != nil {
		return err
	}
	remote.Store(cl) // before the first mark: no event can come sooner
	mask := cfg.Events.mask()
	if mask&engine.PreAccess == 0 {
		mask |= engine.OnDir
	}
	add := func(p string, k engine.Kind) error {
		if k == engine.KindSubtree {
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				k = engine.KindInode
			}
		}
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cl.AddMark(actx, p, k, engine.MarkSpec{Mask: mask}); err != nil {
			return fmt.Errorf("guard %s: %w", p, err)
		}
		return nil
	}
	for _, list := range []struct {
		paths []string
		k     engine.Kind
	}{{cfg.Paths, engine.KindSubtree}, {cfg.Mounts, engine.KindMount}, {cfg.Filesystems, engine.KindFilesystem}} {
		for _, p := range list.paths {
			if err := add(p, list.k); err != nil {
				cl.Close()
				return err
			}
		}
	}
	gd.cl = cl
	return nil
}

// onRemoteEvent takes one of the daemon's events, on the connection's reading goroutine: it
// must not wait for the daemon (see client.Options.Handler), so a handler's decision, and the
// wait for a free handler slot, happen on a goroutine of their own.
func (gd *Guard) onRemoteEvent(cl *client.Client, ev client.Event) {
	if ev.Resync && gd.cfg.OnResync != nil {
		gd.cfg.OnResync()
	}
	if ev.ID == 0 || cl == nil || gd.ctx.Err() != nil {
		ev.FD.Close() // a resync or overflow notice; or closing: Close answers the rest
		return
	}
	if gd.exempts.Exempt(ev.Pid) {
		cl.Respond(ev.ID, engine.Response{})
		ev.FD.Close()
		return
	}
	r := gd.remoteRequest(ev)
	if gd.cfg.Inline != nil {
		if v, ok := gd.callInline(r); ok {
			// Respond does not wait for the daemon's acknowledgement: a decision this quick
			// is in time unless the deadline is shorter than the trip to the daemon.
			v, resp := gd.answer(v)
			err := cl.Respond(ev.ID, resp)
			ev.FD.Close()
			if err == nil {
				gd.record(r, v, "inline")
			} else {
				gd.record(r, gd.cfg.OnClose, "closed")
			}
			return
		}
	}
	gd.wg.Add(1) // Close waits for this goroutine (Client.Close first waits for us)
	go gd.decideRemote(cl, ev, r)
}

// remotePayload stands for the kernel payload of a daemon event: its fd (if the daemon sent
// one) and path.
type remotePayload struct {
	fd   int
	path string
}

func (p *remotePayload) Release()     {}
func (p *remotePayload) Fd() int      { return p.fd }
func (p *remotePayload) Path() string { return p.path }

// remoteRequest is the Request for a daemon event.
func (gd *Guard) remoteRequest(ev client.Event) *Request {
	// ev.Path is "" when the daemon could not read it (PathUnknown) — and also from a daemon
	// speaking protocol version 1, which has no other way to say so: either way the
	// Request's path is unknown.
	eev := &engine.Event{Mask: ev.Mask, Pid: ev.Pid, Tid: ev.Tid, Path: ev.Path, Comm: ev.Comm, Time: ev.Time,
		Range: ev.Range, Payload: &remotePayload{fd: ev.FD.Int(), path: ev.Path}}
	if ev.HasObject {
		eev.Inode = engine.ID{Hi: ev.Dev, Lo: ev.Ino}
	}
	r := newRequest(eev, ev.Mask)
	if ev.HasUID {
		r.uidOnce.Do(func() { r.uid = int(ev.UID) })
	}
	if ev.Comm != "" {
		r.commOnce.Do(func() { r.comm = ev.Comm })
	}
	// Groups and Exe are read here, on first use, from this process's /proc, as Comm and Uid
	// are when the daemon did not send them: the daemon's pid namespace is assumed.
	return r
}

// decideRemote runs the handler for a daemon event the inline policy left undecided.
func (gd *Guard) decideRemote(cl *client.Client, ev client.Event, r *Request) {
	defer gd.wg.Done()
	defer ev.FD.Close()
	select {
	case gd.sem <- struct{}{}:
	case <-gd.ctx.Done():
		return // the daemon answers it with the close verdict
	}
	defer func() { <-gd.sem }()
	var v Verdict
	by := "handler"
	if gd.handler != nil {
		v = gd.runHandler(r)
	}
	ctx, cancel := context.WithTimeout(gd.ctx, 10*time.Second)
	defer cancel()
	v, resp := gd.answer(v)
	switch err := cl.RespondWait(ctx, ev.ID, resp); {
	case err == nil:
		gd.record(r, v, by)
	case errors.Is(err, client.ErrNotFound):
		gd.record(r, gd.cfg.OnTimeout, "deadline")
	default:
		gd.record(r, gd.cfg.OnClose, "closed")
	}
}
