//! On-disk encodings (segment header, record frame, snapshot file) and the
//! pure readers that recovery and the fuzz target share.
//!
//! Everything here works on byte slices and never touches the filesystem, so
//! the exact code that decides "torn tail or corruption" during recovery is
//! the code the fuzzer hammers. The layout is described in the crate docs.

use std::ops::Range;
use std::path::Path;

use crate::error::StoreError;

/// First eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"QUORUMWL";
/// First eight bytes of every snapshot (checkpoint) file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QUORUMSN";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of a segment header: magic, version, flags, seq, salt, CRC.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Bytes of a record frame header: length, batch delta, payload CRC, header CRC.
pub const FRAME_HEADER_LEN: usize = 16;
/// Bytes of a snapshot header: magic, version, flags, seq, length, payload CRC, header CRC.
pub const SNAPSHOT_HEADER_LEN: usize = 40;
/// Hard limit on one log record: a length field above it is damage, not
/// data, and recovery will not try to allocate it.
pub const RECORD_BYTES_MAX: usize = 256 << 20;
/// Hard limit on one checkpoint (the whole state, in one snapshot file).
/// Far above [`RECORD_BYTES_MAX`]: a state grows with the data it holds, and
/// a snapshot is read by its file's length, never by a length field alone.
pub const SNAPSHOT_BYTES_MAX: u64 = 64 << 30;
/// The unit a disk writes atomically; a torn write loses whole sectors.
pub const SECTOR_BYTES: usize = 512;
/// Segment header flag: the file was zero-filled to its full length and
/// synced before its first record, so the zeros after the last record are
/// unused space (a clean end), not a torn write. A version-1 reader that
/// predates the flag refuses such a segment ("unknown segment flags") rather
/// than misreading it, so the flag needs no version bump.
pub const FLAG_PREALLOCATED: u32 = 1;
/// Every flag this build understands.
const FLAGS_KNOWN: u32 = FLAG_PREALLOCATED;

/// The identity of a segment file. Its CRC seeds every record CRC in the
/// segment, so a record is only valid inside the segment (and, see
/// [`encode_frame`], at the byte offset) it was written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Position of the segment in the log; strictly increasing, shared with snapshots.
    pub seq: u64,
    /// Random per segment: a frame copied from another segment, another node
    /// or a record payload never verifies here.
    pub salt: u32,
    /// [`FLAG_PREALLOCATED`]: the segment was zero-filled before its first record.
    pub preallocated: bool,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let flags = if self.preallocated { FLAG_PREALLOCATED } else { 0 };
        out[12..16].copy_from_slice(&flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..28].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and verifies a header; the error is a human-readable reason.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        let Some(header) = bytes.get(0..SEGMENT_HEADER_LEN) else {
            return Err(format!(
                "file is {} bytes, shorter than a {SEGMENT_HEADER_LEN}-byte segment header",
                bytes.len()
            ));
        };
        if header[0..8] != SEGMENT_MAGIC {
            return Err("not a quorum write-ahead log segment (bad magic)".to_string());
        }
        let stored_crc = le_u32(&header[28..32]);
        let crc = crc32c::crc32c(&header[0..28]);
        if stored_crc != crc {
            return Err(format!(
                "segment header checksum mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
            ));
        }
        let version = le_u32(&header[8..12]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "unsupported segment format version {version} (this build reads {FORMAT_VERSION})"
            ));
        }
        let flags = le_u32(&header[12..16]);
        if flags & !FLAGS_KNOWN != 0 {
            return Err(format!("unknown segment flags {flags:#x}"));
        }
        Ok(SegmentHeader {
            seq: le_u64(&header[16..24]),
            salt: le_u32(&header[24..28]),
            preallocated: flags & FLAG_PREALLOCATED != 0,
        })
    }

    /// The CRC seed of every frame in this segment: the header's own CRC.
    pub fn seed(&self) -> u32 {
        let encoded = self.encode();
        le_u32(&encoded[28..32])
    }
}

/// Appends one frame to `out`.
///
/// `offset` is the byte offset in the segment file where the frame will land;
/// both CRCs cover it, so a frame that moved (a misdirected write, a frame
/// inside a payload, a stale copy) does not verify. `batch_delta` is
/// `offset` minus the offset where the write batch holding this frame began:
/// the first frame written after a sync has delta 0. Recovery uses it to tell
/// a torn final write from damage to a write that was already synced.
pub fn encode_frame(out: &mut Vec<u8>, seed: u32, offset: u64, batch_delta: u32, payload: &[u8]) {
    debug_assert!(payload.len() <= RECORD_BYTES_MAX);
    let offset_bytes = offset.to_le_bytes();
    let payload_crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &offset_bytes), payload);
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..8].copy_from_slice(&batch_delta.to_le_bytes());
    header[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &offset_bytes), &header[0..12]);
    header[12..16].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// Encodes a whole segment as the writer lays it out: `batches[i]` holds the
/// records of the i-th sync. For tests and fuzzing; the WAL encodes
/// incrementally with [`encode_frame`].
pub fn encode_segment(header: &SegmentHeader, batches: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let seed = header.seed();
    let mut out = header.encode().to_vec();
    for batch in batches {
        let batch_start = out.len();
        for record in batch {
            let offset = out.len();
            encode_frame(&mut out, seed, offset as u64, (offset - batch_start) as u32, record);
        }
    }
    out
}

/// A frame that verified.
#[derive(Debug)]
struct Frame {
    payload: Range<usize>,
    /// Where the write batch holding this frame began.
    batch_start: usize,
}

impl Frame {
    fn end(&self) -> usize {
        self.payload.end
    }
}

/// Why the bytes at an offset are not a frame.
#[derive(Debug)]
enum BadFrame {
    Unwritten,
    ShortHeader { available: usize },
    HeaderChecksum,
    TooLong { len: usize },
    PastEnd { len: usize, available: usize },
    PayloadChecksum,
    BatchOffset { delta: usize },
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::Unwritten => write!(f, "unwritten (all-zero) record header"),
            BadFrame::ShortHeader { available } => {
                write!(f, "only {available} of a {FRAME_HEADER_LEN}-byte record header present")
            }
            BadFrame::HeaderChecksum => write!(f, "record header checksum mismatch"),
            BadFrame::TooLong { len } => {
                write!(f, "record length {len} exceeds the limit of {RECORD_BYTES_MAX} bytes")
            }
            BadFrame::PastEnd { len, available } => {
                write!(f, "record of {len} bytes extends past the end of the file ({available} bytes left)")
            }
            BadFrame::PayloadChecksum => write!(f, "record payload checksum mismatch"),
            BadFrame::BatchOffset { delta } => {
                write!(f, "record claims its write began {delta} bytes earlier, before the first record")
            }
        }
    }
}

fn decode_frame(bytes: &[u8], at: usize, seed: u32) -> Result<Frame, BadFrame> {
    let available = bytes.len().saturating_sub(at);
    let Some(header) = bytes.get(at..at.saturating_add(FRAME_HEADER_LEN)) else {
        return Err(BadFrame::ShortHeader { available });
    };
    // Unwritten space (preallocated, or a file extended by a write that never
    // reached the disk) reads as zeros. Rejecting it by rule rather than by
    // checksum keeps the forward scan in `judge_bad_frame` from ever taking
    // zeros for a record, whatever the seed.
    if header.iter().all(|&b| b == 0) {
        return Err(BadFrame::Unwritten);
    }
    let offset_bytes = (at as u64).to_le_bytes();
    let offset_crc = crc32c::crc32c_append(seed, &offset_bytes);
    if crc32c::crc32c_append(offset_crc, &header[0..12]) != le_u32(&header[12..16]) {
        return Err(BadFrame::HeaderChecksum);
    }
    let len = le_u32(&header[0..4]) as usize;
    if len > RECORD_BYTES_MAX {
        return Err(BadFrame::TooLong { len });
    }
    let payload_start = at + FRAME_HEADER_LEN;
    let Some(payload) = bytes.get(payload_start..payload_start + len) else {
        return Err(BadFrame::PastEnd { len, available: available - FRAME_HEADER_LEN });
    };
    if crc32c::crc32c_append(offset_crc, payload) != le_u32(&header[8..12]) {
        return Err(BadFrame::PayloadChecksum);
    }
    let delta = le_u32(&header[4..8]) as usize;
    let batch_start = match at.checked_sub(delta) {
        Some(start) if start >= SEGMENT_HEADER_LEN => start,
        _ => return Err(BadFrame::BatchOffset { delta }),
    };
    Ok(Frame { payload: payload_start..payload_start + len, batch_start })
}

/// The first offset in `[from, len)` where a frame verifies.
///
/// Cost: one header CRC per non-zero candidate offset (payload CRCs only
/// behind a verified header), so a scan of a whole 64 MiB segment stays well
/// under a second. It only runs when recovery meets a bad frame. Offsets
/// past `last_nonzero` (the last non-zero byte of `bytes`) are skipped: a
/// frame header there would be all zeros, which is never a frame. That keeps
/// the scan short in a preallocated segment, whose tail is zeros.
fn find_frame(bytes: &[u8], from: usize, seed: u32, last_nonzero: usize) -> Option<(usize, Frame)> {
    let last_start = bytes.len().checked_sub(FRAME_HEADER_LEN)?.min(last_nonzero);
    (from..=last_start).find_map(|at| decode_frame(bytes, at, seed).ok().map(|frame| (at, frame)))
}

/// Are all of `bytes` zero? (Chunked so that the compiler vectorizes it: it
/// runs over the whole unused tail of a preallocated segment on every open.)
fn all_zero(bytes: &[u8]) -> bool {
    bytes.chunks(4096).all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The offset of the last non-zero byte of `bytes`, if any.
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b != 0)
}

/// Does a sector holding a byte of `range` read, from `bad_at` (or its
/// start, if later) to its end, as all zeros? That is what a sector the disk
/// never wrote looks like in a preallocated segment: its old contents, which
/// are zeros from where the torn write began (at or before `bad_at`) on.
fn has_lost_sector(bytes: &[u8], bad_at: usize, range: Range<usize>) -> bool {
    let end = range.end.min(bytes.len());
    if range.start >= end {
        return false;
    }
    let first_sector = range.start / SECTOR_BYTES;
    let last_sector = (end - 1) / SECTOR_BYTES;
    (first_sector..=last_sector).any(|sector| {
        let lo = (sector * SECTOR_BYTES).max(bad_at);
        let hi = ((sector + 1) * SECTOR_BYTES).min(bytes.len());
        all_zero(&bytes[lo..hi])
    })
}

/// Could a torn write have left the bad frame at `bad_at` of a preallocated
/// segment the way it is? Every sector of the write that reached the disk
/// holds the right bytes; every sector that did not holds its old contents,
/// zeros from where the write began. So a torn frame either has a header
/// that verifies and a payload with a byte in such a lost sector (or running
/// past the end of the file), or a header with a byte in one. A frame that
/// fails its checksum with no lost sector in it (a flipped bit, garbage, a
/// stray zero byte) was not torn: it is damage.
fn torn_frame_explains(bytes: &[u8], bad_at: usize, bad: &BadFrame) -> bool {
    match bad {
        BadFrame::ShortHeader { .. } | BadFrame::PastEnd { .. } => true,
        BadFrame::Unwritten | BadFrame::HeaderChecksum => {
            has_lost_sector(bytes, bad_at, bad_at..bad_at + FRAME_HEADER_LEN)
        }
        BadFrame::PayloadChecksum => {
            let len = le_u32(&bytes[bad_at..bad_at + 4]) as usize;
            let payload = bad_at + FRAME_HEADER_LEN;
            has_lost_sector(bytes, bad_at, payload..payload + len)
        }
        // The header verified, so the writer wrote these fields: no torn
        // write produces them.
        BadFrame::TooLong { .. } | BadFrame::BatchOffset { .. } => false,
    }
}

/// Did a sector between the first bad frame and the next surviving one read
/// exactly as it did before the write that began at `batch_start`?
///
/// A write that a crash tore loses whole sectors. A lost sector past the old
/// end of file reads as zeros; the sector holding the old end (`batch_start`)
/// reads as old data then zeros. So a torn write leaves a range
/// `[max(batch_start, sector start), sector end)` of zeros that starts at or
/// after the bad frame and before the survivor. It may run into the
/// survivor: a frame whose first bytes happen to be zero (an empty record, a
/// length with a zero low byte) still verifies when the lost sector covered
/// them. A bit flip in a synced record leaves no such range (unless the data
/// itself holds a sector of zeros: the residual risk, documented).
fn has_unwritten_sector(bytes: &[u8], batch_start: usize, bad_at: usize, next_valid: usize) -> bool {
    let first_sector = bad_at / SECTOR_BYTES;
    let last_sector = next_valid / SECTOR_BYTES;
    (first_sector..=last_sector).any(|sector| {
        let lo = (sector * SECTOR_BYTES).max(batch_start);
        let hi = ((sector + 1) * SECTOR_BYTES).min(bytes.len());
        lo >= bad_at && lo < next_valid && lo < hi && bytes[lo..hi].iter().all(|&b| b == 0)
    })
}

/// Decides whether a bad frame at `bad_at` in the last segment is a torn
/// tail (`Ok`) or damage to synced data (`Err(reason)`).
///
/// The writer issues a batch's bytes only after the previous batch's fdatasync
/// returned. So a crash can only damage the final batch, and:
/// - a verifying frame after `bad_at` that belongs to a *later* batch (its
///   batch began after `bad_at`) proves the bad frame was synced: corruption;
/// - a verifying frame of the *same* batch after it is possible when the disk
///   persisted the batch's sectors out of order, but then a lost sector must
///   lie in between ([`has_unwritten_sector`]); otherwise it is corruption;
/// - nothing verifying after it: a torn tail (a partial write, zeros, garbage).
fn judge_bad_frame(
    bytes: &[u8],
    seed: u32,
    bad_at: usize,
    batch_start: usize,
    bad: &BadFrame,
) -> Result<(), String> {
    let Some(last_nonzero) = last_nonzero(bytes) else {
        return Ok(());
    };
    let mut at = bad_at + 1;
    let mut first_survivor = true;
    while let Some((found, frame)) = find_frame(bytes, at, seed, last_nonzero) {
        if frame.batch_start > bad_at {
            return Err(format!(
                "{bad}, and a valid record at byte {found} follows it that was written by a later sync, \
                 so this record had been synced"
            ));
        }
        if frame.batch_start != batch_start && frame.batch_start != bad_at {
            return Err(format!(
                "{bad}; the valid record at byte {found} claims its write began at byte {}, which is not \
                 where any write began",
                frame.batch_start
            ));
        }
        if first_survivor && !has_unwritten_sector(bytes, frame.batch_start, bad_at, found) {
            return Err(format!(
                "{bad}, yet a valid record of the same write follows it at byte {found} with no unwritten \
                 sector in between: damage, not a torn write"
            ));
        }
        first_survivor = false;
        at = frame.end();
    }
    Ok(())
}

/// Where a segment sits in the log, which decides how a bad frame is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentRole {
    /// A segment the log has rolled past: it was synced to its last byte
    /// before the next one was created, so any bad byte is corruption.
    Sealed,
    /// The segment being appended to: its end may hold a torn final write.
    Last,
}

/// What [`read_segment`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct SegmentContents {
    pub seq: u64,
    /// The header's [`FLAG_PREALLOCATED`]: the zeros after the records are
    /// unused space, and a torn tail is repaired by zeroing, not truncating.
    pub preallocated: bool,
    /// Every record that verified, in order.
    pub records: Vec<Vec<u8>>,
    /// End of the last verifying frame: where the next append goes.
    pub valid_bytes: u64,
    /// Bytes after `valid_bytes` judged a torn tail (always 0 for a sealed
    /// segment). In a preallocated segment, up to the last non-zero byte:
    /// the zeros after it are the unused space, not part of the damage.
    pub torn_bytes: u64,
}

/// Reads and verifies a segment file's bytes. Never panics, whatever the bytes.
///
/// A bad header, or a bad frame anywhere but a torn tail of the last segment,
/// is a [`StoreError::Corrupt`] naming `file` and the byte offset.
///
/// In a preallocated segment the records end where the bytes from the next
/// frame position to the end of the file are all zeros: exactly that, never
/// "a zero length field", because a frame with length 0 is a valid empty
/// record and a damaged length field must not end the log quietly.
pub fn read_segment(file: &Path, bytes: &[u8], role: SegmentRole) -> Result<SegmentContents, StoreError> {
    let header = SegmentHeader::decode(bytes).map_err(|reason| StoreError::corrupt(file, 0, reason))?;
    let seed = header.seed();
    let mut records = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    // Invariant: `batch_start` is where the batch holding the last verified frame began.
    let mut batch_start = SEGMENT_HEADER_LEN;
    let contents = |records, valid_bytes: usize, torn_bytes: usize| SegmentContents {
        seq: header.seq,
        preallocated: header.preallocated,
        records,
        valid_bytes: valid_bytes as u64,
        torn_bytes: torn_bytes as u64,
    };
    while at < bytes.len() {
        let frame = match decode_frame(bytes, at, seed) {
            Ok(frame) => frame,
            // The unused, zero-filled rest of a preallocated segment.
            Err(_) if header.preallocated && role == SegmentRole::Last && all_zero(&bytes[at..]) => {
                return Ok(contents(records, at, 0));
            }
            Err(bad) if role == SegmentRole::Sealed => {
                return Err(StoreError::corrupt(
                    file,
                    at as u64,
                    format!("{bad} in a sealed segment, every byte of which was synced"),
                ));
            }
            Err(bad) => {
                judge_bad_frame(bytes, seed, at, batch_start, &bad)
                    .map_err(|reason| StoreError::corrupt(file, at as u64, reason))?;
                if !header.preallocated {
                    return Ok(contents(records, at, bytes.len() - at));
                }
                if !torn_frame_explains(bytes, at, &bad) {
                    return Err(StoreError::corrupt(
                        file,
                        at as u64,
                        format!(
                            "{bad} in a preallocated segment, with no unwritten (zero) sector in the record \
                             that a torn write would leave: damage, not a torn write"
                        ),
                    ));
                }
                // Not all zero (checked above), so a last non-zero byte exists at or after `at`.
                let damaged_end = last_nonzero(bytes).map_or(at, |last| last + 1);
                return Ok(contents(records, at, damaged_end - at));
            }
        };
        if frame.batch_start != at && frame.batch_start != batch_start {
            return Err(StoreError::corrupt(
                file,
                at as u64,
                format!(
                    "record claims its write began at byte {}, but the write in progress began at byte {batch_start}",
                    frame.batch_start
                ),
            ));
        }
        batch_start = frame.batch_start;
        records.push(bytes[frame.payload.clone()].to_vec());
        at = frame.end();
    }
    Ok(contents(records, at, 0))
}

/// Encodes a snapshot file's header for `record`; the file is the header
/// followed by the record.
pub fn encode_snapshot_header(seq: u64, record: &[u8]) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut out = [0u8; SNAPSHOT_HEADER_LEN];
    out[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // [12, 16): flags, zero in version 1.
    out[16..24].copy_from_slice(&seq.to_le_bytes());
    out[24..32].copy_from_slice(&(record.len() as u64).to_le_bytes());
    out[32..36].copy_from_slice(&crc32c::crc32c(record).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[0..36]);
    out[36..40].copy_from_slice(&header_crc.to_le_bytes());
    out
}

/// Reads and verifies a snapshot file's bytes: `(seq, record)`. Any damage is
/// [`StoreError::Corrupt`]: a snapshot is written whole and fsynced before it
/// is renamed into place, so it has no legitimate torn state.
pub fn read_snapshot<'a>(file: &Path, bytes: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    let corrupt = |offset: usize, reason: String| StoreError::corrupt(file, offset as u64, reason);
    let Some(header) = bytes.get(0..SNAPSHOT_HEADER_LEN) else {
        return Err(corrupt(
            0,
            format!(
                "file is {} bytes, shorter than a {SNAPSHOT_HEADER_LEN}-byte snapshot header",
                bytes.len()
            ),
        ));
    };
    if header[0..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "not a quorum snapshot (bad magic)".to_string()));
    }
    if crc32c::crc32c(&header[0..36]) != le_u32(&header[36..40]) {
        return Err(corrupt(0, "snapshot header checksum mismatch".to_string()));
    }
    let version = le_u32(&header[8..12]);
    if version != FORMAT_VERSION {
        return Err(corrupt(8, format!("unsupported snapshot format version {version}")));
    }
    let flags = le_u32(&header[12..16]);
    if flags != 0 {
        return Err(corrupt(12, format!("unknown snapshot flags {flags:#x}")));
    }
    let seq = le_u64(&header[16..24]);
    let len = le_u64(&header[24..32]);
    let record = &bytes[SNAPSHOT_HEADER_LEN..];
    if len != record.len() as u64 {
        return Err(corrupt(
            24,
            format!("snapshot header promises {len} bytes of record, the file holds {}", record.len()),
        ));
    }
    if crc32c::crc32c(record) != le_u32(&header[32..36]) {
        return Err(corrupt(SNAPSHOT_HEADER_LEN, "snapshot record checksum mismatch".to_string()));
    }
    Ok((seq, record))
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    u32::from_le_bytes(buf)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "segment.log";

    fn preallocated(batches: &[Vec<Vec<u8>>], len: usize) -> Vec<u8> {
        let mut bytes = encode_segment(&SegmentHeader { seq: 3, salt: 77, preallocated: true }, batches);
        assert!(bytes.len() <= len);
        bytes.resize(len, 0);
        bytes
    }

    fn read(bytes: &[u8], role: SegmentRole) -> Result<SegmentContents, StoreError> {
        read_segment(Path::new(FILE), bytes, role)
    }

    #[test]
    fn empty_records_before_the_zero_tail_are_records() {
        let batches = vec![vec![Vec::new(), Vec::new()], vec![Vec::new()]];
        let bytes = preallocated(&batches, 4096);
        let contents = read(&bytes, SegmentRole::Last).unwrap();
        assert_eq!(contents.records, vec![Vec::<u8>::new(); 3]);
        assert_eq!(contents.valid_bytes as usize, SEGMENT_HEADER_LEN + 3 * FRAME_HEADER_LEN);
        assert_eq!(contents.torn_bytes, 0);
        assert!(contents.preallocated);
    }

    #[test]
    fn a_zero_length_field_with_anything_else_is_not_the_end_of_the_log() {
        let batches = vec![vec![b"one".to_vec()]];
        let mut bytes = preallocated(&batches, 4096);
        let at = SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 3;
        // Length 0, batch delta 0, but checksums that do not verify.
        bytes[at + 8..at + 16].copy_from_slice(&[9, 9, 9, 9, 9, 9, 9, 9]);
        match read(&bytes, SegmentRole::Last) {
            Err(StoreError::Corrupt { offset, .. }) => assert_eq!(offset as usize, at),
            other => panic!("expected Corrupt at {at}, got {other:?}"),
        }
        // Negative control: without those bytes it is the clean end.
        bytes[at + 8..at + 16].fill(0);
        assert_eq!(read(&bytes, SegmentRole::Last).unwrap().records, vec![b"one".to_vec()]);
    }

    /// A zero header is a lost sector only if the rest of its sector is zero
    /// too: a stray byte next to it is damage, one a sector further is taken
    /// for the surviving part of a torn write (and removed, reported).
    #[test]
    fn a_stray_byte_after_the_records_is_damage_only_within_the_sector() {
        let batches = vec![vec![b"one".to_vec()]];
        let at = SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 3;
        let mut bytes = preallocated(&batches, 4096);
        bytes[at + 100] = 1;
        match read(&bytes, SegmentRole::Last) {
            Err(StoreError::Corrupt { offset, .. }) => assert_eq!(offset as usize, at),
            other => panic!("expected Corrupt at {at}, got {other:?}"),
        }
        let mut bytes = preallocated(&batches, 4096);
        bytes[SECTOR_BYTES + 100] = 1;
        let contents = read(&bytes, SegmentRole::Last).unwrap();
        assert_eq!(contents.records, vec![b"one".to_vec()]);
        assert_eq!(
            (contents.valid_bytes as usize, contents.torn_bytes as usize),
            (at, SECTOR_BYTES + 101 - at)
        );
    }

    #[test]
    fn a_sealed_segment_has_no_zero_tail() {
        let bytes = preallocated(&[vec![b"one".to_vec()]], 4096);
        let error = read(&bytes, SegmentRole::Sealed).unwrap_err().to_string();
        assert!(error.contains("sealed"), "{error}");
        let exact = preallocated(&[vec![b"one".to_vec()]], SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 3);
        assert_eq!(read(&exact, SegmentRole::Sealed).unwrap().records, vec![b"one".to_vec()]);
    }

    #[test]
    fn the_preallocated_flag_round_trips_and_unknown_flags_are_refused() {
        for preallocated in [false, true] {
            let header = SegmentHeader { seq: 5, salt: 1, preallocated };
            assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        }
        let mut encoded = SegmentHeader { seq: 5, salt: 1, preallocated: true }.encode();
        encoded[12] = 0b11;
        let crc = crc32c::crc32c(&encoded[0..28]);
        encoded[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&encoded), Err("unknown segment flags 0x3".to_string()));
    }
}
