//! Stored values (docs/FORMAT.md §4): a chunk of records, the head, a subject tip. Arbitrary
//! bytes decode or fail cleanly; what decodes re-encodes to the same bytes (strict decoding).
#![no_main]

use kvitto_store::codec::{self, Head, Record, SubjectHeadRec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = || "fuzz".to_string();
    if let Ok(chunk) = codec::decode::<Vec<Record>>(data, at) {
        assert_eq!(codec::encode(&chunk), data, "chunk");
        for r in &chunk {
            // The preimage inside is untrusted too.
            let _ = kvitto_core::decode_event(&r.canonical);
        }
    }
    if let Ok(head) = codec::decode::<Head>(data, at) {
        assert_eq!(codec::encode(&head), data, "head");
    }
    if let Ok(tip) = codec::decode::<SubjectHeadRec>(data, at) {
        assert_eq!(codec::encode(&tip), data, "subject tip");
    }
});
