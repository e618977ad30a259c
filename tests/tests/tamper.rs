//! Tamper tests: edit stored records directly through sled, as an attacker with write access
//! to the files could; `verify` must report the exact seq and reason for each.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use kvitto::{Ledger, VerifyReport};
use kvitto_core::{EventKind, Id, decode_event, encode_event};
use kvitto_integration::*;
use kvitto_store::{Store, tamper};

/// A ledger of 40 events over 5 subjects, some with details; returns its dir.
async fn ledger_of_40() -> (tempfile::TempDir, std::path::PathBuf) {
    let (d, path, ledger) = fresh_ledger().await;
    for i in 0..40 {
        let subject = format!("cust-{}", i % 5);
        let draft = if i % 3 == 0 {
            collected_with_details("kalejdo", &subject, &format!("p{i}@example.se"))
        } else {
            consent("kalejdo", &subject, "marketing")
        };
        ledger.append(draft).await.unwrap();
    }
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.expect("ledger closes cleanly");
    (d, path)
}

fn with_store(path: &Path, f: impl FnOnce(&Store)) {
    let (store, _, _) = Store::open(path).unwrap();
    f(&store);
}

async fn verify(path: &Path) -> VerifyReport {
    let ledger = reopen(path).await;
    let r = ledger.verify().await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    r
}

fn assert_fails_at(r: &VerifyReport, seq: u64, reason: &str) {
    let f = r.failure.as_ref().unwrap_or_else(|| panic!("verify passed; expected a failure at seq {seq}"));
    assert_eq!(f.seq, Some(seq), "wrong seq: {f}");
    assert!(f.reason.to_string().contains(reason), "reason {} does not mention {reason:?}", f.reason);
}

/// Re-encodes event `seq` with `edit` applied (a valid event with different content).
fn rewrite_event(store: &Store, seq: u64, edit: impl FnOnce(&mut kvitto_core::Event)) {
    tamper::edit_record(store, seq, |r| {
        let mut e = decode_event(&r.canonical).unwrap();
        edit(&mut e);
        r.canonical = encode_event(&e);
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_field_is_reported_at_that_seq() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| {
        rewrite_event(s, 17, |e| {
            if let EventKind::ConsentGiven { purpose, .. } = &mut e.kind {
                *purpose = Id::new("profiling").unwrap();
            }
        })
    });
    assert_fails_at(&verify(&path).await, 17, "altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_last_event_is_caught_by_the_head() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| rewrite_event(s, 39, |e| e.actor = Id::new("mallory").unwrap()));
    assert_fails_at(&verify(&path).await, 39, "altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_reported() {
    let (_d, path) = ledger_of_40().await;
    // A byte inside the controller string: still decodes as a different valid id.
    with_store(&path, |s| tamper::edit_record(s, 8, |r| r.canonical[1 + 8 + 32 + 8 + 8 + 16 + 4] = b'x').unwrap());
    assert_fails_at(&verify(&path).await, 8, "altered");
    // A byte near the end (inside event 3's payload commitment): XOR, so the byte always
    // changes — setting it to a constant left it unchanged 1 time in 256 (a flaky test).
    with_store(&path, |s| {
        tamper::edit_record(s, 3, |r| {
            let e = decode_event(&r.canonical).unwrap();
            let at = encode_event(&e).len() - 1 - 1;
            r.canonical[at] ^= 0x5a;
        })
        .unwrap()
    });
    assert_fails_at(&verify(&path).await, 3, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_record_is_reported_missing() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| tamper::delete_record(s, 22).unwrap());
    assert_fails_at(&verify(&path).await, 22, "missing");

    // Inside one chunk (a batch is one commit group, one sled value).
    let (_d2, path, ledger) = fresh_ledger().await;
    let batch = (0..10).map(|i| consent("kazoom", &format!("c{}", i % 3), "product-news")).collect();
    ledger.append_batch(batch).await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    with_store(&path, |s| tamper::delete_record(s, 5).unwrap());
    assert_fails_at(&verify(&path).await, 5, "expected the event with seq 5, found seq 6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_records_are_reported() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| tamper::swap_records(s, 11, 12).unwrap());
    assert_fails_at(&verify(&path).await, 11, "found seq 12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_links_are_reported() {
    let (_d, path) = ledger_of_40().await;
    // The stored back-link (walks history) pointing elsewhere.
    with_store(&path, |s| tamper::edit_record(s, 30, |r| r.back_link = Some(1)).unwrap());
    assert_fails_at(&verify(&path).await, 30, "back-link");

    let (_d2, path) = ledger_of_40().await;
    // The hashed subject link re-pointed, the event re-sealed consistently with itself.
    with_store(&path, |s| {
        rewrite_event(s, 26, |e| {
            let link = e.subject.as_mut().unwrap();
            link.subject_seq += 1;
        })
    });
    assert_fails_at(&verify(&path).await, 26, "subject_seq");

    let (_d3, path) = ledger_of_40().await;
    // The global link of one event re-pointed at its own predecessor's predecessor.
    with_store(&path, |s| rewrite_event(s, 14, |e| e.prev_hash = kvitto::EventHash([9; 32])));
    assert_fails_at(&verify(&path).await, 14, "prev_hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_tail_is_reported() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| tamper::truncate_from(s, 35).unwrap());
    assert_fails_at(&verify(&path).await, 35, "missing: the stored head says 40 events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_ciphertext_and_edited_head_and_index_are_reported() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| tamper::edit_record(s, 9, |r| r.sealed = None).unwrap());
    assert_fails_at(&verify(&path).await, 9, "commits to details but none are stored");

    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| {
        let mut head = s.head().unwrap();
        head.head_hash[0] ^= 1;
        tamper::set_head(s, &head).unwrap();
    });
    assert_fails_at(&verify(&path).await, 39, "stored head hash");

    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| {
        let (id, _) = s.indexed_event_ids().next().unwrap().unwrap();
        let mut key = vec![b'e'];
        key.extend_from_slice(id.as_bytes());
        tamper::put_index_raw(s, &key, &7u64.to_be_bytes()).unwrap();
    });
    let r = verify(&path).await;
    let f = r.failure.expect("edited index must fail verify");
    assert!(f.to_string().contains("index") && f.to_string().contains("points to seq 7"), "{f}");
    assert!(
        matches!(
            f.reason,
            kvitto::FailureReason::Index { problem: kvitto::IndexProblem::EventId { indexed: 7, .. }, .. }
        ),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untouched_ledger_verifies_and_reopens_after_repair_of_nothing() {
    let (_d, path) = ledger_of_40().await;
    let r = verify(&path).await;
    assert!(r.is_ok(), "{:?}", r.failure);
    assert_eq!((r.count, r.subjects), (40, 5));
    let ledger: Ledger = reopen(&path).await;
    assert_eq!(ledger.history("kalejdo", "cust-0").await.unwrap().len(), 8);
}

/// One flipped ciphertext byte (AEAD tag fails) and ciphertext swapped in from another event
/// of the same subject (opens under another event id: fails too) are reported at their seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_sealed_details_are_reported() {
    let (_d, path) = ledger_of_40().await;
    with_store(&path, |s| {
        tamper::edit_record(s, 6, |r| {
            let sealed = r.sealed.as_mut().unwrap();
            let mid = sealed.len() / 2;
            sealed[mid] ^= 0x01;
        })
        .unwrap()
    });
    assert_fails_at(&verify(&path).await, 6, "do not open with the subject's `kundregister` key");
    with_store(&path, |s| {
        let other = s.record(21).unwrap().unwrap().sealed;
        tamper::edit_record(s, 6, |r| r.sealed = other).unwrap()
    });
    assert_fails_at(&verify(&path).await, 6, "AEAD tag or commitment fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_state_copied_from_another_subject_is_reported() {
    let (_d, path, [kz1, kz2], kz1_consent) = consent_and_withdrawal().await;
    with_store(&path, |s| assert!(tamper::copy_projection_state(s, &kz1, &kz2).unwrap()));
    let ledger = reopen(&path).await;
    // The attack works on the answers: KZ-2 now looks allowed, by KZ-1's event.
    let d = ledger.may_process("kazoom", "KZ-2", "product-news", kvitto::AsOf::now()).unwrap();
    assert_eq!((d.allowed, d.seq), (true, Some(kz1_consent)), "{d:?}");
    let r = ledger.verify().await.unwrap();
    let f = r.failure.expect("verify must notice a swapped projection state");
    assert_eq!(
        f.reason,
        kvitto::FailureReason::Projection { owner: kvitto::StateOwner::Subject(kz2), part: "first" },
        "{f}"
    );
    assert!(f.to_string().contains(&format!("subject {kz2}")), "{f}");
    // A rebuild repairs it, and verify agrees.
    ledger.rebuild().await.unwrap();
    assert!(!ledger.may_process("kazoom", "KZ-2", "product-news", kvitto::AsOf::now()).unwrap().allowed);
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_reference_rewritten_in_the_vault_is_reported() {
    let (_d, path) = ledger_of_40().await;
    let ledger = reopen(&path).await;
    let cust1 = ledger.subject_id(&Id::new("kalejdo").unwrap(), &kvitto::ExternalRef::new("cust-1").unwrap());
    ledger.close().await.expect("ledger closes cleanly");

    // An insider holding the ledger secret rewrites cust-1's reference to cust-2, re-tagged.
    with_store(&path, |s| assert!(tamper::rewrite_vault_reference(s, &cust1, "cust-2", true).unwrap()));
    let ledger = reopen(&path).await;
    // The attack works on the answers: cust-1's events now carry another customer's reference.
    let log = ledger.log(0..40).await.unwrap();
    let shown: Vec<_> = log
        .iter()
        .filter(|e| e.event.subject.is_some_and(|l| l.subject == cust1))
        .map(|e| e.subject_ref.clone())
        .collect();
    assert!(!shown.is_empty() && shown.iter().all(|r| r.as_deref() == Some("cust-2")), "{shown:?}");
    let f = ledger.verify().await.unwrap().failure.expect("verify must notice a rewritten reference");
    assert_eq!(f.check(), "vault");
    match &f.reason {
        kvitto::FailureReason::VaultFrame { segment, problem, .. } => {
            assert_eq!(segment, "seg-00000001.keys");
            assert_eq!(*problem, kvitto_vault::FrameProblem::WrongSubject(cust1));
        }
        other => panic!("{other:?}"),
    }
    assert!(!f.to_string().contains("cust-"), "the finding names no reference: {f}");
    ledger.close().await.expect("ledger closes cleanly");

    // Without the secret, recomputing the old unkeyed checksum no longer passes: open refuses.
    with_store(&path, |s| assert!(tamper::rewrite_vault_reference(s, &cust1, "cust-1", false).unwrap()));
    let err =
        Ledger::open(&path, kvitto::OpenOptions::default()).await.expect_err("a frame with a bad tag refuses to open");
    let text = err.to_string();
    assert!(text.contains("seg-00000001.keys") && text.contains("authentication failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_of_version_1_is_migrated_once_and_a_downgrade_after_is_refused() {
    let (_d, path) = ledger_of_40().await;
    let segment = path.join("vault").join("seg-00000001.keys");
    with_store(&path, |s| assert_eq!(tamper::write_vault_as_version_1(s, false).unwrap(), 1));
    let v1 = std::fs::read(&segment).unwrap();
    assert_eq!(v1[4], 1, "written as version 1");
    // The first open rewrites the segment with tags, keeps every key, and verify agrees.
    let r = verify(&path).await;
    assert!(r.is_ok(), "{:?}", r.failure);
    let v2 = std::fs::read(&segment).unwrap();
    assert_eq!((v2[4], v2.len()), (2, v1.len()));
    let ledger = reopen(&path).await;
    let history = ledger.history("kalejdo", "cust-0").await.unwrap();
    assert!(history.iter().any(|e| matches!(e.details, kvitto::DetailsView::Disclosed(_))), "details still open");
    ledger.close().await.expect("ledger closes cleanly");
    // From now on a version 1 segment is a replaced file: open refuses it.
    with_store(&path, |s| assert_eq!(tamper::write_vault_as_version_1(s, true).unwrap(), 1));
    let err = Ledger::open(&path, kvitto::OpenOptions::default()).await.expect_err("a downgraded vault is refused");
    assert!(err.to_string().contains("version 1 segment"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_of_another_schema_or_layout_are_rebuilt_not_misread() {
    for (key, value) in [(&b"F"[..], vec![7u8; 32]), (&b"L"[..], 99u32.to_be_bytes().to_vec())] {
        let (_d, path, [kz1, kz2], _) = consent_and_withdrawal().await;
        // States a build with another schema wrote: KZ-2's bytes are not what this build
        // would make of them (here: KZ-1's), and the recorded version says so.
        with_store(&path, |s| {
            assert!(tamper::copy_projection_state(s, &kz1, &kz2).unwrap());
            tamper::put_projection_raw(s, key, &value).unwrap();
        });
        let ledger = reopen(&path).await;
        let d = ledger.may_process("kazoom", "KZ-2", "product-news", kvitto::AsOf::now()).unwrap();
        assert!(!d.allowed, "with another {} recorded the states must be rebuilt: {d:?}", key[0] as char);
        assert!(ledger.verify().await.unwrap().is_ok());
        ledger.close().await.expect("ledger closes cleanly");
        // The rebuild recorded this build's version: the next open loads without rebuilding.
        with_store(&path, |s| {
            let stored: Vec<Vec<u8>> =
                s.projection_states().map(|e| e.unwrap()).filter(|(k, _)| k == key).map(|(_, v)| v).collect();
            assert_eq!(stored.len(), 1);
            assert_ne!(stored[0], value);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_states_are_stored_compressed_and_plain_ones_still_load() {
    let (_d, path, [kz1, kz2], _) = consent_and_withdrawal().await;
    with_store(&path, |s| {
        assert!(tamper::write_plain(s, tamper::PlainTree::Projections).unwrap() > 0, "states are stored compressed");
        assert_eq!(tamper::write_plain(s, tamper::PlainTree::Projections).unwrap(), 0, "all plain now");
        // KZ-2's plain state replaced by KZ-1's: loaded as it is (not rebuilt), it allows.
        assert!(tamper::copy_projection_state(s, &kz1, &kz2).unwrap());
    });
    let ledger = reopen(&path).await;
    let d = ledger.may_process("kazoom", "KZ-2", "product-news", kvitto::AsOf::now()).unwrap();
    assert!(d.allowed, "plain states from before compression load without a rebuild: {d:?}");
    // `verify` compares them with a fresh fold and finds the copied one.
    assert!(ledger.verify().await.unwrap().failure.is_some());
}

/// A rebuild reads the log on one thread and folds on another: damage the reading side finds
/// fails the rebuild with the event it names, nothing hangs, and the states it would have
/// replaced still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_over_a_damaged_log_fails_naming_the_event_and_keeps_the_states() {
    for (seq, damage) in [(22u64, "missing"), (9, "does not decode")] {
        let (_d, path) = ledger_of_40().await;
        let before = {
            let ledger = reopen(&path).await;
            let p = ledger.projections().unwrap();
            ledger.close().await.expect("ledger closes cleanly");
            p
        };
        with_store(&path, |s| match damage {
            "missing" => tamper::delete_record(s, seq).unwrap(),
            // Cut the event short: its canonical bytes no longer decode.
            _ => tamper::edit_record(s, seq, |r| r.canonical.truncate(20)).unwrap(),
        });
        let ledger = reopen(&path).await;
        let err = ledger.rebuild().await.expect_err("a rebuild over a damaged log fails");
        let text = err.to_string();
        assert!(text.contains(&format!("seq {seq}")), "{damage}: {text}");
        assert_eq!(ledger.projections().unwrap(), before, "{damage}: the states in use are kept");
        ledger.close().await.expect("ledger closes cleanly");
        let ledger = reopen(&path).await;
        assert_eq!(ledger.projections().unwrap(), before, "{damage}: and so are the persisted ones");
        ledger.close().await.expect("ledger closes cleanly");
    }
}
