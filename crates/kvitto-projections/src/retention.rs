//! The retention plan: for every (controller, subject, register) that holds data under a
//! declared retention rule, when the clock started, when erasure is due, and whether it is
//! due, overdue, deferred (statute or legal hold) or already done. Pure: a function of the
//! folded state and `now`. `kvitto retention plan --json` prints [`PlanItem`]s; a retention
//! run erases the [`RetentionCandidate`]s, each with a deterministic identifier so that a
//! re-run is idempotent.
//!
//! The clock of one register ([`register_clock`]) is the single computation the access report
//! (Art 15(1)(d)), this plan and the decisions share; the due date is
//! [`RetentionDecl::due_at`](crate::RetentionDecl::due_at).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use kvitto_core::event::ExtendTo;
use kvitto_core::period::MonthDay;
use kvitto_core::{Id, LegalBasis, SubjectId, Timestamp, Trigger};
use serde::Serialize;

use crate::Projections;
use crate::state::{ControllerState, RetentionDecl, SubjectState};
use crate::timeline::{AsOf, Stamp};

/// How long after its due date an item counts as `due` before it is `overdue`: a daily
/// retention run has had its chance by then.
pub const OVERDUE_AFTER_SECONDS: i64 = 86_400;

const SECOND_US: i64 = 1_000_000;
const DAY_US: i64 = 86_400 * SECOND_US;

/// The latest `relationship_ended` visible at `q` that still stands: no data was collected
/// under `contract` after it (by occurred time, then seq), which would be a new contract.
pub(crate) fn relationship_end(s: &SubjectState, q: &AsOf) -> Option<Stamp> {
    let (end, _) = s.relationship_ended.latest(q)?;
    let renewed = s
        .collected
        .visible(q)
        .any(|(st, col)| col.legal_basis == LegalBasis::Contract && (st.occurred, st.seq) > (end.occurred, end.seq));
    (!renewed).then_some(*end)
}

/// The retention clock of one register of one subject, as of `q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RegisterClock {
    /// The latest erasure covering the register (`data_erased` without a register, or with
    /// this one) when it was recorded after the register's last data event (by seq): the
    /// data is gone.
    pub erased: Option<Stamp>,
    /// The latest trigger event of the rule that counts: a collection into the register, a
    /// record of it closed, or the relationship's end — recorded after the latest covering
    /// erasure, if any (data collected again after an erasure starts a new clock).
    pub start: Option<Stamp>,
}

/// The registers the subject has data in as of `q`: collected into, a record of it closed,
/// or an erasure of it deferred.
pub(crate) fn data_registers<'a>(s: &'a SubjectState, q: &AsOf) -> BTreeSet<&'a Id> {
    let mut registers: BTreeSet<&Id> = s.collected.visible(q).map(|(_, col)| &col.register).collect();
    registers.extend(s.records_closed.visible(q).map(|(_, (reg, _))| reg));
    registers.extend(s.deferrals.visible(q).map(|(_, d)| &d.register));
    registers
}

/// The clock of `register` under a rule with `trigger`, as of `q`.
pub(crate) fn register_clock(s: &SubjectState, register: &Id, trigger: Trigger, q: &AsOf) -> RegisterClock {
    let data_seq = s
        .collected
        .visible(q)
        .filter(|(_, col)| &col.register == register)
        .map(|(st, _)| st.seq)
        .chain(s.rectified.visible(q).filter(|(_, (reg, _))| reg == register).map(|(st, _)| st.seq))
        .chain(s.records_closed.visible(q).filter(|(_, (reg, _))| reg == register).map(|(st, _)| st.seq))
        .chain(s.deferrals.visible(q).filter(|(_, d)| &d.register == register).map(|(st, _)| st.seq))
        .max();
    let erasure = s
        .erasure
        .visible(q)
        .filter(|(_, reg)| reg.as_ref().is_none_or(|r| r == register))
        .map(|(st, _)| *st)
        .max_by_key(|st| st.seq);
    let erased = erasure.filter(|e| data_seq.is_none_or(|d| e.seq > d));
    let after = erasure.map(|e| e.seq);
    let start = match trigger {
        Trigger::Collected => {
            latest_after(s.collected.visible(q).filter(|(_, col)| &col.register == register).map(|(st, _)| *st), after)
        }
        Trigger::RecordClosed => {
            latest_after(s.records_closed.visible(q).filter(|(_, (reg, _))| reg == register).map(|(st, _)| *st), after)
        }
        Trigger::RelationshipEnded => latest_after(relationship_end(s, q).into_iter(), after),
    };
    RegisterClock { erased, start }
}

/// The latest stamp by (occurred, seq) among those recorded after seq `after`.
fn latest_after(stamps: impl Iterator<Item = Stamp>, after: Option<u64>) -> Option<Stamp> {
    stamps.filter(|st| after.is_none_or(|a| st.seq > a)).max_by_key(|st| (st.occurred, st.seq))
}

/// The rule a plan item follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanRule {
    /// What starts the clock.
    pub trigger: Trigger,
    /// ISO 8601 period as declared.
    pub duration: String,
    /// Statute, when declared.
    pub statute: Option<String>,
    /// Financial-year end (`MM-DD`), when declared.
    pub financial_year_end: Option<MonthDay>,
    /// Extension after the duration, when declared.
    pub extend_to: Option<ExtendTo>,
    /// The `retention_rule_declared` in force.
    pub seq: u64,
}

/// What suspends an erasure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferredBy {
    /// An `erasure_deferred` for the register, naming this statute.
    Statute(String),
    /// A legal hold on the subject (placed, not released).
    LegalHold(Id),
}

/// Where a plan item stands at `now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PlanStatus {
    /// Due within [`OVERDUE_AFTER_SECONDS`] after `due_at`.
    Due {
        /// Seconds since `due_at`.
        due_for_seconds: i64,
    },
    /// Due for [`OVERDUE_AFTER_SECONDS`] or longer.
    Overdue {
        /// Seconds since `due_at`.
        overdue_by_seconds: i64,
        /// Whole days since `due_at` (rounded down, at least 1).
        overdue_by_days: i64,
    },
    /// Erasure suspended at `now`, whatever the due date.
    Deferred {
        /// The statute or hold.
        by: DeferredBy,
        /// Until when (`erasure_deferred.until`; none for a legal hold: until released).
        until: Option<Timestamp>,
        /// The `erasure_deferred` or `legal_hold_placed` event.
        seq: u64,
    },
    /// Due later, or the clock has not started (`due_at` absent: e.g. the relationship has
    /// not ended, or no record of the register was closed yet).
    NotDue {
        /// Seconds until `due_at`, when the clock has started.
        due_in_seconds: Option<i64>,
    },
    /// Already erased: a `data_erased` covering the register recorded after its data.
    Erased {
        /// The `data_erased` event.
        erased_seq: u64,
        /// Its occurred time.
        erased_at: Timestamp,
    },
}

impl PlanStatus {
    /// The status name as in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            PlanStatus::Due { .. } => "due",
            PlanStatus::Overdue { .. } => "overdue",
            PlanStatus::Deferred { .. } => "deferred",
            PlanStatus::NotDue { .. } => "not_due",
            PlanStatus::Erased { .. } => "erased",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            PlanStatus::Overdue { .. } => 0,
            PlanStatus::Due { .. } => 1,
            PlanStatus::Deferred { .. } => 2,
            PlanStatus::NotDue { .. } => 3,
            PlanStatus::Erased { .. } => 4,
        }
    }
}

/// One (controller, subject, register) of the retention plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// Controller.
    pub controller: Id,
    /// Subject pseudonym (never serialized; `subject_id` is its hex).
    #[serde(skip)]
    pub subject: SubjectId,
    /// Subject pseudonym, hex.
    pub subject_id: String,
    /// Register.
    pub register: Id,
    /// The rule in force.
    pub rule: PlanRule,
    /// Occurred time of the event that started the clock.
    pub clock_started: Option<Timestamp>,
    /// That event.
    pub clock_seq: Option<u64>,
    /// The first instant the data is due for erasure (kept through the microsecond before).
    pub due_at: Option<Timestamp>,
    /// Where it stands.
    #[serde(flatten)]
    pub status: PlanStatus,
}

/// A (controller, subject, register) a retention run should erase now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionCandidate {
    /// Controller.
    pub controller: Id,
    /// Subject pseudonym (never serialized; `subject_id` is its hex).
    #[serde(skip)]
    pub subject: SubjectId,
    /// Subject pseudonym, hex.
    pub subject_id: String,
    /// Register to erase.
    pub register: Id,
    /// The `retention_rule_declared` in force.
    pub rule_seq: u64,
    /// The event that started the clock.
    pub clock_seq: u64,
    /// When erasure became due.
    pub due_at: Timestamp,
}

/// Context of [`RetentionCandidate::id_input`], so its bytes cannot collide with another
/// deterministic identifier's input.
pub const CANDIDATE_ID_CONTEXT: &[u8] = b"kvitto retention run v1";

impl RetentionCandidate {
    /// Deterministic identifier input: `CANDIDATE_ID_CONTEXT ‖ 0x00 ‖ u32be len(controller) ‖
    /// controller ‖ subject (16 bytes) ‖ u32be len(register) ‖ register ‖ u64be rule_seq ‖
    /// u64be clock_seq`. The same candidate (same rule, same clock) always gives the same
    /// bytes; a new rule or a new clock start gives new ones. Hash it into an event id (e.g.
    /// the first 16 bytes of BLAKE3 as a UUID v8) so that re-running a retention run finds the
    /// event it already appended.
    pub fn id_input(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CANDIDATE_ID_CONTEXT.len() + 64);
        out.extend_from_slice(CANDIDATE_ID_CONTEXT);
        out.push(0);
        out.extend_from_slice(&(self.controller.as_str().len() as u32).to_be_bytes());
        out.extend_from_slice(self.controller.as_str().as_bytes());
        out.extend_from_slice(&self.subject.0);
        out.extend_from_slice(&(self.register.as_str().len() as u32).to_be_bytes());
        out.extend_from_slice(self.register.as_str().as_bytes());
        out.extend_from_slice(&self.rule_seq.to_be_bytes());
        out.extend_from_slice(&self.clock_seq.to_be_bytes());
        out
    }
}

impl PlanItem {
    /// The retention-run candidate: items `due` or `overdue` (never deferred or erased).
    pub fn candidate(&self) -> Option<RetentionCandidate> {
        if !matches!(self.status, PlanStatus::Due { .. } | PlanStatus::Overdue { .. }) {
            return None;
        }
        Some(RetentionCandidate {
            controller: self.controller.clone(),
            subject: self.subject,
            subject_id: self.subject_id.clone(),
            register: self.register.clone(),
            rule_seq: self.rule.seq,
            clock_seq: self.clock_seq?,
            due_at: self.due_at?,
        })
    }
}

/// The deferral active at `now` for `register`, by the rule the erasure check uses: a legal
/// hold on the subject first (the first active one by hold id; it has no end), else the
/// latest `erasure_deferred` of the register (a later one may shorten an earlier one) while
/// its `until` is after `now`.
fn deferral(s: &SubjectState, register: &Id, q: &AsOf, now: Timestamp) -> Option<PlanStatus> {
    for (hold_id, timeline) in &s.holds {
        if let Some((st, true)) = timeline.latest(q) {
            return Some(PlanStatus::Deferred { by: DeferredBy::LegalHold(hold_id.clone()), until: None, seq: st.seq });
        }
    }
    s.deferrals.visible(q).rfind(|(_, d)| &d.register == register).filter(|(_, d)| d.until > now).map(|(st, d)| {
        PlanStatus::Deferred { by: DeferredBy::Statute(d.statute.to_string()), until: Some(d.until), seq: st.seq }
    })
}

fn status(due_at: Option<Timestamp>, now: Timestamp) -> PlanStatus {
    let Some(due) = due_at else { return PlanStatus::NotDue { due_in_seconds: None } };
    let diff = now.as_micros() - due.as_micros();
    if diff < 0 {
        PlanStatus::NotDue { due_in_seconds: Some(-diff / SECOND_US) }
    } else if diff < OVERDUE_AFTER_SECONDS * SECOND_US {
        PlanStatus::Due { due_for_seconds: diff / SECOND_US }
    } else {
        PlanStatus::Overdue { overdue_by_seconds: diff / SECOND_US, overdue_by_days: diff / DAY_US }
    }
}

fn plan_rule(rule: &RetentionDecl, seq: u64) -> PlanRule {
    PlanRule {
        trigger: rule.trigger,
        duration: rule.duration.to_string(),
        statute: rule.statute.as_ref().map(|t| t.to_string()),
        financial_year_end: rule.financial_year_end,
        extend_to: rule.extend_to,
        seq,
    }
}

pub(crate) fn subject_plan(
    c: &ControllerState,
    subject: &SubjectId,
    s: &SubjectState,
    now: Timestamp,
    out: &mut Vec<PlanItem>,
) {
    let q = AsOf::at(now);
    for register in data_registers(s, &q) {
        let Some((rule_at, rule)) = c.retention.get(register).and_then(|t| t.latest(&q)) else { continue };
        let clock = register_clock(s, register, rule.trigger, &q);
        let due_at = clock.start.map(|st| rule.due_at(st.occurred));
        let status = match clock.erased {
            Some(e) => PlanStatus::Erased { erased_seq: e.seq, erased_at: e.occurred },
            None => deferral(s, register, &q, now).unwrap_or_else(|| status(due_at, now)),
        };
        out.push(PlanItem {
            controller: s.controller.clone(),
            subject: *subject,
            subject_id: subject.to_hex(),
            register: register.clone(),
            rule: plan_rule(rule, rule_at.seq),
            clock_started: clock.start.map(|st| st.occurred),
            clock_seq: clock.start.map(|st| st.seq),
            due_at,
            status,
        });
    }
}

/// Plan order: overdue (most overdue first), due, deferred (soonest end first, holds last),
/// not due (soonest first, unstarted clocks last), erased; ties by controller, subject,
/// register.
fn plan_order(a: &PlanItem, b: &PlanItem) -> Ordering {
    let key = |i: &PlanItem| -> (u8, Timestamp) {
        let t = match &i.status {
            PlanStatus::Deferred { until, .. } => until.unwrap_or(Timestamp::MAX),
            PlanStatus::Erased { erased_at, .. } => *erased_at,
            _ => i.due_at.unwrap_or(Timestamp::MAX),
        };
        (i.status.rank(), t)
    };
    key(a)
        .cmp(&key(b))
        .then_with(|| a.controller.cmp(&b.controller))
        .then_with(|| a.subject.cmp(&b.subject))
        .then_with(|| a.register.cmp(&b.register))
}

impl Projections {
    /// The retention plan at `now` for one controller (or all): one item per (controller,
    /// subject, register) with data and a retention rule in force, in plan order (overdue
    /// first, most overdue first; then due, deferred, not due, erased). Everything that has
    /// occurred by `now` counts, as the ledger knows it now. An unknown controller has an
    /// empty plan.
    pub fn retention_plan(&self, controller: Option<&Id>, now: Timestamp) -> Vec<PlanItem> {
        let mut out = Vec::new();
        for (subject, s) in &self.subjects {
            if controller.is_some_and(|c| c != &s.controller) {
                continue;
            }
            let Some(c) = self.controllers.get(&s.controller) else { continue };
            if c.retention.is_empty() {
                continue;
            }
            subject_plan(c, subject, s, now, &mut out);
        }
        out.sort_unstable_by(plan_order);
        out
    }

    /// What a retention run at `now` should erase: the plan's `due` and `overdue` items (never
    /// deferred or erased ones), in plan order.
    pub fn retention_candidates(&self, controller: Option<&Id>, now: Timestamp) -> Vec<RetentionCandidate> {
        self.retention_plan(controller, now).iter().filter_map(PlanItem::candidate).collect()
    }
}
