//! quorum-model: an exhaustive model checker over the same sans-IO
//! protocols the simulator and the server run, with no change to them.
//!
//! Random exploration samples runs; it cannot show that something never
//! happens. This searches *every* interleaving of a small configuration:
//! from the cluster's initial state, each state's successors are every
//! message in flight delivered (in any order: the network reorders freely),
//! and, within budgets a configuration sets, lost or duplicated, every
//! pending timer fired (no clocks: a timer may fire at any time, as in the
//! asynchronous model of FLP), every client request of the configuration
//! issued, and nodes crashed and restarted from their durable records.
//! States are deduplicated by a fingerprint of everything that decides what
//! can happen next (each node's state, durable log and pending timers, the
//! multiset of messages in flight, the budgets left, and the observations of
//! the path as a [`quorum_check::ledger::Ledger`]), as stateright does.
//!
//! Properties, in stateright's vocabulary:
//! * **always**, checked on every state: the protocol's own `invariants()`
//!   (a panic), its `cluster_invariants`, and the ledger's Agreement,
//!   Validity and Integrity, log safety, election safety and atomicity;
//! * **sometimes**: the protocol's `Observation::Reached` properties, with
//!   how many transitions reached each.
//!
//! Breadth-first search finds a shortest counterexample; it expands each
//! level on all cores and merges in a fixed order, so the numbers do not
//! depend on the thread count. Depth-first search goes deep first, on one
//! core. A counterexample is printed as a script in the laboratory's
//! datadriven format ([`counterexample_script`]), which `quorum script`
//! replays step by step.
//!
//! What is not explored: the protocol's random choices (each node draws
//! from the same seeded stream as in a script, so a merged state keeps the
//! stream of the path that reached it first), clock readings (time stands
//! still: timers fire in any order instead), and client replies as a
//! history (linearizability is the simulator's job).
//!
//! Files: `state.rs` (a state, its actions, its fingerprint), `search.rs`
//! (breadth- and depth-first search), `replay.rs` (a path as a script),
//! `chain.rs` (the two generals' chain of runs that look alike), `flp.rs`
//! (FLP's bivalent configurations and the adversary that keeps them).

mod chain;
mod flp;
mod replay;
mod search;
mod state;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::str::FromStr;

use quorum_core::claims::Violation;
use quorum_core::{NodeId, Protocol};
use quorum_sim::script::Scripted;
use serde::Serialize;

pub use chain::{chain, ChainRun};
pub use flp::{flp, FlpConfig, FlpReport, Initial, Lasso, Reading, Step, Valence};
pub use replay::counterexample_script;
pub use state::Action;

/// What the checker needs of a protocol beyond the contract: states it
/// can copy and fingerprint (`Clone`, `Debug`), requests it can read from
/// text, and parts it can share between threads.
pub trait Checkable:
    Protocol<
        Request: FromStr<Err: std::fmt::Display> + Send + Sync,
        Response: Send + Sync,
        Config: Send + Sync,
        Msg: Send + Sync,
        Timer: Send + Sync,
        Record: Send + Sync,
    > + Clone
    + Debug
    + Send
    + Sync
{
}

impl<P> Checkable for P where
    P: Protocol<
            Request: FromStr<Err: std::fmt::Display> + Send + Sync,
            Response: Send + Sync,
            Config: Send + Sync,
            Msg: Send + Sync,
            Timer: Send + Sync,
            Record: Send + Sync,
        > + Clone
        + Debug
        + Send
        + Sync
{
}

/// How much of each nondeterministic event one path may contain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Budgets {
    /// Messages lost.
    pub losses: u32,
    /// Messages delivered twice (a copy, the original staying in flight).
    pub duplicates: u32,
    /// Node crashes (a crashed node may always restart).
    pub crashes: u32,
    /// Timer firings (retransmissions, elections, terminations).
    pub timeouts: u32,
}

/// Breadth-first (shortest counterexamples) or depth-first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Strategy {
    #[default]
    BreadthFirst,
    DepthFirst,
}

/// A configuration to check.
#[derive(Clone, Debug, Serialize)]
pub struct ModelConfig {
    /// The protocol's name, for the counterexample script.
    pub protocol: String,
    pub nodes: u32,
    /// Client requests, each issued once at some point of a path: the node
    /// it goes to, and its text form (`write 1 10`, `transfer 1 2 30`).
    pub requests: Vec<(NodeId, String)>,
    pub budgets: Budgets,
    /// Paths longer than this are not extended.
    pub max_depth: u32,
    /// Give up after this many distinct states.
    pub max_states: u64,
    pub strategy: Strategy,
    /// Threads expanding a breadth-first level.
    pub threads: usize,
    /// The network is timely (a fail-stop protocol's model): a timer fires
    /// only when no message is in flight, so a timeout never suspects a
    /// node whose answer is on its way. Otherwise a timer may fire at any
    /// time, as in the asynchronous model.
    pub timely: bool,
    /// Every request is issued first, in order, before anything else
    /// happens: the inputs of an agreement problem, all given at time 0.
    /// Otherwise a request may be issued at any point of a path.
    pub requests_first: bool,
}

impl ModelConfig {
    pub fn new(protocol: &str, nodes: u32) -> ModelConfig {
        ModelConfig {
            protocol: protocol.to_string(),
            nodes,
            requests: Vec::new(),
            budgets: Budgets::default(),
            max_depth: 64,
            max_states: 5_000_000,
            strategy: Strategy::BreadthFirst,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timely: false,
            requests_first: false,
        }
    }
}

/// A broken always property and the path that reaches it.
#[derive(Clone, Debug)]
pub struct Found<T> {
    pub kind: Violation,
    pub what: String,
    pub path: Vec<Action<T>>,
}

/// What a search did and found.
#[derive(Clone, Debug)]
pub struct Report<T> {
    /// Distinct states visited (the initial one included).
    pub states: u64,
    /// Successors generated (before deduplication).
    pub transitions: u64,
    /// States with no successor: nothing in flight, no timer, no request.
    pub terminal: u64,
    /// The deepest level reached.
    pub depth: u32,
    /// Some path was cut at `max_depth` with successors left.
    pub depth_bounded: bool,
    /// The search stopped at `max_states` with states left to visit.
    pub gave_up: bool,
    /// The first broken always property (a shortest one, breadth-first).
    pub violation: Option<Found<T>>,
    /// Sometimes properties reached, with the transitions that reached them.
    pub reached: BTreeMap<&'static str, u64>,
    pub wall_ms: u64,
}

impl<T> Report<T> {
    /// Distinct states per wall-clock second.
    pub fn states_per_second(&self) -> u64 {
        self.states * 1000 / self.wall_ms.max(1)
    }
}

/// A search's result in plain terms (no protocol types), with the
/// counterexample rendered as a script: what the CLI prints.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub states: u64,
    pub transitions: u64,
    pub terminal: u64,
    pub depth: u32,
    pub depth_bounded: bool,
    pub gave_up: bool,
    pub wall_ms: u64,
    pub states_per_second: u64,
    pub reached: BTreeMap<String, u64>,
    pub violation: Option<Counterexample>,
}

/// A broken always property, its path as a script, and the path's length.
#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    pub kind: Violation,
    pub what: String,
    pub steps: usize,
    pub script: String,
}

/// [`check`], with a counterexample rendered as a script.
pub fn run<P>(
    model: &ModelConfig,
    config_json: &str,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<Outcome, ModelError>
where
    P: Checkable,
{
    let report = check::<P>(model, config_json, progress)?;
    let violation = match &report.violation {
        Some(found) => Some(Counterexample {
            kind: found.kind,
            what: found.what.clone(),
            steps: found.path.len(),
            script: counterexample_script::<P>(model, config_json, found)?,
        }),
        None => None,
    };
    Ok(Outcome {
        states: report.states,
        transitions: report.transitions,
        terminal: report.terminal,
        depth: report.depth,
        depth_bounded: report.depth_bounded,
        gave_up: report.gave_up,
        wall_ms: report.wall_ms,
        states_per_second: report.states_per_second(),
        reached: report.reached.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        violation,
    })
}

/// A configuration the checker cannot start from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// Check protocol `P` with settings `config_json` (its `Config` as JSON)
/// exhaustively within `model`'s budgets. `progress` is called after each
/// breadth-first level (or every 100,000 depth-first states).
pub fn check<P>(
    model: &ModelConfig,
    config_json: &str,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<Report<P::Timer>, ModelError>
where
    P: Checkable,
{
    if model.requests.len() > 64 {
        return Err(ModelError("at most 64 client requests".into()));
    }
    let requests = parse_requests::<P>(model)?;
    let mut world = Scripted::<P>::new(P::Config::default());
    world.set_quiet(true);
    world
        .run_command(&cluster_line(model, config_json))
        .map_err(|e| ModelError(format!("cannot start the cluster: {e}")))?;
    let init = state::State::initial(world, model.budgets);
    let universe =
        state::Universe { requests, timely: model.timely, requests_first: model.requests_first, retry: None };
    Ok(search::run(init, &universe, model, progress))
}

/// The script line that starts the model's cluster.
pub(crate) fn cluster_line(model: &ModelConfig, config_json: &str) -> String {
    format!("cluster {} protocol={} config={config_json}", model.nodes, model.protocol)
}

fn parse_requests<P: Protocol>(model: &ModelConfig) -> Result<Vec<(NodeId, P::Request)>, ModelError>
where
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    model
        .requests
        .iter()
        .map(|(node, text)| {
            if node.0 >= model.nodes {
                return Err(ModelError(format!(
                    "request to {node}, but the cluster has {} nodes",
                    model.nodes
                )));
            }
            let request =
                text.parse::<P::Request>().map_err(|e| ModelError(format!("request '{text}': {e}")))?;
            Ok((*node, request))
        })
        .collect()
}
