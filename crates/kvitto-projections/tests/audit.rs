//! Each audit check both ways: a violating case, and a compliant look-alike that differs only
//! in what makes it compliant (docs/AUDIT.md).

mod support;

use kvitto_core::*;
use kvitto_projections::*;
use support::*;

const C: &str = "kazoom";

/// A controller with a notice, a contract purpose, a consent purpose, a legitimate-interests
/// purpose, a registered EEA processor, and a customer collected on contract on 2026-01-01.
fn base() -> (Script, SubjectId) {
    let mut s = Script::default();
    s.push(C, None, t("2020-01-01"), EventKind::NoticePublished { version: id("v1"), text_hash: TextHash([7; 32]) });
    s.declare(C, "contract-delivery", LegalBasis::Contract, "kunderegister");
    s.declare(C, "product-news", LegalBasis::Consent, "kunderegister");
    s.declare(C, "ad-suppression", LegalBasis::LegitimateInterests, "kunderegister");
    s.processor(C, "sms-partner", "DK", None);
    let c = subject(1);
    s.collect(C, c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-01");
    (s, c)
}

fn share(s: &mut Script, c: SubjectId, processor: &str, purpose: &str, at: &str) -> u64 {
    s.subject_event(
        C,
        c,
        at,
        EventKind::DataShared {
            processor: id(processor),
            categories: cats(&["name", "contact"]),
            purpose: id(purpose),
        },
    )
}

/// The findings of check `k` at `now`: (seqs, text) each.
fn found(s: &Script, k: &str, now: &str) -> Vec<(Vec<u64>, String)> {
    found_with(s, k, AuditOptions::at(t(now)))
}

fn found_with(s: &Script, k: &str, o: AuditOptions) -> Vec<(Vec<u64>, String)> {
    let p = Projections::rebuild(&s.events);
    p.audit(None, &o).into_iter().filter(|f| f.check == k).map(|f| (f.seqs, f.text)).collect()
}

fn seqs(v: &[(Vec<u64>, String)]) -> Vec<Vec<u64>> {
    v.iter().map(|(s, _)| s.clone()).collect()
}

#[test]
fn a_compliant_life_has_no_finding_at_all() {
    let (mut s, c) = base();
    s.consent(C, c, "product-news", "2026-01-02");
    share(&mut s, c, "sms-partner", "product-news", "2026-01-03");
    let p = Projections::rebuild(&s.events);
    let all = p.audit(None, &AuditOptions::at(t("2026-12-01")));
    assert_eq!(all, vec![], "{all:#?}");
}

#[test]
fn k02_processing_on_consent_without_consent_or_after_withdrawal() {
    let (mut s, c) = base();
    let before = share(&mut s, c, "sms-partner", "product-news", "2026-01-02");
    s.consent(C, c, "product-news", "2026-01-03");
    let ok = share(&mut s, c, "sms-partner", "product-news", "2026-01-04");
    let w = s.withdraw(C, c, "product-news", "2026-01-05");
    let after = share(&mut s, c, "sms-partner", "product-news", "2026-01-06");
    let f = found(&s, "K02", "2026-02-01");
    assert_eq!(seqs(&f), vec![vec![before], vec![after, w]]);
    assert!(f[1].1.contains("consent was withdrawn on 2026-01-05"), "{f:?}");
    assert!(!seqs(&f).iter().any(|x| x[0] == ok), "a share while consent stood is fine");
}

#[test]
fn k03_undeclared_purpose_or_a_basis_other_than_declared() {
    let (mut s, c) = base();
    let undeclared =
        s.collect(C, c, "kunderegister", "lead-scoring", LegalBasis::Consent, Source::Subject, "2026-01-02");
    let wrong = s.collect(C, c, "kunderegister", "ad-suppression", LegalBasis::Contract, Source::Subject, "2026-01-03");
    // Look-alikes: the declared basis; and a purpose declared before its use.
    s.collect(C, c, "kunderegister", "ad-suppression", LegalBasis::LegitimateInterests, Source::Subject, "2026-01-04");
    let f = found(&s, "K03", "2026-02-01");
    assert_eq!(seqs(&f), vec![vec![undeclared], vec![wrong, 3]]);
    assert!(f[1].1.contains("declared on legitimate_interests"), "{f:?}");
}

#[test]
fn k04_processing_after_an_objection_or_opt_out_but_not_on_a_legal_obligation() {
    let (mut s, c) = base();
    s.declare(C, "bookkeeping", LegalBasis::LegalObligation, "bogforing");
    let fine = share(&mut s, c, "sms-partner", "ad-suppression", "2026-01-02");
    let o = s.object(C, c, "ad-suppression", "2026-01-03");
    let after = share(&mut s, c, "sms-partner", "ad-suppression", "2026-01-04");
    // An objection to bookkeeping does not override the legal obligation.
    s.object(C, c, "bookkeeping", "2026-01-05");
    s.collect(C, c, "bogforing", "bookkeeping", LegalBasis::LegalObligation, Source::Controller, "2026-01-06");
    // An opt-out (a withdrawal) of a contract purpose is honoured too (DECISIONS.md rule 6).
    let out = s.withdraw(C, c, "contract-delivery", "2026-01-07");
    let sms = share(&mut s, c, "sms-partner", "contract-delivery", "2026-01-08");
    let f = found(&s, "K04", "2026-02-01");
    assert_eq!(seqs(&f), vec![vec![after, o], vec![sms, out]]);
    assert!(!seqs(&f).iter().any(|x| x[0] == fine));
    assert!(f[1].1.contains("opted out of contract-delivery"), "{f:?}");
}

#[test]
fn k05_processing_other_than_storage_while_restricted() {
    let (mut s, c) = base();
    let r = s.subject_event(
        C,
        c,
        "2026-01-02",
        EventKind::ProcessingRestricted { reason: Text::new("Art 18(1)(a)").unwrap() },
    );
    let during = share(&mut s, c, "sms-partner", "contract-delivery", "2026-01-03");
    s.collect(C, c, "kunderegister", "storage", LegalBasis::Contract, Source::Controller, "2026-01-04");
    s.subject_event(C, c, "2026-01-05", EventKind::RestrictionLifted { reason: Text::new("checked").unwrap() });
    share(&mut s, c, "sms-partner", "contract-delivery", "2026-01-06");
    assert_eq!(seqs(&found(&s, "K05", "2026-02-01")), vec![vec![during, r]]);
}

fn request(s: &mut Script, c: SubjectId, req: &str, right: Right, at: &str) -> u64 {
    s.subject_event(C, c, at, EventKind::RightsRequestReceived { request_id: id(req), right })
}

fn fulfil(s: &mut Script, c: SubjectId, req: &str, at: &str) -> u64 {
    s.subject_event(C, c, at, EventKind::RightsRequestFulfilled { request_id: id(req) })
}

#[test]
fn k06_requests_overdue_or_answered_late_and_extensions_within_the_month() {
    let (mut s, c) = base();
    let a = request(&mut s, c, "r-open", Right::Access, "2026-01-10");
    let b = request(&mut s, c, "r-late", Right::Access, "2026-01-10");
    let bf = fulfil(&mut s, c, "r-late", "2026-02-20");
    // Extended within the first month and answered within three: compliant.
    request(&mut s, c, "r-ext", Right::Portability, "2026-01-10");
    s.subject_event(
        C,
        c,
        "2026-02-01",
        EventKind::RightsRequestExtended { request_id: id("r-ext"), reason: Text::new("complex").unwrap() },
    );
    fulfil(&mut s, c, "r-ext", "2026-03-20");
    // Answered in time: compliant.
    request(&mut s, c, "r-ok", Right::Access, "2026-01-10");
    fulfil(&mut s, c, "r-ok", "2026-02-09");
    let f = found(&s, "K06", "2026-04-01");
    assert_eq!(seqs(&f), vec![vec![a], vec![b, bf]], "{f:?}");
    assert!(f[0].1.contains("open past its deadline 2026-02-10"), "{f:?}");
    assert!(f[1].1.contains("answered 10 days after"), "{f:?}");
    // Before the first deadline nothing is overdue.
    assert_eq!(found(&s, "K06", "2026-02-09"), vec![]);
}

#[test]
fn k07_retention_overdue_unless_erased_or_deferred() {
    let (mut s, c) = base();
    let rule = s.rule(C, Rule::new("kunderegister", Trigger::RelationshipEnded, "P30D"));
    let end = s.end_relationship(C, c, "2026-02-01");
    let f = found(&s, "K07", "2026-04-01");
    assert_eq!(seqs(&f), vec![vec![end, rule]]);
    assert!(f[0].1.contains("due for erasure on 2026-03-03"), "{f:?}");
    assert_eq!(found(&s, "K07", "2026-03-03"), vec![], "due today is not overdue");
    s.erase(C, c, Some("kunderegister"), "2026-03-04");
    assert_eq!(found(&s, "K07", "2026-04-01"), vec![], "erased");
    let (mut s, c) = base();
    s.rule(C, Rule::new("kunderegister", Trigger::RelationshipEnded, "P30D"));
    s.end_relationship(C, c, "2026-02-01");
    s.defer(C, c, "kunderegister", "Bogføringsloven § 12", "2031-01-01T00:00:00Z", "2026-03-01");
    assert_eq!(found(&s, "K07", "2026-04-01"), vec![], "deferred");
}

#[test]
fn k08_deferral_expired_without_erasure_and_holds_never_released() {
    let (mut s, c) = base();
    let d = s.defer(C, c, "kunderegister", "Bogføringsloven § 12", "2026-06-01T00:00:00Z", "2026-01-02");
    assert_eq!(found(&s, "K08", "2026-06-01"), vec![], "not expired yet");
    assert_eq!(seqs(&found(&s, "K08", "2026-07-01")), vec![vec![d]]);
    s.erase(C, c, Some("kunderegister"), "2026-06-02");
    assert_eq!(found(&s, "K08", "2026-07-01"), vec![], "erased after the deferral ran out");

    let (mut s, c) = base();
    let h = s.subject_event(
        C,
        c,
        "2026-01-02",
        EventKind::LegalHoldPlaced { hold_id: id("h-1"), reason: Text::new("tvist").unwrap() },
    );
    assert_eq!(found(&s, "K08", "2026-12-01"), vec![], "within the review period");
    assert_eq!(seqs(&found(&s, "K08", "2027-02-01")), vec![vec![h]]);
    s.subject_event(C, c, "2026-06-01", EventKind::LegalHoldReleased { hold_id: id("h-1") });
    assert_eq!(found(&s, "K08", "2027-02-01"), vec![], "released");
}

#[test]
fn k09_unregistered_recipient_or_third_country_without_safeguard() {
    let (mut s, c) = base();
    let us = s.processor(C, "us-crm", "US", None);
    s.processor(C, "us-crm-scc", "US", Some(TransferMechanism::Scc));
    s.processor(C, "unknown-country", "ZZ", None);
    let x = share(&mut s, c, "mystery", "contract-delivery", "2026-01-02");
    let y = share(&mut s, c, "us-crm", "contract-delivery", "2026-01-03");
    share(&mut s, c, "us-crm-scc", "contract-delivery", "2026-01-04");
    share(&mut s, c, "sms-partner", "contract-delivery", "2026-01-05");
    share(&mut s, c, "unknown-country", "contract-delivery", "2026-01-06");
    assert_eq!(seqs(&found(&s, "K09", "2026-02-01")), vec![vec![x], vec![y, us]]);
}

#[test]
fn k10_rectification_passed_on_to_every_earlier_recipient_within_the_window() {
    let (mut s, c) = base();
    s.processor(C, "logistics", "DK", None);
    let to_sms = share(&mut s, c, "sms-partner", "contract-delivery", "2026-01-02");
    share(&mut s, c, "logistics", "contract-delivery", "2026-01-02");
    let r = s.subject_event(
        C,
        c,
        "2026-02-01",
        EventKind::DataRectified { register: id("kunderegister"), categories: cats(&["contact"]) },
    );
    // Logistics gets the correction within 30 days; the SMS partner never does.
    share(&mut s, c, "logistics", "contract-delivery", "2026-02-10");
    assert_eq!(found(&s, "K10", "2026-02-20"), vec![], "the window is still open");
    let f = found(&s, "K10", "2026-04-01");
    assert_eq!(seqs(&f), vec![vec![r, to_sms]]);
    assert!(f[0].1.contains("sms-partner"), "{f:?}");
}

#[test]
fn k11_sharing_after_erasure_unless_collected_again() {
    let (mut s, c) = base();
    let e = s.erase(C, c, Some("kunderegister"), "2026-02-01");
    let after = share(&mut s, c, "sms-partner", "contract-delivery", "2026-02-02");
    s.collect(C, c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-03-01");
    share(&mut s, c, "sms-partner", "contract-delivery", "2026-03-02");
    assert_eq!(seqs(&found(&s, "K11", "2026-04-01")), vec![vec![after, e]]);
}

#[test]
fn k12_consent_without_a_notice_version_or_under_one_not_yet_published() {
    let (mut s, c) = base();
    let none = s.subject_event(
        C,
        c,
        "2026-01-02",
        EventKind::ConsentGiven { purpose: id("product-news"), notice_version: None, channel: None },
    );
    let early = s.subject_event(
        C,
        c,
        "2026-01-03",
        EventKind::ConsentGiven { purpose: id("product-news"), notice_version: Some(id("v2")), channel: None },
    );
    s.push(C, None, t("2026-01-04"), EventKind::NoticePublished { version: id("v2"), text_hash: TextHash([8; 32]) });
    s.subject_event(
        C,
        c,
        "2026-01-05",
        EventKind::ConsentGiven { purpose: id("product-news"), notice_version: Some(id("v2")), channel: None },
    );
    let f = found(&s, "K12", "2026-02-01");
    assert_eq!(seqs(&f), vec![vec![none], vec![early]]);
    assert!(f[1].1.contains("not published by then"), "{f:?}");
}

#[test]
fn k13_late_recording_while_the_ledger_was_kept_but_not_an_import() {
    let (mut s, c) = base();
    let late = s.push_at(
        C,
        Some(c),
        at("2026-01-10T00:00:00Z"),
        at("2026-01-13T00:00:00Z"),
        EventKind::ObjectionRecorded { purpose: id("ad-suppression") },
    );
    s.push_at(
        C,
        Some(c),
        at("2026-01-20T00:00:00Z"),
        at("2026-01-22T23:59:59Z"),
        EventKind::ObjectionRecorded { purpose: id("ad-suppression") },
    );
    let o = |hours, start| AuditOptions {
        late_after_hours: hours,
        ledger_start: start,
        ..AuditOptions::at(t("2026-02-01"))
    };
    assert_eq!(seqs(&found_with(&s, "K13", o(72, Timestamp::MIN))), vec![vec![late]]);
    assert_eq!(found_with(&s, "K13", o(73, Timestamp::MIN)), vec![], "the threshold is configurable");
    // Events that occurred before the ledger began were imported, not recorded late.
    assert_eq!(found_with(&s, "K13", o(72, at("2026-01-15T00:00:00Z"))), vec![]);
    // Unless inserted behind a later event of the subject already recorded: a backdated entry.
    let later = s.push_at(
        C,
        Some(c),
        at("2026-01-25T00:00:00Z"),
        at("2026-01-25T01:00:00Z"),
        EventKind::ObjectionRecorded { purpose: id("ad-suppression") },
    );
    let back = s.push_at(
        C,
        Some(c),
        at("2026-01-05T00:00:00Z"),
        at("2026-01-26T00:00:00Z"),
        EventKind::ObjectionRecorded { purpose: id("ad-suppression") },
    );
    let f = found_with(&s, "K13", o(72, at("2026-01-27T00:00:00Z")));
    assert_eq!(seqs(&f), vec![vec![back, later]], "{f:?}");
    assert!(f[0].1.contains("after the ledger had recorded the subject's event of 2026-01-25"), "{f:?}");
}

#[test]
fn k14_erasure_request_fulfilled_without_erasure_or_deferral() {
    let (mut s, c) = base();
    let r = request(&mut s, c, "r-1", Right::Erasure, "2026-01-10");
    let f = fulfil(&mut s, c, "r-1", "2026-01-12");
    request(&mut s, c, "r-2", Right::Erasure, "2026-01-20");
    s.erase(C, c, None, "2026-01-21");
    fulfil(&mut s, c, "r-2", "2026-01-21");
    request(&mut s, c, "r-3", Right::Access, "2026-01-20");
    fulfil(&mut s, c, "r-3", "2026-01-22");
    assert_eq!(seqs(&found(&s, "K14", "2026-02-01")), vec![vec![f, r]]);
    let (mut s, c) = base();
    request(&mut s, c, "r-1", Right::Erasure, "2026-01-10");
    s.defer(C, c, "kunderegister", "Bogføringsloven § 12", "2031-01-01T00:00:00Z", "2026-01-11");
    fulfil(&mut s, c, "r-1", "2026-01-12");
    assert_eq!(found(&s, "K14", "2026-02-01"), vec![], "a recorded deferral answers it");
}

#[test]
fn k15_contract_sharing_after_the_relationship_ended_unless_a_new_contract() {
    let (mut s, c) = base();
    let end = s.end_relationship(C, c, "2026-02-01");
    let after = share(&mut s, c, "sms-partner", "contract-delivery", "2026-02-02");
    share(&mut s, c, "sms-partner", "ad-suppression", "2026-02-03");
    s.collect(C, c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-03-01");
    share(&mut s, c, "sms-partner", "contract-delivery", "2026-03-02");
    assert_eq!(seqs(&found(&s, "K15", "2026-04-01")), vec![vec![after, end]]);
}

#[test]
fn findings_name_check_severity_article_and_the_pseudonym_only() {
    let (mut s, c) = base();
    share(&mut s, c, "mystery", "contract-delivery", "2026-01-02");
    let p = Projections::rebuild(&s.events);
    let f = &p.audit(Some(&id(C)), &AuditOptions::at(t("2026-02-01")))[0];
    assert_eq!((f.check, f.severity, f.article), ("K09", Severity::High, "Art 28, 30(1)(d)–(e), 44–49"));
    assert_eq!(f.subject_id.as_deref(), Some(c.to_hex().as_str()));
    let json = serde_json::to_value(f).unwrap();
    assert!(json.get("subject").is_none(), "{json}");
    assert!(p.audit(Some(&id("other")), &AuditOptions::at(t("2026-02-01"))).is_empty());
}
