//! Golden vectors: docs/golden/*.json pin the preimage and hash of events, pseudonyms and
//! payload commitments. This test recomputes every vector from the fields in the file.
//!
//! Regenerate (a deliberate format version bump only!) with `KVITTO_WRITE_GOLDEN=1`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kvitto_core::event::ExtendTo;
use kvitto_core::json::{event_from_json, event_to_json};
use kvitto_core::period::MonthDay;
use kvitto_core::*;
use serde_json::{Value, json};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/golden")
}

fn id(s: &str) -> Id {
    Id::new(s).unwrap()
}
fn text(s: &str) -> Text {
    Text::new(s).unwrap()
}
fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}
fn eid(s: &str) -> EventId {
    EventId::parse(s).unwrap()
}
fn cats(c: &[&str]) -> Categories {
    Categories::new(c.iter().map(|s| id(s)).collect()).unwrap()
}

/// The vectors, built in code; written to the file only when regenerating.
fn build_vectors() -> Vec<(&'static str, Event)> {
    let secret = LedgerSecret([0x42; 32]);
    let subj = secret.subject_id(&id("kalejdo"), &ExternalRef::new("cust-1001").unwrap());
    let base = |seq: u64, prev: EventHash, kind: EventKind| Event {
        seq,
        prev_hash: prev,
        recorded_at: t("2026-01-05T10:00:00.000123Z"),
        occurred_at: t("2026-01-05T09:59:58Z"),
        event_id: eid("0194312a-8b00-7000-8000-000000000001"),
        controller: id("kalejdo"),
        actor: id("crm"),
        subject: None,
        kind,
        payload_commitment: None,
    };
    let mut out = Vec::new();
    let mut prev = EventHash::default();
    let mut subject_prev: Option<EventHash> = None;
    let mut subject_seq = 0u64;
    let kinds: Vec<(&'static str, EventKind, bool, Option<Commitment>)> = vec![
        (
            "purpose_declared",
            EventKind::PurposeDeclared {
                purpose: id("marketing"),
                description: text("Marknadsföring av Betal-TV-tjänster"),
                legal_basis: LegalBasis::LegitimateInterests,
                register: id("kundregister"),
                data_subjects: None,
            },
            false,
            None,
        ),
        (
            "processor_registered_full",
            EventKind::ProcessorRegistered {
                processor: id("freshworks"),
                name: text("Freshworks"),
                country: CountryCode::new("GB").unwrap(),
                role: Role::SubProcessor,
                transfer_mechanism: Some(TransferMechanism::Adequacy),
                dpa_ref: Some(text("DPA-2021-04")),
            },
            false,
            None,
        ),
        (
            "processor_registered_minimal",
            EventKind::ProcessorRegistered {
                processor: id("indentive"),
                name: text("Indentive AB"),
                country: CountryCode::new("SE").unwrap(),
                role: Role::Processor,
                transfer_mechanism: None,
                dpa_ref: None,
            },
            false,
            None,
        ),
        (
            "retention_rule_declared",
            EventKind::RetentionRuleDeclared {
                register: id("arendelista"),
                trigger: Trigger::RecordClosed,
                duration: IsoPeriod::parse("P12M").unwrap(),
                statute: None,
                financial_year_end: None,
                extend_to: None,
            },
            false,
            None,
        ),
        (
            "retention_rule_with_statute",
            EventKind::RetentionRuleDeclared {
                register: id("bokforing"),
                trigger: Trigger::Collected,
                duration: IsoPeriod::parse("P7YT1H").unwrap(),
                statute: Some(text("Bokföringslagen (1999:1078) 7 kap. 2 §")),
                financial_year_end: None,
                extend_to: None,
            },
            false,
            None,
        ),
        (
            "notice_published",
            EventKind::NoticePublished {
                version: id("2022-01-08"),
                text_hash: TextHash(*blake3::hash(b"persondatapolitik").as_bytes()),
            },
            false,
            None,
        ),
        (
            "consent_given_first_subject_event",
            EventKind::ConsentGiven {
                purpose: id("marketing"),
                notice_version: Some(id("2022-01-08")),
                channel: Some(id("web")),
            },
            true,
            None,
        ),
        (
            "data_collected_with_details",
            EventKind::DataCollected {
                register: id("kundregister"),
                categories: cats(&["name", "address", "contact"]),
                purpose: id("service-delivery"),
                legal_basis: LegalBasis::Contract,
                source: Source::Subject,
            },
            true,
            Some(payload_commitment(&[0x11; 32], r#"{"email":"asa@example.se","name":"Åsa Öberg"}"#.as_bytes())),
        ),
        (
            "data_shared",
            EventKind::DataShared {
                processor: id("freshworks"),
                categories: cats(&["contact", "ticket"]),
                purpose: id("support"),
            },
            true,
            None,
        ),
        ("consent_withdrawn", EventKind::ConsentWithdrawn { purpose: id("marketing"), channel: None }, true, None),
        (
            "rights_request_received",
            EventKind::RightsRequestReceived { request_id: id("req-2026-0001"), right: Right::Erasure },
            true,
            None,
        ),
        (
            "erasure_deferred",
            EventKind::ErasureDeferred {
                register: id("bokforing"),
                statute: text("Bokföringslagen"),
                until: t("2033-12-31T23:59:59.999999Z"),
            },
            true,
            None,
        ),
        ("relationship_ended_no_reason", EventKind::RelationshipEnded { reason: None }, true, None),
        (
            "data_erased_everything",
            EventKind::DataErased { register: None, reason: text("Art 17 request req-2026-0001") },
            true,
            None,
        ),
        // Kind 5: retention rules with the bookkeeping fields (appended; the vectors above are
        // unchanged from the first version of this file).
        (
            "retention_rule_bokforingslagen",
            EventKind::RetentionRuleDeclared {
                register: id("bokforing"),
                trigger: Trigger::Collected,
                duration: IsoPeriod::parse("P7Y").unwrap(),
                statute: Some(text("Bokföringslagen (1999:1078) 7 kap. 2 §")),
                financial_year_end: Some(MonthDay::parse("12-31").unwrap()),
                extend_to: Some(ExtendTo::CalendarYearEnd),
            },
            false,
            None,
        ),
        (
            "retention_rule_bogforingsloven",
            EventKind::RetentionRuleDeclared {
                register: id("bogforing"),
                trigger: Trigger::Collected,
                duration: IsoPeriod::parse("P5Y").unwrap(),
                statute: Some(text("Bogføringsloven § 12")),
                financial_year_end: Some(MonthDay::parse("12-31").unwrap()),
                extend_to: None,
            },
            false,
            None,
        ),
        (
            "retention_rule_financial_year_0630",
            EventKind::RetentionRuleDeclared {
                register: id("bokforing"),
                trigger: Trigger::Collected,
                duration: IsoPeriod::parse("P7Y").unwrap(),
                statute: None,
                financial_year_end: Some(MonthDay::parse("06-30").unwrap()),
                extend_to: Some(ExtendTo::CalendarYearEnd),
            },
            false,
            None,
        ),
        (
            "retention_rule_extend_to_only",
            EventKind::RetentionRuleDeclared {
                register: id("fakturaregister"),
                trigger: Trigger::RelationshipEnded,
                duration: IsoPeriod::parse("P1Y").unwrap(),
                statute: None,
                financial_year_end: None,
                extend_to: Some(ExtendTo::CalendarYearEnd),
            },
            false,
            None,
        ),
        (
            "subject_map_committed",
            EventKind::SubjectMapCommitted { tree_size: 18, subjects: 1, map_root: TextHash([0x5a; 32]) },
            false,
            None,
        ),
        (
            "controller_declared_fields",
            EventKind::ControllerDeclared {
                legal_name: text("Kazoom A/S"),
                organisation_number: Some(text("CVR 40700218")),
                address: None,
                contact: Some(text("kundeservice@kazoom.dk")),
                dpo_contact: None,
                authority: text("Datatilsynet"),
                authority_country: CountryCode::new("DK").unwrap(),
            },
            false,
            None,
        ),
        (
            "purpose_declared_data_subjects",
            EventKind::PurposeDeclared {
                purpose: id("app-login"),
                description: text("Säker inloggning i tv-boxen och appen Kalejdo Smarta Hem"),
                legal_basis: LegalBasis::Contract,
                register: id("appdatabas"),
                data_subjects: Some(cats(&["app-users", "customers"])),
            },
            false,
            None,
        ),
        (
            "processor_country_not_stated",
            EventKind::ProcessorRegistered {
                processor: id("app-cloud"),
                name: text("Molntjänst (land anges inte)"),
                country: CountryCode::NOT_STATED,
                role: Role::Processor,
                transfer_mechanism: None,
                dpa_ref: Some(text("Avtal om hantering av personuppgifter")),
            },
            false,
            None,
        ),
    ];
    for (seq, (name, kind, is_subject, commitment)) in kinds.into_iter().enumerate() {
        let ledger_event = kind.scope() == kvitto_core::Scope::Ledger;
        let mut e = base(seq as u64, prev, kind);
        if ledger_event {
            (e.controller, e.actor) = (id("kvitto:ledger"), id("kvitto:map"));
        }
        e.event_id = EventId(uuid::Uuid::from_u128(0x0194312a_8b00_7000_8000_000000000000 + seq as u128));
        if is_subject {
            e.subject = Some(SubjectLink { subject: subj, subject_seq, subject_prev });
        }
        e.payload_commitment = commitment;
        let h = event_hash(&encode_event(&e));
        if is_subject {
            subject_prev = Some(h);
            subject_seq += 1;
        }
        prev = h;
        out.push((name, e));
    }
    out
}

fn write_file(name: &str, value: &Value) {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    std::fs::write(golden_dir().join(name), text).unwrap();
}

fn read_file(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn event_vectors() {
    if std::env::var_os("KVITTO_WRITE_GOLDEN").is_some() {
        let vectors: Vec<Value> = build_vectors()
            .into_iter()
            .map(|(name, e)| {
                let pre = encode_event(&e);
                json!({"name": name, "event": event_to_json(&e), "preimage_hex": hex::encode(&pre), "hash_hex": event_hash(&pre).to_hex()})
            })
            .collect();
        write_file("events.json", &json!({"context": kvitto_core::canonical::EVENT_HASH_CONTEXT, "vectors": vectors}));
    }
    let file = read_file("events.json");
    assert_eq!(file["context"], kvitto_core::canonical::EVENT_HASH_CONTEXT);
    let vectors = file["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10, "need at least 10 golden vectors");
    let mut kinds = std::collections::BTreeSet::new();
    let mut prev: Option<EventHash> = None;
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let event = event_from_json(v["event"].as_object().unwrap()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        kinds.insert(event.kind.name());
        let pre = encode_event(&event);
        assert_eq!(hex::encode(&pre), v["preimage_hex"].as_str().unwrap(), "{name}: preimage");
        assert_eq!(event_hash(&pre).to_hex(), v["hash_hex"].as_str().unwrap(), "{name}: hash");
        assert_eq!(decode_event(&pre).unwrap(), event, "{name}: decode");
        if let Some(p) = prev {
            assert_eq!(event.prev_hash, p, "{name}: the vectors form one chain");
        }
        prev = Some(event_hash(&pre));
    }
    assert!(kinds.len() >= 8, "vectors cover {} kinds", kinds.len());
}

#[test]
fn pseudonym_and_commitment_vectors() {
    if std::env::var_os("KVITTO_WRITE_GOLDEN").is_some() {
        let mut items = Vec::new();
        for (secret, controller, r) in [
            ([0x42u8; 32], "kalejdo", "cust-1001"),
            ([0x42; 32], "kazoom", "cust-1001"),
            ([0x43; 32], "kalejdo", "cust-1001"),
            ([0x42; 32], "komteknik-el", "Kund 4711 Åre"),
        ] {
            let s = LedgerSecret(secret);
            let id = s.subject_id(&id(controller), &ExternalRef::new(r).unwrap());
            items.push(json!({"secret_hex": hex::encode(secret), "controller": controller, "external_ref": r, "subject_id_hex": id.to_hex()}));
        }
        let mut commitments = Vec::new();
        for (salt, plaintext) in [
            ([0x11u8; 32], r#"{"email":"asa@example.se","name":"Åsa Öberg"}"#),
            ([0u8; 32], r#"{"ticket":"Router blinkar rött"}"#),
        ] {
            commitments.push(json!({"salt_hex": hex::encode(salt), "plaintext": plaintext, "commitment_hex": payload_commitment(&salt, plaintext.as_bytes()).to_hex()}));
        }
        write_file("pseudonyms.json", &json!({"subject_ids": items, "commitments": commitments}));
    }
    let file = read_file("pseudonyms.json");
    for v in file["subject_ids"].as_array().unwrap() {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(v["secret_hex"].as_str().unwrap(), &mut secret).unwrap();
        let got = LedgerSecret(secret).subject_id(
            &id(v["controller"].as_str().unwrap()),
            &ExternalRef::new(v["external_ref"].as_str().unwrap()).unwrap(),
        );
        assert_eq!(got.to_hex(), v["subject_id_hex"].as_str().unwrap());
    }
    for v in file["commitments"].as_array().unwrap() {
        let mut salt = [0u8; 32];
        hex::decode_to_slice(v["salt_hex"].as_str().unwrap(), &mut salt).unwrap();
        let got = payload_commitment(&salt, v["plaintext"].as_str().unwrap().as_bytes());
        assert_eq!(got.to_hex(), v["commitment_hex"].as_str().unwrap());
    }
}
