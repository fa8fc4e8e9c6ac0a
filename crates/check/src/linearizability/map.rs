//! Linearizability of histories whose operations touch several keys at
//! once (`MSET`, `MULTI` / `EXEC`) and whose keys expire (`SET ... PX`):
//! the simulator's Redis workload ([`quorum_core::redis`]).
//!
//! An op on several keys couples those keys' histories, so the per-key
//! decomposition the register checker relies on no longer holds. Keys are
//! grouped instead into the connected components of "some op touched both"
//! (union-find), and each component is one object whose state is the map
//! of its keys, searched by the same WGL loop ([`super::search`]); states
//! are interned, so the search carries a 32-bit id, and each (state, op)
//! step is computed once.
//!
//! **Expiry.** A `SET k v PX t` also brings an operation nobody invoked:
//! the key's expiry, which removes `k` if it still holds `v` (a later write
//! cleared the deadline otherwise: values are written once). When it
//! happens is bounded by the clocks, not known: with every clock within
//! `skew` of true time, the deadline is the stamp of a node plus `t`, and
//! a read is judged by a stamp too, so the expiry lies between the write's
//! invocation + `t` − 2·`skew` and its completion + `t` + 2·`skew`. Those
//! are the expiry's invocation and completion (none if the write's outcome
//! is unknown). A read that sees the key gone and a later read that sees
//! it again is then a violation: the expiry is one point in time, as it is
//! for a client of a single Redis.

use std::collections::BTreeMap;

use quorum_core::redis::{Micro, RedisOp};
use quorum_core::{Key, Value};

use super::search::{search, splitmix64, FastMap, Object, Operation, SearchResult, Token, WHOLE_OBJECT};
use super::Outcome;
use crate::history::OpType;

/// One event of a multi-key history: an invocation (`result` empty) or its
/// completion. An `ok` completion's `result` holds what the op read: one
/// value for a `GET`, one per queued `GET` for an `EXEC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEvent {
    pub kind: OpType,
    /// One op at a time per process; after an `info`, a process is not reused.
    pub process: u64,
    /// Microseconds; events are in time order.
    pub time: u64,
    pub op: RedisOp,
    pub result: Vec<Option<Value>>,
}

/// The verdict on a multi-key history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapReport {
    pub outcome: Outcome,
    pub explanation: String,
    /// Configurations explored, over every component.
    pub states_explored: u64,
    /// Components of keys searched (ops coupling keys join them).
    pub components: usize,
}

/// What an op does to the map, as the search steps it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    /// A `GET` that returned `value`.
    Get { key: Key, value: Option<Value> },
    /// Writes, in order (`SET`, `MSET`).
    Put(Vec<(Key, Value)>),
    /// `EXEC`: each queued op in order, a `GET` with its result when known.
    Exec(Vec<(Micro, Option<Option<Value>>)>),
    /// The expiry of a `SET ... PX`: remove `key` if it holds `value`.
    Expire { key: Key, value: Value },
}

impl Action {
    fn keys(&self) -> Vec<Key> {
        match self {
            Action::Get { key, .. } | Action::Expire { key, .. } => vec![*key],
            Action::Put(pairs) => pairs.iter().map(|p| p.0).collect(),
            Action::Exec(ops) => ops
                .iter()
                .map(|(m, _)| match *m {
                    Micro::Get { key } | Micro::Set { key, .. } => key,
                })
                .collect(),
        }
    }
}

/// A map state: its entries, sorted by key.
type Map = Vec<(Key, Value)>;

/// The map of one component, with interned states and remembered steps.
struct MapObject {
    actions: Vec<Action>,
    states: Vec<Map>,
    ids: FastMap<Map, u32>,
    steps: FastMap<(u32, u32), Option<u32>>,
}

impl MapObject {
    fn new(actions: Vec<Action>) -> MapObject {
        let mut object =
            MapObject { actions, states: Vec::new(), ids: FastMap::default(), steps: FastMap::default() };
        object.intern(Vec::new());
        object
    }

    fn intern(&mut self, map: Map) -> u32 {
        if let Some(&id) = self.ids.get(&map) {
            return id;
        }
        let id = u32::try_from(self.states.len()).expect("fewer than 2^32 states");
        self.states.push(map.clone());
        self.ids.insert(map, id);
        id
    }

    /// `action` applied to `map`, or `None` where a read disagrees.
    fn apply(map: &Map, action: &Action) -> Option<Map> {
        let mut map: BTreeMap<Key, Value> = map.iter().copied().collect();
        match action {
            Action::Get { key, value } => (map.get(key).copied() == *value).then_some(())?,
            Action::Put(pairs) => map.extend(pairs.iter().copied()),
            Action::Expire { key, value } => {
                if map.get(key) == Some(value) {
                    map.remove(key);
                }
            }
            Action::Exec(ops) => {
                for (op, seen) in ops {
                    match *op {
                        Micro::Get { key } => {
                            if seen.is_some_and(|v| map.get(&key).copied() != v) {
                                return None;
                            }
                        }
                        Micro::Set { key, value } => {
                            map.insert(key, value);
                        }
                    }
                }
            }
        }
        Some(map.into_iter().collect())
    }
}

impl Object for MapObject {
    type State = u32;
    type Action = u32;

    fn initial(&self) -> u32 {
        0
    }

    fn step(&mut self, state: u32, action: u32) -> Option<u32> {
        if let Some(&known) = self.steps.get(&(state, action)) {
            return known;
        }
        let next = MapObject::apply(&self.states[state as usize], &self.actions[action as usize]);
        let next = next.map(|map| self.intern(map));
        self.steps.insert((state, action), next);
        next
    }

    fn is_pure(&self, action: u32) -> bool {
        matches!(self.actions[action as usize], Action::Get { .. })
    }

    fn fingerprint(state: u32) -> u64 {
        splitmix64(u64::from(state))
    }

    fn footprint(&self, action: u32, observes: &mut Vec<Token>) -> Option<Token> {
        observes.push(WHOLE_OBJECT);
        (!self.is_pure(action)).then_some(WHOLE_OBJECT)
    }
}

/// An op as extracted from the history: its times and what it does.
struct Extracted {
    call: u64,
    /// `None`: indeterminate.
    ret: Option<u64>,
    /// Positions of the invoke and completion in the history, which order
    /// real events of equal time.
    seq: (usize, usize),
    /// Synthetic (an expiry): placed before real events at its call time
    /// and after them at its return time, the permissive side of each.
    synthetic: bool,
    action: Action,
    /// For explanations.
    process: u64,
}

/// Check `events` for linearizability of the map, with every clock within
/// `skew_us` of true time, giving up on a component after `max_states`.
pub fn check_map(events: &[MapEvent], skew_us: u64, max_states: u64) -> MapReport {
    let ops = extract(events, skew_us);
    let components = components(&ops);
    let mut explored = 0;
    let mut unknown = false;
    for members in components.values() {
        let (object_ops, actions) = positions(&ops, members);
        let mut object = MapObject::new(actions);
        let (result, states) = search(&mut object, &object_ops, max_states);
        explored += states;
        match result {
            SearchResult::Linearizable => {}
            SearchResult::Unknown => unknown = true,
            SearchResult::NotLinearizable { furthest_return } => {
                let at = object_ops.iter().position(|o| o.ret == Some(furthest_return)).unwrap_or(0);
                let op = &ops[members[at]];
                let keys: std::collections::BTreeSet<Key> =
                    object.actions.iter().flat_map(Action::keys).collect();
                return MapReport {
                    outcome: Outcome::NotLinearizable,
                    explanation: format!(
                        "keys {keys:?}: no order of their ops explains process {}'s {:?}, which returned at {} µs \
                         (expiries placed anywhere a clock within {skew_us} µs allows)",
                        op.process,
                        op.action,
                        op.ret.unwrap_or(op.call),
                    ),
                    states_explored: explored,
                    components: components.len(),
                };
            }
        }
    }
    let (outcome, explanation) = if unknown {
        (Outcome::Unknown, format!("a component exceeded the search budget of {max_states} configurations"))
    } else {
        (Outcome::Linearizable, String::new())
    };
    MapReport { outcome, explanation, states_explored: explored, components: components.len() }
}

/// The ops of `events` (failed ones dropped: they did nothing), with an
/// expiry after every `SET ... PX` that may have taken effect.
fn extract(events: &[MapEvent], skew_us: u64) -> Vec<Extracted> {
    let mut pending: BTreeMap<u64, (usize, &MapEvent)> = BTreeMap::new();
    let mut ops = Vec::new();
    let mut push = |(at, invoke): (usize, &MapEvent), ret: Option<(usize, &MapEvent)>| {
        let seq = (at, ret.map_or(usize::MAX, |r| r.0));
        let ret = ret.map(|r| r.1);
        let result = ret.map(|r| r.result.as_slice());
        let action = match (&invoke.op, result) {
            (RedisOp::Get { .. }, None) => return, // an unknown read changes nothing
            (RedisOp::Get { key }, Some(r)) => Action::Get { key: *key, value: r.first().copied().flatten() },
            (RedisOp::Set { key, value, .. }, _) => Action::Put(vec![(*key, *value)]),
            (RedisOp::MSet { pairs }, _) => Action::Put(pairs.clone()),
            (RedisOp::Exec { ops }, r) => {
                let mut reads = r.unwrap_or(&[]).iter();
                let known = r.is_some();
                Action::Exec(
                    ops.iter()
                        .map(|m| {
                            (
                                *m,
                                matches!(m, Micro::Get { .. })
                                    .then(|| reads.next().copied())
                                    .flatten()
                                    .filter(|_| known),
                            )
                        })
                        .collect(),
                )
            }
        };
        let ret_time = ret.map(|r| r.time);
        ops.push(Extracted {
            call: invoke.time,
            ret: ret_time,
            seq,
            synthetic: false,
            action,
            process: invoke.process,
        });
        if let RedisOp::Set { key, value, px: Some(ttl) } = invoke.op {
            ops.push(Extracted {
                call: (invoke.time + ttl).saturating_sub(2 * skew_us),
                ret: ret_time.map(|t| t + ttl + 2 * skew_us),
                seq,
                synthetic: true,
                action: Action::Expire { key, value },
                process: invoke.process,
            });
        }
    };
    for (at, event) in events.iter().enumerate() {
        match event.kind {
            OpType::Invoke => {
                pending.insert(event.process, (at, event));
            }
            OpType::Ok | OpType::Info => {
                if let Some(invoke) = pending.remove(&event.process) {
                    push(invoke, (event.kind == OpType::Ok).then_some((at, event)));
                }
            }
            OpType::Fail => {
                pending.remove(&event.process);
            }
        }
    }
    for invoke in pending.into_values() {
        push(invoke, None);
    }
    ops
}

/// The ops of each component of keys, by the component's smallest key.
fn components(ops: &[Extracted]) -> BTreeMap<Key, Vec<usize>> {
    let mut parent: BTreeMap<Key, Key> = BTreeMap::new();
    fn root(parent: &mut BTreeMap<Key, Key>, key: Key) -> Key {
        let up = *parent.entry(key).or_insert(key);
        if up == key {
            return key;
        }
        let top = root(parent, up);
        parent.insert(key, top);
        top
    }
    for op in ops {
        let keys = op.action.keys();
        for pair in keys.windows(2) {
            let (a, b) = (root(&mut parent, pair[0]), root(&mut parent, pair[1]));
            parent.insert(a.max(b), a.min(b));
        }
        if let Some(&k) = keys.first() {
            root(&mut parent, k);
        }
    }
    let mut by_root: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(&k) = op.action.keys().first() {
            let top = root(&mut parent, k);
            by_root.entry(top).or_default().push(i);
        }
    }
    by_root
}

/// The search's view of a component's ops: positions that order every
/// call and return by time (a synthetic call before real events at the
/// same time, a synthetic return after them), and the actions.
fn positions(ops: &[Extracted], members: &[usize]) -> (Vec<Operation<u32>>, Vec<Action>) {
    // (time, class, sequence): class 0 synthetic call, 1 real event, 2 synthetic return.
    let mut points: Vec<((u64, u8, usize), usize, bool)> = Vec::new();
    for (i, &m) in members.iter().enumerate() {
        let op = &ops[m];
        let (call_class, ret_class) = if op.synthetic { (0, 2) } else { (1, 1) };
        points.push(((op.call, call_class, op.seq.0), i, false));
        if let Some(ret) = op.ret {
            points.push(((ret, ret_class, op.seq.1), i, true));
        }
    }
    points.sort_by_key(|p| p.0);
    let mut call = vec![0; members.len()];
    let mut ret = vec![None; members.len()];
    for (position, &(_, i, is_return)) in points.iter().enumerate() {
        if is_return {
            ret[i] = Some(position);
        } else {
            call[i] = position;
        }
    }
    let operations = members
        .iter()
        .enumerate()
        .map(|(i, &m)| Operation {
            call: call[i],
            ret: ret[i],
            completion: ret[i],
            key: ops[m].action.keys()[0],
            action: i as u32,
        })
        .collect();
    (operations, members.iter().map(|&m| ops[m].action.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history builder: ops with explicit [call, return] times, one
    /// process each.
    #[derive(Default)]
    struct Events(Vec<MapEvent>);

    impl Events {
        fn op(mut self, op: RedisOp, call: u64, ret: u64, result: Vec<Option<Value>>) -> Events {
            let process = self.0.len() as u64;
            self.0.push(MapEvent {
                kind: OpType::Invoke,
                process,
                time: call,
                op: op.clone(),
                result: vec![],
            });
            self.0.push(MapEvent { kind: OpType::Ok, process, time: ret, op, result });
            self.0.sort_by_key(|e| e.time);
            self
        }

        fn verdict(&self, skew_us: u64) -> Outcome {
            check_map(&self.0, skew_us, 100_000).outcome
        }
    }

    fn get(key: Key) -> RedisOp {
        RedisOp::Get { key }
    }

    #[test]
    fn mset_is_one_atomic_write() {
        let mset = RedisOp::MSet { pairs: vec![(1, 10), (2, 20)] };
        let whole = Events::default().op(mset.clone(), 0, 10, vec![]).op(get(1), 20, 30, vec![Some(10)]);
        let whole = whole.op(get(2), 40, 50, vec![Some(20)]);
        assert_eq!(whole.verdict(0), Outcome::Linearizable);
        // Negative control: key 2 still missing after key 1 was seen written.
        let torn = Events::default().op(mset, 0, 100, vec![]).op(get(1), 20, 30, vec![Some(10)]);
        let torn = torn.op(get(2), 40, 50, vec![None]);
        assert_eq!(torn.verdict(0), Outcome::NotLinearizable);
    }

    #[test]
    fn exec_reads_what_it_wrote_and_nothing_interleaves() {
        let ops = vec![Micro::Get { key: 1 }, Micro::Set { key: 1, value: 2 }, Micro::Get { key: 1 }];
        let exec = RedisOp::Exec { ops };
        let set = RedisOp::Set { key: 1, value: 1, px: None };
        let good =
            Events::default().op(set.clone(), 0, 10, vec![]).op(exec.clone(), 20, 30, vec![Some(1), Some(2)]);
        assert_eq!(good.verdict(0), Outcome::Linearizable);
        // Negative control: a write slipped between the EXEC's two reads.
        let bad = Events::default().op(set, 0, 10, vec![]).op(exec, 20, 30, vec![Some(1), Some(7)]);
        assert_eq!(bad.verdict(0), Outcome::NotLinearizable);
    }

    #[test]
    fn an_expired_key_stays_gone() {
        let set = RedisOp::Set { key: 1, value: 5, px: Some(100) };
        let fine = Events::default().op(set.clone(), 0, 10, vec![]).op(get(1), 50, 60, vec![Some(5)]);
        let fine = fine.op(get(1), 200, 210, vec![None]);
        assert_eq!(fine.verdict(0), Outcome::Linearizable);
        // Negative control: nil, then the value again, with no write between.
        let back = fine.op(get(1), 300, 310, vec![Some(5)]);
        assert_eq!(back.verdict(20), Outcome::NotLinearizable);
    }

    #[test]
    fn expiry_happens_within_the_clocks_bounds() {
        let set = RedisOp::Set { key: 1, value: 5, px: Some(100) };
        // Seen 60 µs after the deadline: fine if clocks may be 50 µs off, not if 20.
        let late = Events::default().op(set.clone(), 0, 10, vec![]).op(get(1), 170, 175, vec![Some(5)]);
        assert_eq!(late.verdict(50), Outcome::Linearizable);
        assert_eq!(late.verdict(20), Outcome::NotLinearizable);
        // Gone 30 µs before the deadline: fine if clocks may be 20 µs off, not if 10.
        let early = Events::default().op(set, 0, 10, vec![]).op(get(1), 60, 70, vec![None]);
        assert_eq!(early.verdict(20), Outcome::Linearizable);
        assert_eq!(early.verdict(10), Outcome::NotLinearizable);
    }

    #[test]
    fn a_later_write_clears_the_deadline() {
        let ttl = RedisOp::Set { key: 1, value: 5, px: Some(100) };
        let plain = RedisOp::Set { key: 1, value: 6, px: None };
        let kept = Events::default().op(ttl, 0, 10, vec![]).op(plain, 20, 30, vec![]);
        assert_eq!(kept.op(get(1), 500, 510, vec![Some(6)]).verdict(0), Outcome::Linearizable);
    }
}
