//! `kvitto export` and `kvitto verify-bundle`: a customer's history for a regulator, checked
//! offline with nothing but the file and the ledger's verifier key.

use std::path::Path;

use kvitto_core::EventKind;
use kvitto_proof::bundle::{Options, Trust, VerifiedBundle, verify_with};
use kvitto_proof::checkpoint::WitnessKey;

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
        let details = match (&e.details, e.withheld, e.erased_by) {
            (Some(_), _, _) => " [details disclosed]".to_string(),
            (None, true, Some(by)) => format!(" [details erased by seq {by}]"),
            (None, true, None) => " [details withheld]".to_string(),
            (None, false, _) => String::new(),
        };
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
    let witnesses = held
        .witness_keys
        .iter()
        .map(|k| WitnessKey::parse(k).map_err(|e| Failure::input(format!("--witness-key {k:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let quorum = held.quorum.unwrap_or(witnesses.len().min(1));
    if quorum > witnesses.len() {
        return Err(Failure::input(format!("--quorum {quorum} needs at least {quorum} --witness-key")));
    }
    let key = match (key, key_file) {
        (Some(k), _) => Some(k),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f).map_err(|e| Failure::input(format!("{}: {e}", f.display())))?.trim().to_string(),
        ),
        (None, None) => None,
    };
    let trust = match (&key, trust_embedded) {
        (Some(k), _) => Trust::Key(k),
        (None, true) => {
            eprintln!(
                "warning: trusting the key embedded in the bundle proves only that it is intact, not that the ledger it claims signed it; get the key out of band (kvitto key) and pass --key"
            );
            Trust::Embedded
        }
        (None, false) => {
            return Err(Failure::input(
                "no verifier key: pass --key VKEY or --key-file FILE (from `kvitto key`), or --trust-embedded-key to check integrity only",
            ));
        }
    };
    match verify_with(&text, &Options { trust, since: since.as_deref(), witnesses: &witnesses, quorum }) {
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
                say!("bundle of {} (checkpoint size {}), subject {}:", v.origin, v.size, v.subject);
                print_timeline(&v);
                let complete = match v.complete_up_to {
                    Some(n) => format!(", complete up to {n}"),
                    None => ", NOT proven complete (a kvitto-bundle/1 cannot show that no event is left out)".into(),
                };
                let extends =
                    v.extends.map(|s| format!(", extends the held checkpoint of size {s}")).unwrap_or_default();
                let cosigned = if v.cosigned_by.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = v.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
                    format!(", cosigned by {}", names.join(", "))
                };
                if let Some(n) = v.complete_up_to {
                    // The exporter chose the commitment: say plainly what lies beyond it.
                    let later = v.size.saturating_sub(n + 1);
                    if later > 0 {
                        eprintln!(
                            "note: {later} event(s) of the log lie between the map commitment's tree size {n} and the \
                             checkpoint; the subject's events among them are shown and proven included, not proven \
                             complete (ask for a bundle from a newer commitment)"
                        );
                    }
                    if let Some(held) = v.extends.filter(|h| *h > n) {
                        eprintln!(
                            "warning: you hold a checkpoint of size {held}, beyond what this bundle proves complete \
                             ({n})"
                        );
                    }
                }
                say!(
                    "ok: {} events of subject {} proven against checkpoint size {}{complete}{extends}{cosigned}",
                    v.events.len(),
                    v.subject,
                    v.size
                );
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
