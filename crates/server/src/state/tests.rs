//! The state machine's commands against Redis' documented behaviour, and
//! its determinism: time comes only from stamps.

use super::*;

/// A map and a clock: `run` stamps each command with the current time.
struct Replica {
    map: KvMap,
    now: Millis,
}

impl Replica {
    fn new() -> Replica {
        Replica { map: KvMap::default(), now: 1_000_000 }
    }

    fn run(&mut self, op: Op) -> Output {
        self.map.apply(&Command { stamp_ms: self.now, op })
    }

    fn get(&mut self, k: &str) -> Option<Vec<u8>> {
        match self.run(Op::Get { key: k.into() }) {
            Output::Value(v) => v,
            other => panic!("GET answered {other:?}"),
        }
    }
}

fn set(k: &str, v: &str) -> Op {
    Op::Set { key: k.into(), value: v.into(), condition: Condition::Always, get: false, ttl: SetTtl::Clear }
}

fn set_px(k: &str, v: &str, ms: Millis) -> Op {
    Op::Set {
        key: k.into(),
        value: v.into(),
        condition: Condition::Always,
        get: false,
        ttl: SetTtl::Until(Deadline::In(ms)),
    }
}

fn value(v: &str) -> Output {
    Output::Value(Some(v.as_bytes().to_vec()))
}

#[test]
fn string_commands_follow_redis() {
    let mut r = Replica::new();
    assert_eq!(r.run(Op::Get { key: "a".into() }), Output::Value(None));
    assert_eq!(r.run(set("a", "1")), Output::Ok);
    assert_eq!(r.run(Op::IncrBy { key: "a".into(), by: 1 }), Output::Int(2));
    assert_eq!(r.run(Op::IncrBy { key: "n".into(), by: 1 }), Output::Int(1));
    r.run(set("s", "x"));
    assert!(matches!(r.run(Op::IncrBy { key: "s".into(), by: 1 }), Output::Error(_)));
    r.run(set("big", &i64::MAX.to_string()));
    assert!(matches!(r.run(Op::IncrBy { key: "big".into(), by: 1 }), Output::Error(_)));
    assert_eq!(r.run(Op::Append { key: "s".into(), value: "yz".into() }), Output::Int(3));
    assert_eq!(r.run(Op::StrLen { key: "s".into() }), Output::Int(3));
    assert_eq!(r.run(Op::GetRange { key: "s".into(), start: 1, end: -1 }), value("yz"));
    assert_eq!(r.run(Op::GetRange { key: "s".into(), start: 5, end: 9 }), value(""));
    assert_eq!(r.run(Op::GetRange { key: "none".into(), start: 0, end: -1 }), value(""));
    assert_eq!(r.run(Op::SetRange { key: "s".into(), offset: 5, value: "!".into() }), Output::Int(6));
    assert_eq!(r.get("s"), Some(b"xyz\0\0!".to_vec()));
    assert_eq!(r.run(Op::SetRange { key: "new".into(), offset: 3, value: "".into() }), Output::Int(0));
    assert_eq!(
        r.run(Op::Exists { keys: vec!["new".into()] }),
        Output::Int(0),
        "an empty SETRANGE creates nothing"
    );
    assert_eq!(r.run(Op::IncrByFloat { key: "f".into(), by: 10.5 }), value("10.5"));
    assert_eq!(r.run(Op::IncrByFloat { key: "f".into(), by: 0.1 }), value("10.6"));
    assert_eq!(r.run(Op::IncrByFloat { key: "f".into(), by: -10.6 }), value("0"));
    assert!(matches!(r.run(Op::IncrByFloat { key: "f".into(), by: f64::MAX }), Output::Value(_)));
    assert!(matches!(r.run(Op::IncrByFloat { key: "f".into(), by: f64::MAX }), Output::Error(_)));
    assert_eq!(r.run(Op::GetDel { key: "a".into() }), value("2"));
    assert_eq!(r.run(Op::GetDel { key: "a".into() }), Output::Value(None));
}

#[test]
fn set_options_and_multi_key_writes_follow_redis() {
    let mut r = Replica::new();
    let with =
        |condition, get| Op::Set { key: "k".into(), value: "new".into(), condition, get, ttl: SetTtl::Clear };
    assert_eq!(r.run(with(Condition::IfPresent, false)), Output::Value(None), "XX on an absent key");
    assert_eq!(r.run(with(Condition::IfAbsent, true)), Output::Value(None), "NX GET: set, nothing before");
    assert_eq!(r.get("k"), Some(b"new".to_vec()));
    r.run(set("k", "old"));
    assert_eq!(r.run(with(Condition::IfAbsent, true)), value("old"), "NX GET on a present key: not set");
    assert_eq!(r.get("k"), Some(b"old".to_vec()));
    assert_eq!(r.run(with(Condition::IfPresent, true)), value("old"));
    assert_eq!(r.get("k"), Some(b"new".to_vec()));
    let pairs = |ks: &[&str]| ks.iter().map(|k| (Bytes::from(*k), Bytes::from("v"))).collect::<Vec<_>>();
    assert_eq!(r.run(Op::MSet { pairs: pairs(&["a", "b"]), only_new: false }), Output::Ok);
    assert_eq!(r.run(Op::MSet { pairs: pairs(&["b", "c"]), only_new: true }), Output::Int(0));
    assert_eq!(r.run(Op::Exists { keys: vec!["c".into()] }), Output::Int(0), "MSETNX set nothing");
    assert_eq!(r.run(Op::MSet { pairs: pairs(&["c", "d"]), only_new: true }), Output::Int(1));
    assert_eq!(r.run(Op::DbSize), Output::Int(5));
    assert_eq!(r.run(Op::Type { key: "a".into() }), Output::Status("string".into()));
    assert_eq!(r.run(Op::Type { key: "zz".into() }), Output::Status("none".into()));
    assert_eq!(r.run(Op::Del { keys: vec!["a".into(), "zz".into(), "b".into()] }), Output::Int(2));
}

#[test]
fn keyspace_commands_follow_redis() {
    let mut r = Replica::new();
    for k in ["key:1", "key:2", "key:3", "other"] {
        r.run(set(k, k));
    }
    let keys = |ks: &[&str]| Output::Values(ks.iter().map(|k| Some(k.as_bytes().to_vec())).collect());
    assert_eq!(r.run(Op::Keys { pattern: "key:*".into() }), keys(&["key:1", "key:2", "key:3"]));
    assert_eq!(r.run(Op::Keys { pattern: "*[2t]*".into() }), keys(&["key:2", "other"]));
    let first = r.run(Op::Scan { from: Bytes::default(), pattern: None, count: 2 });
    assert_eq!(
        first,
        Output::Scan { next: Some(b"key:3".to_vec()), keys: vec![b"key:1".to_vec(), b"key:2".to_vec()] }
    );
    let rest = r.run(Op::Scan { from: "key:3".into(), pattern: Some("key*".into()), count: 10 });
    assert_eq!(rest, Output::Scan { next: None, keys: vec![b"key:3".to_vec()] });
    assert!(matches!(r.run(Op::RandomKey), Output::Value(Some(_))));
    assert_eq!(
        r.run(Op::Rename { from: "nope".into(), to: "x".into(), only_new: false }),
        Output::Error("ERR no such key".into())
    );
    assert_eq!(
        r.run(Op::Rename { from: "key:1".into(), to: "key:2".into(), only_new: true }),
        Output::Int(0)
    );
    assert_eq!(r.run(Op::Rename { from: "key:1".into(), to: "key:2".into(), only_new: false }), Output::Ok);
    assert_eq!(r.get("key:2"), Some(b"key:1".to_vec()));
    assert_eq!(r.get("key:1"), None);
    assert_eq!(r.run(Op::Copy { from: "key:2".into(), to: "key:3".into(), replace: false }), Output::Int(0));
    assert_eq!(r.run(Op::Copy { from: "key:2".into(), to: "key:3".into(), replace: true }), Output::Int(1));
    assert_eq!(
        r.run(Op::Copy { from: "key:2".into(), to: "key:2".into(), replace: true }),
        Output::Error("ERR source and destination objects are the same".into())
    );
    assert_eq!(r.get("key:3"), Some(b"key:1".to_vec()));
    assert_eq!(r.run(Op::FlushDb), Output::Ok);
    assert_eq!(r.run(Op::DbSize), Output::Int(0));
    assert_eq!(r.run(Op::RandomKey), Output::Value(None));
}

#[test]
fn a_key_expires_by_the_stamps_alone() {
    let mut r = Replica::new();
    r.run(set_px("k", "v", 200));
    assert_eq!(r.run(Op::Ttl { key: "k".into(), unit: TimeUnit::Millis }), Output::Int(200));
    assert_eq!(r.run(Op::Ttl { key: "k".into(), unit: TimeUnit::Seconds }), Output::Int(0));
    r.now += 200;
    assert_eq!(r.get("k"), Some(b"v".to_vec()), "alive at its deadline (Redis: expired when now > deadline)");
    r.now += 1;
    assert_eq!(r.get("k"), None);
    assert_eq!(r.run(Op::DbSize), Output::Int(0));
    assert_eq!(r.run(Op::Ttl { key: "k".into(), unit: TimeUnit::Millis }), Output::Int(-2));
    assert_eq!(r.map.len(), 1, "still in the map until purged");
    assert_eq!(r.run(Op::NextDeadline), Output::Int(1_000_200));
    assert_eq!(r.run(Op::Purge), Output::Int(1));
    assert!(r.map.is_empty());
    assert_eq!(r.run(Op::NextDeadline), Output::Int(-1));
}

/// A stamp from a clock that runs behind (a new leader's) cannot bring a
/// key back: the map's time is the highest stamp it applied.
#[test]
fn time_never_runs_backwards_so_a_late_clock_resurrects_nothing() {
    let mut r = Replica::new();
    r.run(set_px("k", "v", 200));
    r.now += 500;
    r.run(set("other", "x"));
    r.now -= 400; // a leader whose clock is 400 ms behind
    assert_eq!(r.get("k"), None);
    assert_eq!(r.run(Op::Exists { keys: vec!["k".into()] }), Output::Int(0));
    // The negative control: without the high-water mark the key would be back.
    r.map.clock_ms = 0;
    assert_eq!(r.get("k"), Some(b"v".to_vec()));
}

#[test]
fn expire_family_follows_redis() {
    let mut r = Replica::new();
    let expire = |ms, condition| Op::Expire { key: "k".into(), deadline: Deadline::In(ms), condition };
    assert_eq!(r.run(expire(1000, ExpireCondition::Always)), Output::Int(0), "absent key");
    r.run(set("k", "v"));
    assert_eq!(r.run(Op::Ttl { key: "k".into(), unit: TimeUnit::Seconds }), Output::Int(-1));
    assert_eq!(r.run(expire(1000, ExpireCondition::HasDeadline)), Output::Int(0));
    assert_eq!(r.run(expire(1000, ExpireCondition::Later)), Output::Int(0), "GT: no deadline is infinite");
    assert_eq!(r.run(expire(5000, ExpireCondition::Earlier)), Output::Int(1));
    assert_eq!(r.run(expire(9000, ExpireCondition::NoDeadline)), Output::Int(0));
    assert_eq!(r.run(expire(9000, ExpireCondition::Later)), Output::Int(1));
    assert_eq!(r.run(expire(8000, ExpireCondition::EarlierDeadline)), Output::Int(1));
    assert_eq!(r.run(Op::Ttl { key: "k".into(), unit: TimeUnit::Seconds }), Output::Int(8));
    // SET clears the deadline, KEEPTTL keeps it, APPEND and INCR keep it.
    let keep = Op::Set {
        key: "k".into(),
        value: "1".into(),
        condition: Condition::Always,
        get: false,
        ttl: SetTtl::Keep,
    };
    r.run(keep);
    r.run(Op::IncrBy { key: "k".into(), by: 1 });
    r.run(Op::Append { key: "k".into(), value: "0".into() });
    assert_eq!(r.run(Op::Ttl { key: "k".into(), unit: TimeUnit::Millis }), Output::Int(8000));
    assert_eq!(r.get("k"), Some(b"20".to_vec()));
    assert_eq!(r.run(Op::Persist { key: "k".into() }), Output::Int(1));
    assert_eq!(r.run(Op::Persist { key: "k".into() }), Output::Int(0));
    r.run(Op::Expire {
        key: "k".into(),
        deadline: Deadline::At(r.now + 50),
        condition: ExpireCondition::Always,
    });
    assert_eq!(r.run(Op::Rename { from: "k".into(), to: "j".into(), only_new: false }), Output::Ok);
    assert_eq!(
        r.run(Op::Ttl { key: "j".into(), unit: TimeUnit::Millis }),
        Output::Int(50),
        "RENAME moves the deadline"
    );
    assert_eq!(r.run(expire(0, ExpireCondition::Always)), Output::Int(0));
    assert_eq!(
        r.run(Op::Expire { key: "j".into(), deadline: Deadline::In(-1), condition: ExpireCondition::Always }),
        Output::Int(1)
    );
    assert_eq!(r.get("j"), None, "a deadline in the past deletes");
    r.run(set_px("gone", "v", 10));
    r.now += 11;
    assert_eq!(
        r.run(Op::Append { key: "gone".into(), value: "w".into() }),
        Output::Int(1),
        "an expired key is absent to writes too"
    );
    assert_eq!(r.run(Op::Ttl { key: "gone".into(), unit: TimeUnit::Millis }), Output::Int(-1));
    r.map.check();
}

#[test]
fn exec_applies_all_or_nothing_and_watch_aborts_on_a_change() {
    let mut r = Replica::new();
    r.run(set("a", "1"));
    let watch = |r: &mut Replica, keys: &[&str]| match r
        .run(Op::Versions { keys: keys.iter().map(|k| (*k).into()).collect() })
    {
        Output::Watch(w) => w,
        other => panic!("{other:?}"),
    };
    let ops = vec![
        Op::IncrBy { key: "a".into(), by: 1 },
        set("b", "x"),
        Op::IncrBy { key: "b".into(), by: 1 },
        Op::Get { key: "a".into() },
    ];
    let seen = watch(&mut r, &["a", "absent"]);
    let answer = r.run(Op::Exec { ops: ops.clone(), watch: Some(seen.clone()) });
    let expected = Output::Array(vec![
        Output::Int(2),
        Output::Ok,
        Output::Error("ERR value is not an integer or out of range".into()),
        value("2"),
    ]);
    assert_eq!(answer, expected, "a runtime error fails only its command");
    assert_eq!(
        r.run(Op::Exec { ops: ops.clone(), watch: Some(seen) }),
        Output::Aborted,
        "a watched key changed"
    );
    assert_eq!(r.get("a"), Some(b"2".to_vec()), "the aborted EXEC changed nothing");
    // An unrelated write does not abort; a deletion does for a key that was absent.
    let seen = watch(&mut r, &["a", "absent"]);
    r.run(set("unrelated", "1"));
    assert!(matches!(r.run(Op::Exec { ops: vec![Op::DbSize], watch: Some(seen.clone()) }), Output::Array(_)));
    r.run(Op::Del { keys: vec!["unrelated".into()] });
    assert_eq!(r.run(Op::Exec { ops: vec![], watch: Some(seen) }), Output::Aborted);
    // A watched key expiring aborts (Redis 6.0.9 and later).
    r.run(set_px("t", "v", 10));
    let seen = watch(&mut r, &["t"]);
    r.now += 20;
    assert_eq!(r.run(Op::Exec { ops: vec![set("x", "1")], watch: Some(seen) }), Output::Aborted);
}

#[test]
fn binary_keys_and_digest_cover_deadlines() {
    let mut a = Replica::new();
    let mut b = Replica::new();
    let key = Bytes(vec![0, 13, 10, 255]);
    a.run(Op::Set {
        key: key.clone(),
        value: Bytes(vec![0]),
        condition: Condition::Always,
        get: false,
        ttl: SetTtl::Clear,
    });
    assert_ne!(a.map.digest(), b.map.digest());
    b.run(Op::Set {
        key: key.clone(),
        value: Bytes(vec![0]),
        condition: Condition::Always,
        get: false,
        ttl: SetTtl::Clear,
    });
    assert_eq!(a.map.digest(), b.map.digest());
    b.run(Op::Expire { key, deadline: Deadline::In(1000), condition: ExpireCondition::Always });
    assert_ne!(a.map.digest(), b.map.digest());
}

/// The estimate errs high but not by much: at least the wire size
/// (postcard, as the peer transport sends it), at most a few bytes per
/// argument over it.
#[test]
fn command_bytes_bounds_the_encoded_size_from_above() {
    let big = Bytes(vec![7u8; 1 << 20]);
    let ops = [
        Op::Get { key: "k".into() },
        Op::MGet { keys: vec!["a".into(), Bytes(vec![1; 300]), Bytes::default()] },
        Op::Exists { keys: Vec::new() },
        Op::Set {
            key: "key".into(),
            value: big.clone(),
            condition: Condition::IfAbsent,
            get: true,
            ttl: SetTtl::Until(Deadline::At(i64::MAX)),
        },
        Op::Del { keys: vec![big.clone()] },
        Op::IncrBy { key: "n".into(), by: i64::MIN },
        Op::Cas { key: Bytes(vec![0; 200]), expected: big.clone(), new: big.clone() },
        Op::MSet { pairs: vec![("a".into(), big.clone()), ("b".into(), "c".into())], only_new: true },
        Op::Expire { key: "k".into(), deadline: Deadline::In(i64::MIN), condition: ExpireCondition::Later },
        Op::Scan { from: big.clone(), pattern: Some("*".into()), count: u64::MAX },
        Op::Exec {
            ops: vec![set("a", "b"), Op::Del { keys: vec![big.clone()] }],
            watch: Some(Watch { keys: vec![("a".into(), u64::MAX)], point: u64::MAX }),
        },
    ];
    for op in ops {
        let command = Command { stamp_ms: i64::MAX, op };
        let encoded = postcard::to_stdvec(&command).expect("encodes").len();
        let estimate = KvMap::command_bytes(&command);
        assert!(estimate >= encoded, "{command:?}: estimate {estimate} < encoded {encoded}");
        assert!(estimate <= encoded + 8 * ARGUMENT_OVERHEAD_BYTES, "{command:?}: {estimate} vs {encoded}");
    }
}

#[test]
fn numbers_parse_like_redis() {
    assert_eq!(parse_i64(b"-12"), Some(-12));
    assert_eq!(parse_i64(b"0"), Some(0));
    for bad in [&b""[..], b"+1", b"01", b" 1", b"1.0", b"99999999999999999999", b"-0"] {
        assert_eq!(parse_i64(bad), None, "{bad:?}");
    }
    assert_eq!(parse_f64(b"1.5e3"), Some(1500.0));
    for bad in [&b""[..], b" 1", b"1 ", b"nan", b"x"] {
        assert_eq!(parse_f64(bad), None, "{bad:?}");
    }
}
