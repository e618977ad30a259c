//! Property tests: an answer as of (T, K) equals a fresh rebuild over exactly the events that
//! qualify at (T, K); folding with overlapping replays (catch-up) equals a clean rebuild.
#![allow(clippy::unwrap_used)]

mod support;

use kvitto_core::*;
use kvitto_projections::*;
use proptest::prelude::*;
use support::*;

const CONTROLLERS: [&str; 2] = ["kalejdo", "kazoom"];
const PURPOSES: [&str; 4] = ["marketing", "marketing-profiling", "newsletter", "service"];
const DAY: i64 = 86_400_000_000;

fn base() -> i64 {
    t("2026-01-01").as_micros()
}

/// One random step: (controller, subject, occurred day, kind selector, purpose, basis).
fn step() -> impl Strategy<Value = (usize, u8, i64, u8, usize, usize)> {
    (0..2usize, 0..6u8, 0..60i64, 0..14u8, 0..4usize, 0..6usize)
}

fn script(steps: &[(usize, u8, i64, u8, usize, usize)]) -> Script {
    let mut s = Script::default();
    let mut recorded = base();
    for (c, subj, day, k, p, b) in steps {
        let controller = CONTROLLERS[*c];
        let who = subject(subj + 1 + (*c as u8) * 10);
        let purpose = id(PURPOSES[*p]);
        let occurred = Timestamp::from_micros(base() + day * DAY).unwrap();
        recorded += DAY / 2; // the ledger clock moves on; occurred times jump around
        let recorded_t = Timestamp::from_micros(recorded).unwrap();
        let basis = LegalBasis::ALL[*b];
        let (who, kind) = match k {
            0 | 1 => (
                None,
                EventKind::PurposeDeclared {
                    purpose,
                    description: Text::new("d").unwrap(),
                    legal_basis: basis,
                    register: id(if *b % 2 == 0 { "kundregister" } else { "bokforing" }),
                    data_subjects: None,
                },
            ),
            2 | 3 => (Some(who), EventKind::ConsentGiven { purpose, notice_version: Some(id("v1")), channel: None }),
            4 => (Some(who), EventKind::ConsentWithdrawn { purpose, channel: None }),
            5 => (Some(who), EventKind::ObjectionRecorded { purpose }),
            6 | 7 => (
                Some(who),
                EventKind::DataCollected {
                    register: id("kundregister"),
                    categories: cats(&["contact"]),
                    purpose,
                    legal_basis: basis,
                    source: Source::Subject,
                },
            ),
            8 => (Some(who), EventKind::ProcessingRestricted { reason: Text::new("r").unwrap() }),
            9 => (Some(who), EventKind::RestrictionLifted { reason: Text::new("r").unwrap() }),
            10 => (
                Some(who),
                EventKind::DataErased {
                    register: (*b % 2 == 0).then(|| id("kundregister")),
                    reason: Text::new("r").unwrap(),
                },
            ),
            11 => (
                Some(who),
                EventKind::DataShared { processor: id("freshworks"), categories: cats(&["contact"]), purpose },
            ),
            12 => (
                Some(who),
                EventKind::RightsRequestReceived { request_id: id(&format!("r{day}")), right: Right::Access },
            ),
            _ => (Some(who), EventKind::RelationshipEnded { reason: None }),
        };
        s.push_at(controller, who, occurred, recorded_t, kind);
    }
    s
}

/// The comparable part of a consent answer (notes explain, they are not state).
fn consent_key(a: &ConsentAnswer) -> impl PartialEq + std::fmt::Debug {
    (a.purpose.clone(), a.state, a.since, a.seq, a.notice_version.clone(), a.history.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn answers_as_of_equal_a_fresh_fold_over_qualifying_events(
        steps in proptest::collection::vec(step(), 1..80),
        at_day in 0..62i64,
        known_steps in 0..90i64,
    ) {
        let s = script(&steps);
        let full = Projections::rebuild(&s.events);
        let q = AsOf {
            at: Timestamp::from_micros(base() + at_day * DAY).unwrap(),
            known_at: Timestamp::from_micros(base() + known_steps * DAY / 2).unwrap(),
        };
        let qualifying: Vec<Event> = s.events.iter().filter(|e| e.occurred_at <= q.at && e.recorded_at <= q.known_at).cloned().collect();
        let fresh = Projections::rebuild(&qualifying);
        for (ci, controller) in CONTROLLERS.iter().enumerate() {
            let controller = id(controller);
            for n in 0..6u8 {
                let who = subject(n + 1 + (ci as u8) * 10);
                for p in PURPOSES {
                    let p = id(p);
                    let a = full.may_process(&controller, &who, &p, &q);
                    let b = fresh.may_process(&controller, &who, &p, &AsOf::ALL);
                    match (&a, &b) {
                        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                        // The fresh fold never saw the subject (or controller): the full
                        // projection must not claim anything that needs a qualifying event.
                        (Ok(a), Err(_)) => prop_assert!(!a.allowed || a.seq.is_some_and(|s| qualifying.iter().any(|e| e.seq == s)), "{a:?}"),
                        (Err(_), Ok(_)) => prop_assert!(false, "full projection lacks a subject the fresh fold has"),
                        (Err(_), Err(_)) => {}
                    }
                    if let (Ok(a), Ok(b)) = (full.consent(&controller, &who, Some(&p), &q), fresh.consent(&controller, &who, Some(&p), &AsOf::ALL)) {
                        prop_assert_eq!(consent_key(&a[0]), consent_key(&b[0]));
                    }
                }
                if let (Ok(a), Ok(b)) = (full.access_report(&controller, &who, &q), fresh.access_report(&controller, &who, &AsOf::ALL)) {
                    prop_assert_eq!((&a.purposes, &a.categories, &a.recipients, a.restricted, &a.erased), (&b.purposes, &b.categories, &b.recipients, b.restricted, &b.erased));
                    prop_assert_eq!(a.requests.len(), b.requests.len());
                }
            }
            if let (Ok(a), Ok(b)) = (full.processing_report(&controller, &q), fresh.processing_report(&controller, &AsOf::ALL)) {
                prop_assert_eq!((&a.purposes, &a.recipients, &a.undeclared_purposes), (&b.purposes, &b.recipients, &b.undeclared_purposes));
            }
        }
    }

    #[test]
    fn folding_with_overlapping_replays_equals_a_clean_rebuild(
        steps in proptest::collection::vec(step(), 1..80),
        replays in proptest::collection::vec((0..80usize, 0..80usize), 0..6),
    ) {
        let s = script(&steps);
        let clean = Projections::rebuild(&s.events);
        // Fold in order, but after some events re-apply an earlier stretch (a catch-up that
        // overlaps what a persisted state already contained).
        let mut p = Projections::default();
        for (i, e) in s.events.iter().enumerate() {
            p.apply(e);
            for (from, len) in &replays {
                if from % s.events.len() == i {
                    let start = i.saturating_sub(*len);
                    let mut q = p.clone();
                    q.last_seq = start.checked_sub(1).map(|x| x as u64);
                    for r in &s.events[start..=i] {
                        q.apply(r);
                    }
                    p = q;
                }
            }
        }
        prop_assert_eq!(p, clean);
    }
}
