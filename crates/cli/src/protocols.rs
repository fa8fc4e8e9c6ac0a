//! Protocol names → types. The one place that knows both; the simulator and
//! the protocols know nothing of each other's names.

use quorum_core::KvStore;
use quorum_protocols::catalog::{self, Entry};
use quorum_protocols::commit::{three_pc, two_pc};
use quorum_protocols::replication::{abd, asynchronous, primary_backup, sync};
use quorum_protocols::{paxos, raft, zab};
use quorum_sim::script::{Block, ScriptError, Scripted};
use quorum_sim::{KvProtocol, ProtocolChoice, RunOutcome, SimConfig, TxnWorkload};
use serde::de::DeserializeOwned;

use crate::UsageError;

/// A protocol chosen on the command line, with its settings.
#[derive(Clone, Debug)]
pub struct Selected {
    entry: &'static Entry,
    kind: Kind,
    /// The choice as plain data, for the simulator's replays.
    choice: ProtocolChoice,
}

#[derive(Clone, Debug)]
enum Kind {
    Sync(sync::Config),
    Async(asynchronous::Config),
    PrimaryBackup(primary_backup::Config),
    Abd(abd::Config),
    Paxos(paxos::single::Config),
    MultiPaxos(paxos::multi::Config),
    Raft(raft::Config),
    Zab(zab::Config),
    TwoPc(two_pc::Config),
    ThreePc(three_pc::Config),
}

/// What a script run produced.
pub struct Scripting {
    /// Each block's output.
    pub outputs: Vec<String>,
    pub observations: Vec<(quorum_core::NodeId, quorum_core::Observation, quorum_core::Time)>,
}

/// Settings from the command line: `--variant`, `--bug`, `--config JSON`.
#[derive(Clone, Debug, Default)]
pub struct Settings<'a> {
    pub variant: Option<&'a str>,
    pub bug: Option<&'a str>,
    pub config: Option<&'a str>,
}

impl Selected {
    pub fn parse(name: &str, settings: &Settings<'_>) -> Result<Selected, UsageError> {
        let entry = catalog::find(name).ok_or_else(|| {
            let names: Vec<&str> = catalog::ENTRIES.iter().map(|e| e.name).collect();
            UsageError(format!("unknown protocol '{name}' (expected one of: {})", names.join(", ")))
        })?;
        let mut json = match settings.config {
            Some(text) => serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| UsageError(format!("--config is not JSON: {e}")))?,
            None => serde_json::json!({}),
        };
        if !json.is_object() {
            return Err(UsageError("--config must be a JSON object".into()));
        }
        let mut choice = ProtocolChoice::named(name);
        if let Some(v) = settings.variant {
            if !entry.variants.contains(&v) {
                return Err(UsageError(if entry.variants.is_empty() {
                    format!("protocol '{name}' has no variants (got --variant {v})")
                } else {
                    format!(
                        "unknown variant '{v}' for '{name}' (expected one of: {})",
                        entry.variants.join(", ")
                    )
                }));
            }
            json["variant"] = v.into();
            choice.variant = Some(v.to_string());
        }
        if let Some(bug) = settings.bug {
            if !entry.bugs.contains(&bug) {
                return Err(UsageError(if entry.bugs.is_empty() {
                    format!("protocol '{name}' has no --bug variants (got '{bug}')")
                } else {
                    format!("unknown bug '{bug}' for '{name}' (expected one of: {})", entry.bugs.join(", "))
                }));
            }
            json["bug"] = bug.into();
            choice.bug = Some(bug.to_string());
        }
        if let Some(text) = settings.config {
            if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(text) {
                choice.config = fields;
            }
        }
        fn typed<C: DeserializeOwned>(name: &str, json: serde_json::Value) -> Result<C, UsageError> {
            serde_json::from_value(json).map_err(|e| UsageError(format!("bad settings for '{name}': {e}")))
        }
        let kind = match name {
            "sync" => Kind::Sync(typed(name, json)?),
            "async" => Kind::Async(typed(name, json)?),
            "primary-backup" => Kind::PrimaryBackup(typed(name, json)?),
            "abd" => Kind::Abd(typed(name, json)?),
            "paxos" => Kind::Paxos(typed(name, json)?),
            "multi-paxos" => Kind::MultiPaxos(typed(name, json)?),
            "raft" => Kind::Raft(typed(name, json)?),
            "zab" => Kind::Zab(typed(name, json)?),
            "2pc" => Kind::TwoPc(typed(name, json)?),
            "3pc" => Kind::ThreePc(typed(name, json)?),
            other => unreachable!("catalogue entry '{other}' has no type"),
        };
        Ok(Selected { entry, kind, choice })
    }

    /// Client retries (same request id) by default: on for protocols whose
    /// client sessions promise exactly-once application of a retried command.
    pub fn default_retries(&self) -> u32 {
        match self.kind {
            Kind::Raft(_) => 2,
            _ => 0,
        }
    }

    pub fn entry(&self) -> &'static Entry {
        self.entry
    }

    /// The choice as plain data (for the simulator and its replays).
    pub fn choice(&self) -> ProtocolChoice {
        self.choice.clone()
    }

    /// Run a script's blocks against this protocol: each block's output,
    /// and every observation the nodes made.
    pub fn script(&self, blocks: &[Block]) -> Result<Scripting, ScriptError> {
        fn go<P: quorum_core::Protocol>(
            config: &P::Config,
            blocks: &[Block],
        ) -> Result<Scripting, ScriptError>
        where
            P::Request: std::str::FromStr,
            <P::Request as std::str::FromStr>::Err: std::fmt::Display,
        {
            let mut cluster = Scripted::<P>::new(config.clone());
            let outputs = cluster.run_blocks(blocks)?;
            Ok(Scripting { outputs, observations: cluster.observations().to_vec() })
        }
        match &self.kind {
            Kind::Sync(c) => go::<sync::Synchronous>(c, blocks),
            Kind::Async(c) => go::<asynchronous::Asynchronous>(c, blocks),
            Kind::PrimaryBackup(c) => go::<primary_backup::PrimaryBackup>(c, blocks),
            Kind::Abd(c) => go::<abd::Abd>(c, blocks),
            Kind::Paxos(c) => go::<paxos::single::Paxos<KvStore>>(c, blocks),
            Kind::MultiPaxos(c) => go::<paxos::multi::MultiPaxos<KvStore>>(c, blocks),
            Kind::Raft(c) => go::<raft::Raft<KvStore>>(c, blocks),
            Kind::Zab(c) => go::<zab::Zab<KvStore>>(c, blocks),
            Kind::TwoPc(c) => go::<two_pc::TwoPhaseCommit>(c, blocks),
            Kind::ThreePc(c) => go::<three_pc::ThreePhaseCommit>(c, blocks),
        }
    }

    /// For the atomic-commit protocols, the atomicity checker's verdict on a
    /// script's `TxnDecided` observations; `None` for the others.
    pub fn judge_script(&self, run: &Scripting) -> Option<String> {
        if !matches!(self.kind, Kind::TwoPc(_) | Kind::ThreePc(_)) {
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

    /// The protocol's verdict on its settings for a cluster of `nodes`.
    pub fn validate(&self, nodes: u32) -> Result<(), UsageError> {
        fn go<P: quorum_core::Protocol>(
            name: &str,
            config: &P::Config,
            nodes: u32,
        ) -> Result<(), UsageError> {
            let members: Vec<quorum_core::NodeId> = (0..nodes).map(quorum_core::NodeId).collect();
            P::validate(config, &members).map_err(|e| UsageError(format!("bad settings for '{name}': {e}")))
        }
        let name = self.entry.name;
        match &self.kind {
            Kind::Sync(c) => go::<sync::Synchronous>(name, c, nodes),
            Kind::Async(c) => go::<asynchronous::Asynchronous>(name, c, nodes),
            Kind::PrimaryBackup(c) => go::<primary_backup::PrimaryBackup>(name, c, nodes),
            Kind::Abd(c) => go::<abd::Abd>(name, c, nodes),
            Kind::Paxos(c) => go::<paxos::single::Paxos<KvStore>>(name, c, nodes),
            Kind::MultiPaxos(c) => go::<paxos::multi::MultiPaxos<KvStore>>(name, c, nodes),
            Kind::Raft(c) => go::<raft::Raft<KvStore>>(name, c, nodes),
            Kind::Zab(c) => go::<zab::Zab<KvStore>>(name, c, nodes),
            Kind::TwoPc(c) => go::<two_pc::TwoPhaseCommit>(name, c, nodes),
            Kind::ThreePc(c) => go::<three_pc::ThreePhaseCommit>(name, c, nodes),
        }
    }

    /// One run; `validate` must have passed for `config.nodes`.
    pub fn run(&self, config: &SimConfig, traced: bool) -> RunOutcome {
        self.try_run(config, traced).expect("settings validated before the run")
    }

    fn try_run(&self, config: &SimConfig, traced: bool) -> Result<RunOutcome, quorum_sim::RunError> {
        fn go<P: KvProtocol>(
            config: &SimConfig,
            protocol: &P::Config,
            traced: bool,
        ) -> Result<RunOutcome, quorum_sim::RunError> {
            if traced {
                quorum_sim::run_traced::<P>(config, protocol)
            } else {
                quorum_sim::run::<P>(config, protocol)
            }
        }
        match &self.kind {
            Kind::Sync(c) => go::<sync::Synchronous>(config, c, traced),
            Kind::Async(c) => go::<asynchronous::Asynchronous>(config, c, traced),
            Kind::PrimaryBackup(c) => go::<primary_backup::PrimaryBackup>(config, c, traced),
            Kind::Abd(c) => go::<abd::Abd>(config, c, traced),
            Kind::Paxos(c) => go::<paxos::single::Paxos<KvStore>>(config, c, traced),
            Kind::MultiPaxos(c) => go::<paxos::multi::MultiPaxos<KvStore>>(config, c, traced),
            Kind::Raft(c) => go::<raft::Raft<KvStore>>(config, c, traced),
            Kind::Zab(c) => go::<zab::Zab<KvStore>>(config, c, traced),
            Kind::TwoPc(c) => quorum_sim::run_with::<two_pc::TwoPhaseCommit, TxnWorkload>(config, c, traced),
            Kind::ThreePc(c) => {
                quorum_sim::run_with::<three_pc::ThreePhaseCommit, TxnWorkload>(config, c, traced)
            }
        }
    }
}
