//! Sets without causality: the G-Set and the 2P-Set (Shapiro et al.'s
//! report, "A comprehensive study of CRDTs").

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::Lattice;

/// A grow-only set: add only, join is union.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GSet<T: Ord> {
    elements: BTreeSet<T>,
}

impl<T: Ord> Default for GSet<T> {
    fn default() -> GSet<T> {
        GSet { elements: BTreeSet::new() }
    }
}

impl<T: Ord + Clone + Debug> GSet<T> {
    /// Add `element`; returns the δ-state `{element}`.
    pub fn add(&mut self, element: T) -> GSet<T> {
        self.elements.insert(element.clone());
        GSet { elements: BTreeSet::from([element]) }
    }

    pub fn contains(&self, element: &T) -> bool {
        self.elements.contains(element)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.elements.iter()
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

impl<T: Ord + Clone + Debug> Lattice for GSet<T> {
    fn join(&mut self, other: &GSet<T>) {
        self.elements.extend(other.elements.iter().cloned());
    }

    fn leq(&self, other: &GSet<T>) -> bool {
        self.elements.is_subset(&other.elements)
    }
}

/// Two G-Sets: added `A` and removed `R` (the tombstones); an element is
/// in the set iff it is in `A \ R`. Removal wins and is forever: an element
/// removed once can never be added again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoPhaseSet<T: Ord> {
    added: GSet<T>,
    removed: GSet<T>,
}

impl<T: Ord> Default for TwoPhaseSet<T> {
    fn default() -> TwoPhaseSet<T> {
        TwoPhaseSet { added: GSet::default(), removed: GSet::default() }
    }
}

impl<T: Ord + Clone + Debug> TwoPhaseSet<T> {
    /// Add `element`; returns the δ-state.
    pub fn add(&mut self, element: T) -> TwoPhaseSet<T> {
        TwoPhaseSet { added: self.added.add(element), removed: GSet::default() }
    }

    /// Remove `element` if it is in the set (the precondition
    /// `lookup(e)` in the report); returns the δ-state, `None` when
    /// the precondition fails.
    pub fn remove(&mut self, element: T) -> Option<TwoPhaseSet<T>> {
        if !self.contains(&element) {
            return None;
        }
        Some(TwoPhaseSet { added: GSet::default(), removed: self.removed.add(element) })
    }

    pub fn contains(&self, element: &T) -> bool {
        self.added.contains(element) && !self.removed.contains(element)
    }

    /// The elements, ascending.
    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.added.iter().filter(|e| !self.removed.contains(e))
    }
}

impl<T: Ord + Clone + Debug> Lattice for TwoPhaseSet<T> {
    fn join(&mut self, other: &TwoPhaseSet<T>) {
        self.added.join(&other.added);
        self.removed.join(&other.removed);
    }

    fn leq(&self, other: &TwoPhaseSet<T>) -> bool {
        self.added.leq(&other.added) && self.removed.leq(&other.removed)
    }
}
