//go:build linux

package notify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
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

// TestNewGuardConfigErrorsNameTheField: a negative Deadline and kinds of access that do not
// exist are refused with an error naming what is wrong, embedded as through the daemon (where
// the daemon's "deadline -1s is negative" said it, and embedded "engine: invalid argument";
// unknown bits in Ask read "asked for none"); SetEvents alike.
func TestNewGuardConfigErrorsNameTheField(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		for _, c := range []struct {
			cfg  GuardConfig
			want string
		}{
			{GuardConfig{Deadline: -time.Second}, "Deadline is negative"},
			{GuardConfig{Events: 1 << 6}, "Events holds bits 0x40"},
			{GuardConfig{Events: AccessOpen | 1<<5}, "Events holds bits 0x20"},
			{GuardConfig{Ask: 1 << 6}, "bits 0x40"},
		} {
			c.cfg.Paths, c.cfg.Daemon = []string{dir}, daemon
			g, err := NewGuard(c.cfg, func(context.Context, *Request) Verdict { return Allow })
			if err == nil {
				g.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("NewGuard (Deadline %v, Events %#x, Ask %#x): %v; want an error saying %q", c.cfg.Deadline, uint8(c.cfg.Events), uint8(c.cfg.Ask), err, c.want)
			}
		}
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Events: AccessOpen | AccessExec},
			func(context.Context, *Request) Verdict { return Allow })
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if err := g.SetEvents(context.Background(), AccessExec|1<<6); err == nil || !strings.Contains(err.Error(), "bits 0x40") {
			t.Errorf("SetEvents with an unknown bit: %v; want an error saying bits 0x40", err)
		}
	})
}

// TestGuardHandlerCtxEndsAtTheDeadlineInForce: through a daemon that caps deadlines
// (max_deadline), or gives its own to a Guard that asked for none, the handler's ctx ends at
// the deadline in force (Guard.Deadline), when the daemon answers for it — not at the one
// asked for, or never: a handler watching its ctx stops then, and gives its place back, rather
// than working on for an answer nobody takes.
func TestGuardHandlerCtxEndsAtTheDeadlineInForce(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	cfg := daemon.DefaultConfig()
	cfg.MaxDeadline = 300 * time.Millisecond
	t.Cleanup(testdaemon.Start(t, daemon.Options{Config: cfg}, sock).Stop)
	dir := testenv.Tmpfs(t)
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
	for _, asked := range []time.Duration{0, 10 * time.Second} {
		t.Run("asked="+asked.String(), func(t *testing.T) {
			waited := make(chan time.Duration, 1)
			g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: asked},
				func(ctx context.Context, r *Request) Verdict {
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Second):
					}
					select {
					case waited <- time.Since(r.Time):
					default:
					}
					return Deny
				})
			must(t, err)
			defer g.Close()
			if g.Deadline() != cfg.MaxDeadline {
				t.Fatalf("Deadline %v, want the daemon's %v", g.Deadline(), cfg.MaxDeadline)
			}
			if out, err := catFile(filepath.Join(dir, "f"), nil); err != nil {
				t.Errorf("cat: %v %s; want the deadline verdict, allow", err, out)
			}
			if d := <-waited; d > 2*time.Second {
				t.Errorf("the handler's ctx ended %v after the read; want at the deadline in force, %v", d, g.Deadline())
			}
		})
	}
}
