//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// readGate holds the FID reader before its reads while closed; open lets it go for good.
type readGate struct {
	once sync.Once
	ch   chan struct{}
}

func (g *readGate) wait() { <-g.ch }
func (g *readGate) open() { g.once.Do(func() { close(g.ch) }) }

// TestOrphansOfAMarkedDirectoryMatchItsMarks removes a tree (rm -rf) before the FID reader
// reads any of its events, so that every directory is gone when its children's events are
// read (orphans.go). With every directory held open while it is removed — as anything
// holding it (a descriptor, a cwd, the kernel's own lookup) does — each directory's
// DELETE_SELF comes after its DELETE on its parent, so the DELETE is what names it. The
// watched directory's children's events must then still match its marks: the inode mark of
// a watch on it, and the subtree mark of a recursive watch, whose walk goes through it.
// Before the fix the revealed directory got a stand-in ID, and every removal below a
// directory named this way was lost without an overflow (CI 2026-12-04 23:56: 91 of 226).
func TestOrphansOfAMarkedDirectoryMatchItsMarks(t *testing.T) {
	for _, held := range []bool{true, false} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			testenv.RequireRoot(t)
			gate := &readGate{ch: make(chan struct{})}
			b, err := New(Options{Mode: ModeFanotify})
			if err != nil {
				t.Fatal(err)
			}
			b.beforeFIDRead = gate.wait // before any mark: the reader starts with the first
			t.Cleanup(func() { b.Close() })
			t.Cleanup(gate.open) // first: the reader must be free for Close

			root := filepath.Join(testenv.Tmpfs(t), "tree")
			var want, dirs []string // removals below root, relative to it; directories, deepest first
			for i := 0; i < 3; i++ {
				for j := 0; j < 2; j++ {
					sub := fmt.Sprintf("d%d/e%d", i, j)
					mkdirAll(t, filepath.Join(root, sub))
					for k := 0; k < 4; k++ {
						create(t, filepath.Join(root, sub, fmt.Sprintf("f%d", k)))
						want = append(want, fmt.Sprintf("%s/f%d", sub, k))
					}
					want = append(want, sub)
					dirs = append(dirs, sub)
				}
				want = append(want, fmt.Sprintf("d%d", i))
				dirs = append(dirs, fmt.Sprintf("d%d", i))
			}
			dirs = append(dirs, "")
			sort.Strings(want)

			// A recursive watch and a watch of the directory alone, as notify makes them.
			rec := newGroup(t, b, engine.Options{Name: "recursive"})
			mark(t, b, rec, root, engine.KindSubtree, engine.MarkSpec{Mask: engine.Delete | engine.DeleteSelf | engine.OnDir})
			one := newGroup(t, b, engine.Options{Name: "inode"})
			mark(t, b, one, root, engine.KindInode, engine.MarkSpec{Mask: engine.Delete | engine.DeleteSelf | engine.OnDir | engine.EventOnChild})

			var holders []*os.File
			if held {
				for _, d := range dirs {
					f, err := os.Open(filepath.Join(root, d))
					if err != nil {
						t.Fatal(err)
					}
					holders = append(holders, f)
				}
			}
			if err := run(t, "rm", "-rf", root); err != nil {
				t.Fatal(err)
			}
			for _, f := range holders {
				f.Close() // the DELETE_SELFs, after every DELETE
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Fatalf("%s is still there: %v", root, err)
			}
			gate.open()

			isRootGone := func(evs []got) bool {
				return len(evs) > 0 && evs[len(evs)-1].mask&engine.DeleteSelf != 0 && evs[len(evs)-1].path == root
			}
			check := func(g *engine.Group, want []string) {
				t.Helper()
				evs := collect(t, g, 10*time.Second, isRootGone)
				var gotPaths []string
				for _, e := range evs {
					switch {
					case e.mask&engine.QueueOverflow != 0:
						t.Errorf("%s: an overflow (%d events): nothing should be lost here", g.Options().Name, len(evs))
					case e.mask&engine.Delete != 0:
						gotPaths = append(gotPaths, strings.TrimPrefix(e.path, root+"/"))
					}
				}
				sort.Strings(gotPaths)
				if !isRootGone(evs) || strings.Join(gotPaths, " ") != strings.Join(want, " ") {
					t.Errorf("%s: removals\n got  %d %v\n want %d %v\nlast event %+v; stats %+v", g.Options().Name,
						len(gotPaths), gotPaths, len(want), want, evs[len(evs)-1:], b.Stats())
				}
			}
			check(rec, want)
			var top []string
			for _, p := range want {
				if !strings.Contains(p, "/") {
					top = append(top, p)
				}
			}
			check(one, top)
			if st := b.Stats(); st.OrphansUnplaced != 0 || st.Orphaned == 0 {
				t.Errorf("orphaned %d, unplaced %d: want every event below the tree orphaned and each placed by its directory's DELETE", st.Orphaned, st.OrphansUnplaced)
			}
		})
	}
}
