//! kvitto-store: the embedded sled backend of the storage traits (`kvitto-storage`) — the
//! chunked event log, the derived indexes and projection states in sled, the acknowledged
//! head in a file beside it.
//!
//! **Architecture invariant:** this is the only crate that touches sled. Nothing personal
//! enters sled in clear: subjects are pseudonyms, details are ciphertext whose key lives in
//! the key vault (`kvitto-vault`, files in `vault/`), and the external reference lives only
//! in that same vault.
#![deny(unsafe_code)]

mod backend;
mod blobs;
pub mod codec;
mod error;
pub mod log;
#[cfg(feature = "tamper")]
pub mod tamper;

pub use error::StoreError;
pub use log::{CommitError, CommitStats, IndexBatch, LedgerInfo, ProjectionBatch, Store};
