package engine

import (
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"
)

// TestPermissionStateModel: PermissionState names the only group with a mark whose event
// mask holds permission events — none while no group or several have one, none once that
// group is closed — through any sequence of mark additions, modifications,
// partial removals, removals, flushes, refused changes and group closes, checked after each
// against a model of the marks' masks. It fails when a path that gives or takes a mark's
// permission events (ModifyMark, RemoveFromMark, FlushMarks, a refused change's undo, Close)
// leaves the count behind, or when ignore masks count as permission marks.
func TestPermissionStateModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var refuse atomic.Bool
		e := New(Config{MaskHook: func(Object, Mask, Mask) error {
			if refuse.Load() {
				return ErrInvalid
			}
			return nil
		}})
		const ngroups = 3
		var groups [ngroups]*Group
		closed := [ngroups]bool{}
		for i := range groups {
			g, err := e.NewGroup(Options{Class: ClassContent})
			if err != nil {
				t.Fatal(err)
			}
			groups[i] = g
		}
		objs := []Object{Inode(f), Subtree(dir), Mount(mnt1)}
		masks := []Mask{OpenPerm, Open, OpenPerm | Open, AccessPerm | Modify, Close}
		model := map[[2]int]Mask{} // (group, object) -> event mask
		for step := 0; step < 60; step++ {
			gi := rapid.IntRange(0, ngroups-1).Draw(t, "group")
			oi := rapid.IntRange(0, len(objs)-1).Draw(t, "object")
			g, obj, key := groups[gi], objs[oi], [2]int{gi, oi}
			refuse.Store(rapid.IntRange(0, 5).Draw(t, "refuse") == 0)
			switch op := rapid.IntRange(0, 6).Draw(t, "op"); op {
			case 0, 1: // AddMark
				m := rapid.SampledFrom(masks).Draw(t, "mask")
				if g.AddMark(obj, MarkSpec{Mask: m}) == nil && !closed[gi] {
					model[key] |= m
				}
			case 2: // AddMark of an ignore mask only: never a permission mark
				if g.AddMark(obj, MarkSpec{Ignore: OpenPerm}) == nil && !closed[gi] {
					if _, ok := model[key]; !ok {
						model[key] = 0
					}
				}
			case 3: // ModifyMark
				m := rapid.SampledFrom(masks).Draw(t, "mask")
				if g.ModifyMark(obj, MarkSpec{Mask: m}) == nil {
					model[key] = m
				}
			case 4: // RemoveFromMark of the permission bits (a mark left with no event mask is as none)
				refuse.Store(false)
				if g.RemoveFromMark(obj, PermissionEvents, 0) == nil {
					model[key] &^= PermissionEvents
				}
			case 5: // RemoveMark
				refuse.Store(false)
				if g.RemoveMark(obj) == nil {
					delete(model, key)
				}
			case 6: // FlushMarks or Close
				refuse.Store(false)
				if rapid.Bool().Draw(t, "close") {
					g.Close()
					closed[gi] = true
					for k := range model {
						if k[0] == gi {
							delete(model, k)
						}
					}
				} else {
					g.FlushMarks(0)
					for k := range model {
						if k[0] == gi {
							delete(model, k)
						}
					}
				}
			}
			refuse.Store(false)
			// The model's owner: the only group with a permission mark.
			with := map[int]bool{}
			for k, m := range model {
				if m&PermissionEvents != 0 {
					with[k[0]] = true
				}
			}
			var want *Group
			if len(with) == 1 {
				for gi := range with {
					want = groups[gi]
				}
			}
			if got := e.PermissionState().Owner(); got != want {
				t.Fatalf("step %d: PermissionState names %p, want %p (groups %p %p %p; with permission marks %v)",
					step, got, want, groups[0], groups[1], groups[2], with)
			}
		}
	})
}

// TestPermissionStateExcludesOtherGroups: while one PermissionState names group A, no
// permission event dispatched reaches another group — the property an answer ahead rests on
// (Event.AllowedAhead). A dispatches an allow, X's permission mark on the file comes and goes
// (added, modified to and from a notification mask, removed) on another goroutine, and each
// dispatch that saw the same state naming A before and after itself must not have run X's
// Handler. It fails when a mark's permission events become visible before the state changes
// (a count taken after the mask is stored or the mark attached), or go after it.
func TestPermissionStateExcludesOtherGroups(t *testing.T) {
	e := New(Config{})
	a := newGroup(t, e, Options{Class: ClassContent, Handler: func(Delivery) (Response, bool) { return Response{Verdict: Allow}, true }})
	mustAdd(t, a, Subtree(dir), MarkSpec{Mask: OpenPerm})
	var xCalls atomic.Int64
	x := newGroup(t, e, Options{Class: ClassPreContent, Handler: func(Delivery) (Response, bool) {
		xCalls.Add(1)
		return Response{Verdict: Deny}, true
	}})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 4 {
			case 0:
				x.AddMark(Inode(f), MarkSpec{Mask: OpenPerm})
			case 1:
				x.ModifyMark(Inode(f), MarkSpec{Mask: Open})
			case 2:
				x.ModifyMark(Inode(f), MarkSpec{Mask: OpenPerm})
			case 3:
				x.RemoveMark(Inode(f))
			}
		}
	}()
	n := 200000
	if testing.Short() {
		n = 20000
	}
	var checked, reachedX int
	for range n {
		s := e.PermissionState()
		before := xCalls.Load()
		r, w := e.Dispatch(fileEvent(OpenPerm))
		if w != nil {
			t.Fatal("a Handler group's dispatch waits")
		}
		if s.Owner() != a || e.PermissionState() != s {
			continue
		}
		checked++
		if xCalls.Load() != before || r.Verdict != Allow {
			reachedX++
		}
	}
	close(stop)
	wg.Wait()
	if reachedX != 0 {
		t.Errorf("%d of %d dispatches under one state naming A alone reached X", reachedX, checked)
	}
	if checked < n/100 {
		t.Errorf("only %d of %d dispatches saw A alone: the test checked too little", checked, n)
	}
}
