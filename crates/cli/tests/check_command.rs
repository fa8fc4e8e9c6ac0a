//! `quorum check` on histories written by `quorum sim` and by hand (EDN).

mod common;

use common::quorum;

fn temp(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("quorum-check-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn a_history_written_by_sim_checks_linearizable() {
    let path = std::env::temp_dir().join(format!("quorum-sim-history-{}.jsonl", std::process::id()));
    let out = quorum(&[
        "sim",
        "--protocol",
        "abd",
        "--faults",
        "all",
        "--seed",
        "3",
        "--history",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = quorum(&["check", path.to_str().unwrap(), "--model", "kv"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "linearizable");
    std::fs::remove_file(path).ok();
}

#[test]
fn a_stale_read_in_edn_is_not_linearizable_and_the_witness_is_printed() {
    let path = temp(
        "stale.edn",
        "{:type :invoke, :f :write, :value 1, :process 0}\n\
         {:type :ok, :f :write, :value 1, :process 0}\n\
         {:type :invoke, :f :write, :value 2, :process 0}\n\
         {:type :ok, :f :write, :value 2, :process 0}\n\
         {:type :invoke, :f :read, :value nil, :process 1}\n\
         {:type :ok, :f :read, :value 1, :process 1}\n",
    );
    let out = quorum(&["check", path.to_str().unwrap(), "--model", "register"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("not linearizable"), "{stdout}");
    assert!(stdout.contains("\"f\":\"read\""), "the witness names the read: {stdout}");
}

#[test]
fn cas_register_histories_in_edn() {
    let path = temp(
        "cas.edn",
        "{:type :invoke, :f :write, :value 1, :process 0}\n\
         {:type :ok, :f :write, :value 1, :process 0}\n\
         {:type :invoke, :f :cas, :value [1 2], :process 1}\n\
         {:type :ok, :f :cas, :value [1 2], :process 1}\n\
         {:type :invoke, :f :read, :value nil, :process 0}\n\
         {:type :ok, :f :read, :value 2, :process 0}\n",
    );
    let out = quorum(&["check", path.to_str().unwrap(), "--model", "cas-register"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
