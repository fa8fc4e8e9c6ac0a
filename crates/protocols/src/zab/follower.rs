//! FOLLOWING: a follower's side of discovery, synchronisation and broadcast
//! (Zab §IV, phases 1–3; ZooKeeper's `Learner` and `Follower`).
//!
//! A session with one leader moves through three stages. *Discovery*: send
//! FOLLOWERINFO until NEWEPOCH arrives; persist `acceptedEpoch` (if the epoch
//! is new) before answering ACKEPOCH. *AckedEpoch*: wait for DIFF, TRUNC or
//! SNAP; install it, persist `currentEpoch`, then ACKNEWLEADER. *Synced*: the
//! history is a prefix of the leader's; append proposals that follow it,
//! persist before acking, and deliver up to the leader's commit point.
//! Handshake messages are retransmitted on every tick, since the network may
//! lose them; the leader answers duplicates idempotently.

use quorum_core::{NodeId, Observation, Out, StateMachine, Time};

use super::{Bug, Checkpoint, Msg, Phase, Proposal, Record, Snap, Timer, Zab, Zxid};

/// Where a follower's session with its leader stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// FOLLOWERINFO sent, waiting for NEWEPOCH.
    Discovery,
    /// ACKEPOCH sent for `epoch`; `counted` if this session accepted it first.
    AckedEpoch { epoch: u64, counted: bool },
    /// Synchronised with the leader of `epoch` (NEWLEADER acked).
    Synced { epoch: u64, up_to_date: bool },
}

#[derive(Clone, Debug)]
pub(super) struct Session {
    pub leader: NodeId,
    /// A random id of this session, so the leader tells a restarted
    /// follower from a duplicate message.
    pub session: u64,
    pub stage: Stage,
}

impl Session {
    pub fn new(leader: NodeId, session: u64) -> Session {
        Session { leader, session, stage: Stage::Discovery }
    }

    pub fn check(&self, me: NodeId, accepted_epoch: u64, current_epoch: u64) {
        assert_ne!(self.leader, me, "a node does not follow itself");
        match self.stage {
            Stage::Discovery => {}
            Stage::AckedEpoch { epoch, .. } => {
                assert_eq!(epoch, accepted_epoch, "ACKEPOCH only for acceptedEpoch")
            }
            Stage::Synced { epoch, .. } => {
                assert_eq!(epoch, accepted_epoch, "synced in the accepted epoch");
                assert_eq!(epoch, current_epoch, "NEWLEADER sets currentEpoch");
            }
        }
    }
}

/// How the leader synchronises this follower (each one is also NEWLEADER).
pub(super) enum Sync<S, C> {
    Diff { after: Zxid, proposals: Vec<Proposal<C>> },
    Trunc { to: Zxid, proposals: Vec<Proposal<C>> },
    Snap { snap: Snap<S>, proposals: Vec<Proposal<C>> },
}

impl<S: StateMachine> Zab<S> {
    /// The session, if this node follows `from`; any message from it also
    /// proves the leader alive.
    fn session_with(&self, from: NodeId) -> Option<Session> {
        match &self.phase {
            Phase::Following(session) if session.leader == from => Some(session.clone()),
            _ => None,
        }
    }

    fn set_stage(&mut self, stage: Stage) {
        if let Phase::Following(session) = &mut self.phase {
            session.stage = stage;
        }
    }

    fn leader_alive(&self, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::LeaderSilent, self.config.follower_timeout);
    }

    /// The synced epoch of a session with `from`, if the message's `epoch` is it.
    fn synced_with(&self, from: NodeId, epoch: u64) -> bool {
        matches!(self.session_with(from), Some(Session { stage: Stage::Synced { epoch: e, .. }, .. }) if e == epoch)
    }

    pub(super) fn handle_new_epoch(&mut self, from: NodeId, epoch: u64, out: &mut Out<'_, Self>) {
        let Some(session) = self.session_with(from) else { return };
        self.leader_alive(out);
        let counted = match session.stage {
            Stage::Discovery if epoch < self.accepted_epoch => {
                out.observe(Observation::Note(format!("NEWEPOCH {epoch} < acceptedEpoch: LOOKING")));
                return self.become_looking(out);
            }
            Stage::Discovery if epoch > self.accepted_epoch => {
                self.accepted_epoch = epoch;
                self.log(Record::AcceptedEpoch(epoch), out);
                true
            }
            // Accepted before, maybe for another would-be leader: an ack that
            // does not count toward this leader's discovery quorum.
            Stage::Discovery => false,
            Stage::AckedEpoch { epoch: acked, counted } if acked == epoch => counted,
            Stage::AckedEpoch { .. } | Stage::Synced { .. } => return,
        };
        self.set_stage(Stage::AckedEpoch { epoch, counted });
        self.send_ack_epoch(out);
    }

    fn send_ack_epoch(&self, out: &mut Out<'_, Self>) {
        let Phase::Following(Session { leader, session, stage: Stage::AckedEpoch { epoch, counted } }) =
            self.phase
        else {
            return;
        };
        let summary = self.history.summary();
        out.send(
            leader,
            Msg::AckEpoch { session, epoch, counted, current_epoch: self.current_epoch, summary },
        );
    }

    pub(super) fn handle_sync(
        &mut self,
        from: NodeId,
        sync_session: u64,
        epoch: u64,
        sync: Sync<S, S::Command>,
        commit: Zxid,
        out: &mut Out<'_, Self>,
    ) {
        let Some(session) = self.session_with(from) else { return };
        self.leader_alive(out);
        match (session.stage, sync) {
            // Only the sync computed from this session's ACKEPOCH: one
            // delayed from an earlier session of the same epoch describes a
            // history this node has since extended (and applied), and
            // truncating to it would drop committed proposals.
            (Stage::AckedEpoch { epoch: acked, .. }, sync)
                if acked == epoch && sync_session == session.session =>
            {
                self.handle_new_leader(epoch, sync, commit, out)
            }
            // Already synced: only what extends the history is taken (a
            // lagging follower's catch-up); a stale sync must not truncate
            // proposals this follower acked.
            (Stage::Synced { epoch: synced, .. }, Sync::Diff { after, proposals }) if synced == epoch => {
                self.handle_propose(from, epoch, after, proposals, commit, out)
            }
            (Stage::Synced { epoch: synced, .. }, Sync::Snap { snap, proposals })
                if synced == epoch && snap.zxid >= self.history.last_zxid() =>
            {
                self.install_snap(epoch, snap, proposals, out);
                out.send(from, Msg::Ack { epoch, zxid: self.history.last_zxid() });
                self.commit_to(commit, out);
            }
            _ => {}
        }
    }

    /// NEWLEADER: install the sync, then ack and deliver what is committed.
    fn handle_new_leader(
        &mut self,
        epoch: u64,
        sync: Sync<S, S::Command>,
        commit: Zxid,
        out: &mut Out<'_, Self>,
    ) {
        if !self.install_sync(epoch, sync, out) {
            return;
        }
        self.set_stage(Stage::Synced { epoch, up_to_date: false });
        self.send_ack_new_leader(out);
        self.commit_to(commit, out);
    }

    /// Make the history the leader's and persist it with `currentEpoch`.
    /// False if the sync is stale (its base is not in this history).
    fn install_sync(&mut self, epoch: u64, sync: Sync<S, S::Command>, out: &mut Out<'_, Self>) -> bool {
        let (base, proposals) = match sync {
            Sync::Snap { snap, proposals } => {
                self.install_snap(epoch, snap, proposals, out);
                return true;
            }
            Sync::Diff { after, proposals } => (after, proposals),
            Sync::Trunc { to, proposals } => (to, proposals),
        };
        let Some(base_index) = self.history.index_of(base) else {
            out.observe(Observation::Note(format!("stale sync from {base:?}: ignored")));
            return false;
        };
        if self.history.last_zxid() > base {
            if self.bug(Bug::SkipSyncTruncate) {
                return self.append_after_divergence(epoch, proposals, out);
            }
            assert!(base_index >= self.applied_index, "TRUNC never drops a committed proposal");
            out.observe(Observation::Reached(super::TRUNC_SYNCED.name));
            self.history.truncate_after(base);
            self.log(Record::Truncate(base), out);
        }
        let fresh: Vec<_> = proposals.into_iter().filter(|p| p.zxid > base).collect();
        self.append(fresh, out);
        self.current_epoch = epoch;
        self.log(Record::CurrentEpoch(epoch), out);
        true
    }

    /// `skip-sync-truncate`: keep the diverged suffix and renumber the
    /// leader's proposals after it.
    fn append_after_divergence(
        &mut self,
        epoch: u64,
        proposals: Vec<Proposal<S::Command>>,
        out: &mut Out<'_, Self>,
    ) -> bool {
        let mut index = self.history.last_index();
        let last = self.history.last_zxid();
        let renumbered: Vec<_> = proposals
            .into_iter()
            .filter(|p| p.zxid > last)
            .map(|mut p| {
                index += 1;
                p.index = index;
                p
            })
            .collect();
        self.append(renumbered, out);
        self.current_epoch = epoch;
        self.log(Record::CurrentEpoch(epoch), out);
        true
    }

    /// SNAP: replace state and history; the checkpoint persists both epochs.
    fn install_snap(
        &mut self,
        epoch: u64,
        snap: Snap<S>,
        proposals: Vec<Proposal<S::Command>>,
        out: &mut Out<'_, Self>,
    ) {
        out.observe(Observation::Reached(super::SNAP_SYNCED.name));
        assert!(epoch <= self.accepted_epoch);
        let checkpoint =
            Checkpoint { accepted_epoch: self.accepted_epoch, current_epoch: epoch, snap, proposals };
        self.install_checkpoint(checkpoint.clone());
        self.observed_index = self.observed_index.max(self.applied_index);
        out.checkpoint(Record::Checkpoint(checkpoint));
        self.records_since_checkpoint = 0;
    }

    /// Append (and persist) proposals that follow the history.
    fn append(&mut self, proposals: Vec<Proposal<S::Command>>, out: &mut Out<'_, Self>) {
        if proposals.is_empty() {
            return;
        }
        for proposal in &proposals {
            self.history.append(proposal.clone());
        }
        self.log(Record::Proposals(proposals), out);
    }

    fn send_ack_new_leader(&self, out: &mut Out<'_, Self>) {
        let Phase::Following(Session { leader, session, stage: Stage::Synced { epoch, .. } }) = self.phase
        else {
            return;
        };
        out.send(leader, Msg::AckNewLeader { session, epoch, last: self.history.last_zxid() });
    }

    /// UPTODATE and COMMIT: deliver up to `commit`.
    pub(super) fn handle_commit(&mut self, from: NodeId, epoch: u64, commit: Zxid, out: &mut Out<'_, Self>) {
        if !self.synced_with(from, epoch) {
            return;
        }
        self.leader_alive(out);
        self.set_stage(Stage::Synced { epoch, up_to_date: true });
        self.commit_to(commit, out);
    }

    pub(super) fn handle_propose(
        &mut self,
        from: NodeId,
        epoch: u64,
        prev: Zxid,
        proposals: Vec<Proposal<S::Command>>,
        commit: Zxid,
        out: &mut Out<'_, Self>,
    ) {
        if !self.synced_with(from, epoch) {
            return;
        }
        self.leader_alive(out);
        let last = self.history.last_zxid();
        if prev > last {
            // A gap (lost or reordered PROPOSAL): the leader resends on its tick.
            return;
        }
        // Invariant: our history is a prefix of the leader's, so the
        // proposals after `last` continue it exactly.
        let fresh: Vec<_> = proposals.into_iter().filter(|p| p.zxid > last).collect();
        if let Some(first) = fresh.first() {
            assert_eq!(
                first.index,
                self.history.last_index() + 1,
                "a synced history is a prefix of the leader's"
            );
        }
        self.append(fresh, out);
        out.send(from, Msg::Ack { epoch, zxid: self.history.last_zxid() });
        self.commit_to(commit, out);
    }

    pub(super) fn handle_ping(
        &mut self,
        from: NodeId,
        epoch: u64,
        commit: Zxid,
        sent_at: Time,
        out: &mut Out<'_, Self>,
    ) {
        if !self.synced_with(from, epoch) {
            return;
        }
        self.leader_alive(out);
        self.commit_to(commit, out);
        out.send(from, Msg::PingAck { epoch, sent_at, last: self.history.last_zxid() });
    }

    /// Retransmit the handshake message of the current stage, and re-arm.
    pub(super) fn follower_tick(&mut self, out: &mut Out<'_, Self>) {
        self.follower_tick_now(out);
        self.set_tick(out);
    }

    /// Retransmit the handshake message of the current stage.
    pub(super) fn follower_tick_now(&mut self, out: &mut Out<'_, Self>) {
        let Phase::Following(session) = &self.phase else { return };
        match session.stage {
            Stage::Discovery => out.send(
                session.leader,
                Msg::FollowerInfo { session: session.session, accepted_epoch: self.accepted_epoch },
            ),
            Stage::AckedEpoch { .. } => self.send_ack_epoch(out),
            Stage::Synced { up_to_date: false, .. } => self.send_ack_new_leader(out),
            Stage::Synced { up_to_date: true, .. } => {}
        }
    }
}
