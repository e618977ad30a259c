//! `kvitto audit` from the command line: on the demo ledger (its planted violations, as a
//! table, JSON and an HTML report whose summary the browser shows as the JSON says), and bad
//! input (exit 2, nothing written).
#![allow(clippy::unwrap_used)]

mod browser;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kvitto(ledger: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .arg("--ledger")
        .arg(ledger)
        .args(args)
        .env_remove("KVITTO_LEDGER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A demo ledger of 150 customers (plus the planted ones).
fn demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["demo", "--customers", "150", "--dir", dir.to_str().unwrap()])
        .env_remove("KVITTO_LEDGER")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("planted 14 violations"), "{out}");
    assert!(out.contains("14 findings") && out.contains("exactly the planted set, nothing else"), "{out}");
    assert!(out.contains(&format!("audit report: {}", dir.join("audit.html").display())), "{out}");
    (d, dir)
}

#[test]
fn audit_of_the_demo_as_table_json_and_html() {
    let (d, ledger) = demo();
    // Text: exit 1 (findings), the table and every planted check.
    let o = kvitto(&ledger, &["audit"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("integrity: ok"), "{out}");
    assert!(out.contains("findings (14)"), "{out}");
    for p in kvitto::scenario::planted() {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(p.check) && l.contains(p.customer.controller.as_str())),
            "{}: {out}",
            p.check
        );
        assert!(!out.contains(&p.customer.external_ref), "pseudonyms only without --reveal-subjects");
    }
    // JSON, with the customer references revealed on request.
    let o = kvitto(&ledger, &["audit", "--json", "--reveal-subjects"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["format"], "kvitto-audit/1");
    assert_eq!(j["integrity"]["ok"], true);
    let findings = j["findings"].as_array().unwrap();
    let mut by_ref: BTreeMap<String, String> = BTreeMap::new();
    for f in findings {
        by_ref.insert(f["subject_ref"].as_str().unwrap().to_string(), f["check"].as_str().unwrap().to_string());
        assert!(!f["seqs"].as_array().unwrap().is_empty());
        assert_eq!(f["reliable"], true);
    }
    let planted: BTreeMap<String, String> =
        kvitto::scenario::planted().into_iter().map(|p| (p.customer.external_ref, p.check.to_string())).collect();
    assert_eq!(by_ref, planted);
    // Each finding's first seq can be proven.
    let seq = findings[0]["seqs"][0].as_u64().unwrap().to_string();
    assert!(kvitto(&ledger, &["prove", "inclusion", "--seq", &seq]).status.success());
    // One controller; a clean ledger exits 0.
    let o = kvitto(&ledger, &["audit", "--controller", "select-telecom", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap()).collect::<Vec<_>>(),
        ["K04"]
    );
    let o = kvitto(&ledger, &["audit", "--controller", "kalejdo"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("no findings"));

    // HTML: self-contained, the summary in the DOM equal to the JSON.
    let page = d.path().join("audit.html");
    let o = kvitto(&ledger, &["audit", "--html", page.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("14 findings"), "{}", text(&o.stdout));
    let html = std::fs::read_to_string(&page).unwrap();
    for asset in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(asset), "the page must be self-contained: {asset}");
    }
    assert!(!html.contains("PLANT-K"), "pseudonyms only without --reveal-subjects");
    let o = kvitto(&ledger, &["audit", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let Some(chromium) = browser::chromium() else {
        eprintln!("SKIPPED the browser half: no chromium on PATH (scripts/test-deps installs Debian's chromium)");
        return;
    };
    let dom = browser::dump_dom(&chromium, &page, &d.path().join("profile"));
    let cells = summary_cells(&dom);
    let mut from_json: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in j["summary"].as_array().unwrap() {
        from_json.insert(
            (r["check"].as_str().unwrap().into(), r["controller"].as_str().unwrap_or("").into()),
            r["count"].as_u64().unwrap(),
        );
    }
    let nonzero: BTreeMap<(String, String), u64> = cells.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(nonzero, from_json, "summary cells in the DOM");
    assert!(dom.contains(&format!("id=\"total\" data-count=\"{}\"", j["findings"].as_array().unwrap().len())));
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit-report.png");
    browser::screenshot(&chromium, &page, &png, &d.path().join("profile-shot"));
    assert_eq!(browser::png_size(&std::fs::read(&png).unwrap()), (1100, 1600));
}

/// `(check, controller) → count` of every summary cell in the DOM.
fn summary_cells(dom: &str) -> BTreeMap<(String, String), u64> {
    let attr = |s: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let start = s.find(&key).unwrap() + key.len();
        s[start..start + s[start..].find('"').unwrap()].to_string()
    };
    dom.split("<td ")
        .skip(1)
        .filter(|cell| cell.starts_with("data-check="))
        .map(|cell| {
            let tag = &cell[..cell.find('>').unwrap()];
            ((attr(tag, "data-check"), attr(tag, "data-controller")), attr(tag, "data-count").parse().unwrap())
        })
        .collect()
}

#[test]
fn audit_refuses_bad_input_with_exit_2_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let ledger = d.path().join("ledger");
    assert!(kvitto(&ledger, &["init", "--origin", "kazoom.example/ledger"]).status.success());
    let o = kvitto(&ledger, &["audit", "--controller", "nobody"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nobody"), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["audit", "--now", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--now"), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["audit", "--late-after-hours", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let missing = d.path().join("no-such-dir/audit.html");
    let o = kvitto(&ledger, &["audit", "--html", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("does not exist"), "{}", text(&o.stderr));
    assert!(!missing.exists());
    let existing = d.path().join("kept.html");
    std::fs::write(&existing, "mine").unwrap();
    let o = kvitto(&ledger, &["audit", "--html", existing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine");
    // An empty ledger audits clean.
    let o = kvitto(&ledger, &["audit"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("no findings"));
}
