//! LOOKING: fast leader election (ZooKeeper's `FastLeaderElection`).
//!
//! A LOOKING node starts a new round (its logical clock), votes for itself
//! with its credentials `(currentEpoch, last zxid, id)` and sends the vote to
//! every peer. On a notification of the same round it adopts a better vote
//! and rebroadcasts; a higher round makes it join that round afresh; a lower
//! one is answered with its own vote so the sender catches up. When a quorum
//! of the round's votes (its own included) equals its vote, it follows the
//! voted leader, or leads if that is itself. Nodes that are not LOOKING answer
//! a LOOKING node with the leader they follow; a leader's own answer makes
//! the LOOKING node join it, which is how a restarted node rejoins. A round
//! without an outcome for a randomised timeout is abandoned for a new one.

use std::collections::BTreeMap;

use quorum_core::{NodeId, Observation, Out, Role, StateMachine, Time};

use super::{follower, leader, Msg, PeerState, Phase, Timer, Vote, Zab};

/// A LOOKING node's round.
#[derive(Clone, Debug)]
pub(super) struct Election {
    /// The vote this node currently holds.
    pub vote: Vote,
    /// Votes of this round from LOOKING peers.
    pub votes: BTreeMap<NodeId, Vote>,
    /// When this round is abandoned for a new one.
    pub round_deadline: Time,
    /// A quorum holds `vote`: decide at this time unless a better vote comes
    /// first (ZooKeeper's `finalizeWait`).
    pub decide_at: Option<Time>,
}

impl Election {
    pub fn new(vote: Vote) -> Election {
        Election { vote, votes: BTreeMap::new(), round_deadline: Time::ZERO, decide_at: None }
    }

    pub fn check(&self, nodes: usize) {
        assert!(self.votes.len() < nodes, "votes come from peers only");
        assert!(self.votes.values().all(|v| v.leader.0 < nodes as u32 + 64), "votes name nodes");
    }
}

impl<S: StateMachine> Zab<S> {
    /// Enter LOOKING: a new round, voting for oneself.
    pub(super) fn become_looking(&mut self, out: &mut Out<'_, Self>) {
        self.abdicate(out);
        out.cancel_timer(Timer::LeaderSilent);
        out.observe(Observation::Role { role: Role::Candidate, term: self.accepted_epoch });
        self.phase = Phase::Looking(Election::new(self.own_vote()));
        self.new_round(self.round + 1, out);
        self.set_tick(out);
        // A one-node quorum decides alone.
        self.maybe_decide(out);
    }

    /// Join `round` afresh: vote for oneself, or for `better` if it beats that.
    fn new_round(&mut self, round: u64, out: &mut Out<'_, Self>) {
        assert!(round > self.round, "rounds only move forward");
        self.round = round;
        let timeout = self.config.election_round_timeout.0;
        let deadline = out.now() + quorum_core::Micros(timeout + out.rng().range(0, timeout));
        let vote = self.own_vote();
        let Phase::Looking(election) = &mut self.phase else {
            unreachable!("only LOOKING nodes hold rounds")
        };
        election.vote = vote;
        election.votes.clear();
        election.round_deadline = deadline;
        election.decide_at = None;
        self.broadcast_vote(out);
    }

    fn broadcast_vote(&self, out: &mut Out<'_, Self>) {
        let Phase::Looking(election) = &self.phase else { return };
        for peer in self.cluster.peers() {
            out.send(
                peer,
                Msg::Notification { vote: election.vote, round: self.round, state: PeerState::Looking },
            );
        }
    }

    /// The notification this node answers LOOKING peers with.
    fn my_notification(&self) -> Msg<S, S::Command> {
        match &self.phase {
            Phase::Looking(election) => {
                Msg::Notification { vote: election.vote, round: self.round, state: PeerState::Looking }
            }
            Phase::Following(session) => Msg::Notification {
                vote: Vote {
                    epoch: self.accepted_epoch,
                    zxid: self.history.last_zxid(),
                    leader: session.leader,
                },
                round: self.round,
                state: PeerState::Following,
            },
            Phase::Leading(_) => Msg::Notification {
                vote: self.own_vote_as_leader(),
                round: self.round,
                state: PeerState::Leading,
            },
        }
    }

    fn own_vote_as_leader(&self) -> Vote {
        Vote { epoch: self.accepted_epoch, zxid: self.history.last_zxid(), leader: self.id() }
    }

    pub(super) fn handle_notification(
        &mut self,
        from: NodeId,
        vote: Vote,
        round: u64,
        state: PeerState,
        out: &mut Out<'_, Self>,
    ) {
        if state == PeerState::Looking && self.leader() == Some(from) {
            // Our leader is looking again: so are we.
            out.observe(Observation::Note(format!("leader {from} is LOOKING")));
            self.become_looking(out);
        }
        let Phase::Looking(_) = &self.phase else {
            match state {
                // Not LOOKING: tell a LOOKING peer whom we follow.
                PeerState::Looking => out.send(from, self.my_notification()),
                // Our leader announces itself: it may have missed our
                // FOLLOWERINFO while it was still LOOKING.
                PeerState::Leading if self.leader() == Some(from) => self.follower_tick_now(out),
                PeerState::Leading | PeerState::Following => {}
            }
            return;
        };
        match state {
            PeerState::Looking => self.handle_looking_vote(from, vote, round, out),
            // Join a leader even if its epoch is below ours: its discovery
            // then sees our acceptedEpoch and starts over above it.
            PeerState::Leading if vote.leader == from => {
                if self.can_join(out.now()) {
                    self.become_follower(from, out);
                }
            }
            PeerState::Leading | PeerState::Following => {}
        }
    }

    fn handle_looking_vote(&mut self, from: NodeId, vote: Vote, round: u64, out: &mut Out<'_, Self>) {
        if round < self.round {
            out.send(from, self.my_notification());
            return;
        }
        if round > self.round {
            self.new_round(round, out);
        }
        let Phase::Looking(election) = &mut self.phase else { unreachable!() };
        election.votes.insert(from, vote);
        if vote > election.vote {
            election.vote = vote;
            election.decide_at = None;
            self.broadcast_vote(out);
        } else if vote < election.vote {
            // Tell the sender of the better vote it has not heard of.
            out.send(from, self.my_notification());
        }
        self.maybe_decide(out);
    }

    /// Decide once a quorum of this round has held this node's vote for
    /// the finalize wait without a better vote arriving.
    fn maybe_decide(&mut self, out: &mut Out<'_, Self>) {
        let now = out.now();
        let (majority, wait) = (self.majority(), self.config.finalize_wait);
        let alone = self.cluster.nodes.len() == 1;
        let Phase::Looking(election) = &mut self.phase else { return };
        let agreeing = 1 + election.votes.values().filter(|v| **v == election.vote).count();
        if agreeing < majority {
            election.decide_at = None;
            return;
        }
        let decide_at = *election.decide_at.get_or_insert(if alone { now } else { now + wait });
        if now < decide_at {
            out.set_timer(Timer::Finalize, wait);
            return;
        }
        if !self.can_join(now) {
            return;
        }
        let Phase::Looking(election) = &self.phase else { unreachable!() };
        let leader = election.vote.leader;
        if leader == self.id() {
            self.become_leader(out);
        } else {
            self.become_follower(leader, out);
        }
    }

    pub(super) fn election_finalize(&mut self, out: &mut Out<'_, Self>) {
        self.maybe_decide(out);
    }

    pub(super) fn election_tick(&mut self, out: &mut Out<'_, Self>) {
        let Phase::Looking(election) = &self.phase else { return };
        if out.now() >= election.round_deadline {
            self.new_round(self.round + 1, out);
        } else {
            self.broadcast_vote(out);
        }
        self.maybe_decide(out);
        self.set_tick(out);
    }

    fn become_follower(&mut self, leader: NodeId, out: &mut Out<'_, Self>) {
        assert_ne!(leader, self.id());
        assert!(self.is_looking(), "followers come from LOOKING");
        let session = out.rng().next_u64();
        self.phase = Phase::Following(follower::Session::new(leader, session));
        out.observe(Observation::Role { role: Role::Follower, term: self.accepted_epoch });
        out.send(leader, Msg::FollowerInfo { session, accepted_epoch: self.accepted_epoch });
        out.set_timer(Timer::LeaderSilent, self.config.follower_timeout);
        self.set_tick(out);
    }

    fn become_leader(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.is_looking(), "leaders come from LOOKING");
        let deadline = out.now() + self.config.follower_timeout;
        self.phase = Phase::Leading(Box::new(leader::Session::new(deadline)));
        out.observe(Observation::Note(format!("elected in round {}: discovery", self.round)));
        let announce = self.my_notification();
        for peer in self.cluster.peers() {
            out.send(peer, announce.clone());
        }
        self.set_tick(out);
        // A one-node quorum discovers alone.
        self.maybe_choose_epoch(out);
    }
}
