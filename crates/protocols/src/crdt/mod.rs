//! Conflict-free replicated data types: replicas that accept updates
//! without coordinating and still converge (Shapiro, Preguiça, Baquero and
//! Zawirski, "Conflict-free Replicated Data Types", SSS 2011; the longer
//! INRIA report RR-7506, "A comprehensive study of CRDTs"), with the
//! δ-state variants of Almeida, Shoker and Baquero ("Delta State
//! Replicated Data Types", JPDC 2018). Source text: "Replication
//! divergence" (multi-master systems "risk divergence") and "CALM:
//! consistency as logical monotonicity" (whose TODO asks for CRDTs).
//!
//! # State-based CRDTs (Shapiro et al. 2011, "state-based" or convergent CvRDTs)
//!
//! A replica's state is an element of a **join-semilattice** ([`Lattice`]):
//! updates only move it up the order (they are *inflationary*), and two
//! states merge by their least upper bound, the **join** `⊔`, which is
//! associative, commutative and idempotent. Whatever order states arrive
//! in, however often, the replicas that have received the same updates
//! hold the same state (the paper's strong eventual consistency). So
//! gossiping whole states to random peers converges under loss,
//! duplication, reordering and partitions, with no coordination at all.
//!
//! # δ-state CRDTs (Almeida et al. 2018)
//!
//! Shipping the whole state on every round costs bytes in proportion to
//! the state. A **δ-mutator** returns only the part of the state the
//! update changed, itself an element of the lattice, so that
//! `m(X) = X ⊔ mδ(X)`; deltas join into each other (a *delta group*) and
//! travel instead of the state. Every mutator here returns its delta.
//!
//! # The types
//!
//! | type | paper's name | join | note |
//! | --- | --- | --- | --- |
//! | [`GCounter`] | G-Counter (Shapiro; Almeida's `GCounter`) | entrywise max | one entry per replica |
//! | [`PnCounter`] | PN-Counter | two G-Counters | value `P - N` |
//! | [`GSet`] | G-Set | union | add only |
//! | [`TwoPhaseSet`] | 2P-Set | two G-Sets | remove wins forever (tombstones) |
//! | [`LwwRegister`] | LWW-Register | max stamp | concurrent writes lost by design |
//! | [`MvRegister`] | MV-Register (Almeida's `MVRegister`) | dots | keeps concurrent writes |
//! | [`OrSet`] | OR-Set without tombstones (Almeida's `AWORSet`) | dots | add wins |
//! | [`OrMap`] | Almeida's `ORMap` | dots, per key | a map of causal CRDTs |
//! | `BTreeMap<K, L: Lattice>` | composition (Shapiro's report) | per key | grow-only keys |
//!
//! (Section and specification numbers are left out on purpose: the papers
//! were not at hand to check them against; the names are the papers'.)
//!
//! The causal ones ([`causal`]) tag each update with a dot and keep a
//! causal context of every dot seen instead of tombstones.
//!
//! # The laws, checked
//!
//! [`check_laws`] and [`check_update`] state the semilattice laws and the
//! δ-mutator law; `tests.rs` holds every type to them with proptest over
//! states reached by random updates at three replicas and random merges,
//! and shows that a join that adds instead of taking the maximum (the
//! laboratory's `--bug sum-merge`) breaks idempotence.
//!
//! # Files
//!
//! * `lattice.rs`: the [`Lattice`] trait, product maps, the laws.
//! * `counter.rs`, `set.rs`, `register.rs`: the types without causality.
//! * `causal.rs`: dots, causal contexts, dot stores, OR-Set, MV-Register, OR-Map.
//! * `tests.rs`: the laws by proptest.

pub mod causal;
mod counter;
mod lattice;
mod register;
pub mod replica;
mod set;
pub mod store;
#[cfg(test)]
mod tests;

pub use causal::{CausalContext, Dot, DotFun, DotMap, DotSet, MvRegister, OrMap, OrSet};
pub use counter::{GCounter, PnCounter};
pub use lattice::{check_laws, check_update, Lattice};
pub use register::LwwRegister;
pub use replica::{Crdt, ENTRY};
pub use set::{GSet, TwoPhaseSet};
