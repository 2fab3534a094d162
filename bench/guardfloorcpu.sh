#!/usr/bin/env bash
# CPU per open of the embedded guard's listener against REF's (and fanref's, and bare Go's),
# measured so that a change of a few percent shows on a shared, noisy machine: many short
# rounds, the listeners interleaved within each round, and per-round ratios (a round's
# listeners run within a second of each other, under the same load), reported as medians with
# how many rounds went each way. Per open, for each listener: the per-open time (fanref's load
# from THREADS threads, for reference only), the CPU time of all the listener's threads
# (schedstat: run time, so also sysmon's and the runtime's), the time its threads waited for a
# CPU while runnable, and the opener's CPU time (perf stat task-clock of the load).
#
# Why CPU and not the per-open time: when the second CPU is taken (a busy core, or other work),
# the opener and the listener take turns on one CPU and the per-open time is about the sum of
# their CPU times per open (docs/design/performance.md, h9-guard), so the listener's CPU per
# open is what a change to it moves; the per-open time moves with the machine's load by more
# than that from round to round.
# BUSY=1 runs a busy loop pinned to the last CPU for the whole run (all.sh --busy's load).
# NOCGO=1 adds the working tree's guard built with CGO_ENABLED=0 (guard-nocgo: no glibc, so no
# rseq area registered for its threads) beside the default (cgo) build, in the same rounds.
# STICKY=1 makes the scratch filesystem's root world-writable and sticky (1777, as /tmp and
# tmpfs' default): its files' ancestries are then not pinned (docs/security.md), and the guard
# asks the FID group whether it is idle once per batch.
# REFBIN=PATH compares with the fsnotifyd binary at PATH instead of REF's build (give REF as
# "" or any label): two builds of the same tree, e.g. `go build -pgo=off` against the default
# build, which uses cmd/fsnotifyd/default.pgo (bench/pgo.sh).
# Run as root: bash bench/guardfloorcpu.sh [OPENS] [ROUNDS] [REF] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=${2:-20}
REF=${3:-}
T=${4:-1}
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
. bench/lib.sh
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
if [ -n "${REFBIN:-}" ]; then
	fsnotifyd_bins "" # $out/new/fsnotifyd (lib.sh)
	mkdir -p "$out/ref" && cp "$REFBIN" "$out/ref/fsnotifyd"
	REF="REFBIN=$REFBIN"
else
	fsnotifyd_bins "$REF" # $out/new/fsnotifyd, and with REF $out/ref/fsnotifyd: bins (lib.sh)
fi
go build -o "$out/gofloor" ./bench/gofloor
[ "${NOCGO:-0}" != 1 ] || CGO_ENABLED=0 go build -o "$out/new/fsnotifyd-nocgo" ./cmd/fsnotifyd
[ "${STICKY:-0}" != 1 ] || chmod 1777 "$out/mnt"
busy=""
if [ "${BUSY:-0}" = 1 ]; then
	taskset -c "$(( $(nproc) - 1 ))" sh -c 'while :; do :; done' & pids+=($!)
	busy=" (busy loop on CPU $(( $(nproc) - 1 )))"
fi
# threads PID: the run time, run-queue wait and time slices (ns, ns, count) of all of PID's threads.
threads() { cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{r += $1; w += $2; s += $3} END {print r + 0, w + 0, s + 0}'; }
# run NAME CMD...: one round's figures for CMD as the listener, appended to $out/res.
run() {
	local name=$1; shift
	: > "$out/l.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$@" > "$out/l.log" 2>&1 & local pid=$!
	wait_ready "$out/l.log" "ready\|Watches established"
	"$out/fanref" load "$LOAD_FILE" 500 "$T" > /dev/null # warm up: first opens walk and cache
	local a b
	a=$(threads "$pid")
	perf stat -x, -e task-clock -o "$out/load.stat" "$out/fanref" load "$LOAD_FILE" "$N" "$T" > "$out/load.out"
	b=$(threads "$pid")
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
	local ops tc
	ops=$(awk '{for (i = 1; i <= NF; i++) if ($i == "ops_per_s") print $(i + 1)}' "$out/load.out")
	tc=$(awk -F, '/task-clock/ {print $1}' "$out/load.stat")
	echo "$r $name $ops $a $b $tc" | awk -v n=$((N * T)) '{printf "%s %s %.3f %.3f %.3f %.3f\n", $1, $2, 1e6 / $3, ($7 - $4) / 1000 / n, ($8 - $5) / 1000 / n, $10 * 1000 / n}' >> "$out/res"
}
names=(fanref go guard)
[ -z "$REF" ] || names+=(guard-ref)
[ "${NOCGO:-0}" != 1 ] || names+=(guard-nocgo)
echo "guard CPU per open: $N opens per thread, $T load thread(s), $ROUNDS rounds, $(nproc) CPUs$busy$([ "${STICKY:-0}" != 1 ] || echo ", root 1777"), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	# The order turns each round, so that no listener always runs first or after the same one.
	for i in $(seq 0 $((${#names[@]} - 1))); do
		n=${names[$(((i + r) % ${#names[@]}))]}
		case $n in
		fanref) run fanref "$out/fanref" respond "$out/mnt/d" ;;
		go) run go "$out/gofloor" "$out/mnt/d" ;;
		guard) run guard "$out/new/fsnotifyd" guard "$out/mnt/d" ;;
		guard-ref) run guard-ref "$out/ref/fsnotifyd" guard "$out/mnt/d" ;;
		guard-nocgo) run guard-nocgo "$out/new/fsnotifyd-nocgo" guard "$out/mnt/d" ;;
		esac
	done
	awk -v r="$r" '$1 == r {printf "  %s %.2f us (CPU %.2f, waited %.2f; opener %.2f)", $2, $3, $4, $5, $6} END {print ""}' "$out/res" | sed "s/^/round $r:/"
done
# ratio A B COL: the median over the rounds of A's column COL over B's in the same round, and
# in how many rounds A's was the lower.
ratio() {
	join <(awk -v n="$1" '$2 == n {print $1, $'"$3"'}' "$out/res" | sort) <(awk -v n="$2" '$2 == n {print $1, $'"$3"'}' "$out/res" | sort) |
		awk '{print $2 / $3}' > "$out/ratios"
	printf "%s (lower in %d of %d)" "$(median < "$out/ratios" | awk '{printf "%.3f", $1}')" "$(awk '$1 < 1' "$out/ratios" | wc -l)" "$(wc -l < "$out/ratios")"
}
pairs=("guard fanref" "go fanref" "guard go")
[ -z "$REF" ] || pairs+=("guard guard-ref")
[ "${NOCGO:-0}" != 1 ] || pairs+=("guard-nocgo guard" "guard-nocgo fanref")
for pair in "${pairs[@]}"; do
	set -- $pair
	echo "median $1 / $2 ($([ "$2" = guard-ref ] && echo "$REF" || echo "$2")), same rounds: listener CPU per open $(ratio "$1" "$2" 4), per-open time $(ratio "$1" "$2" 3)"
done
# col NAME COL: the median of NAME's column COL (6 + 1: listener and opener CPU over the per-open time).
col() { awk -v n="$1" -v c="$2" '$2 == n {print (c == 7 ? ($4 + $6) / $3 : $c)}' "$out/res" | median | awk '{printf "%.2f", $1}'; }
for n in "${names[@]}"; do
	echo "median $n: per-open $(col "$n" 3) us, listener CPU $(col "$n" 4) us, waited $(col "$n" 5) us, opener CPU $(col "$n" 6) us; (listener + opener CPU) / per-open time $(col "$n" 7)"
done
summary "guardfloorcpu.guard-over-fanref.t$T" "$(ratio guard fanref 4 | cut -d' ' -f1)" - "embedded guard allow-all listener CPU per open / fanref's, same rounds, $T load thread(s)$busy"
