#!/usr/bin/env bash
# Trust-based exec allowlisting, side by side in one run against fapolicyd 1.1.7 (Debian's), on
# a scratch tmpfs (fapolicyd's watch_fs: tmpfs), everything in a private mount namespace (the
# recipe of bench/fapolicyd.sh). tmpfs, not ramfs: a write through a mapping moves no time on
# ramfs, so the guard caches no digest there and hashes at every exec (docs/trust.md, "The
# hash cache"; until 2026-12-06 this ran on ramfs):
#   exec cost: EXECS runs per round of a small trusted binary (a copy of true(1) on the tmpfs,
#   listed in a trust file by its size and sha256) by bench/execmix.c, under
#     (a) no listener,
#     (b) `fsnotifyd guard --mount --events open,exec` with the rules
#           allow exec ** trusted=yes / deny exec **   (default allow for opens)
#         and --trust FILE --no-package-trust,
#     (c) fapolicyd, enforcing, trust = file, integrity = sha256, with the equivalent rules
#           allow perm=execute all : trust=1 / deny perm=execute all : all / allow perm=open all : all
#     (d) bench/execref.c, a C allow-all responder for the same two permission events on the
#         same mount (read, answer, close: the floor of any listener that answers both),
#     (e) bench/execref.c's calls mode: in C, the system calls the guard makes per exec and
#         nothing else (the exec permission event only, its descriptor's statx, the readlink
#         of its path and the statx that checks it, the trust hash cache's fstat; the trust
#         file's entry compared by path and size): the floor of a listener that decides what
#         the guard decides the way it decides it,
#     (f) bench/gofloor's exec mode: (e)'s calls in Go, through the guard's own wrappers
#         (internal/sys) and its way of waiting (a blocking read(2) on a locked thread, the Go
#         runtime's system call entry and exit around it): the floor of any guard written in
#         Go, before any of its own code,
#   Each listener (and (a): nothing marks it) runs for the whole measurement in a mount
#   namespace of its own, on its own tmpfs (a mount mark sees only its mount), and one execmix
#   process runs every exec, reaching each tmpfs through /proc/PID/root: a round is
#   EXECS/BURST cycles (BURST: env, default 100), a cycle one block of BURST execs under each
#   listener in turn (the order balanced: execmix.c's Williams design), each block between two blocks with no
#   listener. A listener's added time in a cycle is its block's mean time per exec less the
#   mean of the two no-listener blocks around it (every exec counts: a slow tail too). The
#   figure is the ratio of the medians over all cycles, median(b-a)/median(c-a) (goal <= 0.5),
#   printed with a 90% bootstrap range over cycles and its value in each half of the run; the
#   floor is median(d-a)/median(c-a), how much of fapolicyd's added time any listener answering
#   both events pays anyway (kernel, wake-ups); floor(calls) is median(e-a)/median(c-a), and
#   guard/floor(calls) what the guard's own code adds to its calls; floor(go) is
#   median(f-a)/median(c-a), and guard/floor(go) what the guard adds to a Go listener of its
#   calls. The ratio of the means is printed beside it.
#   execstats.py computes them (its doc says how); EXECS_OUT=FILE keeps every exec's time.
#   (History: until 2026-12-05 04:00 each listener ran once per round and the figure was the
#   median of the rounds' ratios; until 10:00 the same day the blocks were run by a new
#   execloop process each, through nsenter, with a no-listener block only before and after
#   each cycle's listener blocks, BLOCKS=10 blocks a round: h8-exec's subsection of
#   docs/design/performance.md says why the figure moved between runs.)
#   startup: time from start to "Watches established." for (b) with the machine's package
#   database (dpkg) as its trust source, against fapolicyd's time to "Starting to listen for
#   events" with a trust file of the same paths (every file dpkg's md5sums list that exists,
#   with its size; fapolicyd 1.1.7 on Debian has no dpkg backend, and with integrity = none
#   at load it reads no file's content, so the sha256 column there is a placeholder).
#   Also (b) with that same trust file, so both read the same input.
#   With REF=rev (a git revision), (b) is also run with fsnotifyd built from rev, as one more
#   resident listener in the same cycles, and the summary gives both ratios and guard/guard(rev)
#   of the median added time: a same-run A/B of a change.
# Needs fapolicyd installed and masked (see bench/fapolicyd.sh). Run as root:
#   [REF=rev] [BURST=n] [EXECS_OUT=file] bash bench/exec.sh [EXECS] [ROUNDS] [STARTUP_ROUNDS]
# (EXECS per listener per round; as many again run with no listener.)
# (fapolicyd 1.1.7 takes minutes to load a trust file of ~90,000 entries: STARTUP_ROUNDS
# defaults to 1.) When fapolicyd's median added time is not positive (the machine's noise is
# larger than the effect) the ratio is n/a.
set -euo pipefail
cd "$(dirname "$0")/.."
EXECS=${1:-10000}
ROUNDS=${2:-3}
STARTUP_ROUNDS=${3:-1}
BURST=${BURST:-100} # execs per listener in a block: see the exec rounds below
CYCLES=$(( (EXECS + BURST - 1) / BURST ))
command -v fapolicyd > /dev/null || { echo "fapolicyd is not installed (see bench/fapolicyd.sh)" >&2; exit 1; }
[ "$(systemctl is-enabled fapolicyd 2>/dev/null || true)" = masked ] || { echo "mask fapolicyd first: systemctl mask fapolicyd" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
cc -O2 -o "$T/execmix" bench/execmix.c
cp bench/execstats.py "$T/"
cc -O2 -o "$T/execref" bench/execref.c
go build -o "$T/fsnotifyd" ./cmd/fsnotifyd
go build -o "$T/gofloor" ./bench/gofloor
REF=${REF:-}
if [ -n "$REF" ]; then
	mkdir "$T/refsrc"
	git archive "$REF" | tar -x -C "$T/refsrc"
	(cd "$T/refsrc" && go build -o "$T/fsnotifyd.ref" ./cmd/fsnotifyd)
	echo "REF=$REF ($(git rev-parse --short "$REF")) vs tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty))" >&2
fi

# The trust file of the machine's packages, for the startup comparison: PATH SIZE SHA256.
python3 - "$T/pkgs.trust" <<'PY'
import glob, os, sys
seen = set()
with open(sys.argv[1], "w") as out:
    for f in glob.glob("/var/lib/dpkg/info/*.md5sums"):
        for line in open(f, errors="replace"):
            parts = line.rstrip("\n").split("  ", 1)
            if len(parts) != 2:
                continue
            md5, rel = parts
            p = os.path.realpath("/" + rel)
            if p in seen or any(c.isspace() for c in p) or not os.path.isfile(p):
                continue
            seen.add(p)
            out.write("%s %d %s\n" % (p, os.path.getsize(p), (md5 * 2)[:64]))
PY
echo "package trust file: $(wc -l < "$T/pkgs.trust") entries" >&2

mkdir -p "$T/etc" "$T/lib" "$T/mnt" "$T/run"
cp -a /etc/fapolicyd/. "$T/etc/" && rm -f "$T/etc/rules.d/"* "$T/etc/trust.d/"*
printf 'allow perm=execute all : trust=1\ndeny perm=execute all : all\nallow perm=open all : all\n' > "$T/etc/rules.d/10-exec.rules"
{ echo '## generated'; cat "$T/etc/rules.d/10-exec.rules"; } > "$T/etc/compiled.rules"
chown -R fapolicyd:fapolicyd "$T/lib"
sed -i -E \
	-e 's/^permissive *=.*/permissive = 0/' -e 's/^uid *=.*/uid = 0/' -e 's/^gid *=.*/gid = 0/' \
	-e 's/^trust *=.*/trust = file/' -e 's/^watch_fs *=.*/watch_fs = tmpfs/' -e 's/^integrity *=.*/integrity = sha256/' \
	-e 's/^allow_filesystem_mark *=.*/allow_filesystem_mark = 0/' "$T/etc/fapolicyd.conf"
for kv in "permissive = 0" "uid = 0" "gid = 0" "trust = file" "watch_fs = tmpfs" "integrity = sha256" "allow_filesystem_mark = 0"; do
	grep -qx "$kv" "$T/etc/fapolicyd.conf" || { echo "fapolicyd.conf: could not set $kv" >&2; exit 1; }
done
printf 'allow exec ** trusted=yes\ndeny exec **\n' > "$T/exec.rules"

export T EXECS ROUNDS STARTUP_ROUNDS REF BURST CYCLES EXECS_OUT
unshare -m bash -s <<'INNER'
set -euo pipefail
mount --make-rprivate /
mount --bind "$T/etc" /etc/fapolicyd
mount --bind "$T/lib" /var/lib/fapolicyd
mount -t tmpfs tmpfs /run && mkdir /run/fapolicyd
mount -t tmpfs tmpfs /var/log
mount -t tmpfs tmpfs "$T/mnt" && cp /usr/bin/true "$T/mnt/tool"
size=$(stat -c %s "$T/mnt/tool") sum=$(sha256sum "$T/mnt/tool" | cut -d' ' -f1)
echo "$T/mnt/tool $size $sum" > "$T/tool.trust"
cp "$T/tool.trust" /etc/fapolicyd/fapolicyd.trust
cur=
resident=() # the listeners of the exec rounds, each in its own mount namespace
trap 'for p in "${resident[@]}" $cur; do kill -INT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

# start NAME READY-PATTERN CMD...: start CMD and wait for READY-PATTERN in its output; sets
# took to the seconds that took.
start() {
	local name=$1 ready=$2; shift 2
	local t0; t0=$(date +%s.%N)
	: > "$T/$name.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$@" > "$T/$name.log" 2>&1 & cur=$!
	for _ in $(seq 6000); do grep -q "$ready" "$T/$name.log" 2>/dev/null && break; sleep 0.01; done
	grep -q "$ready" "$T/$name.log" || { echo "$name not ready: $*" >&2; tail -20 "$T/$name.log" >&2; exit 1; }
	took=$(echo "$(date +%s.%N) - $t0" | bc)
}
stop() { kill -INT "$cur"; wait "$cur" 2>/dev/null || true; cur=; }
# cpu PID: the run time so far of every thread of PID, ns (schedstat).
cpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'; }
# switches PID: the context switches so far of every thread of PID, voluntary and not.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { printf "%d\n", s }'; }
# resident NAME READY CMD...: start CMD in a mount namespace of its own, on its own tmpfs at
# $T/mnt holding a copy of the tool (same content: the same trust entry), and keep it running
# for every round. A mount mark is on one mount of one namespace, so each listener sees only
# the execs run in its namespace, and the runs of all of them can be interleaved in short
# blocks: load that comes and goes on a shared machine hits each alike.
resident() {
	local name=$1 ready=$2; shift 2
	start "$name" "$ready" unshare -m sh -c 'mount -t tmpfs tmpfs "$0/mnt" && cp "$0/tool" "$0/mnt/tool" && exec "$@"' "$T" "$@"
	resident+=("$cur"); eval "pid_$name=$cur"; cur=
}
guard=("$T/fsnotifyd" guard --mount --events open,exec --policy "$T/exec.rules")
cp "$T/mnt/tool" "$T/tool" && touch -r "$T/mnt/tool" "$T/tool"
names=(guard fapd execref execcalls gofloor)
resident guard "Watches established" "${guard[@]}" --trust "$T/tool.trust" --no-package-trust "$T/mnt"
if [ -n "$REF" ]; then
	resident guardref "Watches established" "$T/fsnotifyd.ref" "${guard[@]:1}" --trust "$T/tool.trust" --no-package-trust "$T/mnt"
	names+=(guardref)
fi
rm -rf /var/lib/fapolicyd/*
resident fapd "Starting to listen for events" fapolicyd --debug-deny
resident execref ready "$T/execref" "$T/mnt"
resident execcalls ready "$T/execref" "$T/mnt" calls "$T/tool.trust"
resident gofloor ready "$T/gofloor" "$T/mnt" exec "$T/tool.trust"
# (a) the same way: a namespace of its own with its own tmpfs, and nothing marking it, so that
# every target is reached alike (/proc/PID/root, a private mount namespace, a fresh tmpfs).
resident none ready sh -c 'echo ready; exec sleep infinity'
targets=()
for n in "${names[@]}"; do targets+=("/proc/$(eval echo "\$pid_$n")/root$T/mnt/tool"); done
"$T/execmix" 1 100 "/proc/$pid_none/root$T/mnt/tool" "${targets[@]}" > /dev/null # warm up (and past the hash cache's settle time)
sleep 3
declare -A cpu0 cs0
for n in "${names[@]}"; do cpu0[$n]=$(cpu "$(eval echo "\$pid_$n")"); cs0[$n]=$(switches "$(eval echo "\$pid_$n")"); done
# Each round is CYCLES cycles of one block of BURST execs per listener (in an order that gives
# each listener each place and each predecessor alike: execmix.c), each between two blocks of BURST execs with none, all run by
# one execmix process through the targets' /proc/PID/root. execstats.py takes each listener
# block's mean time per exec less the mean of the two no-listener blocks around it: the
# listener's added time in that cycle.
: > "$T/execs"
for r in $(seq "$ROUNDS"); do
	"$T/execmix" "$CYCLES" "$BURST" "/proc/$pid_none/root$T/mnt/tool" "${targets[@]}" |
		awk -v off="$(( (r - 1) * CYCLES ))" -v boff="$(( (r - 1) * (2 * CYCLES * ${#names[@]} + 1) ))" '{ $1 += off; $2 += boff; print }' > "$T/round.execs" ||
		{ for n in "${names[@]}" none; do kill -0 "$(eval echo "\$pid_$n")" 2>/dev/null || { echo "exec round $r: $n has exited; its log ends:" >&2; tail -5 "$T/$n.log" >&2; }; done; exit 1; }
	cat "$T/round.execs" >> "$T/execs"
	python3 "$T/execstats.py" "${names[@]}" < "$T/round.execs" | awk -v r="$r" '
		{ v[$1] = $2 } $1 == "added" { a = a sprintf("  added %s %s", $2, $3) }
		END { printf "exec round %d: %d cycles; median us/exec: none %s%s  ratio(added) %s  floor %s%s\n", r, v["cycles"], v["none"], a, v["ratio(added)"], v["floor"], ("ratio(added,ref)" in v ? "  ratio(added,ref) " v["ratio(added,ref)"] : "") }' | tee -a "$T/rounds"
done
declare -A cpusum cssum
for n in "${names[@]}"; do
	cpusum[$n]=$(( $(cpu "$(eval echo "\$pid_$n")") - cpu0[$n] ))
	cssum[$n]=$(( $(switches "$(eval echo "\$pid_$n")") - cs0[$n] ))
done
cpuper() { awk -v s="${cpusum[$1]}" -v n="$((CYCLES * BURST * ROUNDS))" 'BEGIN { printf "%.1f", s / n / 1000 }'; }
csper() { awk -v s="${cssum[$1]}" -v n="$((CYCLES * BURST * ROUNDS))" 'BEGIN { printf "%.2f", s / n }'; }
# Over every cycle of every round: each listener's median added time; the figure is the ratio
# of the medians (a cycle's own ratio divides two noisy differences, one of which may be near
# zero or negative on a busy machine; the medians of many paired differences are not), with a
# bootstrap range over cycles and the two halves of the run beside it.
python3 "$T/execstats.py" "${names[@]}" < "$T/execs" > "$T/overall"
cat "$T/overall"
[ -z "${EXECS_OUT:-}" ] || cp "$T/execs" "$EXECS_OUT" # every exec's time, for another look
ov() { awk -v f="$1" '$1 == f { print $2 }' "$T/overall"; }
ovrange() { awk -v f="$1" '$1 == f { r = NF >= 6 ? $4 "-" $6 : "n/a" } END { printf "%s", r == "" ? "n/a" : r }' "$T/overall"; }
cb=$(cpuper guard) cc=$(cpuper fapd) cd=$(cpuper execref)
echo "listener CPU per exec (all its threads, schedstat), us: guard $cb fapolicyd $cc execref $cd execref(calls) $(cpuper execcalls) gofloor(exec) $(cpuper gofloor)$([ -n "$REF" ] && echo " guard(ref) $(cpuper guardref)")"
echo "listener context switches per exec (all its threads): guard $(csper guard) fapolicyd $(csper fapd) execref $(csper execref) execref(calls) $(csper execcalls) gofloor(exec) $(csper gofloor)$([ -n "$REF" ] && echo " guard(ref) $(csper guardref)")"
rcpu=$(awk -v a="$cb" -v b="$cc" 'BEGIN { printf "%.3f", a / b }')
kill -TERM "$pid_none" # a background job's SIGINT is ignored: sleep would not end on it
for p in "${resident[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
cp "$T/fapd.log" "$T/fapd-exec.log"
resident=()
for r in $(seq "$STARTUP_ROUNDS"); do
	start guardpkg "Watches established" "${guard[@]}" "$T/mnt"; sg=$took; stop
	start guardfile "Watches established" "${guard[@]}" --trust "$T/pkgs.trust" --no-package-trust "$T/mnt"; sf=$took; stop
	cp "$T/pkgs.trust" /etc/fapolicyd/fapolicyd.trust && sed -i 's/^integrity *=.*/integrity = none/' /etc/fapolicyd/fapolicyd.conf
	rm -rf /var/lib/fapolicyd/*
	start fapdpkg "Starting to listen for events" fapolicyd --debug-deny; sp=$took; stop
	cp "$T/tool.trust" /etc/fapolicyd/fapolicyd.trust && sed -i 's/^integrity *=.*/integrity = sha256/' /etc/fapolicyd/fapolicyd.conf
	awk -v sg="$sg" -v sf="$sf" -v sp="$sp" 'BEGIN {
		printf "startup  guard(dpkg) %.2fs  guard(file) %.2fs  fapolicyd(file) %.2fs  ratio(start) %.3f  ratio(start,file) %.3f\n", sg, sf, sp, sg/sp, sf/sp }' | tee -a "$T/rounds"
done
med() { awk -v f="$1" '{ for (i = 1; i < NF; i++) if ($i == f) print $(i+1) }' "$T/rounds" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR+1)/2)] }'; }
echo "over $(ov cycles) cycles of $BURST execs per target ($ROUNDS round(s) of $CYCLES): added time per exec guard/fapolicyd $(ov 'ratio(added)') (ratio of the medians, 90% bootstrap range $(ovrange 'ratio(added)'); goal <= 0.5; C allow-all floor $(ov floor); ratio of the means $(ov 'ratio(mean)'))," \
	"startup guard(dpkg)/fapolicyd(file) $(med 'ratio(start)') (goal <= 1), guard(file)/fapolicyd(file) $(med 'ratio(start,file)')"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.added "$(ov 'ratio(added)')" "<=0.5" \
	"guard trust-based exec policy / fapolicyd 1.1.7 (trust=file, integrity=sha256), added time per exec of a trusted binary, median over $(ov cycles) interleaved cycles of $BURST execs per target (90% bootstrap range $(ovrange 'ratio(added)'))"
if [ -n "$REF" ]; then
	echo "REF=$REF: added time per exec guard(ref)/fapolicyd $(ov 'ratio(added,ref)'), tree/ref $(ov 'tree/ref(added)'); listener CPU per exec guard(ref)/fapolicyd $(awk -v a="$(cpuper guardref)" -v b="$cc" 'BEGIN { printf "%.3f", a / b }')"
fi
echo "listener CPU per exec (all its threads, schedstat, every block) guard/fapolicyd $rcpu"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.cpu "$rcpu" "-" \
	"guard's CPU per exec (all its threads) / fapolicyd 1.1.7's, same execs"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.floor "$(ov floor)" "-" \
	"bench/execref.c (C allow-all responder for the same two events) / fapolicyd 1.1.7, added time per exec: what any listener answering both pays"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.floor-calls "$(ov 'floor(calls)')" "-" \
	"bench/execref.c calls (in C, the guard's system calls per exec and its trust check, nothing else) / fapolicyd 1.1.7, added time per exec"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.guard-over-calls "$(ov 'guard/floor(calls)')" "-" \
	"guard / bench/execref.c calls, added time per exec: what the guard's code adds to its system calls"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.floor-go "$(ov 'floor(go)')" "-" \
	"bench/gofloor exec (the guard's system calls per exec in Go, its wrappers, its blocking read: no guard code) / fapolicyd 1.1.7, added time per exec: the floor of a guard in Go (90% bootstrap range $(ovrange 'floor(go)'))"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.guard-over-go "$(ov 'guard/floor(go)')" "-" \
	"guard / bench/gofloor exec, added time per exec: what the guard's code adds to a Go listener of its calls"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.startup "$(med 'ratio(start)')" "<=1" \
	"guard with the dpkg trust database, start to \"Watches established.\" / fapolicyd 1.1.7 with a trust file of the same paths, start to listening"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.startup-file "$(med 'ratio(start,file)')" "-" \
	"guard / fapolicyd 1.1.7, both reading the same trust file of the machine's package files, start to deciding"
grep -h -iE "allowed|denied" "$T/fapd-exec.log" 2>/dev/null | tail -4 | sed 's/^/fapolicyd (exec rounds): /' || true
INNER
