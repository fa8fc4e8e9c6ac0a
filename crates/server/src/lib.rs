//! quorum-server: the protocols of `quorum-protocols`, run for real.
//!
//! The same sans-IO state machines the simulator drives run here under
//! tokio, with a durable write-ahead log (`quorum-store`), TCP between
//! nodes and the Redis protocol for clients. No protocol logic lives in
//! this crate: it only carries out effects, in the order and with the
//! durability the contract demands (see [`node`]).
//!
//! * [`node`]: the node loop and the log writer (group commit).
//! * [`transport`], [`wire`]: authenticated peer connections, frames.
//! * [`client`]: the RESP2 front end.
//! * [`state`]: the replicated byte-string map and its commands.
//! * [`metrics`]: Prometheus counters, served over HTTP.
//! * [`admin`]: `ADMIN STATUS`, the node's view of the cluster as JSON.

pub mod admin;
pub mod client;
pub mod commands;
pub mod metrics;
pub mod node;
pub mod state;
pub mod storage;
pub mod transport;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use quorum_core::{Cluster, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::client::FrontEnd;
use crate::metrics::Metrics;
use crate::node::{Input, Node, NodeSettings, ServerProtocol};
use crate::transport::Identity;

/// Everything `quorum serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub id: NodeId,
    /// Client (RESP) address.
    pub listen: String,
    /// Peer address this node accepts other nodes on.
    pub peer_listen: String,
    /// Every other node's peer address.
    pub peers: BTreeMap<NodeId, String>,
    /// Other nodes' client addresses, only for error hints (optional).
    pub client_addrs: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    /// The protocol's `--protocol` name (kept in the data dir's identity,
    /// shown by INFO); the protocol itself is the type `start` runs.
    pub protocol: &'static str,
    pub cluster_id: String,
    pub cluster_secret: String,
    pub password: Option<String>,
    pub metrics_listen: Option<String>,
    /// fsync every group commit (the default). Off only for experiments.
    pub fsync: bool,
    /// Zero-fill log segments ahead of use (see `WalOptions::preallocate`).
    pub preallocate: bool,
    pub max_bulk: usize,
    pub request_timeout: Duration,
    pub forward: bool,
}

impl ServeConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.peers.contains_key(&self.id) {
            bail!("--peers names this node ({}) too; list only the others", self.id.0);
        }
        if self.cluster_id.is_empty() {
            bail!("the cluster id must not be empty");
        }
        let max_command = quorum_resp::codec::Limits::default().max_command;
        if self.max_bulk > max_command {
            bail!(
                "--max-bulk-bytes {} is above {max_command}, the most a command may carry (one command is one log record)",
                self.max_bulk
            );
        }
        Ok(())
    }
}

/// A running node: its bound addresses, and the handle that stops it.
pub struct Running {
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The node's live counters and gauges (its role and term among them).
    pub metrics: Arc<Metrics>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stop accepting work, let the log writer finish what it holds, return.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.done.await.context("the node task panicked")?
    }

    /// The stop trigger and the task that ends when the node has stopped
    /// (because it was told to, or by itself on a fatal storage error).
    pub fn split(self) -> (oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
        (self.stop, self.done)
    }
}

/// Open the data dir, recover, bind the listeners and start a node of
/// protocol `P` with settings `protocol_config`. The settings are validated
/// (`Protocol::validate`) before anything on disk is touched.
pub async fn start<P: ServerProtocol>(
    config: ServeConfig,
    protocol_config: P::Config,
) -> anyhow::Result<Running>
where
    P::Msg: Send + 'static,
    P::Timer: Send,
{
    config.validate()?;
    let mut members: Vec<NodeId> = config.peers.keys().copied().collect();
    members.push(config.id);
    members.sort();
    P::validate(&protocol_config, &members)
        .map_err(|e| anyhow::anyhow!("bad {} config: {e}", config.protocol))?;
    let incarnation = claim_data_dir(&config).await?;
    let (log, durable) = storage::open::<P>(&config)?;
    let records = Arc::new(storage::PeerRecords::open(&config.data_dir)?);
    let client_listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen for clients on {}", config.listen))?;
    let peer_listener = TcpListener::bind(&config.peer_listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", config.peer_listen))?;
    let metrics_listener = match &config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))?,
        ),
        None => None,
    };
    let listeners = Listeners { client: client_listener, peer: peer_listener, metrics: metrics_listener };
    let disk = Disk { log, incarnation, records };
    run_node::<P>(config, protocol_config, members, disk, durable, listeners).await
}

/// The data dir's incarnation. A fresh data dir first asks its peers
/// whether they know this node id from an earlier one (its disk was
/// replaced: see `storage`) and is refused if one does; then its
/// incarnation is drawn and written, before anything else.
async fn claim_data_dir(config: &ServeConfig) -> anyhow::Result<u64> {
    let fresh = storage::is_fresh(&config.data_dir);
    if let Some(incarnation) = storage::incarnation(&config.data_dir, fresh)? {
        return Ok(incarnation);
    }
    let incarnation = random_u64()?;
    if fresh {
        let identity = identity(config, incarnation);
        if let Some(peer) = transport::probe_peers(&identity, &config.peers).await {
            bail!(
                "node {id}'s data dir {dir} is empty, but node {peer} knows node {id} from an earlier data dir: a node that forgot its term, vote and acknowledged entries can elect a second leader in a term or lose committed writes; restore that data dir (see --rejoin-as-new in the README)",
                id = config.id.0,
                dir = config.data_dir.display(),
                peer = peer.0,
            );
        }
    }
    storage::write_incarnation(&config.data_dir, incarnation)?;
    Ok(incarnation)
}

fn identity(config: &ServeConfig, incarnation: u64) -> Identity {
    Identity {
        id: config.id,
        cluster_id: config.cluster_id.clone(),
        secret: config.cluster_secret.clone(),
        incarnation,
    }
}

/// What `start` opened in the data dir.
struct Disk {
    log: Box<dyn node::Log>,
    incarnation: u64,
    records: Arc<storage::PeerRecords>,
}

struct Listeners {
    client: TcpListener,
    peer: TcpListener,
    metrics: Option<TcpListener>,
}

/// Start the node loop, the peer transport, the RESP front end and the
/// metrics endpoint over recovered state and bound listeners.
async fn run_node<P: ServerProtocol>(
    config: ServeConfig,
    protocol_config: P::Config,
    members: Vec<NodeId>,
    disk: Disk,
    durable: Vec<P::Record>,
    listeners: Listeners,
) -> anyhow::Result<Running>
where
    P::Msg: Send + 'static,
    P::Timer: Send,
{
    let client_addr = listeners.client.local_addr()?;
    let peer_addr = listeners.peer.local_addr()?;
    let metrics_addr = listeners.metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    let metrics = Arc::new(Metrics::default());
    let identity = identity(&config, disk.incarnation);
    let cluster = Cluster::new(config.id, members);
    let (inputs_tx, inputs_rx) = mpsc::channel::<Input<P::Msg>>(64 * 1024);
    let (replaced_tx, replaced_rx) = mpsc::unbounded_channel();
    let peer_queues = transport::dial_peers(&identity, &config.peers, metrics.clone(), replaced_tx);
    let (fatal_tx, fatal_rx) = oneshot::channel();
    let settings =
        NodeSettings { cluster, forward: config.forward, leader_wait: leader_wait(config.request_timeout) };
    let node = Node::<P>::start(
        settings,
        &protocol_config,
        &durable,
        disk.log,
        peer_queues,
        inputs_tx.clone(),
        metrics.clone(),
        random_u64()?,
        fatal_tx,
    );
    drop(durable);
    let mut tasks = vec![tokio::spawn(transport::accept_peers(
        identity,
        listeners.peer,
        config.peers.keys().copied().collect(),
        inputs_tx.clone(),
        metrics.clone(),
        disk.records,
    ))];
    let id_key = random_u64()?;
    let front = Arc::new(FrontEnd {
        node: inputs_tx,
        id: config.id,
        protocol: config.protocol,
        password: config.password.clone(),
        limits: quorum_resp::codec::Limits { max_bulk: config.max_bulk, ..Default::default() },
        request_timeout: config.request_timeout,
        client_addrs: config.client_addrs.clone(),
        metrics: metrics.clone(),
        id_key,
        connections: AtomicU64::new(0),
        cursors: commands::Cursors::new(id_key),
    });
    tasks.push(tokio::spawn(client::accept_clients(listeners.client, front)));
    if let Some(listener) = listeners.metrics {
        tasks.push(tokio::spawn(serve_metrics(listener, metrics.clone())));
    }
    info!(node = config.id.0, %client_addr, %peer_addr, protocol = config.protocol, "node started");
    let fatal_rx = replaced_or_fatal(&config, replaced_rx, fatal_rx);
    let (stop, done) = supervise(node, inputs_rx, fatal_rx, tasks);
    Ok(Running { client_addr, peer_addr, metrics_addr, metrics, stop, done })
}

/// One receiver for both ways a node stops by itself: the node loop's
/// fatal error, or a peer that knows this node id from another data dir
/// (this one was initialised after the node took part, and a peer that was
/// down at start has now said so).
fn replaced_or_fatal(
    config: &ServeConfig,
    mut replaced: mpsc::UnboundedReceiver<NodeId>,
    fatal: oneshot::Receiver<String>,
) -> oneshot::Receiver<String> {
    let (tx, rx) = oneshot::channel();
    let (id, dir) = (config.id.0, config.data_dir.display().to_string());
    tokio::spawn(async move {
        let error = tokio::select! {
            Some(peer) = replaced.recv() => format!(
                "node {} knows node {id} from another data dir than {dir}: it was replaced after node {id} took part, and this node forgot its term, vote and acknowledged entries; stopped before sending anything to that node",
                peer.0
            ),
            Ok(error) = fatal => error,
            else => return,
        };
        let _ = tx.send(error);
    });
    rx
}

/// Run the node loop until told to stop or a fatal storage error; then stop
/// the listeners, then the node loop (the log writer drains what it holds,
/// fsync and releases, before the node loop returns).
fn supervise<P: ServerProtocol>(
    node: Node<P>,
    inputs: mpsc::Receiver<Input<P::Msg>>,
    fatal: oneshot::Receiver<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>)
where
    P::Msg: Send + 'static,
    P::Timer: Send,
{
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (node_stop_tx, node_stop_rx) = oneshot::channel::<()>();
    let node_task = tokio::spawn(node.run(inputs, node_stop_rx));
    let done = tokio::spawn(async move {
        let result = tokio::select! {
            _ = stop_rx => Ok(()),
            fatal = fatal => match fatal {
                Ok(e) => Err(anyhow::anyhow!("node stopped: {e}")),
                Err(_) => Ok(()),
            },
        };
        for task in tasks {
            task.abort();
        }
        let _ = node_stop_tx.send(());
        let _ = node_task.await;
        result
    });
    (stop_tx, done)
}

/// How long a request may wait for a leader: the request timeout less a
/// tenth (at least 20 ms), so that the client hears the protocol's
/// "no leader" refusal (nothing was done: retry) rather than the front
/// end's timeout (uncertain) when no leader comes in time.
pub fn leader_wait(request_timeout: Duration) -> Duration {
    let margin = (request_timeout / 10).max(Duration::from_millis(20));
    request_timeout.saturating_sub(margin)
}

fn random_u64() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// A minimal HTTP endpoint: `GET /metrics` in Prometheus' text format.
async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // The request line may arrive in pieces: read until the end of
            // the headers (or 4 KiB, or 5 s).
            let mut request = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let read_head = async {
                while request.len() < 4096 && !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(5), read_head).await.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&request);
            let (status, body) = if head.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = stream.write_all(response.as_bytes()).await {
                warn!("metrics client: {e}");
            }
        });
    }
}
