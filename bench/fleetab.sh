#!/usr/bin/env bash
# bench/fleet.sh's opens/s ratio (export / no export) for two revisions side by side in one run,
# with where the CPU goes: the daemon built from REF (default main) and from the working tree
# (or NEW=rev), each (a) without export and (b) with `serve --export` to a local in-process
# nats-server and an `export open DIR/**` line, the same `watch --daemon -r -e open DIR`
# client in both, under fanref's load (open+close of one file, THREADS threads) on a scratch
# ext4 image. Rounds alternate which revision goes first, so that drift on a shared machine
# hits both alike. Per run it prints opens/s and, per open: the CPU time (user+system, µs) of
# the load itself, the daemon, the watch client and the nats-server, the daemon's context
# switches (perf stat), the kernel events the daemon read and the records the stream stored.
# The CPU and switch counts move less with the machine's load than opens/s.
# Then (LAG=0 skips it), per revision, the lag from each event's kernel time to its storing in
# the stream (p50/p99, ms; fleetload count): 20,000 opens of distinct files (a tmpfs) paced at
# 10,000/s and 5,000 at 1,000/s, and 20,000 opens of the one file at 10,000/s (its opens merge
# into a record per read: the record's time is its first open's).
# Run as root: [NEW=rev] [LAG=0] bash bench/fleetab.sh [REF] [OPENS] [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
REF=${1:-main}
N=${2:-200000}
ROUNDS=${3:-4}
THREADS=${4:-1}
NEW=${NEW:-}
. bench/lib.sh
build_revs "$REF" "$NEW" fsnotifyd:./cmd/fsnotifyd
TREEFILES=20000
. bench/fleetsetup.sh
tck=1000000000
echo "REF=$REF ($(git rev-parse --short "$REF")) vs ${NEW:-tree} ($(git rev-parse --short "${NEW:-HEAD}")$([ -n "$NEW" ] || git diff --quiet HEAD || echo +dirty)); $N opens of one file, $THREADS load thread(s), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# cpu PID: the process's CPU time so far, in ns (tck: per second).
cpu() { cpu_ns "$1"; }
# run BIN export|plain: prints one line of figures (see the awk below).
run() {
	local bin=$1 mode=$2 spid wpid e0 e1 d0 d1 w0 w1 n0 n1 q0 q1 ops flags=()
	rm -f "$out/d.sock"
	# One spool per revision, kept from run to run: a new spool would start its seqs at 1
	# again, and the server would drop its records as duplicates of the last run's.
	[ "$mode" = export ] && flags=(--export "$url" --host "bench-$(basename "$(dirname "$bin")")" --spool "$out/spool-$(basename "$(dirname "$bin")")" --export-config "$out/export.conf")
	"$bin" serve --socket "$out/d.sock" --log-level warn "${flags[@]}" 2> "$out/daemon.log" & spid=$!
	for _ in $(seq 200); do "$bin" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done
	"$bin" watch --daemon="$out/d.sock" -r -e open "$out/mnt/d" > /dev/null 2> "$out/watch.log" & wpid=$!
	for _ in $(seq 200); do grep -q "Watches established" "$out/watch.log" && break; sleep 0.05; done
	kev() { "$bin" stats --socket "$out/d.sock" --json | awk -F'[:,]' '/"events":/ { gsub(/ /, "", $2); print $2; exit }'; }
	q0=$("$out/fleetload" seq "$url")
	perf stat -x, -e task-clock,context-switches -p "$spid" -o "$out/perf.daemon" & local pp=$!
	sleep 0.2
	e0=$(kev) d0=$(cpu "$spid") w0=$(cpu "$wpid") n0=$(cpu "$natspid")
	ops=$(perf stat -x, -e task-clock,context-switches -o "$out/perf.load" "$out/fanref" load "$out/mnt/d/f" "$N" "$THREADS" | awk '{for(i=1;i<=NF;i++) if($i=="ops_per_s") print $(i+1)}')
	d1=$(cpu "$spid") w1=$(cpu "$wpid") n1=$(cpu "$natspid") e1=$(kev)
	kill -INT "$pp"; wait "$pp" 2>/dev/null || true
	sleep 0.5; q1=$("$out/fleetload" seq "$url")
	kill "$wpid" "$spid"; wait "$wpid" "$spid" 2>/dev/null || true
	local lt lcs dcs
	lt=$(awk -F, '$3 == "task-clock" { print $1 }' "$out/perf.load")  # ms
	lcs=$(awk -F, '$3 == "context-switches" { print $1 }' "$out/perf.load")
	dcs=$(awk -F, '$3 == "context-switches" { print $1 }' "$out/perf.daemon")
	awk -v n="$N" -v t="$tck" -v ops="$ops" -v lt="$lt" -v lcs="$lcs" -v dcs="$dcs" -v d=$((d1 - d0)) -v w=$((w1 - w0)) -v s=$((n1 - n0)) -v e=$((e1 - e0)) -v q=$((q1 - q0)) \
		'BEGIN { printf "%.0f %.2f %.2f %.2f %.2f %.3f %.3f %.4f %.5f\n", ops, lt * 1e3 / n, d / t / n * 1e6, w / t / n * 1e6, s / t / n * 1e6, lcs / n, dcs / n, e / n, q / n }'
}
hdr="opens/s load-us daemon-us watch-us nats-us load-cs daemon-cs kev rec"
for r in $(seq "$ROUNDS"); do
	order="ref new"; [ $((r % 2)) = 0 ] && order="new ref"
	for which in $order; do
		p=$(run "$out/$which/fsnotifyd" plain)
		x=$(run "$out/$which/fsnotifyd" export)
		echo "round $r $which plain  $p" | tee -a "$out/rounds"
		echo "round $r $which export $x" | tee -a "$out/rounds"
		awk -v a="${p%% *}" -v b="${x%% *}" -v r="$r" -v w="$which" 'BEGIN { printf "round %d %s ratio %.3f\n", r, w, b / a }' | tee -a "$out/ratios"
	done
done
echo "columns: $hdr (per open: CPU µs of the load, daemon, watch client, nats-server; context switches of the load and the daemon; kernel events the daemon read; records stored)"
for which in ref new; do
	for mode in plain export; do
		printf 'median %s %-6s' "$which" "$mode"
		for c in $(seq 5 13); do printf ' %s' "$(awk -v w="$which" -v m="$mode" -v c="$c" '$3 == w && $4 == m { print $c }' "$out/rounds" | median)"; done
		echo
	done
	echo "median $which opens/s export / plain: $(awk -v w="$which" '$3 == w { print $5 }' "$out/ratios" | median)"
done
[ "${LAG:-1}" = 1 ] || exit 0
for which in ref new; do
	bin=$out/$which/fsnotifyd
	rm -f "$out/d.sock"
	"$bin" serve --socket "$out/d.sock" --log-level warn --export "$url" --host "bench-$which" --spool "$out/spool-$which" --export-config "$out/export.conf" 2> "$out/daemon.log" & spid=$!
	for _ in $(seq 200); do "$bin" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done
	for load in "$out/tree 10000 20000" "$out/tree 1000 5000" "$out/mnt/d/f 10000 20000"; do
		from=$("$out/fleetload" seq "$url")
		"$out/fleetload" pace $load
		echo "lag $which: $(echo "$load" | awk '{ printf "%s opens at %s/s of %s", $3, $2, ($1 ~ /tree$/ ? "distinct files" : "one file") }'): $("$out/fleetload" count "$url" "$from")"
	done
	kill "$spid"; wait "$spid" 2>/dev/null || true
done
