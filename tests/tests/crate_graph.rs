//! The crate graph is a test (DESIGN.md, "Crates"): kvitto-store alone touches sled; proof
//! depends on core only and does no I/O (it must build for a browser); projections and store
//! know nothing of each other; the storage traits and the key vault know no engine; the CLI
//! and the HTTP server go through the facade, never a store; the web page's verifier is the
//! proof crate.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

/// Normal (non-dev, non-build) dependencies of each workspace package, from `cargo metadata`.
fn graph() -> BTreeMap<String, Vec<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn forbid(g: &BTreeMap<String, Vec<String>>, from: &str, to: &[&str]) {
    let deps = g.get(from).unwrap_or_else(|| panic!("no package {from}"));
    for t in to {
        assert!(!deps.iter().any(|d| d == t), "{from} must not depend on {t} (DESIGN.md): {deps:?}");
    }
}

#[test]
fn forbidden_edges_are_absent() {
    let g = graph();
    forbid(&g, "kvitto-core", &["kvitto-store", "kvitto-proof", "kvitto-projections", "kvitto", "sled", "tokio"]);
    forbid(&g, "kvitto-projections", &["kvitto-store", "kvitto", "sled", "tokio"]);
    forbid(&g, "kvitto-store", &["kvitto-projections", "kvitto-proof", "kvitto"]);
    forbid(&g, "kvitto-cli", &["kvitto-store", "kvitto-storage", "kvitto-vault", "sled"]);
    // The HTTP server goes through the facade like the CLI; the web page's verifier is the
    // proof crate and nothing that could reach a store, a file or the network.
    forbid(&g, "kvitto-server", &["kvitto-store", "kvitto-storage", "kvitto-vault", "kvitto-postgres", "sled"]);
    forbid(
        &g,
        "kvitto-web",
        &["kvitto", "kvitto-store", "kvitto-storage", "kvitto-vault", "kvitto-postgres", "sled", "tokio", "ureq"],
    );
    // The storage traits and the vault know no engine and nothing above them; backends know
    // each other not at all.
    forbid(
        &g,
        "kvitto-vault",
        &["kvitto-storage", "kvitto-store", "kvitto-proof", "kvitto-projections", "kvitto", "sled", "tokio"],
    );
    forbid(&g, "kvitto-storage", &["kvitto-store", "kvitto-proof", "kvitto-projections", "kvitto", "sled", "tokio"]);
    let store_kvitto: Vec<&String> = g["kvitto-store"].iter().filter(|d| d.starts_with("kvitto")).collect();
    assert_eq!(store_kvitto, ["kvitto-core", "kvitto-storage", "kvitto-vault"], "the sled backend sits on the traits");
    // proof: kvitto-core is its only kvitto dependency, and nothing that does I/O.
    let proof = &g["kvitto-proof"];
    let kvitto_deps: Vec<&String> = proof.iter().filter(|d| d.starts_with("kvitto")).collect();
    assert_eq!(kvitto_deps, ["kvitto-core"], "kvitto-proof depends on core only");
    forbid(&g, "kvitto-proof", &["sled", "tokio", "ureq", "getrandom", "rusqlite", "fs2", "tracing"]);
    // sled: the store only (benchmarks compare against raw sled; they are not the product).
    for (p, deps) in &g {
        if p != "kvitto-store" && p != "kvitto-bench" {
            assert!(!deps.iter().any(|d| d == "sled"), "{p} depends on sled");
        }
    }
}

/// kvitto-proof's sources use no file system, network, process, thread or async runtime.
#[test]
fn kvitto_proof_does_no_io() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/kvitto-proof/src");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        seen += 1;
        for banned in ["std::fs", "std::net", "std::process", "std::thread", "std::env", "tokio", "File::"] {
            assert!(!text.contains(banned), "{} uses {banned}: kvitto-proof must build without I/O", path.display());
        }
    }
    assert!(seen >= 6, "read {seen} source files");
}

/// The one workaround that leaks a sled handle (`mem::forget`, for sled's flush that hangs
/// after an I/O error) lives in one place: the store's `Drop`.
#[test]
fn sled_handles_are_leaked_in_one_place() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut found = Vec::new();
    for path in kvitto_integration::files_under(&root) {
        if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.contains("mem::forget(") && !line.trim_start().starts_with("//") {
                    found.push(format!("{}:{}", path.strip_prefix(&root).unwrap().display(), i + 1));
                }
            }
        }
    }
    assert_eq!(found.len(), 1, "mem::forget in {found:?}");
    assert!(found[0].starts_with("kvitto-store/src/log.rs:"), "{found:?}");
}
