//! Convergence: after the network heals and the cluster is quiet, do the
//! replicas hold the same state? Each node reports a digest of its
//! replicated state ([`quorum_core::Protocol::state_digest`]); replicas that
//! converged report equal digests.
//!
//! For gossiping protocols (CRDTs), [`time_to_converge`] also reads the
//! replicas' reports over time (`Observation::Replica`: digest, gossip
//! rounds and bytes sent) and says when they last changed to the common
//! state, and how many rounds and bytes of gossip that took.

use quorum_core::NodeId;

/// `None` if no node has a digest (the protocol keeps no replicated state);
/// otherwise whether every node that has one reports the same digest.
pub fn converged(digests: &[(NodeId, Option<u64>)]) -> Option<bool> {
    let mut present = digests.iter().filter_map(|(_, digest)| *digest);
    let first = present.next()?;
    Some(present.all(|digest| digest == first))
}

/// The nodes whose digest differs from the most common one (ties broken by
/// the smaller digest), ascending: who is behind or diverged.
pub fn divergent_nodes(digests: &[(NodeId, Option<u64>)]) -> Vec<NodeId> {
    let mut counts: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for digest in digests.iter().filter_map(|(_, d)| *d) {
        *counts.entry(digest).or_default() += 1;
    }
    let Some(majority) = counts.iter().max_by_key(|(d, c)| (**c, std::cmp::Reverse(**d))) else {
        return Vec::new();
    };
    let majority = *majority.0;
    let mut nodes: Vec<NodeId> =
        digests.iter().filter(|(_, d)| d.is_some_and(|d| d != majority)).map(|(node, _)| *node).collect();
    nodes.sort();
    nodes
}

/// A replica's report at `time_us`: its state's digest, and the gossip
/// rounds it ran and bytes it sent since it (re)started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaReport {
    pub node: NodeId,
    pub time_us: u64,
    pub digest: u64,
    pub rounds: u64,
    pub bytes_sent: u64,
}

/// How the replicas converged after a point in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Convergence {
    /// When the last replica reached the common final state.
    pub converged_at_us: u64,
    /// From `since` to then (0 if they were equal by `since`).
    pub after_us: u64,
    /// The most gossip rounds one replica ran in that time.
    pub rounds: u64,
    /// Gossip bytes all replicas sent in that time.
    pub bytes: u64,
}

/// From each replica's reports (in time order): `None` if their last
/// digests differ (diverged, or still converging); otherwise when the last
/// of them changed to the common digest, and the rounds and bytes of gossip
/// spent in `(since_us, converged_at]`. Counters that go down mark a
/// restart (they start again from 0).
pub fn time_to_converge(reports: &[ReplicaReport], since_us: u64) -> Option<Convergence> {
    let mut by_node: std::collections::BTreeMap<NodeId, Vec<&ReplicaReport>> = Default::default();
    for report in reports {
        by_node.entry(report.node).or_default().push(report);
    }
    let finals: Vec<u64> = by_node.values().map(|r| r.last().expect("non-empty").digest).collect();
    if finals.windows(2).any(|pair| pair[0] != pair[1]) {
        return None;
    }
    let common = *finals.first()?;
    // Each node reached its final state at its first report after the last
    // report with another digest.
    let reached = by_node.values().map(|r| {
        let last_other = r.iter().rposition(|x| x.digest != common);
        r[last_other.map_or(0, |i| i + 1)].time_us
    });
    let converged_at_us = reached.max().unwrap_or(0);
    let window = |t: u64| t > since_us && t <= converged_at_us;
    let mut rounds = 0;
    let mut bytes = 0;
    for node_reports in by_node.values() {
        let (mut node_rounds, mut last) = (0, (0, 0));
        for report in node_reports {
            let grew = |now: u64, before: u64| if now >= before { now - before } else { now };
            if window(report.time_us) {
                node_rounds += grew(report.rounds, last.0);
                bytes += grew(report.bytes_sent, last.1);
            }
            last = (report.rounds, report.bytes_sent);
        }
        rounds = rounds.max(node_rounds);
    }
    Some(Convergence { converged_at_us, after_us: converged_at_us.saturating_sub(since_us), rounds, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: u32, time_us: u64, digest: u64, rounds: u64, bytes_sent: u64) -> ReplicaReport {
        ReplicaReport { node: NodeId(node), time_us, digest, rounds, bytes_sent }
    }

    #[test]
    fn converging_replicas_give_rounds_and_bytes_after_the_heal() {
        let reports = [
            report(0, 10, 1, 1, 100),
            report(1, 10, 2, 1, 100),
            report(0, 20, 3, 2, 200), // heal at 15: counted from here
            report(1, 30, 3, 2, 250),
            report(0, 40, 3, 3, 300), // after convergence: not counted
        ];
        let c = time_to_converge(&reports, 15).unwrap();
        assert_eq!(c, Convergence { converged_at_us: 30, after_us: 15, rounds: 1, bytes: 250 });
    }

    #[test]
    fn diverged_replicas_have_no_time_to_converge() {
        let reports = [report(0, 10, 1, 1, 0), report(1, 10, 1, 1, 0), report(1, 20, 2, 2, 0)];
        assert_eq!(time_to_converge(&reports, 0), None);
    }

    #[test]
    fn a_restart_counts_its_rounds_from_zero() {
        let reports = [report(0, 10, 1, 5, 500), report(0, 20, 9, 0, 0), report(0, 30, 1, 2, 80)];
        let c = time_to_converge(&reports, 0).unwrap();
        assert_eq!((c.converged_at_us, c.rounds, c.bytes), (30, 7, 580));
    }

    #[test]
    fn equal_digests_converge_and_none_is_not_applicable() {
        assert_eq!(converged(&[]), None);
        assert_eq!(converged(&[(NodeId(0), None), (NodeId(1), None)]), None);
        assert_eq!(converged(&[(NodeId(0), Some(5)), (NodeId(1), None), (NodeId(2), Some(5))]), Some(true));
    }

    #[test]
    fn a_different_digest_is_divergence() {
        let digests = [(NodeId(0), Some(5)), (NodeId(1), Some(6)), (NodeId(2), Some(5))];
        assert_eq!(converged(&digests), Some(false));
        assert_eq!(divergent_nodes(&digests), vec![NodeId(1)]);
    }
}
