//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestDaemonClientsRefuseAnotherUsersSocket: root's guard, watch and stats with --daemon
// at a socket that uid 65534 listens on (a --socket path in a sticky shared directory,
// such as /tmp) refuse it and exit 1, naming the socket and the uid; before, the guard took
// the impostor's Welcome and ran, deciding nothing.
func TestDaemonClientsRefuseAnotherUsersSocket(t *testing.T) {
	testenv.RequireRoot(t)
	shared := testenv.PublicDir(t)
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shared, "d.sock")
	testdaemon.ServeImpostor(t, testenv.ListenAs(t, testenv.Nobody, sock), 0)
	dir := testenv.Tmpfs(t)
	for _, args := range [][]string{
		{"guard", "--daemon=" + sock, "--deny", "**/*.key", dir},
		{"watch", "--daemon=" + sock, dir},
		{"stats", "--socket", sock},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if exitStatus(err) != 1 || !strings.Contains(string(out), sock+" is served by uid 65534") {
			t.Errorf("fsnotifyd %v through uid 65534's socket: %v\n%s\nwant exit 1 and %q", args, err, out, sock+" is served by uid 65534")
		}
	}
}
