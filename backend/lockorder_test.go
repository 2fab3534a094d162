//go:build linux

package backend

import (
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
)

// expectOrderPanic runs f, which takes a lock against the package doc's lock tree, and checks
// that a lockorder build panics naming it.
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
	expectOrderPanic(t, "backend.Backend.mu (rank 10) taken while holding backend.Backend.inflightMu", b.mu.Lock)
	b.inflightMu.Unlock()
	fs := &fsState{}
	fs.ignMu.Init(lockIgnore)
	fs.ignMu.Lock()
	expectOrderPanic(t, "backend.Backend.mu (rank 10) taken while holding backend.fsState.ignMu", b.mu.Lock)
	fs.ignMu.Unlock()
}
