package engine

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestFirstMarkedFollowsCollect: Dispatch decides that an event concerns nobody from
// firstMarked alone, and collect takes firstMarked's connector instead of looking its object
// up again; so firstMarked must find a connector exactly when collect would find a list
// (else an event reaching a mark only there is lost), and collect given it must build the
// same heads as collect looking everything up. One mark on each object an event may involve,
// of each kind, for events of every shape (on a child, a directory-entry event, a rename,
// one of unknown ancestry, a permission event): it fails when a check of collect is missing
// from firstMarked or the reuse mistakes one object for another.
func TestFirstMarkedFollowsCollect(t *testing.T) {
	other := ID{Hi: 9, Lo: 30}
	events := map[string]*Event{
		"child":      fileEvent(Open),
		"permission": fileEvent(OpenPerm),
		"deep":       deepEvent(Modify),
		"dirent":     direntEvent(Create, "x"),
		"rename": {Mask: Rename, Inode: sub, Target: other, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{dir, root}, TargetAncestors: []ID{other, root}, Name: "a", NewName: "b"},
		"moved-from": {Mask: MovedFrom, Inode: sub, Target: other, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{dir, root}, TargetAncestors: []ID{other, root}, Name: "a"},
		"unknown": {Mask: Open, Inode: g21, Mount: mnt1, Filesystem: fs1, AncestryUnknown: true,
			PossibleAncestors: []ID{sub, other}},
		"unknown-dirent": {Mask: Create, Inode: g21, Mount: mnt1, Filesystem: fs1,
			AncestryUnknown: true, PossibleAncestors: []ID{sub}, Name: "x"},
		"no-parent-bit": {Mask: Create, Inode: f, Parent: dir, Mount: mnt1, Filesystem: fs1},
	}
	ids := []ID{fs1, mnt1, root, dir, sub, f, g21, other}
	kinds := []Kind{KindInode, KindMount, KindFilesystem, KindSubtree}
	for name, ev := range events {
		for _, id := range ids {
			for _, k := range kinds {
				for _, alsoSubtree := range []bool{false, true} {
					obj := Object{k, id}
					t.Run(fmt.Sprintf("%s/%v/subtree-elsewhere=%v", name, obj, alsoSubtree), func(t *testing.T) {
						e := New(Config{})
						g := newGroup(t, e, Options{})
						mustAdd(t, g, obj, MarkSpec{Mask: NotificationEvents | EventOnChild})
						if alsoSubtree && obj != Subtree(ID{Hi: 5, Lo: 5}) {
							// Subtree lookups run only while some subtree is marked.
							mustAdd(t, g, Subtree(ID{Hi: 5, Lo: 5}), MarkSpec{Mask: Open})
						}
						want := e.collect(ev, nil, nil)
						first := e.firstMarked(ev)
						if (first != nil) != (len(want) > 0) {
							t.Fatalf("firstMarked = %v, collect found %d lists", first, len(want))
						}
						if first == nil {
							return
						}
						got := e.collect(ev, nil, first)
						if !slices.EqualFunc(got, want, func(a, b head) bool {
							return a.typ == b.typ && a.pos == b.pos && slices.Equal(a.marks, b.marks)
						}) {
							t.Fatalf("collect with firstMarked's %v: %v, without: %v", first.obj, got, want)
						}
					})
				}
			}
		}
	}
}

// TestWalkCreditHandlerPanics: walk.run gives back its unused credit without a defer; a
// Handler that panics after the walk queued the event as a notification to a higher group
// (credit taken for the marks still ahead) must still leave the event released once when its
// holders are done (handleCredited). It fails if the credit is not given back on the panic:
// the payload is then never released.
func TestWalkCreditHandlerPanics(t *testing.T) {
	e := New(Config{})
	// A pre-content group sees the event first, and takes its Open as a notification.
	a := newGroup(t, e, Options{Class: ClassPreContent})
	mustAdd(t, a, Inode(f), MarkSpec{Mask: Open})
	b := newGroup(t, e, Options{Class: ClassContent, Handler: func(Delivery) (Response, bool) {
		panic("handler")
	}})
	mustAdd(t, b, Inode(f), MarkSpec{Mask: OpenPerm})
	var released atomic.Int32
	ev := fileEvent(Open | OpenPerm)
	ev.Payload = countingPayload{&released}
	func() {
		defer func() {
			if r := recover(); r != "handler" {
				t.Fatalf("recovered %v, want the Handler's panic", r)
			}
		}()
		e.Dispatch(ev)
	}()
	if n := ev.refs.Load(); n != 1 {
		t.Fatalf("after the panic the event holds %d references besides the source's, want 1 (a's delivery)", n)
	}
	ev.Release()
	d, err := a.TryRead()
	if err != nil || d.Event != ev || d.Mask != Open {
		t.Fatalf("a read %v, %v; want the event's Open", d, err)
	}
	if released.Load() != 0 {
		t.Fatal("payload released while a still held its delivery")
	}
	d.Release()
	if n := released.Load(); n != 1 {
		t.Fatalf("payload released %d times, want 1", n)
	}
}

// TestFilterBuckets: a lookup trusts its filter slot: nil says the object has no connector,
// the object's own connector is taken without the table. Objects whose hashes share a
// bucket are added and removed in every order; after each step every one of them (and one
// never marked) is found exactly while marked, through lookup and through a delivery, and the
// slot is nil exactly while the bucket is empty. It fails if a removal empties the slot with
// connectors left (their events lost), or leaves it naming a connector that left.
func TestFilterBuckets(t *testing.T) {
	// Four inode objects in one bucket: three to mark, one never marked.
	var objs []Object
	bucket := hashObject(Inode(f)) >> (64 - filterBits)
	for lo := uint64(1); len(objs) < 4; lo++ {
		if o := Inode(ID{Hi: 9, Lo: lo}); hashObject(o)>>(64-filterBits) == bucket {
			objs = append(objs, o)
		}
	}
	never := objs[3]
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, add := range perms {
		for _, remove := range perms {
			t.Run(fmt.Sprintf("add%v/remove%v", add, remove), func(t *testing.T) {
				e := New(Config{})
				g := newGroup(t, e, Options{})
				marked := map[Object]bool{}
				check := func(step string) {
					t.Helper()
					for _, o := range append(objs[:3:3], never) {
						c := e.lookup(o)
						if (c != nil) != marked[o] || c != nil && c.obj != o {
							t.Fatalf("%s: lookup(%v) = %v, marked %v", step, o, c, marked[o])
						}
						ev := &Event{Mask: Modify, Inode: o.ID}
						e.Notify(context.Background(), ev)
						d := drain(g)
						if (len(d) == 1) != marked[o] || len(d) > 1 {
							t.Fatalf("%s: an event on %v reached the group %d times, marked %v", step, o, len(d), marked[o])
						}
						for _, x := range d {
							x.Release()
						}
					}
					if empty := e.filter[bucket].Load() == nil; empty != (len(marked) == 0) {
						t.Fatalf("%s: filter slot empty %v with %d objects marked", step, empty, len(marked))
					}
				}
				// And again after the bucket emptied.
				addRemoveAdd(t, g, objs, add, remove, marked, check)
			})
		}
	}
}

// addRemoveAdd marks objs[add...] in order, unmarks objs[remove...] in order, then marks
// objs[remove[0]] again (its bucket or bit emptied, where that is the last of them), keeping
// marked the set of marked objects and calling check after each step: the script of
// TestFilterBuckets and TestPresenceBits.
func addRemoveAdd(t *testing.T, g *Group, objs []Object, add, remove []int, marked map[Object]bool, check func(step string)) {
	t.Helper()
	for _, i := range add {
		mustAdd(t, g, objs[i], MarkSpec{Mask: Modify})
		marked[objs[i]] = true
		check(fmt.Sprintf("after adding %v", objs[i]))
	}
	for _, i := range remove {
		if err := g.RemoveMark(objs[i]); err != nil {
			t.Fatal(err)
		}
		delete(marked, objs[i])
		check(fmt.Sprintf("after removing %v", objs[i]))
	}
	mustAdd(t, g, objs[remove[0]], MarkSpec{Mask: Modify})
	marked[objs[remove[0]]] = true
	check("after adding one again")
}

// churnMarks has other mark and unmark the churn objects in turn (two of them marked at once
// every third step) on a goroutine of its own until the returned stop is called, which waits
// for it: the concurrent churn of TestFilterBucketChurn and TestPresenceBitChurn.
func churnMarks(t *testing.T, other *Group, churn []Object) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			o := churn[i%len(churn)]
			if err := other.AddMark(o, MarkSpec{Mask: Modify}); err != nil {
				t.Error(err)
				return
			}
			if i%3 == 0 {
				other.RemoveMark(churn[(i+1)%len(churn)]) // sometimes two in the bucket at once
			}
			if err := other.RemoveMark(o); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// TestFilterBucketChurn: a mark attached during a whole Notify receives its event while other
// objects of its filter bucket gain and lose connectors concurrently (the slot then names
// them, goes crowded, comes back). It fails if a removal empties the slot, or leaves it
// naming another object, while the stable object's connector remains.
func TestFilterBucketChurn(t *testing.T) {
	var objs []Object
	bucket := hashObject(Inode(f)) >> (64 - filterBits)
	for lo := uint64(1000); len(objs) < 3; lo++ {
		if o := Inode(ID{Hi: 9, Lo: lo}); hashObject(o)>>(64-filterBits) == bucket {
			objs = append(objs, o)
		}
	}
	stable, churn := objs[0], objs[1:]
	e := New(Config{})
	g := newGroup(t, e, Options{QueueLimit: -1})
	other := newGroup(t, e, Options{})
	mustAdd(t, g, stable, MarkSpec{Mask: Modify})
	stopChurn := churnMarks(t, other, churn)
	const n = 20000
	for i := 0; i < n; i++ {
		e.Notify(context.Background(), &Event{Mask: Modify, Inode: stable.ID, Pid: int32(i)})
	}
	stopChurn()
	if st := g.Stats(); st.Delivered != n {
		t.Fatalf("%d of %d events on the stably marked object reached its group", st.Delivered, n)
	}
}

// presenceKinds are the kinds the presence tests run on, with how an event reaches a mark of
// each: an Inode as the event's object, a Subtree as its ancestor, a Mount as its mount.
var presenceKinds = []struct {
	kind  Kind
	event func(o ID) *Event
}{
	{KindInode, func(o ID) *Event { return &Event{Mask: Modify, Inode: o} }},
	{KindSubtree, func(o ID) *Event {
		return &Event{Mask: Modify, Inode: ID{Hi: 7, Lo: 1}, Ancestors: []ID{{Hi: 7, Lo: 2}, o, {Hi: 7, Lo: 3}}}
	}},
	{KindMount, func(o ID) *Event { return &Event{Mask: Modify, Inode: ID{Hi: 7, Lo: 1}, Mount: o} }},
}

// samePresenceBit returns n objects of kind k, from lo up, whose presence bit is ref's, in
// filter buckets other than ref's and each other's (so that the filter cannot hide a wrong
// bit: the lookup of a marked object whose bit is clear returns nil).
func samePresenceBit(k Kind, ref Object, lo uint64, n int) []Object {
	hr := hashObject(ref)
	buckets := map[uint64]bool{hr >> (64 - filterBits): true}
	var out []Object
	for ; len(out) < n; lo++ {
		o := Object{Kind: k, ID: ID{Hi: 9, Lo: lo}}
		h := hashObject(o)
		if o != ref && presenceBit(h) == presenceBit(hr) && !buckets[h>>(64-filterBits)] {
			buckets[h>>(64-filterBits)] = true
			out = append(out, o)
		}
	}
	return out
}

// TestPresenceBits: a lookup answers "no connector" from the kind's presence word when the
// object's bit is clear, so the bit must stay set while any connector of the kind with that
// bit is in the table. Three objects sharing a bit (and one never marked), marked and
// unmarked in every order, for each kind, beside marks of the kind with other bits and of
// other kinds with this bit: after each step every marked object's events reach
// its group, no other's do, and the word is exact (bit set iff some object of it is marked, 0
// iff the kind has no connector). It fails if a removal clears the bit while others of it
// remain, or an add does not set it.
func TestPresenceBits(t *testing.T) {
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, pk := range presenceKinds {
		ref := Object{Kind: pk.kind, ID: ID{Hi: 9, Lo: 5}}
		objs := append([]Object{ref}, samePresenceBit(pk.kind, ref, 100, 3)...)
		never := objs[3]
		bit := presenceBit(hashObject(ref))
		for _, add := range perms {
			for _, remove := range perms {
				t.Run(fmt.Sprintf("kind%d/add%v/remove%v", pk.kind, add, remove), func(t *testing.T) {
					e := New(Config{})
					g := newGroup(t, e, Options{})
					// An object of another kind with the same bit, marked throughout: kinds
					// have words of their own.
					otherKind := KindFilesystem
					if pk.kind == KindFilesystem {
						otherKind = KindInode
					}
					mustAdd(t, g, samePresenceBit(otherKind, ref, 5000, 1)[0], MarkSpec{Mask: Access})
					// And one of the same kind with another bit: the word keeps its bit.
					aside := Object{Kind: pk.kind, ID: ID{Hi: 9, Lo: 6000}}
					for presenceBit(hashObject(aside)) == bit {
						aside.ID.Lo++
					}
					mustAdd(t, g, aside, MarkSpec{Mask: Access})
					marked := map[Object]bool{}
					check := func(step string) {
						t.Helper()
						if c := e.lookup(aside); c == nil || c.obj != aside {
							t.Fatalf("%s: lookup(%v) = %v, marked throughout", step, aside, c)
						}
						for _, o := range append(objs[:3:3], never) {
							c := e.lookup(o)
							if (c != nil) != marked[o] || c != nil && c.obj != o {
								t.Fatalf("%s: lookup(%v) = %v, marked %v", step, o, c, marked[o])
							}
							e.Notify(context.Background(), pk.event(o.ID))
							d := drain(g)
							if (len(d) == 1) != marked[o] || len(d) > 1 {
								t.Fatalf("%s: an event on %v reached the group %d times, marked %v", step, o, len(d), marked[o])
							}
							for _, x := range d {
								x.Release()
							}
						}
						w := e.present[pk.kind].Load()
						if (w&bit != 0) != (len(marked) > 0) || (w == 0) != (e.nconns[pk.kind].Load() == 0) {
							t.Fatalf("%s: presence word %#x with %d objects of bit %#x marked, %d connectors", step, w, len(marked), bit, e.nconns[pk.kind].Load())
						}
					}
					addRemoveAdd(t, g, objs, add, remove, marked, check)
				})
			}
		}
	}
}

// TestPresenceBitChurn: a mark attached during a whole Dispatch receives its event while other
// objects of its kind and presence bit gain and lose connectors concurrently (the bit's count
// goes 1 → 2 → 3 → 2 → 1 under it). The stable mark's group answers through a Handler, as the
// embedded guard's does, so every Dispatch must come back answered. It fails if a removal
// clears the bit while the stable object's connector remains, or a lookup reads a bit that an
// add sets only after its connector is findable.
func TestPresenceBitChurn(t *testing.T) {
	for _, pk := range presenceKinds {
		t.Run(fmt.Sprintf("kind%d", pk.kind), func(t *testing.T) {
			stable := Object{Kind: pk.kind, ID: ID{Hi: 9, Lo: 5}}
			churn := samePresenceBit(pk.kind, stable, 1000, 2)
			e := New(Config{})
			var handled atomic.Int64
			g := newGroup(t, e, Options{Class: ClassContent, Handler: func(Delivery) (Response, bool) {
				handled.Add(1)
				return Response{Verdict: Allow}, true
			}})
			other := newGroup(t, e, Options{})
			mustAdd(t, g, stable, MarkSpec{Mask: OpenPerm})
			stopChurn := churnMarks(t, other, churn)
			const n = 20000
			ev := pk.event(stable.ID)
			ev.Mask = OpenPerm
			missed := 0
			for i := 0; i < n; i++ {
				r, w := e.Dispatch(ev)
				if w != nil {
					t.Fatal("the Handler's group left a walk waiting")
				}
				if r.Reason != ReasonAnswered {
					missed++
				}
			}
			stopChurn()
			if missed != 0 || handled.Load() != n {
				t.Fatalf("%d of %d Dispatches on the stably marked object missed its group (Handler ran %d times)", missed, n, handled.Load())
			}
		})
	}
}

// TestDispatchIntoIsDispatch: DispatchInto writes Dispatch's result, every field of it, into
// a Response that held something else (the backend reuses nothing, but a field left unwritten
// would hand it the last event's verdict), and suspends the same walks. Each case dispatches
// the same event through both on engines set up alike; it fails if DispatchInto leaves a
// field unset on any path (no marks, answered, suspended) or writes another.
func TestDispatchIntoIsDispatch(t *testing.T) {
	garbage := Response{Verdict: Deny, Errno: syscall.ENOSPC, Cache: true, Reason: ReasonDeadline, Group: 99}
	handler := func(r Response) func(Delivery) (Response, bool) {
		return func(Delivery) (Response, bool) { return r, true }
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, e *Engine)
	}{
		{"no marks", func(t *testing.T, e *Engine) {}},
		{"unwatched event", func(t *testing.T, e *Engine) {
			mustAdd(t, newGroup(t, e, Options{}), Inode(f), MarkSpec{Mask: Modify})
		}},
		{"allow with cache", func(t *testing.T, e *Engine) {
			g := newGroup(t, e, Options{Class: ClassContent, Handler: handler(Response{Verdict: Allow, Cache: true})})
			mustAdd(t, g, Subtree(dir), MarkSpec{Mask: OpenPerm})
		}},
		{"allow without cache", func(t *testing.T, e *Engine) {
			g := newGroup(t, e, Options{Class: ClassContent, Handler: handler(Response{Verdict: Allow})})
			mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: OpenPerm})
		}},
		{"deny with errno", func(t *testing.T, e *Engine) {
			g := newGroup(t, e, Options{Class: ClassPreContent, Handler: handler(Response{Verdict: Deny, Errno: syscall.EIO})})
			mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
		}},
		{"notification only", func(t *testing.T, e *Engine) {
			mustAdd(t, newGroup(t, e, Options{}), Inode(f), MarkSpec{Mask: Open})
		}},
		{"suspended", func(t *testing.T, e *Engine) {
			g := newGroup(t, e, Options{Class: ClassContent})
			mustAdd(t, g, Inode(f), MarkSpec{Mask: OpenPerm})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want, got Response
			var ws [2]*Walk
			for i := range ws {
				e := New(Config{})
				c.setup(t, e)
				ev := fileEvent(OpenPerm | Open)
				if i == 0 {
					want, ws[0] = e.Dispatch(ev)
				} else {
					got = garbage
					ws[1] = e.DispatchInto(ev, &got)
				}
				if ws[i] != nil {
					ws[i].Wait(cancelled())
				}
				ev.Release()
			}
			if got != want || (ws[0] == nil) != (ws[1] == nil) {
				t.Fatalf("DispatchInto: %+v, walk %v; Dispatch: %+v, walk %v", got, ws[1] != nil, want, ws[0] != nil)
			}
			if c.name == "suspended" && (ws[0] == nil || want != (Response{})) {
				t.Fatalf("the suspended case did not suspend: %+v", want)
			}
		})
	}
}

// cancelled is a context that has ended: Wait withdraws the event at once.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestCollectWithTwoMarks: TestFirstMarkedFollowsCollect with two objects marked, every pair
// (a subtree first among them included: collectFromSubtree takes the heads from it on,
// skipping what firstMarked found unmarked), so that collect given firstMarked's connector
// must still find the second object wherever it stands: before the first in collect's order
// (it cannot: firstMarked would have returned it), after it on the same ancestor chain, on the
// rename's target chain, or of another kind. It fails if the skip drops a head after the first
// or keeps one it should not.
func TestCollectWithTwoMarks(t *testing.T) {
	other := ID{Hi: 9, Lo: 30}
	events := map[string]*Event{
		"child": fileEvent(OpenPerm | Open),
		"deep":  deepEvent(Modify),
		"rename": {Mask: Rename, Inode: sub, Target: other, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{dir, root}, TargetAncestors: []ID{other, root}, Name: "a", NewName: "b"},
		"rename-inside": {Mask: Rename, Inode: g21, Target: dir, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{sub, dir, root}, TargetAncestors: []ID{dir, root}, Name: "a", NewName: "b"},
		"moved-from": {Mask: MovedFrom, Inode: sub, Target: other, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{dir, root}, TargetAncestors: []ID{other, root}, Name: "a"},
		"unknown": {Mask: Open, Inode: g21, Mount: mnt1, Filesystem: fs1, AncestryUnknown: true,
			PossibleAncestors: []ID{sub, other}},
	}
	ids := []ID{fs1, mnt1, root, dir, sub, f, g21, other}
	var objs []Object
	for _, id := range ids {
		for _, k := range []Kind{KindInode, KindMount, KindFilesystem, KindSubtree} {
			objs = append(objs, Object{k, id})
		}
	}
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			for _, a := range objs {
				for _, b := range objs {
					if a == b {
						continue
					}
					e := New(Config{})
					g := newGroup(t, e, Options{})
					h := newGroup(t, e, Options{})
					mustAdd(t, g, a, MarkSpec{Mask: NotificationEvents | EventOnChild})
					mustAdd(t, h, b, MarkSpec{Mask: NotificationEvents | EventOnChild})
					want := e.collect(ev, nil, nil)
					first := e.firstMarked(ev)
					if (first != nil) != (len(want) > 0) {
						t.Fatalf("%v, %v: firstMarked = %v, collect found %d lists", a, b, first, len(want))
					}
					if first != nil {
						got := e.collect(ev, nil, first)
						if !slices.EqualFunc(got, want, func(x, y head) bool {
							return x.typ == y.typ && x.pos == y.pos && slices.Equal(x.marks, y.marks)
						}) {
							t.Fatalf("%v, %v: collect with firstMarked's %v: %d heads, without: %d", a, b, first.obj, len(got), len(want))
						}
					}
					g.Close()
					h.Close()
				}
			}
		})
	}
}
