//! The state machine the server replicates: a byte-string key-value map with
//! the Redis commands the front end speaks.
//!
//! Every command is a pure function of the map, so replicas that apply the
//! same log reach the same map (the [`StateMachine`] contract). Errors a
//! command can raise on valid input (INCR on a value that is not an integer)
//! are outputs, decided identically on every replica, never panics.

use std::collections::BTreeMap;
use std::fmt;

use quorum_core::{ClientOutput, NodeId, StateMachine};
use serde::{Deserialize, Serialize};

/// A command the log carries. Keys and values are arbitrary bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Get {
        key: Vec<u8>,
    },
    MGet {
        keys: Vec<Vec<u8>>,
    },
    Exists {
        keys: Vec<Vec<u8>>,
    },
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Del {
        keys: Vec<Vec<u8>>,
    },
    IncrBy {
        key: Vec<u8>,
        by: i64,
    },
    /// Our extension for linearizability tests: set `key` to `new` if it
    /// holds `expected` (an absent key matches nothing).
    Cas {
        key: Vec<u8>,
        expected: Vec<u8>,
        new: Vec<u8>,
    },
}

/// Bytes shown as an escaped string (`"key:1\x00"`), not a list of numbers:
/// readable in logs, and cheap, since the protocols digest every applied
/// command through its `Debug` form.
struct Escaped<'a>(&'a [u8]);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

fn escaped_list(keys: &[Vec<u8>]) -> Vec<Escaped<'_>> {
    keys.iter().map(|k| Escaped(k)).collect()
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Get { key } => f.debug_struct("Get").field("key", &Escaped(key)).finish(),
            Command::MGet { keys } => f.debug_struct("MGet").field("keys", &escaped_list(keys)).finish(),
            Command::Exists { keys } => f.debug_struct("Exists").field("keys", &escaped_list(keys)).finish(),
            Command::Set { key, value } => {
                f.debug_struct("Set").field("key", &Escaped(key)).field("value", &Escaped(value)).finish()
            }
            Command::Del { keys } => f.debug_struct("Del").field("keys", &escaped_list(keys)).finish(),
            Command::IncrBy { key, by } => {
                f.debug_struct("IncrBy").field("key", &Escaped(key)).field("by", by).finish()
            }
            Command::Cas { key, expected, new } => f
                .debug_struct("Cas")
                .field("key", &Escaped(key))
                .field("expected", &Escaped(expected))
                .field("new", &Escaped(new))
                .finish(),
        }
    }
}

impl Command {
    /// The keys a command touches, for tests and metrics.
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Command::Get { key }
            | Command::Set { key, .. }
            | Command::IncrBy { key, .. }
            | Command::Cas { key, .. } => {
                vec![key.as_slice()]
            }
            Command::MGet { keys } | Command::Exists { keys } | Command::Del { keys } => {
                keys.iter().map(Vec::as_slice).collect()
            }
        }
    }
}

/// What a command answers, and the refusals of the replication layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Ok,
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Int(i64),
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

/// The replicated map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMap {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KvMap {
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Answer a read-only command from the current state; `None` for updates.
    pub fn query(&self, command: &Command) -> Option<Output> {
        Some(match command {
            Command::Get { key } => Output::Value(self.data.get(key).cloned()),
            Command::MGet { keys } => {
                Output::Values(keys.iter().map(|k| self.data.get(k).cloned()).collect())
            }
            Command::Exists { keys } => {
                Output::Int(keys.iter().filter(|k| self.data.contains_key(*k)).count() as i64)
            }
            _ => return None,
        })
    }
}

impl StateMachine for KvMap {
    type Command = Command;
    type Output = Output;

    fn apply(&mut self, command: &Command) -> Output {
        if let Some(output) = self.query(command) {
            return output;
        }
        match command {
            Command::Set { key, value } => {
                self.data.insert(key.clone(), value.clone());
                Output::Ok
            }
            Command::Del { keys } => {
                Output::Int(keys.iter().filter(|k| self.data.remove(*k).is_some()).count() as i64)
            }
            Command::IncrBy { key, by } => {
                let current = match self.data.get(key) {
                    None => 0,
                    Some(bytes) => match parse_i64(bytes) {
                        Some(n) => n,
                        None => return Output::Error("ERR value is not an integer or out of range".into()),
                    },
                };
                match current.checked_add(*by) {
                    Some(n) => {
                        self.data.insert(key.clone(), n.to_string().into_bytes());
                        Output::Int(n)
                    }
                    None => Output::Error("ERR increment or decrement would overflow".into()),
                }
            }
            Command::Cas { key, expected, new } => {
                if self.data.get(key) == Some(expected) {
                    self.data.insert(key.clone(), new.clone());
                    Output::Int(1)
                } else {
                    Output::Int(0)
                }
            }
            Command::Get { .. } | Command::MGet { .. } | Command::Exists { .. } => {
                unreachable!("answered by query")
            }
        }
    }

    fn query(&self, command: &Command) -> Option<Output> {
        KvMap::query(self, command)
    }

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Get { .. } | Command::MGet { .. } | Command::Exists { .. })
    }

    /// Keys and values plus [`ARGUMENT_OVERHEAD_BYTES`] per argument and
    /// once more for the command itself: a SET of a 64 MiB value counts as
    /// 64 MiB, so the log's batches are bounded by what they carry.
    fn command_bytes(command: &Command) -> usize {
        let sized = |bytes: &[u8]| bytes.len().saturating_add(ARGUMENT_OVERHEAD_BYTES);
        let listed = |keys: &[Vec<u8>]| keys.iter().fold(0usize, |sum, k| sum.saturating_add(sized(k)));
        let arguments = match command {
            Command::Get { key } => sized(key),
            Command::MGet { keys } | Command::Exists { keys } | Command::Del { keys } => listed(keys),
            Command::Set { key, value } => sized(key).saturating_add(sized(value)),
            Command::IncrBy { key, .. } => sized(key).saturating_add(ARGUMENT_OVERHEAD_BYTES),
            Command::Cas { key, expected, new } => {
                sized(key).saturating_add(sized(expected)).saturating_add(sized(new))
            }
        };
        arguments.saturating_add(ARGUMENT_OVERHEAD_BYTES)
    }

    fn digest(&self) -> u64 {
        let mut bytes = Vec::new();
        for (k, v) in &self.data {
            bytes.extend_from_slice(&(k.len() as u64).to_le_bytes());
            bytes.extend_from_slice(k);
            bytes.extend_from_slice(&(v.len() as u64).to_le_bytes());
            bytes.extend_from_slice(v);
        }
        quorum_core::fnv1a(&bytes)
    }
}

/// What one argument of a command adds to its encoding besides its bytes,
/// estimated high: postcard's length prefix (up to 5 bytes below 4 GiB), or
/// an integer's varint (up to 10 bytes, shared with the key's allowance).
/// Counted once more per command for its variant tag and list length.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(m: &mut KvMap, k: &str, v: &str) -> Output {
        m.apply(&Command::Set { key: k.into(), value: v.into() })
    }

    #[test]
    fn commands_follow_redis_semantics() {
        let mut m = KvMap::default();
        assert_eq!(m.apply(&Command::Get { key: b"a".to_vec() }), Output::Value(None));
        assert_eq!(set(&mut m, "a", "1"), Output::Ok);
        assert_eq!(m.apply(&Command::IncrBy { key: b"a".to_vec(), by: 1 }), Output::Int(2));
        assert_eq!(m.apply(&Command::IncrBy { key: b"n".to_vec(), by: 1 }), Output::Int(1));
        set(&mut m, "s", "x");
        assert!(matches!(m.apply(&Command::IncrBy { key: b"s".to_vec(), by: 1 }), Output::Error(_)));
        set(&mut m, "big", &i64::MAX.to_string());
        assert!(matches!(m.apply(&Command::IncrBy { key: b"big".to_vec(), by: 1 }), Output::Error(_)));
        let keys = vec![b"a".to_vec(), b"zz".to_vec(), b"s".to_vec()];
        assert_eq!(m.apply(&Command::Exists { keys: keys.clone() }), Output::Int(2));
        assert_eq!(
            m.apply(&Command::MGet { keys: keys.clone() }),
            Output::Values(vec![Some(b"2".to_vec()), None, Some(b"x".to_vec())])
        );
        assert_eq!(m.apply(&Command::Del { keys }), Output::Int(2));
        assert_eq!(m.apply(&Command::Exists { keys: vec![b"a".to_vec()] }), Output::Int(0));
    }

    #[test]
    fn cas_sets_only_on_match() {
        let mut m = KvMap::default();
        let cas = |e: &str, n: &str| Command::Cas { key: b"k".to_vec(), expected: e.into(), new: n.into() };
        assert_eq!(m.apply(&cas("", "1")), Output::Int(0), "an absent key matches nothing");
        set(&mut m, "k", "1");
        assert_eq!(m.apply(&cas("2", "3")), Output::Int(0));
        assert_eq!(m.apply(&cas("1", "3")), Output::Int(1));
        assert_eq!(m.query(&Command::Get { key: b"k".to_vec() }), Some(Output::Value(Some(b"3".to_vec()))));
    }

    #[test]
    fn binary_keys_and_digest() {
        let mut a = KvMap::default();
        let mut b = KvMap::default();
        a.apply(&Command::Set { key: vec![0, 13, 10, 255], value: vec![0] });
        assert_ne!(a.digest(), b.digest());
        b.apply(&Command::Set { key: vec![0, 13, 10, 255], value: vec![0] });
        assert_eq!(a.digest(), b.digest());
    }

    /// The estimate errs high but not by much: at least the wire size
    /// (postcard, as the peer transport sends it), at most a few bytes per
    /// argument over it.
    #[test]
    fn command_bytes_bounds_the_encoded_size_from_above() {
        let big = vec![7u8; 1 << 20];
        let commands = [
            Command::Get { key: b"k".to_vec() },
            Command::MGet { keys: vec![b"a".to_vec(), vec![1; 300], Vec::new()] },
            Command::Exists { keys: Vec::new() },
            Command::Set { key: b"key".to_vec(), value: big.clone() },
            Command::Del { keys: vec![big.clone()] },
            Command::IncrBy { key: b"n".to_vec(), by: i64::MIN },
            Command::Cas { key: vec![0; 200], expected: big.clone(), new: big },
        ];
        for command in &commands {
            let encoded = postcard::to_stdvec(command).expect("encodes").len();
            let estimate = KvMap::command_bytes(command);
            assert!(estimate >= encoded, "{command:?}: estimate {estimate} < encoded {encoded}");
            assert!(
                estimate <= encoded + 4 * ARGUMENT_OVERHEAD_BYTES,
                "{command:?}: {estimate} vs {encoded}"
            );
        }
    }

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in [&b""[..], b"+1", b"01", b" 1", b"1.0", b"99999999999999999999", b"-0"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
