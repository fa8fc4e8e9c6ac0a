//! The Paxos family: single-decree Paxos and Multi-Paxos.

pub mod multi;
pub mod single;
