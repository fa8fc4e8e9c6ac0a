//! Raft: a replicated log with a strong leader (source text, section "Raft";
//! Ongaro & Ousterhout, "In Search of an Understandable Consensus
//! Algorithm", USENIX ATC 2014, cited as §N; Ongaro's dissertation,
//! "Consensus: Bridging Theory and Practice", 2014, cited as "diss. §N").
//!
//! Time is divided into *terms*, each with at most one leader (§5.2). A
//! follower that hears nothing from a leader for a randomised election
//! timeout first runs a *pre-vote* (diss. §9.6): it asks whether it could
//! win the next term without bumping its own, and peers that heard from a
//! leader within the minimum election timeout refuse, so a node cut off by a
//! partition cannot inflate terms and depose a healthy leader when it
//! returns. With a majority of pre-votes it becomes a *candidate*: it bumps
//! its term, votes for itself, forces term and vote to its log and only then
//! asks for votes. A server grants one vote per term, forced to its log
//! before it answers, and only to a candidate whose log is at least as
//! up-to-date as its own (§5.4.1). A candidate with votes from a majority
//! becomes leader and appends a no-op entry of its term (§8).
//!
//! The leader replicates its log with AppendEntries (§5.3): each carries the
//! index and term of the entry before the new ones, and a follower accepts
//! only if its log holds that entry, so logs that agree at one index agree on
//! the whole prefix (Log Matching). A rejecting follower names the first
//! index of its conflicting term, so the leader skips back a term per round
//! trip (§5.3, "optimization"). A leader sends up to
//! [`Config::batch_entries_max`] entries, and no more than
//! [`Config::batch_bytes_max`] bytes of them, per message and keeps up to
//! [`Config::max_inflight_appends`] messages in flight per follower
//! (pipelining, as etcd's `StateReplicate`), falling back to one probe at a
//! time after a rejection. An entry is *committed* once a majority stores it
//! **and** it belongs to the leader's current term (§5.4.2, figure 8);
//! earlier entries commit with it. Committed entries are applied in order to
//! the state machine, and the node that received the request answers it.
//! A leader that has not heard from a majority within an election timeout
//! steps down (*check-quorum*, diss. §6.2).
//!
//! Read-only commands skip the log (*ReadIndex*, diss. §6.4): the leader
//! notes its commit index, confirms it is still leader with a heartbeat round
//! acknowledged by a majority, waits until it has applied the noted index and
//! answers from its state. Optionally ([`Config::lease_reads`]) it answers at
//! once while a majority acknowledged it within a lease shorter than the
//! election timeout (diss. §6.4.1). Client sessions (diss. §6.3) remember,
//! per client, the last applied request and its output, so a retried command
//! is applied once. Snapshots (§7) compact the applied prefix; a follower
//! that needs a compacted entry receives the snapshot (InstallSnapshot).
//! Leadership transfer (diss. §3.10) and single-server membership changes
//! with learners (diss. §4.1, §4.2.1) are operator commands
//! ([`Raft::transfer_leadership`], [`Raft::propose_membership`],
//! [`Protocol::on_admin`]).
//!
//! Files: `log.rs` (the log), `election.rs` (roles, votes, pre-vote,
//! check-quorum), `replication.rs` (AppendEntries, commit, apply),
//! `read.rs` (ReadIndex, leases), `snapshot.rs` (sessions, snapshots,
//! recovery), `membership.rs` (configuration changes, leadership transfer).

mod election;
pub mod log;
mod membership;
mod read;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::{
    fnv1a, ClientOutput, Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId,
    Role as CoreRole, StateMachine, Time,
};
use serde::{Deserialize, Serialize};

use crate::quorum::{self, Tally};

pub use self::log::{Entry, Log, Payload};
pub use self::membership::MembershipChange;
pub use self::snapshot::{Checkpoint, Session, Sessions, Snapshot};

/// The catalogue entry (source text, "Raft").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "raft",
    section: "Raft",
    summary: "a replicated log with leader election (pre-vote, check-quorum), snapshots, membership change, \
              ReadIndex reads and leadership transfer; linearizable, durable with a minority down",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[
        reached::LEADER_CHANGED,
        reached::LEADER_CRASHED,
        reached::RETRIED,
        LOG_TRUNCATED,
        SNAPSHOT_INSTALLED,
        RETRY_ANSWERED,
    ],
    workload: catalog::Workload::Kv { cas: true },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "commit-old-term",
            what: "commits entries of earlier terms by counting replicas (figure 8, §5.4.2)",
            caught_as: &[
                Violation::LogSafety,
                Violation::ClusterInvariant,
                Violation::Linearizability,
                Violation::Panic,
            ],
        },
        catalog::Bug {
            name: "no-persist-vote",
            what: "never forces the vote to the log: a restarted voter votes twice in one term (§5.2)",
            caught_as: &[Violation::ElectionSafety, Violation::LogSafety, Violation::Linearizability],
        },
        catalog::Bug {
            name: "stale-read",
            what: "answers reads from local state at any node, without ReadIndex (diss. §6.4)",
            caught_as: &[Violation::Linearizability],
        },
        catalog::Bug {
            name: "no-sessions",
            what: "no client sessions: a retried command is applied twice (diss. §6.3)",
            caught_as: &[Violation::Linearizability],
        },
    ],
    explorable: &[
        catalog::Setting { name: "pre_vote", values: catalog::ON_OFF },
        catalog::Setting { name: "check_quorum", values: catalog::ON_OFF },
        catalog::Setting { name: "lease_reads", values: catalog::ON_OFF },
        catalog::Setting { name: "max_inflight_appends", values: &["1", "8"] },
        catalog::Setting { name: "batch_entries_max", values: &["1", "64"] },
        catalog::Setting { name: "election_timeout_max", values: &["200000", "300000"] },
    ],
    retries: 2,
};

/// A follower discarded a conflicting suffix of its log for the leader's.
pub const LOG_TRUNCATED: Sometimes = Sometimes {
    name: "log_truncated",
    what: "a follower discarded a conflicting suffix of its log for the leader's entries (§5.3)",
};
/// A follower too far behind took the leader's snapshot.
pub const SNAPSHOT_INSTALLED: Sometimes = Sometimes {
    name: "snapshot_installed",
    what: "a follower behind the leader's compacted log installed its snapshot (§7)",
};
/// A retried command was answered from its session, not applied again.
pub const RETRY_ANSWERED: Sometimes = Sometimes {
    name: "retry_answered",
    what: "a command retried after it was applied was answered from its client session (diss. §6.3)",
};

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Commit entries of earlier terms by counting replicas (the error of
    /// figure 8, §5.4.2). A new leader also skips its no-op, which would
    /// otherwise commit the old entries safely and hide the bug.
    CommitOldTerm,
    /// Never force the vote to the log: a voter that crashes and restarts
    /// can vote again in the same term (§5.2, figure 2 "persistent state").
    NoPersistVote,
    /// Answer reads from the local state at any node, without ReadIndex:
    /// stale reads from deposed leaders and lagging followers (diss. §6.4).
    StaleRead,
    /// No client sessions: a command retried with the same request id is
    /// applied again (diss. §6.3), so a retried write can overwrite a later
    /// one.
    NoSessions,
}

/// Settings. `Default` suits the simulator's networks (one-way latency of
/// 0.5–2 ms, up to 100 ms under faults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Election timeouts are drawn uniformly from `[min, max)`.
    pub election_timeout_min: Micros,
    pub election_timeout_max: Micros,
    /// How often a leader sends heartbeats (and retries stuck followers).
    pub heartbeat_interval: Micros,
    /// Most entries in one AppendEntries.
    pub batch_entries_max: usize,
    /// Most bytes of entries in one AppendEntries, by
    /// [`StateMachine::command_bytes`] plus a per-entry overhead (etcd's
    /// `MaxSizePerMsg`): with large commands the count limit alone lets one
    /// message to a lagging follower grow past what a transport accepts, and
    /// the follower would never catch up. An entry larger than this still
    /// travels, alone. Default 1 MiB.
    pub batch_bytes_max: usize,
    /// Most AppendEntries in flight to one follower (pipelining window).
    pub max_inflight_appends: usize,
    /// Run a pre-vote before bumping the term (diss. §9.6).
    pub pre_vote: bool,
    /// A leader steps down without a majority's contact within an election
    /// timeout; followers in contact with a leader ignore vote requests
    /// (diss. §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Serve reads under a leader lease instead of a heartbeat round per
    /// read (diss. §6.4.1). Requires `check_quorum`.
    pub lease_reads: bool,
    /// Applied entries after which a node snapshots and compacts its log.
    pub snapshot_entries: u64,
    /// Most proposals a leader holds unanswered; beyond it, new ones are
    /// rejected.
    pub proposals_max: usize,
    /// Most reads waiting for ReadIndex confirmation.
    pub reads_max: usize,
    /// Most client sessions remembered (least recently used evicted).
    pub sessions_max: usize,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            election_timeout_min: Micros::from_millis(150),
            election_timeout_max: Micros::from_millis(300),
            heartbeat_interval: Micros::from_millis(30),
            batch_entries_max: 64,
            batch_bytes_max: 1024 * 1024,
            max_inflight_appends: 8,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            snapshot_entries: 64,
            proposals_max: 1024,
            reads_max: 1024,
            sessions_max: 1024,
            bug: None,
        }
    }
}

impl Config {
    /// Settings for a real server: etcd's timeouts (heartbeat 100 ms,
    /// election 1–2 s), since a real disk stalls for tens of ms under load
    /// and check-quorum must not depose a healthy leader for it; snapshots
    /// far apart (a snapshot writes the whole state); room for every
    /// connection's session.
    pub fn for_server() -> Config {
        Config {
            snapshot_entries: 20_000,
            sessions_max: 65_536,
            heartbeat_interval: Micros::from_millis(100),
            election_timeout_min: Micros::from_millis(1_000),
            election_timeout_max: Micros::from_millis(2_000),
            ..Config::default()
        }
    }

    /// Reject settings that cannot work; run before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval.0 == 0 {
            return Err(ConfigError::new("heartbeat_interval must be positive"));
        }
        if self.election_timeout_min <= self.heartbeat_interval {
            return Err(ConfigError::new("election_timeout_min must exceed heartbeat_interval"));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(ConfigError::new("election_timeout_max must exceed election_timeout_min"));
        }
        if self.batch_entries_max == 0 || self.batch_bytes_max == 0 || self.max_inflight_appends == 0 {
            return Err(ConfigError::new(
                "batch_entries_max, batch_bytes_max and max_inflight_appends must be at least 1",
            ));
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::new("lease_reads requires check_quorum"));
        }
        if self.snapshot_entries == 0 {
            return Err(ConfigError::new("snapshot_entries must be at least 1"));
        }
        if self.proposals_max == 0 || self.reads_max == 0 || self.sessions_max == 0 {
            return Err(ConfigError::new("proposals_max, reads_max and sessions_max must be at least 1"));
        }
        Ok(())
    }

    fn has(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }
}

/// The voting members and the non-voting learners (diss. §4.2.1).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let voters: Vec<u32> = self.voters.iter().map(|n| n.0).collect();
        let learners: Vec<u32> = self.learners.iter().map(|n| n.0).collect();
        write!(f, "voters={voters:?} learners={learners:?}")
    }
}

impl Membership {
    /// Voters and learners: everyone the leader replicates to.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    pub fn majority(&self) -> usize {
        quorum::majority(self.voters.len())
    }
}

/// Peer messages. Every message carries the sender's term (§5.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Msg<S: StateMachine> {
    /// Could I win `term` (the sender's term + 1)? Changes no state (diss. §9.6).
    PreVote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    PreVoteResponse {
        term: u64,
        granted: bool,
    },
    /// Vote for me in `term`. `transfer`: sent on a leader's TimeoutNow, so
    /// voters ignore their leader lease (diss. §3.10).
    RequestVote {
        term: u64,
        last_index: u64,
        last_term: u64,
        transfer: bool,
    },
    RequestVoteResponse {
        term: u64,
        granted: bool,
    },
    /// §5.3: append `entries` after `(prev_index, prev_term)`; the leader
    /// has committed up to `commit`.
    AppendEntries {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry<S::Command>>,
        commit: u64,
    },
    /// `success`: the log matches the leader's up to `index`. Otherwise
    /// `index` is the rejected `prev_index`, with the conflict hint.
    AppendEntriesResponse {
        term: u64,
        success: bool,
        index: u64,
        conflict_term: Option<u64>,
        conflict_index: u64,
    },
    /// A leader's periodic contact and ReadIndex round; `commit` is capped
    /// at what the follower is known to match.
    Heartbeat {
        term: u64,
        commit: u64,
        round: u64,
    },
    HeartbeatResponse {
        term: u64,
        round: u64,
    },
    /// §7: replace your state with this snapshot.
    InstallSnapshot {
        term: u64,
        snapshot: Box<Snapshot<S>>,
    },
    /// Start an election now, skipping pre-vote (diss. §3.10).
    TimeoutNow {
        term: u64,
    },
}

impl<S: StateMachine> Msg<S> {
    pub fn term(&self) -> u64 {
        match *self {
            Msg::PreVote { term, .. }
            | Msg::PreVoteResponse { term, .. }
            | Msg::RequestVote { term, .. }
            | Msg::RequestVoteResponse { term, .. }
            | Msg::AppendEntries { term, .. }
            | Msg::AppendEntriesResponse { term, .. }
            | Msg::Heartbeat { term, .. }
            | Msg::HeartbeatResponse { term, .. }
            | Msg::InstallSnapshot { term, .. }
            | Msg::TimeoutNow { term } => term,
        }
    }
}

/// What a node forces to its log. On restart the records after the latest
/// checkpoint are replayed in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Record<S: StateMachine> {
    /// Current term and vote (§5.2, figure 2 "persistent state").
    HardState { term: u64, vote: Option<NodeId> },
    /// Entries appended at `entries[0].index`, replacing any from there on.
    Append { entries: Vec<Entry<S::Command>> },
    /// Snapshot, hard state and retained log: replaces the whole log.
    Checkpoint(Box<Checkpoint<S>>),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Follower or candidate: no leader heard; campaign.
    Election,
    /// Leader: heartbeat round, check-quorum, retry stuck followers.
    Heartbeat,
    /// Leader: give up a leadership transfer that did not complete.
    TransferTimeout,
    /// Candidate: ask again the voters that have not answered (§5.1:
    /// "servers retry RPCs if they do not receive a response in a timely
    /// manner"), so one lost RequestVote does not cost a whole election.
    VoteRetry,
}

/// A server's role (§5.1), with the pre-vote phase (diss. §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Leader's view of one follower's replication (etcd's `Progress`).
#[derive(Clone, Debug)]
struct Progress {
    /// Highest index known to match the leader's log.
    match_index: u64,
    /// Next index to send. Invariant: `match_index < next_index`.
    next_index: u64,
    state: ReplicationState,
    /// Last index of each AppendEntries in flight (Replicate only).
    inflight: VecDeque<u64>,
    /// Probe only: an AppendEntries is outstanding.
    probe_sent: bool,
    /// When the follower last answered anything in this term.
    last_contact: Time,
    /// When its match last advanced or its state was (re)entered.
    last_progress: Time,
    /// The highest heartbeat round it acknowledged.
    acked_round: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplicationState {
    /// One AppendEntries at a time until the match point is found.
    Probe,
    /// Optimistic, pipelined.
    Replicate,
    /// A snapshot at this index is on its way.
    Snapshot(u64),
}

/// A read waiting for ReadIndex (diss. §6.4).
#[derive(Clone, Debug)]
struct PendingRead<C> {
    id: RequestId,
    command: C,
    /// The commit index to wait for; `None` until the leader has committed
    /// an entry of its term.
    index: Option<u64>,
    /// The heartbeat round that must be acknowledged by a majority.
    round: u64,
}

/// One Raft server over the replicated state machine `S`.
#[derive(Clone, Debug)]
pub struct Raft<S: StateMachine> {
    id: NodeId,
    config: Config,
    // Persistent state (§5.2, figure 2).
    term: u64,
    vote: Option<NodeId>,
    log: Log<S::Command>,
    // Volatile state.
    role: Role,
    leader: Option<NodeId>,
    commit_index: u64,
    applied_index: u64,
    /// The latest configuration in the log (or snapshot).
    membership: Membership,
    /// Index of the entry that holds `membership` (0: the snapshot's or the initial).
    membership_index: u64,
    /// State machine and client sessions as of `applied_index`.
    state: S,
    sessions: Sessions<S::Output>,
    /// The latest snapshot (sent to followers that need it).
    snapshot: Snapshot<S>,
    /// When this node last heard from a current leader (or was one).
    leader_contact: Option<Time>,
    /// The answers to this node's current campaign: pre-votes or votes
    /// granted, and (RequestVote only) refused, each voter counted once.
    votes: Tally,
    /// Whether the campaign is a leadership transfer.
    campaign_transfer: bool,
    // Leader state.
    progress: BTreeMap<NodeId, Progress>,
    /// Proposals this node received: log index -> (request, term).
    proposals: BTreeMap<u64, (RequestId, u64)>,
    reads: VecDeque<PendingRead<S::Command>>,
    /// The latest heartbeat round sent, and when each unconfirmed round left.
    round: u64,
    round_sent: VecDeque<(u64, Time)>,
    /// Lease reads: valid until this time.
    lease_until: Time,
    /// A leadership transfer in progress, to this node.
    transfer: Option<NodeId>,
}

/// Digest of an applied entry for `Observation::Apply`.
fn entry_digest<C: fmt::Debug>(entry: &Entry<C>) -> u64 {
    fnv1a(format!("{}:{:?}", entry.term, entry.payload).as_bytes())
}

impl<S: StateMachine> Raft<S> {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn log(&self) -> &Log<S::Command> {
        &self.log
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    fn is_voter(&self) -> bool {
        self.membership.voters.contains(&self.id)
    }

    fn reject(&self, id: RequestId, reason: &str, out: &mut Out<'_, Self>) {
        let hint = self.leader.filter(|l| *l != self.id);
        out.reply(id, S::Output::rejected(reason, hint));
    }

    /// The value a majority of voters has reached, given each voter's value
    /// (this node's own via `own`; 0 for a voter it knows nothing of, and
    /// when there are no voters).
    fn quorum_value(&self, own: u64, of_peer: impl Fn(&Progress) -> u64) -> u64 {
        let values = self.membership.voters.iter().map(|v| {
            if *v == self.id {
                own
            } else {
                self.progress.get(v).map_or(0, &of_peer)
            }
        });
        quorum::committed(values, self.membership.majority()).unwrap_or(0)
    }

    fn persist_hard_state(&self, out: &mut Out<'_, Self>) {
        let vote = if self.config.has(Bug::NoPersistVote) { None } else { self.vote };
        out.persist(Record::HardState { term: self.term, vote });
    }

    // ---- dispatch ----

    /// Term rules shared by every message (§5.1): a higher term makes this
    /// node a follower of that term, a lower term marks a stale sender.
    /// Returns whether the message should be handled.
    fn check_term(&mut self, from: NodeId, msg: &Msg<S>, out: &mut Out<'_, Self>) -> bool {
        let term = msg.term();
        if term > self.term {
            match msg {
                // A pre-vote asks about a future term and changes nothing.
                Msg::PreVote { .. } => return true,
                Msg::PreVoteResponse { granted: true, .. } => return true,
                Msg::RequestVote { transfer: false, .. }
                    if self.config.check_quorum && self.in_lease(out.now()) =>
                {
                    // diss. §4.2.3: a server in contact with a leader ignores
                    // disruptive vote requests, without adopting the term.
                    return false;
                }
                _ => {}
            }
            let leader = match msg {
                Msg::AppendEntries { .. } | Msg::Heartbeat { .. } | Msg::InstallSnapshot { .. } => Some(from),
                _ => None,
            };
            self.become_follower(term, leader, out);
            return true;
        }
        if term < self.term {
            match msg {
                // Tell a deposed leader (or a stale pre-candidate) the news.
                Msg::AppendEntries { .. } | Msg::Heartbeat { .. } | Msg::InstallSnapshot { .. } => {
                    out.send(from, Msg::HeartbeatResponse { term: self.term, round: 0 });
                }
                Msg::PreVote { .. } => {
                    out.send(from, Msg::PreVoteResponse { term: self.term, granted: false });
                }
                _ => {}
            }
            return false;
        }
        true
    }

    fn dispatch(&mut self, from: NodeId, msg: Msg<S>, out: &mut Out<'_, Self>) {
        match msg {
            Msg::PreVote { term, last_index, last_term } => {
                self.handle_pre_vote(from, term, last_index, last_term, out)
            }
            Msg::PreVoteResponse { term, granted } => self.handle_pre_vote_response(from, term, granted, out),
            Msg::RequestVote { last_index, last_term, .. } => {
                self.handle_request_vote(from, last_index, last_term, out)
            }
            Msg::RequestVoteResponse { granted, .. } => self.handle_vote_response(from, granted, out),
            Msg::AppendEntries { prev_index, prev_term, entries, commit, .. } => {
                self.handle_append_entries(from, prev_index, prev_term, entries, commit, out)
            }
            Msg::AppendEntriesResponse { success, index, conflict_term, conflict_index, .. } => {
                self.handle_append_response(from, success, index, conflict_term, conflict_index, out)
            }
            Msg::Heartbeat { commit, round, .. } => self.handle_heartbeat(from, commit, round, out),
            Msg::HeartbeatResponse { round, .. } => self.handle_heartbeat_response(from, round, out),
            Msg::InstallSnapshot { snapshot, .. } => self.handle_install_snapshot(from, *snapshot, out),
            Msg::TimeoutNow { .. } => self.handle_timeout_now(from, out),
        }
    }

    fn handle_request(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        if S::is_read_only(&command) {
            if self.config.has(Bug::StaleRead) {
                let output = self.state.apply(&command);
                return out.reply(id, output);
            }
            return self.handle_read(id, command, out);
        }
        if !self.is_leader() {
            return self.reject(id, "not the leader", out);
        }
        if self.transfer.is_some() {
            return self.reject(id, "leadership transfer in progress", out);
        }
        if let Some(output) = self.sessions.duplicate(id).filter(|_| !self.config.has(Bug::NoSessions)) {
            // Already applied: answer with the original output (diss. §6.3).
            out.observe(Observation::Reached(RETRY_ANSWERED.name));
            return out.reply(id, output);
        }
        if self.proposals.len() >= self.config.proposals_max {
            return self.reject(id, "too many proposals in flight", out);
        }
        if self.proposals.values().any(|(pending, _)| *pending == id) {
            return; // a duplicate delivery of a request already in the log
        }
        // Registered first: in a single-node cluster the entry commits and
        // is answered within the append.
        self.proposals.insert(self.log.last_index() + 1, (id, self.term));
        self.append_as_leader(Payload::Command { id, command }, out);
    }
}

impl<S: StateMachine> Protocol for Raft<S> {
    type Msg = Msg<S>;
    type Request = S::Command;
    type Response = S::Output;
    type Record = Record<S>;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, _nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record<S>], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let membership =
            Membership { voters: cluster.nodes.iter().copied().collect(), learners: BTreeSet::new() };
        let snapshot = Snapshot::initial(membership.clone());
        let mut node = Raft {
            id: cluster.id,
            config: config.clone(),
            term: 0,
            vote: None,
            log: Log::new(),
            role: Role::Follower,
            leader: None,
            commit_index: 0,
            applied_index: 0,
            membership,
            membership_index: 0,
            state: S::default(),
            sessions: Sessions::default(),
            snapshot,
            // With leases, a restarted node assumes a leader may be alive
            // and helps elect no other within an election timeout: it may
            // have acknowledged that leader's lease just before it crashed.
            leader_contact: (config.lease_reads && !durable.is_empty()).then_some(out.now()),
            votes: Tally::new(),
            campaign_transfer: false,
            progress: BTreeMap::new(),
            proposals: BTreeMap::new(),
            reads: VecDeque::new(),
            round: 0,
            round_sent: VecDeque::new(),
            lease_until: Time::ZERO,
            transfer: None,
        };
        node.recover(durable);
        out.observe(Observation::Role { role: CoreRole::Follower, term: node.term });
        node.reset_election_timer(out);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg<S>, out: &mut Out<'_, Self>) {
        self.check_quorum_now(out);
        if self.check_term(from, &msg, out) {
            self.dispatch(from, msg, out);
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        self.check_quorum_now(out);
        match timer {
            Timer::Election => self.handle_election_timeout(out),
            Timer::Heartbeat => self.handle_heartbeat_tick(out),
            Timer::TransferTimeout => self.handle_transfer_timeout(out),
            Timer::VoteRetry => self.handle_vote_retry(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: S::Command, out: &mut Out<'_, Self>) {
        self.check_quorum_now(out);
        self.handle_request(id, request, out);
    }

    fn on_admin(&mut self, command: &str, out: &mut Out<'_, Self>) -> Result<(), String> {
        self.check_quorum_now(out);
        self.handle_admin(command, out)
    }

    fn invariants(&self) {
        self.log.check();
        assert!(self.commit_index <= self.log.last_index(), "commit index past the log");
        assert!(self.applied_index <= self.commit_index, "applied an uncommitted entry");
        assert!(self.applied_index >= self.log.snapshot_index(), "snapshot ahead of the state machine");
        assert_eq!(self.snapshot.index, self.log.snapshot_index());
        assert!(self.sessions.len() <= self.config.sessions_max);
        self.sessions.check();
        match self.role {
            Role::Leader => {
                assert_eq!(self.vote, Some(self.id), "a leader voted for itself");
                assert_eq!(self.leader, Some(self.id));
                assert!(self.proposals.len() <= self.config.proposals_max);
                assert!(self.reads.len() <= self.config.reads_max);
                for (peer, pr) in &self.progress {
                    assert_ne!(*peer, self.id, "no progress for oneself");
                    assert!(pr.match_index < pr.next_index, "{peer}: match must stay below next");
                    assert!(pr.match_index <= self.log.last_index(), "{peer}: matched past the log");
                    assert!(pr.inflight.len() <= self.config.max_inflight_appends);
                }
                for member in self.membership.members().filter(|m| *m != self.id) {
                    assert!(self.progress.contains_key(&member), "{member} has no progress");
                }
            }
            Role::Candidate => assert_eq!(self.vote, Some(self.id), "a candidate votes for itself"),
            Role::Follower | Role::PreCandidate => {
                assert!(self.proposals.is_empty(), "only a leader holds proposals");
                assert!(self.reads.is_empty(), "only a leader holds reads");
                assert!(self.progress.is_empty(), "only a leader tracks progress");
                assert!(self.transfer.is_none());
            }
        }
        if self.role != Role::Leader {
            assert_ne!(self.leader, Some(self.id), "only a leader names itself leader");
        }
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.state.digest())
    }

    fn read_local(&self, request: &S::Command) -> Option<S::Output> {
        self.state.query(request)
    }

    fn progress(&self) -> Option<quorum_core::Progress> {
        let followers = match self.role {
            Role::Leader => self.progress.iter().map(|(node, p)| (*node, p.match_index)).collect(),
            _ => Vec::new(),
        };
        Some(quorum_core::Progress {
            commit_index: self.commit_index,
            applied_index: self.applied_index,
            last_index: self.log.last_index(),
            leader: self.leader,
            voters: self.membership.voters.iter().copied().collect(),
            learners: self.membership.learners.iter().copied().collect(),
            followers,
        })
    }

    fn carries_snapshot(msg: &Self::Msg) -> bool {
        matches!(msg, Msg::InstallSnapshot { .. })
    }

    fn describe(&self) -> String {
        let leader = self.leader.map_or("none".to_string(), |l| l.to_string());
        format!(
            "{:?} term={} vote={} log={}@{} commit={} applied={} snapshot={} leader={} {:?}",
            self.role,
            self.term,
            self.vote.map_or("none".to_string(), |v| v.to_string()),
            self.log.last_index(),
            self.log.last_term(),
            self.commit_index,
            self.applied_index,
            self.log.snapshot_index(),
            leader,
            self.membership,
        )
        .to_lowercase()
    }

    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        check_log_matching(nodes)?;
        check_leader_completeness(nodes)
    }
}

/// §5.3 Log Matching: two logs that hold an entry with the same index and
/// term are identical up to it (checked on the retained parts).
fn check_log_matching<S: StateMachine>(nodes: &[(NodeId, &Raft<S>)]) -> Result<(), String> {
    for (i, (a_id, a)) in nodes.iter().enumerate() {
        for (b_id, b) in &nodes[i + 1..] {
            let lo = a.log.first_index().max(b.log.first_index());
            let hi = a.log.last_index().min(b.log.last_index());
            let Some(agree) = (lo..=hi).rev().find(|ix| a.log.term_at(*ix) == b.log.term_at(*ix)) else {
                continue;
            };
            for ix in lo..=agree {
                if a.log.entry(ix) != b.log.entry(ix) {
                    return Err(format!(
                        "log matching: {a_id} and {b_id} agree on the term at {agree} but differ at {ix}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// §5.4 Leader Completeness: a current leader's log holds every committed
/// entry of its term or earlier. Committed entries are those up to some
/// node's commit index; only leaders of the highest live term are judged
/// (a deposed leader may lack entries committed after its term).
fn check_leader_completeness<S: StateMachine>(nodes: &[(NodeId, &Raft<S>)]) -> Result<(), String> {
    let Some(max_term) = nodes.iter().map(|(_, n)| n.term).max() else { return Ok(()) };
    for (leader_id, leader) in nodes.iter().filter(|(_, n)| n.is_leader() && n.term == max_term) {
        for (other_id, other) in nodes {
            for entry in other.log.entries().iter().take_while(|e| e.index <= other.commit_index) {
                if entry.term > leader.term || entry.index <= leader.log.snapshot_index() {
                    continue;
                }
                if leader.log.entry(entry.index) != Some(entry) {
                    return Err(format!(
                        "leader completeness: leader {leader_id} (term {}) lacks entry {entry:?} committed at {other_id}",
                        leader.term
                    ));
                }
            }
        }
    }
    Ok(())
}
