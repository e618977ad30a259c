//! The compliance audit (docs/AUDIT.md): every place where the recorded processing breaks the
//! controller's own declarations or a GDPR rule, each with the seqs of the events that prove
//! it. K01 (integrity) is the facade's; this module runs K02–K15 from the projections, one
//! pass over each subject's timelines (O(events), times the log of a subject's marks).
//!
//! Every check reads the ledger as it knows it now and looks at each event as of its
//! occurred time: "was this allowed when it happened?", not "would it be allowed today?".

use std::collections::BTreeMap;

use kvitto_core::{Categories, Id, LegalBasis, Right, SubjectId, Timestamp};
use serde::Serialize;

use crate::Projections;
use crate::decision::{STORAGE_PURPOSE, consent_marks};
use crate::retention::{PlanStatus, relationship_end, subject_plan};
use crate::state::{ConsentMark, ControllerState, RequestMark, SubjectState};
use crate::timeline::{AsOf, Stamp};

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The evidence itself cannot be trusted.
    Critical,
    /// Processing the law forbids (no basis, against an objection, while restricted, after
    /// erasure, to an unregistered or unsafeguarded recipient).
    High,
    /// An obligation missed (deadlines, retention, declarations).
    Medium,
    /// Record keeping (notice versions, late recording, Art 19 notifications).
    Low,
}

impl Severity {
    /// The name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// One check: its id, what it finds, the article it concerns and its severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `K01` … `K15`.
    pub id: &'static str,
    /// What a finding of it means, in one line.
    pub title: &'static str,
    /// The GDPR article (or statute) it concerns.
    pub article: &'static str,
    /// Severity of its findings.
    pub severity: Severity,
}

/// Every check, in report order (docs/AUDIT.md describes each rule and its evidence).
pub const CHECKS: [Check; 15] = [
    Check { id: "K01", title: "ledger integrity", article: "Art 5(1)(f), 5(2)", severity: Severity::Critical },
    Check {
        id: "K02",
        title: "processing on the consent basis without consent",
        article: "Art 6(1)(a), 7(3)",
        severity: Severity::High,
    },
    Check {
        id: "K03",
        title: "purpose or legal basis not as declared",
        article: "Art 5(1)(b), 6(1), 30(1)(b)",
        severity: Severity::Medium,
    },
    Check { id: "K04", title: "processing after an objection or opt-out", article: "Art 21", severity: Severity::High },
    Check {
        id: "K05",
        title: "processing other than storage while restricted",
        article: "Art 18",
        severity: Severity::High,
    },
    Check {
        id: "K06",
        title: "rights request overdue or answered late",
        article: "Art 12(3)",
        severity: Severity::Medium,
    },
    Check {
        id: "K07",
        title: "retention overdue: neither erased nor deferred",
        article: "Art 5(1)(e), 17(1)(a)",
        severity: Severity::Medium,
    },
    Check {
        id: "K08",
        title: "deferral expired without erasure, or legal hold never reviewed",
        article: "Art 5(1)(e), 17(3)",
        severity: Severity::Medium,
    },
    Check {
        id: "K09",
        title: "shared with an unregistered recipient or outside the EEA without a safeguard",
        article: "Art 28, 30(1)(d)–(e), 44–49",
        severity: Severity::High,
    },
    Check { id: "K10", title: "rectification not passed on to recipients", article: "Art 19", severity: Severity::Low },
    Check { id: "K11", title: "processing after erasure", article: "Art 17", severity: Severity::High },
    Check {
        id: "K12",
        title: "consent without a published notice version",
        article: "Art 7(1), 13",
        severity: Severity::Low,
    },
    Check { id: "K13", title: "recorded late", article: "Art 5(2), 30", severity: Severity::Low },
    Check {
        id: "K14",
        title: "erasure request fulfilled without an erasure or deferral",
        article: "Art 17, 12(3)",
        severity: Severity::Medium,
    },
    Check {
        id: "K15",
        title: "contract-basis sharing after the relationship ended",
        article: "Art 6(1)(b), 5(1)(e)",
        severity: Severity::Medium,
    },
];

/// The check with `id`.
pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The audit's thresholds (docs/AUDIT.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// The audit's point in time: what had occurred by then, as the ledger knows it now.
    pub now: Timestamp,
    /// K13: recorded this many hours or more after it occurred is late (default 72).
    pub late_after_hours: i64,
    /// K10: a rectification must reach each earlier recipient within this many days (30).
    pub notify_within_days: i64,
    /// K08: a legal hold open this many days without a release is flagged for review (365).
    pub hold_review_days: i64,
    /// K13: when the ledger began (seq 0's recorded time). An event that occurred before it
    /// was imported with the company's history, not recorded late.
    pub ledger_start: Timestamp,
}

impl AuditOptions {
    /// The defaults at `now`.
    pub fn at(now: Timestamp) -> Self {
        Self { now, late_after_hours: 72, notify_within_days: 30, hold_review_days: 365, ledger_start: Timestamp::MIN }
    }
}

/// One violation and the events that prove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Check id (`K02` …).
    pub check: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// The article it concerns.
    pub article: &'static str,
    /// Controller.
    pub controller: Id,
    /// The subject's pseudonym (never serialized; `subject_id` is its hex).
    #[serde(skip)]
    pub subject: Option<SubjectId>,
    /// The subject's pseudonym, hex (absent for controller-level findings).
    pub subject_id: Option<String>,
    /// When it happened: the occurred time of the offending event, or the deadline missed.
    pub at: Timestamp,
    /// The events that prove it, the offending one first (`kvitto prove inclusion` each).
    pub seqs: Vec<u64>,
    /// What is wrong, in words (ids and dates only: no personal data).
    pub text: String,
    /// `false` when the ledger failed verification (K01): the evidence cannot be trusted.
    pub reliable: bool,
}

struct Sink<'a> {
    controller: &'a Id,
    subject: SubjectId,
    out: &'a mut Vec<Finding>,
}

impl Sink<'_> {
    fn add(&mut self, id: &'static str, at: Timestamp, seqs: Vec<u64>, text: String) {
        let c = check(id).unwrap_or_else(|| unreachable!("{id} is in CHECKS"));
        self.out.push(Finding {
            check: c.id,
            severity: c.severity,
            article: c.article,
            controller: self.controller.clone(),
            subject: Some(self.subject),
            subject_id: Some(self.subject.to_hex()),
            at,
            seqs,
            text,
            reliable: true,
        });
    }
}

fn before(a: &Stamp, b: &Stamp) -> bool {
    (a.occurred, a.seq) < (b.occurred, b.seq)
}

fn overlaps(a: &Categories, b: &Categories) -> bool {
    a.as_slice().iter().any(|x| b.as_slice().contains(x))
}

fn day(t: Timestamp) -> String {
    t.to_rfc3339().get(..10).unwrap_or_default().to_string()
}

/// A collection or a share: the events that process data for a purpose.
struct Act<'a> {
    st: Stamp,
    purpose: &'a Id,
    /// The basis a collection claims (`None` for a share: the declared one applies).
    claimed: Option<LegalBasis>,
    /// The recipient of a share.
    processor: Option<&'a Id>,
}

/// K02, K03, K04, K05, K09, K11, K15 for one collection or share.
fn act_checks(c: &ControllerState, s: &SubjectState, a: &Act<'_>, sink: &mut Sink<'_>) {
    let q = AsOf::at(a.st.occurred);
    let (seq, at, purpose) = (a.st.seq, a.st.occurred, a.purpose);
    let what = if a.processor.is_some() { "shared" } else { "collected" };
    let storage = purpose.as_str() == STORAGE_PURPOSE;
    let decl = c.purposes.get(purpose).and_then(|t| t.latest(&q));
    match (decl, a.claimed) {
        (None, _) if !storage => {
            sink.add("K03", at, vec![seq], format!("data {what} for {purpose}, a purpose not declared at the time"))
        }
        (Some((dst, d)), Some(claimed)) if claimed != d.legal_basis => sink.add(
            "K03",
            at,
            vec![seq, dst.seq],
            format!("data collected for {purpose} on {claimed}, but {purpose} is declared on {}", d.legal_basis),
        ),
        _ => {}
    }
    let basis = a.claimed.or(decl.map(|(_, d)| d.legal_basis));
    if let Some((rst, true)) = s.restriction.latest(&q)
        && !storage
    {
        sink.add(
            "K05",
            at,
            vec![seq, rst.seq],
            format!("data {what} for {purpose} while processing was restricted (since {})", day(rst.occurred)),
        );
    }
    let mark = consent_marks(s, purpose, &q).pop();
    match (basis, mark) {
        (Some(LegalBasis::Consent), None) => {
            sink.add("K02", at, vec![seq], format!("data {what} for {purpose} on consent, but no consent was given"))
        }
        (Some(LegalBasis::Consent), Some((mst, m, via))) if !matches!(m, ConsentMark::Given { .. }) => {
            let said = match m {
                ConsentMark::Withdrawn => format!("consent was withdrawn on {}", day(mst.occurred)),
                _ => format!("the subject objected to {} on {}", via.unwrap_or(purpose), day(mst.occurred)),
            };
            sink.add("K02", at, vec![seq, mst.seq], format!("data {what} for {purpose} on consent, but {said}"));
        }
        (Some(b), Some((mst, m @ (ConsentMark::Objected | ConsentMark::Withdrawn), via)))
            if !matches!(b, LegalBasis::Consent | LegalBasis::LegalObligation | LegalBasis::VitalInterests) =>
        {
            let said = match m {
                ConsentMark::Objected => format!("objected to {}", via.unwrap_or(purpose)),
                _ => format!("opted out of {purpose}"),
            };
            sink.add(
                "K04",
                at,
                vec![seq, mst.seq],
                format!("data {what} for {purpose} ({b}) after the subject {said} on {}", day(mst.occurred)),
            );
        }
        _ => {}
    }
    let Some(processor) = a.processor else { return };
    // K09: who received it.
    match c.processors.get(processor).and_then(|t| t.latest(&q)) {
        None => sink.add(
            "K09",
            at,
            vec![seq],
            format!("data shared with {processor}, a recipient not registered at the time"),
        ),
        Some((pst, p)) if p.country.third_country() == Some(true) && p.transfer_mechanism.is_none() => sink.add(
            "K09",
            at,
            vec![seq, pst.seq],
            format!("data shared with {processor} in {} (outside the EEA) without a transfer mechanism", p.country),
        ),
        _ => {}
    }
    // K11: shared after an erasure of the purpose's register (or of everything) with nothing
    // collected into it since.
    let register = decl.map(|(_, d)| &d.register);
    let erased = s.erasure.visible(&q).rfind(|(_, r)| r.is_none() || r.as_ref() == register).map(|(st, _)| *st);
    if let Some(e) = erased {
        let recollected = s
            .collected
            .visible(&q)
            .any(|(cst, col)| before(&e, cst) && (register.is_none() || Some(&col.register) == register));
        if !recollected {
            let what = register.map_or("all of the subject's data".to_string(), |r| format!("register {r}"));
            sink.add(
                "K11",
                at,
                vec![seq, e.seq],
                format!("data shared with {processor} for {purpose} after {what} was erased on {}", day(e.occurred)),
            );
        }
    }
    // K15: sharing on the contract basis after the relationship ended.
    if basis == Some(LegalBasis::Contract)
        && let Some(end) = relationship_end(s, &q)
    {
        sink.add(
            "K15",
            at,
            vec![seq, end.seq],
            format!(
                "data shared with {processor} for {purpose} on contract after the relationship ended on {}",
                day(end.occurred)
            ),
        );
    }
}

/// Every stamp of the subject's events (each timeline once).
fn stamps(s: &SubjectState) -> Vec<Stamp> {
    let mut out: Vec<Stamp> = Vec::new();
    out.extend(s.consent.values().flat_map(|t| t.all().iter().map(|(st, _)| *st)));
    out.extend(s.restriction.all().iter().map(|(st, _)| *st));
    out.extend(s.erasure.all().iter().map(|(st, _)| *st));
    out.extend(s.collected.all().iter().map(|(st, _)| *st));
    out.extend(s.shared.all().iter().map(|(st, _)| *st));
    out.extend(s.rectified.all().iter().map(|(st, _)| *st));
    out.extend(s.requests.values().flat_map(|t| t.all().iter().map(|(st, _)| *st)));
    out.extend(s.records_closed.all().iter().map(|(st, _)| *st));
    out.extend(s.relationship_ended.all().iter().map(|(st, _)| *st));
    out.extend(s.holds.values().flat_map(|t| t.all().iter().map(|(st, _)| *st)));
    out.extend(s.deferrals.all().iter().map(|(st, _)| *st));
    out.sort_unstable_by_key(|st| st.seq);
    out
}

fn audit_subject(c: &ControllerState, subject: &SubjectId, s: &SubjectState, o: &AuditOptions, out: &mut Vec<Finding>) {
    let now = AsOf::at(o.now);
    let mut sink = Sink { controller: &s.controller, subject: *subject, out };
    for (st, col) in s.collected.visible(&now) {
        act_checks(
            c,
            s,
            &Act { st: *st, purpose: &col.purpose, claimed: Some(col.legal_basis), processor: None },
            &mut sink,
        );
    }
    for (st, sh) in s.shared.visible(&now) {
        act_checks(
            c,
            s,
            &Act { st: *st, purpose: &sh.purpose, claimed: None, processor: Some(&sh.processor) },
            &mut sink,
        );
    }

    // K06: requests overdue or answered late.
    for r in s.requests(&now) {
        if r.overdue {
            let due = r.deadline.unwrap_or(o.now);
            sink.add(
                "K06",
                due,
                r.seqs.clone(),
                format!(
                    "{} request {} open past its deadline {} ({} days overdue)",
                    r.right.map_or("a".to_string(), |x| x.to_string()),
                    r.request_id,
                    day(due),
                    r.overdue_by_days.unwrap_or(0)
                ),
            );
        } else if let (Some(late), Some(due)) = (r.late_by_days, r.deadline) {
            sink.add(
                "K06",
                r.closed_at.unwrap_or(due),
                r.seqs.clone(),
                format!(
                    "{} request {} answered {late} days after its deadline {}{}",
                    r.right.map_or("a".to_string(), |x| x.to_string()),
                    r.request_id,
                    day(due),
                    if r.extension_late { " (the extension came after the first month)" } else { "" }
                ),
            );
        }
    }

    // K08: deferrals expired without erasure (not while a legal hold stands), holds never
    // reviewed.
    let held = s.holds.values().any(|t| matches!(t.latest(&now), Some((_, true))));
    let mut expired: BTreeMap<&Id, Stamp> = BTreeMap::new();
    let mut latest_deferral: BTreeMap<&Id, (&Stamp, Timestamp)> = BTreeMap::new();
    for (st, d) in s.deferrals.visible(&now) {
        latest_deferral.insert(&d.register, (st, d.until));
    }
    for (register, (st, until)) in latest_deferral {
        if held || until.as_micros() + DAY_US > o.now.as_micros() {
            continue;
        }
        let erased = s.erasure.visible(&now).any(|(e, r)| before(st, e) && r.as_ref().is_none_or(|r| r == register));
        if !erased {
            expired.insert(register, *st);
            sink.add(
                "K08",
                until,
                vec![st.seq],
                format!("erasure of register {register} deferred until {}, not erased since", day(until)),
            );
        }
    }
    for (hold, t) in &s.holds {
        if let Some((st, true)) = t.latest(&now)
            && o.now.as_micros() - st.occurred.as_micros() > o.hold_review_days * DAY_US
        {
            sink.add(
                "K08",
                st.occurred,
                vec![st.seq],
                format!(
                    "legal hold {hold} placed {} and not released for over {} days",
                    day(st.occurred),
                    o.hold_review_days
                ),
            );
        }
    }

    // K07: retention overdue (an expired deferral is K08's finding, not a second one here).
    let mut plan = Vec::new();
    subject_plan(c, subject, s, o.now, &mut plan);
    for item in plan {
        if let (PlanStatus::Overdue { overdue_by_days, .. }, Some(due)) = (&item.status, item.due_at)
            && !expired.contains_key(&item.register)
        {
            sink.add(
                "K07",
                due,
                item.clock_seq.into_iter().chain([item.rule.seq]).collect(),
                format!(
                    "register {} was due for erasure on {} ({overdue_by_days} days ago): neither erased nor deferred",
                    item.register,
                    day(due)
                ),
            );
        }
    }

    // K10: a rectification reaches every earlier recipient of the categories.
    for (rst, (register, cats)) in s.rectified.visible(&now) {
        let window_end = rst.occurred.as_micros() + o.notify_within_days * DAY_US;
        if window_end > o.now.as_micros() {
            continue;
        }
        // A share is of the rectified register when its purpose was declared over it then
        // (a share for an undeclared purpose counts by its categories alone).
        let of_register = |sst: &Stamp, sh: &crate::state::Shared| {
            c.purposes
                .get(&sh.purpose)
                .and_then(|t| t.latest(&AsOf::at(sst.occurred)))
                .is_none_or(|(_, d)| &d.register == register)
        };
        let mut earlier: BTreeMap<&Id, u64> = BTreeMap::new();
        for (sst, sh) in s.shared.visible(&now) {
            if before(sst, rst) && overlaps(&sh.categories, cats) && of_register(sst, sh) {
                earlier.insert(&sh.processor, sst.seq);
            }
        }
        for (processor, share_seq) in earlier {
            let passed_on = s.shared.visible(&now).any(|(sst, sh)| {
                &sh.processor == processor
                    && before(rst, sst)
                    && sst.occurred.as_micros() <= window_end
                    && overlaps(&sh.categories, cats)
            });
            if !passed_on {
                sink.add(
                    "K10",
                    rst.occurred,
                    vec![rst.seq, share_seq],
                    format!(
                        "register {register} rectified on {}; {processor}, which had received it, was not sent the correction within {} days",
                        day(rst.occurred),
                        o.notify_within_days
                    ),
                );
            }
        }
    }

    // K12: consent recorded without a notice version, or under one not published by then.
    for (purpose, t) in &s.consent {
        for (st, m) in t.visible(&now) {
            let ConsentMark::Given { notice_version } = m else { continue };
            match notice_version {
                None => sink.add(
                    "K12",
                    st.occurred,
                    vec![st.seq],
                    format!("consent to {purpose} recorded without a notice version"),
                ),
                Some(v) => {
                    let published = c.notices.visible(&AsOf::at(st.occurred)).any(|(_, (version, _))| version == v);
                    if !published {
                        sink.add(
                            "K12",
                            st.occurred,
                            vec![st.seq],
                            format!("consent to {purpose} under notice {v}, which was not published by then"),
                        );
                    }
                }
            }
        }
    }

    // K13: recorded long after it occurred, while the ledger was already kept — it occurred
    // after the ledger began, or the ledger had already recorded a later event of the subject
    // (history imported in order is neither; a backdated insert into it is).
    let mut latest: Option<Stamp> = None;
    for st in stamps(s) {
        let lag = st.recorded.as_micros() - st.occurred.as_micros();
        let out_of_order = latest.filter(|l| l.occurred > st.occurred);
        if st.occurred <= o.now
            && lag >= o.late_after_hours * HOUR_US
            && (st.occurred >= o.ledger_start || out_of_order.is_some())
        {
            let (seqs, why) = match out_of_order {
                Some(l) if st.occurred < o.ledger_start => (
                    vec![st.seq, l.seq],
                    format!(", after the ledger had recorded the subject's event of {}", day(l.occurred)),
                ),
                _ => (vec![st.seq], String::new()),
            };
            sink.add(
                "K13",
                st.occurred,
                seqs,
                format!("recorded {} hours after it occurred (threshold {} h){why}", lag / HOUR_US, o.late_after_hours),
            );
        }
        if latest.is_none_or(|l| st.occurred > l.occurred) {
            latest = Some(st);
        }
    }

    // K14: an erasure request fulfilled with neither an erasure nor a deferral in between.
    for (request, t) in &s.requests {
        let marks: Vec<&(Stamp, RequestMark)> = t.visible(&now).collect();
        let received = marks.iter().find(|(_, m)| matches!(m, RequestMark::Received(Right::Erasure)));
        let fulfilled = marks.iter().find(|(_, m)| matches!(m, RequestMark::Fulfilled));
        let (Some((rst, _)), Some((fst, _))) = (received, fulfilled) else { continue };
        let within = |st: &Stamp| st.occurred >= rst.occurred && st.occurred <= fst.occurred;
        let acted =
            s.erasure.visible(&now).any(|(st, _)| within(st)) || s.deferrals.visible(&now).any(|(st, _)| within(st));
        if !acted {
            sink.add(
                "K14",
                fst.occurred,
                vec![fst.seq, rst.seq],
                format!("erasure request {request} marked fulfilled on {} with no data_erased or erasure_deferred since it was received", day(fst.occurred)),
            );
        }
    }
}

/// Finding order: by check, controller, subject, time, evidence.
fn finding_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    (a.check, &a.controller, &a.subject, a.at, &a.seqs).cmp(&(b.check, &b.controller, &b.subject, b.at, &b.seqs))
}

impl Projections {
    /// Checks K02–K15 for one controller (or all) at `o.now`, in report order. An unknown
    /// controller has no findings (the facade refuses it first).
    pub fn audit(&self, controller: Option<&Id>, o: &AuditOptions) -> Vec<Finding> {
        let mut out = Vec::new();
        for (subject, s) in &self.subjects {
            if controller.is_some_and(|c| c != &s.controller) {
                continue;
            }
            let Some(c) = self.controllers.get(&s.controller) else { continue };
            audit_subject(c, subject, s, o, &mut out);
        }
        out.sort_by(finding_order);
        out
    }
}
