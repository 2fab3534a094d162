//go:build linux

package daemon_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestEmbedAsLibrary embeds a daemon the way a program outside this module can — New, Run on
// its own listener, Stats, Close, in public types only — and serves a client through it: the
// client's Welcome names the server's instance, an event on its mark arrives, the server counts
// the client, and Run returns once its context ends.
func TestEmbedAsLibrary(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	sock := filepath.Join(t.TempDir(), "embedded.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := daemon.New(daemon.Options{Config: daemon.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx, ln) }()

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	cl, err := client.Dial(dctx, client.Options{Socket: sock, Name: "embedder", Buffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if w := cl.Welcome(); w.Instance != srv.Instance() || w.Instance.IsZero() {
		t.Errorf("the client's Welcome names instance %v, the server is %v", w.Instance, srv.Instance())
	}
	if _, err := cl.AddMark(dctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-cl.Events():
		if ev.Mask&engine.Create == 0 || ev.Path != file {
			t.Errorf("event %v on %q, want CREATE on %q", ev.Mask, ev.Path, file)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	if st := srv.Stats(true, 0); st.Daemon.Clients != 1 || st.Daemon.Marks != 1 {
		t.Errorf("the server counts %d clients and %d marks, want 1 and 1", st.Daemon.Clients, st.Daemon.Marks)
	}
	cl.Close()
	cancel()
	select {
	case err := <-ran:
		if err != nil && err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}
}
