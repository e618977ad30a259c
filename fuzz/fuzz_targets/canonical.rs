//! Canonical event preimages (docs/FORMAT.md §2): decoding is strict, so whatever decodes must
//! re-encode to exactly the input bytes (one event, one encoding, one hash).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = kvitto_core::decode_event(data) {
        assert_eq!(kvitto_core::encode_event(&event), data, "decode → encode is not the identity");
        let json = kvitto_core::json::event_to_json(&event);
        let back = kvitto_core::json::event_from_json(&json).expect("an event's own JSON parses");
        assert_eq!(back, event, "JSON form round trip changed the event");
    }
});
