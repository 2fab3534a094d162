# bench/fleetsetup.sh: what bench/fleet.sh and bench/fleetab.sh share. Source it after
# bench/lib.sh, with TREEFILES set. It builds $out/fleetload, makes the load's file
# $out/mnt/d/f and TREEFILES files on a scratch tmpfs at $out/tree, writes $out/export.conf
# (an export line for both), and starts a local in-process nats-server with JetStream:
# $natspid, and its URL in $url.
go build -o "$out/fleetload" ./bench/fleetload
mkdir "$out/mnt/d" && echo x > "$out/mnt/d/f"
mkdir "$out/tree" && mount -t tmpfs fleetbench "$out/tree" && "$out/fleetload" files "$out/tree" "$TREEFILES"
echo "export open $out/mnt/d/** $out/tree/**" > "$out/export.conf"
"$out/fleetload" nats 0 "$out/js" > "$out/nats.log" 2>&1 & natspid=$!; pids+=($natspid)
for _ in $(seq 100); do grep -q ready "$out/nats.log" && break; sleep 0.05; done
url=$(awk '/ready/ {print $2}' "$out/nats.log")
[ -n "$url" ] || { cat "$out/nats.log" >&2; exit 1; }
