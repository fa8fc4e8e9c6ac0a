//! The write-ahead log: append, group-commit sync, checkpoint, recovery.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, StoreError};
use crate::format::{
    self, SegmentContents, SegmentHeader, SegmentRole, FRAME_HEADER_LEN, RECORD_BYTES_MAX,
    SEGMENT_HEADER_LEN, SNAPSHOT_HEADER_LEN,
};
use crate::fsutil::{self, Entry};

/// Buffered bytes past which [`Wal::append`] syncs before buffering more.
/// Bounds the writer's memory and keeps a frame's batch delta well inside
/// its `u32` field.
pub const BATCH_BYTES_MAX: usize = 64 << 20;

/// Largest sequence number a file may carry: far beyond any real log
/// (one segment a nanosecond for a century is under 2^62), and low enough
/// that `seq + 2` never overflows.
const SEQ_MAX: u64 = u64::MAX / 2;

/// Whether [`Wal::sync`] forces records to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fdatasync on every sync, fsync on every new file and directory change.
    /// A record is on stable storage when `sync` returns.
    #[default]
    Always,
    /// No fsync of any kind. Records survive a crash of the process (the
    /// kernel holds them) but not of the machine, after which recovery may
    /// even refuse the log. For experiments that measure what fsync costs.
    Never,
}

/// How the log is laid out and made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is sealed and a new one started once a sync leaves the
    /// current one at or past this many bytes (a sync never splits a batch,
    /// so segments overshoot by up to one batch).
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: 64 << 20, fsync: FsyncPolicy::Always }
    }
}

/// What [`Wal::open`] recovered, ready for the protocol's `start(.., durable, ..)`:
/// the checkpoint record (if any) followed by `records`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest durable checkpoint record.
    pub checkpoint: Option<Vec<u8>>,
    /// Every durable record appended after it, in append order.
    pub records: Vec<Vec<u8>>,
    /// What recovery cut off the end of the log, if anything.
    pub torn_tail: Option<TornTail>,
}

/// A torn final write that recovery truncated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    /// Where the file now ends: the first byte that did not verify.
    pub offset: u64,
    pub bytes_dropped: u64,
}

/// Counters for metrics and for deciding when to checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Live segment files (the one being appended to included).
    pub segments: u64,
    /// Segments and snapshot, as written (buffered records excluded).
    pub bytes_on_disk: u64,
    /// Records in the log after the latest checkpoint: recovered plus synced since.
    pub records_since_checkpoint: u64,
    /// Calls to [`Wal::sync`] that wrote something, since open.
    pub syncs: u64,
    /// Time spent writing and fdatasyncing in those calls.
    pub sync_time_total: Duration,
}

/// A segmented, checksummed, group-committed write-ahead log in one directory.
///
/// One writer owns it (the server's writer thread); it is `Send` but not
/// shared. See the crate docs for the on-disk layout and the recovery rules.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// The segment being appended to, positioned at `segment_end`.
    segment: File,
    segment_path: PathBuf,
    segment_seq: u64,
    /// CRC seed of the current segment's frames.
    seed: u32,
    /// Bytes of the current segment written so far (durable under `Always`).
    segment_end: u64,
    /// First live segment: segments `[first_segment_seq, segment_seq]` hold
    /// the records after the checkpoint.
    first_segment_seq: u64,
    snapshot_seq: Option<u64>,
    /// Frames appended since the last sync, encoded, written by one `write`.
    buffer: Vec<u8>,
    buffered_records: u64,
    sealed_bytes: u64,
    snapshot_bytes: u64,
    records_since_checkpoint: u64,
    syncs: u64,
    sync_time_total: Duration,
    /// Set when a write or fsync failed: the kernel may have dropped dirty
    /// pages and cleared the error (the 2018 "fsyncgate"), so retrying could
    /// report durability that does not exist. Reopen to recover from disk.
    poisoned: bool,
}

impl Wal {
    /// Opens (creating if empty) the log in `dir` and recovers it.
    ///
    /// Leftover temp files are removed, a torn tail of the last segment is
    /// truncated (and reported), and files superseded by the latest checkpoint
    /// are deleted. Damage to anything that was synced is refused with
    /// [`StoreError::Corrupt`] naming the file and byte offset.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovered), StoreError> {
        fs::create_dir_all(dir).at(dir)?;
        let mut segments = BTreeMap::new();
        let mut snapshots = BTreeMap::new();
        let mut obsolete = Vec::new();
        for (path, entry) in fsutil::list(dir)? {
            if let Entry::Segment(seq) | Entry::Snapshot(seq) = entry {
                if seq > SEQ_MAX {
                    return Err(StoreError::corrupt(
                        &path,
                        0,
                        format!("sequence number {seq} is out of range"),
                    ));
                }
            }
            match entry {
                Entry::Segment(seq) => {
                    segments.insert(seq, path);
                }
                Entry::Snapshot(seq) => {
                    snapshots.insert(seq, path);
                }
                // Left by a crash before a rename: never part of the log, and
                // removed first, since creating a segment reuses the name.
                Entry::Temp => fsutil::remove(&path)?,
                Entry::Other => {}
            }
        }
        let snapshot = match snapshots.pop_last() {
            Some((seq, path)) => Some(load_snapshot(seq, &path)?),
            None => None,
        };
        obsolete.extend(snapshots.into_values());
        let snapshot_seq = snapshot.as_ref().map(|(seq, _, _)| *seq);
        // Invariant: segments `(base_seq, ..]` are the log after the checkpoint.
        let base_seq = snapshot_seq.unwrap_or(0);
        let live = segments.split_off(&(base_seq + 1));
        obsolete.extend(segments.into_values());

        let mut recovered = Recovered::default();
        let mut sealed_bytes = 0;
        let mut tail = None;
        let mut expected_seq = base_seq + 1;
        let live_count = live.len();
        for (index, (seq, path)) in live.into_iter().enumerate() {
            if seq != expected_seq {
                return Err(StoreError::corrupt(
                    &path,
                    0,
                    format!(
                        "segment {} is missing: the log jumps from {expected_seq} to {seq}",
                        fsutil::segment_name(expected_seq)
                    ),
                ));
            }
            expected_seq += 1;
            let role = if index + 1 == live_count { SegmentRole::Last } else { SegmentRole::Sealed };
            let contents = read_segment_file(seq, &path, role)?;
            recovered.records.extend(contents.records);
            if role == SegmentRole::Sealed {
                sealed_bytes += contents.valid_bytes;
            } else {
                tail = Some((seq, path, contents.valid_bytes, contents.torn_bytes));
            }
        }
        let (segment, segment_path, segment_seq, seed, segment_end) = match tail {
            Some((seq, path, valid_bytes, torn_bytes)) => {
                if torn_bytes > 0 {
                    truncate_torn_tail(&path, valid_bytes, torn_bytes, options.fsync)?;
                    recovered.torn_tail =
                        Some(TornTail { file: path.clone(), offset: valid_bytes, bytes_dropped: torn_bytes });
                }
                let (file, seed) = reopen_segment(&path, valid_bytes)?;
                (file, path, seq, seed, valid_bytes)
            }
            None => {
                let (file, path, seed) = create_segment(dir, expected_seq, options.fsync)?;
                (file, path, expected_seq, seed, SEGMENT_HEADER_LEN as u64)
            }
        };
        // Superseded files: recovery ignores them, so deleting them need not
        // be durable; the next directory fsync persists it.
        for path in obsolete {
            fsutil::remove(&path)?;
        }
        let (snapshot_bytes, checkpoint) = match snapshot {
            Some((_, bytes, record)) => (bytes, Some(record)),
            None => (0, None),
        };
        recovered.checkpoint = checkpoint;
        let first_segment_seq = base_seq + 1;
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segment,
            segment_path,
            segment_seq,
            seed,
            segment_end,
            first_segment_seq,
            snapshot_seq,
            buffer: Vec::new(),
            buffered_records: 0,
            sealed_bytes,
            snapshot_bytes,
            records_since_checkpoint: recovered.records.len() as u64,
            syncs: 0,
            sync_time_total: Duration::ZERO,
            poisoned: false,
        };
        tracing::info!(
            dir = %dir.display(),
            checkpoint_bytes = recovered.checkpoint.as_ref().map_or(0, Vec::len),
            records = recovered.records.len(),
            segments = segment_seq + 1 - first_segment_seq,
            torn_tail = recovered.torn_tail.is_some(),
            "write-ahead log recovered"
        );
        Ok((wal, recovered))
    }

    /// Buffers one record (length-prefixed, CRC32C). Not durable until
    /// [`sync`](Self::sync) returns.
    ///
    /// No I/O unless the buffer already holds [`BATCH_BYTES_MAX`] bytes, in
    /// which case the buffered records are synced first (syncing early never
    /// breaks the durability contract).
    pub fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.check_usable()?;
        check_size(record)?;
        if !self.buffer.is_empty() && self.buffer.len() + FRAME_HEADER_LEN + record.len() > BATCH_BYTES_MAX {
            self.sync()?;
        }
        let offset = self.segment_end + self.buffer.len() as u64;
        // Lossless: the buffer never holds more than BATCH_BYTES_MAX < 4 GiB before a frame.
        let batch_delta = self.buffer.len() as u32;
        format::encode_frame(&mut self.buffer, self.seed, offset, batch_delta, record);
        self.buffered_records += 1;
        Ok(())
    }

    /// Writes every buffered record with one `write` and makes them durable
    /// with one fdatasync (group commit). Does nothing if nothing is buffered.
    /// Rolls to a new segment when the current one reaches `segment_bytes`.
    ///
    /// On error the log is unusable (every later call fails): whether the
    /// records reached the disk is unknown, and only recovery can tell.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.poison_on_error(Wal::write_and_sync)?;
        if self.segment_end >= self.options.segment_bytes {
            self.poison_on_error(Wal::roll)?;
        }
        Ok(())
    }

    /// Atomically replaces the whole log with `record`; durable when it
    /// returns. Records appended but not yet synced are superseded (dropped).
    ///
    /// The snapshot is written to a temp file, fsynced, renamed into place and
    /// the directory fsynced: that rename is the commit point, so a crash
    /// leaves the old log or the new one, never a mix. Then a fresh segment is
    /// started and the older segments and snapshot are deleted (compaction).
    /// On error the log is unusable, and the checkpoint may or may not have
    /// committed: reopen to find out.
    pub fn checkpoint(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.check_usable()?;
        check_size(record)?;
        self.buffer.clear();
        self.buffered_records = 0;
        self.poison_on_error(|wal| wal.write_checkpoint(record))
    }

    pub fn stats(&self) -> WalStats {
        WalStats {
            segments: self.segment_seq + 1 - self.first_segment_seq,
            bytes_on_disk: self.sealed_bytes + self.segment_end + self.snapshot_bytes,
            records_since_checkpoint: self.records_since_checkpoint,
            syncs: self.syncs,
            sync_time_total: self.sync_time_total,
        }
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::io(
                &self.segment_path,
                std::io::Error::other(
                    "the write-ahead log failed an earlier write or fsync; reopen it to recover",
                ),
            ));
        }
        Ok(())
    }

    fn poison_on_error<T>(
        &mut self,
        step: impl FnOnce(&mut Wal) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = step(self);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn write_and_sync(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.segment.write_all(&self.buffer).at(&self.segment_path)?;
        if self.options.fsync == FsyncPolicy::Always {
            self.segment.sync_data().at(&self.segment_path)?;
        }
        self.sync_time_total += started.elapsed();
        self.syncs += 1;
        self.segment_end += self.buffer.len() as u64;
        self.records_since_checkpoint += self.buffered_records;
        self.buffer.clear();
        self.buffered_records = 0;
        Ok(())
    }

    /// Seals the current segment (already synced to its last byte) and starts the next.
    fn roll(&mut self) -> Result<(), StoreError> {
        let seq = self.segment_seq + 1;
        let (file, path, seed) = create_segment(&self.dir, seq, self.options.fsync)?;
        tracing::debug!(sealed = %self.segment_path.display(), bytes = self.segment_end, next = %path.display(), "segment rolled");
        self.sealed_bytes += self.segment_end;
        self.install_segment(file, path, seq, seed);
        Ok(())
    }

    fn install_segment(&mut self, file: File, path: PathBuf, seq: u64, seed: u32) {
        self.segment = file;
        self.segment_path = path;
        self.segment_seq = seq;
        self.seed = seed;
        self.segment_end = SEGMENT_HEADER_LEN as u64;
    }

    fn write_checkpoint(&mut self, record: &[u8]) -> Result<(), StoreError> {
        let snapshot_seq = self.segment_seq + 1;
        let name = fsutil::snapshot_name(snapshot_seq);
        let header = format::encode_snapshot_header(snapshot_seq, record);
        let sync = self.options.fsync == FsyncPolicy::Always;
        let (_, tmp) = fsutil::write_temp(&self.dir, &name, &[&header, record], sync)?;
        let path = self.dir.join(&name);
        fs::rename(&tmp, &path).at(&path)?;
        if sync {
            fsutil::fsync_dir(&self.dir)?;
        }
        // Committed: from here on recovery reads this snapshot and ignores
        // every older file.
        let (file, segment_path, seed) = create_segment(&self.dir, snapshot_seq + 1, self.options.fsync)?;
        let old_segments = self.first_segment_seq..=self.segment_seq;
        let old_snapshot = self.snapshot_seq.replace(snapshot_seq);
        self.install_segment(file, segment_path, snapshot_seq + 1, seed);
        self.first_segment_seq = snapshot_seq + 1;
        self.sealed_bytes = 0;
        self.snapshot_bytes = (SNAPSHOT_HEADER_LEN + record.len()) as u64;
        self.records_since_checkpoint = 0;
        let stale = old_segments
            .map(|seq| self.dir.join(fsutil::segment_name(seq)))
            .chain(old_snapshot.map(|seq| self.dir.join(fsutil::snapshot_name(seq))));
        for stale_path in stale {
            // Not fatal: recovery ignores and deletes superseded files.
            if let Err(error) = fsutil::remove(&stale_path) {
                tracing::warn!(%error, "could not delete a superseded log file");
            }
        }
        tracing::debug!(snapshot = %path.display(), bytes = record.len(), "checkpoint committed");
        Ok(())
    }
}

fn check_size(record: &[u8]) -> Result<(), StoreError> {
    if record.len() > RECORD_BYTES_MAX {
        return Err(StoreError::TooLarge { bytes: record.len() as u64, limit: RECORD_BYTES_MAX as u64 });
    }
    Ok(())
}

/// Reads and verifies snapshot `seq`: `(seq, file bytes, record)`.
fn load_snapshot(seq: u64, path: &Path) -> Result<(u64, u64, Vec<u8>), StoreError> {
    let bytes = fs::read(path).at(path)?;
    let (header_seq, record) = format::read_snapshot(path, &bytes)?;
    if header_seq != seq {
        return Err(StoreError::corrupt(
            path,
            16,
            format!("snapshot header says sequence {header_seq}, the file name says {seq}"),
        ));
    }
    Ok((seq, bytes.len() as u64, record.to_vec()))
}

fn read_segment_file(seq: u64, path: &Path, role: SegmentRole) -> Result<SegmentContents, StoreError> {
    let bytes = fs::read(path).at(path)?;
    let contents = format::read_segment(path, &bytes, role)?;
    if contents.seq != seq {
        return Err(StoreError::corrupt(
            path,
            16,
            format!("segment header says sequence {}, the file name says {seq}", contents.seq),
        ));
    }
    Ok(contents)
}

fn truncate_torn_tail(
    path: &Path,
    valid_bytes: u64,
    torn_bytes: u64,
    fsync: FsyncPolicy,
) -> Result<(), StoreError> {
    tracing::warn!(
        file = %path.display(),
        offset = valid_bytes,
        bytes_dropped = torn_bytes,
        "truncating a torn write at the end of the write-ahead log (records never acknowledged as synced)"
    );
    let file = OpenOptions::new().write(true).open(path).at(path)?;
    file.set_len(valid_bytes).at(path)?;
    if fsync == FsyncPolicy::Always {
        file.sync_all().at(path)?;
    }
    Ok(())
}

/// Opens an existing segment for appending at `end`; returns it and its seed.
fn reopen_segment(path: &Path, end: u64) -> Result<(File, u32), StoreError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    std::io::Read::read_exact(&mut file, &mut header).at(path)?;
    let seed = SegmentHeader::decode(&header).map_err(|reason| StoreError::corrupt(path, 0, reason))?.seed();
    file.seek(SeekFrom::Start(end)).at(path)?;
    Ok((file, seed))
}

/// Creates segment `seq` holding only its header, atomically (temp file,
/// fsync, rename, directory fsync), so a segment file never exists without a
/// whole header. Returns the file positioned after the header.
fn create_segment(dir: &Path, seq: u64, fsync: FsyncPolicy) -> Result<(File, PathBuf, u32), StoreError> {
    let header = SegmentHeader { seq, salt: fresh_salt(seq) };
    let name = fsutil::segment_name(seq);
    let sync = fsync == FsyncPolicy::Always;
    let (file, tmp) = fsutil::write_temp(dir, &name, &[&header.encode()], sync)?;
    let path = dir.join(&name);
    fs::rename(&tmp, &path).at(&path)?;
    if sync {
        fsutil::fsync_dir(dir)?;
    }
    Ok((file, path, header.seed()))
}

/// A salt no other segment (of this node or any other) is likely to share.
/// Not a secret, only unpredictable enough that no client can craft a record
/// payload that verifies as a frame.
fn fresh_salt(seq: u64) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(seq);
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos()));
    hasher.write_u32(std::process::id());
    hasher.finish() as u32
}
