//! Shared helpers for kvitto's end-to-end tests (tamper, crash, concurrency).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use kvitto::{Draft, Ledger, OpenOptions};

pub mod peers;

/// A new ledger in a temporary directory.
pub async fn fresh_ledger() -> (tempfile::TempDir, PathBuf, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    Ledger::init(&path, "test.kvitto/ledger").unwrap();
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    (dir, path, ledger)
}

/// Reopens a ledger.
pub async fn reopen(path: &Path) -> Ledger {
    Ledger::open(path, OpenOptions::default()).await.unwrap()
}

/// A draft from JSON (panics on invalid JSON: test input is ours).
pub fn draft(json: &str) -> Draft {
    Draft::from_json_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// A consent event for `subject` under `controller`.
pub fn consent(controller: &str, subject: &str, purpose: &str) -> Draft {
    draft(&format!(
        r#"{{"type":"consent_given","controller":"{controller}","subject":"{subject}","purpose":"{purpose}","channel":"web"}}"#
    ))
}

/// A collection event with personal details.
pub fn collected_with_details(controller: &str, subject: &str, email: &str) -> Draft {
    draft(&format!(
        r#"{{"type":"data_collected","controller":"{controller}","subject":"{subject}","register":"kundregister","categories":["contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject","details":{{"email":"{email}","name":"Åsa Öberg"}}}}"#
    ))
}

/// Every byte of every file under `dir`, concatenated (to search for plaintext).
pub fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Copies every file under `from` to `to` (which is replaced).
pub fn copy_tree(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
