//! The clients: each sits beside a home node, sends one request at a time
//! (the workload says what), waits `client_timeout_ms` for an answer,
//! retries an update with the same request id where the protocol promises
//! sessions, and records how each request ended. After quiescence the final
//! reader reads every key until it succeeds: the state the durability
//! checker judges.

use std::collections::BTreeMap;

use quorum_core::claims::reached;
use quorum_core::{Micros, NodeId, Protocol, RequestId, Rng, Time};

use super::queue::Event;
use super::{record, Phase, World, FINAL_READS_MS};
use crate::config::SimConfig;
use crate::diagram::{self, What};
use crate::workload::{Completion, Verdict, Workload};

pub(super) const WORKLOAD_STREAM: u64 = 1 << 42;

struct InFlight {
    rid: RequestId,
    /// When the client sent it.
    at: Time,
    /// Re-sends (same request id, another node) still allowed.
    retries_left: u32,
    /// Whether it was re-sent: an earlier attempt may have taken effect.
    retried: bool,
    /// Where the latest attempt went, and its number (from 0).
    target: NodeId,
    attempt: u32,
}

struct Client {
    /// The node this client sits beside: a partition cuts the client off
    /// from the nodes its home cannot reach (Jepsen binds clients to nodes).
    home: NodeId,
    target: NodeId,
    /// Operations still to invoke.
    remaining: u32,
    /// Operations it may still invoke before the heal.
    safety_quota: u32,
    in_flight: Option<InFlight>,
    served_after_heal: bool,
    /// Waiting for the heal because its safety quota ran out.
    parked: bool,
}

/// After quiescence, one reader reads every key until it succeeds.
struct FinalReader<R> {
    /// Requests still to complete, next last.
    pending: Vec<R>,
    in_flight: Option<InFlight>,
    target: NodeId,
}

/// The clients, the final reader, the workload and what they counted.
pub(super) struct Clients<P: Protocol, W> {
    pub(super) workload: W,
    rng: Rng,
    clients: Vec<Client>,
    final_reader: FinalReader<P::Request>,
    next_rid: u64,
    /// Which client sent each request (the final reader is client number
    /// `clients.len()`), and what it asked.
    requests: BTreeMap<RequestId, (usize, P::Request)>,
    /// Completed requests by verdict: ok, fail, info.
    pub(super) ops: [u64; 3],
    pub(super) writes_failed: u64,
    /// Send-to-answer time of every acknowledged update of a regular client.
    pub(super) update_latencies_us: Vec<u64>,
}

impl<P: Protocol, W: Workload<P>> Clients<P, W> {
    pub(super) fn new(config: &SimConfig) -> Clients<P, W> {
        let per_client = config.ops / config.clients;
        let extra = config.ops % config.clients;
        let clients = (0..config.clients)
            .map(|c| {
                let remaining = per_client + u32::from(c < extra);
                let home = NodeId(c % config.nodes);
                Client {
                    home,
                    target: home,
                    remaining,
                    safety_quota: remaining * 3 / 4,
                    in_flight: None,
                    served_after_heal: false,
                    parked: false,
                }
            })
            .collect();
        Clients {
            workload: W::new(config),
            rng: Rng::stream(config.seed, WORKLOAD_STREAM),
            clients,
            final_reader: FinalReader { pending: Vec::new(), in_flight: None, target: NodeId(0) },
            next_rid: 0,
            requests: BTreeMap::new(),
            ops: [0; 3],
            writes_failed: 0,
            update_latencies_us: Vec::new(),
        }
    }

    pub(super) fn count(&self) -> usize {
        self.clients.len()
    }

    /// Every client finished after the heal, and so did the final reads.
    pub(super) fn all_finished(&self) -> bool {
        let finished =
            self.clients.iter().all(|c| c.remaining == 0 && c.in_flight.is_none() && c.served_after_heal);
        finished && self.final_reader.pending.is_empty()
    }

    /// Where a request's owner sits; the final reader runs after the heal and
    /// sits beside its target.
    fn home(&self, owner: usize) -> NodeId {
        match self.clients.get(owner) {
            Some(client) => client.home,
            None => self.final_reader.target,
        }
    }

    fn in_flight(&self, owner: usize) -> Option<&InFlight> {
        match self.clients.get(owner) {
            Some(client) => client.in_flight.as_ref(),
            None => self.final_reader.in_flight.as_ref(),
        }
    }

    fn in_flight_slot(&mut self, owner: usize) -> &mut Option<InFlight> {
        match self.clients.get_mut(owner) {
            Some(client) => &mut client.in_flight,
            None => &mut self.final_reader.in_flight,
        }
    }

    /// The client that sent `rid`, if it is still waiting for that request.
    fn owner_waiting_for(&self, rid: RequestId) -> Option<usize> {
        let (owner, _) = self.requests.get(&rid)?;
        (self.in_flight(*owner).map(|f| f.rid) == Some(rid)).then_some(*owner)
    }
}

impl<P: Protocol, W: Workload<P>> World<'_, P, W> {
    pub(super) fn schedule_first_wakes(&mut self) {
        for c in 0..self.clients.count() {
            let delay = self.think_time();
            self.queue.push(Time::ZERO + delay, Event::ClientWake { client: c });
        }
    }

    fn think_time(&mut self) -> Micros {
        // Pace the workload so ~3/4 of the operations fall in the safety
        // phase; after the heal, never so slowly that a client with all of
        // its operations left could not finish in about 2/3 of the liveness
        // window (a long safety phase must not make a slow liveness phase).
        let per_client = f64::from(self.config.ops) / f64::from(self.config.clients);
        let mut mean_us = (self.config.safety_ms as f64 * 1000.0) / (per_client * 0.75).max(1.0);
        if self.phase != Phase::Safety {
            mean_us = mean_us.min((self.config.liveness_ms as f64 * 1000.0) / (per_client * 1.5).max(1.0));
        }
        Micros(self.clients.rng.range(0, (2.0 * mean_us) as u64 + 1))
    }

    fn random_node(&mut self) -> NodeId {
        NodeId(self.clients.rng.range(0, u64::from(self.config.nodes)) as u32)
    }

    pub(super) fn client_wake(&mut self, c: usize) {
        let client = &self.clients.clients[c];
        if client.in_flight.is_some() || client.remaining == 0 || self.phase == Phase::Done {
            return;
        }
        if self.phase == Phase::Safety && client.safety_quota == 0 {
            self.clients.clients[c].parked = true;
            return;
        }
        let clients = &mut self.clients;
        let request = clients.workload.next(c, &mut clients.rng);
        let client = &mut clients.clients[c];
        client.remaining -= 1;
        client.safety_quota = client.safety_quota.saturating_sub(1);
        let target = client.target;
        self.invoke(c, target, request);
    }

    pub(super) fn unpark_clients(&mut self) {
        for c in 0..self.clients.count() {
            if self.clients.clients[c].parked {
                self.clients.clients[c].parked = false;
                let delay = self.think_time();
                self.queue.push(self.now + delay, Event::ClientWake { client: c });
            }
        }
    }

    fn invoke(&mut self, c: usize, target: NodeId, request: P::Request) {
        let clients = &mut self.clients;
        clients.next_rid += 1;
        let rid = RequestId::new(c as u64, clients.next_rid);
        clients.workload.invoked(c, &request, self.now);
        clients.requests.insert(rid, (c, request.clone()));
        let retries_left = if W::retryable(&request) { self.config.retries } else { 0 };
        let in_flight = InFlight { rid, at: self.now, retries_left, retried: false, target, attempt: 0 };
        *clients.in_flight_slot(c) = Some(in_flight);
        self.send_attempt(c, target, rid, request, 0);
    }

    /// Send attempt `attempt` of request `rid` to `target`, with its timeout.
    fn send_attempt(&mut self, c: usize, target: NodeId, rid: RequestId, request: P::Request, attempt: u32) {
        let home = self.clients.home(c);
        let now = self.now;
        let blocked = self.network.blocked(home, target);
        record(&mut self.recording, now, || What::Invoke {
            client: c as u32,
            node: target.0,
            rid: rid.to_string(),
            label: diagram::labels(&request).1,
            retry: attempt > 0,
            dropped: blocked,
        });
        if blocked {
            self.trace.line(
                now,
                "drop",
                Some(target),
                || serde_json::json!({ "rid": rid.to_string(), "why": "partition" }),
            );
        } else {
            let latency = self.network.latency();
            self.queue.push(now + latency, Event::Request { node: target, rid, request });
        }
        let timeout = Micros::from_millis(self.config.client_timeout_ms);
        self.queue.push(now + timeout, Event::Timeout { rid, attempt });
    }

    /// Re-send an update that timed out or was refused after an earlier
    /// attempt, with the SAME request id, to `hint` or another node: a
    /// client of a protocol with sessions (Raft, diss. §6.3) retries until
    /// it knows the outcome, and the protocol must apply it at most once.
    /// The history keeps one operation. Returns false when no retry is left.
    fn retry(&mut self, owner: usize, rid: RequestId, hint: Option<NodeId>) -> bool {
        let nodes = self.config.nodes;
        let Some(flight) = self.clients.in_flight(owner) else { return false };
        if flight.retries_left == 0 {
            return false;
        }
        let previous = flight.target;
        let target = match hint.filter(|h| h.0 < nodes && *h != previous) {
            Some(hint) => hint,
            None if nodes > 1 => {
                // Any node but the one that did not answer.
                let pick = self.clients.rng.range(0, u64::from(nodes) - 1) as u32;
                NodeId(if pick >= previous.0 { pick + 1 } else { pick })
            }
            None => previous,
        };
        let flight = self.clients.in_flight_slot(owner).as_mut().expect("checked above");
        flight.retries_left -= 1;
        flight.retried = true;
        flight.target = target;
        flight.attempt += 1;
        let attempt = flight.attempt;
        let (_, request) = self.clients.requests.get(&rid).cloned().expect("the request is known");
        self.observers.reached.insert(reached::RETRIED.name);
        self.trace.line(self.now, "retry", Some(target), || serde_json::json!({ "rid": rid.to_string() }));
        self.send_attempt(owner, target, rid, request, attempt);
        true
    }

    /// `node` answered `rid`: the answer travels back to the client, unless
    /// a partition cuts it off from the client's home.
    pub(super) fn reply(&mut self, node: NodeId, rid: RequestId, response: P::Response) {
        let now = self.now;
        self.trace.line(
            now,
            "reply",
            Some(node),
            || serde_json::json!({ "rid": rid.to_string(), "response": format!("{response:?}") }),
        );
        if self.adversary.is_traitor(node) {
            // A traitor answers clients nothing worth judging: the client
            // times out and asks a loyal node.
            return;
        }
        let Some((owner, request)) = self.clients.requests.get(&rid) else { return };
        let owner = *owner;
        let (network, clients) = (&self.network, &self.clients);
        record(&mut self.recording, now, || What::Reply {
            node: node.0,
            client: owner as u32,
            rid: rid.to_string(),
            label: diagram::labels(&response).1,
            dropped: network.blocked(node, clients.home(owner)),
        });
        if W::acknowledges_update(request, &response) {
            self.observers.acked_writes.push((node, now.as_micros()));
        }
        if self.network.blocked(node, self.clients.home(owner)) {
            self.trace.line(
                now,
                "drop",
                Some(node),
                || serde_json::json!({ "rid": rid.to_string(), "why": "partition" }),
            );
            return;
        }
        let latency = self.network.latency();
        self.queue.push(now + latency, Event::Reply { rid, node, response });
    }

    pub(super) fn client_reply(&mut self, rid: RequestId, node: NodeId, response: P::Response) {
        if !self.clients.requests.contains_key(&rid) {
            return;
        }
        let Some(owner) = self.clients.owner_waiting_for(rid) else {
            self.trace.line(
                self.now,
                "late-reply",
                Some(node),
                || serde_json::json!({ "rid": rid.to_string() }),
            );
            return;
        };
        record(&mut self.recording, self.now, || What::Complete {
            client: owner as u32,
            node: Some(node.0),
            rid: rid.to_string(),
            label: diagram::labels(&response).1,
        });
        let retried = self.clients.in_flight(owner).is_some_and(|f| f.retried);
        let mut response = Some(response);
        if let Some(hint) = response.as_ref().and_then(|r| W::refusal_hint(r)) {
            if retried {
                // This attempt was refused, but an earlier one may still
                // take effect: retry, or end as indeterminate.
                if self.retry(owner, rid, hint) {
                    return;
                }
                response = None;
            }
        }
        let sent = self.clients.in_flight_slot(owner).take().expect("the request is in flight").at;
        let (_, request) = self.clients.requests.remove(&rid).expect("the request is known");
        if owner < self.clients.count()
            && response.as_ref().is_some_and(|r| W::acknowledges_update(&request, r))
        {
            self.clients.update_latencies_us.push(self.now.saturating_sub(sent).0);
        }
        let node = response.is_some().then_some(node);
        let completion = self.clients.workload.completed(owner, &request, response.as_ref(), node, self.now);
        self.complete(owner, completion);
    }

    pub(super) fn client_timeout(&mut self, rid: RequestId, attempt: u32) {
        let Some((owner, _)) = self.clients.requests.get(&rid) else { return };
        let owner = *owner;
        if self.clients.in_flight(owner).map(|f| (f.rid, f.attempt)) != Some((rid, attempt)) {
            return;
        }
        record(&mut self.recording, self.now, || What::Complete {
            client: owner as u32,
            node: None,
            rid: rid.to_string(),
            label: "timeout".into(),
        });
        if self.retry(owner, rid, None) {
            return;
        }
        self.clients.in_flight_slot(owner).take().expect("the request is in flight");
        let (_, request) = self.clients.requests.get(&rid).cloned().expect("the request is known");
        let completion = self.clients.workload.completed(owner, &request, None, None, self.now);
        self.complete(owner, completion);
    }

    /// After a request completed: a new target after a rejection or a
    /// timeout, then the client's next request.
    fn complete(&mut self, owner: usize, completion: Completion) {
        self.clients.ops[completion.verdict as usize] += 1;
        if completion.update_refused {
            self.clients.writes_failed += 1;
        }
        let target = match completion.retarget {
            Some(Some(hint)) if hint.0 < self.config.nodes => Some(hint),
            Some(_) => Some(self.random_node()),
            None => None,
        };
        if owner == self.clients.count() {
            let reader = &mut self.clients.final_reader;
            reader.target = target.unwrap_or(reader.target);
            let delay = if completion.verdict == Verdict::Ok {
                reader.pending.pop();
                Micros(0)
            } else {
                Micros::from_millis(50)
            };
            self.schedule_final_read(delay);
            return;
        }
        let phase = self.phase;
        let client = &mut self.clients.clients[owner];
        client.target = target.unwrap_or(client.target);
        if phase != Phase::Safety {
            client.served_after_heal |= completion.served;
            client.remaining += u32::from(completion.refused);
        }
        if client.remaining == 0 {
            self.maybe_clients_done();
            return;
        }
        let delay = self.think_time();
        self.queue.push(self.now + delay, Event::ClientWake { client: owner });
    }

    pub(super) fn maybe_clients_done(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        let done = self.clients.clients.iter().all(|c| c.remaining == 0 && c.in_flight.is_none());
        if done {
            self.begin_quiesce();
        }
    }

    pub(super) fn begin_quiesce(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        self.phase = Phase::Quiesce;
        self.trace.line(self.now, "quiesce", None, || serde_json::json!({}));
        let end = self.now + Micros::from_millis(self.config.quiesce_ms);
        self.queue.push(end, Event::QuiesceEnd);
    }

    /// The end of quiescence: compare the replicas, then read every key.
    pub(super) fn end_quiesce(&mut self) {
        self.observers.digests =
            self.nodes.iter().map(|n| (n.host.id(), n.host.state().and_then(|s| s.state_digest()))).collect();
        self.phase = Phase::FinalReads;
        self.deadline = self.now + Micros::from_millis(FINAL_READS_MS);
        let mut pending = self.clients.workload.final_requests();
        pending.reverse();
        self.clients.final_reader.pending = pending;
        self.clients.final_reader.target = self.random_node();
        self.schedule_final_read(Micros(0));
    }

    pub(super) fn schedule_final_read(&mut self, delay: Micros) {
        let Some(request) = self.clients.final_reader.pending.last().cloned() else {
            self.phase = Phase::Done;
            return;
        };
        if self.now + delay > self.deadline {
            self.phase = Phase::Done;
            return;
        }
        if delay > Micros(0) {
            self.queue.push(self.now + delay, Event::FinalRead);
            return;
        }
        let target = self.clients.final_reader.target;
        self.invoke(self.clients.count(), target, request);
    }
}
