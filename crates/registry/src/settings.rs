//! Settings for the server: each servable protocol's defaults for a real
//! disk and network (declared next to the protocol's `Config`), with the
//! operator's `--config` fields over them.

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;

use quorum_protocols::{raft, zab};

/// A protocol `Config`'s defaults for a real server.
pub trait ServerDefaults: Sized {
    fn server_defaults() -> Self;
}

impl ServerDefaults for raft::Config {
    fn server_defaults() -> raft::Config {
        raft::Config::for_server()
    }
}

impl ServerDefaults for zab::Config {
    fn server_defaults() -> zab::Config {
        zab::Config::for_server()
    }
}

/// `defaults` with the fields of `overrides` (a JSON object) over them.
pub(crate) fn merged<C: Serialize + DeserializeOwned>(
    defaults: C,
    overrides: Option<serde_json::Value>,
) -> anyhow::Result<C> {
    let mut merged = serde_json::to_value(defaults)?;
    if let Some(overrides) = overrides {
        let serde_json::Value::Object(fields) = overrides else {
            bail!("the protocol config must be a JSON object")
        };
        for (k, v) in fields {
            merged[k] = v;
        }
    }
    serde_json::from_value(merged).context("bad protocol config")
}
