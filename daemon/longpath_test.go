//go:build linux

package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestUnknownPathsNeverReachUnprivileged: an event whose path the daemon cannot read (a file
// deeper than the backend reads paths, sys.MaxLongPath) may be anywhere on the filesystem, so the daemon cannot check that
// an unprivileged client may learn of it: such a client does not get it, while a privileged
// one does (its path empty: unknown). Next door, both hear of everything.
func TestUnknownPathsNeverReachUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	f := newAuthFixture(t)
	deep := testenv.DeepTree(t, f.pub, 22, 200)
	deeper := testenv.DeepTree(t, f.pub, 170, 200) // 34,170 bytes: beyond sys.MaxLongPath
	deeper.WriteFile(t, "deep.txt", "d")
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	const subtreeOpenCreate = "0x40000120" // OPEN | CREATE | ONDIR
	nobodyC := dialClient(t, sock, "name=nobody", nobody)
	mustAdd(t, nobodyC, "4", subtreeOpenCreate, f.pub)
	rootC := dialClient(t, sock, "name=root", spawnOpts{})
	mustAdd(t, rootC, "4", subtreeOpenCreate, f.pub)

	// Through /proc/self/fd/N: the kernel's path of the open file is the real, deep one.
	if _, err := os.ReadFile(testenv.ProcFd(deeper.Fd) + "/deep.txt"); err != nil {
		t.Fatal(err)
	}
	if l := rootC.mustLine("event ", hang); !strings.HasSuffix(l, " 0x20 fd=0 path=") {
		t.Fatalf("root client: %q, want the deep open with its path unknown", l)
	}
	// A create down there has a known path, longer than PATH_MAX.
	deep.WriteFile(t, "new.txt", "n")
	rootC.mustLine("event 0 0x100 fd=0 path="+deep.Path+"/new.txt", hang)
	if _, err := os.ReadFile(f.pubFile); err != nil {
		t.Fatal(err)
	}
	if l := nobodyC.mustLine("event ", hang); !strings.HasSuffix(l, "path="+f.pubFile) {
		t.Fatalf("uid 65534's first event %q, want the open of %s (nothing before it)", l, f.pubFile)
	}
	rootC.mustLine("event 0 0x20 fd=0 path="+f.pubFile, hang)
	nobodyC.send("ping")
	nobodyC.mustLine("pong", hang)
	if evs := nobodyC.allLines("event "); len(evs) != 1 {
		t.Fatalf("uid 65534 got %d events, want only the open of %s: %q", len(evs), f.pubFile, evs)
	}
}
