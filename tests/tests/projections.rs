//! Projections through the ledger: read-your-writes, persistence across reopen, catch-up,
//! rebuild — and a property test over random valid event sequences of every kind.
#![allow(clippy::unwrap_used)]

use kvitto::{AsOf, Draft, Ledger, ReadError};
use kvitto_integration::*;
use proptest::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn may_process_sees_every_acknowledged_append() {
    let (_d, _p, ledger) = fresh_ledger().await;
    ledger.append(draft(r#"{"type":"purpose_declared","controller":"kazoom","purpose":"product-news","description":"Nyheder","legal_basis":"consent","register":"kunderegister"}"#)).await.unwrap();
    ledger.append(collected_with_details("kazoom", "KZ-1", "a@example.dk")).await.unwrap();
    let now = || AsOf::now();
    let d = ledger.may_process("kazoom", "KZ-1", "product-news", now()).unwrap();
    assert!(!d.allowed, "{d:?}");
    let r = ledger.append(consent("kazoom", "KZ-1", "product-news")).await.unwrap();
    let d = ledger.may_process("kazoom", "KZ-1", "product-news", now()).unwrap();
    assert_eq!((d.allowed, d.seq), (true, Some(r.seq)));
    let r = ledger
        .append(draft(
            r#"{"type":"consent_withdrawn","controller":"kazoom","subject":"KZ-1","purpose":"product-news"}"#,
        ))
        .await
        .unwrap();
    let d = ledger.may_process("kazoom", "KZ-1", "product-news", now()).unwrap();
    assert_eq!((d.allowed, d.seq), (false, Some(r.seq)));
    assert!(matches!(
        ledger.may_process("kazoom", "KZ-404", "product-news", now()),
        Err(ReadError::UnknownSubject { .. })
    ));
    assert!(matches!(
        ledger.may_process("nobody", "KZ-1", "x", now()),
        Err(ReadError::UnknownSubject { .. }) | Err(ReadError::UnknownController(_))
    ));
    assert!(matches!(
        ledger.consent("kazoom", "KZ-1", Some("telepathy"), now()),
        Err(ReadError::UnknownPurpose { .. })
    ));
    assert!(matches!(
        ledger.may_process("kazoom", "KZ-1", "Bad Purpose", now()),
        Err(ReadError::BadQuery { field: "purpose", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_survive_reopen_catch_up_and_equal_a_rebuild() {
    let (_d, path, ledger) = fresh_ledger().await;
    let s = kvitto::scenario::generate(150, 11);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for c in &s.customers {
        ledger.append_batch(c.events.clone()).await.unwrap();
    }
    let before = ledger.projections().expect("projections");
    ledger.close().await.expect("ledger closes cleanly");
    let ledger = reopen(&path).await;
    assert_eq!(ledger.projections().expect("projections"), before, "state after reopen == state before close");
    let report = ledger.rebuild().await.unwrap();
    assert_eq!(report.events, s.len() as u64);
    assert_eq!(ledger.projections().expect("projections"), before, "rebuild == incremental");
    // After a rebuild (a snapshot), later appends persist as deltas over it. (A second
    // scenario reuses the customer references and request ids: what the ledger refuses for
    // those customers' state is left out.)
    let more = kvitto::scenario::generate(40, 12);
    for c in &more.customers {
        append_valid(&ledger, c.events.clone()).await;
    }
    ledger.append(consent("kalejdo", "KAL-100003", "marketing")).await.unwrap();
    let before = ledger.projections().expect("projections");
    ledger.close().await.expect("ledger closes cleanly");
    let ledger = reopen(&path).await;
    assert_eq!(
        ledger.projections().expect("projections"),
        before,
        "snapshot + deltas after reopen == state before close"
    );
    let log: Vec<kvitto::Event> = ledger.log(0..u64::MAX).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(kvitto::Projections::rebuild(&log), before);
    ledger.close().await.expect("ledger closes cleanly");
    {
        // Lose the persisted projections: open rebuilds them from the log.
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        store.clear_projections().unwrap();
        store.flush_all().unwrap();
    }
    let ledger = reopen(&path).await;
    assert_eq!(ledger.projections().expect("projections"), before);
}

/// Equality with a readable first difference instead of a dump of everything.
fn assert_same(a: &kvitto::Projections, b: &kvitto::Projections) {
    assert_eq!(a.last_seq, b.last_seq, "watermarks differ");
    for (k, v) in &a.controllers {
        assert_eq!(Some(v), b.controllers.get(k), "controller {k} differs");
    }
    for (k, v) in &a.subjects {
        assert_eq!(Some(v), b.subjects.get(k), "subject {k} differs");
    }
    assert_eq!(a.controllers.len(), b.controllers.len());
    assert_eq!(a.subjects.len(), b.subjects.len());
}

fn random_draft(rng: &mut kvitto::scenario::Rng, pool: &[Draft]) -> Draft {
    let mut d = pool[rng.below(pool.len() as u64) as usize].clone();
    d.event_id = None;
    if d.subject.is_some() {
        d.subject = Some(kvitto::ExternalRef::new(format!("s-{}", rng.below(7))).unwrap());
    }
    d
}

/// Appends a batch of random drafts, leaving out those the ledger refuses for the subject's
/// state (a request step without its request, an erasure under a hold, details after an
/// erasure in the same batch) — each refusal names the draft, and nothing else is written.
async fn append_valid(ledger: &Ledger, mut batch: Vec<Draft>) {
    use kvitto::AppendError::{DetailsAfterErasure, ErasureBlocked, InvalidStep};
    while !batch.is_empty() {
        match ledger.append_batch(batch.clone()).await {
            Ok(_) => return,
            Err(InvalidStep { index, .. } | ErasureBlocked { index, .. } | DetailsAfterErasure { index, .. }) => {
                batch.remove(index);
            }
            Err(e) => panic!("{e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn incremental_equals_rebuild_and_reopen_equals_before(seed in any::<u64>(), n in 10usize..160, batch_every in 1usize..8) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            // Random valid events of all kinds, several controllers and subjects, interleaved.
            let pool: Vec<Draft> = kvitto::scenario::generate(400, seed).all_drafts().cloned().collect();
            let mut rng = kvitto::scenario::Rng::new(seed);
            let (_d, path, ledger) = fresh_ledger().await;
            let mut batch = Vec::new();
            for i in 0..n {
                batch.push(random_draft(&mut rng, &pool));
                if i % batch_every == 0 {
                    append_valid(&ledger, std::mem::take(&mut batch)).await;
                }
            }
            if !batch.is_empty() {
                append_valid(&ledger, batch).await;
            }
            let incremental = ledger.projections().expect("projections");
            let log: Vec<kvitto::Event> = ledger.log(0..u64::MAX).await.unwrap().into_iter().map(|e| e.event).collect();
            let rebuilt = kvitto::Projections::rebuild(&log);
            assert_same(&incremental, &rebuilt);
            ledger.close().await.expect("ledger closes cleanly");
            let ledger: Ledger = reopen(&path).await;
            assert_same(&ledger.projections().expect("projections"), &incremental);
        });
    }
}

/// The demo scenario declares every seed controller from its policy, and seed 001's app
/// (Kalejdo Bredband AB's TV/Smart Home app: account, voluntary data, a cloud service whose
/// country is not stated) shows in Kalejdo's Art 30 record with its gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_declares_every_seed_controller_and_seed_001_shows_its_gaps() {
    let (_d, _p, ledger) = fresh_ledger().await;
    let s = kvitto::scenario::generate(200, 2026);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for c in &s.customers {
        ledger.append_batch(c.events.clone()).await.unwrap();
    }
    let now = AsOf::now();
    // Seed 003 names no legal entity: both demo entities say so rather than invent a name.
    const KOMTEKNIK: &str = "KomTeknik Gruppen (det juridiska bolag inom gruppen som kunden tecknat avtal med)";
    let expect = [
        ("kalejdo", "Kalejdo Bredband AB", "Integritetsskyddsmyndigheten (IMY)", "SE"),
        ("select-telecom", "Select Telecom AB", "Integritetsskyddsmyndigheten (IMY)", "SE"),
        ("komteknik-bredband", KOMTEKNIK, "Integritetsskyddsmyndigheten (IMY)", "SE"),
        ("komteknik-el", KOMTEKNIK, "Integritetsskyddsmyndigheten (IMY)", "SE"),
        ("kazoom", "Kazoom A/S", "Datatilsynet", "DK"),
    ];
    for (id, name, authority, country) in expect {
        let r = ledger.processing_report(id, now).unwrap();
        let who = r.controller_identity.as_ref().unwrap_or_else(|| panic!("{id} declares itself"));
        assert_eq!(
            (
                who.declared.legal_name.as_str(),
                who.declared.authority.as_str(),
                who.declared.authority_country.as_str()
            ),
            (name, authority, country),
            "{id}"
        );
        assert!(r.purposes.iter().all(|p| !p.data_subjects.is_empty()), "{id}: every purpose names its data subjects");
    }
    let kazoom = ledger.processing_report("kazoom", now).unwrap();
    let who = &kazoom.controller_identity.unwrap().declared;
    assert_eq!(who.organisation_number.as_ref().map(|t| t.as_str()), Some("CVR 40700218"), "seed 004 states it");
    assert_eq!(who.dpo_contact, None, "seed 004 names no DPO");
    // Seeds 002–004 name no recipient's country: none is presented as inside the EEA.
    for id in ["select-telecom", "komteknik-el", "kazoom"] {
        let r = ledger.processing_report(id, now).unwrap();
        assert!(!r.recipients.is_empty(), "{id}");
        for x in &r.recipients {
            assert_eq!(x.third_country, None, "{id}: {} has no stated country", x.processor);
        }
    }
    let ops = kazoom.purposes.iter().find(|p| p.purpose.as_str() == "operations-info").unwrap();
    assert_eq!(ops.legal_basis, kvitto_core::LegalBasis::Contract, "seed 004 items d, f");

    let kalejdo = ledger.processing_report("kalejdo", now).unwrap();
    let gaps: Vec<(&str, &str)> = kalejdo.gaps.iter().map(|g| (g.gap, g.concerns.as_str())).collect();
    assert!(gaps.contains(&("country_not_stated", "app-cloud")), "{gaps:?}");
    assert!(gaps.contains(&("register_without_retention", "appdatabas")), "{gaps:?}");
    assert!(gaps.contains(&("processor_without_dpa", "postnord")), "{gaps:?}");
    let cloud = kalejdo.recipients.iter().find(|r| r.processor.as_str() == "app-cloud").unwrap();
    assert_eq!(cloud.third_country, None, "not stated is not inside the EEA");
    assert!(!cloud.received.is_empty(), "app users' data went to the cloud service");
    let app = kalejdo.purposes.iter().find(|p| p.purpose.as_str() == "app-login").unwrap();
    assert_eq!(app.data_subjects.iter().map(|d| d.as_str()).collect::<Vec<_>>(), ["app-users"]);
    // Some app user's access report shows the recipient's country as not stated.
    let app_user = s
        .customers
        .iter()
        .find(|c| c.events.iter().any(|d| matches!(&d.kind, kvitto::EventKind::DataShared { processor, .. } if processor.as_str() == "app-cloud")))
        .expect("a Kalejdo customer uses the app");
    let r = ledger.access_report("kalejdo", &app_user.external_ref, now).unwrap();
    let cloud = r.recipients.iter().find(|x| x.processor.as_str() == "app-cloud").unwrap();
    assert_eq!((cloud.country.map(|c| c.is_stated()), cloud.third_country), (Some(false), None));
}
