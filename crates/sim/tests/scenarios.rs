//! Scenario scripts (etcd datadriven style) under `tests/scenarios/<protocol>/`:
//! each command's output must match the expected output in the file.
//! Regenerate with `REWRITE=1 cargo test -p quorum-sim --test scenarios`
//! and review the diff.

use std::path::{Path, PathBuf};

use quorum_core::KvStore;
use quorum_protocols::replication::abd::Abd;
use quorum_protocols::{paxos, raft, zab};
use quorum_sim::script::check_file;

fn scripts(protocol: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios").join(protocol);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.expect("readable").path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn check_all<P: quorum_core::Protocol>(protocol: &str) -> usize
where
    P::Request: std::str::FromStr,
    <P::Request as std::str::FromStr>::Err: std::fmt::Display,
{
    let files = scripts(protocol);
    let failures: Vec<String> =
        files.iter().filter_map(|f| check_file::<P>(f, P::Config::default()).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    files.len()
}

#[test]
fn abd_scenarios() {
    assert!(check_all::<Abd>("abd") > 0);
}

#[test]
fn raft_scenarios() {
    check_all::<raft::Raft<KvStore>>("raft");
}

#[test]
fn zab_scenarios() {
    check_all::<zab::Zab<KvStore>>("zab");
}

#[test]
fn paxos_scenarios() {
    check_all::<paxos::single::Paxos<KvStore>>("paxos");
    check_all::<paxos::multi::MultiPaxos<KvStore>>("multi-paxos");
}

/// The runner must be able to fail: a wrong expectation is reported with its line.
#[test]
fn a_wrong_expectation_is_reported() {
    if std::env::var_os("REWRITE").is_some() {
        return;
    }
    let path = std::env::temp_dir().join(format!("quorum-scenario-{}.txt", std::process::id()));
    std::fs::write(&path, "cluster 3 names=A,B,C\n----\nA: nonsense\n\nrequest A write 1 1\n----\n\n")
        .unwrap();
    let err = check_file::<Abd>(&path, Default::default()).unwrap_err();
    assert!(err.contains(":1: `cluster 3 names=A,B,C`"), "{err}");
    std::fs::write(&path, "cluster 3\n----\n\nexplode A\n----\n\n").unwrap();
    let err = check_file::<Abd>(&path, Default::default()).unwrap_err();
    assert!(err.contains("line 4: unknown command 'explode'"), "{err}");
    std::fs::remove_file(&path).ok();
}

/// The `TxnDecided` observations a script's run makes, as decisions.
fn decisions_of<P: quorum_core::Protocol>(file: &Path) -> Vec<quorum_check::commit::Decision>
where
    P::Request: std::str::FromStr,
    <P::Request as std::str::FromStr>::Err: std::fmt::Display,
{
    let text = std::fs::read_to_string(file).unwrap();
    let blocks = quorum_sim::script::parse_blocks(&text).unwrap();
    let mut cluster = quorum_sim::script::Scripted::<P>::new(P::Config::default());
    cluster.run_blocks(&blocks).unwrap();
    let observations: Vec<_> =
        cluster.observations().iter().map(|(n, o, t)| (*n, o.clone(), t.as_micros())).collect();
    quorum_check::commit::decisions(&observations)
}

/// 2PC: a coordinator crash blocks the cohorts until it recovers from its log.
#[test]
fn two_pc_scenarios() {
    use quorum_protocols::commit::two_pc::TwoPhaseCommit;
    assert!(check_all::<TwoPhaseCommit>("2pc") > 0);
    for file in scripts("2pc") {
        let decisions = decisions_of::<TwoPhaseCommit>(&file);
        assert!(!decisions.is_empty(), "{}: something is decided", file.display());
        assert!(quorum_check::commit::atomicity(&decisions).is_empty(), "{}", file.display());
    }
}

/// 3PC: the source text's partition scenario ends in a split decision, and
/// the atomicity checker reports it.
#[test]
fn three_pc_scenarios() {
    use quorum_protocols::commit::three_pc::ThreePhaseCommit;
    assert!(check_all::<ThreePhaseCommit>("3pc") > 0);
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/3pc/partition_splits_the_decision.txt");
    let decisions = decisions_of::<ThreePhaseCommit>(&file);
    let violations = quorum_check::commit::atomicity(&decisions);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].to_string().contains("committed at n1 but aborted at n0,n2"), "{}", violations[0]);
}
