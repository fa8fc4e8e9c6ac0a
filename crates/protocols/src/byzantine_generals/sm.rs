//! SM(m), the signed messages algorithm (Lamport, Shostak, Pease 1982, §4).
//!
//! **A4.** A loyal general's signature cannot be forged, and any alteration
//! of a signed message can be detected; anyone can verify a signature
//! (here `quorum_core::byzantine`'s abstract signatures, which only the
//! signer's own keys make). `v:0:j:k` is value v signed by the commander
//! 0, then that signed message signed by j, then by k.
//!
//! **The algorithm.** Each lieutenant i keeps a set V_i of orders,
//! initially empty. (1) The commander signs and sends his value to every
//! lieutenant. (2A) A lieutenant that receives `v:0` and has no order yet
//! sets V_i = {v} and sends `v:0:i` to every other lieutenant. (2B) A
//! lieutenant that receives `v:0:j_1:...:j_k` with v not in V_i adds v and,
//! if k < m, sends `v:0:j_1:...:j_k:i` to every lieutenant not among the
//! j's. (3) When no more messages will come, it obeys `choice(V_i)`: the
//! one value if V_i has one, else RETREAT (the paper leaves the choice
//! function open; RETREAT is the text's default).
//!
//! **As rounds.** A message with k signatures is sent at the end of round
//! k − 1 and must arrive in round k (A3: a lieutenant knows when no more
//! will come: after round m + 1); a message that arrives in another round,
//! with a signature that does not verify, a signer named twice, a first
//! signer other than the commander or a last signer other than its sender
//! is ignored. A new value is passed on at the end of the round it came
//! in, while it carries at most m signatures. A loyal commander's
//! lieutenants each relay his one value once: (n − 1) + (n − 1)(n − 2)
//! messages, whatever m is.
//!
//! **Correct** for any number of generals with at most m traitors (Theorem
//! 2): a value a loyal lieutenant accepts with k ≤ m signatures it passes
//! on; one with m + 1 signatures bears a loyal signer's, who passed it on.
//! So the loyal end with the same V; and a loyal commander's signature
//! cannot be put on another value, so V = {his order}.

use std::collections::BTreeSet;

use quorum_core::byzantine::{Keys, Signature};
use quorum_core::claims::{Sometimes, SystemModel, Violation};
use quorum_core::{fnv1a, NodeId};
use serde::{Deserialize, Serialize};

use super::{Algorithm, Bug, Exchange, Seal, RETREAT};
use crate::catalog;

/// The catalogue entry of SM(m).
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "sm",
    section: "Byzantine generals",
    summary: "Lamport, Shostak and Pease's signed messages SM(m): IC1 and IC2 among the loyal with any number of \
              generals and at most m traitors; unforgeable signatures (abstract), m + 1 rounds",
    model: SystemModel::Byzantine,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[TWO_ORDERS],
    workload: catalog::Workload::Decision,
    variants: &[],
    bugs: &[catalog::Bug {
        name: "skip-verification",
        what: "lieutenants accept a signed chain without verifying its signatures, so a traitor can put a loyal \
               commander's name to an order he never gave (Lamport, Shostak, Pease 1982, §4, A4)",
        caught_as: &[Violation::Ic2, Violation::Ic1, Violation::Consensus],
    }],
    explorable: &[catalog::Setting { name: "commanders", values: &["\"one\"", "\"all\""] }],
    retries: 0,
};

/// A lieutenant held two validly signed orders of one commander: the
/// commander was a traitor, and the signatures proved it.
pub const TWO_ORDERS: Sometimes = Sometimes {
    name: "two_signed_orders",
    what: "a lieutenant received two different orders under the commander's signature (choice(V) = RETREAT)",
};

/// `value` signed by each general of `chain` in turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub value: u64,
    pub chain: Vec<Signature>,
}

/// What the `k`-th signer signs: the instance, the value, and the signers
/// before it and itself.
pub fn content(instance: u64, value: u64, signers: &[NodeId]) -> u64 {
    let mut bytes = Vec::with_capacity(16 + 4 * signers.len());
    bytes.extend_from_slice(&instance.to_le_bytes());
    bytes.extend_from_slice(&value.to_le_bytes());
    for s in signers {
        bytes.extend_from_slice(&s.0.to_le_bytes());
    }
    fnv1a(&bytes)
}

/// One lieutenant's orders for one commander.
#[derive(Clone, Debug, Default)]
pub struct Sm {
    /// V_i: the values received under valid signatures.
    orders: BTreeSet<u64>,
    /// Accepted this round, to pass on at its end: (value, chain).
    pending: Vec<Signed>,
}

impl Sm {
    fn signers(chain: &[Signature]) -> Vec<NodeId> {
        chain.iter().map(|s| s.signer).collect()
    }

    /// Whether `body` is a valid k-signature message for round `round`.
    fn valid(exchange: &Exchange<'_>, round: u32, from: NodeId, body: &Signed, seal: &dyn Seal) -> bool {
        let signers = Self::signers(&body.chain);
        let mut distinct = signers.clone();
        distinct.sort();
        distinct.dedup();
        let shape = body.chain.len() == round as usize
            && body.chain.len() <= exchange.m as usize + 1
            && signers.first() == Some(&exchange.commander)
            && signers.last() == Some(&from)
            && distinct.len() == signers.len()
            && !signers.contains(&exchange.me)
            && body.value <= 1;
        if !shape || exchange.bug == Some(Bug::SkipVerification) {
            return shape;
        }
        (0..body.chain.len()).all(|k| {
            let signed = content(exchange.instance, body.value, &signers[..=k]);
            seal.verify(&body.chain[k], signed)
        })
    }

    /// The number of messages SM(m) sends for a loyal commander's order
    /// among `n` generals (m ≥ 1): each lieutenant relays it once.
    pub fn messages(n: u64, m: u32) -> u64 {
        let first = n.saturating_sub(1);
        if m == 0 {
            first
        } else {
            first + first * n.saturating_sub(2)
        }
    }
}

impl Algorithm for Sm {
    type Body = Signed;
    const NAME: &'static str = "SM";
    const BUGS: &'static [Bug] = &[Bug::SkipVerification];

    fn new(_exchange: &Exchange<'_>) -> Sm {
        Sm::default()
    }

    fn command(&mut self, exchange: &Exchange<'_>, order: u64, seal: &dyn Seal) -> Vec<(NodeId, Signed)> {
        let me = exchange.me;
        let signed =
            Signed { value: order, chain: vec![seal.sign(content(exchange.instance, order, &[me]))] };
        exchange.generals.iter().filter(|g| **g != me).map(|&g| (g, signed.clone())).collect()
    }

    fn hear(&mut self, exchange: &Exchange<'_>, round: u32, from: NodeId, body: Signed, seal: &dyn Seal) {
        if !Self::valid(exchange, round, from, &body, seal) || self.orders.contains(&body.value) {
            return;
        }
        self.orders.insert(body.value);
        if body.chain.len() <= exchange.m as usize {
            self.pending.push(body);
        }
    }

    fn relay(&mut self, exchange: &Exchange<'_>, _round: u32, seal: &dyn Seal) -> Vec<(NodeId, Signed)> {
        let me = exchange.me;
        let mut sends = Vec::new();
        for Signed { value, chain } in std::mem::take(&mut self.pending) {
            let mut signers = Self::signers(&chain);
            signers.push(me);
            let mut chain = chain;
            chain.push(seal.sign(content(exchange.instance, value, &signers)));
            for &g in exchange.generals.iter().filter(|g| !signers.contains(g)) {
                sends.push((g, Signed { value, chain: chain.clone() }));
            }
        }
        sends
    }

    /// `choice(V)`: the one order, or RETREAT.
    fn obey(&self, _exchange: &Exchange<'_>) -> u64 {
        match self.orders.len() {
            1 => *self.orders.first().expect("one order"),
            _ => RETREAT,
        }
    }

    fn carried(body: &Signed) -> u64 {
        body.value
    }

    /// A traitor re-signs only his own signature: as commander he signs any
    /// order he likes; as a relay he can change the value, but the
    /// signatures before his then no longer verify.
    fn forge(instance: u64, body: &Signed, value: u64, keys: &Keys) -> Option<Signed> {
        let mut chain = body.chain.clone();
        let mine = chain.pop().filter(|s| s.signer == keys.node())?;
        let mut signers = Self::signers(&chain);
        signers.push(mine.signer);
        chain.push(keys.sign(content(instance, value, &signers)));
        Some(Signed { value, chain })
    }

    fn reached(&self) -> Option<&'static str> {
        (self.orders.len() > 1).then_some(TWO_ORDERS.name)
    }

    fn traitors_max(m: u32, nodes: usize) -> usize {
        (m as usize).min(nodes.saturating_sub(2))
    }

    fn invariants(&self, exchange: &Exchange<'_>) {
        assert!(self.orders.len() <= 2, "orders are ATTACK or RETREAT");
        for p in &self.pending {
            assert!(
                p.chain.len() <= exchange.m as usize,
                "only chains of at most m signatures are passed on"
            );
        }
    }
}
