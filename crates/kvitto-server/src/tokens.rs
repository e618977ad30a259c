//! Scoped API tokens: `kvitto token create|list|revoke` and their check on every request.
//!
//! A token is `kvitto_<id>_<secret>`: a 12-hex-digit public id (what `list` and `revoke`
//! name) and 32 random bytes, base64url. The ledger directory's `tokens.json` keeps, per
//! token, its controller, scopes, times and the SHA-256 of the whole token — never the token
//! itself, which is shown once, when it is created. A presented token is hashed and compared
//! in constant time; an unknown id is compared against a dummy hash so that both take the
//! same time. The server rereads the file when it changes, so a revocation takes effect on
//! the next request.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kvitto::{Id, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The file in the ledger directory.
pub const TOKENS_FILE: &str = "tokens.json";
const LOCK_FILE: &str = "tokens.lock";
const FORMAT: &str = "kvitto-tokens/1";
const PREFIX: &str = "kvitto_";

/// What a token may do. Each route needs exactly one (docs/HTTP.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/events`.
    Append,
    /// may-process, consent, history.
    Read,
    /// Access report, processing record, requests, bundle export.
    Report,
    /// `POST /v1/erase`.
    Erase,
    /// Audit, retention plan, signing a checkpoint.
    Audit,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 5] = [Scope::Append, Scope::Read, Scope::Report, Scope::Erase, Scope::Audit];

    /// Its name in `--scope` and in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Append => "append",
            Scope::Read => "read",
            Scope::Report => "report",
            Scope::Erase => "erase",
            Scope::Audit => "audit",
        }
    }

    /// Parses a comma-separated list (`append,read`).
    pub fn parse_list(s: &str) -> Result<BTreeSet<Scope>, String> {
        let mut out = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|x| x.as_str() == part)
                .ok_or_else(|| format!("unknown scope {part:?}; one or more of append, read, report, erase, audit"))?;
            out.insert(scope);
        }
        if out.is_empty() {
            return Err("no scope given; one or more of append, read, report, erase, audit".into());
        }
        Ok(out)
    }
}

/// One token as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (12 hex digits).
    pub id: String,
    /// The one controller it may read and write.
    pub controller: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None`: never.
    pub expires_at: Option<String>,
    /// RFC 3339 when revoked.
    pub revoked_at: Option<String>,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
}

impl TokenRecord {
    /// `active`, `expired` or `revoked` at `now`.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires(now) {
            "expired"
        } else {
            "active"
        }
    }

    fn expires(&self, now: Timestamp) -> bool {
        // An expiry the file cannot parse counts as expired: fail closed.
        self.expires_at.as_deref().is_some_and(|t| Timestamp::parse_rfc3339(t).map_or(true, |t| t <= now))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    format: String,
    tokens: Vec<TokenRecord>,
}

/// A token management or check failure.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad `--controller`, `--scope`, `--expires` or token id.
    #[error("{0}")]
    Input(String),
    /// The file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// What a valid token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The token's public id (safe to log).
    pub id: String,
    /// Its controller.
    pub controller: String,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
}

/// A file's length and modification time: when either changes, it is read again.
type Stamp = (u64, SystemTime);

/// The tokens of one ledger directory.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    dir: PathBuf,
    /// The file as last read, and its (length, modification time) then.
    cache: RwLock<(Option<Stamp>, Vec<TokenRecord>)>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |e| TokenError::Io { path: path.to_path_buf(), message: e.to_string() }
}

fn hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl TokenStore {
    /// The tokens of the ledger in `dir` (the file need not exist yet).
    pub fn new(dir: &Path) -> TokenStore {
        TokenStore { path: dir.join(TOKENS_FILE), dir: dir.to_path_buf(), cache: RwLock::new((None, Vec::new())) }
    }

    fn read_file(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        let file: TokenFile = serde_json::from_slice(&bytes)
            .map_err(|e| TokenError::Io { path: self.path.clone(), message: format!("not a token file: {e}") })?;
        if file.format != FORMAT {
            return Err(TokenError::Io {
                path: self.path.clone(),
                message: format!("format {:?}, expected {FORMAT:?}", file.format),
            });
        }
        Ok(file.tokens)
    }

    /// Every token (newest last).
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        self.read_file()
    }

    /// Runs `f` on the file's tokens under the lock and writes the result atomically.
    fn update<T>(&self, f: impl FnOnce(&mut Vec<TokenRecord>) -> Result<T, TokenError>) -> Result<T, TokenError> {
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        fs2::FileExt::lock_exclusive(&lock).map_err(io_error(&lock_path))?;
        let mut tokens = self.read_file()?;
        let out = f(&mut tokens)?;
        let text = serde_json::to_vec_pretty(&TokenFile { format: FORMAT.into(), tokens })
            .map_err(|e| TokenError::Io { path: self.path.clone(), message: e.to_string() })?;
        let tmp = self.dir.join(format!("{TOKENS_FILE}.tmp"));
        // A leftover from an interrupted write goes first, so that the new file is created
        // here with mode 0600 rather than inheriting the old one's.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&tmp)(e)),
            _ => {}
        }
        let mut options = std::fs::OpenOptions::new();
        options.create_new(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
        file.write_all(&text)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_error(&self.path))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_error(&self.dir))?;
        fs2::FileExt::unlock(&lock).map_err(io_error(&lock_path))?;
        Ok(out)
    }

    /// Creates a token; returns it (shown once: only its hash is kept) and its record.
    pub fn create(
        &self,
        controller: &str,
        scopes: BTreeSet<Scope>,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(String, TokenRecord), TokenError> {
        let controller = Id::new(controller).map_err(|e| TokenError::Input(format!("--controller: {e}")))?;
        if scopes.is_empty() {
            return Err(TokenError::Input("--scope: no scope given".into()));
        }
        if expires_at.is_some_and(|t| t <= now) {
            return Err(TokenError::Input("--expires: must be in the future".into()));
        }
        let mut random = [0u8; 38];
        getrandom::fill(&mut random).map_err(|e| TokenError::Input(format!("no randomness: {e}")))?;
        let id = hex::encode(&random[..6]);
        let token = format!("{PREFIX}{id}_{}", B64.encode(&random[6..]));
        let record = TokenRecord {
            id,
            controller: controller.as_str().to_string(),
            scopes,
            created_at: now.to_rfc3339(),
            expires_at: expires_at.map(|t| t.to_rfc3339()),
            revoked_at: None,
            sha256: hash_hex(&token),
        };
        let kept = record.clone();
        self.update(move |tokens| {
            tokens.push(kept);
            Ok(())
        })?;
        Ok((token, record))
    }

    /// Revokes the token with public id `id`; `false` when it was revoked already.
    pub fn revoke(&self, id: &str, now: Timestamp) -> Result<bool, TokenError> {
        self.update(|tokens| {
            let t = tokens
                .iter_mut()
                .find(|t| t.id == id)
                .ok_or_else(|| TokenError::Input(format!("no token with id {id:?} (see `kvitto token list`)")))?;
            if t.revoked_at.is_some() {
                return Ok(false);
            }
            t.revoked_at = Some(now.to_rfc3339());
            Ok(true)
        })
    }

    /// Rereads the file when it changed since the last check.
    fn refresh(&self) -> Result<(), TokenError> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.len(), m.modified().map_err(io_error(&self.path))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        let current = self.cache.read().map(|c| c.0).unwrap_or(None);
        if current.is_some() && current == stamp {
            return Ok(());
        }
        let tokens = self.read_file()?;
        if let Ok(mut c) = self.cache.write() {
            *c = (stamp, tokens);
        }
        Ok(())
    }

    /// The grant of a presented token (the `Authorization: Bearer` value), or `None` when it
    /// is malformed, unknown, revoked or expired — one answer for all, so none is revealed.
    pub fn check(&self, presented: &str, now: Timestamp) -> Result<Option<Grant>, TokenError> {
        self.refresh()?;
        let id = presented.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')).map(|(id, _)| id).unwrap_or("");
        let presented_hash = Sha256::digest(presented.as_bytes());
        let cache = self
            .cache
            .read()
            .map_err(|_| TokenError::Io { path: self.path.clone(), message: "token cache lock poisoned".into() })?;
        let found = cache.1.iter().find(|t| t.id == id && !id.is_empty());
        // Compared either way, against a hash no token has when the id is unknown.
        let expected = found.and_then(|t| hex::decode(&t.sha256).ok()).unwrap_or_else(|| vec![0xff; 32]);
        let equal: bool = presented_hash.as_slice().ct_eq(&expected).into();
        Ok(match found {
            Some(t) if equal && t.status(now) == "active" => {
                Some(Grant { id: t.id.clone(), controller: t.controller.clone(), scopes: t.scopes.clone() })
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::now()
    }

    #[test]
    fn created_tokens_check_and_revoke() -> Result<(), TokenError> {
        let dir = tempfile::tempdir().map_err(|e| TokenError::Input(e.to_string()))?;
        let store = TokenStore::new(dir.path());
        let scopes = Scope::parse_list("append,read").map_err(TokenError::Input)?;
        let (token, record) = store.create("kalejdo", scopes.clone(), None, now())?;
        assert!(token.starts_with(&format!("kvitto_{}_", record.id)));
        let text =
            std::fs::read_to_string(dir.path().join(TOKENS_FILE)).map_err(|e| TokenError::Input(e.to_string()))?;
        assert!(!text.contains(&token[19..]), "the secret must not be stored");
        assert!(text.contains(&hash_hex(&token)));
        let grant = store.check(&token, now())?;
        assert_eq!(grant.map(|g| (g.controller, g.scopes)), Some(("kalejdo".to_string(), scopes)));
        // One character changed, another id, garbage: all refused alike.
        let mut wrong = token.clone().into_bytes();
        let last = wrong.len() - 1;
        wrong[last] = if wrong[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(store.check(&String::from_utf8_lossy(&wrong), now())?, None);
        assert_eq!(store.check("kvitto_000000000000_x", now())?, None);
        assert_eq!(store.check("", now())?, None);
        assert!(store.revoke(&record.id, now())?);
        assert!(!store.revoke(&record.id, now())?);
        assert_eq!(store.check(&token, now())?, None, "a revoked token is refused at once");
        assert!(matches!(store.revoke("nope", now()), Err(TokenError::Input(_))));
        Ok(())
    }

    #[test]
    fn expired_tokens_are_refused() -> Result<(), TokenError> {
        let dir = tempfile::tempdir().map_err(|e| TokenError::Input(e.to_string()))?;
        let store = TokenStore::new(dir.path());
        let t0 = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").map_err(TokenError::Input)?;
        let t1 = Timestamp::parse_rfc3339("2026-02-01T00:00:00Z").map_err(TokenError::Input)?;
        let (token, _) = store.create("kalejdo", BTreeSet::from([Scope::Read]), Some(t1), t0)?;
        assert!(store.check(&token, t0)?.is_some());
        assert_eq!(store.check(&token, t1)?, None);
        assert!(matches!(
            store.create("kalejdo", BTreeSet::from([Scope::Read]), Some(t0), t1),
            Err(TokenError::Input(_))
        ));
        assert!(matches!(store.create("bad id!", BTreeSet::from([Scope::Read]), None, t0), Err(TokenError::Input(_))));
        Ok(())
    }

    #[test]
    fn scope_lists() {
        assert_eq!(Scope::parse_list("read, audit"), Ok(BTreeSet::from([Scope::Read, Scope::Audit])));
        assert!(Scope::parse_list("read,write").is_err_and(|e| e.contains("\"write\"")));
        assert!(Scope::parse_list("").is_err());
    }
}
