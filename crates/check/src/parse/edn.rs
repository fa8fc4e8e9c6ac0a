//! The subset of EDN that Jepsen's op maps use, one map per line:
//! `{:type :invoke, :f :cas, :key "a", :value [1 2], :process 0, :time 10}`.
//! Commas are whitespace, `;` starts a comment, `:type` and `:f` may be
//! keywords or strings, and keys or values may be nil, booleans, integers,
//! strings, keywords, vectors, lists or sets. Other fields may hold anything
//! (maps, floats, symbols), which is read and then ignored.

use std::collections::BTreeMap;

use super::RecordedOp;
use crate::datum::Datum;
use crate::history::{OpType, F};

/// One EDN value, as read.
#[derive(Clone, Debug, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i128),
    Keyword(String),
    Str(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Set(Vec<Edn>),
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
            Edn::Set(_) => "a set".into(),
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

    /// As a key or value of an op; maps, symbols and floats are refused.
    fn datum(&self) -> Result<Datum, String> {
        Ok(match self {
            Edn::Nil => Datum::Nil,
            Edn::Bool(b) => Datum::Bool(*b),
            Edn::Int(i) => Datum::Int(*i),
            Edn::Keyword(k) => Datum::Keyword(k.clone()),
            Edn::Str(s) => Datum::Str(s.clone()),
            Edn::Vector(items) => Datum::List(items.iter().map(Edn::datum).collect::<Result<_, _>>()?),
            Edn::Set(items) => Datum::set(items.iter().map(Edn::datum).collect::<Result<_, _>>()?),
            other => return Err(format!("{} cannot be a key or value", other.describe())),
        })
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
                self.seq_body(b'}', depth).map(Edn::Set)
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

/// Where an op's `:f` name comes from: Porcupine's key-value histories say
/// `:get` and `:put` where Jepsen says `:read` and `:write`; `:append` is
/// in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Jepsen,
    Porcupine,
    Both,
}

/// One op map: the op and the dialect of its `:f`, or `Ok(None)` for an op
/// of the nemesis (not a client).
pub(super) fn op(
    line: &str,
    position: usize,
    line_number: usize,
) -> Result<Option<(RecordedOp, Dialect)>, String> {
    let mut reader = EdnReader { text: line.as_bytes(), at: 0 };
    let map = reader.value(0)?;
    if reader.peek().is_some() {
        return Err("trailing characters after the op map".into());
    }
    let Edn::Map(entries) = map else { return Err("expected an op map starting with '{'".into()) };
    let mut fields: BTreeMap<String, Edn> = BTreeMap::new();
    for (key, value) in entries {
        if let Some(name) = key.name() {
            fields.insert(name.to_string(), value);
        }
    }
    if fields.get("process").and_then(Edn::name) == Some("nemesis") {
        return Ok(None);
    }
    let kind = op_type(fields.get("type"))?;
    let (f, dialect) = function(fields.get("f"))?;
    let process = unsigned(fields.get("process"), "process")?.ok_or("missing :process")?;
    let key = match fields.get("key") {
        None | Some(Edn::Nil) => None,
        Some(key) => Some(key.datum().map_err(|e| format!(":key {e}"))?),
    };
    let value = fields.get("value").map_or(Ok(Datum::Nil), Edn::datum).map_err(|e| format!(":value {e}"))?;
    let time = unsigned(fields.get("time"), "time")?;
    let index = unsigned(fields.get("index"), "index")?.map_or(position, |i| i as usize);
    let node = unsigned(fields.get("node"), "node")?.and_then(|n| u32::try_from(n).ok());
    let op = RecordedOp { index, line: line_number, kind, f, key, value, process, time, node };
    Ok(Some((op, dialect)))
}

fn op_type(value: Option<&Edn>) -> Result<OpType, String> {
    let value = value.ok_or("missing :type")?;
    match value.name() {
        Some("invoke") => Ok(OpType::Invoke),
        Some("ok") => Ok(OpType::Ok),
        Some("fail") => Ok(OpType::Fail),
        Some("info") => Ok(OpType::Info),
        _ => Err(format!("unknown :type {}", value.describe())),
    }
}

fn function(value: Option<&Edn>) -> Result<(F, Dialect), String> {
    let value = value.ok_or("missing :f")?;
    match value.name() {
        Some("get") => Ok((F::Read, Dialect::Porcupine)),
        Some("put") => Ok((F::Write, Dialect::Porcupine)),
        Some("append") => Ok((F::Append, Dialect::Both)),
        Some(name) => F::from_name(name)
            .map(|f| (f, Dialect::Jepsen))
            .ok_or_else(|| format!("unknown :f {}", value.describe())),
        None => Err(format!("unknown :f {}", value.describe())),
    }
}

fn unsigned(value: Option<&Edn>, field: &str) -> Result<Option<u64>, String> {
    match value {
        None | Some(Edn::Nil) => Ok(None),
        Some(Edn::Int(i)) => u64::try_from(*i).map(Some).map_err(|_| format!(":{field} {i} is out of range")),
        Some(other) => Err(format!(":{field} must be an integer, not {}", other.describe())),
    }
}
