//! The two roles every atomic-commit node plays, written once for 2PC and
//! 3PC: the [`Coordinator`] (transaction ids, the voting round, the forced
//! decision, the acknowledgments that end a round) and the [`Cohort`] (its
//! shard of the bank, its yes votes while in doubt, its forced outcomes).
//!
//! The protocols differ in what lies between the votes and the decision
//! (nothing in 2PC; preCommit and its acknowledgments, or a recovery, in
//! 3PC: [`Phase::Between`]) and in how an in-doubt cohort terminates. They
//! share everything else, including the order of effects that the
//! durability rule makes load-bearing: a record is persisted *before* the
//! message it justifies, so a crash between the two leaves the log ahead of
//! the network, never behind it.

use std::collections::{BTreeMap, BTreeSet};

use quorum_core::txn::{owner, TxnRequest, TxnResponse};
use quorum_core::{NodeId, Observation, Out, Protocol, RequestId};

use super::{plan, Bank, Change, TxnId, Write};

/// The messages, records and timer a protocol must be able to build for the
/// shared roles. Both protocols keep their own enums (their wire and log
/// formats are theirs); this only names the variants the roles emit.
pub(crate) trait CommitProtocol: Protocol<Request = TxnRequest, Response = TxnResponse> {
    /// Phase 1: the coordinator asks a cohort to do `changes` (2PC's QUERY
    /// TO COMMIT, 3PC's canCommit).
    fn query(txn: TxnId, changes: Vec<Change>, cohorts: Vec<NodeId>) -> Self::Msg;
    fn vote(txn: TxnId, yes: bool) -> Self::Msg;
    /// The coordinator's decision (COMMIT / ROLLBACK, doCommit / abort).
    fn decision(txn: TxnId, commit: bool) -> Self::Msg;
    /// The cohort forced the decision.
    fn ack(txn: TxnId) -> Self::Msg;
    fn reserve_record(upto: u64) -> Self::Record;
    fn prepared_record(txn: TxnId, cohorts: Vec<NodeId>, writes: Vec<Write>) -> Self::Record;
    fn committed_record(txn: TxnId, writes: Vec<Write>) -> Self::Record;
    fn aborted_record(txn: TxnId) -> Self::Record;
    fn decided_record(txn: TxnId, commit: bool, cohorts: Vec<NodeId>) -> Self::Record;
    fn end_record(txn: TxnId) -> Self::Record;
    /// The cohort's timer while it is in doubt (cancelled when it finishes).
    fn in_doubt_timer(txn: TxnId) -> Self::Timer;
}

/// Implement [`CommitProtocol`] for a node type whose `Msg`, `Record` and
/// `Timer` enums (in scope at the call) name the shared variants alike:
/// `Vote`, `Decision`, `Ack`; `Reserve`, `Prepared`, `Committed`, `Aborted`,
/// `Decided`, `End`; `InDoubt`. Only phase 1's message is named per protocol.
macro_rules! impl_commit_protocol {
    ($node:ty, $query:ident) => {
        impl $crate::commit::roles::CommitProtocol for $node {
            fn query(txn: TxnId, changes: Vec<Change>, cohorts: Vec<NodeId>) -> Msg {
                Msg::$query { txn, changes, cohorts }
            }
            fn vote(txn: TxnId, yes: bool) -> Msg {
                Msg::Vote { txn, yes }
            }
            fn decision(txn: TxnId, commit: bool) -> Msg {
                Msg::Decision { txn, commit }
            }
            fn ack(txn: TxnId) -> Msg {
                Msg::Ack { txn }
            }
            fn reserve_record(upto: u64) -> Record {
                Record::Reserve { upto }
            }
            fn prepared_record(txn: TxnId, cohorts: Vec<NodeId>, writes: Vec<Write>) -> Record {
                Record::Prepared { txn, cohorts, writes }
            }
            fn committed_record(txn: TxnId, writes: Vec<Write>) -> Record {
                Record::Committed { txn, writes }
            }
            fn aborted_record(txn: TxnId) -> Record {
                Record::Aborted { txn }
            }
            fn decided_record(txn: TxnId, commit: bool, cohorts: Vec<NodeId>) -> Record {
                Record::Decided { txn, commit, cohorts }
            }
            fn end_record(txn: TxnId) -> Record {
                Record::End { txn }
            }
            fn in_doubt_timer(txn: TxnId) -> Timer {
                Timer::InDoubt(txn)
            }
        }
    };
}
pub(crate) use impl_commit_protocol;

/// Sequence numbers reserved per `Reserve` record.
const RESERVE_BLOCK: u64 = 1_000;

/// Where a coordinated round stands. `M` is what the protocol puts between
/// the votes and the decision (2PC: nothing, `std::convert::Infallible`).
#[derive(Clone, Debug)]
pub(crate) enum Phase<M> {
    /// Collecting votes; `yes` holds the cohorts that voted yes.
    Voting {
        yes: BTreeSet<NodeId>,
    },
    Between(M),
    /// Decided and forced; waiting for every cohort's acknowledgment.
    Deciding {
        commit: bool,
        acked: BTreeSet<NodeId>,
    },
}

/// A transaction this node coordinates.
#[derive(Clone, Debug)]
pub(crate) struct Round<M> {
    /// The client to answer (lost in a crash).
    pub client: Option<RequestId>,
    /// Each cohort's part; after a restart only the keys are known.
    pub changes: BTreeMap<NodeId, Vec<Change>>,
    pub phase: Phase<M>,
}

impl<M> Round<M> {
    pub fn cohorts(&self) -> Vec<NodeId> {
        self.changes.keys().copied().collect()
    }

    /// A round rebuilt from the log: the cohorts are known, their parts not.
    pub fn recovered(cohorts: &[NodeId], phase: Phase<M>) -> Round<M> {
        Round { client: None, changes: cohorts.iter().map(|c| (*c, Vec::new())).collect(), phase }
    }
}

/// What a vote did to its round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tally {
    /// Not a voting round of ours, or not one of its cohorts: ignore.
    Ignored,
    No,
    /// A yes; other votes are still missing.
    Pending,
    /// The last missing yes: every cohort voted yes.
    AllYes,
}

/// The client's answer for a decision.
pub(crate) fn response(commit: bool, reason: &str) -> TxnResponse {
    if commit {
        TxnResponse::Committed
    } else {
        TxnResponse::Aborted { reason: reason.to_string() }
    }
}

/// The coordinator role: transaction ids, running rounds, forced decisions.
#[derive(Clone, Debug)]
pub(crate) struct Coordinator<M> {
    id: NodeId,
    nodes: u32,
    rounds_max: usize,
    /// Invariant: `next_seq <= reserved_upto`; every id below
    /// `reserved_upto` may have been used by an earlier incarnation.
    next_seq: u64,
    reserved_upto: u64,
    pub rounds: BTreeMap<TxnId, Round<M>>,
    /// Every decision this node took as coordinator (forced).
    pub decisions: BTreeMap<TxnId, bool>,
}

impl<M> Coordinator<M> {
    pub fn new(id: NodeId, nodes: u32, rounds_max: usize) -> Coordinator<M> {
        Coordinator {
            id,
            nodes,
            rounds_max,
            next_seq: 1,
            reserved_upto: 1,
            rounds: BTreeMap::new(),
            decisions: BTreeMap::new(),
        }
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn replay_reserve(&mut self, upto: u64) {
        self.next_seq = self.next_seq.max(upto);
        self.reserved_upto = self.reserved_upto.max(upto);
    }

    pub fn replay_decided(&mut self, txn: TxnId, commit: bool, cohorts: &[NodeId]) {
        self.decisions.insert(txn, commit);
        let phase = Phase::Deciding { commit, acked: BTreeSet::new() };
        self.rounds.insert(txn, Round::recovered(cohorts, phase));
    }

    /// Reserve the next block of sequence numbers. After a restart this
    /// starts above everything the old incarnation may have used.
    pub fn reserve<P: CommitProtocol>(&mut self, out: &mut Out<'_, P>) {
        self.next_seq = self.next_seq.max(self.reserved_upto);
        self.reserved_upto = self.next_seq + RESERVE_BLOCK;
        out.persist(P::reserve_record(self.reserved_upto));
    }

    /// Start a transfer: split it by owner, take a fresh id, send each cohort
    /// its part. `None` when the client was already answered (a malformed or
    /// over-limit transfer). The caller arms its protocol's timers.
    pub fn begin<P: CommitProtocol>(
        &mut self,
        client: RequestId,
        from: u64,
        to: u64,
        amount: u64,
        out: &mut Out<'_, P>,
    ) -> Option<TxnId> {
        let changes = match plan(from, to, amount, self.nodes) {
            Ok(changes) => changes,
            Err(reason) => {
                out.reply(client, TxnResponse::Aborted { reason });
                return None;
            }
        };
        if self.rounds.len() >= self.rounds_max {
            let reason = format!("{} rounds in progress", self.rounds.len());
            out.reply(client, TxnResponse::Rejected { reason, hint: None });
            return None;
        }
        if self.next_seq >= self.reserved_upto {
            self.reserve(out);
        }
        let txn = TxnId::new(self.id, self.next_seq);
        self.next_seq += 1;
        let round = Round { client: Some(client), changes, phase: Phase::Voting { yes: BTreeSet::new() } };
        self.send_queries(txn, &round, out);
        self.rounds.insert(txn, round);
        Some(txn)
    }

    /// Phase 1 to every cohort that has not voted yes.
    fn send_queries<P: CommitProtocol>(&self, txn: TxnId, round: &Round<M>, out: &mut Out<'_, P>) {
        let yes = match &round.phase {
            Phase::Voting { yes } => Some(yes),
            _ => None,
        };
        let cohorts = round.cohorts();
        for (cohort, part) in &round.changes {
            if yes.is_none_or(|yes| !yes.contains(cohort)) {
                out.send(*cohort, P::query(txn, part.clone(), cohorts.clone()));
            }
        }
    }

    pub fn tally(&mut self, from: NodeId, txn: TxnId, yes: bool) -> Tally {
        let Some(round) = self.rounds.get_mut(&txn) else { return Tally::Ignored };
        let Phase::Voting { yes: voted } = &mut round.phase else { return Tally::Ignored };
        if !round.changes.contains_key(&from) {
            return Tally::Ignored;
        }
        if !yes {
            return Tally::No;
        }
        voted.insert(from);
        if voted.len() == round.changes.len() {
            Tally::AllYes
        } else {
            Tally::Pending
        }
    }

    /// Force the decision, tell every cohort, answer the client. With
    /// `send_first` (a deliberate bug) the decision leaves before it is
    /// forced. The caller cancels its phase timers and re-arms retransmission.
    pub fn decide<P: CommitProtocol>(
        &mut self,
        txn: TxnId,
        commit: bool,
        reason: &str,
        send_first: bool,
        out: &mut Out<'_, P>,
    ) {
        let round = self.rounds.get_mut(&txn).expect("only a running round is decided");
        assert!(!matches!(round.phase, Phase::Deciding { .. }), "a round is decided once");
        assert!(!self.decisions.contains_key(&txn), "a decision is never taken twice");
        let cohorts = round.cohorts();
        round.phase = Phase::Deciding { commit, acked: BTreeSet::new() };
        let forced = P::decided_record(txn, commit, cohorts.clone());
        if !send_first {
            out.persist(forced.clone());
        }
        for cohort in &cohorts {
            out.send(*cohort, P::decision(txn, commit));
        }
        if send_first {
            out.persist(forced);
        }
        self.decisions.insert(txn, commit);
        out.observe(Observation::TxnDecided { txn: txn.0, commit });
        if let Some(client) = round.client.take() {
            out.reply(client, response(commit, reason));
        }
    }

    /// A cohort forced the decision. `true` when it was the last one: the
    /// round is over, `End` is written and the round forgotten.
    pub fn handle_ack<P: CommitProtocol>(&mut self, from: NodeId, txn: TxnId, out: &mut Out<'_, P>) -> bool {
        let Some(round) = self.rounds.get_mut(&txn) else { return false };
        let Phase::Deciding { acked, .. } = &mut round.phase else { return false };
        if !round.changes.contains_key(&from) {
            return false;
        }
        acked.insert(from);
        if acked.len() < round.changes.len() {
            return false;
        }
        self.rounds.remove(&txn);
        out.persist(P::end_record(txn));
        true
    }

    /// Re-send the votes' or the decision's phase to the cohorts that have
    /// not answered it. A round between the two is the protocol's to re-send.
    pub fn resend<P: CommitProtocol>(&self, txn: TxnId, out: &mut Out<'_, P>) {
        let Some(round) = self.rounds.get(&txn) else { return };
        match &round.phase {
            Phase::Voting { .. } => self.send_queries(txn, round, out),
            Phase::Deciding { commit, acked } => {
                for cohort in round.changes.keys().filter(|c| !acked.contains(c)) {
                    out.send(*cohort, P::decision(txn, *commit));
                }
            }
            Phase::Between(_) => {}
        }
    }

    /// Panic if a round or an id breaks the coordinator's invariants.
    pub fn invariants(&self) {
        for (txn, round) in &self.rounds {
            assert_eq!(txn.coordinator(), self.id, "only the coordinator holds a round");
            assert!(txn.seq() < self.reserved_upto, "{txn:?} uses an unreserved sequence number");
            let decision = self.decisions.get(txn);
            match &round.phase {
                Phase::Voting { yes } => {
                    assert!(yes.iter().all(|c| round.changes.contains_key(c)));
                    assert_eq!(decision, None, "a voting round has no decision");
                }
                Phase::Between(_) => assert_eq!(decision, None, "an undecided round has no decision"),
                Phase::Deciding { commit, acked } => {
                    assert_eq!(decision, Some(commit), "a deciding round's decision is logged");
                    assert!(acked.iter().all(|c| round.changes.contains_key(c)));
                }
            }
        }
        assert!(self.next_seq <= self.reserved_upto);
        assert!(self.rounds.len() <= self.rounds_max);
    }
}

/// A cohort's yes vote, until it learns the outcome.
#[derive(Clone, Debug)]
pub(crate) struct InDoubt {
    /// Every cohort of the transaction (whom to ask when terminating).
    pub cohorts: Vec<NodeId>,
    /// The redo after-images, applied on commit.
    pub writes: Vec<Write>,
    /// 3PC: the cohort received preCommit (forced). Always false in 2PC,
    /// which has no state between the vote and the outcome.
    pub precommitted: bool,
}

/// The cohort role: a shard of the bank, in-doubt votes, forced outcomes.
#[derive(Clone, Debug)]
pub(crate) struct Cohort {
    id: NodeId,
    nodes: u32,
    pub bank: Bank,
    pub in_doubt: BTreeMap<TxnId, InDoubt>,
    /// Outcomes of this node's part of each transaction it has heard of.
    pub decided: BTreeMap<TxnId, bool>,
}

impl Cohort {
    pub fn new(id: NodeId, nodes: u32) -> Cohort {
        Cohort { id, nodes, bank: Bank::default(), in_doubt: BTreeMap::new(), decided: BTreeMap::new() }
    }

    pub fn replay_prepared(&mut self, txn: TxnId, cohorts: &[NodeId], writes: &[Write]) {
        assert!(!self.decided.contains_key(&txn), "prepared {txn:?} after deciding it");
        self.bank.lock(txn, writes);
        self.in_doubt
            .insert(txn, InDoubt { cohorts: cohorts.to_vec(), writes: writes.to_vec(), precommitted: false });
    }

    pub fn replay_outcome(&mut self, txn: TxnId, committed: Option<&[Write]>) {
        self.in_doubt.remove(&txn);
        self.bank.unlock(txn);
        if let Some(writes) = committed {
            self.bank.apply(writes);
        }
        self.decided.insert(txn, committed.is_some());
    }

    /// After a restart, tell the checkers again what the log says: a crash in
    /// the middle of a step may have cut the observations that followed a
    /// forced record (the same decisions, so atomicity is unaffected).
    pub fn reobserve<P: Protocol>(&self, decisions: &BTreeMap<TxnId, bool>, out: &mut Out<'_, P>) {
        for (txn, commit) in self.decided.iter().chain(decisions) {
            out.observe(Observation::TxnDecided { txn: txn.0, commit: *commit });
        }
        for txn in self.in_doubt.keys() {
            out.observe(Observation::Prepared { txn: txn.0 });
        }
    }

    /// Phase 1 from the coordinator. A transaction asked again gets the same
    /// answer (yes while in doubt or committed, no once aborted); a fresh one
    /// is voted on: lock, force `prepare*` (unless `force` is off, a
    /// deliberate bug) and vote yes, or force `abort*` and vote no. Returns
    /// whether this query put the cohort in doubt (the caller arms its timer).
    pub fn handle_query<P: CommitProtocol>(
        &mut self,
        from: NodeId,
        txn: TxnId,
        changes: &[Change],
        cohorts: Vec<NodeId>,
        force: bool,
        out: &mut Out<'_, P>,
    ) -> bool {
        if from != txn.coordinator() || changes.iter().any(|c| owner(c.account, self.nodes) != self.id) {
            return false;
        }
        if let Some(commit) = self.decided.get(&txn) {
            out.send(from, P::vote(txn, *commit));
            return false;
        }
        if self.in_doubt.contains_key(&txn) {
            out.send(from, P::vote(txn, true));
            return false;
        }
        let Ok(writes) = self.bank.try_prepare(txn, changes) else {
            self.abort_unilaterally(txn, out);
            out.send(from, P::vote(txn, false));
            return false;
        };
        self.bank.lock(txn, &writes);
        if force {
            out.persist(P::prepared_record(txn, cohorts.clone(), writes.clone()));
        }
        self.in_doubt.insert(txn, InDoubt { cohorts, writes, precommitted: false });
        out.observe(Observation::Prepared { txn: txn.0 });
        out.send(from, P::vote(txn, true));
        true
    }

    /// Abort a transaction this cohort has not voted yes for: force `abort*`
    /// so that a later phase-1 message is answered no.
    pub fn abort_unilaterally<P: CommitProtocol>(&mut self, txn: TxnId, out: &mut Out<'_, P>) {
        assert!(!self.in_doubt.contains_key(&txn), "an in-doubt cohort may not abort on its own");
        assert!(!self.decided.contains_key(&txn));
        out.persist(P::aborted_record(txn));
        self.decided.insert(txn, false);
        out.observe(Observation::TxnDecided { txn: txn.0, commit: false });
    }

    /// Force and apply the outcome of an in-doubt transaction.
    pub fn finish<P: CommitProtocol>(&mut self, txn: TxnId, commit: bool, out: &mut Out<'_, P>) {
        let doubt = self.in_doubt.remove(&txn).expect("only an in-doubt transaction is finished");
        if commit {
            out.persist(P::committed_record(txn, doubt.writes.clone()));
            self.bank.apply(&doubt.writes);
        } else {
            out.persist(P::aborted_record(txn));
        }
        self.bank.unlock(txn);
        self.decided.insert(txn, commit);
        out.observe(Observation::TxnDecided { txn: txn.0, commit });
        out.cancel_timer(P::in_doubt_timer(txn));
    }

    /// The coordinator's decision: finish if in doubt, then acknowledge.
    pub fn handle_decision<P: CommitProtocol>(
        &mut self,
        from: NodeId,
        txn: TxnId,
        commit: bool,
        out: &mut Out<'_, P>,
    ) {
        if from != txn.coordinator() {
            return;
        }
        if self.in_doubt.contains_key(&txn) {
            self.finish(txn, commit, out);
        } else if let std::collections::btree_map::Entry::Vacant(vacant) = self.decided.entry(txn) {
            // Never voted yes (or, under `no-force-prepare`, forgot that it
            // did): nothing of it was applied here, so this cohort's part is
            // aborted whatever the coordinator decided. Presumed abort needs
            // no record.
            vacant.insert(false);
            out.observe(Observation::TxnDecided { txn: txn.0, commit: false });
        }
        out.send(from, P::ack(txn));
    }

    /// A balance is read at its owner, and only while no transaction holds it.
    pub fn read_balance<P: CommitProtocol>(&self, client: RequestId, account: u64, out: &mut Out<'_, P>) {
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

    /// Panic if a lock, an in-doubt vote or a balance breaks the invariants.
    pub fn invariants(&self) {
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
    }
}
