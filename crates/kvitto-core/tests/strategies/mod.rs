//! proptest strategies for every event kind (shared by the core property tests).
#![allow(dead_code)]

use kvitto_core::event::ExtendTo;
use kvitto_core::period::MonthDay;
use kvitto_core::*;
use proptest::prelude::*;

pub fn id() -> impl Strategy<Value = Id> {
    "[a-z0-9._:-]{1,24}".prop_map(|s| Id::new(s).expect("strategy makes valid ids"))
}

pub fn text() -> impl Strategy<Value = Text> {
    "[a-zA-Z0-9 åäöÅÄÖæøÆØ§.,:;!?/-]{0,40}".prop_map(|s| Text::new(format!("t{s}").trim_end()).expect("valid text"))
}

pub fn ts() -> impl Strategy<Value = Timestamp> {
    (0i64..=Timestamp::MAX.as_micros()).prop_map(|us| Timestamp::from_micros(us).expect("in range"))
}

pub fn h32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

pub fn categories() -> impl Strategy<Value = Categories> {
    proptest::collection::btree_set("[a-z]{1,12}", 1..6)
        .prop_map(|s| Categories::new(s.into_iter().map(|c| Id::new(c).expect("valid")).collect()).expect("valid"))
}

/// A supervisory authority's country: an EEA member state, named (input refuses `ZZ`, `EU`
/// and third countries there).
pub fn authority_country() -> impl Strategy<Value = CountryCode> {
    prop_oneof![Just("SE"), Just("DK"), Just("IE"), Just("NO"), Just("IS"), Just("LI"), Just("DE")]
        .prop_map(|c| CountryCode::new(c).expect("valid"))
}

pub fn country() -> impl Strategy<Value = CountryCode> {
    prop_oneof![Just("SE"), Just("DK"), Just("GB"), Just("US"), Just("IE"), Just("NO"), Just("ZZ"), Just("EU")]
        .prop_map(|c| CountryCode::new(c).expect("valid"))
}

pub fn period() -> impl Strategy<Value = IsoPeriod> {
    (0u32..20, 0u32..24, 0u32..5, 0u32..40, 0u32..48, 0u32..60, 0u32..60).prop_map(
        |(years, months, weeks, days, hours, minutes, seconds)| {
            let p = IsoPeriod { years, months, weeks, days, hours, minutes, seconds };
            if p == IsoPeriod::default() { IsoPeriod { months: 12, ..p } } else { p }
        },
    )
}

/// Every valid `MM-DD`, 02-29 included.
pub fn month_day() -> impl Strategy<Value = MonthDay> {
    (1u8..=12, 1u8..=31).prop_filter_map("a day of the year", |(m, d)| MonthDay::new(m, d).ok())
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

pub fn controller_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (id(), text(), pick(LegalBasis::ALL), id(), proptest::option::of(categories())).prop_map(
            |(purpose, description, legal_basis, register, data_subjects)| {
                EventKind::PurposeDeclared { purpose, description, legal_basis, register, data_subjects }
            }
        ),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            text(),
            authority_country()
        )
            .prop_map(
                |(legal_name, organisation_number, address, contact, dpo_contact, authority, authority_country)| {
                    EventKind::ControllerDeclared {
                        legal_name,
                        organisation_number,
                        address,
                        contact,
                        dpo_contact,
                        authority,
                        authority_country,
                    }
                }
            ),
        (
            id(),
            text(),
            country(),
            pick(Role::ALL),
            proptest::option::of(pick(TransferMechanism::ALL)),
            proptest::option::of(text())
        )
            .prop_map(|(processor, name, country, role, transfer_mechanism, dpa_ref)| {
                EventKind::ProcessorRegistered { processor, name, country, role, transfer_mechanism, dpa_ref }
            }),
        (
            id(),
            pick(Trigger::ALL),
            period(),
            proptest::option::of(text()),
            proptest::option::of(month_day()),
            proptest::option::of(pick(ExtendTo::ALL))
        )
            .prop_map(|(register, trigger, duration, statute, financial_year_end, extend_to)| {
                EventKind::RetentionRuleDeclared { register, trigger, duration, statute, financial_year_end, extend_to }
            }),
        (id(), h32()).prop_map(|(version, h)| EventKind::NoticePublished { version, text_hash: TextHash(h) }),
    ]
}

pub fn subject_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (id(), proptest::option::of(id()), proptest::option::of(id())).prop_map(
            |(purpose, notice_version, channel)| EventKind::ConsentGiven { purpose, notice_version, channel }
        ),
        (id(), proptest::option::of(id()))
            .prop_map(|(purpose, channel)| EventKind::ConsentWithdrawn { purpose, channel }),
        id().prop_map(|purpose| EventKind::ObjectionRecorded { purpose }),
        (id(), categories(), id(), pick(LegalBasis::ALL), pick(Source::ALL)).prop_map(
            |(register, categories, purpose, legal_basis, source)| EventKind::DataCollected {
                register,
                categories,
                purpose,
                legal_basis,
                source
            }
        ),
        (id(), categories(), id()).prop_map(|(processor, categories, purpose)| EventKind::DataShared {
            processor,
            categories,
            purpose
        }),
        (id(), categories()).prop_map(|(register, categories)| EventKind::DataRectified { register, categories }),
        text().prop_map(|reason| EventKind::ProcessingRestricted { reason }),
        text().prop_map(|reason| EventKind::RestrictionLifted { reason }),
        (id(), id()).prop_map(|(register, record_id)| EventKind::RecordClosed { register, record_id }),
        proptest::option::of(text()).prop_map(|reason| EventKind::RelationshipEnded { reason }),
        (id(), pick(Right::ALL)).prop_map(|(request_id, right)| EventKind::RightsRequestReceived { request_id, right }),
        (id(), text()).prop_map(|(request_id, reason)| EventKind::RightsRequestExtended { request_id, reason }),
        id().prop_map(|request_id| EventKind::RightsRequestFulfilled { request_id }),
        (id(), text()).prop_map(|(request_id, reason)| EventKind::RightsRequestRejected { request_id, reason }),
        (id(), text()).prop_map(|(hold_id, reason)| EventKind::LegalHoldPlaced { hold_id, reason }),
        id().prop_map(|hold_id| EventKind::LegalHoldReleased { hold_id }),
        (id(), text(), ts()).prop_map(|(register, statute, until)| EventKind::ErasureDeferred {
            register,
            statute,
            until
        }),
        (proptest::option::of(id()), text()).prop_map(|(register, reason)| EventKind::DataErased { register, reason }),
    ]
}

pub fn event() -> impl Strategy<Value = Event> {
    let head = || (any::<u64>(), h32(), ts(), ts(), any::<[u8; 16]>(), id(), id());
    let controller_event =
        (head(), controller_kind()).prop_map(|((seq, prev, rec, occ, eid, controller, actor), kind)| Event {
            seq,
            prev_hash: EventHash(prev),
            recorded_at: rec,
            occurred_at: occ,
            event_id: EventId(uuid::Uuid::from_bytes(eid)),
            controller,
            actor,
            subject: None,
            kind,
            payload_commitment: None,
        });
    let subject_event = (head(), subject_kind(), any::<[u8; 16]>(), any::<u64>(), h32(), proptest::option::of(h32()))
        .prop_map(|((seq, prev, rec, occ, eid, controller, actor), kind, subject, subject_seq, sprev, commitment)| {
            Event {
                seq,
                prev_hash: EventHash(prev),
                recorded_at: rec,
                occurred_at: occ,
                event_id: EventId(uuid::Uuid::from_bytes(eid)),
                controller,
                actor,
                subject: Some(SubjectLink {
                    subject: SubjectId(subject),
                    subject_seq,
                    subject_prev: (subject_seq > 0).then_some(EventHash(sprev)),
                }),
                kind,
                payload_commitment: commitment.map(Commitment),
            }
        });
    prop_oneof![controller_event, subject_event]
}
