//! The state machine the server replicates: a byte-string key-value map with
//! the Redis commands the front end speaks, key expiry, and transactions.
//!
//! Every command is a pure function of the map and of the command, so
//! replicas that apply the same log reach the same map (the
//! [`StateMachine`] contract). Errors a command can raise on valid input
//! (INCR on a value that is not an integer) are outputs, decided identically
//! on every replica, never panics.
//!
//! **Time.** A command carries a stamp, the wall clock (Unix ms) of the node
//! that handed it to the protocol: the leader, since a follower's node relays
//! what it cannot serve and the leader's node stamps it again. The map never
//! reads a clock. Its time is `now = max(stamp, the highest stamp applied)`,
//! so time in the log never runs backwards even if a new leader's clock is
//! behind the old one's; a key whose deadline has passed (`now > deadline`,
//! Redis' rule) is absent to every command on every replica. Expired keys
//! leave the map for real through [`Op::Purge`], an entry the leader's node
//! proposes when the earliest deadline has passed (`node::Node::propose_purge`).
//! Reads are not logged, so a read answered after a failover uses the new
//! leader's clock: it sees a key expired that the old leader saw expired as
//! long as the clocks differ by less than the time a failover takes (an
//! election timeout), the bounded-drift assumption lease reads rest on too.
//!
//! **Transactions.** [`Op::Exec`] holds a MULTI block's commands and is one
//! log entry: applied at one position, all of it, with nothing between. Its
//! WATCHed keys carry the versions a WATCH read; the check is made at apply.
//!
//! * [`strings`]: SET and its options, MSET, APPEND, SETRANGE, INCR...
//! * [`keys`]: the keyspace: DEL, TYPE, SCAN, RENAME, COPY, expiry, FLUSHDB.
//! * [`glob`]: Redis' glob-style patterns (KEYS, SCAN MATCH).

mod glob;
mod keys;
mod strings;
#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::{btree_map, BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Deref;

use quorum_core::{ClientOutput, NodeId, StateMachine};
use serde::{Deserialize, Serialize};

pub use glob::glob_match;

/// A key or value: arbitrary bytes, shown as an escaped string
/// (`"key:1\x00"`) rather than a list of numbers: readable in logs, and
/// cheap, since the protocols digest every applied command through its
/// `Debug` form.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        Bytes(bytes)
    }
}

impl From<&str> for Bytes {
    fn from(text: &str) -> Bytes {
        Bytes(text.as_bytes().to_vec())
    }
}

/// Milliseconds since the Unix epoch (signed, as Redis' `mstime_t`).
pub type Millis = i64;

/// A command the log carries: the operation and the clock of the node that
/// proposed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unix ms of the proposing node's clock; 0 until a node stamps it.
    pub stamp_ms: Millis,
    pub op: Op,
}

impl Command {
    /// An unstamped command (the node stamps it when it takes it).
    pub fn new(op: Op) -> Command {
        Command { stamp_ms: 0, op }
    }
}

/// SET's NX / XX.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    Always,
    /// NX: only if the key is absent.
    IfAbsent,
    /// XX: only if the key is present.
    IfPresent,
}

/// EXPIRE's NX / XX / GT / LT (Redis 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    Always,
    /// NX: only if the key has no deadline.
    NoDeadline,
    /// XX: only if the key has a deadline.
    HasDeadline,
    /// GT: only if the new deadline is later (no deadline counts as infinite).
    Later,
    /// LT: only if the new deadline is earlier.
    Earlier,
    /// XX and LT: only if the key has a deadline and the new one is earlier.
    EarlierDeadline,
}

/// A deadline as the client gave it: relative to the command's time, or absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deadline {
    In(Millis),
    At(Millis),
}

impl Deadline {
    /// The Unix ms this deadline falls on, for a command applied at `now`.
    pub fn resolve(self, now: Millis) -> Millis {
        match self {
            Deadline::In(ms) => now.saturating_add(ms),
            Deadline::At(ms) => ms,
        }
    }
}

/// What SET does to the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTtl {
    /// The default: the key has no deadline afterwards.
    Clear,
    /// KEEPTTL.
    Keep,
    /// EX / PX / EXAT / PXAT.
    Until(Deadline),
}

/// TTL answers in seconds, PTTL in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    Seconds,
    Millis,
}

/// What a WATCH read: each key's version (0: absent), and the map's version
/// then. EXEC applies only if every key still has its version, and, for a
/// key that was absent, no key was removed since (a conservative check: the
/// map keeps no tombstones).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub keys: Vec<(Bytes, u64)>,
    pub point: u64,
}

/// One operation. The first group only reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Get {
        key: Bytes,
    },
    MGet {
        keys: Vec<Bytes>,
    },
    Exists {
        keys: Vec<Bytes>,
    },
    StrLen {
        key: Bytes,
    },
    GetRange {
        key: Bytes,
        start: i64,
        end: i64,
    },
    Type {
        key: Bytes,
    },
    Ttl {
        key: Bytes,
        unit: TimeUnit,
    },
    DbSize,
    Keys {
        pattern: Bytes,
    },
    /// Up to `count` keys from `from` on (inclusive), those matching `pattern`.
    Scan {
        from: Bytes,
        pattern: Option<Bytes>,
        count: u64,
    },
    RandomKey,
    /// WATCH: the keys' versions now.
    Versions {
        keys: Vec<Bytes>,
    },
    /// The earliest deadline of any key (the node's purge check; no client sends it).
    NextDeadline,

    Set {
        key: Bytes,
        value: Bytes,
        condition: Condition,
        get: bool,
        ttl: SetTtl,
    },
    /// MSET, or MSETNX / SETNX (`only_new`: all or nothing, if none exists).
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        only_new: bool,
    },
    Del {
        keys: Vec<Bytes>,
    },
    GetDel {
        key: Bytes,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    IncrBy {
        key: Bytes,
        by: i64,
    },
    IncrByFloat {
        key: Bytes,
        by: f64,
    },
    /// Our extension for linearizability tests: set `key` to `new` if it
    /// holds `expected` (an absent key matches nothing).
    Cas {
        key: Bytes,
        expected: Bytes,
        new: Bytes,
    },
    Expire {
        key: Bytes,
        deadline: Deadline,
        condition: ExpireCondition,
    },
    Persist {
        key: Bytes,
    },
    /// RENAME, or RENAMENX (`only_new`).
    Rename {
        from: Bytes,
        to: Bytes,
        only_new: bool,
    },
    Copy {
        from: Bytes,
        to: Bytes,
        replace: bool,
    },
    FlushDb,
    /// Remove every key whose deadline has passed (proposed by the leader's node).
    Purge,
    /// A MULTI block: all of `ops` at one position of the log, unless a
    /// watched key changed.
    Exec {
        ops: Vec<Op>,
        watch: Option<Watch>,
    },
}

impl Op {
    /// True for operations that leave the map unchanged (a transaction of reads too).
    pub fn is_read_only(&self) -> bool {
        match self {
            Op::Get { .. }
            | Op::MGet { .. }
            | Op::Exists { .. }
            | Op::StrLen { .. }
            | Op::GetRange { .. }
            | Op::Type { .. }
            | Op::Ttl { .. }
            | Op::DbSize
            | Op::Keys { .. }
            | Op::Scan { .. }
            | Op::RandomKey
            | Op::Versions { .. }
            | Op::NextDeadline => true,
            Op::Exec { ops, .. } => ops.iter().all(Op::is_read_only),
            _ => false,
        }
    }

    /// The bytes the operation's arguments carry, estimated high (see
    /// [`KvMap::command_bytes`]).
    fn argument_bytes(&self) -> usize {
        let sized = |bytes: &[u8]| bytes.len().saturating_add(ARGUMENT_OVERHEAD_BYTES);
        let listed = |keys: &[Bytes]| keys.iter().fold(0usize, |sum, k| sum.saturating_add(sized(k)));
        let number = ARGUMENT_OVERHEAD_BYTES;
        match self {
            Op::Get { key }
            | Op::StrLen { key }
            | Op::Type { key }
            | Op::Ttl { key, .. }
            | Op::GetDel { key }
            | Op::Persist { key } => sized(key),
            Op::Keys { pattern } => sized(pattern),
            Op::GetRange { key, .. } | Op::IncrBy { key, .. } | Op::IncrByFloat { key, .. } => {
                sized(key) + 2 * number
            }
            Op::Expire { key, .. } => sized(key) + 2 * number,
            Op::MGet { keys } | Op::Exists { keys } | Op::Del { keys } | Op::Versions { keys } => {
                listed(keys)
            }
            Op::Scan { from, pattern, .. } => sized(from) + pattern.as_deref().map_or(0, sized) + 2 * number,
            Op::DbSize | Op::RandomKey | Op::NextDeadline | Op::FlushDb | Op::Purge => 0,
            Op::Set { key, value, .. } | Op::Append { key, value } => sized(key) + sized(value) + 2 * number,
            Op::SetRange { key, value, .. } => sized(key) + sized(value) + number,
            Op::MSet { pairs, .. } => pairs.iter().fold(0usize, |sum, (k, v)| sum + sized(k) + sized(v)),
            Op::Cas { key, expected, new } => sized(key) + sized(expected) + sized(new),
            Op::Rename { from, to, .. } | Op::Copy { from, to, .. } => sized(from) + sized(to),
            Op::Exec { ops, watch } => {
                let watched = watch
                    .as_ref()
                    .map_or(0, |w| w.keys.iter().fold(number, |sum, (k, _)| sum + sized(k) + number));
                ops.iter().fold(watched, |sum, op| sum.saturating_add(op.argument_bytes() + number))
            }
        }
    }
}

/// What a command answers, and the refusals of the replication layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Ok,
    /// A simple string other than OK (TYPE's `string`, `none`).
    Status(String),
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Int(i64),
    /// EXEC's answers, one per queued command.
    Array(Vec<Output>),
    /// EXEC not applied because a watched key changed (a null array).
    Aborted,
    /// SCAN: the key to resume from (`None`: the scan is complete), the keys found.
    Scan {
        next: Option<Vec<u8>>,
        keys: Vec<Vec<u8>>,
    },
    /// WATCH's read.
    Watch(Watch),
    /// A command error decided by the state machine (every replica agrees).
    Error(String),
    /// Not executed; `hint` names the node believed to lead.
    Rejected {
        reason: String,
        hint: Option<NodeId>,
    },
    /// May or may not have been executed.
    Indeterminate {
        reason: String,
    },
}

impl ClientOutput for Output {
    fn rejected(reason: impl Into<String>, hint: Option<NodeId>) -> Self {
        Output::Rejected { reason: reason.into(), hint }
    }

    fn indeterminate(reason: impl Into<String>) -> Self {
        Output::Indeterminate { reason: reason.into() }
    }
}

fn error(message: &str) -> Output {
    Output::Error(message.to_string())
}

/// One key's value, its deadline (Unix ms; `None`: none) and its version
/// (the map's version when it was last written).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    value: Bytes,
    deadline: Option<Millis>,
    version: u64,
}

/// The replicated map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMap {
    data: BTreeMap<Bytes, Entry>,
    /// Invariant: `(deadline, key)` is here iff `data[key].deadline == Some(deadline)`.
    deadlines: BTreeSet<(Millis, Bytes)>,
    /// The highest stamp applied: the map's time never runs backwards.
    clock_ms: Millis,
    /// Counts the updates applied; an entry's version is this when it was written.
    version: u64,
    /// `version` when a key last left the map (deleted, renamed, expired, flushed).
    removed_at: u64,
}

impl KvMap {
    /// Keys in the map, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The map's own invariants: the deadline index mirrors the entries,
    /// and no entry is newer than the map.
    pub fn check(&self) {
        let with_deadline = self.data.values().filter(|e| e.deadline.is_some()).count();
        assert_eq!(self.deadlines.len(), with_deadline, "one index entry per deadline");
        for (at, key) in &self.deadlines {
            assert_eq!(self.data.get(key).and_then(|e| e.deadline), Some(*at), "index entry without its key");
        }
        assert!(self.data.values().all(|e| e.version <= self.version), "an entry newer than the map");
        assert!(self.removed_at <= self.version, "a removal after the map's version");
    }

    /// The map's time for a command stamped `stamp_ms`.
    fn now(&self, stamp_ms: Millis) -> Millis {
        self.clock_ms.max(stamp_ms)
    }

    /// `key`'s entry unless absent or expired at `now`.
    fn live(&self, key: &[u8], now: Millis) -> Option<&Entry> {
        self.data.get(key).filter(|e| e.deadline.is_none_or(|d| now <= d))
    }

    fn value(&self, key: &[u8], now: Millis) -> Option<&Bytes> {
        self.live(key, now).map(|e| &e.value)
    }

    /// Write `key`, with `deadline`, as part of the current update.
    fn put(&mut self, key: Bytes, value: Bytes, deadline: Option<Millis>) {
        if let Some(at) = deadline {
            self.deadlines.insert((at, key.clone()));
        }
        let entry = Entry { value, deadline, version: self.version };
        match self.data.entry(key) {
            btree_map::Entry::Occupied(mut occupied) => {
                let old = occupied.insert(entry);
                if let Some(at) = old.deadline.filter(|at| Some(*at) != deadline) {
                    self.deadlines.remove(&(at, occupied.key().clone()));
                }
            }
            btree_map::Entry::Vacant(vacant) => {
                vacant.insert(entry);
            }
        }
    }

    /// `key`'s entry, to change in place, unless absent or expired at
    /// `now` (an expired one is removed first). The caller sets its version.
    fn live_mut(&mut self, key: &[u8], now: Millis) -> Option<&mut Entry> {
        if self.data.get(key).is_some_and(|e| e.deadline.is_some_and(|d| now > d)) {
            self.remove(key, now);
        }
        self.data.get_mut(key)
    }

    /// Remove `key`, returning its entry if it was live at `now`.
    fn remove(&mut self, key: &[u8], now: Millis) -> Option<Entry> {
        let (key, entry) = self.data.remove_entry(key)?;
        self.removed_at = self.version;
        if let Some(at) = entry.deadline {
            self.deadlines.remove(&(at, key));
        }
        entry.deadline.is_none_or(|d| now <= d).then_some(entry)
    }

    /// Answer a read-only command from the current state; `None` for updates.
    pub fn query(&self, command: &Command) -> Option<Output> {
        if !command.op.is_read_only() {
            return None;
        }
        let now = self.now(command.stamp_ms);
        Some(match &command.op {
            Op::Exec { ops, watch } => self.exec_reads(ops, watch.as_ref(), now),
            op => self.read(op, now),
        })
    }

    fn exec_reads(&self, ops: &[Op], watch: Option<&Watch>, now: Millis) -> Output {
        if watch.is_some_and(|w| self.changed_since(w, now)) {
            return Output::Aborted;
        }
        Output::Array(ops.iter().map(|op| self.read(op, now)).collect())
    }

    /// Whether a key `watch` names was written since (or, absent then, may have been).
    fn changed_since(&self, watch: &Watch, now: Millis) -> bool {
        watch.keys.iter().any(|(key, version)| {
            let current = self.live(key, now).map_or(0, |e| e.version);
            current != *version || (*version == 0 && self.removed_at > watch.point)
        })
    }

    /// A read-only operation at `now`.
    fn read(&self, op: &Op, now: Millis) -> Output {
        match op {
            Op::Get { key } => Output::Value(self.value(key, now).map(|v| v.0.clone())),
            Op::MGet { keys } => {
                Output::Values(keys.iter().map(|k| self.value(k, now).map(|v| v.0.clone())).collect())
            }
            Op::Exists { keys } => {
                Output::Int(keys.iter().filter(|k| self.live(k, now).is_some()).count() as i64)
            }
            Op::StrLen { key } => Output::Int(self.value(key, now).map_or(0, |v| v.len() as i64)),
            Op::GetRange { key, start, end } => self.get_range(key, *start, *end, now),
            Op::Type { key } => {
                Output::Status(if self.live(key, now).is_some() { "string" } else { "none" }.into())
            }
            Op::Ttl { key, unit } => self.ttl(key, *unit, now),
            Op::DbSize => Output::Int(self.live_count(now) as i64),
            Op::Keys { pattern } => self.keys(pattern, now),
            Op::Scan { from, pattern, count } => self.scan(from, pattern.as_deref(), *count, now),
            Op::RandomKey => self.random_key(now),
            Op::Versions { keys } => self.versions(keys, now),
            Op::NextDeadline => Output::Int(self.deadlines.first().map_or(-1, |(at, _)| *at)),
            Op::Exec { ops, watch } => self.exec_reads(ops, watch.as_ref(), now),
            _ => unreachable!("{op:?} is not read-only"),
        }
    }

    /// An update at `now` (its version already counted).
    fn write(&mut self, op: &Op, now: Millis) -> Output {
        match op {
            Op::Set { key, value, condition, get, ttl } => self.set(key, value, *condition, *get, *ttl, now),
            Op::MSet { pairs, only_new } => self.mset(pairs, *only_new, now),
            Op::Del { keys } => {
                Output::Int(keys.iter().filter(|k| self.remove(k, now).is_some()).count() as i64)
            }
            Op::GetDel { key } => Output::Value(self.remove(key, now).map(|e| e.value.0)),
            Op::Append { key, value } => self.append(key, value, now),
            Op::SetRange { key, offset, value } => self.set_range(key, *offset, value, now),
            Op::IncrBy { key, by } => self.incr_by(key, *by, now),
            Op::IncrByFloat { key, by } => self.incr_by_float(key, *by, now),
            Op::Cas { key, expected, new } => self.cas(key, expected, new, now),
            Op::Expire { key, deadline, condition } => {
                self.expire(key, deadline.resolve(now), *condition, now)
            }
            Op::Persist { key } => self.persist(key, now),
            Op::Rename { from, to, only_new } => self.rename(from, to, *only_new, now),
            Op::Copy { from, to, replace } => self.copy(from, to, *replace, now),
            Op::FlushDb => self.flush(),
            Op::Purge => Output::Int(self.purge(now) as i64),
            Op::Exec { ops, watch } => self.exec(ops, watch.as_ref(), now),
            op => self.read(op, now),
        }
    }

    fn exec(&mut self, ops: &[Op], watch: Option<&Watch>, now: Millis) -> Output {
        if watch.is_some_and(|w| self.changed_since(w, now)) {
            return Output::Aborted;
        }
        Output::Array(ops.iter().map(|op| self.write(op, now)).collect())
    }
}

impl StateMachine for KvMap {
    type Command = Command;
    type Output = Output;

    fn apply(&mut self, command: &Command) -> Output {
        if let Some(output) = self.query(command) {
            return output;
        }
        let now = self.now(command.stamp_ms);
        self.clock_ms = now;
        self.version += 1;
        self.write(&command.op, now)
    }

    fn query(&self, command: &Command) -> Option<Output> {
        KvMap::query(self, command)
    }

    fn is_read_only(command: &Command) -> bool {
        command.op.is_read_only()
    }

    /// Keys and values plus [`ARGUMENT_OVERHEAD_BYTES`] per argument and
    /// once more for the command itself (its stamp and variant): a SET of a
    /// 64 MiB value counts as 64 MiB, so the log's batches are bounded by
    /// what they carry.
    fn command_bytes(command: &Command) -> usize {
        command.op.argument_bytes().saturating_add(2 * ARGUMENT_OVERHEAD_BYTES)
    }

    /// Keys, values and deadlines: equal maps have equal digests whatever
    /// their history.
    fn digest(&self) -> u64 {
        let mut bytes = Vec::new();
        for (k, entry) in &self.data {
            bytes.extend_from_slice(&(k.len() as u64).to_le_bytes());
            bytes.extend_from_slice(k);
            bytes.extend_from_slice(&(entry.value.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&entry.value);
            bytes.extend_from_slice(&entry.deadline.unwrap_or(-1).to_le_bytes());
        }
        quorum_core::fnv1a(&bytes)
    }
}

/// What one argument of a command adds to its encoding besides its bytes,
/// estimated high: postcard's length prefix (up to 5 bytes below 4 GiB), or
/// an integer's varint (up to 10 bytes, shared with the key's allowance).
/// Counted twice more per command for its stamp, variant tags and list length.
const ARGUMENT_OVERHEAD_BYTES: usize = 8;

/// Redis' integer parsing: optional sign, decimal digits, no spaces, no
/// leading `+`, fits in i64.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.starts_with('+') || text.len() > 20 {
        return None;
    }
    if text.len() > 1 && (text.starts_with('0') || text.starts_with("-0")) {
        return None;
    }
    text.parse().ok()
}

/// Redis' float parsing for INCRBYFLOAT: no spaces, not NaN.
pub fn parse_f64(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| !f.is_nan())
}
