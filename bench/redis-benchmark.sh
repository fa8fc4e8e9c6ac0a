#!/usr/bin/env bash
# bench/redis-benchmark.sh — redis-benchmark against a 3-node `quorum cluster`.
#
# What it does
#   For each binary given (default: target/release/quorum), in turn: starts
#   `quorum cluster --nodes 3` (raft, fsync on) on loopback with its data in a
#   temp dir, waits for a leader, and runs redis-benchmark (Debian's
#   redis-tools) against the leader's client port:
#     1. `-t set,get -c 10`, then the same with `-P 16` (pipelined);
#     2. `-t mset -c 10` (MSET of 10 keys, one log entry) beside `-t set`:
#        the line "mset keys/s vs set keys/s" compares writing 10 keys in one
#        MSET against writing them with 10 SETs, same run;
#     3. with --all, redis-benchmark's default test list, to its end: each
#        test whose command the server lists in `COMMAND INFO` is run (one
#        `-t` list), each other one is named as skipped. (redis-benchmark
#        stops at the first error reply, so the list must be filtered.)
#   Prints redis-benchmark's `-q` lines (requests per second) per binary.
#   Everything it started is stopped on exit (trap).
#
# Usage
#   bench/redis-benchmark.sh [--all] [-n REQUESTS] [BINARY...]
#   BENCH_PORT (default 27400): ports PORT..PORT+2, +10000, +20000 must be free.
#
# Not part of the test suite: the figures depend on the machine and on what
# else runs on it. Compare binaries within one run, as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=0
REQUESTS=50000
BINARIES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --all) ALL=1 ;;
    -n) REQUESTS="$2"; shift ;;
    -*) echo "bench/redis-benchmark.sh: unknown option $1" >&2; exit 2 ;;
    *) BINARIES+=("$1") ;;
  esac
  shift
done
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=(target/release/quorum)
command -v redis-benchmark >/dev/null || { echo "bench/redis-benchmark.sh: redis-benchmark is missing (apt-get install -y redis-tools)" >&2; exit 2; }
PORT=${BENCH_PORT:-27400}

CLUSTER_PID=""
DATA=""
stop() {
  if [ -n "$CLUSTER_PID" ]; then kill "$CLUSTER_PID" 2>/dev/null || true; wait "$CLUSTER_PID" 2>/dev/null || true; fi
  CLUSTER_PID=""
  if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
  DATA=""
}
trap stop EXIT

leader_port() {
  for _ in $(seq 1 100); do
    for i in 0 1 2; do
      if redis-cli -p $((PORT + i)) INFO 2>/dev/null | grep -q '^role:leader'; then echo $((PORT + i)); return; fi
    done
    sleep 0.1
  done
  echo "bench/redis-benchmark.sh: no leader within 10 s" >&2; exit 1
}

for BIN in "${BINARIES[@]}"; do
  [ -x "$BIN" ] || { echo "bench/redis-benchmark.sh: $BIN is not an executable" >&2; exit 2; }
  DATA=$(mktemp -d)
  "$BIN" cluster --nodes 3 --port "$PORT" --data-dir "$DATA" >"$DATA.log" 2>&1 &
  CLUSTER_PID=$!
  LEADER=$(leader_port)
  echo "== $BIN (leader on port $LEADER)"
  B=(redis-benchmark -p "$LEADER" -n "$REQUESTS" -q)
  "${B[@]}" -t set,get -c 10 | tr '\r' '\n' | grep -v '^ *$' | grep -v 'rps=' || true
  echo "-- pipelined (-P 16)"
  "${B[@]}" -t set,get -c 10 -P 16 | tr '\r' '\n' | grep -v '^ *$' | grep -v 'rps=' || true
  echo "-- MSET of 10 keys against single-key SETs"
  OUT=$("${B[@]}" -t set,mset -c 10 2>&1 | tr '\r' '\n' | grep -v '^ *$' | grep -v 'rps=' || true)
  echo "$OUT"
  SET=$(echo "$OUT" | awk -F'[: ]+' '/^SET/ {print $2}')
  MSET=$(echo "$OUT" | awk -F'[: ]+' '/^MSET/ {print $4}')
  if [ -n "$SET" ] && [ -n "$MSET" ]; then
    awk -v s="$SET" -v m="$MSET" 'BEGIN { printf "mset keys/s vs set keys/s: %.0f vs %.0f (%.2fx)\n", m * 10, s, m * 10 / s }'
  fi
  if [ "$ALL" = 1 ]; then
    echo "-- the default test list"
    RUN=""; SKIPPED=""
    for TEST in ping_inline ping_mbulk set get incr lpush rpush lpop rpop sadd hset spop zadd zpopmin \
                lrange_100 lrange_300 lrange_500 lrange_600 mset xadd; do
      case "$TEST" in ping_*) CMD=ping ;; lrange_*) CMD=lrange ;; *) CMD=$TEST ;; esac
      if [ -n "$(redis-cli -p "$LEADER" COMMAND INFO "$CMD" | tr -d '[:space:]')" ]; then
        RUN="$RUN,$TEST"
      else
        SKIPPED="$SKIPPED $TEST"
      fi
    done
    echo "skipped (command not supported):$SKIPPED"
    "${B[@]}" -c 10 -t "${RUN#,}" 2>&1 | tr '\r' '\n' | grep -v '^ *$' | grep -v 'rps=' || true
  fi
  stop
  rm -f "$DATA.log"
done
