#!/usr/bin/env bash
# bench/check-vs-porcupine.sh — `quorum check` against Porcupine's checker on
# every one of Porcupine's public test histories, side by side.
#
# What it does
#   1. Builds `cargo build --release -p quorum-cli` unless QUORUM_BIN is set.
#   2. If `go` is on the PATH, builds bench/porcupine-driver (a small Go program
#      that times porcupine.CheckEvents in-process, best of 3, parsing excluded)
#      against the Porcupine source given, offline (GOPROXY=off: Porcupine has no
#      dependencies). Without Go it says so and runs our side only.
#   3. Runs `quorum check --time` on each history (parse, verdict and witness
#      times, in-process, best of 3 each) and prints ONE table: history, ops,
#      Porcupine ms, ours verdict ms, ours witness ms, ratio (Porcupine ms /
#      ours verdict ms) and the two verdicts.
#   Histories: test_data/jepsen/etcd_*.log (Jepsen's etcd register histories,
#   read as --format jepsen-log) and test_data/kv/*.txt (Porcupine's key-value
#   logs, read as porcupine-kv), from the Porcupine source tree.
#   Verdicts must be identical: any mismatch is printed as MISMATCH on its row
#   and again at the end, and the script exits 1. It also counts the histories
#   where ours is not at least 2x faster (the goal of issue 18); that count is
#   reported, not fatal.
#
# Usage
#   bench/check-vs-porcupine.sh [--markdown] PORCUPINE_SRC
#   PORCUPINE_SRC=/path/to/porcupine bench/check-vs-porcupine.sh [--markdown]
#     PORCUPINE_SRC  a checkout of github.com/anishathalye/porcupine (the tree,
#                    with porcupine.go and test_data/); no network is used
#     --markdown     print the table as Markdown (as in README "Histories")
#   Environment:
#     QUORUM_BIN     the quorum binary (default: build target/release/quorum)
#     GO             the go binary (default: go on the PATH)
#
# Not part of CI: a long run (about a minute; Porcupine takes seconds on a few
# etcd histories), and its figures depend on the machine. Compare ratios.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

MARKDOWN=0
SRC=${PORCUPINE_SRC:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --markdown) MARKDOWN=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    *) SRC=$1; shift ;;
  esac
done
[ -n "$SRC" ] || { echo "usage: $0 [--markdown] PORCUPINE_SRC (or set PORCUPINE_SRC)" >&2; exit 2; }
SRC=$(cd "$SRC" && pwd) || exit 2
[ -f "$SRC/porcupine.go" ] && [ -d "$SRC/test_data/jepsen" ] && [ -d "$SRC/test_data/kv" ] || {
  echo "$SRC is not a Porcupine source tree (porcupine.go, test_data/jepsen, test_data/kv)" >&2; exit 2; }

log() { printf '== %s\n' "$*" >&2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ -z "${QUORUM_BIN:-}" ]; then
  log "building quorum (release)"
  cargo build --release -q -p quorum-cli
  QUORUM_BIN=$REPO/target/release/quorum
fi

HISTORIES=$(ls "$SRC"/test_data/jepsen/etcd_*.log "$SRC"/test_data/kv/*.txt)

GO=${GO:-go}
PORCUPINE=0
if command -v "$GO" >/dev/null; then
  log "building the Porcupine driver with $("$GO" version) against $SRC"
  mkdir -p "$WORK/driver"
  cp "$REPO/bench/porcupine-driver/main.go" "$WORK/driver/"
  cat > "$WORK/driver/go.mod" <<GOMOD
module porcupine-driver

go 1.16

require github.com/anishathalye/porcupine v0.0.0

replace github.com/anishathalye/porcupine => $SRC
GOMOD
  (cd "$WORK/driver" && GOFLAGS=-mod=mod GOPROXY=off "$GO" build -o "$WORK/porcupine-driver" .)
  log "running Porcupine (in-process, best of 3 per history)"
  # shellcheck disable=SC2086
  "$WORK/porcupine-driver" $HISTORIES > "$WORK/porcupine.txt"
  PORCUPINE=1
else
  log "go not found: the Porcupine side is SKIPPED (apt-get install golang-go); our side only"
fi

log "running quorum check --time (in-process, best of 3 per phase)"
MISMATCHES=0
SLOW=0
ROWS=0
if [ $MARKDOWN = 1 ]; then
  echo "| history | ops | Porcupine ms | ours verdict ms | ours witness ms | ratio | verdicts |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
else
  printf '%-14s %5s %12s %12s %12s %8s  %s\n' history ops porcupine_ms verdict_ms witness_ms ratio verdicts
fi
for file in $HISTORIES; do
  name=$(basename "$file")
  set +e
  timing=$("$QUORUM_BIN" check --time "$file" 2>&1 >/dev/null)
  code=$?
  set -e
  case $code in
    0) ours=linearizable ;;
    1) ours=not-linearizable ;;
    3) ours=unknown ;;
    *) echo "quorum check failed on $file (exit $code): $timing" >&2; exit 1 ;;
  esac
  verdict_ms=$(sed -n 's/.*verdict \([0-9.]*\) ms.*/\1/p' <<<"$timing")
  witness_ms=$(sed -n 's/.*witness \([0-9.]*\) ms.*/\1/p' <<<"$timing")
  witness_ms=${witness_ms:--}
  ops=$(grep -c ':invoke' "$file" || true)
  if [ $PORCUPINE = 1 ]; then
    read -r _ _ theirs porcupine_ms < <(grep -F "$file " "$WORK/porcupine.txt")
    ratio=$(awk -v p="$porcupine_ms" -v o="$verdict_ms" 'BEGIN { printf "%.1f", (o > 0 ? p / o : 999) }')
    verdicts="both $ours"
    if [ "$theirs" != "$ours" ]; then
      verdicts="MISMATCH: porcupine $theirs, ours $ours"
      MISMATCHES=$((MISMATCHES + 1))
      echo "!!! MISMATCH on $file: Porcupine says $theirs, quorum says $ours" >&2
    fi
    awk -v r="$ratio" 'BEGIN { exit !(r < 2) }' && SLOW=$((SLOW + 1))
  else
    porcupine_ms=-; ratio=-; verdicts="ours $ours"
  fi
  ROWS=$((ROWS + 1))
  if [ $MARKDOWN = 1 ]; then
    echo "| $name | $ops | $porcupine_ms | $verdict_ms | $witness_ms | $ratio | $verdicts |"
  else
    printf '%-14s %5s %12s %12s %12s %8s  %s\n' "$name" "$ops" "$porcupine_ms" "$verdict_ms" "$witness_ms" "$ratio" "$verdicts"
  fi
done

if [ $PORCUPINE = 0 ]; then
  log "$ROWS histories checked by quorum only (no Go: Porcupine SKIPPED, nothing compared)"
  exit 0
fi
log "$ROWS histories; ours at least 2x faster than Porcupine (verdict time) on $((ROWS - SLOW)), not on $SLOW"
if [ $MISMATCHES -gt 0 ]; then
  echo "!!! $MISMATCHES VERDICT MISMATCH(ES) between Porcupine and quorum: see the rows marked MISMATCH" >&2
  exit 1
fi
log "verdicts identical on all $ROWS histories"
