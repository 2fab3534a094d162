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
export MODE_NAME=${MODE:-directory}
out=$(mktemp -d)
trap 'pkill -f "$out/" 2>/dev/null || true; umount -l "$out/mnt" 2>/dev/null || true; rm -rf "$out"' EXIT
cc -O2 -pthread -o "$out/fanref" ../shared/bench/fanref.c 2>/dev/null || cc -O2 -pthread -o "$out/fanref" "${FANREF_C:-/work/shared/bench/fanref.c}"
go build -o "$out/allowall" ./bench/allowall
mkdir -p "$out/mnt"
truncate -s 64M "$out/img" && mkfs.ext4 -q "$out/img" && mount -o loop "$out/img" "$out/mnt"
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

ops() { "$out/fanref" load "$out/mnt/d/f" "$N" "$1" | awk '{for(i=1;i<=NF;i++) if($i=="ops_per_s") print $(i+1)}'; }
with() { # with CMD... THREADS: run the load while CMD listens
	local threads=$1; shift
	"$@" > "$out/listener.log" 2>&1 & local pid=$!
	for _ in $(seq 100); do grep -q ready "$out/listener.log" 2>/dev/null && break; sleep 0.05; done
	ops "$threads"; kill "$pid"; wait "$pid" 2>/dev/null || true
}
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
	printf '%s\n' "${ratios[@]}" | sort -n | awk -v t="$threads" '{v[NR]=$1} END {
		printf "median ratio (c)/(b), %d thread(s), %s marks: %.3f over %d rounds\n", t, ENVIRON["MODE_NAME"], v[int((NR+1)/2)], NR }'
done
