#!/usr/bin/env bash
# The listener's critical path per open, timed by the kernel: under fanref's open load from ONE
# thread the opener waits from its event's queueing until the listener's answer, and what the
# listener does between its read(2) of the event returning and its answer's write(2) entering is
# in series with every open (work after the write overlaps the opener's next open). perf's
# raw_syscalls tracepoints on the listener give both instants per event (nanoseconds); this
# prints, per listener, the median over the events of:
#   read->write   read(2) returning an event to the answer's write(2) entering
#   read->statx   read(2) returning to statx(2) entering (parse, the listener's own work first)
#   statx->write  statx(2) returning to the write(2) entering (the decision, the answer)
# for fanref's C responder (no statx), bench/gofloor (bare Go, the guard's four calls) and
# `fsnotifyd guard DIR` (allow-all), and with REF (a git revision) REF's guard too (guard-ref):
# a same-run A/B of a change to the guard's path, in microseconds. Rounds turn the listeners'
# order. The tracepoints add their own cost to every system call, the same for every listener:
# compare listeners within a run, not with bench/cli.sh's per-open times.
# Run as root: bash bench/critpath.sh [OPENS] [ROUNDS] [REF]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=${2:-5}
REF=${3:-}
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
. bench/lib.sh
fsnotifyd_bins "$REF" # $out/new/fsnotifyd, with REF $out/ref/fsnotifyd (lib.sh)
go build -o "$out/gofloor" ./bench/gofloor
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

# trace NAME CMD...: one round of listener CMD: its system calls traced while fanref opens
# $LOAD_FILE N times from one thread; the three medians and the event count appended to $out/cp.NAME.
trace() {
	local name=$1; shift
	: > "$out/l.log"
	"$@" > "$out/l.log" 2>&1 & local pid=$!
	wait_ready "$out/l.log" "ready\|Watches established"
	"$out/fanref" load "$LOAD_FILE" 500 1 > /dev/null # warm up
	perf record -q -m 16M -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$pid" -o "$out/sc.data" 2> /dev/null & local rec=$!
	sleep 0.5
	"$out/fanref" load "$LOAD_FILE" "$N" 1 > /dev/null
	kill -INT "$rec"; wait "$rec" 2> /dev/null || true
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
	# One listener process, events one at a time: the instants are the process's, whichever
	# thread made the call (a Go program's goroutine may move between threads).
	perf script --ns -i "$out/sc.data" -F time,event,trace 2> /dev/null | awk -v o="$out/ev" '
		{
			t = $1; sub(":", "", t); t *= 1e6
			nr = ""; ret = ""
			for (i = 2; i <= NF; i++) { if ($i == "NR") nr = $(i + 1); if ($i == "=") ret = $(i + 1) }
			if ($2 ~ /sys_exit/ && nr == 0 && ret + 0 > 0) { rd = t; sx = ""; sxe = "" }
			else if ($2 ~ /sys_enter/ && nr == 332 && rd != "") sx = t
			else if ($2 ~ /sys_exit/ && nr == 332 && rd != "") sxe = t
			else if ($2 ~ /sys_enter/ && (nr == 1 || nr == 20) && rd != "") {
				print t - rd > (o ".rw")
				if (sx != "") { print sx - rd > (o ".rs"); print t - sxe > (o ".sw") }
				rd = ""
			}
		}'
	touch "$out/ev.rw" "$out/ev.rs" "$out/ev.sw"
	local rw rs sw
	rw=$(median < "$out/ev.rw") rs=$(median < "$out/ev.rs") sw=$(median < "$out/ev.sw")
	echo "${rw:-0} ${rs:-0} ${sw:-0} $(wc -l < "$out/ev.rw")" >> "$out/cp.$name"
	rm -f "$out/ev.rw" "$out/ev.rs" "$out/ev.sw"
}
# perf's first start reads the kernel's symbols (seconds here): once, before any round.
perf record -q -e raw_syscalls:sys_enter -o "$out/warm.data" -- true > /dev/null 2>&1 || true
names=(fanref gofloor guard)
[ -z "$REF" ] || names+=(guard-ref)
listen() {
	case $1 in
	fanref) trace fanref "$out/fanref" respond "$out/mnt/d" ;;
	gofloor) trace gofloor "$out/gofloor" "$out/mnt/d" ;;
	guard) trace guard "$out/new/fsnotifyd" guard "$out/mnt/d" ;;
	guard-ref) trace guard-ref "$out/ref/fsnotifyd" guard "$out/mnt/d" ;;
	esac
}
echo "critical path: $N opens, 1 load thread, $ROUNDS rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	for i in "${!names[@]}"; do listen "${names[$(((i + r - 1) % ${#names[@]}))]}"; done
	line="round $r:"
	for n in "${names[@]}"; do line+=$(tail -1 "$out/cp.$n" | awk -v n="$n" '{printf "  %s %.2f us (statx %.2f + %.2f; %d events)", n, $1, $2, $3, $4}'); done
	echo "$line"
done
col() { awk -v c="$2" '{print $c}' "$out/cp.$1" | median | awk '{printf "%.3f", $1}'; }
line="median read->write (us):"
for n in "${names[@]}"; do line+=" $n $(col "$n" 1)"; done
echo "$line"
line="median read->statx / statx->write (us):"
for n in "${names[@]:1}"; do line+=" $n $(col "$n" 2) / $(col "$n" 3)"; done
echo "$line"
# The guard's own path: its read->write over bare Go's, per round.
over() { paste -d' ' "$out/cp.$1" "$out/cp.$2" | awk '{print $1 - $5}' | median | awk '{printf "%.3f", $1}'; }
echo "guard's read->write minus gofloor's, median of rounds: $(over guard gofloor) us"
echo "guard's read->write minus fanref's, median of rounds: $(over guard fanref) us"
[ -z "$REF" ] || echo "guard's read->write minus guard-ref's ($REF), same rounds, median: $(over guard guard-ref) us"
summary critpath.guard-minus-gofloor "$(over guard gofloor)" - "the embedded guard's read->write per open minus bare Go's (the guard's own critical path, us; perf raw_syscalls, 1 load thread)"
summary critpath.guard-minus-fanref "$(over guard fanref)" - "the embedded guard's read->write per open minus fanref's C responder's (us; perf raw_syscalls, 1 load thread)"
