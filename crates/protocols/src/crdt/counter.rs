//! Counters: the G-Counter and the PN-Counter (Shapiro et al. 2011 and
//! their report; as δ-CRDTs, Almeida et al. 2018).

use std::collections::BTreeMap;

use quorum_core::NodeId;
use serde::{Deserialize, Serialize};

use super::Lattice;

/// A grow-only counter: one entry per replica, each incremented only by
/// its own replica. The value is the sum of the entries; the join takes
/// each entry's maximum, so an increment seen twice counts once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    /// Invariant: no zero entries (a zero is the bottom, kept implicit, so
    /// that equal counters are equal maps).
    entries: BTreeMap<NodeId, u64>,
}

impl GCounter {
    /// The counter's value: the sum of every replica's entry.
    pub fn value(&self) -> u64 {
        self.entries.values().sum()
    }

    /// Replica `node`'s own entry.
    pub fn entry(&self, node: NodeId) -> u64 {
        self.entries.get(&node).copied().unwrap_or(0)
    }

    /// Replica `node` adds `by` (≥ 1); returns the δ-state: `node`'s new
    /// entry alone.
    pub fn increment(&mut self, node: NodeId, by: u64) -> GCounter {
        assert!(by > 0, "an increment adds at least one");
        let entry = self.entries.entry(node).or_insert(0);
        *entry += by;
        GCounter { entries: BTreeMap::from([(node, *entry)]) }
    }

    /// Every replica's entry, ascending by replica.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().map(|(n, v)| (*n, *v))
    }

    /// Join as the negative control does it: entries *added* instead of
    /// maximised. Not idempotent (a state gossiped twice counts twice);
    /// only the `sum-merge` bug calls it.
    pub fn join_by_sum(&mut self, other: &GCounter) {
        for (node, value) in &other.entries {
            let entry = self.entries.entry(*node).or_insert(0);
            *entry = entry.wrapping_add(*value);
        }
        self.entries.retain(|_, v| *v > 0);
    }
}

impl Lattice for GCounter {
    fn join(&mut self, other: &GCounter) {
        for (node, value) in &other.entries {
            let entry = self.entries.entry(*node).or_insert(0);
            *entry = (*entry).max(*value);
        }
    }

    fn leq(&self, other: &GCounter) -> bool {
        self.entries.iter().all(|(node, value)| *value <= other.entry(*node))
    }
}

/// A counter that also decrements: two G-Counters, increments `P` and
/// decrements `N`, value `P - N`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    pub increments: GCounter,
    pub decrements: GCounter,
}

impl PnCounter {
    pub fn value(&self) -> i64 {
        self.increments.value() as i64 - self.decrements.value() as i64
    }

    /// Replica `node` adds `by` (non-zero, either sign); returns the δ-state.
    pub fn add(&mut self, node: NodeId, by: i64) -> PnCounter {
        assert!(by != 0, "a counter update changes the value");
        let mut delta = PnCounter::default();
        if by > 0 {
            delta.increments = self.increments.increment(node, by.unsigned_abs());
        } else {
            delta.decrements = self.decrements.increment(node, by.unsigned_abs());
        }
        delta
    }
}

impl Lattice for PnCounter {
    fn join(&mut self, other: &PnCounter) {
        self.increments.join(&other.increments);
        self.decrements.join(&other.decrements);
    }

    fn leq(&self, other: &PnCounter) -> bool {
        self.increments.leq(&other.increments) && self.decrements.leq(&other.decrements)
    }
}
