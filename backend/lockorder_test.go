//go:build linux

package backend

import (
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
)

// The backend's locks carry their classes from New on: built with -tags lockorder, taking
// Backend.mu under a leaf (inflightMu), or under a filesystem's ignMu, panics. (Without the
// tag nothing is checked: the test then only runs the locks in order.)
func TestLockOrderClasses(t *testing.T) {
	b := inoBackend(t)
	b.mu.Lock()
	b.inflightMu.Lock()
	b.inflightMu.Unlock()
	b.mu.Unlock()
	if !lockorder.Enabled {
		t.Skip("built without -tags lockorder: the order is not checked")
	}
	b.inflightMu.Lock()
	if err := lockorder.Violation("backend.Backend.mu (rank 10) taken while holding backend.Backend.inflightMu", b.mu.Lock); err != nil {
		t.Fatal(err)
	}
	b.inflightMu.Unlock()
	fs := &fsState{}
	fs.ignMu.Init(lockIgnore)
	fs.ignMu.Lock()
	if err := lockorder.Violation("backend.Backend.mu (rank 10) taken while holding backend.fsState.ignMu", b.mu.Lock); err != nil {
		t.Fatal(err)
	}
	fs.ignMu.Unlock()
}
