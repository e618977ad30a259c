//! `kvitto append`: one JSON object or JSON Lines in, one receipt per event out; all or nothing.

use std::io::Read;
use std::path::Path;

use kvitto::{AppendError, Draft};

use crate::Failure;

/// Largest input accepted in one invocation.
const MAX_INPUT: u64 = 1 << 30;

/// Parses the whole input: a single (possibly pretty-printed) JSON object, or JSON Lines.
/// A UTF-8 BOM and CRLF line ends are accepted; blank lines are skipped. Returns each draft
/// with its 1-based line number, or the first problem as `line N: field F: …`.
pub(crate) fn parse_input(bytes: &[u8]) -> Result<Vec<(usize, Draft)>, String> {
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
        return Ok(vec![(1 + text[..leading].matches('\n').count(), d)]);
    }
    let mut drafts = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let draft = Draft::from_json_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        drafts.push((i + 1, draft));
    }
    Ok(drafts)
}

pub(crate) async fn run(dir: &Path, file: &Path) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Failure::input(format!("input is larger than {MAX_INPUT} bytes; split it")));
    }
    let parsed = parse_input(&bytes).map_err(Failure::input)?;
    let (lines, drafts): (Vec<usize>, Vec<Draft>) = parsed.into_iter().unzip();
    let ledger = crate::open(dir).await?;
    let result = ledger.append_batch(drafts).await;
    crate::close(ledger).await;
    match result {
        Ok(receipts) => {
            let mut out = String::with_capacity(receipts.len() * 160);
            for r in receipts {
                out.push_str(&r.to_json().to_string());
                out.push('\n');
            }
            crate::emit(format_args!("{}", out.trim_end()));
            Ok(())
        }
        Err(AppendError::IdConflict { index, event_id, existing_seq }) => Err(Failure::input(format!(
            "line {}: field event_id: {event_id} was already used {} with different content; nothing appended",
            lines.get(index).copied().unwrap_or(0),
            kvitto::used_by(existing_seq)
        ))),
        Err(AppendError::DuplicateInBatch { index, first, event_id }) => Err(Failure::input(format!(
            "line {}: field event_id: {event_id} repeats line {} with different content; nothing appended",
            lines.get(index).copied().unwrap_or(0),
            lines.get(first).copied().unwrap_or(0)
        ))),
        Err(e @ AppendError::Empty) => Err(Failure::input(e.to_string())),
        Err(AppendError::ErasureBlocked { index, why }) => Err(Failure::input(format!(
            "line {}: erasure refused: {why}; nothing appended",
            lines.get(index).copied().unwrap_or(0)
        ))),
        Err(AppendError::InvalidStep { index, why }) => Err(Failure::input(format!(
            "line {}: field request_id: {why}; nothing appended",
            lines.get(index).copied().unwrap_or(0)
        ))),
        Err(AppendError::DetailsAfterErasure { index, erasure }) => Err(Failure::input(format!(
            "line {}: field details: this customer's data_erased on line {} destroys the key these details would \
             be sealed under; append them separately after the erasure; nothing appended",
            lines.get(index).copied().unwrap_or(0),
            lines.get(erasure).copied().unwrap_or(0)
        ))),
        Err(AppendError::ErasureIncomplete { why, receipts }) => {
            // Recorded: the receipts stand; the erasure completes when the ledger is reopened.
            for r in &receipts {
                crate::emit(format_args!("{}", r.to_json()));
            }
            Err(Failure::storage(format!(
                "the {} events are recorded (receipts above), but destroying the erased keys failed: {why}; \
                 reopen the ledger to finish the erasure",
                receipts.len()
            )))
        }
        Err(AppendError::OutcomeUnknown { why, event_ids }) => {
            // The ids the ledger gave lines without one: re-sending the input with them
            // returns the original receipts if the events were recorded.
            let mut msg = format!(
                "storage failed while committing: {why}; whether these {} events were recorded is unknown. Once \
                 the cause is fixed, append the same input again with these event ids (lines without an \
                 event_id got one): recorded events answer with their original receipts, the rest are appended",
                event_ids.len()
            );
            for (line, id) in lines.iter().zip(&event_ids) {
                msg.push_str(&format!("\nline {line}: event_id {id}"));
            }
            Err(Failure::storage(msg))
        }
        Err(e) => Err(Failure::storage(format!("{e}; nothing appended"))),
    }
}
