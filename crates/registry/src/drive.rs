//! The generic functions behind each registration: a protocol's settings
//! from its choice, a simulated run, a script, a server node.

use quorum_core::{ConfigError, NodeId, Protocol};
use quorum_server::ServeConfig;
use quorum_sim::script::{Block, ScriptError, Scripted};
use quorum_sim::{
    Capture, CrdtWorkload, DecisionWorkload, KvProtocol, KvWorkload, ProposalWorkload, ProtocolChoice,
    RedisWorkload, RunError, RunOutcome, SimConfig, TxnWorkload,
};

use crate::settings::{merged, ServerDefaults};
use crate::{Scripting, Serving};

/// A choice as the protocol's `Config` in JSON: its settings, with the
/// variant and the bug as the fields `variant` and `bug`.
pub(crate) fn choice_json(choice: &ProtocolChoice) -> serde_json::Value {
    let mut json = serde_json::Value::Object(choice.config.clone());
    if let Some(variant) = &choice.variant {
        json["variant"] = variant.clone().into();
    }
    if let Some(bug) = &choice.bug {
        json["bug"] = bug.clone().into();
    }
    json
}

/// The protocol's `Config` from a choice.
pub(crate) fn typed<P: Protocol>(choice: &ProtocolChoice) -> Result<P::Config, ConfigError> {
    serde_json::from_value(choice_json(choice))
        .map_err(|e| ConfigError::new(format!("bad settings for '{}': {e}", choice.name)))
}

/// An exhaustive search of `model` for the protocol `choice` names.
pub(crate) fn model<P>(
    choice: &ProtocolChoice,
    model: &quorum_model::ModelConfig,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<quorum_model::Outcome, quorum_model::ModelError>
where
    P: crate::Modelled,
{
    typed::<P>(choice).map_err(|e| quorum_model::ModelError(e.to_string()))?;
    quorum_model::run::<P>(model, &choice_json(choice).to_string(), progress)
}

/// The two generals' chain of runs for the protocol `choice` names.
pub(crate) fn chain<P>(
    choice: &ProtocolChoice,
    model: &quorum_model::ModelConfig,
) -> Result<Vec<quorum_model::ChainRun>, quorum_model::ModelError>
where
    P: Protocol + Clone + std::fmt::Debug,
    P::Request: std::str::FromStr,
    <P::Request as std::str::FromStr>::Err: std::fmt::Display,
{
    typed::<P>(choice).map_err(|e| quorum_model::ModelError(e.to_string()))?;
    quorum_model::chain::<P>(model, &choice_json(choice).to_string())
}

/// Parse `choice`, and with `nodes` also ask the protocol to validate it.
pub(crate) fn check<P: Protocol>(
    choice: &ProtocolChoice,
    nodes: Option<&[NodeId]>,
) -> Result<(), ConfigError> {
    let config = typed::<P>(choice)?;
    match nodes {
        Some(nodes) => P::validate(&config, nodes)
            .map_err(|e| ConfigError::new(format!("bad settings for '{}': {e}", choice.name))),
        None => Ok(()),
    }
}

/// The traitors the protocol `choice` names tolerates on `nodes` nodes (0
/// if its settings do not parse: they are refused elsewhere).
pub(crate) fn traitors<P: Protocol>(choice: &ProtocolChoice, nodes: u32) -> u32 {
    typed::<P>(choice).map_or(0, |config| P::traitors_max(&config, nodes as usize) as u32)
}

pub(crate) fn run_kv<P: KvProtocol>(config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError> {
    let protocol = typed::<P>(&config.protocol)?;
    quorum_sim::run_with::<P, KvWorkload>(config, &protocol, capture)
}

/// A run of the Redis workload; its own bug is the workload's, so the
/// protocol's settings are read without it.
pub(crate) fn run_redis<P>(config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError>
where
    P: Protocol<Request = quorum_core::redis::RedisCommand, Response = quorum_core::redis::RedisResponse>,
{
    let protocol = typed::<P>(&crate::protocol_part(&config.protocol))?;
    quorum_sim::run_with::<P, RedisWorkload>(config, &protocol, capture)
}

pub(crate) fn run_txn<P>(config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError>
where
    P: Protocol<Request = quorum_core::txn::TxnRequest, Response = quorum_core::txn::TxnResponse>,
{
    let protocol = typed::<P>(&config.protocol)?;
    quorum_sim::run_with::<P, TxnWorkload>(config, &protocol, capture)
}

pub(crate) fn run_proposal<P>(config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError>
where
    P: Protocol<
        Request = quorum_core::proposal::ProposalRequest,
        Response = quorum_core::decision::DecisionResponse,
    >,
{
    let protocol = typed::<P>(&config.protocol)?;
    quorum_sim::run_with::<P, ProposalWorkload>(config, &protocol, capture)
}

pub(crate) fn run_decision<P>(config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError>
where
    P: Protocol<
        Request = quorum_core::decision::DecisionQuery,
        Response = quorum_core::decision::DecisionResponse,
    >,
{
    let protocol = typed::<P>(&config.protocol)?;
    quorum_sim::run_with::<P, DecisionWorkload>(config, &protocol, capture)
}

pub(crate) fn run_crdt<P>(config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError>
where
    P: Protocol<Request = quorum_core::crdt::CrdtRequest, Response = quorum_core::crdt::CrdtResponse>,
{
    let protocol = typed::<P>(&config.protocol)?;
    quorum_sim::run_with::<P, CrdtWorkload>(config, &protocol, capture)
}

pub(crate) fn script<P: Protocol>(
    choice: &ProtocolChoice,
    blocks: &[Block],
    record: bool,
) -> Result<Scripting, ScriptError>
where
    P::Request: std::str::FromStr,
    <P::Request as std::str::FromStr>::Err: std::fmt::Display,
{
    let config = typed::<P>(choice).map_err(|e| ScriptError { line: 0, reason: e.to_string() })?;
    let mut cluster = Scripted::<P>::new(config);
    if record {
        cluster.record();
    }
    let outputs = cluster.run_blocks(blocks)?;
    let observations = cluster.observations().to_vec();
    Ok(Scripting { outputs, observations, recording: cluster.take_recording() })
}

pub(crate) fn serve<S>(config: ServeConfig, overrides: Option<serde_json::Value>) -> Serving
where
    S: quorum_server::node::ServerProtocol,
    S::Config: ServerDefaults,
    S::Msg: Send + 'static,
    S::Timer: Send,
{
    Box::pin(async move {
        let settings: S::Config = merged(S::Config::server_defaults(), overrides)?;
        quorum_server::start::<S>(config, settings).await
    })
}
