//! File names and the few filesystem rituals durability needs.
//!
//! POSIX makes a new or renamed file durable only once its *directory* is
//! fsynced, and makes a rename atomic but not durable. Every helper here
//! says which of the two it gives.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};

const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".log";
const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".bin";
const TMP_SUFFIX: &str = ".tmp";
/// Zero-filled files waiting to become segments. Not `wal-*.log`, so no
/// reader can take one for a segment; `.tmp`, so an open deletes leftovers.
const SPARE_PREFIX: &str = "spare-segment-";

/// `wal-00000000000000000007.log`: zero-padded so `ls` sorts by sequence.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn snapshot_name(seq: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{seq:020}{SNAPSHOT_SUFFIX}")
}

/// `spare-segment-1.tmp`: a preallocated file not yet renamed into a segment.
/// Two names alternate, so the next spare is written while the previous one
/// is still being renamed into place.
pub(crate) fn spare_name(slot: u64) -> String {
    format!("{SPARE_PREFIX}{}{TMP_SUFFIX}", slot % 2)
}

/// What a directory entry is to the log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Segment(u64),
    Snapshot(u64),
    /// A `wal-*.tmp` or `snap-*.tmp` left by a crash before its rename, or
    /// a `spare-segment-*.tmp` that never became a segment.
    Temp,
    /// Anything else (meta.json, an operator's notes): left alone.
    Other,
}

pub(crate) fn classify(name: &str) -> Entry {
    let seq_of = |prefix: &str, suffix: &str| {
        let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse::<u64>().ok()
        } else {
            None
        }
    };
    if let Some(seq) = seq_of(SEGMENT_PREFIX, SEGMENT_SUFFIX) {
        Entry::Segment(seq)
    } else if let Some(seq) = seq_of(SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
        Entry::Snapshot(seq)
    } else if (name.starts_with(SEGMENT_PREFIX)
        || name.starts_with(SNAPSHOT_PREFIX)
        || name.starts_with(SPARE_PREFIX))
        && name.ends_with(TMP_SUFFIX)
    {
        Entry::Temp
    } else {
        Entry::Other
    }
}

/// Every entry of `dir` with its classification.
pub(crate) fn list(dir: &Path) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let kind = entry.file_name().to_str().map_or(Entry::Other, classify);
        entries.push((entry.path(), kind));
    }
    Ok(entries)
}

/// Does `dir` hold a segment or snapshot (durable log state)?
pub(crate) fn holds_log_files(dir: &Path) -> Result<bool, StoreError> {
    Ok(list(dir)?.iter().any(|(_, kind)| matches!(kind, Entry::Segment(_) | Entry::Snapshot(_))))
}

/// Makes the directory's entries (creations, renames, deletions) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|handle| handle.sync_all()).at(dir)
}

/// Writes `dir/name.tmp` from `parts` (fsynced if `sync`) and returns it,
/// positioned after the last byte, with its path, ready to rename into place.
pub(crate) fn write_temp(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    sync: bool,
) -> Result<(File, PathBuf), StoreError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).at(&tmp)?;
    for part in parts {
        file.write_all(part).at(&tmp)?;
    }
    if sync {
        file.sync_all().at(&tmp)?;
    }
    Ok((file, tmp))
}

/// Atomically and durably installs `dir/name` with `bytes`: after a crash the
/// file is either absent (or its old version) or complete, never partial.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let (_, tmp) = write_temp(dir, name, &[bytes], true)?;
    let path = dir.join(name);
    fs::rename(&tmp, &path).at(&path)?;
    fsync_dir(dir)
}

pub(crate) fn remove(path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(classify(&segment_name(7)), Entry::Segment(7));
        assert_eq!(classify(&snapshot_name(u64::MAX)), Entry::Snapshot(u64::MAX));
        assert_eq!(classify(&format!("{}.tmp", segment_name(3))), Entry::Temp);
        assert_eq!(classify(&spare_name(0)), Entry::Temp);
        assert_eq!(classify(&spare_name(7)), Entry::Temp);
        assert_ne!(spare_name(0), spare_name(1));
        assert_eq!(classify("meta.json"), Entry::Other);
        assert_eq!(classify("meta.json.tmp"), Entry::Other);
        assert_eq!(classify("wal-7.log"), Entry::Other);
        assert_eq!(classify("wal-0000000000000000000x.log"), Entry::Other);
    }
}
