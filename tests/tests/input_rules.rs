//! Input rules for subject references and free text (docs/EVENTS.md, "Input rules for text"):
//! lookalike spellings of one customer are refused at the door and nothing is written; what a
//! ledger stored before the rules still reads, verifies, exports, verifies offline and erases.
#![allow(clippy::unwrap_used)]

use kvitto::{AsOf, Draft, EraseError, EventKind, ExternalRef, Id};
use kvitto_core::Text;
use kvitto_integration::*;
use kvitto_proof::bundle::{Trust, verify};

const NFC: &str = "\u{c5}sa-1";

/// The five spellings that would each have been a customer of their own.
const LOOKALIKES: [(&str, &str); 5] = [
    ("A\u{30a}sa-1", "is not in Unicode NFC form"),
    ("\u{c5}sa\u{200b}-1", "contains U+200B"),
    ("\u{c5}sa-1 ", "has leading or trailing whitespace"),
    ("\u{feff}\u{c5}sa-1", "contains U+FEFF"),
    ("\u{202e}\u{c5}sa-1", "contains U+202E"),
];

fn line(kind: &str, subject: &str, purpose: &str) -> String {
    serde_json::json!({"type": kind, "controller": "kalejdo", "subject": subject, "purpose": purpose}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalike_references_are_refused_naming_subject_and_nothing_is_written() {
    let (_d, _p, ledger) = fresh_ledger().await;
    ledger.append(draft(r#"{"type":"purpose_declared","controller":"kalejdo","purpose":"marketing","description":"Marknadsföring","legal_basis":"consent","register":"kundregister"}"#)).await.unwrap();
    ledger.append(draft(&line("consent_given", NFC, "marketing"))).await.unwrap();
    let before = ledger.len();
    for (s, why) in LOOKALIKES {
        // A withdrawal under a lookalike: refused before it reaches the ledger.
        let e = Draft::from_json_str(&line("consent_withdrawn", s, "marketing")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("subject"), "{s:?}: {e}");
        assert!(e.message.starts_with(why), "{s:?}: {e}");
        assert!(e.to_string().starts_with("field subject: "), "{e}");
        assert!(!e.to_string().contains("sa-1"), "the message echoes the reference: {e}");
        // The library constructor refuses it too.
        assert!(ExternalRef::new(s).is_err(), "{s:?}");
    }
    assert_eq!(ledger.len(), before, "a refused draft was written");
    assert!(ledger.may_process("kalejdo", NFC, "marketing", AsOf::now()).unwrap().allowed);
    // The one spelling is accepted, and the withdrawal takes effect.
    let r = ledger.append(draft(&line("consent_withdrawn", NFC, "marketing"))).await.unwrap();
    assert_eq!(r.seq, before);
    let d = ledger.may_process("kalejdo", NFC, "marketing", AsOf::now()).unwrap();
    assert_eq!((d.allowed, d.seq), (false, Some(r.seq)));
    assert_eq!(ledger.history("kalejdo", NFC).await.unwrap().len(), 2);
}

/// Events a ledger recorded before the input rules — a reference with a trailing space, a
/// reason with a bidi override and an escape — stay readable: history and may-process find the
/// subject, verify passes, the bundle verifies offline, and the subject can be erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_stored_before_the_rules_still_reads_verifies_exports_and_erases() {
    let (_d, path, ledger) = fresh_ledger().await;
    let old_ref = "\u{c5}sa-1 ";
    let old_reason = "kund\u{202e}fel\u{1b}[2K ";
    let controller = Id::new("kalejdo").unwrap();
    let old = |kind| Draft {
        controller: controller.clone(),
        subject: Some(ExternalRef::stored(old_ref).unwrap()),
        occurred_at: None,
        event_id: None,
        actor: None,
        details: None,
        kind,
    };
    ledger.append(collected_with_details("kalejdo", "cust-2", "b@example.se")).await.unwrap();
    ledger
        .append(old(EventKind::ConsentGiven {
            purpose: Id::new("marketing").unwrap(),
            notice_version: None,
            channel: None,
        }))
        .await
        .unwrap();
    ledger.append(old(EventKind::ProcessingRestricted { reason: Text::stored(old_reason).unwrap() })).await.unwrap();
    ledger.close().await.expect("ledger closes cleanly");

    let ledger = reopen(&path).await;
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failure);
    let h = ledger.history("kalejdo", old_ref).await.unwrap();
    assert_eq!(h.len(), 2);
    match &h[1].event.kind {
        EventKind::ProcessingRestricted { reason } => assert_eq!(reason.as_str(), old_reason),
        other => panic!("{other:?}"),
    }
    assert!(ledger.may_process("kalejdo", old_ref, "marketing", AsOf::now()).is_ok());
    // A new event under the old spelling is new input: refused.
    assert_eq!(
        Draft::from_json_str(&line("consent_withdrawn", old_ref, "marketing")).unwrap_err().field.as_deref(),
        Some("subject")
    );
    ledger.checkpoint().await.unwrap();
    let bundle = ledger.export_bundle("kalejdo", old_ref, None, None).await.unwrap();
    let key = ledger.verifier_key().unwrap();
    let verified = verify(&serde_json::to_string(&bundle).unwrap(), Trust::Key(&key)).unwrap();
    assert_eq!(verified.events.len(), 2);
    // The right to erasure reaches a customer recorded before the rules.
    ledger.erase("kalejdo", old_ref, None, "Art 17").await.unwrap();
    assert_eq!(ledger.history("kalejdo", old_ref).await.unwrap().len(), 3);
    // The erasure reason is new text: the rules apply.
    let before = ledger.len();
    match ledger.erase("kalejdo", "cust-2", None, "Art 17\u{200b}").await {
        Err(EraseError::BadArgument { field: "reason", message }) => assert!(message.contains("U+200B"), "{message}"),
        other => panic!("expected the reason refused, got {other:?}"),
    }
    assert_eq!(ledger.len(), before);
}
