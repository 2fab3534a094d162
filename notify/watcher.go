//go:build linux

package notify

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

// Watcher watches paths and delivers their events on Events, like fsnotify's Watcher (a
// program switches by changing its import), on fanotify when the process may (root), on
// inotify otherwise.
//
// One goroutine per Watcher reads its engine group and sends on Events and Errors; every send
// also waits on Close, so a Watcher nobody reads from can always be closed. Events from one
// kernel group arrive in order; fanotify reports content events (Write, Open, Read, Close*)
// and directory-entry events (Create, Remove, Rename, Chmod) through two kernel groups, so
// a Create and the first Write of the same new file may arrive in either order.
type Watcher struct {
	// Events delivers the events, and Overflow events in order where events were lost.
	// NewWatcher's is unbuffered, as fsnotify's on Linux.
	Events chan Event
	// Errors delivers ErrEventOverflow when events were lost. It has room for one error and
	// is never waited on: an overflow finding it full (an earlier one unread) is dropped,
	// the in-band Overflow event still says so.
	Errors chan error

	b       *backend.Backend
	release func() // drops the shared backend, or nil
	g       *engine.Group

	done      chan struct{} // closed by Close: every send gives up
	exited    chan struct{} // closed when the reader has returned
	closeOnce sync.Once

	mu      sync.Mutex
	closed  bool
	watches map[string]*watch // by Name form (cleaned, without "/...")
	marks   map[engine.Object]engine.Mask
	renames [16]renameRec // recent Rename events: new path → old path
	nextRen int

	// Through the daemon (WithDaemon): the client, and the watches by name.
	cl *client.Client
	dw map[string]*daemonWatch
}

// watch is one path added with Add or AddWith.
type watch struct {
	name  string // as added, cleaned; Event.Name is built from it
	abs   string
	kind  engine.Kind
	id    engine.ID // the watched object: an inode (a tree's root), a mount or a filesystem
	isDir bool
	ops   Op
	marks map[engine.Object]engine.Mask // what this watch needs from the engine
}

type renameRec struct{ newPath, oldPath string }

// Option configures a Watcher made by New.
type Option func(*watcherConfig)

type watcherConfig struct {
	buffer  uint
	queue   int
	backend *backend.Backend
	daemon  string
}

// WithQueueLimit bounds the Watcher's own queue of events not yet sent on Events (default
// 65536; the Watcher also holds up to 64 events it has read ahead); past it the Watcher
// reports Overflow.
func WithQueueLimit(n int) Option { return func(c *watcherConfig) { c.queue = n } }

// WithBackend makes the Watcher use b (for example one in ModeInotify, or one shared with a
// Guard) instead of the process-wide one. The Watcher does not close b.
func WithBackend(b *backend.Backend) Option { return func(c *watcherConfig) { c.backend = b } }

// WithEventBuffer gives Events a buffer of n events (NewBufferedWatcher's sz).
func WithEventBuffer(n uint) Option { return func(c *watcherConfig) { c.buffer = n } }

// NewWatcher makes a Watcher with an unbuffered Events channel.
func NewWatcher() (*Watcher, error) { return New() }

// NewBufferedWatcher makes a Watcher whose Events channel has a buffer of sz events. The
// Watcher's own queue (and the kernel's) already absorb bursts; the buffer only helps a
// reader that stalls for short periods.
func NewBufferedWatcher(sz uint) (*Watcher, error) { return New(WithEventBuffer(sz)) }

// New makes a Watcher with options.
//
// By default all Watchers of a process share one backend (one set of kernel groups: the
// kernel allows 128 fanotify groups and 128 inotify instances per user, and each Watcher
// is only an engine group inside it), created by the first Watcher and closed with the
// last.
func New(opts ...Option) (*Watcher, error) {
	var c watcherConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.daemon != "" {
		return newDaemonWatcher(c)
	}
	w := &Watcher{
		Events:  make(chan Event, c.buffer),
		Errors:  make(chan error, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		watches: map[string]*watch{},
		marks:   map[engine.Object]engine.Mask{},
		b:       c.backend,
	}
	if w.b == nil {
		b, release, err := acquireBackend()
		if err != nil {
			return nil, err
		}
		w.b, w.release = b, release
	}
	if c.queue <= 0 {
		c.queue = 4 * engine.DefaultQueueLimit
	}
	g, err := w.b.Engine().NewGroup(engine.Options{Name: "notify.Watcher", QueueLimit: c.queue})
	if err != nil {
		if w.release != nil {
			w.release()
		}
		return nil, err
	}
	w.g = g
	go w.run()
	return w, nil
}

// The process-wide backend, refcounted by the Watchers that use it.
var sharedBackend struct {
	mu   sync.Mutex
	b    *backend.Backend
	refs int
}

func acquireBackend() (*backend.Backend, func(), error) {
	sharedBackend.mu.Lock()
	defer sharedBackend.mu.Unlock()
	if sharedBackend.b == nil {
		b, err := backend.New(backend.Options{Mode: backend.ModeAuto})
		if err != nil {
			return nil, nil, err
		}
		sharedBackend.b = b
	}
	sharedBackend.refs++
	b := sharedBackend.b
	var once sync.Once
	return b, func() {
		once.Do(func() {
			sharedBackend.mu.Lock()
			defer sharedBackend.mu.Unlock()
			if sharedBackend.refs--; sharedBackend.refs == 0 && sharedBackend.b == b {
				b.Close()
				sharedBackend.b = nil
			}
		})
	}, nil
}

// AddOption configures one watch (AddWith).
type AddOption func(*addConfig)

type addConfig struct {
	ops       Op
	recursive bool
	kind      engine.Kind
}

// WithRecursive watches the directory and everything below it, at any depth, including
// what is created or moved in later (Add("dir/...") does the same). With fanotify it is one
// kernel filesystem mark filtered by ancestry: a file created in a directory created an
// instant before is never missed. With inotify every directory gets a watch, and a new
// directory is scanned once watched, so `mkdir -p a/b/c && touch a/b/c/f` is fully reported
// there too; a directory moved in from outside reports a Create for everything in it.
func WithRecursive() AddOption { return func(c *addConfig) { c.recursive = true } }

// WithOps sets the operations the watch reports (default Create, Write, Remove, Rename,
// Chmod, as fsnotify). Overflow is always reported.
func WithOps(op Op) AddOption { return func(c *addConfig) { c.ops = op } }

// WithMount watches the whole mount the path is on. It needs fanotify (root); the kernel
// reports only content events per mount (Open, Read, Write, CloseWrite, CloseRead, Exec):
// without WithOps such a watch reports Write, and asking for other operations is an error
// (watch the filesystem for them). Names are absolute.
func WithMount() AddOption { return func(c *addConfig) { c.kind = engine.KindMount } }

// WithFilesystem watches the whole filesystem the path is on, every mount of it. It needs
// fanotify (root). Names are absolute.
func WithFilesystem() AddOption { return func(c *addConfig) { c.kind = engine.KindFilesystem } }

// WithBufferSize is fsnotify's Windows-only buffer size; it does nothing here and exists so
// that programs using it compile unchanged.
func WithBufferSize(bytes int) AddOption { return func(*addConfig) {} }

// mountOps are what a mount watch can report.
const mountOps = Open | Read | Write | CloseWrite | CloseRead | Exec

// Add watches path: a file, or a directory and its entries (not recursively; see
// WithRecursive). Adding a watched path again does nothing. The watch goes away when the
// path is removed or renamed. Returns ErrClosed after Close.
func (w *Watcher) Add(path string) error { return w.AddWith(path) }

// AddWith is Add with options.
func (w *Watcher) AddWith(path string, opts ...AddOption) error {
	c := addConfig{kind: engine.KindInode}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	name, recursive := splitRecursive(path)
	if recursive || c.recursive {
		if c.kind != engine.KindInode {
			return fmt.Errorf("%s: a recursive watch cannot also be a mount or filesystem watch", path)
		}
		c.kind = engine.KindSubtree
	}
	if c.ops == 0 {
		c.ops = fsnotifyOps
		if c.kind == engine.KindMount {
			c.ops = Write
		}
	}
	if c.kind == engine.KindMount && c.ops&^(mountOps|Overflow) != 0 {
		return fmt.Errorf("%s: %s for a whole mount: %w", path, c.ops&^(mountOps|Overflow), backend.ErrMountDirent)
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real // the kernel's paths have symlinks resolved: compare like with like
	}
	if w.cl != nil {
		return w.addDaemon(name, abs, c.kind, c.ops)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if old := w.watches[name]; old != nil && old.kind == c.kind {
		if c.ops&^old.ops == 0 {
			return nil // re-adding is a no-op
		}
		c.ops |= old.ops // as fsnotify: a second Add with more operations widens the watch
	} else if old != nil {
		return fmt.Errorf("%s: already watched as a %s watch; Remove it first", path, old.kind)
	}
	t, err := w.b.Resolve(abs, c.kind, false)
	if err != nil {
		return err // names the path; ErrNeedsPrivilege for a mount or filesystem without root
	}
	wt := &watch{name: name, abs: abs, kind: c.kind, id: t.Object.ID, isDir: t.IsDir, ops: c.ops,
		marks: map[engine.Object]engine.Mask{}}
	// DeleteSelf and MoveSelf only on inode marks: on a tree or a filesystem they would be
	// every object's.
	main := engineMask(c.ops)&^(engine.DeleteSelf|engine.MoveSelf) | engine.OnDir
	switch c.kind {
	case engine.KindInode:
		// The watch goes away when its object is deleted or moved: always ask for both.
		main |= engine.DeleteSelf | engine.MoveSelf
		if t.IsDir {
			main |= engine.EventOnChild
		} else {
			main &^= engine.DirentEvents | engine.OnDir // fanotify refuses both on a file (ENOTDIR)
		}
	case engine.KindMount:
		main &^= engine.OnDir
	}
	var extra []backend.Target
	if c.kind == engine.KindSubtree {
		// The root's own deletion and move end the watch; asked on the root inode rather
		// than the tree, where they would be every object's.
		rt, err := w.b.Resolve(abs, engine.KindInode, false)
		if err != nil {
			w.b.Release(t)
			return err
		}
		if rt.Object.ID != t.Object.ID {
			w.b.Release(t)
			w.b.Release(rt)
			return fmt.Errorf("%s: moved while being added; add it again", path)
		}
		extra = append(extra, rt)
	}
	if err := w.b.AddMark(w.g, t, engine.MarkSpec{Mask: main}); err != nil {
		for _, x := range extra {
			w.b.Release(x)
		}
		return w.addError(path, err)
	}
	if old := w.watches[name]; old != nil {
		for obj, m := range old.marks {
			wt.marks[obj] |= m
		}
	}
	wt.marks[t.Object] |= main
	w.watches[name] = wt
	w.marks[t.Object] = w.unionLocked(t.Object)
	for i, x := range extra {
		m := engine.DeleteSelf | engine.MoveSelf | engine.OnDir
		if err := w.b.AddMark(w.g, x, engine.MarkSpec{Mask: m}); err != nil {
			for _, y := range extra[i+1:] {
				w.b.Release(y)
			}
			w.removeLocked(wt) // undoes the first mark
			return w.addError(path, err)
		}
		wt.marks[x.Object] |= m
		w.marks[x.Object] = w.unionLocked(x.Object)
	}
	return nil
}

func (w *Watcher) addError(path string, err error) error {
	if errors.Is(err, backend.ErrNeedsPrivilege) || errors.Is(err, backend.ErrMountDirent) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return err
}

// splitRecursive cleans path and strips fsnotify's recursive suffix "/...".
func splitRecursive(path string) (string, bool) {
	path = filepath.Clean(path)
	if filepath.Base(path) == "..." {
		return filepath.Dir(path), true
	}
	return path, false
}

// engineMask is what the engine must report for ops (DeleteSelf and MoveSelf come through
// inode marks only; a rename needs the Rename event for its old path).
func engineMask(ops Op) engine.Mask {
	var m engine.Mask
	if ops.Has(Create) {
		m |= engine.Create | engine.MovedTo | engine.Rename
	}
	if ops.Has(Write) {
		m |= engine.Modify
	}
	if ops.Has(Remove) {
		m |= engine.Delete | engine.DeleteSelf
	}
	if ops.Has(Rename) {
		m |= engine.MovedFrom | engine.MoveSelf | engine.Rename
	}
	if ops.Has(Chmod) {
		m |= engine.Attrib
	}
	if ops.Has(Open) {
		m |= engine.Open
	}
	if ops.Has(Read) {
		m |= engine.Access
	}
	if ops.Has(CloseWrite) {
		m |= engine.CloseWrite
	}
	if ops.Has(CloseRead) {
		m |= engine.CloseNoWrite
	}
	if ops.Has(Exec) {
		m |= engine.OpenExec
	}
	return m
}

// unionLocked is what the Watcher's watches need on obj.
func (w *Watcher) unionLocked(obj engine.Object) engine.Mask {
	var m engine.Mask
	for _, wt := range w.watches {
		m |= wt.marks[obj]
	}
	return m
}

// Remove stops watching path (added with Add, or with AddWith(WithRecursive) — "path/..."
// is accepted too). Watches below it are not removed. It returns an error wrapping
// ErrNonExistentWatch if path is not watched, and nil after Close.
func (w *Watcher) Remove(path string) error {
	name, _ := splitRecursive(path)
	if w.cl != nil {
		return w.removeDaemon(name, path)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	wt := w.watches[name]
	if wt == nil {
		return fmt.Errorf("%w: %s", ErrNonExistentWatch, path)
	}
	w.removeLocked(wt)
	return nil
}

// removeLocked drops a watch and shrinks the marks to what the other watches need.
func (w *Watcher) removeLocked(wt *watch) {
	if w.watches[wt.name] == wt {
		delete(w.watches, wt.name)
	}
	for obj := range wt.marks {
		u := w.unionLocked(obj)
		if u == w.marks[obj] {
			continue
		}
		if u&engine.AllEvents == 0 {
			w.g.RemoveMark(obj) // ErrNoMark: the group is closing, or never got it
			delete(w.marks, obj)
		} else if err := w.g.ModifyMark(obj, engine.MarkSpec{Mask: u}); err == nil {
			w.marks[obj] = u
		}
	}
}

// WatchList returns the watched paths, as added (without "/..."), in no particular order;
// nil after Close.
func (w *Watcher) WatchList() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	out := make([]string, 0, len(w.watches)+len(w.dw))
	for name := range w.watches {
		out = append(out, name)
	}
	for name := range w.dw {
		out = append(out, name)
	}
	return out
}

// Close removes every watch, closes Events and Errors, and returns once the Watcher's
// goroutine has returned. It may be called more than once, from any goroutine.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.watches = map[string]*watch{}
		w.mu.Unlock()
		close(w.done)
		if w.cl != nil {
			w.cl.Close() // the daemon drops the client's marks
		} else {
			w.g.Close() // removes the marks; the reader's ReadBatch returns
		}
		<-w.exited
		if w.release != nil {
			w.release()
		}
	})
	return nil
}

// run reads the group and sends what it reads until Close.
func (w *Watcher) run() {
	defer func() {
		close(w.Events)
		close(w.Errors)
		close(w.exited)
	}()
	buf := make([]engine.Delivery, 64)
	var out []Event
	for {
		n, err := w.g.ReadBatch(context.Background(), buf)
		if err != nil {
			return // closed
		}
		for i := 0; i < n; i++ {
			out = w.convert(buf[i], out[:0])
			buf[i].Release()
			buf[i] = engine.Delivery{}
			for _, ev := range out {
				if !w.send(ev) {
					for j := i + 1; j < n; j++ {
						buf[j].Release()
					}
					return
				}
			}
		}
	}
}

// send delivers ev, giving up when the Watcher closes; an overflow also goes to Errors if
// there is room.
func (w *Watcher) send(ev Event) bool {
	if ev.Op == Overflow {
		select {
		case w.Errors <- ErrEventOverflow:
		default: // an overflow is waiting there already (or another error): never block
		}
	}
	select {
	case w.Events <- ev:
		return true
	case <-w.done:
		return false
	}
}

// convert turns one delivery into the Watcher's events (zero or more).
func (w *Watcher) convert(d engine.Delivery, out []Event) []Event {
	if d.Mask&engine.QueueOverflow != 0 {
		return append(out, Event{Op: Overflow})
	}
	ev := d.Event
	if ev == nil {
		return out
	}
	m := d.Mask
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return out
	}
	if m&engine.Rename != 0 {
		// The pair's MovedFrom and MovedTo follow: remember where the new path came from.
		w.renames[w.nextRen] = renameRec{newPath: ev.Path, oldPath: ev.OldPath}
		w.nextRen = (w.nextRen + 1) % len(w.renames)
		m &^= engine.Rename
	}
	ops := opsOf(m)
	if ops == 0 && m&(engine.DeleteSelf|engine.MoveSelf) == 0 {
		return out
	}
	base := Event{Pid: int(ev.Pid), Comm: ev.Comm, IsDir: m&engine.OnDir != 0, PathUnknown: ev.GetPath() == ""}
	if ops != 0 {
		// Repeats merge in the queue: an unlink's Chmod may share a delivery with the
		// deletion, and comes first.
		name, ops, wt := w.nameLocked(ev, ops)
		if ops != 0 {
			e := base
			e.Name, e.Op = name, ops
			if ops.Has(Create) && m&engine.MovedTo != 0 {
				e.OldName = w.oldNameLocked(ev.Path, wt)
			}
			out = append(out, e)
		}
	}
	// Self events end their watch. A watch's own Remove is not reported when its directory
	// is watched too (that directory reports the entry's Remove); its Rename always is.
	if m&(engine.DeleteSelf|engine.MoveSelf) != 0 {
		for _, wt := range w.selfWatchesLocked(ev) {
			var op Op
			if m&engine.DeleteSelf != 0 && wt.ops.Has(Remove) && !w.parentWatchedLocked(wt) {
				op |= Remove
			}
			if m&engine.MoveSelf != 0 && wt.ops.Has(Rename) {
				op |= Rename
			}
			if op != 0 {
				e := base
				e.Name, e.Op = wt.name, op
				out = append(out, e)
			}
			w.removeLocked(wt)
		}
	}
	return out
}

// opsOf maps engine bits onto operations (self events apart).
func opsOf(m engine.Mask) Op {
	var ops Op
	if m&(engine.Create|engine.MovedTo) != 0 {
		ops |= Create
	}
	if m&engine.Delete != 0 {
		ops |= Remove
	}
	if m&engine.MovedFrom != 0 {
		ops |= Rename
	}
	if m&engine.Modify != 0 {
		ops |= Write
	}
	if m&engine.Attrib != 0 {
		ops |= Chmod
	}
	if m&engine.Open != 0 {
		ops |= Open
	}
	if m&engine.Access != 0 {
		ops |= Read
	}
	if m&engine.CloseWrite != 0 {
		ops |= CloseWrite
	}
	if m&engine.CloseNoWrite != 0 {
		ops |= CloseRead
	}
	if m&engine.OpenExec != 0 {
		ops |= Exec
	}
	return ops
}

// selfWatchesLocked returns the inode and recursive watches whose object the event is on.
func (w *Watcher) selfWatchesLocked(ev *engine.Event) []*watch {
	var out []*watch
	for _, wt := range w.watches {
		if (wt.kind == engine.KindInode || wt.kind == engine.KindSubtree) && wt.id == ev.Inode {
			out = append(out, wt)
		}
	}
	return out
}

// parentWatchedLocked reports whether the directory holding wt's object is watched (it
// then reports the object's removal itself).
func (w *Watcher) parentWatchedLocked(wt *watch) bool {
	dir := filepath.Dir(wt.abs)
	for _, o := range w.watches {
		if o == wt {
			continue
		}
		switch o.kind {
		case engine.KindInode:
			if o.isDir && o.abs == dir {
				return true
			}
		case engine.KindSubtree:
			if dir == o.abs || strings.HasPrefix(dir, o.abs+"/") || o.abs == "/" {
				return true
			}
		}
	}
	return false
}

// nameLocked finds the watch reporting the event — the object's own, its directory's, a
// tree's, a mount's or a filesystem's, in that order of preference — and returns the event's
// Name in that watch's form, with the operations that the matching watches asked for.
func (w *Watcher) nameLocked(ev *engine.Event, ops Op) (string, Op, *watch) {
	var (
		best     *watch
		bestRank int
		name     string
		allowed  Op
	)
	// A directory-entry event is on the directory (Inode) with the entry's Name; an event
	// on a child has its directory in Parent; anything else is on the object itself.
	dirent := ev.Mask&engine.DirentEvents != 0
	child := !dirent && !ev.Parent.IsZero() && ev.Name != ""
	unknown := ev.GetPath() == ""
	for _, wt := range w.watches {
		rank, n := -1, ""
		switch wt.kind {
		case engine.KindInode:
			switch {
			case !dirent && wt.id == ev.Inode:
				rank, n = 0, wt.name
			case wt.isDir && ((dirent && wt.id == ev.Inode) || (child && wt.id == ev.Parent)):
				rank, n = 1, filepath.Join(wt.name, ev.Name)
			case wt.isDir && !dirent && possiblyBelow(ev, wt.id):
				rank = 1 // possibly its child: its name is unknown
			}
		case engine.KindSubtree:
			if inTree(ev, wt.id) {
				rank, n = 2, relName(wt, ev.Path)
			}
			if unknown {
				n = "" // never the tree's own name for an object whose place is unknown
			}
		case engine.KindMount:
			if wt.id == ev.Mount {
				rank, n = 3, ev.Path
			}
		case engine.KindFilesystem:
			if wt.id == ev.Filesystem {
				rank, n = 3, ev.Path
			}
		}
		if rank < 0 || ops&wt.ops == 0 {
			continue
		}
		allowed |= ops & wt.ops
		// The nearest tree wins among trees (its root is deepest: longest path).
		if best == nil || rank < bestRank || (rank == bestRank && len(wt.abs) > len(best.abs)) {
			best, bestRank, name = wt, rank, n
		}
	}
	return name, allowed, best
}

// inTree reports whether the event is (or, its place unknown, may be) inside the tree rooted
// at root.
func inTree(ev *engine.Event, root engine.ID) bool {
	if ev.Inode == root {
		return true
	}
	for _, a := range ev.Ancestors {
		if a == root {
			return true
		}
	}
	return possiblyBelow(ev, root)
}

// possiblyBelow reports whether an event whose place is unknown may be below dir.
func possiblyBelow(ev *engine.Event, dir engine.ID) bool {
	if !ev.AncestryUnknown {
		return false
	}
	for _, a := range ev.PossibleAncestors {
		if a == dir {
			return true
		}
	}
	return false
}

// relName is path in the form of wt's name: its part below wt's directory joined to the name
// wt was added with; path itself when it is not below it (the tree's root moved with an
// ancestor since it was added).
func relName(wt *watch, path string) string {
	if path == wt.abs {
		return wt.name
	}
	prefix := wt.abs + "/"
	if wt.abs == "/" {
		prefix = "/"
	}
	if rest, ok := strings.CutPrefix(path, prefix); ok {
		return filepath.Join(wt.name, rest)
	}
	return path
}

// oldNameLocked returns the old path of a rename that arrived at newPath, in the form of a
// watch covering the old path; "" if the old place is not watched (fsnotify's rule).
func (w *Watcher) oldNameLocked(newPath string, arrived *watch) string {
	var old string
	for i := range w.renames {
		if r := &w.renames[i]; r.newPath == newPath && r.oldPath != "" {
			old = r.oldPath
			*r = renameRec{}
			break
		}
	}
	if old == "" {
		return ""
	}
	dir := filepath.Dir(old)
	for _, wt := range w.watches {
		switch {
		case wt.kind == engine.KindInode && wt.isDir && wt.abs == dir:
			return filepath.Join(wt.name, filepath.Base(old))
		case wt.kind == engine.KindSubtree && (dir == wt.abs || strings.HasPrefix(dir, wt.abs+"/")):
			return relName(wt, old)
		case wt.kind == engine.KindMount || wt.kind == engine.KindFilesystem:
			return old
		}
	}
	return ""
}
