//! Scenario tests, named as prose, each citing the paper (§N) or the
//! dissertation (diss. §N). They run on the hand-driven FIFO cluster of
//! `testkit`; the simulator (`quorum explore --protocol raft`) covers the
//! random fault schedules.

use std::cell::RefCell;
use std::rc::Rc;

use quorum_core::{KvCommand, KvResponse, KvStore, Micros, NodeId, Protocol};

use super::*;
use crate::testkit::Kit;

type R = Raft<KvStore>;

const N0: NodeId = NodeId(0);
const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);
const N4: NodeId = NodeId(4);

fn ms(n: u64) -> Micros {
    Micros::from_millis(n)
}

fn write(key: u64, value: u64) -> KvCommand {
    KvCommand::Write { key, value }
}

fn read(key: u64) -> KvCommand {
    KvCommand::Read { key }
}

/// An `n`-node cluster, freshly started, nothing in flight. `Kit::new`
/// starts node i while only nodes 0..=i exist; restarting each from an empty
/// log gives every node the full membership.
fn cluster(n: u32, config: Config) -> Kit<R> {
    cluster_of(n, config)
}

fn cluster_of<S: StateMachine>(n: u32, config: Config) -> Kit<Raft<S>> {
    let mut kit = Kit::new(n, config);
    kit.network.clear();
    for i in 0..n {
        kit.durable_mut(i as usize).clear();
        kit.crash(NodeId(i));
        kit.start(NodeId(i));
    }
    kit
}

fn up(kit: &Kit<R>) -> impl Iterator<Item = (NodeId, &R)> {
    kit.live()
}

/// The leader of the highest term among live nodes, if any.
fn leader(kit: &Kit<R>) -> Option<NodeId> {
    let top = up(kit).map(|(_, n)| n.term()).max()?;
    up(kit).find(|(_, n)| n.role() == Role::Leader && n.term() == top).map(|(id, _)| id)
}

/// Make `node`'s election timer fire now (messages are delivered after).
fn campaign<S: StateMachine>(kit: &mut Kit<Raft<S>>, node: NodeId) {
    kit.arm_timer(node.0 as usize, Timer::Election, kit.now);
    kit.advance(Micros(0));
}

/// `node` campaigns until it leads (at most `tries` elections).
fn elect<S: StateMachine>(kit: &mut Kit<Raft<S>>, node: NodeId, tries: usize) -> bool {
    for _ in 0..tries {
        campaign(kit, node);
        if kit.node(node).role() == Role::Leader {
            return true;
        }
    }
    false
}

fn isolate(kit: &mut Kit<R>, node: NodeId) {
    for other in 0..kit.len() as u32 {
        if other != node.0 {
            kit.cut.push((node, NodeId(other)));
            kit.cut.push((NodeId(other), node));
        }
    }
}

fn no_bug_no_prevote() -> Config {
    Config { pre_vote: false, check_quorum: false, ..Config::default() }
}

/// §5.2: a follower that hears no leader campaigns and a majority elects it;
/// the others learn of it from its first AppendEntries.
#[test]
fn a_leader_is_elected_and_its_writes_reach_every_follower() {
    let mut kit = cluster(3, Config::default());
    kit.advance(ms(400));
    let l = leader(&kit).expect("a leader after one election timeout");
    let term = kit.node(l).term();
    for (id, n) in up(&kit) {
        assert_eq!(n.term(), term, "{id} is in the leader's term");
        assert_eq!(n.leader(), Some(l));
    }
    let w = kit.request(l, write(1, 10));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    kit.advance(ms(50)); // a heartbeat carries the commit index
    for (id, n) in up(&kit) {
        assert_eq!(n.state().get(1), Some(10), "{id} applied the write");
    }
}

/// §5.2, figure 2: term and vote are forced to the log before the vote
/// leaves, so a voter that restarts cannot vote twice in one term.
#[test]
fn a_vote_survives_a_crash_of_the_voter() {
    let mut kit = cluster(3, no_bug_no_prevote());
    assert!(elect(&mut kit, N0, 1));
    let term = kit.node(N0).term();
    let voted = kit
        .durable(1)
        .iter()
        .any(|r| matches!(r, Record::HardState { term: t, vote: Some(N0) } if *t == term));
    assert!(voted, "n1 forced its vote for n0");
    kit.crash(N1);
    kit.start(N1);
    assert_eq!(kit.node(N1).term(), term);
    assert_eq!(kit.node(N1).vote, Some(N0));

    // The negative control: with the vote never forced, it is forgotten.
    let mut kit = cluster(3, Config { bug: Some(Bug::NoPersistVote), ..no_bug_no_prevote() });
    assert!(elect(&mut kit, N0, 1));
    kit.crash(N1);
    kit.start(N1);
    assert_eq!(kit.node(N1).vote, None, "the bug forgets the vote across a restart");
}

/// §5.2: split votes happen, and randomised timeouts resolve them.
#[test]
fn a_split_vote_is_resolved_by_a_later_election() {
    let mut kit = cluster(4, no_bug_no_prevote());
    // {n0, n2} and {n1, n3} cannot talk: n0 and n1 each get two of four votes.
    for (a, b) in [(N0, N1), (N0, N3), (N2, N1), (N2, N3)] {
        kit.cut.push((a, b));
        kit.cut.push((b, a));
    }
    campaign(&mut kit, N0);
    campaign(&mut kit, N1);
    assert_eq!(kit.node(N0).role(), Role::Candidate);
    assert_eq!(kit.node(N1).role(), Role::Candidate);
    assert_eq!(kit.node(N0).term(), kit.node(N1).term());
    kit.cut.clear();
    kit.advance(ms(1000));
    let l = leader(&kit).expect("the split resolves");
    assert!(kit.node(l).term() > 1, "resolved in a later term");
    assert_eq!(up(&kit).filter(|(_, n)| n.role() == Role::Leader).count(), 1);
}

/// diss. §9.6: a partitioned node's pre-votes fail, so its term does not
/// grow and the healthy leader is not deposed when it returns. Without
/// pre-vote the same partition does depose the leader.
#[test]
fn pre_vote_keeps_a_partitioned_follower_from_deposing_the_leader() {
    let run = |pre_vote: bool| {
        let mut kit = cluster(3, Config { pre_vote, ..Config::default() });
        assert!(elect(&mut kit, N0, 1));
        let term = kit.node(N0).term();
        isolate(&mut kit, N2);
        kit.advance(ms(2000));
        let n2_term = kit.node(N2).term();
        kit.cut.clear();
        kit.advance(ms(500));
        (term, n2_term, kit.node(N0).role(), kit.node(N0).term())
    };
    let (term, n2_term, role, after) = run(true);
    assert_eq!(n2_term, term, "pre-vote: the isolated node never bumped its term");
    assert_eq!((role, after), (Role::Leader, term), "the leader survives the reunion");

    let (term, n2_term, _, after) = run(false);
    assert!(n2_term > term + 2, "without pre-vote the isolated node inflates its term");
    assert!(after > term, "and deposes the leader when it returns");
}

/// diss. §6.2: a leader cut off from a majority steps down after an
/// election timeout; the majority elects a new leader.
#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    isolate(&mut kit, N0);
    kit.advance(ms(200));
    assert_eq!(kit.node(N0).role(), Role::Follower, "no majority heard: stepped down");
    kit.advance(ms(600));
    let l = leader(&kit).expect("the majority elects a new leader");
    assert_ne!(l, N0);
}

/// diss. §6.4: a leader partitioned away cannot confirm its leadership, so
/// it never answers a read from its possibly stale state; it refuses once
/// check-quorum makes it step down.
#[test]
fn read_index_keeps_a_partitioned_leader_from_answering_reads() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    let w = kit.request(N0, write(1, 10));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let r = kit.request(N0, read(1));
    kit.deliver_all(100);
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))), "a connected leader serves reads");

    isolate(&mut kit, N0);
    let stale = kit.request(N0, read(1));
    kit.deliver_all(100);
    assert_eq!(kit.reply(stale), None, "no heartbeat round confirmed: no answer");
    kit.advance(ms(300));
    assert!(matches!(kit.reply(stale), Some(KvResponse::Rejected { .. })), "{:?}", kit.reply(stale));

    // The negative control answers at once from local state.
    let mut kit = cluster(3, Config { bug: Some(Bug::StaleRead), ..Config::default() });
    assert!(elect(&mut kit, N0, 1));
    isolate(&mut kit, N0);
    let r = kit.request(N0, read(1));
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
}

/// Reads that arrive while a heartbeat round is in flight share the next
/// round: ten reads cost two rounds, not ten, and each is confirmed by a
/// round sent after it arrived.
#[test]
fn reads_arriving_during_a_round_share_the_next_round() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    let w = kit.request(N0, write(1, 10));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let heartbeats =
        |kit: &Kit<R>| kit.network.iter().filter(|(_, _, m)| matches!(m, Msg::Heartbeat { .. })).count();
    let first = kit.request(N0, read(1));
    assert_eq!(heartbeats(&kit), 2, "the first read starts a round at once");
    let rest: Vec<_> = (0..9).map(|_| kit.request(N0, read(1))).collect();
    assert_eq!(heartbeats(&kit), 2, "reads during a round wait for the next");
    // Deliver the first round and its acknowledgements: the first read is
    // answered, the next round goes out for the other nine.
    kit.deliver_all(4);
    assert_eq!(kit.reply(first), Some(&KvResponse::Read(Some(10))));
    assert!(rest.iter().all(|r| kit.reply(*r).is_none()), "the first round predates them");
    assert_eq!(heartbeats(&kit), 2, "one round for the nine waiting reads");
    kit.deliver_all(100);
    assert!(rest.iter().all(|r| kit.reply(*r) == Some(&KvResponse::Read(Some(10)))));
}

/// diss. §6.4.1: with leases a leader answers reads without a round trip
/// while its lease lasts.
#[test]
fn lease_reads_answer_without_a_heartbeat_round() {
    let mut kit = cluster(3, Config { lease_reads: true, ..Config::default() });
    assert!(elect(&mut kit, N0, 1));
    let w = kit.request(N0, write(1, 10));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let r = kit.request(N0, read(1));
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))), "answered within the same step");
    assert!(kit.network.is_empty(), "no heartbeat round for a leased read");
}

/// Followers refuse client requests and name the leader.
#[test]
fn followers_reject_requests_with_a_hint_to_the_leader() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    for cmd in [write(1, 1), read(1)] {
        let rid = kit.request(N1, cmd);
        match kit.reply(rid) {
            Some(KvResponse::Rejected { hint, .. }) => assert_eq!(*hint, Some(N0)),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
}

/// §5.3: a follower holding entries of a deposed leader's term is repaired:
/// the new leader backs up past the conflicting term and overwrites them.
#[test]
fn a_conflicting_log_is_repaired_by_backtracking() {
    let mut kit = cluster(3, no_bug_no_prevote());
    assert!(elect(&mut kit, N2, 1));
    let w = kit.request(N2, write(9, 9));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    // n2 appends entries nobody else receives, then is cut off.
    isolate(&mut kit, N2);
    for i in 0..5 {
        kit.request(N2, write(1, 100 + i));
    }
    assert!(elect(&mut kit, N0, 3));
    for i in 0..10 {
        kit.request(N0, write(2, i));
        kit.deliver_all(100);
    }
    let n2_last = kit.node(N2).log().last_index();
    assert_ne!(kit.node(N2).log().term_at(n2_last), kit.node(N0).log().term_at(n2_last));
    kit.cut.clear();
    kit.advance(ms(100));
    assert_eq!(kit.node(N2).role(), Role::Follower);
    assert_eq!(kit.node(N2).log(), kit.node(N0).log(), "the follower's log now equals the leader's");
    assert_eq!(kit.node(N2).state(), kit.node(N0).state());
    assert_eq!(kit.node(N2).state().get(1), None, "the uncommitted writes are gone");
}

/// What became of the figure 8 run.
struct Figure8 {
    /// An entry some node applied was later replaced in the leader's log.
    applied_entry_replaced: bool,
}

/// §5.4.2, figure 8, on five servers (S1..S5 = n0..n4): S1 leads and
/// replicates an entry to S2 only; S5 wins the next term with S3, S4 and
/// appends an entry at the same index; S1 comes back, wins a later term and
/// replicates its old entry to a majority. Counting replicas would commit it,
/// yet S5 can still win and overwrite it.
fn figure_8(config: Config) -> Figure8 {
    let mut kit = cluster(5, config);
    assert!(elect(&mut kit, N0, 1), "S1 leads");
    let w1 = kit.request(N0, write(1, 10));
    kit.deliver_all(1000);
    assert_eq!(kit.reply(w1), Some(&KvResponse::Done));
    // (a) S1 replicates the entry at `index` to S2 only.
    for other in [N2, N3, N4] {
        kit.cut.push((N0, other));
    }
    kit.request(N0, write(1, 20));
    kit.deliver_all(1000);
    let index = kit.node(N0).log().last_index();
    // (b) S1 crashes; S5 wins with S3, S4 and appends at `index` alone.
    kit.crash(N0);
    kit.cut.clear();
    assert!(elect(&mut kit, N4, 3), "S5 leads");
    isolate(&mut kit, N4);
    kit.request(N4, write(1, 30));
    // (c) S5 crashes; S1 returns, wins with S2, S3, S4's votes and
    // replicates its old entry.
    kit.crash(N4);
    kit.cut.clear();
    kit.start(N0);
    let s1_leads = elect(&mut kit, N0, 4);
    kit.advance(ms(40));
    let applied_by_s1 =
        kit.node(N0).log().entry(index).cloned().filter(|_| kit.node(N0).applied_index() >= index);
    // (d) S1 crashes; S5 returns and tries to win again.
    kit.crash(N0);
    kit.start(N4);
    let s5_leads = elect(&mut kit, N4, 4);
    kit.advance(ms(100));
    let l = leader(&kit);
    let replaced = match (applied_by_s1, l) {
        (Some(entry), Some(l)) => kit.node(l).log().entry(index) != Some(&entry),
        _ => false,
    };
    let _ = (s1_leads, s5_leads);
    Figure8 { applied_entry_replaced: replaced }
}

#[test]
fn figure_8_counting_replicas_of_an_old_term_loses_a_committed_entry() {
    let bad = figure_8(Config { bug: Some(Bug::CommitOldTerm), ..no_bug_no_prevote() });
    assert!(bad.applied_entry_replaced, "the bug commits an entry that a later leader overwrites");
    let good = figure_8(no_bug_no_prevote());
    assert!(!good.applied_entry_replaced, "the current-term rule never commits it");
}

/// §7: a follower that missed compacted entries receives a snapshot.
#[test]
fn a_lagging_follower_catches_up_from_a_snapshot() {
    let mut kit = cluster(3, Config { snapshot_entries: 5, ..Config::default() });
    assert!(elect(&mut kit, N0, 1));
    kit.crash(N2);
    for i in 0..20 {
        let w = kit.request(N0, write(i % 3, i));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }
    assert!(kit.node(N0).log().snapshot_index() >= 15, "the leader compacted its log");
    assert_eq!(kit.durable(0).len(), 1 + kit.durable(0).len() - 1);
    assert!(matches!(kit.durable(0)[0], Record::Checkpoint(_)), "the durable log starts at a checkpoint");
    kit.start(N2);
    kit.advance(ms(300)); // the leader gives up on appends lost while n2 was down
    assert!(kit.node(N2).log().snapshot_index() >= 15, "n2 installed the snapshot");
    assert_eq!(kit.node(N2).state(), kit.node(N0).state());
    assert_eq!(kit.node(N2).commit_index(), kit.node(N0).commit_index());
    // And it survives a restart from its checkpoint.
    kit.crash(N2);
    kit.start(N2);
    kit.advance(ms(100));
    assert_eq!(kit.node(N2).state(), kit.node(N0).state());
}

/// §5.2, §7: a node restarted from its durable log keeps its term, vote and
/// log, and re-learns the commit index from the leader.
#[test]
fn a_restarted_follower_recovers_its_log_and_reapplies() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    for i in 0..7 {
        kit.request(N0, write(1, i));
        kit.deliver_all(100);
    }
    kit.advance(ms(40));
    let before = kit.node(N1).log().clone();
    kit.crash(N1);
    kit.start(N1);
    assert_eq!(kit.node(N1).log(), &before);
    assert_eq!(kit.node(N1).state().get(1), None, "volatile: nothing applied yet");
    kit.advance(ms(40));
    assert_eq!(kit.node(N1).state().get(1), Some(6));
}

/// diss. §3.10: the leader brings the target up to date and sends
/// TimeoutNow; the target wins the next term at once.
#[test]
fn leadership_transfers_to_a_caught_up_follower() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    let term = kit.node(N0).term();
    kit.cut.push((N0, N2));
    let w = kit.request(N0, write(1, 1));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    kit.cut.clear();
    let mut second = Ok(());
    kit.with(N0, |node, out| {
        node.transfer_leadership(N2, out).expect("a voter");
        second = node.transfer_leadership(N1, out);
    });
    assert!(second.is_err(), "one transfer at a time");
    let r = kit.request(N0, write(2, 2));
    assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { .. })), "no proposals during a transfer");
    kit.deliver_all(100);
    assert_eq!(kit.node(N2).role(), Role::Leader, "the target won");
    assert_eq!(kit.node(N2).term(), term + 1);
    assert_eq!(kit.node(N0).role(), Role::Follower);
    kit.advance(ms(50));
    assert_eq!(kit.node(N2).state().get(1), Some(1));
}

/// Run an operator command at `node`, then deliver what it caused.
fn admin(kit: &mut Kit<R>, node: NodeId, command: &str) -> Result<(), String> {
    let result = kit.admin(node, command);
    kit.deliver_all(1000);
    result
}

/// diss. §4.1–4.2: one server at a time; a learner catches up before it is
/// promoted; a removed leader steps down once its removal commits.
#[test]
fn membership_changes_one_server_at_a_time() {
    let mut kit = cluster(4, Config::default());
    assert!(elect(&mut kit, N0, 1));
    kit.advance(ms(40));
    admin(&mut kit, N0, "remove 3").expect("remove n3");
    assert_eq!(kit.node(N0).membership().voters.len(), 3);
    kit.advance(ms(40));
    assert_eq!(kit.node(N1).membership().voters.len(), 3, "followers adopt it from the log");
    kit.crash(N3);
    for i in 0..10 {
        kit.request(N0, write(1, i));
        kit.deliver_all(100);
    }
    kit.durable_mut(3).clear();
    kit.start(N3); // a fresh, empty server
    assert!(admin(&mut kit, N0, "promote 3").is_err(), "not a learner");
    kit.cut.extend([(N0, N1), (N0, N2)]);
    admin(&mut kit, N0, "add-learner 3").expect("add n3 as learner");
    let second = admin(&mut kit, N0, "remove 1");
    assert!(second.is_err(), "one change at a time: {second:?} {}", kit.node(N0).describe());
    kit.cut.clear();
    kit.advance(ms(100));
    assert_eq!(kit.node(N3).state().get(1), Some(9), "the learner caught up");
    assert_ne!(kit.node(N3).role(), Role::Candidate);
    admin(&mut kit, N0, "promote 3").expect("promote n3");
    kit.advance(ms(40));
    assert!(kit.node(N3).membership().voters.contains(&N3));
    assert_eq!(kit.node(N0).membership().voters.len(), 4);

    // The leader removes itself: it steps down once that commits, and the
    // rest elect a leader among themselves.
    admin(&mut kit, N0, "remove 0").expect("remove the leader");
    kit.advance(ms(40));
    assert_eq!(kit.node(N0).role(), Role::Follower);
    kit.advance(ms(800));
    let l = leader(&kit).expect("a new leader");
    assert_ne!(l, N0);
    let w = kit.request(l, write(5, 5));
    kit.deliver_all(100);
    assert_eq!(kit.reply(w), Some(&KvResponse::Done), "three voters commit without n0");
}

/// diss. §6.3: each request is applied at most once; a retry gets the
/// original output, a stale request none.
#[test]
fn sessions_apply_each_request_once() {
    let mut sessions = Sessions::default();
    let mut kv = KvStore::new();
    let cas = KvCommand::Cas { key: 1, expected: 0, new: 5 };
    let id = quorum_core::RequestId::new(3, 10);
    kv.set(1, 0);
    assert_eq!(sessions.apply(&mut kv, id, &cas, 1, 8), Some(KvResponse::Done));
    assert_eq!(sessions.apply(&mut kv, id, &cas, 2, 8), Some(KvResponse::Done), "the original output");
    assert_eq!(kv.get(1), Some(5), "applied once: a second cas would mismatch");
    assert_eq!(sessions.duplicate(id), Some(KvResponse::Done));
    assert_eq!(sessions.apply(&mut kv, quorum_core::RequestId::new(3, 9), &cas, 3, 8), None, "stale");
    for client in 0..20 {
        sessions.apply(&mut kv, quorum_core::RequestId::new(100 + client, 1), &read(1), 10 + client, 8);
    }
    assert_eq!(sessions.len(), 8, "bounded");
}

/// A proposal whose leader steps down before it commits gets an
/// indeterminate answer, never silence or a false rejection.
#[test]
fn a_deposed_leader_answers_pending_proposals_indeterminate() {
    let mut kit = cluster(3, Config::default());
    assert!(elect(&mut kit, N0, 1));
    isolate(&mut kit, N0);
    let w = kit.request(N0, write(1, 1));
    kit.advance(ms(300));
    assert!(matches!(kit.reply(w), Some(KvResponse::Indeterminate { .. })), "{:?}", kit.reply(w));
}

/// §5.3, §5.4: cross-node invariants hold along a busy run.
#[test]
fn cluster_invariants_hold_through_crashes_and_partitions() {
    let mut kit = cluster(5, Config { snapshot_entries: 8, ..Config::default() });
    for round in 0..30u64 {
        if let Some(l) = leader(&kit) {
            kit.request(l, write(round % 4, round));
        }
        if round % 7 == 3 {
            let victim = NodeId((round % 5) as u32);
            kit.crash(victim);
            kit.advance(ms(50));
            kit.start(victim);
        }
        if round % 11 == 5 {
            isolate(&mut kit, NodeId(((round / 11) % 5) as u32));
        }
        if round % 11 == 9 {
            kit.cut.clear();
        }
        kit.advance(ms(60));
        let nodes: Vec<(NodeId, &R)> = up(&kit).collect();
        R::cluster_invariants(&nodes).expect("invariants");
    }
    kit.cut.clear();
    kit.advance(ms(1000));
    let digests: Vec<Option<u64>> = up(&kit).map(|(_, n)| n.state_digest()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas converge");
}

#[test]
fn single_node_cluster_commits_alone() {
    let mut kit = cluster(1, Config::default());
    kit.advance(ms(400));
    assert_eq!(kit.node(N0).role(), Role::Leader);
    let w = kit.request(N0, write(1, 1));
    assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    let r = kit.request(N0, read(1));
    assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(1))));
}

#[test]
fn invalid_configs_are_rejected() {
    assert!(Config::default().validate().is_ok());
    assert!(Config { lease_reads: true, check_quorum: false, ..Config::default() }.validate().is_err());
    assert!(Config { batch_entries_max: 0, ..Config::default() }.validate().is_err());
    assert!(Config { batch_bytes_max: 0, ..Config::default() }.validate().is_err());
    assert!(Config { election_timeout_max: ms(10), ..Config::default() }.validate().is_err());
    let _ = (N3, N4);
}

/// A command that is `len` filler bytes, sized by its length: what a large
/// value in the server's key-value map looks like to the log.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Blob(Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blob({}x{})", self.0.len(), self.0.first().copied().unwrap_or(0))
    }
}

/// Counts the blobs and bytes applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Blobs {
    applied: u64,
    bytes: u64,
}

impl StateMachine for Blobs {
    type Command = Blob;
    type Output = KvResponse;

    fn apply(&mut self, command: &Blob) -> KvResponse {
        self.applied += 1;
        self.bytes += command.0.len() as u64;
        KvResponse::Done
    }

    fn is_read_only(_command: &Blob) -> bool {
        false
    }

    fn digest(&self) -> u64 {
        fnv1a(&[self.applied.to_le_bytes(), self.bytes.to_le_bytes()].concat())
    }

    fn command_bytes(command: &Blob) -> usize {
        command.0.len()
    }
}

/// The byte limit of the catch-up tests; entries are 10 KiB, every 40th is
/// three times the limit.
const BATCH_BYTES: usize = 64 * 1024;

/// One AppendEntries as it would travel: entries, encoded size (postcard,
/// the server's peer wire format) and the size of its largest entry.
#[derive(Debug)]
struct Sent {
    entries: usize,
    bytes: usize,
    largest_entry: usize,
}

/// n2 misses 120 entries (1.8 MiB) and then catches up from n0's log (no
/// snapshot: the log is not compacted). Returns every non-empty
/// AppendEntries it received on the way.
fn catch_up_after_large_entries(batch_bytes_max: usize) -> Vec<Sent> {
    let config = Config { batch_bytes_max, snapshot_entries: 1_000, ..Config::default() };
    let mut kit = cluster_of::<Blobs>(3, config);
    assert!(elect(&mut kit, N0, 1));
    kit.crash(N2);
    for i in 0..120u8 {
        let len = if i % 40 == 39 { 3 * BATCH_BYTES } else { 10 * 1024 };
        let w = kit.request(N0, Blob(vec![i; len]));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }
    let sent = Rc::new(RefCell::new(Vec::new()));
    let record = Rc::clone(&sent);
    kit.on_deliver = Some(Box::new(move |_, to, msg: &Msg<Blobs>| {
        let Msg::AppendEntries { entries, .. } = msg else { return };
        if to != N2 || entries.is_empty() {
            return;
        }
        let largest_entry = entries.iter().map(encoded_len).max().expect("non-empty");
        record.borrow_mut().push(Sent { entries: entries.len(), bytes: encoded_len(msg), largest_entry });
    }));
    kit.start(N2);
    for _ in 0..20 {
        kit.advance(ms(100));
        if kit.node(N2).commit_index() == kit.node(N0).commit_index() {
            break;
        }
    }
    assert_eq!(kit.node(N2).log().last_index(), kit.node(N0).log().last_index(), "n2 caught up");
    assert_eq!(kit.node(N2).state(), kit.node(N0).state(), "and applied everything");
    assert_eq!(kit.node(N2).state().applied, 120);
    kit.on_deliver = None;
    sent.take()
}

fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::to_stdvec(value).expect("encodes").len()
}

/// A follower far behind on large entries catches up with every
/// AppendEntries under the byte limit, except an entry larger than the limit,
/// which travels alone (etcd's `MaxSizePerMsg`).
#[test]
fn a_follower_behind_large_entries_catches_up_in_messages_under_the_byte_limit() {
    let sent = catch_up_after_large_entries(BATCH_BYTES);
    for s in &sent {
        let alone_and_oversized = s.entries == 1 && s.largest_entry > BATCH_BYTES;
        assert!(s.bytes <= BATCH_BYTES || alone_and_oversized, "over the limit: {s:?}");
    }
    let oversized = sent.iter().filter(|s| s.largest_entry > BATCH_BYTES).count();
    assert!(oversized >= 3, "each oversized entry travelled (alone): {sent:?}");
    let batched = sent.iter().map(|s| s.entries).max().unwrap_or(0);
    assert!(batched >= 5, "entries were still batched (up to {batched})");
}

/// Negative control of the test above: without the byte limit, the count
/// limit alone puts 64 entries (640 KiB and more) in one message.
#[test]
fn without_a_byte_limit_catch_up_messages_grow_past_it() {
    let sent = catch_up_after_large_entries(usize::MAX);
    let largest = sent.iter().map(|s| s.bytes).max().unwrap_or(0);
    assert!(largest > 8 * BATCH_BYTES, "largest AppendEntries {largest} bytes");
}
