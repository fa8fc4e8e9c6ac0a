//! Property tests for the models beyond the register: on small random
//! histories (values repeated, every completion type, pending ops) the
//! checker agrees with a brute-force search over every order, written here
//! against a separate sequential specification of each model, and every
//! witness is itself non-linearizable by brute force. Histories come from a
//! client that mostly reports what a real object did at its completion
//! (linearizable) and sometimes makes a result up (often not).
//!
//! The key-value store here is one of strings that grow by appends, with
//! pieces that overlap ("a" + "ba" is "ab" + "a"), against plain Rust
//! strings: the checker keeps such strings as nodes of a trie
//! (`linearizability/text.rs`), and must find a read of "aba" equal to
//! the state either way built it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use quorum_check::datum::Datum;
use quorum_check::linearizability::DEFAULT_MAX_STATES;
use quorum_check::models::Model;
use quorum_check::parse::{read_history, Format, RecordedHistory, RecordedOp};
use quorum_check::{check_recorded, OpType, Outcome, F};

const MODELS: [Model; 6] =
    [Model::ListAppend, Model::Set, Model::Counter, Model::Queue, Model::Mutex, Model::Kv];

/// The strings a key-value client appends and writes, by element: they
/// overlap, so one string is reached by several sequences of appends.
const PIECES: [&str; 3] = ["a", "ba", "ab"];

fn piece(element: i128) -> Datum {
    Datum::Str(PIECES[(element as usize) % PIECES.len()].to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_brute_force(model in 0..MODELS.len(), steps in prop::collection::vec(step(), 1..18)) {
        agrees(MODELS[model], &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Strings built by appends, more often: the trie must tell "ab" from
    /// "ba" and find "a" + "ba" equal to "ab" + "a" (a trie that trusted
    /// its hashes, with a weak one, was caught here and not in 64 cases).
    #[test]
    fn strings_agree_with_brute_force(steps in prop::collection::vec(step(), 1..18)) {
        agrees(Model::Kv, &steps)?;
    }
}

/// The checker's verdict on the history of `steps` is the brute force's,
/// and a failure's witness fails by brute force too.
fn agrees(model: Model, steps: &[Step]) -> Result<(), TestCaseError> {
    let text = build(model, steps);
    let history = read_history(&text, Format::Edn).unwrap();
    let expected = brute_force_linearizable(model, &history);
    let verdict = check_recorded(&history, model, DEFAULT_MAX_STATES).unwrap();
    let expected_outcome = if expected { Outcome::Linearizable } else { Outcome::NotLinearizable };
    prop_assert_eq!(verdict.outcome, expected_outcome, "{}\n{:#?}", text, verdict);
    if !expected {
        let lines: Vec<String> = verdict.witness.iter().map(|&p| history.ops[p].to_json_line()).collect();
        let witness = read_history(&lines.join("\n"), Format::Json).unwrap();
        prop_assert!(!brute_force_linearizable(model, &witness), "{}\n{:#?}", text, verdict);
    }
    Ok(())
}

/// Long histories from an honest client (every result is what the object
/// held at the op's completion, so each is linearizable) pass, quickly,
/// and one made-up result at the end makes them fail.
#[test]
fn long_honest_histories_pass_and_one_made_up_result_fails() {
    for model in MODELS {
        let mut rng = quorum_core::Rng::seed(7);
        // Proving a counter wrong explores every subset of its pending
        // increments, so its history has fewer indeterminate ones; and a
        // timed-out release may take effect at any later time, so the
        // extra acquires below are certainly wrong only without them.
        let uncertain = match model {
            Model::Counter => 0.02,
            // A timed-out append may land at any later point, and every
            // read sees whether it did, so thirty of them (2% of 1,500
            // ops) pending together exhaust the budget, with or without
            // the trie of strings; the small histories above have them.
            Model::Mutex | Model::Kv => 0.0,
            _ => 0.1,
        };
        // Appended, added and enqueued elements are unique, as in Jepsen.
        let steps: Vec<Step> = (0..3000)
            .map(|i| Step {
                process: rng.range(0, 3) as usize,
                choice: rng.range(0, 4) as u8,
                // Counters add 1 to 3, as Jepsen's counters add small amounts.
                element: if model == Model::Counter { i % 3 + 1 } else { i + 1 },
                honest: true,
                completion: if rng.chance(uncertain) { rng.range(5, 8) as u8 } else { 0 },
            })
            .collect();
        let text = build(model, &steps);
        let history = read_history(&text, Format::Edn).unwrap();
        let started = std::time::Instant::now();
        let verdict = check_recorded(&history, model, DEFAULT_MAX_STATES).unwrap();
        assert_eq!(verdict.outcome, Outcome::Linearizable, "{model:?}: {verdict:#?}");
        assert!(started.elapsed().as_secs() < 10, "{model:?} took {:?}", started.elapsed());
        let (f, result) = match model {
            Model::ListAppend => (F::Read, Datum::List(vec![Datum::Int(5000)])),
            Model::Kv => (F::Read, Datum::Str("c".into())),
            Model::Set => (F::Read, Datum::set(vec![Datum::Int(5000)])),
            Model::Counter => (F::Read, Datum::Int(-1)),
            Model::Queue => (F::Dequeue, Datum::Int(5000)),
            _ => (F::Acquire, Datum::Nil),
        };
        // Five acquires in a row: at most three releases (one per client,
        // invoked at the end) may still be pending to come between them.
        let twice = if model == Model::Mutex { 5 } else { 1 };
        let mut made_up = text.clone();
        for i in 0..twice {
            made_up.push_str(&format!(
                "\n{}\n{}",
                edn(OpType::Invoke, 100 + i, f, &Datum::Nil),
                edn(OpType::Ok, 100 + i, f, &result)
            ));
        }
        let history = read_history(&made_up, Format::Edn).unwrap();
        let verdict = check_recorded(&history, model, DEFAULT_MAX_STATES).unwrap();
        assert_eq!(verdict.outcome, Outcome::NotLinearizable, "{model:?}: {verdict:#?}");
    }
}

/// One step of a random history: a process acts (invokes if idle,
/// completes otherwise) with the given random choices.
#[derive(Clone, Debug)]
struct Step {
    process: usize,
    choice: u8,
    element: i128,
    honest: bool,
    completion: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (0usize..3, 0u8..4, 1i128..4, prop::bool::weighted(0.75), 0u8..8).prop_map(
        |(process, choice, element, honest, completion)| Step {
            process,
            choice,
            element,
            honest,
            completion,
        },
    )
}

/// The state of one object of a model, as the brute force sees it.
#[derive(Clone, Debug, PartialEq)]
enum Spec {
    List(Vec<i128>),
    Set(BTreeSet<i128>),
    Count(i128),
    Queue(VecDeque<i128>),
    Held(bool),
    /// A key-value register of strings: nil, or a string.
    Text(Option<String>),
}

impl Spec {
    fn new(model: Model) -> Spec {
        match model {
            Model::ListAppend => Spec::List(Vec::new()),
            Model::Set => Spec::Set(BTreeSet::new()),
            Model::Counter => Spec::Count(0),
            Model::Queue => Spec::Queue(VecDeque::new()),
            Model::Kv => Spec::Text(None),
            _ => Spec::Held(false),
        }
    }

    /// What a read (or a dequeue) returns now, as a datum.
    fn observe(&self) -> Datum {
        let ints = |items: &mut dyn Iterator<Item = &i128>| items.map(|&i| Datum::Int(i)).collect();
        match self {
            Spec::List(items) => Datum::List(ints(&mut items.iter())),
            Spec::Set(members) => Datum::Set(ints(&mut members.iter())),
            Spec::Count(n) => Datum::Int(*n),
            Spec::Queue(queue) => queue.front().map_or(Datum::Nil, |&e| Datum::Int(e)),
            Spec::Held(_) => Datum::Nil,
            Spec::Text(text) => text.clone().map_or(Datum::Nil, Datum::Str),
        }
    }

    /// The sequential specification: the state after `f` with argument
    /// `arg` and (for a read or a dequeue) result `result`; `None` if
    /// illegal. A `None` result is an unknown one (an indeterminate op).
    fn step(&self, f: F, arg: &Datum, result: Option<&Datum>) -> Option<Spec> {
        let int = |d: &Datum| d.as_int();
        let str = |d: &Datum| match d {
            Datum::Str(s) => Some(s.clone()),
            _ => None,
        };
        let mut next = self.clone();
        match (&mut next, f) {
            (Spec::List(items), F::Append) => items.push(int(arg)?),
            (Spec::Set(members), F::Add) => {
                members.insert(int(arg)?);
            }
            (Spec::Count(n), F::Add) => *n += int(arg)?,
            (Spec::Queue(queue), F::Enqueue) => queue.push_back(int(arg)?),
            (Spec::Queue(queue), F::Dequeue) => {
                let head = queue.pop_front();
                if let Some(result) = result {
                    if result.as_int() != head {
                        return None;
                    }
                }
            }
            (Spec::Held(held), F::Acquire) if !*held => *held = true,
            (Spec::Held(held), F::Release) if *held => *held = false,
            (Spec::Text(text), F::Write) => *text = Some(str(arg)?),
            (Spec::Text(text), F::Append) => text.get_or_insert_with(String::new).push_str(&str(arg)?),
            (_, F::Read) => return (result? == &self.observe()).then_some(next),
            _ => return None,
        }
        Some(next)
    }
}

/// The ops a model's client may invoke, by `choice`.
fn invocation(model: Model, choice: u8, element: i128) -> (F, Datum) {
    let value = Datum::Int(element);
    match (model, choice % 2) {
        (Model::ListAppend, 0) => (F::Append, value),
        (Model::Set, 0) => (F::Add, value),
        (Model::Counter, 0) => (F::Add, value),
        // A quarter enqueues: queues stay short, as when consumers keep up.
        (Model::Queue, _) if choice == 0 => (F::Enqueue, value),
        (Model::Queue, _) => (F::Dequeue, Datum::Nil),
        (Model::Mutex, 0) => (F::Acquire, Datum::Nil),
        (Model::Mutex, _) => (F::Release, Datum::Nil),
        // Half appends, a quarter writes, a quarter reads.
        (Model::Kv, 0) => (F::Append, piece(element)),
        (Model::Kv, _) if choice == 1 => (F::Write, piece(element)),
        _ => (F::Read, Datum::Nil),
    }
}

/// A made-up result for a read or dequeue.
fn invented(model: Model, element: i128) -> Datum {
    match model {
        Model::ListAppend => Datum::List((1..=element).map(Datum::Int).collect()),
        Model::Set => Datum::set((element..4).map(Datum::Int).collect()),
        // Strings the appends may well build, or not in that order.
        Model::Kv => Datum::Str(["aba", "abab", "baa"][element as usize % 3].to_string()),
        _ => Datum::Int(element),
    }
}

fn edn(kind: OpType, process: usize, f: F, value: &Datum) -> String {
    format!("{{:type :{}, :f :{}, :value {value}, :process {process}}}", kind.name(), f.name())
}

/// The history of `steps` against a real object of `model`, in EDN.
fn build(model: Model, steps: &[Step]) -> String {
    let mut object = Spec::new(model);
    let mut pending: [Option<(F, Datum)>; 3] = Default::default();
    let mut generation = [0usize; 3];
    let mut lines = Vec::new();
    for s in steps {
        let process = s.process + 3 * generation[s.process];
        let Some((f, arg)) = pending[s.process].take() else {
            let (f, arg) = invocation(model, s.choice, s.element);
            lines.push(edn(OpType::Invoke, process, f, &arg));
            pending[s.process] = Some((f, arg));
            continue;
        };
        let kind = match s.completion {
            0..=4 => OpType::Ok,
            5 => OpType::Fail,
            _ => OpType::Info,
        };
        let observed = object.observe();
        let next = object.step(f, &arg, None);
        // An honest client reports an op the object refused as failed.
        let refused = s.honest && next.is_none() && kind == OpType::Ok && f != F::Read;
        let kind = if refused { OpType::Fail } else { kind };
        let took_effect = kind == OpType::Ok || (kind == OpType::Info && s.choice >= 2);
        if let (true, Some(next)) = (took_effect && (s.honest || !matches!(f, F::Read | F::Dequeue)), next) {
            object = next;
        }
        let result = match (f, kind) {
            (F::Read | F::Dequeue, OpType::Ok) if s.honest => observed,
            (F::Read | F::Dequeue, OpType::Ok) => invented(model, s.element),
            (F::Read | F::Dequeue, _) => Datum::Nil,
            _ => arg,
        };
        lines.push(edn(kind, process, f, &result));
        if kind == OpType::Info {
            generation[s.process] += 1;
        }
    }
    lines.join("\n")
}

/// An op for the brute force: `ret` is `usize::MAX` for an indeterminate
/// op, which may also be left out.
#[derive(Clone, Debug)]
struct Brute {
    call: usize,
    ret: usize,
    optional: bool,
    f: F,
    arg: Datum,
    result: Option<Datum>,
}

fn brute_ops(ops: &[RecordedOp]) -> Vec<Brute> {
    let mut out: Vec<Brute> = Vec::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for (position, op) in ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            open.insert(op.process, out.len());
            let brute = Brute {
                call: position,
                ret: usize::MAX,
                optional: true,
                f: op.f,
                arg: op.value.clone(),
                result: None,
            };
            out.push(brute);
            continue;
        }
        let Some(i) = open.remove(&op.process) else { continue };
        match op.kind {
            OpType::Ok => {
                out[i].ret = position;
                out[i].optional = false;
                out[i].result = Some(op.value.clone());
            }
            OpType::Fail => out[i].call = usize::MAX, // did not happen
            _ => {}
        }
    }
    // Fails are dropped; so are reads with no result (they change nothing).
    out.retain(|o| o.call != usize::MAX && !(o.f == F::Read && o.result.is_none()));
    out
}

fn brute_force_linearizable(model: Model, history: &RecordedHistory) -> bool {
    let ops = brute_ops(&history.ops);
    let mut used = vec![false; ops.len()];
    extend(&ops, &mut used, &Spec::new(model))
}

/// Can the unused ops be ordered (optional ones possibly skipped) after the
/// used ones, from `state`?
fn extend(ops: &[Brute], used: &mut [bool], state: &Spec) -> bool {
    if ops.iter().zip(used.iter()).all(|(o, u)| *u || o.optional) {
        return true;
    }
    for i in 0..ops.len() {
        // Real time: no unused op may have returned before this one's call.
        let blocked = ops.iter().zip(used.iter()).any(|(o, u)| !*u && o.ret < ops[i].call);
        if used[i] || blocked {
            continue;
        }
        let result = ops[i].result.as_ref().filter(|_| matches!(ops[i].f, F::Read | F::Dequeue));
        if let Some(next) = state.step(ops[i].f, &ops[i].arg, result) {
            used[i] = true;
            let ok = extend(ops, used, &next);
            used[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}
