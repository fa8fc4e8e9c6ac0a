//! The consensus properties of the source text, state machine safety of
//! replicated logs, and split-brain detection.
//!
//! For each consensus instance (a single-decree Paxos run, a log slot):
//!
//! - **Agreement**: no two nodes decide different values.
//! - **Validity**: a decided value was proposed (for that instance).
//! - **Integrity**: a node decides at most once. Deciding the same value
//!   again (after a restart, a duplicate learn) is harmless; deciding a
//!   different value is a violation.
//! - **Termination**: every live node eventually decides. It only holds once
//!   the network heals (FLP), so the simulator asks for it in the liveness
//!   phase: every live node must have decided every instance any node
//!   proposed.
//!
//! [`LogSafety`] checks the replicated-log form (Raft §5.4.3, "State Machine
//! Safety"): no two nodes apply different commands at one index. And
//! [`split_brain`] finds two leaders that both acknowledged writes while
//! their leaderships overlapped in time.

use std::collections::{BTreeMap, BTreeSet};

use quorum_core::{NodeId, Observation, Role};
use serde::Serialize;

/// A broken consensus property. Values are the protocol's value digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ConsensusViolation {
    /// `a` and `b` are `(node, value)` decisions that differ.
    Agreement { instance: u64, a: (NodeId, u64), b: (NodeId, u64) },
    /// `node` decided `value`, which nobody proposed for `instance`.
    Validity { instance: u64, node: NodeId, value: u64 },
    /// `node` decided `first`, then a different `second`.
    Integrity { instance: u64, node: NodeId, first: u64, second: u64 },
    /// Live `node` never decided `instance`, which was proposed.
    Termination { instance: u64, node: NodeId },
}

/// Proposals and decisions as protocols report them, for
/// [`ConsensusLog::check`].
#[derive(Clone, Debug, Default)]
pub struct ConsensusLog {
    proposals: BTreeMap<u64, BTreeSet<u64>>,
    /// Per instance, per node, every decision in the order reported.
    decisions: BTreeMap<u64, BTreeMap<NodeId, Vec<(u64, u64)>>>,
}

impl ConsensusLog {
    pub fn new() -> ConsensusLog {
        ConsensusLog::default()
    }

    /// `node` proposed `value` for `instance`.
    pub fn propose(&mut self, node: NodeId, instance: u64, value: u64) {
        let _ = node;
        self.proposals.entry(instance).or_default().insert(value);
    }

    /// `node` decided `value` for `instance` at `time` (micros).
    pub fn decide(&mut self, node: NodeId, instance: u64, value: u64, time: u64) {
        self.decisions.entry(instance).or_default().entry(node).or_default().push((value, time));
    }

    /// Feed a protocol observation (`Propose` and `Decide`; others ignored).
    pub fn observe(&mut self, node: NodeId, observation: &Observation, time: u64) {
        match *observation {
            Observation::Propose { instance, value } => self.propose(node, instance, value),
            Observation::Decide { instance, value } => self.decide(node, instance, value, time),
            _ => {}
        }
    }

    /// Every instance some node decided, ascending.
    pub fn decided_instances(&self) -> impl Iterator<Item = u64> + '_ {
        self.decisions.keys().copied()
    }

    /// The first value `node` decided for `instance`.
    pub fn decision(&self, node: NodeId, instance: u64) -> Option<u64> {
        self.decisions.get(&instance)?.get(&node)?.first().map(|(value, _)| *value)
    }

    /// Every violation, grouped by instance ascending. Agreement compares
    /// each node's first decision against the earliest decision of the
    /// instance (one violation per disagreeing node). Termination is judged
    /// only when `require_termination`, for the nodes in `live_nodes`.
    pub fn check(&self, live_nodes: &[NodeId], require_termination: bool) -> Vec<ConsensusViolation> {
        let mut violations = Vec::new();
        let instances: BTreeSet<u64> = self.proposals.keys().chain(self.decisions.keys()).copied().collect();
        for instance in instances {
            let deciders = self.decisions.get(&instance);
            if let Some(deciders) = deciders {
                self.check_safety(instance, deciders, &mut violations);
            }
            if require_termination && self.proposals.contains_key(&instance) {
                for &node in live_nodes {
                    if deciders.is_none_or(|d| !d.contains_key(&node)) {
                        violations.push(ConsensusViolation::Termination { instance, node });
                    }
                }
            }
        }
        violations
    }

    fn check_safety(
        &self,
        instance: u64,
        deciders: &BTreeMap<NodeId, Vec<(u64, u64)>>,
        violations: &mut Vec<ConsensusViolation>,
    ) {
        let proposed = self.proposals.get(&instance);
        // The earliest decision (ties: smaller node) is the reference.
        let reference = deciders
            .iter()
            .map(|(node, decisions)| (decisions[0].1, *node, decisions[0].0))
            .min()
            .map(|(_, node, value)| (node, value));
        for (&node, decisions) in deciders {
            let first = decisions[0].0;
            if let Some((reference_node, reference_value)) = reference {
                if first != reference_value {
                    violations.push(ConsensusViolation::Agreement {
                        instance,
                        a: (reference_node, reference_value),
                        b: (node, first),
                    });
                }
            }
            let mut reported_validity = BTreeSet::new();
            for &(value, _) in decisions {
                if value != first {
                    violations.push(ConsensusViolation::Integrity { instance, node, first, second: value });
                }
                if proposed.is_none_or(|p| !p.contains(&value)) && reported_validity.insert(value) {
                    violations.push(ConsensusViolation::Validity { instance, node, value });
                }
            }
        }
    }
}

/// Two nodes applied different commands at one log index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogSafetyViolation {
    pub index: u64,
    /// `(node, term, command)` of the first apply seen at `index`.
    pub first: (NodeId, u64, u64),
    /// `(node, term, command)` of the conflicting apply.
    pub second: (NodeId, u64, u64),
}

/// State machine safety for replicated logs: fed every apply, remembers the
/// first command applied at each index and reports any different one
/// (from any node, including the same node after a restart).
#[derive(Clone, Debug, Default)]
pub struct LogSafety {
    applied: BTreeMap<u64, (NodeId, u64, u64)>,
    violations: Vec<LogSafetyViolation>,
}

impl LogSafety {
    pub fn new() -> LogSafety {
        LogSafety::default()
    }

    /// `node` applied the command with digest `command_digest`, from `term`,
    /// at log `index`.
    pub fn apply(&mut self, node: NodeId, index: u64, term: u64, command_digest: u64) {
        let this = (node, term, command_digest);
        match self.applied.get(&index) {
            None => {
                self.applied.insert(index, this);
            }
            Some(&first) if first.2 != command_digest => {
                self.violations.push(LogSafetyViolation { index, first, second: this });
            }
            Some(_) => {}
        }
    }

    /// Feed a protocol observation (`Apply`; others ignored).
    pub fn observe(&mut self, node: NodeId, observation: &Observation) {
        if let Observation::Apply { index, term, command } = *observation {
            self.apply(node, index, term, command);
        }
    }

    /// Violations in the order they were found.
    pub fn violations(&self) -> &[LogSafetyViolation] {
        &self.violations
    }

    /// The highest index any node applied, if any (a "sometimes" twin: the
    /// check means nothing if nothing was applied).
    pub fn highest_applied(&self) -> Option<u64> {
        self.applied.keys().next_back().copied()
    }
}

/// One node's leadership: leader of `term` during `[start, end)` micros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LeaderInterval {
    pub node: NodeId,
    pub term: u64,
    pub start: u64,
    pub end: u64,
}

/// Two leaders at once, each of which acknowledged a write while the other
/// was also leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SplitBrain {
    pub first: LeaderInterval,
    pub second: LeaderInterval,
    /// The overlap `[start, end)`.
    pub overlap: (u64, u64),
    /// The earliest write acknowledged in the overlap by `first.node` and by
    /// `second.node`, in micros.
    pub first_ack: u64,
    pub second_ack: u64,
}

/// Pairs of leader intervals of different nodes that overlap in time and in
/// whose overlap both nodes acknowledged a write (`acked_writes` holds
/// `(node, time)`). Each pair is reported once, `first` being the earlier in
/// `leadership`'s order.
pub fn split_brain(leadership: &[LeaderInterval], acked_writes: &[(NodeId, u64)]) -> Vec<SplitBrain> {
    let mut by_node: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
    for &(node, time) in acked_writes {
        by_node.entry(node).or_default().push(time);
    }
    for times in by_node.values_mut() {
        times.sort_unstable();
    }
    let first_ack_in = |node: NodeId, lo: u64, hi: u64| -> Option<u64> {
        let times = by_node.get(&node)?;
        let at = times.partition_point(|&t| t < lo);
        times.get(at).copied().filter(|&t| t < hi)
    };
    let mut found = Vec::new();
    for (i, a) in leadership.iter().enumerate() {
        for b in &leadership[i + 1..] {
            if a.node == b.node {
                continue;
            }
            let (lo, hi) = (a.start.max(b.start), a.end.min(b.end));
            if lo >= hi {
                continue;
            }
            if let (Some(first_ack), Some(second_ack)) =
                (first_ack_in(a.node, lo, hi), first_ack_in(b.node, lo, hi))
            {
                found.push(SplitBrain { first: *a, second: *b, overlap: (lo, hi), first_ack, second_ack });
            }
        }
    }
    found
}

/// Leader intervals from a node's `Role` observations in time order:
/// leadership lasts until the node's next `Role` observation, its crash
/// (pass the crash as a `Follower` observation) or `end_of_run`.
pub fn leader_intervals(observations: &[(NodeId, u64, Role, u64)], end_of_run: u64) -> Vec<LeaderInterval> {
    let mut open: BTreeMap<NodeId, (u64, u64)> = BTreeMap::new();
    let mut intervals = Vec::new();
    for &(node, time, role, term) in observations {
        if let Some((term, start)) = open.remove(&node) {
            intervals.push(LeaderInterval { node, term, start, end: time });
        }
        if role == Role::Leader {
            open.insert(node, (term, time));
        }
    }
    for (node, (term, start)) in open {
        intervals.push(LeaderInterval { node, term, start, end: end_of_run });
    }
    intervals.sort_by_key(|i| (i.start, i.node));
    intervals
}

#[cfg(test)]
mod tests {
    use super::*;

    const N0: NodeId = NodeId(0);
    const N1: NodeId = NodeId(1);
    const N2: NodeId = NodeId(2);

    #[test]
    fn agreeing_valid_single_decisions_pass() {
        let mut log = ConsensusLog::new();
        log.propose(N0, 1, 8);
        log.propose(N1, 1, 5);
        for (node, time) in [(N0, 10), (N1, 12), (N2, 15)] {
            log.decide(node, 1, 8, time);
        }
        log.decide(N2, 1, 8, 40); // re-decided after a restart: fine
        assert!(log.check(&[N0, N1, N2], true).is_empty());
        assert_eq!(log.decision(N2, 1), Some(8));
    }

    #[test]
    fn disagreement_is_caught() {
        let mut log = ConsensusLog::new();
        log.propose(N0, 1, 8);
        log.propose(N1, 1, 5);
        log.decide(N0, 1, 8, 10);
        log.decide(N1, 1, 5, 11);
        assert_eq!(
            log.check(&[N0, N1], false),
            vec![ConsensusViolation::Agreement { instance: 1, a: (N0, 8), b: (N1, 5) }]
        );
    }

    #[test]
    fn unproposed_value_breaks_validity() {
        let mut log = ConsensusLog::new();
        log.propose(N0, 2, 8);
        log.decide(N0, 2, 9, 10);
        assert_eq!(
            log.check(&[N0], false),
            vec![ConsensusViolation::Validity { instance: 2, node: N0, value: 9 }]
        );
    }

    #[test]
    fn deciding_a_different_value_breaks_integrity() {
        let mut log = ConsensusLog::new();
        log.propose(N0, 1, 8);
        log.propose(N0, 1, 5);
        log.decide(N0, 1, 8, 10);
        log.decide(N0, 1, 5, 20);
        assert_eq!(
            log.check(&[N0], false),
            vec![ConsensusViolation::Integrity { instance: 1, node: N0, first: 8, second: 5 }]
        );
    }

    #[test]
    fn termination_requires_every_live_node_to_decide() {
        let mut log = ConsensusLog::new();
        log.observe(N0, &Observation::Propose { instance: 3, value: 1 }, 0);
        log.observe(N0, &Observation::Decide { instance: 3, value: 1 }, 5);
        assert!(log.check(&[N0, N1], false).is_empty());
        assert_eq!(
            log.check(&[N0, N1], true),
            vec![ConsensusViolation::Termination { instance: 3, node: N1 }]
        );
    }

    #[test]
    fn different_commands_at_one_index_break_log_safety() {
        let mut safety = LogSafety::new();
        safety.apply(N0, 1, 1, 100);
        safety.apply(N1, 1, 1, 100);
        safety.observe(N2, &Observation::Apply { index: 2, term: 1, command: 7 });
        assert!(safety.violations().is_empty());
        safety.apply(N1, 2, 2, 8);
        assert_eq!(
            safety.violations(),
            &[LogSafetyViolation { index: 2, first: (N2, 1, 7), second: (N1, 2, 8) }]
        );
        assert_eq!(safety.highest_applied(), Some(2));
    }

    #[test]
    fn overlapping_leaders_that_both_ack_are_split_brain() {
        let leadership = [
            LeaderInterval { node: N0, term: 1, start: 0, end: 100 },
            LeaderInterval { node: N1, term: 2, start: 50, end: 200 },
            LeaderInterval { node: N2, term: 3, start: 300, end: 400 },
        ];
        // Both ack inside [50, 100): split brain.
        let found = split_brain(&leadership, &[(N0, 60), (N1, 70), (N0, 80), (N2, 350)]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].first.node, found[0].second.node), (N0, N1));
        assert_eq!((found[0].overlap, found[0].first_ack, found[0].second_ack), ((50, 100), 60, 70));
        // Overlap, but the new leader acks only after the old one stepped down.
        assert!(split_brain(&leadership, &[(N0, 60), (N1, 150)]).is_empty());
        // [start, end): touching intervals do not overlap.
        let touching = [
            LeaderInterval { node: N0, term: 1, start: 0, end: 50 },
            LeaderInterval { node: N1, term: 2, start: 50, end: 90 },
        ];
        assert!(split_brain(&touching, &[(N0, 49), (N1, 50)]).is_empty());
    }

    #[test]
    fn leader_intervals_follow_role_observations() {
        let observations =
            [(N0, 10, Role::Leader, 1), (N1, 40, Role::Leader, 2), (N0, 60, Role::Follower, 2)];
        assert_eq!(
            leader_intervals(&observations, 100),
            vec![
                LeaderInterval { node: N0, term: 1, start: 10, end: 60 },
                LeaderInterval { node: N1, term: 2, start: 40, end: 100 },
            ]
        );
    }
}
