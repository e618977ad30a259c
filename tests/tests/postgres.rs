//! kvitto on PostgreSQL, on a real server (a throw-away cluster started for this test process,
//! or `KVITTO_TEST_DATABASE_URL`): the library end to end, tampering caught by `verify`,
//! migration from sled, readers beside the writer, and fail-over between writer processes.
//! Each test skips with a message where no server can be started.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kvitto::{Ledger, OpenOptions, StoreSpec};
use kvitto_integration::*;
use kvitto_postgres::testing;

fn database(test: &str) -> Option<String> {
    testing::database_or_skip(test)
}

async fn pg_ledger(url: &str) -> (tempfile::TempDir, std::path::PathBuf, Ledger) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("ledger");
    Ledger::init_on(&path, "test.kvitto/pg", &StoreSpec::Postgres(url.to_string())).unwrap();
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    (d, path, ledger)
}

fn reader() -> OpenOptions {
    OpenOptions { read_only: true, ..OpenOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenario_on_postgres_verifies_and_tampering_is_caught() {
    let Some(url) = database("the_scenario_on_postgres_verifies_and_tampering_is_caught") else { return };
    let (_d, path, ledger) = pg_ledger(&url).await;
    assert_eq!(ledger.store_kind(), "postgres");
    let scenario = kvitto::scenario::generate(20, 11);
    ledger.append_batch(scenario.declarations.clone()).await.unwrap();
    for c in &scenario.customers {
        for d in &c.events {
            ledger.append(d.clone()).await.unwrap();
        }
    }
    ledger.append(collected_with_details("kalejdo", "pg-1", "pg-1@example.invalid")).await.unwrap();
    let n = ledger.len();
    assert!(n as usize > scenario.len(), "{n} events");
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    let all = ledger.log(0..10_000).await.unwrap();
    assert_eq!(report.count, n, "log has {}; last {:?}", all.len(), all.last().map(|e| e.event.kind.name()));
    let history = ledger.history("kalejdo", "pg-1").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].to_json()["details"]["email"], "pg-1@example.invalid");
    ledger.checkpoint().await.unwrap();
    let n = ledger.len(); // the checkpoint committed the subject map in an event
    ledger.close().await.unwrap();

    // Reopened, everything is there; then a row changed behind kvitto's back is found.
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    assert_eq!(ledger.len(), n);
    ledger.close().await.unwrap();
    testing::edit_record(&url, 5, &mut |r| {
        let last = r.canonical.len() - 40;
        r.canonical[last] ^= 1;
    });
    let ledger = Ledger::open(&path, reader()).await.unwrap();
    let report = ledger.verify().await.unwrap();
    let failure = report.failure.expect("the edited row is caught");
    assert_eq!(failure.seq, Some(5), "{failure}");
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_from_sled_keeps_head_checkpoints_and_proofs() {
    let Some(url) = database("migration_from_sled_keeps_head_checkpoints_and_proofs") else { return };
    let (_d, path, ledger) = fresh_ledger().await;
    let scenario = kvitto::scenario::generate(15, 3);
    ledger.append_batch(scenario.declarations.clone()).await.unwrap();
    for c in &scenario.customers {
        ledger.append_batch(c.events.clone()).await.unwrap();
    }
    ledger.checkpoint().await.unwrap();
    let n = ledger.len();
    let before = ledger.checkpoint_note(None).unwrap().unwrap();
    let proof = ledger.inclusion_proof(7, n).await.unwrap();
    let consistency = ledger.consistency_proof(3, n).await.unwrap();
    let customer = &scenario.customers[0];
    let history = ledger.history(customer.controller.as_str(), &customer.external_ref).await.unwrap();
    ledger.close().await.unwrap();

    let report = kvitto::migrate_to_postgres(&path, &url, |_, _| {}).unwrap();
    assert_eq!(report.events, n);
    assert_eq!(report.checkpoints, 1);
    assert!(path.join("store.sled-migrated").is_dir(), "the sled store is kept aside");
    assert!(!path.join("store").exists());

    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    assert_eq!(ledger.store_kind(), "postgres");
    assert_eq!(ledger.len(), n);
    assert_eq!(ledger.checkpoint_note(None).unwrap().unwrap(), before, "the same signed checkpoint");
    assert_eq!(ledger.inclusion_proof(7, n).await.unwrap(), proof, "the same inclusion proof");
    assert_eq!(ledger.consistency_proof(3, n).await.unwrap(), consistency, "the same consistency proof");
    let after = ledger.history(customer.controller.as_str(), &customer.external_ref).await.unwrap();
    assert!(!after.is_empty());
    assert_eq!(after.iter().map(|e| e.hash).collect::<Vec<_>>(), history.iter().map(|e| e.hash).collect::<Vec<_>>());
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    // The migrated ledger appends on.
    let r = ledger.append(consent("kalejdo", "after-migration", "marketing")).await.unwrap();
    assert_eq!(r.seq, n);
    ledger.close().await.unwrap();

    // A second migration is refused: the directory is on PostgreSQL now.
    assert!(matches!(kvitto::migrate_to_postgres(&path, &url, |_, _| {}), Err(kvitto::MigrateError::NotSled(..))));
}

/// The child writer of the fail-over test (a no-op unless the parent started this test binary
/// with `KVITTO_CHILD_WRITER=<ledger dir>`): opens the ledger as its writer, says `open`, then
/// appends one event at a time and prints `ack <seq> <event_id>` after each receipt — until it
/// has appended `KVITTO_CHILD_COUNT` events, or forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let Ok(dir) = std::env::var("KVITTO_CHILD_WRITER") else { return };
    let tag = std::env::var("KVITTO_CHILD_TAG").unwrap();
    let count: Option<usize> = std::env::var("KVITTO_CHILD_COUNT").ok().map(|c| c.parse().unwrap());
    let options = OpenOptions { wait_for_writer: Duration::from_secs(60), ..OpenOptions::default() };
    let ledger = Ledger::open(std::path::Path::new(&dir), options).await.unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "\nKVITTO-CHILD open").unwrap();
    out.flush().unwrap();
    for i in 0.. {
        if count.is_some_and(|c| i >= c) {
            break;
        }
        let r = ledger.append(consent("kalejdo", &format!("{tag}-{i}"), "marketing")).await.unwrap();
        writeln!(out, "\nKVITTO-CHILD ack {} {}", r.seq, r.event_id).unwrap();
        out.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ledger.close().await.unwrap();
}

fn spawn_writer(
    dir: &std::path::Path,
    tag: &str,
    count: Option<usize>,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_writer", "--nocapture", "--test-threads", "1"])
        .env("KVITTO_CHILD_WRITER", dir)
        .env("KVITTO_CHILD_TAG", tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(c) = count {
        cmd.env("KVITTO_CHILD_COUNT", c.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // libtest writes its own words around the child's; only `KVITTO-CHILD` lines count.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("KVITTO-CHILD ") {
                let _ = tx.send(line[at + "KVITTO-CHILD ".len()..].to_string());
            }
        }
    });
    (child, rx)
}

fn acks(lines: &[String]) -> Vec<(u64, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .map(|l| {
            let (seq, id) = l.split_once(' ').unwrap();
            (seq.parse().unwrap(), id.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_waits_takes_over_after_sigkill_and_continues_the_chain() {
    let Some(url) = database("a_second_writer_waits_takes_over_after_sigkill_and_continues_the_chain") else {
        return;
    };
    let (_d, path, ledger) = pg_ledger(&url).await;
    ledger.close().await.unwrap();

    let (mut a, a_rx) = spawn_writer(&path, "a", None);
    let mut a_lines = vec![a_rx.recv_timeout(Duration::from_secs(60)).unwrap()];
    assert_eq!(a_lines[0], "open");
    while acks(&a_lines).len() < 20 {
        a_lines.push(a_rx.recv_timeout(Duration::from_secs(30)).unwrap());
    }

    // The second writer waits while the first holds the ledger.
    let (mut b, b_rx) = spawn_writer(&path, "b", Some(10));
    assert!(b_rx.recv_timeout(Duration::from_secs(2)).is_err(), "the second writer must wait for the first");

    // Readers are served meanwhile, without waiting for the writer: from this process...
    let r = Ledger::open(&path, reader()).await.unwrap();
    assert!(r.is_read_only());
    let seen = r.len();
    assert!(seen >= 20, "a reader sees the writer's acknowledged events ({seen})");
    let report = r.verify().await.unwrap();
    assert!(report.is_ok(), "a reader verifies while the writer appends: {:?}", report.failure);
    assert_eq!(r.history("kalejdo", "a-0").await.unwrap().len(), 1);
    assert!(r.append(consent("kalejdo", "reader", "marketing")).await.is_err(), "a reader appends nothing");
    r.close().await.unwrap();

    // SIGKILL the first writer mid-stream; everything it printed had been acknowledged.
    a.kill().unwrap();
    a.wait().unwrap();
    while let Ok(line) = a_rx.recv_timeout(Duration::from_millis(500)) {
        a_lines.push(line);
    }
    let a_acks = acks(&a_lines);

    // The second writer takes over and appends its events.
    assert_eq!(b_rx.recv_timeout(Duration::from_secs(60)).unwrap(), "open");
    let mut b_lines = Vec::new();
    while acks(&b_lines).len() < 10 {
        b_lines.push(b_rx.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    assert!(b.wait().unwrap().success());
    let b_acks = acks(&b_lines);

    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "one chain, no fork: {:?}", report.failure);
    let log = ledger.log(0..ledger.len()).await.unwrap();
    for (seq, id) in a_acks.iter().chain(&b_acks) {
        let e = &log[*seq as usize];
        assert_eq!(e.event.event_id.to_string(), *id, "acknowledged seq {seq} holds its event");
    }
    let last_a = a_acks.last().unwrap().0;
    let first_b = b_acks.first().unwrap().0;
    assert!(first_b > last_a, "the second writer continues after the first one's last receipt");
    assert_eq!(b_acks.last().unwrap().0 + 1, ledger.len(), "the second writer's last event ends the chain");
    // The only events between them are ones the first writer committed but had no time to print.
    for e in &log[last_a as usize + 1..first_b as usize] {
        assert!(
            e.subject_ref.as_deref().is_some_and(|r| r.starts_with("a-")),
            "seq {} is the first writer's",
            e.event.seq
        );
    }
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_refuses_clearly_when_the_wait_runs_out() {
    let Some(url) = database("a_writer_refuses_clearly_when_the_wait_runs_out") else { return };
    let (_d, path, ledger) = pg_ledger(&url).await;
    let options = OpenOptions { wait_for_writer: Duration::from_millis(300), ..OpenOptions::default() };
    let err = Ledger::open(&path, options).await.unwrap_err();
    assert!(matches!(err, kvitto::OpenError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("another kvitto process holds this ledger for writing"), "{err}");
    ledger.close().await.unwrap();
    // Once the first writer closed, the lock is free.
    let options = OpenOptions { wait_for_writer: Duration::from_millis(300), ..OpenOptions::default() };
    Ledger::open(&path, options).await.unwrap().close().await.unwrap();
}

fn admin(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_data_lost_in_the_database_is_caught_up_on_open() {
    let Some(url) = database("derived_data_lost_in_the_database_is_caught_up_on_open") else { return };
    let (_d, path, ledger) = pg_ledger(&url).await;
    for i in 0..30 {
        ledger.append(consent("kalejdo", &format!("c-{i}"), "marketing")).await.unwrap();
    }
    // A retried append (same event id) is answered with the first receipt, not recorded twice.
    let d = draft(
        r#"{"type":"consent_given","controller":"kalejdo","subject":"c-retry","purpose":"marketing","event_id":"01890a5d-ac96-774b-bcce-b302099a8057"}"#,
    );
    let first = ledger.append(d.clone()).await.unwrap();
    assert_eq!(ledger.append(d).await.unwrap().seq, first.seq);
    let n = ledger.len();
    let proof = ledger.inclusion_proof(3, n).await.unwrap();
    ledger.close().await.unwrap();
    admin(
        &url,
        "DELETE FROM kvitto_subject_head; DELETE FROM kvitto_event_id; DELETE FROM kvitto_merkle_node; \
         DELETE FROM kvitto_projection; DELETE FROM kvitto_watermark",
    );
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    assert_eq!(ledger.len(), n);
    assert_eq!(ledger.inclusion_proof(3, n).await.unwrap(), proof, "Merkle nodes rebuilt from the log");
    assert_eq!(ledger.history("kalejdo", "c-7").await.unwrap().len(), 1);
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_sessions_are_killed_poisons_and_a_reopen_is_whole() {
    let Some(url) = database("a_writer_whose_sessions_are_killed_poisons_and_a_reopen_is_whole") else { return };
    let (_d, path, ledger) = pg_ledger(&url).await;
    for i in 0..10 {
        ledger.append(consent("kalejdo", &format!("k-{i}"), "marketing")).await.unwrap();
    }
    // The server ends every session of this ledger's writer (as a restart or a fail-over of
    // the database would).
    admin(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND \
         application_name = 'kvitto' AND pid <> pg_backend_pid()",
    );
    let failed = ledger.append(consent("kalejdo", "after-kill", "marketing")).await;
    let failed = failed.expect_err("the append fails on storage");
    // Depending on when the client notices, the server's own notice (57P01, "terminating
    // connection due to administrator command") or the closed connection is what it reports.
    let why = failed.to_string();
    assert!(why.contains("server") || why.contains("57P01"), "names the lost server connection: {failed}");
    assert!(ledger.append(consent("kalejdo", "later", "marketing")).await.is_err(), "the handle takes no more");
    drop(ledger);
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap();
    assert_eq!(ledger.len(), 10, "the failed group is not in the log (it never reached COMMIT)");
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    ledger.append(consent("kalejdo", "after-reopen", "marketing")).await.unwrap();
    ledger.close().await.unwrap();
}

/// A reader's verify while the writer appends reads the log's head before it starts reading
/// the log: read the other way round, a page of chunks fetched just before a commit ends the
/// stream short of the head read just after it (`HeadBeyondLog` on a ledger that is whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_verifies_again_and_again_while_the_writer_appends() {
    let Some(url) = database("a_reader_verifies_again_and_again_while_the_writer_appends") else { return };
    let (_d, path, ledger) = pg_ledger(&url).await;
    ledger.append(consent("kalejdo", "first", "marketing")).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appending = {
        let (ledger, stop) = (ledger.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ledger.append(consent("kalejdo", &format!("c-{i}"), "marketing")).await.unwrap();
                i += 1;
            }
            i
        })
    };
    let r = Ledger::open(&path, reader()).await.unwrap();
    for round in 0..40 {
        let report = r.verify().await.unwrap();
        assert!(report.is_ok(), "verify {round} beside the appends: {:?}", report.failure);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = appending.await.unwrap();
    assert!(appended > 0, "the writer appended while the reader verified");
    r.close().await.unwrap();
    ledger.close().await.unwrap();
}
