//! The learner and the recovery coordinator (Fast Paxos §3.1, §3.2). A
//! learner keeps each acceptor's latest vote per instance and learns a value
//! once the quorum of its round voted for it: a fast quorum in a fast round,
//! a classic quorum in a classic one. The same votes reveal collisions: once
//! round-1 votes from a classic quorum are in and no value can still reach a
//! fast quorum, round 1 can choose nothing, and round 2 takes over — sent by
//! the instance's coordinator (coordinated recovery) or voted by each
//! acceptor itself (uncoordinated). Decisions also spread by anti-entropy,
//! as in single-decree Paxos.

use std::collections::BTreeSet;

use quorum_core::{NodeId, Observation, Out};

use super::{Ballot, Decrees, FastPaxos, Instance, Msg, Pick, Record, Recovery, Reports, Timer, FAST};

impl<S: Decrees> FastPaxos<S> {
    /// Apply a decision to the local state (recovery and learning alike).
    pub(super) fn record_learned(&mut self, instance: Instance, value: S::Command) {
        if self.learned.contains_key(&instance) {
            return;
        }
        let output = self.state.apply(&value);
        self.learned.insert(instance, (value, output));
        // A decided instance needs no acceptor, proposer, vote or recovery
        // state: every later question about it is answered with the decision.
        self.slots.remove(&instance);
        self.intents.remove(&instance);
        self.votes.remove(&instance);
        self.recovered.remove(&instance);
    }

    pub(super) fn handle_accepted(
        &mut self,
        from: NodeId,
        instance: Instance,
        ballot: Ballot,
        value: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if self.learned.contains_key(&instance) || !self.cluster.nodes.contains(&from) {
            return;
        }
        self.counter_seen = self.counter_seen.max(ballot.counter);
        let votes = self.votes.entry(instance).or_default();
        // An acceptor votes once per round and its rounds only rise: a late,
        // lower or repeated vote is stale.
        if votes.get(&from).is_some_and(|(b, _)| *b >= ballot) {
            return;
        }
        votes.insert(from, (ballot, value.clone()));
        let same = votes.values().filter(|(b, v)| *b == ballot && *v == value).count();
        if same >= self.quorum_of(ballot) {
            self.learn(instance, value, out);
        } else if ballot == FAST {
            self.notice_collision(instance, out);
        }
    }

    /// The round-1 votes heard for `instance`, as phase-1b messages for
    /// round 2 (a round-1 voter votes no more in round 1, and no round lies
    /// between 1 and 2), if they show a collision: votes from a classic
    /// quorum, none of whose values can still reach a fast quorum.
    fn collision(&self, instance: Instance) -> Option<Reports<S::Command>> {
        let votes = self.votes.get(&instance)?;
        let round_one: Reports<S::Command> =
            votes.values().filter(|(b, _)| *b == FAST).map(|vote| Some(vote.clone())).collect();
        if round_one.len() < self.sizes.classic {
            return None;
        }
        let silent = self.sizes.acceptors - round_one.len();
        let could_win = |value: &S::Command| {
            let count = round_one.iter().flatten().filter(|(_, v)| v == value).count();
            count + silent >= self.sizes.fast
        };
        if round_one.iter().flatten().any(|(_, v)| could_win(v)) {
            return None;
        }
        Some(round_one)
    }

    /// Act on a collision in round 1 once (§3.2): the coordinator sends
    /// round 2's phase 2a, or (uncoordinated) this acceptor votes in the
    /// fast round 2 itself.
    fn notice_collision(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        if self.recovered.contains(&instance) {
            return;
        }
        let ballot = self.recovery_ballot(instance);
        let coordinated = self.config.recovery == Recovery::Coordinated;
        if coordinated && self.coordinator(instance) != self.cluster.id {
            return;
        }
        let Some(reports) = self.collision(instance) else { return };
        let value = match self.pick(&reports) {
            Pick::Forced(value) | Pick::Free(value) => value,
            Pick::Nothing => unreachable!("a collision has votes"),
        };
        out.observe(Observation::Reached(super::COLLISION_RECOVERED.name));
        self.recovered.insert(instance);
        if coordinated {
            // Forced before the phase 2a leaves: after a restart this
            // coordinator never sends round 2 another value.
            self.persist(Record::Coordinated { instance }, out);
            for acceptor in self.cluster.nodes.clone() {
                out.send(acceptor, Msg::Accept { instance, ballot, value: value.clone() });
            }
            return;
        }
        let slot = self.slot(instance);
        let may_vote = slot.promised <= ballot && slot.accepted.as_ref().is_none_or(|(b, _)| *b < ballot);
        if may_vote {
            self.vote(instance, ballot, value, out);
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
        out.observe(Observation::Decide { instance, value: Self::value_of(&value) });
        self.record_learned(instance, value.clone());
        self.persist(Record::Learned { instance, value: value.clone() }, out);
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
