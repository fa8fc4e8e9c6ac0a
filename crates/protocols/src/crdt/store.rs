//! What a `crdt` replica holds: counters and sets by key, as one lattice
//! (a product of a grow-only map of PN-Counters and an OR-Map of OR-Sets),
//! and, for the CALM demonstration's non-monotone programs, a log of
//! operations applied in the order they arrive.

use std::collections::{BTreeMap, BTreeSet};

use quorum_core::{Key, NodeId};
use serde::{Deserialize, Serialize};

use super::causal::{Causal, Dot, DotMap, DotSet, DotStore};
use super::{Lattice, OrMap, PnCounter};

/// The replicated state: every counter and every set, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    pub counters: BTreeMap<Key, PnCounter>,
    pub sets: OrMap<Key, DotMap<u64, DotSet>>,
}

/// Estimated encoded sizes, the same for every variant: a key, an element
/// or a value 8 bytes; a dot or a version-vector entry 12 (a 4-byte
/// replica id and an 8-byte counter).
const WORD_BYTES: u64 = 8;
const DOT_BYTES: u64 = 12;

impl Lattice for Store {
    fn join(&mut self, other: &Store) {
        self.counters.join(&other.counters);
        self.sets.join(&other.sets);
    }

    fn leq(&self, other: &Store) -> bool {
        self.counters.leq(&other.counters) && self.sets.leq(&other.sets)
    }
}

impl Store {
    pub fn counter(&self, key: Key) -> i64 {
        self.counters.get(&key).map_or(0, PnCounter::value)
    }

    /// The set at `key`, ascending.
    pub fn elements(&self, key: Key) -> Vec<u64> {
        self.sets.store.0.get(&key).map(|set| set.0.keys().copied().collect()).unwrap_or_default()
    }

    /// `node` adds `by` to the counter at `key`; the δ-state.
    pub fn increment(&mut self, node: NodeId, key: Key, by: i64) -> Store {
        let delta = self.counters.entry(key).or_default().add(node, by);
        Store { counters: BTreeMap::from([(key, delta)]), sets: OrMap::default() }
    }

    /// The observed reset: subtract the value this replica sees, so
    /// increments it has not seen survive (a reset that converges; not a
    /// reset to zero everywhere, which needs coordination). `None` at 0.
    pub fn reset(&mut self, node: NodeId, key: Key) -> Option<Store> {
        let value = self.counter(key);
        (value != 0).then(|| self.increment(node, key, -value))
    }

    pub fn add(&mut self, node: NodeId, key: Key, element: u64) -> Store {
        let delta = self.sets.apply(key, |set| set.add_delta(node, element));
        Store { counters: BTreeMap::new(), sets: delta }
    }

    pub fn remove(&mut self, key: Key, element: u64) -> Store {
        let delta = self.sets.apply(key, |set| set.remove_delta(&element));
        Store { counters: BTreeMap::new(), sets: delta }
    }

    /// The negative control's join (`--bug sum-merge`): counters' entries
    /// added instead of maximised. Not idempotent: a state received twice
    /// counts twice, and gossip never stops adding.
    pub fn join_summing(&mut self, other: &Store) {
        for (key, counter) in &other.counters {
            let mine = self.counters.entry(*key).or_default();
            mine.increments.join_by_sum(&counter.increments);
            mine.decrements.join_by_sum(&counter.decrements);
        }
        self.sets.join(&other.sets);
    }

    /// Whether this holds nothing (an empty delta).
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.sets.store.is_bottom() && self.sets.context.entries() == 0
    }

    /// The estimated encoded size in bytes (see `DOT_BYTES`).
    pub fn bytes(&self) -> u64 {
        let counters: u64 = self
            .counters
            .values()
            .map(|c| {
                WORD_BYTES
                    + DOT_BYTES * (c.increments.entries().count() + c.decrements.entries().count()) as u64
            })
            .sum();
        let elements: u64 = self
            .sets
            .store
            .0
            .values()
            .map(|set| {
                WORD_BYTES
                    + set.0.values().map(|dots| WORD_BYTES + DOT_BYTES * dots.len() as u64).sum::<u64>()
            })
            .sum();
        counters + elements + DOT_BYTES * self.sets.context.entries() as u64
    }

    /// Words that equal stores (and only they, barring collisions) share:
    /// every counter's entries, every set's elements with their live dots,
    /// and the sets' causal context.
    fn digest_words(&self, words: &mut Vec<u64>) {
        for (key, counter) in &self.counters {
            words.extend([1, *key]);
            for half in [&counter.increments, &counter.decrements] {
                words.push(u64::MAX);
                words.extend(half.entries().flat_map(|(node, value)| [u64::from(node.0), value]));
            }
        }
        for (key, set) in &self.sets.store.0 {
            words.extend([2, *key]);
            for (element, dots) in &set.0 {
                words.push(*element);
                words.extend(dots.iter().flat_map(|d| [u64::from(d.node.0), d.counter]));
            }
        }
        let (vector, cloud) = self.sets.context.parts();
        words.push(5);
        words.extend(vector.flat_map(|(n, v)| [u64::from(n.0), v]));
        words.extend(cloud.flat_map(|d| [u64::from(d.node.0), d.counter]));
    }

    /// Every live dot of the sets is in their causal context.
    pub fn invariants(&self) {
        Causal::invariants(&self.sets);
    }
}

/// An operation of the non-monotone programs, shipped as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NaiveOp {
    Increment {
        key: Key,
        by: i64,
    },
    /// Set the counter to zero where it arrives.
    Reset {
        key: Key,
    },
    Add {
        key: Key,
        element: u64,
    },
    /// Delete the element where it arrives, leaving no trace (no tombstone).
    Remove {
        key: Key,
        element: u64,
    },
}

/// The non-monotone programs of the CALM demonstration: every operation is
/// gossiped in a log that grows by union (itself a G-Set, which
/// converges), and applied to plain counters and sets *in the order it
/// arrives*. Increments and adds commute, so a log of those alone
/// converges; a reset or a remove does not commute with them, and replicas
/// that see the same operations in different orders stay apart forever.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Naive {
    /// Every operation seen, by its dot.
    pub log: BTreeMap<Dot, NaiveOp>,
    counters: BTreeMap<Key, i64>,
    sets: BTreeMap<Key, BTreeSet<u64>>,
}

impl Naive {
    /// `node`'s next dot: one past its latest operation in the log.
    pub fn next_dot(&self, node: NodeId) -> Dot {
        let latest = self.log.keys().filter(|d| d.node == node).map(|d| d.counter).max().unwrap_or(0);
        Dot { node, counter: latest + 1 }
    }

    /// Log `op` under `dot` and apply it, unless it was seen before.
    /// Returns whether it was new.
    pub fn receive(&mut self, dot: Dot, op: NaiveOp) -> bool {
        if self.log.insert(dot, op).is_some() {
            return false;
        }
        match op {
            NaiveOp::Increment { key, by } => *self.counters.entry(key).or_default() += by,
            NaiveOp::Reset { key } => {
                self.counters.insert(key, 0);
            }
            NaiveOp::Add { key, element } => {
                self.sets.entry(key).or_default().insert(element);
            }
            NaiveOp::Remove { key, element } => {
                self.sets.entry(key).or_default().remove(&element);
            }
        }
        true
    }

    /// Receive every operation of `log` not seen yet, in dot order (the
    /// order they arrive in): how many were new.
    pub fn receive_log(&mut self, log: &BTreeMap<Dot, NaiveOp>) -> usize {
        log.iter().filter(|(dot, op)| self.receive(**dot, **op)).count()
    }

    pub fn counter(&self, key: Key) -> Option<i64> {
        self.counters.get(&key).copied()
    }

    pub fn elements(&self, key: Key) -> Option<Vec<u64>> {
        self.sets.get(&key).map(|s| s.iter().copied().collect())
    }

    /// Every key a plain counter or set holds.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.counters.keys().chain(self.sets.keys()).copied()
    }

    /// Estimated bytes of the log on the wire: a dot and an operation each.
    pub fn log_bytes(&self) -> u64 {
        (DOT_BYTES + 3 * WORD_BYTES) * self.log.len() as u64
    }

    fn digest_words(&self, words: &mut Vec<u64>) {
        for (key, value) in &self.counters {
            words.extend([3, *key, *value as u64]);
        }
        for (key, set) in &self.sets {
            words.extend([4, *key]);
            words.extend(set.iter().copied());
        }
    }
}

/// A digest of what a replica answers reads with: the lattice's values
/// and the non-monotone programs' plain counters and sets (not their log,
/// which converges whatever the order).
pub fn digest(store: &Store, naive: &Naive) -> u64 {
    let mut words = Vec::new();
    store.digest_words(&mut words);
    naive.digest_words(&mut words);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    quorum_core::fnv1a(&bytes)
}
