#!/usr/bin/env bash
# Every benchmark in one go, as root, on this machine: first the environment, then one table of
# same-run ratios (each figure is measured side by side with its reference within its own
# script, round by round, and is the median of ROUNDS rounds), each against its goal.
#
#   bash bench/all.sh [--busy] [--rounds N] [--quick] [--only LIST] [--out DIR]
#
#   --busy       also run the permission benchmarks (backend, cli, daemon, fapolicyd, exec, and
#                the floors guardfloor and relayfloor) with a
#                competing busy loop pinned to one core (a host that is doing other work); the
#                table then has a second column
#   --rounds N   rounds per script (default 3)
#   --quick      fewer operations per round (figures are noisier); the tree sizes (100k
#                directories for setup, 1M for memory) and the engine benchmarks' five runs
#                stay as the goals name them
#   --only LIST  comma list of scripts to run (engine,backend,cli,daemon,ignore,fanout,
#                fapolicyd,memory, and any bench/NAME.sh that prints SUMMARY lines)
#   --out DIR    keep each script's full output there (default: a temporary directory, kept)
#
# It installs what the scripts need (fapolicyd masked first, fatrace, inotify-tools, gcc,
# e2fsprogs, python3) with apt-get when missing. Each script can also be run on its own; its
# SUMMARY lines are what this table is made of.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
busy=0 rounds=3 quick=0 only="" outdir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--busy) busy=1 ;;
	--rounds) rounds=$2; shift ;;
	--quick) quick=1 ;;
	--only) only=$2; shift ;;
	--out) outdir=$2; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/all.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench/all.sh: run as root (the benchmarks use fanotify and mount scratch filesystems)" >&2; exit 1; }
case "$rounds" in ''|*[!0-9]*|0) echo "bench/all.sh: --rounds wants a positive number, not \"$rounds\"" >&2; exit 2 ;; esac
outdir=${outdir:-$(mktemp -d /tmp/fsnotifyd-bench.XXXXXX)}
mkdir -p "$outdir"

# What the scripts need.
need=()
command -v cc > /dev/null || need+=(gcc libc6-dev)
command -v mkfs.ext4 > /dev/null || need+=(e2fsprogs)
command -v python3 > /dev/null || need+=(python3-minimal)
command -v inotifywait > /dev/null || need+=(inotify-tools)
command -v fatrace > /dev/null || need+=(fatrace)
command -v taskset > /dev/null || need+=(util-linux)
if ! command -v fapolicyd > /dev/null; then
	# Masked first: its package would start it with rules that deny every exec.
	systemctl mask fapolicyd > /dev/null 2>&1 || ln -sf /dev/null /etc/systemd/system/fapolicyd.service
	need+=(fapolicyd)
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}" >&2
	apt-get update -qq > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" > /dev/null
fi
[ "$(systemctl is-enabled fapolicyd 2>/dev/null || true)" = masked ] || systemctl mask fapolicyd > /dev/null 2>&1 || true

# The environment, first.
gov=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo none)
env_line="$(date -u +%Y-%m-%dT%H:%MZ); $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs, governor $gov; Linux $(uname -r); $(go version | awk '{ print $3 }'); load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "environment: $env_line"
echo "output of each script: $outdir"

N_PERM=100000 N_IGN=200000 N_FAN=200000 DIRS=100000 MEM_DIRS=1000000 ENGINE_COUNT=5
N_CHURN=100000 N_EXEC=10000 N_SYSC=20000
if [ "$quick" = 1 ]; then N_PERM=20000 N_IGN=40000 N_FAN=40000 DIRS=100000 MEM_DIRS=1000000 ENGINE_COUNT=5 N_CHURN=20000 N_EXEC=2000 N_SYSC=10000; export N=50000 FILES=50000; fi # N, FILES: bench/fleet.sh
export ROUNDS=$rounds # bench/fleet.sh takes its rounds from the environment
all="engine backend cli daemon ignore fanout fapolicyd memory"
for s in bench/*.sh; do # scripts added later that print SUMMARY lines
	n=$(basename "$s" .sh)
	case " $all lib all " in *" $n "*) ;; *) grep -q -e SUMMARY -e '^summary ' "$s" && all="$all $n" ;; esac
done
[ -n "$only" ] && all=${only//,/ }

# args NAME: the arguments of script NAME.
args() {
	case "$1" in
	engine) echo "$ENGINE_COUNT" ;;
	backend|daemon|relayfloor) echo "$N_PERM $rounds" ;; # relayfloor: the floor of any relay, beside daemon
	guardfloor) echo "$N_PERM $rounds" ;; # the floor under the embedded guard, beside cli
	cli) echo "$N_PERM $rounds $DIRS" ;;
	ignore) echo "$N_IGN $rounds" ;;
	fanout) echo "$N_FAN $rounds" ;;
	fanoutcounts) echo "$N_FAN $rounds" ;;
	fapolicyd) echo "$N_PERM $rounds" ;;
	memory) echo "1000 100 $MEM_DIRS" ;;
	churn) echo "$N_CHURN $rounds" ;;
	exec) echo "$N_EXEC $rounds 1" ;;
	syscalls) echo "$N_SYSC" ;;
	guardcounts) echo "$N_SYSC $rounds" ;;
	critpath) echo "$N_SYSC $rounds" ;; # the guard's own critical path per open, traced
	relaycount) echo "$N_SYSC 1 2" ;;
	*) echo "" ;;
	esac
}
permission="backend cli daemon fapolicyd exec guardfloor relayfloor" # relayfloor busy: the floor under the daemon's busy rows
busy_pid=
stop_busy() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; wait "$busy_pid" 2>/dev/null || true; busy_pid=; }
trap stop_busy EXIT
run() { # run NAME MODE: the script's SUMMARY lines, tagged with MODE
	local name=$1 mode=$2 log="$outdir/$1.$2.log"
	[ -f "bench/$name.sh" ] || { echo "bench/all.sh: no bench/$name.sh" >&2; return 1; }
	echo "--- $name ($mode)" >&2
	# shellcheck disable=SC2046
	if ! bash "bench/$name.sh" $(args "$name") > "$log" 2>&1; then
		echo "bench/all.sh: bench/$name.sh failed ($mode); its output: $log" >&2
		tail -5 "$log" >&2
		failed="$failed $name($mode)"
	fi
	grep '^SUMMARY' "$log" | sed "s/^SUMMARY/$mode/" >> "$outdir/summary.tsv" || true
}
: > "$outdir/summary.tsv"
failed=
for name in $all; do
	run "$name" quiet
	if [ "$busy" = 1 ] && [[ " $permission " == *" $name "* ]]; then
		taskset -c "$(( $(nproc) - 1 ))" sh -c 'while :; do :; done' & busy_pid=$!
		run "$name" busy
		stop_busy
	fi
done

# The table: one row per figure, the quiet value and (with --busy) the busy one.
echo
echo "environment: $env_line; rounds $rounds$([ "$quick" = 1 ] && echo ", --quick")"
echo
awk -F'\t' -v busy="$busy" '
function met(v, g,   op, x) {
	if (g == "-" || g == "" || v == "") return "";
	op = substr(g, 1, 2); x = substr(g, 3) + 0;
	if (op == "<=") return (v + 0 <= x) ? "yes" : "NO";
	if (op == ">=") return (v + 0 >= x) ? "yes" : "NO";
	return "";
}
{ key = $2; if (!(key in seen)) { seen[key] = 1; order[++n] = key; goal[key] = $4; text[key] = $5 }
  val[$1, key] = $3 }
END {
	if (busy == 1) { print "| figure | quiet | met | one core busy | met | goal | what |"; print "|---|---|---|---|---|---|---|" }
	else { print "| figure | value | met | goal | what |"; print "|---|---|---|---|---|" }
	for (i = 1; i <= n; i++) {
		k = order[i]; q = val["quiet", k]; b = val["busy", k]
		if (busy == 1) printf "| %s | %s | %s | %s | %s | %s | %s |\n", k, q, met(q, goal[k]), (b == "" ? "-" : b), met(b, goal[k]), goal[k], text[k]
		else printf "| %s | %s | %s | %s | %s |\n", k, q, met(q, goal[k]), goal[k], text[k]
	}
}' "$outdir/summary.tsv"
if [ -n "$failed" ]; then
	echo
	echo "FAILED (their figures above are partial or missing):$failed; see $outdir"
	exit 1
fi
