//! Helpers shared by the CLI tests: run the real `quorum` binary.

#![allow(dead_code)]

use std::process::{Command, Output};

pub fn quorum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorum")).args(args).output().expect("the quorum binary runs")
}

pub fn json(args: &[&str]) -> serde_json::Value {
    let out = quorum(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "quorum {args:?} did not print one JSON object ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Split a replay command (`quorum sim ... --schedule '...'`) into arguments.
pub fn replay_args(replay: &str) -> Vec<String> {
    let rest = replay.strip_prefix("quorum ").expect("replays start with 'quorum '");
    let mut args = Vec::new();
    let mut quoted = false;
    let mut current = String::new();
    for ch in rest.chars() {
        match ch {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}
