//! quorum-store: the durable write-ahead log behind a quorum server node.
//!
//! The protocols are sans-IO: `Effect::Persist(record)` appends a record to
//! the node's durable log, `Effect::Checkpoint(record)` atomically replaces
//! the whole log with one record, and on restart the protocol's
//! `start(.., durable, ..)` receives the latest checkpoint record followed by
//! every record persisted after it. This crate is that log, for opaque byte
//! records (the server encodes them with postcard). It is synchronous std
//! code, owned by one writer thread: [`Wal::append`] buffers, [`Wal::sync`]
//! makes everything buffered durable with one `write` and one `fdatasync`
//! (group commit), [`Wal::checkpoint`] compacts, [`Wal::open`] recovers.
//!
//! By default ([`WalOptions::preallocate`]) every segment is zero-filled to
//! its full size and synced before its first record, by a background thread
//! that keeps the next one ready (etcd's WAL file pipeline), so that an
//! append's fdatasync overwrites existing blocks and has no file size or
//! extents to journal.
//!
//! # On-disk layout
//!
//! A data dir holds, besides the node identity `meta.json` ([`check_or_init_meta`]):
//!
//! ```text
//! snap-00000000000000000004.bin   the latest checkpoint (at most one after recovery)
//! wal-00000000000000000005.log    segments after it, sequence numbers contiguous
//! wal-00000000000000000006.log    the last segment: the only one appended to
//! spare-segment-{0,1}.tmp         zeros, waiting to become the next segment
//! *.tmp                           a crash before a rename, or a spare; deleted on open
//! ```
//!
//! Segments and snapshots share one sequence: a checkpoint taken while
//! segment `n` is current becomes `snap-(n+1)` and the log continues in
//! segment `n+2`. The state is the latest snapshot `s` (if any) plus the
//! segments `s+1, s+2, ..`; anything numbered lower is superseded and
//! deleted. A missing segment in the middle of the run is corruption.
//!
//! All integers are little-endian. CRCs are CRC32C (Castagnoli), unmasked.
//!
//! **Segment header** (32 bytes): `magic "QUORUMWL"` (8) · `version = 1` (u32) ·
//! `flags` (u32) · `seq` (u64, must match the file name) · `salt` (u32,
//! random per segment) · `crc` (u32, over the 28 bytes before it). A file with
//! the wrong magic, version, flags or CRC is refused. The one flag is bit 0,
//! [`FLAG_PREALLOCATED`](format::FLAG_PREALLOCATED): the file was zero-filled
//! and synced before its first record (a reader that predates it refuses the
//! segment as having unknown flags; records are framed the same either way).
//!
//! A preallocated segment is made from a spare: the header is written over
//! its first bytes and fdatasynced, then the file is renamed into place and
//! the directory fsynced. When a segment is sealed its unused zero tail is
//! cut off (ftruncate + fsync) *before* the next segment exists, so a sealed
//! segment ends at its last record whichever way it was written. The
//! segment a checkpoint makes obsolete is recycled: once the snapshot is
//! durable, the thread zeroes the part of it that was written and renames
//! it into the next spare, so frequent checkpoints cost zeros in proportion
//! to the records written, not a whole segment each.
//!
//! **Record frame** (16-byte header + payload), starting right after the
//! segment header, back to back:
//!
//! ```text
//! [0, 4)   len          payload length, at most RECORD_BYTES_MAX (256 MiB)
//! [4, 8)   batch_delta  offset of this frame minus the offset where its write
//!                       batch began (0 for the first frame after a sync)
//! [8, 12)  payload_crc  crc32c(seed ++ offset_le64 ++ payload)
//! [12, 16) header_crc   crc32c(seed ++ offset_le64 ++ bytes [0, 12))
//! [16, 16 + len)        payload
//! ```
//!
//! `seed` is the segment header's CRC (so it covers the segment's seq and
//! salt) and `offset` is the frame's own byte offset in the file: a frame
//! verifies only in the segment and at the place it was written for. An
//! all-zero frame header is never a frame (it is what unwritten space reads as).
//!
//! **Snapshot file** (40-byte header + record): `magic "QUORUMSN"` (8) ·
//! `version = 1` (u32) · `flags = 0` (u32) · `seq` (u64) · `len` (u64) ·
//! `record_crc` (u32, crc32c of the record) · `header_crc` (u32, over the 36
//! bytes before it) · the record. It is written to a temp file, fsynced,
//! renamed, and the directory fsynced; it has no torn state, so any damage
//! is refused. No older snapshot is kept to fall back on: after the rename,
//! the segments that an older snapshot would need are deleted.
//!
//! # Recovery: torn tail or corruption?
//!
//! A sync writes its batch only after the previous batch's fdatasync
//! returned, and a segment is rolled only after its last batch was synced.
//! So a crash can only damage the **final batch of the last segment**, and
//! recovery reads every other byte strictly: a bad frame in a sealed segment
//! is corruption. When a frame of the last segment fails to verify at offset
//! `o`, recovery scans the rest of the file for frames that do verify:
//!
//! - none: the tail from `o` is a torn write (a partial write, zeros,
//!   garbage). It is truncated (ftruncate + fsync) and reported in
//!   [`Recovered::torn_tail`] and by `tracing::warn!`;
//! - one whose batch began after `o`: it was written by a later sync, so the
//!   bad frame had been synced: [`StoreError::Corrupt`] at `o`;
//! - one of the same batch: possible when the disk persisted the batch's
//!   sectors out of order, but then a sector starting between them (it may
//!   run into the survivor, whose bytes there were zero anyway) must read as
//!   never written: zeros past the old end of file. If one does, the batch
//!   is torn and truncated; if none does, it is a flipped bit in a synced
//!   batch: [`StoreError::Corrupt`] at `o`.
//!
//! In the last segment of a preallocated log, the records end where the bytes
//! from the next frame position to the end of the file are **all zeros**: the
//! unused space, a clean end, nothing to report. (Exactly that: a zero length
//! field alone never ends the log, since a frame of length 0 is a valid empty
//! record.) Otherwise the same three cases apply, with one more condition for
//! a torn tail: every sector a torn write did not reach still holds its old
//! contents, zeros from where the write began. So the bad frame must have a
//! header or payload byte in a sector that reads as zeros from the frame's
//! start (or the sector's) to the sector's end; if it has none (a flipped
//! bit, garbage where only zeros were synced), it is [`StoreError::Corrupt`]
//! at `o`. A torn tail is zeroed rather than truncated (the file keeps its
//! preallocated length) and reported with `bytes_dropped` up to its last
//! non-zero byte. Non-zero bytes in later sectors, after a bad frame whose
//! own sector reads as lost, are taken for the surviving sectors of the torn
//! write (zeroed and reported): a single torn write may reach that far.
//!
//! This is etcd's "a torn entry holds a zeroed sector" rule made exact by
//! the batch delta, with a bad record followed by a record of a *later* write
//! always meaning corruption, as in RocksDB's point-in-time recovery.
//! Residual ambiguity, shared by every log of this kind: damage to the
//! *last* frame of the log (or to a frame of the final batch holding a
//! sector-aligned kilobyte of zeros) cannot be told from a torn write; it is
//! truncated and reported, never dropped silently. A preallocated segment
//! narrows it: damage to its last frame reads as torn only if it zeroes a
//! sector of the frame to the sector's end; a flipped bit there is refused.
//! Neither kind can tell a last segment cut (plain) or zeroed (preallocated)
//! exactly at a frame boundary from a shorter log. With [`FsyncPolicy::Never`]
//! the ordering argument does not hold across a machine crash and recovery
//! may refuse the log.
//!
//! # Fuzzing
//!
//! `crates/store/fuzz` (outside the workspace) feeds arbitrary bytes to
//! [`read_segment`], raw and as corruptions of well-formed segments:
//!
//! ```text
//! cd crates/store/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wal_read -- -max_total_time=300
//! ```
//!
//! (`cargo install cargo-fuzz` first; `RUSTC_BOOTSTRAP=1` lets a stable
//! toolchain accept the sanitizer flags that `cargo fuzz` passes.)

mod error;
pub mod format;
mod fsutil;
mod meta;
mod spare;
mod wal;

pub use error::StoreError;
pub use format::{
    read_segment, read_snapshot, SegmentContents, SegmentHeader, SegmentRole, RECORD_BYTES_MAX,
    SNAPSHOT_BYTES_MAX,
};
pub use meta::{check_or_init_meta, NodeMeta, META_FILE};
pub use wal::{FsyncPolicy, Recovered, TornTail, Wal, WalOptions, WalStats, BATCH_BYTES_MAX, LOCK_FILE};
