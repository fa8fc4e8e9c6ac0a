//! Runaway runs end, never hang: a protocol in a message storm or a
//! zero-delay loop exceeds a budget, and the run ends as a `runaway`
//! violation with its replay, at once; exploration goes on.

use quorum_core::{Cluster, ConfigError, KvCommand, KvResponse, Micros, NodeId, Out, Protocol, RequestId};
use quorum_sim::{run, Budgets, SimConfig, Violation};
use serde::{Deserialize, Serialize};

/// Answers every message twice (a storm that doubles each round trip), or
/// with `loop_timer` re-arms a zero-delay timer forever.
struct Chatter {
    cluster: Cluster,
    loop_timer: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping;

impl Protocol for Chatter {
    type Msg = Ping;
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = u8;
    type Timer = u8;
    /// Loop on a zero-delay timer instead of chattering.
    type Config = bool;

    fn validate(_: &bool, _: &[NodeId]) -> Result<(), ConfigError> {
        Ok(())
    }

    fn start(cluster: &Cluster, loop_timer: &bool, _: &[u8], out: &mut Out<'_, Self>) -> Self {
        let node = Chatter { cluster: cluster.clone(), loop_timer: *loop_timer };
        if node.loop_timer {
            out.set_timer(0, Micros(0));
        } else if cluster.id == NodeId(0) {
            out.send(NodeId(1), Ping);
        }
        node
    }

    fn on_message(&mut self, from: NodeId, msg: Ping, out: &mut Out<'_, Self>) {
        out.send(from, msg.clone());
        out.send(from, msg);
    }

    fn on_timer(&mut self, timer: u8, out: &mut Out<'_, Self>) {
        out.set_timer(timer, Micros(0));
    }

    fn on_request(&mut self, id: RequestId, _: KvCommand, out: &mut Out<'_, Self>) {
        let _ = &self.cluster;
        out.reply(id, KvResponse::Rejected { reason: "busy chattering".into(), hint: None });
    }
}

fn config() -> SimConfig {
    let mut config = SimConfig::new("chatter");
    config.nodes = 2;
    config.max_down = 0;
    config
}

#[test]
fn a_message_storm_ends_as_a_runaway_violation() {
    let outcome = run::<Chatter>(&config(), &false).expect("valid settings");
    assert_eq!(outcome.violations, vec![Violation::Runaway], "only what the truncated run can judge");
    let why = outcome.runaway.as_deref().unwrap();
    assert!(why.contains("events"), "{why}");
    assert!(outcome.sim_time_ms < 1_000, "the storm is caught where it starts: {} ms", outcome.sim_time_ms);
    assert_eq!(outcome.replay.config.seed, 0);
    assert!(outcome.replay.config.schedule.is_some(), "the replay names its schedule");
}

#[test]
fn a_zero_delay_loop_ends_as_a_runaway_violation() {
    let outcome = run::<Chatter>(&config(), &true).expect("valid settings");
    assert_eq!(outcome.violations, vec![Violation::Runaway]);
    assert!(outcome.runaway.as_deref().unwrap().contains("within simulated ms 0"), "{:?}", outcome.runaway);
}

/// Each budget is what stops it: with the per-ms budget raised, the queue
/// limit catches the storm; with both raised, the event limit does.
#[test]
fn every_budget_bites() {
    let mut c = config();
    c.budgets = Budgets { queue_max: 100_000, events_per_ms_max: u64::MAX, ..Budgets::default() };
    let why = run::<Chatter>(&c, &false).unwrap().runaway.unwrap();
    assert!(why.contains("queued at once"), "{why}");
    c.budgets = Budgets { events_max: 50_000, queue_max: usize::MAX, events_per_ms_max: u64::MAX };
    let why = run::<Chatter>(&c, &true).unwrap().runaway.unwrap();
    assert!(why.contains("more than 50000 events in the run"), "{why}");
}

#[test]
fn exploration_goes_on_past_runaway_runs() {
    let mut c = config();
    c.budgets.events_max = 100_000;
    let report = quorum_sim::explore(&c, 3, 1, &[], &|c| run::<Chatter>(c, &false).unwrap(), &|| {});
    assert_eq!(report.runs, 3);
    assert_eq!(report.violations["runaway"], 3);
    let first = report.first.expect("the first runaway run, shrunk");
    assert_eq!(first.violations, vec![Violation::Runaway]);
}
