//! Deterministic synthetic histories, for benchmarks, property tests and
//! negative controls.
//!
//! [`generate_history`] runs `clients` concurrent clients against a perfect
//! key-value store: each op is invoked, takes effect at one instant strictly
//! inside its interval, and completes later, so the history is linearizable
//! by construction while the intervals of different clients overlap. Values
//! written are unique. A few ops end indeterminate (`info`, taking effect or
//! not at random, after which the client continues as a fresh process, as in
//! Jepsen), and a few writes fail without effect.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use quorum_core::{Key, Rng, Value};

use crate::history::{History, Op, OpType, OpValue, F};

/// Probability that an op ends `info`.
const INFO_RATE: f64 = 0.01;
/// Probability that a write fails (without effect).
const FAIL_RATE: f64 = 0.01;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Invoke,
    TakeEffect,
    Complete,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    f: F,
    key: Key,
    value: OpValue,
    /// The completion type and value, fixed when the op takes effect.
    outcome: Option<(OpType, OpValue)>,
}

/// A linearizable history of `ops` operations (2 × `ops` events) by
/// `clients` concurrent clients over keys `[0, keys)`, a function of `seed`.
pub fn generate_history(seed: u64, ops: usize, clients: usize, keys: u64) -> History {
    assert!(clients > 0, "at least one client");
    assert!(keys > 0, "at least one key");
    let mut rng = Rng::stream(seed, 0x0067_656e);
    let mut store: BTreeMap<Key, Value> = BTreeMap::new();
    let mut events: Vec<Op> = Vec::with_capacity(ops * 2);
    let mut in_flight: Vec<Option<InFlight>> = vec![None; clients];
    let mut process: Vec<u64> = (0..clients as u64).collect();
    // (time, sequence, client, phase), earliest first; sequence breaks ties.
    let mut queue = BinaryHeap::new();
    let mut sequence: u64 = 0;
    for client in 0..clients {
        queue.push(Reverse((rng.range(0, 20), sequence, client, Phase::Invoke)));
        sequence += 1;
    }
    let mut invoked = 0;
    let mut next_value: Value = 1;
    while let Some(Reverse((time, _, client, phase))) = queue.pop() {
        let (after, next_phase) = match phase {
            Phase::Invoke if invoked == ops => continue,
            Phase::Invoke => {
                invoked += 1;
                let op = random_op(&mut rng, keys, &store, &mut next_value);
                events.push(event(OpType::Invoke, &op, op.value, process[client], time));
                in_flight[client] = Some(op);
                (rng.range(1, 60), Phase::TakeEffect)
            }
            Phase::TakeEffect => {
                let op = in_flight[client].as_mut().expect("an op is in flight");
                op.outcome = Some(take_effect(&mut rng, op, &mut store));
                (rng.range(1, 60), Phase::Complete)
            }
            Phase::Complete => {
                let op = in_flight[client].take().expect("an op is in flight");
                let (kind, value) = op.outcome.expect("the op took effect first");
                events.push(event(kind, &op, value, process[client], time));
                if kind == OpType::Info {
                    process[client] += clients as u64;
                }
                (rng.range(0, 20), Phase::Invoke)
            }
        };
        queue.push(Reverse((time + after, sequence, client, next_phase)));
        sequence += 1;
    }
    for (index, op) in events.iter_mut().enumerate() {
        op.index = index;
    }
    History { ops: events }
}

fn random_op(rng: &mut Rng, keys: u64, store: &BTreeMap<Key, Value>, next_value: &mut Value) -> InFlight {
    let key = rng.range(0, keys);
    let roll = rng.range(0, 10);
    let (f, value) = if roll < 5 {
        (F::Read, OpValue::Nil)
    } else if roll < 8 {
        *next_value += 1;
        (F::Write, OpValue::One(*next_value - 1))
    } else {
        // Expect the value held now: it often still holds when the cas runs.
        let expected = store.get(&key).copied().unwrap_or(0);
        *next_value += 1;
        (F::Cas, OpValue::Pair([expected, *next_value - 1]))
    };
    InFlight { f, key, value, outcome: None }
}

/// Apply `op` to `store` (or not) and decide how the client will see it.
fn take_effect(rng: &mut Rng, op: &InFlight, store: &mut BTreeMap<Key, Value>) -> (OpType, OpValue) {
    if op.f == F::Write && rng.chance(FAIL_RATE) {
        return (OpType::Fail, op.value);
    }
    let indeterminate = rng.chance(INFO_RATE);
    if indeterminate && rng.chance(0.5) {
        return (OpType::Info, op.value);
    }
    let kind = if indeterminate { OpType::Info } else { OpType::Ok };
    match (op.f, op.value) {
        (F::Read, _) if indeterminate => (OpType::Info, OpValue::Nil),
        (F::Read, _) => (kind, store.get(&op.key).map_or(OpValue::Nil, |v| OpValue::One(*v))),
        (F::Write, OpValue::One(v)) => {
            store.insert(op.key, v);
            (kind, op.value)
        }
        (F::Cas, OpValue::Pair([expected, new])) => {
            if store.get(&op.key) == Some(&expected) {
                store.insert(op.key, new);
                (kind, op.value)
            } else {
                (if indeterminate { OpType::Info } else { OpType::Fail }, op.value)
            }
        }
        _ => unreachable!("random_op builds well-shaped values"),
    }
}

fn event(kind: OpType, op: &InFlight, value: OpValue, process: u64, time: u64) -> Op {
    Op { index: 0, kind, f: op.f, key: op.key, value, process, time, node: None }
}

/// Make `history` non-linearizable with a stale read: pick an `ok` read
/// (near a position chosen by `seed`) whose key was certainly overwritten
/// twice before it began — write `a` completed, then write `b` was invoked
/// and completed — and make it return `a`. Returns false if no read fits.
pub fn inject_stale_read(history: &mut History, seed: u64) -> bool {
    let ops = &history.ops;
    let invoke_of = invoke_positions(history);
    let start = Rng::stream(seed, 0x7374_616c).range(0, ops.len() as u64) as usize;
    let candidates = (start..ops.len()).chain(0..start);
    for position in candidates {
        let read = ops[position];
        if read.kind != OpType::Ok || read.f != F::Read {
            continue;
        }
        let read_call = invoke_of[position];
        if let Some(stale) = overwritten_value(history, &invoke_of, read.key, read_call) {
            if read.value != OpValue::One(stale) {
                history.ops[position].value = OpValue::One(stale);
                return true;
            }
        }
    }
    false
}

/// For each completion, the position of its invoke (and for an invoke, itself).
fn invoke_positions(history: &History) -> Vec<usize> {
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    let mut invoke_of = vec![0; history.ops.len()];
    for (position, op) in history.ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            pending.insert(op.process, position);
            invoke_of[position] = position;
        } else {
            invoke_of[position] = pending.remove(&op.process).unwrap_or(position);
        }
    }
    invoke_of
}

/// A value of `key` written by an `ok` write that completed before another
/// `ok` write of `key` was invoked, which itself completed before `before`.
fn overwritten_value(history: &History, invoke_of: &[usize], key: Key, before: usize) -> Option<Value> {
    let is_ok_write = |op: &Op| op.kind == OpType::Ok && op.f == F::Write && op.key == key;
    // The latest ok write of `key` completed before `before`...
    let (second_done, _) = history.ops[..before].iter().enumerate().rev().find(|(_, op)| is_ok_write(op))?;
    let second_call = invoke_of[second_done];
    // ...and an ok write completed before that one was invoked.
    let first = history.ops[..second_call].iter().rev().find(|op| is_ok_write(op))?;
    match first.value {
        OpValue::One(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{check, Model, Outcome};

    #[test]
    fn generation_is_deterministic_and_well_formed() {
        let a = generate_history(3, 500, 8, 4);
        let b = generate_history(3, 500, 8, 4);
        assert_eq!(a, b);
        assert_eq!(a.ops.iter().filter(|o| o.kind == OpType::Invoke).count(), 500);
        assert_eq!(a.ops.len(), 1000);
        let text = crate::parse::to_json_lines(&a);
        assert_eq!(crate::parse::parse_history(&text).unwrap(), a);
        assert!(a.ops.iter().any(|o| o.kind == OpType::Info));
        assert!(a.ops.iter().any(|o| o.kind == OpType::Fail));
    }

    #[test]
    fn generated_histories_are_linearizable_and_stale_reads_are_not() {
        for seed in 0..5 {
            let mut h = generate_history(seed, 1000, 8, 3);
            assert_eq!(check(&h, Model::Kv).outcome, Outcome::Linearizable, "seed {seed}");
            assert!(inject_stale_read(&mut h, seed));
            assert_eq!(check(&h, Model::Kv).outcome, Outcome::NotLinearizable, "seed {seed}");
        }
    }
}
