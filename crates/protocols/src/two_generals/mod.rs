//! The two generals (the coordinated attack problem): two generals on two
//! hills must both attack or both stay, and can talk only by messengers who
//! may be captured. No protocol, however many acknowledgements it sends,
//! guarantees that they agree (Akkoyunlu, Ekanadham and Huber 1975; Gray,
//! "Notes on Data Base Operating Systems", 1978, §5.8.3.1, "the generals
//! paradox"; Lynch, *Distributed Algorithms*, 1996, §5.1).
//!
//! Each general has an input (1: I want to attack, 0: I do not) and
//! decides once, at a fixed time. What the problem asks (Lynch §5.1):
//! **Agreement** (both decide alike), **Validity** (if both inputs are 0,
//! nobody attacks; if both are 1 and every message arrives, both attack),
//! **Termination** (both decide). Both variants below meet Validity and
//! Termination; neither can meet Agreement, and the laboratory shows it.
//!
//! ## `acknowledged` (the default): k messages of acknowledgement
//! General A (node 0) sends its input as message 1; each message `i < k`
//! that arrives is acknowledged by message `i + 1`, carrying the sender's
//! input (A sends the odd messages, B the even ones). At dawn each general
//! decides by a fixed rule: attack if both inputs are 1 as far as it knows
//! and every message addressed to it arrived. Why no k is enough (Lynch
//! Theorem 5.1): take the run in which all k messages arrive (both attack)
//! and lose its last message. The general who sent it cannot tell the two
//! runs apart, so it attacks in both; for Agreement the other must attack
//! too. Repeat: lose message k - 1 instead, and so on, down to the run in
//! which message 1 is lost and B heard nothing, where B cannot attack
//! without breaking Validity. Somewhere along that chain one general
//! attacks alone. `quorum model --protocol two-generals --losses 1` finds a
//! loss pattern for every k, and `--chain` prints the chain itself.
//!
//! ## `randomized`: r rounds, disagreement at most 1/r
//! Lynch's RandomAttack (§5.2.2; Varghese and Lynch 1992). Every round
//! each general sends the other its input, its *information level* and,
//! from A, a key A drew uniformly from 1..=r before the first round. A
//! general's level is one more than the highest level it has heard from the
//! other (0 before it has heard anything), so when every message arrives
//! both reach level r, and a lost message leaves the levels at most one
//! apart. After round r a general attacks if it knows the key, its level is
//! at least the key, and both inputs are 1. They disagree only when the key
//! falls exactly between their two levels: with probability at most 1/r,
//! whatever messages the adversary loses, as long as it cannot see the key
//! (Theorem 5.3). The tests measure it against 1/r over seeds, cutting B's
//! messages from a round the adversary draws (README, "Two generals").
//!
//! Files: `mod.rs` (both variants: they share the decision and the record),
//! `tests.rs` (both variants, and the worst adversary over seeds).

use quorum_core::claims::{Sometimes, SystemModel, Violation};
use quorum_core::decision::DecisionResponse;
use quorum_core::proposal::ProposalRequest;
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

use crate::catalog;

/// The catalogue entry (source text, "Two generals").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "two-generals",
    section: "Two generals",
    summary: "coordinated attack over lossy messengers: k acknowledgements, or Lynch's randomized r rounds; \
              no protocol guarantees agreement (the randomized one disagrees with probability ≤ 1/r)",
    model: SystemModel::Lossy,
    always: &[Violation::Panic, Violation::Runaway, Violation::Termination, Violation::Liveness],
    breaks: &[Violation::Consensus],
    sometimes: &[ATTACKED, ALONE],
    workload: catalog::Workload::Proposal,
    variants: &["acknowledged", "randomized"],
    bugs: &[],
    explorable: &[
        catalog::Setting { name: "messages", values: &["1", "2", "4", "8"] },
        catalog::Setting { name: "rounds", values: &["1", "4", "16"] },
    ],
    retries: 0,
};

/// A general attacked.
pub const ATTACKED: Sometimes = Sometimes { name: "attacked", what: "a general decided to attack" };

/// A general attacked without having heard every message meant for it.
pub const ALONE: Sometimes = Sometimes {
    name: "decided_on_partial_knowledge",
    what: "a general decided without every message of the exchange (a messenger was lost)",
};

/// The attack decision and its input value.
const ATTACK: u64 = 1;
const RETREAT: u64 = 0;

/// Which protocol of the family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    #[default]
    Acknowledged,
    Randomized,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub variant: Variant,
    /// `acknowledged`: messages in the exchange (k), 1 to 64.
    pub messages: u32,
    /// `randomized`: rounds (r), 1 to 1,000.
    pub rounds: u32,
    /// `randomized`: the length of a round; messages must arrive within it.
    pub round: Micros,
    /// `acknowledged`: how long after its input a general decides.
    pub dawn: Micros,
    /// Accepted for symmetry with the other protocols; there are no bugs.
    pub bug: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            variant: Variant::Acknowledged,
            messages: 4,
            rounds: 8,
            round: Micros::from_millis(50),
            dawn: Micros::from_millis(1000),
            bug: None,
        }
    }
}

/// A messenger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Message `number` of the acknowledged exchange (1 from A), with the
    /// sender's input.
    Ack { number: u32, input: u64 },
    /// A round of the randomized protocol: the sender's input, its level,
    /// and (from A) the key.
    Round { round: u32, input: u64, level: u32, key: Option<u32> },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// `acknowledged`: decide.
    Dawn,
    /// `randomized`: the end of round `n` (send the next, or decide after r).
    Round(u32),
}

/// What a general makes durable: its input (and A's key), its decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Input { input: u64, key: Option<u32> },
    Decided(u64),
}

/// One general.
#[derive(Clone, Debug)]
pub struct TwoGenerals {
    id: NodeId,
    other: NodeId,
    config: Config,
    input: Option<u64>,
    /// The other general's input, once a message told it.
    heard_input: Option<u64>,
    /// `acknowledged`: the highest message number received, and sent.
    received: u32,
    sent: u32,
    /// `randomized`: A's key, once known (A draws it).
    key: Option<u32>,
    /// `randomized`: this general's information level, and the highest the
    /// other reported.
    level: u32,
    heard_level: Option<u32>,
    /// `randomized`: the highest level heard in messages of a round this
    /// general has not reached yet (the other's timer ran ahead); they
    /// count when this general's round catches up, as in lock-step rounds.
    early_level: Option<u32>,
    /// `randomized`: the rounds this general has sent.
    round: u32,
    decided: Option<u64>,
    waiting: Vec<RequestId>,
}

impl TwoGenerals {
    fn is_a(&self) -> bool {
        self.id.0 == 0
    }

    /// The number of the last message addressed to this general (0: none).
    fn last_addressed(&self) -> u32 {
        let k = self.config.messages;
        let mine = |n: u32| n.is_multiple_of(2) == self.is_a();
        (1..=k).rev().find(|&n| mine(n)).unwrap_or(0)
    }

    fn adopt(&mut self, input: u64, key: Option<u32>, out: &mut Out<'_, Self>) {
        self.input = Some(input);
        self.key = key;
        out.persist(Record::Input { input, key });
        // Validity as Lynch states it for this problem: staying is always
        // allowed, attacking only if a general wanted to. So both values
        // are on the table for the checker: 0 always, 1 with a willing
        // input (it then flags an attack nobody wanted).
        out.observe(Observation::Propose { instance: 0, value: RETREAT });
        if input != RETREAT {
            out.observe(Observation::Propose { instance: 0, value: input });
        }
        match self.config.variant {
            Variant::Acknowledged => {
                out.set_timer(Timer::Dawn, self.config.dawn);
                self.acknowledge(out);
            }
            Variant::Randomized => self.next_round(out),
        }
    }

    fn handle_ack(&mut self, number: u32, input: u64, out: &mut Out<'_, Self>) {
        if number != self.sent + 1 || self.decided.is_some() {
            return; // a duplicate, or too late: the general has decided
        }
        self.received = number;
        self.heard_input = Some(input);
        if self.input.is_some() {
            self.acknowledge(out);
        }
    }

    /// Send the next message of the exchange, if it is this general's turn
    /// (A opens with message 1; each later one answers the one received)
    /// and the exchange has one.
    fn acknowledge(&mut self, out: &mut Out<'_, Self>) {
        let Some(input) = self.input else { return };
        let number = self.received + 1;
        let my_turn = if number == 1 { self.is_a() } else { self.received > self.sent };
        if my_turn && number <= self.config.messages {
            self.sent = number;
            out.send(self.other, Msg::Ack { number, input });
        }
    }

    /// What a round's message tells: kept until the round ends.
    fn handle_round(&mut self, round: u32, input: u64, level: u32, key: Option<u32>) {
        if self.decided.is_some() {
            return;
        }
        self.heard_input = Some(input);
        self.key = self.key.or(key);
        let slot = if round <= self.round { &mut self.heard_level } else { &mut self.early_level };
        *slot = Some(slot.map_or(level, |l| l.max(level)));
    }

    /// The end of a round: the level from what the round told (one more
    /// than the highest level heard), then the next round's message, or
    /// after round r the decision.
    fn next_round(&mut self, out: &mut Out<'_, Self>) {
        let Some(input) = self.input else { return };
        if let Some(heard) = self.heard_level {
            self.level = self.level.max(heard + 1);
        }
        if self.round == self.config.rounds {
            self.decide(out);
            return;
        }
        self.round += 1;
        if let Some(early) = self.early_level.take() {
            self.heard_level = Some(self.heard_level.map_or(early, |l| l.max(early)));
        }
        let key = if self.is_a() { self.key } else { None };
        out.send(self.other, Msg::Round { round: self.round, input, level: self.level, key });
        out.set_timer(Timer::Round(self.round), self.config.round);
    }

    /// Attack if the variant's rule allows it, and tell the clients.
    fn decide(&mut self, out: &mut Out<'_, Self>) {
        if self.decided.is_some() {
            return;
        }
        let both_willing = self.input == Some(ATTACK) && self.heard_input.unwrap_or(ATTACK) == ATTACK;
        let (attack, complete) = match self.config.variant {
            Variant::Acknowledged => {
                let complete = self.received >= self.last_addressed();
                let heard = self.heard_input.is_some() || self.last_addressed() == 0;
                (both_willing && heard && complete, complete)
            }
            Variant::Randomized => {
                let complete = self.level >= self.config.rounds;
                let keyed = self.key.is_some_and(|k| self.level >= k);
                (both_willing && self.heard_input.is_some() && keyed, complete)
            }
        };
        let value = if attack { ATTACK } else { RETREAT };
        self.decided = Some(value);
        out.persist(Record::Decided(value));
        out.observe(Observation::Decide { instance: 0, value });
        if attack {
            out.observe(Observation::Reached(ATTACKED.name));
        }
        if !complete {
            out.observe(Observation::Reached(ALONE.name));
        }
        for id in self.waiting.drain(..) {
            out.reply(id, DecisionResponse::Decided(value));
        }
    }
}

impl Protocol for TwoGenerals {
    type Msg = Msg;
    type Request = ProposalRequest;
    type Response = DecisionResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, nodes: &[NodeId]) -> Result<(), ConfigError> {
        if !(1..=64).contains(&config.messages) {
            return Err(ConfigError::new(format!("messages must be 1 to 64, got {}", config.messages)));
        }
        if !(1..=1000).contains(&config.rounds) {
            return Err(ConfigError::new(format!("rounds must be 1 to 1000, got {}", config.rounds)));
        }
        if config.round.as_millis() == 0 || config.dawn.as_millis() == 0 {
            return Err(ConfigError::new("round and dawn must be at least 1 ms"));
        }
        if let Some(bug) = &config.bug {
            return Err(ConfigError::new(format!("two-generals has no --bug variants (got '{bug}')")));
        }
        if nodes.len() != 2 {
            return Err(ConfigError::new(format!("two generals need 2 nodes, got {}", nodes.len())));
        }
        Ok(())
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], out: &mut Out<'_, Self>) -> Self {
        let other = *cluster.nodes.iter().find(|n| **n != cluster.id).expect("validated: two nodes");
        let mut node = TwoGenerals {
            id: cluster.id,
            other,
            config: config.clone(),
            input: None,
            heard_input: None,
            received: 0,
            sent: 0,
            key: None,
            level: 0,
            heard_level: None,
            early_level: None,
            round: 0,
            decided: None,
            waiting: Vec::new(),
        };
        node.recover(durable, out);
        node
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Ack { number, input } => self.handle_ack(number, input, out),
            Msg::Round { round, input, level, key } => self.handle_round(round, input, level, key),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Dawn => self.decide(out),
            Timer::Round(_) => self.next_round(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: ProposalRequest, out: &mut Out<'_, Self>) {
        let ProposalRequest::Propose(input) = request;
        if let Some(value) = self.decided {
            out.reply(id, DecisionResponse::Decided(value));
            return;
        }
        if input > ATTACK {
            out.reply(id, DecisionResponse::Rejected { reason: "an input is 0 or 1".into(), hint: None });
            return;
        }
        self.waiting.push(id);
        if self.input.is_none() {
            let key = (self.is_a() && self.config.variant == Variant::Randomized)
                .then(|| out.rng().range(1, u64::from(self.config.rounds) + 1) as u32);
            self.adopt(input, key, out);
        }
    }

    fn invariants(&self) {
        assert!(self.received <= self.config.messages, "no message beyond the exchange");
        if let Some(k) = self.key {
            assert!((1..=self.config.rounds).contains(&k), "the key is drawn from 1..=r");
        }
    }

    fn describe(&self) -> String {
        let decided = match self.decided {
            Some(ATTACK) => "attacked",
            Some(_) => "stayed",
            None => "undecided",
        };
        match self.config.variant {
            Variant::Acknowledged => {
                format!(
                    "input {:?}, received {} of {}, {decided}",
                    self.input, self.received, self.config.messages
                )
            }
            Variant::Randomized => format!(
                "input {:?}, round {}, level {}, key {:?}, {decided}",
                self.input, self.round, self.level, self.key
            ),
        }
    }
}

impl TwoGenerals {
    /// After a crash: the input (and key) and the decision come back; an
    /// undecided general starts its exchange again (the messages it had
    /// received are gone with its memory, so it decides on less).
    fn recover(&mut self, durable: &[Record], out: &mut Out<'_, Self>) {
        for record in durable {
            match record {
                Record::Input { input, key } => {
                    self.input = Some(*input);
                    self.key = *key;
                }
                Record::Decided(value) => self.decided = Some(*value),
            }
        }
        let Some(input) = self.input.filter(|_| self.decided.is_none()) else { return };
        match self.config.variant {
            Variant::Acknowledged => {
                out.set_timer(Timer::Dawn, self.config.dawn);
                if self.is_a() {
                    self.sent = 1;
                    out.send(self.other, Msg::Ack { number: 1, input });
                }
            }
            Variant::Randomized => self.next_round(out),
        }
    }
}

#[cfg(test)]
mod tests;
