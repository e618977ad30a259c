//! The audit on whole ledgers: the demo scenario with its planted violations is found exactly
//! (no miss, no false positive among thousands of compliant events), and a tampered ledger's
//! audit puts K01 first and marks every other finding unreliable.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use kvitto::{AuditOptions, Timestamp};
use kvitto_core::{EventKind, ExternalRef, Id, decode_event, encode_event};
use kvitto_integration::*;
use kvitto_store::{Store, tamper};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_scenario_audits_to_exactly_its_planted_violations() {
    let (_d, _p, ledger) = fresh_ledger().await;
    let s = kvitto::scenario::generate(500, 2026);
    ledger.append_batch(s.declarations.clone()).await.unwrap();
    for c in &s.customers {
        ledger.append_batch(c.events.clone()).await.unwrap();
    }
    let now = Timestamp::now();
    ledger.retention_run(None, now).await.unwrap();
    // The run's erasures occur when they are written, a moment after `now`.
    let now = Timestamp::now();
    let compliant = ledger.audit(None, AuditOptions::at(now)).await.unwrap();
    assert!(compliant.integrity.ok);
    assert_eq!(compliant.findings, vec![], "the generated customers are compliant");
    let planted = kvitto::scenario::planted();
    for p in &planted {
        ledger.append_batch(p.customer.events.clone()).await.unwrap();
    }
    let report = ledger.audit(None, AuditOptions::at(now)).await.unwrap();
    let expected: BTreeSet<(&str, kvitto::SubjectId)> = planted
        .iter()
        .map(|p| {
            let r = ExternalRef::new(p.customer.external_ref.clone()).unwrap();
            (p.check, ledger.subject_id(&p.customer.controller, &r))
        })
        .collect();
    let found: BTreeSet<(&str, kvitto::SubjectId)> =
        report.findings.iter().map(|f| (f.check, f.subject.unwrap())).collect();
    assert_eq!(found, expected);
    assert_eq!(report.findings.len(), planted.len(), "one finding per planted violation");
    let checks: BTreeSet<&str> = planted.iter().map(|p| p.check).collect();
    let all: BTreeSet<&str> = kvitto::CHECKS.iter().map(|c| c.id).collect();
    assert_eq!(all.difference(&checks).copied().collect::<Vec<_>>(), ["K01"], "one planted per check K02–K15");
    assert!(report.findings.iter().all(|f| f.reliable));
    assert_eq!(report.summary.iter().map(|r| r.count).sum::<usize>(), report.findings.len(), "the summary adds up");
    // Each finding's evidence is in the ledger and names the planted customer's events.
    for f in &report.findings {
        let events = ledger.log(f.seqs[0]..f.seqs[0] + 1).await.unwrap();
        assert_eq!(events[0].event.subject.map(|l| l.subject), f.subject, "{f:?}");
    }
    // One controller only.
    let kazoom = ledger.audit(Some("kazoom"), AuditOptions::at(now)).await.unwrap();
    assert!(kazoom.findings.iter().all(|f| f.controller.as_str() == "kazoom"));
    assert_eq!(kazoom.findings.len(), planted.iter().filter(|p| p.customer.controller.as_str() == "kazoom").count());
    assert!(matches!(
        ledger.audit(Some("nobody"), AuditOptions::at(now)).await,
        Err(kvitto::ReadError::UnknownController(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_ledger_audits_with_k01_first_and_every_other_finding_unreliable() {
    let (_d, path, ledger) = fresh_ledger().await;
    // A share with an unregistered recipient (K09), then ordinary events.
    ledger
        .append(draft(
            r#"{"type":"data_shared","controller":"kazoom","subject":"KZ-1","processor":"okendt","categories":["name"],"purpose":"contract-delivery","occurred_at":"2026-01-02T00:00:00Z"}"#,
        ))
        .await
        .unwrap();
    for i in 0..5 {
        ledger.append(consent("kazoom", &format!("KZ-{i}"), "product-news")).await.unwrap();
    }
    let before = ledger.audit(None, AuditOptions::at(Timestamp::now())).await.unwrap();
    assert!(before.integrity.ok && before.findings.iter().all(|f| f.reliable));
    ledger.close().await.unwrap();
    let (store, _, _) = Store::open(&path).unwrap();
    tamper::edit_record(&store, 3, |r| {
        let mut e = decode_event(&r.canonical).unwrap();
        if let EventKind::ConsentGiven { purpose, .. } = &mut e.kind {
            *purpose = Id::new("marketing").unwrap();
        }
        r.canonical = encode_event(&e);
    })
    .unwrap();
    drop(store);
    let ledger = reopen(&path).await;
    let r = ledger.audit(None, AuditOptions::at(Timestamp::now())).await.unwrap();
    assert!(!r.integrity.ok, "{:?}", r.integrity);
    assert_eq!((r.findings[0].check, r.findings[0].seqs.as_slice()), ("K01", &[3][..]));
    assert!(r.findings[1..].iter().all(|f| !f.reliable), "{:?}", r.findings);
    assert!(r.findings[1..].iter().any(|f| f.check == "K09"));
    ledger.close().await.unwrap();
}
