//! Raft and ZAB through the real binary: each `--bug` negative control is
//! caught by a checker within a bounded number of seeds, on a run that the
//! printed replay command reproduces; and the replay command carries every
//! non-default setting.

mod common;

use common::{json, replay_args};

fn explore(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["explore", "--json"];
    all.extend_from_slice(args);
    json(&all)
}

fn count(report: &serde_json::Value, kind: &str) -> u64 {
    report["violations"][kind].as_u64().unwrap_or(0)
}

/// Run the first violation's replay command; its JSON outcome.
fn replay(report: &serde_json::Value) -> serde_json::Value {
    let first = &report["first"];
    assert!(first.is_object(), "a violating explore reports its first violation: {report}");
    let mut args = replay_args(first["replay"].as_str().expect("replay is a string"));
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    json(&args)
}

fn kinds(run: &serde_json::Value) -> Vec<String> {
    run["violations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// Explore `options` with `--bug bug`, focused on `kind`: some run must
/// show `kind`, and so must the replay of the first (shrunk) one. Returns
/// the report.
fn assert_caught(options: &[&str], bug: &str, kind: &str) -> serde_json::Value {
    let mut args = options.to_vec();
    args.extend(["--bug", bug, "--focus", kind]);
    let report = explore(&args);
    assert!(count(&report, kind) > 0, "{report}");
    let run = replay(&report);
    assert!(kinds(&run).contains(&kind.to_string()), "{run}");
    report
}

/// The option set under which explore finds a double vote: five nodes (more
/// voters, more split votes), no pre-vote or check-quorum (candidates stand
/// at once), `kill` (a voter dies just as its answer leaves) and `loss`
/// (lost votes make split votes and candidate retries likelier).
const DOUBLE_VOTE_OPTIONS: [&str; 10] = [
    "--protocol",
    "raft",
    "--nodes",
    "5",
    "--faults",
    "kill,loss",
    "--config",
    r#"{"pre_vote":false,"check_quorum":false}"#,
    "--seeds",
    "135",
];

/// Raft §5.2 (figure 2: votedFor is persistent state). With the vote not
/// forced to the log, a voter killed just after answering and restarted
/// within 50 ms (the `kill` fault) forgets it and votes again in the same
/// term: two leaders in one term. The double vote needs a split vote at
/// the moment of the kill, so it is rare: one run in 1,500 under these
/// options (seed 134); the seed window is fixed, so the test is
/// deterministic. The script
/// `crates/protocols/scenarios/raft/no_persist_vote_double_vote.txt` shows
/// the interleaving step by step.
#[test]
fn raft_no_persist_vote_elects_two_leaders_in_one_term() {
    assert_caught(&DOUBLE_VOTE_OPTIONS, "no-persist-vote", "election_safety");
}

/// The positive twin: with the vote persisted, the same seeds keep every
/// promise.
#[test]
fn raft_survives_kills_with_the_vote_persisted() {
    let report = explore(&DOUBLE_VOTE_OPTIONS);
    assert_eq!(report["violating_runs"], 0, "{report}");
    assert_eq!(report["runs_live"], 135, "{report}");
}

/// The option set under which explore finds Raft's figure 8 (§5.4.2): five
/// nodes; no pre-vote or check-quorum (a restarted node with a stale log
/// may stand at once, as in the paper's figure); `crash-leader` cuts each
/// leader's next disk write short with the entry on a minority, and
/// restarts it 0.2–1.5 s later; `--max-down 4` lets three leaders in a row
/// be down before the first is back.
const FIGURE_8_OPTIONS: [&str; 12] = [
    "--protocol",
    "raft",
    "--nodes",
    "5",
    "--faults",
    "crash-leader",
    "--max-down",
    "4",
    "--config",
    r#"{"pre_vote":false,"check_quorum":false}"#,
    "--seeds",
    "100",
];

/// Raft §5.4.2, figure 8, found by explore rather than scripted: a leader
/// dies with its entry on two nodes; the next leader (without it) dies
/// with a conflicting entry of its own term at the same index; a holder
/// of the first entry is elected, and with the bug commits it by counting
/// replicas (and applies it); it dies before an entry of its own term
/// spreads, and the holder of the conflicting entry wins and overwrites
/// the applied index. `crates/protocols/scenarios/raft/
/// figure8_commit_old_term_bug.txt` shows the interleaving step by step.
/// About one run in 18 (55 of 1,000; the first is seed 51).
#[test]
fn raft_commit_old_term_overwrites_an_applied_entry_under_leader_crashes() {
    let report = assert_caught(&FIGURE_8_OPTIONS, "commit-old-term", "log_safety");
    let command = report["first"]["replay"].as_str().unwrap();
    assert!(command.contains("crash-leader=") && command.contains("--max-down 4"), "{command}");
}

/// The positive twin: committing only entries of the leader's own term by
/// counting (and the new leader's no-op), the same 100 runs keep every
/// promise and all finish after the heal.
#[test]
fn raft_survives_leader_crashes_with_the_current_term_rule() {
    let report = explore(&FIGURE_8_OPTIONS);
    assert_eq!(report["violating_runs"], 0, "{report}");
    assert_eq!(report["runs_live"], 100, "{report}");
}

/// diss. §6.4: reads served from local state without ReadIndex are stale
/// on a deposed leader or a lagging follower.
#[test]
fn raft_stale_read_is_not_linearizable() {
    let report = explore(&[
        "--protocol",
        "raft",
        "--bug",
        "stale-read",
        "--nodes",
        "3",
        "--faults",
        "partition",
        "--seeds",
        "30",
        "--focus",
        "linearizability",
    ]);
    assert!(count(&report, "linearizability") > 0, "{report}");
    assert!(kinds(&replay(&report)).contains(&"linearizability".to_string()));
}

/// diss. §6.3: clients retry a timed-out write with the same request id
/// (`--retries`, on by default for raft). Without the session table the
/// retry is applied a second time, after later writes to its key, and a
/// read then sees the overwritten value again.
#[test]
fn raft_without_sessions_applies_a_retried_write_twice() {
    let report = explore(&[
        "--protocol",
        "raft",
        "--bug",
        "no-sessions",
        "--nodes",
        "3",
        "--faults",
        "all",
        "--seeds",
        "100",
        "--focus",
        "linearizability",
    ]);
    assert!(count(&report, "linearizability") > 0, "{report}");
    let run = replay(&report);
    assert!(kinds(&run).contains(&"linearizability".to_string()), "{run}");
    assert!(report["first"]["replay"].as_str().unwrap().contains("--retries 2"), "{report}");
}

/// The positive twin: the same runs, with sessions, are linearizable, and
/// without retries the negative control has nothing to duplicate.
#[test]
fn raft_sessions_make_retried_writes_apply_once() {
    let with_sessions = explore(&["--protocol", "raft", "--nodes", "3", "--faults", "all", "--seeds", "100"]);
    assert_eq!(with_sessions["violating_runs"], 0, "{with_sessions}");
    let no_retries = explore(&[
        "--protocol",
        "raft",
        "--bug",
        "no-sessions",
        "--retries",
        "0",
        "--nodes",
        "3",
        "--faults",
        "all",
        "--seeds",
        "100",
    ]);
    assert_eq!(no_retries["violating_runs"], 0, "{no_retries}");
}

/// ZAB: a leader that commits without a quorum of ACKs loses committed
/// proposals when it fails, and the checkers see it.
#[test]
fn zab_commit_without_quorum_breaks_log_safety() {
    let report = explore(&[
        "--protocol",
        "zab",
        "--bug",
        "commit-without-quorum",
        "--nodes",
        "3",
        "--faults",
        "crash,partition",
        "--seeds",
        "100",
        "--focus",
        "log_safety",
    ]);
    assert!(count(&report, "log_safety") > 0, "{report}");
    assert!(count(&report, "linearizability") > 0, "{report}");
    assert!(kinds(&replay(&report)).contains(&"log_safety".to_string()));
}

/// The replay command carries every setting that differs from the
/// defaults (--safety-ms, --liveness-ms, --ops, --clients, --keys,
/// --config, ...), so the run it prints is the run that was judged.
#[test]
fn replay_commands_carry_non_default_settings() {
    let report = explore(&[
        "--protocol",
        "raft",
        "--bug",
        "stale-read",
        "--config",
        r#"{"heartbeat_interval":20000}"#,
        "--nodes",
        "3",
        "--ops",
        "200",
        "--clients",
        "4",
        "--keys",
        "2",
        "--safety-ms",
        "3000",
        "--liveness-ms",
        "8000",
        "--faults",
        "partition",
        "--seeds",
        "30",
        "--focus",
        "linearizability",
    ]);
    let first = &report["first"];
    let command = first["replay"].as_str().expect("a violation was found");
    for flag in [
        "--safety-ms 3000",
        "--liveness-ms 8000",
        "--ops 200",
        "--clients 4",
        "--keys 2",
        "heartbeat_interval",
    ] {
        assert!(command.contains(flag), "{flag} missing from {command}");
    }
    let run = replay(&report);
    assert_eq!(run["schedule"], first["schedule"]);
    assert_eq!(kinds(&run), kinds(first), "{command}");
}

/// Regression (found by `quorum explore --protocol zab --nodes 3 --seeds
/// 20000 --faults all`, seed 9075): a follower killed and restarted rejoined
/// the same leader in the same epoch under a new session; a DIFF delayed
/// from its earlier session then arrived while it waited for its new sync,
/// was taken as its NEWLEADER, and truncated proposals it had applied
/// ("TRUNC never drops a committed proposal"). Syncs now name the session.
#[test]
fn zab_ignores_a_sync_from_an_earlier_session() {
    let run = json(&[
        "sim",
        "--protocol",
        "zab",
        "--nodes",
        "3",
        "--seed",
        "9075",
        "--schedule",
        "318:delay=75,555:kill=1+47,840:part=0|1.2,942:dup=0.19",
        "--json",
    ]);
    assert!(run.get("panic").is_none(), "{run}");
    assert_eq!(kinds(&run), Vec::<String>::new(), "{run}");
}
