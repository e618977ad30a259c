//! Reading events back: one subject's history (walking back-links from its head) and ranges
//! of the log, with details decrypted where the subject's key still exists.

use std::collections::HashMap;
use std::ops::Range;

use kvitto_core::json::event_to_json;
use kvitto_core::{Erasures, Event, EventHash, Id, SubjectId, decode_event, event_hash, payload_commitment};
use kvitto_storage::{Backend, Record};
use kvitto_vault as vault;
use kvitto_vault::SubjectKeys;
use serde_json::{Map, Value};

use crate::writer::Shared;
use crate::{ReadError, StorageError};

/// What is known of an event's encrypted details.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailsView {
    /// The event has no details.
    None,
    /// Decrypted and matching the event's commitment.
    Disclosed(Value),
    /// A recorded `data_erased` (at seq `by`) destroyed the key: the ciphertext is unreadable
    /// for good.
    Erased {
        /// The `data_erased` event.
        by: u64,
    },
    /// Present but does not decrypt or does not match the commitment, or its key is missing
    /// without an erasure that covers it — run `kvitto verify`.
    Damaged,
}

/// An event as read back, with its re-derived hash.
#[derive(Debug, Clone)]
pub struct LedgerEvent {
    /// The sealed event.
    pub event: Event,
    /// Its hash, re-derived from the stored bytes.
    pub hash: EventHash,
    /// The controller's reference for the subject, while the subject's key file exists.
    pub subject_ref: Option<String>,
    /// The details.
    pub details: DetailsView,
}

impl LedgerEvent {
    /// The `--json` form: `seq`, `hash`, `type`, the EVENTS.md fields (with `subject` as the
    /// external reference when known), the chain fields, and `details` when disclosed.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("seq".into(), Value::from(self.event.seq));
        m.insert("hash".into(), Value::String(self.hash.to_hex()));
        m.insert("type".into(), Value::String(self.event.kind.name().into()));
        for (k, v) in event_to_json(&self.event) {
            m.entry(k).or_insert(v);
        }
        if let Some(r) = &self.subject_ref {
            m.insert("subject".into(), Value::String(r.clone()));
        }
        match &self.details {
            DetailsView::None => {}
            DetailsView::Disclosed(v) => {
                m.insert("details".into(), v.clone());
            }
            DetailsView::Erased { by } => {
                m.insert("details".into(), Value::String("<erased>".into()));
                m.insert("erased_by".into(), Value::from(*by));
            }
            DetailsView::Damaged => {
                m.insert("details".into(), Value::String("<damaged: run kvitto verify>".into()));
            }
        }
        m
    }
}

/// Subject key files and recorded erasures read during one call, by subject.
#[derive(Default)]
struct KeyCache(HashMap<SubjectId, (Option<SubjectKeys>, Erasures)>);

impl KeyCache {
    fn get(
        &mut self,
        store: &dyn Backend,
        shared: &Shared,
        s: &SubjectId,
    ) -> Result<(Option<&SubjectKeys>, &Erasures), StorageError> {
        let (keys, erasures) = match self.0.entry(*s) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert((store.vault().get(s), erasures_of(shared, s)?)),
        };
        Ok((keys.as_ref(), erasures))
    }
}

/// A subject's recorded erasures, from the projections (which fold every durable event
/// before its receipt is sent, and are rebuilt from the log on open).
/// A poisoned projections lock is an error: an empty answer would present erased details as
/// damaged (or a missing key as fine).
pub(crate) fn erasures_of(shared: &Shared, s: &SubjectId) -> Result<Erasures, StorageError> {
    let p = shared.projections.read().map_err(|_| StorageError::lock("projections"))?;
    Ok(p.subjects.get(s).map(|st| st.erasures()).unwrap_or_default())
}

/// An event's sealed details, opened with the subject's key.
pub(crate) enum Opened {
    /// A recorded erasure destroyed the key.
    Erased {
        /// The `data_erased` event.
        by: u64,
    },
    /// The key is missing, and no recorded erasure covers it (a lost vault file).
    Missing,
    /// Does not decrypt, or does not match the event's commitment.
    Damaged,
    /// Decrypted and matching the commitment.
    Disclosed {
        /// The salt inside the ciphertext.
        salt: [u8; 32],
        /// The canonical details.
        plaintext: Vec<u8>,
    },
}

/// Opens `sealed` for `event` and checks it against the event's commitment. Details an
/// erasure covers are erased whatever key the slot holds now (a later one is a new key).
pub(crate) fn open_details(keys: Option<&SubjectKeys>, erasures: &Erasures, event: &Event, sealed: &[u8]) -> Opened {
    let (Some(link), Some(commitment)) = (&event.subject, &event.payload_commitment) else { return Opened::Damaged };
    if let Some(by) = erasures.covering(event.seq, vault::slot(&event.kind)) {
        return Opened::Erased { by };
    }
    let Some(key) = keys.and_then(|k| k.key_for(&event.kind)) else { return Opened::Missing };
    match vault::open(key, &link.subject, &event.event_id, sealed) {
        Ok((salt, plaintext)) if payload_commitment(&salt, &plaintext) == *commitment => {
            Opened::Disclosed { salt, plaintext }
        }
        _ => Opened::Damaged,
    }
}

fn materialize(
    store: &dyn Backend,
    shared: &Shared,
    keys: &mut KeyCache,
    seq: u64,
    record: &Record,
) -> Result<LedgerEvent, ReadError> {
    let event = decode_event(&record.canonical)
        .map_err(|e| ReadError::Corrupt { at: format!("seq {seq}"), what: e.to_string() })?;
    if event.seq != seq {
        return Err(ReadError::Corrupt { at: format!("seq {seq}"), what: format!("record carries seq {}", event.seq) });
    }
    let hash = event_hash(&record.canonical);
    let no_erasures = Erasures::default();
    let (subject_keys, erasures) = match event.subject.as_ref() {
        Some(l) => keys.get(store, shared, &l.subject)?,
        None => (None, &no_erasures),
    };
    let subject_ref = subject_keys.map(|k| k.external_ref.clone());
    let details = match (&record.sealed, &event.payload_commitment) {
        (None, None) => DetailsView::None,
        (Some(sealed), Some(_)) => match open_details(subject_keys, erasures, &event, sealed) {
            Opened::Erased { by } => DetailsView::Erased { by },
            Opened::Damaged | Opened::Missing => DetailsView::Damaged,
            Opened::Disclosed { plaintext, .. } => {
                serde_json::from_slice(&plaintext).map_or(DetailsView::Damaged, DetailsView::Disclosed)
            }
        },
        _ => DetailsView::Damaged,
    };
    Ok(LedgerEvent { event, hash, subject_ref, details })
}

/// Keeps the last chunk read, so walks and scans decode each chunk once.
struct ChunkCursor<'a> {
    store: &'a dyn Backend,
    chunk: Option<(u64, Vec<Record>)>,
}

impl<'a> ChunkCursor<'a> {
    fn get(&mut self, seq: u64) -> Result<&Record, ReadError> {
        let hit = matches!(&self.chunk, Some((first, rs)) if seq >= *first && seq < first + rs.len() as u64);
        if !hit {
            self.chunk = self.store.chunk_containing(seq)?;
        }
        match &self.chunk {
            Some((first, rs)) if seq >= *first => rs
                .get((seq - first) as usize)
                .ok_or_else(|| ReadError::Corrupt { at: format!("seq {seq}"), what: "record missing".into() }),
            _ => Err(ReadError::Corrupt { at: format!("seq {seq}"), what: "record missing".into() }),
        }
    }
}

pub(crate) fn history(
    store: &dyn Backend,
    shared: &Shared,
    subject: SubjectId,
    controller: &Id,
) -> Result<Vec<LedgerEvent>, ReadError> {
    // The writer's tips are authoritative; the index may lag behind them, so a poisoned lock
    // is an error rather than a reason to answer from the index.
    let tip = shared.heads.read().map_err(|_| StorageError::lock("subject heads"))?.get(&subject).copied();
    let last_seq = match tip {
        Some(t) => Some(t.last_seq),
        None => store.subject_head(&subject)?.map(|h| h.last_seq),
    };
    let Some(mut seq) = last_seq else {
        return Err(ReadError::UnknownSubject { controller: controller.to_string() });
    };
    let mut keys = KeyCache::default();
    let mut cursor = ChunkCursor { store, chunk: None };
    let mut out = Vec::new();
    // A reader answers as of its own head: an index tip another process's writer has moved
    // beyond it is walked back to there.
    let committed = shared.committed.load(std::sync::atomic::Ordering::Acquire);
    while seq >= committed {
        match cursor.get(seq)?.back_link {
            Some(prev) if prev < seq => seq = prev,
            _ => return Err(ReadError::UnknownSubject { controller: controller.to_string() }),
        }
    }
    loop {
        let record = cursor.get(seq)?.clone();
        let e = materialize(store, shared, &mut keys, seq, &record)?;
        if e.event.subject.map(|l| l.subject) != Some(subject) {
            return Err(ReadError::Corrupt {
                at: format!("seq {seq}"),
                what: "back-link leads to another subject".into(),
            });
        }
        out.push(e);
        match record.back_link {
            Some(prev) if prev < seq => seq = prev,
            Some(prev) => {
                return Err(ReadError::Corrupt {
                    at: format!("seq {seq}"),
                    what: format!("back-link to later seq {prev}"),
                });
            }
            None => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// Calls `f(seq, record, event)` for each event with seq in `from..to`, in order, decoding
/// strictly (a record that does not decode is an error naming its seq, and so is a seq missing
/// between two present ones). Returns how many (fewer where the log ends before `to`).
pub(crate) fn for_each_event(
    store: &dyn Backend,
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, &Record, Event) -> Result<(), kvitto_storage::StoreError>,
) -> Result<u64, kvitto_storage::StoreError> {
    let mut n = 0;
    if from >= to {
        return Ok(0);
    }
    let missing = |seq: u64| kvitto_storage::StoreError::Corrupt {
        at: format!("seq {seq}"),
        what: "missing from the log (the chunks do not run without a gap)".into(),
    };
    for chunk in store.chunks_from(from) {
        let (first, records) = chunk?;
        for (i, record) in records.iter().enumerate() {
            let seq = first + i as u64;
            if seq < from {
                continue;
            }
            if seq >= to {
                return Ok(n);
            }
            // Every seq of the range, in order: a gap is damage, never a silent skip.
            if seq != from + n {
                return Err(missing(from + n));
            }
            let event = decode_event(&record.canonical)
                .map_err(|e| kvitto_storage::StoreError::Corrupt { at: format!("seq {seq}"), what: e.to_string() })?;
            f(seq, record, event)?;
            n += 1;
        }
    }
    // The log may end before `to` (callers pass an upper bound); a gap inside it is damage.
    Ok(n)
}

pub(crate) fn log(store: &dyn Backend, shared: &Shared, range: Range<u64>) -> Result<Vec<LedgerEvent>, ReadError> {
    let mut keys = KeyCache::default();
    let mut cursor = ChunkCursor { store, chunk: None };
    let mut out = Vec::with_capacity(range.end.saturating_sub(range.start).min(1 << 16) as usize);
    for seq in range {
        let record = cursor.get(seq)?.clone();
        out.push(materialize(store, shared, &mut keys, seq, &record)?);
    }
    Ok(out)
}

/// One item of an Art 20 export.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PortableItem {
    /// The event.
    pub seq: u64,
    /// When it was collected.
    pub occurred_at: String,
    /// Register.
    pub register: String,
    /// Purpose.
    pub purpose: String,
    /// Basis (consent or contract, Art 20(1)(a)).
    pub legal_basis: String,
    /// Categories.
    pub categories: Vec<String>,
    /// The data as it stands now: as provided, with each field a later `data_rectified` of
    /// the same register and categories corrected replaced by the corrected value; `null` when
    /// none was attached or it was erased.
    pub data: Option<Value>,
    /// The details were erased (their key destroyed).
    pub erased: bool,
    /// The `data_rectified` events that corrected this data, in order.
    pub rectified_by: Vec<u64>,
    /// Values the corrections replaced: field, the value before, and the seq that replaced it.
    pub superseded: Vec<Superseded>,
}

/// A value a rectification replaced (Art 16): still part of the history, no longer current.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Superseded {
    /// The field of the details object.
    pub field: String,
    /// Its value before the correction.
    pub value: Value,
    /// The `data_rectified` that replaced it.
    pub by: u64,
}

/// An Art 20 export (docs/REPORTS.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PortableExport {
    /// `kvitto-portable/2` (2 added `rectified_by` and `superseded`; `data` is current).
    pub format: &'static str,
    /// Controller.
    pub controller: String,
    /// The customer reference the export was asked for.
    pub subject: String,
    /// Occurred-time horizon.
    pub at: String,
    /// Recorded-time horizon.
    pub known_at: String,
    /// Data provided by the subject.
    pub items: Vec<PortableItem>,
}

/// What later `data_rectified` events did to one `data_collected` event's details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rectified {
    /// The details with every corrected field replaced (`None`: no details object to correct).
    pub current: Option<Value>,
    /// The rectifications of the same register and an overlapping category, in order.
    pub rectified_by: Vec<u64>,
    /// The values they replaced.
    pub superseded: Vec<Superseded>,
}

/// Applies a subject's `data_rectified` events (Art 16) to its earlier `data_collected`
/// events, in occurred order: a rectification of register R and categories C corrects every
/// earlier collection into R with a category in C — each field of its details object replaces
/// the collection's field of the same name. Keyed by the collection's seq; collections no
/// rectification reached are absent. `history`, the export and reports share this rule.
pub fn rectifications<'a>(history: impl IntoIterator<Item = &'a LedgerEvent>) -> HashMap<u64, Rectified> {
    use kvitto_core::EventKind;
    let mut ordered: Vec<&LedgerEvent> = history.into_iter().collect();
    ordered.sort_by_key(|e| (e.event.occurred_at, e.event.seq));
    // Collections seen so far: seq, register, categories, current details.
    let mut seen: Vec<(u64, &kvitto_core::Id, &kvitto_core::Categories, Option<Value>)> = Vec::new();
    let mut out: HashMap<u64, Rectified> = HashMap::new();
    for e in ordered {
        match &e.event.kind {
            EventKind::DataCollected { register, categories, .. } => {
                let data = match &e.details {
                    DetailsView::Disclosed(v) => Some(v.clone()),
                    _ => None,
                };
                seen.push((e.event.seq, register, categories, data));
            }
            EventKind::DataRectified { register, categories } => {
                let fields = match &e.details {
                    DetailsView::Disclosed(Value::Object(fields)) => Some(fields),
                    _ => None,
                };
                for (seq, reg, cats, data) in seen.iter_mut() {
                    if *reg != register || !cats.as_slice().iter().any(|c| categories.as_slice().contains(c)) {
                        continue;
                    }
                    let r = out.entry(*seq).or_default();
                    r.rectified_by.push(e.event.seq);
                    let (Some(fields), Some(Value::Object(current))) = (fields, data.as_mut()) else { continue };
                    for (field, value) in fields {
                        match current.insert(field.clone(), value.clone()) {
                            Some(old) if old != *value => {
                                r.superseded.push(Superseded { field: field.clone(), value: old, by: e.event.seq })
                            }
                            _ => {}
                        }
                    }
                    r.current = Some(Value::Object(current.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

/// An item of the Art 15(3) copy: one collection of the subject's data, as held now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CopyItem {
    /// The collection, its current data, corrections and erasure (as in the Art 20 export).
    #[serde(flatten)]
    pub item: PortableItem,
    /// Where the data came from (`subject`, `controller`, `third_party`).
    pub source: kvitto_core::Source,
}

/// The complete answer to an access request: the Art 15(1) report and the Art 15(3) copy of
/// the personal data (docs/REPORTS.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubjectAccess {
    /// `kvitto-access/1`.
    pub format: &'static str,
    /// The customer reference the report was asked for (it goes to that customer).
    pub subject: String,
    /// Art 15(1)(a)–(h), the controller's identity, requests, holds and restrictions.
    #[serde(flatten)]
    pub report: kvitto_projections::AccessReport,
    /// Art 15(3): every collection of the subject's data — decrypted, rectified values current,
    /// erased data shown as erased — in occurred order.
    pub copy: Vec<CopyItem>,
}

/// The subject's collections visible as of `q`, in occurred order, with `keep` choosing which:
/// details decrypted, later rectifications applied ([`rectifications`]), erasure marked.
fn collections(
    events: &[LedgerEvent],
    q: &kvitto_projections::AsOf,
    keep: impl Fn(kvitto_core::Source, kvitto_core::LegalBasis) -> bool,
) -> Vec<CopyItem> {
    use kvitto_core::EventKind;
    let mut visible: Vec<&LedgerEvent> =
        events.iter().filter(|e| e.event.occurred_at <= q.at && e.event.recorded_at <= q.known_at).collect();
    visible.sort_by_key(|e| (e.event.occurred_at, e.event.seq));
    let mut corrections = rectifications(visible.iter().copied());
    visible
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::DataCollected { register, categories, purpose, legal_basis, source }
                if keep(*source, *legal_basis) =>
            {
                let r = corrections.remove(&e.event.seq).unwrap_or_default();
                let item = PortableItem {
                    seq: e.event.seq,
                    occurred_at: e.event.occurred_at.to_rfc3339(),
                    register: register.to_string(),
                    purpose: purpose.to_string(),
                    legal_basis: legal_basis.to_string(),
                    categories: categories.as_slice().iter().map(|c| c.to_string()).collect(),
                    data: r.current.or_else(|| match &e.details {
                        DetailsView::Disclosed(v) => Some(v.clone()),
                        _ => None,
                    }),
                    erased: matches!(e.details, DetailsView::Erased { .. }),
                    rectified_by: r.rectified_by,
                    superseded: r.superseded,
                };
                Some(CopyItem { item, source: *source })
            }
            _ => None,
        })
        .collect()
}

/// The Art 15(3) copy and report together.
pub(crate) fn subject_access(
    subject: &str,
    report: kvitto_projections::AccessReport,
    events: &[LedgerEvent],
) -> SubjectAccess {
    let q = kvitto_projections::AsOf { at: report.at, known_at: report.known_at };
    let copy = collections(events, &q, |_, _| true);
    SubjectAccess { format: "kvitto-access/1", subject: subject.to_string(), report, copy }
}

/// Builds the Art 20 export from a subject's history: only `data_collected` with
/// `source: subject` on consent or contract (seed 004 m: controller-created data is excluded).
pub(crate) fn portable(
    controller: &str,
    subject: &str,
    events: &[LedgerEvent],
    q: &kvitto_projections::AsOf,
) -> PortableExport {
    use kvitto_core::{LegalBasis, Source};
    let items = collections(events, q, |source, basis| {
        source == Source::Subject && matches!(basis, LegalBasis::Consent | LegalBasis::Contract)
    })
    .into_iter()
    .map(|c| c.item)
    .collect();
    PortableExport {
        format: "kvitto-portable/2",
        controller: controller.to_string(),
        subject: subject.to_string(),
        at: q.at.to_rfc3339(),
        known_at: q.known_at.to_rfc3339(),
        items,
    }
}
