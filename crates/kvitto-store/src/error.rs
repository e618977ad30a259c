//! Store errors, one enum per operation family.

use std::path::PathBuf;

/// Why a ledger could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
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
    /// sled refused to open (another process holds the ledger, or the store is damaged).
    #[error("store {path}: {source} (is another kvitto process using this ledger?)")]
    Sled {
        /// The sled directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Too little free space to open safely.
    #[error(
        "{path}: only {available} bytes free; opening needs at least {needed} (sled writes during recovery and corrupts its snapshot when the disk is full). Free some space and retry"
    )]
    DiskFull {
        /// The ledger directory.
        path: PathBuf,
        /// Bytes free.
        available: u64,
        /// Bytes required.
        needed: u64,
    },
    /// Reading during open failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The origin given to `init` is not a valid checkpoint key name.
    #[error("--origin {origin:?}: {why}")]
    InvalidOrigin {
        /// The origin as given.
        origin: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A read or write of the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// The OS failed (fdatasync, key files).
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode.
    #[error("corrupt record at {at}: {what}")]
    Corrupt {
        /// Where (chunk key or index key).
        at: String,
        /// What is wrong.
        what: String,
    },
    /// A value could not be encoded for storage (nothing was written).
    #[error("cannot encode {what} for storage: {why}")]
    Encode {
        /// The Rust type of the value.
        what: &'static str,
        /// The encoder's error.
        why: String,
    },
    /// A chunk would not fit in one sled value.
    #[error("event at seq {seq} is {size} bytes stored; one event may take at most {limit} bytes")]
    TooLarge {
        /// The event.
        seq: u64,
        /// Its stored size.
        size: usize,
        /// The chunk limit.
        limit: usize,
    },
}

impl StoreError {
    /// The operating system's error kind, when the OS refused (directly or inside sled).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StoreError::Io(e) | StoreError::Sled(sled::Error::Io(e)) => Some(e.kind()),
            _ => None,
        }
    }
}
