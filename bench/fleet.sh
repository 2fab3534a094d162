#!/usr/bin/env bash
# bench/fleet.sh: records/s exported with JetStream acks to a local in-process nats-server
# (Append -> memory buffer -> spool -> publisher), beside a bare JetStream async publisher of
# the same records (no spool, same window) in the same run, as a ratio; the lag from Append to
# a consumer (p50/p99) at 10,000 records/s; and the cost of one Append. Run from the
# repository root.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
N=${N:-200000}
go test -run '^$' -bench 'BenchmarkExport$|BenchmarkBarePublish$' -benchtime "${N}x" -count "${COUNT:-3}" ./internal/fleet/ |
	tee /dev/stderr | awk '
	function metric(name,   i) { for (i = 1; i < NF; i++) if ($(i+1) == name) return $i }
	/^BenchmarkExport-/ { e[++ne] = metric("records/s") }
	/^BenchmarkBarePublish/ { r[++nr] = metric("records/s") }
	END { for (k = 1; k <= ne && k <= nr; k++) printf "run %d: export %.0f records/s, bare publish %.0f records/s, export/bare %.2f\n", k, e[k], r[k], e[k] / r[k] }'
go test -run '^$' -bench 'BenchmarkExportLag$|BenchmarkAppend$' -benchtime 50000x -count "${COUNT:-3}" ./internal/fleet/
