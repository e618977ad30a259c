//! Subject bundles: a real export verifies offline; every mutation fails with a specific
//! reason; a generic mutation of any field outside `info` fails.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto::Ledger;
use kvitto_core::{EventKind, Id, LegalBasis, decode_event, encode_event};
use kvitto_integration::*;
use kvitto_proof::bundle::{Trust, verify};
use serde_json::Value;

struct Fixture {
    _d: tempfile::TempDir,
    ledger: Ledger,
    bundle: Value,
    other: Value,
    key: String,
}

/// A ledger with two customers of Kalejdo, one with a rich history with details; both exported.
async fn fixture() -> Fixture {
    let (d, _p, ledger) = fresh_ledger().await;
    let s = kvitto::scenario::generate(40, 9);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for c in &s.customers {
        ledger.append_batch(c.events.clone()).await.unwrap();
    }
    let rich = s
        .customers
        .iter()
        .filter(|c| c.events.iter().any(|e| matches!(e.kind, EventKind::DataShared { .. })))
        // Details are disclosed only while not erased (erasure has its own tests).
        .filter(|c| !c.events.iter().any(|e| matches!(e.kind, EventKind::DataErased { .. })))
        .max_by_key(|c| c.events.len())
        .unwrap();
    let other =
        s.customers.iter().find(|c| c.controller == rich.controller && c.external_ref != rich.external_ref).unwrap();
    ledger.checkpoint().await.unwrap();
    let bundle = ledger.export_bundle(rich.controller.as_str(), &rich.external_ref, None, None).await.unwrap();
    let other = ledger.export_bundle(other.controller.as_str(), &other.external_ref, None, None).await.unwrap();
    let key = ledger.verifier_key().unwrap();
    Fixture { _d: d, ledger, bundle, other, key }
}

fn check(b: &Value, key: &str) -> Result<kvitto_proof::bundle::VerifiedBundle, String> {
    verify(&serde_json::to_string(b).unwrap(), Trust::Key(key)).map_err(|e| e.to_string())
}

fn expect_fail(f: &Fixture, what: &str, mutate: impl FnOnce(&mut Value), reason: &str) {
    let mut b = f.bundle.clone();
    mutate(&mut b);
    match check(&b, &f.key) {
        Ok(_) => panic!("{what}: the mutated bundle verified"),
        Err(e) => assert!(e.contains(reason), "{what}: reason {e:?} does not mention {reason:?}"),
    }
}

/// Re-encodes event `i` after `edit` — a consistent forgery of canonical bytes and view.
fn forge(b: &mut Value, i: usize, edit: impl FnOnce(&mut kvitto_core::Event)) {
    let item = &mut b["events"][i];
    let bytes = B64.decode(item["canonical"].as_str().unwrap()).unwrap();
    let mut e = decode_event(&bytes).unwrap();
    edit(&mut e);
    let bytes = encode_event(&e);
    item["canonical"] = Value::String(B64.encode(&bytes));
    let mut view = kvitto_core::json::event_to_json(&e);
    view.insert("hash".into(), Value::String(kvitto_core::event_hash(&bytes).to_hex()));
    item["event"] = Value::Object(view);
}

fn index_of(b: &Value, kind: &str) -> usize {
    b["events"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["event"]["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in bundle"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_bundle_verifies_offline() {
    let f = fixture().await;
    let v = check(&f.bundle, &f.key).unwrap();
    let n = f.bundle["events"].as_array().unwrap().len();
    assert_eq!(v.events.len(), n);
    assert!(n >= 5, "the fixture customer has {n} events");
    assert_eq!(v.size, f.ledger.len());
    assert!(v.events.iter().any(|e| e.details.is_some()), "details are disclosed");
    assert!(verify(&serde_json::to_string(&f.bundle).unwrap(), Trust::Embedded).is_ok());
    // Nothing about other subjects but proof hashes: every event is this subject's.
    assert!(v.events.iter().all(|e| e.event.subject.unwrap().subject == v.subject));
    // info is informational: changing it changes nothing.
    let mut b = f.bundle.clone();
    b["info"]["tool"] = Value::String("anything".into());
    assert!(check(&b, &f.key).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_fails_with_its_reason() {
    let f = fixture().await;
    let shared = index_of(&f.bundle, "data_shared");
    let collected = index_of(&f.bundle, "data_collected");
    let last = f.bundle["events"].as_array().unwrap().len() - 1;
    let with_details = f.bundle["events"].as_array().unwrap().iter().position(|e| !e["details"].is_null()).unwrap();
    let without_commitment = f.bundle["events"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["event"].get("payload_commitment").is_none())
        .unwrap();

    expect_fail(
        &f,
        "time forged",
        |b| forge(b, 1, |e| e.occurred_at = kvitto::Timestamp::from_micros(1).unwrap()),
        "inclusion proof",
    );
    expect_fail(
        &f,
        "purpose forged",
        |b| {
            forge(b, collected, |e| {
                if let EventKind::DataCollected { purpose, .. } = &mut e.kind {
                    *purpose = Id::new("telemarketing").unwrap()
                }
            })
        },
        "inclusion proof",
    );
    expect_fail(
        &f,
        "processor forged",
        |b| {
            forge(b, shared, |e| {
                if let EventKind::DataShared { processor, .. } = &mut e.kind {
                    *processor = Id::new("acme-data-broker").unwrap()
                }
            })
        },
        "inclusion proof",
    );
    expect_fail(
        &f,
        "category forged",
        |b| {
            forge(b, shared, |e| {
                if let EventKind::DataShared { categories, .. } = &mut e.kind {
                    *categories = kvitto_core::Categories::new(vec![Id::new("contact").unwrap()]).unwrap()
                }
            })
        },
        "inclusion proof",
    );
    expect_fail(
        &f,
        "legal basis forged",
        |b| {
            forge(b, collected, |e| {
                if let EventKind::DataCollected { legal_basis, .. } = &mut e.kind {
                    *legal_basis = LegalBasis::Consent
                }
            })
        },
        "inclusion proof",
    );
    expect_fail(
        &f,
        "event dropped",
        |b| {
            b["events"].as_array_mut().unwrap().remove(1);
        },
        "subject_seq 2 where 1 is due",
    );
    expect_fail(
        &f,
        "first event dropped",
        |b| {
            b["events"].as_array_mut().unwrap().remove(0);
        },
        "subject_seq 1 where 0 is due",
    );
    expect_fail(
        &f,
        "events reordered",
        |b| b["events"].as_array_mut().unwrap().swap(1, 2),
        "subject_seq 2 where 1 is due",
    );
    expect_fail(
        &f,
        "event duplicated",
        |b| {
            let e = b["events"][1].clone();
            b["events"].as_array_mut().unwrap().insert(2, e);
        },
        "subject_seq 1 where 2 is due",
    );
    expect_fail(
        &f,
        "another subject's event spliced in",
        |b| {
            let e = f.other["events"][0].clone();
            b["events"].as_array_mut().unwrap().push(e);
        },
        "belongs to subject",
    );
    expect_fail(
        &f,
        "leaf index changed",
        |b| {
            let v = b["events"][1]["leaf_index"].as_u64().unwrap();
            b["events"][1]["leaf_index"] = (v + 1).into();
        },
        "leaf_index",
    );
    expect_fail(
        &f,
        "proof hash changed",
        |b| {
            let h = b["events"][0]["proof"][0].as_str().unwrap().to_string();
            let flipped = format!("{}{}", if h.starts_with('0') { '1' } else { '0' }, h.get(1..).unwrap());
            b["events"][0]["proof"][0] = flipped.into();
        },
        "inclusion proof",
    );
    expect_fail(
        &f,
        "proof hash removed",
        |b| {
            b["events"][0]["proof"].as_array_mut().unwrap().pop();
        },
        "inclusion proof",
    );
    expect_fail(
        &f,
        "root changed",
        |b| {
            let n = b["checkpoint"].as_str().unwrap().to_string();
            let mut lines: Vec<&str> = n.split('\n').collect();
            let root = B64.encode([9u8; 32]);
            lines[2] = &root;
            b["checkpoint"] = lines.join("\n").into();
        },
        "does not verify",
    );
    expect_fail(
        &f,
        "size changed",
        |b| {
            let n = b["checkpoint"].as_str().unwrap().to_string();
            let size: u64 = n.split('\n').nth(1).unwrap().parse().unwrap();
            b["checkpoint"] = n.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1).into();
        },
        "does not verify",
    );
    expect_fail(
        &f,
        "signature changed",
        |b| {
            let n = b["checkpoint"].as_str().unwrap().to_string();
            let i = n.rfind(' ').unwrap() + 10;
            let c = if &n[i..i + 1] == "A" { "B" } else { "A" };
            b["checkpoint"] = format!("{}{c}{}", &n[..i], &n[i + 1..]).into();
        },
        "signature",
    );
    expect_fail(
        &f,
        "embedded key replaced",
        |b| {
            let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
            b["verifier_key"] = kvitto_proof::checkpoint::vkey("test.kvitto/ledger", &other.verifying_key()).into();
        },
        "differs from the key you trust",
    );
    expect_fail(
        &f,
        "only the readable view changed",
        |b| b["events"][collected]["event"]["purpose"] = "telemarketing".into(),
        "readable view differs",
    );
    expect_fail(
        &f,
        "disclosed details changed",
        |b| {
            let p = b["events"][with_details]["details"]["plaintext"].as_str().unwrap().replace("\"", "'");
            b["events"][with_details]["details"]["plaintext"] = p.into();
        },
        "do not match the event's commitment",
    );
    expect_fail(
        &f,
        "salt changed",
        |b| b["events"][with_details]["details"]["salt"] = hex::encode([1u8; 32]).into(),
        "do not match the event's commitment",
    );
    expect_fail(
        &f,
        "details invented",
        |b| {
            b["events"][without_commitment]["details"] =
                serde_json::json!({"salt": hex::encode([0u8; 32]), "plaintext": "{}"})
        },
        "commits to none",
    );
    expect_fail(
        &f,
        "subject id changed",
        |b| b["subject_id"] = "00112233445566778899aabbccddeeff".into(),
        "belongs to subject",
    );
    expect_fail(&f, "origin changed", |b| b["origin"] = "evil.example/ledger".into(), "origin");
    expect_fail(&f, "format changed", |b| b["format"] = "kvitto-bundle/3".into(), "format");
    expect_fail(&f, "unknown field", |b| b["events"][last]["note"] = "trust me".into(), "unknown field");
    // With a key nobody trusts, even the embedded-key mode rejects a re-keyed bundle.
    let mut b = f.bundle.clone();
    let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    b["verifier_key"] = kvitto_proof::checkpoint::vkey("test.kvitto/ledger", &other.verifying_key()).into();
    let e = verify(&serde_json::to_string(&b).unwrap(), Trust::Embedded).unwrap_err().to_string();
    assert!(e.contains("no signature by"), "{e}");
}

/// Changes the value at every leaf outside `info`; each must make verification fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_mutation_of_any_field_outside_info_fails() {
    let f = fixture().await;
    fn leaves(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, c)| {
                if !(path.is_empty() && k == "info") {
                    let mut p = path.clone();
                    p.push(k.clone());
                    leaves(c, p, out)
                }
            }),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
                let mut p = path.clone();
                p.push(i.to_string());
                leaves(c, p, out)
            }),
            _ => out.push(path),
        }
    }
    fn at<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
        path.iter().fold(v, |v, k| match v {
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            other => &mut other[k.as_str()],
        })
    }
    let mut paths = Vec::new();
    leaves(&f.bundle, Vec::new(), &mut paths);
    assert!(paths.len() > 100, "{} leaves", paths.len());
    for p in &paths {
        let mut b = f.bundle.clone();
        let v = at(&mut b, p);
        *v = match v.clone() {
            Value::String(s) => Value::String(if s.is_empty() {
                "x".into()
            } else {
                let mut c: Vec<char> = s.chars().collect();
                let last = c.len() - 1;
                c[last] = if c[last] == 'a' { 'b' } else { 'a' };
                c.into_iter().collect()
            }),
            Value::Number(n) => Value::from(n.as_u64().map_or(1, |x| x + 1)),
            Value::Bool(x) => Value::Bool(!x),
            Value::Null => Value::String("x".into()),
            other => other,
        };
        assert!(check(&b, &f.key).is_err(), "changing {} did not break verification", p.join("."));
    }
}

/// BUNDLE.md's parsing rules: duplicate keys refused at any depth, the ledger clock checked,
/// and every number a caller can put in details survives export and verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_parsing_and_numbers_in_details() {
    let f = fixture().await;
    let text = serde_json::to_string(&f.bundle).unwrap();
    // Last-key-wins would let a second `events` hide the first.
    let dup = text.replacen("\"events\":[", "\"events\":[],\"events\":[", 1);
    let e = verify(&dup, Trust::Key(&f.key)).unwrap_err().to_string();
    assert!(e.contains("duplicate field"), "{e}");
    let nested = text.replacen("\"leaf_index\":", "\"leaf_index\":0,\"leaf_index\":", 1);
    assert!(verify(&nested, Trust::Key(&f.key)).unwrap_err().to_string().contains("duplicate field"));
    expect_fail(
        &f,
        "ledger clock backwards",
        |b| forge(b, 2, |e| e.recorded_at = kvitto::Timestamp::from_micros(0).unwrap()),
        "ledger clock ran backwards",
    );

    let (_d, _p, ledger) = fresh_ledger().await;
    ledger
        .append(draft(
            r#"{"type":"data_collected","controller":"kalejdo","subject":"NUM-1","register":"kundregister","categories":["contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject","details":{"x":123456789012345680000,"y":1.50,"z":-0.0,"w":1e-7,"big":18446744073709551615}}"#,
        ))
        .await
        .unwrap();
    ledger.checkpoint().await.unwrap();
    let b = ledger.export_bundle("kalejdo", "NUM-1", None, None).await.unwrap();
    let v = verify(&serde_json::to_string_pretty(&b).unwrap(), Trust::Key(&ledger.verifier_key().unwrap())).unwrap();
    assert_eq!(v.events[0].details.as_ref().unwrap()["big"], 18446744073709551615u64);
    assert_eq!(
        b["events"][0]["details"]["plaintext"],
        r#"{"big":18446744073709551615,"w":1e-7,"x":1.2345678901234568e+20,"y":1.5,"z":-0.0}"#
    );
}
