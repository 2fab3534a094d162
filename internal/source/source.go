//go:build linux

// Package source is where events come from, one way for every consumer: the kernel through a
// backend and an engine group in this process (embedded), or a running daemon through package
// client (remote). notify's Watcher and Guard and the CLI's watch and trace are built on a
// Source and never on a backend or a client: "embedded or through the daemon" is decided once,
// by Open, and every event reaches them as the same record, fsevent.Event, converted once
// where it was read (backend.Record).
//
// What differs between the two is said here, next to its reason:
//
//   - Placing an event relative to a mark (Event.Relation): the embedded source knows the
//     objects an event involves (its inode, directory, ancestry, mount and filesystem) and
//     compares them with the mark's object; the daemon sends paths (and the object's device
//     and inode), so a remote event is placed by its path.
//   - Permission events: embedded, they are the engine group's (answered with
//     Group.Respond, the kernel's descriptor in the engine event's payload); remote, the
//     client's (answered over the connection, the descriptor sent along if asked for).
//   - Exempt processes: embedded, the backend allows their accesses before any group sees
//     them; remote, the source allows them on arrival (the daemon's pid namespace must be
//     this process's: Exempt refuses otherwise, since the pids would name other processes).
//   - Restarts: only the daemon restarts; a remote source reconnects, places its marks again
//     and says so (a Resync notice, and Options.OnResync).
//
// # Goroutines and locks
//
// A Source starts no goroutine of its own: the embedded one runs on its backend's readers, the
// remote one on its client's (see package client). Options.Inline and OnResync run on
// those. ReadBatch is for one goroutine at a time. Locks: embedded.mu and remote.mu (the marks
// placed) and remote.qmu (events queued for ReadBatch) are leaves; no call out is made while
// holding them.
package source

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Source delivers the events of the marks placed through it. Its methods may be called from
// any goroutine, but ReadBatch from one at a time.
type Source interface {
	// AddMark places a mark of kind k on the object at path (opened with this process's
	// privileges), or adds spec to the one there: its events are reported once it returns.
	// On an inode mark on a file, the directory-only bits (EventOnChild, OnDir and the
	// directory-entry events) are dropped. The same object gives the same *Mark. A failure
	// to open or identify the path is returned as it is; a failure to mark the object it
	// named is a *MarkError.
	AddMark(ctx context.Context, path string, k engine.Kind, spec engine.MarkSpec) (*Mark, error)
	// ModifyMark replaces m's masks and flags with spec.
	ModifyMark(ctx context.Context, m *Mark, spec engine.MarkSpec) error
	// RemoveMark removes m: no event that starts after it returns is reported through it.
	RemoveMark(ctx context.Context, m *Mark) error
	// ReadBatch waits for events (until ctx ends, or the source closes: ErrClosed) and fills
	// dst with as many as are ready. Notifications need nothing more; a permission event
	// (ID nonzero) must be answered (Event.Respond) and released (Event.Release). Lost events
	// are reported in order by an event with Mask QueueOverflow, and a reconnection to a
	// restarted daemon by one with Resync.
	ReadBatch(ctx context.Context, dst []Event) (int, error)
	// Exempt exempts a helper process this process started and has not reaped: its accesses
	// are allowed at once, never decided, and so are its session's members' if it leads its
	// own session (backend.Exemptions.Add). Call done when it has exited. An error says it is
	// not exempt: pid is no live process, or the source cannot tell its events from others'.
	Exempt(pid int) (done func(), err error)
	// Spawning opens a window in which helpers are being started, before Exempt can name
	// them: until end is called, this process's direct children are exempt.
	Spawning() (end func())
	// FlushCache forgets the allows cached for this process's permission events, and
	// returns once they are: no access after it is skipped on an allow cached before it,
	// and no answer to an event read before it is cached. Embedded, the backend's; through
	// the daemon, the daemon's (every client's: protocol version 6's FlushCache), and an
	// error says they may not be gone (a connection that broke during the request leaves
	// them to the reconnection, whose marks flush them; nothing is cached on a daemon that
	// cannot flush, see CacheFlushable).
	FlushCache() error
	// CacheFlushable reports whether an answer's Cache is honoured: always embedded;
	// through the daemon only on a connection of protocol version 6 or later (FlushCache),
	// else a cacheable allow goes as a plain allow. It may change at a reconnection.
	CacheFlushable() bool
	// EventFiles reports whether permission events carry their file (Event.Fd): always
	// embedded; through the daemon when it sends them (Options.EventFDs, and its fd_uid or
	// fd_gid names this process's uid or a group of it). It may change at a reconnection.
	EventFiles() bool
	// Deadline is the deadline for answers in force: Options.Deadline, or the one the daemon
	// granted (it caps deadlines, and gives its own to a source that asked for none).
	Deadline() time.Duration
	// Stats returns the figures of the engine group (embedded; zero through the daemon).
	Stats() engine.GroupStats
	// Close ends the source: pending permission events get the close verdict, ReadBatch
	// returns ErrClosed, and the backend (Options.Backend unless given) or the connection
	// goes. Events read before stay valid until released. It is idempotent.
	Close() error
}

// Answer is Inline's answer to a permission event: what engine.Response carries from a
// group (the engine sets its Reason and Group). Three fields, not Response's five: a struct
// of up to four fields is taken apart into registers where Inline's results are received,
// where a Response is stored field by field and read back with wider loads that wait for
// those stores (about 10 ns a time on the embedded guard's path).
type Answer struct {
	Verdict engine.Verdict
	// Errno, with Deny, is the error the access fails with (engine.Response.Errno).
	Errno syscall.Errno
	// Cache, with Allow, says the allow may be remembered (engine.Response.Cache).
	Cache bool
}

// response is a's engine.Response, built where it is returned.
func (a Answer) response() engine.Response {
	return engine.Response{Verdict: a.Verdict, Errno: a.Errno, Cache: a.Cache}
}

// Options configure a source.
type Options struct {
	// Daemon is the socket of a running daemon to run through ("" : embedded, here).
	Daemon string
	// Name labels the source's group (the daemon's stats and logs).
	Name string
	// Class is the group's class: content and pre-content take permission events (root, or
	// an allowed uid of the daemon).
	Class engine.Class
	// QueueLimit bounds the events queued for ReadBatch (0: the default; -1: unlimited):
	// embedded, in the engine group; through the daemon, in the client's group there and in
	// the client library's queue here, each (an overflow in band when one is full).
	QueueLimit int
	// Deadline bounds how long a permission event waits for an answer (0: forever, or the
	// daemon's maximum); DeadlineVerdict applies then, CloseVerdict to those pending at Close.
	Deadline                      time.Duration
	DeadlineVerdict, CloseVerdict engine.Verdict
	// Inline, if set, is offered every permission event first, on the goroutine that read
	// it (a kernel reader embedded, the connection's reader through the daemon), before any
	// queueing: it returns the answer, something for Answered, and true; or false to have the
	// event queued for ReadBatch. It must be fast and never block. *ev is the source's until
	// Inline returns, then it is the next event's: Inline copies what it keeps, and keeps
	// neither ev nor the event (it must not release it). Calls come one at a time.
	Inline func(ev *Event) (a Answer, tag any, ok bool)
	// InlineTable, if set with Inline, answers each permission event first in an embedded
	// source (through the daemon, Inline gets every event) when its kind alone decides it:
	// the table's answer (InlineTable, which counts it) goes out without the event's record,
	// its place or Inline's call being built or made, and Answered is told nothing of it.
	// An event the table leaves undecided goes on to Inline.
	InlineTable *InlineTable
	// Answered, with Inline, is told on the same goroutine once an inline answer went out
	// (err nil), or could not (the connection to the daemon is gone: its close verdict
	// applies).
	Answered func(tag any, err error)
	// OnResync, if set, is called (through the daemon) once the source has reconnected to a
	// restarted daemon and placed its marks again, on the connection's reading goroutine: it
	// must not block.
	OnResync func()
	// OnDisconnected, if set, is called (through the daemon) when the connection to the
	// daemon is lost, and for each new reason a reconnection fails
	// (client.Options.OnDisconnected): until OnResync, the source's marks are not served.
	OnDisconnected func(err error)

	// Backend is the backend to use embedded (nil: a new one, ModeAuto, closed by Close);
	// Release, if set, is called by Close instead of closing it (a shared backend).
	Backend *backend.Backend
	Release func()
	// Exe makes a new backend read each process's executable with its name (Event.Exe).
	Exe bool
	// Prune are paths whose directories no watch wants (a new backend's Options.Prune: on
	// inotify, no watch goes below them).
	Prune []string
	// Logger receives a new backend's warnings (backend.Options.Logger; nil: discarded): on
	// inotify, the directories of a tree that could not be watched and why.
	Logger *slog.Logger
	// MergeLast gives the group inotify's merging rule (engine.Options.MergeLast): only an
	// exact repeat of the newest unread event merges. Embedded only: through the daemon every
	// client's group has that rule already (the daemon sets it).
	MergeLast bool

	// WantComm asks the daemon for the process's command name, EventFDs for permission
	// events' files; Buffer sizes the client's Events channel.
	WantComm, EventFDs bool
	Buffer             int
	// NoPaths (through the daemon) asks it to read no paths for permission events
	// (client.Options.NoPaths); embedded, paths are read on demand anyway.
	NoPaths bool
}

// Errors.
var (
	// ErrClosed: the source was closed.
	ErrClosed = errors.New("the event source is closed")
	// ErrTooLate: a permission event answered past its deadline (the deadline verdict
	// applied), or answered twice.
	ErrTooLate = errors.New("the permission event is no longer pending (past its deadline)")
	// ErrNeedsPrivilege: permission events, embedded, need fanotify (root, CAP_SYS_ADMIN).
	ErrNeedsPrivilege = errors.New("permission events need fanotify (CAP_SYS_ADMIN)")
)

// MarkError is AddMark's failure to mark an object it resolved (the backend refused it: a
// mount mark of directory events, a mark limit, no privilege for the kind).
type MarkError struct{ Err error }

func (e *MarkError) Error() string { return e.Err.Error() }
func (e *MarkError) Unwrap() error { return e.Err }

// Open opens the source opts describe: through the daemon at opts.Daemon, or embedded.
func Open(ctx context.Context, opts Options) (Source, error) {
	if opts.Daemon != "" {
		return openRemote(ctx, opts)
	}
	return openEmbedded(opts)
}

// Mark is a mark placed through a source: what the source learned of its object. Marks are
// compared by pointer: the same object gives the same *Mark.
type Mark struct {
	Kind engine.Kind
	// Path is the object's absolute path when it was marked; IsDir says it is a directory.
	Path  string
	IsDir bool
	// ID identifies the object: the backend's engine.ID embedded; through the daemon, the
	// device and inode number of an inode or subtree mark's path when it was marked (zero for
	// mount and filesystem marks).
	ID engine.ID

	obj    engine.Object // embedded
	remote client.MarkID // remote
}

// Event is one event from a source: the record, and what the source needs to place and answer
// it. An Event is a value; a permission event in it is answered and released once, by whoever
// holds it last.
type Event struct {
	fsevent.Event
	// Resync is a notice, not an event: the source reconnected to a restarted daemon and
	// placed its marks again; events may have been missed meanwhile.
	Resync bool
	// Lost, through the daemon, comes with a DELETE_SELF record of a marked object whose mark
	// could not be placed again after a reconnection (client.Event.Lost): the object was
	// deleted, moved or replaced while the daemon was down, and nothing is marked in its place.
	Lost error

	place place         // by object identity (embedded), else zero
	src   eventSource   // the source that answers and releases it (permission events)
	eng   *engine.Event // embedded: the engine's event (its payload: descriptor, path)
	held  bool          // embedded: the delivery's reference is ours to release
	inl   bool          // through the daemon: offered to Inline (answer without waiting)
}

// eventSource answers and releases permission events; each source implements it.
type eventSource interface {
	respond(ctx context.Context, e *Event, r engine.Response) error
	release(e *Event)
	fd(e *Event) int
	path(e *Event) string
}

// Respond answers the permission event. It returns ErrTooLate if it is no longer pending
// (its deadline passed: the deadline verdict applied), and another error if the answer could
// not be given (the source closed: the close verdict applies).
func (e *Event) Respond(ctx context.Context, r engine.Response) error {
	if e.src == nil || e.ID == 0 {
		return ErrTooLate
	}
	return e.src.respond(ctx, e, r)
}

// Release drops what the event holds (a permission event's descriptor). Call it once, when
// done with the event (after Respond).
func (e *Event) Release() {
	if e.src != nil {
		e.src.release(e)
		e.src = nil
	}
}

// Fd returns the permission event's open descriptor, for reading the file's content (reads
// cause no events), or -1 if the source has none. It is valid until Release; do not close it.
func (e *Event) Fd() int {
	if e.src == nil {
		return -1
	}
	return e.src.fd(e)
}

// Stat returns the statx the backend took of an embedded permission event's object when it
// read the event (false through the daemon, or for an event without a descriptor). Read it
// where the path is read (GetPath) and before Release: the path's reading may take it again
// (a file unlinked meanwhile).
func (e *Event) Stat() (sys.Stat, bool) {
	if e.eng == nil {
		return sys.Stat{}, false
	}
	p, ok := e.eng.Payload.(stater)
	if !ok {
		return sys.Stat{}, false
	}
	return p.Stat(), true
}

// stater is implemented by the backend's permission-event payload.
type stater interface{ Stat() sys.Stat }

// GetPath returns the object's path, resolving it now if the source left it for later (an
// embedded permission event's); "" if it is unknown.
func (e *Event) GetPath() string {
	if e.Path != "" || e.src == nil {
		return e.Path
	}
	return e.src.path(e)
}

// Relation is how an event lies relative to a mark's object.
type Relation uint8

const (
	// Unrelated: the event is not on the mark's object, nor inside it.
	Unrelated Relation = iota
	// Self: the event is on the marked object itself (a directory-entry event is its
	// entry's, not the directory's).
	Self
	// Entry: the event is on an entry of the marked directory: a directory-entry event in
	// it, or an event on one of its files.
	Entry
	// MaybeEntry: the event's place is unknown, and it may be on an entry of the marked
	// directory.
	MaybeEntry
	// Below: the event is on the marked tree's root or below it, or, its place unknown, may
	// be.
	Below
	// Whole: the event is on the marked mount or filesystem (a remote event's mount is not
	// known: any may be).
	Whole
)

// Relation says how the event lies relative to m's object.
func (e *Event) Relation(m *Mark) Relation {
	if e.place.known {
		return e.place.relation(e, m)
	}
	return e.pathRelation(m)
}

// place is where an embedded event lies, by object identity: the engine event's objects.
type place struct {
	known               bool
	dirent              bool // a directory-entry event: on the directory (inode), of an entry
	inode, parent       engine.ID
	mount, filesystem   engine.ID
	ancestors, possible []engine.ID // immutable: the engine event's own slices
	ancestryUnknown     bool
}

func placeOf(ev *engine.Event) place {
	var p place
	p.set(ev)
	return p
}

// set makes p ev's place, whatever p held before.
func (p *place) set(ev *engine.Event) {
	*p = place{}
	p.known, p.dirent, p.inode, p.parent = true, ev.Mask&engine.DirentEvents != 0, ev.Inode, ev.Parent
	p.mount, p.filesystem, p.ancestors, p.possible = ev.Mount, ev.Filesystem, ev.Ancestors, ev.PossibleAncestors
	p.ancestryUnknown = ev.AncestryUnknown
}

func (p *place) relation(e *Event, m *Mark) Relation {
	switch m.Kind {
	case engine.KindInode:
		child := !p.dirent && !p.parent.IsZero() && e.Name != ""
		switch {
		case !p.dirent && m.ID == p.inode:
			return Self
		case m.IsDir && ((p.dirent && m.ID == p.inode) || (child && m.ID == p.parent)):
			return Entry
		case m.IsDir && !p.dirent && p.possiblyBelow(m.ID):
			return MaybeEntry
		}
	case engine.KindSubtree:
		if p.inTree(m.ID) {
			return Below
		}
	case engine.KindMount:
		if m.ID == p.mount {
			return Whole
		}
	case engine.KindFilesystem:
		if m.ID == p.filesystem {
			return Whole
		}
	}
	return Unrelated
}

// inTree reports whether the event is (or, its place unknown, may be) inside the tree rooted
// at root.
func (p *place) inTree(root engine.ID) bool {
	if p.inode == root {
		return true
	}
	for _, a := range p.ancestors {
		if a == root {
			return true
		}
	}
	return p.possiblyBelow(root)
}

// possiblyBelow reports whether an event whose place is unknown may be below dir.
func (p *place) possiblyBelow(dir engine.ID) bool {
	if !p.ancestryUnknown {
		return false
	}
	for _, a := range p.possible {
		if a == dir {
			return true
		}
	}
	return false
}

// pathRelation places an event by its path (and object): a remote event's place. An event
// whose path the daemon could not read (PathUnknown) may be anywhere below a directory; one
// whose path is not the client's to know ("" without PathUnknown) is nowhere it may see.
func (e *Event) pathRelation(m *Mark) Relation {
	dirent := e.Mask&engine.DirentEvents != 0
	unknown, known := e.PathUnknown, e.Path != ""
	switch m.Kind {
	case engine.KindInode:
		switch {
		case !dirent && ((e.HasObject && m.ID == (engine.ID{Hi: e.Dev, Lo: e.Ino})) || (known && e.Path == m.Path)):
			return Self
		case m.IsDir && known && filepath.Dir(e.Path) == m.Path:
			return Entry
		case m.IsDir && unknown:
			return MaybeEntry
		}
	case engine.KindSubtree:
		if unknown || (known && paths.Within(e.Path, m.Path)) {
			return Below
		}
	case engine.KindMount, engine.KindFilesystem:
		return Whole
	}
	return Unrelated
}

// overflowRecord is the record of lost events, seen now.
func overflowRecord() fsevent.Event {
	return fsevent.Event{Mask: engine.QueueOverflow, Time: time.Now()}
}

// fitSpec drops from an inode mark on a file what only a directory can have: the kernel
// refuses directory-entry events there (ENOTDIR), and EventOnChild and OnDir mean nothing.
func fitSpec(k engine.Kind, isDir bool, spec engine.MarkSpec) engine.MarkSpec {
	if k == engine.KindInode && !isDir {
		spec.Mask &^= engine.EventOnChild | engine.DirentEvents | engine.OnDir
	}
	return spec
}
