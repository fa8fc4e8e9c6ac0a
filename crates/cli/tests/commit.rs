//! Two- and three-phase commit through the real binary: 2PC keeps atomicity
//! under crashes and its negative control does not; 3PC splits its decision
//! under a partition; the per-transaction figures are the text's.

mod common;

use common::{json, quorum, replay_args};

fn count(report: &serde_json::Value, kind: &str) -> u64 {
    report["violations"][kind].as_u64().unwrap_or(0)
}

/// Run the first violation's replay command; the kinds it shows.
fn replay_kinds(report: &serde_json::Value) -> Vec<String> {
    let replay = report["first"]["replay"].as_str().expect("a violation comes with a replay command");
    let mut args = replay_args(replay);
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = json(&args);
    run["violations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn two_pc_keeps_atomicity_and_balances_under_crashes() {
    let report = json(&["explore", "--protocol", "2pc", "--faults", "crash", "--seeds", "500", "--json"]);
    assert_eq!(report["violating_runs"], 0, "{report}");
    assert_eq!(report["runs_live"], 500, "every run terminates after heal: {report}");
}

/// The negative control: a cohort that votes yes without forcing prepare*
/// forgets its promise in a crash; the atomicity checker catches it.
#[test]
fn two_pc_without_forcing_prepare_is_caught_by_the_atomicity_checker() {
    let args = ["explore", "--protocol", "2pc", "--faults", "crash", "--seeds", "100", "--json"];
    let report = json(&[&args[..], &["--bug", "no-force-prepare", "--focus", "atomicity"]].concat());
    assert!(count(&report, "atomicity") > 0, "{report}");
    assert!(replay_kinds(&report).iter().any(|k| k == "atomicity"));
}

/// The source text's 3PC partition scenario, found by explore.
#[test]
fn three_pc_splits_its_decision_under_partitions() {
    let args = ["explore", "--protocol", "3pc", "--faults", "partition", "--seeds", "200", "--json"];
    let report = json(&[&args[..], &["--focus", "atomicity"]].concat());
    assert!(count(&report, "atomicity") > 0, "{report}");
    assert!(report["first"]["replay"].as_str().unwrap().contains("--protocol 3pc"));
    assert!(replay_kinds(&report).iter().any(|k| k == "atomicity"));
}

/// 2PC without failures: QUERY, VOTE, COMMIT/ROLLBACK to each of the n = 2
/// cohorts (the text's 3n) plus the n acknowledgments of its diagram.
#[test]
fn two_pc_without_faults_sends_3n_messages_plus_n_acks_per_transaction() {
    let run = json(&["sim", "--protocol", "2pc", "--faults", "none", "--seed", "3", "--json"]);
    let txn = &run["txn"];
    assert_eq!(run["violations"].as_array().unwrap().len(), 0, "{run}");
    let n = txn["cohorts_per_txn"].as_f64().unwrap();
    assert_eq!(n, 2.0, "{txn}");
    assert_eq!(txn["messages_per_txn"].as_f64().unwrap(), 3.0 * n + n, "{txn}");
    assert!(txn["committed"].as_u64().unwrap() > 0 && txn["aborted"].as_u64().unwrap() > 0, "{txn}");
    assert!(txn["blocked_ms_max"].as_u64().unwrap() < 50, "{txn}");
}

/// 3PC without failures: three round trips, 6n messages.
#[test]
fn three_pc_without_faults_sends_more_messages_than_two_pc() {
    let two = json(&["sim", "--protocol", "2pc", "--faults", "none", "--seed", "3", "--json"]);
    let three = json(&["sim", "--protocol", "3pc", "--faults", "none", "--seed", "3", "--json"]);
    let per_txn = |r: &serde_json::Value| r["txn"]["messages_per_txn"].as_f64().unwrap();
    assert!(per_txn(&three) > per_txn(&two), "{} vs {}", per_txn(&three), per_txn(&two));
    assert!(per_txn(&three) <= 12.0);
}

#[test]
fn the_three_pc_partition_script_reports_a_split_decision() {
    let file =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/tests/scenarios/3pc/partition_splits_the_decision.txt");
    let out = quorum(&["script", file, "--check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("# atomicity: VIOLATED: txn 100: committed at n1 but aborted at n0,n2"),
        "{stdout}"
    );
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sim/tests/scenarios/2pc/coordinator_crash_blocks_cohorts.txt"
    );
    let out = quorum(&["script", file, "--check"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("# atomicity: ok"));
}
