//! Synchronous replication: write N-of-N (source text, section
//! "Synchronous", aka active, eager, push or pessimistic replication).
//!
//! A fixed primary (the lowest [`NodeId`]) serialises every update. Updates
//! queue at the primary and leave it one batch at a time: the primary forces
//! the batch to its log as *prepared* (outcome unknown), sends `Replicate` to
//! every backup (retransmitting until acknowledged), and each backup forces it
//! to its own log before it acknowledges. Only when **all** backups have
//! acknowledged does the primary force `Commit`, apply the batch in order
//! (a compare-and-set is evaluated against the state at its place in the
//! batch) and answer the clients: "all writes to all nodes must be
//! acknowledged before the client is notified of success". If any backup stays
//! silent for [`Config::replicate_timeout`] the primary forces `Abort` and
//! answers every op of the batch `Rejected` — "a failure to replicate a write
//! to any of the nodes constitutes a failure of the entire Write" — so the
//! batch is certainly not applied, anywhere, ever. Backups learn outcomes from
//! the primary (a commit rides on the next `Replicate` and on a periodic
//! heartbeat), so every committed batch sits in every node's log and "the
//! system can afford to lose N-1 nodes and still not suffer data loss". The
//! price is the text's: writes run at the pace of the slowest node and are
//! unavailable while any node is down.
//!
//! Reads are served by the primary alone, from its committed state: since it
//! orders every update, that is linearizable. Backups answer every request
//! with `Rejected` and a hint naming the primary.
//!
//! Positions: committed batches occupy the gap-free sequence `1..=seq`. An
//! aborted batch frees its position, and the next batch is tried there again
//! under a fresh, ever-increasing [`BatchId`]; a backup only ever replaces its
//! prepared batch with one of a higher id. A backup therefore holds at most
//! one prepared batch, at `committed.seq + 1`, and when it hears that position
//! committed under id `b`, the batch it holds is `b` (it must have
//! acknowledged `b` for `b` to commit).

use std::collections::{BTreeSet, VecDeque};

use crate::catalog;
use quorum_core::claims::{reached, SystemModel};
use quorum_core::{
    fnv1a, Cluster, ConfigError, KvCommand, KvResponse, KvStore, Micros, NodeId, Observation, Out, Protocol,
    RequestId, Role,
};
use serde::{Deserialize, Serialize};

/// The catalogue entry (source text, "Synchronous").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "sync",
    section: "Synchronous",
    summary: "N-of-N: a write is acknowledged only once every node has it durably; \
              linearizable, no acknowledged write lost with N-1 crashes; writes fail while any node is down",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[reached::WRITE_REFUSED, reached::RECOVERED],
    workload: catalog::Workload::Kv { cas: true },
    variants: &[],
    bugs: &[],
    explorable: &[],
    retries: 0,
};

/// Settings of synchronous replication. `Default` is a sensible production
/// setting for the simulator's networks (one-way latency of a few ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Most updates in one replicated batch.
    pub batch_ops_max: usize,
    /// Most updates waiting at the primary for a batch; beyond it new
    /// updates are rejected.
    pub queue_ops_max: usize,
    /// How often the primary resends `Replicate` to backups that have not
    /// acknowledged the batch in flight.
    pub retransmit_interval: Micros,
    /// How long the primary waits for every acknowledgement before it aborts
    /// the batch.
    pub replicate_timeout: Micros,
    /// How often the primary repeats its latest commit to the backups, so a
    /// backup that missed it converges.
    pub heartbeat_interval: Micros,
    /// Durable records after which the node checkpoints its whole state and
    /// so truncates its log (about half as many commits).
    pub checkpoint_records_max: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            batch_ops_max: 64,
            queue_ops_max: 4096,
            retransmit_interval: Micros::from_millis(50),
            replicate_timeout: Micros::from_millis(300),
            heartbeat_interval: Micros::from_millis(100),
            checkpoint_records_max: 128,
        }
    }
}

impl Config {
    /// Reject settings that cannot work; run before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_ops_max == 0 {
            return Err(ConfigError::new("batch_ops_max must be at least 1"));
        }
        if self.queue_ops_max == 0 {
            return Err(ConfigError::new("queue_ops_max must be at least 1"));
        }
        if self.retransmit_interval.0 == 0 || self.heartbeat_interval.0 == 0 {
            return Err(ConfigError::new("retransmit_interval and heartbeat_interval must be positive"));
        }
        if self.replicate_timeout <= self.retransmit_interval {
            return Err(ConfigError::new("replicate_timeout must exceed retransmit_interval"));
        }
        if self.checkpoint_records_max < 2 {
            return Err(ConfigError::new("checkpoint_records_max must be at least 2"));
        }
        Ok(())
    }
}

/// A batch's identity: unique and increasing at the primary, across its
/// restarts (it is persisted with the batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchId(pub u64);

/// A batch of updates proposed for position `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub seq: u64,
    pub id: BatchId,
    pub ops: Vec<KvCommand>,
}

/// The latest committed position and the batch committed there; `seq` 0
/// means nothing is committed yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub seq: u64,
    pub batch: BatchId,
}

/// Peer messages. Only the primary sends `Replicate`, `Commit` and `Abort`;
/// only backups send `Ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Force `batch` to your log and acknowledge it. `committed` is the
    /// primary's latest commit, always at `batch.seq - 1`.
    Replicate { batch: Batch, committed: Committed },
    /// `batch` is durable at the sender.
    Ack { batch: BatchId },
    /// Position `committed.seq` committed with `committed.batch`. Sent at a
    /// commit and repeated as the heartbeat.
    Commit { committed: Committed },
    /// `batch` aborted: it will never be applied.
    Abort { batch: BatchId },
}

/// What a node forces to its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The primary's prepare, or a backup's acceptance: `batch` is durable
    /// here and its outcome unknown.
    Prepare(Batch),
    /// The prepared batch committed at `seq`.
    Commit { seq: u64, batch: BatchId },
    /// `batch` aborted.
    Abort { batch: BatchId },
    /// The whole state; replaces the log.
    Checkpoint(Snapshot),
}

/// A node's whole durable state, as a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub store: KvStore,
    pub committed: Committed,
    /// The highest batch id prepared or aborted here.
    pub batch_seen: BatchId,
    /// The prepared batch whose outcome is unknown here, if any.
    pub prepared: Option<Batch>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Resend the batch in flight to the backups that have not acknowledged.
    Retransmit,
    /// Abort batch `0` if it is still in flight.
    ReplicateDeadline(BatchId),
    /// Repeat the latest commit to every backup.
    Heartbeat,
}

/// The primary's volatile view of the batch in flight (the batch itself is
/// `Synchronous::prepared`).
#[derive(Clone, Debug)]
struct InFlight {
    /// The client request of each op, in batch order.
    requests: Vec<RequestId>,
    /// Backups that have the batch durably.
    acked: BTreeSet<NodeId>,
}

/// One node of synchronous replication.
#[derive(Clone, Debug)]
pub struct Synchronous {
    cluster: Cluster,
    config: Config,
    primary: NodeId,
    /// Committed state: every batch at positions `1..=committed.seq`.
    store: KvStore,
    committed: Committed,
    /// The highest batch id prepared or aborted in this node's log.
    batch_seen: BatchId,
    /// The batch durable here with no outcome known here yet.
    prepared: Option<Batch>,
    /// Records in the durable log after its checkpoint.
    records_since_checkpoint: usize,
    /// Primary only: updates waiting for a batch.
    queue: VecDeque<(RequestId, KvCommand)>,
    /// Primary only: the batch being replicated.
    in_flight: Option<InFlight>,
}

impl Synchronous {
    fn is_primary(&self) -> bool {
        self.cluster.id == self.primary
    }

    fn backups(&self) -> usize {
        self.cluster.nodes.len() - 1
    }

    /// The state as of the latest commit (for tests and tools).
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    pub fn committed(&self) -> Committed {
        self.committed
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            store: self.store.clone(),
            committed: self.committed,
            batch_seen: self.batch_seen,
            prepared: self.prepared.clone(),
        }
    }

    /// Rebuild the durable state from the log, without effects.
    fn recover(&mut self, durable: &[Record]) {
        for record in durable {
            self.replay(record);
        }
    }

    fn replay(&mut self, record: &Record) {
        match record {
            Record::Checkpoint(snapshot) => {
                self.store = snapshot.store.clone();
                self.committed = snapshot.committed;
                self.batch_seen = snapshot.batch_seen;
                self.prepared = snapshot.prepared.clone();
                self.records_since_checkpoint = 0;
                return;
            }
            Record::Prepare(batch) => {
                assert_eq!(batch.seq, self.committed.seq + 1, "prepared out of order");
                assert!(batch.id > self.batch_seen, "a batch id was reused");
                self.batch_seen = batch.id;
                self.prepared = Some(batch.clone());
            }
            Record::Commit { seq, batch } => {
                let prepared = self.prepared.as_ref().expect("commit without prepare");
                assert_eq!(prepared.id, *batch, "committed a batch that is not prepared");
                assert_eq!(prepared.seq, *seq);
                self.apply_prepared();
            }
            Record::Abort { batch } => self.forget(*batch),
        }
        self.records_since_checkpoint += 1;
    }

    /// Apply the prepared batch at the next position; the client answers in
    /// batch order.
    fn apply_prepared(&mut self) -> (Batch, Vec<KvResponse>) {
        let batch = self.prepared.take().expect("a prepared batch");
        assert_eq!(batch.seq, self.committed.seq + 1);
        let responses = batch.ops.iter().map(|op| self.store.apply(op)).collect();
        self.committed = Committed { seq: batch.seq, batch: batch.id };
        (batch, responses)
    }

    /// `batch` aborted: drop it if prepared, and never accept it again.
    fn forget(&mut self, batch: BatchId) {
        if self.prepared.as_ref().is_some_and(|p| p.id == batch) {
            self.prepared = None;
        }
        self.batch_seen = self.batch_seen.max(batch);
    }

    /// Force `record` (whose effect is already in memory), checkpointing
    /// when the log has grown long enough.
    fn log(&mut self, record: Record, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records_since_checkpoint += 1;
        if self.records_since_checkpoint >= self.config.checkpoint_records_max {
            out.checkpoint(Record::Checkpoint(self.snapshot()));
            self.records_since_checkpoint = 0;
        }
    }

    fn observe_apply(batch: &Batch, out: &mut Out<'_, Self>) {
        out.observe(Observation::Apply { index: batch.seq, term: 0, command: batch_digest(&batch.ops) });
    }

    fn reject(&self, id: RequestId, reason: String, out: &mut Out<'_, Self>) {
        out.reply(id, KvResponse::Rejected { reason, hint: Some(self.primary) });
    }

    // ---- primary ----

    fn become_primary(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.is_primary());
        assert!(self.in_flight.is_none());
        out.observe(Observation::Role { role: Role::Leader, term: 0 });
        // A batch prepared before the crash has lost its clients and its
        // acknowledgements: abort it, durably, before anything else.
        if let Some(batch) = self.prepared.as_ref().map(|b| b.id) {
            self.forget(batch);
            self.log(Record::Abort { batch }, out);
            self.broadcast(Msg::Abort { batch }, out);
        }
        self.broadcast(Msg::Commit { committed: self.committed }, out);
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
    }

    fn broadcast(&self, msg: Msg, out: &mut Out<'_, Self>) {
        for peer in self.cluster.peers() {
            out.send(peer, msg.clone());
        }
    }

    fn handle_update(&mut self, id: RequestId, command: KvCommand, out: &mut Out<'_, Self>) {
        if self.queue.len() >= self.config.queue_ops_max {
            let reason = "the primary's update queue is full".to_string();
            return self.reject(id, reason, out);
        }
        self.queue.push_back((id, command));
        self.start_batch(out);
    }

    /// Prepare the next batch from the queue, unless one is in flight.
    fn start_batch(&mut self, out: &mut Out<'_, Self>) {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return;
        }
        assert!(self.prepared.is_none(), "the primary prepares one batch at a time");
        let take = self.queue.len().min(self.config.batch_ops_max);
        let (requests, ops): (Vec<RequestId>, Vec<KvCommand>) = self.queue.drain(..take).unzip();
        let batch = Batch { seq: self.committed.seq + 1, id: BatchId(self.batch_seen.0 + 1), ops };
        self.batch_seen = batch.id;
        self.prepared = Some(batch.clone());
        self.in_flight = Some(InFlight { requests, acked: BTreeSet::new() });
        self.log(Record::Prepare(batch.clone()), out);
        self.broadcast(Msg::Replicate { batch: batch.clone(), committed: self.committed }, out);
        out.set_timer(Timer::Retransmit, self.config.retransmit_interval);
        out.set_timer(Timer::ReplicateDeadline(batch.id), self.config.replicate_timeout);
        self.commit_if_replicated(out);
    }

    fn handle_ack(&mut self, from: NodeId, batch: BatchId, out: &mut Out<'_, Self>) {
        let current = self.prepared.as_ref().map(|b| b.id);
        let Some(in_flight) = self.in_flight.as_mut() else {
            return;
        };
        if current != Some(batch) || from == self.cluster.id {
            return; // a stale or duplicate acknowledgement
        }
        in_flight.acked.insert(from);
        self.commit_if_replicated(out);
    }

    fn commit_if_replicated(&mut self, out: &mut Out<'_, Self>) {
        let Some(in_flight) = self.in_flight.as_ref() else {
            return;
        };
        if in_flight.acked.len() < self.backups() {
            return;
        }
        let in_flight = self.in_flight.take().expect("checked above");
        let (batch, responses) = self.apply_prepared();
        assert_eq!(responses.len(), in_flight.requests.len());
        self.log(Record::Commit { seq: batch.seq, batch: batch.id }, out);
        Self::observe_apply(&batch, out);
        for (id, response) in in_flight.requests.into_iter().zip(responses) {
            out.reply(id, response);
        }
        self.broadcast(Msg::Commit { committed: self.committed }, out);
        out.cancel_timer(Timer::Retransmit);
        out.cancel_timer(Timer::ReplicateDeadline(batch.id));
        self.start_batch(out);
    }

    fn handle_deadline(&mut self, batch: BatchId, out: &mut Out<'_, Self>) {
        if self.prepared.as_ref().map(|b| b.id) != Some(batch) {
            return; // that batch already has its outcome
        }
        let in_flight = self.in_flight.take().expect("the prepared batch is in flight");
        let silent = self.cluster.peers().find(|p| !in_flight.acked.contains(p));
        let silent = silent.expect("a batch missing no acknowledgement has committed");
        self.forget(batch);
        self.log(Record::Abort { batch }, out);
        let n = self.cluster.nodes.len();
        for id in in_flight.requests {
            let reason = format!("node {silent} is down: synchronous replication needs all {n}");
            self.reject(id, reason, out);
        }
        self.broadcast(Msg::Abort { batch }, out);
        out.cancel_timer(Timer::Retransmit);
        self.start_batch(out);
    }

    fn handle_retransmit(&mut self, out: &mut Out<'_, Self>) {
        let (Some(batch), Some(in_flight)) = (self.prepared.as_ref(), self.in_flight.as_ref()) else {
            return;
        };
        let msg = Msg::Replicate { batch: batch.clone(), committed: self.committed };
        for peer in self.cluster.peers().filter(|p| !in_flight.acked.contains(p)) {
            out.send(peer, msg.clone());
        }
        out.set_timer(Timer::Retransmit, self.config.retransmit_interval);
    }

    fn handle_heartbeat(&mut self, out: &mut Out<'_, Self>) {
        self.broadcast(Msg::Commit { committed: self.committed }, out);
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
    }

    // ---- backup ----

    fn handle_replicate(&mut self, batch: Batch, committed: Committed, out: &mut Out<'_, Self>) {
        self.learn_commit(committed, out);
        if batch.seq != self.committed.seq + 1 {
            return; // stale: that position is decided here
        }
        let already = self.prepared.as_ref().is_some_and(|p| p.id == batch.id);
        if !already {
            if batch.id <= self.batch_seen {
                return; // aborted or superseded by a later batch
            }
            // Invariant: a prepared batch is only replaced by a higher id.
            self.batch_seen = batch.id;
            self.prepared = Some(batch.clone());
            self.log(Record::Prepare(batch.clone()), out);
        }
        out.send(self.primary, Msg::Ack { batch: batch.id });
    }

    /// The primary committed `committed`: apply it if it is the next
    /// position, which then must be the batch prepared here.
    fn learn_commit(&mut self, committed: Committed, out: &mut Out<'_, Self>) {
        if committed.seq <= self.committed.seq {
            return; // already known
        }
        let matches =
            self.prepared.as_ref().is_some_and(|p| p.seq == committed.seq && p.id == committed.batch);
        if !matches {
            // Cannot happen: a batch commits only after this node acknowledged
            // it, and the primary commits position s+1 only after this node
            // learned s (the Replicate for s+1 carries it).
            out.observe(Observation::Note(format!("ignored unexpected commit {committed:?}")));
            return;
        }
        let (batch, _) = self.apply_prepared();
        self.log(Record::Commit { seq: batch.seq, batch: batch.id }, out);
        Self::observe_apply(&batch, out);
    }

    fn handle_abort(&mut self, batch: BatchId, out: &mut Out<'_, Self>) {
        let prepared_here = self.prepared.as_ref().is_some_and(|p| p.id == batch);
        if prepared_here || batch > self.batch_seen {
            self.forget(batch);
            self.log(Record::Abort { batch }, out);
        }
    }
}

/// A stable digest of a batch's commands, for `Observation::Apply`.
fn batch_digest(ops: &[KvCommand]) -> u64 {
    let mut bytes = Vec::with_capacity(ops.len() * 25);
    for op in ops {
        let (tag, key, a, b) = match *op {
            KvCommand::Read { key } => (0u8, key, 0, 0),
            KvCommand::Write { key, value } => (1, key, value, 0),
            KvCommand::Cas { key, expected, new } => (2, key, expected, new),
        };
        bytes.push(tag);
        for word in [key, a, b] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
    }
    fnv1a(&bytes)
}

impl Protocol for Synchronous {
    type Msg = Msg;
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, _nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let primary = cluster.nodes[0];
        let mut node = Synchronous {
            cluster: cluster.clone(),
            config: config.clone(),
            primary,
            store: KvStore::new(),
            committed: Committed::default(),
            batch_seen: BatchId::default(),
            prepared: None,
            records_since_checkpoint: 0,
            queue: VecDeque::new(),
            in_flight: None,
        };
        node.recover(durable);
        if node.is_primary() {
            node.become_primary(out);
        } else {
            out.observe(Observation::Role { role: Role::Follower, term: 0 });
        }
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        let from_primary = from == self.primary && !self.is_primary();
        match msg {
            Msg::Ack { batch } if self.is_primary() => self.handle_ack(from, batch, out),
            Msg::Replicate { batch, committed } if from_primary => {
                self.handle_replicate(batch, committed, out)
            }
            Msg::Commit { committed } if from_primary => self.learn_commit(committed, out),
            Msg::Abort { batch } if from_primary => self.handle_abort(batch, out),
            _ => {} // misdirected: ignore
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        if !self.is_primary() {
            return;
        }
        match timer {
            Timer::Retransmit => self.handle_retransmit(out),
            Timer::ReplicateDeadline(batch) => self.handle_deadline(batch, out),
            Timer::Heartbeat => self.handle_heartbeat(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        if !self.is_primary() {
            let reason = format!("not the primary: {} serves every request", self.primary);
            return self.reject(id, reason, out);
        }
        match request {
            // Committed state only: an update in flight may still abort.
            KvCommand::Read { .. } => out.reply(id, self.store.apply(&request)),
            KvCommand::Write { .. } | KvCommand::Cas { .. } => self.handle_update(id, request, out),
        }
    }

    fn invariants(&self) {
        assert!(self.records_since_checkpoint < self.config.checkpoint_records_max);
        assert!(self.committed.batch <= self.batch_seen);
        assert_eq!(self.committed.seq == 0, self.committed.batch == BatchId(0));
        if let Some(batch) = &self.prepared {
            assert_eq!(batch.seq, self.committed.seq + 1, "prepared only at the next position");
            assert!(batch.id <= self.batch_seen);
            assert!(batch.id > self.committed.batch);
            assert!(!batch.ops.is_empty());
            assert!(batch.ops.iter().all(KvCommand::is_update));
        }
        if !self.is_primary() {
            assert!(self.queue.is_empty(), "backups queue nothing");
            assert!(self.in_flight.is_none(), "backups replicate nothing");
            return;
        }
        assert!(self.queue.len() <= self.config.queue_ops_max);
        assert_eq!(self.in_flight.is_some(), self.prepared.is_some());
        if let (Some(in_flight), Some(batch)) = (&self.in_flight, &self.prepared) {
            assert_eq!(in_flight.requests.len(), batch.ops.len());
            assert!(batch.ops.len() <= self.config.batch_ops_max);
            assert!(in_flight.acked.len() < self.backups(), "a fully acked batch commits");
            assert!(!in_flight.acked.contains(&self.cluster.id));
            assert_eq!(batch.id, self.batch_seen, "the batch in flight is the newest");
        } else {
            assert!(self.queue.is_empty(), "queued updates wait only behind a batch");
        }
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.store.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;

    const P: NodeId = NodeId(0);
    const B1: NodeId = NodeId(1);
    const B2: NodeId = NodeId(2);

    fn write(key: u64, value: u64) -> KvCommand {
        KvCommand::Write { key, value }
    }

    fn read(key: u64) -> KvCommand {
        KvCommand::Read { key }
    }

    fn ms(n: u64) -> Micros {
        Micros::from_millis(n)
    }

    /// An `n`-node cluster, freshly started, start-up messages delivered.
    ///
    /// `Kit::new` starts node i while only nodes 0..=i exist, so each node's
    /// `Cluster` is short; starting every node again from an empty log gives
    /// them all the full membership.
    fn cluster(n: u32) -> Kit<Synchronous> {
        let mut kit = Kit::new(n, Config::default());
        kit.network.clear();
        for i in 0..n {
            kit.durable_mut(i as usize).clear();
            kit.crash(NodeId(i));
            kit.start(NodeId(i));
        }
        kit.deliver_all(100);
        kit
    }

    fn kit() -> Kit<Synchronous> {
        cluster(3)
    }

    fn has_prepare(kit: &Kit<Synchronous>, node: NodeId) -> bool {
        kit.durable(node.0 as usize).iter().any(|r| matches!(r, Record::Prepare(_)))
    }

    fn is_rejected(response: Option<&KvResponse>) -> bool {
        matches!(response, Some(KvResponse::Rejected { .. }))
    }

    /// "all writes to all nodes must be acknowledged before the client is
    /// notified of success" (Synchronous).
    #[test]
    fn write_is_acknowledged_only_after_every_node_has_it() {
        let mut kit = kit();
        kit.cut.push((P, B2));
        let rid = kit.request(P, write(1, 10));
        kit.deliver_all(100);
        assert!(has_prepare(&kit, B1), "the reachable backup forced the batch");
        assert!(!has_prepare(&kit, B2));
        assert_eq!(kit.reply(rid), None, "one backup short: no answer yet");

        kit.cut.clear();
        kit.advance(ms(60)); // the retransmission reaches n2
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
        for node in [P, B1, B2] {
            assert!(has_prepare(&kit, node), "{node} holds the write durably");
        }
        assert_eq!(kit.node(B2).store().get(1), Some(10), "the commit reached n2");
    }

    #[test]
    fn write_fails_while_a_backup_is_down() {
        let mut kit = kit();
        kit.crash(B2);
        let rid = kit.request(P, write(1, 10));
        kit.deliver_all(100);
        kit.advance(ms(200));
        assert_eq!(kit.reply(rid), None, "still waiting for n2");
        kit.advance(ms(150));
        match kit.reply(rid) {
            Some(KvResponse::Rejected { reason, hint }) => {
                assert!(reason.contains("n2 is down"), "{reason}");
                assert_eq!(*hint, Some(P));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        let read_rid = kit.request(P, read(1));
        assert_eq!(kit.reply(read_rid), Some(&KvResponse::Read(None)), "the write never applied");
        assert_eq!(kit.node(B1).store().get(1), None);

        kit.start(B2);
        let rid = kit.request(P, write(1, 11));
        kit.deliver_all(100);
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done), "all N up again: writes succeed");
        kit.advance(ms(200));
        for node in [P, B1, B2] {
            assert_eq!(kit.node(node).store().get(1), Some(11));
        }
    }

    #[test]
    fn primary_restart_recovers_committed_writes_and_aborts_pending() {
        let mut kit = kit();
        let first = kit.request(P, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(first), Some(&KvResponse::Done));

        // The second batch reaches n1 only, then the primary crashes.
        kit.cut.push((P, B2));
        let second = kit.request(P, write(2, 20));
        kit.deliver_all(100);
        assert!(kit.node(B1).prepared.is_some());
        kit.crash(P);
        kit.cut.clear();
        kit.start(P);
        assert!(
            matches!(kit.durable(0).last(), Some(Record::Abort { .. })),
            "the pending batch is aborted durably on restart"
        );
        kit.deliver_all(100);
        kit.advance(ms(500));
        assert_eq!(kit.reply(second), None, "its client learns nothing (indeterminate)");

        let r1 = kit.request(P, read(1));
        let r2 = kit.request(P, read(2));
        assert_eq!(kit.reply(r1), Some(&KvResponse::Read(Some(10))));
        assert_eq!(kit.reply(r2), Some(&KvResponse::Read(None)));
        for node in [P, B1, B2] {
            assert_eq!(kit.node(node).store().get(2), None, "the aborted write never shows");
            assert!(kit.node(node).prepared.is_none());
        }
        // The freed position is reused by a later batch under a new id.
        let third = kit.request(P, write(3, 30));
        kit.deliver_all(100);
        assert_eq!(kit.reply(third), Some(&KvResponse::Done));
        assert_eq!(kit.node(B2).committed().seq, 2);
    }

    /// "the system can afford to lose N-1 nodes and still not suffer data
    /// loss" (Synchronous).
    #[test]
    fn acknowledged_writes_survive_losing_every_node_but_one() {
        let mut kit = kit();
        let rid = kit.request(P, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
        kit.crash(P);
        kit.crash(B1);
        kit.crash(B2);
        kit.start(B2);
        // The commit message reached n2 before the crash; so did the batch.
        assert_eq!(kit.node(B2).store().get(1), Some(10));
        kit.start(P);
        kit.start(B1);
        let r = kit.request(P, read(1));
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
    }

    #[test]
    fn backup_that_missed_the_commit_learns_it_from_the_heartbeat_after_restart() {
        let mut kit = kit();
        let rid = kit.request(P, write(1, 10));
        // Deliver Replicates and Acks but cut the commit to n2.
        kit.deliver_all(2); // both Replicates
        kit.deliver_all(2); // both Acks: the primary commits
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
        kit.network.retain(|(_, to, _)| *to != B2);
        kit.crash(B2);
        kit.deliver_all(100);
        kit.start(B2);
        assert!(kit.node(B2).prepared.is_some(), "the acknowledged batch survived n2's crash");
        assert_eq!(kit.node(B2).store().get(1), None);
        kit.advance(ms(150));
        assert_eq!(kit.node(B2).store().get(1), Some(10));
        assert_eq!(kit.node(B2).state_digest(), kit.node(P).state_digest());
    }

    #[test]
    fn backups_reject_every_request_with_a_hint_to_the_primary() {
        let mut kit = kit();
        for cmd in [read(1), write(1, 1)] {
            let rid = kit.request(B1, cmd);
            assert!(is_rejected(kit.reply(rid)));
            let Some(KvResponse::Rejected { hint, .. }) = kit.reply(rid) else { unreachable!() };
            assert_eq!(*hint, Some(P));
        }
        assert!(kit.network.is_empty(), "a backup forwards nothing");
    }

    #[test]
    fn cas_is_evaluated_in_batch_order() {
        let mut kit = kit();
        kit.cut.push((P, B1)); // hold the first batch so the rest queue up
        let w = kit.request(P, write(1, 1));
        let hit = kit.request(P, KvCommand::Cas { key: 1, expected: 1, new: 2 });
        let miss = kit.request(P, KvCommand::Cas { key: 1, expected: 1, new: 3 });
        kit.cut.clear();
        kit.advance(ms(60));
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        assert_eq!(kit.reply(hit), Some(&KvResponse::Done));
        assert_eq!(kit.reply(miss), Some(&KvResponse::CasMismatch));
        assert_eq!(kit.node(P).committed().seq, 2, "the queued updates went as one batch");
        kit.advance(ms(150));
        for node in [P, B1, B2] {
            assert_eq!(kit.node(node).store().get(1), Some(2));
        }
    }

    #[test]
    fn reads_see_only_committed_writes() {
        let mut kit = kit();
        kit.cut.push((P, B1));
        let w = kit.request(P, write(1, 10));
        let r = kit.request(P, read(1));
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
        assert_eq!(kit.reply(w), None);
    }

    #[test]
    fn durable_log_stays_bounded_by_checkpoints() {
        let mut kit = kit();
        for i in 0..300 {
            let rid = kit.request(P, write(i % 7, i));
            kit.deliver_all(100);
            assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
        }
        kit.advance(ms(150));
        let max = Config::default().checkpoint_records_max;
        for node in [P, B1, B2] {
            assert!(kit.durable(node.0 as usize).len() <= max, "{node}'s log is bounded");
        }
        for node in [P, B1, B2] {
            kit.crash(node);
            kit.start(node);
            assert_eq!(kit.node(node).committed().seq, 300);
            assert_eq!(kit.node(node).store().get(299 % 7), Some(299));
        }
    }

    #[test]
    fn single_node_cluster_commits_alone() {
        let mut kit = cluster(1);
        let rid = kit.request(P, write(1, 10));
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
    }
}
