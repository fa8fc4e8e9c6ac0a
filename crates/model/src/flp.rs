//! FLP made runnable: Fischer, Lynch and Paterson, "Impossibility of
//! Distributed Consensus with One Faulty Process" (JACM 1985).
//!
//! The theorem's model is the checker's asynchronous one with nothing
//! lost: messages are reordered arbitrarily but every one is delivered,
//! there are no clocks (a timer may fire at any moment, like the paper's
//! step that receives the null message), and each process starts with a
//! binary input: here a client request that gives node `i` its input,
//! pending from the start like a message from the environment.
//!
//! A configuration's **valence** is the set of decisions still reachable
//! from it. [`FlpConfig::walks`] seeded random walks look for them (each at
//! most `max_depth` events and `budgets.timeouts` timer firings, stopping
//! at the first decision): a value found is certainly reachable (the walk
//! is a witness), so a configuration called *bivalent* is bivalent; one
//! called univalent may only look so to the walks.
//!
//! * **Lemma 2**: some initial configuration is bivalent. [`flp`] finds the
//!   valence of all 2ⁿ input vectors and starts from the first bivalent
//!   one.
//! * **Lemma 3**: from a bivalent configuration C and an event e pending in
//!   it, some configuration reachable from C *without* e stays bivalent
//!   after e. The adversary takes e to be the oldest pending event (events
//!   queue in the order they became pending: inputs, messages, timers; an
//!   input refused and given again, or a timer set again, joins the back),
//!   so every message is delivered, every timer fires and every node keeps
//!   stepping: the run is admissible. It searches breadth-first for the
//!   shortest σ and applies σ then e. Every configuration on the way is
//!   bivalent (its valence contains that of the configuration after e).
//! * **The theorem**: repeating Lemma 3 forever gives an admissible run
//!   that never decides. The run is printed as a **lasso**: when it comes
//!   back, at the end of a step, to the *shape* of an earlier configuration
//!   (the same but for its numbers: ballots and terms grow, so nothing
//!   repeats exactly), the loop between them is fair (each event pending at
//!   its start happens in it) and going round it once more, event for
//!   event, keeps every configuration bivalent and comes back to the same
//!   shape, the run ends there: a stem, then the loop twice. Agreement and
//!   Validity are judged on every state of every search, as everywhere in
//!   the checker.
//!
//! What this does not do: prove the loop repeats forever (the paper's proof
//! does that; the run shows the adversary doing it), or use the crash the
//! theorem allows (no run here needs one: the adversary only reorders).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::{Debug, Write as _};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use quorum_core::NodeId;
use quorum_sim::script::Scripted;
use serde::Serialize;

use crate::replay::{path_script, script_command};
use crate::state::{Action, State, Universe};
use crate::{cluster_line, Budgets, Checkable, ModelConfig, ModelError};

/// What to search, and within which budgets.
#[derive(Clone, Debug)]
pub struct FlpConfig {
    /// The protocol and cluster; `budgets.timeouts` and `max_depth` bound
    /// each valence walk, `budgets.timeouts` each search for σ.
    pub model: ModelConfig,
    /// The request that gives a node input 0, and the one for input 1.
    pub inputs: [String; 2],
    /// Most Lemma 3 applications before the adversary gives up looking for
    /// a lasso.
    pub steps: usize,
    /// States each Lemma 3 search for σ may visit.
    pub sigma_states: u64,
    /// Random walks each valence search may take.
    pub walks: u32,
}

/// How to read a protocol as binary consensus.
pub struct Reading<P: quorum_core::Protocol> {
    /// A node's decision, if it has decided: the protocol's own reading of
    /// its state (Paxos: the value learned; Raft: the first command
    /// committed).
    pub decide: fn(&P) -> Option<u64>,
    /// A refusal a client retries (Raft's "not the leader"): the input is
    /// given again later, as a client would. `None`: inputs are given once.
    pub retry: Option<fn(&P::Response) -> bool>,
}

/// The valence found for a configuration, with the length of the shortest
/// path found to each decision.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Valence {
    pub zero: Option<usize>,
    pub one: Option<usize>,
    /// Steps the search took.
    pub states: u64,
}

impl Valence {
    pub fn bivalent(&self) -> bool {
        self.zero.is_some() && self.one.is_some()
    }

    /// `0-valent`, `1-valent`, `bivalent`, or `none` (no decision found).
    pub fn name(&self) -> &'static str {
        match (self.zero.is_some(), self.one.is_some()) {
            (true, true) => "bivalent",
            (true, false) => "0-valent",
            (false, true) => "1-valent",
            (false, false) => "none",
        }
    }
}

/// One initial configuration (Lemma 2).
#[derive(Clone, Debug, Serialize)]
pub struct Initial {
    /// Each node's input.
    pub inputs: Vec<u8>,
    pub valence: Valence,
}

/// One application of Lemma 3: the event e, the σ run before it, and the
/// valence of the configuration after it.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub event: String,
    pub sigma: Vec<String>,
    pub valence: Valence,
}

/// The run's shape: `stem` events, then a loop of `period` events that the
/// run goes round `repeats` times (see the module documentation).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Lasso {
    pub stem: usize,
    pub period: usize,
    pub repeats: usize,
}

/// What the FLP search showed.
#[derive(Clone, Debug, Serialize)]
pub struct FlpReport {
    pub initial: Vec<Initial>,
    /// The bivalent initial configuration the adversary starts from.
    pub start: Option<Vec<u8>>,
    pub steps: Vec<Step>,
    /// Every event of the run, as script commands.
    pub events: Vec<String>,
    pub lasso: Option<Lasso>,
    /// Why the adversary stopped before `steps`, if it did.
    pub stuck: Option<String>,
    /// A broken always property met by any search (none expected).
    pub violation: Option<String>,
    /// States visited by all searches together.
    pub states: u64,
    pub wall_ms: u64,
    /// The run as a script `quorum script` replays, the loop marked.
    pub script: String,
}

/// Lemma 2, then Lemma 3 `config.steps` times: see the module documentation.
pub fn flp<P: Checkable>(
    config: &FlpConfig,
    config_json: &str,
    reading: &Reading<P>,
) -> Result<FlpReport, ModelError> {
    let started = Instant::now();
    let mut search =
        Search::<P> { config, decide: reading.decide, retry: reading.retry, states: 0, violation: None };
    let (initial, start) = search.lemma2(config_json)?;
    let mut report = FlpReport {
        initial,
        start: start.as_ref().map(|(inputs, _, _)| inputs.clone()),
        steps: Vec::new(),
        events: Vec::new(),
        lasso: None,
        stuck: None,
        violation: None,
        states: 0,
        wall_ms: 0,
        script: String::new(),
    };
    if let Some((_, model, universe)) = start {
        let world = initial_world::<P>(&model, config_json)?;
        let (path, sigmas) = search.lemma3(State::initial(world, unbounded()), &universe, &mut report);
        let events = trace(
            State::initial(initial_world::<P>(&model, config_json)?, unbounded()),
            &universe,
            &model,
            &path,
        );
        let mut at = 0;
        for (step, sigma) in report.steps.iter_mut().zip(sigmas) {
            step.sigma = events[at..at + sigma].to_vec();
            step.event = events[at + sigma].clone();
            at += sigma + 1;
        }
        report.events = events;
        report.script = run_script::<P>(&model, config_json, &path, report.lasso)?;
    }
    report.violation = search.violation.take();
    report.states = search.states;
    report.wall_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Budgets no run exhausts: the adversary's own run is not bounded.
fn unbounded() -> Budgets {
    Budgets { timeouts: u32::MAX / 2, ..Budgets::default() }
}

/// A pending event, identified so that it can be found again after other
/// events: a request by number, a message by its fingerprint (link and
/// content), a timer by its node and name.
#[derive(Clone, Debug, PartialEq)]
enum Event<T> {
    Request(usize),
    Message(u64),
    Timer(NodeId, T),
}

struct Search<'a, P: Checkable> {
    config: &'a FlpConfig,
    decide: fn(&P) -> Option<u64>,
    retry: Option<fn(&P::Response) -> bool>,
    states: u64,
    violation: Option<String>,
}

impl<P: Checkable> Search<'_, P> {
    /// The valence of every input vector, and the first bivalent one with
    /// the model and universe that give its inputs.
    #[allow(clippy::type_complexity)]
    fn lemma2(
        &mut self,
        config_json: &str,
    ) -> Result<(Vec<Initial>, Option<(Vec<u8>, ModelConfig, Universe<P>)>), ModelError> {
        let n = self.config.model.nodes;
        if n > 8 {
            return Err(ModelError("--flp takes at most 8 nodes (2^n initial configurations)".into()));
        }
        let mut initial = Vec::new();
        let mut start = None;
        for vector in 0..1u32 << n {
            let inputs: Vec<u8> = (0..n).map(|i| (vector >> i & 1) as u8).collect();
            let model = self.with_inputs(&inputs);
            let universe = Universe { retry: self.retry, ..universe::<P>(&model)? };
            let state = State::initial(initial_world::<P>(&model, config_json)?, unbounded());
            let valence = self.valence(&state, &universe, self.config.walks);
            if valence.bivalent() && start.is_none() {
                start = Some((inputs.clone(), model, universe));
            }
            initial.push(Initial { inputs, valence });
        }
        Ok((initial, start))
    }

    /// The model whose requests give node `i` input `inputs[i]`.
    fn with_inputs(&self, inputs: &[u8]) -> ModelConfig {
        let mut model = self.config.model.clone();
        model.requests = inputs
            .iter()
            .enumerate()
            .map(|(i, b)| (NodeId(i as u32), self.config.inputs[*b as usize].clone()))
            .collect();
        model.requests_first = false;
        model.timely = false;
        model
    }

    /// Lemma 3, up to `steps` times, from `start`, until the run closes a
    /// lasso (see [`Search::close`]): the run's actions, and the length of
    /// each step's σ (the steps' texts are filled in later).
    fn lemma3(
        &mut self,
        start: State<P>,
        universe: &Universe<P>,
        report: &mut FlpReport,
    ) -> (Vec<Action<P::Timer>>, Vec<usize>) {
        let mut current = start;
        let mut path = Vec::new();
        let mut sigmas = Vec::new();
        let mut pending = VecDeque::new();
        let mut described = Vec::new();
        // Each shape met at a step's end: the run's length, the step, and
        // how many events were pending then.
        let mut seen: HashMap<u64, (usize, usize, usize)> = HashMap::new();
        for step in 0..self.config.steps {
            refresh(&mut pending, &current, universe);
            let here = shape(&current);
            if let Some(lasso) =
                self.close(&current, here, seen.get(&here), step, &described, universe, &mut path)
            {
                report.lasso = Some(lasso);
                break;
            }
            seen.entry(here).or_insert((path.len(), step, pending.len()));
            let Some(event) = pending.front().cloned() else {
                report.stuck = Some(format!("step {step}: no event pending"));
                break;
            };
            let Some((sigma, e, after, valence)) = self.extend(&current, &event, universe) else {
                report.stuck = Some(format!(
                    "step {step}: no bivalent extension of the oldest event within {} states",
                    self.config.sigma_states
                ));
                break;
            };
            let mut walked = current.clone();
            for action in sigma.iter().chain([&e]) {
                described.push((describe(&walked, action), action == &e));
                walked = walked.successor(action, universe).state;
                // An input given (and perhaps refused, to be given again)
                // or a timer fired (and perhaps set again) goes to the back
                // of the queue: the others are older now.
                match action {
                    Action::Request(i) => pending.retain(|p| *p != Event::Request(*i)),
                    Action::Fire(node, timer) => pending.retain(|p| *p != Event::Timer(*node, timer.clone())),
                    _ => {}
                }
            }
            report.steps.push(Step { event: String::new(), sigma: Vec::new(), valence });
            sigmas.push(sigma.len());
            path.extend(sigma);
            path.push(e);
            current = after.with_budgets(unbounded());
        }
        (path, sigmas)
    }

    /// Close the lasso if the run is back at a shape it met at the end of
    /// an earlier step, `earlier` (the run's length then, the step, and the
    /// events pending then): the loop must be fair (as many steps as there
    /// were events pending at its start, so each of them happened in it,
    /// oldest first), and going round it once more from here, event for
    /// event but for their numbers, must keep every configuration bivalent
    /// and come back to the same shape. The second round is added to `path`.
    #[allow(clippy::too_many_arguments)]
    fn close(
        &mut self,
        current: &State<P>,
        here: u64,
        earlier: Option<&(usize, usize, usize)>,
        step: usize,
        described: &[(String, bool)],
        universe: &Universe<P>,
        path: &mut Vec<Action<P::Timer>>,
    ) -> Option<Lasso> {
        let &(at, at_step, waiting) = earlier?;
        if step - at_step < waiting.max(1) {
            return None;
        }
        let mut state = current.clone();
        let mut round = Vec::new();
        for (want, step_end) in &described[at..] {
            let actions = state.actions(universe);
            let exact = actions.iter().find(|a| describe(&state, a) == *want);
            // A message whose receiver the sender drew at random (Paxos's
            // anti-entropy picks a peer) may go elsewhere this time round.
            let loose =
                || actions.iter().find(|a| receiver_free(&describe(&state, a)) == receiver_free(want));
            let action = exact.or_else(loose).cloned()?;
            state = self.step(&state, &action, universe)?;
            // Checked where the first round checked it, at each step's end:
            // a configuration before it has every decision it has.
            if *step_end && !self.valence(&state, universe, self.config.walks * 4).bivalent() {
                return None;
            }
            round.push(action);
        }
        if shape(&state) != here {
            return None;
        }
        let period = path.len() - at;
        path.extend(round);
        Some(Lasso { stem: at, period, repeats: 2 })
    }

    /// The shortest σ (not containing `event`) after which `event` leaves
    /// the configuration bivalent: σ, e as an action, the configuration
    /// after both, and its valence.
    #[allow(clippy::type_complexity)]
    fn extend(
        &mut self,
        from: &State<P>,
        event: &Event<P::Timer>,
        universe: &Universe<P>,
    ) -> Option<(Vec<Action<P::Timer>>, Action<P::Timer>, State<P>, Valence)> {
        let budgets = Budgets { timeouts: self.config.model.budgets.timeouts, ..Budgets::default() };
        let mut arena: Vec<(usize, Option<Action<P::Timer>>)> = vec![(0, None)];
        let mut queue = VecDeque::from([(0usize, from.with_budgets(budgets))]);
        let mut seen = HashSet::from([queue[0].1.fingerprint()]);
        while let Some((at, state)) = queue.pop_front() {
            if let Some(e) = action_for(&state, event) {
                let after = self.step(&state.with_budgets(unbounded()), &e, universe)?;
                let valence = self.valence(&after, universe, self.config.walks);
                if valence.bivalent() {
                    return Some((path_to(&arena, at), e, after, valence));
                }
            }
            if seen.len() as u64 >= self.config.sigma_states {
                return None;
            }
            for action in state.actions(universe) {
                if Some(&action) == action_for(&state, event).as_ref() {
                    continue;
                }
                let Some(next) = self.step(&state, &action, universe) else { continue };
                if seen.insert(next.fingerprint()) {
                    arena.push((at, Some(action)));
                    queue.push_back((arena.len() - 1, next));
                }
            }
        }
        None
    }

    /// The valence of `from`, by random walks (see [`FlpConfig::walks`]):
    /// each walk takes enabled events at random, at most `max_depth` of
    /// them and `budgets.timeouts` timer firings, until some node decides.
    fn valence(&mut self, from: &State<P>, universe: &Universe<P>, walks: u32) -> Valence {
        let model = &self.config.model;
        let budgets = Budgets { timeouts: model.budgets.timeouts, ..Budgets::default() };
        let mut valence = Valence::default();
        let mut rng = SplitMix(from.fingerprint());
        for _ in 0..walks {
            let mut state = from.with_budgets(budgets);
            for depth in 0..=model.max_depth as usize {
                self.states += 1;
                valence.states += 1;
                let decided = self.decisions(&state);
                if decided != 0 {
                    let found = if decided & 1 != 0 { &mut valence.zero } else { &mut valence.one };
                    *found = Some(found.map_or(depth, |d| d.min(depth)));
                    break;
                }
                let actions = state.actions(universe);
                if actions.is_empty() {
                    break;
                }
                let action = &actions[rng.below(actions.len())];
                match self.step(&state, action, universe) {
                    Some(next) => state = next,
                    None => break,
                }
            }
            if valence.bivalent() {
                break;
            }
        }
        valence
    }

    /// `action` from `state`; `None` if it broke an always property (kept).
    fn step(
        &mut self,
        state: &State<P>,
        action: &Action<P::Timer>,
        universe: &Universe<P>,
    ) -> Option<State<P>> {
        let next = state.successor(action, universe);
        match next.broken {
            Some(broken) => {
                self.violation.get_or_insert(format!("{}: {}", broken.kind, broken.what));
                None
            }
            None => Some(next.state),
        }
    }

    /// Bit `v` set: some node decided `v`.
    fn decisions(&self, state: &State<P>) -> u8 {
        let hosts = state.world().hosts();
        hosts.iter().filter_map(|h| h.state().and_then(self.decide)).fold(0, |bits, v| bits | 1 << v.min(7))
    }
}

/// Bring `pending`, the events pending in `state` oldest first, up to
/// date: drop those that happened, add those that became pending (inputs
/// not given, or refused and to be given again; messages sent) at the end.
fn refresh<P: Checkable>(pending: &mut VecDeque<Event<P::Timer>>, state: &State<P>, universe: &Universe<P>) {
    let mut in_flight: HashMap<u64, usize> = HashMap::new();
    for hash in state.message_hashes() {
        *in_flight.entry(*hash).or_default() += 1;
    }
    pending.retain(|event| match event {
        Event::Request(i) => !state.issued(*i),
        Event::Message(hash) => match in_flight.get_mut(hash) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        },
        Event::Timer(node, timer) => state.world().hosts()[node.0 as usize].timers().contains_key(timer),
    });
    for i in 0..universe.requests.len() {
        if !state.issued(i) && !pending.contains(&Event::Request(i)) {
            pending.push_back(Event::Request(i));
        }
    }
    // `in_flight` now counts the copies of each message not yet queued.
    for hash in state.message_hashes() {
        if let Some(n) = in_flight.get_mut(hash).filter(|n| **n > 0) {
            *n -= 1;
            pending.push_back(Event::Message(*hash));
        }
    }
    for (n, host) in state.world().hosts().iter().enumerate() {
        for timer in host.timers().keys() {
            let event = Event::Timer(NodeId(n as u32), timer.clone());
            if !pending.contains(&event) {
                pending.push_back(event);
            }
        }
    }
}

/// The action that takes `event` in `state`, if it is pending there.
fn action_for<P: Checkable>(state: &State<P>, event: &Event<P::Timer>) -> Option<Action<P::Timer>> {
    match event {
        Event::Request(i) => (!state.issued(*i)).then_some(Action::Request(*i)),
        Event::Message(hash) => state.message_hashes().iter().position(|h| h == hash).map(Action::Deliver),
        Event::Timer(node, timer) => {
            let host = &state.world().hosts()[node.0 as usize];
            (host.is_up() && host.timers().contains_key(timer)).then(|| Action::Fire(*node, timer.clone()))
        }
    }
}

/// The actions from the arena's root to entry `at`.
fn path_to<T: Clone>(arena: &[(usize, Option<Action<T>>)], mut at: usize) -> Vec<Action<T>> {
    let mut path = Vec::new();
    while let (parent, Some(action)) = &arena[at] {
        path.push(action.clone());
        at = *parent;
    }
    path.reverse();
    path
}

/// The run `path` from `start`, each event as a script command.
fn trace<P: Checkable>(
    start: State<P>,
    universe: &Universe<P>,
    model: &ModelConfig,
    path: &[Action<P::Timer>],
) -> Vec<String> {
    let mut state = start;
    let mut events = Vec::new();
    for action in path {
        events.push(script_command(state.world(), model, action));
        state = state.successor(action, universe).state;
    }
    events
}

/// A configuration as its nodes (state and timers) and the messages in
/// flight (as a multiset) describe themselves, with every number masked:
/// two configurations of one shape differ at most in their numbers
/// (ballots, terms, counters, values). What nodes wrote to disk is left
/// out: no node restarts in the run, so it changes nothing that follows.
fn shape<P: Checkable>(state: &State<P>) -> u64 {
    let world = state.world();
    let mut text = String::new();
    for host in world.hosts() {
        let _ = write!(text, "{:?}|", host.state());
        for timer in host.timers().keys() {
            let _ = write!(text, "{timer:?};");
        }
        text.push('\n');
    }
    let mut messages: Vec<String> =
        world.in_flight().iter().map(|(from, to, msg)| format!("n{}>n{}:{msg:?}", from.0, to.0)).collect();
    messages.sort();
    text.push_str(&messages.join("\n"));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    masked(&text).hash(&mut hasher);
    hasher.finish()
}

/// `text` with each number replaced by `#`, but for names (`n1`, a node),
/// values (`value: 1`: the inputs, which decide the valence), and ballots
/// (`3.n1`), replaced by their rank among the text's ballots, since which
/// of two ballots is higher decides what happens next.
fn masked(text: &str) -> String {
    let tokens = numbers(text);
    let mut ballots: Vec<u64> = tokens.iter().filter(|t| t.ballot).map(|t| t.value).collect();
    ballots.sort_unstable();
    ballots.dedup();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for token in &tokens {
        out.push_str(&text[at..token.start]);
        if token.ballot {
            let rank = ballots.binary_search(&token.value).unwrap_or(0);
            let _ = write!(out, "b{rank}");
        } else if token.kept {
            out.push_str(&text[token.start..token.end]);
        } else {
            out.push('#');
        }
        at = token.end;
    }
    out.push_str(&text[at..]);
    out
}

/// A run of digits in a text, and how [`masked`] treats it.
struct Number {
    start: usize,
    end: usize,
    value: u64,
    /// Part of a name, or a value: kept as it is.
    kept: bool,
    /// A ballot's counter (followed by `.n`).
    ballot: bool,
}

fn numbers(text: &str) -> Vec<Number> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let kept =
            (start > 0 && bytes[start - 1].is_ascii_alphabetic()) || text[..start].ends_with("value: ");
        let ballot = text[i..].starts_with(".n");
        let value = text[start..i].parse().unwrap_or(u64::MAX);
        found.push(Number { start, end: i, value, kept, ballot });
    }
    found
}

/// An event's description without the receiver of what it delivers.
fn receiver_free(described: &str) -> String {
    match (described.find('>'), described.find(':')) {
        (Some(arrow), Some(colon)) if described.starts_with("deliver") && arrow < colon => {
            format!("{}{}", &described[..arrow], &described[colon..])
        }
        _ => described.to_string(),
    }
}

/// `action` in `state` as the lasso compares events: what it delivers or
/// fires, with its link, numbers masked.
fn describe<P: Checkable>(state: &State<P>, action: &Action<P::Timer>) -> String {
    masked(&match action {
        Action::Deliver(i) => {
            let (from, to, msg) = &state.world().in_flight()[*i];
            format!("deliver n{}>n{}:{msg:?}", from.0, to.0)
        }
        Action::Fire(node, timer) => format!("fire n{} {timer:?}", node.0),
        other => format!("{other:?}"),
    })
}

fn initial_world<P: Checkable>(model: &ModelConfig, config_json: &str) -> Result<Scripted<P>, ModelError> {
    let mut world = Scripted::<P>::new(P::Config::default());
    world.set_quiet(true);
    world
        .run_command(&cluster_line(model, config_json))
        .map_err(|e| ModelError(format!("cannot start the cluster: {e}")))?;
    Ok(world)
}

fn universe<P: Checkable>(model: &ModelConfig) -> Result<Universe<P>, ModelError> {
    let requests = crate::parse_requests::<P>(model)?;
    Ok(Universe { requests, timely: false, requests_first: false, retry: None })
}

fn run_script<P: Checkable>(
    model: &ModelConfig,
    config_json: &str,
    path: &[Action<P::Timer>],
    lasso: Option<Lasso>,
) -> Result<String, ModelError> {
    let mut notes = vec![(
        0,
        format!("# FLP: the adversary's run for `quorum model --protocol {} --flp`\n", model.protocol),
    )];
    if let Some(l) = lasso {
        notes.push((l.stem + 1, format!("# The loop ({} events) starts here.\n", l.period)));
        notes.push((
            l.stem + l.period + 1,
            "# Round two: the same events but for their numbers.\n".to_string(),
        ));
    }
    path_script::<P>(model, config_json, &notes, path)
}

/// A small seeded generator (SplitMix64) for the valence walks: the same
/// configuration is always walked the same way.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}
