//! The WAL's contract, end to end on a real directory: round trips, segment
//! rolls, checkpoints, leftovers of interrupted operations, and a proptest of
//! random append/sync/checkpoint/reopen sequences against an in-memory model.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use quorum_store::{
    read_segment, FsyncPolicy, Recovered, SegmentRole, StoreError, Wal, WalOptions, LOCK_FILE,
    RECORD_BYTES_MAX,
};

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes, fsync: FsyncPolicy::Always, preallocate: true }
}

/// The defaults (preallocation on, fsync always) with segments small enough
/// that every open does not zero-fill 2 x 64 MiB; none of these tests rolls.
fn defaults() -> WalOptions {
    WalOptions { segment_bytes: 256 << 10, ..WalOptions::default() }
}

fn record(i: usize) -> Vec<u8> {
    // Varying lengths, including empty records.
    format!("record-{i}-{}", "x".repeat(i % 37)).into_bytes().into_iter().take(i % 50).collect()
}

/// The files of the log in `dir`, sorted. The spare segment that an open
/// log keeps ready (`spare-segment-*.tmp`) and the lock file are not part
/// of the log.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("spare-segment-") && name != LOCK_FILE)
        .collect();
    names.sort();
    names
}

fn reopen(dir: &Path, options: WalOptions) -> (Wal, Recovered) {
    Wal::open(dir, options).expect("reopen")
}

#[test]
fn records_round_trip_and_an_empty_log_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, recovered) = Wal::open(dir.path(), defaults()).unwrap();
    assert_eq!(recovered, Recovered::default());
    let records: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), vec![0u8; 5000], b"four".to_vec()];
    for r in &records {
        wal.append(r).unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(wal.stats().syncs, 1, "one sync for the whole batch");
    assert_eq!(wal.stats().records_since_checkpoint, 4);
    drop(wal);

    let (wal, recovered) = reopen(dir.path(), defaults());
    assert_eq!(recovered.checkpoint, None);
    assert_eq!(recovered.records, records);
    assert_eq!(recovered.torn_tail, None);
    assert_eq!(wal.stats().records_since_checkpoint, 4);
    assert_eq!(names(dir.path()), vec!["wal-00000000000000000001.log"]);
}

#[test]
fn sync_with_nothing_buffered_does_no_io() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    wal.sync().unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.stats().syncs, 0);
    wal.append(b"a").unwrap();
    wal.sync().unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.stats().syncs, 1);
}

#[test]
fn unsynced_records_are_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    wal.append(b"synced").unwrap();
    wal.sync().unwrap();
    wal.append(b"buffered only").unwrap();
    let before = wal.stats().bytes_on_disk;
    drop(wal);
    let (wal, recovered) = reopen(dir.path(), defaults());
    assert_eq!(recovered.records, vec![b"synced".to_vec()]);
    assert_eq!(wal.stats().bytes_on_disk, before);
}

#[test]
fn many_records_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(1024);
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    let records: Vec<Vec<u8>> = (0..600).map(record).collect();
    for (i, r) in records.iter().enumerate() {
        wal.append(r).unwrap();
        if i % 7 == 6 {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
    let stats = wal.stats();
    assert!(stats.segments > 10, "expected many segments, got {}", stats.segments);
    let segment_files: Vec<String> =
        names(dir.path()).into_iter().filter(|n| n.starts_with("wal-")).collect();
    assert_eq!(segment_files.len() as u64, stats.segments);
    // Sealed segments were cut back to their last record; the current one is
    // preallocated, and only its records count as log bytes.
    let (last, sealed) = segment_files.split_last().unwrap();
    let sealed_bytes: u64 = sealed.iter().map(|n| fs::metadata(dir.path().join(n)).unwrap().len()).sum();
    let last_path = dir.path().join(last);
    let last_bytes = fs::read(&last_path).unwrap();
    assert!(last_bytes.len() as u64 >= opts.segment_bytes, "the current segment is preallocated");
    let last_records = read_segment(&last_path, &last_bytes, SegmentRole::Last).unwrap();
    assert!(last_records.preallocated);
    assert_eq!(last_records.torn_bytes, 0);
    assert_eq!(sealed_bytes + last_records.valid_bytes, stats.bytes_on_disk);
    for name in sealed {
        let path = dir.path().join(name);
        let bytes = fs::read(&path).unwrap();
        let contents = read_segment(&path, &bytes, SegmentRole::Sealed).unwrap();
        assert_eq!(contents.valid_bytes, bytes.len() as u64, "{name} ends at its last record");
    }
    drop(wal);

    let (mut wal, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.records, records);
    assert_eq!(wal.stats().segments, stats.segments);
    // Appending after recovery continues the same log.
    wal.append(b"after reopen").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.records.len(), records.len() + 1);
    assert_eq!(recovered.records.last().unwrap(), b"after reopen");
}

fn spares(dir: &Path) -> Vec<String> {
    let mut spares: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("spare-segment-"))
        .collect();
    spares.sort();
    spares
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:020}.log"))
}

/// Rolls take the spare the background thread prepared: every new segment
/// is preallocated from its first byte, the one it replaces is cut back to
/// its last record, and a dropped log leaves no spare behind.
#[test]
fn rollover_installs_the_prepared_spare_and_seals_the_old_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(1024);
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(fs::metadata(segment_path(dir.path(), 1)).unwrap().len(), 1024, "the first segment too");
    let records: Vec<Vec<u8>> = (0..200).map(|i| record(i + 40)).collect();
    let mut seen_segments = 1;
    for r in &records {
        wal.append(r).unwrap();
        wal.sync().unwrap();
        let segments = wal.stats().segments;
        if segments > seen_segments {
            seen_segments = segments;
            let current = segment_path(dir.path(), segments);
            let bytes = fs::read(&current).unwrap();
            assert_eq!(bytes.len(), 1024, "a fresh segment is the whole preallocated spare");
            let contents = read_segment(&current, &bytes, SegmentRole::Last).unwrap();
            assert!(contents.preallocated);
            assert!(contents.records.is_empty());
            let sealed = segment_path(dir.path(), segments - 1);
            let sealed_bytes = fs::read(&sealed).unwrap();
            let sealed_contents = read_segment(&sealed, &sealed_bytes, SegmentRole::Sealed).unwrap();
            assert_eq!(
                sealed_contents.valid_bytes,
                sealed_bytes.len() as u64,
                "sealed: cut to its last record"
            );
            assert!(spares(dir.path()).len() <= 1, "{:?}", spares(dir.path()));
        }
    }
    assert!(seen_segments > 4, "rolled {seen_segments} times");
    drop(wal);
    assert_eq!(spares(dir.path()), Vec::<String>::new(), "dropping the log removes its spare");
    let (_, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.records, records);
}

/// A checkpoint hands the segment it made obsolete back to the spare
/// thread, which zeroes only its used part: checkpoints every few hundred
/// records must not zero-fill a whole new segment each. The recycled file
/// (same inode) becomes a later segment, and none of its old records
/// survive there.
#[test]
fn checkpoints_recycle_the_obsolete_segment_as_the_next_spare() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(64 << 10);
    // A file's identity: inode number and birth time (an inode number alone
    // may be reused by a new file after a deletion).
    let inode = |seq| {
        let metadata = fs::metadata(segment_path(dir.path(), seq)).unwrap();
        (metadata.ino(), metadata.created().ok())
    };
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    let mut inodes = vec![inode(1)];
    let mut last = Vec::new();
    for round in 0..4 {
        // A long round, then short ones: a recycled segment holds more old
        // records than the new ones written over its start.
        let count = if round == 0 { 300 } else { 5 };
        last = (0..count).map(|i| record(round * 1000 + i + 1)).collect::<Vec<_>>();
        for r in &last {
            wal.append(r).unwrap();
            wal.sync().unwrap();
        }
        wal.checkpoint(format!("state {round}").as_bytes()).unwrap();
        let seq = 2 * round as u64 + 3;
        inodes.push(inode(seq));
        let bytes = fs::read(segment_path(dir.path(), seq)).unwrap();
        assert_eq!(bytes.len() as u64, opts.segment_bytes);
        assert!(bytes[32..].iter().all(|&b| b == 0), "segment {seq} starts empty");
    }
    // Two files take turns: the current segment and the spare. (Which is
    // which depends on how fast the thread wakes; a fresh file per
    // checkpoint would make five.)
    let mut distinct = inodes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{inodes:?}");
    for r in &last {
        wal.append(r).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(spares(dir.path()), Vec::<String>::new());
    assert_eq!(names(dir.path()), vec!["snap-00000000000000000008.bin", "wal-00000000000000000009.log"]);
    let (_, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"state 3"[..]));
    assert_eq!(recovered.records, last);
}

/// A spare left by a crash, whatever it holds (here: a whole valid segment),
/// is never read as part of the log, and is deleted on open.
#[test]
fn a_leftover_spare_is_never_part_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(4096);
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    wal.append(b"kept").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let other = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(other.path(), opts).unwrap();
    wal.append(b"from a spare").unwrap();
    wal.sync().unwrap();
    drop(wal);
    for slot in ["spare-segment-0.tmp", "spare-segment-1.tmp"] {
        fs::copy(segment_path(other.path(), 1), dir.path().join(slot)).unwrap();
    }
    let (wal, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.records, vec![b"kept".to_vec()]);
    drop(wal);
    assert_eq!(names(dir.path()), vec!["wal-00000000000000000001.log"]);
    assert_eq!(spares(dir.path()), Vec::<String>::new());
}

/// Logs are read whichever way they were written: a plain log opened with
/// preallocation on continues in its plain segment and rolls into
/// preallocated ones, and back.
#[test]
fn plain_and_preallocated_segments_read_and_continue_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let plain = WalOptions { preallocate: false, ..options(2048) };
    let preallocated = options(2048);
    let mut expected = Vec::new();
    let mut kinds = Vec::new();
    for (round, opts) in [plain, preallocated, plain, preallocated].into_iter().enumerate() {
        let (mut wal, recovered) = reopen(dir.path(), opts);
        assert_eq!(recovered.records, expected, "round {round}");
        assert_eq!(recovered.torn_tail, None, "round {round}");
        for i in 0..60 {
            let r = record(round * 100 + i);
            wal.append(&r).unwrap();
            if i % 3 == 2 {
                wal.sync().unwrap();
            }
            expected.push(r);
        }
        wal.sync().unwrap();
        drop(wal);
    }
    for name in names(dir.path()) {
        let path = dir.path().join(&name);
        let bytes = fs::read(&path).unwrap();
        kinds.push(read_segment(&path, &bytes, SegmentRole::Last).unwrap().preallocated);
    }
    assert!(kinds.contains(&true) && kinds.contains(&false), "both kinds of segment in one log: {kinds:?}");
    let (_, recovered) = reopen(dir.path(), plain);
    assert_eq!(recovered.records, expected);
}

#[test]
fn checkpoint_then_appends_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(512);
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    for i in 0..100 {
        wal.append(&record(i)).unwrap();
        wal.sync().unwrap();
    }
    wal.append(b"superseded: appended but never synced").unwrap();
    wal.checkpoint(b"state after 100 records").unwrap();
    let stats = wal.stats();
    assert_eq!(stats.records_since_checkpoint, 0);
    assert_eq!(stats.segments, 1);
    let after: Vec<Vec<u8>> = (100..140).map(record).collect();
    for r in &after {
        wal.append(r).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);

    let (wal, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"state after 100 records"[..]));
    assert_eq!(recovered.records, after);
    assert_eq!(wal.stats().records_since_checkpoint, after.len() as u64);
    let files = names(dir.path());
    assert_eq!(files.iter().filter(|n| n.starts_with("snap-")).count(), 1, "{files:?}");
    assert!(files.iter().all(|n| !n.ends_with(".tmp")), "{files:?}");
}

#[test]
fn reopen_after_checkpoint_without_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    wal.append(b"old").unwrap();
    wal.sync().unwrap();
    wal.checkpoint(b"first").unwrap();
    wal.checkpoint(b"second").unwrap();
    let bytes_on_disk = wal.stats().bytes_on_disk;
    drop(wal);
    let (wal, recovered) = reopen(dir.path(), defaults());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"second"[..]));
    assert!(recovered.records.is_empty());
    assert_eq!(wal.stats().bytes_on_disk, bytes_on_disk);
    // Segment 1, snap 2, segment 3, snap 4, segment 5: only the last two remain.
    assert_eq!(names(dir.path()), vec!["snap-00000000000000000004.bin", "wal-00000000000000000005.log"]);
}

#[test]
fn crash_between_snapshot_rename_and_new_segment_recovers_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    wal.append(b"old").unwrap();
    wal.sync().unwrap();
    wal.checkpoint(b"state").unwrap();
    drop(wal);
    // Put the directory back to the moment after the snapshot rename: the
    // old segment still there, the new one not yet created.
    fs::remove_file(dir.path().join("wal-00000000000000000003.log")).unwrap();
    fs::write(dir.path().join("wal-00000000000000000001.log"), b"stale, superseded, never read").unwrap();
    fs::write(dir.path().join("wal-00000000000000000003.log.tmp"), b"half-made segment").unwrap();
    let (mut wal, recovered) = reopen(dir.path(), defaults());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"state"[..]));
    assert!(recovered.records.is_empty());
    assert_eq!(names(dir.path()), vec!["snap-00000000000000000002.bin", "wal-00000000000000000003.log"]);
    wal.append(b"new").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = reopen(dir.path(), defaults());
    assert_eq!(recovered.records, vec![b"new".to_vec()]);
}

#[test]
fn crash_before_snapshot_rename_keeps_the_old_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    wal.append(b"kept").unwrap();
    wal.sync().unwrap();
    drop(wal);
    fs::write(dir.path().join("snap-00000000000000000002.bin.tmp"), b"a snapshot never renamed").unwrap();
    let (_, recovered) = reopen(dir.path(), defaults());
    assert_eq!(recovered.checkpoint, None);
    assert_eq!(recovered.records, vec![b"kept".to_vec()]);
    assert_eq!(names(dir.path()), vec!["wal-00000000000000000001.log"]);
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options(64)).unwrap();
    for i in 0..10 {
        wal.append(&record(i + 60)).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    assert!(names(dir.path()).len() >= 4);
    let missing = dir.path().join("wal-00000000000000000002.log");
    fs::remove_file(&missing).unwrap();
    match Wal::open(dir.path(), options(64)) {
        Err(StoreError::Corrupt { file, reason, .. }) => {
            assert_eq!(file, dir.path().join("wal-00000000000000000003.log"));
            assert!(reason.contains("wal-00000000000000000002.log is missing"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_log_without_its_first_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options(64)).unwrap();
    for i in 0..4 {
        wal.append(&record(i + 60)).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    fs::remove_file(dir.path().join("wal-00000000000000000001.log")).unwrap();
    assert!(matches!(Wal::open(dir.path(), options(64)), Err(StoreError::Corrupt { .. })));
}

#[test]
fn an_absurd_sequence_number_is_refused_not_overflowed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    wal.checkpoint(b"state").unwrap();
    drop(wal);
    fs::rename(
        dir.path().join("snap-00000000000000000002.bin"),
        dir.path().join(format!("snap-{}.bin", u64::MAX)),
    )
    .unwrap();
    assert!(matches!(Wal::open(dir.path(), defaults()), Err(StoreError::Corrupt { .. })));
}

#[test]
fn oversized_records_are_refused_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    let huge = vec![0u8; RECORD_BYTES_MAX + 1];
    assert!(matches!(wal.append(&huge), Err(StoreError::TooLarge { .. })));
    let message = wal.append(&huge).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("record of {} bytes exceeds the limit of {RECORD_BYTES_MAX} bytes", RECORD_BYTES_MAX + 1)
    );
    wal.append(b"fine").unwrap();
    wal.sync().unwrap();
}

/// A checkpoint is the whole state: it may pass the record limit (a store of
/// more than 256 MiB must still snapshot), and recovery reads it back.
#[test]
fn a_checkpoint_larger_than_a_record_is_written_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), defaults()).unwrap();
    let mut state = vec![7u8; RECORD_BYTES_MAX + 1];
    state[RECORD_BYTES_MAX] = 9;
    wal.checkpoint(&state).unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = Wal::open(dir.path(), defaults()).unwrap();
    assert!(recovered.checkpoint.as_ref() == Some(&state), "the checkpoint did not come back whole");
    assert_eq!(recovered.records, vec![b"after".to_vec()]);
}

#[test]
fn fsync_never_still_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions { segment_bytes: 256, fsync: FsyncPolicy::Never, preallocate: true };
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    let records: Vec<Vec<u8>> = (0..50).map(record).collect();
    for r in &records {
        wal.append(r).unwrap();
        wal.sync().unwrap();
    }
    wal.checkpoint(b"c").unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = reopen(dir.path(), opts);
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"c"[..]));
    assert_eq!(recovered.records, vec![b"after".to_vec()]);
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u8>),
    Sync,
    Checkpoint(Vec<u8>),
    /// Reopen, with preallocation on or off from now on: each mode must
    /// read (and continue) a log the other wrote.
    Reopen {
        preallocate: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Op::Append),
        4 => Just(Op::Sync),
        1 => prop::collection::vec(any::<u8>(), 0..120).prop_map(Op::Checkpoint),
        2 => any::<bool>().prop_map(|preallocate| Op::Reopen { preallocate }),
    ]
}

/// What the log must hold: the checkpoint and synced records are durable;
/// buffered ones may or may not survive a reopen.
#[derive(Default)]
struct Model {
    checkpoint: Option<Vec<u8>>,
    durable: Vec<Vec<u8>>,
    buffered: Vec<Vec<u8>>,
}

fn segment_and_snapshot_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let files = names(dir);
    let segments = files.iter().filter(|n| n.starts_with("wal-")).map(|n| dir.join(n)).collect();
    let snapshots = files.iter().filter(|n| n.starts_with("snap-")).map(|n| dir.join(n)).collect();
    (segments, snapshots)
}

fn check_reopen(dir: &Path, opts: WalOptions, model: &mut Model) -> Result<Wal, TestCaseError> {
    let (wal, recovered) = Wal::open(dir, opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&recovered.checkpoint, &model.checkpoint);
    prop_assert_eq!(recovered.torn_tail, None, "a clean shutdown leaves no torn tail");
    prop_assert!(recovered.records.len() >= model.durable.len(), "synced records lost");
    prop_assert_eq!(&recovered.records[..model.durable.len()], &model.durable[..]);
    let survivors = &recovered.records[model.durable.len()..];
    prop_assert!(survivors.len() <= model.buffered.len());
    prop_assert_eq!(survivors, &model.buffered[..survivors.len()]);
    model.durable = recovered.records;
    model.buffered.clear();
    let (segments, snapshots) = segment_and_snapshot_files(dir);
    prop_assert_eq!(segments.len() as u64, wal.stats().segments);
    prop_assert!(snapshots.len() <= 1);
    prop_assert_eq!(snapshots.len() == 1, model.checkpoint.is_some());
    Ok(wal)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model(segment_bytes in 48u64..2048, preallocate in any::<bool>(), ops in prop::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = WalOptions { segment_bytes, fsync: FsyncPolicy::Never, preallocate };
        let mut model = Model::default();
        let mut wal = check_reopen(dir.path(), opts, &mut model)?;
        for op in ops {
            match op {
                Op::Append(r) => {
                    wal.append(&r).unwrap();
                    model.buffered.push(r);
                }
                Op::Sync => {
                    wal.sync().unwrap();
                    model.durable.append(&mut model.buffered);
                    prop_assert_eq!(wal.stats().records_since_checkpoint, model.durable.len() as u64);
                }
                Op::Checkpoint(r) => {
                    wal.checkpoint(&r).unwrap();
                    model.checkpoint = Some(r);
                    model.durable.clear();
                    model.buffered.clear();
                    prop_assert_eq!(wal.stats().records_since_checkpoint, 0);
                }
                Op::Reopen { preallocate } => {
                    drop(wal);
                    opts.preallocate = preallocate;
                    wal = check_reopen(dir.path(), opts, &mut model)?;
                }
            }
        }
        drop(wal);
        check_reopen(dir.path(), opts, &mut model)?;
    }
}

/// A second open of a dir whose log is open is refused before anything is
/// read or changed; once the first is closed, the dir opens again.
#[test]
fn a_dir_in_use_is_refused_until_its_log_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    first.append(b"mine").unwrap();
    first.sync().unwrap();
    let Err(error) = Wal::open(dir.path(), WalOptions::default()) else {
        panic!("the second open must fail")
    };
    assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("in use by another process") && message.contains("LOCK"), "{message}");
    drop(first);
    let (_, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(recovered.records, vec![b"mine".to_vec()]);
}
