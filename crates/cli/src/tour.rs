//! `quorum tour`: the main job until the server exists. Each protocol runs
//! under the faults that matter for it, over a few seeds, and the checkers'
//! verdicts are printed next to what the source text says should happen.

use std::process::ExitCode;

use quorum_sim::SimConfig;

use crate::UsageError;

struct Stop {
    protocol: &'static str,
    variant: Option<&'static str>,
    faults: &'static str,
    expect: &'static str,
    /// The violation kind whose first occurrence is shrunk and replayed.
    focus: Option<&'static str>,
}

const STOPS: &[Stop] = &[
    Stop {
        protocol: "sync",
        variant: None,
        faults: "all",
        expect: "no violation; writes refused while a node is down",
        focus: None,
    },
    Stop {
        protocol: "async",
        variant: None,
        faults: "crash",
        expect: "acknowledged writes lost when the primary crashes",
        focus: Some("lost_acked_writes"),
    },
    Stop {
        protocol: "async",
        variant: None,
        faults: "partition",
        expect: "stale reads (not linearizable); converges after heal",
        focus: Some("linearizability"),
    },
    Stop {
        protocol: "primary-backup",
        variant: Some("async"),
        faults: "crash",
        expect: "lost updates after failover",
        focus: Some("lost_acked_writes"),
    },
    Stop {
        protocol: "primary-backup",
        variant: Some("sync"),
        faults: "partition",
        expect: "split-brain",
        focus: Some("split_brain"),
    },
    Stop {
        protocol: "primary-backup",
        variant: Some("async"),
        faults: "partition",
        expect: "split-brain",
        focus: Some("split_brain"),
    },
    Stop {
        protocol: "abd",
        variant: None,
        faults: "all",
        expect: "no violation: linearizable from majorities alone",
        focus: None,
    },
    Stop {
        protocol: "paxos",
        variant: None,
        faults: "all",
        expect: "no violation: Agreement, Validity, Integrity per key",
        focus: None,
    },
    Stop {
        protocol: "multi-paxos",
        variant: None,
        faults: "all",
        expect: "no violation: a linearizable replicated log",
        focus: None,
    },
    Stop {
        protocol: "raft",
        variant: None,
        faults: "all",
        expect: "no violation: a linearizable replicated log",
        focus: None,
    },
    Stop {
        protocol: "zab",
        variant: None,
        faults: "all",
        expect: "no violation: primary order, linearizable",
        focus: None,
    },
    Stop {
        protocol: "2pc",
        variant: None,
        faults: "crash",
        expect: "no violation: atomic, balances conserved; cohorts block while the coordinator is down",
        focus: None,
    },
    Stop {
        protocol: "3pc",
        variant: None,
        faults: "crash",
        expect:
            "no violation; under fail-stop crashes cohorts terminate without the coordinator (shorter tail)",
        focus: None,
    },
    Stop {
        protocol: "3pc",
        variant: None,
        faults: "partition",
        expect: "split decision under partition (the text's scenario)",
        focus: Some("atomicity"),
    },
];

pub fn tour(seeds: u64) -> Result<ExitCode, UsageError> {
    if seeds == 0 {
        return Err(UsageError("--seeds must be at least 1".into()));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "quorum tour: {seeds} seeds per stop, 5 nodes, 300 ops each; every verdict replays from its seed.\n"
    );
    println!(
        "{:<30} {:<10} {:>6} {:>10}  {:<44} expected",
        "protocol", "faults", "runs", "violating", "violations (runs)"
    );
    let mut replays = Vec::new();
    for stop in STOPS {
        let registered = quorum_registry::find(stop.protocol)?;
        let choice = registered.choose(stop.variant, None, None)?;
        let mut config = registered.sim_config(choice);
        config.faults = stop.faults.parse().map_err(|e| UsageError(format!("{e}")))?;
        config.max_down = SimConfig::minority(config.nodes);
        registered.validate(&config.protocol, config.nodes)?;
        let focus: Vec<quorum_sim::Violation> =
            stop.focus.iter().map(|f| f.parse().expect("the tour names known kinds")).collect();
        let run = |c: &SimConfig| registered.run(c, false).expect("settings validated");
        let report = quorum_sim::explore(&config, seeds, threads, &focus, &run, &|| {});
        let kinds: Vec<String> =
            report.violations.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} ({n})")).collect();
        let label = match stop.variant {
            Some(v) => format!("{} --variant {v}", stop.protocol),
            None => stop.protocol.to_string(),
        };
        let kinds = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") };
        println!(
            "{label:<30} {:<10} {:>6} {:>10}  {kinds:<44} {}",
            stop.faults, report.runs, report.violating_runs, stop.expect
        );
        if let Some(t) = &report.txn {
            println!(
                "{:<30} in doubt while up: p50 {} ms, p99 {} ms, max {} ms",
                "", t.blocked_ms_p50, t.blocked_ms_p99, t.blocked_ms_max
            );
        }
        if let Some(first) = report.first {
            replays.push(crate::replay::command(&first.replay));
        }
    }
    if !replays.is_empty() {
        println!("\nreplay the first violation of each stop (shrunk):");
        for r in replays {
            println!("  {r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
