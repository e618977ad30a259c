//! `Ledger::audit`: the ledger verified first (K01), then checks K02–K15 over the projections
//! (docs/AUDIT.md). The report's JSON form is `kvitto-audit/1`.

use kvitto_core::{Id, Timestamp};
use kvitto_projections::{AuditOptions, CHECKS, Check, Finding, Severity};
use serde::Serialize;

use crate::{Ledger, ReadError};

/// The audit report's format id (bumped when a field changes meaning or goes away).
pub const AUDIT_FORMAT: &str = "kvitto-audit/1";

/// How many findings of one check one controller has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    /// Check id.
    pub check: &'static str,
    /// Controller (`None` for K01, which concerns the whole ledger).
    pub controller: Option<Id>,
    /// Number of findings.
    pub count: usize,
}

/// What `verify` said, as the audit's first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// Every check of `verify` passed.
    pub ok: bool,
    /// Events verified.
    pub events: u64,
    /// The first failure, in words, when not ok.
    pub failure: Option<String>,
}

/// The audit of one controller, or of all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// [`AUDIT_FORMAT`].
    pub format: &'static str,
    /// The ledger's origin.
    pub origin: String,
    /// The controller audited (`None`: all).
    pub controller: Option<Id>,
    /// The audit's point in time.
    pub now: Timestamp,
    /// K13's threshold, hours.
    pub late_after_hours: i64,
    /// K10's window, days.
    pub notify_within_days: i64,
    /// K08's review period for legal holds, days.
    pub hold_review_days: i64,
    /// When the ledger began: events that occurred earlier were imported (not K13).
    pub ledger_start: Timestamp,
    /// The result of verifying the ledger (K01).
    pub integrity: Integrity,
    /// Every check with its title, article and severity.
    pub checks: Vec<Check>,
    /// Findings per check and controller (only counts above zero), in check order.
    pub summary: Vec<SummaryRow>,
    /// Every finding: K01 first when integrity failed (then every other is unreliable).
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Findings of check `id`.
    pub fn count(&self, id: &str) -> usize {
        self.findings.iter().filter(|f| f.check == id).count()
    }
}

fn summary(findings: &[Finding]) -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = Vec::new();
    for f in findings {
        let controller = (f.check != "K01").then(|| f.controller.clone());
        match rows.iter_mut().find(|r| r.check == f.check && r.controller == controller) {
            Some(r) => r.count += 1,
            None => rows.push(SummaryRow { check: f.check, controller, count: 1 }),
        }
    }
    rows.sort_by(|a, b| (a.check, &a.controller).cmp(&(b.check, &b.controller)));
    rows
}

impl Ledger {
    /// The external references of `subjects` whose key file still exists (an erased subject
    /// has none): for `audit --reveal-subjects` only.
    pub fn subject_refs(
        &self,
        subjects: impl IntoIterator<Item = kvitto_core::SubjectId>,
    ) -> std::collections::HashMap<kvitto_core::SubjectId, String> {
        subjects.into_iter().filter_map(|s| self.subject_ref(&s).map(|r| (s, r.as_str().to_string()))).collect()
    }

    /// Verifies the ledger, then runs checks K02–K15 for `controller` (or every controller) at
    /// `options.now` (docs/AUDIT.md). An unknown controller is an error. When verification
    /// fails, its K01 finding comes first and every other finding is marked unreliable.
    pub async fn audit(&self, controller: Option<&str>, mut options: AuditOptions) -> Result<AuditReport, ReadError> {
        let c = controller
            .map(|c| Id::new(c).map_err(|message| ReadError::BadQuery { field: "controller", message }))
            .transpose()?;
        if let Some(c) = &c {
            self.with_projections(|p| {
                if p.controllers.contains_key(c) {
                    Ok(())
                } else {
                    Err(kvitto_projections::QueryError::UnknownController(c.clone()))
                }
            })?;
        }
        let verified = self.verify().await.map_err(|e| match e {
            crate::VerifyError::Storage(s) => ReadError::from(s),
            other => ReadError::Corrupt { at: "verify".into(), what: other.to_string() },
        })?;
        let integrity = Integrity {
            ok: verified.is_ok(),
            events: verified.count,
            failure: verified.failure.as_ref().map(|f| f.to_string()),
        };
        let mut findings = Vec::new();
        if let Some(failure) = &verified.failure {
            let k01 = &CHECKS[0];
            findings.push(Finding {
                check: k01.id,
                severity: Severity::Critical,
                article: k01.article,
                controller: c.clone().unwrap_or_else(|| Id::new("ledger").unwrap_or_else(|_| unreachable!("valid id"))),
                subject: None,
                subject_id: None,
                at: options.now,
                seqs: failure.seq.into_iter().collect(),
                text: format!("the ledger failed verification: {failure}; every other finding is unreliable"),
                reliable: true,
            });
        }
        let reliable = verified.is_ok();
        if let Some(first) = self.log(0..1).await?.first() {
            options.ledger_start = first.event.recorded_at;
        }
        let mut checked = self.with_projections(|p| Ok(p.audit(c.as_ref(), &options)))?;
        for f in &mut checked {
            f.reliable = reliable;
        }
        findings.extend(checked);
        Ok(AuditReport {
            format: AUDIT_FORMAT,
            origin: self.origin().to_string(),
            controller: c,
            now: options.now,
            late_after_hours: options.late_after_hours,
            notify_within_days: options.notify_within_days,
            hold_review_days: options.hold_review_days,
            ledger_start: options.ledger_start,
            integrity,
            checks: CHECKS.to_vec(),
            summary: summary(&findings),
            findings,
        })
    }
}
