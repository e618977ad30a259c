//! `kvitto audit`: the ledger verified, then every check of docs/AUDIT.md, as a table, JSON or
//! a self-contained HTML report. Exit 0 when nothing is found, 1 when something is.

use std::path::Path;

use kvitto::{AuditOptions, AuditReport};

use crate::query::{Output, pretty, read_failure};
use crate::{Failure, say};

/// What `audit` was asked.
pub(crate) struct AuditArgs<'a> {
    pub controller: Option<&'a str>,
    pub options: AuditOptions,
    pub reveal: bool,
    pub output: Output,
}

/// An HTML path whose directory does not exist is refused before any work (exit 2).
fn check_html_path(path: &Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Failure::input(format!("--html {}: directory {} does not exist", path.display(), dir.display())));
    }
    Ok(())
}

pub(crate) async fn audit(dir: &Path, a: AuditArgs<'_>) -> Result<(), Failure> {
    if let Output::Html { path, force } = &a.output {
        crate::bundle::refuse_existing(path, *force)?;
        check_html_path(path)?;
    }
    let ledger = crate::open_read(dir).await?;
    let report = ledger.audit(a.controller, a.options).await.map_err(read_failure);
    let refs = match (&report, a.reveal) {
        (Ok(r), true) => Some(ledger.subject_refs(r.findings.iter().filter_map(|f| f.subject))),
        _ => None,
    };
    crate::close(ledger).await;
    let report = report?;
    let found = report.findings.len();
    match &a.output {
        Output::Json => say!("{}", pretty(&json(&report, refs.as_ref()))),
        Output::Html { path, force } => {
            let page = kvitto::html::audit_report(&report, refs.as_ref());
            crate::bundle::write_private(path, page.as_bytes(), *force)
                .map_err(|f| Failure::input(format!("--html: {}", f.message)))?;
            say!(
                "wrote {} ({} bytes, self-contained HTML): {found} finding{}",
                path.display(),
                page.len(),
                plural(found)
            );
        }
        Output::Text => print(&report, refs.as_ref()),
    }
    if found == 0 { Ok(()) } else { Err(Failure { code: 1, message: String::new() }) }
}

/// The report as JSON; with `--reveal-subjects` each finding also carries `subject_ref`.
fn json(r: &AuditReport, refs: Option<&std::collections::HashMap<kvitto::SubjectId, String>>) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    if let (Some(refs), Some(findings)) = (refs, v.get_mut("findings").and_then(|f| f.as_array_mut())) {
        for (f, finding) in r.findings.iter().zip(findings) {
            if let (Some(s), Some(obj)) = (f.subject, finding.as_object_mut())
                && let Some(reference) = refs.get(&s)
            {
                obj.insert("subject_ref".into(), serde_json::Value::String(reference.clone()));
            }
        }
    }
    v
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn print(r: &AuditReport, refs: Option<&std::collections::HashMap<kvitto::SubjectId, String>>) {
    let scope = r.controller.as_ref().map_or("every controller".to_string(), |c| format!("controller {c}"));
    say!("audit of {} ({scope}) at {}", r.origin, r.now);
    match (&r.integrity.ok, &r.integrity.failure) {
        (true, _) => say!("integrity: ok ({} events verified)", r.integrity.events),
        (false, f) => say!(
            "integrity: FAILED — {}; every finding below is UNRELIABLE",
            f.as_deref().unwrap_or("verification failed")
        ),
    }
    say!("\n  check  severity  findings  what");
    for c in &r.checks {
        say!("  {:<6} {:<9} {:>8}  {} ({})", c.id, c.severity.as_str(), r.count(c.id), c.title, c.article);
    }
    if r.findings.is_empty() {
        say!("\nno findings");
        return;
    }
    say!("\nfindings ({})", r.findings.len());
    say!("  {:<5} {:<12} {:<20} {:<32} {:<20} what", "check", "at", "controller", "subject", "seqs");
    for f in &r.findings {
        let subject = match (&f.subject, refs) {
            (Some(s), Some(refs)) => refs.get(s).cloned().unwrap_or_else(|| s.to_hex()),
            (Some(s), None) => s.to_hex(),
            (None, _) => "—".into(),
        };
        let seqs = f.seqs.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
        say!(
            "  {:<5} {:<12} {:<20} {:<32} {:<20} {}{}",
            f.check,
            f.at.to_rfc3339().get(..10).unwrap_or_default(),
            f.controller.to_string(),
            subject,
            seqs,
            f.text,
            if f.reliable { "" } else { " [unreliable]" }
        );
    }
    say!("\nback a finding with `kvitto prove inclusion --seq N` for each of its seqs (docs/AUDIT.md)");
}
