//! The Byzantine generals (L. Lamport, R. Shostak, M. Pease, "The Byzantine
//! Generals Problem", ACM TOPLAS 4(3), 1982).
//!
//! **The problem (§1).** A commanding general sends an order (ATTACK or
//! RETREAT) to his n − 1 lieutenants; some generals, the commander among
//! them perhaps, are traitors who say anything. The loyal must obey so that
//! **IC1**: all loyal lieutenants obey the same order, and **IC2**: if the
//! commander is loyal, every loyal lieutenant obeys the order he sends.
//! Asking instead that every general agree on every general's vote (the
//! source text's nine generals, four for attack, four for retreat, the
//! ninth telling each side what it wants to hear) reduces to this: each
//! general sends its vote as commander of its own instance, and everyone
//! takes the majority of the orders it obeyed (§1, "interactive
//! consistency"; `commanders: all` here).
//!
//! **Why it is hard (§2).** With oral messages no solution exists for three
//! generals and one traitor: a lieutenant told ATTACK by the commander and
//! "he said RETREAT" by the other lieutenant cannot tell a traitorous
//! commander from a traitorous peer. In general no solution with oral
//! messages tolerates m traitors among 3m or fewer generals.
//!
//! **The model (§3, A1–A3).** Every message sent is delivered correctly, the
//! receiver knows who sent it, and the absence of a message can be
//! detected. Here that is the synchronous system of
//! `SystemModel::Byzantine`: rounds of fixed length (`round`), every node's
//! clock agreeing, and a message that has not arrived by the end of its
//! round is taken to say RETREAT, the default the source text names for
//! missing messages. Instance `k` begins at `round + k · (m + 2) · round`
//! on every node and takes m + 1 rounds.
//!
//! **The two algorithms.**
//! - [`om`]: **OM(m)**, oral messages (§3): the commander sends his value;
//!   each lieutenant acts as the commander of OM(m − 1) to pass on what he
//!   received, and obeys the majority of what he received directly and
//!   what the sub-algorithms told him. Correct with more than 3m generals
//!   and at most m traitors (Theorem 1); m + 1 rounds, and
//!   (n − 1) + (n − 1)(n − 2) + … messages: OM(1) with 4 generals sends
//!   3 + 6 = 9.
//! - [`sm`]: **SM(m)**, signed messages (§4, A4: a loyal general's
//!   signature cannot be forged, and anyone can verify it): the commander
//!   signs his order; a lieutenant that receives a new validly signed value
//!   adds it to his set V, signs it too and passes it on to those who have
//!   not signed it, while it carries at most m signatures; after m + 1
//!   rounds each obeys `choice(V)` (the one value, or RETREAT). Correct for
//!   any number of generals with at most m traitors (Theorem 2).
//!
//! **Traitors.** Nodes do not know who the traitors are; the driver does
//! (`quorum_core::byzantine`): a traitor runs this very protocol, and its
//! sends are bent by the strategy (`carried` and `forge` below tell the
//! adversary where the value sits and how to change it). Nodes never
//! crash and keep nothing durable (the paper's generals do not restart).
//!
//! **Instances, votes and clients.** A node runs instances 0, 1, … on the
//! clock, up to `instances` (no end by default); it keeps the decisions,
//! and forgets an instance's messages once it has decided it. With `commanders: one` instance `k`'s commander
//! is node `k mod n`, who orders his vote; with `all` every general
//! commands his vote in every instance. A general's vote comes from `votes`
//! (drawn per instance from the seed by default). A node decides an
//! instance at the end of its round m + 1: the order it obeyed (a commander
//! obeys his own), or with `all` the majority of the orders it obeyed, ties
//! to RETREAT. A client's `decision K` is answered with that decision.
//! Every node proposes both values (`Propose`), so the consensus checker's
//! Validity is vacuous and IC2 says what validity means here; Agreement and
//! Termination among the loyal are still judged.
//!
//! Files: this one (settings, the clock, clients and decisions, generic
//! over the algorithm), `om.rs` (OM(m)'s tree of relayed values), `sm.rs`
//! (SM(m)'s signed chains), `tests.rs`.

pub mod om;
pub mod sm;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Debug;

use quorum_core::byzantine::Keys;
use quorum_core::decision::{DecisionQuery, DecisionResponse};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The order to retreat, and the default of a missing message.
pub const RETREAT: u64 = 0;
/// The order to attack.
pub const ATTACK: u64 = 1;

/// Where each general's vote (his order, when he commands) comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Votes {
    /// Drawn per instance from the node's seeded random source.
    Random,
    /// Every general wants to attack.
    Attack,
    /// Every general wants to retreat.
    Retreat,
    /// General `i` votes the `i`-th character (`1`: attack, `0`: retreat).
    Bits(String),
}

/// Who commands in an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Commanders {
    /// Instance `k`: node `k mod n` (the paper's problem, one order).
    One,
    /// Every general, each sending his vote (interactive consistency: the
    /// source text's nine generals); a node decides the majority.
    All,
}

/// Deliberately broken variants (`--bug`), each for one algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// OM: relay one round fewer than m + 1 (OM(m − 1) while claiming m
    /// traitors; with m = 1 that is plain majority voting).
    OneRoundShort,
    /// SM: accept a signed chain without verifying its signatures.
    SkipVerification,
}

/// Settings of a general.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The traitors the algorithm is built for: OM(m), SM(m).
    pub m: u32,
    /// The length of a round: every message sent at a round's start must
    /// arrive within it (the synchronous model).
    pub round: Micros,
    pub votes: Votes,
    pub commanders: Commanders,
    /// Instances run, one after another on the clock (default: no end,
    /// as the simulator's clients keep asking).
    pub instances: u64,
    /// Most client questions waiting at one node.
    pub waiters_max: usize,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            m: 1,
            round: Micros::from_millis(10),
            votes: Votes::Random,
            commanders: Commanders::One,
            instances: u64::MAX,
            waiters_max: 256,
            bug: None,
        }
    }
}

/// The most generals and levels of relaying a run may ask for (OM(m)'s
/// messages grow as n^(m+1)).
pub const GENERALS_MAX: usize = 16;
pub const M_MAX: u32 = 3;

impl Config {
    fn validate<A: Algorithm>(&self, nodes: usize) -> Result<(), ConfigError> {
        if self.m > M_MAX {
            return Err(ConfigError::new(format!("m must be at most {M_MAX} (got {})", self.m)));
        }
        if nodes > GENERALS_MAX {
            return Err(ConfigError::new(format!("at most {GENERALS_MAX} generals (got {nodes})")));
        }
        if nodes < self.m as usize + 2 {
            return Err(ConfigError::new(format!(
                "{}({}) needs at least m + 2 = {} generals (got {nodes})",
                A::NAME,
                self.m,
                self.m + 2
            )));
        }
        if self.round.0 == 0 || self.instances == 0 || self.waiters_max == 0 {
            return Err(ConfigError::new("round, instances and waiters_max must be positive"));
        }
        if let Votes::Bits(bits) = &self.votes {
            if bits.len() != nodes || bits.chars().any(|c| c != '0' && c != '1') {
                return Err(ConfigError::new(format!(
                    "votes.bits must be {nodes} characters, each 0 or 1 (got '{bits}')"
                )));
            }
        }
        match self.bug {
            Some(bug) if !A::BUGS.contains(&bug) => {
                Err(ConfigError::new(format!("{bug:?} is not a bug of {}", A::NAME)))
            }
            Some(Bug::OneRoundShort) if self.m == 0 => {
                Err(ConfigError::new("one-round-short needs m ≥ 1 (OM(0) has no round to drop)"))
            }
            _ => Ok(()),
        }
    }

    /// The time between two instances' beginnings: m + 1 rounds and one
    /// spare.
    pub fn period(&self) -> Micros {
        Micros(self.round.0 * (u64::from(self.m) + 2))
    }
}

/// What an algorithm's exchange needs to know when it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange<'a> {
    pub instance: u64,
    pub me: NodeId,
    pub commander: NodeId,
    /// Every general, ascending.
    pub generals: &'a [NodeId],
    pub m: u32,
    pub bug: Option<Bug>,
}

/// A node's signing and checking, lent by the step (`Out::sign`,
/// `Out::verify`).
pub trait Seal {
    fn sign(&self, content: u64) -> quorum_core::byzantine::Signature;
    fn verify(&self, signature: &quorum_core::byzantine::Signature, content: u64) -> bool;
}

impl<P: Protocol> Seal for Out<'_, P> {
    fn sign(&self, content: u64) -> quorum_core::byzantine::Signature {
        Out::sign(self, content)
    }
    fn verify(&self, signature: &quorum_core::byzantine::Signature, content: u64) -> bool {
        Out::verify(self, signature, content)
    }
}

impl Seal for Keys {
    fn sign(&self, content: u64) -> quorum_core::byzantine::Signature {
        Keys::sign(self, content)
    }
    fn verify(&self, signature: &quorum_core::byzantine::Signature, content: u64) -> bool {
        Keys::verify(self, signature, content)
    }
}

/// One commander's order in one instance, as one node takes part in it:
/// OM(m)'s relays, or SM(m)'s signed chains.
pub trait Algorithm: Clone + Debug + Sized {
    /// What one general tells another in the exchange.
    type Body: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    /// `OM` or `SM`.
    const NAME: &'static str;
    /// The bugs it has.
    const BUGS: &'static [Bug];

    fn new(exchange: &Exchange<'_>) -> Self;
    /// Round 1, at the commander: his order to each lieutenant.
    fn command(&mut self, exchange: &Exchange<'_>, order: u64, seal: &dyn Seal) -> Vec<(NodeId, Self::Body)>;
    /// A message of the exchange from `from`, during round `round` (a
    /// message that belongs to another round is ignored: it is late).
    fn hear(&mut self, exchange: &Exchange<'_>, round: u32, from: NodeId, body: Self::Body, seal: &dyn Seal);
    /// The end of round `round` (1..=m): the next round's messages.
    fn relay(&mut self, exchange: &Exchange<'_>, round: u32, seal: &dyn Seal) -> Vec<(NodeId, Self::Body)>;
    /// After round m + 1, at a lieutenant: the order it obeys.
    fn obey(&self, exchange: &Exchange<'_>) -> u64;
    /// The value a message carries (the adversary's hook).
    fn carried(body: &Self::Body) -> u64;
    /// The message (of `instance`) made to carry `value`, as `keys`'
    /// holder can make it.
    fn forge(instance: u64, body: &Self::Body, value: u64, keys: &Keys) -> Option<Self::Body>;
    /// The sometimes property this exchange reached, if any (told when the
    /// node decides).
    fn reached(&self) -> Option<&'static str> {
        None
    }
    /// How many traitors it tolerates among `nodes` generals.
    fn traitors_max(m: u32, nodes: usize) -> usize;
    /// Panic if the exchange's state is broken.
    fn invariants(&self, _exchange: &Exchange<'_>) {}
}

/// A message: one commander's exchange in one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msg<B> {
    pub instance: u64,
    pub commander: NodeId,
    pub body: B,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// The end of round `round` of `instance` (round 0: its beginning).
    Round { instance: u64, round: u32 },
}

/// Nothing is made durable: the paper's generals do not crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {}

/// One instance in progress at this node.
#[derive(Clone, Debug)]
struct Run<A> {
    /// The current round (1..=m+1; 0 before the beginning).
    round: u32,
    /// Per commander, this node's part in his exchange.
    exchanges: BTreeMap<NodeId, A>,
    /// The order this node sent, if it commands in this instance (a
    /// commander obeys his own order).
    own_order: Option<u64>,
}

/// A general running algorithm `A` (see the module documentation).
#[derive(Clone, Debug)]
pub struct Generals<A: Algorithm> {
    cluster: Cluster,
    config: Config,
    runs: BTreeMap<u64, Run<A>>,
    decided: BTreeMap<u64, u64>,
    waiters: BTreeMap<u64, Vec<RequestId>>,
}

/// OM(m) (`--protocol om`).
pub type OralMessages = Generals<om::Om>;
/// SM(m) (`--protocol sm`).
pub type SignedMessages = Generals<sm::Sm>;

impl<A: Algorithm> Generals<A> {
    /// The value this node decided for `instance`, if it has.
    pub fn decided(&self, instance: u64) -> Option<u64> {
        self.decided.get(&instance).copied()
    }

    fn m(&self) -> u32 {
        self.config.m
    }

    /// The commanders of `instance`.
    fn commanders(&self, instance: u64) -> Vec<NodeId> {
        let nodes = &self.cluster.nodes;
        match self.config.commanders {
            Commanders::One => vec![nodes[(instance % nodes.len() as u64) as usize]],
            Commanders::All => nodes.clone(),
        }
    }

    fn exchange(&self, instance: u64, commander: NodeId) -> Exchange<'_> {
        Exchange {
            instance,
            me: self.cluster.id,
            commander,
            generals: &self.cluster.nodes,
            m: self.m(),
            bug: self.config.bug,
        }
    }

    fn vote(&self, out: &mut Out<'_, Self>) -> u64 {
        match &self.config.votes {
            Votes::Random => out.rng().range(0, 2),
            Votes::Attack => ATTACK,
            Votes::Retreat => RETREAT,
            Votes::Bits(bits) => u64::from(bits.as_bytes()[self.cluster.id.0 as usize] == b'1'),
        }
    }

    fn run_mut(&mut self, instance: u64) -> &mut Run<A> {
        let commanders = self.commanders(instance);
        let fresh: Vec<(NodeId, A)> =
            commanders.iter().map(|&c| (c, A::new(&self.exchange(instance, c)))).collect();
        self.runs.entry(instance).or_insert_with(|| Run {
            round: 0,
            exchanges: fresh.into_iter().collect(),
            own_order: None,
        })
    }

    fn send_all(
        &self,
        instance: u64,
        commander: NodeId,
        sends: Vec<(NodeId, A::Body)>,
        out: &mut Out<'_, Self>,
    ) {
        for (to, body) in sends {
            out.send(to, Msg { instance, commander, body });
        }
    }

    /// Round 0 ends: the instance begins; a commander sends his order. The
    /// next instance is armed one period later.
    fn begin(&mut self, instance: u64, out: &mut Out<'_, Self>) {
        if instance.saturating_add(1) < self.config.instances {
            out.set_timer(Timer::Round { instance: instance + 1, round: 0 }, self.config.period());
        }
        out.set_timer(Timer::Round { instance, round: 1 }, self.config.round);
        self.run_mut(instance).round = 1;
        let me = self.cluster.id;
        if !self.commanders(instance).contains(&me) {
            return;
        }
        let order = self.vote(out);
        out.observe(Observation::Order { instance, value: order });
        let exchange = self.exchange(instance, me);
        let mut mine = self.runs[&instance].exchanges[&me].clone();
        let sends = mine.command(&exchange, order, out);
        let run = self.runs.get_mut(&instance).expect("begun");
        run.exchanges.insert(me, mine);
        run.own_order = Some(order);
        self.send_all(instance, me, sends, out);
    }

    /// The end of round `round` of `instance`: relay, or after round m + 1
    /// decide.
    fn end_round(&mut self, instance: u64, round: u32, out: &mut Out<'_, Self>) {
        if round > self.m() {
            self.decide(instance, out);
            return;
        }
        out.set_timer(Timer::Round { instance, round: round + 1 }, self.config.round);
        let commanders = self.commanders(instance);
        self.run_mut(instance).round = round + 1;
        for commander in commanders {
            let exchange = self.exchange(instance, commander);
            let mut part = self.runs[&instance].exchanges[&commander].clone();
            let sends =
                if commander == self.cluster.id { Vec::new() } else { part.relay(&exchange, round, out) };
            self.runs.get_mut(&instance).expect("running").exchanges.insert(commander, part);
            self.send_all(instance, commander, sends, out);
        }
    }

    fn decide(&mut self, instance: u64, out: &mut Out<'_, Self>) {
        let Some(run) = self.runs.remove(&instance) else { return };
        let me = self.cluster.id;
        let mut obeyed = Vec::new();
        for (&commander, part) in &run.exchanges {
            let value = match run.own_order.filter(|_| commander == me) {
                Some(order) => order, // a commander obeys his own order
                None => {
                    if let Some(name) = part.reached() {
                        out.observe(Observation::Reached(name));
                    }
                    let value = part.obey(&self.exchange(instance, commander));
                    out.observe(Observation::Obey { instance, commander, value });
                    value
                }
            };
            obeyed.push(value);
        }
        let value = majority(&obeyed);
        self.decided.insert(instance, value);
        out.observe(Observation::Propose { instance, value: RETREAT });
        out.observe(Observation::Propose { instance, value: ATTACK });
        out.observe(Observation::Decide { instance, value });
        for id in self.waiters.remove(&instance).unwrap_or_default() {
            out.reply(id, DecisionResponse::Decided(value));
        }
    }

    fn handle_message(&mut self, from: NodeId, msg: Msg<A::Body>, out: &mut Out<'_, Self>) {
        let Msg { instance, commander, body } = msg;
        let known = self.commanders(instance).contains(&commander);
        if !known || self.decided.contains_key(&instance) || instance >= self.config.instances {
            return; // a message of no exchange here, or too late: ignored
        }
        let round = self.run_mut(instance).round;
        let exchange = self.exchange(instance, commander);
        let mut part = self.runs[&instance].exchanges[&commander].clone();
        part.hear(&exchange, round, from, body, out);
        self.runs.get_mut(&instance).expect("running").exchanges.insert(commander, part);
    }

    fn handle_query(&mut self, id: RequestId, instance: u64, out: &mut Out<'_, Self>) {
        if let Some(value) = self.decided(instance) {
            out.reply(id, DecisionResponse::Decided(value));
            return;
        }
        let waiting: usize = self.waiters.values().map(Vec::len).sum();
        if instance >= self.config.instances || waiting >= self.config.waiters_max {
            let reason =
                format!("only instances 0..{} run, and {waiting} questions wait", self.config.instances);
            out.reply(id, DecisionResponse::Rejected { reason, hint: None });
            return;
        }
        self.waiters.entry(instance).or_default().push(id);
    }
}

/// Lamport's `majority(v1, ..., vk)`: the value most of them carry, or
/// RETREAT if there is none (a tie).
pub fn majority(values: &[u64]) -> u64 {
    let attack = values.iter().filter(|v| **v == ATTACK).count();
    if 2 * attack > values.len() {
        ATTACK
    } else {
        RETREAT
    }
}

impl<A: Algorithm> Protocol for Generals<A> {
    type Msg = Msg<A::Body>;
    type Request = DecisionQuery;
    type Response = DecisionResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate::<A>(nodes.len())
    }

    fn start(cluster: &Cluster, config: &Config, _durable: &[Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate::<A>(cluster.nodes.len()).is_ok(), "drivers validate before start");
        out.set_timer(Timer::Round { instance: 0, round: 0 }, config.round);
        Generals {
            cluster: cluster.clone(),
            config: config.clone(),
            runs: BTreeMap::new(),
            decided: BTreeMap::new(),
            waiters: BTreeMap::new(),
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Out<'_, Self>) {
        self.handle_message(from, msg, out);
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Round { instance, round: 0 } => self.begin(instance, out),
            Timer::Round { instance, round } => self.end_round(instance, round, out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: DecisionQuery, out: &mut Out<'_, Self>) {
        self.handle_query(id, request.instance, out);
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> =
            self.runs.iter().map(|(i, run)| format!("{i}: round {}", run.round)).collect();
        parts.extend(
            self.decided
                .iter()
                .map(|(i, v)| format!("{i}: {}", if *v == ATTACK { "attack" } else { "retreat" })),
        );
        parts.join("; ")
    }

    fn invariants(&self) {
        for (instance, run) in &self.runs {
            assert!(!self.decided.contains_key(instance), "a decided instance keeps no round state");
            assert!(run.round <= self.m() + 1, "at most m + 1 rounds");
            for (&commander, part) in &run.exchanges {
                part.invariants(&self.exchange(*instance, commander));
            }
            let commands = self.commanders(*instance).contains(&self.cluster.id);
            assert!(run.own_order.is_none() || commands, "only a commander has an order of his own");
        }
        assert!(self.decided.values().all(|v| *v <= ATTACK), "orders are ATTACK or RETREAT");
        for instance in self.waiters.keys() {
            assert!(!self.decided.contains_key(instance), "questions wait only on undecided instances");
        }
    }

    fn carried(msg: &Self::Msg) -> Option<u64> {
        Some(A::carried(&msg.body))
    }

    fn forge(msg: &Self::Msg, value: u64, keys: &Keys) -> Option<Self::Msg> {
        let body = A::forge(msg.instance, &msg.body, value, keys)?;
        Some(Msg { body, ..msg.clone() })
    }

    fn traitors_max(config: &Config, nodes: usize) -> usize {
        A::traitors_max(config.m, nodes)
    }
}
