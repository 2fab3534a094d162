#!/usr/bin/env bash
# Per-open cost of a permission listener, side by side in one run, on a scratch ext4 image:
#   (a) no listener, (b) fanref's C allow-all responder, (c) the Linux backend + engine + an
#   in-process allow-all group; one and two load threads. Prints the ratio (c)/(b) of the
#   per-open time. Run as root: [MODE=mount] bash bench/backend.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
# MODE=mount marks the whole mount (both listeners); the default marks the directory's children.
MODE=${MODE:-}
MODE_NAME=${MODE:-directory}
. bench/lib.sh
go build -o "$out/allowall" ./bench/allowall
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

# Rounds alternate the listeners, so that drift on this noisy machine hits each alike; the
# summary is the median of the per-round ratios.
for threads in 1 2; do
	ratios=()
	for r in $(seq "$ROUNDS"); do
		a=$(ops "$threads")
		b=$(with "$threads" "$out/fanref" respond "$out/mnt/d" $MODE)
		c=$(with "$threads" "$out/allowall" "$out/mnt/d" $MODE)
		line=$(awk -v t="$threads" -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
			printf "threads %d  none %.0f/s (%.2f us)  fanref %.0f/s (%.2f us)  fsnotifyd %.0f/s (%.2f us)  ratio(c/b) %.3f",
				t, a, 1e6/a, b, 1e6/b, c, 1e6/c, b/c }')
		echo "$line"
		ratios+=("$(echo "$line" | awk '{print $NF}')")
	done
	m=$(printf '%s\n' "${ratios[@]}" | median)
	echo "median ratio (c)/(b), $threads thread(s), $MODE_NAME marks: $m over ${#ratios[@]} rounds"
	summary "backend.allowall.${MODE_NAME}.t$threads" "$m" - "backend+engine allow-all / fanref C responder, per-open time, $threads load thread(s)"
done
