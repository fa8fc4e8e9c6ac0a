//! `quorum fast-paxos-collisions`: the figures of Fast Paxos's collisions
//! (Lamport 2006, §3.2) as contention grows. Simulated time only: every
//! figure is a count of message delays, the same on every machine.

mod common;

use common::json;

fn rows(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["fast-paxos-collisions", "--trials", "300", "--json"];
    all.extend_from_slice(args);
    json(&all).as_array().expect("one row per contention level").clone()
}

fn f(row: &serde_json::Value, field: &str) -> f64 {
    row[field].as_f64().unwrap_or_else(|| panic!("{field} in {row}"))
}

/// One proposer never collides and learns in about two message delays
/// (Propose, Accepted; the latency is drawn from [d/2, 3d/2], so the wait
/// for the fourth of five votes is a little over 2 d); with more proposers
/// collisions appear, coordinated recovery decides them without phase 1,
/// and the median latency grows toward the four delays of a recovered
/// collision.
#[test]
fn collisions_grow_with_contention_and_coordinated_recovery_needs_no_phase_one() {
    let rows = rows(&["--proposers", "1,2,5"]);
    let (one, two, five) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(f(one, "fast"), 1.0, "{one}");
    assert!((2.0..2.5).contains(&f(one, "latency_p50_d")), "{one}");
    assert!(f(one, "latency_p99_d") < 3.0, "{one}");
    assert_eq!(f(one, "messages_per_instance"), 30.0, "5 Propose + 25 Accepted");
    assert!(f(two, "recovered") > 0.1 && f(five, "recovered") > f(two, "recovered"), "{two} {five}");
    for row in &rows {
        assert_eq!(f(row, "classic"), 0.0, "coordinated recovery, no faults: {row}");
        assert!(f(row, "latency_p99_d") < 5.0, "at most Propose, Accepted, Accept, Accepted: {row}");
    }
    assert!(f(five, "latency_p50_d") > f(one, "latency_p50_d") + 1.0, "{one} {five}");
}

/// Uncoordinated recovery can collide again (acceptors that heard
/// different round-1 votes pick different values for round 2), and then
/// only a classic round decides: rare at two proposers, common at five.
#[test]
fn uncoordinated_recovery_can_collide_again() {
    let rows = rows(&["--proposers", "1,5", "--recovery", "uncoordinated"]);
    assert_eq!(f(&rows[0], "classic"), 0.0);
    assert!(f(&rows[1], "classic") > 0.05, "{}", rows[1]);
}
