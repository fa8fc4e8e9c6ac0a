//! Property tests for the linearizability checker: generated histories pass,
//! corrupted ones fail, and on small random histories the WGL search agrees
//! with a brute-force search over every order.

use proptest::prelude::*;
use quorum_check::linearizability::{check, Model, Outcome};
use quorum_check::{gen, History, Op, OpType, OpValue, F};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// A history produced by a sequential store with overlapping intervals
    /// is linearizable, whatever the concurrency and key count.
    #[test]
    fn generated_histories_are_linearizable(
        seed in any::<u64>(),
        ops in 1usize..600,
        clients in 1usize..10,
        keys in 1u64..5,
    ) {
        let history = gen::generate_history(seed, ops, clients, keys);
        let report = check(&history, Model::Kv);
        prop_assert_eq!(report.outcome, Outcome::Linearizable, "{:?}", report);
        if keys == 1 {
            prop_assert_eq!(check(&history, Model::CasRegister).outcome, Outcome::Linearizable);
        }
    }

    /// Make one ok read return a value nobody wrote: never linearizable, and
    /// the witness contains that read.
    #[test]
    fn a_read_of_a_never_written_value_is_caught(
        seed in any::<u64>(),
        ops in 20usize..600,
        clients in 1usize..10,
        keys in 1u64..5,
        pick in any::<prop::sample::Index>(),
    ) {
        let mut history = gen::generate_history(seed, ops, clients, keys);
        let reads: Vec<usize> = history.ops.iter().enumerate()
            .filter(|(_, op)| op.kind == OpType::Ok && op.f == F::Read)
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!reads.is_empty());
        let target = reads[pick.index(reads.len())];
        history.ops[target].value = OpValue::One(u64::MAX);
        let report = check(&history, Model::Kv);
        prop_assert_eq!(report.outcome, Outcome::NotLinearizable);
        prop_assert_eq!(report.key, Some(history.ops[target].key));
        prop_assert!(report.witness.contains(&history.ops[target]), "{:?}", report);
        prop_assert!(report.explanation.contains("no operation ever wrote"), "{}", report.explanation);
    }

    /// On small random histories (values reused, every completion type,
    /// pending ops) the checker agrees with brute force, and every witness
    /// is itself non-linearizable by brute force.
    #[test]
    fn agrees_with_brute_force(steps in prop::collection::vec(step(), 1..16)) {
        let history = build(&steps);
        let expected = brute_force_linearizable(&history);
        let report = check(&history, Model::CasRegister);
        let expected_outcome =
            if expected { Outcome::Linearizable } else { Outcome::NotLinearizable };
        prop_assert_eq!(report.outcome, expected_outcome, "{:#?}", history.ops);
        if !expected {
            let witness = History { ops: report.witness.clone() };
            prop_assert!(!brute_force_linearizable(&witness), "{:#?}", report);
        }
    }
}

/// One step of a random history: a process acts (invokes if idle,
/// completes otherwise) with the given random choices.
#[derive(Clone, Debug)]
struct Step {
    process: u64,
    f: u8,
    a: u64,
    b: u64,
    completion: u8,
    read: Option<u64>,
}

fn step() -> impl Strategy<Value = Step> {
    (0u64..3, 0u8..3, 1u64..4, 1u64..4, 0u8..6, prop::option::of(1u64..4))
        .prop_map(|(process, f, a, b, completion, read)| Step { process, f, a, b, completion, read })
}

fn build(steps: &[Step]) -> History {
    let mut pending: [Option<Op>; 3] = [None; 3];
    let mut generation = [0u64; 3];
    let mut ops = Vec::new();
    for s in steps {
        let slot = s.process as usize;
        let process = s.process + 3 * generation[slot];
        let index = ops.len();
        match pending[slot].take() {
            None => {
                let (f, value) = match s.f {
                    0 => (F::Read, OpValue::Nil),
                    1 => (F::Write, OpValue::One(s.a)),
                    _ => (F::Cas, OpValue::Pair([s.a, s.b])),
                };
                let op = Op { index, kind: OpType::Invoke, f, key: 0, value, process, time: 0, node: None };
                pending[slot] = Some(op);
                ops.push(op);
            }
            Some(invoke) => {
                let kind = match s.completion {
                    0..=3 => OpType::Ok,
                    4 => OpType::Fail,
                    _ => OpType::Info,
                };
                let value = match invoke.f {
                    F::Read => s.read.map_or(OpValue::Nil, OpValue::One),
                    _ => invoke.value,
                };
                if kind == OpType::Info {
                    generation[slot] += 1;
                }
                ops.push(Op { index, kind, value, ..invoke });
            }
        }
    }
    History { ops }
}

/// An op for the brute-force search: `ret` is `usize::MAX` for an
/// indeterminate op (which may also be left out).
#[derive(Clone, Copy, Debug)]
struct Brute {
    call: usize,
    ret: usize,
    optional: bool,
    f: F,
    value: OpValue,
    read: Option<u64>,
}

fn brute_ops(history: &History) -> Vec<Brute> {
    let mut out: Vec<Brute> = Vec::new();
    let mut open: std::collections::HashMap<u64, usize> = Default::default();
    for (position, op) in history.ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            open.insert(op.process, out.len());
            out.push(Brute {
                call: position,
                ret: usize::MAX,
                optional: true,
                f: op.f,
                value: op.value,
                read: None,
            });
            continue;
        }
        let Some(i) = open.remove(&op.process) else { continue };
        match op.kind {
            OpType::Ok => {
                out[i].ret = position;
                out[i].optional = false;
                out[i].read = match op.value {
                    OpValue::One(v) => Some(v),
                    _ => None,
                };
            }
            OpType::Fail => out[i].f = F::Read, // neutralised below
            _ => {}
        }
        if op.kind == OpType::Fail {
            out[i].optional = true;
            out[i].value = OpValue::Nil;
            out[i].ret = usize::MAX;
            out[i].call = usize::MAX; // marks "drop"
        }
    }
    // Drop fails and indeterminate reads (no effect).
    out.retain(|o| o.call != usize::MAX && !(o.optional && o.f == F::Read));
    out
}

fn brute_force_linearizable(history: &History) -> bool {
    let ops = brute_ops(history);
    let mut used = vec![false; ops.len()];
    extend(&ops, &mut used, None)
}

/// Can the unused ops be ordered (optional ones possibly skipped) after the
/// used ones, from register state `state`?
fn extend(ops: &[Brute], used: &mut [bool], state: Option<u64>) -> bool {
    if ops.iter().zip(used.iter()).all(|(o, u)| *u || o.optional) {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // Real time: no unused op may have returned before this one's call.
        let blocked = ops.iter().zip(used.iter()).any(|(o, u)| !*u && o.ret < ops[i].call);
        if blocked {
            continue;
        }
        let after = match (ops[i].f, ops[i].value) {
            (F::Read, _) if ops[i].read == state => Some(state),
            (F::Read, _) => None,
            (F::Write, OpValue::One(v)) => Some(Some(v)),
            (F::Cas, OpValue::Pair([e, n])) if state == Some(e) => Some(Some(n)),
            _ => None,
        };
        if let Some(next) = after {
            used[i] = true;
            let ok = extend(ops, used, next);
            used[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}
