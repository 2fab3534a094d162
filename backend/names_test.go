//go:build linux

package backend

// Adversarial tests of the name marks (names.go): outside-ignore marks and the verdict cache
// must never let an access reach a file without a decision, whatever moves, links, renames,
// bind mounts and mount namespaces do to its names. The hostile steps run as uid 65534
// (nobody) where the invariant is about untrusted users; root's own moves have a documented
// window (until the FID reader reads them), which the tests bound. docs/security.md, "Ignore
// marks and the verdict cache", cites each test.

import (
	"errors"
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
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// rootWindow bounds how long root's move or link may keep a name mark in place: the FID
// reader's latency (microseconds when idle), with room for a loaded CI machine.
const rootWindow = 5 * time.Second

var (
	nobodyCred = testenv.Nobody
	shAs       = testenv.Sh
)

func mustSh(t testing.TB, cred *syscall.Credential, script string) {
	t.Helper()
	if out, err := shAs(cred, script); err != nil {
		t.Fatalf("%s (uid %v): %v: %s", script, uidOf(cred), err, out)
	}
}

func uidOf(cred *syscall.Credential) any {
	if cred == nil {
		return 0
	}
	return cred.Uid
}

// catAs opens and reads path as cred; it returns the errno of a refused open (0 when read).
func catAs(t testing.TB, cred *syscall.Credential, path string) syscall.Errno {
	t.Helper()
	out, err := shAs(cred, "cat "+path+" >/dev/null")
	switch {
	case err == nil:
		return 0
	case strings.Contains(out, "Operation not permitted"):
		return syscall.EPERM
	case strings.Contains(out, "Permission denied"):
		return syscall.EACCES
	}
	t.Fatalf("cat %s as uid %v: %v: %s", path, uidOf(cred), err, out)
	return 0
}

// decider is a permission group's Handler that counts its decisions per path: it denies
// "*.key" and allows the rest, caching the allows when cache is set.
type decider struct {
	mu    sync.Mutex
	n     map[string]int
	cache bool
	deny  func(path string) bool
}

func newDecider(cache bool) *decider {
	return &decider{n: map[string]int{}, cache: cache, deny: func(p string) bool { return strings.HasSuffix(p, ".key") }}
}

func (d *decider) handle(dl engine.Delivery) (engine.Response, bool) {
	p := dl.Event.GetPath()
	d.mu.Lock()
	d.n[p]++
	d.mu.Unlock()
	if d.deny(p) {
		return engine.Response{Verdict: engine.Deny}, true
	}
	return engine.Response{Cache: d.cache}, true
}

func (d *decider) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[path]
}

// guardGroup is what a guard places: a content group deciding opens (files and directories)
// below dir, through a subtree mark.
func guardGroup(t *testing.T, b *Backend, dir string, d *decider) *engine.Group {
	t.Helper()
	g := newGroup(t, b, engine.Options{Name: "guard", Class: engine.ClassContent, Deadline: permDeadline, Handler: d.handle})
	mark(t, b, g, dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm | engine.OnDir})
	return g
}

// nameMarkOf returns the ignore bits the backend recorded on path's inode, by purpose.
func nameMarkOf(b *Backend, path string) (ignore, cache uint64) {
	st, err := sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return 0, 0
	}
	fv := b.view.Load().fs[st.Dev]
	if fv == nil {
		return 0, 0
	}
	fs := fv.state
	fs.ignMu.Lock()
	defer fs.ignMu.Unlock()
	if m := fs.nameMarks[inodeID(st.Dev, st.Ino)]; m != nil {
		return m.ignore, m.cache
	}
	return 0, 0
}

// janitorDone waits until the janitor has handled every request before this call: it asks
// for an outside-ignore mark on a fresh pinned sentinel file (root's, in root's directory
// out) and waits for it; the janitor works in order.
func janitorDone(t *testing.T, b *Backend, out string) {
	t.Helper()
	s := filepath.Join(out, "sentinel-"+strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", ""))
	writeFile(t, s, "s")
	waitUntil(t, "the janitor to mark the sentinel "+s, func() bool {
		if ig, _ := nameMarkOf(b, s); ig != 0 {
			return true
		}
		catAs(t, nil, s)
		return false
	})
}

// untilDenied opens path as cred until the open is refused with EPERM, within rootWindow.
func untilDenied(t *testing.T, cred *syscall.Credential, path string) {
	t.Helper()
	deadline := time.Now().Add(rootWindow)
	for catAs(t, cred, path) != syscall.EPERM {
		if time.Now().After(deadline) {
			t.Fatalf("%s still opens without a decision %v after root moved or linked it", path, rootWindow)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nameFixture is a scratch tmpfs every uid can reach: g is guarded (deny *.key), g/inc is
// nobody's (so nobody can move things in), out is root's 0755 (what it holds is pinned), pub
// is nobody's, tmp is 1777 as /tmp.
type nameFixture struct {
	root, g, inc, out, pub, tmp string
	b                           *Backend
	d                           *decider
}

func newNameFixture(t *testing.T) *nameFixture {
	t.Helper()
	root := testenv.PublicTmpfs(t)
	j := filepath.Join
	fx := &nameFixture{root: root, g: j(root, "g"), inc: j(root, "g", "inc"), out: j(root, "out"), pub: j(root, "pub"), tmp: j(root, "tmp")}
	mustSh(t, nil, "mkdir -p "+fx.inc+" "+fx.out+" "+fx.pub+" "+fx.tmp+" && chown 65534:65534 "+fx.inc+" "+fx.pub+" && chmod 1777 "+fx.tmp)
	if !readHardlinksProtected() {
		t.Skip("fs.protected_hardlinks is not 1 here: untrusted users may link any file, and no file is pinned")
	}
	fx.b = newBackend(t, ModeFanotify)
	fx.d = newDecider(false)
	guardGroup(t, fx.b, fx.g, fx.d)
	return fx
}

// TestMoveInAfterOutsideAccess: a file (or a directory holding it, or an ancestor of it)
// accessed outside the guarded tree — so the backend may have put an outside-ignore mark on
// it — then moved or linked in, is decided (EPERM for *.key) on its next open. Moved by
// nobody, the first open after the move is decided (nobody cannot move anything pinned, and
// nothing else gets a mark); moved by root, within the window it takes the FID reader to see
// the move.
func TestMoveInAfterOutsideAccess(t *testing.T) {
	fx := newNameFixture(t)
	b, j := fx.b, filepath.Join
	type step struct {
		name   string
		mover  *syscall.Credential
		setup  string // as the mover
		access []string
		marked string // must hold an outside-ignore mark before the move ("" none)
		move   string // as the mover
		denied string
	}
	o, p, inc := fx.out, fx.pub, fx.inc
	steps := []step{
		{"root moves a file in", nil, "echo x > " + o + "/a.key", []string{o + "/a.key"}, o + "/a.key",
			"mv " + o + "/a.key " + fx.g + "/a.key", fx.g + "/a.key"},
		{"root moves a directory holding it in", nil, "mkdir " + o + "/d && echo x > " + o + "/d/a.key",
			[]string{o + "/d/a.key", o + "/d"}, o + "/d/a.key", "mv " + o + "/d " + fx.g + "/d", fx.g + "/d/a.key"},
		{"root renames an ancestor into the tree", nil, "mkdir -p " + o + "/x/y && echo x > " + o + "/x/y/a.key",
			[]string{o + "/x/y/a.key"}, o + "/x/y/a.key", "mv " + o + "/x " + fx.g + "/x", fx.g + "/x/y/a.key"},
		{"root links a file in", nil, "echo x > " + o + "/l.txt", []string{o + "/l.txt"}, o + "/l.txt",
			"ln " + o + "/l.txt " + fx.g + "/l.key", fx.g + "/l.key"},
		{"nobody moves a file in", nobodyCred, "echo x > " + p + "/a.key", []string{p + "/a.key"}, "",
			"mv " + p + "/a.key " + inc + "/a.key", inc + "/a.key"},
		{"nobody moves a directory holding it in", nobodyCred, "mkdir " + p + "/d && echo x > " + p + "/d/a.key",
			[]string{p + "/d/a.key", p + "/d"}, "", "mv " + p + "/d " + inc + "/d", inc + "/d/a.key"},
		{"nobody renames an ancestor into the tree", nobodyCred, "mkdir -p " + p + "/x/y && echo x > " + p + "/x/y/a.key",
			[]string{p + "/x/y/a.key"}, "", "mv " + p + "/x " + inc + "/x", inc + "/x/y/a.key"},
		{"nobody links a file in", nobodyCred, "echo x > " + p + "/l.txt", []string{p + "/l.txt"}, "",
			"ln " + p + "/l.txt " + inc + "/l.key", inc + "/l.key"},
		{"root's file in a sticky world-writable directory", nil, "echo x > " + fx.tmp + "/s.key", []string{fx.tmp + "/s.key"}, "",
			"mv " + fx.tmp + "/s.key " + inc + "/s.key", inc + "/s.key"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			mustSh(t, s.mover, s.setup)
			for _, a := range s.access {
				if st := stat(t, a); st.IsDir() {
					mustSh(t, s.mover, "ls "+a+" >/dev/null") // listed
				} else if e := catAs(t, s.mover, a); e != 0 {
					t.Fatalf("open of %s outside the guarded tree: %v", a, e)
				}
			}
			if s.marked != "" {
				waitUntil(t, "an outside-ignore mark on "+s.marked, func() bool {
					catAs(t, s.mover, s.marked)
					ig, _ := nameMarkOf(b, s.marked)
					return ig != 0
				})
			} else {
				janitorDone(t, b, fx.out)
				for _, a := range s.access {
					if ig, c := nameMarkOf(b, a); ig|c != 0 {
						t.Fatalf("%s is not pinned, yet it got a name mark (ignore %#x, cache %#x)", a, ig, c)
					}
				}
			}
			drops := b.Stats().NameMarkDrops
			before := fx.d.count(s.denied)
			mustSh(t, s.mover, s.move)
			if s.marked != "" {
				// Root moved a pinned object: the documented window, until the FID reader
				// has read the move.
				untilDenied(t, nil, s.denied)
				if b.Stats().NameMarkDrops == drops {
					t.Errorf("NameMarkDrops did not grow: the mark was not dropped for the move")
				}
			} else if e := catAs(t, s.mover, s.denied); e != syscall.EPERM {
				t.Fatalf("first open of %s after uid %v moved it in: %v, want EPERM at once", s.denied, uidOf(s.mover), e)
			}
			if e := catAs(t, nobodyCred, s.denied); e != syscall.EPERM {
				t.Errorf("open of %s by nobody: %v, want EPERM", s.denied, e)
			}
			if n := fx.d.count(s.denied); n < before+1 {
				t.Errorf("%s: %d decisions, want at least one more than %d", s.denied, n, before)
			}
		})
	}
	t.Run("from another filesystem", func(t *testing.T) {
		// A move across filesystems is a copy: the new inode's creation is decided.
		other := testenv.PublicTmpfs(t)
		mustSh(t, nil, "chown 65534:65534 "+other)
		mustSh(t, nobodyCred, "echo x > "+other+"/o.key && cat "+other+"/o.key >/dev/null")
		out, err := shAs(nobodyCred, "mv "+other+"/o.key "+j(fx.inc, "o.key"))
		if err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Fatalf("moving a .key file in from another filesystem: %v %s, want EPERM", err, out)
		}
		if fx.d.count(j(fx.inc, "o.key")) == 0 {
			t.Fatal("the copy's creation was not decided")
		}
	})
}

// TestUntrustedCannotRenamePinned: what pinnedChain relies on, tried as nobody on a pinned
// file (root's, 0644, in root's 0755 directories, marked): moving it, its directory or an
// ancestor, and hard-linking it (fs.protected_hardlinks=1) all fail, and the file stays denied
// under its guarded name; a hard link root made out of the tree is a name outside (allowed,
// documented) that gives the inode no mark, so the guarded name stays decided.
func TestUntrustedCannotRenamePinned(t *testing.T) {
	fx := newNameFixture(t)
	b, j := fx.b, filepath.Join
	mustSh(t, nil, "mkdir -p "+fx.out+"/up/down && echo x > "+fx.out+"/up/down/r.txt")
	r := j(fx.out, "up", "down", "r.txt")
	waitUntil(t, "an outside-ignore mark on "+r, func() bool {
		catAs(t, nobodyCred, r)
		ig, _ := nameMarkOf(b, r)
		return ig != 0
	})
	for _, script := range []string{
		"mv " + r + " " + fx.inc + "/r.key",
		"ln " + r + " " + fx.inc + "/r.key",
		"mv " + j(fx.out, "up", "down") + " " + fx.inc + "/down",
		"mv " + j(fx.out, "up") + " " + fx.inc + "/up",
		"mv " + fx.out + " " + fx.inc + "/out",
	} {
		if out, err := shAs(nobodyCred, script); err == nil {
			t.Errorf("as nobody, %q succeeded (%s): a pinned object got a new name", script, out)
		}
	}
	if _, err := os.Stat(j(fx.inc, "r.key")); err == nil {
		t.Fatal("r.key appeared in the guarded tree")
	}

	// Out of the tree: root links a guarded key out.
	k := j(fx.g, "k.key")
	writeFile(t, k, "k")
	if e := catAs(t, nobodyCred, k); e != syscall.EPERM {
		t.Fatalf("guarded %s: %v, want EPERM", k, e)
	}
	if out, err := shAs(nobodyCred, "ln "+k+" "+fx.pub+"/k.txt"); err == nil {
		t.Errorf("nobody linked root's guarded file out of the tree: %s", out)
	}
	mustSh(t, nil, "ln "+k+" "+fx.out+"/k.txt")
	for i := 0; i < 3; i++ {
		if e := catAs(t, nobodyCred, j(fx.out, "k.txt")); e != 0 {
			t.Fatalf("open of the outside link: %v (a name outside the tree is not guarded)", e)
		}
	}
	janitorDone(t, b, fx.out)
	if ig, c := nameMarkOf(b, k); ig|c != 0 {
		t.Fatalf("a file with two links got a name mark (ignore %#x, cache %#x)", ig, c)
	}
	before := fx.d.count(k)
	if e := catAs(t, nobodyCred, k); e != syscall.EPERM {
		t.Fatalf("guarded name of a file linked out: %v, want EPERM", e)
	}
	if fx.d.count(k) != before+1 {
		t.Fatalf("the guarded name's open was not decided")
	}
}

// TestCachedOutsideThenMovedIn: an allow cached by another group for a file outside the
// guarded tree (its ignore mark hides the file from every group of the backend's kernel
// group) stops hiding it once root moved it in; nobody's files are never cached.
func TestCachedOutsideThenMovedIn(t *testing.T) {
	fx := newNameFixture(t)
	b, j := fx.b, filepath.Join
	c := newDecider(true)
	c.deny = func(string) bool { return false }
	cg := newGroup(t, b, engine.Options{Name: "cache-all", Class: engine.ClassContent, Deadline: permDeadline, Handler: c.handle})
	for _, dir := range []string{fx.out, fx.pub} {
		mark(t, b, cg, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	}
	mustSh(t, nil, "echo x > "+fx.out+"/c.key")
	mustSh(t, nobodyCred, "echo x > "+fx.pub+"/c.key")
	waitUntil(t, "a cached allow for "+fx.out+"/c.key", func() bool {
		catAs(t, nobodyCred, j(fx.out, "c.key"))
		_, cache := nameMarkOf(b, j(fx.out, "c.key"))
		return cache != 0
	})
	before := c.count(j(fx.pub, "c.key"))
	for i := 0; i < 3; i++ {
		catAs(t, nobodyCred, j(fx.pub, "c.key"))
	}
	if n := c.count(j(fx.pub, "c.key")) - before; n != 3 {
		t.Errorf("nobody's file: %d decisions for 3 opens, want 3 (not pinned: never cached)", n)
	}
	mustSh(t, nil, "mv "+fx.out+"/c.key "+fx.g+"/c.key")
	untilDenied(t, nobodyCred, j(fx.g, "c.key"))
	mustSh(t, nobodyCred, "mv "+fx.pub+"/c.key "+fx.inc+"/c.key")
	if e := catAs(t, nobodyCred, j(fx.inc, "c.key")); e != syscall.EPERM {
		t.Fatalf("nobody's file moved in: %v, want EPERM at once", e)
	}
}

// TestBindMountOfGuardedTree: a subtree guard (a filesystem mark filtered by ancestry) decides
// accesses through any mount of the filesystem: a bind mount of the guarded directory, of a
// directory below it (whose mount root hides the guarded directory from the path), and — as
// nobody — through the copies of a new mount namespace in a user namespace, and a bind mount
// made there (whose path means nothing in the guard's namespace).
func TestBindMountOfGuardedTree(t *testing.T) {
	fx := newNameFixture(t)
	j := filepath.Join
	writeFile(t, j(fx.g, "a.key"), "x") // our own accesses are exempt
	writeFile(t, j(fx.g, "sub", "s.key"), "x")
	writeFile(t, j(fx.g, "sub", "t.key"), "x")
	mkdirAll(t, j(fx.out, "b1"))
	mkdirAll(t, j(fx.out, "b2"))
	for _, m := range [][2]string{{fx.g, j(fx.out, "b1")}, {j(fx.g, "sub"), j(fx.out, "b2")}} {
		if err := sys.Mount(m[0], m[1], "", sys.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		target := m[1]
		t.Cleanup(func() { sys.Unmount(target, sys.MNT_DETACH) })
	}
	// Each file is opened once: its ancestry, once known, is cached by inode.
	for _, path := range []string{j(fx.out, "b2", "s.key"), j(fx.out, "b1", "a.key"), j(fx.out, "b1", "sub", "t.key")} {
		before := fx.d.count(path)
		if e := catAs(t, nobodyCred, path); e != syscall.EPERM {
			t.Errorf("open of %s through a bind mount: %v, want EPERM", path, e)
		} else if fx.d.count(path) != before+1 {
			t.Errorf("open of %s through a bind mount: denied, but not decided once", path)
		}
	}
	requireUserns(t)
	for i, script := range []string{
		"cat " + j(fx.g, "u0.key"),
		"mount --bind " + j(fx.g, "sub") + " " + j(fx.pub) + " && cat " + j(fx.pub, "u1.key"),
		"mount --bind " + fx.g + " " + j(fx.out, "b2") + " && cat " + j(fx.out, "b2", "sub", "u2.key"),
	} {
		writeFile(t, j(fx.g, "u0.key"), "x") // fresh files: no cached ancestry
		writeFile(t, j(fx.g, "sub", "u"+strconv.Itoa(i)+".key"), "x")
		out, err := shAs(nobodyCred, "unshare -Urm sh -c '"+script+"'")
		if err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("as nobody in a user namespace: %s: %v %s, want EPERM", script, err, out)
		}
	}
	if st := fx.b.Stats(); st.PathsUnknown+st.PlacesUnknown != 0 {
		t.Logf("paths unknown %d, places unknown %d", st.PathsUnknown, st.PlacesUnknown)
	}
}

// TestMountMarkSeesOneMount documents a kernel limit (docs/security.md): a mount mark (guard
// --mount) covers one mount, so an access through another mount of the same filesystem — a
// bind mount, or the copy in a new mount namespace, which any user may make in a user
// namespace — is not seen. Subtree and filesystem marks see them (TestBindMountOfGuardedTree).
func TestMountMarkSeesOneMount(t *testing.T) {
	root := testenv.PublicTmpfs(t)
	j := filepath.Join
	mustSh(t, nil, "mkdir "+root+"/b && echo x > "+root+"/a.key")
	b := newBackend(t, ModeFanotify)
	d := newDecider(false)
	g := newGroup(t, b, engine.Options{Name: "mount", Class: engine.ClassContent, Deadline: permDeadline, Handler: d.handle})
	mark(t, b, g, root, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})
	if e := catAs(t, nobodyCred, j(root, "a.key")); e != syscall.EPERM {
		t.Fatalf("through the marked mount: %v, want EPERM", e)
	}
	if err := sys.Mount(root, j(root, "b"), "", sys.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Unmount(j(root, "b"), sys.MNT_DETACH) })
	if e := catAs(t, nobodyCred, j(root, "b", "a.key")); e != 0 {
		t.Fatalf("through a bind mount: %v; the kernel limit the docs state is that it is not seen", e)
	}
	requireUserns(t)
	out, err := shAs(nobodyCred, "unshare -Urm cat "+j(root, "a.key"))
	if err != nil {
		t.Fatalf("through a mount namespace's copy: %v %s; the docs say a mount mark does not see it", err, out)
	}
	if n := d.count(j(root, "b", "a.key")); n != 0 {
		t.Fatalf("decided %d times through another mount", n)
	}
}

// requireUserns skips the test unless nobody may create a user and mount namespace.
func requireUserns(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not found: util-linux")
	}
	if out, err := shAs(nobodyCred, "unshare -Urm true"); err != nil {
		t.Skipf("unprivileged user namespaces are off here: %v %s", err, out)
	}
}

// TestVerdictCacheIsDecidedAgain: a cached allow (an ignore mark that does not survive
// modification) holds until the file changes. After each change below, the next open is
// decided again: a write or a truncate (the kernel clears the mark on FS_MODIFY), a rename
// over it and a new file at the same path (a new inode, with no mark), and root's rename or
// link of the file, rename of its directory or chmod of it (within the window it takes the
// FID reader to see them). A file nobody could rename (nobody's own) is never cached.
func TestVerdictCacheIsDecidedAgain(t *testing.T) {
	root := testenv.PublicTmpfs(t)
	g := filepath.Join(root, "g")
	mkdirAll(t, g)
	b := newBackend(t, ModeFanotify)
	d := newDecider(true)
	guardGroup(t, b, g, d)
	n := 0
	for _, tc := range []struct {
		name   string
		change string // F is the file, G the guarded directory, D the file's directory
		again  string // the path to open again (F if empty)
		window bool   // root's name change: decided again within rootWindow
	}{
		{name: "write", change: "echo more >> F"},
		{name: "truncate", change: "truncate -s 1 F"},
		{name: "rename over it", change: "echo new > D/tmp && mv D/tmp F"},
		{name: "new file at the same path", change: "rm F && echo new > F"},
		{name: "rename of the file", change: "mv F D/renamed", again: "D/renamed", window: true},
		{name: "link to the file", change: "ln F D/linked", again: "D/linked", window: true},
		{name: "rename of its directory", change: "mv D G/moved", again: "G/moved/f", window: true},
		{name: "chmod of the file", change: "chmod 0600 F", window: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			dir := filepath.Join(g, "d"+strconv.Itoa(n))
			f := filepath.Join(dir, "f")
			writeFile(t, f, "x")
			// Opened until cached: an allow on a filesystem whose names the FID group does
			// not watch yet is not cached, and the janitor that starts watching them may
			// come after the first open (under load it did: "still waiting after 30s").
			waitUntil(t, "a cached allow for "+f, func() bool {
				if _, c := nameMarkOf(b, f); c != 0 {
					return true
				}
				catAs(t, nil, f)
				return false
			})
			before := d.count(f)
			catAs(t, nil, f)
			if d.count(f) != before {
				t.Fatalf("an open of a cached file was decided again before any change")
			}
			expand := strings.NewReplacer("F", f, "D", dir, "G", g)
			mustSh(t, nil, expand.Replace(tc.change))
			again := f
			if tc.again != "" {
				again = expand.Replace(tc.again)
			}
			was := d.count(again)
			deadline := time.Now().Add(rootWindow)
			for {
				if e := catAs(t, nil, again); e != 0 {
					t.Fatalf("open of %s: %v", again, e)
				}
				if d.count(again) > was {
					break
				}
				if !tc.window || time.Now().After(deadline) {
					t.Fatalf("after %q the next open of %s was not decided again", tc.change, again)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Run("not pinned", func(t *testing.T) {
		dir := filepath.Join(g, "nobody")
		mkdirAll(t, dir)
		mustSh(t, nil, "chown 65534:65534 "+dir)
		f := filepath.Join(dir, "f")
		mustSh(t, nobodyCred, "echo x > "+f)
		before := d.count(f)
		for i := 0; i < 3; i++ {
			catAs(t, nobodyCred, f)
		}
		if got := d.count(f) - before; got != 3 {
			t.Fatalf("nobody's file in nobody's directory: %d decisions for 3 opens, want 3 (never cached)", got)
		}
	})
}

// TestVerdictCacheNeverHidesAGroup: an allow cached while group A alone decided never hides
// an access from a group B that starts to take permission events on the file later — by a
// new mark on the same object (the union does not grow), by ModifyMark, or by taking
// permission events off its ignore mask — nor is it cached at all while B answers without
// asking to cache, or while B's ignore mask would be cleared by a modification.
func TestVerdictCacheNeverHidesAGroup(t *testing.T) {
	spec := engine.MarkSpec{Mask: engine.OpenPerm | engine.OnDir}
	for _, tc := range []struct {
		name  string
		early func(t *testing.T, b *Backend, g *engine.Group, dir string) // B before A caches
		late  func(t *testing.T, b *Backend, g *engine.Group, dir string) // B starts to decide
		never bool                                                        // nothing may be cached
	}{
		{name: "new mark on the same object", late: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			mark(t, b, g, dir, engine.KindSubtree, spec)
		}},
		{name: "ModifyMark", early: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			mark(t, b, g, dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.Open})
		}, late: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			if err := g.ModifyMark(engine.Subtree(idOf(t, dir)), spec); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "ignore mask taken off", early: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			mark(t, b, g, dir, engine.KindSubtree, engine.MarkSpec{Mask: spec.Mask, Ignore: engine.OpenPerm, Flags: engine.IgnoreSurviveModify})
		}, late: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			if err := g.RemoveFromMark(engine.Subtree(idOf(t, dir)), 0, engine.OpenPerm); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "B allows without cache", never: true, early: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			mark(t, b, g, dir, engine.KindSubtree, spec)
		}},
		{name: "B ignores until a modification", never: true, early: func(t *testing.T, b *Backend, g *engine.Group, dir string) {
			mark(t, b, g, dir, engine.KindSubtree, engine.MarkSpec{Mask: spec.Mask, Ignore: engine.OpenPerm})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.PublicTmpfs(t)
			dir := filepath.Join(root, "g")
			f := filepath.Join(dir, "f")
			writeFile(t, f, "x")
			b := newBackend(t, ModeFanotify)
			a := newDecider(true)
			guardGroup(t, b, dir, a)
			bd := newDecider(false)
			if !tc.never {
				bd.deny = func(string) bool { return true }
			}
			gb := newGroup(t, b, engine.Options{Name: "B", Class: engine.ClassContent, Deadline: permDeadline, Handler: bd.handle})
			if tc.early != nil {
				tc.early(t, b, gb, dir)
			}
			if tc.never {
				for i := 0; i < 3; i++ {
					catAs(t, nil, f)
				}
				if _, c := nameMarkOf(b, f); c != 0 || b.Stats().VerdictCached != 0 {
					t.Fatalf("an allow was cached (mark %#x, VerdictCached %d)", c, b.Stats().VerdictCached)
				}
				if got := a.count(f); got != 3 {
					t.Fatalf("A decided %d of 3 opens", got)
				}
				return
			}
			waitUntil(t, "A's cached allow", func() bool { // opened until cached, as in TestVerdictCacheIsDecidedAgain
				if _, c := nameMarkOf(b, f); c != 0 {
					return true
				}
				catAs(t, nil, f)
				return false
			})
			tc.late(t, b, gb, dir)
			if _, c := nameMarkOf(b, f); c != 0 {
				t.Fatalf("the cached allow outlived B's new interest (mark %#x)", c)
			}
			if e := catAs(t, nil, f); e != syscall.EPERM {
				t.Fatalf("open after B started to decide: %v, want B's EPERM", e)
			}
			if bd.count(f) != 1 {
				t.Fatalf("B decided %d times, want 1", bd.count(f))
			}
		})
	}
}

// TestIgnoreMarksAfterDirectoryMove: after a directory moves into the guarded tree (which
// drops the outside-ignore marks it could concern), the backend goes on placing outside-ignore
// marks, and repeated opens elsewhere on the filesystem cost no kernel event again.
func TestIgnoreMarksAfterDirectoryMove(t *testing.T) {
	fx := newNameFixture(t)
	b, j := fx.b, filepath.Join
	var files []string
	for i := 0; i < 5; i++ {
		f := j(fx.out, "o", "f"+strconv.Itoa(i))
		writeFile(t, f, "x")
		files = append(files, f)
	}
	writeFile(t, j(fx.out, "m", "inner"), "x")
	marked := func() bool {
		for _, f := range files {
			if ig, _ := nameMarkOf(b, f); ig == 0 {
				catAs(t, nil, f)
				return false
			}
		}
		return true
	}
	for round := 0; round < 3; round++ {
		waitUntil(t, "outside-ignore marks on every file", marked)
		before := b.Stats().Events
		for _, f := range files {
			catAs(t, nil, f)
		}
		if n := b.Stats().Events - before; n != 0 {
			t.Errorf("round %d: %d kernel events for %d opens of marked files outside the tree", round, n, len(files))
		}
		// A directory moves in (drops), and a directory in the chain of every file moves
		// within the outside tree (drops them all).
		m := j(fx.g, "m"+strconv.Itoa(round))
		mustSh(t, nil, "mv "+j(fx.out, "m")+" "+m+" && mkdir "+j(fx.out, "m")+" && mv "+j(fx.out, "o")+" "+j(fx.out, "o2")+" && mv "+j(fx.out, "o2")+" "+j(fx.out, "o"))
		waitUntil(t, "the moves to drop the marks", func() bool {
			ig, _ := nameMarkOf(b, files[0])
			return ig == 0
		})
	}
}

// TestNameMarksGoWhenNamesMayBeUnseen: when the backend may have missed a name change — the
// FID group's queue overflowed, or fs.protected_hardlinks stopped being 1 (then any user may
// link a pinned file into the tree) — every name mark goes, and the directory caches too.
func TestNameMarksGoWhenNamesMayBeUnseen(t *testing.T) {
	// A stand-in for the sysctl, set before the backend starts (the machine's must not change).
	sysctl := filepath.Join(t.TempDir(), "protected_hardlinks")
	if err := os.WriteFile(sysctl, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hardlinksSysctl
	hardlinksSysctl = sysctl
	t.Cleanup(func() { hardlinksSysctl = old })
	fx := newNameFixture(t)
	b, j := fx.b, filepath.Join
	f := j(fx.out, "f")
	writeFile(t, f, "x")
	place := func(path string) {
		t.Helper()
		waitUntil(t, "an outside-ignore mark on "+path, func() bool {
			if st := stat(t, path); st.IsDir() {
				mustSh(t, nil, "ls "+path+" >/dev/null")
			} else {
				catAs(t, nil, path)
			}
			ig, _ := nameMarkOf(b, path)
			return ig != 0
		})
	}
	place(f)
	fs := b.view.Load().fs[stat(t, f).Dev].state
	gen := fs.dirGen.Load()
	b.fidGroupAtomic.Load().overflow() // what the FID reader does on FAN_Q_OVERFLOW
	if ig, _ := nameMarkOf(b, f); ig != 0 {
		t.Fatal("a name mark outlived an overflow of the FID queue")
	}
	if fs.dirGen.Load() == gen {
		t.Fatal("the directory caches outlived an overflow of the FID queue")
	}
	place(f)
	if err := os.WriteFile(sysctl, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUntil(t, "the name mark to go once protected_hardlinks reads 0", func() bool {
		ig, _ := nameMarkOf(b, f)
		return ig == 0
	})
	if d := time.Since(start); d > 2*hardlinkPoll+time.Second {
		t.Errorf("took %v, want within the %v poll", d, hardlinkPoll)
	}
	// Files are not pinned any more; directories (which cannot be linked) still are.
	catAs(t, nil, f)
	d := j(fx.out, "sentinel-dir")
	mkdirAll(t, d)
	place(d) // the janitor has handled the file's request before this one
	if ig, _ := nameMarkOf(b, f); ig != 0 {
		t.Fatal("a file got an outside-ignore mark while protected_hardlinks is 0")
	}
}

// TestKernelIgnoreMarkFacts pins down, on this kernel, the facts docs/security.md builds the
// name marks on: an inode's ignore mark follows the inode through rename(2) and link(2) (so a
// mark placed outside a tree still hides the file inside it: hence pinned objects and
// nameChanged), while a directory's ignore mark for its children (FAN_EVENT_ON_CHILD) is
// consulted on the file's current parent at each event (the alternative design, which a file
// move cannot outwit); and a non-surviving ignore mark is cleared by write(2) and truncate(2).
func TestKernelIgnoreMarkFacts(t *testing.T) {
	root := testenv.Tmpfs(t)
	j := filepath.Join
	mkdirAll(t, j(root, "a"))
	mkdirAll(t, j(root, "b"))
	fd, err := sys.FanotifyInit(sys.FAN_CLASS_NOTIF|sys.FAN_CLOEXEC|sys.FAN_NONBLOCK, sys.O_RDONLY|sys.O_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(fd)
	if err := sys.FanotifyMark(fd, sys.FAN_MARK_ADD|sys.FAN_MARK_FILESYSTEM, sys.FAN_OPEN, sys.AT_FDCWD, root); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, sys.FanotifyReadSize)
	// opened reports whether opening path queued an open event (our own opens are reported:
	// this is a notification group).
	opened := func(path string) bool {
		t.Helper()
		touch(t, path)
		n, err := sys.Read(fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		sys.ParseFanotify(buf[:n], func(ev *sys.FanotifyEvent) error {
			if ev.Fd >= 0 {
				sys.Close(int(ev.Fd))
			}
			seen = seen || ev.Mask&sys.FAN_OPEN != 0
			return nil
		})
		return seen
	}
	ignore := func(path string, flags uint, mask uint64) {
		t.Helper()
		for { // drain what came before
			n, err := sys.Read(fd, buf)
			if err != nil {
				break
			}
			sys.ParseFanotify(buf[:n], func(ev *sys.FanotifyEvent) error {
				if ev.Fd >= 0 {
					sys.Close(int(ev.Fd))
				}
				return nil
			})
		}
		if err := sys.FanotifyMark(fd, sys.FAN_MARK_ADD|flags|sys.FAN_MARK_EVICTABLE, mask, sys.AT_FDCWD, path); err != nil {
			t.Fatal(err)
		}
	}
	// An inode's ignore mark follows the inode.
	writeFile(t, j(root, "a", "f"), "x")
	ignore(j(root, "a", "f"), sys.FAN_MARK_IGNORE_SURV, sys.FAN_OPEN)
	if opened(j(root, "a", "f")) {
		t.Fatal("an ignored file's open was reported")
	}
	if err := os.Rename(j(root, "a", "f"), j(root, "b", "f")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(j(root, "b", "f"), j(root, "b", "g")); err != nil {
		t.Fatal(err)
	}
	if opened(j(root, "b", "f")) || opened(j(root, "b", "g")) {
		t.Fatal("kernel changed: an inode's ignore mark no longer follows it through rename and link (docs/security.md)")
	}
	// A directory's ignore mark for its children is consulted on the current parent.
	writeFile(t, j(root, "a", "h"), "x")
	ignore(j(root, "a"), sys.FAN_MARK_IGNORE_SURV, sys.FAN_OPEN|sys.FAN_EVENT_ON_CHILD)
	if opened(j(root, "a", "h")) {
		t.Fatal("a child of an ignoring directory was reported")
	}
	if err := os.Rename(j(root, "a", "h"), j(root, "b", "h")); err != nil {
		t.Fatal(err)
	}
	if !opened(j(root, "b", "h")) {
		t.Fatal("kernel changed: a file moved out of an ignoring directory is still ignored (docs/security.md)")
	}
	// A non-surviving ignore mark goes with a write, and with a truncate.
	for _, change := range []func(p string) error{
		func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("y")
			return err
		},
		func(p string) error { return os.Truncate(p, 0) },
	} {
		p := j(root, "b", "w")
		writeFile(t, p, "x")
		ignore(p, sys.FAN_MARK_IGNORE, sys.FAN_OPEN)
		if opened(p) {
			t.Fatal("an ignored file's open was reported")
		}
		if err := change(p); err != nil {
			t.Fatal(err)
		}
		opened(p) // drains the change's own open, if reported
		if !opened(p) {
			t.Fatal("kernel changed: a non-surviving ignore mark outlived a modification (docs/security.md)")
		}
		os.Remove(p)
	}
}

// TestOtherNamespaceParent: a file with two links, in a directory a permission group watches
// through an inode mark (FAN_EVENT_ON_CHILD), opened by nobody through a bind mount made in a
// user namespace: the event's path names nothing here and the file's handle may decode to its
// other name, so the backend finds the parent in the opener's own namespace (/proc/PID/root)
// and the directory's group decides (EPERM).
func TestOtherNamespaceParent(t *testing.T) {
	root := testenv.PublicTmpfs(t)
	j := filepath.Join
	g, pub, other := j(root, "g"), j(root, "pub"), j(root, "other")
	mustSh(t, nil, "mkdir "+g+" "+pub+" "+other+" && chown 65534:65534 "+pub+" && echo x > "+g+"/k.key && ln "+g+"/k.key "+other+"/k.key")
	b := newBackend(t, ModeFanotify)
	d := newDecider(false)
	dg := newGroup(t, b, engine.Options{Name: "dir", Class: engine.ClassContent, Deadline: permDeadline, Handler: d.handle})
	mark(t, b, dg, g, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	if e := catAs(t, nobodyCred, j(g, "k.key")); e != syscall.EPERM {
		t.Fatalf("open in the watched directory: %v, want EPERM", e)
	}
	requireUserns(t)
	before := d.count(j(g, "k.key"))
	out, err := shAs(nobodyCred, "unshare -Urm sh -c 'mount --bind "+g+" "+pub+" && cat "+j(pub, "k.key")+"'")
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("as nobody through a bind mount in a user namespace: %v %s, want EPERM", err, out)
	}
	if d.count(j(g, "k.key")) != before+1 {
		t.Fatalf("the open was not decided under the file's real name")
	}
}

// TestHandleHoldsIno: on tmpfs and ext4 a file's handle holds its inode number (objectID's
// one-statx lookup rests on it), and not another file's.
func TestHandleHoldsIno(t *testing.T) {
	for _, fs := range []struct {
		name string
		dir  func(testing.TB) string
	}{{"tmpfs", func(t testing.TB) string { return testenv.Tmpfs(t) }}, {"ext4", func(t testing.TB) string { return testenv.Ext4(t, 16) }}} {
		t.Run(fs.name, func(t *testing.T) {
			dir := fs.dir(t)
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			writeFile(t, a, "a")
			writeFile(t, b, "b")
			h, _, err := sys.NameToHandleAt(sys.AT_FDCWD, a, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !handleHoldsIno(h.Bytes, stat(t, a).Ino) {
				t.Errorf("handle %x of a does not hold its inode %d", h.Bytes, stat(t, a).Ino)
			}
			if handleHoldsIno(h.Bytes, stat(t, b).Ino) {
				t.Errorf("handle %x of a holds b's inode %d", h.Bytes, stat(t, b).Ino)
			}
		})
	}
}
