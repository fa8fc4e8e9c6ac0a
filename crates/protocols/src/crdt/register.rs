//! The last-writer-wins register (Shapiro et al.'s report, LWW-Register).

use std::fmt::Debug;

use quorum_core::NodeId;
use serde::{Deserialize, Serialize};

use super::Lattice;

/// A register whose join keeps the write with the greatest stamp
/// `(timestamp, node)`; equal stamps (which a correct writer never makes)
/// are ordered by value, so the join stays a total order's maximum and the
/// laws hold on any input. Concurrent writes are not kept: the one with the
/// lower stamp is lost by design (compare the MV-Register).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LwwRegister<T: Ord> {
    /// `None`: never written (the bottom).
    write: Option<(u64, NodeId, T)>,
}

impl<T: Ord + Clone + Debug + Default> LwwRegister<T> {
    /// Replica `node` writes `value` at `timestamp` (its clock, which the
    /// caller keeps above every stamp it has seen); returns the δ-state.
    pub fn write(&mut self, timestamp: u64, node: NodeId, value: T) -> LwwRegister<T> {
        let delta = LwwRegister { write: Some((timestamp, node, value)) };
        self.join(&delta);
        delta
    }

    pub fn value(&self) -> Option<&T> {
        self.write.as_ref().map(|(_, _, v)| v)
    }

    /// The winning write's timestamp (0 if never written).
    pub fn timestamp(&self) -> u64 {
        self.write.as_ref().map_or(0, |(t, _, _)| *t)
    }
}

impl<T: Ord + Clone + Debug + Default> Lattice for LwwRegister<T> {
    fn join(&mut self, other: &LwwRegister<T>) {
        if other.write > self.write {
            self.write.clone_from(&other.write);
        }
    }

    fn leq(&self, other: &LwwRegister<T>) -> bool {
        self.write <= other.write
    }
}
