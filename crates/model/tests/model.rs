//! The model checker on the laboratory's protocols: pinned state counts of
//! small configurations (a change to a protocol's state space shows here
//! first: re-measure with the `quorum model` command in each test's doc and
//! update the count), the catalogued bugs found, and counterexamples that
//! replay as scripts.

use quorum_check::ledger::Ledger;
use quorum_core::claims::Violation;
use quorum_core::txn::TxnRequest;
use quorum_core::{KvCommand, KvStore, NodeId, Protocol};
use quorum_model::{check, counterexample_script, Budgets, Found, ModelConfig, Strategy};
use quorum_protocols::commit::three_pc::ThreePhaseCommit;
use quorum_protocols::commit::two_pc::TwoPhaseCommit;
use quorum_protocols::fast_paxos::FastPaxos;
use quorum_protocols::paxos::single::Paxos;
use quorum_protocols::replication::abd::Abd;
use quorum_sim::script::{parse_blocks, Scripted};

fn kv(protocol: &str, writers: usize) -> ModelConfig {
    let mut model = ModelConfig::new(protocol, 3);
    model.requests = vec![(NodeId(0), "write 1 10".into()), (NodeId(1), "write 1 11".into())];
    model.requests.truncate(writers);
    model
}

fn transfer(protocol: &str, budgets: Budgets, timely: bool) -> ModelConfig {
    let mut model = ModelConfig::new(protocol, 3);
    model.requests = vec![(NodeId(0), "transfer 1 2 30".into())];
    model.budgets = budgets;
    model.timely = timely;
    model
}

fn budgets(losses: u32, crashes: u32, timeouts: u32) -> Budgets {
    Budgets { losses, duplicates: 0, crashes, timeouts }
}

/// `quorum model --protocol paxos --request '0:write 1 10'`: one proposal,
/// every interleaving of its 3 nodes' messages. Breadth-first and
/// depth-first visit the same states, and the thread count changes nothing.
#[test]
fn paxos_with_one_proposal_has_11_602_states_whichever_way_it_is_searched() {
    let mut model = kv("paxos", 1);
    let mut counts = Vec::new();
    for (strategy, threads) in
        [(Strategy::BreadthFirst, 1), (Strategy::BreadthFirst, 2), (Strategy::DepthFirst, 1)]
    {
        model.strategy = strategy;
        model.threads = threads;
        let report = check::<Paxos<KvStore>>(&model, "{}", &mut |_, _| {}).unwrap();
        assert!(report.violation.is_none() && !report.gave_up && !report.depth_bounded);
        counts.push((report.states, report.transitions, report.terminal));
    }
    assert_eq!(counts, vec![(11_602, 55_414, 16); 3]);
}

/// `quorum model --protocol fast-paxos --request '0:write 1 10'`: one
/// proposal in the fast round, every interleaving of its 3 nodes' Propose
/// and Accepted messages (no phase 1: fewer states than Paxos's 11,602).
#[test]
fn fast_paxos_with_one_proposal_has_730_states_whichever_way_it_is_searched() {
    let mut model = kv("fast-paxos", 1);
    let mut counts = Vec::new();
    for (strategy, threads) in
        [(Strategy::BreadthFirst, 1), (Strategy::BreadthFirst, 2), (Strategy::DepthFirst, 1)]
    {
        model.strategy = strategy;
        model.threads = threads;
        let report = check::<FastPaxos<KvStore>>(&model, "{}", &mut |_, _| {}).unwrap();
        assert!(report.violation.is_none() && !report.gave_up && !report.depth_bounded);
        counts.push((report.states, report.transitions, report.terminal));
    }
    assert_eq!(counts, vec![(730, 3_160, 1); 3]);
}

/// `quorum model --protocol abd`: two clients writing one register at two
/// nodes, every interleaving.
#[test]
fn abd_with_two_writers_has_58_555_states_and_no_violation() {
    let report = check::<Abd>(&kv("abd", 2), "{}", &mut |_, _| {}).unwrap();
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert_eq!((report.states, report.gave_up), (58_555, false));
}

/// `quorum model --protocol 3pc --crashes 1 --timeouts 3`: under its own
/// model (a timely network: a timer fires only when nothing is in flight)
/// 3PC stays atomic through a crash anywhere, even mid-step. Let timers fire
/// at any time (`--asynchronous`: a timeout that suspects a node whose
/// answer is on its way) and a cohort's termination aborts while the
/// coordinator commits: the text's point that 3PC needs synchrony.
#[test]
fn three_pc_is_atomic_on_a_timely_network_and_splits_on_an_asynchronous_one() {
    let timely = check::<ThreePhaseCommit>(&transfer("3pc", budgets(0, 1, 3), true), "{}", &mut |_, _| {});
    let timely = timely.unwrap();
    assert!(timely.violation.is_none(), "{:?}", timely.violation);
    assert_eq!(timely.states, 7_315);
    let asynchronous =
        check::<ThreePhaseCommit>(&transfer("3pc", budgets(0, 1, 3), false), "{}", &mut |_, _| {}).unwrap();
    let found = asynchronous.violation.expect("a split decision");
    assert_eq!(found.kind, Violation::Atomicity);
    assert!(found.path.iter().any(|a| matches!(a, quorum_model::Action::Fire(..))));
}

/// The catalogued 2PC and 3PC bugs, found with their shortest
/// counterexamples (breadth-first), where the correct protocols with the
/// same budgets hold in every state.
#[test]
fn commit_bugs_are_found_with_shortest_counterexamples() {
    let two = budgets(1, 1, 1);
    let correct = check::<TwoPhaseCommit>(&transfer("2pc", two, false), "{}", &mut |_, _| {}).unwrap();
    assert!(correct.violation.is_none(), "{:?}", correct.violation);
    assert_eq!(correct.states, 82_582);
    for (bug, steps) in [("no-force-prepare", 8), ("no-force-decision", 11)] {
        let config = format!("{{\"bug\":\"{bug}\"}}");
        let report = check::<TwoPhaseCommit>(&transfer("2pc", two, false), &config, &mut |_, _| {}).unwrap();
        let found = report.violation.unwrap_or_else(|| panic!("2pc --bug {bug} found"));
        assert_eq!((found.kind, found.path.len()), (Violation::Atomicity, steps), "2pc --bug {bug}");
    }
    let model = transfer("3pc", budgets(0, 1, 3), true);
    let report = check::<ThreePhaseCommit>(&model, "{\"bug\":\"no-force-prepare\"}", &mut |_, _| {}).unwrap();
    let found = report.violation.expect("3pc --bug no-force-prepare found");
    assert_eq!((found.kind, found.path.len()), (Violation::Atomicity, 12));
}

/// Two proposers racing for one instance: an acceptor that accepts below
/// its promise lets both values be chosen. The space of two proposals is
/// too large to search breadth-first here; depth-first finds a path.
#[test]
fn paxos_accepting_below_a_promise_breaks_agreement_depth_first() {
    let mut model = kv("paxos", 2);
    model.strategy = Strategy::DepthFirst;
    model.max_states = 200_000;
    let config = "{\"bug\":\"accept-without-promise-check\"}";
    let report = check::<Paxos<KvStore>>(&model, config, &mut |_, _| {}).unwrap();
    let found = report.violation.expect("agreement broken");
    assert_eq!(found.kind, Violation::Consensus);
    assert!(found.what.starts_with("agreement"), "{}", found.what);
    assert_replays::<Paxos<KvStore>>(&model, config, &found, |t| t.parse::<KvCommand>().map(|_| ()));
}

/// `quorum model --protocol fast-paxos --bug ignore-fast-votes --timeouts 3
/// --dfs`: two proposers, one value chosen in the fast round, the other's
/// proposer timing out into a classic round that proposes its own value
/// (Fast Paxos §3.1, O4 ignored): agreement broken, found depth-first. The
/// correct protocol under the same budgets shows nothing in 400,000 states
/// (`quorum model --protocol fast-paxos --timeouts 3 --dfs --max-states
/// 400000`; not exhaustive, so not pinned here).
#[test]
fn fast_paxos_ignoring_fast_votes_breaks_agreement_depth_first() {
    let mut model = kv("fast-paxos", 2);
    model.strategy = Strategy::DepthFirst;
    model.budgets = budgets(0, 0, 3);
    model.max_states = 200_000;
    let config = "{\"bug\":\"ignore-fast-votes\"}";
    let report = check::<FastPaxos<KvStore>>(&model, config, &mut |_, _| {}).unwrap();
    let found = report.violation.expect("agreement broken");
    assert_eq!((found.kind, report.states), (Violation::Consensus, 2_575));
    assert!(found.what.starts_with("agreement"), "{}", found.what);
    assert_replays::<FastPaxos<KvStore>>(&model, config, &found, |t| t.parse::<KvCommand>().map(|_| ()));
}

/// A counterexample script, run by the script runner, shows the violation
/// the search reported (the same kind, from the same observations).
#[test]
fn a_counterexample_replays_as_a_script() {
    let model = transfer("2pc", budgets(1, 1, 1), false);
    let config = "{\"bug\":\"no-force-decision\"}";
    let found = check::<TwoPhaseCommit>(&model, config, &mut |_, _| {}).unwrap().violation.unwrap();
    assert_replays::<TwoPhaseCommit>(&model, config, &found, |t| t.parse::<TxnRequest>().map(|_| ()));
}

fn assert_replays<P>(
    model: &ModelConfig,
    config: &str,
    found: &Found<P::Timer>,
    _parses: impl Fn(&str) -> Result<(), String>,
) where
    P: Protocol + Clone + std::fmt::Debug,
    P::Request: std::str::FromStr,
    <P::Request as std::str::FromStr>::Err: std::fmt::Display,
{
    let script = counterexample_script::<P>(model, config, found).unwrap();
    let blocks = parse_blocks(&script).unwrap();
    assert_eq!(blocks.len(), found.path.len() + 1, "the cluster, then a command per step");
    let mut world = Scripted::<P>::new(P::Config::default());
    let outputs = world.run_blocks(&blocks).unwrap();
    for (block, output) in blocks.iter().zip(&outputs) {
        assert_eq!(&block.expected, output, "{}", block.command);
    }
    let mut ledger = Ledger::new();
    let broken = world.observations().iter().find_map(|(n, o, _)| ledger.observe(*n, o));
    assert_eq!(broken.map(|b| b.kind), Some(found.kind), "{script}");
}

/// `--max-states` stops the search, and says so.
#[test]
fn a_search_past_its_state_budget_gives_up() {
    let mut model = kv("paxos", 2);
    model.max_states = 1_000;
    let report = check::<Paxos<KvStore>>(&model, "{}", &mut |_, _| {}).unwrap();
    assert!(report.gave_up);
    assert_eq!(report.states, 1_000);
    assert!(report.violation.is_none());
}
