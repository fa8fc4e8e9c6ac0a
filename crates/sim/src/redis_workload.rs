//! The Redis workload: clients send `GET`, `SET` (some with `PX`), `MSET`
//! of two or three keys and `MULTI` / `EXEC` of gets and sets
//! ([`quorum_core::redis`]) to any log-replicated protocol over
//! [`quorum_core::redis::RedisKv`]. Each request is stamped by the node
//! that takes it with that node's clock, skewed by up to
//! `SimConfig::clock_skew_ms`; the history is judged by the multi-key
//! checker (`quorum_check::linearizability::map`), which places each key's
//! expiry where clocks within that skew allow.
//!
//! The negative control is the workload's bug `expiry-by-local-clock`:
//! every command is stamped by the clock of the client that sent it and
//! judged by that stamp alone, as a system that let each process judge
//! time for itself would, so two clients whose clocks differ see a key
//! expire at two different times.

use quorum_check::history::OpType;
use quorum_check::linearizability::map::{check_map, MapEvent};
use quorum_check::linearizability::{Outcome, DEFAULT_MAX_STATES};
use quorum_core::redis::{Micro, RedisCommand, RedisOp, RedisResponse};
use quorum_core::{NodeId, Protocol, Rng, Time};

use crate::config::{SimConfig, CLIENT_CLOCK};
use crate::outcome::RunOutcome;
use crate::workload::{Completion, Rotation, Verdict, Workload};

/// The workload's deliberate bug: stamps from the clients' own clocks.
pub const EXPIRY_BY_LOCAL_CLOCK: &str = "expiry-by-local-clock";

/// Keys per group: group `g` holds keys `GROUP * g ..= GROUP * g + GROUP - 1`.
const GROUP: u64 = 3;

/// Time to live of a `SET ... PX`: uniform in this range, microseconds.
const TTL_US: (u64, u64) = (1_000, 20_000);

pub struct RedisWorkload {
    /// Groups of keys in use.
    groups: Rotation,
    next_value: u64,
    process: Vec<u64>,
    next_process: u64,
    events: Vec<MapEvent>,
    skew_us: u64,
    /// `Some(offsets)` under the bug: each client's clock offset (µs).
    client_clocks: Option<Vec<i64>>,
    /// Commands of each kind acknowledged: get, set, set with px, mset, exec.
    acknowledged: [u64; 5],
}

impl RedisWorkload {
    /// `n` distinct keys of one group (`n` at most [`GROUP`]), in random order.
    fn pick_keys(&mut self, n: usize, rng: &mut Rng) -> Vec<u64> {
        // Groups rotate as the KV workload's keys do; multi-key commands
        // stay inside one group, as Redis Cluster keeps them inside one
        // hash slot, so each group's history is checked on its own.
        let group = self.groups.pick(rng);
        let mut keys: Vec<u64> = (0..GROUP).map(|i| group * GROUP + i).collect();
        rng.shuffle(&mut keys);
        keys.truncate(n);
        keys
    }

    fn value(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    fn exec(&mut self, rng: &mut Rng) -> RedisOp {
        let keys = self.pick_keys(rng.range(1, 4) as usize, rng);
        let ops = (0..rng.range(2, 5))
            .map(|_| {
                let key = *rng.pick(&keys).expect("at least one key");
                if rng.chance(0.5) {
                    Micro::Get { key }
                } else {
                    Micro::Set { key, value: self.value() }
                }
            })
            .collect();
        RedisOp::Exec { ops }
    }

    fn record(&mut self, kind: OpType, client: usize, op: &RedisOp, now: Time, result: Vec<Option<u64>>) {
        self.events.push(MapEvent {
            kind,
            process: self.process[client],
            time: now.0,
            op: op.clone(),
            result,
        });
    }

    fn kind(op: &RedisOp) -> usize {
        match op {
            RedisOp::Get { .. } => 0,
            RedisOp::Set { px: None, .. } => 1,
            RedisOp::Set { px: Some(_), .. } => 2,
            RedisOp::MSet { .. } => 3,
            RedisOp::Exec { .. } => 4,
        }
    }
}

/// What a response says about the op: its history kind and what it read.
fn conclude(command: &RedisCommand, response: Option<&RedisResponse>) -> (OpType, Vec<Option<u64>>) {
    match (&command.op, response) {
        (_, None | Some(RedisResponse::Indeterminate { .. })) => (OpType::Info, vec![]),
        (_, Some(RedisResponse::Rejected { .. })) => (OpType::Fail, vec![]),
        (RedisOp::Get { .. }, Some(RedisResponse::Value(v))) => (OpType::Ok, vec![*v]),
        (RedisOp::Set { .. } | RedisOp::MSet { .. }, Some(RedisResponse::Ok)) => (OpType::Ok, vec![]),
        (RedisOp::Exec { .. }, Some(RedisResponse::Exec(reads))) => (OpType::Ok, reads.clone()),
        (op, Some(response)) => panic!("{op:?} answered with {response:?}"),
    }
}

impl<P: Protocol<Request = RedisCommand, Response = RedisResponse>> Workload<P> for RedisWorkload {
    fn new(config: &SimConfig) -> Self {
        let clients = config.clients as usize;
        let bug = config.protocol.bug.as_deref() == Some(EXPIRY_BY_LOCAL_CLOCK);
        let offsets = (0..=clients as u64).map(|c| config.clock_offset_us(CLIENT_CLOCK + c)).collect();
        RedisWorkload {
            groups: Rotation::new(config.keys, config.ops_per_key),
            next_value: 0,
            process: (0..=clients as u64).collect(),
            next_process: clients as u64 + 1,
            events: Vec::new(),
            skew_us: config.clock_skew_ms * 1_000,
            client_clocks: bug.then_some(offsets),
            acknowledged: [0; 5],
        }
    }

    fn next(&mut self, _client: usize, rng: &mut Rng) -> RedisCommand {
        let roll = rng.unit();
        let op = if roll < 0.4 {
            RedisOp::Get { key: self.pick_keys(1, rng)[0] }
        } else if roll < 0.65 {
            let key = self.pick_keys(1, rng)[0];
            let px = rng.chance(0.6).then(|| rng.range(TTL_US.0, TTL_US.1 + 1));
            RedisOp::Set { key, value: self.value(), px }
        } else if roll < 0.8 {
            let keys = self.pick_keys(rng.range(2, 4) as usize, rng);
            RedisOp::MSet { pairs: keys.into_iter().map(|k| (k, self.value())).collect() }
        } else {
            self.exec(rng)
        };
        RedisCommand::new(op)
    }

    fn stamp(&mut self, client: usize, request: &mut RedisCommand, now: Time, node_clock: Time) {
        request.stamp = match &self.client_clocks {
            Some(offsets) => now.0.saturating_add_signed(offsets[client.min(offsets.len() - 1)]),
            None => node_clock.0,
        };
        request.own_clock = self.client_clocks.is_some();
    }

    fn invoked(&mut self, client: usize, command: &RedisCommand, now: Time) {
        self.record(OpType::Invoke, client, &command.op, now, vec![]);
    }

    fn completed(
        &mut self,
        client: usize,
        command: &RedisCommand,
        response: Option<&RedisResponse>,
        _node: Option<NodeId>,
        now: Time,
    ) -> Completion {
        let (kind, result) = conclude(command, response);
        self.record(kind, client, &command.op, now, result);
        if kind == OpType::Ok {
            self.acknowledged[RedisWorkload::kind(&command.op)] += 1;
        }
        if kind == OpType::Info {
            self.process[client] = self.next_process;
            self.next_process += 1;
        }
        let (update_refused, retarget) = match response {
            None => (false, Some(None)),
            Some(RedisResponse::Rejected { hint, .. }) => (command.is_update(), Some(*hint)),
            _ => (false, None),
        };
        let verdict = match kind {
            OpType::Ok => Verdict::Ok,
            OpType::Fail => Verdict::Fail,
            _ => Verdict::Info,
        };
        let refused = matches!(response, Some(RedisResponse::Rejected { .. }));
        Completion { verdict, update_refused, retarget, served: kind == OpType::Ok, refused }
    }

    fn acknowledges_update(command: &RedisCommand, response: &RedisResponse) -> bool {
        command.is_update() && matches!(response, RedisResponse::Ok | RedisResponse::Exec(_))
    }

    fn retryable(command: &RedisCommand) -> bool {
        command.is_update()
    }

    fn refusal_hint(response: &RedisResponse) -> Option<Option<NodeId>> {
        match response {
            RedisResponse::Rejected { hint, .. } => Some(*hint),
            _ => None,
        }
    }

    fn final_requests(&mut self) -> Vec<RedisCommand> {
        (0..self.groups.issued() * GROUP).map(|key| RedisCommand::new(RedisOp::Get { key })).collect()
    }

    fn judge(self, outcome: &mut RunOutcome) {
        let report = check_map(&self.events, self.skew_us, DEFAULT_MAX_STATES);
        outcome.linearizable = report.outcome != Outcome::NotLinearizable;
        outcome.linearizability = match report.outcome {
            Outcome::Linearizable => "linearizable",
            Outcome::NotLinearizable => "not linearizable",
            Outcome::Unknown => "unknown",
        }
        .to_string();
        if !outcome.linearizable {
            outcome.linearizability_explanation = Some(report.explanation);
        }
        let names = ["get", "set", "set-px", "mset", "exec"];
        outcome.commands_acked =
            names.iter().zip(self.acknowledged).map(|(n, c)| ((*n).to_string(), c)).collect();
    }
}
