//! Convergence: after the network heals and the cluster is quiet, do the
//! replicas hold the same state? Each node reports a digest of its
//! replicated state ([`quorum_core::Protocol::state_digest`]); replicas that
//! converged report equal digests.

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

#[cfg(test)]
mod tests {
    use super::*;

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
