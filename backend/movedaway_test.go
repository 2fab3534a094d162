//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestDirectoryMovedAwayBeforeItsEventsAreReadIsAnOverflow: a directory made in a recursive
// watch, a file written in it, the directory moved out of the watch, all before the FID
// reader reads (held) — `mkdir w/T; echo x >w/T/f; mv w/T out/`, as 4-8 rounds in 500 run
// from a shell met by chance. The file's events are read after the move: its directory is
// found outside the watch, and the watch cannot get them. It must be told: an overflow, in
// order, after the directory's CREATE and before anything that came after the move (the
// next round's CREATE). A group watching only the place the directory went gets no
// overflow (it lost nothing). Before, no overflow: the loss was silent (movedaway.go).
func TestDirectoryMovedAwayBeforeItsEventsAreReadIsAnOverflow(t *testing.T) {
	testenv.RequireRoot(t)
	b, gate := newGatedBackend(t)

	mnt := testenv.Tmpfs(t)
	w, out := filepath.Join(mnt, "w"), filepath.Join(mnt, "out")
	mkdirAll(t, w)
	mkdirAll(t, out)
	spec := engine.MarkSpec{Mask: engine.Create | engine.CloseWrite | engine.OnDir}
	rec := newGroup(t, b, engine.Options{Name: "w"})
	mark(t, b, rec, w, engine.KindSubtree, spec)
	other := newGroup(t, b, engine.Options{Name: "out"})
	mark(t, b, other, out, engine.KindSubtree, spec)

	// A rename inside the watch first: its file's events come with the new name, and
	// nothing is lost (no overflow).
	mkdirAll(t, filepath.Join(w, "A"))
	if err := os.WriteFile(filepath.Join(w, "A", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(w, "A"), filepath.Join(w, "B")); err != nil {
		t.Fatal(err)
	}
	const rounds = 3
	for i := range rounds {
		dir := filepath.Join(w, fmt.Sprintf("T%d", i))
		mkdirAll(t, dir)
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir, filepath.Join(out, fmt.Sprintf("T%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	create(t, filepath.Join(w, "end"))
	create(t, filepath.Join(out, "end"))
	gate.open()

	isEnd := func(dir string) func([]got) bool {
		return func(evs []got) bool {
			return len(evs) > 0 && evs[len(evs)-1].path == filepath.Join(dir, "end") && evs[len(evs)-1].mask&engine.Create != 0
		}
	}
	evs := collect(t, rec, 10*time.Second, isEnd(w))
	var lines []string
	for _, e := range evs {
		lines = append(lines, fmt.Sprintf("%v %s", e.mask, e.path))
	}
	if !isEnd(w)(evs) {
		t.Fatalf("w: no CREATE of end; got:\n%s", strings.Join(lines, "\n"))
	}
	// Each round: its directory's CREATE, then its file's CREATE and CLOSE_WRITE under the
	// watch, or an overflow — before the next round's CREATE.
	round := -1
	told := make([]bool, rounds)
	for _, e := range evs {
		for i := range rounds {
			if e.mask&engine.Create != 0 && e.path == filepath.Join(w, fmt.Sprintf("T%d", i)) {
				round = i
			}
		}
		if round < 0 {
			continue
		}
		if e.mask&engine.QueueOverflow != 0 || e.path == filepath.Join(w, fmt.Sprintf("T%d", round), "f") && e.mask&engine.CloseWrite != 0 {
			told[round] = true
		}
	}
	overflows, renamed := 0, false
	for _, e := range evs {
		if e.mask&engine.QueueOverflow != 0 {
			overflows++
		}
		if e.mask&engine.CloseWrite != 0 && e.path == filepath.Join(w, "B", "f") {
			renamed = true
		}
	}
	if overflows != rounds || !renamed {
		t.Errorf("w: %d overflows, want %d (one per directory moved out, none for the rename inside); B/f's CLOSE_WRITE: %v",
			overflows, rounds, renamed)
	}
	for i, ok := range told {
		if !ok {
			t.Errorf("round %d: its file's events neither reported under %s nor an overflow after its directory's CREATE; got:\n%s",
				i, w, strings.Join(lines, "\n"))
		}
	}
	for _, e := range collect(t, other, 10*time.Second, isEnd(out)) {
		if e.mask&engine.QueueOverflow != 0 {
			t.Errorf("out: an overflow, but it lost nothing")
		}
	}
	if n := b.Stats().KernelOverflows; n != 0 {
		t.Errorf("%d kernel overflows: the test needs none", n)
	}
}

// TestDirectoryMovedInAndOutTwiceIsAnOverflow: the same, but the directory moves in and out
// of the watch twice under one name (`mv out/T w/T; echo x >w/T/f0; mv w/T out/T`, twice)
// before the reader reads: the kernel merges each entry's MOVED_TO and MOVED_FROM (same
// directory, name and object) into the first, queued before the files' events, so no move is
// read after them. The files' events, found outside, must still be told: an overflow.
// Before, none (4 of 5 rounds of a 25-deep tree silent in `watch -r`).
func TestDirectoryMovedInAndOutTwiceIsAnOverflow(t *testing.T) {
	testenv.RequireRoot(t)
	b, gate := newGatedBackend(t)

	mnt := testenv.Tmpfs(t)
	w, out := filepath.Join(mnt, "w"), filepath.Join(mnt, "out")
	mkdirAll(t, w)
	mkdirAll(t, filepath.Join(out, "T"))
	rec := newGroup(t, b, engine.Options{Name: "w"})
	mark(t, b, rec, w, engine.KindSubtree, engine.MarkSpec{Mask: engine.Create | engine.CloseWrite | engine.OnDir})
	for i := range 2 {
		if err := os.Rename(filepath.Join(out, "T"), filepath.Join(w, "T")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w, "T", fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(w, "T"), filepath.Join(out, "T")); err != nil {
			t.Fatal(err)
		}
	}
	create(t, filepath.Join(w, "end"))
	gate.open()
	evs := collect(t, rec, 10*time.Second, func(evs []got) bool {
		return len(evs) > 0 && evs[len(evs)-1].path == filepath.Join(w, "end")
	})
	var lines []string
	reported, overflow := 0, false
	for _, e := range evs {
		lines = append(lines, fmt.Sprintf("%v %s", e.mask, e.path))
		switch {
		case e.mask&engine.QueueOverflow != 0:
			overflow = true
		case e.mask&engine.CloseWrite != 0 && strings.HasPrefix(e.path, filepath.Join(w, "T")+"/"):
			reported++
		}
	}
	if reported < 2 && !overflow {
		t.Errorf("%d of 2 files' CLOSE_WRITE reported, and no overflow; got:\n%s", reported, strings.Join(lines, "\n"))
	}
	if n := b.Stats().KernelOverflows; n != 0 {
		t.Errorf("%d kernel overflows: the test needs none", n)
	}
}
