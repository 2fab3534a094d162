//go:build linux

package main

import (
	"os"
	"runtime"
)

// keepTwoPs gives the Go scheduler at least two Ps (GOMAXPROCS) where the runtime would use
// one — a process allowed a single CPU (taskset, a cpuset, a cgroup CPU limit of one, a
// 1-vCPU VM) — unless GOMAXPROCS is set in the environment.
//
// Why: the kernel reader (internal/evloop) is a goroutine locked to its thread that waits for
// the next event in a blocking read(2), with its P in the system call. With one P there is
// then no idle P, and the runtime's sysmon takes that P back (retake, handoffp) and wakes an M
// to look for work — which finds none and sleeps again — for every wait longer than sysmon's
// tick (20 µs and up): about once per permission event under a stream of execs. With a second
// P idle, sysmon leaves a P in a system call for up to 10 ms. Measured with bench/execcpu.sh's
// one-CPU placement (guard and execs pinned to CPU 0, 5,000 execs, two builds alternating,
// 2026-12-06 10:06-10:08, docs/design/performance.md): the guard's CPU per exec 12.05 and
// 11.99 µs without this, 9.01 and 8.96 with it; context switches per exec 2.74 and 2.66
// against 1.32 and 1.30 (a C listener making the same calls: 1.00). On one CPU the two Ps'
// threads share it, as any two threads do. Setting GOMAXPROCS also stops the runtime's
// updates of it from a changed CPU limit: a process that had one CPU keeps two Ps.
func keepTwoPs() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set && runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}
