//go:build linux

package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// sharedDir is a fresh directory every user may create in, sticky, as /tmp is.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := testenv.PublicDir(t)
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// impostorHears reports whether f's next connection, within d, says anything (a Hello): a
// client that refuses the impostor closes without a word.
func impostorHears(t *testing.T, f *fakeDaemon, d time.Duration) bool {
	t.Helper()
	f.ln.SetDeadline(time.Now().Add(d))
	uc, err := f.ln.AcceptUnix()
	if err != nil {
		return false // no connection at all
	}
	defer uc.Close()
	uc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, _ := uc.Read(b[:])
	return n > 0
}

// TestDaemonOfAnotherUserIsRefused: a socket that another user (uid 65534) listens on — at a
// --socket path in a shared directory, or at the path of a daemon that stopped, in a sticky
// directory where they can bind the name once root's socket is gone — is not the daemon. A
// root client refuses it by its peer credentials (SO_PEERCRED): Dial fails naming the socket
// and the uid, and a reconnecting client keeps away from it, and says nothing to it (no
// Hello); else root's guard --daemon would take the impostor's Welcome and guard nothing, and
// watch --daemon would show its events.
func TestDaemonOfAnotherUserIsRefused(t *testing.T) {
	testenv.RequireRoot(t)
	t.Run("Dial", func(t *testing.T) {
		f := newFakeAs(t, testenv.Nobody, filepath.Join(sharedDir(t), "d.sock"))
		type result struct {
			c   *client.Client
			err error
		}
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, client.Options{Socket: f.sock, Class: engine.ClassContent})
			done <- result{c, err}
		}()
		heard := make(chan bool, 1)
		go func() {
			// Answer as a daemon would, if asked.
			f.ln.SetDeadline(time.Now().Add(hang))
			uc, err := f.ln.AcceptUnix()
			if err != nil {
				heard <- false
				return
			}
			conn := proto.NewConn(uc, proto.DaemonSide)
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(hang))
			m, err := conn.ReadMsg()
			if err != nil {
				heard <- false
				return
			}
			heard <- true
			conn.WriteMsg(&proto.Welcome{Req: m.RequestID(), Version: proto.Version, ClientID: 1, Instance: f.inst,
				Fresh: true, Class: engine.ClassContent, DaemonVersion: "impostor"})
		}()
		r := <-done
		if r.err == nil {
			r.c.Close()
			t.Fatalf("Dial to a socket uid 65534 listens on succeeded (Welcome %+v): root's client took another user's daemon", r.c.Welcome())
		}
		if <-heard {
			t.Errorf("the client said Hello to uid 65534's socket before refusing it")
		}
		if !errors.Is(r.err, client.ErrUnavailable) {
			t.Errorf("Dial: %v, want ErrUnavailable", r.err)
		}
		for _, want := range []string{f.sock, "uid 65534"} {
			if !strings.Contains(r.err.Error(), want) {
				t.Errorf("Dial: %q does not say %q", r.err, want)
			}
		}
	})
	t.Run("Reconnect to a stopped daemon's path", func(t *testing.T) {
		sock := filepath.Join(sharedDir(t), "d.sock")
		stop := serveOn(t, daemon.DefaultConfig(), sock)
		c := dial(t, client.Options{Socket: sock, Reconnect: true})
		if _, err := c.AddMark(context.Background(), t.TempDir(), engine.KindInode, engine.MarkSpec{Mask: engine.Create}); err != nil {
			t.Fatal(err)
		}
		stop()
		os.Remove(sock) // stale, if it was left
		f := newFakeAs(t, testenv.Nobody, sock)
		deadline := time.Now().Add(2 * time.Second) // attempts at 50, 100, 200, 400, 800 ms
		for time.Now().Before(deadline) {
			if impostorHears(t, f, time.Until(deadline)) {
				t.Fatal("the reconnecting client said Hello to uid 65534's socket at the stopped daemon's path")
			}
		}
		select {
		case ev := <-c.Events():
			t.Fatalf("an event from uid 65534's socket: %+v", ev)
		default:
		}
	})
}
