//! Derived indexes off the acknowledgement path: the writer hands each durable group's
//! subject tips and event ids to this thread, which coalesces whatever has queued up into
//! one sled batch with the new watermark. On open, [`catch_up`] replays the log above the
//! watermark, so a crash can lose index work but never index correctness.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use crate::writer::TestHooks;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvitto_core::{EventId, event_hash};
use kvitto_storage::{Backend, IndexBatch, StoreError, SubjectHeadRec};

use crate::writer::Shared;

/// Index work of one durable group.
#[derive(Debug)]
pub(crate) struct IndexWork {
    pub heads: Vec<(kvitto_core::SubjectId, SubjectHeadRec)>,
    pub event_ids: Vec<(EventId, u64)>,
    pub dirty: crate::persist::Dirty,
    /// Event hashes of the group, in seq order (the Merkle leaves).
    pub leaves: Vec<[u8; 32]>,
    pub watermark: u64,
}

/// Most events coalesced into one index batch.
const MAX_BATCH: usize = 16 * 1024;

/// The indexer waits up to this long for more groups before writing a batch: fewer, larger
/// sled batches cost far less CPU (which the writer needs on a small machine) and disk.
/// Nothing waits on it except proofs over the newest events.
const LINGER: Duration = Duration::from_millis(10);

/// Projection states are persisted after this many events (and when the ledger goes idle,
/// and on close). A crash loses at most this much projection work, which the next open
/// folds again from the log (≈0.1 s); persisting every group cost more CPU than the writer.
const PERSIST_EVERY: u64 = 64 * 1024;

/// Idle time after which pending projection states are persisted.
const PERSIST_IDLE: Duration = Duration::from_millis(500);

pub(crate) fn run(
    store: Arc<dyn Backend>,
    shared: Arc<Shared>,
    lock: Arc<Mutex<()>>,
    mut frontier: crate::tree::Frontier,
    rx: Receiver<IndexWork>,
) {
    // Projection states changed but not yet persisted (kept across a failed write).
    let mut dirty = crate::persist::Dirty::default();
    let mut persisted_at = shared.indexed.load(Ordering::Acquire);
    let mut watermark = persisted_at;
    loop {
        let first = match rx.recv_timeout(PERSIST_IDLE) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) => {
                persist(&*store, &shared, &mut dirty, watermark, &mut persisted_at);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if shared.hooks.fail_indexer.load(Ordering::Acquire) {
            panic!("injected indexer failure");
        }
        TestHooks::wait(&shared.hooks.pause_indexer);
        let mut batch = IndexBatch::default();
        let mut merge = |w: IndexWork, batch: &mut IndexBatch| {
            for leaf in &w.leaves {
                frontier.push(leaf, crate::tree::STORED_FLOOR, &mut batch.nodes);
            }
            batch.heads.extend(w.heads);
            batch.event_ids.extend(w.event_ids);
            batch.watermark = batch.watermark.max(w.watermark);
            dirty.subjects.extend(w.dirty.subjects);
            dirty.controllers.extend(w.dirty.controllers);
        };
        merge(first, &mut batch);
        let deadline = Instant::now() + LINGER;
        while batch.event_ids.len() < MAX_BATCH {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(w) => merge(w, &mut batch),
                Err(_) => break,
            }
        }
        watermark = batch.watermark;
        {
            // `verify` holds this lock to see the index standing still.
            let _guard = lock.lock();
            match store.apply_index(&batch) {
                Ok(()) => shared.indexed.store(batch.watermark, Ordering::Release),
                Err(e) => {
                    // Indexes are derived: the next open catches up from the log.
                    tracing::warn!(error = %e, watermark = batch.watermark, "index update failed; will catch up on reopen");
                }
            }
        }
        if watermark >= persisted_at + PERSIST_EVERY {
            persist(&*store, &shared, &mut dirty, watermark, &mut persisted_at);
        }
    }
    if store.is_poisoned() {
        // sled failed: nothing more is written to it (see `Store`'s `Drop`).
        return;
    }
    persist(&*store, &shared, &mut dirty, watermark, &mut persisted_at);
}

/// Writes the dirty projection states with `watermark` (kept dirty if the write fails).
fn persist(
    store: &dyn Backend,
    shared: &Shared,
    dirty: &mut crate::persist::Dirty,
    watermark: u64,
    persisted_at: &mut u64,
) {
    if dirty.is_empty() {
        return;
    }
    // States may already include later events than the watermark; folds are idempotent per
    // seq, so the catch-up on open simply skips them.
    let Ok(_persisting) = shared.persist_lock.lock() else { return };
    let encoded = match shared.projections.read() {
        Ok(p) => match crate::persist::batch(&p, dirty, watermark, true) {
            Ok(b) => b,
            Err(e) => {
                // Nothing written; the states stay dirty and the next open folds anew.
                tracing::error!(error = %e, watermark, "projection states do not encode; not persisting them");
                return;
            }
        },
        Err(_) => {
            // The handle is poisoned by then (see the committer); the next open folds anew.
            tracing::warn!(watermark, "projections lock poisoned; not persisting them");
            return;
        }
    };
    match store.apply_projections(&encoded) {
        Ok(()) => {
            *dirty = crate::persist::Dirty::default();
            *persisted_at = watermark;
        }
        Err(e) => {
            tracing::warn!(error = %e, watermark, "projection persist failed; retrying with the next batch")
        }
    }
}

/// Replays events above the index watermark into the index (subject tips, event ids,
/// Merkle nodes). Returns the Merkle frontier at `next_seq`.
pub(crate) fn catch_up(store: &dyn Backend, next_seq: u64) -> Result<crate::tree::Frontier, StoreError> {
    let mut from = store.index_watermark()?;
    if from > next_seq {
        tracing::warn!(watermark = from, next_seq, "index is ahead of the log; rebuilding it from seq 0");
        store.clear_index()?;
        from = 0;
    }
    if from > 0 && store.merkle_node(0, 0)?.is_some() {
        // An index written before the Merkle floor stores every level: rebuilt once, without
        // the levels below it (docs/FORMAT.md §6).
        tracing::warn!(watermark = from, "merkle index stores the levels below the floor; rebuilding it from seq 0");
        store.clear_index()?;
        from = 0;
    }
    let mut frontier = match crate::tree::Frontier::load(store, from) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "merkle nodes missing from the index; rebuilding it from seq 0");
            store.clear_index()?;
            from = 0;
            crate::tree::Frontier::default()
        }
    };
    if from == next_seq {
        return Ok(frontier);
    }
    let mut batch = IndexBatch::default();
    let mut heads: HashMap<kvitto_core::SubjectId, SubjectHeadRec> = HashMap::new();
    let replayed = crate::read::for_each_event(store, from, next_seq, |seq, record, event| {
        let hash = event_hash(&record.canonical);
        if let Some(link) = event.subject {
            heads
                .insert(link.subject, SubjectHeadRec { last_seq: seq, count: link.subject_seq + 1, last_hash: hash.0 });
        }
        batch.event_ids.push((event.event_id, seq));
        frontier.push(&hash.0, crate::tree::STORED_FLOOR, &mut batch.nodes);
        if batch.event_ids.len() >= MAX_BATCH {
            batch.heads = std::mem::take(&mut heads);
            batch.watermark = seq + 1;
            store.apply_index(&std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    batch.heads = heads;
    batch.watermark = next_seq;
    store.apply_index(&batch)?;
    tracing::info!(replayed, watermark = next_seq, "index caught up from the log");
    Ok(frontier)
}
