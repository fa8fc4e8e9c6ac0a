//! Feeds arbitrary bytes to the WAL's recovery reader.
//!
//! Three ways: the raw input as a segment (and snapshot) file; the input as
//! the body behind a well-formed segment header (plain and preallocated), so
//! it gets past the header check; and a well-formed segment, plain or
//! preallocated (zero-padded), built from the input and then damaged as a
//! crash or a disk would (a cut or zeroed tail, a bit flip, a lost sector),
//! where the outcome is known and asserted. Any panic is a finding.
//!
//! Run: `cd crates/store/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wal_read`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quorum_store::format::{
    encode_segment, read_snapshot, SegmentHeader, FRAME_HEADER_LEN, SECTOR_BYTES, SEGMENT_HEADER_LEN,
};
use quorum_store::{read_segment, SegmentRole};

fuzz_target!(|data: &[u8]| {
    let file = Path::new("fuzz.log");
    for role in [SegmentRole::Sealed, SegmentRole::Last] {
        let _ = read_segment(file, data, role);
    }
    let _ = read_snapshot(file, data);

    for preallocated in [false, true] {
        let mut body = SegmentHeader { seq: 1, salt: 0x5A17, preallocated }.encode().to_vec();
        body.extend_from_slice(data);
        for role in [SegmentRole::Sealed, SegmentRole::Last] {
            let _ = read_segment(file, &body, role);
        }
    }

    damaged_segment(data);
});

/// Reads bytes off the input, zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> usize {
        usize::from(self.byte()) << 8 | usize::from(self.byte())
    }
}

/// A segment as the writer lays it out, then one kind of damage.
fn damaged_segment(data: &[u8]) {
    let mut input = Input(data);
    let record_count = 1 + usize::from(input.byte() % 24);
    let mut batches: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    let mut frames = Vec::new(); // [start, end) of each frame
    let mut batch_of = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    for i in 0..record_count {
        let len = usize::from(input.byte()) * 3 % 700;
        let fill = input.byte();
        if i > 0 && fill % 3 == 0 {
            batches.push(Vec::new());
        }
        batches.last_mut().unwrap().push((0..len).map(|j| fill.wrapping_add(j as u8)).collect());
        frames.push((offset, offset + FRAME_HEADER_LEN + len));
        batch_of.push(batches.len() - 1);
        offset += FRAME_HEADER_LEN + len;
    }
    let records: Vec<Vec<u8>> = batches.iter().flatten().cloned().collect();
    let salt = u32::from(input.byte());
    let padding = input.u16() % 2048;
    let preallocated = padding % 2 == 1;
    let mut bytes = encode_segment(&SegmentHeader { seq: 9, salt, preallocated }, &batches);
    assert_eq!(bytes.len(), offset);
    if preallocated {
        bytes.resize(offset + padding, 0);
    }
    let file = Path::new("damaged.log");
    let read = |bytes: &[u8]| read_segment(file, bytes, SegmentRole::Last);

    // Undamaged: everything, no tail.
    let whole = read(&bytes).expect("an undamaged segment reads");
    assert_eq!(whole.records, records);
    assert_eq!(whole.torn_bytes, 0);
    assert_eq!(whole.valid_bytes as usize, offset);

    let final_batch = batches.len() - 1;
    let final_batch_start = frames[batch_of.iter().position(|&b| b == final_batch).unwrap()].0;
    let records_before_final_batch = batch_of.iter().filter(|&&b| b < final_batch).count();
    let body_len = offset - SEGMENT_HEADER_LEN;
    match input.byte() % 5 {
        0 if preallocated => {
            // A torn final write of a preallocated segment: from where the
            // write began or a later sector boundary on, zeros.
            let boundary = (SEGMENT_HEADER_LEN + input.u16() % (body_len + 1)) / SECTOR_BYTES * SECTOR_BYTES;
            let zero_from = boundary.max(final_batch_start);
            bytes[zero_from.min(offset)..offset].fill(0);
            let contents = read(&bytes).expect("a torn final write is a torn tail");
            let whole_frames = frames.iter().filter(|(_, end)| *end <= zero_from).count();
            // The frame across the boundary survives if its zeroed bytes were zeros.
            assert!(contents.records.len() == whole_frames || contents.records.len() == whole_frames + 1);
            assert_eq!(contents.records, records[..contents.records.len()]);
        }
        0 => {
            // A crash cut the file: exactly the whole frames before the cut survive.
            let cut = SEGMENT_HEADER_LEN + input.u16() % (body_len + 1);
            bytes.truncate(cut);
            let contents = read(&bytes).expect("a cut segment is a torn tail");
            let whole_frames = frames.iter().filter(|(_, end)| *end <= cut).count();
            assert_eq!(contents.records, records[..whole_frames]);
            let valid = frames.get(whole_frames.wrapping_sub(1)).map_or(SEGMENT_HEADER_LEN, |f| f.1);
            assert_eq!(contents.valid_bytes as usize, valid);
            assert_eq!(contents.torn_bytes as usize, cut - valid);
        }
        1 => {
            // One flipped bit: never a changed record; synced data is never
            // dropped: a flip before the final batch is always an error.
            let at = SEGMENT_HEADER_LEN + input.u16() % body_len.max(1);
            if at >= bytes.len() {
                return;
            }
            bytes[at] ^= 1 << (input.byte() % 8);
            let damaged_frame = frames.iter().position(|&(start, end)| start <= at && at < end).unwrap();
            match read(&bytes) {
                Ok(contents) => {
                    assert_eq!(batch_of[damaged_frame], final_batch, "a flip in a synced batch was accepted");
                    assert_eq!(contents.records, records[..damaged_frame]);
                }
                Err(_) => assert!(read_segment(file, &bytes, SegmentRole::Sealed).is_err()),
            }
        }
        2 => {
            // A lost sector inside the final batch: a torn write, recovered
            // as one, keeping everything synced before it.
            let first_sector = final_batch_start.div_ceil(SECTOR_BYTES);
            let sectors = bytes.len() / SECTOR_BYTES;
            if first_sector >= sectors {
                return;
            }
            let sector = first_sector + input.u16() % (sectors - first_sector);
            bytes[sector * SECTOR_BYTES..(sector + 1) * SECTOR_BYTES].fill(0);
            let contents = read(&bytes).expect("a lost sector in the final batch is a torn write");
            assert!(contents.records.len() >= records_before_final_batch);
            assert_eq!(contents.records, records[..contents.records.len()]);
        }
        3 => {
            // One flipped bit in the unused tail of a preallocated segment:
            // refused, or removed as a torn tail; never a changed record.
            if !preallocated || padding == 0 {
                return;
            }
            let at = offset + input.u16() % padding;
            bytes[at] ^= 1 << (input.byte() % 8);
            if let Ok(contents) = read(&bytes) {
                assert_eq!(contents.records, records);
                assert!(contents.torn_bytes > 0, "a flipped bit read as a clean end");
            }
        }
        _ => {
            // Arbitrary overwrite of a range with input bytes. Only "no
            // panic" holds here: libFuzzer's comparison tracing can forge a
            // frame's CRCs from bytes it controls.
            let at = SEGMENT_HEADER_LEN + input.u16() % body_len.max(1);
            let len = usize::from(input.byte());
            for i in at..(at + len).min(bytes.len()) {
                bytes[i] = input.byte();
            }
            let _ = read(&bytes);
            let _ = read_segment(file, &bytes, SegmentRole::Sealed);
        }
    }
}
