#!/usr/bin/env bash
# Collapse of 1,000,000 tlog entries (issue 11): a 3-node arakoon cluster
# (fsync = true, default tlog_max_entries = 50,000, auto_collapse_keep = 0 so
# that the node does not collapse by itself) in a fresh temporary directory
# takes ENTRIES (default 1,000,000) sets from one client (one tlog entry per
# set: the fill takes several minutes). Then 16 clients write for
# LOAD_SECONDS without a collapse (the baseline), and again while the master
# collapses its tlog keeping 1 tlog (`--collapse-remote … 1`, started
# COLLAPSE_AFTER seconds into the load); the clients' p50/p99 of both
# windows, the collapse's time and the tlog directory before and after are
# printed. Then the two slaves are collapsed without load, timed. Every
# process it starts is stopped and its files removed, also on failure.
#
#   bench/collapse.sh                      (CARGO_TARGET_DIR is honoured)
#   ENTRIES=200000 bench/collapse.sh       (a quicker run)
#   COLLAPSE_SLOWDOWN=4 bench/collapse.sh  (the node's collapse_slowdown)
set -euo pipefail

ENTRIES=${ENTRIES:-1000000}
LOAD_SECONDS=${LOAD_SECONDS:-4}
COLLAPSE_AFTER=${COLLAPSE_AFTER:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p cli --bin arakoon)
ARAKOON="$TARGET_DIR/release/arakoon"
WORK=$(mktemp -d -t arakoon-collapse.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
segments() { find "$WORK/n$1" -maxdepth 1 \( -name '*.tlog' -o -name '*.tlz' \) | wc -l; }
tlog_size() { find "$WORK/n$1" -maxdepth 1 \( -name '*.tlog' -o -name '*.tlz' \) -printf '%s\n' | awk '{s+=$1} END {printf "%.1fM\n", s/1048576}'; }
# p50, p99 (µs), ops/s and errors of an `arakoon bench --json` line.
summary() {
    python3 -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
l = r["latency_us"]
print("%d writes, %d errors, %.0f ops/s, p50 %d µs, p99 %d µs, max %d µs"
      % (r["ok"], r["errors"], r["ops_per_sec"], l["p50"], l["p99"], l["max"]))'
}

CLUSTER_ID="collapse_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
CONFIG="$WORK/arakoon.ini"
PORTS=()
{
    printf '[global]\ncluster = n0, n1, n2\ncluster_id = %s\n\n' "$CLUSTER_ID"
    for i in 0 1 2; do
        mkdir -p "$WORK/n$i"
        PORTS[$i]=$(free_port)
        printf '[n%d]\nip = 127.0.0.1\nclient_port = %s\nmessaging_port = %s\nhome = %s\nlog_level = info\nfsync = true\nauto_collapse_keep = 0\n' \
            "$i" "${PORTS[$i]}" "$(free_port)" "$WORK/n$i"
        if [ -n "${COLLAPSE_SLOWDOWN:-}" ]; then printf 'collapse_slowdown = %s\n' "$COLLAPSE_SLOWDOWN"; fi
        printf '\n'
    done
} > "$CONFIG"
printf '%s\n' "${PORTS[@]}" > "$WORK/ports"
start() {
    "$ARAKOON" --node "n$1" -config "$CONFIG" > "$WORK/n$1.log" 2>&1 &
    PIDS[$1]=$!
}

start 0
start 1
start 2
for _ in $(seq 150); do "$ARAKOON" -config "$CONFIG" --who-master > /dev/null 2>&1 && break; sleep 0.2; done
MASTER=$("$ARAKOON" -config "$CONFIG" --who-master)
M=${MASTER#n}
PORTS=($(cat "$WORK/ports"))

t=$(now)
"$ARAKOON" bench -config "$CONFIG" --scenario set --clients 1 --ops "$ENTRIES" --keys "$ENTRIES" | tail -1
echo "fill: $ENTRIES sets from one client in $(since "$t") s"
"$ARAKOON" -config "$CONFIG" --node-state "$MASTER"
for i in 0 1 2; do echo "n$i: $(segments "$i") segment files, $(tlog_size "$i") in its tlog directory"; done

load() {
    "$ARAKOON" bench -config "$CONFIG" --scenario set --clients 16 --ops 100000000 \
        --keys 100000 --max-seconds "$LOAD_SECONDS" --json
}
echo "16 clients writing for $LOAD_SECONDS s, no collapse: $(load | summary)"

load > "$WORK/during.json" &
LOAD_PID=$!
sleep "$COLLAPSE_AFTER"
before=$(segments "$M")
t=$(now)
"$ARAKOON" --collapse-remote "$CLUSTER_ID" 127.0.0.1 "${PORTS[$M]}" 1 | tail -1
took=$(since "$t")
wait "$LOAD_PID"
echo "collapse of the master n$M (keep 1) during the load: $took s (the client's run, process start included), $before -> $(segments "$M") segment files, $(tlog_size "$M") left"
echo "16 clients writing for $LOAD_SECONDS s, the collapse $COLLAPSE_AFTER s in: $(summary < "$WORK/during.json")"
grep -h 'collapse: removed' "$WORK/n$M.log" | tail -1 | sed 's/^/  node log: /'

for i in 0 1 2; do
    if [ "$i" != "$M" ]; then
        before=$(segments "$i")
        t=$(now)
        "$ARAKOON" --collapse-remote "$CLUSTER_ID" 127.0.0.1 "${PORTS[$i]}" 1 | tail -1
        echo "collapse of slave n$i (keep 1), no load: $(since "$t") s, $before -> $(segments "$i") segment files"
    fi
done
