//go:build linux

package client_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCloseEndsTheSessionFirst: once Close has returned, the client has no say in any
// access: the daemon has closed its session (its marks removed, its pending events answered).
// A client that denies when it goes away (CloseVerdict deny) and marks a file for opens is
// closed, and the file is opened at once by another process, round after round: every open
// succeeds. (Close used to write its goodbye and return without waiting when no request was
// in flight: an open in the moment after could still reach the closing session and get its
// close verdict, deny — a closed client denying an access it never saw. CI saw it as a
// missing event in TestRespondWaitAtCloseTellsTheTruth: the next round's open was denied by
// the previous round's client, ahead of the new one.)
func TestCloseEndsTheSessionFirst(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		c, err := client.Dial(ctx, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Minute,
			CloseVerdict: engine.Deny, Handler: func(ev client.Event) { ev.FD.Close() }})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if _, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
			cancel()
			t.Fatal(err)
		}
		c.Close()
		cancel()
		select {
		case err := <-accessor(t, file):
			if err != nil {
				t.Fatalf("round %d: the open after Close returned: %v (the closed client's close verdict)", i, err)
			}
		case <-time.After(hang):
			t.Fatalf("round %d: the open after Close returned still waits", i)
		}
	}
}
