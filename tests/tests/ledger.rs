//! Library behaviour: appends, receipts, history, idempotency, batches, concurrency,
//! encryption at rest, index catch-up, format versions.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};

use kvitto::{AppendError, DetailsView, EventId, ExternalRef, Id, Ledger, OpenError, OpenOptions, ReadError};
use kvitto_integration::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_history_and_reopen() {
    let (_d, path, ledger) = fresh_ledger().await;
    let r0 = ledger.append(collected_with_details("kalejdo", "cust-1", "a@example.se")).await.unwrap();
    let r1 = ledger.append(consent("kalejdo", "cust-2", "marketing")).await.unwrap();
    let r2 = ledger.append(consent("kalejdo", "cust-1", "marketing")).await.unwrap();
    assert_eq!((r0.seq, r1.seq, r2.seq), (0, 1, 2));
    assert_ne!(r0.hash, r2.hash);
    let h = ledger.history("kalejdo", "cust-1").await.unwrap();
    assert_eq!(h.iter().map(|e| e.event.seq).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(h.iter().map(|e| e.event.subject.unwrap().subject_seq).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(h[1].event.subject.unwrap().subject_prev, Some(r0.hash));
    assert_eq!(h[0].hash, r0.hash);
    assert_eq!(h[0].subject_ref.as_deref(), Some("cust-1"));
    match &h[0].details {
        DetailsView::Disclosed(v) => assert_eq!(v["email"], "a@example.se"),
        other => panic!("details not disclosed: {other:?}"),
    }
    assert_eq!(h[1].details, DetailsView::None);
    ledger.close().await.expect("ledger closes cleanly");

    let ledger = reopen(&path).await;
    assert_eq!(ledger.len(), 3);
    let h = ledger.history("kalejdo", "cust-1").await.unwrap();
    assert_eq!(h.len(), 2);
    let r3 = ledger.append(consent("kalejdo", "cust-1", "newsletter")).await.unwrap();
    assert_eq!(r3.seq, 3);
    let h = ledger.history("kalejdo", "cust-1").await.unwrap();
    assert_eq!(h.last().unwrap().event.subject.unwrap().subject_seq, 2);
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    assert_eq!(report.count, 4);
    assert_eq!(report.head, r3.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_subject_and_controller_separation() {
    let (_d, _p, ledger) = fresh_ledger().await;
    ledger.append(consent("kalejdo", "cust-1", "marketing")).await.unwrap();
    assert!(matches!(ledger.history("kazoom", "cust-1").await, Err(ReadError::UnknownSubject { .. })));
    assert!(matches!(ledger.history("Kalejdo", "cust-1").await, Err(ReadError::BadQuery { field: "controller", .. })));
    let r = ExternalRef::new("cust-1").unwrap();
    assert_ne!(ledger.subject_id(&Id::new("kalejdo").unwrap(), &r), ledger.subject_id(&Id::new("kazoom").unwrap(), &r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_event_ids_within_and_across_restarts() {
    let (_d, path, ledger) = fresh_ledger().await;
    let id = EventId::new_v7();
    let mut d = collected_with_details("kalejdo", "cust-1", "a@example.se");
    d.event_id = Some(id);
    let first = ledger.append(d.clone()).await.unwrap();
    assert_eq!(ledger.append(d.clone()).await.unwrap(), first);
    let mut changed = d.clone();
    changed.details = collected_with_details("kalejdo", "cust-1", "b@example.se").details;
    match ledger.append(changed.clone()).await {
        Err(AppendError::IdConflict { event_id, existing_seq, index }) => {
            assert_eq!((event_id, existing_seq, index), (id, Some(first.seq), 0));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    ledger.close().await.expect("ledger closes cleanly");
    let ledger = reopen(&path).await;
    assert_eq!(ledger.append(d.clone()).await.unwrap(), first);
    assert!(matches!(ledger.append(changed).await, Err(AppendError::IdConflict { .. })));
    assert_eq!(ledger.len(), 1);
}

/// The nil UUID is refused; an id another controller used is refused without naming that
/// event's seq (committed, or in the same group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nil_and_foreign_event_ids() {
    let (_d, _p, ledger) = fresh_ledger().await;
    let nil = r#"{"type":"consent_given","controller":"kalejdo","subject":"c-1","purpose":"marketing","event_id":"00000000-0000-0000-0000-000000000000"}"#;
    let e = kvitto::Draft::from_json_str(nil).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("event_id"), "{e}");
    let mut d = consent("kalejdo", "c-1", "marketing");
    d.event_id = Some(EventId::parse("00000000-0000-0000-0000-000000000001").unwrap());
    let mut zero = d.clone();
    zero.event_id = Some(kvitto_core::EventId(Default::default()));
    assert!(matches!(ledger.append(zero).await, Err(AppendError::InvalidStep { index: 0, .. })));
    ledger.append(d.clone()).await.unwrap();
    let mut foreign = consent("kazoom", "k-1", "product-news");
    foreign.event_id = d.event_id;
    match ledger.append(foreign.clone()).await {
        Err(e @ AppendError::IdConflict { existing_seq: None, .. }) => {
            assert!(
                e.to_string().contains("by an event of another controller") && !e.to_string().contains("seq 0"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // In one group: a request that takes an id, then another controller's request reusing it.
    let mut first = consent("kalejdo", "c-2", "marketing");
    first.event_id = Some(EventId::new_v7());
    let mut second = consent("kazoom", "k-2", "product-news");
    second.event_id = first.event_id;
    let (a, b) = tokio::join!(ledger.append(first), ledger.append(second));
    let conflict = [a.err(), b.err()].into_iter().flatten().next().expect("one of them conflicts");
    assert!(matches!(conflict, AppendError::IdConflict { existing_seq: None, .. }), "{conflict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_all_or_nothing() {
    let (_d, _p, ledger) = fresh_ledger().await;
    let mut taken = consent("kalejdo", "cust-1", "marketing");
    taken.event_id = Some(EventId::new_v7());
    ledger.append(taken.clone()).await.unwrap();
    let mut conflicting = consent("kalejdo", "cust-1", "newsletter");
    conflicting.event_id = taken.event_id;
    let batch = vec![consent("kalejdo", "cust-2", "marketing"), consent("kalejdo", "cust-3", "marketing"), conflicting];
    assert!(matches!(ledger.append_batch(batch).await, Err(AppendError::IdConflict { index: 2, .. })));
    assert_eq!(ledger.len(), 1);
    assert!(matches!(ledger.history("kalejdo", "cust-2").await, Err(ReadError::UnknownSubject { .. })));
    let ok =
        ledger.append_batch(vec![consent("kalejdo", "cust-2", "m"), consent("kalejdo", "cust-2", "n")]).await.unwrap();
    assert_eq!(ok.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(matches!(ledger.append_batch(vec![]).await, Err(AppendError::Empty)));
    // The same id twice in one batch: identical content is one event, different content refused.
    let mut a = consent("kalejdo", "cust-4", "marketing");
    a.event_id = Some(EventId::new_v7());
    let receipts = ledger.append_batch(vec![a.clone(), a.clone()]).await.unwrap();
    assert_eq!(receipts[0], receipts[1]);
    let mut b = consent("kalejdo", "cust-4", "newsletter");
    b.event_id = Some(EventId::new_v7());
    let mut b2 = b.clone();
    b2.kind = consent("kalejdo", "cust-4", "profiling").kind;
    assert!(matches!(
        ledger.append_batch(vec![b, b2]).await,
        Err(AppendError::DuplicateInBatch { index: 1, first: 0, .. })
    ));
    assert_eq!(ledger.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_have_no_gaps_and_retries_store_one_copy() {
    let (_d, _p, ledger) = fresh_ledger().await;
    const TASKS: usize = 64;
    const PER_TASK: usize = 1000;
    let ids: Vec<EventId> = (0..200).map(|_| EventId::new_v7()).collect();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let (ledger, ids) = (ledger.clone(), ids.clone());
        handles.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..PER_TASK {
                let subject = format!("cust-{}", (t * 7 + i) % 50);
                let mut d = consent("kazoom", &subject, "product-news");
                if i % 10 == 0 {
                    // Retry storm: every task re-sends the same 200 ids (same content).
                    let k = (i / 10 + t) % ids.len();
                    d = consent("kazoom", &format!("retry-{k}"), "product-news");
                    d.event_id = Some(ids[k]);
                }
                receipts.push(ledger.append(d).await.unwrap());
            }
            receipts
        }));
    }
    let mut by_seq = BTreeMap::new();
    for h in handles {
        for r in h.await.unwrap() {
            if let Some(prev) = by_seq.insert(r.seq, r) {
                assert_eq!(prev, r, "two different receipts for seq {}", r.seq);
            }
        }
    }
    let n = ledger.len();
    assert_eq!(by_seq.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>(), "gap or duplicate seq");
    let retried: HashSet<u64> =
        ids.iter().filter_map(|id| by_seq.values().find(|r| r.event_id == *id).map(|r| r.seq)).collect();
    let distinct_retry_ids: HashSet<usize> =
        (0..TASKS).flat_map(|t| (0..PER_TASK / 10).map(move |j| (j + t) % 200)).collect();
    assert_eq!(retried.len(), distinct_retry_ids.len(), "each retried id stored exactly once");
    assert_eq!(n as usize, TASKS * PER_TASK - TASKS * PER_TASK / 10 + distinct_retry_ids.len());
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    assert_eq!(report.count, n);
    // Every subject chain is consistent as read back: subject_seq counts up from 0 and each
    // event links to the hash of the subject's previous one.
    let mut total = 0;
    for k in 0..50 {
        let h = ledger.history("kazoom", &format!("cust-{k}")).await.unwrap();
        assert!(!h.is_empty());
        for (i, e) in h.iter().enumerate() {
            let link = e.event.subject.expect("subject event");
            assert_eq!(link.subject_seq, i as u64, "cust-{k}");
            assert_eq!(link.subject_prev, i.checked_sub(1).map(|j| h[j].hash), "cust-{k} event {i}");
        }
        total += h.len();
    }
    assert_eq!(total, TASKS * PER_TASK - TASKS * PER_TASK / 10, "every non-retry append is in its subject's chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_personal_reaches_sled_in_clear() {
    let (d, path, ledger) = fresh_ledger().await;
    ledger.append(collected_with_details("kalejdo", "KAL-991177", "unique.person@example.se")).await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    // Chunks are stored compressed, which could hide a string from a search of the files: the
    // files are searched as they are and again with every chunk rewritten plain.
    let mut store = all_bytes_under(&path.join("store"));
    {
        let (s, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::write_plain(&s, kvitto_store::tamper::PlainTree::Log).unwrap();
    }
    store.extend(all_bytes_under(&path.join("store")));
    assert!(!store.is_empty());
    assert!(!contains(&store, b"unique.person@example.se"), "details in clear in sled");
    assert!(!contains(&store, "Åsa Öberg".as_bytes()), "details in clear in sled");
    assert!(!contains(&store, b"KAL-991177"), "external reference in clear in sled");
    // The reference lives only in the vault, which erasure can rewrite.
    assert!(contains(&all_bytes_under(&path.join("vault")), b"KAL-991177"));
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Ledger::open(&missing, OpenOptions::default()).await.unwrap_err();
    assert!(matches!(err, OpenError::NotALedger(_)), "{err}");
    assert!(err.to_string().contains("kvitto init"));
    let path = dir.path().join("l");
    Ledger::init(&path, "x").unwrap();
    assert!(matches!(Ledger::init(&path, "x"), Err(OpenError::AlreadyExists(_))));
    assert!(Ledger::init(&dir.path().join("bad"), "has space").is_err());
    // A future ledger format version refuses to open, naming both versions.
    std::fs::write(path.join("LEDGER"), "kvitto ledger\nformat 9\n").unwrap();
    let err = Ledger::open(&path, OpenOptions::default()).await.unwrap_err();
    assert!(matches!(err, OpenError::UnknownFormat { found: 9, supported: 1, .. }), "{err}");
    std::fs::write(path.join("LEDGER"), "kvitto ledger\nformat 1\n").unwrap();
    // A store format the ledger file does not announce also refuses.
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::set_format(&store, 2).unwrap();
    }
    let err = Ledger::open(&path, OpenOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("format version 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_catches_up_from_the_log_on_open() {
    let (_d, path, ledger) = fresh_ledger().await;
    for i in 0..300 {
        ledger.append(consent("kalejdo", &format!("cust-{}", i % 17), "marketing")).await.unwrap();
    }
    ledger.close().await.expect("ledger closes cleanly");
    {
        // Lose the index entirely, as if the indexer never ran.
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        store.clear_index().unwrap();
        store.flush_all().unwrap();
    }
    let ledger = reopen(&path).await;
    assert_eq!(ledger.history("kalejdo", "cust-3").await.unwrap().len(), 18);
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    let r = ledger.append(consent("kalejdo", "cust-3", "newsletter")).await.unwrap();
    let h = ledger.history("kalejdo", "cust-3").await.unwrap();
    assert_eq!(h.last().unwrap().event.subject.unwrap().subject_seq, 18);
    assert_eq!(h.last().unwrap().hash, r.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_ranges_and_demo_scenario_round_trip() {
    let (_d, _p, ledger) = fresh_ledger().await;
    let s = kvitto::scenario::generate(60, 3);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for c in &s.customers {
        ledger.append_batch(c.events.clone()).await.unwrap();
    }
    assert_eq!(ledger.len() as usize, s.len());
    let page = ledger.log(10..20).await.unwrap();
    assert_eq!(page.iter().map(|e| e.event.seq).collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
    assert_eq!(ledger.log(s.len() as u64 - 2..u64::MAX).await.unwrap().len(), 2);
    let c = &s.customers[5];
    let h = ledger.history(c.controller.as_str(), &c.external_ref).await.unwrap();
    assert_eq!(h.len(), c.events.len());
    for (e, d) in h.iter().zip(&c.events) {
        assert_eq!(e.event.kind, d.kind);
        assert_eq!(Some(e.event.event_id), d.event_id);
        assert_eq!(Some(e.event.occurred_at), d.occurred_at);
    }
}

#[test]
fn ledger_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Ledger>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_while_appends_continue() {
    let (_d, _p, ledger) = fresh_ledger().await;
    for i in 0..200 {
        ledger.append(collected_with_details("kalejdo", &format!("c{}", i % 30), "a@example.se")).await.unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (ledger, stop) = (ledger.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ledger.append(consent("kalejdo", &format!("c{}", i % 30), "marketing")).await.unwrap();
                i += 1;
            }
            i
        })
    };
    for _ in 0..5 {
        let r = ledger.verify().await.unwrap();
        assert!(r.is_ok(), "{:?}", r.failure);
        assert!(r.count >= 200);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let more = writer.await.unwrap();
    assert!(more > 0, "appends ran during verify");
    let r = ledger.verify().await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failure);
    assert_eq!(r.count, 200 + more as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_plain_chunks_reads_verifies_and_goes_on_compressed() {
    let (_d, path, ledger) = fresh_ledger().await;
    let batch = |from: usize| (from..from + 30).map(|i| consent("kazoom", &format!("c{}", i % 3), "product-news"));
    ledger.append_batch(batch(0).collect()).await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    {
        // The chunks as stores wrote them before compression.
        let (s, _, _) = kvitto_store::Store::open(&path).unwrap();
        assert!(
            kvitto_store::tamper::write_plain(&s, kvitto_store::tamper::PlainTree::Log).unwrap() > 0,
            "a 30-event group compresses"
        );
        assert_eq!(
            kvitto_store::tamper::write_plain(&s, kvitto_store::tamper::PlainTree::Log).unwrap(),
            0,
            "all plain now"
        );
    }
    let ledger = reopen(&path).await;
    assert_eq!(ledger.history("kazoom", "c1").await.unwrap().len(), 10);
    ledger.append_batch(batch(30).collect()).await.unwrap();
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    assert_eq!(report.count, 60);
    let h = ledger.history("kazoom", "c1").await.unwrap();
    assert_eq!(h.iter().map(|e| e.event.seq).collect::<Vec<_>>(), (0..60).filter(|i| i % 3 == 1).collect::<Vec<_>>());
    ledger.close().await.expect("ledger closes cleanly");
    let (s, _, _) = kvitto_store::Store::open(&path).unwrap();
    assert_eq!(
        kvitto_store::tamper::write_plain(&s, kvitto_store::tamper::PlainTree::Log).unwrap(),
        1,
        "the new group was written compressed"
    );
}
