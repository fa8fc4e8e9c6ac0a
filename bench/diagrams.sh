#!/bin/bash
# usage: bench/diagrams.sh [BINARY]  -> regenerates every picture in docs/img
# (space-time diagrams of fixed runs and scripts: same binary, same files).
set -euo pipefail
Q=${1:-target/release/quorum}
D=docs/img
mkdir -p "$D"
# The source text's "Synchronous" figure: the client's write to n0, n0
# replicating to every node and waiting for all of them, then the answer.
$Q sim --protocol sync --nodes 3 --faults none --ops 2 --clients 1 --seed 2 --latency-us 1000 \
  --svg $D/replication-sync.svg --svg-window 1029..1036 >/dev/null
# "Asynchronous": n0 answers at once, before writing anything; it pushes the
# write to the others on its next timer, and each flushes to disk later.
$Q sim --protocol async --nodes 3 --faults none --ops 2 --clients 1 --seed 2 --latency-us 1000 \
  --svg $D/replication-async.svg --svg-window 1029..1112 >/dev/null
# Paxos, the walkthrough scenario: two proposers, a Nack, the higher ballot
# adopting nothing, every acceptor telling every learner.
$Q script crates/protocols/scenarios/paxos/walkthrough.txt --svg $D/paxos-walkthrough.svg >/dev/null
# 3PC without synchrony: the model checker's shortest counterexample,
# replayed: a timeout fires while the answer is on its way, and the
# participants decide differently (the script is kept beside the picture).
cx=$D/3pc-split.txt
$Q model --protocol 3pc --crashes 1 --timeouts 3 --asynchronous --script "$cx" >/dev/null || true
$Q script "$cx" --svg $D/3pc-split.svg >/dev/null

# A run under faults: raft, a partition and a crash, its first 1.2 s.
$Q sim --protocol raft --nodes 5 --faults none --ops 40 --seed 7 \
  --schedule '300:part=0.1|2.3.4,700:heal,800:crash=2,1000:restart=2' \
  --svg $D/raft-partition.svg --svg-window 0..1200 >/dev/null
ls -l $D
