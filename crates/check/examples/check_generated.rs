//! Generate a history, optionally corrupt it with a stale read, check it and
//! print the report as JSON with the time taken.
//!
//! `cargo run -p quorum-check --example check_generated -- [ops] [clients] [keys] [seed] [stale]`

use std::time::Instant;

use quorum_check::{gen, linearizability, Model};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (ops, clients, keys, seed) = (arg(0, 10_000), arg(1, 8), arg(2, 8), arg(3, 1));
    let stale = args.get(4).is_some_and(|a| a == "stale");
    let mut history = gen::generate_history(seed, ops as usize, clients as usize, keys);
    if stale {
        assert!(gen::inject_stale_read(&mut history, seed), "no read fits a stale value");
    }
    let started = Instant::now();
    let report = linearizability::check(&history, Model::Kv);
    let elapsed = started.elapsed();
    println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
    eprintln!("checked {} events in {:.3} ms", history.ops.len(), elapsed.as_secs_f64() * 1e3);
}
