//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

func init() {
	registerPolicySubcommand(subcommand{"check", "parse and lint rules files: errors, unreachable rules, forgeable grants", runPolicyCheck})
}

const policyCheckHelp = `
Read each rules FILE as "guard --policy" would (syntax: docs/policy.md) and
report what is wrong with it, one line per finding, on stdout:

  FILE:LINE:COL: error: ...     the file does not parse (the first error;
                                the guard would refuse it)
  FILE:LINE: warning: ... [KIND]  it parses, but probably does not do what
                                was meant

Give the guard's command-line rules too (--deny GLOB, --allow GLOB, --cache:
the ones it runs with) to check the policy it runs: those rules, in
command-line order, then FILE's. A warning about one of them names its flag
("--allow /srv/**: warning: ..."); a file rule or default that one makes
unreachable is reported at its line. With them, FILE is one (the guard takes
one --policy), or none: the guard runs on command-line rules alone.

The warnings (KIND):
  unreachable    a rule that never decides, because an earlier rule decides
                 every access it could (a catch-all, the same rule twice,
                 deny /srv/** before allow /srv/public/*); a default that
                 never applies
  never-matches  conditions that cannot all hold (size>10 size<5;
                 ftype=empty size>0)
  forgeable      an allow rule that tells who may access only by what any
                 process can fake: comm= (its own name), ppid=1 (any process
                 can become an orphan), ancestor!=, trusted_exe=no; reported
                 where it grants something (default deny, --exec, or a later
                 deny it lifts)
  weak-deny      a deny rule that tells who only by such a test: a process
                 escapes it by renaming itself or leaving its parent; or a
                 deny of pre_access whose files' opens are not denied:
                 open(O_TRUNC) and a mapping through an overlayfs ask no
                 pre-content event (deny open,pre_access ...)
  owner          someone other than root (or you) can change the file or a
                 directory above it: guard --policy refuses such a file, as
                 it does trust files (chown root, chmod go-w)
  renamable      a deny rule naming a directory that someone other than root
                 may rename (or one above it): the files below it are then
                 decided by the name that user gives them, which the rule
                 does not match (on this host; the guard warns too)
  symlink        a rule whose directories (or file) pass through a symbolic
                 link on this host: paths are matched with links resolved,
                 so it never matches there (the guard warns too)
  directory      a rule whose glob, without a wildcard, names a directory on
                 this host: it decides listing the directory, not the files
                 below it (write DIR/** too; the guard warns too)

A FILE that is not a regular file (a FIFO, a directory) cannot be read.

A summary goes to stderr (-q leaves it out).

Exit status: 0 no errors (warnings allowed); 1 a file has an error, or with
--strict any warning; 2 a usage error or a file that cannot be read.

Examples:
  fsnotifyd policy check /etc/fsnotifyd/guard.rules
  fsnotifyd policy check --strict --exec allowlist.rules
  fsnotifyd policy check --allow /srv/tls/dhparam.key /etc/fsnotifyd/guard.rules
`

func runPolicyCheck(args []string) int {
	var strict, scanned, quiet bool
	var rules commandLineRules
	fs := newFlagSet("policy check", "[--strict] [--exec] [-q] [--deny GLOB]... [--allow GLOB]... [--cache] [FILE...]", policyCheckHelp)
	fs.boolVar(&strict, "strict", "fail (exit 1) on warnings too")
	fs.boolVar(&scanned, "exec", "check as for guard --exec: an allow rule then also grants what the scanner would decide")
	fs.boolVar(&quiet, "q,quiet", "print no summary on stderr")
	rules.register(fs) // the guard's command-line rules, before its --policy file's, and --cache
	files, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	switch {
	case len(files) == 0 && len(rules.flags) == 0:
		return fs.usageError(errors.New("no FILE given: name the rules files to check (or the guard's --deny and --allow rules)"))
	case len(files) > 1 && rules.given():
		// The guard takes one --policy FILE: its command-line rules go before that one's.
		return fs.usageError(fmt.Errorf("unexpected argument %q: with --deny, --allow or --cache, check one FILE, as the guard takes one --policy (check each FILE on its own)", files[1]))
	}
	flagPol, err := policy.FromFlags(rules.flags)
	if err != nil {
		return fs.usageError(err)
	}
	opts := policy.LintOptions{Scanned: scanned, Weak: true, UserNS: sys.UnprivilegedUserNS()}
	if len(files) == 0 {
		return checkPolicyFile("", flagPol, rules.cache, opts, strict, quiet)
	}
	exit := exitOK
	for _, name := range files {
		exit = max(exit, checkPolicyFile(name, flagPol, rules.cache, opts, strict, quiet))
	}
	return exit
}

// checkPolicyFile checks the policy a guard runs with the command-line rules flagPol (and
// --cache) and --policy name ("": none), and returns its exit status. A warning names the
// rule's file and line, or its flag ("--deny GLOB").
func checkPolicyFile(name string, flagPol *policy.Policy, cache bool, opts policy.LintOptions, strict, quiet bool) int {
	var filePol *policy.Policy
	warnings := 0
	label := "the command line"
	if name != "" {
		pol, owner, err := readPolicyFile(name)
		if owner != nil {
			// A warning, not an error: the file may be checked by its author before it is
			// installed where only root can write.
			fmt.Printf("%s: warning: %v; guard --policy refuses it [owner]\n", name, owner)
			warnings++
		}
		var pe *policy.ParseError
		switch {
		case errors.As(err, &pe):
			fmt.Printf("%s:%d:%d: error: %s\n", pe.File, pe.Line, pe.Col, pe.Msg)
			if !quiet {
				fmt.Fprintf(os.Stderr, "%s: 1 error\n", name)
			}
			return exitRuntime
		case err != nil:
			fmt.Fprintf(os.Stderr, "fsnotifyd policy check: %v\n", err)
			return exitUsage
		}
		filePol, label = pol, name
		if n := len(flagPol.Rules); n > 0 {
			label = fmt.Sprintf("%s after %d command-line rules", name, n)
		}
	}
	pol, err := guardPolicy(flagPol, filePol, cache)
	if err != nil { // command-line rules have no default: not reached
		fmt.Fprintf(os.Stderr, "fsnotifyd policy check: %v\n", err)
		return exitUsage
	}
	ws := append(pol.LintWith(opts), pathWarnings(pol)...)
	for _, w := range ws {
		fmt.Printf("%s: warning: %s [%s]\n", w.Source(), w.Msg, w.Kind)
	}
	warnings += len(ws)
	if !quiet {
		def := "allow"
		if pol.Default == engine.Deny {
			def = "deny"
		}
		fmt.Fprintf(os.Stderr, "%s: %d rules, default %s: 0 errors, %d warnings\n", label, len(pol.Rules), def, warnings)
	}
	if strict && warnings > 0 {
		return exitRuntime
	}
	return exitOK
}

// readPolicySource reads the rules file name as guard --policy does: opened without waiting
// on a FIFO, and refused unless it is a regular file (trust.OpenFile, trust.CheckFile). A
// file, or a directory above it, that someone other than root (or this user) could change —
// whoever can write it decides what the guard allows — is a *trust.OwnerError, returned as
// owner with the file's content: the guard refuses it, policy check and explain warn.
func readPolicySource(name string) (src []byte, owner, err error) {
	src, err = trust.ReadChecked(name, "policy file")
	if oe := (*trust.OwnerError)(nil); errors.As(err, &oe) {
		return src, err, nil
	}
	return src, nil, err
}

// readPolicyFile reads (readPolicySource) and parses a rules file. A syntax error is a
// *policy.ParseError; owner is readPolicySource's.
func readPolicyFile(name string) (pol *policy.Policy, owner, err error) {
	src, owner, err := readPolicySource(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("%s: %v", name, pe.Err)
		}
		return nil, nil, err
	}
	pol, err = policy.Parse(name, bytes.NewReader(src))
	return pol, owner, err
}
