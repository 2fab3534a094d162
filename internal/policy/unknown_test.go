package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"pgregory.net/rapid"
)

// With the path unknown, a glob may or may not match: a deny rule that may match denies, an
// allow rule that may match is passed over, a glob that matches every path matches, and the
// default applies otherwise. Nothing is cacheable.
func TestDecideUnknownPath(t *testing.T) {
	bash := KnownProcess{Name: "bash", UserID: 1000}
	backup := KnownProcess{Name: "restic", UserID: 34}
	tests := []struct {
		name   string
		rules  string
		ev     engine.Mask
		proc   Process
		want   engine.Verdict
		source string
		cache  bool // with --cache
	}{
		{"deny glob may match", "deny **/*.key", engine.OpenPerm, bash, engine.Deny, "policy.rules:1", false},
		{"deny for another event does not apply", "deny exec **/*.key", engine.OpenPerm, bash, engine.Allow, "default", true},
		{"deny whose condition fails is skipped", "deny **/*.key uid=0", engine.OpenPerm, bash, engine.Allow, "default", false},
		{"deny whose condition holds", "deny **/*.key comm=bash", engine.OpenPerm, bash, engine.Deny, "policy.rules:1", false},
		{"allow first cannot allow it", "allow /srv/public/**\ndeny /srv/**", engine.OpenPerm, bash, engine.Deny, "policy.rules:2", false},
		{"allow of a glob matching every path", "allow /** uid=34\ndeny **/*.key", engine.OpenPerm, backup, engine.Allow, "policy.rules:1", false},
		{"allow of every path, condition fails", "allow /** uid=34\ndeny **/*.key", engine.OpenPerm, bash, engine.Deny, "policy.rules:2", false},
		{"** matches", "allow **\ndeny **/*.key", engine.OpenPerm, bash, engine.Allow, "policy.rules:1", true},
		{"**/* matches", "allow **/*\ndeny **/*.key", engine.OpenPerm, bash, engine.Allow, "policy.rules:1", true},
		{"/*/** may not", "allow /*/**\ndeny **/*.key", engine.OpenPerm, bash, engine.Deny, "policy.rules:2", false},
		{"/* may not", "allow /*\ndefault deny", engine.OpenPerm, bash, engine.Deny, "default", false},
		{"default deny", "default deny\nallow /usr/** cache", engine.OpenPerm, bash, engine.Deny, "default", false},
		{"default allow, only allows", "allow /srv/** uid=0", engine.OpenPerm, bash, engine.Allow, "default", true},
		{"no rules", "", engine.OpenPerm, bash, engine.Allow, "default", true},
		{"deny of every path", "deny /**", engine.OpenPerm, bash, engine.Deny, "policy.rules:1", false},
		{"deny every path, uid condition fails", "deny /** uid=0\nallow **", engine.OpenPerm, bash, engine.Allow, "policy.rules:2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			p.CacheAllows = true
			for _, req := range []Request{
				{PathUnknown: true, Event: tt.ev, Pid: 7, Proc: tt.proc},
				{Path: "", Event: tt.ev, Pid: 7, Proc: tt.proc}, // "" is unknown too
				{Path: "/srv/public/x.key", PathUnknown: true, Event: tt.ev, Pid: 7, Proc: tt.proc},
			} {
				d := p.Decide(&req)
				if d.Verdict != tt.want || d.Source() != tt.source || d.Cache != tt.cache || !d.PathUnknown {
					t.Errorf("%+v: got %v by %s (cache %v, path unknown %v); want %v by %s, cache %v",
						req, d.Verdict, d.Source(), d.Cache, d.PathUnknown, tt.want, tt.source, tt.cache)
				}
			}
		})
	}
}

func TestMatchesEveryPath(t *testing.T) {
	for pat, want := range map[string]bool{
		"**": true, "/**": true, "**/*": true, "/**/*": true, "**/**": true,
		"/*": false, "/*/**": false, "/srv/**": false, "**/*.key": false, "/*/*": false, "**/a": false,
	} {
		g := MustCompileGlob(pat)
		if g.MatchesEveryPath() != want {
			t.Errorf("%s: MatchesEveryPath %v, want %v", pat, !want, want)
		}
		if want {
			// What it claims, checked on paths of one to several components.
			for _, p := range []string{"/a", "/a/b", "/.x/y/z.key", "/q"} {
				if !g.Match(p) {
					t.Errorf("%s claims every path but does not match %q", pat, p)
				}
			}
		}
	}
}

// The unknown-path decision is sound: if it allows, every path (but "/") is allowed by the
// same policy for the same process and event; so hiding the path can never turn a deny into
// an allow.
func TestDecideUnknownPathIsSound(t *testing.T) {
	globs := []string{"**", "/**", "**/*", "**/*.key", "/srv/**", "/srv/*/x", "/*", "/srv/public/**", "/*/**"}
	conds := []string{"", "uid=0", "uid!=0", "comm=bash", "comm!=bash"}
	paths := []string{"/a", "/srv", "/srv/x", "/srv/a/x", "/srv/public/k.key", "/k.key", "/srv/a/b/c/d.key", "/usr/lib/x.so"}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 6).Draw(t, "rules")
		var b strings.Builder
		if rapid.Bool().Draw(t, "default deny") {
			b.WriteString("default deny\n")
		}
		for i := 0; i < n; i++ {
			verdict := rapid.SampledFrom([]string{"allow", "deny"}).Draw(t, "verdict")
			events := rapid.SampledFrom([]string{"*", "open", "exec"}).Draw(t, "events")
			fmt.Fprintf(&b, "%s %s %s %s\n", verdict, events, rapid.SampledFrom(globs).Draw(t, "glob"), rapid.SampledFrom(conds).Draw(t, "cond"))
		}
		p, err := Parse("p", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		proc := KnownProcess{Name: rapid.SampledFrom([]string{"bash", "cat", ""}).Draw(t, "comm"),
			UserID: int64(rapid.SampledFrom([]int{0, 1000, -1}).Draw(t, "uid"))}
		ev := rapid.SampledFrom([]engine.Mask{engine.OpenPerm, engine.OpenExecPerm}).Draw(t, "event")
		p.CacheAllows = rapid.Bool().Draw(t, "cache")
		u := p.Decide(&Request{PathUnknown: true, Event: ev, Pid: 5, Proc: proc})
		if u.Verdict != engine.Allow {
			return
		}
		for _, path := range paths {
			if d := p.Decide(&Request{Path: path, Event: ev, Pid: 5, Proc: proc}); d.Verdict != engine.Allow {
				t.Fatalf("unknown path allowed (by %s), but %s is denied (by %s) under\n%s", u.Source(), path, d.Source(), b.String())
			}
		}
		if !u.Cache {
			return
		}
		// A cached allow holds for every process: it must be what every process gets.
		for _, other := range []Process{KnownProcess{Name: "bash", UserID: 0}, KnownProcess{Name: "cat", UserID: 1000}, KnownProcess{Name: "", UserID: -1}, nil} {
			for _, path := range paths {
				if d := p.Decide(&Request{Path: path, Event: ev, Pid: 6, Proc: other}); d.Verdict != engine.Allow {
					t.Fatalf("unknown path allowed and cacheable (by %s), but %s is denied to %v (by %s) under\n%s",
						u.Source(), path, other, d.Source(), b.String())
				}
			}
		}
	})
}

// An open of a nameless file (unlinked and empty, its path unknown: Request.Nameless) is about
// no path: only a glob that matches every path matches it, a rule about particular paths
// neither denies nor allows it, the default decides otherwise, and its allow is never
// cacheable (the inode may get content or a name after). Run and read events, and a known
// path, are decided as before.
func TestDecideNamelessOpen(t *testing.T) {
	bash := KnownProcess{Name: "bash", UserID: 1000}
	tests := []struct {
		name   string
		rules  string
		req    Request
		want   engine.Verdict
		source string
	}{
		{"deny of particular paths does not apply", "deny **/*.key\ndeny /srv/**", Request{PathUnknown: true, Nameless: true, Event: engine.OpenPerm}, engine.Allow, "default"},
		{"deny of every path denies", "deny /srv/**\ndeny /** comm=bash", Request{PathUnknown: true, Nameless: true, Event: engine.OpenPerm}, engine.Deny, "policy.rules:2"},
		{"allow of particular paths does not apply", "allow /tmp/**\ndefault deny", Request{PathUnknown: true, Nameless: true, Event: engine.OpenPerm}, engine.Deny, "default"},
		{"allow of every path allows, not cached", "allow ** cache\ndeny /srv/**\ndefault deny", Request{PathUnknown: true, Nameless: true, Event: engine.OpenPerm}, engine.Allow, "policy.rules:1"},
		{"exec: as any unknown path", "deny exec /tmp/**", Request{PathUnknown: true, Nameless: true, Event: engine.OpenExecPerm}, engine.Deny, "policy.rules:1"},
		{"access: as any unknown path", "deny access /srv/**", Request{PathUnknown: true, Nameless: true, Event: engine.AccessPerm}, engine.Deny, "policy.rules:1"},
		{"pre_access: as any unknown path", "deny pre_access /srv/**", Request{PathUnknown: true, Nameless: true, Event: engine.PreAccess}, engine.Deny, "policy.rules:1"},
		{"not nameless: may match", "deny /srv/**", Request{PathUnknown: true, Event: engine.OpenPerm}, engine.Deny, "policy.rules:1"},
		{"known path: decided by it", "deny /srv/**", Request{Path: "/srv/x", Nameless: true, Event: engine.OpenPerm}, engine.Deny, "policy.rules:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			p.CacheAllows = true
			req := tt.req
			req.Pid, req.Proc = 7, bash
			d := p.Decide(&req)
			if d.Verdict != tt.want || d.Source() != tt.source || d.Cache {
				t.Errorf("%+v: got %v by %s (cache %v); want %v by %s, not cached", req, d.Verdict, d.Source(), d.Cache, tt.want, tt.source)
			}
		})
	}
}

// Property: a nameless open gets exactly what the policy's rules of every path and its
// default give (the rules about particular paths removed), for any process, and is never
// cached; exec events are decided as an unknown path, nameless or not.
func TestDecideNamelessOpenIsTheEveryPathRules(t *testing.T) {
	globs := []string{"**", "/**", "**/*", "**/*.key", "/srv/**", "/*", "/*/**"}
	conds := []string{"", "uid=0", "uid!=0", "comm=bash"}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 6).Draw(t, "rules")
		var b strings.Builder
		if rapid.Bool().Draw(t, "default deny") {
			b.WriteString("default deny\n")
		}
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%s %s %s %s\n", rapid.SampledFrom([]string{"allow", "deny"}).Draw(t, "verdict"),
				rapid.SampledFrom([]string{"*", "open", "exec"}).Draw(t, "events"), rapid.SampledFrom(globs).Draw(t, "glob"), rapid.SampledFrom(conds).Draw(t, "cond"))
		}
		p, err := Parse("p", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		p.CacheAllows = rapid.Bool().Draw(t, "cache")
		every := *p
		every.Rules = nil
		for _, r := range p.Rules {
			if r.Glob.MatchesEveryPath() {
				every.Rules = append(every.Rules, r)
			}
		}
		proc := KnownProcess{Name: rapid.SampledFrom([]string{"bash", "cat"}).Draw(t, "comm"), UserID: int64(rapid.SampledFrom([]int{0, 1000}).Draw(t, "uid"))}
		d := p.Decide(&Request{PathUnknown: true, Nameless: true, Event: engine.OpenPerm, Pid: 5, Proc: proc})
		want := every.Decide(&Request{Path: "/any/path", Event: engine.OpenPerm, Pid: 5, Proc: proc})
		if d.Verdict != want.Verdict || d.Rule != want.Rule || d.Cache {
			t.Fatalf("nameless open: %v by %s (cache %v); the rules of every path: %v by %s, under\n%s", d.Verdict, d.Source(), d.Cache, want.Verdict, want.Source(), b.String())
		}
		x := p.Decide(&Request{PathUnknown: true, Nameless: true, Event: engine.OpenExecPerm, Pid: 5, Proc: proc})
		u := p.Decide(&Request{PathUnknown: true, Event: engine.OpenExecPerm, Pid: 5, Proc: proc})
		if x != u {
			t.Fatalf("nameless exec %+v, unknown-path exec %+v, under\n%s", x, u, b.String())
		}
	})
}
