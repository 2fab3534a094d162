#!/usr/bin/env bash
# Where an exec's wait for its permission answer goes, per listener, from the scheduler's
# tracepoints (perf, system-wide): for each exec of a trusted copy of true(1) on a scratch tmpfs
# under `fsnotifyd guard --mount --events open,exec` with a trust-based exec policy (as
# bench/exec.sh runs it) and under bench/gofloor's exec mode (the guard's system calls in Go,
# no guard code: the floor of a guard in Go), bench/execsched.py splits the time from the
# exec'ing child blocking on its permission event (t0) to it running again (t3) into
#   reader wake      t0 to the listener's first thread switched in (t1)
#   to answer        t1 to the child's wake-up (t2: the listener's answer)
#   child to CPU     t2 to the child switched in (t3): 0.6 us when the answer's wake-up
#                    preempts the listener, about 2 us when the listener runs on to its next
#                    read first
# and reports how often the child waited for the listener's tail, medians and means, and by
# the exec's place in its burst (the first exec after an idle gap wakes the Go runtime's sysmon).
# Two patterns: EXECS execs back to back, and EXECS/100 bursts of 100, GAP seconds apart (the
# gaps of bench/exec.sh's interleaved blocks). bench/execcpu.sh's W2W=1 times the listener's
# own read-to-answer from its system calls, against the C listener; this is the exec's side,
# the whole wait, against the Go floor, and the place in a burst.
# Run as root: bash bench/execsched.sh [EXECS] [GAP]
set -euo pipefail
cd "$(dirname "$0")/.."
EXECS=${1:-2000}
GAP=${2:-0.6}
command -v perf > /dev/null || apt-get install -y -qq linux-perf > /dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
cc -O2 -o "$T/execmix" bench/execmix.c
go build -o "$T/fsnotifyd" ./cmd/fsnotifyd
go build -o "$T/gofloor" ./bench/gofloor
cp bench/execsched.py "$T/"
printf 'allow exec ** trusted=yes\ndeny exec **\n' > "$T/exec.rules"
export T EXECS GAP
unshare -m bash -s <<'INNER'
set -euo pipefail
mount --make-rprivate /
mkdir -p "$T/mnt" && mount -t tmpfs tmpfs "$T/mnt" && cp /usr/bin/true "$T/mnt/tool"
echo "$T/mnt/tool $(stat -c %s "$T/mnt/tool") $(sha256sum "$T/mnt/tool" | cut -d' ' -f1)" > "$T/tool.trust"
sleep 3.2 # the copy older than the hash cache's settle time (trust.DefaultSettle)
perf record -q -e sched:sched_switch -o "$T/warm.data" -- true > /dev/null 2>&1 || true # perf's first start reads the kernel's symbols
# trace NAME PATTERN CMD...: start listener CMD, warm it up, record the scheduler while the
# pattern's execs run, and report.
trace() {
	local name=$1 pattern=$2; shift 2
	: > "$T/l.log"
	"$@" > "$T/l.log" 2>&1 & local pid=$!
	for _ in $(seq 1000); do grep -q "ready\|Watches established" "$T/l.log" && break; sleep 0.01; done
	"$T/execmix" 1 100 "$T/mnt/tool" "$T/mnt/tool" > /dev/null
	perf record -q -a -m 32M -e sched:sched_switch,sched:sched_wakeup -o "$T/s.data" 2> /dev/null & local rec=$!
	sleep 0.5
	if [ "$pattern" = bursts ]; then
		for _ in $(seq $((EXECS / 100))); do "$T/execmix" 1 100 /usr/bin/true "$T/mnt/tool" > /dev/null; sleep "$GAP"; done
	else
		"$T/execmix" 1 "$EXECS" /usr/bin/true "$T/mnt/tool" > /dev/null
	fi
	sleep 0.2
	ls "/proc/$pid/task" > "$T/tids"
	kill -INT "$rec"; wait "$rec" 2> /dev/null || true
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
	perf script --ns -i "$T/s.data" -F time,cpu,event,trace 2> /dev/null | python3 "$T/execsched.py" "$T/tids" "$name ($pattern)"
}
echo "execsched: $EXECS execs per listener and pattern, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for pattern in back-to-back bursts; do
	trace gofloor "$pattern" "$T/gofloor" "$T/mnt" exec "$T/tool.trust"
	trace guard "$pattern" "$T/fsnotifyd" guard --mount --events open,exec --policy "$T/exec.rules" --trust "$T/tool.trust" --no-package-trust "$T/mnt"
done
INNER
