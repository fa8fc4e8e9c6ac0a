//! Fast Paxos, one independent instance per key (Lamport, "Fast Paxos",
//! Distributed Computing 19(2), 2006, cited as §N; the source text's "Fast
//! Paxos" subsection of "Paxos").
//!
//! **Why** (§1, §2.4.2). In classic Paxos as used in practice a proposer
//! sends its value to the leader (the coordinator), which sends phase-2a
//! messages to the acceptors, which tell the learners: three message delays
//! from proposal to learning. Fast Paxos lets a proposer send its value
//! *straight to the acceptors*, so a learner learns in two.
//!
//! **Rounds** (§3.1). Rounds are numbered; each is *fast* or *classic*. In
//! a classic round the coordinator picks one value and a classic quorum of
//! acceptors must accept it. In a fast round the coordinator sends an "any"
//! phase-2a message instead of a value, and each acceptor votes for the
//! first proposal it receives from a proposer; a value is chosen once a
//! *fast quorum* voted for it. The coordinator of the first round may send
//! "any" for every instance before any begins (its phase 1 is vacuous: no
//! acceptor voted below round 1), so a proposer's first message is already
//! a vote request. Here the rounds are [`Ballot`]s `(counter, node)`:
//! - `1.n0` ([`FAST`]) is the fast round every instance starts in;
//! - `2.c` ([`FastPaxos::recovery_ballot`], c = the instance's coordinator)
//!   is the recovery round right after it: classic under coordinated
//!   recovery, fast under uncoordinated recovery;
//! - counters from 3 are classic rounds any proposer mints (phase 1 and 2).
//!
//! No other ballot is ever used, so no round lies between `1.n0` and `2.c`.
//!
//! **Quorums** (§3.1, §3.4.1). Two fast quorums may have voted for
//! different values, so the Quorum Requirement is stronger than Paxos's: any
//! two quorums intersect, and any classic quorum and any two fast quorums
//! intersect. With N acceptors, classic quorums of N − F and fast quorums of
//! N − E this holds iff N > 2F and N > 2E + F; with majority classic quorums
//! a fast quorum holds ⌈3N/4⌉ acceptors: 3 of 3, 3 of 4, 4 of 5, 6 of 7
//! ([`crate::quorum::FastPaxos::most_classic_faults`]).
//!
//! **Picking a value in phase 2a** (§2.2.2, §3.1). A coordinator that got
//! phase-1b messages from a classic quorum Q takes k, the highest round any
//! of them voted in, and V, the values voted in k. No votes: any value. If k
//! is classic, V holds one value: that one. If k is fast, a value v may have
//! been chosen in k only if some fast quorum R voted v, so every acceptor of
//! R ∩ Q reported v at k (the paper's O4(v)); counting, that is "at least
//! fast + |Q| − N acceptors of Q reported v at k". The requirement makes
//! such a v unique; if there is one it must be proposed, otherwise any value
//! may be ([`pick`]).
//!
//! **Collisions and recovery** (§3.2). Concurrent proposers can split a
//! fast round's votes so that no value reaches a fast quorum: a collision.
//! - *Coordinated recovery*: acceptors send their phase-2b votes to the
//!   coordinator of the next round too (here every node hears every vote:
//!   every node is a learner). A round-1 vote is also a valid phase-1b
//!   message for round 2 (the voter will vote no more in round 1, and no
//!   round lies between), so once the coordinator holds round-1 votes from
//!   a classic quorum and sees that no value can still reach a fast quorum,
//!   it picks a value by the rule above and sends phase 2a for round 2 at
//!   once: the collision costs one more round trip, not a phase 1.
//! - *Uncoordinated recovery*: round 2 is fast as well; every acceptor,
//!   from the round-1 votes it hears, applies the rule itself and votes in
//!   round 2 for the value it picks (deterministically: the most votes, then
//!   the smallest value), so acceptors that saw the same votes agree, and
//!   a learner may learn in one more message delay. If they still split,
//!   proposers fall back to classic rounds.
//!
//! Every proposer whose value is not learned in time falls back to a classic
//! round of its own (phase 1 from scratch, with backoff), which is what
//! makes recovery live when the coordinator is down (§3.3).
//!
//! **The key-value face**, durability, anti-entropy and termination are
//! those of single-decree Paxos ([`crate::paxos::single`]): each key is one
//! write-once instance, `write K V` answers `Done` iff its command was
//! chosen (else `CasMismatch`), `read K` answers from the learned value or
//! runs a classic round to learn it (answering "never written" when no
//! acceptor of its quorum voted at all), `cas` is refused. Acceptors force
//! votes and promises before they answer; a proposer forces its intent
//! before its value leaves and drives it to a decision.
//!
//! Files: `proposer.rs` (client requests, the fast proposal, classic rounds,
//! backoff), `acceptor.rs` (fast votes, promises, acceptances, uncoordinated
//! recovery votes), `learner.rs` (counting votes per round, collision
//! detection and coordinated recovery, learning, anti-entropy),
//! `recovery.rs` (the log and restarts), `tests.rs`; this file holds the
//! types, the value-picking rule, the dispatcher and the invariants.

mod acceptor;
mod learner;
mod proposer;
mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog;
use crate::paxos::single::{Decree, Decrees, Instance};
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

use crate::quorum;

pub use crate::paxos::single::Ballot;

/// The fast round every instance starts in; its "any" phase-2a message is
/// implicit (§3.1).
pub const FAST: Ballot = Ballot { counter: 1, node: NodeId(0) };

/// The first counter a proposer mints for a classic round of its own.
const FIRST_CLASSIC_COUNTER: u64 = 3;

/// The catalogue entry of Fast Paxos.
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "fast-paxos",
    section: "Paxos / Fast Paxos",
    summary: "single-decree consensus per key in which proposers send straight to the acceptors (a fast round: \
              learned in 2 message delays, not 3), fast quorums of ⌈3N/4⌉, collisions recovered by the coordinator \
              or by the acceptors; Agreement, Validity, Integrity under all faults",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[COLLISION_RECOVERED, FAST_VALUE_ADOPTED, reached::RECOVERED, reached::OUTCOME_UNKNOWN],
    workload: catalog::Workload::Kv { cas: false },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "fast-quorum-majority",
            what: "fast quorums are classic majorities, so a classic quorum may meet two fast quorums that voted \
                   different values and see neither as possibly chosen (Fast Paxos §3.1, Quorum Requirement)",
            caught_as: &[Violation::Consensus, Violation::Linearizability],
        },
        catalog::Bug {
            name: "ignore-fast-votes",
            what: "a proposer whose phase 1 reports a fast round as the highest proposes its own value, ignoring the \
                   value that may have been chosen there (Fast Paxos §3.1, O4)",
            caught_as: &[Violation::Consensus, Violation::Linearizability],
        },
    ],
    explorable: &[catalog::Setting { name: "recovery", values: &["\"coordinated\"", "\"uncoordinated\""] }],
    retries: 0,
};

/// A fast round collided and round 2 recovered it (§3.2).
pub const COLLISION_RECOVERED: Sometimes = Sometimes {
    name: "collision_recovered",
    what:
        "a fast round's votes split so that no value could reach a fast quorum, and round 2 took over (§3.2)",
};

/// A classic round's phase 1 found a value that may have been chosen in a
/// fast round and proposed it (O4): the case agreement rests on.
pub const FAST_VALUE_ADOPTED: Sometimes = Sometimes {
    name: "fast_value_adopted",
    what: "a phase 1 saw a value that may have been chosen in a fast round and proposed it (§3.1, O4)",
};

/// How a collision in round 1 is recovered (§3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recovery {
    /// The instance's coordinator treats the round-1 votes as phase-1b
    /// messages for round 2 (classic) and sends its phase 2a.
    Coordinated,
    /// Round 2 is fast: each acceptor picks from the round-1 votes it heard
    /// and votes in round 2 itself.
    Uncoordinated,
}

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Fast quorums are majorities, as classic ones.
    FastQuorumMajority,
    /// Phase 1 ignores O4 when the highest round reported is fast.
    IgnoreFastVotes,
}

/// Settings of a Fast Paxos node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub recovery: Recovery,
    /// Wait a random, growing time before retrying a pre-empted ballot.
    pub backoff: bool,
    /// The first retry waits up to this long; each further one doubles it.
    pub backoff_base: Micros,
    pub backoff_max: Micros,
    /// How long a proposer waits for its fast round (then once more, with
    /// the proposal re-sent to the acceptors that did not vote) before it
    /// runs a classic round; also how often a classic phase is re-sent.
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
            recovery: Recovery::Coordinated,
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
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg<C> {
    /// A proposer's value, straight to the acceptors: a vote request in the
    /// fast round 1 (§3.1).
    Propose { instance: Instance, value: C },
    /// Phase 1a of a classic round.
    Prepare { instance: Instance, ballot: Ballot },
    /// Phase 1b: the promise, with the highest-round vote so far.
    Promise { instance: Instance, ballot: Ballot, accepted: Option<(Ballot, C)> },
    /// Phase 2a of a classic round (or of the coordinated recovery round).
    Accept { instance: Instance, ballot: Ballot, value: C },
    /// Phase 2b, from an acceptor to every learner (and so to every
    /// coordinator).
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
    /// The acceptor voted `(ballot, value)` for `instance`.
    Accepted { instance: Instance, ballot: Ballot, value: C },
    /// The proposer proposes `value` for `instance` and drives it to a decision.
    Intent { instance: Instance, value: C },
    /// The learner learned that `value` was chosen for `instance`.
    Learned { instance: Instance, value: C },
    /// Ballot counters up to `counter` may have been used by this proposer.
    Reserved { counter: u64 },
    /// As coordinator, this node sent round 2's phase 2a for `instance`
    /// (coordinated recovery): it sends no other.
    Coordinated { instance: Instance },
    /// All of the above at once (a checkpoint).
    Snapshot {
        reserved: u64,
        acceptor: Vec<AcceptorEntry<C>>,
        intents: Vec<(Instance, C)>,
        learned: Vec<(Instance, C)>,
        coordinated: Vec<Instance>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Re-send the current phase, fall back from the fast round, or retry
    /// after a backoff.
    Round(Instance),
    /// The client request waited long enough.
    Expire { instance: Instance, request: RequestId },
    /// Compare decisions with a random peer.
    Sync,
}

/// Ballot counters reserved (forced to the log) at a time.
const RESERVE_BLOCK: u64 = 16;

/// An acceptor's state for one instance.
#[derive(Clone, Debug)]
struct AcceptorSlot<C> {
    promised: Ballot,
    accepted: Option<(Ballot, C)>,
}

#[derive(Clone, Debug)]
enum Phase<C> {
    /// The value was sent straight to the acceptors (round 1); `resent`
    /// once the first wait ran out.
    Fast { resent: bool },
    /// Phase 1 of a classic round, with the promises so far.
    Prepare { promises: BTreeMap<NodeId, Option<(Ballot, C)>> },
    /// Phase 2 of a classic round with `value`.
    Accept { value: C },
    /// Pre-empted; a new classic ballot when the Round timer fires.
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

/// Phase-1b messages of a quorum: each acceptor's highest vote, if any.
pub type Reports<C> = Vec<Option<(Ballot, C)>>;

/// What the phase-2a rule allows (§2.2.2, §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick<C> {
    /// No acceptor of the quorum voted: any value.
    Nothing,
    /// This value may have been chosen: it must be proposed.
    Forced(C),
    /// No value can have been chosen below; `C` is the most-voted value of
    /// the highest round (ties: the smallest), a fine choice among any.
    Free(C),
}

/// The phase-2a rule: `reports` are the phase-1b messages of a quorum (each
/// acceptor's highest vote, if any), `acceptors` and `fast` the cluster's
/// sizes, `is_fast` tells a fast round, `order` ranks values for ties.
pub fn pick<C: Clone + PartialEq>(
    reports: &[Option<(Ballot, C)>],
    acceptors: usize,
    fast: usize,
    is_fast: impl Fn(Ballot) -> bool,
    order: impl Fn(&C) -> u64,
) -> Pick<C> {
    let Some(k) = reports.iter().flatten().map(|(b, _)| *b).max() else { return Pick::Nothing };
    let mut tally: Vec<(C, usize)> = Vec::new();
    for (_, value) in reports.iter().flatten().filter(|(b, _)| *b == k) {
        match tally.iter_mut().find(|(v, _)| v == value) {
            Some((_, count)) => *count += 1,
            None => tally.push((value.clone(), 1)),
        }
    }
    if !is_fast(k) {
        assert!(tally.len() == 1, "a classic round's coordinator proposes one value");
        return Pick::Forced(tally.swap_remove(0).0);
    }
    // O4(v): some fast quorum R has every member of R ∩ Q voting v at k.
    let threshold = (fast + reports.len()).saturating_sub(acceptors);
    let mut possible = tally.iter().filter(|(_, count)| *count >= threshold.max(1));
    if let Some((value, _)) = possible.next() {
        return Pick::Forced(value.clone());
    }
    tally.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| order(a).cmp(&order(b))));
    Pick::Free(tally.swap_remove(0).0)
}

/// One Fast Paxos node: proposer, acceptor and learner of every instance,
/// and the coordinator of the recovery round of the instances
/// [`FastPaxos::coordinator`] assigns it.
#[derive(Clone, Debug)]
pub struct FastPaxos<S: Decrees> {
    cluster: Cluster,
    config: Config,
    sizes: quorum::FastPaxos,
    // ---- acceptor (acceptor.rs) ----
    slots: BTreeMap<Instance, AcceptorSlot<S::Command>>,
    // ---- proposer (proposer.rs) ----
    /// The highest ballot counter seen anywhere.
    counter_seen: u64,
    /// Counters up to here are reserved in the log.
    counter_reserved: u64,
    /// This node's own values, forced to the log, not yet decided.
    intents: BTreeMap<Instance, S::Command>,
    proposals: BTreeMap<Instance, Proposal<S::Command>>,
    // ---- learner and coordinator (learner.rs) ----
    /// Per undecided instance, each acceptor's latest vote.
    votes: BTreeMap<Instance, BTreeMap<NodeId, (Ballot, S::Command)>>,
    /// Instances whose round-1 collision this node has acted on (as
    /// coordinator, or as an acceptor voting in a fast round 2).
    recovered: BTreeSet<Instance>,
    /// Decided instances: the chosen command and its output here.
    learned: BTreeMap<Instance, (S::Command, S::Output)>,
    state: S,
    sync_cursor: Instance,
    records_since_checkpoint: u64,
}

impl<S: Decrees> FastPaxos<S> {
    /// The value chosen for `instance`, if this node learned it.
    pub fn learned(&self, instance: Instance) -> Option<&S::Command> {
        self.learned.get(&instance).map(|(command, _)| command)
    }

    /// What this acceptor promised and voted for `instance`.
    pub fn acceptor_state(&self, instance: Instance) -> (Ballot, Option<&(Ballot, S::Command)>) {
        match self.slots.get(&instance) {
            Some(slot) => (slot.promised, slot.accepted.as_ref()),
            None => (Ballot::ZERO, None),
        }
    }

    /// The quorum sizes this node counts with.
    pub fn sizes(&self) -> quorum::FastPaxos {
        self.sizes
    }

    /// The coordinator of `instance`'s recovery round: the instances are
    /// spread over the nodes.
    pub fn coordinator(&self, instance: Instance) -> NodeId {
        let nodes = &self.cluster.nodes;
        nodes[(instance % nodes.len() as u64) as usize]
    }

    /// Round 2 of `instance`, right after the fast round.
    pub fn recovery_ballot(&self, instance: Instance) -> Ballot {
        Ballot { counter: 2, node: self.coordinator(instance) }
    }

    /// Whether `ballot` is a fast round (§3.1): round 1, and round 2 under
    /// uncoordinated recovery.
    pub fn is_fast(&self, ballot: Ballot) -> bool {
        ballot == FAST || (ballot.counter == 2 && self.config.recovery == Recovery::Uncoordinated)
    }

    /// Acceptors that must vote the same value in `ballot` for it to be chosen.
    fn quorum_of(&self, ballot: Ballot) -> usize {
        if self.is_fast(ballot) {
            self.sizes.fast
        } else {
            self.sizes.classic
        }
    }

    /// A ballot this protocol can use for `instance` (no other is minted).
    fn well_formed(&self, instance: Instance, ballot: Ballot) -> bool {
        ballot == FAST || ballot == self.recovery_ballot(instance) || ballot.counter >= FIRST_CLASSIC_COUNTER
    }

    /// The phase-2a rule over `reports`, with this node's sizes.
    fn pick(&self, reports: &[Option<(Ballot, S::Command)>]) -> Pick<S::Command> {
        pick(reports, self.sizes.acceptors, self.sizes.fast, |b| self.is_fast(b), Self::value_of)
    }

    fn value_of(command: &S::Command) -> u64 {
        match S::decree(command) {
            Decree::Propose { value, .. } => value,
            other => panic!("a voted command proposes a value, got {other:?}"),
        }
    }

    fn sizes_for(cluster: &Cluster, config: &Config) -> quorum::FastPaxos {
        let sizes = quorum::FastPaxos::most_classic_faults(cluster.nodes.len());
        match config.bug {
            Some(Bug::FastQuorumMajority) => quorum::FastPaxos { fast: sizes.classic, ..sizes },
            _ => sizes,
        }
    }
}

impl<S: Decrees> Protocol for FastPaxos<S> {
    type Msg = Msg<S::Command>;
    type Request = S::Command;
    type Response = S::Output;
    type Record = Record<S::Command>;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()?;
        if nodes.is_empty() {
            return Err(ConfigError::new("fast paxos needs at least one acceptor"));
        }
        Ok(())
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Self::Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let mut node = FastPaxos {
            cluster: cluster.clone(),
            config: config.clone(),
            sizes: Self::sizes_for(cluster, config),
            slots: BTreeMap::new(),
            counter_seen: 0,
            counter_reserved: 0,
            intents: BTreeMap::new(),
            proposals: BTreeMap::new(),
            votes: BTreeMap::new(),
            recovered: BTreeSet::new(),
            learned: BTreeMap::new(),
            state: S::default(),
            sync_cursor: 0,
            records_since_checkpoint: durable.len() as u64,
        };
        node.recover(durable);
        out.set_timer(Timer::Sync, config.sync_interval);
        node.resume_intents(out);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Propose { instance, value } => self.handle_propose(from, instance, value, out),
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

    fn describe(&self) -> String {
        let learned: Vec<String> =
            self.learned.iter().map(|(i, (v, _))| format!("{i}={}", Self::value_of(v))).collect();
        let voted: Vec<String> = self
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
                    Phase::Fast { .. } => "fast",
                    Phase::Prepare { .. } => "prepare",
                    Phase::Accept { .. } => "accept",
                    Phase::Backoff => "backoff",
                };
                format!("{i}@{:?}:{phase}", p.ballot)
            })
            .collect();
        format!(
            "learned [{}] voted [{}] proposing [{}]",
            learned.join(" "),
            voted.join(" "),
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
                assert!(*accepted <= slot.promised, "an acceptor voted above its promise");
                assert!(self.well_formed(*instance, *accepted), "votes are cast in rounds that exist");
            }
            if slot.promised != Ballot::ZERO {
                assert!(self.well_formed(*instance, slot.promised), "promises name rounds that exist");
            }
            assert!(self.counter_seen >= slot.promised.counter, "every promised ballot was seen");
        }
        for (instance, proposal) in &self.proposals {
            assert!(!self.learned.contains_key(instance), "a decided instance is not proposed");
            match proposal.phase {
                Phase::Fast { .. } => assert!(proposal.ballot == FAST, "the fast phase runs round 1"),
                _ if proposal.ballot == Ballot::ZERO || proposal.ballot == FAST => {}
                _ => {
                    assert!(proposal.ballot.node == self.cluster.id, "a proposer runs its own ballots");
                    assert!(proposal.ballot.counter >= FIRST_CLASSIC_COUNTER, "classic rounds start at 3");
                    assert!(proposal.ballot.counter <= self.counter_reserved, "ballots are reserved first");
                }
            }
            assert!(proposal.waiters.len() <= self.config.waiters_max);
            if let Phase::Prepare { promises } = &proposal.phase {
                assert!(promises.len() < self.sizes.classic, "a finished phase 1 is still open");
            }
            let driven = self.intents.contains_key(instance) || !proposal.waiters.is_empty();
            assert!(driven, "a proposal runs for an intent or a waiting client");
        }
        assert!(self.proposals.len() <= self.config.proposals_max + self.intents.len());
        for (instance, votes) in &self.votes {
            assert!(!self.learned.contains_key(instance), "votes of a decided instance are dropped");
            assert!(votes.len() <= self.sizes.acceptors);
        }
        for instance in self.intents.keys().chain(self.recovered.iter()) {
            assert!(!self.learned.contains_key(instance), "a decided instance's state is dropped");
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
