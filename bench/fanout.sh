#!/usr/bin/env bash
# Notification fan-out, side by side in one run, on a scratch ext4 image: fanref's load (open
# and close of one file, two threads) while (a) fanref's C notification reader, (b) the daemon
# with 1 client, (c) the daemon with 10 clients (bench/fanout, each its own connection) watch
# the file's directory for open, close and modify. Prints events per second — read from the
# kernel; queued to the clients (delivered, plus merged into an unread event of the same
# object, as the kernel merges); received by the clients — and the daemon's CPU time (utime +
# stime from /proc/PID/stat) per kernel event and per queued event, with the ratios (c)/(a)
# and (c)/(b) of CPU per kernel event; then (d) `fsnotifyd watch` and (e) `fsnotifyd trace` of
# the directory, embedded (no daemon), their CPU per open of the load over fanref's reader's
# (they count no kernel events).
# Run as root: bash bench/fanout.sh [OPENS] [ROUNDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-5}
K=${3:-10}
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
go build -o "$out/fanout" ./bench/fanout
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

"$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & dpid=$!; pids+=($dpid)
for _ in $(seq 100); do "$out/fsnotifyd" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done

cpu() { cpu_s "$1"; } # seconds (lib.sh: schedstat, not clock ticks)
stat() { "$out/fsnotifyd" stats --socket "$out/d.sock" --json | awk -F'[:,]' -v k="\"$1\"" '$1 ~ k { gsub(/ /, "", $2); print $2; exit }'; }
load() { # the load's wall time in seconds
	local t0 t1
	t0=$(date +%s.%N); "$out/fanref" load "$out/mnt/d/f" "$N" 2 > /dev/null; t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

for r in $(seq "$ROUNDS"); do
	# (a) fanref notify: its own group; it counts what it reads.
	: > "$out/ref.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$out/fanref" notify "$out/mnt/d" > "$out/ref.log" 2>&1 & p=$!
	wait_ready "$out/ref.log"
	c0=$(cpu "$p"); s=$(load); c1=$(cpu "$p")
	c0_a=$c0 c1_a=$c1
	kill -TERM "$p"; wait "$p" 2>/dev/null || true
	ev=$(awk '/^events/ { print $2 }' "$out/ref.log")
	line_a=$(awk -v e="$ev" -v s="$s" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')" 'BEGIN {
		printf "fanref notify: %.0f events/s, %.3f us CPU/event", e/s, c*1e6/e }')
	cpu_a=$(awk -v e="$ev" -v a="$c0" -v b="$c1" 'BEGIN { printf "%.6f", (b-a)*1e6/e }')
	evs_a=$(awk -v e="$ev" -v s="$s" 'BEGIN { printf "%.1f", e/s }')
	# (b), (c): the daemon with 1 and K clients.
	for k in 1 "$K"; do
		: > "$out/fan.log" # emptied before the start: an old "ready" in it must not pass the wait
		"$out/fanout" "$out/d.sock" "$out/mnt/d" "$k" > "$out/fan.log" 2>&1 & p=$!
		wait_ready "$out/fan.log"
		e0=$(stat events); d0=$(stat delivered); c0=$(cpu "$dpid")
		s=$(load)
		sleep 0.5 # let the clients drain
		e1=$(stat events); d1=$(stat delivered); c1=$(cpu "$dpid")
		kill -TERM "$p"; wait "$p" 2>/dev/null || true
		got=$(awk '/^events/ { print $2, $4, $6, $8, $10 }' "$out/fan.log")
		res=$(awk -v k="$k" -v e=$((e1 - e0)) -v d=$((d1 - d0)) -v s="$s" -v a="$c0" -v b="$c1" -v got="$got" 'BEGIN {
			split(got, g, " "); q = d + g[5]
			printf "daemon, %d client(s): %.0f kernel events/s, %.0f queued/s to the clients (%.0f delivered, %.0f merged), %.0f received/s (per client %d..%d in all, overflows %d), %.3f us CPU/kernel event, %.3f us CPU/queued event",
				k, e/s, q/s, d/s, g[5]/s, g[1]/s, g[2], g[3], g[4], (b-a)*1e6/e, (b-a)*1e6/q }')
		cpuk=$(awk -v e=$((e1 - e0)) -v a="$c0" -v b="$c1" 'BEGIN { printf "%.6f", (b-a)*1e6/e }')
		evsk=$(awk -v e=$((e1 - e0)) -v s="$s" 'BEGIN { printf "%.1f", e/s }')
		if [ "$k" = 1 ]; then line_b=$res cpu_b=$cpuk evs_b=$evsk; else line_c=$res cpu_c=$cpuk evs_c=$evsk; fi
	done
	# (d), (e): the embedded path, no daemon: `watch` of the directory (open, close, modify)
	# and `trace` of it, each printing to a file. They report no count of the kernel events
	# they read (and their engine group merges an exact repeat still unread, so lines are
	# fewer), so their CPU is compared per open of the load: what watching this load costs,
	# over what fanref's reader costs (it reads every event it can too).
	cpo_a=$(awk -v n="$N" -v a="$c0_a" -v b="$c1_a" 'BEGIN { printf "%.6f", (b-a)*1e6/(2*n) }')
	for w in watch trace; do
		if [ "$w" = watch ]; then
			"$out/fsnotifyd" watch -e open,close,modify "$out/mnt/d" > "$out/$w.out" 2> "$out/$w.err" & p=$!
		else
			"$out/fsnotifyd" trace "$out/mnt/d" > "$out/$w.out" 2> "$out/$w.err" & p=$!
		fi
		for _ in $(seq 200); do grep -q "Watches established" "$out/$w.err" 2>/dev/null && break; sleep 0.05; done
		grep -q "Watches established" "$out/$w.err" || { echo "bench/fanout.sh: $w not ready" >&2; cat "$out/$w.err" >&2; exit 1; }
		c0=$(cpu "$p"); s=$(load)
		sleep 0.5 # let it drain
		c1=$(cpu "$p")
		kill -TERM "$p"; wait "$p" 2>/dev/null || true
		n=$(wc -l < "$out/$w.out")
		cw=$(awk -v n="$N" -v a="$c0" -v b="$c1" 'BEGIN { printf "%.6f", (b-a)*1e6/(2*n) }')
		echo "round $r: embedded $w: $n lines ($(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n/s }')/s), $cw us CPU per open of the load = $(awk -v c="$cw" -v a="$cpo_a" 'BEGIN { printf "%.2f", c/a }') x fanref's reader's ($cpo_a)"
		if [ "$w" = watch ]; then cpu_w=$cw; else cpu_t=$cw; fi
	done
	echo "round $r: $line_a"
	echo "round $r: $line_b"
	echo "round $r: $line_c"
	awk -v r="$r" -v a="$cpu_a" -v b="$cpu_b" -v c="$cpu_c" -v k="$K" 'BEGIN {
		printf "round %d: CPU per kernel event, %d clients vs fanref notify %.2f, vs 1 client %.2f\n", r, k, c/a, c/b }' | tee -a "$out/ratios"
	awk -v a="$cpu_a" -v b="$cpu_b" -v c="$cpu_c" -v ea="$evs_a" -v eb="$evs_b" -v ec="$evs_c" 'BEGIN {
		printf "%.3f %.3f %.3f %.3f\n", b/a, c/a, eb/ea, ec/ea }' >> "$out/ratios4"
	awk -v a="$cpo_a" -v w="$cpu_w" -v t="$cpu_t" 'BEGIN { printf "%.3f %.3f\n", w/a, t/a }' >> "$out/ratios_embedded"
done
col() { awk -v f="$1" '{ print $f }' "$out/ratios4" | median; }
summary fanout.cpu.1client "$(col 1)" "<=2" "daemon CPU per kernel notification event with 1 client / fanref's notification reader's"
summary fanout.cpu.${K}clients "$(col 2)" "<=2" "daemon CPU per kernel notification event with $K clients / fanref's notification reader's"
summary fanout.rate.1client "$(col 3)" ">=0.5" "kernel events/s read by the daemon with 1 client / by fanref's notification reader"
summary fanout.rate.${K}clients "$(col 4)" ">=0.5" "kernel events/s read by the daemon with $K clients / by fanref's notification reader"
ecol() { awk -v f="$1" '{ print $f }' "$out/ratios_embedded" | median; }
# The embedded path's goal (issue 12: <= 1.5x), on what can be measured from outside: CPU for
# the same load, per open, since watch and trace count no kernel events. fanref reads every
# event as soon as it can; a reader that reads less often (watch paces its reads at 1 ms under
# a flood) lets the kernel merge more of an open's events into one unread event, and so does
# less work per open: this basis counts that in its favour, as a user's CPU bill would.
summary fanout.watch.cpu_per_open "$(ecol 1)" "<=1.5" "embedded watch's CPU for the same load / fanref's notification reader's (per open of the load: watch counts no kernel events)"
summary fanout.trace.cpu_per_open "$(ecol 2)" "<=1.5" "embedded trace's CPU for the same load / fanref's notification reader's (per open of the load: trace counts no kernel events)"
awk -v k="$K" '{ a[NR] = $(NF-4) + 0; b[NR] = $NF + 0 } END {
	n = asort_(a); asort_(b)
	printf "median over %d rounds: daemon CPU per kernel event with %s clients = %.2f x fanref notify, %.2f x the daemon with 1 client\n", NR, k, a[int((NR+1)/2)], b[int((NR+1)/2)] }
	function asort_(v,   i, j, t, n) { n = 0; for (i in v) n++; for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }; return n }' "$out/ratios"
