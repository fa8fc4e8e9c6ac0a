//! The one error type of the crate.

use std::io;
use std::path::{Path, PathBuf};

use crate::meta::NodeMeta;

/// Everything that can go wrong opening, writing or recovering a data dir.
///
/// Every variant names the file it is about, so an operator reading the
/// message knows where to look without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused an operation on `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Bytes that were once durable no longer verify. Recovery refuses to go
    /// on rather than silently drop synced records: the data dir needs an
    /// operator (restore from a peer, or remove the node and re-add it).
    #[error("corrupt record in {} at byte {offset}: {reason}", file.display())]
    Corrupt { file: PathBuf, offset: u64, reason: String },

    /// The data dir belongs to another node or cluster (or holds a log but no
    /// identity file). Starting would splice a foreign log into this node.
    #[error("data dir {} does not belong to this node: {}", path.display(), describe_mismatch(expected, found.as_deref()))]
    Mismatch { path: PathBuf, expected: Box<NodeMeta>, found: Option<Box<NodeMeta>> },

    /// Another process has the data dir open (it holds `LOCK`). Two writers
    /// on one log would interleave their records and corrupt it.
    #[error("data dir {} is in use by another process (it holds the lock on {})", path.parent().unwrap_or(path).display(), path.display())]
    Locked { path: PathBuf },

    /// A record larger than [`RECORD_BYTES_MAX`](crate::RECORD_BYTES_MAX), or a checkpoint
    /// larger than [`SNAPSHOT_BYTES_MAX`](crate::SNAPSHOT_BYTES_MAX).
    #[error("record of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge { bytes: u64, limit: u64 },
}

fn describe_mismatch(expected: &NodeMeta, found: Option<&NodeMeta>) -> String {
    let who = |meta: &NodeMeta| {
        let protocol = meta.protocol.as_deref().map(|p| format!(" running {p}")).unwrap_or_default();
        format!("cluster {:?} node {}{protocol}", meta.cluster_id, meta.node_id)
    };
    match found {
        Some(found) => format!("it was initialised for {}, but this node is {}", who(found), who(expected)),
        None => format!(
            "it holds write-ahead log files but no meta.json, so it cannot be proven to belong to \
             cluster {:?} node {}",
            expected.cluster_id, expected.node_id
        ),
    }
}

impl StoreError {
    pub(crate) fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        StoreError::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub(crate) fn corrupt(file: impl AsRef<Path>, offset: u64, reason: impl Into<String>) -> Self {
        StoreError::Corrupt { file: file.as_ref().to_path_buf(), offset, reason: reason.into() }
    }
}

/// `result.at(path)`: attach the path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::io(path, source))
    }
}
