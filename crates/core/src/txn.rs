//! The bank-transfer workload of the atomic-commit protocols (2PC, 3PC):
//! what a client asks, what it is answered, and where each account lives.
//!
//! Accounts are small integers, each owned by exactly one node (its
//! *cohort*): account `a` lives at node `a mod n` ([`owner`]). Every account
//! starts with [`INITIAL_BALANCE`]. A transfer debits one account and credits
//! another, so it touches one or two cohorts and must commit at all of them or
//! at none: the sum of all balances is the invariant the balance checker
//! verifies at the end of a run, and no balance may ever be negative.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// An account number.
pub type Account = u64;
/// A balance. Signed, so that a broken protocol that overdraws an account is
/// visible as a negative number instead of a wrap-around.
pub type Balance = i64;

/// What every account holds before any transfer.
pub const INITIAL_BALANCE: Balance = 100;

/// The node that owns `account` in a cluster of `nodes` nodes (ids `0..nodes`).
pub fn owner(account: Account, nodes: u32) -> NodeId {
    assert!(nodes > 0, "a cluster has at least one node");
    NodeId((account % u64::from(nodes)) as u32)
}

/// A client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnRequest {
    /// Move `amount` from `from` to `to`, atomically: both or neither.
    Transfer { from: Account, to: Account, amount: u64 },
    /// Read `account`'s committed balance. Served only by the account's owner
    /// (others answer `Rejected` with the owner as hint), and refused while a
    /// transaction holds the account's lock.
    Balance { account: Account },
}

/// The answer. The variants say what the client may conclude: `ok`
/// (committed, or a balance), `fail` (certainly not applied) or `info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResponse {
    /// The transfer committed.
    Committed,
    /// The transfer was rolled back everywhere (a cohort voted no, timed out).
    Aborted { reason: String },
    /// A balance read's result.
    Balance(Balance),
    /// Refused without effect; `hint` names a node worth trying.
    Rejected { reason: String, hint: Option<NodeId> },
    /// May or may not take effect.
    Indeterminate { reason: String },
}

impl crate::ClientOutput for TxnResponse {
    fn rejected(reason: impl Into<String>, hint: Option<NodeId>) -> Self {
        TxnResponse::Rejected { reason: reason.into(), hint }
    }

    fn indeterminate(reason: impl Into<String>) -> Self {
        TxnResponse::Indeterminate { reason: reason.into() }
    }
}

/// Text form, for scripts: `transfer FROM TO AMOUNT`, `balance ACCOUNT`.
impl std::str::FromStr for TxnRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<TxnRequest, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let num = |i: usize| -> Result<u64, String> {
            let w = words.get(i).ok_or_else(|| format!("'{s}': missing argument {i}"))?;
            w.parse().map_err(|_| format!("'{w}' is not a number"))
        };
        match words.first().copied() {
            Some("transfer") if words.len() == 4 => {
                Ok(TxnRequest::Transfer { from: num(1)?, to: num(2)?, amount: num(3)? })
            }
            Some("balance") if words.len() == 2 => Ok(TxnRequest::Balance { account: num(1)? }),
            _ => Err(format!("'{s}' is not 'transfer FROM TO AMOUNT' or 'balance ACCOUNT'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_text() {
        assert_eq!(
            "transfer 1 2 30".parse::<TxnRequest>(),
            Ok(TxnRequest::Transfer { from: 1, to: 2, amount: 30 })
        );
        assert_eq!("balance 4".parse::<TxnRequest>(), Ok(TxnRequest::Balance { account: 4 }));
        assert!("transfer 1 2".parse::<TxnRequest>().is_err());
        assert!("balance x".parse::<TxnRequest>().is_err());
    }

    #[test]
    fn every_account_has_one_owner() {
        assert_eq!(owner(7, 5), NodeId(2));
        assert_eq!(owner(2, 5), NodeId(2));
        assert_eq!(owner(3, 1), NodeId(0));
    }
}
