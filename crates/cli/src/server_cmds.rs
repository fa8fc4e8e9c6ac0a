//! `quorum serve`, `quorum cluster` and `quorum bench`: the real server and
//! its load generator. Thin: parse flags, call `quorum-server` or
//! `quorum-resp`, print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use quorum_core::NodeId;
use quorum_registry::Registered;
use quorum_server::{Running, ServeConfig};
use serde::{Deserialize, Serialize};

use crate::UsageError;

#[derive(Args)]
pub struct ServeArgs {
    /// This node's id (a small integer, unique in the cluster).
    #[arg(long)]
    id: u32,
    /// Client address (RESP, the Redis protocol).
    #[arg(long, default_value = "127.0.0.1:6379")]
    listen: String,
    /// Address other nodes connect to.
    #[arg(long)]
    peer_listen: String,
    /// Every other node: ID=HOST:PORT (its --peer-listen), comma-separated.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Where the log and snapshots live.
    #[arg(long)]
    data_dir: PathBuf,
    /// raft or zab.
    #[arg(long, default_value = "raft")]
    protocol: String,
    /// Clients must AUTH with this password.
    #[arg(long, env = "QUORUM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Shared by every node; peers prove they know it before anything else is accepted.
    #[arg(long, env = "QUORUM_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: String,
    /// Names the cluster; a data dir written for another cluster is refused.
    #[arg(long, default_value = "quorum")]
    cluster_id: String,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Other nodes' client addresses, ID=HOST:PORT, only to name the leader in errors.
    #[arg(long, value_delimiter = ',')]
    peer_clients: Vec<String>,
    /// After a replaced disk: join as a new member (a new node id, a learner first) instead of
    /// being refused. Not available yet: it needs membership changes, which the server lacks.
    #[arg(long)]
    rejoin_as_new: bool,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args, Clone)]
pub struct Tuning {
    /// Do not fsync the log (acknowledged writes can be lost in a crash; for experiments only).
    #[arg(long)]
    no_fsync: bool,
    /// Do not zero-fill log segments ahead of use (each fdatasync then also journals the file's growth).
    #[arg(long)]
    no_preallocate: bool,
    /// Largest bulk string a client may send, in bytes (at most 128 MiB, the most one command's
    /// arguments may carry together: a command becomes one log record).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_bulk_bytes: usize,
    /// How long a client command may wait for the cluster before it is answered with an error, in ms.
    /// A command that finds no leader (an election is on) is held and tried again until one leads,
    /// for up to nine tenths of this; then it is refused with -TRYAGAIN (nothing was done).
    #[arg(long, default_value_t = 5_000)]
    request_timeout_ms: u64,
    /// Answer writes at a follower with a redirect error instead of relaying them to the leader.
    #[arg(long)]
    no_forward: bool,
    /// Protocol settings as a JSON object (fields of the protocol's Config, times in µs).
    #[arg(long)]
    config: Option<String>,
}

#[derive(Args)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Data directory; one subdirectory per node. Started again on the same directory, the cluster resumes.
    #[arg(long, default_value = "./quorum-data")]
    data_dir: PathBuf,
    /// First client port; node i listens on PORT+i. Peers use PORT+10000+i, metrics PORT+20000+i.
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// raft or zab.
    #[arg(long, default_value = "raft")]
    protocol: String,
    /// Clients must AUTH with this password.
    #[arg(long, env = "QUORUM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[command(flatten)]
    tuning: Tuning,
}

fn parse_node_map(items: &[String], flag: &str) -> Result<BTreeMap<NodeId, String>, UsageError> {
    let mut map = BTreeMap::new();
    for item in items.iter().filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| UsageError(format!("{flag}: '{item}' is not ID=HOST:PORT")))?;
        let id: u32 = id.parse().map_err(|_| UsageError(format!("{flag}: '{id}' is not a node id")))?;
        if map.insert(NodeId(id), addr.to_string()).is_some() {
            return Err(UsageError(format!("{flag}: node {id} is listed twice")));
        }
    }
    Ok(map)
}

fn servable(name: &str) -> Result<&'static Registered, UsageError> {
    Ok(quorum_registry::find_servable(name)?)
}

fn json_config(text: &Option<String>) -> Result<Option<serde_json::Value>, UsageError> {
    text.as_deref()
        .map(|t| serde_json::from_str(t).map_err(|e| UsageError(format!("--config is not JSON: {e}"))))
        .transpose()
}

fn runtime() -> Result<tokio::runtime::Runtime, UsageError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colour only for a person watching a terminal, not in a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

async fn ctrl_c_or_term() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, UsageError> {
    if args.rejoin_as_new {
        return Err(UsageError(
            "--rejoin-as-new needs membership changes (joining under a new node id, as a learner first), which the server does not have yet; restore the node's old data dir instead"
                .into(),
        ));
    }
    let registered = servable(&args.protocol)?;
    let overrides = json_config(&args.tuning.config)?;
    let config = ServeConfig {
        id: NodeId(args.id),
        listen: args.listen,
        peer_listen: args.peer_listen,
        peers: parse_node_map(&args.peers, "--peers")?,
        client_addrs: parse_node_map(&args.peer_clients, "--peer-clients")?,
        data_dir: args.data_dir,
        protocol: registered.entry.name,
        cluster_id: args.cluster_id,
        cluster_secret: args.cluster_secret,
        password: args.password,
        metrics_listen: args.metrics_listen,
        fsync: !args.tuning.no_fsync,
        preallocate: !args.tuning.no_preallocate,
        max_bulk: args.tuning.max_bulk_bytes,
        request_timeout: Duration::from_millis(args.tuning.request_timeout_ms),
        forward: !args.tuning.no_forward,
    };
    if config.cluster_secret.is_empty() {
        return Err(UsageError("--cluster-secret must not be empty: peers authenticate with it".into()));
    }
    config.validate().map_err(|e| UsageError(format!("{e:#}")))?;
    init_logging();
    let rt = runtime()?;
    rt.block_on(async move {
        let running = registered.serve(config, overrides)?.await.map_err(|e| UsageError(format!("{e:#}")))?;
        eprintln!("quorum node ready: clients at {}, peers at {}", running.client_addr, running.peer_addr);
        wait_then_stop(vec![running]).await
    })
}

/// Run until Ctrl-C / SIGTERM (stop every node cleanly, exit 0) or until a
/// node stops by itself, which only a fatal error does (stop the rest, exit 1).
async fn wait_then_stop(nodes: Vec<Running>) -> Result<ExitCode, UsageError> {
    let mut stops = Vec::new();
    let mut done = tokio::task::JoinSet::new();
    for running in nodes {
        let (stop, finished) = running.split();
        stops.push(stop);
        done.spawn(finished);
    }
    let code = tokio::select! {
        _ = ctrl_c_or_term() => {
            eprintln!("stopping (the log writers drain and fsync first)");
            ExitCode::SUCCESS
        }
        Some(first) = done.join_next() => {
            match first {
                Ok(Ok(Ok(()))) => eprintln!("a node stopped"),
                Ok(Ok(Err(e))) => eprintln!("error: {e:#}"),
                Ok(Err(e)) | Err(e) => eprintln!("error: a node failed: {e}"),
            }
            ExitCode::from(1)
        }
    };
    for stop in stops {
        let _ = stop.send(());
    }
    while done.join_next().await.is_some() {}
    Ok(code)
}

/// What `quorum cluster` remembers in its data dir, so a restart resumes the same cluster.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct ClusterFile {
    cluster_id: String,
    secret: String,
    nodes: u32,
    protocol: String,
}

fn cluster_file(dir: &Path, nodes: u32, protocol: &str) -> Result<ClusterFile, UsageError> {
    let path = dir.join("cluster.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let file: ClusterFile = serde_json::from_slice(&bytes)
                .map_err(|e| UsageError(format!("{} is not a quorum cluster file: {e}", path.display())))?;
            if file.nodes != nodes || file.protocol != protocol {
                return Err(UsageError(format!(
                    "{} holds a {}-node {} cluster; start it with --nodes {} --protocol {} or use another --data-dir",
                    dir.display(),
                    file.nodes,
                    file.protocol,
                    file.nodes,
                    file.protocol
                )));
            }
            Ok(file)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
            let mut random = [0u8; 24];
            getrandom::fill(&mut random).map_err(|e| UsageError(format!("no OS randomness: {e}")))?;
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let file = ClusterFile {
                cluster_id: format!("local-{}", &hex[..12]),
                secret: hex[12..].to_string(),
                nodes,
                protocol: protocol.to_string(),
            };
            let text = serde_json::to_vec_pretty(&file).expect("serializable");
            write_secret_file(dir, &path, &text)
                .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
            Ok(file)
        }
        Err(e) => Err(UsageError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Write `path` (in `dir`) atomically and durably, readable by its owner
/// only: it holds the cluster secret.
fn write_secret_file(dir: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(text)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

pub fn cluster(args: ClusterArgs) -> Result<ExitCode, UsageError> {
    if args.nodes == 0 || args.nodes > 9 {
        return Err(UsageError(format!("--nodes must be 1 to 9, not {}", args.nodes)));
    }
    let top = u32::from(args.port) + 20_000 + args.nodes;
    if top > 65_535 {
        return Err(UsageError(format!("--port {} is too high: node ports reach {top}", args.port)));
    }
    let registered = servable(&args.protocol)?;
    let file = cluster_file(&args.data_dir, args.nodes, &args.protocol)?;
    let protocol_config = json_config(&args.tuning.config)?;
    let port = |base: u32, i: u32| format!("127.0.0.1:{}", u32::from(args.port) + base + i);
    let client_addrs: BTreeMap<NodeId, String> = (0..args.nodes).map(|i| (NodeId(i), port(0, i))).collect();
    let peer_addrs: BTreeMap<NodeId, String> =
        (0..args.nodes).map(|i| (NodeId(i), port(10_000, i))).collect();
    let configs: Vec<ServeConfig> = (0..args.nodes)
        .map(|i| ServeConfig {
            id: NodeId(i),
            listen: port(0, i),
            peer_listen: port(10_000, i),
            peers: peer_addrs.iter().filter(|(n, _)| n.0 != i).map(|(n, a)| (*n, a.clone())).collect(),
            client_addrs: client_addrs.clone(),
            data_dir: args.data_dir.join(format!("node-{i}")),
            protocol: registered.entry.name,
            cluster_id: file.cluster_id.clone(),
            cluster_secret: file.secret.clone(),
            password: args.password.clone(),
            metrics_listen: Some(port(20_000, i)),
            fsync: !args.tuning.no_fsync,
            preallocate: !args.tuning.no_preallocate,
            max_bulk: args.tuning.max_bulk_bytes,
            request_timeout: Duration::from_millis(args.tuning.request_timeout_ms),
            forward: !args.tuning.no_forward,
        })
        .collect();
    init_logging();
    let rt = runtime()?;
    rt.block_on(async move {
        let mut running = Vec::new();
        for config in configs {
            let id = config.id;
            let dir = config.data_dir.clone();
            match registered.serve(config, protocol_config.clone())?.await {
                Ok(r) => {
                    println!(
                        "node {}: redis://{}  (peers {}, metrics http://{}/metrics, data {})",
                        id.0,
                        r.client_addr,
                        r.peer_addr,
                        r.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
                        dir.display()
                    );
                    running.push(r);
                }
                Err(e) => {
                    for r in running {
                        let _ = r.stop().await;
                    }
                    return Err(UsageError(format!("node {}: {e:#}", id.0)));
                }
            }
        }
        println!(
            "{}-node {} cluster '{}' is up; try: redis-cli -p {} SET hello world   (Ctrl-C stops it; run again to resume)",
            args.nodes, args.protocol, file.cluster_id, args.port
        );
        let leaders: Vec<_> = running.iter().map(|r| (r.metrics.clone(), r.client_addr)).collect();
        tokio::spawn(announce_leader(leaders));
        wait_then_stop(running).await
    })
}

/// Print one line once a node leads (the cluster is ready for commands;
/// a command sent before then waits for the election, up to
/// `--request-timeout-ms`).
async fn announce_leader(
    nodes: Vec<(std::sync::Arc<quorum_server::metrics::Metrics>, std::net::SocketAddr)>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let leader = nodes.iter().find(|(m, _)| m.role_name() == "leader");
        if let Some((metrics, addr)) = leader {
            let (node, term) = (metrics.node_id.load(Relaxed), metrics.term.load(Relaxed));
            println!("ready: node {node} leads (term {term}) at redis://{addr}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Args)]
pub struct BenchArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// resp (quorum, Redis) or etcd (its v3 JSON gateway, e.g. --addr 127.0.0.1:2379).
    #[arg(long, default_value = "resp")]
    target: String,
    /// Concurrent clients, each with its own connection and one command in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Total operations (default: run for --seconds).
    #[arg(long, conflicts_with = "seconds")]
    ops: Option<u64>,
    /// Seconds to run.
    #[arg(long)]
    seconds: Option<f64>,
    /// Fraction of operations that are writes (SET); the rest are reads (GET).
    #[arg(long, default_value_t = 0.5)]
    write_ratio: f64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keyspace: u64,
    /// AUTH with this password.
    #[arg(long, env = "QUORUM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Redis: follow every SET with `WAIT N 0` (synchronous replication to N replicas).
    #[arg(long)]
    wait_replicas: Option<u32>,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    warmup_seconds: f64,
    /// Before measuring, write every key of the keyspace once (unmeasured), so reads find values.
    #[arg(long)]
    preload: bool,
    /// Seed of the clients' key and operation choices (same seed, same request sequence per client).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds an operation may stay unanswered before it counts as an error and its connection is replaced.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode, UsageError> {
    use quorum_resp::bench::{run, BenchConfig, Target};
    let target = match args.target.as_str() {
        "resp" => Target::Resp,
        "etcd" => Target::Etcd,
        other => return Err(UsageError(format!("--target is resp or etcd, not '{other}'"))),
    };
    if !(0.0..=1.0).contains(&args.write_ratio) {
        return Err(UsageError(format!("--write-ratio must be between 0 and 1, not {}", args.write_ratio)));
    }
    if args.clients == 0 {
        return Err(UsageError("--clients must be at least 1".into()));
    }
    let seconds = match (args.ops, args.seconds) {
        (None, None) => Some(10.0),
        (_, s) => s,
    };
    let config = BenchConfig {
        addr: args.addr,
        target,
        clients: args.clients,
        ops: args.ops,
        seconds,
        write_ratio: args.write_ratio,
        value_size: args.value_size,
        keyspace: args.keyspace,
        password: args.password,
        wait_replicas: args.wait_replicas,
        warmup_seconds: args.warmup_seconds,
        preload: args.preload,
        seed: args.seed,
        op_timeout_seconds: args.timeout,
    };
    let rt = runtime()?;
    let report = rt.block_on(run(&config)).map_err(|e| UsageError(format!("{e}")))?;
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serializable"));
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}
