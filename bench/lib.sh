# bench/lib.sh: what the bench scripts share. Source it from the repository root after
# `set -euo pipefail`. It gives:
#   $out          a scratch directory, removed on exit together with what the script started
#                 (the pids in $pids, and every process whose command line names $out) and
#                 what it mounted there ($out/mnt, $out/tree)
#   $out/fanref   bench/fanref.c built (FANREF_C names another copy)
#   $out/mnt      a 64 MiB scratch ext4 image, mounted (pre-access needs ext4)
#   ops THREADS   fanref's open() load on $LOAD_FILE (default $out/mnt/d/f): opens per second
#   with THREADS CMD...
#                 ops while CMD listens: CMD is started, and the load begins once it prints
#                 "ready"; it is stopped afterwards
#   wait_ready LOG [PATTERN]
#                 waits (at most 10 s) until the listener's LOG matches PATTERN (default
#                 "ready"); else shows the log and exits 1
#   build_revs REF NEW NAME:PKG...
#                 builds each PKG from revision REF into $out/ref/NAME, and from revision NEW
#                 (or, when NEW is empty, the working tree) into $out/new/NAME: two
#                 revisions side by side in one run
#   fsnotifyd_bins REF
#                 builds the working tree's fsnotifyd into $out/new and, when REF is not
#                 empty, REF's into $out/ref (build_revs); bins lists them, REF's first
#   serve_revs    starts build_revs's two daemons ($out/ref/fsnotifyd and $out/new/fsnotifyd
#                 serve, on $out/ref.sock and $out/new.sock, logs $out/ref.log and $out/new.log)
#                 and waits until each answers stats; their pids are ${spid[ref]}, ${spid[new]}
#   median        the median of the numbers on standard input
#   summary KEY VALUE GOAL TEXT
#                 one machine-readable result line for bench/all.sh's table: KEY names the
#                 figure, VALUE is a number, GOAL is "<=X", ">=X" or "-" (none), TEXT says
#                 what was compared with what
out=$(mktemp -d)
pids=()
bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	pkill -f "$out/" 2>/dev/null || true
	wait 2>/dev/null || true
	umount -l "$out/mnt" 2>/dev/null || true
	umount -l "$out/tree" 2>/dev/null || true
	rm -rf "$out"
}
trap bench_cleanup EXIT
cc -O2 -pthread -o "$out/fanref" "${FANREF_C:-bench/fanref.c}"
mkdir -p "$out/mnt"
truncate -s 64M "$out/img" && mkfs.ext4 -q "$out/img" && mount -o loop "$out/img" "$out/mnt"
LOAD_FILE=$out/mnt/d/f

wait_ready() {
	for _ in $(seq 200); do grep -q "${2:-ready}" "$1" 2> /dev/null && return; sleep 0.05; done
	echo "not ready (no \"${2:-ready}\" in $1):" >&2; cat "$1" >&2; exit 1
}
ops() { "$out/fanref" load "$LOAD_FILE" "$N" "$1" | awk '{for(i=1;i<=NF;i++) if($i=="ops_per_s") print $(i+1)}'; }
with() {
	local threads=$1; shift
	: > "$out/listener.log" # now: the job truncates it later, and the last one's "ready" would pass
	"$@" > "$out/listener.log" 2>&1 & local pid=$!
	wait_ready "$out/listener.log"
	ops "$threads"; kill "$pid"; wait "$pid" 2>/dev/null || true
}
build_revs() {
	local ref=$1 new=$2 bin; shift 2
	mkdir -p "$out/src" "$out/ref" "$out/new"
	git archive "$ref" | tar -x -C "$out/src"
	if [ -n "$new" ]; then mkdir -p "$out/srcnew" && git archive "$new" | tar -x -C "$out/srcnew"; fi
	for bin in "$@"; do
		(cd "$out/src" && go build -o "$out/ref/${bin%%:*}" "${bin#*:}")
		if [ -n "$new" ]; then (cd "$out/srcnew" && go build -o "$out/new/${bin%%:*}" "${bin#*:}")
		else go build -o "$out/new/${bin%%:*}" "${bin#*:}"; fi
	done
}
serve_revs() {
	declare -gA spid
	local v
	for v in ref new; do
		"$out/$v/fsnotifyd" serve --socket "$out/$v.sock" --log-level warn 2> "$out/$v.log" & pids+=($!)
		spid[$v]=$!
		for _ in $(seq 100); do "$out/$v/fsnotifyd" stats --socket "$out/$v.sock" > /dev/null 2>&1 && break; sleep 0.05; done
	done
}
fsnotifyd_bins() {
	bins=()
	if [ -n "$1" ]; then
		build_revs "$1" "" fsnotifyd:./cmd/fsnotifyd
		bins+=("$out/ref/fsnotifyd")
	else
		mkdir -p "$out/new" && go build -o "$out/new/fsnotifyd" ./cmd/fsnotifyd
	fi
	bins+=("$out/new/fsnotifyd")
}
# cpu_ns PID: the run time so far of every thread of PID, in ns (schedstat). Not /proc/PID/stat's
# utime + stime: those count clock ticks (10 ms), and a listener's CPU over a --quick round is a
# few ticks, so that a ratio of two such counts moved by a quarter with one tick. (A thread that
# has exited is not counted: the processes measured here keep theirs.) Printed with %.0f: mawk's
# %d stops at 2^31 - 1, so that a process past 2.1 s of CPU read the same at every call.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
# cpu_s PID: the same in seconds.
cpu_s() { cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{ s += $1 } END { printf "%.6f\n", s / 1e9 }'; }
# strace_calls HEAD EVENTS UNIT LOAD PID...: strace -f -c of each PID while the command LOAD
# runs (word-split: a function and its arguments); then, per PID, "HEAD NAME (...)" and its
# system calls per UNIT (count / EVENTS) of 0.03 or more, most first.
strace_calls() {
	local head=$1 n=$2 unit=$3 load=$4; shift 4
	local p i=0 ps=()
	for p in "$@"; do strace -f -qq -c -p "$p" -o "$out/st.$i" & ps+=($!); i=$((i + 1)); done
	sleep 0.5
	$load > /dev/null
	for p in "${ps[@]}"; do kill -INT "$p"; done
	wait "${ps[@]}" 2> /dev/null || true
	i=0
	for p in "$@"; do
		echo "$head $(tr '\0' ' ' < /proc/"$p"/cmdline | awk '{ print $1 }' | xargs basename) (strace -f -c, calls per $unit >= 0.03):"
		awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" && $4 / n >= 0.03 { printf "    %-16s %6.2f\n", $NF, $4 / n }' "$out/st.$i" | sort -k2 -n -r
		i=$((i + 1))
	done
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
summary() { printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
