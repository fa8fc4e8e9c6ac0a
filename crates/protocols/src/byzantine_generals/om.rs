//! OM(m), the oral messages algorithm (Lamport, Shostak, Pease 1982, §3).
//!
//! **OM(0).** The commander sends his value to every lieutenant; each uses
//! the value he receives, or RETREAT if he receives none.
//!
//! **OM(m), m > 0.** (1) The commander sends his value to every lieutenant.
//! (2) For each i, let v_i be the value lieutenant i receives from the
//! commander (RETREAT if none); lieutenant i acts as the commander in
//! OM(m − 1) to send v_i to each of the n − 2 other lieutenants. (3) For
//! each i and each j ≠ i, let v_j be the value lieutenant i received from
//! lieutenant j in step (2) by OM(m − 1) (RETREAT if none); lieutenant i
//! uses `majority(v_1, ..., v_{n−1})`.
//!
//! **As rounds.** The recursion unrolls into m + 1 rounds of messages
//! named by *paths*: `[c]` is the commander's order, `[c, j]` is "j says c
//! said", `[c, j, k]` is "k says j says c said", and so on, a path never
//! naming a general twice. In round r a lieutenant receives the paths of
//! length r ending in their sender; at the end of round r ≤ m it fills in
//! RETREAT for each path it should have received and did not, and passes
//! each value on with itself appended to every general not on the path.
//! After round m + 1 it folds the tree bottom up: a path of length m + 1
//! is its value; a shorter path p is the majority of its own value and of
//! the folds of `p + [k]` for each k not on p (step 3 of each level). The
//! fold of `[c]` is the order obeyed. Messages: (n − 1) in round 1, then
//! (n − 1)(n − 2), (n − 1)(n − 2)(n − 3), ...: OM(1) with n = 4 sends
//! 3 + 6 = 9.
//!
//! **Correct** with more than 3m generals and at most m traitors (Theorem
//! 1, from Lemma 1: a loyal commander's value survives every level because
//! loyal lieutenants outnumber traitors 2 to 1 at each). With 3m or fewer,
//! the traitors win (§2): three generals, one traitor, is the smallest case
//! (`quorum byzantine-table`).

use std::collections::BTreeMap;

use quorum_core::byzantine::Keys;
use quorum_core::claims::{Sometimes, SystemModel, Violation};
use quorum_core::NodeId;
use serde::{Deserialize, Serialize};

use super::{majority, Algorithm, Bug, Exchange, Seal, RETREAT};
use crate::catalog;

/// The catalogue entry of OM(m).
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "om",
    section: "Byzantine generals",
    summary: "Lamport, Shostak and Pease's oral messages OM(m): IC1 and IC2 among the loyal with more than 3m \
              generals and at most m traitors; m + 1 rounds, a missing message read as RETREAT",
    model: SystemModel::Byzantine,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[RELAYED_DEFAULT],
    workload: catalog::Workload::Decision,
    variants: &[],
    bugs: &[catalog::Bug {
        name: "one-round-short",
        what: "lieutenants relay and fold one level fewer than m + 1 (OM(m − 1) while m traitors are tolerated; \
               with m = 1 that is plain majority voting), so a traitorous commander splits them (Lamport, Shostak, \
               Pease 1982, §3, Theorem 1 needs m levels)",
        caught_as: &[Violation::Ic1, Violation::Ic2, Violation::Consensus],
    }],
    explorable: &[catalog::Setting { name: "commanders", values: &["\"one\"", "\"all\""] }],
    retries: 0,
};

/// A lieutenant filled in RETREAT for a message that did not come.
pub const RELAYED_DEFAULT: Sometimes = Sometimes {
    name: "relayed_default",
    what: "a lieutenant took RETREAT for a message that did not come (a silent traitor) and used it",
};

/// "The generals on `path`, last first, say the commander said `value`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub path: Vec<NodeId>,
    pub value: u64,
}

/// One lieutenant's tree of values for one commander's order.
#[derive(Clone, Debug, Default)]
pub struct Om {
    /// What each path told this node (received, or RETREAT filled in at
    /// the end of its round).
    values: BTreeMap<Vec<NodeId>, u64>,
    /// Paths filled in with RETREAT because nothing came.
    defaulted: usize,
}

impl Om {
    /// The deepest path the algorithm uses: m + 1 (m with the bug).
    fn depth(exchange: &Exchange<'_>) -> usize {
        let short = exchange.bug == Some(Bug::OneRoundShort);
        exchange.m as usize + 1 - usize::from(short)
    }

    /// Every path of length `len` this node should receive: from the
    /// commander, through distinct generals, never through this node.
    fn expected(exchange: &Exchange<'_>, len: usize) -> Vec<Vec<NodeId>> {
        let mut paths = vec![vec![exchange.commander]];
        for _ in 1..len {
            let mut longer = Vec::new();
            for path in &paths {
                for &g in exchange.generals {
                    if g != exchange.me && !path.contains(&g) {
                        let mut next = path.clone();
                        next.push(g);
                        longer.push(next);
                    }
                }
            }
            paths = longer;
        }
        paths
    }

    fn value(&self, path: &[NodeId]) -> u64 {
        self.values.get(path).copied().unwrap_or(RETREAT)
    }

    /// Step (3) at every level, bottom up.
    fn fold(&self, exchange: &Exchange<'_>, path: &mut Vec<NodeId>) -> u64 {
        if path.len() >= Self::depth(exchange) {
            return self.value(path);
        }
        let mut values = vec![self.value(path)];
        for &k in exchange.generals {
            if k != exchange.me && !path.contains(&k) {
                path.push(k);
                values.push(self.fold(exchange, path));
                path.pop();
            }
        }
        majority(&values)
    }

    /// The number of messages OM(m) sends for one order among `n`
    /// generals: (n − 1) + (n − 1)(n − 2) + ... over m + 1 rounds.
    pub fn messages(n: u64, m: u32) -> u64 {
        let mut total = 0;
        let mut round = 1;
        for k in 0..=u64::from(m) {
            round *= n.saturating_sub(1 + k);
            total += round;
        }
        total
    }
}

impl Algorithm for Om {
    type Body = Order;
    const NAME: &'static str = "OM";
    const BUGS: &'static [Bug] = &[Bug::OneRoundShort];

    fn new(_exchange: &Exchange<'_>) -> Om {
        Om::default()
    }

    fn command(&mut self, exchange: &Exchange<'_>, order: u64, _seal: &dyn Seal) -> Vec<(NodeId, Order)> {
        let me = exchange.me;
        let lieutenants = exchange.generals.iter().filter(|g| **g != me);
        lieutenants.map(|&g| (g, Order { path: vec![me], value: order })).collect()
    }

    fn hear(&mut self, exchange: &Exchange<'_>, round: u32, from: NodeId, body: Order, _seal: &dyn Seal) {
        let path = &body.path;
        let mut distinct = path.clone();
        distinct.sort();
        distinct.dedup();
        let valid = path.len() == round as usize
            && path.len() <= Self::depth(exchange)
            && path.first() == Some(&exchange.commander)
            && path.last() == Some(&from) // A2: the receiver knows who sent it
            && distinct.len() == path.len()
            && !path.contains(&exchange.me)
            && body.value <= 1;
        if valid {
            self.values.entry(body.path).or_insert(body.value);
        }
    }

    fn relay(&mut self, exchange: &Exchange<'_>, round: u32, _seal: &dyn Seal) -> Vec<(NodeId, Order)> {
        let len = round as usize;
        if len >= Self::depth(exchange) {
            return Vec::new();
        }
        let me = exchange.me;
        let mut sends = Vec::new();
        for path in Self::expected(exchange, len) {
            if !self.values.contains_key(&path) {
                self.defaulted += 1;
                self.values.insert(path.clone(), RETREAT);
            }
            let value = self.values[&path];
            let mut relayed = path.clone();
            relayed.push(me);
            for &g in exchange.generals {
                if g != me && !path.contains(&g) {
                    sends.push((g, Order { path: relayed.clone(), value }));
                }
            }
        }
        sends
    }

    fn obey(&self, exchange: &Exchange<'_>) -> u64 {
        self.fold(exchange, &mut vec![exchange.commander])
    }

    fn carried(body: &Order) -> u64 {
        body.value
    }

    /// Oral messages: a traitor says what he likes.
    fn forge(_instance: u64, body: &Order, value: u64, _keys: &Keys) -> Option<Order> {
        Some(Order { value, ..body.clone() })
    }

    fn reached(&self) -> Option<&'static str> {
        (self.defaulted > 0).then_some(RELAYED_DEFAULT.name)
    }

    fn traitors_max(m: u32, nodes: usize) -> usize {
        (m as usize).min(crate::quorum::byzantine_faults(nodes.max(1)))
    }

    fn invariants(&self, exchange: &Exchange<'_>) {
        for (path, value) in &self.values {
            assert!(*value <= 1, "values are orders");
            assert_eq!(path.first(), Some(&exchange.commander), "every path starts at the commander");
            assert!(!path.contains(&exchange.me), "no path runs through its receiver");
            assert!(path.len() <= Self::depth(exchange), "paths are at most m + 1 long");
        }
    }
}
