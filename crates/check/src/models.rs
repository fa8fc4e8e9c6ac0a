//! The models a history can be checked against: sequential specifications,
//! in Knossos's sense, each an object that starts empty and changes one op
//! at a time.
//!
//! | model | ops (`:f`) | state | a read returns |
//! | --- | --- | --- | --- |
//! | register | read, write, cas | one value, nil at first | the value |
//! | cas-register | read, write, cas | as register | the value |
//! | kv | read, write, cas, append | one register per key; append concatenates strings | the key's value |
//! | list-append | append, read | one list per key (Elle's list-append) | the list, as a vector (nil: empty) |
//! | set | add, read | one set per key | the set, as a set or vector |
//! | counter | add or increment, read | one integer per key, 0 at first | the integer |
//! | queue | enqueue, dequeue | one FIFO queue per key | dequeue: the head (nil: it was empty) |
//! | mutex | acquire, release | one lock per key, free at first | — |
//!
//! A cas succeeds only if the register holds its expected value (nil never
//! matches). The register and cas-register models ignore keys: the whole
//! history is one register (a cas in a `register` history is judged as in
//! `cas-register`). Every other model checks each key as an independent
//! object (ops without a key are one more object), which is sound because
//! linearizability is local. In the mutex, acquiring a held lock and
//! releasing a free one are illegal, whoever holds it (as in Knossos). A
//! dequeue that fails did not happen (Jepsen's queues fail a dequeue of an
//! empty queue); an indeterminate one may have taken the head.
//!
//! [`choose`] picks a model from the ops a history uses when none is given.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

use crate::datum::Datum;
use crate::history::{OpType, F};
use crate::parse::{error, Format, ParseError, RecordedHistory, RecordedOp};

/// A sequential specification (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Model {
    /// One register holding every op regardless of its key: read and
    /// write (a cas in the history is judged as in [`Model::CasRegister`]).
    Register,
    /// One register with read, write and compare-and-set.
    CasRegister,
    /// One independent cas register per key, each checked alone; append
    /// concatenates strings (Porcupine's key-value store).
    Kv,
    /// One list per key: append an element, read the whole list.
    ListAppend,
    /// One set per key: add an element, read the whole set.
    Set,
    /// One integer per key: add to it, read it.
    Counter,
    /// One FIFO queue per key: enqueue, dequeue the head.
    Queue,
    /// One lock per key: acquire, release.
    Mutex,
}

impl Model {
    pub const ALL: [Model; 8] = [
        Model::Register,
        Model::CasRegister,
        Model::Kv,
        Model::ListAppend,
        Model::Set,
        Model::Counter,
        Model::Queue,
        Model::Mutex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::CasRegister => "cas-register",
            Model::Kv => "kv",
            Model::ListAppend => "list-append",
            Model::Set => "set",
            Model::Counter => "counter",
            Model::Queue => "queue",
            Model::Mutex => "mutex",
        }
    }

    /// What one object of the model is, in a word or two.
    pub fn noun(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::CasRegister => "compare-and-set register",
            Model::Kv => "key-value store",
            Model::ListAppend => "list",
            Model::Set => "set",
            Model::Counter => "counter",
            Model::Queue => "FIFO queue",
            Model::Mutex => "mutex",
        }
    }

    /// The ops (`:f`) the model takes.
    pub fn functions(self) -> &'static [F] {
        match self {
            Model::Register | Model::CasRegister => &[F::Read, F::Write, F::Cas],
            Model::Kv => &[F::Read, F::Write, F::Cas, F::Append],
            Model::ListAppend => &[F::Append, F::Read],
            Model::Set => &[F::Add, F::Read],
            Model::Counter => &[F::Add, F::Increment, F::Read],
            Model::Queue => &[F::Enqueue, F::Dequeue],
            Model::Mutex => &[F::Acquire, F::Release],
        }
    }

    /// The register family, whose integer histories the simulator writes.
    pub fn is_register(self) -> bool {
        matches!(self, Model::Register | Model::CasRegister | Model::Kv)
    }

    /// True if the model checks each key alone.
    pub fn is_keyed(self) -> bool {
        !matches!(self, Model::Register | Model::CasRegister)
    }

    /// An error naming `line` unless the model takes `f`.
    pub fn takes(self, f: F, line: usize) -> Result<(), ParseError> {
        if self.functions().contains(&f) {
            return Ok(());
        }
        let names: Vec<String> = self.functions().iter().map(|f| format!(":{}", f.name())).collect();
        let reason =
            format!("the {} model has no :{} (it takes {})", self.name(), f.name(), names.join(", "));
        Err(error(line, reason))
    }
}

impl FromStr for Model {
    type Err = String;

    fn from_str(name: &str) -> Result<Model, String> {
        Model::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
            format!("unknown model '{name}' ({})", names.join(", "))
        })
    }
}

/// A model chosen from a history, and why, in a phrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub model: Model,
    pub reason: String,
}

/// The model that fits the ops `history` uses: the one model that takes
/// them all, and among several, the one their values point to (a read that
/// returned a vector is a list's, a set a set's). An error names the first
/// line whose op no model takes together with those before it.
pub fn choose(history: &RecordedHistory) -> Result<Choice, ParseError> {
    if history.format == Format::PorcupineKv {
        let reason = "Porcupine's key-value format".to_string();
        return Ok(Choice { model: Model::Kv, reason });
    }
    let mut first_line: BTreeMap<&'static str, (usize, F)> = BTreeMap::new();
    let mut candidates: Vec<Model> = Model::ALL.to_vec();
    for op in &history.ops {
        let fitting: Vec<Model> =
            candidates.iter().copied().filter(|m| m.functions().contains(&op.f)).collect();
        if fitting.is_empty() {
            let earlier: Vec<String> =
                first_line.values().map(|(line, f)| format!(":{} (line {line})", f.name())).collect();
            let reason = format!(
                ":{} does not go with {} in any one model; choose one with --model",
                op.f.name(),
                earlier.join(", ")
            );
            return Err(error(op.line, reason));
        }
        candidates = fitting;
        first_line.entry(op.f.name()).or_insert((op.line, op.f));
    }
    let model = prefer(history, &candidates);
    let mut seen: Vec<&str> =
        F::ALL.iter().map(|f| f.name()).filter(|f| first_line.contains_key(f)).collect();
    if seen.is_empty() {
        seen.push("none");
    }
    let keys = if history.ops.iter().any(|op| op.key.is_some()) { ", with keys" } else { "" };
    let reason = format!("chosen from the ops seen: {}{keys}", seen.join(", "));
    Ok(Choice { model, reason })
}

/// Among models that all take the history's ops, the one its values and
/// keys suggest.
fn prefer(history: &RecordedHistory, candidates: &[Model]) -> Model {
    let has = |model: Model| candidates.contains(&model);
    let reads_returned = |pick: fn(&Datum) -> bool| {
        history.ops.iter().any(|op| op.kind == OpType::Ok && op.f == F::Read && pick(&op.value))
    };
    let any = |pick: &dyn Fn(&RecordedOp) -> bool| history.ops.iter().any(pick);
    if has(Model::ListAppend) && reads_returned(|d| matches!(d, Datum::List(_))) {
        Model::ListAppend
    } else if has(Model::Set) && reads_returned(|d| matches!(d, Datum::Set(_) | Datum::List(_))) {
        Model::Set
    } else if has(Model::Register) {
        // Only reads, writes and cas: the register family.
        if any(&|op| op.key.is_some()) {
            Model::Kv
        } else if any(&|op| op.f == F::Cas) {
            Model::CasRegister
        } else {
            Model::Register
        }
    } else if has(Model::Kv) && has(Model::ListAppend) {
        let strings = any(&|op| matches!(op.value, Datum::Str(_)));
        if strings {
            Model::Kv
        } else {
            Model::ListAppend
        }
    } else if has(Model::Set) && has(Model::Counter) {
        let non_integers =
            any(&|op| op.f == F::Add && op.kind == OpType::Invoke && op.value.as_int().is_none());
        if non_integers {
            Model::Set
        } else {
            Model::Counter
        }
    } else {
        candidates[0]
    }
}
