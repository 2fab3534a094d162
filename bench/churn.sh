#!/usr/bin/env bash
# Event churn, side by side in one run (run as root; issue 11): bench/churn.c creates, writes
# (one byte), closes, renames and removes FILES files at full speed in a scratch tmpfs, first
# with no listener, then under each of
#   fsnotifyd watch -r      (fanotify: one filesystem mark filtered by ancestry)
#   inotifywait -m -r       (inotify: a watch per directory)
#   fatrace -c              (fanotify FID filesystem mark, the mount of the current directory)
# For each: the churn's rate against the no-listener rate, the lines the tool printed, the
# removals it reported out of FILES (inotifywait and watch print one line per event, with
# the file's name), and its CPU time per line printed (utime+stime from /proc/PID/stat after
# it drained). fatrace 0.17 reports a directory-entry event on the directory, without the
# entry's name, merged as its queue merged (`+D<> /dir`), and content events of removed
# files as "(deleted)": its removals cannot be counted per file (n/a), only its lines.
# Goals: no removal lost where the peers lose none; CPU per event <= fatrace's.
# Usage: bash bench/churn.sh [FILES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-100000}
ROUNDS=${2:-3}
command -v inotifywait >/dev/null || apt-get install -y -qq inotify-tools >/dev/null
command -v fatrace >/dev/null || apt-get install -y -qq fatrace >/dev/null
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
cc -O2 -o "$out/churn" bench/churn.c
mkdir -p "$out/tree" && mount -t tmpfs -o size=1g tmpfs "$out/tree"
mkdir -p "$out/tree/w/a"

# rate: the churn's files per second in $out/tree/w/a.
rate() { "$out/churn" "$out/tree/w/a" "$FILES" | awk '{print $6}'; }
# drained FILE: wait until FILE stops growing (1 s unchanged, at most 120 s).
drained() {
	local last=-1 now
	for _ in $(seq 240); do
		now=$(stat -c %s "$1")
		[ "$now" = "$last" ] && return 0
		last=$now
		sleep 0.5
	done
}
# run NAME READY REMOVED-PATTERN CMD...: start CMD (stdout to a file) in $out/tree/w, wait
# until it says READY (at most 60 s: setting up is not measured, and a loaded machine has
# taken over 10 s; or 1 s for none), churn, let it drain, then print "rate lines removals cpu".
run() {
	local name=$1 ready=$2 pat=$3; shift 3
	local o="$out/$name.out" e="$out/$name.err"
	# Emptied here, not only by the job's redirections, which run after this shell goes on:
	# the last round's "Watches established" in $e passed the wait, and then the check after it
	# (bench/all.sh run B, session 21: "did not say ... within 60 s" at once).
	: > "$o"; : > "$e"
	(cd "$out/tree/w" && exec "$@") > "$o" 2> "$e" & local pid=$!
	pids+=("$pid")
	if [ -n "$ready" ]; then
		for _ in $(seq 1200); do grep -q "$ready" "$e" 2>/dev/null && break; sleep 0.05; done
		grep -q "$ready" "$e" || { echo "bench/churn.sh: $name did not say \"$ready\" within 60 s" >&2; cat "$e" >&2; exit 1; }
	else
		sleep 1
	fi
	local r
	r=$(rate)
	drained "$o"
	local c
	c=$(cpu_s "$pid")
	kill -INT "$pid" 2>/dev/null || true
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	echo "$r $(wc -l < "$o") $(grep -cE "$pat" "$o" || true) $c"
}

echo "== churn of $FILES files (create, write, close, rename, remove) on tmpfs, $ROUNDS round(s)"
echo "environment: $(nproc) vCPU, $(uname -r); the machine may be shared: figures are same-run ratios"
declare -A R L D C
names=(none watch inotifywait fatrace)
rate > /dev/null # warm up: the first churn of a fresh tmpfs is slower
for round in $(seq "$ROUNDS"); do
	R[none]+="$(rate) "
	read -r r l d c < <(run watch "Watches established" '^DELETE ' "$out/fsnotifyd" watch -r \
		-e create,modify,close_write,moved_from,moved_to,delete --format '%e %w%f' .)
	R[watch]+="$r "; L[watch]+="$l "; D[watch]+="$d "; C[watch]+="$c "
	read -r r l d c < <(run inotifywait "Watches established" '^DELETE ' inotifywait -m -r \
		-e create,modify,close_write,moved_from,moved_to,delete --format '%e %w%f' .)
	R[inotifywait]+="$r "; L[inotifywait]+="$l "; D[inotifywait]+="$d "; C[inotifywait]+="$c "
	read -r r l d c < <(run fatrace "" '\): [A-Z+<>]*D[A-Z+<>]* ' fatrace -c)
	R[fatrace]+="$r "; L[fatrace]+="$l "; D[fatrace]+="$d "; C[fatrace]+="$c "
	echo "round $round done"
done
med() { tr ' ' '\n' | grep -v '^$' | median; }
base=$(echo "${R[none]}" | med)
printf '%-12s %12s %8s %10s %12s %12s %14s\n' tool files/s vs-none lines removals lost us-cpu/line
printf '%-12s %12s\n' none "$base"
for t in watch inotifywait fatrace; do
	r=$(echo "${R[$t]}" | med); l=$(echo "${L[$t]}" | med); d=$(echo "${D[$t]}" | med); c=$(echo "${C[$t]}" | med)
	dd=$d lost=$((FILES - d))
	[ "$t" = fatrace ] && dd=n/a lost=n/a
	printf '%-12s %12s %8s %10s %12s %12s %14s\n' "$t" "$r" "$(awk -v a="$r" -v b="$base" 'BEGIN{printf "%.2f", a/b}')" \
		"$l" "$dd" "$lost" "$(awk -v c="$c" -v l="$l" 'BEGIN{printf "%.2f", (l ? c*1e6/l : 0)}')"
	eval "med_r_$t=$r med_l_$t=$l med_d_$t=$d med_c_$t=$c"
done
# Ratios against the peers in this run.
cpl() { awk -v c="$1" -v l="$2" 'BEGIN{printf "%.9f", (l ? c/l : 0)}'; }
w=$(cpl "$med_c_watch" "$med_l_watch"); f=$(cpl "$med_c_fatrace" "$med_l_fatrace"); i=$(cpl "$med_c_inotifywait" "$med_l_inotifywait")
summary churn.watch.lost "$((FILES - med_d_watch))" "<=$((FILES - med_d_inotifywait))" \
	"removals fsnotifyd watch -r did not report, of $FILES (inotifywait -m -r: $((FILES - med_d_inotifywait)); fatrace names no entries)"
summary churn.watch.cpu_per_line_vs_fatrace "$(awk -v a="$w" -v b="$f" 'BEGIN{printf "%.3f", (b > 0 ? a/b : 0)}')" "<=1" \
	"CPU per printed event, fsnotifyd watch -r / fatrace -c"
summary churn.watch.cpu_per_line_vs_inotifywait "$(awk -v a="$w" -v b="$i" 'BEGIN{printf "%.3f", (b > 0 ? a/b : 0)}')" "-" \
	"CPU per printed event, fsnotifyd watch -r / inotifywait -m -r"
summary churn.watch.rate_vs_none "$(awk -v a="$med_r_watch" -v b="$base" 'BEGIN{printf "%.3f", a/b}')" "-" \
	"churn files/s under fsnotifyd watch -r / no listener"
# fatrace prints merged lines (one per kernel event it read): per churned file too.
summary churn.watch.cpu_per_file_vs_fatrace "$(awk -v a="$med_c_watch" -v b="$med_c_fatrace" 'BEGIN{printf "%.3f", (b > 0 ? a/b : 0)}')" "-" \
	"CPU for the whole churn, fsnotifyd watch -r / fatrace -c (fatrace prints about one line per 5 of watch's)"
