#!/usr/bin/env bash
# The CLI's speed, side by side in one run (run as root):
#   1. guard allow-all vs fanref's C allow-all responder: per-open time ratio (goal <= 1.05),
#      with at least 100,000 opens and 5 rounds;
#   2. guard --cache on repeated opens of the same file vs no listener (goal <= 1.2), with
#      ten times OPENS (at least 1,000,000) and at least 5 rounds;
#   3. watch -r setup time on a 100k-directory tree vs inotifywait -r (goal >= 50x faster).
# Usage: bash bench/cli.sh [OPENS] [ROUNDS] [DIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
DIRS=${3:-100000}
command -v inotifywait >/dev/null || { apt-get install -y -qq inotify-tools >/dev/null; }
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
mkdir -p "$out/tree"
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

# with_ready READY-WORD THREADS CMD...: lib.sh's with, for a CMD that says READY-WORD.
with_ready() {
	local ready=$1 threads=$2; shift 2
	: > "$out/l.out" # emptied before the start: the last listener's word must not pass the wait
	"$@" > "$out/l.out" 2>&1 & local pid=$!
	wait_ready "$out/l.out" "$ready"
	ops "$threads"; kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

echo "== 1. guard allow-all vs fanref's responder (per-open time, fanref's load on $out/mnt/d/f)"
# At least 100,000 opens and five rounds, whatever OPENS and ROUNDS say: all.sh --quick's
# 20,000 opens lasted a quarter of a second a side, and its three rounds at 1 thread spread
# 1.08-1.28 (2026-12-05 16:22) where bench/guardfloorcpu.sh's twenty gave a median of 1.09.
N_OTHERS=$N
N=$((N > 100000 ? N : 100000))
ALLOW_ROUNDS=$((ROUNDS > 5 ? ROUNDS : 5))
for threads in 1 2; do
	rs=()
	for r in $(seq "$ALLOW_ROUNDS"); do
		# The order alternates between rounds (as in section 2): the host's speed drifts
		# within minutes, and the side that always ran first would always meet it first.
		if [ $((r % 2)) = 1 ]; then
			b=$(with_ready ready "$threads" "$out/fanref" respond "$out/mnt/d")
			c=$(with_ready "Watches established" "$threads" "$out/fsnotifyd" guard "$out/mnt/d")
		else
			c=$(with_ready "Watches established" "$threads" "$out/fsnotifyd" guard "$out/mnt/d")
			b=$(with_ready ready "$threads" "$out/fanref" respond "$out/mnt/d")
		fi
		x=$(awk -v b="$b" -v c="$c" 'BEGIN{printf "%.3f", b/c}')
		echo "threads $threads  fanref $(awk -v b="$b" 'BEGIN{printf "%.2f", 1e6/b}') us/open  guard $(awk -v c="$c" 'BEGIN{printf "%.2f", 1e6/c}') us/open  ratio $x"
		rs+=("$x")
	done
	m=$(printf '%s\n' "${rs[@]}" | median)
	echo "median ratio guard/fanref, $threads thread(s): $m (goal <= 1.05)"
	summary "guard.allowall.t$threads" "$m" "<=1.05" "embedded guard allow-all / fanref C responder, per-open time, $threads load thread(s)"
done
N=$N_OTHERS

echo "== 2. guard --cache, repeated opens of one file, vs no listener"
# A cached open costs about what an open without a listener does (a microsecond or two), so
# this section makes ten times the opens of the others: with OPENS alone a round lasted tens
# of milliseconds, and the load's start (threads, first page faults) moved the ratio by 0.4.
# The order alternates between rounds, so neither side always runs first. At least a million
# opens and five rounds (about a second per side and round), whatever OPENS and ROUNDS say:
# all.sh --quick's 200,000 opens lasted 0.2 s a side, and its three rounds at 1 thread gave
# 1.94, 1.22 and 1.82 with the no-listener side steady at 1.0 us (2026-12-05 14:04).
N_OTHERS=$N
N=$((N * 10 > 1000000 ? N * 10 : 1000000))
CACHE_ROUNDS=$((ROUNDS > 5 ? ROUNDS : 5))
for threads in 1 2; do
	rs=()
	for r in $(seq "$CACHE_ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then
			a=$(ops "$threads")
			c=$(with_ready "Watches established" "$threads" "$out/fsnotifyd" guard --cache "$out/mnt/d")
		else
			c=$(with_ready "Watches established" "$threads" "$out/fsnotifyd" guard --cache "$out/mnt/d")
			a=$(ops "$threads")
		fi
		x=$(awk -v a="$a" -v c="$c" 'BEGIN{printf "%.3f", a/c}')
		echo "threads $threads  none $(awk -v a="$a" 'BEGIN{printf "%.2f", 1e6/a}') us/open  guard --cache $(awk -v c="$c" 'BEGIN{printf "%.2f", 1e6/c}') us/open  ratio $x"
		rs+=("$x")
	done
	m=$(printf '%s\n' "${rs[@]}" | median)
	echo "median ratio guard --cache/none, $threads thread(s): $m (goal <= 1.2)"
	summary "guard.cache.t$threads" "$m" "<=1.2" "guard --cache, repeated opens of one file / no listener, $threads load thread(s)"
done

N=$N_OTHERS

echo "== 3. watch -r setup on a $DIRS-directory tree vs inotifywait -r"
mount -t tmpfs -o size=1g,nr_inodes=2m tmpfs "$out/tree"
(cd "$out/tree" && python3 -c "
import os
n=$DIRS
for i in range(n):
    os.makedirs('d%d/e%d' % (i // 1000, i % 1000), exist_ok=True)
")
echo "tree: $(find "$out/tree" -type d | wc -l) directories"
setup() { # setup CMD...: seconds from start until "Watches established." on stderr
	local t0 t1="" line last=""
	t0=$(date +%s%N)
	coproc P { "$@" 2>&1 >/dev/null; }
	while IFS= read -r line <&"${P[0]}"; do
		case "$line" in *"Watches established"*) t1=$(date +%s%N); break;; esac
		last=$line
	done
	# SIGTERM: a background job of a script ignores SIGINT (inotifywait keeps that).
	kill -TERM "$P_PID" 2>/dev/null; wait "$P_PID" 2>/dev/null || true
	if [ -z "$t1" ]; then
		echo "bench/cli.sh: $1 never said \"Watches established.\": $last" >&2
		exit 1
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", (b-a)/1e9}'
}
# Generously: a closed inotify instance gives its watches back a little later, and
# inotifywait's next round must not be refused for the previous round's.
old_watches=$(sysctl -n fs.inotify.max_user_watches)
trap 'sysctl -qw fs.inotify.max_user_watches=$old_watches; bench_cleanup' EXIT
sysctl -qw fs.inotify.max_user_watches=$((DIRS * 8 + 1000)) 2>/dev/null || true
fs=(); is=()
for r in $(seq 3); do
	fs+=("$(setup "$out/fsnotifyd" watch -r "$out/tree")")
	is+=("$(setup inotifywait -m -r "$out/tree")")
	[ -n "${fs[-1]}" ] && [ -n "${is[-1]}" ] || exit 1
	echo "round $r: fsnotifyd watch -r ${fs[-1]} s  inotifywait -r ${is[-1]} s"
done
f=$(printf '%s\n' "${fs[@]}" | median); i=$(printf '%s\n' "${is[@]}" | median)
x=$(awk -v f="$f" -v i="$i" 'BEGIN{printf "%.1f", i/f}')
echo "median setup: fsnotifyd $f s, inotifywait $i s: fsnotifyd is ${x}x faster (goal >= 50x)"
summary watch.setup.speedup "$x" ">=50" "inotifywait -r setup time / watch -r setup time on a $DIRS-directory tree"
