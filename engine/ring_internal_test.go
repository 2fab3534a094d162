package engine

import "testing"

// burst pushes n entries and pops them all, checking their order.
func burst(t *testing.T, r *ring[int], n int) {
	t.Helper()
	for i := range n {
		r.push(i)
	}
	for i := range n {
		if v := r.pop(); v != i {
			t.Fatalf("pop %d of %d: got %d", i, n, v)
		}
	}
}

// TestRingKeepsBufferForLikeBursts: an emptied ring keeps a buffer one of its last
// shrinkAfter bursts used more than a quarter of, so bursts of a like size allocate nothing
// after the first.
func TestRingKeepsBufferForLikeBursts(t *testing.T) {
	var r ring[int]
	burst(t, &r, 5000)
	if len(r.buf) != 8192 {
		t.Fatalf("after a burst of 5000: buffer of %d entries, want 8192 kept", len(r.buf))
	}
	var rr ring[int]
	burst(t, &rr, 5000)
	if allocs := testing.AllocsPerRun(20, func() { burst(t, &rr, 5000) }); allocs != 0 {
		t.Fatalf("bursts of 5000 after the first: %.1f allocations each, want 0", allocs)
	}
	burst(t, &r, 2049) // just over a quarter of 8192: kept
	if len(r.buf) != 8192 {
		t.Fatalf("after a burst of 2049: buffer of %d entries, want 8192 kept", len(r.buf))
	}
	// Small bursts between large ones: never shrinkAfter small ones in a row.
	for i := range 5 * shrinkAfter {
		if i%shrinkAfter == shrinkAfter-1 {
			burst(t, &r, 5000)
		} else {
			burst(t, &r, 10)
		}
		if len(r.buf) != 8192 {
			t.Fatalf("burst %d: buffer of %d entries, want 8192 kept", i, len(r.buf))
		}
	}
}

// TestRingGivesBackAfterSmallerBursts: an emptied ring gives back a buffer its last
// shrinkAfter bursts each used a quarter of or less, but never one of 1,024 entries or fewer.
func TestRingGivesBackAfterSmallerBursts(t *testing.T) {
	var r ring[int]
	burst(t, &r, 5000)
	for i := range shrinkAfter {
		if r.buf == nil {
			t.Fatalf("buffer given back after %d small bursts, want %d", i, shrinkAfter)
		}
		burst(t, &r, 2048) // a quarter of 8192
	}
	if r.buf != nil {
		t.Fatalf("after %d bursts of 2048 in a buffer of 8192: buffer of %d entries kept, want given back", shrinkAfter, len(r.buf))
	}
	burst(t, &r, 1000)
	for range 2 * shrinkAfter {
		burst(t, &r, 1)
	}
	if len(r.buf) != 1024 {
		t.Fatalf("a 1024-entry buffer after a burst of 1: %d entries, want kept", len(r.buf))
	}
	// A burst that does not empty the ring frees nothing in the middle.
	for i := range 3000 {
		r.push(i)
	}
	for i := range 2999 {
		if v := r.pop(); v != i {
			t.Fatalf("pop %d: got %d", i, v)
		}
	}
	if len(r.buf) != 4096 || r.size != 1 {
		t.Fatalf("a ring with an entry left: buffer %d size %d, want 4096 and 1", len(r.buf), r.size)
	}
}
