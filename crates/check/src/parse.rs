//! Reading histories: our JSON lines and Jepsen-style EDN, one op per line.
//!
//! Each non-blank line is one history event. The format is detected per line:
//! a line whose first token after `{` is a string (`{"type": ...`) is JSON in
//! the shape of [`Op`]'s serde form (`index` may be absent and is then the
//! event's position); a line whose first token is a keyword is an EDN map,
//! e.g. `{:type :invoke, :f :cas, :value [1 2], :process 0, :key 3}`. In EDN,
//! commas are whitespace, `:type`/`:f` may be keywords or strings, `:key`
//! defaults to 0, `:time` and unknown keys are optional, and ops of the
//! `:nemesis` process are skipped. Blank lines and lines starting with `;` or
//! `#` are comments.
//!
//! Parsing also rejects histories that cannot have happened: a completion for
//! a process with no pending invoke, a second invoke on a process whose
//! previous op is still pending, and a completion whose `f` or key differs
//! from its invoke. Every error names the 1-based line.

use std::collections::BTreeMap;

use quorum_core::{Key, Value};
use serde::Deserialize;
use thiserror::Error;

use crate::history::{History, Op, OpType, OpValue, F};

/// Why a history could not be read: the 1-based line and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

fn error(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError { line, reason: reason.into() }
}

/// Parse a whole history; see the module documentation for the formats.
pub fn parse_history(text: &str) -> Result<History, ParseError> {
    let mut ops: Vec<Op> = Vec::new();
    // Invariant: a process appears here iff its latest event is an invoke.
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    for (line_index, raw) in text.lines().enumerate() {
        let line_number = line_index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let parsed = parse_line(line, ops.len()).map_err(|reason| error(line_number, reason))?;
        let Some(op) = parsed else { continue };
        validate_value(&op).map_err(|reason| error(line_number, reason))?;
        track_pending(&mut pending, &ops, &op).map_err(|reason| error(line_number, reason))?;
        ops.push(op);
    }
    Ok(History { ops })
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

/// `Ok(None)` for a line that is well formed but not a client op (nemesis).
fn parse_line(line: &str, position: usize) -> Result<Option<Op>, String> {
    let after_brace = line.strip_prefix('{').ok_or("expected an op map starting with '{'")?;
    let first = after_brace.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    if first.starts_with('"') {
        parse_json(line, position).map(Some)
    } else {
        parse_edn(line, position)
    }
}

/// [`Op`]'s serde shape with `index` optional.
#[derive(Deserialize)]
struct JsonOp {
    index: Option<usize>,
    #[serde(rename = "type")]
    kind: OpType,
    f: F,
    #[serde(default)]
    key: Key,
    #[serde(default = "nil")]
    value: OpValue,
    process: u64,
    #[serde(default)]
    time: u64,
    #[serde(default)]
    node: Option<u32>,
}

fn nil() -> OpValue {
    OpValue::Nil
}

fn parse_json(line: &str, position: usize) -> Result<Op, String> {
    let op: JsonOp = serde_json::from_str(line).map_err(|e| format!("invalid JSON op: {e}"))?;
    Ok(Op {
        index: op.index.unwrap_or(position),
        kind: op.kind,
        f: op.f,
        key: op.key,
        value: op.value,
        process: op.process,
        time: op.time,
        node: op.node,
    })
}

/// Cas needs `[expected new]` and a write one value when invoked; an ok read
/// carries one value or nil.
fn validate_value(op: &Op) -> Result<(), String> {
    let f = f_name(op.f);
    match (op.kind, op.f, op.value) {
        (OpType::Invoke, F::Write, OpValue::One(_)) => Ok(()),
        (OpType::Invoke, F::Write, _) => Err(format!("invoke of :{f} needs a single value")),
        (OpType::Invoke, F::Cas, OpValue::Pair(_)) => Ok(()),
        (OpType::Invoke, F::Cas, _) => Err(format!("invoke of :{f} needs [expected new]")),
        (OpType::Ok, F::Read, OpValue::Pair(_)) => Err("ok :read returned a pair".to_string()),
        _ => Ok(()),
    }
}

fn track_pending(pending: &mut BTreeMap<u64, usize>, ops: &[Op], op: &Op) -> Result<(), String> {
    let process = op.process;
    match (op.kind, pending.get(&process)) {
        (OpType::Invoke, Some(&earlier)) => Err(format!(
            "process {process} invoked :{} while its op from event {} is still pending",
            f_name(op.f),
            ops[earlier].index
        )),
        (OpType::Invoke, None) => {
            pending.insert(process, ops.len());
            Ok(())
        }
        (_, None) => Err(format!(
            "{} completion of :{} for process {process}, which has no pending invoke",
            type_name(op.kind),
            f_name(op.f)
        )),
        (_, Some(&earlier)) => {
            let invoke = &ops[earlier];
            if invoke.f != op.f {
                return Err(format!(
                    "completion :f :{} does not match the pending :{} of process {process}",
                    f_name(op.f),
                    f_name(invoke.f)
                ));
            }
            if invoke.key != op.key {
                return Err(format!(
                    "completion key {} does not match the pending op's key {} (process {process})",
                    op.key, invoke.key
                ));
            }
            pending.remove(&process);
            Ok(())
        }
    }
}

pub(crate) fn f_name(f: F) -> &'static str {
    match f {
        F::Read => "read",
        F::Write => "write",
        F::Cas => "cas",
    }
}

pub(crate) fn type_name(kind: OpType) -> &'static str {
    match kind {
        OpType::Invoke => "invoke",
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    }
}

// ---------------------------------------------------------------- EDN

/// The subset of EDN a Jepsen op map uses. Unknown keys may hold anything
/// (maps, sets, floats), which is parsed and then ignored.
#[derive(Clone, Debug, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i128),
    Keyword(String),
    Str(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
    Other,
}

impl Edn {
    fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".into(),
            Edn::Bool(b) => b.to_string(),
            Edn::Int(i) => i.to_string(),
            Edn::Keyword(k) => format!(":{k}"),
            Edn::Str(s) => format!("{s:?}"),
            Edn::Symbol(s) => s.clone(),
            Edn::Vector(_) => "a vector".into(),
            Edn::Map(_) => "a map".into(),
            Edn::Other => "an unsupported value".into(),
        }
    }

    /// A keyword or a string, as a name.
    fn name(&self) -> Option<&str> {
        match self {
            Edn::Keyword(s) | Edn::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct EdnReader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> EdnReader<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(&c) = self.text.get(self.at) {
            if c.is_ascii_whitespace() || c == b',' {
                self.at += 1;
            } else if c == b';' {
                self.at = self.text.len();
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.get(self.at).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Edn, String> {
        if depth > 32 {
            return Err("EDN nested too deeply".into());
        }
        let c = self.peek().ok_or("unexpected end of line")?;
        match c {
            b'{' => {
                self.at += 1;
                self.map_body(depth)
            }
            b'[' | b'(' => {
                self.at += 1;
                let close = if c == b'[' { b']' } else { b')' };
                self.seq_body(close, depth).map(Edn::Vector)
            }
            b'#' if self.text.get(self.at + 1) == Some(&b'{') => {
                self.at += 2;
                self.seq_body(b'}', depth).map(|_| Edn::Other)
            }
            b'"' => self.string(),
            b':' => {
                self.at += 1;
                let word = self.word();
                if word.is_empty() {
                    return Err("empty keyword".into());
                }
                Ok(Edn::Keyword(word))
            }
            _ => self.atom(),
        }
    }

    fn map_body(&mut self, depth: usize) -> Result<Edn, String> {
        let mut entries = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated map: missing '}'".into()),
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Edn::Map(entries));
                }
                Some(_) => {
                    let key = self.value(depth + 1)?;
                    if self.peek() == Some(b'}') {
                        return Err(format!("map key {} has no value", key.describe()));
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
            }
        }
    }

    fn seq_body(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, String> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated collection: missing '{}'", close as char)),
                Some(c) if c == close => {
                    self.at += 1;
                    return Ok(items);
                }
                Some(b'}' | b']' | b')') => return Err("mismatched closing bracket".into()),
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self) -> Result<Edn, String> {
        self.at += 1; // opening quote
        let mut out = Vec::new();
        while let Some(&c) = self.text.get(self.at) {
            self.at += 1;
            match c {
                b'"' => return Ok(Edn::Str(String::from_utf8_lossy(&out).into_owned())),
                b'\\' => {
                    let escaped = *self.text.get(self.at).ok_or("unterminated string")?;
                    self.at += 1;
                    out.push(match escaped {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
        Err("unterminated string".into())
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while let Some(&c) = self.text.get(self.at) {
            if c.is_ascii_whitespace() || b",{}[]()\";".contains(&c) {
                break;
            }
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }

    fn atom(&mut self) -> Result<Edn, String> {
        let word = self.word();
        if word.is_empty() {
            return Err(format!("unexpected character '{}'", self.text[self.at] as char));
        }
        Ok(match word.as_str() {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ => {
                let digits = word.trim_end_matches('N');
                if let Ok(i) = digits.parse::<i128>() {
                    Edn::Int(i)
                } else if word.parse::<f64>().is_ok() {
                    Edn::Other
                } else {
                    Edn::Symbol(word)
                }
            }
        })
    }
}

fn parse_edn(line: &str, position: usize) -> Result<Option<Op>, String> {
    let mut reader = EdnReader { text: line.as_bytes(), at: 0 };
    let map = reader.value(0)?;
    if reader.peek().is_some() {
        return Err("trailing characters after the op map".into());
    }
    let Edn::Map(entries) = map else { unreachable!("parse_line checked the leading brace") };
    let mut fields: BTreeMap<String, Edn> = BTreeMap::new();
    for (key, value) in entries {
        if let Some(name) = key.name() {
            fields.insert(name.to_string(), value);
        }
    }
    if fields.get("process").and_then(Edn::name) == Some("nemesis") {
        return Ok(None);
    }
    let kind = edn_type(fields.get("type"))?;
    let f = edn_f(fields.get("f"))?;
    let process = edn_u64(fields.get("process"), "process")?.ok_or("missing :process")?;
    let key = edn_u64(fields.get("key"), "key")?.unwrap_or(0);
    let time = edn_u64(fields.get("time"), "time")?.unwrap_or(0);
    let index = edn_u64(fields.get("index"), "index")?.map_or(position, |i| i as usize);
    let node = edn_u64(fields.get("node"), "node")?.and_then(|n| u32::try_from(n).ok());
    let value = edn_value(fields.get("value").unwrap_or(&Edn::Nil))?;
    Ok(Some(Op { index, kind, f, key, value, process, time, node }))
}

fn edn_type(value: Option<&Edn>) -> Result<OpType, String> {
    let value = value.ok_or("missing :type")?;
    match value.name() {
        Some("invoke") => Ok(OpType::Invoke),
        Some("ok") => Ok(OpType::Ok),
        Some("fail") => Ok(OpType::Fail),
        Some("info") => Ok(OpType::Info),
        _ => Err(format!("unknown :type {}", value.describe())),
    }
}

fn edn_f(value: Option<&Edn>) -> Result<F, String> {
    let value = value.ok_or("missing :f")?;
    match value.name() {
        Some("read" | "r") => Ok(F::Read),
        Some("write" | "w") => Ok(F::Write),
        Some("cas") => Ok(F::Cas),
        _ => Err(format!("unknown :f {}", value.describe())),
    }
}

fn edn_u64(value: Option<&Edn>, field: &str) -> Result<Option<u64>, String> {
    match value {
        None | Some(Edn::Nil) => Ok(None),
        Some(Edn::Int(i)) => u64::try_from(*i).map(Some).map_err(|_| format!(":{field} {i} is out of range")),
        Some(other) => Err(format!(":{field} must be an integer, not {}", other.describe())),
    }
}

fn edn_int(value: &Edn) -> Result<Value, String> {
    match value {
        Edn::Int(i) => u64::try_from(*i).map_err(|_| format!("value {i} is out of range")),
        other => Err(format!("value must be an integer, not {}", other.describe())),
    }
}

fn edn_value(value: &Edn) -> Result<OpValue, String> {
    match value {
        Edn::Nil => Ok(OpValue::Nil),
        Edn::Int(_) => Ok(OpValue::One(edn_int(value)?)),
        Edn::Vector(items) if items.len() == 2 => {
            Ok(OpValue::Pair([edn_int(&items[0])?, edn_int(&items[1])?]))
        }
        other => Err(format!(":value must be nil, an integer or [a b], not {}", other.describe())),
    }
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
    fn formats_may_mix_line_by_line() {
        let text = "{\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"process\":4}\n{:type :ok :f :read :value 9 :process 4}";
        let history = parse_history(text).unwrap();
        assert_eq!(history.ops[1].value, OpValue::One(9));
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
}
