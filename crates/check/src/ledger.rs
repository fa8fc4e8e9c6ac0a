//! The always properties an exhaustive search judges on every state.
//!
//! A simulated run is judged at its end, from its whole history. A model
//! checker judges each state it reaches, so what the observations of the
//! path so far established has to travel with the state, and be part of
//! what makes two states the same: a [`Ledger`] is that summary, kept as
//! sets that only grow. It judges, as each observation arrives:
//!
//! * **consensus** (the source text's Agreement, Validity and Integrity,
//!   per instance): every node that decides an instance decides the same
//!   value, a value some node proposed, and never a second one;
//! * **log safety**: no two nodes apply different commands at one index;
//! * **election safety** (Raft §5.2): one leader per term, and one vote per
//!   node per term, across restarts;
//! * **atomicity**: every participant decides a transaction the same way.
//!
//! It knows no driver: the model checker feeds it, the tests feed it.

use std::collections::{BTreeMap, BTreeSet};

use quorum_core::claims::Violation;
use quorum_core::{NodeId, Observation};

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ledger {
    /// Values proposed, per instance.
    proposed: BTreeMap<u64, BTreeSet<u64>>,
    /// The value each node decided, per (instance, node).
    decided: BTreeMap<(u64, NodeId), u64>,
    /// The command (digest) first applied at each index.
    applied: BTreeMap<u64, u64>,
    /// The first leader of each term.
    leaders: BTreeMap<u64, NodeId>,
    /// The candidate each node first voted for, per (node, term).
    votes: BTreeMap<(NodeId, u64), NodeId>,
    /// The first decision seen for each transaction.
    transactions: BTreeMap<u64, bool>,
}

/// A broken always property: its kind and what broke it, in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub kind: Violation,
    pub what: String,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Record what `node` observed; the property it breaks, if any.
    pub fn observe(&mut self, node: NodeId, observation: &Observation) -> Option<Broken> {
        match *observation {
            Observation::Propose { instance, value } => {
                self.proposed.entry(instance).or_default().insert(value);
                None
            }
            Observation::Decide { instance, value } => self.decide(node, instance, value),
            Observation::Apply { index, command, .. } => {
                let first = *self.applied.entry(index).or_insert(command);
                (first != command).then(|| {
                    broken(
                        Violation::LogSafety,
                        format!(
                    "{node} applied command {command:#x} at index {index}, where {first:#x} was applied"
                ),
                    )
                })
            }
            Observation::Role { role: quorum_core::Role::Leader, term } => {
                let first = *self.leaders.entry(term).or_insert(node);
                (first != node).then(|| {
                    broken(Violation::ElectionSafety, format!("{node} leads term {term}, which {first} led"))
                })
            }
            Observation::Vote { term, candidate } => {
                let first = *self.votes.entry((node, term)).or_insert(candidate);
                (first != candidate).then(|| {
                    broken(
                        Violation::ElectionSafety,
                        format!("{node} voted for {candidate} in term {term}, after voting for {first}"),
                    )
                })
            }
            Observation::TxnDecided { txn, commit } => {
                let first = *self.transactions.entry(txn).or_insert(commit);
                (first != commit).then(|| {
                    broken(
                        Violation::Atomicity,
                        format!(
                            "txn {txn}: {node} decided {}, another participant {}",
                            outcome(commit),
                            outcome(first)
                        ),
                    )
                })
            }
            _ => None,
        }
    }

    /// Agreement, Validity and Integrity for `node` deciding `value`.
    fn decide(&mut self, node: NodeId, instance: u64, value: u64) -> Option<Broken> {
        let proposed = self.proposed.get(&instance).is_some_and(|p| p.contains(&value));
        if !proposed {
            return Some(broken(
                Violation::Consensus,
                format!("validity: {node} decided {value} for instance {instance}, which no node proposed"),
            ));
        }
        if let Some(&before) = self.decided.get(&(instance, node)) {
            return (before != value).then(|| {
                broken(
                    Violation::Consensus,
                    format!(
                        "integrity: {node} decided {value} for instance {instance} after deciding {before}"
                    ),
                )
            });
        }
        let other = self
            .decided
            .range((instance, NodeId(0))..=(instance, NodeId(u32::MAX)))
            .find(|(_, v)| **v != value);
        let broke = other.map(|((_, n), v)| {
            broken(
                Violation::Consensus,
                format!("agreement: {node} decided {value} for instance {instance}, {n} decided {v}"),
            )
        });
        self.decided.insert((instance, node), value);
        broke
    }

    /// Instances some node decided.
    pub fn decided_instances(&self) -> usize {
        self.decided.keys().map(|(i, _)| *i).collect::<BTreeSet<_>>().len()
    }
}

fn broken(kind: Violation, what: String) -> Broken {
    Broken { kind, what }
}

fn outcome(commit: bool) -> &'static str {
    if commit {
        "commit"
    } else {
        "abort"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_core::Role;

    const N0: NodeId = NodeId(0);
    const N1: NodeId = NodeId(1);

    #[test]
    fn two_values_decided_for_one_instance_break_agreement() {
        let mut l = Ledger::new();
        l.observe(N0, &Observation::Propose { instance: 1, value: 10 });
        l.observe(N1, &Observation::Propose { instance: 1, value: 11 });
        assert_eq!(l.observe(N0, &Observation::Decide { instance: 1, value: 10 }), None);
        assert_eq!(l.observe(N0, &Observation::Decide { instance: 1, value: 10 }), None, "decided again");
        let b = l.observe(N1, &Observation::Decide { instance: 1, value: 11 }).unwrap();
        assert_eq!(b.kind, Violation::Consensus);
        assert!(b.what.starts_with("agreement"), "{}", b.what);
        assert_eq!(l.decided_instances(), 1);
    }

    #[test]
    fn a_value_nobody_proposed_breaks_validity_and_a_second_decision_integrity() {
        let mut l = Ledger::new();
        let b = l.observe(N0, &Observation::Decide { instance: 2, value: 7 }).unwrap();
        assert!(b.what.starts_with("validity"), "{}", b.what);
        l.observe(N0, &Observation::Propose { instance: 3, value: 1 });
        l.observe(N0, &Observation::Propose { instance: 3, value: 2 });
        l.observe(N0, &Observation::Decide { instance: 3, value: 1 });
        let b = l.observe(N0, &Observation::Decide { instance: 3, value: 2 }).unwrap();
        assert!(b.what.starts_with("integrity"), "{}", b.what);
    }

    #[test]
    fn logs_leaders_votes_and_transactions_are_judged() {
        let mut l = Ledger::new();
        assert_eq!(l.observe(N0, &Observation::Apply { index: 1, term: 1, command: 5 }), None);
        assert_eq!(l.observe(N1, &Observation::Apply { index: 1, term: 1, command: 5 }), None);
        assert_eq!(l.observe(N1, &Observation::Apply { index: 2, term: 1, command: 6 }), None);
        let b = l.observe(N0, &Observation::Apply { index: 2, term: 2, command: 7 }).unwrap();
        assert_eq!(b.kind, Violation::LogSafety);
        assert_eq!(l.observe(N0, &Observation::Role { role: Role::Leader, term: 3 }), None);
        assert_eq!(l.observe(N1, &Observation::Role { role: Role::Candidate, term: 3 }), None);
        let b = l.observe(N1, &Observation::Role { role: Role::Leader, term: 3 }).unwrap();
        assert_eq!(b.kind, Violation::ElectionSafety);
        assert_eq!(l.observe(N1, &Observation::Vote { term: 4, candidate: N0 }), None);
        assert_eq!(l.observe(N1, &Observation::Vote { term: 4, candidate: N0 }), None);
        assert_eq!(
            l.observe(N1, &Observation::Vote { term: 4, candidate: N1 }).unwrap().kind,
            Violation::ElectionSafety
        );
        assert_eq!(l.observe(N0, &Observation::TxnDecided { txn: 9, commit: true }), None);
        assert_eq!(
            l.observe(N1, &Observation::TxnDecided { txn: 9, commit: false }).unwrap().kind,
            Violation::Atomicity
        );
    }
}
