//! Reading histories, one op per line, in three formats:
//!
//! - **json**: our JSON lines, as `quorum sim --history` writes them
//!   (`json.rs`).
//! - **edn**: Jepsen's op maps, `{:type :invoke, :f :write, :key "a",
//!   :value 1, :process 0}`, with keys and values of any EDN type
//!   (`edn.rs`). Ops of the `:nemesis` process are skipped.
//! - **porcupine-kv**: the key-value histories of Porcupine's tests, EDN op
//!   maps whose `:f` is `:get`, `:put` or `:append`, with string keys and
//!   values; a key never written reads as `""`, and an append concatenates.
//! - **jepsen-log**: the text log older Jepsen tests print, one op per
//!   `jepsen.util` line: `INFO  jepsen.util - 3 :invoke :cas [1 4]`
//!   (process, type, f, value in EDN), as in Porcupine's etcd histories.
//!   Other log lines are skipped, but not op maps of the other formats.
//!
//! [`Format::Auto`] tells them apart: the first op line is JSON
//! (`{"type": ...`), EDN (`{:type ...`) or a `jepsen.util` log line, and an
//! EDN history that says `:get` or `:put` is Porcupine's. Blank lines and
//! lines starting with `;` or `#` are comments.
//!
//! When every op carries a time (`:time`, `"time"`) and the file is not in
//! time order, ops are put in time order (a stable sort, so ties keep the
//! file's order): real time is what linearizability is about.
//!
//! Reading also rejects histories that cannot have happened: a completion
//! for a process with no pending invoke, a second invoke on a process whose
//! previous op is still pending, and a completion whose `f` or key differs
//! from its invoke. Every error names the 1-based line. Whether an op's
//! value suits the model is the model's business (`crate::models`).

mod edn;
mod json;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use quorum_core::Value;
use serde::Serialize;
use thiserror::Error;

use crate::datum::Datum;
use crate::history::{History, Op, OpType, OpValue, F};
use edn::Dialect;

/// Why a history could not be read: the 1-based line and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

pub(crate) fn error(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError { line, reason: reason.into() }
}

/// A history file's format (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Format {
    /// Tell from the file.
    Auto,
    Json,
    Edn,
    PorcupineKv,
    JepsenLog,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Json => "json",
            Format::Edn => "edn",
            Format::PorcupineKv => "porcupine-kv",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> Result<Format, String> {
        [Format::Auto, Format::Json, Format::Edn, Format::PorcupineKv, Format::JepsenLog]
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unknown format '{name}' (auto, json, edn, porcupine-kv, jepsen-log)"))
    }
}

/// One op as a history file recorded it, whatever its keys and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedOp {
    /// The op's `index`, or its position among the file's ops.
    pub index: usize,
    /// The 1-based line it was read from.
    pub line: usize,
    pub kind: OpType,
    pub f: F,
    /// `None` for an op without a key: the model's single object.
    pub key: Option<Datum>,
    /// Nil when absent.
    pub value: Datum,
    pub process: u64,
    pub time: Option<u64>,
    pub node: Option<u32>,
}

impl RecordedOp {
    /// The op in our JSON lines format, without a newline.
    pub fn to_json_line(&self) -> String {
        let json = |d: &Datum| d.to_json().to_string();
        let mut line = format!(
            "{{\"index\":{},\"type\":\"{}\",\"f\":\"{}\"",
            self.index,
            self.kind.name(),
            self.f.name()
        );
        if let Some(key) = &self.key {
            let _ = write!(line, ",\"key\":{}", json(key));
        }
        let _ = write!(line, ",\"value\":{},\"process\":{}", json(&self.value), self.process);
        if let Some(time) = self.time {
            let _ = write!(line, ",\"time\":{time}");
        }
        if let Some(node) = self.node {
            let _ = write!(line, ",\"node\":{node}");
        }
        line.push('}');
        line
    }
}

/// A whole history as read, in real-time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedHistory {
    /// The format it was read in (never [`Format::Auto`]).
    pub format: Format,
    pub ops: Vec<RecordedOp>,
    /// True if the file was not in time order and its ops were sorted by time.
    pub reordered_by_time: bool,
}

/// Read a history in `format` (see the module documentation).
pub fn read_history(text: &str, format: Format) -> Result<RecordedHistory, ParseError> {
    let (ops, format) = read_lines(text, format)?;
    let (ops, reordered_by_time) = order_by_time(ops);
    check_pending(&ops, reordered_by_time)?;
    Ok(RecordedHistory { format, ops, reordered_by_time })
}

/// JSON, EDN or a Jepsen log line: the syntax of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    Json,
    Edn,
    JepsenLog,
}

fn read_lines(text: &str, format: Format) -> Result<(Vec<RecordedOp>, Format), ParseError> {
    let mut syntax = match format {
        Format::Auto => None,
        Format::Json => Some(Syntax::Json),
        Format::Edn | Format::PorcupineKv => Some(Syntax::Edn),
        Format::JepsenLog => Some(Syntax::JepsenLog),
    };
    let mut ops = Vec::new();
    // The first line in each dialect, for the error that names it.
    let mut first: BTreeMap<&'static str, (usize, F)> = BTreeMap::new();
    for (line_index, raw) in text.lines().enumerate() {
        let line_number = line_index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let log_op = jepsen_log_op(line);
        let in_log = syntax == Some(Syntax::JepsenLog) || (syntax.is_none() && line.contains(" jepsen."));
        if in_log && log_op.is_none() && !line.starts_with('{') {
            continue; // log chatter between the ops
        }
        let this = if log_op.is_some() {
            Syntax::JepsenLog
        } else {
            line_syntax(line).map_err(|reason| error(line_number, reason))?
        };
        let expected = *syntax.get_or_insert(this);
        if this != expected {
            let history = match expected {
                Syntax::Json => "a JSON lines history",
                Syntax::Edn => "an EDN history",
                Syntax::JepsenLog => "a Jepsen log",
            };
            let found = match this {
                Syntax::Json => "a JSON op",
                Syntax::Edn => "an EDN op map",
                Syntax::JepsenLog => "a Jepsen log line",
            };
            return Err(error(line_number, format!("{found} in {history}")));
        }
        let position = ops.len();
        let parsed = match this {
            Syntax::Json => {
                json::op(line, position, line_number).map(|op| op.map(|op| (op, Dialect::Jepsen)))
            }
            Syntax::Edn => edn::op(line, position, line_number),
            Syntax::JepsenLog => {
                let map = log_op.as_deref().expect("a log line");
                edn::op(map, position, line_number).map(|op| op.map(|(op, _)| (op, Dialect::Jepsen)))
            }
        };
        let Some((op, dialect)) = parsed.map_err(|reason| error(line_number, reason))? else { continue };
        let name = match dialect {
            Dialect::Jepsen => "jepsen",
            Dialect::Porcupine => "porcupine",
            Dialect::Both => "both",
        };
        first.entry(name).or_insert((line_number, op.f));
        ops.push(op);
    }
    let format = resolve_dialect(format, syntax, &first)?;
    if format == Format::PorcupineKv {
        ops.iter().try_for_each(check_porcupine_op)?;
    }
    Ok((ops, format))
}

/// A Jepsen log line (`INFO  jepsen.util - 3 :invoke :cas [1 4]`) as the
/// EDN op map it stands for, or `None` if it is not one.
fn jepsen_log_op(line: &str) -> Option<String> {
    let (_, mut rest) = line.split_once("jepsen.util - ")?;
    let mut word = || {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        rest = after;
        Some(word).filter(|w| !w.is_empty())
    };
    let process = word()?;
    let kind = word().filter(|w| w.starts_with(':'))?;
    let f = word().filter(|w| w.starts_with(':'))?;
    let value = Some(rest.trim()).filter(|v| !v.is_empty()).unwrap_or("nil");
    Some(format!("{{:process {process}, :type {kind}, :f {f}, :value {value}}}"))
}

/// The syntax of an op line, from its first token after `{`.
fn line_syntax(line: &str) -> Result<Syntax, String> {
    let after_brace = line.strip_prefix('{').ok_or("expected an op map starting with '{'")?;
    let first = after_brace.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    Ok(if first.starts_with('"') { Syntax::Json } else { Syntax::Edn })
}

/// Which format an EDN history is in, given the first line of each
/// dialect of `:f` names it used (Jepsen's, Porcupine's, both's).
fn resolve_dialect(
    format: Format,
    syntax: Option<Syntax>,
    first: &BTreeMap<&'static str, (usize, F)>,
) -> Result<Format, ParseError> {
    let porcupine = first.get("porcupine");
    let jepsen = first.get("jepsen");
    match (format, syntax) {
        (Format::JepsenLog, _) | (Format::Auto, Some(Syntax::JepsenLog)) => Ok(Format::JepsenLog),
        (Format::Json, _) | (Format::Auto, Some(Syntax::Json)) => Ok(Format::Json),
        (Format::Edn, _) | (Format::Auto, _) if porcupine.is_none() => Ok(Format::Edn),
        (Format::Edn, _) => {
            let (line, f) = porcupine.expect("checked above");
            let word = if *f == F::Read { "get" } else { "put" };
            Err(error(
                *line,
                format!("unknown :f :{word} in EDN (Porcupine's key-value histories: --format porcupine-kv)"),
            ))
        }
        _ => match jepsen {
            Some((line, f)) => Err(error(
                *line,
                format!(":f :{} in a Porcupine key-value history (it has :get, :put and :append)", f.name()),
            )),
            None => Ok(Format::PorcupineKv),
        },
    }
}

/// Porcupine's key-value ops have string keys, and string values except
/// for a get's invoke.
fn check_porcupine_op(op: &RecordedOp) -> Result<(), ParseError> {
    let string = |d: Option<&Datum>| matches!(d, Some(Datum::Str(_)));
    if !string(op.key.as_ref()) {
        let found = op.key.as_ref().map_or("no key", Datum::kind);
        return Err(error(op.line, format!("Porcupine's key-value ops have a string :key, not {found}")));
    }
    let get_invoke = op.f == F::Read && op.kind == OpType::Invoke;
    if !get_invoke && op.kind != OpType::Fail && !string(Some(&op.value)) {
        return Err(error(
            op.line,
            format!("Porcupine's key-value values are strings, not {}", op.value.kind()),
        ));
    }
    Ok(())
}

/// Sort by time if every op has one and the file is out of order; the
/// sorted ops and whether they moved.
fn order_by_time(mut ops: Vec<RecordedOp>) -> (Vec<RecordedOp>, bool) {
    let timed = ops.iter().all(|op| op.time.is_some());
    let ordered = ops.windows(2).all(|w| w[0].time <= w[1].time);
    if !timed || ordered {
        return (ops, false);
    }
    ops.sort_by_key(|op| op.time);
    (ops, true)
}

fn check_pending(ops: &[RecordedOp], reordered_by_time: bool) -> Result<(), ParseError> {
    // Invariant: a process appears here iff its latest event is an invoke.
    let mut pending: BTreeMap<u64, &RecordedOp> = BTreeMap::new();
    let hint = if reordered_by_time { " (ops were put in :time order)" } else { "" };
    for op in ops {
        let process = op.process;
        let f = op.f.name();
        match (op.kind, pending.get(&process)) {
            (OpType::Invoke, Some(earlier)) => {
                let reason = format!(
                    "process {process} invoked :{f} while its op from line {} is still pending{hint}",
                    earlier.line
                );
                return Err(error(op.line, reason));
            }
            (OpType::Invoke, None) => {
                pending.insert(process, op);
            }
            (kind, None) => {
                let reason = format!(
                    "{} completion of :{f} for process {process}, which has no pending invoke{hint}",
                    kind.name()
                );
                return Err(error(op.line, reason));
            }
            (_, Some(invoke)) => {
                matches_invoke(op, invoke)?;
                pending.remove(&process);
            }
        }
    }
    Ok(())
}

fn matches_invoke(op: &RecordedOp, invoke: &RecordedOp) -> Result<(), ParseError> {
    let process = op.process;
    if invoke.f != op.f {
        let reason = format!(
            "completion :f :{} does not match the pending :{} of process {process}",
            op.f.name(),
            invoke.f.name()
        );
        return Err(error(op.line, reason));
    }
    if invoke.key != op.key {
        let show = |key: &Option<Datum>| key.as_ref().map_or("none".to_string(), Datum::to_string);
        let reason = format!(
            "completion key {} does not match the pending op's key {} (process {process})",
            show(&op.key),
            show(&invoke.key)
        );
        return Err(error(op.line, reason));
    }
    Ok(())
}

// ------------------------------------------------------- integer histories

/// Parse a register history with integer keys and values (the simulator's,
/// or one written by hand) into the compact [`History`].
pub fn parse_history(text: &str) -> Result<History, ParseError> {
    let recorded = read_history(text, Format::Auto)?;
    let ops = recorded.ops.iter().map(|op| integer_op(op).map_err(|reason| error(op.line, reason)));
    Ok(History { ops: ops.collect::<Result<_, _>>()? })
}

/// One op as the register checker's integer [`Op`]; keys default to 0.
fn integer_op(op: &RecordedOp) -> Result<Op, String> {
    let integer = |d: &Datum, what: &str| -> Result<Value, String> {
        match d {
            Datum::Int(i) => Value::try_from(*i).map_err(|_| format!("{what} {i} is out of range")),
            other => Err(format!("{what} must be an integer, not {}", other.kind())),
        }
    };
    if !matches!(op.f, F::Read | F::Write | F::Cas) {
        return Err(format!(":{} is not a register op (read, write, cas)", op.f.name()));
    }
    let key = op.key.as_ref().map_or(Ok(0), |k| integer(k, ":key"))?;
    let value = match &op.value {
        Datum::Nil => OpValue::Nil,
        Datum::List(pair) if pair.len() == 2 => {
            OpValue::Pair([integer(&pair[0], "value")?, integer(&pair[1], "value")?])
        }
        one => OpValue::One(integer(one, "value")?),
    };
    let f = op.f.name();
    match (op.kind, op.f, value) {
        (OpType::Invoke, F::Write, OpValue::Pair(_) | OpValue::Nil) => {
            Err(format!("invoke of :{f} needs a single value"))
        }
        (OpType::Invoke, F::Cas, OpValue::One(_) | OpValue::Nil) => {
            Err(format!("invoke of :{f} needs [expected new]"))
        }
        (OpType::Ok, F::Read, OpValue::Pair(_)) => Err("ok :read returned a pair".to_string()),
        _ => Ok(Op {
            index: op.index,
            kind: op.kind,
            f: op.f,
            key,
            value,
            process: op.process,
            time: op.time.unwrap_or(0),
            node: op.node,
        }),
    }
}

/// One JSON object per event, in history order, each followed by `\n`.
pub fn to_json_lines(history: &History) -> String {
    let mut out = String::with_capacity(history.ops.len() * 96);
    for op in &history.ops {
        out.push_str(&serde_json::to_string(op).expect("an Op always serialises"));
        out.push('\n');
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_op_maps_parse_with_keywords_strings_and_commas() {
        let text = "\
; a comment
{:type :invoke, :f :cas, :value [1 2], :process 0, :time 10}
{:type \"invoke\" :f \"read\" :value nil :process 1 :key 3 :error {:why [1 \"x\"]}}

# another comment
{:type :ok, :f :read, :value nil, :process 1, :key 3}
{:type :fail, :f :cas, :value [1 2], :process 0}
{:type :info, :f :start, :process :nemesis}
";
        let history = parse_history(text).unwrap();
        assert_eq!(history.ops.len(), 4);
        let first = history.ops[0];
        assert_eq!((first.kind, first.f, first.value), (OpType::Invoke, F::Cas, OpValue::Pair([1, 2])));
        assert_eq!((first.time, first.key, first.index), (10, 0, 0));
        assert_eq!(
            (history.ops[2].kind, history.ops[2].key, history.ops[2].value),
            (OpType::Ok, 3, OpValue::Nil)
        );
        assert_eq!(history.ops[3].index, 3);
    }

    #[test]
    fn json_lines_round_trip_and_index_defaults_to_position() {
        let text = r#"{"type":"invoke","f":"write","key":2,"value":5,"process":0}
{"index":1,"type":"ok","f":"write","key":2,"value":5,"process":0,"time":7,"node":1}"#;
        let history = parse_history(text).unwrap();
        assert_eq!(history.ops[0].index, 0);
        assert_eq!(history.ops[1].node, Some(1));
        let again = parse_history(&to_json_lines(&history)).unwrap();
        assert_eq!(again, history);
    }

    #[test]
    fn jepsen_logs_read_their_util_lines_and_skip_the_rest() {
        let text = "\
INFO  jepsen.core - Running test
INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]
INFO  jepsen.util - 1   :invoke :read   nil
INFO  jepsen.util - :nemesis\t:info\t:start\tnil
INFO  jepsen.util - 1   :ok :read   2
INFO  jepsen.util - 3\t:info\t:cas\t:timed-out
";
        let history = read_history(text, Format::Auto).unwrap();
        assert_eq!(history.format, Format::JepsenLog);
        assert_eq!(history.ops.len(), 4);
        let cas = &history.ops[0];
        assert_eq!((cas.line, cas.process, cas.f), (2, 3, F::Cas));
        assert_eq!(cas.value, Datum::List(vec![Datum::Int(1), Datum::Int(4)]));
        assert_eq!((history.ops[2].kind, &history.ops[2].value), (OpType::Ok, &Datum::Int(2)));
        assert_eq!(history.ops[3].kind, OpType::Info);
        // Another format's line in a Jepsen log is an error, as in any format.
        let mixed = format!("{text}{{:type :invoke, :f :read, :process 9}}\n");
        assert_eq!(
            read_history(&mixed, Format::Auto).unwrap_err().to_string(),
            "line 7: an EDN op map in a Jepsen log"
        );
    }

    #[test]
    fn a_history_is_in_one_format() {
        let text = "{\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"process\":4}\n{:type :ok :f :read :value 9 :process 4}";
        let err = parse_history(text).unwrap_err();
        assert_eq!(err.to_string(), "line 2: an EDN op map in a JSON lines history");
        let err = read_history("{:type :invoke :f :read :process 0}", Format::Json).unwrap_err();
        assert_eq!(err.to_string(), "line 1: an EDN op map in a JSON lines history");
    }

    #[test]
    fn errors_name_the_line_and_reason() {
        let text = "{:type :invoke, :f :read, :process 0}\n\n{:type :ok, :f :read, :process 0}\n{:type :invoke, :f :foo, :process 0}";
        let err = parse_history(text).unwrap_err();
        assert_eq!(err.line, 4);
        assert_eq!(err.to_string(), "line 4: unknown :f :foo");

        let err = parse_history("{:type :invoke :f :write :value 1 :process 0").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.reason.contains("unterminated"), "{err}");

        let err = parse_history("\n{\"type\":\"sideways\",\"f\":\"read\",\"process\":0}").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.reason, "unknown \"type\" \"sideways\"");
        let err = parse_history("{\"type\":\"ok\",\"f\":\"teleport\"").unwrap_err();
        assert!(err.reason.contains("invalid JSON"), "{err}");
    }

    #[test]
    fn impossible_histories_are_rejected_with_the_line() {
        let orphan = "{:type :invoke :f :read :process 0}\n{:type :ok :f :read :value 1 :process 1}";
        let err = parse_history(orphan).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("no pending invoke"), "{err}");

        let double = "{:type :invoke :f :read :process 0}\n{:type :invoke :f :write :value 3 :process 0}";
        let err = parse_history(double).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("still pending"), "{err}");

        let mismatch = "{:type :invoke :f :read :process 0}\n{:type :ok :f :write :value 3 :process 0}";
        assert_eq!(parse_history(mismatch).unwrap_err().line, 2);

        let bad_cas = "{:type :invoke :f :cas :value 3 :process 0}";
        assert!(parse_history(bad_cas).unwrap_err().reason.contains("[expected new]"));
    }

    #[test]
    fn edn_keys_and_values_of_any_type() {
        let text = r#"{:type :invoke, :f :write, :key "a", :value :x, :process 0, :time 5}
{:type :ok, :f :write, :key "a", :value :x, :process 0, :time 9}
{:type :invoke, :f :append, :key :k, :value 3, :process 1}
{:type :ok, :f :append, :key :k, :value 3, :process 1}
{:type :invoke, :f :read, :key :k, :value nil, :process 1}
{:type :ok, :f :read, :key :k, :value [3 "s" (4)], :process 1}
{:type :invoke, :f :read, :value nil, :process 2}
{:type :ok, :f :read, :value #{2 1}, :process 2}"#;
        let history = read_history(text, Format::Auto).unwrap();
        assert_eq!(history.format, Format::Edn);
        let ops = &history.ops;
        assert_eq!(
            (ops[0].key.clone(), ops[0].value.clone()),
            (Some(Datum::Str("a".into())), Datum::Keyword("x".into()))
        );
        assert_eq!((ops[1].time, ops[1].line), (Some(9), 2));
        assert_eq!(ops[2].f, F::Append);
        assert_eq!(ops[5].value.to_string(), "[3 \"s\" [4]]");
        assert_eq!(ops[7].value, Datum::set(vec![Datum::Int(1), Datum::Int(2)]));
        assert_eq!(ops[7].key, None);
        // Maps, floats and symbols cannot be values.
        let err =
            read_history("{:type :invoke, :f :write, :value 1.5, :process 0}", Format::Auto).unwrap_err();
        assert_eq!(err.to_string(), "line 1: :value an unsupported value cannot be a key or value");
    }

    #[test]
    fn json_keys_and_values_of_any_type_and_back() {
        let text = r#"{"type":"invoke","f":"append","key":"x","value":"a","process":3}
{"type":"ok","f":"append","key":"x","value":"a","process":3,"time":4}
{"type":"invoke","f":"read","key":"x","process":3}
{"type":"ok","f":"read","key":"x","value":["a"],"process":3}"#;
        let history = read_history(text, Format::Auto).unwrap();
        assert_eq!(history.format, Format::Json);
        assert_eq!(history.ops[3].value, Datum::List(vec![Datum::Str("a".into())]));
        let lines: Vec<String> = history.ops.iter().map(RecordedOp::to_json_line).collect();
        assert_eq!(
            lines[1],
            r#"{"index":1,"type":"ok","f":"append","key":"x","value":"a","process":3,"time":4}"#
        );
        let again = read_history(&lines.join("\n"), Format::Json).unwrap();
        assert_eq!(
            again.ops.iter().map(|o| &o.value).collect::<Vec<_>>(),
            history.ops.iter().map(|o| &o.value).collect::<Vec<_>>()
        );
        let err = read_history(r#"{"type":"ok","f":"read","value":{"a":1},"process":0}"#, Format::Json)
            .unwrap_err();
        assert!(err.reason.contains("no floats or objects"), "{err}");
    }

    #[test]
    fn porcupine_kv_is_detected_from_get_and_put() {
        let text = r#"{:process 0, :type :invoke, :f :put, :key "1", :value "a"}
{:process 0, :type :ok, :f :put, :key "1", :value "a"}
{:process 0, :type :invoke, :f :append, :key "1", :value "b"}
{:process 0, :type :ok, :f :append, :key "1", :value "b"}
{:process 0, :type :invoke, :f :get, :key "1", :value nil}
{:process 0, :type :ok, :f :get, :key "1", :value "ab"}"#;
        let history = read_history(text, Format::Auto).unwrap();
        assert_eq!(history.format, Format::PorcupineKv);
        assert_eq!((history.ops[0].f, history.ops[2].f, history.ops[4].f), (F::Write, F::Append, F::Read));
        assert_eq!(read_history(text, Format::PorcupineKv).unwrap(), history);

        let err = read_history(text, Format::Edn).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.reason.contains("unknown :f :put in EDN"), "{err}");
        let mixed = format!("{text}\n{{:process 1, :type :invoke, :f :read, :key \"1\"}}");
        let err = read_history(&mixed, Format::Auto).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 7: :f :read in a Porcupine key-value history (it has :get, :put and :append)"
        );
        let number = "{:process 0, :type :invoke, :f :put, :key \"1\", :value 5}";
        let err = read_history(number, Format::Auto).unwrap_err();
        assert_eq!(err.to_string(), "line 1: Porcupine's key-value values are strings, not an integer");
    }

    #[test]
    fn porcupines_own_kv_histories_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/porcupine-kv");
        for (name, events) in [("c01-ok", 116), ("c01-bad", 76), ("c10-ok", 674), ("c10-bad", 810)] {
            let text = std::fs::read_to_string(format!("{dir}/{name}.txt")).unwrap();
            let history = read_history(&text, Format::Auto).unwrap();
            assert_eq!(history.format, Format::PorcupineKv, "{name}");
            assert_eq!(history.ops.len(), events, "{name}");
            assert!(history.ops.iter().all(|o| matches!(o.f, F::Read | F::Write | F::Append)));
        }
    }

    #[test]
    fn ops_are_put_in_time_order_when_every_op_has_a_time() {
        // Two clients' logs, concatenated: the file is not in time order.
        let text = "{:type :invoke :f :write :value 1 :process 0 :time 10}
                    {:type :ok :f :write :value 1 :process 0 :time 20}
                    {:type :invoke :f :read :process 1 :time 5}
                    {:type :ok :f :read :value nil :process 1 :time 8}";
        let history = read_history(text, Format::Auto).unwrap();
        assert!(history.reordered_by_time);
        assert_eq!(history.ops.iter().map(|o| o.line).collect::<Vec<_>>(), vec![3, 4, 1, 2]);
        // A completion timed before its invoke is impossible, and says why.
        let text =
            "{:type :invoke :f :read :process 1 :time 9}\n{:type :ok :f :read :value nil :process 1 :time 8}";
        let err = read_history(text, Format::Auto).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.ends_with("(ops were put in :time order)"), "{err}");
        // Without a time on every op, the file's order stands.
        let text = "{:type :invoke :f :read :process 1 :time 9}\n{:type :ok :f :read :value nil :process 1}";
        assert!(!read_history(text, Format::Auto).unwrap().reordered_by_time);
    }
}
