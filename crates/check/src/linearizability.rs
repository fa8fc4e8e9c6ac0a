//! Linearizability of a client history against a register model.
//!
//! A history is linearizable (Herlihy & Wing 1990) if every operation can be
//! given a single instant between its invoke and its completion such that the
//! operations, run one at a time in that order, are a legal run of the model.
//! We search for that order with the algorithm of Wing & Gong (1993), as
//! improved by Lowe ("Testing for linearizability", 2017) and used by
//! Porcupine: the invoke and return events sit in one doubly linked list in
//! time order. Walking from its head, we *lift* an op (linearize it: apply it
//! to the model and unlink its two entries) whenever its invoke comes before
//! the first return still in the list and the model allows it; reaching a
//! return means that op was not linearized in time, so we backtrack to the
//! last lift and try the next candidate. Lowe's memoisation makes this
//! practical: a configuration is the *set* of linearized ops (a bitset) plus
//! the model state, and a configuration seen before is never explored again,
//! because what can follow depends on nothing else.
//!
//! Each key of a key-value store is an independent register, so for
//! [`Model::Kv`] the history is split by key and each sub-history is checked
//! alone: linearizability is local (Herlihy & Wing), and P-compositionality
//! (Horn & Kroening, "Faster linearizability checking via
//! P-compositionality", 2015) is the name for exploiting it in a checker.
//!
//! Indeterminate ops follow Knossos and Porcupine. A `fail` op did not
//! happen: it and its invoke are dropped. An `info` op, or an invoke that
//! never completes, has no return: it may take effect at any point after its
//! invoke, or never, so it has a call entry and no return entry and the
//! search succeeds once every `ok` op is linearized. An indeterminate read
//! has no effect and is dropped, and so is an indeterminate write or cas
//! whose new value no op ever observes: any linearization that contains it
//! stays legal without it.
//!
//! On failure the report carries a *witness*, a small subset of the failing
//! key's ops that is by itself not linearizable. It is found by cutting the
//! history after the furthest return the search could not get past (a prefix
//! of a linearizable history is linearizable, so that prefix fails too), then
//! removing ops while the rest still fails. Removal keeps the subset
//! *closed*: whenever it holds an op that observed value `v` (a read of `v`,
//! a cas expecting `v`), it holds every op that wrote `v`. Restricting any
//! linearization of the whole history to a closed subset leaves a legal
//! linearization of the subset, so a closed subset that fails proves the
//! whole history fails, and the witness never blames a read on a write that
//! was merely left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use quorum_core::{Key, Value};
use serde::Serialize;

use crate::history::{History, Op, OpType, OpValue, F};

/// The sequential specification the history is checked against. Every
/// register starts as nil (`None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Model {
    /// One register holding every op regardless of `Op::key`: read and
    /// write (a cas in the history is judged as in [`Model::CasRegister`]).
    Register,
    /// One register with read, write and compare-and-set. A cas succeeds
    /// only if the register holds its expected value; nil never matches.
    CasRegister,
    /// One independent cas register per `Op::key`, each checked alone.
    Kv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Outcome {
    Linearizable,
    NotLinearizable,
    /// The search budget ran out before an answer.
    Unknown,
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    /// For [`Model::Kv`]: the key the verdict is about (the smallest failing
    /// or undecided key). `None` for the single-register models and for a
    /// linearizable key-value history.
    pub key: Option<Key>,
    /// When not linearizable: the invoke and completion events of a small
    /// subset of ops that by itself cannot be linearized, in history order.
    pub witness: Vec<Op>,
    /// One or two sentences in plain words.
    pub explanation: String,
    /// Configurations explored by the search, over every key, excluding the
    /// work spent shrinking the witness.
    pub states_explored: u64,
}

/// Default search budget per key: enough for any realistic workload history.
pub const DEFAULT_MAX_STATES: u64 = 2_000_000;

/// Budget for shrinking a witness, in explored configurations over all
/// attempts. Deterministic, so the same history always gives the same
/// witness.
const SHRINK_MAX_STATES: u64 = 4_000_000;
/// Budget for one attempt while shrinking.
const SHRINK_ATTEMPT_MAX_STATES: u64 = 200_000;

/// Check `history` against `model` with [`DEFAULT_MAX_STATES`] per key.
pub fn check(history: &History, model: Model) -> Report {
    check_with_budget(history, model, DEFAULT_MAX_STATES)
}

/// Check `history` against `model`, giving up with [`Outcome::Unknown`] once
/// the search of one key (or of the single register) has explored
/// `max_states` configurations.
///
/// The history need not be well formed: a completion with no pending invoke
/// is ignored, and an invoke on a process that already has a pending op
/// leaves that earlier op indeterminate. [`crate::parse::parse_history`]
/// rejects such histories up front.
pub fn check_with_budget(history: &History, model: Model, max_states: u64) -> Report {
    let operations = extract_operations(history);
    let mut groups: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
    for operation in operations {
        let group = if model == Model::Kv { operation.key } else { 0 };
        groups.entry(group).or_default().push(operation);
    }
    let keyed = model == Model::Kv;
    let mut states_explored = 0;
    for (&key, ops) in &groups {
        let ops = prune_unobserved_indeterminate(ops.clone());
        let (result, explored) = search(&ops, max_states);
        states_explored += explored;
        let subject = if keyed { format!("key {key}") } else { "the register".to_string() };
        match result {
            SearchResult::Linearizable => {}
            SearchResult::Unknown => {
                return Report {
                    outcome: Outcome::Unknown,
                    key: keyed.then_some(key),
                    witness: Vec::new(),
                    explanation: format!(
                        "The search budget of {max_states} states ran out on {subject} \
                         before finding a linearization or proving there is none."
                    ),
                    states_explored,
                };
            }
            SearchResult::NotLinearizable { furthest_return } => {
                let witness_ops = shrink(&ops, furthest_return);
                let key_filter = keyed.then_some(key);
                let explanation = explain(history, &witness_ops, &ops, &subject, key_filter);
                return Report {
                    outcome: Outcome::NotLinearizable,
                    key: keyed.then_some(key),
                    witness: witness_events(history, &witness_ops),
                    explanation,
                    states_explored,
                };
            }
        }
    }
    let total = history.ops.iter().filter(|op| op.kind == OpType::Invoke).count();
    let keys = if keyed { format!(" on {} keys", groups.len()) } else { String::new() };
    Report {
        outcome: Outcome::Linearizable,
        key: None,
        witness: Vec::new(),
        explanation: format!("All {total} operations{keys} are linearizable."),
        states_explored,
    }
}

// ------------------------------------------------------------ operations

/// What an op does to a register, with its observed result for reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
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

/// One operation as the search sees it: event positions in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Operation {
    /// Position of the invoke event.
    call: usize,
    /// Position of the `ok` completion; `None` for an indeterminate op.
    ret: Option<usize>,
    /// Position of the completion event (`ok` or `info`), for the witness.
    completion: Option<usize>,
    key: Key,
    action: Action,
}

impl Operation {
    fn is_indeterminate(&self) -> bool {
        self.ret.is_none()
    }
}

/// Pair invokes with completions by process and turn them into operations,
/// in invoke order: fails and indeterminate reads dropped, unfinished ops
/// indeterminate, malformed ops (a write without a value) skipped.
fn extract_operations(history: &History) -> Vec<Operation> {
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut completion_of: Vec<Option<usize>> = vec![None; history.ops.len()];
    for (position, op) in history.ops.iter().enumerate() {
        match op.kind {
            OpType::Invoke => {
                pending.insert(op.process, position);
            }
            _ => {
                if let Some(call) = pending.remove(&op.process) {
                    completion_of[call] = Some(position);
                }
            }
        }
    }
    let mut operations = Vec::new();
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

/// Drop indeterminate writes and cas ops whose new value no op observes:
/// they can always be left out of a linearization (see the module doc).
fn prune_unobserved_indeterminate(mut ops: Vec<Operation>) -> Vec<Operation> {
    loop {
        let observed: BTreeSet<Value> = ops.iter().filter_map(|o| o.action.observes()).collect();
        let before = ops.len();
        ops.retain(|o| !o.is_indeterminate() || o.action.writes().is_none_or(|v| observed.contains(&v)));
        if ops.len() == before {
            return ops;
        }
    }
}

// ------------------------------------------------------------ the search

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchResult {
    Linearizable,
    /// No linearization. `furthest_return` is the latest history position of
    /// a return the search could not get past: the prefix of the history up
    /// to it is already not linearizable.
    NotLinearizable {
        furthest_return: usize,
    },
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    position: usize,
    op: usize,
    is_return: bool,
}

/// Lowe's WGL over `ops` (one register). Returns the verdict and the number
/// of configurations explored.
fn search(ops: &[Operation], max_states: u64) -> (SearchResult, u64) {
    let mut search = Search::new(ops, max_states);
    let result = search.run();
    (result, search.explored)
}

/// One linearized op on the search stack.
#[derive(Clone, Copy, Debug)]
struct Lift {
    op: usize,
    /// The register before the op.
    before: Option<Value>,
    /// A read lifted because it was legal: no alternative needs exploring.
    forced: bool,
}

/// The state of one WGL search: the entry list, the stack of lifted ops and
/// the cache of configurations already explored.
struct Search<'a> {
    ops: &'a [Operation],
    entries: Vec<Entry>,
    /// Node 0 is the sentinel of a circular list; entry `i` is node `i + 1`.
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    return_node: Vec<Option<usize>>,
    linearized: Bitset,
    cache: Cache,
    state: Option<Value>,
    // Invariant: the ops on the stack are exactly the set bits of `linearized`.
    stack: Vec<Lift>,
    explored: u64,
    max_states: u64,
    furthest_return: usize,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [Operation], max_states: u64) -> Search<'a> {
        let mut entries: Vec<Entry> = Vec::with_capacity(ops.len() * 2);
        for (op, operation) in ops.iter().enumerate() {
            entries.push(Entry { position: operation.call, op, is_return: false });
            if let Some(ret) = operation.ret {
                entries.push(Entry { position: ret, op, is_return: true });
            }
        }
        entries.sort_by_key(|e| (e.position, e.is_return));
        let nodes = entries.len() + 1;
        let mut call_node = vec![0; ops.len()];
        let mut return_node = vec![None; ops.len()];
        for (i, entry) in entries.iter().enumerate() {
            if entry.is_return {
                return_node[entry.op] = Some(i + 1);
            } else {
                call_node[entry.op] = i + 1;
            }
        }
        let linearized = Bitset::new(ops.len());
        let cache = Cache::new(linearized.words.len());
        Search {
            ops,
            entries,
            next: (1..=nodes).map(|i| i % nodes).collect(),
            prev: (0..nodes).map(|i| (i + nodes - 1) % nodes).collect(),
            call_node,
            return_node,
            linearized,
            cache,
            state: None,
            stack: Vec::new(),
            explored: 0,
            max_states,
            furthest_return: 0,
        }
    }

    /// The search proper. After every lift, a first pass over the candidate
    /// window lifts every read that is legal now: a legal read may always be
    /// moved to the front of any continuation (it changes nothing, and its
    /// invoke precedes every pending return), so forcing it loses no
    /// linearization and removes the branching over subsets of concurrent
    /// reads. A second pass then tries writes and cas ops, backtracking as
    /// usual.
    fn run(&mut self) -> SearchResult {
        let mut node = self.next[0];
        let mut reads_pass = true;
        loop {
            let end_of_window = node == 0 || self.entries[node - 1].is_return;
            if reads_pass && end_of_window {
                reads_pass = false;
                node = self.next[0];
                continue;
            }
            if node == 0 {
                // Only call entries were passed: every ok op is linearized.
                return SearchResult::Linearizable;
            }
            let entry = self.entries[node - 1];
            if entry.is_return {
                self.furthest_return = self.furthest_return.max(entry.position);
                match self.backtrack() {
                    Some(resume) => node = resume,
                    None => return SearchResult::NotLinearizable { furthest_return: self.furthest_return },
                }
                continue;
            }
            let is_read = matches!(self.ops[entry.op].action, Action::Read(_));
            if is_read != reads_pass {
                // Reads pass: not a read. Second pass: a read, illegal here
                // since the reads pass lifted every legal one.
                node = self.next[node];
                continue;
            }
            match self.try_lift(entry.op, is_read) {
                Lifted::Yes => {
                    if self.explored > self.max_states {
                        return SearchResult::Unknown;
                    }
                    node = self.next[0];
                    reads_pass = true;
                }
                Lifted::Illegal => node = self.next[node],
                Lifted::Seen if is_read => match self.backtrack() {
                    // A forced read leads to an explored configuration, so
                    // this one fails too.
                    Some(resume) => {
                        node = resume;
                        reads_pass = false;
                    }
                    None => return SearchResult::NotLinearizable { furthest_return: self.furthest_return },
                },
                Lifted::Seen => node = self.next[node],
            }
        }
    }

    /// Linearize `op` now if the model allows it and the configuration is new.
    fn try_lift(&mut self, op: usize, forced: bool) -> Lifted {
        let Some(after) = self.ops[op].action.step(self.state) else {
            return Lifted::Illegal;
        };
        self.linearized.flip(op);
        let fingerprint = self.linearized.fingerprint ^ state_hash(after);
        if !self.cache.insert(fingerprint, &self.linearized.words, after) {
            self.linearized.flip(op);
            return Lifted::Seen;
        }
        self.explored += 1;
        self.stack.push(Lift { op, before: self.state, forced });
        self.state = after;
        unlink(&mut self.next, &mut self.prev, self.call_node[op]);
        if let Some(r) = self.return_node[op] {
            unlink(&mut self.next, &mut self.prev, r);
        }
        Lifted::Yes
    }

    /// Undo lifts down to and including the latest unforced one; the node to
    /// resume scanning from (after that op's call), or `None` if the stack
    /// ran out.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let lift = self.stack.pop()?;
            self.linearized.flip(lift.op);
            self.state = lift.before;
            // Relink in the reverse order of unlinking.
            if let Some(r) = self.return_node[lift.op] {
                relink(&mut self.next, &mut self.prev, r);
            }
            relink(&mut self.next, &mut self.prev, self.call_node[lift.op]);
            if !lift.forced {
                return Some(self.next[self.call_node[lift.op]]);
            }
        }
    }
}

enum Lifted {
    Yes,
    Illegal,
    Seen,
}

fn unlink(next: &mut [usize], prev: &mut [usize], node: usize) {
    next[prev[node]] = next[node];
    prev[next[node]] = prev[node];
}

/// Undo `unlink(node)`: valid because `node` keeps its own pointers and
/// unlinks are undone in reverse order (Knuth's dancing links).
fn relink(next: &mut [usize], prev: &mut [usize], node: usize) {
    next[prev[node]] = node;
    prev[next[node]] = node;
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn state_hash(state: Option<Value>) -> u64 {
    match state {
        None => 0x5555_5555_5555_5555,
        Some(v) => splitmix64(v ^ 0xa5a5_a5a5),
    }
}

/// The set of linearized ops, with an incrementally maintained Zobrist
/// fingerprint so a configuration hashes in O(1).
struct Bitset {
    words: Vec<u64>,
    fingerprint: u64,
}

impl Bitset {
    fn new(bits: usize) -> Bitset {
        Bitset { words: vec![0; bits.div_ceil(64).max(1)], fingerprint: 0 }
    }

    fn flip(&mut self, bit: usize) {
        self.words[bit / 64] ^= 1 << (bit % 64);
        self.fingerprint ^= splitmix64(bit as u64 + 1);
    }
}

/// A hasher that passes a precomputed 64-bit fingerprint through.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// Visited configurations, compared exactly (the fingerprint only buckets).
/// Configurations live in one arena to avoid an allocation per insert.
struct Cache {
    words: usize,
    bits: Vec<u64>,
    states: Vec<Option<Value>>,
    /// Next configuration in the same bucket, `u32::MAX` for none.
    chain: Vec<u32>,
    heads: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
}

impl Cache {
    fn new(words: usize) -> Cache {
        Cache { words, bits: Vec::new(), states: Vec::new(), chain: Vec::new(), heads: HashMap::default() }
    }

    /// Record a configuration; true if it was not seen before.
    fn insert(&mut self, fingerprint: u64, bits: &[u64], state: Option<Value>) -> bool {
        debug_assert_eq!(bits.len(), self.words);
        let head = self.heads.get(&fingerprint).copied().unwrap_or(u32::MAX);
        let mut at = head;
        while at != u32::MAX {
            let i = at as usize;
            if self.states[i] == state && self.bits[i * self.words..(i + 1) * self.words] == *bits {
                return false;
            }
            at = self.chain[i];
        }
        let index = u32::try_from(self.states.len()).expect("fewer than 2^32 configurations");
        self.bits.extend_from_slice(bits);
        self.states.push(state);
        self.chain.push(head);
        self.heads.insert(fingerprint, index);
        true
    }
}

// ------------------------------------------------------------ the witness

/// Does `ops` fail to linearize within `budget` (spending from it)?
fn fails(ops: &[Operation], budget: &mut u64) -> bool {
    let pruned = prune_unobserved_indeterminate(ops.to_vec());
    let limit = SHRINK_ATTEMPT_MAX_STATES.min(*budget);
    let (result, explored) = search(&pruned, limit);
    *budget = budget.saturating_sub(explored);
    matches!(result, SearchResult::NotLinearizable { .. })
}

/// The ops of `ops` up to history position `end`: later invokes dropped,
/// returns after `end` made indeterminate (and such reads dropped).
fn prefix(ops: &[Operation], end: usize) -> Vec<Operation> {
    ops.iter()
        .filter(|o| o.call <= end)
        .filter_map(|o| match o.ret {
            Some(ret) if ret > end => match o.action {
                Action::Read(_) => None,
                _ => Some(Operation { ret: None, ..*o }),
            },
            _ => Some(*o),
        })
        .collect()
}

/// Remove the ops at `remove` from `set`, and then every op that observes a
/// value no longer written by any op left (until none), keeping the set
/// closed relative to `base`.
fn remove_closed(set: &[Operation], remove: &BTreeSet<usize>) -> Vec<Operation> {
    let mut kept: Vec<Operation> =
        set.iter().enumerate().filter(|(i, _)| !remove.contains(i)).map(|(_, o)| *o).collect();
    let removed_values: BTreeSet<Value> = remove.iter().filter_map(|&i| set[i].action.writes()).collect();
    let mut lost = removed_values;
    while !lost.is_empty() {
        let mut next_lost = BTreeSet::new();
        kept.retain(|o| {
            let drop = o.action.observes().is_some_and(|v| lost.contains(&v));
            if drop {
                next_lost.extend(o.action.writes());
            }
            !drop
        });
        lost = next_lost;
    }
    kept
}

/// A small closed subset of `ops` (which fail) that still fails.
fn shrink(ops: &[Operation], furthest_return: usize) -> Vec<Operation> {
    let mut budget = SHRINK_MAX_STATES;
    // The prefix up to the furthest blocked return fails (module doc); the
    // check below only guards that argument, with the main search's budget.
    let mut current = prefix(ops, furthest_return);
    let pruned = prune_unobserved_indeterminate(current.clone());
    if !matches!(search(&pruned, DEFAULT_MAX_STATES).0, SearchResult::NotLinearizable { .. }) {
        current = ops.to_vec();
    }
    current = trim_front(current, &mut budget);
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut changed = false;
        let mut start = 0;
        while start < current.len() && budget > 0 {
            let remove: BTreeSet<usize> = (start..(start + chunk).min(current.len())).collect();
            let candidate = remove_closed(&current, &remove);
            if candidate.len() < current.len() && fails(&candidate, &mut budget) {
                current = candidate;
                changed = true;
            } else {
                start += chunk;
            }
        }
        if budget == 0 || (chunk == 1 && !changed) {
            return current;
        }
        if !changed {
            chunk = chunk.div_ceil(2);
        }
    }
}

/// Drop the ops that completed before some point, choosing the point by
/// binary search over completion positions.
fn trim_front(current: Vec<Operation>, budget: &mut u64) -> Vec<Operation> {
    let mut returns: Vec<usize> = current.iter().filter_map(|o| o.ret).collect();
    returns.sort_unstable();
    let cut = |before: usize| -> Vec<Operation> {
        let remove: BTreeSet<usize> = current
            .iter()
            .enumerate()
            .filter(|(_, o)| o.ret.is_some_and(|r| r < before))
            .map(|(i, _)| i)
            .collect();
        remove_closed(&current, &remove)
    };
    // Invariant: cutting before returns[lo] still fails (lo = 0 cuts nothing).
    let (mut lo, mut hi) = (0, returns.len());
    let mut best = current.clone();
    while lo + 1 < hi && *budget > 0 {
        let mid = (lo + hi) / 2;
        let candidate = cut(returns[mid]);
        if fails(&candidate, budget) {
            lo = mid;
            best = candidate;
        } else {
            hi = mid;
        }
    }
    best
}

fn witness_events(history: &History, ops: &[Operation]) -> Vec<Op> {
    let mut positions: Vec<usize> =
        ops.iter().flat_map(|o| std::iter::once(o.call).chain(o.completion)).collect();
    positions.sort_unstable();
    positions.dedup();
    positions.into_iter().map(|p| history.ops[p]).collect()
}

// ------------------------------------------------------------ explanation

fn show(value: Option<Value>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

/// Plain words for why `witness` cannot be linearized; `all` is every op of
/// the same register, `history` the raw events (for failed writes), of key
/// `key_filter` when the model is keyed.
fn explain(
    history: &History,
    witness: &[Operation],
    all: &[Operation],
    subject: &str,
    key_filter: Option<Key>,
) -> String {
    let specific = witness.iter().find_map(|o| explain_one(history, o, witness, all, subject, key_filter));
    specific.unwrap_or_else(|| {
        format!(
            "No order of these {} operations on {subject} respects both their real-time \
             order and the semantics of a register.",
            witness.len()
        )
    })
}

fn explain_one(
    history: &History,
    op: &Operation,
    witness: &[Operation],
    all: &[Operation],
    subject: &str,
    key_filter: Option<Key>,
) -> Option<String> {
    let what = match op.action {
        Action::Read(seen) => format!("read of {subject} returned {}", show(seen)),
        Action::Cas { expected, new } => {
            format!("cas of {subject} from {expected} to {new} succeeded")
        }
        Action::Write(_) => return None,
    };
    let Some(observed) = op.action.observes() else {
        // A read of nil: was some write certainly complete before it began?
        let earlier =
            witness.iter().find(|w| w.action.writes().is_some() && w.ret.is_some_and(|r| r < op.call))?;
        return Some(format!(
            "{what} although the write of {} had completed before the read began.",
            show(earlier.action.writes())
        ));
    };
    let writers: Vec<&Operation> = all.iter().filter(|w| w.action.writes() == Some(observed)).collect();
    if writers.is_empty() {
        let failed = history.ops.iter().any(|e| {
            e.kind == OpType::Invoke
                && key_filter.is_none_or(|k| e.key == k)
                && match (e.f, e.value) {
                    (F::Write, OpValue::One(v)) | (F::Cas, OpValue::Pair([_, v])) => v == observed,
                    _ => false,
                }
        });
        return Some(if failed {
            format!("{what}, but the only write of {observed} failed, so it never took effect.")
        } else {
            format!("{what}, but no operation ever wrote {observed}.")
        });
    }
    if let [writer] = writers[..] {
        if op.ret.is_some_and(|r| r < writer.call) {
            return Some(format!("{what} before the write of {observed} was even invoked."));
        }
        let writer_done = writer.ret?;
        let noun = if matches!(op.action, Action::Read(_)) { "read" } else { "cas" };
        let overwrite = witness.iter().find(|o| {
            o.action.writes().is_some_and(|v| v != observed)
                && o.call > writer_done
                && o.ret.is_some_and(|r| r < op.call)
        });
        if let Some(overwrite) = overwrite {
            return Some(format!(
                "{what}, but the only write of {observed} was overwritten by {} before the {noun} began.",
                show(overwrite.action.writes()),
            ));
        }
        // An earlier read saw a newer value: the register went back in time.
        let newer = witness.iter().find_map(|earlier| {
            let Action::Read(Some(seen)) = earlier.action else { return None };
            let newer_writer = all.iter().find(|w| w.action.writes() == Some(seen))?;
            let finished_before = earlier.ret.is_some_and(|r| r < op.call);
            (seen != observed && finished_before && newer_writer.call > writer_done).then_some(seen)
        })?;
        return Some(format!(
            "{what}, but a read that finished before the {noun} began had already returned \
             {newer}, which was written after {observed}."
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_history;

    fn history(text: &str) -> History {
        parse_history(text).expect("test history parses")
    }

    fn assert_linearizable(text: &str, model: Model) {
        let report = check(&history(text), model);
        assert_eq!(report.outcome, Outcome::Linearizable, "{report:#?}");
    }

    fn assert_not_linearizable(text: &str, model: Model) -> Report {
        let report = check(&history(text), model);
        assert_eq!(report.outcome, Outcome::NotLinearizable, "{report:#?}");
        assert!(!report.witness.is_empty());
        // The witness is itself a history that fails.
        let again = check(&History { ops: report.witness.clone() }, model);
        assert_eq!(again.outcome, Outcome::NotLinearizable, "witness must fail: {report:#?}");
        report
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_linearizable("", Model::Kv);
    }

    #[test]
    fn sequential_write_then_read_is_linearizable() {
        assert_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :ok :f :write :value 1 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value 1 :process 1}",
            Model::Register,
        );
    }

    #[test]
    fn concurrent_read_may_see_old_or_new_value() {
        for seen in ["nil", "1"] {
            assert_linearizable(
                &format!(
                    "{{:type :invoke :f :write :value 1 :process 0}}
                     {{:type :invoke :f :read :process 1}}
                     {{:type :ok :f :read :value {seen} :process 1}}
                     {{:type :ok :f :write :value 1 :process 0}}"
                ),
                Model::Register,
            );
        }
    }

    #[test]
    fn stale_read_is_caught_and_explained() {
        let report = assert_not_linearizable(
            "{:type :invoke :f :write :value 7 :process 0 :key 3}
             {:type :ok :f :write :value 7 :process 0 :key 3}
             {:type :invoke :f :read :process 2 :key 1}
             {:type :ok :f :read :value nil :process 2 :key 1}
             {:type :invoke :f :write :value 9 :process 1 :key 3}
             {:type :ok :f :write :value 9 :process 1 :key 3}
             {:type :invoke :f :read :process 0 :key 3}
             {:type :ok :f :read :value 7 :process 0 :key 3}",
            Model::Kv,
        );
        assert_eq!(report.key, Some(3));
        assert_eq!(report.witness.len(), 6);
        assert_eq!(
            report.explanation,
            "read of key 3 returned 7, but the only write of 7 was overwritten by 9 before the read began."
        );
    }

    #[test]
    fn read_after_write_across_clients_must_see_it() {
        let report = assert_not_linearizable(
            "{:type :invoke :f :write :value 4 :process 0}
             {:type :ok :f :write :value 4 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value nil :process 1}",
            Model::Register,
        );
        assert!(
            report.explanation.contains("returned nil although the write of 4"),
            "{}",
            report.explanation
        );
    }

    #[test]
    fn lost_write_is_caught() {
        // Two sequential writes, then a read sees the first: the second is lost.
        assert_not_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :ok :f :write :value 1 :process 0}
             {:type :invoke :f :write :value 2 :process 1}
             {:type :ok :f :write :value 2 :process 1}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 1 :process 2}",
            Model::Register,
        );
    }

    #[test]
    fn cas_on_wrong_value_is_caught() {
        let report = assert_not_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :ok :f :write :value 1 :process 0}
             {:type :invoke :f :cas :value [5 6] :process 1}
             {:type :ok :f :cas :value [5 6] :process 1}",
            Model::CasRegister,
        );
        assert!(report.explanation.contains("no operation ever wrote 5"), "{}", report.explanation);
        // cas from nil never succeeds.
        assert_not_linearizable(
            "{:type :invoke :f :cas :value [0 6] :process 1}
             {:type :ok :f :cas :value [0 6] :process 1}",
            Model::CasRegister,
        );
    }

    #[test]
    fn cas_chain_is_linearizable() {
        assert_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :ok :f :write :value 1 :process 0}
             {:type :invoke :f :cas :value [1 2] :process 1}
             {:type :invoke :f :cas :value [2 3] :process 0}
             {:type :ok :f :cas :value [2 3] :process 0}
             {:type :ok :f :cas :value [1 2] :process 1}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 3 :process 2}",
            Model::CasRegister,
        );
    }

    #[test]
    fn info_write_that_later_appears_is_linearizable() {
        assert_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :info :f :write :value 1 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value nil :process 1}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 1 :process 2}",
            Model::Register,
        );
    }

    #[test]
    fn info_write_that_never_appears_is_linearizable() {
        assert_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :info :f :write :value 1 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value nil :process 1}
             {:type :invoke :f :write :value 2 :process 1}
             {:type :ok :f :write :value 2 :process 1}",
            Model::Register,
        );
    }

    #[test]
    fn invoke_without_completion_is_indeterminate() {
        assert_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value 1 :process 1}",
            Model::Register,
        );
    }

    #[test]
    fn failed_write_whose_value_is_read_is_not_linearizable() {
        let report = assert_not_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :fail :f :write :value 1 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value 1 :process 1}",
            Model::Register,
        );
        assert!(report.explanation.contains("only write of 1 failed"), "{}", report.explanation);
    }

    #[test]
    fn info_write_cannot_take_effect_before_its_invoke() {
        let report = assert_not_linearizable(
            "{:type :invoke :f :read :process 1}
             {:type :ok :f :read :value 1 :process 1}
             {:type :invoke :f :write :value 1 :process 0}
             {:type :info :f :write :value 1 :process 0}",
            Model::Register,
        );
        assert!(report.explanation.contains("before the write of 1 was even invoked"));
    }

    #[test]
    fn values_flip_flopping_between_reads_is_caught() {
        // Two concurrent writes; a reader then sees 2, then 1, then 2.
        assert_not_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :invoke :f :write :value 2 :process 1}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 2 :process 2}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 1 :process 2}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 2 :process 2}
             {:type :ok :f :write :value 1 :process 0}
             {:type :ok :f :write :value 2 :process 1}",
            Model::Register,
        );
    }

    #[test]
    fn register_going_back_in_time_is_caught_and_explained() {
        let report = assert_not_linearizable(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :ok :f :write :value 1 :process 0}
             {:type :invoke :f :write :value 2 :process 0}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value 2 :process 1}
             {:type :invoke :f :read :process 1}
             {:type :ok :f :read :value 1 :process 1}
             {:type :ok :f :write :value 2 :process 0}",
            Model::Register,
        );
        assert_eq!(report.witness.len(), 8);
        assert!(
            report.explanation.contains("had already returned 2, which was written after 1"),
            "{report:#?}"
        );
    }

    #[test]
    fn keys_are_independent_in_kv_but_not_in_register() {
        let text = "{:type :invoke :f :write :value 1 :process 0 :key 1}
                    {:type :ok :f :write :value 1 :process 0 :key 1}
                    {:type :invoke :f :read :process 1 :key 2}
                    {:type :ok :f :read :value nil :process 1 :key 2}";
        assert_linearizable(text, Model::Kv);
        assert_not_linearizable(text, Model::Register);
    }

    #[test]
    fn budget_exhaustion_is_unknown() {
        let h = crate::gen::generate_history(1, 400, 6, 1);
        let report = check_with_budget(&h, Model::CasRegister, 5);
        assert_eq!(report.outcome, Outcome::Unknown);
        assert!(report.states_explored > 5);
    }

    #[test]
    fn witness_of_a_long_history_is_small() {
        let mut h = crate::gen::generate_history(7, 4000, 8, 4);
        assert!(crate::gen::inject_stale_read(&mut h, 7));
        let report = check(&h, Model::Kv);
        assert_eq!(report.outcome, Outcome::NotLinearizable);
        assert!(report.witness.len() <= 12, "{report:#?}");
        let again = check(&History { ops: report.witness.clone() }, Model::Kv);
        assert_eq!(again.outcome, Outcome::NotLinearizable);
    }
}
