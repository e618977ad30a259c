//! The storage traits on sled: each method delegates to [`Store`]'s own and turns the sled
//! backend's error into the backend-neutral one.

use kvitto_core::{EventId, SubjectId};
use kvitto_storage::{
    Acked, Backend, CommitError, CommitStats, DerivedIndex, EventLog, Head, IndexBatch, Items, MapEntryRec,
    ProjectionBatch, ProjectionStore, Record, StoreError, SubjectHeadRec,
};
use kvitto_vault::Vault;

use crate::Store;

fn items<'a, T: 'a>(it: impl Iterator<Item = Result<T, crate::StoreError>> + 'a) -> Items<'a, T> {
    Box::new(it.map(|r| r.map_err(StoreError::from)))
}

impl EventLog for Store {
    fn head(&self) -> Result<Head, StoreError> {
        Ok(Store::head(self)?)
    }
    fn acked(&self) -> Result<Acked, StoreError> {
        Ok(Store::acked(self)?)
    }
    fn commit(&self, first_seq: u64, records: &[Record], head: &Head) -> Result<CommitStats, CommitError> {
        Store::commit(self, first_seq, records, head)
    }
    fn chunk_containing(&self, seq: u64) -> Result<Option<(u64, Vec<Record>)>, StoreError> {
        Ok(Store::chunk_containing(self, seq)?)
    }
    fn chunks_from(&self, from: u64) -> Items<'_, (u64, Vec<Record>)> {
        items(Store::chunks_from(self, from))
    }
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        Ok(Store::put_checkpoint(self, size, note)?)
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(Store::checkpoints(self)?)
    }
    fn legacy_checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(Store::legacy_checkpoints(self)?)
    }
}

impl DerivedIndex for Store {
    fn index_watermark(&self) -> Result<u64, StoreError> {
        Ok(Store::index_watermark(self)?)
    }
    fn apply_index(&self, batch: &IndexBatch) -> Result<(), StoreError> {
        Ok(Store::apply_index(self, batch)?)
    }
    fn clear_index(&self) -> Result<(), StoreError> {
        Ok(Store::clear_index(self)?)
    }
    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(Store::merkle_node(self, level, index)?)
    }
    fn merkle_level(&self, level: u8) -> Items<'_, (u64, [u8; 32])> {
        items(Store::merkle_level(self, level))
    }
    fn subject_head(&self, subject: &SubjectId) -> Result<Option<SubjectHeadRec>, StoreError> {
        Ok(Store::subject_head(self, subject)?)
    }
    fn event_seq(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        Ok(Store::event_seq(self, id)?)
    }
    fn indexed_subject_heads(&self) -> Items<'_, (SubjectId, SubjectHeadRec)> {
        items(Store::indexed_subject_heads(self))
    }
    fn indexed_event_ids(&self) -> Items<'_, (EventId, u64)> {
        items(Store::indexed_event_ids(self))
    }
    fn map_snapshot(&self) -> Result<(u64, Vec<MapEntryRec>), StoreError> {
        Ok(Store::map_snapshot(self)?)
    }
    fn apply_map(
        &self,
        entries: &[MapEntryRec],
        size: u64,
        commitments: &[(u64, u64, [u8; 32])],
    ) -> Result<(), StoreError> {
        Ok(Store::apply_map(self, entries, size, commitments)?)
    }
    fn map_commitments(&self) -> Result<Vec<(u64, u64, [u8; 32])>, StoreError> {
        Ok(Store::map_commitments(self)?)
    }
    fn clear_map(&self) -> Result<(), StoreError> {
        Ok(Store::clear_map(self)?)
    }
}

impl ProjectionStore for Store {
    fn projection_watermark(&self) -> Result<u64, StoreError> {
        Ok(Store::projection_watermark(self)?)
    }
    fn apply_projections(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        Ok(Store::apply_projections(self, batch)?)
    }
    fn write_snapshot(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        Ok(Store::write_projection_snapshot(self, batch)?)
    }
    fn projection_entries(&self) -> Items<'_, (Vec<u8>, Vec<u8>)> {
        items(Store::projection_states(self))
    }
    fn clear_projections(&self) -> Result<(), StoreError> {
        Ok(Store::clear_projections(self)?)
    }
}

impl Backend for Store {
    fn kind(&self) -> &'static str {
        "sled"
    }
    fn location(&self) -> String {
        self.dir().join("store").display().to_string()
    }
    fn vault(&self) -> &Vault {
        Store::vault(self)
    }
    fn poison(&self) {
        self.abandon_on_drop();
    }
    fn is_poisoned(&self) -> bool {
        self.is_abandoned()
    }
    fn flush_all(&self) -> Result<(), StoreError> {
        Ok(Store::flush_all(self)?)
    }
    fn disk_bytes(&self) -> u64 {
        Store::disk_bytes(self)
    }
    fn release_waiter(&self) -> Box<dyn FnOnce(std::time::Duration) -> bool + Send> {
        let dir = self.dir().to_path_buf();
        Box::new(move |timeout| crate::log::wait_released(&dir, timeout))
    }
}
