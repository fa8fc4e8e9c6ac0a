//! Crash test: a child process appends and syncs records (and checkpoints)
//! in a loop, printing each sequence number once `sync` (or `checkpoint`)
//! has returned; the parent SIGKILLs it at seeded random points, some of
//! them in the middle of a checkpoint, reopens the log and checks that every
//! acknowledged record is there, in order, with no gaps. The next child
//! recovers the same directory and carries on, so damage would accumulate.
//!
//! The child is this test binary itself, re-executed with
//! `CHILD_DIR_ENV` set, running only the `crash_child` test.
//!
//! It runs with preallocated segments (the default) and, fewer rounds, with
//! plain ones; segments are small, so kills also land in segment rolls.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quorum_store::{FsyncPolicy, Recovered, Wal, WalOptions};

const CHILD_DIR_ENV: &str = "QUORUM_STORE_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "QUORUM_STORE_CRASH_CHILD_SEED";
/// Set for the negative control: the child acknowledges before it syncs.
const CHILD_LIES_ENV: &str = "QUORUM_STORE_CRASH_CHILD_LIES";
/// Set when the child must write plain (not preallocated) segments.
const CHILD_PLAIN_ENV: &str = "QUORUM_STORE_CRASH_CHILD_PLAIN";
const SEED: u64 = 0x5EED_CAFE;
const ROUNDS: u64 = 12;
const CHECKPOINT_EVERY_RECORDS: u64 = 40;
/// Large enough that a checkpoint takes a while, so kills land inside it.
const CHECKPOINT_PADDING_BYTES: usize = 64 << 10;
/// A child that is never killed (the parent died) stops by itself.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(20);

/// About 25 records a segment: several rolls between two checkpoints.
fn options(preallocate: bool) -> WalOptions {
    WalOptions { segment_bytes: 4 << 10, fsync: FsyncPolicy::Always, preallocate }
}

/// splitmix64: a seeded generator, enough for choosing kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn record(seq: u64) -> Vec<u8> {
    let mut bytes = vec![b'R'];
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.resize(9 + (seq % 300) as usize, (seq % 251) as u8);
    bytes
}

/// A checkpoint standing for records `1..=seq`.
fn checkpoint(seq: u64) -> Vec<u8> {
    let mut bytes = vec![b'C'];
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.resize(9 + CHECKPOINT_PADDING_BYTES, (seq % 253) as u8);
    bytes
}

fn decode(bytes: &[u8], tag: u8) -> Option<u64> {
    if bytes.len() < 9 || bytes[0] != tag {
        return None;
    }
    Some(u64::from_le_bytes(bytes[1..9].try_into().ok()?))
}

/// Checks a recovered log against what the child acknowledged; returns the
/// highest sequence number it holds.
fn check_recovery(recovered: &Recovered, acked_max: u64, checkpoint_acked_max: u64) -> Result<u64, String> {
    let base = match &recovered.checkpoint {
        Some(bytes) => decode(bytes, b'C').ok_or("checkpoint record does not decode")?,
        None => 0,
    };
    if base < checkpoint_acked_max {
        return Err(format!(
            "checkpoint {checkpoint_acked_max} was acknowledged, recovery holds checkpoint {base}"
        ));
    }
    let mut expected = base + 1;
    for bytes in &recovered.records {
        let seq = decode(bytes, b'R').ok_or("record does not decode")?;
        if seq != expected {
            return Err(format!("expected record {expected} after the checkpoint at {base}, found {seq}"));
        }
        if bytes != &record(seq) {
            return Err(format!("record {seq} has the wrong contents"));
        }
        expected += 1;
    }
    let last = expected - 1;
    if last < acked_max {
        return Err(format!("record {acked_max} was acknowledged, the log ends at {last}"));
    }
    Ok(last)
}

/// The child: runs only when re-executed by `sigkill_at_random_points_loses_no_acknowledged_record`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let preallocate = std::env::var_os(CHILD_PLAIN_ENV).is_none();
    run_child(Path::new(&dir), seed, std::env::var_os(CHILD_LIES_ENV).is_some(), preallocate);
}

fn run_child(dir: &Path, seed: u64, lies: bool, preallocate: bool) {
    let mut rng = Rng(seed);
    let (mut wal, recovered) = Wal::open(dir, options(preallocate)).expect("child: open");
    let mut last = check_recovery(&recovered, 0, 0).expect("child: recovered log is consistent");
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    writeln!(out, "start {last}").unwrap();
    out.flush().unwrap();
    while started.elapsed() < CHILD_LIFETIME_MAX {
        for _ in 0..1 + rng.below(8) {
            last += 1;
            wal.append(&record(last)).expect("child: append");
        }
        if lies {
            // Acknowledge first, then leave the records only in memory for
            // a while: a window the kills must find.
            writeln!(out, "ack {last}").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            wal.sync().expect("child: sync");
        } else {
            wal.sync().expect("child: sync");
            writeln!(out, "ack {last}").unwrap();
            out.flush().unwrap();
        }
        if last % CHECKPOINT_EVERY_RECORDS < 8 {
            writeln!(out, "ckpt-begin {last}").unwrap();
            out.flush().unwrap();
            wal.checkpoint(&checkpoint(last)).expect("child: checkpoint");
            writeln!(out, "ckpt {last}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// What the parent learned from the child's stdout.
#[derive(Debug, Default)]
struct Acks {
    record_max: u64,
    checkpoint_max: u64,
    /// The last line was `ckpt-begin`: killed inside a checkpoint.
    in_checkpoint: bool,
}

impl Acks {
    fn read(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(Ok(seq))) = (words.next(), words.next().map(str::parse::<u64>)) else {
            return; // the test harness's own lines
        };
        match kind {
            "ack" => self.record_max = self.record_max.max(seq),
            "ckpt" => self.checkpoint_max = self.checkpoint_max.max(seq),
            _ => {}
        }
        self.in_checkpoint = kind == "ckpt-begin";
    }
}

/// What a run of kill rounds saw.
#[derive(Debug)]
struct Summary {
    acks: Acks,
    killed_in_checkpoint: u64,
    torn_tails: u64,
    /// Every segment file seen after a recovery: more than one proves that
    /// rolls happened (a checkpoint may delete all but the newest, so the
    /// count of live segments alone does not).
    segments_seen: std::collections::BTreeSet<String>,
}

/// Runs `rounds` child lives in one directory, killing each and checking the
/// recovered log; the first problem found ends the run as an error.
fn kill_rounds(rounds: u64, seed: u64, lying_child: bool, preallocate: bool) -> Result<Summary, String> {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed);
    let mut summary = Summary {
        acks: Acks::default(),
        killed_in_checkpoint: 0,
        torn_tails: 0,
        segments_seen: Default::default(),
    };
    for round in 0..rounds {
        let mut command = Command::new(&exe);
        command
            .args(["--exact", "crash_child", "--nocapture", "--test-threads", "1"])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_SEED_ENV, (seed ^ round).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if lying_child {
            command.env(CHILD_LIES_ENV, "1");
        }
        if !preallocate {
            command.env(CHILD_PLAIN_ENV, "1");
        }
        let mut child = command.spawn().expect("spawn the child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Even rounds die after a random number of syncs, odd rounds just
        // after a checkpoint began; both after a random few milliseconds more.
        let syncs_before_kill = 3 + rng.below(40);
        let mut syncs = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            summary.acks.read(&line);
            syncs += u64::from(line.starts_with("ack "));
            let aim_at_checkpoint = round % 2 == 1 && line.starts_with("ckpt-begin ");
            if aim_at_checkpoint || syncs >= syncs_before_kill {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        // Acknowledgements printed before the kill count too.
        for line in lines {
            summary.acks.read(&line.unwrap());
        }
        summary.killed_in_checkpoint += u64::from(summary.acks.in_checkpoint);

        let (wal, recovered) = Wal::open(dir.path(), options(preallocate))
            .map_err(|error| format!("round {round}: recovery failed: {error}"))?;
        summary.torn_tails += u64::from(recovered.torn_tail.is_some());
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with("wal-") && name.ends_with(".log") {
                summary.segments_seen.insert(name);
            }
        }
        drop(wal);
        check_recovery(&recovered, summary.acks.record_max, summary.acks.checkpoint_max)
            .map_err(|problem| format!("round {round} (seed {seed:#x}): {problem}"))?;
    }
    Ok(summary)
}

fn sigkill_rounds(rounds: u64, preallocate: bool) {
    let summary = kill_rounds(rounds, SEED, false, preallocate).unwrap_or_else(|problem| panic!("{problem}"));
    let acks = &summary.acks;
    assert!(acks.record_max > rounds, "the children made progress: {} records acknowledged", acks.record_max);
    assert!(acks.checkpoint_max > 0, "the children checkpointed");
    assert!(summary.segments_seen.len() > 1, "the children rolled segments: {:?}", summary.segments_seen);
    eprintln!(
        "crash test (preallocate {preallocate}): {rounds} kills, {} records and checkpoint {} acknowledged, \
         {} kills inside a checkpoint, {} torn tails removed, {} segment files seen",
        acks.record_max,
        acks.checkpoint_max,
        summary.killed_in_checkpoint,
        summary.torn_tails,
        summary.segments_seen.len()
    );
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_record() {
    sigkill_rounds(ROUNDS, true);
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_record_without_preallocation() {
    sigkill_rounds(ROUNDS / 2, false);
}

/// Negative control of the whole harness: a child that acknowledges records
/// before syncing them is caught losing one.
#[test]
fn a_child_that_acknowledges_before_syncing_is_caught() {
    match kill_rounds(4, SEED, true, true) {
        Err(problem) => assert!(problem.contains("was acknowledged"), "{problem}"),
        Ok(summary) => panic!("the lying child went unnoticed: {summary:?}"),
    }
}

/// Negative controls: the checker catches each way a log could betray the child.
#[test]
fn the_recovery_checker_catches_loss_gaps_and_rollback() {
    let log = |checkpoint_at: Option<u64>, seqs: &[u64]| Recovered {
        checkpoint: checkpoint_at.map(checkpoint),
        records: seqs.iter().map(|&s| record(s)).collect(),
        torn_tail: None,
    };
    assert_eq!(check_recovery(&log(Some(3), &[4, 5, 6]), 6, 3), Ok(6));
    assert_eq!(check_recovery(&log(None, &[1, 2, 3]), 2, 0), Ok(3), "unacknowledged records may survive");
    assert!(check_recovery(&log(Some(3), &[4, 5]), 6, 3).is_err(), "lost acknowledged record");
    assert!(check_recovery(&log(Some(3), &[4, 6]), 6, 3).is_err(), "gap");
    assert!(check_recovery(&log(None, &[2, 1]), 2, 0).is_err(), "out of order");
    assert!(check_recovery(&log(None, &[1, 2, 3, 4, 5, 6]), 6, 3).is_err(), "checkpoint rolled back");
    assert!(check_recovery(&log(Some(3), &[5, 6]), 6, 3).is_err(), "record after the checkpoint lost");
    let mut damaged = log(None, &[1, 2]);
    damaged.records[1].push(0);
    assert!(check_recovery(&damaged, 2, 0).is_err(), "wrong contents");
}
