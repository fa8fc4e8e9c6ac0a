//! The node's durable state on disk: `quorum_store`'s write-ahead log, and
//! the identity check that refuses another cluster's (or node's) data.

use anyhow::Context;
use quorum_core::Protocol;
use quorum_store::{check_or_init_meta, FsyncPolicy, NodeMeta, Wal, WalOptions};
use tracing::{info, warn};

use crate::node::Log;
use crate::ServeConfig;

impl Log for Wal {
    fn append(&mut self, record: &[u8]) -> Result<(), String> {
        Wal::append(self, record).map_err(|e| e.to_string())
    }

    fn sync(&mut self) -> Result<(), String> {
        Wal::sync(self).map_err(|e| e.to_string())
    }

    fn checkpoint(&mut self, record: &[u8]) -> Result<(), String> {
        Wal::checkpoint(self, record).map_err(|e| e.to_string())
    }

    fn size(&self) -> u64 {
        self.stats().bytes_on_disk
    }
}

/// An opened log and the records recovered from it, decoded.
pub type Opened<P> = (Box<dyn Log>, Vec<<P as Protocol>::Record>);

/// Open (or create) the data dir, check it belongs to this node of this
/// cluster, recover the log and decode it into the protocol's records.
pub fn open<P: Protocol>(config: &ServeConfig) -> anyhow::Result<Opened<P>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let meta = NodeMeta {
        cluster_id: config.cluster_id.clone(),
        node_id: config.id.0,
        protocol: Some(config.protocol.to_string()),
    };
    check_or_init_meta(&config.data_dir, &meta)?;
    let options = WalOptions {
        fsync: if config.fsync { FsyncPolicy::Always } else { FsyncPolicy::Never },
        // Zero-filled segments only pay off when fdatasync runs.
        preallocate: config.fsync && config.preallocate,
        ..Default::default()
    };
    if !config.fsync {
        warn!("fsync is off: acknowledged writes can be lost in a crash (for experiments only)");
    }
    let (wal, recovered) = Wal::open(&config.data_dir, options)?;
    if let Some(torn) = &recovered.torn_tail {
        warn!(file = %torn.file.display(), offset = torn.offset, bytes = torn.bytes_dropped, "truncated a torn record at the log's tail (it was never acknowledged)");
    }
    let mut durable = Vec::with_capacity(recovered.records.len() + 1);
    if let Some(bytes) = &recovered.checkpoint {
        durable.push(postcard::from_bytes(bytes).with_context(|| {
            format!(
                "the snapshot in {} is not a {} checkpoint (was this data dir written by another protocol?)",
                config.data_dir.display(),
                config.protocol
            )
        })?);
    }
    for (i, bytes) in recovered.records.iter().enumerate() {
        durable.push(postcard::from_bytes(bytes).with_context(|| {
            format!(
                "log record {i} after the snapshot in {} is not a {} record (another protocol's data dir?)",
                config.data_dir.display(),
                config.protocol
            )
        })?);
    }
    info!(records = recovered.records.len(), snapshot = recovered.checkpoint.is_some(), "recovered the log");
    Ok((Box::new(wal), durable))
}
