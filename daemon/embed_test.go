//go:build linux

package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestEmbedAsLibrary embeds a daemon the way a program outside this module can — testdaemon
// uses only New, Run on its own listener and Close — and serves a client through it, in public
// types only: the client's Welcome names the server's instance, an event on its mark arrives,
// the server counts the client and its mark, and Run returns once its context ends (Stop fails
// the test otherwise).
func TestEmbedAsLibrary(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	srv := testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig()}, filepath.Join(t.TempDir(), "embedded.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Socket: srv.Sock, Name: "embedder", Buffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if w := cl.Welcome(); w.Instance != srv.Instance() || w.Instance.IsZero() {
		t.Errorf("the client's Welcome names instance %v, the server is %v", w.Instance, srv.Instance())
	}
	if _, err := cl.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create}); err != nil {
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
	srv.Stop()
}
