//go:build linux

// Package daemon is fsnotifyd's server: it holds the kernel side (one backend) once and serves
// many client processes over a unix socket, each client an engine group with its own marks,
// queue and permission answers, so that no client can stall another, the daemon or the host.
// The daemon side of one connection is a session (session.go).
//
// The package is public for programs that embed a daemon rather than run fsnotifyd serve: New,
// Run on a listener of their own, Stats, MetricsHandler and Close, in public types (backend,
// fsevent) only; TestEmbedAsLibrary uses it so. Clients talk to it with package client.
//
// Events reach a client two ways. A notification client's events wait in its engine group's
// queue until a flush sends them, with every other notification client's (fanout.go): at once
// on the goroutine that queued them after a quiet millisecond, else together at most once an
// interval (1-5 ms, growing with the clients), by the backend's FID reader before it waits
// again when it is awake (backend.ReaderHook), by a timer when it is not, each event
// encoded once for the clients that see it alike, without waiting for any socket; what a
// socket cannot take goes to that session's writer. Its group merges
// only exact repeats of its newest unread event (engine.Options.MergeLast), so it gets one
// operation per event in kernel order. A permission client's events are sent by the
// backend's event loop itself, the moment they are queued (session.forward, without waiting
// for the socket), and its answers are read on that loop too (inline.go): the answer is acted
// on by the thread that read the kernel event, with no hand-off. docs/design/fastpath.md
// follows one permission event through. The loop never waits on a client socket, a log write,
// or a lock a client goroutine holds across a wait. A client that reads slowly overflows its
// own queue (it gets an Overflow); a client that disconnects, crashes or is killed has its
// group closed, which answers its pending permission events with its close verdict at once.
//
// Authorization (no confused deputy): a client names what to watch by a file descriptor it
// opened itself, never by a path the daemon would resolve with its own privileges; the daemon
// checks that the client could read it (AccessAs with the client's credentials). Mount and
// filesystem marks and the permission classes need uid 0 or a uid/gid the config allows, and so
// does receiving permission events' descriptors. Other clients see only paths below what they
// marked.
//
// Hostile local users: every connection counts from accept(2) against max_clients, and an
// unprivileged one also against max_clients_per_uid and the share reserved_clients leaves, so
// that root and allowed uids can always connect; a connection silent for handshake_timeout,
// and an unprivileged client with no marks idle for idle_timeout, are closed; accept errors
// (EMFILE and kin) are survived (Run). See docs/daemon.md and docs/security.md.
//
// # Lock order
//
// Outer locks first. No lock is held across a channel send that can block, a log write or a
// callback, except as noted; the loop only TryLocks the two locks held across waits.
//
//	Server.mu              the sessions, connection counts (connTable), totals of sessions
//	│                      gone, unprivileged uids' queue budgets (their client counts and
//	│                      gone totals; the budgets' own counts, and the unprivileged total's,
//	│                      are atomics the groups change under their Group.mu and the
//	│                      writers under sendMu), unprivileged marks' counts (held, marks);
//	│                      held with no session lock
//	└── engine.Group.mu    Group.Stats of each session, read in one step with the totals
//	fanout.flushMu         the one notification flush under way and its buffers and memo
//	│                      (fanout.go); only ever TryLocked (a flush never waits for another)
//	└── session.sendMu     sending: leftover, pending, the send buffers, the batch's listing
//	    │                  answers (listMemo). writeLoop and notifyWriter hold it while they
//	    │                  write to their own socket (which may wait); forward and a flush,
//	    │                  which never wait, only TryLock it
//	    ├── session.mu     a session's marks (a leaf)
//	    ├── lru.Cache.mu   session.sent, its permission events' send times (a leaf)
//	    ├── engine.Group.mu  TryReadBatch (which may call OnQueue, fanout.queued, with no
//	    │                  engine lock held: it takes only fanout.mu and TryLocks flushMu)
//	    ├── evloop.Loop.mu forward's Post of publishRing (the ring's publication, ring.go; a
//	    │                  leaf)
//	    └── proto.Conn's write lock (TryLock from a flush)
//	fanout.mu              the dirty list, the last flush's time, the flush wanted, the
//	                       timer, whether the FID reader is awake (a leaf)
//	session.inlineMu       inline reading (inline.go): held for one turn of takeLocked, which
//	│                      never waits; the loop's onReadable only TryLocks it
//	├── lru.Cache.mu       respond: the send time (session.sent)
//	├── engine.Group.mu    Group.Respond
//	└── evloop.Loop.mu     Registration.Pause/Resume, and the Post of a walk's continuation
//	rateLog.mu             log rate limits (a leaf)
//
// The permission ring (ring.go) adds no lock: its sending half runs under sendMu (forward,
// writeLoop, and publishRing, posted to the loop by forward, which only TryLocks it), its
// answering half on the loop (onKick, one goroutine), and they share only atomic words.
//
// A session's locks never nest inside another session's on the loop: a walk's continuation,
// which may queue the event to another session's group (its forward), is posted and runs
// after the callback that read the answer has returned, with no lock held. (Off the loop —
// after the backend closed, when Post runs the continuation on the caller — it may run under
// one session's inlineMu and TryLock another's sendMu: a TryLock cannot deadlock.)
//
// Each of Server.mu, session.sendMu, session.inlineMu and session.mu is a lockorder.Mutex with
// the class below: tests built with -tags lockorder (.ci/run) panic on any Lock that takes
// them against this order.
//
// # Goroutines
//
//   - Run's own: the accept loop; it admits or refuses each connection without waiting on it.
//     Ends when its ctx ends or the listener is closed.
//   - reapIdle, started by Run: closes idle unprivileged sessions. Ended by Run (its context),
//     which waits for it.
//   - serve, one per admitted connection, started by accept (Server.wg): the handshake, then
//     the client's requests in order (session.run's readLoop, or inlineLoop for a permission
//     client read on the loop). Ends when the connection does (the client leaves, a protocol
//     error, session.close); Run and Close end every session and wait for them (Server.wg).
//   - writeLoop, one per permission session, started by serve (run or runInline) and waited
//     for by it: sends what forward could not. Ends when the session closes (its context is
//     cancelled in session.close) or its group does.
//   - notifyWriter, one per notification session, started by run and waited for by it: asleep
//     until a flush hands it what its socket could not take at once, or an unprivileged
//     client's events (checked with the client's credentials, never on a reader's
//     goroutine); then it writes, waiting for the socket, drains the group and sleeps again.
//     Ends when the session closes, or closes it when its connection breaks.
//   - The fanout's timer (time.AfterFunc, armed when events wait for a flush and the FID
//     reader is not awake to make it, fanout.wantLocked; a runtime goroutine that ends by
//     itself): flushes. Stopped by Close. The FID reader's flushes (readerHook.Idle) run on
//     the backend's reader goroutine, which Close stops calling (ClearReaderHook).
//   - With Options.Export and export lines, the export loop (export.go): reads the export
//     group at most once per exportInterval (5 ms; up to exportMaxInterval, 50 ms, while
//     reads bring few records) while events keep coming (at once after a read that filled
//     its buffer), and appends each read's records in one AppendBatch,
//     which never waits; no lock is held across it.
//     Stopped by Close (stopExport), after appending what the group still holds.
//     Started by New (startExport), ended by Close (stopExport closes the group and waits for it).
//   - Callbacks on the backend's event loop (a goroutine the backend owns and ends at its
//     Close): session.onReadable, session.onKick (a ring client's answers, ring.go), and forward and fanout.queued (a flush) through the engine's
//     OnQueue, also on the backend's other readers. They own nothing and never wait.
//   - The engine's deadline timers and context watchers (runtime goroutines that end by
//     themselves, see package engine), and context.AfterFunc callbacks that close a connection
//     when Run's context ends (stopped when serve returns).
package daemon

import "github.com/fsnotifyd/fsnotifyd/internal/lockorder"

// The lock classes of the tree above, outer first.
var (
	lockServer  = &lockorder.Class{Name: "daemon.Server.mu", Rank: 10}
	lockSend    = &lockorder.Class{Name: "daemon.session.sendMu", Rank: 20}
	lockInline  = &lockorder.Class{Name: "daemon.session.inlineMu", Rank: 20}
	lockSession = &lockorder.Class{Name: "daemon.session.mu", Rank: 30}
)
