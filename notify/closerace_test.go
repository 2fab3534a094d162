//go:build linux

package notify

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestGuardCloseRightAfterHandlerAnswer: through the daemon, on the permission ring (NoFiles,
// as guard --daemon runs its policies that need no file) and on the socket, a handler's allow that let the open through is recorded as the
// handler's even when Close follows the open at once: the handler's RespondWait, on the
// socket, gets the daemon's acknowledgement before Close ends the connection. (CI once
// recorded it "closed", TestGuardReuseRequests/daemon: the client's Close cut the reply.)
// OnClose is deny, so a decision recorded "closed" would also claim a deny the open did not get.
func TestGuardCloseRightAfterHandlerAnswer(t *testing.T) {
	sock := startDaemon(t)
	dir := testenv.PublicTmpfs(t)
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprintf("ring=%v", ring), func(t *testing.T) { closeRightAfterHandlerAnswer(t, sock, dir, file, ring, rounds) })
	}
}

func closeRightAfterHandlerAnswer(t *testing.T, sock, dir, file string, ring bool, rounds int) {
	for i := 0; i < rounds; i++ {
		var (
			mu  sync.Mutex
			got []Decision
		)
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 10 * time.Second, OnClose: Deny, NoFiles: ring,
			OnDecision: func(d Decision) { mu.Lock(); got = append(got, d); mu.Unlock() }},
			func(ctx context.Context, r *Request) Verdict { return Allow })
		if err != nil {
			t.Fatal(err)
		}
		if w := g.src.(interface{ Welcome() client.Welcome }).Welcome(); w.Ring != ring {
			g.Close()
			t.Fatalf("round %d: Welcome.Ring %v, want %v", i, w.Ring, ring)
		}
		out, cerr := catFile(file, testenv.Nobody)
		g.Close()
		if cerr != nil {
			t.Fatalf("round %d: cat as nobody: %v %q; the handler allows", i, cerr, out)
		}
		mu.Lock()
		for _, d := range got {
			if d.By != "handler" || d.Verdict != Allow {
				t.Errorf("round %d: decision on %s by %q (%v), want the handler's allow: the open succeeded", i, d.Request.Path(), d.By, d.Verdict)
			}
		}
		if len(got) == 0 {
			t.Errorf("round %d: no decision recorded", i)
		}
		mu.Unlock()
	}
}

// TestGuardRingInlineAndHandlerAnswersMix: through the daemon on the permission ring,
// Inline's answers go up the ring while the handler's go over the socket (RespondWait), from
// several openers at once: every open gets the verdict of whoever decided it (allow* allowed
// inline, deny* denied inline, pass* allowed by the handler) and every decision is recorded as
// its decider's — none "closed" or "deadline" while the Guard runs.
func TestGuardRingInlineAndHandlerAnswersMix(t *testing.T) {
	sock := startDaemon(t)
	dir := testenv.PublicTmpfs(t)
	var names []string
	for i := 0; i < 10; i++ {
		for _, k := range []string{"allow", "deny", "pass"} {
			n := fmt.Sprintf("%s%d", k, i)
			if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
	}
	var (
		mu  sync.Mutex
		bad []string
		by  = map[string]int{}
	)
	g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: sock, Deadline: 10 * time.Second, NoFiles: true,
		OnTimeout: Deny, OnClose: Deny,
		Inline: func(r *Request) (Verdict, bool) {
			switch n := filepath.Base(r.Path()); {
			case strings.HasPrefix(n, "allow"):
				return Allow, true
			case strings.HasPrefix(n, "deny"):
				return Deny, true
			}
			return Verdict{}, false
		},
		OnDecision: func(d Decision) {
			n := filepath.Base(d.Request.Path())
			want := "inline"
			if strings.HasPrefix(n, "pass") {
				want = "handler"
			}
			mu.Lock()
			by[d.By]++
			if d.By != want && n != filepath.Base(dir) {
				bad = append(bad, fmt.Sprintf("%s by %s", n, d.By))
			}
			mu.Unlock()
		}},
		func(ctx context.Context, r *Request) Verdict { return Allow })
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if w := g.src.(interface{ Welcome() client.Welcome }).Welcome(); !w.Ring {
		t.Fatalf("the guard is not on the permission ring (Welcome %+v)", w)
	}
	const openers, rounds = 4, 5
	// Each opener opens every file rounds times, in its own order, and prints the ones it was
	// denied.
	script := `for r in $(seq ` + fmt.Sprint(rounds) + `); do for f in "$@"; do (exec 3<"$f") 2>/dev/null || echo "$f"; done; done`
	var wg sync.WaitGroup
	for o := 0; o < openers; o++ {
		order := append([]string(nil), names...)
		for i := range order { // a rotation per opener: they meet on different files
			order[i] = filepath.Join(dir, names[(i+o*7)%len(names)])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, order...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("opener %d: %v", o, err)
			}
			denied := map[string]int{}
			for _, f := range strings.Fields(string(out)) {
				denied[filepath.Base(f)]++
			}
			for _, n := range names {
				if want := strings.HasPrefix(n, "deny"); (denied[n] == rounds) != want || (denied[n] != 0 && !want) {
					t.Errorf("opener %d: %s denied %d of %d times, want denied=%v every time", o, n, denied[n], rounds, want)
				}
			}
		}()
	}
	wg.Wait()
	// The handler's decisions are recorded once its Respond returned, which may be after the
	// opener it answered has gone on: Close waits for every decide, so the counts are whole.
	g.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d decisions recorded against their decider, e.g. %v", len(bad), bad[:min(len(bad), 5)])
	}
	if want := openers * rounds * len(names) * 2 / 3; by["inline"] < want || by["handler"] < want/2 {
		t.Errorf("decisions %v, want at least %d inline and %d by the handler", by, want, want/2)
	}
	t.Logf("decisions: %v", by)
}
