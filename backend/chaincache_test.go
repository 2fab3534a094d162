//go:build linux

package backend

import (
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
)

// TestChainCacheFront: the table in front of the chain cache's LRU (chainCache.front) serves
// an object only its own entry, the latest put for it, checked as the LRU's entries are: two
// objects that share a slot each get their own chain (a front that did not compare the
// object served the other's), a put replaces what the front held for the object, and an
// entry the LRU evicted but the front still holds is refused when its ctime or mount no
// longer match.
func TestChainCacheFront(t *testing.T) {
	c := chainCache{m: lru.New[engine.ID, *chainEntry](2)} // an LRU of two: the front outlives it
	a := engine.ID{Hi: 7, Lo: 100}
	b := a
	for b.Lo++; frontSlot(b) != frontSlot(a); b.Lo++ {
	}
	var others []engine.ID // objects in other slots, to evict a from the LRU
	for o := b; len(others) < 2; {
		if o.Lo++; frontSlot(o) != frontSlot(a) {
			others = append(others, o)
		}
	}
	chain := func(n uint64) []engine.ID { return []engine.ID{{Hi: 7, Lo: n}} }
	ea := &chainEntry{ctime: 1, mnt: 3, chain: chain(1)}
	eb := &chainEntry{ctime: 1, mnt: 3, chain: chain(2)}

	c.put(a, ea)
	if e, ok := c.get(b, 1, 3); ok {
		t.Fatalf("b, never put, shares a's slot: got %v, want a miss", e.chain)
	}
	c.put(b, eb) // takes the slot
	if e, ok := c.get(b, 1, 3); !ok || e != eb {
		t.Fatalf("b: got %v %v, want its own entry", e, ok)
	}
	if e, ok := c.get(a, 1, 3); ok && e != ea {
		t.Fatalf("a, after b took the slot: got b's chain %v", e.chain)
	}
	if e, ok := c.get(a, 1, 3); !ok || e != ea { // from the LRU: the front holds a again
		t.Fatalf("a: got %v %v, want its entry", e, ok)
	}
	ea2 := &chainEntry{ctime: 2, mnt: 3, chain: chain(3)}
	c.put(a, ea2)
	if e, ok := c.get(a, 2, 3); !ok || e != ea2 {
		t.Fatalf("a after a new put: got %v %v, want the new entry", e, ok)
	}
	if _, ok := c.get(a, 1, 3); ok {
		t.Fatal("a with its old ctime: got an entry, want a miss (the entry says ctime 2)")
	}
	for _, o := range others { // the LRU evicts a; the front keeps it
		c.put(o, &chainEntry{ctime: 1, mnt: 3, chain: chain(4)})
	}
	if _, ok := c.m.Get(a); ok {
		t.Fatal("the LRU of two still has a")
	}
	if e, ok := c.get(a, 2, 3); !ok || e != ea2 {
		t.Fatalf("a, evicted from the LRU, from the front: got %v %v, want its entry", e, ok)
	}
	if _, ok := c.get(a, 2, 4); ok {
		t.Fatal("a through another mount: got an entry, want a miss")
	}
}
