//go:build linux

package source

import (
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// A remote event is placed by its path (and object): each kind of mark, the root "/" as a
// tree's root, a sibling whose name shares the root's prefix, an unknown path, and a path that
// is not the listener's to know.
func TestRelationByPath(t *testing.T) {
	dir := &Mark{Kind: engine.KindInode, Path: "/a", IsDir: true, ID: engine.ID{Hi: 1, Lo: 2}}
	file := &Mark{Kind: engine.KindInode, Path: "/a/f", ID: engine.ID{Hi: 1, Lo: 3}}
	tree := &Mark{Kind: engine.KindSubtree, Path: "/a", IsDir: true, ID: engine.ID{Hi: 1, Lo: 2}}
	root := &Mark{Kind: engine.KindSubtree, Path: "/", IsDir: true, ID: engine.ID{Hi: 1, Lo: 1}}
	mount := &Mark{Kind: engine.KindMount, Path: "/a", IsDir: true}
	unknown := fsevent.Event{Mask: engine.Open, PathUnknown: true}
	notOurs := fsevent.Event{Mask: engine.Open}
	for _, tc := range []struct {
		name string
		ev   fsevent.Event
		m    *Mark
		want Relation
	}{
		{"the directory itself", fsevent.Event{Mask: engine.Attrib | engine.OnDir, Path: "/a"}, dir, Self},
		{"the directory by its object", fsevent.Event{Mask: engine.DeleteSelf, Path: "/moved", HasObject: true, Dev: 1, Ino: 2}, dir, Self},
		{"an entry created", fsevent.Event{Mask: engine.Create, Path: "/a/x"}, dir, Entry},
		{"an entry written", fsevent.Event{Mask: engine.Modify, Path: "/a/x"}, dir, Entry},
		{"below an entry", fsevent.Event{Mask: engine.Modify, Path: "/a/x/y"}, dir, Unrelated},
		{"a sibling sharing the prefix", fsevent.Event{Mask: engine.Modify, Path: "/ab/x"}, dir, Unrelated},
		{"an unknown path in a directory", unknown, dir, MaybeEntry},
		{"a path not ours to know, in a directory", notOurs, dir, Unrelated},
		{"a file itself", fsevent.Event{Mask: engine.Modify, Path: "/a/f"}, file, Self},
		{"a file has no entries", fsevent.Event{Mask: engine.Modify, Path: "/a/f/x"}, file, Unrelated},
		{"an unknown path, a file", unknown, file, Unrelated},
		{"a tree's root", fsevent.Event{Mask: engine.Attrib | engine.OnDir, Path: "/a"}, tree, Below},
		{"deep in a tree", fsevent.Event{Mask: engine.Modify, Path: "/a/b/c/d"}, tree, Below},
		{"a sibling of a tree", fsevent.Event{Mask: engine.Modify, Path: "/ab"}, tree, Unrelated},
		{"an unknown path, a tree", unknown, tree, Below},
		{"a path not ours to know, a tree", notOurs, tree, Unrelated},
		{"the root tree holds every path", fsevent.Event{Mask: engine.Modify, Path: "/x/y"}, root, Below},
		{"the root tree's own root", fsevent.Event{Mask: engine.Attrib | engine.OnDir, Path: "/"}, root, Below},
		{"a mount holds anything", fsevent.Event{Mask: engine.Modify, Path: "/elsewhere"}, mount, Whole},
	} {
		ev := Event{Event: tc.ev}
		if got := ev.Relation(tc.m); got != tc.want {
			t.Errorf("%s: Relation = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// An embedded event is placed by the objects it involves, whatever its path says: its inode,
// its parent, its ancestry (known, or unknown with the directories it may be below), its mount
// and its filesystem.
func TestRelationByObject(t *testing.T) {
	id := func(n uint64) engine.ID { return engine.ID{Hi: 7, Lo: n} }
	dir := &Mark{Kind: engine.KindInode, Path: "/a", IsDir: true, ID: id(2)}
	file := &Mark{Kind: engine.KindInode, Path: "/a/f", ID: id(3)}
	tree := &Mark{Kind: engine.KindSubtree, Path: "/a", IsDir: true, ID: id(2)}
	mount := &Mark{Kind: engine.KindMount, ID: id(100)}
	fs := &Mark{Kind: engine.KindFilesystem, ID: id(200)}
	for _, tc := range []struct {
		name string
		ev   *engine.Event
		mask engine.Mask
		m    *Mark
		want Relation
	}{
		{"a file itself", &engine.Event{Inode: id(3), Parent: id(2), Name: "f", Path: "/elsewhere"}, engine.Modify, file, Self},
		{"a file in the directory", &engine.Event{Inode: id(3), Parent: id(2), Name: "f"}, engine.Modify, dir, Entry},
		{"an entry created in the directory", &engine.Event{Inode: id(2), Name: "x"}, engine.Create, dir, Entry},
		{"an entry created in another directory", &engine.Event{Inode: id(9), Name: "x"}, engine.Create, dir, Unrelated},
		{"the directory itself", &engine.Event{Inode: id(2), Parent: id(1), Name: "a"}, engine.Attrib | engine.OnDir, dir, Self},
		{"a file whose place is unknown, possibly in the directory", &engine.Event{Inode: id(8), AncestryUnknown: true, PossibleAncestors: []engine.ID{id(2)}}, engine.Open, dir, MaybeEntry},
		{"a file whose place is unknown, not possibly in it", &engine.Event{Inode: id(8), AncestryUnknown: true, PossibleAncestors: []engine.ID{id(5)}}, engine.Open, dir, Unrelated},
		{"deep in the tree", &engine.Event{Inode: id(8), Parent: id(6), Ancestors: []engine.ID{id(6), id(2), id(1)}}, engine.Modify, tree, Below},
		{"the tree's root", &engine.Event{Inode: id(2), Parent: id(1), Ancestors: []engine.ID{id(1)}}, engine.Attrib | engine.OnDir, tree, Below},
		{"outside the tree", &engine.Event{Inode: id(8), Parent: id(6), Ancestors: []engine.ID{id(6), id(1)}}, engine.Modify, tree, Unrelated},
		{"possibly in the tree", &engine.Event{Inode: id(8), AncestryUnknown: true, PossibleAncestors: []engine.ID{id(2)}}, engine.Modify, tree, Below},
		{"on the mount", &engine.Event{Inode: id(8), Mount: id(100)}, engine.Open, mount, Whole},
		{"on another mount", &engine.Event{Inode: id(8), Mount: id(101)}, engine.Open, mount, Unrelated},
		{"on the filesystem", &engine.Event{Inode: id(8), Filesystem: id(200)}, engine.Open, fs, Whole},
	} {
		tc.ev.Mask = tc.mask
		ev := Event{Event: fsevent.Event{Mask: tc.mask, Name: tc.ev.Name, Path: tc.ev.Path}, place: placeOf(tc.ev)}
		if got := ev.Relation(tc.m); got != tc.want {
			t.Errorf("%s: Relation = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestPlaceSetOverwritesEverything: set makes a place the event's, whatever it held before
// (the inline path builds its event in place): a place of another event, every field set,
// becomes the one a fresh place gets.
func TestPlaceSetOverwritesEverything(t *testing.T) {
	ev := &engine.Event{Mask: engine.OpenPerm, Inode: engine.ID{Hi: 1, Lo: 2}}
	p := place{known: true, dirent: true, inode: engine.ID{Hi: 9, Lo: 9}, parent: engine.ID{Hi: 9, Lo: 8},
		mount: engine.ID{Hi: 9, Lo: 7}, filesystem: engine.ID{Hi: 9, Lo: 6}, ancestors: []engine.ID{{Hi: 9}},
		possible: []engine.ID{{Hi: 8}}, ancestryUnknown: true}
	p.set(ev)
	want := place{known: true, inode: ev.Inode}
	if p.known != want.known || p.dirent || p.inode != want.inode || !p.parent.IsZero() || !p.mount.IsZero() ||
		!p.filesystem.IsZero() || p.ancestors != nil || p.possible != nil || p.ancestryUnknown {
		t.Errorf("set over another event's place = %+v, want %+v", p, want)
	}
}
