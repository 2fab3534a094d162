//go:build linux

package notify

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/source"
)

// Watcher watches paths and delivers their events on Events, like fsnotify's Watcher (a
// program switches by changing its import), on fanotify when the process may (root), on
// inotify otherwise.
//
// One goroutine per Watcher reads its event source and sends on Events and Errors; every send
// also waits on Close, so a Watcher nobody reads from can always be closed. Events from one
// kernel group arrive in order; fanotify reports content events (Write, Open, Read, Close*)
// and directory-entry events (Create, Remove, Rename, Chmod) through two kernel groups, so
// a Create and the first Write of the same new file may arrive in either order.
//
// Locks: opMu orders the changes of marks (Add, Remove, and the reader dropping the watches
// whose object went away) and is held across the source's calls; mu, taken inside it, guards
// the watches and is never held while calling out. Through the daemon, the client's
// reconnecting goroutine also takes mu, alone, to offer ErrDaemonLost (offerError).
type Watcher struct {
	// Events delivers the events, and Overflow events in order where events were lost.
	// NewWatcher's is unbuffered, as fsnotify's on Linux.
	Events chan Event
	// Errors delivers ErrEventOverflow when events were lost, and through the daemon
	// ErrDaemonLost when its connection is lost. It has room for one error and is never
	// waited on: an error finding it full (an earlier one unread) is dropped — the in-band
	// Overflow event still says where events were lost.
	Errors chan error

	src    source.Source
	ctx    context.Context // ends with Close: bounds the source's calls
	cancel context.CancelFunc

	done      chan struct{} // closed by Close: every send gives up
	exited    chan struct{} // closed when the reader has returned
	closeOnce sync.Once

	opMu sync.Mutex

	mu           sync.Mutex
	closed       bool
	errorsClosed bool              // the reader closed Errors: offerError sends no more
	watches      map[string]*watch // by Name form (cleaned, without "/...")
	marks        map[*source.Mark]engine.Mask
	renames      [16]renameRec // recent Rename events: new path → old path
	nextRen      int
	// arrivals are the paths recently arrived at by a rename (MovedTo): a watched file
	// replaced so (an editor's atomic save) has no Remove of its directory's to stand in for
	// its watch's own. Bounded: a replaced file held open elsewhere reports its deletion at
	// its last close; after 16 other renames meanwhile, its watch ends as fsnotify's would
	// (its Remove dropped, the directory's Create with OldName the only sign).
	arrivals [16]string
	nextArr  int
}

// watch is one path added with Add or AddWith.
type watch struct {
	name  string // as added, cleaned; Event.Name is built from it
	abs   string
	kind  engine.Kind
	isDir bool
	ops   Op
	main  *source.Mark                 // the watched object's mark: an inode, a tree, a mount or a filesystem
	self  *source.Mark                 // the inode mark that reports the object's own deletion and move, or nil
	marks map[*source.Mark]engine.Mask // what this watch needs of each mark
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
// Guard) instead of the process-wide one. The Watcher does not close b; close the Watcher
// first: once b is closed, the Watcher receives nothing more — no event, no Overflow, no
// error (backend.Close leaves its engine groups usable but fed by nothing) — and Add fails.
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
	if c.queue <= 0 {
		c.queue = 4 * engine.DefaultQueueLimit
	}
	so := source.Options{Name: "notify.Watcher", QueueLimit: c.queue, Backend: c.backend, Daemon: c.daemon,
		WantComm: true, MergeLast: true}
	if c.daemon == "" && so.Backend == nil {
		b, release, err := acquireBackend()
		if err != nil {
			return nil, err
		}
		so.Backend, so.Release = b, release
	}
	w := &Watcher{
		Events:  make(chan Event, c.buffer),
		Errors:  make(chan error, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		watches: map[string]*watch{},
		marks:   map[*source.Mark]engine.Mask{},
	}
	if c.daemon != "" {
		so.OnDisconnected = func(err error) { w.offerError(fmt.Errorf("%w: %w", ErrDaemonLost, err)) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := source.Open(ctx, so)
	if err != nil {
		if so.Release != nil {
			so.Release()
		}
		return nil, err
	}
	w.src = src
	w.ctx, w.cancel = context.WithCancel(context.Background())
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
// WithRecursive). Adding a watched path again does nothing. The watch is on the object the
// path names now: it goes away, with a Remove or Rename on its name, when that object is
// removed, renamed, or replaced by a rename (an editor's atomic save); watch the directory
// to follow a file across saves ("Watching a file" in the package doc). Returns ErrClosed after Close, and when Close runs meanwhile
// (from another goroutine): never an error of the closing event source.
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

	w.opMu.Lock()
	defer w.opMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if old := w.watches[name]; old != nil && old.kind == c.kind {
		if c.ops&^old.ops == 0 {
			w.mu.Unlock()
			return nil // re-adding is a no-op
		}
		c.ops |= old.ops // as fsnotify: a second Add with more operations widens the watch
	} else if old != nil {
		w.mu.Unlock()
		return fmt.Errorf("%s: already watched by a %s watch, and a path has one watch: Remove it first to watch it as a %s one",
			path, kindWord(old.kind), kindWord(c.kind))
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	// DeleteSelf and MoveSelf only on inode marks: on a tree or a filesystem they would be
	// every object's.
	main := engineMask(c.ops)&^(engine.DeleteSelf|engine.MoveSelf) | engine.OnDir
	switch c.kind {
	case engine.KindInode:
		// The watch goes away when its object is deleted or moved: always ask for both. (On
		// a file, the source drops what only a directory can have.)
		main |= engine.DeleteSelf | engine.MoveSelf | engine.EventOnChild
	case engine.KindMount:
		main &^= engine.OnDir
	}
	m, err := w.src.AddMark(ctx, abs, c.kind, engine.MarkSpec{Mask: main})
	if err != nil {
		return w.addError(path, err)
	}
	wt := &watch{name: name, abs: abs, kind: c.kind, isDir: m.IsDir, ops: c.ops, main: m,
		marks: map[*source.Mark]engine.Mask{m: main}}
	switch c.kind {
	case engine.KindInode:
		wt.self = m
	case engine.KindSubtree:
		// The root's own deletion and move end the watch; asked on the root inode rather
		// than the tree, where they would be every object's.
		const selfMask = engine.DeleteSelf | engine.MoveSelf | engine.OnDir
		rm, err := w.src.AddMark(ctx, abs, engine.KindInode, engine.MarkSpec{Mask: selfMask})
		if err == nil && rm.ID != m.ID {
			err = fmt.Errorf("%s: moved while being added; add it again", path)
			w.sync([]*source.Mark{rm}, true)
		}
		if err != nil {
			w.sync([]*source.Mark{m}, true) // undoes the tree's mark
			return w.addError(path, err)
		}
		wt.self = rm
		wt.marks[rm] |= selfMask
	}
	w.mu.Lock()
	if w.closed { // Close ran meanwhile: its source's marks are gone with it
		w.mu.Unlock()
		return ErrClosed
	}
	w.forgetArrivalLocked(abs) // an earlier rename to the path is not this object's replacement
	if old := w.watches[name]; old != nil {
		for mk, mm := range old.marks {
			wt.marks[mk] |= mm
		}
	}
	w.watches[name] = wt
	for mk := range wt.marks {
		w.marks[mk] = w.unionLocked(mk)
	}
	w.mu.Unlock()
	return nil
}

func (w *Watcher) addError(path string, err error) error {
	if w.isClosed() {
		// Close ran while the source was at work (it cancels w.ctx and closes the source):
		// the Add lost the race, and says so as an Add after Close does.
		return ErrClosed
	}
	var me *source.MarkError
	if !errors.As(err, &me) {
		return err // names the path
	}
	if errors.Is(err, backend.ErrNeedsPrivilege) || errors.Is(err, backend.ErrMountDirent) {
		return fmt.Errorf("%s: %w", path, me.Err)
	}
	return me.Err
}

// kindWord names a watch's kind in the API's words (WithRecursive, WithMount, WithFilesystem).
func kindWord(k engine.Kind) string {
	switch k {
	case engine.KindInode:
		return "non-recursive"
	case engine.KindSubtree:
		return "recursive"
	case engine.KindMount:
		return "mount"
	}
	return "filesystem"
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
		// MovedTo: the arriving half belongs to the rename (halves.go).
		m |= engine.MovedFrom | engine.MovedTo | engine.MoveSelf | engine.Rename
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

// unionLocked is what the Watcher's watches need of m.
func (w *Watcher) unionLocked(m *source.Mark) engine.Mask {
	var u engine.Mask
	for _, wt := range w.watches {
		u |= wt.marks[m]
	}
	return u
}

// sync brings the source's marks ms to what the watches need of them now: it shrinks them or
// removes them. With force it does so even where the Watcher believes them up to date (to undo
// an AddMark whose watch was not registered). Needs opMu, not mu. It returns the first error
// of the source's.
func (w *Watcher) sync(ms []*source.Mark, force bool) error {
	var first error
	for _, m := range ms {
		w.mu.Lock()
		u, had := w.unionLocked(m), w.marks[m]
		w.mu.Unlock()
		if u == had && !force {
			continue
		}
		var err error
		if u&engine.AllEvents == 0 {
			err = w.src.RemoveMark(w.ctx, m)
		} else {
			err = w.src.ModifyMark(w.ctx, m, engine.MarkSpec{Mask: u})
		}
		w.mu.Lock()
		switch {
		case u&engine.AllEvents == 0:
			delete(w.marks, m)
		case err == nil:
			w.marks[m] = u
		}
		w.mu.Unlock()
		if first == nil {
			first = err
		}
	}
	return first
}

// Remove stops watching path (added with Add, or with AddWith(WithRecursive) — "path/..."
// is accepted too). Watches below it are not removed. It returns an error wrapping
// ErrNonExistentWatch if path is not watched, and nil after Close or when Close runs
// meanwhile.
//
// Once it has returned, the watch's events stop, except what the Watcher had already read
// for it: the event it is offering on Events (and the operations split from the same kernel
// event), and those in Events' buffer (NewBufferedWatcher). A program that must not act on
// them checks its own list.
func (w *Watcher) Remove(path string) error {
	name, _ := splitRecursive(path)
	w.opMu.Lock()
	defer w.opMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	wt := w.watches[name]
	if wt == nil {
		w.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNonExistentWatch, path)
	}
	ms := w.dropLocked(wt)
	w.mu.Unlock()
	if err := w.sync(ms, false); err != nil && !w.isClosed() {
		return err
	}
	return nil // Close ran meanwhile: a Remove after Close is nil
}

// isClosed reports whether Close has begun.
func (w *Watcher) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// dropLocked forgets a watch and returns its marks, for sync.
func (w *Watcher) dropLocked(wt *watch) []*source.Mark {
	if w.watches[wt.name] == wt {
		delete(w.watches, wt.name)
	}
	ms := make([]*source.Mark, 0, len(wt.marks))
	for m := range wt.marks {
		ms = append(ms, m)
	}
	return ms
}

// WatchList returns the watched paths, as added (without "/..."), in no particular order;
// nil after Close.
func (w *Watcher) WatchList() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	out := make([]string, 0, len(w.watches))
	for name := range w.watches {
		out = append(out, name)
	}
	return out
}

// Close removes every watch, closes Events and Errors, and returns once the Watcher's
// goroutine has returned. It may be called more than once, from any goroutine. Through a
// daemon that did not end the session in time (stopped, stuck), the first call returns an
// error matching client.ErrByeUnanswered.
func (w *Watcher) Close() error {
	var err error
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.watches = map[string]*watch{}
		w.mu.Unlock()
		close(w.done)
		w.cancel()
		err = w.src.Close() // removes the marks; the reader's ReadBatch returns
		<-w.exited
	})
	return err
}

// run reads the source and sends what it reads until Close.
func (w *Watcher) run() {
	defer func() {
		w.mu.Lock()
		w.errorsClosed = true // offerError runs on the source's goroutines
		w.mu.Unlock()
		close(w.Events)
		close(w.Errors)
		close(w.exited)
	}()
	buf := make([]source.Event, 64)
	var out []Event
	for {
		n, err := w.src.ReadBatch(w.ctx, buf)
		if err != nil {
			return // closed
		}
		for i := 0; i < n; i++ {
			var gone []*source.Mark
			out, gone = w.convert(&buf[i], out[:0])
			buf[i].Release()
			buf[i] = source.Event{}
			if len(gone) > 0 {
				// The watches of an object that went away: their marks go too, from here
				// (through the daemon, a round trip; nothing waits on this goroutine for it).
				w.opMu.Lock()
				w.sync(gone, false)
				w.opMu.Unlock()
			}
			for _, ev := range out {
				if !w.send(ev) {
					return
				}
			}
		}
	}
}

// send delivers ev as one event per operation (split.go), giving up when the Watcher
// closes.
func (w *Watcher) send(ev Event) bool {
	var parts [4]Event
	for _, e := range splitEvent(ev, parts[:0]) {
		if !w.sendOne(e) {
			return false
		}
	}
	return true
}

// sendOne delivers ev, giving up when the Watcher closes; an overflow also goes to Errors
// if there is room.
func (w *Watcher) sendOne(ev Event) bool {
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

// offerError puts err on Errors if there is room and the Watcher is open, from any goroutine;
// it never waits (an error unread there already stays, as with an overflow).
func (w *Watcher) offerError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.errorsClosed {
		return
	}
	select {
	case w.Errors <- err:
	default:
	}
}

// convert turns one event into the Watcher's events (zero or more), and returns the marks of
// the watches it ended (their object was deleted or moved), for sync.
func (w *Watcher) convert(ev *source.Event, out []Event) ([]Event, []*source.Mark) {
	if ev.IsOverflow() || ev.Resync {
		return append(out, Event{Op: Overflow}), nil
	}
	m := ev.Mask
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return out, nil
	}
	if m&engine.Rename != 0 {
		// The pair's MovedFrom and MovedTo follow: remember where the new path came from.
		w.renames[w.nextRen] = renameRec{newPath: ev.Path, oldPath: ev.OldPath}
		w.nextRen = (w.nextRen + 1) % len(w.renames)
		m &^= engine.Rename
	}
	if ev.Path != "" {
		switch {
		case m&engine.MovedTo != 0:
			w.arrivals[w.nextArr] = ev.Path
			w.nextArr = (w.nextArr + 1) % len(w.arrivals)
		case m&engine.Delete != 0:
			w.forgetArrivalLocked(ev.Path)
		}
	}
	ops := opsOf(m)
	if ops == 0 && m&(engine.DeleteSelf|engine.MoveSelf) == 0 {
		return out, nil
	}
	base := Event{Pid: int(ev.Pid), Comm: ev.Comm, IsDir: m&engine.OnDir != 0, PathUnknown: ev.PathUnknown}
	if ops != 0 {
		// A rename's arriving half within the watches (old place watched too) is part of
		// the rename (halves.go): an op filter passes it for Rename, not for Create.
		var oldName string
		if m&engine.MovedTo != 0 {
			oldName = w.oldNameLocked(ev.Path)
		}
		name, allowed := w.nameLocked(ev, arrivalFilter(ops, oldName))
		if allowed = arrivalOps(ops, oldName, allowed); allowed != 0 {
			e := base
			e.Name, e.Op = name, allowed
			if allowed.Has(Create) {
				e.OldName = oldName
			}
			out = append(out, e)
		}
	}
	// Self events end their watch. A watch's own Remove is not reported when its directory
	// is watched for Remove too and the object was unlinked (that directory reports the
	// entry's Remove); it is when a rename replaced the object (the directory reports a
	// Create there, not a Remove). Its Rename always is.
	var gone []*source.Mark
	if m&(engine.DeleteSelf|engine.MoveSelf) != 0 {
		for _, wt := range w.selfWatchesLocked(ev) {
			var op Op
			if m&engine.DeleteSelf != 0 && wt.ops.Has(Remove) &&
				(w.forgetArrivalLocked(wt.abs) || !w.parentWatchedLocked(wt)) {
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
			gone = append(gone, w.dropLocked(wt)...)
		}
	}
	return out, gone
}

// opOfBit maps engine bits onto operations (self events apart).
var opOfBit = [...]struct {
	bits engine.Mask
	op   Op
}{
	{engine.Create | engine.MovedTo, Create},
	{engine.Delete, Remove},
	{engine.MovedFrom, Rename},
	{engine.Modify, Write},
	{engine.Attrib, Chmod},
	{engine.Open, Open},
	{engine.Access, Read},
	{engine.CloseWrite, CloseWrite},
	{engine.CloseNoWrite, CloseRead},
	{engine.OpenExec, Exec},
}

// opsOf maps engine bits onto operations (self events apart).
func opsOf(m engine.Mask) Op {
	var ops Op
	for _, e := range opOfBit {
		if m&e.bits != 0 {
			ops |= e.op
		}
	}
	return ops
}

// selfWatchesLocked returns the inode and recursive watches whose object the event is on.
func (w *Watcher) selfWatchesLocked(ev *source.Event) []*watch {
	var out []*watch
	for _, wt := range w.watches {
		if wt.self != nil && ev.Relation(wt.self) == source.Self {
			out = append(out, wt)
		}
	}
	return out
}

// forgetArrivalLocked forgets that a rename arrived at path, and reports whether one had.
func (w *Watcher) forgetArrivalLocked(path string) bool {
	found := false
	for i := range w.arrivals {
		if w.arrivals[i] == path {
			w.arrivals[i], found = "", true
		}
	}
	return found
}

// parentWatchedLocked reports whether the directory holding wt's object is watched for
// Remove (it then reports the object's unlinking itself).
func (w *Watcher) parentWatchedLocked(wt *watch) bool {
	dir := filepath.Dir(wt.abs)
	for _, o := range w.watches {
		if o == wt || !o.ops.Has(Remove) {
			continue
		}
		switch o.kind {
		case engine.KindInode:
			if o.isDir && o.abs == dir {
				return true
			}
		case engine.KindSubtree:
			if paths.Within(dir, o.abs) {
				return true
			}
		}
	}
	return false
}

// nameLocked finds the watch reporting the event — the object's own, its directory's, a
// tree's, a mount's or a filesystem's, in that order of preference — and returns the event's
// Name in that watch's form, with the operations that the matching watches asked for.
func (w *Watcher) nameLocked(ev *source.Event, ops Op) (string, Op) {
	var (
		best     *watch
		bestRank int
		name     string
		allowed  Op
	)
	for _, wt := range w.watches {
		rank, n := -1, ""
		switch ev.Relation(wt.main) {
		case source.Self:
			rank, n = 0, wt.name
		case source.Entry:
			rank, n = 1, filepath.Join(wt.name, entryName(ev))
		case source.MaybeEntry:
			rank = 1 // possibly its entry: its name is unknown
		case source.Below:
			rank = 2
			if !ev.PathUnknown { // never the tree's own name for an object whose place is unknown
				n = relName(wt, ev.Path)
			}
		case source.Whole:
			rank, n = 3, ev.Path
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
	return name, allowed
}

// entryName is the name of the entry an event is on.
func entryName(ev *source.Event) string {
	if ev.Name != "" {
		return ev.Name
	}
	return filepath.Base(ev.Path)
}

// relName is path in the form of wt's name: its part below wt's directory joined to the name
// wt was added with; path itself when it is not below it (the tree's root moved with an
// ancestor since it was added).
func relName(wt *watch, path string) string {
	if rest, ok := paths.Below(path, wt.abs); ok {
		return filepath.Join(wt.name, rest)
	}
	return path
}

// oldNameLocked returns the old path of a rename that arrived at newPath, in the form of a
// watch covering the old path; "" if the old place is not watched (fsnotify's rule).
func (w *Watcher) oldNameLocked(newPath string) string {
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
		case wt.kind == engine.KindSubtree && paths.Within(dir, wt.abs):
			return relName(wt, old)
		case wt.kind == engine.KindMount || wt.kind == engine.KindFilesystem:
			return old
		}
	}
	return ""
}
