//! `quorum model` through the real binary: its exit codes, and a
//! counterexample that `quorum script` replays to the same violation.

mod common;

use common::{json, quorum};

#[test]
fn a_violation_exits_1_with_a_script_that_replays_it() {
    let path = std::env::temp_dir().join(format!("quorum-model-{}.txt", std::process::id()));
    let file = path.to_str().unwrap();
    let args =
        ["model", "--protocol", "2pc", "--bug", "no-force-prepare", "--crashes", "1", "--script", file];
    let out = quorum(&args);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("VIOLATED: atomicity"), "{stdout}");
    let replay = quorum(&["script", "--check", file]);
    std::fs::remove_file(&path).ok();
    let text = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0), "the script's outputs are what it prints: {text}");
    assert!(text.contains("# atomicity: VIOLATED"), "{text}");
}

#[test]
fn the_correct_protocol_holds_and_the_json_says_how_much_was_searched() {
    let run = json(&["model", "--protocol", "2pc", "--crashes", "1", "--json"]);
    let outcome = &run["outcome"];
    assert!(outcome["violation"].is_null(), "{run}");
    assert!(outcome["states"].as_u64().unwrap() > 100, "{run}");
    assert_eq!(outcome["gave_up"], false);
    assert_eq!(run["model"]["budgets"]["crashes"], 1);
}

#[test]
fn a_search_that_runs_out_of_states_exits_3() {
    let out = quorum(&["model", "--protocol", "paxos", "--max-states", "500"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gave up after 500 states"));
}

#[test]
fn bad_model_input_is_one_line_and_exit_2() {
    for args in [
        &["model", "--protocol", "paxos", "--faults", "fire"][..],
        &["model", "--protocol", "paxos", "--request", "write 1 10"],
        &["model", "--protocol", "paxos", "--request", "7:write 1 10"],
        &["model", "--protocol", "paxos", "--request", "0:frobnicate"],
        &["model", "--protocol", "nope"],
    ] {
        let out = quorum(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// The two generals with no flag but the protocol (2 nodes, inputs first,
/// dawns allowed): no loss, no split; one loss, a general attacks alone;
/// `--chain` prints the runs that look alike and exits 1 on the split.
#[test]
fn two_generals_agree_without_loss_and_split_with_one() {
    let safe = quorum(&["model", "--protocol", "two-generals"]);
    assert_eq!(safe.status.code(), Some(0), "{}", String::from_utf8_lossy(&safe.stdout));
    let lossy = quorum(&["model", "--protocol", "two-generals", "--losses", "1"]);
    assert_eq!(lossy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lossy.stdout).contains("VIOLATED: consensus: agreement"));
    let chain = quorum(&["model", "--protocol", "two-generals", "--config", r#"{"messages":2}"#, "--chain"]);
    let text = String::from_utf8_lossy(&chain.stdout);
    assert_eq!(chain.status.code(), Some(1), "{text}");
    assert!(text.contains("n1 cannot tell R0 from R1") && text.contains("SPLIT"), "{text}");
    let mixed = quorum(&["model", "--protocol", "two-generals", "--chain", "--losses", "1"]);
    assert_eq!(mixed.status.code(), Some(2), "--chain drives its own runs: a budget is a usage error");
    let three = quorum(&["model", "--protocol", "two-generals", "--nodes", "3"]);
    assert_eq!(three.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&three.stderr).contains("two generals need 2 nodes"));
}

/// `quorum model --protocol raft --flp`: exit 0 with a lasso and a script
/// that replays; too few steps for a loop is exit 3; a protocol not read
/// as binary consensus, or a fault budget (FLP loses nothing), exit 2.
#[test]
fn flp_prints_a_lasso_and_refuses_what_it_cannot_do() {
    let path = std::env::temp_dir().join(format!("quorum-flp-{}.txt", std::process::id()));
    let file = path.to_str().unwrap();
    let out = quorum(&["model", "--protocol", "raft", "--flp", "--script", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("bivalent") && stdout.contains("lasso           a stem of"), "{stdout}");
    let replay = quorum(&["script", "--check", file]);
    std::fs::remove_file(&path).ok();
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stdout));
    let short = quorum(&["model", "--protocol", "raft", "--flp", "--steps", "5"]);
    assert_eq!(short.status.code(), Some(3));
    for args in [
        &["model", "--protocol", "abd", "--flp"][..],
        &["model", "--protocol", "paxos", "--flp", "--losses", "1"][..],
        &["model", "--protocol", "paxos", "--steps", "5"][..],
    ] {
        let out = quorum(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1, "{args:?}");
    }
}
