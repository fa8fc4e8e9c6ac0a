//! Anti-entropy by Merkle trees: two replicas of a key space find the keys
//! on which they differ by comparing hashes top-down, so the bytes and
//! round trips they exchange grow with the difference, not with the data
//! (source text, "Gossip Protocols / For Anti-entropy": "each node
//! replicates a key/value data set and uses a Merkle tree to allow
//! differences between keys to be compared efficiently"; Dynamo, DeCandia
//! et al. 2007, uses one per key range, as Cassandra's repair and Riak's
//! active anti-entropy do).
//!
//! # The tree
//!
//! A fixed shape: `fanout` children per inner node and `depth` levels below
//! the root, so `fanout^depth` leaves. A key belongs to the leaf its
//! (mixed) hash picks, as Cassandra and Riak split a token range into
//! segments; a leaf's hash is the wrapping sum of a mixed hash of each
//! `(key, value)` it holds (order-free, so a leaf is updated in O(1)), and
//! an inner node's hash mixes its children's hashes in order. Both
//! replicas use the same shape, so equal subtrees have equal hashes.
//!
//! # The exchange ([`reconcile`])
//!
//! The initiator A sends its root hash. If B's differs, B answers with its
//! root's `fanout` child hashes; A compares them with its own, sends back
//! the indices of the children that differ, and B answers with *their*
//! children's hashes; and so on down. After `depth` round trips A knows
//! every leaf that differs; one more round trip carries both sides' entries
//! of those leaves, and each replica joins what it was missing (here the
//! larger value wins, a last-writer-wins stand-in). One differing key
//! among `N` costs `depth` round trips to find and `1 + depth × fanout`
//! hashes, against the `N` entries of a full-state exchange; when every
//! leaf differs, the tree costs more than the full state (every hash, and
//! then the entries anyway).
//!
//! Sizes on the wire: a hash, a key and a value 8 bytes each; a child's
//! index 2 bytes.

use std::collections::BTreeMap;

/// A replica's key space: key to value.
pub type KeySpace = BTreeMap<u64, u64>;

const HASH_BYTES: u64 = 8;
const ENTRY_BYTES: u64 = 16;
const INDEX_BYTES: u64 = 2;

/// The tree's shape: both replicas must use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub fanout: u32,
    pub depth: u32,
}

impl Shape {
    /// Refuse shapes with a fanout below 2, no levels, or more than 2^24
    /// leaves (a tree that large is bigger than the data it summarises).
    pub fn validate(self) -> Result<Shape, String> {
        if self.fanout < 2 || self.depth == 0 {
            return Err(format!(
                "a tree needs a fanout of at least 2 and a depth of at least 1 (got {self:?})"
            ));
        }
        match u64::from(self.fanout).checked_pow(self.depth) {
            Some(leaves) if leaves <= 1 << 24 => Ok(self),
            _ => {
                Err(format!("fanout^depth must be at most 2^24 leaves (got {}^{})", self.fanout, self.depth))
            }
        }
    }

    pub fn leaves(self) -> u64 {
        u64::from(self.fanout).pow(self.depth)
    }

    /// The leaf `key` belongs to.
    pub fn leaf_of(self, key: u64) -> u64 {
        mix(key) % self.leaves()
    }
}

/// SplitMix64's finaliser: a well-spread 64-bit hash of a 64-bit word.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A key's contribution to its leaf's hash: changes with its value.
fn entry_hash(key: u64, value: u64) -> u64 {
    mix(mix(key) ^ value.rotate_left(17))
}

/// A Merkle tree over a key space: every level's hashes, root first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    shape: Shape,
    /// `levels[l]` holds the `fanout^l` hashes of level `l`; the last is
    /// the leaves.
    levels: Vec<Vec<u64>>,
}

impl MerkleTree {
    /// The tree of `space` with `shape` (validated by the caller).
    pub fn build(space: &KeySpace, shape: Shape) -> MerkleTree {
        MerkleTree::build_with(space, shape, entry_hash)
    }

    /// The tree with another leaf-entry hash (tests: a broken one).
    fn build_with(space: &KeySpace, shape: Shape, entry: fn(u64, u64) -> u64) -> MerkleTree {
        let mut leaves = vec![0u64; shape.leaves() as usize];
        for (key, value) in space {
            let leaf = &mut leaves[shape.leaf_of(*key) as usize];
            *leaf = leaf.wrapping_add(entry(*key, *value));
        }
        let mut levels = vec![leaves];
        while levels[0].len() > 1 {
            let parents = levels[0]
                .chunks(shape.fanout as usize)
                .map(|children| children.iter().fold(0u64, |h, c| mix(h ^ *c)))
                .collect();
            levels.insert(0, parents);
        }
        debug_assert_eq!(levels.len() as u32, shape.depth + 1);
        MerkleTree { shape, levels }
    }

    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The hashes of node `index`'s children at level `level + 1`.
    fn children(&self, level: usize, index: u64) -> &[u64] {
        let fanout = self.shape.fanout as usize;
        let first = index as usize * fanout;
        &self.levels[level + 1][first..first + fanout]
    }
}

/// What one reconciliation cost and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Request-and-answer pairs, the last one carrying the entries.
    pub round_trips: u64,
    pub hashes_sent: u64,
    /// Entries sent, both ways.
    pub entries_sent: u64,
    /// Every byte, both ways (see the module doc for the sizes).
    pub bytes: u64,
    /// Leaves found to differ.
    pub leaves_differing: u64,
}

/// Reconcile `a` (the initiator) with `b` over trees of `shape`: find the
/// differing leaves top-down, exchange their entries, and join them into
/// both (per key, the larger value wins). Returns what it cost.
pub fn reconcile(a: &mut KeySpace, b: &mut KeySpace, shape: Shape) -> Exchange {
    let (tree_a, tree_b) = (MerkleTree::build(a, shape), MerkleTree::build(b, shape));
    let mut cost = Exchange { round_trips: 1, hashes_sent: 1, bytes: HASH_BYTES, ..Exchange::default() };
    if tree_a.root() == tree_b.root() {
        return cost;
    }
    // Invariant: `differing` holds the nodes of `level` whose hashes differ.
    let mut differing = vec![0u64];
    for level in 0..shape.depth as usize {
        if level > 0 {
            // A names the nodes that differ; B answers with their children.
            cost.round_trips += 1;
            cost.bytes += INDEX_BYTES * differing.len() as u64;
        }
        let sent = differing.len() as u64 * u64::from(shape.fanout);
        cost.hashes_sent += sent;
        cost.bytes += HASH_BYTES * sent;
        differing = differing
            .iter()
            .flat_map(|&node| {
                let (mine, theirs) = (tree_a.children(level, node), tree_b.children(level, node));
                let first = node * u64::from(shape.fanout);
                (0..mine.len()).filter(move |i| mine[*i] != theirs[*i]).map(move |i| first + i as u64)
            })
            .collect();
    }
    cost.leaves_differing = differing.len() as u64;
    exchange_leaves(a, b, shape, &differing, &mut cost);
    cost
}

/// The last round trip: A sends the differing leaves' indices and entries,
/// B answers with its entries of them; each joins the other's.
fn exchange_leaves(a: &mut KeySpace, b: &mut KeySpace, shape: Shape, leaves: &[u64], cost: &mut Exchange) {
    let wanted: std::collections::BTreeSet<u64> = leaves.iter().copied().collect();
    let in_leaves = |space: &KeySpace| -> Vec<(u64, u64)> {
        space.iter().filter(|(k, _)| wanted.contains(&shape.leaf_of(**k))).map(|(k, v)| (*k, *v)).collect()
    };
    let (from_a, from_b) = (in_leaves(a), in_leaves(b));
    cost.round_trips += 1;
    cost.entries_sent += (from_a.len() + from_b.len()) as u64;
    cost.bytes += INDEX_BYTES * leaves.len() as u64 + ENTRY_BYTES * cost.entries_sent;
    join_entries(b, &from_a);
    join_entries(a, &from_b);
}

fn join_entries(space: &mut KeySpace, entries: &[(u64, u64)]) {
    for (key, value) in entries {
        let mine = space.entry(*key).or_insert(*value);
        *mine = (*mine).max(*value);
    }
}

/// The baseline: A sends every entry, B answers with every entry A lacks
/// or holds older; one round trip. Returns what it cost.
pub fn full_state_exchange(a: &mut KeySpace, b: &mut KeySpace) -> Exchange {
    let from_a: Vec<(u64, u64)> = a.iter().map(|(k, v)| (*k, *v)).collect();
    let from_b: Vec<(u64, u64)> =
        b.iter().filter(|(k, v)| a.get(k).is_none_or(|mine| mine < v)).map(|(k, v)| (*k, *v)).collect();
    join_entries(b, &from_a);
    join_entries(a, &from_b);
    let entries_sent = (from_a.len() + from_b.len()) as u64;
    Exchange { round_trips: 1, entries_sent, bytes: ENTRY_BYTES * entries_sent, ..Exchange::default() }
}

#[cfg(test)]
mod tests;
