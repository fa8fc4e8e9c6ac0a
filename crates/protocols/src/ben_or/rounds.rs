//! The two phases of a round, the coin, and deciding (Ben-Or 1983,
//! Protocol A, steps 1 and 2), per instance; with the crash-recovery
//! additions of the module doc: forced estimates and proposals, answers to
//! nodes behind.

use quorum_core::decision::DecisionResponse;
use quorum_core::{NodeId, Observation, Out};

use super::{BenOr, Bug, Instance, Msg, Phase, Proposal, Record, Run, Said, Timer};
use super::{COIN_FLIPPED, LATE_DECISION, VALUE_ADOPTED};

impl BenOr {
    /// Take part in `instance` with this node's input.
    pub(super) fn join(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        assert!(!self.runs.contains_key(&instance) && !self.decided.contains_key(&instance));
        let input = self.input(out);
        self.runs.insert(instance, Run::default());
        self.begin_round(instance, 1, input, out);
        self.advance(instance, out);
    }

    fn run_mut(&mut self, instance: Instance) -> &mut Run {
        self.runs.get_mut(&instance).expect("the instance is running here")
    }

    /// Enter `round` with estimate `x`: force it, then report it
    /// (phase 1). Its own report counts among the `n - f`.
    fn begin_round(&mut self, instance: Instance, round: u64, x: u8, out: &mut Out<'_, Self>) {
        assert!(x <= 1, "an estimate is a bit");
        let id = self.cluster.id;
        let run = self.run_mut(instance);
        assert_eq!(run.said.len() as u64 + 1, round, "rounds follow one another");
        assert!(round == 1 || run.said[&(round - 1)].proposal.is_some(), "the last round was finished");
        out.persist(Record::Estimate { instance, round, value: x });
        if round == 1 {
            // Observed once forced: a node that crashed before the record
            // did not propose (a restart observes it again).
            out.observe(Observation::Propose { instance, value: u64::from(x) });
        }
        run.said.insert(round, Said { estimate: x, proposal: None });
        run.heard.retain(|r, _| *r >= round);
        run.heard.entry(round).or_default().reports.insert(id, x);
        out.observe(Observation::Round { instance, round });
        self.broadcast(&Msg::Report { instance, round, value: x, answer: false }, out);
        out.set_timer(Timer::Retransmit(instance), self.config.retransmit_interval);
    }

    /// After a restart: what this node said in its current round counts
    /// among what it heard, as it did before the crash.
    pub(super) fn hear_own_messages(&mut self, instance: Instance) {
        let id = self.cluster.id;
        let run = self.run_mut(instance);
        let said = run.said[&run.round()];
        let round = run.round();
        let heard = run.heard.entry(round).or_default();
        heard.reports.insert(id, said.estimate);
        if let Some(proposal) = said.proposal {
            heard.proposals.insert(id, proposal);
        }
    }

    /// Finish as many phases of `instance` as what was heard allows.
    fn advance(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        while let Some(run) = self.runs.get(&instance) {
            if run.heard_in_phase() < self.wait_for() {
                return;
            }
            match run.phase() {
                Phase::Report => self.end_report_phase(instance, out),
                Phase::Proposal => self.end_proposal_phase(instance, out),
            }
        }
    }

    /// Phase 1 ends with `n - f` reports: propose `v` if more than `n/2`
    /// of *all* nodes reported `v`, else `?`. The proposal is forced before
    /// it leaves.
    fn end_report_phase(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let (id, n) = (self.cluster.id, self.n());
        let run = self.run_mut(instance);
        let round = run.round();
        let reports = &run.heard[&round].reports;
        let ones = reports.values().filter(|v| **v == 1).count();
        let zeros = reports.len() - ones;
        let proposal = if 2 * ones > n {
            Proposal::Value(1)
        } else if 2 * zeros > n {
            Proposal::Value(0)
        } else {
            Proposal::Unsure
        };
        out.persist(Record::Proposed { instance, round, proposal });
        run.said.get_mut(&round).expect("the current round was said").proposal = Some(proposal);
        run.heard.get_mut(&round).expect("heard above").proposals.insert(id, proposal);
        self.broadcast(&Msg::Proposal { instance, round, proposal, answer: false }, out);
        out.set_timer(Timer::Retransmit(instance), self.config.retransmit_interval);
    }

    /// Phase 2 ends with `n - f` proposals: decide `v` on `f + 1` of them;
    /// else adopt `v` if any proposes it; else flip the coin.
    fn end_proposal_phase(&mut self, instance: Instance, out: &mut Out<'_, Self>) {
        let run = &self.runs[&instance];
        let round = run.round();
        let proposals = &run.heard[&round].proposals;
        let count = |v: u8| proposals.values().filter(|p| **p == Proposal::Value(v)).count();
        let (zeros, ones) = (count(0), count(1));
        // Invariant: Claim 1, one value per round.
        assert!(zeros == 0 || ones == 0, "instance {instance} round {round}: proposals of both values");
        let (value, seen) = if ones > 0 { (1, ones) } else { (0, zeros) };
        let decide_at = match self.config.bug {
            Some(Bug::DecideOnFProposals) => self.faults_max.max(1),
            None => self.faults_max + 1,
        };
        if seen >= decide_at {
            if round > 1 {
                out.observe(Observation::Reached(LATE_DECISION.name));
            }
            self.decide(instance, value, out);
            return;
        }
        let next = if seen > 0 {
            out.observe(Observation::Reached(VALUE_ADOPTED.name));
            value
        } else {
            out.observe(Observation::Reached(COIN_FLIPPED.name));
            out.rng().range(0, 2) as u8
        };
        self.begin_round(instance, round + 1, next, out);
    }

    /// Decide `value`: force it, tell the checkers, the waiting clients and
    /// every peer, and stop taking part in the instance's rounds.
    pub(super) fn decide(&mut self, instance: Instance, value: u8, out: &mut Out<'_, Self>) {
        assert!(!self.decided.contains_key(&instance), "a node decides an instance once");
        assert!(value <= 1, "a decision is a bit");
        out.persist(Record::Decided { instance, value });
        self.runs.remove(&instance);
        self.decided.insert(instance, value);
        out.observe(Observation::Decide { instance, value: u64::from(value) });
        for id in self.waiters.remove(&instance).unwrap_or_default() {
            out.reply(id, DecisionResponse::Decided(u64::from(value)));
        }
        self.broadcast(&Msg::Decided { instance, value }, out);
        out.cancel_timer(Timer::Retransmit(instance));
    }

    /// A report of `round`: unless it is itself an answer, answered with
    /// this node's own report if this node has passed that phase (the
    /// sender is behind, or lost ours); counted if the round is not
    /// finished here.
    pub(super) fn handle_report(
        &mut self,
        from: NodeId,
        instance: Instance,
        round: u64,
        value: u8,
        answer: bool,
        out: &mut Out<'_, Self>,
    ) {
        let run = self.run_mut(instance);
        let current = (run.round(), run.phase());
        if let Some(said) = run.said.get(&round).filter(|_| !answer && (round, Phase::Report) < current) {
            out.send(from, Msg::Report { instance, round, value: said.estimate, answer: true });
        }
        if round >= current.0 {
            let reports = &mut run.heard.entry(round).or_default().reports;
            let first = *reports.entry(from).or_insert(value);
            assert_eq!(first, value, "{from} reported two values in instance {instance} round {round}");
        }
        self.advance(instance, out);
    }

    /// A proposal of `round`, handled as a report is.
    pub(super) fn handle_proposal(
        &mut self,
        from: NodeId,
        instance: Instance,
        round: u64,
        proposal: Proposal,
        answer: bool,
        out: &mut Out<'_, Self>,
    ) {
        let run = self.run_mut(instance);
        let current = run.round();
        if let Some(said) = run.said.get(&round).filter(|_| !answer && round < current) {
            let ours = said.proposal.expect("a finished round had a proposal");
            out.send(from, Msg::Proposal { instance, round, proposal: ours, answer: true });
        }
        if round >= current {
            let proposals = &mut run.heard.entry(round).or_default().proposals;
            let first = *proposals.entry(from).or_insert(proposal);
            assert_eq!(first, proposal, "{from} proposed twice in instance {instance} round {round}");
        }
        self.advance(instance, out);
    }
}
