#!/usr/bin/env bash
# Where the round trip's time goes on this machine: the CPUs the listener and the opener run
# on. fanref's C responder and `fsnotifyd guard DIR` (allow-all) each answer fanref's open
# load from ONE thread, with the listener and the load unpinned (as every other bench script
# runs them), pinned to two different CPUs, and pinned to the same CPU, a fresh listener per
# round, the listeners and placements in a turned order each round. Prints per placement the
# median per-open time of each and the guard's ratio to fanref's in that placement.
# On a VM a wake-up of a thread on another, idle vCPU (the kernel's wake of the listener, the
# listener's wake of the opener) costs a halted vCPU's wake-up; on one CPU both are context
# switches. No listener chooses the opener's CPU, so the unpinned figure is the goal's.
# Run as root: bash bench/placement.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=${2:-6}
. bench/lib.sh
fsnotifyd_bins "" # $out/new/fsnotifyd (lib.sh)
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
last=$(($(nproc) - 1))
# one NAME LCPU OCPU CMD...: per-open µs of CMD answering N opens; "-" leaves a side unpinned.
one() {
	local name=$1 lc=$2 oc=$3; shift 3
	local lp=() op=()
	[ "$lc" = - ] || lp=(taskset -c "$lc")
	[ "$oc" = - ] || op=(taskset -c "$oc")
	: > "$out/l.log"
	"${lp[@]}" "$@" > "$out/l.log" 2>&1 & local pid=$!
	wait_ready "$out/l.log" "ready\|Watches established"
	"$out/fanref" load "$LOAD_FILE" 500 1 > /dev/null # warm up
	"${op[@]}" "$out/fanref" load "$LOAD_FILE" "$N" 1 |
		awk -v n="$name" '{for (i = 1; i <= NF; i++) if ($i == "ops_per_s") printf "%.3f\n", 1e6 / $(i + 1)}' >> "$out/r.$name"
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
}
placements=("- -" "0 $last" "0 0")
labels=("unpinned" "two CPUs (listener 0, load $last)" "one CPU (both on 0)")
echo "placement: $N opens, 1 load thread, $ROUNDS rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	for i in "${!placements[@]}"; do
		p=${placements[$(((i + r) % ${#placements[@]}))]}
		k=$(((i + r) % ${#placements[@]}))
		set -- $p
		if ((r % 2)); then
			one "fanref.$k" "$1" "$2" "$out/fanref" respond "$out/mnt/d"
			one "guard.$k" "$1" "$2" "$out/new/fsnotifyd" guard "$out/mnt/d"
		else
			one "guard.$k" "$1" "$2" "$out/new/fsnotifyd" guard "$out/mnt/d"
			one "fanref.$k" "$1" "$2" "$out/fanref" respond "$out/mnt/d"
		fi
	done
done
for k in "${!placements[@]}"; do
	fr=$(median < "$out/r.fanref.$k") gd=$(median < "$out/r.guard.$k")
	printf "%-36s fanref %6.2f us/open  guard %6.2f us/open  guard/fanref %.3f\n" "${labels[$k]}:" "$fr" "$gd" "$(echo "$gd $fr" | awk '{print $1 / $2}')"
done
