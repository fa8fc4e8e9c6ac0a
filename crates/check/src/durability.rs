//! Durability: does every acknowledged write survive?
//!
//! A write or cas is *acknowledged* if it completed `ok`. Values written are
//! unique per run, so the final value `v_f` of a key names the op that wrote
//! it, `W`. An acknowledged write `w` to key `k` (other than `W` itself) is
//! **lost** if
//!
//! 1. `v_f` is nil: the key holds nothing, so no acknowledged write to it
//!    survived ([`LossReason::KeyEmpty`]);
//! 2. `W` completed `ok` before `w` was invoked: real-time order puts `w`
//!    after `W` in every linearization, so `w` should have replaced `v_f`
//!    ([`LossReason::Overwritten`]);
//! 3. no op ever wrote `v_f` (or only a failed one did): the state is
//!    corrupt and every acknowledged write to `k` is gone
//!    ([`LossReason::CorruptValue`]).
//!
//! When `W` is indeterminate or concurrent with `w`, `W` may legitimately be
//! ordered after `w`, and `w` is not counted. Keys absent from the final
//! values are not judged. This is the checker behind the source text's
//! "data loss" column: for protocols that promise durability a non-empty
//! answer is a bug; for the others it is a count.

use std::collections::{BTreeMap, HashMap};

use quorum_core::{Key, Value};
use serde::Serialize;

use crate::history::{History, Op, OpType, OpValue, F};

/// Why an acknowledged write counts as lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LossReason {
    /// The key's final value is nil.
    KeyEmpty,
    /// The op that wrote the final value completed before this write began.
    Overwritten { final_value: Value },
    /// The final value was never written by any op that did not fail.
    CorruptValue { final_value: Value },
}

/// One lost acknowledged write: its `ok` completion event and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LostWrite {
    pub op: Op,
    pub reason: LossReason,
}

/// The `ok` completion events of every acknowledged write that is lost, in
/// history order. See the module documentation for the definition.
pub fn lost_acked_writes(history: &History, final_values: &BTreeMap<Key, Option<Value>>) -> Vec<Op> {
    lost_writes(history, final_values).into_iter().map(|lost| lost.op).collect()
}

/// As [`lost_acked_writes`], with the reason for each loss.
pub fn lost_writes(history: &History, final_values: &BTreeMap<Key, Option<Value>>) -> Vec<LostWrite> {
    let writes = collect_writes(history);
    // The write (not failed) of each (key, value), for the final values.
    let mut writer: HashMap<(Key, Value), &WriteOp> = HashMap::new();
    for write in writes.iter().filter(|w| w.outcome != OpType::Fail) {
        writer.insert((write.key, write.value), write);
    }
    let mut lost = Vec::new();
    for write in writes.iter().filter(|w| w.outcome == OpType::Ok) {
        let Some(&final_value) = final_values.get(&write.key) else { continue };
        let reason = match final_value {
            None => Some(LossReason::KeyEmpty),
            Some(v) if v == write.value => None,
            Some(v) => match writer.get(&(write.key, v)) {
                None => Some(LossReason::CorruptValue { final_value: v }),
                Some(last)
                    if last.outcome == OpType::Ok
                        && last.completed.is_some_and(|done| done < write.invoked) =>
                {
                    Some(LossReason::Overwritten { final_value: v })
                }
                Some(_) => None,
            },
        };
        if let (Some(reason), Some(done)) = (reason, write.completed) {
            lost.push(LostWrite { op: history.ops[done], reason });
        }
    }
    lost.sort_by_key(|l| l.op.index);
    lost
}

/// A write or cas with its invoke and completion positions.
struct WriteOp {
    key: Key,
    value: Value,
    invoked: usize,
    completed: Option<usize>,
    /// `Info` for an op that never completed.
    outcome: OpType,
}

fn collect_writes(history: &History) -> Vec<WriteOp> {
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut writes: Vec<WriteOp> = Vec::new();
    for (position, op) in history.ops.iter().enumerate() {
        let written = match (op.f, op.value) {
            (F::Write, OpValue::One(v)) | (F::Cas, OpValue::Pair([_, v])) => Some(v),
            _ => None,
        };
        if op.kind == OpType::Invoke {
            pending.remove(&op.process);
            if let Some(value) = written {
                pending.insert(op.process, writes.len());
                writes.push(WriteOp {
                    key: op.key,
                    value,
                    invoked: position,
                    completed: None,
                    outcome: OpType::Info,
                });
            }
        } else if let Some(i) = pending.remove(&op.process) {
            writes[i].completed = Some(position);
            writes[i].outcome = op.kind;
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_history;

    fn history() -> History {
        parse_history(
            "{:type :invoke :f :write :value 1 :process 0 :key 1}
             {:type :ok :f :write :value 1 :process 0 :key 1}
             {:type :invoke :f :write :value 2 :process 0 :key 1}
             {:type :ok :f :write :value 2 :process 0 :key 1}
             {:type :invoke :f :write :value 3 :process 1 :key 2}
             {:type :invoke :f :cas :value [3 4] :process 2 :key 2}
             {:type :ok :f :write :value 3 :process 1 :key 2}
             {:type :ok :f :cas :value [3 4] :process 2 :key 2}
             {:type :invoke :f :write :value 5 :process 1 :key 3}
             {:type :fail :f :write :value 5 :process 1 :key 3}",
        )
        .unwrap()
    }

    fn finals(pairs: &[(Key, Option<Value>)]) -> BTreeMap<Key, Option<Value>> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn surviving_latest_writes_lose_nothing() {
        let h = history();
        assert!(lost_acked_writes(&h, &finals(&[(1, Some(2)), (2, Some(4))])).is_empty());
        // Key 2's write of 3 and cas to 4 were concurrent: either may be last.
        assert!(lost_acked_writes(&h, &finals(&[(2, Some(3))])).is_empty());
        // Keys not given are not judged.
        assert!(lost_acked_writes(&h, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn value_overwritten_by_an_earlier_write_is_a_loss() {
        let lost = lost_writes(&history(), &finals(&[(1, Some(1))]));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].op.index, 3);
        assert_eq!(lost[0].reason, LossReason::Overwritten { final_value: 1 });
    }

    #[test]
    fn empty_key_loses_every_acknowledged_write() {
        let lost = lost_acked_writes(&history(), &finals(&[(1, None), (2, None)]));
        let indices: Vec<usize> = lost.iter().map(|op| op.index).collect();
        assert_eq!(indices, vec![1, 3, 6, 7]);
        assert!(lost.iter().all(|op| op.kind == OpType::Ok));
    }

    #[test]
    fn corrupt_or_failed_final_value_is_reported() {
        let lost = lost_writes(&history(), &finals(&[(1, Some(99))]));
        assert_eq!(lost.len(), 2);
        assert!(lost.iter().all(|l| l.reason == LossReason::CorruptValue { final_value: 99 }));
        // Key 3 holds the value of a failed write, but it had no acked write.
        assert!(lost_writes(&history(), &finals(&[(3, Some(5))])).is_empty());
    }
}
