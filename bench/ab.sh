#!/usr/bin/env bash
# Interleaved A/B of two `arakoon` builds on this machine: for each round,
# a fresh 3-node cluster (fsync = true) of build A, then one of build B (the
# order alternates between rounds), each loaded with the same workloads by
# the same load generator (`arakoon bench` of build B): a single client's
# writes, 64 clients' writes, 64 clients' `Consistent` reads. Prints one
# line per run and the median of each figure per build. Everything it
# starts is stopped and removed, also on failure.
#
#   bench/ab.sh OLD_ARAKOON NEW_ARAKOON [ROUNDS]      (default 4 rounds)
#
# A_TLS=1 / B_TLS=1 run that side's clusters with TLS (node-to-node and the
# client port, `tls_service = true`; certificates made with openssl), so
# `A_TLS=0 B_TLS=1 bench/ab.sh BIN BIN 4` measures what TLS costs.
#
# Build the two binaries first, e.g. `git worktree add /tmp/old REV` and
# `(cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release
# -p cli --bin arakoon)`, and `cargo build --release -p cli --bin arakoon`.
set -euo pipefail

A=${1:?usage: bench/ab.sh OLD_ARAKOON NEW_ARAKOON [ROUNDS]}
B=${2:?usage: bench/ab.sh OLD_ARAKOON NEW_ARAKOON [ROUNDS]}
ROUNDS=${3:-4}
LOADGEN=$B
WORK=$(mktemp -d -t arakoon-ab.XXXXXX)
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
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

# Certificates for TLS runs: a CA and one v3 certificate per node.
CERTS="$WORK/certs"
make_certs() {
    mkdir -p "$CERTS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=ab-ca -keyout "$CERTS/ca.key" -out "$CERTS/cacert.pem" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\n' > "$CERTS/v3.ext"
    for i in 0 1 2; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=a$i" \
            -keyout "$CERTS/a$i.key" -out "$CERTS/a$i.csr" 2>/dev/null
        openssl x509 -req -in "$CERTS/a$i.csr" -CA "$CERTS/cacert.pem" -CAkey "$CERTS/ca.key" \
            -CAcreateserial -days 2 -extfile "$CERTS/v3.ext" -out "$CERTS/a$i.pem" 2>/dev/null
    done
}
if [[ ${A_TLS:-0} == 1 || ${B_TLS:-0} == 1 ]]; then make_certs; fi

# run_build LABEL BINARY TLS: one cluster of BINARY (with TLS if TLS = 1),
# the workloads, stopped.
run_build() {
    local label=$1 bin=$2 tls=$3 dir="$WORK/cluster" id i
    rm -rf "$dir"; mkdir -p "$dir"
    id="ab_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    {
        printf '[global]\ncluster = a0, a1, a2\ncluster_id = %s\n' "$id"
        if [[ $tls == 1 ]]; then printf 'tls_ca_cert = %s\ntls_service = true\n' "$CERTS/cacert.pem"; fi
        printf '\n'
        for i in 0 1 2; do
            printf '[a%d]\nip = 127.0.0.1\nclient_port = %s\nmessaging_port = %s\nhome = %s\nlog_level = warning\nfsync = true\n' \
                "$i" "$(free_port)" "$(free_port)" "$dir/a$i"
            if [[ $tls == 1 ]]; then printf 'tls_cert = %s\ntls_key = %s\n' "$CERTS/a$i.pem" "$CERTS/a$i.key"; fi
            printf '\n'
        done
    } > "$dir/arakoon.ini"
    local started=()
    for i in 0 1 2; do
        mkdir -p "$dir/a$i"
        "$bin" --node "a$i" -config "$dir/arakoon.ini" > "$dir/a$i.out" 2>&1 &
        PIDS+=($!); started+=($!)
    done
    local bench=("$LOADGEN" bench -config "$dir/arakoon.ini" --json --value-size 100 --key-size 16 --keys 100000)
    "${bench[@]}" --scenario set --clients 16 --ops 2000 > /dev/null   # warm-up, not measured
    for spec in "write-1:--scenario set --clients 1 --ops 2000" \
                "write-64:--scenario set --clients 64 --ops 20000" \
                "read-64:--scenario get --clients 64 --ops 20000 --consistency consistent"; do
        local name=${spec%%:*} args=${spec#*:}
        # shellcheck disable=SC2086
        "${bench[@]}" $args | python3 -c '
import json, sys
label, name = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    r = json.loads(line)
    lat = r["latency_us"]
    print(json.dumps({"build": label, "run": name, "ops_per_s": r["ops_per_sec"], "p50_us": lat["p50"], "p99_us": lat["p99"], "errors": r["errors"]}))
' "$label" "$name" | tee -a "$RESULTS"
    done
    for pid in "${started[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait "${started[@]}" 2>/dev/null || true
    rm -rf "$dir"; sync
}

for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then
        run_build A "$A" "${A_TLS:-0}"; run_build B "$B" "${B_TLS:-0}"
    else
        run_build B "$B" "${B_TLS:-0}"; run_build A "$A" "${A_TLS:-0}"
    fi
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'run':<10} {'build':<6} {'ops/s median':>13} {'p50 µs median':>14} {'p99 µs median':>14}  (runs)")
for run in ("write-1", "write-64", "read-64"):
    for build in ("A", "B"):
        rs = [r for r in rows if r["run"] == run and r["build"] == build]
        if not rs:
            continue
        med = lambda k: statistics.median(r[k] for r in rs if r[k] is not None)
        print(f"{run:<10} {build:<6} {med('ops_per_s'):>13.0f} {med('p50_us'):>14.0f} {med('p99_us'):>14.0f}  ({len(rs)})")
EOF
