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
    SEGMENT_HEADER_LEN, SNAPSHOT_BYTES_MAX, SNAPSHOT_HEADER_LEN,
};
use crate::fsutil::{self, Entry};
use crate::spare::{Recyclable, Spare, SparePipeline};

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
    /// Zero-fill every new segment to `segment_bytes` and sync it before its
    /// first record, so that appends overwrite blocks that already exist and
    /// their fdatasync has no file size or extents to journal (on ext4 about
    /// 200 µs instead of 275 µs per 100-byte fdatasync, measured on an idle
    /// disk). A background thread keeps the next segment ready and recycles
    /// the segment each checkpoint makes obsolete; the log holds up to about
    /// three segments' worth of disk beyond its records (the current
    /// segment's unused tail, the spare, a segment waiting to be recycled).
    /// Opening an empty log zero-fills its first segment inline. Logs
    /// written either way are read either way. Pointless with
    /// [`FsyncPolicy::Never`], which never fdatasyncs.
    pub preallocate: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: 64 << 20, fsync: FsyncPolicy::Always, preallocate: true }
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
    /// Segments and snapshot, as written (buffered records excluded; the
    /// unused zero tail of a preallocated segment and the spare excluded).
    pub bytes_on_disk: u64,
    /// Records in the log after the latest checkpoint: recovered plus synced since.
    pub records_since_checkpoint: u64,
    /// Calls to [`Wal::sync`] that wrote something, since open.
    pub syncs: u64,
    /// Time spent writing and fdatasyncing in those calls.
    pub sync_time_total: Duration,
    /// A preallocated segment is ready, so the next roll will not wait for
    /// one to be zero-filled (always false without preallocation).
    pub spare_ready: bool,
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
    /// Length of the current segment's file: past `segment_end` when it was
    /// preallocated. Sealing truncates the file back to `segment_end`.
    segment_file_bytes: u64,
    /// Prepares preallocated segments; `None` unless `options.preallocate`.
    spares: Option<SparePipeline>,
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
    /// `dir/LOCK`, exclusively locked while this `Wal` lives: a second
    /// process on the same dir would interleave its records with ours.
    _lock: File,
}

impl Wal {
    /// Opens (creating if empty) the log in `dir` and recovers it.
    ///
    /// The dir is locked first (`LOCK`, an advisory `flock` the kernel drops
    /// when the process dies): a dir another process has open is refused
    /// with [`StoreError::Locked`] before anything is read or changed.
    /// Leftover temp files are removed, a torn tail of the last segment is
    /// truncated (and reported), and files superseded by the latest checkpoint
    /// are deleted. Damage to anything that was synced is refused with
    /// [`StoreError::Corrupt`] naming the file and byte offset.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovered), StoreError> {
        fs::create_dir_all(dir).at(dir)?;
        let lock = lock_dir(dir)?;
        let found = Found::read(dir)?;
        Wal::resume(dir, options, lock, found)
    }

    /// Opens the log `found` in `dir` for appends: repairs a torn tail (or
    /// starts the first segment after the checkpoint), deletes superseded
    /// files and hands back what the protocol must replay.
    fn resume(
        dir: &Path,
        options: WalOptions,
        lock: File,
        found: Found,
    ) -> Result<(Wal, Recovered), StoreError> {
        // Recovery succeeded: only now is it worth preparing spares.
        let mut spares = match options.preallocate {
            true => {
                Some(SparePipeline::start(dir, spare_bytes(&options), options.fsync == FsyncPolicy::Always)?)
            }
            false => None,
        };
        let (current, torn_tail) = match found.tail {
            Some(tail) => {
                let torn_tail = repair_torn_tail(&tail.path, &tail.contents, options.fsync)?;
                (reopen_segment(tail.path, &tail.contents, tail.file_bytes)?, torn_tail)
            }
            None => (new_segment(dir, found.next_seq, options.fsync, spares.as_mut())?, None),
        };
        // Superseded files: recovery ignores them, so deleting them need not
        // be durable; the next directory fsync persists it.
        for path in found.obsolete {
            fsutil::remove(&path)?;
        }
        let (snapshot_seq, snapshot_bytes, checkpoint) = match found.snapshot {
            Some((seq, bytes, record)) => (Some(seq), bytes, Some(record)),
            None => (None, 0, None),
        };
        let recovered = Recovered { checkpoint, records: found.records, torn_tail };
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segment: current.file,
            segment_path: current.path,
            segment_seq: current.seq,
            seed: current.seed,
            segment_end: current.end,
            segment_file_bytes: current.file_bytes,
            spares,
            first_segment_seq: found.first_segment_seq,
            snapshot_seq,
            buffer: Vec::new(),
            buffered_records: 0,
            sealed_bytes: found.sealed_bytes,
            snapshot_bytes,
            records_since_checkpoint: recovered.records.len() as u64,
            syncs: 0,
            sync_time_total: Duration::ZERO,
            poisoned: false,
            _lock: lock,
        };
        tracing::info!(
            dir = %dir.display(),
            checkpoint_bytes = recovered.checkpoint.as_ref().map_or(0, Vec::len),
            records = recovered.records.len(),
            segments = wal.segment_seq + 1 - wal.first_segment_seq,
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
        if record.len() as u64 > SNAPSHOT_BYTES_MAX {
            return Err(StoreError::TooLarge { bytes: record.len() as u64, limit: SNAPSHOT_BYTES_MAX });
        }
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
            spare_ready: self.spares.as_ref().is_some_and(SparePipeline::ready),
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
        self.segment_file_bytes = self.segment_file_bytes.max(self.segment_end);
        self.records_since_checkpoint += self.buffered_records;
        self.buffer.clear();
        self.buffered_records = 0;
        Ok(())
    }

    /// Seals the current segment (already synced to its last byte) and starts the next.
    fn roll(&mut self) -> Result<(), StoreError> {
        self.seal()?;
        let seq = self.segment_seq + 1;
        let next = new_segment(&self.dir, seq, self.options.fsync, self.spares.as_mut())?;
        tracing::debug!(sealed = %self.segment_path.display(), bytes = self.segment_end, next = %next.path.display(), "segment rolled");
        self.sealed_bytes += self.segment_end;
        self.install_segment(next);
        Ok(())
    }

    /// Cuts the unused zero tail off the current segment, durably, before
    /// the next segment exists (etcd's WAL does the same at a cut).
    ///
    /// Besides returning the space, this keeps the rule that every byte of a
    /// sealed segment is a synced record: once segment `n + 1` exists, segment
    /// `n` ends at its last record, so recovery still refuses a sealed segment
    /// whose last records were zeroed instead of reading it as a shorter one.
    fn seal(&mut self) -> Result<(), StoreError> {
        if self.segment_file_bytes > self.segment_end {
            self.segment.set_len(self.segment_end).at(&self.segment_path)?;
            if self.options.fsync == FsyncPolicy::Always {
                self.segment.sync_all().at(&self.segment_path)?;
            }
            self.segment_file_bytes = self.segment_end;
        }
        Ok(())
    }

    fn install_segment(&mut self, next: OpenSegment) {
        debug_assert_eq!(next.end, SEGMENT_HEADER_LEN as u64, "a new segment holds only its header");
        self.segment = next.file;
        self.segment_path = next.path;
        self.segment_seq = next.seq;
        self.seed = next.seed;
        self.segment_end = next.end;
        self.segment_file_bytes = next.file_bytes;
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
        // The current segment is now obsolete and, if preallocated, becomes
        // a later spare at the cost of zeroing what was written to it (the
        // thread does that), rather than being deleted.
        let recyclable = match self.spares {
            Some(_) if self.segment_file_bytes >= spare_bytes(&self.options) => Some(Recyclable {
                file: self.segment.try_clone().at(&self.segment_path)?,
                path: self.segment_path.clone(),
                used_bytes: self.segment_end,
            }),
            _ => None,
        };
        let recycled = recyclable.as_ref().map(|_| self.segment_seq);
        let next = match self.spares.as_mut() {
            Some(spares) => {
                activate_spare(&self.dir, spares.take(recyclable)?, snapshot_seq + 1, self.options.fsync)?
            }
            None => create_segment(&self.dir, snapshot_seq + 1, self.options.fsync)?,
        };
        let old_segments = self.first_segment_seq..=self.segment_seq;
        let old_snapshot = self.snapshot_seq.replace(snapshot_seq);
        self.install_segment(next);
        self.first_segment_seq = snapshot_seq + 1;
        self.sealed_bytes = 0;
        self.snapshot_bytes = (SNAPSHOT_HEADER_LEN + record.len()) as u64;
        self.records_since_checkpoint = 0;
        let stale = old_segments
            .filter(|&seq| Some(seq) != recycled)
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

/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = "LOCK";

/// What recovery read from a log dir, before anything in it is changed
/// (except leftover temp files, removed first).
struct Found {
    /// The latest checkpoint: its sequence number, bytes on disk, record.
    snapshot: Option<(u64, u64, Vec<u8>)>,
    /// Every record of the live segments, in append order.
    records: Vec<Vec<u8>>,
    /// Bytes of the live segments before the last one.
    sealed_bytes: u64,
    /// The last live segment, to append to; `None` when there is none.
    tail: Option<Tail>,
    /// The first live segment's sequence number (just after the checkpoint's).
    first_segment_seq: u64,
    /// The sequence number after the last live segment's.
    next_seq: u64,
    /// Segments and snapshots the latest checkpoint superseded.
    obsolete: Vec<PathBuf>,
}

/// The last live segment as read: its valid frames and the file's length.
struct Tail {
    path: PathBuf,
    contents: SegmentContents,
    file_bytes: u64,
}

impl Found {
    /// Lists `dir`, loads the latest snapshot and reads the segments after it.
    fn read(dir: &Path) -> Result<Found, StoreError> {
        let (mut segments, mut snapshots) = list_log_files(dir)?;
        let snapshot = match snapshots.pop_last() {
            Some((seq, path)) => Some(load_snapshot(seq, &path)?),
            None => None,
        };
        let mut obsolete: Vec<PathBuf> = snapshots.into_values().collect();
        // Invariant: segments `(base_seq, ..]` are the log after the checkpoint.
        let base_seq = snapshot.as_ref().map_or(0, |(seq, _, _)| *seq);
        let live = segments.split_off(&(base_seq + 1));
        obsolete.extend(segments.into_values());
        let mut found = Found {
            snapshot,
            records: Vec::new(),
            sealed_bytes: 0,
            tail: None,
            first_segment_seq: base_seq + 1,
            next_seq: base_seq + 1,
            obsolete,
        };
        found.read_segments(live)?;
        Ok(found)
    }

    /// Reads the live segments in order, refusing a gap in their sequence
    /// numbers; the last one is the tail (a torn end allowed), the others
    /// are sealed.
    fn read_segments(&mut self, live: BySeq) -> Result<(), StoreError> {
        let live_count = live.len();
        for (index, (seq, path)) in live.into_iter().enumerate() {
            if seq != self.next_seq {
                return Err(StoreError::corrupt(
                    &path,
                    0,
                    format!(
                        "segment {} is missing: the log jumps from {} to {seq}",
                        fsutil::segment_name(self.next_seq),
                        self.next_seq
                    ),
                ));
            }
            self.next_seq += 1;
            let role = if index + 1 == live_count { SegmentRole::Last } else { SegmentRole::Sealed };
            let (mut contents, file_bytes) = read_segment_file(seq, &path, role)?;
            self.records.append(&mut contents.records);
            if role == SegmentRole::Sealed {
                self.sealed_bytes += contents.valid_bytes;
            } else {
                self.tail = Some(Tail { path, contents, file_bytes });
            }
        }
        Ok(())
    }
}

/// Files of one kind (segments, snapshots) by sequence number.
type BySeq = BTreeMap<u64, PathBuf>;

/// The segments and snapshots in `dir`, by sequence number. Temp files,
/// left by a crash before a rename, are never part of the log: they are
/// removed here, first, since creating a segment reuses the name.
fn list_log_files(dir: &Path) -> Result<(BySeq, BySeq), StoreError> {
    let mut segments = BTreeMap::new();
    let mut snapshots = BTreeMap::new();
    for (path, entry) in fsutil::list(dir)? {
        if let Entry::Segment(seq) | Entry::Snapshot(seq) = entry {
            if seq > SEQ_MAX {
                return Err(StoreError::corrupt(&path, 0, format!("sequence number {seq} is out of range")));
            }
        }
        match entry {
            Entry::Segment(seq) => {
                segments.insert(seq, path);
            }
            Entry::Snapshot(seq) => {
                snapshots.insert(seq, path);
            }
            Entry::Temp => fsutil::remove(&path)?,
            Entry::Other => {}
        }
    }
    Ok((segments, snapshots))
}

/// Takes the exclusive lock on `dir/LOCK`, or says who cannot have it.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).at(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
        Err(fs::TryLockError::Error(error)) => Err(StoreError::io(&path, error)),
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

/// Reads and verifies segment `seq`: its contents and the file's length.
fn read_segment_file(seq: u64, path: &Path, role: SegmentRole) -> Result<(SegmentContents, u64), StoreError> {
    let bytes = fs::read(path).at(path)?;
    let contents = format::read_segment(path, &bytes, role)?;
    if contents.seq != seq {
        return Err(StoreError::corrupt(
            path,
            16,
            format!("segment header says sequence {}, the file name says {seq}", contents.seq),
        ));
    }
    Ok((contents, bytes.len() as u64))
}

/// Removes the torn tail that [`format::read_segment`] found in the last
/// segment, durably, and says what was dropped. A plain segment is
/// truncated; a preallocated one is zeroed instead, so that it keeps its
/// length and appends go on overwriting existing blocks.
fn repair_torn_tail(
    path: &Path,
    contents: &SegmentContents,
    fsync: FsyncPolicy,
) -> Result<Option<TornTail>, StoreError> {
    let (offset, bytes_dropped) = (contents.valid_bytes, contents.torn_bytes);
    if bytes_dropped == 0 {
        return Ok(None);
    }
    let action = if contents.preallocated { "zeroing" } else { "truncating" };
    tracing::warn!(
        file = %path.display(),
        offset,
        bytes_dropped,
        "{action} a torn write at the end of the write-ahead log (records never acknowledged as synced)"
    );
    let mut file = OpenOptions::new().write(true).open(path).at(path)?;
    if contents.preallocated {
        file.seek(SeekFrom::Start(offset)).at(path)?;
        let zeros = vec![0u8; bytes_dropped.min(1 << 20) as usize];
        let mut left = bytes_dropped;
        while left > 0 {
            let chunk = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..chunk]).at(path)?;
            left -= chunk as u64;
        }
    } else {
        file.set_len(offset).at(path)?;
    }
    if fsync == FsyncPolicy::Always {
        file.sync_all().at(path)?;
    }
    Ok(Some(TornTail { file: path.to_path_buf(), offset, bytes_dropped }))
}

/// A segment open for appending.
struct OpenSegment {
    /// Positioned at `end`.
    file: File,
    path: PathBuf,
    seq: u64,
    seed: u32,
    /// Where the next frame goes.
    end: u64,
    /// The file's length: past `end` when preallocated.
    file_bytes: u64,
}

/// Opens the recovered last segment (its torn tail already repaired) for
/// appending after its last record.
fn reopen_segment(
    path: PathBuf,
    contents: &SegmentContents,
    file_bytes: u64,
) -> Result<OpenSegment, StoreError> {
    let mut file = OpenOptions::new().read(true).write(true).open(&path).at(&path)?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    std::io::Read::read_exact(&mut file, &mut header).at(&path)?;
    let seed = SegmentHeader::decode(&header).map_err(|reason| StoreError::corrupt(&path, 0, reason))?.seed();
    let end = contents.valid_bytes;
    file.seek(SeekFrom::Start(end)).at(&path)?;
    // A plain segment's torn tail was truncated away.
    let file_bytes = if contents.preallocated { file_bytes } else { end };
    Ok(OpenSegment { file, path, seq: contents.seq, seed, end, file_bytes })
}

/// How long a spare is: a whole segment, and never shorter than a header.
fn spare_bytes(options: &WalOptions) -> u64 {
    options.segment_bytes.max(SEGMENT_HEADER_LEN as u64)
}

/// Creates segment `seq`: from the next spare when preallocating, else as a
/// file holding only its header.
fn new_segment(
    dir: &Path,
    seq: u64,
    fsync: FsyncPolicy,
    spares: Option<&mut SparePipeline>,
) -> Result<OpenSegment, StoreError> {
    match spares {
        Some(spares) => activate_spare(dir, spares.take(None)?, seq, fsync),
        None => create_segment(dir, seq, fsync),
    }
}

/// Turns a spare (zeros, synced) into segment `seq`: writes the header in
/// place and syncs it, then renames the file into place and syncs the
/// directory. The header is durable before the name is, so a segment file
/// never exists without a whole header.
fn activate_spare(dir: &Path, spare: Spare, seq: u64, fsync: FsyncPolicy) -> Result<OpenSegment, StoreError> {
    let Spare { mut file, path: spare_path, bytes } = spare;
    debug_assert!(bytes >= SEGMENT_HEADER_LEN as u64);
    let header = SegmentHeader { seq, salt: fresh_salt(seq), preallocated: true };
    let sync = fsync == FsyncPolicy::Always;
    file.seek(SeekFrom::Start(0)).at(&spare_path)?;
    file.write_all(&header.encode()).at(&spare_path)?;
    if sync {
        file.sync_data().at(&spare_path)?;
    }
    let path = dir.join(fsutil::segment_name(seq));
    fs::rename(&spare_path, &path).at(&path)?;
    if sync {
        fsutil::fsync_dir(dir)?;
    }
    Ok(OpenSegment {
        file,
        path,
        seq,
        seed: header.seed(),
        end: SEGMENT_HEADER_LEN as u64,
        file_bytes: bytes,
    })
}

/// Creates segment `seq` holding only its header, atomically (temp file,
/// fsync, rename, directory fsync), so a segment file never exists without a
/// whole header. Returns the file positioned after the header.
fn create_segment(dir: &Path, seq: u64, fsync: FsyncPolicy) -> Result<OpenSegment, StoreError> {
    let header = SegmentHeader { seq, salt: fresh_salt(seq), preallocated: false };
    let name = fsutil::segment_name(seq);
    let sync = fsync == FsyncPolicy::Always;
    let (file, tmp) = fsutil::write_temp(dir, &name, &[&header.encode()], sync)?;
    let path = dir.join(&name);
    fs::rename(&tmp, &path).at(&path)?;
    if sync {
        fsutil::fsync_dir(dir)?;
    }
    let end = SEGMENT_HEADER_LEN as u64;
    Ok(OpenSegment { file, path, seq, seed: header.seed(), end, file_bytes: end })
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
