//! Group-commit throughput of the write-ahead log: append 1, 16 or 64
//! records of 100 bytes, then one `sync`, with `FsyncPolicy::Always` and
//! `FsyncPolicy::Never`, each with preallocated segments (the default) and
//! with plain ones, all measured in the same run (`never` is the baseline
//! that shows what fsync costs on this disk; `plain` against `prealloc`
//! shows what journaling a growing file's size costs each fdatasync).
//!
//! Run with `cargo bench -p quorum-store --bench wal`. Criterion's `thrpt`
//! is records/s; divide by records per sync for syncs/s. After each
//! configuration a JSON line gives the WAL's own counters (every iteration,
//! warm-up included): syncs, time inside `sync`, the rates they imply, and
//! the mean, median, 99th percentile and maximum of one append+sync round as
//! timed by the bench (a segment roll shows up in the maximum), plus how
//! long opening the log took (`open_ms`: with preallocation, zero-filling
//! the first segment) and waiting for the first spare (`spare_wait_ms`).
//!
//! A preallocated log is measured only once its spare segment is ready, as
//! in a server that has been up for more than a moment: otherwise the first
//! seconds would also measure the background thread zero-filling 64 MiB.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quorum_store::{FsyncPolicy, Wal, WalOptions};

const RECORD_BYTES: usize = 100;
const RECORDS_PER_SYNC: [u64; 3] = [1, 16, 64];
/// Compact (outside the timed region) once the log holds this much, so a
/// long run does not fill the disk.
const COMPACT_AT_BYTES: u64 = 256 << 20;
/// How long to wait for the first spare segment before measuring anyway.
const SPARE_WAIT_MAX: Duration = Duration::from_secs(30);

fn wait_for_spare(wal: &Wal) {
    let started = Instant::now();
    while !wal.stats().spare_ready && started.elapsed() < SPARE_WAIT_MAX {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `sorted[q * len]`, in microseconds.
fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_sync");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let record = [0xA5u8; RECORD_BYTES];
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        for records_per_sync in RECORDS_PER_SYNC {
            // On and off back to back, so that both see the same disk weather.
            for preallocate in [true, false] {
                let policy = format!("{fsync:?}").to_lowercase();
                let layout = if preallocate { "prealloc" } else { "plain" };
                let dir = tempfile::tempdir().expect("a temp dir for the benchmark");
                let options = WalOptions { segment_bytes: 64 << 20, fsync, preallocate };
                let opening = Instant::now();
                let (mut wal, _) = Wal::open(dir.path(), options).expect("open a fresh log");
                // With preallocation: zero-filling the first segment, inline.
                let open_ms = opening.elapsed().as_secs_f64() * 1e3;
                let spare_waiting = Instant::now();
                if preallocate {
                    wait_for_spare(&wal);
                }
                // The thread zero-filling the spare, in the background.
                let spare_ms = spare_waiting.elapsed().as_secs_f64() * 1e3;
                let mut rounds = Vec::new();
                group.throughput(Throughput::Elements(records_per_sync));
                group.bench_function(
                    BenchmarkId::new(format!("{policy}-{layout}"), records_per_sync),
                    |bencher| {
                        bencher.iter_custom(|iterations| {
                            let started = Instant::now();
                            for _ in 0..iterations {
                                let round = Instant::now();
                                for _ in 0..records_per_sync {
                                    wal.append(&record).expect("append");
                                }
                                wal.sync().expect("sync");
                                rounds.push(round.elapsed());
                            }
                            let elapsed = started.elapsed();
                            if wal.stats().bytes_on_disk > COMPACT_AT_BYTES {
                                wal.checkpoint(b"benchmark compaction").expect("checkpoint");
                            }
                            elapsed
                        })
                    },
                );
                let stats = wal.stats();
                let seconds = stats.sync_time_total.as_secs_f64();
                rounds.sort_unstable();
                let mean_us =
                    rounds.iter().sum::<Duration>().as_secs_f64() * 1e6 / rounds.len().max(1) as f64;
                println!(
                    "{{\"bench\":\"wal_append_sync\",\"fsync\":\"{policy}\",\"preallocate\":{preallocate},\
                     \"records_per_sync\":{records_per_sync},\"record_bytes\":{RECORD_BYTES},\"syncs\":{},\
                     \"segments\":{},\"open_ms\":{open_ms:.1},\"spare_wait_ms\":{spare_ms:.1},\"sync_seconds\":{seconds:.3},\"syncs_per_s\":{:.0},\"records_per_s\":{:.0},\
                     \"round_us\":{{\"mean\":{mean_us:.1},\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1}}}}}",
                    stats.syncs,
                    stats.segments,
                    stats.syncs as f64 / seconds,
                    (stats.syncs * records_per_sync) as f64 / seconds,
                    quantile_us(&rounds, 0.5),
                    quantile_us(&rounds, 0.99),
                    quantile_us(&rounds, 1.0),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, append_sync);
criterion_main!(benches);
