//go:build linux

package notify

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestWatcherInotifyWatchLimit: the inotify watch limit reached (a user's
// max_user_watches: fsnotify's most asked question, ENOSPC "no space left on device"). An
// Add past it fails with an error that wraps syscall.ENOSPC, names the path, and says which
// sysctl to raise; a recursive watch whose new directories cannot be watched says in band
// that events are lost (an Overflow), never in silence. Run as nobody, in a user namespace
// of its own whose limit is lowered to 8 watches (the limit counts in every namespace up to
// the first: the machine's is not touched).
func TestWatcherInotifyWatchLimit(t *testing.T) {
	if testenv.IsChild() {
		if os.Getenv("FSN_LIMIT") == "" {
			t.Skip("run by the parent test")
		}
		w, err := NewWatcher()
		must(t, err)
		defer w.Close()
		if m := backendOf(w).Mode(); m != backend.ModeInotify {
			t.Fatalf("mode %v, want inotify", m)
		}
		dir := t.TempDir()
		var added []string
		var limitErr error
		for i := range 20 {
			d := fmt.Sprintf("%s/d%d", dir, i)
			must(t, os.Mkdir(d, 0o755))
			if err := w.Add(d); err != nil {
				limitErr = err
				if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), d) ||
					!strings.Contains(err.Error(), "max_user_watches") {
					t.Fatalf("Add past the limit: %v; want ENOSPC naming %s and the sysctl", err, d)
				}
				break
			}
			added = append(added, d)
		}
		if limitErr == nil {
			t.Fatal("20 watches added under a limit of 8")
		}
		for _, d := range added {
			must(t, w.Remove(d))
		}
		// A tree that outgrows the limit.
		root := dir + "/tree"
		must(t, os.Mkdir(root, 0o755))
		must(t, w.AddWith(root, WithRecursive()))
		const n = 12
		for i := range n {
			must(t, os.MkdirAll(fmt.Sprintf("%s/s%d", root, i), 0o755))
			must(t, os.WriteFile(fmt.Sprintf("%s/s%d/f", root, i), nil, 0o644))
		}
		seen := map[string]bool{}
		last := fmt.Sprintf("%s/s%d/f", root, n-1)
		evs := until(t, w, func(ev Event) bool {
			seen[ev.Name] = true
			return ev.Op == Overflow || ev.Name == last
		})
		t.Logf("Add past the limit: %v; the tree: %d events, the last %v", limitErr, len(evs), evs[len(evs)-1])
		if evs[len(evs)-1].Op != Overflow {
			for i := range n {
				if f := fmt.Sprintf("%s/s%d/f", root, i); !seen[f] {
					t.Fatalf("%s created in a directory past the watch limit: no event, no Overflow:\n%s", f, show(evs))
				}
			}
		}
		return
	}
	testenv.RequireRoot(t)
	bin := testenv.PublicExecutable(t)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"unshare", "-U", "-r", "sh", "-c", `echo 8 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"`,
		bin, "-test.run=^TestWatcherInotifyWatchLimit$", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "FSNOTIFYD_TESTENV_CHILD=1", "FSN_LIMIT=1", "TMPDIR=/tmp")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("as nobody in a user namespace limited to 8 inotify watches: %v\n%s", err, out)
	}
}
