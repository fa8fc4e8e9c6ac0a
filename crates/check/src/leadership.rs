//! Leadership as the protocols report it: who led which term when,
//! **election safety** (Raft §5.2: at most one leader per term, ever, and
//! its premise, at most one vote per node per term, across restarts), and
//! **failover time** (from a leader's crash to the first leader of a higher
//! term).
//!
//! Fed `Role` observations and crashes in time order by a driver; knows
//! nothing of the driver. A leadership lasts from the node's `Role::Leader`
//! observation until its next `Role` observation, its crash, or the end of
//! the run ([`Leadership::finish`]). The closed intervals feed
//! [`crate::consensus::split_brain`].

use std::collections::BTreeMap;

use quorum_core::{NodeId, Role};
use serde::Serialize;

use crate::consensus::LeaderInterval;

/// Two nodes led the same term, or (with `voter`) one node granted its
/// vote to two candidates in the same term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ElectionSafetyViolation {
    pub term: u64,
    /// The first node seen leading `term` (or granted the vote).
    pub first: NodeId,
    /// The other one.
    pub second: NodeId,
    /// When `second` announced itself (or was granted), micros.
    pub time: u64,
    /// For a double vote: the node that voted twice.
    pub voter: Option<NodeId>,
}

/// See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Leadership {
    /// Leaderships in progress: node → (term, since when).
    open: BTreeMap<NodeId, (u64, u64)>,
    intervals: Vec<LeaderInterval>,
    /// The first node seen leading each term.
    leaders_by_term: BTreeMap<u64, NodeId>,
    /// The candidate each node first voted for, per (node, term).
    votes: BTreeMap<(NodeId, u64), NodeId>,
    election_safety: Vec<ElectionSafetyViolation>,
    /// Leaders crashed and not yet succeeded: (their term, crash time).
    failovers_open: Vec<(u64, u64)>,
    /// Crash-to-successor times, micros, in the order they closed.
    failover_us: Vec<u64>,
}

impl Leadership {
    pub fn new() -> Leadership {
        Leadership::default()
    }

    /// `node` took `role` in `term` at `time`. Returns the election-safety
    /// violation this observation shows, if any (also kept).
    pub fn role(
        &mut self,
        node: NodeId,
        role: Role,
        term: u64,
        time: u64,
    ) -> Option<ElectionSafetyViolation> {
        self.close(node, time);
        if role != Role::Leader {
            return None;
        }
        let failover_us = &mut self.failover_us;
        self.failovers_open.retain(|&(crashed_term, at)| {
            let succeeded = term > crashed_term;
            if succeeded {
                failover_us.push(time.saturating_sub(at));
            }
            !succeeded
        });
        self.open.insert(node, (term, time));
        let first = *self.leaders_by_term.entry(term).or_insert(node);
        if first == node {
            return None;
        }
        let violation = ElectionSafetyViolation { term, first, second: node, time, voter: None };
        self.election_safety.push(violation);
        Some(violation)
    }

    /// `voter` granted its vote to `candidate` in `term` at `time`. Returns
    /// the violation if it had granted another candidate in that term
    /// before (also kept): the premise of election safety is gone.
    pub fn vote(
        &mut self,
        voter: NodeId,
        term: u64,
        candidate: NodeId,
        time: u64,
    ) -> Option<ElectionSafetyViolation> {
        let first = *self.votes.entry((voter, term)).or_insert(candidate);
        if first == candidate {
            return None;
        }
        let violation = ElectionSafetyViolation { term, first, second: candidate, time, voter: Some(voter) };
        self.election_safety.push(violation);
        Some(violation)
    }

    /// `node` crashed at `time`. With `awaiting_successor`, a leader's crash
    /// starts a failover clock that the next leader of a higher term stops
    /// (drivers pass false once faults have stopped, when no one is waiting).
    pub fn crashed(&mut self, node: NodeId, time: u64, awaiting_successor: bool) {
        if let Some(&(term, _)) = self.open.get(&node) {
            if awaiting_successor {
                self.failovers_open.push((term, time));
            }
        }
        self.close(node, time);
    }

    /// Whether `node` leads now (it announced leadership, nothing since).
    pub fn leads(&self, node: NodeId) -> bool {
        self.open.contains_key(&node)
    }

    /// End of the run at `time`: close every leadership still open.
    pub fn finish(&mut self, time: u64) {
        let open: Vec<NodeId> = self.open.keys().copied().collect();
        for node in open {
            self.close(node, time);
        }
    }

    fn close(&mut self, node: NodeId, time: u64) {
        if let Some((term, start)) = self.open.remove(&node) {
            self.intervals.push(LeaderInterval { node, term, start, end: time });
        }
    }

    /// Closed leaderships, in the order they closed.
    pub fn intervals(&self) -> &[LeaderInterval] {
        &self.intervals
    }

    pub fn election_safety(&self) -> &[ElectionSafetyViolation] {
        &self.election_safety
    }

    /// Failover times measured so far (micros).
    pub fn failover_us(&self) -> &[u64] {
        &self.failover_us
    }

    pub fn take_failover_us(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.failover_us)
    }

    /// Distinct terms that had a leader: the "sometimes" twin of election
    /// safety (it judges nothing if nobody ever led, or only one term did).
    pub fn terms_led(&self) -> usize {
        self.leaders_by_term.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N0: NodeId = NodeId(0);
    const N1: NodeId = NodeId(1);

    #[test]
    fn two_leaders_of_one_term_break_election_safety() {
        let mut l = Leadership::new();
        assert_eq!(l.role(N0, Role::Leader, 1, 10), None);
        assert_eq!(l.role(N1, Role::Leader, 2, 20), None, "a new term may have a new leader");
        let v = l.role(N0, Role::Leader, 2, 30).expect("a second leader of term 2");
        assert_eq!((v.term, v.first, v.second, v.time), (2, N1, N0, 30));
        assert_eq!(l.election_safety().len(), 1);
        assert_eq!(l.terms_led(), 2);
    }

    /// Raft §5.2: one vote per node per term, even across a restart; the
    /// same candidate asking again is granted again.
    #[test]
    fn a_node_that_votes_for_two_candidates_in_one_term_breaks_election_safety() {
        const N2: NodeId = NodeId(2);
        let mut l = Leadership::new();
        assert_eq!(l.vote(N2, 4, N0, 10), None);
        assert_eq!(l.vote(N2, 4, N0, 15), None, "a retried request is granted again");
        assert_eq!(l.vote(N2, 5, N1, 20), None, "a new term, a new vote");
        assert_eq!(l.vote(N1, 4, N1, 20), None, "another voter");
        let v = l.vote(N2, 4, N1, 30).expect("a second candidate in term 4");
        assert_eq!((v.term, v.first, v.second, v.time, v.voter), (4, N0, N1, 30, Some(N2)));
        assert_eq!(l.election_safety().len(), 1);
        assert_eq!(l.terms_led(), 0, "no leader needed");
    }

    #[test]
    fn failover_runs_from_the_leaders_crash_to_a_higher_term() {
        let mut l = Leadership::new();
        l.role(N0, Role::Leader, 3, 0);
        l.crashed(N0, 100, true);
        assert!(!l.leads(N0));
        l.role(N1, Role::Leader, 3, 150); // same term: no successor (and a violation)
        l.role(N1, Role::Leader, 4, 400);
        assert_eq!(l.failover_us(), &[300]);
        l.role(N1, Role::Follower, 4, 500);
        l.crashed(N1, 600, true); // not leading: no clock
        l.finish(700);
        assert_eq!(l.failover_us(), &[300]);
        let spans: Vec<(NodeId, u64, u64)> = l.intervals().iter().map(|i| (i.node, i.start, i.end)).collect();
        assert_eq!(spans, vec![(N0, 0, 100), (N1, 150, 400), (N1, 400, 500)]);
    }

    #[test]
    fn crashes_after_the_faults_start_no_clock() {
        let mut l = Leadership::new();
        l.role(N0, Role::Leader, 1, 0);
        l.crashed(N0, 50, false);
        l.role(N1, Role::Leader, 2, 90);
        assert!(l.failover_us().is_empty());
    }
}
