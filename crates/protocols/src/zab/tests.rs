//! ZAB's steps on the hand-driven testkit cluster (FIFO, no faults but the
//! ones a test asks for). Each test names the behaviour it pins down.

use quorum_core::{KvCommand, KvResponse, KvStore, Micros, NodeId, Protocol};

use super::*;
use crate::testkit::Kit;

type Node = Zab<KvStore>;

fn ms(n: u64) -> Micros {
    Micros::from_millis(n)
}

fn write(key: u64, value: u64) -> KvCommand {
    KvCommand::Write { key, value }
}

fn read(key: u64) -> KvCommand {
    KvCommand::Read { key }
}

fn n(i: u32) -> NodeId {
    NodeId(i)
}

/// `n` nodes started from `durable` logs with full membership (`Kit::new`
/// starts node i while only 0..=i exist, so restart them all).
fn cluster_from(durable: Vec<Vec<Record<KvStore, KvCommand>>>, config: Config) -> Kit<Node> {
    let count = durable.len() as u32;
    let mut kit = Kit::new(count, config);
    kit.network.clear();
    for i in 0..count {
        kit.crash(n(i));
        *kit.durable_mut(i as usize) = durable[i as usize].clone();
        kit.start(n(i));
    }
    kit
}

fn cluster(count: u32) -> Kit<Node> {
    let mut kit = cluster_from(vec![Vec::new(); count as usize], Config::default());
    kit.deliver_all(10_000);
    kit.advance(ms(100));
    kit
}

fn leader(kit: &Kit<Node>) -> Option<NodeId> {
    let leaders: Vec<NodeId> = (0..kit.len() as u32)
        .map(n)
        .filter(|id| kit.up(id.0 as usize).is_some_and(|p| p.established_epoch().is_some()))
        .collect();
    assert!(leaders.len() <= 1 || epochs_differ(kit, &leaders), "one established leader per epoch");
    leaders.into_iter().max_by_key(|id| kit.node(*id).established_epoch())
}

fn epochs_differ(kit: &Kit<Node>, leaders: &[NodeId]) -> bool {
    let mut epochs: Vec<u64> = leaders.iter().map(|id| kit.node(*id).established_epoch().unwrap()).collect();
    epochs.sort_unstable();
    epochs.windows(2).all(|w| w[0] != w[1])
}

fn check_cluster(kit: &Kit<Node>) {
    let live: Vec<(NodeId, &Node)> = kit.live().collect();
    if let Err(problem) = Node::cluster_invariants(&live) {
        panic!("cluster invariant broken: {problem}");
    }
}

/// Proposals of `epoch` numbered `1..=count`, positions from `first_index`.
fn proposals(
    epoch: u64,
    counters: std::ops::RangeInclusive<u64>,
    first_index: u64,
) -> Vec<Proposal<KvCommand>> {
    counters
        .enumerate()
        .map(|(i, c)| Proposal {
            zxid: Zxid::new(epoch, c),
            index: first_index + i as u64,
            command: write(epoch * 100 + c, c),
        })
        .collect()
}

fn durable(
    accepted: u64,
    current: u64,
    history: Vec<Proposal<KvCommand>>,
) -> Vec<Record<KvStore, KvCommand>> {
    let mut log = vec![Record::AcceptedEpoch(accepted), Record::CurrentEpoch(current)];
    if !history.is_empty() {
        log.push(Record::Proposals(history));
    }
    log
}

fn committed_write(kit: &mut Kit<Node>, at: NodeId, key: u64, value: u64) {
    let rid = kit.request(at, write(key, value));
    kit.deliver_all(10_000);
    assert_eq!(kit.reply(rid), Some(&KvResponse::Done), "write {key}={value} at {at}");
}

fn has_record(kit: &Kit<Node>, node: NodeId, pred: impl Fn(&Record<KvStore, KvCommand>) -> bool) -> bool {
    kit.durable(node.0 as usize).iter().any(pred)
}

#[test]
fn fresh_cluster_elects_the_highest_id_and_establishes_epoch_one() {
    let kit = cluster(3);
    assert_eq!(leader(&kit), Some(n(2)), "equal credentials: the highest id wins");
    for i in 0..3 {
        assert_eq!(kit.node(n(i)).accepted_epoch(), 1);
        assert_eq!(kit.node(n(i)).current_epoch(), 1);
        assert_eq!(kit.node(n(i)).leader(), Some(n(2)));
    }
}

/// Fast leader election prefers (currentEpoch, last zxid, id), in that order.
#[test]
fn election_picks_the_node_with_the_most_up_to_date_history() {
    let mut kit = cluster_from(
        vec![
            durable(2, 2, [proposals(1, 1..=3, 1), proposals(2, 1..=1, 4)].concat()),
            durable(2, 2, [proposals(1, 1..=3, 1), proposals(2, 1..=2, 4)].concat()),
            durable(2, 1, proposals(1, 1..=4, 1)), // a longer history, but an older epoch
        ],
        Config::default(),
    );
    kit.deliver_all(10_000);
    kit.advance(ms(1_000)); // restarted nodes sit out one follower timeout
    assert_eq!(leader(&kit), Some(n(1)), "currentEpoch first, then the last zxid");
    // Synchronisation: n2's 1:4 was never committed and is truncated.
    kit.advance(ms(200));
    for i in 0..3 {
        let node = kit.node(n(i));
        assert_eq!(node.history().last_zxid(), Zxid::new(2, 2), "{} synced", n(i));
        assert_eq!(node.applied_index(), 5, "the new leader's history is committed everywhere");
    }
    assert!(has_record(&kit, n(2), |r| *r == Record::Truncate(Zxid::new(1, 3))), "n2 got TRUNC to 1:3");
    check_cluster(&kit);
}

/// Zab phase 1: e' is above every acceptedEpoch of the discovery quorum.
#[test]
fn discovery_chooses_an_epoch_above_every_accepted_epoch() {
    let mut kit = cluster_from(
        vec![durable(7, 1, Vec::new()), durable(1, 1, Vec::new()), durable(1, 1, Vec::new())],
        Config::default(),
    );
    kit.deliver_all(10_000);
    kit.advance(ms(1_000));
    let leader = leader(&kit).expect("a leader");
    assert_eq!(kit.node(leader).established_epoch(), Some(8));
    for i in 0..3 {
        assert_eq!(kit.node(n(i)).accepted_epoch(), 8);
        assert_eq!(kit.node(n(i)).current_epoch(), 8);
    }
}

#[test]
fn broadcast_commits_only_with_a_quorum() {
    let mut kit = cluster(3);
    let (l, a, b) = (n(2), n(0), n(1));
    kit.cut = vec![(l, a), (l, b)];
    let rid = kit.request(l, write(1, 10));
    kit.deliver_all(10_000);
    kit.advance(ms(60));
    assert_eq!(kit.reply(rid), None, "the leader alone is no quorum");
    assert_eq!(kit.node(l).applied_index(), 0, "proposed, not committed");
    assert_eq!(kit.node(l).state().get(1), None);

    kit.cut = vec![(l, b)];
    kit.advance(ms(60)); // the tick retransmits to a
    assert_eq!(kit.reply(rid), Some(&KvResponse::Done), "leader + a is a quorum");
    assert_eq!(kit.node(a).state().get(1), Some(10));
    assert_eq!(kit.node(b).state().get(1), None);

    kit.cut.clear();
    kit.advance(ms(60));
    assert_eq!(kit.node(b).state().get(1), Some(10), "the heartbeat brings b up to date");
    check_cluster(&kit);
}

#[test]
fn followers_reject_with_a_hint_naming_the_leader() {
    let mut kit = cluster(3);
    for command in [write(1, 1), read(1)] {
        let rid = kit.request(n(0), command);
        match kit.reply(rid) {
            Some(KvResponse::Rejected { hint, .. }) => assert_eq!(*hint, Some(n(2))),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
}

/// Reads are linearizable: answered only after a PING round sent after the
/// read arrived has been acknowledged by a quorum.
#[test]
fn a_read_waits_for_a_quorum_round() {
    let mut kit = cluster(3);
    let l = n(2);
    committed_write(&mut kit, l, 1, 10);
    kit.cut = vec![(l, n(0)), (l, n(1))];
    let rid = kit.request(l, read(1));
    kit.deliver_all(10_000);
    assert_eq!(kit.reply(rid), None, "no round confirmed yet");
    kit.cut.clear();
    kit.advance(ms(60));
    assert_eq!(kit.reply(rid), Some(&KvResponse::Read(Some(10))));
}

#[test]
fn local_reads_are_served_by_followers_and_can_be_stale() {
    let config = Config { local_reads: true, ..Config::default() };
    let mut kit = cluster_from(vec![Vec::new(); 3], config);
    kit.deliver_all(10_000);
    kit.advance(ms(100));
    let (l, stale) = (n(2), n(0));
    kit.cut = vec![(l, stale)];
    committed_write(&mut kit, l, 1, 10);
    let rid = kit.request(stale, read(1));
    assert_eq!(kit.reply(rid), Some(&KvResponse::Read(None)), "a stale local read");
}

/// Sync by DIFF: a follower that missed committed proposals gets exactly them.
#[test]
fn restarted_follower_is_synced_by_diff() {
    let mut kit = cluster(3);
    let (l, f) = (n(2), n(0));
    kit.crash(f);
    for i in 0..5 {
        committed_write(&mut kit, l, i, i + 100);
    }
    kit.start(f);
    kit.deliver_all(10_000);
    kit.advance(ms(600));
    assert_eq!(kit.node(f).leader(), Some(l));
    assert_eq!(kit.node(f).state().get(4), Some(104));
    assert!(!has_record(&kit, f, |r| matches!(r, Record::Truncate(_) | Record::Checkpoint(_))), "DIFF only");
    assert_eq!(kit.node(f).state_digest(), kit.node(l).state_digest());
    check_cluster(&kit);
}

/// Sync by TRUNC: a proposal only the old leader logged is dropped when it
/// rejoins under a new epoch, everywhere consistently.
#[test]
fn old_leader_rejoins_and_truncates_its_uncommitted_proposal() {
    let mut kit = cluster(3);
    let old = n(2);
    committed_write(&mut kit, old, 1, 10);
    kit.cut = vec![(old, n(0)), (old, n(1))];
    let lost = kit.request(old, write(2, 20));
    kit.deliver_all(10_000);
    kit.crash(old);
    kit.cut.clear();
    kit.advance(ms(1_500));
    let new = leader(&kit).expect("the others elect a new leader");
    assert_ne!(new, old);
    assert_eq!(kit.node(new).established_epoch(), Some(2));
    committed_write(&mut kit, new, 3, 30);

    kit.start(old);
    kit.deliver_all(10_000);
    kit.advance(ms(1_000));
    assert_eq!(kit.node(old).leader(), Some(new));
    assert!(has_record(&kit, old, |r| *r == Record::Truncate(Zxid::new(1, 1))), "TRUNC to 1:1 drops 1:2");
    assert_eq!(kit.reply(lost), None, "its client never heard (indeterminate)");
    for i in 0..3 {
        assert_eq!(kit.node(n(i)).state().get(2), None, "the truncated write never applies");
        assert_eq!(kit.node(n(i)).state().get(3), Some(30));
    }
    check_cluster(&kit);
}

/// The negative control: keeping the diverged suffix breaks agreement.
#[test]
fn skip_sync_truncate_bug_breaks_agreement() {
    let config = Config { bug: Some(Bug::SkipSyncTruncate), ..Config::default() };
    let mut kit = cluster_from(vec![Vec::new(); 3], config);
    kit.deliver_all(10_000);
    kit.advance(ms(100));
    let old = n(2);
    committed_write(&mut kit, old, 1, 10);
    kit.cut = vec![(old, n(0)), (old, n(1))];
    kit.request(old, write(2, 20));
    kit.deliver_all(10_000);
    kit.crash(old);
    kit.cut.clear();
    kit.advance(ms(1_500));
    let new = leader(&kit).expect("a new leader");
    committed_write(&mut kit, new, 3, 30);
    kit.start(old);
    kit.advance(ms(1_000));
    let live: Vec<(NodeId, &Node)> = (0..3).map(|i| (n(i), kit.node(n(i)))).collect();
    assert!(Node::cluster_invariants(&live).is_err(), "the old leader's history diverged");
}

/// A proposal the old leader got a single follower to log survives: the
/// follower is the most up to date, wins the election and commits it.
#[test]
fn uncommitted_proposal_on_a_follower_is_committed_by_the_new_leader() {
    let mut kit = cluster(5);
    let old = n(4);
    committed_write(&mut kit, old, 1, 10);
    kit.cut = vec![(old, n(1)), (old, n(2)), (old, n(3))];
    let pending = kit.request(old, write(2, 20));
    kit.deliver_all(10_000);
    assert_eq!(kit.reply(pending), None, "2 of 5 hold it: not committed");
    assert_eq!(kit.node(n(0)).history().last_zxid(), Zxid::new(1, 2));
    kit.crash(old);
    kit.cut.clear();
    kit.advance(ms(1_500));
    assert_eq!(leader(&kit), Some(n(0)), "the only node holding 1:2 is the most up to date");
    for i in 0..4 {
        assert_eq!(kit.node(n(i)).state().get(2), Some(20), "committed by the new leader's NEWLEADER");
    }
    check_cluster(&kit);
}

/// Sync by SNAP: the leader compacted past the follower's history.
#[test]
fn follower_behind_the_leaders_snapshot_is_synced_by_snap() {
    let config = Config { checkpoint_records_max: 8, ..Config::default() };
    let mut kit = cluster_from(vec![Vec::new(); 3], config);
    kit.deliver_all(10_000);
    kit.advance(ms(100));
    let (l, f) = (n(2), n(0));
    kit.crash(f);
    for i in 0..30 {
        committed_write(&mut kit, l, i % 4, i);
    }
    assert!(kit.node(l).history().base_index() > 2, "the leader compacted");
    kit.start(f);
    kit.advance(ms(1_000));
    assert_eq!(kit.node(f).leader(), Some(l));
    assert!(
        matches!(kit.durable(0).first(), Some(Record::Checkpoint(c)) if c.snap.index > 2),
        "SNAP installed as a checkpoint"
    );
    assert_eq!(kit.node(f).state_digest(), kit.node(l).state_digest());
    check_cluster(&kit);
}

#[test]
fn isolated_leader_abdicates_and_rejoins_as_follower() {
    let mut kit = cluster(3);
    let old = n(2);
    kit.cut = vec![(old, n(0)), (old, n(1)), (n(0), old), (n(1), old)];
    kit.advance(ms(1_500));
    assert!(kit.node(old).established_epoch().is_none(), "lost its lease: abdicated");
    let new = leader(&kit).expect("the majority elects a new leader");
    assert_ne!(new, old);
    committed_write(&mut kit, new, 5, 50);
    kit.cut.clear();
    kit.advance(ms(1_500));
    assert_eq!(kit.node(old).leader(), Some(new));
    assert_eq!(kit.node(old).state().get(5), Some(50));
    check_cluster(&kit);
}

#[test]
fn durable_log_stays_bounded_and_recovers_after_a_full_restart() {
    let mut kit = cluster(3);
    for i in 0..300 {
        committed_write(&mut kit, n(2), i % 7, i);
    }
    kit.advance(ms(100));
    let max = Config::default().checkpoint_records_max;
    for i in 0..3 {
        assert!(kit.durable(i).len() <= max, "n{i}'s log is bounded");
    }
    for i in 0..3 {
        kit.crash(n(i));
    }
    for i in 0..3 {
        kit.start(n(i));
    }
    kit.advance(ms(1_500));
    let l = leader(&kit).expect("re-elected");
    let rid = kit.request(l, read(299 % 7));
    kit.deliver_all(10_000);
    assert_eq!(kit.reply(rid), Some(&KvResponse::Read(Some(299))));
    check_cluster(&kit);
}

#[test]
fn single_node_cluster_elects_itself_and_commits_alone() {
    let mut kit = cluster(1);
    assert_eq!(leader(&kit), Some(n(0)));
    committed_write(&mut kit, n(0), 1, 1);
}

#[test]
fn unbatched_writes_pipeline_one_proposal_each() {
    let config = Config { batching: false, ..Config::default() };
    let mut kit = cluster_from(vec![Vec::new(); 3], config);
    kit.deliver_all(10_000);
    kit.advance(ms(100));
    let rids: Vec<_> = (0..4).map(|i| kit.request(n(2), write(i, i))).collect();
    kit.deliver_all(10_000);
    for rid in rids {
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
    }
    let proposal_records =
        kit.durable(2).iter().filter(|r| matches!(r, Record::Proposals(p) if p.len() == 1)).count();
    assert_eq!(proposal_records, 4, "one PROPOSAL (and one record) per write");
}

/// The most proposals any PROPOSAL message carried while the leader proposed
/// 40 writes at once (one follower cut off) and then brought that follower
/// up to date by retransmission, under `batch_bytes_max`.
fn most_proposals_per_message(batch_bytes_max: usize) -> usize {
    let config = Config { batch_bytes_max, ..Config::default() };
    let mut kit = cluster_from(vec![Vec::new(); 3], config);
    kit.deliver_all(10_000);
    kit.advance(ms(100));
    let (l, behind) = (n(2), n(1));
    assert_eq!(leader(&kit), Some(l));
    let most = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = std::rc::Rc::clone(&most);
    kit.on_deliver = Some(Box::new(move |_, _, msg: &Msg<KvStore, KvCommand>| {
        if let Msg::Propose { proposals, .. } = msg {
            seen.set(seen.get().max(proposals.len()));
        }
    }));
    kit.cut = vec![(l, behind)];
    for key in 0..40 {
        kit.request(l, write(key, key + 1));
    }
    kit.deliver_all(10_000);
    kit.cut.clear();
    for _ in 0..40 {
        kit.advance(ms(60));
        if kit.node(behind).state().get(39) == Some(40) {
            break;
        }
    }
    assert_eq!(kit.node(behind).state().get(39), Some(40), "the follower caught up");
    check_cluster(&kit);
    kit.on_deliver = None;
    most.get()
}

/// KvStore's commands are tiny (sized 0), so each proposal counts its
/// zxid and index (32 bytes): a 100-byte limit allows 3 per message, in the
/// leader's batches and in retransmissions alike. The negative control:
/// without the limit, the count limit alone batches many more.
#[test]
fn proposal_messages_stay_within_the_byte_limit() {
    assert_eq!(most_proposals_per_message(100), 3);
    assert!(most_proposals_per_message(usize::MAX) > 3);
    assert!(Config { batch_bytes_max: 0, ..Config::default() }.validate().is_err());
}
