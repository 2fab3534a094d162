package policy

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"pgregory.net/rapid"
)

func TestLintCommOnlyAllow(t *testing.T) {
	tests := []struct {
		name    string
		rules   string
		scanned bool
		want    []string // sources warned about
	}{
		{"default deny grants by name", "default deny\nallow open /srv/** comm=nginx\n", false, []string{"policy.rules:2"}},
		{"comm!= grants too", "default deny\nallow /srv/** comm!=bash\n", false, []string{"policy.rules:2"}},
		{"lifts a later deny", "allow /secret/** comm=backup\ndeny /secret/**\n", false, []string{"policy.rules:1"}},
		{"lifts a later deny at any depth", "allow /secret/a comm=backup\ndeny **/a\n", false, []string{"policy.rules:1"}},
		{"lifts a later deny through a class", "allow /s/[ab]/k comm=backup\ndeny /s/a/*\n", false, []string{"policy.rules:1"}},
		{"scanner decides the rest", "allow /srv/** comm=nginx\n", true, []string{"policy.rules:1"}},
		{"nothing to lift: default allow, no deny after", "allow /srv/** comm=nginx\n", false, nil},
		{"deny before it", "deny /srv/** uid=5\nallow /srv/** comm=nginx\n", false, nil},
		{"disjoint deny after it", "allow /usr/** comm=nginx\ndeny /srv/**\n", false, nil},
		{"disjoint by length", "allow /a/b comm=x\ndeny /a/b/c\ndeny /a\n", false, nil},
		{"disjoint events", "allow exec /srv/** comm=nginx\ndeny open /srv/**\n", false, nil},
		{"comm narrows an unforgeable condition", "default deny\nallow /srv/** comm=nginx uid=33\nallow /x/** exe=/bin/sh comm=sh\nallow /y/** gid=4 comm=a\nallow /z pid=9 comm=b\n", false, nil},
		{"comm in a deny rule", "default deny\ndeny /srv/** comm=bash\n", false, nil},
		{"no conditions", "default deny\nallow /usr/**\n", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := mustParse(t, tt.rules).Lint(tt.scanned)
			var got []string
			for _, w := range ws {
				got = append(got, w.Rule.String())
				if !strings.HasPrefix(w.String(), w.Rule.String()+": ") || !strings.Contains(w.Msg, "PR_SET_NAME") {
					t.Errorf("warning %q", w)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("warned about %v, want %v", got, tt.want)
			}
		})
	}
}

// The documented example is quiet: its comm= rule also names the uid.
func TestLintExampleQuiet(t *testing.T) {
	p := mustParse(t, "allow open,access /** comm=restic,borg uid=34\ndeny open **/*.key\n")
	if ws := p.Lint(false); len(ws) != 0 {
		t.Errorf("warnings: %v", ws)
	}
}

func TestGlobMayOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/a/**", "/a/b", true},
		{"/a/**", "/b/**", false},
		{"/a/*", "/a/b/c", false},
		{"/a/*.key", "/a/x.pem", false},
		{"/a/*.key", "/a/*.pem", true}, // wildcards on both sides: cannot tell
		{"**/x", "/a/b", true},
		{"/a", "/a", true},
		{"/a/b", "/a", false},
	}
	for _, tt := range tests {
		a, b := MustCompileGlob(tt.a), MustCompileGlob(tt.b)
		if a.mayOverlap(b) != tt.want || b.mayOverlap(a) != tt.want {
			t.Errorf("mayOverlap(%s, %s) = %v, %v; want %v", tt.a, tt.b, a.mayOverlap(b), b.mayOverlap(a), tt.want)
		}
		// Never false where a path matches both.
		for _, p := range []string{"/a", "/a/b", "/a/b/c", "/a/x.key", "/a/x.pem", "/b/c", "/x"} {
			if a.Match(p) && b.Match(p) && !a.mayOverlap(b) {
				t.Errorf("%s and %s both match %s, but mayOverlap is false", tt.a, tt.b, p)
			}
		}
	}
}

// mayOverlap is never false for two globs that match one path.
func FuzzGlobMayOverlap(f *testing.F) {
	f.Add("/a/**", "/a/*/c", "/a/b/c")
	f.Add("**/*.key", "/srv/[a-z]*", "/srv/x.key")
	f.Add("/a/b", "/a/**/b", "/a/b")
	f.Fuzz(func(t *testing.T, p1, p2, path string) {
		a, err1 := CompileGlob(p1)
		b, err2 := CompileGlob(p2)
		if err1 != nil || err2 != nil {
			return
		}
		if a.Match(path) && b.Match(path) && (!a.mayOverlap(b) || !b.mayOverlap(a)) {
			t.Fatalf("%q and %q both match %q, but mayOverlap is false", p1, p2, path)
		}
	})
}

// The rules blocks of docs/policy.md set a good example: no warnings, on a host with
// unprivileged user namespaces too.
func TestDocExamplesLintQuiet(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	for i, b := range strings.Split(string(doc), "```rules\n")[1:] {
		b = b[:strings.Index(b, "```")]
		p, err := Parse("block", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, scanned := range []bool{false, true} {
			for _, userNS := range []bool{false, true} {
				if ws := p.LintWith(LintOptions{Scanned: scanned, UserNS: userNS}); len(ws) != 0 {
					t.Errorf("docs/policy.md rules block %d (user namespaces %v): %v", i+1, userNS, ws)
				}
			}
		}
	}
}

func TestLintUnreachableAndNever(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		want  []string // "source kind"
	}{
		{"after a catch-all", "deny **\nallow /srv/** uid=0\n", []string{"policy.rules:2 unreachable"}},
		{"after **/*: / itself is still reachable", "allow **/*\ndeny /\ndeny /x\n", []string{"policy.rules:3 unreachable"}},
		{"the same rule twice", "deny open /a/*.key\ndeny open /a/*.key\n", []string{"policy.rules:2 unreachable"}},
		{"below a denied tree", "deny /srv/**\nallow /srv/public/*\n", []string{"policy.rules:2 unreachable"}},
		{"an allow of a tree passes unknown paths on", "allow /srv/**\ndeny /srv/a/*\n", nil},
		{"not the tree itself", "deny /srv/**\nallow /srv\n", nil},
		{"a wildcard below the tree", "deny /srv/**\nallow /srv/*/x/**\n", []string{"policy.rules:2 unreachable"}},
		{"events cover", "deny * /x/**\nallow exec /x/**\n", []string{"policy.rules:2 unreachable"}},
		{"events do not cover", "deny exec /x/**\nallow /x/**\n", nil},
		{"conditions of the first are some of the second's", "deny /x uid=0\ndeny /x uid=0 comm=a\n", []string{"policy.rules:2 unreachable"}},
		{"a condition the second lacks", "deny /x uid=0 comm=a\ndeny /x uid=0\n", nil},
		{"an allow on ancestor= passes over what it cannot settle", "allow ** ancestor=/usr/bin/make\ndeny ** ancestor=/usr/bin/make\n", nil},
		{"a deny on ancestor= decides it", "deny ** ancestor=/usr/bin/make\ndeny ** ancestor=/usr/bin/make uid=0\n", []string{"policy.rules:2 unreachable"}},
		{"default after a catch-all", "default deny\nallow **\n", []string{"policy.rules:1 unreachable"}},
		{"default after a catch-all for some events only", "default deny\nallow exec **\n", nil},
		{"implicit default after a catch-all: quiet", "allow **\n", nil},
		{"sizes that cannot both hold", "deny /x size>10 size<5\n", []string{"policy.rules:1 never-matches"}},
		{"no integer between", "deny /x size>10 size<12\ndeny /y size>10 size<11\n", []string{"policy.rules:2 never-matches"}},
		{"empty files have no bytes", "deny /x ftype=empty size>0\n", []string{"policy.rules:1 never-matches"}},
		{"a file of 0 bytes is empty", "deny /x ftype=elf-* size<1\n", []string{"policy.rules:1 never-matches"}},
		{"empty or text may be small", "deny /x ftype=empty,text size<1\ndeny /y ftype=script:* size<2\n", nil},
		{"ftype!= is not checked", "deny /x ftype!=empty size<1\n", nil},
		{"ppid=1 grants to every orphan", "default deny\nallow open /srv/** ppid=1\n", []string{"policy.rules:2 forgeable"}},
		{"ppid of a daemon is not forgeable", "default deny\nallow open /srv/** ppid=812\n", nil},
		{"trusted_exe=no grants to anyone", "default deny\nallow open /srv/** trusted_exe=no\n", []string{"policy.rules:2 forgeable"}},
		{"trusted_exe=yes says who", "default deny\nallow open /srv/** trusted_exe=yes comm=x\n", nil},
		{"ancestor!= grants to anyone elsewhere", "default deny\nallow open /srv/** ancestor!=/usr/sbin/sshd\n", []string{"policy.rules:2 forgeable"}},
		{"file tests say what, not who", "default deny\nallow exec ** comm=make trusted=yes\n", []string{"policy.rules:2 forgeable"}},
		{"file tests alone grant to all by design", "default deny\nallow exec ** trusted=yes\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, w := range mustParse(t, tt.rules).Lint(false) {
				got = append(got, w.Source()+" "+w.Kind)
				if !strings.HasPrefix(w.String(), w.Source()+": ") || w.Msg == "" {
					t.Errorf("warning %q", w)
				}
			}
			if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("warned %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLintWeakDeny(t *testing.T) {
	p := mustParse(t, "deny open /srv/** comm=bash\ndeny open /x ppid!=1\ndeny open /y comm=bash uid=5\ndeny open /z\n")
	if ws := p.Lint(false); len(ws) != 0 {
		t.Errorf("a guard warns about weak denies: %v", ws)
	}
	var got []string
	for _, w := range p.LintWith(LintOptions{Weak: true}) {
		got = append(got, w.Source()+" "+w.Kind)
	}
	if strings.Join(got, ", ") != "policy.rules:1 weak-deny, policy.rules:2 weak-deny" {
		t.Errorf("weak: %v", got)
	}
	if w := (Warning{Msg: "m"}); w.String() != "default: m" {
		t.Errorf("%q", w)
	}
}

// TestLintPreAccessOnlyDeny: policy check (LintOptions.Weak) warns of a deny of pre_access
// that leaves the same files' opens to an allow — open(O_TRUNC) and a mapping through an
// overlayfs get no pre-content event (cmd/fsnotifyd TestGuardPreAccessRoutesAsNobody and
// TestGuardPreAccessOverlayMapAsNobody) —, not of one whose opens an earlier deny, or the rule
// itself, denies; a guard does not warn.
func TestLintPreAccessOnlyDeny(t *testing.T) {
	for _, tc := range []struct {
		rules string
		want  string // the rules warned about, by line
	}{
		{"deny pre_access /srv/**", "1"},
		{"deny pre_access /srv/** errno=EIO", "1"},
		{"deny access,pre_access /srv/** uid=5", "1"},
		{"deny open,pre_access /srv/**", ""},
		{"deny /srv/**", ""},
		{"deny * /srv/**", ""},
		{"allow pre_access /srv/**", ""},
		{"deny open /srv/**\ndeny pre_access /srv/a/*", ""},
		{"deny open /srv/** uid=5\ndeny pre_access /srv/** uid=5", ""},
		{"deny open /srv/** uid=5\ndeny pre_access /srv/**", "2"},
		{"deny open /srv/a/*\ndeny pre_access /srv/**", "2"},
		{"deny pre_access /srv/**\ndeny open /srv/**", "1"}, // the opens of its files may be allowed before
		{"allow open /srv/**\ndeny pre_access /srv/**", "2"},
	} {
		p := mustParse(t, tc.rules+"\n")
		if ws := p.Lint(false); len(ws) != 0 {
			t.Errorf("%q: a guard warns: %v", tc.rules, ws)
		}
		var got []string
		for _, w := range p.LintWith(LintOptions{Weak: true}) {
			if w.Kind == KindWeakDeny && strings.Contains(w.Msg, "pre_access but not the open") {
				got = append(got, strings.TrimPrefix(w.Source(), "policy.rules:"))
			}
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%q: warned about %q, want %q", tc.rules, got, tc.want)
		}
	}
}

// A rule Lint calls unreachable never decides: whatever the request (known or unknown path,
// any process, the ancestry cut or not), the earlier rule, or one before it, decides first.
func TestLintUnreachableIsNeverDeciding(t *testing.T) {
	globs := []string{"**", "/**", "**/*", "/srv/**", "/srv/*/x", "/srv/a/**", "/", "/srv", "/srv/a/b", "**/*.key"}
	conds := []string{"", "uid=0", "uid=0 comm=a", "ancestor=/usr/bin/make", "ancestor=/usr/bin/make uid=0"}
	paths := []string{"/", "/srv", "/srv/a", "/srv/a/x", "/srv/a/b", "/srv/b/x", "/x.key", ""}
	procs := []Process{
		KnownProcess{Name: "a", UserID: 0, Ancestry: Ancestry{List: []Ancestor{{Exe: "/usr/bin/make", Verified: true}}, Complete: true}},
		KnownProcess{Name: "a", UserID: 0, Ancestry: Ancestry{List: []Ancestor{}}},
		KnownProcess{Name: "b", UserID: 5, Ancestry: Ancestry{List: []Ancestor{}, Complete: true}},
	}
	rapid.Check(t, func(t *rapid.T) {
		rule := func(label string) string {
			return fmt.Sprintf("%s %s %s %s\n", rapid.SampledFrom([]string{"allow", "deny"}).Draw(t, label+" verdict"),
				rapid.SampledFrom([]string{"*", "open", "exec", "open,exec"}).Draw(t, label+" events"),
				rapid.SampledFrom(globs).Draw(t, label+" glob"), rapid.SampledFrom(conds).Draw(t, label+" cond"))
		}
		text := rule("first") + rule("second")
		p, err := Parse("p", strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		if !p.Rules[0].covers(p.Rules[1]) {
			return
		}
		for _, path := range paths {
			for _, proc := range procs {
				for _, ev := range []engine.Mask{engine.OpenPerm, engine.OpenExecPerm} {
					if d := p.Decide(&Request{Path: path, PathUnknown: path == "", Event: ev, Pid: 3, Proc: proc}); d.Rule == p.Rules[1] {
						t.Fatalf("the second rule decides %s %q for %v, though the first covers it:\n%s", ev, path, proc, text)
					}
				}
			}
		}
	})
}

// Where unprivileged user namespaces are enabled (LintOptions.UserNS), a process may set its
// executable to any file (prctl PR_SET_MM_MAP): exe=, ancestor= and trusted_exe=yes say who
// no more than comm= does, and an allow by them alone grants to every process; uid=, gid=
// and pid= still say who.
func TestLintExeForgeableWithUserNamespaces(t *testing.T) {
	tests := []struct {
		rules string
		want  []string // with UserNS; without it, nothing
	}{
		{"default deny\nallow open /srv/** exe=/usr/sbin/nginx\n", []string{"policy.rules:2 forgeable"}},
		{"default deny\nallow open /srv/** trusted_exe=yes\n", []string{"policy.rules:2 forgeable"}},
		{"default deny\nallow exec /usr/bin/cc1 ancestor=/usr/bin/make\n", []string{"policy.rules:2 forgeable"}},
		{"default deny\nallow open /srv/** exe=/usr/sbin/nginx uid=33\n", nil},
		{"default deny\nallow open /srv/** trusted_exe=yes gid=4\n", nil},
		{"allow open /srv/** exe=/usr/sbin/nginx\n", nil}, // grants nothing the default does not
		{"allow open /srv/** exe=/usr/sbin/nginx\ndeny open /srv/**\n", []string{"policy.rules:1 forgeable"}},
	}
	for _, tt := range tests {
		p := mustParse(t, tt.rules)
		if ws := p.Lint(false); len(ws) != 0 {
			t.Errorf("%q without user namespaces: %v", tt.rules, ws)
		}
		var got []string
		for _, w := range p.LintWith(LintOptions{UserNS: true}) {
			got = append(got, w.Source()+" "+w.Kind)
			if !strings.Contains(w.Msg, "PR_SET_MM_MAP") || !strings.Contains(w.Msg, "user.max_user_namespaces=0") {
				t.Errorf("%q: warning %q does not say why and what to do", tt.rules, w.Msg)
			}
		}
		if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
			t.Errorf("%q: warned %v, want %v", tt.rules, got, tt.want)
		}
	}
}

// A deny by ppid= or ancestor= holds for the children or descendants of a process, which any
// of them leaves by a double fork (the grandchild's parent exits; it goes to a reaper):
// policy check (Weak) calls such a deny weak, as it does one by comm=. A guard does not warn
// (it only adds denies), and an allow by them is not forgeable (no process can choose a parent).
func TestLintWeakDenyByParentOrAncestor(t *testing.T) {
	p := mustParse(t, "deny exec ** ancestor=/usr/bin/python3*\ndeny open /x ppid=812\ndeny exec /y ancestor=/usr/bin/make uid=5\ndeny open /z ancestor!=/usr/sbin/sshd\ndefault deny\nallow open /w ppid=812\nallow exec /v ancestor=/usr/bin/make\n")
	if ws := p.Lint(false); len(ws) != 0 {
		t.Errorf("a guard warns: %v", ws)
	}
	var got []string
	for _, w := range p.LintWith(LintOptions{Weak: true}) {
		got = append(got, w.Source()+" "+w.Kind)
		if w.Kind == KindWeakDeny && w.Rule.Conditions[0].Attr == AttrAncestor && !strings.Contains(w.Msg, "double fork") {
			t.Errorf("%q does not say how", w.Msg)
		}
	}
	// Line 4 (ancestor!=) was weak before: forgeable either way.
	if strings.Join(got, ", ") != "policy.rules:1 weak-deny, policy.rules:2 weak-deny, policy.rules:4 weak-deny" {
		t.Errorf("weak: %v", got)
	}
}
