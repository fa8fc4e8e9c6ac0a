//! The string commands: SET with its options, MSET, APPEND, SETRANGE,
//! GETRANGE, INCRBY, INCRBYFLOAT and our CAS. Each is Redis' command of the
//! same name, with Redis' replies and error strings; a key whose deadline
//! has passed is absent to all of them.

use super::{error, Bytes, Condition, KvMap, Millis, Output, SetTtl};

/// The longest string APPEND and SETRANGE may build: Redis' default
/// `proto-max-bulk-len`, 512 MiB.
pub const STRING_BYTES_MAX: u64 = 512 * 1024 * 1024;

const TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

impl KvMap {
    /// SET key value [NX | XX] [GET] [EX | PX | EXAT | PXAT | KEEPTTL].
    /// With GET the old value is the answer whether or not the condition
    /// held; without it, OK, or nil if the condition failed.
    pub(super) fn set(
        &mut self,
        key: &Bytes,
        value: &Bytes,
        condition: Condition,
        get: bool,
        ttl: SetTtl,
        now: Millis,
    ) -> Output {
        let old = self.live(key, now);
        let exists = old.is_some();
        let old_deadline = old.and_then(|e| e.deadline);
        let reply = match (get, old) {
            (true, old) => Output::Value(old.map(|e| e.value.0.clone())),
            (false, _) => Output::Ok,
        };
        let allowed = match condition {
            Condition::Always => true,
            Condition::IfAbsent => !exists,
            Condition::IfPresent => exists,
        };
        if !allowed {
            return if get { reply } else { Output::Value(None) };
        }
        let deadline = match ttl {
            SetTtl::Clear => None,
            SetTtl::Keep => old_deadline,
            SetTtl::Until(deadline) => Some(deadline.resolve(now)),
        };
        if deadline.is_some_and(|at| at <= now) {
            // Already past (EXAT in the past): set and at once expired.
            self.remove(key, now);
        } else {
            self.put(key.clone(), value.clone(), deadline);
        }
        reply
    }

    /// MSET (OK), or MSETNX / SETNX (`only_new`: 1 if every key was absent
    /// and all are now set, 0 and nothing set otherwise). Deadlines are cleared.
    pub(super) fn mset(&mut self, pairs: &[(Bytes, Bytes)], only_new: bool, now: Millis) -> Output {
        if only_new && pairs.iter().any(|(k, _)| self.live(k, now).is_some()) {
            return Output::Int(0);
        }
        for (key, value) in pairs {
            self.put(key.clone(), value.clone(), None);
        }
        if only_new {
            Output::Int(1)
        } else {
            Output::Ok
        }
    }

    /// APPEND: the new length; the key keeps its deadline.
    pub(super) fn append(&mut self, key: &Bytes, value: &Bytes, now: Millis) -> Output {
        let version = self.version;
        match self.live_mut(key, now) {
            Some(entry) => {
                if (entry.value.len() + value.len()) as u64 > STRING_BYTES_MAX {
                    return error(TOO_LONG);
                }
                entry.value.0.extend_from_slice(value);
                entry.version = version;
                Output::Int(entry.value.len() as i64)
            }
            None => {
                self.put(key.clone(), value.clone(), None);
                Output::Int(value.len() as i64)
            }
        }
    }

    /// SETRANGE: overwrite from `offset`, zero-padding; the new length. An
    /// empty `value` changes nothing (and creates no key).
    pub(super) fn set_range(&mut self, key: &Bytes, offset: u64, value: &Bytes, now: Millis) -> Output {
        let current = self.live(key, now).map_or(0, |e| e.value.len());
        if value.is_empty() {
            return Output::Int(current as i64);
        }
        if offset.saturating_add(value.len() as u64) > STRING_BYTES_MAX {
            return error(TOO_LONG);
        }
        let offset = offset as usize;
        let version = self.version;
        let write = |bytes: &mut Vec<u8>| {
            if bytes.len() < offset + value.len() {
                bytes.resize(offset + value.len(), 0);
            }
            bytes[offset..offset + value.len()].copy_from_slice(value);
            bytes.len() as i64
        };
        match self.live_mut(key, now) {
            Some(entry) => {
                entry.version = version;
                Output::Int(write(&mut entry.value.0))
            }
            None => {
                let mut bytes = Vec::new();
                let length = write(&mut bytes);
                self.put(key.clone(), Bytes(bytes), None);
                Output::Int(length)
            }
        }
    }

    /// GETRANGE with Redis' index rules (negative counts from the end,
    /// clamped; an empty string, never nil, when nothing is in range).
    pub(super) fn get_range(&self, key: &[u8], start: i64, end: i64, now: Millis) -> Output {
        let empty = Output::Value(Some(Vec::new()));
        let Some(value) = self.value(key, now) else {
            return empty;
        };
        let length = value.len() as i64;
        if (start < 0 && end < 0 && start > end) || length == 0 {
            return empty;
        }
        let start = if start < 0 { (length + start).max(0) } else { start };
        let end = if end < 0 { (length + end).max(0) } else { end.min(length - 1) };
        if start > end {
            return empty;
        }
        Output::Value(Some(value[start as usize..=end as usize].to_vec()))
    }

    /// INCRBY (and INCR, DECR, DECRBY): the new value; the key keeps its deadline.
    pub(super) fn incr_by(&mut self, key: &Bytes, by: i64, now: Millis) -> Output {
        let current = match self.value(key, now) {
            None => 0,
            Some(bytes) => match super::parse_i64(bytes) {
                Some(n) => n,
                None => return error(NOT_AN_INTEGER),
            },
        };
        match current.checked_add(by) {
            Some(n) => {
                self.replace_value(key, n.to_string().into_bytes(), now);
                Output::Int(n)
            }
            None => error("ERR increment or decrement would overflow"),
        }
    }

    /// INCRBYFLOAT: the new value as a bulk string, in the shortest form
    /// that reads back as the same double (Redis prints a long double with
    /// 17 decimals and trims zeros: the same text except in the last digits
    /// of a few results). The key keeps its deadline.
    pub(super) fn incr_by_float(&mut self, key: &Bytes, by: f64, now: Millis) -> Output {
        let current = match self.value(key, now) {
            None => 0.0,
            Some(bytes) => match super::parse_f64(bytes) {
                Some(f) => f,
                None => return error("ERR value is not a valid float"),
            },
        };
        let sum = current + by;
        if !sum.is_finite() {
            return error("ERR increment would produce NaN or Infinity");
        }
        let text = format!("{sum}").into_bytes();
        self.replace_value(key, text.clone(), now);
        Output::Value(Some(text))
    }

    /// CAS key expected new: 1 and set (deadline cleared, as SET does) if
    /// `key` holds `expected`, 0 otherwise.
    pub(super) fn cas(&mut self, key: &Bytes, expected: &Bytes, new: &Bytes, now: Millis) -> Output {
        if self.value(key, now) == Some(expected) {
            self.put(key.clone(), new.clone(), None);
            Output::Int(1)
        } else {
            Output::Int(0)
        }
    }

    /// Give `key` a new value, keeping the deadline of a live key.
    fn replace_value(&mut self, key: &Bytes, value: Vec<u8>, now: Millis) {
        let version = self.version;
        match self.live_mut(key, now) {
            Some(entry) => {
                entry.value = Bytes(value);
                entry.version = version;
            }
            None => self.put(key.clone(), Bytes(value), None),
        }
    }
}
