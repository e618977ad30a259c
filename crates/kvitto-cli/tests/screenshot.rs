//! The Art 15 HTML page as a browser shows it: `report access --html` of the README tour's
//! customer KZ-1, rendered by headless Chromium into a PNG. With `KVITTO_WRITE_SCREENSHOT=1`
//! the PNG replaces `docs/img/access-report.png` (the picture in docs/REPORTS.md); otherwise it
//! goes to a temporary directory. Skips with a message when no Chromium is installed
//! (`scripts/test-deps`, run by `.ci/run`, installs Debian's).
#![allow(clippy::unwrap_used)]

mod browser;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use browser::{chromium, png_size, screenshot};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kvitto(ledger: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .arg("--ledger")
        .arg(ledger)
        .args(args)
        .env_remove("KVITTO_LEDGER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_access_report_page_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (scripts/test-deps installs Debian's chromium)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let ledger = d.path().join("ledger");
    assert!(kvitto(&ledger, &["init", "--origin", "kazoom.example/ledger"]).status.success());
    for file in ["declarations.jsonl", "events.jsonl"] {
        let path = repo().join("examples/tour").join(file);
        let o = kvitto(&ledger, &["append", path.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let page = d.path().join("kz-1.html");
    let o = kvitto(
        &ledger,
        &[
            "report",
            "access",
            "--controller",
            "kazoom",
            "--subject",
            "KZ-1",
            "--at",
            "2026-12-01",
            "--html",
            page.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let blank = d.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();

    let png = if std::env::var_os("KVITTO_WRITE_SCREENSHOT").is_some() {
        repo().join("docs/img/access-report.png")
    } else {
        d.path().join("access-report.png")
    };
    let _ = std::fs::remove_file(&png);
    screenshot(&browser, &page, &png, &d.path().join("profile"));
    let blank_png = d.path().join("blank.png");
    screenshot(&browser, &blank, &blank_png, &d.path().join("profile-blank"));

    let shot = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&shot), (1100, 1600), "the window size asked for");
    let empty = std::fs::read(&blank_png).unwrap();
    // A rendered report compresses far worse than an empty white page.
    assert!(
        shot.len() > 10 * empty.len(),
        "the page rendered nothing: {} bytes vs {} for a blank page",
        shot.len(),
        empty.len()
    );
}
