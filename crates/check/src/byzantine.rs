//! The interactive consistency conditions of the Byzantine generals
//! (Lamport, Shostak, Pease, "The Byzantine Generals Problem", TOPLAS 1982,
//! §1), judged over the loyal generals only:
//!
//! - **IC1**: all loyal lieutenants obey the same order;
//! - **IC2**: if the commander is loyal, every loyal lieutenant obeys the
//!   order he sends.
//!
//! Fed with the `Order` (a commander's own order) and `Obey` (a
//! lieutenant's) observations of every node; [`OrderLog::check`] is told
//! which nodes were traitors, and ignores what they observed. A lieutenant
//! that obeys nothing for a commander by the end is not judged here (the
//! protocols decide at a fixed round, so Termination is the consensus
//! checker's).

use std::collections::BTreeMap;

use quorum_core::{NodeId, Observation};
use serde::Serialize;

/// A broken condition, for one commander's order in one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum IcViolation {
    /// Loyal lieutenants `a` and `b` obeyed different values (IC1).
    Ic1 { instance: u64, commander: NodeId, a: (NodeId, u64), b: (NodeId, u64) },
    /// Loyal `lieutenant` obeyed `obeyed`, not loyal `commander`'s `order`
    /// (IC2).
    Ic2 { instance: u64, commander: NodeId, order: u64, lieutenant: NodeId, obeyed: u64 },
}

impl IcViolation {
    /// Whether it breaks IC1 (else IC2).
    pub fn is_ic1(&self) -> bool {
        matches!(self, IcViolation::Ic1 { .. })
    }
}

impl std::fmt::Display for IcViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IcViolation::Ic1 { instance, commander, a, b } => write!(
                f,
                "IC1: instance {instance}, commander {commander}: {} obeyed {}, {} obeyed {}",
                a.0, a.1, b.0, b.1
            ),
            IcViolation::Ic2 { instance, commander, order, lieutenant, obeyed } => write!(
                f,
                "IC2: instance {instance}: loyal commander {commander} ordered {order}, loyal {lieutenant} obeyed {obeyed}"
            ),
        }
    }
}

/// Orders and obediences as the protocols report them.
#[derive(Clone, Debug, Default)]
pub struct OrderLog {
    /// (instance, commander) -> the order the commander says it sent.
    orders: BTreeMap<(u64, NodeId), u64>,
    /// (instance, commander) -> lieutenant -> the first value it obeyed.
    obeyed: BTreeMap<(u64, NodeId), BTreeMap<NodeId, u64>>,
}

impl OrderLog {
    pub fn new() -> OrderLog {
        OrderLog::default()
    }

    /// Feed an observation of `node` (`Order` and `Obey`; others ignored).
    pub fn observe(&mut self, node: NodeId, observation: &Observation) {
        match *observation {
            Observation::Order { instance, value } => {
                self.orders.entry((instance, node)).or_insert(value);
            }
            Observation::Obey { instance, commander, value } => {
                self.obeyed.entry((instance, commander)).or_default().entry(node).or_insert(value);
            }
            _ => {}
        }
    }

    /// How many (instance, commander) orders some lieutenant obeyed.
    pub fn orders_obeyed(&self) -> usize {
        self.obeyed.len()
    }

    /// Every violation among the loyal (nodes not in `traitors`), by
    /// instance and commander; IC1 once per disagreeing lieutenant (against
    /// the smallest loyal one), IC2 once per disobeying lieutenant.
    pub fn check(&self, traitors: &[NodeId]) -> Vec<IcViolation> {
        let loyal = |n: &NodeId| !traitors.contains(n);
        let mut violations = Vec::new();
        for (&(instance, commander), lieutenants) in &self.obeyed {
            let mut loyal_ones = lieutenants.iter().filter(|(n, _)| loyal(n) && **n != commander);
            let Some((&first, &reference)) = loyal_ones.next() else { continue };
            for (&other, &value) in loyal_ones {
                if value != reference {
                    violations.push(IcViolation::Ic1 {
                        instance,
                        commander,
                        a: (first, reference),
                        b: (other, value),
                    });
                }
            }
            let Some(&order) = self.orders.get(&(instance, commander)).filter(|_| loyal(&commander)) else {
                continue;
            };
            for (&lieutenant, &obeyed) in lieutenants.iter().filter(|(n, _)| loyal(n) && **n != commander) {
                if obeyed != order {
                    violations.push(IcViolation::Ic2 { instance, commander, order, lieutenant, obeyed });
                }
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obey(log: &mut OrderLog, node: u32, commander: u32, value: u64) {
        log.observe(NodeId(node), &Observation::Obey { instance: 0, commander: NodeId(commander), value });
    }

    #[test]
    fn loyal_lieutenants_that_split_break_ic1_and_a_traitors_word_is_not_judged() {
        let mut log = OrderLog::new();
        log.observe(NodeId(0), &Observation::Order { instance: 0, value: 1 });
        obey(&mut log, 1, 0, 1);
        obey(&mut log, 2, 0, 1);
        obey(&mut log, 3, 0, 0);
        let broken = log.check(&[]);
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].is_ic1() && !broken[1].is_ic1());
        assert!(log.check(&[NodeId(3)]).is_empty(), "node 3 is a traitor: its obedience is not judged");
    }

    #[test]
    fn a_traitor_commander_frees_ic2_but_not_ic1() {
        let mut log = OrderLog::new();
        log.observe(NodeId(0), &Observation::Order { instance: 0, value: 1 });
        obey(&mut log, 1, 0, 0);
        obey(&mut log, 2, 0, 0);
        assert_eq!(log.check(&[]).len(), 2, "a loyal commander's order was disobeyed twice");
        assert!(log.check(&[NodeId(0)]).is_empty(), "the commander is a traitor: agreeing is enough");
        obey(&mut log, 3, 0, 1);
        assert!(log.check(&[NodeId(0)]).iter().all(IcViolation::is_ic1));
        assert_eq!(log.orders_obeyed(), 1);
    }
}
