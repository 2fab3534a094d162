//go:build linux

package notify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// With ReuseRequests, each inline decision gets a Request that is the access's own: nothing
// of the previous one (Note, Err, path, process) is left in a reused Request, Inline's
// verdict applies to its own access, OnDecision sees the Request Inline saw, and a request
// Inline passes on is decided by the Handler on a Request of its own. Requests are reused.
func TestGuardReuseRequests(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.PublicTmpfs(t) // nobody opens the files
		var names []string
		for i := 0; i < 20; i++ {
			for _, k := range []string{"allow", "deny", "pass"} {
				n := fmt.Sprintf("%s%d", k, i)
				os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
				names = append(names, n)
			}
		}
		type decision struct{ path, note, by string }
		var (
			mu        sync.Mutex
			stale     []string
			decisions = map[string]decision{}
			seen      = map[*Request]int{}
		)
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second,
			ReuseRequests: true,
			Inline: func(r *Request) (Verdict, bool) {
				name := filepath.Base(r.Path())
				mu.Lock()
				seen[r]++
				if r.Note != "" || r.Err != nil {
					stale = append(stale, fmt.Sprintf("%s: Note %q Err %v", name, r.Note, r.Err))
				}
				mu.Unlock()
				if strings.HasPrefix(name, "pass") {
					return Verdict{}, false
				}
				r.Note = name
				if strings.HasPrefix(name, "deny") {
					r.Err = os.ErrPermission // a handler's own note, to be seen by OnDecision only
					return Deny, true
				}
				return Allow, true
			},
			OnDecision: func(d Decision) {
				// Copies only: the Request is reused once this returns.
				mu.Lock()
				decisions[filepath.Base(d.Request.Path())] = decision{path: d.Request.Path(), note: d.Request.Note, by: d.By}
				mu.Unlock()
			}},
			func(ctx context.Context, r *Request) Verdict {
				if r.Note != "" || r.Err != nil {
					mu.Lock()
					stale = append(stale, fmt.Sprintf("handler %s: Note %q Err %v", r.Path(), r.Note, r.Err))
					mu.Unlock()
				}
				r.Note = "handler"
				return Allow
			})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		for _, n := range names {
			out, err := catFile(filepath.Join(dir, n), testenv.Nobody)
			if want := strings.HasPrefix(n, "deny"); denied(out, err) != want {
				t.Errorf("cat %s as nobody: %v %q; want denied=%v", n, err, out, want)
			}
		}
		g.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(stale) > 0 {
			t.Errorf("%d Requests carried a previous access's state, e.g. %s", len(stale), stale[0])
		}
		for _, n := range names {
			d, ok := decisions[n]
			want := decision{path: filepath.Join(dir, n), note: n, by: "inline"}
			if strings.HasPrefix(n, "pass") {
				want.note, want.by = "handler", "handler"
			}
			if !ok || d != want {
				t.Errorf("decision on %s: %+v (recorded %v), want %+v", n, d, ok, want)
			}
		}
		reused := 0
		for _, c := range seen {
			reused += c - 1
		}
		if reused == 0 {
			t.Errorf("no Request reused over %d inline decisions", len(names))
		}
	})
}
