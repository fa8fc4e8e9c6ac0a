//! The CRDT laboratory and Merkle anti-entropy from the command line:
//! `quorum sim --protocol crdt` reports convergence figures, its bugs
//! diverge where the correct replicas converge, and `quorum
//! anti-entropy-cost` measures reconciliation against the difference.

mod common;

use common::{json, quorum};

fn u(row: &serde_json::Value, field: &str) -> u64 {
    row[field].as_u64().unwrap_or_else(|| panic!("{field} in {row}"))
}

fn cost(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["anti-entropy-cost", "--keys", "20000", "--fanout", "8", "--depth", "4", "--json"];
    all.extend_from_slice(args);
    json(&all).as_array().expect("one row per difference").clone()
}

/// One differing key is found in `depth` round trips with `1 + depth ×
/// fanout` hashes (and one more round trip carries the entries); equal
/// replicas cost one hash; every key differing, the tree costs more than
/// the full state (its negative twin: the tree only wins when the
/// difference is small).
#[test]
fn merkle_cost_grows_with_the_difference_not_the_data() {
    let rows = cost(&["--differing", "0,1,20000"]);
    let (none, one, all) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!((u(none, "tree_round_trips"), u(none, "tree_bytes")), (1, 8), "{none}");
    assert_eq!(u(one, "tree_round_trips"), 4 + 1, "{one}");
    assert_eq!(u(one, "tree_hashes"), 1 + 4 * 8, "{one}");
    assert!(u(one, "tree_bytes") * 100 < u(one, "full_bytes"), "{one}");
    assert!(u(all, "tree_bytes") > u(all, "full_bytes"), "{all}");
}

#[test]
fn bad_anti_entropy_settings_are_refused_in_one_line() {
    for args in [&["--fanout", "1"][..], &["--depth", "9"], &["--differing", "30000"]] {
        let mut all = vec!["anti-entropy-cost", "--keys", "20000"];
        all.extend_from_slice(args);
        let out = quorum(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// The same seed, with and without the non-monotone program: the
/// monotone replicas converge (and report rounds and bytes to converge),
/// the ones that apply a remove where it arrives do not.
#[test]
fn a_monotone_program_converges_and_its_non_monotone_twin_diverges() {
    let run = |bug: Option<&str>| {
        let mut args = vec!["sim", "--protocol", "crdt", "--nodes", "3", "--seed", "0", "--json"];
        if let Some(bug) = bug {
            args.extend(["--bug", bug]);
        }
        json(&args)
    };
    let monotone = run(None);
    assert_eq!(monotone["converged"], true, "{monotone}");
    let figures = &monotone["convergence"];
    assert!(u(figures, "rounds_to_converge") >= 1 && u(figures, "bytes_to_converge") > 0, "{figures}");
    let naive = run(Some("remove-without-tombstone"));
    assert_eq!(naive["converged"], false, "{naive}");
    assert!(naive["convergence"]["rounds_to_converge"].is_null(), "{naive}");
}
