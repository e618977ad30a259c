//! Stored values (docs/FORMAT.md §4): a chunk of records, the head, a subject tip. Arbitrary
//! bytes decode or fail cleanly, and what decodes survives an encode/decode round trip.
//! (Not byte-identity: bincode accepts non-minimal varints — found by this target. Stored
//! bytes are never hashed; the preimage inside a record is, and its decoder is strict.)
#![no_main]

use kvitto_store::codec::{self, Head, Record, SubjectHeadRec};
use libfuzzer_sys::fuzz_target;

fn round_trips<T>(data: &[u8]) -> Option<T>
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let at = || "fuzz".to_string();
    let value = codec::decode::<T>(data, at).ok()?;
    let bytes = codec::encode(&value).expect("what decoded encodes");
    let again = codec::decode::<T>(&bytes, at).expect("own encoding decodes");
    assert_eq!(again, value);
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    if let Some(chunk) = round_trips::<Vec<Record>>(data) {
        for r in &chunk {
            // The preimage inside is untrusted too.
            let _ = kvitto_core::decode_event(&r.canonical);
        }
    }
    round_trips::<Head>(data);
    round_trips::<SubjectHeadRec>(data);
});
