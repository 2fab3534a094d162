#!/usr/bin/env bash
# The notification fan-out counted rather than timed: under fanref's load (open and close of one
# file, two threads) on a scratch ext4 image, per kernel event read — fanref's notification
# reader's system calls, context switches and CPU; the daemon's system calls (read, ppoll,
# sendmsg, nanosleep: sysmon), context switches and CPU with 1 and CLIENTS clients
# (bench/fanout, one process), and those clients' CPU, which runs on the same CPUs as the load
# and the daemon (bench/fanout.sh counts only the daemon's). perf stat -p on each process. The
# counts per event move little with how busy the machine is; the CPU times and the rates do.
# With REF (a git revision), REF's daemon and clients are counted too, rounds alternating.
# Prints SUMMARY lines: sendmsg per kernel event with CLIENTS clients, the clients' CPU per
# kernel event over fanref's reader's, and the daemon's CPU per kernel event over fanref's
# (medians; the working tree's).
# Run as root: bash bench/fanoutcounts.sh [OPENS] [ROUNDS] [CLIENTS] [REF]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-3}
K=${3:-10}
REF=${4:-}
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
. bench/lib.sh
if [ -n "$REF" ]; then
	build_revs "$REF" "" fsnotifyd:./cmd/fsnotifyd fanout:./bench/fanout
	revs="ref new"
else
	mkdir -p "$out/new" && go build -o "$out/new/fsnotifyd" ./cmd/fsnotifyd && go build -o "$out/new/fanout" ./bench/fanout
	revs=new
fi
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
echo "$N opens, 2 load threads, 1 and $K clients, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)${REF:+, REF=$REF ($(git rev-parse --short "$REF")) vs the working tree}"
now() { date +%s.%N; }
# field FILE EVENT: a count from perf stat -x, output
field() { awk -F, -v e="$2" '$3 == e { print $1; exit }' "$1"; }
# daemon WHICH K: one line of counts per kernel event (printed and kept in $out/rows)
daemon() {
	local which=$1 k=$2 bin=$out/$1/fsnotifyd dpid p ps pc e0 e1 t0 t1
	rm -f "$out/d.sock"
	"$bin" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & dpid=$!
	for _ in $(seq 100); do "$bin" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done
	: > "$out/fan.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$out/$which/fanout" "$out/d.sock" "$out/mnt/d" "$k" > "$out/fan.log" 2>&1 & p=$!
	wait_ready "$out/fan.log"
	st() { "$bin" stats --socket "$out/d.sock" --json | awk -F'[:,]' '$1 ~ "\"events\"" { gsub(/ /, "", $2); print $2; exit }'; }
	perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_sendmsg,syscalls:sys_enter_read,syscalls:sys_enter_ppoll,syscalls:sys_enter_nanosleep -p "$dpid" -o "$out/d.stat" & ps=$!
	perf stat -x, -e task-clock -p "$p" -o "$out/c.stat" & pc=$!
	sleep 0.2
	e0=$(st); t0=$(now)
	"$out/fanref" load "$out/mnt/d/f" "$N" 2 > /dev/null
	t1=$(now); sleep 0.5 # let the clients drain
	e1=$(st)
	kill -INT "$ps" "$pc"; wait "$ps" "$pc" 2>/dev/null || true
	kill -TERM "$p" "$dpid"; wait "$p" "$dpid" 2>/dev/null || true
	awk -v w="$which" -v k="$k" -v e=$((e1 - e0)) -v s="$t0" -v u="$t1" -v rc="$refc" -v rr="$refr" \
		-v c="$(field "$out/d.stat" task-clock)" -v cs="$(field "$out/d.stat" context-switches)" \
		-v sc="$(field "$out/d.stat" raw_syscalls:sys_enter)" -v sm="$(field "$out/d.stat" syscalls:sys_enter_sendmsg)" \
		-v rd="$(field "$out/d.stat" syscalls:sys_enter_read)" -v pp="$(field "$out/d.stat" syscalls:sys_enter_ppoll)" \
		-v ns="$(field "$out/d.stat" syscalls:sys_enter_nanosleep)" -v cc="$(field "$out/c.stat" task-clock)" 'BEGIN {
		printf "%s %2d client(s): %.0f kernel events/s (%.2fx fanref), per kernel event: daemon %.2f us CPU (%.2fx fanref), %.2f syscalls (read %.2f, ppoll %.2f, sendmsg %.3f, nanosleep %.3f), %.2f context switches; clients %.2f us CPU (%.2fx fanref)\n",
			w, k, e/(u-s), e/(u-s)/rr, c*1000/e, c*1000/e/rc, sc/e, rd/e, pp/e, sm/e, ns/e, cs/e, cc*1000/e, cc*1000/e/rc }' | tee -a "$out/rows"
}
for r in $(seq "$ROUNDS"); do
	: > "$out/ref.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$out/fanref" notify "$out/mnt/d" > "$out/ref.log" 2>&1 & p=$!
	wait_ready "$out/ref.log"
	perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$p" -o "$out/f.stat" & ps=$!
	sleep 0.2; t0=$(now); "$out/fanref" load "$out/mnt/d/f" "$N" 2 > /dev/null; t1=$(now)
	kill -INT "$ps"; wait "$ps" 2>/dev/null || true
	kill -TERM "$p"; wait "$p" 2>/dev/null || true
	ev=$(awk '/^events/ { print $2 }' "$out/ref.log")
	refc=$(awk -v e="$ev" -v c="$(field "$out/f.stat" task-clock)" 'BEGIN { printf "%.4f", c*1000/e }')
	refr=$(awk -v e="$ev" -v s="$t0" -v u="$t1" 'BEGIN { printf "%.1f", e/(u-s) }')
	awk -v r="$r" -v e="$ev" -v rr="$refr" -v rc="$refc" -v sc="$(field "$out/f.stat" raw_syscalls:sys_enter)" -v cs="$(field "$out/f.stat" context-switches)" 'BEGIN {
		printf "round %d: fanref notify: %.0f kernel events/s, per kernel event %.2f us CPU, %.2f syscalls, %.2f context switches; load average %s\n", r, rr, rc, sc/e, cs/e, "'"$(cut -d' ' -f1 /proc/loadavg)"'" }'
	order=$revs; [ $((r % 2)) = 0 ] && order=$(echo "$revs" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
	for w in $order; do for k in 1 "$K"; do daemon "$w" "$k"; done; done
done
# col WHICH K N: the median of the N-th number after "per kernel event:" in WHICH's K-client rows
col() { awk -v w="$1" -v k="$2" -v n="$3" '$1 == w && $2 + 0 == k { split(substr($0, index($0, "per kernel event:")), f, /[^0-9.]+/); print f[n + 1] }' "$out/rows" | median; }
for w in $revs; do
	for k in 1 "$K"; do
		echo "median $w, $k client(s): daemon CPU per kernel event / fanref $(col "$w" "$k" 2), sendmsg per kernel event $(col "$w" "$k" 6), clients' CPU / fanref $(col "$w" "$k" 10)"
	done
done
summary fanout.sendmsg_per_event.${K}clients "$(col new "$K" 6)" "-" "daemon's sendmsg per kernel notification event with $K clients (bench/fanoutcounts.sh)"
summary fanout.clients_cpu.${K}clients "$(col new "$K" 10)" "-" "CPU per kernel event of the $K clients (bench/fanout, one process) / fanref's notification reader's"
summary fanout.counts.cpu.${K}clients "$(col new "$K" 2)" "-" "daemon CPU per kernel event with $K clients / fanref's reader's, perf stat task-clock (the goal's row is bench/fanout.sh's fanout.cpu)"
