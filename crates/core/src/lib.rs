//! quorum-core: the vocabulary every protocol, driver and checker shares.
//!
//! The centre of this crate is the [`Protocol`] contract: a protocol is a
//! *sans-IO* state machine. It never touches a socket, a clock, a disk, a
//! thread or the operating system's randomness. A driver (the simulator in
//! `quorum-sim`, later the tokio server) feeds it inputs — a peer message, a
//! timer, a client request — and the protocol answers by pushing *effects*
//! into an [`Out`] buffer, in order: send, persist, set or cancel a timer,
//! reply to a client, observe something for the checkers.
//!
//! The driver makes exactly one promise about those effects, and every
//! protocol's durability rests on it:
//!
//! > **A `persist` is durable before any effect emitted after it leaves the
//! > node.**
//!
//! So a protocol that must force a record to stable storage before it answers
//! (a Paxos acceptor's promise, 2PC's starred records, a Raft vote) simply
//! emits `persist(record)` and then `send(..)`: the driver will not let the
//! send out until the record is on disk. This is what lets a real driver batch
//! many persists into one fsync (group commit) before releasing the sends that
//! waited on them, as etcd-io/raft's `Ready` does.
//!
//! Time comes from [`Out::now`], randomness from [`Out::rng`] (a seeded
//! xoshiro256++ owned by the driver). Same seed, same inputs ⇒ same effects.

pub mod byzantine;
pub mod claims;
pub mod crdt;
pub mod decision;
pub mod host;
pub mod kv;
pub mod observe;
pub mod proposal;
pub mod redis;
pub mod rng;
pub mod txn;

use std::fmt::Debug;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub use kv::{Key, KvCommand, KvResponse, KvStore, Value};
pub use observe::{Observation, Progress, Role};
pub use rng::Rng;

/// A node's identity inside a cluster. Dense, small, starting at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A client request's identity: the client (session) that sent it and its
/// sequence number there, increasing per client.
///
/// A protocol answers a request by `Out::reply(id, ..)` on the node that
/// received it, at most once per delivery. A driver may deliver the same
/// request again (a client retrying after a timeout, possibly at another
/// node): a protocol that offers client sessions applies it at most once and
/// answers the retry with the original outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub client: u64,
    pub seq: u64,
}

impl RequestId {
    pub fn new(client: u64, seq: u64) -> RequestId {
        RequestId { client, seq }
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}#{}", self.client, self.seq)
    }
}

/// Virtual or real time in microseconds since the driver started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_millis(ms: u64) -> Time {
        Time(ms * 1000)
    }

    pub fn as_micros(self) -> u64 {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    pub fn saturating_sub(self, earlier: Time) -> Micros {
        Micros(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Micros> for Time {
    type Output = Time;
    fn add(self, d: Micros) -> Time {
        Time(self.0 + d.0)
    }
}

/// A span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Micros(pub u64);

impl Micros {
    pub fn from_millis(ms: u64) -> Micros {
        Micros(ms * 1000)
    }
    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }
}

/// What every node knows about the cluster when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// This node.
    pub id: NodeId,
    /// Every member, including `id`, sorted ascending.
    pub nodes: Vec<NodeId>,
}

impl Cluster {
    pub fn new(id: NodeId, nodes: Vec<NodeId>) -> Cluster {
        let mut nodes = nodes;
        nodes.sort();
        nodes.dedup();
        assert!(nodes.contains(&id), "a node must be a member of its own cluster");
        Cluster { id, nodes }
    }

    /// Every member but this node, ascending.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().copied().filter(move |n| *n != self.id)
    }

    /// The smallest number of nodes that is more than half of the cluster.
    pub fn majority(&self) -> usize {
        self.nodes.len() / 2 + 1
    }
}

/// An effect a protocol asks its driver to carry out. Effects are executed in
/// the order they were emitted; see [`Out`] for the durability rule.
#[derive(Clone, Debug)]
pub enum Effect<P: Protocol> {
    /// Send `msg` to peer `to`. The network may drop, delay, duplicate or
    /// reorder it; a send to oneself is delivered like any other.
    Send { to: NodeId, msg: P::Msg },
    /// Append `record` to this node's durable log. Durable before any later
    /// effect of this node becomes visible outside it.
    Persist(P::Record),
    /// Atomically replace this node's whole durable log with `record` (a
    /// checkpoint or snapshot), with the same durability rule as `Persist`.
    Checkpoint(P::Record),
    /// Fire `timer` after `after` of this node's local time. Setting a timer
    /// that is already pending (equal value) re-arms it: only the latest
    /// setting fires.
    SetTimer { timer: P::Timer, after: Micros },
    /// Forget a pending timer; a no-op if none is pending.
    CancelTimer(P::Timer),
    /// Answer client request `id`.
    Reply { id: RequestId, response: P::Response },
    /// Tell the checkers something (a role change, a commit, a decision).
    /// Observations never leave the node's process and carry no data the
    /// protocol relies on.
    Observe(Observation),
}

/// The effect buffer handed to every protocol step, with the step's time and
/// the node's seeded random source.
///
/// # The durability rule
///
/// A `persist` (or `checkpoint`) is durable before any effect emitted *after*
/// it leaves the node. A driver that crashes the node in the middle of a
/// step's effects keeps every record persisted before the crash point and lets
/// no send or reply after it escape. Protocols rely on this instead of calling
/// an explicit fsync.
pub struct Out<'a, P: Protocol> {
    now: Time,
    rng: &'a mut Rng,
    /// The node's signing keys, lent by a driver that hosts Byzantine
    /// protocols ([`byzantine`]).
    keys: Option<byzantine::Keys>,
    effects: Vec<Effect<P>>,
}

impl<'a, P: Protocol> Out<'a, P> {
    pub fn new(now: Time, rng: &'a mut Rng) -> Self {
        Out { now, rng, keys: None, effects: Vec::new() }
    }

    /// Lend the step the node's signing keys (the driver's, see
    /// [`byzantine::Keys`]).
    pub fn with_keys(mut self, keys: byzantine::Keys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Sign `content` (a digest) as this node. Panics if the driver lent
    /// no keys: only drivers that host Byzantine protocols do.
    pub fn sign(&self, content: u64) -> byzantine::Signature {
        self.keys.expect("this driver lends no signing keys").sign(content)
    }

    /// Whether `signature` is its signer's mark on `content` (anyone can
    /// check). Panics if the driver lent no keys.
    pub fn verify(&self, signature: &byzantine::Signature, content: u64) -> bool {
        self.keys.expect("this driver lends no signing keys").verify(signature, content)
    }

    /// The time of this step (virtual in the simulator, real in the server).
    pub fn now(&self) -> Time {
        self.now
    }

    /// The node's seeded random source.
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    pub fn send(&mut self, to: NodeId, msg: P::Msg) {
        self.effects.push(Effect::Send { to, msg });
    }

    pub fn persist(&mut self, record: P::Record) {
        self.effects.push(Effect::Persist(record));
    }

    pub fn checkpoint(&mut self, record: P::Record) {
        self.effects.push(Effect::Checkpoint(record));
    }

    pub fn set_timer(&mut self, timer: P::Timer, after: Micros) {
        self.effects.push(Effect::SetTimer { timer, after });
    }

    pub fn cancel_timer(&mut self, timer: P::Timer) {
        self.effects.push(Effect::CancelTimer(timer));
    }

    pub fn reply(&mut self, id: RequestId, response: P::Response) {
        self.effects.push(Effect::Reply { id, response });
    }

    pub fn observe(&mut self, observation: Observation) {
        self.effects.push(Effect::Observe(observation));
    }

    /// The effects emitted so far, in order.
    pub fn effects(&self) -> &[Effect<P>] {
        &self.effects
    }

    /// Hand the effects to the driver, in emission order.
    pub fn into_effects(self) -> Vec<Effect<P>> {
        self.effects
    }
}

/// A setting (or a cluster) a protocol cannot run with, refused by
/// [`Protocol::validate`] before anything starts. The message names the
/// setting and what it must be, in one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(reason: impl Into<String>) -> ConfigError {
        ConfigError(reason.into())
    }
}

/// A protocol as a sans-IO state machine. See the crate documentation for
/// the contract and the durability rule.
pub trait Protocol: Sized {
    /// Peer-to-peer messages.
    type Msg: Clone + Debug + Serialize + DeserializeOwned;
    /// What a client asks.
    type Request: Clone + Debug;
    /// What the protocol answers.
    type Response: Clone + Debug;
    /// What it makes durable. On restart, `start` receives every record
    /// persisted (after the latest checkpoint), in order.
    type Record: Clone + Debug + Serialize + DeserializeOwned;
    /// Timer names. A timer is identified by its value: setting an equal
    /// timer again re-arms it.
    type Timer: Clone + Debug + Ord + Serialize;
    /// Protocol-specific settings (timeouts, variants, deliberate bugs).
    /// `Default` must be a sensible production setting. Deserialized from
    /// JSON by the CLI (`--config`, `--bug`): use `#[serde(default)]`.
    type Config: Clone + Debug + Default + Serialize + DeserializeOwned;

    /// Refuse settings that cannot work, and clusters the protocol cannot
    /// run on (`nodes`: every member, ascending). Every driver calls it
    /// before the first `start`, so a bad setting is the caller's error,
    /// reported in one line, never a panic inside `start`; `start` may
    /// assert that it passed.
    fn validate(config: &Self::Config, nodes: &[NodeId]) -> Result<(), ConfigError>;

    /// Fresh start (`durable` empty) or recovery after a crash. `config`
    /// passed [`Protocol::validate`].
    fn start(
        cluster: &Cluster,
        config: &Self::Config,
        durable: &[Self::Record],
        out: &mut Out<'_, Self>,
    ) -> Self;

    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Out<'_, Self>);

    fn on_timer(&mut self, timer: Self::Timer, out: &mut Out<'_, Self>);

    fn on_request(&mut self, id: RequestId, request: Self::Request, out: &mut Out<'_, Self>);

    /// Panic if an internal invariant is broken. Drivers call it after every
    /// step; a broken invariant is a programmer error, not an input error.
    fn invariants(&self) {}

    /// A digest of the replicated state for the convergence checker, or
    /// `None` where the protocol has no replicated state to compare.
    /// Replicas that converged return equal digests.
    fn state_digest(&self) -> Option<u64> {
        None
    }

    /// An operator command in text form (`transfer-leadership 2`,
    /// `add-learner 3`, ...), from scripts and admin tools. Default: none.
    fn on_admin(&mut self, command: &str, _out: &mut Out<'_, Self>) -> Result<(), String> {
        Err(format!("this protocol has no operator commands (got '{command}')"))
    }

    /// Answer a read-only request from this node's own state, without any
    /// coordination: a possibly stale read (Redis' `READONLY` replicas, ZAB's
    /// local reads). `None` where the protocol has no such state or the
    /// request is not read-only. Default: `None`.
    fn read_local(&self, _request: &Self::Request) -> Option<Self::Response> {
        None
    }

    /// One line of human-readable status (role, term, log, commit point) for
    /// scripts and traces. Default: nothing.
    fn describe(&self) -> String {
        String::new()
    }

    /// This node's replication as an operator sees it (metrics, `quorum
    /// admin status`), or `None` where the protocol keeps no log. Default: `None`.
    fn progress(&self) -> Option<Progress> {
        None
    }

    /// Whether `msg` transfers a whole state (a snapshot) rather than log
    /// entries, for drivers' metrics. Default: none.
    fn carries_snapshot(_msg: &Self::Msg) -> bool {
        false
    }

    /// Whether `msg` only acknowledges an outcome every participant already
    /// has (2PC's and 3PC's final ACK, which lets the coordinator write `end`
    /// and forget the round). Drivers count these apart from the messages
    /// that decide, because that is how the literature counts (2PC's "3n
    /// messages"). Default: none.
    fn is_outcome_ack(_msg: &Self::Msg) -> bool {
        false
    }

    /// Properties that span nodes (Raft's log matching and leader
    /// completeness, say), checked by the simulator from time to time with
    /// every live node. `Err` names the broken property; it is reported as a
    /// `cluster_invariant` violation, not a panic.
    fn cluster_invariants(_nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        Ok(())
    }

    /// The value `msg` carries that a traitor may lie about (an order, a
    /// vote), if any ([`byzantine::Adversary`]). Default: none, so a
    /// traitor can only withhold or replay this protocol's messages.
    fn carried(_msg: &Self::Msg) -> Option<u64> {
        None
    }

    /// `msg` rewritten to carry `value`, as its sender (the holder of
    /// `keys`) can make it: it signs only as itself, so a value under
    /// another node's signature changes into a message that fails
    /// verification. `None`: it cannot be rewritten (the traitor then
    /// withholds it). Default: `None`.
    fn forge(_msg: &Self::Msg, _value: u64, _keys: &byzantine::Keys) -> Option<Self::Msg> {
        None
    }

    /// How many traitors the protocol tolerates with `config` on `nodes`
    /// nodes: its claims hold when at most this many are Byzantine.
    /// Default 0: it tolerates none.
    fn traitors_max(_config: &Self::Config, _nodes: usize) -> usize {
        0
    }
}

/// A deterministic replicated state machine, for replicated-log protocols
/// (primary-backup logs, Multi-Paxos, Raft, ZAB) to be generic over.
///
/// Replicas that apply the same commands in the same order reach the same
/// state; `apply` must be a pure function of the state and the command.
pub trait StateMachine: Clone + Debug + Default + Serialize + DeserializeOwned {
    type Command: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    type Output: Clone + Debug + PartialEq + Serialize + DeserializeOwned + ClientOutput;

    /// Execute a command. Called exactly once per committed log position.
    fn apply(&mut self, command: &Self::Command) -> Self::Output;

    /// Whether `command` leaves the state unchanged, so a leader may answer it
    /// from its state after confirming its leadership (ReadIndex) instead of
    /// replicating it.
    fn is_read_only(command: &Self::Command) -> bool;

    /// A digest equal for equal states, stable across runs and builds.
    fn digest(&self) -> u64;

    /// Answer a read-only command without changing the state; `None` for
    /// commands that are not read-only. Default: `None` (no local reads).
    fn query(&self, _command: &Self::Command) -> Option<Self::Output> {
        None
    }

    /// Approximate encoded size of `command` in bytes, so that protocols can
    /// bound a message by bytes as well as by entry count: 64 commands that
    /// each carry a 64 MiB value must not travel as one 4 GiB message. An
    /// estimate that should err high, not the exact wire size; protocols add
    /// their own per-entry overhead. Default 0: unknown or negligible (small
    /// fixed-size commands), so only the count limits bind.
    fn command_bytes(_command: &Self::Command) -> usize {
        0
    }
}

/// The refusals every client-facing protocol must be able to express in its
/// response type.
pub trait ClientOutput {
    /// Refused without effect; `hint` names a node worth trying (the leader).
    fn rejected(reason: impl Into<String>, hint: Option<NodeId>) -> Self;
    /// May or may not take effect.
    fn indeterminate(reason: impl Into<String>) -> Self;
}

/// FNV-1a, a small stable hash for digests that must be equal across runs
/// and builds (std's `DefaultHasher` makes no such promise).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
