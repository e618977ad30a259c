//! Given / when / then tests for the retention plan (docs/DECISIONS.md, "Retention"), with the
//! seeds' real rules: Kalejdo (seed 000), KomTeknik (seed 003), Kazoom (seed 004).
#![allow(clippy::unwrap_used)]

mod support;

use kvitto_core::*;
use kvitto_projections::*;
use support::*;

const DAY_S: i64 = 86_400;

fn given(script: &Script) -> Projections {
    Projections::rebuild(&script.events)
}

fn item<'a>(plan: &'a [PlanItem], s: SubjectId, register: &str) -> &'a PlanItem {
    plan.iter()
        .find(|i| i.subject == s && i.register == id(register))
        .unwrap_or_else(|| panic!("no plan item for register {register}: {plan:#?}"))
}

#[test]
fn seed_000_kalejdo_tickets_and_shipments_go_twelve_months_after_closing() {
    // Given Kalejdo's rules: ärendelistor and sändningslistor are erased twelve months after
    // the ticket or shipment is closed
    let mut s = Script::default();
    let ticket_rule = s.rule("kalejdo", Rule::new("arendelista", Trigger::RecordClosed, "P12M"));
    s.rule("kalejdo", Rule::new("sandningslista", Trigger::RecordClosed, "P12M"));
    let c = subject(1);
    s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-05");
    s.collect("kalejdo", c, "sandningslista", "shipping", LegalBasis::Contract, Source::Controller, "2026-02-01");
    // a customer with data in a register that has no rule is not in the plan
    s.collect("kalejdo", c, "kundregister", "service-delivery", LegalBasis::Contract, Source::Subject, "2026-01-05");
    let closed = s.close_record("kalejdo", c, "arendelista", "ticket-1", "2026-01-20");
    let shipped = s.close_record("kalejdo", c, "sandningslista", "shipment-1", "2026-02-03");
    let p = given(&s);

    // When planned half a year later, then both are not due, with their due dates
    let plan = p.retention_plan(Some(&id("kalejdo")), at("2026-07-01T00:00:00Z"));
    assert_eq!(plan.len(), 2, "{plan:#?}");
    let ticket = item(&plan, c, "arendelista");
    assert_eq!((ticket.clock_started, ticket.clock_seq), (Some(t("2026-01-20")), Some(closed)));
    assert_eq!(ticket.due_at, Some(t("2027-01-20")));
    assert_eq!(ticket.rule.seq, ticket_rule);
    assert_eq!(ticket.rule.duration, "P12M");
    assert_eq!(ticket.subject_id, c.to_hex());
    let due_in = (t("2027-01-20").as_micros() - at("2026-07-01T00:00:00Z").as_micros()) / 1_000_000;
    assert_eq!(ticket.status, PlanStatus::NotDue { due_in_seconds: Some(due_in) });
    assert_eq!(item(&plan, c, "sandningslista").due_at, Some(t("2027-02-03")));
    assert!(p.retention_candidates(None, at("2026-07-01T00:00:00Z")).is_empty());

    // When asked six hours after the ticket's due date: due; the shipment is not yet
    let plan = p.retention_plan(None, at("2027-01-20T18:00:00Z"));
    assert_eq!(item(&plan, c, "arendelista").status, PlanStatus::Due { due_for_seconds: 6 * 3600 });
    assert_eq!(plan[0].register, id("arendelista"), "due sorts before not due");
    // When asked on 2027-03-01: both overdue, the longer overdue first
    let plan = p.retention_plan(None, at("2027-03-01T12:00:00Z"));
    assert_eq!(plan[0].register, id("arendelista"));
    assert_eq!(plan[0].status, PlanStatus::Overdue { overdue_by_seconds: 40 * DAY_S, overdue_by_days: 40 });
    assert_eq!(plan[1].status, PlanStatus::Overdue { overdue_by_seconds: 26 * DAY_S, overdue_by_days: 26 });
    let candidates = p.retention_candidates(None, at("2027-03-01T12:00:00Z"));
    assert_eq!(candidates.len(), 2);
    assert_eq!((candidates[0].clock_seq, candidates[0].rule_seq), (closed, ticket_rule));
    assert_eq!(candidates[1].clock_seq, shipped);

    // When a second ticket is closed later, then the clock restarts from it
    let later = s.close_record("kalejdo", c, "arendelista", "ticket-2", "2026-05-01");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-03-01T12:00:00Z"));
    let ticket = item(&plan, c, "arendelista");
    assert_eq!((ticket.clock_seq, ticket.due_at), (Some(later), Some(t("2027-05-01"))));
    assert!(matches!(ticket.status, PlanStatus::NotDue { .. }));
}

#[test]
fn seed_000_erased_then_collected_again_starts_a_new_clock() {
    let mut s = Script::default();
    s.rule("kalejdo", Rule::new("arendelista", Trigger::RecordClosed, "P12M"));
    let c = subject(2);
    s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-05");
    s.close_record("kalejdo", c, "arendelista", "ticket-1", "2026-01-20");
    // Given the retention run erased the ticket list
    let erased = s.erase("kalejdo", c, Some("arendelista"), "2027-01-21");
    let p = given(&s);
    // Then the item is erased, naming the erasure
    let plan = p.retention_plan(None, at("2027-02-01T00:00:00Z"));
    assert_eq!(
        item(&plan, c, "arendelista").status,
        PlanStatus::Erased { erased_seq: erased, erased_at: t("2027-01-21") }
    );
    assert!(p.retention_candidates(None, at("2027-02-01T00:00:00Z")).is_empty());
    // When the customer opens a new ticket, then a new clock has not started (no closure after
    // the erasure) …
    s.collect("kalejdo", c, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2027-06-01");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-06-02T00:00:00Z"));
    let ticket = item(&plan, c, "arendelista");
    assert_eq!((ticket.clock_started, ticket.due_at), (None, None));
    assert_eq!(ticket.status, PlanStatus::NotDue { due_in_seconds: None });
    // … until it is closed
    let closed = s.close_record("kalejdo", c, "arendelista", "ticket-2", "2027-06-10");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-06-11T00:00:00Z"));
    let ticket = item(&plan, c, "arendelista");
    assert_eq!((ticket.clock_seq, ticket.due_at), (Some(closed), Some(t("2028-06-10"))));
}

#[test]
fn seed_003_komteknik_customer_data_a_year_after_the_end_and_bookkeeping_per_bokforingslagen() {
    // Given KomTeknik keeps customer data one year after the customer leaves, and bookkeeping
    // per Bokföringslagen (financial year = calendar year)
    let mut s = Script::default();
    s.rule("komteknik-el", Rule::new("kundregister", Trigger::RelationshipEnded, "P1Y"));
    let bok_rule = s.rule("komteknik-el", Rule::bokforingslagen("bokforing", "12-31"));
    let c = subject(3);
    s.collect("komteknik-el", c, "kundregister", "delivery", LegalBasis::Contract, Source::Subject, "2025-05-01");
    let invoice = s.collect(
        "komteknik-el",
        c,
        "bokforing",
        "bookkeeping",
        LegalBasis::LegalObligation,
        Source::Controller,
        "2026-03-10",
    );
    let p = given(&s);
    // While the customer stays, the customer register's clock has not started; bookkeeping is
    // kept through the end of 2033
    let plan = p.retention_plan(None, at("2026-06-01T00:00:00Z"));
    assert_eq!(item(&plan, c, "kundregister").status, PlanStatus::NotDue { due_in_seconds: None });
    let bok = item(&plan, c, "bokforing");
    assert_eq!((bok.clock_seq, bok.due_at), (Some(invoice), Some(at("2034-01-01T00:00:00Z"))));
    assert_eq!(bok.rule.seq, bok_rule);
    assert_eq!(bok.rule.financial_year_end.map(|m| m.to_string()).as_deref(), Some("12-31"));
    assert_eq!(bok.rule.extend_to, Some(kvitto_core::event::ExtendTo::CalendarYearEnd));
    // When the relationship ends on 30 September
    let ended = s.end_relationship("komteknik-el", c, "2026-09-30");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-10-15T12:00:00Z"));
    let kund = item(&plan, c, "kundregister");
    assert_eq!((kund.clock_seq, kund.due_at), (Some(ended), Some(t("2027-09-30"))));
    assert_eq!(kund.status, PlanStatus::Overdue { overdue_by_seconds: 15 * DAY_S, overdue_by_days: 15 });
    assert!(matches!(item(&plan, c, "bokforing").status, PlanStatus::NotDue { .. }));
    // Then the retention run gets exactly the customer register, with a stable identifier
    let run = p.retention_candidates(Some(&id("komteknik-el")), at("2027-10-15T12:00:00Z"));
    assert_eq!(run.len(), 1);
    assert_eq!((run[0].register.as_str(), run[0].clock_seq, run[0].subject), ("kundregister", ended, c));
    let again = p.retention_candidates(None, at("2027-10-20T12:00:00Z"));
    assert_eq!(again[0].id_input(), run[0].id_input(), "a re-run names the same erasure");
    let input = run[0].id_input();
    assert!(input.starts_with(b"kvitto retention run v1\0"));
    assert_eq!(input.len(), 24 + 4 + 12 + 16 + 4 + 12 + 8 + 8);
    // Art 15: the access report shows the same dates
    let r = p.access_report(&id("komteknik-el"), &c, &AsOf::at(at("2027-10-15T12:00:00Z"))).unwrap();
    let bok = r.retention.iter().find(|x| x.register == id("bokforing")).unwrap();
    assert_eq!((bok.clock_started, bok.keep_until), (Some(t("2026-03-10")), Some(at("2034-01-01T00:00:00Z"))));
    assert!(bok.financial_year_end.is_some() && bok.extend_to.is_some());
    let kund = r.retention.iter().find(|x| x.register == id("kundregister")).unwrap();
    assert_eq!(kund.keep_until, Some(t("2027-09-30")));
    // Art 30 lists the bookkeeping fields too
    let rec = p.processing_report(&id("komteknik-el"), &AsOf::ALL).unwrap();
    let bok = rec.retention.iter().find(|x| x.register == id("bokforing")).unwrap();
    assert_eq!((bok.duration.as_str(), bok.seq), ("P7Y", bok_rule));
    assert_eq!(bok.financial_year_end.map(|m| m.to_string()).as_deref(), Some("12-31"));
}

#[test]
fn seed_003_erasure_request_erases_customer_data_and_defers_bookkeeping() {
    let mut s = Script::default();
    s.rule("komteknik-el", Rule::new("kundregister", Trigger::RelationshipEnded, "P1Y"));
    s.rule("komteknik-el", Rule::bokforingslagen("bokforing", "12-31"));
    let c = subject(4);
    s.collect("komteknik-el", c, "kundregister", "delivery", LegalBasis::Contract, Source::Subject, "2025-05-01");
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
    // Given the customer asks for erasure: the customer register goes, bookkeeping is deferred
    let deferred =
        s.defer("komteknik-el", c, "bokforing", "Bokföringslagen", "2033-12-31T23:59:59.999999Z", "2026-10-05");
    let erased = s.erase("komteknik-el", c, Some("kundregister"), "2026-10-05");
    let p = given(&s);
    let now = at("2027-10-15T12:00:00Z");
    let plan = p.retention_plan(None, now);
    assert_eq!(
        item(&plan, c, "kundregister").status,
        PlanStatus::Erased { erased_seq: erased, erased_at: t("2026-10-05") }
    );
    assert_eq!(
        item(&plan, c, "bokforing").status,
        PlanStatus::Deferred {
            by: DeferredBy::Statute("Bokföringslagen".into()),
            until: Some(at("2033-12-31T23:59:59.999999Z")),
            seq: deferred
        }
    );
    // deferred sorts before erased
    assert_eq!(plan.iter().map(|i| i.status.as_str()).collect::<Vec<_>>(), vec!["deferred", "erased"]);
    assert!(p.retention_candidates(None, now).is_empty());
    // When the deferral has run out, bookkeeping is due at its own date
    let plan = p.retention_plan(None, at("2034-01-01T00:00:00Z"));
    assert_eq!(item(&plan, c, "bokforing").status, PlanStatus::Due { due_for_seconds: 0 });
    // A full erasure after the deferral erases bookkeeping too
    let all = s.erase("komteknik-el", c, None, "2034-01-02");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2034-02-01T00:00:00Z"));
    assert!(plan.iter().all(|i| matches!(i.status, PlanStatus::Erased { .. })), "{plan:#?}");
    assert_eq!(item(&plan, c, "bokforing").status, PlanStatus::Erased { erased_seq: all, erased_at: t("2034-01-02") });
}

#[test]
fn a_legal_hold_defers_everything_until_released() {
    let mut s = Script::default();
    s.rule("komteknik-el", Rule::new("kundregister", Trigger::RelationshipEnded, "P1Y"));
    let c = subject(5);
    s.collect("komteknik-el", c, "kundregister", "delivery", LegalBasis::Contract, Source::Subject, "2025-05-01");
    s.end_relationship("komteknik-el", c, "2025-12-31");
    let hold = s.subject_event(
        "komteknik-el",
        c,
        "2027-01-15",
        EventKind::LegalHoldPlaced { hold_id: id("hold-7"), reason: Text::new("Tvist om faktura").unwrap() },
    );
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-03-01T00:00:00Z"));
    assert_eq!(
        item(&plan, c, "kundregister").status,
        PlanStatus::Deferred { by: DeferredBy::LegalHold(id("hold-7")), until: None, seq: hold }
    );
    assert!(p.retention_candidates(None, at("2027-03-01T00:00:00Z")).is_empty());
    // Before the hold was placed, the item was already overdue
    let plan = p.retention_plan(None, at("2027-01-14T12:00:00Z"));
    assert!(matches!(item(&plan, c, "kundregister").status, PlanStatus::Overdue { overdue_by_days: 14, .. }));
    s.subject_event("komteknik-el", c, "2027-04-01", EventKind::LegalHoldReleased { hold_id: id("hold-7") });
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-04-02T12:00:00Z"));
    assert!(matches!(item(&plan, c, "kundregister").status, PlanStatus::Overdue { overdue_by_days: 92, .. }));
}

#[test]
fn seed_004_kazoom_erases_at_contract_end_and_keeps_bookkeeping_per_bogforingsloven() {
    // Given Kazoom: customer data is erased when the contract ends (P0D) unless a legal duty
    // requires it; bookkeeping is kept five years from the end of the financial year
    let mut s = Script::default();
    s.rule("kazoom", Rule::new("kunderegister", Trigger::RelationshipEnded, "P0D"));
    s.rule("kazoom", Rule::bogforingsloven("bogforing"));
    let c = subject(6);
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-10");
    let invoice = s.collect(
        "kazoom",
        c,
        "bogforing",
        "bookkeeping",
        LegalBasis::LegalObligation,
        Source::Controller,
        "2026-03-10",
    );
    let ended = s.end_relationship("kazoom", c, "2026-08-31");
    let p = given(&s);
    // Six hours after the contract ended: due; five days later: overdue
    let plan = p.retention_plan(None, at("2026-08-31T18:00:00Z"));
    let kunde = item(&plan, c, "kunderegister");
    assert_eq!((kunde.clock_seq, kunde.due_at), (Some(ended), Some(t("2026-08-31"))));
    assert_eq!(kunde.status, PlanStatus::Due { due_for_seconds: 6 * 3600 });
    let plan = p.retention_plan(None, at("2026-09-05T18:00:00Z"));
    assert_eq!(
        item(&plan, c, "kunderegister").status,
        PlanStatus::Overdue { overdue_by_seconds: 5 * DAY_S + 6 * 3600, overdue_by_days: 5 }
    );
    // Bookkeeping: five years from the end of 2026, i.e. kept through 2031-12-31
    let bog = item(&plan, c, "bogforing");
    assert_eq!((bog.clock_seq, bog.due_at), (Some(invoice), Some(at("2032-01-01T00:00:00Z"))));
    let plan = p.retention_plan(None, at("2031-12-31T23:59:59.999999Z"));
    assert!(matches!(item(&plan, c, "bogforing").status, PlanStatus::NotDue { due_in_seconds: Some(0) }));
    let plan = p.retention_plan(None, at("2032-01-01T00:00:00Z"));
    assert_eq!(item(&plan, c, "bogforing").status, PlanStatus::Due { due_for_seconds: 0 });
}

#[test]
fn seed_004_a_returning_customer_has_a_new_relationship_and_no_clock() {
    let mut s = Script::default();
    s.rule("kazoom", Rule::new("kunderegister", Trigger::RelationshipEnded, "P0D"));
    let c = subject(7);
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2026-01-10");
    s.end_relationship("kazoom", c, "2026-08-31");
    s.erase("kazoom", c, Some("kunderegister"), "2026-09-01");
    // When the customer signs a new contract
    s.collect("kazoom", c, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2027-02-01");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2027-03-01T00:00:00Z"));
    let kunde = item(&plan, c, "kunderegister");
    assert_eq!((kunde.clock_started, kunde.due_at), (None, None));
    assert_eq!(kunde.status, PlanStatus::NotDue { due_in_seconds: None });
    // and when it ends again, the new end starts the clock
    let ended = s.end_relationship("kazoom", c, "2027-12-31");
    let p = given(&s);
    let plan = p.retention_plan(None, at("2028-01-10T12:00:00Z"));
    let kunde = item(&plan, c, "kunderegister");
    assert_eq!((kunde.clock_seq, kunde.status.as_str()), (Some(ended), "overdue"));
}

#[test]
fn plan_order_controller_filter_and_json() {
    let mut s = Script::default();
    s.rule("kazoom", Rule::new("kunderegister", Trigger::RelationshipEnded, "P0D"));
    s.rule("kalejdo", Rule::new("arendelista", Trigger::RecordClosed, "P12M"));
    let (a, b, c, d, e) = (subject(10), subject(11), subject(12), subject(13), subject(14));
    for (who, end) in [(a, "2026-01-10"), (b, "2026-03-01"), (c, "2026-03-31"), (d, "2026-03-01")] {
        s.collect(
            "kazoom",
            who,
            "kunderegister",
            "contract-delivery",
            LegalBasis::Contract,
            Source::Subject,
            "2025-01-01",
        );
        s.end_relationship("kazoom", who, end);
    }
    s.defer("kazoom", d, "kunderegister", "Forældelsesloven", "2029-01-01T00:00:00Z", "2026-03-02");
    s.collect("kazoom", e, "kunderegister", "contract-delivery", LegalBasis::Contract, Source::Subject, "2025-01-01");
    let k = subject(20);
    s.collect("kalejdo", k, "arendelista", "customer-support", LegalBasis::Contract, Source::Subject, "2026-01-05");
    s.close_record("kalejdo", k, "arendelista", "ticket-1", "2026-02-01");
    let p = given(&s);
    let now = at("2026-03-31T18:00:00Z");
    let plan = p.retention_plan(Some(&id("kazoom")), now);
    let order: Vec<(SubjectId, &str)> = plan.iter().map(|i| (i.subject, i.status.as_str())).collect();
    assert_eq!(order, vec![(a, "overdue"), (b, "overdue"), (c, "due"), (d, "deferred"), (e, "not_due")]);
    assert!(plan.iter().all(|i| i.controller == id("kazoom")));
    assert_eq!(p.retention_plan(None, now).len(), 6);
    assert!(p.retention_plan(Some(&id("nobody")), now).is_empty());
    let run: Vec<SubjectId> = p.retention_candidates(Some(&id("kazoom")), now).iter().map(|c| c.subject).collect();
    assert_eq!(run, vec![a, b, c]);
    // JSON: the pseudonym in hex, the status flattened, never an external reference
    let v = serde_json::to_value(&plan[0]).unwrap();
    assert_eq!(v["subject_id"], a.to_hex());
    assert_eq!(v["status"], "overdue");
    assert_eq!(v["overdue_by_days"], 80);
    assert_eq!(v["rule"]["trigger"], "relationship_ended");
    assert_eq!(v["rule"]["duration"], "P0D");
    assert!(v.get("subject").is_none());
    let v = serde_json::to_value(&plan[3]).unwrap();
    assert_eq!(v["status"], "deferred");
    assert_eq!(v["by"]["statute"], "Forældelsesloven");
    assert_eq!(v["until"], "2029-01-01T00:00:00Z");
    let v = serde_json::to_value(&plan[4]).unwrap();
    assert_eq!((v["status"].as_str(), v["due_at"].is_null()), (Some("not_due"), true));
}

#[test]
fn the_plan_scales_to_100k_subjects() {
    // Release: 100k subjects (the requirement is well under a second); debug: 10k, untimed.
    let n: u32 = if cfg!(debug_assertions) { 10_000 } else { 100_000 };
    let mut p = Projections::default();
    let mut seq = 0u64;
    let mut push = |p: &mut Projections, who: Option<SubjectLink>, occurred: Timestamp, kind: EventKind| {
        p.apply_owned(Event {
            seq,
            prev_hash: EventHash::default(),
            recorded_at: occurred,
            occurred_at: occurred,
            event_id: EventId(uuid::Uuid::from_u128(seq as u128 + 1)),
            controller: id("komteknik-el"),
            actor: id("test"),
            subject: who,
            kind,
            payload_commitment: None,
        });
        seq += 1;
    };
    let start = t("2020-01-01");
    push(&mut p, None, start, Rule::new("kundregister", Trigger::RelationshipEnded, "P1Y").kind());
    push(&mut p, None, start, Rule::bokforingslagen("bokforing", "12-31").kind());
    for i in 0..n {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        let subject = SubjectId(bytes);
        let link =
            |n: u64| SubjectLink { subject, subject_seq: n, subject_prev: (n > 0).then_some(EventHash([1; 32])) };
        let day = |d: i64| start.saturating_add_micros((i as i64 % 1000 + d) * 86_400_000_000);
        for (k, register, basis) in
            [(0, "kundregister", LegalBasis::Contract), (1, "bokforing", LegalBasis::LegalObligation)]
        {
            push(
                &mut p,
                Some(link(k)),
                day(k as i64),
                EventKind::DataCollected {
                    register: id(register),
                    categories: cats(&["name"]),
                    purpose: id("delivery"),
                    legal_basis: basis,
                    source: Source::Subject,
                },
            );
        }
        if i % 2 == 0 {
            push(&mut p, Some(link(2)), day(400), EventKind::RelationshipEnded { reason: None });
        }
    }
    let started = std::time::Instant::now();
    let plan = p.retention_plan(None, at("2026-01-01T00:00:00Z"));
    let took = started.elapsed();
    assert_eq!(plan.len(), 2 * n as usize);
    let overdue = plan.iter().filter(|i| i.status.as_str() == "overdue").count();
    assert_eq!(overdue, n as usize / 2, "every ended relationship is past its year");
    if !cfg!(debug_assertions) {
        assert!(took < std::time::Duration::from_millis(700), "100k subjects planned in {took:?}");
    }
    eprintln!("retention plan of {n} subjects: {took:?}");
}
