//go:build linux

package notify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// startDaemon runs a daemon in this process on a socket under t.TempDir().
func startDaemon(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := runDaemon(t, sock)
	t.Cleanup(stop)
	return sock
}

// runDaemon serves sock until stop, which waits until the daemon has closed.
func runDaemon(t *testing.T, sock string) (stop func()) {
	t.Helper()
	return testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig()}, sock).Stop
}

// A Guard through the daemon survives its restart: OnResync says so, and it decides again.
func TestGuardThroughDaemonRestart(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := runDaemon(t, sock)
	defer func() { stop() }()
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret", []byte("s"), 0o644)
	resynced := make(chan struct{}, 1)
	g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 5 * time.Second,
		Inline: func(r *Request) (Verdict, bool) {
			if strings.HasSuffix(r.Path(), "secret") {
				return Deny, true
			}
			return Allow, true
		},
		OnResync: func() {
			select {
			case resynced <- struct{}{}:
			default:
			}
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	denied := func() bool { // from another process: the Guard's own accesses are exempt
		return exec.Command("cat", dir+"/secret").Run() != nil
	}
	if !denied() {
		t.Fatal("secret readable before the restart")
	}
	stop()
	if denied() {
		t.Fatal("secret denied with no daemon: the kernel should have allowed it")
	}
	stop = runDaemon(t, sock)
	select {
	case <-resynced:
	case <-time.After(20 * time.Second):
		t.Fatal("no OnResync after the daemon restarted")
	}
	if !denied() {
		t.Fatal("secret readable after the resync")
	}
}

func TestWatcherThroughDaemon(t *testing.T) {
	sock := startDaemon(t)
	dir := testenv.Tmpfs(t)
	w, err := New(WithDaemon(sock))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.AddWith(dir, WithRecursive()); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("sh", "-c", "mkdir -p "+dir+"/a/b/c && touch "+dir+"/a/b/c/f").Run(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{dir + "/a": true, dir + "/a/b": true, dir + "/a/b/c": true, dir + "/a/b/c/f": true}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-w.Events:
			if ev.Has(Create) {
				delete(want, ev.Name)
			}
		case <-timeout:
			t.Fatalf("creates not reported through the daemon: %v", want)
		}
	}
	if got := w.WatchList(); len(got) != 1 || got[0] != dir {
		t.Fatalf("WatchList = %v", got)
	}
	if err := w.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(dir); err == nil || !strings.Contains(err.Error(), "non-existent") {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestGuardThroughDaemon(t *testing.T) {
	sock := startDaemon(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/secret", []byte("s"), 0o644)
	os.WriteFile(dir+"/ok", []byte("o"), 0o644)
	g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 5 * time.Second},
		func(ctx context.Context, r *Request) Verdict {
			if strings.HasSuffix(r.Path(), "secret") {
				return Deny
			}
			return Allow
		})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if out, err := exec.Command("cat", dir+"/secret").CombinedOutput(); err == nil || !strings.Contains(string(out), "not permitted") {
		t.Fatalf("cat of a denied file through the daemon: %v %s", err, out)
	}
	if out, err := exec.Command("cat", dir+"/ok").CombinedOutput(); err != nil {
		t.Fatalf("cat of an allowed file: %v %s", err, out)
	}
	// A decision is counted just after its answer goes out, so cat may finish first.
	deadline := time.Now().Add(5 * time.Second)
	for st := g.Stats(); st.Decided < 2 || st.Denied < 1; st = g.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGuardThroughDaemonNoPathsNoFiles: a Guard through the daemon whose handler needs no
// paths and no files (GuardConfig.NoPaths, NoFiles) gets requests without a file and, once the
// daemon need not read the path to place the access (the second access: the parent is
// cached), without a path; its verdicts hold as usual.
func TestGuardThroughDaemonNoPathsNoFiles(t *testing.T) {
	sock := startDaemon(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/f", []byte("f"), 0o644)
	type seen struct {
		path string
		file bool
	}
	reqs := make(chan seen, 16)
	deny := make(chan bool, 1)
	deny <- false
	g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 5 * time.Second, NoPaths: true, NoFiles: true},
		func(ctx context.Context, r *Request) Verdict {
			f := r.File()
			if f != nil {
				f.Close()
			}
			reqs <- seen{r.Path(), f != nil}
			d := <-deny
			deny <- d
			if d {
				return Deny
			}
			return Allow
		})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for i := range 2 {
		if out, err := exec.Command("cat", dir+"/f").CombinedOutput(); err != nil {
			t.Fatalf("cat %d: %v %s", i, err, out)
		}
	}
	<-deny
	deny <- true
	if out, err := exec.Command("cat", dir+"/f").CombinedOutput(); err == nil || !strings.Contains(string(out), "not permitted") {
		t.Fatalf("cat of a denied file: %v %s", err, out)
	}
	for i := range 3 {
		r := <-reqs
		if r.file || (i > 0 && r.path != "") {
			t.Errorf("request %d: path %q, file %v; want no file and, after the first, no path", i, r.path, r.file)
		}
	}
}

// A guarded directory replaced while the daemon was down is not guarded by the old marks in
// its place: the Guard says so through OnLost (naming the path) after the daemon is back, and
// still guards the directory it could mark again.
func TestGuardReportsLostMarkAfterDaemonRestart(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := runDaemon(t, sock)
	defer func() { stop() }()
	root := testenv.Tmpfs(t)
	kept, replaced := filepath.Join(root, "kept"), filepath.Join(root, "replaced")
	for _, d := range []string{kept, replaced} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(d+"/secret", []byte("s"), 0o644)
	}
	type lost struct {
		path string
		err  error
	}
	losts := make(chan lost, 4)
	g, err := NewGuard(GuardConfig{Paths: []string{kept, replaced}, Daemon: sock, Deadline: 5 * time.Second,
		Inline: func(r *Request) (Verdict, bool) {
			if strings.HasSuffix(r.Path(), "secret") {
				return Deny, true
			}
			return Allow, true
		},
		OnLost: func(path string, err error) { losts <- lost{path, err} }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	denied := func(p string) bool { return exec.Command("cat", p).Run() != nil }
	if !denied(replaced+"/secret") || !denied(kept+"/secret") {
		t.Fatal("secrets readable before the restart")
	}
	stop()
	if err := os.RemoveAll(replaced); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(replaced, 0o755); err != nil {
		t.Fatal(err)
	}
	stop = runDaemon(t, sock)
	select {
	case l := <-losts:
		if l.path != replaced || l.err == nil {
			t.Fatalf("OnLost(%q, %v); want %q and an error", l.path, l.err, replaced)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no OnLost within 20 s of the daemon's restart for a replaced guarded directory")
	}
	select {
	case l := <-losts:
		t.Fatalf("a second OnLost(%q, %v): only %q was replaced", l.path, l.err, replaced)
	case <-time.After(200 * time.Millisecond):
	}
	deadline := time.Now().Add(10 * time.Second)
	for !denied(kept + "/secret") {
		if time.Now().After(deadline) {
			t.Fatal("the directory that was not replaced is not guarded again after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An answer a Guard's Handler gives after the daemon restarted, to an event the old daemon
// sent, never answers an access of the new one: the new daemon numbers its events from the
// start again, so the held allows of the old connection's events (which the kernel allowed
// when the old daemon went) must not reach the new connection, where the same ids name other
// accesses — here opens of a file the Guard denies, which must stay denied.
func TestGuardStaleAnswerAfterDaemonRestart(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := runDaemon(t, sock)
	defer func() { stop() }()
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/slow", []byte("s"), 0o644)
	os.WriteFile(dir+"/secret", []byte("s"), 0o644)
	const held = 5
	release := make(chan struct{})
	heldNow := make(chan struct{}, held)
	resynced := make(chan struct{}, 1)
	g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 20 * time.Second,
		OnResync: func() {
			select {
			case resynced <- struct{}{}:
			default:
			}
		}}, func(ctx context.Context, r *Request) Verdict {
		if strings.HasSuffix(r.Path(), "secret") {
			time.Sleep(time.Second) // pending while the old answers come
			return Deny
		}
		heldNow <- struct{}{}
		<-release // past the restart
		return Allow
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var cats []*exec.Cmd
	for i := 0; i < held; i++ {
		c := exec.Command("cat", dir+"/slow")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cats = append(cats, c)
	}
	for i := 0; i < held; i++ {
		select {
		case <-heldNow:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d opens reached the Handler", i, held)
		}
	}
	stop() // the kernel allows the held opens
	for _, c := range cats {
		c.Wait()
	}
	stop = runDaemon(t, sock)
	select {
	case <-resynced:
	case <-time.After(20 * time.Second):
		t.Fatal("no OnResync after the daemon restarted")
	}
	allowed := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < held; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if exec.Command("cat", dir+"/secret").Run() == nil {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the opens of secret are pending in the Handler
	close(release)                     // the old connection's allows go out now
	wg.Wait()
	if allowed != 0 {
		t.Errorf("%d of %d opens of the denied file were allowed after the restart (by the old connection's answers)", allowed, held)
	}
}

// TestGuardCacheThroughDaemon: a Guard with Cache through a daemon of protocol version 6
// caches its AllowAndCache (Caches; fewer decisions than opens), and its FlushCache withdraws
// them: once it returns, the next open is decided by the new verdict. Through a daemon that
// plays version 5 nothing is cached (Caches false; every open decided), and FlushCache has
// nothing to do.
func TestGuardCacheThroughDaemon(t *testing.T) {
	for _, max := range []uint16{0, 5} {
		t.Run("version "+map[uint16]string{0: "6", 5: "5"}[max], func(t *testing.T) {
			testenv.RequireRoot(t)
			sock := filepath.Join(testenv.PublicDir(t), "d.sock")
			testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig(), MaxVersion: max}, sock)
			dir := testenv.Tmpfs(t)
			f := filepath.Join(dir, "f")
			os.WriteFile(f, []byte("f"), 0o644) // root's, one link, in root's 0755 root: pinned
			var mu sync.Mutex
			verdict, decided := AllowAndCache, 0
			g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 5 * time.Second, Cache: true,
				Inline: func(r *Request) (Verdict, bool) {
					mu.Lock()
					defer mu.Unlock()
					decided++
					return verdict, true
				}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Caches() != (max == 0) {
				t.Fatalf("Caches() = %v through a daemon of version %d", g.Caches(), max)
			}
			const opens = 10
			for i := 0; i < opens; i++ { // from another process: the Guard's own accesses are exempt
				if out, err := exec.Command("cat", f).CombinedOutput(); err != nil {
					t.Fatalf("open %d: %v %s", i, err, out)
				}
			}
			mu.Lock()
			n := decided
			verdict = Deny
			mu.Unlock()
			switch {
			case max == 0 && n >= opens:
				t.Errorf("%d of %d opens decided: none was cached", n, opens)
			case max != 0 && n != opens:
				t.Errorf("%d of %d opens decided through a version-5 daemon, want every one", n, opens)
			}
			if err := g.FlushCache(); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cat", f).CombinedOutput(); err == nil || !strings.Contains(string(out), "not permitted") {
				t.Fatalf("open after the verdict turned to deny and FlushCache returned: %v %s", err, out)
			}
		})
	}
}
