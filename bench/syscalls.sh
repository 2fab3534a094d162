#!/usr/bin/env bash
# Where a permission event's time goes, counted rather than timed: the system calls per open
# made by (a) fanref's C allow-all responder, (b) the embedded `fsnotifyd guard` allow-all,
# (c) `fsnotifyd serve` plus an out-of-process allow-all client (bench/daemonallow), each under
# strace -f -c while fanref's load opens one file OPENS times from one thread; and the cost of
# one system call on this machine (getppid, fstat, open+close in a C loop), which is what makes
# the counts matter. Counts do not depend on how busy the machine is; the per-call costs do.
# Run as root: bash bench/syscalls.sh [OPENS]
# It prints, per listener, each system call made at least once per 20 opens, as calls per open,
# and SUMMARY lines (bench/lib.sh) with the total per open (without nanosleep: the Go runtime's
# sysmon thread, which is off the event's path).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=1
command -v strace > /dev/null || { apt-get install -y -qq strace > /dev/null; }
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
go build -o "$out/daemonallow" ./bench/daemonallow
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

# perOpen FILE...: strace -c tables -> "syscall calls/open" lines (>= 0.05 per open), then TOTAL.
perOpen() {
	# strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
	awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { c[$NF] += $4 }
	END {
		# nanosleep is the Go runtime sysmon thread, off the event path (and inflated by
		# strace slowing the process down): listed, not counted.
		for (k in c) if (c[k] / n >= 0.05) { printf "  %-16s %6.2f\n", k, c[k] / n; if (k != "nanosleep") t += c[k] / n }
		printf "  %-16s %6.2f\n", "TOTAL", t
	}' "$@" | sort -k2 -n -r
}


echo "== cost of one system call here (C loop)"
cat > "$out/sc.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
int main(int argc, char **argv) {
	struct stat st; int fd = open(argv[1], O_RDONLY), n = 200000; double t;
	t = now(); for (int i = 0; i < n; i++) syscall(SYS_getppid); printf("getppid_us %.3f\n", (now() - t) / n);
	t = now(); for (int i = 0; i < n; i++) fstat(fd, &st); printf("fstat_us %.3f\n", (now() - t) / n);
	t = now(); for (int i = 0; i < n; i++) close(open(argv[1], O_RDONLY)); printf("open_close_us %.3f\n", (now() - t) / n);
	return 0;
}
EOF
cc -O2 -o "$out/sc" "$out/sc.c"
"$out/sc" "$out/mnt/d/f" | tee "$out/sc.out" | sed 's/^/  /'
summary syscall.getppid.us "$(awk '$1=="getppid_us"{print $2}' "$out/sc.out")" - "microseconds per getppid(2) on this machine (a bare system call)"

echo "== (a) fanref respond: system calls per open"
strace -f -qq -c -o "$out/a.strace" "$out/fanref" respond "$out/mnt/d" > "$out/a.out" 2>&1 &
wait_ready "$out/a.out" ready
"$out/fanref" load "$LOAD_FILE" "$N" 1 > /dev/null
pkill -TERM -f "^$out/fanref respond" || true; wait
perOpen "$out/a.strace" | tee "$out/a.per"

echo "== (b) fsnotifyd guard (embedded, allow-all): system calls per open"
strace -f -qq -c -o "$out/b.strace" "$out/fsnotifyd" guard "$out/mnt/d" > "$out/b.out" 2>&1 &
wait_ready "$out/b.out" "Watches established"
"$out/fanref" load "$LOAD_FILE" "$N" 1 > /dev/null
pkill -TERM -f "^$out/fsnotifyd guard" || true; wait
perOpen "$out/b.strace" | tee "$out/b.per"

echo "== (c) fsnotifyd serve + daemonallow: system calls per open (daemon, then client)"
strace -f -qq -c -o "$out/c1.strace" "$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn > "$out/c1.out" 2>&1 &
for _ in $(seq 200); do [ -S "$out/d.sock" ] && break; sleep 0.05; done
strace -f -qq -c -o "$out/c2.strace" "$out/daemonallow" "$out/d.sock" "$out/mnt/d" > "$out/c2.out" 2>&1 &
wait_ready "$out/c2.out" ready
"$out/fanref" load "$LOAD_FILE" "$N" 1 > /dev/null
pkill -TERM -f "^$out/daemonallow" || true; sleep 0.5
pkill -TERM -f "^$out/fsnotifyd serve" || true; wait
echo " daemon:"; perOpen "$out/c1.strace" | tee "$out/c1.per"
echo " client:"; perOpen "$out/c2.strace" | tee "$out/c2.per"

total() { awk '$1=="TOTAL"{print $2}' "$1"; }
summary syscalls.fanref "$(total "$out/a.per")" - "system calls per open, fanref's C responder (strace -f -c, $N opens, 1 thread)"
summary syscalls.guard "$(total "$out/b.per")" - "system calls per open, embedded guard allow-all (the runtime's futex included)"
summary syscalls.daemon "$(awk -v a="$(total "$out/c1.per")" -v b="$(total "$out/c2.per")" 'BEGIN{print a+b}')" - "system calls per open, daemon + out-of-process client together"
