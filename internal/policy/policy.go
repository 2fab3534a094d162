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
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
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
	// nor drop one from it — but in a user namespace where setgroups(2) was allowed (a
	// privileged helper, newgidmap, mapped its groups) it may have dropped some: see
	// GroupsMayLacker.
	Groups() ([]uint32, error)
	// Exe is the executable the process runs, /proc/PID/exe. verified is false when path
	// does not lead, in the guard's mount namespace, to that very file (it was deleted or
	// replaced since, or the process started it through a mount the guard does not see):
	// such an executable matches no exe= glob — unless it is unknown (ExeUnknower): then an
	// exe= condition may hold.
	Exe() (path string, verified bool, err error)
	// PPid is the parent's pid (0 for a process whose parent is outside the guard's pid
	// namespace, pid 1 included). A process cannot choose its parent, but any process can
	// make its reaper (pid 1, or a subreaper) its parent by letting its own parent exit.
	PPid() (int32, error)
	// Ancestors are the process's ancestors, parent first, at most MaxAncestors of them,
	// with their executables verified as Exe's is.
	Ancestors() (Ancestry, error)
	// TrustedExe reports whether the trust database trusts the process's executable: Exe is
	// verified, its path is listed, and the content of the file the process runs is what was
	// listed. Not listed, modified, unverified or unverifiable: false and no error; only a
	// deadline is an error (context.DeadlineExceeded: the guard's on-timeout verdict), and
	// ErrUnverifiable when the content was not hashed (a guard's late point): may hold.
	TrustedExe() (bool, error)
}

// ExeUnknower is a Process that can tell an executable that is not verified because it may
// be any program (procfs.ExeUnknown: a process with no readable executable that is not a
// kernel thread, or one in a mount namespace a user made, where the path it gives says
// nothing of what runs) from one that no user chose (deleted or replaced since it started,
// or started in a namespace of root's). An exe= condition on an unknown executable may hold,
// key= and key!= alike: a deny rule denies (Decision.ExeUnknown), an allow rule is passed
// over. A Process that does not implement it has no unknown executables.
type ExeUnknower interface {
	ExeUnknown() (bool, error)
}

// GroupsMayLacker is a Process that can tell that its Groups may lack groups it had: it
// is in a user namespace where setgroups(2) may have been allowed (procfs.GroupsMayLack), so
// it may have dropped a supplementary group (setgroups) or left a gid. Groups it has are its
// own; one it does not have, it may have had: gid= with none of its groups among the values,
// and gid!= then, may hold (a deny rule denies, an allow rule is passed over). A Process that
// does not implement it lacks no group.
type GroupsMayLacker interface {
	GroupsMayLack() (bool, error)
}

// KnownProcess is a Process whose attributes are already at hand. A zero field (an empty
// Name or ExePath, a negative UserID or ParentPID, nil GroupIDs or Ancestry.List, an unknown
// ExeTrust) means unknown, as if the process were gone. (Like uid 0, ppid 0 is a value: the
// zero KnownProcess has it.)
type KnownProcess struct {
	Name   string
	UserID int64
	// ExePath is the executable; ExeUnverified says it could not be verified (see Process).
	ExePath       string
	ExeUnverified bool
	GroupIDs      []uint32
	ParentPID     int64
	Ancestry      Ancestry
	ExeTrust      YesNo
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

func (k KnownProcess) PPid() (int32, error) {
	if k.ParentPID < 0 || k.ParentPID > math.MaxInt32 {
		return 0, os.ErrProcessDone
	}
	return int32(k.ParentPID), nil
}

func (k KnownProcess) Ancestors() (Ancestry, error) {
	if k.Ancestry.List == nil {
		return Ancestry{}, os.ErrProcessDone
	}
	return k.Ancestry, nil
}

func (k KnownProcess) TrustedExe() (bool, error) {
	if k.ExeTrust == Unknown {
		return false, os.ErrProcessDone
	}
	return k.ExeTrust == Yes, nil
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
	// Nameless, with an unknown path, says the file is a regular file with no name and no
	// content: no link left (unlinked, or an O_TMPFILE) and empty, by an fstat of the event's
	// own descriptor at the decision. For an open (OpenPerm) Decide then lets a glob match it
	// only if the glob matches every path: a rule about particular paths is about none of its
	// (it has none, and nothing of any file's), so it neither denies nor allows it. Run and
	// read events (exec, access, pre_access) are decided as any unknown path: what they
	// reach is the content at the read, which may have been written since. See Decide.
	Nameless bool
	// Event holds the event's bit(s): OpenPerm, AccessPerm, OpenExecPerm or PreAccess (their
	// notification counterparts Open, Access and OpenExec count as the same kinds).
	Event engine.Mask
	// Pid is the accessing process (0: unknown).
	Pid int32
	// Proc gives the process's attributes on demand; nil means all are unknown.
	Proc Process
	// Obj gives the file's attributes on demand, from the event's descriptor; nil makes a
	// condition on one an error (ErrNoObject).
	Obj Object
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
	// AncestryIncomplete says Rule, a deny rule, denied on an ancestor= condition that the
	// process's ancestry could not settle (the chain was cut: see Ancestry).
	AncestryIncomplete bool
	// ContentUnverifiable says Rule, a deny rule, denied on a condition on content (sha256=,
	// trusted=, trusted_exe=) that could not be settled (ErrUnverifiable: the file was open
	// for writing, changed while it was read, or a guard decided at its late point without
	// hashing it).
	ContentUnverifiable bool
	// ExeUnknown says Rule, a deny rule, denied on an exe= condition whose executable is
	// unknown (ExeUnknower): it may be any program.
	ExeUnknown bool
	// GroupsMayLack says Rule, a deny rule, denied on a gid= condition that the process's
	// groups could not settle: it may have dropped a group (GroupsMayLacker).
	GroupsMayLack bool
	// Err, when set, is why the policy could not decide: reading an attribute that Rule's
	// conditions need failed (not because the process is gone; see Process). Verdict is then
	// Deny; a guard answers with its on-timeout verdict when TimedOut, else with its on-error
	// verdict.
	Err error
}

// TimedOut reports whether the decision stopped at the guard's deadline (reading an
// attribute, hashing a file, ran past it): the guard answers with its on-timeout verdict.
func (d Decision) TimedOut() bool {
	return d.Err != nil && (errors.Is(d.Err, context.DeadlineExceeded) || errors.Is(d.Err, context.Canceled))
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
	AttrPID           Attr = iota + 1 // pid=
	AttrUID                           // uid= (the effective uid)
	AttrComm                          // comm= (a glob on the process name, /proc/PID/comm; forgeable)
	AttrExe                           // exe= (a path glob on the executable, /proc/PID/exe)
	AttrGID                           // gid= (any of the process's groups)
	AttrPPID                          // ppid= (the parent's pid)
	AttrAncestor                      // ancestor= (a path glob on the executable of any ancestor)
	AttrTrustedExe                    // trusted_exe=yes|no (the trust database trusts the executable)
	AttrFtype                         // ftype= (the file's type by content)
	AttrSHA256                        // sha256= (the digest of the file's content)
	AttrTrusted                       // trusted=yes|no (the trust database trusts the file)
	AttrSize                          // size>N, size<N (the file's size)
	AttrMountWritable                 // mount_writable=yes|no (the file's mount is writable)
)

func (a Attr) String() string {
	if k := keyOf(a); k != nil {
		return k.name
	}
	return fmt.Sprintf("attr(%d)", uint8(a))
}

// IsObject reports whether a is an attribute of the file (read from the event's descriptor)
// rather than of the process.
func (a Attr) IsObject() bool { return a >= AttrFtype && a <= AttrMountWritable }

// ReadsContent reports whether evaluating a reads the content of a file (the accessed one,
// or the process's executable): its head (ftype=) or all of it (sha256=, trusted=,
// trusted_exe=). A guard must not do that on the goroutine that reads the kernel's events.
func (a Attr) ReadsContent() bool { return contentAttrs&(attrBits(1)<<a) != 0 }

// contentAttrs are the attributes that read content (Attr.ReadsContent).
const contentAttrs = attrBits(1)<<AttrFtype | attrBits(1)<<AttrSHA256 | attrBits(1)<<AttrTrusted | attrBits(1)<<AttrTrustedExe

// mayHoldAttrs are the attributes a condition on which may hold without being settled
// (Outcome MayHold): a cut ancestry, an executable that may be any program, groups that may
// lack one, content that cannot be read as one version. An allow rule with one is passed over
// where it may hold, and a later rule decides.
const mayHoldAttrs = attrBits(1)<<AttrAncestor | attrBits(1)<<AttrExe | attrBits(1)<<AttrGID | contentAttrs

// PathGlobs are the path globs of an exe= or ancestor= condition (nil for other keys).
func (c *Condition) PathGlobs() []*Glob { return c.globs }

// Condition is key=v1,v2 (the attribute is one of the values), key!=v1,v2 (none of them), or
// for size, size>N and size<N.
type Condition struct {
	Attr   Attr
	Negate bool
	// Cmp is '>' or '<' for size>N and size<N; 0 for = and !=.
	Cmp byte
	// Values as written; for comm=, exe=, ancestor= and ftype= they are globs.
	Values []string

	nums  []uint32      // pid, uid, gid, ppid
	names []*wordGlob   // comm
	globs []*Glob       // exe, ancestor
	types []typeMatcher // ftype
	sums  [][32]byte    // sha256
	size  uint64        // size: N in bytes
	yes   bool          // trusted_exe, trusted, mount_writable: the value is yes
}

// op is the condition's operator as written.
func (c *Condition) op() string {
	switch {
	case c.Cmp != 0:
		return string(c.Cmp)
	case c.Negate:
		return "!="
	}
	return "="
}

func (c Condition) String() string {
	vals := make([]string, len(c.Values))
	for i, v := range c.Values {
		vals[i] = quoteToken(v)
	}
	return c.Attr.String() + c.op() + strings.Join(vals, ",")
}

// compiled is how many values c holds in compiled form (one per value; one for size and the
// yes/no keys).
func (c *Condition) compiled() int {
	n := len(c.nums) + len(c.names) + len(c.globs) + len(c.types) + len(c.sums)
	if c.Attr == AttrSize || keyOf(c.Attr).yesNo {
		n++
	}
	return n
}

// Outcome is what a condition, or a rule's conditions together, come to.
type Outcome uint8

const (
	Fails Outcome = iota
	Holds
	// MayHold: the condition cannot be settled (ancestor= when the chain was cut; sha256= of
	// content that could not be read as one version). A deny rule denies on it; an allow rule
	// is passed over.
	MayHold
)

func (o Outcome) String() string {
	switch o {
	case Holds:
		return "holds"
	case MayHold:
		return "may hold"
	}
	return "fails"
}

// eval evaluates c; attributes come from a. An attribute of a process that is gone makes the
// condition fail (key= and key!= alike); a file attribute the file does not have (ErrNoValue)
// is a value none of c's values is; content that could not be read as one version
// (ErrUnverifiable) may be any value: the condition may hold, key= and key!= alike. Any other
// error reading it is returned. A MayHold is recorded in a.mayHold.
func (c *Condition) eval(a *attrs) (Outcome, error) {
	in, settled, err := c.test(a)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrProcessDone):
		return Fails, nil
	case errors.Is(err, ErrNoValue):
		in, settled = false, true
	case errors.Is(err, ErrUnverifiable):
		settled = false
	default:
		k := keyOf(c.Attr)
		whose := "process"
		if c.Attr.IsObject() {
			whose = "file"
		}
		return Fails, fmt.Errorf("reading the %s's %s for %s: %w", whose, k.what, k.name, err)
	}
	switch {
	case !settled:
		a.mayHold |= attrBits(1) << c.Attr
		return MayHold, nil
	case in != c.Negate:
		return Holds, nil
	}
	return Fails, nil
}

// test reports whether the request's attribute is one of c's values (for size: compares as
// c says; for the yes/no keys: is c's value), whether that is settled (ancestor=, exe= of an
// unknown executable, and gid= of groups that may lack one, may not be), or why the attribute
// is not known (os.ErrProcessDone: the process is gone; ErrNoValue: the file has none). A
// switch, not a function in condKeys: a call through a function value would make a escape,
// and Decide allocate.
func (c *Condition) test(a *attrs) (in, settled bool, err error) {
	if err := a.read(c.Attr); err != nil {
		return false, true, err
	}
	switch c.Attr {
	case AttrPID:
		return containsNum(c.nums, uint32(a.req.Pid)), true, nil
	case AttrUID:
		return containsNum(c.nums, a.uidVal), true, nil
	case AttrGID:
		for _, g := range a.groupsVal {
			if containsNum(c.nums, g) {
				return true, true, nil
			}
		}
		// None of the values: settled unless it may have dropped one (GroupsMayLacker).
		return false, !a.groupsMayLack, nil
	case AttrComm:
		for _, g := range c.names {
			if g.match(a.commVal) {
				return true, true, nil
			}
		}
		return false, true, nil
	case AttrExe:
		// An unverified executable matches no glob; an unknown one may be any program.
		return a.exeVerified && matchesAny(c.globs, a.exeVal), a.exeVerified || !a.exeUnknown, nil
	case AttrPPID:
		return containsNum(c.nums, uint32(a.ppidVal)), true, nil
	case AttrAncestor:
		settled = a.ancVal.Complete
		for i := range a.ancVal.List {
			x := &a.ancVal.List[i]
			if x.Verified && matchesAny(c.globs, x.Exe) {
				return true, true, nil
			}
			settled = settled && !x.Unreadable && !x.Unknown
		}
		// No ancestor matches: settled only if every ancestor, and its executable, was read.
		return false, settled, nil
	case AttrTrustedExe:
		return a.trustedExeVal == c.yes, true, nil
	case AttrFtype:
		for i := range c.types {
			if c.types[i].match(a.ftypeVal) {
				return true, true, nil
			}
		}
		return false, true, nil
	case AttrSHA256:
		for _, s := range c.sums {
			if s == a.sha256Val {
				return true, true, nil
			}
		}
		return false, true, nil
	case AttrTrusted:
		return a.trustedVal == c.yes, true, nil
	case AttrSize:
		if c.Cmp == '>' {
			return a.sizeVal > c.size, true, nil
		}
		return a.sizeVal < c.size, true, nil
	case AttrMountWritable:
		return a.mountWritableVal == c.yes, true, nil
	}
	return false, true, nil
}

func matchesAny(globs []*Glob, path string) bool {
	for _, g := range globs {
		if g.Match(path) {
			return true
		}
	}
	return false
}

// condKey is one condition key of the rules language: its name and how a value is compiled.
// Adding a key is adding an entry here, an Attr, its case in Condition.test and in
// attrs.read, and a Process or Object method.
type condKey struct {
	name string
	attr Attr
	what string // the attribute, for error messages: "executable"
	// cmp: the key is compared (size>N, size<N), never = or !=.
	cmp bool
	// yesNo: the key takes one value, yes or no, and no != (write the other value).
	yesNo bool
	// compile adds one value (not empty) of a list to c. On error it returns the byte offset
	// in v of the problem and a message.
	compile func(c *Condition, v string) (off int, msg string)
}

var condKeys = []condKey{
	{name: "pid", attr: AttrPID, what: "pid", compile: compilePid},
	{name: "uid", attr: AttrUID, what: "effective uid", compile: compileID("uid", "user")},
	{name: "gid", attr: AttrGID, what: "groups", compile: compileID("gid", "group")},
	{name: "comm", attr: AttrComm, what: "name", compile: compileComm},
	{name: "exe", attr: AttrExe, what: "executable", compile: compileExe("exe")},
	{name: "ppid", attr: AttrPPID, what: "parent", compile: compilePPid},
	{name: "ancestor", attr: AttrAncestor, what: "ancestors", compile: compileExe("ancestor")},
	{name: "trusted_exe", attr: AttrTrustedExe, what: "executable's trust", yesNo: true, compile: compileYesNo("trusted_exe")},
	{name: "ftype", attr: AttrFtype, what: "type", compile: compileFtype},
	{name: "sha256", attr: AttrSHA256, what: "sha256", compile: compileSHA256},
	{name: "trusted", attr: AttrTrusted, what: "trust", yesNo: true, compile: compileYesNo("trusted")},
	{name: "size", attr: AttrSize, what: "size", cmp: true, compile: compileSize},
	{name: "mount_writable", attr: AttrMountWritable, what: "mount", yesNo: true, compile: compileYesNo("mount_writable")},
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

// keyList is the condition keys for error messages: "pid=, uid=, ..., size>, size<, ...".
func keyList() string {
	var names []string
	for _, k := range condKeys {
		if k.cmp {
			names = append(names, k.name+">", k.name+"<")
		} else {
			names = append(names, k.name+"=")
		}
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
	if n, lead := w.c.minLen(); n > maxComm {
		fix := ""
		if len(lead) >= maxComm {
			fix = fmt.Sprintf(" (write %q)", lead[:maxComm])
		}
		return 0, fmt.Sprintf("comm %q never matches: it needs %d bytes or more, and the kernel keeps only the first %d bytes of a process name%s",
			v, n, maxComm, fix)
	}
	c.names = append(c.names, w)
	return 0, ""
}

// compilePPid takes a parent's pid: 0 is a value (the parent is outside the pid namespace).
func compilePPid(c *Condition, v string) (int, string) {
	n, err := strconv.ParseUint(v, 10, 31)
	if err != nil {
		return 0, fmt.Sprintf("ppid %q: want a number (0 or a pid)", v)
	}
	c.nums = append(c.nums, uint32(n))
	return 0, ""
}

// compileExe compiles a path glob on an executable (exe=, ancestor=).
func compileExe(key string) func(c *Condition, v string) (int, string) {
	return func(c *Condition, v string) (int, string) {
		g, err := CompileGlob(v)
		if err != nil {
			var ge *GlobError
			if errors.As(err, &ge) {
				return ge.Offset, fmt.Sprintf("bad %s pattern %q: %s", key, v, ge.Msg)
			}
			return 0, fmt.Sprintf("bad %s pattern %q: %v", key, v, err)
		}
		c.globs = append(c.globs, g)
		return 0, ""
	}
}

func containsNum(list []uint32, v uint32) bool {
	for _, n := range list {
		if n == v {
			return true
		}
	}
	return false
}

// attrs fetches a request's attributes at most once each. It is kept small: Decide makes one
// per request, on its stack. A read that fails other than for a gone process, a file
// attribute the file does not have or content that could not be verified is not remembered,
// as Decide stops at it.
type attrs struct {
	req        *Request
	done, none attrBits // attributes read; those of them that found no value (gone, ErrNoValue)
	unverified attrBits // attributes read whose content could not be verified (unverifiedErr)
	mayHold    attrBits // attributes of the conditions that came to MayHold in the rule being evaluated
	// unverifiedErr is the error of the attributes in unverified (wrapping ErrUnverifiable).
	unverifiedErr error

	commVal          string
	uidVal           uint32
	groupsVal        []uint32
	exeVal           string
	exeVerified      bool
	exeUnknown       bool // read with exeVal when it is not verified (ExeUnknower)
	groupsMayLack    bool // read with groupsVal (GroupsMayLacker)
	ppidVal          int32
	ancVal           Ancestry
	trustedExeVal    bool
	ftypeVal         ftype.Type
	sha256Val        [32]byte
	trustedVal       bool
	sizeVal          uint64
	mountWritableVal bool
}

// attrBits has a bit per Attr (1 << Attr).
type attrBits uint16

// read fetches attribute attr into a's field for it, once: it returns nil when the value is
// there, os.ErrProcessDone (process attributes) or ErrNoValue (file attributes) when there is
// none, and any other error as it is. pid= reads nothing: the request has it.
func (a *attrs) read(attr Attr) error {
	bit := attrBits(1) << attr
	if a.done&bit != 0 {
		switch {
		case a.unverified&bit != 0:
			return a.unverifiedErr
		case a.none&bit == 0:
			return nil
		case attr.IsObject():
			return ErrNoValue
		}
		return os.ErrProcessDone
	}
	p, o := a.req.Proc, a.req.Obj
	var err error
	switch {
	case attr == AttrPID:
		if a.req.Pid <= 0 {
			err = os.ErrProcessDone
		}
	case attr.IsObject() && o == nil:
		err = ErrNoObject
	case !attr.IsObject() && p == nil:
		err = os.ErrProcessDone
	default:
		switch attr {
		case AttrUID:
			a.uidVal, err = p.UID()
		case AttrComm:
			a.commVal, err = p.Comm()
		case AttrExe:
			a.exeVal, a.exeVerified, err = p.Exe()
			a.exeUnknown = false
			if u, ok := p.(ExeUnknower); ok && err == nil && !a.exeVerified {
				a.exeUnknown, err = u.ExeUnknown()
			}
		case AttrGID:
			a.groupsVal, err = p.Groups()
			a.groupsMayLack = false
			if u, ok := p.(GroupsMayLacker); ok && err == nil {
				a.groupsMayLack, err = u.GroupsMayLack()
			}
		case AttrPPID:
			a.ppidVal, err = p.PPid()
		case AttrAncestor:
			a.ancVal, err = p.Ancestors()
		case AttrTrustedExe:
			a.trustedExeVal, err = p.TrustedExe()
		case AttrFtype:
			a.ftypeVal, err = o.FileType()
		case AttrSHA256:
			a.sha256Val, err = o.SHA256()
		case AttrTrusted:
			a.trustedVal, err = o.Trusted()
		case AttrSize:
			a.sizeVal, err = o.Size()
		case AttrMountWritable:
			a.mountWritableVal, err = o.MountWritable()
		}
	}
	switch {
	case err == nil:
		a.done |= bit
	case errors.Is(err, os.ErrProcessDone) && !attr.IsObject():
		a.done |= bit
		a.none |= bit
		return os.ErrProcessDone
	case errors.Is(err, ErrNoValue) && attr.IsObject():
		a.done |= bit
		a.none |= bit
		return ErrNoValue
	case errors.Is(err, ErrUnverifiable) && attr.ReadsContent():
		a.done |= bit
		a.unverified |= bit
		a.unverifiedErr = err
	}
	return err // not remembered: Decide stops here
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
// read (other than because the process is gone, or the file has no such attribute), Decide
// stops there: the Decision has Err set, Verdict Deny and the rule it was evaluating; a guard
// answers with its on-timeout verdict if Decision.TimedOut, else with its on-error verdict.
//
// An ancestor= condition that the ancestry cannot settle (the chain was cut before an
// ancestor matched: see Ancestry) may hold, as a glob may match an unknown path: a deny rule
// whose other conditions hold denies (Decision.AncestryIncomplete), an allow rule is passed
// over. So may a condition on content that could not be read as one version
// (ErrUnverifiable: someone had the file open for writing, or it changed while it was read),
// or that a guard decides at its late point without hashing: a deny rule denies
// (Decision.ContentUnverifiable), an allow rule is passed over. That is the file's state, which
// whoever writes it chooses, or the load, which any user can make: not an error, so the
// guard's on-error and on-timeout verdicts (which may be allow) never apply to it.
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
// An open of a nameless file (Request.Nameless: unlinked and empty, its path unknown) is
// about no path and no content: a glob matches it only if it matches every path, and every
// other rule is passed over (neither its deny nor its allow applies); the default applies
// when no rule decided. Its allow is never cacheable: the inode may be given content, or a
// name (linkat), after the decision, and each later open must be decided again.
//
// Cache is set only when the allow cannot depend on the process: the deciding rule has no
// conditions, and no earlier deny rule matched the path and event but was skipped for its
// conditions. (The kernel caches an allow per file and event for every process.) A cached
// allow is per inode: it also covers the file's other names (hard links) and survives a
// rename until the file is modified, which a path-based policy cannot see; the guard should
// not cache where that matters.
//
// Decide does not allocate (but on an error), and calls req.Proc and req.Obj only for
// conditions it has to evaluate, each method at most once.
func (p *Policy) Decide(req *Request) Decision { return p.decide(req, nil) }

// decide is Decide, recording each step in tr when it is not nil (Explain). Decide passes nil:
// then nothing is recorded and nothing allocated.
func (p *Policy) decide(req *Request, tr *tracer) Decision {
	ev := normalizeEvent(req.Event)
	a := attrs{req: req}
	skippedDeny := false
	unknown := req.PathUnknown || req.Path == ""
	nameless := unknown && req.Nameless && ev == engine.OpenPerm
	for _, r := range p.Rules {
		st := tr.step(r)
		if r.Events != 0 && r.Events&ev == 0 {
			continue
		}
		path := Holds
		switch {
		case nameless && !r.Glob.matchesEveryPath:
			path = Fails // about particular paths: not about a file with no name and no content
		case unknown && !r.Glob.matchesEveryPath:
			path = MayHold
		case !unknown && !r.Glob.Match(req.Path):
			path = Fails
		}
		if st != nil {
			st.EventMatches, st.Path = true, path
		}
		if path == Fails {
			continue
		}
		if path == MayHold && r.Verdict == engine.Allow {
			st.result(PassedOver) // an unknown path may not match it: no allow from it
			continue
		}
		conds := Holds
		if len(r.Conditions) > 0 {
			var err error
			a.mayHold = 0
			conds, err = r.conditionsHold(&a, st)
			if err != nil {
				st.result(Failed)
				return Decision{Verdict: engine.Deny, Rule: r, Err: err, PathUnknown: unknown}
			}
		}
		switch {
		case conds == Fails:
			if r.Verdict != engine.Allow {
				skippedDeny = true
			}
			continue
		case conds == MayHold && r.Verdict == engine.Allow:
			st.result(PassedOver) // the ancestry may not settle it: no allow from it
			continue
		}
		st.result(Decided)
		d := Decision{Verdict: r.Verdict, Rule: r, PathUnknown: unknown}
		if conds == MayHold {
			d.AncestryIncomplete = a.mayHold&(attrBits(1)<<AttrAncestor) != 0
			d.ExeUnknown = a.mayHold&(attrBits(1)<<AttrExe) != 0
			d.GroupsMayLack = a.mayHold&(attrBits(1)<<AttrGID) != 0
			d.ContentUnverifiable = a.mayHold&contentAttrs != 0
		}
		if r.Verdict == engine.Allow {
			d.Cache = (r.Cache || p.CacheAllows) && len(r.Conditions) == 0 && !skippedDeny && !nameless
		} else {
			d.Errno = r.Errno
		}
		return d
	}
	d := Decision{Verdict: p.Default, PathUnknown: unknown}
	if p.Default == engine.Allow {
		d.Cache = p.CacheAllows && !skippedDeny && !nameless
	}
	return d
}

// conditionsHold evaluates r's conditions in order: Fails at the first that fails (or the
// error of the first that cannot be evaluated), else MayHold if one may hold, else Holds. With
// st (Explain) it records each, and evaluates those after a failing one too, for the
// explanation only.
func (r *Rule) conditionsHold(a *attrs, st *Step) (Outcome, error) {
	all := Holds
	for i := range r.Conditions {
		c := &r.Conditions[i]
		if all == Fails {
			st.extra(c, a) // not needed for the decision: only shown
			continue
		}
		o, err := c.eval(a)
		st.cond(c, a, o, err)
		switch {
		case err != nil:
			return Fails, err
		case o == Fails:
			all = Fails
			if st == nil {
				return Fails, nil
			}
		case o == MayHold:
			all = MayHold
		}
	}
	return all, nil
}

// NeedsPath reports whether deciding an access of event ev (a permission bit, or its
// notification counterpart) may need the file's path: whether some rule that applies to ev
// tests a glob other than "**" or has a condition. When it is false, every rule that applies
// to ev matches whatever the path (or none applies, and the default decides), so Decide gives
// the same verdict, rule, errno and cache with Path "" as with the path (only
// Decision.PathUnknown tells them apart): a guard then reads no path (a readlink and
// its check per access) for such events, e.g. the opens under an exec-only allowlist.
func (p *Policy) NeedsPath(ev engine.Mask) bool {
	k := normalizeEvent(ev)
	for _, r := range p.Rules {
		if r.Events != 0 && r.Events&k == 0 {
			continue
		}
		if r.Glob.String() != "**" || len(r.Conditions) > 0 {
			return true
		}
	}
	return false
}

// AllowsEvery reports whether Decide allows every access of event ev (a permission bit, or
// its notification counterpart), whatever its process, path and file: the first rule that
// applies to ev is an allow of "**" with no condition, or no rule applies to ev and the
// default is allow. A guard may then leave ev's permission events unasked (docs/security.md,
// "Kinds of access no rule decides"); a rule that applies to ev with any glob but "**" or any
// condition, or a deny of "**", makes it false.
func (p *Policy) AllowsEvery(ev engine.Mask) bool {
	k := normalizeEvent(ev)
	for _, r := range p.Rules {
		if r.Events != 0 && r.Events&k == 0 {
			continue
		}
		return r.Verdict == engine.Allow && r.Glob.String() == "**" && len(r.Conditions) == 0
	}
	return p.Default == engine.Allow
}

// DecidesByFile reports whether Decide's decision for an access of event ev (a permission
// bit, or its notification counterpart) is a function of the path and the file alone: every
// rule that applies to ev tests, besides its glob, only the file's own content and size
// (trusted=, sha256=, ftype=, size) — nothing of the process (pid=, ppid=, uid=, gid=, comm=,
// exe=, ancestor=, trusted_exe=) and nothing of the mount (mount_writable=, which a remount
// changes while the file stays as it was). Then two accesses of ev to the same path and the
// same content get the same Decision (verdict, rule, errno, cache), whoever makes them: a
// guard may remember it for as long as it knows both unchanged (its exec memo,
// docs/security.md). trusted= also reads the trust database, which a reload replaces.
func (p *Policy) DecidesByFile(ev engine.Mask) bool {
	k := normalizeEvent(ev)
	for _, r := range p.Rules {
		if r.Events != 0 && r.Events&k == 0 {
			continue
		}
		for _, c := range r.Conditions {
			switch c.Attr {
			case AttrTrusted, AttrSHA256, AttrFtype, AttrSize:
			default:
				return false
			}
		}
	}
	return true
}

// NeedsComm reports whether some rule tests the process name (so the guard must be able to
// read /proc/PID/comm).
func (p *Policy) NeedsComm() bool { return p.Needs(AttrComm) }

// NeedsUID reports whether some rule tests the process's uid.
func (p *Policy) NeedsUID() bool { return p.Needs(AttrUID) }

// Caches reports whether any allow may be cached: --cache (CacheAllows) or a rule that says
// cache.
func (p *Policy) Caches() bool {
	if p.CacheAllows {
		return true
	}
	for _, r := range p.Rules {
		if r.Cache {
			return true
		}
	}
	return false
}

// Needs reports whether some rule has a condition on attr.
func (p *Policy) Needs(attr Attr) bool { return p.anyAttr(func(a Attr) bool { return a == attr }) }

// anyAttr reports whether some rule has a condition on an attribute for which f is true.
func (p *Policy) anyAttr(f func(Attr) bool) bool {
	for _, r := range p.Rules {
		for _, c := range r.Conditions {
			if f(c.Attr) {
				return true
			}
		}
	}
	return false
}

// NeedsObject reports whether some rule tests the file (ftype=, sha256=, trusted=, size,
// mount_writable=): the guard must give Request.Obj, from the event's descriptor.
func (p *Policy) NeedsObject() bool { return p.anyAttr(Attr.IsObject) }

// ReadsContent reports whether some rule reads a file's content (Attr.ReadsContent): the
// guard must decide off the goroutine that reads the kernel's events, under its deadline.
func (p *Policy) ReadsContent() bool { return p.anyAttr(Attr.ReadsContent) }

// RuleUsing returns the first rule with a condition on one of attrs, and that attribute
// (nil if none has one): for a guard to say which rule it cannot evaluate.
func (p *Policy) RuleUsing(attrs ...Attr) (*Rule, Attr) {
	for _, r := range p.Rules {
		for _, c := range r.Conditions {
			for _, a := range attrs {
				if c.Attr == a {
					return r, a
				}
			}
		}
	}
	return nil, 0
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
