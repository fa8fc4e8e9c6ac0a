//! Spare segments: zero-filled, synced files prepared ahead of time by a
//! background thread, so that a segment roll never waits for them.
//!
//! Why zero-fill at all: `write + fdatasync` into a file that grows must also
//! journal the new size and extents, which on ext4 costs about a third more
//! than overwriting blocks that were already written and synced (measured:
//! ~270-285 µs against ~200-210 µs per 100-byte fdatasync). `fallocate`
//! alone does not help as much: its extents are "unwritten" and the first
//! write to each still converts them, a metadata change the fdatasync must
//! journal. So a spare is written with real zeros and fsynced, size included.
//!
//! Why a thread: zero-filling a 64 MiB segment takes a sizeable fraction of a
//! second of disk time. Done inline, at a roll or when the segment is half
//! full, it would stall the append that triggered it for that long. Done by
//! a thread that keeps one spare ready (etcd's WAL `filePipeline`), the
//! writer only pays for the roll itself: one 32-byte header write, an
//! fdatasync, a rename and a directory fsync.
//!
//! The thread hands spares over a rendezvous channel: it prepares one, blocks
//! until the writer takes it, then prepares the next. Spares are named
//! `spare-segment-{0,1}.tmp` (see [`fsutil::spare_name`]): never a segment
//! name, so recovery cannot mistake one for part of the log, and deleted as
//! leftovers by the next open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{IoContext, StoreError};
use crate::fsutil;

/// Zeros are written this many bytes per `write`; the stop flag is checked
/// between writes, so dropping the log waits at most for one of them (and for
/// the final fsync of a spare that was already complete).
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// A file of `bytes` zeros, synced (data and size) under `FsyncPolicy::Always`.
#[derive(Debug)]
pub(crate) struct Spare {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
}

/// The background thread and the end of the channel it hands spares over.
///
/// Dropping it stops the thread, waits for it and removes the spare it held,
/// so that no thread of a dropped log writes into a directory that a new log
/// may have opened since.
#[derive(Debug)]
pub(crate) struct SparePipeline {
    spares: Option<Receiver<Result<Spare, StoreError>>>,
    stop: Arc<AtomicBool>,
    /// Spares the thread completed; one more than `taken` when one is ready.
    prepared: Arc<AtomicU64>,
    taken: u64,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl SparePipeline {
    /// Starts the thread, which begins preparing the first spare at once.
    pub(crate) fn start(dir: &Path, bytes: u64, sync: bool) -> Result<SparePipeline, StoreError> {
        let (sender, spares) = mpsc::sync_channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let prepared = Arc::new(AtomicU64::new(0));
        let thread = {
            let thread_dir = dir.to_path_buf();
            let flags = Flags { stop: Arc::clone(&stop), prepared: Arc::clone(&prepared) };
            std::thread::Builder::new()
                .name("quorum-wal-spare".to_string())
                .spawn(move || prepare_spares(&thread_dir, bytes, sync, &flags, &sender))
                .at(dir)?
        };
        Ok(SparePipeline {
            spares: Some(spares),
            stop,
            prepared,
            taken: 0,
            thread: Some(thread),
            dir: dir.to_path_buf(),
        })
    }

    /// Is a spare complete and waiting to be taken?
    pub(crate) fn ready(&self) -> bool {
        self.prepared.load(Ordering::Acquire) > self.taken
    }

    /// The next spare, waiting for the thread if it is not ready yet (only
    /// when segments fill faster than the disk writes zeros).
    pub(crate) fn take(&mut self) -> Result<Spare, StoreError> {
        let received = self.spares.as_ref().map(Receiver::recv);
        self.taken += 1;
        match received {
            Some(Ok(spare)) => spare,
            // The thread sends its error before it exits, so the writer has
            // already been told why; this only answers a caller that asks again.
            _ => Err(StoreError::io(
                &self.dir,
                std::io::Error::other("the thread preparing spare segments has stopped after an error"),
            )),
        }
    }
}

impl Drop for SparePipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Unblocks a thread waiting to hand over a spare: its send fails.
        drop(self.spares.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "the spare-segment thread panicked");
            }
        }
    }
}

/// What the thread shares with the writer.
struct Flags {
    /// Set by the writer when the log is dropped.
    stop: Arc<AtomicBool>,
    /// Counted up by the thread when a spare is complete, before it is handed over.
    prepared: Arc<AtomicU64>,
}

/// The thread: prepare a spare, hand it over, repeat, until stopped or
/// failed. A failure is sent to the writer (which fails its roll and
/// poisons the log) and ends the thread.
fn prepare_spares(
    dir: &Path,
    bytes: u64,
    sync: bool,
    flags: &Flags,
    sender: &SyncSender<Result<Spare, StoreError>>,
) {
    for slot in 0.. {
        let path = dir.join(fsutil::spare_name(slot));
        let spare = match prepare_spare(&path, bytes, sync, &flags.stop) {
            Ok(Some(spare)) => spare,
            Ok(None) => return remove_unused(&path),
            Err(error) => {
                tracing::error!(%error, "could not prepare a spare write-ahead log segment");
                let _ = sender.send(Err(error));
                return;
            }
        };
        flags.prepared.fetch_add(1, Ordering::Release);
        if let Err(mpsc::SendError(unused)) = sender.send(Ok(spare)) {
            drop(unused);
            return remove_unused(&path);
        }
    }
}

/// Writes `bytes` zeros to `path` (replacing any leftover) and syncs it.
/// `Ok(None)` when told to stop first.
fn prepare_spare(
    path: &Path,
    bytes: u64,
    sync: bool,
    stop: &AtomicBool,
) -> Result<Option<Spare>, StoreError> {
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).at(path)?;
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut left = bytes;
    while left > 0 {
        if stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let chunk = left.min(ZERO_CHUNK_BYTES as u64) as usize;
        file.write_all(&zeros[..chunk]).at(path)?;
        left -= chunk as u64;
    }
    if sync {
        // sync_all, not sync_data: the file's size is what the writer must
        // never have to change again.
        file.sync_all().at(path)?;
    }
    Ok(Some(Spare { file, path: path.to_path_buf(), bytes }))
}

/// Best effort: a spare left behind is deleted by the next open anyway.
fn remove_unused(path: &Path) {
    if let Err(error) = fsutil::remove(path) {
        tracing::warn!(%error, "could not delete an unused spare segment");
    }
}
