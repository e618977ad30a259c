//! Crash test: a child process appends continuously (random group sizes, several subjects,
//! some details, some batches) and records each receipt as it is acknowledged; the parent
//! kills it with SIGKILL at random moments, reopens, and checks that every acknowledged event
//! is present with the same hash, that `verify` passes, and that the projections (persisted
//! before the kill, caught up on open) equal a rebuild from the log.
//!
//! 5 cycles run in the normal suite; `KVITTO_CRASH_CYCLES=100` (`just crash-loop 100`) for
//! the long run. The child is this test binary itself, re-run on the ignored `crash_child`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvitto::scenario::Rng;
use kvitto::{Draft, EventHash, Ledger, OpenOptions};
use kvitto_integration::*;

fn random_draft(rng: &mut Rng) -> Draft {
    let controller = if rng.chance(50) { "kalejdo" } else { "kazoom" };
    let subject = format!("cust-{}", rng.below(40));
    if rng.chance(3) {
        // Erasure: the append destroys the keys before its receipt; a kill at any moment must
        // leave the event absent with its keys, or recorded without them.
        let register = if rng.chance(50) { r#","register":"kundregister""# } else { "" };
        draft(&format!(
            r#"{{"type":"data_erased","controller":"{controller}","subject":"{subject}"{register},"reason":"crash test"}}"#
        ))
    } else if rng.chance(30) {
        collected_with_details(controller, &subject, &format!("p{}@example.se", rng.below(1000)))
    } else {
        consent(controller, &subject, if rng.chance(50) { "marketing" } else { "newsletter" })
    }
}

#[test]
#[ignore = "child process of crash_loop; runs only when KVITTO_CRASH_DIR is set"]
fn crash_child() {
    let (Some(dir), Some(receipts)) = (std::env::var_os("KVITTO_CRASH_DIR"), std::env::var_os("KVITTO_CRASH_RECEIPTS"))
    else {
        return;
    };
    let seed: u64 = std::env::var("KVITTO_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let ledger = Ledger::open(Path::new(&dir), OpenOptions::default()).await.unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(
            std::fs::OpenOptions::new().append(true).create(true).open(receipts).unwrap(),
        ));
        let mut rng = Rng::new(seed);
        loop {
            let callers = 1 + rng.below(16) as usize;
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..callers {
                let batch: Vec<Draft> =
                    (0..if rng.chance(20) { 2 + rng.below(4) } else { 1 }).map(|_| random_draft(&mut rng)).collect();
                let (ledger, out) = (ledger.clone(), out.clone());
                set.spawn(async move {
                    let receipts = match ledger.append_batch(batch).await {
                        Ok(r) => r,
                        // A batch that erases a customer and then adds details for it.
                        Err(kvitto::AppendError::DetailsAfterErasure { .. }) => return,
                        Err(e) => panic!("{e}"),
                    };
                    let mut line = String::new();
                    for r in receipts {
                        line.push_str(&format!("{} {} {}\n", r.seq, r.hash, r.event_id));
                    }
                    // One write per acknowledgement: reaches the kernel before the next append.
                    out.lock().unwrap().write_all(line.as_bytes()).unwrap();
                });
            }
            while set.join_next().await.is_some() {}
        }
    });
}

/// Receipts the child recorded. A SIGKILL can cut a `write` short (Linux checks for fatal
/// signals between pages), so only newline-terminated lines with well-formed fields count:
/// a torn last line is a receipt the child never finished writing down.
fn read_receipts(path: &Path) -> HashMap<u64, (String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .split('\n')
        .filter_map(|l| {
            let mut p = l.split(' ');
            let (seq, hash, id) = (p.next()?.parse().ok()?, p.next()?.to_string(), p.next()?.to_string());
            (hash.len() == 64 && id.len() == 36 && p.next().is_none()).then_some((seq, (hash, id)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop() {
    let cycles: u64 = std::env::var("KVITTO_CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    Ledger::init(&dir, "crash.test/ledger").unwrap();
    let receipts_path = tmp.path().join("receipts");
    let mut rng = Rng::new(42);
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0;
    let mut total_erasures = 0;
    for cycle in 0..cycles {
        let before = std::fs::metadata(&receipts_path).map(|m| m.len()).unwrap_or(0);
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("KVITTO_CRASH_DIR", &dir)
            .env("KVITTO_CRASH_RECEIPTS", &receipts_path)
            .env("KVITTO_CRASH_SEED", (1000 + cycle).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child is appending, then let it run a random while.
        let started = Instant::now();
        while std::fs::metadata(&receipts_path).map(|m| m.len()).unwrap_or(0) <= before {
            assert!(started.elapsed() < Duration::from_secs(30), "cycle {cycle}: child never acknowledged an append");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("cycle {cycle}: child exited early with {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let acked = read_receipts(&receipts_path);
        let ledger = reopen(&dir).await;
        let n = ledger.len();
        let max_acked = acked.keys().max().copied().unwrap();
        assert!(n > max_acked, "cycle {cycle}: ledger has {n} events, seq {max_acked} was acknowledged");
        let stored: HashMap<u64, (EventHash, String)> = ledger
            .log(0..n)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event.seq, (e.hash, e.event.event_id.to_string())))
            .collect();
        for (seq, (hash, id)) in &acked {
            let (h, i) = &stored[seq];
            assert_eq!((&h.to_hex(), i), (hash, id), "cycle {cycle}: acknowledged seq {seq} changed");
        }
        // verify also fails an erasure whose covered details still decrypt.
        let report = ledger.verify().await.unwrap();
        assert!(report.is_ok(), "cycle {cycle}: {:?}", report.failure);
        assert_eq!(report.count, n);
        let logged = ledger.log(0..n).await.unwrap();
        let mut erasures: HashMap<kvitto::SubjectId, kvitto_core::Erasures> = HashMap::new();
        for e in &logged {
            if let (Some(l), kvitto::EventKind::DataErased { register, .. }) = (&e.event.subject, &e.event.kind) {
                erasures.entry(l.subject).or_default().push(e.event.seq, register.clone());
            }
        }
        for e in &logged {
            let Some(l) = e.event.subject else { continue };
            let covered =
                erasures.get(&l.subject).and_then(|x| x.covering(e.event.seq, kvitto_core::key_slot(&e.event.kind)));
            match (&e.details, covered) {
                (kvitto::DetailsView::None, _) => {}
                (kvitto::DetailsView::Erased { by }, Some(c)) => {
                    assert_eq!(*by, c, "cycle {cycle}: seq {}", e.event.seq)
                }
                (kvitto::DetailsView::Disclosed(_), None) => {}
                (other, c) => panic!("cycle {cycle}: seq {}: details {other:?}, covering erasure {c:?}", e.event.seq),
            }
        }
        total_erasures = erasures.values().map(|x| x.as_slice().len()).sum();
        // Projections persisted before the kill, caught up on open, equal a rebuild.
        let events: Vec<kvitto::Event> = ledger.log(0..n).await.unwrap().into_iter().map(|e| e.event).collect();
        assert!(
            ledger.projections().expect("projections") == kvitto::Projections::rebuild(&events),
            "cycle {cycle}: projections differ from a rebuild"
        );
        ledger.close().await.expect("ledger closes cleanly");
        total_acked = acked.len();
    }
    assert!(total_erasures > 0, "the loop erased nothing");
    eprintln!(
        "crash loop: {cycles} cycles, {total_acked} acknowledged events all present, {total_erasures} erasures carried \
         out, verify ok after every kill"
    );
}
