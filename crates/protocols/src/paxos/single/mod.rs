//! Single-decree Paxos, one independent instance per key (the source text's
//! "Paxos" section; Lamport, "Paxos Made Simple", 2001, cited as §N).
//!
//! **The problem** (§2.1). Proposers propose values; a single one of them
//! must be *chosen*, and a learner may learn a value only once it has been
//! chosen. A value is chosen when a majority of the acceptors have accepted
//! the same proposal (§2.2).
//!
//! Three roles, which a node may hold in any combination (`Config::acceptors`,
//! `Config::proposers`; every node is a learner):
//!
//! - A **proposer** picks a ballot `(counter, node)` higher than any it has
//!   seen (the text's "Generating Sequence Numbers": pairs ordered
//!   lexicographically, so no two proposers ever mint the same ballot, as
//!   §2.5's disjoint sets of numbers) and runs **phase 1**: `Prepare(b)` to
//!   every acceptor. Once a majority of acceptors promised `b`, it runs
//!   **phase 2**: `Accept(b, v)`, where `v` is the value of the
//!   highest-ballot proposal any of those acceptors reported having
//!   accepted, or its own value if none did (§2.2, P2c). A rejection
//!   pre-empts the round; the proposer backs off and retries with a higher
//!   ballot.
//! - An **acceptor** promises `b` if `b` is not below anything it promised
//!   before and reports what it accepted; it accepts `(b, v)` unless it
//!   promised a higher ballot (§2.2, P1a). Promises and acceptances are
//!   forced to its log *before* the reply leaves (§2.5: "an acceptor records
//!   its intended response in stable storage before actually sending the
//!   response"; the text's "some information can be remembered by an agent
//!   that has failed and restarted"). A rejection carries the higher ballot,
//!   so the proposer can outbid it.
//! - A **learner** hears `Accepted(b, v)` from every acceptor and learns `v`
//!   once a majority of acceptors accepted the *same* ballot (§2.3; the
//!   text's "Learner nodes").
//!
//! Any two majorities share an acceptor, which is why a value once chosen is
//! the value every later ballot proposes (§2.2; the text's "Majorities";
//! the arithmetic is [`crate::quorum`]).
//!
//! **The key-value face.** Each key is one write-once instance. `write K V`
//! proposes the command for instance K and answers `Done` iff it was the
//! value chosen, else `CasMismatch` (another value was chosen: certainly not
//! applied; a definite answer, as a cas from "never written" that failed,
//! not a refusal to serve). `read K` answers from the learned value; if this node has not
//! learned K it runs phase 1 with a fresh ballot: if some acceptor of the
//! majority accepted a value, that value is driven to chosen (phase 2) before
//! it is returned; if none did, no value was chosen before the read began
//! (a chosen value sits at a majority, which meets ours), so "never written"
//! is a linearizable answer. `cas` is refused: an instance is write-once.
//!
//! **Termination.** A proposer forces its own value to its log (an *intent*)
//! before proposing it, and drives that instance until it learns a decision —
//! after its client gave up, and after a restart. Its ballot counters are
//! reserved on the log a block at a time, so a restarted proposer starts
//! above every ballot it may have used (§2.5: a proposer "remembers ... the
//! highest-numbered proposal it has tried to issue"). Decisions spread by
//! anti-entropy: now and then a node tells a random peer which instances it
//! has decided and the peer answers with the decisions it lacks. Dueling
//! proposers can pre-empt each other forever (§2.4; FLP); the paper's remedy
//! is a distinguished proposer, ours a randomised, growing backoff before
//! retrying, which makes that unlikely (`Config::backoff`).
//!
//! Files: `proposer.rs` (client requests, ballots, phases 1 and 2,
//! pre-emption and backoff), `acceptor.rs` (promises and acceptances),
//! `learner.rs` (counting acceptances, learning, anti-entropy),
//! `recovery.rs` (the log, checkpoints, restart), `tests.rs` (the text's
//! walkthrough, dueling proposers, crashes); this file holds the types, the
//! dispatcher and the invariants.

mod acceptor;
mod learner;
mod proposer;
mod recovery;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::{
    Cluster, ConfigError, KvCommand, KvResponse, KvStore, Micros, NodeId, Out, Protocol, RequestId,
    StateMachine,
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
    /// The answer to a proposal of `command` for an instance that chose
    /// another command: certainly not applied, and final (the register is
    /// written), not a refusal to serve.
    fn superseded(command: &Self::Command) -> Self::Output;
}

impl Decrees for KvStore {
    fn decree(command: &KvCommand) -> Decree {
        match *command {
            KvCommand::Write { key, value } => Decree::Propose { instance: key, value },
            KvCommand::Read { key } => Decree::Learn { instance: key },
            KvCommand::Cas { .. } => Decree::Refuse("paxos instances are write-once"),
        }
    }

    /// A write to a decided key is a cas from "never written" that failed.
    fn superseded(_command: &KvCommand) -> KvResponse {
        KvResponse::CasMismatch
    }
}

/// The catalogue entry of single-decree Paxos (source text, "Paxos").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "paxos",
    section: "Paxos",
    summary: "single-decree consensus per key from proposers, acceptors and learners with ballots (counter, node); \
              Agreement, Validity, Integrity under all faults; may not terminate with dueling proposers",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[PRIOR_VALUE_ADOPTED, reached::RECOVERED, reached::OUTCOME_UNKNOWN],
    workload: catalog::Workload::Kv { cas: false },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "accept-without-promise-check",
            what: "an acceptor accepts a proposal below the ballot it promised (Paxos Made Simple §2.2, P1a)",
            caught_as: &[Violation::Consensus, Violation::Linearizability],
        },
        catalog::Bug {
            name: "forget-promises",
            what: "an acceptor does not force its promises, acceptances and the decisions it answers Prepares with: \
                   after a restart it forgot them (§2.5)",
            caught_as: &[Violation::Consensus, Violation::Linearizability],
        },
    ],
    explorable: &[],
    retries: 0,
};

/// A proposer's phase 1 found a value accepted under an earlier ballot and
/// proposed it instead of its own (P2c): the case Agreement rests on.
pub const PRIOR_VALUE_ADOPTED: Sometimes = Sometimes {
    name: "prior_value_adopted",
    what: "a proposer's promises reported a value accepted earlier, and it proposed that value (P2c)",
};

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// An acceptor accepts a proposal even below the ballot it promised.
    AcceptWithoutPromiseCheck,
    /// An acceptor does not force its promises and acceptances, nor the
    /// decisions it learned (with which it answers a Prepare), to its log:
    /// after a restart it has forgotten them.
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

/// One Paxos node: proposer, acceptor and learner (as [`Config`] assigns the
/// roles) of every instance.
#[derive(Clone, Debug)]
pub struct Paxos<S: Decrees> {
    cluster: Cluster,
    config: Config,
    acceptors: Vec<NodeId>,
    proposers: Vec<NodeId>,
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
    // ---- learner (learner.rs) ----
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
        node.resume_intents(out);
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
