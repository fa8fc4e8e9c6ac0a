//! Our JSON lines: one object per op, in the shape `quorum sim --history`
//! writes (`{"index":3,"type":"ok","f":"cas","key":1,"value":[1,2],
//! "process":0,"time":5120,"node":2}`), with `index`, `key`, `value`,
//! `time` and `node` optional. Keys and values may be any JSON but floats
//! and objects; other fields are ignored.

use serde_json::{Map, Value as Json};

use super::RecordedOp;
use crate::datum::Datum;
use crate::history::{OpType, F};

/// One JSON op, or `Ok(None)` for an op of the nemesis.
pub(super) fn op(line: &str, position: usize, line_number: usize) -> Result<Option<RecordedOp>, String> {
    let object = match serde_json::from_str::<Json>(line) {
        Ok(Json::Object(object)) => object,
        Ok(_) => return Err("expected a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON: {e}")),
    };
    if object.get("process").and_then(Json::as_str) == Some("nemesis") {
        return Ok(None);
    }
    let name = |field: &str| object.get(field).and_then(Json::as_str);
    let kind = match name("type").ok_or("missing \"type\"")? {
        "invoke" => OpType::Invoke,
        "ok" => OpType::Ok,
        "fail" => OpType::Fail,
        "info" => OpType::Info,
        other => return Err(format!("unknown \"type\" {other:?}")),
    };
    let f_name = name("f").ok_or("missing \"f\"")?;
    let f = F::from_name(f_name).ok_or_else(|| format!("unknown \"f\" {f_name:?}"))?;
    let key = match object.get("key") {
        None | Some(Json::Null) => None,
        Some(key) => Some(datum(key, "key")?),
    };
    let value = object.get("value").map_or(Ok(Datum::Nil), |v| datum(v, "value"))?;
    let process = unsigned(&object, "process")?.ok_or("missing \"process\"")?;
    let index = unsigned(&object, "index")?.map_or(position, |i| i as usize);
    let time = unsigned(&object, "time")?;
    let node = unsigned(&object, "node")?.and_then(|n| u32::try_from(n).ok());
    Ok(Some(RecordedOp { index, line: line_number, kind, f, key, value, process, time, node }))
}

fn datum(value: &Json, field: &str) -> Result<Datum, String> {
    Datum::from_json(value)
        .ok_or_else(|| format!("\"{field}\" {value} is not a key or value (no floats or objects)"))
}

fn unsigned(object: &Map<String, Json>, field: &str) -> Result<Option<u64>, String> {
    match object.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{field}\" must be a non-negative integer, not {value}")),
    }
}
