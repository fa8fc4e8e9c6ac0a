//! Ben-Or's randomised binary consensus, crash-fault version (M. Ben-Or,
//! "Another Advantage of Free Choice: Completely Asynchronous Agreement
//! Protocols", PODC 1983, Protocol A and Theorem 1; retold in J. Aspnes,
//! "Randomized protocols for asynchronous consensus", Distributed Computing
//! 16, 2003, section "Ben-Or's algorithm").
//!
//! **Why it exists.** Fischer, Lynch and Paterson proved that no
//! deterministic protocol reaches consensus in an asynchronous system if one
//! process may crash: an adversary that orders the messages can keep it
//! undecided forever. Ben-Or's answer is a coin. The adversary still orders
//! every message, but it cannot know a coin before it is flipped, and with
//! probability 1 the coins eventually line up (Theorem 1: "as long as a
//! majority of the processes continues to operate, a decision will be made").
//!
//! **The protocol.** `n` nodes, at most `f` of them crash, `f < n/2` (here
//! `f = ⌊(n-1)/2⌋`). Each node starts with an input bit as its *estimate*
//! `x` and runs numbered rounds `r = 1, 2, ...`, each of two phases:
//!
//! 1. **Report.** Send `(1, r, x)` to everyone and wait for `n - f` reports
//!    of round `r` (its own counts). If more than `n/2` of them carry the
//!    same `v`, *propose* `v` (Ben-Or's `(2, r, v, D)`); otherwise propose
//!    `?` (`Unsure`).
//! 2. **Proposal.** Send the proposal to everyone and wait for `n - f`
//!    proposals of round `r`. If at least `f + 1` propose `v`, **decide**
//!    `v`. Else if at least one proposes `v`, set `x := v`. Else flip a fair
//!    coin: `x := 0` or `1` with probability 1/2 each. Go to round `r + 1`.
//!
//! **Why it is safe.** Two proposals of one round never differ: each needs
//! more than `n/2` reports of its value, and every node reports one value
//! per round, so two such sets would share a node that reported both
//! (Claim 1; checked across nodes by `cluster_invariants`). If a node
//! decides `v` in round `r`, it saw `f + 1` proposals of `v`; every other
//! node waits for `n - f` proposals, and `(n - f) + (f + 1) > n`, so every
//! node sees at least one `v` and carries `x = v` into round `r + 1`, where
//! all reports are `v`, all proposals are `v`, and all decide `v`
//! (Agreement). If every input is `v`, round 1 decides `v` (Validity).
//!
//! **Why it terminates, and how slowly.** Whenever no proposal carries a
//! value, the nodes flip independent *local* coins; if all `n - f` they need
//! come up equal, the next round decides. That happens with probability at
//! least `2^-(n-f)` per round whatever the scheduler does, so a decision
//! comes with probability 1, but the expected number of rounds can grow
//! exponentially in `n` when the inputs are split (Ben-Or's remark after
//! Theorem 1; Aspnes ibid.: constant expected rounds only when `f = O(√n)`,
//! and a *shared* coin is what makes it fast). `quorum ben-or-rounds`
//! measures it.
//!
//! **Our system model: crash-recovery on a lossy network.** The paper's
//! channels are reliable and a crashed process stays down. Ours lose,
//! duplicate and delay messages, and nodes restart. So:
//!
//! - a node forces each round's estimate to its log before its report
//!   leaves, and each proposal before the proposal leaves: a node that
//!   restarts resends the very same messages, never a re-flipped coin or a
//!   proposal from a different set of reports (sending two values in one
//!   round would break Claim 1);
//! - it resends its current message every `retransmit_interval` until it
//!   decides, and answers a message of a phase it has already passed with
//!   its own message of that phase (which it keeps), so a node that lost
//!   messages, or restarted and lost what it had heard, catches up;
//! - a node that decides forces the decision, tells everyone (`Decided`),
//!   stops taking part in rounds, and answers any round message with its
//!   decision (the "termination gadget" of the crash model: a decided node
//!   need not run further rounds for the others to finish).
//!
//! A node that never restarts behaves exactly as the paper's process; one
//! that restarts is a slow process that remembers everything it said.
//!
//! **Instances, inputs and the coin.** A cluster runs many independent
//! instances of the protocol, numbered (so one simulated run puts many
//! decisions under its faults). A client's `decision K` at a node starts
//! instance `K` there, if it has not started, and is answered with the
//! decision; a node that hears of an instance it has not started joins it.
//! Each node's input comes from its settings (`Config::inputs`): split as
//! evenly as possible (node `i` starts with `i mod 2`, the worst case),
//! drawn from the seed, all 0, all 1, or a bit string. The coin is the
//! driver's seeded random source (`Out::rng`): the same seed flips the same
//! coins.
//!
//! Files: `rounds.rs` (the two phases, the coin, deciding), `tests.rs`;
//! this file holds the types, the dispatcher, recovery and the invariants.

mod rounds;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::decision::{DecisionQuery, DecisionResponse};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

/// A consensus instance.
pub type Instance = u64;

/// The catalogue entry of Ben-Or's randomised consensus.
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "ben-or",
    section: "FLP impossibility result",
    summary: "randomised binary consensus (Ben-Or 1983): Agreement, Validity, Integrity always; \
              terminates with probability 1 while a majority is up; local coins, no leader, no clock",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[COIN_FLIPPED, VALUE_ADOPTED, LATE_DECISION, reached::RECOVERED],
    workload: catalog::Workload::Decision,
    variants: &[],
    bugs: &[catalog::Bug {
        name: "decide-on-f-proposals",
        what: "a node decides on f proposals of a value instead of f + 1, so another node's n - f \
               proposals may miss them all and its coin may pick the other value (Ben-Or 1983, Protocol A, step 2)",
        caught_as: &[Violation::Consensus, Violation::ClusterInvariant],
    }],
    explorable: &[catalog::Setting { name: "inputs", values: &["\"split\"", "\"random\"", "\"ones\""] }],
    retries: 0,
};

/// No proposal of a round carried a value, so the node flipped its coin:
/// the step FLP says a deterministic protocol cannot take.
pub const COIN_FLIPPED: Sometimes =
    Sometimes { name: "coin_flipped", what: "a node saw only '?' proposals and flipped its coin" };

/// A node saw some but fewer than f + 1 proposals of a value and adopted it
/// without deciding: the case Agreement rests on.
pub const VALUE_ADOPTED: Sometimes = Sometimes {
    name: "value_adopted",
    what: "a node saw fewer than f + 1 proposals of a value, adopted it as its estimate and went on",
};

/// A node decided by counting proposals in a round after the first.
pub const LATE_DECISION: Sometimes =
    Sometimes { name: "late_decision", what: "a node decided by its own count in round 2 or later" };

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Decide on `f` proposals of a value instead of `f + 1`.
    DecideOnFProposals,
}

/// Where each node's input bit comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inputs {
    /// Node `i` starts every instance with `i mod 2`: as evenly split as
    /// `n` allows.
    Split,
    /// Each node draws its bit for each instance from its seeded random
    /// source.
    Random,
    /// Every node starts with 0.
    Zeros,
    /// Every node starts with 1.
    Ones,
    /// Node `i` starts with the `i`-th character of the string (`0` or `1`).
    Bits(String),
}

/// Settings of a Ben-Or node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub inputs: Inputs,
    /// How often an undecided node resends its current message.
    pub retransmit_interval: Micros,
    /// Most client questions waiting at one node.
    pub waiters_max: usize,
    /// Most undecided instances a client may start at one node (a node
    /// still joins every instance it hears of, so that each decides).
    pub running_max: usize,
    /// How often a node compares decisions with a random peer.
    pub sync_interval: Micros,
    /// Most instance ids listed in one sync, most decisions in one answer.
    pub sync_batch_max: usize,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            inputs: Inputs::Split,
            retransmit_interval: Micros::from_millis(20),
            waiters_max: 256,
            running_max: 64,
            sync_interval: Micros::from_millis(100),
            sync_batch_max: 256,
            bug: None,
        }
    }
}

impl Config {
    /// Check the settings against a cluster of `nodes` nodes.
    pub fn validate(&self, nodes: usize) -> Result<(), ConfigError> {
        let positive = [
            ("retransmit_interval", self.retransmit_interval.0),
            ("waiters_max", self.waiters_max as u64),
            ("running_max", self.running_max as u64),
            ("sync_interval", self.sync_interval.0),
            ("sync_batch_max", self.sync_batch_max as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(format!("{name} must be positive")));
        }
        if let Inputs::Bits(bits) = &self.inputs {
            if bits.len() != nodes || bits.chars().any(|c| c != '0' && c != '1') {
                return Err(ConfigError::new(format!(
                    "inputs.bits must be {nodes} characters, each 0 or 1 (got '{bits}')"
                )));
            }
        }
        Ok(())
    }
}

/// A phase-2 message's content: a value, or `?` (Ben-Or's `(2, r, ?)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proposal {
    Value(u8),
    Unsure,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Phase 1, Ben-Or's `(1, r, x)`: "my estimate in `round` is `value`".
    /// `answer`: sent to a node behind, in answer to its message (never
    /// answered in turn, or two nodes past a phase would answer each other
    /// forever).
    Report { instance: Instance, round: u64, value: u8, answer: bool },
    /// Phase 2, `(2, r, v, D)` or `(2, r, ?)`; `answer` as for reports.
    Proposal { instance: Instance, round: u64, proposal: Proposal, answer: bool },
    /// "I decided `value`" (the termination gadget of the crash model).
    Decided { instance: Instance, value: u8 },
    /// Anti-entropy: "of the instances in `[from, to)` (`to` None: no upper
    /// bound) I decided exactly `known`": the peer answers with the
    /// decisions the sender lacks, so a node that never heard of an
    /// instance (it was down or cut off while the others decided it) learns
    /// it too.
    Sync { from: Instance, to: Option<Instance>, known: Vec<Instance> },
}

impl Msg {
    fn instance(&self) -> Option<Instance> {
        match *self {
            Msg::Report { instance, .. } | Msg::Proposal { instance, .. } | Msg::Decided { instance, .. } => {
                Some(instance)
            }
            Msg::Sync { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The estimate this node reports in `round` (round 1: its input).
    Estimate { instance: Instance, round: u64, value: u8 },
    /// What it proposes in `round`.
    Proposed { instance: Instance, round: u64, proposal: Proposal },
    /// It decided `value`.
    Decided { instance: Instance, value: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Resend the instance's current message to every peer.
    Retransmit(Instance),
    /// Compare decisions with a random peer.
    Sync,
}

/// What this node said in one round (kept to answer nodes behind it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Said {
    estimate: u8,
    proposal: Option<Proposal>,
}

/// What this node heard in one round it has not finished.
#[derive(Clone, Debug, Default)]
struct Heard {
    reports: BTreeMap<NodeId, u8>,
    proposals: BTreeMap<NodeId, Proposal>,
}

/// The phase of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Report,
    Proposal,
}

/// This node's part in one undecided instance.
#[derive(Clone, Debug, Default)]
struct Run {
    /// Per round `1..=current`, what this node said (forced before sent).
    said: BTreeMap<u64, Said>,
    /// Per unfinished round (the current one and later ones), what it heard.
    heard: BTreeMap<u64, Heard>,
}

impl Run {
    fn round(&self) -> u64 {
        *self.said.keys().next_back().expect("a started run is in a round")
    }

    fn phase(&self) -> Phase {
        match self.said[&self.round()].proposal {
            None => Phase::Report,
            Some(_) => Phase::Proposal,
        }
    }

    /// How many messages of the current phase it heard.
    fn heard_in_phase(&self) -> usize {
        let heard = self.heard.get(&self.round());
        match self.phase() {
            Phase::Report => heard.map_or(0, |h| h.reports.len()),
            Phase::Proposal => heard.map_or(0, |h| h.proposals.len()),
        }
    }

    /// The message of the current phase.
    fn current_message(&self, instance: Instance) -> Msg {
        let round = self.round();
        match self.said[&round] {
            Said { estimate, proposal: None } => {
                Msg::Report { instance, round, value: estimate, answer: false }
            }
            Said { proposal: Some(proposal), .. } => {
                Msg::Proposal { instance, round, proposal, answer: false }
            }
        }
    }
}

/// One Ben-Or node, taking part in every instance.
#[derive(Clone, Debug)]
pub struct BenOr {
    cluster: Cluster,
    config: Config,
    /// Crashes tolerated: the largest `f < n/2`.
    faults_max: usize,
    /// Undecided instances.
    runs: BTreeMap<Instance, Run>,
    /// Decided instances. Invariant: disjoint from `runs`.
    decided: BTreeMap<Instance, u8>,
    /// Client questions waiting for an instance's decision.
    waiters: BTreeMap<Instance, Vec<RequestId>>,
    /// Where the next anti-entropy comparison starts.
    sync_cursor: Instance,
}

impl BenOr {
    /// The value this node decided for `instance`, if it has.
    pub fn decided(&self, instance: Instance) -> Option<u8> {
        self.decided.get(&instance).copied()
    }

    /// The round this node is in for undecided `instance`.
    pub fn round(&self, instance: Instance) -> Option<u64> {
        self.runs.get(&instance).map(Run::round)
    }

    fn n(&self) -> usize {
        self.cluster.nodes.len()
    }

    /// How many messages of a phase a node waits for: `n - f`.
    fn wait_for(&self) -> usize {
        self.n() - self.faults_max
    }

    fn input(&self, out: &mut Out<'_, Self>) -> u8 {
        let id = self.cluster.id.0 as usize;
        match &self.config.inputs {
            Inputs::Split => (id % 2) as u8,
            Inputs::Random => out.rng().range(0, 2) as u8,
            Inputs::Zeros => 0,
            Inputs::Ones => 1,
            Inputs::Bits(bits) => u8::from(bits.as_bytes()[id] == b'1'),
        }
    }

    /// Rebuild what this node said and decided from its log.
    fn recover(&mut self, durable: &[Record]) {
        for record in durable {
            match *record {
                Record::Estimate { instance, round, value } => {
                    let run = self.runs.entry(instance).or_default();
                    assert_eq!(round, run.said.len() as u64 + 1, "rounds are logged in order");
                    run.said.insert(round, Said { estimate: value, proposal: None });
                }
                Record::Proposed { instance, round, proposal } => {
                    let run = self.runs.get_mut(&instance).expect("a proposal follows its estimate");
                    let said = run.said.get_mut(&round).expect("a proposal follows its round's estimate");
                    assert!(said.proposal.is_none(), "one proposal per round");
                    said.proposal = Some(proposal);
                }
                Record::Decided { instance, value } => {
                    self.runs.remove(&instance);
                    self.decided.insert(instance, value);
                }
            }
        }
    }

    fn broadcast(&self, msg: &Msg, out: &mut Out<'_, Self>) {
        for peer in self.cluster.peers() {
            out.send(peer, msg.clone());
        }
    }

    fn retransmit(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let Some(run) = self.runs.get(&instance) else { return };
        self.broadcast(&run.current_message(instance), out);
        out.set_timer(Timer::Retransmit(instance), self.config.retransmit_interval);
    }

    fn handle_query(&mut self, id: RequestId, instance: Instance, out: &mut Out<'_, Self>) {
        if let Some(value) = self.decided(instance) {
            out.reply(id, DecisionResponse::Decided(u64::from(value)));
            return;
        }
        let waiting: usize = self.waiters.values().map(Vec::len).sum();
        let starts = !self.runs.contains_key(&instance);
        if waiting >= self.config.waiters_max || (starts && self.runs.len() >= self.config.running_max) {
            out.reply(
                id,
                DecisionResponse::Rejected { reason: "too many questions waiting".into(), hint: None },
            );
            return;
        }
        self.waiters.entry(instance).or_default().push(id);
        if starts {
            self.join(instance, out);
        }
    }

    /// A message of an instance: answered with the decision if there is
    /// one; else the instance is joined if need be, and the message
    /// handled.
    fn handle_instance_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        let instance = msg.instance().expect("an instance's message");
        if let Some(value) = self.decided(instance) {
            if !matches!(msg, Msg::Decided { .. }) {
                out.send(from, Msg::Decided { instance, value });
            }
            return;
        }
        if !self.runs.contains_key(&instance) && !matches!(msg, Msg::Decided { .. }) {
            self.join(instance, out);
        }
        match msg {
            Msg::Report { round, value, answer, .. } => {
                self.handle_report(from, instance, round, value, answer, out)
            }
            Msg::Proposal { round, proposal, answer, .. } => {
                self.handle_proposal(from, instance, round, proposal, answer, out)
            }
            Msg::Decided { value, .. } => self.decide(instance, value, out),
            Msg::Sync { .. } => unreachable!("dispatched apart"),
        }
    }

    /// Tell a random peer which instances this node decided, a range at a
    /// time (the cursor walks them and wraps).
    fn sync_timer(&mut self, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Sync, self.config.sync_interval);
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        let Some(&peer) = out.rng().pick(&peers) else { return };
        let batch = self.config.sync_batch_max;
        let known: Vec<Instance> =
            self.decided.range(self.sync_cursor..).map(|(i, _)| *i).take(batch).collect();
        let to = (known.len() == batch).then(|| known[batch - 1] + 1);
        out.send(peer, Msg::Sync { from: self.sync_cursor, to, known });
        self.sync_cursor = to.unwrap_or(0);
    }

    /// Answer a peer's sync with the decisions in its range it lacks.
    fn handle_sync(
        &mut self,
        peer: NodeId,
        from: Instance,
        to: Option<Instance>,
        known: &[Instance],
        out: &mut Out<'_, Self>,
    ) {
        let lacking = self
            .decided
            .range(from..)
            .take_while(|(i, _)| to.is_none_or(|t| **i < t))
            .filter(|(i, _)| known.binary_search(i).is_err())
            .take(self.config.sync_batch_max);
        for (&instance, &value) in lacking {
            out.send(peer, Msg::Decided { instance, value });
        }
    }
}

impl Protocol for BenOr {
    type Msg = Msg;
    type Request = DecisionQuery;
    type Response = DecisionResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate(nodes.len())
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate(cluster.nodes.len()).is_ok(), "drivers validate the config before start");
        let mut node = BenOr {
            cluster: cluster.clone(),
            config: config.clone(),
            faults_max: (cluster.nodes.len() - 1) / 2,
            runs: BTreeMap::new(),
            decided: BTreeMap::new(),
            waiters: BTreeMap::new(),
            sync_cursor: 0,
        };
        node.recover(durable);
        out.set_timer(Timer::Sync, config.sync_interval);
        // A restart tells the checkers its decisions and proposals again (a
        // crash may have fallen between a record and its observation), says
        // again what was last said in each undecided instance (the very same
        // message), and hears its round afresh.
        for (&instance, &value) in &node.decided {
            out.observe(Observation::Decide { instance, value: u64::from(value) });
        }
        let instances: Vec<Instance> = node.runs.keys().copied().collect();
        for instance in instances {
            let input = node.runs[&instance].said[&1].estimate;
            out.observe(Observation::Propose { instance, value: u64::from(input) });
            node.hear_own_messages(instance);
            node.retransmit(instance, out);
        }
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Sync { from: range_from, to, known } => self.handle_sync(from, range_from, to, &known, out),
            msg => self.handle_instance_message(from, msg, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Retransmit(instance) => self.retransmit(instance, out),
            Timer::Sync => self.sync_timer(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: DecisionQuery, out: &mut Out<'_, Self>) {
        self.handle_query(id, request.instance, out);
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .runs
            .iter()
            .map(|(instance, run)| {
                let phase = match run.phase() {
                    Phase::Report => "report",
                    Phase::Proposal => "proposal",
                };
                let x = run.said[&run.round()].estimate;
                format!(
                    "{instance}: round {} {phase} x={x} heard {}/{}",
                    run.round(),
                    run.heard_in_phase(),
                    self.wait_for()
                )
            })
            .collect();
        parts.extend(self.decided.iter().map(|(instance, value)| format!("{instance}: decided {value}")));
        parts.join("; ")
    }

    fn invariants(&self) {
        for (instance, run) in &self.runs {
            assert!(!self.decided.contains_key(instance), "a decided instance keeps no round state");
            self.run_invariants(run);
        }
        for (instance, waiters) in &self.waiters {
            assert!(self.runs.contains_key(instance), "questions wait only on undecided instances");
            assert!(!waiters.is_empty());
        }
        assert!(self.waiters.values().map(Vec::len).sum::<usize>() <= self.config.waiters_max);
        assert!(self.decided.values().all(|v| *v <= 1), "decisions are bits");
    }

    /// Agreement among live nodes, and Claim 1: no two nodes proposed
    /// different values in one round of one instance.
    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        let mut decided: BTreeMap<Instance, (NodeId, u8)> = BTreeMap::new();
        let mut proposed: BTreeMap<(Instance, u64), (NodeId, u8)> = BTreeMap::new();
        for (id, node) in nodes {
            for (instance, value) in &node.decided {
                let (other, seen) = *decided.entry(*instance).or_insert((*id, *value));
                if seen != *value {
                    return Err(format!(
                        "agreement: instance {instance}: {other} decided {seen}, {id} decided {value}"
                    ));
                }
            }
            for (instance, run) in &node.runs {
                for (round, said) in &run.said {
                    let Some(Proposal::Value(value)) = said.proposal else { continue };
                    let (other, seen) = *proposed.entry((*instance, *round)).or_insert((*id, value));
                    if seen != value {
                        return Err(format!(
                            "instance {instance} round {round}: {other} proposed {seen}, {id} proposed {value}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl BenOr {
    fn run_invariants(&self, run: &Run) {
        let round = run.round();
        assert_eq!(run.said.len() as u64, round, "rounds 1..=current were each said");
        for (r, said) in &run.said {
            assert!(said.estimate <= 1, "estimates are bits");
            if *r < round {
                assert!(said.proposal.is_some(), "a finished round had a proposal");
            }
            if let Some(Proposal::Value(v)) = said.proposal {
                assert!(v <= 1, "proposals are bits or '?'");
            }
        }
        for (r, heard) in &run.heard {
            assert!(*r >= round, "finished rounds are forgotten");
            assert!(heard.reports.len() <= self.n() && heard.proposals.len() <= self.n());
            let mut values = heard.proposals.values().filter_map(|p| match p {
                Proposal::Value(v) => Some(*v),
                Proposal::Unsure => None,
            });
            let first = values.next();
            assert!(values.all(|v| Some(v) == first), "round {r}: proposals of both values (Claim 1)");
        }
        assert!(run.heard_in_phase() < self.wait_for(), "a phase with n - f messages is finished");
    }
}
