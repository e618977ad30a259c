//! Erasure: a `data_erased` destroys the keys in its scope before its receipt, every read
//! path shows the details as erased, `verify` accepts exactly the missing keys an erasure
//! covers, bundles still verify, holds and deferrals refuse it, nothing comes back on reopen
//! or rebuild, and no erased key or reference is left in any file under the ledger.
#![allow(clippy::unwrap_used)]

use kvitto::{AppendError, DetailsView, EraseError, EraseOutcome, Ledger};
use kvitto_integration::*;
use kvitto_proof::bundle::{Trust, verify};

/// One collection with details into `register`.
fn collected(subject: &str, register: &str, marker: &str) -> kvitto::Draft {
    draft(&format!(
        r#"{{"type":"data_collected","controller":"kalejdo","subject":"{subject}","register":"{register}","categories":["contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject","details":{{"note":"{marker}"}}}}"#
    ))
}

/// The pseudonym of a customer of Kalejdo.
fn pseudonym(ledger: &Ledger, r: &str) -> kvitto::SubjectId {
    ledger.subject_id(&kvitto::Id::new("kalejdo").unwrap(), &kvitto::ExternalRef::new(r).unwrap())
}

fn details_of(events: &[kvitto::LedgerEvent]) -> Vec<&DetailsView> {
    events.iter().map(|e| &e.details).filter(|d| !matches!(d, DetailsView::None)).collect()
}

async fn three_customers(ledger: &Ledger) {
    for (s, reg) in [("REF-ERASE-ALL-B", "kundregister"), ("REF-ERASE-ALL-B", "arendelista")] {
        ledger.append(collected(s, reg, "marker-b")).await.unwrap();
    }
    ledger.append(collected("REF-KEEP-A", "kundregister", "marker-a-kund")).await.unwrap();
    ledger.append(collected("REF-KEEP-A", "arendelista", "marker-a-arende")).await.unwrap();
    ledger.append(collected("REF-KEEP-C", "kundregister", "marker-c")).await.unwrap();
    ledger.append(consent("kalejdo", "REF-KEEP-C", "marketing")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_destroys_keys_and_references_on_disk_and_every_read_path_shows_it() {
    let (dir, path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    let b_keys = ledger.keys_for_test("kalejdo", "REF-ERASE-ALL-B");
    let a_keys = ledger.keys_for_test("kalejdo", "REF-KEEP-A");
    assert_eq!((b_keys.len(), a_keys.len()), (2, 2));
    // Before: the references and keys are on disk (so the scan below can fail).
    let before = all_bytes_under(&path);
    assert!(contains(&before, b"REF-ERASE-ALL-B"));
    assert!(b_keys.iter().chain(&a_keys).all(|k| contains(&before, k)));

    let erased_b = match ledger.erase("kalejdo", "REF-ERASE-ALL-B", None, "Art 17 request r-1").await.unwrap() {
        EraseOutcome::Erased(r) => r.seq,
        other => panic!("{other:?}"),
    };
    let erased_a = match ledger.erase("kalejdo", "REF-KEEP-A", Some("arendelista"), "retention").await.unwrap() {
        EraseOutcome::Erased(r) => r.seq,
        other => panic!("{other:?}"),
    };
    // Idempotent: nothing left to destroy, nothing written.
    let n = ledger.len();
    assert_eq!(
        ledger.erase("kalejdo", "REF-ERASE-ALL-B", None, "again").await.unwrap(),
        EraseOutcome::AlreadyErased { seq: erased_b }
    );
    assert_eq!(
        ledger.erase("kalejdo", "REF-KEEP-A", Some("arendelista"), "again").await.unwrap(),
        EraseOutcome::AlreadyErased { seq: erased_a }
    );
    assert_eq!(ledger.len(), n);

    // history: B all erased (by its erasure) and without reference; A's ärendelista erased,
    // its kundregister and C's details still readable.
    let b = ledger.history("kalejdo", "REF-ERASE-ALL-B").await.unwrap();
    assert_eq!(details_of(&b), vec![&DetailsView::Erased { by: erased_b }; 2]);
    assert!(b.iter().all(|e| e.subject_ref.is_none()));
    let a = ledger.history("kalejdo", "REF-KEEP-A").await.unwrap();
    assert!(matches!(details_of(&a)[..], [DetailsView::Disclosed(_), DetailsView::Erased { by }] if *by == erased_a));
    assert!(a.iter().all(|e| e.subject_ref.as_deref() == Some("REF-KEEP-A")));
    let c = ledger.history("kalejdo", "REF-KEEP-C").await.unwrap();
    assert!(matches!(details_of(&c)[..], [DetailsView::Disclosed(v)] if v["note"] == "marker-c"));

    // log --json: a marker, not plaintext, and no reference for B.
    let log = ledger.log(0..ledger.len()).await.unwrap();
    let json: Vec<String> = log.iter().map(|e| serde_json::Value::Object(e.to_json()).to_string()).collect();
    let all = json.join("\n");
    assert!(!all.contains("marker-b") && !all.contains("marker-a-arende") && !all.contains("REF-ERASE-ALL-B"), "{all}");
    assert!(all.contains("marker-a-kund") && all.contains("marker-c"));
    assert!(json[0].contains(r#""details":"<erased>""#) && json[0].contains(&format!(r#""erased_by":{erased_b}"#)));

    // Art 20 export and Art 15 report.
    let portable = ledger.export_portable("kalejdo", "REF-ERASE-ALL-B", kvitto::AsOf::now()).await.unwrap();
    assert!(portable.items.iter().all(|i| i.erased && i.data.is_none()));
    assert_eq!(portable.items.len(), 2);
    let report = ledger.access_report("kalejdo", "REF-KEEP-A", kvitto::AsOf::now()).unwrap();
    assert_eq!(report.erased, vec!["arendelista".to_string()]);
    // The erased register's data is no longer listed as held; the other register's is.
    let held: Vec<String> = report.categories.iter().flat_map(|c| c.registers.iter().map(|r| r.to_string())).collect();
    assert!(held.contains(&"kundregister".to_string()) && !held.contains(&"arendelista".to_string()), "{held:?}");
    assert!(report.retention.iter().all(|r| r.register.as_str() != "arendelista"));
    let report = ledger.access_report("kalejdo", "REF-ERASE-ALL-B", kvitto::AsOf::now()).unwrap();
    assert!(report.categories.is_empty(), "{:?}", report.categories);
    assert_eq!(report.erased, vec!["*".to_string()]);

    // verify accepts the destroyed keys (covered by recorded erasures).
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);

    // The regulator's bundle still verifies and says which events were erased, by which seq.
    ledger.checkpoint().await.unwrap();
    let bundle = ledger.export_bundle("kalejdo", "REF-ERASE-ALL-B", None, None).await.unwrap();
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(!text.contains("marker-b") && !text.contains("REF-ERASE-ALL-B"));
    let verified = verify(&text, Trust::Embedded).unwrap();
    let erased: Vec<Option<u64>> = verified.events.iter().filter(|e| e.withheld).map(|e| e.erased_by).collect();
    assert_eq!(erased, vec![Some(erased_b); 2]);

    // On disk: no erased key and no erased reference anywhere under the ledger; the others stay.
    ledger.close().await.expect("ledger closes cleanly");
    let after = all_bytes_under(&path);
    assert!(!contains(&after, b"REF-ERASE-ALL-B"), "an erased reference is still on disk");
    for (i, k) in b_keys.iter().enumerate() {
        assert!(!contains(&after, k), "erased key {i} of B is still on disk");
    }
    let a_left = {
        let l = reopen(&path).await;
        let k = l.keys_for_test("kalejdo", "REF-KEEP-A");
        l.close().await.expect("ledger closes cleanly");
        k
    };
    assert_eq!(a_left.len(), 1);
    let a_erased: Vec<_> = a_keys.iter().filter(|k| !a_left.contains(k)).collect();
    assert_eq!(a_erased.len(), 1);
    assert!(!contains(&after, a_erased[0]), "A's erased register key is still on disk");
    assert!(contains(&after, &a_left[0]) && contains(&after, b"REF-KEEP-A"));

    // No resurrection: reopen and rebuild show the same.
    let ledger = reopen(&path).await;
    ledger.rebuild().await.unwrap();
    let b = ledger.history("kalejdo", "REF-ERASE-ALL-B").await.unwrap();
    assert_eq!(details_of(&b), vec![&DetailsView::Erased { by: erased_b }; 2]);
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    ledger.close().await.expect("ledger closes cleanly");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_subject_or_register_is_refused_and_nothing_is_written() {
    let (_dir, _path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    let n = ledger.len();
    let e = ledger.erase("kalejdo", "REF-NOBODY", None, "x").await.unwrap_err();
    assert!(matches!(e, EraseError::UnknownSubject { .. }), "{e}");
    let e = ledger.erase("kalejdo", "REF-KEEP-A", Some("no-such-register"), "x").await.unwrap_err();
    assert!(matches!(e, EraseError::UnknownRegister { .. }) && e.to_string().contains("no-such-register"), "{e}");
    let e = ledger.erase("kalejdo", "REF-KEEP-A", None, "").await.unwrap_err();
    assert!(matches!(e, EraseError::BadArgument { field: "reason", .. }), "{e}");
    assert_eq!(ledger.len(), n);
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_holds_and_deferrals_in_force_refuse_erasure_whoever_asks() {
    let (_dir, _path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    let hold = ledger
        .append(draft(
            r#"{"type":"legal_hold_placed","controller":"kalejdo","subject":"REF-KEEP-A","hold_id":"case-17","reason":"dispute"}"#,
        ))
        .await
        .unwrap();
    let n = ledger.len();
    // Through the library's erase and through a raw append alike.
    let e = ledger.erase("kalejdo", "REF-KEEP-A", None, "Art 17").await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("case-17") && msg.contains(&format!("seq {}", hold.seq)), "{msg}");
    let raw = draft(r#"{"type":"data_erased","controller":"kalejdo","subject":"REF-KEEP-A","reason":"Art 17"}"#);
    assert!(matches!(ledger.append(raw.clone()).await, Err(AppendError::ErasureBlocked { index: 0, .. })));
    // A release in the same batch, before the erasure, lets it through.
    let release =
        draft(r#"{"type":"legal_hold_released","controller":"kalejdo","subject":"REF-KEEP-A","hold_id":"case-17"}"#);
    assert_eq!(ledger.len(), n, "nothing written while refused");
    ledger.append_batch(vec![release, raw]).await.unwrap();
    assert!(ledger.keys_for_test("kalejdo", "REF-KEEP-A").is_empty());

    // A statutory deferral of one register refuses that register and a full erasure, not others.
    let deferred = ledger
        .append(draft(
            r#"{"type":"erasure_deferred","controller":"kalejdo","subject":"REF-KEEP-C","register":"kundregister","statute":"Bokföringslagen 7 kap. 2 §","until":"2099-12-31T23:59:59Z"}"#,
        ))
        .await
        .unwrap();
    let e = ledger.erase("kalejdo", "REF-KEEP-C", Some("kundregister"), "x").await.unwrap_err();
    assert!(e.to_string().contains("Bokföringslagen") && e.to_string().contains(&format!("seq {}", deferred.seq)));
    assert!(ledger.erase("kalejdo", "REF-KEEP-C", None, "x").await.is_err());
    // A deferral that has run out does not.
    ledger
        .append(draft(
            r#"{"type":"erasure_deferred","controller":"kalejdo","subject":"REF-ERASE-ALL-B","register":"kundregister","statute":"old","until":"2020-01-01T00:00:00Z"}"#,
        ))
        .await
        .unwrap();
    assert!(matches!(
        ledger.erase("kalejdo", "REF-ERASE-ALL-B", Some("kundregister"), "x").await.unwrap(),
        EraseOutcome::Erased(_)
    ));
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_after_an_erasure_get_a_new_key_and_the_old_ones_stay_erased() {
    let (_dir, path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    let erase = draft(
        r#"{"type":"data_erased","controller":"kalejdo","subject":"REF-KEEP-C","register":"kundregister","reason":"x"}"#,
    );
    // In the same batch: refused, nothing written.
    let n = ledger.len();
    let e = ledger.append_batch(vec![erase.clone(), collected("REF-KEEP-C", "kundregister", "new")]).await;
    assert!(matches!(e, Err(AppendError::DetailsAfterErasure { index: 1, erasure: 0 })), "{e:?}");
    assert_eq!(ledger.len(), n);
    // Concurrent callers: whatever the grouping, each event is sealed under the right key.
    let erased = ledger.append(erase).await.unwrap().seq;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let l = ledger.clone();
        set.spawn(async move {
            l.append(collected("REF-KEEP-C", "kundregister", &format!("after-{i}"))).await.unwrap();
            if i % 2 == 0 {
                l.erase("kalejdo", "REF-KEEP-A", Some("kundregister"), "x").await.unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    let c = ledger.history("kalejdo", "REF-KEEP-C").await.unwrap();
    let views = details_of(&c);
    assert_eq!(views[0], &DetailsView::Erased { by: erased });
    assert_eq!(views.iter().filter(|v| matches!(v, DetailsView::Disclosed(_))).count(), 8);
    ledger.close().await.expect("ledger closes cleanly");
    let ledger = reopen(&path).await;
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    ledger.close().await.expect("ledger closes cleanly");
}

/// Polls `done` every few milliseconds for up to 20 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_subjects_are_committed_while_keys_are_destroyed_and_the_erased_subject_waits_for_a_new_key() {
    let (_dir, path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    let pending = path.join("vault").join("erasures.pending");
    let pause = ledger.pause_erasure_for_test();
    let l = ledger.clone();
    let erasing = tokio::spawn(async move { l.erase("kalejdo", "REF-KEEP-A", None, "art. 17").await });
    // The erasure is sealed and its record durable; once committed, the eraser holds before
    // destroying the keys.
    eventually("the pending erasure record", || pending.exists()).await;
    let (l, m) = (ledger.clone(), ledger.clone());
    let erased_subject = tokio::spawn(async move { l.append(collected("REF-KEEP-A", "kundregister", "again")).await });
    let other = tokio::spawn(async move { m.append(collected("REF-NEW-D", "kundregister", "marker-d")).await });
    // The ledger goes on: the new customer's event is sealed, committed and acknowledged
    // while the erasure's keys still wait to be destroyed.
    let d = tokio::time::timeout(std::time::Duration::from_secs(20), other)
        .await
        .expect("another customer's append is answered during the erasure")
        .unwrap()
        .unwrap()
        .seq;
    assert!(!ledger.keys_for_test("kalejdo", "REF-NEW-D").is_empty());
    assert!(pending.exists(), "the erasure is still held");
    assert!(!ledger.keys_for_test("kalejdo", "REF-KEEP-A").is_empty(), "A's old keys are not yet destroyed");
    assert!(!erasing.is_finished(), "the erasure is answered only once its keys are destroyed");
    assert!(!erased_subject.is_finished(), "the erased customer's next event waits for the erasure");
    drop(pause);
    let by = match erasing.await.unwrap().unwrap() {
        EraseOutcome::Erased(r) => r.seq,
        o => panic!("{o:?}"),
    };
    let again = erased_subject.await.unwrap().unwrap().seq;
    assert!(d > by && again > by, "both were sealed after the erasure: {by} < {d}, {again}");
    assert!(ledger.keys_for_test("kalejdo", "REF-KEEP-A").len() == 1, "one new key, for the new event");
    assert!(!pending.exists());
    // A's event after the erasure is under a new key; everything before stays erased.
    let a = ledger.history("kalejdo", "REF-KEEP-A").await.unwrap();
    let views = details_of(&a);
    assert_eq!(views.len(), 3, "{views:?}");
    assert_eq!(views[..2], [&DetailsView::Erased { by }, &DetailsView::Erased { by }]);
    assert!(matches!(views[2], DetailsView::Disclosed(_)), "{:?}", views[2]);
    let d_views = details_of(&ledger.history("kalejdo", "REF-NEW-D").await.unwrap()).len();
    assert_eq!(d_views, 1);
    ledger.close().await.expect("ledger closes cleanly");
    let ledger = reopen(&path).await;
    let a = ledger.history("kalejdo", "REF-KEEP-A").await.unwrap();
    assert!(matches!(details_of(&a)[2], DetailsView::Disclosed(_)));
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_recorded_before_a_crash_is_finished_on_open_and_one_never_recorded_is_dropped() {
    let (dir, path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    ledger.close().await.expect("ledger closes cleanly");
    // The vault as it was before the erasure: as if the writer died after the commit and
    // before destroying the keys, with its pending record in place.
    let vault = path.join("vault");
    let saved = dir.path().join("vault-before");
    std::fs::create_dir(&saved).unwrap();
    for e in std::fs::read_dir(&vault).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), saved.join(e.file_name())).unwrap();
    }
    let ledger = reopen(&path).await;
    let keys = ledger.keys_for_test("kalejdo", "REF-KEEP-C");
    let seq = match ledger.erase("kalejdo", "REF-KEEP-C", None, "x").await.unwrap() {
        EraseOutcome::Erased(r) => r.seq,
        other => panic!("{other:?}"),
    };
    let subject = pseudonym(&ledger, "REF-KEEP-C");
    ledger.close().await.expect("ledger closes cleanly");
    for e in std::fs::read_dir(&saved).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), vault.join(e.file_name())).unwrap();
    }
    let pending = |seq| vec![kvitto_vault::PendingErasure { subject, seq, slot: None }];
    open_vault(&path).record_pending(&pending(seq)).unwrap();
    assert!(contains(&all_bytes_under(&path), &keys[0]), "the key is back on disk");
    let ledger = reopen(&path).await;
    assert!(ledger.keys_for_test("kalejdo", "REF-KEEP-C").is_empty());
    ledger.close().await.expect("ledger closes cleanly");
    assert!(!contains(&all_bytes_under(&path), &keys[0]) && !vault.join("erasures.pending").exists());

    // A pending record whose event never became durable: dropped, keys kept.
    let ledger = reopen(&path).await;
    let a_keys = ledger.keys_for_test("kalejdo", "REF-KEEP-A");
    let a = pseudonym(&ledger, "REF-KEEP-A");
    let next = ledger.len();
    ledger.close().await.expect("ledger closes cleanly");
    open_vault(&path).record_pending(&[kvitto_vault::PendingErasure { subject: a, seq: next, slot: None }]).unwrap();
    let ledger = reopen(&path).await;
    assert_eq!(ledger.keys_for_test("kalejdo", "REF-KEEP-A"), a_keys);
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_still_calls_a_missing_key_without_an_erasure_damage() {
    let (_dir, path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    ledger.erase("kalejdo", "REF-ERASE-ALL-B", None, "x").await.unwrap();
    let a = pseudonym(&ledger, "REF-KEEP-A");
    ledger.close().await.expect("ledger closes cleanly");
    // Destroy A's keys behind the ledger's back: no data_erased covers them.
    open_vault(&path).erase(&a, None).unwrap();
    let ledger = reopen(&path).await;
    let f = ledger.verify().await.unwrap().failure.expect("a lost key is damage");
    assert!(f.reason.to_string().contains("no data_erased covers them"), "{f}");
    let a = ledger.history("kalejdo", "REF-KEEP-A").await.unwrap();
    assert!(details_of(&a).iter().all(|d| matches!(d, DetailsView::Damaged)));
    ledger.close().await.expect("ledger closes cleanly");
}

mod no_resurrection {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Collect { subject: u8, register: bool },
        Erase { subject: u8, register: Option<bool> },
        Consent { subject: u8 },
    }

    fn register(r: bool) -> &'static str {
        if r { "kundregister" } else { "arendelista" }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4u8, any::<bool>()).prop_map(|(subject, register)| Op::Collect { subject, register }),
            2 => (0..4u8, proptest::option::of(any::<bool>())).prop_map(|(subject, register)| Op::Erase { subject, register }),
            1 => (0..4u8).prop_map(|subject| Op::Consent { subject }),
        ]
    }

    /// What every read path must show for the details of event `seq`: the marker, or erased
    /// by the first later erasure that covers it.
    fn expected(ops: &[Applied], seq: u64) -> Option<Result<String, u64>> {
        let (_, Op::Collect { subject, register: r }, note) = ops.iter().find(|(s, ..)| *s == seq)? else {
            return None;
        };
        let mut later: Vec<&Applied> = ops.iter().filter(|(s, ..)| *s > seq).collect();
        later.sort_by_key(|(s, ..)| *s);
        let by = later.into_iter().find_map(|(s, o, _)| match o {
            Op::Erase { subject: es, register } if es == subject && register.is_none_or(|g| g == *r) => Some(*s),
            _ => None,
        });
        Some(by.map_or_else(|| Ok(note.clone()), Err))
    }

    /// An appended op: its seq, the op, and the note its details carry (collections).
    type Applied = (u64, Op, String);

    /// An op's draft; a collection's details carry `note`.
    fn draft_of(op: &Op, note: &str) -> kvitto::Draft {
        match op {
            Op::Collect { subject, register: r } => collected(&format!("s{subject}"), register(*r), note),
            Op::Erase { subject, register: r } => draft(&format!(
                r#"{{"type":"data_erased","controller":"kalejdo","subject":"s{subject}"{},"reason":"p"}}"#,
                r.map(|g| format!(r#","register":"{}""#, register(g))).unwrap_or_default()
            )),
            Op::Consent { subject } => consent("kalejdo", &format!("s{subject}"), "marketing"),
        }
    }

    fn subject_of(op: &Op) -> u8 {
        match op {
            Op::Collect { subject, .. } | Op::Erase { subject, .. } | Op::Consent { subject } => *subject,
        }
    }

    fn check(events: &[kvitto::LedgerEvent], ops: &[Applied], when: &str) {
        for e in events {
            let want = expected(ops, e.event.seq);
            match (&e.details, want) {
                (DetailsView::None, None) => {}
                (DetailsView::Disclosed(v), Some(Ok(m))) => assert_eq!(v["note"], m.as_str(), "{when}"),
                (DetailsView::Erased { by }, Some(Err(b))) => assert_eq!(*by, b, "{when}: seq {}", e.event.seq),
                (got, want) => panic!("{when}: seq {}: got {got:?}, want {want:?}", e.event.seq),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn erased_details_never_come_back(ops in proptest::collection::vec(op(), 1..24)) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let (_dir, path, ledger) = fresh_ledger().await;
                let mut applied = Vec::new();
                for op in ops {
                    let note = format!("m-{}", ledger.len());
                    let seq = ledger.append(draft_of(&op, &note)).await.unwrap().seq;
                    applied.push((seq, op, note));
                }
                let n = ledger.len();
                check(&ledger.log(0..n).await.unwrap(), &applied, "log");
                for s in 0..4 {
                    if let Ok(h) = ledger.history("kalejdo", &format!("s{s}")).await {
                        check(&h, &applied, "history");
                        let p = ledger.export_portable("kalejdo", &format!("s{s}"), kvitto::AsOf::now()).await.unwrap();
                        for item in p.items {
                            let want = expected(&applied, item.seq).unwrap();
                            assert_eq!(item.erased, want.is_err(), "portable seq {}", item.seq);
                            assert_eq!(item.data.is_some(), want.is_ok());
                        }
                    }
                }
                // The regulator's bundle: undisclosed exactly where erased, each by its erasure.
                ledger.checkpoint().await.unwrap();
                for s in 0..4 {
                    let Ok(b) = ledger.export_bundle("kalejdo", &format!("s{s}"), None, None).await else { continue };
                    let v = verify(&serde_json::to_string(&b).unwrap(), Trust::Embedded).unwrap();
                    for e in &v.events {
                        match expected(&applied, e.event.seq) {
                            Some(Ok(_)) => assert!(e.details.is_some(), "bundle seq {}", e.event.seq),
                            Some(Err(by)) => assert_eq!(e.erased_by, Some(by), "bundle seq {}", e.event.seq),
                            None => assert!(!e.withheld),
                        }
                    }
                }
                ledger.close().await.expect("ledger closes cleanly");
                let ledger = reopen(&path).await;
                check(&ledger.log(0..n).await.unwrap(), &applied, "after reopen");
                ledger.rebuild().await.unwrap();
                check(&ledger.log(0..n).await.unwrap(), &applied, "after rebuild");
                let v = ledger.verify().await.unwrap();
                assert!(v.is_ok(), "{:?}", v.failure);
                ledger.close().await.expect("ledger closes cleanly");
            });
        }

        /// The same with one caller per customer, all at once: erasures of one customer run
        /// beside collections for the others (sealed while its keys are destroyed), each
        /// customer's own events in order.
        #[test]
        fn erased_details_never_come_back_under_concurrent_callers(ops in proptest::collection::vec(op(), 1..32)) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let (_dir, path, ledger) = fresh_ledger().await;
                let mut set = tokio::task::JoinSet::new();
                for s in 0..4u8 {
                    let mine: Vec<Op> = ops.iter().filter(|o| subject_of(o) == s).cloned().collect();
                    let l = ledger.clone();
                    set.spawn(async move {
                        let mut applied = Vec::new();
                        for (i, op) in mine.into_iter().enumerate() {
                            let note = format!("m-{s}-{i}");
                            let seq = l.append(draft_of(&op, &note)).await.unwrap().seq;
                            applied.push((seq, op, note));
                        }
                        applied
                    });
                }
                let mut applied = Vec::new();
                while let Some(r) = set.join_next().await {
                    applied.extend(r.unwrap());
                }
                let n = ledger.len();
                assert_eq!(n as usize, ops.len());
                let events = ledger.log(0..n).await.unwrap();
                check(&events, &applied, "concurrent");
                ledger.close().await.expect("ledger closes cleanly");
                let ledger = reopen(&path).await;
                let v = ledger.verify().await.unwrap();
                assert!(v.is_ok(), "{:?}", v.failure);
                ledger.close().await.expect("ledger closes cleanly");
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_by_itself_defers_for_statutes_and_holds_and_a_rerun_records_nothing() {
    let (_dir, _path, ledger) = fresh_ledger().await;
    let at = |d: &str| kvitto::Timestamp::parse_rfc3339(d).unwrap();
    let batch: Vec<kvitto::Draft> = [
        r#"{"type":"retention_rule_declared","controller":"kalejdo","register":"arendelista","trigger":"record_closed","duration":"P12M","occurred_at":"2024-01-01T00:00:00Z"}"#,
        r#"{"type":"retention_rule_declared","controller":"kalejdo","register":"bokforing","trigger":"collected","duration":"P7Y","statute":"Bokföringslagen 7 kap. 2 §","financial_year_end":"12-31","extend_to":"calendar_year_end","occurred_at":"2024-01-01T00:00:00Z"}"#,
    ]
    .iter()
    .map(|d| draft(d))
    .collect();
    ledger.append_batch(batch).await.unwrap();
    for s in ["T-1", "T-2", "T-3"] {
        let mut d = collected(s, "arendelista", "ticket");
        d.occurred_at = Some(at("2025-01-10T10:00:00Z"));
        ledger.append(d).await.unwrap();
        ledger
            .append(draft(&format!(
                r#"{{"type":"record_closed","controller":"kalejdo","subject":"{s}","register":"arendelista","record_id":"ticket-{}","occurred_at":"2025-02-01T00:00:00Z"}}"#,
                s.to_lowercase()
            )))
            .await
            .unwrap();
        let mut b = collected(s, "bokforing", "invoice");
        b.occurred_at = Some(at("2025-03-10T10:00:00Z"));
        ledger.append(b).await.unwrap();
    }
    ledger
        .append(draft(
            r#"{"type":"legal_hold_placed","controller":"kalejdo","subject":"T-3","hold_id":"case-9","reason":"dispute","occurred_at":"2026-01-01T00:00:00Z"}"#,
        ))
        .await
        .unwrap();
    // 2026-03-01: the ärendelista entries are due (closed 2025-02-01 + 12 months), except under
    // the hold; bookkeeping is kept through 2032 (FY 2025 ends 2025-12-31, + 7 years).
    let now = at("2026-03-01T00:00:00Z");
    let plan = ledger.retention_plan(Some("kalejdo"), now).unwrap();
    let status = |s: &str, reg: &str| {
        let id = pseudonym(&ledger, s).to_hex();
        plan.iter().find(|i| i.subject_id == id && i.register.as_str() == reg).map(|i| (i.status.as_str(), i.due_at))
    };
    assert_eq!(status("T-1", "arendelista"), Some(("overdue", Some(at("2026-02-01T00:00:00Z")))));
    assert_eq!(status("T-3", "arendelista").map(|s| s.0), Some("deferred"));
    assert_eq!(status("T-1", "bokforing"), Some(("not_due", Some(at("2033-01-01T00:00:00Z")))));
    let run = ledger.retention_run(Some("kalejdo"), now).await.unwrap();
    assert_eq!(run.erased.len(), 2, "{run:?}");
    assert!(run.erased.iter().all(|(c, _)| c.register.as_str() == "arendelista"));
    let t1 = ledger.history("kalejdo", "T-1").await.unwrap();
    let views = details_of(&t1);
    assert!(matches!(views[0], DetailsView::Erased { .. }) && matches!(views[1], DetailsView::Disclosed(_)));
    // The erasure names the rule that caused it.
    let erasure = t1.iter().find(|e| matches!(e.event.kind, kvitto::EventKind::DataErased { .. })).unwrap();
    assert!(serde_json::Value::Object(erasure.to_json()).to_string().contains("retention: register arendelista"));
    // A second run finds nothing due; the deterministic ids would answer a repeat anyway.
    let n = ledger.len();
    let again = ledger.retention_run(Some("kalejdo"), now).await.unwrap();
    assert!(again.erased.is_empty() && again.refused.is_empty(), "{again:?}");
    assert_eq!(ledger.len(), n);
    let (c, r) = &run.erased[0];
    assert_eq!(kvitto::retention_event_id(c), r.event_id);
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_erasure_does_not_slip_past_a_hold_and_retries_of_erased_events_keep_their_receipt() {
    let (_dir, _path, ledger) = fresh_ledger().await;
    three_customers(&ledger).await;
    ledger
        .append(draft(
            r#"{"type":"legal_hold_placed","controller":"kalejdo","subject":"REF-KEEP-A","hold_id":"h-2","reason":"x","occurred_at":"2026-01-01T00:00:00Z"}"#,
        ))
        .await
        .unwrap();
    let backdated = draft(
        r#"{"type":"data_erased","controller":"kalejdo","subject":"REF-KEEP-A","reason":"x","occurred_at":"2025-06-01T00:00:00Z"}"#,
    );
    assert!(matches!(ledger.append(backdated).await, Err(AppendError::ErasureBlocked { .. })));
    assert_eq!(ledger.keys_for_test("kalejdo", "REF-KEEP-A").len(), 2);

    // An event with details, erased, then new details under a new key: a retry of the first
    // still answers with its original receipt.
    let mut first = collected("REF-KEEP-C", "kundregister", "old");
    first.event_id = Some(kvitto::EventId::new_v7());
    let original = ledger.append(first.clone()).await.unwrap();
    ledger.erase("kalejdo", "REF-KEEP-C", Some("kundregister"), "x").await.unwrap();
    // New data without details: the register is no longer "already erased".
    ledger
        .append(draft(
            r#"{"type":"data_collected","controller":"kalejdo","subject":"REF-KEEP-C","register":"kundregister","categories":["contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject"}"#,
        ))
        .await
        .unwrap();
    assert!(matches!(
        ledger.erase("kalejdo", "REF-KEEP-C", Some("kundregister"), "x").await.unwrap(),
        EraseOutcome::Erased(_)
    ));
    ledger.append(collected("REF-KEEP-C", "kundregister", "new")).await.unwrap();
    assert_eq!(ledger.append(first).await.unwrap(), original);
    ledger.close().await.expect("ledger closes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_and_verify_while_erasures_and_appends_run() {
    let (_dir, _path, ledger) = fresh_ledger().await;
    for i in 0..60 {
        ledger.append(collected(&format!("R-{i}"), "kundregister", "x")).await.unwrap();
    }
    let writer = {
        let l = ledger.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                l.append(collected(&format!("R-{i}"), "arendelista", "y")).await.unwrap();
                l.erase("kalejdo", &format!("R-{i}"), Some("kundregister"), "x").await.unwrap();
            }
        })
    };
    for _ in 0..4 {
        let r = tokio::time::timeout(std::time::Duration::from_secs(60), ledger.rebuild()).await;
        assert!(r.expect("rebuild does not hang while appends run").is_ok());
        let v = ledger.verify().await.unwrap();
        assert!(v.is_ok(), "verify during erasures: {:?}", v.failure);
    }
    writer.await.unwrap();
    let v = ledger.verify().await.unwrap();
    assert!(v.is_ok(), "{:?}", v.failure);
    // A retention run in the future is refused.
    let future = kvitto::Timestamp::parse_rfc3339("2999-01-01T00:00:00Z").unwrap();
    assert!(matches!(ledger.retention_run(None, future).await, Err(kvitto::ReadError::BadQuery { field: "now", .. })));
    ledger.close().await.expect("ledger closes cleanly");
}
