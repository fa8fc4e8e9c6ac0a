//! Client histories: what each client asked and what it learned, in the
//! order the driver saw it. Jepsen's vocabulary: an operation is an `invoke`
//! followed by its completion, `ok` (took effect), `fail` (certainly did not)
//! or `info` (unknown: it may take effect at any later time, or never).
//!
//! These are the simulator's histories, with integer keys and values, in the
//! compact form the register checker reads; one event per line in our JSON
//! lines format:
//! `{"index":3,"type":"ok","f":"cas","key":1,"value":[1,2],"process":0,"time":5120,"node":2}`
//! `value` is `null`, an integer, or `[expected, new]` for a cas. Histories
//! with other keys, values and ops are read as [`crate::parse::RecordedHistory`].

use quorum_core::{Key, Value};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl OpType {
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// What an op does: Jepsen's `:f`. The simulator's histories use read,
/// write and cas; the other models' histories the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    Read,
    Write,
    Cas,
    /// List-append: add an element at the end of a key's list. In the
    /// key-value model: concatenate a string to a key's value.
    Append,
    /// Set: add an element. Counter: add an integer.
    Add,
    /// Counter: add the op's value, or 1 if it has none.
    Increment,
    Enqueue,
    Dequeue,
    Acquire,
    Release,
}

impl F {
    pub const ALL: [F; 10] = [
        F::Read,
        F::Write,
        F::Cas,
        F::Append,
        F::Add,
        F::Increment,
        F::Enqueue,
        F::Dequeue,
        F::Acquire,
        F::Release,
    ];

    /// Jepsen's name, as `:f` holds it.
    pub fn name(self) -> &'static str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
            F::Append => "append",
            F::Add => "add",
            F::Increment => "increment",
            F::Enqueue => "enqueue",
            F::Dequeue => "dequeue",
            F::Acquire => "acquire",
            F::Release => "release",
        }
    }

    /// From a name as histories spell it: [`F::name`], or Jepsen's short
    /// `r`, `w` and `incr`.
    pub fn from_name(name: &str) -> Option<F> {
        match name {
            "r" => Some(F::Read),
            "w" => Some(F::Write),
            "incr" => Some(F::Increment),
            _ => F::ALL.into_iter().find(|f| f.name() == name),
        }
    }
}

/// An operation's argument or result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpValue {
    /// `[expected, new]` of a cas.
    Pair([Value; 2]),
    /// A write's value, or a read's result.
    One(Value),
    /// A read's invocation, or a read of a never-written key.
    Nil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0.
    pub index: usize,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: F,
    /// Registers (single-key models) use key 0.
    #[serde(default)]
    pub key: Key,
    pub value: OpValue,
    /// A client process runs one operation at a time. After an `info` a
    /// process is never reused (Jepsen's rule): its op may still be pending.
    pub process: u64,
    /// Driver time in microseconds (simulated or real); informational.
    #[serde(default)]
    pub time: u64,
    /// The node that answered, when known; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
}

/// A whole history, in event order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
}
