//! The nodes: each one a [`Host`] (the contract's effect semantics, shared
//! with the scripts and the protocols' test kit) plus what the simulator
//! adds around it — a seeded RNG per incarnation, pauses, and the crash
//! points the nemesis arms. Effects the host carried out are routed here:
//! sends into the network, replies to the clients, observations to the
//! checkers.

use quorum_core::byzantine::Tampered;
use quorum_core::claims::reached;
use quorum_core::host::{Armed, Carried, Cut, Host};
use quorum_core::{Effect, Micros, NodeId, Observation, Out, Protocol, RequestId, Rng};

use super::queue::Event;
use super::{record, World};
use crate::diagram::{self, What};
use crate::network::Fate;
use crate::workload::Workload;

/// Each incarnation of a node draws from its own stream: `NODE_STREAM +
/// id + (incarnation << 16)`.
pub(super) const NODE_STREAM: u64 = 1 << 43;

/// The chance that an armed torn send or power loss strikes a given step
/// that sends: the strike lands on a random one of the node's sending steps
/// (a reply, a broadcast, a periodic sync), not always on the first after
/// arming.
const TORN_STRIKE: f64 = 0.25;

pub(super) struct Slot<P: Protocol> {
    pub(super) host: Host<P>,
    pub(super) rng: Rng,
    pub(super) paused: bool,
    /// Events that arrived while paused, released in order on resume.
    pub(super) deferred: Vec<Event<P>>,
    /// Crash during the next step, after this many effects.
    pub(super) crash_after_effects: Option<u32>,
    /// Kill at the end of the next step that persists; restart after this
    /// many ms.
    pub(super) kill_after_persist: Option<u64>,
    /// Kill right after this many sends (or all, if fewer) of the next
    /// step that sends, and restart after this many ms.
    pub(super) torn_send: Option<(u32, u64)>,
    /// Kill this node and the others of the group (those up) at the end of
    /// its next step that sends, and restart them after this many ms.
    pub(super) power_loss: Option<(Vec<NodeId>, u64)>,
}

/// A carried effect, owned, waiting to be routed (records only as the
/// trace shows them, and as a diagram labels them, when those are on).
pub(super) enum Routed<P: Protocol> {
    Send { to: NodeId, msg: P::Msg },
    Lost { to: NodeId },
    Persist(Option<serde_json::Value>, Option<String>),
    Checkpoint(Option<serde_json::Value>, Option<String>),
    Timer { timer: P::Timer, armed: Armed },
    Reply { id: RequestId, response: P::Response },
    Observe(Observation),
}

impl<P: Protocol, W: Workload<P>> World<'_, P, W> {
    pub(super) fn start_node(&mut self, id: NodeId) {
        let now = self.now;
        let slot = &mut self.nodes[id.0 as usize];
        let incarnation = slot.host.incarnation() + 1;
        slot.rng = Rng::stream(self.config.seed, NODE_STREAM + u64::from(id.0) + (incarnation << 16));
        let durable_records = slot.host.durable().len();
        if durable_records > 0 {
            self.observers.reached.insert(reached::RECOVERED.name);
        }
        let effects = slot.host.start(self.protocol, now, &mut slot.rng);
        self.trace.line(now, "start", Some(id), || serde_json::json!({ "durable_records": durable_records }));
        record(&mut self.recording, now, || What::Start { node: id.0, restart: incarnation > 1 });
        self.execute(id, effects);
    }

    pub(super) fn step(&mut self, id: NodeId, input: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        let slot = &mut self.nodes[id.0 as usize];
        let effects = slot.host.step(self.now, &mut slot.rng, input);
        self.execute(id, effects);
    }

    /// Carry out a step's effects under the crash point armed for it, if
    /// any: a mid-step crash (`crash=N/K`), else a leader crash that strikes
    /// this step (a torn broadcast), else none; then a kill armed for the
    /// end of a step that persisted.
    fn execute(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        let slot = &mut self.nodes[id.0 as usize];
        let incarnation = slot.host.incarnation();
        let sends_while_power_armed =
            slot.power_loss.is_some() && effects.iter().any(|e| matches!(e, Effect::Send { .. }));
        let strike = &mut self.torn_rng;
        let torn = slot.torn_send.and_then(|(sends, restart_after_ms)| {
            let cut = after_sends(&effects, sends)?;
            strike.chance(TORN_STRIKE).then_some((cut, restart_after_ms))
        });
        let (cut, how, revive_after_ms) = match (slot.crash_after_effects.take(), torn) {
            (Some(k), _) => {
                let how = if (k as usize) < effects.len() { "mid-step" } else { "end of step" };
                (Cut::AfterEffects(k), how, None)
            }
            (None, Some((cut, restart_after_ms))) => (cut, "torn send", Some(restart_after_ms)),
            _ => match self.leader_crash_for(id, &effects) {
                Some(strike) => (
                    Cut::TornBroadcast { sends: strike.after_effects.saturating_sub(1) },
                    "leader crash",
                    Some(strike.restart_after_ms),
                ),
                None => (Cut::Never, "", None),
            },
        };
        let mut routed = std::mem::take(&mut self.routed);
        let tracing = self.trace.enabled();
        let recording = self.recording.is_some();
        let done = self.nodes[id.0 as usize].host.execute(self.now, effects, cut, &mut |carried| {
            routed.push(Routed::own(carried, tracing, recording));
        });
        for effect in routed.drain(..) {
            self.route(id, effect);
        }
        self.routed = routed;
        if done.crashed {
            self.crashed(id, how);
            self.revive_later(id, revive_after_ms, incarnation);
            return;
        }
        let slot = &self.nodes[id.0 as usize];
        let persisted = done.persisted && slot.host.is_up();
        if let (true, Some(restart_after_ms)) = (persisted, slot.kill_after_persist) {
            self.crash(id, "killed after a persist");
            self.revive_later(id, Some(restart_after_ms), incarnation);
            return;
        }
        if let Some(strike) = persisted.then(|| self.voter_kill_for(id)).flatten() {
            self.crash(id, "killed after answering an election");
            self.revive_later(id, Some(strike.restart_after_ms), incarnation);
            return;
        }
        if sends_while_power_armed && self.torn_rng.chance(TORN_STRIKE) {
            self.power_loss(id);
        }
    }

    /// The power loss armed at `id` strikes: its whole group goes down at
    /// once, each node to restart after the same delay.
    fn power_loss(&mut self, id: NodeId) {
        let Some((group, restart_after_ms)) = self.nodes[id.0 as usize].power_loss.take() else { return };
        for node in group {
            let slot = &self.nodes[node.0 as usize];
            if !slot.host.is_up() {
                continue;
            }
            let incarnation = slot.host.incarnation();
            self.crash(node, "power loss");
            self.revive_later(node, Some(restart_after_ms), incarnation);
        }
    }

    fn revive_later(&mut self, id: NodeId, after_ms: Option<u64>, incarnation: u64) {
        if let Some(ms) = after_ms {
            self.queue.push(self.now + Micros::from_millis(ms), Event::Revive { node: id, incarnation });
        }
    }

    fn route(&mut self, id: NodeId, effect: Routed<P>) {
        let now = self.now;
        match effect {
            Routed::Send { to, msg } if self.adversary.is_traitor(id) => self.send_as_traitor(id, to, msg),
            Routed::Send { to, msg } => self.send(id, to, msg),
            Routed::Lost { to } => {
                self.trace.line(now, "lost-in-crash", Some(id), || serde_json::json!({ "to": to.0 }));
                record(&mut self.recording, now, || What::LostInCrash { from: id.0, to: to.0 });
            }
            Routed::Persist(json, label) => {
                self.counters.persists += 1;
                self.trace.line(now, "persist", Some(id), || serde_json::json!({ "record": json }));
                record(&mut self.recording, now, || What::Persist {
                    node: id.0,
                    label: label.unwrap_or_default(),
                });
            }
            Routed::Checkpoint(json, label) => {
                self.counters.persists += 1;
                self.trace.line(now, "checkpoint", Some(id), || serde_json::json!({ "record": json }));
                record(&mut self.recording, now, || What::Persist {
                    node: id.0,
                    label: format!("checkpoint {}", label.unwrap_or_default()),
                });
            }
            Routed::Timer { timer, armed } => {
                self.queue.push(armed.due, Event::Timer { node: id, timer, generation: armed.generation });
            }
            Routed::Reply { id: rid, response } => self.reply(id, rid, response),
            Routed::Observe(observation) => self.observe(id, observation),
        }
    }

    /// A traitor's send, as its strategy bends it (`quorum_core::byzantine`).
    fn send_as_traitor(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        match self.adversary.tamper(from, to, msg) {
            Tampered::Honest(msg) => self.send(from, to, msg),
            Tampered::Forged(msg) => {
                self.trace.line(self.now, "forge", Some(from), || serde_json::json!({ "to": to.0 }));
                self.send(from, to, msg);
            }
            Tampered::Withheld => {
                self.trace.line(self.now, "withhold", Some(from), || serde_json::json!({ "to": to.0 }));
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        assert!(to.0 < self.config.nodes, "{from} sent to unknown node {to}");
        self.counters.messages_sent += 1;
        self.counters.outcome_acks_sent += u64::from(P::is_outcome_ack(&msg));
        let now = self.now;
        let id = self.counters.messages_sent as u32;
        match self.network.route(from, to) {
            Fate::Dropped(why) => {
                self.counters.messages_dropped += 1;
                record(&mut self.recording, now, || {
                    let (label, detail) = diagram::labels(&msg);
                    What::DropOnSend {
                        id: u64::from(id),
                        from: from.0,
                        to: to.0,
                        why: why.to_string(),
                        label,
                        detail,
                    }
                });
                self.trace.line(
                    now,
                    "drop",
                    Some(from),
                    || serde_json::json!({ "to": to.0, "why": why, "msg": &msg }),
                );
            }
            Fate::Delivered(first, second) => {
                self.trace.line(now, "send", Some(from), || serde_json::json!({ "to": to.0, "msg": &msg }));
                record(&mut self.recording, now, || {
                    let (label, detail) = diagram::labels(&msg);
                    What::Send { id: u64::from(id), from: from.0, to: to.0, label, detail }
                });
                let (from, to) = (from.0 as u16, to.0 as u16);
                if let Some(second) = second {
                    self.queue.push(now + second, Event::Deliver { id, from, to, msg: msg.clone() });
                }
                self.queue.push(now + first, Event::Deliver { id, from, to, msg });
            }
        }
    }

    fn observe(&mut self, node: NodeId, observation: Observation) {
        let now = self.now;
        self.trace.line(now, "observe", Some(node), || serde_json::json!({ "observation": &observation }));
        if let Some(recording) = self.recording.as_mut() {
            if let Some(what) = diagram::observed(node.0, &observation) {
                recording.push(now.as_micros(), what);
            }
        }
        if self.adversary.is_traitor(node) {
            // A traitor's word is worth nothing: the checkers judge the loyal.
            return;
        }
        self.clients.workload.observed(node, &observation, now);
        if let Some(broken) = self.observers.observe(node, &observation, now) {
            self.trace.line(now, "violation", Some(node), || {
                let voter = broken.voter.map(|v| v.0);
                serde_json::json!({ "kind": "election_safety", "term": broken.term, "other": broken.first.0, "voter": voter })
            });
        }
    }

    /// Crash `id` now, if it is up.
    pub(super) fn crash(&mut self, id: NodeId, how: &str) {
        let slot = &mut self.nodes[id.0 as usize];
        if !slot.host.is_up() {
            return;
        }
        slot.host.crash();
        self.crashed(id, how);
    }

    /// `id` just went down: forget what the simulator held for it.
    fn crashed(&mut self, id: NodeId, how: &str) {
        let slot = &mut self.nodes[id.0 as usize];
        slot.deferred.clear();
        slot.paused = false;
        slot.crash_after_effects = None;
        slot.kill_after_persist = None;
        slot.torn_send = None;
        slot.power_loss = None;
        let now = self.now;
        self.observers.campaigning.remove(&id);
        self.observers.leadership.crashed(id, now.as_micros(), self.phase.is_safety());
        self.clients.workload.crashed(id, now);
        self.trace.line(now, "crash", Some(id), || serde_json::json!({ "how": how }));
        record(&mut self.recording, now, || What::Crash { node: id.0, how: how.to_string() });
    }

    /// A message or request for `event`'s node, which is down.
    pub(super) fn drop_at_crashed_node(&mut self, event: Event<P>) {
        if let Event::Deliver { id, from, to, .. } = event {
            let (from, to) = (NodeId(u32::from(from)), NodeId(u32::from(to)));
            self.counters.messages_dropped += 1;
            record(&mut self.recording, self.now, || What::DropOnArrival {
                id: u64::from(id),
                from: from.0,
                to: to.0,
            });
            self.trace.line(
                self.now,
                "drop",
                Some(to),
                || serde_json::json!({ "from": from.0, "why": "crashed" }),
            );
        }
    }

    pub(super) fn check_cluster(&mut self) {
        if self.observers.cluster_invariant.is_some() {
            return;
        }
        let live: Vec<(NodeId, &P)> =
            self.nodes.iter().filter_map(|n| n.host.state().map(|s| (n.host.id(), s))).collect();
        if let Err(broken) = P::cluster_invariants(&live) {
            self.trace.line(
                self.now,
                "violation",
                None,
                || serde_json::json!({ "kind": "cluster_invariant", "what": &broken }),
            );
            self.observers.cluster_invariant = Some(broken);
        }
    }
}

/// The cut just after the `sends`-th send of `effects` (after the last one,
/// if there are fewer); `None` if the step sends nothing.
fn after_sends<P: Protocol>(effects: &[Effect<P>], sends: u32) -> Option<Cut> {
    let positions = effects.iter().enumerate().filter(|(_, e)| matches!(e, Effect::Send { .. }));
    let (i, _) = positions.take(sends.max(1) as usize).last()?;
    Some(Cut::AfterEffects(i as u32 + 1))
}

impl<P: Protocol> Routed<P> {
    fn own(carried: Carried<'_, P>, tracing: bool, recording: bool) -> Routed<P> {
        let json =
            |record: &P::Record| tracing.then(|| serde_json::to_value(record).expect("records serialize"));
        let label = |record: &P::Record| recording.then(|| diagram::labels(record).0);
        match carried {
            Carried::Send { to, msg } => Routed::Send { to, msg },
            Carried::Lost { to } => Routed::Lost { to },
            Carried::Persist(record) => Routed::Persist(json(record), label(record)),
            Carried::Checkpoint(record) => Routed::Checkpoint(json(record), label(record)),
            Carried::Timer { timer, armed } => Routed::Timer { timer: timer.clone(), armed },
            Carried::Reply { id, response } => Routed::Reply { id, response },
            Carried::Observe(observation) => Routed::Observe(observation),
        }
    }
}
