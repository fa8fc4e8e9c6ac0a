//! The key-value command set the simulator's clients speak, and the state
//! machine that executes it.
//!
//! Keys and values are small integers: the workload writes a value no other
//! write uses, which is what makes linearizability checking and lost-write
//! detection cheap and exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub type Key = u64;
pub type Value = u64;

/// A client's request against the key-value store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    Read {
        key: Key,
    },
    Write {
        key: Key,
        value: Value,
    },
    /// Compare-and-set: if `key` holds `expected`, set it to `new`.
    Cas {
        key: Key,
        expected: Value,
        new: Value,
    },
}

impl KvCommand {
    pub fn key(&self) -> Key {
        match *self {
            KvCommand::Read { key } | KvCommand::Write { key, .. } | KvCommand::Cas { key, .. } => key,
        }
    }

    /// True for commands that may change the state.
    pub fn is_update(&self) -> bool {
        !matches!(self, KvCommand::Read { .. })
    }
}

/// A protocol's answer. The variants say what the client may conclude, which
/// is what the history records: `ok`, `fail` (certainly not applied) or
/// `info` (indeterminate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    /// A read's result (`None`: the key was never written).
    Read(Option<Value>),
    /// A write or a successful cas took effect.
    Done,
    /// A conditional update whose condition did not hold: a cas whose
    /// expected value did not match, or a write to a write-once register
    /// (a Paxos instance) that already chose another value. Certainly not
    /// applied, and a definite answer from the replicated state, not a
    /// refusal to serve.
    CasMismatch,
    /// Refused without effect: this node cannot serve the request (not the
    /// leader, no quorum, a replica down). `hint` names a node worth trying.
    Rejected { reason: String, hint: Option<crate::NodeId> },
    /// The request may or may not take effect (for example the leader lost
    /// its quorum after proposing it). The client must treat it as unknown.
    Indeterminate { reason: String },
}

/// The replicated key-value state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    data: BTreeMap<Key, Value>,
}

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    pub fn get(&self, key: Key) -> Option<Value> {
        self.data.get(&key).copied()
    }

    /// Execute `command`, returning the client's answer.
    pub fn apply(&mut self, command: &KvCommand) -> KvResponse {
        match *command {
            KvCommand::Read { key } => KvResponse::Read(self.get(key)),
            KvCommand::Write { key, value } => {
                self.data.insert(key, value);
                KvResponse::Done
            }
            KvCommand::Cas { key, expected, new } => {
                if self.get(key) == Some(expected) {
                    self.data.insert(key, new);
                    KvResponse::Done
                } else {
                    KvResponse::CasMismatch
                }
            }
        }
    }

    /// Set `key` directly (replicas applying a primary's already-decided write).
    pub fn set(&mut self, key: Key, value: Value) {
        self.data.insert(key, value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, Value)> + '_ {
        self.data.iter().map(|(k, v)| (*k, *v))
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A digest equal for equal contents, stable across runs and builds.
    pub fn digest(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.data.len() * 16);
        for (k, v) in &self.data {
            bytes.extend_from_slice(&k.to_le_bytes());
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        crate::fnv1a(&bytes)
    }
}

impl crate::StateMachine for KvStore {
    type Command = KvCommand;
    type Output = KvResponse;

    fn apply(&mut self, command: &KvCommand) -> KvResponse {
        KvStore::apply(self, command)
    }

    fn is_read_only(command: &KvCommand) -> bool {
        !command.is_update()
    }

    fn digest(&self) -> u64 {
        KvStore::digest(self)
    }

    fn query(&self, command: &KvCommand) -> Option<KvResponse> {
        match *command {
            KvCommand::Read { key } => Some(KvResponse::Read(self.get(key))),
            _ => None,
        }
    }
}

impl crate::ClientOutput for KvResponse {
    fn rejected(reason: impl Into<String>, hint: Option<crate::NodeId>) -> Self {
        KvResponse::Rejected { reason: reason.into(), hint }
    }

    fn indeterminate(reason: impl Into<String>) -> Self {
        KvResponse::Indeterminate { reason: reason.into() }
    }
}

/// Text form, for scripts: `read K`, `write K V`, `cas K EXPECTED NEW`.
impl std::str::FromStr for KvCommand {
    type Err = String;

    fn from_str(s: &str) -> Result<KvCommand, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let num = |i: usize| -> Result<u64, String> {
            let w = words.get(i).ok_or_else(|| format!("'{s}': missing argument {i}"))?;
            w.parse().map_err(|_| format!("'{w}' is not a number"))
        };
        let command = match words.first().copied() {
            Some("read") if words.len() == 2 => KvCommand::Read { key: num(1)? },
            Some("write") if words.len() == 3 => KvCommand::Write { key: num(1)?, value: num(2)? },
            Some("cas") if words.len() == 4 => {
                KvCommand::Cas { key: num(1)?, expected: num(2)?, new: num(3)? }
            }
            _ => return Err(format!("'{s}' is not 'read K', 'write K V' or 'cas K EXPECTED NEW'")),
        };
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_applies_only_on_match() {
        let mut kv = KvStore::new();
        assert_eq!(kv.apply(&KvCommand::Cas { key: 1, expected: 0, new: 5 }), KvResponse::CasMismatch);
        kv.apply(&KvCommand::Write { key: 1, value: 3 });
        assert_eq!(kv.apply(&KvCommand::Cas { key: 1, expected: 3, new: 5 }), KvResponse::Done);
        assert_eq!(kv.apply(&KvCommand::Read { key: 1 }), KvResponse::Read(Some(5)));
    }

    #[test]
    fn commands_parse_from_text() {
        assert_eq!("write 1 5".parse::<KvCommand>(), Ok(KvCommand::Write { key: 1, value: 5 }));
        assert_eq!("cas 1 5 6".parse::<KvCommand>(), Ok(KvCommand::Cas { key: 1, expected: 5, new: 6 }));
        assert!("write 1".parse::<KvCommand>().is_err());
        assert!("drop 1".parse::<KvCommand>().is_err());
    }

    #[test]
    fn digest_depends_on_contents_only() {
        let mut a = KvStore::new();
        let mut b = KvStore::new();
        a.set(1, 1);
        a.set(2, 2);
        b.set(2, 2);
        b.set(1, 1);
        assert_eq!(a.digest(), b.digest());
        b.set(2, 3);
        assert_ne!(a.digest(), b.digest());
    }
}
