//! The proposer (Paxos Made Simple §2.2, §2.4): client requests join the
//! proposal of their instance; a proposal mints a ballot above every one
//! seen, runs phase 1 (`Prepare`) until a majority of acceptors promised,
//! then phase 2 (`Accept`) with the highest-ballot value the promises
//! reported (P2c) or its own. A `Nack` pre-empts the round: a randomised,
//! doubling backoff, then a higher ballot. A round timer re-sends the
//! current phase to the acceptors that have not answered.

use std::collections::BTreeMap;

use quorum_core::{ClientOutput, Micros, NodeId, Observation, Out, RequestId};

use super::{
    Ballot, Decree, Decrees, Instance, Msg, Paxos, Phase, Proposal, Record, Timer, Waiter, RESERVE_BLOCK,
};

impl<S: Decrees> Paxos<S> {
    pub(super) fn handle_request(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        match S::decree(&command) {
            Decree::Refuse(reason) => out.reply(id, S::Output::rejected(reason, None)),
            Decree::Learn { instance } => self.request_learn(id, instance, command, out),
            Decree::Propose { instance, value } => self.request_propose(id, instance, value, command, out),
        }
    }

    fn request_learn(
        &mut self,
        id: RequestId,
        instance: Instance,
        command: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if self.learned.contains_key(&instance) {
            // A chosen value never changes: answering it now is linearizable.
            let output = self.state.apply(&command);
            out.reply(id, output);
            return;
        }
        if let Some(refusal) = self.refuse_proposing(instance) {
            out.reply(id, refusal);
            return;
        }
        self.join(instance, Waiter { request: id, command, read: true }, out);
    }

    fn request_propose(
        &mut self,
        id: RequestId,
        instance: Instance,
        value: u64,
        command: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if let Some((chosen, output)) = self.learned.get(&instance) {
            let response = if *chosen == command { output.clone() } else { S::superseded(&command) };
            out.reply(id, response);
            return;
        }
        if let Some(refusal) = self.refuse_proposing(instance) {
            out.reply(id, refusal);
            return;
        }
        match self.intents.get(&instance) {
            Some(own) if *own != command => {
                // This node proposes one value per instance and never this one.
                let refusal = S::Output::rejected("this node already proposes another value here", None);
                out.reply(id, refusal);
                return;
            }
            Some(_) => {}
            None => {
                // The intent is durable before anyone can hear of the value,
                // so a restarted proposer still drives it to a decision.
                self.intents.insert(instance, command.clone());
                self.persist(Record::Intent { instance, value: command.clone() }, out);
                out.observe(Observation::Propose { instance, value });
            }
        }
        self.join(instance, Waiter { request: id, command, read: false }, out);
    }

    /// Why this node cannot run a proposal for `instance` now, if it cannot.
    fn refuse_proposing(&self, instance: Instance) -> Option<S::Output> {
        if !self.is_proposer() {
            return Some(S::Output::rejected("not a proposer", self.proposers.first().copied()));
        }
        match self.proposals.get(&instance) {
            Some(p) if p.waiters.len() >= self.config.waiters_max => {
                Some(S::Output::rejected("too many requests wait on this instance", None))
            }
            None if self.proposals.len() >= self.config.proposals_max => {
                Some(S::Output::rejected("too many proposals in flight", None))
            }
            _ => None,
        }
    }

    /// Wait for `instance`'s decision, starting a proposal if none runs.
    fn join(&mut self, instance: Instance, waiter: Waiter<S::Command>, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Expire { instance, request: waiter.request }, self.config.operation_timeout);
        if let Some(proposal) = self.proposals.get_mut(&instance) {
            proposal.waiters.push(waiter);
            return;
        }
        let proposal =
            Proposal { ballot: Ballot::ZERO, phase: Phase::Backoff, attempts: 0, waiters: vec![waiter] };
        self.proposals.insert(instance, proposal);
        self.start_round(instance, out);
    }

    /// A client stopped waiting: a read certainly had no effect; a write's
    /// value stays proposed (its intent is driven on), so its fate is unknown.
    pub(super) fn expire(&mut self, instance: Instance, request: RequestId, out: &mut Out<'_, Self>) {
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        let Some(at) = proposal.waiters.iter().position(|w| w.request == request) else { return };
        let waiter = proposal.waiters.remove(at);
        let response = if waiter.read {
            S::Output::rejected("no decision learned in time", None)
        } else {
            S::Output::indeterminate("no decision learned in time; the value stays proposed")
        };
        out.reply(request, response);
        if proposal.waiters.is_empty() && !self.intents.contains_key(&instance) {
            self.proposals.remove(&instance);
            out.cancel_timer(Timer::Round(instance));
        }
    }

    /// A ballot above every one seen, reserved in the log first if needed.
    fn next_ballot(&mut self, out: &mut Out<'_, Self>) -> Ballot {
        let counter = self.counter_seen + 1;
        self.counter_seen = counter;
        if counter > self.counter_reserved {
            self.counter_reserved = counter + RESERVE_BLOCK - 1;
            self.persist(Record::Reserved { counter: self.counter_reserved }, out);
        }
        Ballot { counter, node: self.cluster.id }
    }

    pub(super) fn start_round(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let ballot = self.next_ballot(out);
        let proposal = self.proposals.get_mut(&instance).expect("a proposal to start");
        assert!(ballot > proposal.ballot, "each round outbids the last");
        proposal.ballot = ballot;
        proposal.phase = Phase::Prepare { promises: BTreeMap::new() };
        for acceptor in self.acceptors.clone() {
            out.send(acceptor, Msg::Prepare { instance, ballot });
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }

    pub(super) fn handle_promise(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        accepted: Option<(Ballot, S::Command)>,
        out: &mut Out<'_, Self>,
    ) {
        let majority = self.majority();
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        if proposal.ballot != ballot || !self.acceptors.contains(&from) {
            return; // a stale round's promise
        }
        let Phase::Prepare { promises } = &mut proposal.phase else { return };
        if let Some((accepted_ballot, _)) = &accepted {
            assert!(*accepted_ballot < ballot, "an acceptor promised below what it accepted");
        }
        promises.insert(from, accepted);
        if promises.len() >= majority {
            self.finish_prepare(instance, out);
        }
    }

    /// A majority promised: propose the highest-ballot value they reported
    /// (P2c), else our own; a read with nothing to propose is answered.
    fn finish_prepare(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let proposal = self.proposals.get_mut(&instance).expect("preparing");
        let Phase::Prepare { promises } = &proposal.phase else { unreachable!("preparing") };
        let reported = promises.values().flatten().max_by_key(|(b, _)| *b).map(|(_, v)| v.clone());
        if reported.is_some() {
            out.observe(Observation::Reached(super::PRIOR_VALUE_ADOPTED.name));
        }
        let ballot = proposal.ballot;
        let Some(value) = reported.or_else(|| self.intents.get(&instance).cloned()) else {
            // No acceptor of a majority accepted anything: nothing was chosen
            // before the read began. Only reads wait here (a write has an intent).
            let proposal = self.proposals.remove(&instance).expect("preparing");
            out.cancel_timer(Timer::Round(instance));
            for waiter in proposal.waiters {
                assert!(waiter.read, "a write always has a value to propose");
                out.cancel_timer(Timer::Expire { instance, request: waiter.request });
                let output = self.state.apply(&waiter.command);
                out.reply(waiter.request, output);
            }
            return;
        };
        proposal.phase = Phase::Accept { value: value.clone() };
        for acceptor in self.acceptors.clone() {
            out.send(acceptor, Msg::Accept { instance, ballot, value: value.clone() });
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }

    pub(super) fn handle_nack(
        &mut self,
        instance: Instance,
        ballot: Ballot,
        promised: Ballot,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(promised.counter);
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        if proposal.ballot != ballot || matches!(proposal.phase, Phase::Backoff) {
            return; // a stale round, or this one was already given up
        }
        assert!(promised > ballot, "a rejection names a higher ballot");
        proposal.phase = Phase::Backoff;
        proposal.attempts += 1;
        if !self.config.backoff {
            self.start_round(instance, out);
            return;
        }
        let doubling = 1u64 << proposal.attempts.min(16);
        let ceiling = self.config.backoff_base.0.saturating_mul(doubling).min(self.config.backoff_max.0);
        let wait = out.rng().range(1, ceiling + 1);
        out.set_timer(Timer::Round(instance), Micros(wait));
    }

    /// The round timer: retry after a backoff, or re-send the current phase
    /// to the acceptors that have not answered (messages may be lost).
    pub(super) fn round_timer(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let Some(proposal) = self.proposals.get(&instance) else { return };
        let ballot = proposal.ballot;
        let (silent, msg): (Vec<NodeId>, Msg<S::Command>) = match &proposal.phase {
            Phase::Backoff => return self.start_round(instance, out),
            Phase::Prepare { promises } => {
                let silent = self.acceptors.iter().copied().filter(|a| !promises.contains_key(a)).collect();
                (silent, Msg::Prepare { instance, ballot })
            }
            Phase::Accept { value } => {
                let votes = self.votes.get(&instance);
                let voted = |a: &NodeId| votes.and_then(|v| v.get(a)).is_some_and(|(b, _)| *b == ballot);
                let silent = self.acceptors.iter().copied().filter(|a| !voted(a)).collect();
                (silent, Msg::Accept { instance, ballot, value: value.clone() })
            }
        };
        for acceptor in silent {
            out.send(acceptor, msg.clone());
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }
}
