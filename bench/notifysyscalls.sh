#!/usr/bin/env bash
# System calls per file of a notification reader, counted rather than timed: N distinct files
# on the scratch ext4 image, each opened and closed once (distinct objects, so the kernel
# cannot merge one file's events into another's: two events a file, OPEN and CLOSE_NOWRITE,
# or one merged), read by (a) fanref's C notification reader (FD mode: a read per batch, a
# close per event), (b) `fsnotifyd watch -r` and (c) `fsnotifyd trace` on the directory above,
# each under strace -f -c; after the load each reader is given until its output stops growing
# to drain. With OLD=path/to/fsnotifyd, (b) and (c) run that binary too, side by side.
# Counts do not depend on how busy the machine is; strace slows the readers down, so a
# reader may fall behind and report an overflow (counted: OVERFLOW lines).
# Run as root: bash bench/notifysyscalls.sh [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000} # the scratch ext4 image (64 MiB) has about 16k inodes
ROUNDS=1
command -v strace > /dev/null || { apt-get install -y -qq strace > /dev/null; }
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
cc -O2 -o "$out/many" bench/many.c
mkdir -p "$out/mnt/d/sub" && "$out/many" "$out/mnt/d/sub" "$N" create

# perFile FILE: strace -c table -> "syscall calls/file" (>= 0.02), then TOTAL without the Go
# runtime's nanosleep and futex (off the event's path, and inflated by strace).
perFile() {
	awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { c[$NF] += $4 }
	END {
		for (k in c) { if (c[k] / n >= 0.02) printf "  %-18s %6.3f\n", k, c[k] / n; if (k != "nanosleep" && k != "futex") t += c[k] / n }
		printf "  %-18s %6.3f\n", "TOTAL", t
	}' "$1" | sort -k2 -n -r
}
total() { awk '$1 == "TOTAL" { print $2 }' "$1"; }

run() { # NAME CMD...: the load under CMD, strace'd
	local name=$1; shift
	strace -f -qq -c -o "$out/$name.strace" "$@" > "$out/$name.out" 2>&1 & local p=$!
	for _ in $(seq 200); do grep -q -i "ready\|established" "$out/$name.out" 2>/dev/null && break; sleep 0.05; done
	sleep 0.5
	"$out/many" "$out/mnt/d/sub" "$N"
	local last=-1 cur
	for _ in $(seq 60); do sleep 2; cur=$(wc -c < "$out/$name.out"); [ "$cur" = "$last" ] && break; last=$cur; done
	kill -INT "$(pgrep -P "$p")"; wait "$p" 2>/dev/null || true
	echo "== $name: $(grep -c . "$out/$name.out") output lines, $(grep -c OVERFLOW "$out/$name.out" || true) overflow lines $(grep '^events' "$out/$name.out" || true)"
	perFile "$out/$name.strace" | tee "$out/$name.per"
}
run fanref "$out/fanref" notify "$out/mnt/d/sub"
run watch "$out/fsnotifyd" watch -r "$out/mnt/d"
run trace "$out/fsnotifyd" trace "$out/mnt/d"
if [ -n "${OLD:-}" ]; then
	run old-watch "$OLD" watch -r "$out/mnt/d"
	run old-trace "$OLD" trace "$out/mnt/d"
fi
summary notifysyscalls.fanref "$(total "$out/fanref.per")" - "system calls per opened file, fanref's C notification reader (strace -f -c, $N files)"
summary notifysyscalls.watch "$(total "$out/watch.per")" - "system calls per opened file, fsnotifyd watch -r (the runtime's futex and nanosleep left out)"
summary notifysyscalls.trace "$(total "$out/trace.per")" - "system calls per opened file, fsnotifyd trace"
