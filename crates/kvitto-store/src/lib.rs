//! kvitto-store: where events live — sled for the log and derived indexes, plain files that
//! kvitto fsyncs itself for everything erasure must be able to destroy.
//!
//! **Architecture invariant:** this is the only crate that touches sled. Nothing personal
//! enters sled in clear: subjects are pseudonyms, details are ciphertext whose key lives in a
//! vault file (`vault/`), and the external reference lives only in that same file.
#![deny(unsafe_code)]

mod blobs;
pub mod codec;
mod error;
pub mod log;
#[cfg(feature = "tamper")]
pub mod tamper;
pub mod vault;

pub use codec::{CHUNK_LIMIT, Head, Record, STORE_FORMAT, SubjectHeadRec};
pub use error::{OpenError, StoreError};
pub use log::{CommitError, CommitStats, IndexBatch, LedgerInfo, ProjectionBatch, Store};
pub use vault::{PendingErasure, SubjectKeys, Vault, VaultError};
