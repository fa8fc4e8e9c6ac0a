//! What the checkers are fed while a run goes on: the protocols'
//! observations (roles, applies, proposals, decisions), acknowledged writes,
//! cross-node invariants and the replicas' digests. The judging itself lives
//! in `quorum-check`; this only routes.

use std::collections::BTreeSet;

use quorum_check::byzantine::OrderLog;
use quorum_check::consensus::{ConsensusLog, LogSafety};
use quorum_check::leadership::{ElectionSafetyViolation, Leadership};
use quorum_core::{NodeId, Observation, Role, Time};

#[derive(Default)]
pub(super) struct Observers {
    pub(super) leadership: Leadership,
    /// Updates acknowledged to clients: (node, micros).
    pub(super) acked_writes: Vec<(NodeId, u64)>,
    /// Whether any node reported applying a log entry: the protocol keeps a
    /// consensus log, judged by log safety instead of split-brain.
    pub(super) replicated_log: bool,
    pub(super) log_safety: LogSafety,
    /// Proposals and decisions, for Agreement, Validity, Integrity, Termination.
    pub(super) consensus: ConsensusLog,
    /// Commanders' orders and lieutenants' obedience, for IC1 and IC2.
    pub(super) orders: OrderLog,
    /// The first cross-node invariant the protocol reported broken.
    pub(super) cluster_invariant: Option<String>,
    /// Each node's state digest after quiescence.
    pub(super) digests: Vec<(NodeId, Option<u64>)>,
    /// The sometimes properties reached so far (the protocol's own, by
    /// `Observation::Reached`, and the ones the simulator sees).
    pub(super) reached: BTreeSet<&'static str>,
    /// The nodes campaigning now: they announced `Role::Candidate` and no
    /// role since, and have not crashed (for the `kill-voter` nemesis).
    pub(super) campaigning: BTreeSet<NodeId>,
}

impl Observers {
    /// Feed one observation of `node` at `now`; an election-safety
    /// violation it shows, for the trace.
    pub(super) fn observe(
        &mut self,
        node: NodeId,
        observation: &Observation,
        now: Time,
    ) -> Option<ElectionSafetyViolation> {
        match *observation {
            Observation::Role { role, term } => {
                match role {
                    Role::Candidate => self.campaigning.insert(node),
                    _ => self.campaigning.remove(&node),
                };
                return self.leadership.role(node, role, term, now.as_micros());
            }
            Observation::Vote { term, candidate } => {
                return self.leadership.vote(node, term, candidate, now.as_micros());
            }
            Observation::Apply { index, term, command } => {
                self.replicated_log = true;
                self.log_safety.apply(node, index, term, command);
            }
            Observation::Propose { instance, value } => self.consensus.propose(node, instance, value),
            Observation::Decide { instance, value } => {
                self.consensus.decide(node, instance, value, now.as_micros());
            }
            Observation::Reached(property) => {
                self.reached.insert(property);
            }
            Observation::Order { .. } | Observation::Obey { .. } => self.orders.observe(node, observation),
            _ => {}
        }
        None
    }
}
