//! Questions answered from the projections: consent, may-process, reports, portability,
//! rebuild. Text for people, `--json` for machines, both from the same data.

use std::path::Path;

use kvitto::{AsOf, ConsentAnswer, ReadError};

use crate::table::terminal_safe;
use crate::{Failure, say};

/// `--at` / `--known-at`: RFC 3339, or a date meaning the end of that day (UTC).
pub(crate) use kvitto::input::parse_time;

pub(crate) use kvitto::input::as_of;

pub(crate) fn read_failure(e: ReadError) -> Failure {
    match e {
        ReadError::UnknownSubject { .. }
        | ReadError::NoEventsYet { .. }
        | ReadError::UnknownController(_)
        | ReadError::UnknownPurpose { .. }
        | ReadError::BadQuery { .. } => Failure::input(e.to_string()),
        other => Failure::storage(other.to_string()),
    }
}

fn json_line(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(crate) fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// What a consent answer's state means for its purpose's basis: a consent state for consent
/// purposes (and undeclared ones), an Art 21 objection or an opt-out for the others.
fn basis_label(a: &ConsentAnswer) -> String {
    a.legal_basis.map_or_else(|| "not declared".to_string(), |b| b.to_string())
}

/// Prints consent answers as a table with each purpose's timeline.
pub(crate) fn print_consent(answers: &[ConsentAnswer], q: &AsOf) {
    say!("as of {} (known at {})", q.at, q.known_at);
    say!("  {:<24} {:<21} {:<22} {:<22} {:>8}  notice", "purpose", "basis", "state", "since", "seq");
    // Purposes with nothing recorded collapse into one line per basis (the note said once).
    let nothing = |a: &&ConsentAnswer| a.state == kvitto::ConsentState::None && a.seq.is_none() && a.history.is_empty();
    for a in answers.iter().filter(|a| !nothing(a)) {
        say!(
            "  {:<24} {:<21} {:<22} {:<22} {:>8}  {}",
            a.purpose,
            basis_label(a),
            a.state_label(),
            a.since.map(|t| t.to_rfc3339()).unwrap_or_default(),
            a.seq.map(|s| s.to_string()).unwrap_or_default(),
            a.notice_version.as_ref().map(|v| v.to_string()).unwrap_or_default()
        );
        if let Some(note) = &a.note {
            say!("      ({note})");
        }
        if a.history.len() > 1 {
            for i in &a.history {
                let until = i.until.map_or("…".to_string(), |t| t.to_rfc3339());
                let via = i.via_objection_to.as_ref().map(|p| format!(" via objection to {p}")).unwrap_or_default();
                say!("      {:<10} {} → {} (seq {}){via}", i.state.as_str(), i.since, until, i.seq);
            }
        }
    }
    let empty: Vec<&ConsentAnswer> = answers.iter().filter(nothing).collect();
    if !empty.is_empty() {
        let mut by_basis: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        for a in &empty {
            by_basis.entry(basis_label(a)).or_default().push(a.purpose.to_string());
        }
        let groups = by_basis.iter().map(|(b, ps)| format!("{} ({b})", ps.join(", "))).collect::<Vec<_>>().join("; ");
        say!("  nothing recorded for: {groups}");
        let mut notes: Vec<&str> = empty.iter().filter_map(|a| a.note.as_deref()).collect();
        notes.dedup();
        for note in notes {
            say!("      ({note})");
        }
    }
}

pub(crate) async fn consent(
    dir: &Path,
    controller: &str,
    subject: &str,
    purpose: Option<&str>,
    q: AsOf,
    json: bool,
) -> Result<(), Failure> {
    let ledger = crate::open_read(dir).await?;
    let answers = ledger.consent(controller, subject, purpose, q).map_err(read_failure);
    crate::close(ledger).await;
    let answers = answers?;
    if json {
        for a in &answers {
            say!("{}", json_line(a));
        }
    } else {
        say!("consent of customer {subject} at {controller}");
        print_consent(&answers, &q);
    }
    Ok(())
}

pub(crate) async fn may_process(
    dir: &Path,
    controller: &str,
    subject: &str,
    purpose: &str,
    q: AsOf,
    json: bool,
) -> Result<(), Failure> {
    let ledger = crate::open_read(dir).await?;
    let d = ledger.may_process(controller, subject, purpose, q).map_err(read_failure);
    crate::close(ledger).await;
    let d = d?;
    if json {
        say!("{}", json_line(&d));
    } else {
        let seq = d.seq.map(|s| format!(" (decided by seq {s})")).unwrap_or_default();
        say!("{}: {}{seq}", if d.allowed { "allowed" } else { "denied" }, d.reason);
    }
    if d.allowed { Ok(()) } else { Err(Failure { code: 1, message: String::new() }) }
}

/// How a report is written.
pub(crate) enum Output {
    /// Text on stdout.
    Text,
    /// JSON on stdout.
    Json,
    /// A self-contained HTML page in a file.
    Html { path: std::path::PathBuf, force: bool },
}

impl Output {
    /// Refuses an existing HTML file before any work is done (nothing is written).
    fn check(&self) -> Result<(), Failure> {
        match self {
            Output::Html { path, force } => crate::bundle::refuse_existing(path, *force),
            Output::Text | Output::Json => Ok(()),
        }
    }

    /// Writes the page (owner-readable only: an access report holds the customer's data).
    fn write_html(path: &Path, force: bool, page: &str) -> Result<(), Failure> {
        crate::bundle::write_private(path, page.as_bytes(), force)?;
        say!("wrote {} ({} bytes, self-contained HTML)", path.display(), page.len());
        Ok(())
    }
}

/// The controller block of both reports.
fn print_identity(who: Option<&kvitto::ControllerIdentity>, controller: &str) {
    let Some(who) = who else {
        say!("controller {controller}: NO controller_declared recorded (name, contact, DPO and authority unknown)");
        return;
    };
    let d = &who.declared;
    let opt = |v: &Option<kvitto_core::Text>| v.as_ref().map_or("not stated".to_string(), |t| t.to_string());
    say!(
        "controller: {} ({controller}), organisation number {}  [seq {}]",
        d.legal_name,
        opt(&d.organisation_number),
        who.seq
    );
    say!("  address: {}; contact: {}", opt(&d.address), opt(&d.contact));
    say!("  data protection officer: {}", opt(&d.dpo_contact));
    say!("  supervisory authority: {} ({})", d.authority, d.authority_country);
}

pub(crate) async fn access_report(
    dir: &Path,
    controller: &str,
    subject: &str,
    q: AsOf,
    output: &Output,
) -> Result<(), Failure> {
    output.check()?;
    let ledger = crate::open_read(dir).await?;
    let r = ledger.subject_access(controller, subject, q).await.map_err(read_failure);
    crate::close(ledger).await;
    let a = r?;
    match output {
        Output::Json => {
            say!("{}", pretty(&a));
            return Ok(());
        }
        Output::Html { path, force } => return Output::write_html(path, *force, &kvitto::html::access_report(&a)),
        Output::Text => {}
    }
    let r = &a.report;
    let seqs = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let set = |v: &std::collections::BTreeSet<kvitto_core::Id>| {
        v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
    };
    say!("Art 15 access report — customer {subject} of {controller} (subject {})", r.subject_id);
    say!("as of {} (known at {})", r.at, r.known_at);
    print_identity(r.controller_identity.as_ref(), controller);
    say!("\n(a) purposes");
    for p in &r.purposes {
        say!("  {}  [seqs {}]", purpose_line(p, controller), seqs(&p.seqs));
    }
    say!("\n(b) categories of personal data, (g) their sources");
    for c in &r.categories {
        let sources = c.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
        say!(
            "  {:<12} in {} for {} from {sources}  [seqs {}]",
            c.category,
            set(&c.registers),
            set(&c.purposes),
            seqs(&c.seqs)
        );
    }
    say!("\n(c) recipients that received data");
    if r.recipients.is_empty() {
        say!("  none recorded");
    }
    for x in &r.recipients {
        let country = match x.country {
            None => "country unknown".to_string(),
            Some(c) if !c.is_stated() => "country not stated".to_string(),
            Some(c) => c.to_string(),
        };
        let third = if x.third_country == Some(true) {
            format!(
                " — third country, safeguard: {}",
                x.transfer_mechanism.map_or("NONE DECLARED".to_string(), |m| m.to_string())
            )
        } else {
            String::new()
        };
        say!(
            "  {:<22} {} ({country}){third}: {} for {}  [seqs {}]",
            x.processor,
            x.name.as_deref().unwrap_or("(not registered)"),
            set(&x.categories),
            set(&x.purposes),
            seqs(&x.seqs)
        );
    }
    say!("\n(d) retention");
    for x in &r.retention {
        let rule = match (&x.duration, x.trigger) {
            (Some(d), Some(t)) => {
                format!("{d} after {t}{}", x.statute.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())
            }
            _ => "no rule declared".into(),
        };
        let until = x.keep_until.map(|t| format!("; keep until {t}")).unwrap_or_default();
        let deferred = x.deferred_until.map(|t| format!("; erasure deferred until {t}")).unwrap_or_default();
        say!("  {:<22} {rule}{until}{deferred}", x.register);
    }
    say!("\n(e)(f) rights: {}", r.rights.join("; "));
    for q in &r.requests {
        let right = q.right.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
        let deadline = q.deadline.map(|d| d.to_rfc3339()).unwrap_or_default();
        let overdue = match (q.overdue, q.late_by_days) {
            (true, _) => format!(" OVERDUE by {} days", q.overdue_by_days.unwrap_or(0)),
            (false, Some(d)) => format!(" (answered {d} days late)"),
            (false, None) => String::new(),
        };
        say!(
            "  request {} ({right}): {}, received {}, due {deadline}{overdue}  [seqs {}]",
            q.request_id,
            q.status,
            q.received.map(|t| t.to_rfc3339()).unwrap_or_default(),
            seqs(&q.seqs)
        );
    }
    say!(
        "\n(h) automated decision-making / profiling: {}",
        if r.profiling.is_empty() {
            "none recorded".to_string()
        } else {
            r.profiling.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        }
    );
    if r.restricted {
        say!("\nprocessing is RESTRICTED (Art 18)");
    }
    if !r.restrictions.is_empty() || !r.holds.is_empty() {
        say!("\nrestriction (Art 18) and legal holds");
    }
    for x in &r.restrictions {
        let what = if x.restricted { "restricted" } else { "restriction lifted" };
        say!("  {what} at {}  [seq {}]", x.occurred_at, x.seq);
    }
    for h in &r.holds {
        let placed = h.placed_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "?".into());
        let state = match (h.in_force, h.released_at) {
            (true, _) => "in force".to_string(),
            (false, Some(t)) => format!("released {t}"),
            (false, None) => "released".to_string(),
        };
        say!("  legal hold {} placed {placed}, {state}  [seqs {}]", h.hold_id, seqs(&h.seqs));
    }
    if !r.erased.is_empty() {
        say!("\nerased: {}", r.erased.join(", "));
    }
    say!("\nconsent");
    print_consent(&r.consent, &AsOf { at: r.at, known_at: r.known_at });
    say!("\nArt 15(3) copy of the personal data held ({} collections)", a.copy.len());
    for c in &a.copy {
        let i = &c.item;
        let data = if i.erased {
            "[erased]".to_string()
        } else {
            i.data
                .as_ref()
                .map_or_else(|| "[no details]".to_string(), |v| terminal_safe(&v.to_string(), true).into_owned())
        };
        say!("  seq {} {} {} ({}) from {}: {data}", i.seq, i.register, i.categories.join(","), i.purpose, c.source);
        for s in &i.superseded {
            let (field, old) = (terminal_safe(&s.field, true), terminal_safe(&s.value.to_string(), true).into_owned());
            say!("      {field} was {old} — superseded by seq {}", s.by);
        }
    }
    Ok(())
}

pub(crate) async fn processing_report(dir: &Path, controller: &str, q: AsOf, output: &Output) -> Result<(), Failure> {
    output.check()?;
    let ledger = crate::open_read(dir).await?;
    let r = ledger.processing_report(controller, q).map_err(read_failure);
    crate::close(ledger).await;
    let r = r?;
    match output {
        Output::Json => {
            say!("{}", pretty(&r));
            return Ok(());
        }
        Output::Html { path, force } => return Output::write_html(path, *force, &kvitto::html::processing_record(&r)),
        Output::Text => {}
    }
    say!(
        "Art 30(1) record of processing — {controller}, {} data subject{}",
        r.subjects,
        if r.subjects == 1 { "" } else { "s" }
    );
    say!("as of {} (known at {})", r.at, r.known_at);
    print_identity(r.controller_identity.as_ref(), controller);
    say!("\npurposes and legal bases (with categories actually collected)");
    for p in &r.purposes {
        say!(
            "  {:<22} {:<20} register {:<20} [seq {}] {}",
            p.purpose,
            p.legal_basis.to_string(),
            p.register.to_string(),
            p.seq,
            p.description
        );
        for (basis, cats) in &p.categories {
            let cats = cats.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
            let mismatch = if *basis != p.legal_basis { "  (basis differs from the declaration)" } else { "" };
            say!("      collected under {basis}: {cats}{mismatch}");
        }
        if !p.data_subjects.is_empty() {
            let who = p.data_subjects.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
            say!("      data subjects: {who}");
        }
    }
    if !r.undeclared_purposes.is_empty() {
        let list = r.undeclared_purposes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
        say!("  data collected for UNDECLARED purposes: {list}");
    }
    say!("\nrecipients, transfers outside the EEA");
    for x in &r.recipients {
        let decl = match &x.declared {
            Some(d) => format!(
                "{} ({}, {}){}",
                d.name,
                if d.country.is_stated() { d.country.to_string() } else { "country not stated".into() },
                d.role,
                if x.third_country == Some(true) {
                    format!(
                        " third country, safeguard: {}",
                        d.transfer_mechanism.map_or("NONE DECLARED".into(), |m| m.to_string())
                    )
                } else {
                    String::new()
                }
            ),
            None => "NOT REGISTERED (country unknown: whether the data left the EEA cannot be told)".into(),
        };
        say!("  {:<22} {decl}", x.processor);
        for (purpose, cats) in &x.received {
            let cats = cats.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
            say!("      received for {purpose}: {cats}");
        }
    }
    say!("\nretention");
    if r.retention.is_empty() {
        say!("  no retention rule declared");
    }
    for x in &r.retention {
        say!(
            "  {:<22} {} after {}{}  [seq {}]",
            x.register,
            x.duration,
            x.trigger,
            x.statute.as_ref().map(|s| format!(" ({s})")).unwrap_or_default(),
            x.seq
        );
    }
    say!("\ngaps ({})", r.gaps.len());
    if r.gaps.is_empty() {
        say!("  none");
    }
    for g in &r.gaps {
        let seqs = g.seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let seqs = if seqs.is_empty() { String::new() } else { format!("  [seqs {seqs}]") };
        say!("  {:<30} {:<22} {}{seqs}", g.gap, g.concerns, g.text);
    }
    Ok(())
}

pub(crate) async fn export_portable(
    dir: &Path,
    controller: &str,
    subject: &str,
    q: AsOf,
    out: Option<&Path>,
    force: bool,
) -> Result<(), Failure> {
    if let Some(path) = out {
        crate::bundle::refuse_existing(path, force)?;
    }
    let ledger = crate::open_read(dir).await?;
    let r = ledger.export_portable(controller, subject, q).await.map_err(read_failure);
    crate::close(ledger).await;
    write_or_print(out, &pretty(&r?), force).map(|_| ())
}

/// Writes an export to `out` (owner-readable only) or prints it; `true` when written.
fn write_or_print(out: Option<&Path>, text: &str, force: bool) -> Result<bool, Failure> {
    match out {
        Some(path) => crate::bundle::write_private(path, format!("{text}\n").as_bytes(), force).map(|()| true),
        None => {
            say!("{text}");
            Ok(false)
        }
    }
}

pub(crate) async fn export_consent(
    dir: &Path,
    controller: &str,
    subject: &str,
    q: AsOf,
    out: Option<&Path>,
    force: bool,
) -> Result<(), Failure> {
    if let Some(path) = out {
        crate::bundle::refuse_existing(path, force)?;
    }
    let ledger = crate::open_read(dir).await?;
    let r = ledger.consent_records(controller, subject, q).await.map_err(read_failure);
    crate::close(ledger).await;
    let doc = r?;
    if doc["@graph"].as_array().is_none_or(|g| g.is_empty()) {
        return Err(Failure::input(format!(
            "no consent given, withdrawn or refused is recorded for customer {subject} of {controller} as of {} \
             (nothing written)",
            q.at
        )));
    }
    if write_or_print(out, &pretty(&doc), force)?
        && let Some(path) = out
    {
        let n = doc["@graph"].as_array().map_or(0, Vec::len);
        say!(
            "wrote {}: {n} consent record{} (W3C DPV JSON-LD, ISO/IEC TS 27560)",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

pub(crate) async fn rebuild(dir: &Path) -> Result<(), Failure> {
    let ledger = crate::open(dir).await?;
    let r = ledger.rebuild().await.map_err(read_failure);
    crate::close(ledger).await;
    let r = r?;
    let rate = r.events as f64 / r.fold.as_secs_f64().max(1e-9);
    say!(
        "rebuilt projections from seq 0: {} events, {} subjects; fold {:.2?} ({rate:.0} events/s), persist {:.2?}",
        r.events,
        r.subjects,
        r.fold,
        r.persist
    );
    Ok(())
}

/// One Art 15(1)(a) line: the purpose, its bases, what the subject said about it — labelled by
/// the basis (a consent state for consent purposes; an objection or opt-out otherwise) — and
/// its declaration, or why it is listed although never declared.
fn purpose_line(p: &kvitto::AccessPurpose, controller: &str) -> String {
    let said = p.subject_said().map(|s| format!("; {s}")).unwrap_or_default();
    let bases = p.legal_bases.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ");
    match (&p.description, p.processed) {
        (Some(d), _) => format!("{:<22} {bases}{said} — {d}", p.purpose),
        (None, true) => format!("{:<22} {bases}{said} — NOT DECLARED by {controller}, yet processed", p.purpose),
        (None, false) => format!("{:<22} not declared by {controller} and nothing processed for it{said}", p.purpose,),
    }
}
