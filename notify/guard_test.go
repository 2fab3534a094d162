//go:build linux

package notify

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestDenyErrnoOutsidePreContentIsPlainDeny: a Guard that is not pre-content and answers
// DenyErrno(EIO) — from its Handler or its Inline policy, embedded or through the daemon, with
// a deadline or none — denies the open at once with EPERM, and OnDecision is told the plain
// deny it was. Through the daemon it used to wait out the deadline and then be allowed (or
// hang forever without one).
func TestDenyErrnoOutsidePreContentIsPlainDeny(t *testing.T) {
	testenv.RequireRoot(t)
	for _, where := range []string{"embedded", "daemon"} {
		for _, path := range []string{"handler", "inline"} {
			for _, deadline := range []time.Duration{5 * time.Second, 0} {
				t.Run(where+"/"+path+"/deadline="+deadline.String(), func(t *testing.T) {
					testDenyErrnoPlain(t, where == "daemon", path == "inline", deadline)
				})
			}
		}
	}
}

func testDenyErrnoPlain(t *testing.T, viaDaemon, inline bool, deadline time.Duration) {
	dir := testenv.Tmpfs(t)
	if err := os.WriteFile(dir+"/f.bad", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	decide := func(r *Request) Verdict {
		if strings.HasSuffix(r.Path(), ".bad") {
			return DenyErrno(syscall.EIO)
		}
		return Allow
	}
	var mu sync.Mutex
	var decisions []string
	cfg := GuardConfig{Paths: []string{dir}, Deadline: deadline, OnDecision: func(d Decision) {
		mu.Lock()
		decisions = append(decisions, d.Verdict.String())
		mu.Unlock()
	}}
	if viaDaemon {
		cfg.Daemon = startDaemon(t)
	}
	var h Handler
	if inline {
		cfg.Inline = func(r *Request) (Verdict, bool) { return decide(r), true }
	} else {
		h = func(_ context.Context, r *Request) Verdict { return decide(r) }
	}
	g, err := NewGuard(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // then SIGKILL
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "cat", dir+"/f.bad").CombinedOutput()
	took := time.Since(start)
	if err == nil || !strings.Contains(string(out), "Operation not permitted") || took > time.Second {
		t.Fatalf("cat of a file denied with EIO by a content guard: %v %q after %v, want EPERM within 1s", err, out, took)
	}
	deadlineAt := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(decisions, ",")
		mu.Unlock()
		if got == "deny" {
			break
		}
		if time.Now().After(deadlineAt) {
			t.Fatalf("OnDecision saw %q, want one plain deny", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
