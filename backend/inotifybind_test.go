//go:build linux

package backend

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestInotifyBindMountInsideTreeIsNotFollowed: a bind mount inside a recursive inotify watch
// (same filesystem, so the same st_dev) is a mount point, and a tree stays on its mount as
// on its filesystem: its directory is reached through its own place only. Before, the scan
// found the bind mount's directory already watched (inotify has one watch per inode) and
// moved it there: a bind mount of the tree's root below itself made the root its own parent
// (the first event's path was an endless recursion: the process died), and a bind mount of a
// directory of the tree elsewhere in it moved that directory's events to the mount's path.
func TestInotifyBindMountInsideTreeIsNotFollowed(t *testing.T) {
	base := testenv.Tmpfs(t)
	j := filepath.Join
	r := j(base, "r")
	// alias1 and alias2 are made before and after a: whatever order the scan reads them in,
	// a is not the last of the three.
	for _, d := range []string{j(r, "alias1"), j(r, "a"), j(r, "alias2"), j(r, "self"), j(r, "d", "deep"), j(base, "out", "o")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range [][2]string{{r, j(r, "self")}, {j(r, "a"), j(r, "alias1")}, {j(r, "a"), j(r, "alias2")},
		{j(base, "out"), j(r, "d", "deep")}} {
		if err := sys.Mount(m[0], m[1], "", sys.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		target := m[1]
		t.Cleanup(func() { sys.Unmount(target, sys.MNT_DETACH) })
	}
	b := inoBackend(t)
	g := inoGroup(t, b)
	inoMark(t, b, g, r, engine.KindSubtree, engine.Create|engine.OnDir)

	// Written through their own places; then through the bind mounts, which name the same
	// directories (the kernel reports them on the inode, at its place in the tree).
	for _, f := range []string{j(r, "f0"), j(r, "a", "f1"), j(r, "alias1", "f2"), j(r, "alias2", "f3"),
		j(r, "self", "f4"), j(base, "out", "o", "f5"), j(r, "d", "deep", "o", "f6")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sentinel := j(r, "sentinel")
	os.WriteFile(sentinel, nil, 0o644)
	evs := inoReadUntil(t, g, inoCreated(sentinel))
	got := map[string]bool{}
	for _, e := range evs {
		got[e.String()] = true
	}
	want := []string{"CREATE " + j(r, "f0"), "CREATE " + j(r, "a", "f1"), "CREATE " + j(r, "a", "f2"),
		"CREATE " + j(r, "a", "f3"), "CREATE " + j(r, "f4"), "CREATE " + sentinel}
	for _, w := range want {
		if !got[w] {
			t.Errorf("missing %q", w)
		}
		delete(got, w)
	}
	if len(got) > 0 {
		t.Errorf("unexpected events (a bind mount followed): %v\nall:\n%s", got, inoDump(evs))
	}
}
