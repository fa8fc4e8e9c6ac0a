//! The leader's phase 2 (Paxos Made Simple §3): client writes queue up and
//! are cut into batches, one slot each, while fewer than `pipeline_max`
//! slots are unapplied; each batch goes to every peer in `Accept` and is
//! accepted here too (forced to the log before it counts), and a slot is
//! chosen once a majority accepted it. The heartbeat tick confirms leadership, re-sends
//! unacknowledged accepts, and steps down without a majority's answer for an
//! election timeout (CheckQuorum).

use std::collections::BTreeSet;

use quorum_core::{ClientOutput, NodeId, Out, RequestId, StateMachine};

use super::{Ballot, Entry, Msg, MultiPaxos, Slot, Timer};

impl<S: StateMachine> MultiPaxos<S> {
    /// A client command. Only the leader takes one: a write waits in the
    /// queue for the next slot (below), a read for a confirmation round
    /// (`read.rs`).
    pub(super) fn handle_request(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        let hint = self.leader.filter(|l| *l != self.cluster.id);
        if self.leadership.is_none() {
            out.reply(id, S::Output::rejected("not the leader", hint));
            return;
        }
        if S::is_read_only(&command) {
            self.handle_read(id, command, out);
        } else {
            self.handle_write(id, command, out);
        }
    }

    fn handle_write(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        let leadership = self.leadership.as_mut().expect("a leader takes writes");
        if leadership.queue.len() >= self.config.queue_max {
            out.reply(id, S::Output::rejected("the leader's queue is full", None));
            return;
        }
        leadership.queue.push_back((id, command));
        self.propose_queued(out);
    }

    /// Phase 2 for `entries` at our ballot: to every peer, then to ourselves.
    pub(super) fn propose(&mut self, entries: Vec<(Slot, Entry<S::Command>)>, out: &mut Out<'_, Self>) {
        if entries.is_empty() {
            return;
        }
        let leadership = self.leadership.as_mut().expect("a leader proposes");
        let ballot = leadership.ballot;
        for (slot, entry) in &entries {
            assert!(*slot > self.applied && *slot < leadership.next_slot, "a proposal within the log");
            leadership.in_flight.insert(*slot, (entry.clone(), BTreeSet::new()));
        }
        for chunk in entries.chunks(self.config.entries_per_message_max) {
            for peer in self.peers() {
                out.send(peer, Msg::Accept { ballot, entries: chunk.to_vec(), commit: self.applied });
            }
        }
        // Our own acceptance is forced before it counts.
        let slots = self.accept_entries(ballot, entries, out);
        self.handle_accepted(self.cluster.id, ballot, slots, out);
    }

    /// Cut batches from the queue while the pipeline has room.
    fn propose_queued(&mut self, out: &mut Out<'_, Self>) {
        let Some(leadership) = self.leadership.as_mut() else { return };
        let mut batches = Vec::new();
        while !leadership.queue.is_empty()
            && leadership.next_slot - 1 - self.applied < self.config.pipeline_max
        {
            let take = leadership.queue.len().min(self.config.batch_max);
            let (requests, commands): (Vec<RequestId>, Vec<S::Command>) =
                leadership.queue.drain(..take).unzip();
            let slot = leadership.next_slot;
            leadership.next_slot += 1;
            leadership.waiting.insert(slot, requests);
            batches.push((slot, Entry::Commands(commands)));
        }
        self.propose(batches, out);
    }

    /// Phase 2b: `from` accepted `slots` at our ballot; a slot that a
    /// majority accepted is chosen.
    pub(super) fn handle_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slots: Vec<Slot>,
        out: &mut Out<'_, Self>,
    ) {
        let majority = self.majority();
        let Some(leadership) = self.leadership.as_mut() else { return };
        if leadership.ballot != ballot {
            return; // an answer to an earlier leadership
        }
        for slot in slots {
            let Some((entry, votes)) = leadership.in_flight.get_mut(&slot) else { continue };
            votes.insert(from);
            if votes.len() >= majority {
                let entry = entry.clone();
                leadership.in_flight.remove(&slot);
                self.chosen.insert(slot, entry);
            }
        }
        self.apply_ready(out);
        self.propose_queued(out);
    }

    /// The leader's tick: a heartbeat (a confirmation round), and accepts
    /// re-sent to the peers that have not acknowledged them.
    pub(super) fn heartbeat_tick(&mut self, out: &mut Out<'_, Self>) {
        let heard_at = self.leadership.as_ref().expect("a leader ticks").quorum_heard_at;
        if self.config.check_quorum && out.now().saturating_sub(heard_at) >= self.config.election_timeout {
            // CheckQuorum: no majority answered for an election timeout.
            return self.step_down(None, out);
        }
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
        self.start_round(out);
        let Some(leadership) = self.leadership.as_ref() else { return };
        let ballot = leadership.ballot;
        for peer in self.peers() {
            let missing: Vec<(Slot, Entry<S::Command>)> = leadership
                .in_flight
                .iter()
                .filter(|(_, (_, votes))| !votes.contains(&peer))
                .take(self.config.entries_per_message_max)
                .map(|(slot, (entry, _))| (*slot, entry.clone()))
                .collect();
            if !missing.is_empty() {
                out.send(peer, Msg::Accept { ballot, entries: missing, commit: self.applied });
            }
        }
    }
}
