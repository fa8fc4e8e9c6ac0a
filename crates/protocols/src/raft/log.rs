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

/// What an entry adds to a message beyond its command, estimated high:
/// index, term, request id, the payload's tag and the command's length
/// prefix (postcard's varints take 10–30 bytes for realistic values), with
/// room left for the message's own few fields.
pub const ENTRY_OVERHEAD_BYTES: usize = 48;

impl<C> Entry<C> {
    /// Approximate encoded size, for bounding a message by bytes;
    /// `command_bytes` sizes a command ([`StateMachine::command_bytes`]).
    ///
    /// [`StateMachine::command_bytes`]: quorum_core::StateMachine::command_bytes
    pub fn approx_bytes(&self, command_bytes: impl Fn(&C) -> usize) -> usize {
        let payload = match &self.payload {
            Payload::Noop => 0,
            Payload::Command { command, .. } => command_bytes(command),
            Payload::Membership(m) => 8 * (m.voters.len() + m.learners.len()),
        };
        ENTRY_OVERHEAD_BYTES.saturating_add(payload)
    }
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

    /// The entries from `from` on that one message carries (clones): at
    /// most `entries_max`, and only while their approximate size
    /// ([`Entry::approx_bytes`] by `command_bytes`) stays within
    /// `bytes_max` — but always the first, however large, so an entry over
    /// the limit travels alone instead of never (etcd's `limitSize`). Empty
    /// only when no entry is retained from `from` on.
    pub fn slice(
        &self,
        from: u64,
        entries_max: usize,
        bytes_max: usize,
        command_bytes: impl Fn(&C) -> usize,
    ) -> Vec<Entry<C>> {
        let start = self.offset(from);
        let len = self.batch_len(from, entries_max, bytes_max, command_bytes);
        let batch = self.entries[start..start + len].to_vec();
        assert!(batch.len() <= entries_max, "a batch respects the count limit");
        assert!(
            !batch.is_empty() || start == self.entries.len(),
            "a batch holds an entry when one is retained"
        );
        batch
    }

    /// How many entries [`Log::slice`] would return, without cloning them.
    pub fn batch_len(
        &self,
        from: u64,
        entries_max: usize,
        bytes_max: usize,
        command_bytes: impl Fn(&C) -> usize,
    ) -> usize {
        assert!(entries_max > 0, "Config::validate rejects a zero count limit");
        assert!(bytes_max > 0, "Config::validate rejects a zero byte limit");
        let sizes = self.entries[self.offset(from)..].iter().map(|e| e.approx_bytes(&command_bytes));
        crate::batch::fit(sizes, entries_max, bytes_max)
    }

    /// Position of `from` in the retained entries (their length if past the
    /// end).
    fn offset(&self, from: u64) -> usize {
        assert!(from > self.snapshot_index, "slice of a compacted prefix");
        ((from - self.first_index()) as usize).min(self.entries.len())
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
        assert_eq!(log.slice(3, 2, usize::MAX, |_| 0).len(), 2);
        log.compact(9, 4);
        assert_eq!((log.last_index(), log.last_term()), (9, 4));
        assert!(log.entries().is_empty());
    }

    /// A log of commands whose size is their value (`command_bytes` below).
    fn log_of_sizes(sizes: &[u64]) -> Log<u64> {
        let mut log = Log::new();
        for (i, size) in sizes.iter().enumerate() {
            let id = RequestId::new(1, i as u64 + 1);
            log.append(Entry {
                index: i as u64 + 1,
                term: 1,
                payload: Payload::Command { id, command: *size },
            });
        }
        log
    }

    fn command_bytes(command: &u64) -> usize {
        *command as usize
    }

    fn indexes(batch: &[Entry<u64>]) -> Vec<u64> {
        batch.iter().map(|e| e.index).collect()
    }

    #[test]
    fn slice_stops_before_the_byte_limit_would_be_passed() {
        let entry = |size: usize| ENTRY_OVERHEAD_BYTES + size;
        let log = log_of_sizes(&[100, 100, 100, 100]);
        // Exactly three entries fit; a fourth would pass the limit by a byte.
        let limit = 3 * entry(100);
        assert_eq!(indexes(&log.slice(1, 64, limit, command_bytes)), [1, 2, 3]);
        assert_eq!(indexes(&log.slice(1, 64, limit - 1, command_bytes)), [1, 2]);
        assert_eq!(indexes(&log.slice(2, 64, limit, command_bytes)), [2, 3, 4]);
        assert_eq!(log.batch_len(1, 64, limit, command_bytes), 3);
        // Unknown sizes (0) leave only the count limit and the overhead.
        assert_eq!(log.slice(1, 64, limit, |_| 0).len(), 4);
    }

    #[test]
    fn slice_always_carries_one_entry_even_over_the_byte_limit() {
        let log = log_of_sizes(&[5000, 10, 10, 7000]);
        assert_eq!(indexes(&log.slice(1, 64, 1000, command_bytes)), [1], "the oversized entry travels alone");
        assert_eq!(indexes(&log.slice(2, 64, 1000, command_bytes)), [2, 3], "and stops its successors");
        assert_eq!(indexes(&log.slice(4, 64, 1, command_bytes)), [4]);
        assert!(log.slice(5, 64, 1000, command_bytes).is_empty(), "nothing past the end");
        // Sizes that would overflow a sum saturate rather than wrap.
        let huge = log_of_sizes(&[u64::MAX, u64::MAX]);
        assert_eq!(huge.slice(1, 64, usize::MAX - 1, command_bytes).len(), 1);
    }

    #[test]
    fn slice_respects_the_count_limit_under_a_loose_byte_limit() {
        let log = log_of_sizes(&[1; 10]);
        assert_eq!(indexes(&log.slice(3, 4, usize::MAX, command_bytes)), [3, 4, 5, 6]);
        assert_eq!(indexes(&log.slice(9, 4, usize::MAX, command_bytes)), [9, 10]);
        assert_eq!(indexes(&log.slice(1, 1, usize::MAX, command_bytes)), [1]);
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
