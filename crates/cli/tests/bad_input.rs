//! Bad input gets a one-line error and exit code 2; nothing panics.

mod common;

use common::quorum;

fn rejects(args: &[&str], needle: &str) {
    let out = quorum(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "quorum {args:?}: {stderr}");
    assert!(stderr.contains(needle), "quorum {args:?}: expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn unknown_protocol() {
    rejects(&["sim", "--protocol", "paxos-ish"], "unknown protocol 'paxos-ish'");
    rejects(&["explore", "--protocol", "nope", "--seeds", "1"], "unknown protocol");
}

#[test]
fn unknown_fault_and_variant() {
    rejects(&["sim", "--protocol", "abd", "--faults", "crash,flood"], "unknown fault 'flood'");
    rejects(&["sim", "--protocol", "primary-backup", "--variant", "eager"], "unknown variant 'eager'");
    rejects(&["sim", "--protocol", "abd", "--variant", "sync"], "has no variants");
}

#[test]
fn impossible_parameters() {
    rejects(&["sim", "--protocol", "abd", "--nodes", "0"], "--nodes");
    rejects(&["sim", "--protocol", "abd", "--nodes", "2", "--faults", "crash"], "cannot bear");
    rejects(&["sim", "--protocol", "abd", "--nodes", "3", "--max-down", "3"], "--max-down");
    rejects(
        &["sim", "--protocol", "abd", "--nodes", "1", "--faults", "partition", "--max-down", "0"],
        "partition",
    );
    rejects(&["sim", "--protocol", "abd", "--schedule", "10:crash=9"], "only 5 nodes");
    rejects(&["sim", "--protocol", "abd", "--schedule", "soon:crash=1"], "bad --schedule");
    rejects(&["explore", "--protocol", "abd", "--seeds", "0"], "--seeds");
    rejects(&["sim", "--protocol", "abd", "--client-timeout-ms", "0"], "--client-timeout-ms");
    rejects(&["fast-paxos-collisions", "--proposers", "6"], "--proposers 6");
    rejects(&["fast-paxos-collisions", "--nodes", "2"], "--nodes");
}

#[test]
fn malformed_histories() {
    let dir = std::env::temp_dir().join(format!("quorum-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"process\":0}\n{\"type\":\"ok\",\"f\":\"teleport\"\n").unwrap();
    rejects(&["check", bad.to_str().unwrap()], "line 2");
    let edn = dir.join("bad.edn");
    std::fs::write(
        &edn,
        "{:type :invoke, :f :write, :value 1, :process 0}\n{:type :ok :f :write :value 1 :process 7}\n",
    )
    .unwrap();
    rejects(&["check", edn.to_str().unwrap()], "line 2");
    rejects(&["check", dir.join("missing.jsonl").to_str().unwrap()], "cannot read");
    std::fs::remove_dir_all(&dir).ok();
}

/// A history no model takes, an op the chosen model does not take, a value
/// that does not suit it, or a file in another format than the one named:
/// one line naming the line, exit code 2.
#[test]
fn histories_that_do_not_fit_the_model_or_the_format() {
    let dir = std::env::temp_dir().join(format!("quorum-bad-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let mixed = file("mixed.edn", "{:type :invoke, :f :write, :value 1, :process 0}\n{:type :invoke, :f :enqueue, :value 1, :process 1}\n");
    rejects(&["check", &mixed], "line 2: :enqueue does not go with :write (line 1) in any one model");
    let register = file("register.edn", "{:type :invoke, :f :write, :value 1, :process 0}\n");
    rejects(&["check", &register, "--model", "queue"], "line 1: the queue model has no :write");
    rejects(&["check", &register, "--format", "json"], "line 1: an EDN op map in a JSON lines history");
    rejects(
        &["check", &register, "--format", "porcupine-kv"],
        "line 1: :f :write in a Porcupine key-value history",
    );
    let list = file("list.edn", "{:type :invoke, :f :append, :value 1, :process 0}\n{:type :ok, :f :append, :value 1, :process 0}\n{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :value 1, :process 0}\n");
    rejects(
        &["check", &list, "--model", "list-append"],
        "line 4: an ok :read of a list returns a vector or nil, not 1",
    );
    rejects(&["check", &register, "--model", "stack"], "invalid value 'stack' for '--model");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["--help"][..],
        &["sim", "--help"],
        &["explore", "--help"],
        &["check", "--help"],
        &["list", "--help"],
        &["tour", "--help"],
    ] {
        let out = quorum(cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{cmd:?}");
    }
}

/// Errors the argument parser finds are one line too, and name what is wrong.
#[test]
fn command_line_errors_are_one_line() {
    rejects(&["serve", "--id", "0", "--data-dir", "/nonexistent"], "--cluster-secret");
    rejects(&["serve", "--id", "x"], "invalid value 'x' for '--id");
    rejects(&["no-such-command"], "unrecognized subcommand 'no-such-command'");
    rejects(&["sim", "--no-such-flag"], "'--no-such-flag'");
    rejects(&["bench", "--ops", "5", "--seconds", "3"], "cannot be used with");
    let help = quorum(&["sim", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--seed"));
}

/// A setting the protocol refuses, for every protocol: each `Config::validate`
/// through the contract's `Protocol::validate`, one line and exit code 2 in
/// every driver, never a panic or a `panic` violation.
const REFUSED_SETTINGS: &[(&str, &str, &str)] = &[
    ("sync", r#"{"batch_ops_max":0}"#, "batch_ops_max"),
    ("async", r#"{"push_entries_max":0}"#, "push_entries_max"),
    ("primary-backup", r#"{"heartbeat_interval":0}"#, "heartbeat_interval"),
    ("abd", r#"{"checkpoint_every_records":0}"#, "checkpoint_every_records"),
    ("paxos", r#"{"acceptors":[0,7]}"#, "acceptors names node 7"),
    ("multi-paxos", r#"{"batch_max":0}"#, "batch_max"),
    ("fast-paxos", r#"{"backoff_max":1}"#, "backoff_max must be at least backoff_base"),
    ("raft", r#"{"batch_entries_max":0}"#, "batch_entries_max"),
    ("zab", r#"{"lease_percent":0}"#, "lease_percent"),
    ("2pc", r#"{"rounds_max":0}"#, "rounds_max"),
    ("3pc", r#"{"rounds_max":0}"#, "rounds_max"),
    ("two-generals", r#"{"messages":0}"#, "messages must be 1 to 64"),
    ("ben-or", r#"{"waiters_max":0}"#, "waiters_max"),
    ("om", r#"{"m":9}"#, "m must be at most 3"),
    ("sm", r#"{"waiters_max":0}"#, "round, instances and waiters_max must be positive"),
    ("crdt", r#"{"full_state_every":0}"#, "full_state_every"),
];

/// Traitors only where a protocol runs with them, on nodes that exist, with
/// a strategy that parses.
#[test]
fn bad_traitors_are_usage_errors() {
    rejects(&["sim", "--protocol", "raft", "--byzantine", "1"], "does not run with traitors");
    rejects(&["sim", "--protocol", "om", "--nodes", "4", "--byzantine", "9"], "names node 9 of only 4");
    rejects(&["sim", "--protocol", "om", "--byzantine", "1", "--strategy", "fib"], "unknown tactic 'fib'");
    rejects(
        &["sim", "--protocol", "om", "--nodes", "4", "--byzantine", "1", "--strategy", "equivocate@01"],
        "one bit per node",
    );
    rejects(&["byzantine-table", "--m-max", "0"], "--m-max");
}

#[test]
fn refused_settings_are_usage_errors_in_every_driver() {
    let listed: serde_json::Value = serde_json::from_slice(&quorum(&["list", "--json"]).stdout).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"raft"), "{names:?}");
    for name in &names {
        assert!(REFUSED_SETTINGS.iter().any(|(p, _, _)| p == name), "no refused setting for {name}");
    }
    let dir = std::env::temp_dir().join(format!("quorum-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (protocol, config, needle) in REFUSED_SETTINGS {
        rejects(&["sim", "--protocol", protocol, "--config", config], needle);
        rejects(&["explore", "--protocol", protocol, "--config", config, "--seeds", "2"], needle);
        let script = dir.join(format!("{protocol}.txt"));
        std::fs::write(&script, format!("cluster 3 protocol={protocol} config={config}\n----\n\n")).unwrap();
        rejects(&["script", script.to_str().unwrap()], needle);
    }
    // An election timeout of 0 is refused, not reported as a protocol panic.
    rejects(&["sim", "--protocol", "raft", "--config", r#"{"election_timeout_min":0}"#], "election_timeout");
    std::fs::remove_dir_all(&dir).ok();
}
