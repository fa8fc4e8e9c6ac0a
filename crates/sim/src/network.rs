//! The network model: per-link latency, loss, duplication, extra delay (and
//! with it reordering), partitions (directed blocked links).

use std::collections::BTreeSet;

use quorum_core::{Micros, NodeId, Rng};

use crate::faults::Fault;

pub(crate) struct Network {
    latency_min_us: u64,
    latency_max_us: u64,
    /// Directed links that drop everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
    loss: f64,
    dup: f64,
    extra_delay_us: u64,
    pub(crate) rng: Rng,
}

/// What happens to one message.
pub(crate) enum Fate {
    Dropped(&'static str),
    /// Delivered after the first latency, and again after the second if duplicated.
    Delivered(Micros, Option<Micros>),
}

impl Network {
    pub(crate) fn new(latency_min_us: u64, latency_max_us: u64, rng: Rng) -> Network {
        Network {
            latency_min_us,
            latency_max_us,
            blocked: BTreeSet::new(),
            loss: 0.0,
            dup: 0.0,
            extra_delay_us: 0,
            rng,
        }
    }

    /// One draw of a link's latency (clients' links use it too).
    pub(crate) fn latency(&mut self) -> Micros {
        let base = self.rng.range(self.latency_min_us, self.latency_max_us + 1);
        let extra = if self.extra_delay_us > 0 { self.rng.range(0, self.extra_delay_us + 1) } else { 0 };
        Micros(base + extra)
    }

    /// Whether `from` cannot reach `to` (a partition).
    pub(crate) fn blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// The directed links that drop everything now, as (from, to).
    pub(crate) fn blocked_links(&self) -> Vec<(u32, u32)> {
        self.blocked.iter().map(|(from, to)| (from.0, to.0)).collect()
    }

    pub(crate) fn route(&mut self, from: NodeId, to: NodeId) -> Fate {
        if self.blocked.contains(&(from, to)) {
            return Fate::Dropped("partition");
        }
        if from != to && self.rng.chance(self.loss) {
            return Fate::Dropped("loss");
        }
        let first = self.latency();
        let second = (from != to && self.rng.chance(self.dup)).then(|| self.latency());
        Fate::Delivered(first, second)
    }

    /// Apply a network fault; node faults are the world's business.
    pub(crate) fn apply(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition { groups } => {
                for (i, a) in groups.iter().enumerate() {
                    for (j, b) in groups.iter().enumerate() {
                        if i != j {
                            for x in a {
                                for y in b {
                                    self.blocked.insert((*x, *y));
                                }
                            }
                        }
                    }
                }
            }
            Fault::OneWay { from, to } => {
                for x in from {
                    for y in to {
                        self.blocked.insert((*x, *y));
                    }
                }
            }
            Fault::Heal => self.blocked.clear(),
            Fault::Loss { probability } => self.loss = *probability,
            Fault::Dup { probability } => self.dup = *probability,
            Fault::Delay { extra_ms } => self.extra_delay_us = extra_ms * 1000,
            _ => {}
        }
    }

    /// Heal everything: partitions, loss, duplication, extra delay.
    pub(crate) fn heal_all(&mut self) {
        self.blocked.clear();
        self.loss = 0.0;
        self.dup = 0.0;
        self.extra_delay_us = 0;
    }
}
