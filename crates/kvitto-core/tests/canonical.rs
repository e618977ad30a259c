//! Property tests: canonical encoding round-trips, is strict, and every byte matters.

#![allow(clippy::unwrap_used)]

mod strategies;

use kvitto_core::json::{event_from_json, event_to_json};
use kvitto_core::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_round_trip(e in strategies::event()) {
        let bytes = encode_event(&e);
        prop_assert_eq!(decode_event(&bytes).unwrap(), e);
    }

    #[test]
    fn sealed_json_round_trip(e in strategies::event()) {
        let json = event_to_json(&e);
        let text = serde_json::to_string(&json).unwrap();
        let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(event_from_json(&back).unwrap(), e);
    }

    #[test]
    fn trailing_and_truncated_bytes_are_rejected(e in strategies::event(), extra in 1usize..8) {
        let mut bytes = encode_event(&e);
        let n = bytes.len();
        prop_assert!(decode_event(&bytes[..n - 1]).is_err());
        bytes.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(decode_event(&bytes).is_err());
    }

    #[test]
    fn any_single_byte_change_changes_the_hash_or_fails_to_decode(e in strategies::event(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let bytes = encode_event(&e);
        let mut changed = bytes.clone();
        let i = pos.index(changed.len());
        changed[i] ^= flip;
        prop_assert_ne!(event_hash(&changed), event_hash(&bytes));
        if let Ok(decoded) = decode_event(&changed) {
            prop_assert_ne!(decoded, e);
        }
    }

    #[test]
    fn draft_json_round_trip(kind in prop_oneof![strategies::controller_kind(), strategies::subject_kind()], occ in proptest::option::of(strategies::ts())) {
        let subject = (kind.scope() == Scope::Subject).then(|| ExternalRef::new("cust-1001").unwrap());
        let details = subject.as_ref().map(|_| {
            let obj = serde_json::json!({"name": "Åsa Öberg", "email": "asa@example.se", "n": 3});
            Details::from_object(obj.as_object().unwrap()).unwrap()
        });
        let draft = Draft {
            controller: Id::new("kalejdo").unwrap(),
            subject,
            occurred_at: occ,
            event_id: Some(EventId::new_v7()),
            actor: Some(Id::new("crm").unwrap()),
            details,
            kind,
        };
        let text = serde_json::to_string(&draft.to_json()).unwrap();
        prop_assert_eq!(Draft::from_json_str(&text).unwrap(), draft);
    }
}

#[test]
fn decode_rejects_unknown_codes_and_scope_mismatch() {
    let e = Event {
        seq: 0,
        prev_hash: EventHash::default(),
        recorded_at: Timestamp::from_micros(1).unwrap(),
        occurred_at: Timestamp::from_micros(1).unwrap(),
        event_id: EventId(uuid::Uuid::nil()),
        controller: Id::new("kalejdo").unwrap(),
        actor: Id::new("cli").unwrap(),
        subject: None,
        kind: EventKind::PurposeDeclared {
            purpose: Id::new("marketing").unwrap(),
            description: Text::new("m").unwrap(),
            legal_basis: LegalBasis::Consent,
            register: Id::new("kundregister").unwrap(),
        },
        payload_commitment: None,
    };
    let good = encode_event(&e);
    // version byte
    let mut b = good.clone();
    b[0] = 2;
    assert!(decode_event(&b).unwrap_err().what.contains("version 2"));
    // The kind code sits right after the subject presence byte.
    let kind_at = 1 + 8 + 32 + 8 + 8 + 16 + (4 + 7) + (4 + 3) + 1;
    assert_eq!(&good[kind_at..kind_at + 2], &[0, 1]);
    let mut b = good.clone();
    b[kind_at + 1] = 99;
    assert!(decode_event(&b).unwrap_err().what.contains("unknown kind code 99"));
    // legal basis code is the byte after purpose and description
    let basis_at = kind_at + 2 + (4 + 9) + (4 + 1);
    let mut b = good.clone();
    b[basis_at] = 7;
    assert!(decode_event(&b).unwrap_err().what.contains("unknown LegalBasis code 7"));
    // a subject on a controller kind
    let mut with_subject = e.clone();
    with_subject.subject = Some(SubjectLink { subject: SubjectId([1; 16]), subject_seq: 0, subject_prev: None });
    let b = encode_event(&with_subject);
    assert!(decode_event(&b).unwrap_err().what.contains("must not have a subject"));
}
