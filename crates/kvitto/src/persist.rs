//! Projections on disk, in sled's `projections` tree, as a snapshot plus deltas:
//! - `S ‖ u32be n`: snapshot chunks written by a rebuild, each ≤ 64 KiB holding many
//!   `(key, state)` pairs — a rebuild writes a few hundred values instead of one per subject;
//! - `s ‖ subject`, `c ‖ controller id`: per-state deltas written off the acknowledgement path
//!   by the indexer as states change; a delta overrides the snapshot entry with the same key;
//! - `w`: the watermark;
//! - `L`: u32be [`kvitto_projections::STATE_LAYOUT`] of the states above, and `F`: the
//!   32-byte schema fingerprint ([`schema_fingerprint`]), both written with every snapshot and
//!   delta batch. Stored states of another layout or fingerprint (or none recorded) are
//!   rebuilt from the log, with a warning: bincode would not reliably refuse the old bytes.
//!
//! Loaded on open and caught up from the log. Derived data: anything unreadable is rebuilt.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kvitto_core::{Id, SubjectId};
use kvitto_projections::{ControllerState, Projections, SubjectState};
use kvitto_storage::codec;
use kvitto_storage::{Backend, ProjectionBatch, StoreError};

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

/// Encodes the dirty states into one batch, each value compressed when `compress` (a
/// rebuild's snapshot leaves that to the backend: sled compresses its packed chunks whole).
pub(crate) fn batch(
    p: &Projections,
    dirty: &Dirty,
    watermark: u64,
    compress: bool,
) -> Result<ProjectionBatch, StoreError> {
    let stored = |v: Vec<u8>| if compress { codec::compress(v) } else { v };
    let mut entries = Vec::with_capacity(dirty.subjects.len() + dirty.controllers.len());
    for s in &dirty.subjects {
        if let Some(state) = p.subjects.get(s) {
            entries.push((subject_key(s), stored(codec::encode(state)?)));
        }
    }
    for c in &dirty.controllers {
        if let Some(state) = p.controllers.get(c) {
            entries.push((controller_key(c), stored(codec::encode(state)?)));
        }
    }
    entries.extend(version_entries()?);
    Ok(ProjectionBatch { entries, watermark })
}

/// One (key, value) pair of the projections tree.
type Entry = (Vec<u8>, Vec<u8>);

/// Key of the layout version of the stored states.
const LAYOUT_KEY: &[u8] = b"L";
/// Key of the schema fingerprint of the stored states.
const FINGERPRINT_KEY: &[u8] = b"F";

/// The layout and fingerprint entries written with every batch of states.
fn version_entries() -> Result<[Entry; 2], StoreError> {
    Ok([
        (LAYOUT_KEY.to_vec(), kvitto_projections::STATE_LAYOUT.to_be_bytes().to_vec()),
        (FINGERPRINT_KEY.to_vec(), schema_fingerprint()?.to_vec()),
    ])
}

/// The golden events folded (docs/FORMAT.md's vectors).
fn probe() -> Projections {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/golden/events.json")).unwrap_or_default();
    let mut p = Projections::default();
    for v in golden["vectors"].as_array().into_iter().flatten() {
        let bytes = v["preimage_hex"].as_str().and_then(|s| hex::decode(s).ok()).unwrap_or_default();
        if let Ok(e) = kvitto_core::decode_event(&bytes) {
            p.apply_owned(e);
        }
    }
    p
}

/// What the stored states' encoding depends on, as one hash: the state layout version and
/// the encoded states that folding the golden events of docs/golden/events.json gives (19
/// events of the kinds that shape subject and controller states). A field added, removed,
/// retyped or reordered in a state type — or a change in how an event folds — changes the
/// bytes, so states persisted by another build are rebuilt instead of misread, even when
/// nobody remembered to bump [`kvitto_projections::STATE_LAYOUT`].
pub(crate) fn schema_fingerprint() -> Result<[u8; 32], StoreError> {
    static FINGERPRINT: std::sync::OnceLock<Result<[u8; 32], (&'static str, String)>> = std::sync::OnceLock::new();
    let fingerprint = FINGERPRINT.get_or_init(|| {
        let mut h = blake3::Hasher::new_derive_key("kvitto 2026 projection schema fingerprint");
        h.update(&kvitto_projections::STATE_LAYOUT.to_be_bytes());
        let p = probe();
        let mut subjects: Vec<_> = p.subjects.iter().collect();
        subjects.sort_by_key(|(s, _)| s.0);
        let unencodable = |e: StoreError| match e {
            StoreError::Encode { what, why } => (what, why),
            other => ("projection state", other.to_string()),
        };
        for (s, st) in subjects {
            h.update(&s.0);
            h.update(&codec::encode(st).map_err(unencodable)?);
        }
        let mut controllers: Vec<_> = p.controllers.iter().collect();
        controllers.sort_by(|a, b| a.0.cmp(b.0));
        for (c, st) in controllers {
            h.update(c.as_str().as_bytes());
            h.update(&codec::encode(st).map_err(unencodable)?);
        }
        Ok(*h.finalize().as_bytes())
    });
    fingerprint.clone().map_err(|(what, why)| StoreError::Encode { what, why })
}

/// Loads persisted projections; `None` if any value is unreadable (then rebuild).
fn load(store: &dyn Backend) -> Result<Option<Projections>, StoreError> {
    let watermark = store.projection_watermark()?;
    let mut p = Projections { last_seq: watermark.checked_sub(1), ..Projections::default() };
    // The store yields a snapshot's entries first, then the deltas over them.
    let mut states: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = std::collections::BTreeMap::new();
    let mut layout = None;
    let mut fingerprint = None;
    for entry in store.projection_entries() {
        let (k, v) = match entry {
            Ok(kv) => kv,
            Err(StoreError::Corrupt { at, .. }) => {
                tracing::warn!(at, "a persisted projection does not decode; rebuilding projections from the log");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if k == LAYOUT_KEY {
            layout = <[u8; 4]>::try_from(v.as_slice()).ok().map(u32::from_be_bytes);
        } else if k == FINGERPRINT_KEY {
            fingerprint = <[u8; 32]>::try_from(v.as_slice()).ok();
        } else {
            states.insert(k, v);
        }
    }
    if watermark > 0 && layout != Some(kvitto_projections::STATE_LAYOUT) {
        tracing::warn!(
            found = layout,
            expected = kvitto_projections::STATE_LAYOUT,
            "persisted projections have another layout; rebuilding them from the log"
        );
        return Ok(None);
    }
    if watermark > 0 && fingerprint != Some(schema_fingerprint()?) {
        tracing::warn!(
            recorded = fingerprint.is_some(),
            "persisted projections were written under another schema fingerprint; rebuilding them from the log"
        );
        return Ok(None);
    }
    for (k, v) in states {
        let ok = match k.split_first() {
            Some((b's', id)) if id.len() == 16 => {
                let mut s = [0u8; 16];
                s.copy_from_slice(id);
                codec::decode_stored::<SubjectState>(&v, || "projection".into())
                    .map(|st| p.subjects.insert(SubjectId(s), st))
                    .is_ok()
            }
            Some((b'c', id)) => match std::str::from_utf8(id).ok().and_then(|s| Id::new(s).ok()) {
                Some(id) => codec::decode_stored::<ControllerState>(&v, || "projection".into())
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
fn fold(
    store: &dyn Backend,
    p: &mut Projections,
    from: u64,
    next_seq: u64,
    dirty: &mut Dirty,
) -> Result<u64, StoreError> {
    crate::read::for_each_event(store, from, next_seq, |_, _, e| {
        dirty.add(p.apply_owned(e));
        Ok(())
    })
}

/// Loads the persisted projections and catches them up to `next_seq`.
pub(crate) fn open(store: &dyn Backend, next_seq: u64) -> Result<Projections, StoreError> {
    match load(store)? {
        Some(mut p) if p.last_seq.map_or(0, |s| s + 1) <= next_seq => {
            let from = p.last_seq.map_or(0, |s| s + 1);
            let mut dirty = Dirty::default();
            let folded = fold(store, &mut p, from, next_seq, &mut dirty)?;
            if folded > 0 {
                store.apply_projections(&batch(&p, &dirty, next_seq, true)?)?;
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

/// Recomputes every projection from seq 0 and replaces what is persisted (on open, before
/// anything else runs; `Ledger::rebuild` does the same in steps, see there).
pub(crate) fn rebuild(store: &dyn Backend, next_seq: u64) -> Result<(Projections, RebuildReport), StoreError> {
    let (p, events, fold) = fold_all(store, next_seq)?;
    let persist = write_snapshot(store, &p, next_seq, || {})?;
    let subjects = p.subjects.len() as u64;
    Ok((p, RebuildReport { events, subjects, fold, persist }))
}

/// Events a reading thread hands the folding one at a time.
const FOLD_BATCH: usize = 1024;

/// Folds the first `next_seq` events into fresh projections, on two threads: one reads the
/// chunks and decodes the events (three fifths of the work), the other folds them in order.
pub(crate) fn fold_all(store: &dyn Backend, next_seq: u64) -> Result<(Projections, u64, Duration), StoreError> {
    let started = Instant::now();
    let mut p = Projections::default();
    let events = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<kvitto_core::Event>, StoreError>>(8);
        let reader = scope.spawn(move || {
            let mut batch = Vec::with_capacity(FOLD_BATCH);
            let read = crate::read::for_each_event(store, 0, next_seq, |_, _, e| {
                batch.push(e);
                if batch.len() == FOLD_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(FOLD_BATCH));
                    // The folding side stopped: so does reading (it reports its own outcome).
                    tx.send(Ok(full)).map_err(|_| StoreError::Corrupt {
                        at: "projections".into(),
                        what: "the folding thread stopped".into(),
                    })?;
                }
                Ok(())
            });
            let _ = tx.send(read.map(|_| batch));
        });
        let mut folded = 0u64;
        let mut outcome = Ok(());
        for batch in rx {
            match batch {
                Ok(events) => {
                    folded += events.len() as u64;
                    for e in events {
                        p.apply_owned(e);
                    }
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if reader.join().is_err() {
            return Err(StoreError::Corrupt { at: "projections".into(), what: "the reading thread panicked".into() });
        }
        outcome.map(|()| folded)
    })?;
    let fold_time = started.elapsed();
    tracing::info!(events, subjects = p.subjects.len(), fold_ms = fold_time.as_millis() as u64, "projections folded");
    Ok((p, events, fold_time))
}

/// Replaces every persisted state with a snapshot of `p` at `watermark`; `after_clear` runs
/// between clearing and writing (a test pause point). The caller holds the persist lock.
pub(crate) fn write_snapshot(
    store: &dyn Backend,
    p: &Projections,
    watermark: u64,
    after_clear: impl FnOnce(),
) -> Result<Duration, StoreError> {
    let persisting = Instant::now();
    store.clear_projections()?;
    after_clear();
    let cleared = persisting.elapsed();
    // Encoding is pure CPU: split it over both cores.
    let subjects: Vec<SubjectId> = p.subjects.keys().copied().collect();
    let (left, right) = subjects.split_at(subjects.len() / 2);
    let half = |part: &[SubjectId]| Dirty { subjects: part.iter().copied().collect(), controllers: HashSet::new() };
    let (encoded, other) = std::thread::scope(|scope| {
        let other = scope.spawn(|| batch(p, &half(right), watermark, false));
        let mine =
            batch(p, &Dirty { controllers: p.controllers.keys().cloned().collect(), ..half(left) }, watermark, false);
        (mine, other.join())
    });
    let mut encoded = encoded?;
    match other {
        Ok(b) => encoded.entries.extend(b?.entries),
        Err(_) => {
            return Err(StoreError::Corrupt { at: "projections".into(), what: "encoding thread panicked".into() });
        }
    }
    let bytes: usize = encoded.entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    // The halves' batches each end with the version entries; the snapshot records them once.
    encoded.entries.retain(|(k, _)| k != LAYOUT_KEY && k != FINGERPRINT_KEY);
    let mut entries = encoded.entries;
    let encoded_at = persisting.elapsed();
    let states = entries.len();
    entries.extend(version_entries()?);
    store.write_snapshot(&ProjectionBatch { entries, watermark })?;
    tracing::info!(
        clear_ms = cleared.as_millis() as u64,
        encode_ms = (encoded_at - cleared).as_millis() as u64,
        write_ms = (persisting.elapsed() - encoded_at).as_millis() as u64,
        bytes,
        states,
        "projections persisted as a snapshot"
    );
    Ok(persisting.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_probe_fills_subject_and_controller_states() {
        let p = probe();
        assert!(p.subjects.values().any(|s| !s.consent.is_empty()), "a subject with consent");
        assert!(p.subjects.values().any(|s| !s.erasure.is_empty()), "a subject with an erasure");
        assert!(p.controllers.values().any(|c| !c.purposes.is_empty()), "a controller with purposes");
        assert!(p.controllers.values().any(|c| !c.identity.is_empty()), "a controller with a declaration");
        assert_eq!(p.last_seq, Some(21), "all 22 golden events fold");
        let fingerprint = schema_fingerprint().expect("the probe states encode");
        assert_eq!(schema_fingerprint().expect("cached"), fingerprint);
        assert_ne!(fingerprint, [0; 32]);
    }
}
