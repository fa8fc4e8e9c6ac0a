//! Client histories: what each client asked and what it learned, in the
//! order the driver saw it. Jepsen's vocabulary: an operation is an `invoke`
//! followed by its completion, `ok` (took effect), `fail` (certainly did not)
//! or `info` (unknown: it may take effect at any later time, or never).
//!
//! One history event per line in our JSON lines format:
//! `{"index":3,"type":"ok","f":"cas","key":1,"value":[1,2],"process":0,"time":5120,"node":2}`
//! `value` is `null`, an integer, or `[expected, new]` for a cas.

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    Read,
    Write,
    Cas,
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
