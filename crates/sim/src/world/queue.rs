//! The event queue: everything that will happen, in virtual-time order
//! (ties in the order they were scheduled, so a run is a function of its
//! seed), and the budgets that stop a run that runs away.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use quorum_core::{NodeId, Protocol, RequestId, Time};

use crate::config::Budgets;
use crate::outcome::Peaks;

pub(super) enum Event<P: Protocol> {
    /// Message number `id` (the run's count of sends when it was sent,
    /// wrapping at 2^32, far past any run's budget; a duplicate keeps its
    /// original's), for diagrams, from node `from` to node `to` (at most 64
    /// nodes: `SimConfig::validate`). Id and link fit in the 8 bytes two
    /// `NodeId`s took, so the queue's events do not grow for it.
    Deliver {
        id: u32,
        from: u16,
        to: u16,
        msg: P::Msg,
    },
    Timer {
        node: NodeId,
        timer: P::Timer,
        generation: u64,
    },
    /// A client's request reaches a node.
    Request {
        node: NodeId,
        rid: RequestId,
        request: P::Request,
    },
    /// A node's reply reaches its client.
    Reply {
        rid: RequestId,
        node: NodeId,
        response: P::Response,
    },
    /// Attempt `attempt` of request `rid` timed out (a later attempt has
    /// its own timeout).
    Timeout {
        rid: RequestId,
        attempt: u32,
    },
    ClientWake {
        client: usize,
    },
    /// Entry `i` of the fault schedule.
    Fault(usize),
    /// The end of the safety phase: heal everything.
    Heal,
    /// The end of quiescence: compare replicas, start the final reads.
    QuiesceEnd,
    /// The final reader retries after a failure.
    FinalRead,
    /// A killed node's supervisor restarts it (if it is still the same
    /// incarnation, down).
    Revive {
        node: NodeId,
        incarnation: u64,
    },
}

impl<P: Protocol> Event<P> {
    /// The node an event happens at, if any (for crash and pause).
    pub(super) fn node(&self) -> Option<NodeId> {
        match self {
            Event::Deliver { to, .. } => Some(NodeId(u32::from(*to))),
            Event::Timer { node, .. } | Event::Request { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct Queued<P: Protocol> {
    at: Time,
    seq: u64,
    event: Event<P>,
}

impl<P: Protocol> PartialEq for Queued<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<P: Protocol> Eq for Queued<P> {}
impl<P: Protocol> PartialOrd for Queued<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P: Protocol> Ord for Queued<P> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub(super) struct Queue<P: Protocol> {
    heap: BinaryHeap<Queued<P>>,
    seq: u64,
}

impl<P: Protocol> Queue<P> {
    pub(super) fn new() -> Queue<P> {
        Queue { heap: BinaryHeap::new(), seq: 0 }
    }

    pub(super) fn push(&mut self, at: Time, event: Event<P>) {
        self.seq += 1;
        self.heap.push(Queued { at, seq: self.seq, event });
    }

    /// The earliest event, and when it happens.
    pub(super) fn pop(&mut self) -> Option<(Time, Event<P>)> {
        self.heap.pop().map(|q| (q.at, q.event))
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// Counts a run against its [`Budgets`].
pub(super) struct Meter {
    budgets: Budgets,
    events: u64,
    /// The simulated millisecond being counted, and its events so far.
    ms: u64,
    events_this_ms: u64,
    /// The most queued at once and in one millisecond so far.
    peak_queue: usize,
    peak_events_per_ms: u64,
}

impl Meter {
    pub(super) fn new(budgets: Budgets) -> Meter {
        Meter { budgets, events: 0, ms: 0, events_this_ms: 0, peak_queue: 0, peak_events_per_ms: 0 }
    }

    pub(super) fn events(&self) -> u64 {
        self.events
    }

    /// How close the run came to each budget.
    pub(super) fn peaks(&self) -> Peaks {
        Peaks { events: self.events, queue: self.peak_queue, events_per_ms: self.peak_events_per_ms }
    }

    /// Count one event at `now` with `queued` events waiting; the budget it
    /// breaks, described, if any.
    pub(super) fn count(&mut self, now: Time, queued: usize) -> Option<String> {
        self.events += 1;
        let ms = now.as_millis();
        if ms != self.ms {
            self.ms = ms;
            self.events_this_ms = 0;
        }
        self.events_this_ms += 1;
        self.peak_queue = self.peak_queue.max(queued);
        self.peak_events_per_ms = self.peak_events_per_ms.max(self.events_this_ms);
        let b = &self.budgets;
        if self.events > b.events_max {
            return Some(format!("more than {} events in the run", b.events_max));
        }
        if queued > b.queue_max {
            return Some(format!("more than {} events queued at once, at {ms} ms", b.queue_max));
        }
        if self.events_this_ms > b.events_per_ms_max {
            return Some(format!("more than {} events within simulated ms {ms}", b.events_per_ms_max));
        }
        None
    }
}
