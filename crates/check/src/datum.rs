//! Keys and values as histories from elsewhere carry them: Jepsen's EDN
//! (integers, strings, keywords, vectors, sets), our JSON lines, Porcupine's
//! strings. A [`Datum`] is compared structurally, so `"1"`, `1` and `:1` are
//! three different values, and an EDN set equals another with the same
//! members in any order (it is kept sorted).

use std::fmt;

/// One key or value of a history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Datum {
    Nil,
    Bool(bool),
    Int(i128),
    Str(String),
    /// An EDN keyword, without its colon.
    Keyword(String),
    /// An EDN vector or list, or a JSON array.
    List(Vec<Datum>),
    /// An EDN set: members sorted, without duplicates.
    Set(Vec<Datum>),
}

impl Datum {
    /// A set of `members`, in canonical order.
    pub fn set(mut members: Vec<Datum>) -> Datum {
        members.sort();
        members.dedup();
        Datum::Set(members)
    }

    /// The integer this datum is, if it is one.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Datum::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// From a JSON value; `None` for floats and objects, which no model uses.
    pub fn from_json(value: &serde_json::Value) -> Option<Datum> {
        use serde_json::Value as Json;
        Some(match value {
            Json::Null => Datum::Nil,
            Json::Bool(b) => Datum::Bool(*b),
            Json::Number(n) => Datum::Int(n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))?),
            Json::String(s) => Datum::Str(s.clone()),
            Json::Array(items) => Datum::List(items.iter().map(Datum::from_json).collect::<Option<_>>()?),
            Json::Object(_) => return None,
        })
    }

    /// As JSON: keywords become strings and sets arrays, so a history
    /// written back out reads the same as long as it did not mix a keyword
    /// with the string of the same name.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match self {
            Datum::Nil => Json::Null,
            Datum::Bool(b) => Json::Bool(*b),
            Datum::Int(i) => {
                if let Ok(small) = i64::try_from(*i) {
                    Json::from(small)
                } else if let Ok(large) = u64::try_from(*i) {
                    Json::from(large)
                } else {
                    Json::String(i.to_string())
                }
            }
            Datum::Str(s) | Datum::Keyword(s) => Json::String(s.clone()),
            Datum::List(items) | Datum::Set(items) => Json::Array(items.iter().map(Datum::to_json).collect()),
        }
    }

    /// A short description of its type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Datum::Nil => "nil",
            Datum::Bool(_) => "a boolean",
            Datum::Int(_) => "an integer",
            Datum::Str(_) => "a string",
            Datum::Keyword(_) => "a keyword",
            Datum::List(_) => "a vector",
            Datum::Set(_) => "a set",
        }
    }
}

/// EDN notation: `nil`, `42`, `"a"`, `:a`, `[1 2]`, `#{1 2}`.
impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items = |f: &mut fmt::Formatter<'_>, items: &[Datum]| -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        };
        match self {
            Datum::Nil => f.write_str("nil"),
            Datum::Bool(b) => write!(f, "{b}"),
            Datum::Int(i) => write!(f, "{i}"),
            Datum::Str(s) => write!(f, "{s:?}"),
            Datum::Keyword(k) => write!(f, ":{k}"),
            Datum::List(list) => {
                f.write_str("[")?;
                items(f, list)?;
                f.write_str("]")
            }
            Datum::Set(set) => {
                f.write_str("#{")?;
                items(f, set)?;
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_equal_whatever_the_order_and_print_as_edn() {
        let a = Datum::set(vec![Datum::Int(2), Datum::Int(1), Datum::Int(2)]);
        let b = Datum::set(vec![Datum::Int(1), Datum::Int(2)]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "#{1 2}");
        let list = Datum::List(vec![Datum::Str("a".into()), Datum::Keyword("b".into()), Datum::Nil]);
        assert_eq!(list.to_string(), "[\"a\" :b nil]");
    }

    #[test]
    fn json_round_trip_and_refusals() {
        let json: serde_json::Value =
            serde_json::from_str(r#"[1, "x", null, [true], 18446744073709551615]"#).unwrap();
        let datum = Datum::from_json(&json).unwrap();
        assert_eq!(datum.to_json(), json);
        assert_eq!(Datum::from_json(&serde_json::json!(1.5)), None);
        assert_eq!(Datum::from_json(&serde_json::json!({"a": 1})), None);
    }
}
