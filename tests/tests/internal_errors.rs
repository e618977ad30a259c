//! Internal failures never become wrong answers: a poisoned lock, a stopped indexer or a
//! thread that panicked is an error the caller sees, not an empty or stale state.
#![allow(clippy::unwrap_used)]

use kvitto::{AppendError, CloseError, ReadError, StorageError};
use kvitto_integration::*;

fn is_internal(e: &ReadError) -> bool {
    matches!(e, ReadError::Storage(StorageError::Internal(why)) if why.contains("poisoned"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_projections_lock_is_an_error_not_an_empty_state() {
    let (_d, _path, ledger) = fresh_ledger().await;
    ledger.append(consent("kalejdo", "cust-1", "marketing")).await.unwrap();
    ledger.append(collected_with_details("kalejdo", "cust-1", "a@example.se")).await.unwrap();
    assert_eq!(ledger.projections().unwrap().subjects.len(), 1);

    ledger.poison_projections_for_test();
    let e = ledger.projections().unwrap_err();
    assert!(is_internal(&e), "{e:?}");
    let e = ledger.may_process("kalejdo", "cust-1", "marketing", kvitto::AsOf::now()).unwrap_err();
    assert!(is_internal(&e), "{e:?}");
    // History needs the recorded erasures to tell erased details from damaged ones.
    let e = ledger.history("kalejdo", "cust-1").await.unwrap_err();
    assert!(is_internal(&e), "{e:?}");
    // The committer cannot fold a new group: it is durable, and the handle takes no more.
    let _ = ledger.append(consent("kalejdo", "cust-2", "marketing")).await;
    let next = ledger.append(consent("kalejdo", "cust-3", "marketing")).await;
    assert!(matches!(next, Err(AppendError::Poisoned(StorageError::Internal(_)))), "{next:?}");
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_does_not_fall_back_to_the_lagging_index_on_a_poisoned_lock() {
    let (_d, _path, ledger) = fresh_ledger().await;
    for p in ["marketing", "newsletter", "profiling"] {
        ledger.append(consent("kalejdo", "cust-1", p)).await.unwrap();
    }
    assert_eq!(ledger.history("kalejdo", "cust-1").await.unwrap().len(), 3);
    ledger.poison_heads_for_test();
    let e = ledger.history("kalejdo", "cust-1").await.unwrap_err();
    assert!(is_internal(&e), "{e:?}");
    ledger.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_indexer_poisons_the_ledger_and_close_reports_its_panic() {
    let (_d, path, ledger) = fresh_ledger().await;
    ledger.append(consent("kalejdo", "cust-0", "marketing")).await.unwrap();
    ledger.fail_indexer_for_test();
    // Every receipt returned is durable; once the committer finds the indexer gone the handle
    // refuses appends instead of acknowledging events no proof will ever reach.
    let mut acknowledged = 1;
    let mut poisoned = None;
    for i in 1..200 {
        match ledger.append(consent("kalejdo", &format!("cust-{i}"), "marketing")).await {
            Ok(_) => acknowledged += 1,
            Err(e) => {
                poisoned = Some(e);
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let e = poisoned.expect("appends are refused once the indexer stopped");
    assert!(matches!(&e, AppendError::Poisoned(StorageError::Internal(why)) if why.contains("indexer")), "{e:?}");
    match ledger.close().await {
        Err(CloseError::ThreadPanicked { thread, message }) => {
            assert_eq!(thread, "kvitto-indexer");
            assert!(message.contains("injected indexer failure"), "{message}");
        }
        other => panic!("close must report the indexer's panic, got {other:?}"),
    }
    // Nothing acknowledged is lost, and the index catches up on reopen.
    let ledger = reopen(&path).await;
    assert_eq!(ledger.len(), acknowledged);
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.unwrap();
}
