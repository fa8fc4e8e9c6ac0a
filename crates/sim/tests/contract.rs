//! The simulator keeps the protocol contract: effects run in order, a
//! persist is durable before any later effect leaves the node, and the same
//! seed gives the same trace.

use quorum_core::{
    Cluster, ConfigError, KvCommand, KvResponse, KvStore, NodeId, Observation, Out, Protocol, RequestId, Role,
};
use quorum_sim::{run_traced, SimConfig};
use serde::{Deserialize, Serialize};

/// A toy protocol: a node that receives a write persists it, then tells its
/// neighbour, then acknowledges. Restart replays the persisted writes. The
/// node named by the config announces itself leader when it starts (for
/// the leader-targeted fault).
struct Relay {
    cluster: Cluster,
    store: KvStore,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Written {
    key: u64,
    value: u64,
}

impl Protocol for Relay {
    type Msg = Written;
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = Written;
    type Timer = u8;
    type Config = Option<NodeId>;

    fn validate(leader: &Option<NodeId>, nodes: &[NodeId]) -> Result<(), ConfigError> {
        match leader {
            Some(node) if !nodes.contains(node) => Err(ConfigError::new(format!("no node {node}"))),
            _ => Ok(()),
        }
    }

    fn start(
        cluster: &Cluster,
        leader: &Option<NodeId>,
        durable: &[Written],
        out: &mut Out<'_, Self>,
    ) -> Self {
        if *leader == Some(cluster.id) {
            out.observe(Observation::Role { role: Role::Leader, term: 1 });
        }
        let mut store = KvStore::new();
        for w in durable {
            store.set(w.key, w.value);
        }
        Relay { cluster: cluster.clone(), store }
    }

    fn on_message(&mut self, _: NodeId, msg: Written, out: &mut Out<'_, Self>) {
        self.store.set(msg.key, msg.value);
        out.persist(msg);
    }

    fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        if let KvCommand::Write { key, value } = request {
            self.store.set(key, value);
            out.persist(Written { key, value });
            let neighbour = self.cluster.peers().next().expect("two nodes");
            out.send(neighbour, Written { key, value });
        }
        let response = match request {
            KvCommand::Read { key } => KvResponse::Read(self.store.get(key)),
            _ => KvResponse::Done,
        };
        out.reply(id, response);
    }

    fn state_digest(&self) -> Option<u64> {
        Some(self.store.digest())
    }
}

fn lines(trace: &str) -> Vec<serde_json::Value> {
    trace.lines().map(|l| serde_json::from_str(l).expect("trace lines are JSON")).collect()
}

/// A crash between a persist and the send after it keeps the record and lets
/// no later effect of that step escape.
#[test]
fn crash_between_persist_and_send_keeps_the_record_and_stops_the_send() {
    let mut crashed_mid_step = 0;
    for seed in 0..40 {
        let mut config = SimConfig::new("relay");
        config.seed = seed;
        config.nodes = 2;
        config.max_down = 1;
        config.cas = false;
        config.ops = 20;
        config.clients = 1;
        config.schedule = Some("0:crash=0/1,3000:restart=0".parse().unwrap());
        let outcome = run_traced::<Relay>(&config, &None).expect("valid settings");
        let trace = lines(outcome.trace.as_deref().unwrap());
        let Some(crash) = trace.iter().position(|l| l["ev"] == "crash" && l["node"] == 0) else { continue };
        if trace[crash]["how"] != "mid-step" {
            continue;
        }
        let step_start = trace[..crash]
            .iter()
            .rposition(|l| l["node"] == 0 && (l["ev"] == "request" || l["ev"] == "deliver"))
            .unwrap();
        let step = &trace[step_start..crash];
        if step[0]["ev"] != "request" || !step[0]["request"].as_str().unwrap().starts_with("Write") {
            continue;
        }
        crashed_mid_step += 1;
        assert_eq!(step.len(), 2, "exactly one effect (the persist) ran: {step:?}");
        assert_eq!(step[1]["ev"], "persist");
        let value = &step[1]["record"]["value"];
        // Nothing of that step left the node: no send, no reply.
        assert!(!trace.iter().any(|l| l["ev"] == "send" && l["msg"]["value"] == *value));
        assert!(!trace.iter().any(|l| l["ev"] == "deliver" && l["msg"]["value"] == *value));
        // The record survived: the restart replays it.
        let restart =
            trace.iter().find(|l| l["ev"] == "start" && l["node"] == 0 && l["t"].as_u64() > Some(0)).unwrap();
        assert!(restart["durable_records"].as_u64().unwrap() >= 1);
    }
    assert!(crashed_mid_step > 0, "some seed must crash node 0 in the middle of a write");
}

#[test]
fn same_seed_same_trace_byte_for_byte() {
    let mut config = SimConfig::new("relay");
    config.nodes = 2;
    config.max_down = 1;
    config.faults = "all".parse().unwrap();
    config.seed = 11;
    let a = run_traced::<Relay>(&config, &None).expect("valid settings").trace.unwrap();
    let b = run_traced::<Relay>(&config, &None).expect("valid settings").trace.unwrap();
    assert!(a.len() > 1000);
    assert_eq!(a, b);
    config.seed = 12;
    let c = run_traced::<Relay>(&config, &None).expect("valid settings").trace.unwrap();
    assert_ne!(a, c, "a different seed gives a different run");
}

/// `crash-leader` strikes the node that leads, at its first step that
/// persists, just after the write with `K - 1` of the step's messages out
/// (here none), and its supervisor restarts it `D` ms later; a node that
/// does not lead is never struck.
#[test]
fn crash_leader_strikes_the_leader_mid_write_and_restarts_it() {
    let mut struck = 0;
    for seed in 0..20 {
        let mut config = SimConfig::new("relay");
        config.seed = seed;
        config.nodes = 2;
        config.max_down = 1;
        config.cas = false;
        config.ops = 20;
        config.clients = 2;
        config.schedule = Some("0:crash-leader=1+300~4000".parse().unwrap());
        let outcome = run_traced::<Relay>(&config, &Some(NodeId(1))).expect("valid settings");
        let trace = lines(outcome.trace.as_deref().unwrap());
        let crashes: Vec<&serde_json::Value> = trace.iter().filter(|l| l["ev"] == "crash").collect();
        assert!(crashes.len() <= 1, "one armed fault strikes once: {crashes:?}");
        let Some(crash) = crashes.first() else { continue };
        struck += 1;
        assert_eq!(crash["node"], 1, "only the leader is struck");
        let at = trace.iter().position(|l| l == *crash).unwrap();
        let step_start = trace[..at]
            .iter()
            .rposition(|l| {
                l["node"] == 1 && ["request", "deliver", "timer"].contains(&l["ev"].as_str().unwrap())
            })
            .unwrap();
        let step = &trace[step_start + 1..at];
        assert_eq!(step.len(), 1, "one effect ran before the crash: {step:?}");
        assert_eq!(step[0]["ev"], "persist", "it strikes a step that persists");
        let crashed_at = crash["t"].as_u64().unwrap();
        let restart =
            trace.iter().find(|l| l["ev"] == "start" && l["node"] == 1 && l["t"].as_u64() > Some(0)).unwrap();
        assert_eq!(restart["t"].as_u64().unwrap(), crashed_at + 300_000, "restarted 300 ms later");
    }
    assert!(struck > 0, "some seed writes through the leader while the fault is armed");

    // Armed for 1 ms, before any client wrote: it lapses unused.
    let mut config = SimConfig::new("relay");
    config.nodes = 2;
    config.max_down = 1;
    config.cas = false;
    config.schedule = Some("0:crash-leader=1+300~1".parse().unwrap());
    let trace = run_traced::<Relay>(&config, &Some(NodeId(1))).expect("valid settings").trace.unwrap();
    assert!(!lines(&trace).iter().any(|l| l["ev"] == "crash"), "a lapsed fault strikes nobody");
}

/// A protocol that sends before it writes (a Raft leader replicates while
/// it appends): `crash-leader=1` still makes the write durable and lets
/// none of the step's messages out, so the entry is on the leader alone.
#[test]
fn crash_leader_tears_a_broadcast_sent_before_the_write() {
    let mut struck = 0;
    for seed in 0..10 {
        let mut config = SimConfig::new("raft");
        config.seed = seed;
        config.nodes = 3;
        config.schedule = Some("0:crash-leader=1+300~10000".parse().unwrap());
        let outcome = run_traced::<quorum_protocols::raft::Raft<KvStore>>(&config, &Default::default())
            .expect("valid settings");
        let trace = lines(outcome.trace.as_deref().unwrap());
        let Some(at) = trace.iter().position(|l| l["ev"] == "crash") else { continue };
        struck += 1;
        let node = trace[at]["node"].clone();
        let step_start = trace[..at]
            .iter()
            .rposition(|l| {
                l["node"] == node && ["request", "deliver", "timer"].contains(&l["ev"].as_str().unwrap())
            })
            .unwrap();
        let step: Vec<&str> = trace[step_start + 1..at]
            .iter()
            .filter(|l| l["node"] == node)
            .map(|l| l["ev"].as_str().unwrap())
            .collect();
        assert!(step.contains(&"lost-in-crash"), "the leader's AppendEntries were cut: {step:?}");
        assert!(step.contains(&"persist"), "its write is durable: {step:?}");
        assert!(!step.contains(&"send"), "no message of the step got out: {step:?}");
    }
    assert!(struck > 0, "some seed has a leader write while the fault is armed");
}

/// `power-loss` takes its whole group down at one instant, at the end of a
/// step of one of them that sent something (the messages are out), and
/// restarts each of them the same delay later; a node outside the group is
/// never struck.
#[test]
fn a_power_loss_takes_its_group_down_together_after_a_sending_step() {
    let mut struck = 0;
    for seed in 0..20 {
        let mut config = SimConfig::new("relay");
        config.seed = seed;
        config.nodes = 3;
        config.max_down = 2;
        config.cas = false;
        config.ops = 40;
        config.clients = 2;
        config.schedule = Some("0:power=0.1+20".parse().unwrap());
        let outcome = run_traced::<Relay>(&config, &None).expect("valid settings");
        let trace = lines(outcome.trace.as_deref().unwrap());
        let crashes: Vec<&serde_json::Value> = trace.iter().filter(|l| l["ev"] == "crash").collect();
        if crashes.is_empty() {
            continue;
        }
        struck += 1;
        assert_eq!(crashes.len(), 2, "the group goes down once, together: {crashes:?}");
        assert!(crashes.iter().all(|c| c["how"] == "power loss" && c["t"] == crashes[0]["t"]));
        let mut down: Vec<u64> = crashes.iter().map(|c| c["node"].as_u64().unwrap()).collect();
        down.sort();
        assert_eq!(down, [0, 1], "only the group is struck");
        let at = trace.iter().position(|l| l == crashes[0]).unwrap();
        let striker = trace[at - 1]["node"].clone();
        let step_start = trace[..at]
            .iter()
            .rposition(|l| {
                l["node"] == striker && ["request", "deliver", "timer"].contains(&l["ev"].as_str().unwrap())
            })
            .unwrap();
        let step: Vec<&str> = trace[step_start + 1..at].iter().map(|l| l["ev"].as_str().unwrap()).collect();
        assert!(step.contains(&"send"), "it strikes at the end of a step that sent: {step:?}");
        let crashed_at = crashes[0]["t"].as_u64().unwrap();
        for node in [0, 1] {
            let restart = trace
                .iter()
                .find(|l| l["ev"] == "start" && l["node"] == node && l["t"].as_u64() > Some(0))
                .unwrap();
            assert_eq!(
                restart["t"].as_u64().unwrap(),
                crashed_at + 20_000,
                "node {node} restarted 20 ms later"
            );
        }
    }
    assert!(struck > 0, "some seed sends from the group while the fault is armed");
}

/// A toy election: node 0 campaigns from the start (it announces
/// `Role::Candidate` and persists its own vote), asks every other node for
/// its vote each time a client writes to it, and never wins; a node asked
/// forces its vote, then answers.
struct Campaign {
    cluster: Cluster,
}

impl Protocol for Campaign {
    type Msg = bool;
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = NodeId;
    type Timer = u8;
    type Config = ();

    fn validate(_: &(), _: &[NodeId]) -> Result<(), ConfigError> {
        Ok(())
    }

    fn start(cluster: &Cluster, _: &(), _: &[NodeId], out: &mut Out<'_, Self>) -> Self {
        if cluster.id == NodeId(0) {
            out.observe(Observation::Role { role: Role::Candidate, term: 1 });
        }
        Campaign { cluster: cluster.clone() }
    }

    fn on_message(&mut self, from: NodeId, request: bool, out: &mut Out<'_, Self>) {
        if request {
            out.persist(from);
            out.send(from, false);
        }
    }

    fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        if self.cluster.id == NodeId(0) && request.is_update() {
            out.persist(NodeId(0));
            for peer in self.cluster.peers() {
                out.send(peer, true);
            }
        }
        out.reply(id, KvResponse::Rejected { reason: "campaigning".into(), hint: Some(NodeId(0)) });
    }
}

/// `kill-voter` strikes a node at the end of a step that persisted while
/// another node campaigns (here: a vote, its answer out), restarts it D ms
/// later, and never strikes the candidate itself, though it persists too.
#[test]
fn kill_voter_strikes_a_node_as_it_answers_a_campaign() {
    let mut struck = 0;
    for seed in 0..20 {
        let mut config = SimConfig::new("campaign");
        config.seed = seed;
        config.nodes = 3;
        config.max_down = 1;
        config.cas = false;
        config.ops = 30;
        config.clients = 2;
        config.schedule = Some("0:kill-voter=25~4000".parse().unwrap());
        let outcome = run_traced::<Campaign>(&config, &()).expect("valid settings");
        let trace = lines(outcome.trace.as_deref().unwrap());
        let crashes: Vec<&serde_json::Value> = trace.iter().filter(|l| l["ev"] == "crash").collect();
        assert!(crashes.len() <= 1, "one armed fault strikes once: {crashes:?}");
        let Some(crash) = crashes.first() else { continue };
        struck += 1;
        assert_ne!(crash["node"], 0, "the candidate is never struck");
        assert_eq!(crash["how"], "killed after answering an election");
        let node = crash["node"].clone();
        let at = trace.iter().position(|l| l == *crash).unwrap();
        let step_start = trace[..at].iter().rposition(|l| l["node"] == node && l["ev"] == "deliver").unwrap();
        let step: Vec<&str> = trace[step_start + 1..at].iter().map(|l| l["ev"].as_str().unwrap()).collect();
        assert_eq!(step, ["persist", "send"], "the whole step ran: the vote is forced and out");
        let crashed_at = crash["t"].as_u64().unwrap();
        let restart = trace
            .iter()
            .find(|l| l["ev"] == "start" && l["node"] == node && l["t"].as_u64() > Some(0))
            .unwrap();
        assert_eq!(restart["t"].as_u64().unwrap(), crashed_at + 25_000, "restarted 25 ms later");
    }
    assert!(struck > 0, "some seed asks for votes while the fault is armed");

    // Nobody campaigns: the relay's writes persist, but it strikes nobody.
    let mut config = SimConfig::new("relay");
    config.nodes = 2;
    config.max_down = 1;
    config.cas = false;
    config.schedule = Some("0:kill-voter=25~4000".parse().unwrap());
    let trace = run_traced::<Relay>(&config, &Some(NodeId(1))).expect("valid settings").trace.unwrap();
    assert!(!lines(&trace).iter().any(|l| l["ev"] == "crash"), "no election, no strike");
}
