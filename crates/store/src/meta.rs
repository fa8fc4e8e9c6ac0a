//! The node's identity file, `meta.json`.
//!
//! A data dir is stamped with the cluster and node it belongs to on first
//! start. Every later start checks the stamp, so a mistyped `--data-dir` or
//! `--node-id` (two nodes sharing one dir, a dir copied from another cluster)
//! is refused instead of splicing a foreign log into a replica, which would
//! break every safety argument the protocols make.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, StoreError};
use crate::fsutil;

/// File name of the identity file inside the data dir.
pub const META_FILE: &str = "meta.json";
const META_VERSION: u32 = 1;

/// Which node of which cluster a data dir belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub cluster_id: String,
    pub node_id: u32,
    /// The protocol whose records the log holds (`raft`, `zab`): another
    /// protocol would misread them, or read nothing and serve an empty
    /// state. `None` in a meta.json written before it was recorded; that
    /// matches any protocol.
    pub protocol: Option<String>,
}

impl NodeMeta {
    /// Whether a dir stamped `self` may be opened as `other`.
    fn admits(&self, other: &NodeMeta) -> bool {
        self.cluster_id == other.cluster_id
            && self.node_id == other.node_id
            && (self.protocol.is_none() || other.protocol.is_none() || self.protocol == other.protocol)
    }
}

/// The file's shape: the identity plus a format version.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    version: u32,
    cluster_id: String,
    node_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
}

/// Checks that `dir` belongs to `expected`, stamping it on first start.
///
/// - `dir/meta.json` exists: it must name the same cluster id, node id and
///   protocol (where both name one), else [`StoreError::Mismatch`] naming both.
/// - it does not: if `dir` already holds write-ahead log files, the dir is
///   refused (a log without an identity could be anyone's); otherwise
///   `meta.json` is written atomically (temp file, fsync, rename, dir fsync),
///   creating `dir` if needed.
pub fn check_or_init_meta(dir: &Path, expected: &NodeMeta) -> Result<(), StoreError> {
    let path = dir.join(META_FILE);
    match fs::read(&path) {
        Ok(bytes) => check(&path, &bytes, expected),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => init(dir, expected),
        Err(error) => Err(StoreError::io(&path, error)),
    }
}

fn check(path: &Path, bytes: &[u8], expected: &NodeMeta) -> Result<(), StoreError> {
    let file: MetaFile = serde_json::from_slice(bytes).map_err(|error| {
        StoreError::corrupt(
            path,
            0,
            format!("meta.json does not parse (line {}, column {}): {error}", error.line(), error.column()),
        )
    })?;
    if file.version != META_VERSION {
        return Err(StoreError::corrupt(
            path,
            0,
            format!("meta.json has version {}, this build reads version {META_VERSION}", file.version),
        ));
    }
    let found = NodeMeta { cluster_id: file.cluster_id, node_id: file.node_id, protocol: file.protocol };
    if !found.admits(expected) {
        return Err(StoreError::Mismatch {
            path: path.parent().unwrap_or(path).to_path_buf(),
            expected: Box::new(expected.clone()),
            found: Some(Box::new(found)),
        });
    }
    Ok(())
}

fn init(dir: &Path, expected: &NodeMeta) -> Result<(), StoreError> {
    fs::create_dir_all(dir).at(dir)?;
    if fsutil::holds_log_files(dir)? {
        return Err(StoreError::Mismatch {
            path: dir.to_path_buf(),
            expected: Box::new(expected.clone()),
            found: None,
        });
    }
    let file = MetaFile {
        version: META_VERSION,
        cluster_id: expected.cluster_id.clone(),
        node_id: expected.node_id,
        protocol: expected.protocol.clone(),
    };
    let mut json =
        serde_json::to_vec_pretty(&file).expect("a struct of strings and integers always serializes");
    json.push(b'\n');
    fsutil::write_atomically(dir, META_FILE, &json)?;
    tracing::info!(dir = %dir.display(), cluster_id = %expected.cluster_id, node_id = expected.node_id, "initialised data dir");
    Ok(())
}
