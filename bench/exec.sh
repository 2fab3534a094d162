#!/usr/bin/env bash
# Trust-based exec allowlisting, side by side in one run against fapolicyd 1.1.7 (Debian's), on
# a scratch ramfs that is fapolicyd's only watch_fs, everything in a private mount namespace
# (the recipe of bench/fapolicyd.sh):
#   exec cost: EXECS runs of a small trusted binary (a copy of true(1) on the ramfs, listed in a
#   trust file by its size and sha256) by bench/execloop.c, under
#     (a) no listener,
#     (b) `fsnotifyd guard --mount --events open,exec` with the rules
#           allow exec ** trusted=yes / deny exec **   (default allow for opens)
#         and --trust FILE --no-package-trust,
#     (c) fapolicyd, enforcing, trust = file, integrity = sha256, with the equivalent rules
#           allow perm=execute all : trust=1 / deny perm=execute all : all / allow perm=open all : all
#     (d) bench/execref.c, a C allow-all responder for the same two permission events on the
#         same mount (read, answer, close: the floor of any listener that answers both),
#   The figure is each listener's added time per exec, (b-a)/(c-a) (goal <= 0.5), per round;
#   the summary is the median over the rounds. The floor, (d-a)/(c-a), says how much of
#   fapolicyd's added time any listener answering both events pays anyway (kernel, wake-ups).
#   startup: time from start to "Watches established." for (b) with the machine's package
#   database (dpkg) as its trust source, against fapolicyd's time to "Starting to listen for
#   events" with a trust file of the same paths (every file dpkg's md5sums list that exists,
#   with its size; fapolicyd 1.1.7 on Debian has no dpkg backend, and with integrity = none
#   at load it reads no file's content, so the sha256 column there is a placeholder).
#   Also (b) with that same trust file, so both read the same input.
#   With REF=rev (a git revision), (b) is also run with fsnotifyd built from rev, in the same
#   rounds (the two guards in alternating order), and each round prints both ratios and
#   guard/guard(rev) of the added time: a same-run A/B of a change.
# Needs fapolicyd installed and masked (see bench/fapolicyd.sh). Run as root:
#   [REF=rev] bash bench/exec.sh [EXECS] [ROUNDS] [STARTUP_ROUNDS]
# (fapolicyd 1.1.7 takes minutes to load a trust file of ~90,000 entries: STARTUP_ROUNDS
# defaults to 1.) A round whose fapolicyd run added no time (the machine's noise is larger than
# the effect) gives no ratio and is left out of the median.
set -euo pipefail
cd "$(dirname "$0")/.."
EXECS=${1:-10000}
ROUNDS=${2:-3}
STARTUP_ROUNDS=${3:-1}
command -v fapolicyd > /dev/null || { echo "fapolicyd is not installed (see bench/fapolicyd.sh)" >&2; exit 1; }
[ "$(systemctl is-enabled fapolicyd 2>/dev/null || true)" = masked ] || { echo "mask fapolicyd first: systemctl mask fapolicyd" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
cc -O2 -o "$T/execloop" bench/execloop.c
cc -O2 -o "$T/execref" bench/execref.c
go build -o "$T/fsnotifyd" ./cmd/fsnotifyd
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
	-e 's/^trust *=.*/trust = file/' -e 's/^watch_fs *=.*/watch_fs = ramfs/' -e 's/^integrity *=.*/integrity = sha256/' \
	-e 's/^allow_filesystem_mark *=.*/allow_filesystem_mark = 0/' "$T/etc/fapolicyd.conf"
for kv in "permissive = 0" "uid = 0" "gid = 0" "trust = file" "watch_fs = ramfs" "integrity = sha256" "allow_filesystem_mark = 0"; do
	grep -qx "$kv" "$T/etc/fapolicyd.conf" || { echo "fapolicyd.conf: could not set $kv" >&2; exit 1; }
done
printf 'allow exec ** trusted=yes\ndeny exec **\n' > "$T/exec.rules"

export T EXECS ROUNDS STARTUP_ROUNDS REF
unshare -m bash -s <<'INNER'
set -euo pipefail
mount --make-rprivate /
mount --bind "$T/etc" /etc/fapolicyd
mount --bind "$T/lib" /var/lib/fapolicyd
mount -t tmpfs tmpfs /run && mkdir /run/fapolicyd
mount -t tmpfs tmpfs /var/log
mount -t ramfs ramfs "$T/mnt" && cp /usr/bin/true "$T/mnt/tool"
size=$(stat -c %s "$T/mnt/tool") sum=$(sha256sum "$T/mnt/tool" | cut -d' ' -f1)
echo "$T/mnt/tool $size $sum" > "$T/tool.trust"
cp "$T/tool.trust" /etc/fapolicyd/fapolicyd.trust
cur=
trap 'if [ -n "$cur" ]; then kill -INT "$cur" 2>/dev/null || true; fi; wait 2>/dev/null || true' EXIT

execs() { "$T/execloop" "$EXECS" "$T/mnt/tool" | awk '{for(i=1;i<=NF;i++) if($i=="us_per_exec") print $(i+1)}'; }
# start NAME READY-PATTERN CMD...: start CMD and wait for READY-PATTERN in its output; sets
# took to the seconds that took.
start() {
	local name=$1 ready=$2; shift 2
	local t0; t0=$(date +%s.%N)
	"$@" > "$T/$name.log" 2>&1 & cur=$!
	for _ in $(seq 6000); do grep -q "$ready" "$T/$name.log" 2>/dev/null && break; sleep 0.01; done
	grep -q "$ready" "$T/$name.log" || { echo "$name not ready: $*" >&2; tail -20 "$T/$name.log" >&2; exit 1; }
	took=$(echo "$(date +%s.%N) - $t0" | bc)
}
stop() { kill -INT "$cur"; wait "$cur" 2>/dev/null || true; cur=; }
# cpu: the run time so far of every thread of the running listener, ns (schedstat).
cpu() { cat /proc/"$cur"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'; }
# measure VAR CPUVAR: the execs' time per exec into VAR, the listener's CPU per exec (us) into CPUVAR.
measure() {
	local c0 c1 t; c0=$(cpu); t=$(execs); c1=$(cpu)
	printf -v "$1" %s "$t"; printf -v "$2" %s "$(awk -v a="$c0" -v b="$c1" -v n="$EXECS" 'BEGIN { printf "%.1f", (b - a) / n / 1000 }')"
}
guard=("$T/fsnotifyd" guard --mount --events open,exec --policy "$T/exec.rules")
for r in $(seq "$ROUNDS"); do
	a=$(execs)
	b0= cb0=
	if [ -n "$REF" ] && [ $((r % 2)) = 0 ]; then
		start guardref "Watches established" "$T/fsnotifyd.ref" "${guard[@]:1}" --trust "$T/tool.trust" --no-package-trust "$T/mnt"
		measure b0 cb0; stop
	fi
	start guard "Watches established" "${guard[@]}" --trust "$T/tool.trust" --no-package-trust "$T/mnt"
	measure b cb; stop
	if [ -n "$REF" ] && [ -z "$b0" ]; then
		start guardref "Watches established" "$T/fsnotifyd.ref" "${guard[@]:1}" --trust "$T/tool.trust" --no-package-trust "$T/mnt"
		measure b0 cb0; stop
	fi
	rm -rf /var/lib/fapolicyd/*
	start fapd "Starting to listen for events" fapolicyd --debug-deny
	measure c cc; stop
	start execref ready "$T/execref" "$T/mnt"
	measure d cd; stop
	a2=$(execs) # none again: the drift of this round
	awk -v a="$a" -v a2="$a2" -v b="$b" -v b0="$b0" -v c="$c" -v d="$d" -v cb="$cb" -v cb0="$cb0" -v cc="$cc" -v cd="$cd" 'BEGIN {
		n = (a + a2) / 2
		printf "exec  none %.1f us/exec (%.1f, %.1f)  guard %.1f  fapolicyd %.1f  execref %.1f  added guard %.1f fapolicyd %.1f execref %.1f", n, a, a2, b, c, d, b-n, c-n, d-n
		if (b0 != "") printf "  guard(ref) %.1f added %.1f", b0, b0-n
		if (c - n > 0) printf "  ratio(added) %.3f  floor %.3f", (b-n)/(c-n), (d-n)/(c-n)
		if (b0 != "" && c - n > 0) printf "  ratio(added,ref) %.3f", (b0-n)/(c-n)
		if (b0 != "" && b0 - n > 0) printf "  tree/ref(added) %.3f", (b-n)/(b0-n)
		printf "  cpu/exec us: guard %s fapolicyd %s execref %s", cb, cc, cd
		if (cb0 != "") printf " guard(ref) %s", cb0
		if (cc > 0) printf "  ratio(cpu) %.3f", cb/cc
		if (cb0 != "" && cc > 0) printf "  ratio(cpu,ref) %.3f", cb0/cc
		printf "\n" }' | tee -a "$T/rounds"
done
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
echo "median over $ROUNDS round(s): added time per exec guard/fapolicyd $(med 'ratio(added)') (goal <= 0.5; C allow-all floor $(med floor))," \
	"startup guard(dpkg)/fapolicyd(file) $(med 'ratio(start)') (goal <= 1), guard(file)/fapolicyd(file) $(med 'ratio(start,file)')"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.added "$(med 'ratio(added)')" "<=0.5" \
	"guard trust-based exec policy / fapolicyd 1.1.7 (trust=file, integrity=sha256), added time per exec of a trusted binary, $EXECS execs"
if [ -n "$REF" ]; then
	echo "REF=$REF: added time per exec guard(ref)/fapolicyd $(med 'ratio(added,ref)'), tree/ref $(med 'tree/ref(added)'); listener CPU per exec guard(ref)/fapolicyd $(med 'ratio(cpu,ref)') (medians over the rounds)"
fi
echo "listener CPU per exec (all its threads, schedstat) guard/fapolicyd $(med 'ratio(cpu)') (median)"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.cpu "$(med 'ratio(cpu)')" "-" \
	"guard's CPU per exec (all its threads) / fapolicyd 1.1.7's, same execs"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.floor "$(med floor)" "-" \
	"bench/execref.c (C allow-all responder for the same two events) / fapolicyd 1.1.7, added time per exec: what any listener answering both pays"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.startup "$(med 'ratio(start)')" "<=1" \
	"guard with the dpkg trust database, start to \"Watches established.\" / fapolicyd 1.1.7 with a trust file of the same paths, start to listening"
printf 'SUMMARY\t%s\t%s\t%s\t%s\n' exec.trust.startup-file "$(med 'ratio(start,file)')" "-" \
	"guard / fapolicyd 1.1.7, both reading the same trust file of the machine's package files, start to deciding"
grep -h -iE "allowed|denied" "$T/fapd.log" 2>/dev/null | tail -4 | sed 's/^/fapolicyd (last round): /' || true
INNER
