package policy

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Values of Glob.star besides an index.
const (
	noStar    = -1
	manyStars = -2
)

// Glob is a compiled path pattern. A guard matches it on every open(), so Match walks the path
// in place and never allocates. A Glob is immutable and safe for concurrent use.
//
// Syntax (see docs/policy.md):
//
//	pattern  matches
//	*        any run of characters within one path component, a leading dot included (a
//	         deny rule must not miss hidden files)
//	?        one character (a UTF-8 sequence, or one byte where the path is not UTF-8)
//	[abc]    one character of the class; [a-z] ranges; [!abc] or [^abc] negates; a ] first
//	         in the class is literal
//	**       as a whole component: zero or more components; as the last component after
//	         others (/data/**): one or more, i.e. everything below /data but not /data
//	\c       the character c, literally
//
// A pattern is absolute (starts with /) or starts with ** (matches at any depth). Empty
// components (//) and a trailing / are ignored; "." and ".." components are rejected because
// the kernel reports canonical paths, where they never occur.
type Glob struct {
	pattern string
	comps   []component
	// star is the index of the only ** in comps, noStar if there is none, or manyStars. With
	// at most one **, Match needs no backtracking: the components before it match from the
	// start of the path and those after it from the end.
	star int
	// matchesEveryPath: the glob matches every path but possibly "/" (**, /**, **/*), so
	// it matches a path that is unknown (an unknown path is never "/").
	matchesEveryPath bool
}

// compKind is how a pattern component matches one path component.
type compKind uint8

const (
	compLiteral  compKind = iota // exact bytes (lit)
	compAny                      // "*": any component
	compSuffix                   // "*" followed by a literal (lit): a very common case (*.key)
	compWild                     // general wildcard pattern (toks)
	compStarStar                 // "**": zero or more components
)

type component struct {
	kind compKind
	lit  string
	toks []token
}

type tokKind uint8

const (
	tokLit   tokKind = iota // lit
	tokStar                 // *
	tokOne                  // ?
	tokClass                // class
)

type token struct {
	kind  tokKind
	lit   string
	class *charClass
}

type charClass struct {
	negate bool
	ranges []runeRange // inclusive
}

type runeRange struct{ lo, hi rune }

// notUTF8 is added to a byte that is not part of a UTF-8 character to make it a character of
// its own, apart from every rune (all below it) and from every other such byte: a class
// [\xff] (a Latin-1 rules file) holds the byte 0xff, not every byte that is not UTF-8, nor
// U+FFFD. (utf8.DecodeRuneInString gives them all utf8.RuneError.)
const notUTF8 = utf8.MaxRune + 1

// decodeChar is the character at the start of s and its width: a UTF-8 character, or a single
// byte, notUTF8+b, where the bytes are not UTF-8 (docs/policy.md, "?"). s is not empty.
func decodeChar(s string) (rune, int) {
	r, w := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && w == 1 {
		return notUTF8 + rune(s[0]), 1
	}
	return r, w
}

// charBoundary reports whether byte k of s starts a character (or is its end): not inside a
// UTF-8 sequence that begins before it. A literal matches only from one boundary to another:
// "\xc3" (a byte that is not UTF-8 alone) is not the first half of "é", nor "\xa9" its last.
func charBoundary(s string, k int) bool {
	if k <= 0 || k >= len(s) || utf8.RuneStart(s[k]) {
		return true
	}
	// s[k] is a continuation byte: it is inside a character only if a lead byte at most three
	// bytes back starts a valid sequence that reaches past it. A lead byte starts a
	// character wherever it is (no sequence runs over one).
	for j := k - 1; j >= 0 && j >= k-3; j-- {
		if utf8.RuneStart(s[j]) {
			r, w := utf8.DecodeRuneInString(s[j:])
			return (r == utf8.RuneError && w == 1) || j+w <= k
		}
	}
	return true
}

func (c *charClass) match(r rune) bool {
	in := false
	for _, rg := range c.ranges {
		if rg.lo <= r && r <= rg.hi {
			in = true
			break
		}
	}
	return in != c.negate
}

// GlobError is a pattern that does not compile. Offset is the byte offset in the pattern
// where the problem is, so a rules-file parser can point at the column.
type GlobError struct {
	Pattern string
	Offset  int
	Msg     string
}

func (e *GlobError) Error() string {
	return fmt.Sprintf("glob %q: %s (at byte %d)", e.Pattern, e.Msg, e.Offset)
}

// CompileGlob compiles pattern.
func CompileGlob(pattern string) (*Glob, error) {
	g := &Glob{pattern: pattern}
	errAt := func(off int, format string, args ...any) error {
		return &GlobError{Pattern: pattern, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	if pattern == "" {
		return nil, errAt(0, "empty pattern")
	}
	if err := checkPatternBytes(pattern); err != nil {
		return nil, err
	}
	if pattern[0] != '/' && !strings.HasPrefix(pattern, "**") {
		return nil, errAt(0, "pattern must be absolute (start with /) or start with **; %s", relativeHint(pattern))
	}
	// Split into components by unescaped '/' outside classes. A '/' inside a class is an
	// error: classes match within one component.
	i := 0
	for i < len(pattern) {
		if pattern[i] == '/' {
			i++
			continue
		}
		start := i
		c, next, err := compileComponent(pattern, i)
		if err != nil {
			return nil, err
		}
		i = next
		raw := pattern[start:next]
		switch raw {
		case ".", "..":
			return nil, errAt(start, "%q component never matches: paths are canonical%s", raw, canonicalHint(pattern, next, g.comps))
		}
		if c.kind == compStarStar && len(g.comps) > 0 && g.comps[len(g.comps)-1].kind == compStarStar {
			continue // "**/**" is "**"
		}
		g.comps = append(g.comps, c)
	}
	// A trailing ** after other components means "below": one or more components. Compile
	// it as "*" then "**" so the matcher needs no special case.
	if n := len(g.comps); n > 1 && g.comps[n-1].kind == compStarStar {
		g.comps[n-1] = component{kind: compAny}
		g.comps = append(g.comps, component{kind: compStarStar})
	}
	g.star = noStar
	for i, c := range g.comps {
		if c.kind == compStarStar {
			if g.star != noStar {
				g.star = manyStars
				break
			}
			g.star = i
		}
	}
	// Only ** and at most one * (each * takes exactly one component, ** any number): the
	// glob matches every path of at least one component.
	anys := 0
	g.matchesEveryPath = g.star != noStar
	for _, c := range g.comps {
		switch c.kind {
		case compAny:
			anys++
		case compStarStar:
		default:
			g.matchesEveryPath = false
		}
	}
	if anys > 1 {
		g.matchesEveryPath = false
	}
	return g, nil
}

// relativeHint is what to write instead of pattern, a relative glob: "**/" before it, for any
// depth, unless that would be refused or mean something else than a shell's reading: a "./"
// or "../" path (relative to no directory: a rules file has none, and "**/./x" is refused),
// "~" or "$VAR" (not expanded: "**/~/x" names a directory called "~").
func relativeHint(pattern string) string {
	const notShell = "is not expanded (a rules file is not a shell): write the absolute path"
	switch {
	case pattern[0] == '~':
		return "~ " + notShell + " of the home directory (/home/NAME/...)"
	case pattern[0] == '$':
		v := pattern[1:]
		if strings.HasPrefix(v, "{") {
			if end := strings.IndexByte(v, '}'); end >= 0 {
				v = v[:end+1]
			}
		} else if end := strings.IndexFunc(v, func(r rune) bool {
			return !(r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
		}); end >= 0 {
			v = v[:end]
		}
		return "$" + v + " " + notShell + " it stands for"
	}
	if first, _, _ := strings.Cut(pattern, "/"); first != "." && first != ".." {
		if _, err := CompileGlob("**/" + pattern); err == nil {
			return "for any depth write **/" + pattern
		}
	}
	return "write an absolute path (a rules file is read from no working directory)"
}

// canonicalHint is what to write instead of pattern, whose component ending at end is "." or
// "..": the pattern with it taken away (path.Clean), when the components before it have no
// wildcard (so ".." takes away a known directory) and none after it is "." or "..".
func canonicalHint(pattern string, end int, before []component) string {
	for _, c := range before {
		if c.kind != compLiteral {
			return ""
		}
	}
	for _, c := range strings.Split(pattern[end:], "/") {
		if c == "." || c == ".." {
			return ""
		}
	}
	fix := path.Clean(pattern)
	if _, err := CompileGlob(fix); err != nil || fix == "/" {
		return ""
	}
	if strings.HasSuffix(pattern[:end], "..") {
		return "; write " + fix + " (the path the kernel reports if no symbolic link is on the way)"
	}
	return "; write " + fix
}

// LiteralPrefix is the path of the glob's leading components without a wildcard
// ("/srv/tls" of "/srv/tls/*.key"), "" for a glob that starts with one (**/*.key).
func (g *Glob) LiteralPrefix() string {
	var b strings.Builder
	for _, c := range g.comps {
		if c.kind != compLiteral {
			break
		}
		b.WriteByte('/')
		b.WriteString(c.lit)
	}
	return b.String()
}

// Literal reports whether the glob has no wildcard: it matches the one path LiteralPrefix
// gives.
func (g *Glob) Literal() bool {
	for _, c := range g.comps {
		if c.kind != compLiteral {
			return false
		}
	}
	return len(g.comps) > 0
}

// MatchesEveryPath reports whether the glob matches every absolute path except perhaps "/"
// (**, /**, **/*): the globs that match an unknown path.
func (g *Glob) MatchesEveryPath() bool { return g.matchesEveryPath }

// checkPatternBytes rejects a NUL, which no path or name holds (the pattern could never
// match), and the other control bytes but tab, which are invisible where rules are read and
// logged; ? and * match them.
func checkPatternBytes(pattern string) error {
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == 0:
			return &GlobError{Pattern: pattern, Offset: i, Msg: "NUL byte: no path or name holds one, so the pattern could never match"}
		case c < 0x20 && c != '\t' || c == 0x7f:
			return &GlobError{Pattern: pattern, Offset: i, Msg: fmt.Sprintf("control byte 0x%02x (to match it in a name, write ? or *)", c)}
		}
	}
	if i, r := invisibleChar(pattern); i >= 0 {
		return &GlobError{Pattern: pattern, Offset: i, Msg: invisibleMsg(r)}
	}
	return nil
}

// invisibleChar is the offset of the first character in s that shows as nothing, or as
// something else, on a terminal, and that character (-1 if none): a C1 control (U+0080 to
// U+009F: U+009B is CSI to some terminals), a format character (Unicode's Cf: zero-width
// spaces and joiners, the soft hyphen, bidirectional overrides and isolates, U+FEFF), a line or
// paragraph separator. A rule holding one does not read as what it matches: "/srv/se\u200bcret"
// shows as /srv/secret and never matches it; a right-to-left override reorders the line.
// Bytes that are not UTF-8 are not characters of this kind (a Latin-1 file's names).
func invisibleChar(s string) (int, rune) {
	for i, r := range s {
		if r < 0x80 || r == utf8.RuneError {
			continue
		}
		if r <= 0x9f || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return i, r
		}
	}
	return -1, 0
}

func invisibleMsg(r rune) string {
	return fmt.Sprintf("invisible character U+%04X: a rule holding it does not read as what it matches (to match it in a name, write ? or *)", r)
}

// MustCompileGlob is CompileGlob for patterns known to be valid; it panics otherwise.
func MustCompileGlob(pattern string) *Glob {
	g, err := CompileGlob(pattern)
	if err != nil {
		panic(err)
	}
	return g
}

// compileComponent compiles the component starting at pattern[i] (not a '/') and returns it
// with the index just past it.
func compileComponent(pattern string, i int) (component, int, error) {
	errAt := func(off int, format string, args ...any) error {
		return &GlobError{Pattern: pattern, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	var toks []token
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, token{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	start := i
	for i < len(pattern) && pattern[i] != '/' {
		switch ch := pattern[i]; ch {
		case '\\':
			if i+1 >= len(pattern) {
				return component{}, 0, errAt(i, "trailing backslash")
			}
			_, w := utf8.DecodeRuneInString(pattern[i+1:])
			if pattern[i+1] == '/' {
				return component{}, 0, errAt(i, "an escaped / never matches (/ separates components)")
			}
			lit.WriteString(pattern[i+1 : i+1+w])
			i += 1 + w
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				// ** must be a whole component: "a**" or "**b" is almost surely a mistake
				// (in gitignore and bash it silently means *), so say so.
				end := i + 2
				if i != start || (end < len(pattern) && pattern[end] != '/') {
					return component{}, 0, errAt(i, "** must be a whole path component (write /**/ or *)")
				}
				return component{kind: compStarStar}, end, nil
			}
			flush()
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, token{kind: tokStar})
			}
			i++
		case '?':
			flush()
			toks = append(toks, token{kind: tokOne})
			i++
		case '[':
			flush()
			cls, next, err := compileClass(pattern, i)
			if err != nil {
				return component{}, 0, err
			}
			toks = append(toks, token{kind: tokClass, class: cls})
			i = next
		default:
			lit.WriteByte(ch)
			i++
		}
	}
	flush()
	// Pick the fastest representation that matches the same set.
	switch {
	case len(toks) == 1 && toks[0].kind == tokLit:
		return component{kind: compLiteral, lit: toks[0].lit}, i, nil
	case len(toks) == 1 && toks[0].kind == tokStar:
		return component{kind: compAny}, i, nil
	case len(toks) == 2 && toks[0].kind == tokStar && toks[1].kind == tokLit:
		return component{kind: compSuffix, lit: toks[1].lit}, i, nil
	}
	return component{kind: compWild, toks: toks}, i, nil
}

// compileClass compiles the class whose '[' is at pattern[i]; it returns the index past ']'.
func compileClass(pattern string, i int) (*charClass, int, error) {
	open := i
	errAt := func(off int, format string, args ...any) error {
		return &GlobError{Pattern: pattern, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	cls := &charClass{}
	i++ // '['
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		cls.negate = true
		i++
	}
	first := true
	// next reads one class character (with \ escapes) at i.
	next := func() (rune, error) {
		if i >= len(pattern) {
			return 0, errAt(open, "unterminated character class (missing ])")
		}
		if pattern[i] == '\\' {
			i++
			if i >= len(pattern) {
				return 0, errAt(open, "unterminated character class (missing ])")
			}
		}
		if pattern[i] == '/' {
			return 0, errAt(i, "character class cannot contain / (a class matches within one component)")
		}
		r, w := decodeChar(pattern[i:])
		i += w
		return r, nil
	}
	for {
		if i >= len(pattern) {
			return nil, 0, errAt(open, "unterminated character class (missing ])")
		}
		if pattern[i] == ']' && !first {
			i++
			break
		}
		first = false
		lo, err := next()
		if err != nil {
			return nil, 0, err
		}
		hi := lo
		if i+1 < len(pattern) && pattern[i] == '-' && pattern[i+1] != ']' {
			dash := i
			i++
			if hi, err = next(); err != nil {
				return nil, 0, err
			}
			if hi < lo {
				return nil, 0, errAt(dash, "range %q-%q is reversed", lo, hi)
			}
		}
		cls.ranges = append(cls.ranges, runeRange{lo, hi})
	}
	return cls, i, nil
}

// String returns the pattern as written.
func (g *Glob) String() string { return g.pattern }

// Match reports whether path matches. path should be absolute and canonical (as the kernel
// reports it); empty components and a trailing slash are skipped. Match does not allocate.
func (g *Glob) Match(path string) bool {
	comps := g.comps
	switch g.star {
	case noStar:
		pos, ok := matchForward(comps, path)
		return ok && skipSlashes(path, pos) == len(path)
	case manyStars:
	default:
		pos, ok := matchForward(comps[:g.star], path)
		return ok && matchBackward(comps[g.star+1:], path, pos)
	}
	pi, pos := 0, 0
	// The last ** seen and the path position it was tried at: on a mismatch, that ** absorbs
	// one more component and matching resumes after it. Because every other component
	// consumes exactly one path component, retrying only the last ** is complete (the
	// classic wildcard algorithm, one level up), and the cost is O(len(path) * len(comps)).
	starPi, starPos := -1, 0
	for {
		pos = skipSlashes(path, pos)
		if pos >= len(path) {
			for pi < len(comps) && comps[pi].kind == compStarStar {
				pi++
			}
			return pi == len(comps)
		}
		if pi < len(comps) {
			c := &comps[pi]
			if c.kind == compStarStar {
				if pi == len(comps)-1 {
					return true // a final ** takes whatever is left
				}
				starPi, starPos = pi, pos
				pi++
				continue
			}
			end := compEnd(path, pos)
			if c.match(path[pos:end]) {
				pi++
				pos = end
				continue
			}
		}
		if starPi < 0 {
			return false
		}
		starPos = compEnd(path, skipSlashes(path, starPos))
		pos = starPos
		pi = starPi + 1
	}
}

// matchForward matches comps against the first components of path and returns the index
// just past them.
func matchForward(comps []component, path string) (int, bool) {
	pos := 0
	for i := range comps {
		pos = skipSlashes(path, pos)
		if pos >= len(path) {
			return 0, false
		}
		end := compEnd(path, pos)
		if !comps[i].match(path[pos:end]) {
			return 0, false
		}
		pos = end
	}
	return pos, true
}

// matchBackward matches comps against the last components of path, which must all lie at
// or after lo (the end of what matchForward took).
func matchBackward(comps []component, path string, lo int) bool {
	end := len(path)
	for ci := len(comps) - 1; ci >= 0; ci-- {
		for end > lo && path[end-1] == '/' {
			end--
		}
		start := strings.LastIndexByte(path[:end], '/') + 1
		if end <= lo || start < lo {
			return false // fewer components than the pattern needs
		}
		if !comps[ci].match(path[start:end]) {
			return false
		}
		end = start
	}
	return true
}

func skipSlashes(s string, i int) int {
	for i < len(s) && s[i] == '/' {
		i++
	}
	return i
}

func compEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '/'); j >= 0 {
		return i + j
	}
	return len(s)
}

func (c *component) match(s string) bool {
	switch c.kind {
	case compLiteral:
		return s == c.lit
	case compAny:
		return true
	case compSuffix:
		return strings.HasSuffix(s, c.lit) && charBoundary(s, len(s)-len(c.lit))
	case compWild:
		return matchTokens(c.toks, s)
	}
	return false
}

// matchTokens matches one component against wildcard tokens. Every token but * consumes a
// fixed amount of s from a given position, so backtracking to the last * alone is complete.
func matchTokens(toks []token, s string) bool {
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) {
			t := &toks[ti]
			switch t.kind {
			case tokStar:
				starTi, starSi = ti, si
				ti++
				continue
			case tokLit:
				if strings.HasPrefix(s[si:], t.lit) && charBoundary(s, si+len(t.lit)) {
					si += len(t.lit)
					ti++
					continue
				}
			case tokOne:
				if si < len(s) {
					_, w := decodeChar(s[si:])
					si += w
					ti++
					continue
				}
			case tokClass:
				if si < len(s) {
					r, w := decodeChar(s[si:])
					if t.class.match(r) {
						si += w
						ti++
						continue
					}
				}
			}
		} else if si == len(s) {
			return true
		}
		if starTi < 0 || starSi >= len(s) {
			return false
		}
		_, w := decodeChar(s[starSi:])
		starSi += w
		si = starSi
		ti = starTi + 1
	}
}

// minLen is the fewest bytes a name c matches has (each ? or class takes one at least), and
// c's leading literal.
func (c *component) minLen() (n int, lead string) {
	switch c.kind {
	case compLiteral:
		return len(c.lit), c.lit
	case compSuffix:
		return len(c.lit), ""
	}
	for i, t := range c.toks {
		switch t.kind {
		case tokLit:
			n += len(t.lit)
			if i == 0 {
				lead = t.lit
			}
		case tokOne, tokClass:
			n++
		}
	}
	return n, lead
}

// wordGlob is a single-component glob (no '/'), for a condition such as comm=bash*.
type wordGlob struct {
	src string
	c   component
}

// compileWord compiles a glob for a value that is not a path (a process name): the same
// syntax within one component; '/' and ** are not allowed.
func compileWord(pattern string) (*wordGlob, error) {
	if pattern == "" {
		return nil, &GlobError{Pattern: pattern, Msg: "empty pattern"}
	}
	if err := checkPatternBytes(pattern); err != nil {
		return nil, err
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return nil, &GlobError{Pattern: pattern, Offset: i, Msg: "a name pattern cannot contain /"}
	}
	c, next, err := compileComponent(pattern, 0)
	if err != nil {
		return nil, err
	}
	if c.kind == compStarStar {
		return nil, &GlobError{Pattern: pattern, Msg: "** is for paths; write *"}
	}
	if next != len(pattern) {
		return nil, &GlobError{Pattern: pattern, Offset: next, Msg: "unexpected character"}
	}
	return &wordGlob{src: pattern, c: c}, nil
}

func (w *wordGlob) match(s string) bool { return w.c.match(s) }

// mayOverlap reports whether some path might match both g and h. It is conservative: false
// means no path matches both (their fixed leading components differ, or without ** they have
// different lengths); true means one might.
func (g *Glob) mayOverlap(h *Glob) bool {
	n := min(len(g.comps), len(h.comps))
	for i := 0; i < n; i++ {
		a, b := &g.comps[i], &h.comps[i]
		if a.kind == compStarStar || b.kind == compStarStar {
			return true
		}
		switch {
		case a.kind == compLiteral && !b.match(a.lit):
			return false
		case b.kind == compLiteral && !a.match(b.lit):
			return false
		}
	}
	if g.star == noStar && h.star == noStar {
		return len(g.comps) == len(h.comps)
	}
	return true
}
