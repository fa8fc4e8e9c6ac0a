#!/usr/bin/env bash
# bench/fsync-paths.sh — where a single client's write waits: which fsyncs are on its path.
#
# What it does
#   Starts a 3-node quorum cluster as three `quorum serve` processes on loopback
#   (so each node can have its own fsync setting), makes node 0 the leader (it
#   gets a shorter election timeout; the run is retried if another node wins),
#   and measures one client writing (`quorum bench --clients 1 --write-ratio 1`)
#   under four settings, alternated round by round:
#     all        every node fsyncs (the real thing)
#     leader     only the leader fsyncs: one flush on the path, nothing competing
#     followers  only the two followers fsync: the commit waits for the first of
#                two flushes issued together
#     none       nobody fsyncs: the network, the wake-ups and the protocol alone
#   and prints one table: setting, ops/s, p50, p99 (median of the rounds' p50s).
#
#   Read it as: none = everything but the disk; leader - none = one uncontended
#   flush; all - leader = what three nodes flushing one shared disk add. On this
#   machine the three nodes share one virtual disk whose flushes serialize, so
#   `all` is slower than a cluster whose nodes each own a disk would be; `leader`
#   approximates the latter (one flush per node, none waiting for another's).
#   `leader`, `followers` and `none` lose acknowledged writes in a crash: they
#   are for this measurement only.
#
# Usage
#   bench/fsync-paths.sh [--seconds N] [--rounds R]
#     --seconds N   length of each measured run (default 5)
#     --rounds R    rounds of the four settings (default 2)
#   Environment:
#     QUORUM_BIN        the quorum binary; default: built with cargo (release)
#     BENCH_BASE_PORT   first port used (default 27300); BASE..BASE+30 must be free
#
# Not part of the test suite (it takes about a minute per round).
set -euo pipefail

cd "$(dirname "$0")/.."

RUN_SECONDS=5
ROUNDS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fsync-paths.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'fsync-paths.sh: %s\n' "$*" >&2; exit 1; }

command -v redis-cli >/dev/null 2>&1 || die "needs redis-cli (apt-get install redis-tools) to find the leader"
command -v jq >/dev/null 2>&1 || die "needs jq (apt-get install jq)"
if [ -z "${QUORUM_BIN:-}" ]; then
  log "building quorum (release)"
  cargo build --release -p quorum-cli
  QUORUM_BIN=$PWD/target/release/quorum
fi
[ -x "$QUORUM_BIN" ] || die "no executable at QUORUM_BIN=$QUORUM_BIN"

BASE=${BENCH_BASE_PORT:-27300}
CLIENT_PORT=$BASE        # +0..+2
PEER_PORT=$((BASE + 10)) # +10..+12
WORK=$(mktemp -d "${TMPDIR:-/tmp}/quorum-fsync-paths.XXXXXX")
PIDS=()

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'status=$?; stop_all; [ $status != 0 ] || rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# is_leader PORT: the node on PORT says role:leader.
is_leader() { redis-cli -p "$1" INFO 2>/dev/null | tr -d '\r' | grep -qx 'role:leader'; }

# start LEADER_FSYNC FOLLOWER_FSYNC (yes|no each): a fresh cluster led by node 0.
start() {
  local attempt i
  for attempt in 1 2 3 4 5; do
    rm -rf "$WORK/data"
    for i in 0 1 2; do
      local flags=() peers="" j
      for j in 0 1 2; do
        [ "$j" = "$i" ] || peers+="${peers:+,}$j=127.0.0.1:$((PEER_PORT + j))"
      done
      if [ "$i" = 0 ]; then
        [ "$1" = yes ] || flags+=(--no-fsync)
        # Node 0 times out first after a start, so it usually wins the election.
        flags+=(--config '{"election_timeout_min":300000,"election_timeout_max":350000}')
      else
        [ "$2" = yes ] || flags+=(--no-fsync)
      fi
      QUORUM_CLUSTER_SECRET=fsync-paths "$QUORUM_BIN" serve --id "$i" \
        --listen "127.0.0.1:$((CLIENT_PORT + i))" --peer-listen "127.0.0.1:$((PEER_PORT + i))" \
        --peers "$peers" --data-dir "$WORK/data/n$i" "${flags[@]}" >"$WORK/node$i.log" 2>&1 &
      PIDS+=($!)
    done
    local waited
    for waited in $(seq 1 50); do
      if is_leader "$CLIENT_PORT"; then
        return 0
      fi
      for i in 1 2; do
        is_leader $((CLIENT_PORT + i)) && break 2
      done
      sleep 0.2
    done
    log "node 0 did not become the leader (attempt $attempt); restarting the cluster"
    stop_all
  done
  die "node 0 never became the leader in 5 attempts (logs in $WORK)"
}

# measure NAME: one run against node 0; appends "NAME ops p50 p99" to results.
measure() {
  local json
  json=$("$QUORUM_BIN" bench --addr "127.0.0.1:$CLIENT_PORT" --clients 1 --write-ratio 1 \
    --seconds "$RUN_SECONDS" --warmup-seconds 1 --json) || die "bench failed for $1"
  [ "$(jq .errors <<<"$json")" = 0 ] || log "$1: $(jq .errors <<<"$json") errors"
  printf '%s %s %s %s\n' "$1" "$(jq '.ops_per_sec | floor' <<<"$json")" \
    "$(jq .write.p50_us <<<"$json")" "$(jq .write.p99_us <<<"$json")" >>"$WORK/results"
}

SETTINGS=("all yes yes" "leader yes no" "followers no yes" "none no no")
for round in $(seq 1 "$ROUNDS"); do
  for setting in "${SETTINGS[@]}"; do
    read -r name leader followers <<<"$setting"
    log "round $round/$ROUNDS: $name"
    start "$leader" "$followers"
    measure "$name"
    stop_all
  done
done

printf '\n%-10s %-24s %10s %9s %9s\n' setting "nodes that fsync" "ops/s" "p50 µs" "p99 µs"
for setting in "${SETTINGS[@]}"; do
  read -r name leader followers <<<"$setting"
  case "$name" in
    all) who="leader and followers" ;; leader) who="leader only" ;;
    followers) who="followers only" ;; none) who="none" ;;
  esac
  # Median of the rounds (lower median for an even count), per column.
  median() { grep "^$name " "$WORK/results" | awk "{print \$$1}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
  printf '%-10s %-24s %10s %9s %9s\n' "$name" "$who" "$(median 2)" "$(median 3)" "$(median 4)"
done
