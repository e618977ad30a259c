//! The ledger's Merkle tree (RFC 6962, SHA-256): leaf data = the event hash, so
//! leaf i = SHA-256(0x00 ‖ event_hash(i)). Nodes of complete subtrees are persisted by the
//! indexer as events are appended; a proof for any i < n ≤ indexed size reads O(log n) nodes.

use std::marker::PhantomData;

use kvitto_proof::merkle::{NodeSource, ProofError};
use kvitto_proof::{Hash, LogHash, TreeHash};
use kvitto_storage::{Backend, StoreError};

/// The pending left subtrees of an incomplete tree (one per set bit of its size), used to
/// complete nodes as leaves arrive. Generic over the hash only so that `verify` can recompute
/// the BLAKE3 roots of checkpoints signed before tree v2.
#[derive(Debug, Clone)]
pub(crate) struct Frontier<H = LogHash> {
    /// `pending[level]` = root of the complete left subtree at that level awaiting a sibling.
    pending: Vec<Option<Hash>>,
    size: u64,
    _h: PhantomData<H>,
}

impl<H> Default for Frontier<H> {
    fn default() -> Self {
        Self { pending: vec![None; 64], size: 0, _h: PhantomData }
    }
}

impl Frontier<LogHash> {
    /// Rebuilds the frontier of a tree of `size` leaves from the stored nodes.
    pub fn load(store: &dyn Backend, size: u64) -> Result<Self, StoreError> {
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
        Ok(Self { pending, size, _h: PhantomData })
    }
}

impl<H: TreeHash> Frontier<H> {
    /// Root of the tree so far: the pending subtrees combined from the smallest up.
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for left in self.pending.iter().flatten() {
            acc = Some(match acc {
                None => *left,
                Some(right) => H::node(left, &right),
            });
        }
        acc.unwrap_or_else(H::empty)
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf (its event hash); returns the nodes completed, leaf included.
    pub fn push(&mut self, event_hash: &[u8; 32], out: &mut Vec<(u8, u64, Hash)>) {
        self.push_leaf(H::leaf(event_hash), out);
    }

    /// [`Frontier::push`] with the leaf hash already computed.
    pub fn push_leaf(&mut self, leaf: Hash, out: &mut Vec<(u8, u64, Hash)>) {
        let index = self.size;
        let mut carry = leaf;
        out.push((0, index, carry));
        let mut level = 0usize;
        while let Some(left) = self.pending[level].take() {
            carry = H::node(&left, &carry);
            level += 1;
            out.push((level as u8, index >> level, carry));
        }
        self.pending[level] = Some(carry);
        self.size += 1;
    }
}

/// Reads persisted nodes for proofs.
pub(crate) struct StoredTree<'a>(pub &'a dyn Backend);

impl NodeSource for StoredTree<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0
            .merkle_node(level as u8, index)
            .map_err(|e| ProofError::Source(e.to_string()))?
            .ok_or_else(|| ProofError::Source(format!("merkle node {level}/{index} is not indexed")))
    }
}
