//! The client and the load generator over real loopback sockets, against toy
//! in-process servers (a RESP server answering SET/GET/WAIT/AUTH, an HTTP
//! server imitating etcd's JSON gateway) whose behaviour each test chooses,
//! and against a real `redis-server` when one is installed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use quorum_resp::bench::{self, BenchConfig, BenchError, Target};
use quorum_resp::codec::{encode, CommandDecoder, Limits, Value};
use quorum_resp::etcd::EtcdClient;
use quorum_resp::{Client, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------- toy RESP server

/// How the toy RESP server behaves.
#[derive(Clone, Default)]
struct RespBehaviour {
    password: Option<String>,
    /// Answer every GET with a `-MOVED` redirect.
    moved_reads: bool,
    /// What WAIT answers.
    wait_acks: i64,
    /// Close each connection after this many commands.
    close_after: Option<u64>,
    /// Never answer GET.
    hang_reads: bool,
}

#[derive(Default)]
struct RespCounters {
    sets: AtomicU64,
    gets: AtomicU64,
    get_hits: AtomicU64,
    waits: AtomicU64,
    connections: AtomicU64,
    store: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

async fn start_resp_server(behaviour: RespBehaviour) -> (String, Arc<RespCounters>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counters = Arc::new(RespCounters::default());
    let shared = Arc::clone(&counters);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve_resp(stream, behaviour.clone(), Arc::clone(&shared)));
        }
    });
    (addr, counters)
}

async fn serve_resp(mut stream: TcpStream, behaviour: RespBehaviour, counters: Arc<RespCounters>) {
    let limits = Limits::default();
    let mut decoder = CommandDecoder::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut authenticated = behaviour.password.is_none();
    let mut served = 0;
    loop {
        let mut out = Vec::new();
        loop {
            match decoder.decode(&buf, &limits) {
                Ok(None) => break,
                Ok(Some((args, used))) => {
                    buf.drain(..used);
                    if args.is_empty() {
                        continue;
                    }
                    served += 1;
                    if behaviour.close_after.is_some_and(|limit| served > limit) {
                        return;
                    }
                    match answer(&args, &behaviour, &counters, &mut authenticated) {
                        Some(reply) => encode(&reply, &mut out),
                        None => std::future::pending::<()>().await,
                    }
                }
                Err(error) => {
                    encode(&Value::Error(format!("ERR {error}")), &mut out);
                    let _ = stream.write_all(&out).await;
                    return;
                }
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The reply to one command; `None` means never answer.
fn answer(
    args: &[Vec<u8>],
    behaviour: &RespBehaviour,
    counters: &RespCounters,
    authenticated: &mut bool,
) -> Option<Value> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let ok = || Value::Simple("OK".into());
    if name == "AUTH" {
        return Some(if args.get(1).map(Vec::as_slice) == behaviour.password.as_deref().map(str::as_bytes) {
            *authenticated = true;
            ok()
        } else {
            Value::Error("WRONGPASS invalid password".into())
        });
    }
    if !*authenticated {
        return Some(Value::Error("NOAUTH Authentication required.".into()));
    }
    Some(match (name.as_str(), args.len()) {
        ("PING", 1) => Value::Simple("PONG".into()),
        ("SET", 3) => {
            counters.sets.fetch_add(1, Ordering::Relaxed);
            counters.store.lock().unwrap().insert(args[1].clone(), args[2].clone());
            ok()
        }
        ("GET", 2) => {
            counters.gets.fetch_add(1, Ordering::Relaxed);
            if behaviour.hang_reads {
                return None;
            }
            if behaviour.moved_reads {
                Value::Error("MOVED 0 127.0.0.1:1".into())
            } else {
                let value = counters.store.lock().unwrap().get(&args[1]).cloned();
                if value.is_some() {
                    counters.get_hits.fetch_add(1, Ordering::Relaxed);
                }
                Value::Bulk(value)
            }
        }
        ("WAIT", 3) => {
            counters.waits.fetch_add(1, Ordering::Relaxed);
            Value::Integer(behaviour.wait_acks)
        }
        _ => Value::Error(format!("ERR unknown command '{name}'")),
    })
}

fn config(addr: &str) -> BenchConfig {
    BenchConfig {
        addr: addr.to_string(),
        clients: 4,
        ops: Some(1000),
        seconds: None,
        warmup_seconds: 0.0,
        keyspace: 100,
        value_size: 32,
        op_timeout_seconds: 5.0,
        ..BenchConfig::default()
    }
}

// ---------------------------------------------------------------- client

#[tokio::test]
async fn client_calls_and_pipelines() {
    let (addr, _) = start_resp_server(RespBehaviour::default()).await;
    let mut client = Client::connect(addr.as_str()).await.unwrap();
    assert_eq!(client.call(&[b"PING"]).await.unwrap(), Value::Simple("PONG".into()));
    assert_eq!(client.call(&[b"SET", b"k\r\n\0", b"v"]).await.unwrap(), Value::Simple("OK".into()));
    assert_eq!(client.call(&[b"GET", b"k\r\n\0"]).await.unwrap(), Value::bulk(&b"v"[..]));
    // An error reply is an answer, not a failure.
    let error = client.call(&[b"NOPE"]).await.unwrap();
    assert_eq!(error.as_error(), Some("ERR unknown command 'NOPE'"));
    let big = vec![7u8; 300_000];
    let replies = client
        .pipeline(&[
            vec![b"SET".to_vec(), b"big".to_vec(), big.clone()],
            vec![b"GET".to_vec(), b"big".to_vec()],
            vec![b"GET".to_vec(), b"missing".to_vec()],
        ])
        .await
        .unwrap();
    assert_eq!(replies, vec![Value::Simple("OK".into()), Value::Bulk(Some(big)), Value::Bulk(None)]);
    assert_eq!(client.pipeline(&[]).await.unwrap(), vec![]);
}

#[tokio::test]
async fn client_is_broken_after_the_server_hangs_up() {
    let behaviour = RespBehaviour { close_after: Some(1), ..RespBehaviour::default() };
    let (addr, _) = start_resp_server(behaviour).await;
    let mut client = Client::connect(addr.as_str()).await.unwrap();
    client.call(&[b"PING"]).await.unwrap();
    assert!(matches!(client.call(&[b"PING"]).await, Err(ClientError::Closed)));
    assert!(matches!(client.call(&[b"PING"]).await, Err(ClientError::Broken)));
}

#[tokio::test]
async fn client_rejects_a_reply_that_is_not_resp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let mut client = Client::connect(addr).await.unwrap();
    assert!(matches!(client.call(&[b"PING"]).await, Err(ClientError::Protocol(_))));
}

// ---------------------------------------------------------------- bench, RESP

#[tokio::test]
async fn ops_bound_run_counts_every_operation_and_honours_the_write_ratio() {
    let (addr, counters) = start_resp_server(RespBehaviour::default()).await;
    let report =
        bench::run(&BenchConfig { ops: Some(3000), write_ratio: 0.3, ..config(&addr) }).await.unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.error_samples);
    assert_eq!(report.ops, 3000);
    let sets = counters.sets.load(Ordering::Relaxed);
    let gets = counters.gets.load(Ordering::Relaxed);
    assert_eq!(sets + gets, 3000, "the server saw exactly the measured operations");
    assert_eq!((report.write.count, report.read.count), (sets, gets));
    assert_eq!(report.all.count, 3000);
    // Binomial(3000, 0.3): mean 900, sd 25; 6 sd is a one-in-a-billion miss.
    assert!((750..=1050).contains(&sets), "sets {sets} far from 900");
    assert!(report.all.p50_us <= report.all.p99_us && report.all.p99_us <= report.all.max_us);
    assert!(report.ops_per_sec > 0.0);
    assert_eq!(counters.connections.load(Ordering::Relaxed), 4, "one connection per client");
}

#[tokio::test]
async fn write_ratio_extremes_are_pure_workloads() {
    let (addr, counters) = start_resp_server(RespBehaviour::default()).await;
    bench::run(&BenchConfig { write_ratio: 0.0, ..config(&addr) }).await.unwrap();
    assert_eq!(counters.sets.load(Ordering::Relaxed), 0);
    assert_eq!(counters.gets.load(Ordering::Relaxed), 1000);
    bench::run(&BenchConfig { write_ratio: 1.0, ..config(&addr) }).await.unwrap();
    assert_eq!(counters.sets.load(Ordering::Relaxed), 1000);
    assert_eq!(counters.gets.load(Ordering::Relaxed), 1000);
}

#[tokio::test]
async fn redirects_count_as_errors_with_their_message_kept() {
    let behaviour = RespBehaviour { moved_reads: true, ..RespBehaviour::default() };
    let (addr, counters) = start_resp_server(behaviour).await;
    let report = bench::run(&config(&addr)).await.unwrap();
    let gets = counters.gets.load(Ordering::Relaxed);
    assert!(gets > 0);
    assert_eq!(report.errors, gets);
    assert_eq!(report.ops, counters.sets.load(Ordering::Relaxed));
    assert_eq!(report.read.count, 0, "failed operations stay out of the histograms");
    assert_eq!(report.error_samples, vec!["MOVED 0 127.0.0.1:1".to_string()]);
    assert!(report.render_text().contains("error: MOVED"));
}

#[tokio::test]
async fn wait_replicas_follows_each_set_and_short_acks_are_errors() {
    let behaviour = RespBehaviour { wait_acks: 2, ..RespBehaviour::default() };
    let (addr, counters) = start_resp_server(behaviour).await;
    let run = BenchConfig { write_ratio: 1.0, wait_replicas: Some(2), ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!((report.ops, report.errors), (1000, 0));
    assert_eq!(counters.waits.load(Ordering::Relaxed), 1000);

    // Negative control: replicas that fall short make every write an error.
    let behaviour = RespBehaviour { wait_acks: 1, ..RespBehaviour::default() };
    let (addr, _) = start_resp_server(behaviour).await;
    let report = bench::run(&BenchConfig { addr, ..run }).await.unwrap();
    assert_eq!((report.ops, report.errors), (0, 1000));
    assert_eq!(report.error_samples, vec!["WAIT: 1 of 2 replicas acknowledged".to_string()]);
}

#[tokio::test]
async fn password_is_sent_and_a_wrong_one_stops_the_run() {
    let behaviour = RespBehaviour { password: Some("s3cret".into()), ..RespBehaviour::default() };
    let (addr, _) = start_resp_server(behaviour).await;
    let good = BenchConfig { password: Some("s3cret".into()), ..config(&addr) };
    assert_eq!(bench::run(&good).await.unwrap().errors, 0);
    let wrong = BenchConfig { password: Some("guess".into()), ..config(&addr) };
    match bench::run(&wrong).await {
        Err(BenchError::Setup { message, .. }) => assert!(message.contains("WRONGPASS"), "{message}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
    // Without AUTH every operation is refused, and counted.
    let report = bench::run(&config(&addr)).await.unwrap();
    assert_eq!(report.errors, 1000);
}

#[tokio::test]
async fn preload_writes_every_key_so_reads_hit() {
    let (addr, counters) = start_resp_server(RespBehaviour::default()).await;
    let run = BenchConfig { preload: true, write_ratio: 0.0, keyspace: 250, clients: 3, ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!(counters.store.lock().unwrap().len(), 250);
    assert_eq!(counters.sets.load(Ordering::Relaxed), 250, "preload writes each key once");
    assert_eq!(report.ops, 1000);
    assert_eq!(counters.get_hits.load(Ordering::Relaxed), 1000);
}

#[tokio::test]
async fn broken_connections_are_errors_and_clients_reconnect() {
    let behaviour = RespBehaviour { close_after: Some(25), ..RespBehaviour::default() };
    let (addr, counters) = start_resp_server(behaviour).await;
    let report = bench::run(&BenchConfig { clients: 2, ops: Some(200), ..config(&addr) }).await.unwrap();
    assert_eq!(report.ops + report.errors, 200);
    assert!(report.errors > 0);
    assert!(counters.connections.load(Ordering::Relaxed) > 2, "clients reconnected");
}

#[tokio::test]
async fn unanswered_operations_time_out_as_errors() {
    let behaviour = RespBehaviour { hang_reads: true, ..RespBehaviour::default() };
    let (addr, _) = start_resp_server(behaviour).await;
    let run =
        BenchConfig { clients: 1, ops: Some(2), write_ratio: 0.0, op_timeout_seconds: 0.1, ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!((report.ops, report.errors), (0, 2));
    assert!(report.error_samples[0].contains("no reply within"), "{:?}", report.error_samples);
}

#[tokio::test]
async fn seconds_bound_run_measures_at_least_that_long() {
    let (addr, _) = start_resp_server(RespBehaviour::default()).await;
    let run = BenchConfig { ops: None, seconds: Some(0.3), warmup_seconds: 0.1, ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert!(report.ops > 0);
    assert!(report.seconds >= 0.3, "every client runs until the end: {}", report.seconds);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["target"], "resp");
    assert!(json["all"]["p99_us"].is_u64());
}

#[tokio::test]
async fn an_unreachable_server_is_a_setup_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    assert!(matches!(bench::run(&config(&addr)).await, Err(BenchError::Setup { .. })));
    let invalid = BenchConfig { clients: 0, ..config(&addr) };
    assert!(matches!(bench::run(&invalid).await, Err(BenchError::Config(_))));
}

// ---------------------------------------------------------------- toy etcd gateway

#[derive(Clone)]
struct EtcdBehaviour {
    /// The one gateway prefix served; every other path is a plain-text 404.
    prefix: &'static str,
    chunked: bool,
    close_each: bool,
    /// Refuse puts with a gRPC-gateway error.
    refuse_puts: bool,
}

impl Default for EtcdBehaviour {
    fn default() -> Self {
        EtcdBehaviour { prefix: "/v3/", chunked: false, close_each: false, refuse_puts: false }
    }
}

#[derive(Default)]
struct EtcdCounters {
    puts: AtomicU64,
    ranges: AtomicU64,
    connections: AtomicU64,
    store: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

async fn start_etcd_server(behaviour: EtcdBehaviour) -> (String, Arc<EtcdCounters>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counters = Arc::new(EtcdCounters::default());
    let shared = Arc::clone(&counters);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve_http(stream, behaviour.clone(), Arc::clone(&shared)));
        }
    });
    (addr, counters)
}

async fn serve_http(mut stream: TcpStream, behaviour: EtcdBehaviour, counters: Arc<EtcdCounters>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + 4 + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[head_end + 4..head_end + 4 + length].to_vec();
        buf.drain(..head_end + 4 + length);
        let path = head.split(' ').nth(1).unwrap_or_default().to_string();
        let (status, reply) = etcd_answer(&path, &body, &behaviour, &counters);
        let mut response = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n");
        if behaviour.close_each {
            response.push_str("Connection: close\r\n");
        }
        if behaviour.chunked {
            response.push_str("Transfer-Encoding: chunked\r\n\r\n");
            for piece in reply.as_bytes().chunks(7) {
                response.push_str(&format!("{:x}\r\n{}\r\n", piece.len(), String::from_utf8_lossy(piece)));
            }
            response.push_str("0\r\n\r\n");
        } else {
            response.push_str(&format!("Content-Length: {}\r\n\r\n{reply}", reply.len()));
        }
        if stream.write_all(response.as_bytes()).await.is_err() || behaviour.close_each {
            return;
        }
    }
}

fn etcd_answer(
    path: &str,
    body: &[u8],
    behaviour: &EtcdBehaviour,
    counters: &EtcdCounters,
) -> (String, String) {
    let header = r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"}"#;
    let Some(method) = path.strip_prefix(behaviour.prefix) else {
        return ("404 Not Found".into(), "404 page not found".into());
    };
    let request: serde_json::Value = serde_json::from_slice(body).unwrap();
    let key = BASE64.decode(request["key"].as_str().unwrap()).unwrap();
    match method {
        "kv/put" if behaviour.refuse_puts => (
            "429 Too Many Requests".into(),
            r#"{"error":"etcdserver: too many requests","code":8,"message":"etcdserver: too many requests"}"#
                .into(),
        ),
        "kv/put" => {
            counters.puts.fetch_add(1, Ordering::Relaxed);
            let value = BASE64.decode(request["value"].as_str().unwrap_or_default()).unwrap();
            counters.store.lock().unwrap().insert(key, value);
            ("200 OK".into(), format!("{header}}}"))
        }
        "kv/range" => {
            counters.ranges.fetch_add(1, Ordering::Relaxed);
            assert!(request.get("serializable").is_none(), "bench reads must be linearizable");
            match counters.store.lock().unwrap().get(&key) {
                // etcd omits empty fields, as here for an empty value.
                Some(value) if value.is_empty() => {
                    ("200 OK".into(), format!(r#"{header},"kvs":[{{"key":"x"}}],"count":"1"}}"#))
                }
                Some(value) => (
                    "200 OK".into(),
                    format!(
                        r#"{header},"kvs":[{{"key":"x","value":"{}"}}],"count":"1"}}"#,
                        BASE64.encode(value)
                    ),
                ),
                None => ("200 OK".into(), format!("{header}}}")),
            }
        }
        _ => ("404 Not Found".into(), "404 page not found".into()),
    }
}

// ---------------------------------------------------------------- etcd client and bench

#[tokio::test]
async fn etcd_client_round_trips_and_detects_the_gateway_prefix() {
    for prefix in ["/v3/", "/v3beta/", "/v3alpha/"] {
        for chunked in [false, true] {
            let behaviour = EtcdBehaviour { prefix, chunked, ..EtcdBehaviour::default() };
            let (addr, _) = start_etcd_server(behaviour).await;
            let mut client = EtcdClient::detect(&addr).await.unwrap();
            assert_eq!(client.prefix(), prefix);
            assert_eq!(client.range(b"k").await.unwrap(), None);
            client.put(b"k\0\r\n", b"value \x00\xff").await.unwrap();
            assert_eq!(client.range(b"k\0\r\n").await.unwrap(), Some(b"value \x00\xff".to_vec()));
            client.put(b"empty", b"").await.unwrap();
            assert_eq!(client.range(b"empty").await.unwrap(), Some(Vec::new()));
        }
    }
}

#[tokio::test]
async fn etcd_detection_fails_when_no_prefix_answers() {
    let (addr, _) = start_etcd_server(EtcdBehaviour { prefix: "/v4/", ..EtcdBehaviour::default() }).await;
    let error = EtcdClient::detect(&addr).await.unwrap_err();
    assert!(error.to_string().contains("no etcd JSON gateway"), "{error}");
}

#[tokio::test]
async fn etcd_bench_counts_operations_over_keep_alive_connections() {
    let (addr, counters) = start_etcd_server(EtcdBehaviour::default()).await;
    let run = BenchConfig { target: Target::Etcd, write_ratio: 0.5, ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!((report.ops, report.errors), (1000, 0), "{:?}", report.error_samples);
    let puts = counters.puts.load(Ordering::Relaxed);
    // One probe range at detection, then the measured operations.
    assert_eq!(puts + counters.ranges.load(Ordering::Relaxed), 1001);
    assert_eq!(report.write.count, puts);
    assert_eq!(counters.connections.load(Ordering::Relaxed), 5, "a probe connection plus one per client");
}

#[tokio::test]
async fn etcd_bench_reconnects_when_the_server_closes_and_decodes_chunks() {
    let behaviour =
        EtcdBehaviour { prefix: "/v3beta/", chunked: true, close_each: true, ..EtcdBehaviour::default() };
    let (addr, counters) = start_etcd_server(behaviour).await;
    let run = BenchConfig { target: Target::Etcd, ops: Some(200), ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!((report.ops, report.errors), (200, 0), "{:?}", report.error_samples);
    assert!(counters.connections.load(Ordering::Relaxed) > 200, "a connection per request");
}

#[tokio::test]
async fn etcd_rejections_count_as_errors() {
    let (addr, _) = start_etcd_server(EtcdBehaviour { refuse_puts: true, ..EtcdBehaviour::default() }).await;
    let run = BenchConfig { target: Target::Etcd, write_ratio: 1.0, ops: Some(100), ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!((report.ops, report.errors), (0, 100));
    assert_eq!(
        report.error_samples,
        vec!["etcd answered HTTP 429: etcdserver: too many requests".to_string()]
    );
}

// ---------------------------------------------------------------- real redis-server, if installed

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn bench_drives_a_real_redis_server() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let spawned = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(child) = spawned else {
        eprintln!("note: redis-server is not installed; skipping the real-Redis bench test");
        return;
    };
    let _redis = KillOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(connected) = Client::connect(addr.as_str()).await {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut client = client.expect("redis-server accepts connections within 5 s");
    assert_eq!(client.call(&[b"PING"]).await.unwrap(), Value::Simple("PONG".into()));
    let run = BenchConfig { preload: true, wait_replicas: Some(0), ..config(&addr) };
    let report = bench::run(&run).await.unwrap();
    assert_eq!((report.ops, report.errors), (1000, 0), "{:?}", report.error_samples);
    assert_eq!(client.call(&[b"DBSIZE"]).await.unwrap(), Value::Integer(100));
    // Redis' own protocol errors reach the client as error replies.
    assert!(client.call(&[b"GET"]).await.unwrap().as_error().is_some());
}
