//go:build linux

package main

import (
	"errors"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// openSource returns the embedded source, or the daemon's with --daemon.
func openSource(daemon daemonFlag, opts engine.Options) (source, error) {
	if daemon.on {
		return nil, errors.New("--daemon: the daemon client is not built yet")
	}
	return newEmbedded(opts)
}

func guardViaDaemon(daemon daemonFlag, paths []string, kinds notify.AccessKind, pol *policy.Policy,
	execCmd string, deadline time.Duration, onTimeout engine.Verdict, permissive bool, audit string, quiet bool) int {
	return fail("guard", errors.New("--daemon: the daemon client is not built yet"))
}

func runServe(args []string) int { return fail("serve", errors.New("not built yet")) }
func runStats(args []string) int { return fail("stats", errors.New("not built yet")) }
