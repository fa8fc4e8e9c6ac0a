//! The node loop: one task owns the protocol instance and carries out its
//! effects in contract order.
//!
//! ```text
//!   peers ─┐                       ┌─ appends/checkpoints ─┐
//! clients ─┼─► input channel ─► node loop ──────────────────► log writer thread
//!  timers ─┘   (drained in batches) │                        │ one fsync per group
//!                                   └─ timers (local)        └─► sends, replies (released
//!                                                                 only after the fsync)
//! ```
//!
//! The contract's one rule, *a persist is durable before any effect emitted
//! after it leaves the node*, is kept by never letting a send or a reply
//! leave except through the log writer, after the fsync that covers every
//! record emitted before it. The writer takes every batch that is waiting
//! when it wakes, appends all their records, fsyncs once and then releases
//! all their effects in order: group commit, the shape of etcd-io/raft's
//! `Ready`. Batches are handed over in order and released in order, so an
//! effect never overtakes one emitted before it.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorum_core::{Cluster, Effect, NodeId, Observation, Out, Protocol, RequestId, Rng, Role, Time};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::state::{Command, Millis, Op, Output};
use crate::wire::{encode_frame, Frame};

/// Most inputs handled before the batch's effects are handed to the writer.
const MAX_BATCH: usize = 512;

/// Steps between two checks of the protocol's invariants in a release build
/// (a debug build checks after every step, as the simulator does; both check
/// after start, that is after recovery). A check walks the whole in-memory
/// log (raft's `Log::check`, zab's `History::check`: up to the 20,000 records
/// between the server's snapshots), measured at 0.1–0.2 ms for raft and
/// 0.4–0.5 ms for zab when sampled (caches cold), 0.03 ms and 0.09 ms when run
/// after every step. Every step, that halved raft's throughput and cut zab's
/// reads by 70% (3-node cluster, 64 clients); every 1024th step it takes
/// 0.4% (raft) and 1% (zab) of the cluster's CPU and no measurable
/// throughput, where every 256th took 1.5% (raft). At the 5,000 to 10,000
/// steps a second of a busy node, a broken invariant that persists is still
/// caught within about 0.2 s.
const INVARIANTS_EVERY_STEPS: u64 = 1024;

/// How often a leader looks for keys past their deadline, and proposes
/// their removal if there are any (Redis' active expiry runs 10 times a
/// second too). A read never depends on it: an expired key is absent to
/// every command from its deadline on; the purge frees its memory.
const PURGE_EVERY: Duration = Duration::from_millis(100);

/// How often a request held for want of a leader is handed to the protocol
/// again (and at once when this node's role or term changes).
const PARKED_RETRY_EVERY: Duration = Duration::from_millis(10);

/// How often the node loop samples the protocol's progress (commit point,
/// members, followers' match) for metrics.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The wall clock in Unix ms: a command's stamp (see `state`'s time rule).
pub fn wall_clock_ms() -> Millis {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Millis::try_from(since_epoch.as_millis()).unwrap_or(Millis::MAX)
}

/// A protocol the server can run: a replicated log of [`Command`]s.
pub trait ServerProtocol: Protocol<Request = Command, Response = Output> + Send + 'static
where
    Self::Msg: Send + 'static,
    Self::Timer: Send,
{
}

impl<P> ServerProtocol for P
where
    P: Protocol<Request = Command, Response = Output> + Send + 'static,
    P::Msg: Send + 'static,
    P::Timer: Send,
{
}

/// An input to the node loop.
pub enum Input<M> {
    Peer {
        from: NodeId,
        frame: Frame<M>,
    },
    Client {
        id: RequestId,
        command: Command,
        reply: oneshot::Sender<Output>,
    },
    /// A stale read from this node's own state (a connection that opted in).
    LocalRead {
        command: Command,
        reply: oneshot::Sender<Option<Output>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Admin {
        command: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What `INFO` and the cluster command show.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: NodeId,
    pub role: &'static str,
    pub term: u64,
    pub describe: String,
    pub pending_requests: usize,
    /// The protocol's replication progress, as of this answer.
    pub progress: Option<quorum_core::Progress>,
}

/// The durable log as the writer uses it. `quorum_store::Wal` in production;
/// an in-memory log in tests.
pub trait Log: Send + 'static {
    fn append(&mut self, record: &[u8]) -> Result<(), String>;
    fn sync(&mut self) -> Result<(), String>;
    fn checkpoint(&mut self, record: &[u8]) -> Result<(), String>;
    /// Bytes on disk, for metrics.
    fn size(&self) -> u64;
}

/// How a node stops by itself. The first fatal error (a storage failure in
/// the writer, a panic in the node loop) is reported, once, through the
/// sender [`Node::start`] was given; from then on the writer writes and
/// releases nothing more, as if the process had crashed.
struct Fatal {
    report: Mutex<Option<oneshot::Sender<String>>>,
    raised: AtomicBool,
}

impl Fatal {
    fn new(report: oneshot::Sender<String>) -> Fatal {
        Fatal { report: Mutex::new(Some(report)), raised: AtomicBool::new(false) }
    }

    fn raise(&self, error: String) {
        self.raised.store(true, Ordering::Release);
        let report = self.report.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(report) = report {
            let _ = report.send(error);
        }
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }
}

enum Durable {
    Append(Vec<u8>),
    Checkpoint(Vec<u8>),
}

/// Where a released effect goes.
pub enum Release<M> {
    Peer {
        to: NodeId,
        frame: Vec<u8>,
    },
    Local {
        reply: oneshot::Sender<Output>,
        output: Output,
    },
    /// A message to this node itself, fed back into the input channel.
    Myself(Frame<M>),
}

struct Batch<M> {
    durable: Vec<Durable>,
    releases: Vec<Release<M>>,
    /// How many of `releases` were emitted before the first durable record:
    /// those depend on nothing unsynced and may leave before the fsync.
    ahead_of_durable: usize,
}

impl<M> Batch<M> {
    fn new() -> Self {
        Batch { durable: Vec::new(), releases: Vec::new(), ahead_of_durable: 0 }
    }

    fn push_durable(&mut self, durable: Durable) {
        if self.durable.is_empty() {
            self.ahead_of_durable = self.releases.len();
        }
        self.durable.push(durable);
    }

    fn is_empty(&self) -> bool {
        self.durable.is_empty() && self.releases.is_empty()
    }
}

/// The other nodes' outbound queues (frames, already encoded).
pub type PeerQueues = BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>;

enum Route {
    Local { reply: oneshot::Sender<Output>, command: Command, forwarded: bool },
    Remote(NodeId),
}

struct Pending {
    route: Route,
    /// When the request reached this node (kept across relays and retries).
    since: Instant,
}

pub struct NodeSettings {
    pub cluster: Cluster,
    /// Relay commands a follower cannot serve to the leader it names.
    pub forward: bool,
    /// How long a client's request that the protocol refuses for want of a
    /// leader (`Output::Rejected`: not executed) is held and tried again
    /// before the refusal is the answer; zero answers at once. A request
    /// that waits through an election is answered by the new leader, as
    /// etcd holds a proposal while it elects one.
    pub leader_wait: Duration,
}

/// Drives one protocol instance. Built by [`Node::start`], run by [`Node::run`].
pub struct Node<P: ServerProtocol>
where
    P::Msg: Send + 'static,
    P::Timer: Send,
{
    id: NodeId,
    protocol: P,
    rng: Rng,
    epoch: Instant,
    timers: BTreeMap<P::Timer, Instant>,
    pending: HashMap<RequestId, Pending>,
    settings: NodeSettings,
    metrics: Arc<Metrics>,
    to_writer: std::sync::mpsc::Sender<Batch<P::Msg>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Batches handed to the writer, and (shared with it) how many it has
    /// fully released: when equal, nothing is waiting on an fsync.
    batches_sent: u64,
    batches_done: Arc<AtomicU64>,
    peers: PeerQueues,
    last_sweep: Instant,
    /// Steps since the protocol's invariants were last checked.
    steps_unchecked: u64,
    fatal: Arc<Fatal>,
    last_purge: Instant,
    /// The request ids of this boot's purges: a client id of its own
    /// (random per boot) and a counter.
    purge_client: u64,
    purges: u64,
    /// Requests refused for want of a leader, to try again (their routes
    /// stay in `pending`), and when.
    parked: Vec<RequestId>,
    retry_parked_at: Instant,
    last_progress: Instant,
}

impl<P: ServerProtocol> Node<P>
where
    P::Msg: Send + 'static,
    P::Timer: Send,
{
    /// Recover the protocol from `durable` (the log's checkpoint and records,
    /// decoded), check its invariants and start the log writer thread.
    /// `myself` feeds self-sends back. `on_fatal` hears why the node stopped
    /// by itself, if it does: the log could not be written, or the node loop
    /// panicked (a broken protocol invariant is a panic). A panic here, in
    /// the protocol's start or its first check, is the caller's.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        settings: NodeSettings,
        config: &P::Config,
        durable: &[P::Record],
        log: Box<dyn Log>,
        peers: PeerQueues,
        myself: mpsc::Sender<Input<P::Msg>>,
        metrics: Arc<Metrics>,
        seed: u64,
        on_fatal: oneshot::Sender<String>,
    ) -> Node<P> {
        let id = settings.cluster.id;
        metrics.node_id.store(u64::from(id.0), Relaxed);
        let (to_writer, from_node) = std::sync::mpsc::channel();
        let writer_metrics = metrics.clone();
        let batches_done = Arc::new(AtomicU64::new(0));
        let writer_peers = peers.clone();
        let writer_done = batches_done.clone();
        let fatal = Arc::new(Fatal::new(on_fatal));
        let writer_fatal = fatal.clone();
        let writer = std::thread::Builder::new()
            .name(format!("log-writer-{}", id.0))
            .spawn(move || {
                writer(log, from_node, writer_peers, myself, writer_metrics, writer_done, writer_fatal)
            })
            .expect("spawn the log writer thread");
        let mut rng = Rng::stream(seed, u64::from(id.0));
        let epoch = Instant::now();
        let mut out = Out::new(Time(0), &mut rng);
        let protocol = P::start(&settings.cluster, config, durable, &mut out);
        let effects = out.into_effects();
        // Always after recovery: a log that recovers into a broken state
        // must stop the node before it serves anything.
        protocol.invariants();
        let mut node = Node {
            id,
            protocol,
            rng,
            epoch,
            timers: BTreeMap::new(),
            pending: HashMap::new(),
            settings,
            metrics,
            to_writer,
            writer: Some(writer),
            batches_sent: 0,
            batches_done,
            peers,
            last_sweep: epoch,
            steps_unchecked: 0,
            fatal,
            last_purge: epoch,
            purge_client: crate::client::client_id(seed ^ 0x7075_7267_6500_0000, u64::from(id.0)),
            purges: 0,
            parked: Vec::new(),
            retry_parked_at: epoch,
            last_progress: epoch,
        };
        let mut batch = Batch::new();
        node.route(effects, &mut batch);
        node.flush(batch);
        node
    }

    fn now(&self) -> Time {
        Time(self.epoch.elapsed().as_micros() as u64)
    }

    /// Run until `stop` fires (or every input sender is gone, or a step
    /// panics); then let the log writer finish every batch it holds, and
    /// return. A panic is logged and reported through `on_fatal`, and the
    /// writer then releases nothing more: the node stops as if it crashed.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input<P::Msg>>, mut stop: oneshot::Receiver<()>) {
        loop {
            let deadline = self.next_wake();
            let first = tokio::select! {
                biased;
                _ = &mut stop => break,
                input = inputs.recv() => match input {
                    Some(input) => Some(input),
                    None => break,
                },
                _ = sleep_until(deadline) => None,
            };
            // The protocol is not used again after a panic: the node stops.
            let turn = panic::catch_unwind(AssertUnwindSafe(|| self.turn(first, &mut inputs)));
            if let Err(panic) = turn {
                self.stop_on_panic(panic.as_ref());
                break;
            }
        }
        debug!(node = self.id.0, "node loop ends");
        // Clients and peers sending now hear at once that the node is gone,
        // and a self-send of the writer's cannot block on a full channel.
        drop(inputs);
        let writer = self.writer.take();
        drop(self); // closes the writer's channel: it drains and exits
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    /// One turn of the loop: the timers that are due, then `first` and up to
    /// `MAX_BATCH` inputs in all, their effects flushed as one batch.
    fn turn(&mut self, first: Option<Input<P::Msg>>, inputs: &mut mpsc::Receiver<Input<P::Msg>>) {
        let mut batch = Batch::new();
        self.fire_timers(&mut batch);
        let mut handled = 0;
        if let Some(input) = first {
            self.handle(input, &mut batch);
            handled += 1;
            while handled < MAX_BATCH {
                match inputs.try_recv() {
                    Ok(input) => {
                        self.handle(input, &mut batch);
                        handled += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        self.retry_parked(&mut batch);
        self.propose_purge(&mut batch);
        self.sample_progress();
        self.metrics.batches.fetch_add(1, Relaxed);
        self.metrics.batched_inputs.fetch_add(handled as u64, Relaxed);
        self.flush(batch);
        self.sweep();
    }

    /// Every `PURGE_EVERY`, on the leader: if a key's deadline has passed by
    /// this node's clock, propose `Op::Purge`, stamped like any command, so
    /// every replica removes the same keys at the same log position. Its
    /// answer goes nowhere (no client waits for it).
    fn propose_purge(&mut self, batch: &mut Batch<P::Msg>) {
        let now = Instant::now();
        if now.duration_since(self.last_purge) < PURGE_EVERY || self.metrics.role.load(Relaxed) != 2 {
            return;
        }
        self.last_purge = now;
        let stamp_ms = wall_clock_ms();
        let probe = Command { stamp_ms, op: Op::NextDeadline };
        let Some(Output::Int(earliest)) = self.protocol.read_local(&probe) else {
            return;
        };
        if earliest < 0 || earliest >= stamp_ms {
            return;
        }
        self.purges += 1;
        let id = RequestId::new(self.purge_client, self.purges);
        self.step(batch, |p, out| p.on_request(id, Command { stamp_ms, op: Op::Purge }, out));
    }

    /// Every `PROGRESS_EVERY`, publish the protocol's progress to the metrics.
    fn sample_progress(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_progress) >= PROGRESS_EVERY {
            self.last_progress = now;
            self.metrics.set_progress(self.protocol.progress());
        }
    }

    /// Count a client's write answered (its result, or a refusal or an
    /// uncertain outcome after any wait) and time it from its arrival.
    fn answered(&self, command: &Command, since: Instant, output: &Output) {
        if command.op.is_read_only() {
            return;
        }
        if matches!(output, Output::Rejected { .. } | Output::Indeterminate { .. }) {
            self.metrics.proposals_failed.fetch_add(1, Relaxed);
        } else {
            self.metrics.proposals_committed.fetch_add(1, Relaxed);
            self.metrics.observe_commit(since.elapsed());
        }
    }

    /// When the loop must wake without input: the first timer, or the next
    /// retry of parked requests.
    fn next_wake(&self) -> Option<Instant> {
        let timer = self.timers.values().min().copied();
        if self.parked.is_empty() {
            return timer;
        }
        Some(timer.map_or(self.retry_parked_at, |t| t.min(self.retry_parked_at)))
    }

    /// Hand every parked request to the protocol again, restamped, once
    /// `retry_parked_at` has come: a leader may be known by now. One that
    /// is refused again parks again, or is answered past its wait.
    fn retry_parked(&mut self, batch: &mut Batch<P::Msg>) {
        let now = Instant::now();
        if self.parked.is_empty() || now < self.retry_parked_at {
            return;
        }
        self.retry_parked_at = now + PARKED_RETRY_EVERY;
        for id in std::mem::take(&mut self.parked) {
            let Some(Pending { route: Route::Local { reply, command, .. }, .. }) = self.pending.get(&id)
            else {
                continue; // answered, or its client gave up and was swept
            };
            if reply.is_closed() {
                self.pending.remove(&id);
                continue;
            }
            let command = Command { stamp_ms: wall_clock_ms(), op: command.op.clone() };
            self.step(batch, |p, out| p.on_request(id, command, out));
        }
    }

    /// Whether a request that reached this node at `since` and was refused
    /// for want of a leader may still wait for one.
    fn may_wait(&self, since: Instant) -> bool {
        since.elapsed() < self.settings.leader_wait
    }

    /// Hold a refused request (its route back to the client, not relayed)
    /// for the next retry.
    fn park(&mut self, id: RequestId, reply: oneshot::Sender<Output>, command: Command, since: Instant) {
        let route = Route::Local { reply, command, forwarded: false };
        self.pending.insert(id, Pending { route, since });
        self.parked.push(id);
        self.metrics.requests_parked.fetch_add(1, Relaxed);
    }

    fn stop_on_panic(&self, panic: &(dyn Any + Send)) {
        let message = panic_message(panic);
        error!(node = self.id.0, "the node loop panicked, stopping the node: {message}");
        self.fatal.raise(format!("node {} panicked: {message}", self.id.0));
    }

    fn fire_timers(&mut self, batch: &mut Batch<P::Msg>) {
        let now = Instant::now();
        let due: Vec<P::Timer> =
            self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| t.clone()).collect();
        for timer in due {
            self.timers.remove(&timer);
            self.step(batch, |p, out| p.on_timer(timer, out));
        }
    }

    fn step(&mut self, batch: &mut Batch<P::Msg>, f: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        let now = self.now();
        let mut out = Out::new(now, &mut self.rng);
        f(&mut self.protocol, &mut out);
        let effects = out.into_effects();
        self.check_invariants_sampled();
        self.route(effects, batch);
    }

    /// Check the protocol's invariants after every step in a debug build and
    /// after every `INVARIANTS_EVERY_STEPS`-th in a release build, before the
    /// step's effects are routed: a step caught breaking one emits nothing.
    fn check_invariants_sampled(&mut self) {
        self.steps_unchecked += 1;
        if cfg!(debug_assertions) || self.steps_unchecked >= INVARIANTS_EVERY_STEPS {
            self.steps_unchecked = 0;
            self.protocol.invariants();
        }
    }

    fn handle(&mut self, input: Input<P::Msg>, batch: &mut Batch<P::Msg>) {
        match input {
            Input::Peer { from, frame } => match frame {
                Frame::Protocol(msg) => self.step(batch, |p, out| p.on_message(from, msg, out)),
                Frame::Forward { id, mut command } => {
                    command.stamp_ms = wall_clock_ms();
                    if self.pending.contains_key(&id) {
                        return; // a duplicate relay; the first one will be answered
                    }
                    self.pending.insert(id, Pending { route: Route::Remote(from), since: Instant::now() });
                    self.step(batch, |p, out| p.on_request(id, command, out));
                }
                Frame::ForwardReply { id, output } => {
                    let Some(Pending { route: Route::Local { reply, command, .. }, since }) =
                        self.pending.remove(&id)
                    else {
                        return;
                    };
                    // The node relayed to has stopped leading: wait for the next one.
                    if matches!(output, Output::Rejected { .. }) && self.may_wait(since) {
                        self.park(id, reply, command, since);
                    } else {
                        self.answered(&command, since, &output);
                        let _ = reply.send(output);
                    }
                }
            },
            Input::Client { id, mut command, reply } => {
                command.stamp_ms = wall_clock_ms();
                self.metrics.client_requests.fetch_add(1, Relaxed);
                let route = Route::Local { reply, command: command.clone(), forwarded: false };
                self.pending.insert(id, Pending { route, since: Instant::now() });
                self.step(batch, |p, out| p.on_request(id, command, out));
            }
            Input::LocalRead { mut command, reply } => {
                command.stamp_ms = wall_clock_ms();
                let _ = reply.send(self.protocol.read_local(&command));
            }
            Input::Status { reply } => {
                let progress = self.protocol.progress();
                self.metrics.set_progress(progress.clone());
                let _ = reply.send(Status {
                    id: self.id,
                    role: self.metrics.role_name(),
                    term: self.metrics.term.load(Relaxed),
                    describe: self.protocol.describe(),
                    pending_requests: self.pending.len(),
                    progress,
                });
            }
            Input::Admin { command, reply } => {
                let mut result = Ok(());
                self.step(batch, |p, out| result = p.on_admin(&command, out));
                let _ = reply.send(result);
            }
        }
    }

    /// Turn a step's effects into durable records, timers and releases, in order.
    fn route(&mut self, effects: Vec<Effect<P>>, batch: &mut Batch<P::Msg>) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    if P::carries_snapshot(&msg) {
                        self.metrics.snapshot_sends.fetch_add(1, Relaxed);
                    }
                    if to == self.id {
                        batch.releases.push(Release::Myself(Frame::Protocol(msg)));
                    } else {
                        let mut frame = Vec::new();
                        match encode_frame(&Frame::Protocol(msg), &mut frame) {
                            Ok(()) => batch.releases.push(Release::Peer { to, frame }),
                            Err(e) => error!(node = self.id.0, %to, "cannot encode a message: {e}"),
                        }
                    }
                }
                Effect::Persist(record) => match postcard::to_allocvec(&record) {
                    Ok(bytes) => batch.push_durable(Durable::Append(bytes)),
                    Err(e) => panic!("a protocol record must encode: {e}"),
                },
                Effect::Checkpoint(record) => match postcard::to_allocvec(&record) {
                    Ok(bytes) => batch.push_durable(Durable::Checkpoint(bytes)),
                    Err(e) => panic!("a protocol checkpoint must encode: {e}"),
                },
                Effect::SetTimer { timer, after } => {
                    self.timers.insert(timer, Instant::now() + Duration::from_micros(after.0));
                }
                Effect::CancelTimer(timer) => {
                    self.timers.remove(&timer);
                }
                Effect::Reply { id, response } => self.reply(id, response, batch),
                Effect::Observe(observation) => self.observe(observation),
            }
        }
    }

    fn reply(&mut self, id: RequestId, output: Output, batch: &mut Batch<P::Msg>) {
        let Some(Pending { route, since }) = self.pending.remove(&id) else {
            return; // answered already, or the client gave up
        };
        match route {
            Route::Local { reply, command, forwarded } => {
                if let Output::Rejected { hint, .. } = &output {
                    match hint.filter(|l| *l != self.id) {
                        Some(leader) if self.settings.forward && !forwarded => {
                            let mut frame = Vec::new();
                            let relayed = Frame::<P::Msg>::Forward { id, command: command.clone() };
                            if encode_frame(&relayed, &mut frame).is_ok() {
                                self.metrics.forwarded.fetch_add(1, Relaxed);
                                batch.releases.push(Release::Peer { to: leader, frame });
                                let route = Route::Local { reply, command, forwarded: true };
                                self.pending.insert(id, Pending { route, since });
                                return;
                            }
                        }
                        // A redirect the client follows itself (--no-forward).
                        Some(_) => {}
                        None if self.may_wait(since) => {
                            self.park(id, reply, command, since);
                            return;
                        }
                        None => {}
                    }
                }
                self.answered(&command, since, &output);
                batch.releases.push(Release::Local { reply, output });
            }
            Route::Remote(origin) => {
                let mut frame = Vec::new();
                if encode_frame(&Frame::<P::Msg>::ForwardReply { id, output }, &mut frame).is_ok() {
                    batch.releases.push(Release::Peer { to: origin, frame });
                }
            }
        }
    }

    fn observe(&mut self, observation: Observation) {
        match observation {
            Observation::Role { role, term } => {
                let code = match role {
                    Role::Leader => 2,
                    Role::Candidate => 1,
                    Role::Follower => 0,
                };
                self.metrics.role.store(code, Relaxed);
                if self.metrics.term.swap(term, Relaxed) != term {
                    self.metrics.leader_changes.fetch_add(1, Relaxed);
                }
                if role == Role::Leader {
                    self.metrics.elections_won.fetch_add(1, Relaxed);
                }
                // A leader may be known now: parked requests go again at once.
                self.retry_parked_at = Instant::now();
                info!(node = self.id.0, ?role, term, "role change");
            }
            Observation::Apply { .. } => {
                self.metrics.applied.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    /// Hand the batch to the log writer; or, when the writer has released
    /// every earlier batch, release what precedes the batch's first durable
    /// record here, saving the hop through the writer thread (a follower's
    /// heartbeat answer, a leader's AppendEntries, a read's reply).
    fn flush(&mut self, mut batch: Batch<P::Msg>) {
        if batch.is_empty() {
            return;
        }
        let idle = self.batches_done.load(Ordering::Acquire) == self.batches_sent;
        let to_myself = batch.releases.iter().any(|r| matches!(r, Release::Myself(_)));
        if idle && !to_myself {
            let ready = if batch.durable.is_empty() { batch.releases.len() } else { batch.ahead_of_durable };
            for r in batch.releases.drain(..ready) {
                release_now(r, &self.peers, &self.metrics);
            }
            batch.ahead_of_durable = 0;
            if batch.is_empty() {
                return;
            }
        }
        self.batches_sent += 1;
        if self.to_writer.send(batch).is_err() {
            warn!(node = self.id.0, "the log writer has stopped; effects dropped");
        }
    }

    /// Forget requests whose client gave up, and relays never answered.
    fn sweep(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        self.pending.retain(|_, p| match &p.route {
            Route::Local { reply, .. } => !reply.is_closed(),
            Route::Remote(_) => now.duration_since(p.since) < Duration::from_secs(60),
        });
    }
}

/// The text of a panic's payload (`panic!` makes it a `&str` or a `String`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => message,
        (None, Some(message)) => message,
        (None, None) => "(a panic without a message)",
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Release a peer frame or a local reply (never a self-send: those may block).
fn release_now<M>(release: Release<M>, peers: &PeerQueues, metrics: &Metrics) {
    match release {
        Release::Peer { to, frame } => match peers.get(&to).map(|queue| queue.try_send(frame)) {
            Some(Ok(())) => {
                metrics.peer_frames_sent.fetch_add(1, Relaxed);
            }
            _ => {
                metrics.peer_frames_dropped.fetch_add(1, Relaxed);
            }
        },
        Release::Local { reply, output } => {
            let _ = reply.send(output);
        }
        Release::Myself(_) => unreachable!("self-sends are released by the writer"),
    }
}

/// The log writer: appends every waiting batch's records, fsyncs once, then
/// releases their effects in order. Effects emitted before the group's
/// first record (a leader's AppendEntries, emitted before its own append)
/// leave before the fsync: the rule only holds back effects emitted *after*
/// a persist. A storage error is fatal: the node stops rather than
/// acknowledge anything it could not make durable; so does a fatal error
/// the node loop raised (the writer stops before its next group). After
/// each batch it counts `done`, which tells the node loop when nothing is
/// held back.
fn writer<M: Send + 'static>(
    mut log: Box<dyn Log>,
    batches: std::sync::mpsc::Receiver<Batch<M>>,
    peers: PeerQueues,
    myself: mpsc::Sender<Input<M>>,
    metrics: Arc<Metrics>,
    done: Arc<AtomicU64>,
    fatal: Arc<Fatal>,
) {
    let id = NodeId(metrics.node_id.load(Relaxed) as u32);
    let release = |release: Release<M>| match release {
        Release::Myself(frame) => {
            // Blocking is fine here: this is the writer's own thread.
            let _ = myself.blocking_send(Input::Peer { from: id, frame });
        }
        other => release_now(other, &peers, &metrics),
    };
    let mut group: Vec<Batch<M>> = Vec::new();
    while let Ok(first) = batches.recv() {
        if fatal.is_raised() {
            return;
        }
        group.push(first);
        while let Ok(more) = batches.try_recv() {
            group.push(more);
        }
        // Effects ahead of the group's first durable record go now.
        let mut held = false;
        for batch in &mut group {
            if held {
                break;
            }
            let ready = if batch.durable.is_empty() { batch.releases.len() } else { batch.ahead_of_durable };
            for r in batch.releases.drain(..ready) {
                release(r);
            }
            held = !batch.durable.is_empty();
        }
        let failure = write_group(log.as_mut(), &mut group, &metrics).err();
        if let Some(e) = failure {
            error!("the log cannot be written, stopping the node: {e}");
            fatal.raise(e);
            return;
        }
        metrics.log_bytes.store(log.size(), Relaxed);
        for batch in group.drain(..) {
            for r in batch.releases {
                release(r);
            }
            done.fetch_add(1, Ordering::Release);
        }
    }
}

/// Append the group's durable records and checkpoints, then fsync once if
/// anything was appended.
fn write_group<M>(log: &mut dyn Log, group: &mut [Batch<M>], metrics: &Metrics) -> Result<(), String> {
    let mut appended = 0u64;
    for batch in group.iter_mut() {
        for durable in batch.durable.drain(..) {
            match durable {
                Durable::Append(bytes) => {
                    appended += 1;
                    log.append(&bytes)?;
                }
                Durable::Checkpoint(bytes) => {
                    metrics.checkpoints.fetch_add(1, Relaxed);
                    log.checkpoint(&bytes)?;
                }
            }
        }
    }
    if appended > 0 {
        let started = Instant::now();
        let synced = log.sync();
        metrics.observe_fsync(started.elapsed());
        metrics.records_persisted.fetch_add(appended, Relaxed);
        synced?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_core::Cluster;
    use std::cell::Cell;
    use std::sync::mpsc as std_mpsc;

    /// On a request: send to n1, persist, send to n2, reply. Only the first
    /// send may leave before the fsync. On a message: answer n1 at once,
    /// without a persist (it must still wait behind an earlier fsync).
    struct Probe;

    impl Protocol for Probe {
        type Msg = u8;
        type Request = Command;
        type Response = Output;
        type Record = u8;
        type Timer = u8;
        type Config = ();

        fn validate(_: &(), _: &[NodeId]) -> Result<(), quorum_core::ConfigError> {
            Ok(())
        }
        fn start(_: &Cluster, _: &(), _: &[u8], _: &mut Out<'_, Self>) -> Self {
            Probe
        }
        fn on_message(&mut self, _: NodeId, msg: u8, out: &mut Out<'_, Self>) {
            out.send(NodeId(1), msg);
        }
        fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}
        fn on_request(&mut self, id: RequestId, _: Command, out: &mut Out<'_, Self>) {
            out.send(NodeId(1), 1);
            out.persist(7);
            out.send(NodeId(2), 2);
            out.reply(id, Output::Ok);
        }
    }

    /// A log whose fsync waits for the test's permission.
    struct GatedLog {
        syncing: std_mpsc::Sender<()>,
        proceed: std_mpsc::Receiver<()>,
        appended: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl Log for GatedLog {
        fn append(&mut self, record: &[u8]) -> Result<(), String> {
            self.appended.lock().unwrap().push(record.to_vec());
            Ok(())
        }
        fn sync(&mut self) -> Result<(), String> {
            self.syncing.send(()).unwrap();
            self.proceed.recv().map_err(|e| e.to_string())
        }
        fn checkpoint(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn size(&self) -> u64 {
            0
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn effects_after_a_persist_wait_for_its_fsync_and_earlier_ones_do_not() {
        let (syncing_tx, syncing_rx) = std_mpsc::channel();
        let (proceed_tx, proceed_rx) = std_mpsc::channel();
        let appended = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = GatedLog { syncing: syncing_tx, proceed: proceed_rx, appended: appended.clone() };
        let (q1_tx, mut q1) = mpsc::channel(16);
        let (q2_tx, mut q2) = mpsc::channel(16);
        let peers: PeerQueues = [(NodeId(1), q1_tx), (NodeId(2), q2_tx)].into_iter().collect();
        let (inputs_tx, inputs_rx) = mpsc::channel(16);
        let (fatal_tx, _fatal_rx) = oneshot::channel();
        let settings = NodeSettings {
            cluster: Cluster::new(NodeId(0), vec![NodeId(0), NodeId(1), NodeId(2)]),
            forward: false,
            leader_wait: Duration::ZERO,
        };
        let node = Node::<Probe>::start(
            settings,
            &(),
            &[],
            Box::new(log),
            peers,
            inputs_tx.clone(),
            Arc::new(Metrics::default()),
            1,
            fatal_tx,
        );
        let (stop_tx, stop_rx) = oneshot::channel();
        let running = tokio::spawn(node.run(inputs_rx, stop_rx));
        let (reply_tx, mut reply_rx) = oneshot::channel();
        inputs_tx
            .send(Input::Client {
                id: RequestId::new(1, 1),
                command: Command::new(Op::Get { key: Default::default() }),
                reply: reply_tx,
            })
            .await
            .unwrap();
        tokio::task::spawn_blocking(move || syncing_rx.recv().unwrap()).await.unwrap();
        // The fsync is in progress: the record is written, the first send left, nothing else did.
        assert_eq!(appended.lock().unwrap().len(), 1);
        let first = tokio::time::timeout(Duration::from_secs(5), q1.recv()).await.unwrap().unwrap();
        assert!(!first.is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(q2.try_recv().is_err(), "a send emitted after the persist left before its fsync");
        assert!(reply_rx.try_recv().is_err(), "a reply emitted after the persist left before its fsync");
        // A later step with no persist of its own still follows the earlier
        // persist: it must not take the node loop's fast path past it.
        let frame = Frame::Protocol(9u8);
        inputs_tx.send(Input::Peer { from: NodeId(2), frame }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(q1.try_recv().is_err(), "a later step's send overtook an fsync in progress");
        proceed_tx.send(()).unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(5), q2.recv()).await.unwrap().is_some());
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), reply_rx).await.unwrap().unwrap(),
            Output::Ok
        );
        assert!(tokio::time::timeout(Duration::from_secs(5), q1.recv()).await.unwrap().is_some());
        // Now the writer is idle: a step without a persist leaves at once,
        // from the node loop.
        let frame = Frame::Protocol(10u8);
        inputs_tx.send(Input::Peer { from: NodeId(2), frame }).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(5), q1.recv()).await.unwrap().is_some());
        stop_tx.send(()).unwrap();
        running.await.unwrap();
    }

    /// Counts the checks of its invariants and shows the count as its state.
    #[derive(Default)]
    struct Counted {
        checks: Cell<u64>,
    }

    impl Protocol for Counted {
        type Msg = u8;
        type Request = Command;
        type Response = Output;
        type Record = u8;
        type Timer = u8;
        type Config = ();

        fn validate(_: &(), _: &[NodeId]) -> Result<(), quorum_core::ConfigError> {
            Ok(())
        }
        fn start(_: &Cluster, _: &(), _: &[u8], _: &mut Out<'_, Self>) -> Self {
            Counted::default()
        }
        fn on_message(&mut self, _: NodeId, _: u8, _: &mut Out<'_, Self>) {}
        fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}
        fn on_request(&mut self, _: RequestId, _: Command, _: &mut Out<'_, Self>) {}
        fn invariants(&self) {
            self.checks.set(self.checks.get() + 1);
        }
        fn describe(&self) -> String {
            self.checks.get().to_string()
        }
    }

    /// Its invariant breaks once it has seen message 99; it answers no request.
    #[derive(Default)]
    struct Breaks {
        broken: bool,
    }

    impl Protocol for Breaks {
        type Msg = u8;
        type Request = Command;
        type Response = Output;
        type Record = u8;
        type Timer = u8;
        type Config = ();

        fn validate(_: &(), _: &[NodeId]) -> Result<(), quorum_core::ConfigError> {
            Ok(())
        }
        fn start(_: &Cluster, _: &(), _: &[u8], _: &mut Out<'_, Self>) -> Self {
            Breaks::default()
        }
        fn on_message(&mut self, _: NodeId, msg: u8, _: &mut Out<'_, Self>) {
            self.broken |= msg == 99;
        }
        fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}
        fn on_request(&mut self, _: RequestId, _: Command, _: &mut Out<'_, Self>) {}
        fn invariants(&self) {
            assert!(!self.broken, "the test's invariant is broken");
        }
    }

    /// A log that accepts everything and keeps nothing.
    struct NullLog;

    impl Log for NullLog {
        fn append(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn sync(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn checkpoint(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn size(&self) -> u64 {
            0
        }
    }

    /// A node running on its own task, and its handles.
    struct Spawned<M> {
        inputs: mpsc::Sender<Input<M>>,
        fatal: oneshot::Receiver<String>,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    /// Start `P` as node 0 of three, with no peer queues (its sends are
    /// dropped) and a log that keeps nothing.
    fn spawn_node<P: ServerProtocol<Config = ()>>() -> Spawned<P::Msg>
    where
        P::Msg: Send + 'static,
        P::Timer: Send,
    {
        spawn_node_waiting::<P>(Duration::ZERO)
    }

    /// As `spawn_node`, holding requests refused for want of a leader up to `leader_wait`.
    fn spawn_node_waiting<P: ServerProtocol<Config = ()>>(leader_wait: Duration) -> Spawned<P::Msg>
    where
        P::Msg: Send + 'static,
        P::Timer: Send,
    {
        let (inputs, inputs_rx) = mpsc::channel(4 * INVARIANTS_EVERY_STEPS as usize);
        let (fatal_tx, fatal) = oneshot::channel();
        let settings = NodeSettings {
            cluster: Cluster::new(NodeId(0), vec![NodeId(0), NodeId(1), NodeId(2)]),
            forward: false,
            leader_wait,
        };
        let node = Node::<P>::start(
            settings,
            &(),
            &[],
            Box::new(NullLog),
            PeerQueues::new(),
            inputs.clone(),
            Arc::new(Metrics::default()),
            1,
            fatal_tx,
        );
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(node.run(inputs_rx, stop_rx));
        Spawned { inputs, fatal, stop, task }
    }

    async fn send_messages(inputs: &mpsc::Sender<Input<u8>>, msg: u8, count: u64) {
        for _ in 0..count {
            // After a panic the node is gone and sends fail: that is the point.
            let _ = inputs.send(Input::Peer { from: NodeId(1), frame: Frame::Protocol(msg) }).await;
        }
    }

    /// The protocol's state as `INFO` shows it: handled after every input before it.
    async fn describe(inputs: &mpsc::Sender<Input<u8>>) -> String {
        let (reply, status) = oneshot::channel();
        inputs.send(Input::Status { reply }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), status).await.unwrap().unwrap().describe
    }

    #[tokio::test]
    async fn invariants_are_checked_after_start_and_every_nth_step_in_release_builds_too() {
        let node = spawn_node::<Counted>();
        // A debug build checks after every step; a release build, every Nth.
        let expected = |steps: u64| match cfg!(debug_assertions) {
            true => 1 + steps,
            false => 1 + steps / INVARIANTS_EVERY_STEPS,
        };
        assert_eq!(describe(&node.inputs).await, "1", "checked once, after start");
        send_messages(&node.inputs, 0, INVARIANTS_EVERY_STEPS - 1).await;
        assert_eq!(describe(&node.inputs).await, expected(INVARIANTS_EVERY_STEPS - 1).to_string());
        send_messages(&node.inputs, 0, 1).await;
        assert_eq!(describe(&node.inputs).await, expected(INVARIANTS_EVERY_STEPS).to_string());
        assert!(expected(INVARIANTS_EVERY_STEPS) >= 2, "a step's check happened");
        node.stop.send(()).unwrap();
        node.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_broken_invariant_stops_the_node_with_its_message_and_fails_its_clients() {
        let node = spawn_node::<Breaks>();
        let (reply, mut answer) = oneshot::channel();
        let command = Command::new(Op::Get { key: Default::default() });
        node.inputs.send(Input::Client { id: RequestId::new(1, 1), command, reply }).await.unwrap();
        // Break it, then step on until a check is due whatever the build.
        send_messages(&node.inputs, 99, 1).await;
        send_messages(&node.inputs, 0, INVARIANTS_EVERY_STEPS).await;
        let fatal = tokio::time::timeout(Duration::from_secs(5), node.fatal).await.unwrap();
        let fatal = fatal.expect("the node reports why it stopped");
        assert!(fatal.contains("the test's invariant is broken"), "{fatal}");
        tokio::time::timeout(Duration::from_secs(5), node.task).await.unwrap().unwrap();
        // The waiting client hears that the node is gone; new input is refused.
        let answered = tokio::time::timeout(Duration::from_secs(5), &mut answer).await.unwrap();
        assert!(answered.is_err(), "a request pending at the panic got an answer");
        let (reply, _) = oneshot::channel();
        assert!(node.inputs.send(Input::Status { reply }).await.is_err(), "the stopped node takes input");
    }

    /// Refuses every request for want of a leader (no hint) until message 1
    /// says one was elected; then answers `Ok`.
    #[derive(Default)]
    struct Elects {
        elected: bool,
    }

    impl Protocol for Elects {
        type Msg = u8;
        type Request = Command;
        type Response = Output;
        type Record = u8;
        type Timer = u8;
        type Config = ();

        fn validate(_: &(), _: &[NodeId]) -> Result<(), quorum_core::ConfigError> {
            Ok(())
        }
        fn start(_: &Cluster, _: &(), _: &[u8], _: &mut Out<'_, Self>) -> Self {
            Elects::default()
        }
        fn on_message(&mut self, _: NodeId, msg: u8, _: &mut Out<'_, Self>) {
            self.elected |= msg == 1;
        }
        fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}
        fn on_request(&mut self, id: RequestId, _: Command, out: &mut Out<'_, Self>) {
            let output = match self.elected {
                true => Output::Ok,
                false => Output::Rejected { reason: "no leader".into(), hint: None },
            };
            out.reply(id, output);
        }
    }

    /// Send one request to a fresh `Elects` node, then elect a leader; the answer.
    async fn request_across_an_election(leader_wait: Duration) -> Output {
        let node = spawn_node_waiting::<Elects>(leader_wait);
        let (reply, answer) = oneshot::channel();
        let command = Command::new(Op::Get { key: Default::default() });
        node.inputs.send(Input::Client { id: RequestId::new(1, 1), command, reply }).await.unwrap();
        // The request has been handled (refused) once the status is answered.
        describe(&node.inputs).await;
        send_messages(&node.inputs, 1, 1).await;
        let output = tokio::time::timeout(Duration::from_secs(5), answer).await.unwrap().unwrap();
        node.stop.send(()).unwrap();
        node.task.await.unwrap();
        output
    }

    #[tokio::test]
    async fn a_request_refused_for_want_of_a_leader_waits_for_one_and_is_answered_by_it() {
        let output = request_across_an_election(Duration::from_secs(30)).await;
        assert_eq!(output, Output::Ok);
    }

    #[tokio::test]
    async fn without_a_wait_the_same_request_is_refused_at_once() {
        let output = request_across_an_election(Duration::ZERO).await;
        assert!(matches!(output, Output::Rejected { hint: None, .. }), "{output:?}");
    }
}
