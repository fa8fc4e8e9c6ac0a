//! Causal CRDTs: dots, causal contexts and dot stores (Almeida, Shoker and
//! Baquero 2018, "causal δ-CRDTs"), and the types built on them: the
//! OR-Set without tombstones (ORSWOT, add-wins: the paper's `AWORSet`),
//! the multi-value register (`MVRegister`; Shapiro et al.'s MV-Register)
//! and the observed-remove map of causal CRDTs (`ORMap`).
//!
//! Every update is tagged with a fresh **dot** `(replica, n)`: the `n`-th
//! event of that replica. A state is a pair `(store, context)`: the store
//! holds the dots still *live* (an element's adds not yet removed, a
//! register's writes not yet overwritten), the **causal context** every
//! dot the replica has *seen*, live or not. A dot in the context but not
//! in the store was removed, so no tombstone is kept per element: the
//! context is a version vector plus the few dots seen out of order. The
//! join keeps a dot if both sides have it live, or if one side has it live
//! and the other has never seen it:
//!
//! ```text
//! (s, c) ⊔ (s', c') = ((s ∩ s') ∪ (s \ c') ∪ (s' \ c), c ∪ c')
//! ```
//!
//! A concurrent add and remove of one element: the remove covers only the
//! dots it saw, so the add's new dot survives (add wins).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use quorum_core::NodeId;
use serde::{Deserialize, Serialize};

use super::Lattice;

/// The `counter`-th event of replica `node` (counters start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

/// The dots a replica has seen: a version vector (every dot `(n, 1..=v)`)
/// and a cloud of dots seen beyond it (Almeida et al. 2018's "compact
/// causal context").
///
/// Invariant (canonical form, so equal sets of dots are equal values): no
/// cloud dot is covered by the vector, none extends it contiguously, and
/// no vector entry is zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    vector: BTreeMap<NodeId, u64>,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vector.get(&dot.node).is_some_and(|v| dot.counter <= *v) || self.cloud.contains(dot)
    }

    /// The next dot of `node`: one past every dot of `node` seen.
    pub fn next_dot(&self, node: NodeId) -> Dot {
        let in_vector = self.vector.get(&node).copied().unwrap_or(0);
        let in_cloud = self.cloud.iter().filter(|d| d.node == node).map(|d| d.counter).max().unwrap_or(0);
        Dot { node, counter: in_vector.max(in_cloud) + 1 }
    }

    pub fn insert(&mut self, dot: Dot) {
        self.cloud.insert(dot);
        self.compact();
    }

    /// The context holding exactly `dots`.
    pub fn of(dots: impl IntoIterator<Item = Dot>) -> CausalContext {
        let mut context = CausalContext { vector: BTreeMap::new(), cloud: dots.into_iter().collect() };
        context.compact();
        context
    }

    /// Restore the canonical form: move cloud dots that extend the vector
    /// into it, drop the ones it covers.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let entry = self.vector.entry(dot.node).or_insert(0);
            if dot.counter == *entry + 1 {
                *entry += 1;
            } else if dot.counter > *entry {
                self.cloud.insert(dot);
            }
        }
        self.vector.retain(|_, v| *v > 0);
        // One pass in ascending order extends the vector by every
        // contiguous run; a second pass is never needed.
        debug_assert!(self
            .cloud
            .iter()
            .all(|d| d.counter > self.vector.get(&d.node).copied().unwrap_or(0) + 1));
    }

    /// Every dot of the context (the vector's expanded), ascending by node.
    pub fn dots(&self) -> impl Iterator<Item = Dot> + '_ {
        let vector = self.vector.iter().flat_map(|(n, v)| (1..=*v).map(|c| Dot { node: *n, counter: c }));
        vector.chain(self.cloud.iter().copied())
    }

    /// The version vector's entries, ascending by node, then the cloud.
    pub fn parts(&self) -> (impl Iterator<Item = (NodeId, u64)> + '_, impl Iterator<Item = &Dot>) {
        (self.vector.iter().map(|(n, v)| (*n, *v)), self.cloud.iter())
    }

    /// The number of entries kept (vector entries plus cloud dots): the
    /// context's size on the wire.
    pub fn entries(&self) -> usize {
        self.vector.len() + self.cloud.len()
    }
}

impl Lattice for CausalContext {
    fn join(&mut self, other: &CausalContext) {
        for (node, value) in &other.vector {
            let entry = self.vector.entry(*node).or_insert(0);
            *entry = (*entry).max(*value);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    fn leq(&self, other: &CausalContext) -> bool {
        self.vector.iter().all(|(node, v)| {
            other.vector.get(node).copied().unwrap_or(0) >= *v
                || (1..=*v).all(|counter| other.contains(&Dot { node: *node, counter }))
        }) && self.cloud.iter().all(|d| other.contains(d))
    }
}

/// What a causal CRDT's store is: something holding dots, joined under two
/// contexts by the rule in the module doc.
pub trait DotStore: Clone + Debug + PartialEq + Default {
    /// Add every live dot to `into`.
    fn collect_dots(&self, into: &mut BTreeSet<Dot>);
    /// Holds no dot (a map drops such values).
    fn is_bottom(&self) -> bool;
    /// The join of `(self, context)` and `(other, other_context)`'s stores.
    fn join_store(&self, context: &CausalContext, other: &Self, other_context: &CausalContext) -> Self;
}

/// A set of dots: an enable-wins flag, or one OR-Set element's live adds.
pub type DotSet = BTreeSet<Dot>;

impl DotStore for DotSet {
    fn collect_dots(&self, into: &mut BTreeSet<Dot>) {
        into.extend(self.iter().copied());
    }

    fn is_bottom(&self) -> bool {
        self.is_empty()
    }

    fn join_store(&self, context: &CausalContext, other: &DotSet, other_context: &CausalContext) -> DotSet {
        let both = self.intersection(other).copied();
        let mine = self.iter().filter(|d| !other_context.contains(d)).copied();
        let theirs = other.iter().filter(|d| !context.contains(d)).copied();
        both.chain(mine).chain(theirs).collect()
    }
}

/// Dots mapped to values: a multi-value register's concurrent writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DotFun<T: Ord>(pub BTreeMap<Dot, T>);

impl<T: Ord> Default for DotFun<T> {
    fn default() -> DotFun<T> {
        DotFun(BTreeMap::new())
    }
}

impl<T: Ord + Clone + Debug> DotStore for DotFun<T> {
    fn collect_dots(&self, into: &mut BTreeSet<Dot>) {
        into.extend(self.0.keys().copied());
    }

    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    fn join_store(&self, context: &CausalContext, other: &Self, other_context: &CausalContext) -> Self {
        let mut joined = BTreeMap::new();
        for (dot, value) in &self.0 {
            match other.0.get(dot) {
                // One dot, one write: equal values; `min` keeps the join
                // commutative should a caller reuse a dot.
                Some(theirs) => joined.insert(*dot, value.min(theirs).clone()),
                None if !other_context.contains(dot) => joined.insert(*dot, value.clone()),
                None => None,
            };
        }
        for (dot, value) in &other.0 {
            if !self.0.contains_key(dot) && !context.contains(dot) {
                joined.insert(*dot, value.clone());
            }
        }
        DotFun(joined)
    }
}

/// Keys mapped to dot stores, sharing one context: the OR-Set's elements
/// (each a [`DotSet`]) and the OR-Map's entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DotMap<K: Ord, V>(pub BTreeMap<K, V>);

impl<K: Ord, V> Default for DotMap<K, V> {
    fn default() -> DotMap<K, V> {
        DotMap(BTreeMap::new())
    }
}

impl<K: Ord + Clone + Debug, V: DotStore> DotStore for DotMap<K, V> {
    fn collect_dots(&self, into: &mut BTreeSet<Dot>) {
        self.0.values().for_each(|v| v.collect_dots(into));
    }

    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    fn join_store(&self, context: &CausalContext, other: &Self, other_context: &CausalContext) -> Self {
        let keys: BTreeSet<&K> = self.0.keys().chain(other.0.keys()).collect();
        let bottom = V::default();
        let mut joined = BTreeMap::new();
        for key in keys {
            let mine = self.0.get(key).unwrap_or(&bottom);
            let theirs = other.0.get(key).unwrap_or(&bottom);
            let value = mine.join_store(context, theirs, other_context);
            if !value.is_bottom() {
                joined.insert(key.clone(), value);
            }
        }
        DotMap(joined)
    }
}

/// A causal CRDT: a dot store and the context of every dot seen.
///
/// Invariant: every live dot of `store` is in `context`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causal<S> {
    pub store: S,
    pub context: CausalContext,
}

impl<S: DotStore> Causal<S> {
    /// The live dots of the store.
    pub fn live_dots(&self) -> BTreeSet<Dot> {
        let mut dots = BTreeSet::new();
        self.store.collect_dots(&mut dots);
        dots
    }

    /// Panic unless every live dot is in the context.
    pub fn invariants(&self) {
        for dot in self.live_dots() {
            assert!(self.context.contains(&dot), "live dot {dot:?} missing from the causal context");
        }
    }

    /// Apply a δ-state (join it) and return it: the shape of every mutator.
    fn applied(&mut self, delta: Causal<S>) -> Causal<S> {
        self.join(&delta);
        delta
    }
}

impl<S: DotStore> Lattice for Causal<S> {
    fn join(&mut self, other: &Causal<S>) {
        self.store = self.store.join_store(&self.context, &other.store, &other.context);
        self.context.join(&other.context);
    }

    /// `(s, c) ≤ (s', c')` iff `c ⊆ c'` and every dot of `s'` that `c`
    /// has seen is still live in `s` (none `s` removed came back).
    fn leq(&self, other: &Causal<S>) -> bool {
        let mine = self.live_dots();
        self.context.leq(&other.context)
            && other.live_dots().iter().filter(|d| self.context.contains(d)).all(|d| mine.contains(d))
    }
}

/// The add-wins observed-remove set without tombstones (ORSWOT).
pub type OrSet<T> = Causal<DotMap<T, DotSet>>;

impl<T: Ord + Clone + Debug> OrSet<T> {
    /// The δ-mutator `addδ`: a fresh dot for `element`, and a context
    /// covering it and every dot of `element` seen so far (which the add
    /// supersedes).
    pub fn add_delta(&self, node: NodeId, element: T) -> OrSet<T> {
        let dot = self.context.next_dot(node);
        let seen = self.store.0.get(&element).into_iter().flatten().copied();
        let context = CausalContext::of(seen.chain([dot]));
        Causal { store: DotMap(BTreeMap::from([(element, BTreeSet::from([dot]))])), context }
    }

    /// The δ-mutator `rmvδ`: no dots, a context of the element's live dots
    /// (only the adds this replica has seen are removed).
    pub fn remove_delta(&self, element: &T) -> OrSet<T> {
        let seen = self.store.0.get(element).into_iter().flatten().copied();
        Causal { store: DotMap::default(), context: CausalContext::of(seen) }
    }

    pub fn add(&mut self, node: NodeId, element: T) -> OrSet<T> {
        let delta = self.add_delta(node, element);
        self.applied(delta)
    }

    pub fn remove(&mut self, element: &T) -> OrSet<T> {
        let delta = self.remove_delta(element);
        self.applied(delta)
    }

    pub fn contains(&self, element: &T) -> bool {
        self.store.0.contains_key(element)
    }

    /// The elements, ascending.
    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.store.0.keys()
    }
}

/// The multi-value register: a write overwrites the writes it has seen;
/// concurrent writes are all kept (the siblings a client must resolve).
pub type MvRegister<T> = Causal<DotFun<T>>;

impl<T: Ord + Clone + Debug> MvRegister<T> {
    /// The δ-mutator `writeδ`: a fresh dot holding `value`, with a context
    /// covering every write seen.
    pub fn write_delta(&self, node: NodeId, value: T) -> MvRegister<T> {
        let dot = self.context.next_dot(node);
        let context = CausalContext::of(self.store.0.keys().copied().chain([dot]));
        Causal { store: DotFun(BTreeMap::from([(dot, value)])), context }
    }

    pub fn write(&mut self, node: NodeId, value: T) -> MvRegister<T> {
        let delta = self.write_delta(node, value);
        self.applied(delta)
    }

    /// The concurrent values (siblings), ascending; empty if never written.
    pub fn values(&self) -> BTreeSet<&T> {
        self.store.0.values().collect()
    }
}

/// The observed-remove map of causal CRDTs: one context shared by every
/// entry, so an update of a key's value is a δ-mutator of that value run
/// against the map's context, and a remove drops exactly the dots seen.
pub type OrMap<K, V> = Causal<DotMap<K, V>>;

impl<K: Ord + Clone + Debug, V: DotStore> OrMap<K, V> {
    /// `applyδ`: run the value's δ-mutator `mutate` on `key`'s value (with
    /// the map's context) and lift its delta into the map.
    pub fn apply(&mut self, key: K, mutate: impl FnOnce(&Causal<V>) -> Causal<V>) -> OrMap<K, V> {
        let value = Causal {
            store: self.store.0.get(&key).cloned().unwrap_or_default(),
            context: self.context.clone(),
        };
        let delta = mutate(&value);
        // A value's delta may hold no dots (a remove inside it): the map
        // then keeps no entry for the key, only the context.
        let store =
            if delta.store.is_bottom() { BTreeMap::new() } else { BTreeMap::from([(key, delta.store)]) };
        let lifted = Causal { store: DotMap(store), context: delta.context };
        self.applied(lifted)
    }

    /// `rmvδ`: forget every dot of `key`'s value seen here.
    pub fn remove_key(&mut self, key: &K) -> OrMap<K, V> {
        let mut seen = BTreeSet::new();
        if let Some(value) = self.store.0.get(key) {
            value.collect_dots(&mut seen);
        }
        self.applied(Causal { store: DotMap::default(), context: CausalContext::of(seen) })
    }

    /// `key`'s value as a causal CRDT of its own (with the map's context).
    pub fn get(&self, key: &K) -> Option<Causal<V>> {
        let store = self.store.0.get(key)?.clone();
        Some(Causal { store, context: self.context.clone() })
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.store.0.keys()
    }
}
