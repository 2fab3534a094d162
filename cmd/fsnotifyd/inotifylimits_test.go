//go:build linux

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestWatchInotifyWatchLimitIsSaid: an unprivileged `watch -r` (inotify) that runs out of
// watches while it runs says so on stderr with the directory and the fix (which sysctl), and
// in band with a Q_OVERFLOW line; at the start, it fails with the same message. The watch
// limit is lowered for this test alone: in a user namespace of its own
// (/proc/sys/user/max_inotify_watches there), which makes it a user without
// CAP_SYS_ADMIN where it counts, so the backend is inotify. Before, the running case printed
// only "the kernel or our queue overflowed" (the backend's log went nowhere).
func TestWatchInotifyWatchLimitIsSaid(t *testing.T) {
	dir := testenv.Tmpfs(t)
	w := filepath.Join(dir, "w")
	sh(t, "mkdir -p "+w+"/a")
	limited := func(limit string, args ...string) []string {
		return []string{"unshare", "-U", "-r", "sh", "-c",
			"echo " + limit + " >/proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"", bin, "watch", "-r", "-e", "create", w}
	}

	// At the start: w and a need two.
	c := limited("1")
	outb, err := exec.Command(c[0], c[1:]...).CombinedOutput()
	out := string(outb)
	if err == nil || !strings.Contains(out, "fs.inotify.max_user_watches") {
		t.Errorf("with one watch: %v, want an error naming fs.inotify.max_user_watches; output:\n%s", err, out)
	}

	// While it runs: three, and x/y/z appears.
	p := start(t, limited("3")...)
	sh(t, "mkdir -p "+w+"/x/y/z && touch "+w+"/x/y/z/f")
	got := p.collect(10*time.Second, func(l []string) bool {
		return len(l) > 0 && strings.Contains(l[len(l)-1], "Q_OVERFLOW")
	})
	if len(got) == 0 || !strings.Contains(got[len(got)-1], "Q_OVERFLOW") {
		t.Fatalf("no Q_OVERFLOW line; stdout:\n%s\nstderr:\n%s", strings.Join(got, "\n"), p.errText())
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.errText(), "max_user_watches") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e := p.errText(); !strings.Contains(e, "fs.inotify.max_user_watches") || !strings.Contains(e, "path="+w+"/x") {
		t.Errorf("stderr does not name the directory and fs.inotify.max_user_watches:\n%s", e)
	}
}

// TestWatchExcludedDirectoryTakesNoInotifyWatch: on inotify, `watch -r DIR @DIR/skip` places
// no watch below the excluded directory (bar a watched path below it), so a large excluded
// subtree (node_modules, .git) does not use up the user's watches: with a limit of four, a
// tree of three watched directories and a dozen excluded ones is watched, directories made
// below the exclusion take none and give no overflow, and the watched path below it is
// watched with its own tree. Before, the exclusion only filtered what was printed: the start
// failed with "no space left on device (inotify watch limit reached ...)".
func TestWatchExcludedDirectoryTakesNoInotifyWatch(t *testing.T) {
	dir := testenv.Tmpfs(t)
	w := filepath.Join(dir, "w")
	sh(t, "mkdir -p "+w+"/a "+w+"/skip/keep && for i in 1 2 3 4 5 6; do mkdir -p "+w+"/skip/$i/deep; done")
	p := start(t, "unshare", "-U", "-r", "sh", "-c", "echo 4 >/proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"",
		bin, "watch", "-r", "-e", "create", w, "@"+w+"/skip", w+"/skip/keep")
	sh(t, "mkdir -p "+w+"/skip/n1/n2/n3 "+w+"/skip/keep/k1 && touch "+w+"/skip/n1/n2/n3/f "+w+"/skip/keep/k1/f && touch "+w+"/a/g")
	want := []string{w + "/skip/keep/ CREATE,ISDIR k1", w + "/skip/keep/k1/ CREATE f", w + "/a/ CREATE g"}
	got := p.collect(10*time.Second, func(l []string) bool { return len(l) > 0 && l[len(l)-1] == want[len(want)-1] })
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s\nstderr:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), p.errText())
	}
	if e := p.errText(); strings.Contains(e, "max_user_watches") || strings.Contains(e, "overflow") {
		t.Errorf("stderr:\n%s", e)
	}
}
