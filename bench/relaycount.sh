#!/usr/bin/env bash
# What the daemon does per open beyond the floor of any relay, counted rather than timed (the
# counts do not depend on how busy the machine is): for the minimal C relay (bench/relayfloor.c
# loop, and loop2 with two reader threads) and for `fsnotifyd serve` + bench/daemonallow, each
# of the two processes (relay and its child; daemon and client) under `perf stat -e
# raw_syscalls:sys_enter,context-switches,task-clock -p` while fanref's load opens one file
# OPENS times from THREADS threads; then, with STRACE=1, `strace -f -c` of each process for
# which system calls they are. Prints per open: system calls, context switches, CPU µs.
# Run as root: bash bench/relaycount.sh [OPENS] [THREADS...]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
shift || true
THREADS=("${@:-1}")
[ "$#" -gt 0 ] || THREADS=(1 2)
ROUNDS=1
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
			END { printf "threads %d  %-28s syscalls/open %5.2f  cs/open %5.2f  cpu_us/open %6.2f  (ops/s %s, noisy)\n", t, who, s / n, c / n, k * 1000 / n, o }' "$out/perf.$i"
		i=$((i + 1))
	done
}

# strace_count LABEL THREADS PID...: strace -f -c of each PID while the load runs.
strace_count() {
	local label=$1 threads=$2; shift 2
	local p i=0 ps=()
	for p in "$@"; do strace -f -qq -c -p "$p" -o "$out/st.$i" & ps+=($!); i=$((i + 1)); done
	sleep 0.5
	ops "$threads" > /dev/null
	for p in "${ps[@]}"; do kill -INT "$p"; done
	wait "${ps[@]}" 2>/dev/null || true
	i=0
	for p in "$@"; do
		echo "threads $threads  $label $(tr '\0' ' ' < /proc/"$p"/cmdline | awk '{ print $1 }' | xargs basename) (strace -f -c, calls per open >= 0.03):"
		awk -v n="$((N * threads))" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" && $4 / n >= 0.03 { printf "    %-16s %6.2f\n", $NF, $4 / n }' "$out/st.$i" | sort -k2 -n -r
		i=$((i + 1))
	done
}

"$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & pids+=($!)
serve=$!
for _ in $(seq 1200); do "$out/fsnotifyd" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done

for threads in "${THREADS[@]}"; do
	for mode in loop loop2 daemon; do
		if [ "$mode" = daemon ]; then
			"$out/daemonallow" "$out/d.sock" "$out/mnt/d" > "$out/l.log" 2>&1 & l=$!
			waitReady "$out/l.log" ready
			procs=("$serve" "$l")
		else
			"$out/relayfloor-c" "$mode" "$out/mnt/d" > "$out/l.log" 2>&1 & l=$!
			waitReady "$out/l.log" ready
			procs=("$l" "$(pgrep -P "$l")")
		fi
		count "$mode" "$threads" "${procs[@]}"
		[ "${STRACE:-0}" = 1 ] && strace_count "$mode" "$threads" "${procs[@]}"
		kill "$l"; wait "$l" 2>/dev/null || true
	done
done
