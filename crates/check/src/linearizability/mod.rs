//! Linearizability of a client history against a model (a register, a
//! key-value store, a list, a set, a counter, a queue, a mutex: see
//! [`crate::models`]).
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
//! Each key of a key-value store is an independent register (and each key
//! of the other keyed models an independent list, set, ...), so for
//! [`Model::Kv`] and the others the history is split by key and each
//! sub-history is checked alone: linearizability is local (Herlihy & Wing),
//! and P-compositionality
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
//! a cas expecting `v`), it holds every op that wrote `v` (each model says
//! what its ops write and observe: `witness.rs`). Restricting any
//! linearization of the whole history to a closed subset leaves a legal
//! linearization of the subset, so a closed subset that fails proves the
//! whole history fails, and the witness never blames a read on a write that
//! was merely left out.
//!
//! The files: `search.rs` is the WGL loop over any `Object` (a state, a
//! step function); `register.rs` is the integer register that the
//! simulator's histories (and any register history, interned) are checked
//! against; `objects.rs` every other model, with interned states
//! (`text.rs` the strings that grow by appends);
//! `recorded.rs` turns a history as read from a file into either;
//! `witness.rs` shrinks a failing history and prunes indeterminate ops.

pub mod map;
mod objects;
mod recorded;
mod register;
mod search;
mod text;
mod witness;

use std::collections::BTreeMap;

use quorum_core::Key;
use serde::Serialize;

use crate::history::{History, Op, OpType};
pub use crate::models::Model;
pub use recorded::{check_recorded, check_recorded_with, Linearization, Verdict};
use register::{explain, extract_operations, Evidence, Names, Register, RegisterOp};
use search::{search, search_cancellable, search_order, Cancel, Object, Operation, SearchResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use witness::{prune_unobserved_indeterminate, shrink, witness_positions};

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
    /// For [`Model::Kv`]: the key the verdict is about (the first found
    /// failing, the cheapest to prove wrong, or else the smallest
    /// undecided). `None` for the single-register models and for a
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
pub(crate) const SHRINK_MAX_STATES: u64 = 4_000_000;
/// Budget for one attempt while shrinking.
pub(crate) const SHRINK_ATTEMPT_MAX_STATES: u64 = 200_000;

/// What a check computes besides the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Give up with [`Outcome::Unknown`] once the search of one object has
    /// explored this many configurations.
    pub max_states: u64,
    /// Shrink a failure to a small witness (the slow part of a failing
    /// check: see `witness.rs`). Without it the verdict has no witness.
    pub witness: bool,
    /// Also search every object for an order of linearization (or, where
    /// there is none, the longest linearizable sequence): see
    /// [`Linearization`]. Costs about one more search per object.
    pub linearizations: bool,
}

impl Options {
    /// A witness, no linearizations, `max_states` per object.
    pub fn new(max_states: u64) -> Options {
        Options { max_states, witness: true, linearizations: false }
    }
}

/// Check `history` against `model` with [`DEFAULT_MAX_STATES`] per key.
pub fn check(history: &History, model: Model) -> Report {
    check_with_budget(history, model, DEFAULT_MAX_STATES)
}

/// Check `history` against `model`, one of the register family (the
/// simulator's integer histories hold nothing else; any other history is
/// read as a [`crate::parse::RecordedHistory`] and checked with
/// [`check_recorded`]), giving up with [`Outcome::Unknown`] once the search
/// of one key (or of the single register) has explored `max_states`
/// configurations.
///
/// The history need not be well formed: a completion with no pending invoke
/// is ignored, and an invoke on a process that already has a pending op
/// leaves that earlier op indeterminate. [`crate::parse::parse_history`]
/// rejects such histories up front.
pub fn check_with_budget(history: &History, model: Model, max_states: u64) -> Report {
    check_registers(history, model, &Options::new(max_states), &Names::default()).0
}

/// Each object's key, the outcome of its search, and its order of
/// linearization as the positions of its ops' invokes (see
/// [`Linearization`]).
type Orders<K> = Vec<(K, Outcome, Vec<usize>)>;

/// [`check_with_budget`] with `options`, printing keys and values with
/// `names`; also each key's order when `options.linearizations`.
fn check_registers(
    history: &History,
    model: Model,
    options: &Options,
    names: &Names,
) -> (Report, Orders<Key>) {
    let max_states = options.max_states;
    assert!(model.is_register(), "the {} model has no integer histories: use check_recorded", model.name());
    let keyed = model.is_keyed();
    let mut groups: BTreeMap<Key, Vec<RegisterOp>> = BTreeMap::new();
    for operation in extract_operations(history) {
        let group = if keyed { operation.key } else { 0 };
        groups.entry(group).or_default().push(operation);
    }
    let key_count = groups.len();
    let orders = if options.linearizations { orders(&mut Register, &groups, max_states) } else { Vec::new() };
    let (judgement, states_explored) = judge(&mut Register, groups, options);
    let subject =
        |key: Key| if keyed { format!("key {}", names.key(key)) } else { "the register".to_string() };
    let (outcome, key, witness, explanation) = match judgement {
        Judgement::Linearizable => {
            let total = history.ops.iter().filter(|op| op.kind == OpType::Invoke).count();
            let keys = if keyed { format!(" on {key_count} keys") } else { String::new() };
            (
                Outcome::Linearizable,
                None,
                Vec::new(),
                format!("All {total} operations{keys} are linearizable."),
            )
        }
        Judgement::Unknown(key) => {
            (Outcome::Unknown, keyed.then_some(key), Vec::new(), out_of_budget(max_states, &subject(key)))
        }
        Judgement::NotLinearizable { key, witness, .. } if witness.is_empty() => {
            (Outcome::NotLinearizable, keyed.then_some(key), Vec::new(), unshrunk(&subject(key)))
        }
        Judgement::NotLinearizable { key, all, witness } => {
            let evidence = Evidence {
                history,
                all: &all,
                witness: &witness,
                names,
                subject: subject(key),
                key_filter: keyed.then_some(key),
            };
            let events = witness_positions(&witness).into_iter().map(|p| history.ops[p]).collect();
            (Outcome::NotLinearizable, keyed.then_some(key), events, explain(&evidence))
        }
    };
    (Report { outcome, key, witness, explanation, states_explored }, orders)
}

/// The explanation of a failure whose witness was not asked for.
fn unshrunk(subject: &str) -> String {
    format!("No order of the operations on {subject} respects both their real-time order and the model (no witness was searched for).")
}

/// Every object's order of linearization, or longest linearizable
/// sequence, as invoke positions.
fn orders<O: Object, K: Clone>(
    object: &mut O,
    groups: &BTreeMap<K, Vec<Operation<O::Action>>>,
    max_states: u64,
) -> Orders<K> {
    groups
        .iter()
        .map(|(key, ops)| {
            let ops = prune_unobserved_indeterminate(object, ops.clone());
            let (result, order) = search_order(object, &ops, max_states);
            let outcome = match result {
                SearchResult::Linearizable => Outcome::Linearizable,
                SearchResult::NotLinearizable { .. } => Outcome::NotLinearizable,
                SearchResult::Unknown => Outcome::Unknown,
            };
            (key.clone(), outcome, order.into_iter().map(|i| ops[i].call).collect())
        })
        .collect()
}

fn out_of_budget(max_states: u64, subject: &str) -> String {
    format!(
        "The search budget of {max_states} states ran out on {subject} \
         before finding a linearization or proving there is none."
    )
}

/// The verdict on a history's objects, each checked alone, before it is
/// put in words.
enum Judgement<K, A> {
    Linearizable,
    /// The budget ran out on this object.
    Unknown(K),
    /// This object's ops (`all`, after pruning) cannot be linearized, and
    /// `witness` is a small closed subset of them that cannot either.
    NotLinearizable {
        key: K,
        all: Vec<Operation<A>>,
        witness: Vec<Operation<A>>,
    },
}

/// Budget of the first round of [`judge`] over several objects.
const FIRST_ROUND_MAX_STATES: u64 = 1_024;

/// Below this many ops in all, a round is searched on one thread: starting
/// threads and copying the object would cost more than they save.
const PARALLEL_MIN_OPS: usize = 512;

/// What [`judge`] needs to search objects on several threads: each thread
/// steps its own copy of the object.
pub(crate) trait Shareable: Object + Clone + Send
where
    Self::Action: Sync,
{
}

impl<O: Object + Clone + Send> Shareable for O where O::Action: Sync {}

/// Search each object's ops alone (P-compositionality: linearizability is
/// local) and shrink a failure to its witness. Also returns the
/// configurations explored, over every round, the shrinking excluded.
///
/// Proving one object wrong can take far longer than another (a search
/// that fails must exhaust its configurations), so with several objects
/// the search goes in rounds: every undecided object, in key order, with a
/// budget that starts at [`FIRST_ROUND_MAX_STATES`] and grows fourfold up
/// to `max_states`. The verdict is about the first object found to fail,
/// the one cheapest to prove wrong; restarts cost at most a third more than
/// searching each object once with its final budget. Unknown means no
/// object failed and some ran out of `max_states`.
/// Without `options.witness`, a failure's witness is empty.
///
/// A round over enough ops runs on every core ([`round`]): its results,
/// and so the verdict, the key it names, the witness and the count of
/// configurations, are those of the round run in key order on one.
fn judge<O: Shareable, K>(
    object: &mut O,
    groups: impl IntoIterator<Item = (K, Vec<Operation<O::Action>>)>,
    options: &Options,
) -> (Judgement<K, O::Action>, u64)
where
    O::Action: Sync,
{
    judge_on(0, object, groups, options)
}

/// The cores this process may use, asked once: the standard library reads
/// the cgroup's files for it, which took 30-50 us, as long as checking a
/// whole 85-op history.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// [`judge`] with at most `cores` threads (0: one per core).
fn judge_on<O: Shareable, K>(
    cores: usize,
    object: &mut O,
    groups: impl IntoIterator<Item = (K, Vec<Operation<O::Action>>)>,
    options: &Options,
) -> (Judgement<K, O::Action>, u64)
where
    O::Action: Sync,
{
    let max_states = options.max_states;
    let (mut keys, mut undecided): (Vec<K>, Vec<_>) =
        groups.into_iter().map(|(key, ops)| (key, prune_unobserved_indeterminate(object, ops))).unzip();
    let mut budget = if undecided.len() > 1 { FIRST_ROUND_MAX_STATES.min(max_states) } else { max_states };
    let mut states_explored = 0;
    loop {
        let results = round(cores, object, &undecided, budget);
        let (mut still_keys, mut still) = (Vec::new(), Vec::new());
        for ((key, ops), result) in keys.into_iter().zip(undecided).zip(results) {
            let Some((result, explored)) = result else { break };
            states_explored += explored;
            match result {
                SearchResult::Linearizable => {}
                SearchResult::Unknown => {
                    still_keys.push(key);
                    still.push(ops);
                }
                SearchResult::NotLinearizable { furthest_return } => {
                    let witness =
                        if options.witness { shrink(object, &ops, furthest_return) } else { Vec::new() };
                    return (Judgement::NotLinearizable { key, all: ops, witness }, states_explored);
                }
            }
        }
        if still.is_empty() {
            return (Judgement::Linearizable, states_explored);
        }
        if budget >= max_states {
            return (Judgement::Unknown(still_keys.swap_remove(0)), states_explored);
        }
        budget = budget.saturating_mul(4).min(max_states);
        (keys, undecided) = (still_keys, still);
    }
}

/// One round of [`judge`]: each object's search with `budget`, in key
/// order, up to the first that fails (the later ones are `None`). With
/// several objects and enough ops, threads (one per core) take the
/// objects in key order, each stepping its own copy of `object`; once an
/// object fails, the searches of later ones stop and their results are
/// dropped, and those of earlier ones finish, so the round's results are
/// exactly the one-thread round's.
fn round<O: Shareable>(
    cores: usize,
    object: &mut O,
    objects: &[Vec<Operation<O::Action>>],
    budget: u64,
) -> Vec<Option<(SearchResult, u64)>>
where
    O::Action: Sync,
{
    let total: usize = objects.iter().map(Vec::len).sum();
    let parallel = objects.len() > 1 && total >= PARALLEL_MIN_OPS;
    let threads = if !parallel {
        1
    } else if cores == 0 {
        self::cores()
    } else {
        cores
    }
    .min(objects.len());
    if threads < 2 {
        let mut results = Vec::with_capacity(objects.len());
        for ops in objects {
            let (result, explored) = search(object, ops, budget);
            results.push(Some((result, explored)));
            if result.fails() {
                break;
            }
        }
        results.resize(objects.len(), None);
        return results;
    }
    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    let work = |object: &mut O| {
        let mut done = Vec::new();
        loop {
            let me = next.fetch_add(1, Ordering::Relaxed);
            if me >= objects.len() || me > first_failure.load(Ordering::Relaxed) {
                return done;
            }
            let cancel = Cancel { first_failure: &first_failure, me };
            let (result, explored) = search_cancellable(object, &objects[me], budget, cancel);
            if result.fails() {
                first_failure.fetch_min(me, Ordering::Relaxed);
            }
            done.push((me, result, explored));
        }
    };
    let mut results = vec![None; objects.len()];
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| {
                let mut copy = object.clone();
                scope.spawn(move || work(&mut copy))
            })
            .collect();
        let mine = work(object);
        let theirs = helpers.into_iter().flat_map(|h| h.join().expect("a search thread panicked"));
        for (me, result, explored) in mine.into_iter().chain(theirs) {
            results[me] = Some((result, explored));
        }
    });
    // The results past the first failure are not looked at (cancelled
    // searches among them said Unknown).
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_history;
    use register::Action;

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
    fn a_key_cheap_to_prove_wrong_is_found_past_one_out_of_budget() {
        // Key 0 needs more than 50 states; key 9 fails in a few.
        let mut h = crate::gen::generate_history(1, 400, 6, 1);
        let stale = history(
            "{:type :invoke :f :write :value 1 :process 100 :key 9}
             {:type :ok :f :write :value 1 :process 100 :key 9}
             {:type :invoke :f :write :value 2 :process 100 :key 9}
             {:type :ok :f :write :value 2 :process 100 :key 9}
             {:type :invoke :f :read :process 101 :key 9}
             {:type :ok :f :read :value 1 :process 101 :key 9}",
        );
        let offset = h.ops.len();
        h.ops.extend(stale.ops.iter().map(|op| Op { index: op.index + offset, ..*op }));
        let report = check_with_budget(&h, Model::Kv, 50);
        assert_eq!((report.outcome, report.key), (Outcome::NotLinearizable, Some(9)), "{report:#?}");
        // Alone, key 0 is unknown at that budget, and linearizable with more.
        assert_eq!(check_with_budget(&h, Model::Kv, 50).witness.len(), 6);
        let key_0 = History { ops: h.ops[..offset].to_vec() };
        assert_eq!(check_with_budget(&key_0, Model::Kv, 50).outcome, Outcome::Unknown);
        assert_eq!(check(&key_0, Model::Kv).outcome, Outcome::Linearizable);
    }

    /// Replays `order` (invoke positions) on a register from nil: every op
    /// legal, and none placed before an op that returned before it began.
    fn assert_legal_order(history: &History, key: Key, order: &[usize]) {
        let ops: Vec<RegisterOp> = extract_operations(history).into_iter().filter(|o| o.key == key).collect();
        let by_call: BTreeMap<usize, RegisterOp> = ops.iter().map(|o| (o.call, *o)).collect();
        let mut state = Register.initial();
        for (at, call) in order.iter().enumerate() {
            let op = by_call[call];
            state =
                Register.step(state, op.action).unwrap_or_else(|| panic!("op {at} of the order is illegal"));
            let later_returned_first =
                order[at + 1..].iter().any(|c| by_call[c].ret.is_some_and(|r| r < op.call));
            assert!(!later_returned_first, "op {at} is ordered after an op that returned before it began");
        }
    }

    #[test]
    fn orders_are_legal_and_complete_when_linearizable() {
        let h = crate::gen::generate_history(3, 600, 6, 3);
        let options = Options { linearizations: true, ..Options::new(DEFAULT_MAX_STATES) };
        let (report, orders) = check_registers(&h, Model::Kv, &options, &Names::default());
        assert_eq!(report.outcome, Outcome::Linearizable);
        assert_eq!(orders.len(), 3);
        for (key, outcome, order) in &orders {
            assert_eq!(*outcome, Outcome::Linearizable);
            assert_legal_order(&h, *key, order);
            let mut ok = extract_operations(&h).into_iter().filter(|o| o.key == *key && o.ret.is_some());
            assert!(ok.all(|o| order.contains(&o.call)), "every ok op of key {key} is in the order");
        }
        // Without asking, none are computed.
        assert!(check_registers(&h, Model::Kv, &Options::new(DEFAULT_MAX_STATES), &Names::default())
            .1
            .is_empty());
    }

    #[test]
    fn the_longest_order_of_a_failing_key_is_legal_and_stops_short() {
        let mut h = crate::gen::generate_history(7, 400, 4, 1);
        assert!(crate::gen::inject_stale_read(&mut h, 7));
        let options = Options { linearizations: true, ..Options::new(DEFAULT_MAX_STATES) };
        let (report, orders) = check_registers(&h, Model::CasRegister, &options, &Names::default());
        assert_eq!(report.outcome, Outcome::NotLinearizable);
        let (_, outcome, order) = &orders[0];
        assert_eq!(*outcome, Outcome::NotLinearizable);
        assert_legal_order(&h, 0, order);
        let ok = extract_operations(&h).iter().filter(|o| o.ret.is_some()).count();
        assert!(!order.is_empty() && order.len() < ok, "{} of {ok}", order.len());
    }

    #[test]
    fn without_a_witness_the_verdict_is_the_same_and_the_witness_empty() {
        let mut h = crate::gen::generate_history(7, 400, 4, 2);
        assert!(crate::gen::inject_stale_read(&mut h, 7));
        let bare = Options { witness: false, ..Options::new(DEFAULT_MAX_STATES) };
        let (without, _) = check_registers(&h, Model::Kv, &bare, &Names::default());
        let with = check(&h, Model::Kv);
        assert_eq!((without.outcome, without.key), (with.outcome, with.key));
        assert!(without.witness.is_empty() && !with.witness.is_empty());
        assert!(without.explanation.contains("no witness was searched for"), "{}", without.explanation);
    }

    #[test]
    fn rounds_on_several_threads_judge_as_on_one() {
        // Eight keys, and stale reads on some of them: the same key, the
        // same witness and the same count of configurations, whether the
        // keys are searched side by side or one after the other. And a
        // history that passes passes on both.
        for (seed, stale) in [(7, 1), (3, 3), (9, 6), (5, 0)] {
            let mut h = crate::gen::generate_history(seed, 3000, 8, 8);
            for s in 0..stale {
                assert!(crate::gen::inject_stale_read(&mut h, seed * 10 + s));
            }
            let groups = || {
                let mut groups: BTreeMap<Key, Vec<RegisterOp>> = BTreeMap::new();
                for op in extract_operations(&h) {
                    groups.entry(op.key).or_default().push(op);
                }
                groups
            };
            let summary = |(judgement, explored): (Judgement<Key, Action>, u64)| match judgement {
                Judgement::Linearizable => (None, Vec::new(), explored),
                Judgement::Unknown(key) => (Some(key), Vec::new(), explored),
                Judgement::NotLinearizable { key, witness, .. } => (Some(key), witness, explored),
            };
            let options = Options::new(DEFAULT_MAX_STATES);
            let one = summary(judge_on(1, &mut Register, groups(), &options));
            // The threads race: each run may interleave them differently.
            for _ in 0..8 {
                let two = summary(judge_on(2, &mut Register, groups(), &options));
                assert_eq!(one, two, "seed {seed}");
            }
            assert_eq!(one.0.is_some(), stale > 0, "seed {seed}: {one:?}");
        }
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
