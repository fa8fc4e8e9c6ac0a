//! Learning chosen slots and applying them in order: the leader's commit
//! point, carried by Accept and Heartbeat, marks as chosen our entries
//! accepted at the leader's ballot; what is missing comes from the leader
//! as chosen entries (`CatchUp`/`Chosen`) or, if compacted, a snapshot.
//! Applying answers the leader's clients and triggers checkpoints.

use quorum_core::{fnv1a, NodeId, Observation, Out, StateMachine};

use super::{Ballot, Entry, Msg, MultiPaxos, Phase, Record, Slot};

impl<S: StateMachine> MultiPaxos<S> {
    /// The leader of `ballot` says every slot up to `commit` is chosen. Our
    /// entries accepted at that ballot are those values; fetch the rest.
    pub(super) fn learn_commit(
        &mut self,
        leader: NodeId,
        ballot: Ballot,
        commit: Slot,
        out: &mut Out<'_, Self>,
    ) {
        let mut slot = self.applied + 1;
        while slot <= commit {
            if !self.chosen.contains_key(&slot) {
                match self.accepted.get(&slot) {
                    Some((b, entry)) if *b == ballot => {
                        self.chosen.insert(slot, entry.clone());
                    }
                    _ => break,
                }
            }
            slot += 1;
        }
        self.apply_ready(out);
        if self.applied < commit {
            self.request_catch_up(leader, out);
        }
    }

    /// Ask `leader` for the chosen entries after the applied prefix, at most
    /// once per heartbeat interval.
    fn request_catch_up(&mut self, leader: NodeId, out: &mut Out<'_, Self>) {
        let now = out.now();
        let recent =
            self.catchup_sent_at.is_some_and(|t| now.saturating_sub(t) < self.config.heartbeat_interval);
        if recent {
            return;
        }
        self.catchup_sent_at = Some(now);
        out.send(leader, Msg::CatchUp { from: self.applied + 1 });
    }

    /// Send a lagging learner the chosen entries from `slot_from` on, or the
    /// state machine if they are compacted.
    pub(super) fn handle_catch_up(&mut self, from: NodeId, slot_from: Slot, out: &mut Out<'_, Self>) {
        if slot_from <= self.compacted {
            out.send(from, Msg::Snapshot { through: self.applied, state: self.state.clone() });
            return;
        }
        let entries: Vec<(Slot, Entry<S::Command>)> = self
            .chosen
            .range(slot_from..)
            .take(self.config.entries_per_message_max)
            .map(|(s, e)| (*s, e.clone()))
            .collect();
        if !entries.is_empty() {
            out.send(from, Msg::Chosen { entries });
        }
    }

    /// Entries known chosen (an answer to `CatchUp`): apply what follows the
    /// applied prefix, and ask again at once while behind our leader and the
    /// answer moved us on. An answer that did not (the leader lacks the
    /// missing slot too) waits for the heartbeat-rate limit: asking again at
    /// once made a ping-pong at network speed, which duplication multiplied
    /// into a storm (seed 469 of `--bug unconfirmed-reads` at 3 nodes).
    pub(super) fn handle_chosen(
        &mut self,
        from: NodeId,
        entries: Vec<(Slot, Entry<S::Command>)>,
        out: &mut Out<'_, Self>,
    ) {
        let applied_before = self.applied;
        for (slot, entry) in entries {
            if slot > self.applied {
                self.chosen.insert(slot, entry);
            }
        }
        self.apply_ready(out);
        if self.applied > applied_before {
            self.catchup_sent_at = None;
        }
        // More may be missing: ask again at once rather than at the next heartbeat.
        if self.phase == Phase::Follower && self.leader == Some(from) {
            let commit = self.chosen.keys().next_back().copied().unwrap_or(0);
            if self.applied < commit {
                self.request_catch_up(from, out);
            }
        }
        self.try_finish_phase1(out);
    }

    /// The state after `through`: install it if it is ahead of us (never at
    /// a leader) and checkpoint it.
    pub(super) fn handle_snapshot(&mut self, through: Slot, state: S, out: &mut Out<'_, Self>) {
        self.catchup_sent_at = None;
        if through <= self.applied || self.phase == Phase::Leader {
            return;
        }
        self.state = state;
        self.applied = through;
        self.compacted = through;
        self.checkpoint_slot = through;
        self.chosen = self.chosen.split_off(&(through + 1));
        self.accepted = self.accepted.split_off(&(through + 1));
        let accepted = self.accepted.iter().map(|(s, (b, e))| (*s, *b, e.clone())).collect();
        let state = self.state.clone();
        out.checkpoint(Record::Snapshot { promised: self.promised, applied: through, state, accepted });
        self.apply_ready(out);
        self.try_finish_phase1(out);
    }

    /// Apply every chosen slot that follows the applied prefix, in order,
    /// answering the leader's clients.
    pub(super) fn apply_ready(&mut self, out: &mut Out<'_, Self>) {
        while let Some(entry) = self.chosen.get(&(self.applied + 1)).cloned() {
            let slot = self.applied + 1;
            let digest = fnv1a(format!("{entry:?}").as_bytes());
            out.observe(Observation::Apply { index: slot, term: self.promised.counter, command: digest });
            let requests = self.leadership.as_mut().and_then(|l| l.waiting.remove(&slot)).unwrap_or_default();
            if let Entry::Commands(commands) = &entry {
                let mut requests = requests.into_iter();
                for command in commands {
                    let output = self.state.apply(command);
                    if let Some(request) = requests.next() {
                        out.reply(request, output);
                    }
                }
            }
            self.applied = slot;
            self.accepted.remove(&slot);
            if let Some(leadership) = self.leadership.as_mut() {
                leadership.in_flight.remove(&slot);
            }
            if self.applied - self.checkpoint_slot >= self.config.checkpoint_every_slots {
                self.checkpoint(out);
            }
        }
        self.serve_reads(out);
    }
}
