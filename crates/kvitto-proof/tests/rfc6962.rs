//! Every RFC 6962 vector in `../shared/testdata/rfc6962` (or `$KVITTO_RFC6962_DIR`) through
//! the SHA-256 verifiers: the result must match `wantErr`. Fails if no vector ran.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use base64::Engine;
use kvitto_proof::Sha256;
use kvitto_proof::merkle::{verify_consistency, verify_inclusion};
use serde_json::Value;

fn dir() -> PathBuf {
    std::env::var_os("KVITTO_RFC6962_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/rfc6962"))
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap()
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    v.as_array().map(|a| a.iter().map(b64).collect()).unwrap_or_default()
}

fn files(kind: &str) -> Vec<(String, Value)> {
    let d = dir().join(kind);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e} (set KVITTO_RFC6962_DIR)", d.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn rfc6962_vectors() {
    let mut failures = Vec::new();
    let inclusion = files("inclusion");
    for (name, v) in &inclusion {
        let r = verify_inclusion::<Sha256>(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &b64(&v["leafHash"]),
            &proof(&v["proof"]),
            &b64(&v["root"]),
        );
        if r.is_err() != v["wantErr"].as_bool().unwrap() {
            failures.push(format!("inclusion/{name}: got {r:?}, wantErr {}", v["wantErr"]));
        }
    }
    let consistency = files("consistency");
    for (name, v) in &consistency {
        let r = verify_consistency::<Sha256>(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &proof(&v["proof"]),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
        );
        if r.is_err() != v["wantErr"].as_bool().unwrap() {
            failures.push(format!("consistency/{name}: got {r:?}, wantErr {}", v["wantErr"]));
        }
    }
    assert!(failures.is_empty(), "{} vectors disagree:\n{}", failures.len(), failures.join("\n"));
    assert!(!inclusion.is_empty() && !consistency.is_empty(), "no vectors ran from {}", dir().display());
    println!("rfc6962 vectors: {} inclusion, {} consistency passed", inclusion.len(), consistency.len());
}
