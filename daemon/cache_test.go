//go:build linux

package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// eventsFor counts the events a client helper printed for path.
func eventsFor(p *proc, path string) int {
	n := 0
	for _, l := range p.allLines("event ") {
		if strings.HasSuffix(l, " path="+path) {
			n++
		}
	}
	return n
}

// settledEvents is eventsFor once the count stood still for 50 ms (a client helper prints an
// event after it answered it, so a count read right after an open may lag by one).
func settledEvents(p *proc, path string) int {
	n := eventsFor(p, path)
	for deadline := time.Now().Add(hang); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		m := eventsFor(p, path)
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// catErr opens and reads path in a child process (the daemon's own accesses are exempt) and
// returns its error output ("" when it read the file).
func catErr(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("cat", path).CombinedOutput()
	if err == nil {
		return ""
	}
	return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
}

// untilCached opens path until the daemon's backend cached an allow (client a answers with
// cache), then checks that a's count of events for path stands still over more opens.
func untilCached(t *testing.T, d *testDaemon, a *proc, path string) {
	t.Helper()
	if !eventually(hang, func() bool {
		if e := catErr(t, path); e != "" {
			t.Fatalf("open of %s: %s", path, e)
		}
		return d.srv.Backend().Stats().VerdictCached > 0
	}) {
		t.Fatalf("%s: the allow was never cached%s", path, a.tail())
	}
	// The helper prints an event after answering it: let the opens above be printed first.
	before := settledEvents(a, path)
	for i := 0; i < 3; i++ {
		catErr(t, path)
	}
	time.Sleep(50 * time.Millisecond)
	if n := eventsFor(a, path); n != before {
		t.Fatalf("%s: %d more events after the allow was cached%s", path, n-before, a.tail())
	}
}

// TestCachedAllowNeverHidesAnotherClient: two permission clients of one daemon on the same
// directory, one answering with cache: an allow cached while only the caching client decided
// never hides an access from the other client, whichever came first, and not after the
// caching client left either; a notification client sees every open meanwhile (the cache
// covers permission events only). docs/security.md, "Evictable ignore marks and the verdict
// cache".
func TestCachedAllowNeverHidesAnotherClient(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []string{"caching client first", "other client first", "caching client leaves"} {
		t.Run(tc, func(t *testing.T) {
			dir := filepath.Join(testenv.Tmpfs(t), "d")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, "f")
			if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(testenv.PublicDir(t), "d.sock")
			d := startDaemon(t, testConfig(), sock)
			n := dialClient(t, sock, "name=N", spawnOpts{})
			mustAdd(t, n, kindInode, maskOpenChild, dir)
			cat := func() string { return catErr(t, f) }

			switch tc {
			case "other client first":
				b := dialClient(t, sock, "class=content,deadline=30s,auto=allow,name=B", spawnOpts{})
				mustAdd(t, b, kindInode, maskOpenPerm, dir)
				a := dialClient(t, sock, "class=content,deadline=30s,auto=allow-cache,name=A", spawnOpts{})
				mustAdd(t, a, kindInode, maskOpenPerm, dir)
				for i := 0; i < 5; i++ {
					if e := cat(); e != "" {
						t.Fatal(e)
					}
				}
				if !eventually(hang, func() bool { return eventsFor(b, f) == 5 && eventsFor(a, f) == 5 }) {
					t.Fatalf("B saw %d, A %d of 5 opens: an allow B did not ask to cache hid opens from it",
						eventsFor(b, f), eventsFor(a, f))
				}
			default:
				a := dialClient(t, sock, "class=content,deadline=30s,auto=allow-cache,name=A", spawnOpts{})
				mustAdd(t, a, kindInode, maskOpenPerm, dir)
				untilCached(t, d, a, f)
				// N, a notification client, sees the cached opens: the cache covers
				// permission events only.
				before := eventsFor(n, f)
				if e := cat(); e != "" {
					t.Fatal(e)
				}
				if !eventually(hang, func() bool { return eventsFor(n, f) > before }) {
					t.Fatalf("the notification client missed a cached open%s", n.tail())
				}
				if tc == "caching client leaves" {
					a.send("close")
					a.mustLine("closed", hang)
				}
				b := dialClient(t, sock, "class=content,deadline=30s,auto=deny,name=B", spawnOpts{})
				mustAdd(t, b, kindInode, maskOpenPerm, dir)
				if e := cat(); !strings.Contains(e, "Operation not permitted") {
					t.Fatalf("open after B (deny) marked the directory: %q, want EPERM", e)
				}
				// B answers before its helper prints the event: wait for the line, then
				// make sure no second one follows.
				if !eventually(hang, func() bool { return eventsFor(b, f) >= 1 }) {
					t.Fatalf("B saw %d events, want 1%s", eventsFor(b, f), b.tail())
				}
				time.Sleep(50 * time.Millisecond)
				if got := eventsFor(b, f); got != 1 {
					t.Fatalf("B saw %d events, want 1", got)
				}
			}
		})
	}
}
