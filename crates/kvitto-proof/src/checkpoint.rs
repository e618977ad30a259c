//! Signed checkpoints: a C2SP `tlog-checkpoint` body (origin, decimal tree size, base64 root)
//! signed as a C2SP `signed-note` with Ed25519, so existing witness tooling (e.g. Go's
//! `golang.org/x/mod/sumdb/note`) verifies it with the `kvitto key` verifier key.
//!
//! The root is that of the RFC 6962 SHA-256 tree over the event hashes (docs/FORMAT.md §6).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::Digest;

use crate::merkle::Hash;

/// Signature type byte of Ed25519 in signed-note.
const ED25519: u8 = 0x01;

/// Why a note or key is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The text is not a signed note.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// The checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(String),
    /// The verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    BadKey(String),
    /// No signature by the given key.
    #[error("the note carries no signature by {0}")]
    NoSignature(String),
    /// The signature by the given key does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// A tree head: origin, size, root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead<'a> {
    /// Log origin (also the key name).
    pub origin: &'a str,
    /// Number of events.
    pub size: u64,
    /// Merkle root (RFC 6962, SHA-256).
    pub root: Hash,
}

/// A checkpoint read back from a verified note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root.
    pub root: Hash,
}

/// Checks a key name / origin: non-empty, no whitespace, no `+`, no control characters.
pub fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(NoteError::BadKey(format!("{name:?} must be non-empty without spaces or '+'")));
    }
    Ok(())
}

/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, ED25519, key)
}

/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]` (signed-note key ids of any signature type).
fn typed_key_id(name: &str, sig_type: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut h = sha2::Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, sig_type]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The verifier key string: `<name>+<hex key id>+<base64(0x01 ‖ key)>`.
pub fn vkey(name: &str, key: &VerifyingKey) -> String {
    typed_vkey(name, ED25519, key)
}

fn typed_vkey(name: &str, sig_type: u8, key: &VerifyingKey) -> String {
    let mut raw = vec![sig_type];
    raw.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex_id(&typed_key_id(name, sig_type, key)), B64.encode(raw))
}

fn hex_id(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a verifier key string; checks that its key id matches its name and key.
pub fn parse_vkey(s: &str) -> Result<(String, VerifyingKey), NoteError> {
    parse_typed_vkey(s, ED25519, "not an Ed25519 signed-note key (0x01 ‖ 32 bytes)")
}

/// Parses `<name>+<hex id>+<base64(type ‖ 32-byte Ed25519 key)>` for one signature type.
fn parse_typed_vkey(s: &str, sig_type: u8, wrong_type: &str) -> Result<(String, VerifyingKey), NoteError> {
    let mut parts = s.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey("expected <name>+<hex id>+<base64 key>".into()));
    };
    check_name(name)?;
    let raw = B64.decode(key).map_err(|e| NoteError::BadKey(format!("key is not base64: {e}")))?;
    if raw.len() != 33 || raw[0] != sig_type {
        return Err(NoteError::BadKey(wrong_type.into()));
    }
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&raw[1..]);
    let vk = VerifyingKey::from_bytes(&bytes).map_err(|e| NoteError::BadKey(e.to_string()))?;
    if id != hex_id(&typed_key_id(name, sig_type, &vk)) {
        return Err(NoteError::BadKey("key id does not match the name and key".into()));
    }
    Ok((name.to_string(), vk))
}

/// The checkpoint text: `origin\nsize\nbase64(root)\n`.
pub fn body(head: &TreeHead<'_>) -> String {
    format!("{}\n{}\n{}\n", head.origin, head.size, B64.encode(head.root))
}

/// Signs a tree head as a signed note.
pub fn sign(head: &TreeHead<'_>, key: &SigningKey) -> Result<String, NoteError> {
    check_name(head.origin)?;
    let text = body(head);
    let sig = key.sign(text.as_bytes());
    let mut raw = key_id(head.origin, &key.verifying_key()).to_vec();
    raw.extend_from_slice(&sig.to_bytes());
    Ok(format!("{text}\n\u{2014} {} {}\n", head.origin, B64.encode(raw)))
}

/// Verifies a signed note with the key `name`/`key` and parses its checkpoint body.
/// Signatures by other keys are ignored (signed-note); one by this key must verify.
pub fn open(note: &str, name: &str, key: &VerifyingKey) -> Result<Checkpoint, NoteError> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control characters".into()));
    }
    let split = note.rfind("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if !sigs.ends_with('\n') || sigs.len() < 2 {
        return Err(NoteError::Malformed("signature block must end with a newline".into()));
    }
    let want_id = key_id(name, key);
    let mut verified = false;
    for line in sigs.trim_end_matches('\n').split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| NoteError::Malformed(format!("bad signature line {line:?}")))?;
        let (sig_name, b64) =
            rest.split_once(' ').ok_or_else(|| NoteError::Malformed("signature line without a signature".into()))?;
        let raw = B64.decode(b64).map_err(|_| NoteError::Malformed("signature is not base64".into()))?;
        if raw.len() < 4 {
            return Err(NoteError::Malformed("signature too short".into()));
        }
        if sig_name != name || raw[..4] != want_id {
            continue;
        }
        let sig = Signature::from_slice(&raw[4..]).map_err(|_| NoteError::BadSignature(name.to_string()))?;
        key.verify_strict(text.as_bytes(), &sig).map_err(|_| NoteError::BadSignature(name.to_string()))?;
        verified = true;
    }
    if !verified {
        return Err(NoteError::NoSignature(name.to_string()));
    }
    parse_body(text)
}

fn parse_body(text: &str) -> Result<Checkpoint, NoteError> {
    let mut lines = text.split('\n');
    let bad = |w: &str| NoteError::BadCheckpoint(w.to_string());
    let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line"))?;
    let size_line = lines.next().ok_or_else(|| bad("no size line"))?;
    if size_line.is_empty()
        || !size_line.bytes().all(|b| b.is_ascii_digit())
        || (size_line.len() > 1 && size_line.starts_with('0'))
    {
        return Err(bad("size is not a decimal number without leading zeros"));
    }
    let size = size_line.parse().map_err(|_| bad("size out of range"))?;
    let root = B64.decode(lines.next().ok_or_else(|| bad("no root line"))?).map_err(|_| bad("root is not base64"))?;
    let root: Hash = root.try_into().map_err(|_| bad("root is not 32 bytes"))?;
    Ok(Checkpoint { origin: origin.to_string(), size, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn sign_open_round_trip_and_vkey() {
        let head = TreeHead { origin: "kalejdo.se/ledger", size: 42, root: [3; 32] };
        let note = sign(&head, &key()).unwrap();
        assert!(note.starts_with(
            "kalejdo.se/ledger\n42\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n\n\u{2014} kalejdo.se/ledger "
        ));
        let vk = key().verifying_key();
        let c = open(&note, "kalejdo.se/ledger", &vk).unwrap();
        assert_eq!((c.size, c.root, c.origin.as_str()), (42, [3; 32], "kalejdo.se/ledger"));
        let v = vkey("kalejdo.se/ledger", &vk);
        assert_eq!(parse_vkey(&v).unwrap(), ("kalejdo.se/ledger".to_string(), vk));
    }

    #[test]
    fn tampered_notes_fail() {
        let head = TreeHead { origin: "kvitto.test/log", size: 7, root: [9; 32] };
        let note = sign(&head, &key()).unwrap();
        let vk = key().verifying_key();
        assert!(matches!(
            open(&note.replace("\n7\n", "\n8\n"), "kvitto.test/log", &vk),
            Err(NoteError::BadSignature(_))
        ));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(matches!(open(&note, "kvitto.test/log", &other), Err(NoteError::NoSignature(_))));
        assert!(matches!(open(&note, "another.name", &vk), Err(NoteError::NoSignature(_))));
        assert!(open("no signatures here\n", "kvitto.test/log", &vk).is_err());
        assert!(sign(&TreeHead { origin: "has space", size: 1, root: [0; 32] }, &key()).is_err());
        let v = vkey("kvitto.test/log", &vk);
        assert!(parse_vkey(&v.replacen("kvitto.test/log", "kvitto.test/lag", 1)).is_err());
    }
}

/// Signature type byte of an Ed25519 `cosignature/v1` key (C2SP tlog-cosignature).
const COSIGNATURE_V1: u8 = 0x04;

/// A witness key: its name and Ed25519 key, for `cosignature/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    /// Key name (usually a schema-less URL of the witness).
    pub name: String,
    /// Public key.
    pub key: VerifyingKey,
}

fn cosig_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, COSIGNATURE_V1, key)
}

impl WitnessKey {
    /// Parses a witness verifier key: `<name>+<hex key id>+<base64(0x04 ‖ key)>`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let (name, key) = parse_typed_vkey(s, COSIGNATURE_V1, "not an Ed25519 cosignature/v1 key (0x04 ‖ 32 bytes)")?;
        Ok(Self { name, key })
    }

    /// The verifier key string.
    pub fn vkey(&self) -> String {
        typed_vkey(&self.name, COSIGNATURE_V1, &self.key)
    }
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <t>\n` then the note body.
pub fn cosignature_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A `cosignature/v1` signature line over a checkpoint body (what a witness returns).
pub fn cosign(body: &str, name: &str, key: &SigningKey, timestamp: u64) -> String {
    let sig = key.sign(cosignature_message(body, timestamp).as_bytes());
    let mut raw = cosig_key_id(name, &key.verifying_key()).to_vec();
    raw.extend_from_slice(&timestamp.to_be_bytes());
    raw.extend_from_slice(&sig.to_bytes());
    format!("\u{2014} {name} {}\n", B64.encode(raw))
}

/// The body of a note (through the blank line's first newline) and its signature lines.
pub fn split_note(note: &str) -> Result<(&str, Vec<&str>), NoteError> {
    let split = note.rfind("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let sigs = &note[split + 2..];
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("signature block must end with a newline".into()));
    }
    Ok((&note[..split + 1], sigs.trim_end_matches('\n').split('\n').collect()))
}

/// The timestamp of a valid cosignature by `witness` on the note, `None` when it carries
/// none; a line with the witness's name and key id whose signature fails is an error.
pub fn cosignature(note: &str, witness: &WitnessKey) -> Result<Option<u64>, NoteError> {
    Ok(cosignature_lines(note, witness)?.iter().map(|(_, t)| *t).max())
}

/// Every valid cosignature line by `witness` on the note, with its timestamp (the lines to
/// keep: anything else a witness sends is dropped).
pub fn cosignature_lines(note: &str, witness: &WitnessKey) -> Result<Vec<(String, u64)>, NoteError> {
    let (body, lines) = split_note(note)?;
    let want = cosig_key_id(&witness.name, &witness.key);
    let mut found = Vec::new();
    for line in lines {
        let Some((name, b64)) = line.strip_prefix("\u{2014} ").and_then(|r| r.split_once(' ')) else {
            return Err(NoteError::Malformed(format!("bad signature line {line:?}")));
        };
        let Ok(raw) = B64.decode(b64) else { continue };
        if name != witness.name || raw.len() < 4 || raw[..4] != want {
            continue;
        }
        let bad = || NoteError::BadSignature(witness.name.clone());
        if raw.len() != 4 + 8 + 64 {
            return Err(bad());
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&raw[4..12]);
        let timestamp = u64::from_be_bytes(t);
        if timestamp > i64::MAX as u64 {
            return Err(bad());
        }
        let sig = Signature::from_slice(&raw[12..]).map_err(|_| bad())?;
        witness.key.verify_strict(cosignature_message(body, timestamp).as_bytes(), &sig).map_err(|_| bad())?;
        found.push((line.to_string(), timestamp));
    }
    Ok(found)
}

#[cfg(test)]
mod cosignature_tests {
    use super::*;

    #[test]
    fn cosignatures_verify_and_forgeries_fail() {
        let log = SigningKey::from_bytes(&[7; 32]);
        let note = sign(&TreeHead { origin: "kvitto.test/log", size: 5, root: [1; 32] }, &log).unwrap();
        let w = SigningKey::from_bytes(&[9; 32]);
        let wk = WitnessKey { name: "witness.test/w1".into(), key: w.verifying_key() };
        assert_eq!(WitnessKey::parse(&wk.vkey()).unwrap(), wk);
        assert_eq!(cosignature(&note, &wk).unwrap(), None);
        let (body, _) = split_note(&note).unwrap();
        let cosigned = format!("{note}{}", cosign(body, &wk.name, &w, 1_700_000_000));
        assert_eq!(cosignature(&cosigned, &wk).unwrap(), Some(1_700_000_000));
        // The log's own signature still verifies with the cosignature present.
        assert!(open(&cosigned, "kvitto.test/log", &log.verifying_key()).is_ok());
        // A cosignature over another body fails.
        let other = sign(&TreeHead { origin: "kvitto.test/log", size: 6, root: [1; 32] }, &log).unwrap();
        let (other_body, _) = split_note(&other).unwrap();
        let moved = format!("{note}{}", cosign(other_body, &wk.name, &w, 1));
        assert!(matches!(cosignature(&moved, &wk), Err(NoteError::BadSignature(_))));
        assert!(
            WitnessKey::parse(&vkey("witness.test/w1", &w.verifying_key())).is_err(),
            "a 0x01 key is not a cosigner key"
        );
    }
}
