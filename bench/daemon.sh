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
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
# MODE=mount marks the whole mount (both listeners); the default marks the directory's children.
MODE=${MODE:-}
MODE_NAME=${MODE:-directory}
. bench/lib.sh
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
