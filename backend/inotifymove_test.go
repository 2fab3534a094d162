//go:build linux

package backend

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// TestInotifyRenamesSplitAcrossReadsKeepTheTree: a directory renamed inside a tree again and
// again, by a process that shares its CPU with a busy loop (so that it is preempted in the
// middle of a rename, between the kernel's MOVED_FROM and MOVED_TO, while the reader reads on
// the other CPU), stays in the tree: every file created in it after each rename is reported
// once. The backend took a directory whose MOVED_FROM ended a read, followed by an empty
// read or by any other event, out of the tree: it then missed what was created in it until
// the next rename, which it took for a directory moved in and scanned (a Create again for
// every file already there).
func TestInotifyRenamesSplitAcrossReadsKeepTheTree(t *testing.T) {
	for _, tool := range []string{"taskset", "mv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	b := inoBackend(t)
	sub := t.TempDir()
	a := filepath.Join(sub, "a")
	os.MkdirAll(filepath.Join(a, "x0"), 0o755)
	g := inoGroup(t, b)
	inoMark(t, b, g, sub, engine.KindSubtree, engine.Create|engine.Move|engine.OnDir)

	busy := exec.Command("taskset", "-c", "0", "sh", "-c", "while :; do :; done")
	// Killed with this test binary too (a timeout's panic runs no defer): a busy loop left
	// pinned to CPU 0 would slow every later test.
	busy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startFromSpawner(busy.Start); err != nil {
		t.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	const renames = 300 // of each direction
	script := fmt.Sprintf(`cd %s && i=0 && while [ $i -lt %d ]; do
		mv x0 x1 && : > x1/f$i && mv x1 x0 && : > x0/g$i || exit 1; i=$((i+1)); done`, a, renames)
	if out, err := exec.Command("taskset", "-c", "0", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	busy.Process.Kill()
	sentinel := filepath.Join(sub, "sentinel")
	os.WriteFile(sentinel, nil, 0o644)
	evs := inoReadUntil(t, g, inoCreated(sentinel))

	seen := map[string]int{}
	for _, e := range evs {
		if e.mask&engine.Create != 0 && strings.HasPrefix(e.path, a+"/x") {
			seen[filepath.Base(e.path)]++
		}
	}
	var lost, twice []string
	for i := 0; i < renames; i++ {
		for _, f := range []string{fmt.Sprintf("f%d", i), fmt.Sprintf("g%d", i)} {
			switch n := seen[f]; {
			case n == 0:
				lost = append(lost, f)
			case n > 1:
				twice = append(twice, fmt.Sprintf("%s ×%d", f, n))
			}
		}
	}
	if len(lost) > 0 || len(twice) > 0 {
		t.Fatalf("of %d files created each after a rename: %d not reported %v, %d reported more than once (rescanned as moved in) %v",
			2*renames, len(lost), firstTen(lost), len(twice), firstTen(twice))
	}
}

func firstTen(s []string) []string {
	if len(s) > 10 {
		return append(s[:10:10], "...")
	}
	return s
}

// TestInotifyPendingMoveEndsAtMoveSelf drives the reader's handling of a directory rename with
// the kernel's events split as a reader can find them: a MOVED_FROM alone in a read, then an
// empty read, then the MOVED_TO and the MOVE_SELF (the directory stays in its tree, renamed);
// a MOVED_FROM and the MOVE_SELF with no MOVED_TO between (moved outside every watch: it
// leaves the tree); a MOVED_FROM and an overflow (its MOVED_TO may be lost: it leaves the
// tree, and the overflow's scan watches it again where it is). The events are built here (the
// files do not move), fed to the reader's own handling (inotifyGroup.dispatch) while the kernel queue is empty.
func TestInotifyPendingMoveEndsAtMoveSelf(t *testing.T) {
	b := inoBackend(t)
	sub := t.TempDir()
	a, x := filepath.Join(sub, "a"), filepath.Join(sub, "a", "x")
	os.MkdirAll(filepath.Join(x, "y"), 0o755)
	g := inoGroup(t, b)
	inoMark(t, b, g, sub, engine.KindSubtree, engine.Create|engine.Move|engine.OnDir)
	ino := b.ino
	watch := func(path string) *inoWatch {
		ino.mu.Lock()
		defer ino.mu.Unlock()
		return ino.byID[inoID(t, path)]
	}
	wa := watch(a)
	if wa == nil || watch(x) == nil {
		t.Fatal("the tree's directories are not watched")
	}
	const isDir = sys.IN_ISDIR
	from := func(cookie uint32) sys.InotifyEvent {
		return sys.InotifyEvent{Wd: wa.wd, Mask: sys.IN_MOVED_FROM | isDir, Cookie: cookie, Name: []byte("x")}
	}
	to := func(cookie uint32, name string) sys.InotifyEvent {
		return sys.InotifyEvent{Wd: wa.wd, Mask: sys.IN_MOVED_TO | isDir, Cookie: cookie, Name: []byte(name)}
	}
	self := func(w *inoWatch) sys.InotifyEvent { return sys.InotifyEvent{Wd: w.wd, Mask: sys.IN_MOVE_SELF} }
	// The reader's handling of events read, on this goroutine (the reader's own may be running:
	// dispatch, not handleBatch, whose slice is the reader's).
	feed := func(evs []sys.InotifyEvent, now time.Time) { ino.dispatch(evs, now, nil) }
	state := func(w *inoWatch) (watched, member bool, parent *inoWatch, name string, pending int) {
		ino.mu.Lock()
		defer ino.mu.Unlock()
		return ino.byWd[w.wd] == w, w.member, w.parent, w.name, len(ino.pendingOut)
	}

	// Split: MOVED_FROM, an empty read, then MOVED_TO and MOVE_SELF.
	wx := watch(x)
	feed([]sys.InotifyEvent{from(7)}, time.Now())
	ino.drained(time.Now())
	if watched, member, _, _, pending := state(wx); !watched || !member || pending != 1 {
		t.Fatalf("after a MOVED_FROM and an empty read: watched %v, in the tree %v, pending moves %d; want true, true, 1 (the rename may not be over)",
			watched, member, pending)
	}
	feed([]sys.InotifyEvent{to(7, "z")}, time.Now())
	feed([]sys.InotifyEvent{self(wx)}, time.Now())
	if watched, member, parent, name, pending := state(wx); !watched || !member || parent != wa || name != "z" || pending != 0 {
		t.Fatalf("after its MOVED_TO and MOVE_SELF: watched %v, in the tree %v, under a %v, named %q, pending %d; want true, true, true, \"z\", 0",
			watched, member, parent == wa, name, pending)
	}
	// Put the name back as it is on disk.
	feed([]sys.InotifyEvent{{Wd: wa.wd, Mask: sys.IN_MOVED_FROM | isDir, Cookie: 8, Name: []byte("z")}, to(8, "x"), self(wx)}, time.Now())
	if _, _, _, name, _ := state(wx); name != "x" {
		t.Fatalf("renamed back: named %q", name)
	}

	// An overflow while a move is pending: out, then watched again by the scan.
	feed([]sys.InotifyEvent{from(9)}, time.Now())
	feed([]sys.InotifyEvent{{Wd: -1, Mask: sys.IN_Q_OVERFLOW}}, time.Now())
	if _, _, _, _, pending := state(wx); pending != 0 {
		t.Fatalf("pending moves after an overflow: %d, want 0", pending)
	}
	if w := watch(x); w == nil || !w.member || w.parent != wa || w.name != "x" {
		t.Fatalf("after the overflow's scan, %s is not watched in its tree: %+v", x, w)
	}

	// MOVED_FROM then MOVE_SELF: moved outside every watch; x and y leave the tree.
	wx, wy := watch(x), watch(filepath.Join(x, "y"))
	feed([]sys.InotifyEvent{from(10)}, time.Now())
	feed([]sys.InotifyEvent{self(wx)}, time.Now())
	if watched, _, _, _, pending := state(wx); watched || pending != 0 {
		t.Fatalf("after a MOVED_FROM and its MOVE_SELF alone: still watched %v, pending %d; want false, 0", watched, pending)
	}
	if watched, _, _, _, _ := state(wy); watched {
		t.Fatal("a directory below the one moved out is still watched")
	}
}

// TestInotifyRenameExchangeKeepsPaths: two directories of a tree swapped by one
// renameat2(RENAME_EXCHANGE), which the kernel reports as two moves (x → y, then y → x), keep
// their own paths: a file created in each afterwards is reported under the name its directory
// has now, and a directory created in one is watched (a file in it reported). The backend
// took the second move's directory by its old name — where the first move had put the other
// one — and swapped the two directories' paths back: the files were reported under the wrong
// names, and a directory created in either was looked for at the wrong path and not watched.
func TestInotifyRenameExchangeKeepsPaths(t *testing.T) {
	b := inoBackend(t)
	sub := t.TempDir()
	x, y := filepath.Join(sub, "a", "x"), filepath.Join(sub, "b", "y")
	os.MkdirAll(x, 0o755)
	os.MkdirAll(y, 0o755)
	g := inoGroup(t, b)
	inoMark(t, b, g, sub, engine.KindSubtree, engine.Create|engine.Move|engine.OnDir)
	for _, pair := range [][2]string{{x, filepath.Join(sub, "a", "z")}, {x, y}} { // same directory, then across
		from, to := pair[0], pair[1]
		if pair[1] != y {
			// Made and watched before the exchange (its CREATE read: the sentinel's after it).
			os.MkdirAll(to, 0o755)
			sentinel := filepath.Join(sub, "made-"+filepath.Base(to))
			os.WriteFile(sentinel, nil, 0o644)
			inoReadUntil(t, g, inoCreated(sentinel))
		}
		fromIno, toIno := inoID(t, from), inoID(t, to)
		if err := sys.RenameExchange(from, to); err != nil {
			t.Skipf("no RENAME_EXCHANGE here: %v", err)
		}
		if inoID(t, from) != toIno || inoID(t, to) != fromIno {
			t.Fatal("the exchange did not swap the directories")
		}
		inFrom, inTo := filepath.Join(from, "f1"), filepath.Join(to, "f2")
		os.WriteFile(inFrom, nil, 0o644)
		os.WriteFile(inTo, nil, 0o644)
		os.Mkdir(filepath.Join(from, "d"), 0o755)
		deep := filepath.Join(from, "d", "f3")
		os.WriteFile(deep, nil, 0o644)
		evs := inoReadUntil(t, g, inoCreated(deep))
		for _, want := range []string{inFrom, inTo} {
			found := false
			for _, e := range evs {
				found = found || e.mask&engine.Create != 0 && e.path == want
			}
			if !found {
				t.Fatalf("exchange %s ⇄ %s: no Create of %s; got:\n%s", from, to, want, inoDump(evs))
			}
		}
		os.RemoveAll(filepath.Join(from, "d"))
	}
}
