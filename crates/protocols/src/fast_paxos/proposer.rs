//! The proposer (Fast Paxos §3.1, §3.3). A client's write becomes this
//! node's intent (forced first) and is sent straight to every acceptor as a
//! round-1 vote request: no leader, no phase 1. If the fast round does not
//! decide in time (a collision nobody recovered, lost messages, a crashed
//! coordinator), the proposal is re-sent once to the acceptors that did not
//! vote, and then the proposer runs classic rounds of its own: phase 1 with
//! a ballot above every one seen, the phase-2a rule of `mod.rs` ([`pick`]),
//! phase 2; a `Nack` pre-empts it into a randomised, doubling backoff. Reads
//! of undecided instances run a classic round at once.
//!
//! [`pick`]: super::pick

use std::collections::BTreeMap;

use quorum_core::{ClientOutput, Micros, NodeId, Observation, Out, RequestId};

use super::{
    Ballot, Bug, Decree, Decrees, FastPaxos, Instance, Msg, Phase, Pick, Proposal, Record, Reports, Timer,
    Waiter, FAST, FIRST_CLASSIC_COUNTER, RESERVE_BLOCK,
};

impl<S: Decrees> FastPaxos<S> {
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

    /// Wait for `instance`'s decision, starting a proposal if none runs: a
    /// write in the fast round, a read in a classic round.
    fn join(&mut self, instance: Instance, waiter: Waiter<S::Command>, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Expire { instance, request: waiter.request }, self.config.operation_timeout);
        if let Some(proposal) = self.proposals.get_mut(&instance) {
            proposal.waiters.push(waiter);
            return;
        }
        let read = waiter.read;
        let proposal =
            Proposal { ballot: Ballot::ZERO, phase: Phase::Backoff, attempts: 0, waiters: vec![waiter] };
        self.proposals.insert(instance, proposal);
        match self.intents.get(&instance).cloned() {
            Some(value) if !read => self.start_fast(instance, value, out),
            _ => self.start_round(instance, out),
        }
    }

    /// Round 1: the value straight to every acceptor (§3.1).
    fn start_fast(&mut self, instance: Instance, value: S::Command, out: &mut Out<'_, Self>) {
        let proposal = self.proposals.get_mut(&instance).expect("a proposal to start");
        proposal.ballot = FAST;
        proposal.phase = Phase::Fast { resent: false };
        for acceptor in self.cluster.nodes.clone() {
            out.send(acceptor, Msg::Propose { instance, value: value.clone() });
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
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

    /// A classic ballot above every one seen, reserved in the log first if needed.
    fn next_ballot(&mut self, out: &mut Out<'_, Self>) -> Ballot {
        let counter = (self.counter_seen + 1).max(FIRST_CLASSIC_COUNTER);
        self.counter_seen = counter;
        if counter > self.counter_reserved {
            self.counter_reserved = counter + RESERVE_BLOCK - 1;
            self.persist(Record::Reserved { counter: self.counter_reserved }, out);
        }
        Ballot { counter, node: self.cluster.id }
    }

    /// Phase 1 of a classic round of this proposer's own.
    pub(super) fn start_round(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let ballot = self.next_ballot(out);
        let proposal = self.proposals.get_mut(&instance).expect("a proposal to start");
        assert!(ballot > proposal.ballot, "each round outbids the last");
        proposal.ballot = ballot;
        proposal.phase = Phase::Prepare { promises: BTreeMap::new() };
        for acceptor in self.cluster.nodes.clone() {
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
        let classic = self.sizes.classic;
        let Some(proposal) = self.proposals.get_mut(&instance) else { return };
        if proposal.ballot != ballot {
            return; // a stale round's promise
        }
        let Phase::Prepare { promises } = &mut proposal.phase else { return };
        if let Some((voted, _)) = &accepted {
            assert!(*voted < ballot, "an acceptor promised below its vote");
        }
        promises.insert(from, accepted);
        if promises.len() >= classic {
            self.finish_prepare(instance, out);
        }
    }

    /// What phase 2 proposes after phase 1 reported `reports` (§3.1): the
    /// rule's forced value, else our own value, else the rule's free one.
    fn phase_two_value(
        &self,
        instance: Instance,
        reports: &[Option<(Ballot, S::Command)>],
    ) -> Pick<S::Command> {
        let own = self.intents.get(&instance).cloned();
        let highest_fast = reports.iter().flatten().map(|(b, _)| *b).max().is_some_and(|k| self.is_fast(k));
        match (self.pick(reports), own) {
            (_, Some(own)) if highest_fast && self.config.bug == Some(Bug::IgnoreFastVotes) => {
                Pick::Free(own)
            }
            (Pick::Forced(value), _) => Pick::Forced(value),
            (Pick::Free(_) | Pick::Nothing, Some(own)) => Pick::Free(own),
            (other, None) => other,
        }
    }

    /// A classic quorum promised: propose what the rule allows; a read with
    /// nothing to propose is answered.
    fn finish_prepare(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let proposal = &self.proposals[&instance];
        let Phase::Prepare { promises } = &proposal.phase else { unreachable!("preparing") };
        let reports: Reports<S::Command> = promises.values().cloned().collect();
        let highest_fast = reports.iter().flatten().map(|(b, _)| *b).max().is_some_and(|k| self.is_fast(k));
        let value = match self.phase_two_value(instance, &reports) {
            Pick::Forced(value) => {
                if highest_fast {
                    out.observe(Observation::Reached(super::FAST_VALUE_ADOPTED.name));
                }
                value
            }
            Pick::Free(value) => value,
            Pick::Nothing => return self.answer_unwritten(instance, out),
        };
        let proposal = self.proposals.get_mut(&instance).expect("preparing");
        let ballot = proposal.ballot;
        proposal.phase = Phase::Accept { value: value.clone() };
        for acceptor in self.cluster.nodes.clone() {
            out.send(acceptor, Msg::Accept { instance, ballot, value: value.clone() });
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }

    /// No acceptor of a classic quorum voted at all: nothing was chosen
    /// before the read began (a chosen value has votes in every classic
    /// quorum). Only reads wait here: a write has an intent to propose.
    fn answer_unwritten(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let proposal = self.proposals.remove(&instance).expect("preparing");
        out.cancel_timer(Timer::Round(instance));
        for waiter in proposal.waiters {
            assert!(waiter.read, "a write always has a value to propose");
            out.cancel_timer(Timer::Expire { instance, request: waiter.request });
            let output = self.state.apply(&waiter.command);
            out.reply(waiter.request, output);
        }
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
        self.back_off(instance, out);
    }

    /// Give the current round up and retry with a classic round after a
    /// randomised, doubling wait.
    fn back_off(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let proposal = self.proposals.get_mut(&instance).expect("a proposal to back off");
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

    /// The round timer: re-send the fast proposal once, then fall back to a
    /// classic round; retry after a backoff; or re-send the current classic
    /// phase to the acceptors that have not answered (messages may be lost).
    pub(super) fn round_timer(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let Some(proposal) = self.proposals.get(&instance) else { return };
        let ballot = proposal.ballot;
        let votes = self.votes.get(&instance);
        let voted = |a: &NodeId| votes.and_then(|v| v.get(a)).is_some_and(|(b, _)| *b >= ballot);
        let (silent, msg): (Vec<NodeId>, Msg<S::Command>) = match &proposal.phase {
            Phase::Backoff => return self.start_round(instance, out),
            Phase::Fast { resent: true } => return self.back_off(instance, out),
            Phase::Fast { resent: false } => {
                let value = self.intents[&instance].clone();
                let silent = self.cluster.nodes.iter().copied().filter(|a| !voted(a)).collect();
                (silent, Msg::Propose { instance, value })
            }
            Phase::Prepare { promises } => {
                let silent =
                    self.cluster.nodes.iter().copied().filter(|a| !promises.contains_key(a)).collect();
                (silent, Msg::Prepare { instance, ballot })
            }
            Phase::Accept { value } => {
                let silent = self.cluster.nodes.iter().copied().filter(|a| !voted(a)).collect();
                (silent, Msg::Accept { instance, ballot, value: value.clone() })
            }
        };
        if let Some(Proposal { phase: Phase::Fast { resent }, .. }) = self.proposals.get_mut(&instance) {
            *resent = true;
        }
        for acceptor in silent {
            out.send(acceptor, msg.clone());
        }
        out.set_timer(Timer::Round(instance), self.config.retransmit_interval);
    }
}
