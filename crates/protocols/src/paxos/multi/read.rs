//! Linearizable reads without the log (ReadIndex, Raft thesis §6.4): a read
//! notes the last assigned slot and waits for a heartbeat round that began
//! after it arrived to be acknowledged by a majority (so no higher ballot
//! had taken over), and for the noted slot to be applied. Rounds are
//! numbered; reads that arrive during a round share the next one.

use quorum_core::{ClientOutput, NodeId, Out, RequestId, StateMachine};

use super::{Ballot, Bug, Msg, MultiPaxos, PendingRead};
use crate::quorum;

impl<S: StateMachine> MultiPaxos<S> {
    /// A read at the leader waits for a confirmation round that begins after
    /// it arrived, and for every slot assigned by then to be applied.
    pub(super) fn handle_read(&mut self, id: RequestId, command: S::Command, out: &mut Out<'_, Self>) {
        let leadership = self.leadership.as_mut().expect("a leader takes reads");
        if self.config.bug == Some(Bug::UnconfirmedReads) {
            let output = self.state.apply(&command);
            out.reply(id, output);
            return;
        }
        if leadership.reads.len() >= self.config.reads_max {
            out.reply(id, S::Output::rejected("too many reads waiting", None));
            return;
        }
        // The read needs a round that begins after it arrived: the next one.
        // If a round is under way, the next starts when that one is confirmed.
        let round = leadership.round + 1;
        let read_index = leadership.next_slot - 1;
        leadership.reads.push(PendingRead { request: id, command, read_index, round });
        if leadership.confirmed == leadership.round {
            self.start_round(out);
        }
    }

    /// Send a heartbeat that numbers a new confirmation round.
    pub(super) fn start_round(&mut self, out: &mut Out<'_, Self>) {
        let leadership = self.leadership.as_mut().expect("a leader confirms");
        leadership.round += 1;
        let (ballot, round) = (leadership.ballot, leadership.round);
        for peer in self.peers() {
            out.send(peer, Msg::Heartbeat { ballot, commit: self.applied, round });
        }
        self.confirm_rounds(out);
    }

    /// The latest round a majority (ourselves included) acknowledged.
    fn confirm_rounds(&mut self, out: &mut Out<'_, Self>) {
        let majority = self.majority();
        let leadership = self.leadership.as_mut().expect("a leader confirms");
        let rounds = leadership.acked.values().copied().chain([leadership.round]);
        let confirmed = leadership.confirmed.max(quorum::committed(rounds, majority).unwrap_or(0));
        if confirmed > leadership.confirmed {
            leadership.quorum_heard_at = out.now();
        }
        leadership.confirmed = confirmed;
        self.serve_reads(out);
        let leadership = self.leadership.as_ref().expect("still leading");
        if leadership.confirmed == leadership.round
            && leadership.reads.iter().any(|r| r.round > leadership.round)
        {
            self.start_round(out);
        }
    }

    /// Answer the reads whose round is confirmed and whose index is applied.
    pub(super) fn serve_reads(&mut self, out: &mut Out<'_, Self>) {
        let Some(leadership) = self.leadership.as_mut() else { return };
        let (confirmed, applied) = (leadership.confirmed, self.applied);
        let (ready, waiting): (Vec<_>, Vec<_>) =
            leadership.reads.drain(..).partition(|r| r.round <= confirmed && r.read_index <= applied);
        leadership.reads = waiting;
        for read in ready {
            let before = self.state.digest();
            let output = self.state.apply(&read.command);
            assert_eq!(before, self.state.digest(), "a read-only command left the state unchanged");
            out.reply(read.request, output);
        }
    }

    /// `from` acknowledged confirmation round `round` (and so every earlier
    /// one).
    pub(super) fn handle_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        out: &mut Out<'_, Self>,
    ) {
        let Some(leadership) = self.leadership.as_mut() else { return };
        if leadership.ballot != ballot {
            return;
        }
        let acked = leadership.acked.entry(from).or_insert(0);
        *acked = (*acked).max(round);
        self.confirm_rounds(out);
    }
}
