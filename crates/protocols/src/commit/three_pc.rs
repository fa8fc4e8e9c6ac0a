//! Three-phase commit (the source text's "3-phase-commit"; Skeen,
//! "Nonblocking commit protocols", SIGMOD 1981; Bernstein, Hadzilacos,
//! Goodman 1987, §7.5).
//!
//! 2PC blocks because a cohort that voted yes sits in a state from which both
//! outcomes are still possible. 3PC inserts a state between "voted yes" and
//! "committed", so that no state is adjacent to both commit and abort:
//!
//! 1. **canCommit** (proposal phase): the coordinator sends each cohort its
//!    part; a cohort that can do it forces `Prepared`, locks and votes yes
//!    (state *waiting*), otherwise forces `Aborted` and votes no.
//! 2. **preCommit** (prepare phase): all voted yes, so the coordinator forces
//!    `PreCommitting` and sends preCommit; each cohort forces `PreCommitted`
//!    (state *pre-committed*) and acknowledges ("prepared to commit").
//! 3. **doCommit** (commit phase): with every acknowledgment in, the
//!    coordinator forces its commit decision, answers the client and sends
//!    doCommit; cohorts force `Committed`, apply, and acknowledge
//!    ("have committed"); the coordinator writes `End`.
//!
//! Timeouts, as the text gives them: a coordinator that times out waiting for
//! votes (phase 1) or for preCommit acknowledgments (phase 2) aborts. A cohort
//! that hears nothing for `termination_timeout` runs the **termination
//! protocol**: the text's "one of the other cohorts gets promoted to
//! coordinator" — the lowest-ranked cohort first, the next one a timeout
//! later if that one is silent too. The recovery coordinator collects every
//! reachable participant's state and decides: any committed → commit; any
//! aborted → abort; the original coordinator still running the round → back
//! off; any pre-committed → commit (so a pre-committed cohort commits without
//! hearing doCommit, as the text says); otherwise (all waiting) → abort. A
//! cohort that has not voted yet answers by aborting unilaterally.
//!
//! Under fail-stop crashes this never blocks: the cohorts decide among
//! themselves within a few timeouts, where 2PC cohorts wait for the
//! coordinator to come back. A site that restarts undecided (a cohort in
//! doubt, a coordinator that had started phase 2) never decides alone on its
//! own state from before the failure: the operational sites may have decided
//! without it meanwhile. It answers as *recovered* and asks; the operational
//! sites' states decide, or a decision it hears, or, after a total failure,
//! every participant's recovered state once all have answered (Skeen's
//! recovery protocol).
//! But 3PC assumes a failure detector that is never wrong. Under a
//! **partition** it is: the text's scenario — the coordinator is cut off
//! before all prepared-to-commit acknowledgments arrive, times out and aborts,
//! while on the other side a promoted cohort sees everyone pre-committed and
//! commits — splits the decision, and the atomicity checker reports it
//! (`tests/scenarios/3pc/partition_splits_the_decision.txt`).
//!
//! Forced records: cohort `Prepared`/`Aborted` before its vote,
//! `PreCommitted` before its ack, `Committed`/`Aborted` before "have
//! committed"; coordinator `PreCommitting` before preCommit, `Decided` before
//! doCommit/abort. Without failures, for `n` cohorts: `5n` messages that
//! reach the outcome (canCommit, vote, preCommit, prepared-to-commit,
//! doCommit) plus `n` "have committed" acknowledgments, counted apart as in
//! 2PC ([`Protocol::is_outcome_ack`]); `3n + 3` records; the decision reaches
//! the client after two round trips (2PC: one) and the cohorts after two and
//! a half (2PC: one and a half).

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::txn::{TxnRequest, TxnResponse};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

use super::roles::{self, Cohort, Coordinator, Round, Tally};
use super::{agree, Change, TxnId, Write};

/// The catalogue entry (source text, "3-phase-commit"): non-blocking and
/// atomic when nodes fail by stopping; a partition splits the decision.
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "3pc",
    section: "3-phase-commit",
    summary: "canCommit / preCommit / doCommit with timeouts and a promoted recovery coordinator: \
              no blocking under fail-stop crashes; a partition splits the decision",
    model: SystemModel::FailStop,
    always: catalog::EVERYTHING,
    breaks: &[Violation::Atomicity],
    sometimes: &[reached::COMMITTED, reached::ABORTED, TERMINATED],
    workload: catalog::Workload::Txn,
    variants: &[],
    bugs: &[catalog::Bug {
        name: "no-force-prepare",
        what: "a cohort votes yes without forcing its Prepared record",
        caught_as: &[Violation::Atomicity, Violation::Balance],
    }],
    explorable: &[],
    retries: 0,
};

/// Cohorts decided among themselves, without their coordinator.
pub const TERMINATED: Sometimes = Sometimes {
    name: "terminated_without_coordinator",
    what: "cohorts whose coordinator went silent decided by the termination protocol",
};

/// Deliberately broken variants (negative controls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// A cohort votes yes without forcing its `Prepared` record.
    NoForcePrepare,
}

/// Settings of a 3PC node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often the coordinator re-sends its current phase to silent cohorts.
    pub retransmit_interval: Micros,
    /// Phase 1: how long the coordinator waits for votes before aborting.
    pub vote_timeout: Micros,
    /// Phase 2: how long it waits for preCommit acknowledgments before aborting.
    pub ack_timeout: Micros,
    /// How long a cohort waits for the coordinator before the termination
    /// protocol, per rank (the lowest cohort after one, the next after two..).
    pub termination_timeout: Micros,
    /// How long a recovery coordinator collects states before deciding.
    pub collect_timeout: Micros,
    /// Most rounds one coordinator runs at once; more requests are rejected.
    pub rounds_max: usize,
    pub bug: Option<Bug>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            retransmit_interval: Micros::from_millis(50),
            vote_timeout: Micros::from_millis(100),
            ack_timeout: Micros::from_millis(100),
            termination_timeout: Micros::from_millis(200),
            collect_timeout: Micros::from_millis(50),
            rounds_max: 64,
            bug: None,
        }
    }
}

impl Config {
    /// Check the settings before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retransmit_interval.0 == 0 || self.collect_timeout.0 == 0 {
            return Err(ConfigError::new("retransmit_interval and collect_timeout must be positive"));
        }
        if self.vote_timeout <= self.retransmit_interval || self.ack_timeout <= self.retransmit_interval {
            return Err(ConfigError::new("vote_timeout and ack_timeout must exceed retransmit_interval"));
        }
        if self.termination_timeout <= self.ack_timeout.max(self.vote_timeout) {
            return Err(ConfigError::new("termination_timeout must exceed the coordinator's timeouts"));
        }
        if self.rounds_max == 0 {
            return Err(ConfigError::new("rounds_max must be positive"));
        }
        Ok(())
    }
}

/// A participant's state, as the termination protocol collects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    /// Voted yes, not pre-committed.
    Waiting,
    PreCommitted,
    Committed,
    Aborted,
    /// The original coordinator is still running the round: back off.
    Busy,
    /// Restarted without knowing the outcome: the state it had when it
    /// failed (`precommitted`: it had forced `PreCommitted`, or, as the
    /// coordinator, `PreCommitting`). Operational sites may have decided
    /// without it since, so only a decision, or every participant's state,
    /// tells it the outcome (Skeen's recovery protocol).
    Recovered {
        precommitted: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Phase 1: can you do `changes`? `cohorts` are all of the cohorts.
    CanCommit {
        txn: TxnId,
        changes: Vec<Change>,
        cohorts: Vec<NodeId>,
    },
    Vote {
        txn: TxnId,
        yes: bool,
    },
    /// Phase 2: everyone voted yes; be ready to commit.
    PreCommit {
        txn: TxnId,
    },
    /// "Prepared to commit": the cohort forced `PreCommitted`.
    PreCommitAck {
        txn: TxnId,
    },
    /// Phase 3: doCommit (`true`) or abort, from the coordinator.
    Decision {
        txn: TxnId,
        commit: bool,
    },
    /// "Have committed" (or aborted): the cohort forced its outcome.
    Ack {
        txn: TxnId,
    },
    /// Termination protocol: a recovery coordinator asks for a state.
    StateRequest {
        txn: TxnId,
    },
    StateReply {
        txn: TxnId,
        state: State,
    },
    /// A recovery coordinator's decision.
    Outcome {
        txn: TxnId,
        commit: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Coordinator: sequence numbers below `upto` may be in use.
    Reserve {
        upto: u64,
    },
    /// Cohort: voted yes (state waiting).
    Prepared {
        txn: TxnId,
        cohorts: Vec<NodeId>,
        writes: Vec<Write>,
    },
    /// Cohort: received preCommit.
    PreCommitted {
        txn: TxnId,
    },
    Committed {
        txn: TxnId,
        writes: Vec<Write>,
    },
    Aborted {
        txn: TxnId,
    },
    /// Coordinator: every vote was yes; preCommit is going out.
    PreCommitting {
        txn: TxnId,
        cohorts: Vec<NodeId>,
    },
    /// Coordinator (or, adopting a recovery coordinator's outcome, itself).
    Decided {
        txn: TxnId,
        commit: bool,
        cohorts: Vec<NodeId>,
    },
    End {
        txn: TxnId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Timer {
    /// Coordinator: re-send the current phase.
    Retransmit(TxnId),
    /// Coordinator: phase 1 or 2 timed out; abort.
    Phase(TxnId),
    /// Participant in doubt: heard nothing for too long; start termination.
    InDoubt(TxnId),
    /// Recovery coordinator: decide with the states collected so far.
    Collect(TxnId),
}

/// What 3PC puts between the votes and the decision.
#[derive(Clone, Debug)]
enum Pre {
    /// preCommit sent; `acked` holds the cohorts that are prepared to commit.
    PreCommitting { acked: BTreeSet<NodeId> },
    /// Restarted after `PreCommitting` without a decision: acts as a
    /// pre-committed participant of the termination protocol.
    Recovering,
}

type Phase = roles::Phase<Pre>;

/// A 3PC node: coordinator of its clients' transfers, cohort of its accounts.
#[derive(Clone, Debug)]
pub struct ThreePhaseCommit {
    id: NodeId,
    config: Config,
    coordinator: Coordinator<Pre>,
    cohort: Cohort,
    /// Termination protocols this node leads: the states collected so far.
    terminations: BTreeMap<TxnId, BTreeMap<NodeId, State>>,
    /// Transactions this node was undecided about when it restarted: it
    /// answers for them as [`State::Recovered`] until it learns the outcome.
    recovered: BTreeSet<TxnId>,
}

roles::impl_commit_protocol!(ThreePhaseCommit, CanCommit);

impl Protocol for ThreePhaseCommit {
    type Msg = Msg;
    type Request = TxnRequest;
    type Response = TxnResponse;
    type Record = Record;
    type Timer = Timer;
    type Config = Config;

    fn validate(config: &Config, _nodes: &[NodeId]) -> Result<(), ConfigError> {
        config.validate()
    }

    fn start(cluster: &Cluster, config: &Config, durable: &[Record], out: &mut Out<'_, Self>) -> Self {
        assert!(config.validate().is_ok(), "drivers validate the config before start");
        let nodes = cluster.nodes.len() as u32;
        let mut node = ThreePhaseCommit {
            id: cluster.id,
            config: config.clone(),
            coordinator: Coordinator::new(cluster.id, nodes, config.rounds_max),
            cohort: Cohort::new(cluster.id, nodes),
            terminations: BTreeMap::new(),
            recovered: BTreeSet::new(),
        };
        for record in durable {
            node.replay(record);
        }
        node.recover(out);
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out<'_, Self>) {
        match msg {
            Msg::CanCommit { txn, changes, cohorts } => {
                self.handle_can_commit(from, txn, &changes, cohorts, out)
            }
            Msg::Vote { txn, yes } => self.handle_vote(from, txn, yes, out),
            Msg::PreCommit { txn } => self.handle_pre_commit(from, txn, out),
            Msg::PreCommitAck { txn } => self.handle_pre_commit_ack(from, txn, out),
            Msg::Decision { txn, commit } => {
                self.cohort.handle_decision(from, txn, commit, out);
                self.end_termination(txn, out);
            }
            Msg::Ack { txn } => {
                if self.coordinator.handle_ack(from, txn, out) {
                    out.cancel_timer(Timer::Retransmit(txn));
                }
            }
            Msg::StateRequest { txn } => self.handle_state_request(from, txn, out),
            Msg::StateReply { txn, state } => self.handle_state_reply(from, txn, state, out),
            Msg::Outcome { txn, commit } => self.adopt(txn, commit, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Retransmit(txn) => self.retransmit(txn, out),
            Timer::Phase(txn) => self.phase_timeout(txn, out),
            Timer::InDoubt(txn) => self.begin_termination(txn, out),
            Timer::Collect(txn) => self.conclude_termination(txn, out),
        }
    }

    fn on_request(&mut self, id: RequestId, request: TxnRequest, out: &mut Out<'_, Self>) {
        match request {
            TxnRequest::Transfer { from, to, amount } => self.begin(id, from, to, amount, out),
            TxnRequest::Balance { account } => self.cohort.read_balance(id, account, out),
        }
    }

    fn invariants(&self) {
        self.cohort.invariants();
        self.coordinator.invariants();
        for txn in self.terminations.keys() {
            assert!(self.undecided(*txn), "only an undecided participant leads a termination");
        }
        for txn in &self.recovered {
            assert!(self.undecided(*txn), "a recovered transaction is forgotten once decided");
        }
    }

    fn describe(&self) -> String {
        let rounds: Vec<String> = self
            .coordinator
            .rounds
            .iter()
            .map(|(txn, r)| {
                let phase = match &r.phase {
                    Phase::Voting { yes } => format!("voting({}/{} yes)", yes.len(), r.changes.len()),
                    Phase::Between(Pre::PreCommitting { acked }) => {
                        format!("precommitting({}/{} acks)", acked.len(), r.changes.len())
                    }
                    Phase::Deciding { commit, acked } => format!(
                        "{}({}/{} acks)",
                        if *commit { "commit" } else { "abort" },
                        acked.len(),
                        r.changes.len()
                    ),
                    Phase::Between(Pre::Recovering) => "recovering".to_string(),
                };
                format!("{txn:?}:{phase}")
            })
            .collect();
        let doubt: Vec<String> = self
            .cohort
            .in_doubt
            .iter()
            .map(|(t, d)| format!("{t:?}:{}", if d.precommitted { "precommitted" } else { "waiting" }))
            .collect();
        super::describe_node(&rounds, &self.coordinator.decisions, &doubt, &self.cohort)
    }

    fn is_outcome_ack(msg: &Msg) -> bool {
        matches!(msg, Msg::Ack { .. })
    }

    fn cluster_invariants(nodes: &[(NodeId, &Self)]) -> Result<(), String> {
        agree(nodes.iter().map(|(id, n)| (*id, &n.coordinator, &n.cohort)))
    }
}

// ---- recovery ----
impl ThreePhaseCommit {
    fn replay(&mut self, record: &Record) {
        match record {
            Record::Reserve { upto } => self.coordinator.replay_reserve(*upto),
            Record::Prepared { txn, cohorts, writes } => self.cohort.replay_prepared(*txn, cohorts, writes),
            Record::PreCommitted { txn } => {
                if let Some(doubt) = self.cohort.in_doubt.get_mut(txn) {
                    doubt.precommitted = true;
                }
            }
            Record::Committed { txn, writes } => self.cohort.replay_outcome(*txn, Some(writes)),
            Record::Aborted { txn } => self.cohort.replay_outcome(*txn, None),
            Record::PreCommitting { txn, cohorts } => {
                let round = Round::recovered(cohorts, Phase::Between(Pre::Recovering));
                self.coordinator.rounds.insert(*txn, round);
            }
            Record::Decided { txn, commit, cohorts } => {
                self.coordinator.replay_decided(*txn, *commit, cohorts)
            }
            Record::End { txn } => {
                self.coordinator.rounds.remove(txn);
            }
        }
    }

    fn recover(&mut self, out: &mut Out<'_, Self>) {
        self.cohort.reobserve(&self.coordinator.decisions, out);
        self.coordinator.reserve(out);
        let rounds: Vec<(TxnId, bool)> = self
            .coordinator
            .rounds
            .iter()
            .map(|(t, r)| (*t, matches!(r.phase, Phase::Between(Pre::Recovering))))
            .collect();
        for (txn, recovering) in rounds {
            if recovering {
                self.recovered.insert(txn);
                // Never decide alone after a crash: ask the cohorts.
                self.begin_termination(txn, out);
            } else {
                self.retransmit(txn, out);
            }
        }
        let doubts: Vec<TxnId> = self.cohort.in_doubt.keys().copied().collect();
        for txn in doubts {
            self.recovered.insert(txn);
            self.arm_in_doubt(txn, out);
        }
    }
}

// ---- coordinator ----
impl ThreePhaseCommit {
    fn begin(&mut self, client: RequestId, from: u64, to: u64, amount: u64, out: &mut Out<'_, Self>) {
        if let Some(txn) = self.coordinator.begin(client, from, to, amount, out) {
            out.set_timer(Timer::Phase(txn), self.config.vote_timeout);
            out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
        }
    }

    fn handle_vote(&mut self, from: NodeId, txn: TxnId, yes: bool, out: &mut Out<'_, Self>) {
        match self.coordinator.tally(from, txn, yes) {
            Tally::Ignored | Tally::Pending => {}
            Tally::No => self.decide(txn, false, &format!("{from} voted no"), out),
            Tally::AllYes => self.pre_commit(txn, out),
        }
    }

    /// Phase 2: every vote was yes; force the move to pre-commit, then tell
    /// every cohort.
    fn pre_commit(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let round = self.coordinator.rounds.get_mut(&txn).expect("a voting round");
        let cohorts = round.cohorts();
        round.phase = Phase::Between(Pre::PreCommitting { acked: BTreeSet::new() });
        out.persist(Record::PreCommitting { txn, cohorts: cohorts.clone() });
        for cohort in cohorts {
            out.send(cohort, Msg::PreCommit { txn });
        }
        out.set_timer(Timer::Phase(txn), self.config.ack_timeout);
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    fn handle_pre_commit_ack(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(round) = self.coordinator.rounds.get_mut(&txn) else { return };
        let Phase::Between(Pre::PreCommitting { acked }) = &mut round.phase else { return };
        if !round.changes.contains_key(&from) {
            return;
        }
        acked.insert(from);
        if acked.len() == round.changes.len() {
            self.decide(txn, true, "", out);
        }
    }

    /// The text: "If the coordinator times out while waiting for cohorts to
    /// reply in phases 1 or 2 then it will cancel the transaction."
    fn phase_timeout(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        match self.coordinator.rounds.get(&txn).map(|r| &r.phase) {
            Some(Phase::Voting { .. }) => self.decide(txn, false, "timed out waiting for votes", out),
            Some(Phase::Between(Pre::PreCommitting { .. })) => {
                self.decide(txn, false, "timed out waiting for prepared-to-commit", out)
            }
            _ => {}
        }
    }

    /// Force the decision, answer the client, send doCommit / abort.
    fn decide(&mut self, txn: TxnId, commit: bool, reason: &str, out: &mut Out<'_, Self>) {
        self.coordinator.decide(txn, commit, reason, false, out);
        out.cancel_timer(Timer::Phase(txn));
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    fn retransmit(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(round) = self.coordinator.rounds.get(&txn) else { return };
        match &round.phase {
            Phase::Between(Pre::Recovering) => return,
            Phase::Between(Pre::PreCommitting { acked }) => {
                for cohort in round.changes.keys().filter(|c| !acked.contains(c)) {
                    out.send(*cohort, Msg::PreCommit { txn });
                }
            }
            Phase::Voting { .. } | Phase::Deciding { .. } => self.coordinator.resend(txn, out),
        }
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }
}

// ---- cohort ----
impl ThreePhaseCommit {
    fn handle_can_commit(
        &mut self,
        from: NodeId,
        txn: TxnId,
        changes: &[Change],
        cohorts: Vec<NodeId>,
        out: &mut Out<'_, Self>,
    ) {
        let force = self.config.bug != Some(Bug::NoForcePrepare);
        if self.cohort.handle_query(from, txn, changes, cohorts, force, out) {
            self.arm_in_doubt(txn, out);
        }
    }

    /// The termination timer: the `rank`-th cohort waits `rank + 1` timeouts,
    /// so the lowest-ranked live cohort is promoted first. A restarted
    /// coordinator (not a cohort) waits one.
    fn arm_in_doubt(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let doubt = self.cohort.in_doubt.get(&txn);
        let rank = doubt.and_then(|d| d.cohorts.iter().position(|c| *c == self.id)).unwrap_or(0) as u64;
        let after = Micros(self.config.termination_timeout.0 * (rank + 1));
        out.set_timer(Timer::InDoubt(txn), after);
    }

    fn handle_pre_commit(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        if from != txn.coordinator() {
            return;
        }
        if self.cohort.decided.get(&txn) == Some(&true) {
            return out.send(from, Msg::PreCommitAck { txn });
        }
        let Some(doubt) = self.cohort.in_doubt.get_mut(&txn) else { return };
        if !doubt.precommitted {
            doubt.precommitted = true;
            out.persist(Record::PreCommitted { txn });
        }
        out.send(from, Msg::PreCommitAck { txn });
        self.arm_in_doubt(txn, out);
    }

    /// Force and apply an outcome (the coordinator's, or the termination
    /// protocol's); a termination this node led for it is over.
    fn finish(&mut self, txn: TxnId, commit: bool, out: &mut Out<'_, Self>) {
        self.cohort.finish(txn, commit, out);
        self.end_termination(txn, out);
    }

    /// Forget the termination protocol for `txn`, and that this node
    /// recovered undecided about it, once it knows the outcome.
    fn end_termination(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        if self.undecided(txn) {
            return;
        }
        self.recovered.remove(&txn);
        if self.terminations.remove(&txn).is_some() {
            out.cancel_timer(Timer::Collect(txn));
        }
    }

    /// Whether this node takes part in `txn` and does not know its outcome:
    /// a cohort in doubt, or a coordinator recovering after phase 2.
    fn undecided(&self, txn: TxnId) -> bool {
        self.cohort.in_doubt.contains_key(&txn)
            || matches!(
                self.coordinator.rounds.get(&txn).map(|r| &r.phase),
                Some(Phase::Between(Pre::Recovering))
            )
    }
}

// ---- termination protocol ----
impl ThreePhaseCommit {
    /// Everyone but this node that takes part in `txn`: its cohorts and its
    /// coordinator.
    fn participants(&self, txn: TxnId) -> Vec<NodeId> {
        let mut all: BTreeSet<NodeId> =
            match (self.cohort.in_doubt.get(&txn), self.coordinator.rounds.get(&txn)) {
                (Some(doubt), _) => doubt.cohorts.iter().copied().collect(),
                (None, Some(round)) => round.changes.keys().copied().collect(),
                (None, None) => BTreeSet::new(),
            };
        all.insert(txn.coordinator());
        all.remove(&self.id);
        all.into_iter().collect()
    }

    /// This node's state for `txn`, as it answers a recovery coordinator. A
    /// node that never voted for `txn` aborts it now (it may: it promised
    /// nothing), so it can never vote yes later.
    fn state(&mut self, txn: TxnId, out: &mut Out<'_, Self>) -> State {
        if let Some(commit) = self.cohort.decided.get(&txn).or_else(|| self.coordinator.decisions.get(&txn)) {
            return if *commit { State::Committed } else { State::Aborted };
        }
        match self.coordinator.rounds.get(&txn).map(|r| &r.phase) {
            Some(Phase::Voting { .. } | Phase::Between(Pre::PreCommitting { .. })) => return State::Busy,
            Some(Phase::Between(Pre::Recovering)) => return State::Recovered { precommitted: true },
            Some(Phase::Deciding { .. }) => unreachable!("a deciding round has a decision"),
            None => {}
        }
        if let Some(doubt) = self.cohort.in_doubt.get(&txn) {
            let precommitted = doubt.precommitted;
            return match self.recovered.contains(&txn) {
                true => State::Recovered { precommitted },
                false if precommitted => State::PreCommitted,
                false => State::Waiting,
            };
        }
        if txn.coordinator() == self.id {
            // No round and no decision: the coordinator crashed before phase 2
            // (`PreCommitting` is forced before any preCommit leaves).
            return State::Aborted;
        }
        self.cohort.abort_unilaterally(txn, out);
        State::Aborted
    }

    /// Promoted: collect every participant's state.
    fn begin_termination(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        if !self.undecided(txn) || self.terminations.contains_key(&txn) {
            return;
        }
        let own = self.state(txn, out);
        self.terminations.insert(txn, BTreeMap::from([(self.id, own)]));
        for node in self.participants(txn) {
            out.send(node, Msg::StateRequest { txn });
        }
        out.set_timer(Timer::Collect(txn), self.config.collect_timeout);
    }

    fn handle_state_request(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        let state = self.state(txn, out);
        out.send(from, Msg::StateReply { txn, state });
    }

    fn handle_state_reply(&mut self, from: NodeId, txn: TxnId, state: State, out: &mut Out<'_, Self>) {
        let expected = self.participants(txn).len() + 1;
        let Some(answers) = self.terminations.get_mut(&txn) else { return };
        answers.insert(from, state);
        if answers.len() >= expected {
            self.conclude_termination(txn, out);
        }
    }

    /// Skeen's termination rule over the states collected.
    fn conclude_termination(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(answers) = self.terminations.remove(&txn) else { return };
        out.cancel_timer(Timer::Collect(txn));
        let participants = self.participants(txn);
        let complete = answers.len() > participants.len();
        let Some(commit) = termination_rule(&answers, complete) else {
            // The coordinator is running the round, or no operational site
            // answered: let it finish, or ask again later.
            return self.arm_in_doubt(txn, out);
        };
        out.observe(Observation::Reached(TERMINATED.name));
        self.adopt(txn, commit, out);
        for node in participants {
            out.send(node, Msg::Outcome { txn, commit });
        }
    }

    /// Take a recovery coordinator's (or one's own) termination outcome.
    fn adopt(&mut self, txn: TxnId, commit: bool, out: &mut Out<'_, Self>) {
        if self.cohort.in_doubt.contains_key(&txn) {
            self.finish(txn, commit, out);
        }
        let Some(round) = self.coordinator.rounds.get_mut(&txn) else { return };
        if matches!(round.phase, Phase::Deciding { .. }) {
            return;
        }
        assert!(!self.coordinator.decisions.contains_key(&txn));
        let cohorts = round.cohorts();
        let client = round.client.take();
        self.coordinator.rounds.remove(&txn);
        self.terminations.remove(&txn);
        self.recovered.remove(&txn);
        out.persist(Record::Decided { txn, commit, cohorts });
        out.persist(Record::End { txn });
        self.coordinator.decisions.insert(txn, commit);
        out.observe(Observation::TxnDecided { txn: txn.0, commit });
        if let Some(client) = client {
            out.reply(client, roles::response(commit, "decided by the termination protocol"));
        }
        for timer in [Timer::Phase(txn), Timer::Retransmit(txn), Timer::InDoubt(txn), Timer::Collect(txn)] {
            out.cancel_timer(timer);
        }
    }
}

/// The outcome a termination may decide from the states it collected
/// (`complete`: every participant answered), or `None` to wait.
///
/// Any decision is final and is taken. A running coordinator is let finish.
/// Otherwise the operational sites decide as in Skeen's fail-stop rule
/// (commit if one of them is pre-committed, else abort): a site that failed
/// and came back answers with its state from before its failure, which may
/// be stale, since the operational sites may have decided without it while
/// it was down. Only when every participant answered and all of them had
/// failed (a total failure) do their recovered states decide: every site's
/// forced state is then known, and no decision was taken.
fn termination_rule(answers: &BTreeMap<NodeId, State>, complete: bool) -> Option<bool> {
    let has = |s: State| answers.values().any(|a| *a == s);
    if has(State::Committed) {
        return Some(true);
    }
    if has(State::Aborted) {
        return Some(false);
    }
    if has(State::Busy) {
        return None;
    }
    let operational = answers.values().any(|a| matches!(a, State::Waiting | State::PreCommitted));
    if operational {
        return Some(has(State::PreCommitted));
    }
    complete.then(|| has(State::Recovered { precommitted: true }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::two_pc::{self, TwoPhaseCommit};
    use crate::testkit::Kit;
    use quorum_core::txn::INITIAL_BALANCE;

    const N0: NodeId = NodeId(0);
    const N1: NodeId = NodeId(1);
    const N2: NodeId = NodeId(2);

    fn transfer(amount: u64) -> TxnRequest {
        TxnRequest::Transfer { from: 1, to: 2, amount }
    }

    fn decided(kit: &Kit<ThreePhaseCommit>, node: NodeId) -> Vec<bool> {
        kit.node(node).cohort.decided.values().copied().collect()
    }

    /// 3PC §"3-phase-commit": canCommit, preCommit, doCommit, each acknowledged.
    #[test]
    fn happy_path_takes_three_round_trips_and_commits_everywhere() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        let rid = kit.request(N0, transfer(30));
        let mut messages = 0;
        while !kit.network.is_empty() {
            kit.deliver_all(1);
            messages += 1;
        }
        assert_eq!(messages, 6 * 2, "three round trips with each of n = 2 cohorts");
        assert_eq!(kit.reply(rid), Some(&TxnResponse::Committed));
        assert_eq!(kit.node(N1).cohort.bank.balance(1), INITIAL_BALANCE - 30);
        assert_eq!(kit.node(N2).cohort.bank.balance(2), INITIAL_BALANCE + 30);
        assert!(kit.node(N0).coordinator.rounds.is_empty());
        assert_eq!(kit.durable(1).len(), 1 + 3, "reserve, prepared, pre-committed, committed");
    }

    /// The text: "If the cohorts have completed the prepare phase but never
    /// receive a commit message then they will commit anyway."
    #[test]
    fn pre_committed_cohorts_commit_without_hearing_do_commit() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(6); // canCommit x2, votes x2, preCommit x2
        assert!(kit.node(N1).cohort.in_doubt.values().all(|d| d.precommitted));
        kit.network.clear(); // the acks are lost with the coordinator
        kit.crash(N0);
        kit.advance(Micros::from_millis(400));
        assert_eq!(decided(&kit, N1), vec![true]);
        assert_eq!(decided(&kit, N2), vec![true]);
        // The coordinator comes back, asks, and agrees.
        kit.start(N0);
        kit.advance(Micros::from_millis(400));
        assert_eq!(kit.node(N0).coordinator.decisions.values().copied().collect::<Vec<_>>(), vec![true]);
    }

    #[test]
    fn waiting_cohorts_abort_when_the_coordinator_dies_before_phase_two() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(2); // both voted yes; the votes are lost
        kit.network.clear();
        kit.crash(N0);
        kit.advance(Micros::from_millis(400));
        assert_eq!(decided(&kit, N1), vec![false]);
        assert_eq!(decided(&kit, N2), vec![false]);
    }

    #[test]
    fn a_cohort_without_funds_votes_no_and_the_transfer_aborts_everywhere() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        let rid = kit.request(N0, transfer(INITIAL_BALANCE as u64 + 1));
        kit.deliver_all(100);
        assert!(matches!(kit.reply(rid), Some(TxnResponse::Aborted { .. })));
        assert_eq!(decided(&kit, N1), vec![false]);
        assert_eq!(decided(&kit, N2), vec![false]);
    }

    /// The same crash — coordinator gone right after deciding — blocks 2PC
    /// cohorts until it returns, while 3PC cohorts finish on their own.
    #[test]
    fn three_pc_does_not_block_where_two_pc_does() {
        let mut two = Kit::<TwoPhaseCommit>::new(3, two_pc::Config::default());
        two.request(N0, transfer(30));
        two.deliver_all(4); // votes in: the coordinator forced COMMIT
        two.network.clear();
        two.crash(N0);
        two.advance(Micros::from_millis(2_000));
        assert!(two.up(1).is_some());
        let blocked = |k: &Kit<TwoPhaseCommit>, n: NodeId| k.node(n).describe().contains("in-doubt=[t1.0]");
        assert!(blocked(&two, N1) && blocked(&two, N2), "2PC cohorts still in doubt after 2 s");

        let mut three = Kit::<ThreePhaseCommit>::new(3, Config::default());
        three.request(N0, transfer(30));
        three.deliver_all(6); // phase 2 under way: cohorts pre-committed
        three.network.clear();
        three.crash(N0);
        three.advance(Micros::from_millis(2_000));
        assert!(three.node(N1).cohort.in_doubt.is_empty() && three.node(N2).cohort.in_doubt.is_empty());
        assert_eq!(decided(&three, N1), vec![true]);
    }

    /// Skeen's recovery rule: a site that failed comes back with its state
    /// from before the failure, and the operational sites may have decided
    /// without it. Here the coordinator forced `PreCommitting` and died
    /// before any preCommit left; the waiting cohorts aborted without it and
    /// then failed too. The coordinator, back alone, must not commit on its
    /// own pre-commit: it waits until a cohort tells it the outcome.
    #[test]
    fn a_recovered_coordinator_waits_for_the_outcome_the_cohorts_reached() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(4); // canCommit x2, votes x2: PreCommitting forced
        assert!(kit.durable(0).iter().any(|r| matches!(r, Record::PreCommitting { .. })));
        kit.network.clear(); // the preCommits die with the coordinator
        kit.crash(N0);
        kit.advance(Micros::from_millis(1_000));
        assert_eq!(decided(&kit, N1), vec![false], "waiting cohorts abort without the coordinator");
        assert_eq!(decided(&kit, N2), vec![false]);
        kit.crash(N1);
        kit.crash(N2);
        kit.start(N0);
        kit.advance(Micros::from_millis(2_000));
        assert!(kit.node(N0).coordinator.decisions.is_empty(), "alone, it cannot know the outcome");
        assert!(kit.node(N0).describe().contains("recovering"));
        kit.start(N1);
        kit.advance(Micros::from_millis(2_000));
        let decisions: Vec<bool> = kit.node(N0).coordinator.decisions.values().copied().collect();
        assert_eq!(decisions, vec![false], "it adopts the cohorts' abort");
    }

    /// A total failure: every participant failed undecided and came back.
    /// With every forced state known and no decision anywhere, the
    /// recovered states decide (here: a cohort pre-committed, so commit).
    #[test]
    fn after_a_total_failure_the_recovered_states_decide() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(5); // canCommit x2, votes x2, one preCommit
        kit.network.clear();
        for node in [N0, N1, N2] {
            kit.crash(node);
        }
        for node in [N0, N1, N2] {
            kit.start(node);
        }
        kit.advance(Micros::from_millis(2_000));
        assert_eq!(decided(&kit, N1), vec![true]);
        assert_eq!(decided(&kit, N2), vec![true]);
    }

    /// The text's partition scenario in miniature: the coordinator, cut off
    /// in phase 2, aborts; the cohorts, promoted, commit.
    #[test]
    fn a_partition_in_phase_two_splits_the_decision() {
        let mut kit = Kit::<ThreePhaseCommit>::new(3, Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(6);
        kit.network.clear();
        for cohort in [N1, N2] {
            kit.cut.push((N0, cohort));
            kit.cut.push((cohort, N0));
        }
        kit.advance(Micros::from_millis(1_000));
        assert_eq!(kit.node(N0).coordinator.decisions.values().copied().collect::<Vec<_>>(), vec![false]);
        assert_eq!(decided(&kit, N1), vec![true]);
        let nodes = [(N0, kit.node(N0)), (N1, kit.node(N1))];
        assert!(ThreePhaseCommit::cluster_invariants(&nodes).is_err());
    }
}
