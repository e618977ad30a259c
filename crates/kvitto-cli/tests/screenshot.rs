//! The Art 15 HTML page as a browser shows it: `report access --html` of the README tour's
//! customer KZ-1, rendered by headless Chromium into a PNG. With `KVITTO_WRITE_SCREENSHOT=1`
//! the PNG replaces `docs/img/access-report.png` (the picture in docs/REPORTS.md); otherwise it
//! goes to a temporary directory. Skips with a message when no Chromium is installed
//! (`scripts/test-deps`, run by `.ci/run`, installs Debian's).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
    })
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Renders `page` to `png` at 1100×1600 CSS pixels; gives up after two minutes.
fn screenshot(browser: &Path, page: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg("--force-device-scale-factor=1")
        .arg("--window-size=1100,1600")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success() && png.exists(), "chromium failed ({status}): {err}");
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
