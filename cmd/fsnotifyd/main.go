//go:build linux

// Command fsnotifyd watches, traces and guards file access on Linux, embedded (no daemon
// needed) or through the fsnotifyd daemon. Run "fsnotifyd help" for the subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set by the linker (-ldflags "-X main.version=...").
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string) int
}

func commands() []command {
	return []command{
		{"watch", "report file events below paths, like inotifywait (recursive without the mkdir race)", runWatch},
		{"trace", "report every file access on a mount, filesystem or paths, like fatrace", runTrace},
		{"guard", "allow or deny file accesses below paths by rules, a scanner, or both", runGuard},
		{"serve", "run the daemon that shares one kernel attachment with many clients", runServe},
		{"stats", "print the figures of a running daemon", runStats},
		{"trust", "add, list and verify the files a guard policy trusts (packages, trust files)", runTrust},
		{"policy", "push a guard policy to the fleet, see which revision each host enforces", runPolicy},
		{"fleet", "set up the fleet stream, read every host's events and decisions (NATS JetStream)", runFleet},
	}
}

// atExit runs after the command, before the process exits: only a build with the pgoprofile
// tag (pgoprofile.go, bench/pgo.sh) sets it, to end its CPU profile.
var atExit func()

func main() {
	keepTwoPs()
	code := run(os.Args[1:])
	if atExit != nil {
		atExit()
	}
	os.Exit(code)
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return exitUsage
	}
	switch args[0] {
	case "__exec-launcher": // internal: guard --exec's scanner launcher (see launcher.go)
		return runLauncher(args[1:])
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run([]string{"--help"})
				}
			}
		}
		usage(os.Stdout)
		return 0
	case "version", "--version", "-version":
		fmt.Println("fsnotifyd", version)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "fsnotifyd: unknown command %q (run \"fsnotifyd help\" for the list)\n", args[0])
	return exitUsage
}

func usage(w *os.File) {
	fmt.Fprintf(w, `fsnotifyd: Linux file notification and access control.

Usage: fsnotifyd COMMAND [FLAGS] [ARGS]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run "fsnotifyd COMMAND --help" for a command's flags and examples.
watch, trace and guard run embedded by default (fanotify as root, inotify otherwise);
with --daemon they run through a running "fsnotifyd serve".
`)
}

// untilInterrupt is the context of a command that runs until SIGINT or SIGTERM, or for
// timeout when it is above 0 (--timeout); stop releases it.
func untilInterrupt(timeout time.Duration) (ctx context.Context, stop context.CancelFunc) {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if timeout <= 0 {
		return ctx, stopSignals
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stopSignals() }
}

// untilStopped is the context of a command that stops cleanly on SIGINT or SIGTERM (guard,
// serve: they answer what is pending and flush their logs on the way out), and its release,
// which ignores both from then on instead of giving them back their default action (as
// signal.NotifyContext's stop does): a second SIGTERM (systemctl stop after a first, a shell's
// kill loop) arriving while the command stops must not kill it before it is done (exit 143
// instead of 0, an audit log not flushed). SIG_IGN is inherited by what the command starts
// after the release: it starts nothing then.
func untilStopped() (ctx context.Context, release func()) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx, func() {
		signal.Ignore(os.Interrupt, syscall.SIGTERM)
		stop()
	}
}

// surviveBrokenPipes keeps a guard or the daemon alive when a reader of its stdout or stderr
// goes away (guard --audit - | head, serve 2>&1 | logger, a restarted log shipper): with
// SIGPIPE left to Go's default, such a write kills the process, and the kernel then allows
// every access it denied. Asked for (never read), SIGPIPE makes the write fail with EPIPE
// instead. A handler, unlike SIG_IGN, is not inherited by the programs it runs (scanners).
// watch and trace keep the default: `watch | head` ends them, as it ends inotifywait.
func surviveBrokenPipes() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}
