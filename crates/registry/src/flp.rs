//! The protocols FLP is shown on (`quorum model --flp`), each read as
//! binary consensus: inputs are writes of 0 or 1 to key 1, and a node's
//! decision is the first value its replicated state fixes for that key.

use quorum_core::{KvCommand, KvResponse, KvStore};
use quorum_model::{FlpConfig, FlpReport, ModelError, Reading};
use quorum_protocols::paxos::single::Paxos;
use quorum_protocols::raft::{Payload, Raft};
use quorum_sim::ProtocolChoice;

/// The requests that give a node input 0 and input 1.
pub const INPUTS: [&str; 2] = ["write 1 0", "write 1 1"];

/// A protocol read as binary consensus.
pub trait Binary: crate::Modelled + Sized {
    fn reading() -> Reading<Self>;
}

/// Paxos decides instance 1 (key 1): the value its learner learned.
impl Binary for Paxos<KvStore> {
    fn reading() -> Reading<Self> {
        Reading {
            decide: |node| match node.learned(1) {
                Some(KvCommand::Write { value, .. }) => Some(*value),
                _ => None,
            },
            retry: None,
        }
    }
}

/// Raft decides the first client write committed to its log; a client
/// refused by a node that is not the leader tries again later.
impl Binary for Raft<KvStore> {
    fn reading() -> Reading<Self> {
        Reading {
            decide: |node| {
                let committed = node.log().entries().iter().take_while(|e| e.index <= node.commit_index());
                committed.into_iter().find_map(|e| match &e.payload {
                    Payload::Command { command: KvCommand::Write { value, .. }, .. } => Some(*value),
                    _ => None,
                })
            },
            retry: Some(|response| matches!(response, KvResponse::Rejected { .. })),
        }
    }
}

/// FLP's bivalent run for the protocol `choice` names.
pub(crate) fn run<P: Binary>(choice: &ProtocolChoice, config: &FlpConfig) -> Result<FlpReport, ModelError> {
    crate::drive::typed::<P>(choice).map_err(|e| ModelError(e.to_string()))?;
    quorum_model::flp::<P>(config, &crate::drive::choice_json(choice).to_string(), &P::reading())
}
