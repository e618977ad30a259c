//! Projections on disk: each subject's and controller's state as one value in sled's
//! `projections` tree (`s ‖ subject`, `c ‖ controller id`), with a watermark. Loaded on open
//! and caught up from the log; written off the acknowledgement path by the indexer thread.
//! Derived data: anything unreadable is rebuilt from the log.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kvitto_core::{Id, SubjectId, decode_event};
use kvitto_projections::{ControllerState, Projections, SubjectState};
use kvitto_store::codec;
use kvitto_store::{ProjectionBatch, Store, StoreError};

fn subject_key(s: &SubjectId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b's');
    k.extend_from_slice(&s.0);
    k
}

fn controller_key(c: &Id) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + c.as_str().len());
    k.push(b'c');
    k.extend_from_slice(c.as_str().as_bytes());
    k
}

/// What changed since the last persist.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    pub subjects: HashSet<SubjectId>,
    pub controllers: HashSet<Id>,
}

impl Dirty {
    pub fn add(&mut self, t: kvitto_projections::Touched) {
        self.subjects.extend(t.subject);
        self.controllers.extend(t.controller);
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.controllers.is_empty()
    }
}

/// Encodes the dirty states into one batch.
pub(crate) fn batch(p: &Projections, dirty: &Dirty, watermark: u64) -> ProjectionBatch {
    let mut entries = Vec::with_capacity(dirty.subjects.len() + dirty.controllers.len());
    for s in &dirty.subjects {
        if let Some(state) = p.subjects.get(s) {
            entries.push((subject_key(s), codec::encode(state)));
        }
    }
    for c in &dirty.controllers {
        if let Some(state) = p.controllers.get(c) {
            entries.push((controller_key(c), codec::encode(state)));
        }
    }
    ProjectionBatch { entries, watermark }
}

/// Loads persisted projections; `None` if any value is unreadable (then rebuild).
fn load(store: &Store) -> Result<Option<Projections>, StoreError> {
    let watermark = store.projection_watermark()?;
    let mut p = Projections { last_seq: watermark.checked_sub(1), ..Projections::default() };
    for entry in store.projection_entries() {
        let (k, v) = entry?;
        let ok = match k.split_first() {
            Some((b's', id)) if id.len() == 16 => {
                let mut s = [0u8; 16];
                s.copy_from_slice(id);
                codec::decode::<SubjectState>(&v, || "projection".into())
                    .map(|st| p.subjects.insert(SubjectId(s), st))
                    .is_ok()
            }
            Some((b'c', id)) => match std::str::from_utf8(id).ok().and_then(|s| Id::new(s).ok()) {
                Some(id) => codec::decode::<ControllerState>(&v, || "projection".into())
                    .map(|st| p.controllers.insert(id, st))
                    .is_ok(),
                None => false,
            },
            _ => false,
        };
        if !ok {
            tracing::warn!("a persisted projection does not decode; rebuilding projections from the log");
            return Ok(None);
        }
    }
    Ok(Some(p))
}

/// Folds events `from..next_seq` of the log into `p`, recording what changed.
fn fold(store: &Store, p: &mut Projections, from: u64, next_seq: u64, dirty: &mut Dirty) -> Result<u64, StoreError> {
    let mut folded = 0;
    if from >= next_seq {
        return Ok(0);
    }
    'chunks: for chunk in store.chunks_from(from) {
        let (first, records) = chunk?;
        for (i, r) in records.iter().enumerate() {
            let seq = first + i as u64;
            if seq < from {
                continue;
            }
            if seq >= next_seq {
                break 'chunks;
            }
            let e = decode_event(&r.canonical)
                .map_err(|e| StoreError::Corrupt { at: format!("seq {seq}"), what: e.to_string() })?;
            dirty.add(p.apply(&e));
            folded += 1;
        }
    }
    Ok(folded)
}

/// Loads the persisted projections and catches them up to `next_seq`.
pub(crate) fn open(store: &Store, next_seq: u64) -> Result<Projections, StoreError> {
    match load(store)? {
        Some(mut p) if p.last_seq.map_or(0, |s| s + 1) <= next_seq => {
            let from = p.last_seq.map_or(0, |s| s + 1);
            let mut dirty = Dirty::default();
            let folded = fold(store, &mut p, from, next_seq, &mut dirty)?;
            if folded > 0 {
                store.apply_projections(&batch(&p, &dirty, next_seq))?;
                tracing::info!(folded, watermark = next_seq, "projections caught up from the log");
            }
            Ok(p)
        }
        _ => rebuild(store, next_seq).map(|(p, _)| p),
    }
}

/// What `rebuild` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events folded.
    pub events: u64,
    /// Subjects in the result.
    pub subjects: u64,
    /// Time to read and fold the log.
    pub fold: Duration,
    /// Time to write the states.
    pub persist: Duration,
}

/// Recomputes every projection from seq 0 and replaces what is persisted.
pub(crate) fn rebuild(store: &Store, next_seq: u64) -> Result<(Projections, RebuildReport), StoreError> {
    let started = Instant::now();
    let mut p = Projections::default();
    let mut dirty = Dirty::default();
    let events = fold(store, &mut p, 0, next_seq, &mut dirty)?;
    let fold_time = started.elapsed();
    let persisting = Instant::now();
    store.clear_projections()?;
    let all =
        Dirty { subjects: p.subjects.keys().copied().collect(), controllers: p.controllers.keys().cloned().collect() };
    store.apply_projections(&batch(&p, &all, next_seq))?;
    let report =
        RebuildReport { events, subjects: p.subjects.len() as u64, fold: fold_time, persist: persisting.elapsed() };
    tracing::info!(events, subjects = report.subjects, fold_ms = fold_time.as_millis() as u64, "projections rebuilt");
    Ok((p, report))
}
