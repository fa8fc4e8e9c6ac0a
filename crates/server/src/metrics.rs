//! Counters and gauges the node exports in Prometheus' text format.
//!
//! Plain atomics: the node loop, the log writer and the connection tasks
//! update them without locks; `/metrics` reads a consistent-enough snapshot.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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
}

impl Metrics {
    pub fn observe_fsync(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_micros_total.fetch_add(us, Relaxed);
        if let Some(i) = FSYNC_BUCKETS_US.iter().position(|b| us <= *b) {
            self.fsync_buckets[i].fetch_add(1, Relaxed);
        }
    }

    pub fn role_name(&self) -> &'static str {
        match self.role.load(Relaxed) {
            2 => "leader",
            1 => "candidate",
            _ => "follower",
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let node = self.node_id.load(Relaxed);
        let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
            let _ =
                writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}");
        };
        gauge("quorum_role", "0 follower, 1 candidate, 2 leader", "gauge", self.role.load(Relaxed));
        gauge("quorum_term", "current term (epoch for zab)", "gauge", self.term.load(Relaxed));
        gauge(
            "quorum_applied_total",
            "log entries applied to the state machine",
            "counter",
            self.applied.load(Relaxed),
        );
        gauge(
            "quorum_client_requests_total",
            "client commands received",
            "counter",
            self.client_requests.load(Relaxed),
        );
        gauge(
            "quorum_client_errors_total",
            "client commands answered with an error",
            "counter",
            self.client_errors.load(Relaxed),
        );
        gauge(
            "quorum_forwarded_total",
            "client commands relayed to the leader",
            "counter",
            self.forwarded.load(Relaxed),
        );
        gauge(
            "quorum_peer_frames_sent_total",
            "frames sent to peers",
            "counter",
            self.peer_frames_sent.load(Relaxed),
        );
        gauge(
            "quorum_peer_frames_dropped_total",
            "frames dropped because a peer was down or its queue full",
            "counter",
            self.peer_frames_dropped.load(Relaxed),
        );
        gauge(
            "quorum_peer_frames_received_total",
            "frames received from peers",
            "counter",
            self.peer_frames_received.load(Relaxed),
        );
        gauge(
            "quorum_records_persisted_total",
            "records appended to the log",
            "counter",
            self.records_persisted.load(Relaxed),
        );
        gauge("quorum_checkpoints_total", "snapshots written", "counter", self.checkpoints.load(Relaxed));
        gauge("quorum_log_bytes", "bytes of log and snapshot on disk", "gauge", self.log_bytes.load(Relaxed));
        gauge("quorum_batches_total", "node loop batches", "counter", self.batches.load(Relaxed));
        gauge(
            "quorum_batched_inputs_total",
            "inputs handled in those batches",
            "counter",
            self.batched_inputs.load(Relaxed),
        );
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
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
