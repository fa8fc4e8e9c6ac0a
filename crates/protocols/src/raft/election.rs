//! Leader election (Raft §5.2) with pre-vote (diss. §9.6) and check-quorum
//! (diss. §6.2): roles, terms, votes, and the transitions between them.

use std::collections::{BTreeSet, VecDeque};

use quorum_core::{ClientOutput, Micros, NodeId, Observation, Out, Role as CoreRole, StateMachine};

use super::{Bug, Msg, Payload, Progress, Raft, ReplicationState, Role, Timer};
use crate::quorum::Tally;

impl<S: StateMachine> Raft<S> {
    pub(super) fn reset_election_timer(&self, out: &mut Out<'_, Self>) {
        let (lo, hi) = (self.config.election_timeout_min.0, self.config.election_timeout_max.0);
        let after = Micros(out.rng().range(lo, hi));
        out.set_timer(Timer::Election, after);
    }

    /// Whether this node is, or recently heard from, a leader: it then
    /// refuses (pre-)votes that would depose that leader (diss. §4.2.3).
    pub(super) fn in_lease(&self, now: quorum_core::Time) -> bool {
        if self.is_leader() {
            return true;
        }
        let fresh = |t: quorum_core::Time| now.saturating_sub(t) < self.config.election_timeout_min;
        self.leader_contact.is_some_and(fresh)
    }

    /// Check-quorum (diss. §6.2), run before every step of a leader: one
    /// that has not heard from a majority within the minimum election
    /// timeout steps down. Checked lazily, so a leader that wakes from a
    /// long pause steps down before it acts on anything.
    pub(super) fn check_quorum_now(&mut self, out: &mut Out<'_, Self>) {
        if !self.is_leader() || !self.config.check_quorum {
            return;
        }
        let now = out.now();
        let oldest = self.quorum_value(now.0, |pr| pr.last_contact.0);
        if now.0.saturating_sub(oldest) >= self.config.election_timeout_min.0 {
            out.observe(Observation::Note("check-quorum: no majority heard, stepping down".into()));
            self.become_follower(self.term, None, out);
        }
    }

    pub(super) fn handle_election_timeout(&mut self, out: &mut Out<'_, Self>) {
        if self.is_leader() {
            return;
        }
        if !self.is_voter() {
            // Learners and removed servers never campaign.
            return self.reset_election_timer(out);
        }
        if self.config.pre_vote {
            self.become_pre_candidate(out);
        } else {
            self.become_candidate(out);
        }
    }

    /// Adopt `term` (if newer) as a follower of `leader`.
    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>, out: &mut Out<'_, Self>) {
        assert!(term >= self.term, "terms never go backwards");
        let changed = term > self.term || self.role != Role::Follower;
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state(out);
        }
        self.step_down_cleanup(out);
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        if changed {
            out.observe(Observation::Role { role: CoreRole::Follower, term: self.term });
        }
        out.cancel_timer(Timer::Heartbeat);
        out.cancel_timer(Timer::VoteRetry);
        self.reset_election_timer(out);
    }

    /// Forget leader state; a leader's unanswered clients learn that the
    /// outcome is unknown (proposals) or that nothing happened (reads).
    fn step_down_cleanup(&mut self, out: &mut Out<'_, Self>) {
        for (_, (id, _)) in std::mem::take(&mut self.proposals) {
            out.reply(id, S::Output::indeterminate("leader stepped down before the entry committed"));
        }
        for read in std::mem::take(&mut self.reads) {
            out.reply(read.id, S::Output::rejected("leader stepped down before the read", None));
        }
        if self.transfer.take().is_some() {
            out.cancel_timer(Timer::TransferTimeout);
        }
        self.progress.clear();
        self.round_sent.clear();
        self.lease_until = quorum_core::Time::ZERO;
        if self.leader == Some(self.id) {
            self.leader = None;
        }
    }

    fn become_pre_candidate(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.is_voter());
        assert_ne!(self.role, Role::Leader);
        if self.role != Role::PreCandidate {
            out.observe(Observation::Role { role: CoreRole::Candidate, term: self.term });
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes = Tally::granted_by(self.id);
        let msg = Msg::PreVote {
            term: self.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for voter in self.membership.voters.iter().filter(|v| **v != self.id) {
            out.send(*voter, msg.clone());
        }
        self.reset_election_timer(out);
        if self.votes.granted() >= self.membership.majority() {
            self.become_candidate(out);
        }
    }

    /// Bump the term, vote for oneself durably, then ask for votes (§5.2).
    pub(super) fn become_candidate(&mut self, out: &mut Out<'_, Self>) {
        self.start_election(false, out);
    }

    pub(super) fn start_election(&mut self, transfer: bool, out: &mut Out<'_, Self>) {
        assert!(self.is_voter());
        assert_ne!(self.role, Role::Leader);
        self.term += 1;
        self.vote = Some(self.id);
        self.persist_hard_state(out);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes = Tally::granted_by(self.id);
        self.campaign_transfer = transfer;
        out.observe(Observation::Role { role: CoreRole::Candidate, term: self.term });
        self.request_votes(out);
        self.reset_election_timer(out);
        if self.votes.granted() >= self.membership.majority() {
            self.become_leader(out);
        }
    }

    /// Send RequestVote to every voter that has not answered in this term,
    /// and come back in a heartbeat interval for those that still have not.
    fn request_votes(&self, out: &mut Out<'_, Self>) {
        let msg = Msg::RequestVote {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer: self.campaign_transfer,
        };
        for voter in self.membership.voters.iter().filter(|v| !self.votes.has_answered(**v)) {
            out.send(*voter, msg.clone());
        }
        out.set_timer(Timer::VoteRetry, self.config.heartbeat_interval);
    }

    pub(super) fn handle_vote_retry(&mut self, out: &mut Out<'_, Self>) {
        if self.role == Role::Candidate {
            self.request_votes(out);
        }
    }

    pub(super) fn handle_pre_vote(
        &mut self,
        from: NodeId,
        term: u64,
        last_index: u64,
        last_term: u64,
        out: &mut Out<'_, Self>,
    ) {
        let granted =
            term > self.term && self.log.is_up_to_date(last_index, last_term) && !self.in_lease(out.now());
        let term = if granted { term } else { self.term };
        out.send(from, Msg::PreVoteResponse { term, granted });
    }

    pub(super) fn handle_pre_vote_response(
        &mut self,
        from: NodeId,
        term: u64,
        granted: bool,
        out: &mut Out<'_, Self>,
    ) {
        if self.role != Role::PreCandidate || !granted || term != self.term + 1 {
            return;
        }
        if !self.membership.voters.contains(&from) {
            return;
        }
        self.votes.grant(from);
        if self.votes.granted() >= self.membership.majority() {
            self.become_candidate(out);
        }
    }

    /// §5.2, §5.4.1: one vote per term, to an up-to-date candidate, forced
    /// to the log before the answer leaves.
    pub(super) fn handle_request_vote(
        &mut self,
        from: NodeId,
        last_index: u64,
        last_term: u64,
        out: &mut Out<'_, Self>,
    ) {
        let free = self.vote.is_none() && self.leader.is_none();
        let can_vote = free || self.vote == Some(from);
        let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
        if granted && self.vote != Some(from) {
            self.vote = Some(from);
            out.observe(Observation::Vote { term: self.term, candidate: from });
            if !self.config.has(Bug::NoPersistVote) {
                self.persist_hard_state(out);
            }
            self.reset_election_timer(out);
        }
        out.send(from, Msg::RequestVoteResponse { term: self.term, granted });
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, granted: bool, out: &mut Out<'_, Self>) {
        if self.role != Role::Candidate || !self.membership.voters.contains(&from) {
            return;
        }
        if !granted {
            self.votes.refuse(from);
            return;
        }
        self.votes.grant(from);
        if self.votes.granted() >= self.membership.majority() {
            self.become_leader(out);
        }
    }

    /// Won the election: take over replication and append a no-op of the
    /// new term (§8), whose commit also commits every earlier entry.
    fn become_leader(&mut self, out: &mut Out<'_, Self>) {
        assert_eq!(self.role, Role::Candidate, "only a candidate becomes leader");
        assert_eq!(self.vote, Some(self.id));
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.leader_contact = Some(out.now());
        self.votes.clear();
        self.round_sent = VecDeque::new();
        out.observe(Observation::Role { role: CoreRole::Leader, term: self.term });
        out.cancel_timer(Timer::Election);
        out.cancel_timer(Timer::VoteRetry);
        self.sync_progress(out.now());
        if !self.config.has(Bug::CommitOldTerm) {
            self.append_as_leader(Payload::Noop, out);
        } else {
            self.broadcast_append(out);
        }
        self.broadcast_heartbeat(out);
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
    }

    /// Make the progress map match the membership (one entry per other
    /// member), keeping what is known of existing followers.
    pub(super) fn sync_progress(&mut self, now: quorum_core::Time) {
        if !self.is_leader() {
            return;
        }
        let members: BTreeSet<NodeId> = self.membership.members().filter(|m| *m != self.id).collect();
        self.progress.retain(|peer, _| members.contains(peer));
        let next_index = self.log.last_index() + 1;
        for member in members {
            self.progress.entry(member).or_insert_with(|| Progress {
                match_index: 0,
                next_index,
                state: ReplicationState::Probe,
                inflight: VecDeque::new(),
                probe_sent: false,
                last_contact: now,
                last_progress: now,
                acked_round: 0,
            });
        }
    }
}
