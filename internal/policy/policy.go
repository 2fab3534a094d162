// Package policy holds the guard's decision rules: an ordered list of allow/deny rules on path
// globs, event kinds and process attributes, where the first match wins.
//
// The guard calls (*Policy).Decide on every permission event, so Decide does not allocate and
// fetches process attributes (comm, uid, groups, exe) only when a rule that could match needs
// them. A
// Policy is immutable once built and safe for concurrent use.
//
// The rules-file syntax is documented in docs/policy.md.
package policy

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// eventKindList names the event kinds a rule may name: the accesses fsevent names permission
// events by (fsevent.AccessName).
var eventKindList = fsevent.AccessNames(", ")

// ParseEvents parses a comma list of event kinds (open, access, exec, pre_access), as the
// guard's --events flag and a rule's events take, into permission-event bits.
func ParseEvents(list string) (engine.Mask, error) {
	m, _, err := parseEvents(list)
	return m, err
}

// parseEvents also returns the byte offset of the offending name, for column numbers.
func parseEvents(list string) (engine.Mask, int, error) {
	var m engine.Mask
	off := 0
	for _, name := range strings.Split(list, ",") {
		bit, ok := fsevent.MaskByAccess(name)
		if !ok {
			if name == "" {
				return 0, off, fmt.Errorf("empty event name in %q (want a comma list of %s)", list, eventKindList)
			}
			return 0, off, fmt.Errorf("unknown event %q (want %s)", name, eventKindList)
		}
		m |= bit
		off += len(name) + 1
	}
	return m, 0, nil
}

// eventsText is the inverse of parseEvents, in a fixed order.
func eventsText(m engine.Mask) string {
	if m == 0 {
		return "*"
	}
	var names []string
	for bit := engine.Mask(1); bit != 0; bit <<= 1 {
		if n := fsevent.AccessName(bit); n != "" && m&bit != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// normalizeEvent maps an event's mask to the permission bits rules are written in: a
// notification open/access/exec counts as its permission kind, so a policy can also classify
// notification events.
func normalizeEvent(m engine.Mask) engine.Mask {
	k := m & engine.PermissionEvents
	if m&engine.Open != 0 {
		k |= engine.OpenPerm
	}
	if m&engine.Access != 0 {
		k |= engine.AccessPerm
	}
	if m&engine.OpenExec != 0 {
		k |= engine.OpenExecPerm
	}
	return k
}

// Errno names a rule's errno= may use: the kernel's FAN_DENY_ERRNO set (engine.DenyErrnos).
var errnoNames = []struct {
	name  string
	errno syscall.Errno
}{
	{"EPERM", syscall.EPERM},
	{"EIO", syscall.EIO},
	{"EBUSY", syscall.EBUSY},
	{"ETXTBSY", syscall.ETXTBSY},
	{"EAGAIN", syscall.EAGAIN},
	{"ENOSPC", syscall.ENOSPC},
	{"EDQUOT", syscall.EDQUOT},
}

func errnoList() string {
	var names []string
	for _, e := range errnoNames {
		names = append(names, e.name)
	}
	return strings.Join(names, ", ")
}

func errnoName(e syscall.Errno) string {
	for _, n := range errnoNames {
		if n.errno == e {
			return n.name
		}
	}
	return strconv.Itoa(int(e))
}

// Process gives the attributes of the process behind a request. Decide calls each method at
// most once per request, and only if a rule that matched the path and event has a condition on
// that attribute, so the guard can read /proc lazily, while the process waits.
//
// Each method returns the attribute or an error. An error that is os.ErrProcessDone (or wraps
// it) means the process is gone (or unknown: pid 0): a condition on it does not hold, and
// nobody waits for the answer anyway. Any other error is the guard's own failure to read what
// a rule needs: Decide stops there and reports it in Decision.Err, and the guard answers with
// its on-error verdict.
type Process interface {
	// Comm is the process name, /proc/PID/comm. Any process can set its own (prctl
	// PR_SET_NAME), so it identifies nothing.
	Comm() (string, error)
	// UID is the effective user id.
	UID() (uint32, error)
	// Groups are all the process's group ids: real, effective, saved and filesystem gid and
	// the supplementary groups. An unprivileged process can neither add a group to this set
	// nor drop one from it.
	Groups() ([]uint32, error)
	// Exe is the executable the process runs, /proc/PID/exe. verified is false when path
	// does not lead, in the guard's mount namespace, to that very file (it was deleted or
	// replaced since, or the process started it through a mount the guard does not see):
	// such an executable matches no exe= glob.
	Exe() (path string, verified bool, err error)
}

// KnownProcess is a Process whose attributes are already at hand. A zero field (an empty
// Name or ExePath, a negative UserID, nil GroupIDs) means unknown, as if the process were gone.
type KnownProcess struct {
	Name   string
	UserID int64
	// ExePath is the executable; ExeUnverified says it could not be verified (see Process).
	ExePath       string
	ExeUnverified bool
	GroupIDs      []uint32
}

func (k KnownProcess) Comm() (string, error) {
	if k.Name == "" {
		return "", os.ErrProcessDone
	}
	return k.Name, nil
}

func (k KnownProcess) UID() (uint32, error) {
	if k.UserID < 0 || k.UserID > int64(^uint32(0)) {
		return 0, os.ErrProcessDone
	}
	return uint32(k.UserID), nil
}

func (k KnownProcess) Groups() ([]uint32, error) {
	if k.GroupIDs == nil {
		return nil, os.ErrProcessDone
	}
	return k.GroupIDs, nil
}

func (k KnownProcess) Exe() (string, bool, error) {
	if k.ExePath == "" {
		return "", false, os.ErrProcessDone
	}
	return k.ExePath, !k.ExeUnverified, nil
}

// Request is one access to decide.
type Request struct {
	// Path is the absolute, canonical path of the file (as the kernel reports it). "" means
	// unknown, as does PathUnknown.
	Path string
	// PathUnknown says the path could not be read: the kernel could not print it (deeper
	// than PATH_MAX) or printed one that does not lead to the file. Decide then evaluates
	// every glob as "may match" (see Decide).
	PathUnknown bool
	// Event holds the event's bit(s): OpenPerm, AccessPerm, OpenExecPerm or PreAccess (their
	// notification counterparts Open, Access and OpenExec count as the same kinds).
	Event engine.Mask
	// Pid is the accessing process (0: unknown).
	Pid int32
	// Proc gives the process's attributes on demand; nil means all are unknown.
	Proc Process
}

// Decision is Decide's answer.
type Decision struct {
	Verdict engine.Verdict
	// Errno, with Deny, is the error the access fails with (a rule's errno=); 0 means the
	// kernel's default, EPERM. Only a pre-content group may send it.
	Errno syscall.Errno
	// Cache, with Allow, says the allow may be cached in the kernel for this file and event:
	// the deciding rule said cache (or the policy caches every allow) and no other process
	// could get a different verdict for this path and event (see Decide).
	Cache bool
	// Rule is the rule that decided, or nil when the policy's default applied.
	Rule *Rule
	// PathUnknown says the path was unknown: Rule (a deny rule) may match it, or no rule
	// could be shown to match and the default applied.
	PathUnknown bool
	// Err, when set, is why the policy could not decide: reading an attribute that Rule's
	// conditions need failed (not because the process is gone; see Process). Verdict is then
	// Deny; a guard answers with its on-error verdict instead.
	Err error
}

// Response converts d to the engine's answer.
func (d Decision) Response() engine.Response {
	return engine.Response{Verdict: d.Verdict, Errno: d.Errno, Cache: d.Cache}
}

// Source describes what decided, for audit logs: the rule's String(), or "default".
func (d Decision) Source() string {
	if d.Err != nil && d.Rule != nil {
		return "error in " + d.Rule.String()
	}
	if d.Rule == nil {
		return "default"
	}
	return d.Rule.String()
}

// Rule is one rule. Build rules with Parse or FromFlags; a Rule must not be changed once it is
// part of a Policy.
type Rule struct {
	Verdict engine.Verdict
	// Events are the permission bits the rule applies to; 0 means every event.
	Events engine.Mask
	// Glob matches the path.
	Glob *Glob
	// Conditions must all hold.
	Conditions []Condition
	// Errno (deny rules only) is the error to deny with; 0 means EPERM.
	Errno syscall.Errno
	// Cache (allow rules only) lets the allow be cached in the kernel.
	Cache bool

	source string
}

// String describes where the rule comes from, stably, for audit logs: "policy.rules:3" or
// "--deny /srv/**".
func (r *Rule) String() string { return r.source }

// Text returns the rule in rules-file syntax; parsing it gives back an equal rule.
func (r *Rule) Text() string {
	var b strings.Builder
	b.WriteString(r.Verdict.String())
	b.WriteByte(' ')
	b.WriteString(eventsText(r.Events))
	b.WriteByte(' ')
	b.WriteString(quoteToken(r.Glob.String()))
	for _, c := range r.Conditions {
		b.WriteByte(' ')
		b.WriteString(c.String())
	}
	if r.Errno != 0 {
		b.WriteString(" errno=")
		b.WriteString(errnoName(r.Errno))
	}
	if r.Cache {
		b.WriteString(" cache")
	}
	return b.String()
}

// Attr is what a condition tests.
type Attr uint8

const (
	AttrPID  Attr = iota + 1 // pid=
	AttrUID                  // uid= (the effective uid)
	AttrComm                 // comm= (a glob on the process name, /proc/PID/comm; forgeable)
	AttrExe                  // exe= (a path glob on the executable, /proc/PID/exe)
	AttrGID                  // gid= (any of the process's groups)
)

func (a Attr) String() string {
	if k := keyOf(a); k != nil {
		return k.name
	}
	return fmt.Sprintf("attr(%d)", uint8(a))
}

// Condition is key=v1,v2 (the attribute is one of the values) or key!=v1,v2 (none of them).
type Condition struct {
	Attr   Attr
	Negate bool
	// Values as written; for comm= and exe= they are globs.
	Values []string

	nums  []uint32    // pid, uid, gid
	names []*wordGlob // comm
	globs []*Glob     // exe
}

func (c Condition) String() string {
	op := "="
	if c.Negate {
		op = "!="
	}
	vals := make([]string, len(c.Values))
	for i, v := range c.Values {
		vals[i] = quoteToken(v)
	}
	return c.Attr.String() + op + strings.Join(vals, ",")
}

// eval evaluates c; attributes come from a. An attribute of a process that is gone makes the
// condition not hold (key= and key!= alike); any other error reading it is returned.
func (c *Condition) eval(a *attrs) (bool, error) {
	in, err := c.test(a)
	if err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return false, nil
		}
		what := c.Attr.String()
		if k := keyOf(c.Attr); k != nil {
			what = k.what
		}
		return false, fmt.Errorf("reading the process's %s for %s: %w", what, c.Attr, err)
	}
	return in != c.Negate, nil
}

// test reports whether the request's attribute is one of c's values, or why it is not known
// (os.ErrProcessDone: the process is gone). A switch, not a function in condKeys: a call
// through a function value would make a escape, and Decide allocate.
func (c *Condition) test(a *attrs) (bool, error) {
	switch c.Attr {
	case AttrPID:
		if a.req.Pid <= 0 {
			return false, os.ErrProcessDone
		}
		return containsNum(c.nums, uint32(a.req.Pid)), nil
	case AttrUID:
		uid, err := a.uid()
		return err == nil && containsNum(c.nums, uid), err
	case AttrGID:
		groups, err := a.groups()
		if err != nil {
			return false, err
		}
		for _, g := range groups {
			if containsNum(c.nums, g) {
				return true, nil
			}
		}
		return false, nil
	case AttrComm:
		comm, err := a.comm()
		if err != nil {
			return false, err
		}
		for _, g := range c.names {
			if g.match(comm) {
				return true, nil
			}
		}
		return false, nil
	case AttrExe:
		exe, verified, err := a.exe()
		if err != nil || !verified {
			return false, err // an unverified executable matches no glob
		}
		for _, g := range c.globs {
			if g.Match(exe) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, nil
}

// condKey is one condition key of the rules language: its name and how a value is compiled.
// Adding a key is adding an entry here, an Attr, its case in Condition.test and, for a new
// process attribute, a Process method and its fetch in attrs.
type condKey struct {
	name string
	attr Attr
	what string // the attribute, for error messages: "executable"
	// compile adds one value (not empty) of a list to c. On error it returns the byte offset
	// in v of the problem and a message.
	compile func(c *Condition, v string) (off int, msg string)
}

var condKeys = []condKey{
	{name: "pid", attr: AttrPID, what: "pid", compile: compilePid},
	{name: "uid", attr: AttrUID, what: "effective uid", compile: compileID("uid", "user")},
	{name: "gid", attr: AttrGID, what: "groups", compile: compileID("gid", "group")},
	{name: "comm", attr: AttrComm, what: "name", compile: compileComm},
	{name: "exe", attr: AttrExe, what: "executable", compile: compileExe},
}

func keyOf(a Attr) *condKey {
	for i := range condKeys {
		if condKeys[i].attr == a {
			return &condKeys[i]
		}
	}
	return nil
}

func lookupKey(name string) *condKey {
	for i := range condKeys {
		if condKeys[i].name == name {
			return &condKeys[i]
		}
	}
	return nil
}

// keyList is the condition keys for error messages: "pid=, uid=, gid=, comm=, exe=".
func keyList() string {
	var names []string
	for _, k := range condKeys {
		names = append(names, k.name+"=")
	}
	return strings.Join(names, ", ")
}

func compilePid(c *Condition, v string) (int, string) {
	n, err := strconv.ParseUint(v, 10, 31)
	if err != nil || n == 0 {
		return 0, fmt.Sprintf("pid %q: want a positive number", v)
	}
	c.nums = append(c.nums, uint32(n))
	return 0, ""
}

func compileID(key, what string) func(c *Condition, v string) (int, string) {
	return func(c *Condition, v string) (int, string) {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Sprintf("%s %q: want a number (%s names are not looked up)", key, v, what)
		}
		c.nums = append(c.nums, uint32(n))
		return 0, ""
	}
}

func compileComm(c *Condition, v string) (int, string) {
	w, err := compileWord(v)
	if err != nil {
		var ge *GlobError
		if errors.As(err, &ge) {
			return ge.Offset, fmt.Sprintf("bad comm pattern %q: %s", v, ge.Msg)
		}
		return 0, fmt.Sprintf("bad comm pattern %q: %v", v, err)
	}
	if w.c.kind == compLiteral && len(w.c.lit) > maxComm {
		return 0, fmt.Sprintf("comm %q never matches: the kernel keeps only the first %d bytes of a process name (write %q)",
			v, maxComm, w.c.lit[:maxComm])
	}
	c.names = append(c.names, w)
	return 0, ""
}

func compileExe(c *Condition, v string) (int, string) {
	g, err := CompileGlob(v)
	if err != nil {
		var ge *GlobError
		if errors.As(err, &ge) {
			return ge.Offset, fmt.Sprintf("bad exe pattern %q: %s", v, ge.Msg)
		}
		return 0, fmt.Sprintf("bad exe pattern %q: %v", v, err)
	}
	c.globs = append(c.globs, g)
	return 0, ""
}

func containsNum(list []uint32, v uint32) bool {
	for _, n := range list {
		if n == v {
			return true
		}
	}
	return false
}

// attrs fetches a request's process attributes at most once each. It is kept small: Decide
// makes one per request. A read that fails other than for a gone process is not remembered,
// as Decide stops at it.
type attrs struct {
	req        *Request
	done, gone attrBits // attributes read; those of them that found the process gone

	commVal     string
	uidVal      uint32
	groupsVal   []uint32
	exeVal      string
	exeVerified bool
}

type attrBits uint8

const (
	bitComm attrBits = 1 << iota
	bitUID
	bitGroups
	bitExe
)

// cached reports whether attribute bit was read, and how: nil, or os.ErrProcessDone.
func (a *attrs) cached(bit attrBits) (bool, error) {
	switch {
	case a.done&bit == 0:
		return false, nil
	case a.gone&bit != 0:
		return true, os.ErrProcessDone
	}
	return true, nil
}

// fetched records the outcome of reading attribute bit and returns the error to report.
func (a *attrs) fetched(bit attrBits, err error) error {
	if err == nil {
		a.done |= bit
		return nil
	}
	if errors.Is(err, os.ErrProcessDone) {
		a.done |= bit
		a.gone |= bit
		return os.ErrProcessDone
	}
	return err // not remembered: Decide stops here
}

func (a *attrs) comm() (string, error) {
	if ok, err := a.cached(bitComm); ok {
		return a.commVal, err
	}
	if a.req.Proc == nil {
		return "", a.fetched(bitComm, os.ErrProcessDone)
	}
	v, err := a.req.Proc.Comm()
	a.commVal = v
	return v, a.fetched(bitComm, err)
}

func (a *attrs) uid() (uint32, error) {
	if ok, err := a.cached(bitUID); ok {
		return a.uidVal, err
	}
	if a.req.Proc == nil {
		return 0, a.fetched(bitUID, os.ErrProcessDone)
	}
	v, err := a.req.Proc.UID()
	a.uidVal = v
	return v, a.fetched(bitUID, err)
}

func (a *attrs) groups() ([]uint32, error) {
	if ok, err := a.cached(bitGroups); ok {
		return a.groupsVal, err
	}
	if a.req.Proc == nil {
		return nil, a.fetched(bitGroups, os.ErrProcessDone)
	}
	v, err := a.req.Proc.Groups()
	a.groupsVal = v
	return v, a.fetched(bitGroups, err)
}

func (a *attrs) exe() (string, bool, error) {
	if ok, err := a.cached(bitExe); ok {
		return a.exeVal, a.exeVerified, err
	}
	if a.req.Proc == nil {
		return "", false, a.fetched(bitExe, os.ErrProcessDone)
	}
	v, verified, err := a.req.Proc.Exe()
	a.exeVal, a.exeVerified = v, verified
	return v, verified, a.fetched(bitExe, err)
}

// Policy is an ordered rule list with a default verdict.
type Policy struct {
	Rules []*Rule
	// Default applies when no rule matches (Allow unless the rules file says "default deny").
	Default engine.Verdict
	// CacheAllows makes every allow cacheable (the guard's --cache), as if each allow rule and
	// the default said cache; the safety conditions of Decide still apply.
	CacheAllows bool

	defaultSource string // where an explicit default was set; "" if implicit
}

// Decide returns the verdict for req: the first rule whose events, glob and conditions all
// match decides; with none, the default applies. If an attribute a condition needs cannot be
// read (other than because the process is gone), Decide stops there: the Decision has Err set,
// Verdict Deny and the rule it was evaluating.
//
// A request whose path is unknown (Request.PathUnknown, or Path "") is decided soundly on
// what is known. Each glob then "may match", except one that matches every path but "/"
// (**, /**, **/*): that one matches, since an unknown path is never "/". Rules are tried in
// order as usual, the events and conditions evaluated as always, and:
//
//   - a deny rule whose glob may match denies: hiding the path must never skip a deny;
//   - an allow rule whose glob may match is passed over: an unknown path never gets an allow
//     from a path rule, only from a rule whose glob matches every path, or the default;
//   - the default applies when no rule decided (so "default deny" denies).
//
// Such a decision says PathUnknown. An allow of it is cacheable on the usual conditions: it
// holds for every path the file could have, so it is as safe to remember for the inode as an
// allow of a known path (which the path cannot tell apart from its other names either).
//
// Cache is set only when the allow cannot depend on the process: the deciding rule has no
// conditions, and no earlier deny rule matched the path and event but was skipped for its
// conditions. (The kernel caches an allow per file and event for every process.) A cached
// allow is per inode: it also covers the file's other names (hard links) and survives a
// rename until the file is modified, which a path-based policy cannot see; the guard should
// not cache where that matters.
//
// Decide does not allocate (but on an error), and calls req.Proc only for conditions it has
// to evaluate, each method at most once.
func (p *Policy) Decide(req *Request) Decision {
	ev := normalizeEvent(req.Event)
	a := attrs{req: req}
	skippedDeny := false
	unknown := req.PathUnknown || req.Path == ""
	for _, r := range p.Rules {
		if r.Events != 0 && r.Events&ev == 0 {
			continue
		}
		maybe := false
		if unknown {
			maybe = !r.Glob.matchesEveryPath
			if maybe && r.Verdict == engine.Allow {
				continue // an unknown path may not match it: no allow from it
			}
		} else if !r.Glob.Match(req.Path) {
			continue
		}
		if len(r.Conditions) > 0 {
			ok, err := r.conditionsHold(&a)
			if err != nil {
				return Decision{Verdict: engine.Deny, Rule: r, Err: err, PathUnknown: unknown}
			}
			if !ok {
				if r.Verdict != engine.Allow {
					skippedDeny = true
				}
				continue
			}
		}
		d := Decision{Verdict: r.Verdict, Rule: r, PathUnknown: unknown}
		if r.Verdict == engine.Allow {
			d.Cache = (r.Cache || p.CacheAllows) && len(r.Conditions) == 0 && !skippedDeny
		} else {
			d.Errno = r.Errno
		}
		return d
	}
	d := Decision{Verdict: p.Default, PathUnknown: unknown}
	if p.Default == engine.Allow {
		d.Cache = p.CacheAllows && !skippedDeny
	}
	return d
}

// conditionsHold reports whether all of r's conditions hold, in order, stopping at the first
// that does not (or that cannot be evaluated: the error).
func (r *Rule) conditionsHold(a *attrs) (bool, error) {
	for i := range r.Conditions {
		ok, err := r.Conditions[i].eval(a)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// NeedsComm reports whether some rule tests the process name (so the guard must be able to
// read /proc/PID/comm).
func (p *Policy) NeedsComm() bool { return p.Needs(AttrComm) }

// NeedsUID reports whether some rule tests the process's uid.
func (p *Policy) NeedsUID() bool { return p.Needs(AttrUID) }

// Needs reports whether some rule has a condition on attr.
func (p *Policy) Needs(attr Attr) bool {
	for _, r := range p.Rules {
		for _, c := range r.Conditions {
			if c.Attr == attr {
				return true
			}
		}
	}
	return false
}

// NeedsPreContent reports whether the policy needs a pre-content group: a rule names
// pre_access or denies with an errno.
func (p *Policy) NeedsPreContent() bool {
	for _, r := range p.Rules {
		if r.Events&engine.PreAccess != 0 || r.Errno != 0 {
			return true
		}
	}
	return false
}

// String returns the policy in rules-file syntax, with each rule's source as a comment.
func (p *Policy) String() string {
	var b strings.Builder
	if p.defaultSource != "" || p.Default != engine.Allow {
		fmt.Fprintf(&b, "default %s\n", p.Default)
	}
	for _, r := range p.Rules {
		fmt.Fprintf(&b, "%s  # %s\n", r.Text(), r.source)
	}
	return b.String()
}

// Flag is one --allow or --deny glob from the command line.
type Flag struct {
	Verdict engine.Verdict
	Glob    string
}

// FromFlags builds a policy from --allow and --deny globs in command-line order (default
// allow). Each rule applies to every event and describes itself as "--deny GLOB".
func FromFlags(flags []Flag) (*Policy, error) {
	p := &Policy{}
	for _, f := range flags {
		r, err := flagRule(f)
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func flagRule(f Flag) (*Rule, error) {
	name := "--" + f.Verdict.String()
	if f.Verdict != engine.Allow && f.Verdict != engine.Deny {
		return nil, fmt.Errorf("%s: invalid verdict", name)
	}
	g, err := CompileGlob(f.Glob)
	if err != nil {
		var ge *GlobError
		if errors.As(err, &ge) {
			return nil, fmt.Errorf("%s %q: %s", name, f.Glob, ge.Msg)
		}
		return nil, fmt.Errorf("%s %q: %v", name, f.Glob, err)
	}
	return &Rule{Verdict: f.Verdict, Glob: g, source: name + " " + f.Glob}, nil
}

// FlagValue returns a flag.Value for --allow or --deny (per v) that appends to *list, so both
// flags share one list in command-line order. Set checks the glob, so a bad one is a usage
// error at flag-parse time.
func FlagValue(list *[]Flag, v engine.Verdict) flag.Value {
	return &flagValue{list: list, verdict: v}
}

type flagValue struct {
	list    *[]Flag
	verdict engine.Verdict
}

func (f *flagValue) String() string {
	if f == nil || f.list == nil {
		return ""
	}
	var globs []string
	for _, fl := range *f.list {
		if fl.Verdict == f.verdict {
			globs = append(globs, fl.Glob)
		}
	}
	return strings.Join(globs, " ")
}

func (f *flagValue) Set(s string) error {
	fl := Flag{Verdict: f.verdict, Glob: s}
	if _, err := flagRule(fl); err != nil {
		return err
	}
	*f.list = append(*f.list, fl)
	return nil
}

// Concat joins policies: the rules of each in order (so command-line rules given first take
// precedence over a file's), and the default that one of them sets explicitly (Allow if none).
// Two different explicit defaults are an error. CacheAllows is set if any has it.
func Concat(ps ...*Policy) (*Policy, error) {
	out := &Policy{}
	for _, p := range ps {
		if p == nil {
			continue
		}
		out.Rules = append(out.Rules, p.Rules...)
		out.CacheAllows = out.CacheAllows || p.CacheAllows
		if p.defaultSource == "" {
			continue
		}
		if out.defaultSource != "" && out.Default != p.Default {
			return nil, fmt.Errorf("conflicting defaults: %s at %s, %s at %s",
				out.Default, out.defaultSource, p.Default, p.defaultSource)
		}
		out.Default, out.defaultSource = p.Default, p.defaultSource
	}
	return out, nil
}
