#!/usr/bin/env bash
# Side by side on this machine: a 3-node arakoon-rs cluster (fsync = true)
# and a 3-member etcd cluster (its defaults: WAL fsync on), one after the
# other, loaded by the same load generator (`arakoon bench`; for etcd its
# `--target etcd://` runner, bench/etcd-load), then a 1-node line of both
# and the raw fdatasync rate of the data directory (the physical limit).
#
#   bench/compare-etcd.sh [--ops N] [--json FILE]
#
# Workloads: 100-byte values, 16-byte keys over 100,000 keys; writes (set /
# put) at 1, 16, 64 and 256 clients; reads at 64 clients: our Consistent vs
# etcd linearizable, our NoGuarantee vs etcd serializable. Each run is
# bounded (--ops per run, at most MAX_SECONDS per scenario).
#
# Prints a table (ops/s, p50, p99 for each, ratio ours/etcd) and writes
# every measurement as JSON (default compare-etcd-<UTC time>.json in the
# current directory). Everything runs on 127.0.0.1 on free ports, in a
# fresh temporary directory per cluster; everything started is stopped and
# removed on exit (also on Ctrl-C or failure).
#
# Needs: cargo; installs protobuf-compiler (for etcd-client), etcd-server
# and python3 with apt-get if missing. CARGO_TARGET_DIR is honoured.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPS=20000
OPS_ONE_CLIENT=2000
MAX_SECONDS=120
KEYS=100000
VALUE_SIZE=100
KEY_SIZE=16
WRITE_CLIENTS=(1 16 64 256)
READ_CLIENTS=64
JSON_OUT="$PWD/compare-etcd-$(date -u +%Y%m%dT%H%M%SZ).json"

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --ops) OPS="$2"; OPS_ONE_CLIENT=$(( $2 / 10 > 100 ? $2 / 10 : 100 )); shift 2 ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare-etcd.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "== $*" >&2; }

# ---- everything started is stopped, everything made is removed ----------
WORK=$(mktemp -d -t arakoon-vs-etcd.XXXXXX)
PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ---------------------------------------------------------------
apt_install() {
    log "installing $* (apt)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
command -v protoc >/dev/null || apt_install protobuf-compiler
command -v etcd >/dev/null || apt_install etcd-server
command -v python3 >/dev/null || apt_install python3

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building arakoon and the etcd load generator (release)"
(cd "$ROOT" && cargo build --release -q -p cli --bin arakoon)
cargo build --release -q --manifest-path "$ROOT/bench/etcd-load/Cargo.toml" --target-dir "$TARGET_DIR"
ARAKOON="$TARGET_DIR/release/arakoon"
ETCD_LOAD="$TARGET_DIR/release/arakoon-bench-etcd"
export ARAKOON_BENCH_ETCD="$ETCD_LOAD"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

# run_bench SYSTEM NODES LABEL ARGS... : one bench run, its JSON lines
# tagged and appended to RESULTS.
run_bench() {
    local system=$1 nodes=$2 label=$3; shift 3
    local out="$WORK/run.jsonl"
    log "$system, $nodes node(s): $label"
    if ! "$ARAKOON" bench "$@" --json --value-size "$VALUE_SIZE" --key-size "$KEY_SIZE" \
            --keys "$KEYS" --max-seconds "$MAX_SECONDS" > "$out"; then
        log "$system $label: the bench failed (its report, if any, is kept)"
    fi
    python3 - "$system" "$nodes" "$label" "$out" >> "$RESULTS" <<'EOF'
import json, sys
system, nodes, label, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
for line in open(path):
    r = json.loads(line)
    r.update(system=system, nodes=nodes, label=label)
    print(json.dumps(r))
EOF
}

# warm_up SYSTEM TARGET_ARGS...: 2,000 writes from 16 clients, not
# measured, so that neither system's first measured run pays for its
# start (connections, first file growth, caches).
warm_up() {
    local system=$1; shift
    log "$system: warming up (not measured)"
    "$ARAKOON" bench "$@" --scenario set --clients 16 --ops 2000 --value-size "$VALUE_SIZE" \
        --key-size "$KEY_SIZE" --keys "$KEYS" --max-seconds "$MAX_SECONDS" > /dev/null \
        || log "$system: the warm-up failed"
}

# workloads SYSTEM NODES TARGET_ARGS... : the whole set against one cluster.
workloads() {
    local system=$1 nodes=$2; shift 2
    local clients ops
    warm_up "$system" "$@"
    for clients in "${WRITE_CLIENTS[@]}"; do
        ops=$OPS; [ "$clients" -eq 1 ] && ops=$OPS_ONE_CLIENT
        run_bench "$system" "$nodes" "write c=$clients" "$@" --scenario set --clients "$clients" --ops "$ops"
    done
    # The first read run fills the 100,000 keys (not measured).
    run_bench "$system" "$nodes" "read consistent c=$READ_CLIENTS" "$@" --scenario get \
        --clients "$READ_CLIENTS" --ops "$OPS" --consistency consistent
    run_bench "$system" "$nodes" "read relaxed c=$READ_CLIENTS" "$@" --scenario get \
        --clients "$READ_CLIENTS" --ops "$OPS" --consistency no-guarantee --no-fill
}

# single_node_workloads SYSTEM TARGET_ARGS...
single_node_workloads() {
    local system=$1; shift
    warm_up "$system" "$@"
    run_bench "$system" 1 "write c=1" "$@" --scenario set --clients 1 --ops "$OPS_ONE_CLIENT"
    run_bench "$system" 1 "write c=64" "$@" --scenario set --clients 64 --ops "$OPS"
}

# ---- etcd ----------------------------------------------------------------
# start_etcd N: an N-member cluster in a fresh directory; sets ETCD_TARGET.
start_etcd() {
    local n=$1 dir="$WORK/etcd-$1" i initial="" endpoints=""
    mkdir -p "$dir"
    local -a client_ports peer_ports
    for i in $(seq 0 $((n - 1))); do
        client_ports[i]=$(free_port); peer_ports[i]=$(free_port)
        initial+="${initial:+,}e$i=http://127.0.0.1:${peer_ports[i]}"
        endpoints+="${endpoints:+,}127.0.0.1:${client_ports[i]}"
    done
    for i in $(seq 0 $((n - 1))); do
        etcd --name "e$i" --data-dir "$dir/e$i" \
            --listen-client-urls "http://127.0.0.1:${client_ports[i]}" \
            --advertise-client-urls "http://127.0.0.1:${client_ports[i]}" \
            --listen-peer-urls "http://127.0.0.1:${peer_ports[i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[i]}" \
            --initial-cluster "$initial" --initial-cluster-state new \
            --initial-cluster-token "bench-$$-$n" \
            > "$dir/e$i.log" 2>&1 &
        PIDS+=($!)
    done
    ETCD_TARGET="etcd://$endpoints"
}

# ---- arakoon ---------------------------------------------------------------
# start_arakoon N: an N-node cluster (fsync = true) in a fresh directory;
# sets ARAKOON_CONFIG.
start_arakoon() {
    local n=$1 dir="$WORK/arakoon-$1" i names=""
    mkdir -p "$dir"
    for i in $(seq 0 $((n - 1))); do names+="${names:+, }a$i"; done
    ARAKOON_CONFIG="$dir/arakoon.ini"
    {
        printf '[global]\ncluster = %s\ncluster_id = bench\n\n' "$names"
        for i in $(seq 0 $((n - 1))); do
            printf '[a%d]\nip = 127.0.0.1\nclient_port = %s\nmessaging_port = %s\nhome = %s\nlog_level = warning\nfsync = true\n\n' \
                "$i" "$(free_port)" "$(free_port)" "$dir/a$i"
        done
    } > "$ARAKOON_CONFIG"
    for i in $(seq 0 $((n - 1))); do
        mkdir -p "$dir/a$i"
        "$ARAKOON" --node "a$i" -config "$ARAKOON_CONFIG" > "$dir/a$i.out" 2>&1 &
        PIDS+=($!)
    done
}

# ---- the runs, one cluster at a time -------------------------------------
# After each cluster, `sync` writes back what it left dirty in the page
# cache, so that the next cluster's fsyncs do not pay for it.
# rtt_probe: the loopback round trip (128 bytes each way between two
# threads of one process, blocking sockets, 20,000 times), for the bound
# "single-client write p50 within 3x of fdatasync p50 + two round trips".
rtt_probe() {
    log "loopback round trip"
    "$ETCD_LOAD" rtt 20000 \
        | python3 -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); r.update(system="loopback", nodes=1, label="rtt", loadavg=open("/proc/loadavg").read().split()[:3]); print(json.dumps(r))' >> "$RESULTS"
}

# fdatasync_probe LABEL: the raw fdatasync rate of the data directory's
# disk (128 bytes appended + fdatasync, 2000 times), and the load average
# (other work on the machine skews every figure).
fdatasync_probe() {
    mkdir -p "$WORK/disk"
    log "raw fdatasync of $WORK ($1)"
    "$ETCD_LOAD" fdatasync "$WORK/disk" 2000 \
        | python3 -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); r.update(system="disk", nodes=1, label=sys.argv[1], loadavg=open("/proc/loadavg").read().split()[:3]); print(json.dumps(r))' "$1" >> "$RESULTS"
    rm -rf "$WORK/disk"
}

fdatasync_probe "fdatasync before"
rtt_probe

start_etcd 3
workloads etcd 3 --target "$ETCD_TARGET"
stop_all; rm -rf "$WORK/etcd-3"; sync

start_arakoon 3
workloads arakoon 3 -config "$ARAKOON_CONFIG"
stop_all; rm -rf "$WORK/arakoon-3"; sync

start_etcd 1
single_node_workloads etcd --target "$ETCD_TARGET"
stop_all; rm -rf "$WORK/etcd-1"; sync

start_arakoon 1
single_node_workloads arakoon -config "$ARAKOON_CONFIG"
stop_all; rm -rf "$WORK/arakoon-1"; sync
fdatasync_probe "fdatasync after"

# ---- the table -----------------------------------------------------------
python3 - "$RESULTS" "$JSON_OUT" <<'EOF'
import json, platform, os, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
def us(v): return f"{v/1000:.2f} ms" if v >= 1000 else f"{v} µs"
def find(system, nodes, label):
    for r in rows:
        if (r["system"], r["nodes"], r["label"]) == (system, nodes, label):
            return r
print()
print(f"{'workload':<28} {'arakoon ops/s':>13} {'p50':>9} {'p99':>9} {'etcd ops/s':>11} {'p50':>9} {'p99':>9} {'ops/s ratio':>11} {'p50 ratio':>9}")
seen = []
for r in rows:
    key = (r["nodes"], r["label"])
    if r["system"] in ("disk", "loopback") or key in seen: continue
    seen.append(key)
    a, e = find("arakoon", *key), find("etcd", *key)
    def cells(x):
        if not x: return f"{'-':>13} {'-':>9} {'-':>9}"
        errs = f" ({x['errors']} err)" if x["errors"] else ""
        return f"{x['ops_per_sec']:>13,.0f} {us(x['latency_us']['p50']):>9} {us(x['latency_us']['p99']):>9}{errs}"
    ratio = f"{a['ops_per_sec']/e['ops_per_sec']:>11.2f}" if a and e and e["ops_per_sec"] else f"{'-':>11}"
    p50 = f"{a['latency_us']['p50']/e['latency_us']['p50']:>9.2f}" if a and e and e["latency_us"]["p50"] else f"{'-':>9}"
    print(f"{str(key[0]) + ' node(s), ' + key[1]:<28} {cells(a)} {cells(e)[1:]} {ratio} {p50}")
print()
for label in ("fdatasync before", "fdatasync after"):
    d = find("disk", 1, label)
    if d:
        print(f"raw {label} (data directory's disk): {d['ops_per_sec']:,.0f}/s, p50 {us(d['latency_us']['p50'])}, p99 {us(d['latency_us']['p99'])}; load average {' '.join(d['loadavg'])}")
rtt = find("loopback", 1, "rtt")
if rtt:
    print(f"loopback round trip: p50 {us(rtt['latency_us']['p50'])}, p99 {us(rtt['latency_us']['p99'])}")
disk = find("disk", 1, "fdatasync before")
write1 = find("arakoon", 3, "write c=1")
if rtt and disk and write1:
    bound = 3 * (disk["latency_us"]["p50"] + 2 * rtt["latency_us"]["p50"])
    w = write1["latency_us"]["p50"]
    print(f"single-client write p50 {us(w)} vs 3 x (fdatasync p50 + 2 round trips) = {us(bound)}: {'within' if w <= bound else 'NOT within'}")
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"cores": os.cpu_count(), "kernel": platform.release(), "cpu": next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")},
    "results": rows,
}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
print(f"\nJSON: {sys.argv[2]}")
EOF
