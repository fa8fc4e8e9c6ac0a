//! Every model but the integer registers, as one [`Object`] whose states
//! are interned: a list, a set, a queue or a string is stored once in a
//! table and the search carries its 32-bit id, so configurations still copy
//! and compare in O(1). A list, which only grows and may grow long, is a
//! node of a trie of lists (each node its parent list and last element, so
//! equal lists are the same node and an append costs one node, not a
//! copy); a string that grows by appends is likewise a node of the trie of
//! strings (`text.rs`), whose id is the state itself. A read carries the
//! id of the state it saw, so judging it is one comparison; a register's
//! write, cas or append is computed directly, and every other step is
//! computed once per (state, op) pair and remembered, since the search
//! tries the same step from the same state many times.
//!
//! Footprints (see `witness.rs`) per model: a list's append of `e` writes
//! `e` and a read observes each element it returned, and likewise a set's
//! add and read. A queue's enqueue and dequeue of `e` both write and
//! observe `e`, so they leave a witness together. Everything else (a
//! counter's increment, a key-value write or append, a lock, a dequeue
//! whose result is unknown) writes and observes [`WHOLE_OBJECT`]: such an
//! op stays in the witness unless everything observing it goes too.

use std::collections::VecDeque;
use std::hash::Hash;

use super::search::{splitmix64, FastMap, Object, Operation, Token, WHOLE_OBJECT};
use super::text::{TextId, Texts};
use crate::datum::Datum;

/// Index of a datum (an element, a value) in the table of one history.
pub(crate) type DatumId = u32;
/// Index of a state in the table of one history, or a string's node with
/// [`TEXT_STATE`] set.
pub(crate) type StateId = u32;
/// The bit that marks a [`StateId`] as a string's node.
const TEXT_STATE: StateId = 1 << 31;

/// A list, as a node of the trie of lists.
pub(crate) type ListId = u32;
/// The empty list: the root of the trie.
pub(crate) const EMPTY_LIST: ListId = u32::MAX;

/// The state of one object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum State {
    /// A key-value register: nil, or a value that is not a string.
    Value(Option<DatumId>),
    /// A key-value register holding a string, as a node of the trie of
    /// strings (`text.rs`), so that appends cost O(1) and equal strings,
    /// however built, are one state.
    Text(TextId),
    /// A node of the trie of lists ([`EMPTY_LIST`] for the empty list).
    List(ListId),
    /// Members, sorted.
    Set(Vec<DatumId>),
    Count(i128),
    /// Head first.
    Queue(VecDeque<DatumId>),
    Held(bool),
}

/// What an op does to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Move {
    /// Any op that leaves the object as it was, legal only in this state:
    /// a read of any model, or a dequeue that found the queue empty.
    Read(StateId),
    Write(DatumId),
    Cas {
        expected: DatumId,
        new: DatumId,
    },
    /// Concatenate a string to a key-value register.
    AppendText(DatumId),
    /// Append an element to a list.
    Append(DatumId),
    Add(DatumId),
    Increment(i128),
    Enqueue(DatumId),
    /// A dequeue that returned this element.
    Dequeue(DatumId),
    /// A dequeue whose result is unknown: it took the head (it is illegal
    /// on an empty queue, where it would change nothing).
    DequeueAny,
    Acquire,
    Release,
}

/// Values of type `T`, each stored once and named by its index.
#[derive(Clone, Debug)]
struct Interner<T> {
    items: Vec<T>,
    ids: FastMap<T, u32>,
}

impl<T: Clone + Eq + Hash> Interner<T> {
    fn new() -> Interner<T> {
        Interner { items: Vec::new(), ids: FastMap::default() }
    }

    fn intern(&mut self, item: T) -> u32 {
        if let Some(&id) = self.ids.get(&item) {
            return id;
        }
        let id = u32::try_from(self.items.len()).expect("fewer than 2^32 distinct items");
        self.items.push(item.clone());
        self.ids.insert(item, id);
        id
    }

    fn get(&self, id: u32) -> &T {
        &self.items[id as usize]
    }
}

/// The data, states and remembered steps of one history's objects; every
/// key starts from the same initial state.
#[derive(Clone, Debug)]
pub(crate) struct Objects {
    data: Interner<Datum>,
    /// The trie of lists: node `n` is the list `lists[n].0` followed by
    /// the element `lists[n].1`.
    lists: Interner<(ListId, DatumId)>,
    states: Interner<State>,
    texts: Texts,
    /// [`Objects::value_state`], `u32::MAX` where not yet known.
    value_states: Vec<StateId>,
    steps: FastMap<(StateId, Move), Option<StateId>>,
    /// Set by [`Objects::begin_with`] before any search.
    initial: Option<StateId>,
}

pub(crate) type ObjectOp = Operation<Move>;

impl Objects {
    pub(crate) fn new() -> Objects {
        Objects {
            data: Interner::new(),
            lists: Interner::new(),
            states: Interner::new(),
            texts: Texts::new(),
            value_states: Vec::new(),
            steps: FastMap::default(),
            initial: None,
        }
    }

    /// Every object (key) starts in `state`.
    pub(crate) fn begin_with(&mut self, state: State) {
        self.initial = Some(self.state(state));
    }

    pub(crate) fn datum(&mut self, datum: Datum) -> DatumId {
        self.data.intern(datum)
    }

    /// The state of a register holding `value`: a string is a
    /// [`State::Text`], anything else a [`State::Value`].
    pub(crate) fn value(&mut self, value: Datum) -> State {
        let id = self.datum(value);
        self.value_of(id)
    }

    fn value_of(&mut self, id: DatumId) -> State {
        match self.data.get(id) {
            Datum::Str(_) => State::Text(self.texts.of(id, &text_of(&self.data))),
            _ => State::Value(Some(id)),
        }
    }

    pub(crate) fn datum_of(&self, id: DatumId) -> &Datum {
        self.data.get(id)
    }

    /// The list of `elements`, in order.
    pub(crate) fn list(&mut self, elements: &[DatumId]) -> ListId {
        elements.iter().fold(EMPTY_LIST, |list, &element| self.lists.intern((list, element)))
    }

    /// The elements of `list`, last first.
    fn elements_reversed(&self, mut list: ListId) -> impl Iterator<Item = DatumId> + '_ {
        std::iter::from_fn(move || {
            (list != EMPTY_LIST).then(|| {
                let (parent, element) = *self.lists.get(list);
                list = parent;
                element
            })
        })
    }

    /// A string's state is its node with [`TEXT_STATE`] set, never
    /// interned (the search reaches many); any other state is interned.
    pub(crate) fn state(&mut self, state: State) -> StateId {
        match state {
            State::Text(text) => {
                assert!(text < TEXT_STATE, "fewer than 2^31 strings");
                text | TEXT_STATE
            }
            state => self.states.intern(state),
        }
    }

    /// The state named `id`, strings included.
    fn state_of(&self, id: StateId) -> State {
        if id & TEXT_STATE != 0 {
            State::Text(id & !TEXT_STATE)
        } else {
            self.states.get(id).clone()
        }
    }

    /// The state after `action`, computed afresh.
    fn apply(&mut self, state: StateId, action: Move) -> Option<State> {
        match (self.state_of(state), action) {
            (State::List(list), Move::Append(element)) => {
                Some(State::List(self.lists.intern((list, element))))
            }
            (State::Set(mut members), Move::Add(element)) => {
                if let Err(at) = members.binary_search(&element) {
                    members.insert(at, element);
                }
                Some(State::Set(members))
            }
            (State::Count(count), Move::Increment(by)) => count.checked_add(by).map(State::Count),
            (State::Queue(mut queue), Move::Enqueue(element)) => {
                queue.push_back(element);
                Some(State::Queue(queue))
            }
            (State::Queue(mut queue), Move::Dequeue(element)) => {
                (queue.pop_front() == Some(element)).then_some(State::Queue(queue))
            }
            // Taking effect on an empty queue changes nothing, which not
            // taking effect at all (it is indeterminate) covers already.
            (State::Queue(mut queue), Move::DequeueAny) => queue.pop_front().map(|_| State::Queue(queue)),
            (State::Held(false), Move::Acquire) => Some(State::Held(true)),
            (State::Held(true), Move::Release) => Some(State::Held(false)),
            _ => None,
        }
    }
}

impl Objects {
    /// A register's step, computed directly: each value's state and each
    /// string's are found by indexing (see [`Objects::value_state`]), and
    /// an append is one lookup in the trie of strings. Remembering these
    /// steps in `steps`, a map keyed by (state, move), cost more than
    /// computing them: the map grows with every state the search reaches.
    fn register_step(&mut self, state: StateId, action: Move) -> Option<StateId> {
        let held = if state & TEXT_STATE != 0 {
            Ok(state & !TEXT_STATE)
        } else {
            match self.states.get(state) {
                State::Value(value) => Err(*value),
                _ => return None,
            }
        };
        match (held, action) {
            (_, Move::Write(value)) => Some(self.value_state(value)),
            (_, Move::Cas { expected, new }) => {
                (state == self.value_state(expected)).then(|| self.value_state(new))
            }
            // Appending to nil gives the suffix; to a value that is not a
            // string, nothing (the move is built for string suffixes only).
            (Err(None), Move::AppendText(suffix)) => Some(self.value_state(suffix)),
            (Ok(text), Move::AppendText(suffix)) => {
                let longer = self.texts.append(text, suffix, &text_of(&self.data));
                Some(self.text_state(longer))
            }
            _ => None,
        }
    }

    /// The state of a register holding datum `value`, remembered by datum.
    fn value_state(&mut self, value: DatumId) -> StateId {
        let at = value as usize;
        if let Some(&known) = self.value_states.get(at).filter(|&&s| s != u32::MAX) {
            return known;
        }
        let state = self.value_of(value);
        let id = self.state(state);
        if self.value_states.len() <= at {
            self.value_states.resize(at + 1, u32::MAX);
        }
        self.value_states[at] = id;
        id
    }

    /// The state of a register holding string `text`.
    fn text_state(&mut self, text: TextId) -> StateId {
        self.state(State::Text(text))
    }
}

/// The bytes of a string datum, for [`Texts`] (a piece is a datum id).
fn text_of<'a>(data: &'a Interner<Datum>) -> impl Fn(DatumId) -> &'a str + 'a {
    move |id| match data.get(id) {
        Datum::Str(s) => s.as_str(),
        _ => "",
    }
}

impl Object for Objects {
    type State = StateId;
    type Action = Move;

    fn initial(&self) -> StateId {
        self.initial.expect("begin_with runs before the search")
    }

    fn step(&mut self, state: StateId, action: Move) -> Option<StateId> {
        match action {
            Move::Read(seen) => return (state == seen).then_some(state),
            Move::Write(_) | Move::Cas { .. } | Move::AppendText(_) => {
                return self.register_step(state, action)
            }
            _ => {}
        }
        if let Some(&after) = self.steps.get(&(state, action)) {
            return after;
        }
        let after = self.apply(state, action).map(|s| self.state(s));
        self.steps.insert((state, action), after);
        after
    }

    fn is_pure(&self, action: Move) -> bool {
        matches!(action, Move::Read(_))
    }

    fn fingerprint(state: StateId) -> u64 {
        splitmix64(u64::from(state) ^ 0x6f62_6a65_6374)
    }

    fn footprint(&self, action: Move, observes: &mut Vec<Token>) -> Option<Token> {
        let token = |id: DatumId| Token::from(id);
        match action {
            Move::Read(seen) => {
                match self.state_of(seen) {
                    State::List(list) => observes.extend(self.elements_reversed(list).map(token)),
                    State::Set(members) => observes.extend(members.iter().map(|&e| token(e))),
                    _ => observes.push(WHOLE_OBJECT),
                }
                None
            }
            Move::Append(element) | Move::Add(element) => Some(token(element)),
            Move::Enqueue(element) | Move::Dequeue(element) => {
                observes.extend([token(element), WHOLE_OBJECT]);
                Some(token(element))
            }
            Move::Write(_)
            | Move::Cas { .. }
            | Move::AppendText(_)
            | Move::Increment(_)
            | Move::DequeueAny
            | Move::Acquire
            | Move::Release => {
                observes.push(WHOLE_OBJECT);
                Some(WHOLE_OBJECT)
            }
        }
    }
}
