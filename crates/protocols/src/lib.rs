//! quorum-protocols: every protocol of the survey as a sans-IO state machine
//! over the `quorum_core::Protocol` contract. Nothing here touches a clock, a
//! socket, a file, a thread or OS randomness: time and a seeded RNG arrive in
//! `Out`, and effects leave through it.

pub mod anti_entropy;
mod batch;
pub mod ben_or;
pub mod byzantine_generals;
pub mod catalog;
pub mod commit;
pub mod crdt;
pub mod fast_paxos;
pub mod paxos;
pub mod quorum;
pub mod raft;
pub mod replication;
pub mod two_generals;
pub mod zab;

#[cfg(test)]
pub(crate) mod testkit;
