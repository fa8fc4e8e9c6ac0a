//! Single-decree Paxos, one independent instance per key (the source text's
//! "Paxos" section; Lamport, "Paxos Made Simple", 2001, §2).
//!
//! Three roles, which a node may hold in any combination (`Config::acceptors`,
//! `Config::proposers`; every node is a learner):
//!
//! - A **proposer** picks a ballot `(counter, node)` higher than any it has
//!   seen (the text's "Generating Sequence Numbers": pairs ordered
//!   lexicographically, so no two proposers ever mint the same ballot) and
//!   runs **phase 1**: `Prepare(b)` to every acceptor. Once a majority of
//!   acceptors promised `b`, it runs **phase 2**: `Accept(b, v)`, where `v`
//!   is the value of the highest-ballot proposal any of those acceptors
//!   reported having accepted, or its own value if none did (§2.2, P2c).
//! - An **acceptor** promises `b` if `b` is not below anything it promised
//!   before and reports what it accepted; it accepts `(b, v)` unless it
//!   promised a higher ballot. Promises and acceptances are forced to its log
//!   *before* the reply leaves (the text's "some information can be
//!   remembered by an agent that has failed and restarted"). A rejection
//!   carries the higher ballot, so the proposer can outbid it.
//! - A **learner** hears `Accepted(b, v)` from every acceptor and learns `v`
//!   once a majority of acceptors accepted the *same* ballot (§2.3; the
//!   text's "Learner nodes").
//!
//! Any two majorities share an acceptor, which is why a value once chosen is
//! the value every later ballot proposes (the text's "Majorities").
//!
//! **The key-value face.** Each key is one write-once instance. `write K V`
//! proposes the command for instance K and answers `Done` iff it was the
//! value chosen, else `Rejected` (another value was chosen: certainly not
//! applied). `read K` answers from the learned value; if this node has not
//! learned K it runs phase 1 with a fresh ballot: if some acceptor of the
//! majority accepted a value, that value is driven to chosen (phase 2) before
//! it is returned; if none did, no value was chosen before the read began
//! (a chosen value sits at a majority, which meets ours), so "never written"
//! is a linearizable answer. `cas` is refused: an instance is write-once.
//!
//! **Termination.** A proposer forces its own value to its log (an *intent*)
//! before proposing it, and drives that instance until it learns a decision —
//! after its client gave up, and after a restart. Decisions spread by
//! anti-entropy: now and then a node tells a random peer which instances it
//! has decided and the peer answers with the decisions it lacks. Dueling
//! proposers can pre-empt each other forever (FLP); a randomised, growing
//! backoff before retrying makes that unlikely (`Config::backoff`).

use std::collections::{BTreeMap, BTreeSet};

use quorum_core::{
    ClientOutput, Cluster, ConfigError, KvCommand, KvStore, Micros, NodeId, Observation, Out, Protocol,
    RequestId, StateMachine,
};
use serde::{Deserialize, Serialize};

use crate::quorum;

/// A consensus instance (for the KV store: a key).
pub type Instance = u64;

/// A proposal number: `(counter, node)`, compared lexicographically. Debug
/// form `4.n1`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub counter: u64,
    pub node: NodeId,
}

impl Ballot {
    /// Below every ballot a proposer mints (counters start at 1).
    pub const ZERO: Ballot = Ballot { counter: 0, node: NodeId(0) };
}

impl std::fmt::Debug for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.counter, self.node)
    }
}

/// What a client command asks of the instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decree {
    /// Propose this command for `instance`; `value` names it for the checkers.
    Propose { instance: Instance, value: u64 },
    /// Read what `instance` decided.
    Learn { instance: Instance },
    /// Not expressible as a single-decree instance.
    Refuse(&'static str),
}

/// A state machine whose commands map onto independent write-once instances.
///
/// Contract: commands of different instances commute (applying decided
/// commands in any order gives equal states), and a `Learn` command is
/// read-only.
pub trait Decrees: StateMachine {
    fn decree(command: &Self::Command) -> Decree;
}

impl Decrees for KvStore {
    fn decree(command: &KvCommand) -> Decree {
        match *command {
            KvCommand::Write { key, value } => Decree::Propose { instance: key, value },
            KvCommand::Read { key } => Decree::Learn { instance: key },
            KvCommand::Cas { .. } => Decree::Refuse("paxos instances are write-once"),
        }
    }
}

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// An acceptor accepts a proposal even below the ballot it promised.
    AcceptWithoutPromiseCheck,
    /// An acceptor does not force promises and acceptances to its log: after
    /// a restart it has forgotten them.
    ForgetPromises,
}

/// Settings of a Paxos node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The acceptors' node ids (default: every node).
    pub acceptors: Option<Vec<u32>>,
    /// The proposers' node ids (default: every node).
    pub proposers: Option<Vec<u32>>,
    /// Wait a random, growing time before retrying a pre-empted ballot.
    /// Without it, two proposers can pre-empt each other forever.
    pub backoff: bool,
    /// The first retry waits up to this long; each further one doubles it.
    pub backoff_base: Micros,
    pub backoff_max: Micros,
    /// How often a phase is re-sent to the acceptors that have not answered.
    pub retransmit_interval: Micros,
    /// How long a client request waits for a decision.
    pub operation_timeout: Micros,
    /// How often a node compares decisions with a random peer.
    pub sync_interval: Micros,
    /// Most instance ids listed in one sync, most decisions in one answer.
    pub sync_batch_max: usize,
    /// Most instances this node proposes at once.
    pub proposals_max: usize,
    /// Most client requests waiting on one instance.
    pub waiters_max: usize,
    /// Replace the log by a snapshot after this many records.
    pub checkpoint_every_records: u64,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            acceptors: None,
            proposers: None,
            backoff: true,
            backoff_base: Micros::from_millis(10),
            backoff_max: Micros::from_millis(160),
            retransmit_interval: Micros::from_millis(50),
            operation_timeout: Micros::from_millis(800),
            sync_interval: Micros::from_millis(100),
            sync_batch_max: 256,
            proposals_max: 256,
            waiters_max: 64,
            checkpoint_every_records: 512,
            bug: None,
        }
    }
}

impl Config {
    /// Check the settings before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("backoff_base", self.backoff_base.0),
            ("retransmit_interval", self.retransmit_interval.0),
            ("operation_timeout", self.operation_timeout.0),
            ("sync_interval", self.sync_interval.0),
            ("sync_batch_max", self.sync_batch_max as u64),
            ("proposals_max", self.proposals_max as u64),
            ("waiters_max", self.waiters_max as u64),
            ("checkpoint_every_records", self.checkpoint_every_records),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(format!("{name} must be positive")));
        }
        if self.backoff_max < self.backoff_base {
            return Err(ConfigError::new("backoff_max must be at least backoff_base"));
        }
        if self.acceptors.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::new("acceptors must not be empty"));
        }
        if self.proposers.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::new("proposers must not be empty"));
        }
        Ok(())
    }

    fn members(list: &Option<Vec<u32>>, cluster: &Cluster) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = match list {
            Some(ids) => ids.iter().map(|i| NodeId(*i)).collect(),
            None => cluster.nodes.clone(),
        };
        nodes.sort();
        nodes.dedup();
        for node in &nodes {
            assert!(cluster.nodes.contains(node), "paxos role given to {node}, not a cluster member");
        }
        nodes
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg<C> {
    /// Phase 1a: "promise to accept nothing below `ballot` for `instance`".
    Prepare { instance: Instance, ballot: Ballot },
    /// Phase 1b: the promise, with the highest-ballot proposal accepted so far.
    Promise { instance: Instance, ballot: Ballot, accepted: Option<(Ballot, C)> },
    /// Phase 2a: "accept `value` at `ballot`".
    Accept { instance: Instance, ballot: Ballot, value: C },
    /// Phase 2b, from an acceptor to every learner.
    Accepted { instance: Instance, ballot: Ballot, value: C },
    /// "`ballot` is too old: I promised `promised`."
    Nack { instance: Instance, ballot: Ballot, promised: Ballot },
    /// Values already chosen (an answer to a late proposer, or to a sync).
    Decided { decided: Vec<(Instance, C)> },
    /// Anti-entropy: "of the instances in `[from, to)` (`to` None: no upper
    /// bound) I decided exactly `known`".
    Sync { from: Instance, to: Option<Instance>, known: Vec<Instance> },
}

/// One acceptor's state for an instance: `(instance, promised, accepted)`.
pub type AcceptorEntry<C> = (Instance, Ballot, Option<(Ballot, C)>);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<C> {
    /// The acceptor promised `ballot` for `instance`.
    Promised { instance: Instance, ballot: Ballot },
    /// The acceptor accepted `(ballot, value)` for `instance`.
    Accepted { instance: Instance, ballot: Ballot, value: C },
    /// The proposer proposes `value` for `instance` and drives it to a decision.
    Intent { instance: Instance, value: C },
    /// The learner learned that `value` was chosen for `instance`.
    Learned { instance: Instance, value: C },
    /// Ballot counters up to `counter` may have been used by this proposer.
    Reserved { counter: u64 },
    /// All of the above at once (a checkpoint).
    Snapshot {
        reserved: u64,
        acceptor: Vec<AcceptorEntry<C>>,
        intents: Vec<(Instance, C)>,
        learned: Vec<(Instance, C)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Re-send the current phase, or retry after a backoff.
    Round(Instance),
    /// The client request waited long enough.
    Expire { instance: Instance, request: RequestId },
    /// Compare decisions with a random peer.
    Sync,
}

/// Ballot counters reserved (forced to the log) at a time: a restarted
/// proposer starts above the reservation, so it never reuses a ballot.
const RESERVE_BLOCK: u64 = 16;

/// An acceptor's state for one instance.
#[derive(Clone, Debug)]
struct AcceptorSlot<C> {
    promised: Ballot,
    accepted: Option<(Ballot, C)>,
}

#[derive(Clone, Debug)]
enum Phase<C> {
    /// Phase 1, with the promises so far (and what each reported accepted).
    Prepare { promises: BTreeMap<NodeId, Option<(Ballot, C)>> },
    /// Phase 2 with `value`; the learner side counts the acceptances.
    Accept { value: C },
    /// Pre-empted; a new ballot when the Round timer fires.
    Backoff,
}

#[derive(Clone, Debug)]
struct Waiter<C> {
    request: RequestId,
    command: C,
    read: bool,
}

/// A proposer's run of one instance.
#[derive(Clone, Debug)]
struct Proposal<C> {
    ballot: Ballot,
    phase: Phase<C>,
    /// Pre-emptions so far; the backoff doubles with each.
    attempts: u32,
    waiters: Vec<Waiter<C>>,
}

pub struct Paxos<S: Decrees> {
    cluster: Cluster,
    config: Config,
    acceptors: Vec<NodeId>,
    proposers: Vec<NodeId>,
    // ---- acceptor ----
    slots: BTreeMap<Instance, AcceptorSlot<S::Command>>,
    // ---- proposer ----
    /// The highest ballot counter seen anywhere.
    counter_seen: u64,
    /// Counters up to here are reserved in the log.
    counter_reserved: u64,
    /// This node's own values, forced to the log, not yet decided.
    intents: BTreeMap<Instance, S::Command>,
    proposals: BTreeMap<Instance, Proposal<S::Command>>,
    // ---- learner ----
    /// Per undecided instance, each acceptor's latest acceptance.
    votes: BTreeMap<Instance, BTreeMap<NodeId, (Ballot, S::Command)>>,
    /// Decided instances: the chosen command and its output here.
    learned: BTreeMap<Instance, (S::Command, S::Output)>,
    state: S,
    sync_cursor: Instance,
    records_since_checkpoint: u64,
}

impl<S: Decrees> Paxos<S> {
    /// The value chosen for `instance`, if this node learned it.
    pub fn learned(&self, instance: Instance) -> Option<&S::Command> {
        self.learned.get(&instance).map(|(command, _)| command)
    }

    /// What this acceptor promised and accepted for `instance`.
    pub fn acceptor_state(&self, instance: Instance) -> (Ballot, Option<&(Ballot, S::Command)>) {
        match self.slots.get(&instance) {
            Some(slot) => (slot.promised, slot.accepted.as_ref()),
            None => (Ballot::ZERO, None),
        }
    }

    /// The ballot this proposer is running for `instance`, if any.
    pub fn proposal_ballot(&self, instance: Instance) -> Option<Ballot> {
        self.proposals.get(&instance).map(|p| p.ballot)
    }

    /// The replicated state (decided commands applied).
    pub fn state(&self) -> &S {
        &self.state
    }

    fn majority(&self) -> usize {
        quorum::majority(self.acceptors.len())
    }

    fn is_proposer(&self) -> bool {
        self.proposers.contains(&self.cluster.id)
    }

    fn is_acceptor(&self) -> bool {
        self.acceptors.contains(&self.cluster.id)
    }

    fn value_of(command: &S::Command) -> u64 {
        match S::decree(command) {
            Decree::Propose { value, .. } => value,
            other => panic!("a decided command proposes a value, got {other:?}"),
        }
    }

    // ---- durability ----

    fn recover(&mut self, durable: &[Record<S::Command>]) {
        for record in durable {
            match record {
                Record::Promised { instance, ballot } => {
                    self.slot(*instance).promised = *ballot;
                }
                Record::Accepted { instance, ballot, value } => {
                    let slot = self.slot(*instance);
                    slot.promised = slot.promised.max(*ballot);
                    slot.accepted = Some((*ballot, value.clone()));
                }
                Record::Intent { instance, value } => {
                    self.intents.insert(*instance, value.clone());
                }
                Record::Learned { instance, value } => self.record_learned(*instance, value.clone()),
                Record::Reserved { counter } => self.counter_reserved = self.counter_reserved.max(*counter),
                Record::Snapshot { reserved, acceptor, intents, learned } => {
                    self.counter_reserved = *reserved;
                    self.slots.clear();
                    for (instance, promised, accepted) in acceptor {
                        let slot = AcceptorSlot { promised: *promised, accepted: accepted.clone() };
                        self.slots.insert(*instance, slot);
                    }
                    self.intents = intents.iter().cloned().collect();
                    for (instance, value) in learned {
                        self.record_learned(*instance, value.clone());
                    }
                }
            }
        }
        // Every ballot this node may have used is at most the reservation.
        self.counter_seen = self.counter_reserved;
        for slot in self.slots.values() {
            self.counter_seen = self.counter_seen.max(slot.promised.counter);
        }
    }

    fn slot(&mut self, instance: Instance) -> &mut AcceptorSlot<S::Command> {
        self.slots.entry(instance).or_insert(AcceptorSlot { promised: Ballot::ZERO, accepted: None })
    }

    /// Apply a decision to the local state (recovery and learning alike).
    fn record_learned(&mut self, instance: Instance, value: S::Command) {
        if self.learned.contains_key(&instance) {
            return;
        }
        let output = self.state.apply(&value);
        self.learned.insert(instance, (value, output));
        // A decided instance needs no acceptor, proposer or vote state: every
        // later question about it is answered with the decision.
        self.slots.remove(&instance);
        self.intents.remove(&instance);
        self.votes.remove(&instance);
    }

    fn persist(&mut self, record: Record<S::Command>, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records_since_checkpoint += 1;
        if self.records_since_checkpoint >= self.config.checkpoint_every_records {
            out.checkpoint(self.snapshot());
            self.records_since_checkpoint = 0;
        }
    }

    fn snapshot(&self) -> Record<S::Command> {
        Record::Snapshot {
            reserved: self.counter_reserved,
            acceptor: self.slots.iter().map(|(i, s)| (*i, s.promised, s.accepted.clone())).collect(),
            intents: self.intents.iter().map(|(i, v)| (*i, v.clone())).collect(),
            learned: self.learned.iter().map(|(i, (v, _))| (*i, v.clone())).collect(),
        }
    }

    // ---- client requests ----

    fn handle_request(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        match S::decree(&command) {
            Decree::Refuse(reason) => out.reply(id, S::Output::rejected(reason, None)),
            Decree::Learn { instance } => self.request_learn(id, instance, command, out),
            Decree::Propose { instance, value } => self.request_propose(id, instance, value, command, out),
        }
    }

    fn request_learn(
        &mut self,
        id: RequestId,
        instance: Instance,
        command: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if self.learned.contains_key(&instance) {
            // A chosen value never changes: answering it now is linearizable.
            let output = self.state.apply(&command);
            out.reply(id, output);
            return;
        }
        if let Some(refusal) = self.refuse_proposing(instance) {
            out.reply(id, refusal);
            return;
        }
        self.join(instance, Waiter { request: id, command, read: true }, out);
    }

    fn request_propose(
        &mut self,
        id: RequestId,
        instance: Instance,
        value: u64,
        command: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if let Some((chosen, output)) = self.learned.get(&instance) {
            let response = if *chosen == command {
                output.clone()
            } else {
                S::Output::rejected("another value was chosen", None)
            };
            out.reply(id, response);
            return;
        }
        if let Some(refusal) = self.refuse_proposing(instance) {
            out.reply(id, refusal);
            return;
        }
        match self.intents.get(&instance) {
            Some(own) if *own != command => {
                // This node proposes one value per instance and never this one.
                let refusal = S::Output::rejected("this node already proposes another value here", None);
                out.reply(id, refusal);
                return;
            }
            Some(_) => {}
            None => {
                // The intent is durable before anyone can hear of the value,
                // so a restarted proposer still drives it to a decision.
                self.intents.insert(instance, command.clone());
                self.persist(Record::Intent { instance, value: command.clone() }, out);
                out.observe(Observation::Propose { instance, value });
            }
        }
        self.join(instance, Waiter { request: id, command, read: false }, out);
    }

    /// Why this node cannot run a proposal for `instance` now, if it cannot.
    fn refuse_proposing(&self, instance: Instance) -> Option<S::Output> {
        if !self.is_proposer() {
            return Some(S::Output::rejected("not a proposer", self.proposers.first().copied()));
        }
        match self.proposals.get(&instance) {
            Some(p) if p.waiters.len() >= self.config.waiters_max => {
                Some(S::Output::rejected("too many requests wait on this instance", None))
            }
            None if self.proposals.len() >= self.config.proposals_max => {
                Some(S::Output::rejected("too many proposals in flight", None))
            }
            _ => None,
        }
    }

    /// Wait for `instance`'s decision, starting a proposal if none runs.
    fn join(&mut self, instance: Instance, waiter: Waiter<S::Command>, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Expire { instance, request: waiter.request }, self.config.operation_timeout);
        if let Some(proposal) = self.proposals.get_mut(&instance) {
            proposal.waiters.push(waiter);
            return;
        }
        let proposal =
            Proposal { ballot: Ballot::ZERO, phase: Phase::Backoff, attempts: 0, waiters: vec![waiter] };
        self.proposals.insert(instance, proposal);
        self.start_round(instance, out);
    }

    /// A client stopped waiting: a read certainly had no effect; a write's
    /// value stays proposed (its intent is driven on), so its fate is unknown.
    fn expire(&mut self, instance: Instance, request: RequestId, out: &mut Out<'_, Self>) {
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        let Some(at) = proposal.waiters.iter().position(|w| w.request == request) else { return };
        let waiter = proposal.waiters.remove(at);
        let response = if waiter.read {
            S::Output::rejected("no decision learned in time", None)
        } else {
            S::Output::indeterminate("no decision learned in time; the value stays proposed")
        };
        out.reply(request, response);
        if proposal.waiters.is_empty() && !self.intents.contains_key(&instance) {
            self.proposals.remove(&instance);
            out.cancel_timer(Timer::Round(instance));
        }
    }

    // ---- proposer ----

    /// A ballot above every one seen, reserved in the log first if needed.
    fn next_ballot(&mut self, out: &mut Out<'_, Self>) -> Ballot {
        let counter = self.counter_seen + 1;
        self.counter_seen = counter;
        if counter > self.counter_reserved {
            self.counter_reserved = counter + RESERVE_BLOCK - 1;
            self.persist(Record::Reserved { counter: self.counter_reserved }, out);
        }
        Ballot { counter, node: self.cluster.id }
    }

    fn start_round(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let ballot = self.next_ballot(out);
        let proposal = self.proposals.get_mut(&instance).expect("a proposal to start");
        assert!(ballot > proposal.ballot, "each round outbids the last");
        proposal.ballot = ballot;
        proposal.phase = Phase::Prepare { promises: BTreeMap::new() };
        for acceptor in self.acceptors.clone() {
            out.send(acceptor, Msg::Prepare { instance, ballot });
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }

    fn handle_promise(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        accepted: Option<(Ballot, S::Command)>,
        out: &mut Out<'_, Self>,
    ) {
        let majority = self.majority();
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        if proposal.ballot != ballot || !self.acceptors.contains(&from) {
            return; // a stale round's promise
        }
        let Phase::Prepare { promises } = &mut proposal.phase else { return };
        if let Some((accepted_ballot, _)) = &accepted {
            assert!(*accepted_ballot < ballot, "an acceptor promised below what it accepted");
        }
        promises.insert(from, accepted);
        if promises.len() >= majority {
            self.finish_prepare(instance, out);
        }
    }

    /// A majority promised: propose the highest-ballot value they reported
    /// (P2c), else our own; a read with nothing to propose is answered.
    fn finish_prepare(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let proposal = self.proposals.get_mut(&instance).expect("preparing");
        let Phase::Prepare { promises } = &proposal.phase else { unreachable!("preparing") };
        let reported = promises.values().flatten().max_by_key(|(b, _)| *b).map(|(_, v)| v.clone());
        let ballot = proposal.ballot;
        let Some(value) = reported.or_else(|| self.intents.get(&instance).cloned()) else {
            // No acceptor of a majority accepted anything: nothing was chosen
            // before the read began. Only reads wait here (a write has an intent).
            let proposal = self.proposals.remove(&instance).expect("preparing");
            out.cancel_timer(Timer::Round(instance));
            for waiter in proposal.waiters {
                assert!(waiter.read, "a write always has a value to propose");
                out.cancel_timer(Timer::Expire { instance, request: waiter.request });
                let output = self.state.apply(&waiter.command);
                out.reply(waiter.request, output);
            }
            return;
        };
        proposal.phase = Phase::Accept { value: value.clone() };
        for acceptor in self.acceptors.clone() {
            out.send(acceptor, Msg::Accept { instance, ballot, value: value.clone() });
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }

    fn handle_nack(&mut self, instance: Instance, ballot: Ballot, promised: Ballot, out: &mut Out<'_, Self>) {
        self.counter_seen = self.counter_seen.max(promised.counter);
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        if proposal.ballot != ballot || matches!(proposal.phase, Phase::Backoff) {
            return; // a stale round, or this one was already given up
        }
        assert!(promised > ballot, "a rejection names a higher ballot");
        proposal.phase = Phase::Backoff;
        proposal.attempts += 1;
        if !self.config.backoff {
            self.start_round(instance, out);
            return;
        }
        let doubling = 1u64 << proposal.attempts.min(16);
        let ceiling = self.config.backoff_base.0.saturating_mul(doubling).min(self.config.backoff_max.0);
        let wait = out.rng().range(1, ceiling + 1);
        out.set_timer(Timer::Round(instance), Micros(wait));
    }

    /// The round timer: retry after a backoff, or re-send the current phase
    /// to the acceptors that have not answered (messages may be lost).
    fn round_timer(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let Some(proposal) = self.proposals.get(&instance) else { return };
        let ballot = proposal.ballot;
        let (silent, msg): (Vec<NodeId>, Msg<S::Command>) = match &proposal.phase {
            Phase::Backoff => return self.start_round(instance, out),
            Phase::Prepare { promises } => {
                let silent = self.acceptors.iter().copied().filter(|a| !promises.contains_key(a)).collect();
                (silent, Msg::Prepare { instance, ballot })
            }
            Phase::Accept { value } => {
                let votes = self.votes.get(&instance);
                let voted = |a: &NodeId| votes.and_then(|v| v.get(a)).is_some_and(|(b, _)| *b == ballot);
                let silent = self.acceptors.iter().copied().filter(|a| !voted(a)).collect();
                (silent, Msg::Accept { instance, ballot, value: value.clone() })
            }
        };
        for acceptor in silent {
            out.send(acceptor, msg.clone());
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }

    // ---- acceptor ----

    fn handle_prepare(&mut self, from: NodeId, instance: Instance, ballot: Ballot, out: &mut Out<'_, Self>) {
        if !self.is_acceptor() {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if let Some((value, _)) = self.learned.get(&instance) {
            out.send(from, Msg::Decided { decided: vec![(instance, value.clone())] });
            return;
        }
        let slot = self.slot(instance);
        if ballot < slot.promised {
            let promised = slot.promised;
            out.send(from, Msg::Nack { instance, ballot, promised });
            return;
        }
        let fresh = ballot > slot.promised;
        slot.promised = ballot;
        let accepted = slot.accepted.clone();
        if fresh && self.config.bug != Some(Bug::ForgetPromises) {
            self.persist(Record::Promised { instance, ballot }, out);
        }
        out.send(from, Msg::Promise { instance, ballot, accepted });
    }

    fn handle_accept(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if !self.is_acceptor() {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if let Some((chosen, _)) = self.learned.get(&instance) {
            out.send(from, Msg::Decided { decided: vec![(instance, chosen.clone())] });
            return;
        }
        let check_promise = self.config.bug != Some(Bug::AcceptWithoutPromiseCheck);
        let slot = self.slot(instance);
        if check_promise && ballot < slot.promised {
            let promised = slot.promised;
            out.send(from, Msg::Nack { instance, ballot, promised });
            return;
        }
        let fresh = slot.accepted.as_ref().is_none_or(|(b, _)| *b != ballot);
        slot.promised = slot.promised.max(ballot);
        slot.accepted = Some((ballot, value.clone()));
        if fresh && self.config.bug != Some(Bug::ForgetPromises) {
            self.persist(Record::Accepted { instance, ballot, value: value.clone() }, out);
        }
        // Every node is a learner; a duplicate Accept (a retransmission)
        // re-announces, since some learner may have missed it.
        for learner in self.cluster.nodes.clone() {
            out.send(learner, Msg::Accepted { instance, ballot, value: value.clone() });
        }
    }

    // ---- learner ----

    fn handle_accepted(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if self.learned.contains_key(&instance) || !self.acceptors.contains(&from) {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        let votes = self.votes.entry(instance).or_default();
        // An acceptor's acceptances only rise; a late, lower one is stale.
        if votes.get(&from).is_some_and(|(b, _)| *b >= ballot) {
            return;
        }
        votes.insert(from, (ballot, value.clone()));
        let same = votes.values().filter(|(b, _)| *b == ballot).count();
        if same >= self.majority() {
            self.learn(instance, value, out);
        }
    }

    fn handle_decided(&mut self, decided: Vec<(Instance, S::Command)>, out: &mut Out<'_, Self>) {
        for (instance, value) in decided {
            if !self.learned.contains_key(&instance) {
                self.learn(instance, value, out);
            }
        }
    }

    /// `value` is chosen for `instance`: record it, apply it, and answer
    /// everyone waiting on the instance here.
    fn learn(&mut self, instance: Instance, value: S::Command, out: &mut Out<'_, Self>) {
        assert!(!self.learned.contains_key(&instance), "a learner decides an instance once");
        // Observed before it is forced: a crash in between only means the
        // same value is learned again after the restart.
        out.observe(Observation::Decide { instance, value: Self::value_of(&value) });
        self.record_learned(instance, value.clone());
        self.persist(Record::Learned { instance, value: value.clone() }, out);
        let Some(proposal) = self.proposals.remove(&instance) else { return };
        out.cancel_timer(Timer::Round(instance));
        for waiter in proposal.waiters {
            out.cancel_timer(Timer::Expire { instance, request: waiter.request });
            let response = if waiter.read {
                self.state.apply(&waiter.command)
            } else if waiter.command == value {
                self.learned[&instance].1.clone()
            } else {
                S::Output::rejected("another value was chosen", None)
            };
            out.reply(waiter.request, response);
        }
    }

    // ---- anti-entropy ----

    fn sync_timer(&mut self, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Sync, self.config.sync_interval);
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        let Some(&peer) = out.rng().pick(&peers) else { return };
        let from = self.sync_cursor;
        let known: Vec<Instance> =
            self.learned.range(from..).map(|(i, _)| *i).take(self.config.sync_batch_max).collect();
        let to =
            if known.len() == self.config.sync_batch_max { known.last().map(|last| last + 1) } else { None };
        self.sync_cursor = to.unwrap_or(0);
        out.send(peer, Msg::Sync { from, to, known });
    }

    fn handle_sync(
        &mut self,
        from: NodeId,
        range_from: Instance,
        to: Option<Instance>,
        known: Vec<Instance>,
        out: &mut Out<'_, Self>,
    ) {
        let known: BTreeSet<Instance> = known.into_iter().collect();
        let decided: Vec<(Instance, S::Command)> = self
            .learned
            .range(range_from..)
            .take_while(|(i, _)| to.is_none_or(|to| **i < to))
            .filter(|(i, _)| !known.contains(i))
            .take(self.config.sync_batch_max)
            .map(|(i, (v, _))| (*i, v.clone()))
            .collect();
        if !decided.is_empty() {
            out.send(from, Msg::Decided { decided });
        }
    }
}

impl<S: Decrees> Protocol for Paxos<S> {
    type Msg = Msg<S::Command>;
    type Request = S::Command;
    type Response = S::Output;
    type Record = Record<S::Command>;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()?;
        for (role, ids) in [("acceptors", &config.acceptors), ("proposers", &config.proposers)] {
            if let Some(stranger) = ids.iter().flatten().find(|id| !nodes.contains(&NodeId(**id))) {
                return Err(ConfigError::new(format!(
                    "{role} names node {stranger}, which is not in the cluster of {} nodes",
                    nodes.len()
                )));
            }
        }
        Ok(())
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Self::Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let mut node = Paxos {
            cluster: cluster.clone(),
            config: config.clone(),
            acceptors: Config::members(&config.acceptors, cluster),
            proposers: Config::members(&config.proposers, cluster),
            slots: BTreeMap::new(),
            counter_seen: 0,
            counter_reserved: 0,
            intents: BTreeMap::new(),
            proposals: BTreeMap::new(),
            votes: BTreeMap::new(),
            learned: BTreeMap::new(),
            state: S::default(),
            sync_cursor: 0,
            records_since_checkpoint: durable.len() as u64,
        };
        node.recover(durable);
        out.set_timer(Timer::Sync, config.sync_interval);
        // A restarted proposer drives its undecided values on.
        let intents: Vec<(Instance, S::Command)> =
            node.intents.iter().map(|(i, v)| (*i, v.clone())).collect();
        for (instance, value) in intents {
            out.observe(Observation::Propose { instance, value: Self::value_of(&value) });
            let proposal =
                Proposal { ballot: Ballot::ZERO, phase: Phase::Backoff, attempts: 0, waiters: Vec::new() };
            node.proposals.insert(instance, proposal);
            node.start_round(instance, out);
        }
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Prepare { instance, ballot } => self.handle_prepare(from, instance, ballot, out),
            Msg::Promise { instance, ballot, accepted } => {
                self.handle_promise(from, instance, ballot, accepted, out)
            }
            Msg::Accept { instance, ballot, value } => self.handle_accept(from, instance, ballot, value, out),
            Msg::Accepted { instance, ballot, value } => {
                self.handle_accepted(from, instance, ballot, value, out)
            }
            Msg::Nack { instance, ballot, promised } => self.handle_nack(instance, ballot, promised, out),
            Msg::Decided { decided } => self.handle_decided(decided, out),
            Msg::Sync { from: range_from, to, known } => self.handle_sync(from, range_from, to, known, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Round(instance) => self.round_timer(instance, out),
            Timer::Expire { instance, request } => self.expire(instance, request, out),
            Timer::Sync => self.sync_timer(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: S::Command, out: &mut Out<'_, Self>) {
        self.handle_request(id, request, out);
    }

    /// `next-ballot N`: this proposer's next ballot counter is at least N
    /// (for scripts that replay the text's walkthrough with n=2 and n=4).
    fn on_admin(&mut self, command: &str, _out: &mut Out<'_, Self>) -> Result<(), String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["next-ballot", n] => {
                let n: u64 = n.parse().map_err(|_| format!("'{n}' is not a number"))?;
                if n == 0 || n <= self.counter_seen {
                    return Err(format!("next-ballot must exceed {}", self.counter_seen));
                }
                self.counter_seen = n - 1;
                Ok(())
            }
            _ => Err(format!("unknown command '{command}' (expected 'next-ballot N')")),
        }
    }

    fn describe(&self) -> String {
        let mut roles = Vec::new();
        if self.is_proposer() {
            roles.push("proposer");
        }
        if self.is_acceptor() {
            roles.push("acceptor");
        }
        roles.push("learner");
        let learned: Vec<String> =
            self.learned.iter().map(|(i, (v, _))| format!("{i}={}", Self::value_of(v))).collect();
        let promised: Vec<String> = self
            .slots
            .iter()
            .map(|(i, s)| match &s.accepted {
                Some((b, v)) => format!("{i}:{:?}/{:?}={}", s.promised, b, Self::value_of(v)),
                None => format!("{i}:{:?}", s.promised),
            })
            .collect();
        let proposing: Vec<String> = self
            .proposals
            .iter()
            .map(|(i, p)| {
                let phase = match p.phase {
                    Phase::Prepare { .. } => "prepare",
                    Phase::Accept { .. } => "accept",
                    Phase::Backoff => "backoff",
                };
                format!("{i}@{:?}:{phase}", p.ballot)
            })
            .collect();
        format!(
            "{} learned [{}] promised [{}] proposing [{}]",
            roles.join("+"),
            learned.join(" "),
            promised.join(" "),
            proposing.join(" ")
        )
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.state.digest())
    }

    fn invariants(&self) {
        for (instance, slot) in &self.slots {
            assert!(!self.learned.contains_key(instance), "a decided instance keeps no acceptor state");
            if let Some((accepted, _)) = &slot.accepted {
                assert!(*accepted <= slot.promised, "an acceptor accepted above its promise");
                assert!(*accepted > Ballot::ZERO, "only minted ballots are accepted");
            }
            assert!(self.counter_seen >= slot.promised.counter, "every promised ballot was seen");
        }
        for (instance, proposal) in &self.proposals {
            assert!(self.is_proposer(), "only proposers propose");
            assert!(!self.learned.contains_key(instance), "a decided instance is not proposed");
            assert!(proposal.ballot.node == self.cluster.id, "a proposer runs its own ballots");
            assert!(proposal.ballot.counter <= self.counter_reserved, "ballots are reserved before use");
            assert!(proposal.ballot.counter <= self.counter_seen, "ballots in use were seen");
            assert!(proposal.waiters.len() <= self.config.waiters_max);
            if let Phase::Prepare { promises } = &proposal.phase {
                assert!(promises.len() < self.majority(), "a finished phase 1 is still open");
            }
            let driven = self.intents.contains_key(instance) || !proposal.waiters.is_empty();
            assert!(driven, "a proposal runs for an intent or a waiting client");
        }
        assert!(self.proposals.len() <= self.config.proposals_max + self.intents.len());
        for (instance, votes) in &self.votes {
            assert!(!self.learned.contains_key(instance), "votes of a decided instance are dropped");
            assert!(votes.len() <= self.acceptors.len());
        }
        for instance in self.intents.keys() {
            assert!(!self.learned.contains_key(instance), "a decided intent is dropped");
        }
        assert!(self.records_since_checkpoint <= self.config.checkpoint_every_records);
    }

    /// Agreement, checked across live nodes: no two learned different values.
    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        let mut first: BTreeMap<Instance, (NodeId, &S::Command)> = BTreeMap::new();
        for (id, node) in nodes {
            for (instance, (value, _)) in &node.learned {
                match first.get(instance) {
                    Some((other, seen)) if *seen != value => {
                        return Err(format!(
                            "agreement: instance {instance} learned {seen:?} at {other} and {value:?} at {id}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        first.insert(*instance, (*id, value));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;
    use quorum_core::{KvResponse, Rng};

    type P = Paxos<KvStore>;

    fn write(key: u64, value: u64) -> KvCommand {
        KvCommand::Write { key, value }
    }

    fn read(key: u64) -> KvCommand {
        KvCommand::Read { key }
    }

    /// Deliver the first in-flight message from `from` to `to`.
    fn deliver(kit: &mut Kit<P>, from: NodeId, to: NodeId) -> Msg<KvCommand> {
        let at =
            kit.network.iter().position(|(f, t, _)| *f == from && *t == to).expect("a message in flight");
        let message = kit.network.remove(at).expect("in range");
        let msg = message.2.clone();
        kit.network.push_front(message);
        kit.deliver_all(1);
        msg
    }

    /// Drop the first in-flight message from `from` to `to`.
    fn drop_one(kit: &mut Kit<P>, from: NodeId, to: NodeId) -> Msg<KvCommand> {
        let at =
            kit.network.iter().position(|(f, t, _)| *f == from && *t == to).expect("a message in flight");
        kit.network.remove(at).expect("in range").2
    }

    fn admin(kit: &mut Kit<P>, node: NodeId, command: &str) {
        let mut rng = Rng::seed(0);
        let mut out = Out::new(kit.now, &mut rng);
        kit.nodes[node.0 as usize].as_mut().expect("up").on_admin(command, &mut out).expect("accepted");
        assert!(out.effects().is_empty());
    }

    fn ballot(counter: u64, node: u32) -> Ballot {
        Ballot { counter, node: NodeId(node) }
    }

    /// The source text's "Walkthrough" (Paxos section): proposers A (n=2)
    /// and B (n=4), acceptors X, Y, Z. Both propose 8. Z's answer to A is
    /// lost, A's accept is rejected everywhere, B's accept (carrying 8) is
    /// accepted by all, and every learner learns 8.
    ///
    /// The text has X and Y answer B "with the previously seen proposal
    /// (A's)": at that point they had only *promised* A, so there is no
    /// accepted value to report; B's accept carries 8 because 8 is B's own.
    #[test]
    fn walkthrough_a_n2_and_b_n4_every_learner_learns_8() {
        let (a, b, x, y, z) = (NodeId(0), NodeId(1), NodeId(2), NodeId(3), NodeId(4));
        let config =
            Config { acceptors: Some(vec![2, 3, 4]), proposers: Some(vec![0, 1]), ..Config::default() };
        let mut kit: Kit<P> = Kit::new(5, config);
        admin(&mut kit, a, "next-ballot 2");
        admin(&mut kit, b, "next-ballot 4");
        // 1, 2: A and B send prepare.
        let ra = kit.request(a, write(1, 8));
        let rb = kit.request(b, write(1, 8));
        assert_eq!(kit.node(a).proposal_ballot(1), Some(ballot(2, 0)));
        assert_eq!(kit.node(b).proposal_ballot(1), Some(ballot(4, 1)));
        // 3: X and Y receive A's prepare first and promise n=2.
        deliver(&mut kit, a, x);
        deliver(&mut kit, a, y);
        assert_eq!(kit.node(x).acceptor_state(1).0, ballot(2, 0));
        // 4, 5: X, Y and Z promise B's n=4.
        deliver(&mut kit, b, x);
        deliver(&mut kit, b, y);
        deliver(&mut kit, b, z);
        assert_eq!(kit.node(y).acceptor_state(1).0, ballot(4, 1));
        // 6: Z rejects A's n=2, but the rejection is lost.
        deliver(&mut kit, a, z);
        let lost = drop_one(&mut kit, z, a);
        assert!(
            matches!(lost, Msg::Nack { ballot: n, promised, .. } if n == ballot(2, 0) && promised == ballot(4, 1))
        );
        // Accept phase 1: A has promises from X and Y, a majority.
        deliver(&mut kit, x, a);
        deliver(&mut kit, y, a);
        assert!(kit.network.iter().any(|(f, _, m)| *f == a && matches!(m, Msg::Accept { .. })));
        // 2: A's accept is ignored by every acceptor: each promised n=4.
        for acceptor in [x, y, z] {
            let reply = {
                deliver(&mut kit, a, acceptor);
                kit.network.back().expect("a reply").2.clone()
            };
            assert!(matches!(reply, Msg::Nack { promised, .. } if promised == ballot(4, 1)));
            assert_eq!(kit.node(acceptor).acceptor_state(1).1, None);
        }
        // 3-6: B's accept carries 8; all accept and tell every learner.
        kit.deliver_all(1_000);
        for node in 0..5 {
            assert_eq!(kit.node(NodeId(node)).learned(1), Some(&write(1, 8)), "learner n{node}");
        }
        assert_eq!(kit.reply(ra), Some(&KvResponse::Done), "A's value, 8, was chosen");
        assert_eq!(kit.reply(rb), Some(&KvResponse::Done));
    }

    /// Deliver phase-1 traffic before any Accept: the scheduler that lets
    /// two proposers pre-empt each other. Timers fire only when nothing is
    /// in flight. Returns the deliveries made.
    fn run_dueling(kit: &mut Kit<P>, steps: usize) {
        for _ in 0..steps {
            if kit.node(NodeId(0)).learned(1).is_some() {
                return;
            }
            let urgent = kit.network.iter().position(|(_, _, m)| !matches!(m, Msg::Accept { .. }));
            match urgent.or(if kit.network.is_empty() { None } else { Some(0) }) {
                Some(at) => {
                    let message = kit.network.remove(at).expect("in range");
                    kit.network.push_front(message);
                    kit.deliver_all(1);
                }
                None => kit.advance(Micros::from_millis(1)),
            }
        }
    }

    fn dueling(backoff: bool) -> Kit<P> {
        let mut kit: Kit<P> = Kit::new(3, Config { backoff, ..Config::default() });
        kit.request(NodeId(0), write(1, 10));
        kit.request(NodeId(1), write(1, 11));
        run_dueling(&mut kit, 20_000);
        kit
    }

    /// FLP in practice: without backoff, each proposer's prepare lands
    /// between the other's prepare and accept, forever.
    #[test]
    fn dueling_proposers_without_backoff_never_choose() {
        let kit = dueling(false);
        for node in 0..3 {
            assert_eq!(kit.node(NodeId(node)).learned(1), None);
        }
        let counter = kit.node(NodeId(0)).proposal_ballot(1).expect("still proposing").counter;
        assert!(counter > 1_000, "ballots kept rising: {counter}");
    }

    #[test]
    fn dueling_proposers_with_backoff_choose_one_value() {
        let mut kit = dueling(true);
        kit.deliver_all(10_000);
        let chosen = kit.node(NodeId(0)).learned(1).copied().expect("decided");
        for node in 0..3 {
            assert_eq!(kit.node(NodeId(node)).learned(1), Some(&chosen));
        }
        assert!(chosen == write(1, 10) || chosen == write(1, 11));
    }

    fn promise_then_restart(bug: Option<Bug>) -> Kit<P> {
        let mut kit: Kit<P> = Kit::new(3, Config { bug, ..Config::default() });
        kit.request(NodeId(0), write(1, 10));
        deliver(&mut kit, NodeId(0), NodeId(1));
        assert_eq!(kit.node(NodeId(1)).acceptor_state(1).0, ballot(1, 0));
        kit.crash(NodeId(1));
        kit.start(NodeId(1));
        kit.network.clear();
        // An older proposer's accept arrives after the restart.
        kit.network.push_back((
            NodeId(2),
            NodeId(1),
            Msg::Accept { instance: 1, ballot: ballot(0, 2), value: write(1, 99) },
        ));
        kit.deliver_all(1);
        kit
    }

    #[test]
    fn acceptor_keeps_its_promise_across_a_crash() {
        let kit = promise_then_restart(None);
        assert_eq!(kit.node(NodeId(1)).acceptor_state(1), (ballot(1, 0), None));
        assert!(
            matches!(kit.network.back(), Some((_, _, Msg::Nack { promised, .. })) if *promised == ballot(1, 0))
        );
    }

    #[test]
    fn forget_promises_bug_breaks_the_promise_after_a_crash() {
        let kit = promise_then_restart(Some(Bug::ForgetPromises));
        assert_eq!(kit.node(NodeId(1)).acceptor_state(1).1, Some(&(ballot(0, 2), write(1, 99))));
    }

    #[test]
    fn write_then_competing_write_is_rejected_and_reads_agree() {
        let mut kit: Kit<P> = Kit::new(3, Config::default());
        let w = kit.request(NodeId(0), write(1, 10));
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let late = kit.request(NodeId(2), write(1, 11));
        assert!(matches!(kit.reply(late), Some(KvResponse::Rejected { .. })), "2 learned 10 already");
        for node in 0..3 {
            let r = kit.request(NodeId(node), read(1));
            assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
        }
        let cas = kit.request(NodeId(0), KvCommand::Cas { key: 1, expected: 10, new: 12 });
        assert!(matches!(kit.reply(cas), Some(KvResponse::Rejected { .. })));
    }

    #[test]
    fn read_of_unwritten_key_runs_phase_1_and_returns_none() {
        let mut kit: Kit<P> = Kit::new(3, Config::default());
        let r = kit.request(NodeId(1), read(7));
        assert_eq!(kit.reply(r), None);
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
        // It proposed nothing: a later write still wins the instance.
        let w = kit.request(NodeId(0), write(7, 1));
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }

    /// Run n0's write of 10 until it accepted it locally and sent its accepts,
    /// then lose every message and crash n0.
    fn half_done_write(kit: &mut Kit<P>, also_accepted_at_n1: bool) -> RequestId {
        let (n0, n1, n2) = (NodeId(0), NodeId(1), NodeId(2));
        kit.cut.push((n0, n2));
        let w = kit.request(n0, write(1, 10));
        deliver(kit, n0, n0);
        deliver(kit, n0, n1);
        deliver(kit, n0, n0); // promise
        deliver(kit, n1, n0); // promise: a majority, accepts go out
        deliver(kit, n0, n0); // n0 accepts 10
        if also_accepted_at_n1 {
            deliver(kit, n0, n1);
        }
        kit.network.clear(); // every Accepted announcement is lost
        kit.cut.clear();
        kit.crash(n0);
        assert_eq!(kit.reply(w), None);
        w
    }

    /// 10 was accepted by n0 and n1, a majority: chosen, but nobody knows.
    /// A read at n2 finds it in phase 1 and finishes it before returning it.
    #[test]
    fn read_finishes_a_chosen_but_unlearned_value_before_returning_it() {
        let mut kit: Kit<P> = Kit::new(3, Config::default());
        half_done_write(&mut kit, true);
        let r = kit.request(NodeId(2), read(1));
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
        assert_eq!(kit.node(NodeId(1)).learned(1), Some(&write(1, 10)));
    }

    /// 10 was accepted by n0 alone: not chosen. With n0 down, a read at n2
    /// sees nothing at its majority and answers "never written"; the write
    /// is still undecided (its client saw no answer). Once n0 restarts it
    /// drives its intent, and 10 is decided everywhere (termination).
    #[test]
    fn read_returns_unwritten_for_a_minority_value_and_the_restarted_proposer_finishes_it() {
        let mut kit: Kit<P> = Kit::new(3, Config::default());
        half_done_write(&mut kit, false);
        let r = kit.request(NodeId(2), read(1));
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
        kit.start(NodeId(0));
        kit.deliver_all(1_000);
        for node in 0..3 {
            assert_eq!(kit.node(NodeId(node)).learned(1), Some(&write(1, 10)));
        }
    }

    #[test]
    fn lagging_learner_catches_up_by_sync() {
        let mut kit: Kit<P> = Kit::new(3, Config::default());
        for from in 0..3 {
            kit.cut.push((NodeId(from), NodeId(2)));
        }
        let mut requests = Vec::new();
        for key in 0..5 {
            requests.push(kit.request(NodeId((key % 2) as u32), write(key, key + 100)));
        }
        kit.deliver_all(10_000);
        assert!(requests.iter().all(|r| kit.reply(*r) == Some(&KvResponse::Done)));
        assert_eq!(kit.node(NodeId(2)).learned(0), None);
        kit.cut.clear();
        kit.advance(Micros::from_millis(1_000));
        for key in 0..5 {
            assert_eq!(kit.node(NodeId(2)).learned(key), Some(&write(key, key + 100)));
        }
        assert_eq!(kit.node(NodeId(2)).state_digest(), kit.node(NodeId(0)).state_digest());
    }

    #[test]
    fn checkpoints_bound_the_log_and_recover_everything() {
        let config = Config { checkpoint_every_records: 8, ..Config::default() };
        let mut kit: Kit<P> = Kit::new(3, config);
        for key in 0..20 {
            let w = kit.request(NodeId(0), write(key, key));
            kit.deliver_all(1_000);
            assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        }
        assert!(kit.durable[1].len() <= 8);
        let digest = kit.node(NodeId(1)).state_digest();
        kit.crash(NodeId(1));
        kit.start(NodeId(1));
        assert_eq!(kit.node(NodeId(1)).state_digest(), digest);
        // A restarted proposer never reuses a ballot.
        kit.crash(NodeId(0));
        kit.start(NodeId(0));
        kit.request(NodeId(0), write(99, 1));
        assert!(kit.node(NodeId(0)).proposal_ballot(99).expect("proposing").counter > 20);
    }
}
