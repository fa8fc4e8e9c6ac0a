//! The workload of replicated data types that accept updates anywhere
//! (CRDTs): clients increment, decrement and reset counters, add and
//! remove set elements and read, each at its node, which answers at once.
//!
//! Judged: **convergence** (the world compares the replicas' digests after
//! quiescence; this workload adds, from the replicas' `Replica` reports,
//! when they converged after the heal and the last update, and the gossip
//! rounds and bytes it took); **acknowledged updates kept** (an element
//! whose add was acknowledged and never removed is in the final read; a
//! counter without resets ends between the acknowledged sum and that sum
//! plus every timed-out increment); and **stale reads**, a witness that the
//! history is not linearizable (a read missed an element whose add was
//! acknowledged before the read began, with no remove of it invoked).

use std::collections::{BTreeMap, BTreeSet};

use quorum_check::convergence::{time_to_converge, ReplicaReport};
use quorum_core::crdt::{CrdtRequest, CrdtResponse};
use quorum_core::{Key, NodeId, Observation, Protocol, Rng, Time};
use serde::Serialize;

use crate::config::SimConfig;
use crate::outcome::RunOutcome;
use crate::workload::{Completion, Verdict, Workload};

/// Elements are drawn from `[0, ELEMENTS)`, so adds and removes meet.
const ELEMENTS: u64 = 6;

/// What the CRDT workload measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConvergenceFigures {
    /// From `max(heal, last update invoked)` to the last replica reaching
    /// the common state; `None` if the replicas did not converge.
    pub converge_ms: Option<f64>,
    /// Gossip rounds (the most of one replica) and bytes (all replicas) in
    /// that time.
    pub rounds_to_converge: Option<u64>,
    pub bytes_to_converge: Option<u64>,
    /// Gossip bytes sent in the whole run, by every replica.
    pub gossip_bytes_total: u64,
    /// Reads that missed an acknowledged, unremoved add (not linearizable).
    pub stale_reads: u64,
    /// Counters that ended above every sum the clients could have caused.
    pub counters_over: Vec<String>,
}

#[derive(Clone, Debug)]
struct Read {
    key: Key,
    invoked: Time,
    completed: Time,
    elements: Vec<u64>,
}

/// Clients updating and reading counters and sets at random nodes.
pub struct CrdtWorkload {
    keys: u64,
    final_client: usize,
    invoked_at: BTreeMap<usize, Time>,
    /// Earliest acknowledgment of each (key, element) add.
    add_acked: BTreeMap<(Key, u64), Time>,
    /// Earliest invocation of a remove of each (key, element).
    remove_invoked: BTreeMap<(Key, u64), Time>,
    /// Per counter key: acknowledged sum, and the least and most timed-out
    /// increments can add.
    counter_acked: BTreeMap<Key, (i64, i64, i64)>,
    reset_invoked: BTreeSet<Key>,
    last_update: Time,
    reads: Vec<Read>,
    final_reads: BTreeMap<Key, (i64, Vec<u64>)>,
    reports: Vec<ReplicaReport>,
    heal: Time,
}

impl CrdtWorkload {
    fn judge_sets(&self) -> (u64, u64) {
        let unremoved = |key: Key, element: u64, by: Option<Time>| {
            self.remove_invoked.get(&(key, element)).is_none_or(|t| by.is_some_and(|by| *t > by))
        };
        let lost = self
            .add_acked
            .keys()
            .filter(|(key, element)| unremoved(*key, *element, None))
            .filter(|(key, element)| self.final_reads.get(key).is_some_and(|(_, set)| !set.contains(element)))
            .count() as u64;
        let stale = self
            .reads
            .iter()
            .filter(|read| {
                self.add_acked.iter().any(|((key, element), acked)| {
                    *key == read.key
                        && *acked < read.invoked
                        && unremoved(*key, *element, Some(read.completed))
                        && !read.elements.contains(element)
                })
            })
            .count() as u64;
        (lost, stale)
    }

    /// Counters below the acknowledged sum (lost), and above every sum.
    fn judge_counters(&self) -> (u64, Vec<String>) {
        let (mut lost, mut over) = (0, Vec::new());
        for (key, (acked, least, most)) in &self.counter_acked {
            let Some((value, _)) = self.final_reads.get(key) else { continue };
            if self.reset_invoked.contains(key) {
                continue;
            }
            if *value < acked + least {
                lost += 1;
            } else if *value > acked + most {
                over.push(format!("counter {key} = {value}, at most {}", acked + most));
            }
        }
        (lost, over)
    }
}

impl<P: Protocol<Request = CrdtRequest, Response = CrdtResponse>> Workload<P> for CrdtWorkload {
    fn new(config: &SimConfig) -> Self {
        CrdtWorkload {
            keys: u64::from(config.keys.max(1)),
            final_client: config.clients as usize,
            invoked_at: BTreeMap::new(),
            add_acked: BTreeMap::new(),
            remove_invoked: BTreeMap::new(),
            counter_acked: BTreeMap::new(),
            reset_invoked: BTreeSet::new(),
            last_update: Time::ZERO,
            reads: Vec::new(),
            final_reads: BTreeMap::new(),
            reports: Vec::new(),
            heal: Time::from_millis(config.safety_ms),
        }
    }

    fn next(&mut self, _client: usize, rng: &mut Rng) -> CrdtRequest {
        let key = rng.range(0, self.keys);
        let element = rng.range(0, ELEMENTS);
        match rng.range(0, 20) {
            0..=6 => CrdtRequest::Increment { key, by: rng.range(1, 6) as i64 },
            7 => CrdtRequest::Increment { key, by: -(rng.range(1, 6) as i64) },
            8 => CrdtRequest::Reset { key },
            9..=12 => CrdtRequest::Add { key, element },
            13..=15 => CrdtRequest::Remove { key, element },
            _ => CrdtRequest::Read { key },
        }
    }

    fn invoked(&mut self, client: usize, request: &CrdtRequest, now: Time) {
        self.invoked_at.insert(client, now);
        if request.is_update() {
            self.last_update = self.last_update.max(now);
        }
        match *request {
            CrdtRequest::Remove { key, element } => {
                self.remove_invoked.entry((key, element)).or_insert(now);
            }
            CrdtRequest::Reset { key } => {
                self.reset_invoked.insert(key);
            }
            _ => {}
        }
    }

    fn completed(
        &mut self,
        client: usize,
        request: &CrdtRequest,
        response: Option<&CrdtResponse>,
        _node: Option<NodeId>,
        now: Time,
    ) -> Completion {
        let invoked = self.invoked_at.remove(&client).unwrap_or(now);
        match (*request, response) {
            (CrdtRequest::Increment { key, by }, answer) => {
                let (acked, least, most) = self.counter_acked.entry(key).or_default();
                match answer {
                    Some(_) => *acked += by,
                    None if by < 0 => *least += by,
                    None => *most += by,
                }
            }
            (CrdtRequest::Add { key, element }, Some(_)) => {
                self.add_acked.entry((key, element)).or_insert(now);
            }
            (CrdtRequest::Read { key }, Some(CrdtResponse::Read { counter, elements })) => {
                if client == self.final_client {
                    self.final_reads.insert(key, (*counter, elements.clone()));
                } else {
                    self.reads.push(Read { key, invoked, completed: now, elements: elements.clone() });
                }
            }
            _ => {}
        }
        let verdict = if response.is_some() { Verdict::Ok } else { Verdict::Info };
        let retarget = response.is_none().then_some(None);
        Completion {
            verdict,
            update_refused: false,
            retarget,
            served: verdict == Verdict::Ok,
            refused: false,
        }
    }

    fn acknowledges_update(request: &CrdtRequest, response: &CrdtResponse) -> bool {
        request.is_update() && *response == CrdtResponse::Done
    }

    fn final_requests(&mut self) -> Vec<CrdtRequest> {
        (0..self.keys).map(|key| CrdtRequest::Read { key }).collect()
    }

    fn observed(&mut self, node: NodeId, observation: &Observation, now: Time) {
        if let Observation::Replica { digest, rounds, bytes_sent } = *observation {
            self.reports.push(ReplicaReport { node, time_us: now.as_micros(), digest, rounds, bytes_sent });
        }
    }

    fn judge(self, outcome: &mut RunOutcome) {
        let (lost_adds, stale_reads) = self.judge_sets();
        let (lost_counters, counters_over) = self.judge_counters();
        outcome.lost_acked_writes = lost_adds + lost_counters;
        outcome.linearizable = stale_reads == 0;
        outcome.linearizability = if stale_reads == 0 { "n/a" } else { "not linearizable" }.into();
        if stale_reads > 0 {
            outcome.linearizability_explanation = Some(format!(
                "{stale_reads} reads missed an element whose add was acknowledged before they began"
            ));
        }
        let since = self.heal.max(self.last_update).as_micros();
        let convergence = time_to_converge(&self.reports, since);
        let gossip_bytes_total = gossip_bytes(&self.reports);
        outcome.convergence = Some(ConvergenceFigures {
            converge_ms: convergence.map(|c| c.after_us as f64 / 1000.0),
            rounds_to_converge: convergence.map(|c| c.rounds),
            bytes_to_converge: convergence.map(|c| c.bytes),
            gossip_bytes_total,
            stale_reads,
            counters_over,
        });
    }
}

/// Every gossip byte every replica reported sending (a counter that goes
/// down marks a restart).
fn gossip_bytes(reports: &[ReplicaReport]) -> u64 {
    let mut last: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut total = 0;
    for report in reports {
        let before = last.insert(report.node, report.bytes_sent).unwrap_or(0);
        total += if report.bytes_sent >= before { report.bytes_sent - before } else { report.bytes_sent };
    }
    total
}
