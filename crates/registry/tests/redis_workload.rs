//! The Redis workload (`--workload redis`): `GET`, `SET ... PX`, `MSET`
//! and `MULTI` / `EXEC` over raft, zab and multi-paxos, stamped by the
//! node that takes each command, with clocks skewed, judged by the
//! multi-key checker. Short here; the 10,000-seed runs are the README's
//! commands. The negative control: stamps from the clients' own clocks
//! (`--bug expiry-by-local-clock`) let two clients see one key expire at
//! two different times, which default exploration catches.

use quorum_registry::{Registered, PROTOCOLS, WORKLOAD_BUG};
use quorum_sim::{ExploreReport, SimConfig, WorkloadKind};

fn explore(registered: &Registered, bug: Option<&str>, seeds: u64, start: u64) -> ExploreReport {
    let choice = registered.choose(None, bug, None).expect("the workload's bug parses");
    let mut config = registered.sim_config(choice);
    config.workload = WorkloadKind::Redis;
    config.seed = start;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |c: &SimConfig| registered.run(c, false).expect("valid settings");
    quorum_sim::explore(&config, seeds, threads, &[], &run, &|| {})
}

#[test]
fn the_log_protocols_speak_redis_and_the_others_do_not() {
    let speakers: Vec<&str> = PROTOCOLS.iter().filter(|r| r.speaks_redis()).map(|r| r.entry.name).collect();
    assert_eq!(speakers, ["multi-paxos", "raft", "zab"]);
    let abd = quorum_registry::find("abd").unwrap();
    assert!(abd.choose(None, Some(WORKLOAD_BUG), None).is_err(), "abd has no redis workload, so no such bug");
}

/// Every command acknowledged somewhere, every run linearizable, live and
/// converged, under the swarm's faults and clock skews.
#[test]
fn raft_zab_and_multi_paxos_keep_every_promise_with_redis_commands() {
    for name in ["raft", "zab", "multi-paxos"] {
        let report = explore(quorum_registry::find(name).unwrap(), None, 40, 0);
        assert_eq!(report.violating_runs, 0, "{name}: {:?} first {:?}", report.violations, report.first);
        assert!(report.ops_ok > 40 * 100, "{name}: {} ops ok", report.ops_ok);
    }
}

/// The negative control: the first seed of default exploration that
/// catches the bug (`quorum explore --protocol raft --workload redis --bug
/// expiry-by-local-clock`), a linearizability violation, and the same seed
/// without the bug is clean.
#[test]
fn expiry_by_local_clock_is_caught() {
    let raft = quorum_registry::find("raft").unwrap();
    let report = explore(raft, Some(WORKLOAD_BUG), 100, 0);
    assert!(report.violations["linearizability"] > 0, "{:?}", report.violations);
    let first = report.first.as_ref().expect("a violating seed");
    let clean = explore(raft, None, 1, first.seed);
    assert_eq!(clean.violating_runs, 0, "seed {} without the bug: {:?}", first.seed, clean.violations);
}
