//! Self-contained HTML pages of the two GDPR reports: the answer to an access request
//! (Art 15, for the customer) and the record of processing (Art 30, for the DPO and the
//! supervisory authority). One file each: inline CSS, no script, no external asset, every
//! value escaped — a DPO can attach it to a letter or an audit file as it is.

use std::collections::BTreeSet;
use std::fmt::Write;

use kvitto_core::Id;
use kvitto_projections::{ControllerIdentity, ProcessingReport, RequestStatus};
use serde_json::Value;

use crate::read::SubjectAccess;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;\
max-width:60rem;margin:2rem auto;padding:0 1.2rem}h1{font-size:1.5rem;margin-bottom:.2rem}\
h2{font-size:1.1rem;margin-top:1.8rem;border-bottom:2px solid #d8dde6;padding-bottom:.2rem}\
.sub{color:#5a6375;margin-top:0}table{border-collapse:collapse;width:100%;margin:.4rem 0}\
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid #e3e7ee}\
th{background:#f3f5f9;font-weight:600}.seq{color:#5a6375;font-size:.85em;white-space:nowrap}\
.warn{background:#fff4e0;border-left:4px solid #e8a33d;padding:.4rem .7rem}\
.bad{color:#a3261b;font-weight:600}.ok{color:#1d6b35}del{color:#8a909c}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}\
footer{margin-top:2rem;color:#5a6375;font-size:.85em}\
@media print{body{margin:0;max-width:none;font-size:11pt}h2{break-after:avoid}tr{break-inside:avoid}}";

/// A page under construction: `<head>` with the style, then sections.
struct Page(String);

impl Page {
    fn new(title: &str) -> Self {
        let mut s = String::with_capacity(16 * 1024);
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head><body>\n",
            escape(title)
        );
        Self(s)
    }

    fn raw(&mut self, html: &str) -> &mut Self {
        self.0.push_str(html);
        self
    }

    fn h2(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.0, "<h2>{}</h2>", escape(text));
        self
    }

    fn p(&mut self, class: &str, text: &str) -> &mut Self {
        let _ = writeln!(self.0, "<p class=\"{class}\">{}</p>", escape(text));
        self
    }

    /// A table; each cell is already HTML (use [`escape`] for text).
    fn table(&mut self, head: &[&str], rows: &[Vec<String>]) -> &mut Self {
        if rows.is_empty() {
            return self.p("sub", "None recorded.");
        }
        self.0.push_str("<table><tr>");
        for h in head {
            let _ = write!(self.0, "<th>{}</th>", escape(h));
        }
        self.0.push_str("</tr>\n");
        for row in rows {
            self.0.push_str("<tr>");
            for cell in row {
                let _ = write!(self.0, "<td>{cell}</td>");
            }
            self.0.push_str("</tr>\n");
        }
        self.0.push_str("</table>\n");
        self
    }

    fn finish(mut self, footer: &str) -> String {
        let _ = write!(self.0, "<footer>{}</footer>\n</body></html>\n", escape(footer));
        self.0
    }
}

fn seqs(v: &[u64]) -> String {
    let list = v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    match v.len() {
        0 => String::new(),
        1 => format!("<span class=\"seq\">seq {list}</span>"),
        _ => format!("<span class=\"seq\">seqs {list}</span>"),
    }
}

fn ids<'a>(v: impl IntoIterator<Item = &'a Id>) -> String {
    escape(&v.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
}

fn day(t: &kvitto_core::Timestamp) -> String {
    escape(t.to_rfc3339().get(..10).unwrap_or_default())
}

/// The controller block: who is responsible, how to reach it and its DPO, and the authority.
fn identity(page: &mut Page, controller: &Id, who: Option<&ControllerIdentity>) {
    let Some(who) = who else {
        page.raw(&format!(
            "<p class=\"warn\">No controller declaration is recorded for <b>{}</b>: its legal name, contact \
             details, data protection officer and supervisory authority are not in the ledger.</p>\n",
            escape(controller.as_str())
        ));
        return;
    };
    let d = &who.declared;
    let row = |label: &str, v: Option<&kvitto_core::Text>| {
        format!(
            "<dt>{}</dt><dd>{}</dd>",
            escape(label),
            v.map_or_else(|| "<span class=\"sub\">not stated</span>".to_string(), |t| escape(t.as_str()))
        )
    };
    page.raw(&format!(
        "<dl>{}{}{}{}{}<dt>Supervisory authority</dt><dd>{} ({})</dd><dt>Declared by</dt><dd>{}</dd></dl>\n",
        row("Controller", Some(&d.legal_name)),
        row("Organisation number", d.organisation_number.as_ref()),
        row("Address", d.address.as_ref()),
        row("Contact", d.contact.as_ref()),
        row("Data protection officer", d.dpo_contact.as_ref()),
        escape(d.authority.as_str()),
        escape(d.authority_country.as_str()),
        seqs(&[who.seq]),
    ));
}

/// One data value for the copy: objects as `field: value` lines, other values as JSON.
fn value_html(v: &Value) -> String {
    match v {
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => escape(s),
                    other => escape(&other.to_string()),
                };
                format!("<b>{}</b>: {v}", escape(k))
            })
            .collect::<Vec<_>>()
            .join("<br>"),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

fn request_row(q: &RequestStatus) -> Vec<String> {
    let outcome = match (q.overdue, q.late_by_days, q.status) {
        (true, _, _) => format!("<span class=\"bad\">open, overdue by {} days</span>", q.overdue_by_days.unwrap_or(0)),
        (false, Some(d), _) => format!("<span class=\"bad\">{}, {d} days late</span>", escape(q.status)),
        (false, None, "open" | "extended") => {
            format!("open, {} days left", q.days_left.unwrap_or(0))
        }
        (false, None, status) => format!("<span class=\"ok\">{}, in time</span>", escape(status)),
    };
    vec![
        escape(q.request_id.as_str()),
        q.right.map_or("?".to_string(), |r| escape(&r.to_string())),
        q.received.as_ref().map(day).unwrap_or_default(),
        q.deadline.as_ref().map(day).unwrap_or_default() + if q.extended { " (extended)" } else { "" },
        outcome,
        seqs(&q.seqs),
    ]
}

/// The answer to an access request as one self-contained page for the customer.
pub fn access_report(a: &SubjectAccess) -> String {
    let r = &a.report;
    let name = r.controller_identity.as_ref().map_or(r.controller.to_string(), |i| i.declared.legal_name.to_string());
    let mut page = Page::new(&format!("Your personal data at {name} (GDPR Art 15)"));
    page.raw(&format!("<h1>Your personal data at {}</h1>\n", escape(&name)));
    page.p(
        "sub",
        &format!(
            "Access report under GDPR Art 15 for customer {} (pseudonym {}), as of {} (as recorded by {}).",
            a.subject, r.subject_id, r.at, r.known_at
        ),
    );
    identity(&mut page, &r.controller, r.controller_identity.as_ref());

    page.h2("(a) Why your data is processed");
    let rows: Vec<Vec<String>> = r
        .purposes
        .iter()
        .map(|p| {
            let what = match (&p.description, p.declared, p.processed) {
                (Some(d), _, _) => escape(d),
                (None, _, true) => "<span class=\"bad\">not declared by the controller, yet processed</span>".into(),
                (None, _, false) => "not declared by the controller; nothing processed for it".into(),
            };
            let said = p.subject_said().map(|s| escape(&s)).unwrap_or_default();
            let bases = p.legal_bases.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ");
            vec![escape(p.purpose.as_str()), what, escape(&bases), said, seqs(&p.seqs)]
        })
        .collect();
    page.table(&["purpose", "what for", "legal basis", "your consent / objection", "events"], &rows);

    page.h2("(b) Categories of data, (g) where they came from");
    let rows: Vec<Vec<String>> = r
        .categories
        .iter()
        .map(|c| {
            let sources = c.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
            vec![escape(c.category.as_str()), ids(&c.registers), ids(&c.purposes), escape(&sources), seqs(&c.seqs)]
        })
        .collect();
    page.table(&["category", "register", "purposes", "source", "events"], &rows);

    page.h2("(c) Who received your data");
    let rows: Vec<Vec<String>> = r
        .recipients
        .iter()
        .map(|x| {
            let country = match (x.country, x.third_country) {
                (None, _) => "<span class=\"bad\">unknown (recipient not registered)</span>".to_string(),
                (Some(c), None) if !c.is_stated() => "not stated — whether it is outside the EEA is unknown".into(),
                (Some(c), Some(true)) => format!(
                    "{} — outside the EEA; safeguard: {}",
                    escape(c.as_str()),
                    x.transfer_mechanism
                        .map_or("<span class=\"bad\">none declared</span>".to_string(), |m| escape(&m.to_string()))
                ),
                (Some(c), _) => format!("{} (EEA)", escape(c.as_str())),
            };
            vec![
                escape(x.name.as_deref().unwrap_or(x.processor.as_str())),
                x.role.map_or(String::new(), |r| escape(&r.to_string())),
                country,
                ids(&x.categories),
                seqs(&x.seqs),
            ]
        })
        .collect();
    page.table(&["recipient", "role", "country", "categories", "events"], &rows);

    page.h2("(d) How long it is kept");
    let rows: Vec<Vec<String>> = r
        .retention
        .iter()
        .map(|x| {
            let rule = match (&x.duration, x.trigger) {
                (Some(d), Some(t)) => escape(&format!(
                    "{d} after {t}{}",
                    x.statute.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
                )),
                _ => "<span class=\"bad\">no rule declared</span>".into(),
            };
            let until = x.keep_until.as_ref().map(day).unwrap_or_else(|| "—".into());
            let deferred =
                x.deferred_until.as_ref().map(|t| format!("erasure deferred until {}", day(t))).unwrap_or_default();
            vec![escape(x.register.as_str()), rule, until, deferred]
        })
        .collect();
    page.table(&["register", "rule", "kept until", "note"], &rows);

    page.h2("(e)–(f) Your rights");
    page.raw("<ul>");
    for right in &r.rights {
        page.raw(&format!("<li>{}</li>", escape(right)));
    }
    page.raw("</ul>\n");

    page.h2("Your requests and their deadlines (Art 12(3))");
    let rows: Vec<Vec<String>> = r.requests.iter().map(request_row).collect();
    page.table(&["request", "right", "received", "due", "outcome", "events"], &rows);

    page.h2("Restriction (Art 18) and legal holds");
    let mut rows: Vec<Vec<String>> = r
        .restrictions
        .iter()
        .map(|x| {
            vec![
                if x.restricted { "processing restricted" } else { "restriction lifted" }.to_string(),
                day(&x.occurred_at),
                seqs(&[x.seq]),
            ]
        })
        .collect();
    rows.extend(r.holds.iter().map(|h| {
        let span = match (&h.placed_at, &h.released_at, h.in_force) {
            (Some(p), _, true) => format!("legal hold {} in force since {}", escape(h.hold_id.as_str()), day(p)),
            (p, Some(rel), false) => format!(
                "legal hold {} placed {}, released {}",
                escape(h.hold_id.as_str()),
                p.as_ref().map(day).unwrap_or_default(),
                day(rel)
            ),
            _ => format!("legal hold {}", escape(h.hold_id.as_str())),
        };
        vec![span, String::new(), seqs(&h.seqs)]
    }));
    page.table(&["what", "when", "events"], &rows);

    page.h2("(h) Automated decision-making and profiling");
    page.p(
        "",
        &if r.profiling.is_empty() {
            "None recorded.".to_string()
        } else {
            r.profiling.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        },
    );

    page.h2("Consent");
    let rows: Vec<Vec<String>> = r
        .consent
        .iter()
        .filter(|c| c.seq.is_some())
        .map(|c| {
            vec![
                escape(c.purpose.as_str()),
                escape(&c.legal_basis.map_or_else(|| "not declared".to_string(), |b| b.to_string())),
                escape(c.state_label()),
                c.since.as_ref().map(day).unwrap_or_default(),
                c.notice_version.as_ref().map(|v| escape(v.as_str())).unwrap_or_default(),
                c.seq.map(|s| seqs(&[s])).unwrap_or_default(),
            ]
        })
        .collect();
    page.table(&["purpose", "basis", "state", "since", "notice", "event"], &rows);

    page.h2("Art 15(3): a copy of your personal data");
    let rows: Vec<Vec<String>> = a
        .copy
        .iter()
        .map(|c| {
            let i = &c.item;
            let mut data = if i.erased {
                "<span class=\"bad\">erased</span>".to_string()
            } else {
                i.data
                    .as_ref()
                    .map(value_html)
                    .unwrap_or_else(|| "<span class=\"sub\">no details recorded</span>".into())
            };
            for s in &i.superseded {
                let old = match &s.value {
                    Value::String(v) => escape(v),
                    v => escape(&v.to_string()),
                };
                let _ = write!(
                    data,
                    "<br><del>{}: {old}</del> <span class=\"seq\">corrected by seq {}</span>",
                    escape(&s.field),
                    s.by
                );
            }
            vec![
                escape(i.occurred_at.get(..10).unwrap_or_default()),
                escape(&i.register),
                escape(&i.categories.join(", ")),
                escape(&format!("{} ({})", i.purpose, i.legal_basis)),
                escape(&c.source.to_string()),
                data,
                seqs(&[i.seq]),
            ]
        })
        .collect();
    page.table(&["collected", "register", "categories", "purpose (basis)", "source", "data held now", "event"], &rows);
    if !r.erased.is_empty() {
        let erased: BTreeSet<&str> = r.erased.iter().map(String::as_str).collect();
        let erased = erased.into_iter().map(|e| if e == "*" { "everything" } else { e }).collect::<Vec<_>>().join(", ");
        page.p("", &format!("Erased: {erased}. Erased data is destroyed; the ledger keeps only that it existed."));
    }
    page.finish(
        "Every line cites the ledger events (seq) behind it. The ledger is hash-chained: the controller can prove \
         each event with `kvitto prove inclusion --seq N`, and a bundle of your whole history verifies offline.",
    )
}

/// The Art 30(1) record of processing of one controller as one self-contained page.
pub fn processing_record(r: &ProcessingReport) -> String {
    let name = r.controller_identity.as_ref().map_or(r.controller.to_string(), |i| i.declared.legal_name.to_string());
    let mut page = Page::new(&format!("Record of processing activities — {name} (GDPR Art 30)"));
    page.raw(&format!("<h1>Record of processing activities — {}</h1>\n", escape(&name)));
    page.p(
        "sub",
        &format!("GDPR Art 30(1), as of {} (as recorded by {}); {} data subjects.", r.at, r.known_at, r.subjects),
    );
    page.h2("(a) Controller and data protection officer");
    identity(&mut page, &r.controller, r.controller_identity.as_ref());

    page.h2("(b)–(c) Purposes, legal bases, data subjects and categories of data");
    let rows: Vec<Vec<String>> = r
        .purposes
        .iter()
        .map(|p| {
            let collected = p
                .categories
                .iter()
                .map(|(basis, cats)| {
                    let mismatch = if *basis != p.legal_basis {
                        " <span class=\"bad\">(basis differs from the declaration)</span>"
                    } else {
                        ""
                    };
                    format!("{}: {}{mismatch}", escape(&basis.to_string()), ids(cats))
                })
                .collect::<Vec<_>>()
                .join("<br>");
            vec![
                escape(p.purpose.as_str()),
                escape(&p.description),
                escape(&p.legal_basis.to_string()),
                if p.data_subjects.is_empty() {
                    "<span class=\"bad\">not declared</span>".into()
                } else {
                    ids(&p.data_subjects)
                },
                escape(p.register.as_str()),
                if collected.is_empty() { "<span class=\"sub\">nothing yet</span>".into() } else { collected },
                seqs(&[p.seq]),
            ]
        })
        .collect();
    page.table(
        &["purpose", "description", "basis", "data subjects", "register", "collected (by basis)", "event"],
        &rows,
    );

    page.h2("(d)–(e) Recipients and transfers outside the EEA");
    let rows: Vec<Vec<String>> = r
        .recipients
        .iter()
        .map(|x| {
            let (who, country, safeguard, dpa) = match &x.declared {
                Some(d) => (
                    format!("{} ({})", escape(d.name.as_str()), escape(&d.role.to_string())),
                    match x.third_country {
                        None => "not stated".to_string(),
                        Some(true) => format!("{} (third country)", escape(d.country.as_str())),
                        Some(false) => format!("{} (EEA)", escape(d.country.as_str())),
                    },
                    match (x.third_country, d.transfer_mechanism) {
                        (_, Some(m)) => escape(&m.to_string()),
                        (Some(true), None) => "<span class=\"bad\">none declared</span>".into(),
                        (None, None) => "unknown".into(),
                        (Some(false), None) => "not needed".into(),
                    },
                    d.dpa_ref.as_ref().map_or("—".to_string(), |t| escape(t.as_str())),
                ),
                None => {
                    ("<span class=\"bad\">not registered</span>".into(), "unknown".into(), "unknown".into(), "—".into())
                }
            };
            let received = x
                .received
                .iter()
                .map(|(p, cats)| format!("{}: {}", escape(p.as_str()), ids(cats)))
                .collect::<Vec<_>>()
                .join("<br>");
            vec![escape(x.processor.as_str()), who, country, safeguard, dpa, received]
        })
        .collect();
    page.table(&["id", "recipient", "country", "safeguard", "agreement", "received (by purpose)"], &rows);

    page.h2("(f) Retention");
    let rows: Vec<Vec<String>> = r
        .retention
        .iter()
        .map(|x| {
            vec![
                escape(x.register.as_str()),
                escape(&format!("{} after {}", x.duration, x.trigger)),
                x.statute.as_deref().map(escape).unwrap_or_default(),
                seqs(&[x.seq]),
            ]
        })
        .collect();
    page.table(&["register", "kept", "statute", "event"], &rows);

    page.h2("Gaps");
    let rows: Vec<Vec<String>> = r
        .gaps
        .iter()
        .map(|g| vec![escape(g.gap), escape(g.concerns.as_str()), escape(&g.text), seqs(&g.seqs)])
        .collect();
    page.table(&["gap", "concerns", "what is missing", "events"], &rows);
    page.finish(
        "Every line cites the ledger events (seq) behind it; `kvitto prove inclusion --seq N` proves any of them.",
    )
}

/// The compliance audit (`kvitto audit --html`): summary counts per check and controller, then
/// the findings grouped by check, each with its evidence seqs and the subject's pseudonym —
/// or, given `refs` (`--reveal-subjects`), the customer reference where one is still held.
/// Prints readably (no colour carries meaning alone). The summary cells carry `data-check` /
/// `data-controller` / `data-count` so a test can compare them with the JSON.
pub fn audit_report(
    r: &crate::AuditReport,
    refs: Option<&std::collections::HashMap<kvitto_core::SubjectId, String>>,
) -> String {
    let mut page = Page::new(&format!("Compliance audit — {}", r.origin));
    page.raw(&format!("<h1>Compliance audit — {}</h1>\n", escape(&r.origin)));
    let scope = r.controller.as_ref().map_or("every controller".to_string(), |c| format!("controller {c}"));
    page.p(
        "sub",
        &format!(
            "{scope}, as of {}; late recording from {} h, Art 19 window {} days, legal-hold review after {} days.",
            r.now, r.late_after_hours, r.notify_within_days, r.hold_review_days
        ),
    );
    if r.integrity.ok {
        page.raw(&format!(
            "<p class=\"ok\" id=\"integrity\" data-ok=\"true\">Integrity: ok — {} events verified.</p>\n",
            r.integrity.events
        ));
    } else {
        page.raw(&format!(
            "<p class=\"warn bad\" id=\"integrity\" data-ok=\"false\">Integrity FAILED: {}. Every finding below is \
             unreliable.</p>\n",
            escape(r.integrity.failure.as_deref().unwrap_or("verification failed"))
        ));
    }
    page.raw(&format!("<p id=\"total\" data-count=\"{0}\">{0} findings.</p>\n", r.findings.len()));

    page.h2("Summary");
    let mut controllers: Vec<Option<&Id>> = r.summary.iter().map(|s| s.controller.as_ref()).collect();
    controllers.sort();
    controllers.dedup();
    page.raw("<table id=\"summary\"><tr><th>check</th><th>severity</th><th>what</th>");
    for c in &controllers {
        let _ = write!(page.0, "<th>{}</th>", escape(c.map_or("ledger", |c| c.as_str())));
    }
    page.raw("<th>total</th></tr>\n");
    for c in &r.checks {
        let _ = write!(
            page.0,
            "<tr><td>{}</td><td>{}</td><td>{} <span class=\"seq\">({})</span></td>",
            c.id,
            c.severity.as_str(),
            escape(c.title),
            escape(c.article)
        );
        for ctl in &controllers {
            let n = r.summary.iter().find(|s| s.check == c.id && s.controller.as_ref() == *ctl).map_or(0, |s| s.count);
            let _ = write!(
                page.0,
                "<td data-check=\"{}\" data-controller=\"{}\" data-count=\"{n}\">{}</td>",
                c.id,
                escape(ctl.map_or("", |c| c.as_str())),
                if n == 0 { String::new() } else { n.to_string() }
            );
        }
        let _ = writeln!(page.0, "<td><b>{}</b></td></tr>", r.count(c.id));
    }
    page.raw("</table>\n");

    for c in &r.checks {
        let found: Vec<&kvitto_projections::Finding> = r.findings.iter().filter(|f| f.check == c.id).collect();
        if found.is_empty() {
            continue;
        }
        page.h2(&format!("{} {} — {} ({}, {})", c.id, c.title, found.len(), c.severity.as_str(), c.article));
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|f| {
                let subject = match (&f.subject, refs) {
                    (Some(s), Some(refs)) => refs.get(s).cloned().unwrap_or_else(|| s.to_hex()),
                    (Some(s), None) => s.to_hex(),
                    (None, _) => "—".into(),
                };
                let text =
                    if f.reliable { escape(&f.text) } else { format!("{} <b>(unreliable)</b>", escape(&f.text)) };
                vec![
                    escape(f.at.to_rfc3339().get(..10).unwrap_or_default()),
                    escape(f.controller.as_str()),
                    format!("<code>{}</code>", escape(&subject)),
                    text,
                    seqs(&f.seqs),
                ]
            })
            .collect();
        page.table(&["when", "controller", "subject", "finding", "evidence"], &rows);
    }
    page.finish(
        "Each finding cites the ledger events (seq) that prove it; `kvitto prove inclusion --seq N` proves each \
         against a signed checkpoint. The checks are described in docs/AUDIT.md.",
    )
}
