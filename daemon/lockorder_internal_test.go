//go:build linux

package daemon

import (
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
)

func expectOrderPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		msg, _ := recover().(string)
		if !strings.Contains(msg, want) {
			t.Fatalf("recovered %q; want a lock order panic naming %q", msg, want)
		}
	}()
	f()
}

// The daemon's locks carry their classes (New, and initLocks for each session): built with
// -tags lockorder, taking them against doc.go's tree panics — a session's sendMu under its
// mu, Server.mu under a session's lock, a second session's mu under the first's.
func TestLockOrderClasses(t *testing.T) {
	b, err := backend.New(backend.Options{Mode: backend.ModeInotify})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := New(Options{Config: DefaultConfig(), Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, d := &session{s: s}, &session{s: s}
	c.initLocks()
	d.initLocks()
	c.sendMu.Lock() // in order: sendMu, then mu
	c.mu.Lock()
	c.mu.Unlock()
	c.sendMu.Unlock()
	if !lockorder.Enabled {
		t.Skip("built without -tags lockorder: the order is not checked")
	}
	c.mu.Lock()
	expectOrderPanic(t, "daemon.session.sendMu (rank 20) taken while holding daemon.session.mu", c.sendMu.Lock)
	expectOrderPanic(t, "daemon.Server.mu (rank 10) taken while holding daemon.session.mu", s.mu.Lock)
	expectOrderPanic(t, "daemon.session.mu (rank 30) taken while holding daemon.session.mu", d.mu.Lock)
	c.mu.Unlock()
	c.inlineMu.Lock()
	expectOrderPanic(t, "daemon.session.sendMu (rank 20) taken while holding daemon.session.inlineMu", c.sendMu.Lock)
	c.inlineMu.Unlock()
}
