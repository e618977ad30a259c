//! The retention engine's library side: the plan from the projections, and a run that erases
//! what is due through the same append path as [`Ledger::erase`], one `data_erased` per
//! (subject, register) with a deterministic event id, so a re-run (or a run cut short and
//! started again) records nothing twice.

use kvitto_core::{Draft, EventId, EventKind, Id, Text, Timestamp};
use kvitto_projections::{PlanItem, RetentionCandidate};

use crate::{AppendError, Ledger, ReadError, Receipt};

/// Erasures a retention run sends in one batch.
const RUN_BATCH: usize = 256;

/// What one retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRun {
    /// Erasures recorded by this run (with the rule's register and the receipt).
    pub erased: Vec<(RetentionCandidate, Receipt)>,
    /// Candidates an earlier run had already erased (same event id: the original receipt).
    pub already: Vec<(RetentionCandidate, Receipt)>,
    /// Candidates refused at append time (a hold or deferral recorded since the plan), why.
    pub refused: Vec<(RetentionCandidate, String)>,
}

/// The event id of the erasure a retention run records for `c`: UUID v8 from
/// BLAKE3(`c.id_input()`), the same on every run.
pub fn retention_event_id(c: &RetentionCandidate) -> EventId {
    let digest = blake3::hash(&c.id_input());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_bytes()[..16]);
    EventId(uuid::Builder::from_custom_bytes(b).into_uuid())
}

/// Answers `f` from the projections for one controller (which must be known) or all.
fn for_controller<T>(
    ledger: &Ledger,
    controller: Option<&str>,
    f: impl FnOnce(&kvitto_projections::Projections, Option<&Id>) -> T,
) -> Result<T, ReadError> {
    let c = controller
        .map(|c| Id::new(c).map_err(|message| ReadError::BadQuery { field: "controller", message }))
        .transpose()?;
    let p = ledger
        .inner
        .shared
        .projections
        .read()
        .map_err(|_| ReadError::Storage(crate::StorageError::lock("projections")))?;
    if let Some(c) = &c
        && !p.controllers.contains_key(c)
    {
        return Err(ReadError::UnknownController(c.to_string()));
    }
    Ok(f(&p, c.as_ref()))
}

impl Ledger {
    /// Per subject and register with a declared rule: due, overdue (by how long), deferred
    /// (until when, by which statute or hold), not due, or erased — overdue first.
    pub fn retention_plan(&self, controller: Option<&str>, now: Timestamp) -> Result<Vec<PlanItem>, ReadError> {
        for_controller(self, controller, |p, c| p.retention_plan(c, now))
    }

    /// Erases everything due at `now` (and not deferred), each as a `data_erased` of the
    /// rule's register recorded with the rule that caused it. `now` may lie in the past (a
    /// run that catches up), never in the future: that would erase data not yet due. A
    /// register that received data after the event that started its clock (a record still
    /// open, a collection after the plan's `now`) is left alone: its key would take that data.
    pub async fn retention_run(&self, controller: Option<&str>, now: Timestamp) -> Result<RetentionRun, ReadError> {
        let real = Timestamp::now();
        if now > real {
            return Err(ReadError::BadQuery {
                field: "now",
                message: format!(
                    "{} is in the future: a retention run erases only what is due by now ({})",
                    now.to_rfc3339(),
                    real.to_rfc3339()
                ),
            });
        }
        let candidates: Vec<RetentionCandidate> = {
            let plan = self.retention_plan(controller, now)?;
            let p = self
                .inner
                .shared
                .projections
                .read()
                .map_err(|_| ReadError::Storage(crate::StorageError::lock("projections")))?;
            plan.iter()
                .filter_map(PlanItem::candidate)
                .filter(|c| {
                    let Some(st) = p.subjects.get(&c.subject) else { return false };
                    let newer =
                        st.collected.all().iter().any(|(s, col)| col.register == c.register && s.seq > c.clock_seq)
                            || st.rectified.all().iter().any(|(s, (r, _))| *r == c.register && s.seq > c.clock_seq);
                    !newer
                })
                .collect()
        };
        let mut run = RetentionRun::default();
        let committed = self.len();
        // In batches: one commit, one pending record and one rewrite per vault segment for
        // many erasures. A batch is all or nothing, so a candidate refused (a hold recorded
        // since the plan) is taken out and the rest sent again.
        let mut drafts = Vec::with_capacity(candidates.len());
        for c in candidates {
            let reason = format!(
                "retention: register {} due {} under the rule of seq {} (clock started by seq {})",
                c.register,
                c.due_at.to_rfc3339(),
                c.rule_seq,
                c.clock_seq
            );
            let reason = Text::new(reason).map_err(|message| ReadError::BadQuery { field: "reason", message })?;
            let Some(subject_ref) = self.subject_ref(&c.subject) else {
                // No reference left: a whole-customer erasure got there first.
                continue;
            };
            let draft = Draft {
                controller: c.controller.clone(),
                subject: Some(subject_ref),
                occurred_at: None,
                event_id: Some(retention_event_id(&c)),
                actor: Some(
                    Id::new("kvitto-retention").map_err(|message| ReadError::BadQuery { field: "actor", message })?,
                ),
                details: None,
                kind: EventKind::DataErased { register: Some(c.register.clone()), reason },
            };
            drafts.push((c, draft));
        }
        let mut rest = drafts.into_iter().peekable();
        while rest.peek().is_some() {
            let mut batch: Vec<(RetentionCandidate, Draft)> = rest.by_ref().take(RUN_BATCH).collect();
            while !batch.is_empty() {
                match self.append_batch(batch.iter().map(|(_, d)| d.clone()).collect()).await {
                    Ok(receipts) => {
                        for ((c, _), r) in batch.drain(..).zip(receipts) {
                            if r.seq < committed { run.already.push((c, r)) } else { run.erased.push((c, r)) }
                        }
                    }
                    Err(AppendError::ErasureBlocked { index, why }) if index < batch.len() => {
                        let (c, _) = batch.remove(index);
                        run.refused.push((c, why));
                    }
                    Err(e) => return Err(ReadError::Append(Box::new(e))),
                }
            }
        }
        Ok(run)
    }

    /// The external reference of a subject while its key file exists. The vault's copy was
    /// written with the subject's first event, perhaps before the input rules: stored rules.
    pub(crate) fn subject_ref(&self, s: &kvitto_core::SubjectId) -> Option<kvitto_core::ExternalRef> {
        self.inner.store.vault().get(s).and_then(|k| kvitto_core::ExternalRef::stored(k.external_ref).ok())
    }
}

impl Ledger {
    /// Rights requests with their Art 12(3) deadlines as of `now`, overdue first: the open
    /// ones, or every one with `all`.
    pub fn requests(
        &self,
        controller: Option<&str>,
        now: Timestamp,
        all: bool,
    ) -> Result<Vec<kvitto_projections::RequestListItem>, ReadError> {
        for_controller(self, controller, |p, c| if all { p.all_requests(c, now) } else { p.requests(c, now) })
    }
}
