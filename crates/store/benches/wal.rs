//! Group-commit throughput of the write-ahead log: append 1, 16 or 64
//! records of 100 bytes, then one `sync`, with `FsyncPolicy::Always` and
//! `FsyncPolicy::Never` measured in the same run (the second is the baseline
//! that shows what fsync costs on this disk).
//!
//! Run with `cargo bench -p quorum-store --bench wal`. Criterion's `thrpt`
//! is records/s; divide by records per sync for syncs/s. After each
//! configuration a JSON line gives the WAL's own counters (every iteration,
//! warm-up included): syncs, time inside `sync`, and the rates they imply.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quorum_store::{FsyncPolicy, Wal, WalOptions};

const RECORD_BYTES: usize = 100;
const RECORDS_PER_SYNC: [u64; 3] = [1, 16, 64];
/// Compact (outside the timed region) once the log holds this much, so a
/// long run does not fill the disk.
const COMPACT_AT_BYTES: u64 = 256 << 20;

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_sync");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let record = [0xA5u8; RECORD_BYTES];
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let policy = format!("{fsync:?}").to_lowercase();
        for records_per_sync in RECORDS_PER_SYNC {
            let dir = tempfile::tempdir().expect("a temp dir for the benchmark");
            let options = WalOptions { segment_bytes: 64 << 20, fsync };
            let (mut wal, _) = Wal::open(dir.path(), options).expect("open a fresh log");
            group.throughput(Throughput::Elements(records_per_sync));
            group.bench_function(BenchmarkId::new(&policy, records_per_sync), |bencher| {
                bencher.iter_custom(|iterations| {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        for _ in 0..records_per_sync {
                            wal.append(&record).expect("append");
                        }
                        wal.sync().expect("sync");
                    }
                    let elapsed = started.elapsed();
                    if wal.stats().bytes_on_disk > COMPACT_AT_BYTES {
                        wal.checkpoint(b"benchmark compaction").expect("checkpoint");
                    }
                    elapsed
                })
            });
            let stats = wal.stats();
            let seconds = stats.sync_time_total.as_secs_f64();
            println!(
                "{{\"bench\":\"wal_append_sync\",\"fsync\":\"{policy}\",\"records_per_sync\":{records_per_sync},\
                 \"record_bytes\":{RECORD_BYTES},\"syncs\":{},\"sync_seconds\":{seconds:.3},\
                 \"syncs_per_s\":{:.0},\"records_per_s\":{:.0}}}",
                stats.syncs,
                stats.syncs as f64 / seconds,
                (stats.syncs * records_per_sync) as f64 / seconds,
            );
        }
    }
    group.finish();
}

criterion_group!(benches, append_sync);
criterion_main!(benches);
