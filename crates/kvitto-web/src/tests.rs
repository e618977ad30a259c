#![allow(clippy::unwrap_used)]

use kvitto::{Draft, Ledger, OpenOptions};
use kvitto_proof::bundle::{Options, Trust, verify_with};
use kvitto_proof::checkpoint::WitnessKey;
use serde_json::Value;

use super::*;

const DECLARATIONS: &[&str] = &[
    r#"{"type":"purpose_declared","controller":"kazoom","purpose":"contract-delivery","description":"Levering af de aftalte ydelser","legal_basis":"contract","register":"kunderegister","occurred_at":"2026-01-05T09:00:02Z","actor":"dpo"}"#,
    r#"{"type":"purpose_declared","controller":"kazoom","purpose":"product-news","description":"Nyheder","legal_basis":"consent","register":"kunderegister","occurred_at":"2026-01-05T09:00:04Z","actor":"dpo"}"#,
    r#"{"type":"processor_registered","controller":"kazoom","processor":"network-owner","name":"Netværksejer","country":"ZZ","role":"recipient","occurred_at":"2026-01-05T09:00:08Z","actor":"dpo"}"#,
    r#"{"type":"processor_registered","controller":"kazoom","processor":"logistics-partner","name":"Logistikpartner","country":"ZZ","role":"processor","occurred_at":"2026-01-05T09:00:09Z","actor":"dpo"}"#,
];

const EVENTS: &[&str] = &[
    r#"{"type":"data_collected","controller":"kazoom","subject":"KZ-1","register":"kunderegister","categories":["name","address"],"purpose":"contract-delivery","legal_basis":"contract","source":"subject","occurred_at":"2026-01-12T10:15:00Z","actor":"webshop","details":{"name":"Kim Eksempel","address":"Eksempelvej 1"}}"#,
    r#"{"type":"data_shared","controller":"kazoom","subject":"KZ-1","processor":"network-owner","categories":["name","address"],"purpose":"contract-delivery","occurred_at":"2026-01-13T08:00:00Z","actor":"provisioning"}"#,
    r#"{"type":"data_shared","controller":"kazoom","subject":"KZ-1","processor":"logistics-partner","categories":["address"],"purpose":"contract-delivery","occurred_at":"2026-01-14T08:00:00Z","actor":"provisioning"}"#,
    r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-1","purpose":"product-news","notice_version":"kazoom-2022-01-08","channel":"web","occurred_at":"2026-02-01T19:30:00Z","actor":"web"}"#,
    r#"{"type":"rights_request_received","controller":"kazoom","subject":"KZ-1","request_id":"r-101","right":"rectification","occurred_at":"2026-03-20T09:00:00Z","actor":"dpo"}"#,
    r#"{"type":"data_rectified","controller":"kazoom","subject":"KZ-1","register":"kunderegister","categories":["address"],"occurred_at":"2026-03-23T11:00:00Z","actor":"crm","details":{"address":"Prøvegade 2"}}"#,
    r#"{"type":"rights_request_fulfilled","controller":"kazoom","subject":"KZ-1","request_id":"r-101","occurred_at":"2026-03-23T11:05:00Z","actor":"dpo"}"#,
    r#"{"type":"consent_withdrawn","controller":"kazoom","subject":"KZ-1","purpose":"product-news","channel":"email","occurred_at":"2026-05-04T07:45:00Z","actor":"crm"}"#,
];

struct Fixture {
    _dir: tempfile::TempDir,
    bundle: String,
    /// Held before the erasure: the bundle's checkpoint extends it.
    held: String,
    /// The same subject's bundle at the held (older) checkpoint.
    old_bundle: String,
    /// The newest checkpoint: the old bundle does not extend it (a rollback).
    latest: String,
    key: String,
}

/// A ledger of one customer of Kazoom with a collection, two shares, consent given and
/// withdrawn, a rectification request answered, and the customer register erased; the
/// customer's bundle exported `--since` a checkpoint taken before the erasure.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    Ledger::init(&path, "kazoom.example/ledger").unwrap();
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    let drafts = |lines: &[&str]| lines.iter().map(|l| Draft::from_json_str(l).unwrap()).collect::<Vec<_>>();
    ledger.append_batch(drafts(DECLARATIONS)).await.unwrap();
    ledger.append_batch(drafts(EVENTS)).await.unwrap();
    let held = ledger.checkpoint().await.unwrap();
    ledger.erase("kazoom", "KZ-1", Some("kunderegister"), "Art 17 request").await.unwrap();
    let latest = ledger.checkpoint().await.unwrap();
    let bundle = ledger.export_bundle("kazoom", "KZ-1", None, Some(&held)).await.unwrap();
    let old_bundle = ledger.export_bundle("kazoom", "KZ-1", Some(13), None).await.unwrap();
    let key = ledger.verifier_key().unwrap();
    let text = |v: &Value| serde_json::to_string_pretty(v).unwrap();
    Fixture { _dir: dir, bundle: text(&bundle), held, old_bundle: text(&old_bundle), latest, key }
}

fn input<'a>(bundle: &'a str, key: &'a str) -> Input<'a> {
    Input { bundle, key: Some(key), ..Input::default() }
}

/// What `kvitto verify-bundle --json` prints as `error` for this input.
fn cli_error(bundle: &str, key: &str, since: Option<&str>) -> String {
    let opts = Options { trust: Trust::Key(key.trim()), since, witnesses: &[], quorum: 0 };
    verify_with(bundle, &opts).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("the bundle verified"))
}

fn edit(bundle: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(bundle).unwrap();
    f(&mut v);
    serde_json::to_string(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_bundle_verifies_and_replays() {
    let f = fixture().await;
    let mut i = input(&f.bundle, &f.key);
    i.since = Some(&f.held);
    let r = check(&i);
    assert_eq!(r["ok"], true, "{r}");
    let subject = r["subject_id"].as_str().unwrap();
    assert_eq!(r["origin"], "kazoom.example/ledger");
    // 4 declarations, 8 events (seq 4–11), a map commitment (12), the erasure (13), a map
    // commitment (14): the second checkpoint has size 15 and the map is complete up to 14.
    assert_eq!(r["checkpoint_size"], 15);
    assert_eq!(r["complete_up_to"], 14);
    assert_eq!(r["extends_held_checkpoint"], 13);
    assert_eq!(
        r["message"],
        format!(
            "ok: 9 events of subject {subject} proven against checkpoint size 15, complete up to 14, extends the held \
             checkpoint of size 13"
        )
    );
    assert_eq!(r["header"], format!("bundle of kazoom.example/ledger (checkpoint size 15), subject {subject}:"));
    assert_eq!(r["notes"], serde_json::json!([]));
    assert_eq!(r["warnings"], serde_json::json!([]));

    let timeline = r["timeline"].as_array().unwrap();
    let kinds: Vec<(u64, &str)> =
        timeline.iter().map(|e| (e["seq"].as_u64().unwrap(), e["kind"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        [
            (4, "data_collected"),
            (5, "data_shared"),
            (6, "data_shared"),
            (7, "consent_given"),
            (8, "rights_request_received"),
            (9, "data_rectified"),
            (10, "rights_request_fulfilled"),
            (11, "consent_withdrawn"),
            (13, "data_erased"),
        ]
    );
    // Both register details were erased by seq 13; the erasure's own reason is a field.
    assert_eq!(timeline[0]["details"], "erased");
    assert_eq!(timeline[0]["erased_by"], 13);
    assert_eq!(timeline[0]["details_note"], " [details erased by seq 13]");
    assert_eq!(timeline[5]["details"], "erased");
    assert_eq!(timeline[1]["details"], "none");
    assert_eq!(timeline[1]["details_note"], "");
    assert_eq!(
        timeline[1]["summary"],
        r#"categories=["name","address"] processor=network-owner purpose=contract-delivery"#
    );
    assert_eq!(timeline[3]["occurred_at"], "2026-02-01T19:30:00Z");

    let consent = r["consent"].as_array().unwrap();
    assert_eq!(consent.len(), 1);
    assert_eq!(consent[0]["purpose"], "product-news");
    assert_eq!(consent[0]["state"], "withdrawn");
    assert_eq!(consent[0]["since"], "2026-05-04T07:45:00Z");
    let history = consent[0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["state"], "granted");
    assert_eq!(history[0]["from"], "2026-02-01T19:30:00Z");
    assert_eq!(history[0]["to"], "2026-05-04T07:45:00Z");
    assert_eq!(history[0]["notice_version"], "kazoom-2022-01-08");
    assert_eq!(history[1]["seq"], 11);
    assert_eq!(history[1]["to"], Value::Null);

    let recipients = r["recipients"].as_array().unwrap();
    let names: Vec<&str> = recipients.iter().map(|p| p["processor"].as_str().unwrap()).collect();
    assert_eq!(names, ["logistics-partner", "network-owner"]);
    assert_eq!(recipients[1]["categories"], serde_json::json!(["name", "address"]));
    assert_eq!(recipients[1]["shares"][0]["seq"], 5);

    let erasures = r["erasures"].as_array().unwrap();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["seq"], 13);
    assert_eq!(erasures[0]["scope"], "register kunderegister");
    assert_eq!(erasures[0]["reason"], "Art 17 request");
    assert_eq!(erasures[0]["erased_details"], serde_json::json!([4, 9]));

    assert_eq!(r["collections"][0]["register"], "kunderegister");
    assert_eq!(r["rectifications"][0]["seq"], 9);
    let requests = r["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["request_id"], "r-101");
    assert_eq!(requests[0]["right"], "rectification");
    assert_eq!(requests[0]["status"], "fulfilled");
    assert_eq!(requests[0]["steps"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_bundle_fails_with_the_verifiers_own_reason() {
    let f = fixture().await;
    let other_key = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        Ledger::init(&path, "kazoom.example/ledger").unwrap();
        let l = Ledger::open(&path, OpenOptions::default()).await.unwrap();
        l.verifier_key().unwrap()
    };
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "a field of the readable view",
            edit(&f.bundle, |b| b["events"][1]["event"]["processor"] = "acme".into()),
            &f.key,
            None,
        ),
        (
            "an event removed",
            edit(&f.bundle, |b| {
                b["events"].as_array_mut().unwrap().remove(2);
            }),
            &f.key,
            None,
        ),
        (
            "a proof hash flipped",
            edit(&f.bundle, |b| {
                let h = b["events"][0]["proof"][0].as_str().unwrap();
                let flipped = format!("{}{}", if h.starts_with('0') { "1" } else { "0" }, &h[1..]);
                b["events"][0]["proof"][0] = flipped.into();
            }),
            &f.key,
            None,
        ),
        (
            "the last event removed",
            edit(&f.bundle, |b| {
                b["events"].as_array_mut().unwrap().pop();
            }),
            &f.key,
            None,
        ),
        ("another key", f.bundle.clone(), &other_key, None),
        ("not JSON", "{".to_string(), &f.key, None),
        ("a held checkpoint that does not verify", f.bundle.clone(), &f.key, Some("kazoom.example/ledger\n99\nAAAA\n")),
        ("a held checkpoint the bundle does not extend", f.old_bundle.clone(), &f.key, Some(&f.latest)),
    ];
    for (what, bundle, key, since) in cases {
        let expected = cli_error(&bundle, key, since);
        let mut i = input(&bundle, key);
        i.since = since;
        let r = check(&i);
        assert_eq!(r["ok"], false, "{what}: {r}");
        assert_eq!(r["error"], expected.as_str(), "{what}");
        assert_eq!(r["message"], format!("bundle verification failed: {expected}"), "{what}");
        assert!(r.get("input_error").is_none(), "{what}");
    }
    // Specific reasons, so the cases above test what they say.
    let r = check(&Input { since: Some(&f.latest), ..input(&f.old_bundle, &f.key) });
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("rollback: the bundle's checkpoint (size 13) is older than the one you hold (size 15)"),
        "{}",
        r["error"]
    );
    let r = check(&input(&f.bundle, &other_key));
    assert_eq!(r["error"], "$.verifier_key: differs from the key you trust");
    let removed = edit(&f.bundle, |b| {
        b["events"].as_array_mut().unwrap().remove(2);
    });
    let r = check(&input(&removed, &f.key));
    assert!(
        r["error"].as_str().unwrap().starts_with("event 2 (seq 7): subject_seq 3 where 2 is due"),
        "{}",
        r["error"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_handled_as_the_cli_handles_them() {
    let f = fixture().await;
    // Surrounding whitespace of the key is ignored (a key file's newline).
    let key = format!("  {}\n", f.key);
    assert_eq!(check(&input(&f.bundle, &key))["ok"], true);
    // No key: refused as input.
    let r = check(&Input { bundle: &f.bundle, ..Input::default() });
    assert_eq!(r["ok"], false);
    assert_eq!(r["input_error"], true);
    assert!(r["error"].as_str().unwrap().starts_with("no verifier key: pass --key VKEY"));
    // The embedded key: verifies, with the CLI's warning.
    let r = check(&Input { bundle: &f.bundle, trust_embedded: true, ..Input::default() });
    assert_eq!(r["ok"], true);
    assert_eq!(r["warnings"], serde_json::json!([EMBEDDED_KEY_WARNING]));
    // A quorum beyond the witness keys is an input error; so is a key that does not parse.
    let r = check(&Input { quorum: Some(1), ..input(&f.bundle, &f.key) });
    assert_eq!(r["error"], "--quorum 1 needs at least 1 --witness-key");
    let r = check(&Input { witness_keys: vec!["nonsense"], ..input(&f.bundle, &f.key) });
    assert_eq!(r["input_error"], true);
    assert!(r["error"].as_str().unwrap().starts_with("--witness-key \"nonsense\": "), "{}", r["error"]);
    // A trusted witness, quorum defaulting to 1: without its cosignature the witnesses'
    // reason; with it (a line added to the checkpoint note) the bundle verifies, cosigned.
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let witness = WitnessKey { name: "witness.example/w1".into(), key: signer.verifying_key() };
    let vkey = witness.vkey();
    let r = check(&Input { witness_keys: vec![&vkey], ..input(&f.bundle, &f.key) });
    let ws = [witness];
    let expected =
        verify_with(&f.bundle, &Options { trust: Trust::Key(&f.key), since: None, witnesses: &ws, quorum: 1 })
            .err()
            .unwrap()
            .to_string();
    assert_eq!(r["error"], expected);
    assert_eq!(
        expected,
        "witnesses: 0 valid cosignature(s) from distinct keys of the 1 trusted witness(es), 1 required"
    );
    let cosigned = edit(&f.bundle, |b| {
        let note = b["checkpoint"].as_str().unwrap().to_string();
        let (body, _) = kvitto_proof::checkpoint::split_note(&note).unwrap();
        let line = kvitto_proof::checkpoint::cosign(body, "witness.example/w1", &signer, 1_790_000_000);
        b["checkpoint"] = format!("{note}{line}").into();
    });
    let r = check(&Input { witness_keys: vec![&vkey], ..input(&cosigned, &f.key) });
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["message"].as_str().unwrap().ends_with(", complete up to 14, cosigned by witness.example/w1"),
        "{}",
        r["message"]
    );
    assert_eq!(r["cosigned_by"], serde_json::json!([{"witness": "witness.example/w1", "timestamp": 1_790_000_000u64}]));
    // Quorum 0 with a witness key: nothing required.
    let r = check(&Input { witness_keys: vec![&vkey], quorum: Some(0), ..input(&f.bundle, &f.key) });
    assert_eq!(r["ok"], true);
    // The page's text fields.
    let i = input_from_text(&f.bundle, "", true, "  \n", "\n  a+b+c \n\n d \n", " 2 ").unwrap();
    assert_eq!(i.key, None);
    assert_eq!(i.since, None);
    assert_eq!(i.witness_keys, ["a+b+c", "d"]);
    assert_eq!(i.quorum, Some(2));
    assert_eq!(input_from_text("", "", false, "", "", "x").unwrap_err(), "--quorum \"x\": not a whole number");
    // The wasm entry point answers the same JSON as text.
    let text = verify_bundle(&f.bundle, &f.key, false, "", "", "");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, check(&input(&f.bundle, &f.key)));
}

#[test]
fn summaries_are_the_clis_and_escape_what_could_reorder_text() {
    // Stored text written before the input rules may hold a bidi override.
    let kind = EventKind::ProcessingRestricted { reason: kvitto_core::Text::stored("a\u{202e}b").unwrap() };
    assert_eq!(kind.summary(), "reason=a\\u202eb");
    assert_eq!(kvitto_core::text::visible("x\u{202e}y\nz", true), "x\\u202ey\\u000az");
    let long = EventKind::RelationshipEnded { reason: Some(kvitto_core::Text::new("x".repeat(60)).unwrap()) };
    assert_eq!(long.summary(), format!("reason={}…", "x".repeat(45)));
    assert_eq!(about()["formats"], serde_json::json!(["kvitto-bundle/2", "kvitto-bundle/1"]));
}
