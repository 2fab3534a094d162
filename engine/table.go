package engine

import (
	"sync"
	"sync/atomic"
)

// connTable maps objects to connectors. Lookups take no lock: they load the current table
// and probe it with atomic loads (Notify's hot path, the kernel's i_fsnotify_marks pointer).
// Writers serialize on mu, store into the current table in place, and publish a rebuilt
// table when it fills up. A lookup that raced with a removal may return a connector just
// retired; its marks are detached, so it delivers nothing, and mark operations retry when
// they find it detached.
type connTable struct {
	mu   sync.Mutex
	cur  atomic.Pointer[slots]
	live int // connectors in the table; guarded by mu
	used int // live plus tombstones; guarded by mu
}

type slots struct {
	s    []atomic.Pointer[connector]
	mask uint64
}

// tombstone marks a removed slot so that probes continue past it.
var tombstone = &connector{}

func newSlots(n int) *slots {
	return &slots{s: make([]atomic.Pointer[connector], n), mask: uint64(n - 1)}
}

func (t *connTable) init() { t.cur.Store(newSlots(64)) }

// get finds obj, whose hash is h.
func (t *connTable) get(obj Object, h uint64) *connector {
	sl := t.cur.Load()
	for i := h & sl.mask; ; i = (i + 1) & sl.mask {
		c := sl.s[i].Load()
		if c == nil {
			return nil
		}
		if c != tombstone && c.obj == obj {
			return c
		}
	}
}

// putLocked inserts c, which must not be present. Needs t.mu.
func (t *connTable) putLocked(c *connector, h uint64) {
	sl := t.cur.Load()
	if (t.used+1)*2 > len(sl.s) {
		n := len(sl.s)
		for (t.live+1)*4 > n {
			n *= 2
		}
		sl = t.rebuildLocked(n)
	}
	for i := h & sl.mask; ; i = (i + 1) & sl.mask {
		// Reusing a tombstone is safe: a concurrent probe for another key just goes on.
		if x := sl.s[i].Load(); x == nil || x == tombstone {
			if x == nil {
				t.used++
			}
			sl.s[i].Store(c)
			t.live++
			return
		}
	}
}

// deleteLocked removes c. Needs t.mu.
func (t *connTable) deleteLocked(c *connector, h uint64) bool {
	sl := t.cur.Load()
	for i := h & sl.mask; ; i = (i + 1) & sl.mask {
		x := sl.s[i].Load()
		if x == nil {
			return false
		}
		if x == c {
			sl.s[i].Store(tombstone)
			t.live--
			if len(sl.s) > 64 && t.live*16 < len(sl.s) {
				t.rebuildLocked(len(sl.s) / 4) // shrink after a burst of removals
			}
			return true
		}
	}
}

// rebuildLocked publishes a table of n slots holding the live connectors. Needs t.mu.
func (t *connTable) rebuildLocked(n int) *slots {
	old := t.cur.Load()
	sl := newSlots(n)
	for i := range old.s {
		c := old.s[i].Load()
		if c == nil || c == tombstone {
			continue
		}
		for j := hashObject(c.obj) & sl.mask; ; j = (j + 1) & sl.mask {
			if sl.s[j].Load() == nil {
				sl.s[j].Store(c)
				break
			}
		}
	}
	t.used = t.live
	t.cur.Store(sl)
	return sl
}
