//! `kvitto serve` and `kvitto token` as a process: tokens made, listed and revoked from the
//! command line; SIGTERM in the middle of a load stops the server gracefully — every
//! acknowledged event is in the ledger at its receipt's seq, every request is there whole
//! or not at all, and the ledger verifies.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn kvitto(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_kvitto")).arg("--ledger").arg(dir).args(args).output()?)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn tokens_from_the_command_line() -> Result {
    let dir = tempfile::tempdir()?;
    let ledger = dir.path().join("l");
    assert!(kvitto(&ledger, &["init", "--origin", "kalejdo.example/ledger"])?.status.success());
    let made =
        kvitto(&ledger, &["token", "create", "--controller", "kalejdo", "--scope", "append,read", "--expires", "30d"])?;
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let token = stdout(&made);
    assert!(token.starts_with("kvitto_") && token.len() == 7 + 12 + 1 + 43, "{token}");
    let id = &token[7..19];
    let listed = stdout(&kvitto(&ledger, &["token", "list", "--json"])?);
    let row: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(row["id"], id);
    assert_eq!(row["controller"], "kalejdo");
    assert_eq!(row["scopes"], serde_json::json!(["append", "read"]));
    assert_eq!(row["status"], "active");
    assert!(!listed.contains(&token[20..]), "list never shows the secret");
    let table = stdout(&kvitto(&ledger, &["token", "list"])?);
    assert!(table.contains(id) && table.contains("active"), "{table}");
    assert_eq!(stdout(&kvitto(&ledger, &["token", "revoke", id])?), format!("revoked token {id}"));
    let row: serde_json::Value = serde_json::from_str(&stdout(&kvitto(&ledger, &["token", "list", "--json"])?))?;
    assert_eq!(row["status"], "revoked");
    let bad = kvitto(&ledger, &["token", "create", "--controller", "kalejdo", "--scope", "write"])?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope \"write\""));
    let unknown = kvitto(&ledger, &["token", "revoke", "000000000000"])?;
    assert_eq!(unknown.status.code(), Some(2));
    Ok(())
}

/// Starts `kvitto serve` on an ephemeral loopback port; returns it, its address and its stderr.
fn start_server(ledger: &Path) -> Result<(std::process::Child, String, BufReader<std::process::ChildStderr>)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .arg("--ledger")
        .arg(ledger)
        .args(["serve", "--listen", "127.0.0.1:0", "--checkpoint-every", "0"])
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            return Err("kvitto serve exited before listening".into());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default().to_string();
            return Ok((child, addr, stderr));
        }
    }
}

fn terminate(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?.success());
    Ok(child.wait()?)
}

/// The Python example of the README appends and asks may-process over HTTP.
#[test]
fn the_python_client_example_appends_and_asks() -> Result {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: python3 is required");
        eprintln!("skipped: python3 is not installed");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let ledger = dir.path().join("l");
    assert!(kvitto(&ledger, &["init", "--origin", "kazoom.example/ledger"])?.status.success());
    let token = stdout(&kvitto(&ledger, &["token", "create", "--controller", "kazoom", "--scope", "append,read"])?);
    let (mut child, addr, _stderr) = start_server(&ledger)?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/http/client.py");
    let out = Command::new("python3")
        .arg(&example)
        .args(["--url", &format!("http://{addr}"), "--token", &token, "--subject", "KZ-77"])
        .output()?;
    let status = terminate(&mut child)?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "declarations: 15 events, seqs 0..14");
    assert!(lines[1].starts_with("refused as expected: HTTP 400 bad_request: line 1: field purpose: "), "{}", lines[1]);
    assert!(lines[2].starts_with("consent_given: seq 15, hash "), "{}", lines[2]);
    assert!(lines[3].starts_with("may-process product-news: allowed=true (seq 15): "), "{}", lines[3]);
    assert!(lines[4].starts_with("after withdrawal: allowed=false (seq 16): "), "{}", lines[4]);
    Ok(())
}

/// One append request of a client: its event ids and, when answered 200, their receipts' seqs.
struct Sent {
    ids: Vec<String>,
    acked: Option<Vec<u64>>,
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_event_and_writes_no_half_request() -> Result {
    let dir = tempfile::tempdir()?;
    let ledger = dir.path().join("l");
    assert!(kvitto(&ledger, &["init", "--origin", "kalejdo.example/ledger"])?.status.success());
    let token = stdout(&kvitto(&ledger, &["token", "create", "--controller", "kalejdo", "--scope", "append"])?);
    let (mut child, addr, mut stderr) = start_server(&ledger)?;
    let url = format!("http://{addr}/v1/events");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..16u64)
        .map(|c| {
            let (url, token, stop, answered) = (url.clone(), token.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into();
                let mut sent = Vec::new();
                for k in 0u64.. {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let ids: Vec<String> =
                        (0..1 + k % 5).map(|i| format!("00000000-0000-4000-8000-{:04x}{:08x}", c, k * 8 + i)).collect();
                    let body: Vec<String> = ids
                        .iter()
                        .map(|id| {
                            format!(
                                r#"{{"type":"consent_given","controller":"kalejdo","subject":"KAL-{c}-{k}","purpose":"marketing","event_id":"{id}"}}"#
                            )
                        })
                        .collect();
                    let reply = agent
                        .post(&url)
                        .header("Authorization", &format!("Bearer {token}"))
                        .send(body.join("\n"))
                        .ok()
                        .filter(|r| r.status() == 200)
                        .and_then(|mut r| r.body_mut().read_to_string().ok())
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                    let acked = reply.map(|v| {
                        v["receipts"].as_array().into_iter().flatten().filter_map(|r| r["seq"].as_u64()).collect()
                    });
                    let gone = acked.is_none();
                    if !gone {
                        answered.fetch_add(1, Ordering::AcqRel);
                    }
                    sent.push(Sent { ids, acked });
                    if gone {
                        // Refused or cut off: the server is stopping.
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    // Let the load run, then SIGTERM in the middle of it.
    let started = Instant::now();
    while answered.load(Ordering::Acquire) < 200 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = terminate(&mut child)?;
    stop.store(true, Ordering::Release);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest)?;
    assert!(status.success(), "kvitto serve exited with {status}: {rest}");
    assert!(rest.contains("kvitto serve: stopped;"), "{rest}");
    let sent: Vec<Sent> = clients.into_iter().flat_map(|c| c.join().unwrap_or_default()).collect();

    let rt = tokio::runtime::Runtime::new()?;
    let opened = rt.block_on(kvitto::Ledger::open(&ledger, kvitto::OpenOptions::default()))?;
    rt.block_on(opened.verify())?;
    let events = rt.block_on(opened.log(0..opened.len()))?;
    let recorded: HashMap<String, u64> = events.iter().map(|e| (e.event.event_id.to_string(), e.event.seq)).collect();
    rt.block_on(opened.close())?;
    let mut acked_events = 0;
    let mut every_id = HashSet::new();
    for s in &sent {
        every_id.extend(s.ids.iter().cloned());
        let present = s.ids.iter().filter(|id| recorded.contains_key(*id)).count();
        assert!(present == 0 || present == s.ids.len(), "a request written in part: {present} of {}", s.ids.len());
        if let Some(seqs) = &s.acked {
            acked_events += seqs.len();
            for (id, seq) in s.ids.iter().zip(seqs) {
                assert_eq!(recorded.get(id), Some(seq), "acknowledged event {id} is not at its receipt's seq");
            }
        }
    }
    let unanswered = sent.iter().filter(|s| s.acked.is_none()).count();
    let unanswered_recorded =
        sent.iter().filter(|s| s.acked.is_none() && s.ids.iter().all(|id| recorded.contains_key(id))).count();
    eprintln!(
        "{} requests sent, {acked_events} events acknowledged, {} recorded; {unanswered} requests unanswered at \
         SIGTERM, {unanswered_recorded} of them recorded whole",
        sent.len(),
        recorded.len()
    );
    assert!(acked_events >= 200, "the load ran: {acked_events} events acknowledged");
    assert!(recorded.keys().all(|id| every_id.contains(id)), "an event nobody sent");
    assert!(sent.iter().any(|s| s.acked.is_none()), "the load was still running at SIGTERM");
    Ok(())
}
