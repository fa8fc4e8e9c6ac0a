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

use crate::commands::{self, arity, error, store_command, Cursors};
use crate::metrics::Metrics;
use crate::node::{Input, Status};
use crate::state::{Command, Op, Output, Watch};
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
    /// SCAN's cursors handed out by this node.
    pub cursors: Cursors,
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
    AdminStatus(oneshot::Receiver<Status>),
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
    /// Between MULTI and EXEC: the commands queued, and whether one was
    /// refused (EXEC then answers EXECABORT).
    multi: Option<Queued>,
    /// What WATCH read, for the next EXEC.
    watch: Option<Watch>,
}

impl Session {
    fn new(client: u64, number: u64, authenticated: bool) -> Session {
        Session {
            client,
            number,
            seq: 0,
            authenticated,
            stale_reads: false,
            quit: false,
            multi: None,
            watch: None,
        }
    }
}

#[derive(Default)]
struct Queued {
    ops: Vec<Op>,
    refused: bool,
}

async fn connection<M: Send + 'static>(
    mut stream: TcpStream,
    front: Arc<FrontEnd<M>>,
    n: u64,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut session = Session::new(client_id(front.id_key, n), n, front.password.is_none());
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
    let word = String::from_utf8_lossy(&args[0]).into_owned();
    let name = word.to_ascii_lowercase();
    let argc = args.len();
    let mut rest: Vec<Vec<u8>> = args.into_iter().skip(1).collect();
    if !session.authenticated && !matches!(name.as_str(), "auth" | "quit" | "hello") {
        return Answer::Now(error("NOAUTH Authentication required."));
    }
    if let Some(answer) = transaction_command(front, session, &name, argc, &mut rest).await {
        return answer;
    }
    if let Some(value) = connection_command(front, session, &name, argc, &mut rest) {
        return Answer::Now(value);
    }
    let admin_status = name == "admin" && rest.len() == 1 && rest[0].eq_ignore_ascii_case(b"status");
    if name == "info" || admin_status {
        let (tx, rx) = oneshot::channel();
        return match front.node.send(Input::Status { reply: tx }).await {
            Ok(()) if admin_status => Answer::AdminStatus(rx),
            Ok(()) => Answer::Status(rx),
            Err(_) => Answer::Now(error("ERR the node is shutting down")),
        };
    }
    if name == "admin" {
        return Answer::Now(error("ERR ADMIN takes one subcommand: STATUS"));
    }
    match store_command(&word, rest, &front.cursors) {
        Ok(op) => submit(front, session, Command::new(op)).await,
        Err(value) => Answer::Now(value),
    }
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH, and any command while a MULTI is
/// open (queued, or refused: then EXEC aborts); `None` for other commands
/// outside a transaction.
async fn transaction_command<M: Send + 'static>(
    front: &FrontEnd<M>,
    session: &mut Session,
    name: &str,
    argc: usize,
    rest: &mut Vec<Vec<u8>>,
) -> Option<Answer> {
    let value = match name {
        "multi" if argc == 1 => match session.multi {
            Some(_) => error("ERR MULTI calls can not be nested"),
            None => {
                session.multi = Some(Queued::default());
                ok()
            }
        },
        "exec" if argc == 1 => return Some(exec(front, session).await),
        "discard" if argc == 1 => match session.multi.take() {
            Some(_) => {
                session.watch = None;
                ok()
            }
            None => error("ERR DISCARD without MULTI"),
        },
        "watch" if argc >= 2 && session.multi.is_some() => error("ERR WATCH inside MULTI is not allowed"),
        "watch" if argc >= 2 => watch(front, session, std::mem::take(rest)).await,
        "unwatch" if argc == 1 => {
            session.watch = None;
            ok()
        }
        "quit" => return None,
        _ if session.multi.is_some() => queue(front, session, name, std::mem::take(rest)),
        _ => return None,
    };
    Some(Answer::Now(value))
}

/// A command inside MULTI: parsed now, answered QUEUED, or refused with its
/// error (and the transaction marked to abort, as Redis does).
fn queue<M>(front: &FrontEnd<M>, session: &mut Session, name: &str, rest: Vec<Vec<u8>>) -> Value {
    let parsed = match name {
        "ping" | "echo" | "select" | "readonly" | "readwrite" | "auth" | "hello" | "info" | "command"
        | "config" | "client" | "multi" | "exec" | "discard" | "watch" | "unwatch" => {
            Err(error(format!("ERR '{name}' cannot be queued in a transaction here")))
        }
        _ => store_command(name, rest, &front.cursors),
    };
    let Some(queued) = session.multi.as_mut() else {
        return error("ERR EXEC without MULTI");
    };
    match parsed {
        Ok(op) => {
            queued.ops.push(op);
            Value::Simple("QUEUED".into())
        }
        Err(refusal) => {
            queued.refused = true;
            refusal
        }
    }
}

/// EXEC: the queued commands as one log entry, with what WATCH read.
async fn exec<M: Send + 'static>(front: &FrontEnd<M>, session: &mut Session) -> Answer {
    let watch = session.watch.take();
    let Some(queued) = session.multi.take() else {
        return Answer::Now(error("ERR EXEC without MULTI"));
    };
    if queued.refused {
        return Answer::Now(error("EXECABORT Transaction discarded because of previous errors."));
    }
    submit(front, session, Command::new(Op::Exec { ops: queued.ops, watch })).await
}

/// WATCH: read the keys' versions (linearizably, whatever READONLY says)
/// and keep them for EXEC. Waits for the answer, so a pipelined EXEC after
/// it sees it.
async fn watch<M: Send + 'static>(front: &FrontEnd<M>, session: &mut Session, keys: Vec<Vec<u8>>) -> Value {
    let keys = keys.into_iter().map(crate::state::Bytes).collect();
    let stale = std::mem::replace(&mut session.stale_reads, false);
    let answer = submit(front, session, Command::new(Op::Versions { keys })).await;
    session.stale_reads = stale;
    let output = match answer {
        Answer::Node(rx) => match await_output(front, rx).await {
            Ok(output) => output,
            Err(value) => return value,
        },
        other => return resolve(front, other).await,
    };
    match output {
        Output::Watch(read) => {
            match session.watch.as_mut() {
                Some(watch) => {
                    watch.keys.extend(read.keys);
                    watch.point = watch.point.min(read.point);
                }
                None => session.watch = Some(read),
            }
            ok()
        }
        other => to_resp(front, other),
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
        "command" => commands::command_reply(rest),
        "config" => Value::Array(Some(Vec::new())),
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

/// Hand a store command to the node: a read from this node's own state
/// when the connection chose `READONLY`, through the protocol otherwise.
async fn submit<M: Send + 'static>(front: &FrontEnd<M>, session: &mut Session, command: Command) -> Answer {
    if session.stale_reads && command.op.is_read_only() {
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
        Answer::Node(rx) => match await_output(front, rx).await {
            Ok(output) => to_resp(front, output),
            Err(value) => value,
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
        Answer::AdminStatus(rx) => match rx.await {
            Ok(status) => {
                let json =
                    crate::admin::status_json(front.protocol, &status, &front.metrics, &front.client_addrs);
                Value::Bulk(Some(json.to_string().into_bytes()))
            }
            Err(_) => error("ERR the node is shutting down"),
        },
    }
}

/// The node's answer, or the error to give if none comes in time.
async fn await_output<M>(front: &FrontEnd<M>, rx: oneshot::Receiver<Output>) -> Result<Output, Value> {
    match tokio::time::timeout(front.request_timeout, rx).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(_)) => {
            Err(error("ERR the node stopped before answering; the command may or may not have taken effect"))
        }
        Err(_) => Err(error(format!(
            "TIMEOUT no answer within {} ms; the command may or may not have taken effect",
            front.request_timeout.as_millis()
        ))),
    }
}

fn to_resp<M>(front: &FrontEnd<M>, output: Output) -> Value {
    match output {
        Output::Ok => ok(),
        Output::Status(text) => Value::Simple(text),
        Output::Array(outputs) => {
            Value::Array(Some(outputs.into_iter().map(|o| to_resp(front, o)).collect()))
        }
        Output::Aborted => Value::Array(None),
        Output::Scan { next, keys } => {
            let cursor = next.map_or(0, |key| front.cursors.register(key));
            let keys = keys.into_iter().map(|k| Value::Bulk(Some(k))).collect();
            Value::Array(Some(vec![
                Value::Bulk(Some(cursor.to_string().into_bytes())),
                Value::Array(Some(keys)),
            ]))
        }
        Output::Watch(_) => ok(),
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

    fn test_front(node: mpsc::Sender<Input<u8>>) -> FrontEnd<u8> {
        FrontEnd {
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
            cursors: Cursors::new(0),
        }
    }

    fn test_session() -> Session {
        Session::new(1, 7, false)
    }

    #[test]
    fn connection_commands_are_answered_here_and_others_are_passed_on() {
        let (node, _inputs) = mpsc::channel::<Input<u8>>(1);
        let front = test_front(node);
        let mut session = test_session();
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

    /// Answer `line` as `execute` would, through the transaction layer.
    async fn transact(front: &FrontEnd<u8>, session: &mut Session, line: &str) -> Option<Value> {
        let args = words(line);
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let answer = transaction_command(front, session, &name, args.len(), &mut args[1..].to_vec()).await?;
        match answer {
            Answer::Now(value) => Some(value),
            _ => None,
        }
    }

    #[tokio::test]
    async fn multi_queues_commands_and_exec_hands_them_over_as_one() {
        let (node, mut inputs) = mpsc::channel::<Input<u8>>(4);
        let front = test_front(node);
        let mut session = test_session();
        session.authenticated = true;
        let queued = Some(Value::Simple("QUEUED".into()));
        assert_eq!(transact(&front, &mut session, "EXEC").await, Some(error("ERR EXEC without MULTI")));
        assert_eq!(transact(&front, &mut session, "DISCARD").await, Some(error("ERR DISCARD without MULTI")));
        assert_eq!(transact(&front, &mut session, "GET k").await, None, "outside MULTI: not ours");
        assert_eq!(transact(&front, &mut session, "MULTI").await, Some(ok()));
        assert_eq!(
            transact(&front, &mut session, "MULTI").await,
            Some(error("ERR MULTI calls can not be nested"))
        );
        assert_eq!(transact(&front, &mut session, "SET a 1").await, queued);
        assert_eq!(transact(&front, &mut session, "INCR a").await, queued);
        let watch = Some(error("ERR WATCH inside MULTI is not allowed"));
        assert_eq!(transact(&front, &mut session, "WATCH a").await, watch);
        assert_eq!(transact(&front, &mut session, "EXEC").await, None, "EXEC goes to the node");
        let Some(Input::Client { command, .. }) = inputs.recv().await else { panic!("EXEC reached no node") };
        let Op::Exec { ops, watch: None } = command.op else { panic!("not an EXEC: {command:?}") };
        assert_eq!(ops.len(), 2);
        assert!(session.multi.is_none());
        // A refused command dooms the transaction: EXECABORT, nothing sent.
        assert_eq!(transact(&front, &mut session, "MULTI").await, Some(ok()));
        assert_eq!(transact(&front, &mut session, "SET a").await, Some(arity("set")));
        assert_eq!(
            transact(&front, &mut session, "NOSUCH x").await.map(|v| v.as_error().is_some()),
            Some(true)
        );
        assert_eq!(transact(&front, &mut session, "SET b 2").await, queued);
        let abort = error("EXECABORT Transaction discarded because of previous errors.");
        assert_eq!(transact(&front, &mut session, "EXEC").await, Some(abort));
        assert!(inputs.try_recv().is_err(), "an aborted EXEC reached the node");
        assert_eq!(transact(&front, &mut session, "MULTI").await, Some(ok()));
        assert_eq!(transact(&front, &mut session, "DISCARD").await, Some(ok()));
        assert_eq!(transact(&front, &mut session, "EXEC").await, Some(error("ERR EXEC without MULTI")));
    }
}
