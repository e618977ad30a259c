//! The storage traits and the values they pass.

use std::collections::HashMap;

use kvitto_core::{EventId, SubjectId};
use kvitto_vault::Vault;

use crate::codec::{Head, Record, SubjectHeadRec};
use crate::{CommitError, StoreError};

/// What `init` recorded about the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerInfo {
    /// Log origin (checkpoint key name).
    pub origin: String,
    /// Ledger format version.
    pub format: u32,
    /// Creation time, µs.
    pub created_at: i64,
}

/// Sizes of one commit.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStats {
    /// Stored values (chunks or rows) written.
    pub chunks: usize,
    /// Bytes of them.
    pub bytes: usize,
    /// Time writing (sled `apply_batch` + `flush`; PostgreSQL: zero, see `sync`).
    pub write: std::time::Duration,
    /// Time making it durable (`fdatasync`; PostgreSQL: the one statement that moves the head,
    /// inserts the chunks and commits).
    pub sync: std::time::Duration,
}

/// The newest acknowledged position as the store records it apart from the head: a lower
/// bound of what the log must hold (sled keeps it in a file outside sled; an engine whose
/// COMMIT is the acknowledgement reports its head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Events acknowledged.
    pub next_seq: u64,
    /// Hash of event `next_seq − 1` (zeros when none).
    pub head_hash: [u8; 32],
}

/// Length of [`Acked::encode`].
pub const ACKED_LEN: usize = 56;
const ACKED_MAGIC: &[u8; 4] = b"KVA1";

impl Acked {
    /// `KVA1 ‖ u64be next_seq ‖ head hash ‖ BLAKE3(first 44 bytes)[..12]`.
    pub fn encode(&self) -> [u8; ACKED_LEN] {
        let mut b = [0u8; ACKED_LEN];
        b[..4].copy_from_slice(ACKED_MAGIC);
        b[4..12].copy_from_slice(&self.next_seq.to_be_bytes());
        b[12..44].copy_from_slice(&self.head_hash);
        let sum = blake3::hash(&b[..44]);
        b[44..].copy_from_slice(&sum.as_bytes()[..12]);
        b
    }

    /// The inverse of [`Acked::encode`]; `None` if the bytes are not a whole, intact record.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != ACKED_LEN || &b[..4] != ACKED_MAGIC || b[44..] != blake3::hash(&b[..44]).as_bytes()[..12] {
            return None;
        }
        let mut head_hash = [0u8; 32];
        head_hash.copy_from_slice(&b[12..44]);
        Some(Acked { next_seq: u64::from_be_bytes(b[4..12].try_into().ok()?), head_hash })
    }
}

/// One coalesced update of the derived indexes.
#[derive(Debug, Default)]
pub struct IndexBatch {
    /// Latest tip per subject.
    pub heads: HashMap<SubjectId, SubjectHeadRec>,
    /// New event ids.
    pub event_ids: Vec<(EventId, u64)>,
    /// Merkle nodes of newly completed subtrees: (level, index, hash), in index order per level.
    pub nodes: Vec<(u8, u64, [u8; 32])>,
    /// Events indexed after this batch.
    pub watermark: u64,
}

/// One coalesced write of persisted projection states.
#[derive(Debug, Default)]
pub struct ProjectionBatch {
    /// (key, encoded state) pairs; keys are chosen by the caller.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Events reflected after this batch.
    pub watermark: u64,
}

/// One stored subject map entry: (subject, event count, head event hash).
pub type MapEntryRec = ([u8; 16], u64, [u8; 32]);

/// The index watermark and the subject tips as of it.
pub type IndexSnapshot = (u64, Vec<(SubjectId, SubjectHeadRec)>);

/// A boxed iterator of fallible items borrowed from the store.
pub type Items<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + 'a>;

/// The event log: the chain head and the records, written one commit group at a time, and the
/// signed checkpoints. The only part of a store that is not derived data.
pub trait EventLog: Send + Sync {
    /// The committed chain head.
    fn head(&self) -> Result<Head, StoreError>;

    /// The acknowledged head as recorded apart from the head (a lower bound of it).
    fn acked(&self) -> Result<Acked, StoreError>;

    /// Writes records `first_seq..` and the new head atomically and durably. On `Ok` the
    /// events survive a kill and a power loss (the receipt may be sent). `first_seq` must be
    /// the current head's `next_seq`: a backend shared between processes refuses otherwise
    /// ([`StoreError::Fenced`], nothing written) — no second writer can fork the chain. On
    /// [`CommitError::Unknown`] the handle poisons: after a reopen the store holds the whole
    /// group or none of it.
    fn commit(&self, first_seq: u64, records: &[Record], head: &Head) -> Result<CommitStats, CommitError>;

    /// The stored group (chunk) holding `seq`, as (first seq, records).
    fn chunk_containing(&self, seq: u64) -> Result<Option<(u64, Vec<Record>)>, StoreError>;

    /// One record by seq.
    fn record(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        Ok(self.chunk_containing(seq)?.and_then(|(first, mut rs)| {
            let i = (seq - first) as usize;
            (i < rs.len()).then(|| rs.swap_remove(i))
        }))
    }

    /// Chunks in seq order, starting with the one holding `from` (or the first after it). A
    /// chunk that does not decode is an `Err` item naming it, so `verify` can report it.
    fn chunks_from(&self, from: u64) -> Items<'_, (u64, Vec<Record>)>;

    /// Stores a signed checkpoint note (tree v2) for `size`, durably.
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;

    /// Every stored checkpoint note (tree v2, SHA-256), by size.
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError>;

    /// Checkpoints signed over the BLAKE3 tree of v1 (kept, verified under that version).
    fn legacy_checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(Vec::new())
    }
}

/// Derived data, rebuilt from the log whenever it is missing or behind: written off the
/// acknowledgement path, each part with a watermark that never names entries not yet there.
pub trait DerivedIndex: Send + Sync {
    /// Events indexed so far (the index watermark).
    fn index_watermark(&self) -> Result<u64, StoreError>;
    /// Applies one coalesced index update, the watermark last.
    fn apply_index(&self, batch: &IndexBatch) -> Result<(), StoreError>;
    /// Drops every index entry (before a rebuild from seq 0).
    fn clear_index(&self) -> Result<(), StoreError>;
    /// The Merkle node of the complete subtree of leaves `[index·2^level, (index+1)·2^level)`.
    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError>;
    /// The stored Merkle nodes of one level, in index order.
    fn merkle_level(&self, level: u8) -> Items<'_, (u64, [u8; 32])>;
    /// A subject's tip as of the index watermark.
    fn subject_head(&self, subject: &SubjectId) -> Result<Option<SubjectHeadRec>, StoreError>;
    /// The seq of an event id, as of the index watermark.
    fn event_seq(&self, id: &EventId) -> Result<Option<u64>, StoreError>;
    /// Every subject tip in the index.
    fn indexed_subject_heads(&self) -> Items<'_, (SubjectId, SubjectHeadRec)>;
    /// Every event id in the index.
    fn indexed_event_ids(&self) -> Items<'_, (EventId, u64)>;
    /// The index watermark and every subject tip, read together: no tip newer than the
    /// watermark (the caller holds this process's indexer still; a backend shared with
    /// another process's writer reads both in one snapshot).
    fn index_snapshot(&self) -> Result<IndexSnapshot, StoreError> {
        let watermark = self.index_watermark()?;
        Ok((watermark, self.indexed_subject_heads().collect::<Result<Vec<_>, _>>()?))
    }
    /// The subject map snapshot: events it reflects and its entries (`(0, [])` when none).
    fn map_snapshot(&self) -> Result<(u64, Vec<MapEntryRec>), StoreError>;
    /// Writes changed map entries, the snapshot's size and new commitments
    /// `(seq, tree_size, map_root)` together.
    fn apply_map(
        &self,
        entries: &[MapEntryRec],
        size: u64,
        commitments: &[(u64, u64, [u8; 32])],
    ) -> Result<(), StoreError>;
    /// The recorded map commitments `(seq, tree_size, map_root)`, by seq.
    fn map_commitments(&self) -> Result<Vec<(u64, u64, [u8; 32])>, StoreError>;
    /// Drops the map snapshot and its commitments.
    fn clear_map(&self) -> Result<(), StoreError>;
}

/// Persisted projection states (derived data, caught up from the log on open).
pub trait ProjectionStore: Send + Sync {
    /// Events reflected in the persisted states.
    fn projection_watermark(&self) -> Result<u64, StoreError>;
    /// Writes states and their watermark (the watermark last).
    fn apply_projections(&self, batch: &ProjectionBatch) -> Result<(), StoreError>;
    /// Writes a complete set of states after [`ProjectionStore::clear_projections`] (a
    /// rebuild's snapshot). A backend may pack them (sled stores many per value: its per-key
    /// cost dominated); by default they are written as [`ProjectionStore::apply_projections`].
    fn write_snapshot(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        self.apply_projections(batch)
    }
    /// Every persisted state (watermark excluded), as the (key, value) pairs written — a
    /// snapshot's first, then later writes, which override them. A stored value that does not
    /// decode is a [`StoreError::Corrupt`] item.
    fn projection_entries(&self) -> Items<'_, (Vec<u8>, Vec<u8>)>;
    /// Drops every persisted state.
    fn clear_projections(&self) -> Result<(), StoreError>;
}

/// An open store: the three parts, the ledger's key vault, and the handle's life cycle.
pub trait Backend: EventLog + DerivedIndex + ProjectionStore + std::fmt::Debug {
    /// The backend's name as the marker and messages give it (`sled`, `postgres`).
    fn kind(&self) -> &'static str;
    /// Where the store is, for messages (a directory, or a database URL without password).
    fn location(&self) -> String;
    /// The ledger's key vault (files beside the store, whatever the engine).
    fn vault(&self) -> &Vault;
    /// Whether this handle only reads (a shared store opened beside its writer): commits
    /// and checkpoints are refused, derived-data writes are dropped.
    fn is_reader(&self) -> bool {
        false
    }
    /// Marks the handle failed: it takes no more writes and is not flushed again.
    fn poison(&self);
    /// Whether the handle failed (a commit whose outcome is unknown, an engine panic).
    fn is_poisoned(&self) -> bool;
    /// Makes everything written so far durable, derived data included (clean shutdown).
    fn flush_all(&self) -> Result<(), StoreError>;
    /// Bytes the store occupies (0 where the engine cannot say).
    fn disk_bytes(&self) -> u64;
    /// A check to run after the last handle is dropped: waits up to the given time until the
    /// engine has let go of the store in this process, and says whether it did.
    fn release_waiter(&self) -> Box<dyn FnOnce(std::time::Duration) -> bool + Send> {
        Box::new(|_| true)
    }
}
