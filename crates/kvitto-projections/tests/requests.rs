//! Given / when / then tests for rights-request deadlines (Art 12(3)), the request list and
//! the writer's step check.
#![allow(clippy::unwrap_used)]

mod support;

use kvitto_core::*;
use kvitto_projections::*;
use support::*;

fn received(s: &mut Script, who: SubjectId, req: &str, right: Right, when: &str) -> u64 {
    s.subject_event("komteknik-el", who, when, EventKind::RightsRequestReceived { request_id: id(req), right })
}

fn extended(s: &mut Script, who: SubjectId, req: &str, when: &str) -> u64 {
    s.subject_event(
        "komteknik-el",
        who,
        when,
        EventKind::RightsRequestExtended { request_id: id(req), reason: Text::new("complex").unwrap() },
    )
}

fn fulfilled(s: &mut Script, who: SubjectId, req: &str, when: &str) -> u64 {
    s.subject_event("komteknik-el", who, when, EventKind::RightsRequestFulfilled { request_id: id(req) })
}

fn status(p: &Projections, who: SubjectId, req: &str, now: Timestamp) -> RequestStatus {
    let s = &p.subjects[&who];
    s.requests(&AsOf::at(now)).into_iter().find(|r| r.request_id == id(req)).unwrap()
}

#[test]
fn due_one_calendar_month_after_receipt_clamped_to_the_month_end() {
    // Given an access request received on 31 January (seed 003: "senast inom en månad")
    let mut s = Script::default();
    let c = subject(1);
    let r = received(&mut s, c, "req-1", Right::Access, "2026-01-31");
    let p = Projections::rebuild(&s.events);
    // Then it is due on 28 February (no 31 February), same time of day
    let st = status(&p, c, "req-1", at("2026-02-20T12:00:00Z"));
    assert_eq!((st.status, st.deadline, st.first_deadline), ("open", Some(t("2026-02-28")), Some(t("2026-02-28"))));
    assert_eq!((st.days_left, st.overdue, st.overdue_by_days), (Some(8), false, None));
    assert_eq!((st.right, st.seqs.clone()), (Some(Right::Access), vec![r]));
    // 1.5 days before the deadline: one whole day left (rounded down)
    assert_eq!(status(&p, c, "req-1", at("2026-02-27T00:00:00Z")).days_left, Some(1));
    // One microsecond past the deadline: overdue by one day (rounded up)
    let st = status(&p, c, "req-1", at("2026-02-28T12:00:00.000001Z"));
    assert_eq!((st.overdue, st.overdue_by_days, st.days_left), (true, Some(1), None));
    let st = status(&p, c, "req-1", at("2026-03-10T12:00:00Z"));
    assert_eq!(st.overdue_by_days, Some(10));
}

#[test]
fn an_extension_within_the_first_month_gives_three_months() {
    let mut s = Script::default();
    let c = subject(2);
    received(&mut s, c, "req-2", Right::Portability, "2026-01-31");
    extended(&mut s, c, "req-2", "2026-02-28");
    let p = Projections::rebuild(&s.events);
    let st = status(&p, c, "req-2", at("2026-03-15T00:00:00Z"));
    // received + 3 months = 30 April (not 28 Feb + 2 months = 28 April)
    assert_eq!(
        (st.status, st.deadline, st.extended, st.extension_late),
        ("extended", Some(t("2026-04-30")), true, false)
    );
    assert_eq!(st.first_deadline, Some(t("2026-02-28")));
    assert!(!st.overdue);
}

#[test]
fn an_extension_after_the_first_month_does_not_extend() {
    let mut s = Script::default();
    let c = subject(3);
    received(&mut s, c, "req-3", Right::Erasure, "2026-01-10");
    extended(&mut s, c, "req-3", "2026-02-11");
    let p = Projections::rebuild(&s.events);
    let st = status(&p, c, "req-3", at("2026-02-15T12:00:00Z"));
    assert_eq!((st.status, st.deadline, st.extended, st.extension_late), ("open", Some(t("2026-02-10")), false, true));
    assert_eq!((st.overdue, st.overdue_by_days), (true, Some(5)));
}

#[test]
fn fulfilled_after_the_deadline_is_late_by_whole_days_rounded_up() {
    let mut s = Script::default();
    let c = subject(4);
    received(&mut s, c, "on-time", Right::Access, "2026-03-01");
    fulfilled(&mut s, c, "on-time", "2026-03-31");
    received(&mut s, c, "late", Right::Access, "2026-03-01");
    s.push(
        "komteknik-el",
        Some(c),
        at("2026-04-03T13:00:00Z"),
        EventKind::RightsRequestFulfilled { request_id: id("late") },
    );
    received(&mut s, c, "rejected-late", Right::Erasure, "2026-03-01");
    s.subject_event(
        "komteknik-el",
        c,
        "2026-04-05",
        EventKind::RightsRequestRejected { request_id: id("rejected-late"), reason: Text::new("contract").unwrap() },
    );
    let p = Projections::rebuild(&s.events);
    let now = at("2026-06-01T00:00:00Z");
    let st = status(&p, c, "on-time", now);
    assert_eq!(
        (st.status, st.late_by_days, st.closed_at, st.overdue),
        ("fulfilled", None, Some(t("2026-03-31")), false)
    );
    assert_eq!((st.days_left, st.overdue_by_days), (None, None));
    // due 2026-04-01T12:00; fulfilled 2026-04-03T13:00 = 2 days 1 hour late → 3 days
    let st = status(&p, c, "late", now);
    assert_eq!((st.status, st.late_by_days, st.overdue), ("fulfilled_late", Some(3), false));
    let st = status(&p, c, "rejected-late", now);
    assert_eq!((st.status, st.late_by_days), ("rejected_late", Some(4)));
}

#[test]
fn the_request_list_shows_open_requests_overdue_first() {
    let mut s = Script::default();
    let (a, b, c) = (subject(5), subject(6), subject(7));
    received(&mut s, a, "a-1", Right::Access, "2026-03-01");
    received(&mut s, b, "b-1", Right::Erasure, "2026-01-15");
    received(&mut s, b, "b-2", Right::Access, "2026-02-20");
    received(&mut s, c, "c-1", Right::Access, "2026-01-01");
    fulfilled(&mut s, c, "c-1", "2026-01-20");
    received(&mut s, c, "c-2", Right::Rectification, "2026-01-20");
    s.push(
        "kazoom",
        Some(subject(8)),
        t("2026-01-01"),
        EventKind::RightsRequestReceived { request_id: id("k-1"), right: Right::Access },
    );
    let p = Projections::rebuild(&s.events);
    let now = at("2026-03-10T00:00:00Z");
    let list = p.requests(Some(&id("komteknik-el")), now);
    let ids: Vec<&str> = list.iter().map(|i| i.request.request_id.as_str()).collect();
    // overdue: b-1 (due 02-15), c-2 (due 02-20); then open by deadline: b-2 (03-20), a-1 (04-01)
    assert_eq!(ids, vec!["b-1", "c-2", "b-2", "a-1"]);
    assert_eq!((list[0].request.overdue_by_days, list[0].subject), (Some(23), b));
    assert_eq!(list[2].request.days_left, Some(10));
    assert_eq!(p.requests(None, now).len(), 5, "kazoom's request too");
    let all = p.all_requests(Some(&id("komteknik-el")), now);
    assert_eq!(all.len(), 5);
    let ids: Vec<&str> = all.iter().map(|i| i.request.request_id.as_str()).collect();
    assert_eq!(ids, vec!["b-1", "c-2", "c-1", "b-2", "a-1"], "closed c-1 is never overdue: by its deadline");
    assert_eq!(all[2].request.status, "fulfilled");
    // JSON: pseudonym hex, request fields flattened
    let v = serde_json::to_value(&list[0]).unwrap();
    assert_eq!((v["subject_id"].as_str(), v["request_id"].as_str()), (Some(b.to_hex().as_str()), Some("b-1")));
    assert_eq!((v["status"].as_str(), v["overdue_by_days"].as_i64()), (Some("open"), Some(23)));
    assert_eq!(v["deadline"], "2026-02-15T12:00:00Z");
    assert!(v.get("subject").is_none());
}

#[test]
fn step_check_unknown_request() {
    let mut s = Script::default();
    let c = subject(9);
    received(&mut s, c, "req-1", Right::Access, "2026-01-10");
    let p = Projections::rebuild(&s.events);
    let state = &p.subjects[&c];
    for kind in [
        EventKind::RightsRequestExtended { request_id: id("req-9"), reason: Text::new("x").unwrap() },
        EventKind::RightsRequestFulfilled { request_id: id("req-9") },
        EventKind::RightsRequestRejected { request_id: id("req-9"), reason: Text::new("x").unwrap() },
    ] {
        let problem = state.request_step_problem(&kind).unwrap();
        assert!(problem.contains("req-9 was never received for this subject"), "{problem}");
        assert!(problem.starts_with(kind.name()), "{problem}");
    }
    // a subject with no state at all
    let problem = request_step_problem(None, &EventKind::RightsRequestFulfilled { request_id: id("req-1") }).unwrap();
    assert!(problem.contains("never received"), "{problem}");
    assert_eq!(
        request_step_problem(None, &EventKind::RightsRequestReceived { request_id: id("req-1"), right: Right::Access }),
        None
    );
    // the known request may proceed
    assert_eq!(state.request_step_problem(&EventKind::RightsRequestFulfilled { request_id: id("req-1") }), None);
    assert_eq!(
        state.request_step_problem(&EventKind::RightsRequestExtended {
            request_id: id("req-1"),
            reason: Text::new("x").unwrap()
        }),
        None
    );
    // other kinds are not request steps
    assert_eq!(state.request_step_problem(&EventKind::RelationshipEnded { reason: None }), None);
    // another subject's request is unknown to this one
    let other = subject(10);
    received(&mut s, other, "req-2", Right::Access, "2026-01-10");
    let p = Projections::rebuild(&s.events);
    assert!(
        p.subjects[&c].request_step_problem(&EventKind::RightsRequestFulfilled { request_id: id("req-2") }).is_some()
    );
}

#[test]
fn step_check_closed_twice_and_extended_twice() {
    let mut s = Script::default();
    let c = subject(11);
    received(&mut s, c, "req-1", Right::Erasure, "2026-01-10");
    let ext = extended(&mut s, c, "req-1", "2026-01-20");
    let p = Projections::rebuild(&s.events);
    let problem = p.subjects[&c]
        .request_step_problem(&EventKind::RightsRequestExtended {
            request_id: id("req-1"),
            reason: Text::new("x").unwrap(),
        })
        .unwrap();
    assert!(problem.contains(&format!("already extended (seq {ext})")), "{problem}");
    assert!(problem.contains("Art 12(3)"), "{problem}");
    let done = fulfilled(&mut s, c, "req-1", "2026-02-01");
    let p = Projections::rebuild(&s.events);
    let state = &p.subjects[&c];
    let problem = state.request_step_problem(&EventKind::RightsRequestFulfilled { request_id: id("req-1") }).unwrap();
    assert!(problem.contains(&format!("already closed (fulfilled, seq {done})")), "{problem}");
    let problem = state
        .request_step_problem(&EventKind::RightsRequestRejected {
            request_id: id("req-1"),
            reason: Text::new("x").unwrap(),
        })
        .unwrap();
    assert!(problem.contains("cannot be rejected"), "{problem}");
    // a new request with the same id is refused; with a new id it is fine
    let problem = state
        .request_step_problem(&EventKind::RightsRequestReceived { request_id: id("req-1"), right: Right::Access })
        .unwrap();
    assert!(problem.contains("already received"), "{problem}");
    assert_eq!(
        state.request_step_problem(&EventKind::RightsRequestReceived { request_id: id("req-2"), right: Right::Access }),
        None
    );
    // a rejected request is closed as well
    received(&mut s, c, "req-3", Right::Objection, "2026-03-01");
    let rej = s.subject_event(
        "komteknik-el",
        c,
        "2026-03-02",
        EventKind::RightsRequestRejected { request_id: id("req-3"), reason: Text::new("x").unwrap() },
    );
    let p = Projections::rebuild(&s.events);
    let problem =
        p.subjects[&c].request_step_problem(&EventKind::RightsRequestFulfilled { request_id: id("req-3") }).unwrap();
    assert!(problem.contains(&format!("already closed (rejected, seq {rej})")), "{problem}");
}
