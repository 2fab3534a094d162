//go:build linux

package notify

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestWatcherAddErrors: Add's errors wrap the system's errno, so that errors.Is works
// (fs.ErrNotExist, fs.ErrPermission, syscall.ENOTDIR), and name the path, on every source.
// The permission case runs as nobody (a root process may read any directory): inotify.
func TestWatcherAddErrors(t *testing.T) {
	if dir := os.Getenv("FSN_LOCKED"); testenv.IsChild() && dir != "" {
		w, err := NewWatcher()
		must(t, err)
		defer w.Close()
		err = w.Add(dir + "/inner")
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Add of a path below a directory nobody may search: %v, want fs.ErrPermission naming it", err)
		}
		return
	}
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		must(t, os.WriteFile(e.path("file"), nil, 0o644))
		for _, c := range []struct {
			path string
			want error
		}{
			{e.path("missing"), fs.ErrNotExist},
			{e.path("missing", "..."), fs.ErrNotExist},
			{e.path("file", "below"), syscall.ENOTDIR},
		} {
			err := w.Add(c.path)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), strings.TrimSuffix(c.path, "/...")) {
				t.Errorf("Add(%s): %v, want %v naming the path", c.path, err, c.want)
			}
		}
	})
	t.Run("permission", func(t *testing.T) {
		testenv.RequireRoot(t)
		dir := testenv.PublicDir(t)
		must(t, os.Mkdir(dir+"/locked", 0o700))
		must(t, os.Mkdir(dir+"/locked/inner", 0o755))
		t.Setenv("FSN_LOCKED", dir+"/locked")
		out, err := testenv.RunTestAs(t, 65534, 65534, "TestWatcherAddErrors")
		if err != nil || !strings.Contains(out, "PASS") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
	})
}
