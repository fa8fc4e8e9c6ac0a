//! Paxos tests on the hand-driven FIFO cluster of `testkit`, named as
//! prose: the source text's walkthrough, dueling proposers with and without
//! backoff, promises kept across crashes (and the negative control that
//! forgets them), reads that finish or skip half-done writes, anti-entropy
//! and checkpoints. The simulator (`quorum explore --protocol paxos`) covers
//! random fault schedules.

use super::*;
use crate::testkit::Kit;
use quorum_core::KvResponse;

type P = Paxos<KvStore>;

fn write(key: u64, value: u64) -> KvCommand {
    KvCommand::Write { key, value }
}

fn read(key: u64) -> KvCommand {
    KvCommand::Read { key }
}

/// Deliver the first in-flight message from `from` to `to`.
fn deliver(kit: &mut Kit<P>, from: NodeId, to: NodeId) -> Msg<KvCommand> {
    let at = kit.network.iter().position(|(f, t, _)| *f == from && *t == to).expect("a message in flight");
    let message = kit.network.remove(at).expect("in range");
    let msg = message.2.clone();
    kit.network.push_front(message);
    kit.deliver_all(1);
    msg
}

/// Drop the first in-flight message from `from` to `to`.
fn drop_one(kit: &mut Kit<P>, from: NodeId, to: NodeId) -> Msg<KvCommand> {
    let at = kit.network.iter().position(|(f, t, _)| *f == from && *t == to).expect("a message in flight");
    kit.network.remove(at).expect("in range").2
}

/// An operator command that changes only the node's state (no message).
fn admin(kit: &mut Kit<P>, node: NodeId, command: &str) {
    let in_flight = kit.network.len();
    kit.admin(node, command).expect("accepted");
    assert_eq!(kit.network.len(), in_flight, "nothing sent");
}

fn ballot(counter: u64, node: u32) -> Ballot {
    Ballot { counter, node: NodeId(node) }
}

/// The source text's "Walkthrough" (Paxos section): proposers A (n=2)
/// and B (n=4), acceptors X, Y, Z. Both propose 8. Z's answer to A is
/// lost, A's accept is rejected everywhere, B's accept (carrying 8) is
/// accepted by all, and every learner learns 8.
///
/// The text has X and Y answer B "with the previously seen proposal
/// (A's)": at that point they had only *promised* A, so there is no
/// accepted value to report; B's accept carries 8 because 8 is B's own.
#[test]
fn walkthrough_a_n2_and_b_n4_every_learner_learns_8() {
    let (a, b, x, y, z) = (NodeId(0), NodeId(1), NodeId(2), NodeId(3), NodeId(4));
    let config = Config { acceptors: Some(vec![2, 3, 4]), proposers: Some(vec![0, 1]), ..Config::default() };
    let mut kit: Kit<P> = Kit::new(5, config);
    admin(&mut kit, a, "next-ballot 2");
    admin(&mut kit, b, "next-ballot 4");
    // 1, 2: A and B send prepare.
    let ra = kit.request(a, write(1, 8));
    let rb = kit.request(b, write(1, 8));
    assert_eq!(kit.node(a).proposal_ballot(1), Some(ballot(2, 0)));
    assert_eq!(kit.node(b).proposal_ballot(1), Some(ballot(4, 1)));
    // 3: X and Y receive A's prepare first and promise n=2.
    deliver(&mut kit, a, x);
    deliver(&mut kit, a, y);
    assert_eq!(kit.node(x).acceptor_state(1).0, ballot(2, 0));
    // 4, 5: X, Y and Z promise B's n=4.
    deliver(&mut kit, b, x);
    deliver(&mut kit, b, y);
    deliver(&mut kit, b, z);
    assert_eq!(kit.node(y).acceptor_state(1).0, ballot(4, 1));
    // 6: Z rejects A's n=2, but the rejection is lost.
    deliver(&mut kit, a, z);
    let lost = drop_one(&mut kit, z, a);
    assert!(
        matches!(lost, Msg::Nack { ballot: n, promised, .. } if n == ballot(2, 0) && promised == ballot(4, 1))
    );
    // Accept phase 1: A has promises from X and Y, a majority.
    deliver(&mut kit, x, a);
    deliver(&mut kit, y, a);
    assert!(kit.network.iter().any(|(f, _, m)| *f == a && matches!(m, Msg::Accept { .. })));
    // 2: A's accept is ignored by every acceptor: each promised n=4.
    for acceptor in [x, y, z] {
        let reply = {
            deliver(&mut kit, a, acceptor);
            kit.network.back().expect("a reply").2.clone()
        };
        assert!(matches!(reply, Msg::Nack { promised, .. } if promised == ballot(4, 1)));
        assert_eq!(kit.node(acceptor).acceptor_state(1).1, None);
    }
    // 3-6: B's accept carries 8; all accept and tell every learner.
    kit.deliver_all(1_000);
    for node in 0..5 {
        assert_eq!(kit.node(NodeId(node)).learned(1), Some(&write(1, 8)), "learner n{node}");
    }
    assert_eq!(kit.reply(ra), Some(&KvResponse::Done), "A's value, 8, was chosen");
    assert_eq!(kit.reply(rb), Some(&KvResponse::Done));
}

/// Deliver phase-1 traffic before any Accept: the scheduler that lets
/// two proposers pre-empt each other. Timers fire only when nothing is
/// in flight. Returns the deliveries made.
fn run_dueling(kit: &mut Kit<P>, steps: usize) {
    for _ in 0..steps {
        if kit.node(NodeId(0)).learned(1).is_some() {
            return;
        }
        let urgent = kit.network.iter().position(|(_, _, m)| !matches!(m, Msg::Accept { .. }));
        match urgent.or(if kit.network.is_empty() { None } else { Some(0) }) {
            Some(at) => {
                let message = kit.network.remove(at).expect("in range");
                kit.network.push_front(message);
                kit.deliver_all(1);
            }
            None => kit.advance(Micros::from_millis(1)),
        }
    }
}

fn dueling(backoff: bool) -> Kit<P> {
    let mut kit: Kit<P> = Kit::new(3, Config { backoff, ..Config::default() });
    kit.request(NodeId(0), write(1, 10));
    kit.request(NodeId(1), write(1, 11));
    run_dueling(&mut kit, 20_000);
    kit
}

/// FLP in practice: without backoff, each proposer's prepare lands
/// between the other's prepare and accept, forever.
#[test]
fn dueling_proposers_without_backoff_never_choose() {
    let kit = dueling(false);
    for node in 0..3 {
        assert_eq!(kit.node(NodeId(node)).learned(1), None);
    }
    let counter = kit.node(NodeId(0)).proposal_ballot(1).expect("still proposing").counter;
    assert!(counter > 1_000, "ballots kept rising: {counter}");
}

#[test]
fn dueling_proposers_with_backoff_choose_one_value() {
    let mut kit = dueling(true);
    kit.deliver_all(10_000);
    let chosen = kit.node(NodeId(0)).learned(1).copied().expect("decided");
    for node in 0..3 {
        assert_eq!(kit.node(NodeId(node)).learned(1), Some(&chosen));
    }
    assert!(chosen == write(1, 10) || chosen == write(1, 11));
}

fn promise_then_restart(bug: Option<Bug>) -> Kit<P> {
    let mut kit: Kit<P> = Kit::new(3, Config { bug, ..Config::default() });
    kit.request(NodeId(0), write(1, 10));
    deliver(&mut kit, NodeId(0), NodeId(1));
    assert_eq!(kit.node(NodeId(1)).acceptor_state(1).0, ballot(1, 0));
    kit.crash(NodeId(1));
    kit.start(NodeId(1));
    kit.network.clear();
    // An older proposer's accept arrives after the restart.
    kit.network.push_back((
        NodeId(2),
        NodeId(1),
        Msg::Accept { instance: 1, ballot: ballot(0, 2), value: write(1, 99) },
    ));
    kit.deliver_all(1);
    kit
}

#[test]
fn acceptor_keeps_its_promise_across_a_crash() {
    let kit = promise_then_restart(None);
    assert_eq!(kit.node(NodeId(1)).acceptor_state(1), (ballot(1, 0), None));
    assert!(
        matches!(kit.network.back(), Some((_, _, Msg::Nack { promised, .. })) if *promised == ballot(1, 0))
    );
}

#[test]
fn forget_promises_bug_breaks_the_promise_after_a_crash() {
    let kit = promise_then_restart(Some(Bug::ForgetPromises));
    assert_eq!(kit.node(NodeId(1)).acceptor_state(1).1, Some(&(ballot(0, 2), write(1, 99))));
}

#[test]
fn write_then_competing_write_is_rejected_and_reads_agree() {
    let mut kit: Kit<P> = Kit::new(3, Config::default());
    let w = kit.request(NodeId(0), write(1, 10));
    kit.deliver_all(1_000);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let late = kit.request(NodeId(2), write(1, 11));
    // A definite no from the decided register (a failed cas from "never
    // written"), not a refusal to serve: 2 learned 10 already.
    assert_eq!(kit.reply(late), Some(&KvResponse::CasMismatch));
    for node in 0..3 {
        let r = kit.request(NodeId(node), read(1));
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
    }
    let cas = kit.request(NodeId(0), KvCommand::Cas { key: 1, expected: 10, new: 12 });
    assert!(matches!(kit.reply(cas), Some(KvResponse::Rejected { .. })));
}

#[test]
fn read_of_unwritten_key_runs_phase_1_and_returns_none() {
    let mut kit: Kit<P> = Kit::new(3, Config::default());
    let r = kit.request(NodeId(1), read(7));
    assert_eq!(kit.reply(r), None);
    kit.deliver_all(1_000);
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
    // It proposed nothing: a later write still wins the instance.
    let w = kit.request(NodeId(0), write(7, 1));
    kit.deliver_all(1_000);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
}

/// Run n0's write of 10 until it accepted it locally and sent its accepts,
/// then lose every message and crash n0.
fn half_done_write(kit: &mut Kit<P>, also_accepted_at_n1: bool) -> RequestId {
    let (n0, n1, n2) = (NodeId(0), NodeId(1), NodeId(2));
    kit.cut.push((n0, n2));
    let w = kit.request(n0, write(1, 10));
    deliver(kit, n0, n0);
    deliver(kit, n0, n1);
    deliver(kit, n0, n0); // promise
    deliver(kit, n1, n0); // promise: a majority, accepts go out
    deliver(kit, n0, n0); // n0 accepts 10
    if also_accepted_at_n1 {
        deliver(kit, n0, n1);
    }
    kit.network.clear(); // every Accepted announcement is lost
    kit.cut.clear();
    kit.crash(n0);
    assert_eq!(kit.reply(w), None);
    w
}

/// 10 was accepted by n0 and n1, a majority: chosen, but nobody knows.
/// A read at n2 finds it in phase 1 and finishes it before returning it.
#[test]
fn read_finishes_a_chosen_but_unlearned_value_before_returning_it() {
    let mut kit: Kit<P> = Kit::new(3, Config::default());
    half_done_write(&mut kit, true);
    let r = kit.request(NodeId(2), read(1));
    kit.deliver_all(1_000);
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
    assert_eq!(kit.node(NodeId(1)).learned(1), Some(&write(1, 10)));
}

/// 10 was accepted by n0 alone: not chosen. With n0 down, a read at n2
/// sees nothing at its majority and answers "never written"; the write
/// is still undecided (its client saw no answer). Once n0 restarts it
/// drives its intent, and 10 is decided everywhere (termination).
#[test]
fn read_returns_unwritten_for_a_minority_value_and_the_restarted_proposer_finishes_it() {
    let mut kit: Kit<P> = Kit::new(3, Config::default());
    half_done_write(&mut kit, false);
    let r = kit.request(NodeId(2), read(1));
    kit.deliver_all(1_000);
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
    kit.start(NodeId(0));
    kit.deliver_all(1_000);
    for node in 0..3 {
        assert_eq!(kit.node(NodeId(node)).learned(1), Some(&write(1, 10)));
    }
}

#[test]
fn lagging_learner_catches_up_by_sync() {
    let mut kit: Kit<P> = Kit::new(3, Config::default());
    for from in 0..3 {
        kit.cut.push((NodeId(from), NodeId(2)));
    }
    let mut requests = Vec::new();
    for key in 0..5 {
        requests.push(kit.request(NodeId((key % 2) as u32), write(key, key + 100)));
    }
    kit.deliver_all(10_000);
    assert!(requests.iter().all(|r| kit.reply(*r) == Some(&KvResponse::Done)));
    assert_eq!(kit.node(NodeId(2)).learned(0), None);
    kit.cut.clear();
    kit.advance(Micros::from_millis(1_000));
    for key in 0..5 {
        assert_eq!(kit.node(NodeId(2)).learned(key), Some(&write(key, key + 100)));
    }
    assert_eq!(kit.node(NodeId(2)).state_digest(), kit.node(NodeId(0)).state_digest());
}

#[test]
fn checkpoints_bound_the_log_and_recover_everything() {
    let config = Config { checkpoint_every_records: 8, ..Config::default() };
    let mut kit: Kit<P> = Kit::new(3, config);
    for key in 0..20 {
        let w = kit.request(NodeId(0), write(key, key));
        kit.deliver_all(1_000);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }
    assert!(kit.durable(1).len() <= 8);
    let digest = kit.node(NodeId(1)).state_digest();
    kit.crash(NodeId(1));
    kit.start(NodeId(1));
    assert_eq!(kit.node(NodeId(1)).state_digest(), digest);
    // A restarted proposer never reuses a ballot.
    kit.crash(NodeId(0));
    kit.start(NodeId(0));
    kit.request(NodeId(0), write(99, 1));
    assert!(kit.node(NodeId(0)).proposal_ballot(99).expect("proposing").counter > 20);
}
