//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// procDir is a path to deep directory d that another process may chdir to: this process's
// descriptor of it, through /proc.
func procDir(d testenv.DeepDir) string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(d.Fd)
}

// The attack: a file 22 directories of 200 bytes below a guarded directory, opened
// by a relative path from a working directory down there. The kernel cannot print its path;
// the permission event must still reach the subtree's guard (as possibly inside), and the
// guard must be able to tell that the path is unknown.
func TestDeepFileReachesSubtreeGuard(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	root := testenv.Tmpfs(t)
	guarded := filepath.Join(root, "g")
	mkdirAll(t, guarded)
	mkdirAll(t, filepath.Join(root, "elsewhere"))
	deep := testenv.DeepTree(t, guarded, 22, 200)
	deep.WriteFile(t, "deep.key", "k")
	other := testenv.DeepTree(t, filepath.Join(root, "elsewhere"), 22, 200)
	other.WriteFile(t, "other.txt", "o")

	guard := newGroup(t, b, engine.Options{Name: "guard", Class: engine.ClassContent, Deadline: hang})
	mark(t, b, guard, guarded, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm | engine.OnDir})
	// The guard denies what it cannot place, as a deny rule must.
	unknown := func(x rec) bool { return x.Path == "" }
	gr := record(t, guard, func(x rec) engine.Response {
		if unknown(x) {
			return engine.Response{Verdict: engine.Deny}
		}
		return engine.Response{}
	})
	watch := newGroup(t, b, engine.Options{Name: "watch"})
	mark(t, b, watch, guarded, engine.KindSubtree, engine.MarkSpec{Mask: engine.Create | engine.Open | engine.OnDir})
	wr := record(t, watch, nil)

	res, pid := access(t, "chdir:"+procDir(deep), "open:deep.key")
	if res.errno != syscall.EPERM {
		t.Fatalf("open of deep.key: %v, want EPERM; guard read:\n%s", res, dump(gr.since(0)))
	}
	i := gr.waitFor(0, "on deep.key", func(x rec) bool { return x.Pid == int32(pid) && x.Mask&engine.OpenPerm != 0 })
	if x := gr.since(i)[0]; x.Path != "" || x.Name != "" || !x.Parent.IsZero() {
		t.Fatalf("deep.key's event %v: want path, name and parent unknown", x)
	}
	// The open of the deep directory itself (a directory: reachable from its descriptor) is
	// placed exactly, with its full path.
	res, pid = access(t, "open:"+procDir(deep))
	if res.errno != 0 {
		t.Fatalf("open of the deep directory: %v; guard read:\n%s", res, dump(gr.since(0)))
	}
	wr.waitFor(0, "open of the deep directory by its full path", func(x rec) bool {
		return x.Pid == int32(pid) && x.Mask&engine.Open != 0 && x.Path == deep.Path
	})
	// Again (its path and ancestry may come from a cache now), then after an ancestor moved:
	// the new path, never the cached old one.
	for round, want := range []string{deep.Path, strings.Replace(deep.Path, deep.Top, deep.Top+"-moved", 1)} {
		if round == 1 {
			if err := os.Rename(deep.Top, deep.Top+"-moved"); err != nil {
				t.Fatal(err)
			}
		}
		from := wr.len()
		if res, pid = access(t, "open:"+procDir(deep)); res.errno != 0 {
			t.Fatalf("open of the deep directory, round %d: %v", round, res)
		}
		wr.waitFor(from, fmt.Sprintf("open of the deep directory by its full path, round %d", round), func(x rec) bool {
			return x.Pid == int32(pid) && x.Mask&engine.Open != 0 && x.Path == want
		})
	}
	if err := os.Rename(deep.Top+"-moved", deep.Top); err != nil {
		t.Fatal(err)
	}
	// A file created down there: the FID group's directory handle gives its full path.
	res, pid = access(t, "chdir:"+procDir(deep), "openw:new.txt")
	if res.errno != syscall.ENOENT {
		t.Fatalf("openw without O_CREAT: %v", res)
	}
	deep.WriteFile(t, "new.txt", "n") // by this process: exempt from the guard, seen by the watch
	wr.waitPath(0, engine.Create, deep.Path+"/new.txt")

	// The same depth outside the guarded directory, on the same filesystem: its place is
	// unknown too, so the guard is asked (and denies: possibly inside).
	res, _ = access(t, "chdir:"+procDir(other), "open:other.txt")
	if res.errno != syscall.EPERM {
		t.Fatalf("open of a deep file outside: %v, want EPERM (its place is unknown)", res)
	}
	// Nothing short is affected.
	writeFile(t, filepath.Join(guarded, "short.txt"), "s")
	if res, _ := access(t, "open:"+filepath.Join(guarded, "short.txt")); res.errno != 0 {
		t.Fatalf("open of a short path: %v", res)
	}
	if st := b.Stats(); st.PlacesUnknown == 0 || st.PathsUnknown == 0 {
		t.Fatalf("stats %+v: want paths and places unknown counted", st)
	}
}

// A descriptor's object that the backend cannot place never gets an ignore mark, and no
// event of it is lost because an ignore mark was placed on a guess.
func TestDeepFileNeverIgnored(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	root := testenv.Tmpfs(t)
	guarded := filepath.Join(root, "g")
	mkdirAll(t, guarded)
	mkdirAll(t, filepath.Join(root, "o"))
	other := testenv.DeepTree(t, filepath.Join(root, "o"), 22, 200)
	other.WriteFile(t, "f", "o")
	g := newGroup(t, b, engine.Options{Name: "guard", Class: engine.ClassContent, Deadline: hang})
	mark(t, b, g, guarded, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm})
	r := record(t, g, nil)
	for i := 0; i < 3; i++ {
		from := r.len()
		res, pid := access(t, "chdir:"+procDir(other), "open:f")
		if res.errno != 0 {
			t.Fatal(res)
		}
		r.waitFor(from, "open "+strconv.Itoa(i), func(x rec) bool { return x.Pid == int32(pid) })
	}
	if n := b.Stats().IgnoreMarks; n != 0 {
		t.Fatalf("%d ignore marks placed on events of unknown place", n)
	}
}

// A directory whose own path fits but whose children's do not: a permission mark on the
// directory itself that watches its children (no subtree) still decides a child opened from
// down there, as possibly its parent's.
func TestDeepChildReachesParentMark(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	root := testenv.Tmpfs(t)
	n := (pathMax - 1 - len(root)) / 201 // the longest path below PATH_MAX
	dir := testenv.DeepTree(t, root, n, 200)
	name := strings.Repeat("k", 250) // its path is over PATH_MAX
	dir.WriteFile(t, name, "k")
	if len(dir.Path) >= pathMax || len(dir.Path)+1+len(name) < pathMax {
		t.Fatalf("fixture: directory %d bytes, child %d", len(dir.Path), len(dir.Path)+1+len(name))
	}
	g := newGroup(t, b, engine.Options{Name: "guard", Class: engine.ClassContent, Deadline: hang})
	mark(t, b, g, dir.Path, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	r := record(t, g, func(x rec) engine.Response {
		if x.Path == "" {
			return engine.Response{Verdict: engine.Deny}
		}
		return engine.Response{}
	})
	if res, _ := access(t, "chdir:"+procDir(dir), "open:"+name); res.errno != syscall.EPERM {
		t.Fatalf("open of the long-named child: %v, want EPERM; guard read:\n%s", res, dump(r.since(0)))
	}
	dir.WriteFile(t, "short", "s")
	if res, _ := access(t, "open:"+dir.Path+"/short"); res.errno != 0 {
		t.Fatalf("open of a short-named child: %v", res)
	}
}
