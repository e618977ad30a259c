//! Property tests: canonical encoding round-trips, is strict, and every byte matters.

#![allow(clippy::unwrap_used)]

mod strategies;

use kvitto_core::event::ExtendTo;
use kvitto_core::json::{event_from_json, event_to_json};
use kvitto_core::period::MonthDay;
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
            data_subjects: None,
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

fn retention_event(kind: EventKind) -> Event {
    Event {
        seq: 3,
        prev_hash: EventHash([7; 32]),
        recorded_at: Timestamp::from_micros(1_767_607_200_000_000).unwrap(),
        occurred_at: Timestamp::from_micros(1_767_607_200_000_000).unwrap(),
        event_id: EventId(uuid::Uuid::from_u128(3)),
        controller: Id::new("komteknik-el").unwrap(),
        actor: Id::new("dpo").unwrap(),
        subject: None,
        kind,
        payload_commitment: None,
    }
}

/// Offset of the kind code in a controller event of [`retention_event`].
const RETENTION_KIND_AT: usize = 1 + 8 + 32 + 8 + 8 + 16 + (4 + 12) + (4 + 3) + 1;

fn retention_strategy() -> impl Strategy<Value = EventKind> {
    (
        strategies::id(),
        proptest::sample::select(Trigger::ALL),
        strategies::period(),
        proptest::option::of(strategies::text()),
        proptest::option::of(strategies::month_day()),
        proptest::option::of(proptest::sample::select(ExtendTo::ALL)),
    )
        .prop_map(|(register, trigger, duration, statute, financial_year_end, extend_to)| {
            EventKind::RetentionRuleDeclared { register, trigger, duration, statute, financial_year_end, extend_to }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A rule without the bookkeeping fields keeps the kind-3 bytes of format v1; one with
    /// either field is kind 5: the same bytes followed by the two optional fields.
    #[test]
    fn retention_layouts(kind in retention_strategy()) {
        let EventKind::RetentionRuleDeclared { register, trigger, duration, statute, financial_year_end, extend_to } = kind.clone() else {
            unreachable!()
        };
        let e = retention_event(kind);
        let bytes = encode_event(&e);
        let base = EventKind::RetentionRuleDeclared {
            register, trigger, duration, statute, financial_year_end: None, extend_to: None,
        };
        let base_bytes = encode_event(&retention_event(base));
        prop_assert_eq!(&base_bytes[RETENTION_KIND_AT..RETENTION_KIND_AT + 2], &[0u8, 3][..]);
        if financial_year_end.is_none() && extend_to.is_none() {
            prop_assert_eq!(&bytes, &base_bytes);
        } else {
            prop_assert_eq!(&bytes[RETENTION_KIND_AT..RETENTION_KIND_AT + 2], &[0u8, 5][..]);
            let mut tail = Vec::new();
            match financial_year_end {
                None => tail.push(0),
                Some(m) => tail.extend([1, m.month(), m.day()]),
            }
            match extend_to {
                None => tail.push(0),
                Some(x) => tail.extend([1, x.code()]),
            }
            tail.push(0); // payload_commitment absent
            let n = base_bytes.len() - 1;
            prop_assert_eq!(&bytes[RETENTION_KIND_AT + 2..bytes.len() - tail.len()], &base_bytes[RETENTION_KIND_AT + 2..n]);
            prop_assert_eq!(&bytes[bytes.len() - tail.len()..], &tail[..]);
        }
        prop_assert_eq!(decode_event(&bytes).unwrap(), e.clone());
        // JSON: sealed form and draft form round-trip the new fields.
        let json = event_to_json(&e);
        prop_assert_eq!(json.get("financial_year_end").and_then(|v| v.as_str()).map(str::to_string), financial_year_end.map(|m| m.to_string()));
        prop_assert_eq!(json.get("extend_to").and_then(|v| v.as_str()), extend_to.map(ExtendTo::as_str));
        let text = serde_json::to_string(&json).unwrap();
        let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(event_from_json(&back).unwrap(), e.clone());
        let draft = Draft {
            controller: e.controller.clone(),
            subject: None,
            occurred_at: None,
            event_id: None,
            actor: None,
            details: None,
            kind: e.kind.clone(),
        };
        let text = serde_json::to_string(&draft.to_json()).unwrap();
        prop_assert_eq!(Draft::from_json_str(&text).unwrap(), draft);
    }
}

#[test]
fn kind_5_is_strict() {
    let kind = |fye: Option<&str>, ext: Option<ExtendTo>| EventKind::RetentionRuleDeclared {
        register: Id::new("bokforing").unwrap(),
        trigger: Trigger::Collected,
        duration: IsoPeriod::parse("P7Y").unwrap(),
        statute: None,
        financial_year_end: fye.map(|s| MonthDay::parse(s).unwrap()),
        extend_to: ext,
    };
    let plain = encode_event(&retention_event(kind(None, None)));
    // Kind 5 with neither extension field is a second encoding of a kind-3 event: refused.
    let mut b = plain.clone();
    b[RETENTION_KIND_AT + 1] = 5;
    b.splice(b.len() - 1..b.len() - 1, [0u8, 0]);
    let err = decode_event(&b).unwrap_err();
    assert!(err.what.contains("without any of its extension fields"), "{err}");
    assert_eq!(err.offset, RETENTION_KIND_AT);
    // Kind 3 followed by extension fields: trailing bytes.
    let full = encode_event(&retention_event(kind(Some("12-31"), Some(ExtendTo::CalendarYearEnd))));
    let mut b = full.clone();
    b[RETENTION_KIND_AT + 1] = 3;
    assert!(decode_event(&b).is_err());
    // An impossible day (02-30) and an unknown extend_to code are refused.
    let n = full.len();
    assert_eq!(&full[n - 6..], &[1, 12, 31, 1, 1, 0]);
    let mut b = full.clone();
    b[n - 5] = 2;
    b[n - 4] = 30;
    let err = decode_event(&b).unwrap_err();
    assert!(err.what.contains("02-30"), "{err}");
    let mut b = full.clone();
    b[n - 2] = 2;
    assert!(decode_event(&b).unwrap_err().what.contains("unknown ExtendTo code 2"));
    // 02-29 is valid: the last day of February.
    let feb = retention_event(kind(Some("02-29"), None));
    assert_eq!(decode_event(&encode_event(&feb)).unwrap(), feb);
}

#[test]
fn json_errors_name_the_new_fields() {
    let line = |extra: &str| {
        format!(
            r#"{{"type":"retention_rule_declared","controller":"kalejdo","register":"bokforing","trigger":"collected","duration":"P7Y"{extra}}}"#
        )
    };
    let err = Draft::from_json_str(&line(r#","financial_year_end":"02-30""#)).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("financial_year_end"));
    assert!(err.message.contains("last day of February"), "{}", err.message);
    let err = Draft::from_json_str(&line(r#","financial_year_end":"2026-12-31""#)).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("financial_year_end"));
    assert!(err.message.contains("MM-DD"), "{}", err.message);
    let err = Draft::from_json_str(&line(r#","financial_year_end":1231"#)).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("financial_year_end"));
    let err = Draft::from_json_str(&line(r#","extend_to":"year_end""#)).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("extend_to"));
    assert!(err.message.contains("calendar_year_end"), "{}", err.message);
    let ok = Draft::from_json_str(&line(r#","financial_year_end":"12-31","extend_to":"calendar_year_end""#)).unwrap();
    let EventKind::RetentionRuleDeclared { financial_year_end, extend_to, .. } = ok.kind else { unreachable!() };
    assert_eq!(
        (financial_year_end.map(|m| (m.month(), m.day())), extend_to),
        (Some((12, 31)), Some(ExtendTo::CalendarYearEnd))
    );
}

#[test]
fn ledger_events_and_duplicate_keys_are_refused_from_callers() {
    let e = Draft::from_json_str(
        r#"{"type":"subject_map_committed","controller":"kvitto:ledger","tree_size":1,"subjects":1,"map_root":"00"}"#,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("type"), "{e}");
    assert!(e.message.contains("written by the ledger itself"), "{e}");
    let e = Draft::from_json_str(
        r#"{"type":"data_collected","controller":"kalejdo","subject":"X-1","register":"r","categories":["c"],"purpose":"p","legal_basis":"contract","source":"subject","details":{"a":1,"a":2}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("duplicate field \"a\""), "{e}");
}
