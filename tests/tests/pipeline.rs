//! The append pipeline under pressure, made deterministic with the ledger's test hooks: the
//! index queue is bounded, verify does not stall proofs, a cancelled append leaves no count
//! behind, rebuild neither races the indexer's writes nor blocks queries, and a failed commit
//! with a group sealed on top of it records neither.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kvitto::{AppendError, AsOf, Ledger, OpenOptions};
use kvitto_integration::*;

/// Appends one event per call until one does not finish within `patience`; returns how many
/// finished and the still-running append.
async fn append_until_stalled(
    ledger: &Ledger,
    limit: usize,
    patience: Duration,
) -> (usize, tokio::task::JoinHandle<Result<kvitto::Receipt, AppendError>>) {
    for i in 0..limit {
        let l = ledger.clone();
        let mut task = tokio::spawn(async move { l.append(consent("kalejdo", &format!("c-{i}"), "marketing")).await });
        match tokio::time::timeout(patience, &mut task).await {
            Ok(done) => {
                done.unwrap().unwrap();
            }
            Err(_) => return (i, task),
        }
    }
    panic!("{limit} appends finished with the indexer stopped: the index queue is unbounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_queue_is_bounded_and_commits_wait_for_the_indexer() {
    let (_d, _path, ledger) = fresh_ledger().await;
    let release = ledger.pause_indexer_for_test();
    let (done, stalled) = append_until_stalled(&ledger, 400, Duration::from_secs(2)).await;
    // One batch held by the stopped indexer, a queue of 64 groups, one group in the committer.
    assert!((60..=70).contains(&done), "{done} groups committed before backpressure");
    drop(release);
    stalled.await.unwrap().unwrap();
    assert_eq!(ledger.len(), done as u64 + 1);
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_append_leaves_no_in_flight_count_behind() {
    let (_d, _path, ledger) = fresh_ledger().await;
    let ledger = {
        let path = ledger.dir().to_path_buf();
        ledger.close().await.unwrap();
        Ledger::open(&path, OpenOptions { queue_depth: 1, ..OpenOptions::default() }).await.unwrap()
    };
    let release = ledger.pause_indexer_for_test();
    let (_, stalled) = append_until_stalled(&ledger, 400, Duration::from_secs(2)).await;
    // The writer is full too: these wait for queue space, and their callers give up.
    let mut parked = Vec::new();
    for i in 0..3 {
        let l = ledger.clone();
        parked.push(tokio::spawn(async move { l.append(consent("kalejdo", &format!("w-{i}"), "marketing")).await }));
    }
    // The writer takes them into one group and waits for the committer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            ledger.append(consent("kalejdo", &format!("gave-up-{i}"), "marketing")),
        )
        .await;
        assert!(gave_up.is_err(), "the queue is full: the append waits");
    }
    drop(release);
    stalled.await.unwrap().unwrap();
    for p in parked {
        p.await.unwrap().unwrap();
    }
    // Every request entered is answered or gone: nothing counts as in flight.
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = ledger.in_flight_for_test();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "cancelled appends left in-flight counts behind");
    // The first one that gave up may have found the queue's one place (then it is recorded);
    // the last one waited to send, and was not.
    assert!(ledger.history("kalejdo", "gave-up-2").await.is_err());
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_and_appends_go_on_while_verify_runs() {
    let (_d, _path, ledger) = fresh_ledger().await;
    for i in 0..50 {
        ledger.append(consent("kalejdo", &format!("c-{i}"), "marketing")).await.unwrap();
    }
    // Verify stops in its progress callback (after the chain pass) until released.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let verifying = {
        let l = ledger.clone();
        let (entered_tx, go_rx) = (std::sync::Mutex::new(Some(entered_tx)), std::sync::Mutex::new(go_rx));
        tokio::spawn(async move {
            l.verify_with_progress(move |_, _| {
                if let Some(tx) = entered_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                    let _ = go_rx.lock().unwrap().recv();
                }
            })
            .await
        })
    };
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap()).await.unwrap();
    let r = ledger.append(consent("kalejdo", "late", "marketing")).await.unwrap();
    let proof = ledger.inclusion_proof(r.seq, r.seq + 1).await;
    assert!(proof.is_ok(), "a proof over a new event waits for the indexer, which verify must not hold: {proof:?}");
    ledger.checkpoint().await.unwrap();
    go_tx.send(()).unwrap();
    let report = verifying.await.unwrap().unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    assert_eq!(report.count, 50);
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_does_not_block_queries_and_the_indexer_cannot_undo_it() {
    let (_d, path, [kz1, kz2], _) = consent_and_withdrawal().await;
    // KZ-2's persisted state is replaced by KZ-1's: after reopen KZ-2 looks allowed.
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        assert!(kvitto_store::tamper::copy_projection_state(&store, &kz1, &kz2).unwrap());
    }
    let ledger = reopen(&path).await;
    assert!(ledger.may_process("kazoom", "KZ-2", "product-news", AsOf::now()).unwrap().allowed);

    let release = ledger.pause_rebuild_for_test();
    let rebuilding = {
        let l = ledger.clone();
        tokio::spawn(async move { l.rebuild().await })
    };
    // While rebuild has cleared the persisted states and not yet written its snapshot, the
    // old (wrong) live state of KZ-2 changes and the indexer goes idle — when it would persist
    // that state as a delta, overriding the snapshot on the next open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ledger.append(consent("kazoom", "KZ-2", "newsletter")).await.unwrap();
    // Queries keep answering during the rebuild.
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking({
            let l = ledger.clone();
            move || l.may_process("kazoom", "KZ-1", "product-news", AsOf::now())
        }),
    )
    .await;
    assert!(answer.is_ok_and(|a| a.unwrap().unwrap().allowed), "may_process blocked by rebuild");
    tokio::time::sleep(Duration::from_millis(800)).await; // past the indexer's idle persist
    drop(release);
    rebuilding.await.unwrap().unwrap();
    assert!(!ledger.may_process("kazoom", "KZ-2", "product-news", AsOf::now()).unwrap().allowed);
    ledger.close().await.unwrap();
    // What was persisted is the rebuilt state: the next open answers the same.
    let ledger = reopen(&path).await;
    let d = ledger.may_process("kazoom", "KZ-2", "product-news", AsOf::now()).unwrap();
    assert!(!d.allowed, "a delta of the old state overrode the rebuilt snapshot: {d:?}");
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_with_a_group_sealed_on_top_records_neither() {
    let (_d, path, ledger) = fresh_ledger().await;
    for i in 0..5 {
        ledger.append(consent("kalejdo", &format!("c-{i}"), "marketing")).await.unwrap();
    }
    let head = ledger.len();
    ledger.fail_commit_on_top_for_test();
    let first = {
        let l = ledger.clone();
        tokio::spawn(async move { l.append(consent("kalejdo", "first", "marketing")).await })
    };
    // The failing commit waits until a second group is sealed on top of it (chained on it).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = ledger.append(consent("kalejdo", "second", "marketing")).await;
    let first = first.await.unwrap();
    assert!(matches!(first, Err(AppendError::Storage(_))), "{first:?}");
    assert!(matches!(second, Err(AppendError::Poisoned(_))), "{second:?}");
    assert!(matches!(ledger.append(consent("kalejdo", "third", "marketing")).await, Err(AppendError::Poisoned(_))));
    ledger.close().await.unwrap();
    let ledger = reopen(&path).await;
    assert_eq!(ledger.len(), head, "neither group is in the log");
    assert!(ledger.history("kalejdo", "second").await.is_err());
    let r = ledger.append(consent("kalejdo", "after", "marketing")).await.unwrap();
    assert_eq!(r.seq, head);
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.unwrap();
}
