//! Primary-backup replication with failover by timeout (the source text's
//! "Master-slave replication": primary copy replication, log shipping).
//!
//! The cluster moves through numbered *views*; the primary of view `v` is
//! `nodes[v mod n]`, and everyone starts in view 0. The primary serves every
//! read from its own copy, executes every update (a cas is evaluated at the
//! primary), forces it to its log and ships the resulting write to the
//! backups, which apply the primary's writes in index order. In the `sync`
//! variant the primary answers the client only once every backup it still
//! considers alive has acknowledged; a backup silent for `ack_timeout` is
//! dropped from that set, so the write is acknowledged anyway, as real systems
//! do. In the `async` variant it answers at once and ships in the background.
//! The primary heartbeats its backups; a backup that hears nothing for the
//! failover timeout promotes *itself* to the smallest later view it is primary
//! of, forces that view to disk, and announces it together with its whole
//! state, which every node that adopts the view installs over its own.
//! Nodes adopt any higher view they hear of, and a primary that hears one
//! steps down. There is no quorum anywhere, and that is the point: the text's
//! failure modes are all reachable. An async primary that dies before shipping
//! *loses* acknowledged updates; a sync primary that dies after its backups
//! stored a write but before answering leaves a write "replicated but never
//! acknowledged" that the promoted backup exposes; and a partition (or a long
//! pause of the primary) promotes a backup while the old primary still
//! serves: *split-brain*, two primaries acknowledging conflicting writes until
//! the heal, when the higher view wins and the other side's updates vanish.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog;
use quorum_core::claims::{reached, SystemModel, Violation};
use quorum_core::{
    Cluster, ConfigError, Key, KvCommand, KvResponse, KvStore, Micros, NodeId, Observation, Out, Protocol,
    RequestId, Role, Time, Value,
};
use serde::{Deserialize, Serialize};

/// A view number. The primary of view `v` is `nodes[v mod n]`.
pub type View = u64;

/// When the primary answers an update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// After every live backup acknowledged it (or was dropped as dead).
    #[default]
    Sync,
    /// Right after its own durable apply; backups catch up in the background.
    Async,
}

/// The catalogue entry (source text, "Master-slave replication").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "primary-backup",
    section: "Master-slave replication",
    summary:
        "a primary ships its log to backups (sync: waits for them; async: does not); failover by timeout; \
              lost updates and split-brain under partition",
    model: SystemModel::Asynchronous,
    always: &[
        Violation::Panic,
        Violation::Runaway,
        Violation::Liveness,
        Violation::ElectionSafety,
        Violation::ClusterInvariant,
    ],
    breaks: &[Violation::LostAckedWrites, Violation::Linearizability, Violation::SplitBrain],
    sometimes: &[reached::LEADER_CHANGED, reached::RECOVERED],
    workload: catalog::Workload::Kv { cas: true },
    variants: &["sync", "async"],
    bugs: &[],
    explorable: &[],
    retries: 0,
};

/// Settings of a primary-backup node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub variant: Variant,
    /// How often the primary heartbeats its backups.
    pub heartbeat_interval: Micros,
    /// How long a backup waits without hearing its primary before promoting
    /// itself, plus a random share of `failover_jitter`.
    pub failover_timeout: Micros,
    /// Upper bound of the random extra added to each failover timeout, so
    /// that backups do not all promote at once.
    pub failover_jitter: Micros,
    /// Sync variant: how long the primary waits for a backup's acknowledgement
    /// before dropping it from its live backups.
    pub ack_timeout: Micros,
    /// Replace the log by a snapshot after this many records.
    pub checkpoint_every_records: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            variant: Variant::Sync,
            heartbeat_interval: Micros::from_millis(50),
            failover_timeout: Micros::from_millis(300),
            failover_jitter: Micros::from_millis(150),
            ack_timeout: Micros::from_millis(150),
            checkpoint_every_records: 1000,
        }
    }
}

impl Config {
    /// Check the settings before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval.0 == 0 {
            return Err(ConfigError::new("heartbeat_interval must be positive"));
        }
        if self.failover_timeout.0 <= 2 * self.heartbeat_interval.0 {
            return Err(ConfigError::new("failover_timeout must exceed two heartbeat intervals"));
        }
        if self.ack_timeout.0 == 0 {
            return Err(ConfigError::new("ack_timeout must be positive"));
        }
        if self.checkpoint_every_records == 0 {
            return Err(ConfigError::new("checkpoint_every_records must be positive"));
        }
        Ok(())
    }
}

/// Peer messages. Every message names the sender's view; a receiver in a
/// lower view adopts it first, a receiver in a higher view answers with its
/// own view instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Primary → backups, every heartbeat interval: "I am alive and have
    /// applied every update through `index`".
    Heartbeat { view: View, index: u64 },
    /// Primary → backups: the update at `index` of this view wrote `value`.
    Append { view: View, index: u64, key: Key, value: Value },
    /// Primary → backup: the whole state as of `index`. Sent to everyone on
    /// promotion (the view announcement) and to any backup that needs it.
    NewView { view: View, index: u64, entries: Vec<(Key, Value)> },
    /// Backup → primary: "my state equals yours through `index`".
    Ack { view: View, index: u64 },
    /// Backup → primary: "I am behind or out of sync: send me your state".
    NeedState { view: View },
    /// Reply to a message from a lower view: "the cluster is in `view` now".
    ViewInfo { view: View },
}

impl Msg {
    pub fn view(&self) -> View {
        match *self {
            Msg::Heartbeat { view, .. }
            | Msg::Append { view, .. }
            | Msg::NewView { view, .. }
            | Msg::Ack { view, .. }
            | Msg::NeedState { view }
            | Msg::ViewInfo { view } => view,
        }
    }
}

/// What a node forces to its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The node entered `view` (forced before it acts in it).
    View(View),
    /// The update at `index` wrote `value` to `key`.
    Apply { index: u64, key: Key, value: Value },
    /// The whole state (a checkpoint, or a state transfer installed).
    Snapshot { view: View, index: u64, entries: Vec<(Key, Value)> },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Primary: time to heartbeat.
    Heartbeat,
    /// Backup: the primary has been silent too long.
    Failover,
    /// Primary, sync variant: the backups still waited on for the update at
    /// this index are dropped as dead.
    AckTimeout(u64),
}

/// A node's part in its current view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Primary,
    Backup,
}

/// A sync-variant update applied at the primary, waiting for backups.
#[derive(Clone, Debug)]
struct PendingWrite {
    request: RequestId,
    // Invariant: a subset of `live_backups`.
    waiting: BTreeSet<NodeId>,
}

#[derive(Clone, Debug)]
pub struct PrimaryBackup {
    cluster: Cluster,
    config: Config,
    view: View,
    part: Part,
    store: KvStore,
    /// Number of updates reflected in `store`, in this view's numbering.
    index: u64,
    /// True when `store` is known to be a prefix of the current primary's
    /// state (always true at the primary).
    synced: bool,
    /// Primary: backups it still waits for (sync variant).
    live_backups: BTreeSet<NodeId>,
    /// Primary, sync variant: updates not yet acknowledged to the client.
    pending: BTreeMap<u64, PendingWrite>,
    /// Primary: when it last sent each backup its whole state (rate limit).
    state_sent_at: BTreeMap<NodeId, Time>,
    records_since_checkpoint: u64,
}

impl PrimaryBackup {
    pub fn view(&self) -> View {
        self.view
    }

    pub fn is_primary(&self) -> bool {
        self.part == Part::Primary
    }

    /// The primary of this node's current view.
    pub fn primary(&self) -> NodeId {
        self.primary_of(self.view)
    }

    pub fn store(&self) -> &KvStore {
        &self.store
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// The backups a sync primary still waits for.
    pub fn live_backups(&self) -> &BTreeSet<NodeId> {
        &self.live_backups
    }

    fn primary_of(&self, view: View) -> NodeId {
        let n = self.cluster.nodes.len() as u64;
        self.cluster.nodes[(view % n) as usize]
    }

    /// The smallest view after the current one whose primary is this node.
    fn next_own_view(&self) -> View {
        let mut view = self.view + 1;
        while self.primary_of(view) != self.cluster.id {
            view += 1;
        }
        view
    }

    fn snapshot(&self) -> Record {
        Record::Snapshot { view: self.view, index: self.index, entries: self.store.iter().collect() }
    }

    fn recover(&mut self, durable: &[Record]) {
        for record in durable {
            match record {
                Record::View(view) => {
                    assert!(*view >= self.view, "views on disk only grow");
                    self.view = *view;
                    // Adopted, but its primary's state not yet installed.
                    self.synced = false;
                }
                Record::Apply { index, key, value } => {
                    assert_eq!(*index, self.index + 1, "applies on disk are contiguous");
                    self.store.set(*key, *value);
                    self.index = *index;
                }
                Record::Snapshot { view, index, entries } => {
                    assert!(*view >= self.view, "views on disk only grow");
                    self.view = *view;
                    self.index = *index;
                    self.store = KvStore::new();
                    for (key, value) in entries {
                        self.store.set(*key, *value);
                    }
                    self.synced = true;
                }
            }
        }
    }

    // ---- durable writes ----

    fn persist(&mut self, record: Record, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records_since_checkpoint += 1;
        if self.records_since_checkpoint >= self.config.checkpoint_every_records {
            out.checkpoint(self.snapshot());
            self.records_since_checkpoint = 0;
        }
    }

    // ---- role changes ----

    fn arm_failover(&mut self, out: &mut Out<'_, Self>) {
        let jitter = out.rng().range(0, self.config.failover_jitter.0 + 1);
        out.set_timer(Timer::Failover, Micros(self.config.failover_timeout.0 + jitter));
    }

    /// Serve the current view as its primary: announce it with the whole
    /// state to every peer. The view is already durable.
    fn become_primary(&mut self, out: &mut Out<'_, Self>) {
        assert_eq!(self.primary(), self.cluster.id, "only the view's primary serves it");
        assert!(self.pending.is_empty());
        self.part = Part::Primary;
        self.synced = true;
        self.live_backups = self.cluster.peers().collect();
        self.state_sent_at.clear();
        out.cancel_timer(Timer::Failover);
        out.observe(Observation::Role { role: Role::Leader, term: self.view });
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        for peer in peers {
            self.send_state(peer, true, out);
        }
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
    }

    fn become_backup(&mut self, out: &mut Out<'_, Self>) {
        assert_ne!(self.primary(), self.cluster.id, "a view's primary is no backup");
        self.part = Part::Backup;
        self.live_backups.clear();
        self.state_sent_at.clear();
        out.cancel_timer(Timer::Heartbeat);
        out.observe(Observation::Role { role: Role::Follower, term: self.view });
        self.arm_failover(out);
    }

    /// A primary leaving its view: updates still waiting for backups may or
    /// may not survive, so their clients learn exactly that.
    fn step_down(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.is_primary());
        for (index, pending) in std::mem::take(&mut self.pending) {
            out.cancel_timer(Timer::AckTimeout(index));
            out.reply(
                pending.request,
                KvResponse::Indeterminate {
                    reason: "primary stepped down before every backup acknowledged".into(),
                },
            );
        }
        self.part = Part::Backup;
    }

    /// Move to a higher view heard from a peer, forcing it to disk first.
    fn adopt_view(&mut self, view: View, out: &mut Out<'_, Self>) {
        assert!(view > self.view, "views only grow");
        if self.is_primary() {
            self.step_down(out);
        }
        self.view = view;
        self.synced = false;
        self.persist(Record::View(view), out);
        if self.primary() == self.cluster.id {
            self.become_primary(out);
        } else {
            self.become_backup(out);
        }
    }

    /// Failover: the primary has been silent for the timeout.
    fn promote(&mut self, out: &mut Out<'_, Self>) {
        assert!(!self.is_primary());
        let view = self.next_own_view();
        out.observe(Observation::Note(format!(
            "{} suspects primary {} of view {}, promotes itself to view {view}",
            self.cluster.id,
            self.primary(),
            self.view
        )));
        self.view = view;
        self.persist(Record::View(view), out);
        self.become_primary(out);
    }

    // ---- primary side ----

    /// Send `to` the whole state, at most once per quarter heartbeat unless
    /// `force` (a view announcement).
    fn send_state(&mut self, to: NodeId, force: bool, out: &mut Out<'_, Self>) {
        let now = out.now();
        let gap = Micros(self.config.heartbeat_interval.0 / 4);
        if !force {
            if let Some(sent) = self.state_sent_at.get(&to) {
                if now < *sent + gap {
                    return;
                }
            }
        }
        self.state_sent_at.insert(to, now);
        let entries = self.store.iter().collect();
        out.send(to, Msg::NewView { view: self.view, index: self.index, entries });
    }

    fn execute_update(&mut self, request: RequestId, command: KvCommand, out: &mut Out<'_, Self>) {
        let (key, value) = match command {
            KvCommand::Write { key, value } => (key, value),
            KvCommand::Cas { key, expected, new } => {
                if self.store.get(key) != Some(expected) {
                    out.reply(request, KvResponse::CasMismatch);
                    return;
                }
                (key, new)
            }
            KvCommand::Read { .. } => unreachable!("reads are not updates"),
        };
        self.store.set(key, value);
        self.index += 1;
        let index = self.index;
        // Forced before the Appends and the reply leave (the durability rule).
        self.persist(Record::Apply { index, key, value }, out);
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        for peer in peers {
            out.send(peer, Msg::Append { view: self.view, index, key, value });
        }
        match self.config.variant {
            Variant::Async => out.reply(request, KvResponse::Done),
            Variant::Sync if self.live_backups.is_empty() => out.reply(request, KvResponse::Done),
            Variant::Sync => {
                let waiting = self.live_backups.clone();
                self.pending.insert(index, PendingWrite { request, waiting });
                out.set_timer(Timer::AckTimeout(index), self.config.ack_timeout);
            }
        }
    }

    fn handle_ack(&mut self, from: NodeId, index: u64, out: &mut Out<'_, Self>) {
        if !self.is_primary() {
            return;
        }
        self.live_backups.insert(from);
        // Acks are cumulative: the backup applies updates in index order.
        for pending in self.pending.range_mut(..=index).map(|(_, p)| p) {
            pending.waiting.remove(&from);
        }
        self.answer_acknowledged(out);
    }

    fn handle_need_state(&mut self, from: NodeId, out: &mut Out<'_, Self>) {
        if !self.is_primary() {
            return;
        }
        self.live_backups.insert(from);
        self.send_state(from, false, out);
    }

    /// Sync variant: `index`'s backups have been silent too long; drop the
    /// ones still waited on, as dead, and answer what no longer waits.
    fn handle_ack_timeout(&mut self, index: u64, out: &mut Out<'_, Self>) {
        let Some(pending) = self.pending.get(&index) else {
            return;
        };
        let dead = pending.waiting.clone();
        for backup in &dead {
            out.observe(Observation::Note(format!(
                "primary {} drops backup {backup}: no ack for update {index}",
                self.cluster.id
            )));
            self.live_backups.remove(backup);
        }
        for pending in self.pending.values_mut() {
            pending.waiting.retain(|b| !dead.contains(b));
        }
        self.answer_acknowledged(out);
    }

    /// Answer, in index order, every pending update nobody is waited on for.
    fn answer_acknowledged(&mut self, out: &mut Out<'_, Self>) {
        let ready: Vec<u64> =
            self.pending.iter().filter(|(_, p)| p.waiting.is_empty()).map(|(i, _)| *i).collect();
        for index in ready {
            let pending = self.pending.remove(&index).expect("listed above");
            out.cancel_timer(Timer::AckTimeout(index));
            out.reply(pending.request, KvResponse::Done);
        }
    }

    fn heartbeat(&mut self, out: &mut Out<'_, Self>) {
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        for peer in peers {
            out.send(peer, Msg::Heartbeat { view: self.view, index: self.index });
        }
        out.set_timer(Timer::Heartbeat, self.config.heartbeat_interval);
    }

    // ---- backup side ----

    /// True if `from` is the primary of this backup's view; hearing from it
    /// postpones failover.
    fn heard_primary(&mut self, from: NodeId, out: &mut Out<'_, Self>) -> bool {
        if self.is_primary() || from != self.primary() {
            return false;
        }
        self.arm_failover(out);
        true
    }

    fn handle_heartbeat(&mut self, from: NodeId, index: u64, out: &mut Out<'_, Self>) {
        if !self.heard_primary(from, out) {
            return;
        }
        let primary = self.primary();
        if self.synced {
            out.send(primary, Msg::Ack { view: self.view, index: self.index });
        }
        if !self.synced || self.index < index {
            out.send(primary, Msg::NeedState { view: self.view });
        }
    }

    fn handle_append(&mut self, from: NodeId, index: u64, key: Key, value: Value, out: &mut Out<'_, Self>) {
        if !self.heard_primary(from, out) {
            return;
        }
        let primary = self.primary();
        if !self.synced || index > self.index + 1 {
            // Out of sync, or a gap (an Append lost or overtaken).
            out.send(primary, Msg::NeedState { view: self.view });
            return;
        }
        if index == self.index + 1 {
            self.store.set(key, value);
            self.index = index;
            self.persist(Record::Apply { index, key, value }, out);
        }
        // A duplicate (index <= self.index) is acknowledged again.
        out.send(primary, Msg::Ack { view: self.view, index: self.index });
    }

    fn handle_new_view(
        &mut self,
        from: NodeId,
        index: u64,
        entries: Vec<(Key, Value)>,
        out: &mut Out<'_, Self>,
    ) {
        if !self.heard_primary(from, out) {
            return;
        }
        // Within a view the primary's index only grows: a smaller one is an
        // old transfer overtaken by later Appends.
        if !self.synced || index > self.index {
            // Overwrite: whatever this backup had that the primary lacks is
            // gone here (the lost updates of a failover).
            self.store = KvStore::new();
            for (key, value) in entries {
                self.store.set(key, value);
            }
            self.index = index;
            self.synced = true;
            out.checkpoint(self.snapshot());
            self.records_since_checkpoint = 0;
        }
        out.send(self.primary(), Msg::Ack { view: self.view, index: self.index });
    }

    /// A message from a view this node has left: tell the sender. A primary
    /// tells it best, with its whole state.
    fn handle_stale(&mut self, from: NodeId, out: &mut Out<'_, Self>) {
        if self.is_primary() {
            self.send_state(from, false, out);
        } else {
            out.send(from, Msg::ViewInfo { view: self.view });
        }
    }
}

impl Protocol for PrimaryBackup {
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
        let mut node = PrimaryBackup {
            cluster: cluster.clone(),
            config: config.clone(),
            view: 0,
            part: Part::Backup,
            store: KvStore::new(),
            index: 0,
            // View 0 starts from the empty state at index 0 everywhere.
            synced: true,
            live_backups: BTreeSet::new(),
            pending: BTreeMap::new(),
            state_sent_at: BTreeMap::new(),
            records_since_checkpoint: durable.len() as u64,
        };
        node.recover(durable);
        if node.primary() == node.cluster.id {
            node.become_primary(out);
        } else {
            node.become_backup(out);
        }
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        let view = msg.view();
        if view < self.view {
            self.handle_stale(from, out);
            return;
        }
        if view > self.view {
            self.adopt_view(view, out);
        }
        match msg {
            Msg::Heartbeat { index, .. } => self.handle_heartbeat(from, index, out),
            Msg::Append { index, key, value, .. } => self.handle_append(from, index, key, value, out),
            Msg::NewView { index, entries, .. } => self.handle_new_view(from, index, entries, out),
            Msg::Ack { index, .. } => self.handle_ack(from, index, out),
            Msg::NeedState { .. } => self.handle_need_state(from, out),
            Msg::ViewInfo { .. } => {}
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match (timer, self.part) {
            (Timer::Heartbeat, Part::Primary) => self.heartbeat(out),
            (Timer::Failover, Part::Backup) => self.promote(out),
            (Timer::AckTimeout(index), Part::Primary) => self.handle_ack_timeout(index, out),
            // A timer of a role this node has left.
            _ => {}
        }
    }

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        if !self.is_primary() {
            out.reply(
                id,
                KvResponse::Rejected {
                    reason: format!("not the primary of view {}", self.view),
                    hint: Some(self.primary()),
                },
            );
            return;
        }
        match request {
            KvCommand::Read { key } => out.reply(id, KvResponse::Read(self.store.get(key))),
            KvCommand::Write { .. } | KvCommand::Cas { .. } => self.execute_update(id, request, out),
        }
    }

    fn invariants(&self) {
        let me = self.cluster.id;
        assert_eq!(self.is_primary(), self.primary() == me, "the view's primary, and only it, serves");
        assert!(!self.is_primary() || self.synced, "a primary is its own source of truth");
        assert!(!self.live_backups.contains(&me), "a primary is not its own backup");
        assert!(self.live_backups.iter().all(|b| self.cluster.nodes.contains(b)));
        assert!(self.is_primary() || self.live_backups.is_empty(), "only a primary tracks backups");
        assert!(self.is_primary() || self.pending.is_empty(), "only a primary has pending updates");
        assert!(self.config.variant == Variant::Sync || self.pending.is_empty(), "async answers at once");
        for (index, pending) in &self.pending {
            assert!(*index <= self.index, "a pending update is applied at the primary");
            assert!(!pending.waiting.is_empty(), "an update nobody is waited on is answered");
            assert!(pending.waiting.is_subset(&self.live_backups), "only live backups are waited on");
        }
        // Every key was written by some update.
        assert!(self.store.len() as u64 <= self.index, "more keys than updates");
        // The log after the latest checkpoint stays bounded.
        assert!(self.records_since_checkpoint <= self.config.checkpoint_every_records);
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.store.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);

    /// A fresh cluster of `n`. `Kit::new` starts node i while only nodes
    /// [0, i] exist, so each node is restarted once all are in place.
    fn cluster(n: u32, config: Config) -> Kit<PrimaryBackup> {
        let mut kit = Kit::new(n, config);
        kit.network.clear();
        for i in 0..n {
            assert!(kit.durable(i as usize).is_empty());
            kit.crash(NodeId(i));
            kit.start(NodeId(i));
        }
        kit.deliver_all(1000);
        kit
    }

    fn kit(variant: Variant) -> Kit<PrimaryBackup> {
        cluster(3, Config { variant, ..Config::default() })
    }

    fn write(key: Key, value: Value) -> KvCommand {
        KvCommand::Write { key, value }
    }

    fn read(key: Key) -> KvCommand {
        KvCommand::Read { key }
    }

    fn primaries(kit: &Kit<PrimaryBackup>) -> Vec<NodeId> {
        (0..kit.len() as u32)
            .map(NodeId)
            .filter(|n| kit.up(n.0 as usize).is_some_and(|p| p.is_primary()))
            .collect()
    }

    fn isolate(kit: &mut Kit<PrimaryBackup>, node: NodeId) {
        for other in [A, B, C] {
            if other != node {
                kit.cut.push((node, other));
                kit.cut.push((other, node));
            }
        }
    }

    #[test]
    fn primary_serves_and_backups_redirect() {
        let mut kit = kit(Variant::Sync);
        assert_eq!(primaries(&kit), vec![A]);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let r = kit.request(B, read(1));
        assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { hint: Some(A), .. })));
        let cas = kit.request(A, KvCommand::Cas { key: 1, expected: 9, new: 11 });
        assert_eq!(kit.reply(cas), Some(&KvResponse::CasMismatch));
        let cas = kit.request(A, KvCommand::Cas { key: 1, expected: 10, new: 11 });
        kit.deliver_all(100);
        assert_eq!(kit.reply(cas), Some(&KvResponse::Done));
        for node in [A, B, C] {
            assert_eq!(kit.node(node).store().get(1), Some(11));
        }
    }

    #[test]
    fn sync_write_waits_for_every_live_backup() {
        let mut kit = kit(Variant::Sync);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(2); // both Appends arrive; their acks are still in flight
        assert_eq!(kit.reply(w), None, "sync answers only after the backups ack");
        kit.deliver_all(1);
        assert_eq!(kit.reply(w), None, "one of two backups is not enough");
        kit.deliver_all(1);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }

    #[test]
    fn sync_primary_drops_a_silent_backup_and_acks() {
        let mut kit = kit(Variant::Sync);
        kit.cut.push((A, C));
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), None);
        kit.advance(kit.config.ack_timeout);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        assert!(!kit.node(A).live_backups().contains(&C));
        // Once C answers a heartbeat it is waited on again, and caught up.
        kit.cut.clear();
        kit.advance(Micros::from_millis(100));
        assert!(kit.node(A).live_backups().contains(&C));
        assert_eq!(kit.node(C).store().get(1), Some(10));
    }

    #[test]
    fn async_answers_before_backups_have_it() {
        let mut kit = kit(Variant::Async);
        let w = kit.request(A, write(1, 10));
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        assert_eq!(kit.node(B).store().get(1), None, "not shipped yet");
        kit.deliver_all(100);
        assert_eq!(kit.node(B).store().get(1), Some(10));
    }

    #[test]
    fn backup_takes_over_when_primary_crashes() {
        let mut kit = kit(Variant::Sync);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        kit.crash(A);
        kit.advance(Micros::from_millis(200));
        assert!(primaries(&kit).is_empty(), "no failover before the timeout");
        kit.advance(Micros::from_millis(800));
        let new = primaries(&kit);
        assert_eq!(new.len(), 1, "exactly one backup took over: {new:?}");
        let primary = new[0];
        assert!(kit.node(primary).view() > 0);
        let other = if primary == B { C } else { B };
        assert_eq!(kit.node(other).view(), kit.node(primary).view());
        let r = kit.request(primary, read(1));
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))), "sync kept the write");
        let r = kit.request(other, read(1));
        assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { hint: Some(p), .. }) if *p == primary));
        // The new primary first waits for every peer, the dead one included,
        // until the ack timeout drops it.
        let w = kit.request(primary, write(1, 20));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), None);
        kit.advance(kit.config.ack_timeout);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        assert!(!kit.node(primary).live_backups().contains(&A));
        assert_eq!(kit.node(other).store().get(1), Some(20));
    }

    /// The source text's async failure: the primary acknowledged, then died
    /// before the write reached any backup.
    #[test]
    fn async_acknowledged_write_lost_on_failover() {
        let mut kit = kit(Variant::Async);
        isolate(&mut kit, A); // the Appends never leave
        let w = kit.request(A, write(1, 10));
        assert_eq!(kit.reply(w), Some(&KvResponse::Done), "acknowledged");
        kit.crash(A);
        kit.cut.clear();
        kit.advance(Micros::from_millis(1000));
        let primary = primaries(&kit)[0];
        let r = kit.request(primary, read(1));
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)), "the acknowledged write is gone");
        // The old primary comes back with the write on its disk, learns the
        // higher view and is overwritten: the loss is permanent.
        kit.start(A);
        assert_eq!(kit.node(A).store().get(1), Some(10));
        kit.deliver_all(1000);
        kit.advance(Micros::from_millis(200));
        assert_eq!(primaries(&kit), vec![primary]);
        assert_eq!(kit.node(A).store().get(1), None);
        let digest = kit.node(A).state_digest();
        assert!([B, C].iter().all(|n| kit.node(*n).state_digest() == digest));
    }

    /// The source text's sync failure: every backup stored the change, the
    /// primary crashed before answering, the client assumes it failed, and
    /// the promoted backup exposes it.
    #[test]
    fn sync_write_replicated_but_never_acked_becomes_visible() {
        let mut kit = kit(Variant::Sync);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(2); // Master -> each slave; the slaves' acks are in flight
        assert_eq!(kit.node(B).store().get(1), Some(10));
        assert_eq!(kit.node(C).store().get(1), Some(10));
        kit.crash(A); // ... and never acks the client
        kit.advance(Micros::from_millis(1000));
        assert_eq!(kit.reply(w), None, "the client never heard back");
        let primary = primaries(&kit)[0];
        let r = kit.request(primary, read(1));
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
    }

    fn split_brain(variant: Variant) -> (Kit<PrimaryBackup>, NodeId) {
        let mut kit = kit(variant);
        isolate(&mut kit, A);
        kit.advance(Micros::from_millis(1000));
        let both = primaries(&kit);
        assert_eq!(both.len(), 2, "old and new primary both serve: {both:?}");
        assert_eq!(both[0], A);
        let promoted = both[1];
        // Each side's backups across the cut are dropped after the ack
        // timeout (sync), and both writes are acknowledged.
        let old = kit.request(A, write(1, 100));
        let new = kit.request(promoted, write(1, 200));
        kit.advance(kit.config.ack_timeout);
        assert_eq!(kit.reply(old), Some(&KvResponse::Done));
        assert_eq!(kit.reply(new), Some(&KvResponse::Done));
        assert_eq!(kit.node(A).store().get(1), Some(100));
        assert_eq!(kit.node(promoted).store().get(1), Some(200));
        (kit, promoted)
    }

    #[test]
    fn partitioned_primary_and_promoted_backup_both_accept_writes() {
        split_brain(Variant::Sync);
        split_brain(Variant::Async);
    }

    #[test]
    fn lower_view_primary_steps_down_after_heal() {
        for variant in [Variant::Sync, Variant::Async] {
            let (mut kit, promoted) = split_brain(variant);
            kit.cut.clear();
            kit.advance(Micros::from_millis(500));
            assert_eq!(primaries(&kit), vec![promoted]);
            let view = kit.node(promoted).view();
            for node in [A, B, C] {
                assert_eq!(kit.node(node).view(), view);
                // The lower view's acknowledged write is lost everywhere.
                assert_eq!(kit.node(node).store().get(1), Some(200));
                assert_eq!(kit.node(node).state_digest(), kit.node(promoted).state_digest());
            }
        }
    }

    #[test]
    fn restarted_backup_recovers_and_resyncs() {
        let mut kit = kit(Variant::Sync);
        for value in 0..5 {
            kit.request(A, write(value, value));
            kit.deliver_all(100);
        }
        kit.crash(B);
        let w = kit.request(A, write(9, 9));
        kit.advance(kit.config.ack_timeout);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        kit.start(B);
        assert_eq!(kit.node(B).index(), 5, "rebuilt from its log");
        kit.advance(Micros::from_millis(200));
        assert_eq!(kit.node(B).store().get(9), Some(9), "caught up by heartbeat");
        assert_eq!(kit.node(B).state_digest(), kit.node(A).state_digest());
    }

    #[test]
    fn checkpoint_bounds_the_log() {
        let config = Config { checkpoint_every_records: 4, ..Config::default() };
        let mut kit = cluster(3, config);
        for value in 0..10 {
            kit.request(A, write(value % 3, value));
            kit.deliver_all(100);
        }
        assert!(kit.durable(0).len() <= 4);
        kit.crash(A);
        kit.start(A);
        assert_eq!(kit.node(A).index(), 10);
        assert_eq!(kit.node(A).store().get(0), Some(9));
    }

    /// Whatever happened during the faults (partitions, crashes, restarts,
    /// writes on every side), once the network heals and every node is up
    /// there is one primary, every node is in its view, writes succeed, and
    /// the replicas converge.
    #[test]
    fn single_primary_and_convergence_after_heal() {
        for seed in 0..60 {
            let mut rng = quorum_core::Rng::seed(seed);
            let variant = if seed % 2 == 0 { Variant::Sync } else { Variant::Async };
            let mut kit = cluster(5, Config { variant, ..Config::default() });
            let nodes: Vec<NodeId> = (0..5).map(NodeId).collect();
            let mut value = 0;
            for _ in 0..30 {
                match rng.range(0, 6) {
                    0 => {
                        kit.cut.clear();
                        let lonely = *rng.pick(&nodes).expect("nodes");
                        for other in &nodes {
                            if *other != lonely && rng.chance(0.7) {
                                kit.cut.push((lonely, *other));
                                kit.cut.push((*other, lonely));
                            }
                        }
                    }
                    1 => kit.cut.clear(),
                    2 => {
                        let node = *rng.pick(&nodes).expect("nodes");
                        if kit.up(node.0 as usize).is_some() {
                            kit.crash(node);
                        } else {
                            kit.start(node);
                        }
                    }
                    _ => {
                        let node = *rng.pick(&nodes).expect("nodes");
                        value += 1;
                        if kit.up(node.0 as usize).is_some() {
                            kit.request(node, write(value % 4, value));
                        }
                    }
                }
                kit.deliver_all(10_000);
                kit.advance(Micros(rng.range(0, 400_000)));
            }
            kit.cut.clear();
            for node in &nodes {
                if kit.up(node.0 as usize).is_none() {
                    kit.start(*node);
                }
            }
            kit.deliver_all(10_000);
            kit.advance(Micros::from_millis(2000));
            let primary = primaries(&kit);
            assert_eq!(primary.len(), 1, "seed {seed}: primaries {primary:?}");
            let primary = primary[0];
            let w = kit.request(primary, write(9, 9));
            kit.advance(Micros::from_millis(500));
            assert_eq!(kit.reply(w), Some(&KvResponse::Done), "seed {seed}");
            let digest = kit.node(primary).state_digest();
            for node in &nodes {
                assert_eq!(kit.node(*node).view(), kit.node(primary).view(), "seed {seed}");
                assert_eq!(kit.node(*node).state_digest(), digest, "seed {seed}: {node} diverged");
            }
        }
    }
}
