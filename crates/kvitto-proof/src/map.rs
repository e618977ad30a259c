//! The subject map (docs/FORMAT.md §7): an authenticated map from subject pseudonym (16 bytes)
//! to (number of events, hash of the subject's last event), committed into the log itself by
//! `subject_map_committed` events, so that a bundle proves it holds *all* of a subject's events
//! up to a tree size, and a subject without events is proven absent.
//!
//! The map is a binary Merkle trie over the 128 key bits (most significant first) in which a
//! subtree holding one entry is that entry's leaf, wherever it sits:
//!
//! ```text
//! hash(∅)          = 32 zero bytes
//! hash({one})      = SHA-256(0x02 ‖ key(16) ‖ u64be count ‖ head(32))
//! hash(S at depth d, |S| ≥ 2) = SHA-256(0x03 ‖ hash(S with bit d = 0) ‖ hash(S with bit d = 1))
//! ```
//!
//! With pseudonyms that are uniformly random (keyed BLAKE3), a key's path is about
//! log2(subjects) + 1 nodes long: an update touches O(log n) nodes, a proof carries O(log n)
//! hashes. Prefixes 0x02/0x03 keep map hashes apart from the log tree's leaves (0x00) and
//! nodes (0x01).

use std::fmt;

use sha2::Digest;

use crate::merkle::{Hash, HexHash};

/// A map key: a subject pseudonym.
pub type Key = [u8; 16];

/// Key bits: the deepest a trie node can sit.
pub const KEY_BITS: usize = 128;

/// The hash of an empty subtree (and the root of the empty map).
pub const EMPTY: Hash = [0; 32];

/// What the map holds for one subject.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapEntry {
    /// Number of the subject's events (its next `subject_seq`).
    pub count: u64,
    /// Event hash of the subject's last event.
    pub head: Hash,
}

/// Leaf hash of one entry.
pub fn leaf_hash(key: &Key, entry: &MapEntry) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update([0x02]);
    h.update(key);
    h.update(entry.count.to_be_bytes());
    h.update(entry.head);
    h.finalize().into()
}

/// Interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update([0x03]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Bit `d` of a key, most significant first.
fn bit(key: &Key, d: usize) -> usize {
    usize::from(key[d / 8] >> (7 - d % 8) & 1)
}

/// Whether two keys agree on their first `bits` bits.
fn same_prefix(a: &Key, b: &Key, bits: usize) -> bool {
    (0..bits).all(|d| bit(a, d) == bit(b, d))
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
enum Node {
    Leaf { key: Key, entry: MapEntry },
    Inner { children: [u32; 2], hash: Hash, dirty: bool },
}

/// The map in memory: an arena of trie nodes with cached hashes, recomputed only along the
/// paths changed since the last [`SubjectMap::root`].
#[derive(Clone, Debug, Default)]
pub struct SubjectMap {
    nodes: Vec<Node>,
    root: Option<u32>,
    len: u64,
}

/// How a proof ends: where the key's path stops.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Terminal {
    /// An empty subtree: the key is absent.
    Empty,
    /// The subtree holds exactly this entry (the key itself: present; another key sharing
    /// the path so far: the key is absent).
    Leaf(Key, MapEntry),
}

/// A membership or non-membership proof: sibling hashes from the root down, then the end.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MapProof {
    /// `siblings[d]` = the hash of the other child at depth `d`.
    pub siblings: Vec<Hash>,
    /// Where the path ends.
    pub terminal: Terminal,
}

/// Why a map proof does not verify.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum MapError {
    /// More siblings than key bits.
    #[error("the proof is {0} levels deep; keys have {KEY_BITS} bits")]
    TooDeep(usize),
    /// The terminal leaf is not on the key's path.
    #[error("the proof's leaf (key {0}) does not lie on the key's path")]
    OffPath(String),
    /// The recomputed root differs.
    #[error("the proof gives map root {0}, not the committed one")]
    RootMismatch(HexHash),
}

impl SubjectMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, n: Node) -> u32 {
        self.nodes.push(n);
        (self.nodes.len() - 1) as u32
    }

    /// The entry of `key`.
    pub fn get(&self, key: &Key) -> Option<MapEntry> {
        let mut cur = self.root?;
        let mut d = 0;
        loop {
            match &self.nodes[cur as usize] {
                Node::Leaf { key: k, entry } => return (k == key).then_some(*entry),
                Node::Inner { children, .. } => {
                    cur = children[bit(key, d)];
                    if cur == NONE {
                        return None;
                    }
                    d += 1;
                }
            }
        }
    }

    /// Sets the entry of `key` (O(path length)).
    pub fn insert(&mut self, key: Key, entry: MapEntry) {
        let Some(mut cur) = self.root else {
            self.root = Some(self.push(Node::Leaf { key, entry }));
            self.len += 1;
            return;
        };
        let mut d = 0;
        loop {
            match self.nodes[cur as usize].clone() {
                Node::Leaf { key: k, .. } if k == key => {
                    self.nodes[cur as usize] = Node::Leaf { key, entry };
                    return;
                }
                Node::Leaf { key: k, entry: e } => {
                    // Push the old leaf down until the two keys part.
                    let mut at = cur;
                    while bit(&k, d) == bit(&key, d) {
                        let child = self.push(Node::Inner { children: [NONE; 2], hash: EMPTY, dirty: true });
                        let mut children = [NONE; 2];
                        children[bit(&key, d)] = child;
                        self.nodes[at as usize] = Node::Inner { children, hash: EMPTY, dirty: true };
                        at = child;
                        d += 1;
                    }
                    let old = self.push(Node::Leaf { key: k, entry: e });
                    let new = self.push(Node::Leaf { key, entry });
                    let mut children = [NONE; 2];
                    children[bit(&k, d)] = old;
                    children[bit(&key, d)] = new;
                    self.nodes[at as usize] = Node::Inner { children, hash: EMPTY, dirty: true };
                    self.len += 1;
                    return;
                }
                Node::Inner { children, .. } => {
                    if let Node::Inner { dirty, .. } = &mut self.nodes[cur as usize] {
                        *dirty = true;
                    }
                    let b = bit(&key, d);
                    if children[b] == NONE {
                        let leaf = self.push(Node::Leaf { key, entry });
                        if let Node::Inner { children, .. } = &mut self.nodes[cur as usize] {
                            children[b] = leaf;
                        }
                        self.len += 1;
                        return;
                    }
                    cur = children[b];
                    d += 1;
                }
            }
        }
    }

    fn hash_of(&mut self, idx: u32) -> Hash {
        if idx == NONE {
            return EMPTY;
        }
        match self.nodes[idx as usize] {
            Node::Leaf { key, entry } => leaf_hash(&key, &entry),
            Node::Inner { hash, dirty: false, .. } => hash,
            Node::Inner { children, dirty: true, .. } => {
                let h = node_hash(&self.hash_of(children[0]), &self.hash_of(children[1]));
                self.nodes[idx as usize] = Node::Inner { children, hash: h, dirty: false };
                h
            }
        }
    }

    /// The map root (recomputes the changed paths).
    pub fn root(&mut self) -> Hash {
        match self.root {
            None => EMPTY,
            Some(r) => self.hash_of(r),
        }
    }

    /// A proof for `key`: of its entry, or of its absence.
    pub fn prove(&mut self, key: &Key) -> MapProof {
        self.root();
        let mut siblings = Vec::new();
        let Some(mut cur) = self.root else { return MapProof { siblings, terminal: Terminal::Empty } };
        let mut d = 0;
        loop {
            match self.nodes[cur as usize] {
                Node::Leaf { key: k, entry } => return MapProof { siblings, terminal: Terminal::Leaf(k, entry) },
                Node::Inner { children, .. } => {
                    let b = bit(key, d);
                    siblings.push(self.hash_of(children[1 - b]));
                    if children[b] == NONE {
                        return MapProof { siblings, terminal: Terminal::Empty };
                    }
                    cur = children[b];
                    d += 1;
                }
            }
        }
    }
}

/// Checks a proof for `key` against a committed root: `Ok(Some(entry))` when the key is
/// present, `Ok(None)` when it is proven absent.
pub fn verify(root: &Hash, key: &Key, proof: &MapProof) -> Result<Option<MapEntry>, MapError> {
    let depth = proof.siblings.len();
    if depth > KEY_BITS {
        return Err(MapError::TooDeep(depth));
    }
    let (mut h, found) = match &proof.terminal {
        Terminal::Empty => (EMPTY, None),
        Terminal::Leaf(k, e) => {
            if !same_prefix(k, key, depth) {
                return Err(MapError::OffPath(hex::encode(k)));
            }
            (leaf_hash(k, e), (k == key).then_some(*e))
        }
    };
    for d in (0..depth).rev() {
        let s = &proof.siblings[d];
        h = if bit(key, d) == 0 { node_hash(&h, s) } else { node_hash(s, &h) };
    }
    if &h == root { Ok(found) } else { Err(MapError::RootMismatch(HexHash(h))) }
}

impl fmt::Display for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Terminal::Empty => f.write_str("empty"),
            Terminal::Leaf(k, e) => write!(f, "leaf {} (count {})", hex::encode(k), e.count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root from the definition, recursively over a sorted entry list.
    fn reference_root(entries: &[(Key, MapEntry)], d: usize) -> Hash {
        match entries {
            [] => EMPTY,
            [(k, e)] => leaf_hash(k, e),
            _ => {
                let split = entries.partition_point(|(k, _)| bit(k, d) == 0);
                node_hash(&reference_root(&entries[..split], d + 1), &reference_root(&entries[split..], d + 1))
            }
        }
    }

    fn key(i: u64) -> Key {
        let h = blake3::hash(&i.to_be_bytes());
        let mut k = [0; 16];
        k.copy_from_slice(&h.as_bytes()[..16]);
        k
    }

    #[test]
    fn root_matches_the_definition_and_proofs_verify() {
        let mut m = SubjectMap::new();
        assert_eq!(m.root(), EMPTY);
        assert_eq!(verify(&EMPTY, &key(1), &m.prove(&key(1))), Ok(None));
        let mut all = std::collections::BTreeMap::new();
        for i in 0..300u64 {
            let e = MapEntry { count: i % 7 + 1, head: [i as u8; 32] };
            m.insert(key(i % 200), e);
            all.insert(key(i % 200), e);
            if i % 37 == 0 || i == 299 {
                let sorted: Vec<_> = all.iter().map(|(k, e)| (*k, *e)).collect();
                assert_eq!(m.root(), reference_root(&sorted, 0), "after {i} inserts");
            }
        }
        assert_eq!(m.len(), 200);
        let root = m.root();
        for i in 0..260u64 {
            let p = m.prove(&key(i));
            let got = verify(&root, &key(i), &p).unwrap();
            assert_eq!(got, all.get(&key(i)).copied(), "key {i}");
            assert!(p.siblings.len() < 24, "path of {} levels for 200 keys", p.siblings.len());
        }
    }

    #[test]
    fn keys_sharing_a_long_prefix() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        a[15] = 0b10;
        b[15] = 0b11;
        let mut m = SubjectMap::new();
        let e = MapEntry { count: 1, head: [9; 32] };
        m.insert(a, e);
        m.insert(b, e);
        let root = m.root();
        assert_eq!(root, reference_root(&[(a, e), (b, e)], 0));
        let p = m.prove(&b);
        assert_eq!(p.siblings.len(), 128);
        assert_eq!(verify(&root, &b, &p), Ok(Some(e)));
        let mut c = b;
        c[0] = 0x80;
        let p = m.prove(&c);
        assert_eq!((p.siblings.len(), p.terminal), (1, Terminal::Empty));
        assert_eq!(verify(&root, &c, &p), Ok(None));
    }

    #[test]
    fn forged_proofs_fail() {
        let mut m = SubjectMap::new();
        for i in 0..50 {
            m.insert(key(i), MapEntry { count: i + 1, head: [1; 32] });
        }
        let root = m.root();
        let k = key(7);
        let good = m.prove(&k);
        // A smaller count (a shortened history), a changed head, a dropped or changed sibling.
        let mut p = good.clone();
        p.terminal = Terminal::Leaf(k, MapEntry { count: 7, head: [1; 32] });
        assert!(matches!(verify(&root, &k, &p), Err(MapError::RootMismatch(_))));
        let mut p = good.clone();
        p.siblings.pop();
        assert!(verify(&root, &k, &p).is_err());
        let mut p = good.clone();
        p.siblings[0][0] ^= 1;
        assert!(verify(&root, &k, &p).is_err());
        // Claiming absence of a present key: with an empty end, or another key's leaf.
        let mut p = good.clone();
        p.terminal = Terminal::Empty;
        assert!(verify(&root, &k, &p).is_err());
        let other = m.prove(&key(8));
        assert!(verify(&root, &k, &other).is_err(), "another key's proof does not prove absence");
        assert!(verify(&root, &k, &MapProof { siblings: vec![[0; 32]; 129], terminal: Terminal::Empty }).is_err());
    }
}
