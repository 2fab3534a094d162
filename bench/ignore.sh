#!/usr/bin/env bash
# What a subtree permission mark costs the REST of its filesystem: fanref's open() load on a
# file in a directory outside the subtree, (a) with no listener, (b) with the backend + engine +
# an allow-all group holding a subtree mark on another directory of the same filesystem (one
# kernel filesystem mark). After the first access the backend puts an evictable ignore mark on
# the unrelated directory, so the kernel stops sending its events. Goal: (b)/(a) <= 1.2.
# Each round also measures (c) the kernel's side alone: bench/ignorekinds.c's "guard" mode
# holds the same marks in C (the filesystem mark of a pre-content group, the FID group's
# filesystem mark for the subtree's directory events, the per-file ignore mark) and no event
# reaches it: (c)/(a) is the floor under (b)/(a).
# Run as root: bash bench/ignore.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-5}
. bench/lib.sh
go build -o "$out/allowall" ./bench/allowall
cc -O2 -o "$out/ignorekinds" bench/ignorekinds.c
mkdir -p "$out/mnt/guarded/sub" "$out/mnt/other" && echo x > "$out/mnt/other/f"
LOAD_FILE=$out/mnt/other/f
# listening CMD...: the load's opens per second while CMD listens (from its "ready" on).
listening() {
	: > "$out/l.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$@" > "$out/l.log" 2>&1 & local pid=$!
	for _ in $(seq 100); do grep -q ready "$out/l.log" 2>/dev/null && break; sleep 0.05; done
	ops "$threads"; kill "$pid"; wait "$pid" 2>/dev/null || true
}
for threads in 1 2; do
	ratios=() floors=()
	for r in $(seq "$ROUNDS"); do
		a=$(ops "$threads")
		b=$(listening "$out/allowall" "$out/mnt/guarded" subtree)
		marks=$(tail -1 "$out/l.log")
		c=$(listening "$out/ignorekinds" guard "$LOAD_FILE")
		line=$(awk -v t="$threads" -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "threads %d  no listener %.0f/s (%.2f us)  kernel marks alone %.0f/s (%.2f us) %.3f  subtree elsewhere %.0f/s (%.2f us)  ratio %.3f", t, a, 1e6/a, c, 1e6/c, a/c, b, 1e6/b, a/b }')
		echo "$line  ($marks)"
		ratios+=("$(echo "$line" | awk '{print $NF}')")
		floors+=("$(awk -v a="$a" -v c="$c" 'BEGIN { printf "%.3f", a/c }')")
	done
	m=$(printf '%s\n' "${ratios[@]}" | median)
	f=$(printf '%s\n' "${floors[@]}" | median)
	echo "median ratio, $threads thread(s): $m over ${#ratios[@]} rounds (goal <= 1.2); the kernel's marks alone: $f"
	summary "ignore.elsewhere.t$threads" "$m" "<=1.2" "opens elsewhere on a guarded filesystem / no listener, $threads load thread(s)"
	summary "ignore.kernel-floor.t$threads" "$f" "-" "the same opens with the guard's kernel marks held by a C program that gets no event (bench/ignorekinds.c guard) / no listener: the floor under it, $threads load thread(s)"
done
