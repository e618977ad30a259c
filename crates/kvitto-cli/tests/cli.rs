//! The `kvitto` binary end to end: exit codes, receipts, the bad-input corpus
//! (`tests/data/bad-input`), history, log, verify, demo.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name)
}

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

fn kvitto_stdin(ledger: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .arg("--ledger")
        .arg(ledger)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn new_ledger() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let l = d.path().join("ledger");
    let o = kvitto(&l, &["init", "--origin", "cli.test/ledger"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    (d, l)
}

/// `ok: N events, head H` from `kvitto verify`.
fn state(ledger: &Path) -> String {
    let o = kvitto(ledger, &["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn bad_input_corpus_exits_2_names_line_and_field_and_writes_nothing() {
    let (_d, ledger) = new_ledger();
    let o = kvitto(&ledger, &["append", data("good.jsonl").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = state(&ledger);
    assert!(before.starts_with("ok: 3 events, head "), "{before}");
    let cases = std::fs::read_to_string(data("bad-input/cases.tsv")).unwrap();
    let mut n = 0;
    for row in cases.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, line, field, expect) = (cols[0], cols[1], cols[2], cols[3]);
        let path = data("bad-input").join(file);
        let o = kvitto(&ledger, &["append", path.to_str().unwrap()]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: exit code; stderr: {err}");
        assert!(o.stdout.is_empty(), "{file}: printed receipts: {}", text(&o.stdout));
        if line != "-" {
            assert!(err.contains(&format!("line {line}: ")), "{file}: stderr {err:?} does not name line {line}");
        }
        if field != "-" {
            assert!(err.contains(&format!("field {field}: ")), "{file}: stderr {err:?} does not name field {field}");
        }
        assert!(err.contains(expect), "{file}: stderr {err:?} does not say {expect:?}");
        assert_eq!(state(&ledger), before, "{file}: the ledger changed");
        n += 1;
    }
    assert!(n >= 30, "corpus has only {n} cases");
}

#[test]
fn append_prints_receipts_and_accepts_bom_crlf_pretty_and_stdin() {
    let (_d, ledger) = new_ledger();
    let o = kvitto(&ledger, &["append", data("good.jsonl").to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for (i, r) in lines.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
        assert_eq!(r["hash"].as_str().unwrap().len(), 64);
        assert!(r["event_id"].as_str().unwrap().len() == 36);
        assert!(r["recorded_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(lines[1]["event_id"], "0194312a-8b00-7000-8000-00000000abcd");
    // Re-sending the same file: events with an event_id are idempotent, the others are new.
    let again = kvitto(&ledger, &["append", data("good.jsonl").to_str().unwrap()]);
    let again: Vec<serde_json::Value> = text(&again.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(again[1], lines[1]);
    assert_eq!(again[0]["seq"], 3);
    let o = kvitto(&ledger, &["append", data("good-bom-crlf.jsonl").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 2);
    let o = kvitto(&ledger, &["append", data("good-pretty.json").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto_stdin(
        &ledger,
        &["append", "-"],
        br#"{"type":"objection_recorded","controller":"kalejdo","subject":"cust-1","purpose":"marketing"}"#,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(state(&ledger).starts_with("ok: 9 events"));
}

#[test]
fn history_and_log_readable_and_json() {
    let (_d, ledger) = new_ledger();
    kvitto(&ledger, &["append", data("good.jsonl").to_str().unwrap()]);
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "cust-1", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let events: Vec<serde_json::Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "consent_given");
    assert_eq!(events[0]["subject"], "cust-1");
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[1]["details"]["name"], "Åsa Öberg");
    assert_eq!(events[1]["categories"], serde_json::json!(["name", "contact"]));
    assert_eq!(events[1]["subject_prev"], events[0]["hash"]);
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "cust-1"]);
    let out = text(&o.stdout);
    assert!(out.contains("consent_given") && out.contains("[details]"), "{out}");
    assert!(!out.contains("Åsa"), "the table shows no personal details");
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "nobody"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no events for this subject"));
    let o = kvitto(&ledger, &["log", "--from", "1", "--limit", "1", "--json"]);
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("\"seq\":1"));
    let o = kvitto(&ledger, &["log"]);
    assert_eq!(text(&o.stdout).lines().count(), 4, "header + 3 events");
}

#[test]
fn ledger_flag_position_env_and_missing_ledger() {
    let (_d, ledger) = new_ledger();
    // --ledger after the subcommand.
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto")).args(["verify", "--ledger"]).arg(&ledger).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // $KVITTO_LEDGER.
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto")).arg("verify").env("KVITTO_LEDGER", &ledger).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("ok: 0 events"));
    let o = kvitto(&ledger.join("missing"), &["verify"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no kvitto ledger here"));
    let o = kvitto(&ledger, &["init", "--origin", "again"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("already exists"));
    let o = kvitto(&ledger.join("other"), &["init", "--origin", "two words"]);
    assert_eq!(o.status.code(), Some(2), "a bad origin is the caller's input");
    assert!(text(&o.stderr).contains("--origin \"two words\": must not contain spaces"), "{}", text(&o.stderr));
    assert!(!ledger.join("other").exists(), "nothing is created for a refused origin");
    let o = kvitto(&ledger, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = kvitto(&ledger, &["--help"]);
    let help = text(&o.stdout);
    assert!(help.contains("Exit codes") && help.contains("Examples"), "{help}");
}

#[test]
fn verify_exits_1_with_the_bad_seq() {
    let (_d, ledger) = new_ledger();
    kvitto(&ledger, &["append", data("good.jsonl").to_str().unwrap()]);
    {
        let (store, _, _) = kvitto_store::Store::open(&ledger).unwrap();
        kvitto_store::tamper::edit_record(&store, 1, |r| {
            let n = r.canonical.len();
            r.canonical[n - 3] ^= 0x20;
        })
        .unwrap();
    }
    let o = kvitto(&ledger, &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("verification failed: seq 1:"), "{err}");
}

#[test]
fn demo_runs_verifies_and_shows_a_history() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["demo", "--customers", "60", "--seed", "5", "--dir"])
        .arg(&dir)
        .env_remove("CARGO")
        .env_remove("CARGO_PKG_NAME")
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("verify: ok:"), "{out}");
    assert!(out.contains("history of customer"), "{out}");
    assert!(out.contains("explore further"), "{out}");
    // Late answers to rights requests are counted, not passed off as plain `fulfilled`.
    let requests = out.lines().find(|l| l.starts_with("rights requests: ")).unwrap_or_default();
    assert!(requests.contains("answered after their Art 12(3) deadline"), "{out}");
    // The lines to explore further name the binary that ran, not a cargo command.
    assert!(out.contains(&format!("\n  {} --ledger ", env!("CARGO_BIN_EXE_kvitto"))), "{out}");
    assert!(!out.contains("cargo run"), "{out}");
    // A second run replaces the earlier demo; a foreign directory is refused. Run by cargo,
    // it shows the cargo form.
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["demo", "--customers", "5", "--dir"])
        .arg(&dir)
        .env("CARGO", "cargo")
        .env("CARGO_PKG_NAME", "kvitto-cli")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("\n  cargo run --release -p kvitto-cli -- --ledger "), "{}", text(&o.stdout));
    // A demo ledger another process has open (its sled lock held) is not deleted.
    let db = std::fs::File::open(dir.join("store").join("db")).unwrap();
    fs2::FileExt::try_lock_exclusive(&db).unwrap();
    let events = std::fs::read_dir(dir.join("store")).unwrap().count();
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["demo", "--customers", "5", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("another process has open"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_dir(dir.join("store")).unwrap().count(), events, "nothing deleted");
    fs2::FileExt::unlock(&db).unwrap();
    drop(db);
    let foreign = d.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("important.txt"), "keep me").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto")).args(["demo", "--dir"]).arg(&foreign).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(foreign.join("important.txt").exists());
}

#[test]
fn logs_carry_no_personal_data_even_at_trace_level() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["demo", "--customers", "40", "--dir"])
        .arg(&dir)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let logs = text(&o.stderr);
    let tail: String = logs.lines().rev().filter(|l| !l.contains("sled::")).take(8).collect::<Vec<_>>().join("\n");
    assert_eq!(o.status.code(), Some(0), "demo failed; last lines of its log (newest first):\n{tail}");
    assert!(logs.contains("append_group"), "expected group spans in the trace: {}", &logs[..logs.len().min(500)]);
    for needle in ["@example.org", "KAL-1", "KZ-1", "SEL-1", "KTB-1", "KTE-1", "Storgatan", "Öberg", "Lindqvist"] {
        assert!(!logs.contains(needle), "log output contains {needle:?}");
    }
    let o = kvitto_stdin(
        &dir,
        &["append", "-"],
        br#"{"type":"data_collected","controller":"kalejdo","subject":"REF-SECRET-77","register":"r","categories":["contact"],"purpose":"p","legal_basis":"contract","source":"subject","details":{"email":"hidden@example.se"}}"#,
    );
    assert!(o.status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["history", "--controller", "kalejdo", "--subject", "REF-SECRET-77", "--json", "--ledger"])
        .arg(&dir)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains("hidden@example.se"), "history shows details to its user");
    let logs = text(&o.stderr);
    assert!(!logs.contains("REF-SECRET-77") && !logs.contains("hidden@example.se"), "{logs}");
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn consent_may_process_reports_and_portability() {
    let (_d, ledger) = new_ledger();
    let o = kvitto(&ledger, &["append", data("projections.jsonl").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let who = ["--controller", "kazoom", "--subject", "KZ-1"];
    let args = |extra: &[&str]| -> Vec<String> { who.iter().chain(extra.iter()).map(|s| s.to_string()).collect() };
    let run = |cmd: &str, extra: &[&str]| {
        let mut a = vec![cmd.to_string()];
        a.extend(args(extra));
        kvitto(&ledger, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Consent now: withdrawn (seq 12), with history; as of March: granted (seq 8).
    let now = json_lines(&run("consent", &["--purpose", "product-news", "--json"]));
    assert_eq!((now[0]["state"].as_str(), now[0]["seq"].as_u64()), (Some("withdrawn"), Some(12)));
    assert_eq!(now[0]["history"].as_array().unwrap().len(), 2);
    let march = json_lines(&run("consent", &["--purpose", "product-news", "--at", "2026-03-15", "--json"]));
    assert_eq!((march[0]["state"].as_str(), march[0]["seq"].as_u64()), (Some("granted"), Some(8)));
    assert_eq!(march[0]["since"], "2026-01-10T09:00:00Z");
    // Before the customer's first event, as of then or as the ledger knew it then: no answer,
    // the same error as may-process and report access (DECISIONS.md rule 1).
    for (cmd, extra) in [
        ("consent", &["--purpose", "product-news", "--at", "2025-12-31"][..]),
        ("consent", &["--purpose", "product-news", "--known-at", "2020-01-01"][..]),
        ("report", &["--at", "2025-12-31"][..]),
        ("may-process", &["--purpose", "product-news", "--at", "2025-12-31"][..]),
    ] {
        let o = if cmd == "report" {
            kvitto(&ledger, &[&["report", "access"][..], &who, extra].concat())
        } else {
            run(cmd, extra)
        };
        assert_eq!(o.status.code(), Some(2), "{cmd} {extra:?}: {}", text(&o.stdout));
        assert!(
            text(&o.stderr).contains("no events for this subject under controller kazoom as of"),
            "{}",
            text(&o.stderr)
        );
    }

    // May I send product news? Now: no (exit 1); as of March: yes (exit 0).
    let o = run("may-process", &["--purpose", "product-news", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let d = json_lines(&o);
    assert_eq!((d[0]["allowed"].as_bool(), d[0]["seq"].as_u64()), (Some(false), Some(12)));
    let o = run("may-process", &["--purpose", "product-news", "--at", "2026-03-15T00:00:00Z"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o.stdout).starts_with("allowed: consent given for product-news (decided by seq 8)"),
        "{}",
        text(&o.stdout)
    );
    let o = run("may-process", &["--purpose", "telemarketing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("not declared"));

    // Bad input: unknown subject, controller, purpose — exit 2 with a clear message.
    let o = kvitto(&ledger, &["consent", "--controller", "kazoom", "--subject", "KZ-404"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no events for this subject"), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["may-process", "--controller", "nobody", "--subject", "KZ-1", "--purpose", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run("consent", &["--purpose", "astrology"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown purpose astrology"));
    let o = run("consent", &["--at", "last tuesday"]);
    assert_eq!(o.status.code(), Some(2));

    // Art 15: purposes, recipients (with the third-country transfer), request deadline.
    let o = kvitto(
        &ledger,
        &["report", "access", "--controller", "kazoom", "--subject", "KZ-1", "--json", "--at", "2026-03-15"],
    );
    let r: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let recipients = r["recipients"].as_array().unwrap();
    let us = recipients.iter().find(|x| x["processor"] == "us-analytics").unwrap();
    assert_eq!((us["third_country"].as_bool(), us["seqs"][0].as_u64()), (Some(true), Some(10)));
    assert_eq!(r["requests"][0]["deadline"], "2026-04-01T09:00:00Z");
    assert_eq!(r["requests"][0]["overdue"], false);
    let o = kvitto(&ledger, &["report", "access", "--controller", "kazoom", "--subject", "KZ-1"]);
    let t = text(&o.stdout);
    assert!(t.contains("(a) purposes") && t.contains("(c) recipients") && t.contains("NONE DECLARED"), "{t}");
    assert!(t.contains("OVERDUE"), "the access request is past its one-month deadline: {t}");
    // Art 30: the US processor without a safeguard is flagged.
    let o = kvitto(&ledger, &["report", "processing", "--controller", "kazoom", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let us = r["recipients"].as_array().unwrap().iter().find(|x| x["processor"] == "us-analytics").unwrap();
    assert_eq!(us["missing_safeguard"], true);
    assert_eq!(r["subjects"], 1);
    // Art 20: only what the customer provided (not the controller-made payment record).
    let o = run("export-portable", &[]);
    let e: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(e["format"], "kvitto-portable/2");
    let items = e["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["data"]["email"], "mette@example.dk");
    assert_eq!(items[0]["register"], "kunderegister");

    let o = kvitto(&ledger, &["rebuild"]);
    assert!(
        text(&o.stdout).starts_with("rebuilt projections from seq 0: 13 events, 1 subjects"),
        "{}",
        text(&o.stdout)
    );
    let again = json_lines(&run("consent", &["--purpose", "product-news", "--json"]));
    assert_eq!(again, now);
}

#[test]
fn key_checkpoint_prove_export_and_verify_bundle() {
    let (d, ledger) = new_ledger();
    let o = kvitto(&ledger, &["checkpoint"]);
    assert_eq!(o.status.code(), Some(2), "empty ledger: {}", text(&o.stderr));
    kvitto(&ledger, &["append", data("projections.jsonl").to_str().unwrap()]);
    let key = text(&kvitto(&ledger, &["key"]).stdout).trim().to_string();
    assert!(key.starts_with("cli.test/ledger+") && kvitto_proof::checkpoint::parse_vkey(&key).is_ok(), "{key}");
    let signed = kvitto(&ledger, &["checkpoint"]);
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    // 13 events, then the subject map commitment the checkpoint covers (seq 13).
    let shown = kvitto(&ledger, &["checkpoint", "--show", "--size", "14"]);
    assert_eq!(shown.stdout, signed.stdout, "--show prints the note exactly as stored");
    assert!(text(&shown.stdout).starts_with("cli.test/ledger\n14\n"));
    let o = kvitto(&ledger, &["checkpoint", "--show", "--size", "5"]);
    assert_eq!(o.status.code(), Some(2));
    let p: serde_json::Value =
        serde_json::from_str(&text(&kvitto(&ledger, &["prove", "inclusion", "--seq", "4", "--size", "13"]).stdout))
            .unwrap();
    assert_eq!((p["leaf_index"].as_u64(), p["tree_size"].as_u64()), (Some(4), Some(13)));
    let c: serde_json::Value =
        serde_json::from_str(&text(&kvitto(&ledger, &["prove", "consistency", "--from", "6"]).stdout)).unwrap();
    assert_eq!((c["size1"].as_u64(), c["size2"].as_u64()), (Some(6), Some(14)));

    let out = d.path().join("kz1.json");
    let o = kvitto(&ledger, &["export", "--controller", "kazoom", "--subject", "KZ-1", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let verify = |file: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kvitto")).arg("verify-bundle").arg(file).args(args).output().unwrap()
    };
    let o = verify(&out, &["--key", &key]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let t = text(&o.stdout);
    assert!(t.contains("consent_withdrawn") && t.contains("ok: 7 events of subject"), "{t}");
    assert!(t.contains("proven against checkpoint size 14, complete up to 13"), "{t}");
    let o = verify(&out, &[]);
    assert_eq!(o.status.code(), Some(2), "no key → refuse");
    let o = verify(&out, &["--trust-embedded-key", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("warning"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text(&o.stdout)).unwrap()["ok"], true);
    let bad = d.path().join("bad.json");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&out).unwrap().replacen(
            "\"processor\": \"us-analytics\"",
            "\"processor\": \"sms-partner\"",
            1,
        ),
    )
    .unwrap();
    let o = verify(&bad, &["--key", &key]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("event 4 (seq 10): the readable view differs"), "{}", text(&o.stderr));
    assert!(state(&ledger).starts_with("ok: 14 events"), "verify still passes with the checkpoint stored");

    // Proof files checked offline: a tlog-proof and JSON, against the log key.
    let tp = d.path().join("e4.tlog-proof");
    let o = kvitto(&ledger, &["prove", "inclusion", "--seq", "4", "--format", "tlog-proof"]);
    std::fs::write(&tp, &o.stdout).unwrap();
    assert!(text(&o.stdout).starts_with("c2sp.org/tlog-proof@v1\nextra "), "{}", text(&o.stdout));
    let vp = |file: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kvitto")).arg("verify-proof").arg(file).args(args).output().unwrap()
    };
    let o = vp(&tp, &["--key", &key]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("ok: event seq 4 (") && text(&o.stdout).contains("checkpoint of size 14"));
    std::fs::write(
        &tp,
        text(&kvitto(&ledger, &["prove", "inclusion", "--seq", "4", "--format", "tlog-proof"]).stdout)
            .replace("index 4", "index 5"),
    )
    .unwrap();
    let o = vp(&tp, &["--key", &key]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let jp = d.path().join("incl.json");
    std::fs::write(&jp, &kvitto(&ledger, &["prove", "inclusion", "--seq", "4"]).stdout).unwrap();
    assert_eq!(vp(&jp, &["--key", &key]).status.code(), Some(0), "a JSON proof carries the checkpoint of its size");
    std::fs::write(&jp, &kvitto(&ledger, &["prove", "inclusion", "--seq", "4", "--size", "13"]).stdout).unwrap();
    let o = vp(&jp, &["--key", &key]);
    assert!(o.status.code() == Some(1) && text(&o.stderr).contains("--checkpoint"), "{}", text(&o.stderr));
    let cp = d.path().join("cp14.txt");
    std::fs::write(&cp, &shown.stdout).unwrap();
    let cj = d.path().join("cons.json");
    std::fs::write(&cj, &kvitto(&ledger, &["prove", "consistency", "--from", "6"]).stdout).unwrap();
    let o = vp(&cj, &["--key-file", key_file(&d, &key).to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("the tree of 6 events"), "{}", text(&o.stdout));

    // What a verifier holds: verify --against, export --since, verify-bundle --since.
    let o = kvitto(&ledger, &["verify", "--against", cp.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("contains the held checkpoint"), "{}", text(&o.stdout));
    let since = d.path().join("since.json");
    let o = kvitto(
        &ledger,
        &[
            "export",
            "--controller",
            "kazoom",
            "--subject",
            "KZ-1",
            "--since",
            cp.to_str().unwrap(),
            "--out",
            since.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = verify(&since, &["--key", &key, "--since", cp.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("extends the held checkpoint of size 14"), "{}", text(&o.stdout));

    // Static tiles and the (empty) witness policy.
    let www = d.path().join("www");
    let o = kvitto(&ledger, &["publish", "--dir", www.to_str().unwrap()]);
    assert!(text(&o.stdout).starts_with("published checkpoint size 14"), "{}", text(&o.stdout));
    assert!(
        www.join("checkpoint").exists()
            && www.join("tile/0/000.p/14").exists()
            && www.join("tile/entries/000.p/14").exists()
    );
    assert!(text(&kvitto(&ledger, &["witness", "list"]).stdout).contains("no witnesses configured"));

    // Files with personal data: 0600, never over an existing file without --force.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let before = std::fs::read(&out).unwrap();
    let args = ["export", "--controller", "kazoom", "--subject", "KZ-1", "--out", out.to_str().unwrap()];
    let o = kvitto(&ledger, &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), before, "nothing written");
    assert!(kvitto(&ledger, &[&args[..], &["--force"]].concat()).status.success());
    let portable = d.path().join("portable.json");
    std::fs::write(&portable, "mine").unwrap();
    let pargs = ["export-portable", "--controller", "kazoom", "--subject", "KZ-1", "--out", portable.to_str().unwrap()];
    assert_eq!(kvitto(&ledger, &pargs).status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&portable).unwrap(), "mine");
    assert!(kvitto(&ledger, &[&pargs[..], &["--force"]].concat()).status.success());
    assert_eq!(std::fs::metadata(&portable).unwrap().permissions().mode() & 0o777, 0o600);
}

fn key_file(d: &tempfile::TempDir, key: &str) -> std::path::PathBuf {
    let p = d.path().join("log.vkey");
    std::fs::write(&p, format!("{key}\n")).unwrap();
    p
}

#[test]
fn erase_retention_and_requests_from_the_command_line() {
    let (_d, ledger) = new_ledger();
    let events = concat!(
        r#"{"type":"retention_rule_declared","controller":"kalejdo","register":"arendelista","trigger":"collected","duration":"P1M","occurred_at":"2025-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"data_collected","controller":"kalejdo","subject":"CLI-1","register":"arendelista","categories":["ticket"],"purpose":"support","legal_basis":"contract","source":"subject","occurred_at":"2025-02-01T00:00:00Z","details":{"text":"printer broken"}}"#,
        "\n",
        r#"{"type":"data_collected","controller":"kalejdo","subject":"CLI-2","register":"kundregister","categories":["contact"],"purpose":"delivery","legal_basis":"contract","source":"subject","details":{"email":"cli2@example.se"}}"#,
        "\n",
        r#"{"type":"rights_request_received","controller":"kalejdo","subject":"CLI-2","request_id":"r-1","right":"access","occurred_at":"2025-03-01T00:00:00Z"}"#,
        "\n",
    );
    let o = kvitto_stdin(&ledger, &["append", "-"], events.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A step for a request never received: exit 2, line and field named, nothing written.
    let before = state(&ledger);
    let bad = r#"{"type":"rights_request_fulfilled","controller":"kalejdo","subject":"CLI-2","request_id":"r-9"}"#;
    let o = kvitto_stdin(&ledger, &["append", "-"], bad.as_bytes());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("line 1: field request_id") && text(&o.stderr).contains("r-9"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(state(&ledger), before);
    // Requests: overdue, by how long.
    let o = kvitto(&ledger, &["requests", "--now", "2025-05-01", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!((line["request_id"].as_str(), line["overdue"].as_bool()), (Some("r-1"), Some(true)), "{line}");
    // Answered after its deadline: history says by how many days.
    let done = r#"{"type":"rights_request_fulfilled","controller":"kalejdo","subject":"CLI-2","request_id":"r-1","occurred_at":"2025-04-11T00:00:00Z"}"#;
    assert!(kvitto_stdin(&ledger, &["append", "-"], done.as_bytes()).status.success());
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "CLI-2"]);
    assert!(text(&o.stdout).contains("[late by 10 days]"), "{}", text(&o.stdout));
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "CLI-2", "--json"]);
    assert!(text(&o.stdout).contains(r#""late_by_days":10"#), "{}", text(&o.stdout));
    // Retention: the ticket list is overdue; the run erases it; a second run erases nothing.
    let o = kvitto(&ledger, &["retention", "plan", "--now", "2025-06-01"]);
    assert!(o.status.success() && text(&o.stdout).contains("overdue"), "{}", text(&o.stdout));
    let o = kvitto(&ledger, &["retention", "run", "--now", "2025-06-01"]);
    assert!(text(&o.stdout).contains("1 erased"), "{}", text(&o.stdout));
    let o = kvitto(&ledger, &["retention", "run", "--now", "2025-06-01"]);
    assert!(text(&o.stdout).contains("0 erased"), "{}", text(&o.stdout));
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "CLI-1", "--json"]);
    assert!(!text(&o.stdout).contains("printer broken") && text(&o.stdout).contains("<erased>"));
    // erase: done, then already done; unknown register and unknown customer are exit 2.
    let erase = |args: &[&str]| {
        let mut a = vec!["erase", "--controller", "kalejdo", "--reason", "Art 17"];
        a.extend_from_slice(args);
        kvitto(&ledger, &a)
    };
    let o = erase(&["--subject", "CLI-2"]);
    assert!(o.status.success() && text(&o.stdout).contains("data_erased recorded at seq"), "{}", text(&o.stderr));
    let o = erase(&["--subject", "CLI-2"]);
    assert!(o.status.success() && text(&o.stdout).contains("already erased"), "{}", text(&o.stdout));
    assert_eq!(erase(&["--subject", "CLI-1", "--register", "nope"]).status.code(), Some(2));
    assert_eq!(erase(&["--subject", "CLI-404"]).status.code(), Some(2));
    let o = kvitto(&ledger, &["history", "--controller", "kalejdo", "--subject", "CLI-2", "--json"]);
    assert!(!text(&o.stdout).contains("cli2@example.se") && !text(&o.stdout).contains("\"subject\":\"CLI-2\""));
    // A hold refuses it: exit 2, the hold named.
    let hold =
        r#"{"type":"legal_hold_placed","controller":"kalejdo","subject":"CLI-1","hold_id":"h-1","reason":"dispute"}"#;
    assert!(kvitto_stdin(&ledger, &["append", "-"], hold.as_bytes()).status.success());
    let o = erase(&["--subject", "CLI-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("legal hold h-1"), "{}", text(&o.stderr));
    assert!(state(&ledger).starts_with("ok:"));
}

/// Appends `kind` for subject `KZ-9` of kazoom through the library, with text built by the
/// stored rules: what a ledger written before the input rules holds.
fn append_stored(ledger: &Path, kind: kvitto_core::EventKind) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let l = kvitto::Ledger::open(ledger, kvitto::OpenOptions::default()).await.unwrap();
        let draft = kvitto::Draft {
            controller: kvitto::Id::new("kazoom").unwrap(),
            subject: Some(kvitto::ExternalRef::new("KZ-9").unwrap()),
            occurred_at: None,
            event_id: None,
            actor: None,
            details: None,
            kind,
        };
        l.append(draft).await.unwrap();
        l.close().await.expect("ledger closes cleanly");
    });
}

/// Untrusted text reaches the terminal escaped: a `reason` with an escape sequence, a carriage
/// return and a bidi override cannot erase or reorder what `history`, `log` or
/// `verify-bundle` show. `kvitto append` refuses such a reason now (the input rules), so the
/// event is one a ledger stored before them.
#[test]
fn no_terminal_injection() {
    let (d, ledger) = new_ledger();
    let ev = r#"{"type":"processing_restricted","controller":"kazoom","subject":"KZ-9","reason":"ok\u001b[2K\rall clear\u202eevil"}"#;
    let o = kvitto_stdin(&ledger, &["append", "-"], format!("{ev}\n").as_bytes());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 1: field reason: contains control character U+001B"), "{}", text(&o.stderr));
    let reason = kvitto_core::Text::stored("ok\u{1b}[2K\rall clear\u{202e}evil").unwrap();
    append_stored(&ledger, kvitto_core::EventKind::ProcessingRestricted { reason });
    kvitto(&ledger, &["checkpoint"]);
    let out = d.path().join("b.json");
    kvitto(&ledger, &["export", "--controller", "kazoom", "--subject", "KZ-9", "--out", out.to_str().unwrap()]);
    let key = text(&kvitto(&ledger, &["key"]).stdout).trim().to_string();
    let vb = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .arg("verify-bundle")
        .arg(&out)
        .args(["--key", &key])
        .output()
        .unwrap();
    for o in [
        kvitto(&ledger, &["history", "--controller", "kazoom", "--subject", "KZ-9"]),
        kvitto(&ledger, &["log", "--from", "0"]),
        kvitto(&ledger, &["history", "--controller", "kazoom", "--subject", "KZ-9", "--json"]),
        vb,
    ] {
        let t = text(&o.stdout);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            !t.contains('\u{1b}') && !t.contains('\r') && !t.contains('\u{202e}'),
            "raw control text printed: {t:?}"
        );
        assert!(t.contains("\\u001b") || t.contains("\\u202e"), "the escapes are visible: {t}");
    }
    // A bundle whose unknown field name is an escape sequence: the error quotes it escaped.
    let mut b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    b["events"][0]["\u{1b}[2J"] = 1.into();
    std::fs::write(&out, b.to_string()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .arg("verify-bundle")
        .arg(&out)
        .args(["--key", &key])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o.stderr).contains('\u{1b}') && text(&o.stderr).contains("unknown field"), "{}", text(&o.stderr));
}

/// `n` consent events, one per line, for customers `b-0…`; `event_id(i)` gives line i+1 an id.
fn consent_lines(n: usize, event_id: impl Fn(usize) -> Option<String>) -> String {
    (0..n)
        .map(|i| {
            let id = event_id(i).map(|id| format!(r#","event_id":"{id}""#)).unwrap_or_default();
            format!(r#"{{"type":"consent_given","controller":"kalejdo","subject":"b-{i}","purpose":"marketing"{id}}}"#)
                + "\n"
        })
        .collect()
}

const ID_X: &str = "0194312a-8b00-7000-8000-0000000000aa";

#[test]
fn large_inputs_are_checked_whole_then_appended_in_atomic_batches() {
    let (d, ledger) = new_ledger();
    let input = d.path().join("in.jsonl");
    let events = |l: &Path| state(l).split(' ').nth(1).unwrap().parse::<u64>().unwrap();

    // A bad last line: nothing is appended, though 2 batches would have gone in before it.
    std::fs::write(&input, consent_lines(25, |_| None) + "{\"type\":\"consent_given\"}\n").unwrap();
    let o = kvitto(&ledger, &["append", "--batch-size", "10", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 26: "), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    assert_eq!(events(&ledger), 0);

    // An event id repeated with other content in a later batch: refused before anything is written.
    let other = |i| match i {
        2 => Some(ID_X.to_string()),
        17 => Some(ID_X.to_string()),
        _ => None,
    };
    std::fs::write(&input, consent_lines(25, other)).unwrap();
    let o = kvitto(&ledger, &["append", "--batch-size", "10", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 18: field event_id: ") && text(&o.stderr).contains("repeats line 3"));
    assert_eq!(events(&ledger), 0);

    // The ledger refuses the second batch (an id already used for another event): the first
    // batch stands with its receipts, exit 4, and the error says where appending stopped.
    let o = kvitto_stdin(
        &ledger,
        &["append", "-"],
        format!(r#"{{"type":"objection_recorded","controller":"kalejdo","subject":"x","purpose":"marketing","event_id":"{ID_X}"}}"#)
            .as_bytes(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::write(&input, consent_lines(25, |i| (i == 14).then(|| ID_X.to_string()))).unwrap();
    let o = kvitto(&ledger, &["append", "--batch-size", "10", input.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert_eq!(text(&o.stdout).lines().count(), 10, "the first batch's receipts");
    assert!(err.contains("line 15: field event_id: "), "{err}");
    assert!(err.contains("the 10 events before line 11 were appended"), "{err}");
    assert_eq!(events(&ledger), 11);

    // Without --batch-size an input of up to 10,000 events is one batch: all or nothing.
    let o = kvitto(&ledger, &["append", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nothing appended"));
    assert_eq!(events(&ledger), 11);
    let o = kvitto(&ledger, &["append", "--batch-size", "0", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--batch-size"));
}

#[test]
fn a_file_larger_than_a_mebibyte_is_streamed_with_the_same_rules() {
    let (d, ledger) = new_ledger();
    let input = d.path().join("big.jsonl");
    // ≈ 1.2 MB: read line by line, twice, never whole.
    let body = consent_lines(12_000, |_| None);
    assert!(body.len() > 1 << 20);
    std::fs::write(&input, format!("\u{feff}{body}\r\n{{\"type\":\"consent_given\",\"controller\":\"k a\"}}\n"))
        .unwrap();
    let o = kvitto(&ledger, &["append", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 12002: field controller: "), "{}", text(&o.stderr));
    assert!(state(&ledger).starts_with("ok: 0 events"));
    std::fs::write(&input, format!("\u{feff}{}", body.replace('\n', "\r\n"))).unwrap();
    let o = kvitto(&ledger, &["append", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 12_000);
    assert!(state(&ledger).starts_with("ok: 12000 events"));
    // The bad-input corpus gives the same answers when each file is large enough to stream
    // (over the ledger its cases expect: good.jsonl appended first).
    let o = kvitto(&ledger, &["append", data("good.jsonl").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cases = std::fs::read_to_string(data("bad-input/cases.tsv")).unwrap();
    for row in cases.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, line, field) = (cols[0], cols[1], cols[2]);
        let mut bytes = std::fs::read(data("bad-input").join(file)).unwrap();
        if bytes.starts_with(b"{\n") || bytes.starts_with(b"{\r\n") {
            continue; // a pretty-printed object is read whole only (files up to 1 MiB)
        }
        bytes.extend(std::iter::repeat_n(b'\n', (1 << 20) + 1));
        std::fs::write(&input, &bytes).unwrap();
        let o = kvitto(&ledger, &["append", input.to_str().unwrap()]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        if line != "-" {
            assert!(err.contains(&format!("line {line}: ")), "{file}: {err:?} does not name line {line}");
        }
        if field != "-" {
            assert!(err.contains(&format!("field {field}: ")), "{file}: {err:?} does not name field {field}");
        }
    }
    assert!(state(&ledger).starts_with("ok: 12003 events"));
}

#[test]
fn access_report_labels_purposes_by_their_basis_and_names_undeclared_objections() {
    let (_d, ledger) = new_ledger();
    let input = concat!(
        r#"{"type":"purpose_declared","controller":"kalejdo","purpose":"marketing","description":"Nyhetsbrev","legal_basis":"legitimate_interests","register":"kundregister"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kalejdo","purpose":"offers","description":"Erbjudanden","legal_basis":"consent","register":"kundregister"}"#,
        "\n",
        r#"{"type":"data_collected","controller":"kalejdo","subject":"c-1","register":"kundregister","categories":["contact"],"purpose":"marketing","legal_basis":"legitimate_interests","source":"subject"}"#,
        "\n",
        r#"{"type":"consent_given","controller":"kalejdo","subject":"c-1","purpose":"offers"}"#,
        "\n",
        r#"{"type":"objection_recorded","controller":"kalejdo","subject":"c-1","purpose":"marketing"}"#,
        "\n",
        r#"{"type":"objection_recorded","controller":"kalejdo","subject":"c-1","purpose":"profiling"}"#,
        "\n",
    );
    let o = kvitto_stdin(&ledger, &["append", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["report", "access", "--controller", "kalejdo", "--subject", "c-1"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line = |p: &str| out.lines().find(|l| l.trim_start().starts_with(&format!("{p} "))).unwrap_or_default();
    assert!(line("marketing").contains("legitimate_interests; the subject objected (Art 21) — Nyhetsbrev"), "{out}");
    assert!(!line("marketing").contains("consent"), "{out}");
    assert!(line("offers").contains("consent; consent granted — Erbjudanden"), "{out}");
    assert!(
        line("profiling").contains("not declared by kalejdo and nothing processed for it; the subject objected"),
        "{out}"
    );
    assert!(out.contains("(h) automated decision-making / profiling: none recorded"), "{out}");
    // `consent` labels the same way: the basis, and an objection on legitimate interests as
    // an Art 21 objection, not as a consent state.
    let o = kvitto(&ledger, &["consent", "--controller", "kalejdo", "--subject", "c-1"]);
    let out = text(&o.stdout);
    let row =
        |p: &str| out.lines().find(|l| l.trim_start().starts_with(&format!("{p} "))).unwrap_or_default().to_string();
    let words = |l: String, n: usize| l.split_whitespace().take(n).collect::<Vec<_>>().join(" ");
    assert_eq!(words(row("marketing"), 4), "marketing legitimate_interests objected (Art", "{out}");
    assert_eq!(words(row("offers"), 3), "offers consent granted", "{out}");
    assert_eq!(words(row("profiling"), 4), "profiling not declared objected", "{out}");
    let o = kvitto(&ledger, &["consent", "--controller", "kalejdo", "--subject", "c-1", "--json"]);
    let bases: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["legal_basis"].clone())
        .collect();
    assert_eq!(
        bases,
        [serde_json::json!("legitimate_interests"), serde_json::json!("consent"), serde_json::Value::Null]
    );
}

#[test]
fn consent_collapses_purposes_with_nothing_recorded_into_one_line() {
    let (_d, ledger) = new_ledger();
    let declare = |p: &str| {
        format!(
            r#"{{"type":"purpose_declared","controller":"kalejdo","purpose":"{p}","description":"{p}","legal_basis":"consent","register":"kundregister"}}"#
        ) + "\n"
    };
    let input = declare("news")
        + &declare("offers")
        + &declare("surveys")
        + r#"{"type":"consent_given","controller":"kalejdo","subject":"c-2","purpose":"news"}"#;
    let o = kvitto_stdin(&ledger, &["append", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["consent", "--controller", "kalejdo", "--subject", "c-2"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.lines().any(|l| l.trim_start().starts_with("news") && l.contains("granted")), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("none")).count(), 0, "{out}");
    assert!(out.contains("nothing recorded for: offers, surveys"), "{out}");
}

#[test]
fn export_portable_presents_rectified_details_as_current_and_the_old_as_superseded() {
    let (_d, ledger) = new_ledger();
    let input = concat!(
        r#"{"type":"data_collected","controller":"kazoom","subject":"KZ-7","register":"kunderegister","categories":["name","address"],"purpose":"contract-delivery","legal_basis":"contract","source":"subject","occurred_at":"2026-01-05T10:00:00Z","details":{"name":"Mette Jensen","address":"Vestergade 1"}}"#,
        "\n",
        r#"{"type":"data_rectified","controller":"kazoom","subject":"KZ-7","register":"kunderegister","categories":["address"],"occurred_at":"2026-03-01T10:00:00Z","details":{"address":"Nørregade 2"}}"#,
        "\n",
    );
    let o = kvitto_stdin(&ledger, &["append", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["export-portable", "--controller", "kazoom", "--subject", "KZ-7"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["format"], "kvitto-portable/2");
    let item = &e["items"][0];
    assert_eq!(e["items"].as_array().unwrap().len(), 1, "{e}");
    assert_eq!(item["data"], serde_json::json!({"name": "Mette Jensen", "address": "Nørregade 2"}));
    assert_eq!(item["rectified_by"], serde_json::json!([1]));
    assert_eq!(item["superseded"], serde_json::json!([{"field": "address", "value": "Vestergade 1", "by": 1}]));
    // As of before the correction, the export shows what was current then.
    let o = kvitto(&ledger, &["export-portable", "--controller", "kazoom", "--subject", "KZ-7", "--at", "2026-02-01"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(before["items"][0]["data"]["address"], "Vestergade 1", "{before}");
    assert_eq!(before["items"][0]["superseded"], serde_json::json!([]));
    // History marks the collected address as superseded by the rectification.
    let o = kvitto(&ledger, &["history", "--controller", "kazoom", "--subject", "KZ-7"]);
    let out = text(&o.stdout);
    let collected = out.lines().find(|l| l.contains("data_collected")).unwrap_or_default();
    assert!(collected.contains("[address superseded by seq 1]"), "{out}");
    let o = kvitto(&ledger, &["history", "--controller", "kazoom", "--subject", "KZ-7", "--json"]);
    let first: serde_json::Value = serde_json::from_str(text(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["superseded"], serde_json::json!([{"field": "address", "by": 1}]));
}

#[test]
fn ledger_is_refused_where_no_ledger_is_used_but_the_environment_variable_is_not() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["--ledger", "somewhere", "demo", "--customers", "1"][..],
        &["demo", "--ledger", "somewhere", "--customers", "1"],
        &["--ledger", "somewhere", "verify-bundle", "b.json", "--trust-embedded-key"],
        &["verify-proof", "p.json", "--key", "k", "--ledger", "somewhere"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_kvitto")).current_dir(d.path()).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("--ledger is not used here"), "{args:?}: {}", text(&o.stderr));
        assert!(!d.path().join("kvitto-demo").exists(), "{args:?}: nothing was built");
    }
    // An exported KVITTO_LEDGER does not stop the offline commands.
    let o = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .current_dir(d.path())
        .env("KVITTO_LEDGER", "somewhere")
        .args(["verify-bundle", "missing.json", "--trust-embedded-key"])
        .output()
        .unwrap();
    assert!(!text(&o.stderr).contains("--ledger is not used here"), "{}", text(&o.stderr));
    // Their help shows no --ledger; the commands that open a ledger still do.
    for (cmd, shown) in
        [("demo", false), ("verify-bundle", false), ("verify-proof", false), ("verify", true), ("history", true)]
    {
        let o = Command::new(env!("CARGO_BIN_EXE_kvitto")).args([cmd, "--help"]).output().unwrap();
        assert_eq!(text(&o.stdout).contains("--ledger"), shown, "{cmd} --help: {}", text(&o.stdout));
    }
}

/// Seed 000/001 (Kalejdo) in short: who the controller is, purposes with their data subjects,
/// a cloud processor whose country is not stated, a US recipient without safeguard, a
/// processor without agreement, a register without retention rule; one customer collected,
/// rectified, restricted, held, partly erased, with a request answered late.
const KALEJDO_REPORTS: &str = concat!(
    r#"{"type":"controller_declared","controller":"kalejdo","legal_name":"Kalejdo Bredband AB","contact":"Kalejdo Kundtjänst, 0771 19 17 00","dpo_contact":"Dataskyddsombud (e-post på kalejdo.tv)","authority":"Integritetsskyddsmyndigheten (IMY)","authority_country":"SE","occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"purpose_declared","controller":"kalejdo","purpose":"service-delivery","description":"Leverans av Öppen Stadsnäts-TV","legal_basis":"contract","register":"kundregister","data_subjects":["customers"],"occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"purpose_declared","controller":"kalejdo","purpose":"app-login","description":"Inloggning i appen Kalejdo Smarta Hem","legal_basis":"contract","register":"appdatabas","occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"processor_registered","controller":"kalejdo","processor":"app-cloud","name":"Molntjänst (land anges inte)","country":"ZZ","role":"processor","dpa_ref":"Avtal om hantering av personuppgifter","occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"processor_registered","controller":"kalejdo","processor":"postnord","name":"Logistikpartner","country":"SE","role":"processor","occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"processor_registered","controller":"kalejdo","processor":"us-crm","name":"CRM i USA","country":"US","role":"recipient","occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"retention_rule_declared","controller":"kalejdo","register":"kundregister","trigger":"relationship_ended","duration":"P0D","occurred_at":"2026-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"type":"data_collected","controller":"kalejdo","subject":"KAL-1","register":"kundregister","categories":["name","address"],"purpose":"service-delivery","legal_basis":"contract","source":"subject","occurred_at":"2026-01-05T10:00:00Z","details":{"name":"Åsa Öberg","address":"<b>Storgatan 1</b>"}}"#,
    "\n",
    r#"{"type":"data_collected","controller":"kalejdo","subject":"KAL-1","register":"appdatabas","categories":["login-account"],"purpose":"app-login","legal_basis":"contract","source":"subject","occurred_at":"2026-01-06T10:00:00Z","details":{"username":"asa@example.org"}}"#,
    "\n",
    r#"{"type":"data_shared","controller":"kalejdo","subject":"KAL-1","processor":"app-cloud","categories":["login-account"],"purpose":"app-login","occurred_at":"2026-01-06T10:00:01Z"}"#,
    "\n",
    r#"{"type":"data_shared","controller":"kalejdo","subject":"KAL-1","processor":"us-crm","categories":["name"],"purpose":"service-delivery","occurred_at":"2026-01-07T10:00:00Z"}"#,
    "\n",
    r#"{"type":"data_shared","controller":"kalejdo","subject":"KAL-1","processor":"unknown-agency","categories":["name"],"purpose":"service-delivery","occurred_at":"2026-01-07T11:00:00Z"}"#,
    "\n",
    r#"{"type":"rights_request_received","controller":"kalejdo","subject":"KAL-1","request_id":"r-1","right":"rectification","occurred_at":"2026-02-01T10:00:00Z"}"#,
    "\n",
    r#"{"type":"processing_restricted","controller":"kalejdo","subject":"KAL-1","reason":"Art 18(1)(a)","occurred_at":"2026-02-02T10:00:00Z"}"#,
    "\n",
    r#"{"type":"data_rectified","controller":"kalejdo","subject":"KAL-1","register":"kundregister","categories":["address"],"occurred_at":"2026-03-10T10:00:00Z","details":{"address":"Teknikringen 4"}}"#,
    "\n",
    r#"{"type":"restriction_lifted","controller":"kalejdo","subject":"KAL-1","reason":"corrected","occurred_at":"2026-03-10T10:00:01Z"}"#,
    "\n",
    r#"{"type":"rights_request_fulfilled","controller":"kalejdo","subject":"KAL-1","request_id":"r-1","occurred_at":"2026-03-10T10:00:02Z"}"#,
    "\n",
    r#"{"type":"legal_hold_placed","controller":"kalejdo","subject":"KAL-1","hold_id":"h-1","reason":"tvist","occurred_at":"2026-04-01T10:00:00Z"}"#,
    "\n",
    r#"{"type":"legal_hold_released","controller":"kalejdo","subject":"KAL-1","hold_id":"h-1","occurred_at":"2026-05-01T10:00:00Z"}"#,
    "\n",
    r#"{"type":"data_erased","controller":"kalejdo","subject":"KAL-1","register":"appdatabas","reason":"Art 17, appen","occurred_at":"2026-06-01T10:00:00Z"}"#,
    "\n",
);

#[test]
fn access_report_names_the_declared_controller_and_authority_and_copies_the_data_held() {
    let (d, ledger) = new_ledger();
    let o = kvitto_stdin(&ledger, &["append", "-"], KALEJDO_REPORTS.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let who = ["--controller", "kalejdo", "--subject", "KAL-1"];
    let o = kvitto(&ledger, &[&["report", "access"][..], &who].concat());
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        out.contains("controller: Kalejdo Bredband AB (kalejdo), organisation number not stated  [seq 0]"),
        "{out}"
    );
    assert!(out.contains("data protection officer: Dataskyddsombud (e-post på kalejdo.tv)"), "{out}");
    assert!(out.contains("supervisory authority (Art 77): Integritetsskyddsmyndigheten (IMY) (SE)"), "{out}");
    assert!(!out.contains("e.g. IMY"), "no generic authority: {out}");
    assert!(out.contains("Molntjänst (land anges inte) (country not stated)"), "{out}");
    assert!(out.contains("(not registered) (country unknown)"), "{out}");
    assert!(out.contains("restricted at 2026-02-02T10:00:00Z  [seq 13]"), "{out}");
    assert!(out.contains("restriction lifted at 2026-03-10T10:00:01Z  [seq 15]"), "{out}");
    assert!(
        out.contains("legal hold h-1 placed 2026-04-01T10:00:00Z, released 2026-05-01T10:00:00Z  [seqs 17,18]"),
        "{out}"
    );
    assert!(out.contains("request r-1 (rectification): fulfilled_late"), "{out}");
    // Art 15(3): the rectified address is current, the old one superseded; the erased
    // register's data is shown as erased.
    assert!(out.contains("Art 15(3) copy of the personal data held (2 collections)"), "{out}");
    let copy = out.split("Art 15(3)").nth(1).unwrap();
    assert!(copy.contains(r#"seq 7 kundregister name,address (service-delivery) from subject: {"address":"Teknikringen 4","name":"Åsa Öberg"}"#), "{copy}");
    assert!(copy.contains(r#"address was "<b>Storgatan 1</b>" — superseded by seq 14"#), "{copy}");
    assert!(copy.contains("seq 8 appdatabas login-account (app-login) from subject: [erased]"), "{copy}");
    assert!(!copy.contains("asa@example.org"), "erased data is not shown: {copy}");

    let o = kvitto(&ledger, &[&["report", "access"][..], &who, &["--json"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["format"], "kvitto-access/1");
    assert_eq!(j["controller_identity"]["legal_name"], "Kalejdo Bredband AB");
    assert_eq!(j["controller_identity"]["authority_country"], "SE");
    assert_eq!(j["controller_identity"]["organisation_number"], serde_json::Value::Null);
    assert!(j["rights"].as_array().unwrap().last().unwrap().as_str().unwrap().contains("Integritetsskyddsmyndigheten"));
    assert_eq!(j["copy"][0]["data"]["address"], "Teknikringen 4");
    assert_eq!(j["copy"][0]["superseded"][0]["value"], "<b>Storgatan 1</b>");
    assert_eq!(j["copy"][1]["erased"], true);
    assert_eq!(j["copy"][1]["source"], "subject");
    assert_eq!(j["holds"][0]["in_force"], false);
    assert_eq!(j["restrictions"].as_array().unwrap().len(), 2);
    let cloud = j["recipients"].as_array().unwrap().iter().find(|r| r["processor"] == "app-cloud").unwrap();
    assert_eq!(cloud["third_country"], serde_json::Value::Null);
    assert_eq!(cloud["country"], "ZZ");

    // HTML: one self-contained page, every value escaped; an existing file is refused.
    let page = d.path().join("kal-1.html");
    let o = kvitto(&ledger, &[&["report", "access"][..], &who, &["--html", page.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    for needle in [
        "Kalejdo Bredband AB",
        "Integritetsskyddsmyndigheten (IMY) (SE)",
        "Teknikringen 4",
        "&lt;b&gt;Storgatan 1&lt;/b&gt;",
        "corrected by seq 14",
        "erased",
    ] {
        assert!(html.contains(needle), "{needle} missing from the page");
    }
    assert!(!html.contains("<b>Storgatan"), "unescaped value in the page");
    for asset in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(asset), "the page must be self-contained: {asset}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&page).unwrap().permissions().mode() & 0o077, 0, "owner-only file");
    }
    let o = kvitto(&ledger, &[&["report", "access"][..], &who, &["--html", page.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("exists; pass --force"), "{}", text(&o.stderr));
    let o =
        kvitto(&ledger, &[&["report", "access"][..], &who, &["--html", page.to_str().unwrap(), "--force"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn processing_record_names_the_controller_its_data_subjects_and_every_gap() {
    let (d, ledger) = new_ledger();
    let o = kvitto_stdin(&ledger, &["append", "-"], KALEJDO_REPORTS.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["report", "processing", "--controller", "kalejdo"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains("controller: Kalejdo Bredband AB (kalejdo)"), "{out}");
    assert!(out.contains("supervisory authority: Integritetsskyddsmyndigheten (IMY) (SE)"), "{out}");
    assert!(out.contains("data subjects: customers"), "{out}");
    assert!(out.contains("gaps (6)"), "{out}");
    let gap = |kind: &str, concerns: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(kind) && l.contains(concerns))
            .unwrap_or_else(|| panic!("no {kind} gap for {concerns}: {out}"))
    };
    assert!(gap("purpose_without_data_subjects", "app-login").contains("[seqs 2]"), "{out}");
    assert!(gap("recipient_not_registered", "unknown-agency").contains("[seqs 11]"), "{out}");
    assert!(gap("processor_without_dpa", "postnord").contains("[seqs 4]"), "{out}");
    assert!(gap("country_not_stated", "app-cloud").contains("[seqs 3]"), "{out}");
    assert!(gap("missing_safeguard", "us-crm").contains("(US)"), "{out}");
    assert!(gap("register_without_retention", "appdatabas").contains("[seqs 2]"), "{out}");
    let o = kvitto(&ledger, &["report", "processing", "--controller", "kalejdo", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["controller_identity"]["dpo_contact"], "Dataskyddsombud (e-post på kalejdo.tv)");
    assert_eq!(j["gaps"].as_array().unwrap().len(), 6);
    assert_eq!(j["purposes"][1]["data_subjects"], serde_json::json!(["customers"]));
    let cloud = j["recipients"].as_array().unwrap().iter().find(|r| r["processor"] == "app-cloud").unwrap();
    assert_eq!(cloud["third_country"], serde_json::Value::Null);
    assert_eq!(cloud["missing_safeguard"], false);
    let page = d.path().join("art30.html");
    let o = kvitto(&ledger, &["report", "processing", "--controller", "kalejdo", "--html", page.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for needle in [
        "Record of processing activities — Kalejdo Bredband AB",
        "register_without_retention",
        "not stated",
        "none declared",
    ] {
        assert!(html.contains(needle), "{needle} missing from the page");
    }
    assert!(!html.contains("src=") && !html.contains("<script"), "self-contained");
}

#[test]
fn reports_without_a_controller_declaration_say_so_instead_of_guessing_an_authority() {
    let (_d, ledger) = new_ledger();
    let input = concat!(
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"news","description":"Nyheder","legal_basis":"consent","register":"kunderegister","data_subjects":["customers"]}"#,
        "\n",
        r#"{"type":"retention_rule_declared","controller":"kazoom","register":"kunderegister","trigger":"relationship_ended","duration":"P0D"}"#,
        "\n",
        r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-1","purpose":"news"}"#,
        "\n",
    );
    let o = kvitto_stdin(&ledger, &["append", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["report", "access", "--controller", "kazoom", "--subject", "KZ-1"]);
    let out = text(&o.stdout);
    assert!(out.contains("controller kazoom: NO controller_declared recorded"), "{out}");
    assert!(out.contains("the controller has declared none"), "{out}");
    let o = kvitto(&ledger, &["report", "processing", "--controller", "kazoom"]);
    let out = text(&o.stdout);
    assert!(out.contains("gaps (1)") && out.contains("no_controller_declaration"), "{out}");
}

/// The consent records of `export-consent --format dpv` against the JSON Schema written from
/// the DPV guide for ISO/IEC TS 27560 (docs/schema/consent-record-dpv.schema.json).
fn dpv_validator() -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema/consent-record-dpv.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
}

#[test]
fn export_consent_writes_iso_27560_records_in_dpv_that_cite_seq_and_hash() {
    let (d, ledger) = new_ledger();
    let input = concat!(
        r#"{"type":"controller_declared","controller":"kazoom","legal_name":"Kazoom A/S","organisation_number":"CVR 40700218","contact":"kundeservice@kazoom.dk","authority":"Datatilsynet","authority_country":"DK","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"notice_published","controller":"kazoom","version":"2022-01-08","text_hash":"0429adb8f8de166063b76c39b013ceebf858249e4bd08ae99dc041664f95606f","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"product-news","description":"Nyheder om Kazooms produkter","legal_basis":"consent","register":"kunderegister","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"market-research","description":"Alder og køn","legal_basis":"consent","register":"analyse","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-1","purpose":"product-news","notice_version":"2022-01-08","channel":"web","occurred_at":"2026-01-05T10:00:00Z"}"#,
        "\n",
        r#"{"type":"consent_withdrawn","controller":"kazoom","subject":"KZ-1","purpose":"product-news","channel":"email","occurred_at":"2026-03-01T09:00:00Z"}"#,
        "\n",
        r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-1","purpose":"product-news","occurred_at":"2026-06-01T09:00:00Z"}"#,
        "\n",
        r#"{"type":"objection_recorded","controller":"kazoom","subject":"KZ-1","purpose":"market-research","occurred_at":"2026-02-01T09:00:00Z"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"offers","description":"Tilbud","legal_basis":"legitimate_interests","register":"kunderegister","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"news-sms","description":"Nyheder pr. sms","legal_basis":"consent","register":"kunderegister","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"consent_withdrawn","controller":"kazoom","subject":"KZ-1","purpose":"offers","occurred_at":"2026-02-02T09:00:00Z"}"#,
        "\n",
        r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-1","purpose":"news-sms","notice_version":"2022-01-08","occurred_at":"2026-02-03T09:00:00Z"}"#,
        "\n",
        r#"{"type":"objection_recorded","controller":"kazoom","subject":"KZ-1","purpose":"news","occurred_at":"2026-04-01T09:00:00Z"}"#,
        "\n",
    );
    let o = kvitto_stdin(&ledger, &["append", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let log = kvitto(&ledger, &["log", "--json"]);
    let hashes: Vec<String> = text(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["hash"].as_str().unwrap().to_string())
        .collect();
    let who = ["--controller", "kazoom", "--subject", "KZ-1"];
    let o = kvitto(&ledger, &[&["export-consent"][..], &who, &["--format", "dpv"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let validator = dpv_validator();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "not a valid DPV-27560 consent record document: {errors:#?}");
    assert_eq!(doc["@context"]["dpv"], "https://w3id.org/dpv#");
    let records = doc["@graph"].as_array().unwrap();
    let ids: Vec<&str> =
        records.iter().map(|r| r["dct:identifier"].as_str().unwrap().rsplit('/').next().unwrap()).collect();
    // One record per consent purpose; the opt-out of `offers` (legitimate interests) is an
    // objection, not a consent record.
    assert_eq!(ids, ["market-research", "news-sms", "product-news"], "one record per consent purpose");
    // An objection to `news` covers `news-sms` (as `consent` and `may-process` say): withdrawn.
    let sms = &records[1];
    let kinds: Vec<&str> =
        sms["dpv:hasConsentStatus"].as_array().unwrap().iter().map(|s| s["@type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dpv:ConsentGiven", "dpv:ConsentWithdrawn"]);
    assert_eq!(sms["dpv:hasConsentStatus"][1]["kvitto:viaObjectionTo"], "news");
    assert_eq!(sms["kvitto:currentStatus"], "dpv:ConsentWithdrawn");
    let o = kvitto(&ledger, &[&["may-process"][..], &who, &["--purpose", "news-sms"]].concat());
    assert_eq!(o.status.code(), Some(1), "may-process agrees: {}", text(&o.stdout));
    let news = records.iter().find(|r| r["dct:identifier"].as_str().unwrap().ends_with("/product-news")).unwrap();
    assert_eq!(news["dct:conformsTo"], "https://w3id.org/dpv/schema/dpv-27560#record");
    assert_eq!(news["dpv:hasDataSubject"]["dct:identifier"], "KZ-1");
    assert_eq!(news["dpv:hasEntity"][0]["dpv:hasName"], "Kazoom A/S");
    assert_eq!(news["dpv:hasJurisdiction"]["@id"], "loc:DK");
    // The newest grant (seq 6) recorded no notice: the one in force is named, marked so.
    assert_eq!(news["dpv:hasNotice"]["dct:identifier"], "2022-01-08");
    assert_eq!(news["dpv:hasNotice"]["kvitto:recordedWithConsent"], false);
    assert_eq!(news["dpv:hasProcess"][0]["dpv:hasLegalBasis"]["@id"], "dpv:Consent");
    let steps = news["dpv:hasConsentStatus"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["@type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dpv:ConsentGiven", "dpv:ConsentWithdrawn", "dpv:RenewedConsentGiven"]);
    let seqs: Vec<u64> = steps.iter().map(|s| s["kvitto:seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5, 6]);
    for s in steps {
        let seq = s["kvitto:seq"].as_u64().unwrap() as usize;
        assert_eq!(s["kvitto:eventHash"], hashes[seq].as_str(), "each event cites the hash of its seq");
    }
    assert_eq!(steps[0]["dpv:isIndicatedAtTime"], "2026-01-05T10:00:00Z");
    assert_eq!(steps[0]["dpv:hasIndicationMethod"], "web");
    assert_eq!(news["kvitto:currentStatus"], "dpv:RenewedConsentGiven");
    // An objection with no consent before it is a refusal.
    let research =
        records.iter().find(|r| r["dct:identifier"].as_str().unwrap().ends_with("/market-research")).unwrap();
    assert_eq!(research["dpv:hasConsentStatus"][0]["@type"], "dpv:ConsentRefused");
    assert_eq!(research["dpv:hasNotice"]["kvitto:recordedWithConsent"], false, "the notice in force, marked as such");

    // As of a time before the withdrawal: one event; the validator rejects a wrong status.
    let o = kvitto(&ledger, &[&["export-consent"][..], &who, &["--at", "2026-02-15"]].concat());
    let mut early: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let news = early["@graph"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dct:identifier"].as_str().unwrap().ends_with("/product-news"))
        .unwrap();
    assert_eq!(news["dpv:hasConsentStatus"].as_array().unwrap().len(), 1);
    early["@graph"][0]["dpv:hasConsentStatus"][0]["@type"] = "dpv:ConsentTerminated".into();
    assert!(!validator.is_valid(&early), "the schema rejects a status DPV does not define");

    // --out writes the file; an unknown customer, or one without consent events, is refused.
    let out = d.path().join("kz-1.jsonld");
    let o = kvitto(&ledger, &[&["export-consent"][..], &who, &["--out", out.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(validator.is_valid(&serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()));
    let o = kvitto(&ledger, &["export-consent", "--controller", "kazoom", "--subject", "KZ-404"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // Before the customer's first event: rule 1's error, as for consent and may-process.
    let o = kvitto(&ledger, &[&["export-consent"][..], &who, &["--at", "2026-01-02"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no events for this subject under controller kazoom as of"),
        "{}",
        text(&o.stderr)
    );
    // A customer with events but no consent mark has no consent record to export.
    let collected = r#"{"type":"data_collected","controller":"kazoom","subject":"KZ-2","register":"kunderegister","categories":["name"],"purpose":"product-news","legal_basis":"consent","source":"subject","occurred_at":"2026-01-06T10:00:00Z"}"#;
    let o = kvitto_stdin(&ledger, &["append", "-"], collected.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kvitto(&ledger, &["export-consent", "--controller", "kazoom", "--subject", "KZ-2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no consent given, withdrawn or refused is recorded"), "{}", text(&o.stderr));
}

/// The HTML access report labels what the customer said by the purpose's basis, as the CLI
/// does: an opt-out of a contract purpose is not a "withdrawn consent".
#[test]
fn html_access_report_labels_opt_outs_and_objections_by_basis() {
    let (d, ledger) = new_ledger();
    let input = concat!(
        r#"{"type":"controller_declared","controller":"kazoom","legal_name":"Kazoom A/S","authority":"Datatilsynet","authority_country":"DK","occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"operations-info","description":"Servicemeddelelser","legal_basis":"contract","register":"kunderegister","data_subjects":["customers"],"occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"purpose_declared","controller":"kazoom","purpose":"ad-suppression","description":"Suppression-lister","legal_basis":"legitimate_interests","register":"kunderegister","data_subjects":["customers"],"occurred_at":"2026-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"type":"data_collected","controller":"kazoom","subject":"KZ-9","register":"kunderegister","categories":["contact"],"purpose":"operations-info","legal_basis":"contract","source":"subject","occurred_at":"2026-01-05T10:00:00Z"}"#,
        "\n",
        r#"{"type":"consent_withdrawn","controller":"kazoom","subject":"KZ-9","purpose":"operations-info","occurred_at":"2026-02-01T10:00:00Z"}"#,
        "\n",
        r#"{"type":"objection_recorded","controller":"kazoom","subject":"KZ-9","purpose":"ad-suppression","occurred_at":"2026-02-02T10:00:00Z"}"#,
        "\n",
    );
    let o = kvitto_stdin(&ledger, &["append", "-"], input.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = d.path().join("kz-9.html");
    let who = ["--controller", "kazoom", "--subject", "KZ-9"];
    let o = kvitto(&ledger, &[&["report", "access"][..], &who, &["--html", page.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for needle in
        ["the subject opted out", "the subject objected (Art 21)", "<td>opted out</td>", "<td>objected (Art 21)</td>"]
    {
        assert!(html.contains(needle), "{needle} missing from the page:\n{html}");
    }
    for wrong in ["consent withdrawn", "<td>withdrawn</td>", "<td>objected</td>", "seqs </span>"] {
        assert!(!html.contains(wrong), "{wrong} in the page:\n{html}");
    }
    // The CLI says the same.
    let o = kvitto(&ledger, &[&["report", "access"][..], &who].concat());
    let out = text(&o.stdout);
    assert!(out.contains("contract; the subject opted out"), "{out}");
    assert!(out.contains("legitimate_interests; the subject objected (Art 21)"), "{out}");
}
