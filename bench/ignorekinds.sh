#!/usr/bin/env bash
# Per-file vs directory ignore marks, kernel only (docs/security.md, "Ignore marks and the
# verdict cache"): fanref's open() load on a file of a filesystem that a content group marks
# for FAN_OPEN_PERM, (a) with no listener, (b) with an ignore mark on the file itself, (c) with
# an ignore mark on its directory for its children; ratios to (a) in the same round.
# Run as root: bash bench/ignorekinds.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-5}
. bench/lib.sh
cc -O2 -o "$out/ignorekinds" bench/ignorekinds.c
mkdir -p "$out/mnt/d" && echo x > "$out/mnt/d/f"
for threads in 1 2; do
	file=() dir=()
	for r in $(seq "$ROUNDS"); do
		a=$(ops "$threads")
		b=$(with "$threads" "$out/ignorekinds" file "$LOAD_FILE")
		c=$(with "$threads" "$out/ignorekinds" dir "$LOAD_FILE")
		line=$(awk -v t="$threads" -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "threads %d  none %.2f us  file mark %.2f us (%.3f)  directory mark %.2f us (%.3f)", t, 1e6/a, 1e6/b, a/b, 1e6/c, a/c }')
		echo "$line"
		file+=("$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')")
		dir+=("$(awk -v a="$a" -v c="$c" 'BEGIN{printf "%.3f", a/c}')")
	done
	echo "median ratio to no listener, $threads thread(s): file mark $(printf '%s\n' "${file[@]}" | median), directory mark $(printf '%s\n' "${dir[@]}" | median) over $ROUNDS rounds"
done
