//! The conformance suite every backend passes (feature `conformance`), in the spirit of
//! akd's storage tests and Tessera's driver tests: [`run`] takes a factory of fresh stores
//! and checks, on each:
//!
//! - commit/read round trips (records, chunks split at 64 KiB, `chunks_from` mid-chunk);
//! - atomic groups (a refused group leaves nothing) and the contract that a commit must
//!   extend the current head (a stale writer is fenced, nothing written);
//! - acknowledged-head rules (`acked` never ahead of the head; both survive a reopen);
//! - derived data: index, Merkle nodes, subject map, projection states — round trips,
//!   idempotent re-application, watermarks, clearing;
//! - checkpoints (idempotent per size);
//! - erasure really deleting: an erased key is in no file of the vault, and no key ever
//!   reaches the engine's own storage (each backend supplies a raw search);
//! - tampering detectable: a record changed behind the backend's back (each backend
//!   supplies its own tamper hook) breaks the hash chain re-derived from what it returns;
//! - crash consistency through [`crate::faulty::Faulty`]: the n-th commit fails before or
//!   after the engine; the handle poisons; a reopen holds the whole group or none of it.

use std::path::PathBuf;

use kvitto_core::{EventHash, EventId, EventKind, Id, SubjectId, Text, Timestamp, encode_event, event_hash};
use kvitto_vault::SubjectKeys;

use crate::faulty::{FailAt, Faulty};
use crate::{Backend, CommitError, EventLog, Head, IndexBatch, ProjectionBatch, Record, StoreError, SubjectHeadRec};

/// Edits one stored record in place (a tamper hook's argument).
pub type Edit<'a> = &'a mut dyn FnMut(&mut Record);
/// A backend's tamper hook: edits record `seq` behind its back.
pub type TamperHook = Box<dyn Fn(u64, Edit<'_>)>;
/// A backend's raw search of its own storage.
pub type RawSearch = Box<dyn Fn(&[u8]) -> bool>;
type Case = (&'static str, fn(&Target));

/// One fresh, empty store under test and the backend's hooks on it.
pub struct Target {
    /// Opens the store (again: every call opens the same store). The previous handle has
    /// been dropped before each call.
    pub open: Box<dyn Fn() -> Box<dyn Backend>>,
    /// Edits the stored record `seq` behind the backend's back with the given function (the
    /// handle is dropped around the call).
    pub tamper: TamperHook,
    /// Whether `needle` occurs anywhere in the engine's own storage (files, rows).
    pub engine_holds: RawSearch,
    /// The ledger directory (key files, vault).
    pub dir: PathBuf,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Runs every case, each on a store of its own from `make`. Panics (the test fails) naming
/// the case and what differed.
pub fn run(make: &dyn Fn() -> Target) {
    let cases: &[Case] = &[
        ("round trips", round_trips),
        ("atomic groups", atomic_groups),
        ("fenced writer", fenced_writer),
        ("acknowledged head", acknowledged_head),
        ("index", index),
        ("projections", projections),
        ("subject map", subject_map),
        ("checkpoints", checkpoints),
        ("erasure deletes", erasure_deletes),
        ("tamper detected", tamper_detected),
        ("fault before commit", |t| crash(t, FailAt::Before)),
        ("fault after commit", |t| crash(t, FailAt::After)),
    ];
    for (name, case) in cases {
        let target = make();
        eprintln!("conformance: {name}");
        case(&target);
    }
}

/// A chain of `n` real events from `first` on `prev`, with `pad` bytes of sealed payload
/// each (the store does not read it).
pub fn chain(first: u64, n: usize, prev: Head, pad: usize) -> (Vec<Record>, Head) {
    let mut records = Vec::with_capacity(n);
    let mut head = prev;
    for i in 0..n as u64 {
        let seq = first + i;
        let at = Timestamp::from_micros(1_700_000_000_000_000 + seq as i64).expect("valid time");
        let e = kvitto_core::Event {
            seq,
            prev_hash: EventHash(head.head_hash),
            recorded_at: Timestamp::from_micros(1_700_000_000_000_000 + first as i64).expect("valid time"),
            occurred_at: at,
            event_id: EventId(uuid::Uuid::from_u128(0x1000 + seq as u128)),
            controller: Id::new("kalejdo").expect("valid id"),
            actor: Id::new("conformance").expect("valid id"),
            subject: None,
            kind: EventKind::PurposeDeclared {
                purpose: Id::new("marketing").expect("valid id"),
                description: Text::new(format!("purpose {seq}")).expect("valid text"),
                legal_basis: kvitto_core::LegalBasis::Consent,
                register: Id::new("kundregister").expect("valid id"),
                data_subjects: None,
            },
            payload_commitment: None,
        };
        let canonical = encode_event(&e);
        head = Head {
            next_seq: seq + 1,
            head_hash: event_hash(&canonical).0,
            last_recorded_at: e.recorded_at.as_micros(),
        };
        records.push(Record { canonical, back_link: None, sealed: (pad > 0).then(|| vec![0xA5; pad]) });
    }
    (records, head)
}

fn commit(b: &dyn Backend, n: usize, pad: usize) -> (Vec<Record>, Head) {
    let prev = b.head().expect("head");
    let (records, head) = chain(prev.next_seq, n, prev, pad);
    b.commit(prev.next_seq, &records, &head).expect("commit");
    (records, head)
}

fn all_records(b: &dyn Backend) -> Vec<Record> {
    let mut out = Vec::new();
    for item in b.chunks_from(0) {
        let (first, records) = item.expect("chunk");
        assert_eq!(first, out.len() as u64, "chunks are contiguous");
        out.extend(records);
    }
    out
}

/// Re-derives the chain from stored bytes: the first seq whose bytes do not hash into it.
fn first_break(records: &[Record]) -> Option<u64> {
    let mut prev = [0u8; 32];
    for (i, r) in records.iter().enumerate() {
        let Ok(e) = kvitto_core::decode_event(&r.canonical) else { return Some(i as u64) };
        if e.seq != i as u64 || e.prev_hash.0 != prev {
            return Some(i as u64);
        }
        prev = event_hash(&r.canonical).0;
    }
    None
}

fn round_trips(t: &Target) {
    let b = (t.open)();
    assert_eq!(b.head().expect("head"), Head::default(), "a fresh store is empty");
    let (mut all, _) = commit(&*b, 3, 0);
    // 40 records of 2 KiB: more than one 64 KiB chunk.
    let (big, _) = commit(&*b, 40, 2048);
    all.extend(big);
    // Many small groups: more chunks than one page of a paging backend.
    for _ in 0..300 {
        all.extend(commit(&*b, 1, 0).0);
    }
    let (last, head) = commit(&*b, 1, 10);
    all.extend(last);
    assert_eq!(b.head().expect("head"), head);
    for (seq, r) in all.iter().enumerate() {
        assert_eq!(b.record(seq as u64).expect("record").as_ref(), Some(r), "record {seq}");
    }
    assert_eq!(b.record(all.len() as u64).expect("record past the head"), None);
    let (first, records) = b.chunk_containing(20).expect("chunk").expect("chunk holding 20");
    assert!(first <= 20 && 20 < first + records.len() as u64);
    let from_mid: Vec<u64> = b.chunks_from(20).map(|c| c.expect("chunk").0).collect();
    assert_eq!(from_mid.first(), Some(&first), "chunks_from starts at the chunk holding the seq");
    assert!(b.chunks_from(0).count() >= 304, "the 80 KiB group was split into chunks, one chunk per small group");
    assert_eq!(all_records(&*b), all);
    assert_eq!(first_break(&all_records(&*b)), None);
    drop(b);
    let b = (t.open)();
    assert_eq!(b.head().expect("head"), head, "the head survives a reopen");
    assert_eq!(all_records(&*b), all, "the records survive a reopen");
}

fn atomic_groups(t: &Target) {
    let b = (t.open)();
    let (_, head) = commit(&*b, 2, 0);
    let (mut records, bad_head) = chain(2, 3, head, 0);
    records[1].sealed = Some(vec![0; crate::CHUNK_LIMIT]);
    match b.commit(2, &records, &bad_head) {
        Err(CommitError::NotWritten(StoreError::TooLarge { seq: 3, .. })) => {}
        other => panic!("an oversized event refuses the whole group, got {other:?}"),
    }
    assert_eq!(b.head().expect("head"), head, "nothing of the refused group is written");
    assert_eq!(b.record(2).expect("record"), None);
    let (_, head) = commit(&*b, 1, 0);
    assert_eq!(head.next_seq, 3, "the next group follows the last written one");
}

fn fenced_writer(t: &Target) {
    let b = (t.open)();
    let (_, head) = commit(&*b, 2, 0);
    // A writer that believes the head is still at 0 (another one extended it meanwhile).
    let (stale, stale_head) = chain(0, 1, Head::default(), 0);
    match b.commit(0, &stale, &stale_head) {
        Err(CommitError::NotWritten(StoreError::Fenced(_))) => {}
        other => panic!("a commit that does not extend the head is fenced, got {other:?}"),
    }
    drop(b);
    let b = (t.open)();
    assert_eq!(b.head().expect("head"), head, "the fenced group forked nothing");
    assert_eq!(first_break(&all_records(&*b)), None);
}

fn acknowledged_head(t: &Target) {
    let b = (t.open)();
    assert_eq!(b.acked().expect("acked").next_seq, 0);
    let (_, head) = commit(&*b, 5, 0);
    let acked = b.acked().expect("acked");
    assert!(acked.next_seq <= head.next_seq, "acked never runs ahead of the head");
    b.flush_all().expect("flush");
    drop(b);
    let b = (t.open)();
    let acked = b.acked().expect("acked");
    assert_eq!((acked.next_seq, acked.head_hash), (head.next_seq, head.head_hash), "acked after a clean close");
}

fn index(t: &Target) {
    let b = (t.open)();
    assert_eq!(b.index_watermark().expect("watermark"), 0);
    let subject = SubjectId([7; 16]);
    let rec = SubjectHeadRec { last_seq: 4, count: 2, last_hash: [9; 32] };
    let id = EventId(uuid::Uuid::from_u128(42));
    let mut batch = IndexBatch { watermark: 5, ..Default::default() };
    batch.heads.insert(subject, rec);
    batch.event_ids.push((id, 4));
    batch.nodes = (0..4500u64).map(|i| (0u8, i, [i as u8; 32])).chain([(1u8, 0u64, [0xEE; 32])]).collect();
    b.apply_index(&batch).expect("apply");
    b.apply_index(&batch).expect("re-applying the same batch is harmless");
    assert_eq!(b.index_watermark().expect("watermark"), 5);
    assert_eq!(b.subject_head(&subject).expect("head"), Some(rec));
    assert_eq!(b.subject_head(&SubjectId([8; 16])).expect("head"), None);
    assert_eq!(b.event_seq(&id).expect("seq"), Some(4));
    assert_eq!(b.merkle_node(0, 4499).expect("node"), Some([4499u64 as u8; 32]));
    assert_eq!(b.merkle_node(0, 4500).expect("node"), None);
    assert_eq!(b.merkle_node(1, 0).expect("node"), Some([0xEE; 32]));
    let level0: Vec<(u64, [u8; 32])> = b.merkle_level(0).map(|n| n.expect("node")).collect();
    assert_eq!(level0.len(), 4500);
    assert!(level0.iter().enumerate().all(|(i, (idx, h))| *idx == i as u64 && h[0] == i as u8));
    let heads: Vec<_> = b.indexed_subject_heads().map(|h| h.expect("head")).collect();
    assert_eq!(heads, vec![(subject, rec)]);
    assert_eq!(b.index_snapshot().expect("snapshot"), (5, vec![(subject, rec)]), "watermark and tips together");
    let ids: Vec<_> = b.indexed_event_ids().map(|h| h.expect("id")).collect();
    assert_eq!(ids, vec![(id, 4)]);
    // A later batch moves a subject's tip.
    let mut later = IndexBatch { watermark: 9, ..Default::default() };
    let moved = SubjectHeadRec { last_seq: 8, count: 3, last_hash: [1; 32] };
    later.heads.insert(subject, moved);
    b.apply_index(&later).expect("apply");
    assert_eq!(b.subject_head(&subject).expect("head"), Some(moved));
    drop(b);
    let b = (t.open)();
    assert_eq!(b.index_watermark().expect("watermark"), 9, "derived data survives a reopen");
    b.clear_index().expect("clear");
    assert_eq!(b.index_watermark().expect("watermark"), 0);
    assert_eq!(b.subject_head(&subject).expect("head"), None);
    assert_eq!(b.merkle_node(0, 0).expect("node"), None);
    assert_eq!(b.indexed_event_ids().count(), 0);
}

fn projections(t: &Target) {
    let b = (t.open)();
    assert_eq!(b.projection_watermark().expect("watermark"), 0);
    // More than one page of any backend that reads in pages.
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..5000u32).map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; 3])).collect();
    b.apply_projections(&ProjectionBatch { entries: entries.clone(), watermark: 7 }).expect("apply");
    b.apply_projections(&ProjectionBatch { entries: vec![(1u32.to_be_bytes().to_vec(), vec![0xFF])], watermark: 8 })
        .expect("apply");
    assert_eq!(b.projection_watermark().expect("watermark"), 8);
    let mut read: Vec<(Vec<u8>, Vec<u8>)> = b.projection_entries().map(|e| e.expect("entry")).collect();
    read.sort();
    let mut want = entries;
    want[1].1 = vec![0xFF];
    assert_eq!(read, want, "every state, the newest of each key");
    b.clear_projections().expect("clear");
    assert_eq!(b.projection_watermark().expect("watermark"), 0);
    assert_eq!(b.projection_entries().count(), 0);
    // A rebuild's snapshot, then a delta over it: read back as written, the delta winning.
    b.write_snapshot(&ProjectionBatch { entries: want.clone(), watermark: 20 }).expect("snapshot");
    b.apply_projections(&ProjectionBatch { entries: vec![(5u32.to_be_bytes().to_vec(), vec![0xEE])], watermark: 21 })
        .expect("apply");
    let mut after: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = std::collections::BTreeMap::new();
    for e in b.projection_entries() {
        let (k, v) = e.expect("entry");
        after.insert(k, v);
    }
    want[5].1 = vec![0xEE];
    assert_eq!(after.into_iter().collect::<Vec<_>>(), want, "the snapshot, and the delta over it");
    assert_eq!(b.projection_watermark().expect("watermark"), 21);
    // What was written after the clear is what a reopen finds (sled recreates the tree).
    b.flush_all().expect("flush");
    drop(b);
    let b = (t.open)();
    assert_eq!(b.projection_watermark().expect("watermark"), 21, "the watermark after a reopen");
    let mut reopened: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = std::collections::BTreeMap::new();
    for e in b.projection_entries() {
        let (k, v) = e.expect("entry");
        reopened.insert(k, v);
    }
    assert_eq!(reopened.into_iter().collect::<Vec<_>>(), want, "the snapshot and the delta after a reopen");
    b.clear_projections().expect("a second clear");
    b.apply_projections(&ProjectionBatch { entries: vec![(9u32.to_be_bytes().to_vec(), vec![1])], watermark: 3 })
        .expect("apply after a second clear");
    assert_eq!(
        b.projection_entries().map(|e| e.expect("entry")).collect::<Vec<_>>(),
        vec![(9u32.to_be_bytes().to_vec(), vec![1])]
    );
    assert_eq!(b.projection_watermark().expect("watermark"), 3);
}

fn subject_map(t: &Target) {
    let b = (t.open)();
    assert_eq!(b.map_snapshot().expect("snapshot"), (0, vec![]));
    b.apply_map(&[([1; 16], 2, [3; 32]), ([0; 16], 1, [4; 32])], 10, &[(9, 10, [5; 32])]).expect("apply");
    b.apply_map(&[([1; 16], 3, [6; 32])], 12, &[]).expect("apply");
    assert_eq!(b.map_snapshot().expect("snapshot"), (12, vec![([0; 16], 1, [4; 32]), ([1; 16], 3, [6; 32])]));
    assert_eq!(b.map_commitments().expect("commitments"), vec![(9, 10, [5; 32])]);
    b.clear_map().expect("clear");
    assert_eq!(b.map_snapshot().expect("snapshot"), (0, vec![]));
    assert!(b.map_commitments().expect("commitments").is_empty());
}

fn checkpoints(t: &Target) {
    let b = (t.open)();
    commit(&*b, 3, 0);
    b.put_checkpoint(3, "note three\n").expect("checkpoint");
    b.put_checkpoint(1, "note one\n").expect("checkpoint");
    b.put_checkpoint(3, "note three\n").expect("storing a checkpoint again is harmless");
    drop(b);
    let b = (t.open)();
    assert_eq!(
        b.checkpoints().expect("checkpoints"),
        vec![(1, "note one\n".to_string()), (3, "note three\n".to_string())],
        "by size, once each, durable"
    );
}

fn erasure_deletes(t: &Target) {
    let b = (t.open)();
    let key = [0x5Au8; 32];
    let kept = [0x3Cu8; 32];
    let subject = SubjectId([0x11; 16]);
    let other = SubjectId([0x22; 16]);
    let keys = |k: [u8; 32]| SubjectKeys {
        controller: "kalejdo".into(),
        external_ref: "conformance-ref".into(),
        slots: vec![("kundregister".to_string(), k)].into_iter().collect(),
    };
    b.vault().put_all(&[(subject, keys(key)), (other, keys(kept))]).expect("vault put");
    commit(&*b, 2, 0);
    assert!(b.vault().get(&subject).is_some());
    assert!(vault_files_hold(t, &key), "the key is in the vault's files before erasure");
    b.vault().erase_all(&[(subject, None)]).expect("erase");
    assert!(b.vault().get(&subject).is_none(), "the erased subject has no keys");
    assert!(b.vault().get(&other).is_some(), "the other subject keeps its keys");
    drop(b);
    let b = (t.open)();
    assert!(b.vault().get(&subject).is_none(), "the erasure survives a reopen");
    assert!(!vault_files_hold(t, &key), "the erased key is in no vault file (a real deletion)");
    assert!(vault_files_hold(t, &kept), "the kept key is still there");
    assert!(!(t.engine_holds)(&key), "no key ever reaches the engine's storage");
    assert!(!(t.engine_holds)(&kept), "no key ever reaches the engine's storage");
}

fn vault_files_hold(t: &Target, needle: &[u8]) -> bool {
    let dir = t.dir.join(kvitto_vault::keyfiles::VAULT_DIR);
    std::fs::read_dir(&dir).expect("vault dir").any(|e| {
        let bytes = std::fs::read(e.expect("entry").path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

fn tamper_detected(t: &Target) {
    let b = (t.open)();
    commit(&*b, 4, 0);
    assert_eq!(first_break(&all_records(&*b)), None);
    drop(b);
    // "purpose 2" becomes "purpose 9": still a well-formed event, no longer the one hashed.
    (t.tamper)(2, &mut |r: &mut Record| {
        let at = r.canonical.windows(9).position(|w| w == b"purpose 2").expect("the description is in the bytes");
        r.canonical[at + 8] = b'9';
    });
    let b = (t.open)();
    let records = all_records(&*b);
    assert_eq!(records.len(), 4, "the tampered store still reads");
    assert_eq!(first_break(&records), Some(3), "the chain re-derived from stored bytes breaks after seq 2");
}

fn crash(t: &Target, at: FailAt) {
    let b = (t.open)();
    let (_, before) = commit(&*b, 3, 0);
    let faulty = Faulty::new(b, 2, at);
    let (records, head) = chain(3, 2, before, 0);
    faulty.commit(3, &records, &head).expect("the first commit goes through");
    let (more, more_head) = chain(5, 40, head, 2048);
    let failed = faulty.commit(5, &more, &more_head);
    match (at, &failed) {
        (FailAt::Before, Err(CommitError::NotWritten(_))) | (FailAt::After, Err(CommitError::Unknown(_))) => {}
        other => panic!("the injected failure is reported as such, got {other:?}"),
    }
    assert!(faulty.is_poisoned(), "the handle poisons");
    let (next, next_head) = chain(5, 1, head, 0);
    assert!(
        matches!(faulty.commit(5, &next, &next_head), Err(CommitError::NotWritten(StoreError::Poisoned))),
        "a poisoned handle takes no more commits"
    );
    drop(faulty);
    let b = (t.open)();
    let stored = b.head().expect("head");
    let want = if at == FailAt::Before { head } else { more_head };
    assert_eq!(stored, want, "the reopened store holds the whole group or none of it");
    let all = all_records(&*b);
    assert_eq!(all.len() as u64, stored.next_seq);
    assert_eq!(first_break(&all), None, "the reopened chain is whole");
}
