//go:build linux

package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// nobody runs a helper as uid and gid 65534, without supplementary groups.
var nobody = spawnOpts{cred: &syscall.Credential{Uid: 65534, Gid: 65534}}

// authFixture is a scratch filesystem with what an unprivileged client may and may not read:
//
//	pub/      0755, pub/f 0644
//	priv/     0700 root, priv/link a hard link to pub/f
//	secret    0600 root
type authFixture struct {
	scratch, pub, pubFile, priv, link, secret string
}

func newAuthFixture(t *testing.T) authFixture {
	t.Helper()
	s := testenv.Tmpfs(t)
	openUp(t, s)
	f := authFixture{scratch: s, pub: filepath.Join(s, "pub"), priv: filepath.Join(s, "priv"), secret: filepath.Join(s, "secret")}
	f.pubFile = filepath.Join(f.pub, "f")
	f.link = filepath.Join(f.priv, "link")
	for _, err := range []error{
		os.Mkdir(f.pub, 0o755), os.WriteFile(f.pubFile, []byte("x"), 0o644),
		os.Mkdir(f.priv, 0o700), os.Link(f.pubFile, f.link),
		os.WriteFile(f.secret, []byte("s"), 0o600),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// refused sends an add and checks that the daemon refused it with a permission error whose
// message holds want.
func refused(t *testing.T, p *proc, kind, mask, path, want string) {
	t.Helper()
	p.send("add %s %s %s", kind, mask, path)
	l := p.mustLine("add-", hang)
	if !strings.HasPrefix(l, "add-err permission ") || !strings.Contains(l, want) {
		t.Errorf("add %s %s %s as uid 65534: %q, want a permission error saying %q", kind, mask, path, l, want)
	} else {
		t.Logf("refused as it should be: %s", rest(l, 2))
	}
}

// TestUnprivilegedClient: a client of uid 65534 may not place mount or filesystem marks, ask
// for a content class, or mark what it cannot read (no confused deputy); it may mark what it
// can read, and its events carry no path outside what it marked.
func TestUnprivilegedClient(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)

	t.Run("content class", func(t *testing.T) {
		p := spawn(t, "client", spawnOpts{cred: nobody.cred, env: []string{"FSND_SOCKET=" + sock, "FSND_CLIENT=class=content"}})
		p.mustLine("up", hang)
		p.send("dial")
		l := p.mustLine("", hang)
		if !strings.HasPrefix(l, "dial-err permission ") || !strings.Contains(l, "content-class clients (permission events) need uid 0") {
			t.Errorf("a content-class Hello as uid 65534: %q, want a permission error", l)
		} else {
			t.Logf("refused as it should be: %s", rest(l, 2))
		}
	})

	p := dialClient(t, sock, "name=nobody", nobody)
	if w := p.allLines("welcome"); !strings.Contains(w[0], "uid=65534") {
		t.Fatalf("welcome %q: the daemon did not see uid 65534", w[0])
	}
	t.Run("mount mark", func(t *testing.T) {
		refused(t, p, kindMount, maskOpen, f.pub, "mount marks need uid 0")
	})
	t.Run("filesystem mark", func(t *testing.T) {
		refused(t, p, kindFilesystem, maskOpen, f.pub, "filesystem marks need uid 0")
	})
	t.Run("unreadable file", func(t *testing.T) {
		refused(t, p, kindInode, maskOpen, f.secret, "(uid 65534) cannot read "+f.secret)
	})
	t.Run("unreadable directory", func(t *testing.T) {
		refused(t, p, kindInode, maskOpenChild, f.priv, "(uid 65534) cannot read "+f.priv)
	})
	t.Run("readable directory and file", func(t *testing.T) {
		mustAdd(t, p, kindInode, maskOpenChild, f.pub)
		mustAdd(t, p, kindInode, maskOpen, f.pubFile)
		// Root opens the file through its own name, then through the link in priv/: the
		// client marked the inode, so it hears of both, but learns nothing of priv/.
		if _, err := os.ReadFile(f.pubFile); err != nil {
			t.Fatal(err)
		}
		if l := p.mustLine("event ", hang); !strings.HasSuffix(l, "path="+f.pubFile) {
			t.Errorf("event %q, want one for %s", l, f.pubFile)
		}
		if _, err := os.ReadFile(f.link); err != nil {
			t.Fatal(err)
		}
		p.send("ping")
		p.mustLine("pong", hang)
		for _, l := range p.allLines("event ") {
			path := l[strings.Index(l, "path=")+len("path="):]
			if path != "" && path != f.pub && !strings.HasPrefix(path, f.pub+"/") {
				t.Errorf("uid 65534 got an event with a path outside what it marked: %q", l)
			}
		}
		if l, ok := p.waitLine("event ", hang); !ok || !strings.HasSuffix(l, " path=") {
			t.Errorf("the open through priv/link: event %q (received: %v), want one without a path", l, ok)
		}
	})
}

// TestSubtreeHidesUnlistableDirectories: an unprivileged client watching a tree hears of
// nothing in a directory of that tree it could not list itself (a 0700 root subdirectory):
// the names there are not its to learn. Next door, it hears of everything.
func TestSubtreeHidesUnlistableDirectories(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	hidden := filepath.Join(f.pub, "hidden")
	open := filepath.Join(f.pub, "open")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	p := dialClient(t, sock, "name=nobody", nobody)
	mustAdd(t, p, "4", "0x40000100", f.pub) // a subtree mark: CREATE | ONDIR
	for _, path := range []string{filepath.Join(hidden, "secret-name"), filepath.Join(open, "plain-name")} {
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l := p.mustLine("event ", hang)
	if !strings.Contains(l, "plain-name") {
		t.Fatalf("first event %q, want the create in %s", l, open)
	}
	p.send("ping")
	p.mustLine("pong", hang)
	for _, l := range p.allLines("event ") {
		if strings.Contains(l, "secret-name") {
			t.Fatalf("uid 65534 learned a name in a directory it cannot list: %q", l)
		}
	}
}

// TestSubtreeReportsEventsInRemovedDirectoriesWithoutNames: an unprivileged client watching
// a tree that rm -rf removes hears of every removal. Those in directories already gone when
// the daemon checks what the client may see (whether it could have listed them is not known
// any more) come without a path, a name or who acted — they were dropped silently: of an
// rm -rf of a/b/c/f, only a's removal reached an unprivileged `watch -r` through the daemon.
// Next door, a directory the client cannot list still hides its names.
func TestSubtreeReportsEventsInRemovedDirectoriesWithoutNames(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	top := filepath.Join(f.pub, "t")
	var removals []string // every removal below f.pub, deepest first
	dir := top
	for _, d := range []string{"a", "b", "c"} {
		dir = filepath.Join(dir, d)
		removals = append([]string{dir}, removals...)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		file := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		removals = append([]string{file}, removals...)
	}
	removals = append(removals, top)
	hidden := filepath.Join(f.pub, "hidden")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hidden, "secret-name"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	p := dialClient(t, sock, "name=nobody", nobody)
	mustAdd(t, p, "4", "0x40000200", f.pub) // a subtree mark: DELETE | ONDIR
	if out, err := exec.Command("rm", "-rf", top, filepath.Join(hidden, "secret-name")).CombinedOutput(); err != nil {
		t.Fatalf("rm: %v: %s", err, out)
	}
	for range removals {
		p.mustLine("event ", hang)
	}
	p.send("ping")
	p.mustLine("pong", hang)
	named, unknown := 0, 0
	for _, l := range p.allLines("") {
		switch {
		case strings.Contains(l, "secret-name"):
			t.Errorf("uid 65534 learned a name in a directory it cannot list: %q", l)
		case strings.HasPrefix(l, "unknown-path "):
			unknown++
			if l != "unknown-path pid=0 name= comm=" {
				t.Errorf("an event in a removed directory told %q: want no name, pid or command", l)
			}
		case strings.HasPrefix(l, "event "):
			if path := l[strings.Index(l, " path=")+len(" path="):]; path != "" {
				named++
				if !slices.Contains(removals, path) {
					t.Errorf("event %q: not one of the removals", l)
				}
			}
		}
	}
	if named+unknown != len(removals) || named == 0 {
		t.Errorf("%d removals reported by name and %d without, want %d in all (%s's by name at least)", named, unknown, len(removals), top)
	}
	t.Logf("%d of %d removals by name, %d in directories gone before the check", named, len(removals), unknown)
}

// TestEventFDsOnlyForAllowed: a uid allowed permission events by the config (allow_uid) but
// not their files (fd_uid) gets permission events without descriptors, even when it asks; a
// uid allowed both, and root, get them.
func TestEventFDsOnlyForAllowed(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	for _, tc := range []struct {
		name   string
		fdUID  bool
		as     spawnOpts
		wantFD int
	}{
		{"uid 65534 without fd_uid", false, nobody, 0},
		{"uid 65534 with fd_uid", true, nobody, 1},
		{"root", false, spawnOpts{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.AllowUIDs[65534] = true
			if tc.fdUID {
				cfg.FdUIDs[65534] = true
			}
			sock := filepath.Join(testenv.PublicDir(t), "d.sock")
			startDaemon(t, cfg, sock)
			p := dialClient(t, sock, "class=content,deadline=10s,fds=1,auto=allow", tc.as)
			if w := p.allLines("welcome"); !strings.Contains(w[0], fmt.Sprintf("welcome fds=%d ", tc.wantFD)) {
				t.Errorf("welcome %q, want fds=%d", w[0], tc.wantFD)
			}
			mustAdd(t, p, kindInode, maskOpenPerm, f.pub)
			acc := startAccessors(t, f.pubFile, 1)[0]
			if errno, _ := acc.result(t, hang); errno != 0 {
				t.Errorf("open: errno %d", errno)
			}
			l := p.mustLine("event ", hang)
			if !strings.Contains(l, fmt.Sprintf(" fd=%d ", tc.wantFD)) {
				t.Errorf("permission event %q, want fd=%d", l, tc.wantFD)
			}
		})
	}
}

// TestAllowGIDBySupplementaryGroup: allow_gid admits a client by a supplementary group (as the
// kernel recorded them when it connected), and only by one it has.
func TestAllowGIDBySupplementaryGroup(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	cfg.AllowGIDs[4242] = true
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, cfg, sock)
	for _, tc := range []struct {
		groups []uint32
		want   string
	}{
		{[]uint32{4242}, "welcome"},
		{[]uint32{4243}, "dial-err permission"},
	} {
		t.Run(fmt.Sprint(tc.groups), func(t *testing.T) {
			as := spawnOpts{cred: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: tc.groups},
				env: []string{"FSND_SOCKET=" + sock, "FSND_CLIENT=class=content,deadline=1s"}}
			p := spawn(t, "client", as)
			p.mustLine("up", hang)
			p.send("dial")
			if l := p.mustLine("", hang); !strings.HasPrefix(l, tc.want) {
				t.Errorf("uid 65534 with groups %v asking for a content class: %q, want %s", tc.groups, l, tc.want)
			}
		})
	}
}

// TestChmodHidesNamesAtOnce: an unprivileged client watching a tree learns the names created
// in a directory while it may list it, and none created after a chmod 700 of that directory —
// or of a directory above it — has returned: the daemon checks the client's access for each
// batch of events, and remembers no answer longer (it used to trust one for 1 s). After a
// chmod 755 it learns them again.
func TestChmodHidesNamesAtOnce(t *testing.T) {
	testenv.RequireRoot(t)
	for _, which := range []string{"directory", "ancestor"} {
		t.Run(which, func(t *testing.T) {
			f := newAuthFixture(t)
			upper := filepath.Join(f.pub, "a")
			dir := filepath.Join(upper, "b")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			chmodded := dir
			if which == "ancestor" {
				chmodded = upper
			}
			sock := filepath.Join(testenv.PublicDir(t), "d.sock")
			startDaemon(t, testConfig(), sock)
			p := dialClient(t, sock, "name=nobody", nobody)
			mustAdd(t, p, "4", "0x40000100", f.pub) // a subtree mark: CREATE | ONDIR
			create := func(prefix string, n int, every time.Duration) {
				for i := range n {
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d", prefix, i)), nil, 0o644); err != nil {
						t.Fatal(err)
					}
					time.Sleep(every)
				}
			}
			seen := func(prefix string) int {
				p.send("ping")
				p.mustLine("pong", hang)
				n := 0
				for _, l := range p.allLines("event ") {
					if strings.Contains(l, "/"+prefix+"-") {
						n++
					}
				}
				return n
			}
			create("before", 20, 0)
			if !eventually(hang, func() bool { return seen("before") == 20 }) {
				t.Fatalf("the client saw %d of the 20 names created while it could list %s", seen("before"), dir)
			}
			if err := os.Chmod(chmodded, 0o700); err != nil {
				t.Fatal(err)
			}
			// At once, and for over a second (the old cache's lifetime), in bursts and one by one.
			create("after", 50, 0)
			create("later", 60, 20*time.Millisecond)
			time.Sleep(100 * time.Millisecond)
			if n, m := seen("after"), seen("later"); n+m > 0 {
				t.Errorf("after chmod 700 of the %s %s, uid 65534 learned %d names created there", which, chmodded, n+m)
			}
			if err := os.Chmod(chmodded, 0o755); err != nil {
				t.Fatal(err)
			}
			create("again", 5, 0)
			if !eventually(hang, func() bool { return seen("again") == 5 }) {
				t.Errorf("after chmod 755 the client saw %d of 5 names", seen("again"))
			}
		})
	}
}

// statsField is the value of key=... in a stats-ok line.
func statsField(l, key string) string {
	for _, f := range strings.Fields(l) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestStatsArePrivate: an unprivileged user's stats hold the figures of its own uid's
// clients only — their count, deliveries and marks; no daemon-wide events, no other user's
// clients — so that it cannot watch activity in directories it cannot read; root's hold
// everything. `fsnotifyd stats` says which it shows, in text and JSON.
func TestStatsArePrivate(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	root, err := client.Dial(ctx, client.Options{Socket: sock, Name: "root-watch"})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.AddMark(ctx, f.priv, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	mine := dialClient(t, sock, "name=mine", nobody)
	mustAdd(t, mine, kindInode, maskOpenChild, f.pub)
	dialClient(t, sock, "name=mine-too", nobody)
	dialClient(t, sock, "name=other-user", spawnOpts{cred: &syscall.Credential{Uid: 65533, Gid: 65534}})
	// Activity only root may know of (in priv/, 0700), and some in pub/ for uid 65534.
	for range 20 {
		if _, err := os.ReadFile(f.link); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.ReadFile(f.pubFile); err != nil {
		t.Fatal(err)
	}
	mine.mustLine("event ", hang)
	select {
	case <-root.Events():
	case <-time.After(hang):
		t.Fatal("root's client got no event")
	}

	mine.send("stats")
	l := mine.mustLine("stats-", hang)
	t.Logf("uid 65534: %s", l)
	if statsField(l, "clients") != "2" || statsField(l, "events") != "0" || statsField(l, "marks") != "1" ||
		statsField(l, "delivered") != statsField(l, "listed-delivered") || statsField(l, "delivered") == "0" {
		t.Errorf("uid 65534's stats %q: want its 2 clients, 1 mark, its own deliveries, no daemon-wide events", l)
	}
	for _, e := range strings.Split(statsField(l, "listed"), ",") {
		if !strings.HasPrefix(e, "65534:") {
			t.Errorf("uid 65534's stats list another user's client %q", e)
		}
	}
	st, err := root.Stats(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, c := range st.Clients {
		uids = append(uids, c.UID)
	}
	if st.Daemon.Clients != 4 || st.Daemon.Events < 2 || st.Daemon.Marks < 2 || !slices.Contains(uids, 65533) {
		t.Errorf("root's stats: %d clients, %d events, uids %v; want all 4 clients and every event", st.Daemon.Clients, st.Daemon.Events, uids)
	}

	// The command says which figures it shows.
	for _, tc := range []struct {
		as   *syscall.Credential
		args []string
		want []string
	}{
		{nobody.cred, nil, []string{"the clients of uid 65534 only", "(daemon-wide)"}},
		{nobody.cred, []string{"--json"}, []string{`"scope": "uid"`, `"uid": 65534`}},
		{nil, []string{"--json"}, []string{`"scope": "daemon"`}},
	} {
		cmd := exec.Command(fsnotifydBinary(t), append([]string{"stats", "--socket", sock}, tc.args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tc.as}
		out, err := cmd.CombinedOutput()
		for _, w := range tc.want {
			if err != nil || !strings.Contains(string(out), w) {
				t.Errorf("fsnotifyd stats %v (as %v): %v\n%s\nwant %q", tc.args, tc.as, err, out, w)
			}
		}
	}
}

// TestNoNamesFromOutsideWhatItMarked: an event that reaches an unprivileged client's mark by
// a path outside what it marked comes without a path, and without a name either: the name is
// one in a directory the client may not be able to list (a hard link's in a 0700 directory;
// the entries of a watched directory, or of a watched tree, that root moved into a 0700
// directory after the mark). Before, the path was withheld but the name was sent. Nor does a
// rename out of a directory of its tree that it cannot list tell the old name (it told the
// old path and name: only the new side was checked).
func TestNoNamesFromOutsideWhatItMarked(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	sentinelDir := filepath.Join(f.pub, "s")
	dir := filepath.Join(f.pub, "d")
	tree := filepath.Join(f.pub, "tree")
	for _, d := range []string{sentinelDir, dir, filepath.Join(tree, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	p := dialClient(t, sock, "name=nobody,names=1", nobody)
	mustAdd(t, p, kindInode, maskOpen, f.pubFile)
	mustAdd(t, p, kindInode, maskDirents, dir)
	mustAdd(t, p, "4", "0x40000100", tree) // a subtree mark: CREATE | ONDIR
	mustAdd(t, p, kindInode, maskDirents, sentinelDir)
	sentinel := 0
	sync := func() {
		t.Helper()
		sentinel++
		name := fmt.Sprintf("sentinel-%d", sentinel)
		if err := os.WriteFile(filepath.Join(sentinelDir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := p.waitMatch(func(l string) bool { return strings.HasPrefix(l, "names ") && strings.Contains(l, name) }, hang); !ok {
			t.Fatalf("no event for %s%s", name, p.tail())
		}
	}
	sync()
	// The hard link in priv/ (0700): the open is the client's event, its name is not.
	if _, err := os.ReadFile(f.link); err != nil {
		t.Fatal(err)
	}
	// The watched directory and the watched tree moved into priv/.
	movedDir, movedTree := filepath.Join(f.priv, "d"), filepath.Join(f.priv, "tree")
	if err := os.Rename(dir, movedDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tree, movedTree); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		filepath.Join(movedDir, "secret-in-dir"),
		filepath.Join(movedTree, "secret-in-tree"),
		filepath.Join(movedTree, "sub", "secret-in-sub"),
	} {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(movedDir, "secret-in-dir"), filepath.Join(movedDir, "secret-renamed")); err != nil {
		t.Fatal(err)
	}
	sync()
	got := 0
	for _, l := range p.allLines("names ") {
		if strings.Contains(l, "sentinel-") {
			continue
		}
		got++
		t.Logf("%s", l)
		if !strings.HasSuffix(l, " path= name= newname= oldpath=") {
			t.Errorf("uid 65534 learned a name or path in priv/ (0700): %q", l)
		}
	}
	if got == 0 {
		t.Errorf("no event of the link's open or in the moved directories: they are the client's events")
	}

	// A rename from a 0700 directory of a watched tree into one the client may list.
	hidden, open := filepath.Join(f.pub, "hidden"), filepath.Join(f.pub, "open")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(hidden, "secret-old"), filepath.Join(open, "plain-old")} {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := dialClient(t, sock, "name=nobody,names=1", nobody)
	mustAdd(t, r, "4", "0x50000000", f.pub) // a subtree mark: RENAME | ONDIR
	if err := os.Rename(filepath.Join(hidden, "secret-old"), filepath.Join(open, "visible-new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(open, "plain-old"), filepath.Join(open, "plain-new")); err != nil {
		t.Fatal(err)
	}
	l, ok := r.waitLine("names ", hang)
	if want := "names 0x10000000 path=" + filepath.Join(open, "visible-new") + " name= newname=visible-new oldpath="; !ok || l != want {
		t.Errorf("the rename out of a 0700 directory: %q (received: %v), want %q", l, ok, want)
	}
	l, ok = r.waitLine("names ", hang)
	if want := "names 0x10000000 path=" + filepath.Join(open, "plain-new") + " name=plain-old newname=plain-new oldpath=" + filepath.Join(open, "plain-old"); !ok || l != want {
		t.Errorf("the rename in a directory it may list: %q (received: %v), want %q", l, ok, want)
	}
}

// TestRenamedIntoHidingNamesNothing: a directory of a watched tree renamed, made 0700, its
// old name taken by a new open directory, and a file then created in the hidden one: the
// file's event, whose directory's path the daemon resolves from its own cache of the tree,
// must not come by the old (now open) path with the hidden file's name. Two hundred rounds,
// each as fast as root can make them.
func TestRenamedIntoHidingNamesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	p := dialClient(t, sock, "name=nobody,names=1", nobody)
	mustAdd(t, p, "4", "0x40000100", f.pub) // a subtree mark: CREATE | ONDIR
	const rounds = 200
	for i := range rounds {
		open := filepath.Join(f.pub, fmt.Sprintf("open%d", i))
		hidden := filepath.Join(f.pub, fmt.Sprintf("hidden%d", i))
		for _, err := range []error{
			os.Mkdir(open, 0o755), os.Rename(open, hidden), os.Chmod(hidden, 0o700), os.Mkdir(open, 0o755),
			os.WriteFile(filepath.Join(hidden, fmt.Sprintf("secret%d", i)), nil, 0o600),
			os.WriteFile(filepath.Join(open, fmt.Sprintf("plain%d", i)), nil, 0o644),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	last := fmt.Sprintf("plain%d", rounds-1)
	if _, ok := p.waitMatch(func(l string) bool { return strings.HasPrefix(l, "names ") && strings.Contains(l, last) }, hang); !ok {
		t.Fatalf("no event for %s%s", last, p.tail())
	}
	for _, l := range p.allLines("names ") {
		if strings.Contains(l, "secret") {
			t.Errorf("uid 65534 learned a name in a 0700 directory: %q", l)
		}
	}
}

// TestWhoActedOnlyOfItsOwnProcesses: an unprivileged client learns which process acted — pid,
// thread, command and uid — only for processes of its own uid, as the kernel's own
// unprivileged fanotify tells a listener no pid but its own: another user's process that opens
// a file it watches comes with pid 0 and none of them. Before, uid 65534 watching a readable
// file (/etc/passwd, say) learned the pid, command and uid of every process of root's that
// read it.
func TestWhoActedOnlyOfItsOwnProcesses(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	p := dialClient(t, sock, "name=nobody,names=1,comm=1,uid=1", nobody)
	mustAdd(t, p, kindInode, maskOpen, f.pubFile)
	for _, tc := range []struct {
		who  string
		cred *syscall.Credential
	}{{"root", nil}, {"uid 65534", nobody.cred}, {"root again", nil}} {
		// A shell opens the file itself and waits: the process is there when the daemon
		// looks at it.
		sh := exec.Command("sh", "-c", "exec 3<"+f.pubFile+"; echo opened; read x")
		sh.SysProcAttr = &syscall.SysProcAttr{Credential: tc.cred}
		stdin, _ := sh.StdinPipe()
		stdout, _ := sh.StdoutPipe()
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
			t.Fatalf("sh as %s: %v", tc.who, err)
		}
		l, ok := p.waitLine("who ", hang)
		stdin.Close()
		sh.Wait()
		if !ok {
			t.Fatalf("no event of %s's open%s", tc.who, p.tail())
		}
		want := "who 0x20 pid=0 tid=0 comm= uid=0 hasuid=0"
		if tc.cred != nil {
			want = fmt.Sprintf("who 0x20 pid=%d tid=0 comm=sh uid=65534 hasuid=1", sh.Process.Pid)
		}
		if l != want {
			t.Errorf("the open by %s: %q, want %q", tc.who, l, want)
		}
	}
}
