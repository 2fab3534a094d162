#!/usr/bin/env bash
# The engine's micro-benchmarks against their goals (no root needed): the median over COUNT
# runs of each.
# Usage: bash bench/engine.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-5}
summary() { printf 'SUMMARY\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench 'BenchmarkNotifyNoMarks$|BenchmarkNotifyOneMark$|BenchmarkPermissionRoundTrip$|BenchmarkMarkAddRemove$' \
	-benchmem -count "$COUNT" ./engine | tee "$out"
# med NAME FIELD-UNIT: the median of the value before UNIT on the lines of benchmark NAME.
med() {
	awk -v n="$1" -v u="$2" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == u) print $i }' "$out" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR+1)/2)] }'
}
summary engine.notify-no-marks.ns "$(med BenchmarkNotifyNoMarks ns/op)" "<=30" "Notify of an event nobody watches (ns)"
summary engine.notify-no-marks.allocs "$(med BenchmarkNotifyNoMarks allocs/op)" "<=0" "allocations per Notify of an event nobody watches"
summary engine.notify-one-mark.ns "$(med BenchmarkNotifyOneMark/distinct ns/op)" "<=300" "Notify into one group, a new event each time (ns)"
summary engine.permission-round-trip.ns "$(med BenchmarkPermissionRoundTrip ns/op)" "<=5000" "permission event Notify -> read -> respond -> return, across goroutines (ns)"
summary engine.mark-add-remove.ns "$(med BenchmarkMarkAddRemove ns/op)" "<=1000" "add and remove a mark (ns)"
