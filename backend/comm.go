//go:build linux

package backend

import (
	"strconv"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
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
	comm, exe string
	at        time.Time
}

// commTTL bounds how long a name is trusted: a pid is reused only after the pid space wraps,
// which takes far longer on any real system.
const commTTL = 2 * time.Second

// get returns the process's name and, with withExe, its executable ("" where unknown).
func (c *commCache) get(pid int32, now time.Time) (comm, exe string) {
	if pid <= 0 {
		return "", ""
	}
	e, ok := c.m.Get(pid)
	if ok && now.Sub(e.at) < commTTL {
		// Known, or known to be gone: a process that had exited when its first event was
		// read stays unnamed for the TTL (its later events are not worth a failed open of
		// /proc each — a reader behind a flood from a finished process would pay one per
		// event).
		return e.comm, e.exe
	}
	comm, err := procfs.ReadComm(pid)
	if c.withExe && err == nil {
		exe, _ = sys.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe")
	}
	c.m.Put(pid, commEntry{comm: comm, exe: exe, at: now})
	return comm, exe
}
