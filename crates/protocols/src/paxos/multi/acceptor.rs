//! The acceptor (Paxos Made Simple §2.2, applied to every slot at once): one
//! promise covers all slots; `Prepare` is answered with a promise and a
//! report of the slots from the asked one on, `Accept` with the slots
//! accepted, both forced to the log first (§2.5). A message from the leader
//! of the promised ballot makes this node its follower.

use std::collections::BTreeMap;

use quorum_core::{NodeId, Out, StateMachine};

use super::{Ballot, Entry, Msg, MultiPaxos, Record, Reported, Slot};

impl<S: StateMachine> MultiPaxos<S> {
    /// Raise the promise to `ballot` (for every slot) and force it to the log.
    pub(super) fn promise(&mut self, ballot: Ballot, out: &mut Out<'_, Self>) {
        assert!(ballot > self.promised, "promises only rise");
        self.promised = ballot;
        self.counter_seen = self.counter_seen.max(ballot.counter);
        out.persist(Record::Promised { ballot });
    }

    /// What this acceptor knows of the slots from `from` on.
    pub(super) fn report(&self, from: Slot) -> Vec<Reported<S::Command>> {
        let mut entries: BTreeMap<Slot, Reported<S::Command>> = BTreeMap::new();
        for (slot, (ballot, entry)) in self.accepted.range(from..) {
            entries.insert(*slot, (*slot, Some(*ballot), entry.clone()));
        }
        for (slot, entry) in self.chosen.range(from..) {
            entries.insert(*slot, (*slot, None, entry.clone()));
        }
        entries.into_values().collect()
    }

    /// Phase 1a for every slot from `slot_from` on: promise unless a higher
    /// ballot was promised, and report what this acceptor accepted or knows
    /// chosen there (after a snapshot, if it compacted some of them).
    pub(super) fn handle_prepare(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot_from: Slot,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if ballot < self.promised {
            out.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        if ballot > self.promised {
            self.promise(ballot, out);
            self.step_down(None, out);
            // Give the candidate time to finish before campaigning ourselves.
            self.election_timer(out);
        }
        if self.compacted >= slot_from {
            out.send(from, Msg::Snapshot { through: self.applied, state: self.state.clone() });
        }
        let entries = self.report(slot_from);
        out.send(from, Msg::Promise { ballot, compacted: self.compacted, entries });
    }

    /// Accept `entries` at `ballot` (at least our promise), forcing them to
    /// the log; returns the slots now accepted.
    pub(super) fn accept_entries(
        &mut self,
        ballot: Ballot,
        entries: Vec<(Slot, Entry<S::Command>)>,
        out: &mut Out<'_, Self>,
    ) -> Vec<Slot> {
        assert!(ballot >= self.promised);
        let slots = entries.iter().map(|(slot, _)| *slot).collect();
        let fresh: Vec<(Slot, Entry<S::Command>)> = entries
            .into_iter()
            .filter(|(slot, entry)| {
                *slot > self.applied && self.accepted.get(slot) != Some(&(ballot, entry.clone()))
            })
            .collect();
        if !fresh.is_empty() {
            for (slot, entry) in &fresh {
                self.accepted.insert(*slot, (ballot, entry.clone()));
            }
            out.persist(Record::Accepted { ballot, entries: fresh });
        }
        slots
    }

    /// Phase 2a from the leader of `ballot`: accept, answer, and learn the
    /// leader's commit point.
    pub(super) fn handle_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<(Slot, Entry<S::Command>)>,
        commit: Slot,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if ballot < self.promised {
            out.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        self.follow(from, ballot, out);
        let slots = self.accept_entries(ballot, entries, out);
        out.send(from, Msg::Accepted { ballot, slots });
        self.learn_commit(from, ballot, commit, out);
    }

    /// The leader of `ballot` is alive: follow it, acknowledge the round and
    /// learn its commit point.
    pub(super) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        round: u64,
        out: &mut Out<'_, Self>,
    ) {
        self.counter_seen = self.counter_seen.max(ballot.counter);
        if ballot < self.promised {
            out.send(from, Msg::Nack { ballot, promised: self.promised });
            return;
        }
        self.follow(from, ballot, out);
        out.send(from, Msg::HeartbeatAck { ballot, round, applied: self.applied });
        self.learn_commit(from, ballot, commit, out);
    }
}
