//go:build linux

package notify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/workslot"
)

// With OnLate, a request that no handler has answered by its late point (Guard.LateMargin
// before the deadline: twice as long through the daemon) gets OnLate's verdict, before the deadline, and never OnTimeout's: "slow",
// whose handler runs until its ctx ends (a hash of a huge file), and "behind", which waits
// for the only handler while "hog" holds it past behind's late point. hog's handler returns
// only after hog's deadline (a handler that ignores its ctx): hog gets OnTimeout, the
// backstop. Without OnLate (the control), slow and behind get OnTimeout too, at the deadline
// (slow's by its handler, whose ctx ends there, or by the engine's deadline: whichever is first).
// Both modes: through the daemon the late point runs from the daemon's read of the event.
func TestGuardOnLateDecidesWhatNoHandlerDecidedInTime(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		for _, withLate := range []bool{true, false} {
			name := "OnLate"
			if !withLate {
				name = "without"
			}
			t.Run(name, func(t *testing.T) {
				const deadline = 3 * time.Second
				margin := LateMargin(deadline)
				if daemon != "" {
					margin *= 2 // the answer's trip to the daemon
				}
				late := deadline - margin
				dir := testenv.Tmpfs(t)
				for _, n := range []string{"hog", "behind", "slow"} {
					if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				var ds decisionLog
				var lates atomic.Int32
				cfg := GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: deadline, OnTimeout: Allow,
					Concurrency: 1, OnDecision: ds.add}
				if withLate {
					cfg.OnLate = func(r *Request) Verdict {
						lates.Add(1)
						return Deny
					}
				}
				hogging := make(chan struct{})
				g, err := NewGuard(cfg, func(ctx context.Context, r *Request) Verdict {
					switch {
					case strings.HasSuffix(r.Path(), "/hog"):
						close(hogging)
						<-ctx.Done()
						time.Sleep(deadline - late + 500*time.Millisecond) // past hog's deadline
					case strings.HasSuffix(r.Path(), "/slow"):
						<-ctx.Done()
					}
					return Allow
				})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				if g.LateMargin() != margin {
					t.Fatalf("LateMargin %v, want %v", g.LateMargin(), margin)
				}

				type result struct {
					denied bool
					took   time.Duration
				}
				open := func(n string) result {
					t0 := time.Now()
					out, err := catFile(filepath.Join(dir, n), nil)
					return result{denied(out, err), time.Since(t0)}
				}
				hog := make(chan result, 1)
				go func() { hog <- open("hog") }()
				<-hogging
				behind := open("behind")
				hogRes := <-hog
				slow := open("slow")

				if hogRes.denied || hogRes.took < deadline {
					t.Errorf("hog: denied %v after %v, want OnTimeout's allow at the %v deadline", hogRes.denied, hogRes.took, deadline)
				}
				if d := ds.of(t, "/hog"); d.By != "deadline" {
					t.Errorf("hog decided by %q, want deadline", d.By)
				}
				for _, tc := range []struct {
					name string
					res  result
				}{{"behind", behind}, {"slow", slow}} {
					d := ds.of(t, "/"+tc.name)
					switch {
					case withLate && (!tc.res.denied || tc.res.took < late-50*time.Millisecond || tc.res.took >= deadline || d.By != "late" || !d.Verdict.Denied()):
						t.Errorf("%s: denied %v after %v, by %q; want OnLate's deny, by late, between %v and the %v deadline", tc.name, tc.res.denied, tc.res.took, d.By, late, deadline)
					case !withLate && (tc.res.denied || tc.res.took < deadline-50*time.Millisecond || d.By == "late"):
						// slow's OnTimeout may be the handler's answer (its ctx ends a hair
						// before the engine's deadline) or the engine's: either is "deadline".
						t.Errorf("%s: denied %v after %v, by %q; want OnTimeout's allow at the %v deadline", tc.name, tc.res.denied, tc.res.took, d.By, deadline)
					}
				}
				if want := map[bool]int32{true: 3, false: 0}[withLate]; lates.Load() != want {
					// hog's OnLate ran too, after its deadline: its answer was too late.
					t.Errorf("OnLate ran %d times, want %d", lates.Load(), want)
				}
				if want := map[bool]uint64{true: 2, false: 0}[withLate]; g.Stats().Late != want {
					t.Errorf("Stats().Late = %d, want %d (behind and slow; hog's answer was too late)", g.Stats().Late, want)
				}
			})
		}
	})
}

// A handler that gives its place back (workslot.Release, as the trust Verifier does before it
// waits for a hash slot) frees it for the next request at once: with one handler, "next" is
// decided by the handler while "waiter" still waits, not at its late point. Both modes.
func TestGuardHandlerGivesItsPlaceBack(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		const deadline = 3 * time.Second
		dir := testenv.Tmpfs(t)
		for _, n := range []string{"waiter", "next"} {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var ds decisionLog
		waiting := make(chan struct{})
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: deadline, Concurrency: 1,
			OnDecision: ds.add, OnLate: func(r *Request) Verdict { return Deny }},
			func(ctx context.Context, r *Request) Verdict {
				if strings.HasSuffix(r.Path(), "/waiter") {
					workslot.Release(ctx)
					workslot.Release(ctx) // twice: the place is given back once
					close(waiting)
					<-ctx.Done()
				}
				return Allow
			})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		waiter := make(chan bool, 1)
		go func() {
			out, err := catFile(filepath.Join(dir, "waiter"), nil)
			waiter <- denied(out, err)
		}()
		<-waiting
		t0 := time.Now()
		out, err := catFile(filepath.Join(dir, "next"), nil)
		took := time.Since(t0)
		if denied(out, err) || err != nil || took > time.Second {
			t.Errorf("next: %v %s after %v, want allowed by the handler at once (the waiter gave its place back)", err, out, took)
		}
		if d := ds.of(t, "/next"); d.By != "handler" {
			t.Errorf("next decided by %q, want handler", d.By)
		}
		if !<-waiter {
			t.Errorf("waiter allowed, want OnLate's deny at its late point")
		}
		if d := ds.of(t, "/waiter"); d.By != "late" {
			t.Errorf("waiter decided by %q, want late", d.By)
		}
		// The place given back is not taken twice: with one handler, two more requests are
		// each decided by it.
		for range 2 {
			if out, err := catFile(filepath.Join(dir, "next"), nil); err != nil {
				t.Errorf("after: %v %s", err, out)
			}
		}
	})
}
