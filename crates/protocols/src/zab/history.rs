//! Zxids and the history: the pure, deterministic part of ZAB.
//!
//! A zxid is `(epoch, counter)`, ordered lexicographically (Zab, DSN 2011,
//! §III: "the zxid of a transaction ... is a pair ⟨e, c⟩"). The leader of
//! epoch `e` numbers its proposals `(e, 1), (e, 2), ...`, so the proposals of
//! one epoch in any node's history are a prefix of what that epoch's leader
//! proposed. With synchronisation always leaving a follower with exactly the
//! leader's history, that gives the *history matching* property the sync
//! phase relies on: two histories that contain the same zxid are equal up to
//! it. A history is therefore summarised by the last zxid of each epoch it
//! holds ([`History::summary`]), and a leader finds the longest prefix it
//! shares with a follower from that summary alone ([`History::sync_point`]).
//!
//! Positions: every proposal also carries its `index`, its 1-based position in
//! the history. Synchronisation makes positions agree across nodes (the
//! checkers' `Observation::Apply` index).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A transaction id: `(epoch, counter)`, compared epoch first.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Zxid {
    pub epoch: u64,
    pub counter: u64,
}

impl Zxid {
    /// Before every proposal: the zxid of the empty history.
    pub const ZERO: Zxid = Zxid { epoch: 0, counter: 0 };

    pub fn new(epoch: u64, counter: u64) -> Zxid {
        Zxid { epoch, counter }
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.counter)
    }
}

/// One transaction of the history: its zxid, its position and its command.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal<C> {
    pub zxid: Zxid,
    pub index: u64,
    pub command: C,
}

/// Bytes a proposal adds to its command: the zxid and the index.
pub const PROPOSAL_OVERHEAD_BYTES: usize = 32;

impl<C> Proposal<C> {
    /// Approximate encoded size, for batching by bytes: the command by
    /// `command_bytes` ([`StateMachine::command_bytes`]) plus the zxid and
    /// index around it.
    ///
    /// [`StateMachine::command_bytes`]: quorum_core::StateMachine::command_bytes
    pub fn approx_bytes(&self, command_bytes: impl Fn(&C) -> usize) -> usize {
        command_bytes(&self.command).saturating_add(PROPOSAL_OVERHEAD_BYTES)
    }
}

impl<C: fmt::Debug> fmt::Debug for Proposal<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}@{} {:?}", self.zxid, self.index, self.command)
    }
}

/// The proposals a node holds after its base: the point up to which
/// everything is folded into the state machine's snapshot.
///
/// Invariant: entries have indexes `base_index + 1 ..` without gaps and
/// strictly increasing zxids, all above `base_zxid`.
#[derive(Clone, PartialEq, Eq)]
pub struct History<C> {
    base_zxid: Zxid,
    base_index: u64,
    entries: Vec<Proposal<C>>,
}

impl<C: Clone> History<C> {
    /// An empty history.
    pub fn new() -> History<C> {
        History { base_zxid: Zxid::ZERO, base_index: 0, entries: Vec::new() }
    }

    /// A history whose first `base_index` proposals (up to `base_zxid`) are
    /// folded into a snapshot, followed by `entries`.
    pub fn from_snapshot(base_zxid: Zxid, base_index: u64, entries: Vec<Proposal<C>>) -> History<C> {
        let mut history = History { base_zxid, base_index, entries: Vec::new() };
        for proposal in entries {
            history.append(proposal);
        }
        history
    }

    pub fn base_zxid(&self) -> Zxid {
        self.base_zxid
    }

    pub fn base_index(&self) -> u64 {
        self.base_index
    }

    pub fn entries(&self) -> &[Proposal<C>] {
        &self.entries
    }

    pub fn last_zxid(&self) -> Zxid {
        self.entries.last().map_or(self.base_zxid, |p| p.zxid)
    }

    pub fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    /// The proposal at position `index`, if it is held (not folded, not beyond).
    pub fn get(&self, index: u64) -> Option<&Proposal<C>> {
        let offset = index.checked_sub(self.base_index + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// The position of `zxid`: `Some(base_index)` for the base itself.
    pub fn index_of(&self, zxid: Zxid) -> Option<u64> {
        if zxid == self.base_zxid {
            return Some(self.base_index);
        }
        let at = self.entries.binary_search_by_key(&zxid, |p| p.zxid).ok()?;
        Some(self.entries[at].index)
    }

    /// Whether the history holds `zxid` (its base counts).
    pub fn contains(&self, zxid: Zxid) -> bool {
        self.index_of(zxid).is_some()
    }

    /// Append the next proposal. Panics unless it follows the last one.
    pub fn append(&mut self, proposal: Proposal<C>) {
        assert_eq!(proposal.index, self.last_index() + 1, "positions are gap-free");
        assert!(proposal.zxid > self.last_zxid(), "zxids increase along a history");
        assert!(proposal.zxid.counter > 0, "counters start at 1");
        self.entries.push(proposal);
    }

    /// Drop every proposal after `zxid` (TRUNC). Panics unless `zxid` is held.
    pub fn truncate_after(&mut self, zxid: Zxid) {
        let index = self.index_of(zxid).expect("truncate only to a zxid the history holds");
        self.entries.truncate((index - self.base_index) as usize);
        assert_eq!(self.last_zxid(), zxid);
    }

    /// Fold everything up to position `index` into the base (after a snapshot).
    pub fn compact_to(&mut self, index: u64) {
        assert!(index >= self.base_index && index <= self.last_index(), "compact within the history");
        if index == self.base_index {
            return;
        }
        let cut = (index - self.base_index) as usize;
        self.base_zxid = self.entries[cut - 1].zxid;
        self.base_index = index;
        self.entries.drain(..cut);
    }

    /// The proposals after position `index`, at most `max` of them.
    pub fn after_index(&self, index: u64, max: usize) -> Vec<Proposal<C>> {
        let from = index.saturating_sub(self.base_index) as usize;
        self.entries.iter().skip(from).take(max).cloned().collect()
    }

    /// The proposals after position `index`: at most `max` of them and, past
    /// the first, no more than `bytes_max` by [`Proposal::approx_bytes`] (a
    /// proposal larger than that goes alone).
    pub fn after_index_bounded(
        &self,
        index: u64,
        max: usize,
        bytes_max: usize,
        command_bytes: impl Fn(&C) -> usize,
    ) -> Vec<Proposal<C>> {
        let from = index.saturating_sub(self.base_index) as usize;
        let sizes = self.entries.iter().skip(from).map(|p| p.approx_bytes(&command_bytes));
        let len = crate::batch::fit(sizes, max, bytes_max);
        self.entries.iter().skip(from).take(len).cloned().collect()
    }

    /// The last counter of `epoch` known exactly: from held entries, or the
    /// base if the base is in `epoch` and no entry is. `None`: unknown (the
    /// epoch is folded into the snapshot or absent).
    pub fn last_in_epoch(&self, epoch: u64) -> Option<u64> {
        let held = self.entries.iter().rev().find(|p| p.zxid.epoch == epoch).map(|p| p.zxid.counter);
        held.or(
            (self.base_zxid.epoch == epoch && self.base_zxid != Zxid::ZERO).then_some(self.base_zxid.counter)
        )
    }

    /// The last zxid of every epoch held, preceded by the base: enough for a
    /// leader to find the longest shared prefix (history matching).
    pub fn summary(&self) -> Vec<Zxid> {
        let mut summary = vec![self.base_zxid];
        for proposal in &self.entries {
            match summary.last_mut() {
                Some(last) if last.epoch == proposal.zxid.epoch => *last = proposal.zxid,
                _ => summary.push(proposal.zxid),
            }
        }
        summary
    }

    /// Where a follower with `summary` shares this history: the highest zxid
    /// both hold. `None` if that point is folded into this node's snapshot
    /// (or cannot be found above it): the follower needs a SNAP.
    pub fn sync_point(&self, summary: &[Zxid]) -> Option<Zxid> {
        let mut common = Zxid::ZERO;
        for theirs in summary {
            let Some(ours) = self.last_in_epoch(theirs.epoch) else { continue };
            let shared = theirs.counter.min(ours);
            if shared > 0 {
                common = common.max(Zxid::new(theirs.epoch, shared));
            }
        }
        (common >= self.base_zxid && self.contains(common)).then_some(common)
    }

    /// Check the structural invariant (for `invariants()`).
    pub fn check(&self) {
        let mut zxid = self.base_zxid;
        for (offset, proposal) in self.entries.iter().enumerate() {
            assert_eq!(proposal.index, self.base_index + 1 + offset as u64, "history positions are gap-free");
            assert!(proposal.zxid > zxid, "history zxids strictly increase");
            zxid = proposal.zxid;
        }
    }
}

impl<C: Clone> Default for History<C> {
    fn default() -> Self {
        History::new()
    }
}

impl<C: fmt::Debug> fmt::Debug for History<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={:?}@{} entries={:?}", self.base_zxid, self.base_index, self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn history(zxids: &[(u64, u64)]) -> History<u64> {
        let mut h = History::new();
        for (i, &(e, c)) in zxids.iter().enumerate() {
            h.append(Proposal { zxid: Zxid::new(e, c), index: i as u64 + 1, command: e * 100 + c });
        }
        h
    }

    #[test]
    fn zxids_order_epoch_first() {
        assert!(Zxid::new(2, 1) > Zxid::new(1, 99));
        assert!(Zxid::new(1, 2) > Zxid::new(1, 1));
        assert!(Zxid::ZERO < Zxid::new(0, 1));
    }

    #[test]
    fn summary_names_the_last_zxid_of_each_epoch() {
        let h = history(&[(1, 1), (1, 2), (3, 1), (3, 2), (3, 3)]);
        assert_eq!(h.summary(), vec![Zxid::ZERO, Zxid::new(1, 2), Zxid::new(3, 3)]);
    }

    #[test]
    fn sync_point_is_the_longest_shared_prefix() {
        let leader = history(&[(1, 1), (1, 2), (3, 1)]);
        // Behind: DIFF from its last zxid.
        assert_eq!(leader.sync_point(&history(&[(1, 1)]).summary()), Some(Zxid::new(1, 1)));
        // Ahead within epoch 1, diverged in epoch 2: TRUNC to 1:2.
        let diverged = history(&[(1, 1), (1, 2), (1, 3), (2, 1)]);
        assert_eq!(leader.sync_point(&diverged.summary()), Some(Zxid::new(1, 2)));
        // Diverged before the leader's 1:2 (never had it): TRUNC to 1:1, not 1:2.
        let short = history(&[(1, 1), (2, 1)]);
        assert_eq!(leader.sync_point(&short.summary()), Some(Zxid::new(1, 1)));
        assert_eq!(leader.sync_point(&History::<u64>::new().summary()), Some(Zxid::ZERO));
    }

    #[test]
    fn sync_point_below_the_snapshot_asks_for_snap() {
        let mut leader = history(&[(1, 1), (1, 2), (3, 1)]);
        leader.compact_to(2);
        assert_eq!(leader.base_zxid(), Zxid::new(1, 2));
        assert_eq!(leader.sync_point(&history(&[(1, 1)]).summary()), None);
        assert_eq!(leader.sync_point(&history(&[(1, 1), (1, 2)]).summary()), Some(Zxid::new(1, 2)));
    }

    #[test]
    fn truncate_and_compact_keep_positions() {
        let mut h = history(&[(1, 1), (1, 2), (2, 1), (2, 2)]);
        h.truncate_after(Zxid::new(2, 1));
        assert_eq!(h.last_index(), 3);
        h.compact_to(2);
        assert_eq!(h.get(3).map(|p| p.zxid), Some(Zxid::new(2, 1)));
        assert_eq!(h.get(2), None, "folded into the snapshot");
        assert_eq!(h.index_of(Zxid::new(1, 2)), Some(2), "the base is held");
        h.check();
    }

    /// A history built from a sequence of epochs, each leader proposing a
    /// prefix of its own sequence: what ZAB's histories look like.
    fn arb_history() -> impl Strategy<Value = Vec<(u64, u64)>> {
        proptest::collection::vec((1u64..5, 1u64..4), 0..5).prop_map(|mut runs| {
            runs.sort_by_key(|r| r.0);
            runs.dedup_by_key(|r| r.0);
            runs.into_iter().flat_map(|(e, n)| (1..=n).map(move |c| (e, c))).collect()
        })
    }

    proptest! {
        /// Whatever two histories look like, the sync point is held by both
        /// and no later zxid is.
        #[test]
        fn sync_point_is_the_highest_zxid_held_by_both(a in arb_history(), b in arb_history()) {
            let (leader, follower) = (history(&a), history(&b));
            let point = leader.sync_point(&follower.summary()).expect("no snapshot: always found");
            prop_assert!(leader.contains(point));
            prop_assert!(follower.contains(point));
            for zxid in b.iter().map(|&(e, c)| Zxid::new(e, c)).filter(|z| leader.contains(*z)) {
                prop_assert!(zxid <= point);
            }
        }
    }
}
