//! Torn writes and bit flips, applied to COPIES of real files the WAL wrote.
//!
//! Each test writes a log with `Wal`, copies its files into a fresh
//! directory, damages the copy the way a crash or a bad disk would, and
//! checks what `Wal::open` makes of it: a torn tail is truncated and
//! reported with every earlier record intact; damage to anything synced is a
//! `Corrupt` error naming the file and the byte offset of the damaged record.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use quorum_store::{FsyncPolicy, Recovered, StoreError, TornTail, Wal, WalOptions};
use tempfile::TempDir;

const HEADER_LEN: u64 = 32;
const FRAME_HEADER_LEN: u64 = 16;

fn options() -> WalOptions {
    WalOptions { segment_bytes: 64 << 20, fsync: FsyncPolicy::Always }
}

/// A log written by the WAL: `batches[i]` synced by the i-th `sync`.
struct Written {
    dir: TempDir,
    records: Vec<Vec<u8>>,
    /// Byte offset of each record's frame in the single segment.
    frame_offsets: Vec<u64>,
    segment_len: u64,
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7 + 1) as u8).collect()
}

fn write_log(batches: &[Vec<Vec<u8>>]) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    let mut records = Vec::new();
    let mut frame_offsets = Vec::new();
    let mut offset = HEADER_LEN;
    for batch in batches {
        for record in batch {
            wal.append(record).unwrap();
            frame_offsets.push(offset);
            offset += FRAME_HEADER_LEN + record.len() as u64;
            records.push(record.clone());
        }
        wal.sync().unwrap();
    }
    drop(wal);
    let segment_len = fs::metadata(segment(dir.path(), 1)).unwrap().len();
    assert_eq!(segment_len, offset, "the frame layout this test assumes");
    Written { dir, records, frame_offsets, segment_len }
}

fn segment(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:020}.log"))
}

/// A fresh directory holding a copy of every file of `from`.
fn copy_dir(from: &Path) -> TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    change(&mut bytes);
    fs::write(path, bytes).unwrap();
}

fn open(dir: &Path) -> Result<Recovered, StoreError> {
    Wal::open(dir, options()).map(|(_, recovered)| recovered)
}

#[track_caller]
fn expect_corrupt(dir: &Path, file: &Path, offset: u64) -> String {
    match open(dir) {
        Err(StoreError::Corrupt { file: f, offset: o, reason }) => {
            assert_eq!((f.as_path(), o), (file, offset), "{reason}");
            reason
        }
        other => panic!("expected Corrupt in {} at {offset}, got {other:?}", file.display()),
    }
}

fn one_record_per_sync(count: usize) -> Vec<Vec<Vec<u8>>> {
    (0..count).map(|i| vec![payload(i, 40 + i * 13)]).collect()
}

fn one_batch(count: usize) -> Vec<Vec<Vec<u8>>> {
    vec![(0..count).map(|i| payload(i, 40 + i * 13)).collect()]
}

/// Cutting the file at every byte of the last record loses exactly that
/// record, truncates the file there, and reports it; a second open is clean.
fn truncate_at_every_offset_of_the_last_record(written: &Written) {
    let last = *written.frame_offsets.last().unwrap();
    for cut in last..written.segment_len {
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        OpenOptions::new().write(true).open(&file).unwrap().set_len(cut).unwrap();
        let recovered = open(copy.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let kept = written.records.len() - 1;
        assert_eq!(recovered.records, written.records[..kept], "cut at {cut}");
        let expected_tail =
            (cut > last).then(|| TornTail { file: file.clone(), offset: last, bytes_dropped: cut - last });
        assert_eq!(recovered.torn_tail, expected_tail, "cut at {cut}");
        assert_eq!(
            fs::metadata(&file).unwrap().len(),
            last,
            "cut at {cut}: file truncated to the last good frame"
        );
        let again = open(copy.path()).unwrap();
        assert_eq!(again.records, written.records[..kept]);
        assert_eq!(again.torn_tail, None);
    }
}

#[test]
fn torn_last_record_is_truncated_at_every_offset_when_each_record_had_its_own_sync() {
    truncate_at_every_offset_of_the_last_record(&write_log(&one_record_per_sync(5)));
}

#[test]
fn torn_last_record_is_truncated_at_every_offset_when_all_records_shared_one_sync() {
    truncate_at_every_offset_of_the_last_record(&write_log(&one_batch(5)));
}

#[test]
fn unwritten_space_after_the_log_is_a_torn_tail() {
    let written = write_log(&one_record_per_sync(4));
    let copy = copy_dir(written.dir.path());
    let file = segment(copy.path(), 1);
    // A crash after the file grew but before its data reached the disk (or
    // preallocated space): zeros.
    OpenOptions::new().write(true).open(&file).unwrap().set_len(written.segment_len + 8192).unwrap();
    let recovered = open(copy.path()).unwrap();
    assert_eq!(recovered.records, written.records);
    assert_eq!(
        recovered.torn_tail,
        Some(TornTail { file: file.clone(), offset: written.segment_len, bytes_dropped: 8192 })
    );
    assert_eq!(fs::metadata(&file).unwrap().len(), written.segment_len);
}

#[test]
fn a_flipped_bit_in_any_byte_of_a_middle_record_is_corruption() {
    // Separate syncs (a later sync's record proves the damaged one was
    // synced) and one shared sync (no unwritten sector in between proves it
    // is not a torn write).
    for batches in [one_record_per_sync(5), one_batch(5)] {
        let written = write_log(&batches);
        let (start, end) = (written.frame_offsets[2], written.frame_offsets[3]);
        for byte in start..end {
            let copy = copy_dir(written.dir.path());
            let file = segment(copy.path(), 1);
            edit(&file, |bytes| bytes[byte as usize] ^= 1 << (byte % 8));
            expect_corrupt(copy.path(), &file, start);
            // Refused, not repaired: the copy is untouched.
            assert_eq!(fs::metadata(&file).unwrap().len(), written.segment_len);
        }
    }
}

#[test]
fn a_record_followed_by_a_record_of_a_later_sync_is_corruption_even_if_zeroed() {
    let written = write_log(&one_record_per_sync(5));
    let copy = copy_dir(written.dir.path());
    let file = segment(copy.path(), 1);
    let (start, end) = (written.frame_offsets[1], written.frame_offsets[2]);
    edit(&file, |bytes| bytes[start as usize..end as usize].fill(0));
    let reason = expect_corrupt(copy.path(), &file, start);
    assert!(reason.contains("later sync"), "{reason}");
}

/// A batch big enough to span several sectors, persisted out of order: one
/// whole sector in the middle never reached the disk (reads as zeros) while
/// later sectors did. That is a torn write, never acknowledged.
#[test]
fn a_lost_sector_inside_the_final_batch_is_a_torn_write() {
    let mut batches = one_record_per_sync(2);
    batches.push((10..30).map(|i| payload(i, 150)).collect());
    let written = write_log(&batches);
    let copy = copy_dir(written.dir.path());
    let file = segment(copy.path(), 1);
    let lost = 1024..1536usize;
    edit(&file, |bytes| bytes[lost.clone()].fill(0));
    let first_damaged = written.frame_offsets.iter().rposition(|&o| o <= lost.start as u64).unwrap();
    let recovered = open(copy.path()).unwrap();
    assert_eq!(recovered.records, written.records[..first_damaged]);
    let offset = written.frame_offsets[first_damaged];
    assert_eq!(
        recovered.torn_tail,
        Some(TornTail { file: file.clone(), offset, bytes_dropped: written.segment_len - offset })
    );
}

/// Found by the fuzzer: the lost sector may end inside the next surviving
/// frame, when that frame's bytes there were zero anyway. Here the frame at
/// byte 1023 has length 256, whose low byte (the only byte of it in the lost
/// sector [512, 1024)) is 0, so it verifies after the loss.
#[test]
fn a_lost_sector_may_end_inside_a_surviving_frame() {
    let written = write_log(&[vec![payload(0, 10)], vec![payload(1, 949), payload(2, 256), payload(3, 50)]]);
    assert_eq!(written.frame_offsets[2], 1023, "the layout this test needs");
    let copy = copy_dir(written.dir.path());
    let file = segment(copy.path(), 1);
    edit(&file, |bytes| bytes[512..1024].fill(0));
    let recovered = open(copy.path()).unwrap();
    assert_eq!(recovered.records, written.records[..1]);
    let offset = written.frame_offsets[1];
    assert_eq!(
        recovered.torn_tail,
        Some(TornTail { file: file.clone(), offset, bytes_dropped: written.segment_len - offset })
    );
}

/// The negative control of the test above: zeros that do not cover a whole
/// sector are not what a torn write leaves, so the same shape is corruption.
#[test]
fn zeros_smaller_than_a_sector_inside_the_final_batch_are_corruption() {
    let mut batches = one_record_per_sync(2);
    batches.push((10..30).map(|i| payload(i, 150)).collect());
    let written = write_log(&batches);
    let copy = copy_dir(written.dir.path());
    let file = segment(copy.path(), 1);
    let zeroed = 1100..1500usize;
    edit(&file, |bytes| bytes[zeroed.clone()].fill(0));
    let first_damaged = written.frame_offsets.iter().rposition(|&o| o <= zeroed.start as u64).unwrap();
    let reason = expect_corrupt(copy.path(), &file, written.frame_offsets[first_damaged]);
    assert!(reason.contains("not a torn write"), "{reason}");
}

#[test]
fn damage_in_a_sealed_segment_is_corruption_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions { segment_bytes: 200, fsync: FsyncPolicy::Always };
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    for i in 0..6 {
        wal.append(&payload(i, 120)).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let copy = copy_dir(dir.path());
    let sealed = segment(copy.path(), 2);
    let len = fs::metadata(&sealed).unwrap().len();
    // Its last byte: at the end of the last segment this would be a torn tail.
    edit(&sealed, |bytes| *bytes.last_mut().unwrap() ^= 0x80);
    let last_frame = len - FRAME_HEADER_LEN - 120;
    let reason = expect_corrupt(copy.path(), &sealed, last_frame);
    assert!(reason.contains("sealed"), "{reason}");
    // And a sealed segment cut short.
    let copy = copy_dir(dir.path());
    let sealed = segment(copy.path(), 2);
    OpenOptions::new().write(true).open(&sealed).unwrap().set_len(len - 1).unwrap();
    expect_corrupt(copy.path(), &sealed, last_frame);
}

#[test]
fn a_flipped_bit_in_a_segment_header_is_refused() {
    let written = write_log(&one_record_per_sync(3));
    for byte in 0..HEADER_LEN as usize {
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        edit(&file, |bytes| bytes[byte] ^= 1 << (byte % 8));
        expect_corrupt(copy.path(), &file, 0);
    }
}

#[test]
fn a_file_of_the_wrong_kind_or_place_is_refused() {
    let written = write_log(&one_record_per_sync(3));
    // A segment renamed to another sequence number: its header disagrees.
    let copy = copy_dir(written.dir.path());
    fs::rename(
        segment(copy.path(), 1),
        segment(copy.path(), 1).with_file_name("snap-00000000000000000000.bin"),
    )
    .unwrap();
    fs::copy(segment(written.dir.path(), 1), segment(copy.path(), 1)).unwrap();
    // snap-0 is not a snapshot.
    let snapshot = copy.path().join("snap-00000000000000000000.bin");
    expect_corrupt(copy.path(), &snapshot, 0);

    let copy = copy_dir(written.dir.path());
    fs::rename(segment(copy.path(), 1), segment(copy.path(), 2)).unwrap();
    fs::copy(segment(written.dir.path(), 1), segment(copy.path(), 1)).unwrap();
    let reason = expect_corrupt(copy.path(), &segment(copy.path(), 2), 16);
    assert!(reason.contains("says sequence 1"), "{reason}");

    let copy = copy_dir(written.dir.path());
    fs::write(segment(copy.path(), 1), b"#!/bin/sh\necho not a log\n").unwrap();
    expect_corrupt(copy.path(), &segment(copy.path(), 1), 0);
}

#[test]
fn frames_copied_from_another_segment_do_not_verify() {
    // Two logs with identical records: same sequence numbers, same offsets,
    // different salts. Splicing one's frames into the other is detected.
    let a = write_log(&one_record_per_sync(3));
    let b = write_log(&one_record_per_sync(4));
    let copy = copy_dir(a.dir.path());
    let file = segment(copy.path(), 1);
    let foreign = fs::read(segment(b.dir.path(), 1)).unwrap();
    edit(&file, |bytes| bytes.extend_from_slice(&foreign[a.segment_len as usize..]));
    // The spliced frame sits where it would belong, yet it is a torn tail
    // (not a record): dropped and reported.
    let recovered = open(copy.path()).unwrap();
    assert_eq!(recovered.records, a.records);
    assert_eq!(recovered.torn_tail.map(|t| t.offset), Some(a.segment_len));
}

#[test]
fn a_flipped_bit_anywhere_in_a_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    wal.append(b"before").unwrap();
    wal.sync().unwrap();
    wal.checkpoint(&payload(7, 300)).unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let snapshot_name = "snap-00000000000000000002.bin";
    let len = fs::metadata(dir.path().join(snapshot_name)).unwrap().len() as usize;
    for byte in 0..len {
        let copy = copy_dir(dir.path());
        let snapshot = copy.path().join(snapshot_name);
        edit(&snapshot, |bytes| bytes[byte] ^= 1 << (byte % 8));
        match open(copy.path()) {
            Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, snapshot, "byte {byte}"),
            other => panic!("flip at byte {byte}: expected Corrupt, got {other:?}"),
        }
    }
    // Negative control: the undamaged copy opens.
    let recovered = open(copy_dir(dir.path()).path()).unwrap();
    assert_eq!(recovered.checkpoint, Some(payload(7, 300)));
    assert_eq!(recovered.records, vec![b"after".to_vec()]);
}

#[test]
fn a_truncated_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    wal.checkpoint(&payload(1, 100)).unwrap();
    drop(wal);
    let snapshot = dir.path().join("snap-00000000000000000002.bin");
    let len = fs::metadata(&snapshot).unwrap().len();
    OpenOptions::new().write(true).open(&snapshot).unwrap().set_len(len - 1).unwrap();
    match open(dir.path()) {
        Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, snapshot),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_error_names_file_and_offset() {
    let written = write_log(&one_record_per_sync(3));
    let file = segment(written.dir.path(), 1);
    let offset = written.frame_offsets[1];
    edit(&file, |bytes| bytes[offset as usize + 20] ^= 4);
    let message = open(written.dir.path()).unwrap_err().to_string();
    let prefix = format!("corrupt record in {} at byte {offset}: ", file.display());
    assert!(message.starts_with(&prefix), "{message}");
}
