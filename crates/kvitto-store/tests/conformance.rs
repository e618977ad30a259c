//! The sled backend passes the storage conformance suite.
#![allow(clippy::unwrap_used)]

use kvitto_storage::conformance::{Target, run};
use kvitto_store::Store;

#[test]
fn sled_passes_the_conformance_suite() {
    let keep = std::sync::Mutex::new(Vec::new());
    run(&|| {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("ledger");
        Store::create(&dir, "conformance.example/log", 1).unwrap();
        keep.lock().unwrap().push(t);
        let (d1, d2, d3) = (dir.clone(), dir.clone(), dir.clone());
        Target {
            open: Box::new(move || {
                assert!(kvitto_store::log::wait_released(&d1, std::time::Duration::from_secs(5)));
                Box::new(Store::open(&d1).unwrap().0)
            }),
            tamper: Box::new(move |seq, edit| {
                assert!(kvitto_store::log::wait_released(&d2, std::time::Duration::from_secs(5)));
                let (store, _, _) = Store::open(&d2).unwrap();
                kvitto_store::tamper::edit_record(&store, seq, |r| edit(r)).unwrap();
            }),
            engine_holds: Box::new(move |needle| files_hold(&d3.join("store"), needle)),
            dir,
        }
    });
}

/// Whether `needle` occurs in a file under `dir`. Chunks are LZ4-compressed, which copies a
/// byte string's first occurrence in a chunk as a literal unless it repeats earlier bytes: the
/// random keys searched for here would show.
fn files_hold(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            return files_hold(&path, needle);
        }
        std::fs::read(&path).unwrap_or_default().windows(needle.len()).any(|w| w == needle)
    })
}
