//! The chain of runs behind the two generals' impossibility (Lynch,
//! *Distributed Algorithms*, Theorem 5.1): start from the run in which every
//! message arrives, and lose one message earlier each time. Two neighbours
//! in the chain differ only in whether one message arrived, so its sender
//! is in the same state in both: it cannot tell them apart and decides the
//! same in both. A protocol whose generals both attack in the first run and
//! both stay in the last must therefore split somewhere in between.
//!
//! Each run is driven without choice: the requests first, then the oldest
//! message in flight delivered (or lost, once), and when nothing is in
//! flight the first pending timer fired, up to the configuration's timer
//! budget. "The same state" is the model checker's own node fingerprint
//! (state, durable log, pending timers), so it is exact, not a reading of
//! the protocol's description.

use std::fmt::Debug;
use std::str::FromStr;

use quorum_core::{NodeId, Observation, Protocol};
use quorum_sim::script::Scripted;
use serde::Serialize;

use crate::{cluster_line, parse_requests, state::node_hash, ModelConfig, ModelError};

/// One run of the chain.
#[derive(Clone, Debug, Serialize)]
pub struct ChainRun {
    /// The message lost (numbered in the order sent, from 1); `None`: none.
    pub lost: Option<u32>,
    /// Messages delivered.
    pub delivered: u32,
    /// Each node's state at the end, as it describes itself.
    pub views: Vec<String>,
    /// Each node's decision (instance 0), if it decided.
    pub decisions: Vec<Option<u64>>,
    /// The nodes in the same state at the end of this run and the next one.
    pub same_as_next: Vec<u32>,
    #[serde(skip)]
    fingerprints: Vec<u64>,
}

impl ChainRun {
    /// Whether two nodes decided differently.
    pub fn split(&self) -> bool {
        let decided: Vec<u64> = self.decisions.iter().flatten().copied().collect();
        decided.windows(2).any(|w| w[0] != w[1])
    }
}

/// The chain, from the run where every message arrives down to the run
/// where the first is lost.
pub fn chain<P>(model: &ModelConfig, config_json: &str) -> Result<Vec<ChainRun>, ModelError>
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let full = drive::<P>(model, config_json, None)?;
    let mut runs = vec![full];
    for lost in (1..=runs[0].delivered).rev() {
        runs.push(drive::<P>(model, config_json, Some(lost))?);
    }
    for i in 0..runs.len() - 1 {
        let same = (0..model.nodes as usize)
            .filter(|&n| runs[i].fingerprints[n] == runs[i + 1].fingerprints[n])
            .map(|n| n as u32)
            .collect();
        runs[i].same_as_next = same;
    }
    Ok(runs)
}

/// One run: every message delivered in the order sent, but message `lost`.
fn drive<P>(model: &ModelConfig, config_json: &str, lost: Option<u32>) -> Result<ChainRun, ModelError>
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let mut world = Scripted::<P>::new(P::Config::default());
    world.set_quiet(true);
    world
        .run_command(&cluster_line(model, config_json))
        .map_err(|e| ModelError(format!("cannot start the cluster: {e}")))?;
    for (node, request) in parse_requests::<P>(model)? {
        world.request_to(node, request);
    }
    let (mut handled, mut delivered, mut fired) = (0u32, 0u32, 0u32);
    let steps_max = 10 * (model.max_depth + model.budgets.timeouts);
    for _ in 0..steps_max {
        if !world.in_flight().is_empty() {
            handled += 1;
            if Some(handled) == lost {
                world.drop_at(0);
            } else {
                world.deliver_at(0);
                delivered += 1;
            }
            continue;
        }
        let next = world
            .hosts()
            .iter()
            .enumerate()
            .find_map(|(n, h)| h.timers().keys().next().map(|t| (NodeId(n as u32), t.clone())));
        match next {
            Some((node, timer)) if fired < model.budgets.timeouts => {
                world.fire_timer(node, timer);
                fired += 1;
            }
            _ => break,
        }
    }
    let mut decisions = vec![None; model.nodes as usize];
    for (node, observation, _) in world.take_observations() {
        if let Observation::Decide { instance: 0, value } = observation {
            decisions[node.0 as usize].get_or_insert(value);
        }
    }
    let hosts = world.hosts();
    Ok(ChainRun {
        lost,
        delivered,
        views: hosts.iter().map(|h| h.state().map_or("down".into(), P::describe)).collect(),
        decisions,
        same_as_next: Vec::new(),
        fingerprints: (0..hosts.len()).map(|n| node_hash(&world, n)).collect(),
    })
}
