//go:build linux

package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestNewGuardRefusesEmptyPath: an empty path in Paths, Mounts or Filesystems (an unset
// variable) is refused with an error naming the field, embedded and through the daemon alike.
// Embedded it used to guard the current directory (recursively, a filesystem mark) — the
// root of the filesystem for a program started there — while through the daemon it failed.
// The current directory is a tmpfs of the test's, so that the old behaviour marks only it.
func TestNewGuardRefusesEmptyPath(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		t.Chdir(testenv.Tmpfs(t))
		for _, c := range []struct {
			field string
			cfg   GuardConfig
		}{
			{"Paths[0]", GuardConfig{Paths: []string{""}}},
			{"Paths[1]", GuardConfig{Paths: []string{".", ""}}},
			{"Mounts[0]", GuardConfig{Mounts: []string{""}}},
			{"Filesystems[0]", GuardConfig{Filesystems: []string{""}}},
		} {
			c.cfg.Daemon, c.cfg.Deadline = daemon, time.Second
			g, err := NewGuard(c.cfg, func(context.Context, *Request) Verdict { return Allow })
			if err == nil {
				g.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("NewGuard with %s empty: %v; want an error naming %s", c.field, err, c.field)
			}
		}
	})
}
