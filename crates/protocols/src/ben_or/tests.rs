//! Ben-Or's protocol step by step on the test kit: round 1 decides with
//! unanimous inputs (Validity), split inputs need the coin, a decision
//! reaches a node that was cut off, a restart resends the very same
//! messages, and the negative control decides too early.

use quorum_core::decision::{DecisionQuery, DecisionResponse};
use quorum_core::{Micros, NodeId};

use super::{BenOr, Bug, Config, Inputs, Msg, Proposal, Record};
use crate::testkit::Kit;

fn config(inputs: Inputs) -> Config {
    Config { inputs, ..Config::default() }
}

fn ask(kit: &mut Kit<BenOr>, node: u32, instance: u64) -> quorum_core::RequestId {
    kit.request(NodeId(node), DecisionQuery { instance })
}

/// Ben-Or 1983, Protocol A: with every input 1, every report is 1, every
/// proposal is 1 and every node decides 1 in round 1 (Validity).
#[test]
fn unanimous_inputs_decide_in_round_one() {
    let mut kit: Kit<BenOr> = Kit::new(5, config(Inputs::Ones));
    let rid = ask(&mut kit, 0, 7);
    kit.deliver_all(10_000);
    for (id, node) in kit.live() {
        assert_eq!(node.decided(7), Some(1), "{id}");
    }
    assert_eq!(kit.reply(rid), Some(&DecisionResponse::Decided(1)));
    let rounds: Vec<u64> = kit
        .durable(3)
        .iter()
        .filter_map(|r| match r {
            Record::Estimate { round, .. } => Some(*round),
            _ => None,
        })
        .collect();
    assert_eq!(rounds, vec![1], "one round");
}

/// Split inputs: no value has a majority of reports in every view, so some
/// round ends with the coin; whatever it shows, every node decides the same
/// value, for each of many instances (each its own coins).
#[test]
fn split_inputs_agree_on_every_instance() {
    let mut kit: Kit<BenOr> = Kit::new(5, config(Inputs::Split));
    let mut later_rounds = 0;
    for instance in 0..40 {
        ask(&mut kit, (instance % 5) as u32, instance);
        kit.deliver_all(100_000);
        let decided: Vec<Option<u8>> = kit.live().map(|(_, n)| n.decided(instance)).collect();
        assert!(decided[0].is_some(), "instance {instance} decided");
        assert!(decided.iter().all(|d| *d == decided[0]), "instance {instance}: {decided:?}");
        let rounds = kit
            .durable(0)
            .iter()
            .filter(|r| matches!(r, Record::Estimate { instance: i, .. } if *i == instance))
            .count();
        later_rounds += usize::from(rounds > 1);
    }
    assert!(later_rounds > 0, "some instance needed a second round (the sometimes twin)");
}

/// A node cut off while the others decide learns the decision once the
/// link heals: the others answer its retransmitted report with the decision.
#[test]
fn a_node_cut_off_learns_the_decision_from_its_retransmission() {
    let mut kit: Kit<BenOr> = Kit::new(3, config(Inputs::Ones));
    kit.cut =
        vec![(NodeId(0), NodeId(2)), (NodeId(1), NodeId(2)), (NodeId(2), NodeId(0)), (NodeId(2), NodeId(1))];
    ask(&mut kit, 0, 0);
    kit.deliver_all(10_000);
    assert_eq!(kit.node(NodeId(0)).decided(0), Some(1));
    assert_eq!(kit.node(NodeId(2)).decided(0), None, "never heard of it");
    kit.cut.clear();
    ask(&mut kit, 2, 0);
    kit.deliver_all(10_000);
    assert_eq!(kit.node(NodeId(2)).decided(0), Some(1));
}

/// A restarted node resends the report it forced before the crash (never a
/// re-drawn input or a re-flipped coin), and finishes the instance.
#[test]
fn a_restart_resends_the_same_report() {
    let mut kit: Kit<BenOr> = Kit::new(3, config(Inputs::Random));
    ask(&mut kit, 1, 4);
    let sent: Vec<Msg> =
        kit.network.iter().filter(|(f, _, _)| *f == NodeId(1)).map(|(_, _, m)| m.clone()).collect();
    kit.network.clear();
    kit.start(NodeId(1));
    let resent: Vec<Msg> =
        kit.network.iter().filter(|(f, _, _)| *f == NodeId(1)).map(|(_, _, m)| m.clone()).collect();
    assert_eq!(sent, resent);
    kit.deliver_all(10_000);
    kit.advance(Micros::from_millis(200));
    let decided: Vec<Option<u8>> = kit.live().map(|(_, n)| n.decided(4)).collect();
    assert!(decided[0].is_some() && decided.iter().all(|d| *d == decided[0]), "{decided:?}");
}

/// The negative control (Ben-Or 1983, Protocol A, step 2: decide on
/// `t + 1` D-messages): 3 nodes, f = 1, inputs 1, 1, 0. Node 0 hears node
/// 1's report (two 1s of three: a majority) and proposes 1; node 2, which
/// heard only itself and node 0 (a 0 and a 1), proposes '?'. With its own 1
/// and node 2's '?', node 0 holds n - f = 2 proposals with one 1: the
/// protocol adopts 1 and goes on; the bug decides on f = 1 proposal.
#[test]
fn the_bug_decides_on_f_proposals_and_the_protocol_does_not() {
    use quorum_core::Protocol;
    for bug in [Some(Bug::DecideOnFProposals), None] {
        let inputs = Inputs::Bits("110".into());
        let mut kit: Kit<BenOr> = Kit::new(3, Config { inputs, bug, ..Config::default() });
        ask(&mut kit, 0, 0);
        kit.network.clear();
        kit.with(NodeId(0), |p, out| {
            p.on_message(NodeId(1), Msg::Report { instance: 0, round: 1, value: 1, answer: false }, out);
        });
        let unsure = Msg::Proposal { instance: 0, round: 1, proposal: Proposal::Unsure, answer: false };
        kit.with(NodeId(0), |p, out| p.on_message(NodeId(2), unsure, out));
        let node = kit.node(NodeId(0));
        match bug {
            Some(_) => assert_eq!(node.decided(0), Some(1), "the bug decides on one proposal"),
            None => {
                assert_eq!(node.decided(0), None, "one proposal of 1 is not f + 1");
                assert_eq!(node.round(0), Some(2), "it adopted 1 and went on");
            }
        }
    }
}
