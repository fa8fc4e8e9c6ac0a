//! The bank-transfer workload of the atomic-commit protocols (2PC, 3PC).
//!
//! `nodes × keys` accounts, each starting with `INITIAL_BALANCE` and owned by
//! one node (`quorum_core::txn::owner`). Clients send transfers of 1..=40
//! between two random accounts with different owners (so every transaction
//! has two cohorts) to their home node, which coordinates it. After
//! quiescence the final client reads every account's balance at its owner.
//!
//! Judged: atomicity over every `TxnDecided` observation (all participants of
//! a transaction decide alike, none reverses), the balance invariant (final
//! balances sum to the initial total, none negative), and figures: blocked
//! time (each cohort's `Prepared` → `TxnDecided`, while it is up), messages
//! (acknowledgments of outcomes apart) and forced writes per decided
//! transaction. Every request and its outcome is kept as a [`TxnOp`] for
//! `--history`.

use std::collections::{BTreeMap, BTreeSet};

use quorum_check::commit::{self, Blocking, Decision};
use quorum_core::txn::{owner, Account, Balance, TxnRequest, TxnResponse, INITIAL_BALANCE};
use quorum_core::{NodeId, Observation, Protocol, Rng, Time};

use crate::config::SimConfig;
use crate::outcome::{RunOutcome, TxnFigures, TxnOp};
use crate::workload::{Completion, Verdict, Workload};

/// The largest amount a client transfers.
const AMOUNT_MAX: u64 = 40;

/// Transfers between random accounts, judged for atomicity and balance.
pub struct TxnWorkload {
    nodes: u32,
    accounts: u64,
    /// Index of the final client (one past the regular ones).
    final_client: usize,
    decisions: Vec<Decision>,
    blocking: Blocking,
    /// Cohorts that voted yes, per transaction (from `Prepared`).
    participants: BTreeMap<u64, BTreeSet<u32>>,
    final_balances: BTreeMap<Account, Balance>,
    client_committed: u64,
    client_aborted: u64,
    last_time: u64,
    /// Each client's request in flight: when it was sent.
    invoked: BTreeMap<usize, u64>,
    history: Vec<TxnOp>,
}

impl TxnWorkload {
    fn pick_transfer(&self, rng: &mut Rng) -> TxnRequest {
        let from = rng.range(0, self.accounts);
        let mut to = rng.range(0, self.accounts);
        if self.nodes > 1 {
            while owner(to, self.nodes) == owner(from, self.nodes) {
                to = rng.range(0, self.accounts);
            }
        } else if to == from {
            to = (from + 1) % self.accounts;
        }
        TxnRequest::Transfer { from, to, amount: rng.range(1, AMOUNT_MAX + 1) }
    }
}

impl<P: Protocol<Request = TxnRequest, Response = TxnResponse>> Workload<P> for TxnWorkload {
    fn new(config: &SimConfig) -> Self {
        TxnWorkload {
            nodes: config.nodes,
            accounts: (u64::from(config.nodes) * u64::from(config.keys)).max(2),
            final_client: config.clients as usize,
            decisions: Vec::new(),
            blocking: Blocking::new(),
            participants: BTreeMap::new(),
            final_balances: BTreeMap::new(),
            client_committed: 0,
            client_aborted: 0,
            last_time: 0,
            invoked: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    fn next(&mut self, _client: usize, rng: &mut Rng) -> TxnRequest {
        self.pick_transfer(rng)
    }

    fn invoked(&mut self, client: usize, _request: &TxnRequest, now: Time) {
        self.last_time = self.last_time.max(now.as_micros());
        self.invoked.insert(client, now.as_micros());
    }

    fn completed(
        &mut self,
        client: usize,
        request: &TxnRequest,
        response: Option<&TxnResponse>,
        node: Option<NodeId>,
        now: Time,
    ) -> Completion {
        self.last_time = self.last_time.max(now.as_micros());
        let (verdict, update_refused, retarget) = match (request, response) {
            (_, None) => (Verdict::Info, false, Some(None)),
            (TxnRequest::Transfer { .. }, Some(TxnResponse::Committed)) => {
                self.client_committed += 1;
                (Verdict::Ok, false, None)
            }
            (TxnRequest::Transfer { .. }, Some(TxnResponse::Aborted { .. })) => {
                self.client_aborted += 1;
                (Verdict::Fail, false, None)
            }
            (TxnRequest::Balance { account }, Some(TxnResponse::Balance(balance))) => {
                if client == self.final_client {
                    self.final_balances.insert(*account, *balance);
                }
                (Verdict::Ok, false, None)
            }
            (_, Some(TxnResponse::Rejected { hint, .. })) => {
                (Verdict::Fail, matches!(request, TxnRequest::Transfer { .. }), Some(*hint))
            }
            (_, Some(TxnResponse::Indeterminate { .. })) => (Verdict::Info, false, Some(None)),
            (request, Some(response)) => panic!("{node:?} answered {request:?} with {response:?}"),
        };
        let invoked_us = self.invoked.remove(&client).unwrap_or(now.as_micros());
        self.history.push(history_op(client, request, response, node, invoked_us, now.as_micros()));
        let refused = matches!(response, Some(TxnResponse::Rejected { .. }));
        Completion { verdict, update_refused, retarget, served: verdict == Verdict::Ok, refused }
    }

    fn acknowledges_update(request: &TxnRequest, response: &TxnResponse) -> bool {
        matches!(request, TxnRequest::Transfer { .. }) && *response == TxnResponse::Committed
    }

    fn final_requests(&mut self) -> Vec<TxnRequest> {
        (0..self.accounts).map(|account| TxnRequest::Balance { account }).collect()
    }

    fn observed(&mut self, node: NodeId, observation: &Observation, now: Time) {
        let time = now.as_micros();
        self.last_time = self.last_time.max(time);
        match *observation {
            Observation::Prepared { txn } => {
                self.blocking.prepared(node.0, txn, time);
                self.participants.entry(txn).or_default().insert(node.0);
            }
            Observation::TxnDecided { txn, commit } => {
                self.blocking.decided(node.0, txn, time);
                self.decisions.push(Decision { node: node.0, txn, commit, time });
            }
            _ => {}
        }
    }

    fn crashed(&mut self, node: NodeId, now: Time) {
        self.blocking.crashed(node.0, now.as_micros());
    }

    fn judge(self, outcome: &mut RunOutcome) {
        let violations = commit::atomicity(&self.decisions);
        let mut by_txn: BTreeMap<u64, BTreeSet<bool>> = BTreeMap::new();
        for d in &self.decisions {
            by_txn.entry(d.txn).or_default().insert(d.commit);
        }
        let decided = by_txn.len() as u64;
        let committed = by_txn.values().filter(|o| o.len() == 1 && o.contains(&true)).count() as u64;
        let aborted = by_txn.values().filter(|o| o.len() == 1 && o.contains(&false)).count() as u64;
        let expected_total = INITIAL_BALANCE * self.accounts as i64;
        let complete = self.final_balances.len() as u64 == self.accounts;
        // Without every final read the run already failed liveness; judge the
        // balances only when they were all read.
        let balance =
            if complete { commit::balances(&self.final_balances, expected_total).err() } else { None };
        let end = outcome.sim_time_ms * 1000;
        let end = end.max(self.last_time);
        let (blocked_total, blocked_max, still_in_doubt) = self.blocking.totals(end);
        let per_txn = |x: u64| if decided == 0 { 0.0 } else { x as f64 / decided as f64 };
        // Every cohort of a committed transaction voted yes (`Prepared`).
        let committed_txns: Vec<u64> =
            by_txn.iter().filter(|(_, o)| o.len() == 1 && o.contains(&true)).map(|(t, _)| *t).collect();
        let cohorts: u64 =
            committed_txns.iter().map(|t| self.participants.get(t).map_or(0, |c| c.len() as u64)).sum();
        outcome.txn = Some(TxnFigures {
            decided,
            committed,
            aborted,
            client_committed: self.client_committed,
            client_aborted: self.client_aborted,
            atomicity_violations: violations.iter().map(ToString::to_string).collect(),
            balance,
            final_total: self.final_balances.values().sum(),
            expected_total,
            blocked_ms_total: blocked_total / 1000,
            blocked_ms_max: blocked_max / 1000,
            blocked_spans_us: self.blocking.spans(end),
            still_in_doubt,
            cohorts_per_txn: if committed == 0 { 0.0 } else { cohorts as f64 / committed as f64 },
            messages_per_txn: per_txn(outcome.messages_sent - outcome.outcome_acks_sent),
            acks_per_txn: per_txn(outcome.outcome_acks_sent),
            forced_writes_per_txn: per_txn(outcome.persists),
        });
        outcome.linearizability = "n/a".into();
        outcome.txn_history = self.history;
    }
}

/// One line of `--history`: a request, where it went, when, and how it ended.
fn history_op(
    client: usize,
    request: &TxnRequest,
    response: Option<&TxnResponse>,
    node: Option<NodeId>,
    invoked_us: u64,
    completed_us: u64,
) -> TxnOp {
    let (f, from, to, amount, account) = match *request {
        TxnRequest::Transfer { from, to, amount } => ("transfer", Some(from), Some(to), Some(amount), None),
        TxnRequest::Balance { account } => ("balance", None, None, None, Some(account)),
    };
    let (outcome, balance, reason) = match response {
        None => ("timeout", None, None),
        Some(TxnResponse::Committed) => ("committed", None, None),
        Some(TxnResponse::Aborted { reason }) => ("aborted", None, Some(reason.clone())),
        Some(TxnResponse::Balance(b)) => ("balance", Some(*b), None),
        Some(TxnResponse::Rejected { reason, .. }) => ("rejected", None, Some(reason.clone())),
        Some(TxnResponse::Indeterminate { reason }) => ("indeterminate", None, Some(reason.clone())),
    };
    TxnOp {
        client,
        f,
        from,
        to,
        amount,
        account,
        node: node.map(|n| n.0),
        invoked_us,
        completed_us,
        outcome,
        balance,
        reason,
    }
}
