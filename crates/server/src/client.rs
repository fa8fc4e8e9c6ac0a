//! The client front end: RESP2 over TCP, so `redis-cli`, `redis-benchmark`
//! and Redis client libraries work against the replicated store.
//!
//! A connection is a loop: read bytes, parse every complete command in the
//! buffer, hand them to the node in order (pipelined commands are all in
//! flight at once), write the answers in order. Bad input never panics and
//! never loses anything acknowledged: a malformed frame gets a
//! `-ERR Protocol error` and the connection is closed (there is no way to
//! resynchronise a byte stream), a bad command gets an error and the
//! connection stays usable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use quorum_core::{NodeId, RequestId};
use quorum_resp::codec::{encode, CommandDecoder, Limits, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::node::{Input, Status};
use crate::state::{parse_i64, Command, Output};
use crate::wire::same;

/// Most commands of one pipeline in flight before their answers are written.
const MAX_PIPELINE: usize = 1024;

/// What every connection of a node shares.
pub struct FrontEnd<M> {
    pub node: mpsc::Sender<Input<M>>,
    pub id: NodeId,
    pub protocol: &'static str,
    pub password: Option<String>,
    pub limits: Limits,
    pub request_timeout: Duration,
    /// Client addresses of the other nodes, for error hints (may be empty).
    pub client_addrs: BTreeMap<NodeId, String>,
    pub metrics: Arc<Metrics>,
    /// Random per boot; connection `n` gets client id `client_id(id_key, n)`.
    pub id_key: u64,
    pub connections: AtomicU64,
}

pub async fn accept_clients<M: Send + 'static>(listener: TcpListener, front: Arc<FrontEnd<M>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let front = front.clone();
                let n = front.connections.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, front, n).await {
                        debug!("client connection ends: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("client listener: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connection `n`'s client id: distinct for every connection of one boot
/// (the mix is a bijection of u64). Two boots (a restart, another node) can
/// share an id only if their random keys lie within their connection counts
/// of each other: about 2^-47 for 2^16 connections each, where the 16 random
/// bits per boot used before gave 2^-16 per restart.
pub fn client_id(id_key: u64, n: u64) -> u64 {
    // SplitMix64's finalizer.
    let mut z = id_key.wrapping_add(n);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A command answered locally, or one waiting for the node.
enum Answer {
    Now(Value),
    Node(oneshot::Receiver<Output>),
    Local(oneshot::Receiver<Option<Output>>),
    Status(oneshot::Receiver<Status>),
}

struct Session {
    /// The client half of every request id this connection sends: raft's
    /// sessions answer a repeated (client, seq) from their cache without
    /// applying it, so it must never repeat another connection's.
    client: u64,
    /// This connection's number on this node since boot (`CLIENT ID`).
    number: u64,
    seq: u64,
    authenticated: bool,
    /// `READONLY`: reads are served from this node's state, possibly stale.
    stale_reads: bool,
    quit: bool,
}

async fn connection<M: Send + 'static>(
    mut stream: TcpStream,
    front: Arc<FrontEnd<M>>,
    n: u64,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut session = Session {
        client: client_id(front.id_key, n),
        number: n,
        seq: 0,
        authenticated: front.password.is_none(),
        stale_reads: false,
        quit: false,
    };
    let mut input: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    // Incremental: a large value arriving in many reads is scanned once.
    // Each call sees the buffer from the start of the next command.
    let mut decoder = CommandDecoder::new();
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        input.extend_from_slice(&chunk[..read]);
        // Answer every complete command in the buffer, a pipeline at a time.
        loop {
            let mut consumed = 0;
            let mut answers = Vec::new();
            let mut fatal = None;
            while answers.len() < MAX_PIPELINE && !session.quit {
                match decoder.decode(&input[consumed..], &front.limits) {
                    Ok(Some((args, used))) => {
                        consumed += used;
                        if !args.is_empty() {
                            answers.push(execute(&front, &mut session, args).await);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        fatal = Some(format!("ERR {e}"));
                        break;
                    }
                }
            }
            input.drain(..consumed);
            let full = answers.len() == MAX_PIPELINE;
            for answer in answers {
                let value = resolve(&front, answer).await;
                if matches!(value, Value::Error(_)) {
                    front.metrics.client_errors.fetch_add(1, Relaxed);
                }
                encode(&value, &mut output);
            }
            if let Some(message) = fatal {
                front.metrics.client_errors.fetch_add(1, Relaxed);
                encode(&Value::Error(message), &mut output);
                stream.write_all(&output).await?;
                stream.shutdown().await.ok();
                return Ok(());
            }
            if !output.is_empty() {
                stream.write_all(&output).await?;
                output.clear();
            }
            if session.quit {
                stream.shutdown().await.ok();
                return Ok(());
            }
            if !full {
                break;
            }
        }
    }
}

fn error(message: impl Into<String>) -> Value {
    Value::Error(message.into())
}

fn arity(name: &str) -> Value {
    error(format!("ERR wrong number of arguments for '{name}' command"))
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

/// Interpret one command; commands for the replicated store are handed to
/// the node and answered later, in order.
async fn execute<M: Send + 'static>(
    front: &FrontEnd<M>,
    session: &mut Session,
    args: Vec<Vec<u8>>,
) -> Answer {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let argc = args.len();
    let mut rest: Vec<Vec<u8>> = args.into_iter().skip(1).collect();
    if !session.authenticated && !matches!(name.as_str(), "auth" | "quit" | "hello") {
        return Answer::Now(error("NOAUTH Authentication required."));
    }
    if let Some(value) = connection_command(front, session, &name, argc, &mut rest) {
        return Answer::Now(value);
    }
    if name == "info" {
        let (tx, rx) = oneshot::channel();
        return match front.node.send(Input::Status { reply: tx }).await {
            Ok(()) => Answer::Status(rx),
            Err(_) => Answer::Now(error("ERR the node is shutting down")),
        };
    }
    match store_command(&name, argc, rest) {
        Ok(command) => submit(front, session, command).await,
        Err(value) => Answer::Now(value),
    }
}

/// A command about the connection itself, answered here; `None` for any
/// other command (`rest` is then untouched).
fn connection_command<M>(
    front: &FrontEnd<M>,
    session: &mut Session,
    name: &str,
    argc: usize,
    rest: &mut Vec<Vec<u8>>,
) -> Option<Value> {
    let value = match name {
        "ping" => match rest.len() {
            0 => Value::Simple("PONG".into()),
            1 => Value::Bulk(rest.pop()),
            _ => arity("ping"),
        },
        "echo" if argc == 2 => Value::Bulk(rest.pop()),
        "quit" => {
            session.quit = true;
            ok()
        }
        "auth" => auth(front, session, rest),
        "hello" => error("NOPROTO this server speaks RESP2 only"),
        "select" if argc == 2 => {
            if rest[0] == b"0" {
                ok()
            } else {
                error("ERR DB index is out of range")
            }
        }
        "readonly" if argc == 1 => {
            session.stale_reads = true;
            ok()
        }
        "readwrite" if argc == 1 => {
            session.stale_reads = false;
            ok()
        }
        // Tools ask for these on connect (redis-cli's hints, redis-benchmark's
        // config probe); an empty answer is what they handle best.
        "command" | "config" => Value::Array(Some(Vec::new())),
        "client" => client_subcommand(session, rest),
        _ => return None,
    };
    Some(value)
}

/// `AUTH password` or `AUTH username password` (one user, "default").
fn auth<M>(front: &FrontEnd<M>, session: &mut Session, rest: &[Vec<u8>]) -> Value {
    let password = match rest.len() {
        1 => &rest[0],
        2 => &rest[1],
        _ => return arity("auth"),
    };
    match &front.password {
        None => error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
        Some(expected) if same(expected.as_bytes(), password) => {
            session.authenticated = true;
            ok()
        }
        Some(_) => error("WRONGPASS invalid username-password pair or user is disabled."),
    }
}

fn client_subcommand(session: &Session, rest: &[Vec<u8>]) -> Value {
    let sub = rest.first().map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).unwrap_or_default();
    match sub.as_str() {
        "setname" | "setinfo" => ok(),
        "getname" => Value::Bulk(None),
        "id" => Value::Integer(session.number as i64),
        _ => error(format!("ERR unknown subcommand '{sub}'. Try CLIENT HELP.")),
    }
}

/// A command for the replicated store, or the error to answer instead
/// (wrong arity, bad argument, unknown command).
fn store_command(name: &str, argc: usize, mut rest: Vec<Vec<u8>>) -> Result<Command, Value> {
    let command = match name {
        "get" if argc == 2 => Command::Get { key: rest.pop().unwrap_or_default() },
        "set" if argc == 3 => {
            let value = rest.pop().unwrap_or_default();
            Command::Set { key: rest.pop().unwrap_or_default(), value }
        }
        "set" if argc > 3 => return Err(error("ERR syntax error (SET options are not supported)")),
        "mget" if argc >= 2 => Command::MGet { keys: rest },
        "exists" if argc >= 2 => Command::Exists { keys: rest },
        "del" if argc >= 2 => Command::Del { keys: rest },
        "incr" if argc == 2 => Command::IncrBy { key: rest.pop().unwrap_or_default(), by: 1 },
        "decr" if argc == 2 => Command::IncrBy { key: rest.pop().unwrap_or_default(), by: -1 },
        "incrby" | "decrby" if argc == 3 => incr_by(name, rest)?,
        "cas" if argc == 4 => {
            let new = rest.pop().unwrap_or_default();
            let expected = rest.pop().unwrap_or_default();
            Command::Cas { key: rest.pop().unwrap_or_default(), expected, new }
        }
        "get" | "set" | "mget" | "exists" | "del" | "incr" | "decr" | "incrby" | "decrby" | "cas"
        | "echo" | "select" | "readonly" | "readwrite" => return Err(arity(name)),
        _ => return Err(unknown_command(name, &rest)),
    };
    Ok(command)
}

/// `INCRBY key n` or `DECRBY key n` (`rest` is `[key, n]`).
fn incr_by(name: &str, mut rest: Vec<Vec<u8>>) -> Result<Command, Value> {
    let Some(by) = parse_i64(&rest[1]) else {
        return Err(error("ERR value is not an integer or out of range"));
    };
    let by = if name == "decrby" {
        match by.checked_neg() {
            Some(n) => n,
            None => return Err(error("ERR decrement would overflow")),
        }
    } else {
        by
    };
    Ok(Command::IncrBy { key: rest.swap_remove(0), by })
}

fn unknown_command(name: &str, rest: &[Vec<u8>]) -> Value {
    let shown: Vec<String> =
        rest.iter().take(3).map(|a| format!("'{}'", String::from_utf8_lossy(a))).collect();
    error(format!("ERR unknown command '{name}', with args beginning with: {}", shown.join(" ")))
}

/// Hand a store command to the node: a read from this node's own state
/// when the connection chose `READONLY`, through the protocol otherwise.
async fn submit<M: Send + 'static>(front: &FrontEnd<M>, session: &mut Session, command: Command) -> Answer {
    if session.stale_reads
        && matches!(command, Command::Get { .. } | Command::MGet { .. } | Command::Exists { .. })
    {
        let (tx, rx) = oneshot::channel();
        return match front.node.send(Input::LocalRead { command, reply: tx }).await {
            Ok(()) => Answer::Local(rx),
            Err(_) => Answer::Now(error("ERR the node is shutting down")),
        };
    }
    session.seq += 1;
    let id = RequestId::new(session.client, session.seq);
    let (tx, rx) = oneshot::channel();
    match front.node.send(Input::Client { id, command, reply: tx }).await {
        Ok(()) => Answer::Node(rx),
        Err(_) => Answer::Now(error("ERR the node is shutting down")),
    }
}

async fn resolve<M>(front: &FrontEnd<M>, answer: Answer) -> Value {
    match answer {
        Answer::Now(value) => value,
        Answer::Node(rx) => match tokio::time::timeout(front.request_timeout, rx).await {
            Ok(Ok(output)) => to_resp(front, output),
            Ok(Err(_)) => {
                error("ERR the node stopped before answering; the command may or may not have taken effect")
            }
            Err(_) => error(format!(
                "TIMEOUT no answer within {} ms; the command may or may not have taken effect",
                front.request_timeout.as_millis()
            )),
        },
        Answer::Local(rx) => match rx.await {
            Ok(Some(output)) => to_resp(front, output),
            Ok(None) => error(format!("ERR {} does not serve local reads", front.protocol)),
            Err(_) => error("ERR the node is shutting down"),
        },
        Answer::Status(rx) => match rx.await {
            Ok(status) => Value::Bulk(Some(info(front, &status).into_bytes())),
            Err(_) => error("ERR the node is shutting down"),
        },
    }
}

fn to_resp<M>(front: &FrontEnd<M>, output: Output) -> Value {
    match output {
        Output::Ok => ok(),
        Output::Value(value) => Value::Bulk(value),
        Output::Values(values) => Value::Array(Some(values.into_iter().map(Value::Bulk).collect())),
        Output::Int(n) => Value::Integer(n),
        Output::Error(message) => error(message),
        Output::Rejected { reason, hint } => {
            let leader = match hint {
                Some(node) => match front.client_addrs.get(&node) {
                    Some(addr) => format!(" (leader: node {} at {addr})", node.0),
                    None => format!(" (leader: node {})", node.0),
                },
                None => String::new(),
            };
            error(format!("TRYAGAIN {reason}{leader}; the command was not executed"))
        }
        Output::Indeterminate { reason } => {
            error(format!("UNCERTAIN {reason}; the command may or may not have taken effect"))
        }
    }
}

fn info<M>(front: &FrontEnd<M>, status: &Status) -> String {
    let m = &front.metrics;
    format!(
        "# Server\r\nquorum_version:{}\r\nnode_id:{}\r\nprotocol:{}\r\n\r\n# Replication\r\nrole:{}\r\nterm:{}\r\nstate:{}\r\npending_requests:{}\r\n\r\n# Stats\r\napplied:{}\r\nclient_requests:{}\r\nforwarded:{}\r\nfsyncs:{}\r\nrecords_persisted:{}\r\nlog_bytes:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        status.id.0,
        front.protocol,
        status.role,
        status.term,
        status.describe,
        status.pending_requests,
        m.applied.load(Relaxed),
        m.client_requests.load(Relaxed),
        m.forwarded.load(Relaxed),
        m.fsyncs.load(Relaxed),
        m.records_persisted.load(Relaxed),
        m.log_bytes.load(Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn words(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    /// `line` (its first word the command name) as `execute` hands it to `store_command`.
    fn store(line: &str) -> Result<Command, Value> {
        let args = words(line);
        store_command(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase(), args.len(), args[1..].to_vec())
    }

    fn error_text(result: Result<Command, Value>) -> String {
        match result {
            Err(Value::Error(text)) => text,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    #[test]
    fn store_commands_parse_their_arguments_and_refuse_wrong_ones() {
        let key = |k: &str| k.as_bytes().to_vec();
        assert_eq!(store("GET k").unwrap(), Command::Get { key: key("k") });
        assert_eq!(store("set k v").unwrap(), Command::Set { key: key("k"), value: key("v") });
        assert_eq!(store("MGET a b").unwrap(), Command::MGet { keys: vec![key("a"), key("b")] });
        assert_eq!(store("DEL a").unwrap(), Command::Del { keys: vec![key("a")] });
        assert_eq!(store("EXISTS a b").unwrap(), Command::Exists { keys: vec![key("a"), key("b")] });
        assert_eq!(store("INCR k").unwrap(), Command::IncrBy { key: key("k"), by: 1 });
        assert_eq!(store("DECR k").unwrap(), Command::IncrBy { key: key("k"), by: -1 });
        assert_eq!(store("INCRBY k 5").unwrap(), Command::IncrBy { key: key("k"), by: 5 });
        assert_eq!(store("DECRBY k 5").unwrap(), Command::IncrBy { key: key("k"), by: -5 });
        let cas = Command::Cas { key: key("k"), expected: key("old"), new: key("new") };
        assert_eq!(store("CAS k old new").unwrap(), cas);
        assert_eq!(error_text(store("GET")), "ERR wrong number of arguments for 'get' command");
        assert_eq!(error_text(store("CAS k v")), "ERR wrong number of arguments for 'cas' command");
        // A connection command with the wrong arity falls through to here.
        assert_eq!(error_text(store("ECHO a b")), "ERR wrong number of arguments for 'echo' command");
        assert_eq!(error_text(store("SET k v EX 10")), "ERR syntax error (SET options are not supported)");
        assert_eq!(error_text(store("INCRBY k x")), "ERR value is not an integer or out of range");
        let overflow = format!("DECRBY k {}", i64::MIN);
        assert_eq!(error_text(store(&overflow)), "ERR decrement would overflow");
        assert_eq!(
            error_text(store("FLUSHALL a b c d")),
            "ERR unknown command 'flushall', with args beginning with: 'a' 'b' 'c'"
        );
    }

    #[test]
    fn client_ids_are_distinct_within_a_boot_and_across_boots() {
        // Two boots' keys, as getrandom would draw them.
        let (boot_a, boot_b) = (0x9e37_79b9_7f4a_7c15, 0x2545_f491_4f6c_dd1d);
        let a: BTreeSet<u64> = (0..100_000).map(|n| client_id(boot_a, n)).collect();
        assert_eq!(a.len(), 100_000, "two connections of one boot share an id");
        // Both counters start at zero, yet the boots share no id: ranges
        // [key, key + connections) of random keys almost never overlap.
        let b: BTreeSet<u64> = (0..100_000).map(|n| client_id(boot_b, n)).collect();
        assert_eq!(a.intersection(&b).count(), 0);
    }

    #[test]
    fn connection_commands_are_answered_here_and_others_are_passed_on() {
        let (node, _inputs) = mpsc::channel::<Input<u8>>(1);
        let front = FrontEnd {
            node,
            id: NodeId(0),
            protocol: "raft",
            password: Some("secret".into()),
            limits: Limits::default(),
            request_timeout: Duration::from_secs(1),
            client_addrs: BTreeMap::new(),
            metrics: Arc::new(Metrics::default()),
            id_key: 0,
            connections: AtomicU64::new(0),
        };
        let mut session =
            Session { client: 1, number: 7, seq: 0, authenticated: false, stale_reads: false, quit: false };
        let answer = |session: &mut Session, line: &str| {
            let args = words(line);
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            connection_command(&front, session, &name, args.len(), &mut args[1..].to_vec())
        };
        assert_eq!(answer(&mut session, "PING"), Some(Value::Simple("PONG".into())));
        assert_eq!(answer(&mut session, "ECHO hi"), Some(Value::Bulk(Some(b"hi".to_vec()))));
        assert_eq!(answer(&mut session, "ECHO a b"), None, "the arity error is store_command's");
        let wrong = Value::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
        assert_eq!(answer(&mut session, "AUTH nope"), Some(wrong));
        assert!(!session.authenticated);
        assert_eq!(answer(&mut session, "AUTH default secret"), Some(ok()));
        assert!(session.authenticated);
        assert_eq!(answer(&mut session, "SELECT 1"), Some(error("ERR DB index is out of range")));
        assert_eq!(answer(&mut session, "READONLY"), Some(ok()));
        assert!(session.stale_reads);
        assert_eq!(answer(&mut session, "CLIENT ID"), Some(Value::Integer(7)));
        assert_eq!(answer(&mut session, "GET k"), None);
        assert_eq!(answer(&mut session, "INFO"), None, "INFO asks the node");
        assert_eq!(answer(&mut session, "QUIT"), Some(ok()));
        assert!(session.quit);
    }
}
