#!/usr/bin/env bash
# Heap allocations per open of the embedded `fsnotifyd guard DIR` allow-all, counted rather than
# timed: a uprobe on the Go runtime's allocator (runtime.mallocgc) of the guard's binary, recorded
# with its callers while fanref's load opens one file OPENS times from one thread; prints the
# allocations per open and the sites that allocate at least once per 20 opens. Counts do not
# depend on how busy the machine is. With REF (a git revision), its build is counted too, first.
# Run as root: bash bench/guardallocs.sh [OPENS] [REF]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
REF=${2:-}
ROUNDS=1
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
. bench/lib.sh
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
fsnotifyd_bins "$REF" # $out/new/fsnotifyd, and with REF $out/ref/fsnotifyd: bins (lib.sh)
# The probe's name is this run's: uprobes are global, and another run's probe of the same name
# (another checkout's binary) would replace it midway.
probe=guardalloc$$

for bin in "${bins[@]}"; do
	echo "== ${bin#"$out/"}: allocations per open ($N opens, 1 thread)"
	# The probe's group is named after the binary (probe_fsnotifyd); removed again below.
	perf probe -q -d "probe_fsnotifyd:$probe" > /dev/null 2>&1 || true
	perf probe -q -x "$bin" -a "$probe=runtime.mallocgc" > /dev/null
	: > "$out/guard.log" # emptied before the start: an old "ready" in it must not pass the wait
	"$bin" guard "$out/mnt/d" > "$out/guard.log" 2>&1 & pid=$!
	for _ in $(seq 200); do grep -q "Watches established" "$out/guard.log" && break; sleep 0.05; done
	"$out/fanref" load "$LOAD_FILE" 1000 1 > /dev/null # warm up: first opens walk and cache
	# perf stat counts every allocation; perf record's samples (it may lose some) say where.
	perf stat -e "probe_fsnotifyd:$probe" -p "$pid" -o "$out/stat.out" & st=$!
	perf record -q -e "probe_fsnotifyd:$probe" -g -p "$pid" -o "$out/perf.data" 2> /dev/null & rec=$!
	sleep 0.5
	"$out/fanref" load "$LOAD_FILE" "$N" 1 > /dev/null
	sleep 0.2
	kill -INT "$rec" "$st"; wait "$rec" "$st" 2> /dev/null || true
	kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
	perf probe -q -d "probe_fsnotifyd:$probe" > /dev/null
	perf script -i "$out/perf.data" 2> /dev/null > "$out/perf.txt"
	# Each sample: a header line, then its stack, innermost first (mallocgc, then its caller).
	count=$(awk -v e="probe_fsnotifyd:$probe" '$0 ~ e { gsub(",", "", $1); print $1 }' "$out/stat.out")
	awk -v n="$N" -v count="$count" -v e="probe_fsnotifyd:$probe" '
		$0 ~ e { samples++; getline; getline; sites[$2]++ }
		END {
			printf "  %-60s %6.2f\n", "TOTAL", count / n
			for (s in sites) if (sites[s] / samples * count / n >= 0.05) printf "  %-60s %6.2f\n", s, sites[s] / samples * count / n
		}' "$out/perf.txt" | sort -k2 -n -r | tee "$out/allocs.per"
done
summary guard.allocs.t1 "$(awk '$1=="TOTAL"{print $2}' "$out/allocs.per")" - "heap allocations per open, embedded guard allow-all (uprobe on runtime.mallocgc, $N opens, 1 thread)"
