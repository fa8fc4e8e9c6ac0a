//! quorum-check: the laboratory's judges.
//!
//! Every checker reads what a run left behind — the client [`History`], the
//! protocol's observations, the replicas' final state — and knows nothing of
//! the driver that produced it. Each one can fail, and each has a negative
//! control in its tests that it must catch.
//!
//! - [`linearizability`]: WGL search with memoisation, per key, against the
//!   [`models`]: register, cas-register, key-value, list-append, set,
//!   counter, FIFO queue, mutex.
//! - [`durability`]: acknowledged writes that did not survive.
//! - [`commit`]: atomic commitment (all participants decide alike, none
//!   reverses), the bank workload's balance invariant, blocked time.
//! - [`convergence`]: replicas equal after heal and quiescence.
//! - [`consensus`]: Agreement, Validity, Integrity, Termination; state
//!   machine safety of replicated logs; split brain.
//! - [`leadership`]: election safety, failover times, leader intervals.
//! - [`ledger`]: the always properties of one state of an exhaustive search
//!   (what its path observed, as growing sets).
//! - [`parse`]: histories in our JSON lines, Jepsen's EDN and Porcupine's
//!   key-value format, with keys and values of any type ([`datum`]);
//!   [`gen`]: synthetic ones.

pub mod byzantine;
pub mod commit;
pub mod consensus;
pub mod convergence;
pub mod datum;
pub mod durability;
pub mod gen;
pub mod history;
pub mod leadership;
pub mod ledger;
pub mod linearizability;
pub mod models;
pub mod parse;

pub use history::{History, Op, OpType, OpValue, F};
pub use linearizability::{
    check, check_recorded, check_recorded_with, check_with_budget, Linearization, Model, Options, Outcome,
    Report, Verdict,
};
pub use parse::{parse_history, read_history, to_json_lines, Format, ParseError, RecordedHistory};
