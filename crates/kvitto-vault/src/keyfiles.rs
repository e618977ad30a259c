//! The ledger directory's own files, shared by every storage backend (docs/FORMAT.md §4):
//! the marker `LEDGER` (format version, and which store holds the events), the pseudonym
//! secret `secret.key` and the checkpoint signing seed `checkpoint.key` (both 0600, written
//! once by `init`), beside the key vault `vault/`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use kvitto_core::LedgerSecret;

use crate::{random_bytes, sync_dir};

/// The ledger directory format this build reads and writes.
pub const LEDGER_FORMAT: u32 = 1;
const MARKER: &str = "LEDGER";
const SECRET_FILE: &str = "secret.key";
const SIGNING_FILE: &str = "checkpoint.key";
const SIGNING_MAGIC: &[u8; 4] = b"KVE1";
const SECRET_MAGIC: &[u8; 4] = b"KVS1";
/// The key vault's directory inside the ledger directory.
pub const VAULT_DIR: &str = "vault";

/// Why the ledger directory's own files could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// No ledger at the path.
    #[error("{0}: no kvitto ledger here (create one with `kvitto init --origin NAME`)")]
    NotALedger(PathBuf),
    /// `init` on an existing ledger.
    #[error("{0}: a ledger already exists here; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    /// Written by a newer or foreign kvitto.
    #[error(
        "{path}: ledger format version {found}; this kvitto reads version {supported}. Use a kvitto release that supports it"
    )]
    UnknownFormat {
        /// The ledger directory.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A file that must exist is missing or malformed.
    #[error("{path}: {what}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The operating system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DirError + '_ {
    move |source| DirError::Io { path: path.to_path_buf(), source }
}

/// What the marker says: which store holds the events (`None`: the embedded sled store in
/// `store/`, the default; otherwise the backend's name, e.g. `postgres`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The backend named by a `store NAME` line.
    pub store: Option<String>,
}

/// Makes `dir` ready for a new ledger: it must not hold one and must be empty or absent.
pub fn prepare_new(dir: &Path) -> Result<(), DirError> {
    if dir.join(MARKER).exists() {
        return Err(DirError::AlreadyExists(dir.to_path_buf()));
    }
    if dir.exists() {
        let mut entries = fs::read_dir(dir).map_err(io_err(dir))?;
        if entries.next().is_some() {
            return Err(DirError::Damaged {
                path: dir.to_path_buf(),
                what: "directory is not empty and holds no ledger; choose an empty or new directory".into(),
            });
        }
    } else {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).map_err(io_err(parent))?;
        }
    }
    Ok(())
}

/// Writes a new pseudonym secret and checkpoint signing seed into `dir` (0600, fsynced).
pub fn create_keys(dir: &Path) -> Result<LedgerSecret, DirError> {
    let rng = |e: crate::VaultError| DirError::Damaged { path: dir.into(), what: e.to_string() };
    let secret = random_bytes::<32>().map_err(rng)?;
    write_private_file(&dir.join(SECRET_FILE), &[SECRET_MAGIC.as_slice(), &secret].concat())?;
    let seed = random_bytes::<32>().map_err(rng)?;
    write_private_file(&dir.join(SIGNING_FILE), &[SIGNING_MAGIC.as_slice(), &seed].concat())?;
    Ok(LedgerSecret(secret))
}

/// Writes the marker — last in `init`, so a crash midway leaves no half-ledger that opens —
/// and fsyncs the directory.
pub fn write_marker(dir: &Path, marker: &Marker) -> Result<(), DirError> {
    let mut text = format!("kvitto ledger\nformat {LEDGER_FORMAT}\n");
    if let Some(store) = &marker.store {
        text.push_str(&format!("store {store}\n"));
    }
    write_private_file(&dir.join(MARKER), text.as_bytes())?;
    sync_dir(dir).map_err(io_err(dir))
}

/// Reads the marker; refuses a missing ledger and an unknown format version.
pub fn read_marker(dir: &Path) -> Result<Marker, DirError> {
    let path = dir.join(MARKER);
    let text = match fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DirError::NotALedger(dir.to_path_buf())),
        Err(source) => return Err(DirError::Io { path, source }),
    };
    let found = text
        .lines()
        .find_map(|l| l.strip_prefix("format "))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| DirError::Damaged { path: path.clone(), what: "no format line".into() })?;
    if found != LEDGER_FORMAT {
        return Err(DirError::UnknownFormat { path: dir.to_path_buf(), found, supported: LEDGER_FORMAT });
    }
    let store = text.lines().find_map(|l| l.strip_prefix("store ")).map(|s| s.trim().to_string());
    Ok(Marker { store })
}

/// Reads the pseudonym secret.
pub fn read_secret(dir: &Path) -> Result<LedgerSecret, DirError> {
    let path = dir.join(SECRET_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DirError::Damaged {
                path,
                what: "the ledger's pseudonym secret is missing: without it no customer can be found or appended \
                       to; restore this file from the ledger's backup (kvitto wrote nothing)"
                    .into(),
            });
        }
        Err(source) => return Err(DirError::Io { path, source }),
    };
    if bytes.len() != 36 || &bytes[..4] != SECRET_MAGIC {
        return Err(DirError::Damaged { path, what: "not a kvitto secret file (36 bytes, KVS1)".into() });
    }
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&bytes[4..]);
    Ok(LedgerSecret(secret))
}

/// The Ed25519 seed that signs checkpoints (`checkpoint.key`, 0600), if the ledger has one.
pub fn signing_seed(dir: &Path) -> Result<Option<[u8; 32]>, DirError> {
    let path = dir.join(SIGNING_FILE);
    match fs::read(&path) {
        Ok(b) if b.len() == 36 && &b[..4] == SIGNING_MAGIC => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&b[4..]);
            Ok(Some(seed))
        }
        Ok(_) => Err(DirError::Damaged { path, what: "not a kvitto signing key (KVE1 + 32 bytes)".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DirError::Io { path, source }),
    }
}

/// Creates `path` with `bytes`, 0600, fsynced; refuses to overwrite.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn marker_round_trips_and_names_its_store() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("l");
        prepare_new(&dir).unwrap();
        let secret = create_keys(&dir).unwrap();
        write_marker(&dir, &Marker { store: Some("postgres".into()) }).unwrap();
        assert_eq!(read_marker(&dir).unwrap().store.as_deref(), Some("postgres"));
        assert_eq!(read_secret(&dir).unwrap().0, secret.0);
        assert!(signing_seed(&dir).unwrap().is_some());
        assert!(matches!(prepare_new(&dir), Err(DirError::AlreadyExists(_))));
        fs::write(dir.join(MARKER), "kvitto ledger\nformat 9\n").unwrap();
        assert!(matches!(read_marker(&dir), Err(DirError::UnknownFormat { found: 9, .. })));
    }

    #[test]
    fn a_missing_or_foreign_secret_is_damage() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(read_marker(t.path()), Err(DirError::NotALedger(_))));
        assert!(matches!(read_secret(t.path()), Err(DirError::Damaged { .. })));
        fs::write(t.path().join(SECRET_FILE), b"KVS1short").unwrap();
        assert!(matches!(read_secret(t.path()), Err(DirError::Damaged { .. })));
        assert!(signing_seed(t.path()).unwrap().is_none());
    }
}
