//! Roles (Paxos Made Simple §3; Paxos Made Moderately Complex §3): a
//! follower whose leader falls silent becomes a candidate and runs phase 1
//! for every unapplied slot at once; with a majority of promises (and every
//! compacted slot in hand) it becomes leader, adopting for each slot the
//! highest-ballot value the promises report and filling gaps with no-ops.
//! Any higher ballot makes a leader or candidate step down, answering its
//! waiting clients.

use std::collections::{BTreeMap, VecDeque};

use quorum_core::{ClientOutput, Micros, NodeId, Observation, Out, Role, StateMachine};

use super::{
    Ballot, Bug, Candidacy, Entry, Leadership, Msg, MultiPaxos, Phase, Reported, Slot, Timer, TERM_NODES,
};

impl<S: StateMachine> MultiPaxos<S> {
    /// (Re)arm the election timer: a silence uniform in `[t, 2t)` of
    /// `Config::election_timeout`.
    pub(super) fn election_timer(&self, out: &mut Out<'_, Self>) {
        let base = self.config.election_timeout.0;
        let after = out.rng().range(base, 2 * base);
        out.set_timer(Timer::Election, Micros(after));
    }

    /// A higher ballot is about: stop leading or campaigning.
    pub(super) fn step_down(&mut self, leader: Option<NodeId>, out: &mut Out<'_, Self>) {
        self.leader = leader;
        if self.phase == Phase::Follower {
            return;
        }
        if let Some(leadership) = self.leadership.take() {
            out.cancel_timer(Timer::Heartbeat);
            for request in leadership.waiting.into_values().flatten() {
                out.reply(
                    request,
                    S::Output::indeterminate("leader deposed; the command may still be chosen"),
                );
            }
            for (request, _) in leadership.queue {
                out.reply(request, S::Output::rejected("not the leader any more", leader));
            }
            for read in leadership.reads {
                out.reply(read.request, S::Output::rejected("not the leader any more", leader));
            }
        }
        self.candidacy = None;
        self.phase = Phase::Follower;
        out.observe(Observation::Role { role: Role::Follower, term: Self::term(self.promised) });
        self.election_timer(out);
    }

    /// A message from the leader of `ballot` (at least our promise): follow it.
    pub(super) fn follow(&mut self, from: NodeId, ballot: Ballot, out: &mut Out<'_, Self>) {
        assert!(ballot >= self.promised);
        if ballot > self.promised {
            self.promise(ballot, out);
        }
        if self.phase != Phase::Follower {
            assert!(from != self.cluster.id);
            self.step_down(Some(from), out);
        }
        self.leader = Some(from);
        self.election_timer(out);
    }

    /// Phase 1 for every slot after the applied prefix, at a ballot above
    /// every one seen (Paxos Made Simple §3): our own promise first, then
    /// `Prepare` to every peer.
    pub(super) fn become_candidate(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.phase != Phase::Leader, "a leader does not campaign");
        let counter = self.counter_seen.max(self.promised.counter) + 1;
        assert!(self.cluster.id.0 < TERM_NODES as u32);
        let ballot = Ballot { counter, node: self.cluster.id };
        // Our own promise first: it is also what keeps a restarted node
        // from ever minting this ballot again.
        self.promise(ballot, out);
        self.phase = Phase::Candidate;
        self.leader = None;
        out.observe(Observation::Role { role: Role::Candidate, term: Self::term(ballot) });
        let from = self.applied + 1;
        self.candidacy = Some(Candidacy { ballot, from, promises: BTreeMap::new() });
        for peer in self.peers() {
            out.send(peer, Msg::Prepare { ballot, from });
        }
        self.election_timer(out);
        let entries = self.report(from);
        self.handle_promise(self.cluster.id, ballot, self.compacted, entries, out);
    }

    /// Phase 1b: a promise to our candidacy, with what the acceptor accepted
    /// (or knows chosen) from the asked slot on.
    pub(super) fn handle_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        compacted: Slot,
        entries: Vec<Reported<S::Command>>,
        out: &mut Out<'_, Self>,
    ) {
        let Some(candidacy) = self.candidacy.as_mut() else { return };
        if candidacy.ballot != ballot {
            return; // a promise to an earlier candidacy
        }
        for (slot, reported, _) in &entries {
            assert!(*slot >= candidacy.from, "promises report from the asked slot on");
            assert!(reported.is_none_or(|b| b < ballot), "accepted below the promise");
        }
        candidacy.promises.insert(from, (compacted, entries));
        self.try_finish_phase1(out);
    }

    /// A majority promised and we hold every slot they compacted: lead.
    pub(super) fn try_finish_phase1(&mut self, out: &mut Out<'_, Self>) {
        let Some(candidacy) = &self.candidacy else { return };
        if candidacy.promises.len() < self.majority() {
            return;
        }
        let compacted = candidacy.promises.values().map(|(c, _)| *c).max().unwrap_or(0);
        if self.applied < compacted {
            return; // the snapshot that covers it is on its way
        }
        let mut recovered: BTreeMap<Slot, (Option<Ballot>, Entry<S::Command>)> = BTreeMap::new();
        if self.config.bug != Some(Bug::SkipPhase1Recovery) {
            for (_, entries) in candidacy.promises.values() {
                for (slot, ballot, entry) in entries {
                    let better = match recovered.get(slot) {
                        None => true,
                        Some((None, _)) => false,
                        Some((Some(seen), _)) => ballot.is_none_or(|b| b > *seen),
                    };
                    if *slot > self.applied && better {
                        recovered.insert(*slot, (*ballot, entry.clone()));
                    }
                }
            }
        }
        let ballot = candidacy.ballot;
        self.candidacy = None;
        self.become_leader(ballot, recovered, out);
    }

    /// Lead at `ballot`: slots known chosen are learned, the ones the
    /// promises reported are re-proposed at our ballot, and the gaps are
    /// filled with no-ops (Paxos Made Simple §3).
    fn become_leader(
        &mut self,
        ballot: Ballot,
        recovered: BTreeMap<Slot, (Option<Ballot>, Entry<S::Command>)>,
        out: &mut Out<'_, Self>,
    ) {
        assert_eq!(self.promised, ballot, "a leader holds its own promise");
        self.phase = Phase::Leader;
        self.leader = Some(self.cluster.id);
        out.observe(Observation::Role { role: Role::Leader, term: Self::term(ballot) });
        out.cancel_timer(Timer::Election);
        let last = recovered.keys().next_back().copied().unwrap_or(0).max(self.applied);
        self.leadership = Some(Leadership {
            ballot,
            next_slot: last + 1,
            in_flight: BTreeMap::new(),
            queue: VecDeque::new(),
            waiting: BTreeMap::new(),
            reads: Vec::new(),
            round: 0,
            confirmed: 0,
            acked: BTreeMap::new(),
            quorum_heard_at: out.now(),
        });
        // Known-chosen slots are learned; the rest are re-proposed at our
        // ballot, gaps as no-ops.
        let mut proposals = Vec::new();
        for slot in self.applied + 1..=last {
            if self.chosen.contains_key(&slot) {
                continue;
            }
            match recovered.get(&slot) {
                Some((None, entry)) => {
                    self.chosen.insert(slot, entry.clone());
                }
                Some((Some(_), entry)) => {
                    out.observe(Observation::Reached(super::SLOT_RECOVERED.name));
                    proposals.push((slot, entry.clone()));
                }
                None => proposals.push((slot, Entry::Noop)),
            }
        }
        self.propose(proposals, out);
        self.apply_ready(out);
        self.heartbeat_tick(out);
    }

    /// A higher ballot rejected ours: the leader or candidate of ours steps
    /// down.
    pub(super) fn handle_nack(&mut self, ballot: Ballot, promised: Ballot, out: &mut Out<'_, Self>) {
        self.counter_seen = self.counter_seen.max(promised.counter);
        let ours = match self.phase {
            Phase::Leader => self.leadership.as_ref().map(|l| l.ballot),
            Phase::Candidate => self.candidacy.as_ref().map(|c| c.ballot),
            Phase::Follower => None,
        };
        if ours == Some(ballot) {
            assert!(promised > ballot);
            self.step_down(None, out);
        }
    }
}
