package lockorder

import (
	"testing"
)

var (
	outer = &Class{Name: "outer", Rank: 1}
	inner = &Class{Name: "inner", Rank: 2}
)

func newPair() (o, i *Mutex) {
	o, i = new(Mutex), new(Mutex)
	o.Init(outer)
	i.Init(inner)
	return o, i
}

// In order, nesting is allowed; TryLock against the order is allowed (it never waits).
func TestInOrder(t *testing.T) {
	o, i := newPair()
	o.Lock()
	i.Lock()
	i.Unlock()
	o.Unlock()
	i.Lock()
	if !o.TryLock() {
		t.Fatal("TryLock of a free mutex failed")
	}
	o.Unlock()
	i.Unlock()
	// Held sets are per goroutine: another goroutine's locks do not count.
	o.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		i.Lock()
		i.Unlock()
	}()
	<-done
	o.Unlock()
}

// Against the order, a lockorder build panics naming both locks (a plain build cannot see it).
func TestAgainstOrderPanics(t *testing.T) {
	if !Enabled {
		t.Skip("built without -tags lockorder: nothing is checked")
	}
	o, i := newPair()
	i.Lock()
	defer i.Unlock()
	if err := Violation("outer (rank 1) taken while holding inner (rank 2)", o.Lock); err != nil {
		t.Fatal(err)
	}
	if err := Violation("anything", func() {}); err == nil {
		t.Fatal("Violation of a function that does not panic: nil error")
	}
}

// The same class twice (two sessions' locks, say) is a violation too: two goroutines taking
// them in opposite orders would deadlock.
func TestSameRankTwicePanics(t *testing.T) {
	if !Enabled {
		t.Skip("built without -tags lockorder: nothing is checked")
	}
	a, b := new(Mutex), new(Mutex)
	a.Init(inner)
	b.Init(inner)
	a.Lock()
	defer a.Unlock()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	b.Lock()
}
