//! Protocol names → types. The one place that knows both; the simulator and
//! the protocols know nothing of each other's names.

use quorum_protocols::catalog::{self, Entry};
use quorum_protocols::replication::{abd, asynchronous, primary_backup, sync};
use quorum_sim::{RunOutcome, SimConfig};

use crate::UsageError;

/// A protocol chosen on the command line, with its variant.
#[derive(Clone, Debug)]
pub enum Selected {
    Sync,
    Async,
    PrimaryBackup(primary_backup::Variant),
    Abd,
}

impl Selected {
    pub fn parse(name: &str, variant: Option<&str>) -> Result<Selected, UsageError> {
        let entry = catalog::find(name).ok_or_else(|| {
            let names: Vec<&str> = catalog::ENTRIES.iter().map(|e| e.name).collect();
            UsageError(format!("unknown protocol '{name}' (expected one of: {})", names.join(", ")))
        })?;
        if let Some(v) = variant {
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
        }
        Ok(match name {
            "sync" => Selected::Sync,
            "async" => Selected::Async,
            "primary-backup" => Selected::PrimaryBackup(match variant.unwrap_or("sync") {
                "async" => primary_backup::Variant::Async,
                _ => primary_backup::Variant::Sync,
            }),
            "abd" => Selected::Abd,
            other => unreachable!("catalogue entry '{other}' has no type"),
        })
    }

    pub fn entry(&self) -> &'static Entry {
        catalog::find(self.name()).expect("every selection is in the catalogue")
    }

    pub fn name(&self) -> &'static str {
        match self {
            Selected::Sync => "sync",
            Selected::Async => "async",
            Selected::PrimaryBackup(_) => "primary-backup",
            Selected::Abd => "abd",
        }
    }

    /// The command-line arguments that select it (for replay commands).
    pub fn args(&self) -> String {
        match self {
            Selected::PrimaryBackup(primary_backup::Variant::Sync) => {
                "--protocol primary-backup --variant sync".into()
            }
            Selected::PrimaryBackup(primary_backup::Variant::Async) => {
                "--protocol primary-backup --variant async".into()
            }
            other => format!("--protocol {}", other.name()),
        }
    }

    pub fn run(&self, config: &SimConfig, traced: bool) -> RunOutcome {
        fn go<P: quorum_sim::KvProtocol>(
            config: &SimConfig,
            protocol: &P::Config,
            traced: bool,
        ) -> RunOutcome {
            if traced {
                quorum_sim::run_traced::<P>(config, protocol)
            } else {
                quorum_sim::run::<P>(config, protocol)
            }
        }
        match self {
            Selected::Sync => go::<sync::Synchronous>(config, &Default::default(), traced),
            Selected::Async => go::<asynchronous::Asynchronous>(config, &Default::default(), traced),
            Selected::PrimaryBackup(variant) => {
                let protocol = primary_backup::Config { variant: *variant, ..Default::default() };
                go::<primary_backup::PrimaryBackup>(config, &protocol, traced)
            }
            Selected::Abd => go::<abd::Abd>(config, &Default::default(), traced),
        }
    }
}
