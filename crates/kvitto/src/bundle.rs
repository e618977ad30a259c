//! Building a subject bundle (docs/BUNDLE.md); verification is `kvitto_proof::bundle`.

use base64::Engine;
use kvitto_core::json::event_to_json;
use kvitto_proof::LogHash;
use kvitto_proof::merkle::inclusion_proof;
use kvitto_store::Store;
use serde_json::{Value, json};

use crate::read::{Opened, open_details};
use crate::tree::StoredTree;
use crate::{LedgerEvent, ReadError};

pub(crate) fn export(
    store: &Store,
    origin: &str,
    vkey: &str,
    size: u64,
    note: &str,
    controller: &str,
    history: &[LedgerEvent],
) -> Result<Value, ReadError> {
    let Some(subject) = history.first().and_then(|e| e.event.subject).map(|l| l.subject) else {
        return Err(ReadError::UnknownSubject { controller: controller.to_string() });
    };
    let keys = store.vault().get(&subject);
    let erasures = kvitto_core::Erasures::new(
        history
            .iter()
            .filter_map(|e| match &e.event.kind {
                kvitto_core::EventKind::DataErased { register, .. } => Some((e.event.seq, register.clone())),
                _ => None,
            })
            .collect(),
    );
    let covered: Vec<&LedgerEvent> = history.iter().filter(|e| e.event.seq < size).collect();
    if covered.is_empty() {
        return Err(ReadError::BadQuery {
            field: "checkpoint",
            message: format!("the subject has no events within the checkpoint of size {size}; sign a newer one"),
        });
    }
    let mut events = Vec::with_capacity(covered.len());
    for e in &covered {
        let seq = e.event.seq;
        let record = store
            .record(seq)?
            .ok_or_else(|| ReadError::Corrupt { at: format!("seq {seq}"), what: "missing".into() })?;
        let proof = inclusion_proof::<LogHash>(&StoredTree(store), seq, size)
            .map_err(|err| ReadError::Storage(err.to_string()))?;
        let mut view = event_to_json(&e.event);
        view.insert("hash".into(), Value::String(e.hash.to_hex()));
        // Disclose details with their salt when the key still exists and they match.
        let details =
            match record.sealed.as_deref().map(|sealed| open_details(keys.as_ref(), &erasures, &e.event, sealed)) {
                Some(Opened::Disclosed { salt, plaintext }) => String::from_utf8(plaintext)
                    .map_or(Value::Null, |p| json!({"salt": hex::encode(salt), "plaintext": p})),
                _ => Value::Null,
            };
        events.push(json!({
            "leaf_index": seq,
            "canonical": base64::engine::general_purpose::STANDARD.encode(&record.canonical),
            "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
            "event": view,
            "details": details,
        }));
    }
    Ok(json!({
        "format": kvitto_proof::bundle::FORMAT,
        "origin": origin,
        "verifier_key": vkey,
        "checkpoint": note,
        "subject_id": subject.to_hex(),
        "events": events,
        "info": {
            "exported_at": kvitto_core::Timestamp::now().to_rfc3339(),
            "tool": concat!("kvitto ", env!("CARGO_PKG_VERSION")),
            "controller": controller,
            "events_after_checkpoint": history.len() - covered.len(),
        },
    }))
}
