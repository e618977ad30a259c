//! Independent test peers for kvitto, written from the public C2SP
//! specifications only (never from kvitto's own code), so that they check
//! kvitto's implementation rather than mirror it.
//!
//! Specifications followed (C2SP/C2SP repository):
//!
//! * `signed-note.md` (c2sp.org/signed-note@v1.0.0): note format ("Format"),
//!   signature lines and key IDs ("Signatures"), signature types 0x01/0x04
//!   ("Signature types", "Ed25519 signatures") and verifier keys ("Verifier
//!   keys"): [`parse_note`], [`Vkey`], [`key_id`], [`verify_note_ed25519`],
//!   [`sign_note_ed25519`], [`ed25519_vkey`].
//! * `tlog-checkpoint.md` (c2sp.org/tlog-checkpoint@v1.0.0), "Note text":
//!   [`parse_checkpoint_text`], [`checkpoint_text`].
//! * RFC 6962 §2.1 (Merkle Tree Hash, leaf = SHA-256(0x00 ‖ d), node =
//!   SHA-256(0x01 ‖ l ‖ r), empty tree = SHA-256("")), §2.1.1 (audit paths)
//!   and §2.1.2 (consistency proofs): [`leaf_hash`], [`node_hash`],
//!   [`empty_root`], and the in-memory reference implementations [`mth`],
//!   [`ref_inclusion_path`], [`ref_consistency_proof`].
//! * RFC 9162 §2.1.3.2 (verifying an inclusion proof) and §2.1.4.2 (verifying
//!   a consistency proof): [`verify_inclusion`], [`verify_consistency`].
//!
//! The witness (`tlog-witness.md`, `tlog-cosignature.md`) is in [`witness`],
//! the tile reader (`tlog-tiles.md`) in [`tiles`].

pub mod tiles;
pub mod witness;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

/// Signature type byte for Ed25519 note signatures (signed-note, "Signature types").
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte for timestamped Ed25519 cosignatures (cosignature/v1).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// The signature line prefix: em dash (U+2014) and a space.
pub const SIG_PREFIX: &str = "\u{2014} ";

/// Standard base64 with padding (RFC 4648 §4), as every C2SP spec here uses.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Strict standard base64 decoding (canonical padding required).
pub fn unb64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("invalid base64 {s:?}: {e}"))
}

/// Decodes a base64 SHA-256 hash (exactly 32 bytes).
pub fn unb64_hash(s: &str) -> Result<Hash, String> {
    let v = unb64(s)?;
    <Hash>::try_from(v.as_slice()).map_err(|_| format!("hash {s:?} is {} bytes, not 32", v.len()))
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// RFC 6962 §2.1 leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 §2.1 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// RFC 6962 §2.1: the hash of the empty tree is SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    sha256(b"")
}

/// The largest power of two strictly less than `n` (`n` ≥ 2), the `k` of RFC 6962 §2.1.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// RFC 6962 §2.1 MTH over already-hashed leaves (recursive definition; reference).
/// With a power-of-two count this is also the hash of a perfect subtree whose
/// leaves are the given hashes (used for tiles).
pub fn mth(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => empty_root(),
        1 => leaf_hashes[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&mth(&leaf_hashes[..k]), &mth(&leaf_hashes[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 PATH(m, D[n]) over already-hashed leaves (reference).
/// Panics if `index >= leaf_hashes.len()` (test input).
pub fn ref_inclusion_path(index: u64, leaf_hashes: &[Hash]) -> Vec<Hash> {
    let n = leaf_hashes.len();
    assert!((index as usize) < n, "index {index} out of range {n}");
    if n == 1 {
        return Vec::new();
    }
    let k = split_point(n as u64) as usize;
    let m = index as usize;
    if m < k {
        let mut p = ref_inclusion_path(index, &leaf_hashes[..k]);
        p.push(mth(&leaf_hashes[k..]));
        p
    } else {
        let mut p = ref_inclusion_path((m - k) as u64, &leaf_hashes[k..]);
        p.push(mth(&leaf_hashes[..k]));
        p
    }
}

/// RFC 6962 §2.1.2 PROOF(m, D[n]) over already-hashed leaves (reference).
/// Panics unless `0 < m <= n` (test input).
pub fn ref_consistency_proof(m: u64, leaf_hashes: &[Hash]) -> Vec<Hash> {
    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(d)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
    let m = m as usize;
    assert!(0 < m && m <= leaf_hashes.len(), "bad consistency sizes");
    subproof(m, leaf_hashes, true)
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` (a leaf hash) is at `index` in the
/// tree of `size` leaves with root `root`, given the audit path `proof`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), String> {
    if index >= size {
        return Err(format!("leaf index {index} is not below tree size {size}"));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err("inclusion proof is too long".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("inclusion proof is too short".into());
    }
    if &r != root {
        return Err("inclusion proof does not lead to the root hash".into());
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies a consistency proof between the tree of size
/// `first` with root `first_hash` and the tree of size `second` with root
/// `second_hash`. Equal sizes need an empty proof and equal roots; size 0 is
/// consistent with anything given an empty proof.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_hash: &Hash,
    second_hash: &Hash,
    proof: &[Hash],
) -> Result<(), String> {
    if first > second {
        return Err(format!("old size {first} is larger than new size {second}"));
    }
    if first == second {
        if !proof.is_empty() {
            return Err("sizes are equal but the consistency proof is not empty".into());
        }
        if first_hash != second_hash {
            return Err("sizes are equal but the root hashes differ".into());
        }
        return Ok(());
    }
    if first == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err("old size is 0 but the consistency proof is not empty".into())
        };
    }
    if proof.is_empty() {
        return Err("empty consistency proof".into());
    }
    // Step 1: if first is an exact power of 2, prepend first_hash.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_hash);
    }
    path.extend_from_slice(proof);
    // Steps 2-3.
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 4.
    let (mut fr, mut sr) = (path[0], path[0]);
    // Step 5.
    for c in &path[1..] {
        if sn == 0 {
            return Err("consistency proof is too long".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 6.
    if sn != 0 {
        return Err("consistency proof is too short".into());
    }
    if &fr != first_hash {
        return Err("consistency proof does not lead to the old root hash".into());
    }
    if &sr != second_hash {
        return Err("consistency proof does not lead to the new root hash".into());
    }
    Ok(())
}

/// signed-note "Signatures": key ID = SHA-256(key name ‖ 0x0A ‖ type ‖ public key)[:4].
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, sig_type]);
    h.update(public_key);
    let d: Hash = h.finalize().into();
    [d[0], d[1], d[2], d[3]]
}

/// signed-note "Format": key names are non-empty, without Unicode spaces or `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A signed-note verifier key: `<name>+<hex(key ID)>+<base64(type ‖ key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    /// Key name (the name in signature lines).
    pub name: String,
    /// Key ID (first 4 bytes of a signature).
    pub id: [u8; 4],
    /// Signature type byte.
    pub sig_type: u8,
    /// Public key material (after the type byte).
    pub key: Vec<u8>,
}

impl Vkey {
    /// Parses a vkey (signed-note "Verifier keys"). The hex key ID must be 8
    /// lowercase hex digits ("fixed length lowercase Base 16"). For types 0x01
    /// and 0x04 (32-byte Ed25519 keys), the key ID must be the one the specs
    /// define (signed-note "Ed25519 signatures", tlog-cosignature "Format").
    pub fn parse(s: &str) -> Result<Vkey, String> {
        // The name holds no '+', the hex ID none either; base64 may.
        let (name, rest) = s.split_once('+').ok_or_else(|| format!("vkey {s:?}: no '+'"))?;
        let (hex_id, key64) = rest.split_once('+').ok_or_else(|| format!("vkey {s:?}: no second '+'"))?;
        if !valid_key_name(name) {
            return Err(format!("vkey {s:?}: invalid key name"));
        }
        if hex_id.len() != 8 || !hex_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("vkey {s:?}: key ID is not 8 lowercase hex digits"));
        }
        let mut id = [0u8; 4];
        hex::decode_to_slice(hex_id, &mut id).map_err(|e| format!("vkey {s:?}: {e}"))?;
        let raw = unb64(key64)?;
        let (&sig_type, key) = raw.split_first().ok_or_else(|| format!("vkey {s:?}: empty key"))?;
        if matches!(sig_type, SIG_TYPE_ED25519 | SIG_TYPE_COSIGNATURE_V1) {
            if key.len() != 32 {
                return Err(format!("vkey {s:?}: Ed25519 key is {} bytes", key.len()));
            }
            let want = key_id(name, sig_type, key);
            if want != id {
                return Err(format!(
                    "vkey {s:?}: key ID {hex_id} is not SHA-256(name ‖ 0x0A ‖ 0x{sig_type:02x} ‖ key)[:4] = {}",
                    hex::encode(want)
                ));
            }
        }
        Ok(Vkey { name: name.to_string(), id, sig_type, key: key.to_vec() })
    }

    /// The vkey string.
    pub fn encode(&self) -> String {
        let mut raw = vec![self.sig_type];
        raw.extend_from_slice(&self.key);
        format!("{}+{}+{}", self.name, hex::encode(self.id), b64(&raw))
    }

    /// The Ed25519 public key (types 0x01 and 0x04).
    pub fn ed25519(&self) -> Result<VerifyingKey, String> {
        let bytes =
            <[u8; 32]>::try_from(self.key.as_slice()).map_err(|_| format!("{}: not a 32-byte key", self.name))?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{}: bad Ed25519 key: {e}", self.name))
    }
}

/// The vkey of an Ed25519 note signer (type 0x01).
pub fn ed25519_vkey(name: &str, key: &VerifyingKey) -> String {
    let pk = key.to_bytes();
    Vkey {
        name: name.to_string(),
        id: key_id(name, SIG_TYPE_ED25519, &pk),
        sig_type: SIG_TYPE_ED25519,
        key: pk.to_vec(),
    }
    .encode()
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSig<'a> {
    /// Key name.
    pub name: &'a str,
    /// Key ID (first 4 decoded bytes).
    pub id: [u8; 4],
    /// The signature bytes after the key ID.
    pub sig: Vec<u8>,
    /// The whole line, without its final newline.
    pub line: &'a str,
}

/// A parsed (unverified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note<'a> {
    /// The note text, including its final newline, without the blank line.
    pub text: &'a str,
    /// The signature lines, in order.
    pub sigs: Vec<NoteSig<'a>>,
}

/// Most signatures accepted in a note (the spec requires at least 16).
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// Parses one signature line (without its newline): `— <name> <base64>`.
pub fn parse_sig_line(line: &str) -> Result<NoteSig<'_>, String> {
    let rest =
        line.strip_prefix(SIG_PREFIX).ok_or_else(|| format!("signature line {line:?} does not start with \"— \""))?;
    let (name, sig64) =
        rest.split_once(' ').ok_or_else(|| format!("signature line {line:?}: no space after the key name"))?;
    if !valid_key_name(name) {
        return Err(format!("signature line {line:?}: invalid key name"));
    }
    let raw = unb64(sig64)?;
    if raw.len() < 5 {
        return Err(format!("signature line {line:?}: signature is too short"));
    }
    Ok(NoteSig { name, id: [raw[0], raw[1], raw[2], raw[3]], sig: raw[4..].to_vec(), line })
}

/// Parses a signed note (signed-note "Format"): valid UTF-8 (a `&str`), no
/// control characters but newline, text ending in newline, a blank line (the
/// last one in the note), then one or more signature lines each ending in
/// newline.
pub fn parse_note(note: &str) -> Result<Note<'_>, String> {
    if let Some(c) = note.chars().find(|&c| c < ' ' && c != '\n') {
        return Err(format!("note contains control character {:?}", c));
    }
    let split = note.rfind("\n\n").ok_or("note has no blank line before its signatures")?;
    let text = &note[..split + 1];
    let sig_block = &note[split + 2..];
    if sig_block.is_empty() {
        return Err("note has no signature lines".into());
    }
    let body = sig_block.strip_suffix('\n').ok_or("note does not end with a newline")?;
    let mut sigs = Vec::new();
    for line in body.split('\n') {
        sigs.push(parse_sig_line(line)?);
        if sigs.len() > MAX_NOTE_SIGNATURES {
            return Err("too many signatures in note".into());
        }
    }
    Ok(Note { text, sigs })
}

/// Why a note failed Ed25519 verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteVerifyError {
    /// No signature line matched (name and ID) a known key.
    NoKnownSignature,
    /// A line matched a known key but its signature did not verify.
    BadSignature(String),
}

impl std::fmt::Display for NoteVerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoteVerifyError::NoKnownSignature => f.write_str("no signature from a known key"),
            NoteVerifyError::BadSignature(m) => write!(f, "bad signature: {m}"),
        }
    }
}

/// Verifies a note's Ed25519 (type 0x01) signatures against `keys`
/// (signed-note "Signatures"): lines whose name and key ID don't both match a
/// key are ignored; every matching line must verify (else the whole note is
/// rejected); at least one must. Returns the indices of the verified lines.
pub fn verify_note_ed25519(note: &Note<'_>, keys: &[Vkey]) -> Result<Vec<usize>, NoteVerifyError> {
    let mut ok = Vec::new();
    for (i, s) in note.sigs.iter().enumerate() {
        for k in keys.iter().filter(|k| k.sig_type == SIG_TYPE_ED25519 && k.name == s.name && k.id == s.id) {
            let vk = k.ed25519().map_err(NoteVerifyError::BadSignature)?;
            let sig =
                Signature::from_slice(&s.sig).map_err(|e| NoteVerifyError::BadSignature(format!("{}: {e}", s.name)))?;
            vk.verify(note.text.as_bytes(), &sig)
                .map_err(|e| NoteVerifyError::BadSignature(format!("{}: {e}", s.name)))?;
            ok.push(i);
        }
    }
    if ok.is_empty() { Err(NoteVerifyError::NoKnownSignature) } else { Ok(ok) }
}

/// Signs `text` (must end in newline) as a note with one Ed25519 (type 0x01)
/// signature by `name`; returns the whole note.
pub fn sign_note_ed25519(text: &str, name: &str, key: &SigningKey) -> String {
    assert!(text.ends_with('\n'), "note text must end with a newline");
    let id = key_id(name, SIG_TYPE_ED25519, &key.verifying_key().to_bytes());
    let sig = key.sign(text.as_bytes());
    let mut raw = id.to_vec();
    raw.extend_from_slice(&sig.to_bytes());
    format!("{text}\n{SIG_PREFIX}{name} {}\n", b64(&raw))
}

/// A parsed checkpoint note text (tlog-checkpoint "Note text").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Origin line.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// Extension lines (opaque).
    pub extensions: Vec<String>,
}

/// Parses an ASCII decimal with no leading zeroes (`0` for zero).
pub fn parse_decimal(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not an ASCII decimal"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("{s:?} has leading zeroes"));
    }
    s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"))
}

/// Parses checkpoint note text: at least three non-empty lines (origin, tree
/// size, base64 root hash), then optional non-empty extension lines; the
/// text ends in newline.
pub fn parse_checkpoint_text(text: &str) -> Result<Checkpoint, String> {
    let body = text.strip_suffix('\n').ok_or("checkpoint text does not end with a newline")?;
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() < 3 {
        return Err(format!("checkpoint has {} lines, not at least 3", lines.len()));
    }
    if let Some(i) = lines.iter().position(|l| l.is_empty()) {
        return Err(format!("checkpoint line {} is empty", i + 1));
    }
    Ok(Checkpoint {
        origin: lines[0].to_string(),
        size: parse_decimal(lines[1]).map_err(|e| format!("checkpoint size: {e}"))?,
        root: unb64_hash(lines[2]).map_err(|e| format!("checkpoint root: {e}"))?,
        extensions: lines[3..].iter().map(|s| s.to_string()).collect(),
    })
}

/// Checkpoint note text for (origin, size, root), no extension lines.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", b64(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
    }

    #[test]
    fn signed_note_spec_example_verifies() {
        // The example from signed-note.md, "Verifier keys".
        let vkey = Vkey::parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        let n = parse_note(note).unwrap();
        assert_eq!(n.text, "This is an example message.\n");
        assert_eq!(verify_note_ed25519(&n, std::slice::from_ref(&vkey)), Ok(vec![0]));
        let tampered = note.replace("example message", "exemple message");
        let n = parse_note(&tampered).unwrap();
        assert!(matches!(verify_note_ed25519(&n, &[vkey]), Err(NoteVerifyError::BadSignature(_))));
    }

    #[test]
    fn vkey_rejects_wrong_id_and_roundtrips() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let v = ed25519_vkey("example.com/log", &k.verifying_key());
        assert_eq!(Vkey::parse(&v).unwrap().encode(), v);
        let (name, rest) = v.split_once('+').unwrap();
        let bad = format!("{name}+00000000+{}", &rest[9..]);
        assert!(Vkey::parse(&bad).is_err());
        assert!(Vkey::parse(&v.to_uppercase()).is_err());
    }

    #[test]
    fn note_parsing_rules() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let note = sign_note_ed25519("a\n\nb\n", "n", &k);
        let n = parse_note(&note).unwrap();
        assert_eq!(n.text, "a\n\nb\n");
        assert!(parse_note(&note.replace('\n', "\r\n")).is_err());
        assert!(parse_note(note.trim_end()).is_err());
        assert!(parse_note("a\n\n").is_err());
        assert!(parse_note("a\n\n- n AAAAAAA=\n").is_err());
    }

    #[test]
    fn reference_proofs_verify() {
        for n in 1..=40u64 {
            let l = leaves(n);
            let root = mth(&l);
            for i in 0..n {
                let p = ref_inclusion_path(i, &l);
                verify_inclusion(i, n, &l[i as usize], &p, &root).unwrap();
                assert!(verify_inclusion(i, n, &l[i as usize], &p, &l[0]).is_err() || n == 1);
                if !p.is_empty() {
                    assert!(verify_inclusion(i, n, &l[i as usize], &p[1..], &root).is_err());
                }
            }
            for m in 1..=n {
                let p = ref_consistency_proof(m, &l);
                let old = mth(&l[..m as usize]);
                verify_consistency(m, n, &old, &root, &p).unwrap();
                if m < n {
                    let wrong = mth(&leaves(m + 1)[1..]);
                    assert!(verify_consistency(m, n, &wrong, &root, &p).is_err());
                    assert!(verify_consistency(m, n, &old, &root, &p[1..]).is_err());
                }
            }
        }
    }

    #[test]
    fn checkpoint_text_rules() {
        let root = empty_root();
        let cp = parse_checkpoint_text(&checkpoint_text("o", 0, &root)).unwrap();
        assert_eq!((cp.origin.as_str(), cp.size, cp.root), ("o", 0, root));
        assert!(parse_checkpoint_text(&format!("o\n01\n{}\n", b64(&root))).is_err());
        assert!(parse_checkpoint_text(&format!("o\n1\n{}\n\n", b64(&root))).is_err());
        assert!(parse_checkpoint_text(&format!("o\n1\n{}", b64(&root))).is_err());
        assert!(parse_checkpoint_text("o\n1\nAAAA\n").is_err());
        let cp = parse_checkpoint_text(&format!("o\n1\n{}\next\n", b64(&root))).unwrap();
        assert_eq!(cp.extensions, vec!["ext".to_string()]);
    }
}
