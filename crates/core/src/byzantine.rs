//! The adversary: what a Byzantine (traitorous) node does with the messages
//! its protocol asks it to send, and the abstract signatures that limit it.
//!
//! A traitor runs its protocol like any node (so it knows what a loyal node
//! would say, which is what a clever liar needs), but every message it
//! sends passes through a [`Strategy`] first: dropped (`silent`), replaced
//! by an old message it sent or heard (`replay`), or rewritten to carry
//! another value (`lie`: the opposite of the truth; `equivocate`: the value
//! a [`Plan`] assigns to each receiver, so different peers hear different
//! things, as the source text's ninth general tells each side what it wants
//! to hear). Traitors that `collude` share one plan: every traitor tells a
//! given loyal node the same story. Tactics compose (`lie+replay`), and
//! every choice comes from a seeded [`Rng`]: same seed, same treachery.
//!
//! What a value *is* belongs to the protocol: [`Protocol::carried`] reads
//! the value a message carries (an order, a vote, a digest) and
//! [`Protocol::forge`] rewrites it, as far as its sender can. Oral messages
//! (Lamport, Shostak, Pease 1982, §3) can say anything. Signed messages
//! (§4) cannot: a [`Signature`] is made only through the signer's own
//! [`Keys`] (which the driver holds and lends to a node's steps through
//! [`Out::sign`](crate::Out::sign)), and anyone checks one with
//! [`Out::verify`](crate::Out::verify). A traitor may forward a signed
//! message or sign a lie of its own, but a value under another node's
//! signature it can only change into a message that fails verification.
//! These signatures are unforgeable by construction of the API, not by
//! cryptography: the driver mixes a secret the protocol never sees (the
//! server, should it ever run a Byzantine protocol, would use real keys).
//!
//! The driver knows which nodes are traitors; the checkers judge only the
//! loyal ones (a traitor's decisions are worth nothing).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{NodeId, Protocol, Rng};

/// An abstract signature: `signer`'s mark on a content digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signature {
    pub signer: NodeId,
    /// The mark: a keyed digest only `signer`'s keys compute.
    pub tag: u64,
}

/// A node's signing keys, held by the driver. `sign` signs as `node` only;
/// `verify` checks anyone's signature (the public half everyone knows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The run's secret, from which each node's key is derived.
    secret: u64,
    node: NodeId,
}

impl Keys {
    /// `node`'s keys in a run whose secret is `secret` (the driver's, never
    /// a protocol's).
    pub fn new(secret: u64, node: NodeId) -> Keys {
        Keys { secret, node }
    }

    /// Whose keys these are.
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn mark(&self, signer: NodeId, content: u64) -> u64 {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&self.secret.to_le_bytes());
        bytes[8..12].copy_from_slice(&signer.0.to_le_bytes());
        bytes[12..].copy_from_slice(&content.to_le_bytes());
        crate::fnv1a(&bytes)
    }

    /// Sign `content` (a digest of what is signed) as this node.
    pub fn sign(&self, content: u64) -> Signature {
        Signature { signer: self.node, tag: self.mark(self.node, content) }
    }

    /// Whether `signature` is its signer's mark on `content`.
    pub fn verify(&self, signature: &Signature, content: u64) -> bool {
        signature.tag == self.mark(signature.signer, content)
    }
}

/// One way a traitor bends a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tactic {
    /// Send nothing at all (a traitor that plays dead).
    Silent,
    /// Say the opposite of what a loyal node would (value `v` becomes
    /// `v ^ 1`).
    Lie,
    /// Tell each receiver the value the plan assigns to it.
    Equivocate,
    /// Half the time, send an old message (one it sent or heard) instead.
    Replay,
    /// Share the plan with the other traitors (with `equivocate`: all of
    /// them tell a given node the same value).
    Collude,
}

impl Tactic {
    pub const ALL: [Tactic; 5] =
        [Tactic::Silent, Tactic::Lie, Tactic::Equivocate, Tactic::Replay, Tactic::Collude];

    pub fn name(self) -> &'static str {
        match self {
            Tactic::Silent => "silent",
            Tactic::Lie => "lie",
            Tactic::Equivocate => "equivocate",
            Tactic::Replay => "replay",
            Tactic::Collude => "collude",
        }
    }
}

/// A traitor's strategy: tactics composed (text form `lie+replay`), and
/// optionally the plan's sides fixed (`equivocate@0110`: receiver `i` hears
/// the `i`-th bit) instead of drawn from the seed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    pub tactics: Vec<Tactic>,
    /// Fixed sides: bit `i` is what receiver `i` is told by `equivocate`.
    pub sides: Option<Vec<u8>>,
}

impl Strategy {
    pub fn has(&self, tactic: Tactic) -> bool {
        self.tactics.contains(&tactic)
    }

    /// The strategies a swarm seed draws from (every tactic alone, and the
    /// pairs that mean something together).
    pub fn drawable() -> Vec<Strategy> {
        let of = |tactics: &[Tactic]| Strategy { tactics: tactics.to_vec(), sides: None };
        vec![
            of(&[Tactic::Silent]),
            of(&[Tactic::Lie]),
            of(&[Tactic::Equivocate]),
            of(&[Tactic::Equivocate, Tactic::Collude]),
            of(&[Tactic::Replay]),
            of(&[Tactic::Lie, Tactic::Replay]),
            of(&[Tactic::Equivocate, Tactic::Replay, Tactic::Collude]),
        ]
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.tactics.iter().map(|t| t.name()).collect();
        f.write_str(&names.join("+"))?;
        if let Some(sides) = &self.sides {
            let bits: String = sides.iter().map(|b| if *b == 0 { '0' } else { '1' }).collect();
            write!(f, "@{bits}")?;
        }
        Ok(())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Strategy, String> {
        let (names, sides) = match s.split_once('@') {
            Some((names, bits)) => {
                if bits.is_empty() || bits.chars().any(|c| c != '0' && c != '1') {
                    return Err(format!("the sides after '@' must be bits, one per node (got '{bits}')"));
                }
                (names, Some(bits.bytes().map(|b| b - b'0').collect()))
            }
            None => (s, None),
        };
        let mut tactics = Vec::new();
        for name in names.split('+').map(str::trim) {
            let tactic = Tactic::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| {
                let all: Vec<&str> = Tactic::ALL.iter().map(|t| t.name()).collect();
                format!("unknown tactic '{name}' (expected tactics joined by '+': {})", all.join(", "))
            })?;
            if !tactics.contains(&tactic) {
                tactics.push(tactic);
            }
        }
        tactics.sort();
        Ok(Strategy { tactics, sides })
    }
}

/// Most old messages a traitor keeps to replay.
pub const REPLAY_MEMORY_MAX: usize = 64;

/// The traitors of a run and what they do, applied to each send of a
/// traitor ([`Adversary::tamper`]).
pub struct Adversary<P: Protocol> {
    traitors: Vec<NodeId>,
    strategy: Strategy,
    /// The seed of the plan (sides drawn per receiver, or per traitor and
    /// receiver when the traitors do not collude).
    plan_seed: u64,
    rng: Rng,
    /// Per traitor, messages it sent or heard, newest last.
    memory: Vec<VecDeque<P::Msg>>,
    keys: Vec<Keys>,
}

impl<P: Protocol> Clone for Adversary<P> {
    fn clone(&self) -> Self {
        Adversary {
            traitors: self.traitors.clone(),
            strategy: self.strategy.clone(),
            plan_seed: self.plan_seed,
            rng: self.rng.clone(),
            memory: self.memory.clone(),
            keys: self.keys.clone(),
        }
    }
}

/// What became of one send of a traitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tampered<M> {
    /// Sent as the protocol asked.
    Honest(M),
    /// Sent altered (a lie, an equivocation, a replay).
    Forged(M),
    /// Not sent.
    Withheld,
}

impl<P: Protocol> Adversary<P> {
    /// `traitors` (of `nodes`) follow `strategy`, every choice drawn from
    /// `seed`; `secret` is the run's signing secret.
    pub fn new(traitors: &[NodeId], strategy: Strategy, nodes: u32, seed: u64, secret: u64) -> Adversary<P> {
        Adversary {
            traitors: traitors.to_vec(),
            strategy,
            plan_seed: seed,
            rng: Rng::stream(seed, 1 << 46),
            memory: (0..nodes).map(|_| VecDeque::new()).collect(),
            keys: (0..nodes).map(|n| Keys::new(secret, NodeId(n))).collect(),
        }
    }

    pub fn is_traitor(&self, node: NodeId) -> bool {
        self.traitors.contains(&node)
    }

    pub fn traitors(&self) -> &[NodeId] {
        &self.traitors
    }

    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// The value the plan tells `to` when `from` equivocates.
    pub fn side(&self, from: NodeId, to: NodeId) -> u64 {
        if let Some(sides) = &self.strategy.sides {
            return u64::from(sides.get(to.0 as usize).copied().unwrap_or(0));
        }
        let teller = if self.strategy.has(Tactic::Collude) { u32::MAX } else { from.0 };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.plan_seed.to_le_bytes());
        bytes[8..12].copy_from_slice(&teller.to_le_bytes());
        bytes[12..].copy_from_slice(&to.0.to_le_bytes());
        crate::fnv1a(&bytes) & 1
    }

    /// A traitor heard `msg`: remember it for replays.
    pub fn heard(&mut self, traitor: NodeId, msg: &P::Msg) {
        if self.strategy.has(Tactic::Replay) && self.is_traitor(traitor) {
            remember(&mut self.memory[traitor.0 as usize], msg.clone());
        }
    }

    /// What traitor `from` sends to `to` instead of `msg`.
    pub fn tamper(&mut self, from: NodeId, to: NodeId, msg: P::Msg) -> Tampered<P::Msg> {
        debug_assert!(self.is_traitor(from), "only traitors' sends are tampered with");
        if self.strategy.has(Tactic::Silent) {
            return Tampered::Withheld;
        }
        let mut forged = false;
        let mut msg = msg;
        if self.strategy.has(Tactic::Replay) {
            let memory = &mut self.memory[from.0 as usize];
            remember(memory, msg.clone());
            if memory.len() > 1 && self.rng.chance(0.5) {
                let old = self.rng.range(0, memory.len() as u64 - 1) as usize;
                msg = memory[old].clone();
                forged = true;
            }
        }
        let wanted = match P::carried(&msg) {
            Some(v) if self.strategy.has(Tactic::Equivocate) => Some((v, self.side(from, to))),
            Some(v) if self.strategy.has(Tactic::Lie) => Some((v, v ^ 1)),
            _ => None,
        };
        match wanted {
            Some((carried, value)) if carried != value => {
                match P::forge(&msg, value, &self.keys[from.0 as usize]) {
                    Some(lie) => Tampered::Forged(lie),
                    // A value it cannot make a message say (another's signature
                    // on it): the only lie left is silence.
                    None => Tampered::Withheld,
                }
            }
            _ if forged => Tampered::Forged(msg),
            _ => Tampered::Honest(msg),
        }
    }
}

fn remember<M>(memory: &mut VecDeque<M>, msg: M) {
    if memory.len() == REPLAY_MEMORY_MAX {
        memory.pop_front();
    }
    memory.push_back(msg);
}

/// The traitors in text form: `1,3` (node numbers), or `none`.
pub fn parse_traitors(text: &str) -> Result<Vec<NodeId>, String> {
    if text.trim() == "none" || text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut nodes = Vec::new();
    for part in text.split(',') {
        let n: u32 = part.trim().parse().map_err(|_| format!("'{part}' is not a node number"))?;
        if !nodes.contains(&NodeId(n)) {
            nodes.push(NodeId(n));
        }
    }
    nodes.sort();
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_on_what_was_signed_and_only_its_signer_makes_it() {
        let a = Keys::new(7, NodeId(0));
        let b = Keys::new(7, NodeId(1));
        let signed = a.sign(42);
        assert!(b.verify(&signed, 42), "anyone verifies");
        assert!(!b.verify(&signed, 43), "another content fails");
        let forged = Signature { signer: NodeId(0), tag: b.sign(42).tag };
        assert!(!a.verify(&forged, 42), "b's mark does not pass as a's");
        assert!(!Keys::new(8, NodeId(1)).verify(&signed, 42), "another run's keys do not match");
    }

    #[test]
    fn strategies_parse_compose_and_print() {
        let s: Strategy = "replay+lie".parse().unwrap();
        assert_eq!(s.tactics, vec![Tactic::Lie, Tactic::Replay]);
        assert_eq!(s.to_string(), "lie+replay");
        let e: Strategy = "equivocate@0110".parse().unwrap();
        assert_eq!(e.sides, Some(vec![0, 1, 1, 0]));
        assert_eq!(e.to_string(), "equivocate@0110");
        assert!("fib".parse::<Strategy>().is_err());
        assert!("equivocate@01x".parse::<Strategy>().is_err());
        assert_eq!(parse_traitors("3,1").unwrap(), vec![NodeId(1), NodeId(3)]);
        assert!(parse_traitors("a").is_err());
    }
}
