//! Headless Chromium for the HTML tests: render a page to a PNG, or print its DOM. Installed
//! by `scripts/test-deps` (run by `.ci/run`); a test skips with a message when none is on PATH.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser on PATH, if any.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
    })
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Runs the browser headless on `page` with `args`; its stdout. Gives up after two minutes.
fn run(browser: &Path, page: &Path, profile: &Path, args: &[String]) -> String {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success(), "chromium failed ({status}): {err}");
            return reader.join().unwrap();
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Renders `page` to `png` at 1100×1600 CSS pixels.
pub fn screenshot(browser: &Path, page: &Path, png: &Path, profile: &Path) {
    let args = [
        "--force-device-scale-factor=1".to_string(),
        "--window-size=1100,1600".to_string(),
        format!("--screenshot={}", png.display()),
    ];
    run(browser, page, profile, &args);
    assert!(png.exists(), "chromium wrote no {}", png.display());
}

/// The DOM of `page` after the browser loaded it, serialized.
pub fn dump_dom(browser: &Path, page: &Path, profile: &Path) -> String {
    run(browser, page, profile, &["--dump-dom".to_string()])
}
