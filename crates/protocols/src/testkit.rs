//! A tiny hand-driven cluster for protocol unit tests: a FIFO network with no
//! faults but the ones a test asks for. The real laboratory is `quorum-sim`;
//! this exists so a protocol's module can test its own steps in isolation.
//! Each node is a `quorum_core::host::Host`, so the effect semantics (what a
//! persist keeps, what a crash forgets, how timers re-arm) are the
//! simulator's and the scripts', not a copy.

use std::collections::VecDeque;

use quorum_core::host::{Carried, Cut, Host};
use quorum_core::{Cluster, Effect, Micros, NodeId, Out, Protocol, RequestId, Rng, Time};

/// A test's look at a message before delivery: `(from, to, msg)`.
pub type Inspector<P> = Box<dyn FnMut(NodeId, NodeId, &<P as Protocol>::Msg)>;

pub struct Kit<P: Protocol> {
    hosts: Vec<Host<P>>,
    pub config: P::Config,
    pub now: Time,
    pub rng: Rng,
    /// In flight: (from, to, msg), delivered front first.
    pub network: VecDeque<(NodeId, NodeId, P::Msg)>,
    pub replies: Vec<(NodeId, RequestId, P::Response)>,
    /// Directed links that drop everything.
    pub cut: Vec<(NodeId, NodeId)>,
    /// Called with every message just before it is delivered, for tests
    /// that check what travels (message sizes, say).
    pub on_deliver: Option<Inspector<P>>,
    next_request: u64,
}

impl<P: Protocol> Kit<P> {
    pub fn new(n: u32, config: P::Config) -> Kit<P> {
        let members: Vec<NodeId> = (0..n).map(NodeId).collect();
        assert!(P::validate(&config, &members).is_ok(), "a test kit runs valid settings");
        let mut kit = Kit {
            hosts: members.iter().map(|&id| Host::new(Cluster::new(id, members.clone()))).collect(),
            config,
            now: Time::ZERO,
            rng: Rng::seed(1),
            network: VecDeque::new(),
            replies: Vec::new(),
            cut: Vec::new(),
            on_deliver: None,
            next_request: 0,
        };
        for id in members {
            kit.start(id);
        }
        kit
    }

    /// Nodes in the cluster, up or down.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Start `id` from its durable records (a running node is crashed first).
    pub fn start(&mut self, id: NodeId) {
        let mut rng = self.rng.clone();
        let host = &mut self.hosts[id.0 as usize];
        host.crash();
        let effects = host.start(&self.config, self.now, &mut rng);
        self.rng.next_u64();
        self.apply(id, effects);
    }

    pub fn crash(&mut self, id: NodeId) {
        self.hosts[id.0 as usize].crash();
    }

    pub fn node(&self, id: NodeId) -> &P {
        self.up(id.0 as usize).expect("node is up")
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut P {
        self.hosts[id.0 as usize].state_mut().expect("node is up")
    }

    /// Node `i`'s state, if it is up.
    pub fn up(&self, i: usize) -> Option<&P> {
        self.hosts[i].state()
    }

    /// Every node that is up, with its id.
    pub fn live(&self) -> impl Iterator<Item = (NodeId, &P)> {
        self.hosts.iter().filter_map(|h| h.state().map(|p| (h.id(), p)))
    }

    /// Node `i`'s durable log (records since its latest checkpoint).
    pub fn durable(&self, i: usize) -> &[P::Record] {
        self.hosts[i].durable()
    }

    /// Node `i`'s durable log, for tests that wipe or forge it.
    pub fn durable_mut(&mut self, i: usize) -> &mut Vec<P::Record> {
        self.hosts[i].durable_mut()
    }

    /// Make node `i`'s `timer` due at `at` (a test forcing a timeout).
    pub fn arm_timer(&mut self, i: usize, timer: P::Timer, at: Time) {
        self.hosts[i].arm_timer(timer, at);
    }

    /// Forget node `i`'s pending `timer`.
    pub fn cancel_timer(&mut self, i: usize, timer: &P::Timer) {
        self.hosts[i].cancel_timer(timer);
    }

    /// Forget every pending timer of node `i` (it goes quiet).
    pub fn clear_timers(&mut self, i: usize) {
        let timers: Vec<P::Timer> = self.hosts[i].timers().keys().cloned().collect();
        for timer in &timers {
            self.hosts[i].cancel_timer(timer);
        }
    }

    fn step(&mut self, id: NodeId, f: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        let mut rng = Rng::stream(self.rng.next_u64(), u64::from(id.0));
        let host = &mut self.hosts[id.0 as usize];
        if !host.is_up() {
            return;
        }
        let effects = host.step(self.now, &mut rng, f);
        self.apply(id, effects);
    }

    /// Carry out `id`'s effects through its host; sends join the network
    /// (unless the link is cut), replies are kept.
    fn apply(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        let (cut, network, replies) = (&self.cut, &mut self.network, &mut self.replies);
        self.hosts[id.0 as usize].execute(self.now, effects, Cut::Never, &mut |carried| match carried {
            Carried::Send { to, msg } if !cut.contains(&(id, to)) => network.push_back((id, to, msg)),
            Carried::Reply { id: rid, response } => replies.push((id, rid, response)),
            _ => {}
        });
    }

    /// Send a client request to `to`; returns its id.
    pub fn request(&mut self, to: NodeId, request: P::Request) -> RequestId {
        self.next_request += 1;
        let rid = RequestId::new(0, self.next_request);
        self.step(to, |p, out| p.on_request(rid, request, out));
        rid
    }

    /// Run an operator command at `node` (`Protocol::on_admin`), its effects
    /// carried out like any step's.
    pub fn admin(&mut self, node: NodeId, command: &str) -> Result<(), String> {
        let mut result = Err(format!("{node} is down"));
        self.step(node, |p, out| result = p.on_admin(command, out));
        result
    }

    /// Run `f` on `node` as a step of its own, its effects carried out.
    pub fn with(&mut self, node: NodeId, f: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        self.step(node, f);
    }

    /// Deliver every message in flight (and those they cause) until none is left
    /// or `max` deliveries happened. Messages to crashed nodes are lost.
    pub fn deliver_all(&mut self, max: usize) {
        for _ in 0..max {
            let Some((from, to, msg)) = self.network.pop_front() else { return };
            if let Some(inspect) = self.on_deliver.as_mut() {
                inspect(from, to, &msg);
            }
            self.step(to, |p, out| p.on_message(from, msg, out));
        }
    }

    /// Advance time by `by`, firing due timers in time order (ties: the
    /// lower node), delivering messages after each firing.
    pub fn advance(&mut self, by: Micros) {
        let until = self.now + by;
        loop {
            let next = self
                .hosts
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.next_due(until).map(|(due, timer)| (due, i, timer)))
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let Some((due, i, timer)) = next else { break };
            self.now = due.max(self.now);
            self.hosts[i].cancel_timer(&timer);
            self.step(NodeId(i as u32), |p, out| p.on_timer(timer, out));
            self.deliver_all(10_000);
        }
        self.now = until;
    }

    /// The response to `rid`, if one came.
    pub fn reply(&self, rid: RequestId) -> Option<&P::Response> {
        self.replies.iter().find(|(_, r, _)| *r == rid).map(|(_, _, resp)| resp)
    }
}
