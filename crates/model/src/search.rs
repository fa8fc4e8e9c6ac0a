//! Breadth-first search (a level at a time, each level expanded on all
//! threads and merged in a fixed order) and depth-first search, over
//! fingerprinted states. Only the current level (or the stack) holds whole
//! states; every visited state keeps its fingerprint and the step that
//! first reached it, from which a counterexample's path is rebuilt.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::str::FromStr;
use std::time::Instant;

use quorum_check::ledger::Broken;
use quorum_core::Protocol;

use crate::state::{Action, State, Universe};
use crate::Checkable;
use crate::{Found, ModelConfig, Report, Strategy};

/// How each visited state was first reached: its parent and the step.
type Links<T> = HashMap<u64, Option<(u64, Action<T>)>>;

/// A successor worth keeping: new, or breaking a property.
struct Item<P: Protocol> {
    parent: u64,
    action: Action<P::Timer>,
    fingerprint: u64,
    state: State<P>,
    broken: Option<Broken>,
}

/// One level's expansion by one thread.
struct Expanded<P: Protocol> {
    items: Vec<Item<P>>,
    transitions: u64,
    terminal: u64,
    reached: BTreeMap<&'static str, u64>,
}

pub(crate) fn run<P>(
    init: State<P>,
    universe: &Universe<P>,
    model: &ModelConfig,
    progress: &mut dyn FnMut(u32, u64),
) -> Report<P::Timer>
where
    P: Checkable,
{
    let started = Instant::now();
    let mut report = Report {
        states: 1,
        transitions: 0,
        terminal: 0,
        depth: 0,
        depth_bounded: false,
        gave_up: false,
        violation: None,
        reached: BTreeMap::new(),
        wall_ms: 0,
    };
    let mut links: Links<P::Timer> = HashMap::new();
    let root = init.fingerprint();
    links.insert(root, None);
    match model.strategy {
        Strategy::BreadthFirst => {
            breadth_first(init, root, universe, model, &mut links, &mut report, progress)
        }
        Strategy::DepthFirst => depth_first(init, root, universe, model, &mut links, &mut report, progress),
    }
    report.wall_ms = started.elapsed().as_millis() as u64;
    report
}

fn breadth_first<P>(
    init: State<P>,
    root: u64,
    universe: &Universe<P>,
    model: &ModelConfig,
    links: &mut Links<P::Timer>,
    report: &mut Report<P::Timer>,
    progress: &mut dyn FnMut(u32, u64),
) where
    P: Checkable,
{
    let mut level = vec![(root, init)];
    while !level.is_empty() {
        if report.depth >= model.max_depth {
            report.depth_bounded = level.iter().any(|(_, s)| !s.actions(universe).is_empty());
            return;
        }
        let expanded = expand_level(&level, universe, links, model.threads.max(1));
        let mut next = Vec::new();
        for part in expanded {
            absorb_counts(report, &part);
            for item in part.items {
                if let Some(broken) = item.broken {
                    report.violation = Some(found(links, item.parent, item.action, broken));
                    return;
                }
                if links.contains_key(&item.fingerprint) {
                    continue;
                }
                links.insert(item.fingerprint, Some((item.parent, item.action)));
                report.states += 1;
                if report.states >= model.max_states {
                    report.gave_up = true;
                    return;
                }
                next.push((item.fingerprint, item.state));
            }
        }
        report.depth += 1;
        progress(report.depth, report.states);
        level = next;
    }
}

fn absorb_counts<P: Protocol>(report: &mut Report<P::Timer>, part: &Expanded<P>) {
    report.transitions += part.transitions;
    report.terminal += part.terminal;
    for (name, n) in &part.reached {
        *report.reached.entry(name).or_default() += n;
    }
}

/// Expand every state of a level on `threads` threads; the parts come back
/// in the level's order, whatever the thread count.
fn expand_level<P>(
    level: &[(u64, State<P>)],
    universe: &Universe<P>,
    links: &Links<P::Timer>,
    threads: usize,
) -> Vec<Expanded<P>>
where
    P: Checkable,
{
    let chunk = level.len().div_ceil(threads).max(1);
    if level.len() <= chunk {
        return vec![expand(level, universe, links)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            level.chunks(chunk).map(|part| scope.spawn(move || expand(part, universe, links))).collect();
        handles.into_iter().map(|h| h.join().expect("an expanding thread panicked")).collect()
    })
}

/// Every successor of `states` that is new to the search (or breaks a
/// property), each once.
fn expand<P>(states: &[(u64, State<P>)], universe: &Universe<P>, links: &Links<P::Timer>) -> Expanded<P>
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let mut part = Expanded { items: Vec::new(), transitions: 0, terminal: 0, reached: BTreeMap::new() };
    let mut seen = HashSet::new();
    for (parent, state) in states {
        let actions = state.actions(universe);
        part.terminal += u64::from(actions.is_empty());
        for action in actions {
            part.transitions += 1;
            let next = state.successor(&action, universe);
            for name in &next.reached {
                *part.reached.entry(name).or_default() += 1;
            }
            let fingerprint = next.state.fingerprint();
            let fresh = !links.contains_key(&fingerprint) && seen.insert(fingerprint);
            if fresh || next.broken.is_some() {
                let (parent, state, broken) = (*parent, next.state, next.broken);
                part.items.push(Item { parent, action, fingerprint, state, broken });
            }
        }
    }
    part
}

fn depth_first<P>(
    init: State<P>,
    root: u64,
    universe: &Universe<P>,
    model: &ModelConfig,
    links: &mut Links<P::Timer>,
    report: &mut Report<P::Timer>,
    progress: &mut dyn FnMut(u32, u64),
) where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let mut stack = vec![(root, init, 0u32)];
    while let Some((fingerprint, state, depth)) = stack.pop() {
        let actions = state.actions(universe);
        report.terminal += u64::from(actions.is_empty());
        if depth >= model.max_depth {
            report.depth_bounded |= !actions.is_empty();
            continue;
        }
        for action in actions.into_iter().rev() {
            report.transitions += 1;
            let next = state.successor(&action, universe);
            for name in &next.reached {
                *report.reached.entry(name).or_default() += 1;
            }
            if let Some(broken) = next.broken {
                report.violation = Some(found(links, fingerprint, action, broken));
                return;
            }
            let child = next.state.fingerprint();
            if links.contains_key(&child) {
                continue;
            }
            links.insert(child, Some((fingerprint, action)));
            report.states += 1;
            report.depth = report.depth.max(depth + 1);
            if report.states >= model.max_states {
                report.gave_up = true;
                return;
            }
            if report.states % 100_000 == 0 {
                progress(report.depth, report.states);
            }
            stack.push((child, next.state, depth + 1));
        }
    }
}

/// The violation reached by `action` from state `parent`, with its path.
fn found<T: Clone>(links: &Links<T>, parent: u64, action: Action<T>, broken: Broken) -> Found<T> {
    let mut path = vec![action];
    let mut at = parent;
    while let Some(Some((up, step))) = links.get(&at) {
        path.push(step.clone());
        at = *up;
    }
    path.reverse();
    Found { kind: broken.kind, what: broken.what, path }
}
