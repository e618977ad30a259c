//! Errors of the library API, one enum per operation.

use kvitto_core::{EventId, Timestamp};

pub use kvitto_storage::OpenError;

/// A failure on the storage side, by kind: never the caller's input. Each variant says what a
/// caller (or an HTTP layer: all of them are server-side, 5xx) can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system refused (a full disk, an I/O error, permissions).
    #[error("I/O: {message}")]
    Io {
        /// The OS error's kind.
        kind: std::io::ErrorKind,
        /// The error, with the path where one applies.
        message: String,
    },
    /// The storage engine failed.
    #[error("storage engine: {0}")]
    Engine(String),
    /// Stored data does not decode: run `kvitto verify`.
    #[error("stored data is damaged at {at}: {what} (run `kvitto verify`)")]
    Corrupt {
        /// Where (a key, a file).
        at: String,
        /// What is wrong.
        what: String,
    },
    /// One stored value would exceed what the engine takes.
    #[error("{0}")]
    TooLarge(String),
    /// The key vault failed.
    #[error("{0}")]
    Vault(String),
    /// The system random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// Derived data (the index, for proofs) did not catch up in time; retry.
    #[error("{0}")]
    NotReady(String),
    /// A proof could not be built from the stored tree (its nodes are missing or damaged).
    #[error("proof: {0}")]
    Proof(String),
    /// An internal lock or thread failed (a thread panicked): a bug, reported as such.
    #[error("internal failure: {0}")]
    Internal(String),
}

impl StorageError {
    /// An I/O error at `path`.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> Self {
        StorageError::Io { kind: e.kind(), message: format!("{}: {e}", path.display()) }
    }

    /// A poisoned lock (a thread panicked while holding it).
    pub(crate) fn lock(what: &str) -> Self {
        StorageError::Internal(format!("the {what} lock is poisoned (a thread panicked while holding it)"))
    }
}

impl From<&kvitto_storage::StoreError> for StorageError {
    fn from(e: &kvitto_storage::StoreError) -> Self {
        use kvitto_storage::StoreError as S;
        if let Some(kind) = e.io_kind() {
            return StorageError::Io { kind, message: e.to_string() };
        }
        match e {
            S::Engine { what, .. } => StorageError::Engine(what.clone()),
            S::Io(e) => StorageError::Io { kind: e.kind(), message: e.to_string() },
            e @ (S::Fenced(_) | S::Poisoned) => StorageError::Engine(e.to_string()),
            S::Corrupt { at, what } => StorageError::Corrupt { at: at.clone(), what: what.clone() },
            e @ S::TooLarge { .. } => StorageError::TooLarge(e.to_string()),
            e @ S::Encode { .. } => StorageError::Internal(e.to_string()),
        }
    }
}

impl From<kvitto_storage::StoreError> for StorageError {
    fn from(e: kvitto_storage::StoreError) -> Self {
        StorageError::from(&e)
    }
}

impl From<kvitto_vault::VaultError> for StorageError {
    fn from(e: kvitto_vault::VaultError) -> Self {
        use kvitto_vault::VaultError as V;
        match e {
            V::Io { path, source } => StorageError::io(&path, &source),
            V::Corrupt { path, what } => StorageError::Corrupt { at: path.display().to_string(), what },
            V::Rng(e) => StorageError::Random(e),
            e => StorageError::Vault(e.to_string()),
        }
    }
}

/// "by seq N", or — for another controller's event, whose position is not revealed — "by an
/// event of another controller".
pub fn used_by(existing_seq: Option<u64>) -> String {
    match existing_seq {
        Some(seq) => format!("by seq {seq}"),
        None => "by an event of another controller".to_string(),
    }
}

/// Why an append (or batch) failed. Nothing of a refused request is written, with one
/// exception that says so: [`AppendError::OutcomeUnknown`].
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The batch was empty.
    #[error("empty batch: nothing to append")]
    Empty,
    /// The event_id was already used for an event with different content.
    #[error("event {index}: event_id {event_id} was already used {} with different content", used_by(*existing_seq))]
    IdConflict {
        /// Position of the offending draft in the batch.
        index: usize,
        /// The id.
        event_id: EventId,
        /// The event that holds it.
        /// (`None` when it is another controller's: its position is not revealed.)
        existing_seq: Option<u64>,
    },
    /// The same event_id appears twice in one batch with different content.
    #[error("event {index}: event_id {event_id} repeats event {first} of the same batch with different content")]
    DuplicateInBatch {
        /// Position of the later draft.
        index: usize,
        /// Position of the earlier draft.
        first: usize,
        /// The id.
        event_id: EventId,
    },
    /// A `data_erased` was refused: a legal hold on the subject is active, or an
    /// `erasure_deferred` for a register in its scope is in force. Nothing of the request is
    /// written.
    #[error("event {index}: erasure refused, nothing written: {why}")]
    ErasureBlocked {
        /// Position of the `data_erased` in the batch.
        index: usize,
        /// The hold or deferral, with its seq.
        why: String,
    },
    /// A rights-request step that does not follow from the subject's requests: extended,
    /// fulfilled or rejected without being received, or after it was closed, or extended
    /// twice. Nothing of the request is written.
    #[error("event {index}: {why}; nothing written")]
    InvalidStep {
        /// Position of the draft in the batch.
        index: usize,
        /// What is wrong, naming the request and the seqs.
        why: String,
    },
    /// Details for a subject follow that subject's `data_erased` in the same batch, under a
    /// key the erasure destroys. Send them in a later append. Nothing of the request is written.
    #[error(
        "event {index}: details for a subject after its erasure (event {erasure}) in the same batch; append them separately after the erasure"
    )]
    DetailsAfterErasure {
        /// Position of the draft with details.
        index: usize,
        /// Position of the `data_erased`.
        erasure: usize,
    },
    /// The events are recorded (durable), but destroying the keys of an erasure among them
    /// failed. The handle accepts no more appends; reopening the ledger finishes the erasure
    /// (from its pending record, `vault/erasures.pending`) before any read.
    #[error(
        "events recorded, but destroying the erased keys failed: {why}; reopen the ledger in a new process to finish the erasure"
    )]
    ErasureIncomplete {
        /// What failed.
        why: StorageError,
        /// The receipts of the recorded events.
        receipts: Vec<crate::Receipt>,
    },
    /// A group could not be prepared (an index read or the system RNG failed); nothing was
    /// written and the ledger stays usable.
    #[error("append refused, nothing written: {0}")]
    Refused(StorageError),
    /// Storage failed before any of the request reached the store (the key vault's write, or
    /// a commit sled refused before writing): none of its events is recorded. After a failed
    /// commit the handle accepts no more appends (later ones get [`AppendError::Poisoned`]);
    /// fix the cause and reopen the ledger in a new process.
    #[error(
        "storage failed: {0}; none of these events was recorded — fix the cause (e.g. free disk space); if later appends are refused, reopen the ledger in a new process"
    )]
    Storage(StorageError),
    /// Storage failed after the request's group was handed to sled (its write, flush or
    /// fdatasync failed, e.g. on a full disk). Whether the events are recorded is unknown
    /// until the ledger is reopened: the store then holds all of the group or none of it.
    /// To learn the outcome, reopen the ledger in a new process and append the same drafts
    /// again with these `event_ids` (in the request's order): idempotency returns the
    /// original receipts of events that were recorded and records those that were not, so
    /// nothing is recorded twice. The handle accepts no more appends.
    #[error(
        "storage failed while committing: {why}; whether these {n} events were recorded is unknown — reopen the ledger in a new process and append them again with the same event ids (idempotency answers with the original receipts if they were recorded)", n = event_ids.len()
    )]
    OutcomeUnknown {
        /// What failed.
        why: StorageError,
        /// The request's event ids, in its order (generated ids included).
        event_ids: Vec<EventId>,
    },
    /// An earlier storage failure poisoned this ledger handle.
    #[error("the ledger handle is unusable after an earlier storage failure ({0}); reopen the ledger in a new process")]
    Poisoned(StorageError),
    /// The ledger was closed.
    #[error("the ledger is closed")]
    Closed,
}

/// Why a read (history, log) failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The subject has no events.
    #[error("no events for this subject under controller {controller}")]
    UnknownSubject {
        /// The controller asked about.
        controller: String,
    },
    /// The subject's first event lies after the question's point of view.
    #[error(
        "no events for this subject under controller {controller} as of {at} (known at {known_at}): its first \
         occurred at {first} and was recorded at {first_recorded}"
    )]
    NoEventsYet {
        /// The controller asked about.
        controller: String,
        /// The occurred-time horizon asked about.
        at: Timestamp,
        /// The recorded-time horizon asked about.
        known_at: Timestamp,
        /// When the subject's first event occurred.
        first: Timestamp,
        /// When it was recorded.
        first_recorded: Timestamp,
    },
    /// The controller has no events.
    #[error("unknown controller {0}: it has declared nothing and has no events")]
    UnknownController(String),
    /// The purpose is neither declared nor named in the subject's events.
    #[error("unknown purpose {purpose}: controller {controller} never declared it")]
    UnknownPurpose {
        /// The controller.
        controller: String,
        /// The purpose.
        purpose: String,
    },
    /// A field of the query is invalid.
    #[error("{field}: {message}")]
    BadQuery {
        /// The argument.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Stored data is damaged; run `kvitto verify`.
    #[error("stored data is damaged at {at}: {what} (run `kvitto verify`)")]
    Corrupt {
        /// Where.
        at: String,
        /// What.
        what: String,
    },
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(StorageError),
    /// Recording an event of the ledger's own (a subject map commitment) failed.
    #[error("recording the ledger's own event failed: {0}")]
    Append(Box<AppendError>),
}

impl From<StorageError> for ReadError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt { at, what } => ReadError::Corrupt { at, what },
            other => ReadError::Storage(other),
        }
    }
}

impl From<kvitto_projections::QueryError> for ReadError {
    fn from(e: kvitto_projections::QueryError) -> Self {
        use kvitto_projections::QueryError as Q;
        match e {
            Q::UnknownController(c) => ReadError::UnknownController(c.to_string()),
            Q::UnknownSubject { controller } => ReadError::UnknownSubject { controller: controller.to_string() },
            Q::NoEventsYet { controller, at, known_at, first, first_recorded } => {
                ReadError::NoEventsYet { controller: controller.to_string(), at, known_at, first, first_recorded }
            }
            Q::UnknownPurpose { controller, purpose } => {
                ReadError::UnknownPurpose { controller: controller.to_string(), purpose: purpose.to_string() }
            }
        }
    }
}

impl From<kvitto_storage::StoreError> for ReadError {
    fn from(e: kvitto_storage::StoreError) -> Self {
        match e {
            kvitto_storage::StoreError::Corrupt { at, what } => ReadError::Corrupt { at, what },
            other => ReadError::Storage(other.into()),
        }
    }
}

/// `verify` could not run at all (a failed check is a [`crate::VerifyReport`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Storage failed while reading.
    #[error("storage: {0}")]
    Storage(StorageError),
    /// The checkpoint given to check against is not one of this ledger's.
    #[error("held checkpoint: {0}")]
    Held(String),
}

impl From<kvitto_storage::StoreError> for VerifyError {
    fn from(e: kvitto_storage::StoreError) -> Self {
        VerifyError::Storage(e.into())
    }
}
