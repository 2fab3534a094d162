//go:build linux

package notify

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// A Watcher through the daemon, across a daemon restart during which a watched file is
// replaced (an editor's save) and a recursively watched directory is removed and made again:
// after the Overflow, each ends with one Remove and leaves WatchList, and the objects now at
// their paths are not watched (their events are not reported); an untouched watch goes on.
func TestWatcherWatchesLostInDaemonRestart(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := runDaemon(t, sock)
	dir := testenv.Tmpfs(t)
	w, err := New(WithDaemon(sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	file, tree, kept := filepath.Join(dir, "file"), filepath.Join(dir, "tree"), filepath.Join(dir, "kept")
	must(t, os.WriteFile(file, nil, 0o644))
	must(t, os.Mkdir(tree, 0o755))
	must(t, os.WriteFile(kept, nil, 0o644))
	must(t, w.Add(file))
	must(t, w.AddWith(tree, WithRecursive()))
	must(t, w.Add(kept))

	stop()
	must(t, os.WriteFile(file+".new", nil, 0o644))
	must(t, os.Rename(file+".new", file))
	must(t, os.Remove(tree))
	must(t, os.Mkdir(tree, 0o755))
	runDaemon(t, sock)

	evs := until(t, w, func(ev Event) bool { return ev.Op == Overflow })
	if len(evs) != 1 {
		t.Errorf("events before the restart's Overflow:\n%s", show(evs))
	}
	removed := map[string]int{}
	until(t, w, func(ev Event) bool {
		if ev.Has(Remove) {
			removed[ev.Name]++
		}
		return removed[file] > 0 && removed[tree] > 0
	})
	waitWatchList(t, w, 1)
	if got := w.WatchList(); !slices.Equal(got, []string{kept}) {
		t.Errorf("WatchList %q, want only %q", got, kept)
	}
	// The new objects at the lost watches' paths are strangers: nothing of them comes
	// before the untouched watch's event.
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644))
	must(t, os.WriteFile(kept, []byte("x"), 0o644))
	evs = until(t, w, is(Write, kept))
	for _, ev := range evs {
		if ev.Name != kept {
			t.Errorf("event of an object at a lost watch's path: %v", ev)
		}
		if ev.Has(Remove) && (ev.Name == file || ev.Name == tree) {
			removed[ev.Name]++
		}
	}
	if removed[file] != 1 || removed[tree] != 1 {
		t.Errorf("Remove of the replaced file %d times, of the remade tree %d times; want once each", removed[file], removed[tree])
	}
}

// TestWatcherSaysDaemonLost: a Watcher through the daemon whose daemon goes away (and may
// never come back) must not go silent: its events are lost from then on, so it says so at
// once on Errors (ErrDaemonLost, wrapping the cause) — the Guard has OnDisconnected for
// this, fsnotify's readers read Errors. When the daemon is back, the Overflow says where
// events were lost, and events flow again.
func TestWatcherSaysDaemonLost(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	stop := runDaemon(t, sock)
	dir := testenv.Tmpfs(t)
	w, err := New(WithDaemon(sock))
	must(t, err)
	t.Cleanup(func() { w.Close() })
	must(t, w.Add(dir))
	stop()
	select {
	case err := <-w.Errors:
		if !errors.Is(err, ErrDaemonLost) {
			t.Fatalf("Errors: %v, want ErrDaemonLost", err)
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon is gone and the Watcher says nothing on Errors")
	}
	runDaemon(t, sock)
	until(t, w, func(ev Event) bool { return ev.Op == Overflow })
	must(t, os.WriteFile(filepath.Join(dir, "after"), nil, 0o644))
	until(t, w, is(Create, filepath.Join(dir, "after")))
}
