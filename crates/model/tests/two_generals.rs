//! The two generals made runnable (Lynch, *Distributed Algorithms*, §5.1):
//! for every k from 1 to 8 messages of acknowledgement, the model checker
//! finds a single lost messenger after which one general attacks alone, and
//! none without a loss; the chain of runs that lose one message earlier each
//! time shows why, each neighbour pair looking the same to one general.

use quorum_core::claims::Violation;
use quorum_core::NodeId;
use quorum_model::{chain, check, Budgets, ModelConfig};
use quorum_protocols::two_generals::TwoGenerals;

/// `quorum model --protocol two-generals --config '{"messages":K}' --losses L`.
fn generals(losses: u32) -> ModelConfig {
    let mut model = ModelConfig::new("two-generals", 2);
    model.requests = vec![(NodeId(0), "propose 1".into()), (NodeId(1), "propose 1".into())];
    model.budgets = Budgets { losses, duplicates: 0, crashes: 0, timeouts: 64 };
    model.timely = true;
    model.requests_first = true;
    model
}

fn config(k: u32) -> String {
    format!(r#"{{"messages":{k}}}"#)
}

#[test]
fn one_lost_messenger_splits_the_generals_for_every_k_and_none_without_loss() {
    for k in 1..=8 {
        let safe = check::<TwoGenerals>(&generals(0), &config(k), &mut |_, _| {}).unwrap();
        assert!(safe.violation.is_none() && !safe.gave_up, "k = {k}: no loss, no split");
        assert!(safe.reached.contains_key("attacked"), "k = {k}: without loss they attack");
        let report = check::<TwoGenerals>(&generals(1), &config(k), &mut |_, _| {}).unwrap();
        let found = report.violation.unwrap_or_else(|| panic!("k = {k}: a loss must split them"));
        assert_eq!(found.kind, Violation::Consensus, "k = {k}");
        assert!(found.what.contains("agreement"), "k = {k}: {}", found.what);
        // Shortest: the two requests, k - 1 deliveries, the loss, two dawns.
        assert_eq!(found.path.len() as u32, k + 4, "k = {k}");
    }
}

#[test]
fn the_chain_of_runs_that_look_alike_ends_in_a_split() {
    for k in 1..=8 {
        let runs = chain::<TwoGenerals>(&generals(0), &config(k)).unwrap();
        assert_eq!(runs.len() as u32, k + 1, "k = {k}: every message, then each one lost");
        assert!(!runs[0].split() && runs[0].decisions == vec![Some(1), Some(1)], "k = {k}: all arrive");
        assert_eq!(runs[k as usize].decisions[1], Some(0), "k = {k}: message 1 lost, B heard nothing");
        assert!(runs.iter().any(|r| r.split()), "k = {k}: some run splits");
        for (i, pair) in runs.windows(2).enumerate() {
            let lost = pair[1].lost.expect("every run after the first loses one") as usize;
            let sender = (lost + 1) % 2; // A (n0) sends the odd messages
            assert_eq!(pair[0].same_as_next, vec![sender as u32], "k = {k}, R{i}: the sender of {lost}");
        }
    }
}
