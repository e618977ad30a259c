//! The ledger's Merkle tree (RFC 6962, SHA-256): leaf data = the event hash, so
//! leaf i = SHA-256(0x00 ‖ event_hash(i)). Nodes of complete subtrees at level
//! [`STORED_FLOOR`] and above are persisted by the indexer as events are appended; those
//! below it are recomputed from the (at most 2^`STORED_FLOOR`) events they cover when a proof
//! needs them. A proof for any i < n ≤ indexed size reads O(log n) nodes and one block of
//! events.

use std::cell::RefCell;
use std::marker::PhantomData;

use kvitto_proof::merkle::{MemoryTree, NodeSource, ProofError};
use kvitto_proof::{Hash, LogHash, TreeHash};
use kvitto_storage::{Backend, StoreError};

/// The lowest Merkle level the index stores. Levels 0 (the leaves) to 3 are 15 of every 16
/// nodes, 60 of the 64 bytes per event that storing every level cost; a node below the floor
/// is recomputed from the 2^level events it covers, all inside one aligned block of
/// `1 << STORED_FLOOR` events (docs/FORMAT.md §6).
pub(crate) const STORED_FLOOR: u8 = 4;

/// Events in one block of the lowest stored level.
const BLOCK: u64 = 1 << STORED_FLOOR;

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
    /// Rebuilds the frontier of a tree of `size` leaves from the stored nodes (and, below
    /// [`STORED_FLOOR`], from the events of the last incomplete block).
    pub fn load(store: &dyn Backend, size: u64) -> Result<Self, StoreError> {
        let tree = StoredTree::new(store);
        let mut pending = vec![None; 64];
        for (level, slot) in pending.iter_mut().enumerate() {
            if size >> level & 1 == 1 {
                let index = (size >> level) - 1;
                *slot = Some(tree.stored_or_derived(level as u8, index)?.ok_or_else(|| StoreError::Corrupt {
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

    /// Adds the next leaf (its event hash); appends to `out` the nodes it completes at
    /// `floor` and above (0: every node, the leaf included; [`STORED_FLOOR`]: those the
    /// index stores).
    pub fn push(&mut self, event_hash: &[u8; 32], floor: u8, out: &mut Vec<(u8, u64, Hash)>) {
        self.push_leaf(H::leaf(event_hash), floor, out);
    }

    /// [`Frontier::push`] with the leaf hash already computed.
    pub fn push_leaf(&mut self, leaf: Hash, floor: u8, out: &mut Vec<(u8, u64, Hash)>) {
        let index = self.size;
        let mut carry = leaf;
        if floor == 0 {
            out.push((0, index, carry));
        }
        let mut level = 0usize;
        while let Some(left) = self.pending[level].take() {
            carry = H::node(&left, &carry);
            level += 1;
            if level >= usize::from(floor) {
                out.push((level as u8, index >> level, carry));
            }
        }
        self.pending[level] = Some(carry);
        self.size += 1;
    }
}

/// Blocks of leaves a [`StoredTree`] keeps (it forgets them all when it would hold more).
const BLOCKS_KEPT: usize = 256;

/// Reads persisted nodes for proofs; recomputes those below [`STORED_FLOOR`] from the events,
/// keeping the trees of the blocks it read: a proof's lowest siblings all lie in the block of
/// its leaf, a root's in the last block, and the proofs of one bundle often share blocks.
pub(crate) struct StoredTree<'a> {
    store: &'a dyn Backend,
    /// First seq of a block → the tree over its leaves that exist in the log.
    blocks: RefCell<std::collections::HashMap<u64, MemoryTree<LogHash>>>,
}

impl<'a> StoredTree<'a> {
    pub(crate) fn new(store: &'a dyn Backend) -> Self {
        Self { store, blocks: RefCell::default() }
    }

    /// The node of the complete subtree `[index·2^level, (index+1)·2^level)`: stored at
    /// [`STORED_FLOOR`] and above, recomputed below it (`None`: not indexed, or its events
    /// are not all in the log).
    pub(crate) fn stored_or_derived(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        if level >= STORED_FLOOR {
            return self.store.merkle_node(level, index);
        }
        let Some(first) = index.checked_shl(u32::from(level)) else { return Ok(None) };
        let start = first - first % BLOCK;
        let mut blocks = self.blocks.borrow_mut();
        if !blocks.contains_key(&start) {
            if blocks.len() >= BLOCKS_KEPT {
                blocks.clear();
            }
            blocks.insert(start, MemoryTree::new(block_leaves(self.store, start)?));
        }
        // A block tree holds exactly the complete subtrees of the leaves it has.
        Ok(blocks.get(&start).and_then(|block| block.node(u32::from(level), (first - start) >> level).ok()))
    }
}

impl NodeSource for StoredTree<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        u8::try_from(level)
            .ok()
            .map_or(Ok(None), |l| self.stored_or_derived(l, index))
            .map_err(|e| ProofError::Source(e.to_string()))?
            .ok_or_else(|| ProofError::Source(format!("merkle node {level}/{index} is not indexed")))
    }
}

/// The leaves of the events `[start, start + BLOCK)` that the log holds, in seq order.
fn block_leaves(store: &dyn Backend, start: u64) -> Result<Vec<Hash>, StoreError> {
    let mut leaves = Vec::with_capacity(BLOCK as usize);
    'chunks: for chunk in store.chunks_from(start) {
        let (first, records) = chunk?;
        for (i, record) in records.iter().enumerate() {
            let seq = first + i as u64;
            if seq < start {
                continue;
            }
            if seq != start + leaves.len() as u64 {
                break 'chunks;
            }
            leaves.push(LogHash::leaf(&kvitto_core::event_hash(&record.canonical).0));
            if leaves.len() as u64 == BLOCK {
                break 'chunks;
            }
        }
    }
    Ok(leaves)
}
