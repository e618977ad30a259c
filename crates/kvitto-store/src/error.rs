//! The sled backend's own error, which may carry sled's; it becomes the backend-neutral
//! [`kvitto_storage::StoreError`] at the trait boundary (sled's error is in no public
//! signature of the storage traits).

use kvitto_storage::OpenError;

/// A read or write of the sled store failed.
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

impl From<kvitto_storage::StoreError> for StoreError {
    fn from(e: kvitto_storage::StoreError) -> Self {
        use kvitto_storage::StoreError as N;
        match e {
            N::Io(e) => StoreError::Io(e),
            N::Corrupt { at, what } => StoreError::Corrupt { at, what },
            N::Encode { what, why } => StoreError::Encode { what, why },
            N::TooLarge { seq, size, limit } => StoreError::TooLarge { seq, size, limit },
            other => StoreError::Io(std::io::Error::other(other.to_string())),
        }
    }
}

impl From<StoreError> for kvitto_storage::StoreError {
    fn from(e: StoreError) -> Self {
        use kvitto_storage::StoreError as N;
        match e {
            StoreError::Sled(sled::Error::Io(e)) | StoreError::Io(e) => N::Io(e),
            StoreError::Sled(e) => N::Engine { what: format!("sled: {e}"), io_kind: None },
            StoreError::Corrupt { at, what } => N::Corrupt { at, what },
            StoreError::Encode { what, why } => N::Encode { what, why },
            StoreError::TooLarge { seq, size, limit } => N::TooLarge { seq, size, limit },
        }
    }
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        OpenError::Store(e.into())
    }
}
