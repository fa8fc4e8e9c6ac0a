#!/bin/bash
# usage: bench/bugs.sh BINARY SEEDS [extra args...]  -> one line per (bug, nodes)
B=$1; S=$2; shift 2
for pb in raft:commit-old-term raft:no-persist-vote raft:stale-read raft:no-sessions paxos:accept-without-promise-check paxos:forget-promises multi-paxos:skip-phase1-recovery multi-paxos:unconfirmed-reads zab:skip-sync-truncate zab:commit-without-quorum 2pc:no-force-prepare 2pc:no-force-decision 3pc:no-force-prepare ben-or:decide-on-f-proposals fast-paxos:fast-quorum-majority fast-paxos:ignore-fast-votes crdt:sum-merge crdt:reset-without-coordination crdt:remove-without-tombstone; do
  p=${pb%%:*}; b=${pb#*:}
  for n in 3 5; do
    out=$(timeout 900 $B explore --protocol $p --bug $b --nodes $n --seeds $S --json "$@" 2>/dev/null)
    echo "$p $b n=$n $(echo "$out" | python3 -c "
import json,sys
try:
    d=json.load(sys.stdin)
except Exception:
    print('TIMEOUT/ERROR'); sys.exit()
f=d.get('first') or {}
print('focus_runs', d.get('focus_runs'), 'violating', d['violating_runs'], 'first', f.get('seed'), {k:v for k,v in d['violations'].items() if v}, 'wall', d['wall_ms'])
")"
  done
done
