//! Given / when / then tests for every rule of docs/DECISIONS.md and each seed's distinctive case.
#![allow(clippy::unwrap_used)]

mod support;

use kvitto_core::*;
use kvitto_projections::*;
use support::*;

fn given(script: &Script) -> Projections {
    Projections::rebuild(&script.events)
}

fn may(p: &Projections, c: &str, s: SubjectId, purpose: &str, at: &str) -> Decision {
    p.may_process(&id(c), &s, &id(purpose), &AsOf::at(t(at))).unwrap()
}

#[test]
fn consent_basis_needs_consent_given_and_not_withdrawn() {
    // Given Kazoom declares product news on consent (seed 004 h) and a customer signs up
    let mut s = Script::default();
    let decl = s.declare("kazoom", "product-news", LegalBasis::Consent, "kunderegister");
    let c = subject(1);
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let p = given(&s);
    // Then without consent: denied, decided by the declaration
    let d = may(&p, "kazoom", c, "product-news", "2026-01-02");
    assert_eq!((d.allowed, d.seq), (false, Some(decl)));
    assert!(d.reason.contains("requires consent"), "{}", d.reason);
    // When consent is given, then allowed by that event
    let given_seq = s.consent("kazoom", c, "product-news", "2026-02-01");
    let p = given(&s);
    let d = may(&p, "kazoom", c, "product-news", "2026-02-02");
    assert_eq!((d.allowed, d.seq), (true, Some(given_seq)));
    // When withdrawn, then denied by the withdrawal
    let w = s.withdraw("kazoom", c, "product-news", "2026-03-01");
    let p = given(&s);
    let d = may(&p, "kazoom", c, "product-news", "2026-03-02");
    assert_eq!((d.allowed, d.seq), (false, Some(w)));
    assert!(d.reason.contains("withdrawn"));
}

#[test]
fn seed_004_withdrawal_does_not_make_earlier_processing_unlawful() {
    let mut s = Script::default();
    s.declare("kazoom", "market-research", LegalBasis::Consent, "analyse");
    let c = subject(2);
    let g = s.consent("kazoom", c, "market-research", "2026-01-10");
    s.collect("kazoom", c, "analyse", "market-research", LegalBasis::Consent, Source::Subject, "2026-01-11");
    s.withdraw("kazoom", c, "market-research", "2026-05-01");
    let p = given(&s);
    // Asked as of the collection (before the withdrawal), processing was allowed by the consent
    let d = may(&p, "kazoom", c, "market-research", "2026-01-11");
    assert_eq!((d.allowed, d.seq), (true, Some(g)));
    // After the withdrawal it is not
    assert!(!may(&p, "kazoom", c, "market-research", "2026-05-02").allowed);
}

#[test]
fn legitimate_interests_allowed_unless_objection_and_seed_002_opt_out_covers_profiling() {
    let mut s = Script::default();
    let decl = s.declare("select-telecom", "marketing", LegalBasis::LegitimateInterests, "kunddata");
    s.declare("select-telecom", "marketing-profiling", LegalBasis::LegitimateInterests, "kunddata");
    s.declare("select-telecom", "marketingresearch", LegalBasis::LegitimateInterests, "kunddata");
    let c = subject(3);
    s.collect("select-telecom", c, "kunddata", "service-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let p = given(&s);
    let d = may(&p, "select-telecom", c, "marketing", "2026-01-02");
    assert_eq!((d.allowed, d.seq), (true, Some(decl)));
    assert!(may(&p, "select-telecom", c, "marketing-profiling", "2026-01-02").allowed);
    // When the customer objects to marketing (Art 21(2))
    let o = s.object("select-telecom", c, "marketing", "2026-02-01");
    let p = given(&s);
    let d = may(&p, "select-telecom", c, "marketing", "2026-02-02");
    assert_eq!((d.allowed, d.seq), (false, Some(o)));
    // Then profiling for marketing ends too (seed 002), decided by the same objection
    let d = may(&p, "select-telecom", c, "marketing-profiling", "2026-02-02");
    assert_eq!((d.allowed, d.seq), (false, Some(o)));
    assert!(d.reason.contains("objected to marketing"), "{}", d.reason);
    // but a purpose that merely starts with the same letters is not covered
    assert!(may(&p, "select-telecom", c, "marketingresearch", "2026-02-02").allowed);
    // and before the objection, profiling was allowed
    assert!(may(&p, "select-telecom", c, "marketing-profiling", "2026-01-31").allowed);
}

#[test]
fn seed_000_marketing_opt_out_recorded_as_withdrawal_denies_legitimate_interests() {
    let mut s = Script::default();
    s.declare("kalejdo", "marketing", LegalBasis::LegitimateInterests, "kundregister");
    let c = subject(4);
    let w = s.withdraw("kalejdo", c, "marketing", "2026-03-01");
    let p = given(&s);
    let d = may(&p, "kalejdo", c, "marketing", "2026-03-02");
    assert_eq!((d.allowed, d.seq), (false, Some(w)));
}

#[test]
fn restriction_denies_everything_but_storage_until_lifted() {
    let mut s = Script::default();
    s.declare("select-telecom", "service-delivery", LegalBasis::Contract, "kunddata");
    s.declare("select-telecom", "storage", LegalBasis::LegalObligation, "kunddata");
    let c = subject(5);
    s.collect("select-telecom", c, "kunddata", "service-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let r = s.subject_event(
        "select-telecom",
        c,
        "2026-02-01",
        EventKind::ProcessingRestricted { reason: Text::new("accuracy contested").unwrap() },
    );
    let l = s.subject_event(
        "select-telecom",
        c,
        "2026-03-01",
        EventKind::RestrictionLifted { reason: Text::new("verified").unwrap() },
    );
    let p = given(&s);
    let d = may(&p, "select-telecom", c, "service-delivery", "2026-02-15");
    assert_eq!((d.allowed, d.seq), (false, Some(r)));
    assert!(d.reason.contains("restricted"));
    let d = may(&p, "select-telecom", c, "storage", "2026-02-15");
    assert_eq!((d.allowed, d.seq), (true, Some(r)));
    assert!(may(&p, "select-telecom", c, "service-delivery", "2026-03-02").allowed);
    assert!(l > r);
}

#[test]
fn seed_004_an_opt_out_of_service_messages_on_contract_is_honoured_and_consent_agrees() {
    // Given Kazoom sends service messages on the contract (seed 004 g) and keeps bookkeeping
    // under Bogføringsloven
    let mut s = Script::default();
    let decl = s.declare("kazoom", "service-messages", LegalBasis::Contract, "kunderegister");
    s.declare("kazoom", "bookkeeping", LegalBasis::LegalObligation, "regnskab");
    let c = subject(20);
    s.collect("kazoom", c, "kunderegister", "service-messages", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let p = given(&s);
    let d = may(&p, "kazoom", c, "service-messages", "2026-01-02");
    assert_eq!((d.allowed, d.seq), (true, Some(decl)));
    // When the customer opts out of service messages
    let o = s.object("kazoom", c, "service-messages", "2026-02-01");
    let p = given(&s);
    // Then may-process denies them, decided by the opt-out, as `consent` says `objected`
    let d = may(&p, "kazoom", c, "service-messages", "2026-02-02");
    assert_eq!((d.allowed, d.seq), (false, Some(o)), "{}", d.reason);
    assert!(d.reason.contains("objected to service-messages") && d.reason.contains("contract"), "{}", d.reason);
    let answers = p.consent(&id("kazoom"), &c, Some(&id("service-messages")), &AsOf::at(t("2026-02-02"))).unwrap();
    assert_eq!(answers.iter().map(|a| (a.state, a.seq)).collect::<Vec<_>>(), [(ConsentState::Objected, Some(o))]);
    // and before the opt-out the contract allowed them
    assert!(may(&p, "kazoom", c, "service-messages", "2026-01-31").allowed);
    // An opt-out recorded as a withdrawal is honoured the same way
    let w = s.withdraw("kazoom", c, "service-messages", "2026-03-01");
    let d = may(&given(&s), "kazoom", c, "service-messages", "2026-03-02");
    assert_eq!((d.allowed, d.seq), (false, Some(w)));
    assert!(d.reason.contains("opted out"), "{}", d.reason);
    // But an objection does not stop what a legal obligation requires; the answer says so
    let b = s.object("kazoom", c, "bookkeeping", "2026-04-01");
    let d = may(&given(&s), "kazoom", c, "bookkeeping", "2026-04-02");
    assert_eq!((d.allowed, d.seq), (true, Some(b)));
    assert!(d.reason.contains("does not override it"), "{}", d.reason);
}

#[test]
fn seed_002_storage_during_restriction_is_answerable_without_a_declared_storage_purpose() {
    // Given Select Telecom declares service delivery but no purpose named `storage` (seed 002)
    let mut s = Script::default();
    s.declare("select-telecom", "service-delivery", LegalBasis::Contract, "kunddata");
    let c = subject(21);
    s.collect("select-telecom", c, "kunddata", "service-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let p = given(&s);
    // Then outside a restriction `storage` is an undeclared purpose like any other
    let d = may(&p, "select-telecom", c, "storage", "2026-01-15");
    assert!(!d.allowed && d.reason.contains("not declared"), "{}", d.reason);
    // When the customer contests accuracy and processing is restricted (Art 18)
    let r = s.subject_event(
        "select-telecom",
        c,
        "2026-02-01",
        EventKind::ProcessingRestricted { reason: Text::new("accuracy contested").unwrap() },
    );
    let p = given(&s);
    // Then storage is allowed, decided by the restriction (Art 18(2)), everything else denied
    let d = may(&p, "select-telecom", c, "storage", "2026-02-15");
    assert_eq!((d.allowed, d.seq), (true, Some(r)), "{}", d.reason);
    assert!(d.reason.contains("Art 18(2)"), "{}", d.reason);
    assert!(!may(&p, "select-telecom", c, "service-delivery", "2026-02-15").allowed);
    // and once everything is erased there is nothing left to store
    let e = s.erase("select-telecom", c, None, "2026-03-01");
    let d = may(&given(&s), "select-telecom", c, "storage", "2026-03-02");
    assert_eq!((d.allowed, d.seq), (false, Some(e)), "{}", d.reason);
}

#[test]
fn seed_000_erasing_one_register_keeps_bookkeeping() {
    let mut s = Script::default();
    s.declare("kalejdo", "service-delivery", LegalBasis::Contract, "kundregister");
    s.declare("kalejdo", "bookkeeping", LegalBasis::LegalObligation, "bokforing");
    let c = subject(6);
    s.collect("kalejdo", c, "kundregister", "service-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    s.collect("kalejdo", c, "bokforing", "bookkeeping", LegalBasis::LegalObligation, Source::Controller, "2026-01-01");
    let e = s.subject_event(
        "kalejdo",
        c,
        "2026-06-01",
        EventKind::DataErased { register: Some(id("kundregister")), reason: Text::new("Art 17").unwrap() },
    );
    let p = given(&s);
    let d = may(&p, "kalejdo", c, "service-delivery", "2026-06-02");
    assert_eq!((d.allowed, d.seq), (false, Some(e)));
    assert!(d.reason.contains("register kundregister was erased"));
    assert!(may(&p, "kalejdo", c, "bookkeeping", "2026-06-02").allowed);
    // Erasing everything ends bookkeeping too
    let all = s.subject_event(
        "kalejdo",
        c,
        "2033-01-01",
        EventKind::DataErased { register: None, reason: Text::new("retention over").unwrap() },
    );
    let p = given(&s);
    let d = may(&p, "kalejdo", c, "bookkeeping", "2033-01-02");
    assert_eq!((d.allowed, d.seq), (false, Some(all)));
    // A new relationship collects into the customer register again
    s.collect("kalejdo", c, "kundregister", "service-delivery", LegalBasis::Contract, Source::Subject, "2034-01-01");
    let p = given(&s);
    assert!(may(&p, "kalejdo", c, "service-delivery", "2034-01-02").allowed);
    assert!(!may(&p, "kalejdo", c, "bookkeeping", "2034-01-02").allowed);
}

#[test]
fn undeclared_purpose_is_denied_with_a_reason_and_unknowns_are_errors() {
    let mut s = Script::default();
    s.declare("kazoom", "contract-delivery", LegalBasis::Contract, "kunderegister");
    let c = subject(7);
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let p = given(&s);
    let d = may(&p, "kazoom", c, "telemarketing", "2026-01-02");
    assert_eq!((d.allowed, d.seq), (false, None));
    assert_eq!(d.reason, "purpose telemarketing is not declared by kazoom");
    let q = AsOf::ALL;
    assert_eq!(
        p.may_process(&id("kazoom"), &subject(99), &id("contract-delivery"), &q).unwrap_err(),
        QueryError::UnknownSubject { controller: id("kazoom") }
    );
    assert_eq!(
        p.may_process(&id("nobody"), &c, &id("x"), &q).unwrap_err(),
        QueryError::UnknownController(id("nobody"))
    );
    assert!(matches!(p.consent(&id("kazoom"), &c, Some(&id("nonsense")), &q), Err(QueryError::UnknownPurpose { .. })));
    // A declaration that occurs later is not in force earlier
    let mut s2 = Script::default();
    s2.push(
        "kazoom",
        None,
        t("2026-05-01"),
        EventKind::PurposeDeclared {
            purpose: id("sms"),
            description: Text::new("d").unwrap(),
            legal_basis: LegalBasis::Contract,
            register: id("r"),
            data_subjects: None,
        },
    );
    s2.collect("kazoom", c, "r", "sms", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let p = given(&s2);
    assert!(!may(&p, "kazoom", c, "sms", "2026-04-30").allowed);
    assert!(may(&p, "kazoom", c, "sms", "2026-05-02").allowed);
}

#[test]
fn consent_state_history_and_before_the_first_event() {
    let mut s = Script::default();
    s.declare("komteknik-el", "newsletter", LegalBasis::Consent, "kundregister");
    let c = subject(8);
    let g1 = s.consent("komteknik-el", c, "newsletter", "2026-01-01");
    let w = s.withdraw("komteknik-el", c, "newsletter", "2026-02-01");
    let g2 = s.consent("komteknik-el", c, "newsletter", "2026-03-01");
    let p = given(&s);
    let a = &p.consent(&id("komteknik-el"), &c, Some(&id("newsletter")), &AsOf::at(t("2026-02-15"))).unwrap()[0];
    assert_eq!((a.state, a.seq, a.since), (ConsentState::Withdrawn, Some(w), Some(t("2026-02-01"))));
    assert_eq!(a.history.len(), 2);
    assert_eq!(a.history[0].until, Some(t("2026-02-01")));
    let a = &p.consent(&id("komteknik-el"), &c, Some(&id("newsletter")), &AsOf::ALL).unwrap()[0];
    assert_eq!((a.state, a.seq), (ConsentState::Granted, Some(g2)));
    assert_eq!(a.history.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![g1, w, g2]);
    assert_eq!(a.notice_version, Some(id("v1")));
    // Before the subject's first event: no answer but rule 1's error, naming the first event
    let e = p.consent(&id("komteknik-el"), &c, Some(&id("newsletter")), &AsOf::at(t("2025-12-01"))).unwrap_err();
    assert!(matches!(e, QueryError::NoEventsYet { first, .. } if first == t("2026-01-01")), "{e:?}");
}

#[test]
fn bitemporal_backdated_consent() {
    // Consent occurred on 1 March but was only recorded on 1 April (a paper form typed in).
    let mut s = Script::default();
    s.declare("kazoom", "product-news", LegalBasis::Consent, "kunderegister");
    let c = subject(9);
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let g = s.push_at(
        "kazoom",
        Some(c),
        t("2026-03-01"),
        t("2026-04-01"),
        EventKind::ConsentGiven { purpose: id("product-news"), notice_version: None, channel: Some(id("paper")) },
    );
    let p = given(&s);
    let q = |at: &str, known: &str| AsOf { at: t(at), known_at: t(known) };
    // What was the state on 15 March? Granted — as we know now.
    assert!(p.may_process(&id("kazoom"), &c, &id("product-news"), &q("2026-03-15", "2026-12-01")).unwrap().allowed);
    // What did the ledger say on 15 March about 15 March? No consent.
    let d = p.may_process(&id("kazoom"), &c, &id("product-news"), &q("2026-03-15", "2026-03-15")).unwrap();
    assert!(!d.allowed);
    let a = &p.consent(&id("kazoom"), &c, Some(&id("product-news")), &q("2026-03-15", "2026-04-02")).unwrap()[0];
    assert_eq!((a.state, a.seq), (ConsentState::Granted, Some(g)));
}

#[test]
fn requests_deadlines_and_reports() {
    let mut s = Script::default();
    s.declare("kalejdo", "customer-support", LegalBasis::Contract, "arendelista");
    s.processor("kalejdo", "freshworks", "GB", Some(TransferMechanism::Adequacy));
    s.processor("kalejdo", "us-crm", "US", None);
    s.push(
        "kalejdo",
        None,
        t("2020-01-01"),
        EventKind::RetentionRuleDeclared {
            register: id("arendelista"),
            trigger: Trigger::RecordClosed,
            duration: IsoPeriod::parse("P12M").unwrap(),
            statute: None,
            financial_year_end: None,
            extend_to: None,
        },
    );
    let c = subject(10);
    let col =
        s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-05");
    let sh = s.subject_event(
        "kalejdo",
        c,
        "2026-01-06",
        EventKind::DataShared {
            processor: id("freshworks"),
            categories: cats(&["contact"]),
            purpose: id("customer-support"),
        },
    );
    s.subject_event(
        "kalejdo",
        c,
        "2026-01-07",
        EventKind::DataShared {
            processor: id("us-crm"),
            categories: cats(&["contact"]),
            purpose: id("customer-support"),
        },
    );
    s.subject_event(
        "kalejdo",
        c,
        "2026-01-20",
        EventKind::RecordClosed { register: id("arendelista"), record_id: id("ticket-1") },
    );
    s.subject_event(
        "kalejdo",
        c,
        "2026-01-31",
        EventKind::RightsRequestReceived { request_id: id("req-1"), right: Right::Access },
    );
    s.subject_event(
        "kalejdo",
        c,
        "2026-02-10",
        EventKind::RightsRequestReceived { request_id: id("req-2"), right: Right::Portability },
    );
    s.subject_event(
        "kalejdo",
        c,
        "2026-02-20",
        EventKind::RightsRequestExtended { request_id: id("req-2"), reason: Text::new("complex").unwrap() },
    );
    s.collect("kalejdo", c, "arendelista", "mystery", LegalBasis::Consent, Source::ThirdParty, "2026-02-21");
    let p = given(&s);
    let q = AsOf::at(t("2026-03-15"));
    let r = p.access_report(&id("kalejdo"), &c, &q).unwrap();
    let req1 = r.requests.iter().find(|x| x.request_id == id("req-1")).unwrap();
    assert_eq!((req1.status, req1.deadline, req1.overdue), ("open", Some(t("2026-02-28")), true));
    let req2 = r.requests.iter().find(|x| x.request_id == id("req-2")).unwrap();
    assert_eq!((req2.status, req2.deadline, req2.overdue), ("extended", Some(t("2026-05-10")), false));
    let support = r.purposes.iter().find(|x| x.purpose == id("customer-support")).unwrap();
    assert!(support.seqs.contains(&col) && support.seqs.contains(&sh));
    let us = r.recipients.iter().find(|x| x.processor == id("us-crm")).unwrap();
    assert!(us.third_country == Some(true) && us.transfer_mechanism.is_none());
    let fw = r.recipients.iter().find(|x| x.processor == id("freshworks")).unwrap();
    assert_eq!(fw.transfer_mechanism, Some(TransferMechanism::Adequacy));
    let ret = r.retention.iter().find(|x| x.register == id("arendelista")).unwrap();
    assert_eq!((ret.clock_started, ret.keep_until), (Some(t("2026-01-20")), Some(t("2027-01-20"))));
    let contact = r.categories.iter().find(|x| x.category == id("contact")).unwrap();
    assert!(contact.sources.contains(&Source::Subject) && contact.sources.contains(&Source::ThirdParty));
    // Art 30: the non-EEA recipient without a safeguard is flagged; the undeclared purpose too
    let rec = p.processing_report(&id("kalejdo"), &q).unwrap();
    let us = rec.recipients.iter().find(|x| x.processor == id("us-crm")).unwrap();
    assert!(us.missing_safeguard);
    assert!(!rec.recipients.iter().find(|x| x.processor == id("freshworks")).unwrap().missing_safeguard);
    assert_eq!(rec.undeclared_purposes, vec![id("mystery")]);
    assert_eq!(rec.subjects, 1);
    let support = rec.purposes.iter().find(|x| x.purpose == id("customer-support")).unwrap();
    assert_eq!(support.categories[&LegalBasis::Contract].len(), 2);
    // As of before the sharing, the report shows no recipients
    let early = p.processing_report(&id("kalejdo"), &AsOf::at(t("2026-01-05"))).unwrap();
    assert!(early.recipients.iter().all(|r| r.received.is_empty()));
}

#[test]
fn calendar_periods() {
    assert_eq!(add_period(t("2026-01-31"), &IsoPeriod::parse("P1M").unwrap()), t("2026-02-28"));
    assert_eq!(add_period(t("2024-02-29"), &IsoPeriod::parse("P1Y").unwrap()), t("2025-02-28"));
    assert_eq!(add_period(t("2026-01-01"), &IsoPeriod::parse("P7Y").unwrap()), t("2033-01-01"));
    assert_eq!(
        add_period(t("2026-01-01"), &IsoPeriod::parse("P1DT1H").unwrap()),
        Timestamp::parse_rfc3339("2026-01-02T13:00:00Z").unwrap()
    );
    assert_eq!(add_period(Timestamp::MAX, &IsoPeriod::parse("P1Y").unwrap()), Timestamp::MAX);
}

#[test]
fn seed_004_after_the_contract_ends_contract_purposes_stop_and_bookkeeping_lasts_its_retention() {
    // Given Kazoom: delivery on the contract, product news on consent, bookkeeping by law
    // (bogføringsloven: five years from the end of the financial year)
    let mut s = Script::default();
    s.declare("kazoom", "contract-delivery", LegalBasis::Contract, "kunderegister");
    s.declare("kazoom", "product-news", LegalBasis::Consent, "kunderegister");
    s.declare("kazoom", "bookkeeping", LegalBasis::LegalObligation, "bogforing");
    s.declare("kazoom", "network-security", LegalBasis::LegitimateInterests, "kunderegister");
    s.rule("kazoom", Rule::new("kunderegister", Trigger::RelationshipEnded, "P0D"));
    s.rule("kazoom", Rule::bogforingsloven("bogforing"));
    let c = subject(20);
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-10");
    let g = s.consent("kazoom", c, "product-news", "2026-01-10");
    let invoice = s.collect(
        "kazoom",
        c,
        "bogforing",
        "bookkeeping",
        LegalBasis::LegalObligation,
        Source::Controller,
        "2026-03-10",
    );
    // When the relationship ends on 31 August
    let end = s.end_relationship("kazoom", c, "2026-08-31");
    let p = given(&s);
    // Then delivery on the contract is denied from then on, decided by the end
    let d = may(&p, "kazoom", c, "contract-delivery", "2026-09-01");
    assert_eq!((d.allowed, d.seq), (false, Some(end)));
    assert!(d.reason.contains("relationship ended") && d.reason.contains("Art 6(1)(b)"), "{}", d.reason);
    // but not as of before the end
    assert!(may(&p, "kazoom", c, "contract-delivery", "2026-08-30").allowed);
    // Consent purposes keep following consent; legitimate interests are not affected
    let d = may(&p, "kazoom", c, "product-news", "2026-09-01");
    assert_eq!((d.allowed, d.seq), (true, Some(g)));
    assert!(may(&p, "kazoom", c, "network-security", "2026-09-01").allowed);
    // Bookkeeping stays allowed until its retention is due: kept through 2031-12-31
    assert!(may(&p, "kazoom", c, "bookkeeping", "2031-12-31").allowed);
    let d = p.may_process(&id("kazoom"), &c, &id("bookkeeping"), &AsOf::at(at("2032-01-01T00:00:00Z"))).unwrap();
    assert_eq!((d.allowed, d.seq), (false, Some(invoice)));
    assert!(d.reason.contains("retention of register bogforing ran out at 2032-01-01T00:00:00Z"), "{}", d.reason);
    // When the customer signs a new contract, delivery is allowed again
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2027-02-01");
    let p = given(&s);
    assert!(may(&p, "kazoom", c, "contract-delivery", "2027-02-02").allowed);
    assert!(!may(&p, "kazoom", c, "contract-delivery", "2027-01-31").allowed);
}

#[test]
fn seed_003_bookkeeping_without_a_retention_rule_stays_allowed_after_the_end() {
    let mut s = Script::default();
    s.declare("komteknik-el", "bookkeeping", LegalBasis::LegalObligation, "bokforing");
    let decl = s.declare("komteknik-el", "archive", LegalBasis::LegalObligation, "arkiv");
    s.rule("komteknik-el", Rule::bokforingslagen("bokforing", "12-31"));
    let c = subject(21);
    s.collect(
        "komteknik-el",
        c,
        "bokforing",
        "bookkeeping",
        LegalBasis::LegalObligation,
        Source::Controller,
        "2026-03-10",
    );
    s.end_relationship("komteknik-el", c, "2026-09-30");
    let p = given(&s);
    // Bokföringslagen: through the end of 2033
    assert!(may(&p, "komteknik-el", c, "bookkeeping", "2033-12-31").allowed);
    assert!(!may(&p, "komteknik-el", c, "bookkeeping", "2034-01-01").allowed);
    // A legal-obligation purpose whose register has no rule is not limited by one
    let d = may(&p, "komteknik-el", c, "archive", "2040-01-01");
    assert_eq!((d.allowed, d.seq), (true, Some(decl)));
}

#[test]
fn erasure_of_a_register_denies_its_purposes_whatever_the_basis() {
    let mut s = Script::default();
    s.declare("kalejdo", "customer-support", LegalBasis::Contract, "arendelista");
    s.declare("kalejdo", "support-records", LegalBasis::LegalObligation, "arendelista");
    s.declare("kalejdo", "bookkeeping", LegalBasis::LegalObligation, "bokforing");
    s.declare("kalejdo", "marketing", LegalBasis::LegitimateInterests, "kundregister");
    let c = subject(22);
    s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-05");
    s.collect("kalejdo", c, "bokforing", "bookkeeping", LegalBasis::LegalObligation, Source::Controller, "2026-01-05");
    let e = s.erase("kalejdo", c, Some("arendelista"), "2027-01-21");
    let p = given(&s);
    for purpose in ["customer-support", "support-records"] {
        let d = may(&p, "kalejdo", c, purpose, "2027-01-22");
        assert_eq!((d.allowed, d.seq), (false, Some(e)), "{purpose}");
        assert!(d.reason.contains("register arendelista was erased"), "{}", d.reason);
    }
    // legal-obligation purposes of registers not erased go on, and so do other registers' purposes
    assert!(may(&p, "kalejdo", c, "bookkeeping", "2027-01-22").allowed);
    assert!(may(&p, "kalejdo", c, "marketing", "2027-01-22").allowed);
    // Before the erasure, allowed
    assert!(may(&p, "kalejdo", c, "support-records", "2027-01-20").allowed);
    // Erasing everything denies every purpose, naming the erasure
    let all = s.erase("kalejdo", c, None, "2027-02-01");
    let p = given(&s);
    for purpose in ["bookkeeping", "marketing", "customer-support"] {
        let d = may(&p, "kalejdo", c, purpose, "2027-02-02");
        assert_eq!((d.allowed, d.seq), (false, Some(all)), "{purpose}");
    }
    assert!(may(&p, "kalejdo", c, "bookkeeping", "2027-02-02").reason.contains("all of the subject's data was erased"));
}

#[test]
fn a_share_with_a_recipient_never_registered_has_an_unknown_country_not_an_eea_one() {
    // Given a controller that shares contact data with a processor it never registered
    let mut s = Script::default();
    s.declare("kalejdo", "customer-support", LegalBasis::Contract, "arendelista");
    let c = subject(22);
    s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let sh = s.subject_event(
        "kalejdo",
        c,
        "2026-01-05",
        EventKind::DataShared {
            processor: id("mystery-cloud"),
            categories: cats(&["contact"]),
            purpose: id("customer-support"),
        },
    );
    let p = given(&s);
    let q = AsOf::at(t("2026-02-01"));
    // Then the access report does not claim the data stayed inside the EEA
    let r = p.access_report(&id("kalejdo"), &c, &q).unwrap();
    let x = r.recipients.iter().find(|x| x.processor == id("mystery-cloud")).unwrap();
    assert_eq!((x.name.as_deref(), x.country, x.third_country, x.seqs.as_slice()), (None, None, None, &[sh][..]));
    let json = serde_json::to_value(x).unwrap();
    assert!(json["third_country"].is_null(), "{json}");
    // and neither does the Art 30 record
    let rec = p.processing_report(&id("kalejdo"), &q).unwrap();
    let x = rec.recipients.iter().find(|x| x.processor == id("mystery-cloud")).unwrap();
    assert_eq!((x.declared.is_none(), x.third_country), (true, None));
}

#[test]
fn an_objection_to_an_undeclared_purpose_is_not_profiling_that_exists() {
    // Given a controller that declares marketing on legitimate interests but no profiling
    let mut s = Script::default();
    s.declare("select-telecom", "marketing", LegalBasis::LegitimateInterests, "kunddata");
    let c = subject(23);
    s.collect(
        "select-telecom",
        c,
        "kunddata",
        "marketing",
        LegalBasis::LegitimateInterests,
        Source::Subject,
        "2026-01-01",
    );
    // When the customer objects to a profiling purpose nobody declared
    let o = s.object("select-telecom", c, "marketing-profiling", "2026-02-01");
    let r = given(&s).access_report(&id("select-telecom"), &c, &AsOf::at(t("2026-03-01"))).unwrap();
    // Then Art 15(1)(h) lists no profiling, and the objection is shown as concerning an
    // undeclared purpose for which nothing was processed
    assert!(r.profiling.is_empty(), "{:?}", r.profiling);
    let p = r.purposes.iter().find(|p| p.purpose == id("marketing-profiling")).unwrap();
    assert_eq!(
        (p.declared, p.processed, p.consent, p.seqs.as_slice()),
        (false, false, Some(ConsentState::Objected), &[o][..])
    );
    let m = r.purposes.iter().find(|p| p.purpose == id("marketing")).unwrap();
    assert!(m.declared && m.processed);
    // A profiling purpose that is declared is listed
    s.declare("select-telecom", "marketing-profiling", LegalBasis::LegitimateInterests, "kunddata");
    let r = given(&s).access_report(&id("select-telecom"), &c, &AsOf::at(t("2026-03-01"))).unwrap();
    assert_eq!(r.profiling, vec![id("marketing-profiling")]);
}

#[test]
fn a_register_filled_only_under_an_undeclared_purpose_still_needs_a_retention_rule() {
    // Given a controller with a rule for its declared register, and a collection into another
    // register under a purpose it never declared
    let mut s = Script::default();
    s.declare("kalejdo", "customer-support", LegalBasis::Contract, "arendelista");
    s.rule("kalejdo", Rule::new("arendelista", Trigger::RecordClosed, "P1Y"));
    let c = subject(24);
    s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-01");
    let x = s.collect("kalejdo", c, "crm-export", "lead-scoring", LegalBasis::Consent, Source::Subject, "2026-01-02");
    let p = given(&s);
    // Then the Art 30 record names both the undeclared purpose and the register without a rule,
    // citing the collection; the declared register with its rule is no gap
    let gaps = |at: &str| -> Vec<(&'static str, Id, Vec<u64>)> {
        let rec = p.processing_report(&id("kalejdo"), &AsOf::at(t(at))).unwrap();
        rec.gaps
            .into_iter()
            .filter(|g| g.gap == "register_without_retention" || g.gap == "undeclared_purpose")
            .map(|g| (g.gap, g.concerns, g.seqs))
            .collect()
    };
    assert_eq!(
        gaps("2026-02-01"),
        vec![
            ("undeclared_purpose", id("lead-scoring"), vec![x]),
            ("register_without_retention", id("crm-export"), vec![x])
        ]
    );
    // and before that collection there is none
    assert_eq!(gaps("2026-01-01"), vec![]);
}

#[test]
fn consent_and_the_access_report_before_the_subjects_first_event_are_rule_1s_error() {
    // Given a subject whose first event occurs on 2026-02-01
    let mut s = Script::default();
    s.declare("kazoom", "product-news", LegalBasis::Consent, "kunderegister");
    let c = subject(25);
    s.consent("kazoom", c, "product-news", "2026-02-01");
    let p = given(&s);
    let before = AsOf::at(t("2026-01-15"));
    // Then consent, the access report and may-process all answer "no events yet" as of before
    for err in [
        p.consent(&id("kazoom"), &c, None, &before).map(|_| ()).unwrap_err(),
        p.access_report(&id("kazoom"), &c, &before).map(|_| ()).unwrap_err(),
        p.may_process(&id("kazoom"), &c, &id("product-news"), &before).map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(err, QueryError::NoEventsYet { first, .. } if first == t("2026-02-01")), "{err:?}");
    }
    // and after it, they answer
    let after = AsOf::at(t("2026-02-02"));
    assert_eq!(p.consent(&id("kazoom"), &c, None, &after).unwrap()[0].state, ConsentState::Granted);
    assert!(p.access_report(&id("kazoom"), &c, &after).is_ok());
}
