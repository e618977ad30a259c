//! kvitto-storage: what the facade asks of a store, independent of the engine behind it.
//!
//! Three traits — the [`EventLog`] (chain head, commit groups, records, checkpoints), the
//! [`DerivedIndex`] (subject heads, event ids, Merkle node pages, the subject map) and the
//! [`ProjectionStore`] (persisted projection states) — joined in [`Backend`], which adds the
//! handle's life cycle. Every backend uses the one key vault of `kvitto-vault`: keys never
//! enter an engine, because no engine deletes what it removes (ARCHITECTURE.md, "Storage").
//!
//! The traits are synchronous: the writer and the indexer are dedicated threads, reads run on
//! tokio's blocking pool, and an engine's async driver is driven inside its backend (see the
//! PostgreSQL backend). One `Send + Sync` handle per process, shared by all of them.
//!
//! Errors are [`StoreError`], [`OpenError`] and [`CommitError`]: no engine type in any public
//! signature. [`conformance::run`] (feature `conformance`) is the suite every backend passes.

mod backend;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
#[cfg(feature = "conformance")]
pub mod faulty;

pub use backend::{
    ACKED_LEN, Acked, Backend, CommitStats, DerivedIndex, EventLog, IndexBatch, IndexSnapshot, Items, LedgerInfo,
    MapEntryRec, ProjectionBatch, ProjectionStore,
};
pub use codec::{CHUNK_LIMIT, Head, Record, STORE_FORMAT, SubjectHeadRec};
pub use error::{CommitError, OpenError, StoreError, catch_engine_panic, damaged_store, open_read_err, panic_message};
