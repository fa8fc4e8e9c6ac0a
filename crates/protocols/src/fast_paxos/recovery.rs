//! The log (Fast Paxos §2.4: an acceptor remembers its votes and promises
//! across a failure): records are appended before the messages that depend
//! on them leave, a snapshot replaces the log every
//! `Config::checkpoint_every_records` records, and a restarted node rebuilds
//! its acceptor, proposer, coordinator and learner state from it, then
//! drives its undecided intents on in classic rounds.

use quorum_core::{Observation, Out};

use super::{AcceptorSlot, Ballot, Decrees, FastPaxos, Instance, Phase, Proposal, Record};

impl<S: Decrees> FastPaxos<S> {
    /// Rebuild the state from the durable records, in order (a snapshot
    /// replaces everything before it).
    pub(super) fn recover(&mut self, durable: &[Record<S::Command>]) {
        for record in durable {
            match record {
                Record::Promised { instance, ballot } => {
                    self.slot(*instance).promised = *ballot;
                }
                Record::Accepted { instance, ballot, value } => {
                    let slot = self.slot(*instance);
                    slot.promised = slot.promised.max(*ballot);
                    slot.accepted = Some((*ballot, value.clone()));
                }
                Record::Intent { instance, value } => {
                    self.intents.insert(*instance, value.clone());
                }
                Record::Learned { instance, value } => self.record_learned(*instance, value.clone()),
                Record::Reserved { counter } => self.counter_reserved = self.counter_reserved.max(*counter),
                Record::Coordinated { instance } => {
                    self.recovered.insert(*instance);
                }
                Record::Snapshot { reserved, acceptor, intents, learned, coordinated } => {
                    self.counter_reserved = *reserved;
                    self.slots.clear();
                    for (instance, promised, accepted) in acceptor {
                        let slot = AcceptorSlot { promised: *promised, accepted: accepted.clone() };
                        self.slots.insert(*instance, slot);
                    }
                    self.intents = intents.iter().cloned().collect();
                    self.recovered = coordinated.iter().copied().collect();
                    for (instance, value) in learned {
                        self.record_learned(*instance, value.clone());
                    }
                }
            }
        }
        // A decision recorded after a coordination ends it.
        let learned = &self.learned;
        self.recovered.retain(|i| !learned.contains_key(i));
        // Every ballot this node may have used is at most the reservation.
        self.counter_seen = self.counter_reserved;
        for slot in self.slots.values() {
            self.counter_seen = self.counter_seen.max(slot.promised.counter);
        }
    }

    /// Append `record` to the log; every `checkpoint_every_records` records
    /// the log is replaced by a snapshot of the whole state.
    pub(super) fn persist(&mut self, record: Record<S::Command>, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records_since_checkpoint += 1;
        if self.records_since_checkpoint >= self.config.checkpoint_every_records {
            out.checkpoint(self.snapshot());
            self.records_since_checkpoint = 0;
        }
    }

    fn snapshot(&self) -> Record<S::Command> {
        Record::Snapshot {
            reserved: self.counter_reserved,
            acceptor: self.slots.iter().map(|(i, s)| (*i, s.promised, s.accepted.clone())).collect(),
            intents: self.intents.iter().map(|(i, v)| (*i, v.clone())).collect(),
            learned: self.learned.iter().map(|(i, (v, _))| (*i, v.clone())).collect(),
            coordinated: self.recovered.iter().copied().collect(),
        }
    }

    /// A restarted proposer drives its undecided values on, in classic
    /// rounds: each intent was forced before its value could be heard of,
    /// so it may have been voted anywhere, and only a decision ends it.
    pub(super) fn resume_intents(&mut self, out: &mut Out<'_, Self>) {
        let intents: Vec<(Instance, S::Command)> =
            self.intents.iter().map(|(i, v)| (*i, v.clone())).collect();
        for (instance, value) in intents {
            out.observe(Observation::Propose { instance, value: Self::value_of(&value) });
            let proposal =
                Proposal { ballot: Ballot::ZERO, phase: Phase::Backoff, attempts: 0, waiters: Vec::new() };
            self.proposals.insert(instance, proposal);
            self.start_round(instance, out);
        }
    }
}
