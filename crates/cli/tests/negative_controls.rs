//! Negative controls and their positive twins, through the real binary: the
//! weak protocols must be caught failing the way the source text says they
//! fail, on a seed that replays; the strong ones must survive.

mod common;

use common::{json, quorum, replay_args};

fn explore(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["explore", "--json"];
    all.extend_from_slice(args);
    json(&all)
}

fn count(report: &serde_json::Value, kind: &str) -> u64 {
    report["violations"][kind].as_u64().unwrap_or(0)
}

/// The replay command of the first violation reproduces it.
fn replay_reproduces(report: &serde_json::Value, kind: &str) {
    let first = &report["first"];
    assert!(first.is_object(), "a violating explore reports its first violation: {report}");
    let replay = first["replay"].as_str().expect("replay is a string");
    let mut args = replay_args(replay);
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = json(&args);
    let kinds: Vec<&str> =
        run["violations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(kinds.contains(&kind), "replay `{replay}` shows {kinds:?}, expected {kind}");
}

/// Source text, "Asynchronous": "the master node may lose the entire write
/// if it fails before replication begins".
#[test]
fn async_loses_acknowledged_writes_when_the_primary_crashes() {
    let report = explore(&[
        "--protocol",
        "async",
        "--faults",
        "crash",
        "--seeds",
        "100",
        "--focus",
        "lost_acked_writes",
    ]);
    assert!(count(&report, "lost_acked_writes") > 0, "{report}");
    replay_reproduces(&report, "lost_acked_writes");
}

/// Source text, "Master-slave replication": lost updates after failover.
#[test]
fn primary_backup_async_is_not_linearizable() {
    let report = explore(&[
        "--protocol",
        "primary-backup",
        "--variant",
        "async",
        "--faults",
        "crash",
        "--seeds",
        "100",
        "--focus",
        "linearizability",
    ]);
    assert!(count(&report, "linearizability") > 0, "{report}");
    replay_reproduces(&report, "linearizability");
}

/// Source text, "Master-slave replication": split-brain under a partition,
/// for both variants.
#[test]
fn primary_backup_splits_its_brain_under_partition() {
    for variant in ["sync", "async"] {
        let report = explore(&[
            "--protocol",
            "primary-backup",
            "--variant",
            variant,
            "--faults",
            "partition",
            "--seeds",
            "60",
            "--focus",
            "split_brain",
        ]);
        assert!(count(&report, "split_brain") > 0, "{variant}: {report}");
        replay_reproduces(&report, "split_brain");
    }
}

/// Source text, "Synchronous": strong consistency, no acknowledged write
/// lost, but writes fail while any node is down.
#[test]
fn sync_survives_all_faults_and_refuses_writes_while_a_node_is_down() {
    let report = explore(&["--protocol", "sync", "--faults", "all", "--seeds", "2000"]);
    assert_eq!(report["runs"], 2000);
    assert_eq!(report["violating_runs"], 0, "{report}");
    assert!(report["first"].is_null());
    assert!(report["runs_with_failed_writes"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["runs_live"], 2000);
}

/// Source text, "Quorums": a majority suffices; ABD is linearizable.
#[test]
fn abd_survives_all_faults() {
    let report = explore(&["--protocol", "abd", "--faults", "all", "--seeds", "2000"]);
    assert_eq!(report["runs"], 2000);
    assert_eq!(report["violating_runs"], 0, "{report}");
    assert_eq!(report["runs_live"], 2000);
    assert!(report["ops_ok"].as_u64().unwrap() > 2000 * 100, "the good thing happens too: {report}");
}

/// Paxos Made Simple §2.3: an acceptor "can remember ... even if it fails
/// and then restarts" — promises and acceptances are forced before replies.
/// With `forget-promises` a restarted acceptor answers a new ballot as if it
/// had accepted nothing, and a second value is chosen (Agreement broken).
/// Exposing it needs the instance to stay undecided across the restart:
/// three nodes, one key (dueling proposers), and crashes that may take a
/// majority down at once (`--max-down 2`). Durable promises survive exactly
/// that, so the positive twin runs the same seeds without the bug.
#[test]
fn paxos_acceptor_that_forgets_promises_lets_two_values_be_chosen() {
    let args = ["--protocol", "paxos", "--nodes", "3", "--keys", "1", "--max-down", "2", "--faults", "crash"];
    let report = explore(
        &[&args[..], &["--seeds", "600", "--bug", "forget-promises", "--focus", "consensus"]].concat(),
    );
    assert!(count(&report, "consensus") > 0, "{report}");
    replay_reproduces(&report, "consensus");
    let twin = explore(&[&args[..], &["--seeds", "600"]].concat());
    assert_eq!(twin["violating_runs"], 0, "{twin}");
    assert_eq!(twin["runs_live"], 600, "{twin}");
}

/// Multi-Paxos negative controls: a new leader that skips phase-1 recovery
/// overwrites chosen slots (log safety); a leader that reads without
/// confirming its leadership serves stale reads under a partition. That one
/// runs with CheckQuorum off: with it, a cut-off leader steps down about
/// when the majority elects its successor, which closes nearly all of the
/// stale-read window (0 of 400 seeds) — the window leader leases rely on
/// closing, and only bounded clock drift keeps closed.
#[test]
fn multi_paxos_bugs_are_caught() {
    let report = explore(&[
        "--protocol",
        "multi-paxos",
        "--bug",
        "skip-phase1-recovery",
        "--faults",
        "crash",
        "--seeds",
        "30",
        "--focus",
        "log_safety",
    ]);
    assert!(count(&report, "log_safety") > 0, "{report}");
    replay_reproduces(&report, "log_safety");
    let report = explore(&[
        "--protocol",
        "multi-paxos",
        "--bug",
        "unconfirmed-reads",
        "--config",
        r#"{"check_quorum":false}"#,
        "--faults",
        "partition",
        "--seeds",
        "60",
        "--focus",
        "linearizability",
    ]);
    assert!(count(&report, "linearizability") > 0, "{report}");
    replay_reproduces(&report, "linearizability");
}

#[test]
fn sim_json_has_the_documented_keys_and_replays_identically() {
    let args = ["sim", "--protocol", "abd", "--faults", "all", "--seed", "5", "--json"];
    let a = quorum(&args);
    let b = quorum(&args);
    assert_eq!(a.stdout, b.stdout, "same seed, same run");
    let run: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    for key in [
        "protocol",
        "seed",
        "nodes",
        "ops_ok",
        "ops_fail",
        "ops_info",
        "linearizable",
        "lost_acked_writes",
        "converged",
        "messages_sent",
        "messages_delivered",
        "sim_time_ms",
    ] {
        assert!(run.get(key).is_some(), "missing {key}: {run}");
    }
    assert_eq!(run["protocol"], "abd");
    assert_eq!(run["linearizable"], true);
}

/// The client timeout is a run setting like any other: it changes the run
/// (a 5 ms timeout gives up on most operations), and the replay command
/// carries it, so the replay is the same run.
#[test]
fn the_client_timeout_changes_the_run_and_its_replay_carries_it() {
    let base = ["sim", "--protocol", "raft", "--faults", "crash,delay", "--seed", "3", "--json"];
    let default = json(&base);
    let mut short_args = base.to_vec();
    short_args.extend(["--client-timeout-ms", "5"]);
    let short = json(&short_args);
    assert!(
        short["ops_info"].as_u64().unwrap() > default["ops_info"].as_u64().unwrap(),
        "a 5 ms timeout leaves more operations indeterminate: {} vs {}",
        short["ops_info"],
        default["ops_info"]
    );
    let replay = short["replay"].as_str().unwrap();
    assert!(replay.contains("--client-timeout-ms 5"), "{replay}");
    assert!(!default["replay"].as_str().unwrap().contains("--client-timeout-ms"));
    let mut args = replay_args(replay);
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = json(&args);
    for key in ["ops_ok", "ops_fail", "ops_info", "messages_sent", "linearizable"] {
        assert_eq!(again[key], short[key], "{key} differs on replay");
    }
}

/// A run that ran away ends: this one (a CatchUp/Chosen ping-pong between
/// two multi-paxos nodes, doubled by message duplication) once grew its
/// event queue past 3 GB while simulated time stood still. The runaway
/// budgets made it end as a `runaway` violation; the follower now waits out
/// an answer that did not move it on, so the run finishes, far below every
/// budget, and its replay is the same run. (Runaway runs themselves are
/// tested in crates/sim/tests/runaway.rs, with a protocol that storms.)
#[test]
fn the_seed_that_hung_the_laboratory_finishes_and_replays() {
    let args = [
        "sim",
        "--protocol",
        "multi-paxos",
        "--bug",
        "unconfirmed-reads",
        "--nodes",
        "3",
        "--seed",
        "469",
        "--faults",
        "all",
        "--json",
    ];
    let run = json(&args);
    assert!(run.get("runaway").is_none(), "{run}");
    assert!(run["peaks"]["events_per_ms"].as_u64().unwrap() < 1_000, "{run}");
    let mut replay = replay_args(run["replay"].as_str().unwrap());
    replay.push("--json".into());
    let replay: Vec<&str> = replay.iter().map(String::as_str).collect();
    let again = json(&replay);
    assert_eq!(again["violations"], run["violations"]);
    assert_eq!(again["events"], run["events"]);
}
