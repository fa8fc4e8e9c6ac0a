//! FLP made runnable (`quorum model --protocol P --flp`) on the protocols
//! read as binary consensus: a bivalent start, an adversary whose run closes
//! a lasso that never decides, agreement and validity on every state, and
//! the run as a script that replays exactly. The negative control: Paxos
//! with a catalogued bug breaks agreement under the same search.

use quorum_core::NodeId;
use quorum_model::{Budgets, FlpConfig, FlpReport, ModelConfig};
use quorum_registry::flp::INPUTS;
use quorum_sim::script::parse_blocks;
use quorum_sim::ProtocolChoice;

/// The settings `quorum model --protocol P --flp` uses by default.
fn config(protocol: &str, steps: usize) -> FlpConfig {
    let mut model = ModelConfig::new(protocol, 3);
    model.budgets = Budgets { timeouts: 8, ..Budgets::default() };
    model.max_depth = 200;
    model.requests = (0..3).map(|n| (NodeId(n), INPUTS[0].to_string())).collect();
    FlpConfig { model, inputs: INPUTS.map(String::from), steps, sigma_states: 10_000, walks: 64 }
}

fn run(choice: ProtocolChoice, steps: usize) -> FlpReport {
    let registered = quorum_registry::find(&choice.name).unwrap();
    registered.flp(&choice, &config(&choice.name, steps)).unwrap()
}

/// Lemma 2 read off the table: unanimous inputs are univalent (validity
/// leaves no choice), and some mixed vector is bivalent.
fn assert_lemma2(report: &FlpReport) {
    let all = |b: u8| report.initial.iter().find(|i| i.inputs.iter().all(|x| *x == b)).unwrap();
    assert_eq!(all(0).valence.name(), "0-valent");
    assert_eq!(all(1).valence.name(), "1-valent");
    let start = report.start.as_ref().expect("a bivalent initial configuration");
    assert!(start.contains(&0) && start.contains(&1), "{start:?}");
}

/// The lasso closed, every step bivalent, nothing broken, and the run's
/// script replays with the outputs it shows.
fn assert_lasso(name: &str, report: &FlpReport) {
    assert_eq!(report.violation, None);
    assert!(report.steps.iter().all(|s| s.valence.bivalent()));
    let lasso = report.lasso.unwrap_or_else(|| panic!("{name}: no lasso: {:?}", report.stuck));
    assert_eq!(lasso.repeats, 2);
    assert_eq!(report.events.len(), lasso.stem + 2 * lasso.period);
    let blocks = parse_blocks(&report.script).unwrap();
    assert_eq!(blocks.len(), report.events.len() + 1, "the cluster line, then one block per event");
    let registered = quorum_registry::find(name).unwrap();
    let replay = registered.script(&ProtocolChoice::named(name), &blocks).unwrap();
    for (block, actual) in blocks.iter().zip(&replay.outputs) {
        assert_eq!(block.expected, *actual, "{name}: line {} `{}`", block.line, block.command);
    }
}

/// `quorum model --protocol raft --flp`: the fair schedule alone (every
/// σ empty) keeps elections splitting; the loop is dueling candidates.
#[test]
fn raft_never_decides_under_the_adversary() {
    let report = run(ProtocolChoice::named("raft"), 1_000);
    assert_lemma2(&report);
    assert_lasso("raft", &report);
    let lasso = report.lasso.unwrap();
    let round = &report.events[lasso.stem..lasso.stem + lasso.period];
    assert!(round.iter().any(|e| e.contains("Election")), "{round:?}");
}

/// `quorum model --protocol paxos --flp`: dueling proposers, with detours.
#[test]
fn paxos_never_decides_under_the_adversary() {
    let report = run(ProtocolChoice::named("paxos"), 1_000);
    assert_lemma2(&report);
    assert_lasso("paxos", &report);
    assert!(report.steps.iter().any(|s| !s.sigma.is_empty()), "some step needs a detour");
}

/// The negative control: the same search on Paxos with the acceptor bug
/// meets a state where two nodes decide differently.
#[test]
fn the_flp_search_catches_a_paxos_bug() {
    let choice = quorum_registry::find("paxos")
        .unwrap()
        .choose(None, Some("accept-without-promise-check"), None)
        .unwrap();
    let report = run(choice, 300);
    let what = report.violation.expect("agreement broken");
    assert!(what.contains("agreement"), "{what}");
}

/// Too few steps to close a loop: no lasso is claimed.
#[test]
fn no_lasso_is_claimed_without_a_loop() {
    let report = run(ProtocolChoice::named("raft"), 20);
    assert!(report.lasso.is_none());
    assert_eq!(report.steps.len(), 20);
}

/// A protocol not read as binary consensus is refused.
#[test]
fn flp_needs_a_binary_reading() {
    let abd = quorum_registry::find("abd").unwrap();
    let err = abd.flp(&ProtocolChoice::named("abd"), &config("abd", 10)).unwrap_err();
    assert!(err.to_string().contains("paxos and raft"), "{err}");
}
