//! Reports built from the projections: the Art 15(1) access report for one subject and the
//! Art 30(1) record of processing for one controller, each line with the events behind it.
//! Both serialize to JSON; the CLI renders the same data as text.

use std::collections::{BTreeMap, BTreeSet};

use kvitto_core::event::ExtendTo;
use kvitto_core::period::MonthDay;
use kvitto_core::{
    CountryCode, Id, IsoPeriod, LegalBasis, Right, Role, Source, SubjectId, Timestamp, TransferMechanism, Trigger,
};
use serde::Serialize;

use crate::decision::{ConsentAnswer, ConsentState};
use crate::retention::{data_registers, register_clock};
use crate::state::{ControllerState, ProcessorDecl};
use crate::timeline::AsOf;
use crate::{Projections, QueryError};

/// `t + period`, calendar-aware for years and months; saturates at the end of time
/// ([`IsoPeriod::add_to`]).
pub fn add_period(t: Timestamp, p: &IsoPeriod) -> Timestamp {
    p.add_to(t)
}

/// A data subject request with its deadline (Art 12(3): one month, extendable by two);
/// the rules are in docs/DECISIONS.md and [`crate::requests`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestStatus {
    /// Request id.
    pub request_id: Id,
    /// The right invoked (unknown when only later steps are visible).
    pub right: Option<Right>,
    /// `open`, `extended`, `fulfilled`, `fulfilled_late`, `rejected` or `rejected_late`.
    pub status: &'static str,
    /// When it was received.
    pub received: Option<Timestamp>,
    /// When it is (or was) due: one month after receipt, three after an extension in time.
    pub deadline: Option<Timestamp>,
    /// Still open after its deadline at the query's `at`.
    pub overdue: bool,
    /// Events behind it.
    pub seqs: Vec<u64>,
    /// One month after receipt: the deadline without extension, and the last moment an
    /// extension can be recorded.
    pub first_deadline: Option<Timestamp>,
    /// An extension recorded within the first month moved the deadline.
    pub extended: bool,
    /// An extension was recorded only after the first month: it did not extend the deadline.
    pub extension_late: bool,
    /// When it was fulfilled or rejected.
    pub closed_at: Option<Timestamp>,
    /// Closed after its deadline: by how many days (whole days, rounded up).
    pub late_by_days: Option<i64>,
    /// Open and not overdue at `at`: whole days left until the deadline (rounded down).
    pub days_left: Option<i64>,
    /// Open and overdue at `at`: by how many days (whole days, rounded up).
    pub overdue_by_days: Option<i64>,
}

/// Art 15(1)(a): a purpose the subject's data is processed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessPurpose {
    /// Purpose id.
    pub purpose: Id,
    /// Declared description (when declared).
    pub description: Option<String>,
    /// Legal bases relied on (declared and as recorded in collections).
    pub legal_bases: BTreeSet<LegalBasis>,
    /// Consent state, for purposes with consent marks.
    pub consent: Option<ConsentState>,
    /// Declared by the controller (as of the report).
    pub declared: bool,
    /// Data was collected or shared for it. A purpose neither declared nor processed is only
    /// named by a consent mark (e.g. an objection to a purpose the controller never had).
    pub processed: bool,
    /// Events behind the line.
    pub seqs: Vec<u64>,
}

/// Art 15(1)(b)/(g): a category of data, where it is, why, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessCategory {
    /// Category id.
    pub category: Id,
    /// Registers holding it.
    pub registers: BTreeSet<Id>,
    /// Purposes it was collected for.
    pub purposes: BTreeSet<Id>,
    /// Sources (subject, controller, third party).
    pub sources: BTreeSet<Source>,
    /// Events behind the line.
    pub seqs: Vec<u64>,
}

/// Art 15(1)(c), 15(2): a recipient that actually received data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessRecipient {
    /// Processor id.
    pub processor: Id,
    /// Registered name, country, role, safeguard (when registered).
    pub name: Option<String>,
    /// Country.
    pub country: Option<CountryCode>,
    /// Role.
    pub role: Option<Role>,
    /// Outside the EEA (a third country, Art 15(2)); `None` when the recipient was never
    /// registered, so its country is unknown — not taken for "inside the EEA".
    pub third_country: Option<bool>,
    /// Safeguard for the transfer.
    pub transfer_mechanism: Option<TransferMechanism>,
    /// Categories received.
    pub categories: BTreeSet<Id>,
    /// For which purposes.
    pub purposes: BTreeSet<Id>,
    /// Events behind the line.
    pub seqs: Vec<u64>,
}

/// Art 15(1)(d): how long a register keeps the subject's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessRetention {
    /// Register.
    pub register: Id,
    /// What starts the clock.
    pub trigger: Option<Trigger>,
    /// ISO 8601 period.
    pub duration: Option<String>,
    /// Statute.
    pub statute: Option<String>,
    /// Financial-year end the clock waits for (`MM-DD`), when declared.
    pub financial_year_end: Option<MonthDay>,
    /// Extension after the duration, when declared.
    pub extend_to: Option<ExtendTo>,
    /// When the clock started for this subject, if it has.
    pub clock_started: Option<Timestamp>,
    /// Planned erasure time, when the clock has started: the first instant the data is due
    /// for erasure ([`crate::RetentionDecl::due_at`]; kept through the microsecond before).
    pub keep_until: Option<Timestamp>,
    /// Statutory deferral recorded for this subject.
    pub deferred_until: Option<Timestamp>,
}

/// The Art 15(1) access report, as far as the ledger knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessReport {
    /// Controller.
    pub controller: Id,
    /// Subject pseudonym (hex).
    pub subject_id: String,
    /// Occurred-time horizon.
    pub at: Timestamp,
    /// Recorded-time horizon.
    pub known_at: Timestamp,
    /// (a) purposes.
    pub purposes: Vec<AccessPurpose>,
    /// (b) categories, with (g) sources.
    pub categories: Vec<AccessCategory>,
    /// (c) recipients.
    pub recipients: Vec<AccessRecipient>,
    /// (d) retention per register.
    pub retention: Vec<AccessRetention>,
    /// (e)/(f) the rights that exist, and this subject's requests.
    pub rights: Vec<&'static str>,
    /// Requests and deadlines.
    pub requests: Vec<RequestStatus>,
    /// (h) purposes that involve profiling (by id or description).
    pub profiling: Vec<Id>,
    /// Restriction in force.
    pub restricted: bool,
    /// Registers erased (`*` = everything).
    pub erased: Vec<String>,
    /// Consent per purpose.
    pub consent: Vec<ConsentAnswer>,
}

/// Art 30(1)(b): a purpose and its basis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordPurpose {
    /// Purpose id.
    pub purpose: Id,
    /// Description.
    pub description: String,
    /// Declared basis.
    pub legal_basis: LegalBasis,
    /// Register.
    pub register: Id,
    /// Categories actually collected for it, by basis recorded.
    pub categories: BTreeMap<LegalBasis, BTreeSet<Id>>,
    /// Declaration event.
    pub seq: u64,
}

/// Art 30(1)(d)/(e): a recipient, its safeguards, and what it actually received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordRecipient {
    /// Processor id.
    pub processor: Id,
    /// Declaration (absent: data went to an unregistered recipient — an audit finding).
    pub declared: Option<ProcessorDecl>,
    /// Outside the EEA; `None` for a recipient never registered (country unknown).
    pub third_country: Option<bool>,
    /// Outside the EEA without a declared transfer mechanism.
    pub missing_safeguard: bool,
    /// Categories actually received, per purpose.
    pub received: BTreeMap<Id, BTreeSet<Id>>,
}

/// Art 30(1)(f): a retention rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordRetention {
    /// Register.
    pub register: Id,
    /// Trigger.
    pub trigger: Trigger,
    /// Period.
    pub duration: String,
    /// Statute.
    pub statute: Option<String>,
    /// Financial-year end (`MM-DD`), when declared.
    pub financial_year_end: Option<MonthDay>,
    /// Extension after the duration, when declared.
    pub extend_to: Option<ExtendTo>,
    /// Declaration event.
    pub seq: u64,
}

/// The Art 30(1) record of processing of one controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessingReport {
    /// Controller.
    pub controller: Id,
    /// Occurred-time horizon.
    pub at: Timestamp,
    /// Recorded-time horizon.
    pub known_at: Timestamp,
    /// Purposes and bases, with categories actually collected.
    pub purposes: Vec<RecordPurpose>,
    /// Categories collected for purposes never declared (an audit finding).
    pub undeclared_purposes: Vec<Id>,
    /// Recipients.
    pub recipients: Vec<RecordRecipient>,
    /// Retention rules.
    pub retention: Vec<RecordRetention>,
    /// Data subjects with events by `known_at`.
    pub subjects: u64,
}

const RIGHTS: [&str; 8] = [
    "access (Art 15)",
    "rectification (Art 16)",
    "erasure (Art 17)",
    "restriction of processing (Art 18)",
    "data portability (Art 20)",
    "objection (Art 21)",
    "withdrawal of consent at any time (Art 7(3))",
    "lodging a complaint with a supervisory authority (Art 77), e.g. IMY (SE) or Datatilsynet (DK)",
];

fn latest_decl<'a>(c: &'a ControllerState, processor: &Id, q: &AsOf) -> Option<&'a ProcessorDecl> {
    c.processors.get(processor).and_then(|t| t.latest(q)).map(|(_, d)| d)
}

impl Projections {
    /// The Art 15(1) report for one subject as of `q`.
    pub fn access_report(&self, controller: &Id, subject: &SubjectId, q: &AsOf) -> Result<AccessReport, QueryError> {
        let (c, s) = self.subject(controller, subject)?;
        let mut purposes: BTreeMap<Id, AccessPurpose> = BTreeMap::new();
        // `processed`: the line comes from a collection or share (not only a consent mark).
        let purpose_line = |purposes: &mut BTreeMap<Id, AccessPurpose>,
                            p: &Id,
                            seq: u64,
                            basis: Option<LegalBasis>,
                            processed: bool| {
            let line = purposes.entry(p.clone()).or_insert_with(|| {
                let decl = c.purposes.get(p).and_then(|t| t.latest(q)).map(|(_, d)| d);
                AccessPurpose {
                    purpose: p.clone(),
                    description: decl.map(|d| d.description.to_string()),
                    legal_bases: decl.map(|d| d.legal_basis).into_iter().collect(),
                    consent: None,
                    declared: decl.is_some(),
                    processed: false,
                    seqs: Vec::new(),
                }
            });
            line.legal_bases.extend(basis);
            line.processed |= processed;
            line.seqs.push(seq);
        };
        let mut categories: BTreeMap<Id, AccessCategory> = BTreeMap::new();
        // Data a later erasure covers is no longer held: listed under `erased`, not here.
        let erased_by = |seq: u64, register: &Id| {
            s.erasure.visible(q).any(|(e, r)| e.seq > seq && r.as_ref().is_none_or(|r| r == register))
        };
        for (st, col) in s.collected.visible(q) {
            purpose_line(&mut purposes, &col.purpose, st.seq, Some(col.legal_basis), true);
            if erased_by(st.seq, &col.register) {
                continue;
            }
            for cat in col.categories.as_slice() {
                let line = categories.entry(cat.clone()).or_insert_with(|| AccessCategory {
                    category: cat.clone(),
                    registers: BTreeSet::new(),
                    purposes: BTreeSet::new(),
                    sources: BTreeSet::new(),
                    seqs: Vec::new(),
                });
                line.registers.insert(col.register.clone());
                line.purposes.insert(col.purpose.clone());
                line.sources.insert(col.source);
                line.seqs.push(st.seq);
            }
        }
        let mut recipients: BTreeMap<Id, AccessRecipient> = BTreeMap::new();
        for (st, sh) in s.shared.visible(q) {
            purpose_line(&mut purposes, &sh.purpose, st.seq, None, true);
            let line = recipients.entry(sh.processor.clone()).or_insert_with(|| {
                let d = latest_decl(c, &sh.processor, q);
                AccessRecipient {
                    processor: sh.processor.clone(),
                    name: d.map(|d| d.name.to_string()),
                    country: d.map(|d| d.country),
                    role: d.map(|d| d.role),
                    third_country: d.map(|d| !d.country.in_eea()),
                    transfer_mechanism: d.and_then(|d| d.transfer_mechanism),
                    categories: BTreeSet::new(),
                    purposes: BTreeSet::new(),
                    seqs: Vec::new(),
                }
            });
            line.categories.extend(sh.categories.as_slice().iter().cloned());
            line.purposes.insert(sh.purpose.clone());
            line.seqs.push(st.seq);
        }
        let consent: Vec<ConsentAnswer> = self.consent(controller, subject, None, q)?;
        for a in &consent {
            if let Some(seq) = a.seq {
                purpose_line(&mut purposes, &a.purpose, seq, None, false);
                if let Some(line) = purposes.get_mut(&a.purpose) {
                    line.consent = Some(a.state);
                }
            }
        }
        for line in purposes.values_mut() {
            line.seqs.sort_unstable();
            line.seqs.dedup();
        }
        // Registers the subject has data in, and their retention (the same clock and due
        // date as the retention plan).
        let retention = data_registers(s, q)
            .into_iter()
            .filter(|reg| {
                // A register whose data was erased holds nothing to keep.
                let trigger =
                    c.retention.get(*reg).and_then(|t| t.latest(q)).map_or(Trigger::Collected, |(_, r)| r.trigger);
                register_clock(s, reg, trigger, q).erased.is_none()
            })
            .map(|reg| {
                let rule = c.retention.get(reg).and_then(|t| t.latest(q)).map(|(_, r)| r);
                let clock_started = rule.and_then(|r| register_clock(s, reg, r.trigger, q).start).map(|st| st.occurred);
                AccessRetention {
                    keep_until: rule.zip(clock_started).map(|(r, t)| r.due_at(t)),
                    trigger: rule.map(|r| r.trigger),
                    duration: rule.map(|r| r.duration.to_string()),
                    statute: rule.and_then(|r| r.statute.as_ref().map(|t| t.to_string())),
                    financial_year_end: rule.and_then(|r| r.financial_year_end),
                    extend_to: rule.and_then(|r| r.extend_to),
                    clock_started,
                    deferred_until: s
                        .deferrals
                        .visible(q)
                        .filter(|(_, d)| &d.register == reg)
                        .map(|(_, d)| d.until)
                        .max(),
                    register: reg.clone(),
                }
            })
            .collect();
        // Only profiling that exists: declared by the controller or actually processed — an
        // objection to a purpose nobody declared is not profiling that happens.
        let profiling = purposes
            .values()
            .filter(|p| p.declared || p.processed)
            .filter(|p| {
                p.purpose.as_str().contains("profil")
                    || p.description.as_deref().is_some_and(|d| d.to_lowercase().contains("profil"))
            })
            .map(|p| p.purpose.clone())
            .collect();
        Ok(AccessReport {
            controller: controller.clone(),
            subject_id: subject.to_hex(),
            at: q.at,
            known_at: q.known_at,
            purposes: purposes.into_values().collect(),
            categories: categories.into_values().collect(),
            recipients: recipients.into_values().collect(),
            retention,
            rights: RIGHTS.to_vec(),
            requests: s.requests(q),
            profiling,
            restricted: s.restriction.latest(q).is_some_and(|(_, r)| *r),
            erased: s.erasure.visible(q).map(|(_, r)| r.as_ref().map_or("*".to_string(), |r| r.to_string())).collect(),
            consent,
        })
    }

    /// The Art 30(1) record of processing of one controller as of `q`.
    pub fn processing_report(&self, controller: &Id, q: &AsOf) -> Result<ProcessingReport, QueryError> {
        let c = self.controller(controller)?;
        let mut purposes = Vec::new();
        for (p, t) in &c.purposes {
            let Some((st, d)) = t.latest(q) else { continue };
            let mut categories: BTreeMap<LegalBasis, BTreeSet<Id>> = BTreeMap::new();
            for (cat, by_basis) in c.collected.get(p).into_iter().flatten() {
                for (basis, seen) in by_basis {
                    if seen.first_visible(q).is_some() {
                        categories.entry(*basis).or_default().insert(cat.clone());
                    }
                }
            }
            purposes.push(RecordPurpose {
                purpose: p.clone(),
                description: d.description.to_string(),
                legal_basis: d.legal_basis,
                register: d.register.clone(),
                categories,
                seq: st.seq,
            });
        }
        let declared: BTreeSet<&Id> = purposes.iter().map(|p| &p.purpose).collect();
        let undeclared_purposes: BTreeSet<Id> = c
            .collected
            .iter()
            .filter(|(p, by_category)| {
                !declared.contains(p)
                    && by_category.values().flat_map(|b| b.values()).any(|seen| seen.first_visible(q).is_some())
            })
            .map(|(p, _)| p.clone())
            .collect();
        let mut recipients: BTreeMap<Id, RecordRecipient> = BTreeMap::new();
        for id in c.processors.keys() {
            if let Some(d) = latest_decl(c, id, q) {
                recipients.insert(
                    id.clone(),
                    RecordRecipient {
                        processor: id.clone(),
                        declared: Some(d.clone()),
                        third_country: Some(!d.country.in_eea()),
                        missing_safeguard: !d.country.in_eea() && d.transfer_mechanism.is_none(),
                        received: BTreeMap::new(),
                    },
                );
            }
        }
        for (proc_, by_purpose) in &c.shared {
            for (purpose, by_category) in by_purpose {
                for (cat, seen) in by_category {
                    if seen.first_visible(q).is_none() {
                        continue;
                    }
                    let r = recipients.entry(proc_.clone()).or_insert_with(|| RecordRecipient {
                        processor: proc_.clone(),
                        declared: None,
                        third_country: None,
                        missing_safeguard: false,
                        received: BTreeMap::new(),
                    });
                    r.received.entry(purpose.clone()).or_default().insert(cat.clone());
                }
            }
        }
        let retention = c
            .retention
            .iter()
            .filter_map(|(reg, t)| {
                t.latest(q).map(|(st, r)| RecordRetention {
                    register: reg.clone(),
                    trigger: r.trigger,
                    duration: r.duration.to_string(),
                    statute: r.statute.as_ref().map(|s| s.to_string()),
                    financial_year_end: r.financial_year_end,
                    extend_to: r.extend_to,
                    seq: st.seq,
                })
            })
            .collect();
        let subjects =
            self.subjects.values().filter(|s| &s.controller == controller && s.first.recorded <= q.known_at).count()
                as u64;
        Ok(ProcessingReport {
            controller: controller.clone(),
            at: q.at,
            known_at: q.known_at,
            purposes,
            undeclared_purposes: undeclared_purposes.into_iter().collect(),
            recipients: recipients.into_values().collect(),
            retention,
            subjects,
        })
    }
}
