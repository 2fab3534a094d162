package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// TestBareKindsDecideAsTheRules: a kind of access decide answers from its kind alone
// (bareKinds: no attribute state) gets the same decision — verdict, rule, errno, cache, path
// unknown, error — as the full decision with the process's real attributes, for every kind,
// under a table of policies, inline and in a handler, with and without a record of the
// access; and inline's verdict, which reads a bare kind's decision in place, is the one the
// rules give, and so are the verdicts by kind (kindVerdicts), which leave out every kind
// that is not bare. A shortcut taken for a kind some rule applies to with a condition or a
// glob but "**" (a condition on this process's uid, name or parent that holds, a deny of a
// path) decides differently, and fails here.
func TestBareKindsDecideAsTheRules(t *testing.T) {
	uid, comm := os.Getuid(), "fsnotifyd.test"
	if b, err := os.ReadFile("/proc/self/comm"); err == nil {
		comm = strings.TrimSpace(string(b))
	}
	policies := []struct {
		name, text string
		bare       notify.AccessKind // the kinds decided bare without a record
	}{
		{"allow-all", "", notify.AccessOpen | notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
		{"deny-all", "default deny", notify.AccessOpen | notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
		{"cache", "allow ** cache", notify.AccessOpen | notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
		{"exec allowlist", "allow exec ** trusted=yes\ndeny exec **", notify.AccessOpen | notify.AccessRead | notify.AccessPreAccess},
		{"exec allowlist, default deny", "default deny\nallow open **\nallow exec ** trusted=yes\ndeny exec **", notify.AccessOpen | notify.AccessRead | notify.AccessPreAccess},
		{"deny opens by uid", fmt.Sprintf("deny open ** uid=%d", uid), notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
		{"deny all by uid", fmt.Sprintf("deny ** uid=%d", uid), 0},
		{"allow by comm, default deny", "default deny\nallow ** comm=" + comm, 0},
		{"deny by parent", fmt.Sprintf("deny open ** ppid=%d", os.Getppid()), notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
		{"deny a path", "deny open,exec /secret/**", notify.AccessRead | notify.AccessPreAccess},
		{"errno", "deny pre_access ** errno=EIO", notify.AccessOpen | notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
		{"deny ** then allow", "deny exec **\nallow open ** cache", notify.AccessOpen | notify.AccessRead | notify.AccessExec | notify.AccessPreAccess},
	}
	kinds := []notify.AccessKind{notify.AccessOpen, notify.AccessRead, notify.AccessExec, notify.AccessPreAccess}
	for _, pc := range policies {
		pol, err := policy.Parse(pc.name, strings.NewReader(pc.text))
		if err != nil {
			t.Fatalf("%s: %v", pc.name, err)
		}
		for _, recorded := range []bool{false, true} {
			g := &guardRun{report: recorded}
			st := &guardState{pol: pol, pathKinds: pathKinds(pol, false), bareKinds: bareKinds(pol, recorded)}
			st.bare = bareDecisions(pol, st.bareKinds)
			want := pc.bare
			if recorded {
				want = 0
			}
			if st.bareKinds != want {
				t.Errorf("%s, recorded %v: bare kinds %v, want %v", pc.name, recorded, st.bareKinds, want)
			}
			full := *st
			full.bareKinds = 0
			for _, k := range kinds {
				for _, mode := range []readMode{readInline, readHandler, readLate} {
					decide := func(st *guardState) policy.Decision {
						r := &notify.Request{Kind: k, Pid: os.Getpid()}
						d, _ := g.decide(context.Background(), st, r, mode)
						return d
					}
					got, exp := decide(st), decide(&full)
					if got.Verdict != exp.Verdict || got.Rule != exp.Rule || got.Errno != exp.Errno ||
						got.Cache != exp.Cache || got.PathUnknown != exp.PathUnknown ||
						got.AncestryIncomplete != exp.AncestryIncomplete || fmt.Sprint(got.Err) != fmt.Sprint(exp.Err) {
						t.Errorf("%s, %v, mode %v, recorded %v: decided %+v from the kind alone, %+v by the rules", pc.name, k, mode, recorded, got, exp)
					}
				}
				// inline reads a bare kind's decision in place (not through decide).
				inline := func(st *guardState) (notify.Verdict, bool) {
					g.state.Store(st)
					return g.inlineFunc()(&notify.Request{Kind: k, Pid: os.Getpid()})
				}
				gotV, gotOK := inline(st)
				expV, expOK := inline(&full)
				if gotV != expV || gotOK != expOK {
					t.Errorf("%s, %v, recorded %v: inline verdict %v (%v) from the kind alone, %v (%v) by the rules", pc.name, k, recorded, gotV, gotOK, expV, expOK)
				}
				// The verdicts by kind, given before any Request is built, answer a bare kind
				// as inline answers every Request of that kind (with a scanner: only where a
				// rule decided), and leave every other kind to inline.
				for _, execCmd := range []string{"", "/bin/true"} {
					g.execCmd = execCmd
					g.state.Store(&full)
					expV, expOK := g.inlineFunc()(&notify.Request{Kind: k, Pid: os.Getpid()})
					kindV, kindOK := g.kindVerdicts(st).Get(k)
					wantOK := st.bareKinds&k != 0 && expOK
					if kindOK != wantOK || kindOK && kindV != expV {
						t.Errorf("%s, %v, recorded %v, exec %q: by kind %v (%v), want %v (%v); inline by the rules %v (%v)", pc.name, k, recorded, execCmd, kindV, kindOK, expV, wantOK, expV, expOK)
					}
				}
				g.execCmd = ""
			}
		}
	}
}
