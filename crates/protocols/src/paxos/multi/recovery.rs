//! The durable log: promises, accepted entries and checkpoints (a snapshot
//! of the state after the applied prefix plus the acceptor state above it),
//! and the restart that rebuilds from them.

use quorum_core::{Out, StateMachine};

use super::{MultiPaxos, Record};

impl<S: StateMachine> MultiPaxos<S> {
    /// Rebuild the acceptor and learner state from the durable records, in
    /// order (a snapshot replaces what came before it).
    pub(super) fn recover(&mut self, durable: &[Record<S::Command, S>]) {
        for record in durable {
            match record {
                Record::Promised { ballot } => self.promised = self.promised.max(*ballot),
                Record::Accepted { ballot, entries } => {
                    self.promised = self.promised.max(*ballot);
                    for (slot, entry) in entries {
                        if *slot > self.applied {
                            self.accepted.insert(*slot, (*ballot, entry.clone()));
                        }
                    }
                }
                Record::Snapshot { promised, applied, state, accepted } => {
                    self.promised = *promised;
                    self.applied = *applied;
                    self.compacted = *applied;
                    self.checkpoint_slot = *applied;
                    self.state = state.clone();
                    self.accepted = accepted.iter().map(|(s, b, e)| (*s, (*b, e.clone()))).collect();
                }
            }
        }
        self.counter_seen = self.promised.counter;
    }

    /// Replace the log by a snapshot of the applied state plus the acceptor
    /// state above it, keeping the chosen entries since the previous
    /// checkpoint for catch-up.
    pub(super) fn checkpoint(&mut self, out: &mut Out<'_, Self>) {
        // Keep the chosen entries since the previous checkpoint for catch-up.
        let keep_from = self.checkpoint_slot + 1;
        self.chosen = self.chosen.split_off(&keep_from);
        self.compacted = self.checkpoint_slot;
        self.checkpoint_slot = self.applied;
        let accepted = self.accepted.iter().map(|(s, (b, e))| (*s, *b, e.clone())).collect();
        let state = self.state.clone();
        out.checkpoint(Record::Snapshot { promised: self.promised, applied: self.applied, state, accepted });
    }
}
