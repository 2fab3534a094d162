package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// maxLine bounds a rules-file line, so a stray binary file fails cleanly.
const maxLine = 1 << 20

// maxComm is the longest process name the kernel keeps (TASK_COMM_LEN - 1).
const maxComm = 15

// ParseError is a rules-file error at a position. Line and Col are 1-based; Col counts bytes.
type ParseError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Parse reads a rules file; name is used in errors and in each rule's String ("name:line").
func Parse(name string, r io.Reader) (*Policy, error) {
	if name == "" {
		name = "policy"
	}
	p := &Policy{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	lineNo := 0
	defaultLine := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		line = strings.TrimSuffix(line, "\r")
		ps := &lineParser{file: name, line: lineNo, text: line}
		if err := ps.checkBytes(); err != nil {
			return nil, err
		}
		toks, err := ps.tokenize()
		if err != nil {
			return nil, err
		}
		if len(toks) == 0 {
			continue
		}
		switch toks[0].text {
		case "default":
			v, err := ps.parseDefault(toks)
			if err != nil {
				return nil, err
			}
			if defaultLine != 0 {
				return nil, ps.errAt(toks[0].col, "default already set on line %d", defaultLine)
			}
			defaultLine = lineNo
			p.Default = v
			p.defaultSource = fmt.Sprintf("%s:%d", name, lineNo)
		default:
			rule, err := ps.parseRule(toks)
			if err != nil {
				return nil, err
			}
			p.Rules = append(p.Rules, rule)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{File: name, Line: lineNo + 1, Col: 1,
				Msg: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// word is one word of a line, with its quotes removed and its backslash escapes kept (the
// glob compiler reads them, so one level of escaping serves both).
type word struct {
	text   string
	col    int   // column of the word's first character
	cols   []int // column of each byte of text
	quoted bool  // the word starts with a quote
}

// colAt is the column of byte off of the word's text (or just past its end).
func (t *word) colAt(off int) int {
	if off >= 0 && off < len(t.cols) {
		return t.cols[off]
	}
	if len(t.cols) > 0 {
		return t.cols[len(t.cols)-1] + 1
	}
	return t.col
}

// endCol is the column just past the word, where a missing next word would go.
func (t *word) endCol() int { return t.colAt(len(t.text)) + 1 }

type lineParser struct {
	file string
	line int
	text string
}

func (ps *lineParser) errAt(col int, format string, args ...any) error {
	return &ParseError{File: ps.file, Line: ps.line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// checkBytes rejects a line holding a control byte other than tab, anywhere, comments
// included. A NUL never occurs in a path or a process name, so a glob or value holding one
// would make a rule that never matches; it, and any other control byte, is also the mark of a
// binary or corrupt file. And a control byte is invisible, or rewrites the line, on a terminal:
// a rule holding one would not read as what it matches. A name that holds such a byte is
// matched with ? or *.
func (ps *lineParser) checkBytes() error {
	for i := 0; i < len(ps.text); i++ {
		switch c := ps.text[i]; {
		case c == 0:
			return ps.errAt(i+1, "NUL byte: no path or name holds one, so nothing could match it (is this a binary or corrupt file?)")
		case c < 0x20 && c != '\t' || c == 0x7f:
			return ps.errAt(i+1, "control byte 0x%02x: a rules file is text (to match such a byte in a name, write ? or *)", c)
		}
	}
	if i, r := invisibleChar(ps.text); i >= 0 {
		return ps.errAt(i+1, "%s", invisibleMsg(r))
	}
	return nil
}

// tokenize splits the line into tokens: blanks (space, tab) separate them, "..." quotes keep
// blanks inside a word, a backslash keeps the next character in the word (escape included),
// and # at the start of a word comments out the rest of the line.
func (ps *lineParser) tokenize() ([]word, error) {
	s := ps.text
	var toks []word
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) || s[i] == '#' {
			return toks, nil
		}
		t := word{col: i + 1, quoted: s[i] == '"'}
		var b []byte
		inQuote := false
		quoteCol := 0
		for i < len(s) {
			c := s[i]
			if !inQuote && (c == ' ' || c == '\t') {
				break
			}
			switch {
			case c == '"':
				inQuote = !inQuote
				quoteCol = i + 1
				i++
			case c == '\\' && i+1 < len(s):
				b = append(b, c, s[i+1])
				t.cols = append(t.cols, i+1, i+2)
				i += 2
			default:
				b = append(b, c)
				t.cols = append(t.cols, i+1)
				i++
			}
		}
		if inQuote {
			return nil, ps.errAt(quoteCol, "unterminated quote (want a closing \")")
		}
		t.text = string(b)
		toks = append(toks, t)
	}
}

func (ps *lineParser) parseVerdict(t *word, what string) (engine.Verdict, error) {
	switch t.text {
	case "allow":
		return engine.Allow, nil
	case "deny":
		return engine.Deny, nil
	}
	return 0, ps.errAt(t.col, "unknown verdict %q (want %s)", t.text, what)
}

func (ps *lineParser) parseDefault(toks []word) (engine.Verdict, error) {
	if len(toks) < 2 {
		return 0, ps.errAt(toks[0].endCol(), "missing verdict after default (want allow or deny)")
	}
	v, err := ps.parseVerdict(&toks[1], "allow or deny")
	if err != nil {
		return 0, err
	}
	if len(toks) > 2 {
		return 0, ps.errAt(toks[2].col, "unexpected %q after default %s (want end of line)", toks[2].text, v)
	}
	return v, nil
}

// everyPath is the glob of a rule written without one: every path, as **.
var everyPath = MustCompileGlob("**")

// looksLikeCondition tells a condition (uid=0, size>1M) from a glob where a rule's glob goes:
// a rule may leave its glob out and start its conditions there.
func looksLikeCondition(t *word) bool {
	return !t.quoted && strings.ContainsAny(t.text, "=<>") &&
		!strings.HasPrefix(t.text, "/") && !strings.HasPrefix(t.text, "**")
}

// looksLikeEvents tells an events word (open,exec or *) from a glob in a rule's second word.
func looksLikeEvents(t *word) bool {
	if t.quoted {
		return false
	}
	if t.text == "*" || t.text == "all" {
		return true
	}
	for i := 0; i < len(t.text); i++ {
		c := t.text[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ',' || c == '-') {
			return false
		}
	}
	return true
}

func (ps *lineParser) parseRule(toks []word) (*Rule, error) {
	v, err := ps.parseVerdict(&toks[0], "allow, deny or default")
	if err != nil {
		return nil, err
	}
	r := &Rule{Verdict: v, source: fmt.Sprintf("%s:%d", ps.file, ps.line)}
	i := 1
	if i < len(toks) && looksLikeEvents(&toks[i]) && !strings.Contains(toks[i].text, "=") {
		t := &toks[i]
		if t.text != "*" && t.text != "all" {
			m, off, err := parseEvents(t.text)
			if err != nil {
				return nil, ps.errAt(t.colAt(off), "%v", err)
			}
			r.Events = m
		}
		i++
		if i >= len(toks) {
			return nil, ps.errAt(t.endCol(), "missing path glob after events (e.g. %s %s /srv/**)", v, t.text)
		}
	}
	if i >= len(toks) {
		return nil, ps.errAt(toks[0].endCol(), "missing path glob (e.g. %s /srv/**)", v)
	}
	gt := &toks[i]
	if looksLikeCondition(gt) {
		// No glob, but conditions: the rule is about every path, as with **.
		r.Glob = everyPath
	} else {
		g, err := CompileGlob(gt.text)
		if err != nil {
			var ge *GlobError
			if errors.As(err, &ge) {
				return nil, ps.errAt(gt.colAt(ge.Offset), "bad glob %q: %s", gt.text, ge.Msg)
			}
			return nil, ps.errAt(gt.col, "bad glob %q: %v", gt.text, err)
		}
		r.Glob = g
		i++
	}

	seen := map[string]int{}
	for ; i < len(toks); i++ {
		t := &toks[i]
		if t.text == "cache" {
			if v != engine.Allow {
				return nil, ps.errAt(t.col, "cache applies to allow rules only")
			}
			if c, dup := seen["cache"]; dup {
				return nil, ps.errAt(t.col, "duplicate cache (first at column %d)", c)
			}
			seen["cache"] = t.col
			r.Cache = true
			continue
		}
		opAt := strings.IndexAny(t.text, "=<>")
		if opAt < 0 {
			return nil, ps.errAt(t.col, "unexpected %q (want a condition %s, errno=, or cache)", t.text, keyList())
		}
		key, negate, cmp := t.text[:opAt], false, byte(0)
		if t.text[opAt] != '=' {
			cmp = t.text[opAt]
		} else if strings.HasSuffix(key, "!") {
			key, negate = key[:len(key)-1], true
		}
		valOff := opAt + 1
		val := t.text[valOff:]
		k := lookupKey(key)
		if k == nil && key != "errno" {
			return nil, ps.errAt(t.col, "unknown condition %q (want %s, errno=, or cache)", key, keyList())
		}
		switch {
		case k != nil && k.cmp && cmp == 0:
			return nil, ps.errAt(t.colAt(len(key)), "%s takes > or <: write %s>N or %s<N", key, key, key)
		case (k == nil || !k.cmp) && cmp != 0:
			return nil, ps.errAt(t.colAt(opAt), "%s takes = or != (only size compares with > and <)", key)
		case k != nil && k.yesNo && negate:
			return nil, ps.errAt(t.colAt(len(key)), "%s takes = (write %s=yes or %s=no)", key, key, key)
		}
		dupKey := key + string(t.text[opAt:valOff]) // size> and size< are two keys
		if cmp == 0 {
			dupKey = key
		}
		if c, dup := seen[dupKey]; dup {
			return nil, ps.errAt(t.col, "duplicate %s condition (first at column %d)", dupKey, c)
		}
		seen[dupKey] = t.col
		if val == "" {
			return nil, ps.errAt(t.colAt(valOff), "missing value after %s", t.text)
		}
		if k == nil { // errno
			if negate {
				return nil, ps.errAt(t.col, "errno takes = (errno!= makes no sense)")
			}
			if v != engine.Deny {
				return nil, ps.errAt(t.col, "errno applies to deny rules only")
			}
			e, ok := lookupErrno(val)
			if !ok {
				return nil, ps.errAt(t.colAt(valOff), "unknown errno %q (want one of %s)", val, errnoList())
			}
			r.Errno = e
			continue
		}
		c := Condition{Attr: k.attr, Negate: negate, Cmp: cmp}
		for j, el := range splitUnescaped(val, ',') {
			off := valOff + el.off
			if el.s == "" {
				return nil, ps.errAt(t.colAt(off), "empty value in %s", t.text)
			}
			if j > 0 && (k.cmp || k.yesNo) {
				return nil, ps.errAt(t.colAt(off-1), "%s takes one value", key+c.op())
			}
			c.Values = append(c.Values, el.s)
			if at, msg := k.compile(&c, el.s); msg != "" {
				return nil, ps.errAt(t.colAt(off+at), "%s", msg)
			}
		}
		r.Conditions = append(r.Conditions, c)
	}
	return r, nil
}

func lookupErrno(name string) (e syscall.Errno, ok bool) {
	for _, n := range errnoNames {
		if fsevent.EqualFoldASCII(n.name, name) {
			return n.errno, true
		}
	}
	return 0, false
}

type piece struct {
	s   string
	off int
}

// splitUnescaped splits s at each sep not preceded by a backslash escape.
func splitUnescaped(s string, sep byte) []piece {
	var out []piece
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, piece{s[start:i], start})
			start = i + 1
		}
	}
	return append(out, piece{s[start:], start})
}

// quoteToken writes s so that tokenize reads it back unchanged: in quotes if it has blanks,
// quotes, control characters or a leading #, with bare quotes escaped (the glob compiler reads
// \" as ").
func quoteToken(s string) string {
	need := s == "" || s[0] == '#'
	for i := 0; i < len(s) && !need; i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] != '\t' && (s[i+1] >= 0x20 && s[i+1] != 0x7f):
			i++ // an escaped blank or quote stays as it is
		case c == ' ' || c == '\t' || c == '"' || c < 0x20 || c == 0x7f:
			need = true
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case c == '"':
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
