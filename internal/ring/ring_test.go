package ring

import "testing"

// burst pushes n entries and pops them all, checking their order.
func burst(t *testing.T, r *Ring[int], n int) {
	t.Helper()
	for i := range n {
		r.Push(i)
	}
	for i := range n {
		if v := r.Pop(); v != i {
			t.Fatalf("pop %d of %d: got %d", i, n, v)
		}
	}
}

// TestRingKeepsBufferForLikeBursts: an emptied ring keeps a buffer one of its last
// ShrinkAfter bursts used more than a quarter of, so bursts of a like size allocate nothing
// after the first.
func TestRingKeepsBufferForLikeBursts(t *testing.T) {
	var r Ring[int]
	burst(t, &r, 5000)
	if len(r.buf) != 8192 {
		t.Fatalf("after a burst of 5000: buffer of %d entries, want 8192 kept", len(r.buf))
	}
	var rr Ring[int]
	burst(t, &rr, 5000)
	if allocs := testing.AllocsPerRun(20, func() { burst(t, &rr, 5000) }); allocs != 0 {
		t.Fatalf("bursts of 5000 after the first: %.1f allocations each, want 0", allocs)
	}
	burst(t, &r, 2049) // just over a quarter of 8192: kept
	if len(r.buf) != 8192 {
		t.Fatalf("after a burst of 2049: buffer of %d entries, want 8192 kept", len(r.buf))
	}
	// Small bursts between large ones: never ShrinkAfter small ones in a row.
	for i := range 5 * ShrinkAfter {
		if i%ShrinkAfter == ShrinkAfter-1 {
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
// ShrinkAfter bursts each used a quarter of or less, but never one of 1,024 entries or fewer.
func TestRingGivesBackAfterSmallerBursts(t *testing.T) {
	var r Ring[int]
	burst(t, &r, 5000)
	for i := range ShrinkAfter {
		if r.buf == nil {
			t.Fatalf("buffer given back after %d small bursts, want %d", i, ShrinkAfter)
		}
		burst(t, &r, 2048) // a quarter of 8192
	}
	if r.buf != nil {
		t.Fatalf("after %d bursts of 2048 in a buffer of 8192: buffer of %d entries kept, want given back", ShrinkAfter, len(r.buf))
	}
	burst(t, &r, 1000)
	for range 2 * ShrinkAfter {
		burst(t, &r, 1)
	}
	if len(r.buf) != 1024 {
		t.Fatalf("a 1024-entry buffer after a burst of 1: %d entries, want kept", len(r.buf))
	}
	// A burst that does not empty the ring frees nothing in the middle.
	for i := range 3000 {
		r.Push(i)
	}
	for i := range 2999 {
		if v := r.Pop(); v != i {
			t.Fatalf("pop %d: got %d", i, v)
		}
	}
	if len(r.buf) != 4096 || r.size != 1 {
		t.Fatalf("a ring with an entry left: buffer %d size %d, want 4096 and 1", len(r.buf), r.size)
	}
}

// TestRingKeepAndPopInto: with Keep set, an emptied buffer of Keep entries or fewer is kept
// and a larger one given back after ShrinkAfter small bursts; PopInto moves entries in order,
// clears their slots and counts them in the positions; Drain visits what is left in order,
// gives the buffer back and keeps Keep.
func TestRingKeepAndPopInto(t *testing.T) {
	r := Ring[*int]{Keep: 256}
	vals := make([]int, 600)
	for i := range vals {
		vals[i] = i
		p := &vals[i]
		r.PushFrom(&p)
	}
	if r.Cap() != 1024 {
		t.Fatalf("600 entries: buffer of %d, want 1024", r.Cap())
	}
	dst := make([]*int, 32)
	for got := 0; got < 600; {
		n := r.PopInto(dst)
		if n == 0 {
			t.Fatalf("PopInto moved nothing with %d entries left", r.Len())
		}
		for i := range n {
			if *dst[i] != got+i {
				t.Fatalf("PopInto: entry %d is %d", got+i, *dst[i])
			}
		}
		got += n
	}
	if r.End() != 600 || r.Live(599) {
		t.Fatalf("after popping 600: End %d, Live(599) %v; want 600, false", r.End(), r.Live(599))
	}
	for i := range r.Cap() {
		if r.buf[i] != nil {
			t.Fatalf("slot %d still refers to an entry after PopInto", i)
		}
	}
	for i := range ShrinkAfter {
		if r.Cap() != 1024 {
			t.Fatalf("buffer given back after %d small bursts, want %d", i, ShrinkAfter)
		}
		r.Push(&vals[0])
		r.PopInto(dst)
	}
	if r.Cap() != 0 {
		t.Fatalf("after %d bursts of 1 in 1024 slots with Keep 256: buffer of %d kept", ShrinkAfter, r.Cap())
	}
	for range 200 {
		r.Push(&vals[1])
	}
	r.PopInto(make([]*int, 200))
	for range 2 * ShrinkAfter {
		r.Push(&vals[1])
		r.PopInto(dst)
	}
	if r.Cap() != 256 {
		t.Fatalf("a buffer of 256 with Keep 256: %d entries, want kept", r.Cap())
	}
	r.Push(&vals[7])
	r.Push(&vals[8])
	var seen []int
	r.Drain(func(p **int) { seen = append(seen, **p) })
	if len(seen) != 2 || seen[0] != 7 || seen[1] != 8 || r.Len() != 0 || r.Cap() != 0 || r.Keep != 256 {
		t.Fatalf("Drain: saw %v, then Len %d Cap %d Keep %d; want [7 8], 0, 0, 256", seen, r.Len(), r.Cap(), r.Keep)
	}
}
