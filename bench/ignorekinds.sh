#!/usr/bin/env bash
# Per-file vs directory ignore marks, kernel only (docs/security.md, "Evictable ignore marks
# and the verdict cache"): fanref's open() load on a file of a filesystem that a content group
# marks for FAN_OPEN_PERM, (a) with no listener, (b) with an ignore mark on the file itself, (c) with
# an ignore mark on its directory for its children. Each round measures the three in turn and
# prints, as ratios to (a), the CPU time the load spent per open (user + system, which the
# other tenants of a shared machine inflate far less than the wall clock) and the wall time.
# Run as root: bash bench/ignorekinds.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-5}
. bench/lib.sh
cc -O2 -o "$out/ignorekinds" bench/ignorekinds.c
mkdir -p "$out/mnt/d" && echo x > "$out/mnt/d/f"

# load THREADS: "CPU-us-per-open wall-us-per-open" of one fanref load run.
load() {
	local t=$1 res
	res=$( { TIMEFORMAT='%3U %3S'; time "$out/fanref" load "$LOAD_FILE" "$N" "$t" > "$out/load.out"; } 2>&1 )
	awk -v r="$res" -v n="$N" -v t="$t" -v o="$(cat "$out/load.out")" 'BEGIN {
		split(r, c, " "); split(o, f, " ")
		for (i = 1; i < length(f); i++) if (f[i] == "ops_per_s") ops = f[i+1]
		printf "%.4f %.4f", (c[1] + c[2]) * 1e6 / (n * t), 1e6 / ops }'
}
# load_with THREADS KIND: load while ignorekinds KIND listens.
load_with() {
	: > "$out/listener.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$out/ignorekinds" "$2" "$LOAD_FILE" > "$out/listener.log" 2>&1 & local pid=$!
	for _ in $(seq 200); do grep -q ready "$out/listener.log" 2>/dev/null && break; sleep 0.05; done
	grep -q ready "$out/listener.log" || { echo "listener not ready" >&2; cat "$out/listener.log" >&2; exit 1; }
	load "$1"; kill "$pid"; wait "$pid" 2>/dev/null || true
}
for threads in 1 2; do
	rows=()
	for r in $(seq "$ROUNDS"); do
		read -r ac aw <<< "$(load "$threads")"
		read -r bc bw <<< "$(load_with "$threads" file)"
		read -r cc cw <<< "$(load_with "$threads" dir)"
		row=$(awk -v ac="$ac" -v aw="$aw" -v bc="$bc" -v bw="$bw" -v cc="$cc" -v cw="$cw" 'BEGIN {
			printf "%.3f %.3f %.3f %.3f", bc/ac, cc/ac, bw/aw, cw/aw }')
		echo "threads $threads  CPU per open: none $ac us, file mark $bc us, directory mark $cc us  wall: none $aw us, file $bw us, directory $cw us  ratios (cpu file, cpu dir, wall file, wall dir) $row"
		rows+=("$row")
	done
	col() { printf '%s\n' "${rows[@]}" | awk -v k="$1" '{print $k}' | median; }
	echo "median ratios to no listener, $threads thread(s), $ROUNDS rounds: CPU per open: file mark $(col 1), directory mark $(col 2); wall: file mark $(col 3), directory mark $(col 4)"
done
