use quorum_core::decision::DecisionResponse;
use quorum_core::proposal::ProposalRequest;
use quorum_core::{Micros, NodeId};

use super::*;
use crate::testkit::Kit;

const A: NodeId = NodeId(0);
const B: NodeId = NodeId(1);

fn decisions(kit: &Kit<TwoGenerals>) -> (Option<u64>, Option<u64>) {
    (kit.node(A).decided, kit.node(B).decided)
}

fn acknowledged(messages: u32) -> Kit<TwoGenerals> {
    Kit::new(2, Config { messages, ..Config::default() })
}

#[test]
fn with_every_messenger_through_both_attack_and_answer() {
    for k in 1..=8 {
        let mut kit = acknowledged(k);
        let a = kit.request(A, ProposalRequest::Propose(1));
        let b = kit.request(B, ProposalRequest::Propose(1));
        kit.deliver_all(100);
        assert_eq!(kit.node(A).received.max(kit.node(B).received), k, "k = {k}: every message arrived");
        kit.advance(Micros::from_millis(2000));
        assert_eq!(decisions(&kit), (Some(ATTACK), Some(ATTACK)), "k = {k}");
        assert_eq!(kit.reply(a), Some(&DecisionResponse::Decided(ATTACK)));
        assert_eq!(kit.reply(b), Some(&DecisionResponse::Decided(ATTACK)));
    }
}

#[test]
fn nobody_attacks_when_a_general_is_unwilling() {
    let mut kit = acknowledged(4);
    kit.request(A, ProposalRequest::Propose(1));
    kit.request(B, ProposalRequest::Propose(0));
    kit.deliver_all(100);
    kit.advance(Micros::from_millis(2000));
    assert_eq!(decisions(&kit), (Some(RETREAT), Some(RETREAT)));
}

/// Lynch Theorem 5.1's step: the sender of the lost last message cannot
/// tell this run from the one where it arrived, and attacks; the general
/// it was meant for did not hear it, and stays.
#[test]
fn losing_the_last_messenger_leaves_its_sender_attacking_alone() {
    for k in 1..=8 {
        let mut kit = acknowledged(k);
        kit.request(A, ProposalRequest::Propose(1));
        kit.request(B, ProposalRequest::Propose(1));
        kit.deliver_all(k as usize - 1);
        assert_eq!(kit.network.len(), 1, "message {k} in flight");
        kit.network.clear();
        kit.advance(Micros::from_millis(2000));
        let sender_is_a = k % 2 == 1;
        let expected =
            if sender_is_a { (Some(ATTACK), Some(RETREAT)) } else { (Some(RETREAT), Some(ATTACK)) };
        assert_eq!(decisions(&kit), expected, "k = {k}");
    }
}

fn randomized(rounds: u32) -> Kit<TwoGenerals> {
    Kit::new(2, Config { variant: Variant::Randomized, rounds, ..Config::default() })
}

fn run_rounds(kit: &mut Kit<TwoGenerals>, rounds: u32) {
    for _ in 0..rounds {
        kit.advance(Micros::from_millis(50));
    }
}

#[test]
fn randomized_attacks_together_when_every_round_arrives() {
    let mut kit = randomized(8);
    kit.request(A, ProposalRequest::Propose(1));
    kit.request(B, ProposalRequest::Propose(1));
    kit.deliver_all(10);
    run_rounds(&mut kit, 9);
    assert_eq!(decisions(&kit), (Some(ATTACK), Some(ATTACK)));
    assert_eq!((kit.node(A).level, kit.node(B).level), (8, 8));
}

/// Theorem 5.3's only bad case: B's messages are lost from round `t` on,
/// so A ends at level t - 1 and B at level t; they split exactly when the
/// key is t.
#[test]
fn randomized_splits_only_when_the_key_falls_between_the_levels() {
    let mut splits = 0;
    for t in 1..=8 {
        let mut kit = randomized(8);
        kit.request(A, ProposalRequest::Propose(1));
        kit.request(B, ProposalRequest::Propose(1));
        let key = kit.node(A).key.expect("A drew a key");
        if t >= 2 {
            kit.deliver_all(10); // round 1; rounds 2..t-1 arrive as their timers fire
            run_rounds(&mut kit, t - 2);
        }
        kit.network.retain(|(from, _, _)| *from != B);
        kit.cut.push((B, A));
        kit.deliver_all(10);
        run_rounds(&mut kit, 10);
        assert_eq!((kit.node(A).level, kit.node(B).level), (t - 1, t), "t = {t}");
        let (a, b) = decisions(&kit);
        assert_eq!(a != b, key == t, "t = {t}, key {key}: split exactly when the key is t");
        splits += u32::from(a != b);
    }
    assert_eq!(splits, 1, "one cut round of the eight meets the key");
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let two = [A, B];
    assert!(TwoGenerals::validate(&Config::default(), &two).is_ok());
    assert!(TwoGenerals::validate(&Config::default(), &[A, B, NodeId(2)]).is_err());
    assert!(TwoGenerals::validate(&Config { messages: 0, ..Config::default() }, &two).is_err());
    assert!(TwoGenerals::validate(&Config { rounds: 0, ..Config::default() }, &two).is_err());
}

/// One run against the worst adversary that cannot see the key: B's
/// messages are lost from round `cut` on. Whether the generals split.
fn split_with_cut(rounds: u32, cut: u32, seed: u64) -> bool {
    let mut kit = randomized(rounds);
    kit.rng = quorum_core::Rng::seed(seed);
    kit.request(A, ProposalRequest::Propose(1));
    kit.request(B, ProposalRequest::Propose(1));
    if cut >= 2 {
        kit.deliver_all(10);
        run_rounds(&mut kit, cut - 2);
    }
    kit.network.retain(|(from, _, _)| *from != B);
    kit.cut.push((B, A));
    kit.deliver_all(10);
    run_rounds(&mut kit, rounds + 2);
    let (a, b) = decisions(&kit);
    assert!(a.is_some() && b.is_some(), "both decide");
    a != b
}

/// Theorem 5.3 over seeds: with the cut round drawn uniformly from 1..=r
/// (any fixed cut gives the same), the generals split in 1/r of the runs,
/// within sampling error (2,000 seeds per r).
#[test]
fn randomized_disagreement_is_one_in_r_against_the_worst_adversary() {
    for rounds in [2u32, 4, 8, 16] {
        let seeds = 2_000u64;
        let splits = (0..seeds)
            .filter(|&s| split_with_cut(rounds, 1 + (s * 7919 % u64::from(rounds)) as u32, s))
            .count();
        let rate = splits as f64 / seeds as f64;
        let bound = 1.0 / f64::from(rounds);
        assert!((rate - bound).abs() < 0.04, "r = {rounds}: {splits} of {seeds} split, 1/r = {bound}");
    }
}
