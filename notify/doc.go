// Package notify is fsnotifyd's Go library, embedded by default: no daemon, the kernel groups
// live in the calling process (or, if asked, through a running daemon: see below).
//
// # Watcher
//
// Watcher is a drop-in for github.com/fsnotify/fsnotify's Watcher (v1.10.1): the same
// NewWatcher, NewBufferedWatcher, Add, AddWith, Remove, WatchList, Close, Events and Errors,
// Event{Name, Op} with Has and String, the same Op values and strings, ErrNonExistentWatch,
// ErrClosed and ErrEventOverflow with the same messages, and fsnotify's Linux event mapping:
//
//	created, moved in          Create (OldName set when the old place is watched too)
//	written, truncated         Write
//	deleted                    Remove (a watched object's own deletion only when its
//	                           directory is not watched for Remove: that directory
//	                           reports it; always when a rename replaced the object)
//	moved away, watched moved  Rename, with the old name
//	attributes, link count     Chmod (an unlink reports Chmod, then Remove)
//
// A program switches by changing its import. Watches are not recursive by default, and one
// goes away when its path is deleted or renamed; re-adding a path does nothing; after Close,
// Add returns ErrClosed, Remove nil and WatchList nil (also for an Add or Remove that Close
// overtakes from another goroutine).
//
// # Watching a file
//
// A watch is on the object the path names when it is added, as fsnotify's. Editors and
// config tools replace a file rather than write it (write a temporary file, rename it over
// the old one; or rename the old one away and write a new one): the watch then ends with the
// old file, and says so — Remove (replaced, or deleted) or Rename (moved away) on the
// file's name, and WatchList no longer holds it. fsnotify ends such a watch silently when
// the file's directory is watched too; a Watcher reports the Remove there as well. To
// follow a file across replacements, watch its directory and filter events by name
// (ExampleWatcher_file), or Add the path again after its Remove or Rename.
//
// Then what fsnotify hides: recursive watches with no mkdir race (WithRecursive, or the
// "dir/..." form), per-watch operations (WithOps), Open, Read, CloseWrite, CloseRead and
// Exec, the rename source (Event.OldName), the process and its command (Event.Pid,
// Event.Comm, with fanotify), whole-mount and whole-filesystem watches (WithMount,
// WithFilesystem, with fanotify), and overflow in-band (Overflow).
//
// # Kernel interfaces
//
// A Watcher runs on fanotify when the process may use it (CAP_SYS_ADMIN), on inotify
// otherwise, through package backend; the events are the same where both can see them.
// inotify cannot report the process (Pid 0, Comm ""), tell exec opens from other opens, or
// watch mounts and filesystems (those watches then fail with backend.ErrNeedsPrivilege).
// A recursive watch on inotify watches each new directory when its Create is read and
// reports a Create for what it already holds; what happened to a file in it before that
// (opened, written, closed, chmod'ed) cannot be seen, so where the watch asks for such
// operations an Overflow follows those Creates (docs/events.md, "Recursive watches on
// inotify"). A directory moved in from outside reports a Create only for what may have been
// made in it since the move (at least once: some older entries again, none missed).
//
// All Watchers of a process share one backend by default (the kernel limits fanotify groups
// and inotify instances to 128 per user; a Watcher costs an engine group, not a kernel one);
// it is created with the first Watcher and closed with the last. WithBackend gives a Watcher
// a backend of the caller's instead (one forced to a mode, or shared with a Guard).
//
// # Embedded or through a daemon
//
// WithDaemon (a Watcher) and GuardConfig.Daemon (a Guard) run the same code through a running
// fsnotifyd daemon instead of kernel groups of this process: both read one event source
// (internal/source), embedded or remote, so the events and their mapping are the same. What
// differs: through the daemon, an event is placed relative to the watches by its path (and its
// object's device and inode) rather than by the kernel's objects; ExemptPid and
// GuardConfig.Exempt need the daemon's pid namespace and fail with an error otherwise; an
// allow is cached (GuardConfig.Cache) only by a daemon of protocol version 6 or later, whose
// FlushCache request withdraws the allows cached in its kernel groups (Guard.FlushCache asks
// for it; Guard.Caches says whether the daemon caches), and Stats has no engine figures. A watch survives a daemon restart only if its path still names
// the object it was added on: one whose object was deleted, moved or replaced meanwhile ends
// as if the object had been deleted (a Remove, after the restart's Overflow), never moving to a new object at
// the same path (package client: placing a mark again).
//
// # One operation per event, in order
//
// Each Event carries one operation, as with fsnotify on inotify: where a kernel queue merged
// several operations on one object into one event (an open, a read and a close a few
// microseconds apart), the Watcher splits it into one event per operation in the order
// they happen for one object (created, opened, read or written, closed, attributes, moved
// away or removed); its own queue merges only exact repeats of its newest event, as
// inotify does. docs/events.md has the rule and why that order is the kernel's.
//
// # Where it still differs from fsnotify
//
//   - Identical operations microseconds apart are one event when the kernel merged them
//     before they were read (an open(O_TRUNC) and the write after it: one Write). inotify
//     merges those too; fsnotify's own tests expect two only when its reader wins the race.
//   - A file watched both directly and through its directory: fsnotify (two inotify
//     watches) reports a write twice; a Watcher reports it once, named by the file's own
//     watch — one engine group gets one event per kernel event.
//   - With fanotify, on a filesystem whose objects the kernel cannot name by file handle
//     (and while a mount mark on that filesystem wants content events), content events
//     (Write, Open, Read, Close*) and directory-entry events (Create, Remove, Rename,
//     Chmod) come through two kernel queues, so a file's Remove may come before its
//     CloseWrite. Elsewhere (tmpfs, ext4, xfs, btrfs: where fanotify reports
//     directory-entry events at all) they come through one, in the kernel's order, each
//     named as it was when it happened (docs/events.md, "One order").
//   - Through the daemon, the daemon's group merges as fanotify does (any unread event on
//     the object, not only exact repeats): a Watcher that falls far behind may see two
//     writes with a read between them as one Write and one Read.
//
// # Overflow
//
// When events are lost — the kernel's queue or the Watcher's own queue was full — the
// Watcher delivers an Event with Op Overflow and an empty Name on Events, in order: the events
// before it are complete, the ones after it are new, and what happened in between is
// unknown (rescan what matters). For fsnotify's readers it also offers ErrEventOverflow on
// Errors, which has room for one error and is never waited on: the Watcher never blocks on a
// reader that ignores Errors, and an overflow finding an unread one there is not repeated.
// Through the daemon, losing the connection is said at once on Errors (ErrDaemonLost): the
// events from then until the daemon is back are lost, and the Overflow comes only then.
package notify
