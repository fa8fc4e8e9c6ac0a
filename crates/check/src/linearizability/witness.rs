//! Shrinking a failing history to a small witness, and pruning
//! indeterminate ops nobody could have seen. Both rest on one rule about
//! subsets, stated with an object's [`Object::footprint`]: a subset is
//! *closed* if, whenever it leaves out an op that writes token `t`, it also
//! leaves out every op that observes `t`. Each object chooses its tokens so
//! that restricting a legal linearization of the whole history to a closed
//! subset leaves a legal linearization of the subset (a register: a write
//! of `v` writes `v`, a read of `v` or a cas expecting `v` observes it).
//! So a closed subset that fails proves the whole history fails, and the
//! witness never blames an op on one that was merely left out.

use std::collections::{BTreeMap, BTreeSet};

use super::search::{search, FastMap, Object, Operation, Token};
use super::{DEFAULT_MAX_STATES, SHRINK_ATTEMPT_MAX_STATES, SHRINK_MAX_STATES};

/// Every op's footprint, in one arena: op `i` writes `writes[i]` and
/// observes `observed[starts[i]..starts[i + 1]]`.
struct Footprints {
    writes: Vec<Option<Token>>,
    observed: Vec<Token>,
    starts: Vec<usize>,
}

impl Footprints {
    fn of<O: Object>(object: &O, ops: &[Operation<O::Action>]) -> Footprints {
        let mut prints = Footprints {
            writes: Vec::with_capacity(ops.len()),
            observed: Vec::with_capacity(ops.len()),
            starts: Vec::with_capacity(ops.len() + 1),
        };
        prints.starts.push(0);
        for op in ops {
            prints.writes.push(object.footprint(op.action, &mut prints.observed));
            prints.starts.push(prints.observed.len());
        }
        prints
    }

    fn observes(&self, op: usize) -> &[Token] {
        &self.observed[self.starts[op]..self.starts[op + 1]]
    }
}

/// Drop indeterminate ops whose written token no other op observes: they
/// can always be left out of a linearization (the set without them is
/// closed), so a history is linearizable with them iff it is without them.
pub(crate) fn prune_unobserved_indeterminate<O: Object>(
    object: &O,
    mut ops: Vec<Operation<O::Action>>,
) -> Vec<Operation<O::Action>> {
    loop {
        let prints = Footprints::of(object, &ops);
        // Observers of each token an indeterminate op writes (usually few).
        let mut observers: BTreeMap<Token, usize> = (0..ops.len())
            .filter(|&i| ops[i].is_indeterminate())
            .filter_map(|i| prints.writes[i].map(|t| (t, 0)))
            .collect();
        if observers.is_empty() {
            return ops;
        }
        for token in &prints.observed {
            if let Some(count) = observers.get_mut(token) {
                *count += 1;
            }
        }
        let before = ops.len();
        let mut op = 0;
        ops.retain(|o| {
            let i = op;
            op += 1;
            let Some(written) = prints.writes[i].filter(|_| o.is_indeterminate()) else { return true };
            let by_itself = prints.observes(i).iter().filter(|&&t| t == written).count();
            observers[&written] > by_itself
        });
        if ops.len() == before {
            return ops;
        }
    }
}

/// Does `ops` fail to linearize within `budget` (spending from it)?
fn fails<O: Object>(object: &mut O, ops: &[Operation<O::Action>], budget: &mut u64) -> bool {
    let pruned = prune_unobserved_indeterminate(object, ops.to_vec());
    let limit = SHRINK_ATTEMPT_MAX_STATES.min(*budget);
    let (result, explored) = search(object, &pruned, limit);
    *budget = budget.saturating_sub(explored);
    result.fails()
}

/// The ops of `ops` up to history position `end`: later invokes dropped,
/// returns after `end` made indeterminate (and such reads dropped). A
/// prefix of a linearizable history is linearizable, with each op pending
/// at the cut free to take effect, with the result it later returned, or not.
fn prefix<O: Object>(object: &O, ops: &[Operation<O::Action>], end: usize) -> Vec<Operation<O::Action>> {
    ops.iter()
        .filter(|o| o.call <= end)
        .filter_map(|o| match o.ret {
            Some(ret) if ret > end && object.is_pure(o.action) => None,
            Some(ret) if ret > end => Some(Operation { ret: None, ..*o }),
            _ => Some(*o),
        })
        .collect()
}

/// Remove the ops at `remove` from `set`, and then every op that observes a
/// token written by a removed op (until none), keeping the set closed.
fn remove_closed<O: Object>(
    object: &O,
    set: &[Operation<O::Action>],
    remove: &BTreeSet<usize>,
) -> Vec<Operation<O::Action>> {
    let prints = Footprints::of(object, set);
    let mut kept: Vec<usize> = (0..set.len()).filter(|i| !remove.contains(i)).collect();
    let mut lost: BTreeSet<Token> = remove.iter().filter_map(|&i| prints.writes[i]).collect();
    while !lost.is_empty() {
        let mut next_lost = BTreeSet::new();
        kept.retain(|&i| {
            let drop = prints.observes(i).iter().any(|t| lost.contains(t));
            if drop {
                next_lost.extend(prints.writes[i]);
            }
            !drop
        });
        lost = next_lost;
    }
    kept.into_iter().map(|i| set[i]).collect()
}

/// A small closed subset of `ops` (which fail) that still fails.
pub(crate) fn shrink<O: Object>(
    object: &mut O,
    ops: &[Operation<O::Action>],
    furthest_return: usize,
) -> Vec<Operation<O::Action>> {
    let mut budget = SHRINK_MAX_STATES;
    // The prefix up to the furthest blocked return fails (module doc); the
    // check below only guards that argument, with the main search's budget.
    let mut current = prefix(object, ops, furthest_return);
    let pruned = prune_unobserved_indeterminate(object, current.clone());
    if !search(object, &pruned, DEFAULT_MAX_STATES).0.fails() {
        current = ops.to_vec();
    }
    if let Some(phantom) = phantom_closure(object, &current) {
        if fails(object, &phantom, &mut budget) {
            current = phantom;
        }
    }
    current = trim_front(object, current, &mut budget);
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut changed = false;
        let mut start = 0;
        while start < current.len() && budget > 0 {
            let remove: BTreeSet<usize> = (start..(start + chunk).min(current.len())).collect();
            let candidate = remove_closed(object, &current, &remove);
            if candidate.len() < current.len() && fails(object, &candidate, &mut budget) {
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

/// The smallest closed set holding the first op that observes a token no
/// other op writes (a read of a value never written), if there is one:
/// that op and, transitively, every op writing what the set observes.
/// Such a set usually fails at once, where searching the whole history
/// for the impossible read could take long.
fn phantom_closure<O: Object>(object: &O, ops: &[Operation<O::Action>]) -> Option<Vec<Operation<O::Action>>> {
    let prints = Footprints::of(object, ops);
    let mut writers: FastMap<Token, Vec<usize>> = FastMap::default();
    for (op, writes) in prints.writes.iter().enumerate() {
        if let Some(token) = writes {
            writers.entry(*token).or_default().push(op);
        }
    }
    let written_by_another =
        |token: Token, op: usize| writers.get(&token).is_some_and(|w| w.iter().any(|&j| j != op));
    let phantom = (0..ops.len()).find(|&i| {
        !ops[i].is_indeterminate() && prints.observes(i).iter().any(|&t| !written_by_another(t, i))
    })?;
    let mut members: BTreeSet<usize> = BTreeSet::from([phantom]);
    let mut frontier = vec![phantom];
    while let Some(op) = frontier.pop() {
        for token in prints.observes(op) {
            for &writer in writers.get(token).map_or(&[][..], Vec::as_slice) {
                if members.insert(writer) {
                    frontier.push(writer);
                }
            }
        }
    }
    Some(members.into_iter().map(|i| ops[i]).collect())
}

/// Drop the ops that completed before some point, choosing the point by
/// binary search over completion positions.
fn trim_front<O: Object>(
    object: &mut O,
    current: Vec<Operation<O::Action>>,
    budget: &mut u64,
) -> Vec<Operation<O::Action>> {
    let mut returns: Vec<usize> = current.iter().filter_map(|o| o.ret).collect();
    returns.sort_unstable();
    let cut = |object: &O, before: usize| -> Vec<Operation<O::Action>> {
        let remove: BTreeSet<usize> = current
            .iter()
            .enumerate()
            .filter(|(_, o)| o.ret.is_some_and(|r| r < before))
            .map(|(i, _)| i)
            .collect();
        remove_closed(object, &current, &remove)
    };
    // Invariant: cutting before returns[lo] still fails (lo = 0 cuts nothing).
    let (mut lo, mut hi) = (0, returns.len());
    let mut best = current.clone();
    while lo + 1 < hi && *budget > 0 {
        let mid = (lo + hi) / 2;
        let candidate = cut(object, returns[mid]);
        if fails(object, &candidate, budget) {
            lo = mid;
            best = candidate;
        } else {
            hi = mid;
        }
    }
    best
}

/// The history positions of `ops`' invokes and completions, sorted.
pub(crate) fn witness_positions<A>(ops: &[Operation<A>]) -> Vec<usize> {
    let mut positions: Vec<usize> =
        ops.iter().flat_map(|o| std::iter::once(o.call).chain(o.completion)).collect();
    positions.sort_unstable();
    positions.dedup();
    positions
}
