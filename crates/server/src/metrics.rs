//! Counters and gauges the node exports in Prometheus' text format.
//!
//! Plain atomics: the node loop, the log writer and the connection tasks
//! update them without locks; `/metrics` reads a consistent-enough snapshot.
//! Two things sit behind a mutex only the node loop writes: the commit
//! latency histogram (HdrHistogram, 3 significant digits) and the sampled
//! replication progress (commit point, members, each follower's match).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use quorum_core::Progress;

/// Upper bounds of the fsync latency histogram's buckets, in microseconds.
const FSYNC_BUCKETS_US: [u64; 12] =
    [50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400];

#[derive(Default)]
pub struct Metrics {
    pub node_id: AtomicU64,
    /// 0 follower, 1 candidate, 2 leader.
    pub role: AtomicU64,
    pub term: AtomicU64,
    pub applied: AtomicU64,
    pub client_requests: AtomicU64,
    pub client_errors: AtomicU64,
    pub forwarded: AtomicU64,
    pub peer_frames_sent: AtomicU64,
    pub peer_frames_dropped: AtomicU64,
    pub peer_frames_received: AtomicU64,
    pub records_persisted: AtomicU64,
    pub checkpoints: AtomicU64,
    pub log_bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_micros_total: AtomicU64,
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_US.len()],
    pub batches: AtomicU64,
    pub batched_inputs: AtomicU64,
    pub requests_parked: AtomicU64,
    /// Terms (epochs) this node moved to: each begins a new leadership.
    pub leader_changes: AtomicU64,
    /// Times this node became leader.
    pub elections_won: AtomicU64,
    /// Client writes answered with their result, and refused or left uncertain.
    pub proposals_committed: AtomicU64,
    pub proposals_failed: AtomicU64,
    /// Messages sent that carry a whole state (a snapshot).
    pub snapshot_sends: AtomicU64,
    /// Microseconds from a write's arrival at this node to its result.
    commit_latency: Mutex<Option<Histogram<u64>>>,
    /// The protocol's progress, sampled by the node loop.
    progress: Mutex<Option<Progress>>,
}

/// Quantiles of the commit latency exported as a summary.
const COMMIT_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

impl Metrics {
    pub fn observe_fsync(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_micros_total.fetch_add(us, Relaxed);
        if let Some(i) = FSYNC_BUCKETS_US.iter().position(|b| us <= *b) {
            self.fsync_buckets[i].fetch_add(1, Relaxed);
        }
    }

    pub fn observe_commit(&self, took: Duration) {
        let mut histogram = self.commit_latency.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = histogram.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
        });
        histogram.saturating_record(took.as_micros().max(1) as u64);
    }

    /// Commit latency quantiles in microseconds, with the count and sum.
    pub fn commit_quantiles(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let histogram = self.commit_latency.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = histogram.as_ref() else {
            return (COMMIT_QUANTILES.iter().map(|q| (*q, 0)).collect(), 0, 0.0);
        };
        let quantiles = COMMIT_QUANTILES.iter().map(|q| (*q, h.value_at_quantile(*q))).collect();
        (quantiles, h.len(), h.mean() * h.len() as f64)
    }

    pub fn set_progress(&self, progress: Option<Progress>) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = progress;
    }

    pub fn progress(&self) -> Option<Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn role_name(&self) -> &'static str {
        match self.role.load(Relaxed) {
            2 => "leader",
            1 => "candidate",
            _ => "follower",
        }
    }

    /// Every plain series: name, type, help, value.
    #[allow(clippy::type_complexity)]
    const SERIES: &'static [(&'static str, &'static str, &'static str, fn(&Metrics) -> &AtomicU64)] = &[
        ("quorum_role", "gauge", "0 follower, 1 candidate, 2 leader", |m| &m.role),
        ("quorum_term", "gauge", "current term (epoch for zab)", |m| &m.term),
        ("quorum_applied_total", "counter", "log entries applied to the state machine", |m| &m.applied),
        ("quorum_client_requests_total", "counter", "client commands received", |m| &m.client_requests),
        ("quorum_client_errors_total", "counter", "client commands answered with an error", |m| {
            &m.client_errors
        }),
        ("quorum_forwarded_total", "counter", "client commands relayed to the leader", |m| &m.forwarded),
        ("quorum_peer_frames_sent_total", "counter", "frames sent to peers", |m| &m.peer_frames_sent),
        (
            "quorum_peer_frames_dropped_total",
            "counter",
            "frames dropped because a peer was down or its queue full",
            |m| &m.peer_frames_dropped,
        ),
        ("quorum_peer_frames_received_total", "counter", "frames received from peers", |m| {
            &m.peer_frames_received
        }),
        ("quorum_records_persisted_total", "counter", "records appended to the log", |m| {
            &m.records_persisted
        }),
        ("quorum_checkpoints_total", "counter", "snapshots written", |m| &m.checkpoints),
        ("quorum_log_bytes", "gauge", "bytes of log and snapshot on disk", |m| &m.log_bytes),
        ("quorum_batches_total", "counter", "node loop batches", |m| &m.batches),
        ("quorum_batched_inputs_total", "counter", "inputs handled in those batches", |m| &m.batched_inputs),
        (
            "quorum_requests_parked_total",
            "counter",
            "times a client request was held to wait for a leader",
            |m| &m.requests_parked,
        ),
        ("quorum_leader_changes_seen_total", "counter", "terms (epochs) this node moved to", |m| {
            &m.leader_changes
        }),
        ("quorum_leader_elected_total", "counter", "times this node became leader", |m| &m.elections_won),
        ("quorum_proposals_committed_total", "counter", "client writes answered with their result", |m| {
            &m.proposals_committed
        }),
        (
            "quorum_proposals_failed_total",
            "counter",
            "client writes refused (TRYAGAIN) or left uncertain",
            |m| &m.proposals_failed,
        ),
        ("quorum_snapshot_sends_total", "counter", "snapshots sent to peers", |m| &m.snapshot_sends),
    ];

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let node = self.node_id.load(Relaxed);
        for (name, kind, help, value) in Self::SERIES {
            let value = value(self).load(Relaxed);
            let _ =
                writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}");
        }
        let _ = writeln!(s, "# HELP quorum_fsync_seconds time to make a group of records durable");
        let _ = writeln!(s, "# TYPE quorum_fsync_seconds histogram");
        let mut cumulative = 0;
        for (bound, count) in FSYNC_BUCKETS_US.iter().zip(&self.fsync_buckets) {
            cumulative += count.load(Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(s, "quorum_fsync_seconds_bucket{{node=\"{node}\",le=\"{le}\"}} {cumulative}");
        }
        let count = self.fsyncs.load(Relaxed);
        let _ = writeln!(s, "quorum_fsync_seconds_bucket{{node=\"{node}\",le=\"+Inf\"}} {count}");
        let sum = self.fsync_micros_total.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "quorum_fsync_seconds_sum{{node=\"{node}\"}} {sum}");
        let _ = writeln!(s, "quorum_fsync_seconds_count{{node=\"{node}\"}} {count}");
        self.render_commit_latency(&mut s, node);
        self.render_progress(&mut s, node);
        s
    }

    fn render_commit_latency(&self, s: &mut String, node: u64) {
        let _ = writeln!(s, "# HELP quorum_commit_seconds time from a write's arrival to its result");
        let _ = writeln!(s, "# TYPE quorum_commit_seconds summary");
        let (quantiles, count, sum_us) = self.commit_quantiles();
        for (q, us) in quantiles {
            let seconds = us as f64 / 1e6;
            let _ = writeln!(s, "quorum_commit_seconds{{node=\"{node}\",quantile=\"{q}\"}} {seconds}");
        }
        let _ = writeln!(s, "quorum_commit_seconds_sum{{node=\"{node}\"}} {}", sum_us / 1e6);
        let _ = writeln!(s, "quorum_commit_seconds_count{{node=\"{node}\"}} {count}");
    }

    fn render_progress(&self, s: &mut String, node: u64) {
        let Some(p) = self.progress() else { return };
        for (name, help, value) in [
            ("quorum_commit_index", "highest log position known committed", p.commit_index),
            ("quorum_applied_index", "highest log position applied", p.applied_index),
            ("quorum_last_index", "last position in the log", p.last_index),
        ] {
            let _ =
                writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{node=\"{node}\"}} {value}");
        }
        let _ = writeln!(
            s,
            "# HELP quorum_follower_match_index on the leader: each follower's highest matching log position"
        );
        let _ = writeln!(s, "# TYPE quorum_follower_match_index gauge");
        for (follower, matched) in &p.followers {
            let _ = writeln!(
                s,
                "quorum_follower_match_index{{node=\"{node}\",follower=\"{}\"}} {matched}",
                follower.0
            );
        }
        let _ = writeln!(
            s,
            "# HELP quorum_follower_lag on the leader: entries a follower is behind the leader's log"
        );
        let _ = writeln!(s, "# TYPE quorum_follower_lag gauge");
        for (follower, matched) in &p.followers {
            let lag = p.last_index.saturating_sub(*matched);
            let _ = writeln!(s, "quorum_follower_lag{{node=\"{node}\",follower=\"{}\"}} {lag}", follower.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_has_help_type_and_its_own_value() {
        let m = Metrics::default();
        m.node_id.store(4, Relaxed);
        for (i, (_, _, _, value)) in Metrics::SERIES.iter().enumerate() {
            value(&m).store(100 + i as u64, Relaxed);
        }
        let text = m.render();
        for (i, (name, kind, help, _)) in Metrics::SERIES.iter().enumerate() {
            let block =
                format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"4\"}} {}\n", 100 + i);
            assert_eq!(text.matches(&block).count(), 1, "{name} in\n{text}");
        }
    }

    #[test]
    fn commit_latency_and_follower_lag_are_exported() {
        let m = Metrics::default();
        for us in [100, 200, 300, 400, 100_000] {
            m.observe_commit(Duration::from_micros(us));
        }
        m.set_progress(Some(Progress {
            commit_index: 90,
            applied_index: 88,
            last_index: 100,
            followers: vec![(quorum_core::NodeId(1), 100), (quorum_core::NodeId(2), 40)],
            ..Progress::default()
        }));
        let text = m.render();
        assert!(text.contains("quorum_commit_seconds_count{node=\"0\"} 5"), "{text}");
        assert!(text.contains("quorum_commit_seconds{node=\"0\",quantile=\"0.5\"} 0.0003"), "{text}");
        assert!(text.contains("quorum_commit_seconds{node=\"0\",quantile=\"0.999\"} 0.1000"), "{text}");
        assert!(text.contains("quorum_commit_index{node=\"0\"} 90"), "{text}");
        assert!(text.contains("quorum_follower_match_index{node=\"0\",follower=\"2\"} 40"), "{text}");
        assert!(text.contains("quorum_follower_lag{node=\"0\",follower=\"2\"} 60"), "{text}");
        assert!(text.contains("quorum_follower_lag{node=\"0\",follower=\"1\"} 0"), "{text}");
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_fsync(Duration::from_micros(30));
        m.observe_fsync(Duration::from_micros(150));
        m.observe_fsync(Duration::from_secs(1));
        let text = m.render();
        assert!(text.contains("quorum_fsync_seconds_bucket{node=\"0\",le=\"0.00005\"} 1"), "{text}");
        assert!(text.contains("quorum_fsync_seconds_bucket{node=\"0\",le=\"0.0002\"} 2"), "{text}");
        assert!(text.contains("quorum_fsync_seconds_bucket{node=\"0\",le=\"+Inf\"} 3"), "{text}");
    }
}
