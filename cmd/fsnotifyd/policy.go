//go:build linux

package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
)

// subcommand is one "fsnotifyd policy SUBCOMMAND". Each lives in a file of its own
// (policy_push.go, policy_status.go, ...) and registers itself in an init function, so a new
// one needs no change here.
type subcommand struct {
	name    string
	summary string
	run     func(args []string) int
}

var policySubcommands = map[string]subcommand{}

func registerPolicySubcommand(c subcommand) { policySubcommands[c.name] = c }

// runPolicy dispatches "fsnotifyd policy SUBCOMMAND [ARGS]".
func runPolicy(args []string) int {
	return dispatch("policy", "work with guard policies", policySubcommands, args)
}

// dispatch runs a subcommand of cmd from table: "help" and --help list them.
func dispatch(cmd, what string, table map[string]subcommand, args []string) int {
	if len(args) == 0 {
		subUsage(os.Stderr, cmd, what, table)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := table[args[1]]; ok {
				return c.run([]string{"--help"})
			}
		}
		subUsage(os.Stdout, cmd, what, table)
		return exitOK
	}
	c, ok := table[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: unknown subcommand %q (run \"fsnotifyd %s help\" for the list)\n", cmd, args[0], cmd)
		return exitUsage
	}
	return c.run(args[1:])
}

func subUsage(w *os.File, cmd, what string, table map[string]subcommand) {
	fmt.Fprintf(w, "fsnotifyd %s: %s.\n\nUsage: fsnotifyd %s SUBCOMMAND [FLAGS] [ARGS]\n\nSubcommands:\n", cmd, what, cmd)
	var names []string
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-7s %s\n", n, table[n].summary)
	}
	fmt.Fprintf(w, "\nRun \"fsnotifyd %s SUBCOMMAND --help\" for its flags and examples.\n", cmd)
}

// commandLineRules are the guard's command-line rules, --deny GLOB and --allow GLOB in
// command-line order, and its --cache. guard registers them, and so do policy check and
// explain, which build the policy as the guard does (guardPolicy): one definition and one
// help for the three.
type commandLineRules struct {
	flags []policy.Flag
	cache bool
}

func (c *commandLineRules) register(fs *flagSet) {
	fs.value(policy.FlagValue(&c.flags, engine.Deny), "deny", "deny accesses to paths matching GLOB (repeatable; first match wins; before the rules file's rules)")
	fs.value(policy.FlagValue(&c.flags, engine.Allow), "allow", "allow accesses to paths matching GLOB (repeatable; first match wins; before the rules file's rules)")
	fs.boolVar(&c.cache, "cache", "let the kernel remember allows until the file is modified")
}

// given reports whether a rule or --cache was given.
func (c *commandLineRules) given() bool { return len(c.flags) > 0 || c.cache }

// guardPolicy is the policy a guard runs (buildStateLocked): its command-line rules (flagPol,
// from policy.FromFlags) first, then its --policy file's (filePol; nil for none), every
// allow cacheable with --cache.
func guardPolicy(flagPol, filePol *policy.Policy, cache bool) (*policy.Policy, error) {
	pol, err := policy.Concat(flagPol, filePol)
	if err != nil {
		return nil, err
	}
	pol.CacheAllows = pol.CacheAllows || cache
	return pol, nil
}
