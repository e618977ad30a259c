//! The shared record codec (`kvitto_storage::codec`) with the sled backend's error type.

pub use kvitto_storage::codec::{BytePair, CHUNK_LIMIT, Head, Record, SubjectHeadRec, compress};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// [`kvitto_storage::codec::encode`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(kvitto_storage::codec::encode(value)?)
}

/// [`kvitto_storage::codec::decode`].
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], at: impl Fn() -> String) -> Result<T, StoreError> {
    Ok(kvitto_storage::codec::decode(bytes, at)?)
}

/// [`kvitto_storage::codec::chunk_records`], each value compressed
/// ([`kvitto_storage::codec::compress`]): sled stores the log's values as they are.
pub fn chunk_records(first_seq: u64, records: &[Record]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let chunks = kvitto_storage::codec::chunk_records(first_seq, records)?;
    Ok(chunks.into_iter().map(|(first, value)| (first, kvitto_storage::codec::compress(value))).collect())
}

/// [`kvitto_storage::codec::decode_chunk`].
pub fn decode_chunk(bytes: &[u8], at: impl Fn() -> String) -> Result<Vec<Record>, StoreError> {
    Ok(kvitto_storage::codec::decode_chunk(bytes, at)?)
}

/// [`kvitto_storage::codec::decode_stored`].
pub fn decode_stored<T: for<'de> Deserialize<'de>>(bytes: &[u8], at: impl Fn() -> String) -> Result<T, StoreError> {
    Ok(kvitto_storage::codec::decode_stored(bytes, at)?)
}
