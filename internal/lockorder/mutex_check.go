//go:build lockorder

package lockorder

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
)

// Enabled reports whether this build checks lock order.
const Enabled = true

// Mutex is a sync.Mutex whose Lock checks the lock order of its goroutine.
type Mutex struct {
	mu    sync.Mutex
	class *Class
	owner int64 // the goroutine holding it (for an Unlock by another goroutine)
}

// Init sets the mutex's class; a mutex without one is not checked.
func (m *Mutex) Init(c *Class) { m.class = c }

var registry struct {
	mu   sync.Mutex
	held map[int64][]*Mutex
}

func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseInt(string(b), 10, 64)
	return id
}

// Lock checks the order, then locks.
func (m *Mutex) Lock() {
	if m.class == nil {
		m.mu.Lock()
		return
	}
	id := goid()
	registry.mu.Lock()
	var bad *Mutex
	for _, h := range registry.held[id] {
		if h.class.Rank >= m.class.Rank {
			bad = h
			break
		}
	}
	registry.mu.Unlock()
	if bad != nil {
		panic(fmt.Sprintf("lockorder: %s (rank %d) taken while holding %s (rank %d): the lock tree says otherwise",
			m.class.Name, m.class.Rank, bad.class.Name, bad.class.Rank))
	}
	m.mu.Lock()
	m.hold(id)
}

// TryLock locks if it can, without waiting (and so without an order to keep).
func (m *Mutex) TryLock() bool {
	if !m.mu.TryLock() {
		return false
	}
	if m.class != nil {
		m.hold(goid())
	}
	return true
}

func (m *Mutex) hold(id int64) {
	m.owner = id
	registry.mu.Lock()
	if registry.held == nil {
		registry.held = make(map[int64][]*Mutex)
	}
	registry.held[id] = append(registry.held[id], m)
	registry.mu.Unlock()
}

// Unlock unlocks.
func (m *Mutex) Unlock() {
	if m.class != nil {
		id := m.owner
		registry.mu.Lock()
		hs := registry.held[id]
		for i := len(hs) - 1; i >= 0; i-- {
			if hs[i] == m {
				hs = append(hs[:i], hs[i+1:]...)
				break
			}
		}
		if len(hs) == 0 {
			delete(registry.held, id)
		} else {
			registry.held[id] = hs
		}
		registry.mu.Unlock()
	}
	m.mu.Unlock()
}
