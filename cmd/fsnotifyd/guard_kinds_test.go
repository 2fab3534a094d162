//go:build linux

package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// fatalfer is what these helpers need of a *testing.T or a *rapid.T.
type fatalfer interface {
	Fatalf(format string, args ...any)
}

var allKinds = []notify.AccessKind{notify.AccessOpen, notify.AccessRead, notify.AccessExec, notify.AccessPreAccess}

// kindsGuard is a guardRun as runGuard makes it for the flags given, without a Guard: its
// verdicts by kind go to publish (Guard.SetKindVerdicts's place), if set.
func kindsGuard(t fatalfer, permissive, cache bool, execCmd string, publish func(notify.KindVerdicts)) *guardRun {
	flagPol, err := policy.FromFlags(nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return &guardRun{permissive: permissive, cache: cache, execCmd: execCmd, onError: notify.Deny,
		flagPol: flagPol, verifier: trust.NewVerifier(trust.VerifierConfig{}), publishKinds: publish}
}

// apply builds the state of the policy text and stores it as a reload does (storeLocked).
func apply(t fatalfer, g *guardRun, text string) *guardState {
	st, err := applyErr(g, text)
	if err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return st
}

func applyErr(g *guardRun, text string) (*guardState, error) {
	filePol, err := policy.Parse("test.rules", strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	st, err := g.buildStateLocked(filePol, "test.rules", nil)
	if err == nil {
		err = g.storeLocked(st)
	}
	return st, err
}

// checkKindVerdicts checks st's verdicts by kind against inline deciding by the rules with
// every attribute (no kind taken bare): a kind they hold gets inline's verdict for a Request
// of it, and they hold every bare kind inline decides (with no error, no scanner to ask).
func checkKindVerdicts(t fatalfer, g *guardRun, st *guardState, what string) {
	full := *st
	full.bareKinds = 0
	cur := g.state.Load()
	g.state.Store(&full)
	defer g.state.Store(cur)
	for _, k := range allKinds {
		want, wantOK := g.inlineFunc()(&notify.Request{Kind: k, Pid: os.Getpid()})
		got, ok := st.byKind.Get(k)
		switch {
		case ok && (!wantOK || got != want):
			t.Fatalf("%s, %v: by kind %v, inline by the rules %v (%v)", what, k, got, want, wantOK)
		case ok && st.bareKinds&k == 0:
			t.Fatalf("%s, %v: by kind %v for a kind that is not bare", what, k, got)
		case !ok && wantOK && st.bareKinds&k != 0 && st.bare[bareIndex(k)].Err == nil:
			t.Fatalf("%s, %v: not by kind, though bare and decided inline (%v)", what, k, want)
		}
	}
}

// TestKindVerdictsAreInline: for a table of policies × --permissive × --cache × --exec, the
// verdicts by kind a state publishes (kindVerdicts, built with the state) are, kind by kind,
// inline's verdicts by the rules, and cover every bare kind inline decides. It fails when the
// verdicts by kind skip --permissive, the cache bit or an errno, take a kind that is not
// bare, or answer what the scanner decides.
func TestKindVerdictsAreInline(t *testing.T) {
	policies := []string{
		"", "default deny", "allow ** cache", "deny exec **\nallow open ** cache",
		"allow exec ** trusted=yes\ndeny exec **", "deny pre_access ** errno=EIO", "deny open ** errno=EIO",
		fmt.Sprintf("deny open ** uid=%d", os.Getuid()), "deny open,exec /secret/**", "default deny\nallow open **",
		"allow open ** cache\ndefault deny",
	}
	for _, text := range policies {
		for _, permissive := range []bool{false, true} {
			for _, cache := range []bool{false, true} {
				for _, execCmd := range []string{"", "/bin/true"} {
					g := kindsGuard(t, permissive, cache, execCmd, nil)
					st := apply(t, g, text)
					checkKindVerdicts(t, g, st, fmt.Sprintf("%q, permissive %v, cache %v, exec %q", text, permissive, cache, execCmd))
				}
			}
		}
	}
}

// policyText draws a policy: rules of either verdict, for some kinds or all, on "**" or a
// path, with or without conditions (one that holds for this process, one that does not),
// errno= or cache, and a default.
func policyText(t *rapid.T) string {
	var lines []string
	for range rapid.IntRange(0, 4).Draw(t, "rules") {
		deny := rapid.Bool().Draw(t, "deny")
		line := "allow"
		if deny {
			line = "deny"
		}
		var ks []string
		for _, k := range []string{"open", "access", "exec", "pre_access"} {
			if rapid.IntRange(0, 2).Draw(t, "kind") == 0 {
				ks = append(ks, k)
			}
		}
		if len(ks) > 0 {
			line += " " + strings.Join(ks, ",")
		}
		line += " " + rapid.SampledFrom([]string{"**", "**", "/secret/**"}).Draw(t, "glob")
		switch rapid.IntRange(0, 3).Draw(t, "cond") {
		case 1:
			line += fmt.Sprintf(" uid=%d", os.Getuid())
		case 2:
			line += " uid=54321"
		}
		if deny && rapid.Bool().Draw(t, "errno") {
			line += " errno=" + rapid.SampledFrom([]string{"EIO", "EBUSY", "EPERM"}).Draw(t, "errname")
		}
		if !deny && rapid.Bool().Draw(t, "cache") {
			line += " cache"
		}
		lines = append(lines, line)
	}
	switch rapid.IntRange(0, 2).Draw(t, "default") {
	case 1:
		lines = append(lines, "default deny")
	case 2:
		lines = append(lines, "default allow")
	}
	return strings.Join(lines, "\n")
}

// TestKindVerdictsModel: for random policies and flags, reloaded one after another, the
// verdicts by kind published after each reload are the current state's, and are inline's
// verdicts by the rules (checkKindVerdicts); and they are published only while the state
// they were built with is current: none is published while a reload stores its state
// (publishInOrder). It fails on verdicts by kind that differ from inline's for any policy it
// draws, and on a reload that publishes them out of order.
func TestKindVerdictsModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var g *guardRun
		pub := publishInOrder(rt, func() *guardRun { return g })
		g = kindsGuard(rt, rapid.Bool().Draw(rt, "permissive"), rapid.Bool().Draw(rt, "cache"),
			rapid.SampledFrom([]string{"", "/bin/true"}).Draw(rt, "exec"), pub.publish)
		for i := range rapid.IntRange(1, 4).Draw(rt, "reloads") {
			text := policyText(rt)
			if _, err := policy.Parse("test.rules", strings.NewReader(text)); err != nil {
				rt.Fatalf("the generator drew a policy that does not parse: %q: %v", text, err)
			}
			st := apply(rt, g, text)
			if got := pub.current(); got != st.byKind {
				rt.Fatalf("reload %d: published %+v, the state's %+v", i, got, st.byKind)
			}
			checkKindVerdicts(rt, g, st, fmt.Sprintf("reload %d, %q", i, text))
		}
	})
}

// publisher stands in for Guard.SetKindVerdicts and checks, at each call, that the order of
// publications and state stores is the one storeLocked promises: verdicts by kind published
// are the current state's, and the state changes only while none are published.
type publisher struct {
	t     fatalfer
	g     func() *guardRun
	mu    sync.Mutex
	kv    notify.KindVerdicts
	under *guardState // the state current when kv was published (kv not empty)
}

func publishInOrder(t fatalfer, g func() *guardRun) *publisher { return &publisher{t: t, g: g} }

func (p *publisher) publish(kv notify.KindVerdicts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.g().state.Load()
	if p.kv != (notify.KindVerdicts{}) && cur != p.under {
		p.t.Fatalf("the state changed while verdicts by kind of another were published")
	}
	if kv != (notify.KindVerdicts{}) && (cur == nil || cur.byKind != kv) {
		p.t.Fatalf("verdicts by kind published that are not the current state's")
	}
	p.kv, p.under = kv, cur
}

func (p *publisher) current() notify.KindVerdicts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kv
}

// TestReloadRaceKindVerdicts: while reloads alternate between a policy that allows every
// access with the cache bit and one that denies every access, an access that reads the
// published verdicts by kind between two loads of the state that see the same state gets
// that state's verdicts or none (the rules decide it), never the other's — so never a cached
// allow once a deny-all state is stored — and whatever it reads is one state's verdicts
// whole. It fails when a reload stores the state before it withdraws the old verdicts (a
// window in which an access gets the old state's cached allow under the new state), or
// publishes the new ones before it stores the state.
func TestReloadRaceKindVerdicts(t *testing.T) {
	var pub atomic.Pointer[notify.KindVerdicts]
	pub.Store(new(notify.KindVerdicts))
	g := kindsGuard(t, false, false, "", func(kv notify.KindVerdicts) { pub.Store(&kv) })
	allowCache, denyAll := apply(t, g, "allow ** cache").byKind, apply(t, g, "default deny").byKind
	if v, ok := allowCache.Get(notify.AccessOpen); !ok || v != notify.AllowAndCache {
		t.Fatalf("allow ** cache: by kind %v %v, want a cached allow", v, ok)
	}
	if v, ok := denyAll.Get(notify.AccessOpen); !ok || v != notify.Deny {
		t.Fatalf("default deny: by kind %v %v, want a deny", v, ok)
	}
	stores := 20000
	if testing.Short() {
		stores = 2000
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for i := range stores {
			if _, err := applyErr(g, []string{"allow ** cache", "default deny"}[i%2]); err != nil { // a new state each time
				t.Error(err)
				return
			}
		}
	}()
	var reads, same, stale, mixed int
	for !done.Load() || reads == 0 {
		s1 := g.state.Load()
		kv := *pub.Load()
		s2 := g.state.Load()
		reads++
		if kv != (notify.KindVerdicts{}) && kv != allowCache && kv != denyAll {
			mixed++
		}
		if s1 == s2 { // no state stored between (each store is a new state)
			same++
			if kv != (notify.KindVerdicts{}) && kv != s1.byKind {
				stale++
			}
		}
		if reads%64 == 0 {
			runtime.Gosched()
		}
	}
	wg.Wait()
	if stale != 0 || mixed != 0 {
		t.Errorf("%d of %d reads got the verdicts by kind of a state that was not current, %d a mix", stale, same, mixed)
	}
	t.Logf("%d reads, %d between loads of one state", reads, same)
}
