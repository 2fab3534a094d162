#!/usr/bin/env bash
# Two revisions side by side in one run: bench/daemon.sh's (c) (serve + an allow-all client)
# and bench/backend.sh's (c) (backend + engine + an in-process allow-all group), each built
# from REF (default main) and from the working tree, with fanref's C responder as the
# reference; rounds alternate all of them, so that drift on a shared machine hits each alike.
# ONLY=guard runs instead the embedded `fsnotifyd guard DIR` allow-all of each (bench/cli.sh
# section 1), the two in alternating order from one round to the next.
# Prints per round and as medians: each one's per-open time over fanref's, and tree/REF.
# Run as root: [MODE=mount] [ONLY=daemon|backend|guard] [NEW=rev] bash bench/ab.sh [REF] [OPENS] [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
REF=${1:-main}
N=${2:-100000}
ROUNDS=${3:-5}
THREADS=${4:-1}
MODE=${MODE:-}
ONLY=${ONLY:-} # daemon, backend or guard: run only that pair
NEW=${NEW:-}   # a revision to build instead of the working tree (which may change meanwhile)
. bench/lib.sh
build_revs "$REF" "$NEW" fsnotifyd:./cmd/fsnotifyd daemonallow:./bench/daemonallow allowall:./bench/allowall
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
if [ "$ONLY" = guard ]; then
	echo "REF=$REF ($(git rev-parse --short "$REF")) vs ${NEW:-tree} ($(git rev-parse --short "${NEW:-HEAD}")$([ -n "$NEW" ] || git diff --quiet HEAD || echo +dirty)); guard allow-all, $N opens, $THREADS thread(s), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	# guardOps BIN: opens/s while `BIN guard DIR` listens (ready once it says so on stderr).
	guardOps() {
		: > "$out/guard.log" # emptied before the start: an old "ready" in it must not pass the wait
		"$1" guard $([ "$MODE" = mount ] && echo --mount) "$out/mnt/d" > "$out/guard.log" 2>&1 & local pid=$!
		for _ in $(seq 200); do grep -q "Watches established" "$out/guard.log" && break; sleep 0.05; done
		ops "$THREADS"; kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
	}
	gr=() gb=()
	for r in $(seq "$ROUNDS"); do
		f=$(with "$THREADS" "$out/fanref" respond "$out/mnt/d" $MODE)
		if [ $((r % 2)) = 1 ]; then g0=$(guardOps "$out/ref/fsnotifyd"); g1=$(guardOps "$out/new/fsnotifyd")
		else g1=$(guardOps "$out/new/fsnotifyd"); g0=$(guardOps "$out/ref/fsnotifyd"); fi
		awk -v f="$f" -v a="$g0" -v b="$g1" 'BEGIN { printf "fanref %.2f us  guard ref %.3f new %.3f (new/ref %.3f)\n", 1e6/f, f/a, f/b, a/b }'
		gr+=("$(awk -v f="$f" -v x="$g0" 'BEGIN{print f/x}')") gb+=("$(awk -v f="$f" -v x="$g1" 'BEGIN{print f/x}')")
	done
	echo "median over $ROUNDS rounds, per-open time / fanref's: guard ref $(printf '%s\n' "${gr[@]}" | median) new $(printf '%s\n' "${gb[@]}" | median)"
	exit 0
fi
serve_revs # spid[ref], spid[new] (lib.sh)
echo "REF=$REF ($(git rev-parse --short "$REF")) vs ${NEW:-tree} ($(git rev-parse --short "${NEW:-HEAD}")$([ -n "$NEW" ] || git diff --quiet HEAD || echo +dirty)); $N opens, $THREADS thread(s), $(nproc) CPUs"
# The daemon's CPU time per open (user+system, from /proc/PID/stat in clock ticks): less
# sensitive than wall time to what else runs on the machine.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
dr=() db=() br=() bb=() cr=() cb=()
for r in $(seq "$ROUNDS"); do
	f=$(with "$THREADS" "$out/fanref" respond "$out/mnt/d" $MODE)
	d0=$f d1=$f b0=$f b1=$f
	if [ "$ONLY" != backend ]; then
		t0=$(ticks "${spid[ref]}")
		d0=$(with "$THREADS" "$out/ref/daemonallow" "$out/ref.sock" "$out/mnt/d" $MODE)
		t1=$(ticks "${spid[ref]}")
		c0=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$N" 'BEGIN{print (b-a)/hz*1e6/n}')
		t0=$(ticks "${spid[new]}")
		d1=$(with "$THREADS" "$out/new/daemonallow" "$out/new.sock" "$out/mnt/d" $MODE)
		t1=$(ticks "${spid[new]}")
		c1=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$N" 'BEGIN{print (b-a)/hz*1e6/n}')
		cr+=("$c0") cb+=("$c1")
	fi
	if [ "$ONLY" != daemon ]; then
		b0=$(with "$THREADS" "$out/ref/allowall" "$out/mnt/d" $MODE)
		b1=$(with "$THREADS" "$out/new/allowall" "$out/mnt/d" $MODE)
	fi
	line=$(awk -v f="$f" -v d0="$d0" -v d1="$d1" -v b0="$b0" -v b1="$b1" 'BEGIN {
		printf "fanref %.2f us  daemon ref %.3f new %.3f (new/ref %.3f)  backend ref %.3f new %.3f (new/ref %.3f)",
			1e6/f, f/d0, f/d1, d0/d1, f/b0, f/b1, b0/b1 }')
	[ "$ONLY" = backend ] || line="$line  daemon CPU/open ref $c0 us new $c1 us"
	echo "$line"
	dr+=("$(awk -v f="$f" -v x="$d0" 'BEGIN{print f/x}')") db+=("$(awk -v f="$f" -v x="$d1" 'BEGIN{print f/x}')")
	br+=("$(awk -v f="$f" -v x="$b0" 'BEGIN{print f/x}')") bb+=("$(awk -v f="$f" -v x="$b1" 'BEGIN{print f/x}')")
done
m() { printf '%s\n' "$@" | median; }
echo "median over $ROUNDS rounds, per-open time / fanref's: daemon ref $(m "${dr[@]}") new $(m "${db[@]}"); backend ref $(m "${br[@]}") new $(m "${bb[@]}")"
[ "$ONLY" = backend ] || echo "median daemon CPU per open: ref $(m "${cr[@]}") us, new $(m "${cb[@]}") us"
