#!/usr/bin/env bash
# The memory a listener touches to answer one exec: the pages of its address space it
# references between two execs, by kind of mapping, for the guard (bench/exec.sh's trust
# policy, exec memo on; and with --no-exec-memo: every exec decided by the rules) and for
# bench/execref.c's calls mode (the same system calls, in C).
# Why: an exec is half a millisecond of the kernel building a process, after which the
# listener's pages are out of the caches and the TLB; what it then pays per event grows with
# how many distinct pages it touches (docs/design/performance.md, session 18).
# How: the listener runs on a tmpfs in a private mount namespace, answers warm-up execs (and,
# for the guard, is past the trust hash cache's settle time, so its memo answers), then per
# sample: `echo 1 > /proc/PID/clear_refs` (every page's referenced bit cleared), EXECS execs of
# the trusted tool (default 1), and the "Referenced:" kB of each mapping in /proc/PID/smaps;
# SAMPLES samples with execs, and as many with none (what the listener's idle threads touch in
# the same time), alternating. Shared libraries are left out (their pages are shared with
# every process that uses them: the referenced bit is the page's, not the listener's).
# Prints per listener the median pages (4 KiB) per sample: text (the binary's code), rodata,
# data (the binary's data and bss), heap (anonymous mappings other than thread stacks' and
# the bss's), stacks (an anonymous mapping above a 4 KiB guard page: a thread's stack; and
# the main thread's), and their total, with and without execs.
# Run as root: bash bench/footprint.sh [SAMPLES] [EXECS]
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${1:-9}
EXECS=${2:-1}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT # each measurement stops its listener and unmounts its tmpfs (INNER)
chmod 755 "$T"
go build -o "$T/fsnotifyd" ./cmd/fsnotifyd
cc -O2 -o "$T/execref" bench/execref.c
printf 'allow exec ** trusted=yes\ndeny exec **\n' > "$T/exec.rules"
echo "footprint: $SAMPLES samples of $EXECS exec(s); $(nproc) CPUs, $(uname -r)"

# sample PID BIN N: N execs after clearing PID's referenced bits; prints
# "text rodata data heap stacks" in pages.
sample() {
	echo 1 > "/proc/$1/clear_refs"
	for _ in $(seq "$3"); do "$T/mnt/tool"; done
	awk -v bin="$2" '
		function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
		/^[0-9a-f]+-[0-9a-f]+ / {
			split($1, a, "-"); size = hex(a[2]) - hex(a[1])
			kind = ""
			if ($6 == bin) kind = ($2 ~ /x/) ? "text" : ($2 ~ /w/) ? "data" : "rodata"
			else if ($6 == "") kind = (prevperm == "---p" && prevsize == 4096) ? "stacks" : (prev == bin ? "data" : "heap")
			else if ($6 == "[heap]") kind = "heap"
			else if ($6 == "[stack]") kind = "stacks"
			prev = $6; prevperm = $2; prevsize = size
		}
		/^Referenced:/ && kind != "" { k[kind] += $2 }
		END { printf "%d %d %d %d %d\n", k["text"] / 4, k["rodata"] / 4, k["data"] / 4, k["heap"] / 4, k["stacks"] / 4 }' "/proc/$1/smaps"
}

# measure WHO: the medians for listener WHO.
measure() {
	export WHO=$1 T SAMPLES EXECS
	unshare -m bash -s <<'INNER'
set -euo pipefail
mount --make-rprivate /
mkdir -p "$T/mnt" && mount -t tmpfs tmpfs "$T/mnt" && cp /usr/bin/true "$T/mnt/tool"
echo "$T/mnt/tool $(stat -c %s "$T/mnt/tool") $(sha256sum "$T/mnt/tool" | cut -d' ' -f1)" > "$T/tool.trust"
if [ "$WHO" != calls ]; then
	bin="$T/fsnotifyd"
	memo=()
	[ "$WHO" = nomemo ] && memo=(--no-exec-memo)
	"$bin" guard --mount --events open,exec "${memo[@]}" --policy "$T/exec.rules" --trust "$T/tool.trust" --no-package-trust "$T/mnt" > "$T/l.log" 2>&1 & lp=$!
else
	bin="$T/execref"
	"$bin" "$T/mnt" calls "$T/tool.trust" > "$T/l.log" 2>&1 & lp=$!
fi
trap 'kill -INT $lp 2>/dev/null || true; wait $lp 2>/dev/null || true; umount "$T/mnt"' EXIT
for _ in $(seq 200); do grep -q "Watches established\|ready" "$T/l.log" && break; sleep 0.05; done
grep -q "Watches established\|ready" "$T/l.log" || { echo "$WHO not ready:" >&2; cat "$T/l.log" >&2; exit 1; }
for _ in $(seq 50); do "$T/mnt/tool"; done
sleep 3.2 # past the trust hash cache's settle time: the guard's memo answers from here
for _ in $(seq 50); do "$T/mnt/tool"; done
: > "$T/with"; : > "$T/idle"
for _ in $(seq "$SAMPLES"); do
	sample "$lp" "$bin" "$EXECS" >> "$T/with"
	sample "$lp" "$bin" 0 >> "$T/idle"
done
for f in with idle; do
	awk -v who="$WHO" -v f="$f" '
		{ for (i = 1; i <= 5; i++) v[i, NR] = $i; t[NR] = $1 + $2 + $3 + $4 + $5 }
		function med(col,   a, i, j, x, n) { n = NR; for (i = 1; i <= n; i++) a[i] = (col ? v[col, i] : t[i]) + 0
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
			return a[int((n + 1) / 2)] }
		END { printf "%-6s %-5s pages: text %d  rodata %d  data %d  heap %d  stacks %d  total %d\n", who, (f == "with" ? "exec" : "idle"), med(1), med(2), med(3), med(4), med(5), med(0) }' "$T/$f"
done
INNER
}
export -f sample
measure calls
measure guard
measure nomemo
