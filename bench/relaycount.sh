#!/usr/bin/env bash
# What the daemon does per open beyond the floor of any relay, counted rather than timed (the
# counts do not depend on how busy the machine is): for the minimal C relay (bench/relayfloor.c
# loop, and loop2 with two reader threads) and for `fsnotifyd serve` + bench/daemonallow, each
# of the two processes (relay and its child; daemon and client) under `perf stat -e
# raw_syscalls:sys_enter,context-switches,task-clock -p` while fanref's load opens one file
# OPENS times from THREADS threads; then, with STRACE=1, `strace -f -c` of each process for
# which system calls they are. Prints per open: system calls, context switches, CPU µs, and
# SUMMARY lines (bench/lib.sh) with each pair's sums (relay + child, daemon + client).
# RELAYCOUNT_MODES lists what to count (default "loop loop2 daemon-socket daemon"): relayfloor.c's
# MODE[-TRANSPORT] (loop-pipe, split-futex, ...; see its header), daemon (daemonallow with
# the permission ring, its default) and daemon-socket (DAEMONALLOW_RING=0: the socket).
# Run as root: [RELAYCOUNT_MODES=...] bash bench/relaycount.sh [OPENS] [THREADS...]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
shift || true
THREADS=("${@:-1}")
[ "$#" -gt 0 ] || THREADS=(1 2)
ROUNDS=1
command -v perf > /dev/null || apt-get install -y -qq linux-perf > /dev/null || true
command -v perf > /dev/null || { echo "bench/relaycount.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
[ "${STRACE:-0}" != 1 ] || command -v strace > /dev/null || apt-get install -y -qq strace > /dev/null
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
go build -o "$out/daemonallow" ./bench/daemonallow
cc -O2 -pthread -o "$out/relayfloor-c" bench/relayfloor.c
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

waitReady() { for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.05; done; echo "not ready: $(cat "$1")" >&2; exit 1; }

# count LABEL THREADS PID...: perf stat of each PID while the load runs; one line per PID.
count() {
	local label=$1 threads=$2; shift 2
	local p i=0 ps=()
	for p in "$@"; do
		perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p "$p" -o "$out/perf.$i" & ps+=($!)
		i=$((i + 1))
	done
	sleep 0.3
	ops "$threads" > "$out/ops"
	for p in "${ps[@]}"; do kill -INT "$p"; done
	wait "${ps[@]}" 2>/dev/null || true
	i=0
	for p in "$@"; do
		awk -F, -v n="$((N * threads))" -v who="$label $(tr '\0' ' ' < /proc/"$p"/cmdline | awk '{ print $1 }' | xargs basename)" -v t="$threads" -v o="$(cat "$out/ops")" '
			$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { c = $1 } $3 == "task-clock" { k = $1 }
			END { printf "threads %d  %-28s syscalls/open %5.2f  cs/open %5.2f  cpu_us/open %6.2f  (ops/s %s, noisy)\n", t, who, s / n, c / n, k * 1000 / n, o }' "$out/perf.$i" |
			tee -a "$out/counts"
		i=$((i + 1))
	done
}

# strace_count LABEL THREADS PID...: strace -f -c of each PID while the load runs.
strace_count() {
	local label=$1 threads=$2; shift 2
	strace_calls "threads $threads  $label" "$((N * threads))" open "ops $threads" "$@"
}

"$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & pids+=($!)
serve=$!
for _ in $(seq 1200); do "$out/fsnotifyd" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done

MODES=(${RELAYCOUNT_MODES:-loop loop2 daemon-socket daemon})
for threads in "${THREADS[@]}"; do
	for mode in "${MODES[@]}"; do
		if [ "$mode" = daemon ] || [ "$mode" = daemon-socket ]; then
			: > "$out/l.log" # now, not when the job runs: the last listener's "ready" must not pass
			DAEMONALLOW_RING=$([ "$mode" = daemon ] && echo 1 || echo 0) "$out/daemonallow" "$out/d.sock" "$out/mnt/d" > "$out/l.log" 2>&1 & l=$!
			waitReady "$out/l.log" ready
			procs=("$serve" "$l")
		else
			: > "$out/l.log"
			"$out/relayfloor-c" "$mode" "$out/mnt/d" > "$out/l.log" 2>&1 & l=$!
			waitReady "$out/l.log" ready
			procs=("$l" $(pgrep -P "$l"))
		fi
		count "$mode" "$threads" "${procs[@]}"
		[ "${STRACE:-0}" = 1 ] && strace_count "$mode" "$threads" "${procs[@]}"
		kill "$l"; wait "$l" 2>/dev/null || true
	done
done

# The pairs' sums per open, as SUMMARY lines.
for threads in "${THREADS[@]}"; do
	for mode in "${MODES[@]}"; do
		read -r sc cs cpu < <(awk -v t="$threads" -v m="$mode" '$1 == "threads" && $2 == t && $3 == m {
			for (i = 4; i < NF; i++) { if ($i == "syscalls/open") s += $(i+1); if ($i == "cs/open") c += $(i+1); if ($i == "cpu_us/open") u += $(i+1) } }
			END { printf "%.2f %.2f %.1f\n", s, c, u }' "$out/counts")
		what="C relay (relayfloor.c $mode) + its child"
		[ "$mode" = daemon ] && what="serve + bench/daemonallow (permission ring)"
		[ "$mode" = daemon-socket ] && what="serve + bench/daemonallow (socket)"
		summary "relaycount.syscalls.$mode.t$threads" "$sc" - "system calls per open, $what (perf stat), $threads load thread(s)"
		summary "relaycount.cs.$mode.t$threads" "$cs" - "context switches per open, $what (perf stat), $threads load thread(s)"
		summary "relaycount.cpu-us.$mode.t$threads" "$cpu" - "CPU µs per open, $what (perf stat; depends on the load), $threads load thread(s)"
	done
done
