#!/usr/bin/env python3
"""Wake-up to answer, per permission event, from `perf script` of a listener recorded with
-e raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_switch (bench/execcpu.sh, W2W=1).

For each thread: a read(2) that returns (sys_exit of NR 0 with a positive return) is a
wake-up with events; the next write(2) that thread enters (sys_enter of NR 1) is the answer.
Prints the wake-to-write time's p10 / p50 / p90 in µs, how many answers, and how many writes
the thread was preempted at (a sched_switch away from it, prev_state R, after the write's
entry and before its next system call: the kernel preempts on the way out of the call, after
its exit is traced): the process it answered runs first.
Usage: perf script -i FILE | w2w.py LABEL
"""
import re
import sys

label = sys.argv[1] if len(sys.argv) > 1 else "listener"
ev = re.compile(r"^\s*\S.*?\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):\s+(.*)$")
woke = {}      # tid -> time of the read's return
inwrite = {}   # tid -> True from a write's entry to its next system call's
preempted_at_write = 0
w2w = []
for line in sys.stdin:
    m = ev.match(line)
    if not m:
        continue
    tid, t, name, rest = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
    if name == "raw_syscalls:sys_exit":
        nr, _, ret = rest.partition("=")
        nr = int(nr.split()[1])
        if nr == 0 and int(ret.strip()) > 0:
            woke[tid] = t
    elif name == "raw_syscalls:sys_enter":
        nr = int(rest.split()[1])
        inwrite.pop(tid, None)
        if nr == 1:
            inwrite[tid] = True
            if tid in woke:
                w2w.append((t - woke.pop(tid)) * 1e6)
    elif name == "sched:sched_switch":
        pm = re.search(r"prev_pid=(\d+) .*prev_state=(\S+)", rest)
        if pm and int(pm.group(1)) in inwrite and pm.group(2).startswith("R"):
            preempted_at_write += 1
if not w2w:
    print(f"{label}: no read-to-write pairs")
    sys.exit(0)
w2w.sort()
q = lambda p: w2w[min(len(w2w) - 1, int(p * len(w2w)))]
print(f"{label}: wake-to-write p10 {q(0.1):.1f} p50 {q(0.5):.1f} p90 {q(0.9):.1f} us over {len(w2w)} answers; preempted at the write {preempted_at_write} ({100.0 * preempted_at_write / len(w2w):.1f}%)")
