//! Backend-neutral storage errors: no engine's type appears in any of them.

use std::path::PathBuf;

use kvitto_vault::keyfiles::DirError;

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
        /// The ledger directory (or database).
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A file or table that must exist is missing or malformed.
    #[error("{path}: {what}")]
    Damaged {
        /// The file (or the store's location).
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
    /// The storage engine refused to open the store.
    #[error("store {location}: {what}")]
    Engine {
        /// The store (a directory, or a database URL without its password).
        location: String,
        /// The engine's error.
        what: String,
    },
    /// Another process holds the ledger for writing.
    #[error("store {location}: {what}")]
    Busy {
        /// The store.
        location: String,
        /// Who holds it, as far as known, and what to do.
        what: String,
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

impl From<DirError> for OpenError {
    fn from(e: DirError) -> Self {
        match e {
            DirError::NotALedger(p) => OpenError::NotALedger(p),
            DirError::AlreadyExists(p) => OpenError::AlreadyExists(p),
            DirError::UnknownFormat { path, found, supported } => OpenError::UnknownFormat { path, found, supported },
            DirError::Damaged { path, what } => OpenError::Damaged { path, what },
            DirError::Io { path, source } => OpenError::Io { path, source },
        }
    }
}

/// A read or write of the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed.
    #[error("storage: {what}")]
    Engine {
        /// The engine's error.
        what: String,
        /// The operating system's error kind, when the OS refused inside the engine.
        io_kind: Option<std::io::ErrorKind>,
    },
    /// The OS failed (fdatasync, key files).
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode.
    #[error("corrupt record at {at}: {what}")]
    Corrupt {
        /// Where (chunk key, index key, table row).
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
    /// A chunk would not fit in one stored value.
    #[error("event at seq {seq} is {size} bytes stored; one event may take at most {limit} bytes")]
    TooLarge {
        /// The event.
        seq: u64,
        /// Its stored size.
        size: usize,
        /// The chunk limit.
        limit: usize,
    },
    /// The store's chain head moved under this handle: another writer took the ledger over.
    /// Nothing of the refused group was written; this handle takes no more writes.
    #[error("the ledger was taken over by another writer ({0}); this process wrote nothing more")]
    Fenced(String),
    /// This handle failed earlier and takes no more writes; reopen the ledger.
    #[error("the store failed earlier under this handle and takes no more writes; reopen the ledger")]
    Poisoned,
}

impl StoreError {
    /// The operating system's error kind, when the OS refused (directly or inside the engine).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StoreError::Io(e) => Some(e.kind()),
            StoreError::Engine { io_kind, .. } => *io_kind,
            _ => None,
        }
    }
}

/// Why a commit failed, and whether the group can be in the store.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Refused before the engine saw anything: the group is not written.
    #[error("{0}")]
    NotWritten(StoreError),
    /// Failed after the group was handed to the engine (its write, flush, fdatasync or
    /// COMMIT): after a reopen the store holds the whole group or none of it, and only a
    /// reopen tells which.
    #[error("{0}")]
    Unknown(StoreError),
}

/// The one error for a store whose data is damaged, whatever the engine or kvitto noticed.
pub fn damaged_store(path: &std::path::Path, why: impl std::fmt::Display) -> OpenError {
    OpenError::Damaged {
        path: path.to_path_buf(),
        what: format!(
            "{why}: the store's files are damaged — kvitto wrote nothing; restore the store directory from a backup"
        ),
    }
}

/// Maps a read error while opening: damaged data is the damaged-store error.
pub fn open_read_err(path: &std::path::Path) -> impl Fn(StoreError) -> OpenError + '_ {
    move |e| match e {
        StoreError::Corrupt { at, what } => damaged_store(path, format!("{at} does not decode ({what})")),
        other => OpenError::Store(other),
    }
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Runs `f`, turning a panic into the damaged-store error. An engine may panic on damaged
/// data instead of returning an error (sled 0.34.7 does, during recovery and when a page it
/// recovered badly is first read), so every step of opening that reads the store runs under this.
pub fn catch_engine_panic<T>(path: &std::path::Path, f: impl FnOnce() -> Result<T, OpenError>) -> Result<T, OpenError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(damaged_store(path, format!("the storage engine failed reading the store ({})", panic_message(&*panic))))
    })
}
