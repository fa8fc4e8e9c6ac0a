//! The event loop: nodes, network, clients, nemesis, in virtual time.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use quorum_check::{History, Op, OpType, OpValue, F};
use quorum_core::{
    Cluster, Effect, KvCommand, KvResponse, Micros, NodeId, Observation, Out, Protocol, RequestId, Rng, Role,
    Time,
};
use serde::Serialize;

use crate::config::SimConfig;
use crate::faults::{Fault, Schedule};
use crate::network::{Fate, Network};
use crate::outcome::RunOutcome;

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

/// Run one simulation. Never panics on a protocol panic: the panic becomes a
/// violation of the outcome.
pub fn run<P: KvProtocol>(config: &SimConfig, protocol: &P::Config) -> RunOutcome {
    run_inner::<P>(config, protocol, false)
}

/// Like [`run`], also recording the full trace as JSON lines.
pub fn run_traced<P: KvProtocol>(config: &SimConfig, protocol: &P::Config) -> RunOutcome {
    run_inner::<P>(config, protocol, true)
}

fn run_inner<P: KvProtocol>(config: &SimConfig, protocol: &P::Config, trace: bool) -> RunOutcome {
    config.validate().expect("SimConfig::validate must pass before a run");
    let schedule = config.schedule.clone().unwrap_or_else(|| Schedule::generate(config));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut world = World::<P>::new(config, protocol, schedule.clone(), trace);
        world.run();
        world.finish()
    }));
    match result {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            let mut outcome = empty_outcome(config, &schedule);
            outcome.panic = Some(message);
            outcome.classify();
            outcome
        }
    }
}

/// The replay command for `config` with `schedule`.
pub(crate) fn replay_command(config: &SimConfig, schedule: &Schedule) -> String {
    let mut cmd = format!(
        "quorum sim {} --nodes {} --seed {} --ops {}",
        config.protocol_args, config.nodes, config.seed, config.ops
    );
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
    if config.max_down != SimConfig::minority(config.nodes) {
        let _ = write!(cmd, " --max-down {}", config.max_down);
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
        linearizability: "unknown".into(),
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
        messages_sent: 0,
        messages_delivered: 0,
        messages_dropped: 0,
        persists: 0,
        events: 0,
        sim_time_ms: 0,
        violations: Vec::new(),
        replay: replay_command(config, schedule),
        history: History::default(),
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
        command: KvCommand,
    },
    /// A node's reply reaches its client.
    Reply {
        rid: RequestId,
        node: NodeId,
        response: KvResponse,
    },
    Timeout {
        rid: RequestId,
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
    command: KvCommand,
    process: u64,
}

struct Client {
    /// The node this client sits beside: a partition cuts the client off
    /// from the nodes its home cannot reach (Jepsen binds clients to nodes).
    home: NodeId,
    process: u64,
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
struct FinalReader {
    /// Keys still to read, next last.
    keys: Vec<u64>,
    in_flight: Option<InFlight>,
    process: u64,
    target: NodeId,
}

struct World<'a, P: KvProtocol> {
    config: &'a SimConfig,
    protocol: &'a P::Config,
    schedule: Schedule,
    now: Time,
    queue: BinaryHeap<Queued<P>>,
    seq: u64,
    nodes: Vec<Node<P>>,
    network: Network,
    workload_rng: Rng,
    clients: Vec<Client>,
    final_values: BTreeMap<u64, Option<u64>>,
    next_process: u64,
    next_rid: u64,
    next_value: u64,
    /// Keys in use, with the operations each has taken.
    active_keys: Vec<(u64, u32)>,
    next_key: u64,
    /// Last value each key is known to hold (for plausible cas arguments).
    known: BTreeMap<u64, u64>,
    /// Which client sent each request, and what it asked. The final reader
    /// is client number `clients.len()`.
    requests: BTreeMap<RequestId, (usize, KvCommand)>,
    final_reader: FinalReader,
    history: Vec<Op>,
    phase: Phase,
    heal_at: Time,
    deadline: Time,
    // Observations for the checkers.
    leadership_open: BTreeMap<NodeId, (u64, Time)>,
    leadership: Vec<quorum_check::consensus::LeaderInterval>,
    acked_writes: Vec<(NodeId, u64)>,
    log_safety: quorum_check::consensus::LogSafety,
    /// Proposals and decisions, for Agreement, Validity, Integrity, Termination.
    consensus: quorum_check::consensus::ConsensusLog,
    /// The first node seen leading each term.
    leaders_by_term: BTreeMap<u64, NodeId>,
    election_safety_violations: u64,
    /// The first cross-node invariant the protocol reported broken.
    cluster_invariant: Option<String>,
    digests: Vec<(NodeId, Option<u64>)>,
    // Counters.
    messages_sent: u64,
    messages_delivered: u64,
    messages_dropped: u64,
    persists: u64,
    writes_failed: u64,
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

impl<'a, P: KvProtocol> World<'a, P> {
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
                    drift,
                    rng,
                    incarnation: 0,
                }
            })
            .collect();
        let per_client = config.ops / config.clients;
        let extra = config.ops % config.clients;
        let mut next_process = 0;
        let clients = (0..config.clients)
            .map(|c| {
                let remaining = per_client + u32::from(c < extra);
                let home = NodeId(c % config.nodes);
                next_process += 1;
                Client {
                    home,
                    target: home,
                    process: next_process - 1,
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
            clients,
            final_reader: FinalReader { keys: Vec::new(), in_flight: None, process: 0, target: NodeId(0) },
            final_values: BTreeMap::new(),
            next_process,
            next_rid: 0,
            next_value: 1,
            active_keys: (0..u64::from(config.keys)).map(|k| (k, 0)).collect(),
            next_key: u64::from(config.keys),
            known: BTreeMap::new(),
            requests: BTreeMap::new(),
            history: Vec::new(),
            phase: Phase::Safety,
            heal_at,
            deadline: heal_at + Micros::from_millis(config.liveness_ms),
            leadership_open: BTreeMap::new(),
            leadership: Vec::new(),
            acked_writes: Vec::new(),
            log_safety: quorum_check::consensus::LogSafety::new(),
            consensus: quorum_check::consensus::ConsensusLog::new(),
            leaders_by_term: BTreeMap::new(),
            election_safety_violations: 0,
            cluster_invariant: None,
            digests: Vec::new(),
            messages_sent: 0,
            messages_delivered: 0,
            messages_dropped: 0,
            persists: 0,
            writes_failed: 0,
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
            if self.events % CLUSTER_CHECK_EVERY == 0 {
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
            Event::Request { node, rid, command } => {
                self.trace(
                    "request",
                    Some(node),
                    serde_json::json!({ "rid": rid.to_string(), "command": command }),
                );
                self.step(node, |p, out| p.on_request(rid, command, out));
            }
            Event::Reply { rid, node, response } => self.client_reply(rid, node, response),
            Event::Timeout { rid } => self.client_timeout(rid),
            Event::ClientWake { client } => self.client_wake(client),
            Event::Fault(i) => {
                let fault = self.schedule.0[i].fault.clone();
                self.apply_fault(&fault);
            }
            Event::Heal => self.heal(),
            Event::QuiesceEnd => self.end_quiesce(),
            Event::FinalRead => self.schedule_final_read(Micros(0)),
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
    fn execute(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        let crash_after = self.nodes[id.0 as usize].crash_after_effects.take();
        for (i, effect) in effects.into_iter().enumerate() {
            if crash_after == Some(i as u32) {
                self.crash(id, "mid-step");
                return;
            }
            self.execute_one(id, effect);
        }
        if crash_after.is_some() {
            self.crash(id, "end of step");
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

    fn reply(&mut self, node: NodeId, rid: RequestId, response: KvResponse) {
        self.trace("reply", Some(node), serde_json::json!({ "rid": rid.to_string(), "response": &response }));
        let Some(&(owner, command)) = self.requests.get(&rid) else { return };
        if command.is_update() && response == KvResponse::Done {
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
        match observation {
            Observation::Role { role, term } => {
                self.close_leadership(node);
                if role == Role::Leader {
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
        self.close_leadership(id);
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
            Fault::Pause { node } => {
                if self.nodes[node.0 as usize].state.is_some() {
                    self.nodes[node.0 as usize].paused = true;
                }
            }
            Fault::Resume { node } => self.resume(*node),
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
        for i in 0..self.config.nodes {
            let node = NodeId(i);
            self.nodes[i as usize].crash_after_effects = None;
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

    fn new_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process - 1
    }

    fn random_node(&mut self) -> NodeId {
        NodeId(self.workload_rng.range(0, u64::from(self.config.nodes)) as u32)
    }

    /// A key from the active set. Each key takes at most `ops_per_key`
    /// operations and is then retired for a fresh one (Jepsen's independent
    /// keys): a write lost in a crash is then rarely masked by later writes to
    /// its key, so the durability checker can see it.
    fn pick_key(&mut self) -> u64 {
        let slot = self.workload_rng.range(0, self.active_keys.len() as u64) as usize;
        let (key, used) = &mut self.active_keys[slot];
        let chosen = *key;
        *used += 1;
        if *used >= self.config.ops_per_key {
            *key = self.next_key;
            *used = 0;
            self.next_key += 1;
        }
        chosen
    }

    fn generate_command(&mut self) -> KvCommand {
        let key = self.pick_key();
        let roll = self.workload_rng.unit();
        if roll < 0.5 {
            return KvCommand::Read { key };
        }
        let value = self.next_value;
        self.next_value += 1;
        match self.known.get(&key) {
            Some(&expected) if self.config.cas && roll >= 0.8 => KvCommand::Cas { key, expected, new: value },
            _ => KvCommand::Write { key, value },
        }
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
        let command = self.generate_command();
        let client = &mut self.clients[c];
        client.remaining -= 1;
        client.safety_quota = client.safety_quota.saturating_sub(1);
        let (process, target) = (client.process, client.target);
        self.invoke(c, process, target, command);
    }

    fn invoke(&mut self, c: usize, process: u64, target: NodeId, command: KvCommand) {
        self.next_rid += 1;
        let rid = RequestId::new(c as u64, self.next_rid);
        self.requests.insert(rid, (c, command));
        let (f, key, value) = describe(&command);
        self.record(OpType::Invoke, f, key, value, process, None);
        let in_flight = InFlight { rid, command, process };
        if c < self.clients.len() {
            self.clients[c].in_flight = Some(in_flight);
        } else {
            self.final_reader.in_flight = Some(in_flight);
        }
        let home = self.home(c);
        if self.network.blocked(home, target) {
            self.trace(
                "drop",
                Some(target),
                serde_json::json!({ "rid": rid.to_string(), "why": "partition" }),
            );
        } else {
            let latency = self.network.latency();
            self.schedule_at(self.now + latency, Event::Request { node: target, rid, command });
        }
        let timeout = Micros::from_millis(self.config.client_timeout_ms);
        self.schedule_at(self.now + timeout, Event::Timeout { rid });
    }

    fn record(&mut self, kind: OpType, f: F, key: u64, value: OpValue, process: u64, node: Option<NodeId>) {
        let op = Op {
            index: self.history.len(),
            kind,
            f,
            key,
            value,
            process,
            time: self.now.as_micros(),
            node: node.map(|n| n.0),
        };
        self.trace("history", None, op);
        self.history.push(op);
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

impl<P: KvProtocol> World<'_, P> {
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

    fn take_in_flight(&mut self, owner: usize) -> InFlight {
        let slot = if owner < self.clients.len() {
            &mut self.clients[owner].in_flight
        } else {
            &mut self.final_reader.in_flight
        };
        slot.take().expect("the request is in flight")
    }

    fn client_reply(&mut self, rid: RequestId, node: NodeId, response: KvResponse) {
        let Some(&(owner, _)) = self.requests.get(&rid) else { return };
        if self.in_flight(owner).map(|f| f.rid) != Some(rid) {
            self.trace("late-reply", Some(node), serde_json::json!({ "rid": rid.to_string() }));
            return;
        }
        let in_flight = self.take_in_flight(owner);
        let (f, key, invoked) = describe(&in_flight.command);
        let (kind, value) = match (&in_flight.command, &response) {
            (KvCommand::Read { .. }, KvResponse::Read(v)) => {
                (OpType::Ok, v.map_or(OpValue::Nil, OpValue::One))
            }
            (KvCommand::Write { .. } | KvCommand::Cas { .. }, KvResponse::Done) => (OpType::Ok, invoked),
            (KvCommand::Cas { .. }, KvResponse::CasMismatch) => (OpType::Fail, invoked),
            (_, KvResponse::Rejected { .. }) => (OpType::Fail, invoked),
            (_, KvResponse::Indeterminate { .. }) => (OpType::Info, invoked),
            (command, response) => panic!("{node} answered {command:?} with {response:?}"),
        };
        if kind == OpType::Ok {
            match (in_flight.command, value) {
                (KvCommand::Write { key, value }, _) | (KvCommand::Cas { key, new: value, .. }, _) => {
                    self.known.insert(key, value);
                }
                (KvCommand::Read { key }, OpValue::One(v)) => {
                    self.known.insert(key, v);
                }
                _ => {}
            }
        }
        self.record(kind, f, key, value, in_flight.process, Some(node));
        let hint = match &response {
            KvResponse::Rejected { hint, .. } => {
                if in_flight.command.is_update() {
                    self.writes_failed += 1;
                }
                Some(*hint)
            }
            _ => None,
        };
        self.complete(owner, kind, hint, Some((key, value)));
    }

    fn client_timeout(&mut self, rid: RequestId) {
        let Some(&(owner, _)) = self.requests.get(&rid) else { return };
        if self.in_flight(owner).map(|f| f.rid) != Some(rid) {
            return;
        }
        let in_flight = self.take_in_flight(owner);
        let (f, key, invoked) = describe(&in_flight.command);
        self.record(OpType::Info, f, key, invoked, in_flight.process, None);
        self.complete(owner, OpType::Info, Some(None), None);
    }

    /// After an operation completed: a new process after `info` (its op may
    /// still be pending), a new target after a rejection, then the next op.
    fn complete(
        &mut self,
        owner: usize,
        kind: OpType,
        retarget: Option<Option<NodeId>>,
        read: Option<(u64, OpValue)>,
    ) {
        let process = if kind == OpType::Info { Some(self.new_process()) } else { None };
        let target = match retarget {
            Some(Some(hint)) if hint.0 < self.config.nodes => Some(hint),
            Some(_) => Some(self.random_node()),
            None => None,
        };
        if owner == self.clients.len() {
            let reader = &mut self.final_reader;
            reader.process = process.unwrap_or(reader.process);
            reader.target = target.unwrap_or(reader.target);
            if kind == OpType::Ok {
                let (key, value) = read.expect("a completed read has a value");
                let value = match value {
                    OpValue::One(v) => Some(v),
                    _ => None,
                };
                self.final_values.insert(key, value);
                self.final_reader.keys.pop();
            }
            let delay = if kind == OpType::Ok { Micros(0) } else { Micros::from_millis(50) };
            self.schedule_final_read(delay);
            return;
        }
        let client = &mut self.clients[owner];
        client.process = process.unwrap_or(client.process);
        client.target = target.unwrap_or(client.target);
        if kind == OpType::Ok && self.phase != Phase::Safety {
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
        self.final_reader.keys = (0..self.next_key).rev().collect();
        self.final_reader.process = self.new_process();
        self.final_reader.target = self.random_node();
        self.schedule_final_read(Micros(0));
    }

    fn schedule_final_read(&mut self, delay: Micros) {
        let Some(&key) = self.final_reader.keys.last() else {
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
        let (process, target) = (self.final_reader.process, self.final_reader.target);
        self.invoke(self.clients.len(), process, target, KvCommand::Read { key });
    }

    fn finish(mut self) -> RunOutcome {
        self.check_cluster();
        for node in 0..self.config.nodes {
            self.close_leadership(NodeId(node));
        }
        let mut outcome = empty_outcome(self.config, &self.schedule);
        let history = History { ops: std::mem::take(&mut self.history) };
        for op in &history.ops {
            match op.kind {
                OpType::Ok => outcome.ops_ok += 1,
                OpType::Fail => outcome.ops_fail += 1,
                OpType::Info => outcome.ops_info += 1,
                OpType::Invoke => {}
            }
        }
        let report = quorum_check::linearizability::check(&history, quorum_check::linearizability::Model::Kv);
        outcome.linearizable = report.outcome != quorum_check::linearizability::Outcome::NotLinearizable;
        outcome.linearizability = match report.outcome {
            quorum_check::linearizability::Outcome::Linearizable => "linearizable",
            quorum_check::linearizability::Outcome::NotLinearizable => "not linearizable",
            quorum_check::linearizability::Outcome::Unknown => "unknown",
        }
        .to_string();
        if !outcome.linearizable {
            outcome.linearizability_explanation = Some(report.explanation.clone());
        }
        outcome.lost_acked_writes =
            quorum_check::durability::lost_acked_writes(&history, &self.final_values).len() as u64;
        outcome.split_brain =
            quorum_check::consensus::split_brain(&self.leadership, &self.acked_writes).len() as u64;
        outcome.converged = quorum_check::convergence::converged(&self.digests);
        let finished =
            self.clients.iter().all(|c| c.remaining == 0 && c.in_flight.is_none() && c.ok_after_heal);
        outcome.liveness_ok = finished && self.final_reader.keys.is_empty();
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
        outcome.messages_sent = self.messages_sent;
        outcome.messages_delivered = self.messages_delivered;
        outcome.messages_dropped = self.messages_dropped;
        outcome.persists = self.persists;
        outcome.writes_failed = self.writes_failed;
        outcome.events = self.events;
        outcome.sim_time_ms = self.now.as_millis();
        outcome.history = history;
        outcome.trace = self.trace.take();
        outcome.classify();
        outcome
    }
}
