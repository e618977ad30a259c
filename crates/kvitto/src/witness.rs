//! Witness cosigning (C2SP `tlog-witness`, `tlog-cosignature`): the witness policy kept in the
//! ledger directory, and the `add-checkpoint` client. A witness keeps the latest checkpoint
//! it cosigned per log and refuses one that is not consistent with it, so two different trees
//! of one log (a fork, a rollback) cannot both collect its cosignature.
//!
//! Files (text, in the ledger directory): `witnesses` — one `NAME URL VKEY` line per witness;
//! `witness-state` — one `NAME SIZE` line per witness: the tree size it last cosigned (the
//! `old` size of the next request).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kvitto_proof::checkpoint::WitnessKey;

use crate::{Ledger, ReadError, blocking};

const POLICY_FILE: &str = "witnesses";
const STATE_FILE: &str = "witness-state";
/// A witness answer larger than this is not a list of signature lines.
const MAX_RESPONSE: u64 = 64 * 1024;

/// One configured witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// A short local name (no spaces).
    pub name: String,
    /// The submission prefix: `add-checkpoint` is POSTed to `<url>/add-checkpoint`.
    pub url: String,
    /// Its cosignature/v1 key.
    pub key: WitnessKey,
}

/// What one witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessOutcome {
    /// Cosigned; the verified signature line was stored with the checkpoint.
    Cosigned {
        /// Local name.
        name: String,
        /// The cosignature's timestamp.
        timestamp: u64,
    },
    /// Refused or unreachable, with why (the checkpoint itself is stored regardless).
    Failed {
        /// Local name.
        name: String,
        /// HTTP status, if one came back.
        status: Option<u16>,
        /// What it means.
        why: String,
    },
}

fn policy_err(path: &Path, line: usize, why: impl std::fmt::Display) -> ReadError {
    ReadError::BadQuery { field: "witnesses", message: format!("{}:{line}: {why}", path.display()) }
}

fn read_lines(path: &Path) -> Result<Vec<String>, ReadError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ReadError::Storage(crate::StorageError::io(path, &e))),
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), ReadError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let err = |e: std::io::Error| ReadError::Storage(crate::StorageError::io(path, &e));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(char::is_whitespace) {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    Ok(())
}

/// Reads the witness policy of a ledger directory.
pub fn policy(dir: &Path) -> Result<Vec<Witness>, ReadError> {
    let path = dir.join(POLICY_FILE);
    let mut out: Vec<Witness> = Vec::new();
    for (i, line) in read_lines(&path)?.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, url, vkey] = parts[..] else { return Err(policy_err(&path, i + 1, "expected NAME URL VKEY")) };
        check_url(url).map_err(|e| policy_err(&path, i + 1, e))?;
        let key = WitnessKey::parse(vkey).map_err(|e| policy_err(&path, i + 1, e))?;
        if out.iter().any(|w| w.name == name) {
            return Err(policy_err(&path, i + 1, format!("witness {name:?} twice")));
        }
        out.push(Witness { name: name.to_string(), url: url.trim_end_matches('/').to_string(), key });
    }
    Ok(out)
}

/// Adds a witness to the policy (refuses a name already there).
pub fn add(dir: &Path, name: &str, url: &str, vkey: &str) -> Result<Witness, ReadError> {
    let bad = |field: &'static str, message: String| ReadError::BadQuery { field, message };
    if name.is_empty() || name.contains(char::is_whitespace) || name.starts_with('#') {
        return Err(bad("name", format!("{name:?}: one word, no spaces")));
    }
    check_url(url).map_err(|e| bad("url", e))?;
    let key = WitnessKey::parse(vkey).map_err(|e| bad("vkey", e.to_string()))?;
    let mut all = policy(dir)?;
    if all.iter().any(|w| w.name == name) {
        return Err(bad("name", format!("a witness named {name:?} is already configured")));
    }
    let w = Witness { name: name.to_string(), url: url.trim_end_matches('/').to_string(), key };
    all.push(w.clone());
    save_policy(dir, &all)?;
    Ok(w)
}

/// Removes a witness; `false` when none had that name.
pub fn remove(dir: &Path, name: &str) -> Result<bool, ReadError> {
    let mut all = policy(dir)?;
    let before = all.len();
    all.retain(|w| w.name != name);
    if all.len() == before {
        return Ok(false);
    }
    save_policy(dir, &all)?;
    Ok(true)
}

fn save_policy(dir: &Path, all: &[Witness]) -> Result<(), ReadError> {
    let mut text = String::from("# kvitto witness policy: NAME URL VKEY (C2SP tlog-witness, cosignature/v1)\n");
    for w in all {
        text.push_str(&format!("{} {} {}\n", w.name, w.url, w.key.vkey()));
    }
    write_atomic(&dir.join(POLICY_FILE), &text)
}

fn state(dir: &Path) -> Result<Vec<(String, u64)>, ReadError> {
    let path = dir.join(STATE_FILE);
    read_lines(&path)?
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let (n, s) = l.trim().split_once(' ').ok_or_else(|| policy_err(&path, i + 1, "expected NAME SIZE"))?;
            Ok((n.to_string(), s.parse().map_err(|_| policy_err(&path, i + 1, "size is not a number"))?))
        })
        .collect()
}

fn save_state(dir: &Path, all: &[(String, u64)]) -> Result<(), ReadError> {
    let text: String = all.iter().map(|(n, s)| format!("{n} {s}\n")).collect();
    write_atomic(&dir.join(STATE_FILE), &text)
}

/// One `add-checkpoint` exchange: (status, body), or why no answer came.
fn post(url: &str, body: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{url}/add-checkpoint"))
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(body)
        .map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// The request body: `old N`, the proof lines, a blank line, the checkpoint.
fn request(old: u64, proof: &[[u8; 32]], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&B64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

impl Ledger {
    /// Sends the latest stored checkpoint to every witness of the policy (`add-checkpoint`,
    /// with a consistency proof from the size each last cosigned), verifies each returned
    /// cosignature against the witness's key, and stores the valid lines with the
    /// checkpoint (so bundles carry them). A 409 (the witness holds another size) is retried
    /// once from the size it names; other refusals are reported, never hidden.
    pub async fn cosign(&self) -> Result<Vec<WitnessOutcome>, ReadError> {
        let witnesses = policy(self.dir())?;
        if witnesses.is_empty() {
            return Ok(Vec::new());
        }
        let (size, stored) = self.checkpoint_note(None)?.ok_or_else(|| ReadError::BadQuery {
            field: "checkpoint",
            message: "no checkpoint is stored yet".into(),
        })?;
        // The log's own note (its signature line), without cosignatures already collected.
        let (body, lines) = kvitto_proof::checkpoint::split_note(&stored)
            .map_err(|e| ReadError::Corrupt { at: format!("checkpoint {size}"), what: e.to_string() })?;
        let own_prefix = format!("\u{2014} {} ", self.origin());
        let own: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with(&own_prefix)).collect();
        let log_note = format!("{body}\n{}\n", own.join("\n"));
        let mut states = state(self.dir())?;
        let mut outcomes = Vec::new();
        let mut cosignatures = String::new();
        for w in &witnesses {
            let mut old = states.iter().find(|(n, _)| n == &w.name).map_or(0, |(_, s)| *s);
            let mut outcome = None;
            for _attempt in 0..2 {
                let failed =
                    |status: Option<u16>, why: String| WitnessOutcome::Failed { name: w.name.clone(), status, why };
                if old > size {
                    outcome = Some(failed(
                        None,
                        format!(
                            "the witness last cosigned size {old}, more than this ledger's checkpoint of size {size}: \
                             this ledger was rolled back, or another copy of it is being witnessed"
                        ),
                    ));
                    break;
                }
                let proof = if old == 0 || old == size {
                    Vec::new()
                } else {
                    self.consistency_proof(old, size).await?.proof.into_iter().map(|h| h.0).collect()
                };
                let (url, req) = (w.url.clone(), request(old, &proof, &log_note));
                let answer = blocking(move || Ok(post(&url, &req))).await?;
                let (status, text) = match answer {
                    Ok(a) => a,
                    Err(why) => {
                        outcome = Some(failed(None, why));
                        break;
                    }
                };
                match status {
                    200 => {
                        // Only lines that parse and verify under the witness's key are kept:
                        // anything else in the answer never reaches the stored note.
                        let cosigned = format!("{log_note}{text}");
                        outcome = Some(match kvitto_proof::checkpoint::cosignature_lines(&cosigned, &w.key) {
                            Ok(lines) if !lines.is_empty() => {
                                let timestamp = lines.iter().map(|(_, t)| *t).max().unwrap_or_default();
                                for (line, _) in lines {
                                    cosignatures.push_str(&line);
                                    cosignatures.push('\n');
                                }
                                WitnessOutcome::Cosigned { name: w.name.clone(), timestamp }
                            }
                            Ok(_) => failed(Some(200), "the answer holds no cosignature by the witness's key".into()),
                            Err(e) => failed(Some(200), format!("the returned cosignature does not verify: {e}")),
                        });
                        break;
                    }
                    409 => match text.trim().parse::<u64>() {
                        Ok(theirs) if theirs != old => {
                            old = theirs;
                            continue;
                        }
                        _ => {
                            outcome = Some(failed(Some(409), format!("conflict, and no usable size in {text:?}")));
                            break;
                        }
                    },
                    403 => {
                        outcome = Some(failed(
                            Some(403),
                            "the witness does not accept this log's signature (is its key for this origin the one \
                             `kvitto key` prints?)"
                                .into(),
                        ))
                    }
                    404 => {
                        outcome = Some(failed(
                            Some(404),
                            format!(
                                "the witness does not know the origin {:?}: ask its operator to add the log key",
                                self.origin()
                            ),
                        ))
                    }
                    422 => {
                        outcome = Some(failed(
                            Some(422),
                            format!(
                                "the witness refuses: the checkpoint is not consistent with the one of size {old} it \
                                 cosigned (a fork or a rewritten history)"
                            ),
                        ))
                    }
                    s => outcome = Some(failed(Some(s), format!("unexpected answer: {}", text.trim()))),
                }
                break;
            }
            let outcome = outcome.unwrap_or_else(|| WitnessOutcome::Failed {
                name: w.name.clone(),
                status: Some(409),
                why: "still a conflict after retrying from the witness's size".into(),
            });
            if matches!(outcome, WitnessOutcome::Cosigned { .. }) {
                states.retain(|(n, _)| n != &w.name);
                states.push((w.name.clone(), size));
            }
            outcomes.push(outcome);
        }
        if !cosignatures.is_empty() {
            // Keep cosignatures already stored by witnesses that were not asked again.
            let mut note = log_note.clone();
            for line in lines.iter().filter(|l| !l.starts_with(&own_prefix)) {
                let name = line.trim_start_matches("\u{2014} ").split(' ').next().unwrap_or_default();
                if !cosignatures.lines().any(|c| c.trim_start_matches("\u{2014} ").starts_with(&format!("{name} "))) {
                    note.push_str(line);
                    note.push('\n');
                }
            }
            note.push_str(&cosignatures);
            let inner = self.inner.clone();
            blocking(move || Ok(inner.store.put_checkpoint(size, &note)?)).await?;
        }
        save_state(self.dir(), &states)?;
        Ok(outcomes)
    }
}
