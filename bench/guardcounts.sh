#!/usr/bin/env bash
# What the embedded guard costs per open, counted rather than timed: system calls, the answers'
# writes (write + writev), context switches and CPU time of the listener (perf stat -p), for
# fanref's C responder, `fsnotifyd guard DIR` and `fsnotifyd guard --mount --allow '**'`, under
# fanref's open load from 1 and 2 threads, rounds alternating the listeners. Counts do not
# depend on how busy the machine is (the CPU time does somewhat; the wall-clock per-open time is
# printed for reference only). With REF (a git revision), its guard is counted too, beside the
# working tree's, in the same rounds. Prints SUMMARY lines for bench/all.sh's table (system calls,
# context switches and the CPU ratio to fanref's, per open, guard DIR, 1 and 2 threads).
# Run as root: bash bench/guardcounts.sh [OPENS] [ROUNDS] [REF]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=${2:-3}
REF=${3:-}
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
. bench/lib.sh
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
fsnotifyd_bins "$REF" # $out/new/fsnotifyd, and with REF $out/ref/fsnotifyd: bins (lib.sh)
events=raw_syscalls:sys_enter,context-switches,task-clock,syscalls:sys_enter_write,syscalls:sys_enter_writev

# count NAME THREADS CMD...: one line of counts per open while CMD listens (ready once it says
# "ready" or "Watches established"); its figures are also appended to $out/NAME.tTHREADS.
count() {
	local name=$1 threads=$2; shift 2
	: > "$out/l.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$@" > "$out/l.log" 2>&1 & local pid=$!
	wait_ready "$out/l.log" "ready\|Watches established"
	"$out/fanref" load "$LOAD_FILE" 500 "$threads" > /dev/null # warm up: first opens walk and cache
	perf stat -e "$events" -p "$pid" -o "$out/stat.out" & local st=$!
	sleep 0.3
	local o; o=$(ops "$threads")
	sleep 0.1
	kill -INT "$st"; wait "$st" 2> /dev/null || true
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
	awk -v name="$name" -v t="$threads" -v n=$((N * threads)) -v o="$o" '
		{ gsub(",", "", $1) }
		$2 == "raw_syscalls:sys_enter" { sc = $1 } $2 == "context-switches" { cs = $1 }
		$3 == "task-clock" { tc = $1 } $2 == "syscalls:sys_enter_write" { w = $1 }
		$2 == "syscalls:sys_enter_writev" { wv = $1 }
		END {
			printf "%-22s t%d  syscalls %.3f  answer writes %.3f (writev %.3f)  context switches %.3f  CPU %.2f us  (%.2f us/open wall)\n",
				name, t, sc / n, (w + wv) / n, wv / n, cs / n, tc * 1000 / n, 1e6 / o
			printf "%s %s %s %s\n", sc / n, (w + wv) / n, cs / n, tc * 1000 / n >> ENVIRON["out"] "/" name ".t" t
		}' "$out/stat.out"
}
export out
echo "guard counts per open: $N opens per thread, $ROUNDS rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for threads in 1 2; do
	for r in $(seq "$ROUNDS"); do
		count fanref "$threads" "$out/fanref" respond "$out/mnt/d"
		for bin in "${bins[@]}"; do
			v=$(basename "$(dirname "$bin")")
			# --events open: under an allow-all policy with open and exec, only execs would be asked
			# (docs/security.md, "Kinds of access no rule decides").
			count "guard-$v" "$threads" "$bin" guard "$out/mnt/d"
			count "guard-mount-$v" "$threads" "$bin" guard --mount --allow '**' --events open --permissive "$out/mnt/d"
		done
	done
done
# Medians over the rounds: column COL (1 system calls, 2 answer writes, 3 context switches, 4 CPU).
med() { awk -v c="$2" '{print $c}' "$out/$1" | median | awk '{printf "%.3f", $1}'; }
for threads in 1 2; do
	for bin in "${bins[@]}"; do
		v=$(basename "$(dirname "$bin")")
		for g in "guard-$v" "guard-mount-$v"; do
			echo "median $g t$threads: syscalls $(med "$g.t$threads" 1) (fanref $(med fanref.t$threads 1)), answer writes $(med "$g.t$threads" 2), context switches $(med "$g.t$threads" 3) (fanref $(med fanref.t$threads 3)), CPU $(med "$g.t$threads" 4) us (fanref $(med fanref.t$threads 4))"
		done
	done
	summary "guard.syscalls.t$threads" "$(med "guard-new.t$threads" 1)" - "system calls per open, embedded guard DIR allow-all, $threads load thread(s) (fanref $(med fanref.t$threads 1))"
	summary "guard.cswitch.t$threads" "$(med "guard-new.t$threads" 3)" - "listener context switches per open, embedded guard DIR allow-all, $threads load thread(s) (fanref $(med fanref.t$threads 3))"
	summary "guard.cpu.t$threads" "$(awk -v a="$(med "guard-new.t$threads" 4)" -v b="$(med fanref.t$threads 4)" 'BEGIN{printf "%.2f", a/b}')" - "listener CPU per open / fanref's, embedded guard DIR allow-all, $threads load thread(s)"
done
