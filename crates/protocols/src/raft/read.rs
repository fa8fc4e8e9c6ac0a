//! Linearizable reads without the log (diss. §6.4): ReadIndex, and leases.
//!
//! ReadIndex: on a read the leader (1) has committed an entry of its own
//! term, so its commit index is at least that of any earlier leader; (2)
//! notes its commit index as the read index; (3) sends a fresh heartbeat
//! round and waits until a majority acknowledges it, which proves no newer
//! leader existed when the read arrived; (4) waits until it has applied the
//! read index; then answers from its state machine.
//!
//! Lease (diss. §6.4.1, [`super::Config::lease_reads`]): a majority that
//! acknowledged a round sent at `t` refuses to elect another leader before
//! `t + election_timeout_min` (check-quorum makes followers ignore vote
//! requests while in contact with a leader). Until a safety margin before
//! that, the leader answers reads at once.

use quorum_core::{Micros, Out, StateMachine};

use super::{Msg, PendingRead, Raft};

impl<S: StateMachine> Raft<S> {
    /// Whether the leader has committed an entry of its current term.
    pub(super) fn committed_in_term(&self) -> bool {
        self.log.term_at(self.commit_index) == Some(self.term)
    }

    pub(super) fn handle_read(
        &mut self,
        id: quorum_core::RequestId,
        command: S::Command,
        out: &mut Out<'_, Self>,
    ) {
        if !self.is_leader() {
            return self.reject(id, "not the leader", out);
        }
        if self.reads.len() >= self.config.reads_max {
            return self.reject(id, "too many reads waiting", out);
        }
        let index = self.committed_in_term().then_some(self.commit_index);
        let leased = self.config.lease_reads && out.now() < self.lease_until && index.is_some();
        // The read needs a round sent after it arrived: the next one. Rounds
        // are pipelined one at a time, so reads that arrive while a round is
        // in flight share the next round (etcd batches ReadIndex the same
        // way): under load, one heartbeat round confirms many reads.
        let round = if leased { 0 } else { self.round + 1 };
        self.reads.push_back(PendingRead { id, command, index, round });
        if !leased && !self.round_in_flight() {
            self.broadcast_heartbeat(out);
        }
        self.process_reads(out);
    }

    /// Whether a majority has yet to acknowledge the newest round.
    fn round_in_flight(&self) -> bool {
        self.quorum_value(self.round, |pr| pr.acked_round) < self.round
    }

    /// A new heartbeat round to every other member; returns its number.
    pub(super) fn broadcast_heartbeat(&mut self, out: &mut Out<'_, Self>) -> u64 {
        assert!(self.is_leader());
        self.round += 1;
        self.round_sent.push_back((self.round, out.now()));
        while self.round_sent.len() > self.config.reads_max {
            self.round_sent.pop_front();
        }
        for (peer, pr) in &self.progress {
            let commit = pr.match_index.min(self.commit_index);
            out.send(*peer, Msg::Heartbeat { term: self.term, commit, round: self.round });
        }
        self.process_reads(out);
        self.round
    }

    /// Answer every read whose round a majority confirmed and whose read
    /// index is applied; extend the lease by the newest confirmed round.
    pub(super) fn process_reads(&mut self, out: &mut Out<'_, Self>) {
        if !self.is_leader() {
            return;
        }
        let confirmed = self.quorum_value(self.round, |pr| pr.acked_round);
        while let Some(&(round, sent)) = self.round_sent.front() {
            if round > confirmed {
                break;
            }
            self.round_sent.pop_front();
            if round == confirmed {
                let lease = Micros(self.config.election_timeout_min.0 * 4 / 5);
                self.lease_until = self.lease_until.max(sent + lease);
            }
        }
        if self.reads.is_empty() {
            return;
        }
        let in_term = self.committed_in_term();
        let commit = self.commit_index;
        let mut waiting = std::mem::take(&mut self.reads);
        waiting.retain_mut(|read| {
            if read.index.is_none() && in_term {
                read.index = Some(commit);
            }
            let ready = read.round <= confirmed && read.index.is_some_and(|i| i <= self.applied_index);
            if ready {
                // Read-only commands leave the state unchanged.
                let output = self.state.apply(&read.command);
                out.reply(read.id, output);
            }
            !ready
        });
        self.reads = waiting;
        // Reads that arrived while the last round was in flight wait for the
        // next one: send it once the last is confirmed.
        if confirmed == self.round && self.reads.iter().any(|read| read.round > self.round) {
            self.broadcast_heartbeat(out);
        }
    }
}
