package policy

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern string
		yes, no []string
	}{
		{"/etc/passwd",
			[]string{"/etc/passwd", "/etc//passwd", "//etc/passwd/"},
			[]string{"/etc/passwd2", "/etc", "/etc/passwd/x", "/xetc/passwd", "/"}},
		{"/", []string{"/", ""}, []string{"/a"}},
		{"/data/*",
			[]string{"/data/a", "/data/.hidden", "/data/a b"},
			[]string{"/data", "/data/a/b", "/datax/a"}},
		{"/data/**",
			[]string{"/data/a", "/data/a/b/c", "/data/.git/config"},
			[]string{"/data", "/data/", "/datax/a", "/dat"}},
		{"/data/**/secret",
			[]string{"/data/secret", "/data/a/secret", "/data/a/b/secret"},
			[]string{"/data/secretx", "/data/a/secret/x", "/secret", "/data"}},
		{"**/*.key",
			[]string{"/a.key", "/x/y/z.key", "/.key", "/srv/tls/server.key"},
			[]string{"/a.key/b", "/a.keys", "/key"}},
		{"**",
			[]string{"/", "/a", "/a/b/c"},
			nil},
		{"/**",
			[]string{"/", "/a", "/a/b"},
			nil},
		{"/a/**/b/**/c",
			[]string{"/a/b/c", "/a/x/b/y/c", "/a/x/y/b/b/c", "/a/b/b/c", "/a/b/x/b/c"},
			[]string{"/a/c", "/a/b/c/d", "/a/x/c"}},
		{"/a/**/**/b", []string{"/a/b", "/a/x/y/b"}, []string{"/a"}},
		{"/srv/*/conf/*.yaml",
			[]string{"/srv/app/conf/x.yaml", "/srv/app/conf/.yaml"},
			[]string{"/srv/app/x/conf/a.yaml", "/srv/conf/a.yaml", "/srv/app/conf/a.yml"}},
		{"/f?o", []string{"/foo", "/f.o", "/féo"}, []string{"/fo", "/fooo", "/f/o"}},
		{"/[abc]x", []string{"/ax", "/cx"}, []string{"/dx", "/x", "/abx"}},
		{"/[!abc]x", []string{"/dx", "/éx"}, []string{"/ax", "/x"}},
		{"/[^a-c]x", []string{"/dx"}, []string{"/bx"}},
		{"/[a-cx-z]", []string{"/a", "/b", "/y"}, []string{"/d", "/w"}},
		{"/[]]", []string{"/]"}, []string{"/a"}},
		{"/[!]]", []string{"/a"}, []string{"/]"}},
		{"/[a-]", []string{"/a", "/-"}, []string{"/b"}},
		{"/[é-ü]", []string{"/é", "/ü", "/ö"}, []string{"/e", "/a"}},
		{`/a\*b`, []string{"/a*b"}, []string{"/axb", "/ab"}},
		{`/a\?`, []string{"/a?"}, []string{"/ab"}},
		{`/\[x\]`, []string{"/[x]"}, []string{"/x"}},
		{`/a\ b`, []string{"/a b"}, nil},
		{"/a]", []string{"/a]"}, nil},
		{"/*a*b*c*", []string{"/abc", "/xxaxxbxxcxx", "/aabbcc"}, []string{"/acb", "/ab"}},
		{"/*.tar.gz", []string{"/x.tar.gz", "/.tar.gz"}, []string{"/x.tar.gzz", "/x.tgz"}},
		{"/a*", []string{"/a", "/abc"}, []string{"/ba"}},
		{"/*", []string{"/a"}, []string{"/", "/a/b"}},
		{"/*/", []string{"/a"}, []string{"/a/b"}},
		{"/x/?", []string{"/x/\xff"}, []string{"/x/\xff\xff"}},
		{"/x/*", []string{"/x/\xff"}, nil},
	}
	for _, tt := range tests {
		g, err := CompileGlob(tt.pattern)
		if err != nil {
			t.Errorf("CompileGlob(%q): %v", tt.pattern, err)
			continue
		}
		if g.String() != tt.pattern {
			t.Errorf("String() = %q, want %q", g.String(), tt.pattern)
		}
		for _, p := range tt.yes {
			if !g.Match(p) {
				t.Errorf("%q should match %q", tt.pattern, p)
			}
		}
		for _, p := range tt.no {
			if g.Match(p) {
				t.Errorf("%q should not match %q", tt.pattern, p)
			}
		}
	}
}

func TestGlobErrors(t *testing.T) {
	tests := []struct {
		pattern string
		offset  int
		msg     string
	}{
		{"", 0, "empty pattern"},
		{"*.key", 0, "pattern must be absolute (start with /) or start with **; for any depth write **/*.key"},
		{"etc/passwd", 0, "pattern must be absolute"},
		{"/a/[bc", 3, "unterminated character class (missing ])"},
		{"/a/[", 3, "unterminated character class"},
		{"/a/[]", 3, "unterminated character class"},
		{"/a/[!", 3, "unterminated character class"},
		{"/a/[a/b]", 5, "character class cannot contain /"},
		{"/a/[z-a]", 5, `range 'z'-'a' is reversed`},
		{`/a/b\`, 4, "trailing backslash"},
		{`/a\/b`, 2, "an escaped / never matches"},
		{"/a**", 2, "** must be a whole path component"},
		{"/**a", 1, "** must be a whole path component"},
		{"**a", 0, "** must be a whole path component"},
		{"/a/***", 3, "** must be a whole path component"},
		{"/a/../b", 3, `".." component never matches: paths are canonical`},
		{"/./b", 1, `"." component never matches`},
		// What to write instead (TestGlobErrors: before, only that it never matches).
		{"/a/../b", 3, `".." component never matches: paths are canonical; write /b (the path the kernel reports if no symbolic link is on the way)`},
		{"/srv/./x/**", 5, `"." component never matches: paths are canonical; write /srv/x/**`},
		{"**/*.key\x00.txt", 8, "NUL byte: no path or name holds one, so the pattern could never match"},
		{"/a/\\\x00", 4, "NUL byte"},
		{"/a\x1b[31m", 2, "control byte 0x1b (to match it in a name, write ? or *)"},
		{"/a\x7f", 2, "control byte 0x7f"},
	}
	for _, tt := range tests {
		_, err := CompileGlob(tt.pattern)
		var ge *GlobError
		if !errors.As(err, &ge) {
			t.Errorf("CompileGlob(%q) = %v, want a *GlobError", tt.pattern, err)
			continue
		}
		if ge.Offset != tt.offset || !strings.HasPrefix(ge.Msg, tt.msg) {
			t.Errorf("CompileGlob(%q): offset %d msg %q; want offset %d msg %q...", tt.pattern, ge.Offset, ge.Msg, tt.offset, tt.msg)
		}
		if ge.Pattern != tt.pattern || !strings.Contains(err.Error(), "glob ") {
			t.Errorf("error %q does not name the pattern", err)
		}
	} // No fix where taking the component away would guess: ".." after a wildcard, another
	// "." or ".." after it, or nothing left.
	for _, pattern := range []string{"/srv/*/../x", "/srv/../x/../y", "/..", "**/../x"} {
		if _, err := CompileGlob(pattern); err == nil || strings.Contains(err.Error(), "write") {
			t.Errorf("CompileGlob(%q) = %v, want an error with no fix", pattern, err)
		}
	}
}

func TestGlobMatchDoesNotAllocate(t *testing.T) {
	globs := []*Glob{
		MustCompileGlob("/data/**/secret"),
		MustCompileGlob("**/*.key"),
		MustCompileGlob("/srv/*/c[a-z]nf/?*.y*ml"),
	}
	paths := []string{"/data/a/b/c/d/e/secret", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/srv/app/conf/app.yaml"}
	allocs := testing.AllocsPerRun(100, func() {
		for _, g := range globs {
			for _, p := range paths {
				g.Match(p)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per run", allocs)
	}
}

func TestMustCompileGlobPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	MustCompileGlob("/[")
}

func TestWordGlob(t *testing.T) {
	w, err := compileWord("ba?h*")
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"bash": true, "bashx": true, "bah": false, "zsh": false} {
		if w.match(s) != want {
			t.Errorf("match(%q) = %v", s, !want)
		}
	}
	for _, bad := range []string{"", "a/b", "**", "[", `a\`, "ba\x00sh", "a\nb"} {
		if _, err := compileWord(bad); err == nil {
			t.Errorf("compileWord(%q) succeeded", bad)
		}
	}
}

// refRegexp translates a valid pattern into an equivalent regular expression over canonical
// paths, independently of the compiler: the fuzz test checks Match against it.
func refRegexp(pattern string) (*regexp.Regexp, bool) {
	var comps []string
	for _, c := range strings.Split(pattern, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	var b strings.Builder
	b.WriteString("^")
	for i, c := range comps {
		if c == "**" {
			if i == len(comps)-1 && trailingAfterOthers(comps) {
				b.WriteString("(?:/[^/]+)+")
			} else {
				b.WriteString("(?:/[^/]+)*")
			}
			continue
		}
		b.WriteString("/")
		for j := 0; j < len(c); {
			r, w := utf8.DecodeRuneInString(c[j:])
			switch r {
			case '\\':
				r2, w2 := utf8.DecodeRuneInString(c[j+1:])
				b.WriteString(regexp.QuoteMeta(string(r2)))
				j += 1 + w2
				continue
			case '*':
				b.WriteString("[^/]*")
			case '?':
				b.WriteString("[^/]")
			case '[':
				end, class, ok := refClass(c, j)
				if !ok {
					return nil, false
				}
				b.WriteString(class)
				j = end
				continue
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
			j += w
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return re, err == nil
}

// trailingAfterOthers: the pattern ends in a run of ** preceded by some other component.
func trailingAfterOthers(comps []string) bool {
	i := len(comps) - 1
	for i >= 0 && comps[i] == "**" {
		i--
	}
	return i >= 0
}

func refClass(c string, j int) (int, string, bool) {
	j++
	var b strings.Builder
	b.WriteString("[")
	if j < len(c) && (c[j] == '!' || c[j] == '^') {
		b.WriteString("^/")
		j++
	}
	first := true
	read := func() rune {
		if c[j] == '\\' {
			j++
		}
		r, w := utf8.DecodeRuneInString(c[j:])
		j += w
		return r
	}
	for j < len(c) {
		if c[j] == ']' && !first {
			b.WriteString("]")
			return j + 1, b.String(), true
		}
		first = false
		lo := read()
		fmt := func(r rune) string { return `\x{` + strings.ToLower(strconvHex(r)) + `}` }
		if j+1 < len(c) && c[j] == '-' && c[j+1] != ']' {
			j++
			hi := read()
			b.WriteString(fmt(lo) + "-" + fmt(hi))
		} else {
			b.WriteString(fmt(lo))
		}
	}
	return 0, "", false
}

func strconvHex(r rune) string {
	const digits = "0123456789abcdef"
	if r == 0 {
		return "0"
	}
	var out []byte
	for v := uint32(r); v != 0; v >>= 4 {
		out = append([]byte{digits[v&0xf]}, out...)
	}
	return string(out)
}

// canonical collapses slashes the way Match skips them, for the reference.
func canonical(p string) string {
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		return ""
	}
	return "/" + strings.Join(comps, "/")
}

func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"/data/**", "/data/a/b"},
		{"/data/**/secret", "/data/secret"},
		{"**/*.key", "/a/b/c.key"},
		{"/a/[!b-d]?*x", "/a/exyzx"},
		{`/a\*[\]]`, "/a*]"},
		{"/**/a/**/b", "/x/a/y/b"},
		{"/[]a]*", "/]]]"},
		{"/é[à-ü]", "/éö"},
		{"**", "/"},
		{"/x/?", "/x/\xff"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		g, err := CompileGlob(pattern)
		if err != nil {
			var ge *GlobError
			if !errors.As(err, &ge) || ge.Offset < 0 || ge.Offset > len(pattern) {
				t.Fatalf("CompileGlob(%q): bad error %#v", pattern, err)
			}
			return
		}
		got := g.Match(path)
		if got != g.Match(canonical(path)) {
			t.Fatalf("%q: Match(%q) differs from Match of its canonical form", pattern, path)
		}
		if !utf8.ValidString(pattern) || !utf8.ValidString(path) {
			return
		}
		re, ok := refRegexp(pattern)
		if !ok {
			t.Fatalf("reference cannot translate valid pattern %q", pattern)
		}
		if want := re.MatchString(canonical(path)); got != want {
			t.Fatalf("%q.Match(%q) = %v, reference %s says %v", pattern, path, got, re, want)
		}
	})
}

func BenchmarkGlobMatch(b *testing.B) {
	cases := []struct{ pattern, path string }{
		{"/data/**/secret", "/data/a/b/c/d/e/f/secret"},
		{"**/*.key", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{"/usr/**", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{"/etc/passwd", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
	}
	for _, c := range cases {
		g := MustCompileGlob(c.pattern)
		b.Run(c.pattern, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Match(c.path)
			}
		})
	}
}

func TestGlobLiteralPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		"/srv/tls/*.key":  "/srv/tls",
		"/srv//tls/":      "/srv/tls",
		"/a/b\\*c/d":      "/a/b*c/d",
		"/a/**/b":         "/a",
		"/a/[bc]/d":       "/a",
		"**/*.key":        "",
		"/**":             "",
		"/etc/localtime":  "/etc/localtime",
		"/home/*/.ssh/id": "/home",
	} {
		g, err := CompileGlob(pattern)
		if err != nil {
			t.Fatal(pattern, err)
		}
		if got := g.LiteralPrefix(); got != want {
			t.Errorf("LiteralPrefix of %q = %q, want %q", pattern, got, want)
		}
	}
}

// A byte that is not UTF-8 is one character of its own (docs/policy.md, "?"): a class holds
// the very byte written in it, and a literal matches whole characters of the name. Before,
// every such byte (and U+FFFD) was utf8.RuneError: "[\xff]" (a Latin-1 rules file's "ÿ")
// matched any byte that is not UTF-8, so "allow /srv/[\xff]*" allowed "/srv/\xfesecret"; and
// "*\xa9" matched "é" (\xc3\xa9) while "a*\xa9" did not match "aé".
func TestGlobBytesNotUTF8(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"/[\xff]", "/\xff", true},
		{"/[\xff]", "/\xfe", false},
		{"/[\xff]*", "/\xfesecret", false},
		{"/[!\xff]", "/\xfe", true},
		{"/[\xfe-\xff]", "/\xfe", true},
		{"/[\xfe-\xff]", "/é", false},
		{"/[\uFFFD]", "/\xfe", false},
		{"/[\uFFFD]", "/\uFFFD", true},
		{"/[a-\xff]", "/é", true}, // a byte that is not UTF-8 sorts after every character
		{"/*\xa9", "/é", false},
		{"/a*\xa9", "/aé", false},
		{"/*\xa9", "/\xa9", true},
		{"/*\xa9", "/x\xff\xa9", true},
		{"/\xc3*", "/é", false},
		{"/\xc3?", "/é", false},
		{"/\xc3?", "/\xc3\xff", true},
		{"/\xc3\xa9", "/é", true}, // the same bytes: the same name
		{"/?", "/é", true},
		{"/?", "/\xc3", true},
		{"/??", "/\xc3\xa9", false},
		{"/*é", "/aé", true},
		{"/*\xa9", "/\xe2\x82\xa9\xa9", true}, // ₩ then a lone continuation byte
		{"/*\xa9\xa9", "/\xe2\x82\xa9\xa9", false},
		{"/*\x82\xa9", "/\xe2\x82\xa9", false},
	} {
		g := MustCompileGlob(c.pattern)
		if got := g.Match(c.path); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}

// TestGlobRelativeSuggestionIsValid: the fix a relative glob's error suggests is itself a
// glob that compiles, and one a shell would have meant: "./x" and "../x" are not "**/./x"
// (refused: "." never matches; and an allow for any depth is not what a path relative to
// some directory meant), "~" and "$HOME" are not expanded (the rules file is not a
// shell), so "**/~/x" would name a directory called "~". Before, each got "for any depth
// write **/PATTERN", a glob refused in turn or matching a literal "~" or "$HOME".
func TestGlobRelativeSuggestionIsValid(t *testing.T) {
	for pattern, want := range map[string]string{
		"*.key":     "for any depth write **/*.key",
		"etc/*.key": "for any depth write **/etc/*.key",
		"./x":       "write an absolute path",
		"./a/./b":   "write an absolute path",
		"../../x/y": "write an absolute path",
		".":         "write an absolute path",
		"..":        "write an absolute path",
		"a/../b":    "write an absolute path",
		"x y":       "for any depth write **/x y",
		"~/.ssh/*":  "~ is not expanded",
		"~ann/x":    "~ is not expanded",
		"$HOME/x":   "$HOME is not expanded",
		"${D}/x":    "${D} is not expanded",
	} {
		_, err := CompileGlob(pattern)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CompileGlob(%q) = %v, want an error saying %q", pattern, err, want)
			continue
		}
		if _, fix, ok := strings.Cut(err.Error(), "write "); ok && strings.HasPrefix(fix, "**") {
			fix, _, _ = strings.Cut(fix, " ")
			if _, err := CompileGlob(fix); err != nil {
				t.Errorf("CompileGlob(%q) suggests %q, which is refused: %v", pattern, fix, err)
			}
		}
	}
}
