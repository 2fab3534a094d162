//go:build linux

package backend

// Kernel scenarios beyond LTP's: a killed permission listener, subtree paths across renames,
// the evictable ignore marks that keep subtree watches cheap, and helper exemption.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestPermissionListenerKilledMidEvent: a listener process (backend + engine, a content group
// that never answers) is SIGKILLed while another process waits on its permission event; the
// kernel then allows the access, nobody stays blocked, and later accesses go through.
func TestPermissionListenerKilledMidEvent(t *testing.T) {
	root := testenv.Tmpfs(t)
	file := filepath.Join(root, "f")
	writeFile(t, file, "x")
	l := startHelper(t, "listen-perm", root)
	l.line("READY")
	acc := startAccess(t, "open:"+file, "read:1", "close")
	ev := l.line("EVENT ")
	if f := strings.Fields(ev); len(f) < 3 || f[1] != strconv.Itoa(acc.pid()) || f[2] != file {
		t.Errorf("listener read %q, want the accessor's (pid %d) open of %s", ev, acc.pid(), file)
	}
	if !acc.running() {
		t.Fatalf("the accessor finished while the listener held its event: %v", acc.result())
	}
	l.kill()
	if res := acc.result(); res.errno != 0 {
		t.Errorf("accessor after the listener died: %v, want allowed", res)
	}
	if res, _ := access(t, "open:"+file); res.errno != 0 {
		t.Errorf("a later open: %v", res)
	}
}

// TestSubtreeRenameKeepsPaths: renaming a directory inside a watched subtree, renaming the
// subtree's root, moving a directory in from outside and one out: the paths reported after
// each move are the new ones (the backend's cached directory paths are invalidated), what
// moved in is watched, and what moved out is not.
func TestSubtreeRenameKeepsPaths(t *testing.T) {
	root := testenv.Tmpfs(t)
	j := filepath.Join
	w := j(root, "w")
	mkdirAll(t, j(w, "a", "b"))
	mkdirAll(t, j(root, "out", "c"))
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "subtree-rename"})
	mark(t, b, g, w, engine.KindSubtree, engine.MarkSpec{Mask: engine.Create | engine.OnDir})
	r := record(t, g, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	expect := func(path string) {
		t.Helper()
		r.waitPath(0, engine.Create, path)
	}

	create(t, j(w, "a", "b", "x1"))
	expect(j(w, "a", "b", "x1"))
	must(os.Rename(j(w, "a"), j(w, "a2")))
	create(t, j(w, "a2", "b", "x2"))
	expect(j(w, "a2", "b", "x2"))

	must(os.Rename(w, j(root, "w2")))
	w2 := j(root, "w2")
	create(t, j(w2, "a2", "b", "x3"))
	expect(j(w2, "a2", "b", "x3"))
	must(os.Mkdir(j(w2, "a2", "new"), 0o755))
	create(t, j(w2, "a2", "new", "x4"))
	expect(j(w2, "a2", "new", "x4"))

	// In from outside (c had no event outside, so no ignore mark: TestSubtreeDirectoryMovedIn*
	// cover that).
	must(os.Rename(j(root, "out", "c"), j(w2, "c")))
	create(t, j(w2, "c", "y1"))
	// Out: events there are no longer reported.
	must(os.Rename(j(w2, "a2"), j(root, "out", "a3")))
	create(t, j(root, "out", "a3", "b", "x5"))
	create(t, j(w2, "zz-sentinel"))
	expect(j(w2, "zz-sentinel"))
	expect(j(w2, "c", "y1"))
	for _, x := range r.since(0) {
		if !strings.HasPrefix(x.Path, w+"/") && !strings.HasPrefix(x.Path, w2+"/") {
			t.Errorf("reported outside the subtree: %v", x)
		}
		for _, stale := range []string{j(w, "a", "b", "x2"), j(w, "a2", "b", "x3"), j(w2, "a", "b", "x3")} {
			if x.Path == stale {
				t.Errorf("stale path: %v", x)
			}
		}
	}
}

// movedIn builds n directories outside a subtree, each with a first event (so that the
// backend could put ignore marks there), and moves them into the subtree one by one; after each
// move, between (when set) waits until the backend has read the move before a file is created
// in the moved directory. It returns the files that were not reported.
func movedIn(t *testing.T, n int, between bool) (missing []string) {
	root := testenv.Tmpfs(t)
	j := filepath.Join
	w := j(root, "w")
	mkdirAll(t, w)
	for i := 0; i < n; i++ {
		mkdirAll(t, j(root, "out", "c"+strconv.Itoa(i)))
	}
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "moved-in"})
	mark(t, b, g, w, engine.KindSubtree, engine.MarkSpec{Mask: engine.Create})
	r := record(t, g, nil)
	for i := 0; i < n; i++ {
		create(t, j(root, "out", "c"+strconv.Itoa(i), "before"))
	}
	// The backend has read the creates outside the subtree: whatever it does about them
	// (ignore marks, or nothing), it has done it before the moves below.
	waitUntil(t, "the backend to read the creates outside the subtree", func() bool { return b.Stats().Events >= uint64(n) })
	for i := 0; i < n; i++ {
		c := "c" + strconv.Itoa(i)
		if err := os.Rename(j(root, "out", c), j(w, c)); err != nil {
			t.Fatal(err)
		}
		if between {
			// The kernel queues the move before this create: once the backend reported the
			// create, it has handled the move.
			s := j(w, "moved-"+c)
			create(t, s)
			r.waitPath(0, engine.Create, s)
		}
		create(t, j(w, c, "after"))
	}
	create(t, j(w, "zz-sentinel"))
	r.waitPath(0, engine.Create, j(w, "zz-sentinel"))
	got := r.since(0)
	for i := 0; i < n; i++ {
		p := j(w, "c"+strconv.Itoa(i), "after")
		found := false
		for _, x := range got {
			found = found || x.Path == p
		}
		if !found {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Logf("read:\n%s", dump(got))
	}
	return missing
}

// TestSubtreeDirectoryMovedInIsWatched: a directory outside every subtree, which the backend
// told the kernel to ignore after its first event, is moved into a subtree; once the backend
// has read the move, files created in it are reported.
func TestSubtreeDirectoryMovedInIsWatched(t *testing.T) {
	const n = 5
	if missing := movedIn(t, n, true); len(missing) > 0 {
		t.Errorf("%d of %d files created in a directory moved into the subtree (after the backend read the move) were not reported: %v", len(missing), n, missing)
	}
}

// TestSubtreeDirectoryMovedInNoWindow: the same, with the file created right after the move
// (a program's next syscall), before the backend can have read the move: "no window" for
// subtree watches includes directories that move in.
func TestSubtreeDirectoryMovedInNoWindow(t *testing.T) {
	const n = 20
	if missing := movedIn(t, n, false); len(missing) > 0 {
		t.Errorf("%d of %d files created right after their directory moved into the subtree were not reported: %v", len(missing), n, missing)
	}
}

// TestEvictableIgnoreMarks: once the backend has seen opens outside every subtree, it puts
// ignore marks there and repeating those opens costs no kernel event at all (Stats().Events
// stops growing; Stats().IgnoreMarks > 0). Adding an inode mark on such a file, or a subtree
// that covers the directory, makes their events flow again as soon as AddMark returns.
func TestEvictableIgnoreMarks(t *testing.T) {
	root := testenv.Tmpfs(t)
	j := filepath.Join
	w, other := j(root, "w"), j(root, "other")
	var files []string
	for i := 0; i < 20; i++ {
		f := j(other, "f"+strconv.Itoa(i))
		writeFile(t, f, "x")
		files = append(files, f)
	}
	mkdirAll(t, w)
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "subtree-w"})
	mark(t, b, g, w, engine.KindSubtree, engine.MarkSpec{Mask: engine.Open})
	r := record(t, g, nil)
	nsent := 0
	// round opens every file of other once, then a new sentinel in w, and returns how many
	// kernel events that cost besides the sentinel's.
	round := func() uint64 {
		t.Helper()
		s := j(w, "s"+strconv.Itoa(nsent))
		nsent++
		writeFile(t, s, "s")
		from := r.waitPath(0, engine.Open, s) + 1 // the write's open: read, so no merge below
		before := b.Stats().Events
		for _, f := range files {
			touch(t, f)
		}
		touch(t, s)
		r.waitPath(from, engine.Open, s)
		return b.Stats().Events - before - 1
	}
	first := round()
	waitUntil(t, "ignore marks", func() bool { return b.Stats().IgnoreMarks > 0 })
	// The janitor installs them asynchronously: repeat until a round costs nothing.
	waitUntil(t, "a round of opens outside the subtree that costs no kernel event", func() bool { return round() == 0 })
	for k := 0; k < 3; k++ {
		if n := round(); n != 0 {
			t.Errorf("round %d: %d kernel events for %d repeated opens outside the subtree; want 0", k, n, len(files))
		}
	}
	t.Logf("first round: %d kernel events for %d opens; ignore marks: %d", first, len(files), b.Stats().IgnoreMarks)
	for _, x := range r.since(0) {
		if strings.HasPrefix(x.Path, other) {
			t.Errorf("reported outside the subtree: %v", x)
		}
	}

	// An inode mark on an ignored file (another group, which also marks a sentinel): its
	// events come.
	gi := newGroup(t, b, engine.Options{Name: "inode-in-ignored"})
	s := j(w, "s-inode")
	writeFile(t, s, "s")
	r.waitPath(0, engine.Open, s) // its creation is behind us: gi will not get that open
	mark(t, b, gi, files[5], engine.KindInode, engine.MarkSpec{Mask: engine.Open})
	mark(t, b, gi, s, engine.KindInode, engine.MarkSpec{Mask: engine.Open})
	ri := record(t, gi, nil)
	touch(t, files[5])
	touch(t, s)
	ri.waitPath(0, engine.Open, s)
	if got := ri.since(0); len(got) != 2 || got[0].Path != files[5] {
		t.Errorf("inode mark on a file the backend had ignored: read\n%s want its OPEN, then the sentinel's", dump(got))
	}

	// A subtree above the ignored directory (another group): its opens flow again.
	gs := newGroup(t, b, engine.Options{Name: "subtree-root"})
	mark(t, b, gs, root, engine.KindSubtree, engine.MarkSpec{Mask: engine.Open})
	rs := record(t, gs, nil)
	touch(t, files[1])
	s = j(w, "s-subtree") // in the new subtree too
	writeFile(t, s, "s")
	touch(t, s)
	rs.waitPath(0, engine.Open, s)
	found := false
	for _, x := range rs.since(0) {
		found = found || x.Path == files[1]
	}
	if !found {
		t.Errorf("an open in %s right after a subtree above it was added was not reported; read:\n%s", other, dump(rs.since(0)))
	}
}

// TestIgnoreMarksNeverHideANewSubtree: while opens keep coming from directories outside every
// subtree (so the backend keeps installing ignore marks), a subtree covering them is added; once
// AddMark has returned, no ignore mark may hide their events. Repeated, since an ignore mark
// decided on the old marks and installed after the subtree appeared is a race.
func TestIgnoreMarksNeverHideANewSubtree(t *testing.T) {
	root := testenv.Tmpfs(t)
	j := filepath.Join
	w, other := j(root, "w"), j(root, "other")
	const dirs = 32
	var files []string
	for i := 0; i < dirs; i++ {
		f := j(other, "d"+strconv.Itoa(i), "f")
		writeFile(t, f, "x")
		files = append(files, f)
	}
	mkdirAll(t, w)
	b := newBackend(t, ModeFanotify)
	// gs watches w (sentinels) all along, and other during each iteration.
	gs := newGroup(t, b, engine.Options{Name: "subtree-w+other"})
	mark(t, b, gs, w, engine.KindSubtree, engine.MarkSpec{Mask: engine.Open})
	rs := record(t, gs, nil)
	otherObj := engine.Subtree(idOf(t, other))

	sentinel := 0
	flush := func() { // gs has read every event before this point
		t.Helper()
		s := j(w, "s"+strconv.Itoa(sentinel))
		sentinel++
		writeFile(t, s, "s")
		rs.waitPath(0, engine.Open, s)
	}
	for iter := 0; iter < 10; iter++ {
		base := b.Stats().IgnoreMarks
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if f, err := os.Open(files[k%dirs]); err == nil {
					f.Close()
				}
			}
		}()
		waitUntil(t, "ignore marks being installed", func() bool { return b.Stats().IgnoreMarks > base })
		mark(t, b, gs, other, engine.KindSubtree, engine.MarkSpec{Mask: engine.Open})
		close(stop)
		wg.Wait()
		flush()
		from := rs.len()
		for _, f := range files {
			touch(t, f)
		}
		flush()
		got := rs.since(from)
		var missing []string
		for _, f := range files {
			found := false
			for _, x := range got {
				found = found || x.Path == f
			}
			if !found {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			t.Fatalf("iteration %d: opens after the subtree on %s was added were not reported: %v", iter, other, missing)
		}
		if err := gs.RemoveMark(otherObj); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExemptPidCoversOnlyHelpers: a helper registered with ExemptPid (started inside a
// Spawning window) is allowed without dispatch by a deny-all group; while it is registered, an
// ordinary child of this process — not a helper, nor a helper's descendant — is still subject
// to the group's verdicts.
func TestExemptPidCoversOnlyHelpers(t *testing.T) {
	root := testenv.Tmpfs(t)
	file := filepath.Join(root, "f")
	writeFile(t, file, "x")
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "deny-all", Class: engine.ClassContent, Deadline: permDeadline})
	mark(t, b, g, root, engine.KindFilesystem, engine.MarkSpec{Mask: engine.OpenPerm})
	r := record(t, g, func(rec) engine.Response { return engine.Response{Verdict: engine.Deny} })

	// A helper that stays registered while the test runs.
	end := b.Spawning()
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		end()
		t.Fatal(err)
	}
	done := b.ExemptPid(sleeper.Process.Pid)
	end()
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	defer done()

	// A helper accessor: started in a Spawning window, exempt.
	end = b.Spawning()
	h := startAccess(t, "open:"+file)
	doneH := b.ExemptPid(h.pid())
	end()
	if res := h.result(); res.errno != 0 {
		t.Errorf("exempt helper: %v, want allowed without dispatch", res)
	}
	doneH()

	// An ordinary child.
	res, pid := access(t, "open:"+file)
	if res.errno != syscall.EPERM {
		t.Errorf("an ordinary child (pid %d) while a helper is registered: %v, want EPERM from the deny-all group; "+
			"the exemption covers every descendant of this process, not only the helpers' (descendsFromUs)", pid, res)
	}
	for _, x := range r.since(0) {
		if x.Pid == int32(h.pid()) {
			t.Errorf("the exempt helper's event was dispatched: %v", x)
		}
	}
}

// TestOneOrderPerFileAndDirectory: every event of a file and of its directory reaches a
// subtree's group in the order the kernel queued it, over many iterations at full speed:
// per file CREATE < OPEN < MODIFY < CLOSE_WRITE, then a reader's OPEN < ACCESS <
// CLOSE_NOWRITE, then DELETE; per directory its CREATE first, then rm's OPENs, ACCESSes and
// CLOSE_NOWRITEs of it (rm may open it more than once), and its DELETE last, after every
// event of its file. With two kernel
// queues (notifications in the FD group, entries in the FID group) a DELETE could come
// before the CLOSE_WRITE, and a directory's DELETE before rm's OPEN of it.
func TestOneOrderPerFileAndDirectory(t *testing.T) {
	root := testenv.Tmpfs(t)
	w := filepath.Join(root, "w")
	mkdirAll(t, w)
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "one-order", MergeLast: true, QueueLimit: 1 << 20})
	mark(t, b, g, w, engine.KindSubtree, engine.MarkSpec{Mask: engine.Create | engine.Open | engine.Access |
		engine.Modify | engine.Close | engine.Delete | engine.OnDir})
	const n = 300
	script := `cd "$1" && i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do mkdir d$i; echo x > d$i/f; cat d$i/f >/dev/null; rm -rf d$i; i=$((i+1)); done`
	start := time.Now()
	if err := run(t, "sh", "-c", script, "sh", w); err != nil {
		t.Fatal(err)
	}
	t.Logf("the script ran in %v", time.Since(start))
	last := filepath.Join(w, "d"+strconv.Itoa(n-1))
	evs := collect(t, g, 60*time.Second, func(out []got) bool {
		return len(out) > 0 && out[len(out)-1].path == last && out[len(out)-1].mask&engine.Delete != 0
	})
	// Each object's operations in arrival order (a merged delivery split in engine.SplitMask's
	// order), repeats of one operation in a row counted once (rm may read a directory twice),
	// and the position of each in the whole stream.
	ops := map[string][]string{}
	pos := map[string][]int{}
	for i, e := range evs {
		if e.mask == engine.QueueOverflow {
			t.Fatalf("queue overflow after %d events", i)
		}
		for _, part := range engine.SplitMask(e.mask&^engine.OnDir, nil) {
			op := strings.ToLower(part.String())
			if l := ops[e.path]; len(l) > 0 && l[len(l)-1] == op {
				continue
			}
			ops[e.path] = append(ops[e.path], op)
			pos[e.path] = append(pos[e.path], i)
		}
	}
	wantFile := "create,open,modify,close_write,open,access,close_nowrite,delete"
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for i := 0; i < n; i++ {
		d := filepath.Join(w, "d"+strconv.Itoa(i))
		f := filepath.Join(d, "f")
		if got := strings.Join(ops[f], ","); got != wantFile {
			fail("%s: %s, want %s", f, got, wantFile)
		}
		if l := ops[d]; !dirOrder(l) {
			fail("%s: %s, want create, rm's open, access and close_nowrite of it, delete", d, strings.Join(l, ","))
		}
		if len(pos[d]) == 0 || len(pos[f]) == 0 {
			continue
		}
		dirCreate, dirDelete := pos[d][0], pos[d][len(pos[d])-1]
		if first, lastF := pos[f][0], pos[f][len(pos[f])-1]; first < dirCreate || lastF > dirDelete {
			fail("%s: its file's events at %d..%d, outside its own CREATE..DELETE %d..%d", d, first, lastF, dirCreate, dirDelete)
		}
	}
	if bad > 10 {
		t.Errorf("%d objects wrong in all", bad)
	}
	if t.Failed() {
		t.Logf("%d events; backend %+v", len(evs), b.Stats())
	}
}

// dirOrder reports whether a directory's operations are its create, then opens, reads and
// closes (the first an open, the last a close), then its delete.
func dirOrder(l []string) bool {
	if len(l) < 5 || l[0] != "create" || l[1] != "open" || l[len(l)-2] != "close_nowrite" || l[len(l)-1] != "delete" {
		return false
	}
	for _, op := range l[1 : len(l)-1] {
		if op != "open" && op != "access" && op != "close_nowrite" {
			return false
		}
	}
	return true
}

// TestMountMarkMovesNotificationsToTheFDGroup: a mount mark that wants opens takes the
// filesystem's notification events to the FD group (only FD events say which mount), and
// removing it brings them back to the FID group; an inode mark watching the same opens
// meanwhile gets every open exactly once, before, during and after (no event read twice from
// both groups, none lost in the move).
func TestMountMarkMovesNotificationsToTheFDGroup(t *testing.T) {
	root := testenv.Tmpfs(t)
	file := filepath.Join(root, "f")
	writeFile(t, file, "x")
	b := newBackend(t, ModeFanotify)
	gi := newGroup(t, b, engine.Options{Name: "inode", MergeLast: true})
	mark(t, b, gi, file, engine.KindInode, engine.MarkSpec{Mask: engine.Open})
	ri := record(t, gi, nil)
	gm := newGroup(t, b, engine.Options{Name: "mount"})
	fileID := idOf(t, file)
	opens := func(rs []rec) int {
		n := 0
		for _, x := range rs {
			if x.Inode == fileID && x.Mask&engine.Open != 0 {
				n++
			}
		}
		return n
	}
	fsOf := func() *fsState {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.fss[stat(t, file).Dev]
	}
	step := func(what string, wantFID bool) {
		t.Helper()
		fs := fsOf()
		b.mu.Lock()
		got := fs.notifyFID
		b.mu.Unlock()
		if got != wantFID {
			t.Errorf("%s: notifyFID %v, want %v", what, got, wantFID)
		}
		start := ri.len()
		const n = 10
		for i := 1; i <= n; i++ {
			// One at a time: the kernel and the group merge an unread open into the next.
			touch(t, file)
			for deadline := time.Now().Add(hang); opens(ri.since(start)) < i && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(50 * time.Millisecond) // a duplicate from the other group would be in by now
		if got := opens(ri.since(start)); got != n {
			t.Errorf("%s: the inode mark got %d opens, want %d", what, got, n)
		}
	}
	step("inode mark alone", true)
	mt, err := b.Resolve(root, engine.KindMount, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddMark(gm, mt, engine.MarkSpec{Mask: engine.Open}); err != nil {
		t.Fatal(err)
	}
	step("with a mount mark", false)
	if err := gm.RemoveMark(mt.Object); err != nil {
		t.Fatal(err)
	}
	step("after the mount mark", true)
}
