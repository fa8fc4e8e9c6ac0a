//! The acceptor (Fast Paxos §3.1, §2.2.1): in the fast round it votes for
//! the first proposal a proposer sends it; in a classic round it promises a
//! ballot not below any promised before and accepts a phase-2a value unless
//! it promised a higher ballot. At most one vote per round. Votes and
//! promises are forced to the log before anyone hears of them (§2.4), and
//! every vote goes to every learner (and so to the coordinators). Under
//! uncoordinated recovery an acceptor also votes in the fast round 2 on its
//! own (§3.2; see `learner.rs`, which notices the collision).

use quorum_core::{NodeId, Out};

use super::{AcceptorSlot, Ballot, Decrees, FastPaxos, Instance, Msg, Record, FAST};

impl<S: Decrees> FastPaxos<S> {
    pub(super) fn slot(&mut self, instance: Instance) -> &mut AcceptorSlot<S::Command> {
        self.slots.entry(instance).or_insert(AcceptorSlot { promised: Ballot::ZERO, accepted: None })
    }

    /// What a prepare and an accept check first: answer `from` with the
    /// decision if `instance` is decided here, or refuse a `ballot` below
    /// the promise. Whether to go on.
    fn admit(&mut self, from: NodeId, instance: Instance, ballot: Ballot, out: &mut Out<'_, Self>) -> bool {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if self.answer_decided(from, instance, out) {
            return false;
        }
        let promised = self.slot(instance).promised;
        if ballot < promised {
            out.send(from, Msg::Nack { instance, ballot, promised });
            return false;
        }
        true
    }

    /// Answer `from` with the decision if `instance` is decided here.
    fn answer_decided(&self, from: NodeId, instance: Instance, out: &mut Out<'_, Self>) -> bool {
        let Some((value, _)) = self.learned.get(&instance) else { return false };
        out.send(from, Msg::Decided { decided: vec![(instance, value.clone())] });
        true
    }

    /// A proposer's value, sent straight to us: our round-1 vote, if we have
    /// not voted in round 1 nor promised a later round.
    pub(super) fn handle_propose(
        &mut self,
        from: NodeId,
        instance: Instance,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if self.answer_decided(from, instance, out) {
            return;
        }
        let slot = self.slot(instance);
        if slot.promised > FAST {
            let promised = slot.promised;
            out.send(from, Msg::Nack { instance, ballot: FAST, promised });
            return;
        }
        if slot.accepted.is_some() {
            return; // one vote per round: a later proposal collides with ours
        }
        self.vote(instance, FAST, value, out);
    }

    pub(super) fn handle_prepare(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        out: &mut Out<'_, Self>,
    ) {
        if !self.admit(from, instance, ballot, out) {
            return;
        }
        let slot = self.slot(instance);
        let fresh = ballot > slot.promised;
        slot.promised = ballot;
        let accepted = slot.accepted.clone();
        if fresh {
            self.persist(Record::Promised { instance, ballot }, out);
        }
        out.send(from, Msg::Promise { instance, ballot, accepted });
    }

    /// A classic round's phase 2a (or the coordinated recovery round's).
    pub(super) fn handle_accept(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if !self.admit(from, instance, ballot, out) {
            return;
        }
        let slot = self.slot(instance);
        if let Some((voted, earlier)) = &slot.accepted {
            if *voted == ballot {
                assert!(*earlier == value, "a classic round has one value");
                // A retransmission: announce again, some learner may have missed it.
                self.announce(instance, ballot, value, out);
                return;
            }
        }
        self.vote(instance, ballot, value, out);
    }

    /// Vote `value` in `ballot`: forced first, then told to every learner.
    pub(super) fn vote(
        &mut self,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        let slot = self.slot(instance);
        assert!(ballot >= slot.promised, "a vote keeps the promise");
        assert!(slot.accepted.as_ref().is_none_or(|(b, _)| *b < ballot), "one vote per round");
        slot.promised = ballot;
        slot.accepted = Some((ballot, value.clone()));
        self.persist(Record::Accepted { instance, ballot, value: value.clone() }, out);
        self.announce(instance, ballot, value, out);
    }

    fn announce(&mut self, instance: Instance, ballot: Ballot, value: S::Command, out: &mut Out<'_, Self>) {
        for learner in self.cluster.nodes.clone() {
            out.send(learner, Msg::Accepted { instance, ballot, value: value.clone() });
        }
    }
}
