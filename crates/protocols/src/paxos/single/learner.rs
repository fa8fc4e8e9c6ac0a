//! The learner (Paxos Made Simple §2.3): count each acceptor's latest
//! acceptance per instance and learn a value once a majority accepted the
//! same ballot, then answer the clients waiting on it here. Decisions also
//! spread by anti-entropy: a node periodically lists a random peer the
//! instances it decided, and the peer sends back the decisions it lacks.

use std::collections::BTreeSet;

use quorum_core::{NodeId, Observation, Out};

use super::{Ballot, Decrees, Instance, Msg, Paxos, Record, Timer};

impl<S: Decrees> Paxos<S> {
    /// Apply a decision to the local state (recovery and learning alike).
    pub(super) fn record_learned(&mut self, instance: Instance, value: S::Command) {
        if self.learned.contains_key(&instance) {
            return;
        }
        let output = self.state.apply(&value);
        self.learned.insert(instance, (value, output));
        // A decided instance needs no acceptor, proposer or vote state: every
        // later question about it is answered with the decision.
        self.slots.remove(&instance);
        self.intents.remove(&instance);
        self.votes.remove(&instance);
    }

    pub(super) fn handle_accepted(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if self.learned.contains_key(&instance) || !self.acceptors.contains(&from) {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        let votes = self.votes.entry(instance).or_default();
        // An acceptor's acceptances only rise; a late, lower one is stale.
        if votes.get(&from).is_some_and(|(b, _)| *b >= ballot) {
            return;
        }
        votes.insert(from, (ballot, value.clone()));
        let same = votes.values().filter(|(b, _)| *b == ballot).count();
        if same >= self.majority() {
            self.learn(instance, value, out);
        }
    }

    pub(super) fn handle_decided(&mut self, decided: Vec<(Instance, S::Command)>, out: &mut Out<'_, Self>) {
        for (instance, value) in decided {
            if !self.learned.contains_key(&instance) {
                self.learn(instance, value, out);
            }
        }
    }

    /// `value` is chosen for `instance`: record it, apply it, and answer
    /// everyone waiting on the instance here.
    fn learn(&mut self, instance: Instance, value: S::Command, out: &mut Out<'_, Self>) {
        assert!(!self.learned.contains_key(&instance), "a learner decides an instance once");
        // Observed before it is forced: a crash in between only means the
        // same value is learned again after the restart.
        out.observe(Observation::Decide { instance, value: Self::value_of(&value) });
        self.record_learned(instance, value.clone());
        if !self.forgets() {
            self.persist(Record::Learned { instance, value: value.clone() }, out);
        }
        let Some(proposal) = self.proposals.remove(&instance) else { return };
        out.cancel_timer(Timer::Round(instance));
        for waiter in proposal.waiters {
            out.cancel_timer(Timer::Expire { instance, request: waiter.request });
            let response = if waiter.read {
                self.state.apply(&waiter.command)
            } else if waiter.command == value {
                self.learned[&instance].1.clone()
            } else {
                S::superseded(&waiter.command)
            };
            out.reply(waiter.request, response);
        }
    }

    pub(super) fn sync_timer(&mut self, out: &mut Out<'_, Self>) {
        out.set_timer(Timer::Sync, self.config.sync_interval);
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        let Some(&peer) = out.rng().pick(&peers) else { return };
        let from = self.sync_cursor;
        let known: Vec<Instance> =
            self.learned.range(from..).map(|(i, _)| *i).take(self.config.sync_batch_max).collect();
        let to =
            if known.len() == self.config.sync_batch_max { known.last().map(|last| last + 1) } else { None };
        self.sync_cursor = to.unwrap_or(0);
        out.send(peer, Msg::Sync { from, to, known });
    }

    pub(super) fn handle_sync(
        &mut self,
        from: NodeId,
        range_from: Instance,
        to: Option<Instance>,
        known: Vec<Instance>,
        out: &mut Out<'_, Self>,
    ) {
        let known: BTreeSet<Instance> = known.into_iter().collect();
        let decided: Vec<(Instance, S::Command)> = self
            .learned
            .range(range_from..)
            .take_while(|(i, _)| to.is_none_or(|to| **i < to))
            .filter(|(i, _)| !known.contains(i))
            .take(self.config.sync_batch_max)
            .map(|(i, (v, _))| (*i, v.clone()))
            .collect();
        if !decided.is_empty() {
            out.send(from, Msg::Decided { decided });
        }
    }
}
