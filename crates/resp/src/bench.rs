//! The load generator behind `quorum bench`: one program that drives quorum,
//! Redis (RESP2) and etcd (its JSON gateway) with the same workload, so that
//! their figures, measured in the same run on the same machine, can be
//! compared as ratios.
//!
//! The workload is closed-loop: each of `clients` connections has exactly one
//! operation outstanding, and issues the next as soon as the last completes.
//! Throughput is therefore bounded by latency × clients, which is what a
//! replicated store's users see; an open-loop generator would measure queueing
//! instead. Each client draws read-or-write and the key from its own seeded
//! xoshiro256++ stream, so a run's *choices* are reproducible (their
//! interleaving across connections is not). Latencies are recorded in µs in
//! HDR histograms (3 significant digits), one per client and kind, merged at
//! the end.
//!
//! A run has phases: connect every client (and `AUTH`), optionally preload
//! every key once, warm up for `warmup_seconds` (operations not recorded),
//! then measure until `ops` operations have been issued or `seconds` have
//! passed. An error reply (including a `-MOVED` redirect: quorum's followers
//! forward to the leader, so a redirect means a misdirected benchmark) counts
//! as an error and the client goes on; a broken connection or a timed-out
//! operation counts as an error and the client reconnects before its next one.
//! Only successful operations enter the histograms and `ops`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Client, ClientError};
use crate::codec::Value;
use crate::etcd::{EtcdClient, EtcdError};

/// Distinct error messages kept per run, to tell a person what went wrong.
const ERROR_SAMPLES_MAX: usize = 8;
/// Pause before reconnecting after a transport error, so a dead server is not
/// hammered with connects.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// What the load generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A RESP2 server: quorum or Redis. Writes are `SET`, reads `GET`.
    Resp,
    /// etcd v3's JSON gateway: writes are `kv/put`, reads linearizable `kv/range`.
    Etcd,
}

impl std::str::FromStr for Target {
    type Err = BenchError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "resp" => Ok(Target::Resp),
            "etcd" => Ok(Target::Etcd),
            other => Err(BenchError::Config(format!("unknown target {other:?}: expected resp or etcd"))),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Resp => "resp",
            Target::Etcd => "etcd",
        })
    }
}

/// One benchmark run. Build it with `..BenchConfig::default()` so that fields
/// added later keep their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// `host:port` of the server (for etcd: a member's client URL without `http://`).
    pub addr: String,
    pub target: Target,
    /// Concurrent connections, each with one operation outstanding.
    pub clients: usize,
    /// Stop after this many measured operations (successes plus errors), in total.
    pub ops: Option<u64>,
    /// Stop after this many measured seconds. With `ops` too, whichever comes first.
    pub seconds: Option<f64>,
    /// Probability that an operation is a write, in [0, 1].
    pub write_ratio: f64,
    /// Bytes per written value.
    pub value_size: usize,
    /// Keys are `key:<n>` for n uniform in [0, keyspace).
    pub keyspace: u64,
    /// Sent as `AUTH <password>` on every new RESP connection.
    pub password: Option<String>,
    /// RESP only: after each `SET`, `WAIT <n> 0` (block until n replicas have
    /// the write), pipelined with the `SET`; its latency is part of the write's.
    pub wait_replicas: Option<u32>,
    /// Seconds of unrecorded load before measuring, to fill caches and let
    /// connections settle.
    pub warmup_seconds: f64,
    /// Before the warmup, write every key of the keyspace once (unmeasured), so
    /// that a read-only run reads present keys.
    pub preload: bool,
    /// Seed of the per-client random streams.
    pub seed: u64,
    /// An operation still unanswered after this long is an error, and its
    /// connection is replaced.
    pub op_timeout_seconds: f64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            addr: "127.0.0.1:6379".to_string(),
            target: Target::Resp,
            clients: 16,
            ops: None,
            seconds: Some(10.0),
            write_ratio: 0.5,
            value_size: 100,
            keyspace: 10_000,
            password: None,
            wait_replicas: None,
            warmup_seconds: 1.0,
            preload: false,
            seed: 1,
            op_timeout_seconds: 10.0,
        }
    }
}

impl BenchConfig {
    /// Reject settings that cannot describe a run.
    pub fn validate(&self) -> Result<(), BenchError> {
        let fail = |message: String| Err(BenchError::Config(message));
        if self.clients == 0 {
            return fail("clients must be at least 1".into());
        }
        if self.ops.is_none() && self.seconds.is_none() {
            return fail("give a number of operations or of seconds".into());
        }
        if let Some(seconds) = self.seconds {
            if !(seconds.is_finite() && seconds > 0.0) {
                return fail(format!("seconds must be positive, not {seconds}"));
            }
        }
        if !(0.0..=1.0).contains(&self.write_ratio) {
            return fail(format!("write ratio must be in [0, 1], not {}", self.write_ratio));
        }
        if self.keyspace == 0 {
            return fail("keyspace must hold at least one key".into());
        }
        if self.value_size > crate::codec::Limits::default().max_bulk {
            return fail(format!("value size {} exceeds the 64 MiB bulk limit", self.value_size));
        }
        if !(self.warmup_seconds.is_finite() && self.warmup_seconds >= 0.0) {
            return fail(format!("warmup must be zero or more seconds, not {}", self.warmup_seconds));
        }
        if !(self.op_timeout_seconds.is_finite() && self.op_timeout_seconds > 0.0) {
            return fail(format!("operation timeout must be positive, not {}", self.op_timeout_seconds));
        }
        if self.target == Target::Etcd && self.password.is_some() {
            return fail("a password is only supported with the resp target".into());
        }
        if self.target == Target::Etcd && self.wait_replicas.is_some() {
            return fail("wait-replicas is a Redis command; etcd writes are already replicated".into());
        }
        Ok(())
    }
}

/// Why a run could not happen. Errors *during* a run are counted in the
/// report instead.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid benchmark configuration: {0}")]
    Config(String),
    #[error("cannot set up client {client} against {addr}: {message}")]
    Setup { client: usize, addr: String, message: String },
    #[error("preload failed at key {key}: {message}")]
    Preload { key: u64, message: String },
    #[error("benchmark task failed: {0}")]
    Task(String),
}

/// Latency of one kind of operation, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub target: Target,
    pub addr: String,
    pub clients: usize,
    pub write_ratio: f64,
    pub value_size: usize,
    /// Successful measured operations.
    pub ops: u64,
    /// Measured operations that failed (error reply, broken connection, timeout).
    pub errors: u64,
    /// Wall time of the measured phase.
    pub seconds: f64,
    /// `ops / seconds`.
    pub ops_per_sec: f64,
    pub write: LatencySummary,
    pub read: LatencySummary,
    pub all: LatencySummary,
    /// The first distinct error messages, at most a few.
    pub error_samples: Vec<String>,
}

impl BenchReport {
    /// A short human-readable table.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "target {}  addr {}  clients {}  write ratio {:.2}  value {} B",
            self.target, self.addr, self.clients, self.write_ratio, self.value_size
        );
        let _ = writeln!(
            text,
            "{} ops, {} errors in {:.2} s: {:.1} ops/s",
            self.ops, self.errors, self.seconds, self.ops_per_sec
        );
        let _ = writeln!(
            text,
            "{:<6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "µs", "count", "p50", "p99", "p99.9", "max", "mean"
        );
        for (name, summary) in [("write", &self.write), ("read", &self.read), ("all", &self.all)] {
            let _ = writeln!(
                text,
                "{:<6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9.1}",
                name,
                summary.count,
                summary.p50_us,
                summary.p99_us,
                summary.p999_us,
                summary.max_us,
                summary.mean_us
            );
        }
        for message in &self.error_samples {
            let _ = writeln!(text, "error: {message}");
        }
        text
    }
}

/// Run the benchmark described by `config` and report what it measured.
pub async fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    config.validate()?;
    let config = Arc::new(config.clone());
    let prefix = match config.target {
        Target::Etcd => Some(detect_gateway(&config.addr).await?),
        Target::Resp => None,
    };
    let mut connections = Vec::with_capacity(config.clients);
    for client in 0..config.clients {
        let connection = Connection::open(&config, prefix).await.map_err(|message| BenchError::Setup {
            client,
            addr: config.addr.clone(),
            message,
        })?;
        connections.push(connection);
    }
    if config.preload {
        connections = preload(&config, connections).await?;
    }
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(config.warmup_seconds);
    let plan = Arc::new(Plan {
        measure_from,
        end: config.seconds.map(|seconds| measure_from + Duration::from_secs_f64(seconds)),
        tickets: AtomicU64::new(0),
        prefix,
    });
    let mut tasks = JoinSet::new();
    for (client, connection) in connections.into_iter().enumerate() {
        tasks.spawn(client_loop(client, Arc::clone(&config), Arc::clone(&plan), connection));
    }
    let mut outcomes = Vec::with_capacity(config.clients);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.map_err(|error| BenchError::Task(error.to_string()))?);
    }
    // Join order is completion order; merge by client so error samples are stable.
    outcomes.sort_by_key(|outcome| outcome.client);
    let last_finish = outcomes.iter().map(|outcome| outcome.finished).max().unwrap_or(measure_from);
    Ok(report(&config, &outcomes, last_finish.saturating_duration_since(measure_from)))
}

async fn detect_gateway(addr: &str) -> Result<&'static str, BenchError> {
    let setup = |message: String| BenchError::Setup { client: 0, addr: addr.to_string(), message };
    let client = EtcdClient::detect(addr).await.map_err(|error| setup(error.to_string()))?;
    tracing::debug!(prefix = client.prefix(), addr, "etcd gateway found");
    Ok(client.prefix())
}

/// Shared timing of the run.
struct Plan {
    measure_from: Instant,
    end: Option<Instant>,
    /// Measured operations started so far, across clients (for `ops`).
    tickets: AtomicU64,
    prefix: Option<&'static str>,
}

/// One client's connection to the target.
enum Connection {
    Resp(Client),
    Etcd(EtcdClient),
}

/// How one operation went when the connection survived it.
enum Outcome {
    Done,
    /// The server answered with an error.
    Rejected(String),
}

/// An operation whose connection failed: the message, and a new connection is needed.
struct Broken(String);

impl Connection {
    async fn open(config: &BenchConfig, prefix: Option<&'static str>) -> Result<Connection, String> {
        match (config.target, prefix) {
            (Target::Etcd, Some(prefix)) => EtcdClient::connect(&config.addr, prefix)
                .await
                .map(Connection::Etcd)
                .map_err(|e| e.to_string()),
            (Target::Etcd, None) => Err("etcd gateway prefix unknown".to_string()),
            (Target::Resp, _) => {
                let mut client = Client::connect(config.addr.as_str()).await.map_err(|e| e.to_string())?;
                if let Some(password) = &config.password {
                    match client.call(&[b"AUTH", password.as_bytes()]).await {
                        Ok(Value::Simple(_)) => {}
                        Ok(other) => return Err(format!("AUTH refused: {}", describe(&other))),
                        Err(error) => return Err(error.to_string()),
                    }
                }
                Ok(Connection::Resp(client))
            }
        }
    }

    async fn write(
        &mut self,
        key: &[u8],
        value: &[u8],
        wait_replicas: Option<u32>,
    ) -> Result<Outcome, Broken> {
        match self {
            Connection::Resp(client) => resp_write(client, key, value, wait_replicas).await,
            Connection::Etcd(client) => etcd_outcome(client.put(key, value).await),
        }
    }

    async fn read(&mut self, key: &[u8]) -> Result<Outcome, Broken> {
        match self {
            Connection::Resp(client) => match client.call(&[b"GET", key]).await.map_err(broken)? {
                Value::Bulk(_) => Ok(Outcome::Done),
                other => Ok(Outcome::Rejected(describe(&other))),
            },
            Connection::Etcd(client) => etcd_outcome(client.range(key).await.map(|_| ())),
        }
    }
}

async fn resp_write(
    client: &mut Client,
    key: &[u8],
    value: &[u8],
    wait_replicas: Option<u32>,
) -> Result<Outcome, Broken> {
    let Some(replicas) = wait_replicas else {
        return match client.call(&[b"SET", key, value]).await.map_err(broken)? {
            Value::Simple(ok) if ok == "OK" => Ok(Outcome::Done),
            other => Ok(Outcome::Rejected(describe(&other))),
        };
    };
    let commands = [
        vec![b"SET".to_vec(), key.to_vec(), value.to_vec()],
        vec![b"WAIT".to_vec(), replicas.to_string().into_bytes(), b"0".to_vec()],
    ];
    let replies = client.pipeline(&commands).await.map_err(broken)?;
    match replies.as_slice() {
        [Value::Simple(ok), Value::Integer(acked)] if ok == "OK" => {
            if *acked >= i64::from(replicas) {
                Ok(Outcome::Done)
            } else {
                Ok(Outcome::Rejected(format!("WAIT: {acked} of {replicas} replicas acknowledged")))
            }
        }
        [Value::Simple(ok), other] if ok == "OK" => {
            Ok(Outcome::Rejected(format!("WAIT: {}", describe(other))))
        }
        [other, _] => Ok(Outcome::Rejected(describe(other))),
        _ => Err(Broken("pipeline returned the wrong number of replies".to_string())),
    }
}

fn broken(error: ClientError) -> Broken {
    Broken(error.to_string())
}

fn etcd_outcome(result: Result<(), EtcdError>) -> Result<Outcome, Broken> {
    match result {
        Ok(()) => Ok(Outcome::Done),
        Err(error) if error.is_rejection() => Ok(Outcome::Rejected(error.to_string())),
        Err(error) => Err(Broken(error.to_string())),
    }
}

/// A reply shown in an error message: an error reply is its text.
fn describe(value: &Value) -> String {
    match value {
        Value::Error(message) => message.clone(),
        other => format!("unexpected reply {other:?}"),
    }
}

fn key_name(index: u64) -> Vec<u8> {
    format!("key:{index:010}").into_bytes()
}

/// Write every key once, spread over the clients, and hand the connections back.
async fn preload(
    config: &Arc<BenchConfig>,
    connections: Vec<Connection>,
) -> Result<Vec<Connection>, BenchError> {
    let clients = connections.len() as u64;
    let mut tasks = JoinSet::new();
    for (client, mut connection) in connections.into_iter().enumerate() {
        let config = Arc::clone(config);
        tasks.spawn(async move {
            let value = payload(&mut client_rng(config.seed, client), config.value_size);
            let mut key = client as u64;
            while key < config.keyspace {
                let failure = match connection.write(&key_name(key), &value, config.wait_replicas).await {
                    Ok(Outcome::Done) => None,
                    Ok(Outcome::Rejected(message)) | Err(Broken(message)) => Some(message),
                };
                if let Some(message) = failure {
                    return Err(BenchError::Preload { key, message });
                }
                key += clients;
            }
            Ok((client, connection))
        });
    }
    let mut loaded = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        loaded.push(joined.map_err(|error| BenchError::Task(error.to_string()))??);
    }
    loaded.sort_by_key(|(client, _)| *client);
    Ok(loaded.into_iter().map(|(_, connection)| connection).collect())
}

fn client_rng(seed: u64, client: usize) -> Xoshiro256PlusPlus {
    // seed_from_u64 expands through SplitMix64, so nearby inputs give unrelated streams.
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `size` printable bytes, so the same value is valid in every protocol.
fn payload(rng: &mut Xoshiro256PlusPlus, size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size).map(|_| ALPHABET[below(rng, ALPHABET.len() as u64) as usize]).collect()
}

/// Uniform in [0, bound), by multiply-shift (Lemire); bias below 2^-64 × bound.
fn below(rng: &mut Xoshiro256PlusPlus, bound: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(bound)) >> 64) as u64
}

/// Uniform in [0, 1).
fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// What one client measured.
struct ClientOutcome {
    client: usize,
    write: Histogram<u64>,
    read: Histogram<u64>,
    ops: u64,
    errors: u64,
    error_samples: Vec<String>,
    finished: Instant,
}

impl ClientOutcome {
    fn new(client: usize) -> ClientOutcome {
        ClientOutcome {
            client,
            write: latency_histogram(),
            read: latency_histogram(),
            ops: 0,
            errors: 0,
            error_samples: Vec::new(),
            finished: Instant::now(),
        }
    }

    fn record_error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES_MAX && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }
}

fn latency_histogram() -> Histogram<u64> {
    // Auto-resizing: it starts small and grows to the largest latency recorded.
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is a valid precision"))
}

/// Record one latency. `record` grows an auto-resizing histogram; its
/// `saturating_record` would instead clamp to the *current* range (2,047 µs
/// for a fresh one), silently flattening every slower operation.
fn record_latency(histogram: &mut Histogram<u64>, micros: u64) {
    let micros = micros.max(1);
    if histogram.record(micros).is_err() {
        // Only beyond u64's range of resizing; keep the count at least.
        histogram.saturating_record(micros);
    }
}

/// The closed loop of one client. After a transport error the connection is
/// dropped and the next iteration reconnects before its operation.
async fn client_loop(
    client: usize,
    config: Arc<BenchConfig>,
    plan: Arc<Plan>,
    connection: Connection,
) -> ClientOutcome {
    let mut rng = client_rng(config.seed, client);
    let value = payload(&mut rng, config.value_size);
    let op_timeout = Duration::from_secs_f64(config.op_timeout_seconds);
    let mut connection = Some(connection);
    let mut outcome = ClientOutcome::new(client);
    loop {
        let now = Instant::now();
        if plan.end.is_some_and(|end| now >= end) {
            break;
        }
        let measured = now >= plan.measure_from;
        if measured {
            if let Some(limit) = config.ops {
                if plan.tickets.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
            }
        }
        let is_write = unit(&mut rng) < config.write_ratio;
        let key = key_name(below(&mut rng, config.keyspace));
        if connection.is_none() {
            match reconnect(&config, &plan).await {
                Ok(open) => connection = Some(open),
                Err(Broken(message)) => {
                    if measured {
                        outcome.record_error(message);
                    }
                    continue;
                }
            }
        }
        let Some(open) = connection.as_mut() else { continue };
        let started = Instant::now();
        let op = async {
            if is_write {
                open.write(&key, &value, config.wait_replicas).await
            } else {
                open.read(&key).await
            }
        };
        let result = tokio::time::timeout(op_timeout, op)
            .await
            .unwrap_or_else(|_| Err(Broken(format!("no reply within {} s", config.op_timeout_seconds))));
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let failure = match result {
            Ok(Outcome::Done) => None,
            Ok(Outcome::Rejected(message)) => Some(message),
            Err(Broken(message)) => {
                connection = None;
                Some(message)
            }
        };
        if !measured {
            continue;
        }
        match failure {
            None => {
                outcome.ops += 1;
                let histogram = if is_write { &mut outcome.write } else { &mut outcome.read };
                record_latency(histogram, micros);
            }
            Some(message) => outcome.record_error(message),
        }
    }
    outcome.finished = Instant::now();
    outcome
}

/// A new connection to replace a broken one. A failure to reconnect takes the
/// place of an operation and counts as its error, so a dead server ends an
/// `ops`-bounded run instead of stalling it.
async fn reconnect(config: &BenchConfig, plan: &Plan) -> Result<Connection, Broken> {
    tokio::time::sleep(RECONNECT_BACKOFF).await;
    let limit = Duration::from_secs_f64(config.op_timeout_seconds);
    match tokio::time::timeout(limit, Connection::open(config, plan.prefix)).await {
        Ok(Ok(open)) => Ok(open),
        Ok(Err(message)) => Err(Broken(format!("reconnect failed: {message}"))),
        Err(_) => Err(Broken(format!("reconnect timed out after {} s", config.op_timeout_seconds))),
    }
}

fn report(config: &BenchConfig, outcomes: &[ClientOutcome], measured: Duration) -> BenchReport {
    let mut write = latency_histogram();
    let mut read = latency_histogram();
    let mut samples = BTreeSet::new();
    let mut error_samples = Vec::new();
    for outcome in outcomes {
        // Both are auto-resizing histograms of the same precision: add cannot fail.
        let _ = write.add(&outcome.write);
        let _ = read.add(&outcome.read);
        for message in &outcome.error_samples {
            if error_samples.len() < ERROR_SAMPLES_MAX && samples.insert(message.clone()) {
                error_samples.push(message.clone());
            }
        }
    }
    let mut all = write.clone();
    let _ = all.add(&read);
    let ops: u64 = outcomes.iter().map(|outcome| outcome.ops).sum();
    let seconds = measured.as_secs_f64();
    BenchReport {
        target: config.target,
        addr: config.addr.clone(),
        clients: config.clients,
        write_ratio: config.write_ratio,
        value_size: config.value_size,
        ops,
        errors: outcomes.iter().map(|outcome| outcome.errors).sum(),
        seconds,
        ops_per_sec: if seconds > 0.0 { ops as f64 / seconds } else { 0.0 },
        write: LatencySummary::of(&write),
        read: LatencySummary::of(&read),
        all: LatencySummary::of(&all),
        error_samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = client_rng(7, 0);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let n = below(&mut rng, 5);
            assert!(n < 5);
            seen[n as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn unit_is_in_the_half_open_interval() {
        let mut rng = client_rng(7, 1);
        for _ in 0..10_000 {
            let x = unit(&mut rng);
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn client_streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| client_rng(1, 0).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same seed and client: same stream");
        assert_ne!(client_rng(1, 0).next_u64(), client_rng(1, 1).next_u64());
    }

    #[test]
    fn validate_rejects_nonsense() {
        let good = BenchConfig::default();
        assert!(good.validate().is_ok());
        let bad = [
            BenchConfig { clients: 0, ..good.clone() },
            BenchConfig { ops: None, seconds: None, ..good.clone() },
            BenchConfig { seconds: Some(f64::NAN), ..good.clone() },
            BenchConfig { write_ratio: 1.5, ..good.clone() },
            BenchConfig { keyspace: 0, ..good.clone() },
            BenchConfig { warmup_seconds: -1.0, ..good.clone() },
            BenchConfig { op_timeout_seconds: 0.0, ..good.clone() },
            BenchConfig { target: Target::Etcd, password: Some("x".into()), ..good.clone() },
            BenchConfig { target: Target::Etcd, wait_replicas: Some(1), ..good.clone() },
        ];
        for config in bad {
            assert!(matches!(config.validate(), Err(BenchError::Config(_))), "{config:?}");
        }
    }

    #[test]
    fn slow_latencies_are_recorded_not_clamped() {
        let mut histogram = latency_histogram();
        for micros in [0, 1500, 1500, 1500, 70_000, 90_000_000] {
            record_latency(&mut histogram, micros);
        }
        let summary = LatencySummary::of(&histogram);
        assert_eq!(summary.count, 6);
        assert!((1499..=1501).contains(&summary.p50_us), "{summary:?}");
        assert!(summary.max_us >= 90_000_000 && summary.max_us < 90_100_000, "{summary:?}");
        let mut merged = latency_histogram();
        merged.add(&histogram).unwrap();
        assert_eq!(LatencySummary::of(&merged), summary);
    }

    #[test]
    fn render_text_shows_the_figures() {
        let config = BenchConfig::default();
        let outcome = ClientOutcome::new(0);
        let mut report = report(&config, &[outcome], Duration::from_secs(2));
        report.error_samples.push("MOVED 3 127.0.0.1:7001".into());
        let text = report.render_text();
        assert!(text.contains("0 ops, 0 errors in 2.00 s"), "{text}");
        assert!(text.contains("error: MOVED 3"), "{text}");
    }
}
