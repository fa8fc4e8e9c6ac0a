//! quorum-registry: every protocol of the catalogue, bound to its type.
//!
//! A protocol's module declares its catalogue entry (`ENTRY`: name, source
//! section, claims, variants, bugs, explorable settings, workload); this
//! crate holds the one list that binds each entry to the Rust type that
//! implements it, in one line per protocol ([`PROTOCOLS`]). Everything that
//! runs a protocol by name goes through it: `quorum list / sim / explore /
//! script / tour`, the server's `--protocol`, the scenario runner and the
//! negative-control tests. The simulator and the server know no protocol
//! by name; the protocols know neither driver.
//!
//! Adding a protocol: its folder in `crates/protocols`, its `ENTRY`, its
//! scenario files under `crates/protocols/scenarios/<name>/`, and one line
//! below. The tests in `tests/registry.rs` walk the list: every protocol has
//! scenarios and a positive exploration that reaches its sometimes
//! properties, and every bug has a negative control that catches it.

pub mod claims;
mod drive;
pub mod flp;
mod settings;

use std::future::Future;
use std::pin::Pin;

use quorum_core::claims::SystemModel;
use quorum_core::redis::RedisKv;
use quorum_core::{KvStore, NodeId, Observation, Time};
use quorum_protocols::byzantine_generals::{self, om, sm};
use quorum_protocols::catalog::{Entry, Workload};
use quorum_protocols::commit::{three_pc, two_pc};
use quorum_protocols::replication::{abd, asynchronous, primary_backup, sync};
use quorum_protocols::{ben_or, crdt, fast_paxos, paxos, raft, two_generals, zab};
use quorum_server::state::KvMap;
use quorum_server::{Running, ServeConfig};
use quorum_sim::script::{Block, ScriptError};
use quorum_sim::{Capture, FaultKind, ProtocolChoice, RunError, RunOutcome, SimConfig, Swarm, WorkloadKind};

pub use self::settings::ServerDefaults;

/// Every protocol the laboratory runs, in catalogue order: one line each.
pub static PROTOCOLS: &[Registered] = &[
    Registered::kv::<sync::Synchronous>(&sync::ENTRY),
    Registered::kv::<asynchronous::Asynchronous>(&asynchronous::ENTRY),
    Registered::kv::<primary_backup::PrimaryBackup>(&primary_backup::ENTRY),
    Registered::kv::<abd::Abd>(&abd::ENTRY),
    Registered::kv::<paxos::single::Paxos<KvStore>>(&paxos::single::ENTRY)
        .with_flp::<paxos::single::Paxos<KvStore>>(),
    Registered::kv::<paxos::multi::MultiPaxos<KvStore>>(&paxos::multi::ENTRY)
        .redis::<paxos::multi::MultiPaxos<RedisKv>>(),
    Registered::kv::<fast_paxos::FastPaxos<KvStore>>(&fast_paxos::ENTRY),
    Registered::kv::<raft::Raft<KvStore>>(&raft::ENTRY)
        .serving::<raft::Raft<KvMap>>()
        .with_flp::<raft::Raft<KvStore>>()
        .redis::<raft::Raft<RedisKv>>(),
    Registered::kv::<zab::Zab<KvStore>>(&zab::ENTRY)
        .serving::<zab::Zab<KvMap>>()
        .redis::<zab::Zab<RedisKv>>(),
    Registered::txn::<two_pc::TwoPhaseCommit>(&two_pc::ENTRY),
    Registered::txn::<three_pc::ThreePhaseCommit>(&three_pc::ENTRY),
    Registered::proposal::<two_generals::TwoGenerals>(&two_generals::ENTRY).sized(&[2]),
    Registered::decision::<ben_or::BenOr>(&ben_or::ENTRY),
    Registered::decision::<byzantine_generals::OralMessages>(&om::ENTRY).sized(&[4, 7]),
    Registered::decision::<byzantine_generals::SignedMessages>(&sm::ENTRY).sized(&[3, 4]),
    Registered::crdt::<crdt::Crdt>(&crdt::ENTRY),
];

/// The Redis workload's own bug (`--workload redis --bug
/// expiry-by-local-clock`): clients' clocks stamp the commands. Accepted by
/// every protocol that speaks Redis, and kept from the protocol's settings.
pub const WORKLOAD_BUG: &str = quorum_sim::redis_workload::EXPIRY_BY_LOCAL_CLOCK;

/// `choice` without a bug that belongs to the workload, not the protocol.
pub(crate) fn protocol_part(choice: &ProtocolChoice) -> ProtocolChoice {
    let mut choice = choice.clone();
    if choice.bug.as_deref() == Some(WORKLOAD_BUG) {
        choice.bug = None;
    }
    choice
}

/// A choice the registry refuses: one line for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// The registered protocol named `name`.
pub fn find(name: &str) -> Result<&'static Registered, Error> {
    PROTOCOLS.iter().find(|r| r.entry.name == name).ok_or_else(|| {
        Error(format!("unknown protocol '{name}' (expected one of: {})", names(PROTOCOLS.iter()).join(", ")))
    })
}

/// The registered protocol named `name`, if the server can run it.
pub fn find_servable(name: &str) -> Result<&'static Registered, Error> {
    let servable = || names(PROTOCOLS.iter().filter(|r| r.serves())).join(", ");
    match find(name) {
        Ok(r) if r.serves() => Ok(r),
        Ok(_) => Err(Error(format!("the server does not run '{name}' (it runs: {})", servable()))),
        Err(_) => Err(Error(format!("unknown protocol '{name}' (the server runs: {})", servable()))),
    }
}

fn names<'a>(protocols: impl Iterator<Item = &'a Registered>) -> Vec<&'static str> {
    protocols.map(|r| r.entry.name).collect()
}

/// What the model checker needs of a protocol beyond the contract (see
/// [`quorum_model::Checkable`]): every registered protocol has it.
pub use quorum_model::Checkable as Modelled;

/// What a script run produced.
pub struct Scripting {
    /// Each block's output.
    pub outputs: Vec<String>,
    /// Every observation the nodes made, with its time.
    pub observations: Vec<(NodeId, Observation, Time)>,
    /// The steps as a space-time diagram draws them, if asked for.
    pub recording: Option<quorum_sim::diagram::Recording>,
}

type RunFn = fn(&SimConfig, Capture) -> Result<RunOutcome, RunError>;
type CheckFn = fn(&ProtocolChoice, Option<&[NodeId]>) -> Result<(), quorum_core::ConfigError>;
type TraitorsFn = fn(&ProtocolChoice, u32) -> u32;
type ScriptFn = fn(&ProtocolChoice, &[Block], bool) -> Result<Scripting, ScriptError>;
type ModelFn = fn(
    &ProtocolChoice,
    &quorum_model::ModelConfig,
    &mut dyn FnMut(u32, u64),
) -> Result<quorum_model::Outcome, quorum_model::ModelError>;
type ChainFn = fn(
    &ProtocolChoice,
    &quorum_model::ModelConfig,
) -> Result<Vec<quorum_model::ChainRun>, quorum_model::ModelError>;
type FlpFn = fn(
    &ProtocolChoice,
    &quorum_model::FlpConfig,
) -> Result<quorum_model::FlpReport, quorum_model::ModelError>;
/// The server started on a protocol: the future of the running node.
pub type Serving = Pin<Box<dyn Future<Output = anyhow::Result<Running>>>>;
type ServeFn = fn(ServeConfig, Option<serde_json::Value>) -> Serving;

/// A catalogue entry bound to its protocol's type.
#[derive(Clone, Copy)]
pub struct Registered {
    pub entry: &'static Entry,
    run: RunFn,
    check: CheckFn,
    /// How many traitors the protocol tolerates with a choice on n nodes.
    traitors: TraitorsFn,
    script: ScriptFn,
    model: ModelFn,
    chain: ChainFn,
    /// FLP's adversary (`quorum model --flp`), for protocols read as
    /// binary consensus ([`flp::Binary`]).
    flp: Option<FlpFn>,
    serve: Option<ServeFn>,
    /// Its run under the Redis workload (`--workload redis`), for log
    /// protocols generic over the state machine.
    redis: Option<RunFn>,
    /// The only cluster sizes it runs on (the two generals: 2); `None`:
    /// any, and the laboratory's usual 3 and 5.
    sizes: Option<&'static [u32]>,
}

impl Registered {
    /// `P` bound to `entry`, run in the simulator by `run` (its workload's
    /// driver); everything else is the same for every workload.
    const fn with<P: Modelled>(entry: &'static Entry, run: RunFn) -> Registered {
        Registered {
            entry,
            run,
            check: drive::check::<P>,
            traitors: drive::traitors::<P>,
            script: drive::script::<P>,
            model: drive::model::<P>,
            chain: drive::chain::<P>,
            flp: None,
            serve: None,
            redis: None,
            sizes: None,
        }
    }

    /// A protocol of the KV workload.
    pub const fn kv<P: quorum_sim::KvProtocol + Modelled>(entry: &'static Entry) -> Registered {
        assert!(
            matches!(entry.workload, Workload::Kv { .. }),
            "a KV protocol's entry declares the KV workload"
        );
        Registered::with::<P>(entry, drive::run_kv::<P>)
    }

    /// A protocol of the bank-transfer workload.
    pub const fn txn<P>(entry: &'static Entry) -> Registered
    where
        P: quorum_core::Protocol<
                Request = quorum_core::txn::TxnRequest,
                Response = quorum_core::txn::TxnResponse,
            > + Modelled,
    {
        assert!(
            matches!(entry.workload, Workload::Txn),
            "a transaction protocol's entry declares Workload::Txn"
        );
        Registered::with::<P>(entry, drive::run_txn::<P>)
    }

    /// A protocol of the proposal workload (each node given an input by a
    /// client, deciding once: the two generals).
    pub const fn proposal<P>(entry: &'static Entry) -> Registered
    where
        P: quorum_core::Protocol<
                Request = quorum_core::proposal::ProposalRequest,
                Response = quorum_core::decision::DecisionResponse,
            > + Modelled,
    {
        assert!(
            matches!(entry.workload, Workload::Proposal),
            "a proposal protocol's entry declares Workload::Proposal"
        );
        Registered::with::<P>(entry, drive::run_proposal::<P>)
    }

    /// A consensus protocol whose inputs are its own, asked for its decision.
    pub const fn decision<P>(entry: &'static Entry) -> Registered
    where
        P: quorum_core::Protocol<
                Request = quorum_core::decision::DecisionQuery,
                Response = quorum_core::decision::DecisionResponse,
            > + Modelled,
    {
        assert!(
            matches!(entry.workload, Workload::Decision),
            "a decision protocol's entry declares Workload::Decision"
        );
        Registered::with::<P>(entry, drive::run_decision::<P>)
    }

    /// A replicated data type updated at any node (CRDTs: counters and
    /// sets), judged for convergence.
    pub const fn crdt<P>(entry: &'static Entry) -> Registered
    where
        P: quorum_core::Protocol<
                Request = quorum_core::crdt::CrdtRequest,
                Response = quorum_core::crdt::CrdtResponse,
            > + Modelled,
    {
        assert!(matches!(entry.workload, Workload::Crdt), "a CRDT protocol's entry declares Workload::Crdt");
        Registered::with::<P>(entry, drive::run_crdt::<P>)
    }

    /// `quorum model --flp` runs FLP's adversary on it, read as binary
    /// consensus by [`flp::Binary`].
    pub const fn with_flp<P: flp::Binary>(self) -> Registered {
        Registered { flp: Some(flp::run::<P>), ..self }
    }

    /// The server runs it as `S` (the same protocol over the server's
    /// byte-string store).
    pub const fn serving<S>(self) -> Registered
    where
        S: quorum_server::node::ServerProtocol,
        S::Config: ServerDefaults,
        S::Msg: Send + 'static,
        S::Timer: Send,
    {
        Registered { serve: Some(drive::serve::<S>), ..self }
    }

    /// `--workload redis` runs it as `R` (the same protocol over
    /// `quorum_core::redis::RedisKv`): `GET`, `SET ... PX`, `MSET`, `EXEC`.
    pub const fn redis<R>(self) -> Registered
    where
        R: quorum_core::Protocol<
            Request = quorum_core::redis::RedisCommand,
            Response = quorum_core::redis::RedisResponse,
        >,
    {
        Registered { redis: Some(drive::run_redis::<R>), ..self }
    }

    /// Whether `--workload redis` runs it.
    pub fn speaks_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// It runs only on clusters of these sizes (the first is its default).
    pub const fn sized(self, sizes: &'static [u32]) -> Registered {
        assert!(!sizes.is_empty(), "at least one size");
        Registered { sizes: Some(sizes), ..self }
    }

    /// The cluster sizes its tests and long runs use: its own, or 3 and 5.
    pub fn sizes(&self) -> &'static [u32] {
        self.sizes.unwrap_or(&[3, 5])
    }

    /// Its cluster size when the user names none: `usual`, unless it runs
    /// only on certain sizes.
    pub fn default_nodes(&self, usual: u32) -> u32 {
        self.sizes.map_or(usual, |s| s[0])
    }

    pub fn serves(&self) -> bool {
        self.serve.is_some()
    }

    /// The protocol chosen with a variant, a bug and settings (a JSON
    /// object) from the command line, checked against the entry and the
    /// protocol's `Config` (unknown fields, wrong types).
    pub fn choose(
        &self,
        variant: Option<&str>,
        bug: Option<&str>,
        config: Option<&str>,
    ) -> Result<ProtocolChoice, Error> {
        let entry = self.entry;
        let name = entry.name;
        let mut choice = ProtocolChoice::named(name);
        if let Some(text) = config {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(fields)) => choice.config = fields,
                Ok(_) => return Err(Error("--config must be a JSON object".into())),
                Err(e) => return Err(Error(format!("--config is not JSON: {e}"))),
            }
        }
        if let Some(v) = variant {
            if !entry.variants.contains(&v) {
                return Err(Error(if entry.variants.is_empty() {
                    format!("protocol '{name}' has no variants (got --variant {v})")
                } else {
                    format!(
                        "unknown variant '{v}' for '{name}' (expected one of: {})",
                        entry.variants.join(", ")
                    )
                }));
            }
            choice.variant = Some(v.to_string());
        }
        if let Some(b) = bug {
            let workload_bug = b == WORKLOAD_BUG && self.speaks_redis();
            if entry.bug(b).is_none() && !workload_bug {
                let mut bugs: Vec<&str> = entry.bugs.iter().map(|b| b.name).collect();
                if self.speaks_redis() {
                    bugs.push(WORKLOAD_BUG);
                }
                return Err(Error(if bugs.is_empty() {
                    format!("protocol '{name}' has no --bug variants (got '{b}')")
                } else {
                    format!("unknown bug '{b}' for '{name}' (expected one of: {})", bugs.join(", "))
                }));
            }
            choice.bug = Some(b.to_string());
        }
        (self.check)(&protocol_part(&choice), None).map_err(|e| Error(e.to_string()))?;
        Ok(choice)
    }

    /// The protocol's verdict on `choice` for a cluster of `nodes`
    /// (`Protocol::validate`).
    pub fn validate(&self, choice: &ProtocolChoice, nodes: u32) -> Result<(), Error> {
        let members: Vec<NodeId> = (0..nodes).map(NodeId).collect();
        (self.check)(&protocol_part(choice), Some(&members)).map_err(|e| Error(e.to_string()))
    }

    /// A run's parameters for this protocol, with its defaults (the
    /// workload's cas, client retries where sessions promise them) and a
    /// swarm over its system model's faults and its explorable settings.
    pub fn sim_config(&self, choice: ProtocolChoice) -> SimConfig {
        let mut config = SimConfig::new(choice);
        config.nodes = self.default_nodes(config.nodes);
        config.max_down = SimConfig::minority(config.nodes);
        config.cas = matches!(self.entry.workload, Workload::Kv { cas: true });
        config.retries = self.entry.retries;
        config.swarm = Some(self.swarm());
        if self.entry.model == SystemModel::Byzantine {
            // The synchronous model: clocks agree, so rounds line up.
            config.timer_drift = 0.0;
        }
        config
    }

    /// How many traitors the protocol tolerates with `choice` on `nodes`
    /// nodes (its claims hold with at most that many).
    pub fn traitors_max(&self, choice: &ProtocolChoice, nodes: u32) -> u32 {
        (self.traitors)(choice, nodes)
    }

    /// What a seed of this protocol may draw.
    pub fn swarm(&self) -> Swarm {
        let kinds = match self.entry.model {
            SystemModel::Asynchronous => FaultKind::KNOWN.to_vec(),
            SystemModel::Lossy => vec![FaultKind::Loss, FaultKind::Dup, FaultKind::Partition],
            SystemModel::FailStop => {
                vec![
                    FaultKind::Crash,
                    FaultKind::Kill,
                    FaultKind::CrashLeader,
                    FaultKind::TornSend,
                    FaultKind::PowerLoss,
                ]
            }
            // Lamport's A1: every message arrives; no node crashes. The
            // faults are the traitors, drawn apart.
            SystemModel::Byzantine => Vec::new(),
        };
        let settings = self
            .entry
            .explorable
            .iter()
            .map(|s| {
                let values =
                    s.values.iter().map(|v| serde_json::from_str(v).expect("explorable values are JSON"));
                (s.name.to_string(), values.collect())
            })
            .collect();
        let timely = self.entry.model != SystemModel::Asynchronous;
        let byzantine = self.entry.model == SystemModel::Byzantine;
        Swarm { kinds, settings, timely, fixed: Default::default(), byzantine, traitors_max: None }
    }

    /// The run `config` describes for its seed: with a swarm, every drawn
    /// parameter and setting written in (a drawn combination the protocol
    /// refuses is drawn again, then left at its defaults), and no swarm.
    pub fn resolve(&self, config: &SimConfig) -> SimConfig {
        let mut resolved = config.resolve();
        let Some(swarm) = config.swarm.as_ref().filter(|_| config.schedule.is_none()) else {
            return resolved;
        };
        for attempt in 0..8 {
            let mut choice = config.protocol.clone();
            choice.config.extend(swarm.draw_settings(config.seed, attempt, &config.protocol.config));
            if self.validate(&choice, config.nodes).is_ok() {
                resolved.protocol = choice;
                break;
            }
        }
        if swarm.byzantine && !swarm.fixed.byzantine {
            let max =
                swarm.traitors_max.unwrap_or_else(|| self.traitors_max(&resolved.protocol, config.nodes));
            let (traitors, strategy) = swarm.draw_traitors(config.seed, config.nodes, max);
            resolved.byzantine = traitors;
            if config.strategy.tactics.is_empty() {
                resolved.strategy = strategy;
            }
        }
        resolved
    }

    /// One simulated run of `config.protocol` (which names this entry), as
    /// its seed draws it when `config` has a swarm.
    pub fn run(&self, config: &SimConfig, traced: bool) -> Result<RunOutcome, RunError> {
        self.run_captured(config, Capture { trace: traced, record: false })
    }

    /// Like [`Registered::run`], keeping what `capture` asks for: the
    /// trace, and the recording a space-time diagram draws.
    pub fn run_captured(&self, config: &SimConfig, capture: Capture) -> Result<RunOutcome, RunError> {
        debug_assert_eq!(config.protocol.name, self.entry.name);
        let run = match config.workload {
            WorkloadKind::Default => self.run,
            WorkloadKind::Redis => self.redis.ok_or_else(|| {
                RunError::Protocol(quorum_core::ConfigError::new(format!(
                    "--workload redis runs on {}, not '{}'",
                    names(PROTOCOLS.iter().filter(|r| r.speaks_redis())).join(", "),
                    self.entry.name
                )))
            })?,
        };
        (run)(&self.resolve(config), capture)
    }

    /// Search every interleaving of `model` exhaustively (see
    /// `quorum_model`); `progress` hears of each level (depth, states).
    pub fn model(
        &self,
        choice: &ProtocolChoice,
        model: &quorum_model::ModelConfig,
        progress: &mut dyn FnMut(u32, u64),
    ) -> Result<quorum_model::Outcome, Error> {
        (self.model)(choice, model, progress).map_err(|e| Error(e.0))
    }

    /// The chain of runs that lose one message earlier each time (see
    /// `quorum_model::chain`).
    pub fn chain(
        &self,
        choice: &ProtocolChoice,
        model: &quorum_model::ModelConfig,
    ) -> Result<Vec<quorum_model::ChainRun>, Error> {
        (self.chain)(choice, model).map_err(|e| Error(e.0))
    }

    /// FLP's bivalent run (see `quorum_model::flp`); an error for a
    /// protocol not read as binary consensus.
    pub fn flp(
        &self,
        choice: &ProtocolChoice,
        config: &quorum_model::FlpConfig,
    ) -> Result<quorum_model::FlpReport, Error> {
        let run = self.flp.ok_or_else(|| {
            let names: Vec<&str> =
                PROTOCOLS.iter().filter(|r| r.flp.is_some()).map(|r| r.entry.name).collect();
            Error(format!(
                "--flp runs on {} (read as binary consensus), not {}",
                names.join(" and "),
                self.entry.name
            ))
        })?;
        run(choice, config).map_err(|e| Error(e.0))
    }

    /// Whether a model of this protocol fires timers only when nothing is
    /// in flight: a fail-stop protocol assumes a timely network, and so do
    /// the two generals (their messengers are lost, never late).
    pub fn timely(&self) -> bool {
        self.entry.model != SystemModel::Asynchronous
    }

    /// Whether a model of this protocol issues its requests before
    /// anything else: an agreement problem's inputs are all given at the
    /// start (a general whose input comes after its dawn is not a lost
    /// messenger, and would break agreement with no loss at all).
    pub fn requests_first(&self) -> bool {
        self.entry.workload == Workload::Proposal
    }

    /// The client requests a model of this protocol issues by default:
    /// two writes of one key from two nodes (two proposers, two clients),
    /// one transfer, inputs of 1 at nodes 0 and 1 (proposals), or none for
    /// a protocol whose inputs are its own (its nodes start with them).
    pub fn default_requests(&self) -> Vec<(NodeId, String)> {
        match self.entry.workload {
            Workload::Kv { .. } => vec![(NodeId(0), "write 1 10".into()), (NodeId(1), "write 1 11".into())],
            Workload::Txn => vec![(NodeId(0), "transfer 1 2 30".into())],
            Workload::Proposal => vec![(NodeId(0), "propose 1".into()), (NodeId(1), "propose 1".into())],
            Workload::Decision => Vec::new(),
            Workload::Crdt => vec![(NodeId(0), "incr 1 2".into()), (NodeId(1), "reset 1".into())],
        }
    }

    /// Run a script's blocks: each block's output and every observation.
    pub fn script(&self, choice: &ProtocolChoice, blocks: &[Block]) -> Result<Scripting, ScriptError> {
        (self.script)(choice, blocks, false)
    }

    /// Like [`Registered::script`], also recording every step for a
    /// space-time diagram (`Scripting::recording`).
    pub fn script_recorded(
        &self,
        choice: &ProtocolChoice,
        blocks: &[Block],
    ) -> Result<Scripting, ScriptError> {
        (self.script)(choice, blocks, true)
    }

    /// The always properties a model checker judges (Agreement, Validity,
    /// Integrity, log safety, election safety and atomicity, from the
    /// script's observations): the first one broken, or `None`.
    pub fn judge_observations(run: &Scripting) -> Option<String> {
        let mut ledger = quorum_check::ledger::Ledger::new();
        run.observations
            .iter()
            .find_map(|(node, observation, _)| ledger.observe(*node, observation))
            .map(|broken| format!("{}: {}", broken.kind, broken.what))
    }

    /// For a transaction protocol, the atomicity checker's verdict on a
    /// script's decisions; `None` for the others.
    pub fn judge_script(&self, run: &Scripting) -> Option<String> {
        if self.entry.workload != Workload::Txn {
            return None;
        }
        let observations: Vec<_> =
            run.observations.iter().map(|(n, o, t)| (*n, o.clone(), t.as_micros())).collect();
        let decisions = quorum_check::commit::decisions(&observations);
        let violations = quorum_check::commit::atomicity(&decisions);
        Some(if violations.is_empty() {
            format!("atomicity: ok ({} decisions)", decisions.len())
        } else {
            let each: Vec<String> = violations.iter().map(ToString::to_string).collect();
            format!("atomicity: VIOLATED: {}", each.join("; "))
        })
    }

    /// Start a server node running this protocol, with `overrides` (a JSON
    /// object of `Config` fields) over the protocol's server defaults.
    pub fn serve(&self, config: ServeConfig, overrides: Option<serde_json::Value>) -> Result<Serving, Error> {
        let serve =
            self.serve.ok_or_else(|| Error(format!("the server does not run '{}'", self.entry.name)))?;
        Ok(serve(config, overrides))
    }
}
