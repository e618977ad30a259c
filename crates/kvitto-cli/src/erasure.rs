//! `kvitto erase`: destroys one customer's personal data (every key, or one register's),
//! recorded as a `data_erased` event; refused while a legal hold or a statutory deferral holds.

use std::path::Path;

use kvitto::{AppendError, EraseError, EraseOutcome};

use crate::{Failure, say};

pub(crate) fn erase_failure(e: EraseError) -> Failure {
    match e {
        EraseError::BadArgument { .. } | EraseError::UnknownSubject { .. } | EraseError::UnknownRegister { .. } => {
            Failure::input(e.to_string())
        }
        EraseError::Append(AppendError::ErasureBlocked { why, .. }) => {
            Failure::input(format!("erasure refused, nothing written: {why}"))
        }
        EraseError::Append(other) => Failure::storage(other.to_string()),
    }
}

pub(crate) async fn erase(
    dir: &Path,
    controller: &str,
    subject: &str,
    register: Option<&str>,
    reason: &str,
) -> Result<(), Failure> {
    let ledger = crate::open(dir).await?;
    let outcome = ledger.erase(controller, subject, register, reason).await;
    crate::close(ledger).await;
    let scope = register.map_or("every register".to_string(), |r| format!("register {r}"));
    match outcome.map_err(erase_failure)? {
        EraseOutcome::Erased(r) => {
            say!(
                "erased {scope} of this customer: data_erased recorded at seq {} (hash {}); its keys are destroyed",
                r.seq,
                r.hash
            );
        }
        EraseOutcome::AlreadyErased { seq } => {
            say!("already erased: {scope} of this customer was erased by seq {seq}; nothing written");
        }
    }
    Ok(())
}

fn when(t: Option<kvitto::Timestamp>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
}

fn days(seconds: i64) -> String {
    format!("{}d", seconds.div_euclid(86_400))
}

/// `kvitto retention plan`.
pub(crate) async fn retention_plan(
    dir: &Path,
    controller: Option<&str>,
    now: kvitto::Timestamp,
    json: bool,
) -> Result<(), Failure> {
    let ledger = crate::open_read(dir).await?;
    let plan = ledger.retention_plan(controller, now);
    crate::close(ledger).await;
    let plan = plan.map_err(crate::query::read_failure)?;
    if json {
        for item in &plan {
            say!("{}", serde_json::to_string(item).unwrap_or_default());
        }
        return Ok(());
    }
    say!("retention plan as of {} ({} items)", now.to_rfc3339(), plan.len());
    say!("  {:<16} {:<34} {:<16} {:<10} {:<26} detail", "controller", "subject", "register", "status", "due");
    let mut counts = std::collections::BTreeMap::new();
    for item in &plan {
        *counts.entry(item.status.as_str()).or_insert(0usize) += 1;
        let detail = match &item.status {
            kvitto::PlanStatus::Overdue { overdue_by_seconds, .. } => {
                format!("overdue by {}", days(*overdue_by_seconds))
            }
            kvitto::PlanStatus::Due { .. } => "due now".into(),
            kvitto::PlanStatus::Deferred { by, until, seq } => {
                let by = match by {
                    kvitto::DeferredBy::Statute(s) => format!("statute {s}"),
                    kvitto::DeferredBy::LegalHold(h) => format!("legal hold {h}"),
                };
                format!("{by}, until {} (seq {seq})", until.map_or("released".to_string(), |u| u.to_rfc3339()))
            }
            kvitto::PlanStatus::NotDue { due_in_seconds: Some(s) } => format!("in {}", days(*s)),
            kvitto::PlanStatus::NotDue { due_in_seconds: None } => {
                format!("clock not started ({:?})", item.rule.trigger)
            }
            kvitto::PlanStatus::Erased { erased_seq, .. } => format!("erased by seq {erased_seq}"),
        };
        say!(
            "  {:<16} {:<34} {:<16} {:<10} {:<26} {detail}",
            item.controller,
            item.subject_id,
            item.register,
            item.status.as_str(),
            when(item.due_at)
        );
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    say!("summary: {}", if summary.is_empty() { "nothing under a rule".to_string() } else { summary.join(", ") });
    Ok(())
}

/// `kvitto retention run`.
pub(crate) async fn retention_run(dir: &Path, controller: Option<&str>, now: kvitto::Timestamp) -> Result<(), Failure> {
    let ledger = crate::open(dir).await?;
    let run = ledger.retention_run(controller, now).await;
    crate::close(ledger).await;
    let run = run.map_err(crate::query::read_failure)?;
    for (c, r) in &run.erased {
        say!("erased  {} {} register {} (due {}): seq {}", c.controller, c.subject_id, c.register, c.due_at, r.seq);
    }
    for (c, r) in &run.already {
        say!("already {} {} register {}: erased earlier by seq {}", c.controller, c.subject_id, c.register, r.seq);
    }
    for (c, why) in &run.refused {
        say!("refused {} {} register {}: {why}", c.controller, c.subject_id, c.register);
    }
    say!(
        "retention run as of {}: {} erased, {} already erased, {} refused",
        now.to_rfc3339(),
        run.erased.len(),
        run.already.len(),
        run.refused.len()
    );
    Ok(())
}

/// `kvitto requests`.
pub(crate) async fn requests(
    dir: &Path,
    controller: Option<&str>,
    now: kvitto::Timestamp,
    all: bool,
    json: bool,
) -> Result<(), Failure> {
    let ledger = crate::open_read(dir).await?;
    let list = ledger.requests(controller, now, all);
    crate::close(ledger).await;
    let list = list.map_err(crate::query::read_failure)?;
    if json {
        for item in &list {
            say!("{}", serde_json::to_string(item).unwrap_or_default());
        }
        return Ok(());
    }
    say!("{} requests as of {} ({})", if all { "all" } else { "open" }, now.to_rfc3339(), list.len());
    say!(
        "  {:<16} {:<34} {:<14} {:<13} {:<15} {:<26} detail",
        "controller",
        "subject",
        "request",
        "right",
        "status",
        "due"
    );
    for i in &list {
        let r = &i.request;
        let detail = match (r.overdue_by_days, r.days_left, r.late_by_days) {
            (Some(d), _, _) if r.overdue => format!("OVERDUE by {d} days"),
            (_, _, Some(d)) => format!("answered {d} days late"),
            (_, Some(d), _) => format!("{d} days left"),
            _ => String::new(),
        };
        let extension = if r.extension_late { " (extension recorded after the first month: not valid)" } else { "" };
        say!(
            "  {:<16} {:<34} {:<14} {:<13} {:<15} {:<26} {detail}{extension}",
            i.controller,
            i.subject_id,
            r.request_id,
            r.right.map(|x| x.to_string()).unwrap_or_default(),
            r.status,
            when(r.deadline)
        );
    }
    Ok(())
}
