#!/usr/bin/env bash
# Catch-up and memory with 1,000,000 keys (issue 5's targets): a 3-node
# arakoon cluster (fsync = true) in a fresh temporary directory is started
# (a new cluster starts with every node up), the third node is killed and
# its home wiped; the other two take 1,000,000 keys of 100 bytes (the fill
# of `arakoon bench --scenario get --keys 1000000`: 10,000 sequences of 100
# sets from 16 clients), their VmRSS is read; then the third node starts
# empty (a replaced disk: it recovers before it votes) and the time until
# it has applied as far as the master is measured (from the nodes'
# `reporting = 1` log lines, so to about a second). Everything it starts is
# stopped and removed, also on failure.
#
# With `snapshot`, the two live nodes collapse their tlogs (keeping one
# segment) before the empty node starts, so it must catch up from a store
# snapshot (issue 11's target: under 20 s, RSS during the install at most
# 256 MiB: its VmHWM, the peak, is printed). With `snapshot-under-load`,
# 64 clients write for 20 s while it joins, and the same 20 s of writes
# without a joining node are run first, for comparison.
#
#   bench/catch-up.sh [tlog|snapshot|snapshot-under-load]   (default tlog;
#                     CARGO_TARGET_DIR is honoured)
set -euo pipefail
MODE=${1:-tlog}
case "$MODE" in tlog|snapshot|snapshot-under-load) ;; *) echo "usage: $0 [tlog|snapshot|snapshot-under-load]" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p cli --bin arakoon)
ARAKOON="$TARGET_DIR/release/arakoon"
WORK=$(mktemp -d -t arakoon-catch-up.XXXXXX)
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
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MiB ", $1, $2 / 1024}' "/proc/$1/status"; }
applied() { { grep -o 'applied=[0-9]*' "$WORK/n$1.log" || true; } | tail -1 | cut -d= -f2; }

CONFIG="$WORK/arakoon.ini"
{
    printf '[global]\ncluster = n0, n1, n2\ncluster_id = catch_up_%s\n\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    for i in 0 1 2; do
        mkdir -p "$WORK/n$i"
        printf '[n%d]\nip = 127.0.0.1\nclient_port = %s\nmessaging_port = %s\nhome = %s\nlog_level = info\nfsync = true\nreporting = 1\n\n' \
            "$i" "$(free_port)" "$(free_port)" "$WORK/n$i"
    done
} > "$CONFIG"
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
# A node that is not the master loses its disk.
X=2; [ "$M" = 2 ] && X=1
kill -9 "${PIDS[$X]}"; wait "${PIDS[$X]}" 2>/dev/null || true
rm -rf "$WORK/n$X"; mkdir -p "$WORK/n$X"
t=$(now)
"$ARAKOON" bench -config "$CONFIG" --scenario get --keys 1000000 --ops 1000 --clients 16 | tail -1
echo "fill of 1,000,000 keys (and 1,000 gets): $(since "$t") s"
for i in 0 1 2; do if [ "$i" != "$X" ]; then echo "n$i: $(rss "${PIDS[$i]}")"; fi; done
du -sh "$WORK/n$M" | awk '{print "on disk per node: " $1}'

port_of() { awk -v n="[n$1]" '$0 == n {s=1} s && /^client_port/ {print $3; exit}' "$CONFIG"; }
CLUSTER_ID=$(awk '/^cluster_id/ {print $3; exit}' "$CONFIG")
if [ "$MODE" != tlog ]; then
    for i in 0 1 2; do
        if [ "$i" != "$X" ]; then
            t=$(now)
            "$ARAKOON" --collapse-remote "$CLUSTER_ID" 127.0.0.1 "$(port_of "$i")" 1 > /dev/null
            echo "n$i: collapsed to one tlog segment in $(since "$t") s ($(du -sh "$WORK/n$i/tlog" | cut -f1) of tlog left)"
        fi
    done
fi
LOAD_PID=""
if [ "$MODE" = snapshot-under-load ]; then
    echo "without a joining node, 64 clients for 20 s:"
    "$ARAKOON" bench -config "$CONFIG" --scenario set --clients 64 --ops 100000000 --max-seconds 20 --keys 1000000 | tail -1
    echo "while the empty node joins, 64 clients for 20 s:"
    "$ARAKOON" bench -config "$CONFIG" --scenario set --clients 64 --ops 100000000 --max-seconds 20 --keys 1000000 | tail -1 &
    LOAD_PID=$!
fi

t=$(now)
start "$X"
target=""
for _ in $(seq 1200); do
    target=$(applied "$M")
    got=$(applied "$X")
    if [ -n "$target" ] && [ -n "$got" ] && [ "$got" -ge "$target" ]; then
        echo "n$X (wiped, started empty) applied $got entries, as far as the master, $(since "$t") s after its start"
        echo "n$X: $(rss "${PIDS[$X]}")"
        grep -E "store snapshot installed" "$WORK/n$X.log" | tail -1 || true
        if [ -n "$LOAD_PID" ]; then wait "$LOAD_PID"; fi
        exit 0
    fi
    sleep 0.1
done
echo "n$X did not catch up within 120 s (master applied ${target:-?})" >&2
exit 1
