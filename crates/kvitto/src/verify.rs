//! Full verification: re-derive every hash from the stored bytes, check both chains, the
//! stored back-links, the head, and the derived indexes. Trusts no stored hash.

use crate::StorageError;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use kvitto_core::{Erasures, EventHash, SubjectId};
use kvitto_proof::{ChainFault, ChainVerifier};
use kvitto_storage::Backend;

use crate::VerifyError;
use crate::failure::{CheckpointProblem, FailureReason, IndexProblem, NodeProblem, TreeVersion, VerifyFailure};

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked.
    pub count: u64,
    /// Re-derived hash of the last event checked.
    pub head: EventHash,
    /// Distinct subjects seen.
    pub subjects: u64,
    /// The first failure, if any.
    pub failure: Option<VerifyFailure>,
    /// Wall time.
    pub duration: Duration,
}

impl VerifyReport {
    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Events handed to verify's fold thread at a time.
const FOLD_BATCH: usize = 1024;
/// Index entries the index thread sends at a time.
const INDEX_BATCH: usize = 4096;

fn at(seq: u64, reason: FailureReason) -> VerifyFailure {
    VerifyFailure::at(seq, reason)
}

/// Runs every check. `index_lock` holds the indexer still only while the index watermark and
/// the subject heads are read (a snapshot of the index at its watermark); event ids and Merkle
/// nodes below the watermark never change, so they are streamed while appends, proofs and
/// checkpoints go on.
///
/// `erasures` are the recorded erasures per subject as the projections held them when verify
/// began: covered details whose key still opens them are an erasure not carried out. A
/// missing key is accepted when an erasure in the log covers it. `live(n)` gives the
/// projections that answer queries once they have folded the first `n` events (`None`: they
/// did not in time); they are compared with a fresh fold of the verified events.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify_store<'p>(
    store: &dyn Backend,
    ledger_dir: &std::path::Path,
    index_lock: &std::sync::Mutex<()>,
    origin: &str,
    erasures: &HashMap<SubjectId, Erasures>,
    live: &mut dyn FnMut(u64) -> Option<LiveProjections<'p>>,
    held: Option<(u64, [u8; 32])>,
    progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, VerifyError> {
    // Three threads: one reads chunks and decodes and hashes every event (the bulk of the
    // work, and independent per event), one reads the derived index, and this one checks in
    // order. Bounded channels keep memory flat; dropping a receiver (on the first failure, or
    // when verify returns) stops its reader.
    // The index as of its watermark: read before the log's head, so the head is never behind it.
    let (watermark, heads) = {
        let _still = index_lock.lock();
        store.index_snapshot()?
    };
    // Then the acknowledged head, then the log's head — the writer updates them in the other
    // order, so read in this one the acknowledged head never runs ahead of the head verify
    // checks against (appends may continue) — and only then start reading the log: a reader
    // started before the head is read may end its stream before events the head counts (on
    // PostgreSQL a page of chunks is a query, and a short page ends the stream).
    let start = Start { watermark, subjects: heads.len() as u64, acked: store.acked()?, head: store.head()? };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(16);
        s.spawn(move || {
            for chunk in store.chunks_from(0) {
                let batch = match chunk {
                    Ok((first, records)) => records
                        .into_iter()
                        .enumerate()
                        .map(|(i, record)| {
                            let decoded = kvitto_core::decode_event(&record.canonical).map_err(|e| e.to_string());
                            let hash = kvitto_core::event_hash(&record.canonical);
                            let leaf = <kvitto_proof::LogHash as kvitto_proof::TreeHash>::leaf(&hash.0);
                            Ok((first + i as u64, record, decoded, hash, leaf))
                        })
                        .collect(),
                    Err(e) => vec![Err(e)],
                };
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        // A third thread reads the derived index, which is compared once the chain reaches
        // the index watermark.
        let (itx, irx) = std::sync::mpsc::sync_channel::<Vec<IndexItem>>(64);
        s.spawn(move || {
            let heads = heads.into_iter().map(|(s, h)| Ok(IndexEntry::Head(s, h)));
            let ids = store.indexed_event_ids().map(|r| r.map(|(id, seq)| IndexEntry::Id(id, seq)));
            let mut batch = Vec::with_capacity(INDEX_BATCH);
            for item in heads.chain(ids) {
                batch.push(item);
                // Each batch starts at its full size: one grown from empty reallocates a dozen
                // times, into memory fresh from the kernel each time.
                if batch.len() == INDEX_BATCH
                    && itx.send(std::mem::replace(&mut batch, Vec::with_capacity(INDEX_BATCH))).is_err()
                {
                    return;
                }
            }
            let _ = itx.send(batch);
        });
        // A fourth re-reads the key vault's files (tags, pseudonyms, keys in use).
        let frames = s.spawn(|| store.vault().check_files());
        let index = irx.into_iter().flatten();
        let records = rx.into_iter().flatten().peekable();
        let mut report =
            check_stream(store, ledger_dir, origin, start, erasures, live, held, progress, records, index)?;
        let fault = frames
            .join()
            .map_err(|_| VerifyError::Storage(StorageError::Internal("the vault check panicked".into())))?
            .map_err(|e| VerifyError::Storage(e.into()))?;
        if report.failure.is_none()
            && let Some(kvitto_vault::FrameFault { segment, offset, problem }) = fault
        {
            report.failure = Some(VerifyFailure::ledger(FailureReason::VaultFrame { segment, offset, problem }));
        }
        tracing::info!(
            events = report.count,
            ok = report.is_ok(),
            duration_ms = report.duration.as_millis() as u64,
            "verify finished"
        );
        Ok(report)
    })
}

/// What verify reads before it starts reading the log, in this order.
struct Start {
    /// The index watermark.
    watermark: u64,
    /// Subjects in the index (room is made for them up front).
    subjects: u64,
    /// The acknowledged head (read before the log's head: field initialisers run in order).
    acked: kvitto_storage::Acked,
    /// The log's head: verify checks the log up to it.
    head: kvitto_storage::Head,
}

/// One entry of the derived index, as read by the index thread.
enum IndexEntry {
    Head(kvitto_core::SubjectId, kvitto_storage::SubjectHeadRec),
    Id(kvitto_core::EventId, u64),
}

type IndexItem = Result<IndexEntry, kvitto_storage::StoreError>;

/// A stored record with its key seq, decoded event, re-derived hash and Merkle leaf (or why
/// its chunk did not decode).
type Prepared = Result<
    (u64, kvitto_storage::Record, Result<kvitto_core::Event, String>, EventHash, kvitto_proof::Hash),
    kvitto_storage::StoreError,
>;

/// The erasures the projections record, per subject that has any.
pub(crate) fn recorded_erasures(p: &kvitto_projections::Projections) -> HashMap<SubjectId, Erasures> {
    p.subjects.iter().filter(|(_, st)| !st.erasure.is_empty()).map(|(s, st)| (*s, st.erasures())).collect()
}

/// The projections that answer queries, held still while they are compared.
pub(crate) type LiveProjections<'p> = std::sync::RwLockReadGuard<'p, kvitto_projections::Projections>;

#[allow(clippy::too_many_arguments)]
fn check_stream<'p>(
    store: &dyn Backend,
    ledger_dir: &std::path::Path,
    origin: &str,
    Start { watermark, subjects, acked, head }: Start,
    erasures: &HashMap<SubjectId, Erasures>,
    live: &mut dyn FnMut(u64) -> Option<LiveProjections<'p>>,
    held: Option<(u64, [u8; 32])>,
    mut progress: impl FnMut(u64, u64),
    mut records: std::iter::Peekable<impl Iterator<Item = Prepared>>,
    index: impl Iterator<Item = IndexItem>,
) -> Result<VerifyReport, VerifyError> {
    let mut index = Some(index);
    let started = Instant::now();
    let storage = VerifyError::from;
    // A reader beside another process's writer: keys are put before their events commit, so
    // the vault read now holds every key up to this head.
    store.vault().reload().map_err(|e| VerifyError::Storage(e.into()))?;
    let mut cv = ChainVerifier::with_capacity(true, head.next_seq, subjects);
    let mut levels = Vec::new();
    // Signed checkpoints: each root is recomputed from the events at its size.
    let checkpoints = store.checkpoints().map_err(storage)?;
    let signer = kvitto_vault::keyfiles::signing_seed(ledger_dir)
        .map_err(|e| VerifyError::Storage(StorageError::Corrupt { at: "checkpoint.key".into(), what: e.to_string() }))?
        .map(|s| ed25519_dalek::SigningKey::from_bytes(&s).verifying_key());
    let mut frontier = crate::tree::Frontier::<kvitto_proof::LogHash>::default();
    let mut completed = Vec::new();
    let mut next_checkpoint = checkpoints.iter().peekable();
    // Checkpoints signed over the BLAKE3 tree of v1: their roots are recomputed from the events
    // with that tree (kept only when there are any).
    let legacy = store.legacy_checkpoints().map_err(storage)?;
    let mut legacy_frontier =
        (!legacy.is_empty() || held.is_some()).then(crate::tree::Frontier::<kvitto_proof::Blake3>::default);
    let mut next_legacy = legacy.iter().peekable();
    let mut checkpoint_failure = None;
    let mut previous: Option<(u64, [u8; 32])> = None;
    // The subject map, recomputed from the events: each commitment's root must be the root of
    // the map over the first `tree_size` events (subject updates wait in `map_pending` until a
    // commitment says how far they count).
    let mut map = kvitto_proof::map::SubjectMap::new();
    // (Some room up front: with commitments far apart it holds much of the log. Not more: a
    // ring buffer cycles through all its room, so a large one would be touched in full even
    // where frequent commitments keep it short.)
    let mut map_pending: std::collections::VecDeque<(u64, kvitto_proof::map::Key, kvitto_proof::map::MapEntry)> =
        std::collections::VecDeque::with_capacity(head.next_seq.min(1 << 16) as usize);
    let mut map_failure = None;
    let mut last_commitment: Option<u64> = None;
    let mut held_failure = None;
    let mut failure = None;
    // Every verified event folded afresh, to compare with the projections that answer queries:
    // on its own thread (the fold costs as much as every other check of this one together),
    // fed in batches; it ends when `to_fold` is dropped.
    let (to_fold, fold_rx) = std::sync::mpsc::sync_channel::<Vec<kvitto_core::Event>>(16);
    let folder = std::thread::Builder::new()
        .name("kvitto-verify-fold".into())
        .spawn(move || {
            let mut fresh = kvitto_projections::Projections::default();
            for batch in fold_rx {
                for e in batch {
                    fresh.apply_owned(e);
                }
            }
            fresh
        })
        .map_err(|e| VerifyError::Storage(StorageError::Internal(format!("could not start the fold thread: {e}"))))?;
    let mut to_fold = Some(to_fold);
    let mut fold_batch: Vec<kvitto_core::Event> = Vec::with_capacity(FOLD_BATCH);
    let report = |cv: &ChainVerifier, failure| VerifyReport {
        count: cv.count(),
        head: cv.head(),
        subjects: cv.subjects().len() as u64,
        failure,
        duration: started.elapsed(),
    };
    // An index mismatch ranks below any chain or head fault: those say which event is bad.
    let mut index_failure = None;
    let mut vault_failure = None;
    let no_erasures = Erasures::default();
    // The erasures the log records, to compare with those the decisions above relied on.
    let mut seen_erasures: HashMap<SubjectId, Vec<(u64, Option<kvitto_core::Id>)>> = HashMap::new();
    // Sealed details whose key is missing and that no erasure known at the start covers.
    let mut unresolved: Vec<(u64, SubjectId, String)> = Vec::new();
    // Sealed details whose key exists but does not open them (or whose plaintext does not
    // match the commitment).
    let mut damaged: Vec<(u64, SubjectId, String)> = Vec::new();
    // Event ids the indexer added while verify ran (at or past the watermark), checked once
    // the chain has reached them.
    let mut later = Vec::new();
    if watermark == 0 {
        index_failure = check_index(index.take().into_iter().flatten(), &cv, 0, &mut later).map_err(storage)?;
    }
    while failure.is_none() && cv.count() < head.next_seq {
        let Some(item) = records.next() else { break };
        let (key_seq, record, decoded, hash, leaf) = match item {
            Ok(v) => v,
            Err(e) => {
                failure = Some(at(cv.count(), FailureReason::ChunkUndecodable(e.to_string())));
                break;
            }
        };
        if key_seq != cv.count() {
            failure = Some(at(
                cv.count(),
                if key_seq > cv.count() {
                    FailureReason::RecordMissing { next_stored: key_seq }
                } else {
                    FailureReason::RecordDuplicated { stored: key_seq }
                },
            ));
            break;
        }
        let (event, _) = match cv.push_decoded(decoded, hash, record.back_link) {
            Ok(v) => v,
            Err(fault @ ChainFault::PrevHashMismatch { seq, .. }) => {
                // Blame the event that was altered: if this one still hashes to what its
                // successor (or the stored head) recorded, it is intact and its predecessor
                // changed after it was sealed.
                let own = hash;
                let recorded_by_next = match records.peek() {
                    Some(Ok((_, _, next, _, _))) => next.as_ref().ok().map(|e| e.prev_hash),
                    Some(Err(_)) => None,
                    None => Some(EventHash(head.head_hash)),
                };
                failure = Some(if recorded_by_next == Some(own) && seq > 0 {
                    at(seq - 1, FailureReason::Altered { sealed_into: seq })
                } else {
                    at(fault.seq(), FailureReason::Chain(fault))
                });
                break;
            }
            Err(fault) => {
                failure = Some(at(fault.seq(), FailureReason::Chain(fault)));
                break;
            }
        };
        if record.sealed.is_some() != event.payload_commitment.is_some() {
            failure = Some(at(
                event.seq,
                if record.sealed.is_some() { FailureReason::UncommittedDetails } else { FailureReason::DetailsMissing },
            ));
            break;
        }
        if let (Some(link), kvitto_core::EventKind::DataErased { register, .. }) = (&event.subject, &event.kind) {
            seen_erasures.entry(link.subject).or_default().push((event.seq, register.clone()));
        }
        if let Some(link) = event.subject {
            map_pending.push_back((
                event.seq,
                link.subject.0,
                kvitto_proof::map::MapEntry { count: link.subject_seq + 1, head: hash.0 },
            ));
        }
        if let kvitto_core::EventKind::SubjectMapCommitted { tree_size, subjects, map_root } = &event.kind
            && map_failure.is_none()
        {
            map_failure = check_commitment(
                event.seq,
                *tree_size,
                *subjects,
                &map_root.0,
                &mut map,
                &mut map_pending,
                &mut last_commitment,
            );
        }
        if vault_failure.is_none()
            && let Some(sealed) = &record.sealed
            && let Some(link) = event.subject
        {
            let slot = kvitto_vault::slot(&event.kind);
            let key = store.vault().slot_key(&link.subject, Some(slot));
            let covering = erasures.get(&link.subject).unwrap_or(&no_erasures).covering(event.seq, slot);
            vault_failure = match (covering, key) {
                // The key is there and no erasure covers the details: they must open (AEAD tag)
                // and match the event's commitment. One that does not is decided at the end
                // against the log's own erasures (one committed while verify ran may have
                // replaced the key).
                (None, kvitto_vault::SlotKey::Key(k)) => {
                    let opens = kvitto_vault::open(&k, &link.subject, &event.event_id, sealed).is_ok_and(
                        |(salt, plaintext)| {
                            Some(kvitto_core::payload_commitment(&salt, &plaintext)) == event.payload_commitment
                        },
                    );
                    if !opens {
                        damaged.push((event.seq, link.subject, slot.to_string()));
                    }
                    None
                }
                (Some(_), kvitto_vault::SlotKey::NoSubject) => None,
                // A missing key is erased exactly when a recorded erasure covers it: decided at
                // the end from the log itself (the erasure comes later in the log; one
                // committed while verify runs destroys keys behind the head it read).
                (None, _) => {
                    unresolved.push((event.seq, link.subject, slot.to_string()));
                    None
                }
                (Some(_), kvitto_vault::SlotKey::NoSlot) => None,
                // The slot holds a key: a new one made after the erasure, unless it still opens
                // the erased details.
                (Some(by), kvitto_vault::SlotKey::Key(k))
                    if kvitto_vault::open(&k, &link.subject, &event.event_id, sealed).is_ok() =>
                {
                    // Unless the erasure is being carried out right now (its group is folded
                    // before its keys go, and its pending record lives until they have): read
                    // the record, then the key again — an erasure not pending any more is done.
                    let in_progress = store
                        .vault()
                        .pending()
                        .map_err(|e| VerifyError::Storage(e.into()))?
                        .iter()
                        .any(|p| p.seq == by);
                    let still = match store.vault().slot_key(&link.subject, Some(slot)) {
                        kvitto_vault::SlotKey::Key(k) => {
                            kvitto_vault::open(&k, &link.subject, &event.event_id, sealed).is_ok()
                        }
                        _ => false,
                    };
                    (!in_progress && still)
                        .then(|| at(event.seq, FailureReason::ErasureNotCarriedOut { erased_by: by }))
                }
                // A new key made after the erasure: it does not open the erased details.
                (Some(_), kvitto_vault::SlotKey::Key(_)) => None,
            };
        }
        completed.clear();
        frontier.push_leaf(leaf, crate::tree::STORED_FLOOR, &mut completed);
        while let Some((size, note)) = next_checkpoint.peek() {
            if *size != frontier.size() {
                break;
            }
            if checkpoint_failure.is_none() {
                checkpoint_failure =
                    check_checkpoint(store, note, *size, frontier.root(), signer.as_ref(), origin, Some(&mut previous));
            }
            next_checkpoint.next();
        }
        if let Some(f) = legacy_frontier.as_mut() {
            // Only its roots are checked: no node is collected (no level reaches `u8::MAX`).
            f.push(&hash.0, u8::MAX, &mut Vec::new());
            while let Some((size, note)) = next_legacy.peek() {
                if *size != f.size() {
                    break;
                }
                if checkpoint_failure.is_none() {
                    checkpoint_failure = check_checkpoint(store, note, *size, f.root(), signer.as_ref(), origin, None)
                        .map(|e| match e.reason {
                            FailureReason::Checkpoint { size, problem, .. } => VerifyFailure {
                                reason: FailureReason::Checkpoint { size, tree: TreeVersion::V1Blake3, problem },
                                ..e
                            },
                            _ => e,
                        });
                }
                next_legacy.next();
            }
        }
        if let Some((size, root)) = held
            && size == frontier.size()
            && held_failure.is_none()
            && frontier.root() != root
        {
            // A checkpoint signed over the BLAKE3 tree of v1, before this ledger migrated, is
            // of the same history: not a fork.
            let v1 = legacy_frontier.as_ref().is_some_and(|f| f.size() == size && f.root() == root);
            if !v1 {
                held_failure = Some(at(
                    size - 1,
                    FailureReason::Fork { size, derived: EventHash(frontier.root()), held: EventHash(root) },
                ));
            }
        }
        if event.seq < watermark && index_failure.is_none() {
            // Every stored Merkle node (the levels from `STORED_FLOOR` up) against the nodes
            // re-derived from the events, in lockstep, one stream per level.
            index_failure = completed.iter().find_map(|&(level, index, node)| {
                let above = usize::from(level - crate::tree::STORED_FLOOR);
                while levels.len() <= above {
                    levels.push(store.merkle_level(crate::tree::STORED_FLOOR + levels.len() as u8));
                }
                let bad = |problem| Some(at(event.seq, FailureReason::MerkleNode { level, index, problem }));
                match levels[above].next() {
                    Some(Ok((i, stored))) if i == index && stored == node => None,
                    Some(Ok((i, _))) if i == index => bad(NodeProblem::Mismatch),
                    Some(Ok((i, _))) => bad(NodeProblem::Skips(i)),
                    Some(Err(e)) => bad(NodeProblem::Unreadable(e.to_string())),
                    None => bad(NodeProblem::Missing),
                }
            });
        }
        if cv.count() == watermark {
            index_failure =
                index_failure
                    .or(check_index(index.take().into_iter().flatten(), &cv, watermark, &mut later).map_err(storage)?);
        }
        fold_batch.push(event);
        if fold_batch.len() == FOLD_BATCH
            && let Some(tx) = &to_fold
            && tx.send(std::mem::replace(&mut fold_batch, Vec::with_capacity(FOLD_BATCH))).is_err()
        {
            // The fold thread panicked: reported when it is joined below.
            to_fold = None;
        }
        if cv.count().is_multiple_of(65_536) {
            progress(cv.count(), head.next_seq);
        }
    }
    progress(cv.count(), head.next_seq);
    if let Some(tx) = to_fold.take() {
        let _ = tx.send(std::mem::take(&mut fold_batch));
    }
    let fresh = folder
        .join()
        .map_err(|_| VerifyError::Storage(StorageError::Internal("the projection fold of verify panicked".into())))?;
    if failure.is_none() && cv.count() < head.next_seq {
        failure = Some(at(cv.count(), FailureReason::HeadBeyondLog { head: head.next_seq, log: cv.count() }));
    }
    if failure.is_none() && cv.head().0 != head.head_hash {
        failure = Some(VerifyFailure {
            seq: cv.count().checked_sub(1),
            reason: FailureReason::HeadHash { derived: cv.head(), stored: EventHash(head.head_hash) },
        });
    }
    if failure.is_none() {
        failure = check_acked(store, acked, cv.count()).map_err(storage)?;
    }
    if index_failure.is_none() {
        index_failure =
            later.iter().filter(|(_, seq)| *seq < cv.count()).find(|(id, seq)| cv.event_id_seq(id) != Some(*seq)).map(
                |&(id, seq)| {
                    VerifyFailure::ledger(FailureReason::Index {
                        watermark,
                        problem: IndexProblem::EventId { id, indexed: seq, chain: cv.event_id_seq(&id) },
                    })
                },
            );
    }
    if failure.is_none() && watermark > cv.count() {
        failure = Some(VerifyFailure::ledger(FailureReason::WatermarkBeyondLog { watermark, log: cv.count() }));
    }
    if failure.is_none() && vault_failure.is_none() && !(unresolved.is_empty() && damaged.is_empty()) {
        // The log's own erasures: the verified ones, and any committed since verify read the
        // head (their keys may have gone while it ran).
        let mut logged: HashMap<SubjectId, Erasures> =
            seen_erasures.iter().map(|(s, v)| (*s, Erasures::new(v.clone()))).collect();
        crate::read::for_each_event(store, cv.count(), u64::MAX, |_, _, e| {
            if let (Some(l), kvitto_core::EventKind::DataErased { register, .. }) = (&e.subject, &e.kind) {
                logged.entry(l.subject).or_default().push(e.seq, register.clone());
            }
            Ok(())
        })
        .map_err(storage)?;
        vault_failure = unresolved
            .iter()
            .find(|(seq, s, slot)| logged.get(s).is_none_or(|e| e.covering(*seq, slot).is_none()))
            .map(|(seq, _, slot)| at(*seq, FailureReason::KeyMissing { slot: slot.clone() }));
        vault_failure = vault_failure.or_else(|| {
            damaged
                .iter()
                .find(|(seq, s, slot)| logged.get(s).is_none_or(|e| e.covering(*seq, slot).is_none()))
                .map(|(seq, _, slot)| at(*seq, FailureReason::SealedDetailsDamaged { slot: slot.clone() }))
        });
    }
    if failure.is_none() && vault_failure.is_none() {
        // The projections' erasures must be exactly those the verified events record (taken
        // once the projections have folded every verified event; skipped if they never do).
        let verified = cv.count();
        if let Some(live) = live(verified) {
            let erasures = recorded_erasures(&live);
            let relied: HashMap<&SubjectId, Vec<&(u64, Option<kvitto_core::Id>)>> = erasures
                .iter()
                .map(|(s, e)| (s, e.as_slice().iter().filter(|(seq, _)| *seq < verified).collect::<Vec<_>>()))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            let seen: HashMap<&SubjectId, Vec<&(u64, Option<kvitto_core::Id>)>> =
                seen_erasures.iter().map(|(s, v)| (s, v.iter().collect())).collect();
            vault_failure = if relied != seen {
                Some(VerifyFailure::ledger(FailureReason::ProjectionErasures))
            } else {
                check_projections(&live, &fresh, verified)
            };
        }
    }
    if checkpoint_failure.is_none()
        && let Some((size, _)) = next_checkpoint.next().or(next_legacy.next())
    {
        checkpoint_failure =
            Some(VerifyFailure::ledger(FailureReason::CheckpointBeyondLog { size: *size, log: cv.count() }));
    }
    if let Some((size, _)) = held
        && cv.count() < size
        && failure.is_none()
    {
        held_failure = Some(VerifyFailure::ledger(FailureReason::Rollback { log: cv.count(), held: size }));
    }
    let r = report(
        &cv,
        held_failure.or(failure).or(checkpoint_failure).or(map_failure).or(vault_failure).or(index_failure),
    );
    Ok(r)
}

/// One stored checkpoint: signed by the ledger's key, for this origin and size, with the root
/// the events give (`root`), and — with `previous` — consistent with the previous checkpoint
/// through the stored tree.
fn check_checkpoint(
    store: &dyn Backend,
    note: &str,
    size: u64,
    root: kvitto_proof::Hash,
    signer: Option<&ed25519_dalek::VerifyingKey>,
    origin: &str,
    previous: Option<&mut Option<(u64, [u8; 32])>>,
) -> Option<VerifyFailure> {
    let fail = |problem| {
        Some(VerifyFailure {
            seq: size.checked_sub(1),
            reason: FailureReason::Checkpoint { size, tree: TreeVersion::V2, problem },
        })
    };
    let Some(key) = signer else { return fail(CheckpointProblem::NoKey) };
    let c = match kvitto_proof::checkpoint::open(note, origin, key) {
        Ok(c) => c,
        Err(e) => return fail(CheckpointProblem::Note(e.to_string())),
    };
    if c.size != size {
        return fail(CheckpointProblem::Size { note: c.size });
    }
    if c.root != root {
        return fail(CheckpointProblem::Root { signed: EventHash(c.root), derived: EventHash(root) });
    }
    if c.origin != origin {
        return fail(CheckpointProblem::Origin { found: c.origin, expected: origin.to_string() });
    }
    // Consistency with the previous checkpoint, from the stored tree (what a witness checks).
    let previous = previous?;
    if let Some((size1, root1)) = *previous
        && size1 < size
    {
        use kvitto_proof::{LogHash, merkle};
        let proof = merkle::consistency_proof::<LogHash>(&crate::tree::StoredTree::new(store), size1, size);
        let checked = proof.and_then(|p| {
            let p: Vec<Vec<u8>> = p.iter().map(|h| h.to_vec()).collect();
            merkle::verify_consistency::<LogHash>(size1, size, &p, &root1, &c.root)
        });
        if let Err(e) = checked {
            return fail(CheckpointProblem::Inconsistent { previous: size1, error: e.to_string() });
        }
    }
    *previous = Some((size, root));
    None
}

/// One `subject_map_committed` at `seq`: it covers events before itself, never fewer than the
/// previous one, and its root and subject count are those of the map the events give.
fn check_commitment(
    seq: u64,
    tree_size: u64,
    subjects: u64,
    root: &[u8; 32],
    map: &mut kvitto_proof::map::SubjectMap,
    pending: &mut std::collections::VecDeque<(u64, kvitto_proof::map::Key, kvitto_proof::map::MapEntry)>,
    last: &mut Option<u64>,
) -> Option<VerifyFailure> {
    if tree_size > seq {
        return Some(at(seq, FailureReason::MapCoversTooMuch { tree_size }));
    }
    if let Some(prev) = *last
        && tree_size < prev
    {
        return Some(at(seq, FailureReason::MapGoesBack { tree_size, previous: prev }));
    }
    *last = Some(tree_size);
    while pending.front().is_some_and(|(s, _, _)| *s < tree_size) {
        if let Some((_, k, e)) = pending.pop_front() {
            map.insert(k, e);
        }
    }
    let recomputed = map.root();
    if &recomputed != root || map.len() != subjects {
        return Some(at(
            seq,
            FailureReason::MapRoot {
                tree_size,
                root: EventHash(*root),
                subjects,
                derived: EventHash(recomputed),
                derived_subjects: map.len(),
            },
        ));
    }
    None
}

/// The projections that answer queries against a fresh fold of the first `verified` events.
/// A state that folded later events (appends while verify ran) is not compared.
fn check_projections(
    live: &kvitto_projections::Projections,
    fresh: &kvitto_projections::Projections,
    verified: u64,
) -> Option<VerifyFailure> {
    use crate::failure::StateOwner;
    let settled = |last: Option<u64>| last.is_none_or(|s| s < verified);
    let differs = |owner, part| Some(VerifyFailure::ledger(FailureReason::Projection { owner, part }));
    for (s, f) in fresh.subjects.iter() {
        match live.subjects.get(s) {
            Some(l) if !settled(l.last_seq) => {}
            Some(l) => {
                if let Some(part) = kvitto_projections::subject_difference(l, f) {
                    return differs(StateOwner::Subject(*s), part);
                }
            }
            None => return differs(StateOwner::Subject(*s), "missing"),
        }
    }
    if let Some((s, _)) = live.subjects.iter().find(|(s, l)| settled(l.last_seq) && !fresh.subjects.contains_key(*s)) {
        return differs(StateOwner::Subject(*s), "not in the log");
    }
    for (c, f) in &fresh.controllers {
        match live.controllers.get(c) {
            Some(l) if !settled(l.last_seq) => {}
            Some(l) => {
                if let Some(part) = kvitto_projections::controller_difference(l, f) {
                    return differs(StateOwner::Controller(c.clone()), part);
                }
            }
            None => return differs(StateOwner::Controller(c.clone()), "missing"),
        }
    }
    live.controllers
        .iter()
        .find(|(c, l)| settled(l.last_seq) && !fresh.controllers.contains_key(*c))
        .and_then(|(c, _)| differs(StateOwner::Controller(c.clone()), "not in the log"))
}

/// The acknowledged head recorded outside sled must lie within the verified chain and name
/// the same event hash there (a rewritten history that re-chains cleanly still differs here).
fn check_acked(
    store: &dyn Backend,
    acked: kvitto_storage::Acked,
    count: u64,
) -> Result<Option<VerifyFailure>, kvitto_storage::StoreError> {
    if acked.next_seq == 0 {
        return Ok(None);
    }
    if acked.next_seq > count {
        return Ok(Some(at(count, FailureReason::AckedBeyondLog { acked: acked.next_seq, log: count })));
    }
    let seq = acked.next_seq - 1;
    let hash = store.record(seq)?.map(|r| kvitto_core::event_hash(&r.canonical));
    Ok((hash.map(|h| h.0) != Some(acked.head_hash))
        .then(|| at(seq, FailureReason::AckedHash { acked: EventHash(acked.head_hash) })))
}

/// Compares the derived index (as of `watermark` events) with the re-derived chain state.
fn check_index(
    entries: impl Iterator<Item = IndexItem>,
    cv: &ChainVerifier,
    watermark: u64,
    later: &mut Vec<(kvitto_core::EventId, u64)>,
) -> Result<Option<VerifyFailure>, kvitto_storage::StoreError> {
    let idx = |problem| Some(VerifyFailure::ledger(FailureReason::Index { watermark, problem }));
    let (mut heads, mut ids) = (0u64, 0u64);
    let heads_match = |heads: u64| {
        (heads != cv.subjects().len() as u64)
            .then(|| idx(IndexProblem::HeadCount { indexed: heads, chain: cv.subjects().len() as u64 }))
            .flatten()
    };
    // Heads come first, then event ids (key order of the index tree).
    for entry in entries {
        match entry? {
            IndexEntry::Head(subject, rec) => {
                heads += 1;
                match cv.subjects().get(&subject) {
                    Some(tip)
                        if tip.last_seq == rec.last_seq
                            && tip.count == rec.count
                            && tip.last_hash.0 == rec.last_hash => {}
                    Some(tip) => {
                        return Ok(idx(IndexProblem::Head {
                            subject,
                            stored: (rec.last_seq, rec.count),
                            chain: (tip.last_seq, tip.count),
                        }));
                    }
                    None => return Ok(idx(IndexProblem::UnknownSubject(subject))),
                }
            }
            IndexEntry::Id(id, seq) => {
                if ids == 0
                    && let Some(f) = heads_match(heads)
                {
                    return Ok(Some(f));
                }
                if seq >= watermark {
                    later.push((id, seq));
                    continue;
                }
                ids += 1;
                if cv.event_id_seq(&id) != Some(seq) {
                    return Ok(idx(IndexProblem::EventId { id, indexed: seq, chain: cv.event_id_seq(&id) }));
                }
            }
        }
    }
    if ids == 0
        && let Some(f) = heads_match(heads)
    {
        return Ok(Some(f));
    }
    if ids != watermark {
        return Ok(idx(IndexProblem::EventIdCount { indexed: ids, events: watermark }));
    }
    Ok(None)
}
