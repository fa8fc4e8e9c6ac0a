#!/bin/bash
# usage: bench/positive.sh BINARY SEEDS -> one line per protocol (and variant) at 5 nodes, swarm default
B=$1; S=$2
for pv in sync async primary-backup:sync primary-backup:async abd paxos multi-paxos fast-paxos raft zab 2pc 3pc crdt:state crdt:delta; do
  p=${pv%%:*}; v=""; [ "$p" != "$pv" ] && v="--variant ${pv#*:}"
  $B explore --protocol $p $v --nodes 5 --seeds $S --json 2>/dev/null | python3 -c "
import json,sys
d=json.load(sys.stdin)
print('$pv', 'violating', d['violating_runs'], {k:v for k,v in d['violations'].items() if v}, 'first', (d.get('first') or {}).get('seed'), 'wall_ms', d['wall_ms'], 'events/s', d.get('events_per_second'))
"
done
