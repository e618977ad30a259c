//! Regulator bundles (docs/BUNDLE.md), verified offline with the embedded key so that the
//! fuzzer reaches the proof and event checks: any document verifies or is refused with an
//! error — never a panic, never an unbounded allocation.
#![no_main]

use kvitto_proof::bundle::{Trust, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = verify(text, Trust::Embedded) {
        // A verified bundle's events are its subject's, in order from 0.
        for (i, e) in v.events.iter().enumerate() {
            let link = e.event.subject.expect("bundle events have a subject");
            assert_eq!(link.subject, v.subject);
            assert_eq!(link.subject_seq, i as u64);
        }
    }
});
