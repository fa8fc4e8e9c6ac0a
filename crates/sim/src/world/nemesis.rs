//! The nemesis at work: each entry of the fault schedule applied at its
//! time (node faults here, network faults by the network model), and the
//! heal that ends the safety phase.

use quorum_core::{Effect, Micros, NodeId, Protocol, Time};

use super::{record, Phase, World};
use crate::diagram::What;
use crate::faults::Fault;
use crate::workload::Workload;

/// An armed `crash-leader` fault.
pub(super) struct LeaderCrash {
    pub(super) after_effects: u32,
    pub(super) restart_after_ms: u64,
    /// It lapses at this time if no leader persisted anything before.
    expires: Time,
}

/// An armed `kill-voter` fault.
pub(super) struct VoterKill {
    pub(super) restart_after_ms: u64,
    /// It lapses at this time if no node answered an election before.
    expires: Time,
}

impl<P: Protocol, W: Workload<P>> World<'_, P, W> {
    pub(super) fn apply_fault(&mut self, fault: &Fault) {
        self.trace.line(self.now, "fault", None, || serde_json::json!({ "fault": fault.to_string() }));
        let up = |world: &Self, node: &NodeId| world.nodes[node.0 as usize].host.is_up();
        match fault {
            Fault::Crash { node, after_effects: None } => self.crash(*node, "now"),
            Fault::Crash { node, after_effects: Some(k) } if up(self, node) => {
                self.nodes[node.0 as usize].crash_after_effects = Some(*k);
            }
            Fault::Restart { node } if !up(self, node) => self.start_node(*node),
            Fault::Kill { node, restart_after_ms } if up(self, node) => {
                self.nodes[node.0 as usize].kill_after_persist = Some(*restart_after_ms);
            }
            Fault::TornSend { node, restart_after_ms, sends } if up(self, node) => {
                self.nodes[node.0 as usize].torn_send = Some((*sends, *restart_after_ms));
            }
            Fault::PowerLoss { nodes, restart_after_ms } => {
                for node in nodes {
                    let slot = &mut self.nodes[node.0 as usize];
                    if slot.host.is_up() {
                        slot.power_loss = Some((nodes.clone(), *restart_after_ms));
                    }
                }
            }
            Fault::Disarm { node } => {
                let slot = &mut self.nodes[node.0 as usize];
                slot.kill_after_persist = None;
                slot.torn_send = None;
                slot.power_loss = None;
            }
            Fault::Pause { node } if up(self, node) => self.nodes[node.0 as usize].paused = true,
            Fault::Resume { node } => self.resume(*node),
            Fault::CrashLeader { after_effects, restart_after_ms, armed_ms } => {
                self.leader_crashes.push(LeaderCrash {
                    after_effects: *after_effects,
                    restart_after_ms: *restart_after_ms,
                    expires: self.now + Micros::from_millis(*armed_ms),
                });
            }
            Fault::KillVoter { restart_after_ms, armed_ms } => {
                self.voter_kills.push(VoterKill {
                    restart_after_ms: *restart_after_ms,
                    expires: self.now + Micros::from_millis(*armed_ms),
                });
            }
            Fault::Crash { .. }
            | Fault::Restart { .. }
            | Fault::Kill { .. }
            | Fault::TornSend { .. }
            | Fault::Pause { .. } => {}
            network_fault => {
                self.network.apply(network_fault);
                let network = &self.network;
                record(&mut self.recording, self.now, || What::Fault {
                    label: fault.to_string(),
                    blocked: matches!(fault, Fault::Partition { .. } | Fault::OneWay { .. } | Fault::Heal)
                        .then(|| network.blocked_links()),
                });
                return;
            }
        }
        record(&mut self.recording, self.now, || What::Fault { label: fault.to_string(), blocked: None });
    }

    /// The armed `crash-leader` fault that strikes this step of `id`, if
    /// any: `id` leads (it announced `Role::Leader` and nothing since) and
    /// the step persists something. The oldest armed fault strikes first;
    /// lapsed ones are dropped.
    pub(super) fn leader_crash_for(&mut self, id: NodeId, effects: &[Effect<P>]) -> Option<LeaderCrash> {
        let now = self.now;
        self.leader_crashes.retain(|armed| armed.expires > now);
        if self.leader_crashes.is_empty() || !self.observers.leadership.leads(id) {
            return None;
        }
        if !effects.iter().any(|e| matches!(e, Effect::Persist(_) | Effect::Checkpoint(_))) {
            return None;
        }
        Some(self.leader_crashes.remove(0))
    }

    /// The armed `kill-voter` fault that strikes `id` at the end of a step
    /// that persisted, if any: another node campaigns and `id` does not.
    /// The oldest armed fault strikes first; lapsed ones are dropped.
    pub(super) fn voter_kill_for(&mut self, id: NodeId) -> Option<VoterKill> {
        let now = self.now;
        self.voter_kills.retain(|armed| armed.expires > now);
        let campaigning = &self.observers.campaigning;
        if self.voter_kills.is_empty() || campaigning.contains(&id) || campaigning.is_empty() {
            return None;
        }
        Some(self.voter_kills.remove(0))
    }

    pub(super) fn resume(&mut self, node: NodeId) {
        let slot = &mut self.nodes[node.0 as usize];
        if !slot.paused {
            return;
        }
        slot.paused = false;
        let deferred = std::mem::take(&mut slot.deferred);
        for event in deferred {
            self.queue.push(self.now, event);
        }
    }

    /// The end of the safety phase: the network heals, armed faults are
    /// disarmed, crashed nodes restart, paused ones resume, parked clients
    /// go on.
    pub(super) fn heal(&mut self) {
        self.trace.line(self.now, "heal", None, || serde_json::json!({}));
        self.phase = Phase::Liveness;
        self.network.heal_all();
        record(&mut self.recording, self.now, || What::Fault {
            label: "heal: the safety phase ends".into(),
            blocked: Some(Vec::new()),
        });
        self.leader_crashes.clear();
        self.voter_kills.clear();
        for i in 0..self.config.nodes {
            let node = NodeId(i);
            let slot = &mut self.nodes[i as usize];
            slot.crash_after_effects = None;
            slot.kill_after_persist = None;
            slot.torn_send = None;
            slot.power_loss = None;
            if !slot.host.is_up() {
                self.start_node(node);
            }
            self.resume(node);
        }
        self.unpark_clients();
        self.maybe_clients_done();
    }
}
