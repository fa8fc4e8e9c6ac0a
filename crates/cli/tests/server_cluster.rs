//! The real server, end to end: three `quorum serve` processes, clients on a
//! real Redis client library (redis-rs), the leader killed with SIGKILL in
//! the middle of the load. The clients' history must be linearizable and no
//! acknowledged write may be lost; the killed node must recover from its
//! log and catch up.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorum_check::durability::lost_acked_writes;
use quorum_check::history::{History, Op, OpType, OpValue, F};
use quorum_check::linearizability::{check, Model, Outcome};

const SECRET: &str = "integration-test-secret";

struct Node {
    id: u32,
    protocol: &'static str,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    /// More `quorum serve` flags.
    extra: Vec<String>,
    /// A free port of this node's for those flags (a metrics listener).
    spare_port: u16,
    child: Option<Child>,
}

struct Cluster {
    nodes: Vec<Node>,
    _root: tempfile::TempDir,
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl Cluster {
    fn start(n: u32) -> Cluster {
        Cluster::start_with(n, "raft")
    }

    fn start_with(n: u32, protocol: &'static str) -> Cluster {
        let cluster = Cluster::spawn(n, protocol, |_, _, _| Vec::new());
        for node in &cluster.nodes {
            wait_for_ping(node.client_port);
        }
        cluster
    }

    /// Start `n` nodes without waiting for them; `extra(id, client ports,
    /// spare port)` gives each node's further `quorum serve` flags, with one
    /// more free port of its own (for a metrics listener, say).
    fn spawn(n: u32, protocol: &'static str, extra: impl Fn(u32, &[u16], u16) -> Vec<String>) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        // One allocation for every port, so none is handed out twice.
        let ports = free_ports(3 * n as usize);
        let client_ports: Vec<u16> = ports.iter().step_by(2).take(n as usize).copied().collect();
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                id: i,
                protocol,
                client_port: ports[2 * i as usize],
                peer_port: ports[2 * i as usize + 1],
                dir: root.path().join(format!("node-{i}")),
                extra: extra(i, &client_ports, ports[2 * n as usize + i as usize]),
                spare_port: ports[2 * n as usize + i as usize],
                child: None,
            })
            .collect();
        let peers: Vec<(u32, u16)> = nodes.iter().map(|n| (n.id, n.peer_port)).collect();
        for node in &mut nodes {
            node.spawn(&peers);
        }
        Cluster { nodes, _root: root }
    }

    fn peers(&self) -> Vec<(u32, u16)> {
        self.nodes.iter().map(|n| (n.id, n.peer_port)).collect()
    }

    /// The node whose INFO says it leads, waiting up to `within`.
    fn leader(&self, within: Duration) -> Option<u32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Some(info) = info(node.client_port) {
                    if info.contains("role:leader") {
                        return Some(node.id);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Node {
    fn spawn(&mut self, peers: &[(u32, u16)]) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let others: Vec<String> = peers
            .iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(id, p)| format!("{id}=127.0.0.1:{p}"))
            .collect();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args(["serve", "--id", &self.id.to_string(), "--protocol", self.protocol])
            .args(["--listen", &format!("127.0.0.1:{}", self.client_port)])
            .args(["--peer-listen", &format!("127.0.0.1:{}", self.peer_port)])
            .args(["--peers", &others.join(",")])
            .args(["--data-dir", self.dir.to_str().unwrap()])
            .args(["--cluster-secret", SECRET, "--request-timeout-ms", "2000"])
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("quorum serve starts");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(3)))?;
    con.set_write_timeout(Some(Duration::from_secs(3)))?;
    Ok(con)
}

fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut con) = connect(port) {
            if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node on port {port} never answered PING");
}

fn info(port: u16) -> Option<String> {
    let mut con = connect(port).ok()?;
    redis::cmd("INFO").query::<String>(&mut con).ok()
}

/// The history, shared by the client threads; events get their index here.
#[derive(Default)]
struct Recorder {
    history: Mutex<History>,
    start: Option<Instant>,
}

impl Recorder {
    fn push(&self, kind: OpType, f: F, key: u64, value: OpValue, process: u64, node: u32) {
        let mut h = self.history.lock().unwrap();
        let index = h.ops.len();
        let time = self.start.map_or(0, |s| s.elapsed().as_micros() as u64);
        h.ops.push(Op { index, kind, f, key, value, process, time, node: Some(node) });
    }
}

/// How a command's answer reads in the history: `ok` with a value, `fail`
/// (certainly not executed: TRYAGAIN), or `info` (unknown).
enum Outcome2 {
    Ok(OpValue),
    Fail,
    Info,
}

fn classify_error(e: &redis::RedisError) -> Outcome2 {
    if e.code() == Some("TRYAGAIN") || e.to_string().contains("TRYAGAIN") {
        Outcome2::Fail
    } else {
        Outcome2::Info
    }
}

fn client_thread(
    thread: u64,
    ports: Vec<u16>,
    live: Arc<Mutex<Vec<bool>>>,
    stop: Arc<AtomicBool>,
    recorder: Arc<Recorder>,
) -> usize {
    let mut process = thread * 1_000;
    let mut counter = 0u64;
    let mut target = thread as usize % ports.len();
    let mut con: Option<redis::Connection> = None;
    let mut rng = thread.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acked = 0;
    while !stop.load(Ordering::Relaxed) {
        if con.is_none() {
            let alive = live.lock().unwrap().clone();
            for _ in 0..ports.len() {
                target = (target + 1) % ports.len();
                if alive[target] {
                    break;
                }
            }
            con = connect(ports[target]).ok();
            if con.is_none() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let c = con.as_mut().unwrap();
        let key = next() % 4;
        let roll = next() % 10;
        let at = Invocation { thread, key, process, target: target as u32 };
        let (f, invoke_value, result) = issue(c, &recorder, at, roll, &mut counter);
        match result {
            Outcome2::Ok(value) => {
                if f != F::Read {
                    acked += 1;
                }
                recorder.push(OpType::Ok, f, key, value, process, target as u32);
            }
            Outcome2::Fail => recorder.push(OpType::Fail, f, key, invoke_value, process, target as u32),
            Outcome2::Info => {
                recorder.push(OpType::Info, f, key, invoke_value, process, target as u32);
                process += 1; // Jepsen's rule: a process with a pending op is never reused
                con = None;
            }
        }
    }
    acked
}

/// Who issues an operation, on which key, through which node.
#[derive(Clone, Copy)]
struct Invocation {
    thread: u64,
    key: u64,
    process: u64,
    target: u32,
}

/// Send one operation (half writes, 40% reads, 10% cas, by `roll`),
/// recording its invocation; what it was and how it ended.
fn issue(
    c: &mut redis::Connection,
    recorder: &Recorder,
    at: Invocation,
    roll: u64,
    counter: &mut u64,
) -> (F, OpValue, Outcome2) {
    let Invocation { thread, key, process, target } = at;
    if roll < 5 {
        *counter += 1;
        let value = thread * 1_000_000 + *counter;
        recorder.push(OpType::Invoke, F::Write, key, OpValue::One(value), process, target);
        let r = redis::cmd("SET").arg(format!("k{key}")).arg(value).query::<String>(c);
        let outcome = r.map(|_| Outcome2::Ok(OpValue::One(value))).unwrap_or_else(|e| classify_error(&e));
        (F::Write, OpValue::One(value), outcome)
    } else if roll < 9 {
        recorder.push(OpType::Invoke, F::Read, key, OpValue::Nil, process, target);
        let r = redis::cmd("GET").arg(format!("k{key}")).query::<Option<u64>>(c);
        let outcome = match r {
            Ok(Some(v)) => Outcome2::Ok(OpValue::One(v)),
            Ok(None) => Outcome2::Ok(OpValue::Nil),
            Err(e) => classify_error(&e),
        };
        (F::Read, OpValue::Nil, outcome)
    } else {
        *counter += 1;
        let expected = thread * 1_000_000 + *counter - 1;
        let new = thread * 1_000_000 + *counter;
        let pair = OpValue::Pair([expected, new]);
        recorder.push(OpType::Invoke, F::Cas, key, pair, process, target);
        let r = redis::cmd("CAS").arg(format!("k{key}")).arg(expected).arg(new).query::<i64>(c);
        let outcome = match r {
            Ok(1) => Outcome2::Ok(pair),
            Ok(_) => Outcome2::Fail,
            Err(e) => classify_error(&e),
        };
        (F::Cas, pair, outcome)
    }
}

fn final_values(port: u16) -> BTreeMap<u64, Option<u64>> {
    let mut con = connect(port).unwrap();
    (0..4)
        .map(|k| (k, redis::cmd("GET").arg(format!("k{k}")).query::<Option<u64>>(&mut con).unwrap()))
        .collect()
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[test]
fn raft_leader_killed_mid_load_loses_no_acknowledged_write_and_history_is_linearizable() {
    leader_killed_mid_load("raft");
}

#[test]
fn zab_leader_killed_mid_load_loses_no_acknowledged_write_and_history_is_linearizable() {
    leader_killed_mid_load("zab");
}

fn leader_killed_mid_load(protocol: &'static str) {
    let mut cluster = Cluster::start_with(3, protocol);
    let first = cluster.leader(Duration::from_secs(10)).expect("a leader is elected");
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.client_port).collect();
    let live = Arc::new(Mutex::new(vec![true; ports.len()]));
    let stop = Arc::new(AtomicBool::new(false));
    let recorder =
        Arc::new(Recorder { history: Mutex::new(History::default()), start: Some(Instant::now()) });
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (ports, live, stop, recorder) = (ports.clone(), live.clone(), stop.clone(), recorder.clone());
            std::thread::spawn(move || client_thread(t, ports, live, stop, recorder))
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    live.lock().unwrap()[first as usize] = false;
    cluster.nodes[first as usize].kill();
    let second = cluster.leader(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let acked: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let second = second.unwrap_or_else(|| {
        let logs: Vec<String> = cluster.nodes.iter().map(|n| log_tail(&n.dir)).collect();
        panic!("no new leader after killing node {first}:\n{}", logs.join("\n----\n"))
    });
    assert_ne!(second, first);

    // The killed node recovers from its log and catches up.
    let peers = cluster.peers();
    cluster.nodes[first as usize].spawn(&peers);
    wait_for_ping(cluster.nodes[first as usize].client_port);

    let history = recorder.history.lock().unwrap().clone();
    let finals = final_values(cluster.nodes[second as usize].client_port);
    let report = check(&history, Model::Kv);
    assert_eq!(
        report.outcome,
        Outcome::Linearizable,
        "{}\nwitness: {:?}",
        report.explanation,
        report.witness
    );
    let lost = lost_acked_writes(&history, &finals);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(acked > 50, "the cluster acknowledged only {acked} writes");
    checks_catch_a_doctored_copy(&history, &finals);

    // Stale local reads on the recovered node converge to the leader's state.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut con = connect(cluster.nodes[first as usize].client_port).unwrap();
        redis::cmd("READONLY").query::<String>(&mut con).unwrap();
        let local: BTreeMap<u64, Option<u64>> = (0..4)
            .map(|k| (k, redis::cmd("GET").arg(format!("k{k}")).query::<Option<u64>>(&mut con).unwrap()))
            .collect();
        if local == finals {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted node never caught up: {local:?} vs {finals:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_input_gets_errors_and_the_connection_survives() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(1);
    let port = cluster.nodes[0].client_port;
    cluster.leader(Duration::from_secs(10)).expect("a single node elects itself");
    let mut con = connect(port).unwrap();
    let err = redis::cmd("NOSUCH").arg("x").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("unknown command"), "{err}");
    let err = redis::cmd("GET").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("wrong number of arguments"), "{err}");
    let key = vec![0u8, b'\r', b'\n', 255];
    redis::cmd("SET").arg(&key).arg("v").query::<String>(&mut con).unwrap();
    assert_eq!(redis::cmd("GET").arg(&key).query::<String>(&mut con).unwrap(), "v");
    assert_eq!(redis::cmd("INCR").arg("n").query::<i64>(&mut con).unwrap(), 1);
    assert!(redis::cmd("INCR").arg(&key).query::<i64>(&mut con).is_err());
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).unwrap(), "PONG");

    // A framing error: an error, then the connection is closed cleanly.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"*1\r\n$-5\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("-ERR Protocol error"), "{answer:?}");
    // The server is still up.
    assert_eq!(redis::cmd("PING").query::<String>(&mut connect(port).unwrap()).unwrap(), "PONG");
}

/// Negative control for the two checks above, on this run's own history: a
/// copy with one acknowledged read changed to a value nobody wrote is not
/// linearizable, and a final state missing the last acknowledged write of a
/// key reports that write lost.
fn checks_catch_a_doctored_copy(history: &History, finals: &BTreeMap<u64, Option<u64>>) {
    let mut bad = history.clone();
    let read = bad
        .ops
        .iter_mut()
        .find(|op| op.kind == OpType::Ok && op.f == F::Read)
        .expect("the run has an acknowledged read");
    read.value = OpValue::One(u64::MAX);
    assert_ne!(
        check(&bad, Model::Kv).outcome,
        Outcome::Linearizable,
        "a read of a value never written passed"
    );

    let (key, _) = finals.iter().find(|(_, v)| v.is_some()).expect("some key was written");
    let mut missing = finals.clone();
    missing.insert(*key, Some(u64::MAX));
    assert!(
        !lost_acked_writes(history, &missing).is_empty(),
        "a final state without key {key}'s last write passed"
    );
}

#[test]
fn a_data_dir_of_another_cluster_node_or_protocol_or_in_use_is_refused_at_start() {
    let mut cluster = Cluster::start(1);
    cluster.leader(Duration::from_secs(10)).expect("a single node elects itself");
    let port = cluster.nodes[0].client_port;
    redis::cmd("SET").arg("kept").arg("1").query::<String>(&mut connect(port).unwrap()).unwrap();
    cluster.nodes[0].kill();
    let dir = cluster.nodes[0].dir.to_str().unwrap().to_string();
    let ports = free_ports(2);
    let serve = |id: &str, cluster_id: Option<&str>, protocol: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quorum"));
        cmd.args(["serve", "--id", id, "--data-dir", &dir, "--cluster-secret", SECRET])
            .args(["--listen", &format!("127.0.0.1:{}", ports[0])])
            .args(["--peer-listen", &format!("127.0.0.1:{}", ports[1])])
            .args(["--peers", "9=127.0.0.1:1", "--protocol", protocol]);
        if let Some(c) = cluster_id {
            cmd.args(["--cluster-id", c]);
        }
        cmd.output().expect("quorum serve runs")
    };
    // Another cluster, another node id, another protocol (whose decoder
    // could read nothing and serve an empty store).
    for (id, cluster_id, protocol) in
        [("0", Some("another-cluster"), "raft"), ("1", None, "raft"), ("0", None, "zab")]
    {
        let out = serve(id, cluster_id, protocol);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "node {id} cluster {cluster_id:?} started on a foreign dir: {stderr}"
        );
        assert!(stderr.contains("does not belong to this node") && stderr.contains(&dir), "{stderr}");
    }
    // The refusals changed nothing: the rightful node resumes with its data.
    let peers = cluster.peers();
    cluster.nodes[0].spawn(&peers);
    wait_for_ping(port);
    cluster.leader(Duration::from_secs(10)).expect("the node elects itself again");
    let kept: Option<String> = redis::cmd("GET").arg("kept").query(&mut connect(port).unwrap()).unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
    // While it runs, a second process on its dir is refused.
    let out = serve("0", None, "raft");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a second process opened a dir in use: {stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
}

/// `quorum serve` for node `id` of `cluster` with `flags`, run to its exit
/// (killed after 60 s: a node that should have refused to start serves,
/// and the caller's check of the exit code fails instead of hanging).
fn serve_to_exit(cluster: &Cluster, id: usize, flags: &[&str]) -> (Option<i32>, String) {
    let node = &cluster.nodes[id];
    let others: Vec<String> = cluster
        .peers()
        .iter()
        .filter(|(peer, _)| *peer != node.id)
        .map(|(peer, port)| format!("{peer}=127.0.0.1:{port}"))
        .collect();
    let mut out = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["serve", "--id", &node.id.to_string(), "--data-dir", node.dir.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", node.client_port)])
        .args(["--peer-listen", &format!("127.0.0.1:{}", node.peer_port)])
        .args(["--peers", &others.join(","), "--cluster-secret", SECRET])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quorum serve runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = out.kill();
    let out = out.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Raft and Zab are safe only if a node never forgets its term, vote and
/// acknowledged entries. A node whose data dir was emptied (a replaced
/// disk) while its peers know it is refused at start, with the data dir
/// named; `--rejoin-as-new` is refused too (it needs membership changes).
/// The positive twin: the same node on its own data dir rejoins and
/// serves. And if the peers that know it are down when it starts, it
/// starts, and stops as soon as one of them is back, before sending it anything.
#[test]
fn a_node_whose_data_dir_was_replaced_is_refused_unless_its_dir_is_restored() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(Duration::from_secs(20)).expect("a leader");
    let port = cluster.nodes[leader as usize].client_port;
    redis::cmd("SET").arg("k").arg("1").query::<String>(&mut connect(port).unwrap()).unwrap();
    let victim = (leader as usize + 1) % 3;
    cluster.nodes[victim].kill();
    let dir = cluster.nodes[victim].dir.clone();
    let saved = dir.with_extension("saved");
    std::fs::rename(&dir, &saved).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let (code, stderr) = serve_to_exit(&cluster, victim, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let expected = format!("knows node {victim} from an earlier data dir");
    assert!(stderr.contains(&expected) && stderr.contains(dir.to_str().unwrap()), "{stderr}");
    assert_eq!(stderr.trim().lines().filter(|l| l.starts_with("error")).count(), 1, "{stderr}");
    let (code, stderr) = serve_to_exit(&cluster, victim, &["--rejoin-as-new"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("needs membership changes"), "{stderr}");
    // The refusals wrote nothing: the dir is still empty (a retry is refused alike).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "a refused start initialised the dir");
    // Its own data dir restored, the node rejoins and sees the write.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::rename(&saved, &dir).unwrap();
    let peers = cluster.peers();
    cluster.nodes[victim].spawn(&peers);
    let victim_port = cluster.nodes[victim].client_port;
    wait_for_ping(victim_port);
    let value: Option<String> = redis::cmd("GET").arg("k").query(&mut connect(victim_port).unwrap()).unwrap();
    assert_eq!(value.as_deref(), Some("1"));
    // Every node down, the victim's dir emptied: it starts (no peer can
    // tell), and stops once a peer that knows it is back.
    for node in &mut cluster.nodes {
        node.kill();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    cluster.nodes[victim].spawn(&peers);
    wait_for_ping(victim_port);
    let other = (victim + 1) % 3;
    cluster.nodes[other].spawn(&peers);
    let status = cluster.nodes[victim].child.as_mut().unwrap().wait().unwrap();
    cluster.nodes[victim].child = None;
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = format!("node {other} knows node {victim} from another data dir than {}", dir.display());
    assert!(stderr.contains(&expected), "{stderr}");
}

/// What a client of a production cluster meets, end to end: a password
/// (NOAUTH before AUTH, a wrong one refused), a follower that does not
/// forward answering a write with the leader's client address, and the
/// Prometheus endpoint over HTTP.
#[test]
fn password_redirect_and_metrics_over_http() {
    let cluster = Cluster::spawn(3, "raft", |i, clients, spare| {
        let others: Vec<String> =
            (0..3u32).filter(|j| *j != i).map(|j| format!("{j}=127.0.0.1:{}", clients[j as usize])).collect();
        vec![
            "--password".into(),
            "pw".into(),
            "--no-forward".into(),
            "--peer-clients".into(),
            others.join(","),
            "--metrics-listen".into(),
            format!("127.0.0.1:{spare}"),
        ]
    });
    let client: Vec<u16> = cluster.nodes.iter().map(|n| n.client_port).collect();
    let metrics: Vec<u16> = cluster.nodes.iter().map(|n| n.spare_port).collect();
    let authed = |port: u16| -> Option<redis::Connection> {
        let mut con = connect(port).ok()?;
        redis::cmd("AUTH").arg("pw").query::<String>(&mut con).ok()?;
        Some(con)
    };
    // The leader, by INFO over an authenticated connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let found = (0..3).find(|i| {
            authed(client[*i])
                .and_then(|mut con| redis::cmd("INFO").query::<String>(&mut con).ok())
                .is_some_and(|info| info.contains("role:leader"))
        });
        if let Some(i) = found {
            break i;
        }
        assert!(Instant::now() < deadline, "no leader within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let follower = (leader + 1) % 3;

    let mut anonymous = connect(client[leader]).unwrap();
    let refused = redis::cmd("GET").arg("k").query::<Option<String>>(&mut anonymous).unwrap_err();
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    let wrong = redis::cmd("AUTH").arg("not-pw").query::<String>(&mut anonymous).unwrap_err();
    assert!(!wrong.to_string().is_empty());
    assert!(redis::cmd("GET").arg("k").query::<Option<String>>(&mut anonymous).is_err(), "still locked");

    let mut at_leader = authed(client[leader]).unwrap();
    let _: String = redis::cmd("SET").arg("k").arg("v").query(&mut at_leader).unwrap();
    let mut at_follower = authed(client[follower]).unwrap();
    let redirect = redis::cmd("SET").arg("k").arg("w").query::<String>(&mut at_follower).unwrap_err();
    let expected = format!("leader: node {leader} at 127.0.0.1:{}", client[leader]);
    assert!(redirect.to_string().contains(&expected), "{redirect} lacks '{expected}'");
    let value: Option<String> = redis::cmd("GET").arg("k").query(&mut at_leader).unwrap();
    assert_eq!(value.as_deref(), Some("v"), "the refused write did nothing");

    let body = http_get(metrics[leader], "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(&format!("quorum_role{{node=\"{leader}\"}} 2")), "{body}");
    assert!(body.contains("# TYPE quorum_fsync_seconds histogram"), "{body}");
    assert!(http_get(metrics[leader], "/nope").starts_with("HTTP/1.1 404"));
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // In three writes, as a slow client might send it: the server must
    // read up to the end of the headers, not answer the first fragment.
    for piece in ["GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n"] {
        stream.write_all(piece.as_bytes()).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}
