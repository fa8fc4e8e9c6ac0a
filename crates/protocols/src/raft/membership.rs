//! Operator actions: single-server membership changes (diss. §4.1) with
//! learners (diss. §4.2.1), and leadership transfer (diss. §3.10).
//!
//! A configuration is an ordinary log entry that takes effect on every
//! server as soon as it is appended. Changing one server at a time keeps
//! every majority of the old configuration overlapping every majority of the
//! new one, so no two leaders can be elected at once. A leader proposes a
//! change only when the previous one is committed and it has committed an
//! entry of its own term (the fix of diss. §4.1, "bug in single-server
//! changes"). New servers join as learners, which replicate but neither vote
//! nor count towards commitment, and are promoted once caught up. A leader
//! that removes itself keeps leading until the change commits, then steps
//! down.
//!
//! Leadership transfer: the leader stops accepting proposals, brings the
//! target up to date, and sends it TimeoutNow; the target campaigns at once
//! (skipping pre-vote, and voters ignore their leader lease for it). If the
//! transfer does not complete within an election timeout it is abandoned.

use quorum_core::{NodeId, Observation, Out, StateMachine};
use serde::{Deserialize, Serialize};

use super::log::parse_node;
use super::{Msg, Payload, Raft, Role, Timer};

/// One single-server configuration change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Start replicating to a new, non-voting server.
    AddLearner(NodeId),
    /// Make a caught-up learner a voter.
    Promote(NodeId),
    /// Remove a voter or learner (possibly the leader itself).
    Remove(NodeId),
}

impl<S: StateMachine> Raft<S> {
    /// Propose a configuration change; returns the index of its entry.
    /// Errors (not the leader, a change already in progress, ...) change
    /// nothing.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
        out: &mut Out<'_, Self>,
    ) -> Result<u64, String> {
        if !self.is_leader() {
            return Err("not the leader".into());
        }
        if self.membership_index > self.commit_index {
            return Err("a configuration change is already in progress".into());
        }
        if !self.committed_in_term() {
            return Err("the leader has not committed an entry of its term yet".into());
        }
        if self.transfer.is_some() {
            return Err("leadership transfer in progress".into());
        }
        let mut next = self.membership.clone();
        match change {
            MembershipChange::AddLearner(node) => {
                if next.voters.contains(&node) || !next.learners.insert(node) {
                    return Err(format!("{node} is already a member"));
                }
            }
            MembershipChange::Promote(node) => {
                if !next.learners.remove(&node) {
                    return Err(format!("{node} is not a learner"));
                }
                let matched = self.progress.get(&node).map_or(0, |pr| pr.match_index);
                if !self.within_one_batch(matched) {
                    return Err(format!("{node} has not caught up (matches {matched})"));
                }
                next.voters.insert(node);
            }
            MembershipChange::Remove(node) => {
                if !next.voters.remove(&node) && !next.learners.remove(&node) {
                    return Err(format!("{node} is not a member"));
                }
                if next.voters.is_empty() {
                    return Err("cannot remove the last voter".into());
                }
            }
        }
        Ok(self.append_as_leader(Payload::Membership(next), out))
    }

    /// Whether a follower that matches the log up to `matched` is within one
    /// AppendEntries of its end by both batch limits: caught up enough to
    /// promote (diss. §4.2.1), since it then lags by at most a round trip.
    /// One behind the snapshot is judged by count alone, as the snapshot
    /// takes it most of the way in one message.
    fn within_one_batch(&self, matched: u64) -> bool {
        let last = self.log.last_index();
        if matched.saturating_add(self.config.batch_entries_max as u64) < last {
            return false;
        }
        if matched < self.log.snapshot_index() {
            return true;
        }
        let batch = self.log.batch_len(
            matched + 1,
            self.config.batch_entries_max,
            self.config.batch_bytes_max,
            S::command_bytes,
        );
        matched + batch as u64 >= last
    }

    /// Hand leadership to voter `to` (diss. §3.10).
    pub fn transfer_leadership(&mut self, to: NodeId, out: &mut Out<'_, Self>) -> Result<(), String> {
        if !self.is_leader() {
            return Err("not the leader".into());
        }
        if to == self.id {
            return Err("already the leader".into());
        }
        if !self.membership.voters.contains(&to) {
            return Err(format!("{to} is not a voter"));
        }
        if self.transfer.is_some() {
            return Err("a leadership transfer is already in progress".into());
        }
        self.transfer = Some(to);
        out.set_timer(Timer::TransferTimeout, self.config.election_timeout_min);
        let caught_up = self.progress.get(&to).is_some_and(|pr| pr.match_index == self.log.last_index());
        if caught_up {
            self.maybe_finish_transfer(to, out);
        } else {
            self.restart_probe(to, out);
        }
        Ok(())
    }

    /// Send TimeoutNow once the transfer target has every entry.
    pub(super) fn maybe_finish_transfer(&mut self, peer: NodeId, out: &mut Out<'_, Self>) {
        if self.transfer != Some(peer) {
            return;
        }
        let caught_up = self.progress.get(&peer).is_some_and(|pr| pr.match_index == self.log.last_index());
        if caught_up {
            out.send(peer, Msg::TimeoutNow { term: self.term });
        }
    }

    pub(super) fn handle_transfer_timeout(&mut self, out: &mut Out<'_, Self>) {
        if let Some(to) = self.transfer.take() {
            out.observe(Observation::Note(format!("leadership transfer to {to} timed out")));
        }
    }

    pub(super) fn handle_timeout_now(&mut self, from: NodeId, out: &mut Out<'_, Self>) {
        if self.role != Role::Follower || self.leader != Some(from) || !self.is_voter() {
            return;
        }
        self.start_election(true, out);
    }

    /// `transfer-leadership N`, `add-learner N`, `promote N`, `remove N`.
    pub(super) fn handle_admin(&mut self, command: &str, out: &mut Out<'_, Self>) -> Result<(), String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let [verb, node] = words[..] else {
            return Err(format!(
                "'{command}': expected 'transfer-leadership|add-learner|promote|remove NODE'"
            ));
        };
        let node = parse_node(node)?;
        match verb {
            "transfer-leadership" | "transfer" => self.transfer_leadership(node, out),
            "add-learner" => self.propose_membership(MembershipChange::AddLearner(node), out).map(|_| ()),
            "promote" => self.propose_membership(MembershipChange::Promote(node), out).map(|_| ()),
            "remove" => self.propose_membership(MembershipChange::Remove(node), out).map(|_| ()),
            other => Err(format!("unknown operator command '{other}'")),
        }
    }
}
