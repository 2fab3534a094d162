"""bench/execsched.sh's analysis: perf script's sched_switch and sched_wakeup lines on standard
input (time, cpu, event, trace), the listener's thread ids in the file named first, a label
second. An exec is the child of execmix (comm execmix, not the parent: the pid that switches
out most) switching out in state D (its permission event; execmix's own vfork wait is the
parent's) while the listener is switched in next or soon after; see execsched.sh."""
import collections
import re
import statistics
import sys

tids = set(int(x) for x in open(sys.argv[1]).read().split())
label = sys.argv[2]
rx = re.compile(r'\[(\d+)\]\s+([\d.]+): sched:(\w+): (.*)')
ev = []
for line in sys.stdin:
    m = rx.search(line)
    if m:
        ev.append((float(m.group(2)) * 1e6, m.group(3), dict(re.findall(r'(\w+)=(\S+)', m.group(4)))))
parent = collections.Counter(kv['prev_pid'] for _, k, kv in ev
                             if k == 'sched_switch' and kv['prev_comm'] == 'execmix').most_common(1)[0][0]
seen, cur, rows = set(), None, []
tail_waits = collections.Counter()
for t, k, kv in ev:
    if k == 'sched_switch':
        prev, nxt = kv['prev_pid'], int(kv['next_pid'])
        if kv['prev_comm'] == 'execmix' and prev != parent and kv['prev_state'].startswith('D') and prev not in seen:
            seen.add(prev)
            cur = {'pid': int(prev), 't0': t}
        if cur is None:
            continue
        if nxt in tids and 't1' not in cur:
            cur['t1'] = t
        if nxt == cur['pid'] and 't2' in cur:
            if 't1' in cur:
                rows.append((cur['t0'], cur['t1'] - cur['t0'], cur['t2'] - cur['t1'], t - cur['t2'], t - cur['t0']))
                if int(prev) in tids:
                    tail_waits['listener preempted' if kv['prev_state'].startswith('R') else 'listener ran to its next wait'] += 1
            cur = None
    elif k == 'sched_wakeup' and cur is not None and int(kv['pid']) == cur['pid'] and 't2' not in cur:
        cur['t2'] = t
if not rows:
    sys.exit(f"{label}: no exec found in the trace")
print(f"{label}: {len(rows)} execs; the answer's wake-up: " +
      ", ".join(f"{k} {v}" for k, v in tail_waits.most_common()))
for i, name in enumerate(('reader wake', 'to answer', 'child to CPU', 'total'), 1):
    v = [r[i] for r in rows]
    print(f"  {name:13s} median {statistics.median(v):8.2f} us  mean {statistics.mean(v):8.2f} us")
# By the exec's place in its burst: a gap of more than 5 ms starts one.
by, last, i = collections.defaultdict(list), -1e18, 0
for r in rows:
    i = 0 if r[0] - last > 5000 else i + 1
    last = r[0]
    by['first' if i == 0 else '2-10' if i < 10 else '11+'].append(r[4])
print("  total by place in the burst: " + "; ".join(
    f"{b} median {statistics.median(by[b]):.2f} us (n {len(by[b])})" for b in ('first', '2-10', '11+') if by[b]))
