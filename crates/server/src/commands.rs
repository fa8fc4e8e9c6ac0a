//! From a client's words to an [`Op`] for the replicated map: each Redis
//! command's arguments parsed and checked here, with Redis' error strings,
//! so that what reaches the log is well formed. (Errors that depend on the
//! data, INCR of a word, are the state machine's.)

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use quorum_resp::codec::Value;

use crate::state::{parse_f64, parse_i64, Bytes, Condition, Deadline, ExpireCondition, Op, SetTtl, TimeUnit};

pub fn error(message: impl Into<String>) -> Value {
    Value::Error(message.into())
}

pub fn arity(name: &str) -> Value {
    error(format!("ERR wrong number of arguments for '{name}' command"))
}

const SYNTAX: &str = "ERR syntax error";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

fn integer(bytes: &[u8]) -> Result<i64, Value> {
    parse_i64(bytes).ok_or_else(|| error(NOT_AN_INTEGER))
}

fn upper(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_uppercase()
}

/// Every key of `rest` (a command's arguments after its name).
fn keys(rest: Vec<Vec<u8>>) -> Vec<Bytes> {
    rest.into_iter().map(Bytes).collect()
}

/// The `i`th argument, moved out (`rest` is only read by index afterwards).
fn take(rest: &mut [Vec<u8>], i: usize) -> Bytes {
    Bytes(std::mem::take(&mut rest[i]))
}

/// An operation on the replicated map, or the error to answer instead
/// (wrong arity, bad argument, unknown command). `word` is the command's
/// name as the client wrote it, `rest` its arguments; `cursors` turns a
/// SCAN cursor back into the key it stands for.
pub fn store_command(word: &str, mut rest: Vec<Vec<u8>>, cursors: &Cursors) -> Result<Op, Value> {
    let name = word.to_ascii_lowercase();
    let (name, argc) = (name.as_str(), rest.len() + 1);
    if let Some(op) = string_command(name, argc, &mut rest)? {
        return Ok(op);
    }
    if let Some(op) = key_command(name, argc, &mut rest, cursors)? {
        return Ok(op);
    }
    if let Some(op) = expiry_command(name, argc, &mut rest)? {
        return Ok(op);
    }
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(_) => Err(arity(name)),
        None => Err(unknown_command(word, &rest)),
    }
}

/// The string commands; `None` if `name` is not one of them, or its arity is wrong.
fn string_command(name: &str, argc: usize, rest: &mut [Vec<u8>]) -> Result<Option<Op>, Value> {
    let op = match name {
        "get" if argc == 2 => Op::Get { key: take(rest, 0) },
        "set" if argc >= 3 => set(rest)?,
        "setnx" if argc == 3 => Op::MSet { pairs: vec![(take(rest, 0), take(rest, 1))], only_new: true },
        "setex" | "psetex" if argc == 4 => set_ex(name, rest)?,
        "getset" if argc == 3 => set_with(rest, Condition::Always, true, SetTtl::Clear),
        "mget" if argc >= 2 => Op::MGet { keys: keys(rest.to_vec()) },
        "mset" | "msetnx" if argc >= 3 && argc % 2 == 1 => {
            let pairs = rest.chunks_exact_mut(2).map(|p| (take(p, 0), take(p, 1))).collect();
            Op::MSet { pairs, only_new: name == "msetnx" }
        }
        "getdel" if argc == 2 => Op::GetDel { key: take(rest, 0) },
        "append" if argc == 3 => Op::Append { key: take(rest, 0), value: take(rest, 1) },
        "strlen" if argc == 2 => Op::StrLen { key: take(rest, 0) },
        "getrange" | "substr" if argc == 4 => {
            let (start, end) = (integer(&rest[1])?, integer(&rest[2])?);
            Op::GetRange { key: take(rest, 0), start, end }
        }
        "setrange" if argc == 4 => {
            let offset = integer(&rest[1])?;
            let offset = u64::try_from(offset).map_err(|_| error("ERR offset is out of range"))?;
            Op::SetRange { key: take(rest, 0), offset, value: take(rest, 2) }
        }
        "incr" if argc == 2 => Op::IncrBy { key: take(rest, 0), by: 1 },
        "decr" if argc == 2 => Op::IncrBy { key: take(rest, 0), by: -1 },
        "incrby" | "decrby" if argc == 3 => incr_by(name, rest)?,
        "incrbyfloat" if argc == 3 => {
            let by = parse_f64(&rest[1]).ok_or_else(|| error("ERR value is not a valid float"))?;
            Op::IncrByFloat { key: take(rest, 0), by }
        }
        "cas" if argc == 4 => Op::Cas { key: take(rest, 0), expected: take(rest, 1), new: take(rest, 2) },
        _ => return Ok(None),
    };
    Ok(Some(op))
}

fn set_with(rest: &mut [Vec<u8>], condition: Condition, get: bool, ttl: SetTtl) -> Op {
    Op::Set { key: take(rest, 0), value: take(rest, 1), condition, get, ttl }
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL].
fn set(rest: &mut [Vec<u8>]) -> Result<Op, Value> {
    let (mut condition, mut get, mut ttl) = (Condition::Always, false, SetTtl::Clear);
    let mut i = 2;
    while i < rest.len() {
        let option = upper(&rest[i]);
        match option.as_str() {
            "NX" if condition == Condition::Always => condition = Condition::IfAbsent,
            "XX" if condition == Condition::Always => condition = Condition::IfPresent,
            "GET" => get = true,
            "KEEPTTL" if ttl == SetTtl::Clear => ttl = SetTtl::Keep,
            "EX" | "PX" | "EXAT" | "PXAT" if ttl == SetTtl::Clear && i + 1 < rest.len() => {
                i += 1;
                ttl = SetTtl::Until(deadline(&option, &rest[i], "set")?);
            }
            _ => return Err(error(SYNTAX)),
        }
        i += 1;
    }
    Ok(set_with(rest, condition, get, ttl))
}

/// SETEX key seconds value, PSETEX key ms value.
fn set_ex(name: &str, rest: &mut [Vec<u8>]) -> Result<Op, Value> {
    let unit = if name == "setex" { "EX" } else { "PX" };
    let deadline = deadline(unit, &rest[1], name)?;
    let value = take(rest, 2);
    Ok(Op::Set {
        key: take(rest, 0),
        value,
        condition: Condition::Always,
        get: false,
        ttl: SetTtl::Until(deadline),
    })
}

/// SET's EX / PX / EXAT / PXAT argument (`unit` upper case): a positive
/// integer whose milliseconds fit in an i64.
fn deadline(unit: &str, argument: &[u8], command: &str) -> Result<Deadline, Value> {
    let n = integer(argument)?;
    let invalid = || error(format!("ERR invalid expire time in '{command}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let ms = match unit {
        "EX" | "EXAT" => n.checked_mul(1000).ok_or_else(invalid)?,
        _ => n,
    };
    match unit {
        "EX" | "PX" => relative(ms).ok_or_else(invalid),
        _ => Ok(Deadline::At(ms)),
    }
}

/// A deadline `ms` from now, refused (as Redis does) if now plus `ms`
/// would not fit in an i64: a check against this node's clock, which only
/// decides whether to refuse; the deadline itself is computed at apply,
/// from the leader's stamp.
fn relative(ms: i64) -> Option<Deadline> {
    (ms <= i64::MAX - crate::node::wall_clock_ms()).then_some(Deadline::In(ms))
}

/// `INCRBY key n` or `DECRBY key n`.
fn incr_by(name: &str, rest: &mut [Vec<u8>]) -> Result<Op, Value> {
    let by = integer(&rest[1])?;
    let by = if name == "decrby" {
        by.checked_neg().ok_or_else(|| error("ERR decrement would overflow"))?
    } else {
        by
    };
    Ok(Op::IncrBy { key: take(rest, 0), by })
}

/// The keyspace commands.
fn key_command(
    name: &str,
    argc: usize,
    rest: &mut Vec<Vec<u8>>,
    cursors: &Cursors,
) -> Result<Option<Op>, Value> {
    let op = match name {
        "exists" if argc >= 2 => Op::Exists { keys: keys(std::mem::take(rest)) },
        "del" | "unlink" if argc >= 2 => Op::Del { keys: keys(std::mem::take(rest)) },
        "type" if argc == 2 => Op::Type { key: take(rest, 0) },
        "dbsize" if argc == 1 => Op::DbSize,
        "keys" if argc == 2 => Op::Keys { pattern: take(rest, 0) },
        "scan" if argc >= 2 => scan(rest, cursors)?,
        "randomkey" if argc == 1 => Op::RandomKey,
        "flushdb" | "flushall" => {
            if argc > 2 || argc == 2 && !matches!(upper(&rest[0]).as_str(), "ASYNC" | "SYNC") {
                return Err(error(SYNTAX));
            }
            Op::FlushDb
        }
        "rename" | "renamenx" if argc == 3 => {
            Op::Rename { from: take(rest, 0), to: take(rest, 1), only_new: name == "renamenx" }
        }
        "copy" if argc >= 3 => copy(rest)?,
        _ => return Ok(None),
    };
    Ok(Some(op))
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type].
fn scan(rest: &mut [Vec<u8>], cursors: &Cursors) -> Result<Op, Value> {
    let cursor = std::str::from_utf8(&rest[0]).ok().and_then(|c| c.parse::<u64>().ok());
    let from = cursor.and_then(|c| cursors.resume(c)).ok_or_else(|| error("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut i) = (None, 10, 1);
    while i < rest.len() {
        if i + 1 >= rest.len() {
            return Err(error(SYNTAX));
        }
        match upper(&rest[i]).as_str() {
            "MATCH" => pattern = Some(take(rest, i + 1)),
            "COUNT" => {
                count = integer(&rest[i + 1])?;
                if count < 1 {
                    return Err(error(SYNTAX));
                }
            }
            // Every key holds a string: TYPE string filters nothing, any
            // other type everything (a pattern no key matches).
            "TYPE" if upper(&rest[i + 1]) == "STRING" => {}
            "TYPE" => pattern = Some(Bytes(b"[]".to_vec())),
            _ => return Err(error(SYNTAX)),
        }
        i += 2;
    }
    Ok(Op::Scan { from: Bytes(from), pattern, count: count as u64 })
}

/// COPY source destination [DB 0] [REPLACE].
fn copy(rest: &mut [Vec<u8>]) -> Result<Op, Value> {
    let (mut replace, mut i) = (false, 2);
    while i < rest.len() {
        match upper(&rest[i]).as_str() {
            "REPLACE" => replace = true,
            "DB" if i + 1 < rest.len() => {
                i += 1;
                if integer(&rest[i])? != 0 {
                    return Err(error("ERR DB index is out of range"));
                }
            }
            _ => return Err(error(SYNTAX)),
        }
        i += 1;
    }
    Ok(Op::Copy { from: take(rest, 0), to: take(rest, 1), replace })
}

/// EXPIRE and its kin, TTL, PTTL, PERSIST.
fn expiry_command(name: &str, argc: usize, rest: &mut [Vec<u8>]) -> Result<Option<Op>, Value> {
    let op = match name {
        "expire" | "pexpire" | "expireat" | "pexpireat" if argc >= 3 => expire(name, rest)?,
        "ttl" if argc == 2 => Op::Ttl { key: take(rest, 0), unit: TimeUnit::Seconds },
        "pttl" if argc == 2 => Op::Ttl { key: take(rest, 0), unit: TimeUnit::Millis },
        "persist" if argc == 2 => Op::Persist { key: take(rest, 0) },
        _ => return Ok(None),
    };
    Ok(Some(op))
}

/// EXPIRE key n [NX | XX | GT | LT] (and PEXPIRE, EXPIREAT, PEXPIREAT).
fn expire(name: &str, rest: &mut [Vec<u8>]) -> Result<Op, Value> {
    let n = integer(&rest[1])?;
    let ms = if name.starts_with('p') {
        n
    } else {
        n.checked_mul(1000).ok_or_else(|| error(format!("ERR invalid expire time in '{name}' command")))?
    };
    let deadline = if name.ends_with("at") {
        Deadline::At(ms)
    } else {
        relative(ms).ok_or_else(|| error(format!("ERR invalid expire time in '{name}' command")))?
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &rest[2..] {
        match upper(option).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => return Err(error(format!("ERR Unsupported option {}", String::from_utf8_lossy(option)))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(error("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(error("ERR GT and LT options at the same time are not compatible"));
    }
    let condition = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCondition::NoDeadline,
        (_, _, true, _) => ExpireCondition::Later,
        (_, true, _, true) => ExpireCondition::EarlierDeadline,
        (.., true) => ExpireCondition::Earlier,
        (_, true, ..) => ExpireCondition::HasDeadline,
        _ => ExpireCondition::Always,
    };
    Ok(Op::Expire { key: take(rest, 0), deadline, condition })
}

/// Redis' words exactly: the name as written, then each argument quoted
/// and followed by a space while the list is under 128 bytes (the last one
/// cut to fit).
pub fn unknown_command(word: &str, rest: &[Vec<u8>]) -> Value {
    let mut shown = String::new();
    for argument in rest {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let text = String::from_utf8_lossy(&argument[..argument.len().min(room)]).into_owned();
        shown.push_str(&format!("'{text}' "));
    }
    let word: String = word.chars().take(128).collect();
    error(format!("ERR unknown command '{word}', with args beginning with: {shown}"))
}

/// Most SCAN cursors a node remembers, and most bytes of keys they hold:
/// past either, the oldest are forgotten (resuming one is `ERR invalid cursor`).
const CURSORS_MAX: usize = 65_536;
const CURSOR_BYTES_MAX: usize = 64 << 20;

/// SCAN's cursors. The map is ordered, so a scan resumes from a key; Redis
/// clients parse the cursor as a number (redis-rs, redis-cli), so the node
/// hands out numbers and remembers the key each stands for. `0` starts a
/// scan. Numbers are drawn from the node's random key, so a cursor taken
/// to another node (or kept across a restart) is almost surely refused
/// rather than mistaken for another.
pub struct Cursors {
    key: u64,
    table: Mutex<CursorTable>,
}

#[derive(Default)]
struct CursorTable {
    issued: u64,
    keys: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    bytes: usize,
}

impl Cursors {
    pub fn new(key: u64) -> Cursors {
        Cursors { key, table: Mutex::new(CursorTable::default()) }
    }

    /// The key a cursor stands for (`0`: the start, the empty key).
    pub fn resume(&self, cursor: u64) -> Option<Vec<u8>> {
        if cursor == 0 {
            return Some(Vec::new());
        }
        self.table.lock().unwrap_or_else(|p| p.into_inner()).keys.get(&cursor).cloned()
    }

    /// A new cursor standing for `key`.
    pub fn register(&self, key: Vec<u8>) -> u64 {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.issued += 1;
        let cursor = crate::client::client_id(self.key ^ 0x5ca1_ab1e_c0de_d00d, table.issued).max(1);
        table.bytes += key.len();
        table.keys.insert(cursor, key);
        table.order.push_back(cursor);
        while table.order.len() > CURSORS_MAX || table.bytes > CURSOR_BYTES_MAX {
            let Some(oldest) = table.order.pop_front() else { break };
            if let Some(key) = table.keys.remove(&oldest) {
                table.bytes -= key.len();
            }
        }
        cursor
    }
}

/// One command as `COMMAND` describes it (Redis' reply layout): its name,
/// arity (negative: at least that many words), flags, first key, last key
/// (negative: from the end), step between keys; and for `COMMAND DOCS` a
/// summary and the Redis version that introduced it.
pub struct CommandInfo {
    pub name: &'static str,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub keys: (i64, i64, i64),
    pub summary: &'static str,
    pub since: &'static str,
}

const fn info(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    summary: &'static str,
    since: &'static str,
) -> CommandInfo {
    CommandInfo { name, arity, flags, keys, summary, since }
}

const W: &[&str] = &["write"];
const WD: &[&str] = &["write", "denyoom"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const C: &[&str] = &["fast", "loading", "stale"];
const NONE: (i64, i64, i64) = (0, 0, 0);
const ONE: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);

/// Every command the server answers, for `COMMAND`, `COMMAND DOCS` and
/// `COMMAND COUNT`, and for telling a wrong arity from an unknown command.
pub const COMMANDS: &[CommandInfo] = &[
    info("get", 2, RF, ONE, "Returns the string value of a key.", "1.0.0"),
    info("set", -3, WD, ONE, "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", "1.0.0"),
    info("setnx", 3, &["write", "denyoom", "fast"], ONE, "Set the string value of a key only when the key doesn't exist.", "1.0.0"),
    info("setex", 4, WD, ONE, "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", "2.0.0"),
    info("psetex", 4, WD, ONE, "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", "2.6.0"),
    info("getset", 3, &["write", "denyoom", "fast"], ONE, "Returns the previous string value of a key after setting it to a new value.", "1.0.0"),
    info("getdel", 2, &["write", "fast"], ONE, "Returns the string value of a key after deleting the key.", "6.2.0"),
    info("mget", -2, RF, ALL, "Atomically returns the string values of one or more keys.", "1.0.0"),
    info("mset", -3, WD, (1, -1, 2), "Atomically creates or modifies the string values of one or more keys.", "1.0.1"),
    info("msetnx", -3, WD, (1, -1, 2), "Atomically modifies the string values of one or more keys only when all keys don't exist.", "1.0.1"),
    info("append", 3, &["write", "denyoom", "fast"], ONE, "Appends a string to the value of a key. Creates the key if it doesn't exist.", "2.0.0"),
    info("strlen", 2, RF, ONE, "Returns the length of a string value.", "2.2.0"),
    info("getrange", 4, R, ONE, "Returns a substring of the string stored at a key.", "2.4.0"),
    info("substr", 4, R, ONE, "Returns a substring from a string value.", "1.0.0"),
    info("setrange", 4, WD, ONE, "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", "2.2.0"),
    info("incr", 2, &["write", "denyoom", "fast"], ONE, "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0"),
    info("decr", 2, &["write", "denyoom", "fast"], ONE, "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0"),
    info("incrby", 3, &["write", "denyoom", "fast"], ONE, "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "1.0.0"),
    info("decrby", 3, &["write", "denyoom", "fast"], ONE, "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", "1.0.0"),
    info("incrbyfloat", 3, &["write", "denyoom", "fast"], ONE, "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "2.6.0"),
    info("cas", 4, &["write", "denyoom", "fast"], ONE, "quorum: sets a key to a new value if it holds the expected one (1), else nothing (0).", "quorum"),
    info("exists", -2, RF, ALL, "Determines whether one or more keys exist.", "1.0.0"),
    info("del", -2, W, ALL, "Deletes one or more keys.", "1.0.0"),
    info("unlink", -2, &["write", "fast"], ALL, "Asynchronously deletes one or more keys.", "4.0.0"),
    info("type", 2, RF, ONE, "Determines the type of value stored at a key.", "1.0.0"),
    info("dbsize", 1, RF, NONE, "Returns the number of keys in the database.", "1.0.0"),
    info("keys", 2, R, NONE, "Returns all key names that match a pattern.", "1.0.0"),
    info("scan", -2, R, NONE, "Iterates over the key names in the database.", "2.8.0"),
    info("randomkey", 1, R, NONE, "Returns a random key name from the database.", "1.0.0"),
    info("flushdb", -1, W, NONE, "Removes all keys from the current database.", "1.0.0"),
    info("flushall", -1, W, NONE, "Removes all keys from all databases.", "1.0.0"),
    info("rename", 3, W, (1, 2, 1), "Renames a key and overwrites the destination.", "1.0.0"),
    info("renamenx", 3, &["write", "fast"], (1, 2, 1), "Renames a key only when the target key name doesn't exist.", "1.0.0"),
    info("copy", -3, WD, (1, 2, 1), "Copies the value of a key to a new key.", "6.2.0"),
    info("expire", -3, &["write", "fast"], ONE, "Sets the expiration time of a key in seconds.", "1.0.0"),
    info("pexpire", -3, &["write", "fast"], ONE, "Sets the expiration time of a key in milliseconds.", "2.6.0"),
    info("expireat", -3, &["write", "fast"], ONE, "Sets the expiration time of a key to a Unix timestamp.", "1.2.0"),
    info("pexpireat", -3, &["write", "fast"], ONE, "Sets the expiration time of a key to a Unix milliseconds timestamp.", "2.6.0"),
    info("ttl", 2, RF, ONE, "Returns the expiration time in seconds of a key.", "1.0.0"),
    info("pttl", 2, RF, ONE, "Returns the expiration time in milliseconds of a key.", "2.6.0"),
    info("persist", 2, &["write", "fast"], ONE, "Removes the expiration time of a key.", "2.2.0"),
    info("multi", 1, &["noscript", "loading", "stale", "fast"], NONE, "Starts a transaction.", "1.2.0"),
    info("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], NONE, "Executes all commands in a transaction.", "1.2.0"),
    info("discard", 1, &["noscript", "loading", "stale", "fast"], NONE, "Discards a transaction.", "2.0.0"),
    info("watch", -2, &["noscript", "loading", "stale", "fast"], ALL, "Monitors changes to keys to determine the execution of a transaction.", "2.2.0"),
    info("unwatch", 1, &["noscript", "loading", "stale", "fast"], NONE, "Forgets about watched keys of a transaction.", "2.2.0"),
    info("ping", -1, C, NONE, "Returns the server's liveliness response.", "1.0.0"),
    info("echo", 2, C, NONE, "Returns the given string.", "1.0.0"),
    info("quit", -1, C, NONE, "Closes the connection.", "1.0.0"),
    info("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth"], NONE, "Authenticates the connection.", "1.0.0"),
    info("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth"], NONE, "Handshakes with the Redis server (RESP2 only here: answered NOPROTO).", "6.0.0"),
    info("select", 2, C, NONE, "Changes the selected database (only 0 exists).", "1.0.0"),
    info("readonly", 1, C, NONE, "quorum: this connection reads the node's own state (fast, possibly stale).", "3.0.0"),
    info("readwrite", 1, C, NONE, "quorum: this connection's reads are linearizable again.", "3.0.0"),
    info("info", -1, &["loading", "stale"], NONE, "Returns information and statistics about the server.", "1.0.0"),
    info("command", -1, &["loading", "stale"], NONE, "Returns detailed information about all commands.", "2.8.13"),
    info("config", -2, &["loading", "stale"], NONE, "A container for server configuration commands (answered with an empty list).", "2.0.0"),
    info("client", -2, &["loading", "stale"], NONE, "A container for client connection commands (ID, SETNAME, GETNAME, SETINFO).", "2.4.0"),
];

/// The group `COMMAND DOCS` files a command under.
fn group(name: &str) -> &'static str {
    const STRING: &[&str] = &[
        "get",
        "set",
        "setnx",
        "setex",
        "psetex",
        "getset",
        "getdel",
        "mget",
        "mset",
        "msetnx",
        "append",
        "strlen",
        "getrange",
        "substr",
        "setrange",
        "incr",
        "decr",
        "incrby",
        "decrby",
        "incrbyfloat",
        "cas",
    ];
    const CONNECTION: &[&str] =
        &["ping", "echo", "quit", "auth", "hello", "select", "readonly", "readwrite", "client"];
    if STRING.contains(&name) {
        "string"
    } else if CONNECTION.contains(&name) {
        "connection"
    } else if ["multi", "exec", "discard", "watch", "unwatch"].contains(&name) {
        "transactions"
    } else if ["info", "command", "config", "dbsize", "flushdb", "flushall"].contains(&name) {
        "server"
    } else {
        "generic"
    }
}

fn bulk(text: &str) -> Value {
    Value::Bulk(Some(text.as_bytes().to_vec()))
}

/// One command in `COMMAND`'s layout (Redis 7: ten fields; the ACL
/// categories, tips, key specs and subcommands are empty).
fn describe(command: &CommandInfo) -> Value {
    let flags = command.flags.iter().map(|f| Value::Simple((*f).to_string())).collect();
    let empty = || Value::Array(Some(Vec::new()));
    Value::Array(Some(vec![
        bulk(command.name),
        Value::Integer(command.arity),
        Value::Array(Some(flags)),
        Value::Integer(command.keys.0),
        Value::Integer(command.keys.1),
        Value::Integer(command.keys.2),
        empty(),
        empty(),
        empty(),
        empty(),
    ]))
}

/// One command's entry of `COMMAND DOCS`: summary, since, group.
fn document(command: &CommandInfo) -> [Value; 2] {
    let fields = vec![
        bulk("summary"),
        bulk(command.summary),
        bulk("since"),
        bulk(command.since),
        bulk("group"),
        bulk(group(command.name)),
    ];
    [bulk(command.name), Value::Array(Some(fields))]
}

fn find(name: &[u8]) -> Option<&'static CommandInfo> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    COMMANDS.iter().find(|c| c.name == name)
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND LIST`, `COMMAND INFO name...`,
/// `COMMAND DOCS [name...]`: what clients that introspect ask.
pub fn command_reply(rest: &[Vec<u8>]) -> Value {
    let Some(sub) = rest.first() else {
        return Value::Array(Some(COMMANDS.iter().map(describe).collect()));
    };
    let names = &rest[1..];
    match upper(sub).as_str() {
        "COUNT" if names.is_empty() => Value::Integer(COMMANDS.len() as i64),
        "LIST" if names.is_empty() => Value::Array(Some(COMMANDS.iter().map(|c| bulk(c.name)).collect())),
        "INFO" => {
            let listed: Vec<&CommandInfo> = COMMANDS.iter().collect();
            let infos = if names.is_empty() {
                listed.into_iter().map(describe).collect()
            } else {
                names.iter().map(|n| find(n).map_or(Value::Array(None), describe)).collect()
            };
            Value::Array(Some(infos))
        }
        "DOCS" => {
            let chosen: Vec<&CommandInfo> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| find(n)).collect()
            };
            Value::Array(Some(chosen.into_iter().flat_map(document).collect()))
        }
        _ => error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `line` (its first word the command name) as the front end hands it to `store_command`.
    fn store(line: &str) -> Result<Op, Value> {
        let args: Vec<Vec<u8>> = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        store_command(&String::from_utf8_lossy(&args[0]), args[1..].to_vec(), &Cursors::new(1))
    }

    fn error_text(result: Result<Op, Value>) -> String {
        match result {
            Err(Value::Error(text)) => text,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    fn key(k: &str) -> Bytes {
        k.into()
    }

    #[test]
    fn store_commands_parse_their_arguments() {
        assert_eq!(store("GET k").unwrap(), Op::Get { key: key("k") });
        let plain = |k: &str, v: &str| Op::Set {
            key: key(k),
            value: key(v),
            condition: Condition::Always,
            get: false,
            ttl: SetTtl::Clear,
        };
        assert_eq!(store("set k v").unwrap(), plain("k", "v"));
        let with = |condition, get, ttl| Op::Set { key: key("k"), value: key("v"), condition, get, ttl };
        assert_eq!(
            store("SET k v nx get px 200").unwrap(),
            with(Condition::IfAbsent, true, SetTtl::Until(Deadline::In(200)))
        );
        assert_eq!(
            store("SET k v XX EX 2").unwrap(),
            with(Condition::IfPresent, false, SetTtl::Until(Deadline::In(2000)))
        );
        assert_eq!(
            store("SET k v EXAT 5").unwrap(),
            with(Condition::Always, false, SetTtl::Until(Deadline::At(5000)))
        );
        assert_eq!(store("SET k v KEEPTTL").unwrap(), with(Condition::Always, false, SetTtl::Keep));
        assert_eq!(store("GETSET k v").unwrap(), with(Condition::Always, true, SetTtl::Clear));
        assert_eq!(
            store("SETEX k 3 v").unwrap(),
            with(Condition::Always, false, SetTtl::Until(Deadline::In(3000)))
        );
        let pairs = vec![(key("a"), key("1")), (key("b"), key("2"))];
        assert_eq!(store("MSET a 1 b 2").unwrap(), Op::MSet { pairs: pairs.clone(), only_new: false });
        assert_eq!(store("MSETNX a 1 b 2").unwrap(), Op::MSet { pairs, only_new: true });
        assert_eq!(
            store("SETNX a 1").unwrap(),
            Op::MSet { pairs: vec![(key("a"), key("1"))], only_new: true }
        );
        assert_eq!(store("GETRANGE k -3 -1").unwrap(), Op::GetRange { key: key("k"), start: -3, end: -1 });
        assert_eq!(
            store("SETRANGE k 4 x").unwrap(),
            Op::SetRange { key: key("k"), offset: 4, value: key("x") }
        );
        assert_eq!(store("DECRBY k 5").unwrap(), Op::IncrBy { key: key("k"), by: -5 });
        assert_eq!(store("INCRBYFLOAT k 1.5").unwrap(), Op::IncrByFloat { key: key("k"), by: 1.5 });
        assert_eq!(
            store("CAS k old new").unwrap(),
            Op::Cas { key: key("k"), expected: key("old"), new: key("new") }
        );
        let expire = |deadline, condition| Op::Expire { key: key("k"), deadline, condition };
        assert_eq!(store("EXPIRE k 10").unwrap(), expire(Deadline::In(10_000), ExpireCondition::Always));
        assert_eq!(store("PEXPIREAT k 10 gt").unwrap(), expire(Deadline::At(10), ExpireCondition::Later));
        assert_eq!(
            store("EXPIRE k 1 XX LT").unwrap(),
            expire(Deadline::In(1000), ExpireCondition::EarlierDeadline)
        );
        assert_eq!(store("EXPIRE k -1").unwrap(), expire(Deadline::In(-1000), ExpireCondition::Always));
        assert_eq!(
            store("RENAMENX a b").unwrap(),
            Op::Rename { from: key("a"), to: key("b"), only_new: true }
        );
        assert_eq!(
            store("COPY a b DB 0 REPLACE").unwrap(),
            Op::Copy { from: key("a"), to: key("b"), replace: true }
        );
        let scan = Op::Scan { from: Bytes::default(), pattern: Some(key("k*")), count: 100 };
        assert_eq!(store("SCAN 0 MATCH k* COUNT 100").unwrap(), scan);
        assert_eq!(store("FLUSHDB ASYNC").unwrap(), Op::FlushDb);
    }

    #[test]
    fn store_commands_refuse_bad_arguments_with_redis_errors() {
        let cases = [
            ("GET", "ERR wrong number of arguments for 'get' command"),
            ("MSET a 1 b", "ERR wrong number of arguments for 'mset' command"),
            ("ECHO a b", "ERR wrong number of arguments for 'echo' command"),
            ("SET k v NX XX", "ERR syntax error"),
            ("SET k v EX 1 PX 1", "ERR syntax error"),
            ("SET k v EX 1 KEEPTTL", "ERR syntax error"),
            ("SET k v EX", "ERR syntax error"),
            ("SET k v EX 0", "ERR invalid expire time in 'set' command"),
            ("SET k v EX x", "ERR value is not an integer or out of range"),
            ("SET k v EX 9223372036854775807", "ERR invalid expire time in 'set' command"),
            ("SETEX k -1 v", "ERR invalid expire time in 'setex' command"),
            ("SET k v PX 9223372036854775807", "ERR invalid expire time in 'set' command"),
            ("PEXPIRE k 9223372036854775807", "ERR invalid expire time in 'pexpire' command"),
            ("SETRANGE k -1 v", "ERR offset is out of range"),
            ("INCRBY k x", "ERR value is not an integer or out of range"),
            ("INCRBYFLOAT k x", "ERR value is not a valid float"),
            ("EXPIRE k 1 NX XX", "ERR NX and XX, GT or LT options at the same time are not compatible"),
            ("EXPIRE k 1 GT LT", "ERR GT and LT options at the same time are not compatible"),
            ("EXPIRE k 1 YY", "ERR Unsupported option YY"),
            ("SCAN x", "ERR invalid cursor"),
            ("SCAN 12345", "ERR invalid cursor"),
            ("SCAN 0 COUNT 0", "ERR syntax error"),
            ("SCAN 0 MATCH", "ERR syntax error"),
            ("COPY a b DB 1", "ERR DB index is out of range"),
            ("FLUSHDB NOW", "ERR syntax error"),
            ("FLUSHALL a b c d", "ERR syntax error"),
            ("NoSuch a b c d", "ERR unknown command 'NoSuch', with args beginning with: 'a' 'b' 'c' 'd' "),
        ];
        for (line, expected) in cases {
            assert_eq!(error_text(store(line)), expected, "{line}");
        }
        let overflow = format!("DECRBY k {}", i64::MIN);
        assert_eq!(error_text(store(&overflow)), "ERR decrement would overflow");
    }

    #[test]
    fn scan_cursors_stand_for_keys_and_old_ones_are_forgotten() {
        let cursors = Cursors::new(7);
        let first = cursors.register(b"key:5".to_vec());
        assert_ne!(first, 0);
        assert_eq!(cursors.resume(first), Some(b"key:5".to_vec()));
        assert_eq!(cursors.resume(0), Some(Vec::new()));
        for i in 0..CURSORS_MAX {
            cursors.register(i.to_string().into_bytes());
        }
        assert_eq!(cursors.resume(first), None, "the oldest cursor outlived the bound");
        assert_eq!(Cursors::new(8).resume(first), None, "another node's cursor was taken");
    }

    #[test]
    fn command_describes_every_command_the_front_end_answers() {
        let Value::Array(Some(all)) = command_reply(&[]) else { panic!("COMMAND is not an array") };
        assert_eq!(all.len(), COMMANDS.len());
        assert_eq!(command_reply(&[b"count".to_vec()]), Value::Integer(COMMANDS.len() as i64));
        let Value::Array(Some(docs)) = command_reply(&[b"DOCS".to_vec(), b"mset".to_vec()]) else {
            panic!("COMMAND DOCS is not an array")
        };
        assert_eq!(docs[0], bulk("mset"));
        let Value::Array(Some(info)) =
            command_reply(&[b"INFO".to_vec(), b"get".to_vec(), b"nosuch".to_vec()])
        else {
            panic!("COMMAND INFO is not an array")
        };
        assert_eq!(info[1], Value::Array(None));
        // Every store command the table lists parses (with enough arguments),
        // and nothing parses that the table does not list.
        for command in COMMANDS.iter().filter(|c| group(c.name) == "string" || group(c.name) == "generic") {
            let words = command.arity.unsigned_abs() as usize;
            let mut line = vec![command.name.to_string()];
            line.extend(["k", "1", "2"].iter().take(words - 1).map(|w| w.to_string()));
            let parsed = store(&line.join(" "));
            let refused = parsed.as_ref().err().and_then(|e| e.as_error()).unwrap_or_default().to_string();
            assert!(!refused.contains("unknown command"), "{}: {refused}", command.name);
        }
    }
}
