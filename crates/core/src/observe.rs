//! Observations: what a protocol tells the checkers, never the network.

use crate::NodeId;
use serde::{Deserialize, Serialize};

/// A node's role, in the vocabulary shared by leader-based protocols
/// (primary = leader, backup = follower).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

/// Something a protocol saw or did that a checker may judge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Observation {
    /// The node took `role` in `term` (a term, view, epoch or ballot round).
    /// Leadership lasts until the next `Role` observation or a crash.
    Role { role: Role, term: u64 },
    /// The node granted its vote to `candidate` in `term`. One vote per
    /// term, across restarts (Raft §5.2): a node that grants two candidates
    /// one term can elect two leaders in it.
    Vote { term: u64, candidate: NodeId },
    /// The node applied `command` (a digest) at log position `index`.
    /// State machine safety: no two nodes apply different commands at one index.
    Apply { index: u64, term: u64, command: u64 },
    /// The node proposed `value` for consensus instance `instance`.
    Propose { instance: u64, value: u64 },
    /// The node decided (learned) `value` for `instance`.
    Decide { instance: u64, value: u64 },
    /// The node began round `round` of `instance` (a round-based randomised
    /// consensus such as Ben-Or's), for the figures of rounds to decide.
    Round { instance: u64, round: u64 },
    /// A cohort voted yes for transaction `txn` and is now in doubt: it can
    /// neither commit nor abort on its own until it learns the outcome (the
    /// simulator reports the time spent in doubt as blocked time).
    Prepared { txn: u64 },
    /// A participant decided transaction `txn`. Atomicity: all participants
    /// decide the same way, and no decision is ever reversed.
    TxnDecided { txn: u64, commit: bool },
    /// The node, as commander, sent `value` as its order in `instance`
    /// (the Byzantine generals).
    Order { instance: u64, value: u64 },
    /// The node, as lieutenant, obeys `value` as `commander`'s order in
    /// `instance`. IC1: loyal lieutenants obey alike; IC2: they obey a loyal
    /// commander's order.
    Obey { instance: u64, commander: NodeId, value: u64 },
    /// The protocol reached one of its "sometimes" properties (by name,
    /// as its catalogue entry declares it; see [`crate::claims`]): the hard
    /// case its safety properties must survive happened.
    Reached(&'static str),
    /// A replica of a gossiping protocol (CRDTs) after a step that changed
    /// its state or ran a gossip round: its state's `digest`, the gossip
    /// rounds it has run and the gossip bytes it has sent since it started
    /// (both restart from 0 after a crash). The convergence figures (rounds
    /// and bytes to converge) are read from these.
    Replica { digest: u64, rounds: u64, bytes_sent: u64 },
    /// Free-form, for traces only.
    Note(String),
}

/// A node's replication as an operator sees it: what
/// `Protocol::progress` reports, for metrics and admin tools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Highest log position this node knows committed.
    pub commit_index: u64,
    /// Highest log position applied to its state machine.
    pub applied_index: u64,
    /// Last position in its log.
    pub last_index: u64,
    /// The node it believes leads, if any.
    pub leader: Option<NodeId>,
    /// The configuration in force: voting members and learners.
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// On a leader: every other member and the highest log position known
    /// to match the leader's log there (`last_index` minus it is the lag).
    pub followers: Vec<(NodeId, u64)>,
}
