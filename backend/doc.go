// Package backend connects the engine to the running Linux kernel: it keeps kernel marks equal
// to the union of the engine's marks on each object (the engine's MaskHook), reads kernel
// events, turns each into one engine event, and answers every kernel permission event exactly
// once with the engine's verdict.
//
// # Kernel groups
//
// fanotify cannot report permission events and file handles from one group (fanotify_init
// refuses FID reporting with a permission class up to Linux 6.18), and directory-entry events
// need file handles. So the backend runs up to two kernel groups, each created on first need:
//
//   - the FID group (FAN_CLASS_NOTIF, FAN_REPORT_DFID_NAME with FID and target FID): every
//     notification event — open, access, modify, close, open-exec, attrib, create, delete,
//     moves, rename, delete-self, move-self and fs-error — in one kernel queue, so the
//     kernel's order is the order consumers get: a file's CREATE before its OPEN, MODIFY and
//     CLOSE_WRITE, those before its DELETE, a directory's children's events (and rm's open
//     and close of it) before its own DELETE. With FAN_REPORT_DFID_NAME the kernel names the
//     object of an open, modify or close too, by its directory's handle and its name, so the
//     path is the directory's (resolved once per handle and cached, fidevents.go) and the
//     name, and the object's ID is read from its handle where the filesystem's handles hold
//     the inode number (tmpfs, ext2/3/4: sys.HandleInoOf), else cached by its handle (one
//     statx on its first event): no descriptor, readlink or stat per event. It is read on a goroutine of its own
//     (fidgroup.go). Its queue keeps the kernel's limit (max_queued_events) unless
//     Options.FIDQueueUnlimited: past it the kernel queues an overflow, which every engine
//     group that wanted such events gets in band, never a silent loss.
//   - the FD group (FAN_CLASS_PRE_CONTENT when the kernel has it, else FAN_CLASS_CONTENT;
//     unlimited queue, so that no permission event is dropped and allowed): every permission
//     event, with an open file descriptor, read on the backend's event loop (fdgroup.go). Its
//     class is fixed at fanotify_init while marks come and go, so it is pre-content from the
//     start: a pre-content group costs nothing on files without pre-access marks (6.14's
//     FMODE_NONOTIFY_PERM fast path) and lets a deny carry an errno (FAN_DENY_ERRNO).
//
// The FD group also takes a filesystem's notification events where the FID group cannot
// (fsState.notifyFID, routeLocked): on a filesystem the kernel cannot name by handle, or that
// the backend cannot open handles on, and while a mount mark there wants notification
// events — only an FD event says through which mount it happened, and one filesystem's
// notification events come from one group, so that no event is read twice. There the two
// queues are not ordered against each other (a DELETE may come before the CLOSE_WRITE);
// everywhere else they are in one queue.
//
// Limit: the route follows the engine's unions (MaskHook), and a mount mark that only
// ignores, with IgnoreSurviveModify (FAN_MARK_IGNORE_SURV, the only FAN_MARK_IGNORE form the
// kernel takes on a mount), has an empty union (the engine's interest adds Modify only for a
// non-surviving ignore mask, and the kernel's fsnotify_calc_mask would add the ignored events
// themselves, which here would put a kernel mark reporting them, permission events
// included, on the whole mount). So the filesystem's notification events stay with the FID
// group, which does not say through which mount they came, and such a mark does not silence
// the same group's inode, parent or filesystem marks' notifications (permission events come
// from the FD group and are silenced: TestSurvivingMountIgnoreSilencesPermissionEvents). A
// non-surviving one, or one beside a mount mark that reports notification events, routes as
// it should. Fixing it needs the hook to learn that a mount has an ignore-only mark (a flag
// in the union that no kernel mask carries).
// TestIgnoreMaskClearedByModifyThroughMountAndParent/mount-surviving (skipped: this limit).
//
// Without CAP_SYS_ADMIN (or with ModeInotify) inode and subtree marks run on inotify instead
// (see inotify.go); permission, mount and filesystem marks then fail with ErrNeedsPrivilege.
//
// # Subtrees
//
// A subtree mark becomes a filesystem mark in the kernel plus an ancestry filter here: the
// engine finds the subtree through the event's ancestor directories, so a file created in a
// directory created a microsecond earlier is seen (no inotify mkdir race). A subtree is a set
// of dentries, whatever mount they are reached through: an event's path is used only once it
// is verified to name the event's object in this mount namespace (same inode, same mount),
// else the object is found by handle through an anchor on the filesystem's root mount, or
// under its directory in the opener's namespace (/proc/PID/root); a walk that meets the root
// of a bind mount of a subdirectory goes on above it; a path still not found is unknown, and
// the event is placed as below (paths.go).
//
// What that costs the rest of the filesystem is kept near zero: after the first event from
// an object outside every subtree, the janitor puts an evictable ignore mark
// (FAN_MARK_IGNORE|FAN_MARK_EVICTABLE) on that object, in the group that reports them (the
// FD group's for permission events, the FID group's for open, access, modify and close), so
// the kernel stops sending its events.
// Such a mark is keyed by inode but stands for a decision about a name, which rename(2) and
// link(2) change without any event that could wait for us; so it goes only on a pinned
// object — one whose names no untrusted user can change (names.go: pinnedChain) — and it is
// dropped when the FID reader sees root change a name it depends on (nameChanged, before the
// event is dispatched), when a mark that sees more than one object grows, and whenever the
// backend may have missed a name change. docs/security.md ("Evictable ignore marks and the
// verdict cache") states the invariants and their tests.
//
// A file's ancestry is remembered (translate.go's chainCache) while no directory of its
// filesystem has moved, which the backend learns by asking whether the FID group has unread
// events (dirsSettled, a zero-timeout poll) — except for a file whose directories are all
// pinned (owned by root, writable by nobody else unless sticky: ancestryPinned), whose
// ancestry only root can change (pinnedHolds; docs/security.md, "Cached ancestries of pinned files").
//
// An event whose path the kernel cannot print (deeper than PATH_MAX), or prints wrong (a file
// opened by handle, disconnected from the tree), is placed by its directory's descriptor when
// it is a directory (sys.WalkUp, sys.LongPath) and otherwise dispatched with
// engine.Event.AncestryUnknown: as possibly inside every subtree of its filesystem, never as
// outside, and never ignored (paths.go; docs/security.md).
//
// # Verdicts
//
// Every kernel permission event is answered exactly once: by the engine's verdict, the
// deadline verdict, on any error path, when the backend closes, and when a goroutine panics
// (recover, answer, re-raise). Events caused by this process or by helper processes it
// started (ExemptPid) and their sessions' members are allowed at once and never dispatched, so
// the backend cannot deadlock on itself; Exemptions (exempt.go) states why no other process
// can pass for one of them (docs/security.md, "Exempt processes"). The answers decided on the
// loop while it dispatches one batch (an in-process Handler's) are written together when the
// batch is done, in one writev(2) (fdGroup.flushAnswers; at most maxHeldAnswers wait), each
// event's descriptor closed after its answer. The events answered ahead (AnswerAhead: the only
// permission group allows their kind whatever the object) are answered before any event of
// their batch is handled, in one write (fdGroup.answerAhead, a first pass over the events'
// fixed headers); each one's descriptor stays open for its translation and walk until the
// batch ends (flushAnswers settles it), and its walk's answer is not sent (claim). handlePerm
// takes each event's entry in order before anything else (takeAhead), and the batch's end
// closes any left (dropAhead), so none can be matched to an event of a later batch. A panic
// while the loop dispatches a batch is recovered once per batch (fdGroup.endBatch): the event
// being dispatched is answered, the batch's answers written, the panic re-raised. Reading the
// kernel fd and answering never wait on a group's reader, a log write, or a lock that a mark
// operation holds: readers see the mark state through an immutable snapshot.
//
// An allow the engine returns with Cache (every group that took the event allowed with
// Cache) becomes an evictable ignore mark for that inode and permission event, placed before
// the answer — the verdict cache. It is a name mark too, placed only on a pinned object, and
// it holds until the file is modified (the kernel clears it on FS_MODIFY: write, truncate),
// replaced (a new inode), renamed, linked, moved with a directory or chmod'ed (the FID
// reader), the policy changes (FlushVerdictCache), or any group starts to take permission
// events (the engine's PermissionHook, even when no union grows). Nothing is cached while an
// engine mark has a permission ignore mask that a modification would clear.
//
// # Files
//
//	backend.go       Backend: New, Resolve, AddMark, Close, Stats
//	marks.go         kernel marks from the engine's unions (the MaskHook), the readers' view
//	kgroup.go        what the two fanotify groups share: creation, reading a batch, overflow
//	fdgroup.go       the FD group (permission events), read on the event loop
//	fidgroup.go      the FID group (notification events) and its reader
//	perm.go          a kernel permission event's life: dispatch, verdict, exactly one answer
//	translate.go     FD event → engine event: statx, path, parent and ancestry (and caches)
//	fidevents.go     FID events: handles, names, moves, merged events split; its engine
//	                 events are pooled (fidEvent: reused only after the last holder's
//	                 Release, which may run on any goroutine: a sync.Pool)
//	orphans.go       FID events whose directory was gone when read, held until it is named;
//	                 a directory's DELETE_SELF read early (merged into its own older event)
//	                 where no DELETE places it, held until the events queued before it are
//	                 dispatched (FIONREAD)
//	movedaway.go     events a directory's move misplaced (read after it, found at its new
//	                 place): an overflow for the subtrees that lost them
//	paths.go         paths and ancestries from descriptors; events placed as unknown
//	names.go         name marks: pinned objects, their drops, path verification
//	janitor.go       outside-ignore marks and name watches, placed off the loop
//	verdictcache.go  cached allows as evictable ignore marks
//	exempt.go        exempt processes (this one, its helpers)
//	inotify.go       the inotify backend (ModeInotify)
//	comm.go          process names, cached (internal/procfs reads them)
//	record.go        a delivery's fsevent.Event, the one conversion consumers share
//	fsinfo.go        a filesystem's anchor (the directory handles are opened through)
//
// # Lock order
//
// Outer locks first; nothing is called out (a channel send that can block, a log write, a
// callback) while one is held:
//
//	engine connector.hookMu   (the engine's) held while the MaskHook and PermissionHook run
//	└── Backend.mu            objects, filesystems, kernel marks, the kernel groups' creation
//	    │                     (taken by the MaskHook, the janitor's watchNames, Close)
//	    ├── inotifyGroup.mu   the inotify watches (inotify.go); its reader takes only it, and
//	    │                     never holds it while dispatching
//	    └── fsState.ignMu     a filesystem's name marks, pinned directories, mark generation
//	                          (also taken alone by the PermissionHook, the loop and the janitor)
//	Backend.inflightMu        kernel permission events a walk waits for (a leaf)
//	Exemptions.mu             exempt helper pids (a leaf)
//	lru.Cache.mu              the process-name, parent and ancestry caches (leaves)
//	evloop.Loop.mu            the loop's posted work and registration changes (a leaf)
//	fdGroup.respMu            respond's reusable answer (a leaf, only TryLocked: held across
//	                          the answer's write(2), nobody ever waits for it)
//
// Backend.mu, inotifyGroup.mu, fsState.ignMu, inflightMu and Exemptions.mu are
// lockorder.Mutexes with the classes in doc.go: tests built with -tags lockorder (.ci/run)
// panic on any Lock that takes one against this order.
//
// The readers (the loop's FD group callback, the FID and inotify readers) never take
// Backend.mu: they see the mark state through an immutable snapshot (Backend.view); they take
// fsState.ignMu only to record or drop name marks, and make no system call while holding it. A
// name mark being placed is counted (fsState.placing) from its generation check to its record;
// a drop waits on fsState.placed until none is in flight, so that once it returns no mark
// decided before it remains. A placement never waits for anything but ignMu, so these waits
// are bounded by one fanotify_mark(2).
//
// # The batch clock
//
// A batch of the FD group reads the clock once (batchClock: the monotonic clock alone,
// schedtick.Now): the batch's time is the last full reading plus the time since (at most
// wallEvery old), and the same reading, as a duration, is the event loop's yield check's
// (evloop's AwakeAt; schedtick compares durations, no time.Time arithmetic). The time returned
// and the reading are the same instant (schedtick.Mono of the one is the other). TestBatchClock.
//
// # Goroutines
//
//   - The event loop (Backend.Loop, internal/evloop), one goroutine locked to its OS thread,
//     started by the FD group's creation (or the first component that registers with it): it
//     reads the FD group and runs the continuations of the walks that waited for a group's
//     answer (engine.Config.Executor), and whatever others register (the daemon's permission
//     clients). Alone with the FD group, it waits in the group's blocking read(2), woken by an
//     event of the group's own (fdGroup.waker): Close's Unregister of the group wakes it.
//     Close ends it after the kernel groups are closed; the work posted before runs, later
//     posts run on their caller. docs/design/fastpath.md follows one event through it.
//   - The FID group's reader (fidGroup.readLoop), from the group's creation, waiting in
//     poll(2) on its thread between batches (and yielding to the scheduler once per few
//     milliseconds, package schedtick; not locked to the thread, so that a yield needs no
//     other thread): Close closes the group's file and wakes it
//     (fidGroup.close: its eventfd), which ends it; Close waits for it (Backend.wg). It
//     calls the ReaderHook (SetReaderHook, the daemon's fan-out) with no lock held: Awake
//     when it takes up events, Idle before each wait, which bounds the wait.
//   - The inotify reader (inotifyGroup.readLoop), in inotify mode: Close closes the
//     instance's file, which ends it; Close waits for it (Backend.wg).
//   - The janitor (runJanitor), from New: places outside-ignore marks and name watches, polls
//     fs.protected_hardlinks. Close closes janitorStop and waits for it (Backend.wg). Its
//     request channel is never closed: the loop and the walks' continuations send to it
//     without waiting, also while Close runs.
//   - No goroutine per permission event: a walk waiting for a group's answer is a callback
//     (Walk.Await) counted in Backend.wg until it has answered the kernel.
//   - LongPath's chroot helper (internal/sys), for a directory deeper than PATH_MAX: one per
//     call, waited for by the call.
package backend

import "github.com/fsnotifyd/fsnotifyd/internal/lockorder"

// The lock classes of the tree above, outer first.
var (
	lockBackend  = &lockorder.Class{Name: "backend.Backend.mu", Rank: 10}
	lockInotify  = &lockorder.Class{Name: "backend.inotifyGroup.mu", Rank: 20}
	lockIgnore   = &lockorder.Class{Name: "backend.fsState.ignMu", Rank: 30}
	lockInflight = &lockorder.Class{Name: "backend.Backend.inflightMu", Rank: 90}
	lockExempt   = &lockorder.Class{Name: "backend.Exemptions.mu", Rank: 90}
)
