//go:build linux

package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// TestInotifyRootMovedAwayHasNoStalePaths: inotify does not say where a watched directory
// whose parent is not watched went. After a tree's root moved so, its old path names nothing
// of it — or another directory, made there by whoever may write in the parent. Events in the
// tree keep coming (the watches follow the inodes) with their path unknown (""), a directory
// made in it is not watched through the old path (an overflow says it is not watched), and
// nothing made at the old path is reported. Before, the events carried the old path (r/a/g
// for r2/a/g), and a directory made in the moved tree was looked up at the old path: the
// directory made there by someone else was watched in its place (its events reported as the
// tree's), the real one's were lost without a word.
func TestInotifyRootMovedAwayHasNoStalePaths(t *testing.T) {
	b := inoBackend(t)
	base := t.TempDir()
	j := filepath.Join
	r, r2 := j(base, "r"), j(base, "r2")
	os.MkdirAll(j(r, "a"), 0o755)
	g := inoGroup(t, b)
	inoMark(t, b, g, r, engine.KindSubtree, engine.Create|engine.OnDir)

	if err := os.Rename(r, r2); err != nil {
		t.Fatal(err)
	}
	inoSh(t, "mkdir -p "+r+"/x && mkdir "+r2+"/x && touch "+r+"/x/evil "+r2+"/x/f "+r2+"/a/g && touch "+r2+"/sentinel")
	evs := inoReadUntil(t, g, func(e inoEvent) bool { return e.name == "sentinel" })
	var got []string
	for _, e := range evs {
		if e.overflow {
			got = append(got, "OVERFLOW")
			continue
		}
		got = append(got, e.mask.String()+" "+e.name+" path="+strings.ReplaceAll(e.path, base, "B"))
	}
	want := []string{"CREATE|ONDIR x path=", "OVERFLOW", "CREATE g path=", "CREATE sentinel path="}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
