//! The WGL search itself, for any sequential object (see the parent module
//! for the algorithm). An [`Object`] says what its state is and how an op
//! steps it; [`Operation`]s say where in the history each op was invoked and
//! returned. The search knows nothing else: the register family and the
//! other models (`objects.rs`) both run through this one loop, and the
//! compiler specialises it for each.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use quorum_core::Key;

/// What the witness shrinker and the pruning of indeterminate ops know
/// about an op's effect: the token its effect is known by, and the tokens
/// it observes. Both must be *sound* (witness.rs): restricting a legal
/// linearization to a subset that, whenever it drops an op writing `t`,
/// also drops every op observing `t`, leaves a legal linearization.
pub(crate) type Token = u64;

/// A token every op of the object observes: an op writing it can only be
/// removed together with everything (a counter's increment, a lock).
pub(crate) const WHOLE_OBJECT: Token = u64::MAX;

/// A sequential specification, as the search needs it.
pub(crate) trait Object {
    /// Small enough to copy; equal states must compare equal (the cache
    /// relies on it).
    type State: Copy + Eq + Debug;
    type Action: Copy + Debug + Eq + Hash;

    fn initial(&self) -> Self::State;

    /// The state after `action`, or `None` if it cannot happen in `state`.
    fn step(&mut self, state: Self::State, action: Self::Action) -> Option<Self::State>;

    /// True if `action` never changes the state (a read). A legal pure op
    /// is linearized at once without branching (see [`Search::run`]).
    fn is_pure(&self, action: Self::Action) -> bool;

    /// A 64-bit hash of `state`, mixed into the configuration fingerprint.
    fn fingerprint(state: Self::State) -> u64;

    /// The token `action` writes, if any; the tokens it observes are pushed
    /// onto `observes`. See [`Token`] for the rule they must obey.
    fn footprint(&self, action: Self::Action, observes: &mut Vec<Token>) -> Option<Token>;
}

/// One operation as the search sees it: event positions in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operation<A> {
    /// Position of the invoke event.
    pub(crate) call: usize,
    /// Position of the `ok` completion; `None` for an indeterminate op.
    pub(crate) ret: Option<usize>,
    /// Position of the completion event (`ok` or `info`), for the witness.
    pub(crate) completion: Option<usize>,
    pub(crate) key: Key,
    pub(crate) action: A,
}

impl<A> Operation<A> {
    pub(crate) fn is_indeterminate(&self) -> bool {
        self.ret.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SearchResult {
    Linearizable,
    /// No linearization. `furthest_return` is the latest history position of
    /// a return the search could not get past: the prefix of the history up
    /// to it is already not linearizable.
    NotLinearizable {
        furthest_return: usize,
    },
    Unknown,
}

impl SearchResult {
    pub(crate) fn fails(self) -> bool {
        matches!(self, SearchResult::NotLinearizable { .. })
    }
}

/// Lowe's WGL over `ops` (one object). Returns the verdict and the number
/// of configurations explored.
pub(crate) fn search<O: Object>(
    object: &mut O,
    ops: &[Operation<O::Action>],
    max_states: u64,
) -> (SearchResult, u64) {
    let mut search = Search::new(object, ops, max_states);
    let result = search.run();
    (result, search.explored)
}

/// Stops a search of the object at index `me` among several checked side
/// by side once an object before it in key order (index below `me`) is
/// known to fail: its verdict would not be used.
#[derive(Clone, Copy)]
pub(crate) struct Cancel<'a> {
    pub(crate) first_failure: &'a AtomicUsize,
    pub(crate) me: usize,
}

impl Cancel<'_> {
    fn cancelled(self) -> bool {
        self.first_failure.load(Ordering::Relaxed) < self.me
    }
}

/// [`search`], giving up with [`SearchResult::Unknown`] soon after `cancel`
/// says so (it looks every 256 configurations).
pub(crate) fn search_cancellable<O: Object>(
    object: &mut O,
    ops: &[Operation<O::Action>],
    max_states: u64,
    cancel: Cancel<'_>,
) -> (SearchResult, u64) {
    let mut search = Search::new(object, ops, max_states);
    search.cancel = Some(cancel);
    let result = search.run();
    (result, search.explored)
}

/// [`search`], also giving an order of linearization: when linearizable,
/// every `ok` op (and the indeterminate ops that took effect) in the order
/// found; otherwise the longest sequence of ops the search linearized
/// before it had to backtrack for good. Indices into `ops`.
pub(crate) fn search_order<O: Object>(
    object: &mut O,
    ops: &[Operation<O::Action>],
    max_states: u64,
) -> (SearchResult, Vec<usize>) {
    let mut search = Search::new(object, ops, max_states);
    search.longest = Some(Longest::default());
    let result = search.run();
    let order = match (result, search.longest) {
        (SearchResult::Linearizable, _) => search.stack.iter().map(|lift| lift.op).collect(),
        (_, longest) => longest.map(|l| l.ops).unwrap_or_default(),
    };
    (result, order)
}

/// The deepest stack of lifts seen, kept up to date in amortised O(1) per
/// lift: `agree` is how many of its first ops the current stack shares.
#[derive(Default)]
struct Longest {
    ops: Vec<usize>,
    agree: usize,
}

impl Longest {
    fn pushed<S>(&mut self, stack: &[Lift<S>]) {
        let depth = stack.len() - 1;
        let op = stack[depth].op;
        if self.agree == depth && self.ops.get(depth) == Some(&op) {
            self.agree += 1;
        }
        if stack.len() > self.ops.len() {
            self.ops.truncate(self.agree);
            self.ops.extend(stack[self.agree..].iter().map(|lift| lift.op));
            self.agree = stack.len();
        }
    }

    fn popped(&mut self, depth: usize) {
        self.agree = self.agree.min(depth);
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    position: usize,
    op: usize,
    is_return: bool,
}

/// One linearized op on the search stack.
#[derive(Clone, Copy, Debug)]
struct Lift<S> {
    op: usize,
    /// The object's state before the op.
    before: S,
    /// A pure op lifted because it was legal: no alternative needs exploring.
    forced: bool,
}

/// The state of one WGL search: the entry list, the stack of lifted ops and
/// the cache of configurations already explored.
struct Search<'a, O: Object> {
    object: &'a mut O,
    ops: &'a [Operation<O::Action>],
    entries: Vec<Entry>,
    /// Node 0 is the sentinel of a circular list; entry `i` is node `i + 1`.
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    return_node: Vec<Option<usize>>,
    /// For an indeterminate op, the latest indeterminate op invoked before
    /// it with the same action (see [`twins`]).
    twin_before: Vec<Option<usize>>,
    linearized: Bitset,
    cache: Cache<O::State>,
    state: O::State,
    // Invariant: the ops on the stack are exactly the set bits of `linearized`.
    stack: Vec<Lift<O::State>>,
    explored: u64,
    max_states: u64,
    furthest_return: usize,
    /// Kept only when an order is asked for ([`search_order`]).
    longest: Option<Longest>,
    cancel: Option<Cancel<'a>>,
}

impl<'a, O: Object> Search<'a, O> {
    fn new(object: &'a mut O, ops: &'a [Operation<O::Action>], max_states: u64) -> Search<'a, O> {
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
        let state = object.initial();
        Search {
            object,
            ops,
            twin_before: twins(ops),
            entries,
            next: (1..=nodes).map(|i| i % nodes).collect(),
            prev: (0..nodes).map(|i| (i + nodes - 1) % nodes).collect(),
            call_node,
            return_node,
            linearized,
            cache,
            state,
            stack: Vec::new(),
            explored: 0,
            max_states,
            furthest_return: 0,
            longest: None,
            cancel: None,
        }
    }

    /// The search proper. After every lift, a first pass over the candidate
    /// window lifts every pure op (read) that is legal now: a legal read may
    /// always be moved to the front of any continuation (it changes nothing,
    /// and its invoke precedes every pending return), so forcing it loses no
    /// linearization and removes the branching over subsets of concurrent
    /// reads. A second pass then tries the other ops, backtracking as usual.
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
            let is_read = self.object.is_pure(self.ops[entry.op].action);
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
                    if self.explored.is_multiple_of(256) && self.cancel.is_some_and(Cancel::cancelled) {
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
        if self.twin_before[op].is_some_and(|twin| !self.linearized.contains(twin)) {
            return Lifted::Illegal;
        }
        let Some(after) = self.object.step(self.state, self.ops[op].action) else {
            return Lifted::Illegal;
        };
        self.linearized.flip(op);
        let fingerprint = self.linearized.fingerprint ^ O::fingerprint(after);
        if !self.cache.insert(fingerprint, &self.linearized.words, after) {
            self.linearized.flip(op);
            return Lifted::Seen;
        }
        self.explored += 1;
        self.stack.push(Lift { op, before: self.state, forced });
        if let Some(longest) = &mut self.longest {
            longest.pushed(&self.stack);
        }
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
            if let Some(longest) = &mut self.longest {
                longest.popped(self.stack.len());
            }
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

/// Symmetry: two indeterminate ops with the same action (two timed-out
/// acquires, two increments by 1 that may or may not have happened) are
/// interchangeable once both are invoked, since neither ever returns. So
/// the search lifts such twins in invoke order only: any linearization
/// that uses some of them can use the earliest invoked instead (the i-th
/// earliest was invoked no later than the i-th point where one is used).
/// Without this, k pending twins multiply the configurations by 2^k.
fn twins<A: Copy + Eq + Hash>(ops: &[Operation<A>]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].is_indeterminate()).collect();
    order.sort_by_key(|&i| ops[i].call);
    let mut twin_before = vec![None; ops.len()];
    if order.len() <= 32 {
        // Few (the usual case): a scan back beats hashing.
        for (at, &i) in order.iter().enumerate() {
            twin_before[i] = order[..at].iter().rev().copied().find(|&j| ops[j].action == ops[i].action);
        }
        return twin_before;
    }
    let mut latest: FastMap<A, usize> = FastMap::default();
    for i in order {
        twin_before[i] = latest.insert(ops[i].action, i);
    }
    twin_before
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

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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

    fn contains(&self, bit: usize) -> bool {
        self.words[bit / 64] & (1 << (bit % 64)) != 0
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

/// The multiply-rotate hash of rustc (`FxHasher`): far faster than the
/// standard SipHash on the short keys the search hashes (ids, interned
/// states, strings), and the keys are the history's, not an adversary's.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, x: u8) {
        self.add(u64::from(x));
    }
    fn write_u32(&mut self, x: u32) {
        self.add(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.add(x);
    }
    fn write_usize(&mut self, x: usize) {
        self.add(x as u64);
    }
}

/// A hash map keyed with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Visited configurations, compared exactly (the fingerprint only buckets).
/// Configurations live in one arena to avoid an allocation per insert.
struct Cache<S> {
    words: usize,
    bits: Vec<u64>,
    states: Vec<S>,
    /// Next configuration in the same bucket, `u32::MAX` for none.
    chain: Vec<u32>,
    heads: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
}

impl<S: Copy + Eq> Cache<S> {
    fn new(words: usize) -> Cache<S> {
        Cache { words, bits: Vec::new(), states: Vec::new(), chain: Vec::new(), heads: HashMap::default() }
    }

    /// Record a configuration; true if it was not seen before.
    fn insert(&mut self, fingerprint: u64, bits: &[u64], state: S) -> bool {
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
