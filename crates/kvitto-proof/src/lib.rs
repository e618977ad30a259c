//! kvitto-proof: verification that needs nothing but bytes.
//!
//! v1 holds the hash-chain verifier that `kvitto verify` runs over the stored log; the Merkle
//! tree, inclusion/consistency proofs and signed checkpoints come next (DESIGN.md).
//!
//! **Architecture invariant:** no I/O, no async, no trust in stored hashes, indexes or
//! projections — every hash is re-derived from canonical bytes. Must compile to wasm.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod chain;
pub mod checkpoint;
pub mod map;
pub mod merkle;
pub mod prooffile;

pub use chain::{ChainFault, ChainVerifier, SubjectTip};
pub use merkle::{Blake3, Hash, MemoryTree, NodeSource, ProofError, Sha256, TreeHash};

/// The ledger's tree hash (tree v2): RFC 6962 SHA-256, so C2SP witnesses, tile clients and
/// any RFC 6962 library check kvitto's checkpoints and proofs. Tree v1 was [`Blake3`].
pub type LogHash = Sha256;
