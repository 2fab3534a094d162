//go:build linux

package notify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// A Guard asked only for execs lets opens through with no event; SetEvents asking for opens
// again has every open after it decided (the first one: no window), and an exec then raises
// both events; asked for execs alone again, opens go undecided again. Kinds outside Events,
// no kind, and read kinds left unasked are refused.
func TestGuardSetEvents(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		secret, tool := filepath.Join(dir, "secret"), filepath.Join(dir, "tool")
		os.WriteFile(secret, []byte("s"), 0o644)
		src, err := exec.LookPath("true")
		if err != nil {
			t.Skip(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tool, b, 0o755); err != nil {
			t.Fatal(err)
		}
		var ds decisionLog
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second,
			Events: AccessOpen | AccessExec, Ask: AccessExec, OnDecision: ds.add},
			func(ctx context.Context, r *Request) Verdict {
				if r.Kind == AccessOpen && strings.HasSuffix(r.Path(), "/secret") {
					return Deny
				}
				return Allow
			})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		// count returns the decisions of kind k on a path ending in suffix, once the tool's
		// n-th exec decision is recorded (decisions are recorded after their answers).
		count := func(k AccessKind, suffix string, execs int) int {
			t.Helper()
			n := 0
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				ds.mu.Lock()
				e := 0
				n = 0
				for _, x := range ds.list {
					if x.Request.Kind == AccessExec && strings.HasSuffix(x.Request.Path(), "/tool") {
						e++
					}
					if x.Request.Kind == k && strings.HasSuffix(x.Request.Path(), suffix) {
						n++
					}
				}
				ds.mu.Unlock()
				if e >= execs {
					time.Sleep(50 * time.Millisecond) // a decision recorded just after
					ds.mu.Lock()
					n = 0
					for _, x := range ds.list {
						if x.Request.Kind == k && strings.HasSuffix(x.Request.Path(), suffix) {
							n++
						}
					}
					ds.mu.Unlock()
					return n
				}
			}
			t.Fatalf("fewer than %d exec decisions of the tool", execs)
			return 0
		}
		run := func() {
			t.Helper()
			// Through sh, which execs the tool itself: never exec a file under a permission
			// mark from the listener's process (Go's vfork waits in a raw syscall for the
			// child's execve; a stop-the-world meanwhile freezes the listener: helper_test.go
			// in backend). It hung this test for 11 minutes once (2026-12-05).
			if out, err := exec.Command("sh", "-c", `exec "$0"`, tool).CombinedOutput(); err != nil {
				t.Fatalf("the tool: %v %s", err, out)
			}
		}
		if g.Asked() != AccessExec {
			t.Fatalf("Asked() = %v, want exec", g.Asked())
		}
		for i := 0; i < 3; i++ {
			if out, err := catFile(secret, nil); err != nil {
				t.Fatalf("opens unasked: cat secret: %v %s", err, out)
			}
		}
		run()
		if n := count(AccessOpen, "", 1); n != 0 {
			t.Errorf("opens unasked: %d open decisions, want 0", n)
		}

		if err := g.SetEvents(context.Background(), AccessOpen|AccessExec); err != nil {
			t.Fatal(err)
		}
		if out, err := catFile(secret, nil); !denied(out, err) {
			t.Errorf("the first open after SetEvents(open,exec): %v %s, want denied", err, out)
		}
		run()
		if n := count(AccessOpen, "/tool", 2); n != 1 {
			t.Errorf("opens asked: an exec gave %d open decisions of the tool, want 1", n)
		}

		if err := g.SetEvents(context.Background(), AccessExec); err != nil {
			t.Fatal(err)
		}
		if out, err := catFile(secret, nil); err != nil {
			t.Errorf("opens unasked again: cat secret: %v %s", err, out)
		}
		run()
		if n := count(AccessOpen, "/secret", 3); n != 1 {
			t.Errorf("opens unasked again: %d open decisions of secret in all, want 1 (while asked)", n)
		}

		for _, bad := range []AccessKind{0, AccessRead, AccessOpen | AccessPreAccess} {
			if err := g.SetEvents(context.Background(), bad); err == nil {
				t.Errorf("SetEvents(%v) = nil, want an error", bad)
			}
		}
	})
}

// Read kinds cannot be left unasked: the kernel decides at open whether a file's reads ask.
func TestGuardAskRefusesReadKinds(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	_, err := NewGuard(GuardConfig{Paths: []string{dir}, Events: AccessOpen | AccessRead, Ask: AccessOpen},
		func(ctx context.Context, r *Request) Verdict { return Allow })
	if err == nil || !strings.Contains(err.Error(), "cannot be left unasked") {
		t.Fatalf("NewGuard with reads unasked: %v, want a refusal", err)
	}
}
