//! Atomic commitment: two-phase commit ([`two_pc`]) and three-phase commit
//! ([`three_pc`]) over a sharded bank (the source text's "2-phase-commit" and
//! "3-phase-commit"; Gray, "Notes on data base operating systems", 1978;
//! Bernstein, Hadzilacos, Goodman, *Concurrency Control and Recovery in
//! Database Systems*, 1987, ch. 7; Skeen, "Nonblocking commit protocols",
//! SIGMOD 1981).
//!
//! Every node plays two roles. As a **coordinator** it runs the transactions
//! its clients send it ("any node can kick off a round"); as a **cohort** it
//! owns a shard of the accounts (account `a` lives at node `a mod n`, see
//! `quorum_core::txn::owner`) and votes on the transactions that touch them.
//! The cohorts of a transfer are the owners of its two accounts. A cohort
//! votes yes only if it can make its part durable: no account of the
//! transaction is locked by another transaction and no balance would go
//! negative. From its yes vote until it learns the outcome it holds the
//! accounts' locks — that is what "blocking" costs: the accounts are
//! unavailable to everyone else while the cohort is in doubt.
//!
//! The pieces both protocols share live here: transaction ids, the split of a
//! transfer into per-cohort changes, a cohort's [`Bank`] (committed balances
//! and locks), and in `roles` the coordinator and cohort logic itself.

mod roles;
pub mod three_pc;
pub mod two_pc;

use std::collections::BTreeMap;

use quorum_core::txn::{owner, Account, Balance, INITIAL_BALANCE};
use quorum_core::NodeId;
use serde::{Deserialize, Serialize};

/// A transaction's identity: `seq * 100 + coordinator`, unique forever
/// because a coordinator reserves blocks of sequence numbers in its log
/// before using them (so a restarted coordinator never reuses one).
/// Debug form `t3.0`: sequence 3 of coordinator n0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId(pub u64);

/// Ids pack the coordinator in the low two decimal digits (at most 100 nodes).
const NODES_MAX: u64 = 100;

impl TxnId {
    pub fn new(coordinator: NodeId, seq: u64) -> TxnId {
        assert!(u64::from(coordinator.0) < NODES_MAX, "transaction ids name at most 100 coordinators");
        assert!(seq > 0, "sequence numbers start at 1");
        TxnId(seq * NODES_MAX + u64::from(coordinator.0))
    }

    /// The node that started the transaction.
    pub fn coordinator(self) -> NodeId {
        NodeId((self.0 % NODES_MAX) as u32)
    }

    pub fn seq(self) -> u64 {
        self.0 / NODES_MAX
    }
}

impl std::fmt::Debug for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}.{}", self.seq(), self.coordinator().0)
    }
}

/// A change to one account: add `delta` (negative: a debit). Debug `a3-20`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub account: Account,
    pub delta: i64,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a{}{:+}", self.account, self.delta)
    }
}

/// An account's balance after a transaction (an after-image: applying it twice
/// is the same as once, so redo after a crash is safe). Debug `a3=80`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub account: Account,
    pub balance: Balance,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a{}={}", self.account, self.balance)
    }
}

/// Split a transfer into each cohort's changes, by account owner.
pub fn plan(
    from: Account,
    to: Account,
    amount: u64,
    nodes: u32,
) -> Result<BTreeMap<NodeId, Vec<Change>>, String> {
    if from == to {
        return Err(format!("a transfer from a{from} to itself"));
    }
    let amount = i64::try_from(amount).map_err(|_| format!("amount {amount} is too large"))?;
    let mut cohorts: BTreeMap<NodeId, Vec<Change>> = BTreeMap::new();
    cohorts.entry(owner(from, nodes)).or_default().push(Change { account: from, delta: -amount });
    cohorts.entry(owner(to, nodes)).or_default().push(Change { account: to, delta: amount });
    debug_assert!(!cohorts.is_empty() && cohorts.len() <= 2);
    Ok(cohorts)
}

/// Why a cohort votes no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another transaction holds the account's lock (no waiting: no deadlock).
    Locked { account: Account, by: TxnId },
    /// The debit would overdraw the account.
    InsufficientFunds { account: Account },
}

/// A cohort's shard: committed balances of the accounts it owns (absent:
/// [`INITIAL_BALANCE`]) and the locks of in-doubt transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bank {
    balances: BTreeMap<Account, Balance>,
    locks: BTreeMap<Account, TxnId>,
}

impl Bank {
    pub fn balance(&self, account: Account) -> Balance {
        self.balances.get(&account).copied().unwrap_or(INITIAL_BALANCE)
    }

    pub fn lock_holder(&self, account: Account) -> Option<TxnId> {
        self.locks.get(&account).copied()
    }

    /// The after-images of `changes` if `txn` may prepare them, or why not.
    pub fn try_prepare(&self, txn: TxnId, changes: &[Change]) -> Result<Vec<Write>, Refusal> {
        let mut writes = Vec::with_capacity(changes.len());
        for change in changes {
            if let Some(by) = self.lock_holder(change.account).filter(|by| *by != txn) {
                return Err(Refusal::Locked { account: change.account, by });
            }
            let balance = self.balance(change.account) + change.delta;
            if balance < 0 {
                return Err(Refusal::InsufficientFunds { account: change.account });
            }
            writes.push(Write { account: change.account, balance });
        }
        Ok(writes)
    }

    /// Hold the locks of `writes` for `txn` until it is decided.
    pub fn lock(&mut self, txn: TxnId, writes: &[Write]) {
        for w in writes {
            let previous = self.locks.insert(w.account, txn);
            assert!(previous.is_none_or(|p| p == txn), "a{} locked by {previous:?} and {txn:?}", w.account);
        }
    }

    /// Release every lock `txn` holds.
    pub fn unlock(&mut self, txn: TxnId) {
        self.locks.retain(|_, holder| *holder != txn);
    }

    /// Install committed after-images.
    pub fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            assert!(w.balance >= 0, "a committed balance is never negative: {w:?}");
            self.balances.insert(w.account, w.balance);
        }
    }

    pub fn locks(&self) -> impl Iterator<Item = (Account, TxnId)> + '_ {
        self.locks.iter().map(|(a, t)| (*a, *t))
    }

    /// Balances that differ from the initial one, for `describe`.
    pub fn changed(&self) -> impl Iterator<Item = (Account, Balance)> + '_ {
        self.balances.iter().filter(|(_, b)| **b != INITIAL_BALANCE).map(|(a, b)| (*a, *b))
    }

    /// Panic if a committed balance is negative.
    pub fn invariants(&self) {
        for (account, balance) in &self.balances {
            assert!(*balance >= 0, "a{account} holds a negative balance {balance}");
        }
    }
}

/// A node's `describe` line: `rounds` (each protocol words its own phases),
/// what it coordinated, what it is in doubt about, what it decided as a
/// cohort, its locks and changed balances.
pub(crate) fn describe_node(
    rounds: &[String],
    decisions: &BTreeMap<TxnId, bool>,
    in_doubt: &[String],
    cohort: &roles::Cohort,
) -> String {
    let locks: Vec<String> = cohort.bank.locks().map(|(a, t)| format!("a{a}:{t:?}")).collect();
    let balances: Vec<String> = cohort.bank.changed().map(|(a, b)| format!("a{a}={b}")).collect();
    format!(
        "rounds=[{}] coordinated=[{}] in-doubt=[{}] decided=[{}] locks={{{}}} balances={{{}}}",
        rounds.join(" "),
        describe_outcomes(decisions),
        in_doubt.join(" "),
        describe_outcomes(&cohort.decided),
        locks.join(" "),
        balances.join(" "),
    )
}

/// The latest few outcomes, `t3.0:commit t4.1:abort (+12 more)`, for `describe`.
fn describe_outcomes(outcomes: &BTreeMap<TxnId, bool>) -> String {
    const SHOWN: usize = 4;
    let mut shown: Vec<String> = outcomes
        .iter()
        .rev()
        .take(SHOWN)
        .map(|(t, c)| format!("{t:?}:{}", if *c { "commit" } else { "abort" }))
        .collect();
    shown.reverse();
    if outcomes.len() > SHOWN {
        shown.push(format!("(+{} more)", outcomes.len() - SHOWN));
    }
    shown.join(" ")
}

/// Cross-node atomicity among live nodes: no transaction is known committed at
/// one node and aborted at another, counting each node's decisions as
/// coordinator and outcomes as cohort.
pub(crate) fn agree<'a, M: 'a>(
    nodes: impl Iterator<Item = (NodeId, &'a roles::Coordinator<M>, &'a roles::Cohort)>,
) -> Result<(), String> {
    let mut seen: BTreeMap<TxnId, (bool, NodeId)> = BTreeMap::new();
    let decided =
        nodes.flat_map(|(id, coordinator, cohort)| [(id, &cohort.decided), (id, &coordinator.decisions)]);
    for (node, outcomes) in decided {
        for (txn, commit) in outcomes {
            let (first, by) = *seen.entry(*txn).or_insert((*commit, node));
            if first != *commit {
                return Err(format!(
                    "atomicity: {txn:?} {} at {by} but {} at {node}",
                    if first { "committed" } else { "aborted" },
                    if *commit { "committed" } else { "aborted" },
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_ids_name_their_coordinator_and_print_short() {
        let t = TxnId::new(NodeId(3), 17);
        assert_eq!(t.coordinator(), NodeId(3));
        assert_eq!(t.seq(), 17);
        assert_eq!(format!("{t:?}"), "t17.3");
    }

    #[test]
    fn a_transfer_splits_by_owner() {
        let p = plan(1, 7, 30, 3).unwrap();
        assert_eq!(p[&NodeId(1)], vec![Change { account: 1, delta: -30 }, Change { account: 7, delta: 30 }]);
        let p = plan(1, 2, 30, 3).unwrap();
        assert_eq!(p.len(), 2);
        assert!(plan(1, 1, 5, 3).is_err());
    }

    #[test]
    fn a_cohort_refuses_overdrafts_and_locked_accounts() {
        let mut bank = Bank::default();
        let t1 = TxnId::new(NodeId(0), 1);
        let t2 = TxnId::new(NodeId(0), 2);
        let debit = |d| [Change { account: 1, delta: d }];
        assert_eq!(bank.try_prepare(t1, &debit(-101)), Err(Refusal::InsufficientFunds { account: 1 }));
        let writes = bank.try_prepare(t1, &debit(-40)).unwrap();
        assert_eq!(writes, vec![Write { account: 1, balance: 60 }]);
        bank.lock(t1, &writes);
        assert_eq!(bank.try_prepare(t2, &debit(-1)), Err(Refusal::Locked { account: 1, by: t1 }));
        bank.apply(&writes);
        bank.unlock(t1);
        assert_eq!(bank.balance(1), 60);
        assert!(bank.try_prepare(t2, &debit(-1)).is_ok());
    }
}
