package policy

import (
	"os"
	"strings"
	"testing"
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

// The rules blocks of docs/policy.md set a good example: no warnings.
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
			if ws := p.Lint(scanned); len(ws) != 0 {
				t.Errorf("docs/policy.md rules block %d: %v", i+1, ws)
			}
		}
	}
}
