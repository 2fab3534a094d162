#!/usr/bin/env bash
# What each process of a permission round trip does per event, counted rather than timed (the
# counts do not depend on how busy the machine is): fanref's C responder, the embedded
# `fsnotifyd guard DIR`, bench/relayfloor.c's loop-futex relay and its child (the floor of any
# out-of-process relay: the daemon's shape in C, with no statx), and `fsnotifyd serve` +
# bench/daemonallow (the out-of-process allow-all client; ring, and with SOCKET=1 also over
# the socket), each while a load opens
# FILES distinct files of the scratch ext4 image once each (LOAD=distinct, the default) or
# fanref's load opens one file FILES times from THREADS threads (LOAD=same; THREADS=1 by
# default). Per event and per process (the load,
# the listener; the daemon and its client): system calls (perf stat raw_syscalls:sys_enter),
# futex wakes (FUTEX_WAKE, private or not), voluntary and involuntary context switches (the
# sum over /proc/PID/task/*/status, before and after: threads that exit in between are not
# counted). With PIN=CPU every process of the round (the load, the listener, the daemon, its
# client) runs on that one CPU (taskset): the three processes of the daemon's path share one
# core as on a machine with one busy core, with no busy loop (nothing timed, nobody else
# loaded). With STRACE=1 a second pass prints which calls (strace -f -c, >= 0.03 per event).
# With REF=rev the daemon of that revision is counted too, before this tree's (an A/B of the
# daemon's counts in one run).
# Run as root: [PIN=1] [LOAD=same [THREADS=2]] [SOCKET=1] [STRACE=1] [REF=rev] bash bench/permcounts.sh [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000} # the scratch ext4 image (64 MiB) has about 16k inodes
LOAD=${LOAD:-distinct}
THREADS=${THREADS:-1}
[ "$LOAD" = same ] || THREADS=1
command -v perf > /dev/null || apt-get install -y -qq linux-perf > /dev/null || true
command -v perf > /dev/null || { echo "bench/permcounts.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
[ "${STRACE:-0}" != 1 ] || command -v strace > /dev/null || apt-get install -y -qq strace > /dev/null
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd # the guard's
go build -o "$out/daemonallow" ./bench/daemonallow
cc -O2 -pthread -o "$out/relayfloor-c" bench/relayfloor.c
cc -O2 -o "$out/many" bench/many.c
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
[ "$LOAD" = same ] || "$out/many" "$out/mnt/d" "$N" create
pin=()
[ -z "${PIN:-}" ] || pin=(taskset -c "$PIN")
# runload: the load, once (its own counts on stdout: syscalls and context switches).
runload() {
	if [ "$LOAD" = same ]; then
		"${pin[@]}" perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$out/load.perf" "$out/fanref" load "$LOAD_FILE" "$N" "$THREADS" > /dev/null
	else
		"${pin[@]}" perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$out/load.perf" "$out/many" "$out/mnt/d" "$N"
	fi
	awk -F, '$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { c = $1 } END { print s, c }' "$out/load.perf"
}
# csw PID: "voluntary involuntary", summed over the process's threads.
csw() { cat /proc/"$1"/task/*/status 2> /dev/null | awk '$1 == "voluntary_ctxt_switches:" { v += $2 } $1 == "nonvoluntary_ctxt_switches:" { i += $2 } END { print v + 0, i + 0 }'; }

# count LABEL PID...: perf stat and /proc of each PID while the load runs, one line per PID.
count() {
	local label=$1; shift
	local p i=0 ps=() before=()
	"$out/many" "$out/mnt/d" 200 > /dev/null 2>&1 || "$out/fanref" load "$LOAD_FILE" 200 1 > /dev/null # warm up
	for p in "$@"; do
		perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_futex -p "$p" -o "$out/perf.$i" & ps+=($!)
		i=$((i + 1))
	done
	sleep 0.5
	for p in "$@"; do before+=("$(csw "$p")"); done
	read -r lsc lcs < <(runload)
	i=0
	for p in "$@"; do
		read -r v0 i0 <<< "${before[$i]}"
		read -r v1 i1 < <(csw "$p")
		echo "$((v1 - v0)) $((i1 - i0))" > "$out/csw.$i"
		i=$((i + 1))
	done
	for p in "${ps[@]}"; do kill -INT "$p"; done
	wait "${ps[@]}" 2> /dev/null || true
	printf "%-34s %-12s syscalls %6.2f  cs %5.2f (perf: voluntary and not)\n" "$label" load "$(awk -v s="$lsc" -v n="$((N * THREADS))" 'BEGIN{print s/n}')" "$(awk -v s="$lcs" -v n="$((N * THREADS))" 'BEGIN{print s/n}')" | tee -a "$out/counts"
	i=0
	for p in "$@"; do
		read -r v iv < "$out/csw.$i"
		awk -F, -v n="$((N * THREADS))" -v who="$label" -v name="$(tr '\0' ' ' < /proc/"$p"/cmdline | awk '{ print $1 }' | xargs basename)" -v v="$v" -v iv="$iv" '
			$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "syscalls:sys_enter_futex" { f = $1 }
			END { printf "%-34s %-12s syscalls %6.2f  cs vol/invol %5.2f / %5.2f  futex %5.2f\n", who, name, s / n, v / n, iv / n, f / n }' "$out/perf.$i" | tee -a "$out/counts"
		i=$((i + 1))
	done
}

# strace_count LABEL PID...: strace -f -c of each PID while the load runs.
strace_count() {
	local label=$1; shift
	strace_calls "  $label" "$((N * THREADS))" event runload "$@"
}

# listener LABEL CMD...: count CMD (a listener that prints "ready") alone.
listener() {
	local label=$1; shift
	: > "$out/l.log"
	"${pin[@]}" "$@" > "$out/l.log" 2>&1 & local l=$!
	wait_ready "$out/l.log" "ready\|Watches established"
	count "$label" "$l"
	[ "${STRACE:-0}" != 1 ] || strace_count "$label" "$l"
	kill "$l"; wait "$l" 2> /dev/null || true
}

echo "permission events counted: $((N * THREADS)) $([ "$LOAD" = same ] && echo "opens of one file from $THREADS thread(s)" || echo "distinct files opened once"), ext4 image, $(nproc) CPUs$([ -z "${PIN:-}" ] || echo ", every process on CPU $PIN"), load average $(cut -d' ' -f1-3 /proc/loadavg)"
listener fanref "$out/fanref" respond "$out/mnt/d"
listener guard "$out/fsnotifyd" guard "$out/mnt/d"
: > "$out/l.log"
"${pin[@]}" "$out/relayfloor-c" loop-futex "$out/mnt/d" > "$out/l.log" 2>&1 & l=$!
wait_ready "$out/l.log"
count relay-loop-futex "$l" $(pgrep -P "$l")
[ "${STRACE:-0}" != 1 ] || strace_count relay-loop-futex "$l" $(pgrep -P "$l")
kill "$l"; wait "$l" 2> /dev/null || true
# The daemon: this tree's serve, and with REF (a git revision) REF's beside it (fsnotifyd_bins,
# lib.sh: REF's first), each with this tree's daemonallow.
fsnotifyd_bins "${REF:-}"
for bin in "${bins[@]}"; do
	v=$(basename "$(dirname "$bin")")
	"${pin[@]}" "$bin" serve --socket "$out/$v.sock" --log-level warn 2> "$out/daemon.$v.log" & pids+=($!)
	serve=$!
	for _ in $(seq 1200); do "$bin" stats --socket "$out/$v.sock" > /dev/null 2>&1 && break; sleep 0.05; done
	for ring in 1 $([ "${SOCKET:-0}" = 1 ] && echo 0); do
		label="serve-$v+daemonallow-$([ "$ring" = 1 ] && echo ring || echo socket)"
		: > "$out/l.log"
		DAEMONALLOW_RING=$ring "${pin[@]}" "$out/daemonallow" "$out/$v.sock" "$out/mnt/d" > "$out/l.log" 2>&1 & l=$!
		wait_ready "$out/l.log"
		count "$label" "$serve" "$l"
		[ "${STRACE:-0}" != 1 ] || strace_count "$label" "$serve" "$l"
		kill "$l"; wait "$l" 2> /dev/null || true
	done
	kill "$serve"; wait "$serve" 2> /dev/null || true
done
