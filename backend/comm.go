//go:build linux

package backend

import (
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
)

// commCache remembers process names (and, with withExe, executables) for a short while: the
// readers look a pid up once per burst of its events, right when the events are read, because
// a short-lived process (a cat) has often exited by the time a consumer could read /proc. Both
// kernel groups' readers share it, so that whichever reads first names the process for the
// other. Bounded by internal/lru (commEntries pids, the least recently used go first).
type commCache struct {
	withExe bool // set before the readers start
	m       *lru.Cache[int32, commEntry]
}

// commEntries bounds the pids remembered.
const commEntries = 4096

func newCommCache(withExe bool) commCache {
	return commCache{withExe: withExe, m: lru.New[int32, commEntry](commEntries)}
}

type commEntry struct {
	comm, exe  string
	exeDeleted bool // exe was deleted (procfs.ReadExeLink)
	at         time.Time
	// start is the process's start time (procfs.ReadStartTime; 0 if unknown), checked
	// again by refresh after commRecheck: another process that took the pid is read anew.
	start   uint64
	checked time.Time
	// execing: the process was seen exec'ing (OPEN_EXEC) at execAt, its name then preComm.
	// execve opens and reads the program (and its interpreter) before the kernel gives the
	// process the new program's executable, then its name: until the name read differs
	// from preComm, or commTTL has passed (a program of the same name), each batch with
	// events of the process reads them again.
	execing bool
	preComm string
	execAt  time.Time
}

// commTTL bounds how long a name is trusted; within it, a pid's process is checked to be the
// same (its start time) once per commRecheck at most, when a batch has its events: a user who
// forks fast cycles through pid_max 32768 in about a second, not in commRecheck, and a pid
// taken again by another process within commTTL was shown with the name and executable of
// the one that had it (TestTraceNamesAReusedPidByItsNewProcess).
const (
	commTTL     = 2 * time.Second
	commRecheck = 100 * time.Millisecond
)

// refresh is get for the first pass over a batch (kgroup.countBatch): it reads the process
// again when its last read was at an exec, or when execing says this batch has one (a
// process that ran another program within commTTL was shown with the old one's name and
// executable, TestTraceJSONExeAfterExec).
func (c *commCache) refresh(pid int32, now time.Time, execing bool) {
	if pid <= 0 {
		return
	}
	e, ok := c.m.Get(pid)
	if ok && !execing && !e.execing && now.Sub(e.at) < commTTL {
		if now.Sub(e.checked) < commRecheck || e.start == 0 {
			return
		}
		if st, err := procfs.ReadStartTime(pid); err != nil || st == e.start {
			// The same process, or gone (its events, read late, are its: the name kept).
			e.checked = now
			c.m.Put(pid, e)
			return
		}
		ok = false // another process has the pid now
	}
	n := c.read(pid, now)
	switch {
	case execing && ok && e.execing:
		n.execing, n.preComm, n.execAt = true, e.preComm, e.execAt // its interpreter
	case execing && ok && now.Sub(e.at) < commTTL:
		n.execing, n.preComm, n.execAt = true, e.comm, now
	case execing:
		n.execing, n.preComm, n.execAt = true, n.comm, now
	case ok && e.execing && n.comm == e.preComm && now.Sub(e.execAt) < commTTL:
		n.execing, n.preComm, n.execAt = true, e.preComm, e.execAt // not done yet
	}
	c.m.Put(pid, n)
}

// get returns the process's name and, with withExe, its executable ("" where unknown) and
// whether that was deleted.
func (c *commCache) get(pid int32, now time.Time) (comm, exe string, exeDeleted bool) {
	if pid <= 0 {
		return "", "", false
	}
	e, ok := c.m.Get(pid)
	if ok && now.Sub(e.at) < commTTL {
		// Known, or known to be gone: a process that had exited when its first event was
		// read stays unnamed for the TTL (its later events are not worth a failed open of
		// /proc each — a reader behind a flood from a finished process would pay one per
		// event).
		return e.comm, e.exe, e.exeDeleted
	}
	n := c.read(pid, now)
	c.m.Put(pid, n)
	return n.comm, n.exe, n.exeDeleted
}

// read reads the process's name (and executable) from /proc.
func (c *commCache) read(pid int32, now time.Time) commEntry {
	start, _ := procfs.ReadStartTime(pid) // first: the name read after is its, or a later one's
	comm, err := procfs.ReadComm(pid)
	var exe string
	var deleted bool
	if c.withExe && err == nil {
		exe, deleted, _ = procfs.ReadExeLink(pid)
	}
	return commEntry{comm: comm, exe: exe, exeDeleted: deleted, at: now, start: start, checked: now}
}
