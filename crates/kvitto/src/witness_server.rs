//! A witness (C2SP `tlog-witness`, Ed25519 `cosignature/v1`): `kvitto witness serve` for an
//! auditor, a partner or a regulator who wants to cosign a kvitto ledger's checkpoints, and
//! the witness of the demo. It keeps the latest cosigned (size, root) per log origin in a
//! state file, written before it answers, and cosigns only checkpoints consistent with it.
//!
//! Plain HTTP/1.1 (`POST /add-checkpoint`, one request per connection), meant for loopback or
//! behind a TLS-terminating reverse proxy; bodies are capped at 64 KiB.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use kvitto_proof::checkpoint::{self, WitnessKey};
use kvitto_proof::{LogHash, TreeHash};

const MAX_BODY: usize = 64 * 1024;
const KEY_FILE: &str = "witness.key";
const STATE_FILE: &str = "witness.state";
const KEY_MAGIC: &[u8; 4] = b"KVW1";

/// A witness: its key, the logs it knows, and what it last cosigned for each.
#[derive(Debug)]
pub struct WitnessServer {
    name: String,
    key: SigningKey,
    logs: HashMap<String, VerifyingKey>,
    dir: PathBuf,
    state: Mutex<HashMap<String, (u64, [u8; 32])>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

impl WitnessServer {
    /// Opens (or creates, with a new key) the witness state directory `dir`.
    pub fn open(dir: &Path, name: &str) -> Result<Self, String> {
        checkpoint::check_name(name).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(b) if b.len() == 36 && &b[..4] == KEY_MAGIC => {
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&b[4..]);
                SigningKey::from_bytes(&seed)
            }
            Ok(_) => return Err(format!("{}: not a kvitto witness key (KVW1 + 32 bytes)", key_path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| format!("no randomness for the witness key: {e}"))?;
                let mut bytes = KEY_MAGIC.to_vec();
                bytes.extend_from_slice(&seed);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&key_path).map_err(io_err(&key_path))?;
                f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(&key_path))?;
                SigningKey::from_bytes(&seed)
            }
            Err(e) => return Err(format!("{}: {e}", key_path.display())),
        };
        let state_path = dir.join(STATE_FILE);
        let mut state = HashMap::new();
        match std::fs::read_to_string(&state_path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
                    let bad = || format!("{}:{}: expected ORIGIN SIZE BASE64ROOT", state_path.display(), i + 1);
                    let parts: Vec<&str> = line.split(' ').collect();
                    let [origin, size, root] = parts[..] else { return Err(bad()) };
                    let root: [u8; 32] = B64.decode(root).ok().and_then(|r| r.try_into().ok()).ok_or_else(bad)?;
                    state.insert(origin.to_string(), (size.parse().map_err(|_| bad())?, root));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", state_path.display())),
        }
        Ok(Self { name: name.to_string(), key, logs: HashMap::new(), dir: dir.to_path_buf(), state: Mutex::new(state) })
    }

    /// Trusts a log: its signed-note verifier key (the key name is the origin).
    pub fn trust_log(&mut self, log_vkey: &str) -> Result<String, String> {
        let (origin, key) = checkpoint::parse_vkey(log_vkey).map_err(|e| format!("log key {log_vkey:?}: {e}"))?;
        self.logs.insert(origin.clone(), key);
        Ok(origin)
    }

    /// The witness's verifier key (cosignature/v1).
    pub fn vkey(&self) -> String {
        WitnessKey { name: self.name.clone(), key: self.key.verifying_key() }.vkey()
    }

    fn save(&self, state: &HashMap<String, (u64, [u8; 32])>) -> Result<(), String> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let text: String = state.iter().map(|(o, (s, r))| format!("{o} {s} {}\n", B64.encode(r))).collect();
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        // The rename itself must survive a power loss before the cosignature goes out.
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))
    }

    /// Answers one `add-checkpoint` body: (HTTP status, content type, body).
    pub fn add_checkpoint(&self, body: &str) -> (u16, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        let bad = |s: u16, why: &str| (s, TEXT, format!("{why}\n"));
        let Some((head, note)) = body.split_once("\n\n") else {
            return bad(400, "no blank line before the checkpoint");
        };
        let mut lines = head.split('\n');
        let old = match lines.next().and_then(|l| l.strip_prefix("old ")) {
            Some(n) if n == "0" || (!n.starts_with('0') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) => {
                match n.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => return bad(400, "old size out of range"),
                }
            }
            _ => return bad(400, "the first line must be `old N`"),
        };
        let proof: Option<Vec<Vec<u8>>> = lines.map(|l| B64.decode(l).ok().filter(|h| h.len() == 32)).collect();
        let Some(proof) = proof else { return bad(400, "a proof line is not a base64 32-byte hash") };
        if proof.len() > 63 {
            return bad(400, "more than 63 proof lines");
        }
        let origin = note.split('\n').next().unwrap_or_default();
        let Some(log_key) = self.logs.get(origin) else { return bad(404, "unknown log origin") };
        let cp = match checkpoint::open(note, origin, log_key) {
            Ok(c) => c,
            Err(checkpoint::NoteError::Malformed(w) | checkpoint::NoteError::BadCheckpoint(w)) => return bad(400, &w),
            Err(e) => return bad(403, &e.to_string()),
        };
        if old > cp.size {
            return bad(400, "old size is larger than the checkpoint's");
        }
        let Ok(mut state) = self.state.lock() else { return bad(500, "state lock poisoned") };
        let (have, have_root) = state.get(origin).copied().unwrap_or((0, LogHash::empty()));
        if old != have {
            return (409, "text/x.tlog.size", format!("{have}\n"));
        }
        if cp.size == 0 && cp.root != LogHash::empty() {
            return bad(422, "a tree of size 0 must have the empty root");
        }
        let consistent = if old == 0 {
            proof.is_empty()
        } else if old == cp.size {
            proof.is_empty() && cp.root == have_root
        } else {
            kvitto_proof::merkle::verify_consistency::<LogHash>(old, cp.size, &proof, &have_root, &cp.root).is_ok()
        };
        if !consistent {
            tracing::warn!(origin, old, size = cp.size, "witness refused an inconsistent checkpoint");
            return bad(422, "the checkpoint is not consistent with the one this witness cosigned");
        }
        let mut next = state.clone();
        next.insert(origin.to_string(), (cp.size, cp.root));
        if let Err(e) = self.save(&next) {
            return bad(500, &format!("cannot persist: {e}"));
        }
        *state = next;
        let Some(split) = note.rfind("\n\n") else { return bad(400, "malformed note") };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1));
        (200, TEXT, checkpoint::cosign(&note[..split + 1], &self.name, &self.key, now))
    }

    /// Serves `add-checkpoint` on `listener` until `stop` is set (checked every 20 ms while
    /// idle). Each connection gets its own thread, at most [`MAX_CONNECTIONS`] at once (more
    /// are answered 503 at once); a connection has [`DEADLINE`] for its whole request.
    pub fn serve(&self, listener: &TcpListener, stop: &AtomicBool) -> Result<(), String> {
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let open = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            while !stop.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                            open.fetch_sub(1, Ordering::AcqRel);
                            let _ = respond(stream, 503, "text/plain; charset=utf-8", "busy\n");
                            continue;
                        }
                        let open = &open;
                        scope.spawn(move || {
                            if let Err(e) = self.connection(stream) {
                                tracing::debug!(error = %e, "witness connection failed");
                            }
                            open.fetch_sub(1, Ordering::AcqRel);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        })
    }

    fn connection(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        let started = std::time::Instant::now();
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "request took too long");
        // A bounded reader: the request line, headers and body together fit MAX_REQUEST.
        let mut reader = BufReader::new(stream.try_clone()?.take(MAX_REQUEST as u64));
        let mut request_line = String::new();
        stream.set_read_timeout(Some(DEADLINE))?;
        reader.read_line(&mut request_line)?;
        let mut length = None;
        loop {
            let left = DEADLINE.checked_sub(started.elapsed()).ok_or_else(timed_out)?;
            stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let words: Vec<&str> = request_line.trim_end().split(' ').collect();
        let (status, ctype, body) = match (&words[..], length) {
            (["POST", "/add-checkpoint", _], Some(n)) if n <= MAX_BODY => {
                let left = DEADLINE.checked_sub(started.elapsed()).ok_or_else(timed_out)?;
                stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                let mut buf = vec![0u8; n];
                reader.read_exact(&mut buf)?;
                match String::from_utf8(buf) {
                    Ok(text) if !text.contains('\r') => self.add_checkpoint(&text),
                    _ => (400, "text/plain; charset=utf-8", "not UTF-8 text with LF line ends\n".into()),
                }
            }
            (["POST", "/add-checkpoint", _], Some(_)) => (413, "text/plain; charset=utf-8", "body too large\n".into()),
            (["POST", "/add-checkpoint", _], None) => {
                (411, "text/plain; charset=utf-8", "Content-Length required\n".into())
            }
            _ => (404, "text/plain; charset=utf-8", "only POST /add-checkpoint\n".into()),
        };
        respond(stream, status, ctype, &body)
    }
}

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a connection has to send its whole request.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Largest request (line, headers and body).
const MAX_REQUEST: usize = MAX_BODY + 16 * 1024;

fn respond(mut out: TcpStream, status: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Entity",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
