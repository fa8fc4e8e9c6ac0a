//! The event loop: nodes, network, clients, nemesis, in virtual time.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use quorum_check::History;
use quorum_core::{
    Cluster, Effect, KvCommand, KvResponse, Micros, NodeId, Observation, Out, Protocol, RequestId, Rng, Role,
    Time,
};
use serde::Serialize;

use crate::config::SimConfig;
use crate::faults::{Fault, Schedule};
use crate::network::{Fate, Network};
use crate::outcome::{Percentiles, RunOutcome};
use crate::workload::{Completion, KvWorkload, Verdict, Workload};

/// A protocol the KV workload can drive.
pub trait KvProtocol: Protocol<Request = KvCommand, Response = KvResponse> {}
impl<P: Protocol<Request = KvCommand, Response = KvResponse>> KvProtocol for P {}

const NETWORK_STREAM: u64 = 1 << 41;
const WORKLOAD_STREAM: u64 = 1 << 42;
const NODE_STREAM: u64 = 1 << 43;
/// Cross-node invariants are checked every this many events (and at the end).
const CLUSTER_CHECK_EVERY: u64 = 64;
/// How long the final reader may take after quiescence.
const FINAL_READS_MS: u64 = 5_000;

/// A run that cannot start: its parameters or the protocol's settings are
/// refused (by [`SimConfig::validate`] or [`Protocol::validate`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Sim(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Protocol(#[from] quorum_core::ConfigError),
}

/// Run one simulation. Never panics on a protocol panic: the panic becomes a
/// violation of the outcome.
pub fn run<P: KvProtocol>(config: &SimConfig, protocol: &P::Config) -> Result<RunOutcome, RunError> {
    run_with::<P, KvWorkload>(config, protocol, false)
}

/// Like [`run`], also recording the full trace as JSON lines.
pub fn run_traced<P: KvProtocol>(config: &SimConfig, protocol: &P::Config) -> Result<RunOutcome, RunError> {
    run_with::<P, KvWorkload>(config, protocol, true)
}

/// One run of protocol `P` under workload `W`, traced or not. The run's
/// parameters and the protocol's settings are validated first.
pub fn run_with<P: Protocol, W: Workload<P>>(
    config: &SimConfig,
    protocol: &P::Config,
    trace: bool,
) -> Result<RunOutcome, RunError> {
    config.validate()?;
    let members: Vec<NodeId> = (0..config.nodes).map(NodeId).collect();
    P::validate(protocol, &members)?;
    let schedule = config.schedule.clone().unwrap_or_else(|| Schedule::generate(config));
    let mut world = World::<P, W>::new(config, protocol, schedule.clone(), trace);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
    Ok(match result {
        Ok(()) => world.finish(),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            let mut outcome = empty_outcome(config, &schedule);
            outcome.panic = Some(message);
            // The trace up to the panic is what explains it.
            outcome.trace = world.trace.take();
            outcome.classify();
            outcome
        }
    })
}

/// The replay command for `config` with `schedule`.
pub(crate) fn replay_command(config: &SimConfig, schedule: &Schedule) -> String {
    let mut cmd = format!(
        "quorum sim {} --nodes {} --seed {} --ops {}",
        config.protocol_args, config.nodes, config.seed, config.ops
    );
    // Every setting the command line can change, where it is not the default.
    let defaults = SimConfig::new("");
    if config.clients != defaults.clients {
        let _ = write!(cmd, " --clients {}", config.clients);
    }
    if config.keys != defaults.keys {
        let _ = write!(cmd, " --keys {}", config.keys);
    }
    if config.ops_per_key != defaults.ops_per_key {
        let _ = write!(cmd, " --ops-per-key {}", config.ops_per_key);
    }
    if (config.latency_min_us, config.latency_max_us) != (defaults.latency_min_us, defaults.latency_max_us) {
        let _ = write!(cmd, " --latency-us {}-{}", config.latency_min_us, config.latency_max_us);
    }
    if config.max_down != SimConfig::minority(config.nodes) {
        let _ = write!(cmd, " --max-down {}", config.max_down);
    }
    if config.retries != 0 {
        let _ = write!(cmd, " --retries {}", config.retries);
    }
    if config.client_timeout_ms != defaults.client_timeout_ms {
        let _ = write!(cmd, " --client-timeout-ms {}", config.client_timeout_ms);
    }
    if config.safety_ms != defaults.safety_ms {
        let _ = write!(cmd, " --safety-ms {}", config.safety_ms);
    }
    if config.liveness_ms != defaults.liveness_ms {
        let _ = write!(cmd, " --liveness-ms {}", config.liveness_ms);
    }
    let _ = write!(cmd, " --schedule '{schedule}'");
    cmd
}

fn empty_outcome(config: &SimConfig, schedule: &Schedule) -> RunOutcome {
    RunOutcome {
        protocol: config.protocol_name().to_string(),
        seed: config.seed,
        nodes: config.nodes,
        faults: config.faults.to_string(),
        schedule: schedule.to_string(),
        ops_ok: 0,
        ops_fail: 0,
        ops_info: 0,
        writes_failed: 0,
        linearizable: true,
        linearizability: "n/a".into(),
        linearizability_explanation: None,
        lost_acked_writes: 0,
        split_brain: 0,
        converged: None,
        liveness_ok: false,
        log_safety_violations: 0,
        election_safety_violations: 0,
        consensus_violations: Vec::new(),
        termination_violations: 0,
        cluster_invariant: None,
        panic: None,
        acked_updates: 0,
        messages_sent: 0,
        outcome_acks_sent: 0,
        messages_delivered: 0,
        messages_dropped: 0,
        persists: 0,
        update_latency_us: Percentiles::default(),
        events: 0,
        failover_us: Vec::new(),
        sim_time_ms: 0,
        txn: None,
        violations: Vec::new(),
        replay: replay_command(config, schedule),
        history: History::default(),
        txn_history: Vec::new(),
        trace: None,
    }
}

enum Event<P: Protocol> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: P::Msg,
    },
    Timer {
        node: NodeId,
        timer: P::Timer,
        generation: u64,
    },
    /// A client's request reaches a node.
    Request {
        node: NodeId,
        rid: RequestId,
        request: P::Request,
    },
    /// A node's reply reaches its client.
    Reply {
        rid: RequestId,
        node: NodeId,
        response: P::Response,
    },
    /// Attempt `attempt` of request `rid` timed out (a later attempt has
    /// its own timeout).
    Timeout {
        rid: RequestId,
        attempt: u32,
    },
    ClientWake {
        client: usize,
    },
    Fault(usize),
    /// The end of the safety phase: heal everything.
    Heal,
    /// The end of quiescence: compare replicas, start the final reads.
    QuiesceEnd,
    /// The final reader retries after a failure.
    FinalRead,
    /// A killed node's supervisor restarts it (if it is still the same
    /// incarnation, down).
    Revive {
        node: NodeId,
        incarnation: u64,
    },
}

impl<P: Protocol> Event<P> {
    /// The node an event happens at, if any (for crash and pause).
    fn node(&self) -> Option<NodeId> {
        match self {
            Event::Deliver { to, .. } => Some(*to),
            Event::Timer { node, .. } | Event::Request { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct Queued<P: Protocol> {
    at: Time,
    seq: u64,
    event: Event<P>,
}

impl<P: Protocol> PartialEq for Queued<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<P: Protocol> Eq for Queued<P> {}
impl<P: Protocol> PartialOrd for Queued<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P: Protocol> Ord for Queued<P> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Node<P: Protocol> {
    state: Option<P>,
    durable: Vec<P::Record>,
    timers: BTreeMap<P::Timer, u64>,
    paused: bool,
    /// Events that arrived while paused, released in order on resume.
    deferred: Vec<Event<P>>,
    /// Crash during the next step, after this many effects.
    crash_after_effects: Option<u32>,
    /// Kill at the end of the next step that persists; restart after this
    /// many ms.
    kill_after_persist: Option<u64>,
    /// Timer rate: a timer set for `d` fires after `d * drift`.
    drift: f64,
    rng: Rng,
    incarnation: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
    Quiesce,
    FinalReads,
    Done,
}

struct InFlight {
    rid: RequestId,
    /// When the client sent it.
    at: Time,
    /// Re-sends (same request id, another node) still allowed.
    retries_left: u32,
    /// Whether it was re-sent: an earlier attempt may have taken effect.
    retried: bool,
    /// Where the latest attempt went, and its number (from 0).
    target: NodeId,
    attempt: u32,
}

/// An armed `crash-leader` fault.
struct LeaderCrash {
    after_effects: u32,
    restart_after_ms: u64,
    /// It lapses at this time if no leader persisted anything before.
    expires: Time,
}

struct Client {
    /// The node this client sits beside: a partition cuts the client off
    /// from the nodes its home cannot reach (Jepsen binds clients to nodes).
    home: NodeId,
    target: NodeId,
    /// Operations still to invoke.
    remaining: u32,
    /// Operations it may still invoke before the heal.
    safety_quota: u32,
    in_flight: Option<InFlight>,
    ok_after_heal: bool,
    /// Waiting for the heal because its safety quota ran out.
    parked: bool,
}

/// After quiescence, one reader reads every key until it succeeds: the final
/// state the durability checker judges.
struct FinalReader<R> {
    /// Requests still to complete, next last.
    pending: Vec<R>,
    in_flight: Option<InFlight>,
    target: NodeId,
}

struct World<'a, P: Protocol, W: Workload<P>> {
    config: &'a SimConfig,
    protocol: &'a P::Config,
    schedule: Schedule,
    now: Time,
    queue: BinaryHeap<Queued<P>>,
    seq: u64,
    nodes: Vec<Node<P>>,
    network: Network,
    workload_rng: Rng,
    workload: W,
    clients: Vec<Client>,
    next_rid: u64,
    /// Which client sent each request, and what it asked. The final reader
    /// is client number `clients.len()`.
    requests: BTreeMap<RequestId, (usize, P::Request)>,
    final_reader: FinalReader<P::Request>,
    ops: [u64; 3],
    phase: Phase,
    heal_at: Time,
    deadline: Time,
    // Observations for the checkers.
    leadership_open: BTreeMap<NodeId, (u64, Time)>,
    /// Armed `crash-leader` faults, oldest first.
    leader_crashes: Vec<LeaderCrash>,
    leadership: Vec<quorum_check::consensus::LeaderInterval>,
    acked_writes: Vec<(NodeId, u64)>,
    /// Whether any node reported applying a log entry: the protocol keeps
    /// a consensus log, judged by log safety instead of split-brain.
    replicated_log: bool,
    log_safety: quorum_check::consensus::LogSafety,
    /// Proposals and decisions, for Agreement, Validity, Integrity, Termination.
    consensus: quorum_check::consensus::ConsensusLog,
    /// The first node seen leading each term.
    leaders_by_term: BTreeMap<u64, NodeId>,
    /// Leaders crashed in the safety phase and not yet succeeded: (term, when).
    failovers_open: Vec<(u64, Time)>,
    /// Time from a leader's crash to the next leader of a higher term, µs.
    failover_us: Vec<u64>,
    election_safety_violations: u64,
    /// The first cross-node invariant the protocol reported broken.
    cluster_invariant: Option<String>,
    digests: Vec<(NodeId, Option<u64>)>,
    // Counters.
    messages_sent: u64,
    /// Of `messages_sent`, acknowledgments of an outcome (`Protocol::is_outcome_ack`).
    outcome_acks_sent: u64,
    messages_delivered: u64,
    messages_dropped: u64,
    persists: u64,
    writes_failed: u64,
    /// Send-to-answer time of every acknowledged update of a regular client.
    update_latencies_us: Vec<u64>,
    events: u64,
    trace: Option<String>,
}

#[derive(Serialize)]
struct TraceLine<'a, T: Serialize> {
    t: u64,
    ev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<u32>,
    #[serde(flatten)]
    body: T,
}

impl<'a, P: Protocol, W: Workload<P>> World<'a, P, W> {
    fn new(config: &'a SimConfig, protocol: &'a P::Config, schedule: Schedule, trace: bool) -> Self {
        let workload_rng = Rng::stream(config.seed, WORKLOAD_STREAM);
        let nodes = (0..config.nodes)
            .map(|i| {
                let mut rng = Rng::stream(config.seed, NODE_STREAM + u64::from(i));
                let drift = 1.0 + config.timer_drift * (2.0 * rng.unit() - 1.0);
                Node {
                    state: None,
                    durable: Vec::new(),
                    timers: BTreeMap::new(),
                    paused: false,
                    deferred: Vec::new(),
                    crash_after_effects: None,
                    kill_after_persist: None,
                    drift,
                    rng,
                    incarnation: 0,
                }
            })
            .collect();
        let per_client = config.ops / config.clients;
        let extra = config.ops % config.clients;
        let clients = (0..config.clients)
            .map(|c| {
                let remaining = per_client + u32::from(c < extra);
                let home = NodeId(c % config.nodes);
                Client {
                    home,
                    target: home,
                    remaining,
                    safety_quota: remaining * 3 / 4,
                    in_flight: None,
                    ok_after_heal: false,
                    parked: false,
                }
            })
            .collect();
        let heal_at = Time::from_millis(config.safety_ms);
        World {
            config,
            protocol,
            schedule,
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes,
            network: Network::new(
                config.latency_min_us,
                config.latency_max_us,
                Rng::stream(config.seed, NETWORK_STREAM),
            ),
            workload_rng,
            workload: W::new(config),
            clients,
            final_reader: FinalReader { pending: Vec::new(), in_flight: None, target: NodeId(0) },
            next_rid: 0,
            requests: BTreeMap::new(),
            ops: [0; 3],
            phase: Phase::Safety,
            heal_at,
            deadline: heal_at + Micros::from_millis(config.liveness_ms),
            leadership_open: BTreeMap::new(),
            leader_crashes: Vec::new(),
            leadership: Vec::new(),
            acked_writes: Vec::new(),
            replicated_log: false,
            log_safety: quorum_check::consensus::LogSafety::new(),
            consensus: quorum_check::consensus::ConsensusLog::new(),
            leaders_by_term: BTreeMap::new(),
            failovers_open: Vec::new(),
            failover_us: Vec::new(),
            election_safety_violations: 0,
            cluster_invariant: None,
            digests: Vec::new(),
            messages_sent: 0,
            outcome_acks_sent: 0,
            messages_delivered: 0,
            messages_dropped: 0,
            persists: 0,
            writes_failed: 0,
            update_latencies_us: Vec::new(),
            events: 0,
            trace: trace.then(String::new),
        }
    }

    fn schedule_at(&mut self, at: Time, event: Event<P>) {
        self.seq += 1;
        self.queue.push(Queued { at, seq: self.seq, event });
    }

    fn trace<T: Serialize>(&mut self, ev: &str, node: Option<NodeId>, body: T) {
        if let Some(out) = self.trace.as_mut() {
            let line = TraceLine { t: self.now.as_micros(), ev, node: node.map(|n| n.0), body };
            out.push_str(&serde_json::to_string(&line).expect("trace lines serialize"));
            out.push('\n');
        }
    }

    fn run(&mut self) {
        for i in 0..self.config.nodes {
            self.start_node(NodeId(i));
        }
        for (i, entry) in self.schedule.0.clone().into_iter().enumerate() {
            if entry.at < self.heal_at {
                self.schedule_at(entry.at, Event::Fault(i));
            }
        }
        self.schedule_at(self.heal_at, Event::Heal);
        for c in 0..self.clients.len() {
            let delay = self.think_time();
            self.schedule_at(Time::ZERO + delay, Event::ClientWake { client: c });
        }
        while let Some(Queued { at, event, .. }) = self.queue.pop() {
            debug_assert!(at >= self.now, "time never goes backwards");
            self.now = at;
            self.events += 1;
            self.dispatch(event);
            if self.events.is_multiple_of(CLUSTER_CHECK_EVERY) {
                self.check_cluster();
            }
            if self.phase == Phase::Done {
                break;
            }
            if self.now > self.deadline && matches!(self.phase, Phase::Liveness) {
                // Clients did not finish in time: stop waiting, quiesce, judge.
                self.begin_quiesce();
            }
        }
    }

    fn dispatch(&mut self, event: Event<P>) {
        if let Some(node) = event.node() {
            let slot = &mut self.nodes[node.0 as usize];
            if slot.state.is_none() {
                self.drop_at_crashed_node(event);
                return;
            }
            if slot.paused {
                slot.deferred.push(event);
                return;
            }
        }
        match event {
            Event::Deliver { from, to, msg } => {
                self.messages_delivered += 1;
                self.trace("deliver", Some(to), serde_json::json!({ "from": from.0, "msg": &msg }));
                self.step(to, |p, out| p.on_message(from, msg, out));
            }
            Event::Timer { node, timer, generation } => {
                if self.nodes[node.0 as usize].timers.get(&timer) != Some(&generation) {
                    return; // re-armed or cancelled since
                }
                self.nodes[node.0 as usize].timers.remove(&timer);
                self.trace("timer", Some(node), serde_json::json!({ "timer": &timer }));
                self.step(node, |p, out| p.on_timer(timer, out));
            }
            Event::Request { node, rid, request } => {
                self.trace(
                    "request",
                    Some(node),
                    serde_json::json!({ "rid": rid.to_string(), "request": format!("{request:?}") }),
                );
                self.step(node, |p, out| p.on_request(rid, request, out));
            }
            Event::Reply { rid, node, response } => self.client_reply(rid, node, response),
            Event::Timeout { rid, attempt } => self.client_timeout(rid, attempt),
            Event::ClientWake { client } => self.client_wake(client),
            Event::Fault(i) => {
                let fault = self.schedule.0[i].fault.clone();
                self.apply_fault(&fault);
            }
            Event::Heal => self.heal(),
            Event::QuiesceEnd => self.end_quiesce(),
            Event::FinalRead => self.schedule_final_read(Micros(0)),
            Event::Revive { node, incarnation } => {
                let slot = &self.nodes[node.0 as usize];
                if slot.state.is_none() && slot.incarnation == incarnation && self.phase == Phase::Safety {
                    self.start_node(node);
                }
            }
        }
    }

    fn check_cluster(&mut self) {
        if self.cluster_invariant.is_some() {
            return;
        }
        let live: Vec<(NodeId, &P)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.state.as_ref().map(|s| (NodeId(i as u32), s)))
            .collect();
        if let Err(broken) = P::cluster_invariants(&live) {
            self.trace(
                "violation",
                None,
                serde_json::json!({ "kind": "cluster_invariant", "what": &broken }),
            );
            self.cluster_invariant = Some(broken);
        }
    }

    fn drop_at_crashed_node(&mut self, event: Event<P>) {
        if let Event::Deliver { from, to, .. } = event {
            self.messages_dropped += 1;
            self.trace("drop", Some(to), serde_json::json!({ "from": from.0, "why": "crashed" }));
        }
    }

    // ---- nodes ----

    fn cluster(&self, id: NodeId) -> Cluster {
        Cluster::new(id, (0..self.config.nodes).map(NodeId).collect())
    }

    fn start_node(&mut self, id: NodeId) {
        let cluster = self.cluster(id);
        let slot = &mut self.nodes[id.0 as usize];
        debug_assert!(slot.state.is_none());
        slot.incarnation += 1;
        slot.rng = Rng::stream(self.config.seed, NODE_STREAM + u64::from(id.0) + (slot.incarnation << 16));
        slot.timers.clear();
        let mut out = Out::new(self.now, &mut slot.rng);
        let state = P::start(&cluster, self.protocol, &slot.durable, &mut out);
        state.invariants();
        let effects = out.into_effects();
        let durable_records = slot.durable.len();
        slot.state = Some(state);
        self.trace("start", Some(id), serde_json::json!({ "durable_records": durable_records }));
        self.execute(id, effects);
    }

    fn step(&mut self, id: NodeId, input: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        let now = self.now;
        let slot = &mut self.nodes[id.0 as usize];
        let state = slot.state.as_mut().expect("steps run only on live nodes");
        let mut out = Out::new(now, &mut slot.rng);
        input(state, &mut out);
        state.invariants();
        let effects = out.into_effects();
        self.execute(id, effects);
    }

    /// Carry out a step's effects in order. A pending mid-step crash stops
    /// them after `k` effects: the durability rule in action — what was
    /// persisted before the crash point stays, nothing after it escapes.
    ///
    /// An armed kill strikes after the last effect of a step that persisted
    /// something: the disk write returned and the messages left, and then
    /// the process died, losing everything it had not persisted.
    fn execute(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        let crash_after = self.nodes[id.0 as usize].crash_after_effects.take();
        let revive_after_ms = None;
        if crash_after.is_none() {
            if let Some(strike) = self.leader_crash_for(id, &effects) {
                return self.execute_torn_broadcast(id, effects, strike);
            }
        }
        let incarnation = self.nodes[id.0 as usize].incarnation;
        let mut persisted = false;
        for (i, effect) in effects.into_iter().enumerate() {
            if crash_after == Some(i as u32) {
                self.crash_and_revive(id, "mid-step", revive_after_ms, incarnation);
                return;
            }
            persisted |= matches!(effect, Effect::Persist(_) | Effect::Checkpoint(_));
            self.execute_one(id, effect);
        }
        if crash_after.is_some() {
            self.crash_and_revive(id, "end of step", revive_after_ms, incarnation);
            return;
        }
        let slot = &self.nodes[id.0 as usize];
        if let (true, Some(restart_after_ms)) = (persisted && slot.state.is_some(), slot.kill_after_persist) {
            self.crash_and_revive(id, "killed after a persist", Some(restart_after_ms), incarnation);
        }
    }

    /// A `crash-leader` strike: the machine dies just after the step's first
    /// disk write, and only `after_effects - 1` of the step's messages got
    /// out (the rest were still in its send queues, lost with it). Whether
    /// the protocol sends before its write (a Raft leader replicating
    /// while it appends) or after, the write is durable on the leader and
    /// its message on at most `after_effects - 1` followers.
    fn execute_torn_broadcast(&mut self, id: NodeId, effects: Vec<Effect<P>>, strike: LeaderCrash) {
        let incarnation = self.nodes[id.0 as usize].incarnation;
        let mut sends_left = strike.after_effects.saturating_sub(1);
        let mut persisted = false;
        for effect in effects {
            if persisted && sends_left == 0 {
                break;
            }
            match effect {
                Effect::Send { to, .. } if sends_left == 0 => {
                    self.trace("lost-in-crash", Some(id), serde_json::json!({ "to": to.0 }));
                }
                Effect::Send { .. } => {
                    sends_left -= 1;
                    self.execute_one(id, effect);
                }
                Effect::Persist(_) | Effect::Checkpoint(_) => {
                    persisted = true;
                    self.execute_one(id, effect);
                }
                other => self.execute_one(id, other),
            }
        }
        self.crash_and_revive(id, "leader crash", Some(strike.restart_after_ms), incarnation);
    }

    /// The armed `crash-leader` fault that strikes this step of `id`, if
    /// any: `id` leads (it announced `Role::Leader` and nothing since) and
    /// the step persists something. The oldest armed fault strikes first;
    /// lapsed ones are dropped.
    fn leader_crash_for(&mut self, id: NodeId, effects: &[Effect<P>]) -> Option<LeaderCrash> {
        let now = self.now;
        self.leader_crashes.retain(|armed| armed.expires > now);
        if self.leader_crashes.is_empty() || !self.leadership_open.contains_key(&id) {
            return None;
        }
        if !effects.iter().any(|e| matches!(e, Effect::Persist(_) | Effect::Checkpoint(_))) {
            return None;
        }
        Some(self.leader_crashes.remove(0))
    }

    /// Crash `id`; with `revive_after_ms`, its supervisor restarts this
    /// incarnation that much later (unless the heal restarted it first).
    fn crash_and_revive(&mut self, id: NodeId, how: &str, revive_after_ms: Option<u64>, incarnation: u64) {
        self.crash(id, how);
        if let Some(ms) = revive_after_ms {
            let at = self.now + Micros::from_millis(ms);
            self.schedule_at(at, Event::Revive { node: id, incarnation });
        }
    }

    fn execute_one(&mut self, id: NodeId, effect: Effect<P>) {
        match effect {
            Effect::Send { to, msg } => self.send(id, to, msg),
            Effect::Persist(record) => {
                self.persists += 1;
                self.trace("persist", Some(id), serde_json::json!({ "record": &record }));
                self.nodes[id.0 as usize].durable.push(record);
            }
            Effect::Checkpoint(record) => {
                self.persists += 1;
                self.trace("checkpoint", Some(id), serde_json::json!({ "record": &record }));
                self.nodes[id.0 as usize].durable = vec![record];
            }
            Effect::SetTimer { timer, after } => {
                self.seq += 1;
                let generation = self.seq;
                let slot = &mut self.nodes[id.0 as usize];
                let local = Micros((after.0 as f64 * slot.drift) as u64);
                slot.timers.insert(timer.clone(), generation);
                self.schedule_at(self.now + local, Event::Timer { node: id, timer, generation });
            }
            Effect::CancelTimer(timer) => {
                self.nodes[id.0 as usize].timers.remove(&timer);
            }
            Effect::Reply { id: rid, response } => self.reply(id, rid, response),
            Effect::Observe(observation) => self.observe(id, observation),
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        assert!(to.0 < self.config.nodes, "{from} sent to unknown node {to}");
        self.messages_sent += 1;
        self.outcome_acks_sent += u64::from(P::is_outcome_ack(&msg));
        match self.network.route(from, to) {
            Fate::Dropped(why) => {
                self.messages_dropped += 1;
                self.trace("drop", Some(from), serde_json::json!({ "to": to.0, "why": why, "msg": &msg }));
            }
            Fate::Delivered(first, second) => {
                self.trace("send", Some(from), serde_json::json!({ "to": to.0, "msg": &msg }));
                if let Some(second) = second {
                    self.schedule_at(self.now + second, Event::Deliver { from, to, msg: msg.clone() });
                }
                self.schedule_at(self.now + first, Event::Deliver { from, to, msg });
            }
        }
    }

    fn reply(&mut self, node: NodeId, rid: RequestId, response: P::Response) {
        self.trace(
            "reply",
            Some(node),
            serde_json::json!({ "rid": rid.to_string(), "response": format!("{response:?}") }),
        );
        let Some((owner, request)) = self.requests.get(&rid) else { return };
        let owner = *owner;
        if W::acknowledges_update(request, &response) {
            self.acked_writes.push((node, self.now.as_micros()));
        }
        if self.network.blocked(node, self.home(owner)) {
            self.trace("drop", Some(node), serde_json::json!({ "rid": rid.to_string(), "why": "partition" }));
            return;
        }
        let latency = self.network.latency();
        self.schedule_at(self.now + latency, Event::Reply { rid, node, response });
    }

    fn observe(&mut self, node: NodeId, observation: Observation) {
        self.trace("observe", Some(node), serde_json::json!({ "observation": &observation }));
        self.workload.observed(node, &observation, self.now);
        match observation {
            Observation::Role { role, term } => {
                self.close_leadership(node);
                if role == Role::Leader {
                    let now = self.now;
                    let failover_us = &mut self.failover_us;
                    self.failovers_open.retain(|(crashed_term, at)| {
                        let succeeded = term > *crashed_term;
                        if succeeded {
                            failover_us.push(now.saturating_sub(*at).0);
                        }
                        !succeeded
                    });
                    self.leadership_open.insert(node, (term, self.now));
                    // Election safety: at most one leader per term, ever.
                    let leader = *self.leaders_by_term.entry(term).or_insert(node);
                    if leader != node {
                        self.election_safety_violations += 1;
                        self.trace(
                            "violation",
                            Some(node),
                            serde_json::json!({ "kind": "election_safety", "term": term, "other": leader.0 }),
                        );
                    }
                }
            }
            Observation::Apply { index, term, command } => {
                self.replicated_log = true;
                self.log_safety.apply(node, index, term, command);
            }
            Observation::Propose { instance, value } => self.consensus.propose(node, instance, value),
            Observation::Decide { instance, value } => {
                self.consensus.decide(node, instance, value, self.now.as_micros());
            }
            _ => {}
        }
    }

    fn close_leadership(&mut self, node: NodeId) {
        if let Some((term, start)) = self.leadership_open.remove(&node) {
            self.leadership.push(quorum_check::consensus::LeaderInterval {
                node,
                term,
                start: start.as_micros(),
                end: self.now.as_micros(),
            });
        }
    }

    fn crash(&mut self, id: NodeId, how: &str) {
        let slot = &mut self.nodes[id.0 as usize];
        if slot.state.is_none() {
            return;
        }
        slot.state = None;
        slot.timers.clear();
        slot.deferred.clear();
        slot.paused = false;
        slot.crash_after_effects = None;
        slot.kill_after_persist = None;
        if let Some((term, _)) = self.leadership_open.get(&id) {
            if self.phase == Phase::Safety {
                self.failovers_open.push((*term, self.now));
            }
        }
        self.close_leadership(id);
        self.workload.crashed(id, self.now);
        self.trace("crash", Some(id), serde_json::json!({ "how": how }));
    }

    // ---- nemesis ----

    fn apply_fault(&mut self, fault: &Fault) {
        self.trace("fault", None, serde_json::json!({ "fault": fault.to_string() }));
        match fault {
            Fault::Crash { node, after_effects: None } => self.crash(*node, "now"),
            Fault::Crash { node, after_effects: Some(k) } => {
                if self.nodes[node.0 as usize].state.is_some() {
                    self.nodes[node.0 as usize].crash_after_effects = Some(*k);
                }
            }
            Fault::Restart { node } => {
                if self.nodes[node.0 as usize].state.is_none() {
                    self.start_node(*node);
                }
            }
            Fault::Kill { node, restart_after_ms } => {
                if self.nodes[node.0 as usize].state.is_some() {
                    self.nodes[node.0 as usize].kill_after_persist = Some(*restart_after_ms);
                }
            }
            Fault::Disarm { node } => self.nodes[node.0 as usize].kill_after_persist = None,
            Fault::Pause { node } => {
                if self.nodes[node.0 as usize].state.is_some() {
                    self.nodes[node.0 as usize].paused = true;
                }
            }
            Fault::Resume { node } => self.resume(*node),
            Fault::CrashLeader { after_effects, restart_after_ms, armed_ms } => {
                self.leader_crashes.push(LeaderCrash {
                    after_effects: *after_effects,
                    restart_after_ms: *restart_after_ms,
                    expires: self.now + Micros::from_millis(*armed_ms),
                });
            }
            network_fault => self.network.apply(network_fault),
        }
    }

    fn resume(&mut self, node: NodeId) {
        let slot = &mut self.nodes[node.0 as usize];
        if !slot.paused {
            return;
        }
        slot.paused = false;
        let deferred = std::mem::take(&mut slot.deferred);
        for event in deferred {
            self.schedule_at(self.now, event);
        }
    }

    fn heal(&mut self) {
        self.trace("heal", None, serde_json::json!({}));
        self.phase = Phase::Liveness;
        self.network.heal_all();
        self.leader_crashes.clear();
        for i in 0..self.config.nodes {
            let node = NodeId(i);
            self.nodes[i as usize].crash_after_effects = None;
            self.nodes[i as usize].kill_after_persist = None;
            if self.nodes[i as usize].state.is_none() {
                self.start_node(node);
            }
            self.resume(node);
        }
        for c in 0..self.clients.len() {
            if self.clients[c].parked {
                self.clients[c].parked = false;
                let delay = self.think_time();
                self.schedule_at(self.now + delay, Event::ClientWake { client: c });
            }
        }
        self.maybe_clients_done();
    }

    // ---- clients ----

    fn think_time(&mut self) -> Micros {
        // Pace the workload so ~3/4 of the operations fall in the safety phase.
        let per_client = f64::from(self.config.ops) / f64::from(self.config.clients);
        let mean_us = (self.config.safety_ms as f64 * 1000.0) / (per_client * 0.75).max(1.0);
        Micros(self.workload_rng.range(0, (2.0 * mean_us) as u64 + 1))
    }

    fn random_node(&mut self) -> NodeId {
        NodeId(self.workload_rng.range(0, u64::from(self.config.nodes)) as u32)
    }

    fn client_wake(&mut self, c: usize) {
        let client = &self.clients[c];
        if client.in_flight.is_some() || client.remaining == 0 || self.phase == Phase::Done {
            return;
        }
        if self.phase == Phase::Safety && client.safety_quota == 0 {
            self.clients[c].parked = true;
            return;
        }
        let request = self.workload.next(c, &mut self.workload_rng);
        let client = &mut self.clients[c];
        client.remaining -= 1;
        client.safety_quota = client.safety_quota.saturating_sub(1);
        let target = client.target;
        self.invoke(c, target, request);
    }

    fn invoke(&mut self, c: usize, target: NodeId, request: P::Request) {
        self.next_rid += 1;
        let rid = RequestId::new(c as u64, self.next_rid);
        self.workload.invoked(c, &request, self.now);
        self.requests.insert(rid, (c, request.clone()));
        let retries_left = if W::retryable(&request) { self.config.retries } else { 0 };
        let in_flight = InFlight { rid, at: self.now, retries_left, retried: false, target, attempt: 0 };
        if c < self.clients.len() {
            self.clients[c].in_flight = Some(in_flight);
        } else {
            self.final_reader.in_flight = Some(in_flight);
        }
        self.send_attempt(c, target, rid, request, 0);
    }

    /// Send attempt `attempt` of request `rid` to `target`, with its timeout.
    fn send_attempt(&mut self, c: usize, target: NodeId, rid: RequestId, request: P::Request, attempt: u32) {
        let home = self.home(c);
        if self.network.blocked(home, target) {
            self.trace(
                "drop",
                Some(target),
                serde_json::json!({ "rid": rid.to_string(), "why": "partition" }),
            );
        } else {
            let latency = self.network.latency();
            self.schedule_at(self.now + latency, Event::Request { node: target, rid, request });
        }
        let timeout = Micros::from_millis(self.config.client_timeout_ms);
        self.schedule_at(self.now + timeout, Event::Timeout { rid, attempt });
    }
}

impl<P: Protocol, W: Workload<P>> World<'_, P, W> {
    /// Where a request's owner sits; the final reader runs after the heal and
    /// sits beside its target.
    fn home(&self, owner: usize) -> NodeId {
        if owner < self.clients.len() {
            self.clients[owner].home
        } else {
            self.final_reader.target
        }
    }

    fn in_flight(&self, owner: usize) -> Option<&InFlight> {
        if owner < self.clients.len() {
            self.clients[owner].in_flight.as_ref()
        } else {
            self.final_reader.in_flight.as_ref()
        }
    }

    fn in_flight_mut(&mut self, owner: usize) -> Option<&mut InFlight> {
        if owner < self.clients.len() {
            self.clients[owner].in_flight.as_mut()
        } else {
            self.final_reader.in_flight.as_mut()
        }
    }

    /// Re-send an update that timed out or was refused after an earlier
    /// attempt, with the SAME request id, to `hint` or another node: a
    /// client of a protocol with sessions (Raft, diss. §6.3) retries until
    /// it knows the outcome, and the protocol must apply it at most once.
    /// The history keeps one operation. Returns false when no retry is left.
    fn retry(&mut self, owner: usize, rid: RequestId, hint: Option<NodeId>) -> bool {
        let nodes = self.config.nodes;
        let Some(flight) = self.in_flight(owner) else { return false };
        if flight.retries_left == 0 {
            return false;
        }
        let previous = flight.target;
        let target = match hint.filter(|h| h.0 < nodes && *h != previous) {
            Some(hint) => hint,
            None if nodes > 1 => {
                // Any node but the one that did not answer.
                let pick = self.workload_rng.range(0, u64::from(nodes) - 1) as u32;
                NodeId(if pick >= previous.0 { pick + 1 } else { pick })
            }
            None => previous,
        };
        let flight = self.in_flight_mut(owner).expect("checked above");
        flight.retries_left -= 1;
        flight.retried = true;
        flight.target = target;
        flight.attempt += 1;
        let attempt = flight.attempt;
        let (_, request) = self.requests.get(&rid).cloned().expect("the request is known");
        self.trace("retry", Some(target), serde_json::json!({ "rid": rid.to_string() }));
        self.send_attempt(owner, target, rid, request, attempt);
        true
    }

    fn take_in_flight(&mut self, owner: usize) -> InFlight {
        let slot = if owner < self.clients.len() {
            &mut self.clients[owner].in_flight
        } else {
            &mut self.final_reader.in_flight
        };
        slot.take().expect("the request is in flight")
    }

    fn client_reply(&mut self, rid: RequestId, node: NodeId, response: P::Response) {
        let Some((owner, _)) = self.requests.get(&rid) else { return };
        let owner = *owner;
        if self.in_flight(owner).map(|f| f.rid) != Some(rid) {
            self.trace("late-reply", Some(node), serde_json::json!({ "rid": rid.to_string() }));
            return;
        }
        let retried = self.in_flight(owner).is_some_and(|f| f.retried);
        let mut response = Some(response);
        if let Some(hint) = response.as_ref().and_then(|r| W::refusal_hint(r)) {
            if retried {
                // This attempt was refused, but an earlier one may still
                // take effect: retry, or end as indeterminate.
                if self.retry(owner, rid, hint) {
                    return;
                }
                response = None;
            }
        }
        let sent = self.take_in_flight(owner).at;
        let (_, request) = self.requests.remove(&rid).expect("the request is known");
        if owner < self.clients.len()
            && response.as_ref().is_some_and(|r| W::acknowledges_update(&request, r))
        {
            self.update_latencies_us.push(self.now.saturating_sub(sent).0);
        }
        let node = response.is_some().then_some(node);
        let completion = self.workload.completed(owner, &request, response.as_ref(), node, self.now);
        self.complete(owner, completion);
    }

    fn client_timeout(&mut self, rid: RequestId, attempt: u32) {
        let Some((owner, _)) = self.requests.get(&rid) else { return };
        let owner = *owner;
        if self.in_flight(owner).map(|f| (f.rid, f.attempt)) != Some((rid, attempt)) {
            return;
        }
        if self.retry(owner, rid, None) {
            return;
        }
        self.take_in_flight(owner);
        let (_, request) = self.requests.get(&rid).cloned().expect("the request is known");
        let completion = self.workload.completed(owner, &request, None, None, self.now);
        self.complete(owner, completion);
    }

    /// After a request completed: a new target after a rejection or a
    /// timeout, then the client's next request.
    fn complete(&mut self, owner: usize, completion: Completion) {
        self.ops[completion.verdict as usize] += 1;
        if completion.update_refused {
            self.writes_failed += 1;
        }
        let target = match completion.retarget {
            Some(Some(hint)) if hint.0 < self.config.nodes => Some(hint),
            Some(_) => Some(self.random_node()),
            None => None,
        };
        if owner == self.clients.len() {
            let reader = &mut self.final_reader;
            reader.target = target.unwrap_or(reader.target);
            let delay = if completion.verdict == Verdict::Ok {
                reader.pending.pop();
                Micros(0)
            } else {
                Micros::from_millis(50)
            };
            self.schedule_final_read(delay);
            return;
        }
        let client = &mut self.clients[owner];
        client.target = target.unwrap_or(client.target);
        if completion.verdict == Verdict::Ok && self.phase != Phase::Safety {
            client.ok_after_heal = true;
        }
        if client.remaining == 0 {
            self.maybe_clients_done();
            return;
        }
        let delay = self.think_time();
        self.schedule_at(self.now + delay, Event::ClientWake { client: owner });
    }

    fn maybe_clients_done(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        let done = self.clients.iter().all(|c| c.remaining == 0 && c.in_flight.is_none());
        if done {
            self.begin_quiesce();
        }
    }

    fn begin_quiesce(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        self.phase = Phase::Quiesce;
        self.trace("quiesce", None, serde_json::json!({}));
        let end = self.now + Micros::from_millis(self.config.quiesce_ms);
        self.schedule_at(end, Event::QuiesceEnd);
    }

    fn end_quiesce(&mut self) {
        self.digests = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (NodeId(i as u32), n.state.as_ref().and_then(|s| s.state_digest())))
            .collect();
        self.phase = Phase::FinalReads;
        self.deadline = self.now + Micros::from_millis(FINAL_READS_MS);
        let mut pending = self.workload.final_requests();
        pending.reverse();
        self.final_reader.pending = pending;
        self.final_reader.target = self.random_node();
        self.schedule_final_read(Micros(0));
    }

    fn schedule_final_read(&mut self, delay: Micros) {
        let Some(request) = self.final_reader.pending.last().cloned() else {
            self.phase = Phase::Done;
            return;
        };
        if self.now + delay > self.deadline {
            self.phase = Phase::Done;
            return;
        }
        if delay > Micros(0) {
            self.schedule_at(self.now + delay, Event::FinalRead);
            return;
        }
        let target = self.final_reader.target;
        self.invoke(self.clients.len(), target, request);
    }

    fn finish(mut self) -> RunOutcome {
        self.check_cluster();
        for node in 0..self.config.nodes {
            self.close_leadership(NodeId(node));
        }
        let mut outcome = empty_outcome(self.config, &self.schedule);
        outcome.ops_ok = self.ops[Verdict::Ok as usize];
        outcome.ops_fail = self.ops[Verdict::Fail as usize];
        outcome.ops_info = self.ops[Verdict::Info as usize];
        // A deposed leader of a consensus log may rightly acknowledge an
        // entry committed in its term after a successor was elected (the
        // successor holds it: leader completeness), so overlapping acks are
        // no evidence there; log safety, election safety and linearizability
        // judge such protocols. Split-brain judges the others.
        if !self.replicated_log {
            outcome.split_brain =
                quorum_check::consensus::split_brain(&self.leadership, &self.acked_writes).len() as u64;
        }
        outcome.converged = quorum_check::convergence::converged(&self.digests);
        let finished =
            self.clients.iter().all(|c| c.remaining == 0 && c.in_flight.is_none() && c.ok_after_heal);
        outcome.liveness_ok = finished && self.final_reader.pending.is_empty();
        outcome.log_safety_violations = self.log_safety.violations().len() as u64;
        outcome.election_safety_violations = self.election_safety_violations;
        let live: Vec<NodeId> = (0..self.config.nodes).map(NodeId).collect();
        for violation in self.consensus.check(&live, true) {
            if matches!(violation, quorum_check::consensus::ConsensusViolation::Termination { .. }) {
                outcome.termination_violations += 1;
            } else {
                outcome.consensus_violations.push(format!("{violation:?}"));
            }
        }
        outcome.cluster_invariant = self.cluster_invariant.take();
        outcome.acked_updates = self.acked_writes.len() as u64;
        outcome.messages_sent = self.messages_sent;
        outcome.outcome_acks_sent = self.outcome_acks_sent;
        outcome.messages_delivered = self.messages_delivered;
        outcome.messages_dropped = self.messages_dropped;
        outcome.persists = self.persists;
        self.update_latencies_us.sort_unstable();
        outcome.update_latency_us = Percentiles::of_sorted(&self.update_latencies_us);
        outcome.writes_failed = self.writes_failed;
        outcome.events = self.events;
        outcome.failover_us = std::mem::take(&mut self.failover_us);
        outcome.sim_time_ms = self.now.as_millis();
        outcome.trace = self.trace.take();
        self.workload.judge(&mut outcome);
        outcome.classify();
        outcome
    }
}
