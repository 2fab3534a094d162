package notify

import (
	"errors"
	"fmt"
	"strings"
)

// Op is a set of file operations, a bit mask: test it with Has, not ==, since one event may
// carry several. The first nine values are fsnotify's (github.com/fsnotify/fsnotify v1.10.1),
// including the four it keeps unexported, so that values and strings match.
type Op uint32

const (
	// Create: a path was created, or moved into a watched directory (a rename within the
	// watches also sets Event.OldName).
	Create Op = 1 << iota
	// Write: a file was written to or truncated. A write is not finished with this event
	// (see CloseWrite).
	Write
	// Remove: a path was removed; a watch on it goes away. For a watched file, the kernel
	// reports it once the last open descriptor of the file is closed.
	Remove
	// Rename: a path was renamed, reported with its old path (the new one follows as a
	// Create if it is watched); a watch on it goes away.
	Rename
	// Chmod: attributes changed (mode, owner, times, extended attributes, link count — so
	// an unlink of a file reports Chmod before Remove, and a touch, an indexer or a backup
	// tool report it without any change of content). Most programs want it not: a watch
	// added WithOps without Chmod never sees it, where fsnotify's users filter it out.
	Chmod
	// Open: a file or directory was opened (fsnotify's unexported xUnportableOpen).
	Open
	// Read: a file was read from (xUnportableRead).
	Read
	// CloseWrite: a file opened for writing was closed (xUnportableCloseWrite): the write is
	// finished — more reliable and far cheaper than waiting for Write events to stop.
	CloseWrite
	// CloseRead: a file opened read-only was closed (xUnportableCloseRead).
	CloseRead
	// Exec: a file was opened to be executed (fanotify only: inotify cannot tell these opens
	// from others, so with inotify they are reported as Open, never as Exec).
	Exec
	// Overflow: events were lost here, because the kernel's queue or the Watcher's queue
	// was full. It is delivered in order on Events (Name is empty) and, for fsnotify's
	// readers, as ErrEventOverflow on Errors. Whatever the consumer keeps about the watched
	// files should be refreshed from the filesystem.
	Overflow
)

// fsnotifyOps are the operations fsnotify's Watcher reports by default.
const fsnotifyOps = Create | Write | Remove | Rename | Chmod

// opNames is in fsnotify's String order, then ours.
var opNames = []struct {
	op   Op
	name string
}{
	{Create, "CREATE"},
	{Remove, "REMOVE"},
	{Write, "WRITE"},
	{Open, "OPEN"},
	{Read, "READ"},
	{CloseWrite, "CLOSE_WRITE"},
	{CloseRead, "CLOSE_READ"},
	{Rename, "RENAME"},
	{Chmod, "CHMOD"},
	{Exec, "EXEC"},
	{Overflow, "OVERFLOW"},
}

// String joins the operations' names with "|", in fsnotify's order (CREATE, REMOVE, WRITE,
// OPEN, READ, CLOSE_WRITE, CLOSE_READ, RENAME, CHMOD, then EXEC, OVERFLOW); no operation is
// "[no events]".
func (o Op) String() string {
	var b strings.Builder
	for _, n := range opNames {
		if o.Has(n.op) {
			b.WriteString("|")
			b.WriteString(n.name)
		}
	}
	if b.Len() == 0 {
		return "[no events]"
	}
	return b.String()[1:]
}

// Has reports whether o has any of the operations in h.
func (o Op) Has(h Op) bool { return o&h != 0 }

// Event is one file system event.
type Event struct {
	// Name is the path of the file or directory, in the form the watch was added with:
	// Add("dir") reports "dir/file", Add("/abs/dir") "/abs/dir/file". For mount and
	// filesystem watches it is absolute. It is empty for an Overflow.
	Name string
	// Op is what happened: one operation (the Watcher splits what a kernel queue merged;
	// see "One operation per event" in the package doc). Test it with Has, as with
	// fsnotify.
	Op Op

	// OldName is, for a Create that is the arrival end of a rename, the old path (in the
	// same form as Name) — when the old place is watched too (fsnotify's renamedFrom).
	OldName string
	// Pid is the process that caused the event: known with fanotify (when privileged), 0
	// with inotify, never guessed.
	Pid int
	// Comm is that process's command name, read when the event is read from the kernel: ""
	// with inotify, and for a process that exited before that.
	Comm string
	// IsDir reports that the object is a directory.
	IsDir bool
	// PathUnknown reports an event whose path could not be read: a file deeper than the
	// kernel prints a path for (PATH_MAX), which anyone who may create directories can
	// make; or, to an unprivileged Watcher through the daemon, an event in a directory removed
	// before the daemon could check that the Watcher's user may list it (an rm -rf's
	// removals below its top). Name is then "". Its place is unknown too, so every watch that may contain it
	// reports it — it may be anywhere below the watch, or elsewhere on its filesystem —
	// rather than none.
	PathUnknown bool
}

// Has reports whether the event has any of the operations in op.
func (e Event) Has(op Op) bool { return e.Op.Has(op) }

// String formats the event as fsnotify does: the operations padded to 13 columns, the quoted
// name, and for a rename's arrival " ← " and the quoted old name.
func (e Event) String() string {
	if e.OldName != "" {
		return fmt.Sprintf("%-13s %q ← %q", e.Op.String(), e.Name, e.OldName)
	}
	return fmt.Sprintf("%-13s %q", e.Op.String(), e.Name)
}

// Errors, with fsnotify's messages, so that programs comparing them (or their text) keep
// working.
var (
	// ErrNonExistentWatch: Remove of a path that is not watched.
	ErrNonExistentWatch = errors.New("fsnotify: can't remove non-existent watch")
	// ErrClosed: the Watcher is closed.
	ErrClosed = errors.New("fsnotify: watcher already closed")
	// ErrEventOverflow is sent on Errors when events were lost (see Overflow).
	ErrEventOverflow = errors.New("fsnotify: queue or buffer overflow")
)

// ErrDaemonLost is sent on Errors (wrapped with the cause) by a Watcher through the daemon
// (WithDaemon) when its connection to the daemon is lost: no events are reported until it is
// back — the Watcher reconnects by itself, then delivers an Overflow where events were lost.
// A program that cannot wait (the daemon may never come back) rescans by itself, or Closes
// the Watcher and falls back to an embedded one.
var ErrDaemonLost = errors.New("notify: lost the connection to the fsnotifyd daemon; no events until it is back (an Overflow then)")
