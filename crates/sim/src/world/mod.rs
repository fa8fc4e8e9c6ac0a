//! The event loop: nodes, network, clients and nemesis in virtual time.
//!
//! A run pops events from the [`queue`] in time order and dispatches each:
//! a delivery, a timer or a request becomes a step of the node's protocol,
//! carried out by its host ([`nodes`]); a fault is applied by the nemesis
//! ([`nemesis`]); a reply, timeout or wake-up moves a client on
//! ([`clients`]). Observations feed the checkers' trackers ([`observers`]),
//! and at the end [`World::finish`] asks every checker for its verdict.
//! Budgets ([`queue::Meter`]) end a run that runs away.

mod clients;
mod nemesis;
mod nodes;
mod observers;
mod queue;
mod trace;

use quorum_check::History;
use quorum_core::byzantine::Adversary;
use quorum_core::claims::reached;
use quorum_core::host::Host;
use quorum_core::{Cluster, KvCommand, KvResponse, Micros, NodeId, Protocol, Rng, Time};

use self::clients::Clients;
use self::nemesis::{LeaderCrash, VoterKill};
use self::nodes::{Routed, Slot, NODE_STREAM};
use self::observers::Observers;
use self::queue::{Event, Meter, Queue};
use self::trace::Trace;
use crate::config::SimConfig;
use crate::diagram::{Clock, Recording, What};
use crate::faults::Schedule;
use crate::network::Network;
use crate::outcome::{Percentiles, Replay, RunOutcome};
use crate::workload::{KvWorkload, Verdict, Workload};

/// A protocol the KV workload can drive.
pub trait KvProtocol: Protocol<Request = KvCommand, Response = KvResponse> {}
impl<P: Protocol<Request = KvCommand, Response = KvResponse>> KvProtocol for P {}

const NETWORK_STREAM: u64 = 1 << 41;
const TORN_STREAM: u64 = 1 << 45;
/// The stream of the run's signing secret and of the traitors' choices.
const ADVERSARY_STREAM: u64 = 1 << 47;
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
    run_with::<P, KvWorkload>(config, protocol, Capture::NONE)
}

/// Like [`run`], also recording the full trace as JSON lines.
pub fn run_traced<P: KvProtocol>(config: &SimConfig, protocol: &P::Config) -> Result<RunOutcome, RunError> {
    run_with::<P, KvWorkload>(config, protocol, Capture::TRACE)
}

/// What a run keeps beyond its verdicts: the trace (JSON lines, for
/// reading) and the recording (typed events, for a space-time diagram).
/// Both are off in an exploration; an event's trace line or record is
/// built only when its capture is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    pub trace: bool,
    pub record: bool,
}

impl Capture {
    pub const NONE: Capture = Capture { trace: false, record: false };
    pub const TRACE: Capture = Capture { trace: true, record: false };
    pub const RECORD: Capture = Capture { trace: false, record: true };
}

/// Record `what` at `now` if the run records (`what` is built only then).
fn record(recording: &mut Option<Recording>, now: Time, what: impl FnOnce() -> What) {
    if let Some(recording) = recording.as_mut() {
        recording.push(now.as_micros(), what());
    }
}

/// One run of protocol `P` under workload `W`, traced or recorded as
/// `capture` asks. The run's
/// parameters and the protocol's settings are validated first. A swarm
/// config runs what its seed draws (`SimConfig::resolve`; protocol
/// settings are the caller's to draw, see `Swarm::draw_settings`).
pub fn run_with<P: Protocol, W: Workload<P>>(
    config: &SimConfig,
    protocol: &P::Config,
    capture: Capture,
) -> Result<RunOutcome, RunError> {
    let config = &config.resolve();
    config.validate()?;
    let members: Vec<NodeId> = (0..config.nodes).map(NodeId).collect();
    P::validate(protocol, &members)?;
    let schedule = config.schedule.clone().unwrap_or_else(|| Schedule::generate(config));
    let mut world = World::<P, W>::new(config, protocol, schedule.clone(), capture);
    let result = catch_protocol_panic(|| world.run());
    Ok(match result {
        Ok(()) => world.finish(),
        Err(message) => {
            let mut outcome = empty_outcome(config, &schedule);
            outcome.panic = Some(message);
            // The trace up to the panic is what explains it.
            outcome.trace = world.trace.take();
            outcome.recording = world.recording.take();
            outcome.classify();
            outcome
        }
    })
}

thread_local! {
    /// Whether this thread is inside a simulated run (whose panics become
    /// `panic` violations of the outcome, with their message).
    static IN_RUN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` (steps of protocols under test), turning a panic into its
/// message; with [`quiet_panics_in_runs`] installed, such a panic prints
/// nothing. For every driver that judges a protocol's panics (a broken
/// `invariants()`) as violations: the simulator and the model checker.
pub fn catch_protocol_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    IN_RUN.with(|flag| flag.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_RUN.with(|flag| flag.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// Print nothing for a protocol's panic inside a simulated run (the outcome
/// reports it as a `panic` violation with its message); every other panic
/// prints as before. For drivers of many runs (explore, tour), whose output
/// would drown in backtraces of the bugs they are looking for.
pub fn quiet_panics_in_runs() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_RUN.with(|flag| flag.get()) {
            previous(info);
        }
    }));
}

/// The replay of `config` with `schedule` made explicit.
pub(crate) fn replay_of(config: &SimConfig, schedule: &Schedule) -> Replay {
    let mut config = config.clone();
    config.schedule = Some(schedule.clone());
    Replay { config }
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
        ic1_violations: Vec::new(),
        ic2_violations: Vec::new(),
        traitors: config.byzantine.iter().map(|n| n.0).collect(),
        strategy: config.strategy.to_string(),
        termination_violations: 0,
        cluster_invariant: None,
        panic: None,
        runaway: None,
        acked_updates: 0,
        messages_sent: 0,
        outcome_acks_sent: 0,
        messages_delivered: 0,
        messages_dropped: 0,
        persists: 0,
        update_latency_us: Percentiles::default(),
        events: 0,
        peaks: Default::default(),
        failover_us: Vec::new(),
        sim_time_ms: 0,
        txn: None,
        decision: None,
        commands_acked: Default::default(),
        convergence: None,
        violations: Vec::new(),
        reached: Vec::new(),
        replay: replay_of(config, schedule),
        history: History::default(),
        txn_history: Vec::new(),
        trace: None,
        recording: None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
    Quiesce,
    FinalReads,
    Done,
}

impl Phase {
    fn is_safety(self) -> bool {
        self == Phase::Safety
    }
}

/// What the network and the nodes' disks carried.
#[derive(Default)]
struct Counters {
    messages_sent: u64,
    /// Of `messages_sent`, acknowledgments of an outcome (`Protocol::is_outcome_ack`).
    outcome_acks_sent: u64,
    messages_delivered: u64,
    messages_dropped: u64,
    persists: u64,
}

struct World<'a, P: Protocol, W: Workload<P>> {
    config: &'a SimConfig,
    protocol: &'a P::Config,
    now: Time,
    phase: Phase,
    heal_at: Time,
    /// Clients must finish before this (then final reads before the next).
    deadline: Time,
    queue: Queue<P>,
    meter: Meter,
    /// Why the run was cut short, if it ran away.
    runaway: Option<String>,
    nodes: Vec<Slot<P>>,
    /// A step's carried effects, waiting to be routed (kept to reuse).
    routed: Vec<Routed<P>>,
    network: Network,
    schedule: Schedule,
    /// Armed `crash-leader` faults, oldest first.
    leader_crashes: Vec<LeaderCrash>,
    /// Armed `kill-voter` faults, oldest first.
    voter_kills: Vec<VoterKill>,
    /// Which sending step an armed torn send or power loss strikes.
    torn_rng: Rng,
    clients: Clients<P, W>,
    observers: Observers,
    counters: Counters,
    trace: Trace,
    /// The typed events of the run, for a diagram (`Capture::record`).
    recording: Option<Recording>,
    /// The traitors and their strategy: every send of a traitor goes
    /// through it (`nodes.rs`).
    adversary: Adversary<P>,
}

impl<'a, P: Protocol, W: Workload<P>> World<'a, P, W> {
    fn new(config: &'a SimConfig, protocol: &'a P::Config, schedule: Schedule, capture: Capture) -> Self {
        let members: Vec<NodeId> = (0..config.nodes).map(NodeId).collect();
        let secret = Rng::stream(config.seed, ADVERSARY_STREAM).next_u64();
        let nodes = members
            .iter()
            .map(|&id| {
                let mut rng = Rng::stream(config.seed, NODE_STREAM + u64::from(id.0));
                let drift = 1.0 + config.timer_drift * (2.0 * rng.unit() - 1.0);
                Slot {
                    host: Host::new(Cluster::new(id, members.clone())).with_drift(drift).with_secret(secret),
                    rng,
                    paused: false,
                    deferred: Vec::new(),
                    crash_after_effects: None,
                    kill_after_persist: None,
                    torn_send: None,
                    power_loss: None,
                }
            })
            .collect();
        let heal_at = Time::from_millis(config.safety_ms);
        World {
            config,
            protocol,
            now: Time::ZERO,
            phase: Phase::Safety,
            heal_at,
            deadline: heal_at + Micros::from_millis(config.liveness_ms),
            queue: Queue::new(),
            meter: Meter::new(config.budgets),
            runaway: None,
            nodes,
            routed: Vec::new(),
            network: Network::new(
                config.latency_min_us,
                config.latency_max_us,
                Rng::stream(config.seed, NETWORK_STREAM),
            ),
            schedule,
            leader_crashes: Vec::new(),
            voter_kills: Vec::new(),
            torn_rng: Rng::stream(config.seed, TORN_STREAM),
            clients: Clients::new(config),
            observers: Observers::default(),
            counters: Counters::default(),
            trace: Trace::new(capture.trace),
            recording: capture.record.then(|| {
                let names = members.iter().map(|id| format!("n{}", id.0)).collect();
                Recording::new(Clock::Micros, names)
            }),
            adversary: Adversary::new(
                &config.byzantine,
                config.strategy.clone(),
                config.nodes,
                config.seed ^ ADVERSARY_STREAM,
                secret,
            ),
        }
    }

    fn run(&mut self) {
        for i in 0..self.config.nodes {
            self.start_node(NodeId(i));
        }
        for (i, entry) in self.schedule.0.iter().enumerate() {
            if entry.at < self.heal_at {
                self.queue.push(entry.at, Event::Fault(i));
            }
        }
        self.queue.push(self.heal_at, Event::Heal);
        self.schedule_first_wakes();
        while let Some((at, event)) = self.queue.pop() {
            debug_assert!(at >= self.now, "time never goes backwards");
            self.now = at;
            if let Some(budget) = self.meter.count(at, self.queue.len()) {
                self.run_away(budget);
                break;
            }
            self.dispatch(event);
            if self.meter.events().is_multiple_of(CLUSTER_CHECK_EVERY) {
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

    /// A budget broke: stop the run here. What it left is judged for
    /// safety; liveness, termination and convergence are not.
    fn run_away(&mut self, budget: String) {
        self.trace.line(
            self.now,
            "violation",
            None,
            || serde_json::json!({ "kind": "runaway", "what": &budget }),
        );
        self.runaway = Some(budget);
        self.phase = Phase::Done;
    }

    fn dispatch(&mut self, event: Event<P>) {
        if let Some(node) = event.node() {
            let slot = &mut self.nodes[node.0 as usize];
            if !slot.host.is_up() {
                self.drop_at_crashed_node(event);
                return;
            }
            if slot.paused {
                slot.deferred.push(event);
                return;
            }
        }
        match event {
            Event::Deliver { id, from, to, msg } => {
                self.deliver(id, NodeId(u32::from(from)), NodeId(u32::from(to)), msg);
            }
            Event::Timer { node, timer, generation } => {
                if !self.nodes[node.0 as usize].host.take_timer(&timer, generation) {
                    return; // re-armed or cancelled since
                }
                self.trace.line(self.now, "timer", Some(node), || serde_json::json!({ "timer": &timer }));
                record(&mut self.recording, self.now, || What::Timer {
                    node: node.0,
                    label: crate::diagram::labels(&timer).1,
                });
                self.step(node, |p, out| p.on_timer(timer, out));
            }
            Event::Request { node, rid, mut request } => {
                let offset = self.config.clock_offset_us(u64::from(node.0));
                let clock = Time(self.now.0.saturating_add_signed(offset));
                self.clients.workload.stamp(rid.client as usize, &mut request, self.now, clock);
                self.trace.line(
                    self.now,
                    "request",
                    Some(node),
                    || serde_json::json!({ "rid": rid.to_string(), "request": format!("{request:?}") }),
                );
                record(&mut self.recording, self.now, || What::Request {
                    client: rid.client as u32,
                    node: node.0,
                    rid: rid.to_string(),
                    label: crate::diagram::labels(&request).1,
                });
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
                let host = &self.nodes[node.0 as usize].host;
                if !host.is_up() && host.incarnation() == incarnation && self.phase.is_safety() {
                    self.start_node(node);
                }
            }
        }
    }

    /// Message `id` from `from` reaches `to`, which is up: a step.
    fn deliver(&mut self, id: u32, from: NodeId, to: NodeId, msg: P::Msg) {
        self.counters.messages_delivered += 1;
        record(&mut self.recording, self.now, || What::Deliver { id: u64::from(id), from: from.0, to: to.0 });
        self.trace.line(self.now, "deliver", Some(to), || serde_json::json!({ "from": from.0, "msg": &msg }));
        if self.adversary.is_traitor(to) {
            self.adversary.heard(to, &msg);
        }
        self.step(to, |p, out| p.on_message(from, msg, out));
    }

    fn finish(mut self) -> RunOutcome {
        self.check_cluster();
        self.observers.leadership.finish(self.now.as_micros());
        let mut outcome = empty_outcome(self.config, &self.schedule);
        let clients = &mut self.clients;
        outcome.ops_ok = clients.ops[Verdict::Ok as usize];
        outcome.ops_fail = clients.ops[Verdict::Fail as usize];
        outcome.ops_info = clients.ops[Verdict::Info as usize];
        outcome.writes_failed = clients.writes_failed;
        clients.update_latencies_us.sort_unstable();
        outcome.update_latency_us = Percentiles::of_sorted(&clients.update_latencies_us);
        outcome.liveness_ok = clients.all_finished();
        self.judge_observations(&mut outcome);
        let counters = &self.counters;
        outcome.messages_sent = counters.messages_sent;
        outcome.outcome_acks_sent = counters.outcome_acks_sent;
        outcome.messages_delivered = counters.messages_delivered;
        outcome.messages_dropped = counters.messages_dropped;
        outcome.persists = counters.persists;
        outcome.events = self.meter.events();
        outcome.peaks = self.meter.peaks();
        outcome.sim_time_ms = self.now.as_millis();
        outcome.runaway = self.runaway.take();
        outcome.trace = self.trace.take();
        outcome.recording = self.recording.take();
        let terms_led = self.observers.leadership.terms_led();
        let mut reached = std::mem::take(&mut self.observers.reached);
        self.clients.workload.judge(&mut outcome);
        reached.extend(derived_reached(&outcome, terms_led));
        outcome.reached = reached.into_iter().collect();
        outcome.classify();
        outcome
    }

    /// The verdicts of the checkers fed during the run.
    fn judge_observations(&mut self, outcome: &mut RunOutcome) {
        let observers = &mut self.observers;
        // A deposed leader of a consensus log may rightly acknowledge an
        // entry committed in its term after a successor was elected (the
        // successor holds it: leader completeness), so overlapping acks are
        // no evidence there; log safety, election safety and linearizability
        // judge such protocols. Split-brain judges the others.
        if !observers.replicated_log {
            let intervals = observers.leadership.intervals();
            outcome.split_brain =
                quorum_check::consensus::split_brain(intervals, &observers.acked_writes).len() as u64;
        }
        outcome.converged = quorum_check::convergence::converged(&observers.digests);
        outcome.log_safety_violations = observers.log_safety.violations().len() as u64;
        outcome.election_safety_violations = observers.leadership.election_safety().len() as u64;
        let live: Vec<NodeId> =
            (0..self.config.nodes).map(NodeId).filter(|n| !self.adversary.is_traitor(*n)).collect();
        for violation in observers.orders.check(self.adversary.traitors()) {
            match violation.is_ic1() {
                true => outcome.ic1_violations.push(violation.to_string()),
                false => outcome.ic2_violations.push(violation.to_string()),
            }
        }
        for violation in observers.consensus.check(&live, true) {
            if matches!(violation, quorum_check::consensus::ConsensusViolation::Termination { .. }) {
                outcome.termination_violations += 1;
            } else {
                outcome.consensus_violations.push(format!("{violation:?}"));
            }
        }
        outcome.cluster_invariant = observers.cluster_invariant.take();
        outcome.acked_updates = observers.acked_writes.len() as u64;
        outcome.failover_us = observers.leadership.take_failover_us();
    }
}

/// The sometimes properties any run shows by itself (a leader changed, a
/// write was refused...), given how many terms had a leader.
fn derived_reached(outcome: &RunOutcome, terms_led: usize) -> impl Iterator<Item = &'static str> {
    let txn = outcome.txn.as_ref();
    let derived = [
        (reached::LEADER_CHANGED, terms_led >= 2),
        (reached::LEADER_CRASHED, !outcome.failover_us.is_empty()),
        (reached::WRITE_REFUSED, outcome.writes_failed > 0),
        (reached::OUTCOME_UNKNOWN, outcome.ops_info > 0),
        (reached::COMMITTED, txn.is_some_and(|t| t.committed > 0)),
        (reached::ABORTED, txn.is_some_and(|t| t.aborted > 0)),
    ];
    derived.into_iter().filter(|(_, hit)| *hit).map(|(p, _)| p.name)
}
