#!/usr/bin/env python3
"""execstats.py NAME... < execmix output: bench/exec.sh's statistics of interleaved execs.

Input: bench/execmix.c's lines "CYCLE BLOCK TARGET N US", TARGET naming NAME[TARGET], -1 the
no-listener target; one NAME must be "fapd", the reference. Every listener block has a
no-listener block right before and right after it; the block's mean time per exec less the mean
of those two blocks' means is that listener's added time in that cycle (every exec counts: a
listener's slow tail is in its mean). Per listener the figure is the median of those added times
over the cycles (a block hit by a burst of load elsewhere moves it little), and beside it their
mean. Ratios are of those figures, and a bootstrap over cycles (resampling whole cycles, which
keeps each block with its neighbours) gives the 5th-95th percentile range of each median ratio:
when it is wide the run could not tell; when either median, or execref's (the smallest
effect measured), is not positive the ratio is n/a (the machine's noise is larger than the
effect). The cycles' first and second halves are also given
separately: a figure that moved between them moved during the run. Beside each added time: the
added time of the block's first execs (the listener woken after a pause) and of the rest.

Output lines, "KEY VALUE ...", read by bench/exec.sh.
"""
import random
import statistics
import sys


def main():
    names = sys.argv[1:]
    if "fapd" not in names:
        sys.exit("execstats: need the target fapd")
    blocks = {}  # block -> (cycle, target, [us])
    for line in sys.stdin:
        f = line.split()
        if len(f) != 5:
            continue
        c, blk, t = int(f[0]), int(f[1]), int(f[2])
        blocks.setdefault(blk, (c, names[t] if t >= 0 else None, []))[2].append(float(f[4]))
    added, head, rest, base = {}, {}, {}, []  # (cycle, name) -> us
    for blk, (c, n, v) in blocks.items():
        if n is None:
            base.append(statistics.fmean(v))
            continue
        around = [blocks[b][2] for b in (blk - 1, blk + 1) if b in blocks and blocks[b][1] is None]
        if len(around) != 2:
            continue
        nb = statistics.fmean(statistics.fmean(a) for a in around)
        added[c, n] = statistics.fmean(v) - nb
        head[c, n] = statistics.fmean(v[:2]) - nb
        rest[c, n] = statistics.fmean(v[2:] or v) - nb
    cycles = sorted({c for c, _ in added})
    cycles = [c for c in cycles if all((c, n) in added for n in names)]
    if not cycles:
        sys.exit("execstats: no complete cycle")
    listeners = names
    headm = {n: statistics.median(head[c, n] for c in cycles) for n in names}
    restm = {n: statistics.median(rest[c, n] for c in cycles) for n in names}
    added = {n: [added[c, n] for c in cycles] for n in names}
    print("cycles %d" % len(cycles))
    print("execs %d" % sum(len(v) for c, n, v in blocks.values() if n == names[0] and c in set(cycles)))
    print("none %.1f" % statistics.median(base))
    med = {n: statistics.median(v) for n, v in added.items()}
    avg = {n: statistics.fmean(v) for n, v in added.items()}
    for n in listeners:
        print("added %s %.1f mean %.1f nonpositive %d first2 %.1f rest %.1f" % (
            n, med[n], avg[n], sum(1 for x in added[n] if x <= 0), headm[n], restm[n]))
    rnd = random.Random(1)  # a fixed seed: the same input gives the same range
    idx = range(len(cycles))
    picks = [[rnd.choice(idx) for _ in idx] for _ in range(1000)]
    half = len(cycles) // 2

    def ratio(key, num, den):
        """KEY MEDIAN-RATIO p5 X p95 Y halves A B: median(added num) / median(added den)."""
        def r(sel):
            d = statistics.median(added[den][i] for i in sel)
            return statistics.median(added[num][i] for i in sel) / d if d > 0 else float("nan")
        if med[den] <= 0 or med[num] <= 0 or med.get("execref", 1) <= 0:
            # An exec under a listener is not faster than one without on a machine quiet
            # enough to measure this: a non-positive median added time (the C allow-all
            # responder's included, the smallest effect here) is the machine's noise.
            print("%s n/a" % key)
            return
        b = sorted(x for x in (r(p) for p in picks) if x == x)
        lo, hi = (b[int(0.05 * len(b))], b[int(0.95 * len(b)) - 1]) if b else (float("nan"),) * 2
        print("%s %.3f p5 %.3f p95 %.3f halves %.3f %.3f" % (
            key, med[num] / med[den], lo, hi, r(range(half)), r(range(half, len(cycles)))))

    ratio("ratio(added)", "guard", "fapd")
    ratio("floor", "execref", "fapd")
    if "execcalls" in added:
        ratio("floor(calls)", "execcalls", "fapd")
        ratio("guard/floor(calls)", "guard", "execcalls")
    if "gofloor" in added:
        ratio("floor(go)", "gofloor", "fapd")
        ratio("guard/floor(go)", "guard", "gofloor")
    print("ratio(mean) %s" % ("%.3f" % (avg["guard"] / avg["fapd"]) if avg["fapd"] > 0 and avg["guard"] > 0 and avg.get("execref", 1) > 0 else "n/a"))
    if "guardref" in added:
        ratio("ratio(added,ref)", "guardref", "fapd")
        ratio("tree/ref(added)", "guard", "guardref")

if __name__ == "__main__":
    main()
