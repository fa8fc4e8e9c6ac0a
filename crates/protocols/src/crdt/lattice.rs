//! The join-semilattice every state-based CRDT is (Shapiro et al. 2011,
//! convergent replicated data types), and the laws the property tests
//! hold each type to.

use std::collections::BTreeMap;
use std::fmt::Debug;

/// A state-based CRDT's state: a join-semilattice whose join
/// (least upper bound, `⊔`) is associative, commutative and idempotent,
/// with a partial order `≤` such that `a ≤ b` iff `a ⊔ b = b`.
///
/// Replicas that have joined the same set of states, in any order, any
/// number of times, hold equal states: that is why gossip of whole states
/// (or deltas, Almeida et al. 2018) converges under loss, duplication
/// and reordering (Shapiro et al. 2011).
pub trait Lattice: Clone + Debug + PartialEq + Default {
    /// `self := self ⊔ other`.
    fn join(&mut self, other: &Self);

    /// `self ≤ other` in the semilattice's order, computed directly (not
    /// through `join`), so the laws can compare the two.
    fn leq(&self, other: &Self) -> bool;

    /// `self ⊔ other` as a new value.
    fn joined(&self, other: &Self) -> Self {
        let mut joined = self.clone();
        joined.join(other);
        joined
    }
}

/// A map whose values are lattices joins key by key (the product lattice
/// over a grow-only key set; composition as in Shapiro et al.'s report). Keys are never removed: a key's absence is the
/// value's bottom.
impl<K: Ord + Clone + Debug, V: Lattice> Lattice for BTreeMap<K, V> {
    fn join(&mut self, other: &Self) {
        for (key, value) in other {
            self.entry(key.clone()).or_default().join(value);
        }
    }

    fn leq(&self, other: &Self) -> bool {
        self.iter().all(|(key, value)| match other.get(key) {
            Some(theirs) => value.leq(theirs),
            None => value.leq(&V::default()),
        })
    }
}

/// The semilattice laws for `a`, `b`, `c`: the join is associative,
/// commutative and idempotent, it is inflationary (`a ≤ a ⊔ b`), and `≤`
/// agrees with it (`a ≤ b` iff `a ⊔ b = b`). `Err` names the first law
/// broken, with the states that break it.
pub fn check_laws<L: Lattice>(a: &L, b: &L, c: &L) -> Result<(), String> {
    let ab = a.joined(b);
    if ab.joined(c) != a.joined(&b.joined(c)) {
        return Err(format!("join not associative on {a:?}, {b:?}, {c:?}"));
    }
    if ab != b.joined(a) {
        return Err(format!("join not commutative on {a:?}, {b:?}"));
    }
    if a.joined(a) != *a {
        return Err(format!("join not idempotent on {a:?}"));
    }
    if !a.leq(&ab) || !b.leq(&ab) {
        return Err(format!("join not inflationary on {a:?}, {b:?}"));
    }
    if a.leq(b) != (ab == *b) {
        return Err(format!("order disagrees with join on {a:?}, {b:?}"));
    }
    Ok(())
}

/// A mutator is inflationary (Shapiro et al. 2011: every update moves the
/// state up the lattice), and its δ-mutator's delta joined into the state
/// before gives the state after (Almeida et al. 2018: `m(X) = X ⊔ mδ(X)`).
pub fn check_update<L: Lattice>(before: &L, after: &L, delta: &L) -> Result<(), String> {
    if !before.leq(after) {
        return Err(format!("update not inflationary: {before:?} -> {after:?}"));
    }
    if before.joined(delta) != *after {
        return Err(format!("delta {delta:?} joined into {before:?} is not {after:?}"));
    }
    Ok(())
}
