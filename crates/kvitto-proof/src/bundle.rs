//! Offline verification of a subject bundle (docs/BUNDLE.md): one customer's events with
//! inclusion proofs against a signed checkpoint. Needs the bundle and the ledger's verifier
//! key — no network, no ledger. Every field outside `info` is checked; unknown fields are
//! rejected.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto_core::json::{canonical_json, event_to_json};
use kvitto_core::{Event, EventHash, SubjectId, decode_event, event_hash, payload_commitment};
use serde_json::{Map, Value};

use crate::checkpoint::{self, NoteError};
use crate::merkle::verify_inclusion;
use crate::{Blake3, LogHash, TreeHash};

/// The bundle format written now (tree v2: SHA-256 proofs).
pub const FORMAT: &str = "kvitto-bundle/2";

/// The bundle format of tree v1 (BLAKE3 proofs), still verified.
pub const FORMAT_V1: &str = "kvitto-bundle/1";

const TOP: [&str; 7] = ["format", "origin", "verifier_key", "checkpoint", "subject_id", "events", "info"];
const ITEM: [&str; 5] = ["leaf_index", "canonical", "proof", "event", "details"];

/// Why a bundle does not verify: what, and for per-event problems, which event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The document is not a bundle of this format.
    #[error("{field}: {why}")]
    Malformed {
        /// JSON path of the field.
        field: String,
        /// What is wrong.
        why: String,
    },
    /// The key or the checkpoint signature.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// One event is wrong.
    #[error("event {index} (seq {seq}): {why}")]
    Event {
        /// Position in the bundle.
        index: usize,
        /// Its seq, as far as known.
        seq: String,
        /// What is wrong.
        why: String,
    },
}

/// Which key to trust.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// A verifier key obtained out of band (`<name>+<id>+<key>`).
    Key(&'a str),
    /// The key embedded in the bundle (only proves integrity, not origin).
    Embedded,
}

/// One verified event.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEvent {
    /// The event, decoded from its canonical bytes.
    pub event: Event,
    /// Its hash.
    pub hash: EventHash,
    /// Disclosed details (`None`: none attached, or withheld/erased).
    pub details: Option<Value>,
    /// The event commits to details that are not disclosed.
    pub withheld: bool,
    /// For undisclosed details: the proven `data_erased` of this bundle that destroyed their
    /// key (`None`: withheld by the exporter, or erased by an event outside the bundle).
    pub erased_by: Option<u64>,
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    /// Log origin (= key name).
    pub origin: String,
    /// Checkpoint tree size.
    pub size: u64,
    /// Checkpoint root.
    pub root: [u8; 32],
    /// The subject.
    pub subject: SubjectId,
    /// Its events in subject order, from subject_seq 0.
    pub events: Vec<VerifiedEvent>,
}

fn malformed(field: impl Into<String>, why: impl Into<String>) -> BundleError {
    BundleError::Malformed { field: field.into(), why: why.into() }
}

fn strict<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, BundleError> {
    let m = v.as_object().ok_or_else(|| malformed(path, "must be an object"))?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(malformed(format!("{path}.{k}"), "unknown field"));
    }
    Ok(m)
}

fn string<'a>(m: &'a Map<String, Value>, path: &str, k: &str) -> Result<&'a str, BundleError> {
    m.get(k).and_then(Value::as_str).ok_or_else(|| malformed(format!("{path}.{k}"), "must be a string"))
}

fn hash32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok().filter(|_| s.bytes().all(|b| !b.is_ascii_uppercase()))?;
    Some(out)
}

/// Verifies a bundle document.
pub fn verify(document: &str, trust: Trust<'_>) -> Result<VerifiedBundle, BundleError> {
    let doc: Value = serde_json::from_str(document).map_err(|e| malformed("$", format!("not JSON: {e}")))?;
    let top = strict(&doc, "$", &TOP)?;
    let v1 = match string(top, "$", "format")? {
        FORMAT => false,
        FORMAT_V1 => true,
        _ => return Err(malformed("$.format", format!("expected {FORMAT} (or {FORMAT_V1})"))),
    };
    let embedded = string(top, "$", "verifier_key")?;
    let key_text = match trust {
        Trust::Key(k) => {
            if k.trim() != embedded {
                return Err(malformed("$.verifier_key", "differs from the key you trust"));
            }
            k.trim()
        }
        Trust::Embedded => embedded,
    };
    let (name, key) = checkpoint::parse_vkey(key_text)?;
    let origin = string(top, "$", "origin")?;
    if origin != name {
        return Err(malformed("$.origin", format!("{origin:?} is not the key's name {name:?}")));
    }
    let cp = checkpoint::open(string(top, "$", "checkpoint")?, &name, &key)?;
    if cp.origin != origin {
        return Err(malformed("$.checkpoint", "its origin is not the bundle's"));
    }
    let subject = SubjectId::from_hex(string(top, "$", "subject_id")?).map_err(|e| malformed("$.subject_id", e))?;
    if top.get("subject_id").and_then(Value::as_str).is_some_and(|s| s.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err(malformed("$.subject_id", "must be lowercase hex"));
    }
    if let Some(info) = top.get("info") {
        info.as_object().ok_or_else(|| malformed("$.info", "must be an object"))?;
    }
    let items = top.get("events").and_then(Value::as_array).ok_or_else(|| malformed("$.events", "must be an array"))?;
    if items.is_empty() {
        return Err(malformed("$.events", "no events"));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut prev: Option<EventHash> = None;
    for (index, item) in items.iter().enumerate() {
        let path = format!("$.events[{index}]");
        let m = strict(item, &path, &ITEM)?;
        let fail = |seq: String, why: String| BundleError::Event { index, seq, why };
        let bytes = B64
            .decode(string(m, &path, "canonical")?)
            .map_err(|e| malformed(format!("{path}.canonical"), format!("not base64: {e}")))?;
        let event =
            decode_event(&bytes).map_err(|e| fail("?".into(), format!("canonical bytes do not decode: {e}")))?;
        let seq = event.seq;
        let fail = |why: String| BundleError::Event { index, seq: seq.to_string(), why };
        let hash = event_hash(&bytes);
        // The subject and its chain: subject order from 0, no gap, correct links.
        let link = event.subject.ok_or_else(|| fail("not a subject event".into()))?;
        if link.subject != subject {
            return Err(fail(format!("belongs to subject {}, not {subject}", link.subject)));
        }
        if link.subject_seq != index as u64 {
            return Err(fail(format!(
                "subject_seq {} where {index} is due (missing, duplicated or reordered)",
                link.subject_seq
            )));
        }
        if link.subject_prev != prev {
            return Err(fail("subject_prev is not the hash of the subject's previous event".into()));
        }
        // Inclusion under the signed root.
        let leaf_index = m
            .get("leaf_index")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(format!("{path}.leaf_index"), "must be an unsigned integer"))?;
        if leaf_index != seq {
            return Err(fail(format!("leaf_index {leaf_index} is not the event's seq")));
        }
        let proof = m
            .get("proof")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(format!("{path}.proof"), "must be an array"))?
            .iter()
            .map(|h| h.as_str().and_then(hash32).map(|h| h.to_vec()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed(format!("{path}.proof"), "must hold 64-hex-digit hashes"))?;
        let included = if v1 {
            verify_inclusion::<Blake3>(seq, cp.size, &Blake3::leaf(&hash.0), &proof, &cp.root)
        } else {
            verify_inclusion::<LogHash>(seq, cp.size, &LogHash::leaf(&hash.0), &proof, &cp.root)
        };
        included.map_err(|e| fail(format!("inclusion proof against the checkpoint of size {}: {e}", cp.size)))?;
        // The readable view must say exactly what the canonical bytes say.
        let mut view = event_to_json(&event);
        view.insert("hash".into(), Value::String(hash.to_hex()));
        if m.get("event") != Some(&Value::Object(view)) {
            return Err(fail("the readable view differs from the canonical bytes".into()));
        }
        // Disclosed details must match the commitment.
        let (details, withheld) = match (m.get("details"), &event.payload_commitment) {
            (None | Some(Value::Null), None) => (None, false),
            (None | Some(Value::Null), Some(_)) => (None, true),
            (Some(_), None) => return Err(fail("details disclosed for an event that commits to none".into())),
            (Some(d), Some(c)) => {
                let dm = strict(d, &format!("{path}.details"), &["salt", "plaintext"])?;
                let salt = hash32(string(dm, &path, "salt")?)
                    .ok_or_else(|| malformed(format!("{path}.details.salt"), "must be 64 hex digits"))?;
                let plaintext = string(dm, &path, "plaintext")?;
                if payload_commitment(&salt, plaintext.as_bytes()) != *c {
                    return Err(fail("disclosed details do not match the event's commitment".into()));
                }
                let value: Value =
                    serde_json::from_str(plaintext).map_err(|_| fail("disclosed details are not JSON".into()))?;
                if !value.is_object() || canonical_json(&value) != plaintext.as_bytes() {
                    return Err(fail("disclosed details are not a canonical JSON object".into()));
                }
                (Some(value), false)
            }
        };
        prev = Some(hash);
        events.push(VerifiedEvent { event, hash, details, withheld, erased_by: None });
    }
    // Which undisclosed details a proven erasure of this subject explains.
    let erasures = kvitto_core::Erasures::new(
        events
            .iter()
            .filter_map(|e| match &e.event.kind {
                kvitto_core::EventKind::DataErased { register, .. } => Some((e.event.seq, register.clone())),
                _ => None,
            })
            .collect(),
    );
    for e in events.iter_mut().filter(|e| e.withheld) {
        e.erased_by = erasures.covering(e.event.seq, kvitto_core::key_slot(&e.event.kind));
    }
    Ok(VerifiedBundle { origin: origin.to_string(), size: cp.size, root: cp.root, subject, events })
}
