//go:build linux

package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/sysattr"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

func init() {
	registerPolicySubcommand(subcommand{"explain", "say which rule decides an access, and why each rule before it did not", runPolicyExplain})
}

const policyExplainHelp = `
Decide one access by the rules of FILE, as "guard --policy FILE" would, and
print each rule tried: whether its events and glob match, and each
condition with the attribute's value and whether it holds; then the
decision. "Why was this denied?" in one command. The guard's command-line
rules (--deny GLOB, --allow GLOB, in command-line order) go before FILE's,
and --cache caches its allows, as in the guard: give the ones it runs with
(with no FILE, as a guard with no --policy).

The file is --path P: its attributes (ftype=, sha256=, trusted=, size,
mount_writable=) are read from the file itself, as the guard reads them from
the event's descriptor: P is resolved to the canonical path the kernel would
report (symbolic links resolved), opened without following a final symbolic
link, and read only if it is a regular file (a FIFO or device is never
opened for reading). --ftype, --sha256, --trusted, --size and
--mount-writable override what the file says, or describe a file that does
not exist. --path-unknown decides as when the kernel cannot print the path.

The process is --pid PID, read from /proc as the guard reads it (its comm,
uid, groups, exe, parent, ancestors), or described by flags: --exe (the file
at that path is the executable: trusted_exe= verifies it), --uid, --gid,
--comm, --ppid, --ancestor (repeatable, parent first; --ancestry-cut says
the chain goes on beyond them). A condition on an attribute that was not
given cannot be decided: the command says which flag gives it.

Rules with trusted= or trusted_exe= need the trust database (docs/trust.md):
the package database and the *.trust files of /etc/fsnotifyd/trust.d, or
--trust FILE (repeatable), --trust-dir DIR, --no-package-trust, --dpkg-dir.
It is loaded only when a rule needs it.

Exit status: 0 the access is allowed; 1 it is denied (also when reading what
a rule needs fails and --on-error is deny, the default); 2 a usage error, a
rules FILE that cannot be read or does not parse, a trust source that cannot
be read, or a rule needs an attribute that was not given.

Examples:
  fsnotifyd policy explain guard.rules --path /srv/www/uploads/x.sh --pid 4242
  fsnotifyd policy explain allowlist.rules --event exec --path /tmp/tool --exe /usr/bin/bash --uid 1000 --gid 1000
  fsnotifyd policy explain allowlist.rules --path ~/a.py --exe /usr/bin/python3 --uid 1000 --gid 1000 --ppid 812
`

func runPolicyExplain(args []string) int {
	var (
		path, event            = "", "open"
		pathUnknown, nameless  bool
		rules                  commandLineRules
		pidStr                 string
		pf                     processFlags
		of                     objectFlags
		src                    trustSources
		onError                = "deny"
		onErrorUsage, pidUsage string
	)
	onErrorUsage = "the verdict when reading what a rule needs fails, as guard --on-error: deny (default) or allow"
	pidUsage = "read the process PID from /proc (instead of --exe, --uid, ...)"
	fs := newFlagSet("policy explain", "[FILE] --path P [--event open|exec|access|pre_access] [--deny GLOB]... [--allow GLOB]... [--cache] [--pid PID | --exe E --uid U --gid G,... --comm C --ppid N --ancestor EXE...] [--ftype T --sha256 H --trusted yes|no --size N --mount-writable yes|no] [--trust FILE]... [--no-package-trust]", policyExplainHelp)
	fs.stringVar(&path, "path", "the file accessed")
	fs.boolVar(&pathUnknown, "path-unknown", "decide as when the kernel cannot print the file's path (deeper than PATH_MAX)")
	fs.boolVar(&nameless, "nameless", "decide as for a file with no name and no content (an empty O_TMPFILE, an unlinked empty file): its path is unknown, and an open of it is about no path")
	fs.stringVar(&event, "event,e", "the access: open, exec, access or pre_access")
	fs.stringVar(&pidStr, "pid", pidUsage)
	pf.register(fs)
	of.register(fs)
	src.registerGuardStyle(fs)
	fs.stringVar(&onError, "on-error", onErrorUsage)
	rules.register(fs) // the guard's command-line rules, before its --policy file's, and --cache
	rest, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	switch {
	case len(rest) == 0 && len(rules.flags) == 0:
		// The guard runs on command-line rules alone: so does explain.
		return fs.usageError(errors.New("no FILE given: name the rules file (or the guard's --deny and --allow rules)"))
	case len(rest) > 1:
		return fs.usageError(fmt.Errorf("unexpected argument %q (one rules FILE)", rest[1]))
	case path == "":
		return fs.usageError(errors.New("no --path given: name the file accessed"))
	}
	ev, err := policy.ParseEvents(event)
	if err != nil || ev&(ev-1) != 0 {
		return fs.usageError(fmt.Errorf("--event %q: want one of open, exec, access, pre_access", event))
	}
	errVerdict, err := engine.ParseVerdict(onError)
	if err != nil {
		return fs.usageError(fmt.Errorf("--on-error: %w", err))
	}
	if err := of.check(); err != nil {
		return fs.usageError(err)
	}
	if pidStr != "" && pf.any() {
		return fs.usageError(fmt.Errorf("--pid reads the process; %s describes one: give one or the other", pf.first()))
	}
	// A trust source that cannot be read exits 2 here, as a rules file does: 1 says denied.
	if _, ok := src.checkDir(fs.cmd); !ok {
		return exitUsage
	}
	var filePol *policy.Policy
	var owner error
	if len(rest) == 1 {
		if filePol, owner, err = readPolicyFile(rest[0]); err != nil {
			// Exit 2, as policy check's: 1 says the access is denied.
			fail(fs.cmd, err)
			return exitUsage
		}
	}
	flagPol, err := policy.FromFlags(rules.flags)
	if err != nil {
		return fs.usageError(err)
	}
	pol, err := guardPolicy(flagPol, filePol, rules.cache)
	if err != nil {
		fail(fs.cmd, err)
		return exitUsage
	}
	if owner != nil {
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: warning: %v; guard --policy refuses it\n", fs.cmd, owner)
	}

	var tr sysattr.Trust
	if pol.Needs(policy.AttrTrusted) && of.trusted == policy.Unknown || pol.Needs(policy.AttrTrustedExe) && pf.trustedExe == policy.Unknown {
		db, _, ok := src.load(fs.cmd, true)
		if !ok {
			return exitUsage
		}
		tr = sysattr.Trust{DB: db, Verifier: trust.NewVerifier(trust.VerifierConfig{CacheEntries: 4})}
	}

	// The guard's request for a nameless file (guardRun.decide): its path unknown, Nameless
	// for an open (Decide reads it for opens only).
	pathUnknown = pathUnknown || nameless
	req := policy.Request{Event: ev, PathUnknown: pathUnknown, Nameless: nameless}
	var head []string // what the request is, for the first lines
	// A file not there yet is named as it would be; its attributes come from the flags.
	canon, err := kernelPath(path)
	if err != nil {
		canon, _ = filepath.Abs(path)
	}
	// The kernel prints no path this long for a file (readlink of its descriptor fails:
	// sys.FdPath), and the guard decides such an access as an unknown path.
	tooLong := !pathUnknown && len(canon) >= sys.PathMax
	req.PathUnknown = pathUnknown || tooLong
	if !req.PathUnknown {
		req.Path = canon
	}
	obj := &explainObject{flags: &of}
	if fd, regular, err := openForExplain(canon); err == nil {
		defer sys.Close(fd)
		obj.file = &sysattr.Object{Fd: fd, Path: req.Path, Trust: tr}
		what := "read from the file"
		if !regular {
			what = "not a regular file: it has no type, digest or size, and is not trusted"
		}
		head = append(head, fmt.Sprintf("file     %s (%s)", canon, what))
	} else {
		obj.missing = err
		head = append(head, fmt.Sprintf("file     %s (%v: its attributes come from the flags)", canon, err))
	}
	if tooLong {
		head = append(head, fmt.Sprintf("         its path is %d bytes, PATH_MAX or more: the kernel does not print it, and the guard decides as for an unknown path", len(canon)))
	}
	if canon != path {
		if abs, _ := filepath.Abs(path); abs != canon {
			head = append(head, fmt.Sprintf("         %s is %s, the path the kernel reports", path, canon))
		}
	}
	req.Obj = obj
	if pidStr != "" {
		pid, err := strconv.ParseInt(pidStr, 10, 32)
		if err != nil || pid <= 0 {
			return fs.usageError(fmt.Errorf("--pid %q: want a process id", pidStr))
		}
		req.Pid = int32(pid)
		req.Proc = &sysattr.Process{Pid: req.Pid, Trust: tr}
		head = append(head, fmt.Sprintf("process  %d (read from /proc)", pid))
	} else {
		gp, note, err := pf.process(tr)
		if err != nil {
			return fs.usageError(err)
		}
		req.Proc = gp
		head = append(head, "process  "+note)
	}
	ex := pol.Explain(&req)
	printExplanation(os.Stdout, pol, &req, head, ex, errVerdict)
	printTrust(os.Stdout, obj.file, req.Proc)
	d := ex.Decision
	switch {
	case d.Err != nil && errors.Is(d.Err, policy.ErrUnknown):
		return exitUsage
	case d.Err != nil && errVerdict == engine.Allow:
		return exitOK
	case d.Verdict == engine.Allow && d.Err == nil:
		return exitOK
	}
	return exitRuntime
}

// openForExplain opens path as an event's descriptor would be: without following a final
// symbolic link, and for reading only if it is a regular file (an O_PATH descriptor
// otherwise, enough for fstat and fstatfs: a FIFO or a device is never opened).
func openForExplain(path string) (fd int, regular bool, err error) {
	pfd, err := sys.Open(path, sys.O_PATH|sys.O_NOFOLLOW, 0)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			return -1, false, se.Err
		}
		return -1, false, err
	}
	st, err := sys.Fstat(pfd)
	if err != nil || st.Mode&sys.S_IFMT != sys.S_IFREG {
		return pfd, false, err
	}
	// The very file just checked, opened for reading through its descriptor.
	fd, err = sys.Open("/proc/self/fd/"+strconv.Itoa(pfd), sys.O_RDONLY|sys.O_NONBLOCK, 0)
	sys.Close(pfd)
	if err != nil {
		return -1, false, err
	}
	return fd, true, nil
}

// printExplanation writes the explanation: the request, each rule tried, the decision. What
// the file, the process and its user chose (the path, the "#!" line's interpreter, the
// executable's path, an error naming them) is escaped as trace escapes names
// (format.Escaped): it cannot forge a line nor send escape sequences to the terminal.
func printExplanation(w io.Writer, pol *policy.Policy, req *policy.Request, head []string, ex policy.Explanation, onError engine.Verdict) {
	esc := format.Escaped
	def := "allow"
	if pol.Default == engine.Deny {
		def = "deny"
	}
	fmt.Fprintf(w, "request  %s of %s\n", fsevent.AccessName(req.Event), pathOrUnknown(req))
	for _, h := range head {
		fmt.Fprintln(w, esc(h))
	}
	fmt.Fprintf(w, "policy   %d rules, default %s\n\n", len(pol.Rules), def)
	// The rules' table, its columns padded; a line's last cell is not, so no line ends in
	// blanks (the cells after it are empty).
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 8, 2, ' ', 0)
	for _, st := range ex.Steps {
		r := st.Rule
		fmt.Fprintf(tw, "%s\t%s\n", r, r.Text())
		switch {
		case !st.EventMatches:
			fmt.Fprintf(tw, "\tevents\t%s is not one of its events\tno match\n", fsevent.AccessName(req.Event))
		case st.Path == policy.Fails:
			fmt.Fprintf(tw, "\tpath\t%s does not match %s\tno match\n", pathOrUnknown(req), r.Glob)
		case st.Path == policy.MayHold:
			fmt.Fprintf(tw, "\tpath\tunknown: %s may match it\t%s\n", r.Glob, pathVerdict(r))
		default:
			fmt.Fprintf(tw, "\tpath\t%s matches %s\t\n", pathOrUnknown(req), r.Glob)
		}
		for _, c := range st.Conds {
			res := c.Outcome.String()
			switch {
			case c.Err != nil && c.Needed:
				res = "cannot be evaluated"
			case c.Err != nil:
				res = "cannot be evaluated (not needed)"
			case !c.Needed:
				res += " (not needed: an earlier condition fails)"
			}
			fmt.Fprintf(tw, "\t%s\t%s is %s\t%s\n", c.Cond, c.Cond.Attr, esc(c.Value), res)
		}
		if st.EventMatches && st.Path != policy.Fails && !(st.Path == policy.MayHold && st.Result == policy.PassedOver) {
			fmt.Fprintf(tw, "\t→ %s\t\t\n", st.Result)
		}
	}
	tw.Flush()
	for _, l := range strings.SplitAfter(table.String(), "\n") {
		if l != "" {
			fmt.Fprintln(w, strings.TrimRight(l, " \n"))
		}
	}
	if n := len(pol.Rules) - len(ex.Steps); n > 0 && len(ex.Steps) > 0 {
		fmt.Fprintf(w, "(%d rules after %s are not tried)\n", n, ex.Steps[len(ex.Steps)-1].Rule)
	}
	d := ex.Decision
	fmt.Fprintln(w)
	switch {
	case d.Err != nil && errors.Is(d.Err, policy.ErrUnknown):
		fmt.Fprintf(w, "decision none: %s needs what was not given: %s\n", d.Rule, esc(d.Err.Error()))
	case d.TimedOut():
		fmt.Fprintf(w, "decision the guard's --on-timeout verdict: %s could not be decided in time: %s\n", d.Rule, esc(d.Err.Error()))
	case d.Err != nil:
		fmt.Fprintf(w, "decision %s (--on-error): %s could not be evaluated: %s\n", onError, d.Rule, esc(d.Err.Error()))
	default:
		fmt.Fprintf(w, "decision %s by %s", decisionVerdict(d), d.Source())
		if d.Cache {
			fmt.Fprint(w, " (the kernel may cache this allow)")
		}
		fmt.Fprintln(w)
		switch {
		case d.PathUnknown && req.Nameless && req.Event == engine.OpenPerm:
			fmt.Fprintln(w, "         the file has no name and no content: an open of it is about no path, so only a rule whose glob matches every path applies, and the default if none decides (never cached)")
		case d.PathUnknown:
			fmt.Fprintln(w, "         the path is unknown: a deny rule whose glob may match denies, an allow rule only allows if its glob matches every path")
		}
		if d.AncestryIncomplete {
			fmt.Fprintln(w, "         the ancestry could not be read to its end (or an ancestor's executable could not be read): the ancestor= condition may hold, and a deny applies")
		}
		if d.ExeUnknown {
			fmt.Fprintln(w, "         the process's executable is unknown (no executable to read, or a mount namespace a user made, where its path says nothing of what runs): the exe= condition may hold, and a deny applies")
		}
		if d.GroupsMayLack {
			fmt.Fprintln(w, "         the process may have dropped groups (a user namespace where setgroups was allowed): the gid= condition may hold, and a deny applies")
		}
		if d.ContentUnverifiable {
			fmt.Fprintln(w, "         the file's content could not be read as one version (open for writing, or changed while it was read): the sha256= condition may hold, and a deny applies")
		}
	}
}

// printTrust writes what the decision's trust verifications found: the file's (trusted=)
// and the executable's (trusted_exe=), with the source that lists it and the digest compared,
// as the guard's audit line gives them.
func printTrust(w io.Writer, file *sysattr.Object, proc policy.Process) {
	p, _ := proc.(*sysattr.Process)
	if file == nil && p == nil {
		return
	}
	a := file.Audit(p)
	for _, t := range []struct {
		what string
		tr   *format.AuditTrust
	}{{"file", a.Trust}, {"exe", a.ExeTrust}} {
		if t.tr == nil {
			continue
		}
		line := "trust    " + t.what + " " + t.tr.Status
		for _, kv := range [][2]string{{"source", t.tr.Source}, {"digest", t.tr.Digest}, {"want", t.tr.Want}, {"error", t.tr.Error}} {
			if kv[1] != "" {
				line += " " + kv[0] + "=" + format.Escaped(kv[1]) // an error may name the file
			}
		}
		fmt.Fprintln(w, line)
	}
}

func decisionVerdict(d policy.Decision) string {
	if d.Verdict == engine.Deny && d.Errno != 0 {
		return "deny (" + d.Errno.Error() + ")"
	}
	return d.Verdict.String()
}

func pathVerdict(r *policy.Rule) string {
	if r.Verdict == engine.Allow {
		return "passed over: an allow must be sure"
	}
	return "may match: a deny applies"
}

func pathOrUnknown(req *policy.Request) string {
	if req.PathUnknown || req.Path == "" {
		return "(unknown path)"
	}
	return format.Escaped(req.Path)
}

// registerGuardStyle registers the trust-source flags under the names guard will take them
// (--trust, --trust-dir, --no-package-trust, --dpkg-dir): the package database is on unless
// --no-package-trust (load with withPaths true).
func (s *trustSources) registerGuardStyle(fs *flagSet) {
	s.fileFlag, s.dirFlag = "--trust", "--trust-dir"
	fs.value(&s.files, "trust", "read the trust file FILE (repeatable; default: the *.trust files of --trust-dir)")
	fs.stringVar(&s.dir, "trust-dir", "read the *.trust files of DIR when no --trust is given (default "+trust.DefaultDir+")")
	fs.boolVar(&s.noPackages, "no-package-trust", "leave the package database out of the trust database")
	fs.stringVar(&s.dpkgDir, "dpkg-dir", "dpkg's database directory (default "+trust.DefaultDpkgDir+")")
}

// processFlags describe a process for explain.
type processFlags struct {
	exe, uid, gid, comm, ppid string
	ancestors                 stringList
	cut                       bool
	trustedExe                policy.YesNo
}

func (f *processFlags) register(fs *flagSet) {
	fs.stringVar(&f.exe, "exe", "the process's executable (a path; the file there is verified for trusted_exe=)")
	fs.stringVar(&f.uid, "uid", "the process's effective uid")
	fs.stringVar(&f.gid, "gid", "the process's groups, a comma list (real, effective, supplementary...)")
	fs.stringVar(&f.comm, "comm", "the process's name")
	fs.stringVar(&f.ppid, "ppid", "the process's parent pid")
	fs.value(&f.ancestors, "ancestor", "an ancestor's executable (repeatable, parent first)")
	fs.boolVar(&f.cut, "ancestry-cut", "the ancestors go on beyond the --ancestor ones (not read to the top)")
	fs.value((*yesNoFlag)(&f.trustedExe), "trusted-exe", "yes or no: whether the executable is trusted (instead of verifying --exe)")
}

func (f *processFlags) any() bool { return f.first() != "" }

// first names the first process flag given.
func (f *processFlags) first() string {
	switch {
	case f.exe != "":
		return "--exe"
	case f.uid != "":
		return "--uid"
	case f.gid != "":
		return "--gid"
	case f.comm != "":
		return "--comm"
	case f.ppid != "":
		return "--ppid"
	case len(f.ancestors) > 0 || f.cut:
		return "--ancestor"
	case f.trustedExe != policy.Unknown:
		return "--trusted-exe"
	}
	return ""
}

// process builds the described process, and a line saying what it is.
func (f *processFlags) process(tr sysattr.Trust) (*givenProcess, string, error) {
	p := &givenProcess{tr: tr, trusted: f.trustedExe}
	var desc []string
	if f.exe != "" {
		if !filepath.IsAbs(f.exe) {
			return nil, "", fmt.Errorf("--exe %q: want an absolute path (as /proc/PID/exe shows it)", f.exe)
		}
		p.exe = f.exe
		if canon, err := canonicalPath(f.exe); err == nil {
			p.exe, p.exeExists = canon, true
		}
		d := "exe " + p.exe
		if p.exe != f.exe {
			d += " (" + f.exe + " resolved)"
		}
		desc = append(desc, d)
	}
	if f.uid != "" {
		n, err := strconv.ParseUint(f.uid, 10, 32)
		if err != nil {
			return nil, "", fmt.Errorf("--uid %q: want a number", f.uid)
		}
		u := uint32(n)
		p.uid = &u
		desc = append(desc, "uid "+f.uid)
	}
	if f.gid != "" {
		p.groups = []uint32{}
		for _, g := range strings.Split(f.gid, ",") {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, "", fmt.Errorf("--gid %q: want a comma list of numbers", f.gid)
			}
			p.groups = append(p.groups, uint32(n))
		}
		desc = append(desc, "groups "+f.gid)
	}
	if f.comm != "" {
		p.comm = &f.comm
		desc = append(desc, "comm "+strconv.Quote(f.comm))
	}
	if f.ppid != "" {
		n, err := strconv.ParseUint(f.ppid, 10, 31)
		if err != nil {
			return nil, "", fmt.Errorf("--ppid %q: want a process id (0 for none)", f.ppid)
		}
		pp := int32(n)
		p.ppid = &pp
		desc = append(desc, "ppid "+f.ppid)
	}
	if len(f.ancestors) > 0 || f.cut {
		a := policy.Ancestry{List: []policy.Ancestor{}, Complete: !f.cut}
		for _, e := range f.ancestors {
			if !filepath.IsAbs(e) {
				return nil, "", fmt.Errorf("--ancestor %q: want an absolute path", e)
			}
			if canon, err := canonicalPath(e); err == nil {
				e = canon
			}
			a.List = append(a.List, policy.Ancestor{Exe: e, Verified: true})
		}
		p.ancestry = &a
		d := "ancestors " + strings.Join(f.ancestors, " ")
		switch {
		case len(f.ancestors) == 0:
			d = "ancestors unknown (--ancestry-cut)"
		case f.cut:
			d += " and more (--ancestry-cut)"
		}
		desc = append(desc, d)
	}
	if len(desc) == 0 {
		return p, "none given (conditions on the process cannot be decided)", nil
	}
	return p, strings.Join(desc, ", ") + " (given)", nil
}

// givenProcess is a process described by flags. An attribute not given is unknown: a rule
// that needs it cannot be decided, and the error names the flag.
type givenProcess struct {
	exe       string
	exeExists bool
	uid       *uint32
	groups    []uint32
	comm      *string
	ppid      *int32
	ancestry  *policy.Ancestry
	trusted   policy.YesNo
	tr        sysattr.Trust
}

func notGiven(flag string) error {
	return fmt.Errorf("%w: give %s (or --pid)", policy.ErrUnknown, flag)
}

func (p *givenProcess) Comm() (string, error) {
	if p.comm == nil {
		return "", notGiven("--comm")
	}
	return *p.comm, nil
}

func (p *givenProcess) UID() (uint32, error) {
	if p.uid == nil {
		return 0, notGiven("--uid")
	}
	return *p.uid, nil
}

func (p *givenProcess) Groups() ([]uint32, error) {
	if p.groups == nil {
		return nil, notGiven("--gid")
	}
	return p.groups, nil
}

func (p *givenProcess) Exe() (string, bool, error) {
	if p.exe == "" {
		return "", false, notGiven("--exe")
	}
	return p.exe, true, nil
}

func (p *givenProcess) PPid() (int32, error) {
	if p.ppid == nil {
		return 0, notGiven("--ppid")
	}
	return *p.ppid, nil
}

func (p *givenProcess) Ancestors() (policy.Ancestry, error) {
	if p.ancestry == nil {
		return policy.Ancestry{}, notGiven("--ancestor")
	}
	return *p.ancestry, nil
}

// TrustedExe verifies the file at --exe, unless --trusted-exe says.
func (p *givenProcess) TrustedExe() (bool, error) {
	switch {
	case p.trusted != policy.Unknown:
		return p.trusted == policy.Yes, nil
	case p.exe == "":
		return false, notGiven("--exe or --trusted-exe")
	case !p.exeExists:
		return false, fmt.Errorf("%w: %s does not exist: give --trusted-exe", policy.ErrUnknown, p.exe)
	}
	fd, regular, err := openForExplain(p.exe)
	if err != nil {
		return false, err
	}
	defer sys.Close(fd)
	if !regular {
		return false, nil // unverifiable
	}
	return (&sysattr.Object{Fd: fd, Path: p.exe, Trust: p.tr}).Trusted()
}

// objectFlags override, or give, the file's attributes.
type objectFlags struct {
	ftype, sha, size  string
	trusted, writable policy.YesNo
}

func (f *objectFlags) register(fs *flagSet) {
	fs.stringVar(&f.ftype, "ftype", "the file's type (elf-executable, script:sh, text, ...) instead of reading it")
	fs.stringVar(&f.sha, "sha256", "the file's sha256 (64 hex digits) instead of hashing it")
	fs.value((*yesNoFlag)(&f.trusted), "trusted", "yes or no: whether the file is trusted, instead of verifying it")
	fs.stringVar(&f.size, "size", "the file's size in bytes (K, M, G suffixes) instead of its own")
	fs.value((*yesNoFlag)(&f.writable), "mount-writable", "yes or no: whether its mount is writable, instead of asking it")
}

// check refuses a bad --ftype, --sha256 or --size whether or not a rule reads it: read by
// a rule only, it would be an evaluation error there, and the decision --on-error's.
func (f *objectFlags) check() error {
	if f.ftype != "" {
		if _, err := policy.ParseFileType(f.ftype); err != nil {
			return fmt.Errorf("--ftype: %w", err)
		}
	}
	if f.sha != "" {
		if _, err := f.sha256(); err != nil {
			return err
		}
	}
	if f.size != "" {
		if _, err := policy.ParseSize(f.size); err != nil {
			return fmt.Errorf("--size: %w", err)
		}
	}
	return nil
}

// sha256 is --sha256's digest.
func (f *objectFlags) sha256() ([32]byte, error) {
	var sum [32]byte
	if n, err := hex.Decode(sum[:], []byte(f.sha)); err != nil || n != 32 {
		return sum, fmt.Errorf("--sha256 %q: want 64 hex digits", f.sha)
	}
	return sum, nil
}

// explainObject is the file: flags first, then the file itself (nil when it does not exist).
type explainObject struct {
	flags   *objectFlags
	file    *sysattr.Object
	missing error
}

func (o *explainObject) unknown(flag string) error {
	return fmt.Errorf("%w: %v: give %s", policy.ErrUnknown, o.missing, flag)
}

func (o *explainObject) FileType() (ftype.Type, error) {
	switch {
	case o.flags.ftype != "":
		return policy.ParseFileType(o.flags.ftype)
	case o.file == nil:
		return ftype.Type{}, o.unknown("--ftype")
	}
	return o.file.FileType()
}

func (o *explainObject) SHA256() ([32]byte, error) {
	var sum [32]byte
	switch {
	case o.flags.sha != "":
		return o.flags.sha256()
	case o.file == nil:
		return sum, o.unknown("--sha256")
	}
	return o.file.SHA256()
}

func (o *explainObject) Trusted() (bool, error) {
	switch {
	case o.flags.trusted != policy.Unknown:
		return o.flags.trusted == policy.Yes, nil
	case o.file == nil:
		return false, nil // not there: nothing to verify, untrusted
	}
	return o.file.Trusted()
}

func (o *explainObject) Size() (uint64, error) {
	switch {
	case o.flags.size != "":
		return policy.ParseSize(o.flags.size)
	case o.file == nil:
		return 0, o.unknown("--size")
	}
	return o.file.Size()
}

func (o *explainObject) MountWritable() (bool, error) {
	switch {
	case o.flags.writable != policy.Unknown:
		return o.flags.writable == policy.Yes, nil
	case o.file == nil:
		return false, o.unknown("--mount-writable")
	}
	return o.file.MountWritable()
}

// yesNoFlag is a yes/no flag that remembers whether it was given.
type yesNoFlag policy.YesNo

func (f *yesNoFlag) String() string {
	if f == nil || policy.YesNo(*f) == policy.Unknown {
		return ""
	}
	return policy.YesNo(*f).String()
}

func (f *yesNoFlag) Set(s string) error {
	switch s {
	case "yes":
		*f = yesNoFlag(policy.Yes)
	case "no":
		*f = yesNoFlag(policy.No)
	default:
		return fmt.Errorf("%q: want yes or no", s)
	}
	return nil
}
