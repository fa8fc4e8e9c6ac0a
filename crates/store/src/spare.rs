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
//! Why recycling: protocols checkpoint every few hundred records, and each
//! checkpoint starts a new segment. Zero-filling a fresh 64 MiB file for
//! every 50 KiB of log would write a thousand times more zeros than records
//! and keep the disk busy under the very fsyncs this is meant to speed up.
//! So the segment a checkpoint made obsolete is handed back to the thread,
//! which zeroes only its used part and renames it into the next spare.
//! That is safe because the checkpoint's snapshot is durable first: from
//! then on recovery ignores (and deletes) that segment, whatever state a
//! crash leaves it in.
//!
//! Spares are named `spare-segment-{0,1}.tmp` (see [`fsutil::spare_name`]):
//! never a segment name, so recovery cannot mistake one for part of the
//! log, and deleted as leftovers by the next open.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{IoContext, StoreError};
use crate::fsutil;

/// Zeros are written this many bytes per `write`; the stop flag is checked
/// between writes, so dropping the log waits at most for one of them (and for
/// the final fsync of a spare that was already complete).
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Obsolete segments waiting to be recycled, at most. Two keep the pair of
/// files that checkpoints alternate between (the current segment and the
/// spare) in circulation even when the thread falls one checkpoint behind;
/// more would only hold disk space.
const RECYCLABLE_MAX: usize = 2;

/// A file of `bytes` zeros, synced (data and size) under `FsyncPolicy::Always`.
#[derive(Debug)]
pub(crate) struct Spare {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
}

/// A preallocated segment that a durable checkpoint made obsolete: zeros
/// after `used_bytes`, old records (and header) before.
#[derive(Debug)]
pub(crate) struct Recyclable {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) used_bytes: u64,
}

/// What the writer and the thread share, under one mutex.
#[derive(Debug, Default)]
struct State {
    /// The spare (or the thread's error) waiting for the writer.
    ready: Option<Result<Spare, StoreError>>,
    /// Segments to turn into the next spares instead of zero-filling new
    /// files, oldest first; at most [`RECYCLABLE_MAX`].
    recyclable: VecDeque<Recyclable>,
    /// Set by the writer's drop.
    stop: bool,
    /// Set by the thread when it exits (stopped or failed).
    finished: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// `state.stop`, readable without the lock between chunks of zeros.
    stop: AtomicBool,
}

impl Shared {
    /// The state; a panic elsewhere while holding the lock leaves it usable
    /// (every field is valid on its own).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The background thread and the state it shares with the writer.
///
/// Dropping it stops the thread, waits for it and removes the spare and any
/// recyclable segment it held, so that no thread of a dropped log writes
/// into a directory that a new log may have opened since.
#[derive(Debug)]
pub(crate) struct SparePipeline {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl SparePipeline {
    /// Starts the thread, which begins preparing the first spare at once.
    pub(crate) fn start(dir: &Path, bytes: u64, sync: bool) -> Result<SparePipeline, StoreError> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let (thread_dir, thread_shared) = (dir.to_path_buf(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("quorum-wal-spare".to_string())
                .spawn(move || prepare_spares(&thread_dir, bytes, sync, &thread_shared))
                .at(dir)?
        };
        Ok(SparePipeline { shared, thread: Some(thread), dir: dir.to_path_buf() })
    }

    /// The next spare, waiting for the thread if it is not ready yet (only
    /// when segments fill faster than the disk writes zeros).
    ///
    /// `recycle` is an obsolete preallocated segment for the thread to turn
    /// into a later spare. It is queued in the same step as the spare is
    /// taken, so the thread, woken by the take, recycles it rather than
    /// starting a fresh file. Past [`RECYCLABLE_MAX`] waiting, the oldest is deleted.
    pub(crate) fn take(&mut self, recycle: Option<Recyclable>) -> Result<Spare, StoreError> {
        let mut state = self.shared.lock();
        if let Some(segment) = recycle {
            state.recyclable.push_back(segment);
            while state.recyclable.len() > RECYCLABLE_MAX || (state.finished && !state.recyclable.is_empty())
            {
                if let Some(unused) = state.recyclable.pop_front() {
                    remove_unused(&unused.path);
                }
            }
        }
        loop {
            if let Some(spare) = state.ready.take() {
                self.shared.changed.notify_all();
                return spare;
            }
            if state.finished {
                // The thread sent its error before it exited, so the writer
                // has already been told why; this answers a caller that asks again.
                return Err(StoreError::io(
                    &self.dir,
                    std::io::Error::other("the thread preparing spare segments has stopped after an error"),
                ));
            }
            state = self.shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Is a spare complete and waiting to be taken?
    pub(crate) fn ready(&self) -> bool {
        self.shared.lock().ready.as_ref().is_some_and(Result::is_ok)
    }
}

impl Drop for SparePipeline {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "the spare-segment thread panicked");
            }
        }
        // The thread is gone: whatever it left is ours to clean up.
        let mut state = self.shared.lock();
        if let Some(Ok(spare)) = state.ready.take() {
            drop(spare.file);
            remove_unused(&spare.path);
        }
        for segment in state.recyclable.drain(..) {
            drop(segment.file);
            remove_unused(&segment.path);
        }
    }
}

/// The thread: while no spare waits for the writer, make one (from a
/// recyclable segment if there is one, else from scratch), until stopped or
/// failed. A failure is handed to the writer (which fails its roll and
/// poisons the log) and ends the thread.
fn prepare_spares(dir: &Path, bytes: u64, sync: bool, shared: &Shared) {
    /// Marks the thread finished however it ends, a panic included, so that
    /// a writer waiting in `take` gets an error instead of waiting forever.
    struct Finished<'a>(&'a Shared);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.lock().finished = true;
            self.0.changed.notify_all();
        }
    }
    let _finished = Finished(shared);
    for slot in 0.. {
        let recyclable = {
            let mut state = shared.lock();
            while !state.stop && state.ready.is_some() {
                state = shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.stop {
                break;
            }
            state.recyclable.pop_front()
        };
        let path = dir.join(fsutil::spare_name(slot));
        let made = match recyclable {
            Some(segment) => recycle_spare(segment, &path, sync, &shared.stop),
            None => prepare_spare(&path, bytes, sync, &shared.stop),
        };
        let mut state = shared.lock();
        match made {
            Ok(Some(spare)) => state.ready = Some(Ok(spare)),
            Ok(None) => {
                remove_unused(&path);
                break;
            }
            Err(error) => {
                tracing::error!(%error, "could not prepare a spare write-ahead log segment");
                state.ready = Some(Err(error));
                break;
            }
        }
        shared.changed.notify_all();
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
    if !write_zeros(&mut file, path, bytes, stop)? {
        return Ok(None);
    }
    if sync {
        // sync_all, not sync_data: the file's size is what the writer must
        // never have to change again.
        file.sync_all().at(path)?;
    }
    Ok(Some(Spare { file, path: path.to_path_buf(), bytes }))
}

/// Zeroes the used part of an obsolete segment, syncs it and renames it to
/// `spare_path`. `Ok(None)` when told to stop first (the half-zeroed
/// segment is deleted by the caller or by the next open: it is obsolete).
fn recycle_spare(
    segment: Recyclable,
    spare_path: &Path,
    sync: bool,
    stop: &AtomicBool,
) -> Result<Option<Spare>, StoreError> {
    let Recyclable { mut file, path, used_bytes } = segment;
    let bytes = file.metadata().at(&path)?.len();
    file.seek(SeekFrom::Start(0)).at(&path)?;
    if !write_zeros(&mut file, &path, used_bytes.min(bytes), stop)? {
        remove_unused(&path);
        return Ok(None);
    }
    if sync {
        // Only data changed: the length is the one it was preallocated with.
        file.sync_data().at(&path)?;
    }
    // Not made durable here: if a crash loses the rename, the obsolete
    // segment is deleted on open; the rename into a segment name syncs the
    // directory anyway.
    fs::rename(&path, spare_path).at(spare_path)?;
    Ok(Some(Spare { file, path: spare_path.to_path_buf(), bytes }))
}

/// Writes `bytes` zeros at the file's position, checking `stop` between
/// chunks; false if stopped.
fn write_zeros(file: &mut File, path: &Path, bytes: u64, stop: &AtomicBool) -> Result<bool, StoreError> {
    let zeros = vec![0u8; bytes.min(ZERO_CHUNK_BYTES as u64) as usize];
    let mut left = bytes;
    while left > 0 {
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        let chunk = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..chunk]).at(path)?;
        left -= chunk as u64;
    }
    Ok(true)
}

/// Best effort: a spare or obsolete segment left behind is deleted by the
/// next open anyway.
fn remove_unused(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            let error = StoreError::io(path, error);
            tracing::warn!(%error, "could not delete an unused spare or obsolete segment");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reaches_the_writer_and_later_takes_fail_too() {
        let missing = Path::new("/nonexistent-quorum-store-dir/for-a-spare");
        let mut pipeline = SparePipeline::start(missing, 4096, false).unwrap();
        match pipeline.take(None) {
            Err(StoreError::Io { path, .. }) => assert!(path.starts_with(missing), "{}", path.display()),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        let again = pipeline.take(None).unwrap_err().to_string();
        assert!(again.contains("has stopped"), "{again}");
    }

    #[test]
    fn spares_are_zeros_of_the_asked_length_and_dropping_removes_the_unused_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut pipeline = SparePipeline::start(dir.path(), 10_000, true).unwrap();
        let spare = pipeline.take(None).unwrap();
        assert_eq!(spare.bytes, 10_000);
        assert_eq!(fs::read(&spare.path).unwrap(), vec![0u8; 10_000]);
        // Let the thread finish the next spare (bounded: a broken thread
        // fails the assertion below rather than hanging the test).
        for _ in 0..10_000 {
            if pipeline.ready() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(pipeline.ready(), "the next spare was prepared");
        drop(pipeline);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![spare.path.file_name().unwrap().to_owned()], "only the spare taken remains");
    }
}
