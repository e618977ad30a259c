//! JSON event drafts (EVENTS.md): any input either parses into a draft whose JSON form parses
//! back to the same draft, or is refused with an error — never a panic.
#![no_main]

use kvitto_core::Draft;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for line in text.lines() {
        if let Ok(draft) = Draft::from_json_str(line) {
            let again = Draft::from_json_object(&draft.to_json()).expect("a draft's own JSON parses");
            assert_eq!(again, draft, "JSON round trip changed the draft");
        }
    }
});
