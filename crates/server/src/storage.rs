//! The node's durable state on disk: `quorum_store`'s write-ahead log, the
//! identity check that refuses another cluster's (or node's) data, and the
//! incarnations that tell a node whose disk was replaced from a new one.
//!
//! **Why incarnations.** Raft and Zab are safe only if a node never forgets
//! what it persisted: its term, its vote, the entries it acknowledged. A
//! node whose disk was replaced and that starts again under its old id has
//! forgotten all three: it can vote a second time in a term it voted in
//! (two leaders in one term, Raft §5.2), and the majority that committed an
//! entry may, counting it, no longer hold that entry (a committed write
//! lost, §5.4). Each data dir therefore draws a random incarnation when it
//! is initialised; every peer remembers, durably, the incarnation it first
//! accepted a connection from each node id under (`PeerRecords`), and
//! refuses the same id under another one. A fresh data dir asks its peers
//! before it is initialised (a probe) and the node refuses to start if one
//! of them remembers its id.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// The file holding this data dir's incarnation.
pub const INCARNATION_FILE: &str = "incarnation";
/// The file holding the incarnations this node has seen its peers under.
pub const PEERS_FILE: &str = "peers.json";

/// Whether `dir` holds no state of this node yet: no identity file, so no
/// log either (`check_or_init_meta` refuses a log without one).
pub fn is_fresh(dir: &Path) -> bool {
    !dir.join(quorum_store::META_FILE).exists()
}

/// This data dir's incarnation, if it has one: a random number drawn when
/// the dir was initialised, which peers remember this node id under. `None`
/// for a fresh dir, and for a dir of an older build (the caller draws one).
pub fn incarnation(dir: &Path, fresh: bool) -> anyhow::Result<Option<u64>> {
    let path = dir.join(INCARNATION_FILE);
    if fresh {
        return Ok(None);
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(text.trim().parse().with_context(|| format!("{} is not a number", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Write the incarnation, durably, before anything else of a fresh dir.
pub fn write_incarnation(dir: &Path, incarnation: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    write_atomically(dir, INCARNATION_FILE, format!("{incarnation}\n").as_bytes())
}

/// Write `dir/name` atomically and durably (temp file, fsync, rename, dir fsync).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// The incarnation each peer was first seen under (`peers.json`), kept
/// durable before a connection from a newly seen peer is accepted. A peer
/// that comes back under another incarnation has lost its data dir: it
/// forgot its votes and the entries it acknowledged, and is refused.
pub struct PeerRecords {
    dir: PathBuf,
    seen: Mutex<BTreeMap<u32, u64>>,
}

/// What a peer's handshake gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Seen before under this incarnation.
    Known,
    /// Never seen: recorded now (or, for a probe, not).
    New,
    /// Seen before under another incarnation.
    Replaced { remembered: u64 },
}

impl PeerRecords {
    pub fn open(dir: &Path) -> anyhow::Result<PeerRecords> {
        let path = dir.join(PEERS_FILE);
        let seen = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a map of node ids to incarnations", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(PeerRecords { dir: dir.to_path_buf(), seen: Mutex::new(seen) })
    }

    /// Judge `peer` presenting `incarnation`; a new one is recorded
    /// durably unless `probe`. An error is a failed write: refuse the peer.
    pub fn admit(&self, peer: u32, incarnation: u64, probe: bool) -> anyhow::Result<Admission> {
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match seen.get(&peer) {
            Some(known) if *known == incarnation => return Ok(Admission::Known),
            Some(known) => return Ok(Admission::Replaced { remembered: *known }),
            None if probe => return Ok(Admission::New),
            None => {}
        }
        let mut updated = seen.clone();
        updated.insert(peer, incarnation);
        let json = serde_json::to_vec_pretty(&updated).expect("a map of integers serializes");
        write_atomically(&self.dir, PEERS_FILE, &json)?;
        *seen = updated;
        Ok(Admission::New)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_remembered_across_restarts_and_refused_under_another_incarnation() {
        let dir = tempfile::tempdir().unwrap();
        let records = PeerRecords::open(dir.path()).unwrap();
        // A probe records nothing.
        assert_eq!(records.admit(1, 7, true).unwrap(), Admission::New);
        assert_eq!(records.admit(1, 8, true).unwrap(), Admission::New);
        assert_eq!(records.admit(1, 7, false).unwrap(), Admission::New);
        assert_eq!(records.admit(1, 7, false).unwrap(), Admission::Known);
        let reopened = PeerRecords::open(dir.path()).unwrap();
        assert_eq!(reopened.admit(1, 7, false).unwrap(), Admission::Known);
        assert_eq!(reopened.admit(1, 8, true).unwrap(), Admission::Replaced { remembered: 7 });
        assert_eq!(reopened.admit(1, 8, false).unwrap(), Admission::Replaced { remembered: 7 });
        assert_eq!(reopened.admit(2, 8, false).unwrap(), Admission::New);
    }

    #[test]
    fn a_fresh_dir_has_no_incarnation_and_a_written_one_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_fresh(dir.path()));
        assert_eq!(incarnation(dir.path(), true).unwrap(), None);
        write_incarnation(dir.path(), 42).unwrap();
        assert_eq!(incarnation(dir.path(), false).unwrap(), Some(42));
        // Fresh (no meta.json) means a new incarnation whatever is there.
        assert_eq!(incarnation(dir.path(), true).unwrap(), None);
    }
}
