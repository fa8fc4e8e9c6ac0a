//! Workloads: what the simulated clients ask and how their answers are
//! judged. The engine (`world`) owns time, the network, faults and the
//! clients' pacing; a workload owns the requests, the history and the
//! workload-specific checkers. The KV workload (read / write / cas, judged
//! for linearizability and durability) is the default; a protocol with its
//! own request type (transactions, broadcasts) brings its own workload.

use std::collections::BTreeMap;

use quorum_check::{History, Op, OpType, OpValue, F};
use quorum_core::{KvCommand, KvResponse, NodeId, Observation, Protocol, Rng, Time};

use crate::config::SimConfig;
use crate::outcome::RunOutcome;

/// What a client concluded about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It took effect (or, for a read, returned).
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may take effect later, or never.
    Info,
}

/// A completed request, as the engine needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub verdict: Verdict,
    /// An update the protocol refused (unavailable, not the leader), as
    /// opposed to a legitimate negative answer such as a cas mismatch.
    pub update_refused: bool,
    /// Where to send the next request: `Some(Some(n))` node `n` (a hint),
    /// `Some(None)` a random node, `None` the same node.
    pub retarget: Option<Option<NodeId>>,
    /// The cluster answered from its replicated state: an ok, or a definite
    /// no such as a cas mismatch; not a refusal to serve, not a timeout.
    /// After the heal, liveness asks every client for one.
    pub served: bool,
    /// The protocol refused to serve the request (not the leader, no
    /// quorum): certainly nothing happened. After the heal such an
    /// operation does not count against the client's operations, so a
    /// client refused while the cluster elects a leader keeps asking until
    /// it is served or the liveness deadline passes.
    pub refused: bool,
}

/// A client workload for protocol `P`. Client `clients` (one past the last
/// regular client) is the final client, which issues `final_requests`.
pub trait Workload<P: Protocol>: Sized {
    fn new(config: &SimConfig) -> Self;

    /// Client `client`'s next request.
    fn next(&mut self, client: usize, rng: &mut Rng) -> P::Request;

    /// `request` from `client` reaches a node whose clock reads `node_clock`
    /// (true time `now` plus the node's skew): the place to stamp it, as a
    /// server's node stamps what it takes from a client. Default: nothing.
    fn stamp(&mut self, _client: usize, _request: &mut P::Request, _now: Time, _node_clock: Time) {}

    /// The engine sends `request` for `client` now.
    fn invoked(&mut self, client: usize, request: &P::Request, now: Time);

    /// `response` from `node`, or `None` when the client timed out.
    fn completed(
        &mut self,
        client: usize,
        request: &P::Request,
        response: Option<&P::Response>,
        node: Option<NodeId>,
        now: Time,
    ) -> Completion;

    /// Whether `response` acknowledges an update (the split-brain checker
    /// counts these per leader).
    fn acknowledges_update(request: &P::Request, response: &P::Response) -> bool;

    /// Whether a client re-sends `request` with the same request id after a
    /// timeout (when `SimConfig::retries` allows). Default: never.
    fn retryable(_request: &P::Request) -> bool {
        false
    }

    /// `Some(hint)` if `response` refuses the request without effect (with
    /// where to go instead, if known). Default: no response is a refusal.
    fn refusal_hint(_response: &P::Response) -> Option<Option<NodeId>> {
        None
    }

    /// After quiescence: requests that establish the final state, sent one
    /// at a time by the final client, each repeated until it completes ok.
    fn final_requests(&mut self) -> Vec<P::Request>;

    /// Judge the run: fill in the workload's verdicts and figures.
    fn judge(self, outcome: &mut RunOutcome);

    /// `node` emitted `observation` at `now` (decisions, prepared cohorts):
    /// for workloads whose checkers read observations. Default: ignore.
    fn observed(&mut self, _node: NodeId, _observation: &Observation, _now: Time) {}

    /// `node` crashed at `now` (it observes again from its restart on).
    /// Default: ignore.
    fn crashed(&mut self, _node: NodeId, _now: Time) {}
}

/// Units (keys, or groups of keys) in use at once, each retired for a
/// fresh one after `per` operations (Jepsen's independent keys): a write
/// lost in a crash is then rarely masked by later writes, so the
/// durability checker can see it, and each unit's history stays small.
pub(crate) struct Rotation {
    active: Vec<(u64, u32)>,
    next: u64,
    per: u32,
}

impl Rotation {
    pub(crate) fn new(count: u32, per: u32) -> Rotation {
        Rotation { active: (0..u64::from(count)).map(|k| (k, 0)).collect(), next: u64::from(count), per }
    }

    /// A unit from the active set, counted as used once.
    pub(crate) fn pick(&mut self, rng: &mut Rng) -> u64 {
        let slot = rng.range(0, self.active.len() as u64) as usize;
        let (unit, used) = &mut self.active[slot];
        let chosen = *unit;
        *used += 1;
        if *used >= self.per {
            *unit = self.next;
            *used = 0;
            self.next += 1;
        }
        chosen
    }

    /// How many units were ever handed out: `0..issued()`.
    pub(crate) fn issued(&self) -> u64 {
        self.next
    }
}

/// The default workload: C clients issuing read / write / cas on a rotating
/// set of keys. Histories follow Jepsen: after an `info` a client continues
/// under a new process id, since its old operation may still be pending.
pub struct KvWorkload {
    keys: u32,
    cas: bool,
    /// Keys in use.
    rotation: Rotation,
    next_value: u64,
    /// Last value each key is known to hold (for plausible cas arguments).
    known: BTreeMap<u64, u64>,
    /// Each client's current process id (the final client's too).
    process: Vec<u64>,
    next_process: u64,
    history: Vec<Op>,
    final_values: BTreeMap<u64, Option<u64>>,
}

impl KvWorkload {
    fn record(
        &mut self,
        kind: OpType,
        command: &KvCommand,
        value: OpValue,
        client: usize,
        now: Time,
        node: Option<NodeId>,
    ) {
        let (f, key, _) = describe(command);
        self.history.push(Op {
            index: self.history.len(),
            kind,
            f,
            key,
            value,
            process: self.process[client],
            time: now.as_micros(),
            node: node.map(|n| n.0),
        });
    }
}

/// An operation's `f`, key and invocation value.
fn describe(command: &KvCommand) -> (F, u64, OpValue) {
    match *command {
        KvCommand::Read { key } => (F::Read, key, OpValue::Nil),
        KvCommand::Write { key, value } => (F::Write, key, OpValue::One(value)),
        KvCommand::Cas { key, expected, new } => (F::Cas, key, OpValue::Pair([expected, new])),
    }
}

impl<P: Protocol<Request = KvCommand, Response = KvResponse>> Workload<P> for KvWorkload {
    fn new(config: &SimConfig) -> Self {
        let clients = config.clients as usize;
        KvWorkload {
            keys: config.keys,
            cas: config.cas,
            rotation: Rotation::new(config.keys, config.ops_per_key),
            next_value: 1,
            known: BTreeMap::new(),
            process: (0..=clients as u64).collect(),
            next_process: clients as u64 + 1,
            history: Vec::new(),
            final_values: BTreeMap::new(),
        }
    }

    fn next(&mut self, _client: usize, rng: &mut Rng) -> KvCommand {
        debug_assert!(self.keys > 0);
        let key = self.rotation.pick(rng);
        let roll = rng.unit();
        if roll < 0.5 {
            return KvCommand::Read { key };
        }
        let value = self.next_value;
        self.next_value += 1;
        match self.known.get(&key) {
            Some(&expected) if self.cas && roll >= 0.8 => KvCommand::Cas { key, expected, new: value },
            _ => KvCommand::Write { key, value },
        }
    }

    fn invoked(&mut self, client: usize, command: &KvCommand, now: Time) {
        let (_, _, value) = describe(command);
        self.record(OpType::Invoke, command, value, client, now, None);
    }

    fn completed(
        &mut self,
        client: usize,
        command: &KvCommand,
        response: Option<&KvResponse>,
        node: Option<NodeId>,
        now: Time,
    ) -> Completion {
        let (_, key, invoked) = describe(command);
        let (kind, value) = match (command, response) {
            (_, None) => (OpType::Info, invoked),
            (KvCommand::Read { .. }, Some(KvResponse::Read(v))) => {
                (OpType::Ok, v.map_or(OpValue::Nil, OpValue::One))
            }
            (KvCommand::Write { .. } | KvCommand::Cas { .. }, Some(KvResponse::Done)) => {
                (OpType::Ok, invoked)
            }
            (KvCommand::Write { .. } | KvCommand::Cas { .. }, Some(KvResponse::CasMismatch)) => {
                (OpType::Fail, invoked)
            }
            (_, Some(KvResponse::Rejected { .. })) => (OpType::Fail, invoked),
            (_, Some(KvResponse::Indeterminate { .. })) => (OpType::Info, invoked),
            (command, Some(response)) => panic!("{node:?} answered {command:?} with {response:?}"),
        };
        if kind == OpType::Ok {
            match (*command, value) {
                (KvCommand::Write { key, value }, _) | (KvCommand::Cas { key, new: value, .. }, _) => {
                    self.known.insert(key, value);
                }
                (KvCommand::Read { key }, OpValue::One(v)) => {
                    self.known.insert(key, v);
                }
                _ => {}
            }
        }
        self.record(kind, command, value, client, now, node);
        let final_client = client == self.process.len() - 1;
        if final_client && kind == OpType::Ok {
            self.final_values.insert(key, if let OpValue::One(v) = value { Some(v) } else { None });
        }
        if kind == OpType::Info {
            self.process[client] = self.next_process;
            self.next_process += 1;
        }
        let (update_refused, retarget) = match response {
            None => (false, Some(None)),
            Some(KvResponse::Rejected { hint, .. }) => (command.is_update(), Some(*hint)),
            _ => (false, None),
        };
        let verdict = match kind {
            OpType::Ok => Verdict::Ok,
            OpType::Fail => Verdict::Fail,
            _ => Verdict::Info,
        };
        let served = kind == OpType::Ok || response == Some(&KvResponse::CasMismatch);
        let refused = matches!(response, Some(KvResponse::Rejected { .. }));
        Completion { verdict, update_refused, retarget, served, refused }
    }

    fn acknowledges_update(command: &KvCommand, response: &KvResponse) -> bool {
        command.is_update() && *response == KvResponse::Done
    }

    /// Updates are retried: with unique values per write, a retry applied
    /// twice (no sessions) lets a later read see an overwritten value again.
    fn retryable(command: &KvCommand) -> bool {
        command.is_update()
    }

    fn refusal_hint(response: &KvResponse) -> Option<Option<NodeId>> {
        match response {
            KvResponse::Rejected { hint, .. } => Some(*hint),
            _ => None,
        }
    }

    fn final_requests(&mut self) -> Vec<KvCommand> {
        (0..self.rotation.issued()).map(|key| KvCommand::Read { key }).collect()
    }

    fn judge(self, outcome: &mut RunOutcome) {
        let history = History { ops: self.history };
        let report = quorum_check::linearizability::check(&history, quorum_check::linearizability::Model::Kv);
        use quorum_check::linearizability::Outcome;
        outcome.linearizable = report.outcome != Outcome::NotLinearizable;
        outcome.linearizability = match report.outcome {
            Outcome::Linearizable => "linearizable",
            Outcome::NotLinearizable => "not linearizable",
            Outcome::Unknown => "unknown",
        }
        .to_string();
        if !outcome.linearizable {
            outcome.linearizability_explanation = Some(report.explanation.clone());
        }
        outcome.lost_acked_writes =
            quorum_check::durability::lost_acked_writes(&history, &self.final_values).len() as u64;
        outcome.history = history;
    }
}
