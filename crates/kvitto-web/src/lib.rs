//! The regulators' web page's verifier: `kvitto-proof` compiled to WebAssembly.
//!
//! [`check`] runs exactly what `kvitto verify-bundle` runs — [`kvitto_proof::bundle::verify_with`]
//! with the CLI's option handling ([`kvitto_proof::bundle::trusted`]: key or the embedded key, witness keys
//! and a quorum defaulting to one when witness keys are given; a held checkpoint) —
//! and replays the verified events into what the page shows: the timeline, consent per purpose
//! over time, what was collected, shared with which recipient, rectified and erased, requests,
//! restrictions and holds. It answers one JSON value; the page's script only renders it. On
//! failure `error` is the verifier's reason exactly as `kvitto verify-bundle --json` prints it
//! and `message` the line the CLI prints (`bundle verification failed: …`).
//!
//! The `#[wasm_bindgen]` exports at the end are thin wrappers taking and returning strings.
//! Nothing here does I/O: the bundle, keys and checkpoint are handed in as text.

use std::collections::BTreeMap;

use kvitto_core::{EventKind, Timestamp};
use kvitto_proof::bundle::{VerifiedBundle, VerifiedEvent, verify_with};
use serde_json::{Map, Value, json};

/// The warning `kvitto verify-bundle --trust-embedded-key` prints.
pub use kvitto_proof::bundle::EMBEDDED_KEY_WARNING;

/// What the verifier hands in besides the bundle, as `kvitto verify-bundle` takes it.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// The bundle document (`kvitto export`).
    pub bundle: &'a str,
    /// The ledger's verifier key (`kvitto key`, obtained out of band); surrounding whitespace
    /// is ignored, as for `--key-file`.
    pub key: Option<&'a str>,
    /// Trust the key embedded in the bundle (`--trust-embedded-key`: integrity only).
    pub trust_embedded: bool,
    /// A checkpoint note of the log already held (`--since`), verbatim.
    pub since: Option<&'a str>,
    /// Trusted witness keys (`--witness-key`, repeated).
    pub witness_keys: Vec<&'a str>,
    /// Cosignatures required (`--quorum`; default 1 when witness keys are given).
    pub quorum: Option<usize>,
}

/// The page's form fields as text: empty means not given. `witness_keys` holds one key a
/// line; `quorum` a whole number or nothing.
pub fn input_from_text<'a>(
    bundle: &'a str,
    key: &'a str,
    trust_embedded: bool,
    since: &'a str,
    witness_keys: &'a str,
    quorum: &str,
) -> Result<Input<'a>, String> {
    let quorum = match quorum.trim() {
        "" => None,
        q => Some(q.parse::<usize>().map_err(|_| format!("--quorum {q:?}: not a whole number"))?),
    };
    Ok(Input {
        bundle,
        key: Some(key.trim()).filter(|k| !k.is_empty()),
        trust_embedded,
        since: Some(since).filter(|s| !s.trim().is_empty()),
        witness_keys: witness_keys.lines().map(str::trim).filter(|l| !l.is_empty()).collect(),
        quorum,
    })
}

/// The answer for input the CLI refuses before verifying (exit 2).
fn input_error(message: String) -> Value {
    json!({"ok": false, "input_error": true, "error": message, "message": message})
}

/// Verifies a bundle as `kvitto verify-bundle` does and, when it verifies, replays it.
///
/// Always answers an object with `ok`. When `ok` is false, `error` is the reason and
/// `message` the line the CLI prints (`input_error` marks refused input rather than a bundle
/// that does not verify). When true: what was proven (`origin`, `checkpoint_size`,
/// `subject_id`, `complete_up_to`, `extends_held_checkpoint`, `cosigned_by`), the CLI's
/// `header` and `message` lines, `notes` and `warnings`, and the replay.
pub fn check(input: &Input<'_>) -> Value {
    let trusted =
        match kvitto_proof::bundle::trusted(input.key, input.trust_embedded, &input.witness_keys, input.quorum) {
            Ok(t) => t,
            Err(e) => return input_error(e),
        };
    match verify_with(input.bundle, &trusted.options(input.since)) {
        Ok(v) => verified(&v, trusted.warning),
        Err(e) => json!({
            "ok": false,
            "error": e.to_string(),
            "message": format!("bundle verification failed: {e}"),
        }),
    }
}

/// The CLI's lines for a bundle that verified, and the replay.
fn verified(v: &VerifiedBundle, warning: Option<&str>) -> Value {
    let verdict = v.verdict();
    let warnings: Vec<String> = warning.map(str::to_string).into_iter().chain(verdict.warnings).collect();
    let controllers: Vec<&str> = {
        let mut c: Vec<&str> = v.events.iter().map(|e| e.event.controller.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    json!({
        "ok": true,
        "origin": v.origin,
        "checkpoint_size": v.size,
        "root": hex::encode(v.root),
        "subject_id": v.subject.to_hex(),
        "controllers": controllers,
        "complete_up_to": v.complete_up_to,
        "extends_held_checkpoint": v.extends,
        "cosigned_by": v.cosigned_by.iter().map(|(n, t)| json!({"witness": n, "timestamp": t})).collect::<Vec<_>>(),
        "header": verdict.header,
        "message": verdict.ok_line,
        "notes": verdict.notes,
        "warnings": warnings,
        "timeline": v.events.iter().map(timeline_entry).collect::<Vec<_>>(),
        "consent": consent(&v.events),
        "collections": of_kind(&v.events, |k| matches!(k, EventKind::DataCollected { .. })),
        "recipients": recipients(&v.events),
        "rectifications": of_kind(&v.events, |k| matches!(k, EventKind::DataRectified { .. })),
        "erasures": erasures(&v.events),
        "restrictions": restrictions(&v.events),
        "requests": requests(&v.events),
        "holds": holds(&v.events),
        "deferrals": of_kind(&v.events, |k| matches!(k, EventKind::ErasureDeferred { .. })),
        "closures": of_kind(&v.events, |k| matches!(k, EventKind::RelationshipEnded { .. } | EventKind::RecordClosed { .. })),
    })
}

/// `disclosed`, `erased` (by a proven erasure of the bundle), `withheld` or `none`.
fn details_state(e: &VerifiedEvent) -> &'static str {
    match (&e.details, e.withheld, e.erased_by) {
        (Some(_), _, _) => "disclosed",
        (None, true, Some(_)) => "erased",
        (None, true, None) => "withheld",
        (None, false, _) => "none",
    }
}

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn fields(kind: &EventKind) -> Map<String, Value> {
    let mut m = Map::new();
    kind.to_json_fields(&mut m);
    m
}

/// One event as the timeline shows it.
fn timeline_entry(e: &VerifiedEvent) -> Value {
    json!({
        "seq": e.event.seq,
        "subject_seq": e.event.subject.map(|l| l.subject_seq),
        "occurred_at": time(e.event.occurred_at),
        "recorded_at": time(e.event.recorded_at),
        "kind": e.event.kind.name(),
        "controller": e.event.controller.as_str(),
        "actor": e.event.actor.as_str(),
        "event_id": e.event.event_id.to_string(),
        "hash": e.hash.to_hex(),
        "summary": e.event.kind.summary(),
        "fields": fields(&e.event.kind),
        "details": details_state(e),
        "details_note": e.details_note(),
        "erased_by": e.erased_by,
        "disclosed": e.details,
    })
}

/// The event's fields with its seq, times and details state: one row of a per-kind table.
fn row(e: &VerifiedEvent) -> Map<String, Value> {
    let mut m = fields(&e.event.kind);
    m.insert("seq".into(), e.event.seq.into());
    m.insert("occurred_at".into(), time(e.event.occurred_at).into());
    m.insert("details".into(), details_state(e).into());
    m.insert("erased_by".into(), e.erased_by.into());
    m
}

fn of_kind(events: &[VerifiedEvent], keep: impl Fn(&EventKind) -> bool) -> Vec<Value> {
    events.iter().filter(|e| keep(&e.event.kind)).map(|e| Value::Object(row(e))).collect()
}

/// The events in the order they happened: occurred time, then seq (the projections' order of
/// marks), so a backdated event takes its place.
fn by_occurred(events: &[VerifiedEvent]) -> Vec<&VerifiedEvent> {
    let mut out: Vec<&VerifiedEvent> = events.iter().collect();
    out.sort_by_key(|e| (e.event.occurred_at, e.event.seq));
    out
}

/// Consent per purpose over time: each purpose's marks (granted, withdrawn, objected) as
/// periods from one mark to the next, and the state the last one left.
fn consent(events: &[VerifiedEvent]) -> Vec<Value> {
    let mut per: BTreeMap<&str, Vec<Map<String, Value>>> = BTreeMap::new();
    for e in by_occurred(events) {
        let (state, purpose) = match &e.event.kind {
            EventKind::ConsentGiven { purpose, .. } => ("granted", purpose),
            EventKind::ConsentWithdrawn { purpose, .. } => ("withdrawn", purpose),
            EventKind::ObjectionRecorded { purpose } => ("objected", purpose),
            _ => continue,
        };
        let f = fields(&e.event.kind);
        let mut mark = Map::new();
        mark.insert("state".into(), state.into());
        mark.insert("from".into(), time(e.event.occurred_at).into());
        mark.insert("to".into(), Value::Null);
        mark.insert("seq".into(), e.event.seq.into());
        for k in ["notice_version", "channel"] {
            mark.insert(k.into(), f.get(k).cloned().unwrap_or(Value::Null));
        }
        let marks = per.entry(purpose.as_str()).or_default();
        if let Some(prev) = marks.last_mut() {
            prev.insert("to".into(), time(e.event.occurred_at).into());
        }
        marks.push(mark);
    }
    per.into_iter()
        .map(|(purpose, marks)| {
            let last = marks.last().cloned().unwrap_or_default();
            json!({
                "purpose": purpose,
                "state": last.get("state"),
                "since": last.get("from"),
                "seq": last.get("seq"),
                "history": marks,
            })
        })
        .collect()
}

/// What was shared with whom: one entry per recipient (processor id), its disclosures in the
/// order they happened.
fn recipients(events: &[VerifiedEvent]) -> Vec<Value> {
    let mut per: BTreeMap<&str, Vec<&VerifiedEvent>> = BTreeMap::new();
    for e in by_occurred(events) {
        if let EventKind::DataShared { processor, .. } = &e.event.kind {
            per.entry(processor.as_str()).or_default().push(e);
        }
    }
    per.into_iter()
        .map(|(processor, shares)| {
            let mut categories: Vec<&str> = Vec::new();
            let mut purposes: Vec<&str> = Vec::new();
            for s in &shares {
                if let EventKind::DataShared { categories: c, purpose, .. } = &s.event.kind {
                    for c in c.as_slice() {
                        if !categories.contains(&c.as_str()) {
                            categories.push(c.as_str());
                        }
                    }
                    if !purposes.contains(&purpose.as_str()) {
                        purposes.push(purpose.as_str());
                    }
                }
            }
            json!({
                "processor": processor,
                "categories": categories,
                "purposes": purposes,
                "shares": shares.iter().map(|e| Value::Object(row(e))).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The erasures: what each covered (a register, or everything) and which events' details it
/// destroyed, as far as the bundle proves them.
fn erasures(events: &[VerifiedEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::DataErased { register, .. } => {
                let mut m = row(e);
                m.insert("register".into(), register.as_ref().map(|r| r.as_str()).into());
                m.insert(
                    "scope".into(),
                    match register {
                        Some(r) => format!("register {}", r.as_str()),
                        None => "everything".to_string(),
                    }
                    .into(),
                );
                let covered: Vec<u64> =
                    events.iter().filter(|d| d.erased_by == Some(e.event.seq)).map(|d| d.event.seq).collect();
                m.insert("erased_details".into(), covered.into());
                Some(Value::Object(m))
            }
            _ => None,
        })
        .collect()
}

/// Restriction periods (Art 18): from a `processing_restricted` to the next `restriction_lifted`.
fn restrictions(events: &[VerifiedEvent]) -> Vec<Value> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for e in by_occurred(events) {
        match &e.event.kind {
            EventKind::ProcessingRestricted { reason } => {
                let mut m = Map::new();
                m.insert("from".into(), time(e.event.occurred_at).into());
                m.insert("seq".into(), e.event.seq.into());
                m.insert("reason".into(), reason.as_str().into());
                m.insert("to".into(), Value::Null);
                m.insert("lifted_seq".into(), Value::Null);
                m.insert("lift_reason".into(), Value::Null);
                out.push(m);
            }
            EventKind::RestrictionLifted { reason } => {
                if let Some(open) = out.iter_mut().rev().find(|m| m.get("to").is_some_and(Value::is_null)) {
                    open.insert("to".into(), time(e.event.occurred_at).into());
                    open.insert("lifted_seq".into(), e.event.seq.into());
                    open.insert("lift_reason".into(), reason.as_str().into());
                }
            }
            _ => {}
        }
    }
    out.into_iter().map(Value::Object).collect()
}

/// Rights requests by id: what was asked, each step, and where it stands.
fn requests(events: &[VerifiedEvent]) -> Vec<Value> {
    let mut order: Vec<&str> = Vec::new();
    let mut per: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for e in by_occurred(events) {
        let (id, step) = match &e.event.kind {
            EventKind::RightsRequestReceived { request_id, .. } => (request_id, "received"),
            EventKind::RightsRequestExtended { request_id, .. } => (request_id, "extended"),
            EventKind::RightsRequestFulfilled { request_id } => (request_id, "fulfilled"),
            EventKind::RightsRequestRejected { request_id, .. } => (request_id, "rejected"),
            _ => continue,
        };
        let f = fields(&e.event.kind);
        let r = per.entry(id.as_str()).or_insert_with(|| {
            order.push(id.as_str());
            let mut m = Map::new();
            m.insert("request_id".into(), id.as_str().into());
            m.insert("right".into(), Value::Null);
            m.insert("status".into(), "open".into());
            m.insert("steps".into(), Value::Array(Vec::new()));
            m
        });
        if let Some(right) = f.get("right") {
            r.insert("right".into(), right.clone());
        }
        if matches!(step, "fulfilled" | "rejected") {
            r.insert("status".into(), step.into());
        }
        if let Some(Value::Array(steps)) = r.get_mut("steps") {
            steps.push(json!({
                "step": step,
                "at": time(e.event.occurred_at),
                "seq": e.event.seq,
                "reason": f.get("reason"),
            }));
        }
    }
    order.into_iter().filter_map(|id| per.remove(id)).map(Value::Object).collect()
}

/// Legal holds by id: placed, released.
fn holds(events: &[VerifiedEvent]) -> Vec<Value> {
    let mut order: Vec<&str> = Vec::new();
    let mut per: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for e in by_occurred(events) {
        match &e.event.kind {
            EventKind::LegalHoldPlaced { hold_id, reason } => {
                order.push(hold_id.as_str());
                let mut m = Map::new();
                m.insert("hold_id".into(), hold_id.as_str().into());
                m.insert("placed_at".into(), time(e.event.occurred_at).into());
                m.insert("seq".into(), e.event.seq.into());
                m.insert("reason".into(), reason.as_str().into());
                m.insert("released_at".into(), Value::Null);
                m.insert("released_seq".into(), Value::Null);
                per.insert(hold_id.as_str(), m);
            }
            EventKind::LegalHoldReleased { hold_id } => {
                if let Some(m) = per.get_mut(hold_id.as_str()) {
                    m.insert("released_at".into(), time(e.event.occurred_at).into());
                    m.insert("released_seq".into(), e.event.seq.into());
                }
            }
            _ => {}
        }
    }
    order.dedup();
    order.into_iter().filter_map(|id| per.remove(id)).map(Value::Object).collect()
}

/// What the page shows about the verifier itself.
pub fn about() -> Value {
    json!({
        "kvitto_web": env!("CARGO_PKG_VERSION"),
        "formats": [kvitto_proof::bundle::FORMAT, kvitto_proof::bundle::FORMAT_V1],
    })
}

/// The page's entry points: strings in, a JSON string out.
#[allow(unsafe_code)]
mod exports {
    use wasm_bindgen::prelude::wasm_bindgen;

    /// Verifies and replays a bundle (see [`crate::check`]); the form fields as text, empty for
    /// not given. Answers the JSON of [`crate::check`].
    #[wasm_bindgen(js_name = verifyBundle)]
    pub fn verify_bundle(
        bundle: &str,
        key: &str,
        trust_embedded: bool,
        since: &str,
        witness_keys: &str,
        quorum: &str,
    ) -> String {
        let answer = match crate::input_from_text(bundle, key, trust_embedded, since, witness_keys, quorum) {
            Ok(input) => crate::check(&input),
            Err(e) => crate::input_error(e),
        };
        answer.to_string()
    }

    /// The verifier's version and the bundle formats it reads, as JSON.
    #[wasm_bindgen]
    pub fn about() -> String {
        crate::about().to_string()
    }
}

pub use exports::{about as about_json, verify_bundle};

#[cfg(test)]
mod tests;
