//go:build linux

package backend

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestInotifyUnreadableDirectoryInTreeIsSaid: a directory of the tree that the watching
// user may not read (inotify_add_watch needs read access) — one of another user's, or
// mode 000 — is left out of an unprivileged recursive watch, and said: the directory is
// logged, and the group gets an overflow, at the mark and when such a directory appears
// later. The rest of the tree is watched. Before, the mark failed with "permission denied"
// (a tree in which anyone else could make a directory could not be watched at all, even
// with that directory excluded: ext4's lost+found, mode 0700, is one in every filesystem's
// root).
func TestInotifyUnreadableDirectoryInTreeIsSaid(t *testing.T) {
	if !testenv.IsChild() {
		testenv.RequireRoot(t)
		out, err := testenv.RunTestAs(t, 65534, 65534, "TestInotifyUnreadableDirectoryInTreeIsSaid")
		if err != nil || !strings.Contains(out, "--- PASS") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	j := filepath.Join
	r := t.TempDir()
	for _, d := range []string{j(r, "a"), j(r, "locked", "in"), j(r, "noexec", "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// locked: not readable; noexec: readable, not searchable (its subdirectory cannot be
	// reached).
	for d, mode := range map[string]os.FileMode{j(r, "locked"): 0, j(r, "noexec"): 0o444} {
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(d, 0o755) })
	}
	var log lockedBuffer
	b, err := New(Options{Mode: ModeInotify, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	g := inoGroup(t, b)
	inoMark(t, b, g, r, engine.KindSubtree, engine.Create|engine.OnDir)
	for _, d := range []string{j(r, "locked"), j(r, "noexec", "sub")} {
		if line := logLine(log.String(), "path="+d+" "); !strings.Contains(line, "not watched") || !strings.Contains(line, "permission denied") {
			t.Errorf("%s not logged as not watched; log:\n%s", d, log.String())
		}
	}

	// The rest of the tree is watched; a directory made unreadable from its creation is
	// reported, then an overflow.
	f := j(r, "a", "f")
	os.WriteFile(f, nil, 0o644)
	if err := os.Mkdir(j(r, "a", "new"), 0); err != nil {
		t.Fatal(err)
	}
	sentinel := j(r, "sentinel")
	os.WriteFile(sentinel, nil, 0o644)
	evs := inoReadUntil(t, g, inoCreated(sentinel))
	var got []string
	for _, e := range evs {
		got = append(got, strings.ReplaceAll(e.String(), r, ""))
	}
	want := []string{"OVERFLOW", "CREATE /a/f", "CREATE|ONDIR /a/new", "OVERFLOW", "CREATE /sentinel"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// logLine is the first line of log that contains s ("" if none).
func logLine(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestInotifyTreeRemovedDuringSetupIsNoError: a directory of the tree removed while the mark's
// scan reads it (rm -rf, by anyone who may write in the tree) is gone, not an error. Before,
// getdents on the removed directory (ENOENT) failed the mark: `watch -r` exited with
// "readdirent DIR: no such file or directory" in 10 of 150 starts beside an rm -rf loop.
func TestInotifyTreeRemovedDuringSetupIsNoError(t *testing.T) {
	r := t.TempDir()
	churn := exec.Command("sh", "-c", "cd "+r+" && while :; do mkdir -p x/a/b/c/d/e x/f/g/h x/i/j x/k/l; rm -rf x; done")
	churn.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its mkdir and rm go with it
	if err := churn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-churn.Process.Pid, syscall.SIGKILL); churn.Wait() }()
	failed := 0
	var first error
	for i := 0; i < 400; i++ {
		b, err := New(Options{Mode: ModeInotify})
		if err != nil {
			t.Fatal(err)
		}
		g, err := b.Engine().NewGroup(engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tg, err := b.Resolve(r, engine.KindSubtree, false)
		if err == nil {
			err = b.AddMark(g, tg, engine.MarkSpec{Mask: engine.Create | engine.OnDir})
		}
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
		g.Close()
		b.Close()
	}
	if failed > 0 {
		t.Fatalf("%d of 400 marks failed beside rm -rf; the first: %v", failed, first)
	}
}
