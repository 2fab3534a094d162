package engine

import (
	"context"
	"slices"
	"testing"
)

// MergeLast: only an exact repeat of the newest unread event merges (inotify's rule);
// fanotify's rule (the default) merges into any unread event on the object.
func TestMergeLast(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		last bool
		want []Mask
	}{
		{false, []Mask{Open | Modify | Access}},
		{true, []Mask{Open, Modify, Access, Modify}},
	} {
		e := New(Config{})
		g := newGroup(t, e, Options{MergeLast: c.last})
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | Modify | Access})
		e.Notify(ctx, fileEvent(Open))
		e.Notify(ctx, fileEvent(Modify))
		e.Notify(ctx, fileEvent(Modify)) // an exact repeat of the newest: merges under both rules
		e.Notify(ctx, fileEvent(Access))
		e.Notify(ctx, fileEvent(Modify)) // not the newest's mask: merges only under fanotify's
		if got := masks(drain(g)); !slices.Equal(got, c.want) {
			t.Errorf("MergeLast=%v: got %v, want %v", c.last, got, c.want)
		}
		wantMerged := uint64(1)
		if !c.last {
			wantMerged = 4
		}
		if st := g.Stats(); st.Merged != wantMerged {
			t.Errorf("MergeLast=%v: merged %d, want %d", c.last, st.Merged, wantMerged)
		}
	}
}

// A DELETE_SELF merges only into the newest unread event, under either rule: merged into the
// directory's own older open (fanotify's rule) it would be read before the removals inside
// the directory, which happened before it (rm -rf: open, read, close, unlink the children,
// rmdir).
func TestDeleteSelfMergesOnlyIntoTheNewest(t *testing.T) {
	ctx := context.Background()
	// Directory sub's own events, and the removal of its file g (a directory-entry event on
	// sub: the same inode, another name).
	subEv := func(m Mask) *Event {
		return &Event{Mask: m | OnDir, Inode: sub, Parent: dir, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{dir, root}, Pid: 100}
	}
	child := func(m Mask) *Event {
		return &Event{Mask: m, Inode: sub, Mount: mnt1, Filesystem: fs1,
			Ancestors: []ID{dir, root}, Name: "g", Pid: 100}
	}
	for _, c := range []struct {
		name string
		last bool
		want []Mask
	}{
		{"fanotify rule", false, []Mask{Open | CloseNoWrite | OnDir, Delete, DeleteSelf | OnDir}},
		{"MergeLast", true, []Mask{Open | OnDir, CloseNoWrite | OnDir, Delete, DeleteSelf | OnDir}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := New(Config{})
			g := newGroup(t, e, Options{MergeLast: c.last})
			mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | CloseNoWrite | Delete | DeleteSelf | OnDir})
			e.Notify(ctx, subEv(Open))
			e.Notify(ctx, subEv(CloseNoWrite)) // merges into the open under fanotify's rule
			e.Notify(ctx, child(Delete))
			e.Notify(ctx, subEv(DeleteSelf)) // the directory's open is unread, but not the newest
			if got := masks(drain(g)); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// Into the newest it still merges (fanotify's rule: its bits join the event's).
	e := New(Config{})
	g := newGroup(t, e, Options{})
	mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Open | DeleteSelf | OnDir})
	e.Notify(ctx, subEv(Open))
	e.Notify(ctx, subEv(DeleteSelf))
	if got, want := masks(drain(g)), []Mask{Open | DeleteSelf | OnDir}; !slices.Equal(got, want) {
		t.Errorf("newest: got %v, want %v", got, want)
	}
}

// A file with two hard links named alike in two directories (a/f and b/f) is one inode with
// one name: a write through each link is still two events on two directory entries, which
// neither kernel merges (fanotify compares the directory's fid with the name, inotify the
// watch). Merged, a consumer watching b (or its subtree) never learns b/f changed when a
// write through a/f was unread: it sees a/f only. Under either rule both stay, each with
// its own directory; a repeat through the same link still merges.
func TestMergeKeepsEachDirectoryOfALinkedFile(t *testing.T) {
	ctx := context.Background()
	viaSub := func(m Mask) *Event { // f's second link, sub/f
		ev := fileEvent(m)
		ev.Parent, ev.Ancestors = sub, []ID{sub, dir, root}
		return ev
	}
	for _, last := range []bool{false, true} {
		e := New(Config{})
		g := newGroup(t, e, Options{MergeLast: last})
		mustAdd(t, g, Mount(mnt1), MarkSpec{Mask: Modify})
		e.Notify(ctx, fileEvent(Modify))
		e.Notify(ctx, viaSub(Modify)) // another directory's entry: stays
		e.Notify(ctx, viaSub(Modify)) // a repeat through the same link: merges
		var parents []ID
		for _, d := range drain(g) {
			parents = append(parents, d.Event.Parent)
		}
		if want := []ID{dir, sub}; !slices.Equal(parents, want) {
			t.Errorf("MergeLast=%v: events through directories %v, want %v (one per link)", last, parents, want)
		}
	}
}
