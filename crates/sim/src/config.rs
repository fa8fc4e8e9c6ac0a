//! Run parameters, validated before anything starts.

use std::fmt;
use std::str::FromStr;

use crate::faults::Schedule;
pub use crate::swarm::Swarm;

/// One kind of fault the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Crash a node (volatile state lost, persisted records kept), restart it later.
    Crash,
    /// Partition the network: halves, majority/minority, isolate one, one-way.
    Partition,
    /// Drop a fraction of messages.
    Loss,
    /// Deliver some messages twice.
    Dup,
    /// Add latency (and with it, reordering).
    Delay,
    /// Freeze a node (a GC pause): it processes nothing, then resumes.
    Pause,
    /// `kill -9` a node as one of its steps finishes writing to disk (its
    /// fsync returned, its messages are on the wire) and restart it 1–50 ms
    /// later, as a process supervisor would. The cluster has barely moved
    /// on, so anything the node said but did not persist (a vote, an
    /// acknowledgement) is forgotten within the same term: the persist
    /// rule, tested where it matters.
    Kill,
    /// Crash whichever node leads, in the middle of its next step that
    /// writes to disk (after the write, before the last message of its
    /// broadcast), and restart it up to 500 ms later: Jepsen's
    /// leader-targeted nemesis. Not part of `all` (asked for by name), so
    /// the schedules of `all` stay what they were.
    CrashLeader,
    /// `kill -9` a node right after the first message of one of its steps
    /// leaves (before the rest of the step: later sends, persists, replies)
    /// and restart it 1–50 ms later: the dual of `kill`. Where `kill` tests
    /// that what a node persisted is enough, this tests that what it said
    /// was persisted before it said it (a vote, a promise, a decision).
    /// Not part of `all` (asked for by name, or drawn by the swarm).
    TornSend,
    /// `kill -9` a group of nodes at the same instant, as a rack losing
    /// power: as many as `max_down` allows (two or more where it allows
    /// two), struck together at the end of a step of one of them that sent
    /// messages, and restarted 1–50 ms later. What each of them said but
    /// did not persist is forgotten by several nodes at once, which is what
    /// a node that skips a force needs to show when a quorum must forget
    /// it: one forgetful node is outvoted by the others that remember. Not
    /// part of `all` (asked for by name, or drawn by the swarm).
    PowerLoss,
    /// `kill -9` a node as it answers an election: while armed, the first
    /// node that finishes a step that persists while another node
    /// campaigns (it announced itself candidate and has not led or followed
    /// since) dies at the end of that step, its answer (a vote, a promise)
    /// out, and restarts 1–50 ms later, while the election it voted in is
    /// still going on. Jepsen aims faults at leaders; this aims them at the
    /// other end of an election, where a vote the node did not force is
    /// forgotten in time to be given again. A protocol that announces no
    /// candidates is never struck. Not part of `all` (asked for by name, or
    /// drawn by the swarm).
    KillVoter,
}

impl FaultKind {
    /// Every kind: first those `all` stands for, then those only asked
    /// for by name.
    pub const KNOWN: [FaultKind; 11] = [
        FaultKind::Crash,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Dup,
        FaultKind::Delay,
        FaultKind::Pause,
        FaultKind::Kill,
        FaultKind::CrashLeader,
        FaultKind::TornSend,
        FaultKind::PowerLoss,
        FaultKind::KillVoter,
    ];

    /// The kinds `all` stands for.
    pub const ALL: &'static [FaultKind] = FaultKind::KNOWN.split_at(7).0;

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::Dup => "dup",
            FaultKind::Delay => "delay",
            FaultKind::Pause => "pause",
            FaultKind::Kill => "kill",
            FaultKind::CrashLeader => "crash-leader",
            FaultKind::TornSend => "torn-send",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::KillVoter => "kill-voter",
        }
    }

    /// Whether the fault takes nodes down (and so counts against `max_down`).
    pub fn takes_nodes_down(self) -> bool {
        matches!(
            self,
            FaultKind::Crash
                | FaultKind::Pause
                | FaultKind::Kill
                | FaultKind::CrashLeader
                | FaultKind::TornSend
                | FaultKind::PowerLoss
                | FaultKind::KillVoter
        )
    }
}

/// A set of fault kinds, parsed from a comma list such as `crash,partition`,
/// `none` or `all`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(pub Vec<FaultKind>);

impl FaultSet {
    pub fn none() -> FaultSet {
        FaultSet(Vec::new())
    }

    pub fn all() -> FaultSet {
        FaultSet(FaultKind::ALL.to_vec())
    }

    pub fn contains(&self, kind: FaultKind) -> bool {
        self.0.contains(&kind)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for FaultSet {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<FaultSet, ConfigError> {
        let mut kinds = Vec::new();
        for word in s.split(',').map(str::trim) {
            match word {
                "none" => {}
                "all" => kinds.extend_from_slice(FaultKind::ALL),
                "" => return Err(ConfigError::Faults("empty fault name in list".into())),
                other => {
                    let kind = FaultKind::KNOWN.into_iter().find(|k| k.name() == other).ok_or_else(|| {
                        let names: Vec<&str> = FaultKind::KNOWN.iter().map(|k| k.name()).collect();
                        ConfigError::Faults(format!(
                            "unknown fault '{other}' (expected swarm, none, {}, all)",
                            names.join(", ")
                        ))
                    })?;
                    kinds.push(kind);
                }
            }
        }
        kinds.sort();
        kinds.dedup();
        Ok(FaultSet(kinds))
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let (all, extra): (Vec<FaultKind>, Vec<FaultKind>) =
            self.0.iter().partition(|k| FaultKind::ALL.contains(k));
        let mut names: Vec<&str> = Vec::new();
        if all.len() == FaultKind::ALL.len() {
            names.push("all");
        } else {
            names.extend(all.iter().map(|k| k.name()));
        }
        names.extend(extra.iter().map(|k| k.name()));
        f.write_str(&names.join(","))
    }
}

/// Limits no healthy run comes near; a run past one ends as a `runaway`
/// violation, so a protocol in a message storm or a zero-delay loop cannot
/// hang the laboratory (or an exploration of thousands of seeds).
///
/// Measured peaks (`explore --json` reports `peaks`), every catalogued
/// protocol at 3 and 5 nodes, 200 seeds of `all` and `crash-leader,all`,
/// 300 ops: at most 17k events in a run, 940 queued at once, 900 events in
/// one simulated ms (2pc and 3pc, whose cohorts answer at once). With 50
/// clients and 20,000 ops: 313k events, 12k queued, 126 per ms. The
/// defaults are 50M, 1M and 100k: 100 to 3,000 times those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// Events processed in one run.
    pub events_max: u64,
    /// Events waiting in the queue at once.
    pub queue_max: usize,
    /// Events processed within one simulated millisecond.
    pub events_per_ms_max: u64,
}

impl Default for Budgets {
    fn default() -> Budgets {
        Budgets { events_max: 50_000_000, queue_max: 1_000_000, events_per_ms_max: 100_000 }
    }
}

/// A parameter that cannot describe a run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Faults(String),
    #[error("{0}")]
    Invalid(String),
    #[error("bad --schedule: {0}")]
    Schedule(String),
}

/// Everything that determines a run, together with the protocol's own config.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u32,
    /// Client operations in total (split evenly among clients).
    pub ops: u32,
    pub clients: u32,
    /// Keys in use at once.
    pub keys: u32,
    /// Operations a key takes before it is retired for a fresh one.
    pub ops_per_key: u32,
    /// Whether the workload issues cas (ABD registers cannot serve it).
    pub cas: bool,
    pub faults: FaultSet,
    /// An explicit fault schedule (replaces the one generated from the seed).
    pub schedule: Option<Schedule>,
    /// Most nodes down (crashed or paused) at once; default: a minority.
    pub max_down: u32,
    pub safety_ms: u64,
    pub liveness_ms: u64,
    pub quiesce_ms: u64,
    /// How long a client waits for an answer before it retries elsewhere
    /// (an update with retries left) or records the operation as `info`.
    pub client_timeout_ms: u64,
    /// Times a client re-sends a timed-out update with the same request id
    /// to another node before it gives up (`info`); for protocols with
    /// client sessions, which must apply it once. 0: never.
    pub retries: u32,
    /// Message latency: uniform in `[latency_min_us, latency_max_us)`.
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    /// Per-node timer drift: each node's timers run at a rate in `[1-d, 1+d]`.
    pub timer_drift: f64,
    /// Clock skew: each node's (and client's) clock reads true time plus an
    /// offset drawn from `[-skew, +skew]` ms for the run. Only stamps read
    /// it (the Redis workload's expiry); timers follow `timer_drift`.
    pub clock_skew_ms: u64,
    /// Which requests the clients send, for protocols that speak more than
    /// one request type (`registry` picks the runner).
    pub workload: WorkloadKind,
    /// A generated schedule's fault episodes last `[lo, hi)` ms each, and
    /// the next one starts `[lo, hi)` ms after the previous one began.
    pub fault_length_ms: (u64, u64),
    pub fault_gap_ms: (u64, u64),
    /// Each seed draws its own faults and parameters (swarm testing; see
    /// [`Swarm`]), unless an explicit schedule is given.
    pub swarm: Option<Swarm>,
    /// Limits that end a run that runs away (see [`Budgets`]).
    pub budgets: Budgets,
    /// The protocol and its settings, as chosen (by name: the simulator
    /// knows no protocol; the caller's runner turns this into one).
    pub protocol: ProtocolChoice,
    /// The Byzantine nodes (traitors), ascending: their sends go through
    /// `strategy` (`quorum_core::byzantine`), and the checkers judge only
    /// the others.
    pub byzantine: Vec<quorum_core::NodeId>,
    /// What the traitors do.
    pub strategy: quorum_core::byzantine::Strategy,
}

/// The random stream of clock offsets ([`SimConfig::clock_offset_us`]).
const CLOCK_STREAM: u64 = 1 << 46;
/// Clients' clocks follow the nodes' in [`SimConfig::clock_offset_us`].
pub const CLIENT_CLOCK: u64 = 1 << 20;

/// The requests a run's clients send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkloadKind {
    /// The protocol's own workload (KV read / write / cas for KV protocols).
    #[default]
    Default,
    /// Redis commands over the KV: `GET`, `SET` with `PX`, `MSET`, `MULTI` /
    /// `EXEC` (`quorum_core::redis`), judged by the multi-key checker.
    Redis,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Default => "default",
            WorkloadKind::Redis => "redis",
        }
    }
}

/// Which protocol a run is of, and with which settings: a name, an optional
/// variant and deliberate bug, and settings as a JSON object. Plain data
/// for the caller's runner and for replays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProtocolChoice {
    pub name: String,
    pub variant: Option<String>,
    pub bug: Option<String>,
    /// Settings (fields of the protocol's `Config`); empty: its defaults.
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl ProtocolChoice {
    pub fn named(name: impl Into<String>) -> ProtocolChoice {
        ProtocolChoice { name: name.into(), ..ProtocolChoice::default() }
    }
}

impl From<&str> for ProtocolChoice {
    fn from(name: &str) -> ProtocolChoice {
        ProtocolChoice::named(name)
    }
}

impl SimConfig {
    pub fn new(protocol: impl Into<ProtocolChoice>) -> SimConfig {
        SimConfig {
            seed: 0,
            nodes: 5,
            ops: 300,
            clients: 5,
            keys: 3,
            ops_per_key: 30,
            cas: true,
            faults: FaultSet::none(),
            schedule: None,
            max_down: 2,
            safety_ms: 5_000,
            liveness_ms: 10_000,
            quiesce_ms: 3_000,
            client_timeout_ms: 1_000,
            retries: 0,
            latency_min_us: 500,
            latency_max_us: 2_000,
            timer_drift: 0.05,
            clock_skew_ms: 0,
            workload: WorkloadKind::Default,
            fault_length_ms: (200, 1_500),
            fault_gap_ms: (100, 700),
            swarm: None,
            budgets: Budgets::default(),
            protocol: protocol.into(),
            byzantine: Vec::new(),
            strategy: quorum_core::byzantine::Strategy::default(),
        }
    }

    /// The clock offset (µs, within `±clock_skew_ms`) of node `node`, or of
    /// client `c` as `CLIENT_CLOCK + c`: fixed for the run, from its own
    /// stream, so drawing it changes no other draw.
    pub fn clock_offset_us(&self, who: u64) -> i64 {
        let skew = (self.clock_skew_ms * 1_000) as i64;
        if skew == 0 {
            return 0;
        }
        let mut rng = quorum_core::Rng::stream(self.seed, CLOCK_STREAM + who);
        rng.range(0, 2 * skew as u64 + 1) as i64 - skew
    }

    /// The protocol's name.
    pub fn protocol_name(&self) -> &str {
        &self.protocol.name
    }

    /// The default `max_down` for `nodes`: the largest minority.
    pub fn minority(nodes: u32) -> u32 {
        nodes.saturating_sub(1) / 2
    }

    /// The run's clocks and time spans: timeouts, latency, skew, drift,
    /// phases and fault episodes.
    fn validate_timing(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.client_timeout_ms == 0 {
            return invalid("--client-timeout-ms must be at least 1".into());
        }
        if self.latency_min_us == 0 || self.latency_max_us < self.latency_min_us {
            return invalid("latency bounds must satisfy 0 < min <= max".into());
        }
        if self.clock_skew_ms > 60_000 {
            return invalid("clock skew must be at most 60000 ms".into());
        }
        if !(0.0..0.5).contains(&self.timer_drift) {
            return invalid("timer drift must be in [0, 0.5)".into());
        }
        if self.safety_ms == 0 || self.liveness_ms == 0 {
            return invalid("phase lengths must be positive".into());
        }
        let (length, gap) = (self.fault_length_ms, self.fault_gap_ms);
        if length.0 == 0 || length.0 >= length.1 || gap.0 == 0 || gap.0 >= gap.1 {
            return invalid("fault episode lengths and gaps must satisfy 0 < lo < hi".into());
        }
        Ok(())
    }

    /// Reject parameters that cannot describe a run. Runs before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.nodes == 0 {
            return invalid("--nodes must be at least 1".into());
        }
        if self.nodes > 64 {
            return invalid(format!("--nodes {} is more than the simulator's limit of 64", self.nodes));
        }
        if self.clients == 0 {
            return invalid("--clients must be at least 1".into());
        }
        if self.keys == 0 {
            return invalid("--keys must be at least 1".into());
        }
        if self.ops_per_key == 0 {
            return invalid("--ops-per-key must be at least 1".into());
        }
        if self.ops < self.clients {
            return invalid(format!(
                "--ops {} is fewer than one operation per client ({} clients)",
                self.ops, self.clients
            ));
        }
        if self.max_down >= self.nodes {
            return invalid(format!(
                "--max-down {} would take down all {} nodes; at most {} can be down",
                self.max_down,
                self.nodes,
                self.nodes - 1
            ));
        }
        let takes_down = self.faults.0.iter().any(|k| k.takes_nodes_down());
        if takes_down && self.max_down == 0 {
            return invalid(format!(
                "faults '{}' take nodes down, but {} node(s) cannot bear any down (raise --max-down or --nodes)",
                self.faults, self.nodes
            ));
        }
        if self.faults.contains(FaultKind::Partition) && self.nodes < 2 {
            return invalid("a partition needs at least 2 nodes".into());
        }
        self.validate_timing()?;
        if let Some(schedule) = &self.schedule {
            schedule.validate(self.nodes)?;
        }
        if let Some(traitor) = self.byzantine.iter().find(|n| n.0 >= self.nodes) {
            return invalid(format!("--byzantine names node {} of only {} nodes", traitor.0, self.nodes));
        }
        if !self.byzantine.is_empty() && self.strategy.tactics.is_empty() {
            return invalid("--byzantine needs a --strategy (e.g. equivocate)".into());
        }
        if self.strategy.sides.as_ref().is_some_and(|s| s.len() != self.nodes as usize) {
            return invalid(format!("a strategy's sides need one bit per node ({})", self.nodes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_print() {
        let all: FaultSet = "all".parse().unwrap();
        assert_eq!(all.to_string(), "all");
        let some: FaultSet = "partition, crash".parse().unwrap();
        assert_eq!(some.to_string(), "crash,partition");
        assert!("none".parse::<FaultSet>().unwrap().is_empty());
        assert!("crash,flood".parse::<FaultSet>().is_err());
        let named: FaultSet = "crash-leader,all".parse().unwrap();
        assert_eq!(named.to_string(), "all,crash-leader");
        assert!(
            !all.contains(FaultKind::CrashLeader),
            "all keeps its schedules: crash-leader is asked for by name"
        );
        for kind in FaultKind::KNOWN {
            assert_eq!(kind.name().parse::<FaultSet>().unwrap().0, vec![kind], "{kind:?} parses back");
        }
    }

    #[test]
    fn impossible_parameters_are_rejected() {
        let mut c = SimConfig::new("x");
        c.nodes = 0;
        assert!(c.validate().is_err());
        c.nodes = 2;
        c.max_down = SimConfig::minority(2);
        c.faults = "crash".parse().unwrap();
        assert!(c.validate().is_err(), "two nodes cannot bear a crash with a majority left");
        c.faults = FaultSet::none();
        c.max_down = 2;
        assert!(c.validate().is_err());
    }
}
