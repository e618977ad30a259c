//! `kvitto export` and `kvitto verify-bundle`: a customer's history for a regulator, checked
//! offline with nothing but the file and the ledger's verifier key.

use std::path::Path;

use kvitto_core::EventKind;
use kvitto_proof::bundle::{Trust, VerifiedBundle, verify};

use crate::{Failure, say};

pub(crate) async fn export(
    dir: &Path,
    controller: &str,
    subject: &str,
    size: Option<u64>,
    out: &Path,
) -> Result<(), Failure> {
    let ledger = crate::open(dir).await?;
    let bundle = ledger.export_bundle(controller, subject, size).await.map_err(crate::query::read_failure);
    ledger.close().await;
    let bundle = bundle?;
    let text = serde_json::to_string_pretty(&bundle).map_err(|e| Failure::storage(e.to_string()))?;
    std::fs::write(out, format!("{text}\n")).map_err(|e| Failure::storage(format!("{}: {e}", out.display())))?;
    let n = bundle["events"].as_array().map_or(0, Vec::len);
    say!(
        "wrote {}: {n} events of subject {} proven against checkpoint size {}",
        out.display(),
        bundle["subject_id"].as_str().unwrap_or(""),
        bundle["checkpoint"].as_str().and_then(|c| c.split('\n').nth(1)).unwrap_or("?")
    );
    Ok(())
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
    json: bool,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
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
    match verify(&text, trust) {
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
                    serde_json::json!({"ok": true, "subject_id": v.subject.to_hex(), "checkpoint_size": v.size, "origin": v.origin, "events": events})
                );
            } else {
                say!("bundle of {} (checkpoint size {}), subject {}:", v.origin, v.size, v.subject);
                print_timeline(&v);
                say!(
                    "ok: {} events of subject {} proven against checkpoint size {}",
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
