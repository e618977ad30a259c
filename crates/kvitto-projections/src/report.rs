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
use crate::state::{ControllerDecl, ControllerState, ProcessorDecl};
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

/// Who the controller is (`controller_declared`, the newest in force), with the event that
/// says so: Art 13(1)(a)–(b), 15(1)(f) (the authority), 30(1)(a).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControllerIdentity {
    /// The declaration.
    #[serde(flatten)]
    pub declared: ControllerDecl,
    /// The `controller_declared` event.
    pub seq: u64,
}

impl ControllerIdentity {
    /// The newest declaration of `c` visible as of `q`.
    pub fn of(c: &ControllerState, q: &AsOf) -> Option<Self> {
        c.identity.latest(q).map(|(st, d)| Self { declared: d.clone(), seq: st.seq })
    }
}

/// A restriction (Art 18) placed or lifted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestrictionStep {
    /// `true`: restricted; `false`: lifted.
    pub restricted: bool,
    /// When.
    pub occurred_at: Timestamp,
    /// The event.
    pub seq: u64,
}

/// A legal hold on the subject's data (erasure suspended).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HoldStatus {
    /// Hold id.
    pub hold_id: Id,
    /// When it was placed.
    pub placed_at: Option<Timestamp>,
    /// When it was released (`None`: still in force).
    pub released_at: Option<Timestamp>,
    /// In force at the report's time.
    pub in_force: bool,
    /// Events behind it.
    pub seqs: Vec<u64>,
}

/// Art 15(1)(a): a purpose the subject's data is processed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessPurpose {
    /// Purpose id.
    pub purpose: Id,
    /// Declared description (when declared). Lines come from the subject's events (data
    /// collected or shared for the purpose, consent marks) and from declared purposes, other
    /// than consent ones, over a register that holds the subject's data.
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

impl AccessPurpose {
    /// What the subject said about the purpose, in words that fit its basis: `consent
    /// granted`/`withdrawn`/… on the consent basis alone, otherwise `the subject objected (Art
    /// 21)` or `the subject opted out`; `None` when nothing was said. CLI and HTML print it.
    pub fn subject_said(&self) -> Option<String> {
        let consent_only = !self.legal_bases.is_empty() && self.legal_bases.iter().all(|b| *b == LegalBasis::Consent);
        match self.consent? {
            ConsentState::None => None,
            state if consent_only => Some(format!("consent {}", state.as_str())),
            ConsentState::Objected => Some("the subject objected (Art 21)".into()),
            ConsentState::Withdrawn => Some("the subject opted out".into()),
            state => Some(format!("consent {}", state.as_str())),
        }
    }
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
    /// registered or its country not stated (`ZZ`), so unknown — not taken for "inside the EEA".
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
    /// Who the controller is, its DPO and supervisory authority (`None`: no
    /// `controller_declared` recorded as of the report).
    pub controller_identity: Option<ControllerIdentity>,
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
    /// (e)/(f) the rights that exist — the complaint line names the declared authority.
    pub rights: Vec<String>,
    /// Requests and deadlines.
    pub requests: Vec<RequestStatus>,
    /// (h) purposes that involve profiling (by id or description).
    pub profiling: Vec<Id>,
    /// Restriction in force.
    pub restricted: bool,
    /// Every restriction placed or lifted, in occurred order.
    pub restrictions: Vec<RestrictionStep>,
    /// Legal holds, placed and released.
    pub holds: Vec<HoldStatus>,
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
    /// Categories of data subjects (Art 30(1)(c)), as declared; empty when not declared.
    pub data_subjects: Vec<Id>,
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
    /// Outside the EEA; `None` for a recipient never registered or whose country is not
    /// stated (`ZZ`): unknown.
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

/// A gap in the Art 30 record: something the record must say, or the law requires, that the
/// declarations do not give — one line each, with the events that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordGap {
    /// `no_controller_declaration`, `undeclared_purpose`, `purpose_without_data_subjects`,
    /// `recipient_not_registered`, `processor_without_dpa`, `country_not_stated`,
    /// `missing_safeguard` or `register_without_retention`.
    pub gap: &'static str,
    /// The purpose, recipient or register concerned (the controller for
    /// `no_controller_declaration`).
    pub concerns: Id,
    /// What is missing, in words.
    pub text: String,
    /// Events that show it (declarations, or the first processing).
    pub seqs: Vec<u64>,
}

/// The Art 30(1) record of processing of one controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessingReport {
    /// Controller.
    pub controller: Id,
    /// (a) who the controller is and its DPO (`None`: no `controller_declared` recorded).
    pub controller_identity: Option<ControllerIdentity>,
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
    /// What the record lacks, one line per gap.
    pub gaps: Vec<RecordGap>,
}

const RIGHTS: [&str; 7] = [
    "access (Art 15)",
    "rectification (Art 16)",
    "erasure (Art 17)",
    "restriction of processing (Art 18)",
    "data portability (Art 20)",
    "objection (Art 21)",
    "withdrawal of consent at any time (Art 7(3))",
];

/// The Art 15(1)(f) line: the declared authority, or plainly that none is declared.
fn complaint_line(identity: Option<&ControllerIdentity>) -> String {
    match identity {
        Some(i) => format!(
            "lodging a complaint with a supervisory authority (Art 77): {} ({})",
            i.declared.authority, i.declared.authority_country
        ),
        None => "lodging a complaint with a supervisory authority (Art 77) — the controller has declared none \
                 (no controller_declared recorded): the authority of the member state of residence, work or the \
                 alleged infringement"
            .into(),
    }
}

fn latest_decl<'a>(c: &'a ControllerState, processor: &Id, q: &AsOf) -> Option<&'a ProcessorDecl> {
    c.processors.get(processor).and_then(|t| t.latest(q)).map(|(_, d)| d)
}

impl Projections {
    /// The Art 15(1) report for one subject as of `q`.
    pub fn access_report(&self, controller: &Id, subject: &SubjectId, q: &AsOf) -> Result<AccessReport, QueryError> {
        let (c, s) = self.subject_as_of(controller, subject, q)?;
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
                    third_country: d.and_then(|d| d.country.third_country()),
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
        // Registers the subject has data in (a register whose data was erased holds nothing).
        let held: Vec<&Id> = data_registers(s, q)
            .into_iter()
            .filter(|reg| {
                let trigger =
                    c.retention.get(*reg).and_then(|t| t.latest(q)).map_or(Trigger::Collected, |(_, r)| r.trigger);
                register_clock(s, reg, trigger, q).erased.is_none()
            })
            .collect();
        // Declared purposes over a register holding the subject's data apply to it too, even
        // with no event naming them (Select Telecom's profiling of its customer data) — except
        // consent purposes, which apply only once consent is given (then a mark names them).
        for (p, t) in &c.purposes {
            let Some((st, d)) = t.latest(q) else { continue };
            if d.legal_basis != LegalBasis::Consent && held.contains(&&d.register) && !purposes.contains_key(p) {
                purposes.insert(
                    p.clone(),
                    AccessPurpose {
                        purpose: p.clone(),
                        description: Some(d.description.to_string()),
                        legal_bases: [d.legal_basis].into_iter().collect(),
                        consent: None,
                        declared: true,
                        processed: false,
                        seqs: vec![st.seq],
                    },
                );
            }
        }
        for line in purposes.values_mut() {
            line.seqs.sort_unstable();
            line.seqs.dedup();
        }
        // Their retention (the same clock and due date as the retention plan).
        let retention = held
            .into_iter()
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
                        // The latest deferral decides: a later one may shorten an earlier one.
                        .rfind(|(_, d)| &d.register == reg)
                        .map(|(_, d)| d.until),
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
        let controller_identity = ControllerIdentity::of(c, q);
        let mut rights: Vec<String> = RIGHTS.iter().map(|r| r.to_string()).collect();
        rights.push(complaint_line(controller_identity.as_ref()));
        let restrictions = s
            .restriction
            .visible(q)
            .map(|(st, r)| RestrictionStep { restricted: *r, occurred_at: st.occurred, seq: st.seq })
            .collect();
        let holds = s
            .holds
            .iter()
            .filter_map(|(hold_id, t)| {
                let steps: Vec<_> = t.visible(q).collect();
                let last = steps.last()?;
                Some(HoldStatus {
                    hold_id: hold_id.clone(),
                    placed_at: steps.iter().find(|(_, placed)| *placed).map(|(st, _)| st.occurred),
                    released_at: steps.iter().rev().find(|(_, placed)| !*placed).map(|(st, _)| st.occurred),
                    in_force: last.1,
                    seqs: steps.iter().map(|(st, _)| st.seq).collect(),
                })
            })
            .collect();
        Ok(AccessReport {
            controller: controller.clone(),
            controller_identity,
            subject_id: subject.to_hex(),
            at: q.at,
            known_at: q.known_at,
            purposes: purposes.into_values().collect(),
            categories: categories.into_values().collect(),
            recipients: recipients.into_values().collect(),
            retention,
            rights,
            requests: s.requests(q),
            profiling,
            restricted: s.restriction.latest(q).is_some_and(|(_, r)| *r),
            restrictions,
            holds,
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
                data_subjects: d.data_subjects.as_ref().map(|c| c.as_slice().to_vec()).unwrap_or_default(),
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
                        third_country: d.country.third_country(),
                        missing_safeguard: d.country.third_country() == Some(true) && d.transfer_mechanism.is_none(),
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
        let controller_identity = ControllerIdentity::of(c, q);
        let gaps = record_gaps(controller, c, q, controller_identity.as_ref(), &purposes, &recipients);
        Ok(ProcessingReport {
            controller: controller.clone(),
            controller_identity,
            at: q.at,
            known_at: q.known_at,
            purposes,
            undeclared_purposes: undeclared_purposes.into_iter().collect(),
            recipients: recipients.into_values().collect(),
            retention,
            subjects,
            gaps,
        })
    }
}

/// The first visible sighting among several (e.g. a purpose's collections of any category).
fn first_seen<'a>(seen: impl IntoIterator<Item = &'a crate::FirstSeen>, q: &AsOf) -> Vec<u64> {
    seen.into_iter()
        .filter_map(|f| f.first_visible(q))
        .min_by_key(|st| (st.occurred, st.seq))
        .map(|st| st.seq)
        .into_iter()
        .collect()
}

/// One line per gap of the Art 30 record (docs/REPORTS.md lists the rules).
fn record_gaps(
    controller: &Id,
    c: &ControllerState,
    q: &AsOf,
    identity: Option<&ControllerIdentity>,
    purposes: &[RecordPurpose],
    recipients: &BTreeMap<Id, RecordRecipient>,
) -> Vec<RecordGap> {
    let mut gaps = Vec::new();
    let mut gap = |gap: &'static str, concerns: &Id, text: String, seqs: Vec<u64>| {
        gaps.push(RecordGap { gap, concerns: concerns.clone(), text, seqs })
    };
    if identity.is_none() {
        gap(
            "no_controller_declaration",
            controller,
            "no controller_declared: name, contact details, DPO and supervisory authority are not recorded (Art 30(1)(a))".into(),
            Vec::new(),
        );
    }
    let declared: BTreeSet<&Id> = purposes.iter().map(|p| &p.purpose).collect();
    for (p, by_category) in &c.collected {
        let seqs = first_seen(by_category.values().flat_map(|b| b.values()), q);
        if !declared.contains(p) && !seqs.is_empty() {
            gap("undeclared_purpose", p, "data collected for a purpose never declared".into(), seqs);
        }
    }
    for p in purposes.iter().filter(|p| p.data_subjects.is_empty()) {
        gap(
            "purpose_without_data_subjects",
            &p.purpose,
            "categories of data subjects not declared (Art 30(1)(c))".into(),
            vec![p.seq],
        );
    }
    for r in recipients.values() {
        let decl_seq = c.processors.get(&r.processor).and_then(|t| t.latest(q)).map(|(st, _)| st.seq);
        let first_share =
            first_seen(c.shared.get(&r.processor).into_iter().flat_map(|b| b.values()).flat_map(|b| b.values()), q);
        let Some(d) = &r.declared else {
            gap(
                "recipient_not_registered",
                &r.processor,
                "data shared with a recipient never registered: who it is and where it processes are unknown".into(),
                first_share,
            );
            continue;
        };
        let seqs: Vec<u64> = decl_seq.into_iter().collect();
        if matches!(d.role, Role::Processor | Role::SubProcessor) && d.dpa_ref.is_none() {
            gap(
                "processor_without_dpa",
                &r.processor,
                format!("{} without a data processing agreement reference (Art 28(3))", d.role),
                seqs.clone(),
            );
        }
        if !d.country.is_stated() {
            gap(
                "country_not_stated",
                &r.processor,
                "country not stated: whether data leaves the EEA cannot be told (Art 30(1)(e))".into(),
                seqs.clone(),
            );
        }
        if r.missing_safeguard {
            gap(
                "missing_safeguard",
                &r.processor,
                format!("transfer to a third country ({}) without a declared safeguard (Art 44–49)", d.country),
                seqs,
            );
        }
    }
    // Each register with the first declaration that names it, then the registers data was
    // collected into under undeclared purposes (or a register no purpose names), with the
    // first such collection.
    let mut registers: BTreeMap<&Id, u64> = BTreeMap::new();
    for p in purposes {
        let seq = registers.entry(&p.register).or_insert(p.seq);
        *seq = (*seq).min(p.seq);
    }
    for (register, seen) in &c.registers {
        if let (false, Some(st)) = (registers.contains_key(register), seen.first_visible(q)) {
            registers.insert(register, st.seq);
        }
    }
    for (register, seq) in registers {
        if c.retention.get(register).and_then(|t| t.latest(q)).is_none() {
            gap(
                "register_without_retention",
                register,
                "no retention rule declared: how long the data is kept is not stated (Art 30(1)(f))".into(),
                vec![seq],
            );
        }
    }
    gaps
}
