//! Scenario scripts (etcd's datadriven style) under
//! `crates/protocols/scenarios/<protocol>/`, for every registered protocol:
//! each command's output must match the expected output in the file.
//! Regenerate with `REWRITE=1 cargo test -p quorum-registry --test
//! scenarios` and review the diff.

use std::path::{Path, PathBuf};

use quorum_registry::{Registered, PROTOCOLS};
use quorum_sim::script::{parse_blocks, render_blocks};

fn scenario_dir(protocol: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/scenarios").join(protocol)
}

fn scripts(protocol: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(scenario_dir(protocol)) {
        Ok(entries) => entries
            .map(|e| e.expect("readable").path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Run `file` against `registered`; with `REWRITE=1`, rewrite it with the
/// actual outputs. The first mismatch, described.
fn check_file(registered: &Registered, file: &Path) -> Result<quorum_registry::Scripting, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let blocks = parse_blocks(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let named = blocks
        .iter()
        .filter(|b| b.command.starts_with("cluster "))
        .flat_map(|b| b.command.split_whitespace())
        .find_map(|w| w.strip_prefix("variant="));
    let choice = registered.choose(named, None, None).map_err(|e| e.to_string())?;
    let run = registered.script(&choice, &blocks).map_err(|e| format!("{}: {e}", file.display()))?;
    if std::env::var_os("REWRITE").is_some() {
        std::fs::write(file, render_blocks(&blocks, &run.outputs)).map_err(|e| e.to_string())?;
        return Ok(run);
    }
    for (block, actual) in blocks.iter().zip(&run.outputs) {
        if block.expected != *actual {
            return Err(format!(
                "{}:{}: `{}`\n--- expected\n{}--- actual\n{}(run with REWRITE=1 to accept)",
                file.display(),
                block.line,
                block.command,
                block.expected,
                actual
            ));
        }
    }
    Ok(run)
}

/// Every registered protocol has scenarios, and they all run as written.
#[test]
fn every_protocol_has_scenarios_that_pass() {
    let mut failures = Vec::new();
    for registered in PROTOCOLS {
        let name = registered.entry.name;
        let files = scripts(name);
        if files.is_empty() {
            failures.push(format!("{name}: no scenario files in {}", scenario_dir(name).display()));
        }
        for file in files {
            if let Err(e) = check_file(registered, &file) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The runner must be able to fail: a wrong expectation is reported with its line.
#[test]
fn a_wrong_expectation_is_reported() {
    if std::env::var_os("REWRITE").is_some() {
        return;
    }
    let abd = quorum_registry::find("abd").unwrap();
    let path = std::env::temp_dir().join(format!("quorum-scenario-{}.txt", std::process::id()));
    std::fs::write(&path, "cluster 3 names=A,B,C\n----\nA: nonsense\n\nrequest A write 1 1\n----\n\n")
        .unwrap();
    let err = check_file(abd, &path).err().unwrap();
    assert!(err.contains(":1: `cluster 3 names=A,B,C`"), "{err}");
    std::fs::write(&path, "cluster 3\n----\n\nexplode A\n----\n\n").unwrap();
    let err = check_file(abd, &path).err().unwrap();
    assert!(err.contains("line 4: unknown command 'explode'"), "{err}");
    std::fs::remove_file(&path).ok();
}

/// 2PC: a coordinator crash blocks the cohorts until it recovers from its
/// log; the atomicity checker, fed the script's typed observations, agrees.
#[test]
fn two_pc_scenarios_are_atomic() {
    let two_pc = quorum_registry::find("2pc").unwrap();
    for file in scripts("2pc") {
        let run = check_file(two_pc, &file).unwrap();
        let verdict = two_pc.judge_script(&run).unwrap();
        assert!(verdict.starts_with("atomicity: ok") && !verdict.contains("(0 decisions)"), "{verdict}");
    }
}

/// 3PC: the source text's partition scenario ends in a split decision, and
/// the atomicity checker reports it.
#[test]
fn three_pc_partition_splits_the_decision() {
    let three_pc = quorum_registry::find("3pc").unwrap();
    let run = check_file(three_pc, &scenario_dir("3pc").join("partition_splits_the_decision.txt")).unwrap();
    let verdict = three_pc.judge_script(&run).unwrap();
    assert!(verdict.contains("committed at n1 but aborted at n0,n2"), "{verdict}");
    assert_eq!(verdict.matches("txn ").count(), 1, "one transaction split: {verdict}");
}

/// The loyal generals' decisions (nodes `0..loyal`) and the IC1/IC2
/// verdict of a Byzantine generals' scenario whose traitors are `traitors`.
fn generals(protocol: &str, file: &str, traitors: &[u32]) -> (Vec<u64>, Vec<String>) {
    let registered = quorum_registry::find(protocol).unwrap();
    let run = check_file(registered, &scenario_dir(protocol).join(file)).unwrap();
    let traitors: Vec<quorum_core::NodeId> = traitors.iter().map(|t| quorum_core::NodeId(*t)).collect();
    let mut orders = quorum_check::byzantine::OrderLog::new();
    let mut decided = Vec::new();
    for (node, observation, _) in run.observations.iter().filter(|(n, _, _)| !traitors.contains(n)) {
        orders.observe(*node, observation);
        if let quorum_core::Observation::Decide { value, .. } = observation {
            decided.push(*value);
        }
    }
    (decided, orders.check(&traitors).iter().map(ToString::to_string).collect())
}

/// The source text's nine generals: plain majority voting splits the
/// loyal eight (I told each side what it wanted to hear); OM(1) makes them
/// agree, with IC1 and IC2 kept for every general's vote.
#[test]
fn nine_generals_split_by_majority_and_agree_by_om1() {
    let (decided, broken) = generals("om", "nine_generals_majority_splits.txt", &[8]);
    assert_eq!(decided, vec![1, 1, 1, 1, 0, 0, 0, 0], "A-D attack, E-H retreat");
    assert!(broken.iter().all(|b| b.starts_with("IC1") && b.contains("commander n8")), "{broken:?}");
    assert!(!broken.is_empty());
    let (decided, broken) = generals("om", "nine_generals_om1_agree.txt", &[8]);
    assert_eq!(decided.len(), 8);
    assert!(decided.iter().all(|d| *d == decided[0]), "the loyal agree: {decided:?}");
    assert!(broken.is_empty(), "{broken:?}");
}

/// Three generals, one traitor: OM(1) breaks IC2 (§2); SM(1) keeps it
/// (§4), because the traitor cannot sign for the commander.
#[test]
fn three_generals_one_traitor_oral_fails_signed_holds() {
    let (_, broken) = generals("om", "three_generals_one_traitor.txt", &[2]);
    assert_eq!(broken, vec!["IC2: instance 0: loyal commander n0 ordered 1, loyal n1 obeyed 0".to_string()]);
    let (decided, broken) = generals("sm", "three_generals_signed.txt", &[2]);
    assert_eq!((decided, broken), (vec![1, 1], Vec::<String>::new()));
    let (decided, broken) = generals("sm", "traitor_commander_signs_two_orders.txt", &[0]);
    assert_eq!(
        (decided, broken),
        (vec![0, 0, 0], Vec::<String>::new()),
        "choice({{0, 1}}) = RETREAT for all"
    );
}
