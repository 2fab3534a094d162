#!/usr/bin/env bash
# Writes cmd/fsnotifyd/default.pgo, the CPU profile that every `go build` of fsnotifyd
# optimizes with (profile-guided optimization: hotter inlining at the profile's hot call sites,
# devirtualization of its hot indirect calls). The profile is the working tree's fsnotifyd,
# built without a profile and with -tags pgoprofile (cmd/fsnotifyd/pgoprofile.go: a CPU
# profile of the whole run to $FSNOTIFYD_CPUPROFILE, at 1,000 Hz), under these loads, merged
# (`go tool pprof -proto`): most of it the embedded guard allowing all under fanref's open load
# from 1 thread and from 2 threads (the goal that PGO is for), then embedded watch and trace
# under the same load, so that their hot paths are in it too. The loads run on a tmpfs mounted
# for them (mode 755); nothing else is guarded.
# The file is not committed: session 12's A/Bs (docs/design/performance.md, h12-guard) did not
# resolve an effect of PGO on the guard. To try again: run this, then the A/B against a
# `go build -pgo=off` binary of the same tree (REFBIN=PATH bash bench/guardfloorcpu.sh ...),
# and remove the file unless it is resolved better (every go build of the command uses it, and
# a new profile recompiles every package: 24 s here). A stale profile still builds (the
# compiler matches it by function and line offset; what no longer matches is not optimized).
# Run as root: bash bench/pgo.sh [OPENS]   (OPENS per load thread for the guard; default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
. bench/lib.sh
go build -pgo=off -tags pgoprofile -o "$out/fsnotifyd" ./cmd/fsnotifyd
mkdir -p "$out/tree" && mount -t tmpfs -o size=16m,mode=755 pgo "$out/tree"
mkdir "$out/tree/d" && echo x > "$out/tree/d/f"
# profile NAME THREADS OPENS ARGS...: fsnotifyd ARGS... profiled into $out/NAME.pprof while
# fanref opens $out/tree/d/f OPENS times from each of THREADS threads.
profile() {
	local name=$1 t=$2 n=$3 pid; shift 3
	: > "$out/$name.log"
	FSNOTIFYD_CPUPROFILE=$out/$name.pprof "$out/fsnotifyd" "$@" > "$out/$name.log" 2>&1 & pid=$!
	wait_ready "$out/$name.log" "ready\|Watches established"
	"$out/fanref" load "$out/tree/d/f" "$n" "$t" | sed "s/^/$name: /"
	kill -TERM "$pid"; wait "$pid" || true
	[ -s "$out/$name.pprof" ] || { echo "no profile from $name" >&2; exit 1; }
}
profile guard1 1 "$N" guard "$out/tree/d"
profile guard2 2 "$((N / 2))" guard "$out/tree/d"
profile watch 1 "$((N / 4))" watch -e open,close,modify "$out/tree/d"
profile trace 1 "$((N / 4))" trace "$out/tree/d"
for p in guard1 guard2 watch trace; do go tool pprof -raw "$out/$p.pprof" 2> /dev/null | grep -m2 "Period\|Duration" | tr "\n" " "; echo " ($p)"; done
go tool pprof -proto "$out"/{guard1,guard2,watch,trace}.pprof > "$out/merged.pprof" 2> /dev/null
cp "$out/merged.pprof" cmd/fsnotifyd/default.pgo
go tool pprof -top -nodecount=15 cmd/fsnotifyd/default.pgo 2> /dev/null | head -22
echo "wrote cmd/fsnotifyd/default.pgo ($(stat -c %s cmd/fsnotifyd/default.pgo) bytes)"
