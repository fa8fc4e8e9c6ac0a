//! Every model with small hand-written histories that must pass and must
//! fail (each failure's witness must fail again on its own), Porcupine's
//! own key-value histories, the choice of a model from the ops, and the
//! errors for ops that do not suit the model.

use quorum_check::linearizability::DEFAULT_MAX_STATES;
use quorum_check::models::{choose, Model};
use quorum_check::parse::{read_history, Format, RecordedHistory};
use quorum_check::{check_recorded, Outcome, Verdict};

fn read(text: &str) -> RecordedHistory {
    read_history(text, Format::Auto).unwrap_or_else(|e| panic!("test history reads: {e}"))
}

fn verdict(text: &str, model: Model) -> Verdict {
    check_recorded(&read(text), model, DEFAULT_MAX_STATES).unwrap_or_else(|e| panic!("{e}"))
}

fn passes(text: &str, model: Model) {
    let verdict = verdict(text, model);
    assert_eq!(verdict.outcome, Outcome::Linearizable, "{verdict:#?}");
}

/// Fails, and its witness, written out as JSON lines and read back, fails
/// too (the explanation is returned for the caller to check).
fn fails(text: &str, model: Model) -> Verdict {
    let history = read(text);
    let verdict = check_recorded(&history, model, DEFAULT_MAX_STATES).unwrap();
    assert_eq!(verdict.outcome, Outcome::NotLinearizable, "{verdict:#?}");
    assert!(!verdict.witness.is_empty());
    let witness: Vec<String> = verdict.witness.iter().map(|&p| history.ops[p].to_json_line()).collect();
    let again = read_history(&witness.join("\n"), Format::Json).unwrap();
    let again = check_recorded(&again, model, DEFAULT_MAX_STATES).unwrap();
    assert_eq!(again.outcome, Outcome::NotLinearizable, "witness must fail: {verdict:#?}");
    verdict
}

// ------------------------------------------------------------- registers

const STRING_REGISTER: &str = r#"
{:type :invoke, :f :write, :value "x", :process 0}
{:type :ok, :f :write, :value "x", :process 0}
{:type :invoke, :f :write, :value "y", :process 1}
{:type :invoke, :f :read, :value nil, :process 2}
{:type :ok, :f :read, :value "x", :process 2}
{:type :ok, :f :write, :value "y", :process 1}
{:type :invoke, :f :read, :value nil, :process 2}
{:type :ok, :f :read, :value "y", :process 2}
"#;

#[test]
fn register_with_string_values_passes_and_a_stale_read_fails() {
    passes(STRING_REGISTER, Model::Register);
    let stale = format!("{STRING_REGISTER}{{:type :invoke, :f :read, :process 3}}\n{{:type :ok, :f :read, :value \"x\", :process 3}}");
    let verdict = fails(&stale, Model::Register);
    assert_eq!(verdict.key, None);
    assert_eq!(
        verdict.explanation,
        "read of the register returned \"x\", but the only write of \"x\" was overwritten by \"y\" before the read began."
    );
}

#[test]
fn cas_register_with_keywords_passes_and_a_cas_from_the_wrong_value_fails() {
    let history = "
        {:type :invoke, :f :write, :value :a, :process 0}
        {:type :ok, :f :write, :value :a, :process 0}
        {:type :invoke, :f :cas, :value [:a :b], :process 1}
        {:type :invoke, :f :cas, :value [:a :c], :process 2}
        {:type :ok, :f :cas, :value [:a :b], :process 1}
        {:type :fail, :f :cas, :value [:a :c], :process 2}
        {:type :invoke, :f :read, :process 0}
        {:type :ok, :f :read, :value :b, :process 0}";
    passes(history, Model::CasRegister);
    // Both cas ops from :a succeed: only one can.
    let both = history.replace(":fail, :f :cas", ":ok, :f :cas");
    let verdict = fails(&both, Model::CasRegister);
    assert_eq!(verdict.witness.len(), 6, "the write and both cas ops: {verdict:#?}");
}

#[test]
fn kv_with_string_keys_checks_each_key_alone() {
    let history = r#"
        {:type :invoke, :f :write, :key "a", :value 1, :process 0}
        {:type :ok, :f :write, :key "a", :value 1, :process 0}
        {:type :invoke, :f :read, :key "b", :process 1}
        {:type :ok, :f :read, :key "b", :value nil, :process 1}
        {:type :invoke, :f :read, :key "a", :process 1}
        {:type :ok, :f :read, :key "a", :value 1, :process 1}"#;
    passes(history, Model::Kv);
    // As one register, the read of "b" missed the write of "a".
    assert_eq!(verdict(history, Model::Register).outcome, Outcome::NotLinearizable);
    let lost = history.replace(":key \"a\", :value 1, :process 1", ":key \"a\", :value nil, :process 1");
    let verdict = fails(&lost, Model::Kv);
    assert_eq!(verdict.key, Some(quorum_check::datum::Datum::Str("a".into())));
    assert_eq!(
        verdict.explanation,
        "read of key \"a\" returned nil although the write of 1 had completed before the read began."
    );
}

#[test]
fn kv_append_concatenates_strings() {
    let history = r#"
        {"type":"invoke","f":"append","key":"k","value":"ab","process":0}
        {"type":"invoke","f":"append","key":"k","value":"c","process":1}
        {"type":"ok","f":"append","key":"k","value":"c","process":1}
        {"type":"ok","f":"append","key":"k","value":"ab","process":0}
        {"type":"invoke","f":"read","key":"k","process":0}
        {"type":"ok","f":"read","key":"k","value":"cab","process":0}"#;
    passes(history, Model::Kv);
    let torn = history.replace("\"cab\"", "\"abcab\"");
    let verdict = fails(&torn, Model::Kv);
    assert!(verdict.explanation.contains("semantics of a key-value store"), "{}", verdict.explanation);
}

#[test]
fn kv_with_many_keys_and_values_names_the_smallest_failing_key() {
    // 40 keys and 40 values (more than a short scan covers: they are
    // hashed), each key written and read back; keys 7 and 31 read stale.
    let mut lines = Vec::new();
    for k in 0..40 {
        for (f, value) in [("write", format!("\"v{k}\"")), ("read", format!("\"v{k}\""))] {
            for kind in ["invoke", "ok"] {
                lines
                    .push(format!("{{:type :{kind}, :f :{f}, :key :k{k:02}, :value {value}, :process {k}}}"));
            }
        }
    }
    let history = lines.join("\n");
    passes(&history, Model::Kv);
    let stale = history
        .replace(":ok, :f :read, :key :k31, :value \"v31\"", ":ok, :f :read, :key :k31, :value \"v30\"")
        .replace(":ok, :f :read, :key :k07, :value \"v7\"", ":ok, :f :read, :key :k07, :value nil");
    let verdict = fails(&stale, Model::Kv);
    assert_eq!(verdict.key, Some(quorum_check::datum::Datum::Keyword("k07".into())), "{verdict:#?}");
    assert_eq!(
        verdict.explanation,
        "read of key :k07 returned nil although the write of \"v7\" had completed before the read began."
    );
}

// --------------------------------------------------------------- objects

#[test]
fn list_append_passes_and_a_read_out_of_append_order_fails() {
    let history = "
        {:type :invoke, :f :append, :key 1, :value 1, :process 0}
        {:type :invoke, :f :append, :key 1, :value 2, :process 1}
        {:type :ok, :f :append, :key 1, :value 2, :process 1}
        {:type :invoke, :f :read, :key 1, :value nil, :process 2}
        {:type :ok, :f :read, :key 1, :value [2], :process 2}
        {:type :ok, :f :append, :key 1, :value 1, :process 0}
        {:type :invoke, :f :read, :key 1, :value nil, :process 2}
        {:type :ok, :f :read, :key 1, :value [2 1], :process 2}";
    passes(history, Model::ListAppend);
    // [2] was seen first, so 1 came after 2.
    let reordered = history.replace("[2 1]", "[1 2]");
    let verdict = fails(&reordered, Model::ListAppend);
    assert!(verdict.explanation.contains("semantics of a list"), "{}", verdict.explanation);
    let phantom = history.replace("[2 1]", "[2 1 3]");
    let verdict = fails(&phantom, Model::ListAppend);
    assert_eq!(verdict.explanation, "read of key 1 returned [2 1 3], but no operation ever appended 3.");
}

#[test]
fn set_passes_and_a_lost_add_fails() {
    let history = "
        {:type :invoke, :f :add, :value :a, :process 0}
        {:type :ok, :f :add, :value :a, :process 0}
        {:type :invoke, :f :add, :value :b, :process 1}
        {:type :invoke, :f :read, :process 2}
        {:type :ok, :f :read, :value #{:a}, :process 2}
        {:type :info, :f :add, :value :b, :process 1}
        {:type :invoke, :f :read, :process 3}
        {:type :ok, :f :read, :value #{:b :a}, :process 3}";
    passes(history, Model::Set);
    // The last read misses :a, added and acknowledged before it began.
    let lost = history.replace("#{:b :a}", "#{:b}");
    let verdict = fails(&lost, Model::Set);
    assert!(verdict.explanation.contains("semantics of a set"), "{}", verdict.explanation);
}

#[test]
fn counter_passes_and_a_read_beyond_every_increment_fails() {
    let history = "
        {:type :invoke, :f :add, :value 2, :process 0}
        {:type :invoke, :f :increment, :value nil, :process 1}
        {:type :invoke, :f :read, :process 2}
        {:type :ok, :f :read, :value 1, :process 2}
        {:type :ok, :f :add, :value 2, :process 0}
        {:type :ok, :f :increment, :value nil, :process 1}
        {:type :invoke, :f :read, :process 2}
        {:type :ok, :f :read, :value 3, :process 2}";
    passes(history, Model::Counter);
    let beyond = history.replace(":value 3", ":value 4");
    fails(&beyond, Model::Counter);
    // A read that goes backwards.
    let backwards = "
        {:type :invoke, :f :add, :value 2, :process 0}
        {:type :ok, :f :add, :value 2, :process 0}
        {:type :invoke, :f :read, :process 1}
        {:type :ok, :f :read, :value 2, :process 1}
        {:type :invoke, :f :read, :process 1}
        {:type :ok, :f :read, :value 0, :process 1}";
    fails(backwards, Model::Counter);
}

#[test]
fn queue_passes_and_dequeues_out_of_fifo_order_fail() {
    let history = "
        {:type :invoke, :f :enqueue, :value 1, :process 0}
        {:type :ok, :f :enqueue, :value 1, :process 0}
        {:type :invoke, :f :enqueue, :value 2, :process 0}
        {:type :ok, :f :enqueue, :value 2, :process 0}
        {:type :invoke, :f :dequeue, :process 1}
        {:type :ok, :f :dequeue, :value 1, :process 1}
        {:type :invoke, :f :dequeue, :process 1}
        {:type :ok, :f :dequeue, :value 2, :process 1}
        {:type :invoke, :f :dequeue, :process 1}
        {:type :fail, :f :dequeue, :process 1}
        {:type :invoke, :f :dequeue, :process 1}
        {:type :ok, :f :dequeue, :value nil, :process 1}";
    passes(history, Model::Queue);
    let swapped = history
        .replace(":value 1, :process 1", ":value 9, :process 1")
        .replace(":value 2, :process 1", ":value 1, :process 1")
        .replace(":value 9, :process 1", ":value 2, :process 1");
    let verdict = fails(&swapped, Model::Queue);
    assert!(verdict.explanation.contains("semantics of a FIFO queue"), "{}", verdict.explanation);
    let phantom = history.replace(":ok, :f :dequeue, :value nil", ":ok, :f :dequeue, :value 7");
    let verdict = fails(&phantom, Model::Queue);
    assert_eq!(
        verdict.explanation,
        "dequeue of the FIFO queue returned 7, but no operation ever enqueued 7."
    );
}

#[test]
fn an_indeterminate_dequeue_may_have_taken_the_head() {
    let history = "
        {:type :invoke, :f :enqueue, :value 1, :process 0}
        {:type :ok, :f :enqueue, :value 1, :process 0}
        {:type :invoke, :f :enqueue, :value 2, :process 0}
        {:type :ok, :f :enqueue, :value 2, :process 0}
        {:type :invoke, :f :dequeue, :process 1}
        {:type :info, :f :dequeue, :process 1}
        {:type :invoke, :f :dequeue, :process 2}
        {:type :ok, :f :dequeue, :value 2, :process 2}";
    passes(history, Model::Queue);
    // Without the indeterminate dequeue, 1 is still at the head.
    let without: String =
        history.lines().filter(|l| !l.contains(":process 1}")).collect::<Vec<_>>().join("\n");
    fails(&without, Model::Queue);
}

#[test]
fn mutex_passes_and_two_holders_fail() {
    let history = "
        {:type :invoke, :f :acquire, :process 0}
        {:type :ok, :f :acquire, :process 0}
        {:type :invoke, :f :acquire, :process 1}
        {:type :invoke, :f :release, :process 0}
        {:type :ok, :f :release, :process 0}
        {:type :ok, :f :acquire, :process 1}
        {:type :invoke, :f :release, :process 1}
        {:type :ok, :f :release, :process 1}";
    passes(history, Model::Mutex);
    // Process 1 acquires before process 0 releases: two holders.
    let early = "
        {:type :invoke, :f :acquire, :process 0}
        {:type :ok, :f :acquire, :process 0}
        {:type :invoke, :f :acquire, :process 1}
        {:type :ok, :f :acquire, :process 1}
        {:type :invoke, :f :release, :process 0}
        {:type :ok, :f :release, :process 0}";
    let verdict = fails(early, Model::Mutex);
    assert!(verdict.explanation.contains("semantics of a mutex"), "{}", verdict.explanation);
    // Releasing a free lock is illegal too.
    fails("{:type :invoke, :f :release, :process 0}\n{:type :ok, :f :release, :process 0}", Model::Mutex);
}

// ------------------------------------------------------------- porcupine

#[test]
fn porcupines_kv_histories_get_porcupines_verdicts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/porcupine-kv");
    for (name, expected) in [
        ("c01-ok", Outcome::Linearizable),
        ("c01-bad", Outcome::NotLinearizable),
        ("c10-ok", Outcome::Linearizable),
        ("c10-bad", Outcome::NotLinearizable),
    ] {
        let history = read(&std::fs::read_to_string(format!("{dir}/{name}.txt")).unwrap());
        let choice = choose(&history).unwrap();
        assert_eq!(choice.model, Model::Kv, "{name}");
        let verdict = check_recorded(&history, choice.model, DEFAULT_MAX_STATES).unwrap();
        assert_eq!(verdict.outcome, expected, "{name}: {verdict:#?}");
    }
}

#[test]
fn porcupine_kv_reads_the_empty_string_for_a_key_never_written() {
    let history = r#"{:process 0, :type :invoke, :f :get, :key "7", :value nil}
{:process 0, :type :ok, :f :get, :key "7", :value ""}
{:process 0, :type :invoke, :f :append, :key "7", :value "x"}
{:process 0, :type :ok, :f :append, :key "7", :value "x"}
{:process 0, :type :invoke, :f :get, :key "7", :value nil}
{:process 0, :type :ok, :f :get, :key "7", :value "x"}"#;
    passes(history, Model::Kv);
    // The append completed before the get began, which still read "".
    let missed = r#"{:process 0, :type :invoke, :f :append, :key "7", :value "x"}
{:process 0, :type :ok, :f :append, :key "7", :value "x"}
{:process 1, :type :invoke, :f :get, :key "7", :value nil}
{:process 1, :type :ok, :f :get, :key "7", :value ""}"#;
    let verdict = verdict(missed, Model::Kv);
    assert_eq!(verdict.outcome, Outcome::NotLinearizable, "{verdict:#?}");
}

// --------------------------------------------------- choice and errors

#[test]
fn the_model_is_chosen_from_the_ops_seen() {
    let cases = [
        ("{:type :invoke, :f :write, :value 1, :process 0}", Model::Register),
        ("{:type :invoke, :f :cas, :value [1 2], :process 0}", Model::CasRegister),
        ("{:type :invoke, :f :write, :key \"a\", :value 1, :process 0}", Model::Kv),
        ("{:type :invoke, :f :append, :key 1, :value 3, :process 0}", Model::ListAppend),
        ("{:type :invoke, :f :append, :key 1, :value \"s\", :process 0}", Model::Kv),
        ("{:type :invoke, :f :add, :value 1, :process 0}", Model::Counter),
        ("{:type :invoke, :f :add, :value :x, :process 0}", Model::Set),
        ("{:type :invoke, :f :add, :value 1, :process 0}\n{:type :ok, :f :add, :value 1, :process 0}\n{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :value #{1}, :process 0}", Model::Set),
        ("{:type :invoke, :f :increment, :process 0}", Model::Counter),
        ("{:type :invoke, :f :dequeue, :process 0}", Model::Queue),
        ("{:type :invoke, :f :acquire, :process 0}", Model::Mutex),
        ("{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :value [1 2], :process 0}", Model::ListAppend),
        ("", Model::Register),
    ];
    for (text, model) in cases {
        let choice = choose(&read(text)).unwrap();
        assert_eq!(choice.model, model, "{text}: {}", choice.reason);
    }
    let choice = choose(&read("{:type :invoke, :f :write, :key 1, :value 1, :process 0}\n{:type :invoke, :f :cas, :key 1, :value [1 2], :process 1}")).unwrap();
    assert_eq!(choice.reason, "chosen from the ops seen: write, cas, with keys");
    let err = choose(&read("{:type :invoke, :f :write, :value 1, :process 0}\n\n{:type :invoke, :f :enqueue, :value 1, :process 1}")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: :enqueue does not go with :write (line 1) in any one model; choose one with --model"
    );
}

#[test]
fn ops_that_do_not_suit_the_model_are_errors_naming_the_line() {
    let check = |text: &str, model: Model| {
        check_recorded(&read(text), model, DEFAULT_MAX_STATES).unwrap_err().to_string()
    };
    assert_eq!(
        check("{:type :invoke, :f :write, :value 1, :process 0}", Model::Queue),
        "line 1: the queue model has no :write (it takes :enqueue, :dequeue)"
    );
    assert_eq!(
        check("{:type :invoke, :f :cas, :value 1, :process 0}", Model::CasRegister),
        "line 1: invoke of :cas needs [expected new], not 1"
    );
    assert_eq!(
        check("{:type :invoke, :f :append, :value 1, :process 0}\n{:type :ok, :f :append, :value 1, :process 0}\n{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :value 5, :process 0}", Model::ListAppend),
        "line 4: an ok :read of a list returns a vector or nil, not 5"
    );
    assert_eq!(
        check("{:type :invoke, :f :add, :value :x, :process 0}", Model::Counter),
        "line 1: invoke of :add needs an integer, not :x"
    );
    assert_eq!(
        check("{:type :invoke, :f :append, :key 1, :value 3, :process 0}", Model::Kv),
        "line 1: invoke of :append needs a string to concatenate, not 3"
    );
    assert_eq!(
        check("{:type :invoke, :f :enqueue, :process 0}", Model::Queue),
        "line 1: invoke of :enqueue needs a value, not nil"
    );
}
