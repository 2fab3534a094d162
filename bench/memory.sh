#!/usr/bin/env bash
# Memory, on this machine (run as root):
#   1. the daemon's resident memory with N clients each holding M marks (default 1,000 x 100),
#      per mark: (RSS with the clients - RSS before) / (N*M);
#   2. the engine's heap bytes per mark (engine BenchmarkMemoryPerMark, 1M marks; goal <= 250);
#   3. `watch -r`'s resident memory once it has established its watch on a tree of DIRS
#      directories on a tmpfs (default 1,000,000; goal <= 64 MiB), beside inotifywait -r's on the
#      same tree when DIRS <= INOTIFY_MAX (default 200,000: it needs a watch per directory).
# Usage: bash bench/memory.sh [N] [M] [DIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
M=${2:-100}
DIRS=${3:-1000000}
INOTIFY_MAX=${INOTIFY_MAX:-200000}
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
go build -o "$out/memclients" ./bench/memclients
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
wait_for() { # wait_for FILE WORD: until FILE contains WORD (60 s)
	for _ in $(seq 1200); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.05; done
	echo "bench/memory.sh: no \"$2\" in $1:" >&2; tail -5 "$1" >&2; exit 1
}

echo "== 1. the daemon with $N clients x $M marks"
# The client library keeps an O_PATH descriptor per mark (to place it again after a daemon
# restart): the clients are spread over enough memclients processes that none holds more
# descriptors than the open-file limit allows.
per_proc=$(( ($(ulimit -n) - 100) / (M + 1) ))
[ "$per_proc" -ge 1 ] || { echo "bench/memory.sh: the open-file limit ($(ulimit -n)) is too low for $M marks per client" >&2; exit 1; }
mkdir "$out/mnt/m" && for j in $(seq 0 $((M - 1))); do : > "$out/mnt/m/$j"; done
"$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & dpid=$!; pids+=($dpid)
for _ in $(seq 100); do "$out/fsnotifyd" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done
sleep 0.5
before=$(rss_kib "$dpid")
mpids=() left=$N i=0
while [ "$left" -gt 0 ]; do
	k=$(( left < per_proc ? left : per_proc ))
	"$out/memclients" "$out/d.sock" "$out/mnt/m" "$k" "$M" > "$out/mem$i.log" 2>&1 & mpids+=($!); pids+=($!)
	wait_for "$out/mem$i.log" ready
	left=$((left - k)) i=$((i + 1))
done
sleep 1
after=$(rss_kib "$dpid")
per=$(awk -v a="$before" -v b="$after" -v n=$((N * M)) 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
echo "daemon RSS: $before KiB idle, $after KiB with $N clients x $M marks ($i client processes): $per bytes per mark (client connections included)"
summary daemon.rss.per-mark "$per" - "daemon RSS growth per mark with $N clients x $M marks (bytes; includes each connection's buffers)"
kill "${mpids[@]}" "$dpid"; wait "${mpids[@]}" "$dpid" 2>/dev/null || true

echo "== 2. the engine's heap per mark"
bpm=$(go test -run '^$' -bench 'BenchmarkMemoryPerMark$' -benchtime 1x ./engine | awk '/bytes\/mark/ { for (i = 1; i < NF; i++) if ($(i+1) == "bytes/mark") print $i }')
echo "engine: $bpm bytes per mark (1M marks)"
summary engine.bytes-per-mark "$bpm" "<=250" "engine heap bytes per mark, 1M marks on distinct objects"

echo "== 3. watch -r on a $DIRS-directory tree"
mkdir -p "$out/tree" && mount -t tmpfs -o size=4g,nr_inodes=$((DIRS * 2 + 1000)) tmpfs "$out/tree"
python3 -c "
import os
n=$DIRS
for i in range(n):
    os.makedirs('$out/tree/d%d/e%d' % (i // 1000, i % 1000), exist_ok=True)
"
echo "tree: $(find "$out/tree" -type d | wc -l) directories"
"$out/fsnotifyd" watch -r "$out/tree" > /dev/null 2> "$out/watch.err" & wpid=$!; pids+=($wpid)
wait_for "$out/watch.err" "Watches established"
sleep 1
w=$(rss_kib "$wpid")
kill "$wpid"; wait "$wpid" 2>/dev/null || true
wmib=$(awk -v k="$w" 'BEGIN { printf "%.1f", k / 1024 }')
echo "watch -r RSS: $wmib MiB"
summary watch.rss-mib "$wmib" "<=64" "RSS of watch -r once established on a $DIRS-directory tmpfs tree (MiB)"
if [ "$DIRS" -le "$INOTIFY_MAX" ] && command -v inotifywait > /dev/null; then
	old=$(sysctl -n fs.inotify.max_user_watches)
	sysctl -qw fs.inotify.max_user_watches=$((DIRS * 2 + 1000))
	inotifywait -m -r "$out/tree" > /dev/null 2> "$out/iw.err" & ipid=$!; pids+=($ipid)
	for _ in $(seq 6000); do grep -q "Watches established" "$out/iw.err" 2>/dev/null && break; sleep 0.05; done
	i=$(rss_kib "$ipid")
	kill "$ipid"; wait "$ipid" 2>/dev/null || true
	sysctl -qw fs.inotify.max_user_watches="$old"
	echo "inotifywait -r RSS on the same tree: $(awk -v k="$i" 'BEGIN { printf "%.1f", k / 1024 }') MiB (plus the kernel's watches)"
fi
