//! `kvitto append`: one JSON object or JSON Lines in, one receipt per event out.
//!
//! The whole input is checked first (every line parses, no event id repeats with other
//! content): bad input writes nothing. Then it is appended in batches of `--batch-size`
//! events, each one commit group, all or nothing; an input of at most one batch is atomic as
//! a whole. Memory is bounded by the input (held once) plus one batch, not by the number of
//! events (docs/PERFORMANCE.md, "Memory of a large append").

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use kvitto::input::{Drafts, RepeatCheck, drafts, line_draft};
use kvitto::{AppendError, Draft, Receipt};

use crate::Failure;

/// Largest input accepted in one invocation.
pub(crate) const MAX_INPUT: u64 = 1 << 30;

/// Events per commit group by default: an input of up to this many events is appended all
/// or nothing.
pub(crate) const DEFAULT_BATCH: usize = 10_000;

/// Files up to this size are read whole (and may hold one pretty-printed object); larger ones
/// are JSON Lines, read line by line, twice (checked, then appended), never held whole.
const HELD_LIMIT: u64 = 1 << 20;

/// The input of one invocation.
enum Input {
    /// Read whole: stdin, or a small file.
    Held(Vec<u8>),
    /// A large file of JSON Lines, with its length and modification time when checked.
    File { path: PathBuf, len: u64, modified: Option<std::time::SystemTime> },
}

impl Input {
    fn read(file: &Path) -> Result<Input, Failure> {
        let failed = |e: std::io::Error| Failure::input(format!("{}: {e}", file.display()));
        let too_large = || {
            Failure::input(format!(
                "input is larger than {MAX_INPUT} bytes (the limit of one invocation); split it into several files"
            ))
        };
        let mut bytes = Vec::new();
        if file.as_os_str() == "-" {
            std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut bytes).map_err(failed)?;
        } else {
            let meta = std::fs::metadata(file).map_err(failed)?;
            if meta.len() > MAX_INPUT {
                return Err(too_large());
            }
            if meta.is_file() && meta.len() > HELD_LIMIT {
                return Ok(Input::File { path: file.to_path_buf(), len: meta.len(), modified: meta.modified().ok() });
            }
            std::fs::File::open(file).and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes)).map_err(failed)?;
        }
        if bytes.len() as u64 > MAX_INPUT {
            return Err(too_large());
        }
        Ok(Input::Held(bytes))
    }

    fn drafts(&self) -> Result<Drafts<'_>, String> {
        match self {
            Input::Held(bytes) => drafts(bytes),
            Input::File { path, .. } => {
                let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Box::new(LineDrafts { path, reader: std::io::BufReader::new(f), line: 0, buf: Vec::new() }))
            }
        }
    }

    /// Whether a file changed since it was checked (it is read again to append).
    fn changed(&self) -> bool {
        match self {
            Input::Held(_) => false,
            Input::File { path, len, modified } => {
                std::fs::metadata(path).map_or(true, |m| m.len() != *len || m.modified().ok() != *modified)
            }
        }
    }
}

/// JSON Lines read from a file one line at a time.
struct LineDrafts<'a> {
    path: &'a Path,
    reader: std::io::BufReader<std::fs::File>,
    line: usize,
    buf: Vec<u8>,
}

impl Iterator for LineDrafts<'_> {
    type Item = Result<(usize, Draft), String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(format!("{}: {e}", self.path.display()))),
            }
            self.line += 1;
            let mut bytes = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if self.line == 1 {
                bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Some(Err(format!("line {}: input is not valid UTF-8", self.line)));
            };
            if let Some(item) = line_draft(self.line, text) {
                return Some(item);
            }
        }
    }
}

/// Checks the whole input without keeping it: every line parses, and an event id given on
/// two lines names the same event (else the later batch would be refused after the earlier
/// ones were appended). Returns the number of events.
fn check_input(input: &Input) -> Result<usize, String> {
    let mut repeats = RepeatCheck::default();
    let mut n = 0;
    for item in input.drafts()? {
        let (line, draft) = item?;
        n += 1;
        repeats.check(line, &draft)?;
    }
    if n == 0 {
        return Err("no events in input".into());
    }
    Ok(n)
}

/// What earlier batches of this input appended, for an error in a later one.
#[derive(Clone, Copy)]
struct Progress {
    /// Events appended so far (their receipts are printed).
    appended: usize,
    /// The first line not appended (of the batch that failed, or after the last one appended).
    line: usize,
}

impl Progress {
    /// How the error ends: nothing appended, or what stands.
    fn outcome(self) -> String {
        if self.appended == 0 {
            "nothing appended".into()
        } else {
            format!(
                "the {} events before line {} were appended in earlier batches (their receipts are above); nothing \
                 from line {} on",
                self.appended, self.line, self.line
            )
        }
    }

    /// A refusal of the input: exit 2 when nothing was written, 4 when earlier batches were.
    fn refuse(self, message: String) -> Failure {
        if self.appended == 0 { Failure::input(message) } else { Failure::partial(message) }
    }
}

pub(crate) async fn run(dir: &Path, file: &Path, batch_size: usize) -> Result<(), Failure> {
    if batch_size == 0 {
        return Err(Failure::input("--batch-size: must be at least 1"));
    }
    let input = Input::read(file)?;
    let events = check_input(&input).map_err(Failure::input)?;
    let batches = events.div_ceil(batch_size);
    let progress_shown = batches > 1 && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let ledger = crate::open(dir).await?;
    let changed =
        || Failure::input(format!("{}: the file changed while it was read; nothing appended", file.display()));
    if input.changed() {
        crate::close(ledger).await;
        return Err(changed());
    }
    let mut items = input.drafts().map_err(Failure::input)?;
    let mut progress = Progress { appended: 0, line: 0 };
    let outcome = loop {
        let batch: Result<Vec<(usize, Draft)>, String> = items.by_ref().take(batch_size).collect();
        let batch = match batch {
            Ok(b) if b.is_empty() => break Ok(()),
            Ok(b) => b,
            // Checked above; only a file rewritten meanwhile gets here.
            Err(e) => {
                break Err(progress.refuse(format!("{e} (the file changed while it was read); {}", progress.outcome())));
            }
        };
        let (lines, drafts): (Vec<usize>, Vec<Draft>) = batch.into_iter().unzip();
        progress.line = lines[0];
        match ledger.append_batch(drafts).await {
            Ok(receipts) => {
                print_receipts(&receipts);
                progress.appended += receipts.len();
                progress.line = lines[lines.len() - 1] + 1;
                if progress_shown {
                    eprint!(
                        "\rappended {} of {events} events ({batches} batches, each all or nothing)",
                        progress.appended
                    );
                }
            }
            Err(e) => break Err(refused(e, &lines, progress)),
        }
    };
    if progress_shown {
        eprintln!();
    }
    crate::close(ledger).await;
    outcome
}

fn print_receipts(receipts: &[Receipt]) {
    let mut out = String::with_capacity(receipts.len() * 160);
    for r in receipts {
        out.push_str(&r.to_json().to_string());
        out.push('\n');
    }
    crate::emit(format_args!("{}", out.trim_end()));
}

/// The message and exit code for a batch the ledger refused.
fn refused(e: AppendError, lines: &[usize], progress: Progress) -> Failure {
    let outcome = progress.outcome();
    if let Some(message) = kvitto::input::refusal(&e, lines) {
        return progress.refuse(format!("{message}; {outcome}"));
    }
    match e {
        AppendError::ErasureIncomplete { why, receipts } => {
            // Recorded: the receipts stand; the erasure completes when the ledger is reopened.
            print_receipts(&receipts);
            Failure::storage(format!(
                "the {} events of this batch are recorded (receipts above), but destroying the erased keys failed: \
                 {why}; reopen the ledger to finish the erasure. Appending stopped there: no line after line {} \
                 was appended",
                receipts.len(),
                lines.last().copied().unwrap_or(0)
            ))
        }
        AppendError::OutcomeUnknown { why, event_ids } => {
            // The ids the ledger gave lines without one: re-sending the input with them
            // returns the original receipts if the events were recorded.
            let mut msg = format!(
                "storage failed while committing: {why}; whether these {} events were recorded is unknown. Once \
                 the cause is fixed, append the same input again with these event ids (lines without an \
                 event_id got one): recorded events answer with their original receipts, the rest are appended",
                event_ids.len()
            );
            if progress.appended > 0 {
                msg.push_str(&format!(
                    ". The {} events before line {} were appended (receipts above)",
                    progress.appended, progress.line
                ));
            }
            for (line, id) in lines.iter().zip(&event_ids) {
                msg.push_str(&format!("\nline {line}: event_id {id}"));
            }
            Failure::storage(msg)
        }
        e => Failure::storage(format!("{e}; {outcome}")),
    }
}
