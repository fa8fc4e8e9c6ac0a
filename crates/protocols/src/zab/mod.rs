//! ZAB, ZooKeeper Atomic Broadcast (source text, section "ZAB"; Junqueira,
//! Reed, Serafini, "Zab: High-performance broadcast for primary-backup
//! systems", DSN 2011; ZooKeeper's `FastLeaderElection`, `Leader`, `Learner`).
//!
//! A primary (the *leader*) orders every update as a *proposal* with a zxid
//! `(epoch, counter)` and broadcasts it; a quorum of acknowledgements commits
//! it, and every node delivers committed proposals in zxid order. Each node
//! cycles through four states:
//!
//! * **LOOKING — fast leader election** ([`election`]). Nodes exchange votes
//!   `(currentEpoch, last zxid, id)` tagged with an election round, adopt any
//!   better vote, and stop when a quorum holds the same vote. A LOOKING node
//!   that hears from an established leader joins it.
//! * **Phase 1, discovery** ([`leader`], [`follower`]). Followers send
//!   FOLLOWERINFO with their `acceptedEpoch`; once a quorum has, the leader
//!   proposes NEWEPOCH `e' = max + 1`. A follower persists `acceptedEpoch =
//!   e'` before it answers ACKEPOCH with its `currentEpoch` and a summary of
//!   its history. We use ZooKeeper's simplification: the leader must already
//!   hold the most up-to-date history of its discovery quorum (election
//!   prefers it); if an ACKEPOCH shows a follower ahead, the leader abdicates.
//!   A follower that already accepted `e'` before (say it restarted) answers
//!   with an ACKEPOCH that does not count toward the quorum (ZooKeeper's
//!   "epoch -1" ack), so no two leaders ever establish the same epoch.
//! * **Phase 2, synchronisation**. The leader sends each follower DIFF (the
//!   proposals it lacks), TRUNC (drop a diverged suffix, then the proposals it
//!   lacks) or SNAP (the state machine plus the proposals after it), computed
//!   from the follower's history summary by history matching ([`history`]).
//!   Each of these also plays NEWLEADER: the follower persists it and
//!   `currentEpoch = e'`, then acks. A quorum of acks commits the leader's whole
//!   history; the leader is *established*, says UPTODATE and broadcasts.
//! * **Phase 3, broadcast**. The leader assigns zxids, persists and sends
//!   PROPOSAL (a batch, when batching is on) with the zxid it follows, so a
//!   follower on a lossy, reordering network appends only in order;
//!   followers persist and ACK cumulatively. The leader commits in zxid order
//!   once a quorum holds a proposal and sends COMMIT; a heartbeat PING repeats
//!   the commit point, so idle followers converge.
//!
//! **Reads.** ZooKeeper reads locally (sequentially consistent). Here a read
//! goes to the leader, which answers it from its state once a round of PINGs
//! sent after the read arrived was acknowledged by a quorum of its epoch
//! (ZooKeeper's `sync` followed by a read, in the manner of Raft's ReadIndex):
//! no other leader can have been established, and therefore no write acked,
//! before the read. Followers reject reads and writes with a hint naming the
//! leader. [`Config::local_reads`] restores ZooKeeper's local reads, which the
//! simulator shows are not linearizable.
//!
//! **Failure detection.** A follower goes LOOKING when its leader is silent
//! for [`Config::follower_timeout`]. The leader keeps a lease: the send time of
//! the latest PING a quorum acknowledged plus `lease_percent` of the follower
//! timeout. Past it a new leader may exist, so it abdicates (and until then it
//! answers a write only while the lease holds, so two leaders never both
//! acknowledge writes). A restarted node sits out one follower timeout before
//! it joins anyone, honouring the leases it granted before it crashed.
//!
//! **Durability.** `acceptedEpoch`, `currentEpoch` and the history are
//! persisted before any message that depends on them; commits are not (a
//! restarted node relearns them from the leader). Every
//! [`Config::checkpoint_records_max`] records the node checkpoints: the state
//! machine at the applied point, both epochs and the history after it.

mod election;
mod follower;
pub mod history;
mod leader;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::{
    fnv1a, ClientOutput, Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId,
    StateMachine, Time,
};
use serde::{Deserialize, Serialize};

use crate::quorum;

pub use history::{History, Proposal, Zxid};

/// The catalogue entry (source text, "ZAB").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "zab",
    section: "ZAB",
    summary: "atomic broadcast with discovery, synchronisation and broadcast phases, epochs and zxids; \
              primary order, linearizable writes, linearizable reads after sync",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[reached::LEADER_CHANGED, reached::LEADER_CRASHED, TRUNC_SYNCED, SNAP_SYNCED],
    workload: catalog::Workload::Kv { cas: true },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "skip-sync-truncate",
            what: "a follower told to TRUNC keeps its diverged suffix (synchronisation phase)",
            caught_as: &[
                Violation::LogSafety,
                Violation::Linearizability,
                Violation::LostAckedWrites,
                Violation::Divergence,
                Violation::Panic,
            ],
        },
        catalog::Bug {
            name: "commit-without-quorum",
            what: "the leader commits a proposal as soon as it logged it itself (broadcast phase)",
            caught_as: &[
                Violation::LostAckedWrites,
                Violation::Linearizability,
                Violation::LogSafety,
                Violation::Divergence,
                Violation::Panic,
            ],
        },
    ],
    explorable: &[
        catalog::Setting { name: "batching", values: catalog::ON_OFF },
        // Checkpoint often or seldom: a follower that fell behind a
        // checkpoint is synchronised from a snapshot (SNAP), else by DIFF
        // or TRUNC (with the default alone, 1 seed in 500 reached SNAP).
        catalog::Setting { name: "checkpoint_records_max", values: &["16", "128"] },
    ],
    retries: 0,
};

/// A follower's diverged suffix was cut back by the new leader.
pub const TRUNC_SYNCED: Sometimes = Sometimes {
    name: "trunc_synced",
    what: "a follower with proposals the new leader never had was synchronised by TRUNC",
};
/// A follower too far behind was synchronised from a snapshot.
pub const SNAP_SYNCED: Sometimes = Sometimes {
    name: "snap_synced",
    what: "a follower behind the leader's history was synchronised by SNAP",
};

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// A follower told to TRUNC keeps its diverged suffix (uncommitted
    /// proposals of an old epoch) and appends the leader's proposals after it.
    SkipSyncTruncate,
    /// The leader commits a proposal as soon as it has logged it itself.
    CommitWithoutQuorum,
}

/// Settings of ZAB. `Default` suits the simulator's networks (one-way latency
/// of a few milliseconds, delays up to ~100 ms under faults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Period of the leader's PING, of a follower's handshake retransmission
    /// and of a LOOKING node's notification rebroadcast.
    pub tick_interval: Micros,
    /// A LOOKING node starts a new election round after this long (plus up
    /// to as much again, at random) without an outcome.
    pub election_round_timeout: Micros,
    /// How long a LOOKING node keeps listening for a better vote once a
    /// quorum agrees with its own (ZooKeeper's `finalizeWait`).
    pub finalize_wait: Micros,
    /// A follower whose leader is silent this long goes LOOKING; a leader
    /// that cannot establish itself within it abdicates.
    pub follower_timeout: Micros,
    /// The leader's lease, in percent of `follower_timeout`, from the send
    /// time of the latest PING a quorum acknowledged (< 95: timers drift ±5%).
    pub lease_percent: u64,
    /// Whether the leader gathers proposals (and read rounds) while others
    /// are in flight, sending them together; off: one PROPOSAL per write.
    pub batching: bool,
    /// Most proposals in one PROPOSAL message or one retransmission.
    pub batch_proposals_max: usize,
    /// Most bytes of proposals ([`history::Proposal::approx_bytes`]) in one
    /// PROPOSAL message or retransmission; a larger proposal goes alone.
    /// Bounds what one message (and a follower's one log record) holds when
    /// values are large. Default 1 MiB.
    pub batch_bytes_max: usize,
    /// Most client writes at the leader not yet committed (queued or
    /// proposed); beyond it new writes are rejected.
    pub pending_writes_max: usize,
    /// Most client reads waiting for a leadership round.
    pub pending_reads_max: usize,
    /// Durable records after which the node checkpoints.
    pub checkpoint_records_max: usize,
    /// Serve reads from any node's local state, as ZooKeeper does by default
    /// (sequentially consistent, not linearizable).
    pub local_reads: bool,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            tick_interval: Micros::from_millis(50),
            election_round_timeout: Micros::from_millis(300),
            finalize_wait: Micros::from_millis(20),
            follower_timeout: Micros::from_millis(400),
            lease_percent: 80,
            batching: true,
            batch_proposals_max: 64,
            batch_bytes_max: 1 << 20,
            pending_writes_max: 1024,
            pending_reads_max: 1024,
            checkpoint_records_max: 128,
            local_reads: false,
            bug: None,
        }
    }
}

impl Config {
    /// Settings for a real server: ticks and timeouts slower than the
    /// simulator's (a real disk stalls for tens of ms under load), and
    /// checkpoints far apart (a checkpoint writes the whole state).
    pub fn for_server() -> Config {
        Config {
            checkpoint_records_max: 20_000,
            tick_interval: Micros::from_millis(100),
            election_round_timeout: Micros::from_millis(500),
            follower_timeout: Micros::from_millis(1_500),
            ..Config::default()
        }
    }

    /// Reject settings that cannot work; run before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_interval.0 == 0 {
            return Err(ConfigError::new("tick_interval must be positive"));
        }
        if self.follower_timeout <= self.tick_interval {
            return Err(ConfigError::new("follower_timeout must exceed tick_interval"));
        }
        if self.finalize_wait >= self.election_round_timeout {
            return Err(ConfigError::new("finalize_wait must be below election_round_timeout"));
        }
        if self.election_round_timeout <= self.tick_interval {
            return Err(ConfigError::new("election_round_timeout must exceed tick_interval"));
        }
        if self.lease_percent == 0 || self.lease_percent >= 95 {
            return Err(ConfigError::new("lease_percent must be in [1, 95)"));
        }
        if self.batch_bytes_max == 0 {
            return Err(ConfigError::new("batch_bytes_max must be at least 1"));
        }
        if self.batch_proposals_max == 0 || self.pending_writes_max == 0 || self.pending_reads_max == 0 {
            return Err(ConfigError::new(
                "batch_proposals_max, pending_writes_max and pending_reads_max must be at least 1",
            ));
        }
        if self.checkpoint_records_max < 2 {
            return Err(ConfigError::new("checkpoint_records_max must be at least 2"));
        }
        Ok(())
    }

    fn lease(&self) -> Micros {
        Micros(self.follower_timeout.0 * self.lease_percent / 100)
    }
}

/// A vote of fast leader election: the proposed leader and its credentials
/// (its `currentEpoch` and last zxid). Better votes compare greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vote {
    pub epoch: u64,
    pub zxid: Zxid,
    pub leader: NodeId,
}

/// A sender's state in a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
}

/// The state machine at a point of the history, as SNAP carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snap<S> {
    pub zxid: Zxid,
    pub index: u64,
    pub state: S,
}

impl<S> fmt::Debug for Snap<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snap({:?}@{})", self.zxid, self.index)
    }
}

/// Peer messages, by phase. `epoch` is always the sender's leader epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg<S, C> {
    /// Fast leader election: the sender's vote in `round`, or (from a node
    /// that is not LOOKING) the leader it follows.
    Notification { vote: Vote, round: u64, state: PeerState },
    /// Discovery: a follower of `session` announces its `acceptedEpoch`.
    FollowerInfo { session: u64, accepted_epoch: u64 },
    /// Discovery: the leader's new epoch.
    NewEpoch { epoch: u64 },
    /// Discovery: the follower accepted `epoch` (`counted`: for the first
    /// time, so it counts toward the leader's quorum), with its credentials.
    AckEpoch { session: u64, epoch: u64, counted: bool, current_epoch: u64, summary: Vec<Zxid> },
    /// Sync + NEWLEADER for the follower's `session` (the one its ACKEPOCH
    /// named; a sync computed for an earlier session of the same epoch is
    /// stale): you hold my history up to `after`; append these.
    Diff { session: u64, epoch: u64, after: Zxid, proposals: Vec<Proposal<C>>, commit: Zxid },
    /// Sync + NEWLEADER for `session`: drop everything after `to`, then
    /// append these.
    Trunc { session: u64, epoch: u64, to: Zxid, proposals: Vec<Proposal<C>>, commit: Zxid },
    /// Sync + NEWLEADER for `session`: replace everything with this state
    /// and these (`session` 0: a catch-up of a synced follower).
    Snap { session: u64, epoch: u64, snap: Snap<S>, proposals: Vec<Proposal<C>>, commit: Zxid },
    /// The follower holds the leader's history up to `last`, in `epoch`.
    AckNewLeader { session: u64, epoch: u64, last: Zxid },
    /// The leader is established; everything up to `commit` is committed.
    UpToDate { epoch: u64, commit: Zxid },
    /// Broadcast: proposals that follow `prev` in the leader's history.
    Propose { epoch: u64, prev: Zxid, proposals: Vec<Proposal<C>>, commit: Zxid },
    /// The follower holds the leader's history up to `zxid`.
    Ack { epoch: u64, zxid: Zxid },
    /// Everything up to `zxid` is committed.
    Commit { epoch: u64, zxid: Zxid },
    /// Heartbeat and read round, sent at leader time `sent_at`.
    Ping { epoch: u64, commit: Zxid, sent_at: Time },
    /// The follower heard the PING of `sent_at`; it holds up to `last`.
    PingAck { epoch: u64, sent_at: Time, last: Zxid },
}

/// What a node makes durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<S, C> {
    AcceptedEpoch(u64),
    CurrentEpoch(u64),
    /// Proposals appended to the history.
    Proposals(Vec<Proposal<C>>),
    /// The history was truncated after this zxid (TRUNC).
    Truncate(Zxid),
    /// A checkpoint: replaces everything before it.
    Checkpoint(Checkpoint<S, C>),
}

/// A node's whole durable state.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint<S, C> {
    pub accepted_epoch: u64,
    pub current_epoch: u64,
    /// The state machine after applying the history up to here.
    pub snap: Snap<S>,
    /// The history after `snap`.
    pub proposals: Vec<Proposal<C>>,
}

impl<S, C> fmt::Debug for Checkpoint<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Checkpoint(acc={} cur={} {:?} +{} proposals)",
            self.accepted_epoch,
            self.current_epoch,
            self.snap,
            self.proposals.len()
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Periodic: rebroadcast votes (LOOKING), retransmit the handshake
    /// (FOLLOWING), ping and retransmit proposals (LEADING).
    Tick,
    /// A follower's leader has been silent for the follower timeout.
    LeaderSilent,
    /// A LOOKING node's finalize wait ended.
    Finalize,
}

/// What a node is doing.
#[derive(Clone, Debug)]
enum Phase<S: StateMachine> {
    Looking(election::Election),
    Following(follower::Session),
    Leading(Box<leader::Session<S>>),
}

/// One ZAB node.
#[derive(Clone, Debug)]
pub struct Zab<S: StateMachine> {
    cluster: Cluster,
    config: Config,
    /// The latest epoch this node promised (NEWEPOCH acked or proposed).
    accepted_epoch: u64,
    /// The epoch of the latest NEWLEADER this node accepted.
    current_epoch: u64,
    history: History<S::Command>,
    /// The state machine after applying the history up to `applied_index`.
    state: S,
    applied_index: u64,
    /// The highest index observed as applied in this incarnation.
    observed_index: u64,
    /// Records in the durable log since its checkpoint.
    records_since_checkpoint: usize,
    /// Fast leader election's logical clock.
    round: u64,
    /// Until then this node joins no leader (it may have granted a lease
    /// before it restarted).
    quiet_until: Time,
    phase: Phase<S>,
}

impl<S: StateMachine> Zab<S> {
    pub fn accepted_epoch(&self) -> u64 {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    pub fn history(&self) -> &History<S::Command> {
        &self.history
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn applied_zxid(&self) -> Zxid {
        self.zxid_at(self.applied_index)
    }

    /// The leader this node follows or is, if any.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.phase {
            Phase::Looking(_) => None,
            Phase::Following(session) => Some(session.leader),
            Phase::Leading(_) => Some(self.cluster.id),
        }
    }

    /// The epoch this node leads, once established.
    pub fn established_epoch(&self) -> Option<u64> {
        match &self.phase {
            Phase::Leading(session) if session.established => Some(session.epoch?),
            _ => None,
        }
    }

    pub fn is_looking(&self) -> bool {
        matches!(self.phase, Phase::Looking(_))
    }

    fn id(&self) -> NodeId {
        self.cluster.id
    }

    fn majority(&self) -> usize {
        quorum::majority(self.cluster.nodes.len())
    }

    fn bug(&self, bug: Bug) -> bool {
        self.config.bug == Some(bug)
    }

    fn zxid_at(&self, index: u64) -> Zxid {
        if index == self.history.base_index() {
            return self.history.base_zxid();
        }
        self.history.get(index).expect("the applied point is held").zxid
    }

    fn own_vote(&self) -> Vote {
        Vote { epoch: self.current_epoch, zxid: self.history.last_zxid(), leader: self.id() }
    }

    fn can_join(&self, now: Time) -> bool {
        now >= self.quiet_until
    }

    // ---- durability ----

    fn log(&mut self, record: Record<S, S::Command>, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records_since_checkpoint += 1;
    }

    /// Checkpoint when the log grew long: the state at the applied point,
    /// both epochs and the history after it. Called at the end of a step,
    /// once memory reflects every record of the step.
    fn maybe_checkpoint(&mut self, out: &mut Out<'_, Self>) {
        if self.records_since_checkpoint < self.config.checkpoint_records_max {
            return;
        }
        self.history.compact_to(self.applied_index);
        out.checkpoint(Record::Checkpoint(self.checkpoint()));
        self.records_since_checkpoint = 0;
    }

    fn checkpoint(&self) -> Checkpoint<S, S::Command> {
        Checkpoint {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            snap: self.snap(),
            proposals: self.history.after_index(self.applied_index, usize::MAX),
        }
    }

    fn snap(&self) -> Snap<S> {
        Snap { zxid: self.applied_zxid(), index: self.applied_index, state: self.state.clone() }
    }

    /// Rebuild the durable state from the log, without effects.
    fn replay(&mut self, record: &Record<S, S::Command>) {
        self.records_since_checkpoint += 1;
        match record {
            Record::AcceptedEpoch(epoch) => {
                assert!(*epoch >= self.accepted_epoch, "acceptedEpoch never decreases");
                self.accepted_epoch = *epoch;
            }
            Record::CurrentEpoch(epoch) => {
                assert!(*epoch <= self.accepted_epoch, "currentEpoch never passes acceptedEpoch");
                self.current_epoch = *epoch;
            }
            Record::Proposals(proposals) => {
                for proposal in proposals {
                    self.history.append(proposal.clone());
                }
            }
            Record::Truncate(zxid) => self.history.truncate_after(*zxid),
            Record::Checkpoint(checkpoint) => {
                self.records_since_checkpoint = 0;
                self.install_checkpoint(checkpoint.clone());
            }
        }
    }

    fn install_checkpoint(&mut self, checkpoint: Checkpoint<S, S::Command>) {
        self.accepted_epoch = checkpoint.accepted_epoch;
        self.current_epoch = checkpoint.current_epoch;
        self.history =
            History::from_snapshot(checkpoint.snap.zxid, checkpoint.snap.index, checkpoint.proposals);
        self.state = checkpoint.snap.state;
        self.applied_index = checkpoint.snap.index;
    }

    // ---- delivery ----

    /// Apply every proposal up to `commit` (clamped to the history), in
    /// order; return each applied position with the state machine's output.
    fn commit_to(&mut self, commit: Zxid, out: &mut Out<'_, Self>) -> Vec<(u64, S::Output)> {
        let mut outputs = Vec::new();
        while let Some(proposal) = self.history.get(self.applied_index + 1) {
            if proposal.zxid > commit {
                break;
            }
            let (index, zxid, command) = (proposal.index, proposal.zxid, proposal.command.clone());
            let output = self.state.apply(&command);
            self.applied_index = index;
            if index > self.observed_index {
                self.observed_index = index;
                out.observe(Observation::Apply {
                    index,
                    term: zxid.epoch,
                    command: command_digest(&command),
                });
            }
            outputs.push((index, output));
        }
        outputs
    }

    // ---- role changes ----

    fn set_tick(&self, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Tick, self.config.tick_interval);
    }

    /// Reject a client request without effect.
    fn reject(&self, id: RequestId, reason: &str, out: &mut Out<'_, Self>) {
        let hint = match &self.phase {
            Phase::Following(session) => Some(session.leader),
            Phase::Leading(_) => Some(self.id()),
            Phase::Looking(_) => None,
        };
        out.reply(id, S::Output::rejected(reason, hint));
    }

    fn handle_read_locally(&mut self, id: RequestId, command: &S::Command, out: &mut Out<'_, Self>) {
        debug_assert!(S::is_read_only(command));
        let output = self.state.apply(command);
        out.reply(id, output);
    }
}

/// A stable digest of a command, for `Observation::Apply`.
fn command_digest<C: fmt::Debug>(command: &C) -> u64 {
    fnv1a(format!("{command:?}").as_bytes())
}

impl<S: StateMachine> Protocol for Zab<S> {
    type Msg = Msg<S, S::Command>;
    type Request = S::Command;
    type Response = S::Output;
    type Record = Record<S, S::Command>;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, _nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Self::Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let mut node = Zab {
            cluster: cluster.clone(),
            config: config.clone(),
            accepted_epoch: 0,
            current_epoch: 0,
            history: History::new(),
            state: S::default(),
            applied_index: 0,
            observed_index: 0,
            records_since_checkpoint: 0,
            round: 0,
            quiet_until: Time::ZERO,
            phase: Phase::Looking(election::Election::new(Vote {
                epoch: 0,
                zxid: Zxid::ZERO,
                leader: cluster.id,
            })),
        };
        for record in durable {
            node.replay(record);
        }
        node.observed_index = node.applied_index;
        if !durable.is_empty() {
            node.quiet_until = out.now() + config.follower_timeout;
        }
        node.become_looking(out);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Out<'_, Self>) {
        if from == self.id() {
            return;
        }
        match msg {
            Msg::Notification { vote, round, state } => {
                self.handle_notification(from, vote, round, state, out)
            }
            Msg::FollowerInfo { session, accepted_epoch } => {
                self.handle_follower_info(from, session, accepted_epoch, out)
            }
            Msg::NewEpoch { epoch } => self.handle_new_epoch(from, epoch, out),
            Msg::AckEpoch { session, epoch, counted, current_epoch, summary } => {
                self.handle_ack_epoch(from, session, epoch, counted, current_epoch, summary, out)
            }
            Msg::Diff { session, epoch, after, proposals, commit } => {
                self.handle_sync(from, session, epoch, follower::Sync::Diff { after, proposals }, commit, out)
            }
            Msg::Trunc { session, epoch, to, proposals, commit } => {
                self.handle_sync(from, session, epoch, follower::Sync::Trunc { to, proposals }, commit, out)
            }
            Msg::Snap { session, epoch, snap, proposals, commit } => {
                self.handle_sync(from, session, epoch, follower::Sync::Snap { snap, proposals }, commit, out)
            }
            Msg::AckNewLeader { session, epoch, last } => {
                self.handle_ack_new_leader(from, session, epoch, last, out)
            }
            Msg::UpToDate { epoch, commit } => self.handle_commit(from, epoch, commit, out),
            Msg::Propose { epoch, prev, proposals, commit } => {
                self.handle_propose(from, epoch, prev, proposals, commit, out)
            }
            Msg::Ack { epoch, zxid } => self.handle_ack(from, epoch, zxid, out),
            Msg::Commit { epoch, zxid } => self.handle_commit(from, epoch, zxid, out),
            Msg::Ping { epoch, commit, sent_at } => self.handle_ping(from, epoch, commit, sent_at, out),
            Msg::PingAck { epoch, sent_at, last } => self.handle_ping_ack(from, epoch, sent_at, last, out),
        }
        self.maybe_checkpoint(out);
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match (timer, &self.phase) {
            (Timer::Tick, Phase::Looking(_)) => self.election_tick(out),
            (Timer::Tick, Phase::Following(_)) => self.follower_tick(out),
            (Timer::Tick, Phase::Leading(_)) => self.leader_tick(out),
            (Timer::LeaderSilent, Phase::Following(_)) => {
                out.observe(Observation::Note("leader silent: LOOKING".into()));
                self.become_looking(out);
            }
            (Timer::Finalize, Phase::Looking(_)) => self.election_finalize(out),
            (Timer::LeaderSilent | Timer::Finalize, _) => {}
        }
        self.maybe_checkpoint(out);
    }

    fn on_request(&mut self, id: RequestId, request: S::Command, out: &mut Out<'_, Self>) {
        let read_only = S::is_read_only(&request);
        if read_only && self.config.local_reads && !self.is_looking() {
            return self.handle_read_locally(id, &request, out);
        }
        match &self.phase {
            Phase::Leading(_) if read_only => self.handle_client_read(id, request, out),
            Phase::Leading(_) => self.handle_client_write(id, request, out),
            Phase::Following(_) => self.reject(id, "not the leader", out),
            Phase::Looking(_) => self.reject(id, "no leader: election in progress", out),
        }
        self.maybe_checkpoint(out);
    }

    fn invariants(&self) {
        self.history.check();
        assert!(self.current_epoch <= self.accepted_epoch, "currentEpoch ≤ acceptedEpoch");
        assert!(self.history.last_zxid().epoch <= self.accepted_epoch, "no proposal from a future epoch");
        assert!(self.applied_index >= self.history.base_index(), "the base is applied");
        assert!(self.applied_index <= self.history.last_index(), "only held proposals are applied");
        assert!(self.observed_index >= self.applied_index, "every applied position was observed");
        assert!(self.records_since_checkpoint < self.config.checkpoint_records_max + 8);
        match &self.phase {
            Phase::Looking(election) => election.check(self.cluster.nodes.len()),
            Phase::Following(session) => session.check(self.id(), self.accepted_epoch, self.current_epoch),
            Phase::Leading(session) => self.check_leader(session),
        }
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.state.digest())
    }

    fn read_local(&self, request: &S::Command) -> Option<S::Output> {
        self.state.query(request)
    }

    /// Zab applies what it commits, so the commit and applied positions are
    /// one; followers' acknowledged zxids are not log positions, so none are
    /// reported.
    fn progress(&self) -> Option<quorum_core::Progress> {
        Some(quorum_core::Progress {
            commit_index: self.applied_index,
            applied_index: self.applied_index,
            last_index: self.history.last_index(),
            leader: self.leader(),
            voters: self.cluster.nodes.clone(),
            learners: Vec::new(),
            followers: Vec::new(),
        })
    }

    fn carries_snapshot(msg: &Self::Msg) -> bool {
        matches!(msg, Msg::Snap { .. })
    }

    fn describe(&self) -> String {
        let common = format!(
            "acc={} cur={} last={:?}@{} applied={:?}@{}",
            self.accepted_epoch,
            self.current_epoch,
            self.history.last_zxid(),
            self.history.last_index(),
            self.applied_zxid(),
            self.applied_index
        );
        match &self.phase {
            Phase::Looking(election) => {
                format!(
                    "LOOKING round={} vote={}({:?}) {common}",
                    self.round, election.vote.leader, election.vote.zxid
                )
            }
            Phase::Following(session) => format!("FOLLOWING {} {:?} {common}", session.leader, session.stage),
            Phase::Leading(session) => format!("LEADING {} {common}", session.describe()),
        }
    }

    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        cluster_invariants(nodes)
    }
}

/// Cross-node checks: agreement on committed prefixes (same zxid and command
/// at every applied position both hold; with it total and primary order, as
/// each history's zxids increase), equal states at equal applied positions,
/// and at most one established leader per epoch.
fn cluster_invariants<S: StateMachine>(nodes: &[(NodeId, &Zab<S>)]) -> Result<(), String> {
    let mut leaders: BTreeMap<u64, NodeId> = BTreeMap::new();
    for (id, node) in nodes {
        if let Some(epoch) = node.established_epoch() {
            if let Some(other) = leaders.insert(epoch, *id) {
                return Err(format!("{other} and {id} both lead epoch {epoch}"));
            }
        }
    }
    for (i, (a_id, a)) in nodes.iter().enumerate() {
        for (b_id, b) in &nodes[i + 1..] {
            let upto = a.applied_index.min(b.applied_index);
            let from = a.history.base_index().max(b.history.base_index()) + 1;
            for index in from..=upto {
                let (Some(pa), Some(pb)) = (a.history.get(index), b.history.get(index)) else { continue };
                if pa.zxid != pb.zxid || pa.command != pb.command {
                    return Err(format!(
                        "committed histories disagree at {index}: {a_id} has {:?}, {b_id} has {:?}",
                        pa.zxid, pb.zxid
                    ));
                }
            }
            if a.applied_index == b.applied_index && a.state.digest() != b.state.digest() {
                return Err(format!(
                    "{a_id} and {b_id} applied up to {} but their states differ",
                    a.applied_index
                ));
            }
        }
    }
    Ok(())
}

/// Per-client bookkeeping at the leader, shared by the leader module.
#[derive(Clone, Debug)]
struct PendingRead<C> {
    id: RequestId,
    command: C,
    arrived_at: Time,
}

/// A write waiting at the leader: queued (no zxid yet) or proposed.
type Queue<C> = VecDeque<(RequestId, C)>;
