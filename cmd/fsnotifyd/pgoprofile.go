//go:build linux && pgoprofile

package main

// This file is built only with -tags pgoprofile (bench/pgo.sh): such a binary writes a CPU
// profile of its whole run to $FSNOTIFYD_CPUPROFILE, which bench/pgo.sh merges into
// default.pgo, the profile every `go build` of this command then optimizes with. The released
// build has no such knob. The file must not lie below a path the binary guards: opening it
// happens before the marks, but the profile's writes would then be the listener's own
// accesses.

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

func init() {
	path := os.Getenv("FSNOTIFYD_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsnotifyd: cpu profile:", err)
		os.Exit(1)
	}
	// 1,000 Hz, not pprof's 100: a listener's few seconds of CPU give enough samples. (Set
	// before StartCPUProfile, whose own setting of 100 Hz then only prints a warning.)
	runtime.SetCPUProfileRate(1000)
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "fsnotifyd: cpu profile:", err)
		os.Exit(1)
	}
	atExit = func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "fsnotifyd: cpu profile:", err)
		}
	}
}
