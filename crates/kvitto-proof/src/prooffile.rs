//! Offline checks of proof files from `kvitto prove`: a C2SP `tlog-proof@v1` for one event,
//! or the JSON inclusion / consistency proofs. Each is checked against a checkpoint signed by
//! the log key the verifier trusts (carried in the file, or given separately), optionally with
//! a quorum of witness cosignatures.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto_core::json::parse_strict;
use kvitto_core::{Event, decode_event, event_hash};
use serde_json::Value;

use crate::checkpoint::{self, Checkpoint, WitnessKey};
use crate::merkle::{verify_consistency, verify_inclusion};
use crate::{LogHash, TreeHash};

/// The first line of a tlog proof.
pub const TLOG_PROOF: &str = "c2sp.org/tlog-proof@v1";

/// What a proof file proved.
#[derive(Debug, Clone, PartialEq)]
pub enum Proven {
    /// The event (decoded from the proof's `extra` data, when it carries it) with this leaf
    /// index is in the signed tree.
    Inclusion {
        /// Leaf index (= seq).
        index: u64,
        /// The event hash (the leaf data) proven.
        event_hash: [u8; 32],
        /// The event, when the file carries its canonical bytes.
        event: Option<Box<Event>>,
    },
    /// The tree of `size1` events is a prefix of the signed tree.
    Consistency {
        /// Older size.
        size1: u64,
        /// Older root.
        root1: [u8; 32],
    },
}

/// A proof that verified, and the checkpoint it is anchored in.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedProof {
    /// What it proved.
    pub proven: Proven,
    /// The signed checkpoint.
    pub checkpoint: Checkpoint,
    /// Trusted witnesses whose cosignature verified.
    pub cosigned_by: Vec<String>,
}

/// The trust a proof is checked under.
#[derive(Debug, Clone, Copy)]
pub struct Anchors<'a> {
    /// The log's verifier key (`<name>+<id>+<key>`).
    pub log_key: &'a str,
    /// A checkpoint note given separately (for JSON proofs that carry none).
    pub checkpoint: Option<&'a str>,
    /// Trusted witness keys.
    pub witnesses: &'a [WitnessKey],
    /// Cosignatures required.
    pub quorum: usize,
}

fn signed(note: &str, a: &Anchors<'_>) -> Result<(Checkpoint, Vec<String>), String> {
    let (name, key) = checkpoint::parse_vkey(a.log_key).map_err(|e| format!("log key: {e}"))?;
    let cp = checkpoint::open(note, &name, &key).map_err(|e| format!("checkpoint: {e}"))?;
    let mut cosigned_by = Vec::new();
    let mut counted: Vec<ed25519_dalek::VerifyingKey> = Vec::new();
    for w in a.witnesses {
        match checkpoint::cosignature(note, w) {
            Ok(Some(_)) if !counted.contains(&w.key) => {
                counted.push(w.key);
                cosigned_by.push(w.name.clone());
            }
            Ok(_) => {}
            Err(e) => return Err(format!("witness {}: {e}", w.name)),
        }
    }
    if cosigned_by.len() < a.quorum {
        return Err(format!("{} valid cosignature(s), {} required", cosigned_by.len(), a.quorum));
    }
    Ok((cp, cosigned_by))
}

fn b64_hash(line: &str) -> Result<Vec<u8>, String> {
    let h = B64.decode(line).map_err(|_| format!("{line:?} is not base64"))?;
    if h.len() != 32 { Err(format!("{line:?} is not a 32-byte hash")) } else { Ok(h) }
}

fn hex_hash(v: Option<&Value>, field: &str) -> Result<[u8; 32], String> {
    let s = v.and_then(Value::as_str).ok_or_else(|| format!("{field}: must be a string"))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| format!("{field}: must be 64 hex digits"))?;
    Ok(out)
}

fn hex_list(v: Option<&Value>, field: &str) -> Result<Vec<Vec<u8>>, String> {
    v.and_then(Value::as_array)
        .ok_or_else(|| format!("{field}: must be an array"))?
        .iter()
        .enumerate()
        .map(|(i, h)| hex_hash(Some(h), &format!("{field}[{i}]")).map(|h| h.to_vec()))
        .collect()
}

/// Checks a proof file (either format).
pub fn verify_file(text: &str, a: &Anchors<'_>) -> Result<CheckedProof, String> {
    if text.split('\n').next() == Some(TLOG_PROOF) { verify_tlog_proof(text, a) } else { verify_json(text, a) }
}

/// Writes a `tlog-proof@v1` for an event: `extra` = its canonical bytes, so a verifier can
/// re-derive the event hash (the leaf data) and read what the event says.
pub fn tlog_proof(canonical: &[u8], index: u64, proof: &[[u8; 32]], note: &str) -> String {
    let mut out = format!("{TLOG_PROOF}\nextra {}\nindex {index}\n", B64.encode(canonical));
    for h in proof {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(note);
    out
}

fn verify_tlog_proof(text: &str, a: &Anchors<'_>) -> Result<CheckedProof, String> {
    let (head, note) = text.split_once("\n\n").ok_or("no blank line before the checkpoint")?;
    let mut lines = head.split('\n');
    lines.next(); // the format line
    let mut line = lines.next().ok_or("no index line")?;
    let extra = match line.strip_prefix("extra ") {
        Some(e) => {
            line = lines.next().ok_or("no index line")?;
            Some(B64.decode(e).map_err(|_| "the extra line is not base64")?)
        }
        None => None,
    };
    let index = line.strip_prefix("index ").ok_or("expected `index N`")?;
    if index.is_empty() || (index.len() > 1 && index.starts_with('0')) || !index.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the index is not a decimal without leading zeros".into());
    }
    let index: u64 = index.parse().map_err(|_| "index out of range")?;
    let proof = lines.map(b64_hash).collect::<Result<Vec<_>, _>>()?;
    let canonical = extra.ok_or("this proof carries no event (extra line); kvitto proofs carry its canonical bytes")?;
    let event = decode_event(&canonical).map_err(|e| format!("the extra data is not a kvitto event: {e}"))?;
    if event.seq != index {
        return Err(format!("the event is seq {}, the proof is for index {index}", event.seq));
    }
    let (cp, cosigned_by) = signed(note, a)?;
    let leaf = LogHash::leaf(&event_hash(&canonical).0);
    verify_inclusion::<LogHash>(index, cp.size, &leaf, &proof, &cp.root).map_err(|e| format!("inclusion: {e}"))?;
    let event_hash = event_hash(&canonical).0;
    Ok(CheckedProof {
        proven: Proven::Inclusion { index, event_hash, event: Some(Box::new(event)) },
        checkpoint: cp,
        cosigned_by,
    })
}

fn verify_json(text: &str, a: &Anchors<'_>) -> Result<CheckedProof, String> {
    let v = parse_strict(text).map_err(|e| format!("neither a tlog-proof nor strict JSON: {e}"))?;
    let m = v.as_object().ok_or("the proof must be a JSON object")?;
    let note = |k: &str| m.get(k).and_then(Value::as_str).or(a.checkpoint);
    let num = |k: &str| m.get(k).and_then(Value::as_u64).ok_or_else(|| format!("{k}: must be an unsigned integer"));
    if m.contains_key("leaf_index") {
        let (index, size) = (num("leaf_index")?, num("tree_size")?);
        let note = note("checkpoint").ok_or("the proof carries no signed checkpoint: pass --checkpoint FILE")?;
        let (cp, cosigned_by) = signed(note, a)?;
        if cp.size != size || hex_hash(m.get("root"), "root")? != cp.root {
            return Err(format!("the proof is for a tree of size {size}, not the signed one of size {}", cp.size));
        }
        let event_hash = hex_hash(m.get("event_hash"), "event_hash")?;
        verify_inclusion::<LogHash>(
            index,
            size,
            &LogHash::leaf(&event_hash),
            &hex_list(m.get("proof"), "proof")?,
            &cp.root,
        )
        .map_err(|e| format!("inclusion: {e}"))?;
        Ok(CheckedProof { proven: Proven::Inclusion { index, event_hash, event: None }, checkpoint: cp, cosigned_by })
    } else if m.contains_key("size1") {
        let (size1, size2) = (num("size1")?, num("size2")?);
        let note = note("checkpoint2").ok_or("the proof carries no signed checkpoint: pass --checkpoint FILE")?;
        let (cp, cosigned_by) = signed(note, a)?;
        if cp.size != size2 || hex_hash(m.get("root2"), "root2")? != cp.root {
            return Err(format!("the proof is to a tree of size {size2}, not the signed one of size {}", cp.size));
        }
        let root1 = hex_hash(m.get("root1"), "root1")?;
        if let Some(old) = m.get("checkpoint1").and_then(Value::as_str) {
            let (c1, _) = signed(old, &Anchors { witnesses: &[], quorum: 0, ..*a })?;
            if (c1.size, c1.root) != (size1, root1) {
                return Err("checkpoint1 is not the tree the proof starts from".into());
            }
        }
        verify_consistency::<LogHash>(size1, size2, &hex_list(m.get("proof"), "proof")?, &root1, &cp.root)
            .map_err(|e| format!("consistency: {e}"))?;
        Ok(CheckedProof { proven: Proven::Consistency { size1, root1 }, checkpoint: cp, cosigned_by })
    } else {
        Err("not a kvitto proof: expected leaf_index (inclusion) or size1 (consistency)".into())
    }
}
