//! Client sessions (diss. §6.3), snapshots and log compaction (§7), and
//! recovery from the durable log.
//!
//! After [`super::Config::snapshot_entries`] applied entries a node copies
//! its state machine and sessions into a snapshot at its applied index and
//! drops the log up to there. The durable log is then one checkpoint record
//! (snapshot, term, vote, retained entries) that replaces everything before
//! it. A follower whose next entry the leader no longer has receives the
//! snapshot instead (InstallSnapshot) and keeps any log suffix that follows
//! it consistently.

use std::collections::BTreeMap;
use std::fmt;

use quorum_core::{NodeId, Observation, Out, RequestId, StateMachine};
use serde::{Deserialize, Serialize};

use super::{Bug, Entry, Membership, Msg, Payload, Raft, Record, ReplicationState};

/// A client's last applied request and its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session<O> {
    pub seq: u64,
    pub output: O,
    /// The log index it was applied at (for least-recently-used eviction).
    pub index: u64,
}

/// Client sessions: part of the replicated state, so every replica dedupes
/// alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SessionsData<O>", into = "SessionsData<O>", bound(serialize = "O: Clone + Serialize"))]
pub struct Sessions<O> {
    clients: BTreeMap<u64, Session<O>>,
    /// Each session's apply index → its client: the least recently used
    /// session is the first entry, so eviction is O(log n), not a scan.
    by_index: BTreeMap<u64, u64>,
}

/// What a snapshot stores of the sessions (the index is derived).
#[derive(Serialize, Deserialize)]
struct SessionsData<O> {
    clients: BTreeMap<u64, Session<O>>,
}

impl<O> From<SessionsData<O>> for Sessions<O> {
    fn from(data: SessionsData<O>) -> Self {
        let by_index = data.clients.iter().map(|(client, s)| (s.index, *client)).collect();
        Sessions { clients: data.clients, by_index }
    }
}

impl<O> From<Sessions<O>> for SessionsData<O> {
    fn from(sessions: Sessions<O>) -> Self {
        SessionsData { clients: sessions.clients }
    }
}

impl<O> Default for Sessions<O> {
    fn default() -> Self {
        Sessions { clients: BTreeMap::new(), by_index: BTreeMap::new() }
    }
}

impl<O: Clone> Sessions<O> {
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The eviction index names every session exactly once, at its index.
    pub fn check(&self) {
        assert_eq!(self.by_index.len(), self.clients.len(), "one index entry per session");
        for (index, client) in &self.by_index {
            assert_eq!(self.clients.get(client).map(|s| s.index), Some(*index), "session index out of date");
        }
    }

    /// The original output if request `id` was already applied.
    pub fn duplicate(&self, id: RequestId) -> Option<O> {
        self.clients.get(&id.client).filter(|s| s.seq == id.seq).map(|s| s.output.clone())
    }

    /// Apply `command` for request `id` at `index` unless its client already
    /// had it (or a later request) applied. Returns the output to answer
    /// with: the fresh one, the original one for a retry, `None` for a stale
    /// request whose output is forgotten.
    pub fn apply<S: StateMachine<Output = O>>(
        &mut self,
        state: &mut S,
        id: RequestId,
        command: &S::Command,
        index: u64,
        sessions_max: usize,
    ) -> Option<O> {
        match self.clients.get(&id.client) {
            Some(session) if session.seq == id.seq => return Some(session.output.clone()),
            Some(session) if session.seq > id.seq => return None,
            _ => {}
        }
        let output = state.apply(command);
        let session = Session { seq: id.seq, output: output.clone(), index };
        if let Some(previous) = self.clients.insert(id.client, session) {
            self.by_index.remove(&previous.index);
        }
        self.by_index.insert(index, id.client);
        if self.clients.len() > sessions_max {
            let (_, oldest) = self.by_index.pop_first().expect("not empty");
            self.clients.remove(&oldest);
        }
        Some(output)
    }
}

/// The applied state at `index` (whose entry has `term`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Snapshot<S: StateMachine> {
    pub index: u64,
    pub term: u64,
    /// The configuration as of `index`.
    pub membership: Membership,
    pub state: S,
    pub sessions: Sessions<S::Output>,
}

impl<S: StateMachine> fmt::Debug for Snapshot<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Snapshot {}/{} {:?} digest={:04x}",
            self.index,
            self.term,
            self.membership,
            self.state.digest() & 0xffff
        )
    }
}

impl<S: StateMachine> Snapshot<S> {
    pub fn initial(membership: Membership) -> Snapshot<S> {
        Snapshot { index: 0, term: 0, membership, state: S::default(), sessions: Sessions::default() }
    }
}

/// The whole durable state in one record.
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Checkpoint<S: StateMachine> {
    pub term: u64,
    pub vote: Option<NodeId>,
    pub snapshot: Snapshot<S>,
    /// The retained log after the snapshot.
    pub entries: Vec<Entry<S::Command>>,
}

impl<S: StateMachine> fmt::Debug for Checkpoint<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vote = self.vote.map_or("none".to_string(), |v| v.to_string());
        write!(f, "term={} vote={} {:?} entries={}", self.term, vote, self.snapshot, self.entries.len())
    }
}

impl<S: StateMachine> Raft<S> {
    /// Rebuild the durable state from the log, without effects.
    pub(super) fn recover(&mut self, durable: &[Record<S>]) {
        for record in durable {
            match record {
                Record::HardState { term, vote } => {
                    assert!(*term >= self.term, "terms never go backwards in the log");
                    self.term = *term;
                    self.vote = *vote;
                }
                Record::Append { entries } => {
                    let first = entries.first().expect("appends are not empty").index;
                    assert!(first > self.log.snapshot_index(), "append into the snapshot");
                    assert!(first <= self.log.last_index() + 1, "append leaves a gap");
                    self.log.truncate_after(first - 1);
                    for entry in entries {
                        self.log.append(entry.clone());
                    }
                }
                Record::Checkpoint(checkpoint) => {
                    self.term = checkpoint.term;
                    self.vote = checkpoint.vote;
                    let snapshot = &checkpoint.snapshot;
                    self.log =
                        super::Log::restored(snapshot.index, snapshot.term, checkpoint.entries.clone());
                    self.snapshot = snapshot.clone();
                }
            }
        }
        self.state = self.snapshot.state.clone();
        self.sessions = self.snapshot.sessions.clone();
        self.commit_index = self.snapshot.index;
        self.applied_index = self.snapshot.index;
        self.refresh_membership(quorum_core::Time::ZERO);
    }

    fn checkpoint_record(&self) -> Record<S> {
        let vote = if self.config.has(Bug::NoPersistVote) { None } else { self.vote };
        Record::Checkpoint(Box::new(Checkpoint {
            term: self.term,
            vote,
            snapshot: self.snapshot.clone(),
            entries: self.log.entries().to_vec(),
        }))
    }

    /// Snapshot and compact once enough entries were applied since the last.
    pub(super) fn maybe_snapshot(&mut self, out: &mut Out<'_, Self>) {
        if self.applied_index - self.log.snapshot_index() < self.config.snapshot_entries {
            return;
        }
        let index = self.applied_index;
        let term = self.log.term_at(index).expect("the applied entry is retained");
        self.snapshot = Snapshot {
            index,
            term,
            membership: self.membership_at(index),
            state: self.state.clone(),
            sessions: self.sessions.clone(),
        };
        self.log.compact(index, term);
        out.checkpoint(self.checkpoint_record());
    }

    /// The configuration in force at `index`: the latest one at or before it.
    fn membership_at(&self, index: u64) -> Membership {
        self.log
            .entries()
            .iter()
            .rev()
            .filter(|e| e.index <= index)
            .find_map(|e| match &e.payload {
                Payload::Membership(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| self.snapshot.membership.clone())
    }

    /// Recompute the configuration from the log (it takes effect when
    /// appended, and reverts if its entry is truncated) and the leader's
    /// progress map with it.
    pub(super) fn refresh_membership(&mut self, now: quorum_core::Time) {
        let latest = self.log.entries().iter().rev().find_map(|e| match &e.payload {
            Payload::Membership(m) => Some((e.index, m.clone())),
            _ => None,
        });
        let (index, membership) =
            latest.unwrap_or_else(|| (self.snapshot.index, self.snapshot.membership.clone()));
        self.membership = membership;
        self.membership_index = index;
        self.sync_progress(now);
        if self.transfer.is_some_and(|to| !self.membership.voters.contains(&to)) {
            self.transfer = None;
        }
    }

    pub(super) fn send_snapshot(&mut self, to: NodeId, out: &mut Out<'_, Self>) {
        let now = out.now();
        let Some(pr) = self.progress.get_mut(&to) else { return };
        pr.state = ReplicationState::Snapshot(self.snapshot.index);
        pr.inflight.clear();
        pr.probe_sent = false;
        pr.last_progress = now;
        out.send(to, Msg::InstallSnapshot { term: self.term, snapshot: Box::new(self.snapshot.clone()) });
    }

    /// §7: adopt the leader's snapshot unless it is already covered by our
    /// committed log; keep a log suffix that follows it consistently.
    pub(super) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        snapshot: Snapshot<S>,
        out: &mut Out<'_, Self>,
    ) {
        if !self.accept_leader(from, out) {
            return;
        }
        let success = |index| Msg::AppendEntriesResponse {
            term: self.term,
            success: true,
            index,
            conflict_term: None,
            conflict_index: 0,
        };
        if snapshot.index <= self.commit_index {
            return out.send(from, success(self.commit_index));
        }
        let index = snapshot.index;
        let response = success(index);
        out.observe(Observation::Reached(super::SNAPSHOT_INSTALLED.name));
        self.log.compact(snapshot.index, snapshot.term);
        self.state = snapshot.state.clone();
        self.sessions = snapshot.sessions.clone();
        self.commit_index = index;
        self.applied_index = index;
        self.snapshot = snapshot;
        self.refresh_membership(out.now());
        out.checkpoint(self.checkpoint_record());
        out.send(from, response);
    }
}
