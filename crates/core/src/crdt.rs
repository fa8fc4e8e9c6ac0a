//! The requests of replicated data types that accept updates at any node
//! without coordination (CRDTs): counters and sets, by key. Any node
//! answers any request from its own replica at once, so a read may miss
//! updates other nodes accepted; the replicas converge by gossip.

use serde::{Deserialize, Serialize};

use crate::Key;

/// A client's request against the replicated counters and sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrdtRequest {
    /// Add `by` (non-zero, either sign) to the counter at `key`.
    Increment { key: Key, by: i64 },
    /// Bring the counter at `key` back to zero as this replica sees it.
    Reset { key: Key },
    /// Add `element` to the set at `key`.
    Add { key: Key, element: u64 },
    /// Remove `element` from the set at `key` (as this replica sees it).
    Remove { key: Key, element: u64 },
    /// The counter and the set at `key`, as this replica holds them.
    Read { key: Key },
}

impl CrdtRequest {
    pub fn key(&self) -> Key {
        match *self {
            CrdtRequest::Increment { key, .. }
            | CrdtRequest::Reset { key }
            | CrdtRequest::Add { key, .. }
            | CrdtRequest::Remove { key, .. }
            | CrdtRequest::Read { key } => key,
        }
    }

    pub fn is_update(&self) -> bool {
        !matches!(self, CrdtRequest::Read { .. })
    }
}

/// A node's answer: every update is accepted (`Done`), every read answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrdtResponse {
    Done,
    /// The counter's value and the set's elements (ascending).
    Read {
        counter: i64,
        elements: Vec<u64>,
    },
}

/// Text form, for scripts and the model checker: `incr K N`, `reset K`,
/// `add K E`, `remove K E`, `read K`.
impl std::str::FromStr for CrdtRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<CrdtRequest, String> {
        let number = |text: &str| text.parse::<u64>().map_err(|_| format!("'{text}' is not a number"));
        match s.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["incr", key, by] => {
                let by: i64 = by.parse().map_err(|_| format!("'{by}' is not a number"))?;
                if by == 0 {
                    return Err("an increment must not be 0".into());
                }
                Ok(CrdtRequest::Increment { key: number(key)?, by })
            }
            ["reset", key] => Ok(CrdtRequest::Reset { key: number(key)? }),
            ["add", key, element] => Ok(CrdtRequest::Add { key: number(key)?, element: number(element)? }),
            ["remove", key, element] => {
                Ok(CrdtRequest::Remove { key: number(key)?, element: number(element)? })
            }
            ["read", key] => Ok(CrdtRequest::Read { key: number(key)? }),
            _ => Err(format!("'{s}' is not one of: incr K N, reset K, add K E, remove K E, read K")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_text() {
        assert_eq!("incr 1 -2".parse(), Ok(CrdtRequest::Increment { key: 1, by: -2 }));
        assert_eq!("add 3 4".parse(), Ok(CrdtRequest::Add { key: 3, element: 4 }));
        assert_eq!("remove 3 4".parse(), Ok(CrdtRequest::Remove { key: 3, element: 4 }));
        assert_eq!("reset 3".parse(), Ok(CrdtRequest::Reset { key: 3 }));
        assert_eq!("read 3".parse(), Ok(CrdtRequest::Read { key: 3 }));
        assert!("incr 1 0".parse::<CrdtRequest>().is_err());
        assert!("incr 1".parse::<CrdtRequest>().is_err());
        assert!("write 1 2".parse::<CrdtRequest>().is_err());
    }
}
