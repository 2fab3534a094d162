//go:build !lockorder

package lockorder

import "sync"

// Mutex is a sync.Mutex that carries its Class; only a lockorder build checks it.
type Mutex struct {
	sync.Mutex
}

// Init sets the mutex's class (a lockorder build checks it; this one ignores it).
func (m *Mutex) Init(*Class) {}

// Enabled reports whether this build checks lock order.
const Enabled = false
