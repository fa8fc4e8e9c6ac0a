//! The decision workload of the agreement problems (the two generals,
//! binary consensus): each client draws an input, 0 or 1, and keeps asking
//! its home node to take part with it (`propose V`) until answered with a
//! decision, then asks again (a node answers every later proposal with the
//! value it decided). A node's input is the first proposal it receives.
//!
//! Judged from the nodes' observations by the simulator's consensus
//! checker (Agreement, Validity, Integrity; Termination once the faults
//! stop): this workload only counts the answers. Every node needs a client
//! (clients ≥ nodes), or a node without an input never decides.

use quorum_core::decision::{DecisionRequest, DecisionResponse};
use quorum_core::{NodeId, Protocol, Rng, Time};

use crate::config::SimConfig;
use crate::outcome::RunOutcome;
use crate::workload::{Completion, Verdict, Workload};

/// Clients proposing 0 or 1, judged for agreement by the consensus checker.
pub struct DecisionWorkload {
    /// Each client's input, drawn at its first request.
    inputs: Vec<Option<u64>>,
}

impl<P: Protocol<Request = DecisionRequest, Response = DecisionResponse>> Workload<P> for DecisionWorkload {
    fn new(config: &SimConfig) -> Self {
        DecisionWorkload { inputs: vec![None; config.clients as usize + 1] }
    }

    fn next(&mut self, client: usize, rng: &mut Rng) -> DecisionRequest {
        let input = *self.inputs[client].get_or_insert_with(|| rng.range(0, 2));
        DecisionRequest::Propose(input)
    }

    fn invoked(&mut self, _client: usize, _request: &DecisionRequest, _now: Time) {}

    fn completed(
        &mut self,
        _client: usize,
        request: &DecisionRequest,
        response: Option<&DecisionResponse>,
        node: Option<NodeId>,
        _now: Time,
    ) -> Completion {
        let (verdict, retarget) = match response {
            None | Some(DecisionResponse::Indeterminate { .. }) => (Verdict::Info, None),
            Some(DecisionResponse::Decided(_)) => (Verdict::Ok, None),
            Some(DecisionResponse::Rejected { hint, .. }) => (Verdict::Fail, Some(*hint)),
        };
        debug_assert!(node.is_some() || response.is_none(), "{request:?} answered by nobody");
        let refused = matches!(response, Some(DecisionResponse::Rejected { .. }));
        Completion { verdict, update_refused: refused, retarget, served: verdict == Verdict::Ok, refused }
    }

    fn acknowledges_update(_request: &DecisionRequest, _response: &DecisionResponse) -> bool {
        false
    }

    fn final_requests(&mut self) -> Vec<DecisionRequest> {
        Vec::new()
    }

    fn judge(self, outcome: &mut RunOutcome) {
        outcome.linearizability = "n/a".into();
    }
}
