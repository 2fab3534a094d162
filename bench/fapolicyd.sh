#!/usr/bin/env bash
# A guard with a mount-wide mark and an allow-all rule, side by side in one run, against
# fapolicyd 1.1.7 (Debian's, permissive, `allow perm=any all : all`, trust=file), on a scratch
# ramfs that is fapolicyd's only watch_fs, everything in a private mount namespace (the recipe
# of shared/notes/peers.md):
#   (a) no listener, (b) fanref's C responder with a mount mark, (c) `fsnotifyd guard --mount
#   --allow '**' --events open --permissive` (embedded: its own fanotify group), (d) the
#   same guard through `fsnotifyd serve` (--daemon), (e) fapolicyd, (f) the floor of any relay
#   to a second process: bench/relayfloor.c's minimal C relay with the same mount mark, loop
#   mode (one thread polls the kernel and the socket, the daemon's shape) and (g) block mode
#   (waits for each answer);
# one and two load threads (fanref's load generator). Prints the per-open time ratio (c)/(e)
# (goal <= 0.75), and (c)/(b), (d)/(e), (e)/(b), (f)/(e), (g)/(e), (d)/(f): whether the
# daemon's goal (d)/(e) <= 1.0 is reachable by any relay on this machine, measured in one run.
# Needs fapolicyd installed and masked first (it must never run with its shipped deny-exec
# rules on the host): systemctl mask fapolicyd; apt-get install -y fapolicyd.
# Run as root: bash bench/fapolicyd.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
command -v fapolicyd > /dev/null || { echo "fapolicyd is not installed (see the header of $0)" >&2; exit 1; }
[ "$(systemctl is-enabled fapolicyd 2>/dev/null || true)" = masked ] || { echo "mask fapolicyd first: systemctl mask fapolicyd" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
cc -O2 -pthread -o "$T/fanref" "${FANREF_C:-bench/fanref.c}"
go build -o "$T/fsnotifyd" ./cmd/fsnotifyd
cc -O2 -pthread -o "$T/relayfloor-c" bench/relayfloor.c

# fapolicyd's configuration: allow all, permissive, trust from files only, ramfs only.
mkdir -p "$T/etc" "$T/lib" "$T/mnt" "$T/run"
cp -a /etc/fapolicyd/. "$T/etc/" && rm -f "$T/etc/rules.d/"*
echo 'allow perm=any all : all' > "$T/etc/rules.d/10-allow-all.rules"
printf '## generated\nallow perm=any all : all\n' > "$T/etc/compiled.rules"
chown -R fapolicyd:fapolicyd "$T/lib"
sed -i -E \
	-e 's/^permissive *=.*/permissive = 1/' -e 's/^uid *=.*/uid = 0/' -e 's/^gid *=.*/gid = 0/' \
	-e 's/^trust *=.*/trust = file/' -e 's/^watch_fs *=.*/watch_fs = ramfs/' -e 's/^integrity *=.*/integrity = none/' \
	-e 's/^q_size *=.*/q_size = 640/' -e 's/^allow_filesystem_mark *=.*/allow_filesystem_mark = 0/' \
	-e 's/^do_stat_report *=.*/do_stat_report = 1/' "$T/etc/fapolicyd.conf"
for kv in "permissive = 1" "uid = 0" "gid = 0" "trust = file" "watch_fs = ramfs" "integrity = none" "q_size = 640" \
	"allow_filesystem_mark = 0" "do_stat_report = 1"; do
	grep -qx "$kv" "$T/etc/fapolicyd.conf" || { echo "fapolicyd.conf: could not set $kv" >&2; exit 1; }
done

export T N ROUNDS
unshare -m bash -s <<'INNER'
set -euo pipefail
mount --make-rprivate /
mount --bind "$T/etc" /etc/fapolicyd
mount --bind "$T/lib" /var/lib/fapolicyd
mount -t tmpfs tmpfs /run && mkdir /run/fapolicyd
mount -t tmpfs tmpfs /var/log
mount -t ramfs ramfs "$T/mnt" && echo x > "$T/mnt/f"
pids=() cur=
trap 'for p in $cur "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

"$T/fsnotifyd" serve --socket "$T/run/d.sock" --log-level warn 2> "$T/daemon.log" & pids+=($!)
for _ in $(seq 100); do "$T/fsnotifyd" stats --socket "$T/run/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done

ops() { "$T/fanref" load "$T/mnt/f" "$N" "$1" | awk '{for(i=1;i<=NF;i++) if($i=="ops_per_s") print $(i+1)}'; }
# listen NAME READY-PATTERN CMD...: start CMD, wait for its READY-PATTERN in its output, run the
# load with 1 and 2 threads, stop it (SIGINT, as fapolicyd wants); sets r1_NAME and r2_NAME.
listen() {
	local name=$1 ready=$2; shift 2
	: > "$T/$name.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$@" > "$T/$name.log" 2>&1 & local pid=$!; cur=$pid
	for _ in $(seq 200); do grep -q "$ready" "$T/$name.log" 2>/dev/null && break; sleep 0.05; done
	grep -q "$ready" "$T/$name.log" || { echo "$name not ready: $*" >&2; tail -20 "$T/$name.log" >&2; kill -9 "$pid"; exit 1; }
	sleep 0.2
	eval "r1_$name=$(ops 1) r2_$name=$(ops 2)"
	kill -INT "$pid"; wait "$pid" 2>/dev/null || true; cur=
}
# Opens only: with `--events open,exec` and an allow-all policy the guard would ask the kernel
# for execs alone (an access allowed whatever it is goes unasked while another kind stays
# asked: docs/security.md, "Kinds of access no rule decides"), and time nothing here; a path
# rule to keep opens asked would add a readlink per open. The load makes no execs.
guard=("$T/fsnotifyd" guard --mount --allow '**' --events open --permissive)
for r in $(seq "$ROUNDS"); do
	r1_none=$(ops 1) r2_none=$(ops 2)
	listen fanref ready "$T/fanref" respond "$T/mnt" mount
	listen guard "Watches established" "${guard[@]}" "$T/mnt"
	listen guardd "Watches established" "${guard[@]}" --daemon="$T/run/d.sock" "$T/mnt"
	listen fapd "Starting to listen for events" fapolicyd --debug-deny
	listen cloop ready "$T/relayfloor-c" loop "$T/mnt" mount
	listen cblock ready "$T/relayfloor-c" block "$T/mnt" mount
	for t in 1 2; do
		eval "a=\$r${t}_none b=\$r${t}_fanref c=\$r${t}_guard d=\$r${t}_guardd e=\$r${t}_fapd f=\$r${t}_cloop g=\$r${t}_cblock"
		awk -v t="$t" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" -v f="$f" -v g="$g" 'BEGIN {
			printf "threads %d  none %.2f us  fanref %.2f us  guard %.2f us  guard --daemon %.2f us  fapolicyd %.2f us  crelay loop %.2f us  block %.2f us  c/b %.3f  d/e %.3f  e/b %.3f  f/e %.3f  g/e %.3f  d/f %.3f  ratio(c/e) %.3f\n",
				t, 1e6/a, 1e6/b, 1e6/c, 1e6/d, 1e6/e, 1e6/f, 1e6/g, b/c, e/d, b/e, e/f, e/g, f/d, e/c }'
	done | tee -a "$T/rounds"
done
median() { # median THREADS FIELD: the median of FIELD's values over the rounds
	grep "^threads $1 " "$T/rounds" | awk -v f="$2" '{ for (i = 1; i < NF; i++) if ($i == f) print $(i+1) }' |
		sort -n | awk '{ v[NR] = $1 } END { print v[int((NR+1)/2)] }'
}
for t in 1 2; do
	echo "median over $ROUNDS round(s), $t thread(s): guard/fapolicyd $(median $t 'ratio(c/e)') (goal <= 0.75)" \
		" guard/fanref $(median $t c/b)  guard --daemon/fapolicyd $(median $t d/e)  fapolicyd/fanref $(median $t e/b)" \
		" C relay (floor)/fapolicyd: loop $(median $t f/e) block $(median $t g/e)  guard --daemon/C relay loop $(median $t d/f)"
	printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "fapolicyd.guard.t$t" "$(median $t 'ratio(c/e)')" "<=0.75" \
		"guard --mount allow-all (embedded) / fapolicyd 1.1.7 allow-all, per-open time, $t load thread(s)"
	printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "fapolicyd.guard-daemon.t$t" "$(median $t d/e)" "<=1.0" \
		"guard --mount --daemon allow-all / fapolicyd 1.1.7, per-open time, $t load thread(s)"
	printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "fapolicyd.crelay-loop.t$t" "$(median $t f/e)" - \
		"minimal C relay to a second process (loop mode, mount mark) / fapolicyd 1.1.7: the floor under guard-daemon, same run, $t load thread(s)"
	printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "fapolicyd.crelay-block.t$t" "$(median $t g/e)" - \
		"minimal C relay to a second process (block mode, mount mark) / fapolicyd 1.1.7, same run, $t load thread(s)"
	printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "fapolicyd.guard-daemon-over-crelay.t$t" "$(median $t d/f)" - \
		"guard --mount --daemon / minimal C relay (loop mode), per-open time, same run, $t load thread(s)"
done
grep -h -iE "allowed|denied|inter-thread|kernel queue|events" "$T/fapd.log" 2>/dev/null | tail -8 | sed 's/^/fapolicyd (last round): /' || true
INNER
