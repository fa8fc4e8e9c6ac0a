//! Multi-Paxos: a replicated log of commands, one Paxos instance per slot,
//! with a stable leader (the source text's "Multi-paxos"; Lamport, "Paxos
//! Made Simple", 2001, §3, cited as §N; van Renesse and Altinbuken, "Paxos
//! Made Moderately Complex", 2015; Chandra, Griesemer and Redstone, "Paxos
//! Made Live", 2007).
//!
//! Each slot is an instance of single-decree Paxos (`super::single`, §2),
//! and the chosen commands apply in slot order (§3). Running both phases per
//! slot would cost two round trips a command; a stable leader pays phase 1
//! once for all of them.
//!
//! Every node is proposer, acceptor and learner. A node that hears nothing
//! from a leader for a randomised election timeout becomes a *candidate*: it
//! mints a ballot `(counter, node)` above every one it has seen and runs
//! **phase 1 once for all future slots** (§3: "phase 1 for infinitely many
//! instances"): `Prepare(b, from)` covers every slot at or after its first
//! unapplied one. Each acceptor promises `b` for all of them at once and
//! reports what it accepted there (and what it knows to be chosen). With a
//! majority of promises the candidate is **leader**. It re-proposes, at its
//! own ballot, the highest-ballot value reported for each slot its
//! predecessors left half-done (P2c, per slot), fills the gaps with
//! **no-ops** (§3), and from then on runs only **phase 2** per slot:
//! `Accept(b, slot, entry)`; a slot is chosen once a majority accepted it.
//! This is what makes Multi-Paxos cheap: one round trip per command once a
//! leader is stable.
//!
//! - **Batching**: a slot holds up to `batch_max` commands; client requests
//!   that arrive while the pipeline is full wait and share the next slot.
//! - **Pipelining**: up to `pipeline_max` slots may be proposed and not yet
//!   chosen; Accept and Chosen messages carry many slots each.
//! - **Learning**: commands apply in slot order. Accepts and heartbeats carry
//!   the leader's commit point; a follower whose accepted entry for a slot
//!   carries the leader's ballot knows it is the chosen value (a leader
//!   proposes one value per slot per ballot). Anything else it fetches from
//!   the leader (`CatchUp`), as chosen entries or, if compacted, a snapshot.
//! - **Reads** are linearizable by a leader-confirmation round (ReadIndex,
//!   Raft thesis §6.4): the read waits until a majority acknowledged a
//!   heartbeat sent after it arrived (no higher ballot has taken over) and
//!   the leader applied every slot it had assigned when the read arrived.
//!   Reads never enter the log.
//! - **Durability**: an acceptor forces promises and accepted entries to its
//!   log before it answers (§2.5); every `checkpoint_every_slots` applied
//!   slots the log is replaced by a snapshot of the state machine plus the
//!   acceptor state above it.
//! - A deposed leader answers the proposals it had in flight `indeterminate`
//!   (they may still be chosen by its successor) and its queue `rejected`.
//! - **CheckQuorum** (as in Raft): a leader that sees no majority
//!   acknowledge a heartbeat round for an election timeout steps down, so a
//!   leader cut off from the majority stops taking requests it cannot
//!   commit (`Config::check_quorum`).
//!
//! Files: `election.rs` (follower, candidate, leader: phase 1 for all
//! slots, adopting half-done slots and no-ops, stepping down), `leader.rs`
//! (client writes, batching, pipelining, phase 2 and its acknowledgements,
//! heartbeats, CheckQuorum), `read.rs` (confirmation rounds and reads),
//! `acceptor.rs` (promises, accepted entries, following a leader),
//! `learner.rs` (commit points, catch-up, snapshots, applying in slot
//! order), `recovery.rs` (the log and checkpoints), `tests.rs` (failover,
//! the negative controls, catch-up, restarts); this file holds the types,
//! the dispatcher and the invariants.

mod acceptor;
mod election;
mod leader;
mod learner;
mod read;
mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Out, Protocol, RequestId, StateMachine, Time};
use serde::{Deserialize, Serialize};

use crate::quorum;

pub use super::single::Ballot;

/// A log position. Slots start at 1; 0 means "none".
pub type Slot = u64;

/// Ballot node ids must fit below this to make leader terms unique.
const TERM_NODES: u64 = 1024;

/// The value of one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry<C> {
    /// A gap a new leader filled: applies nothing.
    Noop,
    /// A batch of client commands, applied in order.
    Commands(Vec<C>),
}

/// The catalogue entry of Multi-Paxos (source text, "Multi-paxos").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "multi-paxos",
    section: "Multi-paxos",
    summary: "a replicated log: a stable leader runs phase 1 once for all slots, fills gaps with no-ops, \
              batches and pipelines; linearizable, durable with a minority down",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[reached::LEADER_CHANGED, reached::LEADER_CRASHED, reached::RECOVERED, SLOT_RECOVERED],
    workload: catalog::Workload::Kv { cas: true },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "skip-phase1-recovery",
            what: "a new leader ignores the values its promises report and proposes after its own prefix",
            caught_as: &[Violation::LogSafety, Violation::Linearizability, Violation::LostAckedWrites],
        },
        catalog::Bug {
            name: "unconfirmed-reads",
            what: "the leader answers reads from its state without confirming it still leads",
            caught_as: &[Violation::Linearizability],
        },
    ],
    explorable: &[catalog::Setting { name: "check_quorum", values: catalog::ON_OFF }],
    retries: 0,
};

/// A new leader's phase 1 found a slot accepted under an earlier ballot and
/// re-proposed its value (Paxos Made Simple §3).
pub const SLOT_RECOVERED: Sometimes = Sometimes {
    name: "slot_recovered",
    what: "a new leader re-proposed a value its promises reported accepted in an earlier ballot (§3)",
};
/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// A new leader ignores the accepted values its promises report and
    /// starts proposing right after its own applied prefix.
    SkipPhase1Recovery,
    /// The leader answers reads from its state without confirming that it
    /// is still leader.
    UnconfirmedReads,
}

/// Settings of a Multi-Paxos node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often a leader sends heartbeats (and re-sends unacknowledged accepts).
    pub heartbeat_interval: Micros,
    /// A follower suspects its leader after a silence uniform in `[t, 2t)`.
    pub election_timeout: Micros,
    /// Most commands in one slot.
    pub batch_max: usize,
    /// Most slots proposed and not yet applied.
    pub pipeline_max: u64,
    /// Most client commands waiting for a slot.
    pub queue_max: usize,
    /// Most reads waiting for confirmation.
    pub reads_max: usize,
    /// Most entries in one Accept or Chosen message.
    pub entries_per_message_max: usize,
    /// Replace the log by a snapshot after this many applied slots.
    pub checkpoint_every_slots: u64,
    /// A leader that has not seen a majority acknowledge any heartbeat round
    /// for an election timeout steps down (Raft's CheckQuorum). Safety does
    /// not need it — ballots and ReadIndex rounds already fence a deposed
    /// leader — but without it a leader cut off from the majority keeps
    /// taking requests that can only time out, and its clients never look
    /// for the leader the majority has elected meanwhile.
    pub check_quorum: bool,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            heartbeat_interval: Micros::from_millis(50),
            election_timeout: Micros::from_millis(300),
            batch_max: 32,
            pipeline_max: 8,
            queue_max: 1024,
            reads_max: 1024,
            entries_per_message_max: 256,
            checkpoint_every_slots: 128,
            check_quorum: true,
            bug: None,
        }
    }
}

impl Config {
    /// Check the settings before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("heartbeat_interval", self.heartbeat_interval.0),
            ("batch_max", self.batch_max as u64),
            ("pipeline_max", self.pipeline_max),
            ("queue_max", self.queue_max as u64),
            ("reads_max", self.reads_max as u64),
            ("entries_per_message_max", self.entries_per_message_max as u64),
            ("checkpoint_every_slots", self.checkpoint_every_slots),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(format!("{name} must be positive")));
        }
        if self.election_timeout.0 < 2 * self.heartbeat_interval.0 {
            return Err(ConfigError::new("election_timeout must be at least two heartbeat intervals"));
        }
        Ok(())
    }
}

/// An entry as a promise reports it: `None` ballot means known chosen.
pub type Reported<C> = (Slot, Option<Ballot>, Entry<C>);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg<C, T> {
    /// Phase 1a for every slot from `from` on.
    Prepare {
        ballot: Ballot,
        from: Slot,
    },
    /// Phase 1b: the promise, with what the acceptor accepted (or knows
    /// chosen) from `from` on. It cannot report slots at or below `compacted`.
    Promise {
        ballot: Ballot,
        compacted: Slot,
        entries: Vec<Reported<C>>,
    },
    /// Phase 2a for some slots; `commit`: every slot up to it is chosen.
    Accept {
        ballot: Ballot,
        entries: Vec<(Slot, Entry<C>)>,
        commit: Slot,
    },
    /// Phase 2b.
    Accepted {
        ballot: Ballot,
        slots: Vec<Slot>,
    },
    /// "`ballot` is too old: I promised `promised`."
    Nack {
        ballot: Ballot,
        promised: Ballot,
    },
    /// The leader is alive; `round` numbers leadership confirmations.
    Heartbeat {
        ballot: Ballot,
        commit: Slot,
        round: u64,
    },
    HeartbeatAck {
        ballot: Ballot,
        round: u64,
        applied: Slot,
    },
    /// "Send me the chosen entries from `from` on."
    CatchUp {
        from: Slot,
    },
    /// Entries known chosen.
    Chosen {
        entries: Vec<(Slot, Entry<C>)>,
    },
    /// The state machine after applying every slot up to `through`.
    Snapshot {
        through: Slot,
        state: T,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<C, T> {
    /// The acceptor promised `ballot` (for every slot).
    Promised { ballot: Ballot },
    /// The acceptor accepted these entries at `ballot`.
    Accepted { ballot: Ballot, entries: Vec<(Slot, Entry<C>)> },
    /// A checkpoint: the state after `applied`, and the acceptor state above it.
    Snapshot { promised: Ballot, applied: Slot, state: T, accepted: Vec<(Slot, Ballot, Entry<C>)> },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// A follower or candidate heard no leader for too long.
    Election,
    /// A leader's tick: heartbeats and re-sent accepts.
    Heartbeat,
}

#[derive(Clone, Debug)]
struct Candidacy<C> {
    ballot: Ballot,
    from: Slot,
    promises: BTreeMap<NodeId, (Slot, Vec<Reported<C>>)>,
}

#[derive(Clone, Debug)]
struct PendingRead<C> {
    request: RequestId,
    command: C,
    /// Every slot assigned when the read arrived.
    read_index: Slot,
    /// The confirmation round that must succeed first.
    round: u64,
}

#[derive(Clone, Debug)]
struct Leadership<C> {
    ballot: Ballot,
    next_slot: Slot,
    /// Proposed, not yet known chosen: the entry and who accepted it.
    in_flight: BTreeMap<Slot, (Entry<C>, BTreeSet<NodeId>)>,
    /// Client commands waiting for a slot.
    queue: VecDeque<(RequestId, C)>,
    /// The clients of each proposed slot, in batch order.
    waiting: BTreeMap<Slot, Vec<RequestId>>,
    reads: Vec<PendingRead<C>>,
    /// The latest confirmation round sent, and the latest a majority acknowledged.
    round: u64,
    confirmed: u64,
    acked: BTreeMap<NodeId, u64>,
    /// When `confirmed` last rose (or leadership began): the last time this
    /// leader knew a majority still followed it, for CheckQuorum.
    quorum_heard_at: Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Follower,
    Candidate,
    Leader,
}

/// One Multi-Paxos node: proposer, acceptor and learner of every slot, and
/// follower, candidate or leader.
#[derive(Clone, Debug)]
pub struct MultiPaxos<S: StateMachine> {
    cluster: Cluster,
    config: Config,
    phase: Phase,
    /// The leader this node follows, if it knows one.
    leader: Option<NodeId>,
    counter_seen: u64,
    // ---- acceptor (acceptor.rs) ----
    promised: Ballot,
    /// Accepted entries of slots not yet applied.
    accepted: BTreeMap<Slot, (Ballot, Entry<S::Command>)>,
    // ---- learner (learner.rs) ----
    /// Entries known chosen, above `compacted` (applied ones kept for catch-up).
    chosen: BTreeMap<Slot, Entry<S::Command>>,
    /// Every slot up to here is applied to `state`.
    applied: Slot,
    /// Chosen entries up to here are no longer kept.
    compacted: Slot,
    state: S,
    /// The slot of the latest checkpoint.
    checkpoint_slot: Slot,
    catchup_sent_at: Option<Time>,
    // ---- candidate / leader (election.rs, leader.rs, read.rs) ----
    candidacy: Option<Candidacy<S::Command>>,
    leadership: Option<Leadership<S::Command>>,
}

impl<S: StateMachine> MultiPaxos<S> {
    /// Every slot up to this one is applied.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The chosen entry of `slot`, if this node still keeps it.
    pub fn chosen(&self, slot: Slot) -> Option<&Entry<S::Command>> {
        self.chosen.get(&slot)
    }

    pub fn is_leader(&self) -> bool {
        self.phase == Phase::Leader
    }

    pub fn promised(&self) -> Ballot {
        self.promised
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    /// The unique term of a ballot, for `Observation::Role`.
    fn term(ballot: Ballot) -> u64 {
        ballot.counter * TERM_NODES + u64::from(ballot.node.0)
    }

    fn majority(&self) -> usize {
        quorum::majority(self.cluster.nodes.len())
    }

    fn peers(&self) -> Vec<NodeId> {
        self.cluster.peers().collect()
    }
}

impl<S: StateMachine> Protocol for MultiPaxos<S> {
    type Msg = Msg<S::Command, S>;
    type Request = S::Command;
    type Response = S::Output;
    type Record = Record<S::Command, S>;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, _nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Self::Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        assert!(cluster.nodes.len() as u64 <= TERM_NODES, "terms hold node ids below {TERM_NODES}");
        let mut node = MultiPaxos {
            cluster: cluster.clone(),
            config: config.clone(),
            phase: Phase::Follower,
            leader: None,
            counter_seen: 0,
            promised: Ballot::ZERO,
            accepted: BTreeMap::new(),
            chosen: BTreeMap::new(),
            applied: 0,
            compacted: 0,
            state: S::default(),
            checkpoint_slot: 0,
            catchup_sent_at: None,
            candidacy: None,
            leadership: None,
        };
        node.recover(durable);
        node.election_timer(out);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Prepare { ballot, from: slot } => self.handle_prepare(from, ballot, slot, out),
            Msg::Promise { ballot, compacted, entries } => {
                self.handle_promise(from, ballot, compacted, entries, out)
            }
            Msg::Accept { ballot, entries, commit } => self.handle_accept(from, ballot, entries, commit, out),
            Msg::Accepted { ballot, slots } => self.handle_accepted(from, ballot, slots, out),
            Msg::Nack { ballot, promised } => self.handle_nack(ballot, promised, out),
            Msg::Heartbeat { ballot, commit, round } => {
                self.handle_heartbeat(from, ballot, commit, round, out)
            }
            Msg::HeartbeatAck { ballot, round, applied: _ } => {
                self.handle_heartbeat_ack(from, ballot, round, out)
            }
            Msg::CatchUp { from: slot } => self.handle_catch_up(from, slot, out),
            Msg::Chosen { entries } => self.handle_chosen(from, entries, out),
            Msg::Snapshot { through, state } => self.handle_snapshot(through, state, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match (timer, self.phase) {
            (Timer::Election, Phase::Follower | Phase::Candidate) => self.become_candidate(out),
            (Timer::Heartbeat, Phase::Leader) => self.heartbeat_tick(out),
            _ => {} // a timer of a role left behind
        }
    }

    fn on_request(&mut self, id: RequestId, request: S::Command, out: &mut Out<'_, Self>) {
        self.handle_request(id, request, out);
    }

    fn describe(&self) -> String {
        let role = match self.phase {
            Phase::Follower => "follower",
            Phase::Candidate => "candidate",
            Phase::Leader => "leader",
        };
        let leader = self.leader.map_or("none".to_string(), |l| l.to_string());
        let mut text = format!(
            "{role} promised={:?} leader={leader} applied={} accepted={:?} chosen-kept={}",
            self.promised,
            self.applied,
            self.accepted.keys().collect::<Vec<_>>(),
            self.chosen.len()
        );
        if let Some(l) = &self.leadership {
            text.push_str(&format!(
                " next={} in-flight={:?} queued={} reads={}",
                l.next_slot,
                l.in_flight.keys().collect::<Vec<_>>(),
                l.queue.len(),
                l.reads.len()
            ));
        }
        text
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.state.digest())
    }

    fn read_local(&self, request: &S::Command) -> Option<S::Output> {
        self.state.query(request)
    }

    fn invariants(&self) {
        assert!(self.counter_seen >= self.promised.counter, "the promise was seen");
        assert!(self.compacted <= self.checkpoint_slot && self.checkpoint_slot <= self.applied);
        assert!(!self.chosen.contains_key(&(self.applied + 1)), "a chosen successor is applied at once");
        if let Some((first, _)) = self.chosen.iter().next() {
            assert!(*first > self.compacted, "compacted entries are dropped");
        }
        for (slot, (ballot, _)) in &self.accepted {
            assert!(*slot > self.applied, "applied slots need no acceptor state");
            assert!(*ballot <= self.promised, "accepted at most the promise");
        }
        assert!(self.applied - self.checkpoint_slot < self.config.checkpoint_every_slots);
        assert_eq!(self.phase == Phase::Leader, self.leadership.is_some());
        assert_eq!(self.phase == Phase::Candidate, self.candidacy.is_some());
        if let Some(candidacy) = &self.candidacy {
            assert_eq!(candidacy.ballot, self.promised, "a candidate holds its own promise");
            assert_eq!(candidacy.ballot.node, self.cluster.id);
        }
        if let Some(l) = &self.leadership {
            assert_eq!(l.ballot, self.promised, "a leader holds its own promise");
            assert_eq!(l.ballot.node, self.cluster.id);
            assert_eq!(self.leader, Some(self.cluster.id));
            assert!(l.next_slot > self.applied, "every applied slot was assigned");
            assert!(l.queue.len() <= self.config.queue_max);
            assert!(l.reads.len() <= self.config.reads_max);
            assert!(l.confirmed <= l.round);
            for (slot, (_, votes)) in &l.in_flight {
                assert!(*slot > self.applied && *slot < l.next_slot, "in flight within the log");
                assert!(!self.chosen.contains_key(slot), "a chosen slot is no longer in flight");
                assert!(votes.len() < self.majority(), "a majority's slot is chosen");
            }
            for slot in l.waiting.keys() {
                assert!(*slot > self.applied && *slot < l.next_slot, "clients wait on unapplied slots");
            }
        }
    }

    /// No two nodes know different chosen entries for one slot.
    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        let mut first: BTreeMap<Slot, (NodeId, &Entry<S::Command>)> = BTreeMap::new();
        for (id, node) in nodes {
            for (slot, entry) in &node.chosen {
                match first.get(slot) {
                    Some((other, seen)) if *seen != entry => {
                        return Err(format!(
                            "slot {slot} chosen as {seen:?} at {other} and {entry:?} at {id}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        first.insert(*slot, (*id, entry));
                    }
                }
            }
        }
        Ok(())
    }
}
