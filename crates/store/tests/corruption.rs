//! Torn writes and bit flips, applied to COPIES of real files the WAL wrote.
//!
//! Each test writes a log with `Wal`, copies its files into a fresh
//! directory, damages the copy the way a crash or a bad disk would, and
//! checks what `Wal::open` makes of it: a torn tail is truncated and
//! reported with every earlier record intact; damage to anything synced is a
//! `Corrupt` error naming the file and the byte offset of the damaged record.
//!
//! Most tests run twice: on a plain segment (the file ends at its last
//! record) and on a preallocated one (zero-filled to its full length first).
//! Where the two differ, a torn write of a preallocated segment leaves zeros
//! in place of lost sectors instead of a shorter file, so "cut the file at
//! byte b" becomes "zero from sector boundary b to the end".

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use quorum_store::{FsyncPolicy, Recovered, StoreError, TornTail, Wal, WalOptions};
use tempfile::TempDir;

const HEADER_LEN: u64 = 32;
const FRAME_HEADER_LEN: u64 = 16;

/// Preallocated segments of 64 KiB: far more than any log here holds, so
/// each test's log is one segment.
const PREALLOCATED_BYTES: u64 = 64 << 10;
const SECTOR: u64 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Preallocated,
}

const MODES: [Mode; 2] = [Mode::Plain, Mode::Preallocated];

fn options_for(mode: Mode) -> WalOptions {
    match mode {
        Mode::Plain => WalOptions { segment_bytes: 64 << 20, fsync: FsyncPolicy::Always, preallocate: false },
        Mode::Preallocated => {
            WalOptions { segment_bytes: PREALLOCATED_BYTES, fsync: FsyncPolicy::Always, preallocate: true }
        }
    }
}

/// For the tests that do not depend on the mode (snapshots).
fn options() -> WalOptions {
    options_for(Mode::Preallocated)
}

/// A log written by the WAL: `batches[i]` synced by the i-th `sync`.
struct Written {
    mode: Mode,
    dir: TempDir,
    records: Vec<Vec<u8>>,
    /// Byte offset of each record's frame in the single segment.
    frame_offsets: Vec<u64>,
    /// Where the records end.
    segment_len: u64,
    /// The file's length: `segment_len`, or the preallocated length.
    file_len: u64,
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7 + 1) as u8).collect()
}

fn write_log(mode: Mode, batches: &[Vec<Vec<u8>>]) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options_for(mode)).unwrap();
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
    let file_len = fs::metadata(segment(dir.path(), 1)).unwrap().len();
    match mode {
        Mode::Plain => assert_eq!(file_len, offset, "the frame layout this test assumes"),
        Mode::Preallocated => {
            assert_eq!(file_len, PREALLOCATED_BYTES, "the segment is preallocated");
            let bytes = fs::read(segment(dir.path(), 1)).unwrap();
            assert!(bytes[offset as usize..].iter().all(|&b| b == 0), "zeros after the records");
        }
    }
    Written { mode, dir, records, frame_offsets, segment_len: offset, file_len }
}

/// The last non-zero byte of `file`, plus one: how far a preallocated
/// segment's damage reaches.
fn nonzero_end(file: &Path) -> u64 {
    let bytes = fs::read(file).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last as u64 + 1)
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
    open_as(dir, Mode::Preallocated)
}

fn open_as(dir: &Path, mode: Mode) -> Result<Recovered, StoreError> {
    Wal::open(dir, options_for(mode)).map(|(_, recovered)| recovered)
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

/// Where a torn write of the last record may end: every byte for a plain
/// segment (the file is cut), every sector boundary for a preallocated one
/// (the sectors after it read as the zeros they held).
fn tear_points(written: &Written) -> Vec<u64> {
    let last = *written.frame_offsets.last().unwrap();
    let step = if written.mode == Mode::Plain { 1 } else { SECTOR };
    (last..written.segment_len).filter(|cut| cut % step == 0 || *cut == last).collect()
}

/// Tearing the last write at every place a crash could loses exactly the
/// last record, removes its remains (plain: truncated; preallocated: zeroed,
/// the file keeps its length), and reports it; a second open is clean.
fn tear_the_last_record_everywhere(written: &Written) {
    let last = *written.frame_offsets.last().unwrap();
    let cuts = tear_points(written);
    assert!(cuts.len() > 1, "the last record spans a sector boundary");
    for cut in cuts {
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        let reaches = match written.mode {
            Mode::Plain => {
                OpenOptions::new().write(true).open(&file).unwrap().set_len(cut).unwrap();
                cut
            }
            Mode::Preallocated => {
                edit(&file, |bytes| bytes[cut as usize..written.segment_len as usize].fill(0));
                nonzero_end(&file).max(last)
            }
        };
        let recovered = open_as(copy.path(), written.mode).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let kept = written.records.len() - 1;
        assert_eq!(recovered.records, written.records[..kept], "cut at {cut}");
        let expected_tail = (reaches > last).then(|| TornTail {
            file: file.clone(),
            offset: last,
            bytes_dropped: reaches - last,
        });
        assert_eq!(recovered.torn_tail, expected_tail, "cut at {cut}");
        let expected_len = if written.mode == Mode::Plain { last } else { written.file_len };
        assert_eq!(fs::metadata(&file).unwrap().len(), expected_len, "cut at {cut}");
        assert_eq!(nonzero_end(&file), last, "cut at {cut}: nothing of the torn record is left");
        let again = open_as(copy.path(), written.mode).unwrap();
        assert_eq!(again.records, written.records[..kept]);
        assert_eq!(again.torn_tail, None);
    }
}

#[test]
fn torn_last_record_is_removed_wherever_it_tore_when_each_record_had_its_own_sync() {
    for mode in MODES {
        // Long enough records that the last one spans a sector boundary.
        let batches: Vec<_> = (0..5).map(|i| vec![payload(i, 300 + i * 13)]).collect();
        tear_the_last_record_everywhere(&write_log(mode, &batches));
    }
}

#[test]
fn torn_last_record_is_removed_wherever_it_tore_when_all_records_shared_one_sync() {
    for mode in MODES {
        let batches = vec![(0..5).map(|i| payload(i, 300 + i * 13)).collect()];
        tear_the_last_record_everywhere(&write_log(mode, &batches));
    }
}

/// The negative control of the preallocated half of the tests above: in a
/// preallocated segment a torn write zeroes whole sectors, so zeros that
/// start inside a sector and leave the rest of the record's part of that
/// sector intact are damage (a flipped or zeroed byte of a synced record),
/// not a torn write, even in the last record of the log.
#[test]
fn a_partly_zeroed_last_record_of_a_preallocated_segment_is_corruption() {
    let batches: Vec<_> = (0..5).map(|i| vec![payload(i, 300 + i * 13)]).collect();
    let written = write_log(Mode::Preallocated, &batches);
    let last = *written.frame_offsets.last().unwrap();
    let end = written.segment_len;
    assert!(end - 10 > (end - 1) / SECTOR * SECTOR, "the layout this test needs");
    // Its last 10 bytes, and its payload CRC.
    for zeroed in [end - 10..end, last + 8..last + 12] {
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        edit(&file, |bytes| bytes[zeroed.start as usize..zeroed.end as usize].fill(0));
        let reason = expect_corrupt(copy.path(), &file, last);
        assert!(reason.contains("not a torn write"), "{reason}");
    }
}

#[test]
fn a_flipped_bit_in_the_last_record_of_a_preallocated_segment_is_corruption() {
    let written = write_log(Mode::Preallocated, &one_record_per_sync(5));
    let last = *written.frame_offsets.last().unwrap();
    for byte in last..written.segment_len {
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        edit(&file, |bytes| bytes[byte as usize] ^= 1 << (byte % 8));
        expect_corrupt(copy.path(), &file, last);
    }
    // Negative control: a plain segment cannot tell this from a torn write
    // (the documented residual ambiguity) and truncates it.
    let plain = write_log(Mode::Plain, &one_record_per_sync(5));
    let copy = copy_dir(plain.dir.path());
    edit(&segment(copy.path(), 1), |bytes| bytes[last as usize + 20] ^= 1);
    assert_eq!(open_as(copy.path(), Mode::Plain).unwrap().torn_tail.map(|t| t.offset), Some(last));
}

#[test]
fn the_zero_tail_of_a_preallocated_segment_is_a_clean_end() {
    for batches in [one_record_per_sync(4), one_batch(4), Vec::new()] {
        let written = write_log(Mode::Preallocated, &batches);
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        let before = fs::read(&file).unwrap();
        let recovered = open(copy.path()).unwrap();
        assert_eq!(recovered.records, written.records);
        assert_eq!(recovered.torn_tail, None);
        assert_eq!(fs::read(&file).unwrap(), before, "a clean open changes nothing");
    }
}

/// Garbage after the last record of a preallocated segment, where only
/// zeros were ever synced, is not what a torn write leaves when its record
/// header holds no zeros: refused. (A plain segment truncates it: below.)
#[test]
fn garbage_after_the_last_record_of_a_preallocated_segment_is_corruption() {
    let written = write_log(Mode::Preallocated, &one_record_per_sync(3));
    for (at, len) in [(written.segment_len, 40), (written.segment_len, 16), (written.segment_len, 3000)] {
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        edit(&file, |bytes| {
            for (i, byte) in bytes[at as usize..(at + len) as usize].iter_mut().enumerate() {
                *byte = (i * 37 + 11) as u8 | 1;
            }
        });
        let reason = expect_corrupt(copy.path(), &file, written.segment_len);
        assert!(reason.contains("preallocated"), "{reason}");
    }
}

#[test]
fn unwritten_space_after_the_log_is_a_torn_tail() {
    // Plain segments only: in a preallocated one, zeros are the clean end.
    let written = write_log(Mode::Plain, &one_record_per_sync(4));
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
    for (mode, batches) in MODES.into_iter().flat_map(|m| [(m, one_record_per_sync(5)), (m, one_batch(5))]) {
        let written = write_log(mode, &batches);
        let (start, end) = (written.frame_offsets[2], written.frame_offsets[3]);
        for byte in start..end {
            let copy = copy_dir(written.dir.path());
            let file = segment(copy.path(), 1);
            edit(&file, |bytes| bytes[byte as usize] ^= 1 << (byte % 8));
            let before = fs::read(&file).unwrap();
            expect_corrupt(copy.path(), &file, start);
            // Refused, not repaired: the copy is untouched.
            assert_eq!(fs::read(&file).unwrap(), before, "{mode:?}");
        }
    }
}

#[test]
fn a_record_followed_by_a_record_of_a_later_sync_is_corruption_even_if_zeroed() {
    for mode in MODES {
        let written = write_log(mode, &one_record_per_sync(5));
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        let (start, end) = (written.frame_offsets[1], written.frame_offsets[2]);
        edit(&file, |bytes| bytes[start as usize..end as usize].fill(0));
        let reason = expect_corrupt(copy.path(), &file, start);
        assert!(reason.contains("later sync"), "{mode:?}: {reason}");
    }
}

/// What recovery drops from `offset`: the rest of a plain segment, the
/// non-zero rest of a preallocated one (measured before recovery zeroes it).
fn dropped_from(written: &Written, file: &Path, offset: u64) -> u64 {
    match written.mode {
        Mode::Plain => written.file_len - offset,
        Mode::Preallocated => nonzero_end(file) - offset,
    }
}

/// A batch big enough to span several sectors, persisted out of order: one
/// whole sector in the middle never reached the disk (reads as zeros) while
/// later sectors did. That is a torn write, never acknowledged.
#[test]
fn a_lost_sector_inside_the_final_batch_is_a_torn_write() {
    let mut batches = one_record_per_sync(2);
    batches.push((10..30).map(|i| payload(i, 150)).collect());
    for mode in MODES {
        let written = write_log(mode, &batches);
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        let lost = 1024..1536usize;
        edit(&file, |bytes| bytes[lost.clone()].fill(0));
        let first_damaged = written.frame_offsets.iter().rposition(|&o| o <= lost.start as u64).unwrap();
        let offset = written.frame_offsets[first_damaged];
        let bytes_dropped = dropped_from(&written, &file, offset);
        let recovered = open(copy.path()).unwrap();
        assert_eq!(recovered.records, written.records[..first_damaged]);
        assert_eq!(recovered.torn_tail, Some(TornTail { file: file.clone(), offset, bytes_dropped }));
    }
}

/// Found by the fuzzer: the lost sector may end inside the next surviving
/// frame, when that frame's bytes there were zero anyway. Here the frame at
/// byte 1023 has length 256, whose low byte (the only byte of it in the lost
/// sector [512, 1024)) is 0, so it verifies after the loss.
#[test]
fn a_lost_sector_may_end_inside_a_surviving_frame() {
    let batches = [vec![payload(0, 10)], vec![payload(1, 949), payload(2, 256), payload(3, 50)]];
    for mode in MODES {
        let written = write_log(mode, &batches);
        assert_eq!(written.frame_offsets[2], 1023, "the layout this test needs");
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        edit(&file, |bytes| bytes[512..1024].fill(0));
        let offset = written.frame_offsets[1];
        let bytes_dropped = dropped_from(&written, &file, offset);
        let recovered = open(copy.path()).unwrap();
        assert_eq!(recovered.records, written.records[..1]);
        assert_eq!(recovered.torn_tail, Some(TornTail { file: file.clone(), offset, bytes_dropped }));
    }
}

/// The negative control of the test above: zeros that do not cover a whole
/// sector are not what a torn write leaves, so the same shape is corruption.
#[test]
fn zeros_smaller_than_a_sector_inside_the_final_batch_are_corruption() {
    let mut batches = one_record_per_sync(2);
    batches.push((10..30).map(|i| payload(i, 150)).collect());
    for mode in MODES {
        let written = write_log(mode, &batches);
        let copy = copy_dir(written.dir.path());
        let file = segment(copy.path(), 1);
        let zeroed = 1100..1500usize;
        edit(&file, |bytes| bytes[zeroed.clone()].fill(0));
        let first_damaged = written.frame_offsets.iter().rposition(|&o| o <= zeroed.start as u64).unwrap();
        let reason = expect_corrupt(copy.path(), &file, written.frame_offsets[first_damaged]);
        assert!(reason.contains("not a torn write"), "{mode:?}: {reason}");
    }
}

#[test]
fn damage_in_a_sealed_segment_is_corruption_even_at_its_end() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions { segment_bytes: 200, ..options_for(mode) };
        let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
        for i in 0..6 {
            wal.append(&payload(i, 120)).unwrap();
            wal.sync().unwrap();
        }
        drop(wal);
        let copy = copy_dir(dir.path());
        let sealed = segment(copy.path(), 2);
        let len = fs::metadata(&sealed).unwrap().len();
        // Sealing cut a preallocated segment back to its last record.
        assert_eq!(len, HEADER_LEN + 2 * (FRAME_HEADER_LEN + 120), "{mode:?}");
        // Its last byte: at the end of the last segment this would be a torn tail.
        edit(&sealed, |bytes| *bytes.last_mut().unwrap() ^= 0x80);
        let last_frame = len - FRAME_HEADER_LEN - 120;
        let reason = expect_corrupt(copy.path(), &sealed, last_frame);
        assert!(reason.contains("sealed"), "{reason}");
        // A sealed segment cut short.
        let copy = copy_dir(dir.path());
        let sealed = segment(copy.path(), 2);
        OpenOptions::new().write(true).open(&sealed).unwrap().set_len(len - 1).unwrap();
        expect_corrupt(copy.path(), &sealed, last_frame);
        // And one whose last record was zeroed: in a sealed segment that is
        // never the unused tail of a preallocated one.
        let copy = copy_dir(dir.path());
        let sealed = segment(copy.path(), 2);
        edit(&sealed, |bytes| bytes[last_frame as usize..].fill(0));
        let reason = expect_corrupt(copy.path(), &sealed, last_frame);
        assert!(reason.contains("sealed"), "{reason}");
    }
}

#[test]
fn a_flipped_bit_in_a_segment_header_is_refused() {
    for mode in MODES {
        let written = write_log(mode, &one_record_per_sync(3));
        for byte in 0..HEADER_LEN as usize {
            let copy = copy_dir(written.dir.path());
            let file = segment(copy.path(), 1);
            edit(&file, |bytes| bytes[byte] ^= 1 << (byte % 8));
            expect_corrupt(copy.path(), &file, 0);
        }
    }
}

#[test]
fn a_file_of_the_wrong_kind_or_place_is_refused() {
    // Plain segments: copies of a preallocated one would be refused earlier,
    // as sealed segments with a zero tail.
    let written = write_log(Mode::Plain, &one_record_per_sync(3));
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
    for mode in MODES {
        let a = write_log(mode, &one_record_per_sync(3));
        let b = write_log(mode, &one_record_per_sync(4));
        let copy = copy_dir(a.dir.path());
        let file = segment(copy.path(), 1);
        let foreign = fs::read(segment(b.dir.path(), 1)).unwrap();
        let spliced = &foreign[a.segment_len as usize..b.segment_len as usize];
        edit(&file, |bytes| {
            bytes.truncate(a.segment_len as usize);
            bytes.extend_from_slice(spliced);
            bytes.resize(a.file_len.max(b.segment_len) as usize, 0);
        });
        match mode {
            // The spliced frame sits where it would belong, yet it is a torn
            // tail (not a record): dropped and reported.
            Mode::Plain => {
                let recovered = open(copy.path()).unwrap();
                assert_eq!(recovered.records, a.records);
                assert_eq!(recovered.torn_tail.map(|t| t.offset), Some(a.segment_len));
            }
            // Where only zeros were synced, a frame that does not verify and
            // holds no zeros is refused.
            Mode::Preallocated => {
                expect_corrupt(copy.path(), &file, a.segment_len);
            }
        }
    }
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
    let written = write_log(Mode::Preallocated, &one_record_per_sync(3));
    let file = segment(written.dir.path(), 1);
    let offset = written.frame_offsets[1];
    edit(&file, |bytes| bytes[offset as usize + 20] ^= 4);
    let message = open(written.dir.path()).unwrap_err().to_string();
    let prefix = format!("corrupt record in {} at byte {offset}: ", file.display());
    assert!(message.starts_with(&prefix), "{message}");
}
