//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
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
                 escapes it by renaming itself or leaving its parent

A summary goes to stderr (-q leaves it out).

Exit status: 0 no errors (warnings allowed); 1 a file has an error, or with
--strict any warning; 2 a usage error or a file that cannot be read.

Examples:
  fsnotifyd policy check /etc/fsnotifyd/guard.rules
  fsnotifyd policy check --strict --exec allowlist.rules
`

func runPolicyCheck(args []string) int {
	var strict, scanned, quiet bool
	fs := newFlagSet("policy check", "[--strict] [--exec] [-q] FILE...", policyCheckHelp)
	fs.boolVar(&strict, "strict", "fail (exit 1) on warnings too")
	fs.boolVar(&scanned, "exec", "check as for guard --exec: an allow rule then also grants what the scanner would decide")
	fs.boolVar(&quiet, "q,quiet", "print no summary on stderr")
	files, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if len(files) == 0 {
		return fs.usageError(errors.New("no FILE given: name the rules files to check"))
	}
	exit := exitOK
	for _, name := range files {
		st := checkPolicyFile(name, policy.LintOptions{Scanned: scanned, Weak: true}, strict, quiet)
		exit = max(exit, st)
	}
	return exit
}

// checkPolicyFile checks one file and returns its exit status.
func checkPolicyFile(name string, opts policy.LintOptions, strict, quiet bool) int {
	pol, err := readPolicyFile(name)
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
	ws := pol.LintWith(opts)
	for _, w := range ws {
		fmt.Printf("%s: warning: %s [%s]\n", w.Source(), w.Msg, w.Kind)
	}
	if !quiet {
		def := "allow"
		if pol.Default == engine.Deny {
			def = "deny"
		}
		fmt.Fprintf(os.Stderr, "%s: %d rules, default %s: 0 errors, %d warnings\n", name, len(pol.Rules), def, len(ws))
	}
	if strict && len(ws) > 0 {
		return exitRuntime
	}
	return exitOK
}

// readPolicyFile reads and parses a rules file. A syntax error is a *policy.ParseError.
func readPolicyFile(name string) (*policy.Policy, error) {
	f, err := os.Open(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %v", name, pe.Err)
		}
		return nil, err
	}
	defer f.Close()
	return policy.Parse(name, f)
}
