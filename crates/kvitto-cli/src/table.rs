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

/// Untrusted text made safe to print (kvitto-core's rule, shared with the regulators' page).
pub(crate) use kvitto_core::text::visible as terminal_safe;

/// A one-line summary of what an event says (ids and enums only, never personal data).
pub(crate) fn summary(kind: &EventKind) -> String {
    kind.summary()
}

pub(crate) fn print_events(events: &[LedgerEvent], json: bool, with_controller: bool) {
    print_history(events, json, with_controller, &History::default());
}

/// The rights requests of one customer's history answered after their Art 12(3) deadline:
/// the seq of the closing step → whole days late.
pub(crate) fn late_answers(
    ledger: &kvitto::Ledger,
    controller: &str,
    history: &[LedgerEvent],
) -> std::collections::HashMap<u64, i64> {
    let subject_hex = history.first().and_then(|e| e.event.subject).map(|l| l.subject.to_hex());
    ledger
        .requests(Some(controller), kvitto::Timestamp::now(), true)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| Some(&i.subject_id) == subject_hex.as_ref())
        .filter_map(|i| Some((*i.request.seqs.last()?, i.request.late_by_days?)))
        .collect()
}

/// What a customer's history knows beyond each event: late answers and rectified values.
#[derive(Default)]
pub(crate) struct History {
    /// Seq of a closing request step answered after its Art 12(3) deadline → whole days late
    /// (`[late by N days]`; `late_by_days` in JSON).
    pub late: std::collections::HashMap<u64, i64>,
    /// Seq of a `data_collected` → the fields later rectifications replaced, and by which seq
    /// (`[address superseded by seq N]`; `superseded: [{field, by}]` in JSON, without the old
    /// value).
    pub superseded: std::collections::HashMap<u64, Vec<kvitto::Superseded>>,
}

impl History {
    /// Both, for one customer's history.
    pub(crate) fn of(ledger: &kvitto::Ledger, controller: &str, events: &[LedgerEvent]) -> Self {
        let superseded = kvitto::rectifications(events)
            .into_iter()
            .filter(|(_, r)| !r.superseded.is_empty())
            .map(|(seq, r)| (seq, r.superseded))
            .collect();
        History { late: late_answers(ledger, controller, events), superseded }
    }
}

/// Like [`print_events`], with what [`History`] adds to each event.
pub(crate) fn print_history(events: &[LedgerEvent], json: bool, with_controller: bool, history: &History) {
    let (late, superseded) = (&history.late, &history.superseded);
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = LineOut(std::io::BufWriter::new(stdout.lock()));
    if json {
        for e in events {
            let mut m = e.to_json();
            if let Some(d) = late.get(&e.event.seq) {
                m.insert("late_by_days".into(), serde_json::Value::from(*d));
            }
            if let Some(fields) = superseded.get(&e.event.seq) {
                let list = fields.iter().map(|f| serde_json::json!({"field": f.field, "by": f.by})).collect();
                m.insert("superseded".into(), serde_json::Value::Array(list));
            }
            let _ = writeln!(out, "{}", terminal_safe(&serde_json::Value::Object(m).to_string(), false));
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
        let mut details = match late.get(&e.event.seq) {
            Some(d) => format!("{details} [late by {d} days]"),
            None => details,
        };
        for f in superseded.get(&e.event.seq).into_iter().flatten() {
            details.push_str(&format!(" [{} superseded by seq {}]", terminal_safe(&f.field, true), f.by));
        }
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

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn hazardous_characters_are_escaped_and_json_stays_exact() {
        assert_eq!(terminal_safe("plain Åsa\ttext\n", false), "plain Åsa\ttext\n");
        assert_eq!(terminal_safe("a\x1b[2Kb\rc\u{202e}d\u{200b}", false), "a\\u001b[2Kb\\u000dc\\u202ed\\u200b");
        assert_eq!(terminal_safe("two\nlines", true), "two\\u000alines");
        assert_eq!(terminal_safe("\u{e0041}", false), "\\udb40\\udc41");
        // Inside JSON the escape is the same string.
        let j = serde_json::json!({"reason": "x\u{202e}y\u{e0041}"}).to_string();
        let safe = terminal_safe(&j, false).into_owned();
        assert!(!safe.contains('\u{202e}'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap()["reason"], "x\u{202e}y\u{e0041}");
    }
}
