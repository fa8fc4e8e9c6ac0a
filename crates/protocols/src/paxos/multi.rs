//! Multi-Paxos: a replicated log of commands, one Paxos instance per slot,
//! with a stable leader (the source text's "Multi-paxos"; Lamport, "Paxos
//! Made Simple", §3; van Renesse and Altinbuken, "Paxos Made Moderately
//! Complex", 2015; Chandra, Griesemer and Redstone, "Paxos Made Live", 2007).
//!
//! Every node is proposer, acceptor and learner. A node that hears nothing
//! from a leader for a randomised election timeout becomes a *candidate*: it
//! mints a ballot `(counter, node)` above every one it has seen and runs
//! **phase 1 once for all future slots**: `Prepare(b, from)` covers every slot
//! at or after its first unapplied one. Each acceptor promises `b` for all of
//! them at once and reports what it accepted there (and what it knows to be
//! chosen). With a majority of promises the candidate is **leader**. It
//! re-proposes, at its own ballot, the highest-ballot value reported for each
//! slot its predecessors left half-done, fills the gaps with **no-ops**, and
//! from then on runs only **phase 2** per slot: `Accept(b, slot, entry)`; a
//! slot is chosen once a majority accepted it. This is what makes
//! Multi-Paxos cheap: one round trip per command once a leader is stable.
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
//!   log before it answers; every `checkpoint_every_slots` applied slots the
//!   log is replaced by a snapshot of the state machine plus the acceptor
//!   state above it.
//! - A deposed leader answers the proposals it had in flight `indeterminate`
//!   (they may still be chosen by its successor) and its queue `rejected`.
//! - **CheckQuorum** (as in Raft): a leader that sees no majority
//!   acknowledge a heartbeat round for an election timeout steps down, so a
//!   leader cut off from the majority stops taking requests it cannot
//!   commit (`Config::check_quorum`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use quorum_core::{
    fnv1a, ClientOutput, Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId, Role,
    StateMachine, Time,
};
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

pub struct MultiPaxos<S: StateMachine> {
    cluster: Cluster,
    config: Config,
    phase: Phase,
    /// The leader this node follows, if it knows one.
    leader: Option<NodeId>,
    counter_seen: u64,
    // ---- acceptor ----
    promised: Ballot,
    /// Accepted entries of slots not yet applied.
    accepted: BTreeMap<Slot, (Ballot, Entry<S::Command>)>,
    // ---- learner ----
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
    // ---- candidate / leader ----
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

    // ---- durability ----

    fn recover(&mut self, durable: &[Record<S::Command, S>]) {
        for record in durable {
            match record {
                Record::Promised { ballot } => self.promised = self.promised.max(*ballot),
                Record::Accepted { ballot, entries } => {
                    self.promised = self.promised.max(*ballot);
                    for (slot, entry) in entries {
                        if *slot > self.applied {
                            self.accepted.insert(*slot, (*ballot, entry.clone()));
                        }
                    }
                }
                Record::Snapshot { promised, applied, state, accepted } => {
                    self.promised = *promised;
                    self.applied = *applied;
                    self.compacted = *applied;
                    self.checkpoint_slot = *applied;
                    self.state = state.clone();
                    self.accepted = accepted.iter().map(|(s, b, e)| (*s, (*b, e.clone()))).collect();
                }
            }
        }
        self.counter_seen = self.promised.counter;
    }

    fn checkpoint(&mut self, out: &mut Out<'_, Self>) {
        // Keep the chosen entries since the previous checkpoint for catch-up.
        let keep_from = self.checkpoint_slot + 1;
        self.chosen = self.chosen.split_off(&keep_from);
        self.compacted = self.checkpoint_slot;
        self.checkpoint_slot = self.applied;
        let accepted = self.accepted.iter().map(|(s, (b, e))| (*s, *b, e.clone())).collect();
        let state = self.state.clone();
        out.checkpoint(Record::Snapshot { promised: self.promised, applied: self.applied, state, accepted });
    }

    // ---- roles ----

    fn election_timer(&self, out: &mut Out<'_, Self>) {
        let base = self.config.election_timeout.0;
        let after = out.rng().range(base, 2 * base);
        out.set_timer(Timer::Election, Micros(after));
    }

    /// Raise the promise to `ballot` (for every slot) and force it to the log.
    fn promise(&mut self, ballot: Ballot, out: &mut Out<'_, Self>) {
        assert!(ballot > self.promised, "promises only rise");
        self.promised = ballot;
        self.counter_seen = self.counter_seen.max(ballot.counter);
        out.persist(Record::Promised { ballot });
    }

    /// A higher ballot is about: stop leading or campaigning.
    fn step_down(&mut self, leader: Option<NodeId>, out: &mut Out<'_, Self>) {
        self.leader = leader;
        if self.phase == Phase::Follower {
            return;
        }
        if let Some(leadership) = self.leadership.take() {
            out.cancel_timer(Timer::Heartbeat);
            for request in leadership.waiting.into_values().flatten() {
                out.reply(
                    request,
                    S::Output::indeterminate("leader deposed; the command may still be chosen"),
                );
            }
            for (request, _) in leadership.queue {
                out.reply(request, S::Output::rejected("not the leader any more", leader));
            }
            for read in leadership.reads {
                out.reply(read.request, S::Output::rejected("not the leader any more", leader));
            }
        }
        self.candidacy = None;
        self.phase = Phase::Follower;
        out.observe(Observation::Role { role: Role::Follower, term: Self::term(self.promised) });
        self.election_timer(out);
    }

    /// A message from the leader of `ballot` (at least our promise): follow it.
    fn follow(&mut self, from: NodeId, ballot: Ballot, out: &mut Out<'_, Self>) {
        assert!(ballot >= self.promised);
        if ballot > self.promised {
            self.promise(ballot, out);
        }
        if self.phase != Phase::Follower {
            assert!(from != self.cluster.id);
            self.step_down(Some(from), out);
        }
        self.leader = Some(from);
        self.election_timer(out);
    }

    fn become_candidate(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.phase != Phase::Leader, "a leader does not campaign");
        let counter = self.counter_seen.max(self.promised.counter) + 1;
        assert!(self.cluster.id.0 < TERM_NODES as u32);
        let ballot = Ballot { counter, node: self.cluster.id };
        // Our own promise first: it is also what keeps a restarted node
        // from ever minting this ballot again.
        self.promise(ballot, out);
        self.phase = Phase::Candidate;
        self.leader = None;
        out.observe(Observation::Role { role: Role::Candidate, term: Self::term(ballot) });
        let from = self.applied + 1;
        self.candidacy = Some(Candidacy { ballot, from, promises: BTreeMap::new() });
        for peer in self.peers() {
            out.send(peer, Msg::Prepare { ballot, from });
        }
        self.election_timer(out);
        let entries = self.report(from);
        self.handle_promise(self.cluster.id, ballot, self.compacted, entries, out);
    }

    /// What this acceptor knows of the slots from `from` on.
    fn report(&self, from: Slot) -> Vec<Reported<S::Command>> {
        let mut entries: BTreeMap<Slot, Reported<S::Command>> = BTreeMap::new();
        for (slot, (ballot, entry)) in self.accepted.range(from..) {
            entries.insert(*slot, (*slot, Some(*ballot), entry.clone()));
        }
        for (slot, entry) in self.chosen.range(from..) {
            entries.insert(*slot, (*slot, None, entry.clone()));
        }
        entries.into_values().collect()
    }

    /// A majority promised and we hold every slot they compacted: lead.
    fn try_finish_phase1(&mut self, out: &mut Out<'_, Self>) {
        let Some(candidacy) = &self.candidacy else { return };
        if candidacy.promises.len() < self.majority() {
            return;
        }
        let compacted = candidacy.promises.values().map(|(c, _)| *c).max().unwrap_or(0);
        if self.applied < compacted {
            return; // the snapshot that covers it is on its way
        }
        let mut recovered: BTreeMap<Slot, (Option<Ballot>, Entry<S::Command>)> = BTreeMap::new();
        if self.config.bug != Some(Bug::SkipPhase1Recovery) {
            for (_, entries) in candidacy.promises.values() {
                for (slot, ballot, entry) in entries {
                    let better = match recovered.get(slot) {
                        None => true,
                        Some((None, _)) => false,
                        Some((Some(seen), _)) => ballot.is_none_or(|b| b > *seen),
                    };
                    if *slot > self.applied && better {
                        recovered.insert(*slot, (*ballot, entry.clone()));
                    }
                }
            }
        }
        let ballot = candidacy.ballot;
        self.candidacy = None;
        self.become_leader(ballot, recovered, out);
    }

    fn become_leader(
        &mut self,
        ballot: Ballot,
        recovered: BTreeMap<Slot, (Option<Ballot>, Entry<S::Command>)>,
        out: &mut Out<'_, Self>,
    ) {
        assert_eq!(self.promised, ballot, "a leader holds its own promise");
        self.phase = Phase::Leader;
        self.leader = Some(self.cluster.id);
        out.observe(Observation::Role { role: Role::Leader, term: Self::term(ballot) });
        out.cancel_timer(Timer::Election);
        let last = recovered.keys().next_back().copied().unwrap_or(0).max(self.applied);
        self.leadership = Some(Leadership {
            ballot,
            next_slot: last + 1,
            in_flight: BTreeMap::new(),
            queue: VecDeque::new(),
            waiting: BTreeMap::new(),
            reads: Vec::new(),
            round: 0,
            confirmed: 0,
            acked: BTreeMap::new(),
            quorum_heard_at: out.now(),
        });
        // Known-chosen slots are learned; the rest are re-proposed at our
        // ballot, gaps as no-ops.
        let mut proposals = Vec::new();
        for slot in self.applied + 1..=last {
            if self.chosen.contains_key(&slot) {
                continue;
            }
            match recovered.get(&slot) {
                Some((None, entry)) => {
                    self.chosen.insert(slot, entry.clone());
                }
                Some((Some(_), entry)) => proposals.push((slot, entry.clone())),
                None => proposals.push((slot, Entry::Noop)),
            }
        }
        self.propose(proposals, out);
        self.apply_ready(out);
        self.heartbeat_tick(out);
    }

    // ---- leader ----

    /// Phase 2 for `entries` at our ballot: to every peer, then to ourselves.
    fn propose(&mut self, entries: Vec<(Slot, Entry<S::Command>)>, out: &mut Out<'_, Self>) {
        if entries.is_empty() {
            return;
        }
        let leadership = self.leadership.as_mut().expect("a leader proposes");
        let ballot = leadership.ballot;
        for (slot, entry) in &entries {
            assert!(*slot > self.applied && *slot < leadership.next_slot, "a proposal within the log");
            leadership.in_flight.insert(*slot, (entry.clone(), BTreeSet::new()));
        }
        for chunk in entries.chunks(self.config.entries_per_message_max) {
            for peer in self.peers() {
                out.send(peer, Msg::Accept { ballot, entries: chunk.to_vec(), commit: self.applied });
            }
        }
        // Our own acceptance is forced before it counts.
        let slots = self.accept_entries(ballot, entries, out);
        self.handle_accepted(self.cluster.id, ballot, slots, out);
    }

    /// Cut batches from the queue while the pipeline has room.
    fn propose_queued(&mut self, out: &mut Out<'_, Self>) {
        let Some(leadership) = self.leadership.as_mut() else { return };
        let mut batches = Vec::new();
        while !leadership.queue.is_empty()
            && leadership.next_slot - 1 - self.applied < self.config.pipeline_max
        {
            let take = leadership.queue.len().min(self.config.batch_max);
            let (requests, commands): (Vec<RequestId>, Vec<S::Command>) =
                leadership.queue.drain(..take).unzip();
            let slot = leadership.next_slot;
            leadership.next_slot += 1;
            leadership.waiting.insert(slot, requests);
            batches.push((slot, Entry::Commands(commands)));
        }
        self.propose(batches, out);
    }

    fn handle_accepted(&mut self, from: NodeId, ballot: Ballot, slots: Vec<Slot>, out: &mut Out<'_, Self>) {
        let majority = self.majority();
        let Some(leadership) = self.leadership.as_mut() else { return };
        if leadership.ballot != ballot {
            return; // an answer to an earlier leadership
        }
        for slot in slots {
            let Some((entry, votes)) = leadership.in_flight.get_mut(&slot) else { continue };
            votes.insert(from);
            if votes.len() >= majority {
                let entry = entry.clone();
                leadership.in_flight.remove(&slot);
                self.chosen.insert(slot, entry);
            }
        }
        self.apply_ready(out);
        self.propose_queued(out);
    }

    fn handle_request(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        let hint = self.leader.filter(|l| *l != self.cluster.id);
        let Some(leadership) = self.leadership.as_mut() else {
            out.reply(id, S::Output::rejected("not the leader", hint));
            return;
        };
        if !S::is_read_only(&command) {
            if leadership.queue.len() >= self.config.queue_max {
                out.reply(id, S::Output::rejected("the leader's queue is full", None));
                return;
            }
            leadership.queue.push_back((id, command));
            self.propose_queued(out);
            return;
        }
        if self.config.bug == Some(Bug::UnconfirmedReads) {
            let output = self.state.apply(&command);
            out.reply(id, output);
            return;
        }
        if leadership.reads.len() >= self.config.reads_max {
            out.reply(id, S::Output::rejected("too many reads waiting", None));
            return;
        }
        // The read needs a round that begins after it arrived: the next one.
        // If a round is under way, the next starts when that one is confirmed.
        let round = leadership.round + 1;
        let read_index = leadership.next_slot - 1;
        leadership.reads.push(PendingRead { request: id, command, read_index, round });
        if leadership.confirmed == leadership.round {
            self.start_round(out);
        }
    }

    /// Send a heartbeat that numbers a new confirmation round.
    fn start_round(&mut self, out: &mut Out<'_, Self>) {
        let leadership = self.leadership.as_mut().expect("a leader confirms");
        leadership.round += 1;
        let (ballot, round) = (leadership.ballot, leadership.round);
        for peer in self.peers() {
            out.send(peer, Msg::Heartbeat { ballot, commit: self.applied, round });
        }
        self.confirm_rounds(out);
    }

    /// The latest round a majority (ourselves included) acknowledged.
    fn confirm_rounds(&mut self, out: &mut Out<'_, Self>) {
        let majority = self.majority();
        let leadership = self.leadership.as_mut().expect("a leader confirms");
        let rounds = leadership.acked.values().copied().chain([leadership.round]);
        let confirmed = leadership.confirmed.max(quorum::committed(rounds, majority).unwrap_or(0));
        if confirmed > leadership.confirmed {
            leadership.quorum_heard_at = out.now();
        }
        leadership.confirmed = confirmed;
        self.serve_reads(out);
        let leadership = self.leadership.as_ref().expect("still leading");
        if leadership.confirmed == leadership.round
            && leadership.reads.iter().any(|r| r.round > leadership.round)
        {
            self.start_round(out);
        }
    }

    /// Answer the reads whose round is confirmed and whose index is applied.
    fn serve_reads(&mut self, out: &mut Out<'_, Self>) {
        let Some(leadership) = self.leadership.as_mut() else { return };
        let (confirmed, applied) = (leadership.confirmed, self.applied);
        let (ready, waiting): (Vec<_>, Vec<_>) =
            leadership.reads.drain(..).partition(|r| r.round <= confirmed && r.read_index <= applied);
        leadership.reads = waiting;
        for read in ready {
            let before = self.state.digest();
            let output = self.state.apply(&read.command);
            assert_eq!(before, self.state.digest(), "a read-only command left the state unchanged");
            out.reply(read.request, output);
        }
    }

    fn handle_heartbeat_ack(&mut self, from: NodeId, ballot: Ballot, round: u64, out: &mut Out<'_, Self>) {
        let Some(leadership) = self.leadership.as_mut() else { return };
        if leadership.ballot != ballot {
            return;
        }
        let acked = leadership.acked.entry(from).or_insert(0);
        *acked = (*acked).max(round);
        self.confirm_rounds(out);
    }

    /// The leader's tick: a heartbeat (a confirmation round), and accepts
    /// re-sent to the peers that have not acknowledged them.
    fn heartbeat_tick(&mut self, out: &mut Out<'_, Self>) {
        let heard_at = self.leadership.as_ref().expect("a leader ticks").quorum_heard_at;
        if self.config.check_quorum && out.now().saturating_sub(heard_at) >= self.config.election_timeout {
            // CheckQuorum: no majority answered for an election timeout.
            return self.step_down(None, out);
        }
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        self.start_round(out);
        let Some(leadership) = self.leadership.as_ref() else { return };
        let ballot = leadership.ballot;
        for peer in self.peers() {
            let missing: Vec<(Slot, Entry<S::Command>)> = leadership
                .in_flight
                .iter()
                .filter(|(_, (_, votes))| !votes.contains(&peer))
                .take(self.config.entries_per_message_max)
                .map(|(slot, (entry, _))| (*slot, entry.clone()))
                .collect();
            if !missing.is_empty() {
                out.send(peer, Msg::Accept { ballot, entries: missing, commit: self.applied });
            }
        }
    }

    // ---- acceptor ----

    fn handle_prepare(&mut self, from: NodeId, ballot: Ballot, slot_from: Slot, out: &mut Out<'_, Self>) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if ballot < self.promised {
            out.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        if ballot > self.promised {
            self.promise(ballot, out);
            self.step_down(None, out);
            // Give the candidate time to finish before campaigning ourselves.
            self.election_timer(out);
        }
        if self.compacted >= slot_from {
            out.send(from, Msg::Snapshot { through: self.applied, state: self.state.clone() });
        }
        let entries = self.report(slot_from);
        out.send(from, Msg::Promise { ballot, compacted: self.compacted, entries });
    }

    /// Accept `entries` at `ballot` (at least our promise), forcing them to
    /// the log; returns the slots now accepted.
    fn accept_entries(
        &mut self,
        ballot: Ballot,
        entries: Vec<(Slot, Entry<S::Command>)>,
        out: &mut Out<'_, Self>,
    ) -> Vec<Slot> {
        assert!(ballot >= self.promised);
        let slots = entries.iter().map(|(slot, _)| *slot).collect();
        let fresh: Vec<(Slot, Entry<S::Command>)> = entries
            .into_iter()
            .filter(|(slot, entry)| {
                *slot > self.applied && self.accepted.get(slot) != Some(&(ballot, entry.clone()))
            })
            .collect();
        if !fresh.is_empty() {
            for (slot, entry) in &fresh {
                self.accepted.insert(*slot, (ballot, entry.clone()));
            }
            out.persist(Record::Accepted { ballot, entries: fresh });
        }
        slots
    }

    fn handle_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<(Slot, Entry<S::Command>)>,
        commit: Slot,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if ballot < self.promised {
            out.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        self.follow(from, ballot, out);
        let slots = self.accept_entries(ballot, entries, out);
        out.send(from, Msg::Accepted { ballot, slots });
        self.learn_commit(from, ballot, commit, out);
    }

    fn handle_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        round: u64,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if ballot < self.promised {
            out.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        self.follow(from, ballot, out);
        out.send(from, Msg::HeartbeatAck { ballot, round, applied: self.applied });
        self.learn_commit(from, ballot, commit, out);
    }

    fn handle_nack(&mut self, ballot: Ballot, promised: Ballot, out: &mut Out<'_, Self>) {
        self.counter_seen = self.counter_seen.max(promised.counter);
        let ours = match self.phase {
            Phase::Leader => self.leadership.as_ref().map(|l| l.ballot),
            Phase::Candidate => self.candidacy.as_ref().map(|c| c.ballot),
            Phase::Follower => None,
        };
        if ours == Some(ballot) {
            assert!(promised > ballot);
            self.step_down(None, out);
        }
    }

    // ---- learner ----

    /// The leader of `ballot` says every slot up to `commit` is chosen. Our
    /// entries accepted at that ballot are those values; fetch the rest.
    fn learn_commit(&mut self, leader: NodeId, ballot: Ballot, commit: Slot, out: &mut Out<'_, Self>) {
        let mut slot = self.applied + 1;
        while slot <= commit {
            if !self.chosen.contains_key(&slot) {
                match self.accepted.get(&slot) {
                    Some((b, entry)) if *b == ballot => {
                        self.chosen.insert(slot, entry.clone());
                    }
                    _ => break,
                }
            }
            slot += 1;
        }
        self.apply_ready(out);
        if self.applied < commit {
            self.request_catch_up(leader, out);
        }
    }

    fn request_catch_up(&mut self, leader: NodeId, out: &mut Out<'_, Self>) {
        let now = out.now();
        let recent =
            self.catchup_sent_at.is_some_and(|t| now.saturating_sub(t) < self.config.heartbeat_interval);
        if recent {
            return;
        }
        self.catchup_sent_at = Some(now);
        out.send(leader, Msg::CatchUp { from: self.applied + 1 });
    }

    fn handle_catch_up(&mut self, from: NodeId, slot_from: Slot, out: &mut Out<'_, Self>) {
        if slot_from <= self.compacted {
            out.send(from, Msg::Snapshot { through: self.applied, state: self.state.clone() });
            return;
        }
        let entries: Vec<(Slot, Entry<S::Command>)> = self
            .chosen
            .range(slot_from..)
            .take(self.config.entries_per_message_max)
            .map(|(s, e)| (*s, e.clone()))
            .collect();
        if !entries.is_empty() {
            out.send(from, Msg::Chosen { entries });
        }
    }

    fn handle_chosen(
        &mut self,
        from: NodeId,
        entries: Vec<(Slot, Entry<S::Command>)>,
        out: &mut Out<'_, Self>,
    ) {
        self.catchup_sent_at = None;
        for (slot, entry) in entries {
            if slot > self.applied {
                self.chosen.insert(slot, entry);
            }
        }
        self.apply_ready(out);
        // More may be missing: ask again at once rather than at the next heartbeat.
        if self.phase == Phase::Follower && self.leader == Some(from) {
            let commit = self.chosen.keys().next_back().copied().unwrap_or(0);
            if self.applied < commit {
                self.request_catch_up(from, out);
            }
        }
        self.try_finish_phase1(out);
    }

    fn handle_snapshot(&mut self, through: Slot, state: S, out: &mut Out<'_, Self>) {
        self.catchup_sent_at = None;
        if through <= self.applied || self.phase == Phase::Leader {
            return;
        }
        self.state = state;
        self.applied = through;
        self.compacted = through;
        self.checkpoint_slot = through;
        self.chosen = self.chosen.split_off(&(through + 1));
        self.accepted = self.accepted.split_off(&(through + 1));
        let accepted = self.accepted.iter().map(|(s, (b, e))| (*s, *b, e.clone())).collect();
        let state = self.state.clone();
        out.checkpoint(Record::Snapshot { promised: self.promised, applied: through, state, accepted });
        self.apply_ready(out);
        self.try_finish_phase1(out);
    }

    /// Apply every chosen slot that follows the applied prefix, in order,
    /// answering the leader's clients.
    fn apply_ready(&mut self, out: &mut Out<'_, Self>) {
        while let Some(entry) = self.chosen.get(&(self.applied + 1)).cloned() {
            let slot = self.applied + 1;
            let digest = fnv1a(format!("{entry:?}").as_bytes());
            out.observe(Observation::Apply { index: slot, term: self.promised.counter, command: digest });
            let requests = self.leadership.as_mut().and_then(|l| l.waiting.remove(&slot)).unwrap_or_default();
            if let Entry::Commands(commands) = &entry {
                let mut requests = requests.into_iter();
                for command in commands {
                    let output = self.state.apply(command);
                    if let Some(request) = requests.next() {
                        out.reply(request, output);
                    }
                }
            }
            self.applied = slot;
            self.accepted.remove(&slot);
            if let Some(leadership) = self.leadership.as_mut() {
                leadership.in_flight.remove(&slot);
            }
            if self.applied - self.checkpoint_slot >= self.config.checkpoint_every_slots {
                self.checkpoint(out);
            }
        }
        self.serve_reads(out);
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

impl<S: StateMachine> MultiPaxos<S> {
    fn handle_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        compacted: Slot,
        entries: Vec<Reported<S::Command>>,
        out: &mut Out<'_, Self>,
    ) {
        let Some(candidacy) = self.candidacy.as_mut() else { return };
        if candidacy.ballot != ballot {
            return; // a promise to an earlier candidacy
        }
        for (slot, reported, _) in &entries {
            assert!(*slot >= candidacy.from, "promises report from the asked slot on");
            assert!(reported.is_none_or(|b| b < ballot), "accepted below the promise");
        }
        candidacy.promises.insert(from, (compacted, entries));
        self.try_finish_phase1(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;
    use quorum_core::{KvCommand, KvResponse, KvStore};

    type P = MultiPaxos<KvStore>;

    fn write(key: u64, value: u64) -> KvCommand {
        KvCommand::Write { key, value }
    }

    fn read(key: u64) -> KvCommand {
        KvCommand::Read { key }
    }

    /// Make `node` campaign now (every other election timer pushed away).
    fn elect(kit: &mut Kit<P>, node: NodeId) {
        for timers in kit.timers.iter_mut() {
            timers.remove(&Timer::Election);
        }
        kit.timers[node.0 as usize].insert(Timer::Election, kit.now);
        kit.advance(Micros(1));
        assert!(kit.node(node).is_leader(), "{} won: {}", node, kit.node(node).describe());
    }

    fn cluster(n: u32, config: Config) -> Kit<P> {
        let mut kit = Kit::new(n, config);
        elect(&mut kit, NodeId(0));
        kit
    }

    fn settle(kit: &mut Kit<P>) {
        kit.advance(Micros::from_millis(200));
    }

    #[test]
    fn a_stable_leader_replicates_and_every_replica_applies() {
        let mut kit = cluster(3, Config::default());
        let w = kit.request(NodeId(0), write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        settle(&mut kit);
        for node in 0..3 {
            assert_eq!(kit.node(NodeId(node)).applied(), 1);
            assert_eq!(kit.node(NodeId(node)).state().get(1), Some(10));
        }
        // Phase 1 ran once: the next write is one Accept round trip.
        let promises = kit.durable[1].iter().filter(|r| matches!(r, Record::Promised { .. })).count();
        let w = kit.request(NodeId(0), write(2, 20));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let after = kit.durable[1].iter().filter(|r| matches!(r, Record::Promised { .. })).count();
        assert_eq!(promises, after, "no new promise per command");
    }

    #[test]
    fn followers_redirect_to_the_leader_and_reads_are_confirmed() {
        let mut kit = cluster(3, Config::default());
        let w = kit.request(NodeId(0), write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let r = kit.request(NodeId(2), read(1));
        assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { hint: Some(NodeId(0)), .. })));
        let r = kit.request(NodeId(0), read(1));
        assert_eq!(kit.reply(r), None, "a read waits for a confirmation round");
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
    }

    /// An isolated leader cannot confirm its leadership, so it serves no read.
    #[test]
    fn an_isolated_leader_serves_no_read() {
        // CheckQuorum off: this is about the read fence alone (with it, the
        // leader steps down and rejects the read).
        let mut kit = cluster(3, Config { check_quorum: false, ..Config::default() });
        for peer in [1, 2] {
            kit.cut.push((NodeId(0), NodeId(peer)));
            kit.cut.push((NodeId(peer), NodeId(0)));
        }
        let r = kit.request(NodeId(0), read(1));
        kit.advance(Micros::from_millis(2_000));
        assert!(kit.node(NodeId(1)).is_leader() || kit.node(NodeId(2)).is_leader());
        let w = {
            let leader = if kit.node(NodeId(1)).is_leader() { NodeId(1) } else { NodeId(2) };
            kit.request(leader, write(1, 11))
        };
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        assert_eq!(kit.reply(r), None, "never answered while cut off");
        kit.cut.clear();
        kit.advance(Micros::from_millis(1_000));
        assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { .. })), "deposed: rejected");
        assert!(!kit.node(NodeId(0)).is_leader());
    }

    /// CheckQuorum: a leader cut off from every peer hears no majority
    /// confirm a round and steps down after an election timeout; without the
    /// check it believes itself leader for as long as the partition lasts.
    #[test]
    fn an_isolated_leader_steps_down_after_an_election_timeout_with_check_quorum() {
        for (check_quorum, still_leads) in [(true, false), (false, true)] {
            let mut kit = cluster(3, Config { check_quorum, ..Config::default() });
            for peer in [1, 2] {
                kit.cut.push((NodeId(0), NodeId(peer)));
                kit.cut.push((NodeId(peer), NodeId(0)));
            }
            kit.advance(Micros::from_millis(500));
            assert_eq!(kit.node(NodeId(0)).is_leader(), still_leads, "check_quorum {check_quorum}");
        }
        // A leader that hears its majority keeps leading.
        let mut kit = cluster(3, Config::default());
        kit.advance(Micros::from_millis(2_000));
        assert!(kit.node(NodeId(0)).is_leader());
    }

    /// Paxos Made Moderately Complex §3: a new leader adopts, for each slot,
    /// the highest-ballot value its promises report and fills gaps with
    /// no-ops. n0 proposed slots 1, 2, 3; only n1 accepted 1 and 3.
    #[test]
    fn failover_finishes_half_done_slots_and_fills_gaps_with_noops() {
        let mut kit = cluster(5, Config::default());
        let (n0, n1) = (NodeId(0), NodeId(1));
        for value in 1..=3 {
            kit.request(n0, write(value, value));
        }
        // Accepts for slot 1 (and, pipelined, 2 and 3) are in flight.
        let mut kept = std::collections::VecDeque::new();
        for (from, to, msg) in kit.network.drain(..) {
            if let Msg::Accept { entries, .. } = &msg {
                let slot = entries[0].0;
                if to == n1 && slot != 2 {
                    kept.push_back((from, to, msg));
                }
            }
        }
        kit.network = kept;
        kit.deliver_all(2); // n1 accepts slots 1 and 3
        kit.network.clear(); // its answers are lost
        kit.crash(n0);
        elect(&mut kit, n1);
        kit.deliver_all(1_000);
        settle(&mut kit);
        let n1_node = kit.node(n1);
        assert_eq!(n1_node.chosen(1), Some(&Entry::Commands(vec![write(1, 1)])));
        assert_eq!(n1_node.chosen(2), Some(&Entry::Noop), "the gap is filled with a no-op");
        assert_eq!(n1_node.chosen(3), Some(&Entry::Commands(vec![write(3, 3)])));
        for node in 1..5 {
            let state = kit.node(NodeId(node)).state();
            assert_eq!((state.get(1), state.get(2), state.get(3)), (Some(1), None, Some(3)));
        }
        // The old leader restarts, follows, and converges.
        kit.start(n0);
        kit.advance(Micros::from_millis(500));
        assert_eq!(kit.node(n0).state_digest(), kit.node(n1).state_digest());
    }

    /// The negative control: a new leader that skips phase-1 recovery
    /// overwrites a slot that was already chosen.
    #[test]
    fn skip_phase1_recovery_bug_overwrites_a_chosen_slot() {
        let config = Config { bug: Some(Bug::SkipPhase1Recovery), ..Config::default() };
        let mut kit = cluster(3, config);
        let (n0, n1) = (NodeId(0), NodeId(1));
        kit.request(n0, write(1, 1));
        kit.deliver_all(2); // n1 and n2 accept: chosen
        kit.deliver_all(1); // n0 learns it from n1's answer and applies
        assert_eq!(kit.node(n0).applied(), 1);
        kit.network.clear();
        kit.timers[0].clear(); // n0 goes quiet (no heartbeat tells them)
        elect(&mut kit, n1);
        let w = kit.request(n1, write(1, 2));
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let nodes: Vec<(NodeId, &P)> = (0..3).map(|i| (NodeId(i), kit.node(NodeId(i)))).collect();
        assert!(P::cluster_invariants(&nodes).is_err(), "slot 1 chosen twice");
    }

    #[test]
    fn requests_wait_while_the_pipeline_is_full_then_share_one_slot() {
        let config = Config { pipeline_max: 1, ..Config::default() };
        let mut kit = cluster(3, config);
        let requests: Vec<RequestId> = (0..10).map(|v| kit.request(NodeId(0), write(v, v))).collect();
        kit.deliver_all(1_000);
        assert!(requests.iter().all(|r| kit.reply(*r) == Some(&KvResponse::Done)));
        let leader = kit.node(NodeId(0));
        assert_eq!(leader.chosen(1), Some(&Entry::Commands(vec![write(0, 0)])));
        let Some(Entry::Commands(batch)) = leader.chosen(2) else { panic!("a batch") };
        assert_eq!(batch.len(), 9, "the queue shares the next slot");
        assert_eq!(leader.applied(), 2);
    }

    fn lagging_follower_catches_up(checkpoint_every_slots: u64) {
        let config = Config { checkpoint_every_slots, ..Config::default() };
        let mut kit = cluster(3, config);
        let n2 = NodeId(2);
        kit.cut.push((NodeId(0), n2));
        for value in 0..30 {
            let w = kit.request(NodeId(0), write(value % 5, value));
            kit.deliver_all(100);
            assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        }
        assert_eq!(kit.node(n2).applied(), 0);
        kit.cut.clear();
        kit.advance(Micros::from_millis(300));
        assert_eq!(kit.node(n2).applied(), kit.node(NodeId(0)).applied());
        assert_eq!(kit.node(n2).state_digest(), kit.node(NodeId(0)).state_digest());
    }

    #[test]
    fn lagging_follower_catches_up_from_chosen_entries() {
        lagging_follower_catches_up(1_000);
    }

    #[test]
    fn lagging_follower_catches_up_from_a_snapshot() {
        lagging_follower_catches_up(4);
    }

    #[test]
    fn restart_recovers_from_checkpoint_and_log() {
        let config = Config { checkpoint_every_slots: 4, ..Config::default() };
        let mut kit = cluster(3, config);
        for value in 0..10 {
            let w = kit.request(NodeId(0), write(value, value));
            kit.deliver_all(100);
            assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        }
        settle(&mut kit);
        assert!(kit.durable[1].len() < 10, "checkpoints bound the log");
        let digest = kit.node(NodeId(1)).state_digest();
        kit.crash(NodeId(1));
        kit.start(NodeId(1));
        settle(&mut kit);
        assert_eq!(kit.node(NodeId(1)).state_digest(), digest);
        // The leader restarts: someone else leads, at a higher ballot.
        let ballot = kit.node(NodeId(0)).promised();
        kit.crash(NodeId(0));
        kit.start(NodeId(0));
        kit.advance(Micros::from_millis(2_000));
        let leader = (0..3).map(NodeId).find(|n| kit.node(*n).is_leader()).expect("a leader");
        assert!(kit.node(leader).promised() > ballot);
        let w = kit.request(leader, write(99, 1));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }
}
