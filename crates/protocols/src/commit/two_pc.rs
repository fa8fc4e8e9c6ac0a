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
//! **Message count.** Without failures a transaction exchanges QUERY, VOTE
//! and COMMIT/ROLLBACK with each cohort — the text's "3n messages for n
//! nodes" — and then each cohort's ACKNOWLEDGMENT, which the text's diagram
//! draws but its count leaves out. We keep the ACK: without it the
//! coordinator could never write `end` and forget a round, and a cohort that
//! missed the decision would depend on the coordinator keeping every decision
//! forever. But nothing waits on it — no cohort's outcome, no client reply —
//! so it is bookkeeping after the decision, not part of reaching it.
//! [`Protocol::is_outcome_ack`] says so, and the simulator reports it apart:
//! `messages_per_txn` is the text's `3n`, `acks_per_txn` the `n` ACKs. Records:
//! `2n + 2` persists (two per cohort, the decision and `End`; `End` need not
//! be forced, but the simulator forces every persist).
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

use std::convert::Infallible;

use crate::catalog;
use quorum_core::claims::{reached, Sometimes, SystemModel, Violation};
use quorum_core::txn::{TxnRequest, TxnResponse};
use quorum_core::{Cluster, ConfigError, Micros, NodeId, Observation, Out, Protocol, RequestId};
use serde::{Deserialize, Serialize};

use super::roles::{self, Cohort, Coordinator, Tally};
use super::{agree, Change, TxnId, Write};

/// The catalogue entry (source text, "2-phase-commit").
pub const ENTRY: catalog::Entry = catalog::Entry {
    name: "2pc",
    section: "2-phase-commit",
    summary:
        "atomic commit of bank transfers across cohorts: forced prepare/decision records, 3n messages \
              (+n acks); blocks while the coordinator is down, recovers from its log, cooperative termination",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[reached::COMMITTED, reached::ABORTED, reached::RECOVERED, IN_DOUBT],
    workload: catalog::Workload::Txn,
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "no-force-prepare",
            what: "a cohort votes yes without forcing prepare*: after a crash it forgets its promise",
            caught_as: &[Violation::Atomicity, Violation::Balance],
        },
        catalog::Bug {
            name: "no-force-decision",
            what: "the coordinator sends its decision before forcing it: after a crash it presumes abort",
            caught_as: &[Violation::Atomicity, Violation::Balance],
        },
    ],
    explorable: &[catalog::Setting { name: "cooperative_termination", values: catalog::ON_OFF }],
    retries: 0,
};

/// A cohort in doubt asked for the outcome and nobody could tell it yet.
pub const IN_DOUBT: Sometimes = Sometimes {
    name: "in_doubt",
    what: "a prepared cohort asked for the outcome and had to wait (the blocking the text describes)",
};

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
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retransmit_interval.0 == 0 || self.in_doubt_retry.0 == 0 {
            return Err(ConfigError::new("retransmit_interval and in_doubt_retry must be positive"));
        }
        if self.vote_timeout <= self.retransmit_interval {
            return Err(ConfigError::new("vote_timeout must exceed retransmit_interval"));
        }
        if self.rounds_max == 0 {
            return Err(ConfigError::new("rounds_max must be positive"));
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

/// 2PC has nothing between its votes and its decision.
type Phase = roles::Phase<Infallible>;

/// A 2PC node: coordinator of its clients' transfers, cohort of its accounts.
#[derive(Clone, Debug)]
pub struct TwoPhaseCommit {
    config: Config,
    coordinator: Coordinator<Infallible>,
    cohort: Cohort,
}

roles::impl_commit_protocol!(TwoPhaseCommit, Query);

impl Protocol for TwoPhaseCommit {
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
        let mut node = TwoPhaseCommit {
            config: config.clone(),
            coordinator: Coordinator::new(cluster.id, nodes, config.rounds_max),
            cohort: Cohort::new(cluster.id, nodes),
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
            Msg::Decision { txn, commit } => self.cohort.handle_decision(from, txn, commit, out),
            Msg::Ack { txn } => {
                if self.coordinator.handle_ack(from, txn, out) {
                    out.cancel_timer(Timer::Retransmit(txn));
                }
            }
            Msg::DecisionRequest { txn } => self.handle_decision_request(from, txn, out),
            Msg::TerminationRequest { txn } => self.handle_termination_request(from, txn, out),
            Msg::DecisionReply { txn, outcome } => self.handle_decision_reply(txn, outcome, out),
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Out<'_, Self>) {
        match timer {
            Timer::Retransmit(txn) => self.retransmit(txn, out),
            Timer::Votes(txn) => {
                if matches!(self.coordinator.rounds.get(&txn).map(|r| &r.phase), Some(Phase::Voting { .. })) {
                    self.decide(txn, false, "a vote timed out", out);
                }
            }
            Timer::InDoubt(txn) => self.ask_outcome(txn, out),
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
    }

    fn describe(&self) -> String {
        let rounds: Vec<String> = self
            .coordinator
            .rounds
            .iter()
            .map(|(txn, r)| match &r.phase {
                Phase::Voting { yes } => format!("{txn:?}:voting({}/{} yes)", yes.len(), r.changes.len()),
                Phase::Between(never) => match *never {},
                Phase::Deciding { commit, acked } => format!(
                    "{txn:?}:{}({}/{} acks)",
                    if *commit { "commit" } else { "abort" },
                    acked.len(),
                    r.changes.len()
                ),
            })
            .collect();
        let doubt: Vec<String> = self.cohort.in_doubt.keys().map(|t| format!("{t:?}")).collect();
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
impl TwoPhaseCommit {
    /// Rebuild state from one durable record, in log order.
    fn replay(&mut self, record: &Record) {
        match record {
            Record::Reserve { upto } => self.coordinator.replay_reserve(*upto),
            Record::Prepared { txn, cohorts, writes } => self.cohort.replay_prepared(*txn, cohorts, writes),
            Record::Committed { txn, writes } => self.cohort.replay_outcome(*txn, Some(writes)),
            Record::Aborted { txn } => self.cohort.replay_outcome(*txn, None),
            Record::Decided { txn, commit, cohorts } => {
                self.coordinator.replay_decided(*txn, *commit, cohorts)
            }
            Record::End { txn } => {
                self.coordinator.rounds.remove(txn);
            }
        }
    }

    /// After replay: finish what the log says is unfinished.
    fn recover(&mut self, out: &mut Out<'_, Self>) {
        self.cohort.reobserve(&self.coordinator.decisions, out);
        self.coordinator.reserve(out);
        let deciding: Vec<TxnId> = self.coordinator.rounds.keys().copied().collect();
        for txn in deciding {
            self.retransmit(txn, out);
        }
        let doubts: Vec<TxnId> = self.cohort.in_doubt.keys().copied().collect();
        for txn in doubts {
            out.set_timer(Timer::InDoubt(txn), self.config.in_doubt_retry);
        }
    }
}

// ---- coordinator ----
impl TwoPhaseCommit {
    fn begin(&mut self, client: RequestId, from: u64, to: u64, amount: u64, out: &mut Out<'_, Self>) {
        if let Some(txn) = self.coordinator.begin(client, from, to, amount, out) {
            out.set_timer(Timer::Votes(txn), self.config.vote_timeout);
            out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
        }
    }

    fn handle_vote(&mut self, from: NodeId, txn: TxnId, yes: bool, out: &mut Out<'_, Self>) {
        match self.coordinator.tally(from, txn, yes) {
            Tally::Ignored | Tally::Pending => {}
            Tally::No => self.decide(txn, false, &format!("{from} voted no"), out),
            Tally::AllYes => self.decide(txn, true, "", out),
        }
    }

    /// Force the decision, answer the client, tell every cohort.
    fn decide(&mut self, txn: TxnId, commit: bool, reason: &str, out: &mut Out<'_, Self>) {
        let send_first = self.config.bug == Some(Bug::NoForceDecision);
        self.coordinator.decide(txn, commit, reason, send_first, out);
        out.cancel_timer(Timer::Votes(txn));
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    fn retransmit(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        if !self.coordinator.rounds.contains_key(&txn) {
            return;
        }
        self.coordinator.resend(txn, out);
        out.set_timer(Timer::Retransmit(txn), self.config.retransmit_interval);
    }

    /// An in-doubt cohort asks: the decision if logged, presumed abort if
    /// there is none and no round is running.
    fn handle_decision_request(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        if txn.coordinator() != self.coordinator.id() {
            return;
        }
        let outcome = match (self.coordinator.decisions.get(&txn), self.coordinator.rounds.contains_key(&txn))
        {
            (Some(true), _) => Outcome::Commit,
            (Some(false), _) => Outcome::Abort,
            (None, true) => Outcome::Unknown,
            (None, false) => Outcome::Abort,
        };
        out.send(from, Msg::DecisionReply { txn, outcome });
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
        let force = self.config.bug != Some(Bug::NoForcePrepare);
        if self.cohort.handle_query(from, txn, changes, cohorts, force, out) {
            out.set_timer(Timer::InDoubt(txn), self.config.in_doubt_retry);
        }
    }

    fn ask_outcome(&mut self, txn: TxnId, out: &mut Out<'_, Self>) {
        let Some(doubt) = self.cohort.in_doubt.get(&txn) else { return };
        out.observe(Observation::Reached(IN_DOUBT.name));
        out.send(txn.coordinator(), Msg::DecisionRequest { txn });
        if self.config.cooperative_termination {
            let me = self.coordinator.id();
            for cohort in doubt.cohorts.iter().filter(|c| **c != me) {
                out.send(*cohort, Msg::TerminationRequest { txn });
            }
        }
        out.set_timer(Timer::InDoubt(txn), self.config.in_doubt_retry);
    }

    /// Cooperative termination: answer what this cohort knows; one that has
    /// not voted yet aborts and says so.
    fn handle_termination_request(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, Self>) {
        let outcome = match self.cohort.decided.get(&txn) {
            Some(true) => Outcome::Commit,
            Some(false) => Outcome::Abort,
            None if self.cohort.in_doubt.contains_key(&txn) => Outcome::Unknown,
            None => {
                self.cohort.abort_unilaterally(txn, out);
                Outcome::Abort
            }
        };
        out.send(from, Msg::DecisionReply { txn, outcome });
    }

    fn handle_decision_reply(&mut self, txn: TxnId, outcome: Outcome, out: &mut Out<'_, Self>) {
        if !self.cohort.in_doubt.contains_key(&txn) {
            return;
        }
        match outcome {
            Outcome::Commit => self.cohort.finish(txn, true, out),
            Outcome::Abort => self.cohort.finish(txn, false, out),
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
        kit.node(node).cohort.decided.values().copied().collect()
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
        assert_eq!(kit.node(N1).cohort.bank.balance(1), INITIAL_BALANCE - 30);
        assert_eq!(kit.node(N2).cohort.bank.balance(2), INITIAL_BALANCE + 30);
        assert!(kit.node(N0).coordinator.rounds.is_empty(), "every ack arrived: the round ended");
        assert!(kit.durable(0).iter().any(|r| matches!(r, Record::End { .. })));
    }

    #[test]
    fn a_cohort_without_funds_votes_no_and_the_transfer_aborts_everywhere() {
        let mut kit = kit(Config::default());
        let rid = kit.request(N0, transfer(INITIAL_BALANCE as u64 + 1));
        kit.deliver_all(100);
        assert!(matches!(kit.reply(rid), Some(TxnResponse::Aborted { .. })));
        assert_eq!(decided(&kit, N1), vec![false]);
        assert_eq!(decided(&kit, N2), vec![false]);
        assert_eq!(kit.node(N2).cohort.bank.balance(2), INITIAL_BALANCE);
        assert!(kit.node(N2).cohort.bank.locks().next().is_none(), "the yes voter released its lock");
        assert!(matches!(kit.durable(1).last(), Some(Record::Aborted { .. })), "abort* forced before NO");
    }

    /// §"Coordinator failure": cohorts that voted yes stay in doubt, locks
    /// held, until the coordinator recovers from its log and finishes.
    #[test]
    fn coordinator_crash_after_deciding_blocks_cohorts_until_it_recovers_from_its_log() {
        let mut kit = kit(Config::default());
        kit.request(N0, transfer(30));
        kit.deliver_all(4); // two queries, two yes votes: the coordinator forces COMMIT...
        assert!(kit.durable(0).iter().any(|r| matches!(r, Record::Decided { commit: true, .. })));
        kit.network.clear(); // ...and crashes before its COMMITs leave.
        kit.crash(N0);
        kit.advance(Micros::from_millis(1_000));
        for cohort in [N1, N2] {
            assert_eq!(kit.node(cohort).cohort.in_doubt.len(), 1, "{cohort} blocks, in doubt");
            assert!(kit.node(cohort).cohort.bank.locks().next().is_some(), "{cohort} holds its lock");
        }
        kit.start(N0);
        kit.deliver_all(100);
        assert_eq!(decided(&kit, N1), vec![true]);
        assert_eq!(decided(&kit, N2), vec![true]);
        assert_eq!(kit.node(N2).cohort.bank.balance(2), INITIAL_BALANCE + 30);
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
        assert_eq!(kit.node(N1).cohort.in_doubt.len() + kit.node(N2).cohort.in_doubt.len(), 2);
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
        assert_eq!(kit.node(N2).cohort.in_doubt.len(), 1);
        kit.advance(Micros::from_millis(150));
        assert_eq!(decided(&kit, N2), vec![true], "n2 asked n1");
        assert_eq!(kit.node(N2).cohort.bank.balance(2), INITIAL_BALANCE + 30);
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
        assert_eq!(kit.node(N2).cohort.in_doubt.len(), 1, "blocked: only the coordinator is asked");
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
        let total = kit.node(N1).cohort.bank.balance(1) + kit.node(N2).cohort.bank.balance(2);
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
        assert_eq!(kit.node(N2).cohort.bank.balance(2), INITIAL_BALANCE + 10);
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
