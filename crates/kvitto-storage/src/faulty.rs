//! A fault-injecting wrapper around any backend: the n-th commit fails, before the engine
//! sees it ([`FailAt::Before`], the group is not written) or after the engine made it durable
//! ([`FailAt::After`], the caller is told the outcome is unknown). Either way the handle
//! poisons — it takes no more commits — and a reopen of the inner store must be whole.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kvitto_core::{EventId, SubjectId};
use kvitto_vault::Vault;

use crate::{
    Acked, Backend, CommitError, CommitStats, DerivedIndex, EventLog, Head, IndexBatch, Items, MapEntryRec,
    ProjectionBatch, ProjectionStore, Record, StoreError, SubjectHeadRec,
};

/// Where the injected failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAt {
    /// Before the inner backend sees the group.
    Before,
    /// After the inner backend committed it (as when a COMMIT's reply, or an fdatasync's
    /// result, is lost).
    After,
}

/// The wrapper.
#[derive(Debug)]
pub struct Faulty {
    inner: Box<dyn Backend>,
    fail_on: usize,
    at: FailAt,
    commits: AtomicUsize,
    poisoned: AtomicBool,
}

impl Faulty {
    /// Fails the `n`-th commit (1-based) at `at`.
    pub fn new(inner: Box<dyn Backend>, n: usize, at: FailAt) -> Self {
        Faulty { inner, fail_on: n, at, commits: AtomicUsize::new(0), poisoned: AtomicBool::new(false) }
    }
}

fn injected() -> StoreError {
    StoreError::Io(std::io::Error::other("injected failure"))
}

impl EventLog for Faulty {
    fn head(&self) -> Result<Head, StoreError> {
        self.inner.head()
    }
    fn acked(&self) -> Result<Acked, StoreError> {
        self.inner.acked()
    }
    fn commit(&self, first_seq: u64, records: &[Record], head: &Head) -> Result<CommitStats, CommitError> {
        if self.is_poisoned() {
            return Err(CommitError::NotWritten(StoreError::Poisoned));
        }
        let n = self.commits.fetch_add(1, Ordering::AcqRel) + 1;
        if n != self.fail_on {
            return self.inner.commit(first_seq, records, head);
        }
        self.poison();
        match self.at {
            FailAt::Before => Err(CommitError::NotWritten(injected())),
            FailAt::After => {
                self.inner.commit(first_seq, records, head)?;
                Err(CommitError::Unknown(injected()))
            }
        }
    }
    fn chunk_containing(&self, seq: u64) -> Result<Option<(u64, Vec<Record>)>, StoreError> {
        self.inner.chunk_containing(seq)
    }
    fn chunks_from(&self, from: u64) -> Items<'_, (u64, Vec<Record>)> {
        self.inner.chunks_from(from)
    }
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.inner.put_checkpoint(size, note)
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.inner.checkpoints()
    }
}

impl DerivedIndex for Faulty {
    fn index_watermark(&self) -> Result<u64, StoreError> {
        self.inner.index_watermark()
    }
    fn apply_index(&self, batch: &IndexBatch) -> Result<(), StoreError> {
        self.inner.apply_index(batch)
    }
    fn clear_index(&self) -> Result<(), StoreError> {
        self.inner.clear_index()
    }
    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        self.inner.merkle_node(level, index)
    }
    fn merkle_level(&self, level: u8) -> Items<'_, (u64, [u8; 32])> {
        self.inner.merkle_level(level)
    }
    fn subject_head(&self, subject: &SubjectId) -> Result<Option<SubjectHeadRec>, StoreError> {
        self.inner.subject_head(subject)
    }
    fn event_seq(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        self.inner.event_seq(id)
    }
    fn indexed_subject_heads(&self) -> Items<'_, (SubjectId, SubjectHeadRec)> {
        self.inner.indexed_subject_heads()
    }
    fn indexed_event_ids(&self) -> Items<'_, (EventId, u64)> {
        self.inner.indexed_event_ids()
    }
    fn index_snapshot(&self) -> Result<crate::IndexSnapshot, StoreError> {
        self.inner.index_snapshot()
    }
    fn map_snapshot(&self) -> Result<(u64, Vec<MapEntryRec>), StoreError> {
        self.inner.map_snapshot()
    }
    fn apply_map(
        &self,
        entries: &[MapEntryRec],
        size: u64,
        commitments: &[(u64, u64, [u8; 32])],
    ) -> Result<(), StoreError> {
        self.inner.apply_map(entries, size, commitments)
    }
    fn map_commitments(&self) -> Result<Vec<(u64, u64, [u8; 32])>, StoreError> {
        self.inner.map_commitments()
    }
    fn clear_map(&self) -> Result<(), StoreError> {
        self.inner.clear_map()
    }
}

impl ProjectionStore for Faulty {
    fn projection_watermark(&self) -> Result<u64, StoreError> {
        self.inner.projection_watermark()
    }
    fn apply_projections(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        self.inner.apply_projections(batch)
    }
    fn write_snapshot(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        self.inner.write_snapshot(batch)
    }
    fn projection_entries(&self) -> Items<'_, (Vec<u8>, Vec<u8>)> {
        self.inner.projection_entries()
    }
    fn clear_projections(&self) -> Result<(), StoreError> {
        self.inner.clear_projections()
    }
}

impl Backend for Faulty {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn vault(&self) -> &Vault {
        self.inner.vault()
    }
    fn poison(&self) {
        // The failure is injected, not the engine's: the inner store stays healthy (and a
        // sled store poisoned in-process would keep its lock until the process exits).
        self.poisoned.store(true, Ordering::Release);
    }
    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire) || self.inner.is_poisoned()
    }
    fn flush_all(&self) -> Result<(), StoreError> {
        self.inner.flush_all()
    }
    fn disk_bytes(&self) -> u64 {
        self.inner.disk_bytes()
    }
    fn release_waiter(&self) -> Box<dyn FnOnce(std::time::Duration) -> bool + Send> {
        self.inner.release_waiter()
    }
}
