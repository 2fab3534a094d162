#!/usr/bin/env bash
# The floor under the embedded guard's allow-all figure (bench/cli.sh §1), side by side in one
# run: fanref's C responder reshaped step by step into what `fsnotifyd guard DIR` asks of the
# kernel (bench/guardfloor.c), then the guard itself, on one and two load threads, rounds
# alternating the listeners:
#   fanref      bench/fanref.c respond: inode mark on DIR, FAN_CLASS_CONTENT; read, write, close
#   c-fs-pre    the guard's kernel setup: a filesystem mark, FAN_CLASS_PRE_CONTENT; same calls
#   c-statx     c-fs-pre and one statx(2) of each event's descriptor: the guard's four calls
#               per event and nothing else (the floor of any listener that must know the object:
#               fanotify has no FID reporting with permission events through Linux 6.18)
#   c-thread    c-statx in a process with a second (idle) thread, as every Go program is: its
#               descriptor table is shared, so each call on a descriptor takes and drops a
#               reference to the file where a single-threaded process borrows it
#   go-nostatx  bench/gofloor without the statx: c-fs-pre's calls in bare Go (the issue's "bare
#               Go responder": what the language and its runtime add to fanref's three calls)
#   go          bench/gofloor: the same calls in Go (internal/sys's wrappers, one locked thread
#               blocking in read(2)), nothing else: what the language and its runtime add
#   guard       `fsnotifyd guard DIR` (default allow: the allow-all of bench/cli.sh)
# Prints per round each one's per-open time (fanref's load) and listener CPU per open (perf
# stat task-clock), their ratios to fanref's, and SUMMARY lines (bench/lib.sh) with the medians:
# c-statx / fanref (the floor), guard / c-statx (what Go, the engine and the policy add). Each
# round runs the listeners in a turned order (round r starts with the r-th), so that a drift of
# the host's speed within a round (it moves within minutes here) favours none of them; a line per
# listener counts the rounds it met 1.05 × fanref in, the goal of bench/cli.sh's §1.
# BUSY=1 runs a busy loop pinned to the last CPU for the whole run (all.sh --busy's load).
# With REF (a git revision), REF's guard runs too, in the same rounds (guard-ref), and a line
# gives the guard's medians over it: a same-run A/B of a change to the guard's path.
# Run as root: bash bench/guardfloor.sh [OPENS] [ROUNDS] [REF]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=${2:-5}
REF=${3:-}
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
[ -z "$REF" ] || build_revs "$REF" "" fsnotifyd:./cmd/fsnotifyd # $out/ref/fsnotifyd (lib.sh)
cc -O2 -pthread -o "$out/guardfloor" bench/guardfloor.c
go build -o "$out/gofloor" ./bench/gofloor
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
busy=""
if [ "${BUSY:-0}" = 1 ]; then
	taskset -c "$(( $(nproc) - 1 ))" sh -c 'while :; do :; done' & pids+=($!)
	busy=" (busy loop on CPU $(( $(nproc) - 1 )))"
fi

# run NAME THREADS CMD...: the per-open time (us) and listener CPU per open (us) while CMD
# listens (ready once it says "ready" or "Watches established"), appended to $out/NAME.tTHREADS.
run() {
	local name=$1 threads=$2; shift 2
	: > "$out/l.log"
	"$@" > "$out/l.log" 2>&1 & local pid=$!
	wait_ready "$out/l.log" "ready\|Watches established"
	"$out/fanref" load "$LOAD_FILE" 500 "$threads" > /dev/null # warm up
	perf stat -e task-clock -p "$pid" -o "$out/stat.out" & local st=$!
	sleep 0.2
	local o; o=$(ops "$threads")
	kill -INT "$st"; wait "$st" 2> /dev/null || true
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
	awk -v o="$o" -v n=$((N * threads)) '$3 == "task-clock" { gsub(",", "", $1); printf "%.3f %.3f\n", 1e6 / o, $1 * 1000 / n }' \
		"$out/stat.out" >> "$out/$name.t$threads"
}
names=(fanref c-fs-pre c-statx c-thread go-nostatx go guard)
[ -z "$REF" ] || names+=(guard-ref)
# listen NAME THREADS: one run of listener NAME (run's arguments for it).
listen() {
	case $1 in
	fanref) run fanref "$2" "$out/fanref" respond "$out/mnt/d" ;;
	c-fs-pre) run c-fs-pre "$2" "$out/guardfloor" respond "$out/mnt/d" fs pre ;;
	c-statx) run c-statx "$2" "$out/guardfloor" respond "$out/mnt/d" fs pre statx ;;
	c-thread) run c-thread "$2" "$out/guardfloor" respond "$out/mnt/d" fs pre statx thread ;;
	go-nostatx) run go-nostatx "$2" "$out/gofloor" "$out/mnt/d" nostatx ;;
	go) run go "$2" "$out/gofloor" "$out/mnt/d" ;;
	guard) run guard "$2" "$out/fsnotifyd" guard "$out/mnt/d" ;;
	guard-ref) run guard-ref "$2" "$out/ref/fsnotifyd" guard "$out/mnt/d" ;;
	esac
}
echo "guard floor: $N opens per thread, $ROUNDS rounds, $(nproc) CPUs$busy, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for threads in 1 2; do
	for r in $(seq "$ROUNDS"); do
		for i in "${!names[@]}"; do listen "${names[$(((i + r - 1) % ${#names[@]}))]}" "$threads"; done
		line="t$threads round $r:"
		f=$(tail -1 "$out/fanref.t$threads")
		for n in "${names[@]}"; do
			line+=$(tail -1 "$out/$n.t$threads" | awk -v n="$n" -v f="$f" '{split(f, a, " "); printf "  %s %.2f us (%.3f) CPU %.2f us (%.2f)", n, $1, $1 / a[1], $2, $2 / a[2]}')
		done
		echo "$line"
	done
done
# ratio A B COL THREADS: the median over the rounds of A's column COL over B's in the same round.
ratio() { paste -d' ' "$out/$1.t$4" "$out/$2.t$4" | awk -v c="$3" '{print $c / $(c + 2)}' | median | awk '{printf "%.3f", $1}'; }
# within NAME THREADS: in how many rounds NAME's per-open time was at most 1.05 × fanref's.
within() { paste -d' ' "$out/$1.t$2" "$out/fanref.t$2" | awk '$1 <= 1.05 * $3 { n++ } END { print n + 0 }'; }
for threads in 1 2; do
	for col in 1 2; do
		line="median $([ $col = 1 ] && echo "per-open time" || echo "listener CPU per open") over fanref's, $threads thread(s):"
		for n in "${names[@]:1}"; do line+=" $n $(ratio "$n" fanref $col "$threads")"; done
		echo "$line; guard over c-statx $(ratio guard c-statx $col "$threads"), over go $(ratio guard go $col "$threads"); go over go-nostatx $(ratio go go-nostatx $col "$threads"), go-nostatx over c-fs-pre $(ratio go-nostatx c-fs-pre $col "$threads")"
		[ -z "$REF" ] || echo "  guard over guard-ref ($REF), same rounds: $(ratio guard guard-ref $col "$threads")"
	done
	line="rounds within 1.05 x fanref's per-open time, $threads thread(s):"
	for n in "${names[@]:1}"; do line+=" $n $(within "$n" "$threads") of $ROUNDS"; done
	echo "$line"
	summary "guardfloor.cstatx.t$threads" "$(ratio c-statx fanref 1 "$threads")" - "the floor: C responder with the guard's kernel setup and calls (fs mark, pre-content class, statx per event) / fanref, per-open time, $threads load thread(s)$busy"
	summary "guardfloor.go.t$threads" "$(ratio go fanref 1 "$threads")" - "the same calls in bare Go (bench/gofloor) / fanref, per-open time, $threads load thread(s)$busy"
	summary "guardfloor.gonostatx.t$threads" "$(ratio go-nostatx fanref 1 "$threads")" - "fanref's calls in bare Go (bench/gofloor nostatx; fs mark, pre-content class) / fanref, per-open time, $threads load thread(s)$busy"
	summary "guardfloor.guard-over-cstatx.t$threads" "$(ratio guard c-statx 1 "$threads")" - "embedded guard allow-all / that C floor, per-open time, $threads load thread(s)$busy"
done
