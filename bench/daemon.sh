#!/usr/bin/env bash
# Permission round trip through the daemon, side by side in one run, on a scratch ext4 image:
#   (a) no listener, (b) fanref's C allow-all responder, (c) `fsnotifyd serve` and an
#   out-of-process allow-all client of it (bench/daemonallow: the client package with an
#   Options.Handler that answers on the reading goroutine, Respond without waiting, and
#   Options.NoPaths: like fanref it reads no paths, so the daemon reads none); one and
#   two load threads (fanref's load generator). Prints the ratio (c)/(b) of the per-open time
#   (goal <= 1.5). Column (d) is (c) with `serve --thread-per-client`: the permission client's
#   socket read by a thread of its own instead of by the kernel reader's (the daemon's
#   default, daemon/inline.go). (c) goes through the permission ring (daemonallow asks for
#   it); column (e) is (c) over the socket (DAEMONALLOW_RING=0), as before the ring.
# Run as root: [MODE=mount] bash bench/daemon.sh [OPENS] [ROUNDS]
#
# With REF=rev (an A/B of the daemon against another revision, one run): (c) only, serve and
# daemonallow built from REF and from the working tree (NEW=rev: that revision instead), one
# and two load threads (THREADS="1" for one), each round fanref, then the two in an order
# that turns from round to round (the host's speed drifts within minutes). Per round: each
# one's per-open time over fanref's, and the CPU per open of serve and of daemonallow (all
# their threads' run time, schedstat: ns, not clock ticks), and new/ref of both; then the
# medians and in how many rounds new was the lower. The CPU is the finer figure: the per-open
# time of these rounds moves by 10-20% with the host. BUSY=1 runs a busy loop pinned to the
# last CPU for the whole run (all.sh --busy's load).
#   REF=main [NEW=rev] [THREADS="1 2"] [BUSY=1] bash bench/daemon.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
# MODE=mount marks the whole mount (both listeners); the default marks the directory's children.
MODE=${MODE:-}
MODE_NAME=${MODE:-directory}
. bench/lib.sh
if [ -n "${REF:-}" ]; then
	build_revs "$REF" "${NEW:-}" fsnotifyd:./cmd/fsnotifyd daemonallow:./bench/daemonallow
	mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
	busy=""
	if [ "${BUSY:-0}" = 1 ]; then
		taskset -c "$(( $(nproc) - 1 ))" sh -c 'while :; do :; done' & pids+=($!)
		busy=", busy loop on CPU $(( $(nproc) - 1 ))"
	fi
	serve_revs # spid[ref], spid[new] (lib.sh)
	echo "REF=$REF ($(git rev-parse --short "$REF")) vs ${NEW:-tree} ($(git rev-parse --short "${NEW:-HEAD}")$([ -n "${NEW:-}" ] || git diff --quiet HEAD || echo +dirty)); $N opens, $MODE_NAME marks, $(nproc) CPUs$busy; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	# pair V THREADS: "ops/s daemon_ns client_ns" for one round of V's serve + daemonallow.
	pair() {
		: > "$out/l.log" # emptied before the start: an old "ready" in it must not pass the wait
		"$out/$1/daemonallow" "$out/$1.sock" "$out/mnt/d" $MODE > "$out/l.log" 2>&1 & local l=$!
		wait_ready "$out/l.log"
		local d0 c0 o
		d0=$(cpu_ns "${spid[$1]}") c0=$(cpu_ns "$l")
		o=$(ops "$2")
		echo "$o $(( $(cpu_ns "${spid[$1]}") - d0 )) $(( $(cpu_ns "$l") - c0 ))"
		kill "$l"; wait "$l" 2>/dev/null || true
	}
	for threads in ${THREADS:-1 2}; do
		: > "$out/ab.$threads"
		for r in $(seq "$ROUNDS"); do
			f=$(with "$threads" "$out/fanref" respond "$out/mnt/d" $MODE)
			if [ $((r % 2)) = 1 ]; then a=$(pair ref "$threads"); b=$(pair new "$threads")
			else b=$(pair new "$threads"); a=$(pair ref "$threads"); fi
			echo "$f $a $b" | awk -v n="$((N * threads))" -v t="$threads" -v first="$([ $((r % 2)) = 1 ] && echo ref || echo new)" -v ratios="$out/ab.$threads" '{
				f = $1; ro = $2; rd = $3 / n / 1e3; rc = $4 / n / 1e3; no = $5; nd = $6 / n / 1e3; nc = $7 / n / 1e3
				printf "threads %d  fanref %.2f us  per-open time / fanref: ref %.3f new %.3f (new/ref %.3f)  CPU us/open daemon ref %.2f new %.2f (%.3f)  client ref %.2f new %.2f (%.3f)  (%s first)\n",
					t, 1e6 / f, f / ro, f / no, ro / no, rd, nd, nd / rd, rc, nc, nc / rc, first
				printf "%.3f %.3f %.3f\n", ro / no, nd / rd, nc / rc >> ratios }'
		done
		# col K: the K-th new/ref ratio of each round, as printed (1 time, 2 daemon CPU, 3 client
		# CPU), from the numbers the round's awk appends to ab.THREADS.
		col() { awk -v k="$1" '{ print $k }' "$out/ab.$threads"; }
		line="threads $threads, $ROUNDS rounds$busy: new/ref medians:"
		for k in 1 2 3; do
			what=$( [ $k = 1 ] && echo "per-open time" || { [ $k = 2 ] && echo "daemon CPU" || echo "client CPU"; } )
			line="$line $what $(col $k | median) (lower in $(col $k | awk '$1 < 1' | wc -l))$( [ $k = 3 ] || echo ,)"
		done
		echo "$line"
	done
	exit 0
fi
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
go build -o "$out/daemonallow" ./bench/daemonallow
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

"$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & pids+=($!)
"$out/fsnotifyd" serve --thread-per-client --socket "$out/d1.sock" --log-level warn 2> "$out/daemon1.log" & pids+=($!)
for s in d d1; do
	for _ in $(seq 100); do "$out/fsnotifyd" stats --socket "$out/$s.sock" > /dev/null 2>&1 && break; sleep 0.05; done
done

# Rounds alternate the listeners, so that drift on this noisy machine hits each alike; the
# summary is the median of the per-round ratios.
for threads in 1 2; do
	ratios=() ratios1=() ratios2=()
	for r in $(seq "$ROUNDS"); do
		a=$(ops "$threads")
		b=$(with "$threads" "$out/fanref" respond "$out/mnt/d" $MODE)
		c=$(with "$threads" "$out/daemonallow" "$out/d.sock" "$out/mnt/d" $MODE)
		d=$(with "$threads" "$out/daemonallow" "$out/d1.sock" "$out/mnt/d" $MODE)
		e=$(with "$threads" env DAEMONALLOW_RING=0 "$out/daemonallow" "$out/d.sock" "$out/mnt/d" $MODE)
		line=$(awk -v t="$threads" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" 'BEGIN {
			printf "threads %d  none %.0f/s (%.2f us)  fanref %.0f/s (%.2f us)  daemon+client %.0f/s (%.2f us)  same, socket (no ring) %.0f/s (%.2f us)  same, thread per client %.0f/s (%.2f us)  ratio(e/b) %.3f  ratio(d/b) %.3f  ratio(c/b) %.3f",
				t, a, 1e6/a, b, 1e6/b, c, 1e6/c, e, 1e6/e, d, 1e6/d, b/e, b/d, b/c }')
		echo "$line"
		ratios+=("$(echo "$line" | awk '{print $NF}')")
		ratios1+=("$(echo "$line" | awk '{print $(NF-2)}')")
		ratios2+=("$(echo "$line" | awk '{print $(NF-4)}')")
	done
	m=$(printf '%s\n' "${ratios[@]}" | median) m1=$(printf '%s\n' "${ratios1[@]}" | median) m2=$(printf '%s\n' "${ratios2[@]}" | median)
	echo "median ratio (c)/(b), $threads thread(s), $MODE_NAME marks: $m over ${#ratios[@]} rounds (goal <= 1.5)"
	echo "median ratio (d)/(b), thread per client, $threads thread(s), $MODE_NAME marks: $m1 over ${#ratios1[@]} rounds"
	summary "daemon.roundtrip.t$threads" "$m" "<=1.5" "daemon + out-of-process allow-all client / fanref C responder, per-open time, $threads load thread(s)"
	summary "daemon.thread-per-client.t$threads" "$m1" - "same with serve --thread-per-client / fanref"
	summary "daemon.socket.t$threads" "$m2" - "same client over the socket, without the permission ring (DAEMONALLOW_RING=0) / fanref"
done
