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

// A Request kept past its decision (no ReuseRequests) and asked for its path only later never
// gets another access's path: the event's descriptor is closed by then, and its number is
// likely the next event's (a directory's path is read from its descriptor unchecked). Asked
// during the next access's decision, it is the directory's own path or unknown ("").
func TestGuardKeptRequestPathAfterRelease(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	byIno := map[uint64]string{}
	var names []string
	for i := 0; i < 10; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		byIno[fi.Sys().(*syscall.Stat_t).Ino] = d
		names = append(names, d)
	}
	var (
		mu    sync.Mutex
		prev  *Request
		wrong []string
		asked int
	)
	g, err := NewGuard(GuardConfig{Paths: []string{dir}, Deadline: 10 * time.Second,
		Inline: func(r *Request) (Verdict, bool) { return Allow, true },
		OnDecision: func(d Decision) {
			mu.Lock()
			defer mu.Unlock()
			_, ino, _ := d.Request.Inode()
			if byIno[ino] == "" {
				return // the guarded root's own open
			}
			if prev != nil {
				_, pino, _ := prev.Inode()
				asked++
				if p := prev.Path(); p != "" && p != byIno[pino] {
					wrong = append(wrong, fmt.Sprintf("the Request of %s says %s", byIno[pino], p))
				}
			}
			prev = d.Request // kept, its path never asked while it was decided
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, d := range names {
		if out, err := exec.Command("ls", d).CombinedOutput(); err != nil {
			t.Fatalf("ls %s: %v %s", d, err, out)
		}
	}
	g.Close()
	mu.Lock()
	defer mu.Unlock()
	if asked < len(names)-1 {
		t.Errorf("only %d kept Requests asked", asked)
	}
	if len(wrong) > 0 {
		t.Errorf("%d kept Requests named another directory, e.g. %s", len(wrong), wrong[0])
	}
}
