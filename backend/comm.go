//go:build linux

package backend

import (
	"sync"
	"time"
)

// commCache remembers process names for a short while: the readers look a pid up once per
// burst of its events, right when the events are read, because a short-lived process (a cat)
// has often exited by the time a consumer could read /proc. Both kernel groups' readers share
// it, so that whichever reads first names the process for the other.
type commCache struct {
	mu sync.Mutex
	m  map[int32]commEntry
}

type commEntry struct {
	comm string
	at   time.Time
}

// commTTL bounds how long a name is trusted: a pid is reused only after the pid space wraps,
// which takes far longer on any real system.
const commTTL = 2 * time.Second

func (c *commCache) get(pid int32, now time.Time) string {
	if pid <= 0 {
		return ""
	}
	c.mu.Lock()
	e, ok := c.m[pid]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < commTTL && e.comm != "" {
		return e.comm
	}
	comm, err := readComm(pid)
	if err != nil && ok && now.Sub(e.at) < commTTL {
		return e.comm
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 4096 {
		c.m = make(map[int32]commEntry)
	}
	c.m[pid] = commEntry{comm: comm, at: now}
	c.mu.Unlock()
	return comm
}
