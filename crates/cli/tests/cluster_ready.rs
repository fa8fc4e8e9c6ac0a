//! `quorum cluster` as a new user starts it: the first command, sent the
//! moment the nodes listen (before any leader is elected), is answered by
//! the leader once one is elected instead of `-TRYAGAIN`; and the command
//! prints one line naming the leader when the cluster is ready.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the cluster when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A base port P with P+i, P+10000+i and P+20000+i free for `nodes` nodes.
/// Each call of one test process starts from its own candidate, so tests
/// running at once do not pick the same range.
fn free_base_port(nodes: u16) -> u16 {
    static CALLS: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(31);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    (0..500u16)
        .map(|k| 20_000 + seed.wrapping_add(call.wrapping_mul(4_001)).wrapping_add(k * 37) % 20_000)
        .find(|base| {
            let ports = (0..nodes).flat_map(|i| [base + i, base + 10_000 + i, base + 20_000 + i]);
            let held: Vec<_> = ports.map(|p| TcpListener::bind(("127.0.0.1", p))).collect();
            held.iter().all(Result::is_ok)
        })
        .expect("a free range of ports")
}

/// Start `quorum cluster` with `flags`; its stdout lines arrive on the receiver.
fn start_cluster(dir: &std::path::Path, port: u16, flags: &[&str]) -> (Killed, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["cluster", "--port", &port.to_string(), "--data-dir", dir.to_str().unwrap()])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("quorum cluster starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Killed(child), rx)
}

fn line_with(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("quorum cluster printed the line");
        if line.contains(needle) {
            return line;
        }
    }
}

/// SET through node 0 the moment the cluster says its nodes listen.
fn first_set(port: u16) -> redis::RedisResult<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(10))?;
    redis::cmd("SET").arg("first").arg("write").query(&mut connection)
}

#[test]
fn the_first_set_right_after_quorum_cluster_starts_succeeds_and_the_ready_line_names_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_base_port(3);
    let (_cluster, lines) = start_cluster(dir.path(), port, &[]);
    line_with(&lines, "is up");
    // Elections take 1-2 s (the election timeout); the nodes listen already.
    assert_eq!(first_set(port).expect("the first SET succeeds"), "OK");
    let ready = line_with(&lines, "ready:");
    let leads_at_one_of_the_nodes =
        (0..3).any(|i| ready.ends_with(&format!("at redis://127.0.0.1:{}", port + i)));
    assert!(leads_at_one_of_the_nodes, "{ready}");
    assert!(ready.contains(" leads (term "), "{ready}");
}

/// The negative control: with no time to wait for a leader (a 20 ms request
/// timeout waits none: the margin takes all of it), the same first SET is
/// refused. The election timeout is set to a minute so that no leader can
/// be elected before the SET arrives, however slow the machine.
#[test]
fn without_time_to_wait_the_first_set_is_refused_for_want_of_a_leader() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_base_port(3);
    let slow = r#"{"election_timeout_min":60000000,"election_timeout_max":61000000}"#;
    let flags = ["--request-timeout-ms", "20", "--config", slow];
    let (_cluster, lines) = start_cluster(dir.path(), port, &flags);
    line_with(&lines, "is up");
    let refused = first_set(port).expect_err("the first SET is refused");
    assert_eq!(refused.kind(), redis::ErrorKind::TryAgain, "{refused}");
    assert!(refused.to_string().contains("not the leader"), "{refused}");
}

fn admin(port: u16, json: bool) -> std::process::Output {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["admin", "--addr", &addr, "status"];
    if json {
        args.push("--json");
    }
    Command::new(env!("CARGO_BIN_EXE_quorum")).args(&args).output().expect("quorum admin runs")
}

/// `quorum admin status` asks the node it is given, then every member whose
/// address that node knows: one leader, every member on the leader's term,
/// the leader's two followers with their match index and lag, and each
/// write counted exactly once, at the node the client sent it to.
#[test]
fn admin_status_shows_members_roles_terms_indexes_lag_and_counts_each_write_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_base_port(3);
    let (_cluster, lines) = start_cluster(dir.path(), port, &[]);
    line_with(&lines, "ready:");
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", port + i as u16)).unwrap();
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(10)).unwrap();
        let ok: String = redis::cmd("SET").arg(*key).arg("v").query(&mut connection).unwrap();
        assert_eq!(ok, "OK");
    }
    let out = admin(port, true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nodes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let leaders: Vec<&serde_json::Value> = nodes.iter().filter(|n| n["role"] == "leader").collect();
    assert_eq!(leaders.len(), 1, "{nodes:?}");
    let leader = leaders[0];
    assert!(nodes.iter().all(|n| n["term"] == leader["term"] && n["leader"] == leader["id"]), "{nodes:?}");
    assert!(leader["commit_index"].as_u64().unwrap() >= 3, "{leader}");
    let followers = leader["followers"].as_array().unwrap();
    assert_eq!(followers.len(), 2, "{leader}");
    for follower in followers {
        let (matched, lag) = (follower["match_index"].as_u64().unwrap(), follower["lag"].as_u64().unwrap());
        assert_eq!(matched + lag, leader["last_index"].as_u64().unwrap(), "{leader}");
    }
    let counted = |key: &str| nodes.iter().map(|n| n[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(counted("proposals_committed"), 3, "{nodes:?}");
    assert_eq!(counted("commits_timed"), 3, "{nodes:?}");
    assert_eq!(counted("proposals_failed"), 0, "{nodes:?}");
    let table = String::from_utf8(admin(port + 1, false).stdout).unwrap();
    assert_eq!(table.lines().count(), 5, "{table}");
    let role = |line: &str| line.split_whitespace().nth(2).map(str::to_string);
    assert_eq!(table.lines().filter(|l| role(l).as_deref() == Some("leader")).count(), 1, "{table}");
    assert_eq!(table.lines().filter(|l| role(l).as_deref() == Some("follower")).count(), 2, "{table}");
    assert!(table.contains(&format!("leader: node {}", leader["id"])), "{table}");
}

#[test]
fn admin_status_of_an_address_where_nothing_listens_is_a_one_line_error() {
    let port = free_base_port(1);
    let out = admin(port, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
