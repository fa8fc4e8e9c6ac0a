//! The Paxos family: single-decree Paxos, one write-once instance per key
//! ([`single`], Paxos Made Simple §2), and Multi-Paxos, a replicated log of
//! instances under a stable leader ([`multi`], §3). Each is split by role as
//! its module doc maps; both count with [`crate::quorum`].

pub mod multi;
pub mod single;
