//go:build linux

package notify

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"go.uber.org/goleak"
)

// Every Watcher and Guard must take its goroutines (and its backend's) with it on Close.
// TMPDIR is a tmpfs of the test binary's own (as root): the examples watch directories they
// make with os.MkdirTemp, and no test or example marks the machine's filesystem.
func TestMain(m *testing.M) {
	done := testenv.TmpdirOnTmpfs()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	done()
	os.Exit(code)
}

// TestTmpdirIsItsOwnTmpfs: as root, what the examples make with os.MkdirTemp is on the test
// binary's own tmpfs, not on the machine's filesystem (whose device / or /tmp has).
func TestTmpdirIsItsOwnTmpfs(t *testing.T) {
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var st, root, tmp syscall.Stat_t
	var fs syscall.Statfs_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat("/", &root) != nil || syscall.Stat("/tmp", &tmp) != nil || syscall.Statfs(dir, &fs) != nil {
		t.Fatal("stat")
	}
	if fs.Type != 0x01021994 || st.Dev == root.Dev || st.Dev == tmp.Dev {
		t.Fatalf("os.MkdirTemp made %s on filesystem type %#x, device %d (/ %d, /tmp %d): want a tmpfs of its own", dir, fs.Type, st.Dev, root.Dev, tmp.Dev)
	}
}
