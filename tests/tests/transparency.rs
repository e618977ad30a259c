//! Complete histories and what a verifier already holds: a bundle proves it holds all of the
//! subject's events up to the map commitment's tree size (tail, middle and head omissions
//! fail; an absent subject is proven absent); forks and rollbacks are caught by
//! `verify-bundle --since` and `verify --against`.
#![allow(clippy::unwrap_used)]

use kvitto::Ledger;
use kvitto_integration::*;
use kvitto_proof::bundle::{BundleError, Options, Trust, verify_with};
use serde_json::Value;

fn check(b: &Value, key: &str, since: Option<&str>) -> Result<kvitto_proof::bundle::VerifiedBundle, BundleError> {
    verify_with(&serde_json::to_string(b).unwrap(), &Options { since, ..Options::trusting(Trust::Key(key)) })
}

async fn history(ledger: &Ledger, n: usize) {
    for i in 0..n {
        ledger.append(consent("kazoom", &format!("KZ-{}", i % 3), &format!("p{i}"))).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_prove_complete_histories_and_absence() {
    let (_d, _p, ledger) = fresh_ledger().await;
    history(&ledger, 30).await;
    ledger.checkpoint().await.unwrap();
    let key = ledger.verifier_key().unwrap();
    let b = ledger.export_bundle("kazoom", "KZ-1", None, None).await.unwrap();
    let v = check(&b, &key, None).unwrap();
    assert_eq!((v.events.len(), v.complete_up_to, v.size), (10, Some(30), 31));

    // Tail truncation (with `info` doctored to match), middle and head omissions all fail.
    let mut t = b.clone();
    t["events"].as_array_mut().unwrap().pop();
    t["info"]["events_after_checkpoint"] = 0.into();
    let e = check(&t, &key, None).unwrap_err().to_string();
    assert!(e.contains("incomplete") && e.contains("says the subject has 10 event(s)") && e.contains("holds 9"), "{e}");
    let mut m = b.clone();
    m["events"].as_array_mut().unwrap().remove(4);
    assert!(check(&m, &key, None).unwrap_err().to_string().contains("subject_seq 5 where 4 is due"));
    let mut h = b.clone();
    h["events"].as_array_mut().unwrap().remove(0);
    assert!(check(&h, &key, None).is_err());
    // Stripping the map proof leaves a bundle that proves nothing about completeness.
    let mut s = b.clone();
    s.as_object_mut().unwrap().remove("completeness");
    assert!(matches!(check(&s, &key, None), Err(BundleError::Incomplete(_))));
    // Another subject's map proof does not fit this subject.
    let other = ledger.export_bundle("kazoom", "KZ-2", None, None).await.unwrap();
    let mut x = b.clone();
    x["completeness"] = other["completeness"].clone();
    assert!(check(&x, &key, None).unwrap_err().to_string().contains("subject map proof"));

    // A customer the controller never recorded: a bundle with no events proves the absence.
    let absent = ledger.export_bundle("kazoom", "KZ-NEVER", None, None).await.unwrap();
    let v = check(&absent, &key, None).unwrap();
    assert_eq!((v.events.len(), v.complete_up_to), (0, Some(30)));
    // …and an absence claim for a subject with events fails: its own (empty) events plus
    // the real subject's id.
    let mut lie = absent.clone();
    lie["subject_id"] = b["subject_id"].clone();
    assert!(matches!(check(&lie, &key, None), Err(BundleError::Incomplete(_))));

    // Later events: a new checkpoint commits the map again; the older checkpoint's bundle
    // still verifies (its commitment is re-derived from the log).
    history(&ledger, 6).await;
    let note31 = ledger.checkpoint_note(Some(31)).unwrap().unwrap().1;
    ledger.checkpoint().await.unwrap();
    let new = ledger.export_bundle("kazoom", "KZ-1", None, None).await.unwrap();
    let v = check(&new, &key, None).unwrap();
    assert_eq!((v.events.len(), v.complete_up_to, v.size), (12, Some(37), 38));
    let old = ledger.export_bundle("kazoom", "KZ-1", Some(31), None).await.unwrap();
    assert_eq!(check(&old, &key, None).unwrap().complete_up_to, Some(30));
    // Consistency from a checkpoint the recipient holds.
    let since = ledger.export_bundle("kazoom", "KZ-1", None, Some(&note31)).await.unwrap();
    assert_eq!(check(&since, &key, Some(&note31)).unwrap().extends, Some(31));
    let r = check(&new, &key, Some(&note31)).unwrap_err().to_string();
    assert!(r.contains("export the bundle with --since"), "{r}");
    // Rollback: the bundle is older than what the verifier holds.
    let note38 = ledger.checkpoint_note(None).unwrap().unwrap().1;
    assert!(matches!(check(&old, &key, Some(&note38)), Err(BundleError::Rollback(_))));
    // A repeated checkpoint with nothing new commits nothing new.
    ledger.checkpoint().await.unwrap();
    assert_eq!(ledger.len(), 38);
    assert!(ledger.verify().await.unwrap().is_ok());
}

/// Two copies of one ledger extended differently: same origin, same key, two histories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_are_caught_by_what_a_verifier_holds() {
    let (d, path_a, a) = fresh_ledger().await;
    history(&a, 12).await;
    let common = a.checkpoint().await.unwrap();
    a.close().await.expect("ledger closes cleanly");
    let path_b = d.path().join("copy");
    copy_tree(&path_a, &path_b);
    let (a, b) = (reopen(&path_a).await, reopen(&path_b).await);
    a.append(consent("kazoom", "KZ-1", "a-only")).await.unwrap();
    b.append(consent("kazoom", "KZ-1", "b-only")).await.unwrap();
    let note_a = a.checkpoint().await.unwrap();
    let note_b = b.checkpoint().await.unwrap();
    let key = a.verifier_key().unwrap();
    assert_eq!(key, b.verifier_key().unwrap());
    let size = |n: &str| n.split('\n').nth(1).unwrap().to_string();
    assert_eq!(size(&note_a), size(&note_b), "same size, different roots");
    // A regulator holding A's checkpoint gets B's bundle: same size, another root.
    let from_b = b.export_bundle("kazoom", "KZ-1", None, None).await.unwrap();
    assert!(check(&from_b, &key, None).is_ok(), "alone, each fork verifies");
    let e = check(&from_b, &key, Some(&note_a)).unwrap_err();
    assert!(matches!(e, BundleError::Fork(_)), "{e}");
    // B grows; its consistency proof from the common checkpoint is fine, from A's is not.
    history(&b, 5).await;
    b.checkpoint().await.unwrap();
    let refused = b.export_bundle("kazoom", "KZ-1", None, Some(&note_a)).await.unwrap_err().to_string();
    assert!(refused.contains("another history (a fork)"), "{refused}");
    let mut from_b = b.export_bundle("kazoom", "KZ-1", None, Some(&common)).await.unwrap();
    assert!(check(&from_b, &key, Some(&common)).is_ok());
    // Claim the proof is from A's size: it does not verify against A's root.
    from_b["consistency"]["size1"] = size(&note_a).parse::<u64>().unwrap().into();
    let e = check(&from_b, &key, Some(&note_a)).unwrap_err();
    assert!(matches!(e, BundleError::Fork(_)), "{e}");
    // The auditor: A's ledger does not contain B's checkpoint.
    let f = a.verify_against(Some(&note_b), |_, _| {}).await.unwrap().failure.unwrap();
    assert!(f.reason.to_string().contains("fork or rewrite"), "{f}");
    assert!(matches!(f.reason, kvitto::FailureReason::Fork { .. }), "{f:?}");
    assert!(a.verify_against(Some(&note_a), |_, _| {}).await.unwrap().is_ok());
}

/// An insider truncates the store and rewrites `acked`: `verify` alone passes, `verify
/// --against` a checkpoint kept outside fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_caught_against_a_held_checkpoint() {
    let (_d, path, ledger) = fresh_ledger().await;
    history(&ledger, 20).await;
    ledger.checkpoint().await.unwrap();
    history(&ledger, 10).await;
    let held = ledger.checkpoint().await.unwrap();
    let log = ledger.log(0..u64::MAX).await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        // Back to the first checkpoint's 21 events: records, head, acked, later checkpoint.
        kvitto_store::tamper::truncate_from(&store, 21).unwrap();
        let last = &log[20];
        kvitto_store::tamper::set_head(
            &store,
            &kvitto_storage::Head {
                next_seq: 21,
                head_hash: last.hash.0,
                last_recorded_at: last.event.recorded_at.as_micros(),
            },
        )
        .unwrap();
        kvitto_store::tamper::set_acked(&store, &kvitto_storage::Acked { next_seq: 21, head_hash: last.hash.0 })
            .unwrap();
        kvitto_store::tamper::remove_checkpoint(&store, 32).unwrap();
        kvitto_store::tamper::remove_index_prefix(&store, b"").unwrap();
        store.clear_map().unwrap();
    }
    let ledger = reopen(&path).await;
    assert_eq!(ledger.len(), 21);
    let r = ledger.verify().await.unwrap();
    assert!(r.is_ok(), "the truncated store is self-consistent: {:?}", r.failure);
    let f = ledger.verify_against(Some(&held), |_, _| {}).await.unwrap().failure.unwrap();
    assert_eq!(f.reason, kvitto::FailureReason::Rollback { log: 21, held: 32 }, "{f}");
    assert!(
        f.to_string().contains("rollback: the ledger holds 21 events") && f.to_string().contains("32 existed"),
        "{f}"
    );
    let e = ledger.verify_against(Some("not a checkpoint\n"), |_, _| {}).await.unwrap_err();
    assert!(matches!(e, kvitto::VerifyError::Held(_)), "{e}");
}

/// A damaged subject map snapshot (derived data) is replaced by a fresh fold on open: the
/// next commitment is still the map the events give, and bundles still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_map_snapshot_is_folded_afresh() {
    let (_d, path, ledger) = fresh_ledger().await;
    history(&ledger, 12).await;
    ledger.checkpoint().await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        assert_eq!(kvitto_store::tamper::corrupt_map_snapshot(&store).unwrap(), 3);
    }
    let ledger = reopen(&path).await;
    // Only KZ-0 changes: KZ-1 and KZ-2 keep their damaged snapshot entries unless refolded.
    ledger.append(consent("kazoom", "KZ-0", "later")).await.unwrap();
    ledger.checkpoint().await.unwrap();
    let r = ledger.verify().await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failure);
    let key = ledger.verifier_key().unwrap();
    let b = ledger.export_bundle("kazoom", "KZ-1", None, None).await.unwrap();
    assert_eq!(check(&b, &key, None).unwrap().complete_up_to, Some(14));
}

/// A crash after a commitment's append but before the snapshot's write: the commitment is
/// picked up from the log on open and recorded, so later checkpoints never lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commitment_recovered_after_a_crash_is_kept() {
    let (_d, path, ledger) = fresh_ledger().await;
    history(&ledger, 10).await;
    ledger.checkpoint().await.unwrap(); // commitment over 10 events at seq 10
    ledger.close().await.expect("ledger closes cleanly");
    let before = {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::map_tree_raw(&store).unwrap()
    };
    let ledger = reopen(&path).await;
    history(&ledger, 10).await;
    ledger.checkpoint().await.unwrap(); // over 21 events at seq 21, checkpoint 22
    ledger.close().await.expect("ledger closes cleanly");
    {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_store::tamper::restore_map_tree_raw(&store, &before).unwrap();
    }
    let ledger = reopen(&path).await;
    let key = ledger.verifier_key().unwrap();
    let complete = |b: &Value| check(b, &key, None).unwrap().complete_up_to;
    assert_eq!(complete(&ledger.export_bundle("kazoom", "KZ-1", Some(22), None).await.unwrap()), Some(21));
    history(&ledger, 5).await;
    ledger.checkpoint().await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    let ledger = reopen(&path).await;
    assert_eq!(complete(&ledger.export_bundle("kazoom", "KZ-1", Some(22), None).await.unwrap()), Some(21));
    assert!(ledger.verify().await.unwrap().is_ok());
}
