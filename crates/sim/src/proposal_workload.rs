//! The proposal workload of the agreement problems whose inputs come from
//! clients (the two generals): each client draws an input, 0 or 1, and keeps asking
//! its home node to take part with it (`propose V`) until answered with a
//! decision, then asks again (a node answers every later proposal with the
//! value it decided). A node's input is the first proposal it receives.
//!
//! Judged from the nodes' observations by the simulator's consensus
//! checker (Agreement, Validity, Integrity; Termination once the faults
//! stop): this workload only counts the answers. Every node needs a client
//! (clients ≥ nodes), or a node without an input never decides.

use quorum_core::decision::DecisionResponse;
use quorum_core::proposal::ProposalRequest;
use quorum_core::{NodeId, Protocol, Rng, Time};

use crate::config::SimConfig;
use crate::outcome::RunOutcome;
use crate::workload::{Completion, Verdict, Workload};

/// Clients proposing 0 or 1, judged for agreement by the consensus checker.
pub struct ProposalWorkload {
    /// Each client's input, drawn at its first request.
    inputs: Vec<Option<u64>>,
}

impl<P: Protocol<Request = ProposalRequest, Response = DecisionResponse>> Workload<P> for ProposalWorkload {
    fn new(config: &SimConfig) -> Self {
        ProposalWorkload { inputs: vec![None; config.clients as usize + 1] }
    }

    fn next(&mut self, client: usize, rng: &mut Rng) -> ProposalRequest {
        let input = *self.inputs[client].get_or_insert_with(|| rng.range(0, 2));
        ProposalRequest::Propose(input)
    }

    fn invoked(&mut self, _client: usize, _request: &ProposalRequest, _now: Time) {}

    fn completed(
        &mut self,
        _client: usize,
        request: &ProposalRequest,
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

    fn acknowledges_update(_request: &ProposalRequest, _response: &DecisionResponse) -> bool {
        false
    }

    fn final_requests(&mut self) -> Vec<ProposalRequest> {
        Vec::new()
    }

    fn judge(self, outcome: &mut RunOutcome) {
        outcome.linearizability = "n/a".into();
    }
}
