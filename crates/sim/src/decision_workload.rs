//! The decision workload of a consensus protocol whose inputs are its own
//! (Ben-Or: each node's input bit comes from its settings). Clients ask
//! random nodes `decision` and wait for the answer; after the heal each must
//! be answered once more (liveness). Agreement, Validity, Integrity and
//! Termination are judged by the world from the nodes' `Propose` / `Decide`
//! observations (`quorum_check::consensus`); this workload adds the clients'
//! view (every answer names the same value) and the figures of rounds to
//! decide, from `Round` observations.

use std::collections::{BTreeMap, BTreeSet};

use quorum_core::decision::{DecisionQuery, DecisionResponse};
use quorum_core::{NodeId, Observation, Protocol, Rng, Time};
use serde::Serialize;

use crate::config::SimConfig;
use crate::outcome::RunOutcome;
use crate::workload::{Completion, Verdict, Workload};

/// Rounds to decide, over the instances of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DecisionFigures {
    /// Instances some node decided.
    pub instances_decided: u64,
    /// Per decided instance, the highest round any node was in when it
    /// decided (every node had decided by the end of it), ascending by
    /// instance.
    #[serde(skip)]
    pub rounds: Vec<u64>,
    /// Mean and largest of `rounds`.
    pub rounds_mean: f64,
    pub rounds_max: u64,
    /// Instances decided in round 1.
    pub decided_in_round_one: u64,
}

/// Clients asking for decisions, each instance twice (at random nodes).
pub struct DecisionWorkload {
    issued: u64,
    /// Each node's latest round in each instance.
    round: BTreeMap<(u64, NodeId), u64>,
    /// Per instance, the highest round a node was in when it decided.
    decided_round: BTreeMap<u64, u64>,
    /// Per instance, the values the clients were answered.
    answered: BTreeMap<u64, BTreeSet<u64>>,
}

impl<P: Protocol<Request = DecisionQuery, Response = DecisionResponse>> Workload<P> for DecisionWorkload {
    fn new(_config: &SimConfig) -> Self {
        DecisionWorkload {
            issued: 0,
            round: BTreeMap::new(),
            decided_round: BTreeMap::new(),
            answered: BTreeMap::new(),
        }
    }

    fn next(&mut self, _client: usize, _rng: &mut Rng) -> DecisionQuery {
        self.issued += 1;
        DecisionQuery { instance: (self.issued - 1) / 2 }
    }

    fn invoked(&mut self, _client: usize, _request: &DecisionQuery, _now: Time) {}

    fn completed(
        &mut self,
        _client: usize,
        request: &DecisionQuery,
        response: Option<&DecisionResponse>,
        _node: Option<NodeId>,
        _now: Time,
    ) -> Completion {
        let (verdict, refused, retarget) = match response {
            Some(DecisionResponse::Decided(value)) => {
                self.answered.entry(request.instance).or_default().insert(*value);
                (Verdict::Ok, false, None)
            }
            Some(DecisionResponse::Rejected { hint, .. }) => (Verdict::Fail, true, Some(*hint)),
            Some(DecisionResponse::Indeterminate { .. }) | None => (Verdict::Info, false, Some(None)),
        };
        Completion { verdict, update_refused: false, retarget, served: verdict == Verdict::Ok, refused }
    }

    fn acknowledges_update(_request: &DecisionQuery, _response: &DecisionResponse) -> bool {
        false
    }

    fn final_requests(&mut self) -> Vec<DecisionQuery> {
        Vec::new()
    }

    fn observed(&mut self, node: NodeId, observation: &Observation, _now: Time) {
        match *observation {
            Observation::Round { instance, round } => {
                self.round.insert((instance, node), round);
            }
            Observation::Decide { instance, .. } => {
                let round = self.round.get(&(instance, node)).copied().unwrap_or(0);
                let highest = self.decided_round.entry(instance).or_insert(round);
                *highest = (*highest).max(round);
            }
            _ => {}
        }
    }

    fn judge(self, outcome: &mut RunOutcome) {
        for (instance, values) in &self.answered {
            if values.len() > 1 {
                outcome.consensus_violations.push(format!(
                    "instance {instance}: clients were answered different decisions {values:?}"
                ));
            }
        }
        let rounds: Vec<u64> = self.decided_round.values().copied().collect();
        let sum: u64 = rounds.iter().sum();
        outcome.decision = Some(DecisionFigures {
            instances_decided: rounds.len() as u64,
            rounds_mean: if rounds.is_empty() { 0.0 } else { sum as f64 / rounds.len() as f64 },
            rounds_max: rounds.iter().copied().max().unwrap_or(0),
            decided_in_round_one: rounds.iter().filter(|r| **r == 1).count() as u64,
            rounds,
        });
    }
}
