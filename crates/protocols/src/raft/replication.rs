//! Log replication (Raft §5.3), the commitment rule (§5.4.2) and applying
//! committed entries in order.

use quorum_core::{ClientOutput, NodeId, Observation, Out, StateMachine};

use super::{entry_digest, Bug, Entry, Msg, Payload, Raft, Record, ReplicationState, Role};

impl<S: StateMachine> Raft<S> {
    /// Leader: append an entry of the current term, force it, replicate it.
    /// Returns its index.
    pub(super) fn append_as_leader(&mut self, payload: Payload<S::Command>, out: &mut Out<'_, Self>) -> u64 {
        assert!(self.is_leader(), "only a leader appends on its own");
        let is_membership = matches!(payload, Payload::Membership(_));
        let entry = Entry { index: self.log.last_index() + 1, term: self.term, payload };
        let index = entry.index;
        self.log.append(entry.clone());
        if is_membership {
            self.refresh_membership(out.now());
        }
        // Replicate before the local append (diss. §10.2.1): the followers'
        // writes overlap the leader's, and nothing that depends on the entry
        // (a commit, a reply) is emitted until after the persist below, so
        // the driver holds it back until the entry is durable here too.
        self.broadcast_append(out);
        out.persist(Record::Append { entries: vec![entry] });
        self.maybe_commit(out);
        index
    }

    pub(super) fn broadcast_append(&mut self, out: &mut Out<'_, Self>) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_appends(peer, out);
        }
    }

    /// Send `to` as much as its replication state allows.
    pub(super) fn send_appends(&mut self, to: NodeId, out: &mut Out<'_, Self>) {
        for _ in 0..=self.config.max_inflight_appends {
            if !self.send_append(to, out) {
                return;
            }
        }
    }

    /// One AppendEntries (or a snapshot) to `to` if its state allows;
    /// returns whether another may follow at once (pipelining).
    fn send_append(&mut self, to: NodeId, out: &mut Out<'_, Self>) -> bool {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&to) else { return false };
        let blocked = match pr.state {
            ReplicationState::Snapshot(_) => true,
            ReplicationState::Probe => pr.probe_sent,
            ReplicationState::Replicate => {
                pr.inflight.len() >= self.config.max_inflight_appends || pr.next_index > last
            }
        };
        if blocked {
            return false;
        }
        if pr.next_index < self.log.first_index() {
            self.send_snapshot(to, out);
            return false;
        }
        let prev_index = pr.next_index - 1;
        let prev_term = self.log.term_at(prev_index).expect("the entry before next is retained");
        let entries = self.log.slice(
            pr.next_index,
            self.config.batch_entries_max,
            self.config.batch_bytes_max,
            S::command_bytes,
        );
        let last_sent = prev_index + entries.len() as u64;
        let pipelined = pr.state == ReplicationState::Replicate;
        if pipelined {
            if pr.inflight.is_empty() {
                pr.last_progress = out.now(); // a new flight starts the patience clock
            }
            pr.next_index = last_sent + 1;
            pr.inflight.push_back(last_sent);
        } else {
            pr.probe_sent = true;
        }
        let commit = self.commit_index;
        out.send(to, Msg::AppendEntries { term: self.term, prev_index, prev_term, entries, commit });
        pipelined
    }

    /// Forget what is in flight to `peer` (it may be lost) and probe again
    /// from its match point.
    pub(super) fn restart_probe(&mut self, peer: NodeId, out: &mut Out<'_, Self>) {
        let now = out.now();
        let Some(pr) = self.progress.get_mut(&peer) else { return };
        pr.state = ReplicationState::Probe;
        pr.next_index = pr.match_index + 1;
        pr.inflight.clear();
        pr.probe_sent = false;
        pr.last_progress = now;
        self.send_appends(peer, out);
    }

    /// Accept `from` as this term's leader (a candidate of the same term
    /// steps down, §5.2) and restart the election timeout.
    pub(super) fn accept_leader(&mut self, from: NodeId, out: &mut Out<'_, Self>) -> bool {
        if self.is_leader() {
            // Two leaders in one term: impossible unless votes were lost
            // (Bug::NoPersistVote). Ignore the other.
            out.observe(Observation::Note(format!("second leader {from} in term {}", self.term)));
            return false;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from), out);
        } else {
            self.reset_election_timer(out);
        }
        self.leader_contact = Some(out.now());
        true
    }

    /// §5.3: the consistency check, then append what is new, force it,
    /// and only then acknowledge.
    pub(super) fn handle_append_entries(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry<S::Command>>,
        commit: u64,
        out: &mut Out<'_, Self>,
    ) {
        if !self.accept_leader(from, out) {
            return;
        }
        let (mut prev_index, mut prev_term, mut entries) = (prev_index, prev_term, entries);
        let snapshot_index = self.log.snapshot_index();
        if prev_index < snapshot_index {
            // Our snapshot holds committed entries, which match the leader's.
            let covered = (snapshot_index - prev_index) as usize;
            if entries.len() <= covered {
                let index = prev_index + entries.len() as u64;
                return self.respond_append(from, true, index, None, 0, out);
            }
            entries.drain(..covered);
            prev_index = snapshot_index;
            prev_term = self.log.snapshot_term();
        }
        if prev_index > self.log.last_index() || self.log.term_at(prev_index) != Some(prev_term) {
            let (conflict_term, conflict_index) = self.log.conflict_hint(prev_index);
            return self.respond_append(from, false, prev_index, conflict_term, conflict_index, out);
        }
        let match_index = prev_index + entries.len() as u64;
        if let Some(pos) = entries.iter().position(|e| self.log.term_at(e.index) != Some(e.term)) {
            let fresh = entries.split_off(pos);
            self.append_as_follower(fresh, out);
        }
        self.respond_append(from, true, match_index, None, 0, out);
        self.learn_commit(commit.min(match_index), out);
    }

    /// Replace the log from `fresh[0].index` on with `fresh`, durably.
    fn append_as_follower(&mut self, fresh: Vec<Entry<S::Command>>, out: &mut Out<'_, Self>) {
        let first = fresh[0].index;
        if first <= self.commit_index {
            // Raft §5.4: committed entries are never overwritten. Only a
            // deliberately broken variant gets here; let the checkers see it.
            assert!(self.config.bug.is_some(), "overwriting committed entry {first}");
            self.commit_index = first - 1;
            self.applied_index = self.applied_index.min(first - 1);
        }
        let membership_changed = self.membership_index >= first
            || fresh.iter().any(|e| matches!(e.payload, Payload::Membership(_)));
        if first <= self.log.last_index() {
            out.observe(Observation::Reached(super::LOG_TRUNCATED.name));
        }
        self.log.truncate_after(first - 1);
        for entry in &fresh {
            self.log.append(entry.clone());
        }
        out.persist(Record::Append { entries: fresh });
        if membership_changed {
            self.refresh_membership(out.now());
        }
    }

    fn respond_append(
        &self,
        to: NodeId,
        success: bool,
        index: u64,
        conflict_term: Option<u64>,
        conflict_index: u64,
        out: &mut Out<'_, Self>,
    ) {
        out.send(
            to,
            Msg::AppendEntriesResponse { term: self.term, success, index, conflict_term, conflict_index },
        );
    }

    /// Follower: advance the commit index to `commit` (already capped at
    /// what is known to match the leader) and apply.
    pub(super) fn learn_commit(&mut self, commit: u64, out: &mut Out<'_, Self>) {
        if commit > self.commit_index {
            self.commit_index = commit;
            self.apply_committed(out);
        }
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        conflict_term: Option<u64>,
        conflict_index: u64,
        out: &mut Out<'_, Self>,
    ) {
        if !self.is_leader() {
            return;
        }
        let now = out.now();
        let hinted = match conflict_term {
            Some(term) => self.log.last_index_of_term(term).map_or(conflict_index, |i| i + 1),
            None => conflict_index,
        };
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.last_contact = now;
        if success {
            if pr.state == ReplicationState::Probe {
                pr.probe_sent = false;
            }
            let advanced = index > pr.match_index;
            if advanced {
                pr.match_index = index;
                pr.next_index = pr.next_index.max(index + 1);
                pr.inflight.retain(|last| *last > index);
                pr.last_progress = now;
            }
            // The match point is found (even if it did not move: an empty
            // probe must not be repeated forever): replicate from it.
            let found = match pr.state {
                ReplicationState::Probe => index >= pr.match_index,
                ReplicationState::Snapshot(at) => index >= at,
                ReplicationState::Replicate => false,
            };
            if found {
                pr.state = ReplicationState::Replicate;
                pr.next_index = index + 1;
                pr.inflight.clear();
            }
            if advanced {
                self.maybe_commit(out);
            }
        } else {
            let stale = match pr.state {
                ReplicationState::Replicate => index <= pr.match_index,
                // A duplicate, or (only under a deliberate bug) a rejection
                // below the match point: never let either re-trigger a probe,
                // or duplicated messages would amplify into a storm.
                ReplicationState::Probe => index + 1 != pr.next_index || index <= pr.match_index,
                ReplicationState::Snapshot(_) => true,
            };
            if stale {
                return;
            }
            pr.next_index = hinted.min(index).max(pr.match_index + 1);
            pr.state = ReplicationState::Probe;
            pr.inflight.clear();
            pr.probe_sent = false;
        }
        if self.is_leader() {
            self.send_appends(from, out);
            self.maybe_finish_transfer(from, out);
        }
    }

    /// §5.4.2: commit the highest index stored by a majority of voters,
    /// provided it holds an entry of the current term (figure 8).
    pub(super) fn maybe_commit(&mut self, out: &mut Out<'_, Self>) {
        if !self.is_leader() {
            return;
        }
        let replicated = self.quorum_value(self.log.last_index(), |pr| pr.match_index);
        if replicated <= self.commit_index {
            return;
        }
        let of_this_term = self.log.term_at(replicated) == Some(self.term);
        if !of_this_term && !self.config.has(Bug::CommitOldTerm) {
            return;
        }
        self.commit_index = replicated;
        self.apply_committed(out);
        if !self.is_voter() && self.commit_index >= self.membership_index {
            // diss. §4.2.2: a leader removed from the cluster steps down once
            // the configuration without it is committed.
            out.observe(Observation::Note("removed from the cluster: stepping down".into()));
            self.become_follower(self.term, None, out);
            return;
        }
        self.process_reads(out);
    }

    /// Apply `(applied, commit]` in order; the node that received a proposal
    /// answers it.
    pub(super) fn apply_committed(&mut self, out: &mut Out<'_, Self>) {
        while self.applied_index < self.commit_index {
            let index = self.applied_index + 1;
            // Borrowed, not cloned: the log, the state and the sessions are
            // disjoint fields.
            let entry = self.log.entry(index).expect("committed entries past the snapshot are retained");
            self.applied_index = index;
            out.observe(Observation::Apply { index, term: entry.term, command: entry_digest(entry) });
            let output = match &entry.payload {
                Payload::Command { id, command } if self.config.has(Bug::NoSessions) => {
                    Some((*id, Some(self.state.apply(command))))
                }
                Payload::Command { id, command } => {
                    let output =
                        self.sessions.apply(&mut self.state, *id, command, index, self.config.sessions_max);
                    Some((*id, output))
                }
                Payload::Noop | Payload::Membership(_) => None,
            };
            if let Some((id, term)) = self.proposals.remove(&index) {
                let response = match output {
                    Some((applied_id, Some(output))) if applied_id == id && term == entry.term => output,
                    _ => S::Output::indeterminate("the proposal was superseded"),
                };
                out.reply(id, response);
            }
        }
        self.maybe_snapshot(out);
    }

    pub(super) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        commit: u64,
        round: u64,
        out: &mut Out<'_, Self>,
    ) {
        if !self.accept_leader(from, out) {
            return;
        }
        out.send(from, Msg::HeartbeatResponse { term: self.term, round });
        self.learn_commit(commit.min(self.log.last_index()), out);
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64, out: &mut Out<'_, Self>) {
        if !self.is_leader() {
            return;
        }
        let now = out.now();
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.last_contact = now;
        pr.acked_round = pr.acked_round.max(round);
        if pr.state == ReplicationState::Probe {
            pr.probe_sent = false; // etcd: a heartbeat answer resumes probing
        }
        // Behind with no progress for a heartbeat interval: appends in
        // flight were probably lost (a snapshot gets the tick's patience).
        let stalled = now.saturating_sub(pr.last_progress) >= self.config.heartbeat_interval
            && pr.state == ReplicationState::Replicate;
        if pr.match_index < last {
            if stalled {
                self.restart_probe(from, out);
            } else {
                self.send_appends(from, out);
            }
        }
        self.process_reads(out);
    }

    /// Leader tick: retry followers that made no progress for a while
    /// (lost messages), then a heartbeat round.
    pub(super) fn handle_heartbeat_tick(&mut self, out: &mut Out<'_, Self>) {
        if !self.is_leader() {
            return;
        }
        let now = out.now();
        let last = self.log.last_index();
        let patience = quorum_core::Micros(self.config.heartbeat_interval.0 * 4);
        let stuck: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, pr)| pr.match_index < last && now.saturating_sub(pr.last_progress) >= patience)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in stuck {
            self.restart_probe(peer, out);
        }
        self.broadcast_heartbeat(out);
        out.set_timer(super::Timer::Heartbeat, self.config.heartbeat_interval);
    }
}
