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
