package engine

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// Kind is the kind of a watched object (the kernel's FSNOTIFY_OBJ_TYPE_*): fsevent.Kind.
type Kind = fsevent.Kind

// Kinds of objects (see fsevent).
const (
	KindInode      = fsevent.KindInode
	KindMount      = fsevent.KindMount
	KindFilesystem = fsevent.KindFilesystem
	KindSubtree    = fsevent.KindSubtree
	numKinds       = KindSubtree + 1
)

// ID is a source's identity for an object: for the Linux backend an inode is
// {device, inode number}, a mount {mount id, 0}, a filesystem {device, 0}. The zero ID means
// "no object"; a source must not use it for a real one.
type ID struct{ Hi, Lo uint64 }

// IsZero reports whether id is the zero ID (no object).
func (id ID) IsZero() bool { return id == ID{} }

// Object names a watched object: its kind and its ID. Objects are comparable.
type Object struct {
	Kind Kind
	ID   ID
}

func (o Object) String() string { return fmt.Sprintf("%s:%x:%x", o.Kind, o.ID.Hi, o.ID.Lo) }

// Inode, Mount, Filesystem and Subtree build Objects.
func Inode(id ID) Object      { return Object{KindInode, id} }
func Mount(id ID) Object      { return Object{KindMount, id} }
func Filesystem(id ID) Object { return Object{KindFilesystem, id} }
func Subtree(id ID) Object    { return Object{KindSubtree, id} }

// Class is a group's priority class (FAN_CLASS_*): fsevent.Class. Groups of a higher class see
// an event first; a permission event reaches lower classes only once the higher ones allowed it.
type Class = fsevent.Class

// Classes (see fsevent).
const (
	ClassNotification = fsevent.ClassNotification
	ClassContent      = fsevent.ClassContent
	ClassPreContent   = fsevent.ClassPreContent
)

// Verdict is the answer to a permission event: fsevent.Verdict. The zero value is Allow, the
// kernel's default everywhere it must decide without a listener (close, full queue, mark race).
type Verdict = fsevent.Verdict

const (
	Allow = fsevent.Allow // FAN_ALLOW
	Deny  = fsevent.Deny  // FAN_DENY
)

// ParseVerdict parses "allow" or "deny".
func ParseVerdict(s string) (Verdict, error) { return fsevent.ParseVerdict(s) }

// Reason says how a permission verdict came about.
type Reason uint8

const (
	// ReasonNone: no group took the event (nobody watches it for permission).
	ReasonNone Reason = iota
	// ReasonAnswered: every interested group answered (Notify's verdict is the first deny, or allow).
	ReasonAnswered
	// ReasonDeadline: a group's deadline passed; its deadline verdict applied.
	ReasonDeadline
	// ReasonClosed: a group closed with the event pending; its close verdict applied.
	ReasonClosed
	// ReasonQueueFull: a group's queue was full; its full-queue verdict applied.
	ReasonQueueFull
	// ReasonCancelled: Notify's context ended before the groups answered; the verdict is Allow,
	// as when the kernel closes a group. The source decides what to answer.
	ReasonCancelled
)

var reasonNames = [...]string{"none", "answered", "deadline", "closed", "queue-full", "cancelled"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Response is a group's answer to a permission event, and Notify's result.
type Response struct {
	Verdict Verdict
	// Errno, with Deny, is the error the access fails with instead of EPERM. Only pre-content
	// groups can send one (FAN_DENY_ERRNO), and only one of DenyErrnos; from any other group,
	// or any other errno, the deny is a plain one (EPERM).
	Errno syscall.Errno
	// Cache, with Allow, says the allow may be remembered for this object and event until the
	// object changes. Notify's result has Cache set only if every group that took the event
	// answered Allow with Cache.
	Cache bool
	// Reason says how the verdict came about (set by the engine; ignored in Respond).
	Reason Reason
	// Group is the id of the group whose answer decided a deny (or the last group asked);
	// 0 if none (set by the engine).
	Group uint64
}

// DenyErrnos are the errors a pre-content group may deny with (FAN_DENY_ERRNO in Linux 6.14+).
var DenyErrnos = fsevent.DenyErrnos

// Range is the byte range of a pre-access event (the kernel's RANGE info record).
type Range = fsevent.Range

// Payload is a source's data attached to an event (for the Linux backend, the event's file
// descriptor). The engine calls Release exactly once, when the source and every group are done.
type Payload interface {
	Release()
}

// Event is one filesystem event given to Notify. The source fills it; the engine never changes
// it (it is shared by every group that receives it), except for its reference count.
//
// Objects follow the kernel's fsnotify(): for an event on a file or directory, Inode is that
// object and Parent its directory (whose marks report it with EventOnChild, with Name the
// child's name); for a directory-entry event (create, delete, moved-from, moved-to, rename),
// Inode is the directory and Name the entry, and Parent is unset.
type Event struct {
	// Mask holds the event bits, plus OnDir when the object is a directory. A permission event
	// holds exactly one permission bit.
	Mask Mask
	// Inode is the object the event is reported on (required).
	Inode ID
	// InodeStandIn says Inode is a stand-in the source made for an object it could no longer
	// find (gone when its event was read): its device is the object's, its number no inode's.
	// It matches no mark on an object; a consumer must not print it as an inode number.
	InodeStandIn bool
	// Parent is Inode's directory for events on a file (the kernel's FSNOTIFY_ITER_TYPE_PARENT).
	Parent ID
	// Target is, for Rename, the new directory (FSNOTIFY_ITER_TYPE_INODE2).
	Target ID
	// Mount and Filesystem hold the object's mount and filesystem, when known.
	Mount, Filesystem ID
	// Ancestors are the directories above Inode, nearest first (so Ancestors[0] is the parent
	// directory), up to the filesystem root. Subtree marks on Inode or on any of them report
	// the event. TargetAncestors are Target and the directories above it, for Rename.
	Ancestors, TargetAncestors []ID
	// AncestryUnknown says the source could not learn the directories above Inode (for the
	// Linux backend: a file whose path is longer than the kernel prints, or whose printed
	// path does not lead back to it, such as one opened by a file handle). Ancestors is then
	// empty and Parent unset, and the event is dispatched as possibly below each directory of
	// PossibleAncestors: their subtree marks report it, and so do their inode marks that
	// watch children (EventOnChild), as a parent's mark would. An event whose place is
	// unknown is never treated as outside a subtree it may be in; consumers must not treat it
	// as certainly inside either (its Path is unknown too, see Path).
	AncestryUnknown bool
	// PossibleAncestors are, with AncestryUnknown, the directories the source cannot rule out
	// as being above Inode: the Linux backend lists every subtree root and every directory
	// with a children-watching inode mark on Inode's filesystem.
	PossibleAncestors []ID
	// AllowedAhead says the source answered this permission event Allow before dispatching
	// it, because the only group with permission marks then answers its kind Allow whatever
	// the object (Engine.PermissionState; the Linux backend's Backend.AnswerAhead): the
	// groups it reaches decide as usual, but their answers are recorded, not sent. A Handler
	// that publishes verdicts by kind counts it as the Allow it was given.
	AllowedAhead bool
	// Name is the entry name of a directory-entry event, or the child's name for an event on a
	// child; NewName is the new name of a Rename.
	Name, NewName string
	// Path is the source's absolute path for the object, when known (informational); "" when
	// unknown. An unknown path is not a path that matches nothing: a consumer that decides
	// by path must treat it as one that may match any of its patterns. A path may be longer
	// than PATH_MAX.
	Path string
	// OldPath is the source path of a rename or move, when known (informational).
	OldPath string
	// Pid and Tid identify the process and thread that caused the event (0 if unknown).
	Pid, Tid int32
	// Comm is the process's command name when the source read it at event time ("" if
	// unknown): short-lived processes are gone by the time a reader could look.
	Comm string
	// Exe is the process's executable (/proc/PID/exe; a deleted one without the kernel's
	// " (deleted)": ExeDeleted) when the source read it at event time, as it does Comm when asked to ("" if
	// not read or unknown).
	Exe string
	// ExeDeleted: the executable was deleted; Exe is its path without the kernel's
	// " (deleted)" (which a file may have in its name: that Exe has it, and this is false).
	ExeDeleted bool
	// Range is the byte range of a PreAccess event.
	Range Range
	// FSErrno and FSErrorCount describe an FSError event.
	FSErrno      int32
	FSErrorCount uint32
	// Time is when the source saw the event (zero if unknown).
	Time time.Time
	// Payload is released once when the source and every group are done with the event.
	Payload Payload

	refs atomic.Int32 // held by the source (implicitly, -1 offset) and by each queued delivery
}

// PathResolver is implemented by payloads that can resolve the event's path on demand (the
// Linux backend resolves a permission event's path only when someone asks for it).
type PathResolver interface {
	Path() string
}

// GetPath returns the event's path: Path if the source set it, else what the payload
// resolves, else "" (unknown).
func (ev *Event) GetPath() string {
	if ev.Path != "" {
		return ev.Path
	}
	if r, ok := ev.Payload.(PathResolver); ok {
		return r.Path()
	}
	return ""
}

// Hold takes a reference on ev: its payload is not released until a matching Release.
// The source's own reference is implicit; it drops it with Release when done with the event.
func (ev *Event) Hold() { ev.refs.Add(1) }

// Release drops a reference; the last one releases the payload. The source calls Release
// once when it is done with the event (after answering, for a permission event).
func (ev *Event) Release() { ev.ReleaseN(1) }

// ReleaseN drops n references at once (n ≥ 0): what n calls of Release do, in one atomic
// add. A reader that holds many deliveries of one event (the daemon's flush, which writes it
// to every client) releases them together.
func (ev *Event) ReleaseN(n int32) {
	if n <= 0 {
		if n < 0 {
			panic("engine: ReleaseN of a negative count")
		}
		return
	}
	// refs counts references beyond the source's, so the source's Release takes it to -1.
	if r := ev.refs.Add(-n); r == -1 {
		if ev.Payload != nil {
			ev.Payload.Release()
		}
	} else if r < -1 {
		panic("engine: Event released more often than held")
	}
}

// MarkFlags are a mark's options beyond its masks: fsevent.MarkFlags.
type MarkFlags = fsevent.MarkFlags

// IgnoreSurviveModify keeps the ignore mask when the object is modified; otherwise a Modify
// event on the object clears it (FAN_MARK_IGNORED_SURV_MODIFY).
const IgnoreSurviveModify = fsevent.IgnoreSurviveModify

// MarkSpec is a mark's state: what it reports and what it ignores.
type MarkSpec struct {
	// Mask: events to report, with the flags EventOnChild and OnDir.
	Mask Mask
	// Ignore: events to suppress for this group on this object, whichever of the group's marks
	// would report them; with OnDir it also covers directories, with EventOnChild the
	// children of a directory (the kernel's FAN_MARK_IGNORE semantics).
	Ignore Mask
	Flags  MarkFlags
}

// Errors. Each matches, with errors.Is, the errno the kernel gives in the same case.
var (
	ErrClosed        = &Error{"group is closed", syscall.EBADF}
	ErrNoMark        = &Error{"no such mark", syscall.ENOENT}
	ErrNoSuchEvent   = &Error{"no pending permission event with that id (unknown or already answered)", syscall.ENOENT}
	ErrMarkLimit     = &Error{"group's mark limit reached", syscall.ENOSPC}
	ErrInvalid       = &Error{"invalid argument", syscall.EINVAL}
	ErrPermissionBit = &Error{"permission events need a content or pre-content group", syscall.EINVAL}
	ErrPreContentBit = &Error{"pre-access events need a pre-content group", syscall.EINVAL}
	// ErrInvalidAnswer: Respond got no verdict (an unknown verdict, an errno with allow); it
	// denied the access.
	ErrInvalidAnswer = &Error{"invalid answer (a verdict other than allow or deny, or an errno with allow): the access was denied", syscall.EINVAL}
	ErrWouldBlock    = &Error{"no event queued", syscall.EAGAIN}
)

// Error is an engine error; errors.Is matches it against its errno too.
type Error struct {
	Msg   string
	Errno syscall.Errno
}

func (e *Error) Error() string { return "engine: " + e.Msg }

// Is lets errors.Is(err, syscall.ENOENT) (or the matching errno) find e.
func (e *Error) Is(target error) bool {
	var errno syscall.Errno
	return errors.As(target, &errno) && errno == e.Errno
}

// Options configure a group. The zero value is a notification group with the kernel's
// defaults.
type Options struct {
	// Name labels the group in stats and errors.
	Name string
	// Class is the priority class.
	Class Class
	// QueueLimit bounds the queue (default 16384, the kernel's max_queued_events); negative
	// means unlimited (FAN_UNLIMITED_QUEUE).
	QueueLimit int
	// QueueBudget, if set, bounds the events queued in this group together with the other
	// groups given the same budget (see QueueBudget); QueueLimit still bounds this group's.
	QueueBudget *QueueBudget
	// MarkLimit bounds the group's marks (0: no bound).
	MarkLimit int
	// Deadline bounds how long a permission event waits for this group's answer (0: forever,
	// as the kernel), counted from when it is queued to the group, whenever the source waits;
	// at the deadline DeadlineVerdict applies and a later Respond gets ErrNoSuchEvent.
	Deadline        time.Duration
	DeadlineVerdict Verdict
	// CloseVerdict answers pending permission events when the group closes, and those that
	// reach it while it closes (default Allow, as the kernel).
	CloseVerdict Verdict
	// QueueFullVerdict answers a permission event that meets a full queue (default Allow, as
	// the kernel).
	QueueFullVerdict Verdict
	// Handler, if set, is offered each of the group's permission events first, on the
	// notifying goroutine, before any queueing: it returns the answer and true, or false to
	// have the event queued for Read as usual (when the answer needs slow work). It must
	// return quickly, never block, and never call the engine; the deadline does not apply to
	// it. The Delivery it gets has no ID and must not be released or kept (Hold the event to
	// keep it). It saves two goroutine hand-offs per event for answers that need no waiting
	// (an allow-all or glob policy). The kernel has no counterpart.
	Handler func(d Delivery) (Response, bool)
	// OnQueue, if set, is called each time the group's queue goes from empty to non-empty
	// (when a blocked reader would be woken; it still is), on the goroutine that queued the
	// event — inside Notify, before a permission event's walk waits — with no engine lock
	// held. It may read the group (TryRead, TryReadBatch) but must not block: a slow OnQueue
	// delays the event for every group after this one. It lets a reader that would only pass
	// events on (a daemon writing them to a client) do so without a goroutine hand-off. The
	// kernel has no counterpart.
	OnQueue func()
	// MergeLast narrows merging to inotify's rule: a notification merges only into the
	// newest queued event, unread, on the same object with the same mask (an exact repeat),
	// instead of fanotify's any unread event on the same object. A consumer that reports
	// one operation per event (notify.Watcher, fsnotify's contract) needs it: under
	// fanotify's rule a write, a read and a second write come out as one write|read, the
	// second write lost and the order unknowable. (A DELETE_SELF merges only into the newest
	// unread event under either rule: docs/events.md.)
	MergeLast bool
}

// DefaultQueueLimit is the kernel's default fanotify max_queued_events.
const DefaultQueueLimit = 16384
