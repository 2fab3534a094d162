//go:build linux

package backend

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Exemptions say which processes' permission events are allowed at once, never decided, so
// that a listener never waits on an access it caused itself: this process, and the helper
// processes it starts (a scanner launcher) with the members of their sessions. See
// docs/security.md, "Exempt processes", for why each is sound:
//
//   - This process: its pid is its own while it lives, and its listener dies with it.
//   - A helper registered with Add: exempt only while the process registered — identified by
//     a pidfd taken when it was registered, while the caller still held it as an unreaped child
//     — holds its pid, running or as a zombie. Every check asks the pidfd (pidfd_send_signal
//     with signal 0), so once the helper is reaped its pid, and whoever gets that pid next, is
//     not exempt, whether or not the caller has removed it yet.
//   - A helper's descendants: a helper that leads its own session (started with setsid) has
//     its session's members exempt: the processes it forked and theirs, as long as they stay
//     in the session. A process enters a session only by being forked by a member, and leaves
//     it only by setsid; a session's id is its leader's pid, which no other process can hold
//     while the leader (a live helper) does. So a process with that session id is one of the
//     helper's own, and nothing an unprivileged process does can make it one.
//   - While a helper starts (Spawning), before Add can name it: the direct children of this
//     process. Only this process can create them (and, as the parent is read from
//     /proc/PID/stat, no other process can claim to be one).
//
// Checking costs nothing for this process's own pid; while helpers are registered or one is
// starting, it costs one read of /proc/PID/stat for other processes, and a pidfd_send_signal
// for a helper's.
type Exemptions struct {
	self int32

	mu      lockorder.Mutex         // lockExempt
	helpers map[int32]*exemptHelper // guarded by mu
	n       atomic.Int32            // len(helpers), read without mu

	spawning atomic.Int32
}

type exemptHelper struct {
	pid    int32
	pidfd  *os.File // a pidfd; Close is safe while a check uses it (see alive)
	leader bool     // pid led its own session when registered: its members are exempt
	refs   int      // guarded by Exemptions.mu
}

// NewExemptions returns Exemptions for this process.
func NewExemptions() *Exemptions {
	e := &Exemptions{self: int32(os.Getpid()), helpers: make(map[int32]*exemptHelper)}
	e.mu.Init(lockExempt)
	return e
}

// Exempt reports whether pid's permission events are to be allowed without a decision.
func (e *Exemptions) Exempt(pid int32) bool {
	if pid == e.self {
		return true
	}
	spawning := e.spawning.Load() > 0
	if pid <= 0 || (!spawning && e.n.Load() == 0) {
		return false
	}
	if h := e.lookup(pid); h != nil && h.alive() {
		return true
	}
	ppid, sid, err := procfs.ReadStat(pid)
	if err != nil {
		return false
	}
	if spawning && ppid == e.self {
		return true
	}
	if sid != pid {
		if h := e.lookup(sid); h != nil && h.leader && h.alive() {
			return true
		}
	}
	return false
}

// mayExempt reports whether Exempt(pid) may be true: it is false for any pid but this
// process's while no helper is registered or starting (the embedded guard's case), which
// mayExempt tells from two loads, inlined at the caller (Exempt, with its call, is not).
func (e *Exemptions) mayExempt(pid int32) bool {
	return pid == e.self || e.spawning.Load() > 0 || e.n.Load() != 0
}

func (e *Exemptions) lookup(pid int32) *exemptHelper {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.helpers[pid]
}

// alive reports whether the helper still holds its pid. The check runs inside the pidfd's
// RawConn.Control, which keeps a concurrent Close from closing (and the number from being
// reused by another descriptor) until it returns.
func (h *exemptHelper) alive() bool {
	rc, err := h.pidfd.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	if err := rc.Control(func(fd uintptr) { ok = sys.PidfdAlive(int(fd)) }); err != nil {
		return false
	}
	return ok
}

// Add registers helper pid, a child this process started and has not reaped (so that the pid
// is surely the helper's): its permission events are allowed at once, and, if it leads its own
// session (SysProcAttr.Setsid), so are those of the members of its session. Call done when the
// helper is gone; it stops being exempt by itself once it is reaped. An error means pid is
// not a live process (nothing is exempt then).
func (e *Exemptions) Add(pid int) (done func(), err error) {
	fd, err := sys.PidfdOpen(pid, 0)
	if err != nil {
		return func() {}, err
	}
	_, sid, err := procfs.ReadStat(int32(pid))
	if err != nil {
		sys.Close(fd)
		return func() {}, err
	}
	h := &exemptHelper{pid: int32(pid), pidfd: os.NewFile(uintptr(fd), "pidfd"), leader: sid == int32(pid), refs: 1}
	e.mu.Lock()
	if old := e.helpers[h.pid]; old != nil && old.alive() {
		old.refs++ // the same process, registered twice
		e.mu.Unlock()
		h.pidfd.Close()
		h = old
	} else {
		e.helpers[h.pid] = h // replaces an entry whose process is gone
		e.n.Store(int32(len(e.helpers)))
		e.mu.Unlock()
	}
	var once sync.Once
	return func() { once.Do(func() { e.release(h) }) }, nil
}

func (e *Exemptions) release(h *exemptHelper) {
	e.mu.Lock()
	h.refs--
	last := h.refs == 0
	if last && e.helpers[h.pid] == h {
		delete(e.helpers, h.pid)
		e.n.Store(int32(len(e.helpers)))
	}
	e.mu.Unlock()
	if last {
		h.pidfd.Close()
	}
}

// Spawning opens a window in which helpers are being started, before Add can name them (their
// execve comes first, and may need a verdict): until end is called, this process's direct
// children are exempt too.
func (e *Exemptions) Spawning() (end func()) {
	e.spawning.Add(1)
	var once sync.Once
	return func() { once.Do(func() { e.spawning.Add(-1) }) }
}

// ExemptPid exempts a helper process this process started (a scanner, say) and has not
// reaped: its permission events are allowed at once and never dispatched, and so are those of
// its session's members if it leads its own session (see Exemptions.Add). Call the returned
// function when the helper has exited; a pid that is not a live process is not exempted.
func (b *Backend) ExemptPid(pid int) (done func()) {
	done, _ = b.exempts.Add(pid)
	return done
}

// Spawning marks a window in which helpers are being started: until end is called, this
// process's direct children are exempt (see Exemptions.Spawning).
func (b *Backend) Spawning() (end func()) { return b.exempts.Spawning() }

// Exemptions are the processes whose permission events the backend allows without a
// decision: this process and its registered helpers.
func (b *Backend) Exemptions() *Exemptions { return b.exempts }
