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
