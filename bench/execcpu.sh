#!/usr/bin/env bash
# Where the guard's CPU per exec goes against a C listener making the same system calls
# (bench/execref.c's calls mode), each measured alone: about EXECS execs of a trusted copy of
# true(1) on a tmpfs mounted in a private mount namespace, spawned as bench/exec.sh spawns them
# (bench/execmix.c: three blocks of EXECS/3), under
#   calls   bench/execref.c MNT calls TRUST (the guard's calls per exec, in C, nothing else)
#   guard   `fsnotifyd guard --mount --events open,exec` with bench/exec.sh's trust policy
#           (its exec memo answers the repeated execs: docs/security.md, "The exec memo")
#   nomemo  the same guard with --no-exec-memo (every exec decided by the rules)
# in three placements: quiet (both CPUs free), busy (a busy loop pinned to the last CPU, as
# all.sh --busy), and one CPU (listener and execs pinned to CPU 0 together). Prints per
# listener and placement its CPU per exec (perf stat task-clock, every thread), context
# switches and CPU migrations per exec, and execmix's mean time per exec; then, per
# placement, each guard's CPU over the C listener's and the guard's over --no-exec-memo's.
# With PROFILE=DIR, also a perf record -g of each guard in each placement
# (DIR/WHO.PLACEMENT.data; perf record moves the figures it records, the one-CPU placement
# most: its threads then share that CPU with perf's).
# With W2W=1, also each listener's wake-up to answer in each placement (bench/w2w.py: from a
# read that returns events to the write of the answer, p10 / p50 / p90, and how many answers'
# writes were preempted by the process answered), from a perf record of its system calls and
# switches (which moves the CPU figures too; not with PROFILE); W2W=PREFIX keeps each record
# as PREFIX.WHO.PLACEMENT.data.
# Run as root: bash bench/execcpu.sh [EXECS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
EXECS=${1:-5000}
ROUNDS=${2:-3}
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
T=$(mktemp -d)
busy=
trap '[ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$T"' EXIT
chmod 755 "$T"
go build -o "$T/fsnotifyd" ./cmd/fsnotifyd
cc -O2 -o "$T/execref" bench/execref.c
cc -O2 -o "$T/execmix" bench/execmix.c
printf 'allow exec ** trusted=yes\ndeny exec **\n' > "$T/exec.rules"
echo "execcpu: $EXECS execs per measurement, $ROUNDS rounds; $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# measure WHO PLACEMENT: one line "WHO PLACEMENT cpu_us switches migrations exec_us".
measure() {
	export WHO=$1 PLACE=$2 EXECS T PROFILE=${PROFILE:-} W2W=${W2W:-}
	unshare -m bash -s <<'INNER'
set -euo pipefail
mount --make-rprivate /
mkdir -p "$T/mnt" && mount -t tmpfs tmpfs "$T/mnt" && cp /usr/bin/true "$T/mnt/tool"
echo "$T/mnt/tool $(stat -c %s "$T/mnt/tool") $(sha256sum "$T/mnt/tool" | cut -d' ' -f1)" > "$T/tool.trust"
pin=()
[ "$PLACE" = onecpu ] && pin=(taskset -c 0)
if [ "$WHO" != calls ]; then
	memo=()
	[ "$WHO" = nomemo ] && memo=(--no-exec-memo)
	"${pin[@]}" "$T/fsnotifyd" guard --mount --events open,exec "${memo[@]}" --policy "$T/exec.rules" --trust "$T/tool.trust" --no-package-trust "$T/mnt" > "$T/l.log" 2>&1 & lp=$!
else
	"${pin[@]}" "$T/execref" "$T/mnt" calls "$T/tool.trust" > "$T/l.log" 2>&1 & lp=$!
fi
for _ in $(seq 200); do grep -q "Watches established\|ready" "$T/l.log" && break; sleep 0.05; done
grep -q "Watches established\|ready" "$T/l.log" || { echo "$WHO not ready:" >&2; cat "$T/l.log" >&2; exit 1; }
"${pin[@]}" "$T/execmix" 1 200 "$T/mnt/tool" "$T/mnt/tool" > /dev/null
sleep 3 # past the trust hash cache's settle time: the guard's later execs are decided from it
"${pin[@]}" "$T/execmix" 1 100 "$T/mnt/tool" "$T/mnt/tool" > /dev/null
perf stat -e task-clock,context-switches,cpu-migrations -p "$lp" -o "$T/stat" 2> /dev/null & ps=$!
pr=
if [ -n "$PROFILE" ] && [ "$WHO" != calls ]; then
	mkdir -p "$PROFILE"; perf record -e cpu-clock -F 20000 -g -p "$lp" -o "$PROFILE/$WHO.$PLACE.data" > /dev/null 2>&1 & pr=$!
fi
if [ -n "$W2W" ] && [ -z "$pr" ]; then
	perf record -e raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_switch -p "$lp" -o "$T/w2w.data" > /dev/null 2>&1 & pr=$!
fi
sleep 0.3
burst=$(( (EXECS + 2) / 3 ))
us=$("${pin[@]}" "$T/execmix" 1 "$burst" "$T/mnt/tool" "$T/mnt/tool" | awk '{ s += $5; n++ } END { printf "%.2f", s / n }')
EXECS=$(( 3 * burst )) # the execs the listener saw (execmix's three blocks)
kill -INT "$ps"; wait "$ps" || true
[ -z "$pr" ] || { kill -INT "$pr"; wait "$pr" || true; }
kill -INT "$lp"; wait "$lp" || true
umount "$T/mnt"
if [ -n "$W2W" ]; then
	perf script -i "$T/w2w.data" 2> /dev/null | python3 bench/w2w.py "$WHO $PLACE" >&2
	[ "$W2W" = 1 ] || cp "$T/w2w.data" "$W2W.$WHO.$PLACE.data"
	rm -f "$T/w2w.data"
fi
awk -v n="$EXECS" -v who="$WHO" -v place="$PLACE" -v us="$us" '
	/task-clock/ { gsub(",", "", $1); c = $1 } /context-switches/ { gsub(",", "", $1); s = $1 } /cpu-migrations/ { gsub(",", "", $1); m = $1 }
	END { printf "%s %s %.2f %.2f %.3f %s\n", who, place, c * 1000 / n, s / n, m / n, us }' "$T/stat"
INNER
}

: > "$T/all"
for r in $(seq "$ROUNDS"); do
	for place in quiet busy onecpu; do
		if [ "$place" = busy ]; then taskset -c "$(( $(nproc) - 1 ))" sh -c 'while :; do :; done' & busy=$!; fi
		for who in calls guard nomemo; do measure "$who" "$place" | tee -a "$T/all" | awk -v r="$r" '{ printf "round %d: %-6s %-6s CPU %6.2f us/exec  switches %.2f  migrations %.3f  exec %s us\n", r, $1, $2, $3, $4, $5, $6 }'; done
		if [ -n "$busy" ]; then kill "$busy"; wait "$busy" 2>/dev/null || true; busy=; fi
	done
done
echo "medians over $ROUNDS rounds:"
for place in quiet busy onecpu; do
	awk -v p="$place" '$2 == p { cpu[$1] = cpu[$1] " " $3; sw[$1] = sw[$1] " " $4 }
		function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
		END { c = med(cpu["calls"]); g = med(cpu["guard"]); n = med(cpu["nomemo"])
			printf "  %-6s CPU per exec: calls %.2f us, guard %.2f us (%.2f x, +%.2f us), guard --no-exec-memo %.2f us (%.2f x); guard / --no-exec-memo %.3f; switches per exec: calls %.2f, guard %.2f, --no-exec-memo %.2f\n", p, c, g, g / c, g - c, n, n / c, g / n, med(sw["calls"]), med(sw["guard"]), med(sw["nomemo"]) }' "$T/all"
done
