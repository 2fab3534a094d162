package policy

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"pgregory.net/rapid"
)

// The policy model: rules files generated from glob syntax trees, decided by Decide, by
// Explain (policy explain's code) and by a sequential reference written from docs/policy.md
// alone (first rule whose events, glob and conditions match decides, else the default; a
// glob matches components; each character is a UTF-8 character or, where the bytes are not
// UTF-8, a single byte; `*` within one component, `**` zero or more components, a trailing
// `**` after others one or more).

// mChar is one character: a rune, or invalidChar+b for a byte b that is not part of UTF-8.
type mChar = int32

const invalidChar = 0x110000

// mChars decodes s into characters as the docs define them.
func mChars(s string) []mChar {
	var out []mChar
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			out = append(out, invalidChar+mChar(s[i]))
		} else {
			out = append(out, r)
		}
		i += w
	}
	return out
}

// mItem is one item of a pattern component: a literal run, ?, * or a class.
type mItem struct {
	kind   byte // 'l' literal, '?', '*', '['
	lit    string
	negate byte // 0, '!' or '^'
	ranges [][2]string
}

// mComp is a pattern component: "**" (starstar) or items.
type mComp struct {
	starstar bool
	items    []mItem
}

// The characters names are made of: specials of the glob and of the rules file, a space, a
// newline (paths only), a backslash, UTF-8, and bytes that are not UTF-8 (a lone lead byte,
// a lone continuation byte, and bytes never in UTF-8).
var (
	mPathAlphabet  = []string{"a", "b", ".", " ", "\n", "\\", "[", "]", "*", "?", "-", "!", "^", "#", "\"", "é", "ö", "\xff", "\xfe", "\xc3", "\xa9"}
	mGlobAlphabet  = []string{"a", "b", ".", " ", "\\", "[", "]", "*", "?", "-", "!", "^", "#", "\"", "é", "ö", "\xff", "\xfe", "\xc3", "\xa9"}
	mClassAlphabet = []string{"a", "b", ".", " ", "\\", "[", "]", "*", "?", "-", "!", "^", "#", "\"", "é", "ö", "\xff", "\xfe"}
)

// escapeGlobChar writes c so that the glob compiler and the rules-file tokenizer read it as
// the literal c.
func escapeGlobChar(c string, inClass bool) string {
	switch c {
	case "*", "?", "[", "\\", " ", "\"", "]", "-", "!", "^":
		return `\` + c
	}
	return c
}

func drawItem(t *rapid.T, label string) mItem {
	switch rapid.IntRange(0, 5).Draw(t, label+"kind") {
	case 0:
		return mItem{kind: '?'}
	case 1:
		return mItem{kind: '*'}
	case 2:
		it := mItem{kind: '[', negate: rapid.SampledFrom([]byte{0, 0, '!', '^'}).Draw(t, label+"neg")}
		for n := rapid.IntRange(1, 3).Draw(t, label+"n"); n > 0; n-- {
			lo := rapid.SampledFrom(mClassAlphabet).Draw(t, label+"lo")
			hi := lo
			if rapid.IntRange(0, 3).Draw(t, label+"range") == 0 {
				hi = rapid.SampledFrom(mClassAlphabet).Draw(t, label+"hi")
				if mChars(hi)[0] < mChars(lo)[0] {
					lo, hi = hi, lo
				}
			}
			it.ranges = append(it.ranges, [2]string{lo, hi})
		}
		return it
	}
	var b strings.Builder
	for n := rapid.IntRange(1, 3).Draw(t, label+"n"); n > 0; n-- {
		b.WriteString(rapid.SampledFrom(mGlobAlphabet).Draw(t, label+"c"))
	}
	return mItem{kind: 'l', lit: b.String()}
}

func drawGlob(t *rapid.T) []mComp {
	var comps []mComp
	for n := rapid.IntRange(1, 4).Draw(t, "comps"); n > 0; n-- {
		if rapid.IntRange(0, 3).Draw(t, "starstar") == 0 {
			comps = append(comps, mComp{starstar: true})
			continue
		}
		var c mComp
		for m := rapid.IntRange(1, 3).Draw(t, "items"); m > 0; m-- {
			c.items = append(c.items, drawItem(t, "item"))
		}
		// A component of literals "." or ".." is refused; "..." is a name.
		for lit := literalText(c); lit == "." || lit == ".."; lit = literalText(c) {
			c.items = append(c.items, mItem{kind: 'l', lit: "."})
		}
		comps = append(comps, c)
	}
	return comps
}

func literalText(c mComp) string {
	var b strings.Builder
	for _, it := range c.items {
		if it.kind != 'l' {
			return ""
		}
		b.WriteString(it.lit)
	}
	return b.String()
}

// renderGlob writes the glob as a rules-file word (escapes serve both the tokenizer and the
// glob compiler), with the slashes the docs say are ignored drawn at random.
func renderGlob(t *rapid.T, comps []mComp) string {
	var b strings.Builder
	for i, c := range comps {
		switch {
		case i == 0 && c.starstar && rapid.Bool().Draw(t, "bare**"):
		case rapid.IntRange(0, 5).Draw(t, "slashes") == 0:
			b.WriteString("//")
		default:
			b.WriteString("/")
		}
		if c.starstar {
			b.WriteString("**")
			continue
		}
		for j, it := range c.items {
			switch it.kind {
			case '?', '*':
				if it.kind == '*' && j > 0 && c.items[j-1].kind == '*' {
					b.WriteString("?*") // never "**" inside a component
					continue
				}
				b.WriteByte(it.kind)
			case 'l':
				for _, r := range splitChars(it.lit) {
					b.WriteString(escapeGlobChar(r, false))
				}
			case '[':
				b.WriteByte('[')
				if it.negate != 0 {
					b.WriteByte(it.negate)
				}
				for _, rg := range it.ranges {
					b.WriteString(escapeGlobChar(rg[0], true))
					if rg[1] != rg[0] {
						b.WriteString("-" + escapeGlobChar(rg[1], true))
					}
				}
				b.WriteByte(']')
			}
		}
	}
	if rapid.IntRange(0, 5).Draw(t, "trailing/") == 0 {
		b.WriteString("/")
	}
	return b.String()
}

// splitChars splits a literal into the alphabet's pieces (bytes that are not UTF-8 alone).
func splitChars(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		_, w := utf8.DecodeRuneInString(s[i:])
		out = append(out, s[i:i+w])
		i += w
	}
	return out
}

// fixStars makes the tree mean what renderGlob wrote for two *s in a row ("?*").
func fixStars(comps []mComp) []mComp {
	for ci := range comps {
		var items []mItem
		for j, it := range comps[ci].items {
			if it.kind == '*' && j > 0 && comps[ci].items[j-1].kind == '*' {
				items = append(items, mItem{kind: '?'})
			}
			items = append(items, it)
		}
		comps[ci].items = items
	}
	return comps
}

// refGlobMatch is the docs' glob semantics over components.
func refGlobMatch(comps []mComp, path string) bool {
	var pcs []string
	for _, c := range strings.Split(path, "/") {
		if c != "" {
			pcs = append(pcs, c)
		}
	}
	var cs []mComp
	for _, c := range comps {
		if c.starstar && len(cs) > 0 && cs[len(cs)-1].starstar {
			continue // **/** is **
		}
		cs = append(cs, c)
	}
	trailing := len(cs) > 1 && cs[len(cs)-1].starstar
	var rec func(ci, pi int) bool
	rec = func(ci, pi int) bool {
		if ci == len(cs) {
			return pi == len(pcs)
		}
		if cs[ci].starstar {
			min := 0
			if trailing && ci == len(cs)-1 {
				min = 1
			}
			for k := pi + min; k <= len(pcs); k++ {
				if rec(ci+1, k) {
					return true
				}
			}
			return false
		}
		return pi < len(pcs) && refCompMatch(cs[ci].items, mChars(pcs[pi])) && rec(ci+1, pi+1)
	}
	return rec(0, 0)
}

func refCompMatch(items []mItem, s []mChar) bool {
	// Consecutive literal items are one literal: their bytes are decoded together.
	var merged []mItem
	for _, it := range items {
		if it.kind == 'l' && len(merged) > 0 && merged[len(merged)-1].kind == 'l' {
			merged[len(merged)-1].lit += it.lit
			continue
		}
		merged = append(merged, it)
	}
	var rec func(ii, si int) bool
	rec = func(ii, si int) bool {
		if ii == len(merged) {
			return si == len(s)
		}
		it := merged[ii]
		switch it.kind {
		case '*':
			for k := si; k <= len(s); k++ {
				if rec(ii+1, k) {
					return true
				}
			}
			return false
		case '?':
			return si < len(s) && rec(ii+1, si+1)
		case '[':
			if si >= len(s) {
				return false
			}
			in := false
			for _, rg := range it.ranges {
				if mChars(rg[0])[0] <= s[si] && s[si] <= mChars(rg[1])[0] {
					in = true
				}
			}
			return in == (it.negate == 0) && rec(ii+1, si+1)
		}
		lit := mChars(it.lit)
		if len(s)-si < len(lit) {
			return false
		}
		for k, c := range lit {
			if s[si+k] != c {
				return false
			}
		}
		return rec(ii+1, si+len(lit))
	}
	return rec(0, 0)
}

func drawPath(t *rapid.T) string {
	var b strings.Builder
	for n := rapid.IntRange(1, 4).Draw(t, "pcomps"); n > 0; n-- {
		b.WriteString("/")
		if rapid.IntRange(0, 9).Draw(t, "long") == 0 {
			b.WriteString(strings.Repeat("a", 255))
			continue
		}
		for m := rapid.IntRange(1, 4).Draw(t, "pchars"); m > 0; m-- {
			b.WriteString(rapid.SampledFrom(mPathAlphabet).Draw(t, "pc"))
		}
	}
	return b.String()
}

// A generated glob matches exactly the paths the docs say it does.
func TestGlobModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		comps := drawGlob(t)
		text := renderGlob(t, comps)
		comps = fixStars(comps)
		p, err := Parse("m", strings.NewReader("deny "+text+"\n"))
		if err != nil {
			t.Fatalf("generated glob %q does not parse: %v", text, err)
		}
		g := p.Rules[0].Glob
		for i := 0; i < 8; i++ {
			path := drawPath(t)
			if got, want := g.Match(path), refGlobMatch(comps, path); got != want {
				t.Fatalf("glob %q (as written in the file) Match(%q) = %v, the docs say %v", text, path, got, want)
			}
		}
	})
}

// policy explain decides as the guard does (Explain and Decide), and both as the reference:
// the first rule whose events, glob and conditions hold decides, else the default.
func TestPolicyModelExplainAgreesWithDecide(t *testing.T) {
	type mRule struct {
		allow  bool
		events engine.Mask
		glob   []mComp
		cond   string
	}
	conds := []string{"", "uid=0", "uid!=0", "comm=ba*", "comm!=cat", "uid=0,1000 comm=b?sh"}
	condHolds := func(c string, uid int64, comm string) bool {
		switch c {
		case "uid=0":
			return uid == 0
		case "uid!=0":
			return uid != 0
		case "comm=ba*":
			return strings.HasPrefix(comm, "ba")
		case "comm!=cat":
			return comm != "cat"
		case "uid=0,1000 comm=b?sh":
			return (uid == 0 || uid == 1000) && len(comm) == 4 && comm[0] == 'b' && comm[2:] == "sh"
		}
		return true
	}
	evNames := map[engine.Mask]string{engine.OpenPerm: "open", engine.AccessPerm: "access", engine.OpenExecPerm: "exec", engine.PreAccess: "pre_access"}
	evs := []engine.Mask{engine.OpenPerm, engine.AccessPerm, engine.OpenExecPerm, engine.PreAccess}
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		defDeny := rapid.Bool().Draw(t, "default deny")
		if defDeny {
			b.WriteString("default deny\n")
		}
		var rules []mRule
		for n := rapid.IntRange(0, 5).Draw(t, "rules"); n > 0; n-- {
			r := mRule{allow: rapid.Bool().Draw(t, "allow"), cond: rapid.SampledFrom(conds).Draw(t, "cond")}
			comps := drawGlob(t)
			text := renderGlob(t, comps)
			r.glob = fixStars(comps)
			verdict := "deny"
			if r.allow {
				verdict = "allow"
			}
			var names []string
			for _, e := range evs {
				if rapid.IntRange(0, 2).Draw(t, "ev") == 0 {
					r.events |= e
					names = append(names, evNames[e])
				}
			}
			if len(names) == 0 {
				fmt.Fprintf(&b, "%s %s %s\n", verdict, text, r.cond)
			} else {
				fmt.Fprintf(&b, "%s %s %s %s\n", verdict, strings.Join(names, ","), text, r.cond)
			}
			rules = append(rules, r)
		}
		p, err := Parse("m", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("generated policy does not parse: %v\n%s", err, b.String())
		}
		if len(p.Rules) != len(rules) {
			t.Fatalf("%d rules parsed of %d:\n%s", len(p.Rules), len(rules), b.String())
		}
		uid := int64(rapid.SampledFrom([]int{0, 1000, 65534}).Draw(t, "uid"))
		comm := rapid.SampledFrom([]string{"bash", "cat", "bush", "ba"}).Draw(t, "comm")
		ev := rapid.SampledFrom(evs).Draw(t, "event")
		path := drawPath(t)
		req := Request{Path: path, Event: ev, Pid: 7, Proc: KnownProcess{Name: comm, UserID: uid}}

		want, wantRule := !defDeny, -1
		for i, r := range rules {
			if (r.events == 0 || r.events&ev != 0) && refGlobMatch(r.glob, path) && condHolds(r.cond, uid, comm) {
				want, wantRule = r.allow, i
				break
			}
		}
		d := p.Decide(&req)
		ex := p.Explain(&req)
		gotRule := -1
		for i, r := range p.Rules {
			if d.Rule == r {
				gotRule = i
			}
		}
		if d.Err != nil || (d.Verdict == engine.Allow) != want || gotRule != wantRule {
			t.Fatalf("%s of %q: Decide says %v by %s (err %v), the reference says allow=%v by rule %d, under\n%s",
				evNames[ev], path, d.Verdict, d.Source(), d.Err, want, wantRule+1, b.String())
		}
		if ex.Decision != d {
			t.Fatalf("Explain decides %+v, Decide %+v", ex.Decision, d)
		}
		if wantRule >= 0 {
			last := ex.Steps[len(ex.Steps)-1]
			if last.Rule != d.Rule || last.Result != Decided || len(ex.Steps) != wantRule+1 {
				t.Fatalf("Explain's steps end with %v (%v) after %d steps, want rule %d deciding", last.Rule, last.Result, len(ex.Steps), wantRule+1)
			}
		}
	})
}

// mayLackProc is a process whose executable may be any program and whose groups may lack
// one (a user's own namespaces): exe= and gid= may hold for it.
type mayLackProc struct{ KnownProcess }

func (mayLackProc) ExeUnknown() (bool, error)    { return true, nil }
func (mayLackProc) GroupsMayLack() (bool, error) { return true, nil }

// unverifiableObj is a file open for writing: its content cannot be read as one version.
type unverifiableObj struct{ KnownObject }

func (unverifiableObj) SHA256() ([32]byte, error) { return [32]byte{}, ErrUnverifiable }
func (unverifiableObj) Trusted() (bool, error)    { return false, ErrUnverifiable }

// What policy check says of a rule, that it never decides ([unreachable]: an earlier rule
// decides every access it could), holds for every request, those whose conditions may hold
// included (an executable that may be any program, groups that may lack one, content being
// written, a cut ancestry): the rule is never the one that decides. Before, an allow rule
// with exe=, gid=, sha256=, trusted= or trusted_exe= was taken to decide every access a later
// rule with the same conditions could, but such a condition may hold, and an allow that may
// match is passed over: the later deny decides.
func TestPolicyModelUnreachableNeverDecides(t *testing.T) {
	conds := []string{"", "exe=/usr/bin/cat", "gid=100", "gid!=100", "sha256=" + strings.Repeat("ab", 32),
		"trusted=yes", "trusted_exe=yes", "ancestor=/usr/bin/make", "uid=0", "comm=cat"}
	globs := []string{"**", "/srv/**", "/srv/a", "/srv/*/x", "**/*.key"}
	paths := []string{"/srv/a", "/srv/b/x", "/srv/k.key", "/etc/passwd", ""}
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		if rapid.Bool().Draw(t, "default deny") {
			b.WriteString("default deny\n")
		} else if rapid.Bool().Draw(t, "default allow") {
			b.WriteString("default allow\n")
		}
		for n := rapid.IntRange(1, 5).Draw(t, "rules"); n > 0; n-- {
			fmt.Fprintf(&b, "%s %s %s %s\n", rapid.SampledFrom([]string{"allow", "deny"}).Draw(t, "verdict"),
				rapid.SampledFrom([]string{"*", "open", "exec"}).Draw(t, "events"),
				rapid.SampledFrom(globs).Draw(t, "glob"), rapid.SampledFrom(conds).Draw(t, "cond"))
		}
		p, err := Parse("m", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		unreachable := map[string]bool{}
		for _, w := range p.LintWith(LintOptions{Weak: true}) {
			if w.Kind == KindUnreachable {
				unreachable[w.Source()] = true
			}
		}
		if len(unreachable) == 0 {
			return
		}
		kp := KnownProcess{Name: "cat", UserID: 1000, ExePath: "/usr/bin/cat", GroupIDs: []uint32{100},
			ParentPID: 1, Ancestry: Ancestry{List: []Ancestor{{Exe: "/usr/bin/make", Verified: true}}, Complete: true}, ExeTrust: Yes}
		procs := []Process{kp, mayLackProc{kp}, KnownProcess{Name: "sh", UserID: 0, ExePath: "/bin/sh", GroupIDs: []uint32{0},
			Ancestry: Ancestry{List: []Ancestor{}}, ExeTrust: No}}
		objs := []Object{KnownObject{SumKnown: true, Trust: Yes, Writable: Yes}, unverifiableObj{KnownObject{Trust: No, Writable: Yes}}}
		for _, proc := range procs {
			for _, obj := range objs {
				for _, path := range paths {
					for _, ev := range []engine.Mask{engine.OpenPerm, engine.OpenExecPerm} {
						d := p.Decide(&Request{Path: path, Event: ev, Pid: 9, Proc: proc, Obj: obj})
						src := d.Source()
						if d.Rule == nil && p.defaultSource != "" {
							src = p.defaultSource
						}
						if d.Err == nil && unreachable[src] {
							t.Fatalf("policy check says %s never decides, but it decides %v of %q by %+v (%T):\n%s",
								src, d.Verdict, path, proc, obj, b.String())
						}
					}
				}
			}
		}
	})
}
