//! The acceptor (Paxos Made Simple §2.2, P1a): promise a ballot not below
//! any promised before, accept a proposal unless a higher ballot was
//! promised, and force both to the log before answering (§2.5). Every
//! acceptance is announced to every learner; an instance already decided is
//! answered with its decision instead.

use quorum_core::{NodeId, Out};

use super::{AcceptorSlot, Ballot, Bug, Decrees, Instance, Msg, Paxos, Record};

impl<S: Decrees> Paxos<S> {
    pub(super) fn slot(&mut self, instance: Instance) -> &mut AcceptorSlot<S::Command> {
        self.slots.entry(instance).or_insert(AcceptorSlot { promised: Ballot::ZERO, accepted: None })
    }

    pub(super) fn handle_prepare(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        out: &mut Out<'_, Self>,
    ) {
        if !self.is_acceptor() {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if let Some((value, _)) = self.learned.get(&instance) {
            out.send(from, Msg::Decided { decided: vec![(instance, value.clone())] });
            return;
        }
        let slot = self.slot(instance);
        if ballot < slot.promised {
            let promised = slot.promised;
            out.send(from, Msg::Nack { instance, ballot, promised });
            return;
        }
        let fresh = ballot > slot.promised;
        slot.promised = ballot;
        let accepted = slot.accepted.clone();
        if fresh && !self.forgets() {
            self.persist(Record::Promised { instance, ballot }, out);
        }
        out.send(from, Msg::Promise { instance, ballot, accepted });
    }

    pub(super) fn handle_accept(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if !self.is_acceptor() {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if let Some((chosen, _)) = self.learned.get(&instance) {
            out.send(from, Msg::Decided { decided: vec![(instance, chosen.clone())] });
            return;
        }
        let check_promise = self.config.bug != Some(Bug::AcceptWithoutPromiseCheck);
        let slot = self.slot(instance);
        if check_promise && ballot < slot.promised {
            let promised = slot.promised;
            out.send(from, Msg::Nack { instance, ballot, promised });
            return;
        }
        let fresh = slot.accepted.as_ref().is_none_or(|(b, _)| *b != ballot);
        slot.promised = slot.promised.max(ballot);
        slot.accepted = Some((ballot, value.clone()));
        if fresh && !self.forgets() {
            self.persist(Record::Accepted { instance, ballot, value: value.clone() }, out);
        }
        // Every node is a learner; a duplicate Accept (a retransmission)
        // re-announces, since some learner may have missed it.
        for learner in self.cluster.nodes.clone() {
            out.send(learner, Msg::Accepted { instance, ballot, value: value.clone() });
        }
    }
}
