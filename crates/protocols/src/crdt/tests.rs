//! Every CRDT held to the semilattice laws by proptest, over states that
//! three replicas reach by random updates and random merges; the
//! δ-mutator law on every update; and the join of every delta equal to the
//! join of the replicas' states (deltas alone carry everything).

use std::collections::BTreeMap;

use proptest::prelude::*;
use quorum_core::NodeId;

use super::causal::{Causal, DotSet};
use super::*;

/// A type under test: how an update drawn as `(op, arg)` maps onto its
/// δ-mutators. `None`: the update's precondition failed (no change).
trait Subject: Lattice {
    fn update(&mut self, node: NodeId, op: u8, arg: u8) -> Option<Self>;
}

impl Subject for GCounter {
    fn update(&mut self, node: NodeId, _op: u8, arg: u8) -> Option<GCounter> {
        Some(self.increment(node, u64::from(arg % 5) + 1))
    }
}

impl Subject for PnCounter {
    fn update(&mut self, node: NodeId, op: u8, arg: u8) -> Option<PnCounter> {
        let by = i64::from(arg % 5) + 1;
        Some(self.add(node, if op.is_multiple_of(2) { by } else { -by }))
    }
}

impl Subject for GSet<u8> {
    fn update(&mut self, _node: NodeId, _op: u8, arg: u8) -> Option<GSet<u8>> {
        Some(self.add(arg % 8))
    }
}

impl Subject for TwoPhaseSet<u8> {
    fn update(&mut self, _node: NodeId, op: u8, arg: u8) -> Option<TwoPhaseSet<u8>> {
        if op.is_multiple_of(2) {
            Some(self.add(arg % 4))
        } else {
            self.remove(arg % 4)
        }
    }
}

impl Subject for LwwRegister<u8> {
    fn update(&mut self, node: NodeId, op: u8, arg: u8) -> Option<LwwRegister<u8>> {
        Some(self.write(u64::from(arg % 8), node, op % 4))
    }
}

impl Subject for MvRegister<u8> {
    fn update(&mut self, node: NodeId, _op: u8, arg: u8) -> Option<MvRegister<u8>> {
        Some(self.write(node, arg % 4))
    }
}

impl Subject for OrSet<u8> {
    fn update(&mut self, node: NodeId, op: u8, arg: u8) -> Option<OrSet<u8>> {
        Some(if op.is_multiple_of(2) { self.add(node, arg % 4) } else { self.remove(&(arg % 4)) })
    }
}

/// A map of OR-Sets: add to or remove from a key's set, or remove the key.
impl Subject for OrMap<u8, DotMap<u8, DotSet>> {
    fn update(&mut self, node: NodeId, op: u8, arg: u8) -> Option<Self> {
        let (key, element) = (arg % 3, (arg / 3) % 3);
        Some(match op % 3 {
            0 => self.apply(key, |set| set.add_delta(node, element)),
            1 => self.apply(key, |set| set.remove_delta(&element)),
            _ => self.remove_key(&key),
        })
    }
}

/// A grow-only map of G-Counters.
impl Subject for BTreeMap<u8, GCounter> {
    fn update(&mut self, node: NodeId, _op: u8, arg: u8) -> Option<Self> {
        let key = arg % 3;
        let delta = self.entry(key).or_default().increment(node, 1);
        Some(BTreeMap::from([(key, delta)]))
    }
}

#[derive(Clone, Debug)]
enum Step {
    Update { replica: usize, op: u8, arg: u8 },
    Merge { from: usize, to: usize },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => (0..3usize, any::<u8>(), any::<u8>()).prop_map(|(replica, op, arg)| Step::Update { replica, op, arg }),
        1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Merge { from, to }),
    ];
    proptest::collection::vec(step, 0..40)
}

/// Run `steps` on three replicas of `L`, checking the δ-mutator law on
/// every update; then the semilattice laws on the three states, and that
/// the join of every delta is the join of the states.
fn holds<L: Subject>(steps: &[Step]) -> Result<(), String> {
    let mut replicas = [L::default(), L::default(), L::default()];
    let mut deltas = L::default();
    for step in steps {
        match *step {
            Step::Update { replica, op, arg } => {
                let before = replicas[replica].clone();
                if let Some(delta) = replicas[replica].update(NodeId(replica as u32), op, arg) {
                    check_update(&before, &replicas[replica], &delta)?;
                    deltas.join(&delta);
                }
            }
            Step::Merge { from, to } => {
                let source = replicas[from].clone();
                replicas[to].join(&source);
            }
        }
    }
    let [a, b, c] = &replicas;
    check_laws(a, b, c)?;
    check_laws(c, a, b)?;
    let all = a.joined(b).joined(c);
    if all != deltas {
        return Err(format!("deltas joined {deltas:?} differ from the states joined {all:?}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn g_counter_is_a_semilattice(steps in steps()) { holds::<GCounter>(&steps).map_err(TestCaseError::fail)?; }

    #[test]
    fn pn_counter_is_a_semilattice(steps in steps()) { holds::<PnCounter>(&steps).map_err(TestCaseError::fail)?; }

    #[test]
    fn g_set_is_a_semilattice(steps in steps()) { holds::<GSet<u8>>(&steps).map_err(TestCaseError::fail)?; }

    #[test]
    fn two_phase_set_is_a_semilattice(steps in steps()) {
        holds::<TwoPhaseSet<u8>>(&steps).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn lww_register_is_a_semilattice(steps in steps()) {
        holds::<LwwRegister<u8>>(&steps).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mv_register_is_a_semilattice(steps in steps()) {
        holds::<MvRegister<u8>>(&steps).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn or_set_is_a_semilattice(steps in steps()) { holds::<OrSet<u8>>(&steps).map_err(TestCaseError::fail)?; }

    #[test]
    fn or_map_of_or_sets_is_a_semilattice(steps in steps()) {
        holds::<OrMap<u8, DotMap<u8, DotSet>>>(&steps).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn map_of_g_counters_is_a_semilattice(steps in steps()) {
        holds::<BTreeMap<u8, GCounter>>(&steps).map_err(TestCaseError::fail)?;
    }

    /// The causal types keep their invariant: every live dot is in the
    /// causal context.
    #[test]
    fn live_dots_are_always_in_the_context(steps in steps()) {
        let mut sets = [OrSet::<u8>::default(), OrSet::default(), OrSet::default()];
        for step in &steps {
            match *step {
                Step::Update { replica, op, arg } => { sets[replica].update(NodeId(replica as u32), op, arg); }
                Step::Merge { from, to } => { let s = sets[from].clone(); sets[to].join(&s); }
            }
            sets.iter().for_each(Causal::invariants);
        }
    }
}

/// The negative control of the laws: a G-Counter whose join adds the
/// entries (the laboratory's `--bug sum-merge`) is caught, as not
/// idempotent.
#[derive(Clone, Debug, Default, PartialEq)]
struct SumMergeCounter(GCounter);

impl Lattice for SumMergeCounter {
    fn join(&mut self, other: &SumMergeCounter) {
        self.0.join_by_sum(&other.0);
    }
    fn leq(&self, other: &SumMergeCounter) -> bool {
        self.0.leq(&other.0)
    }
}

impl Subject for SumMergeCounter {
    fn update(&mut self, node: NodeId, op: u8, arg: u8) -> Option<SumMergeCounter> {
        self.0.update(node, op, arg).map(SumMergeCounter)
    }
}

#[test]
fn a_join_that_adds_is_caught_as_not_idempotent() {
    let steps = [Step::Update { replica: 0, op: 0, arg: 0 }];
    let broken = holds::<SumMergeCounter>(&steps).unwrap_err();
    assert!(broken.contains("not idempotent"), "{broken}");
    // Its positive twin: the same steps pass with the real join.
    holds::<GCounter>(&steps).unwrap();
}

#[test]
fn a_concurrent_add_wins_over_a_remove() {
    let (a, b) = (NodeId(0), NodeId(1));
    let mut left = OrSet::<u8>::default();
    left.add(a, 7);
    let mut right = left.clone();
    right.remove(&7);
    left.add(a, 7); // concurrent with the remove: a new dot it never saw
    left.join(&right);
    assert!(left.contains(&7), "add wins");
    let mut later = left.clone();
    later.remove(&7); // a remove that has seen every add
    right.join(&later);
    right.add(b, 1);
    right.join(&left);
    assert!(!later.contains(&7));
    // A remove that saw every add of 7 removes it wherever it is joined,
    // even against the (older) state that still holds 7.
    assert_eq!(right.elements().copied().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn concurrent_writes_are_siblings_until_a_write_sees_both() {
    let mut left = MvRegister::<u8>::default();
    let mut right = MvRegister::<u8>::default();
    left.write(NodeId(0), 1);
    right.write(NodeId(1), 2);
    left.join(&right);
    assert_eq!(left.values().into_iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    left.write(NodeId(0), 3);
    right.join(&left);
    assert_eq!(right.values().into_iter().copied().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn a_two_phase_set_never_re_adds() {
    let mut set = TwoPhaseSet::<u8>::default();
    set.add(1);
    assert!(set.remove(1).is_some());
    assert!(set.remove(1).is_none(), "the precondition: only a present element is removed");
    set.add(1);
    assert!(!set.contains(&1), "removed forever");
}

#[test]
fn counters_count_each_increment_once() {
    let mut left = PnCounter::default();
    let mut right = PnCounter::default();
    left.add(NodeId(0), 5);
    right.add(NodeId(1), -2);
    let delta = right.add(NodeId(1), 4);
    left.join(&right);
    left.join(&right);
    left.join(&delta);
    assert_eq!(left.value(), 7);
}

#[test]
fn an_or_map_removes_only_what_it_saw() {
    type Sets = OrMap<u8, DotMap<u8, DotSet>>;
    let mut left = Sets::default();
    left.apply(1, |s| s.add_delta(NodeId(0), 10));
    let mut right = left.clone();
    right.remove_key(&1);
    left.apply(1, |s| s.add_delta(NodeId(0), 11)); // concurrent with the remove
    left.join(&right);
    let set = left.get(&1).expect("the key survives through its new add");
    assert_eq!(set.elements().copied().collect::<Vec<_>>(), vec![11]);
}
