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

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every byte of every file under `dir`, concatenated (to search for plaintext).
pub fn all_bytes_under(dir: &Path) -> Vec<u8> {
    files_under(dir).iter().flat_map(|p| std::fs::read(p).unwrap()).collect()
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

/// A controller whose `product-news` is on consent: KZ-1 consented, KZ-2 consented and
/// withdrew. Returns (dir, path, pseudonyms of KZ-1 and KZ-2, seq of KZ-1's consent).
pub async fn consent_and_withdrawal() -> (tempfile::TempDir, std::path::PathBuf, [kvitto::SubjectId; 2], u64) {
    let (d, path, ledger) = fresh_ledger().await;
    ledger.append(draft(r#"{"type":"purpose_declared","controller":"kazoom","purpose":"product-news","description":"Nyheder","legal_basis":"consent","register":"kunderegister"}"#)).await.unwrap();
    let given = ledger.append(consent("kazoom", "KZ-1", "product-news")).await.unwrap();
    ledger.append(consent("kazoom", "KZ-2", "product-news")).await.unwrap();
    ledger
        .append(draft(
            r#"{"type":"consent_withdrawn","controller":"kazoom","subject":"KZ-2","purpose":"product-news"}"#,
        ))
        .await
        .unwrap();
    let id = |r: &str| ledger.subject_id(&kvitto::Id::new("kazoom").unwrap(), &kvitto::ExternalRef::new(r).unwrap());
    let subjects = [id("KZ-1"), id("KZ-2")];
    let denied = ledger.may_process("kazoom", "KZ-2", "product-news", kvitto::AsOf::now()).unwrap();
    assert!(!denied.allowed, "{denied:?}");
    ledger.close().await.expect("ledger closes cleanly");
    (d, path, subjects, given.seq)
}

/// The key vault of the ledger at `ledger_dir`, opened directly (the ledger closed), under the
/// ledger's own secret (`secret.key`: `KVS1` ‖ 32 bytes).
pub fn open_vault(ledger_dir: &Path) -> kvitto_vault::Vault {
    let bytes = std::fs::read(ledger_dir.join("secret.key")).expect("secret.key is readable");
    let secret: [u8; 32] = bytes[4..].try_into().expect("secret.key holds 32 bytes after its magic");
    kvitto_vault::Vault::open(
        ledger_dir.join("vault"),
        &kvitto_core::LedgerSecret(secret),
        kvitto_vault::OlderSegments::Refuse,
    )
    .expect("the vault opens")
}
