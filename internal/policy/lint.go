package policy

import (
	"fmt"
	"math"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
)

// Warning is something Lint finds: a rule that parses but probably does not do what its
// author meant.
type Warning struct {
	// Rule is the rule; nil for the default (a warning that it never applies).
	Rule *Rule
	// Kind says what was found: KindForgeable, KindWeakDeny, KindUnreachable, KindNever.
	Kind string
	Msg  string

	source string
}

// Kinds of Warning.
const (
	// KindForgeable: an allow rule grants access on a test of the process that any process
	// can pass (comm=, ppid=1, ...).
	KindForgeable = "forgeable"
	// KindWeakDeny: a deny rule tells who by such a test alone: a process escapes it
	// (LintOptions.Weak only).
	KindWeakDeny = "weak-deny"
	// KindUnreachable: the rule (or the default) never decides: an earlier rule decides
	// every access it could.
	KindUnreachable = "unreachable"
	// KindNever: the rule's conditions can never all hold together.
	KindNever = "never-matches"
)

// String is "policy.rules:3: MSG" ("default: MSG" for the default).
func (w Warning) String() string { return w.Source() + ": " + w.Msg }

// Source is where the warned-about rule, or the default, is: "policy.rules:3", "--deny /x",
// "policy.rules:1" (a default line), or "default" when the default is implicit.
func (w Warning) Source() string {
	if w.Rule != nil {
		return w.Rule.String()
	}
	if w.source != "" {
		return w.source
	}
	return "default"
}

// LintOptions say what Lint looks for besides what a guard warns about.
type LintOptions struct {
	// Scanned: the accesses no rule decides go to a scanner (guard --exec), so an allow rule
	// skips the scan: it grants something even with the default allow.
	Scanned bool
	// Weak also reports deny rules that tell who is denied by forgeable tests alone (comm=,
	// ppid=, ...): a process escapes them by changing its name or parent. They only add
	// denies, so a guard does not warn about them; `fsnotifyd policy check` does.
	Weak bool
	// UserNS: unprivileged users may create user namespaces on this host. Then a process may
	// set its executable to any file it can open (prctl(PR_SET_MM_MAP) with exe_fd, which
	// needs only CAP_CHECKPOINT_RESTORE in a user namespace of its own; a process that shares
	// its memory with such a one gets it too, in the guard's namespaces), so exe=, ancestor=
	// and trusted_exe=yes say who no more than comm= does (docs/policy.md, "The executable").
	UserNS bool
}

// Lint is LintWith for a guard: what it finds with scanned (guard --exec) as
// LintOptions.Scanned.
func (p *Policy) Lint(scanned bool) []Warning { return p.LintWith(LintOptions{Scanned: scanned}) }

// LintWith reports, in rule order:
//
//   - allow rules that grant access on a test of the process any process can pass: comm=
//     (any process can set its own name with prctl(PR_SET_NAME), or run a copy of a program
//     under another name), ppid= naming 1 or ppid!= (any process can make its reaper its
//     parent by letting its own parent exit), ancestor!= and trusted_exe=no (any process
//     can run an untrusted program outside the chain), with no test that it cannot pass
//     (pid=, uid=, gid=, exe=, ancestor=, trusted_exe=yes). Such a rule grants its access to
//     every process. It is reported only where it grants something: when the default is
//     deny, when o.Scanned, or when a later deny rule may cover the same events and paths.
//     Tests of the file (ftype=, trusted=, ...) say what, not who: they neither excuse nor
//     count;
//     With o.UserNS, exe=, ancestor= and trusted_exe=yes are such tests too: a process may
//     set its executable where unprivileged user namespaces are enabled;
//   - with o.Weak, deny rules that tell who by such tests alone, or by ppid= or ancestor=,
//     which a process leaves by a double fork (its child's parent exits); and deny rules of
//     pre_access that leave the open of the same files to an allow (no earlier deny rule
//     denies it): the kernel asks no pre-content event for open(O_TRUNC), which empties the
//     file, nor for a mapping through an overlayfs stacked on it (docs/security.md,
//     "Pre-content accesses");
//   - rules that never decide, because an earlier rule decides every access they could (a
//     catch-all, the same rule again, /srv/** before /srv/a/*), and an explicit default
//     that never applies;
//   - rules whose conditions cannot all hold together (size>10 size<5; ftype=empty
//     size>0).
func (p *Policy) LintWith(o LintOptions) []Warning {
	var out []Warning
	for i, r := range p.Rules {
		if e := shadowedBy(p.Rules[:i], r); e != nil {
			out = append(out, Warning{Rule: r, Kind: KindUnreachable, Msg: fmt.Sprintf(
				"this rule never decides: %s (%s) comes first and decides every access it could", e, e.Text())})
		}
		if msg := neverHolds(r); msg != "" {
			out = append(out, Warning{Rule: r, Kind: KindNever, Msg: "this rule never matches: " + msg})
		}
		forged := forgeableOnly(r, o.UserNS, r.Verdict == engine.Deny)
		switch {
		case forged == nil:
		case r.Verdict == engine.Allow:
			if p.Default != engine.Deny && !o.Scanned && !laterDenyOverlaps(p.Rules[i+1:], r) {
				continue
			}
			fix := "add exe=, uid= or gid="
			if exeLike(forged) {
				fix = "add uid= or gid=, or turn unprivileged user namespaces off (sysctl user.max_user_namespaces=0)"
			}
			out = append(out, Warning{Rule: r, Kind: KindForgeable, Msg: "this allow rule tells who may access by " +
				forged.String() + " alone, " + forgeableWhy(forged, o.UserNS) + ": it grants the access to every process; " + fix})
		case o.Weak:
			out = append(out, Warning{Rule: r, Kind: KindWeakDeny, Msg: "this deny rule tells who by " + forged.String() +
				" alone, " + forgeableWhy(forged, false) + ": a process escapes it that way; deny by path, exe=, uid= or gid=, or allow by them"})
		}
		if o.Weak && preAccessOnly(p.Rules[:i], r) {
			out = append(out, Warning{Rule: r, Kind: KindWeakDeny, Msg: "this deny rule denies pre_access but not the open:" +
				" open(O_TRUNC) empties a file its user may write, and a mapping through an overlayfs a user stacks on it" +
				" (unshare -Urm) reads it, neither with a pre-content event; deny open too (deny open,pre_access ...)"})
		}
	}
	if p.defaultSource != "" {
		catchAll := &Rule{Glob: everyPath} // every event, every path, no condition
		if e := shadowedBy(p.Rules, catchAll); e != nil {
			out = append(out, Warning{Kind: KindUnreachable, source: p.defaultSource, Msg: fmt.Sprintf(
				"default %s never applies: %s (%s) decides every access", p.Default, e, e.Text())})
		}
	}
	return out
}

// preAccessOnly reports whether r denies pre_access but not open, and no earlier rule denies
// every open r's pre_access denies (see LintWith).
func preAccessOnly(earlier []*Rule, r *Rule) bool {
	if r.Verdict != engine.Deny || r.Events == 0 || r.Events&engine.PreAccess == 0 || r.Events&engine.OpenPerm != 0 {
		return false
	}
	open := *r
	open.Events = engine.OpenPerm
	e := shadowedBy(earlier, &open)
	return e == nil || e.Verdict != engine.Deny
}

// forgeableOnly returns the first condition by which r tells who may access that any
// process can make hold, if r has no condition on who that a process cannot (nil
// otherwise). See LintWith.
//
// For a deny rule (deny), a test is weak also when a process passes it by leaving its
// parent or its ancestors, which any process can (it forks, and the child's parent exits):
// ppid= and ancestor= deny the children and descendants of a process, and a double fork's
// grandchild is neither.
func forgeableOnly(r *Rule, userNS, deny bool) *Condition {
	var forged *Condition
	for i := range r.Conditions {
		c := &r.Conditions[i]
		switch {
		case c.Attr.IsObject():
		case forgeable(c) || userNS && !deny && exeLike(c) || deny && leavable(c):
			if forged == nil {
				forged = c
			}
		default:
			return nil
		}
	}
	return forged
}

func forgeable(c *Condition) bool {
	switch c.Attr {
	case AttrComm:
		return true
	case AttrPPID:
		return c.Negate || containsNum(c.nums, 1)
	case AttrAncestor:
		return c.Negate
	case AttrTrustedExe:
		return !c.yes
	}
	return false
}

// leavable reports whether c holds for a process only while it stays below some process:
// ppid= (its parent) and ancestor= (an ancestor's executable), which it leaves by a double
// fork.
func leavable(c *Condition) bool {
	return (c.Attr == AttrPPID || c.Attr == AttrAncestor) && !c.Negate
}

// exeLike reports whether c tells who by an executable that the process itself may choose
// where unprivileged user namespaces are enabled (LintOptions.UserNS): exe=, ancestor=,
// trusted_exe=yes.
func exeLike(c *Condition) bool {
	switch c.Attr {
	case AttrExe, AttrAncestor:
		return !c.Negate
	case AttrTrustedExe:
		return c.yes
	}
	return false
}

func forgeableWhy(c *Condition, userNS bool) string {
	if userNS && exeLike(c) {
		return "and, unprivileged user namespaces being enabled here, any process can set its executable to any file it can open (prctl PR_SET_MM_MAP, with the capability it holds in a user namespace of its own)"
	}
	switch c.Attr {
	case AttrComm:
		return "and any process can set its own name (prctl PR_SET_NAME, or a copy of a program under another name)"
	case AttrPPID:
		return "and any process can make its reaper (pid 1) its parent by letting its own parent exit"
	case AttrAncestor:
		return "and any process can leave a chain of ancestors (a double fork: its parent exits) or start outside it"
	}
	return "and any process can run a program that is not trusted"
}

// laterDenyOverlaps reports whether a deny rule in rules may decide some event and path that
// r allows (so r, coming first, lifts that deny).
func laterDenyOverlaps(rules []*Rule, r *Rule) bool {
	for _, d := range rules {
		if d.Verdict != engine.Deny {
			continue
		}
		if r.Events != 0 && d.Events != 0 && r.Events&d.Events == 0 {
			continue
		}
		if r.Glob.mayOverlap(d.Glob) {
			return true
		}
	}
	return false
}

// shadowedBy returns the first of earlier that decides every access r could decide, or nil.
// It is conservative: nil may also mean it could not tell.
func shadowedBy(earlier []*Rule, r *Rule) *Rule {
	for _, e := range earlier {
		if e.covers(r) {
			return e
		}
	}
	return nil
}

// covers reports whether e decides every access that r could decide, coming before it.
func (e *Rule) covers(r *Rule) bool {
	// Events: every event of r is one of e's.
	if e.Events != 0 && (r.Events == 0 || r.Events&^e.Events != 0) {
		return false
	}
	// Paths: e's glob matches every path r's does. An unknown path is decided by a deny rule
	// whose glob may match, but only by an allow rule whose glob matches every path.
	if !e.Glob.covers(r.Glob) || e.Verdict == engine.Allow && !e.Glob.matchesEveryPath {
		return false
	}
	// Conditions: each of e's is one of r's, so e holds wherever r does. One that may hold
	// without holding (ancestor=, exe=, gid=, and those on content: mayHoldAttrs) passes an
	// allow rule over, and r may then decide.
	for i := range e.Conditions {
		c := &e.Conditions[i]
		if e.Verdict == engine.Allow && mayHoldAttrs&(attrBits(1)<<c.Attr) != 0 || !r.hasCondition(c) {
			return false
		}
	}
	return true
}

func (r *Rule) hasCondition(c *Condition) bool {
	for i := range r.Conditions {
		if r.Conditions[i].String() == c.String() {
			return true
		}
	}
	return false
}

// covers reports whether g matches every path h matches (conservatively: false when it
// cannot tell). Cases: the same pattern; g matches every path (but perhaps "/", which h then
// must not match); g is LITERAL/.../** ("everything below") and h starts with the same
// literal components and has at least one more that is not **.
func (g *Glob) covers(h *Glob) bool {
	if g.pattern == h.pattern {
		return true
	}
	if g.matchesEveryPath {
		return g.Match("/") || !h.Match("/")
	}
	n := len(g.comps)
	if n < 2 || g.comps[n-1].kind != compStarStar || g.comps[n-2].kind != compAny {
		return false
	}
	prefix := g.comps[:n-2]
	if len(h.comps) <= len(prefix) {
		return false
	}
	for i, c := range prefix {
		if c.kind != compLiteral || h.comps[i].kind != compLiteral || h.comps[i].lit != c.lit {
			return false
		}
	}
	for _, c := range h.comps[len(prefix):] {
		if c.kind != compStarStar {
			return true // at least one more component in every path h matches
		}
	}
	return false
}

// neverHolds says why r's conditions can never all hold together, or "".
func neverHolds(r *Rule) string {
	lo, hi := uint64(0), uint64(math.MaxInt64)
	var ft *Condition
	for i := range r.Conditions {
		c := &r.Conditions[i]
		switch {
		case c.Attr == AttrSize && c.Cmp == '>':
			lo = c.size + 1
		case c.Attr == AttrSize && c.Cmp == '<':
			hi = c.size - 1
		case c.Attr == AttrFtype && !c.Negate:
			ft = c
		}
	}
	if lo > hi {
		return fmt.Sprintf("no size is both more than %d and less than %d bytes", lo-1, hi+1)
	}
	if ft == nil {
		return ""
	}
	empty, other := false, false
	for _, m := range ft.types {
		empty = empty || m.match(ftype.Type{Kind: ftype.Empty})
		for _, k := range ftype.Kinds() {
			other = other || k != ftype.Empty && (m.interp || m.match(ftype.Type{Kind: k}))
		}
	}
	switch {
	case lo > 0 && !other:
		return fmt.Sprintf("%s is a file of 0 bytes, and size>%d wants more", ft, lo-1)
	case hi == 0 && !empty:
		return fmt.Sprintf("size<1 is an empty file, whose type is empty, and %s wants another", ft)
	}
	return ""
}
