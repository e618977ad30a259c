//! Readable and JSON output of events.

use kvitto::{DetailsView, LedgerEvent};
use kvitto_core::EventKind;

/// Buffered stdout that exits quietly when the reader has gone (`kvitto log | head`).
struct LineOut<W: std::io::Write>(W);

impl<W: std::io::Write> std::io::Write for LineOut<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).inspect_err(exit_on_broken_pipe)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().inspect_err(exit_on_broken_pipe)
    }
}

impl<W: std::io::Write> Drop for LineOut<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

fn exit_on_broken_pipe(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
}

/// A one-line summary of what an event says (ids and enums only, never personal data).
pub(crate) fn summary(kind: &EventKind) -> String {
    let mut m = serde_json::Map::new();
    kind.to_json_fields(&mut m);
    m.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) if s.len() > 48 => format!("{k}={}…", s.chars().take(45).collect::<String>()),
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn print_events(events: &[LedgerEvent], json: bool, with_controller: bool) {
    print_events_with_late(events, json, with_controller, &std::collections::HashMap::new());
}

/// Like [`print_events`]; `late` maps the seq of a closing request step answered after its
/// Art 12(3) deadline to the whole days it was late (shown as `[late by N days]`, and as
/// `late_by_days` in JSON).
pub(crate) fn print_events_with_late(
    events: &[LedgerEvent],
    json: bool,
    with_controller: bool,
    late: &std::collections::HashMap<u64, i64>,
) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = LineOut(std::io::BufWriter::new(stdout.lock()));
    if json {
        for e in events {
            let mut m = e.to_json();
            if let Some(d) = late.get(&e.event.seq) {
                m.insert("late_by_days".into(), serde_json::Value::from(*d));
            }
            let _ = writeln!(out, "{}", serde_json::Value::Object(m));
        }
        return;
    }
    if with_controller {
        let _ = writeln!(
            out,
            "{:>8}  {:<20}  {:<18}  {:<26}  {:<12}  what",
            "seq", "occurred_at", "controller", "type", "hash"
        );
    } else {
        let _ = writeln!(out, "{:>8}  {:>4}  {:<20}  {:<26}  {:<12}  what", "seq", "#", "occurred_at", "type", "hash");
    }
    for e in events {
        let t = e.event.occurred_at.to_rfc3339();
        let t = t.get(..19).unwrap_or(&t);
        let details = match &e.details {
            DetailsView::None => String::new(),
            DetailsView::Disclosed(_) => " [details]".into(),
            DetailsView::Erased { by } => format!(" [details erased by seq {by}]"),
            DetailsView::Damaged => " [details DAMAGED]".into(),
        };
        let details = match late.get(&e.event.seq) {
            Some(d) => format!("{details} [late by {d} days]"),
            None => details,
        };
        let hash = &e.hash.to_hex()[..12];
        if with_controller {
            let _ = writeln!(
                out,
                "{:>8}  {:<20}  {:<18}  {:<26}  {hash}  {}{details}",
                e.event.seq,
                t,
                e.event.controller,
                e.event.kind.name(),
                summary(&e.event.kind)
            );
        } else {
            let n = e.event.subject.map_or(0, |l| l.subject_seq);
            let _ = writeln!(
                out,
                "{:>8}  {:>4}  {:<20}  {:<26}  {hash}  {}{details}",
                e.event.seq,
                n,
                t,
                e.event.kind.name(),
                summary(&e.event.kind)
            );
        }
    }
}
