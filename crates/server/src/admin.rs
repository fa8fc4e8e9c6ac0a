//! Operator commands over RESP: `ADMIN STATUS` answers this node's view of
//! the cluster as one JSON object (`quorum admin --addr A status` asks every
//! node it can reach and prints the table).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use quorum_core::NodeId;
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::node::Status;

/// `ADMIN STATUS`'s answer: role, term, the replication progress (commit
/// and applied indexes, members, each follower's match and lag on a
/// leader), the other nodes' client addresses this node knows, and the
/// counters an operator watches.
pub fn status_json(
    protocol: &str,
    status: &Status,
    metrics: &Metrics,
    client_addrs: &BTreeMap<NodeId, String>,
) -> Value {
    let progress = status.progress.clone().unwrap_or_default();
    let followers: Vec<Value> = progress
        .followers
        .iter()
        .map(|(node, matched)| {
            json!({ "id": node.0, "match_index": matched, "lag": progress.last_index.saturating_sub(*matched) })
        })
        .collect();
    let addrs: BTreeMap<String, &String> = client_addrs.iter().map(|(n, a)| (n.0.to_string(), a)).collect();
    let (quantiles, count, _) = metrics.commit_quantiles();
    let latency: BTreeMap<String, u64> =
        quantiles.iter().map(|(q, us)| (format!("p{}", q * 100.0), *us)).collect();
    json!({
        "id": status.id.0,
        "protocol": protocol,
        "role": status.role,
        "term": status.term,
        "leader": progress.leader.map(|n| n.0),
        "commit_index": progress.commit_index,
        "applied_index": progress.applied_index,
        "last_index": progress.last_index,
        "voters": progress.voters.iter().map(|n| n.0).collect::<Vec<_>>(),
        "learners": progress.learners.iter().map(|n| n.0).collect::<Vec<_>>(),
        "followers": followers,
        "client_addrs": addrs,
        "leader_changes_seen": metrics.leader_changes.load(Relaxed),
        "proposals_committed": metrics.proposals_committed.load(Relaxed),
        "proposals_failed": metrics.proposals_failed.load(Relaxed),
        "snapshot_sends": metrics.snapshot_sends.load(Relaxed),
        "commit_latency_us": latency,
        "commits_timed": count,
    })
}
