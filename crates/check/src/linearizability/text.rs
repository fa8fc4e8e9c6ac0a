//! Strings that grow by appends (Porcupine's key-value `append`), as the
//! search meets them: a string is a node of a trie, its parent string and
//! the piece appended to it, so an append costs one node and O(1) work
//! however long the string has grown, where building the new string and
//! interning it hashed and copied all of it.
//!
//! Equal strings must be the same node, whatever pieces built them (a read
//! of `"abc"` matches `"ab"` + `"c"` and `"a"` + `"bc"`, and the search's
//! cache relies on equal states being equal). So each node also carries its
//! length and a polynomial hash of its bytes, kept up to date in O(1) per
//! append (`h(s + t) = h(s) * B^|t| + h(t)`), and a new string is looked
//! up by (length, hash) among the nodes made so far. The hash only narrows
//! the search: a candidate is compared byte by byte before it is taken, so
//! two different strings whose hashes collide stay two nodes. That
//! comparison happens only when the same string is reached by two
//! different sequences of pieces (a read of a string the appends then
//! build), once per such pair.

use super::search::FastMap;

/// A string, as a node of the trie ([`EMPTY_TEXT`] is `""`).
pub(crate) type TextId = u32;
/// The empty string: the root of the trie.
pub(crate) const EMPTY_TEXT: TextId = 0;

/// A piece's bytes, hash and `B^len`, computed once per piece.
#[derive(Clone, Copy, Debug)]
struct Piece {
    len: u64,
    hash: u64,
    power: u64,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    parent: TextId,
    /// The piece appended to the parent; unused for the root.
    piece: u32,
    len: u64,
    hash: u64,
    /// The next node with the same (length, hash), `u32::MAX` for none.
    same_hash: TextId,
}

/// The strings of one history, each once. Pieces are named by the
/// caller's ids (`u32`), and their bytes are read through the function
/// given to each call, so the caller keeps the only copy of them.
#[derive(Clone, Debug)]
pub(crate) struct Texts {
    nodes: Vec<Node>,
    /// The node of `text + piece`, once computed.
    appended: FastMap<(TextId, u32), TextId>,
    /// The first node of each (length, hash).
    by_hash: FastMap<(u64, u64), TextId>,
    pieces: FastMap<u32, Piece>,
    base: u64,
}

/// The multiplier of the polynomial hash: odd, so powers of it never
/// vanish modulo 2^64.
const BASE: u64 = 0x100_0000_01b3;

impl Texts {
    pub(crate) fn new() -> Texts {
        Texts::with_base(BASE)
    }

    /// With another multiplier: `0` hashes every string to its last byte,
    /// so the tests can make hashes collide at will.
    fn with_base(base: u64) -> Texts {
        let root = Node { parent: EMPTY_TEXT, piece: 0, len: 0, hash: 0, same_hash: u32::MAX };
        let mut by_hash = FastMap::default();
        by_hash.insert((0, 0), EMPTY_TEXT);
        Texts { nodes: vec![root], appended: FastMap::default(), by_hash, pieces: FastMap::default(), base }
    }

    /// The string `piece` alone.
    pub(crate) fn of<'a>(&mut self, piece: u32, bytes: &impl Fn(u32) -> &'a str) -> TextId {
        self.append(EMPTY_TEXT, piece, bytes)
    }

    /// The string `text` followed by `piece`.
    pub(crate) fn append<'a>(&mut self, text: TextId, piece: u32, bytes: &impl Fn(u32) -> &'a str) -> TextId {
        if let Some(&known) = self.appended.get(&(text, piece)) {
            return known;
        }
        let base = self.base;
        let p = *self.pieces.entry(piece).or_insert_with(|| {
            let s = bytes(piece);
            let (hash, power) = s.bytes().fold((0u64, 1u64), |(h, pw), b| {
                (h.wrapping_mul(base).wrapping_add(u64::from(b)), pw.wrapping_mul(base))
            });
            Piece { len: s.len() as u64, hash, power }
        });
        let parent = self.nodes[text as usize];
        let (len, hash) = (parent.len + p.len, parent.hash.wrapping_mul(p.power).wrapping_add(p.hash));
        let candidate = Node { parent: text, piece, len, hash, same_hash: u32::MAX };
        let first = self.by_hash.get(&(len, hash)).copied();
        let mut at = first.unwrap_or(u32::MAX);
        while at != u32::MAX {
            if self.same_bytes(&candidate, &self.nodes[at as usize], bytes) {
                self.appended.insert((text, piece), at);
                return at;
            }
            at = self.nodes[at as usize].same_hash;
        }
        let id = TextId::try_from(self.nodes.len()).expect("fewer than 2^32 strings");
        self.nodes.push(Node { same_hash: first.unwrap_or(u32::MAX), ..candidate });
        self.by_hash.insert((len, hash), id);
        self.appended.insert((text, piece), id);
        id
    }

    /// The bytes of `node`, last first.
    fn bytes_reversed<'a, 'b>(
        &'b self,
        node: Node,
        bytes: &'b impl Fn(u32) -> &'a str,
    ) -> impl Iterator<Item = u8> + 'b
    where
        'a: 'b,
    {
        // Every node but the root is longer than its parent: the walk ends.
        let chain = std::iter::successors(Some(node), |n| (n.len > 0).then(|| self.nodes[n.parent as usize]));
        chain.take_while(|n| n.len > 0).flat_map(move |n| bytes(n.piece).bytes().rev())
    }

    fn same_bytes<'a>(&self, a: &Node, b: &Node, bytes: &impl Fn(u32) -> &'a str) -> bool {
        a.len == b.len && self.bytes_reversed(*a, bytes).eq(self.bytes_reversed(*b, bytes))
    }

    /// The string `text`, in full.
    #[cfg(test)]
    pub(crate) fn string<'a>(&self, text: TextId, bytes: &impl Fn(u32) -> &'a str) -> String {
        let mut reversed: Vec<u8> = self.bytes_reversed(self.nodes[text as usize], bytes).collect();
        reversed.reverse();
        String::from_utf8(reversed).expect("pieces are whole strings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PIECES: [&str; 6] = ["", "a", "b", "ab", "ba", "aab"];

    fn piece(id: u32) -> &'static str {
        PIECES[id as usize]
    }

    #[test]
    fn equal_strings_are_one_node_whatever_built_them() {
        let mut texts = Texts::new();
        let ab_then_a = {
            let ab = texts.of(3, &piece);
            texts.append(ab, 1, &piece)
        };
        let a_then_ba = {
            let a = texts.of(1, &piece);
            texts.append(a, 4, &piece)
        };
        assert_eq!(ab_then_a, a_then_ba, "\"ab\" + \"a\" and \"a\" + \"ba\" are both \"aba\"");
        assert_eq!(texts.string(ab_then_a, &piece), "aba");
        // Appending "" changes nothing; the empty string is the root.
        assert_eq!(texts.append(ab_then_a, 0, &piece), ab_then_a);
        assert_eq!(texts.of(0, &piece), EMPTY_TEXT);
        // Negative control: same length and letters, other order.
        let ab = texts.of(3, &piece);
        let ba = texts.of(4, &piece);
        assert_ne!(ab, ba);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_their_bytes() {
        // Base 0: every string hashes to its last byte, so "ab", "bb" and
        // "aab" + "b" all collide with one another at their lengths.
        let mut texts = Texts::with_base(0);
        let ab = texts.of(3, &piece);
        let b = texts.of(2, &piece);
        let bb = texts.append(b, 2, &piece);
        assert_ne!(ab, bb, "same length, same hash, other bytes");
        let a = texts.of(1, &piece);
        assert_eq!(texts.append(a, 2, &piece), ab, "\"a\" + \"b\" finds \"ab\" past the collision");
        assert_eq!(texts.string(bb, &piece), "bb");
    }

    /// Append `piece` to the `at`-th string made so far, or start from it.
    #[derive(Clone, Debug)]
    struct Step {
        at: usize,
        piece: u32,
    }

    fn run(base: u64, steps: &[Step]) -> Result<(), TestCaseError> {
        let mut texts = Texts::with_base(base);
        // Each node made, beside the plain string it must be.
        let mut made: Vec<(TextId, String)> = vec![(EMPTY_TEXT, String::new())];
        for step in steps {
            let (parent, plain) = made[step.at % made.len()].clone();
            let id = texts.append(parent, step.piece, &piece);
            made.push((id, plain + piece(step.piece)));
        }
        for (id, plain) in &made {
            prop_assert_eq!(&texts.string(*id, &piece), plain);
            for (other, other_plain) in &made {
                prop_assert_eq!(id == other, plain == other_plain, "{:?} against {:?}", plain, other_plain);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// Against plain strings: two nodes are equal iff their strings
        /// are, with a good hash and with one that collides all the time.
        #[test]
        fn nodes_are_equal_iff_their_strings_are(
            steps in prop::collection::vec((0..64usize, 0..PIECES.len() as u32).prop_map(|(at, piece)| Step { at, piece }), 1..40),
        ) {
            run(BASE, &steps)?;
            run(0, &steps)?;
        }
    }
}
