//! Fast Paxos by the paper: the fast round's two message delays (§3.1),
//! both recoveries of a collision (§3.2), the phase-2a rule (§3.1, O4) and
//! the quorum sizes it rests on (§3.4.1), each with its negative control.

use proptest::prelude::*;
use quorum_core::{KvCommand, KvResponse, KvStore, Micros, NodeId};

use super::{pick, Ballot, Bug, Config, FastPaxos, Msg, Pick, Recovery, FAST};
use crate::quorum;
use crate::testkit::Kit;

type P = FastPaxos<KvStore>;

fn write(key: u64, value: u64) -> KvCommand {
    KvCommand::Write { key, value }
}

/// Deliver everything in flight now, not what that sends: one message
/// delay. Returns how many messages were delivered.
fn one_delay(kit: &mut Kit<P>) -> usize {
    let wave = kit.network.len();
    kit.deliver_all(wave);
    wave
}

/// Message delays until `node` learns `instance` (at most `max`).
fn delays_to_learn(kit: &mut Kit<P>, node: NodeId, instance: u64, max: usize) -> Option<usize> {
    (1..=max).find(|_| {
        one_delay(kit);
        kit.node(node).learned(instance).is_some()
    })
}

/// §3.1: without contention a proposer's value is learned two message
/// delays after it is sent — Propose, then Accepted — at 3, 4, 5 and 7
/// nodes; single-decree Paxos needs four (its own test counts them).
#[test]
fn a_value_is_learned_in_two_message_delays_without_collisions() {
    for n in [3, 4, 5, 7] {
        let mut kit: Kit<P> = Kit::new(n, Config::default());
        let request = kit.request(NodeId(0), write(1, 8));
        assert_eq!(delays_to_learn(&mut kit, NodeId(0), 1, 10), Some(2), "n={n}");
        assert_eq!(kit.reply(request), Some(&KvResponse::Done));
        assert!(kit.network.iter().all(|(_, _, m)| !matches!(m, Msg::Prepare { .. } | Msg::Accept { .. })));
    }
}

/// The positive twin's control: the same count for single-decree Paxos,
/// phase 1 and 2, is four.
#[test]
fn single_decree_paxos_takes_four_delays_on_the_same_kit() {
    use crate::paxos::single::{Config as PaxosConfig, Paxos};
    let mut kit: Kit<Paxos<KvStore>> = Kit::new(3, PaxosConfig::default());
    kit.request(NodeId(0), write(1, 8));
    let delays = (1..=10).find(|_| {
        let wave = kit.network.len();
        kit.deliver_all(wave);
        kit.node(NodeId(0)).learned(1).is_some()
    });
    assert_eq!(delays, Some(4));
}

/// Three proposers, each acceptor voting for its own node's value first: a
/// collision (votes 1/1/1, fast quorum 3 of 3).
fn collide(recovery: Recovery) -> Kit<P> {
    let mut kit: Kit<P> = Kit::new(3, Config { recovery, ..Config::default() });
    for node in 0..3 {
        kit.request(NodeId(node), write(1, 10 + u64::from(node)));
    }
    // Each node's own proposal first.
    let own: Vec<usize> = (0..kit.network.len()).filter(|&i| kit.network[i].0 == kit.network[i].1).collect();
    let mut reordered: Vec<_> = own.iter().map(|&i| kit.network[i].clone()).collect();
    reordered.extend((0..kit.network.len()).filter(|i| !own.contains(i)).map(|i| kit.network[i].clone()));
    kit.network = reordered.into();
    kit
}

/// §3.2 coordinated: the coordinator of instance 1 (n1) turns the round-1
/// votes into round 2's phase 2a; learned 4 delays after the proposals
/// (Propose, Accepted, Accept, Accepted), with no Prepare at all.
#[test]
fn coordinated_recovery_decides_in_two_more_delays_without_phase_one() {
    let mut kit = collide(Recovery::Coordinated);
    one_delay(&mut kit);
    one_delay(&mut kit);
    let recovery = Ballot { counter: 2, node: NodeId(1) };
    let phase_2a = |m: &Msg<KvCommand>| matches!(m, Msg::Accept { ballot, .. } if *ballot == recovery);
    assert!(kit.network.iter().all(|(from, _, m)| *from == NodeId(1) && phase_2a(m)), "{:?}", kit.network);
    assert_eq!(kit.network.len(), 3);
    assert_eq!(delays_to_learn(&mut kit, NodeId(0), 1, 10), Some(2), "4 delays after the proposals");
    for node in 0..3 {
        assert_eq!(
            kit.node(NodeId(node)).learned(1),
            Some(&write(1, 10)),
            "the most votes, then the smallest"
        );
    }
}

/// §3.2 uncoordinated: every acceptor votes in the fast round 2 itself;
/// learned 3 delays after the proposals, one fewer than coordinated.
#[test]
fn uncoordinated_recovery_decides_in_one_more_delay() {
    let mut kit = collide(Recovery::Uncoordinated);
    assert_eq!(delays_to_learn(&mut kit, NodeId(0), 1, 10), Some(3));
    for node in 0..3 {
        assert_eq!(kit.node(NodeId(node)).learned(1), Some(&write(1, 10)));
    }
}

/// §3.3: with the coordinator down, a collision is still decided: each
/// proposer's fast round times out and falls back to classic rounds.
#[test]
fn a_collision_is_decided_with_the_coordinator_down() {
    let mut kit: Kit<P> = Kit::new(5, Config::default());
    kit.crash(NodeId(1)); // instance 1's coordinator
    let requests: Vec<_> =
        [0, 2].iter().map(|&n| kit.request(NodeId(n), write(1, 20 + u64::from(n)))).collect();
    for _ in 0..200 {
        kit.deliver_all(1_000);
        if (0..5).filter(|&n| n != 1).all(|n| kit.node(NodeId(n)).learned(1).is_some()) {
            break;
        }
        kit.advance(Micros::from_millis(10));
    }
    let chosen = kit.node(NodeId(0)).learned(1).cloned().expect("decided");
    for n in [2, 3, 4] {
        assert_eq!(kit.node(NodeId(n)).learned(1), Some(&chosen));
    }
    let done = requests.iter().filter(|r| kit.reply(**r) == Some(&KvResponse::Done)).count();
    assert_eq!(done, 1, "one write's value was chosen, the other's CasMismatch");
}

fn reports(votes: &[Option<u64>], round: Ballot) -> Vec<Option<(Ballot, u64)>> {
    votes.iter().map(|v| v.map(|v| (round, v))).collect()
}

fn pick_fast(votes: &[Option<u64>], sizes: quorum::FastPaxos) -> Pick<u64> {
    pick(&reports(votes, FAST), sizes.acceptors, sizes.fast, |b| b == FAST, |v| *v)
}

/// §3.1 O4 at five acceptors (fast quorum 4): a quorum of 3 reporting
/// 10, 10, 11 at the fast round must propose 10 (2 ≥ 4 + 3 − 5: a fast
/// quorum of the two unheard acceptors and these two 10s may have chosen
/// it); 10, 11, 12 leave the choice free; no votes leave it open; a classic
/// round forces its one value.
#[test]
fn the_phase_two_rule_forces_what_a_fast_quorum_may_have_chosen() {
    let five = quorum::FastPaxos::most_classic_faults(5);
    assert_eq!((five.classic, five.fast), (3, 4));
    assert_eq!(pick_fast(&[Some(10), Some(11), Some(10)], five), Pick::Forced(10));
    assert_eq!(pick_fast(&[Some(12), Some(11), Some(10)], five), Pick::Free(10));
    assert_eq!(pick_fast(&[None, None, None], five), Pick::Nothing);
    // A vote below the highest round says nothing about it.
    let classic = Ballot { counter: 3, node: NodeId(2) };
    let mixed = vec![Some((FAST, 11)), Some((classic, 12)), None];
    assert_eq!(pick(&mixed, 5, 4, |b| b == FAST, |v| *v), Pick::Forced(12));
}

proptest! {
    /// The rule never contradicts a choice: whenever a fast quorum voted v
    /// in the fast round (the other acceptors voting anything), every
    /// classic quorum's reports force v (§3.1, with the sizes of §3.4.1).
    #[test]
    fn a_value_chosen_in_a_fast_round_is_forced_for_every_classic_quorum(
        n in 3usize..10,
        others in proptest::collection::vec(0u64..3, 10),
        order in proptest::collection::vec(any::<u64>(), 10),
    ) {
        let sizes = quorum::FastPaxos::most_classic_faults(n);
        let votes: Vec<u64> = (0..n).map(|a| if a < sizes.fast { 7 } else { others[a] }).collect();
        // Any classic quorum: the acceptors in a random order, the first `classic`.
        let mut members: Vec<usize> = (0..n).collect();
        members.sort_by_key(|a| order[*a]);
        let seen: Vec<Option<u64>> = members[..sizes.classic].iter().map(|a| Some(votes[*a])).collect();
        prop_assert_eq!(pick_fast(&seen, sizes), Pick::Forced(7));
    }
}

/// The negative control of the property: with fast quorums as small as
/// classic ones (`--bug fast-quorum-majority`) a quorum sees two values as
/// possibly chosen, and the rule may force the wrong one.
#[test]
fn majority_fast_quorums_let_a_quorum_miss_the_chosen_value() {
    let sizes = quorum::FastPaxos::most_classic_faults(3);
    let buggy = quorum::FastPaxos { fast: sizes.classic, ..sizes };
    assert!(!buggy.meets_quorum_requirement());
    // 7 was chosen by n0 and n2 (a "fast quorum" of 2); the quorum {n1, n2}
    // reports 8 first and 7.
    assert_eq!(pick_fast(&[Some(8), Some(7)], buggy), Pick::Forced(8));
    assert_eq!(pick_fast(&[Some(8), Some(7)], sizes), Pick::Free(7));
}

/// `--bug fast-quorum-majority` is what the node counts with.
#[test]
fn the_bug_shrinks_the_fast_quorum_to_a_majority() {
    let kit: Kit<P> = Kit::new(5, Config { bug: Some(Bug::FastQuorumMajority), ..Config::default() });
    assert_eq!((kit.node(NodeId(0)).sizes().classic, kit.node(NodeId(0)).sizes().fast), (3, 3));
    let kit: Kit<P> = Kit::new(5, Config::default());
    assert_eq!(kit.node(NodeId(0)).sizes().fast, 4);
}

/// A restarted coordinator never sends round 2 a second value: its
/// coordination is on its log.
#[test]
fn a_restarted_coordinator_does_not_recover_twice() {
    let mut kit = collide(Recovery::Coordinated);
    one_delay(&mut kit);
    one_delay(&mut kit); // the votes reach n1, which sends round 2's phase 2a
    let accepts =
        |kit: &Kit<P>| kit.network.iter().filter(|(_, _, m)| matches!(m, Msg::Accept { .. })).count();
    assert_eq!(accepts(&kit), 3);
    kit.network.clear();
    kit.start(NodeId(1)); // crash and restart n1
                          // The round-1 votes again, a collision as before.
    for (node, vote) in [(0, 10), (2, 12), (1, 11)] {
        let accepted = Msg::Accepted { instance: 1, ballot: FAST, value: write(1, vote) };
        kit.network.push_back((NodeId(node), NodeId(1), accepted));
    }
    kit.deliver_all(100);
    assert_eq!(accepts(&kit), 0, "no second phase 2a for round 2");
}
