//! The regulators' page (docs/WEB.md) end to end: `scripts/web-build` builds it into
//! target/web/, headless Chromium opens target/web/index.html from file:// (driven by
//! tests/web/drive.mjs with playwright-core), and for a real bundle of the demo scenario the page
//! shows PASS with the CLI's own line, the timeline, consent per purpose, recipients and
//! erasures; for each tampered bundle it shows FAIL with exactly the reason
//! `kvitto_proof::bundle::verify_with` (and so `kvitto verify-bundle --json`) gives. The page
//! makes no request but for file: and data: URLs. Screenshots land in
//! target/web-screenshot.png (a bundle that verifies) and target/web-screenshot-fail.png.
//!
//! Where node, Chromium, playwright-core (`scripts/test-deps` installs them), the wasm32 target
//! or wasm-bindgen-cli cannot be had, the test says `skipped: …` and passes — except with
//! CI=true, where it fails.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto_core::{EventKind, decode_event, encode_event};
use kvitto_integration::*;
use kvitto_proof::bundle::{Options, Trust, verify_with};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Says why the test cannot run; under CI=true that is a failure.
fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true, and the page cannot be tested: {why}");
    }
    // Straight to stderr, past the test harness's capture, so that the skip shows.
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Runs a command to its end (at most `limit`), with its stdout and stderr.
fn run(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

/// What `kvitto verify-bundle --json` prints as `error` for this input (it prints
/// `BundleError`'s Display of `verify_with`).
fn cli_error(bundle: &str, key: &str, since: Option<&str>) -> String {
    let opts = Options { trust: Trust::Key(key.trim()), since, witnesses: &[], quorum: 0 };
    match verify_with(bundle, &opts) {
        Ok(_) => panic!("the tampered bundle verified"),
        Err(e) => e.to_string(),
    }
}

/// Re-encodes event `i` after `edit`: canonical bytes and view agree, the proofs do not.
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

fn position(b: &Value, kind: &str) -> usize {
    b["events"].as_array().unwrap().iter().position(|e| e["event"]["type"] == kind).unwrap()
}

fn seqs_of(b: &Value, kind: &str) -> Vec<u64> {
    b["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == kind)
        .map(|e| e["leaf_index"].as_u64().unwrap())
        .collect()
}

struct Exported {
    _dir: tempfile::TempDir,
    key: String,
    /// Consent given and withdrawn, shared, rectified, one register erased; exported
    /// `--since` `held`.
    bundle: Value,
    held: String,
    /// The same customer's bundle at the held (older) checkpoint.
    old_bundle: Value,
    /// The newest checkpoint, which `old_bundle` does not extend.
    latest: String,
    controller: String,
}

/// The demo scenario's companies and customers in a fresh ledger; one customer whose life has
/// consent given and withdrawn, sharing with a recipient and a rectification gets one register
/// erased; checkpoints before and after.
async fn export() -> Exported {
    let (dir, _path, ledger) = fresh_ledger().await;
    // Seed 11's 400 customers have two whose lives hold all of that.
    let s = kvitto::scenario::generate(400, 11);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for group in s.customers.chunks(25) {
        ledger.append_batch(group.iter().flat_map(|c| c.events.clone()).collect()).await.unwrap();
    }
    let has = |c: &kvitto::scenario::Customer, f: fn(&EventKind) -> bool| c.events.iter().any(|e| f(&e.kind));
    let mut candidates: Vec<&kvitto::scenario::Customer> = s
        .customers
        .iter()
        .filter(|c| has(c, |k| matches!(k, EventKind::ConsentGiven { .. })))
        .filter(|c| has(c, |k| matches!(k, EventKind::ConsentWithdrawn { .. })))
        .filter(|c| has(c, |k| matches!(k, EventKind::DataShared { .. })))
        .filter(|c| has(c, |k| matches!(k, EventKind::DataRectified { .. })))
        .filter(|c| !has(c, |k| matches!(k, EventKind::DataErased { .. })))
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.events.len()));
    assert!(
        !candidates.is_empty(),
        "the scenario has a customer with consent given and withdrawn, shares and a rectification"
    );
    let held = ledger.checkpoint().await.unwrap();
    // Erase the register of the customer's first rectification, or else of the first
    // collection (a hold or a deferral may refuse one customer: take the next).
    let mut chosen = None;
    for c in &candidates {
        let register = |rectified: bool| {
            c.events.iter().find_map(|e| match &e.kind {
                EventKind::DataRectified { register, .. } if rectified => Some(register.as_str().to_string()),
                EventKind::DataCollected { register, .. } if !rectified => Some(register.as_str().to_string()),
                _ => None,
            })
        };
        let register = register(true).or_else(|| register(false));
        let erased =
            ledger.erase(c.controller.as_str(), &c.external_ref, register.as_deref(), "Art 17 request of the customer");
        if erased.await.is_ok() {
            chosen = Some(*c);
            break;
        }
    }
    let chosen = chosen.expect("one candidate's register could be erased");
    let latest = ledger.checkpoint().await.unwrap();
    let (controller, subject) = (chosen.controller.as_str(), chosen.external_ref.as_str());
    let bundle = ledger.export_bundle(controller, subject, None, Some(&held)).await.unwrap();
    let held_size: u64 = held.lines().nth(1).unwrap().parse().unwrap();
    let old_bundle = ledger.export_bundle(controller, subject, Some(held_size), None).await.unwrap();
    let key = ledger.verifier_key().unwrap();
    let controller = controller.to_string();
    ledger.close().await.unwrap();
    Exported { _dir: dir, key, bundle, held, old_bundle, latest, controller }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_verifies_as_the_cli_does_and_shows_the_history() {
    let root = root();
    let Some(node) = on_path("node") else {
        return skip("no node on PATH (scripts/test-deps installs it with chromium)");
    };
    let chromium = ["/usr/bin/chromium"].iter().map(PathBuf::from).find(|p| p.is_file());
    let Some(chromium) = chromium else {
        return skip("no /usr/bin/chromium (scripts/test-deps installs Debian's chromium)");
    };
    if !root.join("tests/web/node_modules/playwright-core/package.json").is_file() {
        return skip("no tests/web/node_modules/playwright-core (scripts/test-deps runs npm ci in tests/web)");
    }

    // The page, built as a regulator builds it.
    let start = Instant::now();
    let (code, out, err) = run(&mut Command::new(root.join("scripts/web-build")), Duration::from_secs(900));
    match code {
        Some(0) => {}
        Some(3) => return skip(&format!("scripts/web-build cannot get its tools: {}", err.trim_end())),
        _ => panic!("scripts/web-build failed ({code:?}):\n{err}"),
    }
    let _ = writeln!(std::io::stderr(), "web: scripts/web-build took {:.1} s", start.elapsed().as_secs_f64());
    let web = root.join("target/web");
    let sums = std::fs::read_to_string(web.join("SHA256SUMS")).unwrap();
    assert_eq!(out, sums, "web-build prints SHA256SUMS");
    let files: Vec<&str> = sums.lines().map(|l| l.split_once("  ").unwrap().1).collect();
    assert_eq!(
        files,
        ["index.html", "app.js", "style.css", "kvitto_web.js", "kvitto_web_wasm.js", "kvitto_web_bg.wasm"]
    );
    for line in sums.lines() {
        let (hash, file) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(web.join(file)).unwrap();
        assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)), hash, "{file}");
    }
    // The embedded verifier is the .wasm beside it, byte for byte.
    let embedded = std::fs::read_to_string(web.join("kvitto_web_wasm.js")).unwrap();
    let b64 = embedded.split('"').nth(3).unwrap();
    assert_eq!(B64.decode(b64).unwrap(), std::fs::read(web.join("kvitto_web_bg.wasm")).unwrap());

    let x = export().await;
    let work = root.join("target/web-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let write = |name: &str, text: &str| {
        let p = work.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let genuine = serde_json::to_string_pretty(&x.bundle).unwrap();
    let key_file = write("ledger.vkey", &format!("{}\n", x.key));
    let held_file = write("held-checkpoint.txt", &x.held);
    let latest_file = write("latest-checkpoint.txt", &x.latest);
    let other_key = {
        let (_d, _p, l) = fresh_ledger().await;
        let k = l.verifier_key().unwrap();
        l.close().await.unwrap();
        k
    };

    // The tampered bundles, each with the reason the verifier gives for it.
    let b = &x.bundle;
    let mut tampered: Vec<(&str, Value, String, Option<PathBuf>)> = Vec::new();
    let mut add = |name: &'static str, doc: Value, key: &str, since: Option<&PathBuf>| {
        tampered.push((name, doc, key.to_string(), since.cloned()));
    };
    let mut v = b.clone();
    let shared = position(b, "data_shared");
    forge(&mut v, shared, |e| {
        if let EventKind::DataShared { processor, .. } = &mut e.kind {
            *processor = kvitto_core::Id::new("acme-data-broker").unwrap();
        }
    });
    add("a recipient changed", v, &x.key, None);
    let mut v = b.clone();
    v["events"][1]["event"]["occurred_at"] = json!("2020-01-01T00:00:00Z");
    add("a time changed in the readable view", v, &x.key, None);
    let mut v = b.clone();
    v["events"].as_array_mut().unwrap().remove(position(b, "consent_withdrawn"));
    add("the withdrawal removed", v, &x.key, None);
    let mut v = b.clone();
    v["events"].as_array_mut().unwrap().pop();
    add("the last event (the erasure) removed", v, &x.key, None);
    let mut v = b.clone();
    let h = v["events"][0]["proof"][0].as_str().unwrap().to_string();
    let flipped = format!("{}{}", if h.starts_with('0') { '1' } else { '0' }, &h[1..]);
    v["events"][0]["proof"][0] = json!(flipped);
    add("a proof hash flipped", v, &x.key, None);
    add("another ledger's key", b.clone(), &other_key, None);
    let mut v = b.clone();
    let note = v["checkpoint"].as_str().unwrap().to_string();
    let sig_at = note.rfind(' ').unwrap() + 1;
    let mut sig = B64.decode(note[sig_at..].trim_end()).unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    v["checkpoint"] = json!(format!("{}{}\n", &note[..sig_at], B64.encode(&sig)));
    add("the checkpoint signature altered", v, &x.key, None);
    add("a held checkpoint the bundle does not extend", x.old_bundle.clone(), &x.key, Some(&latest_file));
    let mut v = b.clone();
    let c = v["consistency"]["proof"][0].as_str().unwrap().to_string();
    v["consistency"]["proof"][0] = json!(format!("{}{}", if c.starts_with('0') { '1' } else { '0' }, &c[1..]));
    add("a consistency proof that does not reach the held checkpoint", v, &x.key, Some(&held_file));

    let mut cases = vec![
        json!({"name": "genuine", "bundle": write("genuine.json", &genuine), "key_file": key_file, "since": held_file}),
        json!({"name": "genuine, dropped, key pasted", "bundle": write("dropped.json", &genuine), "key": x.key, "drop": true}),
        json!({"name": "old bundle, embedded key", "bundle": write("old.json", &serde_json::to_string(&x.old_bundle).unwrap()), "trust_embedded": true}),
        json!({"name": "quorum without witness keys", "bundle": write("genuine.json", &genuine), "key": x.key, "quorum": "1"}),
    ];
    let mut expected = Vec::new();
    for (i, (name, doc, key, since)) in tampered.iter().enumerate() {
        let text = serde_json::to_string(doc).unwrap();
        let held = since.as_ref().map(|p| std::fs::read_to_string(p).unwrap());
        let reason = cli_error(&text, key, held.as_deref());
        let file = write(&format!("tampered-{i}.json"), &text);
        cases.push(json!({"name": name, "bundle": file, "key": key, "since": since}));
        expected.push((*name, reason));
    }
    let screenshot = root.join("target/web-screenshot.png");
    let screenshot_fail = root.join("target/web-screenshot-fail.png");
    for p in [&screenshot, &screenshot_fail] {
        let _ = std::fs::remove_file(p);
    }
    let spec = json!({
        "page": format!("file://{}", web.join("index.html").display()),
        "chromium": chromium,
        "screenshots": {"genuine": screenshot, "a recipient changed": screenshot_fail},
        "cases": cases,
    });
    let spec_file = write("spec.json", &serde_json::to_string_pretty(&spec).unwrap());

    let start = Instant::now();
    let (code, out, err) =
        run(Command::new(&node).arg(root.join("tests/web/drive.mjs")).arg(&spec_file), Duration::from_secs(300));
    assert_eq!(code, Some(0), "the browser driver failed:\n{err}");
    let _ = writeln!(std::io::stderr(), "web: the browser run took {:.1} s", start.elapsed().as_secs_f64());
    let seen: Value = serde_json::from_str(&out).unwrap();
    std::fs::write(work.join("seen.json"), serde_json::to_string_pretty(&seen).unwrap()).unwrap();

    // No network: every request the page made was for a file: or data: URL.
    let requests: Vec<&str> = seen["requests"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(requests.iter().any(|r| r.ends_with("/target/web/kvitto_web_wasm.js")), "{requests:?}");
    for r in &requests {
        assert!(r.starts_with("file:") || r.starts_with("data:"), "the page requested {r}");
    }
    assert_eq!(seen["websockets"], json!([]));
    assert_eq!(seen["page_errors"], json!([]), "errors in the page");
    assert_eq!(seen["console_errors"], json!([]), "errors on the console");
    assert!(seen["about"].as_str().unwrap().contains("kvitto-bundle/2"), "{}", seen["about"]);
    let case = |name: &str| seen["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();

    // The genuine bundle: PASS, the CLI's line, what it proves, and the history.
    let g = case("genuine");
    let subject = b["subject_id"].as_str().unwrap();
    let size: u64 = x.latest.lines().nth(1).unwrap().parse().unwrap();
    let held_size: u64 = x.held.lines().nth(1).unwrap().parse().unwrap();
    let n = b["events"].as_array().unwrap().len();
    let complete = b["info"]["complete_up_to"].as_u64().unwrap();
    assert_eq!(g["ok"], true, "{g}");
    assert_eq!(g["status"], "PASS — the bundle verifies");
    assert_eq!(
        g["message"],
        format!(
            "ok: {n} events of subject {subject} proven against checkpoint size {size}, complete up to {complete}, \
             extends the held checkpoint of size {held_size}"
        )
    );
    assert_eq!(g["reason_shown"], false);
    assert!(
        g["completeness"].as_str().unwrap().starts_with(&format!("Complete up to {complete}: ")),
        "{}",
        g["completeness"]
    );
    // The timeline: every event, in order, with its kind and details state.
    let timeline = g["timeline"].as_array().unwrap();
    let shown: Vec<(u64, &str)> =
        timeline.iter().map(|r| (r["seq"].as_u64().unwrap(), r["kind"].as_str().unwrap())).collect();
    let want: Vec<(u64, &str)> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["leaf_index"].as_u64().unwrap(), e["event"]["type"].as_str().unwrap()))
        .collect();
    assert_eq!(shown, want);
    for kind in ["data_collected", "consent_given", "consent_withdrawn", "data_shared", "data_rectified", "data_erased"]
    {
        assert!(shown.iter().any(|(_, k)| *k == kind), "no {kind} in the timeline");
    }
    let erasure = *seqs_of(b, "data_erased").last().unwrap();
    let erased_rows: Vec<&Value> = timeline.iter().filter(|r| r["details"] == "erased").collect();
    assert!(!erased_rows.is_empty(), "the erasure destroyed some details");
    for r in &erased_rows {
        assert!(r["cells"][5].as_str().unwrap().contains(&format!("erased by seq {erasure}")), "{r}");
    }
    let rectified = seqs_of(b, "data_rectified")[0];
    let row = timeline.iter().find(|r| r["seq"] == rectified).unwrap();
    assert_eq!(row["details"], "erased", "the rectification's details were in the erased register");
    // Summaries are the CLI's (ids and enums, as `kvitto verify-bundle` prints them).
    let shared_seq = seqs_of(b, "data_shared")[0];
    let row = timeline.iter().find(|r| r["seq"] == shared_seq).unwrap();
    let ev = &b["events"][position(b, "data_shared")]["event"];
    assert_eq!(
        row["cells"][4],
        format!(
            "categories={} processor={} purpose={}",
            ev["categories"],
            ev["processor"].as_str().unwrap(),
            ev["purpose"].as_str().unwrap()
        )
    );
    // Consent per purpose: the withdrawn purpose shows both marks, in time order.
    let withdrawn = &b["events"][position(b, "consent_withdrawn")]["event"];
    let purpose = withdrawn["purpose"].as_str().unwrap();
    let row = g["consent"].as_array().unwrap().iter().find(|r| r["purpose"] == purpose).unwrap();
    let text = row["text"].as_str().unwrap();
    assert!(text.contains("granted"), "{text}");
    assert!(text.contains(&format!("withdrawn {} → ", withdrawn["occurred_at"].as_str().unwrap())), "{text}");
    // Shares: each recipient of the bundle appears with the seqs of its disclosures.
    let recipients: Vec<&str> =
        g["recipients"].as_array().unwrap().iter().map(|r| r["processor"].as_str().unwrap()).collect();
    for e in b["events"].as_array().unwrap().iter().filter(|e| e["event"]["type"] == "data_shared") {
        let p = e["event"]["processor"].as_str().unwrap();
        assert!(recipients.contains(&p), "{p} not among {recipients:?}");
        let row = g["recipients"].as_array().unwrap().iter().find(|r| r["processor"] == p).unwrap();
        assert!(row["text"].as_str().unwrap().contains(&format!("(seq {})", e["leaf_index"])), "{row}");
    }
    // Erasures: the one erasure, its scope and the details it destroyed.
    let erasures = g["erasures"].as_array().unwrap();
    assert_eq!(erasures.len(), 1, "{erasures:?}");
    assert_eq!(erasures[0]["seq"], erasure);
    let register = b["events"][position(b, "data_erased")]["event"]["register"].as_str().unwrap();
    assert_eq!(erasures[0]["cells"][2], format!("register {register}"));
    assert!(erasures[0]["cells"][4].as_str().unwrap().contains(&rectified.to_string()), "{}", erasures[0]);
    assert!(
        g["facts"].as_array().unwrap().iter().any(|f| f[0] == "controller" && f[1] == x.controller.as_str()),
        "{}",
        g["facts"]
    );

    // Dropped on the page with the key pasted: the same verdict, without the held checkpoint.
    let d = case("genuine, dropped, key pasted");
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(
        d["message"],
        format!("ok: {n} events of subject {subject} proven against checkpoint size {size}, complete up to {complete}")
    );
    // The embedded key: verifies, with the CLI's warning.
    let e = case("old bundle, embedded key");
    assert_eq!(e["ok"], true, "{e}");
    assert_eq!(e["notes"][0], kvitto_web::EMBEDDED_KEY_WARNING);
    // Input the CLI refuses before verifying.
    let q = case("quorum without witness keys");
    assert_eq!(q["ok"], false);
    assert_eq!(q["status"], "NOT CHECKED — the input is incomplete");
    assert_eq!(q["reason"], "--quorum 1 needs at least 1 --witness-key");

    // Every tampered bundle: FAIL, with exactly the verifier's reason and the CLI's line.
    for (name, reason) in &expected {
        let c = case(name);
        assert_eq!(c["ok"], false, "{name}: {c}");
        assert_eq!(c["status"], "FAIL — the bundle does not verify", "{name}");
        assert_eq!(c["reason"], reason.as_str(), "{name}");
        assert_eq!(c["message"], format!("bundle verification failed: {reason}"), "{name}");
        assert_eq!(c["proven_shown"], false, "{name}: nothing of a failed bundle is shown as proven");
    }
    // The reasons are the specific ones, so each case tests what it says.
    let reason = |name: &str| expected.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert!(reason("a recipient changed").contains("inclusion proof"), "{}", reason("a recipient changed"));
    assert!(
        reason("a time changed in the readable view").ends_with("the readable view differs from the canonical bytes")
    );
    assert!(reason("the withdrawal removed").contains("is due (missing, duplicated or reordered)"));
    assert!(reason("the last event (the erasure) removed").starts_with("incomplete: "));
    assert_eq!(reason("another ledger's key"), "$.verifier_key: differs from the key you trust");
    assert!(reason("the checkpoint signature altered").starts_with("checkpoint: "));
    assert!(reason("a held checkpoint the bundle does not extend").starts_with("rollback: "));
    assert!(reason("a consistency proof that does not reach the held checkpoint").starts_with("fork: "));

    for p in [&screenshot, &screenshot_fail] {
        let png = std::fs::read(p).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is a PNG", p.display());
    }

    // The same page served by `kvitto serve` at /verify/, under the server's own
    // Content-Security-Policy: the same verdict, no error, and no request beyond its origin.
    let ledger_dir = work.join("served-ledger");
    kvitto::Ledger::init(&ledger_dir, "served.example/ledger").unwrap();
    let ledger = kvitto::Ledger::open(&ledger_dir, kvitto::OpenOptions::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options =
        kvitto_server::ServeOptions { checkpoint_every: None, web_dir: Some(web.clone()), ..Default::default() };
    let server = tokio::spawn(kvitto_server::serve(ledger, listener, options, async {
        let _ = stopped.await;
    }));
    let spec = json!({
        "page": format!("{origin}/verify"),
        "chromium": chromium,
        "screenshots": {},
        "cases": [json!({"name": "served", "bundle": write("served.json", &genuine), "key": x.key})],
    });
    let spec_file = write("served-spec.json", &serde_json::to_string_pretty(&spec).unwrap());
    let driver = root.join("tests/web/drive.mjs");
    let node_path = node.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(Command::new(&node_path).arg(driver).arg(&spec_file), Duration::from_secs(120))
    })
    .await
    .unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap().close().await.unwrap();
    assert_eq!(code, Some(0), "the browser driver failed on the served page:\n{err}");
    let served: Value = serde_json::from_str(&out).unwrap();
    let requests: Vec<&str> = served["requests"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(requests.iter().any(|r| r.ends_with("/verify/kvitto_web_wasm.js")), "{requests:?}");
    for r in &requests {
        assert!(r.starts_with(&format!("{origin}/verify")), "the served page requested {r}");
    }
    assert_eq!(served["page_errors"], json!([]), "errors in the served page");
    assert_eq!(served["console_errors"], json!([]), "errors on the served page's console (a CSP violation?)");
    let c = &served["cases"][0];
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(c["message"], d["message"]);
}
