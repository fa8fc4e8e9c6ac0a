//! Explore: many seeds over all cores; the first violating run is shrunk
//! (fault schedule entries deleted while the violation persists) and reported
//! with a one-line replay command.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::config::SimConfig;
use crate::faults::Schedule;
use crate::outcome::{Peaks, Replay, RunOutcome, Violation};
use crate::world::replay_of;

/// The smallest-seeded violating run, after shrinking.
#[derive(Clone, Debug, Serialize)]
pub struct FirstViolation {
    pub seed: u64,
    pub violations: Vec<Violation>,
    /// Faults in the generated schedule, and after shrinking.
    pub faults_before_shrink: usize,
    pub faults_after_shrink: usize,
    pub schedule: String,
    /// What reproduces it (the CLI prints it as a command).
    #[serde(skip)]
    pub replay: Replay,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExploreReport {
    pub protocol: String,
    pub faults: String,
    pub nodes: u32,
    pub runs: u64,
    pub violating_runs: u64,
    /// The kinds `first` and `focus_runs` look for (empty: any).
    pub focus: Vec<Violation>,
    /// Runs that showed one of `focus` (all violating runs if it is empty).
    pub focus_runs: u64,
    /// Violation kind → number of runs that showed it.
    pub violations: BTreeMap<String, u64>,
    /// Sometimes property → number of runs that reached it (properties no
    /// run reached are absent).
    pub reached: BTreeMap<String, u64>,
    pub first: Option<FirstViolation>,
    /// Writes refused without effect, over all runs (how often the protocol
    /// chose consistency over availability).
    pub writes_failed: u64,
    pub runs_with_failed_writes: u64,
    /// Runs in which every client finished after heal.
    pub runs_live: u64,
    pub ops_ok: u64,
    pub ops_fail: u64,
    pub ops_info: u64,
    pub events: u64,
    pub sim_time_ms: u64,
    /// The largest of each run's peaks: how close the healthiest and the
    /// wildest runs came to the runaway budgets.
    pub peaks: Peaks,
    /// The transaction workload's figures over every run (2PC, 3PC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<TxnTotals>,
    /// Failover times over all runs (leader crash to the next leader), in
    /// simulated ms; absent when no leader crashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover_ms: Option<Percentiles>,
    /// The distributions behind the figures, for plots (`explore --html`).
    #[serde(skip)]
    pub samples: Samples,
}

/// Per-run and per-event samples of an exploration, in µs, in seed order.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Each run's median and 99th-percentile update latency (runs with
    /// acknowledged updates only).
    pub update_latency_p50_us: Vec<u64>,
    pub update_latency_p99_us: Vec<u64>,
    /// Every leader crash's time to the next leader, over all runs.
    pub failover_us: Vec<u64>,
}

/// Transaction figures summed over the runs of an explore: the means are
/// over every decided transaction of every run, the percentiles over every
/// (cohort, transaction)'s in-doubt time.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TxnTotals {
    pub decided: u64,
    pub committed: u64,
    pub aborted: u64,
    pub messages_per_txn: f64,
    pub acks_per_txn: f64,
    pub forced_writes_per_txn: f64,
    /// In-doubt time while up, summed over all runs, and its distribution
    /// (milliseconds, each (cohort, transaction) one sample).
    pub blocked_ms_total: u64,
    pub blocked_ms_p50: u64,
    pub blocked_ms_p99: u64,
    pub blocked_ms_max: u64,
    /// (cohort, transaction) pairs still in doubt at the end of their run.
    pub still_in_doubt: u64,
    #[serde(skip)]
    sums: (u64, u64, u64),
    /// Milliseconds in doubt → samples.
    #[serde(skip)]
    histogram: BTreeMap<u64, u64>,
}

impl TxnTotals {
    fn add(&mut self, o: &RunOutcome) {
        let Some(t) = &o.txn else { return };
        self.decided += t.decided;
        self.committed += t.committed;
        self.aborted += t.aborted;
        self.sums.0 += o.messages_sent - o.outcome_acks_sent;
        self.sums.1 += o.outcome_acks_sent;
        self.sums.2 += o.persists;
        self.blocked_ms_total += t.blocked_ms_total;
        self.blocked_ms_max = self.blocked_ms_max.max(t.blocked_ms_max);
        self.still_in_doubt += t.still_in_doubt;
        for span in &t.blocked_spans_us {
            *self.histogram.entry(span / 1000).or_default() += 1;
        }
    }

    fn merge(&mut self, other: &TxnTotals) {
        self.decided += other.decided;
        self.committed += other.committed;
        self.aborted += other.aborted;
        self.sums = (self.sums.0 + other.sums.0, self.sums.1 + other.sums.1, self.sums.2 + other.sums.2);
        self.blocked_ms_total += other.blocked_ms_total;
        self.blocked_ms_max = self.blocked_ms_max.max(other.blocked_ms_max);
        self.still_in_doubt += other.still_in_doubt;
        for (ms, count) in &other.histogram {
            *self.histogram.entry(*ms).or_default() += count;
        }
    }

    fn finish(&mut self) {
        let per_txn = |x: u64| if self.decided == 0 { 0.0 } else { x as f64 / self.decided as f64 };
        self.messages_per_txn = per_txn(self.sums.0);
        self.acks_per_txn = per_txn(self.sums.1);
        self.forced_writes_per_txn = per_txn(self.sums.2);
        self.blocked_ms_p50 = self.percentile(50);
        self.blocked_ms_p99 = self.percentile(99);
    }

    /// The smallest sample at or above `p` percent of all samples.
    fn percentile(&self, p: u64) -> u64 {
        let samples: u64 = self.histogram.values().sum();
        let rank = (samples * p).div_ceil(100).max(1);
        let mut seen = 0;
        for (ms, count) in &self.histogram {
            seen += count;
            if seen >= rank {
                return *ms;
            }
        }
        0
    }
}

/// A distribution's summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (µs), reported in ms.
    pub fn of_micros(mut values: Vec<u64>) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: values.len() as u64,
            p50: ms(rank(0.50)),
            p99: ms(rank(0.99)),
            max: ms(*values.last().expect("not empty")),
        })
    }
}

/// Run `seeds` seeds starting at `config.seed`, on `threads` threads.
/// `run` executes one configuration; `progress` is told each finished run.
/// `first` is the smallest-seeded run showing one of `focus` (any kind if
/// empty), and `focus_runs` counts the runs showing one of them;
/// shrunk while it keeps showing that kind.
/// `run` is handed each seed's config as is (a swarm config included) and
/// reports what actually ran in its outcome's replay.
pub fn explore(
    config: &SimConfig,
    seeds: u64,
    threads: usize,
    focus: &[Violation],
    run: &(dyn Fn(&SimConfig) -> RunOutcome + Sync),
    progress: &(dyn Fn() + Sync),
) -> ExploreReport {
    let outcomes = run_seeds(config, seeds, threads, run, progress);
    let mut report = ExploreReport::empty(config, outcomes.len() as u64, focus);
    let mut failover_us = Vec::new();
    let mut first_seed = None;
    for (seed, s) in &outcomes {
        failover_us.extend_from_slice(&s.failover_us);
        if let Some((p50, p99)) = s.update_latency_us {
            report.samples.update_latency_p50_us.push(p50);
            report.samples.update_latency_p99_us.push(p99);
        }
        if report.add(s) {
            first_seed.get_or_insert(*seed);
        }
    }
    if let Some(t) = report.txn.as_mut() {
        t.finish();
    }
    report.samples.failover_us = failover_us.clone();
    report.failover_ms = Percentiles::of_micros(failover_us);
    if let Some(seed) = first_seed {
        let mut c = config.clone();
        c.seed = seed;
        report.first = Some(shrink(&c, focus, run));
    }
    report
}

/// Seeds `config.seed..config.seed + seeds` on `threads` threads, each
/// run's summary in seed order.
fn run_seeds(
    config: &SimConfig,
    seeds: u64,
    threads: usize,
    run: &(dyn Fn(&SimConfig) -> RunOutcome + Sync),
    progress: &(dyn Fn() + Sync),
) -> Vec<(u64, Summary)> {
    let next = AtomicU64::new(0);
    let outcomes: Mutex<Vec<(u64, Summary)>> = Mutex::new(Vec::with_capacity(seeds as usize));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds {
                    break;
                }
                let mut c = config.clone();
                c.seed = config.seed + i;
                let outcome = run(&c);
                outcomes.lock().expect("no thread panics holding it").push((c.seed, Summary::of(&outcome)));
                progress();
            });
        }
    });
    let mut outcomes = outcomes.into_inner().expect("no thread panicked");
    outcomes.sort_by_key(|(seed, _)| *seed);
    outcomes
}

impl ExploreReport {
    fn empty(config: &SimConfig, runs: u64, focus: &[Violation]) -> ExploreReport {
        ExploreReport {
            protocol: config.protocol_name().to_string(),
            faults: match &config.swarm {
                Some(_) if config.schedule.is_none() => "swarm".to_string(),
                _ => config.faults.to_string(),
            },
            nodes: config.nodes,
            runs,
            violating_runs: 0,
            focus: focus.to_vec(),
            focus_runs: 0,
            violations: Violation::ALL.iter().map(|k| (k.name().to_string(), 0)).collect(),
            reached: BTreeMap::new(),
            first: None,
            writes_failed: 0,
            runs_with_failed_writes: 0,
            runs_live: 0,
            ops_ok: 0,
            ops_fail: 0,
            ops_info: 0,
            events: 0,
            sim_time_ms: 0,
            peaks: Peaks::default(),
            txn: None,
            failover_ms: None,
            samples: Samples::default(),
        }
    }

    /// Count one run in; whether it shows one of the focus kinds.
    fn add(&mut self, s: &Summary) -> bool {
        self.writes_failed += s.writes_failed;
        self.runs_with_failed_writes += u64::from(s.writes_failed > 0);
        self.runs_live += u64::from(s.live);
        self.ops_ok += s.ops.0;
        self.ops_fail += s.ops.1;
        self.ops_info += s.ops.2;
        self.events += s.events;
        self.sim_time_ms += s.sim_time_ms;
        self.peaks = self.peaks.max(s.peaks);
        for property in &s.reached {
            *self.reached.entry(property.to_string()).or_default() += 1;
        }
        if let Some(t) = &s.txn {
            self.txn.get_or_insert_with(TxnTotals::default).merge(t);
        }
        if s.violations.is_empty() {
            return false;
        }
        self.violating_runs += 1;
        for kind in &s.violations {
            *self.violations.get_mut(kind.name()).expect("a known kind") += 1;
        }
        let focused = self.focus.is_empty() || self.focus.iter().any(|kind| s.violations.contains(kind));
        self.focus_runs += u64::from(focused);
        focused
    }
}

/// What explore keeps of each run.
struct Summary {
    violations: Vec<Violation>,
    reached: Vec<&'static str>,
    writes_failed: u64,
    live: bool,
    ops: (u64, u64, u64),
    events: u64,
    sim_time_ms: u64,
    peaks: Peaks,
    txn: Option<TxnTotals>,
    failover_us: Vec<u64>,
    /// The run's (p50, p99) update latency, if it acknowledged updates.
    update_latency_us: Option<(u64, u64)>,
}

impl Summary {
    fn of(o: &RunOutcome) -> Summary {
        Summary {
            violations: o.violations.clone(),
            reached: o.reached.clone(),
            writes_failed: o.writes_failed,
            live: o.liveness_ok,
            ops: (o.ops_ok, o.ops_fail, o.ops_info),
            events: o.events,
            sim_time_ms: o.sim_time_ms,
            peaks: o.peaks,
            txn: o.txn.as_ref().map(|_| {
                let mut t = TxnTotals::default();
                t.add(o);
                t
            }),
            failover_us: o.failover_us.clone(),
            update_latency_us: (o.update_latency_us.samples > 0)
                .then_some((o.update_latency_us.p50, o.update_latency_us.p99)),
        }
    }
}

/// Delete fault entries one at a time, keeping each deletion after which the
/// run still shows the `focus` kind (default: the run's first kind); repeat
/// until a pass deletes nothing.
pub fn shrink(
    config: &SimConfig,
    focus: &[Violation],
    run: &(dyn Fn(&SimConfig) -> RunOutcome + Sync),
) -> FirstViolation {
    // The run as it ran, every drawn setting written in and its schedule
    // explicit: what the shrunk schedules are tried against.
    let first = run(config);
    let mut c = first.replay.config.clone();
    let original = c.schedule.clone().unwrap_or_else(|| Schedule::generate(&c));
    c.schedule = Some(original.clone());
    // The kind to keep: the first of `focus` the run shows, else its first.
    let kind = first
        .violations
        .iter()
        .copied()
        .find(|v| focus.contains(v))
        .or_else(|| first.violations.first().copied());
    let mut best = original.clone();
    let mut best_outcome = first;
    loop {
        let mut removed_any = false;
        let mut i = best.len();
        while i > 0 {
            i -= 1;
            let candidate = best.without(i);
            c.schedule = Some(candidate.clone());
            let outcome = run(&c);
            if kind.is_some_and(|kind| outcome.violations.contains(&kind)) {
                best = candidate;
                best_outcome = outcome;
                removed_any = true;
            }
        }
        if !removed_any {
            break;
        }
    }
    FirstViolation {
        seed: config.seed,
        violations: best_outcome.violations.clone(),
        faults_before_shrink: original.len(),
        faults_after_shrink: best.len(),
        schedule: best.to_string(),
        replay: replay_of(&c, &best),
        explanation: best_outcome.linearizability_explanation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_percentiles_count_every_sample() {
        // 98 samples of 1 ms, one of 50, one of 400.
        let histogram = BTreeMap::from([(1, 98), (50, 1), (400, 1)]);
        let mut t = TxnTotals { histogram, decided: 10, sums: (30, 10, 40), ..TxnTotals::default() };
        t.finish();
        assert_eq!((t.blocked_ms_p50, t.blocked_ms_p99), (1, 50));
        assert_eq!((t.messages_per_txn, t.acks_per_txn, t.forced_writes_per_txn), (3.0, 1.0, 4.0));
        assert_eq!(TxnTotals::default().percentile(99), 0, "no samples");
    }
}
