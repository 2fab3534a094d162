//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// BenchmarkGuardInline measures the inline decision layers of the embedded guard's
// per-permission-event path: the source's Handler (what the engine's Group.handle calls) with
// an open's permission Delivery, for a Guard configured as runGuard configures `fsnotifyd
// guard DIR` (allow-all: no rules; deny-all: --deny '**'), on a real backend (root) with a
// tmpfs mark and no kernel event. Hot: calls back to back (ns/op). Cold: 6 MiB (beyond the
// 2 MiB L2 per core) written between calls, so that the call finds its lines in L3 or memory
// as the listener does after the kernel's read(2) and the rest of the path; ns/call is the
// call alone (ns/op includes the writes).
func BenchmarkGuardInline(b *testing.B) {
	testenv.RequireRoot(b)
	for _, pc := range []struct{ name, deny string }{{"allowall", ""}, {"denyall", "**"}} {
		for _, cold := range []bool{false, true} {
			name := pc.name + "/hot"
			if cold {
				name = pc.name + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				h, stop := benchGuardHandler(b, pc.deny)
				defer stop()
				ev := &engine.Event{Mask: engine.OpenPerm}
				d := engine.Delivery{Event: ev, Mask: engine.OpenPerm}
				want := engine.Allow
				if pc.deny != "" {
					want = engine.Deny
				}
				if r, ok := h(d); !ok || r.Verdict != want {
					b.Fatalf("the handler answered %+v %v, want %v", r, ok, want)
				}
				var buf []byte
				if cold {
					buf = make([]byte, 6<<20)
				}
				b.ResetTimer()
				if !cold {
					for i := 0; i < b.N; i++ {
						if r, ok := h(d); !ok || r.Verdict != want {
							b.Fatalf("the handler answered %+v %v", r, ok)
						}
					}
					return
				}
				// Each call timed alone (time.Now: a vDSO clock read, the same in every
				// version), not with StopTimer, which stops the world to read memstats.
				var total time.Duration
				for i := 0; i < b.N; i++ {
					for j := 0; j < len(buf); j += 64 {
						buf[j]++
					}
					t0 := time.Now()
					r, ok := h(d)
					total += time.Since(t0)
					if !ok || r.Verdict != want {
						b.Fatalf("the handler answered %+v %v", r, ok)
					}
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/call")
			})
		}
	}
}

// benchGuardHandler starts a guard as runGuard does for `fsnotifyd guard [--deny GLOB] DIR`
// (no audit, no scanner, no policy file) and returns its source's engine Handler.
func benchGuardHandler(b *testing.B, deny string) (func(engine.Delivery) (engine.Response, bool), func()) {
	dir := testenv.Tmpfs(b)
	var flags []policy.Flag
	if deny != "" {
		fv := policy.FlagValue(&flags, engine.Deny)
		if err := fv.Set(deny); err != nil {
			b.Fatal(err)
		}
	}
	flagPol, err := policy.FromFlags(flags)
	if err != nil {
		b.Fatal(err)
	}
	g := &guardRun{kinds: notify.AccessOpen, onError: notify.Deny, flagPol: flagPol, deadline: 5e9,
		paths: []string{dir}, verifier: trust.NewVerifier(trust.VerifierConfig{}), embedded: true}
	g.applyMu.Lock()
	st, err := g.buildStateLocked(nil, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	g.state.Store(st)
	g.applyMu.Unlock()
	be, err := backend.New(backend.Options{Mode: backend.ModeAuto, ReusePermEvents: true})
	if err != nil {
		b.Fatal(err)
	}
	g.backend = be
	cfg := notify.GuardConfig{Paths: []string{dir}, Events: notify.AccessOpen, Deadline: g.deadline,
		OnTimeout: notify.Allow, OnClose: notify.Allow, Cache: true, Inline: g.inlineFunc(),
		ReuseRequests: true, Backend: be}
	g.applyMu.Lock()
	cfg.Ask = g.askKinds(g.state.Load().pol)
	benchConfig(g, &cfg) // what differs between versions (guard_inline_shim_test.go)
	gd, err := notify.NewGuard(cfg, g.handle)
	if err != nil {
		g.applyMu.Unlock()
		be.Close()
		b.Fatal(err)
	}
	g.guard = gd
	benchStarted(g, gd)
	g.applyMu.Unlock()
	var h func(engine.Delivery) (engine.Response, bool)
	for _, gr := range be.Engine().Groups() {
		if f := gr.Options().Handler; f != nil && strings.Contains(gr.Options().Name, "Guard") {
			h = f
		}
	}
	if h == nil {
		gd.Close()
		be.Close()
		b.Fatal("no group with a Handler")
	}
	return h, func() { gd.Close(); be.Close() }
}
