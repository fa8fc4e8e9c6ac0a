#!/bin/bash
# usage: bench/crdt-convergence.sh BINARY SEEDS NODES [extra args...]
# -> per variant of `crdt`: runs that converged, and the median / 99th
#    percentile / max of the time (ms), gossip rounds and bytes from the
#    heal and the last update to the last replica reaching the common
#    state, over seeds 0..SEEDS-1 under swarm faults.
B=$1; S=$2; N=$3; shift 3
for v in state delta; do
  for seed in $(seq 0 $((S - 1))); do
    $B sim --protocol crdt --variant $v --nodes $N --seed $seed --json "$@"
    echo
  done | python3 -c "
import json,sys
runs=[json.loads(l) for l in sys.stdin if l.strip()]
c=[r['convergence'] for r in runs]
ok=[x for x in c if x['rounds_to_converge'] is not None]
def q(xs,p):
    xs=sorted(xs); return xs[min(len(xs)-1, max(0,-(-len(xs)*p//100)-1))]
for name,key in [('ms','converge_ms'),('rounds','rounds_to_converge'),('bytes','bytes_to_converge')]:
    xs=[x[key] for x in ok]
    print('$v n=$N converged %d/%d  %-6s p50 %10s  p99 %10s  max %10s' % (len(ok), len(runs), name, q(xs,50), q(xs,99), max(xs)))
xs=[x['gossip_bytes_total'] for x in c]
print('$v n=$N gossip bytes in the whole run: p50 %d' % q(xs,50))
"
done
