//go:build linux

package main

import "github.com/fsnotifyd/fsnotifyd/notify"

// benchConfig and benchStarted are what BenchmarkGuardInline's guard needs beyond the config
// both versions share: runGuard's ByKind, and the publication of the verdicts by kind. (For an
// A/B against a version with InlineKind, benchConfig sets cfg.InlineKind = g.inlineKindFunc()
// and benchStarted does nothing.)
func benchConfig(g *guardRun, cfg *notify.GuardConfig) { cfg.ByKind = g.state.Load().byKind }

func benchStarted(g *guardRun, gd *notify.Guard) { g.publishKinds = gd.SetKindVerdicts }
