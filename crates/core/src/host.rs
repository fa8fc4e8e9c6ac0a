//! The node host: what every driver does with a protocol's effects.
//!
//! A [`Host`] holds one node of a cluster as a driver sees it: the
//! protocol's state while the node is up, the records it persisted (which
//! survive a crash), its pending timers and how many times it started. It
//! runs a step ([`Host::start`], [`Host::step`]) and then carries out the
//! step's effects ([`Host::execute`]) under a [`Cut`], the one place where
//! the contract's durability rule and the crash points of the laboratory
//! are written down:
//!
//! * effects are carried out in the order they were emitted;
//! * a `persist` or `checkpoint` is durable (in [`Host::durable`]) before the
//!   driver sees any effect after it, so a crash after it keeps the record
//!   and lets nothing after it out;
//! * [`Cut::AfterEffects`]`(k)` crashes the node after `k` of the step's
//!   effects (all of them if `k` is past the end): nothing after the cut
//!   happens;
//! * [`Cut::TornBroadcast`] crashes the node just after the step's first
//!   disk write with only some of its messages out, the rest lost with the
//!   node's send queues (whether the protocol sends before or after writing).
//!
//! The simulator, the script runner and the protocols' unit-test kit all
//! drive nodes through it, so the three cannot disagree about what a crash
//! keeps. The server carries out the same rule with a real disk (group
//! commit releases a step's later effects only after the fsync).

use std::collections::BTreeMap;

use crate::{Cluster, Effect, Micros, NodeId, Observation, Out, Protocol, RequestId, Rng, Time};

/// A pending timer: when it is due and which arming it is (a re-armed timer
/// gets a new generation, so an event-queue driver can tell a stale firing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed {
    pub due: Time,
    pub generation: u64,
}

/// Where a step's effects stop because the node dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The node survives the step.
    Never,
    /// The node dies after carrying out this many effects (at the end of the
    /// step if the step has fewer).
    AfterEffects(u32),
    /// The node dies just after the step's first persist or checkpoint,
    /// with at most `sends` of the step's messages out: once `sends`
    /// messages left, later ones are lost with it, and nothing after the
    /// disk write happens once no send is left to go.
    TornBroadcast { sends: u32 },
}

/// One effect as the host carried it out, for the driver to route. Durable
/// records and timers have already changed when the driver sees these.
#[derive(Debug)]
pub enum Carried<'a, P: Protocol> {
    Send {
        to: NodeId,
        msg: P::Msg,
    },
    /// A message still in the node's send queue when it died.
    Lost {
        to: NodeId,
    },
    Persist(&'a P::Record),
    Checkpoint(&'a P::Record),
    /// A timer was armed (or re-armed); cancellations need no routing.
    Timer {
        timer: &'a P::Timer,
        armed: Armed,
    },
    Reply {
        id: RequestId,
        response: P::Response,
    },
    Observe(Observation),
}

/// What a step's execution did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Executed {
    /// Some persist or checkpoint was carried out.
    pub persisted: bool,
    /// The cut struck: the node is down now.
    pub crashed: bool,
}

/// One node as a driver holds it. See the module documentation.
#[derive(Clone)]
pub struct Host<P: Protocol> {
    cluster: Cluster,
    state: Option<P>,
    durable: Vec<P::Record>,
    timers: BTreeMap<P::Timer, Armed>,
    next_generation: u64,
    incarnation: u64,
    /// Timer rate: a timer set for `d` is due after `d * drift`.
    drift: f64,
    /// The node's signing keys, lent to every step.
    keys: crate::byzantine::Keys,
}

impl<P: Protocol> Host<P> {
    /// A node that has not started yet, with timers at the true rate.
    pub fn new(cluster: Cluster) -> Host<P> {
        let cluster_id = cluster.id;
        Host {
            cluster,
            state: None,
            durable: Vec::new(),
            timers: BTreeMap::new(),
            next_generation: 0,
            incarnation: 0,
            drift: 1.0,
            keys: crate::byzantine::Keys::new(0, cluster_id),
        }
    }

    /// Sign with keys derived from the run's `secret` (a driver's, never a
    /// protocol's).
    pub fn with_secret(mut self, secret: u64) -> Host<P> {
        self.keys = crate::byzantine::Keys::new(secret, self.cluster.id);
        self
    }

    /// Run this node's timers at `drift` times the true duration.
    pub fn with_drift(mut self, drift: f64) -> Host<P> {
        assert!(drift > 0.0, "a timer rate must be positive");
        self.drift = drift;
        self
    }

    pub fn id(&self) -> NodeId {
        self.cluster.id
    }

    pub fn is_up(&self) -> bool {
        self.state.is_some()
    }

    /// The protocol's state, while the node is up.
    pub fn state(&self) -> Option<&P> {
        self.state.as_ref()
    }

    pub fn state_mut(&mut self) -> Option<&mut P> {
        self.state.as_mut()
    }

    /// Every record persisted since the latest checkpoint (which comes first).
    pub fn durable(&self) -> &[P::Record] {
        &self.durable
    }

    /// The durable log itself, for tests that damage or forge it.
    pub fn durable_mut(&mut self) -> &mut Vec<P::Record> {
        &mut self.durable
    }

    /// How many times the node started (0 before the first start).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn timers(&self) -> &BTreeMap<P::Timer, Armed> {
        &self.timers
    }

    /// Start the node (fresh, or recovering from its durable records) and
    /// return the effects of its start, to be carried out by
    /// [`Host::execute`]. `config` must have passed [`Protocol::validate`].
    pub fn start(&mut self, config: &P::Config, now: Time, rng: &mut Rng) -> Vec<Effect<P>> {
        assert!(self.state.is_none(), "{} is already running", self.cluster.id);
        self.incarnation += 1;
        self.timers.clear();
        let mut out = Out::new(now, rng).with_keys(self.keys);
        let state = P::start(&self.cluster, config, &self.durable, &mut out);
        state.invariants();
        self.state = Some(state);
        out.into_effects()
    }

    /// Run one input on the running node, check its invariants, and return
    /// the step's effects, to be carried out by [`Host::execute`].
    pub fn step(
        &mut self,
        now: Time,
        rng: &mut Rng,
        input: impl FnOnce(&mut P, &mut Out<'_, P>),
    ) -> Vec<Effect<P>> {
        let state = self.state.as_mut().expect("steps run only on a running node");
        let mut out = Out::new(now, rng).with_keys(self.keys);
        input(state, &mut out);
        state.invariants();
        out.into_effects()
    }

    /// The node dies: its state and timers are gone, its durable records
    /// stay. A no-op if it is down already.
    pub fn crash(&mut self) {
        self.state = None;
        self.timers.clear();
    }

    /// Disarm `timer` if `generation` is its latest arming (an event-queue
    /// driver's firing); false if it was re-armed or cancelled since.
    pub fn take_timer(&mut self, timer: &P::Timer, generation: u64) -> bool {
        if self.timers.get(timer).map(|armed| armed.generation) != Some(generation) {
            return false;
        }
        self.timers.remove(timer);
        true
    }

    /// The earliest pending timer due at or before `until` (a scanning
    /// driver's next firing), earliest first, ties in timer order.
    pub fn next_due(&self, until: Time) -> Option<(Time, P::Timer)> {
        self.timers
            .iter()
            .filter(|(_, armed)| armed.due <= until)
            .min_by_key(|(_, armed)| armed.due)
            .map(|(timer, armed)| (armed.due, timer.clone()))
    }

    /// Disarm `timer` unconditionally; whether it was pending.
    pub fn cancel_timer(&mut self, timer: &P::Timer) -> bool {
        self.timers.remove(timer).is_some()
    }

    /// Arm `timer` to be due at `due` (tests that force a timeout).
    pub fn arm_timer(&mut self, timer: P::Timer, due: Time) -> Armed {
        self.next_generation += 1;
        let armed = Armed { due, generation: self.next_generation };
        self.timers.insert(timer, armed);
        armed
    }

    /// Carry out a step's effects in order under `cut`, handing each one to
    /// `route` as it happens (see the module documentation). If the cut
    /// strikes, the node is down when this returns.
    pub fn execute(
        &mut self,
        now: Time,
        effects: Vec<Effect<P>>,
        cut: Cut,
        route: &mut dyn FnMut(Carried<'_, P>),
    ) -> Executed {
        let mut done = Executed::default();
        match cut {
            Cut::Never => {
                for effect in effects {
                    self.carry(now, effect, &mut done, route);
                }
            }
            Cut::AfterEffects(k) => {
                for effect in effects.into_iter().take(k as usize) {
                    self.carry(now, effect, &mut done, route);
                }
                self.crash();
                done.crashed = true;
            }
            Cut::TornBroadcast { sends } => self.execute_torn(now, effects, sends, &mut done, route),
        }
        done
    }

    fn execute_torn(
        &mut self,
        now: Time,
        effects: Vec<Effect<P>>,
        sends: u32,
        done: &mut Executed,
        route: &mut dyn FnMut(Carried<'_, P>),
    ) {
        let mut sends_left = sends;
        for effect in effects {
            if done.persisted && sends_left == 0 {
                break;
            }
            match effect {
                Effect::Send { to, .. } if sends_left == 0 => route(Carried::Lost { to }),
                Effect::Send { .. } => {
                    sends_left -= 1;
                    self.carry(now, effect, done, route);
                }
                other => self.carry(now, other, done, route),
            }
        }
        self.crash();
        done.crashed = true;
    }

    fn carry(
        &mut self,
        now: Time,
        effect: Effect<P>,
        done: &mut Executed,
        route: &mut dyn FnMut(Carried<'_, P>),
    ) {
        match effect {
            Effect::Send { to, msg } => route(Carried::Send { to, msg }),
            Effect::Persist(record) => {
                done.persisted = true;
                self.durable.push(record);
                route(Carried::Persist(self.durable.last().expect("just pushed")));
            }
            Effect::Checkpoint(record) => {
                done.persisted = true;
                self.durable.clear();
                self.durable.push(record);
                route(Carried::Checkpoint(&self.durable[0]));
            }
            Effect::SetTimer { timer, after } => {
                let due = now + Micros((after.0 as f64 * self.drift) as u64);
                let armed = self.arm_timer(timer.clone(), due);
                route(Carried::Timer { timer: &timer, armed });
            }
            Effect::CancelTimer(timer) => {
                self.timers.remove(&timer);
            }
            Effect::Reply { id, response } => route(Carried::Reply { id, response }),
            Effect::Observe(observation) => route(Carried::Observe(observation)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    /// A node that, on any message, persists it, sends it on, persists it
    /// again, sends it again and arms a timer: enough effects to cut
    /// anywhere.
    struct Echo;

    impl Protocol for Echo {
        type Msg = u8;
        type Request = ();
        type Response = ();
        type Record = u8;
        type Timer = u8;
        type Config = ();

        fn validate(_: &(), _: &[NodeId]) -> Result<(), ConfigError> {
            Ok(())
        }
        fn start(_: &Cluster, _: &(), _: &[u8], _: &mut Out<'_, Self>) -> Self {
            Echo
        }
        fn on_message(&mut self, from: NodeId, msg: u8, out: &mut Out<'_, Self>) {
            out.persist(msg);
            out.send(from, msg);
            out.persist(msg + 1);
            out.send(from, msg + 1);
            out.set_timer(7, Micros(10));
        }
        fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}
        fn on_request(&mut self, _: RequestId, _: (), _: &mut Out<'_, Self>) {}
    }

    fn host() -> (Host<Echo>, Rng) {
        let mut host = Host::new(Cluster::new(NodeId(0), vec![NodeId(0), NodeId(1)]));
        let mut rng = Rng::seed(1);
        let effects = host.start(&(), Time::ZERO, &mut rng);
        assert!(effects.is_empty());
        (host, rng)
    }

    /// Run one message under `cut`; what left the node, in order.
    fn run(cut: Cut) -> (Host<Echo>, Vec<String>, Executed) {
        let (mut host, mut rng) = host();
        let effects = host.step(Time(5), &mut rng, |p, out| p.on_message(NodeId(1), 10, out));
        let mut seen = Vec::new();
        let done = host.execute(Time(5), effects, cut, &mut |c| {
            seen.push(match c {
                Carried::Send { msg, .. } => format!("send {msg}"),
                Carried::Lost { .. } => "lost".into(),
                Carried::Persist(r) => format!("persist {r}"),
                Carried::Timer { armed, .. } => format!("timer {}", armed.due.0),
                Carried::Checkpoint(r) => format!("checkpoint {r}"),
                Carried::Reply { .. } | Carried::Observe(_) => "other".into(),
            })
        });
        (host, seen, done)
    }

    #[test]
    fn effects_are_carried_out_in_order() {
        let (host, seen, done) = run(Cut::Never);
        assert_eq!(seen, ["persist 10", "send 10", "persist 11", "send 11", "timer 15"]);
        assert_eq!(done, Executed { persisted: true, crashed: false });
        assert_eq!(host.durable(), &[10, 11]);
        assert!(host.is_up());
        assert_eq!(host.timers().len(), 1);
    }

    /// The persist rule: a crash after k effects keeps what was persisted
    /// before the cut and lets nothing after it out.
    #[test]
    fn a_cut_keeps_what_was_persisted_before_it_and_nothing_after() {
        let (host, seen, done) = run(Cut::AfterEffects(1));
        assert_eq!(seen, ["persist 10"]);
        assert_eq!(done, Executed { persisted: true, crashed: true });
        assert_eq!(host.durable(), &[10]);
        assert!(!host.is_up());
        assert!(host.timers().is_empty(), "a crash forgets timers");
        let (host, seen, _) = run(Cut::AfterEffects(0));
        assert!(seen.is_empty() && host.durable().is_empty());
        let (host, seen, done) = run(Cut::AfterEffects(99));
        assert_eq!(seen.len(), 5, "past the end: the whole step, then the crash");
        assert!(done.crashed && !host.is_up());
    }

    /// A torn broadcast: the first disk write lands, `sends` messages get
    /// out, the rest die in the send queue, and nothing follows the write
    /// once no send is left to go.
    #[test]
    fn a_torn_broadcast_dies_just_after_its_first_write() {
        let (host, seen, done) = run(Cut::TornBroadcast { sends: 0 });
        assert_eq!(seen, ["persist 10"]);
        assert_eq!(host.durable(), &[10]);
        assert!(done.crashed);
        let (host, seen, _) = run(Cut::TornBroadcast { sends: 1 });
        assert_eq!(seen, ["persist 10", "send 10"], "one message out after the write, then it dies");
        assert_eq!(host.durable(), &[10]);
    }

    #[test]
    fn timers_fire_once_per_arming_and_follow_drift() {
        let mut host: Host<Echo> = Host::new(Cluster::new(NodeId(0), vec![NodeId(0)])).with_drift(1.5);
        let mut rng = Rng::seed(1);
        host.start(&(), Time::ZERO, &mut rng);
        let effects = host.step(Time(0), &mut rng, |p, out| p.on_message(NodeId(0), 1, out));
        let mut armed = None;
        host.execute(Time(0), effects, Cut::Never, &mut |c| {
            if let Carried::Timer { armed: a, .. } = c {
                armed = Some(a);
            }
        });
        let armed = armed.expect("a timer was armed");
        assert_eq!(armed.due, Time(15), "10 µs at rate 1.5");
        assert_eq!(host.next_due(Time(20)), Some((Time(15), 7)));
        assert_eq!(host.next_due(Time(14)), None);
        assert!(!host.take_timer(&7, armed.generation + 1), "a stale arming does not fire");
        assert!(host.take_timer(&7, armed.generation));
        assert!(!host.take_timer(&7, armed.generation), "fires once");
    }

    #[test]
    fn a_restart_recovers_from_the_durable_records() {
        let (mut host, mut rng) = host();
        let effects = host.step(Time(5), &mut rng, |p, out| p.on_message(NodeId(1), 3, out));
        host.execute(Time(5), effects, Cut::Never, &mut |_| {});
        host.crash();
        assert_eq!(host.durable(), &[3, 4]);
        host.start(&(), Time(9), &mut rng);
        assert_eq!(host.incarnation(), 2);
        assert!(host.is_up());
    }
}
