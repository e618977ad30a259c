//! The key vault: one small file per data subject, outside sled, written and fsynced by
//! kvitto itself. Erasing a subject is deleting its file (or rewriting it without one
//! register's key) — a real deletion, unlike anything removed from sled (DESIGN.md).
//!
//! File `vault/<first 2 hex of subject>/<subject hex>.key` (docs/FORMAT.md §5):
//! `"KVK1"`, u8 version = 1, str controller, str external_ref, u16 slot count,
//! per slot (str register — empty for subject-wide details, [32] key), [32] BLAKE3 of all
//! preceding bytes. Strings are u32-BE-length-prefixed UTF-8.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kvitto_core::{EventId, SubjectId};

const MAGIC: &[u8; 4] = b"KVK1";
const VERSION: u8 = 1;

/// A vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The OS refused.
    #[error("key vault {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A key file is malformed.
    #[error("key vault {path}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Decryption failed (wrong key, tampered ciphertext).
    #[error("details of event {0} do not decrypt (tampered ciphertext or wrong key)")]
    Decrypt(EventId),
    /// The system RNG failed.
    #[error("random number generator: {0}")]
    Rng(String),
}

/// One subject's keys and its external reference.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKeys {
    /// Controller id.
    pub controller: String,
    /// The controller's reference for the customer (personal data: never log it).
    pub external_ref: String,
    /// (register or "" for subject-wide details, key).
    pub slots: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubjectKeys({} slots, <redacted>)", self.slots.len())
    }
}

impl SubjectKeys {
    /// The key for a register slot.
    pub fn key(&self, slot: &str) -> Option<&[u8; 32]> {
        self.slots.iter().find(|(r, _)| r == slot).map(|(_, k)| k)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put(&mut out, &self.controller);
        put(&mut out, &self.external_ref);
        out.extend_from_slice(&(self.slots.len() as u16).to_be_bytes());
        for (reg, key) in &self.slots {
            put(&mut out, reg);
            out.extend_from_slice(key);
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 4 + 1 + 32 {
            return Err("file too short".into());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err("checksum mismatch (torn or edited file)".into());
        }
        let mut r = kvitto_core::field::Reader::new(body);
        let err = |e: kvitto_core::DecodeError| e.to_string();
        if r.take(4).map_err(err)? != MAGIC {
            return Err("not a kvitto key file".into());
        }
        let v = r.u8().map_err(err)?;
        if v != VERSION {
            return Err(format!("key file version {v}, expected {VERSION}"));
        }
        let controller = r.str().map_err(err)?.to_string();
        let external_ref = r.str().map_err(err)?.to_string();
        let n = r.u16().map_err(err)?;
        let mut slots = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let reg = r.str().map_err(err)?.to_string();
            slots.push((reg, r.array::<32>().map_err(err)?));
        }
        r.finish().map_err(err)?;
        Ok(Self { controller, external_ref, slots })
    }
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Fills `buf` from the OS RNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| VaultError::Rng(e.to_string()))?;
    Ok(buf)
}

/// The vault directory.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
}

impl Vault {
    /// The vault under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Path of a subject's key file.
    pub fn path(&self, subject: &SubjectId) -> PathBuf {
        let hex = subject.to_hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.key"))
    }

    /// Reads a subject's keys; `Ok(None)` when it has none (never had, or erased).
    pub fn read(&self, subject: &SubjectId) -> Result<Option<SubjectKeys>, VaultError> {
        let path = self.path(subject);
        match fs::read(&path) {
            Ok(bytes) => SubjectKeys::decode(&bytes).map(Some).map_err(|what| VaultError::Corrupt { path, what }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VaultError::Io { path, source }),
        }
    }

    /// Writes several subjects' key files durably: each to a temporary file, fdatasync,
    /// rename over the old one, then one fsync per touched directory. After `Ok`, every file
    /// survives power loss.
    pub fn write_all(&self, items: &[(SubjectId, &SubjectKeys)]) -> Result<(), VaultError> {
        if items.is_empty() {
            return Ok(());
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VaultError::Io { path, source }
        };
        let mut dirs = BTreeSet::new();
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent).map_err(io(parent))?;
            }
        }
        let mut renames = Vec::with_capacity(items.len());
        for (subject, keys) in items {
            let path = self.path(subject);
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.dir.clone());
            if dirs.insert(dir.clone()) && !dir.exists() {
                fs::create_dir(&dir).map_err(io(&dir))?;
                sync_dir(&self.dir).map_err(io(&self.dir))?;
            }
            let tmp = path.with_extension("tmp");
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io(&tmp))?;
            set_private(&f).map_err(io(&tmp))?;
            f.write_all(&keys.encode()).map_err(io(&tmp))?;
            f.sync_data().map_err(io(&tmp))?;
            renames.push((tmp, path));
        }
        for (tmp, path) in &renames {
            fs::rename(tmp, path).map_err(io(path))?;
        }
        for dir in &dirs {
            sync_dir(dir).map_err(io(dir))?;
        }
        Ok(())
    }

    /// Deletes a subject's key file (crypto-shredding all its details) and syncs the directory.
    pub fn delete(&self, subject: &SubjectId) -> Result<bool, VaultError> {
        let path = self.path(subject);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir).map_err(|source| VaultError::Io { path: dir.to_path_buf(), source })?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(VaultError::Io { path, source }),
        }
    }
}

/// fsync a directory so that entries created or renamed in it survive power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(unix)]
fn set_private(f: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_f: &File) -> std::io::Result<()> {
    Ok(())
}

fn aad(subject: &SubjectId, event_id: &EventId) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..16].copy_from_slice(&subject.0);
    a[16..].copy_from_slice(event_id.as_bytes());
    a
}

/// Encrypts `salt ‖ plaintext` under `key`, bound to (subject, event_id) as associated data.
/// Output: `nonce(24) ‖ ciphertext ‖ tag(16)`.
pub fn seal(
    key: &[u8; 32],
    subject: &SubjectId,
    event_id: &EventId,
    salt: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let nonce_bytes = random_bytes::<24>()?;
    let nonce = XNonce::from(nonce_bytes);
    let mut msg = Vec::with_capacity(32 + plaintext.len());
    msg.extend_from_slice(salt);
    msg.extend_from_slice(plaintext);
    let aad = aad(subject, event_id);
    let ct = cipher.encrypt(&nonce, Payload { msg: &msg, aad: &aad }).map_err(|_| VaultError::Decrypt(*event_id))?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a sealed payload; returns (salt, plaintext).
pub fn open(
    key: &[u8; 32],
    subject: &SubjectId,
    event_id: &EventId,
    sealed: &[u8],
) -> Result<([u8; 32], Vec<u8>), VaultError> {
    if sealed.len() < 24 + 32 + 16 {
        return Err(VaultError::Decrypt(*event_id));
    }
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let mut nonce_bytes = [0u8; 24];
    nonce_bytes.copy_from_slice(&sealed[..24]);
    let aad = aad(subject, event_id);
    let mut msg = cipher
        .decrypt(&XNonce::from(nonce_bytes), Payload { msg: &sealed[24..], aad: &aad })
        .map_err(|_| VaultError::Decrypt(*event_id))?;
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&msg[..32]);
    let plaintext = msg.split_off(32);
    Ok((salt, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(dir.path().join("vault"));
        let s = SubjectId([0xab; 16]);
        let keys = SubjectKeys {
            controller: "kalejdo".into(),
            external_ref: "cust-1".into(),
            slots: vec![(String::new(), [1; 32])],
        };
        vault.write_all(&[(s, &keys)]).unwrap();
        assert_eq!(vault.read(&s).unwrap(), Some(keys));
        assert!(vault.delete(&s).unwrap());
        assert_eq!(vault.read(&s).unwrap(), None);
        assert!(!vault.delete(&s).unwrap());
    }

    #[test]
    fn edited_key_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(dir.path());
        let s = SubjectId([1; 16]);
        let keys = SubjectKeys { controller: "k".into(), external_ref: "r".into(), slots: vec![] };
        vault.write_all(&[(s, &keys)]).unwrap();
        let path = vault.path(&s);
        let mut bytes = fs::read(&path).unwrap();
        bytes[6] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(vault.read(&s), Err(VaultError::Corrupt { .. })));
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = [7u8; 32];
        let s = SubjectId([2; 16]);
        let id = EventId::new_v7();
        let sealed = seal(&key, &s, &id, &[9; 32], b"{\"name\":\"x\"}").unwrap();
        let (salt, pt) = open(&key, &s, &id, &sealed).unwrap();
        assert_eq!((salt, pt.as_slice()), ([9; 32], &b"{\"name\":\"x\"}"[..]));
        assert!(open(&[8; 32], &s, &id, &sealed).is_err());
        assert!(open(&key, &SubjectId([3; 16]), &id, &sealed).is_err());
        assert!(open(&key, &s, &EventId::new_v7(), &sealed).is_err());
        let mut bad = sealed.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(open(&key, &s, &id, &bad).is_err());
    }
}
