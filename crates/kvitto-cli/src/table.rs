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

/// Whether `c` could change what a terminal shows beyond itself: C0 controls (but `\n` and
/// `\t`, unless `one_line`), DEL, C1 controls, and the format characters (Unicode Cf, the
/// table of kvitto-core's input rules) — bidi overrides and isolates, zero-width characters,
/// the BOM, tag characters.
fn hazardous(c: char, one_line: bool) -> bool {
    (c.is_control() && (one_line || !matches!(c, '\n' | '\t'))) || kvitto_core::text::is_format_char(c)
}

/// Untrusted text made safe to print: every hazardous character becomes a visible `\uXXXX`
/// escape (a surrogate pair above U+FFFF), which inside a JSON string is the same value, so
/// JSON output stays exact while a `reason` cannot move the cursor, erase lines or reorder
/// what a regulator reads. `one_line` also escapes `\n` and `\t` (table cells).
pub(crate) fn terminal_safe(s: &str, one_line: bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| hazardous(c, one_line)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hazardous(c, one_line) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A one-line summary of what an event says (ids and enums only, never personal data).
pub(crate) fn summary(kind: &EventKind) -> String {
    let mut m = serde_json::Map::new();
    kind.to_json_fields(&mut m);
    m.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) if s.len() > 48 => {
                format!("{k}={}…", terminal_safe(&s.chars().take(45).collect::<String>(), true))
            }
            serde_json::Value::String(s) => format!("{k}={}", terminal_safe(s, true)),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
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
    use super::{hazardous, terminal_safe};

    #[test]
    fn hazardous_is_every_control_and_format_character() {
        // The list this function had before it used the core table, and Cf it did not name.
        let old = [0x00, 0x1b, 0x7f, 0x85, 0x9f, 0xad, 0x61c, 0x180e, 0x200b, 0x200f, 0x202a, 0x202e, 0x2060, 0x2064];
        let old_too = [0x2066, 0x206f, 0xfeff, 0xfff9, 0xfffb, 0xe0001, 0xe0020, 0xe007f];
        for u in old.into_iter().chain(old_too).chain([0x600, 0x6dd, 0x110bd, 0x1d173]) {
            assert!(hazardous(char::from_u32(u).unwrap(), false), "U+{u:04X}");
        }
        assert!(!hazardous('\n', false) && !hazardous('\t', false) && hazardous('\n', true) && hazardous('\t', true));
        assert!(!hazardous('å', true) && !hazardous(' ', true) && !hazardous('\u{2028}', false));
    }

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
