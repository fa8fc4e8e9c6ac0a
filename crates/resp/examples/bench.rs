//! A stand-in for `quorum bench` until the CLI wires the same flags: runs
//! [`quorum_resp::bench::run`] and prints the report as text or JSON.
//!
//! ```text
//! cargo run --release -p quorum-resp --example bench -- \
//!     --addr 127.0.0.1:6379 --target resp --clients 16 --seconds 5 --write-ratio 0.5 --json
//! ```

use anyhow::Context;
use clap::Parser;
use quorum_resp::bench::{self, BenchConfig, Target};

#[derive(Parser, Debug)]
#[command(about = "Closed-loop load generator for RESP servers (quorum, Redis) and etcd's JSON gateway")]
struct Args {
    /// Server address, host:port.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// resp (quorum, Redis) or etcd (v3 JSON gateway).
    #[arg(long, default_value = "resp")]
    target: Target,
    /// Concurrent connections, one operation outstanding on each.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Stop after this many measured operations.
    #[arg(long)]
    ops: Option<u64>,
    /// Stop after this many measured seconds (default 10 unless --ops is given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Fraction of operations that are writes.
    #[arg(long, default_value_t = 0.5)]
    write_ratio: f64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keyspace: u64,
    /// AUTH password (resp target).
    #[arg(long)]
    password: Option<String>,
    /// After each SET, WAIT for this many replicas (Redis).
    #[arg(long)]
    wait_replicas: Option<u32>,
    /// Unmeasured seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Write every key once before the run.
    #[arg(long)]
    preload: bool,
    /// Seed of the per-client random streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds before an unanswered operation is an error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = match (args.ops, args.seconds) {
        (None, None) => Some(10.0),
        (_, seconds) => seconds,
    };
    let config = BenchConfig {
        addr: args.addr,
        target: args.target,
        clients: args.clients,
        ops: args.ops,
        seconds,
        write_ratio: args.write_ratio,
        value_size: args.value_size,
        keyspace: args.keyspace,
        password: args.password,
        wait_replicas: args.wait_replicas,
        warmup_seconds: args.warmup,
        preload: args.preload,
        seed: args.seed,
        op_timeout_seconds: args.timeout,
    };
    let report = bench::run(&config).await.context("benchmark failed")?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(())
}
