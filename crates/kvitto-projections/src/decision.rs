//! Consent state at any instant and the "may I process?" decision (docs/DECISIONS.md).

use kvitto_core::{Id, LegalBasis, SubjectId, Timestamp};
use serde::Serialize;

use crate::retention::{register_clock, relationship_end};
use crate::state::{ConsentMark, ControllerState, SubjectState};
use crate::timeline::{AsOf, Stamp};
use crate::{Projections, QueryError};

/// The purpose that stays allowed while processing is restricted (Art 18(2): storage only).
pub const STORAGE_PURPOSE: &str = "storage";

/// Whether an objection to `parent` covers `purpose`: the same id, or `parent` followed by
/// one of `-._:` (so an objection to `marketing` covers `marketing-profiling` and
/// `marketing.sms`, Art 21(2)–(3)).
pub fn covers(parent: &Id, purpose: &Id) -> bool {
    let (p, q) = (parent.as_str(), purpose.as_str());
    q == p || (q.len() > p.len() && q.starts_with(p) && matches!(q.as_bytes()[p.len()], b'-' | b'.' | b'_' | b':'))
}

/// Consent state of one purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Nothing recorded.
    None,
    /// Given and not withdrawn.
    Granted,
    /// Withdrawn.
    Withdrawn,
    /// Objected to (Art 21).
    Objected,
}

impl ConsentState {
    /// The name used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::None => "none",
            ConsentState::Granted => "granted",
            ConsentState::Withdrawn => "withdrawn",
            ConsentState::Objected => "objected",
        }
    }
}

/// One interval of a purpose's consent history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentInterval {
    /// State during the interval.
    pub state: ConsentState,
    /// Start (occurred time of the deciding event).
    pub since: Timestamp,
    /// End (the next decision), if any.
    pub until: Option<Timestamp>,
    /// The deciding event.
    pub seq: u64,
    /// Notice in force when consent was given.
    pub notice_version: Option<Id>,
    /// Set when an objection to a broader purpose decided.
    pub via_objection_to: Option<Id>,
}

/// The answer to "what was the consent state of this purpose?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentAnswer {
    /// The purpose.
    pub purpose: Id,
    /// The state as of the query.
    pub state: ConsentState,
    /// Since when (occurred time of the deciding event).
    pub since: Option<Timestamp>,
    /// The deciding event.
    pub seq: Option<u64>,
    /// Notice version consented to, when granted.
    pub notice_version: Option<Id>,
    /// Why the state is `none` when that needs saying (nothing recorded for the purpose).
    pub note: Option<String>,
    /// The basis the controller declared for the purpose as of the query (`None`: not
    /// declared). On a basis other than consent, `objected` is an Art 21 objection and
    /// `withdrawn` an opt-out, not a consent state.
    pub legal_basis: Option<LegalBasis>,
    /// Every interval up to the query point.
    pub history: Vec<ConsentInterval>,
}

impl ConsentAnswer {
    /// The state in words that fit the purpose's basis: a consent state on the consent basis
    /// (or an undeclared purpose); on another basis `objected (Art 21)`, `opted out`,
    /// `consented (not needed)` or `none`. The CLI table and the HTML report both print it.
    pub fn state_label(&self) -> &'static str {
        match (self.legal_basis, self.state) {
            (None | Some(LegalBasis::Consent), state) => state.as_str(),
            (Some(_), ConsentState::Objected) => "objected (Art 21)",
            (Some(_), ConsentState::Withdrawn) => "opted out",
            (Some(_), ConsentState::Granted) => "consented (not needed)",
            (Some(_), ConsentState::None) => "none",
        }
    }
}

/// The answer to "may I process this subject's data for this purpose?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Yes or no.
    pub allowed: bool,
    /// The rule that decided, in words.
    pub reason: String,
    /// The event that decided, when one did.
    pub seq: Option<u64>,
}

pub(crate) fn consent_marks<'a>(
    s: &'a SubjectState,
    purpose: &Id,
    q: &AsOf,
) -> Vec<(Stamp, &'a ConsentMark, Option<&'a Id>)> {
    let mut marks: Vec<(Stamp, &ConsentMark, Option<&Id>)> = Vec::new();
    for (p, timeline) in &s.consent {
        if p == purpose {
            marks.extend(timeline.visible(q).map(|(st, m)| (*st, m, None)));
        } else if covers(p, purpose) {
            marks.extend(
                timeline
                    .visible(q)
                    .filter(|(_, m)| matches!(m, ConsentMark::Objected))
                    .map(|(st, m)| (*st, m, Some(p))),
            );
        }
    }
    marks.sort_by_key(|(st, _, _)| (st.occurred, st.seq));
    marks
}

fn state_of(m: &ConsentMark) -> ConsentState {
    match m {
        ConsentMark::Given { .. } => ConsentState::Granted,
        ConsentMark::Withdrawn => ConsentState::Withdrawn,
        ConsentMark::Objected => ConsentState::Objected,
    }
}

fn history(s: &SubjectState, purpose: &Id, q: &AsOf) -> Vec<ConsentInterval> {
    let marks = consent_marks(s, purpose, q);
    let mut out: Vec<ConsentInterval> = Vec::with_capacity(marks.len());
    for (st, m, via) in marks {
        if let Some(prev) = out.last_mut() {
            prev.until = Some(st.occurred);
        }
        out.push(ConsentInterval {
            state: state_of(m),
            since: st.occurred,
            until: None,
            seq: st.seq,
            notice_version: match m {
                ConsentMark::Given { notice_version } => notice_version.clone(),
                _ => None,
            },
            via_objection_to: via.cloned(),
        });
    }
    out
}

fn answer(c: &ControllerState, s: &SubjectState, purpose: &Id, q: &AsOf) -> ConsentAnswer {
    let history = history(s, purpose, q);
    let legal_basis = c.purposes.get(purpose).and_then(|t| t.latest(q)).map(|(_, d)| d.legal_basis);
    // Before the subject's first visible event there is no answer (rule 1's error).
    let note = if history.is_empty() {
        Some("no consent, withdrawal or objection recorded for this purpose".into())
    } else {
        None
    };
    match history.last() {
        Some(last) => ConsentAnswer {
            purpose: purpose.clone(),
            state: last.state,
            since: Some(last.since),
            seq: Some(last.seq),
            notice_version: last.notice_version.clone(),
            note,
            legal_basis,
            history,
        },
        None => ConsentAnswer {
            purpose: purpose.clone(),
            state: ConsentState::None,
            since: None,
            seq: None,
            notice_version: None,
            note,
            legal_basis,
            history,
        },
    }
}

impl Projections {
    /// Consent state per purpose as of `q`: one purpose, or every purpose the controller
    /// declared plus any the subject's events name.
    pub fn consent(
        &self,
        controller: &Id,
        subject: &SubjectId,
        purpose: Option<&Id>,
        q: &AsOf,
    ) -> Result<Vec<ConsentAnswer>, QueryError> {
        let (c, s) = self.subject_as_of(controller, subject, q)?;
        let purposes: Vec<Id> = match purpose {
            Some(p) => {
                if !c.purposes.contains_key(p) && !s.consent.contains_key(p) {
                    return Err(QueryError::UnknownPurpose { controller: controller.clone(), purpose: p.clone() });
                }
                vec![p.clone()]
            }
            None => {
                // Purposes where consent or objection matters (consent, legitimate interests)
                // in force as of `q`, and any purpose the subject's marks name by then.
                let declared = c
                    .purposes
                    .iter()
                    .filter(|(_, t)| {
                        t.latest(q).is_some_and(|(_, d)| {
                            matches!(d.legal_basis, LegalBasis::Consent | LegalBasis::LegitimateInterests)
                        })
                    })
                    .map(|(p, _)| p);
                let marked = s.consent.iter().filter(|(_, t)| t.latest(q).is_some()).map(|(p, _)| p);
                let mut all: Vec<Id> = declared.chain(marked).cloned().collect();
                all.sort();
                all.dedup();
                all
            }
        };
        Ok(purposes.iter().map(|p| answer(c, s, p, q)).collect())
    }

    /// May the controller process this subject's data for `purpose` as of `q`? The rules,
    /// in order, are in docs/DECISIONS.md.
    pub fn may_process(
        &self,
        controller: &Id,
        subject: &SubjectId,
        purpose: &Id,
        q: &AsOf,
    ) -> Result<Decision, QueryError> {
        // Rule 1 as of the question: before the subject's first event, nothing is known.
        let (c, s) = self.subject_as_of(controller, subject, q)?;
        Ok(decide(c, s, purpose, q))
    }
}

fn deny(reason: String, seq: Option<u64>) -> Decision {
    Decision { allowed: false, reason, seq }
}

fn decide(c: &ControllerState, s: &SubjectState, purpose: &Id, q: &AsOf) -> Decision {
    let restricted = s.restriction.latest(q).and_then(|(st, r)| r.then_some(*st));
    // 1. The purpose must be declared — except storage while restricted (Art 18(2)), which is
    //    answerable whether or not the controller declared a purpose named `storage`.
    let Some((decl_at, decl)) = c.purposes.get(purpose).and_then(|t| t.latest(q)) else {
        if let (Some(st), true) = (restricted, purpose.as_str() == STORAGE_PURPOSE) {
            let erased_all = s.erasure.visible(q).rfind(|(_, reg)| reg.is_none()).map(|(st, _)| *st);
            if let Some(e) = erased_all
                && !s.collected.visible(q).any(|(c_at, _)| (c_at.occurred, c_at.seq) > (e.occurred, e.seq))
            {
                return deny("all of the subject's data was erased: nothing is left to store".into(), Some(e.seq));
            }
            return Decision {
                allowed: true,
                reason: "storage of restricted data (Art 18(2)); no purpose named storage is declared".into(),
                seq: Some(st.seq),
            };
        }
        return deny(format!("purpose {purpose} is not declared by {}", s.controller), None);
    };
    // 2. Erasure of everything, or of the purpose's register, ends processing — unless data
    //    was collected into that register again afterwards.
    let erased = s
        .erasure
        .visible(q)
        .rfind(|(_, reg)| reg.as_ref().is_none_or(|r| r == &decl.register))
        .map(|(st, reg)| (*st, reg.clone()));
    if let Some((st, reg)) = erased {
        let recollected = s
            .collected
            .visible(q)
            .any(|(c_at, col)| (c_at.occurred, c_at.seq) > (st.occurred, st.seq) && col.register == decl.register);
        if !recollected {
            let what = reg.map_or("all of the subject's data".to_string(), |r| format!("register {r}"));
            return deny(format!("{what} was erased"), Some(st.seq));
        }
    }
    // 3. After the relationship ended: contract purposes end; legal-obligation purposes last
    //    until their register's retention is due; the other bases are unaffected.
    if let Some(end) = relationship_end(s, q) {
        match decl.legal_basis {
            LegalBasis::Contract => {
                return deny(
                    format!(
                        "the relationship ended at {}: {purpose} relies on the contract (Art 6(1)(b)), which no longer applies",
                        end.occurred
                    ),
                    Some(end.seq),
                );
            }
            LegalBasis::LegalObligation => {
                if let Some((rule_at, rule)) = c.retention.get(&decl.register).and_then(|t| t.latest(q)) {
                    let clock = register_clock(s, &decl.register, rule.trigger, q);
                    if let Some(start) = clock.start {
                        let due = rule.due_at(start.occurred);
                        if due <= q.at {
                            return deny(
                                format!(
                                    "the retention of register {} ran out at {due} (rule seq {}): no legal obligation requires {purpose} any more",
                                    decl.register, rule_at.seq
                                ),
                                Some(start.seq),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // 4. While restricted (Art 18), only storage is allowed.
    if let Some(st) = restricted {
        if purpose.as_str() != STORAGE_PURPOSE {
            return deny("processing is restricted (Art 18): only storage is allowed".into(), Some(st.seq));
        }
        return Decision { allowed: true, reason: "storage of restricted data (Art 18(2))".into(), seq: Some(st.seq) };
    }
    // 5. The legal basis.
    let latest = consent_marks(s, purpose, q).pop();
    match decl.legal_basis {
        LegalBasis::Consent => match latest {
            Some((st, ConsentMark::Given { .. }, _)) => {
                Decision { allowed: true, reason: format!("consent given for {purpose}"), seq: Some(st.seq) }
            }
            Some((st, ConsentMark::Withdrawn, _)) => deny(format!("consent for {purpose} was withdrawn"), Some(st.seq)),
            Some((st, ConsentMark::Objected, via)) => {
                deny(format!("the subject objected to {}", via.unwrap_or(purpose)), Some(st.seq))
            }
            None => deny(format!("{purpose} requires consent and none was given"), Some(decl_at.seq)),
        },
        LegalBasis::LegitimateInterests => match latest {
            Some((st, ConsentMark::Objected, via)) => {
                deny(format!("the subject objected to {} (Art 21)", via.unwrap_or(purpose)), Some(st.seq))
            }
            Some((st, ConsentMark::Withdrawn, _)) => {
                deny(format!("the subject opted out of {purpose} (recorded as a withdrawal)"), Some(st.seq))
            }
            _ => Decision {
                allowed: true,
                reason: format!("legitimate interests (declared for {purpose}) and no objection"),
                seq: Some(decl_at.seq),
            },
        },
        // A recorded objection or opt-out of the purpose is honoured on contract and public
        // task too (consent and may-process agree); a legal obligation or someone's vital
        // interests are not something the subject can opt out of (docs/DECISIONS.md).
        basis @ (LegalBasis::LegalObligation | LegalBasis::VitalInterests) => match latest {
            Some((st, ConsentMark::Objected | ConsentMark::Withdrawn, via)) => Decision {
                allowed: true,
                reason: format!(
                    "{basis} (declared for {purpose}); the subject's objection to {} does not override it",
                    via.unwrap_or(purpose)
                ),
                seq: Some(st.seq),
            },
            _ => {
                Decision { allowed: true, reason: format!("{basis} (declared for {purpose})"), seq: Some(decl_at.seq) }
            }
        },
        basis => match latest {
            Some((st, ConsentMark::Objected, via)) => deny(
                format!(
                    "the subject objected to {} ({basis} does not override a recorded objection)",
                    via.unwrap_or(purpose)
                ),
                Some(st.seq),
            ),
            Some((st, ConsentMark::Withdrawn, _)) => deny(
                format!("the subject opted out of {purpose} ({basis} does not override a recorded opt-out)"),
                Some(st.seq),
            ),
            _ => {
                Decision { allowed: true, reason: format!("{basis} (declared for {purpose})"), seq: Some(decl_at.seq) }
            }
        },
    }
}
