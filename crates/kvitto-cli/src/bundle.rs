//! `kvitto export` and `kvitto verify-bundle`: a customer's history for a regulator, checked
//! offline with nothing but the file and the ledger's verifier key.

use std::path::Path;

use kvitto_core::EventKind;
use kvitto_proof::bundle::{VerifiedBundle, verify_with};

use crate::{Failure, say};

pub(crate) async fn export(
    dir: &Path,
    controller: &str,
    subject: &str,
    size: Option<u64>,
    since: Option<&Path>,
    out: &Path,
    force: bool,
) -> Result<(), Failure> {
    refuse_existing(out, force)?;
    let held = since.map(read_text).transpose()?;
    let ledger = crate::open_read(dir).await?;
    let bundle =
        ledger.export_bundle(controller, subject, size, held.as_deref()).await.map_err(crate::query::read_failure);
    crate::close(ledger).await;
    let bundle = bundle?;
    let text = serde_json::to_string_pretty(&bundle).map_err(|e| Failure::storage(e.to_string()))?;
    write_private(out, format!("{text}\n").as_bytes(), force)?;
    let n = bundle["events"].as_array().map_or(0, Vec::len);
    say!(
        "wrote {}: {n} events of subject {} proven against checkpoint size {}, complete up to {}{}",
        out.display(),
        bundle["subject_id"].as_str().unwrap_or(""),
        bundle["checkpoint"].as_str().and_then(|c| c.split('\n').nth(1)).unwrap_or("?"),
        bundle["info"]["complete_up_to"],
        match bundle["consistency"]["size1"].as_u64() {
            Some(s) => format!(", with a consistency proof from size {s}"),
            None => String::new(),
        }
    );
    Ok(())
}

fn exists(path: &Path) -> Failure {
    Failure::input(format!("{} exists; pass --force to replace it (nothing written)", path.display()))
}

/// Refuses an existing output file before any work is done (nothing is written); `force`
/// allows replacing it.
pub(crate) fn refuse_existing(path: &Path, force: bool) -> Result<(), Failure> {
    if path.exists() && !force { Err(exists(path)) } else { Ok(()) }
}

/// Writes a file that holds personal data: mode 0600 from its creation, never over an
/// existing file unless `force` (then replaced atomically: temporary file, fsync, rename).
pub(crate) fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    use std::io::Write;
    refuse_existing(path, force)?;
    let err = |e: std::io::Error| Failure::storage(format!("{}: {e}", path.display()));
    let tmp = path.with_file_name(format!(
        ".{}.kvitto-tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// A small text file given on the command line (a key, a checkpoint note).
pub(crate) fn read_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::input(format!("{}: {e}", path.display())))
}

/// What `verify-bundle` checks besides the bundle itself.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// A checkpoint note of the log the verifier already holds.
    pub since: Option<std::path::PathBuf>,
    /// Trusted witness keys.
    pub witness_keys: Vec<String>,
    /// Cosignatures required.
    pub quorum: Option<usize>,
}

fn what(kind: &EventKind) -> String {
    crate::table::summary(kind)
}

fn print_timeline(v: &VerifiedBundle) {
    say!("{:>8}  {:<20}  {:<26}  what", "seq", "occurred_at", "event");
    for e in &v.events {
        let t = e.event.occurred_at.to_rfc3339();
        let details = e.details_note();
        say!(
            "{:>8}  {:<20}  {:<26}  {}{details}",
            e.event.seq,
            t.get(..19).unwrap_or(&t),
            e.event.kind.name(),
            what(&e.event.kind)
        );
    }
}

pub(crate) fn verify_bundle(
    file: &Path,
    key: Option<String>,
    key_file: Option<&Path>,
    trust_embedded: bool,
    held: &Held,
    json: bool,
) -> Result<(), Failure> {
    let text = read_text(file)?;
    let since = held.since.as_deref().map(read_text).transpose()?;
    let witness_keys: Vec<&str> = held.witness_keys.iter().map(String::as_str).collect();
    let (witnesses, quorum) = kvitto_proof::bundle::witnesses(&witness_keys, held.quorum).map_err(Failure::input)?;
    let key = match (key, key_file) {
        (Some(k), _) => Some(k),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f).map_err(|e| Failure::input(format!("{}: {e}", f.display())))?.trim().to_string(),
        ),
        (None, None) => None,
    };
    let (trust, warning) = kvitto_proof::bundle::trust(key.as_deref(), trust_embedded).map_err(Failure::input)?;
    let trusted = kvitto_proof::bundle::Trusted { trust, witnesses, quorum, warning };
    if let Some(warning) = trusted.warning {
        eprintln!("{warning}");
    }
    match verify_with(&text, &trusted.options(since.as_deref())) {
        Ok(v) => {
            if json {
                let events: Vec<serde_json::Value> = v
                    .events
                    .iter()
                    .map(|e| {
                        let mut m = kvitto_core::json::event_to_json(&e.event);
                        m.insert("hash".into(), e.hash.to_hex().into());
                        if let Some(d) = &e.details {
                            m.insert("details".into(), d.clone());
                        }
                        serde_json::Value::Object(m)
                    })
                    .collect();
                say!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "subject_id": v.subject.to_hex(),
                        "checkpoint_size": v.size,
                        "origin": v.origin,
                        "complete_up_to": v.complete_up_to,
                        "extends_held_checkpoint": v.extends,
                        "cosigned_by": v.cosigned_by.iter().map(|(n, t)| serde_json::json!({"witness": n, "timestamp": t})).collect::<Vec<_>>(),
                        "events": events,
                    })
                );
            } else {
                let verdict = v.verdict();
                say!("{}", verdict.header);
                print_timeline(&v);
                for line in verdict.notes.iter().chain(&verdict.warnings) {
                    eprintln!("{line}");
                }
                say!("{}", verdict.ok_line);
            }
            Ok(())
        }
        Err(e) => {
            if json {
                say!("{}", serde_json::json!({"ok": false, "error": e.to_string()}));
            }
            Err(Failure { code: 1, message: format!("bundle verification failed: {e}") })
        }
    }
}
