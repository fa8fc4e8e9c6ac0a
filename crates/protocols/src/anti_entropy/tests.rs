use proptest::prelude::*;

use super::*;

const SHAPE: Shape = Shape { fanout: 4, depth: 3 };

fn space(keys: u64) -> KeySpace {
    (0..keys).map(|k| (k, k * 10)).collect()
}

/// `b` is `a` with `changed` keys given new values and `missing` keys gone.
fn diverged(a: &KeySpace, changed: &[u64], missing: &[u64]) -> KeySpace {
    let mut b = a.clone();
    for k in changed {
        b.insert(*k, 1_000_000 + *k);
    }
    for k in missing {
        b.remove(k);
    }
    b
}

#[test]
fn equal_replicas_cost_one_hash() {
    let (mut a, mut b) = (space(100), space(100));
    let cost = reconcile(&mut a, &mut b, SHAPE);
    assert_eq!((cost.round_trips, cost.hashes_sent, cost.entries_sent), (1, 1, 0));
}

/// One differing key: `depth` round trips find it with `1 + depth ×
/// fanout` hashes, one more carries the entries, and the replicas end
/// equal.
#[test]
fn one_differing_key_costs_depth_round_trips_and_depth_times_fanout_hashes() {
    let shape = Shape { fanout: 16, depth: 3 };
    let mut a = space(10_000);
    let mut b = diverged(&a, &[4242], &[]);
    let cost = reconcile(&mut a, &mut b, shape);
    assert_eq!(cost.round_trips, u64::from(shape.depth) + 1);
    assert_eq!(cost.hashes_sent, 1 + u64::from(shape.depth * shape.fanout));
    assert_eq!(cost.leaves_differing, 1);
    assert_eq!(a, b);
    assert_eq!(a[&4242], 1_000_000 + 4242, "the larger value wins");
}

proptest! {
    /// Whatever differs (changed values, keys missing on either side), the
    /// exchange leaves both replicas equal to the join of the two.
    #[test]
    fn reconciliation_leaves_both_replicas_equal(
        changed in proptest::collection::vec(0..500u64, 0..40),
        missing in proptest::collection::vec(0..500u64, 0..40),
    ) {
        let original = space(500);
        let (mut a, mut b) = (original.clone(), diverged(&original, &changed, &missing));
        let (mut a2, mut b2) = (a.clone(), b.clone());
        reconcile(&mut a, &mut b, SHAPE);
        prop_assert_eq!(&a, &b);
        full_state_exchange(&mut a2, &mut b2);
        prop_assert_eq!(&a, &a2, "the tree's result is the full exchange's");
    }
}

/// The negative control: a tree whose leaves hash keys but not values
/// cannot see a changed value, and the replicas stay apart.
#[test]
fn a_tree_blind_to_values_misses_a_changed_value() {
    let a = space(100);
    let b = diverged(&a, &[7], &[]);
    let blind = |key: u64, _value: u64| mix(key);
    assert_eq!(
        MerkleTree::build_with(&a, SHAPE, blind).root(),
        MerkleTree::build_with(&b, SHAPE, blind).root()
    );
    assert_ne!(MerkleTree::build(&a, SHAPE).root(), MerkleTree::build(&b, SHAPE).root());
}

#[test]
fn bad_shapes_are_refused() {
    assert!(Shape { fanout: 1, depth: 3 }.validate().is_err());
    assert!(Shape { fanout: 16, depth: 0 }.validate().is_err());
    assert!(Shape { fanout: 16, depth: 7 }.validate().is_err());
    assert!(Shape { fanout: 16, depth: 5 }.validate().is_ok());
}
