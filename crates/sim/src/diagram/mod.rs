//! Space-time diagrams of runs: a structured record of what happened, and
//! its drawing as SVG.
//!
//! A [`Recording`] is the run as a list of typed events in the order they
//! happened: each node step's input (a delivery, a timer, a client request,
//! a start or restart, a crash) followed by the effects it had (sends,
//! persists, replies, role changes), plus faults, the network's partitions
//! and the clients' invocations and completions. The simulator's world and
//! the script runner both feed one (`Capture::record` and
//! `Scripted::record`), off unless asked, so an exploration pays nothing.
//! [`svg::render`] draws it: one vertical line per node (and per client),
//! time flowing down, one row per step, messages as arrows from send to
//! delivery, drops as crosses (Lamport's space-time diagram, 1978).

pub mod svg;

use std::fmt::Debug;

use serde::Serialize;

/// What the vertical axis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Clock {
    /// Simulated microseconds (a simulator run).
    Micros,
    /// Steps of a script (time stands still in a script unless it says
    /// `advance`; a step is one command's input to one node).
    Steps,
}

/// One event of a run, at `at` (in the recording's [`Clock`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recorded {
    pub at: u64,
    pub what: What,
}

/// The events a diagram draws. Node and client numbers index
/// [`Recording::nodes`] and the clients seen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum What {
    // Inputs: each begins a step (a row of the diagram).
    /// Message `id` from `from` reached `to`, which handles it.
    Deliver { id: u64, from: u32, to: u32 },
    /// Message `id` reached `to`, which is down: lost.
    DropOnArrival { id: u64, from: u32, to: u32 },
    /// `node`'s timer fired.
    Timer { node: u32, label: String },
    /// Client `client`'s request `rid` reached `node`.
    Request { client: u32, node: u32, rid: String, label: String },
    /// `node` started (`restart`: again, from its durable records).
    Start { node: u32, restart: bool },
    /// `node` crashed (`how`: now, mid-step, killed after a persist...).
    Crash { node: u32, how: String },
    /// A fault or a heal; `blocked` is the set of directed links the
    /// network drops from now on, when the fault changed it.
    Fault { label: String, blocked: Option<Vec<(u32, u32)>> },
    /// Client `client` sent request `rid` to `node` (`retry`: again, with
    /// the same id, after a timeout or a refusal; `dropped`: a partition
    /// cut it off on its way).
    Invoke { client: u32, node: u32, rid: String, label: String, retry: bool, dropped: bool },
    /// Client `client` heard `label` for `rid` from `node`, or gave up
    /// waiting (`node` is `None`: a timeout).
    Complete { client: u32, node: Option<u32>, rid: String, label: String },
    // Effects of the current step.
    /// `from` sent message `id` to `to`.
    Send { id: u64, from: u32, to: u32, label: String, detail: String },
    /// `from` sent message `id` to `to` and the network lost it
    /// (`why`: partition, loss).
    DropOnSend { id: u64, from: u32, to: u32, why: String, label: String, detail: String },
    /// A message to `to` still in `from`'s send queue when it died.
    LostInCrash { from: u32, to: u32 },
    /// `node` made `label` durable (a persist or a checkpoint).
    Persist { node: u32, label: String },
    /// `node` answered `rid` of `client` (`dropped`: a partition cut the
    /// answer off from the client).
    Reply { node: u32, client: u32, rid: String, label: String, dropped: bool },
    /// `node` took `role` in `term` (as the protocol observed it).
    Role { node: u32, role: String, term: u64 },
    /// Something a node decided that the reader should see (a consensus
    /// decision, a transaction's outcome).
    Mark { node: u32, label: String },
}

impl What {
    /// Whether this event begins a step (a new row) rather than being an
    /// effect of the current one.
    pub fn opens_row(&self) -> bool {
        !matches!(
            self,
            What::Send { .. }
                | What::DropOnSend { .. }
                | What::LostInCrash { .. }
                | What::Persist { .. }
                | What::Reply { .. }
                | What::Role { .. }
                | What::Mark { .. }
        )
    }
}

/// A run as a diagram draws it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recording {
    pub clock: Clock,
    /// The nodes' names, by id.
    pub nodes: Vec<String>,
    pub events: Vec<Recorded>,
}

impl Recording {
    pub fn new(clock: Clock, nodes: Vec<String>) -> Recording {
        Recording { clock, nodes, events: Vec::new() }
    }

    pub fn push(&mut self, at: u64, what: What) {
        debug_assert!(self.events.last().is_none_or(|e| e.at <= at), "events are recorded in time order");
        self.events.push(Recorded { at, what });
    }

    /// How many recorded events match `pred` (for tests and summaries).
    pub fn count(&self, pred: impl Fn(&What) -> bool) -> usize {
        self.events.iter().filter(|e| pred(&e.what)).count()
    }

    /// Only the events with `at` in `[from, to]` (a window of a long run).
    pub fn window(&self, from: u64, to: u64) -> Recording {
        let events = self.events.iter().filter(|e| (from..=to).contains(&e.at)).cloned().collect();
        Recording { clock: self.clock, nodes: self.nodes.clone(), events }
    }
}

/// A short label for a message, record or timer: its `Debug` form's first
/// word (an enum variant's name), and the whole form cut to a tooltip's
/// length.
pub fn labels<T: Debug>(value: &T) -> (String, String) {
    let detail = format!("{value:?}");
    let label: String = detail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').take(24).collect();
    let label = if label.is_empty() { detail.chars().take(24).collect() } else { label };
    let detail = if detail.chars().count() > 300 {
        detail.chars().take(300).collect::<String>() + "…"
    } else {
        detail
    };
    (label, detail)
}

/// The role's name in a diagram.
pub fn role_name(role: quorum_core::Role) -> &'static str {
    match role {
        quorum_core::Role::Leader => "leader",
        quorum_core::Role::Follower => "follower",
        quorum_core::Role::Candidate => "candidate",
    }
}

/// The observations a diagram shows: roles, and decisions as marks.
pub fn observed(node: u32, observation: &quorum_core::Observation) -> Option<What> {
    use quorum_core::Observation;
    match observation {
        Observation::Role { role, term } => {
            Some(What::Role { node, role: role_name(*role).to_string(), term: *term })
        }
        Observation::Decide { instance, value } => {
            Some(What::Mark { node, label: format!("decide {instance}: {value}") })
        }
        Observation::TxnDecided { txn, commit } => {
            Some(What::Mark { node, label: format!("{} t{txn}", if *commit { "commit" } else { "abort" }) })
        }
        Observation::Prepared { txn } => Some(What::Mark { node, label: format!("prepared t{txn}") }),
        _ => None,
    }
}

/// A recording kept by a driver that counts steps instead of time (the
/// script runner): the step clock, and the id of each message in flight,
/// kept in the driver's in-flight order (the driver mirrors each change of
/// its queue here, so a delivery finds its send).
#[derive(Clone, Debug)]
pub struct StepRecorder {
    pub recording: Recording,
    ids: std::collections::VecDeque<u64>,
    next_id: u64,
    step: u64,
}

impl StepRecorder {
    pub fn new(nodes: Vec<String>) -> StepRecorder {
        StepRecorder {
            recording: Recording::new(Clock::Steps, nodes),
            ids: std::collections::VecDeque::new(),
            next_id: 0,
            step: 0,
        }
    }

    /// Record `what`: an input opens the next step, an effect joins the
    /// current one.
    pub fn push(&mut self, what: What) {
        if what.opens_row() {
            self.step += 1;
        }
        self.recording.push(self.step, what);
    }

    /// A message from `from` to `to` joins the back of the in-flight
    /// queue; its id.
    pub fn send(&mut self, from: u32, to: u32, label: String, detail: String) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.ids.push_back(id);
        self.push(What::Send { id, from, to, label, detail });
        id
    }

    /// A message that never entered the queue (sent across a cut).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The id of in-flight message `index`, which leaves the queue.
    pub fn remove(&mut self, index: usize) -> u64 {
        self.ids.remove(index).expect("the ids mirror the messages in flight")
    }

    /// The id of in-flight message `index`, which stays (a duplicate).
    pub fn get(&self, index: usize) -> u64 {
        self.ids[index]
    }

    /// Keep the in-flight messages whose `keep` is true (the driver's
    /// `retain`, as a mask in queue order); the ids of the others.
    pub fn retain(&mut self, keep: &[bool]) -> Vec<u64> {
        assert_eq!(keep.len(), self.ids.len(), "the mask covers the messages in flight");
        let mut gone = Vec::new();
        let mut i = 0;
        self.ids.retain(|id| {
            i += 1;
            if !keep[i - 1] {
                gone.push(*id);
            }
            keep[i - 1]
        });
        gone
    }
}
