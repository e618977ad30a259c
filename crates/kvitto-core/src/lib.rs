//! kvitto-core: the event model, its validation, its canonical byte encoding and its hash.
//!
//! Everything a verifier needs to re-derive an event hash lives here and in `kvitto-proof`.
//!
//! **Architecture invariant:** no I/O, no async, no storage. The hashed bytes are produced by
//! [`canonical`] exactly as `docs/FORMAT.md` specifies them; they never depend on serde,
//! bincode, chrono's string form or struct field order.
#![forbid(unsafe_code)]

pub mod canonical;
pub mod country;
pub mod draft;
pub mod erasure;
pub mod event;
pub mod field;
pub mod ids;
pub mod json;
pub mod period;
pub mod pseudonym;
pub mod text;
pub mod time;

pub use canonical::{decode_event, encode_event, event_hash};
pub use country::CountryCode;
pub use draft::{Details, Draft, DraftError};
pub use erasure::{Erasures, key_slot};
pub use event::{
    Categories, Event, EventKind, LegalBasis, Right, Role, Scope, Source, SubjectLink, TransferMechanism, Trigger,
};
pub use field::DecodeError;
pub use ids::{
    Commitment, EventHash, EventId, ExternalRef, Id, SubjectId, SubjectIdHasher, SubjectMap, Text, TextHash,
};
pub use period::IsoPeriod;
pub use pseudonym::{LedgerSecret, payload_commitment};
pub use time::Timestamp;
