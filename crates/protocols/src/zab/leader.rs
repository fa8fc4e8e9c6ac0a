//! LEADING: the leader's side of discovery, synchronisation and broadcast
//! (Zab §IV; ZooKeeper's `Leader` and `LearnerHandler`).
//!
//! *Discovery*: collect FOLLOWERINFO from a quorum (itself included), choose
//! `e' = max(acceptedEpoch) + 1`, persist it as its own acceptedEpoch and send
//! NEWEPOCH. *Synchronisation*: once a quorum counted ACKEPOCH, abdicate if any
//! of them is ahead of this leader's `(currentEpoch, last zxid)`; otherwise
//! persist `currentEpoch = e'` and send every acked follower DIFF, TRUNC or
//! SNAP. A quorum of ACKNEWLEADER commits the whole history: the leader is
//! established. *Broadcast*: proposals go out in zxid order (batched while
//! others are in flight, when batching is on), commit in order on a quorum of
//! cumulative ACKs, and are answered once applied. Reads wait for a PING
//! round sent after they arrived to be acknowledged by a quorum.

use std::collections::{BTreeMap, VecDeque};

use quorum_core::{ClientOutput, NodeId, Observation, Out, RequestId, Role, StateMachine, Time};

use super::{Bug, Msg, PendingRead, Phase, Queue, Record, Zab, Zxid};
use crate::quorum;

/// What the leader knows about one follower's session.
#[derive(Clone, Debug)]
pub(super) struct Peer {
    session: u64,
    accepted_epoch: u64,
    /// ACKEPOCH: `(counted, currentEpoch, history summary)`.
    acked_epoch: Option<(bool, u64, Vec<Zxid>)>,
    /// When DIFF/TRUNC/SNAP was last sent.
    sync_sent_at: Option<Time>,
    /// ACKNEWLEADER received: the follower's history is a prefix of ours.
    synced: bool,
    /// The follower holds our history up to here (cumulative).
    acked: Zxid,
    /// Leader time of the latest message the follower acknowledged.
    heard: Time,
}

impl Peer {
    fn new(session: u64, accepted_epoch: u64) -> Peer {
        Peer {
            session,
            accepted_epoch,
            acked_epoch: None,
            sync_sent_at: None,
            synced: false,
            acked: Zxid::ZERO,
            heard: Time::ZERO,
        }
    }
}

/// A leader's session: discovery, then sync, then broadcast.
#[derive(Clone, Debug)]
pub(super) struct Session<S: StateMachine> {
    /// The new epoch, once chosen.
    pub epoch: Option<u64>,
    /// A quorum counted ACKEPOCH: synchronisation started.
    pub syncing: bool,
    /// A quorum acked NEWLEADER: broadcasting.
    pub established: bool,
    /// Abdicate if not established by then.
    deadline: Time,
    peers: BTreeMap<NodeId, Peer>,
    /// Client writes not yet proposed.
    queue: Queue<S::Command>,
    /// Client writes proposed, by history position, not yet committed.
    proposed: BTreeMap<u64, RequestId>,
    reads: VecDeque<PendingRead<S::Command>>,
    /// Send time of the read round in flight, if any.
    read_round_at: Option<Time>,
}

impl<S: StateMachine> Session<S> {
    pub fn new(deadline: Time) -> Session<S> {
        Session {
            epoch: None,
            syncing: false,
            established: false,
            deadline,
            peers: BTreeMap::new(),
            queue: VecDeque::new(),
            proposed: BTreeMap::new(),
            reads: VecDeque::new(),
            read_round_at: None,
        }
    }

    pub fn describe(&self) -> String {
        let stage = match (self.epoch, self.syncing, self.established) {
            (None, _, _) => "discovery".to_string(),
            (Some(e), false, _) => format!("epoch={e} discovery"),
            (Some(e), true, false) => format!("epoch={e} sync"),
            (Some(e), true, true) => format!("epoch={e} broadcast"),
        };
        let synced = self.peers.values().filter(|p| p.synced).count();
        format!(
            "{stage} synced={synced} queued={} proposed={} reads={}",
            self.queue.len(),
            self.proposed.len(),
            self.reads.len()
        )
    }

    fn synced(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.iter().filter(|(_, p)| p.synced)
    }
}

impl<S: StateMachine> Zab<S> {
    fn leading(&self) -> Option<&Session<S>> {
        match &self.phase {
            Phase::Leading(session) => Some(session),
            _ => None,
        }
    }

    fn leading_mut(&mut self) -> &mut Session<S> {
        match &mut self.phase {
            Phase::Leading(session) => session,
            _ => unreachable!("called only while leading"),
        }
    }

    /// The peer `from` of the current session, if `session` matches.
    fn peer_mut(&mut self, from: NodeId, session: u64) -> Option<&mut Peer> {
        match &mut self.phase {
            Phase::Leading(leader) => leader.peers.get_mut(&from).filter(|p| p.session == session),
            _ => None,
        }
    }

    // ---- phase 1: discovery ----

    pub(super) fn handle_follower_info(
        &mut self,
        from: NodeId,
        session: u64,
        accepted_epoch: u64,
        out: &mut Out<'_, Self>,
    ) {
        let Some(leader) = self.leading() else { return };
        if let Some(epoch) = leader.epoch {
            if accepted_epoch > epoch {
                // It promised a later epoch: only a new discovery can include it.
                out.observe(Observation::Note(format!("{from} accepted epoch {accepted_epoch} > {epoch}")));
                return self.become_looking(out);
            }
        }
        let leader = self.leading_mut();
        let fresh = leader.peers.get(&from).is_none_or(|p| p.session != session);
        if fresh {
            leader.peers.insert(from, Peer::new(session, accepted_epoch));
        }
        match leader.epoch {
            Some(epoch) => out.send(from, Msg::NewEpoch { epoch }),
            None => self.maybe_choose_epoch(out),
        }
    }

    /// With a quorum of FOLLOWERINFO, choose and persist the new epoch.
    pub(super) fn maybe_choose_epoch(&mut self, out: &mut Out<'_, Self>) {
        let Some(leader) = self.leading() else { return };
        if leader.epoch.is_some() || 1 + leader.peers.len() < self.majority() {
            return;
        }
        let highest = leader.peers.values().map(|p| p.accepted_epoch).max().unwrap_or(0);
        let epoch = highest.max(self.accepted_epoch) + 1;
        self.accepted_epoch = epoch;
        self.log(Record::AcceptedEpoch(epoch), out);
        let leader = self.leading_mut();
        leader.epoch = Some(epoch);
        let peers: Vec<NodeId> = leader.peers.keys().copied().collect();
        for peer in peers {
            out.send(peer, Msg::NewEpoch { epoch });
        }
        self.maybe_start_sync(out);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_ack_epoch(
        &mut self,
        from: NodeId,
        session: u64,
        epoch: u64,
        counted: bool,
        current_epoch: u64,
        summary: Vec<Zxid>,
        out: &mut Out<'_, Self>,
    ) {
        if self.leading().and_then(|l| l.epoch) != Some(epoch) {
            return;
        }
        let Some(peer) = self.peer_mut(from, session) else { return };
        assert!(!summary.is_empty(), "a summary starts with the base");
        if peer.synced {
            return; // a duplicate: this session is synchronised already
        }
        peer.acked_epoch = Some((counted, current_epoch, summary));
        if self.leading().is_some_and(|l| l.syncing) {
            self.send_sync(from, out);
        } else {
            self.maybe_start_sync(out);
        }
    }

    /// With a quorum of counted ACKEPOCH, start synchronisation — unless one
    /// of them is ahead of us (ZooKeeper: "follower is ahead of the leader").
    fn maybe_start_sync(&mut self, out: &mut Out<'_, Self>) {
        let Some(leader) = self.leading() else { return };
        let Some(epoch) = leader.epoch else { return };
        let counted: Vec<(NodeId, u64, Zxid)> = leader
            .peers
            .iter()
            .filter_map(|(id, p)| match &p.acked_epoch {
                Some((true, current, summary)) => Some((*id, *current, *summary.last().expect("non-empty"))),
                _ => None,
            })
            .collect();
        if leader.syncing || 1 + counted.len() < self.majority() {
            return;
        }
        let mine = (self.current_epoch, self.history.last_zxid());
        if let Some((ahead, ..)) = counted.iter().find(|(_, current, last)| (*current, *last) > mine) {
            out.observe(Observation::Note(format!("{ahead} is ahead of the leader: abdicate")));
            return self.become_looking(out);
        }
        self.current_epoch = epoch;
        self.log(Record::CurrentEpoch(epoch), out);
        self.leading_mut().syncing = true;
        let acked: Vec<NodeId> = self
            .leading_mut()
            .peers
            .iter()
            .filter(|(_, p)| p.acked_epoch.is_some())
            .map(|(id, _)| *id)
            .collect();
        for peer in acked {
            self.send_sync(peer, out);
        }
        self.maybe_establish(out);
    }

    // ---- phase 2: synchronisation ----

    /// DIFF, TRUNC or SNAP, from the follower's history summary.
    fn send_sync(&mut self, to: NodeId, out: &mut Out<'_, Self>) {
        let leader = self.leading().expect("leading");
        let epoch = leader.epoch.expect("syncing has an epoch");
        let Some(peer) = leader.peers.get(&to) else { return };
        let session = peer.session;
        let Some((_, _, summary)) = peer.acked_epoch.clone() else { return };
        let commit = self.applied_zxid();
        let theirs = *summary.last().expect("non-empty");
        let msg = match self.history.sync_point(&summary) {
            Some(point) => {
                let index = self.history.index_of(point).expect("the sync point is held");
                let proposals = self.history.after_index(index, usize::MAX);
                if theirs > point {
                    Msg::Trunc { session, epoch, to: point, proposals, commit }
                } else {
                    Msg::Diff { session, epoch, after: point, proposals, commit }
                }
            }
            None => self.snap_message(session, epoch),
        };
        let now = out.now();
        let peer = self.leading_mut().peers.get_mut(&to).expect("known peer");
        peer.sync_sent_at = Some(now);
        peer.synced = false;
        out.send(to, msg);
    }

    fn snap_message(&self, session: u64, epoch: u64) -> Msg<S, S::Command> {
        let proposals = self.history.after_index(self.applied_index, usize::MAX);
        Msg::Snap { session, epoch, snap: self.snap(), proposals, commit: self.applied_zxid() }
    }

    pub(super) fn handle_ack_new_leader(
        &mut self,
        from: NodeId,
        session: u64,
        epoch: u64,
        last: Zxid,
        out: &mut Out<'_, Self>,
    ) {
        if self.leading().and_then(|l| l.epoch) != Some(epoch) {
            return;
        }
        let Some(peer) = self.peer_mut(from, session) else { return };
        let Some(sent_at) = peer.sync_sent_at else { return };
        peer.synced = true;
        peer.acked = peer.acked.max(last);
        peer.heard = peer.heard.max(sent_at);
        assert!(last <= self.history.last_zxid(), "a synced follower holds a prefix of our history");
        if self.leading().is_some_and(|l| l.established) {
            out.send(from, Msg::UpToDate { epoch, commit: self.applied_zxid() });
        } else {
            self.maybe_establish(out);
        }
    }

    /// A quorum holds our history with `currentEpoch = e'`: it is committed.
    fn maybe_establish(&mut self, out: &mut Out<'_, Self>) {
        let Some(leader) = self.leading() else { return };
        if !leader.syncing || leader.established || 1 + leader.synced().count() < self.majority() {
            return;
        }
        let epoch = leader.epoch.expect("syncing has an epoch");
        self.leading_mut().established = true;
        out.observe(Observation::Role { role: Role::Leader, term: epoch });
        let last = self.history.last_zxid();
        self.commit_to(last, out);
        let synced: Vec<NodeId> = self.leading_mut().synced().map(|(id, _)| *id).collect();
        for peer in synced {
            out.send(peer, Msg::UpToDate { epoch, commit: last });
        }
        self.send_pings(out);
    }

    // ---- phase 3: broadcast ----

    pub(super) fn handle_client_write(
        &mut self,
        id: RequestId,
        command: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        let leader = self.leading().expect("leading");
        if !leader.established {
            return self.reject(id, "leader not yet established", out);
        }
        if leader.queue.len() + leader.proposed.len() >= self.config.pending_writes_max {
            return self.reject(id, "too many writes pending", out);
        }
        let in_flight = !leader.proposed.is_empty();
        let leader = self.leading_mut();
        leader.queue.push_back((id, command));
        let full = leader.queue.len() >= self.config.batch_proposals_max;
        if !self.config.batching || !in_flight || full {
            self.flush(out);
        }
    }

    /// Propose every queued write: assign zxids, persist, then send.
    fn flush(&mut self, out: &mut Out<'_, Self>) {
        let epoch = self.leading().and_then(|l| l.epoch).expect("broadcasting has an epoch");
        let per_message = if self.config.batching { self.config.batch_proposals_max } else { 1 };
        while !self.leading().expect("leading").queue.is_empty() {
            let prev = self.history.last_zxid();
            let mut counter = if prev.epoch == epoch { prev.counter } else { 0 };
            let queue = &self.leading().expect("leading").queue;
            let sizes = queue
                .iter()
                .map(|(_, c)| S::command_bytes(c).saturating_add(super::history::PROPOSAL_OVERHEAD_BYTES));
            let len = crate::batch::fit(sizes, per_message, self.config.batch_bytes_max);
            let mut batch = Vec::with_capacity(len);
            for _ in 0..len {
                let (id, command) = self.leading_mut().queue.pop_front().expect("fit counts queued writes");
                counter += 1;
                let index = self.history.last_index() + 1;
                let proposal = super::Proposal { zxid: Zxid::new(epoch, counter), index, command };
                self.history.append(proposal.clone());
                self.leading_mut().proposed.insert(index, id);
                batch.push(proposal);
            }
            self.log(Record::Proposals(batch.clone()), out);
            let commit = self.applied_zxid();
            let synced: Vec<NodeId> = self.leading().expect("leading").synced().map(|(id, _)| *id).collect();
            for peer in synced {
                out.send(peer, Msg::Propose { epoch, prev, proposals: batch.clone(), commit });
            }
        }
        self.try_commit(out);
    }

    pub(super) fn handle_ack(&mut self, from: NodeId, epoch: u64, zxid: Zxid, out: &mut Out<'_, Self>) {
        let Some(peer) = self.synced_peer(from, epoch) else { return };
        peer.acked = peer.acked.max(zxid);
        self.try_commit(out);
    }

    fn synced_peer(&mut self, from: NodeId, epoch: u64) -> Option<&mut Peer> {
        match &mut self.phase {
            Phase::Leading(leader) if leader.established && leader.epoch == Some(epoch) => {
                leader.peers.get_mut(&from).filter(|p| p.synced)
            }
            _ => None,
        }
    }

    /// Commit, in order, up to the highest proposal a quorum holds.
    fn try_commit(&mut self, out: &mut Out<'_, Self>) {
        let Some(leader) = self.leading().filter(|l| l.established) else { return };
        // The leader holds its whole history; a synced follower holds it up
        // to its cumulative ACK.
        let last = self.history.last_zxid();
        let held = leader.synced().map(|(_, p)| p.acked).chain([last]);
        let quorum_holds = quorum::committed(held, self.majority());
        let commit = (self.applied_index + 1..=self.history.last_index())
            .rev()
            .map(|index| self.history.get(index).expect("held").zxid)
            .find(|zxid| quorum_holds.is_some_and(|q| *zxid <= q) || self.bug(Bug::CommitWithoutQuorum));
        if let Some(zxid) = commit {
            assert!(zxid <= last, "a commit within the history");
            self.commit_and_answer(zxid, out);
        }
    }

    fn commit_and_answer(&mut self, zxid: Zxid, out: &mut Out<'_, Self>) {
        let epoch = self.leading().and_then(|l| l.epoch).expect("broadcasting");
        let lease_holds = self.lease_holds(out.now());
        for (index, output) in self.commit_to(zxid, out) {
            let Some(id) = self.leading_mut().proposed.remove(&index) else { continue };
            if lease_holds {
                out.reply(id, output);
            } else {
                out.reply(id, S::Output::indeterminate("committed, but the leader's lease lapsed"));
            }
        }
        let synced: Vec<NodeId> = self.leading().expect("leading").synced().map(|(id, _)| *id).collect();
        for peer in synced {
            out.send(peer, Msg::Commit { epoch, zxid });
        }
        if !self.leading().expect("leading").queue.is_empty() {
            self.flush(out);
        }
    }

    // ---- reads and leases ----

    pub(super) fn handle_client_read(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        let leader = self.leading().expect("leading");
        if !leader.established {
            return self.reject(id, "leader not yet established", out);
        }
        if leader.reads.len() >= self.config.pending_reads_max {
            return self.reject(id, "too many reads pending", out);
        }
        let round_in_flight = leader.read_round_at.is_some();
        let now = out.now();
        self.leading_mut().reads.push_back(PendingRead { id, command, arrived_at: now });
        if !self.config.batching || !round_in_flight {
            self.send_pings(out);
        }
        self.serve_reads(out);
    }

    /// A PING to every synced follower: heartbeat, commit point, read round.
    fn send_pings(&mut self, out: &mut Out<'_, Self>) {
        let now = out.now();
        let commit = self.applied_zxid();
        let leader = self.leading_mut();
        let epoch = leader.epoch.expect("broadcasting");
        if !leader.reads.is_empty() {
            leader.read_round_at = Some(now);
        }
        let synced: Vec<NodeId> = leader.synced().map(|(id, _)| *id).collect();
        for peer in synced {
            out.send(peer, Msg::Ping { epoch, commit, sent_at: now });
        }
    }

    pub(super) fn handle_ping_ack(
        &mut self,
        from: NodeId,
        epoch: u64,
        sent_at: Time,
        last: Zxid,
        out: &mut Out<'_, Self>,
    ) {
        let Some(peer) = self.synced_peer(from, epoch) else { return };
        peer.heard = peer.heard.max(sent_at);
        peer.acked = peer.acked.max(last);
        self.try_commit(out);
        self.serve_reads(out);
    }

    /// The latest leader time by which a quorum (this leader included) had
    /// heard from it: every follower of that quorum reset its silence timer
    /// at or after it.
    fn quorum_heard(&self, now: Time) -> Option<Time> {
        let leader = self.leading()?;
        let heard = leader.synced().map(|(_, p)| p.heard).chain([now]);
        quorum::committed(heard, self.majority())
    }

    /// No other leader can be established before the lease ends.
    fn lease_holds(&self, now: Time) -> bool {
        self.quorum_heard(now).is_some_and(|t| now < t + self.config.lease())
    }

    /// Answer the reads that arrived before the last confirmed round.
    fn serve_reads(&mut self, out: &mut Out<'_, Self>) {
        let Some(confirmed) = self.quorum_heard(out.now()) else { return };
        while let Some(read) = self.leading_mut().reads.front() {
            if read.arrived_at > confirmed {
                break;
            }
            let read = self.leading_mut().reads.pop_front().expect("front exists");
            self.handle_read_locally(read.id, &read.command, out);
        }
        let leader = self.leading_mut();
        if leader.read_round_at.is_some_and(|at| at <= confirmed) {
            leader.read_round_at = None;
            if !leader.reads.is_empty() {
                self.send_pings(out);
            }
        }
    }

    // ---- failure detection ----

    pub(super) fn leader_tick(&mut self, out: &mut Out<'_, Self>) {
        let now = out.now();
        let leader = self.leading().expect("leading");
        if !leader.established {
            if now >= leader.deadline {
                out.observe(Observation::Note("not established in time: abdicate".into()));
                return self.become_looking(out);
            }
            return self.set_tick(out);
        }
        if !self.lease_holds(now) {
            out.observe(Observation::Note("lost the quorum: abdicate".into()));
            return self.become_looking(out);
        }
        self.send_pings(out);
        self.retransmit(out);
        self.set_tick(out);
    }

    /// Resend to each synced follower what it has not acknowledged.
    fn retransmit(&mut self, out: &mut Out<'_, Self>) {
        let leader = self.leading().expect("leading");
        let epoch = leader.epoch.expect("broadcasting");
        let last = self.history.last_zxid();
        let lagging: Vec<(NodeId, Zxid)> =
            leader.synced().filter(|(_, p)| p.acked < last).map(|(id, p)| (*id, p.acked)).collect();
        for (peer, acked) in lagging {
            let msg = match self.history.index_of(acked) {
                Some(index) => Msg::Propose {
                    epoch,
                    prev: acked,
                    proposals: self.history.after_index_bounded(
                        index,
                        self.config.batch_proposals_max,
                        self.config.batch_bytes_max,
                        S::command_bytes,
                    ),
                    commit: self.applied_zxid(),
                },
                // Behind our snapshot: it needs the state itself.
                None => self.snap_message(0, epoch),
            };
            out.send(peer, msg);
        }
    }

    /// Leave LEADING: answer every waiting client.
    pub(super) fn abdicate(&mut self, out: &mut Out<'_, Self>) {
        let Phase::Leading(leader) = &mut self.phase else { return };
        let proposed = std::mem::take(&mut leader.proposed);
        let queue = std::mem::take(&mut leader.queue);
        let reads = std::mem::take(&mut leader.reads);
        for id in proposed.into_values() {
            out.reply(id, S::Output::indeterminate("leader abdicated; the write may still commit"));
        }
        for (id, _) in queue {
            out.reply(id, S::Output::rejected("leader abdicated", None));
        }
        for read in reads {
            out.reply(read.id, S::Output::rejected("leader abdicated", None));
        }
    }

    pub(super) fn check_leader(&self, leader: &Session<S>) {
        if let Some(epoch) = leader.epoch {
            assert_eq!(epoch, self.accepted_epoch, "the leader proposed its acceptedEpoch");
        }
        if leader.syncing {
            assert_eq!(leader.epoch, Some(self.current_epoch), "syncing leaders set currentEpoch");
        }
        assert!(!leader.established || leader.syncing, "established after sync");
        if !leader.established {
            assert!(leader.queue.is_empty() && leader.proposed.is_empty() && leader.reads.is_empty());
            return;
        }
        assert!(leader.queue.len() + leader.proposed.len() <= self.config.pending_writes_max);
        assert!(leader.reads.len() <= self.config.pending_reads_max);
        assert!(self.config.batching || leader.queue.is_empty(), "unbatched writes are proposed at once");
        for index in leader.proposed.keys() {
            assert!(*index > self.applied_index, "answered writes leave `proposed`");
            assert!(*index <= self.history.last_index());
        }
        for peer in leader.peers.values().filter(|p| p.synced) {
            assert!(peer.acked <= self.history.last_zxid(), "followers hold a prefix of our history");
        }
    }
}
