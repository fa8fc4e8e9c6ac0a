//! The catalogue entry: what a protocol is, what it claims, and how the
//! laboratory can drive it. Each protocol's module declares its own `ENTRY`
//! next to its code; the registry (crate `quorum-registry`) binds each entry
//! to the protocol's type in one line and drives `quorum list / sim /
//! explore / script / tour`, the server's `--protocol`, the scenario runner
//! and the negative-control tests from it.

use quorum_core::claims::{Sometimes, SystemModel, Violation};
use serde::Serialize;

/// One protocol of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The `--protocol` name.
    pub name: &'static str,
    /// The source text's section.
    pub section: &'static str,
    /// What it promises (and, where the text says so, what it does not), in
    /// a sentence for `quorum list`.
    pub summary: &'static str,
    /// The faults its claims assume.
    pub model: SystemModel,
    /// The always properties it claims under `model`: no run shows these
    /// violations. Every other kind is checked too and reported as broken
    /// without being claimed.
    pub always: &'static [Violation],
    /// What the source text says it breaks, which the laboratory must show
    /// (under every fault the laboratory has, not only `model`'s).
    pub breaks: &'static [Violation],
    /// Its sometimes properties: the hard cases a positive exploration must
    /// reach at least once.
    pub sometimes: &'static [Sometimes],
    pub workload: Workload,
    /// Variants accepted by `--variant` (empty: none).
    pub variants: &'static [&'static str],
    /// Deliberately broken variants accepted by `--bug` (negative controls).
    pub bugs: &'static [Bug],
    /// Optional features every seed of an exploration may draw (swarm
    /// testing), where its claims hold with each value.
    pub explorable: &'static [Setting],
    /// Times a client re-sends a timed-out update with the same request id
    /// by default: non-zero only where client sessions promise to apply it
    /// once.
    pub retries: u32,
}

/// What the simulated clients ask of a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Read / write (/ cas) on keys, judged for linearizability and
    /// durability.
    Kv {
        /// Whether it serves compare-and-set (ABD registers cannot: cas
        /// needs consensus).
        cas: bool,
    },
    /// Bank transfers across cohorts, judged for atomicity and balance.
    Txn,
    /// Questions for the decision of a consensus protocol whose inputs are
    /// its own (Ben-Or): judged by the consensus properties of its
    /// `Propose` / `Decide` observations.
    Decision,
    /// Each node is given an input by a client (`propose V`) and decides
    /// once (the two generals), judged for Agreement, Validity, Integrity
    /// and Termination.
    Proposal,
    /// Counter and set updates at any node (`incr`, `reset`, `add`,
    /// `remove`, `read`), judged for convergence after the heal (with the
    /// rounds and bytes it took) and for acknowledged increments and adds
    /// kept.
    Crdt,
}

/// A deliberately broken variant (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bug {
    pub name: &'static str,
    /// What it breaks in the protocol, citing the paper.
    pub what: &'static str,
    /// The violations a negative control must catch (any one of them).
    pub caught_as: &'static [Violation],
}

/// An optional feature a seed may draw: a field of the protocol's `Config`
/// and the values (JSON literals) it may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

impl Entry {
    /// The bug named `name`, if the entry has one.
    pub fn bug(&self, name: &str) -> Option<&'static Bug> {
        self.bugs.iter().find(|b| b.name == name)
    }

    /// Whether it claims never to show `violation`.
    pub fn claims(&self, violation: Violation) -> bool {
        self.always.contains(&violation)
    }
}

/// The always properties of a protocol that promises everything the
/// laboratory checks.
pub const EVERYTHING: &[Violation] = &Violation::ALL;

/// A boolean feature.
pub const ON_OFF: &[&str] = &["true", "false"];
