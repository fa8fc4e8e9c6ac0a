//! The replicated log (Raft §5.3): entries at gap-free indexes `1..`, each
//! tagged with the term of the leader that created it. A prefix may be
//! compacted into a snapshot (§7): then only `(snapshot_index,
//! snapshot_term)` is remembered of it, and the retained entries are
//! `[snapshot_index + 1, last_index]`.
//!
//! The Log Matching property (§5.3) is what makes the consistency check of
//! AppendEntries enough: if two logs hold an entry with the same index and
//! term, they are identical up to it.

use std::fmt;

use quorum_core::{NodeId, RequestId};
use serde::{Deserialize, Serialize};

use super::Membership;

/// What an entry carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload<C> {
    /// The empty entry a leader appends at the start of its term (§8), so
    /// that it commits an entry of its own term quickly.
    Noop,
    /// A client command, with the request that proposed it (client
    /// sessions, dissertation §6.3).
    Command { id: RequestId, command: C },
    /// A new cluster configuration (dissertation §4.1, one server at a
    /// time). It takes effect as soon as it is in the log.
    Membership(Membership),
}

impl<C: fmt::Debug> fmt::Debug for Payload<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Noop => write!(f, "noop"),
            Payload::Command { id, command } => write!(f, "{id} {command:?}"),
            Payload::Membership(m) => write!(f, "{m:?}"),
        }
    }
}

/// One log entry. Debug form `index/term payload`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C> {
    pub index: u64,
    pub term: u64,
    pub payload: Payload<C>,
}

impl<C: fmt::Debug> fmt::Debug for Entry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {:?}", self.index, self.term, self.payload)
    }
}

/// The in-memory log: the retained suffix after a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log<C> {
    snapshot_index: u64,
    snapshot_term: u64,
    /// Invariant: `entries[i].index == snapshot_index + 1 + i`.
    entries: Vec<Entry<C>>,
}

impl<C: Clone> Log<C> {
    pub fn new() -> Log<C> {
        Log { snapshot_index: 0, snapshot_term: 0, entries: Vec::new() }
    }

    /// A log whose prefix up to `index` is compacted, holding `entries`
    /// after it.
    pub fn restored(index: u64, term: u64, entries: Vec<Entry<C>>) -> Log<C> {
        let log = Log { snapshot_index: index, snapshot_term: term, entries };
        log.check();
        log
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    pub fn snapshot_term(&self) -> u64 {
        self.snapshot_term
    }

    /// The first retained index (one past the snapshot).
    pub fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// The term of the entry at `index`, if known (retained or the snapshot's
    /// last entry; index 0 has term 0).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry<C>> {
        if index <= self.snapshot_index || index > self.last_index() {
            return None;
        }
        self.entries.get((index - self.first_index()) as usize)
    }

    /// The retained entries, in index order.
    pub fn entries(&self) -> &[Entry<C>] {
        &self.entries
    }

    /// Up to `max` entries from `from` on (clones, for a message).
    pub fn slice(&self, from: u64, max: usize) -> Vec<Entry<C>> {
        assert!(from > self.snapshot_index, "slice of a compacted prefix");
        let start = ((from - self.first_index()) as usize).min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        self.entries[start..end].to_vec()
    }

    /// Append one entry at the end.
    pub fn append(&mut self, entry: Entry<C>) {
        assert_eq!(entry.index, self.last_index() + 1, "log entries are gap-free");
        assert!(entry.term >= self.last_term(), "terms never decrease along the log");
        self.entries.push(entry);
    }

    /// Drop every entry after `index` (keep `[first, index]`).
    pub fn truncate_after(&mut self, index: u64) {
        assert!(index >= self.snapshot_index, "cannot truncate into the snapshot");
        self.entries.truncate((index - self.snapshot_index) as usize);
    }

    /// Compact the prefix up to `index` (whose term is `term`) into a
    /// snapshot. Entries after `index` are kept when they follow it;
    /// if `index` is past the end, the log becomes empty.
    pub fn compact(&mut self, index: u64, term: u64) {
        assert!(index >= self.snapshot_index, "snapshots move forward");
        if self.term_at(index) == Some(term) {
            let drop = (index - self.snapshot_index) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.check();
    }

    /// Raft §5.4.1: whether a log ending at `(last_index, last_term)` is at
    /// least as up-to-date as this one.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// A follower's hint after failing the consistency check at
    /// `prev_index`: `(conflict_term, conflict_index)` where conflict_index
    /// is the first index of `conflict_term` in this log, or one past the end
    /// if the log is too short (`conflict_term` then `None`).
    pub fn conflict_hint(&self, prev_index: u64) -> (Option<u64>, u64) {
        let Some(term) = self.term_at(prev_index).filter(|_| prev_index <= self.last_index()) else {
            return (None, self.last_index() + 1);
        };
        let mut first = prev_index;
        while first > self.first_index() && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        (Some(term), first.max(self.first_index()))
    }

    /// The last retained index holding an entry of `term`.
    pub fn last_index_of_term(&self, term: u64) -> Option<u64> {
        self.entries.iter().rev().find(|e| e.term == term).map(|e| e.index)
    }

    /// Assert the structural invariants.
    pub fn check(&self) {
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(e.index, self.snapshot_index + 1 + i as u64, "log indexes are gap-free");
        }
        if let Some(first) = self.entries.first() {
            assert!(first.term >= self.snapshot_term, "terms never decrease along the log");
        }
        for pair in self.entries.windows(2) {
            assert!(pair[0].term <= pair[1].term, "terms never decrease along the log");
        }
    }
}

impl<C: Clone> Default for Log<C> {
    fn default() -> Self {
        Log::new()
    }
}

/// Parse `2` or `n2` as a node id (operator commands).
pub fn parse_node(word: &str) -> Result<NodeId, String> {
    word.trim_start_matches('n').parse::<u32>().map(NodeId).map_err(|_| format!("'{word}' is not a node id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(terms: &[u64]) -> Log<u64> {
        let mut log = Log::new();
        for (i, t) in terms.iter().enumerate() {
            log.append(Entry { index: i as u64 + 1, term: *t, payload: Payload::Noop });
        }
        log
    }

    #[test]
    fn terms_and_indexes_around_a_snapshot() {
        let mut log = log_of(&[1, 1, 2, 3, 3]);
        assert_eq!((log.last_index(), log.last_term()), (5, 3));
        log.compact(2, 1);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.term_at(1), None);
        assert_eq!(log.term_at(4), Some(3));
        assert_eq!(log.slice(3, 2).len(), 2);
        log.compact(9, 4);
        assert_eq!((log.last_index(), log.last_term()), (9, 4));
        assert!(log.entries().is_empty());
    }

    #[test]
    fn conflict_hint_names_the_first_index_of_the_conflicting_term() {
        let log = log_of(&[1, 2, 2, 2, 3]);
        assert_eq!(log.conflict_hint(4), (Some(2), 2));
        assert_eq!(log.conflict_hint(9), (None, 6));
        assert_eq!(log.last_index_of_term(2), Some(4));
        assert_eq!(log.last_index_of_term(7), None);
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_of(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(3, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(9, 1));
    }
}
