//! Offline verification of a subject bundle (docs/BUNDLE.md): one customer's events with
//! inclusion proofs against a signed checkpoint, and (v2) a proof from the subject map that
//! they are all of the subject's events up to a tree size. Needs the bundle and the ledger's
//! verifier key — no network, no ledger; optionally a checkpoint the verifier already holds
//! (fork and rollback detection) and witness keys (cosignature quorum). Every field outside
//! `info` is checked; unknown fields and duplicate keys are rejected.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto_core::json::{canonical_json, event_to_json, parse_strict};
use kvitto_core::{Event, EventHash, SubjectId, decode_event, event_hash, payload_commitment};
use serde_json::{Map, Value};

use crate::checkpoint::{self, NoteError};
use crate::merkle::verify_inclusion;
use crate::{Blake3, LogHash, TreeHash};

/// The bundle format written now (tree v2: SHA-256 proofs).
pub const FORMAT: &str = "kvitto-bundle/2";

/// The bundle format of tree v1 (BLAKE3 proofs), still verified.
pub const FORMAT_V1: &str = "kvitto-bundle/1";

const TOP: [&str; 9] =
    ["format", "origin", "verifier_key", "checkpoint", "subject_id", "events", "completeness", "consistency", "info"];
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
    /// The bundle does not prove (or disproves) that it holds all of the subject's events.
    #[error("incomplete: {0}")]
    Incomplete(String),
    /// The bundle's checkpoint is not an extension of the one the verifier holds.
    #[error("fork: {0}")]
    Fork(String),
    /// The bundle's checkpoint is older than the one the verifier holds.
    #[error("rollback: {0}")]
    Rollback(String),
    /// Too few valid witness cosignatures.
    #[error("witnesses: {0}")]
    Witnesses(String),
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

/// What the verifier brings besides the bundle.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Which log key to trust.
    pub trust: Trust<'a>,
    /// A checkpoint note of this log the verifier already holds: the bundle's must extend it.
    pub since: Option<&'a str>,
    /// Witness keys (`cosignature/v1`) the verifier trusts.
    pub witnesses: &'a [crate::checkpoint::WitnessKey],
    /// Valid cosignatures required from distinct trusted witnesses.
    pub quorum: usize,
}

impl<'a> Options<'a> {
    /// Only a log key: no held checkpoint, no witnesses.
    pub fn trusting(trust: Trust<'a>) -> Self {
        Self { trust, since: None, witnesses: &[], quorum: 0 }
    }
}

/// What a verifier trusts, from what a person gives `kvitto verify-bundle` or the page: the
/// options of [`verify_with`] (with a held checkpoint added by [`Trusted::options`]) and the
/// warning to show first, if any.
#[derive(Debug, Clone)]
pub struct Trusted<'a> {
    /// Which log key to trust.
    pub trust: Trust<'a>,
    /// The witness keys, parsed.
    pub witnesses: Vec<crate::checkpoint::WitnessKey>,
    /// Cosignatures required.
    pub quorum: usize,
    /// [`EMBEDDED_KEY_WARNING`] when the embedded key is trusted.
    pub warning: Option<&'static str>,
}

/// The warning for a verification that trusts the key embedded in the bundle.
pub const EMBEDDED_KEY_WARNING: &str = "warning: trusting the key embedded in the bundle proves only that it is intact, not that the ledger it claims signed it; get the key out of band (kvitto key) and pass --key";

/// The verifier's choices checked as `kvitto verify-bundle` checks its flags: witness keys
/// and a quorum ([`witnesses`]), then a key or trusting the embedded one ([`trust`]).
/// Refusals name the flag, as the CLI prints them.
pub fn trusted<'a>(
    key: Option<&'a str>,
    trust_embedded: bool,
    witness_keys: &[&str],
    quorum: Option<usize>,
) -> Result<Trusted<'a>, String> {
    let (witnesses, quorum) = witnesses(witness_keys, quorum)?;
    let (trust, warning) = trust(key, trust_embedded)?;
    Ok(Trusted { trust, witnesses, quorum, warning })
}

/// Parses the trusted witness keys; the quorum defaults to one cosignature when there are any.
pub fn witnesses(
    witness_keys: &[&str],
    quorum: Option<usize>,
) -> Result<(Vec<crate::checkpoint::WitnessKey>, usize), String> {
    let witnesses = witness_keys
        .iter()
        .map(|k| crate::checkpoint::WitnessKey::parse(k).map_err(|e| format!("--witness-key {k:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let quorum = quorum.unwrap_or(witnesses.len().min(1));
    if quorum > witnesses.len() {
        return Err(format!("--quorum {quorum} needs at least {quorum} --witness-key"));
    }
    Ok((witnesses, quorum))
}

/// The log key to trust, and the warning to show first when it is the embedded one.
pub fn trust(key: Option<&str>, trust_embedded: bool) -> Result<(Trust<'_>, Option<&'static str>), String> {
    match (key, trust_embedded) {
        (Some(k), _) => Ok((Trust::Key(k), None)),
        (None, true) => Ok((Trust::Embedded, Some(EMBEDDED_KEY_WARNING))),
        (None, false) => Err("no verifier key: pass --key VKEY or --key-file FILE (from `kvitto key`), or \
                              --trust-embedded-key to check integrity only"
            .into()),
    }
}

impl<'a> Trusted<'a> {
    /// The options of [`verify_with`], with the checkpoint the verifier holds, if any.
    pub fn options(&'a self, since: Option<&'a str>) -> Options<'a> {
        Options { trust: self.trust, since, witnesses: &self.witnesses, quorum: self.quorum }
    }
}

/// What `kvitto verify-bundle` says of a bundle that verified, line by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `bundle of <origin> (checkpoint size N), subject <id>:`.
    pub header: String,
    /// `ok: N events of subject … proven against checkpoint size …` with what else is proven.
    pub ok_line: String,
    /// What the bundle does not prove beyond its commitment.
    pub notes: Vec<String>,
    /// What contradicts what the verifier holds.
    pub warnings: Vec<String>,
}

impl VerifiedEvent {
    /// The suffix the timeline shows after an event's summary: details disclosed, erased by
    /// a proven erasure, withheld, or nothing.
    pub fn details_note(&self) -> String {
        match (&self.details, self.withheld, self.erased_by) {
            (Some(_), _, _) => " [details disclosed]".to_string(),
            (None, true, Some(by)) => format!(" [details erased by seq {by}]"),
            (None, true, None) => " [details withheld]".to_string(),
            (None, false, _) => String::new(),
        }
    }
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
    /// The bundle proves it holds every event of the subject among the first this-many
    /// events of the log (`None`: a `kvitto-bundle/1`, which cannot).
    pub complete_up_to: Option<u64>,
    /// The held checkpoint's size the bundle's checkpoint was proven to extend.
    pub extends: Option<u64>,
    /// Trusted witnesses whose cosignature verified, with its timestamp.
    pub cosigned_by: Vec<(String, u64)>,
}

impl VerifiedBundle {
    /// The lines `kvitto verify-bundle` (and the regulators' page) show for this bundle.
    pub fn verdict(&self) -> Verdict {
        let complete = match self.complete_up_to {
            Some(n) => format!(", complete up to {n}"),
            None => ", NOT proven complete (a kvitto-bundle/1 cannot show that no event is left out)".into(),
        };
        let extends = self.extends.map(|s| format!(", extends the held checkpoint of size {s}")).unwrap_or_default();
        let cosigned = if self.cosigned_by.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
            format!(", cosigned by {}", names.join(", "))
        };
        let (mut notes, mut warnings) = (Vec::new(), Vec::new());
        if let Some(n) = self.complete_up_to {
            // The exporter chose the commitment: say plainly what lies beyond it.
            let later = self.size.saturating_sub(n + 1);
            if later > 0 {
                notes.push(format!(
                    "note: {later} event(s) of the log lie between the map commitment's tree size {n} and the \
                     checkpoint; the subject's events among them are shown and proven included, not proven \
                     complete (ask for a bundle from a newer commitment)"
                ));
            }
            if let Some(held) = self.extends.filter(|h| *h > n) {
                warnings.push(format!(
                    "warning: you hold a checkpoint of size {held}, beyond what this bundle proves complete ({n})"
                ));
            }
        }
        Verdict {
            header: format!("bundle of {} (checkpoint size {}), subject {}:", self.origin, self.size, self.subject),
            ok_line: format!(
                "ok: {} events of subject {} proven against checkpoint size {}{complete}{extends}{cosigned}",
                self.events.len(),
                self.subject,
                self.size
            ),
            notes,
            warnings,
        }
    }
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

fn hashes(v: Option<&Value>, field: &str) -> Result<Vec<Vec<u8>>, BundleError> {
    v.and_then(Value::as_array)
        .ok_or_else(|| malformed(field, "must be an array"))?
        .iter()
        .map(|h| h.as_str().and_then(hash32).map(|h| h.to_vec()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| malformed(field, "must hold 64-hex-digit hashes"))
}

/// Verifies a bundle document against a log key only.
pub fn verify(document: &str, trust: Trust<'_>) -> Result<VerifiedBundle, BundleError> {
    verify_with(document, &Options::trusting(trust))
}

/// Verifies a bundle document with everything the verifier holds.
pub fn verify_with(document: &str, opts: &Options<'_>) -> Result<VerifiedBundle, BundleError> {
    let trust = opts.trust;
    let doc: Value = parse_strict(document).map_err(|e| malformed("$", format!("not strict JSON: {e}")))?;
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
    let note = string(top, "$", "checkpoint")?;
    let cp = checkpoint::open(note, &name, &key)?;
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
    if items.is_empty() && (v1 || top.get("completeness").is_none()) {
        return Err(malformed("$.events", "no events (and no proof of the subject's absence)"));
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
        // The global chain's own rules, as far as one subject's events show them: seq 0 links
        // to 32 zero bytes, and the ledger clock never runs backwards along the chain.
        if seq == 0 && event.prev_hash.0 != [0; 32] {
            return Err(fail("seq 0 must have 32 zero bytes as prev_hash".into()));
        }
        if let Some(before) = events.last().map(|e: &VerifiedEvent| e.event.recorded_at)
            && event.recorded_at < before
        {
            return Err(fail(
                "recorded_at is earlier than the previous event's: the ledger clock ran backwards".into(),
            ));
        }
        // Inclusion under the signed root.
        let leaf_index = m
            .get("leaf_index")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(format!("{path}.leaf_index"), "must be an unsigned integer"))?;
        if leaf_index != seq {
            return Err(fail(format!("leaf_index {leaf_index} is not the event's seq")));
        }
        let proof = hashes(m.get("proof"), &format!("{path}.proof"))?;
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
    let complete_up_to = match (v1, top.get("completeness")) {
        (true, None) => None,
        (true, Some(_)) => return Err(malformed("$.completeness", "not part of kvitto-bundle/1")),
        (false, None) => {
            return Err(BundleError::Incomplete(
                "the bundle carries no subject map proof, so it cannot show that no event of the subject is left out"
                    .into(),
            ));
        }
        (false, Some(c)) => Some(completeness(c, &subject, &cp, &events)?),
    };
    let extends = match opts.since {
        None => None,
        Some(held) => Some(extends(held, &name, &key, &cp, top.get("consistency"), v1)?),
    };
    if opts.since.is_none() && top.get("consistency").is_some() {
        // Checked only against a held checkpoint; still it must be well-formed.
        strict(&top["consistency"], "$.consistency", &["size1", "proof"])?;
    }
    let mut cosigned_by = Vec::new();
    let mut counted: Vec<ed25519_dalek::VerifyingKey> = Vec::new();
    for w in opts.witnesses {
        match checkpoint::cosignature(note, w) {
            Ok(Some(t)) => {
                // One key counts once, whatever names it is trusted under: cosignature/v1
                // does not sign the name, so a relabelled line would otherwise count twice.
                if !counted.contains(&w.key) {
                    counted.push(w.key);
                    cosigned_by.push((w.name.clone(), t));
                }
            }
            Ok(None) => {}
            Err(e) => return Err(BundleError::Witnesses(format!("{}: {e}", w.name))),
        }
    }
    if cosigned_by.len() < opts.quorum {
        return Err(BundleError::Witnesses(format!(
            "{} valid cosignature(s) from distinct keys of the {} trusted witness(es), {} required",
            cosigned_by.len(),
            opts.witnesses.len(),
            opts.quorum
        )));
    }
    Ok(VerifiedBundle {
        origin: origin.to_string(),
        size: cp.size,
        root: cp.root,
        subject,
        events,
        complete_up_to,
        extends,
        cosigned_by,
    })
}

/// Checks the subject map proof (FORMAT.md §7): a `subject_map_committed` event proven in the
/// checkpoint, and the subject's entry (or absence) under its root. Returns the tree size up
/// to which the bundle holds every event of the subject.
fn completeness(
    c: &Value,
    subject: &SubjectId,
    cp: &checkpoint::Checkpoint,
    events: &[VerifiedEvent],
) -> Result<u64, BundleError> {
    use crate::map::{MapEntry, MapProof, Terminal};
    let m = strict(c, "$.completeness", &["commitment", "map_proof"])?;
    let cm = strict(
        m.get("commitment").unwrap_or(&Value::Null),
        "$.completeness.commitment",
        &["leaf_index", "canonical", "proof"],
    )?;
    let path = "$.completeness.commitment";
    let bytes = B64
        .decode(string(cm, path, "canonical")?)
        .map_err(|e| malformed(format!("{path}.canonical"), format!("not base64: {e}")))?;
    let event =
        decode_event(&bytes).map_err(|e| malformed(format!("{path}.canonical"), format!("does not decode: {e}")))?;
    let kvitto_core::EventKind::SubjectMapCommitted { tree_size, map_root, .. } = event.kind else {
        return Err(malformed(format!("{path}.canonical"), "is not a subject_map_committed event"));
    };
    let leaf_index = cm.get("leaf_index").and_then(Value::as_u64);
    if leaf_index != Some(event.seq) {
        return Err(malformed(format!("{path}.leaf_index"), "must be the commitment event's seq"));
    }
    if tree_size > event.seq {
        return Err(malformed(format!("{path}.canonical"), "commits to events after itself"));
    }
    let proof = hashes(cm.get("proof"), &format!("{path}.proof"))?;
    verify_inclusion::<LogHash>(event.seq, cp.size, &LogHash::leaf(&event_hash(&bytes).0), &proof, &cp.root).map_err(
        |e| {
            BundleError::Incomplete(format!(
                "the subject map commitment (seq {}) is not in the checkpoint: {e}",
                event.seq
            ))
        },
    )?;
    let mp = strict(m.get("map_proof").unwrap_or(&Value::Null), "$.completeness.map_proof", &["siblings", "terminal"])?;
    let siblings = hashes(mp.get("siblings"), "$.completeness.map_proof.siblings")?
        .into_iter()
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).unwrap_or([0; 32]))
        .collect();
    let terminal = match mp.get("terminal") {
        Some(Value::String(s)) if s == "empty" => Terminal::Empty,
        Some(t @ Value::Object(_)) => {
            let tp = "$.completeness.map_proof.terminal";
            let t = strict(t, tp, &["key", "count", "head"])?;
            let key = string(t, tp, "key")?;
            let mut k = [0u8; 16];
            hex::decode_to_slice(key, &mut k)
                .ok()
                .filter(|_| !key.bytes().any(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| malformed(format!("{tp}.key"), "must be 32 lowercase hex digits"))?;
            let count = t
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed(format!("{tp}.count"), "must be an unsigned integer"))?;
            let head = hash32(string(t, tp, "head")?)
                .ok_or_else(|| malformed(format!("{tp}.head"), "must be 64 hex digits"))?;
            Terminal::Leaf(k, MapEntry { count, head })
        }
        _ => return Err(malformed("$.completeness.map_proof.terminal", "must be \"empty\" or a leaf object")),
    };
    let entry = crate::map::verify(&map_root.0, &subject.0, &MapProof { siblings, terminal })
        .map_err(|e| BundleError::Incomplete(format!("subject map proof: {e}")))?;
    let expected = entry.map_or(0, |e| e.count);
    let held = events.iter().take_while(|e| e.event.seq < tree_size).count() as u64;
    if held != expected {
        return Err(BundleError::Incomplete(format!(
            "the subject map committed at seq {} says the subject has {expected} event(s) among the first {tree_size}; \
             the bundle holds {held} of them",
            event.seq
        )));
    }
    if let Some(e) = entry
        && held.checked_sub(1).and_then(|i| events.get(i as usize)).map(|v| v.hash.0) != Some(e.head)
    {
        return Err(BundleError::Incomplete(format!(
            "the subject's last event among the first {tree_size} is not the bundle's event {}",
            held.saturating_sub(1)
        )));
    }
    Ok(tree_size)
}

/// Checks that the bundle's checkpoint extends a checkpoint the verifier holds (same log key).
fn extends(
    held: &str,
    name: &str,
    key: &ed25519_dalek::VerifyingKey,
    cp: &checkpoint::Checkpoint,
    consistency: Option<&Value>,
    v1: bool,
) -> Result<u64, BundleError> {
    let old = checkpoint::open(held, name, key)
        .map_err(|e| malformed("--since", format!("the held checkpoint does not verify with the log key: {e}")))?;
    if old.origin != cp.origin {
        return Err(malformed("--since", format!("the held checkpoint is of log {:?}", old.origin)));
    }
    if old.size > cp.size {
        return Err(BundleError::Rollback(format!(
            "the bundle's checkpoint (size {}) is older than the one you hold (size {}): the log was rolled back, \
             or this is an old bundle",
            cp.size, old.size
        )));
    }
    if old.size == cp.size {
        return if old.root == cp.root {
            Ok(old.size)
        } else {
            Err(BundleError::Fork(format!(
                "the bundle's checkpoint and the one you hold both have size {} but different roots: two histories \
                 (or the held one was signed over the BLAKE3 tree v1 of a ledger since migrated: ask the ledger's \
                 auditor, who can check it with `kvitto verify --against`)",
                cp.size
            )))
        };
    }
    let c = consistency.ok_or_else(|| {
        malformed("$.consistency", format!("missing: export the bundle with --since a checkpoint of size {}", old.size))
    })?;
    let c = strict(c, "$.consistency", &["size1", "proof"])?;
    if c.get("size1").and_then(Value::as_u64) != Some(old.size) {
        return Err(malformed("$.consistency.size1", format!("proves from another size than the held {}", old.size)));
    }
    let proof = hashes(c.get("proof"), "$.consistency.proof")?;
    let checked = if v1 {
        crate::merkle::verify_consistency::<Blake3>(old.size, cp.size, &proof, &old.root, &cp.root)
    } else {
        crate::merkle::verify_consistency::<LogHash>(old.size, cp.size, &proof, &old.root, &cp.root)
    };
    checked.map_err(|e| {
        BundleError::Fork(format!(
            "the bundle's tree (size {}) does not extend the checkpoint you hold (size {}): {e} (unless the held one \
             was signed over the BLAKE3 tree v1 of a ledger since migrated)",
            cp.size, old.size
        ))
    })?;
    Ok(old.size)
}
