//! A tiny hand-driven cluster for protocol unit tests: a FIFO network with no
//! faults but the ones a test asks for. The real laboratory is `quorum-sim`;
//! this exists so a protocol's module can test its own steps in isolation.

use std::collections::{BTreeMap, VecDeque};

use quorum_core::{Cluster, Effect, Micros, NodeId, Out, Protocol, RequestId, Rng, Time};

/// A test's look at a message before delivery: `(from, to, msg)`.
pub type Inspector<P> = Box<dyn FnMut(NodeId, NodeId, &<P as Protocol>::Msg)>;

pub struct Kit<P: Protocol> {
    pub nodes: Vec<Option<P>>,
    pub durable: Vec<Vec<P::Record>>,
    pub config: P::Config,
    pub now: Time,
    pub rng: Rng,
    /// In flight: (from, to, msg), delivered front first.
    pub network: VecDeque<(NodeId, NodeId, P::Msg)>,
    /// Pending timers per node: timer -> due time.
    pub timers: Vec<BTreeMap<P::Timer, Time>>,
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
        let mut kit = Kit {
            nodes: Vec::new(),
            durable: vec![Vec::new(); n as usize],
            config,
            now: Time::ZERO,
            rng: Rng::seed(1),
            network: VecDeque::new(),
            timers: vec![BTreeMap::new(); n as usize],
            replies: Vec::new(),
            cut: Vec::new(),
            on_deliver: None,
            next_request: 0,
        };
        kit.nodes = (0..n).map(|_| None).collect();
        for i in 0..n {
            kit.start(NodeId(i));
        }
        kit
    }

    fn cluster(&self, id: NodeId) -> Cluster {
        Cluster::new(id, (0..self.nodes.len() as u32).map(NodeId).collect())
    }

    pub fn start(&mut self, id: NodeId) {
        let cluster = self.cluster(id);
        let durable = self.durable[id.0 as usize].clone();
        let mut rng = self.rng.clone();
        let mut out = Out::new(self.now, &mut rng);
        let node = P::start(&cluster, &self.config, &durable, &mut out);
        let effects = out.into_effects();
        self.rng.next_u64();
        self.nodes[id.0 as usize] = Some(node);
        self.timers[id.0 as usize].clear();
        self.apply(id, effects);
    }

    pub fn crash(&mut self, id: NodeId) {
        self.nodes[id.0 as usize] = None;
        self.timers[id.0 as usize].clear();
    }

    pub fn node(&self, id: NodeId) -> &P {
        self.nodes[id.0 as usize].as_ref().expect("node is up")
    }

    fn step(&mut self, id: NodeId, f: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        let mut rng = Rng::stream(self.rng.next_u64(), u64::from(id.0));
        let Some(node) = self.nodes[id.0 as usize].as_mut() else { return };
        let mut out = Out::new(self.now, &mut rng);
        f(node, &mut out);
        node.invariants();
        let effects = out.into_effects();
        self.apply(id, effects);
    }

    fn apply(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    if !self.cut.contains(&(id, to)) {
                        self.network.push_back((id, to, msg));
                    }
                }
                Effect::Persist(r) => self.durable[id.0 as usize].push(r),
                Effect::Checkpoint(r) => self.durable[id.0 as usize] = vec![r],
                Effect::SetTimer { timer, after } => {
                    self.timers[id.0 as usize].insert(timer, self.now + after);
                }
                Effect::CancelTimer(timer) => {
                    self.timers[id.0 as usize].remove(&timer);
                }
                Effect::Reply { id: rid, response } => self.replies.push((id, rid, response)),
                Effect::Observe(_) => {}
            }
        }
    }

    /// Send a client request to `to`; returns its id.
    pub fn request(&mut self, to: NodeId, request: P::Request) -> RequestId {
        self.next_request += 1;
        let rid = RequestId::new(0, self.next_request);
        self.step(to, |p, out| p.on_request(rid, request, out));
        rid
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

    /// Advance time by `by`, firing due timers in time order, delivering
    /// messages after each firing.
    pub fn advance(&mut self, by: Micros) {
        let until = self.now + by;
        loop {
            let next = self
                .timers
                .iter()
                .enumerate()
                .flat_map(|(i, t)| t.iter().map(move |(timer, due)| (*due, i, timer.clone())))
                .filter(|(due, _, _)| *due <= until)
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let Some((due, i, timer)) = next else { break };
            self.now = due.max(self.now);
            self.timers[i].remove(&timer);
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
