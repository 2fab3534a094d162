package lru

import (
	"slices"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// model is the obvious LRU: keys ordered from least to most recently used.
type model struct {
	max   int
	order []int
	vals  map[int]int
	evict uint64
}

func (m *model) touch(k int) {
	m.order = slices.DeleteFunc(m.order, func(x int) bool { return x == k })
	m.order = append(m.order, k)
}

// TestModel checks every operation sequence against the model: the same values, the same
// evictions, never more than max entries.
func TestModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		max := rapid.IntRange(1, 6).Draw(t, "max")
		c := New[int, int](max)
		m := &model{max: max, vals: map[int]int{}}
		key := rapid.IntRange(0, 9)
		for step := 0; step < 200; step++ {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2, 3:
				k, v := key.Draw(t, "k"), rapid.Int().Draw(t, "v")
				c.Put(k, v)
				if _, ok := m.vals[k]; !ok && len(m.order) == max {
					delete(m.vals, m.order[0])
					m.order = m.order[1:]
					m.evict++
				}
				m.vals[k] = v
				m.touch(k)
			case 4, 5, 6:
				k := key.Draw(t, "k")
				got, ok := c.Get(k)
				want, wok := m.vals[k]
				if ok != wok || got != want {
					t.Fatalf("step %d: Get(%d) = %d, %v; want %d, %v", step, k, got, ok, want, wok)
				}
				if wok {
					m.touch(k)
				}
			case 7, 8:
				k := key.Draw(t, "k")
				_, wok := m.vals[k]
				if ok := c.Delete(k); ok != wok {
					t.Fatalf("step %d: Delete(%d) = %v, want %v", step, k, ok, wok)
				}
				delete(m.vals, k)
				m.order = slices.DeleteFunc(m.order, func(x int) bool { return x == k })
			case 9:
				if rapid.IntRange(0, 4).Draw(t, "clear") == 0 {
					c.Clear()
					m.vals, m.order = map[int]int{}, nil
				}
			}
			if c.Len() != len(m.vals) || c.Len() > max || c.Evictions() != m.evict {
				t.Fatalf("step %d: Len %d evictions %d, want %d and %d (max %d)", step, c.Len(), c.Evictions(), len(m.vals), m.evict, max)
			}
		}
	})
}

// TestFullCacheReplacesWithoutAllocating: once full, a Put of a new key reuses the evicted
// slot (the map keeps its buckets too).
func TestFullCacheReplacesWithoutAllocating(t *testing.T) {
	c := New[int, [4]uint64](1000)
	for i := 0; i < 1000; i++ {
		c.Put(i, [4]uint64{uint64(i)})
	}
	i := 1000
	allocs := testing.AllocsPerRun(1000, func() {
		c.Put(i, [4]uint64{uint64(i)})
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Put into a full cache, want 0", allocs)
	}
	if c.Len() != 1000 || c.Evictions() < 1000 {
		t.Fatalf("Len %d, evictions %d", c.Len(), c.Evictions())
	}
	if _, ok := c.Get(0); ok {
		t.Fatal("the oldest entry survived 1000 newer ones in a cache of 1000")
	}
}

// TestConcurrent runs every operation from several goroutines (for -race) and checks the bound.
func TestConcurrent(t *testing.T) {
	c := New[int, int](64)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				k := (i * (g + 1)) % 200
				switch i % 7 {
				case 0:
					c.Delete(k)
				case 1, 2, 3:
					c.Put(k, i)
				default:
					if v, ok := c.Get(k); ok && v < 0 {
						t.Errorf("value %d never stored", v)
					}
				}
				if i%1000 == 999 && g == 0 {
					c.Clear()
				}
			}
		}()
	}
	wg.Wait()
	if n := c.Len(); n > 64 {
		t.Fatalf("Len %d above the bound 64", n)
	}
}
