//! ABD: a linearizable read/write register per key from majority quorums
//! alone, with no leader (the source text's "Quorums: consensus by
//! majority"; Attiya, Bar-Noy, Dolev, "Sharing memory robustly in
//! message-passing systems", JACM 1995, in the multi-writer form of Lynch and
//! Shvartsman, "Robust emulation of shared memory using dynamic
//! quorum-acknowledged broadcasts", FTCS 1997).
//!
//! Every replica keeps, per key, the value with the highest *tag* it has
//! stored; a tag is `(counter, writer)`, ordered lexicographically, so two
//! writers never mint the same tag. Any node coordinates any client operation
//! in two phases, each finished as soon as a majority has answered. A write
//! first *queries* a majority for their highest tag, then *stores*
//! `(max.counter + 1, self)` with the value at a majority. A read queries a
//! majority for the highest `(tag, value)`, then *writes it back* to a
//! majority before returning it. The write-back is what makes reads atomic:
//! once a read returned a value, that value sits at a majority, so every
//! later read's query majority meets it and no later read can return an
//! older one (the new/old inversion a plain quorum read allows). Any two
//! majorities intersect, so the register survives any minority of crashed or
//! partitioned nodes, and a minority can never complete an operation on its
//! own. A replica adopts a stored `(tag, value)` only if the tag is higher,
//! and forces it to its log before acknowledging. Registers support no
//! compare-and-set: a register has consensus number 1 (Herlihy), so `cas` is
//! refused.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel};
use quorum_core::{
    Cluster, ConfigError, Key, KvCommand, KvResponse, Micros, NodeId, Observation, Out, Protocol, RequestId,
    Time, Value,
};
use serde::{Deserialize, Serialize};

/// A register version: `(counter, writer, nonce)`, compared lexicographically.
/// Debug form `3.n1.6a2f` (the nonce's low 16 bits).
///
/// `nonce` is the writing operation's id. Without it, two writes that one
/// coordinator runs concurrently (both queries answered before either store)
/// would carry the same `(counter, writer)` with different values, and
/// replicas would keep whichever arrived first: reads would then flip between
/// the two (found by the simulator: a coordinator paused with two writes in
/// flight). Tags must name exactly one write.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tag {
    pub counter: u64,
    pub writer: NodeId,
    pub nonce: u64,
}

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{:04x}", self.counter, self.writer, self.nonce & 0xffff)
    }
}

impl Tag {
    /// The tag of a key never written; every write's tag is higher.
    pub const ZERO: Tag = Tag { counter: 0, writer: NodeId(0), nonce: 0 };
}

/// A coordinator's operation identity. Drawn from the node's seeded RNG, so
/// replies to an operation of an earlier incarnation never match a new one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub u64);

impl std::fmt::Debug for OpId {
    /// The low 16 bits, enough to tell operations apart in a trace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "op:{:04x}", self.0 & 0xffff)
    }
}

/// The catalogue entry (source text, "Quorums: consensus by majority").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "abd",
    section: "Quorums: consensus by majority",
    summary: "a linearizable register from majority quorums (reads write back); \
              available with a minority down, no leader",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[READ_WROTE_BACK, reached::RECOVERED],
    workload: catalog::Workload::Kv { cas: false },
    variants: &[],
    bugs: &[],
    explorable: &[],
    retries: 0,
};

/// A read found the majority it asked disagreeing and wrote the newest value
/// back before answering: the step that makes ABD's reads linearizable.
pub const READ_WROTE_BACK: Sometimes = Sometimes {
    name: "read_wrote_back",
    what: "a read found replicas behind the newest value and wrote it back before answering",
};

/// Settings of an ABD node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often a phase is re-sent to the replicas that have not answered.
    pub retransmit_interval: Micros,
    /// How long an operation may run before the client is answered anyway:
    /// `Rejected` if it had no effect yet, `Indeterminate` otherwise.
    pub operation_timeout: Micros,
    /// Replace the log by a snapshot of every register after this many records.
    pub checkpoint_every_records: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            retransmit_interval: Micros::from_millis(50),
            operation_timeout: Micros::from_millis(800),
            checkpoint_every_records: 256,
        }
    }
}

impl Config {
    /// Check the settings before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retransmit_interval.0 == 0 {
            return Err(ConfigError::new("retransmit_interval must be positive"));
        }
        if self.operation_timeout <= self.retransmit_interval {
            return Err(ConfigError::new("operation_timeout must exceed retransmit_interval"));
        }
        if self.checkpoint_every_records == 0 {
            return Err(ConfigError::new("checkpoint_every_records must be positive"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Phase 1: "what is your highest (tag, value) for `key`?"
    Query { op: OpId, key: Key },
    /// `value` is `None` exactly when `tag` is `Tag::ZERO`.
    QueryReply { op: OpId, tag: Tag, value: Option<Value> },
    /// Phase 2: "store `(tag, value)` for `key` if it is newer than yours".
    Store { op: OpId, key: Key, tag: Tag, value: Value },
    /// "What you sent me is stored (or something newer is)."
    StoreAck { op: OpId },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The replica adopted `(tag, value)` for `key`.
    Register { key: Key, tag: Tag, value: Value },
    /// Every register (a checkpoint).
    Snapshot { registers: Vec<(Key, Tag, Value)> },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Re-send the operation's current phase to the silent replicas.
    Retransmit(OpId),
    /// The operation ran out of time.
    Expire(OpId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write { value: Value },
}

#[derive(Clone, Debug)]
enum Phase {
    Query { replies: BTreeMap<NodeId, (Tag, Option<Value>)> },
    Store { tag: Tag, value: Value, acks: BTreeSet<NodeId> },
}

/// An operation this node coordinates.
#[derive(Clone, Debug)]
struct Operation {
    request: RequestId,
    key: Key,
    kind: Kind,
    phase: Phase,
    started: Time,
}

impl Operation {
    fn answered(&self, node: NodeId) -> bool {
        match &self.phase {
            Phase::Query { replies } => replies.contains_key(&node),
            Phase::Store { acks, .. } => acks.contains(&node),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Abd {
    cluster: Cluster,
    config: Config,
    /// Replica state: the highest `(tag, value)` stored per key.
    // Invariant: every tag here is above Tag::ZERO.
    registers: BTreeMap<Key, (Tag, Value)>,
    /// Coordinator state: operations in flight.
    operations: BTreeMap<OpId, Operation>,
    records_since_checkpoint: u64,
}

impl Abd {
    /// This replica's `(tag, value)` for `key`.
    pub fn register(&self, key: Key) -> (Tag, Option<Value>) {
        match self.registers.get(&key) {
            Some((tag, value)) => (*tag, Some(*value)),
            None => (Tag::ZERO, None),
        }
    }

    /// Operations this node is coordinating.
    pub fn operations_in_flight(&self) -> usize {
        self.operations.len()
    }

    fn recover(&mut self, durable: &[Record]) {
        for record in durable {
            match record {
                Record::Register { key, tag, value } => {
                    self.adopt(*key, *tag, *value);
                }
                Record::Snapshot { registers } => {
                    self.registers.clear();
                    for (key, tag, value) in registers {
                        self.adopt(*key, *tag, *value);
                    }
                }
            }
        }
    }

    /// Keep `(tag, value)` if it is newer; true if it was.
    fn adopt(&mut self, key: Key, tag: Tag, value: Value) -> bool {
        assert!(tag > Tag::ZERO, "every stored tag is a write's");
        if tag <= self.register(key).0 {
            return false;
        }
        self.registers.insert(key, (tag, value));
        true
    }

    // ---- replica side ----

    fn answer_query(&self, key: Key) -> (Tag, Option<Value>) {
        self.register(key)
    }

    /// Adopt if newer, forcing the record to disk before any later effect
    /// (the acknowledgement) leaves.
    fn store(&mut self, key: Key, tag: Tag, value: Value, out: &mut Out<'_, Self>) {
        if !self.adopt(key, tag, value) {
            return;
        }
        out.persist(Record::Register { key, tag, value });
        self.records_since_checkpoint += 1;
        if self.records_since_checkpoint >= self.config.checkpoint_every_records {
            let registers = self.registers.iter().map(|(k, (t, v))| (*k, *t, *v)).collect();
            out.checkpoint(Record::Snapshot { registers });
            self.records_since_checkpoint = 0;
        }
    }

    fn handle_query(&mut self, from: NodeId, op: OpId, key: Key, out: &mut Out<'_, Self>) {
        let (tag, value) = self.answer_query(key);
        out.send(from, Msg::QueryReply { op, tag, value });
    }

    fn handle_store(
        &mut self,
        from: NodeId,
        op: OpId,
        key: Key,
        tag: Tag,
        value: Value,
        out: &mut Out<'_, Self>,
    ) {
        self.store(key, tag, value, out);
        out.send(from, Msg::StoreAck { op });
    }

    // ---- coordinator side ----

    fn fresh_op_id(&mut self, out: &mut Out<'_, Self>) -> OpId {
        loop {
            let id = OpId(out.rng().next_u64());
            if !self.operations.contains_key(&id) {
                return id;
            }
        }
    }

    fn begin(&mut self, request: RequestId, key: Key, kind: Kind, out: &mut Out<'_, Self>) {
        let op = self.fresh_op_id(out);
        let phase = Phase::Query { replies: BTreeMap::new() };
        self.operations.insert(op, Operation { request, key, kind, phase, started: out.now() });
        out.set_timer(Timer::Expire(op), self.config.operation_timeout);
        out.set_timer(Timer::Retransmit(op), self.config.retransmit_interval);
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        for peer in peers {
            out.send(peer, Msg::Query { op, key });
        }
        // This node is a replica too; it answers without the network.
        let (tag, value) = self.answer_query(key);
        self.handle_query_reply(self.cluster.id, op, tag, value, out);
    }

    fn handle_query_reply(
        &mut self,
        from: NodeId,
        op: OpId,
        tag: Tag,
        value: Option<Value>,
        out: &mut Out<'_, Self>,
    ) {
        let majority = self.cluster.majority();
        // A reply to a finished operation, or to a phase already left: stale.
        let Some(operation) = self.operations.get_mut(&op) else { return };
        let Phase::Query { replies } = &mut operation.phase else { return };
        assert_eq!(value.is_none(), tag == Tag::ZERO, "only the unwritten tag has no value");
        replies.insert(from, (tag, value));
        if replies.len() >= majority {
            self.finish_query(op, out);
        }
    }

    /// A majority answered the query: pick the highest `(tag, value)`.
    fn finish_query(&mut self, op: OpId, out: &mut Out<'_, Self>) {
        let majority = self.cluster.majority();
        let operation = &self.operations[&op];
        let Phase::Query { replies } = &operation.phase else { unreachable!("in the query phase") };
        let (max_tag, max_value) = *replies.values().max_by_key(|(tag, _)| *tag).expect("a majority");
        let holding_max = replies.values().filter(|(tag, _)| *tag == max_tag).count();
        match operation.kind {
            Kind::Write { value } => {
                let tag = Tag { counter: max_tag.counter + 1, writer: self.cluster.id, nonce: op.0 };
                self.begin_store(op, tag, value, out);
            }
            // Already at a majority (or never written): nothing to write back.
            Kind::Read if max_tag == Tag::ZERO || holding_max >= majority => {
                self.complete(op, KvResponse::Read(max_value), out);
            }
            Kind::Read => {
                let value = max_value.expect("a written tag has a value");
                out.observe(Observation::Reached(READ_WROTE_BACK.name));
                self.begin_store(op, max_tag, value, out);
            }
        }
    }

    fn begin_store(&mut self, op: OpId, tag: Tag, value: Value, out: &mut Out<'_, Self>) {
        let operation = self.operations.get_mut(&op).expect("in flight");
        operation.phase = Phase::Store { tag, value, acks: BTreeSet::new() };
        let key = operation.key;
        let peers: Vec<NodeId> = self.cluster.peers().collect();
        for peer in peers {
            out.send(peer, Msg::Store { op, key, tag, value });
        }
        self.store(key, tag, value, out);
        self.handle_store_ack(self.cluster.id, op, out);
    }

    fn handle_store_ack(&mut self, from: NodeId, op: OpId, out: &mut Out<'_, Self>) {
        let majority = self.cluster.majority();
        let Some(operation) = self.operations.get_mut(&op) else { return };
        let Phase::Store { value, acks, .. } = &mut operation.phase else { return };
        acks.insert(from);
        if acks.len() < majority {
            return;
        }
        let response = match operation.kind {
            Kind::Read => KvResponse::Read(Some(*value)),
            Kind::Write { .. } => KvResponse::Done,
        };
        self.complete(op, response, out);
    }

    fn complete(&mut self, op: OpId, response: KvResponse, out: &mut Out<'_, Self>) {
        let operation = self.operations.remove(&op).expect("in flight");
        out.cancel_timer(Timer::Retransmit(op));
        out.cancel_timer(Timer::Expire(op));
        out.reply(operation.request, response);
    }

    fn retransmit(&mut self, op: OpId, out: &mut Out<'_, Self>) {
        let Some(operation) = self.operations.get(&op) else { return };
        let silent: Vec<NodeId> = self.cluster.peers().filter(|p| !operation.answered(*p)).collect();
        let msg = match operation.phase {
            Phase::Query { .. } => Msg::Query { op, key: operation.key },
            Phase::Store { tag, value, .. } => Msg::Store { op, key: operation.key, tag, value },
        };
        for peer in silent {
            out.send(peer, msg.clone());
        }
        out.set_timer(Timer::Retransmit(op), self.config.retransmit_interval);
    }

    /// Out of time. A read has no effect a client could miss, and a write
    /// whose store never began has none either: both certainly failed. A
    /// write that began storing may sit at some replicas: unknown.
    fn expire(&mut self, op: OpId, out: &mut Out<'_, Self>) {
        let Some(operation) = self.operations.get(&op) else { return };
        let reason = format!(
            "no majority answered within {} ms",
            out.now().saturating_sub(operation.started).as_millis()
        );
        let response = match (&operation.kind, &operation.phase) {
            (Kind::Write { .. }, Phase::Store { .. }) => KvResponse::Indeterminate { reason },
            _ => KvResponse::Rejected { reason, hint: None },
        };
        out.observe(Observation::Note(format!("{} gives up operation {}", self.cluster.id, op.0)));
        self.complete(op, response, out);
    }
}

impl Protocol for Abd {
    type Msg = Msg;
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, _nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], _out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let mut node = Abd {
            cluster: cluster.clone(),
            config: config.clone(),
            registers: BTreeMap::new(),
            operations: BTreeMap::new(),
            records_since_checkpoint: durable.len() as u64,
        };
        node.recover(durable);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Query { op, key } => self.handle_query(from, op, key, out),
            Msg::QueryReply { op, tag, value } => self.handle_query_reply(from, op, tag, value, out),
            Msg::Store { op, key, tag, value } => self.handle_store(from, op, key, tag, value, out),
            Msg::StoreAck { op } => self.handle_store_ack(from, op, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Retransmit(op) => self.retransmit(op, out),
            Timer::Expire(op) => self.expire(op, out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        match request {
            KvCommand::Read { key } => self.begin(id, key, Kind::Read, out),
            KvCommand::Write { key, value } => self.begin(id, key, Kind::Write { value }, out),
            KvCommand::Cas { .. } => out.reply(
                id,
                KvResponse::Rejected { reason: "abd registers do not support cas".into(), hint: None },
            ),
        }
    }

    fn describe(&self) -> String {
        let registers: Vec<String> =
            self.registers.iter().map(|(k, (tag, v))| format!("{k}={v}@{tag:?}")).collect();
        format!("registers [{}], {} operations in progress", registers.join(" "), self.operations.len())
    }

    fn invariants(&self) {
        let majority = self.cluster.majority();
        for (tag, _) in self.registers.values() {
            assert!(*tag > Tag::ZERO, "only writes' tags are stored");
            assert!(self.cluster.nodes.contains(&tag.writer), "tags are minted by members");
        }
        for operation in self.operations.values() {
            match &operation.phase {
                Phase::Query { replies } => {
                    // A phase ends the moment a majority answered.
                    assert!(replies.len() < majority, "a finished query is still open");
                    assert!(replies.contains_key(&self.cluster.id), "the coordinator answers itself first");
                }
                Phase::Store { tag, acks, .. } => {
                    assert!(acks.len() < majority, "a finished store is still open");
                    assert!(acks.contains(&self.cluster.id), "the coordinator stores first");
                    assert!(*tag > Tag::ZERO, "nothing to store for an unwritten key");
                    // The coordinator stored it, so it holds this tag or newer.
                    assert!(self.register(operation.key).0 >= *tag);
                    if let Kind::Write { .. } = operation.kind {
                        assert_eq!(tag.writer, self.cluster.id, "a writer mints its own tags");
                    }
                }
            }
        }
        assert!(self.records_since_checkpoint <= self.config.checkpoint_every_records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);

    /// `Kit::new` starts node i while only nodes [0, i] exist, so each node
    /// is restarted once all are in place.
    fn cluster(n: u32) -> Kit<Abd> {
        let mut kit = Kit::new(n, Config::default());
        for i in 0..n {
            kit.crash(NodeId(i));
            kit.start(NodeId(i));
        }
        kit
    }

    fn write(key: Key, value: Value) -> KvCommand {
        KvCommand::Write { key, value }
    }

    fn read(key: Key) -> KvCommand {
        KvCommand::Read { key }
    }

    #[test]
    fn abd_write_then_read_from_another_node_sees_it() {
        let mut kit = cluster(3);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let r = kit.request(C, read(1));
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
        let w = kit.request(B, write(1, 11));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let tag = kit.node(B).register(1).0;
        assert_eq!((tag.counter, tag.writer), (2, B));
        let r = kit.request(A, read(1));
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(11))));
        let r = kit.request(A, read(2));
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(None)));
    }

    #[test]
    fn abd_available_with_minority_down() {
        let mut kit = cluster(5);
        kit.crash(NodeId(3));
        kit.crash(NodeId(4));
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let r = kit.request(C, read(1));
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
        // Another minority down: the acknowledged write is at a majority,
        // which meets every other majority.
        kit.start(NodeId(3));
        kit.start(NodeId(4));
        kit.crash(A);
        kit.crash(B);
        let r = kit.request(NodeId(4), read(1));
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
    }

    #[test]
    fn abd_rejects_without_majority() {
        let mut kit = cluster(3);
        kit.crash(B);
        kit.crash(C);
        let w = kit.request(A, write(1, 10));
        let r = kit.request(A, read(1));
        kit.advance(Micros::from_millis(700));
        assert_eq!(kit.reply(w), None, "retrying until the operation timeout");
        assert!(kit.network.is_empty(), "retransmissions to crashed nodes are lost");
        kit.advance(Micros::from_millis(200));
        assert!(matches!(kit.reply(w), Some(KvResponse::Rejected { .. })), "the query never finished");
        assert!(matches!(kit.reply(r), Some(KvResponse::Rejected { .. })));
        assert_eq!(kit.node(A).register(1), (Tag::ZERO, None), "a write that never stored has no effect");
        assert_eq!(kit.node(A).operations_in_flight(), 0);
    }

    #[test]
    fn abd_write_that_began_storing_times_out_indeterminate() {
        let mut kit = cluster(3);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(1); // B answers the query ...
        kit.crash(B);
        kit.crash(C);
        kit.deliver_all(100); // ... A stores, but no one else can
        assert_eq!(kit.node(A).register(1).1, Some(10));
        kit.advance(Micros::from_millis(900));
        assert!(matches!(kit.reply(w), Some(KvResponse::Indeterminate { .. })));
    }

    #[test]
    fn abd_retransmits_to_replicas_that_missed_a_phase() {
        let mut kit = cluster(3);
        kit.cut.push((A, B));
        kit.cut.push((A, C));
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), None);
        kit.cut.clear();
        kit.advance(Micros::from_millis(60));
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
    }

    /// ABD's atomic read: a value seen at a minority is written back to a
    /// majority before the read returns, so no later read returns older.
    #[test]
    fn abd_read_writes_back_before_returning() {
        let mut kit = cluster(3);
        // A write stores its value at A alone, then its messages are lost.
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(3); // B and C answer the query; A hears B and stores
        kit.network.clear();
        assert_eq!(kit.node(A).register(1).1, Some(10));
        assert_eq!(kit.node(B).register(1).1, None);
        assert_eq!(kit.node(C).register(1).1, None);
        assert_eq!(kit.reply(w), None);

        let r = kit.request(B, read(1));
        kit.deliver_all(3); // A and C answer; B hears A: a majority, one holds 10
        assert_eq!(kit.reply(r), None, "the read does not return before its write-back");
        assert_eq!(kit.node(B).register(1).1, Some(10), "written back at the coordinator");
        kit.deliver_all(100);
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
        assert!(kit.durable(2).iter().any(|r| matches!(
            r,
            Record::Register { key: 1, tag: Tag { counter: 1, writer: A, .. }, value: 10 }
        )));

        // With A gone, a later read from the other majority still sees 10.
        kit.crash(A);
        let later = kit.request(C, read(1));
        kit.deliver_all(100);
        assert_eq!(kit.reply(later), Some(&KvResponse::Read(Some(10))));
    }

    #[test]
    fn abd_read_skips_write_back_when_a_majority_agrees() {
        let mut kit = cluster(3);
        let w = kit.request(A, write(1, 10));
        kit.deliver_all(100);
        assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        let r = kit.request(B, read(1));
        kit.deliver_all(3); // A and C answer; A's answer completes B's majority
        assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(10))));
        assert!(kit.network.iter().all(|(_, _, m)| !matches!(m, Msg::Store { .. })), "no write-back");
    }

    #[test]
    fn abd_rejects_cas() {
        let mut kit = cluster(3);
        let c = kit.request(A, KvCommand::Cas { key: 1, expected: 0, new: 1 });
        assert!(matches!(kit.reply(c), Some(KvResponse::Rejected { hint: None, .. })));
        assert!(kit.network.is_empty());
    }

    #[test]
    fn abd_concurrent_writers_order_by_tag() {
        let mut kit = cluster(3);
        let a = kit.request(A, write(1, 10));
        let c = kit.request(C, write(1, 30));
        kit.deliver_all(100);
        assert_eq!(kit.reply(a), Some(&KvResponse::Done));
        assert_eq!(kit.reply(c), Some(&KvResponse::Done));
        // Both minted counter 1; the writer breaks the tie.
        for node in [A, B, C] {
            let r = kit.request(node, read(1));
            kit.deliver_all(100);
            assert_eq!(kit.reply(r), Some(&KvResponse::Read(Some(30))));
        }
    }

    /// Regression (found by `quorum explore --protocol abd --faults all`, seed
    /// 20): one coordinator running two writes at once must mint two distinct
    /// tags, or replicas split between the two values and reads flip.
    #[test]
    fn abd_one_coordinator_two_concurrent_writes_get_distinct_tags() {
        let mut kit = cluster(3);
        let first = kit.request(A, write(1, 38));
        let second = kit.request(A, write(1, 39));
        // Deliver one message at a time, noting the tag each store carries.
        let mut minted: BTreeMap<Value, BTreeSet<Tag>> = BTreeMap::new();
        for _ in 0..1_000 {
            for (_, _, msg) in &kit.network {
                if let Msg::Store { tag, value, .. } = msg {
                    minted.entry(*value).or_default().insert(*tag);
                }
            }
            kit.deliver_all(1);
        }
        assert_eq!(kit.reply(first), Some(&KvResponse::Done));
        assert_eq!(kit.reply(second), Some(&KvResponse::Done));
        let (t38, t39) = (&minted[&38], &minted[&39]);
        assert!(t38.is_disjoint(t39), "two writes, one tag: {t38:?} {t39:?}");
    }

    #[test]
    fn abd_recovers_registers_from_log_and_checkpoints() {
        let mut kit = cluster(3);
        let every = kit.config.checkpoint_every_records;
        for value in 0..every + 5 {
            let w = kit.request(A, write(value % 4, value));
            kit.deliver_all(100);
            assert_eq!(kit.reply(w), Some(&KvResponse::Done));
        }
        assert!(kit.durable(1).len() as u64 <= every, "the log is bounded by checkpoints");
        let before: Vec<_> = (0..4).map(|k| kit.node(B).register(k)).collect();
        kit.crash(B);
        kit.start(B);
        let after: Vec<_> = (0..4).map(|k| kit.node(B).register(k)).collect();
        assert_eq!(before, after);
        // A stale store (lower tag) is acknowledged but not adopted.
        let (tag, _) = kit.node(B).register(0);
        assert!(tag.counter > 1);
        let log = kit.durable(1).len();
        kit.network.push_back((
            A,
            B,
            Msg::Store { op: OpId(7), key: 0, tag: Tag { counter: 1, writer: A, nonce: 1 }, value: 99 },
        ));
        kit.deliver_all(1);
        assert_eq!(kit.node(B).register(0).0, tag);
        assert_eq!(kit.durable(1).len(), log, "nothing new to force");
        assert!(matches!(kit.network.back(), Some((_, _, Msg::StoreAck { op: OpId(7) }))));
    }

    /// Run one client operation to completion under a hostile network
    /// (reordering, 10% loss, 5% duplication); `None` if its coordinator
    /// crashed first (it may, when no other node is down).
    fn run_hostile(
        kit: &mut Kit<Abd>,
        rng: &mut quorum_core::Rng,
        down: &mut Option<NodeId>,
        node: NodeId,
        command: KvCommand,
    ) -> Option<KvResponse> {
        let rid = kit.request(node, command);
        for _ in 0..10_000 {
            if let Some(response) = kit.reply(rid) {
                return Some(response.clone());
            }
            if down.is_none() && rng.chance(0.02) {
                // The coordinator crashes mid-operation.
                kit.crash(node);
                *down = Some(node);
                return None;
            }
            if kit.network.is_empty() {
                kit.advance(Micros::from_millis(10));
                continue;
            }
            let pick = rng.range(0, kit.network.len() as u64) as usize;
            let message = kit.network.remove(pick).expect("in range");
            if rng.chance(0.10) {
                continue;
            }
            if rng.chance(0.05) {
                kit.network.push_back(message.clone());
            }
            kit.network.push_front(message);
            kit.deliver_all(1);
        }
        panic!("operation never answered");
    }

    /// Sequential clients against random coordinators, with a minority
    /// crashing and restarting: every read returns the latest value known to
    /// be written, or a value of a write whose outcome is unknown (which may
    /// take effect at any later time), and never anything older.
    #[test]
    fn abd_sequential_history_is_atomic_under_reordering_loss_and_crashes() {
        for seed in 0..200 {
            let mut rng = quorum_core::Rng::seed(seed);
            let mut kit = cluster(3);
            let mut known: Option<Value> = None;
            let mut unknown: BTreeSet<Value> = BTreeSet::new();
            let mut down: Option<NodeId> = None;
            for value in 1..=40u64 {
                if rng.chance(0.15) {
                    match down.take() {
                        Some(node) => kit.start(node),
                        None => {
                            let node = NodeId(rng.range(0, 3) as u32);
                            kit.crash(node);
                            down = Some(node);
                        }
                    }
                }
                let up: Vec<NodeId> = [A, B, C].into_iter().filter(|n| Some(*n) != down).collect();
                let node = *rng.pick(&up).expect("a majority is up");
                if rng.chance(0.5) {
                    match run_hostile(&mut kit, &mut rng, &mut down, node, write(1, value)) {
                        Some(KvResponse::Done) => known = Some(value),
                        Some(KvResponse::Rejected { .. }) => {}
                        Some(KvResponse::Indeterminate { .. }) | None => {
                            unknown.insert(value);
                        }
                        Some(other) => panic!("seed {seed}: a write answered {other:?}"),
                    }
                } else {
                    match run_hostile(&mut kit, &mut rng, &mut down, node, read(1)) {
                        Some(KvResponse::Read(seen)) => {
                            let fine = seen == known || seen.is_some_and(|v| unknown.contains(&v));
                            assert!(fine, "seed {seed}: read {seen:?}, known {known:?}, unknown {unknown:?}");
                            if let Some(v) = seen {
                                unknown.remove(&v);
                            }
                            known = seen;
                        }
                        Some(KvResponse::Rejected { .. }) | None => {}
                        Some(other) => panic!("seed {seed}: a read answered {other:?}"),
                    }
                }
            }
        }
    }
}
