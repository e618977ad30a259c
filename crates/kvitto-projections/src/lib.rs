//! kvitto-projections: pure folds over events — consent state as of any instant, the
//! processing register, the processor registry, retention inputs, rights requests — and the
//! answers built on them: [`Projections::consent`], [`Projections::may_process`], the Art 15
//! access report and the Art 30 record of processing.
//!
//! **Architecture invariant:** every projection is `apply(&mut self, &Event)` over events in
//! seq order, idempotent per seq; a rebuild from seq 0 equals the incrementally maintained
//! state, and an answer as of (T, K) equals a fresh fold over exactly the events with
//! `occurred_at ≤ T` and `recorded_at ≤ K`.
#![forbid(unsafe_code)]

pub mod audit;
mod decision;
mod erasure;
mod report;
pub mod requests;
pub mod retention;
mod state;
mod timeline;

use std::collections::HashMap;

use kvitto_core::{Event, Id, SubjectId, SubjectMap, Timestamp};

pub use audit::{AuditOptions, CHECKS, Check, Finding, Severity};
pub use decision::{ConsentAnswer, ConsentInterval, ConsentState, Decision, STORAGE_PURPOSE, covers};
pub use erasure::ErasureBlocker;
pub use report::{
    AccessPurpose, AccessReport, ControllerIdentity, HoldStatus, ProcessingReport, RecordGap, RequestStatus,
    RestrictionStep, add_period,
};
pub use requests::{RequestListItem, request_step_problem};
pub use retention::{DeferredBy, OVERDUE_AFTER_SECONDS, PlanItem, PlanRule, PlanStatus, RetentionCandidate};
pub use state::{
    Collected, ConsentMark, ControllerDecl, ControllerState, Deferral, ProcessorDecl, PurposeDecl, RequestMark,
    RetentionDecl, Shared, SubjectState,
};
pub use state::{STATE_LAYOUT, controller_difference, subject_difference};
pub use timeline::{AsOf, FirstSeen, Stamp, Timeline};

/// Why a query cannot be answered (as opposed to an answer of "no").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The controller has no events at all.
    #[error("unknown controller {0}: it has declared nothing and has no events")]
    UnknownController(Id),
    /// The subject has no events under this controller.
    #[error("no events for this subject under controller {controller}")]
    UnknownSubject {
        /// The controller asked about.
        controller: Id,
    },
    /// The subject has events, but none had occurred (or been recorded) by the question's
    /// point of view: as of then the ledger knew nothing of it (DECISIONS.md rule 1).
    #[error(
        "no events for this subject under controller {controller} as of {at} (known at {known_at}): its first \
         occurred at {first} and was recorded at {first_recorded}"
    )]
    NoEventsYet {
        /// The controller asked about.
        controller: Id,
        /// The occurred-time horizon asked about.
        at: Timestamp,
        /// The recorded-time horizon asked about.
        known_at: Timestamp,
        /// When the subject's first event occurred.
        first: Timestamp,
        /// When it was recorded.
        first_recorded: Timestamp,
    },
    /// The purpose is neither declared by the controller nor named in the subject's events.
    #[error("unknown purpose {purpose}: controller {controller} never declared it")]
    UnknownPurpose {
        /// The controller.
        controller: Id,
        /// The purpose.
        purpose: Id,
    },
}

/// What one `apply` changed (for coalesced persistence).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// The controller's state changed.
    pub controller: Option<Id>,
    /// The subject's state changed.
    pub subject: Option<SubjectId>,
}

/// All projections of one ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projections {
    /// Last seq folded in order (the watermark).
    pub last_seq: Option<u64>,
    /// Per controller.
    pub controllers: HashMap<Id, ControllerState>,
    /// Per data subject.
    pub subjects: SubjectMap<SubjectState>,
}

impl Projections {
    /// Folds one event. Events at or below the watermark are ignored, and each state skips
    /// seqs it has already applied, so replays are harmless.
    pub fn apply(&mut self, e: &Event) -> Touched {
        self.apply_owned(e.clone())
    }

    /// Like [`Projections::apply`], moving the event's fields into the state (the fold's hot
    /// path: the writer and rebuilds own their events).
    pub fn apply_owned(&mut self, e: Event) -> Touched {
        let mut touched = Touched::default();
        if self.last_seq.is_some_and(|s| e.seq <= s) {
            return touched;
        }
        self.last_seq = Some(e.seq);
        if e.kind.scope() == kvitto_core::Scope::Ledger {
            // The ledger's own bookkeeping: no controller's or subject's state.
            return touched;
        }
        let (controller, new) = match self.controllers.get_mut(&e.controller) {
            Some(c) => (c, false),
            None => (self.controllers.entry(e.controller.clone()).or_default(), true),
        };
        // A controller first seen is a change even when the event changes nothing else:
        // it makes the controller known to queries.
        if controller.apply(&e) || new {
            touched.controller = Some(e.controller.clone());
        }
        if let Some(link) = e.subject {
            let subject = self.subjects.entry(link.subject).or_insert_with(|| SubjectState::new(&e));
            if subject.apply_owned(e) {
                touched.subject = Some(link.subject);
            }
        }
        touched
    }

    /// A fresh fold over `events`.
    pub fn rebuild<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut p = Self::default();
        for e in events {
            p.apply(e);
        }
        p
    }

    fn controller(&self, controller: &Id) -> Result<&ControllerState, QueryError> {
        self.controllers.get(controller).ok_or_else(|| QueryError::UnknownController(controller.clone()))
    }

    fn subject(&self, controller: &Id, subject: &SubjectId) -> Result<(&ControllerState, &SubjectState), QueryError> {
        let c = self.controller(controller)?;
        match self.subjects.get(subject) {
            Some(s) if &s.controller == controller => Ok((c, s)),
            _ => Err(QueryError::UnknownSubject { controller: controller.clone() }),
        }
    }

    /// [`Projections::subject`] as of `q`: before the subject's first event is visible (it had
    /// not occurred, or the ledger did not know it yet) the answer is rule 1's error, the same
    /// for `may_process`, `consent` and `access_report` (docs/DECISIONS.md).
    fn subject_as_of(
        &self,
        controller: &Id,
        subject: &SubjectId,
        q: &AsOf,
    ) -> Result<(&ControllerState, &SubjectState), QueryError> {
        let (c, s) = self.subject(controller, subject)?;
        if s.seen.first_visible(q).is_none() {
            return Err(QueryError::NoEventsYet {
                controller: controller.clone(),
                at: q.at,
                known_at: q.known_at,
                first: s.first.occurred,
                first_recorded: s.first.recorded,
            });
        }
        Ok((c, s))
    }
}
