//! The register family: one register (read, write, compare-and-set) per
//! key, over integer values. This is the fast path: the simulator's
//! histories, and any register or key-value history once its keys and
//! values are interned as integers, are checked here.

use quorum_core::{Key, Value};

use super::search::{splitmix64, FastMap, Object, Operation, Token};
use crate::datum::Datum;
use crate::history::{History, OpType, OpValue, F};

/// An operation on a register.
pub(crate) type RegisterOp = Operation<Action>;

/// What an op does to a register, with its observed result for reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// A read that returned this value (`None`: nil).
    Read(Option<Value>),
    Write(Value),
    Cas {
        expected: Value,
        new: Value,
    },
}

impl Action {
    /// The value this op requires the register to hold, if any.
    fn observes(self) -> Option<Value> {
        match self {
            Action::Read(seen) => seen,
            Action::Cas { expected, .. } => Some(expected),
            Action::Write(_) => None,
        }
    }

    /// The value this op stores, if any.
    fn writes(self) -> Option<Value> {
        match self {
            Action::Write(value) | Action::Cas { new: value, .. } => Some(value),
            Action::Read(_) => None,
        }
    }

    /// The register after this op, or `None` if it cannot happen in `state`.
    fn step(self, state: Option<Value>) -> Option<Option<Value>> {
        match self {
            Action::Read(seen) => (seen == state).then_some(state),
            Action::Write(value) => Some(Some(value)),
            Action::Cas { expected, new } => (state == Some(expected)).then_some(Some(new)),
        }
    }
}

/// A register starting as nil; a cas succeeds only if the register holds
/// its expected value (nil never matches).
#[derive(Clone, Copy)]
pub(crate) struct Register;

impl Object for Register {
    type State = Option<Value>;
    type Action = Action;

    fn initial(&self) -> Option<Value> {
        None
    }

    fn step(&mut self, state: Option<Value>, action: Action) -> Option<Option<Value>> {
        action.step(state)
    }

    fn is_pure(&self, action: Action) -> bool {
        matches!(action, Action::Read(_))
    }

    fn fingerprint(state: Option<Value>) -> u64 {
        match state {
            None => 0x5555_5555_5555_5555,
            Some(v) => splitmix64(v ^ 0xa5a5_a5a5),
        }
    }

    /// A write of `v` writes token `v`; a read of `v` and a cas expecting
    /// `v` observe it. Restricting a linearization to a closed subset keeps
    /// every kept observer after a kept writer of its value and before any
    /// other kept write, so the subset stays legal.
    fn footprint(&self, action: Action, observes: &mut Vec<Token>) -> Option<Token> {
        observes.extend(action.observes());
        action.writes()
    }
}

/// indeterminate, malformed ops (a write without a value) skipped.
pub(crate) fn extract_operations(history: &History) -> Vec<RegisterOp> {
    let mut pending = Pending::new(history.ops.len());
    let mut completion_of: Vec<Option<usize>> = vec![None; history.ops.len()];
    for (position, op) in history.ops.iter().enumerate() {
        match op.kind {
            OpType::Invoke => pending.insert(op.process, position),
            _ => {
                if let Some(call) = pending.take(op.process) {
                    completion_of[call] = Some(position);
                }
            }
        }
    }
    let mut operations = Vec::with_capacity(history.ops.len() / 2 + 1);
    for (call, invoke) in history.ops.iter().enumerate() {
        if invoke.kind != OpType::Invoke {
            continue;
        }
        let completion = completion_of[call].map(|p| (p, &history.ops[p]));
        let kind = completion.map_or(OpType::Info, |(_, c)| c.kind);
        if kind == OpType::Fail {
            continue;
        }
        let action = match (invoke.f, invoke.value) {
            (F::Read, _) if kind != OpType::Ok => continue,
            (F::Read, _) => match completion.map(|(_, c)| c.value) {
                Some(OpValue::One(v)) => Action::Read(Some(v)),
                Some(OpValue::Nil) => Action::Read(None),
                _ => continue,
            },
            (F::Write, OpValue::One(value)) => Action::Write(value),
            (F::Cas, OpValue::Pair([expected, new])) => Action::Cas { expected, new },
            _ => continue,
        };
        let ret = if kind == OpType::Ok { completion.map(|(p, _)| p) } else { None };
        operations.push(Operation {
            call,
            ret,
            completion: completion.map(|(p, _)| p),
            key: invoke.key,
            action,
        });
    }
    operations
}
/// Each process's pending invoke while a history is walked in order: a
/// vector indexed by process for processes below the number of ops
/// (Jepsen's and ours are small numbers), a map for the others.
pub(crate) struct Pending {
    dense: Vec<usize>,
    sparse: FastMap<u64, usize>,
}

impl Pending {
    const NONE: usize = usize::MAX;

    pub(crate) fn new(ops: usize) -> Pending {
        Pending { dense: vec![Pending::NONE; ops + 1], sparse: FastMap::default() }
    }

    /// `process` invoked the op at `at` (replacing any op still pending).
    pub(crate) fn insert(&mut self, process: u64, at: usize) {
        match usize::try_from(process).ok().and_then(|p| self.dense.get_mut(p)) {
            Some(slot) => *slot = at,
            None => {
                self.sparse.insert(process, at);
            }
        }
    }

    /// The op `process` has pending, no longer pending.
    pub(crate) fn take(&mut self, process: u64) -> Option<usize> {
        match usize::try_from(process).ok().and_then(|p| self.dense.get_mut(p)) {
            Some(slot) => Some(std::mem::replace(slot, Pending::NONE)).filter(|&at| at != Pending::NONE),
            None => self.sparse.remove(&process),
        }
    }
}

/// How values and keys print in explanations. The simulator's are integers
/// and print as themselves; a history whose keys and values were interned
/// as integers (`recorded.rs`) prints the originals.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    /// `keys[k]` is key `k`'s datum; empty: keys are integers.
    pub(crate) keys: Vec<Datum>,
    /// `values[v]` is value `v`'s datum; empty: values are integers.
    pub(crate) values: Vec<Datum>,
}

impl Names {
    pub(crate) fn key(&self, key: Key) -> String {
        usize::try_from(key)
            .ok()
            .and_then(|k| self.keys.get(k))
            .map_or_else(|| key.to_string(), Datum::to_string)
    }

    fn value(&self, value: Value) -> String {
        usize::try_from(value)
            .ok()
            .and_then(|v| self.values.get(v))
            .map_or_else(|| value.to_string(), Datum::to_string)
    }

    fn show(&self, value: Option<Value>) -> String {
        value.map_or_else(|| "nil".to_string(), |v| self.value(v))
    }
}

/// What an explanation may consult: the raw events (for failed writes),
/// every op of the same register, the witness, how to print values, and
/// the key when the model is keyed.
pub(crate) struct Evidence<'a> {
    pub(crate) history: &'a History,
    pub(crate) all: &'a [RegisterOp],
    pub(crate) witness: &'a [RegisterOp],
    pub(crate) names: &'a Names,
    pub(crate) subject: String,
    pub(crate) key_filter: Option<Key>,
}

/// Plain words for why the witness cannot be linearized.
pub(crate) fn explain(evidence: &Evidence<'_>) -> String {
    let specific = evidence.witness.iter().find_map(|o| explain_one(evidence, o));
    specific.unwrap_or_else(|| {
        format!(
            "No order of these {} operations on {} respects both their real-time \
             order and the semantics of a register.",
            evidence.witness.len(),
            evidence.subject
        )
    })
}

fn explain_one(evidence: &Evidence<'_>, op: &RegisterOp) -> Option<String> {
    let Evidence { names, subject, .. } = evidence;
    let what = match op.action {
        Action::Read(seen) => format!("read of {subject} returned {}", names.show(seen)),
        Action::Cas { expected, new } => {
            format!("cas of {subject} from {} to {} succeeded", names.value(expected), names.value(new))
        }
        Action::Write(_) => return None,
    };
    let Some(observed) = op.action.observes() else {
        // A read of nil: was some write certainly complete before it began?
        let earlier = evidence
            .witness
            .iter()
            .find(|w| w.action.writes().is_some() && w.ret.is_some_and(|r| r < op.call))?;
        return Some(format!(
            "{what} although the write of {} had completed before the read began.",
            names.show(earlier.action.writes())
        ));
    };
    let writers: Vec<&RegisterOp> =
        evidence.all.iter().filter(|w| w.action.writes() == Some(observed)).collect();
    match writers[..] {
        [] => Some(explain_never_written(evidence, &what, observed)),
        [writer] => explain_single_writer(evidence, op, writer, &what, observed),
        _ => None,
    }
}

/// `what` observed a value no op that took effect wrote.
fn explain_never_written(evidence: &Evidence<'_>, what: &str, observed: Value) -> String {
    let failed = evidence.history.ops.iter().any(|e| {
        e.kind == OpType::Invoke
            && evidence.key_filter.is_none_or(|k| e.key == k)
            && match (e.f, e.value) {
                (F::Write, OpValue::One(v)) | (F::Cas, OpValue::Pair([_, v])) => v == observed,
                _ => false,
            }
    });
    let observed = evidence.names.value(observed);
    if failed {
        format!("{what}, but the only write of {observed} failed, so it never took effect.")
    } else {
        format!("{what}, but no operation ever wrote {observed}.")
    }
}

/// `op` (described by `what`) observed the value only `writer` wrote.
fn explain_single_writer(
    evidence: &Evidence<'_>,
    op: &RegisterOp,
    writer: &RegisterOp,
    what: &str,
    observed: Value,
) -> Option<String> {
    let names = evidence.names;
    let shown = names.value(observed);
    if op.ret.is_some_and(|r| r < writer.call) {
        return Some(format!("{what} before the write of {shown} was even invoked."));
    }
    let writer_done = writer.ret?;
    let noun = if matches!(op.action, Action::Read(_)) { "read" } else { "cas" };
    let overwrite = evidence.witness.iter().find(|o| {
        o.action.writes().is_some_and(|v| v != observed)
            && o.call > writer_done
            && o.ret.is_some_and(|r| r < op.call)
    });
    if let Some(overwrite) = overwrite {
        return Some(format!(
            "{what}, but the only write of {shown} was overwritten by {} before the {noun} began.",
            names.show(overwrite.action.writes()),
        ));
    }
    // An earlier read saw a newer value: the register went back in time.
    let newer = evidence.witness.iter().find_map(|earlier| {
        let Action::Read(Some(seen)) = earlier.action else { return None };
        let newer_writer = evidence.all.iter().find(|w| w.action.writes() == Some(seen))?;
        let finished_before = earlier.ret.is_some_and(|r| r < op.call);
        (seen != observed && finished_before && newer_writer.call > writer_done).then_some(seen)
    })?;
    Some(format!(
        "{what}, but a read that finished before the {noun} began had already returned \
         {}, which was written after {shown}.",
        names.value(newer)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_pairs_small_and_large_processes_alike() {
        let mut pending = Pending::new(4);
        for (process, at) in [(1, 10), (u64::MAX, 11), (4, 12), (5, 13)] {
            assert_eq!(pending.take(process), None, "nothing pending yet for {process}");
            pending.insert(process, at);
        }
        // A second invoke replaces the first, as a process has one op at a time.
        pending.insert(1, 14);
        assert_eq!([1, u64::MAX, 4, 5].map(|p| pending.take(p)), [Some(14), Some(11), Some(12), Some(13)]);
        assert_eq!([1, u64::MAX, 4, 5].map(|p| pending.take(p)), [None; 4], "each taken once");
    }
}
