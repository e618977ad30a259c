//! Data subject requests and their Art 12(3) deadlines, the open-request list, and the check
//! the writer runs before a request step is appended.
//!
//! - Due one calendar month after receipt (`received + P1M` by [`IsoPeriod::add_to`]: same
//!   time of day, a day missing in the target month clamped to its last day, so a request
//!   received 2026-01-31T10:00Z is due 2026-02-28T10:00Z).
//! - A `rights_request_extended` that occurred no later than that first deadline extends it to
//!   three calendar months after receipt (`received + P3M`). One recorded later does not
//!   extend anything: the status says `extension_late: true` and the deadline stays.
//! - Fulfilled or rejected after the deadline: `fulfilled_late` / `rejected_late` with
//!   `late_by_days` (whole days, rounded up: one microsecond late is one day late).
//! - Open at `at`: `days_left` (rounded down) or, past the deadline, `overdue` with
//!   `overdue_by_days` (rounded up).

use std::cmp::Ordering;

use kvitto_core::{EventKind, Id, IsoPeriod, SubjectId, Timestamp};
use serde::Serialize;

use crate::Projections;
use crate::report::RequestStatus;
use crate::state::{RequestMark, SubjectState};
use crate::timeline::{AsOf, Stamp};

const DAY_US: i64 = 86_400_000_000;

fn months_later(t: Timestamp, months: u32) -> Timestamp {
    IsoPeriod { months, ..IsoPeriod::default() }.add_to(t)
}

/// Whole days in `us` microseconds, rounded up (`us ≥ 0`).
fn days_up(us: i64) -> i64 {
    (us + DAY_US - 1) / DAY_US
}

fn status_of(request_id: &Id, marks: &[&(Stamp, RequestMark)], at: Timestamp) -> RequestStatus {
    let received = marks.iter().find_map(|(st, m)| match m {
        RequestMark::Received(r) => Some((st.occurred, *r)),
        _ => None,
    });
    let first_deadline = received.map(|(t, _)| months_later(t, 1));
    let extensions: Vec<Timestamp> =
        marks.iter().filter(|(_, m)| matches!(m, RequestMark::Extended)).map(|(st, _)| st.occurred).collect();
    let extended = match first_deadline {
        Some(first) => extensions.iter().any(|t| *t <= first),
        None => !extensions.is_empty(),
    };
    let extension_late = !extended && !extensions.is_empty();
    let deadline = received.map(|(t, _)| if extended { months_later(t, 3) } else { months_later(t, 1) });
    let closing = marks.iter().find(|(_, m)| matches!(m, RequestMark::Fulfilled | RequestMark::Rejected));
    let closed_at = closing.map(|(st, _)| st.occurred);
    let late_by_days = closed_at
        .zip(deadline)
        .filter(|(closed, due)| closed > due)
        .map(|(closed, due)| days_up(closed.as_micros() - due.as_micros()));
    let status = match (closing.map(|(_, m)| m), late_by_days.is_some()) {
        (Some(RequestMark::Fulfilled), false) => "fulfilled",
        (Some(RequestMark::Fulfilled), true) => "fulfilled_late",
        (Some(_), false) => "rejected",
        (Some(_), true) => "rejected_late",
        (None, _) if extended => "extended",
        (None, _) => "open",
    };
    let open = closing.is_none();
    let overdue = open && deadline.is_some_and(|d| d < at);
    RequestStatus {
        request_id: request_id.clone(),
        right: received.map(|(_, r)| r),
        status,
        received: received.map(|(t, _)| t),
        deadline,
        overdue,
        seqs: marks.iter().map(|(st, _)| st.seq).collect(),
        first_deadline,
        extended,
        extension_late,
        closed_at,
        late_by_days,
        days_left: deadline.filter(|d| open && *d >= at).map(|d| (d.as_micros() - at.as_micros()) / DAY_US),
        overdue_by_days: deadline.filter(|_| overdue).map(|d| days_up(at.as_micros() - d.as_micros())),
    }
}

impl SubjectState {
    /// Every request's status as of `q` (deadlines measured against `q.at`).
    pub fn requests(&self, q: &AsOf) -> Vec<RequestStatus> {
        let mut out = Vec::new();
        for (id, timeline) in &self.requests {
            let marks: Vec<_> = timeline.visible(q).collect();
            if marks.is_empty() {
                continue;
            }
            out.push(status_of(id, &marks, q.at));
        }
        out
    }

    /// Why `kind` must not be appended to this subject, when it is a request step that does
    /// not follow from the steps folded so far; `None` when it may (and for every other
    /// kind). Checked against everything folded, whatever its times: the writer folds the
    /// events already in flight first. The rules:
    /// - `rights_request_extended`, `_fulfilled`, `_rejected` must name a `request_id` this
    ///   subject received;
    /// - a request is fulfilled or rejected once: no step after it is closed;
    /// - a request is extended at most once (Art 12(3): by up to two further months);
    /// - a `rights_request_received` must not reuse a `request_id` already received.
    pub fn request_step_problem(&self, kind: &EventKind) -> Option<String> {
        request_step_problem(Some(self), kind)
    }
}

/// [`SubjectState::request_step_problem`] for a subject that may have no state yet (`None`:
/// nothing folded for it, so every step but `rights_request_received` names a request it
/// never received).
pub fn request_step_problem(state: Option<&SubjectState>, kind: &EventKind) -> Option<String> {
    let (request_id, verb) = match kind {
        EventKind::RightsRequestReceived { request_id, .. } => (request_id, "received"),
        EventKind::RightsRequestExtended { request_id, .. } => (request_id, "extended"),
        EventKind::RightsRequestFulfilled { request_id } => (request_id, "fulfilled"),
        EventKind::RightsRequestRejected { request_id, .. } => (request_id, "rejected"),
        _ => return None,
    };
    let marks = state.and_then(|s| s.requests.get(request_id)).map_or(&[][..], |t| t.all());
    let received = marks.iter().find(|(_, m)| matches!(m, RequestMark::Received(_)));
    if verb == "received" {
        return received.map(|(st, _)| {
            format!(
                "request_id {request_id} was already received for this subject (seq {}); a new request needs a new request_id",
                st.seq
            )
        });
    }
    if received.is_none() {
        return Some(format!(
            "{}: request_id {request_id} was never received for this subject (append rights_request_received with this request_id first)",
            kind.name()
        ));
    }
    let closed = marks.iter().find(|(_, m)| matches!(m, RequestMark::Fulfilled | RequestMark::Rejected));
    if let Some((st, m)) = closed {
        let how = if matches!(m, RequestMark::Fulfilled) { "fulfilled" } else { "rejected" };
        return Some(format!(
            "{}: request {request_id} is already closed ({how}, seq {}); a closed request cannot be {verb}",
            kind.name(),
            st.seq
        ));
    }
    let extension = marks.iter().find(|(_, m)| matches!(m, RequestMark::Extended));
    if let (Some((st, _)), "extended") = (extension, verb) {
        return Some(format!(
            "rights_request_extended: request {request_id} was already extended (seq {}); Art 12(3) allows one extension, by up to two further months",
            st.seq
        ));
    }
    None
}

/// One request in the request list (`kvitto requests`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestListItem {
    /// Controller.
    pub controller: Id,
    /// Subject pseudonym (never serialized; `subject_id` is its hex).
    #[serde(skip)]
    pub subject: SubjectId,
    /// Subject pseudonym, hex.
    pub subject_id: String,
    /// The request, its deadline and where it stands.
    #[serde(flatten)]
    pub request: RequestStatus,
}

fn list_order(a: &RequestListItem, b: &RequestListItem) -> Ordering {
    let key = |i: &RequestListItem| (!i.request.overdue, i.request.deadline.unwrap_or(Timestamp::MAX));
    key(a)
        .cmp(&key(b))
        .then_with(|| a.controller.cmp(&b.controller))
        .then_with(|| a.subject.cmp(&b.subject))
        .then_with(|| a.request.request_id.cmp(&b.request.request_id))
}

impl Projections {
    /// Open requests (`open` or `extended`) at `now` for one controller (or all): overdue
    /// first, then by deadline (soonest first). Everything that occurred by `now` counts.
    pub fn requests(&self, controller: Option<&Id>, now: Timestamp) -> Vec<RequestListItem> {
        self.request_list(controller, now, false)
    }

    /// Like [`Projections::requests`], closed requests included (same order; a closed
    /// request is never overdue).
    pub fn all_requests(&self, controller: Option<&Id>, now: Timestamp) -> Vec<RequestListItem> {
        self.request_list(controller, now, true)
    }

    fn request_list(&self, controller: Option<&Id>, now: Timestamp, closed_too: bool) -> Vec<RequestListItem> {
        let q = AsOf::at(now);
        let mut out = Vec::new();
        for (subject, s) in &self.subjects {
            if s.requests.is_empty() || controller.is_some_and(|c| c != &s.controller) {
                continue;
            }
            for request in s.requests(&q) {
                if closed_too || request.closed_at.is_none() {
                    out.push(RequestListItem {
                        controller: s.controller.clone(),
                        subject: *subject,
                        subject_id: subject.to_hex(),
                        request,
                    });
                }
            }
        }
        out.sort_unstable_by(list_order);
        out
    }
}
