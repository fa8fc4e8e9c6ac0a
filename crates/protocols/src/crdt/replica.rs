//! The `crdt` protocol: replicas of counters and sets that accept every
//! update at once and gossip their state (or deltas) to random peers on a
//! timer (Shapiro et al. 2011; Almeida et al. 2018), and the CALM
//! demonstration's non-monotone programs as its bugs (Hellerstein and
//! Alvaro, "Keeping CALM", CACM 2020).

use std::collections::BTreeMap;

use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::crdt::{CrdtRequest, CrdtResponse};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

use super::causal::Dot;
use super::store::{digest, Naive, NaiveOp, Store};
use super::Lattice;
use crate::catalog;

/// A merge that joined updates this replica had not seen while it held
/// updates the sender had not seen: concurrent updates, reconciled.
pub const CONCURRENT_MERGED: Sometimes = Sometimes {
    name: "concurrent_merged",
    what: "a replica joined a state with updates it lacked while holding updates the sender lacked",
};

/// The catalogue entry. Claims (the monotone programs, every variant):
/// replicas converge under every fault, no acknowledged increment or add
/// is lost. Breaks: linearizability (a read at one replica misses updates
/// accepted at another). The non-monotone programs are the bugs
/// `reset-without-coordination` and `remove-without-tombstone`: they
/// diverge, as CALM predicts.
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "crdt",
    section: "Replication divergence; CALM: consistency as logical monotonicity",
    summary: "multi-master counters (PN-Counter) and sets (OR-Set) gossiped as states or deltas: \
              any node accepts any update at once; monotone, so replicas converge under every fault \
              without coordination; reads may be stale. Non-monotone programs (--bug reset-without-coordination, \
              --bug remove-without-tombstone) diverge",
    model: SystemModel::Asynchronous,
    always: &[
        Violation::Panic,
        Violation::Runaway,
        Violation::LostAckedWrites,
        Violation::SplitBrain,
        Violation::Divergence,
        Violation::Liveness,
        Violation::LogSafety,
        Violation::ElectionSafety,
        Violation::ClusterInvariant,
    ],
    breaks: &[Violation::Linearizability],
    sometimes: &[CONCURRENT_MERGED, reached::RECOVERED],
    workload: catalog::Workload::Crdt,
    variants: &["state", "delta"],
    bugs: &[
        catalog::Bug {
            name: "sum-merge",
            what: "the counters' join adds entries instead of taking their maximum: not idempotent, \
                   so a state gossiped twice counts twice (Shapiro et al.: the join must be a least upper bound)",
            caught_as: &[Violation::Divergence],
        },
        catalog::Bug {
            name: "reset-without-coordination",
            what: "CALM's non-monotone program: counter operations shipped as they are and a reset \
                   applied where it arrives (set to 0), without coordination; replicas that see a reset \
                   and an increment in different orders diverge",
            caught_as: &[Violation::Divergence],
        },
        catalog::Bug {
            name: "remove-without-tombstone",
            what: "CALM's non-monotone program: set operations shipped as they are and a remove deleting \
                   the element where it arrives, leaving no tombstone; a remove that arrives before its \
                   add leaves the element at that replica only",
            caught_as: &[Violation::Divergence],
        },
    ],
    explorable: &[catalog::Setting { name: "fanout", values: &["1", "2"] }],
    retries: 0,
};

/// Whole states every round, or deltas with a whole state every
/// `full_state_every` rounds (which repairs lost deltas).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    #[default]
    State,
    Delta,
}

/// The negative controls and the CALM demonstration's non-monotone programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    SumMerge,
    ResetWithoutCoordination,
    RemoveWithoutTombstone,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub variant: Variant,
    pub bug: Option<Bug>,
    /// How often a replica gossips.
    pub gossip_interval: Micros,
    /// Peers (distinct, random) each round gossips to.
    pub fanout: usize,
    /// With deltas: every this many rounds, a whole state instead.
    pub full_state_every: u64,
    /// Durable records after which the replica checkpoints its state.
    pub checkpoint_records_max: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            variant: Variant::State,
            bug: None,
            gossip_interval: Micros::from_millis(20),
            fanout: 1,
            full_state_every: 10,
            checkpoint_records_max: 64,
        }
    }
}

/// A gossip message: a whole state or a delta group, with the log of the
/// non-monotone programs (empty unless a CALM bug runs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    State { store: Store, log: BTreeMap<Dot, NaiveOp> },
    Delta { delta: Store, log: BTreeMap<Dot, NaiveOp> },
}

/// What a replica makes durable: its own updates (before it answers), and
/// checkpoints of everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Delta(Store),
    Op(Dot, NaiveOp),
    Checkpoint { store: Store, naive: Naive },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    Gossip,
}

/// One replica.
#[derive(Clone, Debug)]
pub struct Crdt {
    cluster: Cluster,
    config: Config,
    store: Store,
    naive: Naive,
    /// The delta group since the last round: own updates and received
    /// updates that inflated the state (so deltas travel on).
    buffer: Store,
    rounds: u64,
    bytes_sent: u64,
    records: usize,
}

impl Crdt {
    fn observe(&self, out: &mut Out<'_, Self>) {
        let digest = digest(&self.store, &self.naive);
        out.observe(Observation::Replica { digest, rounds: self.rounds, bytes_sent: self.bytes_sent });
    }

    /// Whether the non-monotone programs run the counters / the sets.
    fn naive_counters(&self) -> bool {
        self.config.bug == Some(Bug::ResetWithoutCoordination)
    }

    fn naive_sets(&self) -> bool {
        self.config.bug == Some(Bug::RemoveWithoutTombstone)
    }

    fn recover(&mut self, durable: &[Record]) {
        for record in durable {
            match record {
                Record::Delta(delta) => self.store.join(delta),
                Record::Op(dot, op) => {
                    self.naive.receive(*dot, *op);
                }
                Record::Checkpoint { store, naive } => {
                    self.store = store.clone();
                    self.naive = naive.clone();
                }
            }
        }
    }

    fn persist(&mut self, record: Record, out: &mut Out<'_, Self>) {
        out.persist(record);
        self.records += 1;
        if self.records >= self.config.checkpoint_records_max {
            out.checkpoint(Record::Checkpoint { store: self.store.clone(), naive: self.naive.clone() });
            self.records = 0;
        }
    }

    /// An update of the lattice: apply, make durable, buffer the delta.
    fn update_store(&mut self, delta: Store, out: &mut Out<'_, Self>) {
        self.buffer.join(&delta);
        self.persist(Record::Delta(delta), out);
    }

    /// An update of the non-monotone programs: logged, applied, durable.
    fn update_naive(&mut self, op: NaiveOp, out: &mut Out<'_, Self>) {
        let dot = self.naive.next_dot(self.cluster.id);
        self.naive.receive(dot, op);
        self.persist(Record::Op(dot, op), out);
    }

    fn handle_update(&mut self, request: CrdtRequest, out: &mut Out<'_, Self>) {
        let node = self.cluster.id;
        match request {
            CrdtRequest::Increment { key, by } if self.naive_counters() => {
                self.update_naive(NaiveOp::Increment { key, by }, out);
            }
            CrdtRequest::Reset { key } if self.naive_counters() => {
                self.update_naive(NaiveOp::Reset { key }, out)
            }
            CrdtRequest::Add { key, element } if self.naive_sets() => {
                self.update_naive(NaiveOp::Add { key, element }, out);
            }
            CrdtRequest::Remove { key, element } if self.naive_sets() => {
                self.update_naive(NaiveOp::Remove { key, element }, out);
            }
            CrdtRequest::Increment { key, by } => {
                let delta = self.store.increment(node, key, by);
                self.update_store(delta, out);
            }
            CrdtRequest::Reset { key } => {
                if let Some(delta) = self.store.reset(node, key) {
                    self.update_store(delta, out);
                }
            }
            CrdtRequest::Add { key, element } => {
                let delta = self.store.add(node, key, element);
                self.update_store(delta, out);
            }
            CrdtRequest::Remove { key, element } => {
                let delta = self.store.remove(key, element);
                self.update_store(delta, out);
            }
            CrdtRequest::Read { .. } => unreachable!("reads are not updates"),
        }
    }

    fn read(&self, key: u64) -> CrdtResponse {
        let counter = self.naive.counter(key).filter(|_| self.naive_counters());
        let elements = self.naive.elements(key).filter(|_| self.naive_sets());
        CrdtResponse::Read {
            counter: counter.unwrap_or_else(|| self.store.counter(key)),
            elements: elements.unwrap_or_else(|| self.store.elements(key)),
        }
    }

    /// A round: pick `fanout` distinct random peers and send each the
    /// state, or the delta group (a whole state every `full_state_every`).
    fn handle_gossip_round(&mut self, out: &mut Out<'_, Self>) {
        self.rounds += 1;
        let full =
            self.config.variant == Variant::State || self.rounds.is_multiple_of(self.config.full_state_every);
        let log = self.naive.log.clone();
        let msg = if full {
            Msg::State { store: self.store.clone(), log }
        } else {
            Msg::Delta { delta: std::mem::take(&mut self.buffer), log }
        };
        if full {
            self.buffer = Store::default();
        }
        let quiet = matches!(&msg, Msg::Delta { delta, log } if delta.is_empty() && log.is_empty());
        if !quiet {
            let bytes = match &msg {
                Msg::State { store, .. } => store.bytes(),
                Msg::Delta { delta, .. } => delta.bytes(),
            } + self.naive.log_bytes();
            for peer in self.peers(out) {
                self.bytes_sent += bytes;
                out.send(peer, msg.clone());
            }
        }
        out.set_timer(Timer::Gossip, self.config.gossip_interval);
        self.observe(out);
    }

    /// `fanout` distinct peers drawn at random.
    fn peers(&self, out: &mut Out<'_, Self>) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.cluster.peers().collect();
        let mut chosen = Vec::new();
        while chosen.len() < self.config.fanout && !peers.is_empty() {
            let i = out.rng().range(0, peers.len() as u64) as usize;
            chosen.push(peers.swap_remove(i));
        }
        chosen
    }

    /// Join a received state or delta group (and log).
    fn handle_gossip(&mut self, store: &Store, log: &BTreeMap<Dot, NaiveOp>, out: &mut Out<'_, Self>) {
        let before = digest(&self.store, &self.naive);
        if !store.leq(&self.store) && !self.store.leq(store) {
            out.observe(Observation::Reached(CONCURRENT_MERGED.name));
        }
        if self.config.bug == Some(Bug::SumMerge) {
            self.store.join_summing(store);
        } else if !store.leq(&self.store) {
            self.store.join(store);
            self.buffer.join(store);
        }
        self.naive.receive_log(log);
        if digest(&self.store, &self.naive) != before {
            self.observe(out);
        }
    }
}

impl Protocol for Crdt {
    type Msg = Msg;
    type Request = CrdtRequest;
    type Response = CrdtResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, nodes: &[NodeId]) -> Result<(), ConfigError> {
        if config.gossip_interval.0 == 0 {
            return Err(ConfigError::new("gossip_interval must be positive"));
        }
        if config.fanout == 0 || config.fanout >= nodes.len().max(2) {
            return Err(ConfigError::new(format!(
                "fanout must be between 1 and the number of peers ({}), got {}",
                nodes.len().saturating_sub(1),
                config.fanout
            )));
        }
        if config.full_state_every == 0 {
            return Err(ConfigError::new("full_state_every must be at least 1"));
        }
        if config.checkpoint_records_max == 0 {
            return Err(ConfigError::new("checkpoint_records_max must be at least 1"));
        }
        Ok(())
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], out: &mut Out<'_, Self>) -> Crdt {
        let mut replica = Crdt {
            cluster: cluster.clone(),
            config: config.clone(),
            store: Store::default(),
            naive: Naive::default(),
            buffer: Store::default(),
            rounds: 0,
            bytes_sent: 0,
            records: 0,
        };
        replica.recover(durable);
        if !durable.is_empty() {
            out.observe(Observation::Reached(reached::RECOVERED.name));
        }
        let jitter = out.rng().range(0, config.gossip_interval.0);
        out.set_timer(Timer::Gossip, Micros(jitter + 1));
        replica.observe(out);
        replica
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::State { store, log } => self.handle_gossip(&store, &log, out),
            Msg::Delta { delta, log } => self.handle_gossip(&delta, &log, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Gossip => self.handle_gossip_round(out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: CrdtRequest, out: &mut Out<'_, Self>) {
        if let CrdtRequest::Read { key } = request {
            out.reply(id, self.read(key));
            return;
        }
        self.handle_update(request, out);
        out.reply(id, CrdtResponse::Done);
        self.observe(out);
    }

    fn invariants(&self) {
        self.store.invariants();
        self.buffer.invariants();
        assert!(self.records < self.config.checkpoint_records_max, "a checkpoint is due");
    }

    fn state_digest(&self) -> Option<u64> {
        Some(digest(&self.store, &self.naive))
    }

    fn read_local(&self, request: &CrdtRequest) -> Option<CrdtResponse> {
        match request {
            CrdtRequest::Read { key } => Some(self.read(*key)),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let keys: std::collections::BTreeSet<u64> = self
            .store
            .counters
            .keys()
            .chain(self.store.sets.keys())
            .copied()
            .chain(self.naive.keys())
            .collect();
        let values: Vec<String> = keys
            .into_iter()
            .filter_map(|key| match self.read(key) {
                CrdtResponse::Read { counter, elements } => Some(format!("{key}: {counter} {elements:?}")),
                CrdtResponse::Done => None,
            })
            .collect();
        let mut line = format!("[{}] rounds {}", values.join(", "), self.rounds);
        if !self.naive.log.is_empty() {
            line.push_str(&format!(" log {} ops", self.naive.log.len()));
        }
        line
    }
}
