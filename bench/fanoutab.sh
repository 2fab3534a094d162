#!/usr/bin/env bash
# bench/fanout.sh's measurement for two revisions side by side in one run: the daemon built
# from REF (default main) and from the working tree (or NEW=rev), each with 1 and CLIENTS
# notification clients (bench/fanout), and fanref's notification reader, under fanref's load
# (open and close of one file, two threads) on a scratch ext4 image. Rounds alternate which
# daemon goes first, so that drift on a shared machine hits both alike. Prints, per round and
# as medians, each daemon's CPU per kernel event over fanref's and its kernel events/s over
# fanref's (the two ratios bench/fanout.sh's goals are about), and the clients' CPU per kernel
# event (not counted in the daemon's), with the Overflow events the clients received and the
# events their queues in the daemon dropped (nothing may be lost silently: a cut that makes
# clients overflow shows here). Each revision's clients (bench/fanout, the client
# library) are built from that revision too.
# Run as root: [NEW=rev] bash bench/fanoutab.sh [REF] [OPENS] [ROUNDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
REF=${1:-main}
N=${2:-100000}
ROUNDS=${3:-5}
K=${4:-10}
NEW=${NEW:-}
. bench/lib.sh
build_revs "$REF" "$NEW" fsnotifyd:./cmd/fsnotifyd fanout:./bench/fanout
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
echo "REF=$REF ($(git rev-parse --short "$REF")) vs ${NEW:-tree} ($(git rev-parse --short "${NEW:-HEAD}")$([ -n "$NEW" ] || git diff --quiet HEAD || echo +dirty)); $N opens, 2 load threads, 1 and $K clients, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cpu() { cpu_s "$1"; } # seconds (lib.sh: schedstat, not clock ticks)
now() { date +%s.%N; }
# daemon BIN K: prints "us/kernel-event kernel-events/s clients-us/kernel-event overflows dropped"
daemon() {
	local bin=$1 k=$2 dpid p e0 e1 c0 c1 f0 f1 t0 t1
	rm -f "$out/d.sock"
	"$bin" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & dpid=$!
	for _ in $(seq 100); do "$bin" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done
	: > "$out/fan.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$(dirname "$bin")/fanout" "$out/d.sock" "$out/mnt/d" "$k" > "$out/fan.log" 2>&1 & p=$!
	wait_ready "$out/fan.log"
	st() { "$bin" stats --socket "$out/d.sock" --json | awk -F'[:,]' '$1 ~ "\"events\"" { gsub(/ /, "", $2); print $2; exit }'; }
	e0=$(st); c0=$(cpu "$dpid"); f0=$(cpu "$p"); t0=$(now)
	"$out/fanref" load "$out/mnt/d/f" "$N" 2 > /dev/null
	t1=$(now); sleep 0.5 # let the clients drain
	e1=$(st); c1=$(cpu "$dpid"); f1=$(cpu "$p")
	kill -TERM "$p" "$dpid"; wait "$p" "$dpid" 2>/dev/null || true
	awk -v e=$((e1 - e0)) -v a="$c0" -v b="$c1" -v fa="$f0" -v fb="$f1" -v s="$t0" -v u="$t1" \
		-v ov="$(awk '/^events/ { print $8 }' "$out/fan.log")" -v dr="$(awk '/^events/ { print $12 }' "$out/fan.log")" \
		'BEGIN { printf "%.3f %.1f %.3f %d %d\n", (b-a)*1e6/e, e/(u-s), (fb-fa)*1e6/e, ov, dr }'
}
for r in $(seq "$ROUNDS"); do
	: > "$out/ref.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$out/fanref" notify "$out/mnt/d" > "$out/ref.log" 2>&1 & p=$!
	wait_ready "$out/ref.log"
	c0=$(cpu "$p"); t0=$(now); "$out/fanref" load "$out/mnt/d/f" "$N" 2 > /dev/null; t1=$(now); c1=$(cpu "$p")
	kill -TERM "$p"; wait "$p" 2>/dev/null || true
	ev=$(awk '/^events/ { print $2 }' "$out/ref.log")
	refc=$(awk -v e="$ev" -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", (b-a)*1e6/e }')
	refr=$(awk -v e="$ev" -v s="$t0" -v u="$t1" 'BEGIN { printf "%.1f", e/(u-s) }')
	order="ref new"; [ $((r % 2)) = 0 ] && order="new ref"
	for which in $order; do
		for k in 1 "$K"; do
			read -r c rate fc ov dr <<< "$(daemon "$out/$which/fsnotifyd" "$k")"
			awk -v r="$r" -v w="$which" -v k="$k" -v c="$c" -v rate="$rate" -v fc="$fc" -v ov="$ov" -v dr="$dr" -v rc="$refc" -v rr="$refr" 'BEGIN {
				printf "round %d %s %2d client(s): %.3f us CPU/kernel event (fanref %.3f) = %.2fx, %.0f kernel events/s (fanref %.0f) = %.2fx, clients %.3f us/kernel event, overflows %d (dropped in the daemon %d)\n",
					r, w, k, c, rc, c/rc, rate, rr, rate/rr, fc, ov, dr }' | tee -a "$out/rounds"
		done
	done
done
for which in ref new; do
	for k in 1 "$K"; do
		cr=$(awk -v w="$which" -v k="$k" '$3 == w && $4 == k { print $13 }' "$out/rounds" | tr -d 'x,' | median)
		rr=$(awk -v w="$which" -v k="$k" '$3 == w && $4 == k { print $20 }' "$out/rounds" | tr -d 'x,' | median)
		echo "median $which, $k client(s): CPU per kernel event / fanref $cr, kernel events/s / fanref $rr"
	done
done
