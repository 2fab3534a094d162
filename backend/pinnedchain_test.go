//go:build linux

package backend

// Cached ancestries of pinned files (translateFD, pinnedHolds): a file's cached chain is used
// without the idle poll of the FID group only when every directory of it is pinned, so that no
// untrusted user can have moved one. These tests try to make such a chain wrong as uid 65534,
// and check that the shortcut is taken where it should be and nowhere else.
// docs/security.md, "Cached ancestries of pinned files", cites them.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// catN opens path n times as cred, each in its own cat, and returns how many were refused
// with EPERM.
func catN(t *testing.T, cred *syscall.Credential, path string, n int) int {
	t.Helper()
	out, err := shAs(cred, `d=0; for i in $(seq `+strconv.Itoa(n)+`); do cat `+path+` >/dev/null 2>&1 || d=$((d+1)); done; echo $d`)
	if err != nil {
		t.Fatalf("opening %s as uid %v: %v: %s", path, uidOf(cred), err, out)
	}
	d, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("opening %s: %q", path, out)
	}
	return d
}

// openDecided opens f n times as nobody, back to back in one shell (catN), fails the test
// unless every open was allowed and decided (a cached chain never skips a decision), and
// returns how many times the guard polled the FID group meanwhile.
func openDecided(t *testing.T, fx *nameFixture, f string, n int) uint64 {
	t.Helper()
	before, decided := fx.b.Stats().FIDIdlePolls, fx.d.count(f)
	if d := catN(t, nobodyCred, f, n); d != 0 {
		t.Fatalf("%d of %d opens of %s refused, want none", d, n, f)
	}
	if got := fx.d.count(f) - decided; got != n {
		t.Errorf("%s: %d decisions for %d opens, want %d (a cached chain never skips a decision)", f, got, n, n)
	}
	return fx.b.Stats().FIDIdlePolls - before
}

// TestCachedAncestryOfPinnedFiles: a file in root's 0755 directories inside the guarded tree
// is decided at every open, most of them placed by its cached chain without the poll
// (FIDIdlePolls grows by a few at most); a file below a directory of nobody's never is (a
// poll per open stays); a sticky world-writable directory of root's on the way keeps the
// shortcut, one without the sticky bit does not;
// and what nobody can do to either — move directories in and out while opening, link the file
// out and back — never gets an access to a guarded file past its decision.
func TestCachedAncestryOfPinnedFiles(t *testing.T) {
	fx := newNameFixture(t)
	b, j := fx.b, filepath.Join
	polls := func() uint64 { return b.Stats().FIDIdlePolls }

	t.Run("root's tree: decided every time, without the poll", func(t *testing.T) {
		mustSh(t, nil, "mkdir -p "+fx.g+"/p/q && echo x > "+fx.g+"/p/q/a.txt")
		f := j(fx.g, "p", "q", "a.txt")
		// Back to back in one shell. The first open walks; name events of the setup read
		// later may make a few more (TestCachedAncestryWhileTheFIDReaderIsBehind: a walk
		// made while the FID reader is behind is kept too).
		n := openDecided(t, fx, f, 20)
		t.Logf("%d polls over 20 opens back to back", n)
		if n > 5 {
			t.Errorf("%d polls of the FID group over 20 opens of a file in root's 0755 directories, want <= 5", n)
		}
		writeFile(t, j(fx.g, "p", "q", "a.key"), "x") // by this process: exempt
		if d := catN(t, nobodyCred, j(fx.g, "p", "q", "a.key"), 5); d != 5 {
			t.Errorf("%d of 5 opens of a.key refused, want 5", d)
		}
	})

	t.Run("root's tree after a mode change elsewhere: walked again, then without the poll", func(t *testing.T) {
		// A directory's name or mode change anywhere on the filesystem moves the mark
		// generation, and every pinned chain remembered before it is walked again at its
		// next access — once: the new walk is pinned again.
		f := j(fx.g, "p", "q", "a.txt") // remembered by the first subtest
		if d := catN(t, nobodyCred, f, 2); d != 0 {
			t.Fatalf("%d of 2 opens of %s refused, want none", d, f)
		}
		fs := b.view.Load().fs[stat(t, f).Dev].state
		for round := 0; round < 3; round++ {
			gen := fs.markGen.Load()
			mustSh(t, nil, "chmod 0755 "+fx.out) // root's, outside the tree: an ATTRIB of a directory
			waitUntil(t, "the FID reader to read root's chmod", func() bool {
				idle, err := b.fidGroupAtomic.Load().idle()
				return err == nil && idle && fs.markGen.Load() != gen
			})
			if n := openDecided(t, fx, f, 20); n > 2 {
				t.Errorf("round %d: %d polls of the FID group over 20 opens after a mode change outside the chain was read, want <= 2 (one walk)", round, n)
			}
		}
	})

	t.Run("nobody's directory: the poll stays", func(t *testing.T) {
		mustSh(t, nobodyCred, "mkdir -p "+fx.inc+"/u && echo x > "+fx.inc+"/u/b.txt")
		f := j(fx.inc, "u", "b.txt")
		if n := openDecided(t, fx, f, 10); n < 10 {
			t.Errorf("%d polls of the FID group over 10 opens of a file below a directory nobody owns, want one per open", n)
		}
	})

	t.Run("a sticky world-writable directory of root's: without the poll", func(t *testing.T) {
		// The sticky bit keeps nobody from renaming or replacing root's directory in it (and
		// nobody's own file there moves its ctime when moved): root's directory below it, and
		// nobody's file in it, are placed by their cached chains.
		st := j(fx.g, "st")
		mustSh(t, nil, "mkdir -p "+st+"/q && chmod 1777 "+st+" && echo x > "+st+"/q/a.txt && echo x > "+st+"/s.txt && chown 65534:65534 "+st+"/s.txt")
		for _, f := range []string{j(st, "q", "a.txt"), j(st, "s.txt")} {
			n := openDecided(t, fx, f, 20)
			t.Logf("%s: %d polls over 20 opens back to back", filepath.Base(f), n)
			if n > 5 {
				t.Errorf("%s: %d polls of the FID group over 20 opens, want <= 5", f, n)
			}
		}
		// What it rests on: nobody can neither rename root's directory there nor put another
		// in its place.
		for _, c := range []string{"mv " + st + "/q " + st + "/q2", "mkdir " + st + "/n && mv -T " + st + "/n " + st + "/q"} {
			if out, err := shAs(nobodyCred, c); err == nil {
				t.Fatalf("as nobody, %q succeeded in a sticky directory: %s", c, out)
			}
		}
	})

	t.Run("a world-writable directory of root's without the sticky bit: the poll stays", func(t *testing.T) {
		ww := j(fx.g, "ww")
		mustSh(t, nil, "mkdir -p "+ww+"/q && chmod 0777 "+ww+" && echo x > "+ww+"/q/a.txt")
		f := j(ww, "q", "a.txt")
		before := polls()
		if d := catN(t, nobodyCred, f, 10); d != 0 {
			t.Fatalf("%d of 10 opens of %s refused, want none", d, f)
		}
		if n := polls() - before; n < 10 {
			t.Errorf("%d polls of the FID group over 10 opens of a file below a world-writable directory without the sticky bit, want one per open", n)
		}
	})

	t.Run("nobody moves root's world-writable directory out of another into the tree", func(t *testing.T) {
		// Everything on the way is root's; m and the directories it moves between are 0777
		// without the sticky bit, so nobody may move m from one to the other (moving a
		// directory to another parent needs write access to it too). A chain taken for pinned
		// there would place the opens inside by the ancestry cached outside.
		src, dst := j(fx.out, "ww"), j(fx.g, "ww2")
		mustSh(t, nil, "mkdir -p "+src+"/m "+dst+" && chmod 0777 "+src+" "+src+"/m "+dst+" && echo x > "+src+"/m/c.key")
		res, err := shAs(nobodyCred, moverCmd(t, fx.root, src, dst, 300))
		if err != nil {
			t.Fatalf("as nobody: %v: %s", err, res)
		}
		leaks, lost := parseMover(t, res)
		if leaks != 0 {
			t.Errorf("%d of 600 opens of c.key inside the guarded tree succeeded, want none", leaks)
		}
		if lost != 0 {
			t.Errorf("%d of 600 opens of c.key outside the guarded tree were refused, want none", lost)
		}
	})

	t.Run("nobody moves a directory in and out while opening", func(t *testing.T) {
		mustSh(t, nobodyCred, "mkdir "+fx.pub+"/m && echo x > "+fx.pub+"/m/c.key")
		in, out := j(fx.inc, "m", "c.key"), j(fx.pub, "m", "c.key")
		// rename(2) and open(2) back to back from one process (python3), each place opened
		// twice so that the second open may find the first one's chain: the narrowest window
		// an unprivileged user can make between a move and the next access.
		// Beside it, another process of nobody's opens a file below a directory of theirs in
		// the tree without pause, so that the guard reads batches of several events (the FID
		// group is polled once per batch: Backend.dirsSettled).
		mustSh(t, nobodyCred, "mkdir "+fx.inc+"/h && echo x > "+fx.inc+"/h/h.txt")
		hammer := `python3 -c 'import os, sys
while True:
    os.close(os.open(sys.argv[1], os.O_RDONLY))' ` + j(fx.inc, "h", "h.txt")
		res, err := shAs(nobodyCred, hammer+" & h=$!; "+moverCmd(t, fx.root, fx.pub, fx.inc, 500)+"; s=$?; kill $h; exit $s")
		if err != nil {
			t.Fatalf("as nobody: %v: %s", err, res)
		}
		leaks, lost := parseMover(t, res)
		if leaks != 0 {
			t.Errorf("%d of 1000 opens of %s inside the guarded tree succeeded, want none", leaks, in)
		}
		if lost != 0 {
			t.Errorf("%d of 1000 opens of %s outside the guarded tree were refused, want none", lost, out)
		}
	})

	t.Run("nobody links their file out of a pinned directory and back", func(t *testing.T) {
		// nobody's file in root's 0755 directory in the tree: its chain is pinned (the file
		// itself need not be), nobody cannot rename it, but may link it (its owner).
		mustSh(t, nil, "mkdir -p "+fx.g+"/r")
		f := j(fx.g, "r", "n.key")
		writeFile(t, f, "x") // by this process: exempt
		if err := os.Chown(f, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if d := catN(t, nobodyCred, f, 3); d != 3 {
			t.Fatalf("%d of 3 opens of %s refused, want 3", d, f)
		}
		if out, err := shAs(nobodyCred, "mv "+f+" "+fx.pub+"/n.key"); err == nil {
			t.Fatalf("nobody renamed %s out of root's directory: %s", f, out)
		}
		mustSh(t, nobodyCred, "ln "+f+" "+fx.pub+"/n.key")
		if d := catN(t, nobodyCred, f, 3); d != 3 {
			t.Errorf("after the link out: %d of 3 opens of %s refused, want 3", d, f)
		}
		if d := catN(t, nobodyCred, fx.pub+"/n.key", 3); d != 0 {
			t.Errorf("%d of 3 opens of the outside link refused, want none (a name outside the tree)", d)
		}
		mustSh(t, nobodyCred, "rm "+fx.pub+"/n.key")
		if d := catN(t, nobodyCred, f, 3); d != 3 {
			t.Errorf("after the link went: %d of 3 opens of %s refused, want 3", d, f)
		}
	})

	t.Run("root makes an ancestor writable, then nobody moves it in", func(t *testing.T) {
		st := stat(t, fx.out)
		fs := b.view.Load().fs[st.Dev].state
		// Repeated: the move and the open race the FID reader's read of the move.
		for i := 0; i < 20; i++ {
			w := j(fx.out, "w"+strconv.Itoa(i))
			// z.key written by this process (exempt): a shell's write would be its first
			// access, whose chain (of the ctime before the write) no later open finds, and
			// whose outside-ignore mark may keep the opens below from the guard.
			mustSh(t, nil, "mkdir -p "+w+"/x")
			writeFile(t, j(w, "x", "z.key"), "x")
			f := j(w, "x", "z.key")
			if d := catN(t, nobodyCred, f, 2); d != 0 {
				t.Fatalf("%d of 2 opens of %s outside the tree refused, want none", d, f)
			}
			gen := fs.markGen.Load()
			mustSh(t, nil, "chmod 0777 "+w+" "+w+"/x")
			// Root's chmod is read by the FID reader (the documented window): wait for it.
			waitUntil(t, "the FID reader to read root's chmod", func() bool {
				idle, err := b.fidGroupAtomic.Load().idle()
				return err == nil && idle && fs.markGen.Load() != gen
			})
			// The move and the open back to back, from one process.
			in := j(fx.inc, "x"+strconv.Itoa(i))
			if res := moveAndOpenAsNobody(t, w+"/x", in, j(in, "z.key")); res != strconv.Itoa(int(syscall.EPERM)) {
				t.Fatalf("round %d: first open of z.key right after nobody moved its directory in: %q, want EPERM (%d)", i, res, syscall.EPERM)
			}
		}
	})
}

// moveAndOpenAsNobody renames from to to and opens file, back to back in one of nobody's
// processes (no event of the test's in between), and returns what the open gave: "opened",
// or the errno of its refusal.
func moveAndOpenAsNobody(t *testing.T, from, to, file string) string {
	t.Helper()
	res, err := shAs(nobodyCred, `python3 -c 'import os, sys
os.rename(sys.argv[1], sys.argv[2])
try:
    os.close(os.open(sys.argv[3], os.O_RDONLY)); print("opened")
except PermissionError as e:
    print(e.errno)' `+from+" "+to+" "+file)
	if err != nil {
		t.Fatalf("as nobody: %v: %s", err, res)
	}
	return strings.TrimSpace(res)
}

// moverCmd writes mover.py in root and returns the command that runs it: it moves the
// directory out/m to in/m and back rounds times, opening m/c.key twice on each side of each
// move — rename(2) and open(2) back to back from one process, each place opened twice so that
// the second open may find the first one's chain: the narrowest window an unprivileged user
// can make between a move and the next access — and prints how many opens inside succeeded
// and how many outside were refused (parseMover).
func moverCmd(t *testing.T, root, out, in string, rounds int) string {
	t.Helper()
	script := `import os, sys
out, inside, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def opens(p):
    try:
        os.close(os.open(p, os.O_RDONLY))
        return True
    except PermissionError:
        return False
leaks = lost = 0
for i in range(rounds):
    lost += (not opens(out + "/m/c.key")) + (not opens(out + "/m/c.key"))
    os.rename(out + "/m", inside + "/m")
    leaks += opens(inside + "/m/c.key") + opens(inside + "/m/c.key")
    os.rename(inside + "/m", out + "/m")
print(leaks, lost)
`
	if err := os.WriteFile(filepath.Join(root, "mover.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("python3 %s %s %s %d", filepath.Join(root, "mover.py"), out, in, rounds)
}

// parseMover reads mover.py's output: the inside opens that succeeded, the outside ones refused.
func parseMover(t *testing.T, res string) (leaks, lost int) {
	t.Helper()
	if _, err := fmt.Sscan(res, &leaks, &lost); err != nil {
		t.Fatalf("script output %q: %v", res, err)
	}
	return leaks, lost
}

// TestCachedAncestryWhileTheFIDReaderIsBehind: the FID reader is held before its read with
// events in its queue (busy, as a reader the scheduler has not run yet is: its queue
// readable), while a file is opened 20 times back to back. A walk made then is remembered
// under the directory generation read before it, so a pinned file's later opens take its
// chain without the poll; an entry is still used only as pinned, or after an idle answer, so
// nobody's directory moved into the tree meanwhile (a move the reader has not read) does not
// carry the outside ancestry in. Before the fix, no walk made while the group was busy was
// kept: every open walked and polled again until the reader caught up
// (docs/design/performance.md, session 12: the reader started or yielded several ms late
// under -race, and 20 opens made back to back polled 7-20 times).
func TestCachedAncestryWhileTheFIDReaderIsBehind(t *testing.T) {
	root := testenv.PublicTmpfs(t)
	j := filepath.Join
	fx := &nameFixture{root: root, g: j(root, "g"), inc: j(root, "g", "inc"), out: j(root, "out"), pub: j(root, "pub"), tmp: j(root, "tmp")}
	mustSh(t, nil, "mkdir -p "+fx.inc+" "+fx.out+" "+fx.pub+" && chown 65534:65534 "+fx.inc+" "+fx.pub)
	if !readHardlinksProtected() {
		t.Skip("fs.protected_hardlinks is not 1 here: untrusted users may link any file, and no file is pinned")
	}
	var hold *sync.Mutex
	fx.b, hold = newHeldBackend(t) // the reader waits on hold before each read
	fx.d = newDecider(false)
	guardGroup(t, fx.b, fx.g, fx.d)
	b := fx.b
	polls := func() uint64 { return b.Stats().FIDIdlePolls }
	// held runs f with the FID reader stopped before a read of the events setup queued: busy.
	held := func(t *testing.T, setup string, cred *syscall.Credential, f func()) {
		t.Helper()
		hold.Lock()
		locked := true
		unlock := func() {
			if locked {
				locked = false
				hold.Unlock()
			}
		}
		defer unlock() // the reader must be free for Close
		mustSh(t, cred, setup)
		g := b.fidGroupAtomic.Load()
		waitUntil(t, "the FID reader to stop before its read", func() bool { return g.busy.Load() == 1 })
		f()
		if g.busy.Load() != 1 {
			t.Fatal("the FID reader went on while held")
		}
	}

	t.Run("root's tree, back to back: walked once", func(t *testing.T) {
		f := j(fx.g, "p", "q", "a.txt")
		held(t, "mkdir -p "+fx.g+"/p/q && echo x > "+f, nil, func() {
			if n := openDecided(t, fx, f, 20); n > 2 {
				t.Errorf("%d polls of the busy FID group over 20 opens back to back of a file in root's 0755 directories, want <= 2 (the first open walks)", n)
			}
		})
	})

	t.Run("root makes an ancestor writable, then nobody moves it in, unread", func(t *testing.T) {
		// The pinned chain of z.key is remembered outside; root's chmod is read (markGen
		// moves); then the reader is held, and nobody's move of the directory into the tree
		// stays unread at the open that follows it: only the mark generation, read before the
		// chain was walked, tells that the chain is no longer pinned.
		fs := b.view.Load().fs[stat(t, fx.out).Dev].state
		g := b.fidGroupAtomic.Load()
		for i := 0; i < 5; i++ {
			w := j(fx.out, "w"+strconv.Itoa(i))
			// z.key written by this process (exempt): a shell's write would be its first
			// access, whose chain (of the ctime before the write) no later open finds, and
			// whose outside-ignore mark may keep the opens below from the guard.
			mustSh(t, nil, "mkdir -p "+w+"/x")
			writeFile(t, j(w, "x", "z.key"), "x")
			// The moves of the subtest before read first: a chain walked before one of them
			// is read is not the shortcut's.
			waitUntil(t, "the FID reader to catch up", func() bool {
				idle, err := g.idle()
				return err == nil && idle
			})
			if d := catN(t, nobodyCred, j(w, "x", "z.key"), 2); d != 0 {
				t.Fatalf("%d of 2 opens of z.key outside the tree refused, want none", d)
			}
			gen := fs.markGen.Load()
			mustSh(t, nil, "chmod 0777 "+w+" "+w+"/x")
			waitUntil(t, "the FID reader to read root's chmod", func() bool {
				idle, err := g.idle()
				return err == nil && idle && fs.markGen.Load() != gen
			})
			in := j(fx.inc, "x"+strconv.Itoa(i))
			// Held before the read of a file's creation (the reader may be past its hook
			// for a read already begun, which could take the move too).
			held(t, "touch "+j(fx.out, "tick"+strconv.Itoa(i)), nil, func() {
				if res := moveAndOpenAsNobody(t, w+"/x", in, j(in, "z.key")); res != strconv.Itoa(int(syscall.EPERM)) {
					t.Fatalf("round %d: open of z.key right after nobody moved its directory in, the move unread: %q, want EPERM (%d)", i, res, syscall.EPERM)
				}
			})
		}
	})

	t.Run("nobody moves their directory in while the reader is held", func(t *testing.T) {
		// Every open walks and polls (nobody's directory: not pinned; the group busy); the
		// walks are remembered, but a busy answer never lets one be used: the move is not
		// read, so the generation has not moved, and an entry used on a matching generation
		// alone would place the inside opens where m was.
		in, out := j(fx.inc, "m", "c.key"), j(fx.pub, "m", "c.key")
		held(t, "mkdir "+fx.pub+"/m && echo x > "+out, nobodyCred, func() {
			before := polls()
			const rounds = 10
			for i := 0; i < rounds; i++ {
				if d := catN(t, nobodyCred, out, 2); d != 0 {
					t.Fatalf("round %d: %d of 2 opens of %s outside the tree refused, want none", i, d, out)
				}
				mustSh(t, nobodyCred, "mv "+fx.pub+"/m "+fx.inc+"/m")
				if d := catN(t, nobodyCred, in, 2); d != 2 {
					t.Fatalf("round %d: %d of 2 opens of %s, moved into the tree unread, refused, want 2", i, d, in)
				}
				mustSh(t, nobodyCred, "mv "+fx.inc+"/m "+fx.pub+"/m")
			}
			if n := polls() - before; n < 4*rounds {
				t.Errorf("%d polls over %d opens below nobody's directory with the FID group busy, want one per open", n, 4*rounds)
			}
		})
	})
}
