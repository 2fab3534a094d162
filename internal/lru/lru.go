// Package lru is a bounded, least-recently-used cache, safe for concurrent use: for anything
// fsnotifyd remembers per file or per process that must not grow without bound (file digests,
// process attributes, ancestries).
//
// A Cache holds at most its capacity of entries; adding one more evicts the entry used least
// recently. Entries live in one slice linked by indexes, so a full cache allocates nothing
// when it replaces an entry, and the garbage collector sees one slice and one map however many
// entries there are.
//
// Locking: one mutex per Cache (Cache.mu), a leaf. No method calls out (no callback, channel
// send or log) while holding it. The cache starts no goroutine.
package lru

import "sync"

// Cache maps keys to values, keeping the capacity's most recently used entries. The zero
// value is not usable: call New.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	index map[K]int32 // key -> slot in nodes
	nodes []node[K, V]
	head  int32 // most recently used, -1 when empty
	tail  int32 // least recently used, -1 when empty
	free  int32 // first free slot (linked by next), -1 when none
	max   int
	evict uint64 // entries evicted to make room, for Stats
}

type node[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

// New returns a cache for at most max entries (at least 1, at most 1<<30).
func New[K comparable, V any](max int) *Cache[K, V] {
	if max < 1 {
		max = 1
	}
	if max > 1<<30 {
		max = 1 << 30
	}
	return &Cache[K, V]{index: make(map[K]int32), head: -1, tail: -1, free: -1, max: max}
}

// Get returns the value of key and marks it used.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.moveFrontLocked(i)
	return c.nodes[i].val, true
}

// Put sets the value of key and marks it used, evicting the least recently used entry when
// the cache is full.
func (c *Cache[K, V]) Put(key K, val V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[key]; ok {
		c.nodes[i].val = val
		c.moveFrontLocked(i)
		return
	}
	var i int32
	switch {
	case c.free >= 0:
		i = c.free
		c.free = c.nodes[i].next
	case len(c.nodes) < c.max:
		c.nodes = append(c.nodes, node[K, V]{})
		i = int32(len(c.nodes) - 1)
	default: // full: reuse the least recently used slot
		i = c.tail
		c.unlinkLocked(i)
		delete(c.index, c.nodes[i].key)
		c.evict++
	}
	c.nodes[i] = node[K, V]{key: key, val: val, prev: -1, next: -1}
	c.index[key] = i
	c.pushFrontLocked(i)
}

// Delete removes key, if present, and reports whether it was.
func (c *Cache[K, V]) Delete(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[key]
	if !ok {
		return false
	}
	c.unlinkLocked(i)
	delete(c.index, key)
	c.nodes[i] = node[K, V]{next: c.free} // drop references for the garbage collector
	c.free = i
	return true
}

// Clear removes every entry (and lets the memory go).
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index = make(map[K]int32)
	c.nodes = nil
	c.head, c.tail, c.free = -1, -1, -1
}

// Len returns the number of entries.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// Evictions returns how many entries were evicted to make room since New.
func (c *Cache[K, V]) Evictions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evict
}

func (c *Cache[K, V]) moveFrontLocked(i int32) {
	if c.head == i {
		return
	}
	c.unlinkLocked(i)
	c.pushFrontLocked(i)
}

func (c *Cache[K, V]) pushFrontLocked(i int32) {
	n := &c.nodes[i]
	n.prev, n.next = -1, c.head
	if c.head >= 0 {
		c.nodes[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

func (c *Cache[K, V]) unlinkLocked(i int32) {
	n := &c.nodes[i]
	if n.prev >= 0 {
		c.nodes[n.prev].next = n.next
	} else {
		c.head = n.next
	}
	if n.next >= 0 {
		c.nodes[n.next].prev = n.prev
	} else {
		c.tail = n.prev
	}
	n.prev, n.next = -1, -1
}
