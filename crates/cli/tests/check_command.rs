//! `quorum check` on histories written by `quorum sim`, by hand (EDN, with
//! keys and values of any type, for every model) and by Porcupine.

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

#[test]
fn string_keys_choose_the_kv_model_and_the_output_says_so() {
    let path = temp(
        "strings.edn",
        "{:type :invoke, :f :write, :key \"a\", :value \"x\", :process 0}\n\
         {:type :ok, :f :write, :key \"a\", :value \"x\", :process 0}\n\
         {:type :invoke, :f :read, :key \"a\", :value nil, :process 1}\n\
         {:type :ok, :f :read, :key \"a\", :value nil, :process 1}\n",
    );
    let out = quorum(&["check", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "not linearizable");
    assert_eq!(
        lines[1],
        "model kv (chosen from the ops seen: read, write, with keys; --model to choose another), format edn, detected"
    );
    assert_eq!(
        lines[2],
        "read of key \"a\" returned nil although the write of \"x\" had completed before the read began."
    );
    assert!(
        stdout.contains(r#"{"index":3,"type":"ok","f":"read","key":"a","value":null,"process":1}"#),
        "{stdout}"
    );
}

#[test]
fn porcupines_kv_histories_check_with_no_flag_but_the_file_name() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../check/tests/data/porcupine-kv");
    for (name, code) in [("c01-ok", 0), ("c01-bad", 1), ("c10-ok", 0), ("c10-bad", 1)] {
        let out = quorum(&["check", &format!("{dir}/{name}.txt")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{name}: {stdout}");
        assert!(stdout.contains("model kv (Porcupine's key-value format"), "{name}: {stdout}");
        assert!(stdout.contains("format porcupine-kv, detected"), "{name}: {stdout}");
    }
}

#[test]
fn every_model_by_name_with_a_history_that_passes_and_one_that_fails() {
    let cases = [
        ("list-append", "{:type :invoke :f :append :key 1 :value 5 :process 0}\n{:type :ok :f :append :key 1 :value 5 :process 0}\n{:type :invoke :f :read :key 1 :process 1}\n{:type :ok :f :read :key 1 :value [5] :process 1}", "[5]", "[6]"),
        ("set", "{:type :invoke :f :add :value :a :process 0}\n{:type :ok :f :add :value :a :process 0}\n{:type :invoke :f :read :process 1}\n{:type :ok :f :read :value #{:a} :process 1}", "#{:a}", "#{}"),
        ("counter", "{:type :invoke :f :increment :process 0}\n{:type :ok :f :increment :process 0}\n{:type :invoke :f :read :process 1}\n{:type :ok :f :read :value 1 :process 1}", ":value 1 :process 1", ":value 2 :process 1"),
        ("queue", "{:type :invoke :f :enqueue :value 3 :process 0}\n{:type :ok :f :enqueue :value 3 :process 0}\n{:type :invoke :f :dequeue :process 1}\n{:type :ok :f :dequeue :value 3 :process 1}", ":value 3 :process 1", ":value nil :process 1"),
        ("mutex", "{:type :invoke :f :acquire :process 0}\n{:type :ok :f :acquire :process 0}\n{:type :invoke :f :release :process 1}\n{:type :ok :f :release :process 1}", ":f :release", ":f :acquire"),
    ];
    for (model, passing, from, to) in cases {
        let path = temp(&format!("{model}.edn"), passing);
        let out = quorum(&["check", path.to_str().unwrap(), "--model", model]);
        assert_eq!(out.status.code(), Some(0), "{model}: {}", String::from_utf8_lossy(&out.stdout));
        let auto = quorum(&["check", path.to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&auto.stdout).contains(&format!("model {model} (chosen")), "{model}");
        let path = temp(&format!("{model}-bad.edn"), &passing.replace(from, to));
        let out = quorum(&["check", path.to_str().unwrap(), "--model", model]);
        assert_eq!(out.status.code(), Some(1), "{model}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn no_witness_gives_the_verdict_alone_and_time_reports_each_phase() {
    let path = temp(
        "stale-time.edn",
        "{:type :invoke, :f :write, :value 1, :process 0}\n\
         {:type :ok, :f :write, :value 1, :process 0}\n\
         {:type :invoke, :f :write, :value 2, :process 0}\n\
         {:type :ok, :f :write, :value 2, :process 0}\n\
         {:type :invoke, :f :read, :value nil, :process 1}\n\
         {:type :ok, :f :read, :value 1, :process 1}\n",
    );
    let file = path.to_str().unwrap();
    let out = quorum(&["check", file, "--no-witness"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("\"f\":\"read\""), "no witness is printed: {stdout}");
    assert!(stdout.contains("no witness was searched for"), "{stdout}");
    let out = quorum(&["check", file, "--time"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.starts_with("time: ")).unwrap_or_else(|| panic!("{stderr}"));
    for phase in ["parse ", "verdict ", "witness "] {
        assert!(line.contains(phase), "{line}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"f\":\"read\""), "the witness is still printed");
}

#[test]
fn jepsen_text_logs_are_read_with_no_flag() {
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
               INFO  jepsen.util - 0\t:ok\t:write\t1\n\
               INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
               INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]\n\
               INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 2\t:ok\t:read\t";
    let good = temp("etcd-ok.log", &format!("{log}1\n"));
    let out = quorum(&["check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("format jepsen-log"));
    let bad = temp("etcd-bad.log", &format!("{log}2\n"));
    let out = quorum(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}
