//! Asynchronous replication: write 1-of-N (source text, section
//! "Asynchronous", aka passive, pull or lazy replication).
//!
//! A fixed primary (the lowest [`NodeId`]) accepts every update and "sends a
//! response back to the client ASAP rather than waiting on any synchronous
//! communication with other nodes. It may not have even written the data
//! locally before replying": it applies the update in memory and answers at
//! once. Later, and independently, a flush timer forces the dirty keys to its
//! log and a push timer ships the new writes to the backups, fire-and-forget.
//! Each write carries a [`Version`] `(epoch, seq)`; the primary increments and
//! forces its epoch at every start, so a write after a restart beats every
//! write before it. Every node serves reads from its own state, so reads may
//! be stale and the history is not linearizable. For convergence every node
//! periodically sends its whole versioned state to one random peer
//! (anti-entropy), and receivers merge it last-writer-wins by version.
//!
//! What the text predicts, and the tests show: "the master node may lose the
//! entire write if it fails before replication begins" (an acknowledged write
//! vanishes when the primary crashes before flushing or pushing it); replicas
//! answer reads with old values; and "if nothing goes wrong all N nodes will
//! eventually have the data" (equal digests once faults stop).

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog;
use quorum_core::claims::{reached, SystemModel, Violation};
use quorum_core::{
    Cluster, ConfigError, Key, KvCommand, KvResponse, KvStore, Micros, NodeId, Observation, Out, Protocol,
    RequestId, Role, Value,
};
use serde::{Deserialize, Serialize};

/// The catalogue entry (source text, "Asynchronous"): it breaks what the
/// text says it breaks, and keeps convergence.
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "async",
    section: "Asynchronous",
    summary: "1-of-N: the primary acknowledges at once and propagates lazily; \
              stale reads, acknowledged writes lost if the primary dies first; replicas converge when faults stop",
    model: SystemModel::Asynchronous,
    always: &[
        Violation::Panic,
        Violation::Runaway,
        Violation::Divergence,
        Violation::Liveness,
        Violation::LogSafety,
        Violation::ElectionSafety,
        Violation::ClusterInvariant,
    ],
    breaks: &[Violation::LostAckedWrites, Violation::Linearizability],
    sometimes: &[reached::RECOVERED],
    workload: catalog::Workload::Kv { cas: true },
    variants: &[],
    bugs: &[],
    explorable: &[],
    retries: 0,
};

/// Settings of asynchronous replication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often a node forces its dirty keys to its log.
    pub flush_interval: Micros,
    /// How often the primary ships its new writes to the backups.
    pub push_interval: Micros,
    /// How often a node sends its whole state to one random peer.
    pub anti_entropy_interval: Micros,
    /// Most entries in one push; the rest wait for the next.
    pub push_entries_max: usize,
    /// Durable records after which the node checkpoints its whole state and
    /// so truncates its log.
    pub checkpoint_records_max: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            flush_interval: Micros::from_millis(100),
            push_interval: Micros::from_millis(50),
            anti_entropy_interval: Micros::from_millis(200),
            push_entries_max: 256,
            checkpoint_records_max: 64,
        }
    }
}

impl Config {
    /// Reject settings that cannot work; run before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let intervals = [self.flush_interval, self.push_interval, self.anti_entropy_interval];
        if intervals.iter().any(|i| i.0 == 0) {
            return Err(ConfigError::new("every interval must be positive"));
        }
        if self.push_entries_max == 0 {
            return Err(ConfigError::new("push_entries_max must be at least 1"));
        }
        if self.checkpoint_records_max < 2 {
            return Err(ConfigError::new("checkpoint_records_max must be at least 2"));
        }
        Ok(())
    }
}

/// A write's version: the primary's epoch (incremented at each of its
/// starts) and a counter within it. Ordered lexicographically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub epoch: u64,
    pub seq: u64,
}

/// One key's value and the version that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: Key,
    pub version: Version,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Primary to backup, unacknowledged: writes since the last push.
    Push { entries: Vec<Entry> },
    /// Any node to a random peer: the sender's whole state.
    AntiEntropy { entries: Vec<Entry> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The primary started epoch `0`.
    Epoch(u64),
    /// A flush: these entries are durable.
    Flush(Vec<Entry>),
    /// The whole state; replaces the log.
    Checkpoint { epoch: u64, entries: Vec<Entry> },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    Flush,
    Push,
    AntiEntropy,
}

/// One node of asynchronous replication.
#[derive(Clone, Debug)]
pub struct Asynchronous {
    cluster: Cluster,
    config: Config,
    primary: NodeId,
    /// The primary's current epoch; on a backup, the last epoch in its log (0).
    epoch: u64,
    /// The primary's last `Version::seq` issued in `epoch`.
    seq: u64,
    /// The applied state, and the version of every key in it.
    store: KvStore,
    versions: BTreeMap<Key, Version>,
    /// Keys changed in memory and not yet forced to the log.
    dirty: BTreeSet<Key>,
    /// Primary only: keys written and not yet pushed to the backups.
    unpushed: BTreeSet<Key>,
    /// Records in the durable log after its checkpoint.
    records_since_checkpoint: usize,
}

impl Asynchronous {
    fn is_primary(&self) -> bool {
        self.cluster.id == self.primary
    }

    /// The applied state (for tests and tools).
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn entry(&self, key: Key) -> Entry {
        let version = self.versions[&key];
        let value = self.store.get(key).expect("a versioned key has a value");
        Entry { key, version, value }
    }

    fn entries(&self) -> Vec<Entry> {
        self.versions.keys().map(|key| self.entry(*key)).collect()
    }

    /// Last-writer-wins: keep `entry` if its version is newer than ours.
    /// Equal versions carry equal values (an epoch is never reused); the
    /// value breaks the tie anyway, so merges commute whatever happens.
    /// Returns whether the state changed.
    fn merge(&mut self, entry: Entry) -> bool {
        if let Some(version) = self.versions.get(&entry.key) {
            let ours = (*version, self.store.get(entry.key));
            if (entry.version, Some(entry.value)) <= ours {
                return false;
            }
        }
        self.versions.insert(entry.key, entry.version);
        self.store.set(entry.key, entry.value);
        true
    }

    fn replay(&mut self, record: &Record) {
        match record {
            Record::Epoch(epoch) => self.epoch = self.epoch.max(*epoch),
            Record::Flush(entries) => {
                for entry in entries {
                    self.merge(*entry);
                }
            }
            Record::Checkpoint { epoch, entries } => {
                self.epoch = *epoch;
                self.store = KvStore::new();
                self.versions.clear();
                for entry in entries {
                    self.merge(*entry);
                }
                self.records_since_checkpoint = 0;
                return;
            }
        }
        self.records_since_checkpoint += 1;
    }

    /// Force `record`, checkpointing when the log has grown long enough.
    fn log(&mut self, record: Record, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records_since_checkpoint += 1;
        if self.records_since_checkpoint >= self.config.checkpoint_records_max {
            let entries = self.entries();
            out.checkpoint(Record::Checkpoint { epoch: self.epoch, entries });
            self.records_since_checkpoint = 0;
            self.dirty.clear(); // the checkpoint holds them
        }
    }

    fn become_primary(&mut self, out: &mut Out<'_, Self>) {
        assert!(self.is_primary());
        // Past every epoch this node ever wrote or merged, so that a write of
        // this epoch beats every write before the crash.
        let newest = self.versions.values().map(|v| v.epoch).max().unwrap_or(0);
        self.epoch = self.epoch.max(newest) + 1;
        self.seq = 0;
        // Forced before any write of this epoch can leave the node.
        self.log(Record::Epoch(self.epoch), out);
        out.observe(Observation::Role { role: Role::Leader, term: self.epoch });
        out.set_timer(Timer::Push, self.config.push_interval);
    }

    fn handle_update(&mut self, id: RequestId, command: KvCommand, out: &mut Out<'_, Self>) {
        if !self.is_primary() {
            let reason = format!("not the primary: {} accepts updates", self.primary);
            let response = KvResponse::Rejected { reason, hint: Some(self.primary) };
            return out.reply(id, response);
        }
        let response = self.store.apply(&command);
        if response == KvResponse::Done {
            self.seq += 1;
            let key = command.key();
            self.versions.insert(key, Version { epoch: self.epoch, seq: self.seq });
            self.dirty.insert(key);
            self.unpushed.insert(key);
        }
        // Answered before anything is forced or sent: the text's 1-of-N.
        out.reply(id, response);
    }

    fn handle_flush(&mut self, out: &mut Out<'_, Self>) {
        if !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            let entries = dirty.into_iter().map(|key| self.entry(key)).collect();
            self.log(Record::Flush(entries), out);
        }
        out.set_timer(Timer::Flush, self.config.flush_interval);
    }

    fn handle_push(&mut self, out: &mut Out<'_, Self>) {
        let keys: Vec<Key> = self.unpushed.iter().copied().take(self.config.push_entries_max).collect();
        if !keys.is_empty() {
            for key in &keys {
                self.unpushed.remove(key);
            }
            let entries: Vec<Entry> = keys.into_iter().map(|key| self.entry(key)).collect();
            for peer in self.cluster.peers() {
                out.send(peer, Msg::Push { entries: entries.clone() });
            }
        }
        out.set_timer(Timer::Push, self.config.push_interval);
    }

    fn handle_anti_entropy(&mut self, out: &mut Out<'_, Self>) {
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        if let Some(peer) = out.rng().pick(&peers).copied() {
            if !self.versions.is_empty() {
                out.send(peer, Msg::AntiEntropy { entries: self.entries() });
            }
        }
        out.set_timer(Timer::AntiEntropy, self.config.anti_entropy_interval);
    }

    /// Merge entries from a peer; the next flush makes them durable.
    fn handle_entries(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if self.merge(entry) {
                self.dirty.insert(entry.key);
            }
        }
    }
}

impl Protocol for Asynchronous {
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
        let mut node = Asynchronous {
            cluster: cluster.clone(),
            config: config.clone(),
            primary: cluster.nodes[0],
            epoch: 0,
            seq: 0,
            store: KvStore::new(),
            versions: BTreeMap::new(),
            dirty: BTreeSet::new(),
            unpushed: BTreeSet::new(),
            records_since_checkpoint: 0,
        };
        for record in durable {
            node.replay(record);
        }
        if node.is_primary() {
            node.become_primary(out);
        } else {
            out.observe(Observation::Role { role: Role::Follower, term: node.epoch });
        }
        out.set_timer(Timer::Flush, config.flush_interval);
        out.set_timer(Timer::AntiEntropy, config.anti_entropy_interval);
        node
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg, _out: &mut Out<'_, Self>) {
        match msg {
            Msg::Push { entries } | Msg::AntiEntropy { entries } => self.handle_entries(entries),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Flush => self.handle_flush(out),
            Timer::Push => self.handle_push(out),
            Timer::AntiEntropy => self.handle_anti_entropy(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        match request {
            // Any node, from its own state: possibly stale.
            KvCommand::Read { .. } => out.reply(id, self.store.apply(&request)),
            KvCommand::Write { .. } | KvCommand::Cas { .. } => self.handle_update(id, request, out),
        }
    }

    fn invariants(&self) {
        assert_eq!(self.versions.len(), self.store.len(), "every key has a version");
        for (key, value) in self.store.iter() {
            assert!(self.versions.contains_key(&key), "key {key} = {value} has no version");
        }
        assert!(self.dirty.iter().all(|k| self.versions.contains_key(k)));
        assert!(self.unpushed.iter().all(|k| self.versions.contains_key(k)));
        assert!(self.records_since_checkpoint < self.config.checkpoint_records_max);
        if !self.is_primary() {
            assert!(self.unpushed.is_empty(), "only the primary pushes");
            assert_eq!(self.seq, 0, "only the primary issues versions");
            return;
        }
        assert!(self.epoch >= 1, "the primary runs in an epoch it forced");
        for version in self.versions.values() {
            assert!(version.epoch <= self.epoch, "a version from a future epoch");
            if version.epoch == self.epoch {
                assert!(version.seq <= self.seq, "a version this epoch has not issued");
            }
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

    fn ms(n: u64) -> Micros {
        Micros::from_millis(n)
    }

    fn read(kit: &mut Kit<Asynchronous>, node: NodeId, key: u64) -> Option<Value> {
        let rid = kit.request(node, KvCommand::Read { key });
        match kit.reply(rid) {
            Some(KvResponse::Read(value)) => *value,
            other => panic!("a read answers at once, got {other:?}"),
        }
    }

    /// A three-node cluster, freshly started.
    ///
    /// `Kit::new` starts node i while only nodes 0..=i exist, so each node's
    /// `Cluster` is short; starting every node again from an empty log gives
    /// them all the full membership.
    fn kit() -> Kit<Asynchronous> {
        let mut kit = Kit::new(3, Config::default());
        kit.network.clear();
        for i in 0..3 {
            kit.durable_mut(i).clear();
            kit.crash(NodeId(i as u32));
            kit.start(NodeId(i as u32));
        }
        kit
    }

    fn digests(kit: &Kit<Asynchronous>) -> Vec<Option<u64>> {
        (0..3).map(|i| kit.node(NodeId(i)).state_digest()).collect()
    }

    /// "immediately sends a response back to the client ASAP ... It may not
    /// have even written the data locally before replying" (Asynchronous).
    #[test]
    fn primary_acknowledges_before_persisting_or_replicating() {
        let mut kit = kit();
        let durable_before = kit.durable(0).len();
        let rid = kit.request(P, write(1, 10));
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
        assert_eq!(kit.durable(0).len(), durable_before, "nothing forced yet");
        assert!(kit.network.is_empty(), "nothing sent yet");
    }

    /// "the master node may lose the entire write if it fails before
    /// replication begins" (Asynchronous).
    #[test]
    fn acknowledged_write_lost_when_primary_crashes_before_flush() {
        let mut kit = kit();
        let rid = kit.request(P, write(1, 10));
        assert_eq!(kit.reply(rid), Some(&KvResponse::Done));
        kit.crash(P);
        kit.start(P);
        kit.advance(ms(1000));
        for node in [P, B1, B2] {
            assert_eq!(read(&mut kit, node, 1), None, "the acknowledged write is gone at {node}");
        }
    }

    #[test]
    fn flushed_write_survives_primary_restart() {
        let mut kit = kit();
        kit.cut.extend([(P, B1), (P, B2)]); // no help from the backups
        kit.request(P, write(1, 10));
        kit.advance(ms(110)); // one flush
        kit.crash(P);
        kit.start(P);
        assert_eq!(read(&mut kit, P, 1), Some(10));
        assert_eq!(kit.node(P).epoch(), 2, "every start begins a new epoch");
    }

    #[test]
    fn backup_serves_stale_read() {
        let mut kit = kit();
        kit.request(P, write(1, 10));
        assert_eq!(read(&mut kit, B1, 1), None, "the backup has not heard of the write");
        kit.advance(ms(60)); // one push
        assert_eq!(read(&mut kit, B1, 1), Some(10));
    }

    #[test]
    fn backup_rejects_updates_with_hint_to_primary() {
        let mut kit = kit();
        let rid = kit.request(B2, write(1, 10));
        match kit.reply(rid) {
            Some(KvResponse::Rejected { hint, .. }) => assert_eq!(*hint, Some(P)),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(read(&mut kit, B2, 1), None);
    }

    #[test]
    fn cas_is_evaluated_at_the_primary() {
        let mut kit = kit();
        kit.request(P, write(1, 1));
        let hit = kit.request(P, KvCommand::Cas { key: 1, expected: 1, new: 2 });
        let miss = kit.request(P, KvCommand::Cas { key: 1, expected: 1, new: 3 });
        assert_eq!(kit.reply(hit), Some(&KvResponse::Done));
        assert_eq!(kit.reply(miss), Some(&KvResponse::CasMismatch));
        kit.advance(ms(60));
        assert_eq!(read(&mut kit, B2, 1), Some(2));
    }

    /// "If nothing goes wrong all N nodes will eventually have the data"
    /// (Asynchronous): the push reached n1 only, the primary died before
    /// flushing, and anti-entropy spreads n1's copy to everyone.
    #[test]
    fn replicas_converge_after_anti_entropy() {
        let mut kit = kit();
        kit.cut.push((P, B2));
        kit.request(P, write(1, 10));
        kit.advance(ms(60)); // pushed to n1 only, not flushed
        kit.crash(P);
        kit.cut.clear();
        kit.start(P);
        assert_eq!(read(&mut kit, P, 1), None);
        assert_eq!(read(&mut kit, B2, 1), None);
        assert_ne!(digests(&kit)[1], digests(&kit)[2], "diverged");

        kit.advance(ms(3000));
        let digests = digests(&kit);
        assert!(digests.iter().all(|d| *d == digests[0]), "converged: {digests:?}");
        assert_eq!(read(&mut kit, B2, 1), Some(10));
    }

    #[test]
    fn new_epoch_writes_win_over_pre_crash_versions() {
        let mut kit = kit();
        kit.request(P, write(1, 10));
        kit.advance(ms(60)); // pushed, not flushed
        kit.crash(P);
        kit.start(P);
        kit.request(P, write(1, 20));
        kit.advance(ms(3000));
        for node in [P, B1, B2] {
            assert_eq!(read(&mut kit, node, 1), Some(20), "{node} kept the newer write");
        }
    }

    proptest::proptest! {
        /// Anti-entropy converges whatever order entries arrive in: the
        /// last-writer-wins merge is commutative, associative and idempotent.
        #[test]
        fn merge_is_order_insensitive(
            raw in proptest::collection::vec((0u64..4, 0u64..3, 0u64..4, 0u64..5), 0..24),
            seed in 0u64..1000,
        ) {
            let entries: Vec<Entry> = raw
                .into_iter()
                .map(|(key, epoch, seq, value)| Entry { key, version: Version { epoch, seq }, value })
                .collect();
            let mut shuffled = entries.clone();
            quorum_core::Rng::seed(seed).shuffle(&mut shuffled);
            shuffled.extend(entries.iter().take(3).copied()); // duplicates
            let mut a = kit();
            let mut b = kit();
            a.node_mut(NodeId(1)).handle_entries(entries);
            b.node_mut(NodeId(1)).handle_entries(shuffled);
            proptest::prop_assert_eq!(a.node(B1).store(), b.node(B1).store());
            proptest::prop_assert_eq!(&a.node(B1).versions, &b.node(B1).versions);
        }
    }

    #[test]
    fn durable_log_stays_bounded_by_checkpoints() {
        let mut kit = kit();
        for i in 0..200 {
            kit.request(P, write(i, i));
            kit.advance(ms(110));
        }
        let max = Config::default().checkpoint_records_max;
        for node in [P, B1, B2] {
            assert!(kit.durable(node.0 as usize).len() <= max, "{node}'s log is bounded");
            kit.crash(node);
            kit.start(node);
            assert_eq!(kit.node(node).store().len(), 200, "{node} recovered everything");
        }
    }
}
