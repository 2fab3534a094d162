#!/usr/bin/env bash
# What a subtree permission mark costs the REST of its filesystem: fanref's open() load on a
# file in a directory outside the subtree, (a) with no listener, (b) with the backend + engine +
# an allow-all group holding a subtree mark on another directory of the same filesystem (one
# kernel filesystem mark). After the first access the backend puts an evictable ignore mark on
# the unrelated directory, so the kernel stops sending its events. Goal: (b)/(a) <= 1.2.
# Run as root: bash bench/ignore.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-5}
. bench/lib.sh
go build -o "$out/allowall" ./bench/allowall
mkdir -p "$out/mnt/guarded/sub" "$out/mnt/other" && echo x > "$out/mnt/other/f"
LOAD_FILE=$out/mnt/other/f
for threads in 1 2; do
	ratios=()
	for r in $(seq "$ROUNDS"); do
		a=$(ops "$threads")
		: > "$out/l.log" # emptied before the start: an old "ready" in it must not pass the wait
		"$out/allowall" "$out/mnt/guarded" subtree > "$out/l.log" 2>&1 & pid=$!
		for _ in $(seq 100); do grep -q ready "$out/l.log" 2>/dev/null && break; sleep 0.05; done
		b=$(ops "$threads"); kill "$pid"; wait "$pid" 2>/dev/null || true
		line=$(awk -v t="$threads" -v a="$a" -v b="$b" 'BEGIN { printf "threads %d  no listener %.0f/s (%.2f us)  subtree elsewhere %.0f/s (%.2f us)  ratio %.3f", t, a, 1e6/a, b, 1e6/b, a/b }')
		echo "$line  ($(tail -1 "$out/l.log"))"
		ratios+=("$(echo "$line" | awk '{print $NF}')")
	done
	m=$(printf '%s\n' "${ratios[@]}" | median)
	echo "median ratio, $threads thread(s): $m over ${#ratios[@]} rounds (goal <= 1.2)"
	summary "ignore.elsewhere.t$threads" "$m" "<=1.2" "opens elsewhere on a guarded filesystem / no listener, $threads load thread(s)"
done
