//! quorum-check: the laboratory's judges.
pub mod history;

pub use history::{History, Op, OpType, OpValue, F};
