//! One state of the search: the cluster as a script holds it, the requests
//! issued so far, the budgets left, and the path's observations; its
//! actions, their successors, and its fingerprint.

use std::fmt::{Debug, Write as _};
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use quorum_check::ledger::{Broken, Ledger};
use quorum_core::claims::Violation;
use quorum_core::{NodeId, Observation, Protocol, RequestId};
use quorum_sim::script::Scripted;

use crate::Budgets;

/// One nondeterministic step. Message positions index the state's own
/// in-flight list (oldest first), request numbers the configuration's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<T> {
    Request(usize),
    Deliver(usize),
    Lose(usize),
    Duplicate(usize),
    Fire(NodeId, T),
    Crash(NodeId),
    /// Crash the node during its next step, after this many effects.
    Tear(NodeId, u32),
    Restart(NodeId),
}

/// The cuts a torn step may take: after 0 to `TEAR_MAX - 1` effects (a
/// step that persists, then sends, is cut between the two at 1).
const TEAR_MAX: u32 = 4;

/// What every state of one search shares.
pub(crate) struct Universe<P: Protocol> {
    pub(crate) requests: Vec<(NodeId, P::Request)>,
    /// Timers fire only while nothing is in flight.
    pub(crate) timely: bool,
    /// Requests come first, in order (see `ModelConfig::requests_first`).
    pub(crate) requests_first: bool,
    /// A request answered with a response this accepts may be issued
    /// again (a client retrying a refusal); `None`: each is issued once.
    pub(crate) retry: Option<fn(&P::Response) -> bool>,
}

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct State<P: Protocol> {
    world: Scripted<P>,
    /// Bit `i`: request `i` was issued.
    issued: u64,
    /// Requests issued and not answered yet: their ids and numbers.
    outstanding: Vec<(RequestId, usize)>,
    /// What is left of each budget.
    left: Budgets,
    ledger: Ledger,
    /// Each node's fingerprint (state, durable log, pending timers), kept
    /// up to date as steps touch nodes: a step changes one node only.
    node_hashes: Vec<u64>,
    /// Each in-flight message's fingerprint, in the in-flight order.
    message_hashes: Vec<u64>,
}

/// A successor: the state, the property the step broke, and the sometimes
/// properties it reached.
pub(crate) struct Successor<P: Protocol> {
    pub(crate) state: State<P>,
    pub(crate) broken: Option<Broken>,
    pub(crate) reached: Vec<&'static str>,
}

impl<P> State<P>
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    pub(crate) fn initial(mut world: Scripted<P>, budgets: Budgets) -> State<P> {
        let mut ledger = Ledger::new();
        for (node, observation, _) in world.take_observations() {
            ledger.observe(node, &observation);
        }
        let node_hashes = (0..world.hosts().len()).map(|n| node_hash(&world, n)).collect();
        let message_hashes = (0..world.in_flight().len()).map(|i| message_hash(&world, i)).collect();
        State {
            world,
            issued: 0,
            outstanding: Vec::new(),
            left: budgets,
            ledger,
            node_hashes,
            message_hashes,
        }
    }

    /// The cluster as the script holds it.
    pub(crate) fn world(&self) -> &Scripted<P> {
        &self.world
    }

    /// Each in-flight message's fingerprint, in the in-flight order.
    pub(crate) fn message_hashes(&self) -> &[u64] {
        &self.message_hashes
    }

    /// Whether request `i` of the universe was issued on this path.
    pub(crate) fn issued(&self, i: usize) -> bool {
        self.issued & (1 << i) != 0
    }

    /// This state with fresh budgets: a search that starts here.
    pub(crate) fn with_budgets(&self, budgets: Budgets) -> State<P> {
        State { left: budgets, ..self.clone() }
    }

    /// Every action enabled here, in a fixed order.
    pub(crate) fn actions(&self, universe: &Universe<P>) -> Vec<Action<P::Timer>> {
        let mut actions = Vec::new();
        let hosts = self.world.hosts();
        for (i, (node, _)) in universe.requests.iter().enumerate() {
            if self.issued & (1 << i) == 0 && hosts[node.0 as usize].is_up() {
                actions.push(Action::Request(i));
                if universe.requests_first {
                    return actions;
                }
            }
        }
        for i in 0..self.world.in_flight().len() {
            actions.push(Action::Deliver(i));
            if self.left.losses > 0 {
                actions.push(Action::Lose(i));
            }
            if self.left.duplicates > 0 {
                actions.push(Action::Duplicate(i));
            }
        }
        for (n, host) in hosts.iter().enumerate() {
            let node = NodeId(n as u32);
            if !host.is_up() {
                actions.push(Action::Restart(node));
                continue;
            }
            let quiet = !universe.timely || self.world.in_flight().is_empty();
            if self.left.timeouts > 0 && quiet {
                actions.extend(host.timers().keys().map(|t| Action::Fire(node, t.clone())));
            }
            if self.left.crashes > 0 && self.world.armed_cut(node).is_none() {
                actions.push(Action::Crash(node));
                actions.extend((0..TEAR_MAX).map(|k| Action::Tear(node, k)));
            }
        }
        actions
    }

    /// The state after `action`, judged.
    pub(crate) fn successor(&self, action: &Action<P::Timer>, universe: &Universe<P>) -> Successor<P> {
        let mut next = self.clone();
        let touched = self.touched(action, universe);
        let stepped = quorum_sim::catch_protocol_panic(|| next.apply(action, universe));
        next.rehash(action, touched);
        next.retry_refused(universe);
        let mut broken = stepped.err().map(|message| Broken { kind: Violation::Panic, what: message });
        let mut reached = Vec::new();
        for (node, observation, _) in next.world.take_observations() {
            if let Observation::Reached(name) = observation {
                reached.push(name);
            }
            let found = next.ledger.observe(node, &observation);
            broken = broken.or(found);
        }
        if broken.is_none() {
            broken = next.cluster_invariants();
        }
        Successor { state: next, broken, reached }
    }

    fn apply(&mut self, action: &Action<P::Timer>, universe: &Universe<P>) {
        match action {
            Action::Request(i) => {
                self.issued |= 1 << i;
                self.outstanding.push((self.world.next_request_id(), *i));
                let (node, request) = &universe.requests[*i];
                self.world.request_to(*node, request.clone());
            }
            Action::Deliver(i) => self.world.deliver_at(*i),
            Action::Lose(i) => {
                self.left.losses -= 1;
                self.world.drop_at(*i);
            }
            Action::Duplicate(i) => {
                self.left.duplicates -= 1;
                self.world.duplicate_at(*i);
            }
            Action::Fire(node, timer) => {
                self.left.timeouts -= 1;
                self.world.fire_timer(*node, timer.clone());
            }
            Action::Crash(node) => {
                self.left.crashes -= 1;
                self.world.crash_node(*node);
            }
            Action::Tear(node, effects) => {
                self.left.crashes -= 1;
                self.world.arm_cut(*node, *effects);
            }
            Action::Restart(node) => self.world.restart_node(*node),
        }
    }

    /// Forget the requests answered; those refused (by the universe's
    /// `retry`) may be issued again.
    fn retry_refused(&mut self, universe: &Universe<P>) {
        for (id, response) in self.world.take_replies() {
            let Some(at) = self.outstanding.iter().position(|(o, _)| *o == id) else { continue };
            let (_, i) = self.outstanding.remove(at);
            if universe.retry.is_some_and(|retry| retry(&response)) {
                self.issued &= !(1 << i);
            }
        }
    }

    /// The protocol's cross-node invariants over the nodes that are up.
    fn cluster_invariants(&self) -> Option<Broken> {
        let up: Vec<(NodeId, &P)> = self
            .world
            .hosts()
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.state().map(|p| (NodeId(i as u32), p)))
            .collect();
        P::cluster_invariants(&up).err().map(|what| Broken { kind: Violation::ClusterInvariant, what })
    }

    /// The node `action` steps, crashes or restarts, if any.
    fn touched(&self, action: &Action<P::Timer>, universe: &Universe<P>) -> Option<usize> {
        match action {
            Action::Request(i) => Some(universe.requests[*i].0 .0 as usize),
            Action::Deliver(i) | Action::Duplicate(i) => Some(self.world.in_flight()[*i].1 .0 as usize),
            Action::Lose(_) => None,
            Action::Fire(node, _) | Action::Crash(node) | Action::Tear(node, _) | Action::Restart(node) => {
                Some(node.0 as usize)
            }
        }
    }

    /// Bring the fingerprints up to date after `action`, which touched
    /// node `touched`: the message it took out of flight, and those it
    /// added (always at the end of the in-flight list).
    fn rehash(&mut self, action: &Action<P::Timer>, touched: Option<usize>) {
        if let Action::Deliver(i) | Action::Lose(i) = action {
            self.message_hashes.remove(*i);
        }
        if let Some(n) = touched {
            self.node_hashes[n] = node_hash(&self.world, n);
        }
        for i in self.message_hashes.len()..self.world.in_flight().len() {
            self.message_hashes.push(message_hash(&self.world, i));
        }
    }

    /// A hash of everything that decides what can happen from here: each
    /// node's state, durable log and pending timers (not when they are due,
    /// nor how often it restarted), the messages in flight as a multiset,
    /// the requests issued, the budgets left and the path's observations.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut h = Fx::default();
        self.node_hashes.hash(&mut h);
        // A multiset: the sum does not depend on the order.
        self.message_hashes.iter().fold(0u64, |sum, m| sum.wrapping_add(*m)).hash(&mut h);
        self.issued.hash(&mut h);
        self.left.hash(&mut h);
        self.ledger.hash(&mut h);
        h.finish()
    }
}

/// Node `n`'s fingerprint: up or down, its state, durable log and the
/// names of its pending timers.
pub(crate) fn node_hash<P>(world: &Scripted<P>, n: usize) -> u64
where
    P: Protocol + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let host = &world.hosts()[n];
    with_buffer(|buffer| {
        match host.state() {
            Some(state) => {
                let _ = write!(buffer, "1{state:?}");
            }
            None => buffer.push('0'),
        }
        let _ = write!(buffer, "|{:?}|{:?}", host.durable(), world.armed_cut(NodeId(n as u32)));
        for timer in host.timers().keys() {
            let _ = write!(buffer, "{timer:?};");
        }
    })
}

/// In-flight message `i`'s fingerprint: its link and its content.
fn message_hash<P>(world: &Scripted<P>, i: usize) -> u64
where
    P: Protocol,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let (from, to, msg) = &world.in_flight()[i];
    with_buffer(|buffer| {
        let _ = write!(buffer, "{}>{}:{msg:?}", from.0, to.0);
    })
}

thread_local! {
    static BUFFER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Hash what `fill` writes into a reused buffer.
fn with_buffer(fill: impl FnOnce(&mut String)) -> u64 {
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        fill(&mut buffer);
        let mut h = Fx::default();
        h.write(buffer.as_bytes());
        h.finish()
    })
}

/// A fast non-cryptographic hash (rustc's FxHash step), eight bytes at a
/// time.
#[derive(Default)]
struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        // A final avalanche, so that sums of fingerprints stay spread.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}
