package policy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
)

// Object gives the attributes of the file behind a request, read from the event's descriptor
// (never by opening its path). Decide calls each method at most once per request, and only
// if a rule that matched the path and event (and whose earlier conditions held) tests that
// attribute: a policy without ftype= never reads the file's head, one without sha256= or
// trusted= never hashes it.
//
// Each method returns the attribute or an error. ErrNoValue (or an error wrapping it) says
// the file has no such attribute (a directory, a device or a FIFO has no type, digest or
// size): KEY= does not hold and KEY!= does. ErrUnverifiable (or an error wrapping it) says
// the content could not be read as one version (something had the file open for writing, or
// it changed while it was read): which value it has is not known, so KEY= and KEY!= alike may
// hold (MayHold: a deny rule denies on it, an allow rule is passed over) — the file's state,
// which its writer controls, and not the guard's failure. An error wrapping
// context.DeadlineExceeded is the guard's deadline (Decision.TimedOut: the guard answers with
// its on-timeout verdict); any other error is the guard's own failure to read what a rule
// needs: Decide stops there and reports it in Decision.Err, and the guard answers with its
// on-error verdict.
type Object interface {
	// FileType is the file's type by content (internal/ftype): elf-executable, script:sh...
	FileType() (ftype.Type, error)
	// SHA256 is the digest of the file's content; ErrUnverifiable when no one version of it
	// could be read.
	SHA256() ([32]byte, error)
	// Trusted reports whether the trust database trusts the file: its path (the one the
	// kernel reported) is listed and its content is what was listed. A file that is not
	// listed, modified, or cannot be verified (not a regular file, a read error, changed while
	// it was read) is untrusted: false and no error. Only a deadline is an error, and
	// ErrUnverifiable when the content was not hashed (a guard's late point): may hold.
	Trusted() (bool, error)
	// Size is the file's size in bytes.
	Size() (uint64, error)
	// MountWritable reports whether the mount the file was opened through is writable (not
	// mounted read-only, nor on a read-only filesystem).
	MountWritable() (bool, error)
}

var (
	// ErrNoValue: the file has no such attribute (see Object).
	ErrNoValue = errors.New("not a regular file")
	// ErrUnverifiable: the file's content could not be read as one version (see Object). The
	// reason is what it is wrapped with: trust.ErrOpenForWrite, trust.ErrChanged, or (sysattr)
	// content a guard's decision at its late point did not hash.
	ErrUnverifiable = errors.New("the file's content cannot be verified")
	// ErrNoObject is what an object attribute fails with when the request has no Object
	// (no descriptor of the file): the guard's on-error verdict applies.
	ErrNoObject = errors.New("no descriptor for the file")
	// ErrUnknown is what KnownObject and KnownProcess return for an attribute they were not
	// given (policy explain without the flag that gives it).
	ErrUnknown = errors.New("not known")
)

// YesNo is a yes/no attribute that may be unknown (KnownObject, KnownProcess).
type YesNo uint8

const (
	Unknown YesNo = iota
	Yes
	No
)

func (v YesNo) String() string {
	switch v {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

func (v YesNo) get() (bool, error) {
	if v == Unknown {
		return false, ErrUnknown
	}
	return v == Yes, nil
}

// KnownObject is an Object whose attributes are already at hand (tests, policy explain with
// flags). An attribute without its Known flag (Unknown for the YesNo ones) fails with
// ErrUnknown; NotRegular makes the type, digest and size ErrNoValue, and the file untrusted.
type KnownObject struct {
	Type      ftype.Type
	TypeKnown bool
	Sum       [32]byte
	SumKnown  bool
	Bytes     uint64
	SizeKnown bool
	Trust     YesNo
	Writable  YesNo
	// NotRegular: a directory, device, FIFO or socket.
	NotRegular bool
}

func (k KnownObject) FileType() (ftype.Type, error) {
	switch {
	case k.NotRegular:
		return ftype.Type{}, ErrNoValue
	case !k.TypeKnown:
		return ftype.Type{}, ErrUnknown
	}
	return k.Type, nil
}

func (k KnownObject) SHA256() ([32]byte, error) {
	switch {
	case k.NotRegular:
		return [32]byte{}, ErrNoValue
	case !k.SumKnown:
		return [32]byte{}, ErrUnknown
	}
	return k.Sum, nil
}

func (k KnownObject) Trusted() (bool, error) {
	if k.NotRegular && k.Trust == Unknown {
		return false, nil // unverifiable
	}
	return k.Trust.get()
}

func (k KnownObject) Size() (uint64, error) {
	switch {
	case k.NotRegular:
		return 0, ErrNoValue
	case !k.SizeKnown:
		return 0, ErrUnknown
	}
	return k.Bytes, nil
}

func (k KnownObject) MountWritable() (bool, error) { return k.Writable.get() }

// MaxAncestors bounds how many ancestors of a process an ancestor= condition looks at.
// Process trees in normal use are shallow (systemd, a service or a login, a shell, a build
// tool and its compilers: well under 16), while nothing bounds how deep an unprivileged user
// can nest processes; 32 levels, each a few reads of /proc, keeps the worst case of one
// decision to a fraction of a millisecond. A chain longer than that is cut, and an
// ancestor= condition that it leaves open may hold (see Ancestry).
const MaxAncestors = 32

// Ancestor is one ancestor of a process: its pid and its executable, as Process.Exe gives
// one (only a verified executable matches an ancestor= glob).
type Ancestor struct {
	Pid      int32
	Exe      string
	Verified bool
	// Unreadable: the executable could not be read (permission denied: a guard without
	// CAP_SYS_PTRACE, a process an LSM shields). It may be any program: an ancestor= condition
	// that no other ancestor settles may hold, as with a cut chain.
	Unreadable bool
	// Unknown: the executable is not verified and may be any program (ExeUnknower): it counts
	// as Unreadable does.
	Unknown bool
}

// Ancestry is a process's ancestors, its parent first.
type Ancestry struct {
	List []Ancestor
	// Complete says List reaches the top of the chain: a process with no parent in the guard's
	// pid namespace (pid 1, kthreadd, a container's first process). It is false when the
	// chain was cut: longer than MaxAncestors, or an ancestor exited while the chain was read
	// (its children go to another parent). An ancestor= condition that no listed ancestor
	// settles then may hold: a deny rule that may match denies, an allow rule that may match
	// is passed over, so that nobody escapes a deny, or gains an allow, by a chain the guard
	// cannot read to its end.
	Complete bool
}

// typeMatcher is one value of ftype=: a glob on the kind ("elf-*", "script": every script)
// or, after "script:", a glob on a script's interpreter name.
type typeMatcher struct {
	interp bool
	g      *wordGlob
}

func (m *typeMatcher) match(t ftype.Type) bool {
	if m.interp {
		return t.Kind == ftype.Script && t.Interp != "" && m.g.match(t.Interp)
	}
	return m.g.match(t.Kind.String())
}

const scriptPrefix = "script:"

// typeList names the ftype= values for messages.
func typeList() string {
	var names []string
	for _, k := range ftype.Kinds() {
		names = append(names, k.String())
		if k == ftype.Script {
			names = append(names, "script:NAME")
		}
	}
	return strings.Join(names, ", ")
}

func compileFtype(c *Condition, v string) (int, string) {
	m := typeMatcher{}
	pat, off := v, 0
	if rest, ok := strings.CutPrefix(v, scriptPrefix); ok {
		if rest == "" {
			return len(v), fmt.Sprintf("ftype %q: name the interpreter after script: (script:sh, script:python*), or write script for every script", v)
		}
		m.interp, pat, off = true, rest, len(scriptPrefix)
	}
	w, err := compileWord(pat)
	if err != nil {
		var ge *GlobError
		if errors.As(err, &ge) {
			return off + ge.Offset, fmt.Sprintf("bad ftype pattern %q: %s", v, ge.Msg)
		}
		return off, fmt.Sprintf("bad ftype pattern %q: %v", v, err)
	}
	m.g = w
	if !m.interp {
		any := false
		for _, k := range ftype.Kinds() {
			any = any || w.match(k.String())
		}
		if !any {
			return 0, fmt.Sprintf("ftype %q matches no file type (types: %s)", v, typeList())
		}
	}
	c.types = append(c.types, m)
	return 0, ""
}

func compileSHA256(c *Condition, v string) (int, string) {
	if len(v) != 64 {
		return 0, fmt.Sprintf("sha256 %q has %d characters, want 64 hex digits", v, len(v))
	}
	var sum [32]byte
	if _, err := hex.Decode(sum[:], []byte(v)); err != nil {
		i := strings.IndexFunc(v, func(r rune) bool { return !strings.ContainsRune("0123456789abcdefABCDEF", r) })
		return max(i, 0), fmt.Sprintf("sha256 %q: %q is not a hex digit (want 64 hex digits)", v, v[max(i, 0):max(i, 0)+1])
	}
	c.sums = append(c.sums, sum)
	return 0, ""
}

// sizeUnits are size's suffixes, powers of 1024 as ls -h and du print them.
var sizeUnits = []struct {
	suffix byte
	mult   uint64
}{{'K', 1 << 10}, {'M', 1 << 20}, {'G', 1 << 30}, {'T', 1 << 40}}

// parseSize reads a size: decimal digits and an optional K, M, G or T suffix.
func parseSize(v string) (uint64, int, string) {
	digits, mult := v, uint64(1)
	if n := len(v); n > 0 && (v[n-1] < '0' || v[n-1] > '9') {
		found := false
		for _, u := range sizeUnits {
			if v[n-1] == u.suffix {
				digits, mult, found = v[:n-1], u.mult, true
			}
		}
		if !found {
			return 0, n - 1, fmt.Sprintf("size %q: want a number of bytes, with an optional suffix K, M, G or T (powers of 1024)", v)
		}
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, i, fmt.Sprintf("size %q: want a number of bytes, with an optional suffix K, M, G or T (powers of 1024)", v)
		}
	}
	if digits == "" {
		return 0, 0, fmt.Sprintf("size %q: want a number of bytes before the suffix", v)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, 0, fmt.Sprintf("size %q is larger than any file can be", v)
	}
	return n * mult, 0, ""
}

func compileSize(c *Condition, v string) (int, string) {
	n, off, msg := parseSize(v)
	if msg != "" {
		return off, msg
	}
	switch {
	case c.Cmp == '<' && n == 0:
		return 0, "size<0 never holds: a file has 0 bytes or more"
	case c.Cmp == '>' && n >= math.MaxInt64:
		return 0, fmt.Sprintf("size>%s never holds: no file is larger", v)
	}
	c.size = n
	return 0, ""
}

func compileYesNo(key string) func(c *Condition, v string) (int, string) {
	return func(c *Condition, v string) (int, string) {
		switch v {
		case "yes":
			c.yes = true
		case "no":
			c.yes = false
		default:
			return 0, fmt.Sprintf("%s %q: want yes or no", key, v)
		}
		return 0, ""
	}
}

// ancestryString describes an Ancestry for explain: "/usr/bin/bash[812] /usr/sbin/sshd[640] ...".
func ancestryString(a Ancestry) string {
	var b strings.Builder
	for i, x := range a.List {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(exeString(x.Exe, x.Verified || x.Unreadable))
		fmt.Fprintf(&b, "[%d]", x.Pid)
	}
	if !a.Complete {
		if len(a.List) > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("... (cut: not read to its top)")
	} else if len(a.List) == 0 {
		b.WriteString("none")
	}
	return b.String()
}

func exeString(exe string, verified bool) string {
	switch {
	case exe == "" && verified:
		return "(unreadable)"
	case exe == "":
		return "(none)"
	case !verified:
		return strconv.Quote(exe) + " (unverified)"
	}
	return exe
}

// isGone reports whether err is os.ErrProcessDone.
func isGone(err error) bool { return errors.Is(err, os.ErrProcessDone) }

// ParseSize reads a size as size> and size< write it: a number of bytes, with an optional
// suffix K, M, G or T (powers of 1024).
func ParseSize(s string) (uint64, error) {
	n, _, msg := parseSize(s)
	if msg != "" {
		return 0, errors.New(msg)
	}
	return n, nil
}

// ParseFileType reads one file type as ftype= names it (a type, not a pattern):
// "elf-executable", "script:python3", or "script" for a script whose #! line names no
// interpreter.
func ParseFileType(s string) (ftype.Type, error) {
	if interp, ok := strings.CutPrefix(s, scriptPrefix); ok && interp != "" && !strings.ContainsAny(interp, "/ \t") {
		return ftype.Type{Kind: ftype.Script, Interp: interp}, nil
	}
	for _, k := range ftype.Kinds() {
		if k.String() == s {
			return ftype.Type{Kind: k}, nil
		}
	}
	return ftype.Type{}, fmt.Errorf("unknown file type %q (types: %s)", s, typeList())
}
