#!/usr/bin/env bash
# bench/compare.sh — quorum against etcd and Redis, same machine, same load generator.
#
# What it does
#   1. Installs Debian's etcd-server etcd-client redis-server redis-tools jq with
#      apt-get if any is missing (needs root), and builds `cargo build --release
#      -p quorum-cli` unless QUORUM_BIN is set.
#   2. For each system in turn (so they never compete for the 2 cores), starts it
#      on loopback with its data in a temp dir, benchmarks it, and stops it:
#        quorum      3-node cluster (`quorum cluster --nodes 3 --port P --data-dir D`),
#                    benchmarked on the leader's client port
#        etcd        3-member cluster, benchmarked on the leader through the v3 JSON
#                    gateway (linearizable reads)
#        redis       primary + 2 replicas, appendonly yes, appendfsync always; no WAIT
#        redis-wait  the same, each SET followed by `WAIT 2 0` (the replicas have
#                    received the write; Redis 7.0 cannot wait for their fsync)
#   3. Runs `$QUORUM_BIN bench` for a write-only workload (--write-ratio 1.0), then
#      a read-only one (--write-ratio 0.0) after a preload of every key, each at
#      1, 16 and 64 clients, and prints ONE table: system, workload, clients,
#      ops/s, p50, p99, errors, and throughput as a ratio to etcd's on the same row.
#   Everything it started is stopped on exit, including on Ctrl-C (trap).
#
# Usage
#   bench/compare.sh [--quick] [--seconds N] [--systems "quorum etcd redis redis-wait"]
#     --quick     2 s per run instead of 10 (a smoke run; the figures are noisy)
#   Environment:
#     QUORUM_BIN       the binary providing `bench` (and `cluster`, for the quorum row);
#                      default target/release/quorum.
#     BENCH_BASE_PORT  first port used (default 27100); ports BASE..BASE+40 must be free
#     BENCH_RESULTS    if set, the raw JSON report of every run is appended to this file
#
# Not part of the test suite: it takes minutes (18 runs of 10 s per system, plus
# setup) and its figures depend on the machine. Compare ratios, not raw numbers.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

RUN_SECONDS=10
SYSTEMS="quorum etcd redis redis-wait"
CLIENT_COUNTS="1 16 64"
VALUE_SIZE=100
KEYSPACE=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RUN_SECONDS=2; shift ;;
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

BASE_PORT=${BENCH_BASE_PORT:-27100}
QUORUM_PORT=$BASE_PORT                 # +0..+2 client ports (the cluster may use more above)
ETCD_CLIENT_PORT=$((BASE_PORT + 20))   # +20..+22 client, +25..+27 peer
REDIS_PORT=$((BASE_PORT + 30))         # +30 primary, +31..+32 replicas

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- setup

need_install=0
for tool in etcd etcdctl redis-server redis-cli jq; do
  command -v "$tool" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
  log "installing etcd-server etcd-client redis-server redis-tools jq"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q etcd-server etcd-client redis-server redis-tools jq >/dev/null
fi

if [ -z "${QUORUM_BIN:-}" ]; then
  log "building quorum (release)"
  cargo build --release -p quorum-cli
  QUORUM_BIN=$REPO/target/release/quorum
fi
[ -x "$QUORUM_BIN" ] || die "no executable at QUORUM_BIN=$QUORUM_BIN"
"$QUORUM_BIN" bench --help >/dev/null 2>&1 || die "$QUORUM_BIN has no 'bench' command (see --help for the wrapper)"
PRELOAD_FLAGS=()
if "$QUORUM_BIN" bench --help 2>&1 | grep -q -- '--preload'; then
  PRELOAD_FLAGS=(--preload --keyspace "$KEYSPACE")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/quorum-compare.XXXXXX")
RESULTS=$WORK/results.tsv
: > "$RESULTS"
PIDS=()

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
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

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${limit}s waiting for $what (logs in $WORK)"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- systems

start_quorum() {
  mkdir -p "$WORK/quorum"
  "$QUORUM_BIN" cluster --nodes 3 --port "$QUORUM_PORT" --data-dir "$WORK/quorum" \
    >"$WORK/quorum.log" 2>&1 &
  PIDS+=($!)
  local port
  for port in "$QUORUM_PORT" $((QUORUM_PORT + 1)) $((QUORUM_PORT + 2)); do
    wait_for 60 "quorum node on port $port" sh -c "redis-cli -p $port PING | grep -q PONG"
  done
  # The leader: the node whose INFO says role:leader (or master); followers would
  # forward every request, adding a hop that the other systems do not pay.
  TARGET_ADDR=127.0.0.1:$QUORUM_PORT
  local attempt
  for attempt in $(seq 1 50); do
    for port in "$QUORUM_PORT" $((QUORUM_PORT + 1)) $((QUORUM_PORT + 2)); do
      if redis-cli -p "$port" INFO 2>/dev/null | tr -d '\r' | grep -qiE '^role:(leader|master)$'; then
        TARGET_ADDR=127.0.0.1:$port
        return
      fi
    done
    sleep 0.2
  done
  log "no quorum node reports role:leader in INFO; using port $QUORUM_PORT"
}

start_etcd() {
  local i cluster=""
  for i in 0 1 2; do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_CLIENT_PORT + 5 + i))"
  done
  for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$WORK/etcd$i" \
      --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + i))" \
      --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + i))" \
      --listen-peer-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + 5 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + 5 + i))" \
      --initial-cluster "$cluster" --initial-cluster-token quorum-compare \
      --initial-cluster-state new >"$WORK/etcd$i.log" 2>&1 &
    PIDS+=($!)
  done
  local endpoints="127.0.0.1:$ETCD_CLIENT_PORT,127.0.0.1:$((ETCD_CLIENT_PORT + 1)),127.0.0.1:$((ETCD_CLIENT_PORT + 2))"
  wait_for 60 "etcd cluster health" env ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health
  local leader=""
  for _ in $(seq 1 50); do
    # Columns: endpoint, id, version, db size, is leader, ...
    leader=$(ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint status 2>/dev/null |
      awk -F', ' '$5 == "true" { print $1; exit }')
    [ -n "$leader" ] && break
    sleep 0.2
  done
  [ -n "$leader" ] || die "etcd elected no leader (logs in $WORK)"
  TARGET_ADDR=$leader
}

start_redis() {
  local i port
  for i in 0 1 2; do
    port=$((REDIS_PORT + i))
    mkdir -p "$WORK/redis$i"
    local replica=()
    [ "$i" = 0 ] || replica=(--replicaof 127.0.0.1 "$REDIS_PORT")
    redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/redis$i" --save "" \
      --appendonly yes --appendfsync always --daemonize no "${replica[@]}" \
      >"$WORK/redis$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 0 1 2; do
    wait_for 30 "redis on port $((REDIS_PORT + i))" sh -c "redis-cli -p $((REDIS_PORT + i)) PING | grep -q PONG"
  done
  wait_for 60 "two redis replicas in sync" sh -c \
    "redis-cli -p $REDIS_PORT INFO replication | tr -d '\r' | grep -c 'state=online' | grep -qx 2"
  TARGET_ADDR=127.0.0.1:$REDIS_PORT
}

# ---------------------------------------------------------------- runs

# bench_run SYSTEM WORKLOAD CLIENTS TARGET [extra flags...]: one measured run.
bench_run() {
  local system=$1 workload=$2 clients=$3 target=$4
  shift 4
  local ratio=1.0
  [ "$workload" = read ] && ratio=0.0
  log "$system $workload, $clients clients, ${RUN_SECONDS}s against $TARGET_ADDR"
  local json
  json=$("$QUORUM_BIN" bench --addr "$TARGET_ADDR" --target "$target" --clients "$clients" \
    --seconds "$RUN_SECONDS" --write-ratio "$ratio" --value-size "$VALUE_SIZE" --json "$@") ||
    die "bench failed for $system $workload $clients"
  [ -z "${BENCH_RESULTS:-}" ] ||
    jq -c --arg system "$system" --arg workload "$workload" '. + {system: $system, workload: $workload}' \
      <<<"$json" >>"$BENCH_RESULTS"
  jq -r --arg system "$system" --arg workload "$workload" \
    '[$system, $workload, .clients, .ops_per_sec, .all.p50_us, .all.p99_us, .errors] | @tsv' \
    <<<"$json" >>"$RESULTS"
}

# bench_system SYSTEM TARGET [extra flags...]: write runs, a preload, read runs.
bench_system() {
  local system=$1 target=$2
  shift 2
  local clients
  for clients in $CLIENT_COUNTS; do
    bench_run "$system" write "$clients" "$target" "$@"
  done
  if [ ${#PRELOAD_FLAGS[@]} -gt 0 ]; then
    log "$system: preloading $KEYSPACE keys"
    "$QUORUM_BIN" bench --addr "$TARGET_ADDR" --target "$target" --clients 16 --ops 0 \
      --write-ratio 0.0 --value-size "$VALUE_SIZE" "${PRELOAD_FLAGS[@]}" >/dev/null ||
      die "preload failed for $system"
  else
    log "$system: bench has no --preload; the write runs above wrote the keys"
  fi
  for clients in $CLIENT_COUNTS; do
    bench_run "$system" read "$clients" "$target" "$@"
  done
}

for system in $SYSTEMS; do
  case "$system" in
    quorum) start_quorum; bench_system quorum resp ;;
    etcd) start_etcd; bench_system etcd etcd ;;
    redis) start_redis; bench_system redis resp ;;
    redis-wait) start_redis; bench_system redis-wait resp --wait-replicas 2 ;;
    *) die "unknown system $system (quorum, etcd, redis, redis-wait)" ;;
  esac
  stop_all
  rm -rf "$WORK"/quorum "$WORK"/etcd? "$WORK"/redis?
done

# ---------------------------------------------------------------- table

printf '\n%s s per run, %s-byte values, %s keys, machine: %s cores\n' \
  "$RUN_SECONDS" "$VALUE_SIZE" "$KEYSPACE" "$(nproc)"
awk -F'\t' '
  { row[NR] = $0; if ($1 == "etcd") etcd[$2 "/" $3] = $4 }
  END {
    printf "%-11s %-8s %7s %12s %9s %9s %7s %9s\n", "system", "workload", "clients", "ops/s", "p50 us", "p99 us", "errors", "vs etcd"
    for (i = 1; i <= NR; i++) {
      split(row[i], f, "\t")
      base = etcd[f[2] "/" f[3]]
      ratio = (base > 0) ? sprintf("%.2fx", f[4] / base) : "-"
      printf "%-11s %-8s %7d %12.0f %9d %9d %7d %9s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], ratio
    }
  }' "$RESULTS"
