//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestInotifySubtreeBeyondPathMax: a recursive inotify watch follows directories nested
// deeper than PATH_MAX. 25 directories of 200 bytes are made one in the other below the
// watched directory, each by its name from a descriptor of the one above, then (their
// Creates read) a file is written and removed at the bottom: every directory's Create and the file's Create, Modify,
// CloseWrite and Delete are reported once each, with their full paths (over 5,000 bytes), and
// no overflow. The backend took a directory whose path was too long for statx as gone and
// never watched it: the four deepest directories' Creates and all of the file's events were
// lost, without an overflow.
func TestInotifySubtreeBeyondPathMax(t *testing.T) {
	b := inoBackend(t)
	sub := t.TempDir()
	g := inoGroup(t, b)
	inoMark(t, b, g, sub, engine.KindSubtree, engine.Create|engine.Delete|engine.Modify|engine.CloseWrite|engine.OnDir)

	const depth = 25
	deep := testenv.DeepTree(t, sub, depth, 200)
	// The file is written once the directories' Creates are read (their watches added):
	// one written and removed before its directory's watch existed leaves nothing to see
	// (docs/events.md, the mkdir race).
	sentinel := filepath.Join(sub, "sentinel")
	os.WriteFile(sentinel, nil, 0o644)
	evs := inoReadUntil(t, g, inoCreated(sentinel))
	deep.WriteFile(t, "deep.key", "k")
	if err := os.Remove(deep.Dir() + "/deep.key"); err != nil {
		t.Fatal(err)
	}
	sentinel = filepath.Join(sub, "sentinel2")
	os.WriteFile(sentinel, nil, 0o644)
	evs = append(evs, inoReadUntil(t, g, inoCreated(sentinel))...)

	key := deep.Path + "/deep.key"
	dirCreates, overflows := 0, 0
	keyEvents := map[engine.Mask]int{}
	for _, e := range evs {
		switch {
		case e.overflow:
			overflows++
		case e.mask&engine.Create != 0 && e.mask&engine.OnDir != 0 && strings.HasPrefix(deep.Path, e.path):
			dirCreates++
		case e.path == key:
			for _, m := range []engine.Mask{engine.Create, engine.Modify, engine.CloseWrite, engine.Delete} {
				if e.mask&m != 0 {
					keyEvents[m]++ // (the group merges an unread Modify and CloseWrite)
				}
			}
		}
	}
	want := map[engine.Mask]int{engine.Create: 1, engine.Modify: 1, engine.CloseWrite: 1, engine.Delete: 1}
	bad := dirCreates != depth || overflows != 0 || len(keyEvents) != len(want)
	for m, n := range want {
		bad = bad || keyEvents[m] != n
	}
	if bad {
		t.Fatalf("path %d bytes: %d directory Creates (want %d), %d overflows (want 0), deep.key's events %v (want one each of Create, Modify, CloseWrite, Delete)",
			len(deep.Path), dirCreates, depth, overflows, keyEvents)
	}
}

// TestInotifyMkdirRaceLosesNothingSilently: the mkdir race with what happens to a file. 100
// times, a directory, a directory in it and a file written in that are made while the reader
// is held, under a recursive watch for Create and CloseWrite: each file's CloseWrite is reported, or
// (when the file was written before its directory's watch existed, which inotify cannot see)
// an overflow follows the scan's Create of it. The backend reported the scan's Create alone:
// the CloseWrites written before the watch were lost without a word.
func TestInotifyMkdirRaceLosesNothingSilently(t *testing.T) {
	b := inoBackend(t)
	sub := t.TempDir()
	g := inoGroup(t, b)
	inoMark(t, b, g, sub, engine.KindSubtree, engine.Create|engine.CloseWrite|engine.OnDir)
	const rounds = 100
	// The reader held (it takes the group's lock for each batch) while the files are made:
	// each race is lost, as on a loaded machine.
	b.ino.mu.Lock()
	for i := 0; i < rounds; i++ {
		d := filepath.Join(sub, fmt.Sprintf("m%d", i))
		if err := os.MkdirAll(filepath.Join(d, "s"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "s", "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.ino.mu.Unlock()
	sentinel := filepath.Join(sub, "sentinel")
	os.WriteFile(sentinel, nil, 0o644)
	evs := inoReadUntil(t, g, inoCreated(sentinel))

	closed, created := map[string]bool{}, map[string]int{} // created: index of the Create
	told := 0
	var silent []string
	for i, e := range evs {
		if e.overflow {
			continue
		}
		if e.mask&engine.CloseWrite != 0 {
			closed[e.path] = true
		}
		if e.mask&engine.Create != 0 && e.mask&engine.OnDir == 0 {
			created[e.path] = i
		}
	}
	for i := 0; i < rounds; i++ {
		f := filepath.Join(sub, fmt.Sprintf("m%d", i), "s", "f")
		if closed[f] {
			continue
		}
		at, ok := created[f]
		overflowAfter := false
		for _, e := range evs[at+1:] {
			overflowAfter = overflowAfter || e.overflow
		}
		if ok && overflowAfter {
			told++
			continue
		}
		silent = append(silent, fmt.Sprintf("%s (Create reported %v)", f, ok))
	}
	t.Logf("%d CloseWrites reported, %d told by an overflow", rounds-told-len(silent), told)
	if len(silent) > 0 {
		t.Fatalf("%d of %d files' CloseWrite neither reported nor followed by an overflow: %v", len(silent), rounds, firstTen(silent))
	}
}

// TestInotifyDirectoryMovedInReportsOnlyNewEntries: a directory holding 50 files is moved into
// a tree from outside it, a file is made in it, and it is moved out again (and a file made in
// it outside), 40 times, each move in after an event in the tree has been read (the rule's
// bound: see scan in inotify.go). As on fanotify, the moves and each new file's Create are reported —
// each file made in the tree once; no Create of the files already in the directory when it
// moved in, nor of those made while it was outside. The backend reported a Create of every
// entry of the directory each time it moved in (2,000 and more for these 40 files).
func TestInotifyDirectoryMovedInReportsOnlyNewEntries(t *testing.T) {
	b := inoBackend(t)
	root := t.TempDir()
	sub, out := filepath.Join(root, "sub"), filepath.Join(root, "out", "d")
	os.Mkdir(sub, 0o755)
	os.MkdirAll(filepath.Join(out, "deeper"), 0o755)
	for i := 0; i < 50; i++ {
		os.WriteFile(filepath.Join(out, fmt.Sprintf("pre%d", i)), nil, 0o644)
	}
	os.WriteFile(filepath.Join(out, "deeper", "pre"), nil, 0o644)
	g, err := b.Engine().NewGroup(engine.Options{MergeLast: true}) // a move in and out: two events
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	inoMark(t, b, g, sub, engine.KindSubtree, engine.Create|engine.Move|engine.OnDir)
	in := filepath.Join(sub, "d")
	tick := filepath.Join(sub, "tick")
	const rounds = 40
	for i := 0; i < rounds; i++ {
		// What the directory holds is older than the rule's bound when it moves in: the
		// reader's last empty read, after an event in the tree (the tick), less moveSlack.
		time.Sleep(2 * moveSlack)
		os.WriteFile(fmt.Sprintf("%s%d", tick, i), nil, 0o644) // a Create: the reader wakes
		time.Sleep(moveSlack)
		if err := os.Rename(out, in); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(in, fmt.Sprintf("f%d", i)), nil, 0o644)
		time.Sleep(moveSlack / 4)
		if err := os.Rename(in, out); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(out, fmt.Sprintf("g%d", i)), nil, 0o644)
	}
	sentinel := filepath.Join(sub, "sentinel")
	os.WriteFile(sentinel, nil, 0o644)
	evs := inoReadUntil(t, g, inoCreated(sentinel))

	creates := map[string]int{}
	movedIn, overflows := 0, 0
	for _, e := range evs {
		switch {
		case e.overflow:
			overflows++
		case e.mask&engine.MovedTo != 0 && e.path == in:
			movedIn++
		case e.mask&(engine.Create|engine.MovedTo) != 0 && strings.HasPrefix(e.path, in+"/"):
			creates[strings.TrimPrefix(e.path, in+"/")]++
		}
	}
	var bad []string
	for name, n := range creates {
		if !strings.HasPrefix(name, "f") || n != 1 {
			bad = append(bad, fmt.Sprintf("%s ×%d", name, n))
		}
	}
	for i := 0; i < rounds; i++ {
		if creates[fmt.Sprintf("f%d", i)] == 0 && overflows == 0 {
			bad = append(bad, fmt.Sprintf("f%d never", i))
		}
	}
	slices.Sort(bad)
	if movedIn != rounds || len(bad) > 0 {
		t.Fatalf("%d moves in (want %d), %d overflows, %d Creates in the moved directory; wrong: %d %v",
			movedIn, rounds, overflows, len(creates), len(bad), firstTen(bad))
	}
}
