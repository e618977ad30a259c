//! The ledger's Merkle tree (RFC 6962 shape, BLAKE3): leaf data = the event hash, so
//! leaf i = BLAKE3(0x00 ‖ event_hash(i)). Nodes of complete subtrees are persisted by the
//! indexer as events are appended; a proof for any i < n ≤ indexed size reads O(log n) nodes.

use kvitto_proof::merkle::{NodeSource, ProofError};
use kvitto_proof::{Blake3, Hash, TreeHash};
use kvitto_store::{Store, StoreError};

/// The pending left subtrees of an incomplete tree (one per set bit of its size), used to
/// complete nodes as leaves arrive.
#[derive(Debug, Default, Clone)]
pub(crate) struct Frontier {
    /// `pending[level]` = root of the complete left subtree at that level awaiting a sibling.
    pending: Vec<Option<Hash>>,
    size: u64,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from the stored nodes.
    pub fn load(store: &Store, size: u64) -> Result<Self, StoreError> {
        let mut pending = vec![None; 64];
        for (level, slot) in pending.iter_mut().enumerate() {
            if size >> level & 1 == 1 {
                let index = (size >> level) - 1;
                *slot = Some(store.merkle_node(level as u8, index)?.ok_or_else(|| StoreError::Corrupt {
                    at: format!("merkle node {level}/{index}"),
                    what: format!("missing for tree size {size}"),
                })?);
            }
        }
        Ok(Self { pending, size })
    }

    /// Root of the tree so far: the pending subtrees combined from the smallest up.
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for left in self.pending.iter().flatten() {
            acc = Some(match acc {
                None => *left,
                Some(right) => Blake3::node(left, &right),
            });
        }
        acc.unwrap_or_else(Blake3::empty)
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf (its event hash); returns the nodes completed, leaf included.
    pub fn push(&mut self, event_hash: &[u8; 32], out: &mut Vec<(u8, u64, Hash)>) {
        self.push_leaf(Blake3::leaf(event_hash), out);
    }

    /// [`Frontier::push`] with the leaf hash already computed.
    pub fn push_leaf(&mut self, leaf: Hash, out: &mut Vec<(u8, u64, Hash)>) {
        if self.pending.len() < 64 {
            self.pending.resize(64, None);
        }
        let index = self.size;
        let mut carry = leaf;
        out.push((0, index, carry));
        let mut level = 0usize;
        while let Some(left) = self.pending[level].take() {
            carry = Blake3::node(&left, &carry);
            level += 1;
            out.push((level as u8, index >> level, carry));
        }
        self.pending[level] = Some(carry);
        self.size += 1;
    }
}

/// Reads persisted nodes for proofs.
pub(crate) struct StoredTree<'a>(pub &'a Store);

impl NodeSource for StoredTree<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0
            .merkle_node(level as u8, index)
            .map_err(|e| ProofError::Source(e.to_string()))?
            .ok_or_else(|| ProofError::Source(format!("merkle node {level}/{index} is not indexed")))
    }
}
