//! Two-phase commit (the source text's "2-phase-commit"; Gray 1978;
//! Bernstein, Hadzilacos, Goodman 1987, §7.3–7.4 for the cooperative
//! termination protocol).
//!
//! The node a client sends a transfer to is its **coordinator**; the owners
//! of the two accounts are its **cohorts** (`n`, one or two of them). In the
//! *commit-request* (voting) phase the coordinator sends each cohort its part
//! (QUERY TO COMMIT); a cohort that can do its part locks the accounts,
//! forces a `Prepared` record and votes YES; one that cannot forces `Aborted`
//! and votes NO. In the *commit-or-abort* phase the coordinator forces its
//! decision and sends COMMIT (every vote was yes) or ROLLBACK (a no, or a
//! vote timed out); each cohort forces `Committed`/`Aborted`, applies or
//! discards its part, releases its locks and acknowledges. When every cohort
//! has acknowledged, the coordinator writes `End` and forgets the round.
//!
//! The records forced (persisted before the message that follows them leaves
//! the node), mapped to the text's diagram:
//!
//! | text | here | forced before |
//! | --- | --- | --- |
//! | cohort `prepare*` / `abort*` | `Record::Prepared` / `Record::Aborted` | its VOTE YES / VOTE NO |
//! | coordinator decision | `Record::Decided { commit }` | COMMIT / ROLLBACK and the client's reply |
//! | cohort `commit*` / `abort*` | `Record::Committed` / `Record::Aborted` | its ACKNOWLEDGMENT |
//! | coordinator `end` | `Record::End` | nothing (last record of the round) |
//!
//! Without failures a transaction exchanges QUERY, VOTE, COMMIT/ROLLBACK and
//! ACK with each cohort: the text's `3n` messages (query, vote, decision) plus
//! the `n` acknowledgments its own diagram draws, `4n` in all; and `2n + 2`
//! records (two per cohort, the decision and `End`).
//!
//! **Blocking.** A cohort that voted yes is *in doubt*: it may neither commit
//! nor abort on its own, and keeps its locks. It asks the coordinator every
//! `in_doubt_retry`; with `cooperative_termination` it also asks the other
//! cohorts, and any cohort that knows the outcome answers it — as does one that
//! has not voted yet, which then aborts unilaterally (it may: it never
//! promised anything) and answers ROLLBACK. If every cohort voted yes and the
//! coordinator is down, nobody knows the outcome: they block until it
//! recovers. The coordinator recovers from its log: a round with a decision
//! record and no `End` is decided again (COMMIT/ROLLBACK re-sent until
//! acknowledged); a transaction with no decision record is *presumed
//! aborted*, which is safe because the decision is forced before any cohort
//! can hear it.
//!
//! Transaction ids are unique across restarts: the coordinator reserves
//! blocks of sequence numbers in its log (`Record::Reserve`) before using them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use quorum_core::txn::{owner, TxnRequest, TxnResponse};
use quorum_core::{Cluster, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

use super::{agree, describe_balances, describe_locks, plan, Bank, Change, Refusal, TxnId, Write};

/// Deliberately broken variants (negative controls for the checkers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// A cohort votes yes without forcing `prepare*`: if it crashes before the
    /// decision it forgets its promise, releases its locks and never applies
    /// the commit the coordinator decided (atomicity broken).
    NoForcePrepare,
    /// The coordinator sends its decision before forcing it: a coordinator that
    /// crashes right after sending COMMIT presumes abort on recovery.
    NoForceDecision,
}

/// Settings of a 2PC node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often the coordinator re-sends QUERY (to silent cohorts) and the
    /// decision (to cohorts that have not acknowledged).
    pub retransmit_interval: Micros,
    /// How long the coordinator waits for votes before it rolls back.
    pub vote_timeout: Micros,
    /// How often an in-doubt cohort asks for the outcome.
    pub in_doubt_retry: Micros,
    /// Whether in-doubt cohorts also ask each other (cooperative termination).
    pub cooperative_termination: bool,
    /// Most rounds one coordinator runs at once; more requests are rejected.
    pub rounds_max: usize,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            retransmit_interval: Micros::from_millis(50),
            vote_timeout: Micros::from_millis(200),
            in_doubt_retry: Micros::from_millis(100),
            cooperative_termination: true,
            rounds_max: 64,
            bug: None,
        }
    }
}

impl Config {
    /// Check the settings before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.retransmit_interval.0 == 0 || self.in_doubt_retry.0 == 0 {
            return Err("retransmit_interval and in_doubt_retry must be positive".into());
        }
        if self.vote_timeout <= self.retransmit_interval {
            return Err("vote_timeout must exceed retransmit_interval".into());
        }
        if self.rounds_max == 0 {
            return Err("rounds_max must be positive".into());
        }
        Ok(())
    }
}

/// What an asked node knows of a transaction's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Commit,
    Abort,
    /// Not decided yet (the coordinator is collecting votes, or the asked
    /// cohort is in doubt itself).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Phase 1, QUERY TO COMMIT: do your `changes`; `cohorts` are all of
    /// the transaction's cohorts (for cooperative termination).
    Query { txn: TxnId, changes: Vec<Change>, cohorts: Vec<NodeId> },
    /// VOTE YES / VOTE NO.
    Vote { txn: TxnId, yes: bool },
    /// Phase 2: COMMIT (`true`) or ROLLBACK.
    Decision { txn: TxnId, commit: bool },
    /// ACKNOWLEDGMENT: the cohort forced its outcome.
    Ack { txn: TxnId },
    /// An in-doubt cohort asks the coordinator for the outcome.
    DecisionRequest { txn: TxnId },
    /// Cooperative termination: an in-doubt cohort asks another cohort.
    TerminationRequest { txn: TxnId },
    /// The answer to either request.
    DecisionReply { txn: TxnId, outcome: Outcome },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Coordinator: sequence numbers below `upto` may be in use.
    Reserve { upto: u64 },
    /// Cohort `prepare*`: voted yes; the redo after-images and who to ask.
    Prepared { txn: TxnId, cohorts: Vec<NodeId>, writes: Vec<Write> },
    /// Cohort `commit*`.
    Committed { txn: TxnId, writes: Vec<Write> },
    /// Cohort `abort*` (voted no, rolled back, or aborted unilaterally).
    Aborted { txn: TxnId },
    /// Coordinator decision (`commit*` / `abort*`).
    Decided { txn: TxnId, commit: bool, cohorts: Vec<NodeId> },
    /// Coordinator `end`: every cohort acknowledged.
    End { txn: TxnId },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Timer {
    /// Coordinator: re-send the round's current phase.
    Retransmit(TxnId),
    /// Coordinator: stop waiting for votes and roll back.
    Votes(TxnId),
    /// Cohort: ask for the outcome again.
    InDoubt(TxnId),
}

/// Sequence numbers reserved per `Reserve` record.
const RESERVE_BLOCK: u64 = 1_000;

#[derive(Clone, Debug)]
enum Phase {
    /// Collecting votes; `yes` holds the cohorts that voted yes.
    Voting { yes: BTreeSet<NodeId> },
    /// Decided and forced; waiting for every cohort's acknowledgment.
    Deciding { commit: bool, acked: BTreeSet<NodeId> },
}

/// A transaction this node coordinates.
#[derive(Clone, Debug)]
struct Round {
    /// The client to answer (lost in a crash).
    client: Option<RequestId>,
    changes: BTreeMap<NodeId, Vec<Change>>,
    phase: Phase,
}

impl Round {
    fn cohorts(&self) -> Vec<NodeId> {
        self.changes.keys().copied().collect()
    }
}

/// A cohort's yes vote, until it learns the outcome.
#[derive(Clone, Debug)]
struct InDoubt {
    cohorts: Vec<NodeId>,
    writes: Vec<Write>,
}

/// A 2PC node: coordinator of its clients' transfers, cohort of its accounts.
#[derive(Clone, Debug)]
pub struct TwoPhaseCommit {
    id: NodeId,
    nodes: u32,
    config: Config,
    // Coordinator.
    next_seq: u64,
    reserved_upto: u64,
    rounds: BTreeMap<TxnId, Round>,
    /// Every decision this node took as coordinator (forced).
    decisions: BTreeMap<TxnId, bool>,
    // Cohort.
    bank: Bank,
    in_doubt: BTreeMap<TxnId, InDoubt>,
    /// Outcomes of this node's part of each transaction it has heard of.
    decided: BTreeMap<TxnId, bool>,
}

impl Protocol for TwoPhaseCommit {
    type Msg = Msg;
    type Request = TxnRequest;
    type Response = TxnResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], out: &mut Out<'_, Self>) -> Self {
        config.validate().expect("2pc config must validate");
        let mut node = TwoPhaseCommit {
            id: cluster.id,
            nodes: cluster.nodes.len() as u32,
            config: config.clone(),
            next_seq: 1,
            reserved_upto: 1,
            rounds: BTreeMap::new(),
            decisions: BTreeMap::new(),
            bank: Bank::default(),
            in_doubt: BTreeMap::new(),
            decided: BTreeMap::new(),
        };
        for record in durable {
            node.replay(record);
        }
        node.recover(out);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::Query { txn, changes, cohorts } => self.handle_query(from, txn, &changes, cohorts, out),
            Msg::Vote { txn, yes } => self.handle_vote(from, txn, yes, out),
            Msg::Decision { txn, commit } => self.handle_decision(from, txn, commit, out),
            Msg::Ack { txn } => self.handle_ack(from, txn, out),
            Msg::DecisionRequest { txn } => self.handle_decision_request(from, txn, out),
            Msg::TerminationRequest { txn } => self.handle_termination_request(from, txn, out),
            Msg::DecisionReply { txn, outcome } => self.handle_decision_reply(txn, outcome, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Retransmit(txn) => self.retransmit(txn, out),
            Timer::Votes(txn) => {
                if matches!(self.rounds.get(&txn).map(|r| &r.phase), Some(Phase::Voting { .. })) {
                    self.decide(txn, false, "a vote timed out", out);
                }
            }
            Timer::InDoubt(txn) => self.ask_outcome(txn, out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: TxnRequest, out: &mut Out<'_, Self>) {
        match request {
            TxnRequest::Transfer { from, to, amount } => self.begin(id, from, to, amount, out),
            TxnRequest::Balance { account } => self.read_balance(id, account, out),
        }
    }

    fn invariants(&self) {
        self.bank.invariants();
        for (account, txn) in self.bank.locks() {
            let doubt = self.in_doubt.get(&txn);
            assert!(doubt.is_some(), "a{account} locked by {txn:?}, which is not in doubt");
            assert!(doubt.is_some_and(|d| d.writes.iter().any(|w| w.account == account)));
        }
        for (txn, doubt) in &self.in_doubt {
            assert!(!self.decided.contains_key(txn), "{txn:?} is both in doubt and decided");
            for w in &doubt.writes {
                assert_eq!(self.bank.lock_holder(w.account), Some(*txn), "in-doubt {txn:?} lost a lock");
                assert_eq!(owner(w.account, self.nodes), self.id, "a{} is not ours", w.account);
            }
        }
        for (txn, round) in &self.rounds {
            assert_eq!(txn.coordinator(), self.id, "only the coordinator holds a round");
            assert!(txn.seq() < self.reserved_upto, "{txn:?} uses an unreserved sequence number");
            match &round.phase {
                Phase::Voting { yes } => {
                    assert!(!self.decisions.contains_key(txn), "a voting round has no decision");
                    assert!(yes.iter().all(|c| round.changes.contains_key(c)));
                }
                Phase::Deciding { commit, acked } => {
                    assert_eq!(
                        self.decisions.get(txn),
                        Some(commit),
                        "a deciding round's decision is logged"
                    );
                    assert!(acked.iter().all(|c| round.changes.contains_key(c)));
                }
            }
        }
        assert!(self.next_seq <= self.reserved_upto);
        assert!(self.rounds.len() <= self.config.rounds_max);
    }

    fn describe(&self) -> String {
        let rounds: Vec<String> = self
            .rounds
            .iter()
            .map(|(txn, r)| match &r.phase {
                Phase::Voting { yes } => format!("{txn:?}:voting({}/{} yes)", yes.len(), r.changes.len()),
                Phase::Deciding { commit, acked } => format!(
                    "{txn:?}:{}({}/{} acks)",
                    if *commit { "commit" } else { "abort" },
                    acked.len(),
                    r.changes.len()
                ),
            })
            .collect();
        let doubt: Vec<String> = self.in_doubt.keys().map(|t| format!("{t:?}")).collect();
        format!(
            "rounds=[{}] coordinated=[{}] in-doubt=[{}] decided=[{}] locks={} balances={}",
            rounds.join(" "),
            super::describe_outcomes(&self.decisions),
            doubt.join(" "),
            super::describe_outcomes(&self.decided),
            describe_locks(&self.bank),
            describe_balances(&self.bank)
        )
    }

    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        agree(nodes.iter().flat_map(|(id, n)| [(*id, &n.decided), (*id, &n.decisions)]))
    }
}

// ---- recovery ----
impl TwoPhaseCommit {
    /// Rebuild state from one durable record, in log order.
    fn replay(&mut self, record: &Record) {
        match record {
            Record::Reserve { upto } => {
                self.next_seq = self.next_seq.max(*upto);
                self.reserved_upto = self.reserved_upto.max(*upto);
            }
            Record::Prepared { txn, cohorts, writes } => {
                assert!(!self.decided.contains_key(txn), "prepared {txn:?} after deciding it");
                self.bank.lock(*txn, writes);
                self.in_doubt.insert(*txn, InDoubt { cohorts: cohorts.clone(), writes: writes.clone() });
            }
            Record::Committed { txn, writes } => {
                self.in_doubt.remove(txn);
                self.bank.unlock(*txn);
                self.bank.apply(writes);
                self.decided.insert(*txn, true);
            }
            Record::Aborted { txn } => {
                self.in_doubt.remove(txn);
                self.bank.unlock(*txn);
                self.decided.insert(*txn, false);
            }
            Record::Decided { txn, commit, cohorts } => {
                self.decisions.insert(*txn, *commit);
                let changes = cohorts.iter().map(|c| (*c, Vec::new())).collect();
                let phase = Phase::Deciding { commit: *commit, acked: BTreeSet::new() };
                self.rounds.insert(*txn, Round { client: None, changes, phase });
            }
            Record::End { txn } => {
                self.rounds.remove(txn);
            }
        }
    }

    /// After replay: finish what the log says is unfinished.
    fn recover(&mut self, out: &mut Out<'_, Self>) {
        // A crash in the middle of a step may have cut the observations that
        // followed a forced record: tell the checkers again what the log says
        // (the same decisions, so atomicity is unaffected).
        for (txn, commit) in self.decided.iter().chain(&self.decisions) {
            out.observe(Observation::TxnDecided { txn: txn.0, commit: *commit });
        }
        for txn in self.in_doubt.keys() {
            out.observe(Observation::Prepared { txn: txn.0 });
        }
        // The old incarnation may have used any reserved number: start above.
        self.reserve(out);
        let deciding: Vec<TxnId> = self.rounds.keys().copied().collect();
        for txn in deciding {
            self.retransmit(txn, out);
        }
        let doubts: Vec<TxnId> = self.in_doubt.keys().copied().collect();
        for txn in doubts {
            out.set_timer(Timer::InDoubt(txn), self.config.in_doubt_retry);
        }
    }

    /// Reserve the next block of transaction sequence numbers.
    fn reserve(&mut self, out: &mut Out<'_, Self>) {
        self.next_seq = self.next_seq.max(self.reserved_upto);
        self.reserved_upto = self.next_seq + RESERVE_BLOCK;
        out.persist(Record::Reserve { upto: self.reserved_upto });
    }
}

// ---- coordinator ----
impl TwoPhaseCommit {
    fn begin(&mut self, client: RequestId, from: u64, to: u64, amount: u64, out: &mut Out<'_, Self>) {
        let changes = match plan(from, to, amount, self.nodes) {
            Ok(changes) => changes,
            Err(reason) => return out.reply(client, TxnResponse::Aborted { reason }),
        };
        if self.rounds.len() >= self.config.rounds_max {
            let reason = format!("{} rounds in progress", self.rounds.len());
            return out.reply(client, TxnResponse::Rejected { reason, hint: None });
        }
        if self.next_seq >= self.reserved_upto {
            self.reserve(out);
        }
        let txn = TxnId::new(self.id, self.next_seq);
        self.next_seq += 1;
        let round = Round { client: Some(client), changes, phase: Phase::Voting { yes: BTreeSet::new() } };
        let cohorts = round.cohorts();
        for (cohort, part) in &round.changes {
            out.send(*cohort, Msg::Query { txn, changes: part.clone(), cohorts: cohorts.clone() });
        }
        self.rounds.insert(txn, round);
        out.set_timer(Timer::Votes(txn), self.config.vote_timeout);
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    fn handle_vote(&mut self, from: NodeId, txn: TxnId, yes: bool, out: &mut Out<'_, Self>) {
        let Some(round) = self.rounds.get_mut(&txn) else { return };
        let Phase::Voting { yes: voted } = &mut round.phase else { return };
        if !round.changes.contains_key(&from) {
            return;
        }
        if !yes {
            return self.decide(txn, false, &format!("{from} voted no"), out);
        }
        voted.insert(from);
        if voted.len() == round.changes.len() {
            self.decide(txn, true, "", out);
        }
    }

    /// Force the decision, answer the client, tell every cohort.
    fn decide(&mut self, txn: TxnId, commit: bool, reason: &str, out: &mut Out<'_, Self>) {
        let round = self.rounds.get_mut(&txn).expect("only a running round is decided");
        assert!(matches!(round.phase, Phase::Voting { .. }), "a round is decided once");
        assert!(!self.decisions.contains_key(&txn), "a decision is never taken twice");
        let cohorts = round.cohorts();
        round.phase = Phase::Deciding { commit, acked: BTreeSet::new() };
        let forced = Record::Decided { txn, commit, cohorts: cohorts.clone() };
        if self.config.bug == Some(Bug::NoForceDecision) {
            for cohort in &cohorts {
                out.send(*cohort, Msg::Decision { txn, commit });
            }
            out.persist(forced);
        } else {
            out.persist(forced);
            for cohort in &cohorts {
                out.send(*cohort, Msg::Decision { txn, commit });
            }
        }
        self.decisions.insert(txn, commit);
        out.observe(Observation::TxnDecided { txn: txn.0, commit });
        if let Some(client) = round.client.take() {
            let response = if commit {
                TxnResponse::Committed
            } else {
                TxnResponse::Aborted { reason: reason.to_string() }
            };
            out.reply(client, response);
        }
        out.cancel_timer(Timer::Votes(txn));
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    fn handle_ack(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(round) = self.rounds.get_mut(&txn) else { return };
        let Phase::Deciding { acked, .. } = &mut round.phase else { return };
        if !round.changes.contains_key(&from) {
            return;
        }
        acked.insert(from);
        if acked.len() == round.changes.len() {
            self.rounds.remove(&txn);
            out.persist(Record::End { txn });
            out.cancel_timer(Timer::Retransmit(txn));
        }
    }

    fn retransmit(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(round) = self.rounds.get(&txn) else { return };
        let cohorts = round.cohorts();
        match &round.phase {
            Phase::Voting { yes } => {
                for (cohort, part) in round.changes.iter().filter(|(c, _)| !yes.contains(c)) {
                    out.send(*cohort, Msg::Query { txn, changes: part.clone(), cohorts: cohorts.clone() });
                }
            }
            Phase::Deciding { commit, acked } => {
                for cohort in cohorts.iter().filter(|c| !acked.contains(c)) {
                    out.send(*cohort, Msg::Decision { txn, commit: *commit });
                }
            }
        }
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    /// An in-doubt cohort asks: the decision if logged, presumed abort if
    /// there is none and no round is running.
    fn handle_decision_request(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        if txn.coordinator() != self.id {
            return;
        }
        let outcome = match (self.decisions.get(&txn), self.rounds.contains_key(&txn)) {
            (Some(true), _) => Outcome::Commit,
            (Some(false), _) => Outcome::Abort,
            (None, true) => Outcome::Unknown,
            (None, false) => Outcome::Abort,
        };
        out.send(from, Msg::DecisionReply { txn, outcome });
    }

    fn read_balance(&mut self, client: RequestId, account: u64, out: &mut Out<'_, Self>) {
        let holder = owner(account, self.nodes);
        let response = if holder != self.id {
            TxnResponse::Rejected { reason: format!("a{account} lives at {holder}"), hint: Some(holder) }
        } else if let Some(txn) = self.bank.lock_holder(account) {
            TxnResponse::Rejected { reason: format!("a{account} is locked by {txn:?}"), hint: Some(self.id) }
        } else {
            TxnResponse::Balance(self.bank.balance(account))
        };
        out.reply(client, response);
    }
}

// ---- cohort ----
impl TwoPhaseCommit {
    fn handle_query(
        &mut self,
        from: NodeId,
        txn: TxnId,
        changes: &[Change],
        cohorts: Vec<NodeId>,
        out: &mut Out<'_, Self>,
    ) {
        if from != txn.coordinator() || changes.iter().any(|c| owner(c.account, self.nodes) != self.id) {
            return;
        }
        if let Some(commit) = self.decided.get(&txn) {
            return out.send(from, Msg::Vote { txn, yes: *commit });
        }
        if self.in_doubt.contains_key(&txn) {
            return out.send(from, Msg::Vote { txn, yes: true });
        }
        match self.bank.try_prepare(txn, changes) {
            Ok(writes) => self.prepare(txn, cohorts, writes, out),
            Err(Refusal::Locked { .. } | Refusal::InsufficientFunds { .. }) => {
                self.abort_unilaterally(txn, out);
                out.send(from, Msg::Vote { txn, yes: false });
            }
        }
    }

    /// Lock, force `prepare*`, vote yes: from here on the cohort is in doubt.
    fn prepare(&mut self, txn: TxnId, cohorts: Vec<NodeId>, writes: Vec<Write>, out: &mut Out<'_, Self>) {
        self.bank.lock(txn, &writes);
        if self.config.bug != Some(Bug::NoForcePrepare) {
            out.persist(Record::Prepared { txn, cohorts: cohorts.clone(), writes: writes.clone() });
        }
        self.in_doubt.insert(txn, InDoubt { cohorts, writes });
        out.observe(Observation::Prepared { txn: txn.0 });
        out.send(txn.coordinator(), Msg::Vote { txn, yes: true });
        out.set_timer(Timer::InDoubt(txn), self.config.in_doubt_retry);
    }

    /// Abort a transaction this cohort has not voted yes for: force `abort*`
    /// so that a later QUERY is answered no.
    fn abort_unilaterally(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        assert!(!self.in_doubt.contains_key(&txn), "an in-doubt cohort may not abort on its own");
        assert!(!self.decided.contains_key(&txn));
        out.persist(Record::Aborted { txn });
        self.decided.insert(txn, false);
        out.observe(Observation::TxnDecided { txn: txn.0, commit: false });
    }

    /// Force and apply the outcome of an in-doubt transaction.
    fn finish(&mut self, txn: TxnId, commit: bool, out: &mut Out<'_, Self>) {
        let doubt = self.in_doubt.remove(&txn).expect("only an in-doubt transaction is finished");
        if commit {
            out.persist(Record::Committed { txn, writes: doubt.writes.clone() });
            self.bank.apply(&doubt.writes);
        } else {
            out.persist(Record::Aborted { txn });
        }
        self.bank.unlock(txn);
        self.decided.insert(txn, commit);
        out.observe(Observation::TxnDecided { txn: txn.0, commit });
        out.cancel_timer(Timer::InDoubt(txn));
    }

    fn handle_decision(&mut self, from: NodeId, txn: TxnId, commit: bool, out: &mut Out<'_, Self>) {
        if from != txn.coordinator() {
            return;
        }
        if self.in_doubt.contains_key(&txn) {
            self.finish(txn, commit, out);
        } else if let Entry::Vacant(vacant) = self.decided.entry(txn) {
            // Never voted yes (or, under `no-force-prepare`, forgot that it
            // did): nothing of it was applied here, so this cohort's part is
            // aborted whatever the coordinator decided. Presumed abort needs
            // no record.
            vacant.insert(false);
            out.observe(Observation::TxnDecided { txn: txn.0, commit: false });
        }
        out.send(from, Msg::Ack { txn });
    }

    fn ask_outcome(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(doubt) = self.in_doubt.get(&txn) else { return };
        out.send(txn.coordinator(), Msg::DecisionRequest { txn });
        if self.config.cooperative_termination {
            for cohort in doubt.cohorts.iter().filter(|c| **c != self.id) {
                out.send(*cohort, Msg::TerminationRequest { txn });
            }
        }
        out.set_timer(Timer::InDoubt(txn), self.config.in_doubt_retry);
    }

    /// Cooperative termination: answer what this cohort knows; one that has
    /// not voted yet aborts and says so.
    fn handle_termination_request(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        let outcome = match self.decided.get(&txn) {
            Some(true) => Outcome::Commit,
            Some(false) => Outcome::Abort,
            None if self.in_doubt.contains_key(&txn) => Outcome::Unknown,
            None => {
                self.abort_unilaterally(txn, out);
                Outcome::Abort
            }
        };
        out.send(from, Msg::DecisionReply { txn, outcome });
    }

    fn handle_decision_reply(&mut self, txn: TxnId, outcome: Outcome, out: &mut Out<'_, Self>) {
        if !self.in_doubt.contains_key(&txn) {
            return;
        }
        match outcome {
            Outcome::Commit => self.finish(txn, true, out),
            Outcome::Abort => self.finish(txn, false, out),
            Outcome::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;
    use quorum_core::txn::INITIAL_BALANCE;

    const N0: NodeId = NodeId(0);
    const N1: NodeId = NodeId(1);
    const N2: NodeId = NodeId(2);

    /// Three nodes: n0 coordinates, accounts 1 and 2 live at n1 and n2.
    fn kit(config: Config) -> Kit<TwoPhaseCommit> {
        Kit::new(3, config)
    }

    fn transfer(amount: u64) -> TxnRequest {
        TxnRequest::Transfer { from: 1, to: 2, amount }
    }

    fn decided(kit: &Kit<TwoPhaseCommit>, node: NodeId) -> Vec<bool> {
        kit.node(node).decided.values().copied().collect()
    }

    /// 2PC §"2-phase-commit": QUERY, VOTE, COMMIT, ACK per cohort.
    #[test]
    fn happy_path_exchanges_four_messages_per_cohort_and_commits_everywhere() {
        let mut kit = kit(Config::default());
        let rid = kit.request(N0, transfer(30));
        let mut messages = 0;
        while !kit.network.is_empty() {
            kit.deliver_all(1);
            messages += 1;
        }
        assert_eq!(messages, 4 * 2, "query + vote + decision + ack, for n = 2 cohorts");
        assert_eq!(kit.reply(rid), Some(&TxnResponse::Committed));
        assert_eq!(kit.node(N1).bank.balance(1), INITIAL_BALANCE - 30);
        assert_eq!(kit.node(N2).bank.balance(2), INITIAL_BALANCE + 30);
        assert!(kit.node(N0).rounds.is_empty(), "every ack arrived: the round ended");
        assert!(kit.durable[0].iter().any(|r| matches!(r, Record::End { .. })));
    }

    #[test]
    fn a_cohort_without_funds_votes_no_and_the_transfer_aborts_everywhere() {
        let mut kit = kit(Config::default());
        let rid = kit.request(N0, transfer(INITIAL_BALANCE as u64 + 1));
        kit.deliver_all(100);
        assert!(matches!(kit.reply(rid), Some(TxnResponse::Aborted { .. })));
        assert_eq!(decided(&kit, N1), vec![false]);
        assert_eq!(decided(&kit, N2), vec![false]);
        assert_eq!(kit.node(N2).bank.balance(2), INITIAL_BALANCE);
        assert!(kit.node(N2).bank.locks().next().is_none(), "the yes voter released its lock");
        assert!(matches!(kit.durable[1].last(), Some(Record::Aborted { .. })), "abort* forced before NO");
    }

    /// §"Coordinator failure": cohorts that voted yes stay in doubt, locks
    /// held, until the coordinator recovers from its log and finishes.
    #[test]
    fn coordinator_crash_after_deciding_blocks_cohorts_until_it_recovers_from_its_log() {
        let mut kit = kit(Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(4); // two queries, two yes votes: the coordinator forces COMMIT...
        assert!(kit.durable[0].iter().any(|r| matches!(r, Record::Decided { commit: true, .. })));
        kit.network.clear(); // ...and crashes before its COMMITs leave.
        kit.crash(N0);
        kit.advance(Micros::from_millis(1_000));
        for cohort in [N1, N2] {
            assert_eq!(kit.node(cohort).in_doubt.len(), 1, "{cohort} blocks, in doubt");
            assert!(kit.node(cohort).bank.locks().next().is_some(), "{cohort} holds its lock");
        }
        kit.start(N0);
        kit.deliver_all(100);
        assert_eq!(decided(&kit, N1), vec![true]);
        assert_eq!(decided(&kit, N2), vec![true]);
        assert_eq!(kit.node(N2).bank.balance(2), INITIAL_BALANCE + 30);
    }

    /// A coordinator that crashes before deciding presumes abort on recovery.
    #[test]
    fn coordinator_crash_before_deciding_is_presumed_abort_after_recovery() {
        let mut kit = kit(Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(3); // both queries, one vote
        kit.network.clear();
        kit.crash(N0);
        kit.advance(Micros::from_millis(500));
        assert_eq!(kit.node(N1).in_doubt.len() + kit.node(N2).in_doubt.len(), 2);
        kit.start(N0);
        kit.advance(Micros::from_millis(200));
        assert_eq!(decided(&kit, N1), vec![false]);
        assert_eq!(decided(&kit, N2), vec![false]);
    }

    /// Cooperative termination: with the coordinator down, an in-doubt cohort
    /// learns the outcome from a cohort that already has it.
    #[test]
    fn cooperative_termination_finishes_without_the_coordinator() {
        let mut kit = kit(Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(4);
        // The COMMIT reaches n1 only; then the coordinator dies for good.
        let (from, to, msg) = kit.network.pop_front().unwrap();
        assert_eq!((from, to), (N0, N1));
        kit.network.clear();
        kit.network.push_back((from, to, msg));
        kit.crash(N0);
        kit.deliver_all(100);
        assert_eq!(decided(&kit, N1), vec![true]);
        assert_eq!(kit.node(N2).in_doubt.len(), 1);
        kit.advance(Micros::from_millis(150));
        assert_eq!(decided(&kit, N2), vec![true], "n2 asked n1");
        assert_eq!(kit.node(N2).bank.balance(2), INITIAL_BALANCE + 30);
    }

    #[test]
    fn without_cooperative_termination_the_same_cohort_blocks() {
        let config = Config { cooperative_termination: false, ..Config::default() };
        let mut kit = kit(config);
        kit.request(N0, transfer(30));
        kit.deliver_all(4);
        let first = kit.network.pop_front().unwrap();
        kit.network.clear();
        kit.network.push_back(first);
        kit.crash(N0);
        kit.deliver_all(100);
        kit.advance(Micros::from_millis(2_000));
        assert_eq!(kit.node(N2).in_doubt.len(), 1, "blocked: only the coordinator is asked");
    }

    /// A cohort that never got its QUERY aborts when an in-doubt peer asks,
    /// and that outcome is what everyone then learns.
    #[test]
    fn a_cohort_that_has_not_voted_aborts_when_asked_and_votes_no_later() {
        let mut kit = kit(Config::default());
        kit.request(N0, transfer(30));
        let (_, _, to_n1) = kit.network.pop_front().unwrap();
        let (_, _, to_n2) = kit.network.pop_front().unwrap();
        kit.crash(N0);
        kit.network.push_back((N0, N1, to_n1));
        kit.deliver_all(10); // n1 votes yes into the void
        kit.advance(Micros::from_millis(100)); // n1 asks n2, which aborts
        assert_eq!(decided(&kit, N2), vec![false]);
        assert_eq!(decided(&kit, N1), vec![false]);
        kit.start(N0);
        kit.network.push_back((N0, N2, to_n2));
        kit.deliver_all(10);
        assert_eq!(decided(&kit, N2), vec![false], "the late QUERY is answered no");
    }

    /// The negative control: with `no-force-prepare`, a cohort that crashes
    /// after voting yes forgets its vote; the coordinator commits, the cohort
    /// applies nothing — atomicity and the balance invariant both break.
    #[test]
    fn no_force_prepare_bug_breaks_atomicity_when_a_cohort_crashes_after_voting() {
        let mut kit = kit(Config { bug: Some(Bug::NoForcePrepare), ..Config::default() });
        kit.request(N0, transfer(30));
        kit.deliver_all(4); // both voted yes, the coordinator decided commit
        kit.crash(N2);
        kit.start(N2); // nothing of t1 in n2's log
        kit.deliver_all(100);
        assert_eq!(decided(&kit, N1), vec![true]);
        assert_eq!(decided(&kit, N2), vec![false]);
        let nodes = [(N1, kit.node(N1)), (N2, kit.node(N2))];
        assert!(TwoPhaseCommit::cluster_invariants(&nodes).is_err());
        let total = kit.node(N1).bank.balance(1) + kit.node(N2).bank.balance(2);
        assert_eq!(total, 2 * INITIAL_BALANCE - 30, "30 vanished");

        // The same schedule without the bug keeps the promise.
        let mut kit = kit_default();
        kit.request(N0, transfer(30));
        kit.deliver_all(4);
        kit.crash(N2);
        kit.start(N2);
        kit.deliver_all(100);
        assert_eq!(decided(&kit, N2), vec![true]);
    }

    fn kit_default() -> Kit<TwoPhaseCommit> {
        kit(Config::default())
    }

    #[test]
    fn a_locked_account_makes_a_second_transfer_vote_no() {
        let mut kit = kit_default();
        kit.request(N0, transfer(10));
        kit.deliver_all(2); // both cohorts prepared t1
        let second = kit.request(N1, TxnRequest::Transfer { from: 2, to: 4, amount: 5 });
        kit.deliver_all(100);
        assert!(matches!(kit.reply(second), Some(TxnResponse::Aborted { .. })));
        assert_eq!(kit.node(N2).bank.balance(2), INITIAL_BALANCE + 10);
    }

    #[test]
    fn balances_are_read_at_their_owner_only() {
        let mut kit = kit_default();
        let elsewhere = kit.request(N0, TxnRequest::Balance { account: 1 });
        assert!(matches!(kit.reply(elsewhere), Some(TxnResponse::Rejected { hint: Some(N1), .. })));
        let here = kit.request(N1, TxnRequest::Balance { account: 1 });
        assert_eq!(kit.reply(here), Some(&TxnResponse::Balance(INITIAL_BALANCE)));
    }
}
