//! The keyspace commands: TTL and the EXPIRE family, PERSIST, DBSIZE, KEYS,
//! SCAN, RANDOMKEY, RENAME, COPY, FLUSHDB, the purge of expired keys, and
//! WATCH's read of versions.

use std::ops::Bound;

use super::{error, glob_match, Bytes, ExpireCondition, KvMap, Millis, Output, TimeUnit, Watch};

impl KvMap {
    /// TTL / PTTL: -2 for an absent key, -1 for a key without a deadline.
    /// TTL rounds to the nearest second, as Redis does.
    pub(super) fn ttl(&self, key: &[u8], unit: TimeUnit, now: Millis) -> Output {
        let Some(entry) = self.live(key, now) else {
            return Output::Int(-2);
        };
        let Some(deadline) = entry.deadline else {
            return Output::Int(-1);
        };
        let left = (deadline - now).max(0);
        Output::Int(match unit {
            TimeUnit::Millis => left,
            TimeUnit::Seconds => (left + 500) / 1000,
        })
    }

    /// Keys live at `now`: those in the map less those past their deadline.
    pub(super) fn live_count(&self, now: Millis) -> usize {
        let expired = self.deadlines.range(..(now, Bytes::default())).count();
        self.data.len() - expired
    }

    /// KEYS: every live key matching `pattern`, in key order.
    pub(super) fn keys(&self, pattern: &[u8], now: Millis) -> Output {
        let keys = self
            .data
            .iter()
            .filter(|(k, e)| e.deadline.is_none_or(|d| now <= d) && glob_match(pattern, k))
            .map(|(k, _)| Some(k.0.clone()))
            .collect();
        Output::Values(keys)
    }

    /// SCAN: look at up to `count` keys from `from` on, in key order, and
    /// return the live ones matching `pattern`, with the key to resume from.
    /// A key present for the whole scan is returned exactly once.
    pub(super) fn scan(&self, from: &[u8], pattern: Option<&[u8]>, count: u64, now: Millis) -> Output {
        let mut range = self.data.range::<[u8], _>((Bound::Included(from), Bound::Unbounded));
        let mut keys = Vec::new();
        for _ in 0..count.max(1) {
            let Some((key, entry)) = range.next() else {
                return Output::Scan { next: None, keys };
            };
            let live = entry.deadline.is_none_or(|d| now <= d);
            if live && pattern.is_none_or(|p| glob_match(p, key)) {
                keys.push(key.0.clone());
            }
        }
        Output::Scan { next: range.next().map(|(k, _)| k.0.clone()), keys }
    }

    /// RANDOMKEY, deterministic: the first live key at or after position
    /// `hash(now) mod len` in key order (wrapping). O(N), unlike Redis' O(1).
    pub(super) fn random_key(&self, now: Millis) -> Output {
        if self.data.is_empty() {
            return Output::Value(None);
        }
        let start = (quorum_core::fnv1a(&now.to_le_bytes()) % self.data.len() as u64) as usize;
        let found = self
            .data
            .iter()
            .skip(start)
            .chain(self.data.iter().take(start))
            .find(|(_, e)| e.deadline.is_none_or(|d| now <= d));
        Output::Value(found.map(|(k, _)| k.0.clone()))
    }

    /// WATCH's read: each key's version now (0: absent), and the map's.
    pub(super) fn versions(&self, keys: &[Bytes], now: Millis) -> Output {
        let keys = keys.iter().map(|k| (k.clone(), self.live(k, now).map_or(0, |e| e.version))).collect();
        Output::Watch(Watch { keys, point: self.version })
    }

    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with Redis 7's conditions: 1
    /// if the deadline was set (or, being already past, the key deleted).
    pub(super) fn expire(
        &mut self,
        key: &Bytes,
        at: Millis,
        condition: ExpireCondition,
        now: Millis,
    ) -> Output {
        let Some(entry) = self.live(key, now) else {
            return Output::Int(0);
        };
        let current = entry.deadline;
        let allowed = match condition {
            ExpireCondition::Always => true,
            ExpireCondition::NoDeadline => current.is_none(),
            ExpireCondition::HasDeadline => current.is_some(),
            ExpireCondition::Later => current.is_some_and(|c| at > c),
            ExpireCondition::Earlier => current.is_none_or(|c| at < c),
            ExpireCondition::EarlierDeadline => current.is_some_and(|c| at < c),
        };
        if !allowed {
            return Output::Int(0);
        }
        if at <= now {
            self.remove(key, now);
        } else {
            self.set_deadline(key, Some(at));
        }
        Output::Int(1)
    }

    /// PERSIST: 1 if the key had a deadline and now has none.
    pub(super) fn persist(&mut self, key: &Bytes, now: Millis) -> Output {
        match self.live(key, now) {
            Some(entry) if entry.deadline.is_some() => {
                self.set_deadline(key, None);
                Output::Int(1)
            }
            _ => Output::Int(0),
        }
    }

    /// Change a present key's deadline, as part of the current update.
    fn set_deadline(&mut self, key: &Bytes, deadline: Option<Millis>) {
        let version = self.version;
        let Some(entry) = self.data.get_mut(&**key) else {
            return;
        };
        if let Some(old) = entry.deadline {
            self.deadlines.remove(&(old, key.clone()));
        }
        if let Some(at) = deadline {
            self.deadlines.insert((at, key.clone()));
        }
        entry.deadline = deadline;
        entry.version = version;
    }

    /// RENAME (OK) or RENAMENX (1, or 0 if `to` exists): the value moves
    /// with its deadline; `ERR no such key` if `from` is absent.
    pub(super) fn rename(&mut self, from: &Bytes, to: &Bytes, only_new: bool, now: Millis) -> Output {
        if self.live(from, now).is_none() {
            return error("ERR no such key");
        }
        if only_new && self.live(to, now).is_some() {
            return Output::Int(0);
        }
        if from != to {
            if let Some(entry) = self.remove(from, now) {
                self.put(to.clone(), entry.value, entry.deadline);
            }
        }
        if only_new {
            Output::Int(1)
        } else {
            Output::Ok
        }
    }

    /// COPY: 1 if `from` was copied (value and deadline) to `to`; 0 if
    /// `from` is absent or `to` exists and `replace` is not given.
    pub(super) fn copy(&mut self, from: &Bytes, to: &Bytes, replace: bool, now: Millis) -> Output {
        if from == to {
            return error("ERR source and destination objects are the same");
        }
        let Some(entry) = self.live(from, now) else {
            return Output::Int(0);
        };
        if !replace && self.live(to, now).is_some() {
            return Output::Int(0);
        }
        let (value, deadline) = (entry.value.clone(), entry.deadline);
        self.put(to.clone(), value, deadline);
        Output::Int(1)
    }

    /// FLUSHDB.
    pub(super) fn flush(&mut self) -> Output {
        if !self.data.is_empty() {
            self.removed_at = self.version;
        }
        self.data.clear();
        self.deadlines.clear();
        Output::Ok
    }

    /// Remove every key past its deadline at `now`; how many.
    pub(super) fn purge(&mut self, now: Millis) -> usize {
        let mut purged = 0;
        while let Some((at, _)) = self.deadlines.first() {
            if *at >= now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.data.remove(&*key);
                self.removed_at = self.version;
                purged += 1;
            }
        }
        purged
    }
}
