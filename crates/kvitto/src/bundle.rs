//! Building a subject bundle (docs/BUNDLE.md); verification is `kvitto_proof::bundle`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto_core::SubjectId;
use kvitto_core::json::event_to_json;
use kvitto_proof::LogHash;
use kvitto_proof::map::{MapProof, Terminal};
use kvitto_proof::merkle::inclusion_proof;
use kvitto_storage::Backend;
use serde_json::{Value, json};

use crate::read::{Opened, open_details};
use crate::submap::Commitment;
use crate::tree::StoredTree;
use crate::{LedgerEvent, ReadError};

/// What a bundle is made of besides the subject's events.
pub(crate) struct Parts<'a> {
    pub origin: &'a str,
    pub vkey: &'a str,
    /// Checkpoint size.
    pub size: u64,
    pub note: &'a str,
    pub controller: &'a str,
    pub subject: SubjectId,
    /// The subject map commitment inside the checkpoint.
    pub commitment: Commitment,
    pub map_proof: &'a MapProof,
    /// A consistency proof from this size (a checkpoint the recipient holds).
    pub since: Option<u64>,
}

fn hexes(hs: &[[u8; 32]]) -> Vec<String> {
    hs.iter().map(hex::encode).collect()
}

pub(crate) fn export(store: &dyn Backend, parts: &Parts<'_>, history: &[LedgerEvent]) -> Result<Value, ReadError> {
    let (size, subject) = (parts.size, parts.subject);
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
    // One tree for every proof of the bundle: they share the blocks of events below the
    // stored Merkle levels (the last block, and neighbouring events of the subject).
    let tree = StoredTree::new(store);
    let mut events = Vec::with_capacity(covered.len());
    for e in &covered {
        let seq = e.event.seq;
        let record = store
            .record(seq)?
            .ok_or_else(|| ReadError::Corrupt { at: format!("seq {seq}"), what: "missing".into() })?;
        let proof = prove(&tree, seq, size)?;
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
            "canonical": B64.encode(&record.canonical),
            "proof": hexes(&proof),
            "event": view,
            "details": details,
        }));
    }
    let c = parts.commitment;
    let commitment = store
        .record(c.seq)?
        .ok_or_else(|| ReadError::Corrupt { at: format!("seq {}", c.seq), what: "missing".into() })?;
    let terminal = match parts.map_proof.terminal {
        Terminal::Empty => json!("empty"),
        Terminal::Leaf(k, e) => json!({"key": hex::encode(k), "count": e.count, "head": hex::encode(e.head)}),
    };
    let mut doc = json!({
        "format": kvitto_proof::bundle::FORMAT,
        "origin": parts.origin,
        "verifier_key": parts.vkey,
        "checkpoint": parts.note,
        "subject_id": subject.to_hex(),
        "events": events,
        "completeness": {
            "commitment": {
                "leaf_index": c.seq,
                "canonical": B64.encode(&commitment.canonical),
                "proof": hexes(&prove(&tree, c.seq, size)?),
            },
            "map_proof": {"siblings": hexes(&parts.map_proof.siblings), "terminal": terminal},
        },
        "info": {
            "exported_at": kvitto_core::Timestamp::now().to_rfc3339(),
            "tool": concat!("kvitto ", env!("CARGO_PKG_VERSION")),
            "controller": parts.controller,
            "complete_up_to": c.tree_size,
            "events_after_checkpoint": history.len() - covered.len(),
        },
    });
    if let Some(size1) = parts.since {
        let proof = kvitto_proof::merkle::consistency_proof::<LogHash>(&tree, size1, size)
            .map_err(|err| ReadError::Storage(crate::StorageError::Proof(err.to_string())))?;
        doc["consistency"] = json!({"size1": size1, "proof": hexes(&proof)});
    }
    Ok(doc)
}

fn prove(tree: &StoredTree<'_>, seq: u64, size: u64) -> Result<Vec<[u8; 32]>, ReadError> {
    inclusion_proof::<LogHash>(tree, seq, size)
        .map_err(|err| ReadError::Storage(crate::StorageError::Proof(err.to_string())))
}
