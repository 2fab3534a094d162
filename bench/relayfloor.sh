#!/usr/bin/env bash
# The floor under bench/daemon.sh, side by side in one run: what any relay of a permission
# event to a second process costs on this machine, against what the daemon costs. On a scratch
# ext4 image, fanref's open() load on one file with, in turn within each round:
#   fanref   fanref's C allow-all responder (the reference: one process, read/write/close)
#   cloop    bench/relayfloor.c loop: a relay in C to a child in C that allows everything, one
#            thread polling the kernel descriptor and the socket: the floor of the daemon's
#            shape with no language runtime in the way
#   cblock   bench/relayfloor.c block: the same waiting for each answer in a blocking read
#   cloop2   bench/relayfloor.c loop2: cloop with two reader threads (EPOLLEXCLUSIVE), the
#            floor of a daemon with several kernel readers
#   cloop-futex  cloop over two rings in shared memory instead of a socket: the child sleeps in
#            FUTEX_WAIT, the relay polls an eventfd the child writes (only when the relay said
#            it sleeps): the cheapest channel measured (2026-12-05, performance.md)
#   cloop-model  cloop with the daemon's system calls and nothing else: a stream socket, a statx
#            per event in the relay, a poll before each read in the child (the daemon's and
#            the client's shape in C: daemon / cloop-model is what Go, the engine and the
#            protocol add)
#   cMODE-TRANSPORT  any other relayfloor.c variant by name (csplit-pipe, cloop-stream, ...:
#            its header lists the modes and transports), with RELAYFLOOR_NAMES
#   split    bench/relayfloor split: a minimal Go relay to a child that allows everything, a
#            kernel-reader thread and an answer-reader thread (two threads in the relay)
#   loop     bench/relayfloor loop: the same with one thread polling the kernel and the socket
#            (the daemon's shape: its event loop)
#   block    bench/relayfloor block: one thread that waits for each answer before it reads the
#            kernel again (not a daemon's option: one slow client would stall all)
#   daemon   `fsnotifyd serve` + bench/daemonallow (as bench/daemon.sh's (c))
# on one and two load threads. Prints per round each one's per-open time over fanref's and the
# context switches per open of its processes (all their threads; the load's own are not
# counted), and SUMMARY lines (bench/lib.sh) with the medians.
# Run as root: bash bench/relayfloor.sh [OPENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
. bench/lib.sh
go build -o "$out/fsnotifyd" ./cmd/fsnotifyd
go build -o "$out/daemonallow" ./bench/daemonallow
go build -o "$out/relayfloor" ./bench/relayfloor
cc -O2 -pthread -o "$out/relayfloor-c" bench/relayfloor.c
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"

"$out/fsnotifyd" serve --socket "$out/d.sock" --log-level warn 2> "$out/daemon.log" & pids+=($!)
serve=$!
for _ in $(seq 1200); do "$out/fsnotifyd" stats --socket "$out/d.sock" > /dev/null 2>&1 && break; sleep 0.05; done

# cs PID...: the context switches (voluntary and not) of every thread of the PIDs and their
# children so far.
cs() {
	local p all=() t
	for p in "$@"; do all+=("$p"); for t in $(pgrep -P "$p" || true); do all+=("$t"); done; done
	for p in "${all[@]}"; do cat /proc/"$p"/task/*/status 2>/dev/null; done |
		awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'
}
# run THREADS NAME CMD...: start CMD (a listener that prints "ready"), run the load, and print
# "OPS_PER_S CS_PER_OPEN"; the daemon (already running) is counted with the daemon's client.
run() {
	local threads=$1 name=$2; shift 2
	# Empty the log first, here: the background job truncates it only once it runs, and until
	# then the last listener's "ready" would start the load before this one's mark is in place.
	: > "$out/listener.log"
	"$@" > "$out/listener.log" 2>&1 & local pid=$!
	for _ in $(seq 1200); do grep -q ready "$out/listener.log" 2>/dev/null && break; sleep 0.05; done
	grep -q ready "$out/listener.log" || { echo "listener not ready: $*" >&2; cat "$out/listener.log" >&2; exit 1; }
	local watched=("$pid") c0 c1 o
	[ "$name" = daemon ] && watched+=("$serve")
	c0=$(cs "${watched[@]}")
	o=$(ops "$threads")
	c1=$(cs "${watched[@]}")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	awk -v o="$o" -v a="$c0" -v b="$c1" -v n="$((N * threads))" 'BEGIN { printf "%s %.2f\n", o, (b - a) / n }'
}

names="${RELAYFLOOR_NAMES:-cloop cloop-futex cloop-model cblock cloop2 split loop block daemon}"
for threads in 1 2; do
	declare -A ratio=() csw=()
	fcs=()
	for r in $(seq "$ROUNDS"); do
		read -r f fc < <(run "$threads" fanref "$out/fanref" respond "$out/mnt/d")
		fcs+=("$fc")
		line=$(printf 'threads %d  fanref %.2f us (%s cs/open)' "$threads" "$(awk -v f="$f" 'BEGIN{print 1e6/f}')" "$fc")
		for name in $names; do
			if [ "$name" = daemon ]; then
				read -r o c < <(run "$threads" daemon "$out/daemonallow" "$out/d.sock" "$out/mnt/d")
			elif [[ $name == c* ]]; then
				read -r o c < <(run "$threads" "$name" "$out/relayfloor-c" "${name#c}" "$out/mnt/d")
			else
				read -r o c < <(run "$threads" "$name" "$out/relayfloor" "$name" "$out/mnt/d")
			fi
			x=$(awk -v f="$f" -v o="$o" 'BEGIN{printf "%.3f", f/o}')
			ratio[$name]="${ratio[$name]:-} $x" csw[$name]="${csw[$name]:-} $c"
			line="$line  $name $x ($c cs)"
		done
		echo "$line"
	done
	med() { printf '%s\n' $1 | median; }
	fm=$(printf '%s\n' "${fcs[@]}" | median)
	echo "medians over $ROUNDS rounds, $threads thread(s), per-open time / fanref's (context switches per open; fanref $fm):$(for n in $names; do printf ' %s %s (%s)' "$n" "$(med "${ratio[$n]}")" "$(med "${csw[$n]}")"; done)"
	for n in $names; do
		[[ $n == c* ]] || continue
		summary "relayfloor.$n.t$threads" "$(med "${ratio[$n]}")" - "minimal C relay to a second process (${n#c} mode) / fanref C responder, per-open time, $threads load thread(s)"
	done
	for n in split loop block; do
		[[ " $names " == *" $n "* ]] || continue
		summary "relayfloor.$n.t$threads" "$(med "${ratio[$n]}")" - "minimal Go relay to a second process ($n mode) / fanref C responder, per-open time, $threads load thread(s)"
	done
	[[ " $names " == *" daemon "* ]] && summary "relayfloor.daemon.t$threads" "$(med "${ratio[daemon]}")" "<=1.5" "daemon + out-of-process allow-all client / fanref, per-open time, $threads load thread(s), same run as the relays"
	# The daemon over the floor, round by round (each pair from the same round).
	for n in cloop cloop-futex cloop-model; do
		[[ " $names " == *" $n "* && " $names " == *" daemon "* ]] || continue
		summary "relayfloor.daemon-over-$n.t$threads" "$(paste <(printf '%s\n' ${ratio[daemon]}) <(printf '%s\n' ${ratio[$n]}) | awk '{ printf "%.3f\n", $1 / $2 }' | median)" - "daemon + client / minimal C relay ($n), per-open time, same rounds, $threads load thread(s)"
	done
	summary "relayfloor.cs.fanref.t$threads" "$fm" - "context switches per open, fanref's responder"
	for n in $names; do
		summary "relayfloor.cs.$n.t$threads" "$(med "${csw[$n]}")" - "context switches per open, $n (all its processes' threads)"
	done
done
