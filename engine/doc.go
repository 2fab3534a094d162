// Package engine is the fsnotify framework of the Linux kernel (fs/notify), in pure Go: groups
// (listeners) attach marks to objects (an inode, a mount, a filesystem, or — our addition — a
// subtree), each with an event mask and an ignore mask; Notify walks the marks of every object an
// event involves, in group priority order, queues the event to each interested group (merging
// repeats, reporting overflow) and, for a permission event, waits for each group's verdict; the
// first deny wins. It makes no system calls and keeps no globals: any event source (the kernel
// backend, a FUSE or in-memory filesystem, a test) can drive it.
//
// # Kernel counterparts
//
//	Engine          the fsnotify core: the object → connector maps (i_fsnotify_marks, ...)
//	Group           struct fsnotify_group (+ fanotify_group_private_data): queue, access list
//	Mark            struct fsnotify_mark: mask, ignore mask, flags, FSNOTIFY_MARK_FLAG_ATTACHED
//	connector       struct fsnotify_mark_connector: an object's mark list, sorted by priority
//	Notify          fsnotify() + send_to_group() + fanotify_handle_event()
//	walk.heads      struct fsnotify_iter_info: the multi-head priority queue of marks
//	MaskHook        fsnotify_recalc_mask() → the object's i_fsnotify_mask
//	Group.Close     fanotify_release() + fsnotify_destroy_group(), without the latter's wait
//	                for group->user_waits: the kernel waits to free the group, which the
//	                garbage collector does here once no walk can reach it
//	Delivery.ID     the event fd a fanotify listener answers through struct fanotify_response
//
// # The guarantee (the 2016 problem, fixed in Linux 4.12)
//
// A listener sitting on a permission event must not freeze anything else. Notify holds no lock
// while it waits for a group's answer: like fsnotify_prepare_user_wait(), which pins the marks
// of the walk and drops SRCU, a walk holds immutable snapshots of each involved connector's
// mark list (lists are copy-on-write: a snapshot pins every mark in it, in place, for as long
// as the walk needs it, and the garbage collector frees nothing a walk can still reach) and
// resumes from its position in them after the answer, skipping marks detached meanwhile. So,
// while any number of permission events are unanswered in group A:
//
//   - closing another group B, even one with marks on the same objects, returns promptly;
//   - removing any mark returns promptly — also the mark A's event came through — and that mark
//     receives no event whose Notify starts after its removal returned;
//   - adding marks and dispatching events to other groups proceed;
//   - closing A answers all of A's pending permission events with A's close verdict (Allow by
//     default, as fanotify_release), and so every one that reaches A until its marks are
//     detached, and returns promptly: it waits for no walk and no source (a source that
//     dispatched an event and has not called Wait yet included); the waiting Notify calls
//     continue to lower-priority groups.
//
// TestPendingPermissionFreezesNothingElse checks each of these once; TestStalledGroupFreezesNothing
// under randomized churn (seed printed): while A never answers, mark changes on A's objects and
// on A's own mark, groups created and closed on them, and other groups' events return within
// a bound, another group's deadline verdicts fire no sooner than its deadline, A's identical
// permission events never merge, and A's close answers each with its close verdict; a Deny
// there ends their walks (lower groups never see them).
//
// A subtree mark sees an event through the event's Ancestors; an event whose ancestry the
// source could not learn (Event.AncestryUnknown) reaches the subtree and children-watching
// marks of every directory in its PossibleAncestors, as possibly inside: a source that cannot
// place an event never makes it look outside.
//
// A mark attached during the whole of a Notify receives its event; a mark detached before
// Notify began never does; marks added or removed while a Notify waits neither break its walk
// nor cause a second delivery to a group. A mark change is one step with the MaskHook's
// answer: when the hook refuses it, the change undoes itself before any other change of the
// object's marks begins, so it never brings back bits that another call removed.
//
// What the kernel lacks, we add: a per-group deadline with a deadline verdict, so a hung
// listener cannot hang the accessing process forever. It runs from when the event was queued
// to the group, however and whenever the source waits (Notify, Dispatch then Wait or Await):
// past it, the event is withdrawn and a late Respond gets ErrNoSuchEvent.
//
// # The per-event path's shortcuts
//
// Each holds an invariant that a test checks (and fails on a version without it):
//
//   - One lookup per object: Dispatch and Notify decide that an event concerns nobody from
//     firstMarked, which checks the event's objects in collect's order and under collect's
//     conditions, check for check, and collect takes the connector it found instead of
//     looking its object up again. Both lookups are of the same Notify, so which marks
//     a walk sees is unchanged: a mark attached during the whole Notify keeps its connector
//     in the table (a connector leaves it only with no marks). TestFirstMarkedFollowsCollect.
//     When the first marked object is a subtree (and the ancestry is known), collect starts
//     from it (collectFromSubtree): every object before it in collect's order was found
//     without a connector by firstMarked in this Notify, so none holds a mark attached
//     during the whole Notify; the objects after it are looked up as before, the rename's
//     target chain in full when the first was on the event's own chain.
//     TestCollectWithTwoMarks: every pair of marked objects, on every event shape.
//   - The filter names a connector: a lookup loads its object's filter slot (the bucket of
//     its hash) and takes the connector named there if it is the object's, without probing
//     the table. The slot is nil exactly while no connector of the bucket is in the table,
//     and names only a connector of the bucket that is in the table (or crowdedBucket, which
//     matches no object and sends lookups to the table); both change under the table's
//     lock, before the change that made them returns. So a lookup finds what the table
//     holds, as a probe would (TestFilterBuckets: every order of adds and removals of
//     objects sharing a bucket; TestFilterBucketChurn: an object's events all arrive while
//     others of its bucket come and go concurrently).
//   - Presence bits before the filter: a lookup first tests its object's bit in its kind's
//     presence word (Engine.present: 64 bits per kind, all on the Engine's first cache
//     line) and, clear, answers "no connector" without loading the filter slot (a line of
//     its own, cold at each event in a listener). A bit is set exactly while the table holds
//     a connector of the kind whose hash has the bit: set before the connector enters the
//     table, cleared after the last such connector left it, both under the table's lock
//     with per-bit counts; a kind's word is 0 exactly while it has no connector. So a bit is
//     never clear while a connector that was in the table throughout a lookup needs it, and
//     a mark attached during the whole Notify is found (TestPresenceBits: every order of adds
//     and removals of objects sharing a bit, beside other bits and kinds; TestPresenceBitChurn:
//     a Handler-answered mark's every Dispatch is answered while others of its bit come and
//     go concurrently).
//   - A walk gives back the event references it took ahead for its notification groups
//     (walk.credit) before each return of walk.run, not in a defer; the one call that may
//     panic with credit taken, a Handler's, runs under a defer that gives it back.
//     TestWalkCredit, TestWalkCreditHandlerPanics.
//   - Group.handle takes a Handler's plain allow (Allow, no errno) as it is, without answer,
//     which leaves such an answer unchanged; every other answer goes through answer
//     (TestHandlerAnswersInline, TestModel).
//   - DispatchInto is Dispatch writing its result into the caller's Response, every field
//     on every path (the Linux backend's per-event call: a returned Response is copied
//     through memory, a store-forwarding stall). TestDispatchIntoIsDispatch.
//   - PermissionState names the only group with permission marks, for a source that answers
//     Allow ahead of the walk (Event.AllowedAhead; the Linux backend's AnswerAhead): a new
//     state before a group's first permission mask is stored, another after its last is
//     detached (Mark.countPerm, under Group.markMu; the state under Engine.permMu), so while
//     one state names a group no other group's permission mark can be reached, and two
//     loads returning the same state saw no change between them. TestPermissionStateModel,
//     TestPermissionStateExcludesOtherGroups.
//
// (A permission event that a group's Handler answers is never queued to that group: no queue
// entry, deadline, overflow accounting or merge concerns it, as before these shortcuts.)
//
// # Goroutines
//
// The engine starts no goroutine of its own; it runs on its callers' goroutines, and on two
// kinds of runtime timer goroutines that it arms and that end by themselves:
//
//   - a group's deadline timer (time.AfterFunc, one per group with a deadline: armed for the
//     earliest deadline of its unanswered permission events when one is queued and it is not
//     armed, armed again by itself for the next one, stopped by Close): it withdraws the
//     events whose deadline passed. One per group rather than per event, because arming the
//     earliest timer of a P wakes a runtime thread, once per event on the fast path;
//   - an awaiting walk's context watcher (context.AfterFunc, armed by Walk.Await for each
//     group that holds the event, stopped when the walk resumes): it withdraws the event.
//
// Either may resume an awaiting walk (running lower groups' Handlers and the Await callback),
// as Respond and Close do: through the Executor the engine was given (Config.Executor: the
// Linux backend's event loop), or, without one, on its own goroutine.
//
// # Lock order
//
// Outer locks first; no lock is held across a channel send, a callback or a wait, with one
// documented exception (hookMu, which exists only to order mark changes with MaskHook calls):
//
//	connector.hookMu        orders one object's mark changes and MaskHook calls: every mark
//	│                       change (AddMark, ModifyMark, RemoveFromMark, RemoveMark, and
//	│                       FlushMarks and Close through it) holds it from the change through
//	│                       the hook's answer (and the undo if it refuses), so a refused change
//	│                       undoes only itself; the hook runs with only this lock held and
//	│                       must not call mark operations
//	└── Group.markMu        a group's mark list (kernel group->mark_mutex)
//	    └── connector.mu    one object's mark list (kernel conn->lock)
//	        ├── connTable.mu  the object → connector table (writers only; lookups take none)
//	        └── Engine.permMu the groups with permission marks, PermissionState (a leaf)
//	Group.mu                a group's queue and its counters, access list, shutdown flag and
//	                        permission events' answers, its deadlines (a leaf; the deadline
//	                        timer takes it to withdraw)
//	Engine.groupsMu         the group registry (a leaf)
//
// Functions named xxxLocked need the named lock held by the caller.
package engine
