//! Checking a history as read from a file ([`RecordedHistory`]), whatever
//! its keys and values. Two paths:
//!
//! - The register family without string appends goes to the integer
//!   register (`register.rs`), the simulator's fast path: every distinct key
//!   and value is interned as an integer (in sorted order, so the smallest
//!   failing key is reported first), and the explanation prints the
//!   originals.
//! - Every other model goes to the interned objects (`objects.rs`).
//!
//! Either way an op whose value does not suit the model is an error naming
//! its line, and the verdict names ops by their position in the history.

use std::collections::BTreeMap;

use quorum_core::{Key, Value};

use super::objects::{DatumId, Move, ObjectOp, Objects, State, EMPTY_LIST};
use super::register::{Names, Pending};
use super::search::{FastMap, Object, Operation, WHOLE_OBJECT};
use super::{
    check_registers, judge, orders, out_of_budget, unshrunk, witness_positions, Judgement, Options, Orders,
    Outcome,
};
use crate::datum::Datum;
use crate::history::{History, Op, OpType, OpValue, F};
use crate::models::Model;
use crate::parse::{error, Format, ParseError, RecordedHistory, RecordedOp};

/// The verdict on a recorded history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub model: Model,
    pub outcome: Outcome,
    /// For a keyed model: the key of the failing or undecided object
    /// (`None` also for ops without a key).
    pub key: Option<Datum>,
    /// When not linearizable: the positions in the history's `ops` of the
    /// invokes and completions of a small subset of ops that by itself
    /// cannot be linearized, in order.
    pub witness: Vec<usize>,
    /// One or two sentences in plain words.
    pub explanation: String,
    /// Configurations explored by the search, over every key, excluding the
    /// work spent shrinking the witness.
    pub states_explored: u64,
    /// With [`Options::linearizations`]: every object's order, in key order.
    pub linearizations: Vec<Linearization>,
}

/// How one object's ops were linearized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linearization {
    /// The object's key (`None` for the single object of an unkeyed model).
    pub key: Option<Datum>,
    /// The verdict on this object alone.
    pub outcome: Outcome,
    /// Positions in the history's `ops` of the invokes of the ops in their
    /// order of linearization. When linearizable: every `ok` op and the
    /// indeterminate ops that took effect (the others never did). Otherwise
    /// the longest sequence the search could linearize: a legal order of
    /// these ops alone that respects real time, which no op left out can
    /// extend.
    pub order: Vec<usize>,
}

/// Check `history` against `model`, giving up with [`Outcome::Unknown`]
/// once the search of one object has explored `max_states` configurations.
/// An op the model does not take, or whose value does not suit it, is an
/// error naming its line.
pub fn check_recorded(
    history: &RecordedHistory,
    model: Model,
    max_states: u64,
) -> Result<Verdict, ParseError> {
    check_recorded_with(history, model, &Options::new(max_states))
}

/// [`check_recorded`] with `options`: without a witness, or with every
/// object's order of linearization.
pub fn check_recorded_with(
    history: &RecordedHistory,
    model: Model,
    options: &Options,
) -> Result<Verdict, ParseError> {
    for op in &history.ops {
        model.takes(op.f, op.line)?;
    }
    let strings = history.format == Format::PorcupineKv || history.ops.iter().any(|op| op.f == F::Append);
    if model.is_register() && !strings {
        interned_registers(history, model, options)
    } else {
        objects(history, model, options)
    }
}

// ------------------------------------------------------------- registers

fn interned_registers(
    history: &RecordedHistory,
    model: Model,
    options: &Options,
) -> Result<Verdict, ParseError> {
    static NIL: Datum = Datum::Nil;
    let keys = Table::new(history.ops.iter().map(|op| op.key.as_ref().unwrap_or(&NIL)));
    let values = Table::new(history.ops.iter().flat_map(|op| match (&op.f, &op.value) {
        (F::Cas, Datum::List(pair)) => pair.as_slice(),
        (_, Datum::Nil) => &[],
        (_, value) => std::slice::from_ref(value),
    }));
    let mut ops = Vec::with_capacity(history.ops.len());
    for (position, op) in history.ops.iter().enumerate() {
        let value = register_value(op, |d| values.id(d))?;
        let key = keys.id(op.key.as_ref().unwrap_or(&NIL));
        let (process, time, node) = (op.process, op.time.unwrap_or(0), op.node);
        ops.push(Op { index: position, kind: op.kind, f: op.f, key, value, process, time, node });
    }
    let (keys, values) = (keys.into_data(), values.into_data());
    let names = Names { keys, values };
    let (report, orders) = check_registers(&History { ops }, model, options, &names);
    let datum_key = |k: Key| Some(names.keys[k as usize].clone()).filter(|k| *k != Datum::Nil);
    let key = report.key.and_then(datum_key);
    let linearizations = orders
        .into_iter()
        .map(|(k, outcome, order)| Linearization { key: datum_key(k), outcome, order })
        .collect();
    Ok(Verdict {
        model,
        outcome: report.outcome,
        key,
        witness: report.witness.iter().map(|op| op.index).collect(),
        explanation: report.explanation,
        states_explored: report.states_explored,
        linearizations,
    })
}

/// Every distinct datum of a history's keys or values, sorted (so the
/// smallest failing key is reported first), each named by its index in that
/// order. Only the distinct data are sorted and cloned: on a history of a
/// hundred ops, sorting and cloning every occurrence was most of the check.
struct Table<'a> {
    sorted: Vec<&'a Datum>,
    /// With more than [`Table::SCAN`] distinct data; fewer are found by a
    /// scan, which beats hashing (a register's few values, one key).
    ids: Option<FastMap<&'a Datum, Value>>,
}

impl<'a> Table<'a> {
    const SCAN: usize = 16;

    fn new(data: impl Iterator<Item = &'a Datum>) -> Table<'a> {
        let mut distinct: Vec<&Datum> = Vec::new();
        let mut ids: Option<FastMap<&Datum, Value>> = None;
        for datum in data {
            match &mut ids {
                Some(ids) => {
                    ids.entry(datum).or_insert_with(|| {
                        distinct.push(datum);
                        0
                    });
                }
                None if distinct.iter().any(|&d| same(d, datum)) => {}
                None => {
                    distinct.push(datum);
                    if distinct.len() > Table::SCAN {
                        ids = Some(distinct.iter().map(|&d| (d, 0)).collect());
                    }
                }
            }
        }
        distinct.sort_unstable();
        if let Some(ids) = &mut ids {
            for (id, datum) in distinct.iter().enumerate() {
                ids.insert(datum, id as Value);
            }
        }
        Table { sorted: distinct, ids }
    }

    fn id(&self, datum: &Datum) -> Value {
        match &self.ids {
            Some(ids) => ids[datum],
            None => {
                self.sorted.iter().position(|&d| same(d, datum)).expect("every datum was collected") as Value
            }
        }
    }

    fn into_data(self) -> Vec<Datum> {
        self.sorted.into_iter().cloned().collect()
    }
}

/// `a == b`, with the usual cases inlined (the derived comparison is not,
/// being recursive).
#[inline]
fn same(a: &Datum, b: &Datum) -> bool {
    match (a, b) {
        (Datum::Int(a), Datum::Int(b)) => a == b,
        (Datum::Nil, Datum::Nil) => true,
        (Datum::Str(a), Datum::Str(b)) => a == b,
        (Datum::Nil | Datum::Int(_) | Datum::Str(_), _) | (_, Datum::Nil | Datum::Int(_) | Datum::Str(_)) => {
            false
        }
        _ => a == b,
    }
}

/// A register op's value as integers: a cas needs `[expected new]`, a
/// write one value.
fn register_value(op: &RecordedOp, id: impl Fn(&Datum) -> Value) -> Result<OpValue, ParseError> {
    let f = op.f.name();
    match (op.f, &op.value) {
        (F::Cas, Datum::List(pair)) if pair.len() == 2 => Ok(OpValue::Pair([id(&pair[0]), id(&pair[1])])),
        (F::Cas, _) if op.kind == OpType::Invoke => {
            Err(error(op.line, format!("invoke of :{f} needs [expected new], not {}", op.value)))
        }
        (F::Write, Datum::Nil) if op.kind == OpType::Invoke => {
            Err(error(op.line, format!("invoke of :{f} needs a value")))
        }
        (F::Cas, _) | (_, Datum::Nil) => Ok(OpValue::Nil),
        (_, value) => Ok(OpValue::One(id(value))),
    }
}

// --------------------------------------------------------------- objects

fn objects(history: &RecordedHistory, model: Model, options: &Options) -> Result<Verdict, ParseError> {
    let max_states = options.max_states;
    let mut objects = Objects::new();
    let initial = match model {
        // Porcupine's key-value store reads "" for a key never written.
        _ if model.is_register() && history.format == Format::PorcupineKv => {
            objects.value(Datum::Str(String::new()))
        }
        Model::Register | Model::CasRegister | Model::Kv => State::Value(None),
        Model::ListAppend => State::List(EMPTY_LIST),
        Model::Set => State::Set(Vec::new()),
        Model::Counter => State::Count(0),
        Model::Queue => State::Queue(Default::default()),
        Model::Mutex => State::Held(false),
    };
    objects.begin_with(initial);
    let groups = group_moves(history, model, &mut objects)?;
    let key_count = groups.len();
    let orders: Orders<Option<Datum>> =
        if options.linearizations { orders(&mut objects, &groups, max_states) } else { Vec::new() };
    let (judgement, states_explored) = judge(&mut objects, groups, options);
    let subject = |key: &Option<Datum>| match key {
        Some(key) => format!("key {key}"),
        None => format!("the {}", model.noun()),
    };
    let (outcome, key, witness, explanation) = match judgement {
        Judgement::Linearizable => {
            let total = history.ops.iter().filter(|op| op.kind == OpType::Invoke).count();
            let keys = if key_count > 1 { format!(" on {key_count} keys") } else { String::new() };
            (
                Outcome::Linearizable,
                None,
                Vec::new(),
                format!("All {total} operations{keys} are linearizable."),
            )
        }
        Judgement::Unknown(key) => {
            let explanation = out_of_budget(max_states, &subject(&key));
            (Outcome::Unknown, key, Vec::new(), explanation)
        }
        Judgement::NotLinearizable { key, witness, .. } if witness.is_empty() => {
            (Outcome::NotLinearizable, key.clone(), Vec::new(), unshrunk(&subject(&key)))
        }
        Judgement::NotLinearizable { key, all, witness } => {
            let explanation = explain(history, &objects, model, &subject(&key), &all, &witness);
            (Outcome::NotLinearizable, key, witness_positions(&witness), explanation)
        }
    };
    let linearizations =
        orders.into_iter().map(|(key, outcome, order)| Linearization { key, outcome, order }).collect();
    Ok(Verdict { model, outcome, key, witness, explanation, states_explored, linearizations })
}

/// Each key's operations, in invoke order: fails dropped, reads whose
/// result is unknown dropped, unfinished ops indeterminate.
fn group_moves(
    history: &RecordedHistory,
    model: Model,
    objects: &mut Objects,
) -> Result<BTreeMap<Option<Datum>, Vec<ObjectOp>>, ParseError> {
    let mut groups: BTreeMap<Option<Datum>, Vec<ObjectOp>> = BTreeMap::new();
    for (call, completion) in pairs(&history.ops) {
        let invoke = &history.ops[call];
        let done = completion.map(|p| &history.ops[p]);
        let kind = done.map_or(OpType::Info, |c| c.kind);
        if kind == OpType::Fail {
            continue;
        }
        let result = done.filter(|_| kind == OpType::Ok);
        let Some(action) = movement(model, invoke, result, objects)? else { continue };
        let ret = if kind == OpType::Ok { completion } else { None };
        let operation = Operation { call, ret, completion, key: 0, action };
        groups.entry(invoke.key.clone()).or_default().push(operation);
    }
    Ok(groups)
}

/// Each invoke's position with its completion's, if any, in invoke order.
fn pairs(ops: &[RecordedOp]) -> Vec<(usize, Option<usize>)> {
    let mut pending = Pending::new(ops.len());
    let mut pairs = Vec::with_capacity(ops.len() / 2 + 1);
    for (position, op) in ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            pending.insert(op.process, pairs.len());
            pairs.push((position, None));
        } else if let Some(at) = pending.take(op.process) {
            pairs[at].1 = Some(position);
        }
    }
    pairs
}

/// What `invoke` does to the model's object, given its `ok` completion if
/// it has one; `None` for a read with no known result.
fn movement(
    model: Model,
    invoke: &RecordedOp,
    result: Option<&RecordedOp>,
    objects: &mut Objects,
) -> Result<Option<Move>, ParseError> {
    let f = invoke.f.name();
    let needs = |what: &str| error(invoke.line, format!("invoke of :{f} needs {what}, not {}", invoke.value));
    let value = || if invoke.value == Datum::Nil { Err(needs("a value")) } else { Ok(invoke.value.clone()) };
    let action = match (model, invoke.f) {
        (_, F::Read) => match result {
            Some(read) => Move::Read(read_state(model, read, objects)?),
            None => return Ok(None),
        },
        (_, F::Write) => Move::Write(objects.datum(value()?)),
        (_, F::Cas) => match &invoke.value {
            Datum::List(pair) if pair.len() == 2 => {
                Move::Cas { expected: objects.datum(pair[0].clone()), new: objects.datum(pair[1].clone()) }
            }
            _ => return Err(needs("[expected new]")),
        },
        (Model::Kv, F::Append) => match &invoke.value {
            Datum::Str(_) => Move::AppendText(objects.datum(invoke.value.clone())),
            _ => return Err(needs("a string to concatenate")),
        },
        (_, F::Append) => Move::Append(objects.datum(value()?)),
        (Model::Set, F::Add) => Move::Add(objects.datum(value()?)),
        (_, F::Add | F::Increment) => match (&invoke.value, invoke.f) {
            (Datum::Int(by), _) => Move::Increment(*by),
            (Datum::Nil, F::Increment) => Move::Increment(1),
            _ => return Err(needs("an integer")),
        },
        (_, F::Enqueue) => Move::Enqueue(objects.datum(value()?)),
        (_, F::Dequeue) => match result.map(|r| &r.value) {
            None => Move::DequeueAny,
            Some(Datum::Nil) => Move::Read(objects.state(State::Queue(Default::default()))),
            Some(element) => Move::Dequeue(objects.datum(element.clone())),
        },
        (_, F::Acquire) => Move::Acquire,
        (_, F::Release) => Move::Release,
    };
    Ok(Some(action))
}

/// The state an ok read saw; nil is the empty list or set.
fn read_state(model: Model, read: &RecordedOp, objects: &mut Objects) -> Result<u32, ParseError> {
    let state = match (model, &read.value) {
        (Model::ListAppend, Datum::Nil) => State::List(EMPTY_LIST),
        (Model::ListAppend, Datum::List(items)) => {
            let elements = datum_ids(objects, items);
            State::List(objects.list(&elements))
        }
        (Model::Set, Datum::Nil) => State::Set(Vec::new()),
        (Model::Set, Datum::Set(items) | Datum::List(items)) => {
            let mut members = datum_ids(objects, items);
            members.sort_unstable();
            members.dedup();
            State::Set(members)
        }
        (Model::Counter, Datum::Int(count)) => State::Count(*count),
        (_, Datum::Nil) if model.is_register() => State::Value(None),
        (_, value) if model.is_register() => objects.value(value.clone()),
        (_, value) => {
            let wanted = match model {
                Model::ListAppend => "a vector or nil",
                Model::Set => "a set, a vector or nil",
                _ => "an integer",
            };
            let reason = format!("an ok :read of a {} returns {wanted}, not {value}", model.noun());
            return Err(error(read.line, reason));
        }
    };
    Ok(objects.state(state))
}

fn datum_ids(objects: &mut Objects, items: &[Datum]) -> Vec<DatumId> {
    items.iter().map(|d| objects.datum(d.clone())).collect()
}

// ----------------------------------------------------------- explanation

/// Plain words for why `witness` cannot be linearized: an element read or
/// dequeued that no op ever put in, if there is one, else the general
/// sentence.
fn explain(
    history: &RecordedHistory,
    objects: &Objects,
    model: Model,
    subject: &str,
    all: &[ObjectOp],
    witness: &[ObjectOp],
) -> String {
    let put_in = |element: u64| {
        all.iter().any(|o| match o.action {
            Move::Append(e) | Move::Add(e) | Move::Enqueue(e) => u64::from(e) == element,
            _ => false,
        })
    };
    for op in witness {
        let mut observed = Vec::new();
        objects.footprint(op.action, &mut observed);
        let Some(&missing) = observed.iter().find(|&&t| t != WHOLE_OBJECT && !put_in(t)) else { continue };
        let element = objects.datum_of(DatumId::try_from(missing).expect("element tokens are datum ids"));
        let result = op.completion.map_or(Datum::Nil, |p| history.ops[p].value.clone());
        let what = format!("{} of {subject} returned {result}", history.ops[op.call].f.name());
        let (verb, done) = match model {
            Model::ListAppend => (F::Append, "appended"),
            Model::Set => (F::Add, "added"),
            _ => (F::Enqueue, "enqueued"),
        };
        let tried = history.ops.iter().any(|o| o.f == verb && o.value == *element && o.kind == OpType::Fail);
        return if tried {
            format!("{what}, but the only {} of {element} failed, so it never took effect.", verb.name())
        } else {
            format!("{what}, but no operation ever {done} {element}.")
        };
    }
    format!(
        "No order of these {} operations on {subject} respects both their real-time order \
         and the semantics of a {}.",
        witness.len(),
        model.noun()
    )
}
