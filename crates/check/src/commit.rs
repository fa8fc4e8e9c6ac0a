//! Atomic commitment: the atomicity checker over `TxnDecided` observations,
//! the balance invariant of the bank-transfer workload, and blocked time.
//!
//! Atomicity (Bernstein, Hadzilacos, Goodman 1987, §7.2, AC1–AC2): every
//! participant that decides a transaction decides the same way, and no
//! participant reverses its decision. A participant here is any node that
//! observed a decision for the transaction — cohorts and coordinator alike, so
//! a coordinator that tells its client "aborted" while its cohorts committed
//! is a violation too.

use std::collections::BTreeMap;

use quorum_core::{NodeId, Observation};
use serde::Serialize;

/// One `TxnDecided` observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub node: u32,
    pub txn: u64,
    pub commit: bool,
    /// Microseconds (for reports only).
    pub time: u64,
}

/// A broken promise of atomic commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AtomicityViolation {
    /// Some participants committed `txn`, others aborted it.
    Split { txn: u64, committed: Vec<u32>, aborted: Vec<u32> },
    /// `node` decided `txn` one way, then the other.
    Reversed { txn: u64, node: u32 },
}

impl std::fmt::Display for AtomicityViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AtomicityViolation::Split { txn, committed, aborted } => {
                let names = |v: &[u32]| v.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(",");
                write!(f, "txn {txn}: committed at {} but aborted at {}", names(committed), names(aborted))
            }
            AtomicityViolation::Reversed { txn, node } => {
                write!(f, "txn {txn}: n{node} reversed its decision")
            }
        }
    }
}

/// Every atomicity violation among `decisions` (in observation order), one
/// per transaction and kind, ordered by transaction.
pub fn atomicity(decisions: &[Decision]) -> Vec<AtomicityViolation> {
    // txn -> node -> first decision
    let mut by_txn: BTreeMap<u64, BTreeMap<u32, bool>> = BTreeMap::new();
    let mut violations = Vec::new();
    for d in decisions {
        let first = *by_txn.entry(d.txn).or_default().entry(d.node).or_insert(d.commit);
        let reversed = AtomicityViolation::Reversed { txn: d.txn, node: d.node };
        if first != d.commit && !violations.contains(&reversed) {
            violations.push(reversed);
        }
    }
    for (txn, nodes) in &by_txn {
        let committed: Vec<u32> = nodes.iter().filter(|(_, c)| **c).map(|(n, _)| *n).collect();
        let aborted: Vec<u32> = nodes.iter().filter(|(_, c)| !**c).map(|(n, _)| *n).collect();
        if !committed.is_empty() && !aborted.is_empty() {
            violations.push(AtomicityViolation::Split { txn: *txn, committed, aborted });
        }
    }
    violations.sort_by_key(|v| match v {
        AtomicityViolation::Split { txn, .. } | AtomicityViolation::Reversed { txn, .. } => *txn,
    });
    violations
}

/// The balance invariant: money is neither created nor destroyed (the final
/// balances sum to `expected_total`) and no account is overdrawn.
pub fn balances(final_balances: &BTreeMap<u64, i64>, expected_total: i64) -> Result<(), String> {
    if let Some((account, balance)) = final_balances.iter().find(|(_, b)| **b < 0) {
        return Err(format!("account a{account} is overdrawn: {balance}"));
    }
    let total: i64 = final_balances.values().sum();
    if total != expected_total {
        return Err(format!(
            "balances sum to {total}, not {expected_total}: {} {}",
            (total - expected_total).abs(),
            if total > expected_total { "created" } else { "destroyed" }
        ));
    }
    Ok(())
}

/// Time each cohort spent in doubt: from its `Prepared` observation to its
/// `TxnDecided` for the same transaction (or `end`, if it never decided).
#[derive(Clone, Debug, Default)]
pub struct Blocking {
    /// Open in-doubt intervals: (node, txn) → (time accumulated while up,
    /// since when it is up and in doubt; `None` while the node is down).
    open: BTreeMap<(u32, u64), (u64, Option<u64>)>,
    /// Closed intervals, microseconds.
    spans: Vec<u64>,
}

impl Blocking {
    pub fn new() -> Blocking {
        Blocking::default()
    }

    /// `node` voted yes for `txn` at `time` and is in doubt — or, already in
    /// doubt before a crash, says so again after its restart: the clock
    /// resumes.
    pub fn prepared(&mut self, node: u32, txn: u64, time: u64) {
        let (_, since) = self.open.entry((node, txn)).or_insert((0, None));
        since.get_or_insert(time);
    }

    /// `node` crashed at `time`: its doubts stop counting until it restarts
    /// (a down cohort blocks no one by being in doubt; its crash does).
    pub fn crashed(&mut self, node: u32, time: u64) {
        for ((_, _), (total, since)) in self.open.range_mut((node, 0)..=(node, u64::MAX)) {
            if let Some(start) = since.take() {
                *total += time.saturating_sub(start);
            }
        }
    }

    /// `node` decided `txn` at `time`.
    pub fn decided(&mut self, node: u32, txn: u64, time: u64) {
        if let Some((total, since)) = self.open.remove(&(node, txn)) {
            self.spans.push(total + since.map_or(0, |start| time.saturating_sub(start)));
        }
    }

    /// Every (cohort, transaction)'s in-doubt time while up, intervals still
    /// open counted up to `end`. Microseconds.
    pub fn spans(&self, end: u64) -> Vec<u64> {
        let open =
            self.open.values().map(|(total, since)| total + since.map_or(0, |s| end.saturating_sub(s)));
        self.spans.iter().copied().chain(open).collect()
    }

    /// (total, longest, still in doubt at `end`), intervals still open
    /// counted up to `end`. Microseconds.
    pub fn totals(&self, end: u64) -> (u64, u64, u64) {
        let all = self.spans(end);
        (all.iter().sum(), all.iter().copied().max().unwrap_or(0), self.open.len() as u64)
    }
}

/// The decisions among `observations` (`(node, observation, time µs)` in
/// the order they were made): every `TxnDecided`, others ignored.
pub fn decisions(observations: &[(NodeId, Observation, u64)]) -> Vec<Decision> {
    observations
        .iter()
        .filter_map(|(node, observation, time)| match *observation {
            Observation::TxnDecided { txn, commit } => {
                Some(Decision { node: node.0, txn, commit, time: *time })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(node: u32, txn: u64, commit: bool) -> Decision {
        Decision { node, txn, commit, time: 0 }
    }

    #[test]
    fn unanimous_decisions_pass() {
        let ds = [d(0, 1, true), d(1, 1, true), d(2, 1, true), d(1, 2, false), d(2, 2, false), d(1, 1, true)];
        assert!(atomicity(&ds).is_empty());
    }

    /// Negative control: the 3PC partition split must be caught.
    #[test]
    fn a_split_decision_is_caught() {
        let ds = [d(0, 7, false), d(1, 7, true), d(2, 7, true)];
        assert_eq!(
            atomicity(&ds),
            vec![AtomicityViolation::Split { txn: 7, committed: vec![1, 2], aborted: vec![0] }]
        );
    }

    /// Negative control: a node that changes its mind.
    #[test]
    fn a_reversed_decision_is_caught() {
        let ds = [d(1, 3, true), d(1, 3, false)];
        let v = atomicity(&ds);
        assert!(v.contains(&AtomicityViolation::Reversed { txn: 3, node: 1 }), "{v:?}");
    }

    #[test]
    fn balances_must_sum_and_stay_positive() {
        let ok: BTreeMap<u64, i64> = [(0, 70), (1, 130)].into();
        assert!(balances(&ok, 200).is_ok());
        let lost: BTreeMap<u64, i64> = [(0, 70), (1, 100)].into();
        assert!(balances(&lost, 200).unwrap_err().contains("30 destroyed"));
        let overdrawn: BTreeMap<u64, i64> = [(0, -10), (1, 210)].into();
        assert!(balances(&overdrawn, 200).unwrap_err().contains("overdrawn"));
    }

    #[test]
    fn blocked_time_runs_from_prepared_to_decided() {
        let mut b = Blocking::new();
        b.prepared(1, 5, 100);
        b.prepared(1, 5, 150); // re-observed after a restart: the first counts
        b.decided(1, 5, 400);
        b.prepared(2, 5, 100);
        assert_eq!(b.totals(1_100), (300 + 1_000, 1_000, 1));
    }

    #[test]
    fn blocked_time_leaves_out_a_cohorts_own_downtime() {
        let mut b = Blocking::new();
        b.prepared(1, 5, 100);
        b.prepared(2, 5, 100);
        b.crashed(1, 300); // 200 in doubt while up
        b.prepared(1, 5, 1_000); // restarted, still in doubt
        b.decided(1, 5, 1_050); // +50
        b.decided(2, 5, 1_050); // node 2 never went down: 950
        assert_eq!(b.spans(2_000), vec![250, 950]);
        // Crashed and decided by replaying its log on restart: only the time up counts.
        b.prepared(3, 6, 0);
        b.crashed(3, 10);
        b.decided(3, 6, 5_000);
        assert_eq!(b.totals(6_000), (250 + 950 + 10, 950, 0));
    }

    #[test]
    fn decisions_come_from_typed_observations() {
        let observations = vec![
            (NodeId(0), Observation::Prepared { txn: 100 }, 5),
            (NodeId(1), Observation::TxnDecided { txn: 100, commit: true }, 10),
            (NodeId(0), Observation::Note("TxnDecided { txn: 100, commit: true }".into()), 11),
            (NodeId(0), Observation::TxnDecided { txn: 100, commit: false }, 12),
        ];
        let ds = decisions(&observations);
        assert_eq!(
            ds,
            vec![Decision { time: 10, ..d(1, 100, true) }, Decision { time: 12, ..d(0, 100, false) }]
        );
        assert_eq!(atomicity(&ds).len(), 1);
    }
}
