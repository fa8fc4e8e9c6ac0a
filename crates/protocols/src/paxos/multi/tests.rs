//! Multi-Paxos tests on the hand-driven FIFO cluster of `testkit`, named as
//! prose: a stable leader's single round trip, confirmed reads, an isolated
//! leader (with and without CheckQuorum), failover over half-done slots
//! (Paxos Made Moderately Complex §3) and the negative control that skips
//! it, batching under a full pipeline, catch-up and restarts. The simulator
//! (`quorum explore --protocol multi-paxos`) covers random fault schedules.

use super::*;
use crate::testkit::Kit;
use quorum_core::{KvCommand, KvResponse, KvStore};

type P = MultiPaxos<KvStore>;

fn write(key: u64, value: u64) -> KvCommand {
    KvCommand::Write { key, value }
}

fn read(key: u64) -> KvCommand {
    KvCommand::Read { key }
}

/// Make `node` campaign now (every other election timer pushed away).
fn elect(kit: &mut Kit<P>, node: NodeId) {
    for i in 0..kit.len() {
        kit.cancel_timer(i, &Timer::Election);
    }
    kit.arm_timer(node.0 as usize, Timer::Election, kit.now);
    kit.advance(Micros(1));
    assert!(kit.node(node).is_leader(), "{} won: {}", node, kit.node(node).describe());
}

fn cluster(n: u32, config: Config) -> Kit<P> {
    let mut kit = Kit::new(n, config);
    elect(&mut kit, NodeId(0));
    kit
}

fn settle(kit: &mut Kit<P>) {
    kit.advance(Micros::from_millis(200));
}

#[test]
fn a_stable_leader_replicates_and_every_replica_applies() {
    let mut kit = cluster(3, Config::default());
    let w = kit.request(NodeId(0), write(1, 10));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    settle(&mut kit);
    for node in 0..3 {
        assert_eq!(kit.node(NodeId(node)).applied(), 1);
        assert_eq!(kit.node(NodeId(node)).state().get(1), Some(10));
    }
    // Phase 1 ran once: the next write is one Accept round trip.
    let promises = kit.durable(1).iter().filter(|r| matches!(r, Record::Promised { .. })).count();
    let w = kit.request(NodeId(0), write(2, 20));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let after = kit.durable(1).iter().filter(|r| matches!(r, Record::Promised { .. })).count();
    assert_eq!(promises, after, "no new promise per command");
}

#[test]
fn followers_redirect_to_the_leader_and_reads_are_confirmed() {
    let mut kit = cluster(3, Config::default());
    let w = kit.request(NodeId(0), write(1, 10));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let r = kit.request(NodeId(2), read(1));
    assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { hint: Some(NodeId(0)), .. })));
    let r = kit.request(NodeId(0), read(1));
    assert_eq!(kit.reply(r), None, "a read waits for a confirmation round");
    kit.deliver_all(100);
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
}

/// An isolated leader cannot confirm its leadership, so it serves no read.
#[test]
fn an_isolated_leader_serves_no_read() {
    // CheckQuorum off: this is about the read fence alone (with it, the
    // leader steps down and rejects the read).
    let mut kit = cluster(3, Config { check_quorum: false, ..Config::default() });
    for peer in [1, 2] {
        kit.cut.push((NodeId(0), NodeId(peer)));
        kit.cut.push((NodeId(peer), NodeId(0)));
    }
    let r = kit.request(NodeId(0), read(1));
    kit.advance(Micros::from_millis(2_000));
    assert!(kit.node(NodeId(1)).is_leader() || kit.node(NodeId(2)).is_leader());
    let w = {
        let leader = if kit.node(NodeId(1)).is_leader() { NodeId(1) } else { NodeId(2) };
        kit.request(leader, write(1, 11))
    };
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    assert_eq!(kit.reply(r), None, "never answered while cut off");
    kit.cut.clear();
    kit.advance(Micros::from_millis(1_000));
    assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { .. })), "deposed: rejected");
    assert!(!kit.node(NodeId(0)).is_leader());
}

/// CheckQuorum: a leader cut off from every peer hears no majority
/// confirm a round and steps down after an election timeout; without the
/// check it believes itself leader for as long as the partition lasts.
#[test]
fn an_isolated_leader_steps_down_after_an_election_timeout_with_check_quorum() {
    for (check_quorum, still_leads) in [(true, false), (false, true)] {
        let mut kit = cluster(3, Config { check_quorum, ..Config::default() });
        for peer in [1, 2] {
            kit.cut.push((NodeId(0), NodeId(peer)));
            kit.cut.push((NodeId(peer), NodeId(0)));
        }
        kit.advance(Micros::from_millis(500));
        assert_eq!(kit.node(NodeId(0)).is_leader(), still_leads, "check_quorum {check_quorum}");
    }
    // A leader that hears its majority keeps leading.
    let mut kit = cluster(3, Config::default());
    kit.advance(Micros::from_millis(2_000));
    assert!(kit.node(NodeId(0)).is_leader());
}

/// Paxos Made Moderately Complex §3: a new leader adopts, for each slot,
/// the highest-ballot value its promises report and fills gaps with
/// no-ops. n0 proposed slots 1, 2, 3; only n1 accepted 1 and 3.
#[test]
fn failover_finishes_half_done_slots_and_fills_gaps_with_noops() {
    let mut kit = cluster(5, Config::default());
    let (n0, n1) = (NodeId(0), NodeId(1));
    for value in 1..=3 {
        kit.request(n0, write(value, value));
    }
    // Accepts for slot 1 (and, pipelined, 2 and 3) are in flight.
    let mut kept = std::collections::VecDeque::new();
    for (from, to, msg) in kit.network.drain(..) {
        if let Msg::Accept { entries, .. } = &msg {
            let slot = entries[0].0;
            if to == n1 && slot != 2 {
                kept.push_back((from, to, msg));
            }
        }
    }
    kit.network = kept;
    kit.deliver_all(2); // n1 accepts slots 1 and 3
    kit.network.clear(); // its answers are lost
    kit.crash(n0);
    elect(&mut kit, n1);
    kit.deliver_all(1_000);
    settle(&mut kit);
    let n1_node = kit.node(n1);
    assert_eq!(n1_node.chosen(1), Some(&Entry::Commands(vec![write(1, 1)])));
    assert_eq!(n1_node.chosen(2), Some(&Entry::Noop), "the gap is filled with a no-op");
    assert_eq!(n1_node.chosen(3), Some(&Entry::Commands(vec![write(3, 3)])));
    for node in 1..5 {
        let state = kit.node(NodeId(node)).state();
        assert_eq!((state.get(1), state.get(2), state.get(3)), (Some(1), None, Some(3)));
    }
    // The old leader restarts, follows, and converges.
    kit.start(n0);
    kit.advance(Micros::from_millis(500));
    assert_eq!(kit.node(n0).state_digest(), kit.node(n1).state_digest());
}

/// The negative control: a new leader that skips phase-1 recovery
/// overwrites a slot that was already chosen.
#[test]
fn skip_phase1_recovery_bug_overwrites_a_chosen_slot() {
    let config = Config { bug: Some(Bug::SkipPhase1Recovery), ..Config::default() };
    let mut kit = cluster(3, config);
    let (n0, n1) = (NodeId(0), NodeId(1));
    kit.request(n0, write(1, 1));
    kit.deliver_all(2); // n1 and n2 accept: chosen
    kit.deliver_all(1); // n0 learns it from n1's answer and applies
    assert_eq!(kit.node(n0).applied(), 1);
    kit.network.clear();
    kit.clear_timers(0); // n0 goes quiet (no heartbeat tells them)
    elect(&mut kit, n1);
    let w = kit.request(n1, write(1, 2));
    kit.deliver_all(1_000);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let nodes: Vec<(NodeId, &P)> = (0..3).map(|i| (NodeId(i), kit.node(NodeId(i)))).collect();
    assert!(P::cluster_invariants(&nodes).is_err(), "slot 1 chosen twice");
}

#[test]
fn requests_wait_while_the_pipeline_is_full_then_share_one_slot() {
    let config = Config { pipeline_max: 1, ..Config::default() };
    let mut kit = cluster(3, config);
    let requests: Vec<RequestId> = (0..10).map(|v| kit.request(NodeId(0), write(v, v))).collect();
    kit.deliver_all(1_000);
    assert!(requests.iter().all(|r| kit.reply(*r) == Some(&KvResponse::Done)));
    let leader = kit.node(NodeId(0));
    assert_eq!(leader.chosen(1), Some(&Entry::Commands(vec![write(0, 0)])));
    let Some(Entry::Commands(batch)) = leader.chosen(2) else { panic!("a batch") };
    assert_eq!(batch.len(), 9, "the queue shares the next slot");
    assert_eq!(leader.applied(), 2);
}

fn lagging_follower_catches_up(checkpoint_every_slots: u64) {
    let config = Config { checkpoint_every_slots, ..Config::default() };
    let mut kit = cluster(3, config);
    let n2 = NodeId(2);
    kit.cut.push((NodeId(0), n2));
    for value in 0..30 {
        let w = kit.request(NodeId(0), write(value % 5, value));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }
    assert_eq!(kit.node(n2).applied(), 0);
    kit.cut.clear();
    kit.advance(Micros::from_millis(300));
    assert_eq!(kit.node(n2).applied(), kit.node(NodeId(0)).applied());
    assert_eq!(kit.node(n2).state_digest(), kit.node(NodeId(0)).state_digest());
}

#[test]
fn lagging_follower_catches_up_from_chosen_entries() {
    lagging_follower_catches_up(1_000);
}

#[test]
fn lagging_follower_catches_up_from_a_snapshot() {
    lagging_follower_catches_up(4);
}

#[test]
fn restart_recovers_from_checkpoint_and_log() {
    let config = Config { checkpoint_every_slots: 4, ..Config::default() };
    let mut kit = cluster(3, config);
    for value in 0..10 {
        let w = kit.request(NodeId(0), write(value, value));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }
    settle(&mut kit);
    assert!(kit.durable(1).len() < 10, "checkpoints bound the log");
    let digest = kit.node(NodeId(1)).state_digest();
    kit.crash(NodeId(1));
    kit.start(NodeId(1));
    settle(&mut kit);
    assert_eq!(kit.node(NodeId(1)).state_digest(), digest);
    // The leader restarts: someone else leads, at a higher ballot.
    let ballot = kit.node(NodeId(0)).promised();
    kit.crash(NodeId(0));
    kit.start(NodeId(0));
    kit.advance(Micros::from_millis(2_000));
    let leader = (0..3).map(NodeId).find(|n| kit.node(*n).is_leader()).expect("a leader");
    assert!(kit.node(leader).promised() > ballot);
    let w = kit.request(leader, write(99, 1));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
}
