//! What one run produced and what the checkers said about it.

use quorum_check::History;
pub use quorum_core::claims::Violation;
use serde::Serialize;

use crate::config::SimConfig;

/// How close a run came to its budgets (`SimConfig::budgets`): events in
/// the run, the most queued at once, the most within one simulated ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Peaks {
    pub events: u64,
    pub queue: usize,
    pub events_per_ms: u64,
}

impl Peaks {
    /// The larger of each.
    pub fn max(self, other: Peaks) -> Peaks {
        Peaks {
            events: self.events.max(other.events),
            queue: self.queue.max(other.queue),
            events_per_ms: self.events_per_ms.max(other.events_per_ms),
        }
    }
}

/// What it takes to replay a run exactly: its parameters, with the fault
/// schedule made explicit and every drawn setting written in. The CLI
/// prints it as a command line.
#[derive(Clone, Debug)]
pub struct Replay {
    pub config: SimConfig,
}

/// The summary of one run (`quorum sim --json` prints it), plus the history
/// and trace for export.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    /// The protocol selection as given on the command line.
    pub protocol: String,
    pub seed: u64,
    pub nodes: u32,
    pub faults: String,
    /// The fault schedule that ran, in `--schedule` form.
    pub schedule: String,
    pub ops_ok: u64,
    pub ops_fail: u64,
    pub ops_info: u64,
    /// Writes and cas refused without effect (`fail` other than a cas mismatch):
    /// how often the protocol chose consistency over availability.
    pub writes_failed: u64,
    pub linearizable: bool,
    /// `linearizable`, `not linearizable`, or `unknown` (search budget exhausted).
    pub linearizability: String,
    /// A plain-words account of the violation, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linearizability_explanation: Option<String>,
    pub lost_acked_writes: u64,
    /// Pairs of nodes that both acknowledged writes while both were leader;
    /// 0 for protocols with a consensus log (those that report `Apply`),
    /// where a deposed leader may rightly acknowledge a committed entry and
    /// log safety, election safety and linearizability judge instead.
    pub split_brain: u64,
    /// Replicas equal after quiescence; `null` where the protocol has no
    /// replicated state to compare.
    pub converged: Option<bool>,
    /// Every client finished and every key's final read succeeded after heal.
    pub liveness_ok: bool,
    /// Two nodes applied different commands at one log index.
    pub log_safety_violations: u64,
    /// Two nodes led the same term.
    pub election_safety_violations: u64,
    /// Agreement, Validity or Integrity broken (from `Propose`/`Decide`
    /// observations), each described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consensus_violations: Vec<String>,
    /// IC1 broken: loyal lieutenants obeyed different orders (Byzantine
    /// generals), each described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ic1_violations: Vec<String>,
    /// IC2 broken: a loyal lieutenant disobeyed a loyal commander.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ic2_violations: Vec<String>,
    /// The Byzantine nodes of the run, and their strategy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traitors: Vec<u32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub strategy: String,
    /// (node, instance) pairs where a node had not decided a proposed
    /// instance by the end of the run (all nodes up, network healed).
    pub termination_violations: u64,
    /// A cross-node invariant the protocol reported broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_invariant: Option<String>,
    /// A protocol invariant or the simulator panicked: the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panic: Option<String>,
    /// The budget the run exceeded, and when (a message storm, a zero-delay
    /// loop): the run was cut short there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runaway: Option<String>,
    /// Updates acknowledged to clients (each counted once per reply).
    pub acked_updates: u64,
    pub messages_sent: u64,
    /// Of `messages_sent`, acknowledgments of an outcome every participant
    /// already had (2PC/3PC's final ACK), counted apart.
    pub outcome_acks_sent: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub persists: u64,
    /// Client-observed latency of acknowledged updates (send to answer,
    /// including the client's own round trip to the node), microseconds.
    pub update_latency_us: Percentiles,
    pub events: u64,
    /// How close the run came to its budgets.
    pub peaks: Peaks,
    /// For each crash of a current leader in the safety phase: simulated µs
    /// until some node became leader of a higher term (failover time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failover_us: Vec<u64>,
    pub sim_time_ms: u64,
    /// Transaction figures and verdicts (the bank-transfer workload of 2PC
    /// and 3PC); absent for the KV workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<TxnFigures>,
    /// Rounds to decide (the decision workload of Ben-Or); absent for the
    /// others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::decision_workload::DecisionFigures>,
    /// The Redis workload: requests acknowledged, per command (`get`,
    /// `set`, `set-px`, `mset`, `exec`); empty for the others.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub commands_acked: std::collections::BTreeMap<String, u64>,
    /// Time, rounds and bytes to converge, stale reads (the CRDT
    /// workload); absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergence: Option<crate::crdt_workload::ConvergenceFigures>,
    /// The kinds of violation found (empty: the run kept every promise).
    pub violations: Vec<Violation>,
    /// The sometimes properties the run reached (see `quorum_core::claims`),
    /// by name, ascending.
    pub reached: Vec<&'static str>,
    /// What reproduces this run.
    #[serde(skip)]
    pub replay: Replay,
    #[serde(skip)]
    pub history: History,
    /// The transaction workload's client history (the KV workload uses
    /// `history`).
    #[serde(skip)]
    pub txn_history: Vec<TxnOp>,
    #[serde(skip)]
    pub trace: Option<String>,
    /// The structured record a space-time diagram draws, when asked for
    /// (`Capture::record`).
    #[serde(skip)]
    pub recording: Option<crate::diagram::Recording>,
}

impl RunOutcome {
    pub fn violated(&self) -> bool {
        !self.violations.is_empty()
    }

    /// The client history as JSON lines: the KV workload's operations
    /// (readable by `quorum check`) or the transaction workload's requests.
    pub fn history_json_lines(&self) -> String {
        if self.txn.is_none() {
            return quorum_check::parse::to_json_lines(&self.history);
        }
        let mut lines = String::new();
        for op in &self.txn_history {
            lines.push_str(&serde_json::to_string(op).expect("txn ops serialize"));
            lines.push('\n');
        }
        lines
    }

    /// Recompute `violations` from the individual verdicts. A runaway run
    /// was cut short: what needs the run's end (liveness, termination,
    /// convergence) is not judged.
    pub(crate) fn classify(&mut self) {
        let finished = self.runaway.is_none();
        let txn = self.txn.as_ref();
        let verdicts = [
            (Violation::Panic, self.panic.is_some()),
            (Violation::Runaway, !finished),
            (Violation::Linearizability, !self.linearizable),
            (Violation::LostAckedWrites, self.lost_acked_writes > 0),
            (Violation::SplitBrain, self.split_brain > 0),
            (Violation::Divergence, finished && self.converged == Some(false)),
            (Violation::Liveness, finished && !self.liveness_ok),
            (Violation::LogSafety, self.log_safety_violations > 0),
            (Violation::ElectionSafety, self.election_safety_violations > 0),
            (Violation::Consensus, !self.consensus_violations.is_empty()),
            (Violation::Termination, finished && self.termination_violations > 0),
            (Violation::ClusterInvariant, self.cluster_invariant.is_some()),
            (Violation::Atomicity, txn.is_some_and(|t| !t.atomicity_violations.is_empty())),
            (Violation::Balance, txn.is_some_and(|t| t.balance.is_some())),
            (Violation::Ic1, !self.ic1_violations.is_empty()),
            (Violation::Ic2, !self.ic2_violations.is_empty()),
        ];
        self.violations = verdicts.into_iter().filter(|(_, broken)| *broken).map(|(v, _)| v).collect();
    }
}

/// What the bank-transfer workload measured and judged.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TxnFigures {
    /// Transactions decided (by any participant), committed and aborted.
    pub decided: u64,
    pub committed: u64,
    pub aborted: u64,
    /// Transfers the clients saw answered `Committed` / `Aborted`.
    pub client_committed: u64,
    pub client_aborted: u64,
    /// Atomicity broken: participants that decided differently, or reversed.
    pub atomicity_violations: Vec<String>,
    /// The balance invariant broken (money created or destroyed, an account
    /// overdrawn), or `None` when it held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// Sum of the final balances read after quiescence.
    pub final_total: i64,
    pub expected_total: i64,
    /// Time cohorts spent in doubt while up (voted yes, outcome unknown; a
    /// crashed cohort's downtime is not counted), summed over every (cohort,
    /// transaction), and the longest such wait.
    pub blocked_ms_total: u64,
    pub blocked_ms_max: u64,
    /// Each (cohort, transaction)'s in-doubt time, microseconds, for
    /// percentiles across runs.
    #[serde(skip)]
    pub blocked_spans_us: Vec<u64>,
    /// (cohort, transaction) pairs still in doubt at the end of the run.
    pub still_in_doubt: u64,
    /// Mean cohorts per committed transaction (`n` of the text's `3n`).
    pub cohorts_per_txn: f64,
    /// Messages sent in the run, per decided transaction, without the
    /// acknowledgments of outcomes (the source text's count: 3n for 2PC).
    pub messages_per_txn: f64,
    /// Acknowledgments of outcomes per decided transaction (n for 2PC).
    pub acks_per_txn: f64,
    /// Every record persisted (all are forced), per decided transaction.
    pub forced_writes_per_txn: f64,
}

/// One client request of the transaction workload, as `--history` writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TxnOp {
    pub client: usize,
    /// `transfer` or `balance`.
    pub f: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<u64>,
    /// The node the request went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// Simulated microseconds.
    pub invoked_us: u64,
    pub completed_us: u64,
    /// `committed`, `aborted`, `balance`, `rejected`, `indeterminate` or
    /// `timeout` (no answer: it may still commit).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A distribution's median, 99th percentile and maximum (0 when empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// Of `sorted` (ascending): the smallest sample at or above each rank.
    pub fn of_sorted(sorted: &[u64]) -> Percentiles {
        debug_assert!(sorted.is_sorted());
        let at = |p: usize| {
            let rank = (sorted.len() * p).div_ceil(100).max(1);
            sorted.get(rank - 1).copied().unwrap_or(0)
        };
        Percentiles {
            samples: sorted.len() as u64,
            p50: at(50),
            p99: at(99),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}
