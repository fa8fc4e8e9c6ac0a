//! The Redis commands the simulator's clients speak besides read / write /
//! cas: `SET` with a time to live (`PX`), `MSET` of several keys, and
//! `MULTI` / `EXEC` of gets and sets, each one atomic log entry; and the
//! state machine that runs them with time taken from stamps only.
//!
//! **Time.** A command carries a stamp: the clock (microseconds) of the node
//! that took it from the client, put there by the driver when it delivers
//! the request (the simulator's world, with each node's clock offset by its
//! skew; the server stamps its own commands the same way, in
//! `server::state`). Only the leader's stamps enter a log, because only a
//! leader proposes. The state machine never reads a clock: its time is the
//! larger of a command's stamp and the highest stamp it has applied, so
//! time in the log never runs backwards, a key is absent to every command
//! once that time passes its deadline, and every replica, applying the same
//! entries in the same order, expires the same keys at the same entry.
//! Reads answered from the state without a log entry are judged by their
//! own stamp against the same high-water mark.
//!
//! Keys and values are integers, as in [`crate::kv`]: the workload writes
//! each value once, which keeps linearizability checking exact.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Key, Value};

/// A command and the clock reading of the node that took it (microseconds;
/// 0 until a node stamps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisCommand {
    pub stamp: u64,
    pub op: RedisOp,
    /// Judge this command by its own stamp alone, not by the map's time:
    /// the deliberate bug of a system where each process decides expiry by
    /// its own clock (the simulator's `--bug expiry-by-local-clock`).
    pub own_clock: bool,
}

impl RedisCommand {
    /// An unstamped command.
    pub fn new(op: RedisOp) -> RedisCommand {
        RedisCommand { stamp: 0, op, own_clock: false }
    }

    pub fn is_update(&self) -> bool {
        !matches!(self.op, RedisOp::Get { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedisOp {
    /// `GET key`.
    Get { key: Key },
    /// `SET key value [PX ttl]`: clears an earlier deadline unless `px`
    /// sets a new one (microseconds from the command's time).
    Set { key: Key, value: Value, px: Option<u64> },
    /// `MSET k1 v1 k2 v2 ...`: every key written at once, deadlines cleared.
    MSet { pairs: Vec<(Key, Value)> },
    /// `MULTI`, the queued commands, `EXEC`: applied as one entry, in order,
    /// with nothing in between.
    Exec { ops: Vec<Micro> },
}

/// A command queued inside `MULTI`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Micro {
    Get { key: Key },
    Set { key: Key, value: Value },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedisResponse {
    /// A `GET`'s result (`None`: nil).
    Value(Option<Value>),
    /// `+OK` of a `SET` or `MSET`.
    Ok,
    /// `EXEC`'s results: one per queued `GET`, in order (the queued `SET`s
    /// answer `+OK`, which says nothing, and are left out).
    Exec(Vec<Option<Value>>),
    /// Refused without effect (not the leader, no quorum).
    Rejected { reason: String, hint: Option<crate::NodeId> },
    /// May or may not take effect.
    Indeterminate { reason: String },
}

impl crate::ClientOutput for RedisResponse {
    fn rejected(reason: impl Into<String>, hint: Option<crate::NodeId>) -> Self {
        RedisResponse::Rejected { reason: reason.into(), hint }
    }

    fn indeterminate(reason: impl Into<String>) -> Self {
        RedisResponse::Indeterminate { reason: reason.into() }
    }
}

/// The replicated map: each key's value and deadline, the deadlines in
/// order, and the highest stamp applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisKv {
    data: BTreeMap<Key, (Value, Option<u64>)>,
    /// Invariant: `(at, key)` is here iff `data[key].1 == Some(at)`.
    deadlines: BTreeSet<(u64, Key)>,
    /// The highest stamp applied: the map's time.
    clock: u64,
}

impl RedisKv {
    /// The map's time for `command`: its stamp, or the highest stamp
    /// applied if that is later (except under the deliberate bug).
    fn now(&self, command: &RedisCommand) -> u64 {
        if command.own_clock {
            command.stamp
        } else {
            self.clock.max(command.stamp)
        }
    }

    /// `key`'s value unless absent or expired at `now`.
    fn live(&self, key: Key, now: u64) -> Option<Value> {
        self.data.get(&key).filter(|(_, deadline)| deadline.is_none_or(|d| now < d)).map(|(v, _)| *v)
    }

    fn put(&mut self, key: Key, value: Value, deadline: Option<u64>) {
        if let Some((_, Some(old))) = self.data.insert(key, (value, deadline)) {
            self.deadlines.remove(&(old, key));
        }
        if let Some(at) = deadline {
            self.deadlines.insert((at, key));
        }
    }

    /// Remove every key whose deadline is at or before `now`: part of
    /// applying an entry, so every replica removes them at the same entry.
    fn purge(&mut self, now: u64) {
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.data.remove(&key);
        }
    }

    /// The deadline index mirrors the entries.
    pub fn check(&self) {
        let with_deadline = self.data.values().filter(|(_, d)| d.is_some()).count();
        assert_eq!(self.deadlines.len(), with_deadline, "one index entry per deadline");
        for &(at, key) in &self.deadlines {
            assert_eq!(self.data.get(&key).and_then(|e| e.1), Some(at), "index entry without its key");
        }
    }

    fn exec(&mut self, ops: &[Micro], now: u64) -> Vec<Option<Value>> {
        let mut reads = Vec::new();
        for op in ops {
            match *op {
                Micro::Get { key } => reads.push(self.live(key, now)),
                Micro::Set { key, value } => self.put(key, value, None),
            }
        }
        reads
    }
}

impl crate::StateMachine for RedisKv {
    type Command = RedisCommand;
    type Output = RedisResponse;

    /// A `GET` changes nothing (protocols answer reads by `apply` on the
    /// leader alone, so a read must leave the state as it was); an update
    /// moves the map's time to its stamp and purges what has expired.
    fn apply(&mut self, command: &RedisCommand) -> RedisResponse {
        if let RedisOp::Get { key } = command.op {
            return RedisResponse::Value(self.live(key, self.now(command)));
        }
        let now = self.now(command);
        self.clock = self.clock.max(now);
        if !command.own_clock {
            // Under the bug nothing is purged: each process judges each key
            // on access by its own clock, as lazy expiry does.
            self.purge(now);
        }
        match &command.op {
            RedisOp::Get { key } => RedisResponse::Value(self.live(*key, now)),
            RedisOp::Set { key, value, px } => {
                self.put(*key, *value, px.map(|ttl| now.saturating_add(ttl)));
                RedisResponse::Ok
            }
            RedisOp::MSet { pairs } => {
                for &(key, value) in pairs {
                    self.put(key, value, None);
                }
                RedisResponse::Ok
            }
            RedisOp::Exec { ops } => RedisResponse::Exec(self.exec(ops, now)),
        }
    }

    fn is_read_only(command: &RedisCommand) -> bool {
        !command.is_update()
    }

    fn digest(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.data.len() * 24 + 8);
        for (key, (value, deadline)) in &self.data {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
            bytes.extend_from_slice(&deadline.unwrap_or(u64::MAX).to_le_bytes());
        }
        bytes.extend_from_slice(&self.clock.to_le_bytes());
        crate::fnv1a(&bytes)
    }

    fn query(&self, command: &RedisCommand) -> Option<RedisResponse> {
        match command.op {
            RedisOp::Get { key } => Some(RedisResponse::Value(self.live(key, self.now(command)))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateMachine;

    fn at(stamp: u64, op: RedisOp) -> RedisCommand {
        RedisCommand { stamp, op, own_clock: false }
    }

    #[test]
    fn a_key_expires_by_the_stamps_alone() {
        let mut kv = RedisKv::default();
        kv.apply(&at(1_000, RedisOp::Set { key: 1, value: 7, px: Some(500) }));
        assert_eq!(kv.apply(&at(1_499, RedisOp::Get { key: 1 })), RedisResponse::Value(Some(7)));
        let before = kv.clone();
        assert_eq!(kv.apply(&at(1_500, RedisOp::Get { key: 1 })), RedisResponse::Value(None));
        assert_eq!(kv, before, "a read changes nothing");
        kv.apply(&at(1_500, RedisOp::MSet { pairs: vec![(2, 1)] }));
        kv.check();
        assert_eq!(kv.data.len(), 1, "purged when an update's time passed the deadline");
    }

    /// A stamp from a clock that runs behind (a new leader's) cannot bring
    /// a key back: the map's time is the highest stamp applied.
    #[test]
    fn a_late_clock_does_not_resurrect() {
        let mut kv = RedisKv::default();
        kv.apply(&at(1_000, RedisOp::Set { key: 1, value: 7, px: Some(500) }));
        kv.apply(&at(1_600, RedisOp::MSet { pairs: vec![(2, 8)] }));
        assert_eq!(kv.query(&at(1_200, RedisOp::Get { key: 1 })), Some(RedisResponse::Value(None)));
        assert_eq!(kv.apply(&at(1_200, RedisOp::Get { key: 1 })), RedisResponse::Value(None));
    }

    /// The deliberate bug: a command judged by its own (late) stamp sees
    /// the key again.
    #[test]
    fn judged_by_its_own_clock_a_key_comes_back() {
        let mut kv = RedisKv::default();
        kv.apply(&at(1_000, RedisOp::Set { key: 1, value: 7, px: Some(500) }));
        kv.apply(&at(1_600, RedisOp::MSet { pairs: vec![(2, 8)] }));
        let own = RedisCommand { stamp: 1_200, op: RedisOp::Get { key: 1 }, own_clock: true };
        assert_eq!(kv.apply(&own), RedisResponse::Value(None), "purged by the entry at 1600");
        let mut kv = RedisKv::default();
        let set = RedisCommand {
            stamp: 1_000,
            op: RedisOp::Set { key: 1, value: 7, px: Some(500) },
            own_clock: true,
        };
        kv.apply(&set);
        kv.apply(&RedisCommand { stamp: 1_600, op: RedisOp::MSet { pairs: vec![(2, 8)] }, own_clock: true });
        assert_eq!(kv.apply(&at(1_600, RedisOp::Get { key: 1 })), RedisResponse::Value(None));
        assert_eq!(kv.apply(&own), RedisResponse::Value(Some(7)), "nil at 1600, back at 1200");
    }

    #[test]
    fn exec_applies_in_order_and_set_clears_the_deadline() {
        let mut kv = RedisKv::default();
        kv.apply(&at(0, RedisOp::Set { key: 1, value: 1, px: Some(10) }));
        let ops = vec![
            Micro::Get { key: 1 },
            Micro::Set { key: 1, value: 2 },
            Micro::Get { key: 1 },
            Micro::Get { key: 3 },
        ];
        assert_eq!(
            kv.apply(&at(5, RedisOp::Exec { ops })),
            RedisResponse::Exec(vec![Some(1), Some(2), None])
        );
        assert_eq!(kv.apply(&at(100, RedisOp::Get { key: 1 })), RedisResponse::Value(Some(2)));
        kv.check();
    }

    #[test]
    fn replicas_applying_the_same_entries_agree() {
        let entries = [
            at(10, RedisOp::Set { key: 1, value: 1, px: Some(5) }),
            at(12, RedisOp::MSet { pairs: vec![(2, 2), (3, 3)] }),
            at(20, RedisOp::Exec { ops: vec![Micro::Set { key: 4, value: 4 }] }),
        ];
        let (mut a, mut b) = (RedisKv::default(), RedisKv::default());
        for e in &entries {
            a.apply(e);
            b.apply(e);
        }
        assert_eq!(a.digest(), b.digest());
        b.apply(&at(21, RedisOp::Set { key: 5, value: 5, px: None }));
        assert_ne!(a.digest(), b.digest());
    }
}
