//! Append input as people and services send it: one JSON object (pretty-printed or not) or
//! JSON Lines, checked whole before anything is written. The CLI's `kvitto append` and the
//! HTTP API's `POST /v1/events` share these rules, so both name a problem the same way:
//! `line N: field F: what is wrong`.

use std::collections::HashMap;

use kvitto_core::{Draft, EventId, Timestamp};

use crate::AppendError;

/// Drafts with their 1-based line numbers, or the problem as `line N: field F: …`.
pub type Drafts<'a> = Box<dyn Iterator<Item = Result<(usize, Draft), String>> + 'a>;

/// The drafts of an input held whole: a single (possibly pretty-printed) JSON object, or JSON
/// Lines. A UTF-8 BOM and CRLF line ends are accepted; blank lines are skipped. An input with
/// no event at all is an error.
pub fn drafts(bytes: &[u8]) -> Result<Drafts<'_>, String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count();
            return Err(format!("line {line}: input is not valid UTF-8"));
        }
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("no events in input".into());
    }
    // A pretty-printed single object spans lines; accept it as event 1.
    if trimmed.starts_with('{')
        && trimmed.contains('\n')
        && let Ok(d) = Draft::from_json_str(trimmed)
    {
        let leading = text.len() - text.trim_start().len();
        return Ok(Box::new(std::iter::once(Ok((1 + text[..leading].matches('\n').count(), d)))));
    }
    Ok(Box::new(text.split('\n').enumerate().filter_map(|(i, line)| line_draft(i + 1, line))))
}

/// One line of JSON Lines (1-based `n`, CR and all): `None` when blank, else its draft or the
/// problem as `line N: …`.
pub fn line_draft(n: usize, line: &str) -> Option<Result<(usize, Draft), String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return None;
    }
    Some(Draft::from_json_str(line).map(|d| (n, d)).map_err(|e| format!("line {n}: {e}")))
}

/// A point in time as people write it: RFC 3339, or a date (`2026-03-01`) meaning the end of
/// that day (UTC). The CLI's `--at`/`--known-at`/`--now` and the HTTP API's query share it.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        return Timestamp::parse_rfc3339(&format!("{s}T23:59:59.999999Z"));
    }
    Timestamp::parse_rfc3339(s)
}

/// The point of view of a question: `at` (occurred time) and `known_at` (recorded time),
/// each now when not given. The CLI's `--at`/`--known-at` and the HTTP API's query share it.
pub fn as_of(at: Option<Timestamp>, known_at: Option<Timestamp>) -> kvitto_projections::AsOf {
    let now = kvitto_projections::AsOf::now();
    kvitto_projections::AsOf { at: at.unwrap_or(now.at), known_at: known_at.unwrap_or(now.known_at) }
}

/// Remembers the event ids of an input: an id given on two lines must name the same event
/// (else the ledger would refuse the later one after the earlier was appended).
#[derive(Debug, Default)]
pub struct RepeatCheck {
    ids: HashMap<EventId, (usize, blake3::Hash)>,
}

impl RepeatCheck {
    /// Checks the draft on `line` against the earlier lines.
    pub fn check(&mut self, line: usize, draft: &Draft) -> Result<(), String> {
        let Some(id) = draft.event_id else { return Ok(()) };
        let content = blake3::hash(&serde_json::to_vec(&draft.to_json()).unwrap_or_default());
        match self.ids.get(&id) {
            Some((first, seen)) if *seen != content => Err(format!(
                "line {line}: field event_id: {id} repeats line {first} with different content; nothing appended"
            )),
            Some(_) => Ok(()),
            None => {
                self.ids.insert(id, (line, content));
                Ok(())
            }
        }
    }
}

/// Why the ledger refused a batch of input, naming lines as the input does (`lines[i]` is
/// the line of the batch's event `i`): `Some` for a refusal of the input itself (nothing of
/// the batch was written), `None` for a failure of the ledger (storage, closed, unknown
/// outcome), which the caller reports its own way.
pub fn refusal(e: &AppendError, lines: &[usize]) -> Option<String> {
    let line = |index: usize| lines.get(index).copied().unwrap_or(0);
    Some(match e {
        AppendError::IdConflict { index, event_id, existing_seq } => format!(
            "line {}: field event_id: {event_id} was already used {} with different content",
            line(*index),
            crate::used_by(*existing_seq)
        ),
        AppendError::DuplicateInBatch { index, first, event_id } => format!(
            "line {}: field event_id: {event_id} repeats line {} with different content",
            line(*index),
            line(*first)
        ),
        AppendError::Empty => e.to_string(),
        AppendError::ErasureBlocked { index, why } => format!("line {}: erasure refused: {why}", line(*index)),
        AppendError::InvalidStep { index, why } => {
            // A step out of order names its request; the other refusals name their own field.
            let field = if why.starts_with("event_id") {
                "event_id"
            } else if why.contains("written by the ledger itself") {
                "type"
            } else {
                "request_id"
            };
            format!("line {}: field {field}: {why}", line(*index))
        }
        AppendError::DetailsAfterErasure { index, erasure } => format!(
            "line {}: field details: this customer's data_erased on line {} destroys the key these details would \
             be sealed under; append them separately after the erasure",
            line(*index),
            line(*erasure)
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"type":"consent_given","controller":"kalejdo","subject":"c-1","purpose":"marketing"}"#;

    #[test]
    fn lines_objects_and_problems() {
        let two = format!("\u{feff}{A}\r\n\n{A}\n");
        let got: Vec<usize> =
            drafts(two.as_bytes()).and_then(|d| d.map(|r| r.map(|(n, _)| n)).collect()).unwrap_or_default();
        assert_eq!(got, vec![1, 3]);
        let pretty = "\n{\n  \"type\": \"consent_given\",\n  \"controller\": \"kalejdo\",\n  \"subject\": \"c-1\",\n  \"purpose\": \"marketing\"\n}\n";
        let got: Vec<usize> =
            drafts(pretty.as_bytes()).and_then(|d| d.map(|r| r.map(|(n, _)| n)).collect()).unwrap_or_default();
        assert_eq!(got, vec![2]);
        let bad = format!("{A}\n{{\"type\":\"consent_given\",\"controller\":\"kalejdo\",\"subject\":\"c-1\"}}\n");
        let err = drafts(bad.as_bytes()).and_then(|d| d.collect::<Result<Vec<_>, _>>()).err().unwrap_or_default();
        assert!(err.starts_with("line 2: field purpose"), "{err}");
        assert_eq!(drafts(b" \n").err().as_deref(), Some("no events in input"));
        assert_eq!(drafts(b"{}\n\xff").err().as_deref(), Some("line 2: input is not valid UTF-8"));
    }

    #[test]
    fn a_repeated_event_id_must_name_the_same_event() {
        let id = "0190a0f0-0000-7000-8000-000000000001";
        let one = format!(
            r#"{{"type":"consent_given","controller":"kalejdo","subject":"c-1","purpose":"marketing","event_id":"{id}"}}"#
        );
        let other = one.replace("c-1", "c-2");
        let mut check = RepeatCheck::default();
        let d = |s: &str| Draft::from_json_str(s).map_err(|e| e.to_string());
        assert_eq!(d(&one).and_then(|x| check.check(1, &x)), Ok(()));
        assert_eq!(d(&one).and_then(|x| check.check(2, &x)), Ok(()));
        let err = d(&other).and_then(|x| check.check(3, &x)).err().unwrap_or_default();
        assert!(err.starts_with(&format!("line 3: field event_id: {id} repeats line 1")), "{err}");
    }
}
