//! A test witness implementing C2SP tlog-witness `add-checkpoint`, returning
//! Ed25519 cosignature/v1 signatures (C2SP tlog-cosignature), written from
//! the specifications only.
//!
//! * `tlog-witness.md`, "HTTP Interface" / "add-checkpoint": the request
//!   parsing ([`parse_add_checkpoint`], [`add_checkpoint_body`]) and the
//!   status codes, checked in the spec's order: malformed → 400; unknown
//!   origin → 404; no verifying signature by a trusted key for the origin, or
//!   a matching (name and key ID) signature that fails → 403; old size larger
//!   than the checkpoint size → 400; old size ≠ the recorded size (0 if none)
//!   → 409 with body `<recorded size>\n` and `Content-Type:
//!   text/x.tlog.size`; size-0 checkpoint without the empty-tree root → 422;
//!   non-empty proof with old size 0 → 422; old size = size with a different
//!   root (or a non-empty proof) → 422; consistency proof (RFC 6962 §2.1.2,
//!   verified per RFC 9162 §2.1.4.2) failing → 422; else the state is updated
//!   atomically (one lock, one server thread) and 200 returns one
//!   cosignature line `— <name> <base64>\n`.
//! * `tlog-witness.md`, "Monitor Retrieval Mechanism": `GET
//!   <prefix>/<lowercase hex SHA-256(origin)>/checkpoint` serves the latest
//!   cosigned checkpoint with the verified log signature(s) and the
//!   witness's cosignature, 404 if none.
//! * `tlog-cosignature.md`, "Format" and "Ed25519 signed message": key ID =
//!   SHA-256(name ‖ "\n" ‖ 0x04 ‖ pubkey)[:4]; the signature line's bytes are
//!   key ID ‖ u64 big-endian timestamp ‖ Ed25519 signature over
//!   `cosignature/v1\ntime <ts>\n<checkpoint note text>` ([`cosign`],
//!   [`verify_cosignature`], [`verify_cosigned_note`]).
//! * signed-note "Verifier keys": [`TestWitness::vkey`] is
//!   `<name>+<hex key ID>+<base64(0x04 ‖ pubkey)>`.
//!
//! HTTP: a minimal HTTP/1.1 server on std (one thread, one request per
//! connection, `Connection: close`; bodies by `Content-Length` or chunked;
//! `Expect: 100-continue` honoured). The spec's SHOULD on keep-alive is not
//! followed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};

use super::{
    Checkpoint, Hash, NoteVerifyError, SIG_PREFIX, SIG_TYPE_COSIGNATURE_V1, Vkey, b64, empty_root, key_id,
    parse_checkpoint_text, parse_decimal, parse_note, parse_sig_line, sha256, unb64_hash, valid_key_name,
    verify_consistency, verify_note_ed25519,
};

/// The client MUST NOT send more than this many consistency proof lines.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// Largest request head accepted.
const MAX_HEAD: usize = 64 << 10;

/// The cosignature/v1 signed message (tlog-cosignature "Ed25519 signed
/// message"): `cosignature/v1\n`, `time <ts>\n`, then the note text.
pub fn cosignature_message(timestamp: u64, checkpoint_body: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_body}")
}

/// A cosignature/v1 signature line (with final newline) by `name`/`key` at
/// `timestamp` over `checkpoint_body` (the note text, ending in newline).
pub fn cosign(name: &str, key: &SigningKey, timestamp: u64, checkpoint_body: &str) -> String {
    let id = key_id(name, SIG_TYPE_COSIGNATURE_V1, &key.verifying_key().to_bytes());
    let sig = key.sign(cosignature_message(timestamp, checkpoint_body).as_bytes());
    let mut raw = Vec::with_capacity(4 + 8 + 64);
    raw.extend_from_slice(&id);
    raw.extend_from_slice(&timestamp.to_be_bytes());
    raw.extend_from_slice(&sig.to_bytes());
    format!("{SIG_PREFIX}{name} {}\n", b64(&raw))
}

/// Verifies one cosignature/v1 line (with or without its final newline) by
/// the witness `witness_vkey` (type 0x04) over `checkpoint_body` (the
/// checkpoint note text: origin, size, root and any extension lines, ending
/// in newline, without the blank line or any signature). Returns the
/// timestamp. Rejects a zero timestamp (tlog-witness: "MUST NOT be zero")
/// and one above 2^63 - 1 (tlog-cosignature).
pub fn verify_cosignature(witness_vkey: &str, checkpoint_body: &str, line: &str) -> Result<u64, String> {
    let vkey = Vkey::parse(witness_vkey)?;
    if vkey.sig_type != SIG_TYPE_COSIGNATURE_V1 {
        return Err(format!("witness vkey has signature type 0x{:02x}, not 0x04 (cosignature/v1)", vkey.sig_type));
    }
    if !checkpoint_body.ends_with('\n') {
        return Err("checkpoint body must end with a newline".into());
    }
    if checkpoint_body.contains("\n\n") {
        return Err("checkpoint body contains a blank line: pass the note text without signatures".into());
    }
    parse_checkpoint_text(checkpoint_body)?;
    let line = line.strip_suffix('\n').unwrap_or(line);
    let sig = parse_sig_line(line)?;
    if sig.name != vkey.name {
        return Err(format!("line is by {:?}, not {:?}", sig.name, vkey.name));
    }
    if sig.id != vkey.id {
        return Err(format!("line has key ID {}, the witness's is {}", hex::encode(sig.id), hex::encode(vkey.id)));
    }
    if sig.sig.len() != 8 + 64 {
        return Err(format!(
            "cosignature is {} bytes after the key ID, not 72 (timestamp ‖ Ed25519 signature)",
            sig.sig.len()
        ));
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&sig.sig[..8]);
    let timestamp = u64::from_be_bytes(ts);
    if timestamp == 0 {
        return Err("cosignature timestamp is zero".into());
    }
    if timestamp > i64::MAX as u64 {
        return Err("cosignature timestamp exceeds 2^63 - 1".into());
    }
    let signature = Signature::from_slice(&sig.sig[8..]).map_err(|e| e.to_string())?;
    vkey.ed25519()?
        .verify(cosignature_message(timestamp, checkpoint_body).as_bytes(), &signature)
        .map_err(|e| format!("cosignature does not verify: {e}"))?;
    Ok(timestamp)
}

/// Finds and verifies the cosignature by `witness_vkey` in a whole signed
/// checkpoint note (lines by other keys are ignored). Returns its timestamp.
pub fn verify_cosigned_note(witness_vkey: &str, note: &str) -> Result<u64, String> {
    let vkey = Vkey::parse(witness_vkey)?;
    let n = parse_note(note)?;
    let line = n
        .sigs
        .iter()
        .find(|s| s.name == vkey.name && s.id == vkey.id)
        .ok_or_else(|| format!("no signature line by {} in the note", vkey.name))?;
    verify_cosignature(witness_vkey, n.text, line.line)
}

/// The add-checkpoint request body: `old <N>\n`, one base64 hash per line,
/// an empty line, then the signed checkpoint note.
pub fn add_checkpoint_body(old: u64, proof: &[Hash], checkpoint_note: &str) -> String {
    let mut s = format!("old {old}\n");
    for h in proof {
        s.push_str(&b64(h));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(checkpoint_note);
    s
}

/// A parsed add-checkpoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The old size.
    pub old: u64,
    /// The consistency proof.
    pub proof: Vec<Hash>,
    /// The checkpoint note (text and signatures), as sent.
    pub note: String,
}

/// Parses an add-checkpoint request body (tlog-witness "add-checkpoint");
/// errors mean 400. The note is only split here, not verified.
pub fn parse_add_checkpoint(body: &[u8]) -> Result<AddCheckpoint, String> {
    let body = std::str::from_utf8(body).map_err(|_| "request body is not UTF-8".to_string())?;
    let (first, mut rest) = body.split_once('\n').ok_or("request body has no old size line")?;
    let old = first.strip_prefix("old ").ok_or_else(|| format!("first line {first:?} is not \"old <size>\""))?;
    let old = parse_decimal(old).map_err(|e| format!("old size: {e}"))?;
    let mut proof = Vec::new();
    loop {
        let (line, tail) = rest.split_once('\n').ok_or("request body has no empty line before the checkpoint")?;
        rest = tail;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err(format!("more than {MAX_PROOF_LINES} consistency proof lines"));
        }
        proof.push(unb64_hash(line).map_err(|e| format!("consistency proof line: {e}"))?);
    }
    Ok(AddCheckpoint { old, proof, note: rest.to_string() })
}

/// What the witness records per origin.
#[derive(Debug, Clone)]
struct Latest {
    size: u64,
    root: Hash,
    /// The cosigned checkpoint for the monitoring endpoint.
    note: String,
}

#[derive(Debug, Default)]
struct State {
    logs: HashMap<String, Vec<Vkey>>,
    latest: HashMap<String, Latest>,
    requests: usize,
    statuses: Vec<u16>,
}

/// An HTTP response.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response { status, content_type: "text/plain; charset=utf-8", body }
    }
}

/// A C2SP tlog-witness on 127.0.0.1, serving until dropped.
pub struct TestWitness {
    name: String,
    key: SigningKey,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestWitness").field("name", &self.name).field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestWitness {
    /// Starts a witness named `name` (a key name: no spaces or `+`) with the
    /// Ed25519 key from `seed`, listening on 127.0.0.1 on a free port.
    pub fn start(name: &str, seed: [u8; 32]) -> TestWitness {
        assert!(valid_key_name(name), "invalid witness name {name:?}");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let key = SigningKey::from_bytes(&seed);
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (name, key, state, stop) = (name.to_string(), key.clone(), state.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("test-witness {name}"))
                .spawn(move || serve(listener, &name, &key, &state, &stop))
                .expect("spawn witness thread")
        };
        TestWitness { name: name.to_string(), key, addr, state, stop, thread: Some(thread) }
    }

    /// The submission (and monitoring) prefix, `http://127.0.0.1:PORT`;
    /// the endpoint is `POST {url}/add-checkpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The witness name (its key name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature/v1 verifier key: `<name>+<hex key ID>+<base64(0x04 ‖ pubkey)>`.
    pub fn vkey(&self) -> String {
        let pk = self.key.verifying_key().to_bytes();
        Vkey {
            name: self.name.clone(),
            id: key_id(&self.name, SIG_TYPE_COSIGNATURE_V1, &pk),
            sig_type: SIG_TYPE_COSIGNATURE_V1,
            key: pk.to_vec(),
        }
        .encode()
    }

    /// Trusts `log_vkey` (an Ed25519 note vkey, type 0x01) for `origin`;
    /// several keys per origin may be added. Panics on an invalid vkey.
    pub fn trust_log(&self, origin: &str, log_vkey: &str) {
        let v = Vkey::parse(log_vkey).unwrap_or_else(|e| panic!("trust_log: {e}"));
        assert_eq!(v.sig_type, super::SIG_TYPE_ED25519, "trust_log: not an Ed25519 (0x01) vkey");
        lock(&self.state).logs.entry(origin.to_string()).or_default().push(v);
    }

    /// The latest cosigned (size, root) for `origin`.
    pub fn latest(&self, origin: &str) -> Option<(u64, [u8; 32])> {
        lock(&self.state).latest.get(origin).map(|l| (l.size, l.root))
    }

    /// The latest cosigned checkpoint note for `origin` (what the monitoring
    /// endpoint serves).
    pub fn latest_note(&self, origin: &str) -> Option<String> {
        lock(&self.state).latest.get(origin).map(|l| l.note.clone())
    }

    /// Test hook: sets the recorded state for `origin` as if it had been
    /// cosigned (to simulate a witness ahead of, or forked from, the log).
    pub fn set_latest(&self, origin: &str, size: u64, root: [u8; 32]) {
        lock(&self.state).latest.insert(origin.to_string(), Latest { size, root, note: String::new() });
    }

    /// HTTP requests received so far (any path or outcome).
    pub fn requests(&self) -> usize {
        lock(&self.state).requests
    }

    /// The status code of every response so far, in order.
    pub fn statuses(&self) -> Vec<u16> {
        lock(&self.state).statuses.clone()
    }
}

impl Drop for TestWitness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, name: &str, key: &SigningKey, state: &Mutex<State>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(stream) = conn {
            let _ = handle_connection(stream, name, key, state);
        }
    }
}

/// A parsed HTTP request.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request; `Err((status, message))` for HTTP-level failures.
fn read_request(stream: &mut TcpStream) -> Result<Request, (u16, String)> {
    let io = |e: std::io::Error| (400u16, format!("reading request: {e}"));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err((431, "request head too large".into()));
        }
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err((400, "connection closed before the end of the request head".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| (400u16, "request head is not UTF-8".to_string()))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err((400, format!("bad request line {request_line:?}"))),
    };
    if !version.starts_with("HTTP/1.") {
        return Err((505, format!("unsupported version {version:?}")));
    }
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    for line in lines {
        let (k, v) = line.split_once(':').ok_or_else(|| (400u16, format!("bad header line {line:?}")))?;
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = v.parse::<usize>().map_err(|_| (400u16, format!("bad Content-Length {v:?}")))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err((400, "conflicting Content-Length headers".into()));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                if v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else {
                    return Err((501, format!("unsupported Transfer-Encoding {v:?}")));
                }
            }
            "expect" if v.eq_ignore_ascii_case("100-continue") => expect_continue = true,
            _ => {}
        }
    }
    // Absolute-form targets: keep the path only.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let path = path.split('?').next().unwrap_or_default().to_string();
    let mut body = buf[head_end + 4..].to_vec();
    if expect_continue && (chunked || content_length.is_some_and(|n| n > body.len())) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(io)?;
    }
    if chunked {
        body = read_chunked(stream, body)?;
    } else {
        let n = content_length.unwrap_or(0);
        if method == "POST" && content_length.is_none() {
            return Err((411, "POST without Content-Length".into()));
        }
        if n > MAX_BODY {
            return Err((413, "request body too large".into()));
        }
        while body.len() < n {
            let r = stream.read(&mut chunk).map_err(io)?;
            if r == 0 {
                return Err((400, "connection closed before the end of the body".into()));
            }
            body.extend_from_slice(&chunk[..r]);
        }
        body.truncate(n);
    }
    Ok(Request { method: method.to_string(), path, body })
}

fn read_chunked(stream: &mut TcpStream, mut raw: Vec<u8>) -> Result<Vec<u8>, (u16, String)> {
    let mut chunk = [0u8; 4096];
    let mut more = |raw: &mut Vec<u8>| -> Result<(), (u16, String)> {
        if raw.len() > MAX_BODY + MAX_HEAD {
            return Err((413, "request body too large".into()));
        }
        let n = stream.read(&mut chunk).map_err(|e| (400u16, format!("reading body: {e}")))?;
        if n == 0 {
            return Err((400, "connection closed inside a chunked body".into()));
        }
        raw.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&raw[pos..], b"\r\n") {
                break pos + i;
            }
            more(&mut raw)?;
        };
        let size_str = std::str::from_utf8(&raw[pos..line_end]).unwrap_or("");
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| (400u16, format!("bad chunk size {size_str:?}")))?;
        pos = line_end + 2;
        if size == 0 {
            return Ok(body); // trailers ignored
        }
        if body.len() + size > MAX_BODY {
            return Err((413, "request body too large".into()));
        }
        while raw.len() < pos + size + 2 {
            more(&mut raw)?;
        }
        body.extend_from_slice(&raw[pos..pos + size]);
        if &raw[pos + size..pos + size + 2] != b"\r\n" {
            return Err((400, "chunk not followed by CRLF".into()));
        }
        pos += size + 2;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn handle_connection(mut stream: TcpStream, name: &str, key: &SigningKey, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let response = match read_request(&mut stream) {
        Ok(req) => {
            let mut st = lock(state);
            st.requests += 1;
            let r = route(&req, name, key, &mut st);
            st.statuses.push(r.status);
            r
        }
        Err((status, msg)) => {
            // A connection closed without sending anything (e.g. the Drop
            // wake-up) is not a request.
            let mut st = lock(state);
            if !msg.starts_with("connection closed before the end of the request head") {
                st.requests += 1;
                st.statuses.push(status);
            }
            Response::text(status, msg)
        }
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn route(req: &Request, name: &str, key: &SigningKey, st: &mut State) -> Response {
    if req.path == "/add-checkpoint" {
        if req.method != "POST" {
            return Response::text(405, "add-checkpoint must be a POST");
        }
        return add_checkpoint(&req.body, name, key, st);
    }
    // Monitor retrieval: GET /<hex SHA-256(origin)>/checkpoint.
    if let Some(h) = req.path.strip_prefix('/').and_then(|p| p.strip_suffix("/checkpoint"))
        && req.method == "GET"
    {
        let found =
            st.latest.iter().find(|(origin, l)| hex::encode(sha256(origin.as_bytes())) == h && !l.note.is_empty());
        return match found {
            Some((_, l)) => Response::text(200, l.note.clone()),
            None => Response::text(404, "no cosigned checkpoint for that origin hash"),
        };
    }
    Response::text(404, format!("no such endpoint {}", req.path))
}

/// tlog-witness "add-checkpoint", checks in the spec's order.
fn add_checkpoint(body: &[u8], name: &str, key: &SigningKey, st: &mut State) -> Response {
    let req = match parse_add_checkpoint(body) {
        Ok(r) => r,
        Err(e) => return Response::text(400, e),
    };
    let note = match parse_note(&req.note) {
        Ok(n) => n,
        Err(e) => return Response::text(400, format!("checkpoint note: {e}")),
    };
    let cp: Checkpoint = match parse_checkpoint_text(note.text) {
        Ok(c) => c,
        Err(e) => return Response::text(400, e),
    };
    let Some(keys) = st.logs.get(&cp.origin) else {
        return Response::text(404, format!("unknown origin {:?}", cp.origin));
    };
    let verified = match verify_note_ed25519(&note, keys) {
        Ok(v) => v,
        Err(NoteVerifyError::NoKnownSignature) => {
            return Response::text(403, "no signature from a trusted key for this origin");
        }
        Err(NoteVerifyError::BadSignature(e)) => return Response::text(403, e),
    };
    if req.old > cp.size {
        return Response::text(400, format!("old size {} is larger than checkpoint size {}", req.old, cp.size));
    }
    let (recorded_size, recorded_root) = st.latest.get(&cp.origin).map_or((0, empty_root()), |l| (l.size, l.root));
    if req.old != recorded_size {
        return Response { status: 409, content_type: "text/x.tlog.size", body: format!("{recorded_size}\n") };
    }
    if cp.size == 0 && cp.root != empty_root() {
        return Response::text(422, "a size-0 checkpoint must have the empty tree's root hash");
    }
    if req.old == 0 && !req.proof.is_empty() {
        return Response::text(422, "old size is 0 but the consistency proof is not empty");
    }
    if req.old != 0
        && let Err(e) = verify_consistency(req.old, cp.size, &recorded_root, &cp.root, &req.proof)
    {
        return Response::text(422, e);
    }
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1));
    let line = cosign(name, key, timestamp, note.text);
    let mut stored = format!("{}\n", note.text);
    for i in verified {
        stored.push_str(note.sigs[i].line);
        stored.push('\n');
    }
    stored.push_str(&line);
    st.latest.insert(cp.origin.clone(), Latest { size: cp.size, root: cp.root, note: stored });
    Response::text(200, line)
}

/// A minimal HTTP/1.1 client reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header value ("" if none).
    pub content_type: String,
    /// Body (lossy UTF-8).
    pub body: String,
}

/// Sends one HTTP/1.1 request to `url` (`http://host:port/path`) with
/// `Connection: close` and reads the whole reply (test helper).
pub fn http_request(method: &str, url: &str, body: &[u8]) -> Result<HttpReply, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let end = find(&raw, b"\r\n\r\n").ok_or("reply has no head")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse::<u16>().ok()).ok_or("bad status line")?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok(HttpReply { status, content_type, body: String::from_utf8_lossy(&raw[end + 4..]).to_string() })
}

#[cfg(test)]
mod tests {
    use super::super::{checkpoint_text, ed25519_vkey, leaf_hash, mth, ref_consistency_proof, sign_note_ed25519};
    use super::*;

    const ORIGIN: &str = "example.com/test-log";

    struct Log {
        key: SigningKey,
        leaves: Vec<Hash>,
    }

    impl Log {
        fn new(seed: u8) -> Log {
            Log { key: SigningKey::from_bytes(&[seed; 32]), leaves: Vec::new() }
        }
        fn vkey(&self) -> String {
            ed25519_vkey(ORIGIN, &self.key.verifying_key())
        }
        fn append(&mut self, n: usize, tag: &str) {
            for _ in 0..n {
                let i = self.leaves.len();
                self.leaves.push(leaf_hash(format!("{tag} {i}").as_bytes()));
            }
        }
        fn root(&self, size: u64) -> Hash {
            mth(&self.leaves[..size as usize])
        }
        fn note(&self, size: u64) -> String {
            sign_note_ed25519(&checkpoint_text(ORIGIN, size, &self.root(size)), ORIGIN, &self.key)
        }
        fn proof(&self, old: u64, size: u64) -> Vec<Hash> {
            if old == 0 { Vec::new() } else { ref_consistency_proof(old, &self.leaves[..size as usize]) }
        }
        fn submit(&self, w: &TestWitness, old: u64, size: u64) -> HttpReply {
            let body = add_checkpoint_body(old, &self.proof(old, size), &self.note(size));
            post(w, body.as_bytes())
        }
    }

    fn post(w: &TestWitness, body: &[u8]) -> HttpReply {
        http_request("POST", &format!("{}/add-checkpoint", w.url()), body).unwrap()
    }

    fn witness() -> (TestWitness, Log) {
        let w = TestWitness::start("witness.example/w1", [42; 32]);
        let mut log = Log::new(1);
        log.append(10, "a");
        w.trust_log(ORIGIN, &log.vkey());
        (w, log)
    }

    fn body_text(note: &str) -> &str {
        parse_note(note).unwrap().text
    }

    #[test]
    fn vkey_form() {
        let w = TestWitness::start("witness.example/w1", [42; 32]);
        let v = Vkey::parse(&w.vkey()).unwrap();
        assert_eq!(v.sig_type, 0x04);
        assert_eq!(v.name, "witness.example/w1");
        let pk = SigningKey::from_bytes(&[42; 32]).verifying_key().to_bytes();
        let mut pre = b"witness.example/w1\n\x04".to_vec();
        pre.extend_from_slice(&pk);
        assert_eq!(v.id, sha256(&pre)[..4]);
    }

    #[test]
    fn first_checkpoint_then_extension() {
        let (w, mut log) = witness();
        let r = log.submit(&w, 0, 5);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.starts_with("\u{2014} witness.example/w1 ") && r.body.ends_with('\n'));
        let ts = verify_cosignature(&w.vkey(), body_text(&log.note(5)), &r.body).unwrap();
        assert!(ts > 1_600_000_000);
        assert_eq!(w.latest(ORIGIN), Some((5, log.root(5))));

        // The response concatenated to the checkpoint is a valid note.
        let full = format!("{}{}", log.note(5), r.body);
        assert_eq!(verify_cosigned_note(&w.vkey(), &full).unwrap(), ts);
        // Wrong body: fails.
        assert!(verify_cosignature(&w.vkey(), body_text(&log.note(4)), &r.body).is_err());

        // Extend 5 → 10, then 10 → 300.
        let r = log.submit(&w, 5, 10);
        assert_eq!(r.status, 200, "{}", r.body);
        verify_cosignature(&w.vkey(), body_text(&log.note(10)), &r.body).unwrap();
        log.append(290, "a");
        let r = log.submit(&w, 10, 300);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(w.latest(ORIGIN), Some((300, log.root(300))));
        // Same size, same root: cosigned again.
        let r = log.submit(&w, 300, 300);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(w.requests(), 4);
        assert_eq!(w.statuses(), vec![200, 200, 200, 200]);

        // Monitoring endpoint.
        let url = format!("{}/{}/checkpoint", w.url(), hex::encode(sha256(ORIGIN.as_bytes())));
        let r = http_request("GET", &url, b"").unwrap();
        assert_eq!(r.status, 200);
        verify_cosigned_note(&w.vkey(), &r.body).unwrap();
        let n = parse_note(&r.body).unwrap();
        verify_note_ed25519(&n, &[Vkey::parse(&log.vkey()).unwrap()]).unwrap();
    }

    #[test]
    fn stale_old_size_is_409_with_recorded_size() {
        let (w, log) = witness();
        assert_eq!(log.submit(&w, 0, 7).status, 200);
        // Old size 0 when 7 is recorded.
        let r = log.submit(&w, 0, 10);
        assert_eq!(r.status, 409);
        assert_eq!(r.content_type, "text/x.tlog.size");
        assert_eq!(r.body, "7\n");
        // Old size 5 when 7 is recorded.
        let r = log.submit(&w, 5, 10);
        assert_eq!((r.status, r.body.as_str()), (409, "7\n"));
        assert_eq!(w.latest(ORIGIN), Some((7, log.root(7))));
        assert_eq!(log.submit(&w, 7, 10).status, 200);
    }

    #[test]
    fn fork_is_422() {
        let (w, log) = witness();
        assert_eq!(log.submit(&w, 0, 6).status, 200);
        // Same key signs a different tree sharing the first 4 leaves.
        let mut fork = Log::new(1);
        fork.leaves = log.leaves[..4].to_vec();
        fork.append(6, "b");
        assert_ne!(fork.root(6), log.root(6));
        let r = fork.submit(&w, 6, 10);
        assert_eq!(r.status, 422, "{}", r.body);
        // Same size, different root.
        let r = fork.submit(&w, 6, 6);
        assert_eq!(r.status, 422, "{}", r.body);
        // A proof that's for the wrong size.
        let body = add_checkpoint_body(6, &log.proof(5, 10), &log.note(10));
        assert_eq!(post(&w, body.as_bytes()).status, 422);
        // Truncated proof.
        let p = log.proof(6, 10);
        let body = add_checkpoint_body(6, &p[..p.len() - 1], &log.note(10));
        assert_eq!(post(&w, body.as_bytes()).status, 422);
        assert_eq!(w.latest(ORIGIN), Some((6, log.root(6))));
        assert_eq!(log.submit(&w, 6, 10).status, 200);
    }

    #[test]
    fn wrong_key_is_403_unknown_origin_is_404() {
        let (w, log) = witness();
        let other = Log { key: SigningKey::from_bytes(&[9; 32]), leaves: log.leaves.clone() };
        // Signed by an unknown key with the same name: ignored, so 403.
        let r = other.submit(&w, 0, 3);
        assert_eq!(r.status, 403, "{}", r.body);
        // A known name and key ID with a bad signature: 403.
        let note = log.note(3);
        let n = parse_note(&note).unwrap();
        let s = &n.sigs[0];
        let mut raw = s.id.to_vec();
        raw.extend_from_slice(&s.sig);
        raw[10] ^= 1;
        let bad = format!("{}\n{SIG_PREFIX}{} {}\n", n.text, s.name, b64(&raw));
        let body = add_checkpoint_body(0, &[], &bad);
        assert_eq!(post(&w, body.as_bytes()).status, 403);
        // ... even next to a good signature (the note is malformed).
        let both = format!("{note}{SIG_PREFIX}{} {}\n", s.name, b64(&raw));
        let body = add_checkpoint_body(0, &[], &both);
        assert_eq!(post(&w, body.as_bytes()).status, 403);
        // Unknown origin: 404.
        let text = checkpoint_text("example.com/other", 3, &log.root(3));
        let body = add_checkpoint_body(0, &[], &sign_note_ed25519(&text, "example.com/other", &log.key));
        assert_eq!(post(&w, body.as_bytes()).status, 404);
        assert_eq!(w.latest(ORIGIN), None);
        // An extra unknown signature next to the good one is ignored.
        let extra = format!("{}{}", log.note(3), cosign("someone/else", &other.key, 5, body_text(&note)));
        let body = add_checkpoint_body(0, &[], &extra);
        assert_eq!(post(&w, body.as_bytes()).status, 200);
    }

    #[test]
    fn malformed_and_bad_sizes() {
        let (w, log) = witness();
        let note = log.note(5);
        for body in [
            String::new(),
            format!("old 00\n\n{note}"),
            format!("old 01\n\n{note}"),
            format!("old -1\n\n{note}"),
            format!("old  0\n\n{note}"),
            format!("Old 0\n\n{note}"),
            format!("old 0\n{note}"),
            format!("old 0\r\n\r\n{note}"),
            format!("old 0\nnot-base64!\n\n{note}"),
            format!("old 0\nAAAA\n\n{note}"),
            "old 0\n\nno signature\n".to_string(),
            format!("old 0\n\n{}", note.trim_end()),
        ] {
            let r = post(&w, body.as_bytes());
            assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        }
        // 64 proof lines.
        let body = add_checkpoint_body(3, &vec![[0u8; 32]; 64], &note);
        assert_eq!(post(&w, body.as_bytes()).status, 400);
        // Old size above the checkpoint size.
        assert_eq!(log.submit(&w, 0, 5).status, 200);
        let body = add_checkpoint_body(6, &[], &note);
        assert_eq!(post(&w, body.as_bytes()).status, 400);
        // Non-empty proof with old size 0 on a fresh origin.
        let w2 = TestWitness::start("w2", [3; 32]);
        w2.trust_log(ORIGIN, &log.vkey());
        let body = add_checkpoint_body(0, &[[1; 32]], &note);
        assert_eq!(post(&w2, body.as_bytes()).status, 422);
        // Size 0 with a wrong root.
        let text = checkpoint_text(ORIGIN, 0, &[0; 32]);
        let body = add_checkpoint_body(0, &[], &sign_note_ed25519(&text, ORIGIN, &log.key));
        assert_eq!(post(&w2, body.as_bytes()).status, 422);
        // Size 0 with the empty root: accepted.
        let text = checkpoint_text(ORIGIN, 0, &empty_root());
        let body = add_checkpoint_body(0, &[], &sign_note_ed25519(&text, ORIGIN, &log.key));
        assert_eq!(post(&w2, body.as_bytes()).status, 200);
        // Wrong method / path.
        let r = http_request("GET", &format!("{}/add-checkpoint", w.url()), b"").unwrap();
        assert_eq!(r.status, 405);
        let r = http_request("POST", &format!("{}/add-checkpoint/", w.url()), b"").unwrap();
        assert_eq!(r.status, 404);
    }

    #[test]
    fn set_latest_hook_forces_409() {
        let (w, log) = witness();
        w.set_latest(ORIGIN, 9, log.root(9));
        let r = log.submit(&w, 0, 5);
        assert_eq!((r.status, r.body.as_str()), (409, "9\n"));
        assert_eq!(log.submit(&w, 9, 10).status, 200);
    }

    #[test]
    fn cosignature_line_layout() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let body = checkpoint_text(ORIGIN, 1, &leaf_hash(b"x"));
        let line = cosign("w", &key, 1_679_315_147, &body);
        let sig = parse_sig_line(line.trim_end()).unwrap();
        assert_eq!(sig.sig.len(), 72);
        assert_eq!(&sig.sig[..8], &1_679_315_147u64.to_be_bytes());
        let msg = format!("cosignature/v1\ntime 1679315147\n{body}");
        let s = Signature::from_slice(&sig.sig[8..]).unwrap();
        key.verifying_key().verify(msg.as_bytes(), &s).unwrap();
        let w = TestWitness::start("w", [5; 32]);
        assert_eq!(verify_cosignature(&w.vkey(), &body, &line), Ok(1_679_315_147));
        let zero = cosign("w", &key, 0, &body);
        assert!(verify_cosignature(&w.vkey(), &body, &zero).is_err());
    }
}
