//go:build linux

package daemon

import (
	"testing"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
)

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
	if err := lockorder.Violation("daemon.session.sendMu (rank 20) taken while holding daemon.session.mu", c.sendMu.Lock); err != nil {
		t.Fatal(err)
	}
	if err := lockorder.Violation("daemon.Server.mu (rank 10) taken while holding daemon.session.mu", s.mu.Lock); err != nil {
		t.Fatal(err)
	}
	if err := lockorder.Violation("daemon.session.mu (rank 30) taken while holding daemon.session.mu", d.mu.Lock); err != nil {
		t.Fatal(err)
	}
	c.mu.Unlock()
	c.inlineMu.Lock()
	if err := lockorder.Violation("daemon.session.sendMu (rank 20) taken while holding daemon.session.inlineMu", c.sendMu.Lock); err != nil {
		t.Fatal(err)
	}
	c.inlineMu.Unlock()
}
