//! kvitto-vault: everything erasure must be able to destroy, and the ledger's own secrets —
//! kept in plain files that kvitto writes, fsyncs and rewrites itself, never in a storage
//! engine (sled keeps removed values in its log; PostgreSQL keeps them in dead tuples, WAL,
//! replicas and base backups). Every storage backend uses this one vault.
//!
//! The key vault: subject keys and external references, outside sled, in segment files that
//! kvitto writes and fdatasyncs itself. Erasing a subject overwrites its frames in those
//! files — a real deletion at file-system level, unlike anything removed from sled
//! (DESIGN.md).
//!
//! `vault/seg-NNNNNNNN.keys` (docs/FORMAT.md §5): `"KVV1"`, u8 version = 3 (2 before erasure
//! zeroed frames in place; still read), then frames
//! `u32be len ‖ body ‖ tag`, body = `subject(16) ‖ u32be len ‖ controller ‖ u32be len ‖
//! external_ref ‖ u16be slots ‖ (u32be len ‖ register ‖ key[32])*`, tag = first 16 bytes of
//! keyed BLAKE3 of the body under the frame key, `derive_key("kvitto 2026 vault frame v2",
//! ledger secret)`. Version 1 had an unkeyed BLAKE3 checksum in place of the tag; its segments
//! are rewritten as version 2 on the first open, and refused once the store records that the
//! vault is at version 2. The newest frame of a subject wins. A torn frame at the end of the
//! newest segment (a crash before its fdatasync, so never acknowledged) is truncated on open;
//! a bad frame anywhere else is damage and refuses to open. [`Vault::check_files`] re-reads
//! every frame for `verify`: tag, and that the frame's subject is the pseudonym of its
//! controller and reference.
//!
//! Erasure overwrites the doomed frames' bodies and tags with zeros where they lie and
//! fdatasyncs the segment (version 3; a version 2 segment is rewritten once, as version 3). A
//! frame whose body and tag are all zero is an erased frame. A crash in the middle of that
//! overwrite can leave a frame part zero: while `erasures.pending` exists such a frame is the
//! erasure cut short, and opening the vault finishes zeroing it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kvitto_core::field::{Reader, put_str};
use kvitto_core::{EventId, ExternalRef, Id, LedgerSecret, SubjectId};

pub mod keyfiles;

const MAGIC: &[u8; 4] = b"KVV1";
/// The vault's format as the store records it (`m:vault`): 2 = frames authenticated with the
/// frame key (segments of version 2 or 3), so that a version 1 segment is refused.
pub const VERSION: u8 = 2;
/// Header version of the segments written now: version 2's frames, and erased frames (body and
/// tag all zero bytes), which erasure leaves in place of the frames it destroys.
pub const SEGMENT_VERSION: u8 = 3;
/// Segment version 1: frames with an unkeyed checksum (migrated on open).
const VERSION_V1: u8 = 1;
/// Context of the frame key derived from the ledger secret.
pub const FRAME_KEY_CONTEXT: &str = "kvitto 2026 vault frame v2";
const HEADER_LEN: u64 = 5;
/// A new segment starts after this many bytes. An erasure rewrites every segment holding the
/// subject, so this bounds its cost: at 1 MiB the rewrite (read, re-check every tag, write,
/// fsync) of one erasure took ≈3 ms, a third of a 64-caller append stream's time.
const SEGMENT_LIMIT: u64 = 1 << 16;

/// A vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The OS refused.
    #[error("key vault {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A vault file is damaged.
    #[error("key vault {path}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Decryption failed (wrong key, tampered ciphertext).
    #[error("details of event {0} do not decrypt (tampered ciphertext or wrong key)")]
    Decrypt(EventId),
    /// The system RNG failed.
    #[error("random number generator: {0}")]
    Rng(String),
    /// An earlier write failed and could not be rolled back.
    #[error("key vault unusable after an earlier write failure ({0}); reopen the ledger")]
    Failed(String),
}

/// One subject's keys and its external reference.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKeys {
    /// Controller id.
    pub controller: String,
    /// The controller's reference for the customer (personal data: never log it).
    pub external_ref: String,
    /// (register, or "" for subject-wide details; key).
    pub slots: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubjectKeys({} slots, <redacted>)", self.slots.len())
    }
}

impl SubjectKeys {
    /// The key for a register slot.
    pub fn key(&self, slot: &str) -> Option<&[u8; 32]> {
        self.slots.iter().find(|(r, _)| r == slot).map(|(_, k)| k)
    }
}

/// The key slot an event's details are sealed under: the register the kind names, or ""
/// (subject-wide) for kinds without one (docs/FORMAT.md §3.3).
pub fn slot(kind: &kvitto_core::EventKind) -> &str {
    kvitto_core::key_slot(kind)
}

impl SubjectKeys {
    /// The key an event's details are sealed under, if it still exists.
    pub fn key_for(&self, kind: &kvitto_core::EventKind) -> Option<&[u8; 32]> {
        self.key(slot(kind))
    }
}

/// How a segment's frames are checked: its version's checksum or tag.
#[derive(Clone, Copy)]
enum Sum<'a> {
    /// Version 1: first 16 bytes of BLAKE3(body).
    Plain,
    /// Version 2: first 16 bytes of keyed BLAKE3(body) under the frame key.
    Keyed(&'a [u8; 32]),
}

impl Sum<'_> {
    fn of(self, body: &[u8]) -> [u8; 16] {
        let h = match self {
            Sum::Plain => blake3::hash(body),
            Sum::Keyed(key) => blake3::keyed_hash(key, body),
        };
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.as_bytes()[..16]);
        out
    }

    /// Whether `tag` is not this body's checksum or tag (compared in constant time).
    fn mismatches(self, body: &[u8], tag: &[u8]) -> bool {
        let want = self.of(body);
        tag.len() != want.len() || want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0
    }
}

/// The key that authenticates vault frames, derived from the ledger secret.
pub fn frame_key(secret: &LedgerSecret) -> [u8; 32] {
    blake3::derive_key(FRAME_KEY_CONTEXT, &secret.0)
}

fn encode_frame(sum: Sum<'_>, subject: &SubjectId, keys: &SubjectKeys, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(96);
    body.extend_from_slice(&subject.0);
    put_str(&mut body, &keys.controller);
    put_str(&mut body, &keys.external_ref);
    body.extend_from_slice(&(keys.slots.len() as u16).to_be_bytes());
    for (reg, key) in &keys.slots {
        put_str(&mut body, reg);
        body.extend_from_slice(key);
    }
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&sum.of(&body));
}

fn decode_body(body: &[u8]) -> Result<(SubjectId, SubjectKeys), kvitto_core::DecodeError> {
    let mut r = Reader::new(body);
    let subject = SubjectId(r.array()?);
    let controller = r.str()?.to_string();
    let external_ref = r.str()?.to_string();
    let n = r.u16()?;
    let mut slots = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let reg = r.str()?.to_string();
        slots.push((reg, r.array::<32>()?));
    }
    r.finish()?;
    Ok((subject, SubjectKeys { controller, external_ref, slots }))
}

/// What is wrong with a segment, where, and whether it can only be a torn tail.
struct Problem {
    what: String,
    /// The bad frame runs to the end of the file: a write that never completed (its group
    /// was never acknowledged, because the vault is fdatasync'd before the log). A bad frame
    /// with more bytes after it is damage to data that later writes were made durable after.
    tail: bool,
}

/// A parsed frame: whose keys, the keys, and where the frame lies in the segment.
type Frame = (SubjectId, SubjectKeys, std::ops::Range<usize>);

/// Largest plausible frame body (one subject's references and keys are ~100 bytes). A length
/// beyond it that runs past the end of the file is damage, not a write cut short.
const MAX_FRAME: usize = 64 * 1024;

/// Splits a segment's bytes into frames. Returns the frames with their byte ranges, and the
/// offset where the valid prefix ends (with why it stopped, if before the end).
fn parse_segment(bytes: &[u8], how: Parse<'_>) -> Parsed {
    let mut torn = Vec::new();
    let (frames, valid, problem) = parse_frames(bytes, how, &mut torn);
    Parsed { frames, valid, problem, torn }
}

/// What [`parse_segment`] found.
struct Parsed {
    frames: Vec<Frame>,
    /// Where the valid prefix ends.
    valid: usize,
    /// Why it stopped before the end, if it did.
    problem: Option<Problem>,
    /// Frames an erasure cut short was zeroing (only with [`Parse::torn`]).
    torn: Vec<std::ops::Range<usize>>,
}

fn parse_frames(
    bytes: &[u8],
    how: Parse<'_>,
    torn: &mut Vec<std::ops::Range<usize>>,
) -> (Vec<Frame>, usize, Option<Problem>) {
    let sum = how.sum;
    let mut frames = Vec::new();
    let mut pos = HEADER_LEN as usize;
    let tail = |what: &str| Some(Problem { what: what.into(), tail: true });
    while pos < bytes.len() {
        let start = pos;
        let Some(len) = bytes.get(pos..pos + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) else {
            return (frames, start, tail("truncated frame length"));
        };
        if len > MAX_FRAME {
            return (frames, start, Some(Problem { what: format!("implausible frame length {len}"), tail: false }));
        }
        let Some(body) = bytes.get(pos + 4..pos + 4 + len) else {
            return (frames, start, tail("truncated frame"));
        };
        let end = pos + 4 + len + 16;
        let Some(tag) = bytes.get(pos + 4 + len..end) else {
            return (frames, start, tail("truncated frame checksum"));
        };
        let last = end == bytes.len();
        if how.zeroed && body.iter().chain(tag).all(|b| *b == 0) {
            // An erased frame.
            pos = end;
            continue;
        }
        if how.torn && sum.mismatches(body, tag) {
            torn.push(start..end);
            pos = end;
            continue;
        }
        if sum.mismatches(body, tag) {
            let what = match sum {
                Sum::Plain => "frame checksum mismatch",
                Sum::Keyed(_) => {
                    "frame authentication failed (its tag does not match: altered, or not written by this ledger)"
                }
            };
            return (frames, start, Some(Problem { what: what.into(), tail: last }));
        }
        match decode_body(body) {
            Ok((s, k)) => frames.push((s, k, start..end)),
            Err(e) => {
                return (frames, start, Some(Problem { what: format!("frame does not decode: {e}"), tail: last }));
            }
        }
        pos = end;
    }
    (frames, pos, None)
}

/// Fills an array from the OS RNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| VaultError::Rng(e.to_string()))?;
    Ok(buf)
}

/// OS randomness fetched 4 KiB at a time: the writer needs a salt, a nonce and sometimes a
/// key per event, and one `getrandom` call each was a measurable share of sealing a group.
/// The bytes are the OS CSPRNG's, used once each.
#[derive(Default)]
pub struct RandomPool {
    buf: Vec<u8>,
    pos: usize,
}

impl std::fmt::Debug for RandomPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomPool").field("left", &(self.buf.len() - self.pos)).finish()
    }
}

impl RandomPool {
    const SIZE: usize = 4096;

    /// The next `N` unused random bytes.
    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], VaultError> {
        if self.buf.len() - self.pos < N {
            self.buf.resize(Self::SIZE.max(N), 0);
            getrandom::fill(&mut self.buf).map_err(|e| VaultError::Rng(e.to_string()))?;
            self.pos = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        // Used bytes are not kept around.
        self.buf[self.pos..self.pos + N].fill(0);
        self.pos += N;
        Ok(out)
    }
}

/// What the vault holds for one (subject, slot), without copying the subject's key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKey {
    /// The subject has no keys (never had, or erased).
    NoSubject,
    /// The subject has keys, but none for this slot (or no slot was asked for).
    NoSlot,
    /// The slot's key.
    Key([u8; 32]),
}

struct Entry {
    keys: SubjectKeys,
    /// Segments holding frames of this subject.
    segments: Vec<u32>,
}

struct Current {
    id: u32,
    file: File,
    len: u64,
}

struct State {
    entries: HashMap<SubjectId, Entry>,
    current: Option<Current>,
    next_id: u32,
    failed: Option<String>,
}

/// The key vault of one ledger.
pub struct Vault {
    dir: PathBuf,
    /// Authenticates frames ([`frame_key`]).
    key: [u8; 32],
    /// Derives the pseudonym each frame must carry ([`Vault::check_files`]).
    secret: LedgerSecret,
    state: Mutex<State>,
    /// Opened beside another process's writer: nothing is written, removed or truncated.
    read_only: bool,
}

/// Whether [`Vault::open`] may find version 1 segments (frames with an unkeyed checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OlderSegments {
    /// Rewrite them as version 2: the vault has not been migrated yet.
    Migrate,
    /// Refuse them: the vault was migrated (or created at version 2), so a version 1
    /// segment is a file put there by someone else.
    Refuse,
}

/// What [`Vault::check_files`] found wrong with a vault file. Names no personal data: the
/// subject is its pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameProblem {
    /// The segment header is not `KVV1` version 2.
    Header(String),
    /// A frame's tag does not match, a frame is cut short or does not decode.
    Damaged(String),
    /// The frame's subject is not the pseudonym of its controller and external reference:
    /// the reference (or controller) was rewritten.
    WrongSubject(SubjectId),
    /// The keys the ledger is using for this subject are not those of its newest frame on
    /// disk (a file changed, or lost a frame, under the running ledger).
    DiffersFromLoaded(SubjectId),
}

impl std::fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header(what) | Self::Damaged(what) => f.write_str(what),
            Self::WrongSubject(s) => write!(
                f,
                "the frame of subject {s} does not carry that subject's controller and reference (rewritten?)"
            ),
            Self::DiffersFromLoaded(s) => {
                write!(f, "the keys in use for subject {s} are not those of its newest frame on disk")
            }
        }
    }
}

/// One problem in the vault files: the segment, the byte offset of the frame, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameFault {
    /// The segment's file name.
    pub segment: String,
    /// Byte offset of the frame (0 for the header or a whole-vault finding).
    pub offset: u64,
    /// What is wrong.
    pub problem: FrameProblem,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn seg_name(id: u32) -> String {
    format!("seg-{id:08}.keys")
}

/// The ids of the segment files in `dir`, in increasing order.
fn segment_ids(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut ids: Vec<u32> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok()?.strip_prefix("seg-")?.strip_suffix(".keys")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The version byte of a segment with an intact `KVV1` header, if it has one.
fn segment_version(bytes: &[u8]) -> Option<u8> {
    (bytes.len() >= HEADER_LEN as usize && &bytes[..4] == MAGIC).then(|| bytes[4])
}

/// Whether a segment of this version has authenticated frames (2, or 3 with erased frames).
fn authenticated(version: Option<u8>) -> bool {
    matches!(version, Some(VERSION | SEGMENT_VERSION))
}

/// How [`parse_segment`] reads a segment's frames.
#[derive(Clone, Copy)]
struct Parse<'a> {
    sum: Sum<'a>,
    /// Version 3: a frame whose body and tag are all zero is an erased frame, skipped.
    zeroed: bool,
    /// An erasure was cut short (`erasures.pending` exists): a frame whose tag fails is one it
    /// was zeroing, returned apart for the erasure to finish, not damage.
    torn: bool,
}

impl<'a> Parse<'a> {
    /// For a segment of `version`; `pending`: whether an erasure record exists.
    ///
    /// Plain comparisons on purpose. Written as `match version { Some(VERSION_V1) => …, v =>
    /// { let zeroed = v == Some(SEGMENT_VERSION); … } }`, rustc 1.95 at opt-level 2 or 3
    /// compiles it wrong once inlined after an `authenticated(version)` check: `zeroed` comes
    /// out false for a version 3 segment, and `check_files` calls an erased frame damage
    /// (two of this crate's tests fail in release only). Turning off either of the MIR passes
    /// JumpThreading or GVN (`-Zmir-enable-passes=-JumpThreading`) makes it correct — a
    /// compiler bug of that known family, not undefined behaviour here (this crate has no
    /// `unsafe`). Test builds compile this crate optimized too (Cargo.toml), and CI's build,
    /// without incremental compilation, then fails those two tests on such a miscompile.
    fn of(version: Option<u8>, key: &'a [u8; 32], pending: bool) -> Self {
        let zeroed = version == Some(SEGMENT_VERSION);
        let sum = if version == Some(VERSION_V1) { Sum::Plain } else { Sum::Keyed(key) };
        Parse { sum, zeroed, torn: zeroed && pending }
    }
}

/// Overwrites the body and tag of each frame in `ranges` with zeros where it lies in the
/// segment at `path` and fdatasyncs it: the keys and reference it held are gone from the file.
fn zero_frames(path: &Path, ranges: &[std::ops::Range<usize>]) -> std::io::Result<()> {
    if ranges.is_empty() {
        return Ok(());
    }
    let f = OpenOptions::new().write(true).open(path)?;
    for r in ranges {
        let zeros = vec![0u8; r.end - r.start - 4];
        std::os::unix::fs::FileExt::write_all_at(&f, &zeros, (r.start + 4) as u64)?;
    }
    f.sync_data()
}

impl Vault {
    /// Opens (creating the directory if needed) and loads every segment, frames checked
    /// under the key derived from `secret`. Version 1 segments are rewritten as version 2 or
    /// refused, as `older` says.
    pub fn open(dir: impl Into<PathBuf>, secret: &LedgerSecret, older: OlderSegments) -> Result<Self, VaultError> {
        let dir = dir.into();
        let key = frame_key(secret);
        let state = Self::load(&dir, &key, older, false)?;
        Ok(Self { dir, key, secret: secret.clone(), state: Mutex::new(state), read_only: false })
    }

    /// Opens the vault of a ledger another process writes (a reader beside its writer): the
    /// frames are loaded and checked, nothing is written, removed or truncated — a torn frame
    /// at the end of the newest segment is the writer's frame in progress, and is skipped.
    /// Writes are refused. [`Vault::reload`] reads the files again.
    pub fn open_read_only(dir: impl Into<PathBuf>, secret: &LedgerSecret) -> Result<Self, VaultError> {
        let dir = dir.into();
        let key = frame_key(secret);
        let state = Self::load(&dir, &key, OlderSegments::Refuse, true)?;
        Ok(Self { dir, key, secret: secret.clone(), state: Mutex::new(state), read_only: true })
    }

    /// A read-only vault reads its files again (keys the writer added or destroyed since).
    pub fn reload(&self) -> Result<(), VaultError> {
        if !self.read_only {
            return Ok(());
        }
        let fresh = Self::load(&self.dir, &self.key, OlderSegments::Refuse, true)?;
        *self.lock() = fresh;
        Ok(())
    }

    fn load(dir: &Path, key: &[u8; 32], older: OlderSegments, read_only: bool) -> Result<State, VaultError> {
        let dir = dir.to_path_buf();
        let key = *key;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VaultError::Io { path, source }
        };
        if !dir.exists() && !read_only {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent).map_err(io(parent))?;
            }
        }
        // A rewrite or pending record cut short by a crash leaves a `.tmp` file: never renamed,
        // so never relied on; it may hold frames of a subject being erased, so it goes.
        for e in fs::read_dir(&dir).map_err(io(&dir))?.filter_map(|e| e.ok()) {
            if !read_only && e.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
                fs::remove_file(e.path()).map_err(io(&e.path()))?;
            }
        }
        let ids = segment_ids(&dir).map_err(io(&dir))?;
        // An erasure cut short may have left frames it was zeroing half zero (§5.2).
        let pending = dir.join(PENDING_FILE).exists();
        let mut entries: HashMap<SubjectId, Entry> = HashMap::new();
        let mut current = None;
        for (i, id) in ids.iter().enumerate() {
            let path = dir.join(seg_name(*id));
            let mut bytes = Vec::new();
            File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io(&path))?;
            let last = i + 1 == ids.len();
            let version = segment_version(&bytes);
            if !authenticated(version) && version != Some(VERSION_V1) {
                if last && bytes.len() < HEADER_LEN as usize {
                    // Created but header not yet durable: nothing was acknowledged from it.
                    if !read_only {
                        fs::remove_file(&path).map_err(io(&path))?;
                    }
                    continue;
                }
                return Err(VaultError::Corrupt {
                    path,
                    what: format!("not a kvitto vault segment (KVV1 v{VERSION}–{SEGMENT_VERSION})"),
                });
            }
            let older_segment = version == Some(VERSION_V1);
            if older_segment && older == OlderSegments::Refuse {
                return Err(VaultError::Corrupt {
                    path,
                    what: "a version 1 segment (frames not authenticated) in a vault already at version 2: the file \
                           was put there after the migration; restore it from a backup"
                        .into(),
                });
            }
            let Parsed { frames, valid, problem, torn } = parse_segment(&bytes, Parse::of(version, &key, pending));
            if !torn.is_empty() && !read_only {
                tracing::warn!(segment = id, frames = torn.len(), "finishing an erasure cut short in the key vault");
                zero_frames(&path, &torn).map_err(io(&path))?;
            }
            if let Some(Problem { what, tail }) = problem {
                if !last || !tail {
                    return Err(VaultError::Corrupt {
                        path,
                        what: format!(
                            "{what} at byte {valid}; keys after it were acknowledged, so nothing is cut off — \
                             restore this file from a backup"
                        ),
                    });
                }
                // A torn tail of the newest segment was never acknowledged: cut it off (a
                // reader leaves it to the writer, which may be writing it right now).
                if !read_only {
                    tracing::warn!(segment = id, at = valid, "truncating torn tail of the key vault");
                    let f = OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
                    f.set_len(valid as u64).map_err(io(&path))?;
                    f.sync_all().map_err(io(&path))?;
                }
            }
            if older_segment {
                // Same frames, same lengths: the header's version and each frame's tag change.
                let mut upgraded = bytes[..valid].to_vec();
                upgraded[4] = VERSION;
                for (_, _, range) in &frames {
                    let body = range.start + 4..range.end - 16;
                    let tag = Sum::Keyed(&key).of(&bytes[body]);
                    upgraded[range.end - 16..range.end].copy_from_slice(&tag);
                }
                write_replacing(&path, &upgraded).map_err(io(&path))?;
                sync_dir(&dir).map_err(io(&dir))?;
                tracing::info!(
                    segment = id,
                    frames = frames.len(),
                    "vault segment migrated to authenticated frames (v2)"
                );
            }
            for (subject, keys, _) in frames {
                let e = entries.entry(subject).or_insert_with(|| Entry { keys: keys.clone(), segments: Vec::new() });
                e.keys = keys;
                if !e.segments.contains(id) {
                    e.segments.push(*id);
                }
            }
            if last && (valid as u64) < SEGMENT_LIMIT && !read_only {
                let file = OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
                current = Some(Current { id: *id, file, len: valid as u64 });
            }
        }
        let next_id = ids.last().map_or(1, |l| l + 1);
        let failed = read_only.then(|| "the vault was opened read-only (beside another process's writer)".to_string());
        Ok(State { entries, current, next_id, failed })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A subject's keys; `None` when it has none (never had, or erased).
    pub fn get(&self, subject: &SubjectId) -> Option<SubjectKeys> {
        self.lock().entries.get(subject).map(|e| e.keys.clone())
    }

    /// The key of `slot` (`None`: only whether the subject has keys), without copying the
    /// subject's key set — the writer asks this once per event.
    pub fn slot_key(&self, subject: &SubjectId, slot: Option<&str>) -> SlotKey {
        match self.lock().entries.get(subject) {
            None => SlotKey::NoSubject,
            Some(e) => match slot.and_then(|s| e.keys.key(s)) {
                Some(k) => SlotKey::Key(*k),
                None => SlotKey::NoSlot,
            },
        }
    }

    /// Number of subjects with keys.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the vault holds no subject.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Durably stores new or updated subject keys: one append and one fdatasync for all of
    /// them. After `Ok`, they survive power loss.
    pub fn put_all(&self, items: &[(SubjectId, SubjectKeys)]) -> Result<(), VaultError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(VaultError::Failed(why.clone()));
        }
        let mut buf = Vec::with_capacity(items.len() * 128);
        for (s, k) in items {
            encode_frame(Sum::Keyed(&self.key), s, k, &mut buf);
        }
        if st.current.as_ref().is_none_or(|c| c.len >= SEGMENT_LIMIT) {
            let id = st.next_id;
            let path = self.dir.join(seg_name(id));
            let io = |source| VaultError::Io { path: path.clone(), source };
            let mut f = OpenOptions::new().append(true).create_new(true).open(&path).map_err(io)?;
            set_private(&f).map_err(io)?;
            let mut header = MAGIC.to_vec();
            header.push(SEGMENT_VERSION);
            f.write_all(&header).map_err(io)?;
            f.sync_all().map_err(io)?;
            sync_dir(&self.dir).map_err(|source| VaultError::Io { path: self.dir.clone(), source })?;
            st.next_id += 1;
            st.current = Some(Current { id, file: f, len: HEADER_LEN });
        }
        let State { current, entries, failed, .. } = &mut *st;
        let Some(cur) = current.as_mut() else {
            return Err(VaultError::Failed("no current segment".into()));
        };
        let path = self.dir.join(seg_name(cur.id));
        let written = cur.file.write_all(&buf).and_then(|()| cur.file.sync_data());
        if let Err(source) = written {
            // Roll the segment back to its last durable length; if even that fails, stop.
            if let Err(e) = cur.file.set_len(cur.len).and_then(|()| cur.file.sync_data()) {
                *failed = Some(e.to_string());
            }
            return Err(VaultError::Io { path, source });
        }
        cur.len += buf.len() as u64;
        let id = cur.id;
        for (s, k) in items {
            let e = entries.entry(*s).or_insert_with(|| Entry { keys: k.clone(), segments: Vec::new() });
            e.keys = k.clone();
            if !e.segments.contains(&id) {
                e.segments.push(id);
            }
        }
        Ok(())
    }

    /// Destroys a subject's keys — all of them and its external reference when `slot` is
    /// `None`, else that register's. The reduced key set (if any) is appended first, so a
    /// crash midway never loses the other slots; then every segment holding a frame of the
    /// subject with that slot (any frame of the subject, for `None`) has those frames' bodies
    /// and tags overwritten with zeros where they lie, and is fdatasynced (a version 2 segment
    /// is instead rewritten without them as version 3, renamed over the old file, and the
    /// directory fsynced). Running it again after a crash midway finishes the job: frames are chosen by slot
    /// name, not by the key in memory. Returns whether anything was destroyed.
    ///
    /// The caller must not create a new key for the slot between recording the erasure and
    /// this call (while an erasure is pending the writer seals nothing of its subjects). Other
    /// subjects' keys may be stored meanwhile: both take the vault's lock.
    pub fn erase(&self, subject: &SubjectId, slot: Option<&str>) -> Result<bool, VaultError> {
        Ok(self.erase_all(&[(*subject, slot.map(str::to_string))])? > 0)
    }

    /// [`Vault::erase`] for many (subject, slot) at once: one append of all reduced key sets,
    /// each affected segment zeroed and fdatasynced once. Returns how many subjects
    /// lost something.
    pub fn erase_all(&self, items: &[(SubjectId, Option<String>)]) -> Result<usize, VaultError> {
        // Per subject: `None` = everything, else the slots to destroy.
        let mut scope: HashMap<SubjectId, Option<Vec<&str>>> = HashMap::new();
        for (subject, slot) in items {
            match (scope.entry(*subject).or_insert_with(|| Some(Vec::new())), slot) {
                (all @ Some(_), None) => *all = None,
                (Some(slots), Some(s)) => slots.push(s.as_str()),
                (None, _) => {}
            }
        }
        let doomed_slot = |subject: &SubjectId, reg: &str| match scope.get(subject) {
            Some(None) => true,
            Some(Some(slots)) => slots.contains(&reg),
            None => false,
        };
        let mut destroyed: HashMap<SubjectId, bool> = HashMap::new();
        let mut reduced: Vec<(SubjectId, SubjectKeys)> = Vec::new();
        for (subject, slots) in &scope {
            let held = self.get(subject);
            let lost = match (slots, &held) {
                (None, held) => held.is_some(),
                (Some(_), Some(keys)) if keys.slots.iter().any(|(r, _)| doomed_slot(subject, r)) => {
                    let mut k = keys.clone();
                    k.slots.retain(|(r, _)| !doomed_slot(subject, r));
                    reduced.push((*subject, k));
                    true
                }
                _ => false,
            };
            destroyed.insert(*subject, lost);
        }
        // The reduced key sets first: a crash midway never loses the other slots.
        self.put_all(&reduced)?;
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(VaultError::Failed(why.clone()));
        }
        let mut segments: Vec<u32> =
            scope.keys().filter_map(|s| st.entries.get(s)).flat_map(|e| e.segments.iter().copied()).collect();
        segments.sort_unstable();
        segments.dedup();
        let mut still_holding: HashMap<SubjectId, Vec<u32>> = HashMap::new();
        let mut renamed = false;
        for id in segments {
            let path = self.dir.join(seg_name(id));
            let io = |source| VaultError::Io { path: path.clone(), source };
            let bytes = fs::read(&path).map_err(io)?;
            let version = segment_version(&bytes);
            // Strict: frames an erasure cut short were zeroed when the vault was opened.
            let Parsed { frames, valid, problem, .. } = parse_segment(&bytes, Parse::of(version, &self.key, false));
            // Never touch a segment that does not parse whole: the frames after the damage
            // (other subjects' keys) would be left out of a rewrite.
            if !authenticated(version) || problem.is_some() {
                let what = problem.map_or_else(
                    || format!("not a kvitto vault segment (KVV1 v{VERSION}–{SEGMENT_VERSION})"),
                    |p| p.what,
                );
                return Err(VaultError::Corrupt {
                    path,
                    what: format!(
                        "{what} at byte {valid}; the erasure was not carried out — restore this file from a backup"
                    ),
                });
            }
            let mut doomed_frames = Vec::new();
            let mut kept = Vec::new();
            for (s, k, range) in &frames {
                // Frames are chosen by slot name, not by the key in memory: a rerun after a
                // crash midway finds the frames a first run left.
                let doomed = match scope.get(s) {
                    None => false,
                    Some(None) => true,
                    Some(Some(_)) => k.slots.iter().any(|(r, _)| doomed_slot(s, r)),
                };
                if doomed {
                    doomed_frames.push(range.clone());
                    destroyed.insert(*s, true);
                    continue;
                }
                if scope.contains_key(s) {
                    still_holding.entry(*s).or_default().push(id);
                }
                kept.push(range.clone());
            }
            if doomed_frames.is_empty() {
                continue;
            }
            if version == Some(SEGMENT_VERSION) {
                // Zeroed where they lie: one write per frame and one fdatasync, no new file.
                zero_frames(&path, &doomed_frames).map_err(io)?;
                continue;
            }
            // A version 2 segment cannot hold erased frames: rewritten once, as version 3.
            let mut out = bytes[..HEADER_LEN as usize].to_vec();
            out[4] = SEGMENT_VERSION;
            for range in kept {
                out.extend_from_slice(&bytes[range]);
            }
            write_replacing(&path, &out).map_err(io)?;
            renamed = true;
            if st.current.as_ref().is_some_and(|c| c.id == id) {
                let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
                st.current = Some(Current { id, file, len: out.len() as u64 });
            }
        }
        if renamed {
            sync_dir(&self.dir).map_err(|source| VaultError::Io { path: self.dir.clone(), source })?;
        }
        let mut reduced: HashMap<SubjectId, SubjectKeys> = reduced.into_iter().collect();
        for (subject, slots) in &scope {
            match slots {
                None => {
                    st.entries.remove(subject);
                }
                Some(_) => {
                    if let Some(e) = st.entries.get_mut(subject) {
                        if let Some(keys) = reduced.remove(subject) {
                            e.keys = keys;
                        }
                        let mut held = still_holding.remove(subject).unwrap_or_default();
                        held.dedup();
                        e.segments = held;
                    }
                }
            }
        }
        Ok(destroyed.values().filter(|d| **d).count())
    }

    /// Re-reads every segment from disk and checks each frame: header version 2 or 3, the tag
    /// under the frame key, that the frame's subject is the pseudonym of its controller and
    /// external reference, and that the keys in use are those of each subject's newest frame.
    /// Returns the first fault (`None`: all hold). Writers wait while it reads.
    pub fn check_files(&self) -> Result<Option<FrameFault>, VaultError> {
        let st = self.lock();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VaultError::Io { path, source }
        };
        let ids = segment_ids(&self.dir).map_err(io(&self.dir))?;
        let fault =
            |id: u32, offset: usize, problem| FrameFault { segment: seg_name(id), offset: offset as u64, problem };
        let mut newest: HashMap<SubjectId, (SubjectKeys, u32, usize)> = HashMap::new();
        // A reader beside the writer may catch an erasure zeroing frames (its record exists
        // until it is done); this process's writer waits for the lock held here.
        let pending = self.read_only && self.dir.join(PENDING_FILE).exists();
        for id in ids {
            let path = self.dir.join(seg_name(id));
            let bytes = fs::read(&path).map_err(io(&path))?;
            let version = segment_version(&bytes);
            if !authenticated(version) {
                let what = format!(
                    "not a kvitto vault segment of version {VERSION} or {SEGMENT_VERSION} (KVV1, authenticated frames)"
                );
                return Ok(Some(fault(id, 0, FrameProblem::Header(what))));
            }
            let Parsed { frames, valid, problem, .. } = parse_segment(&bytes, Parse::of(version, &self.key, pending));
            if let Some(p) = problem {
                return Ok(Some(fault(id, valid, FrameProblem::Damaged(p.what))));
            }
            for (subject, keys, range) in frames {
                let derived = match (Id::new(keys.controller.as_str()), ExternalRef::stored(keys.external_ref.as_str()))
                {
                    (Ok(c), Ok(r)) => Some(self.secret.subject_id(&c, &r)),
                    _ => None,
                };
                if derived != Some(subject) {
                    return Ok(Some(fault(id, range.start, FrameProblem::WrongSubject(subject))));
                }
                newest.insert(subject, (keys, id, range.start));
            }
        }
        if self.read_only {
            // The writer changes the files under a reader: only each frame's own checks apply.
            return Ok(None);
        }
        for (subject, entry) in &st.entries {
            match newest.remove(subject) {
                Some((keys, _, _)) if keys == entry.keys => {}
                Some((_, id, offset)) => return Ok(Some(fault(id, offset, FrameProblem::DiffersFromLoaded(*subject)))),
                None => {
                    let id = entry.segments.last().copied().unwrap_or(0);
                    return Ok(Some(fault(id, 0, FrameProblem::DiffersFromLoaded(*subject))));
                }
            }
        }
        // Frames on disk of a subject the ledger holds no keys for (erased, yet still there).
        if let Some((subject, (_, id, offset))) = newest.into_iter().min_by_key(|(_, (_, id, offset))| (*id, *offset)) {
            return Ok(Some(fault(id, offset, FrameProblem::DiffersFromLoaded(subject))));
        }
        Ok(None)
    }

    /// Tamper tests only: rewrites the external reference in the newest frame of `subject` on
    /// disk to `to`, the frame tagged under the frame key (`retag`, an insider holding the
    /// ledger secret) or with the unkeyed checksum of version 1 (anyone else). Returns
    /// whether the subject had a frame.
    #[cfg(feature = "tamper")]
    pub fn tamper_rewrite_reference(&self, subject: &SubjectId, to: &str, retag: bool) -> Result<bool, VaultError> {
        let _st = self.lock();
        let ids = segment_ids(&self.dir).map_err(|source| VaultError::Io { path: self.dir.clone(), source })?;
        for id in ids.into_iter().rev() {
            let path = self.dir.join(seg_name(id));
            let io = |source| VaultError::Io { path: path.clone(), source };
            let bytes = fs::read(&path).map_err(io)?;
            let frames = parse_segment(&bytes, Parse::of(segment_version(&bytes), &self.key, false)).frames;
            if let Some((s, mut keys, range)) = frames.into_iter().rev().find(|(s, _, _)| s == subject) {
                keys.external_ref = to.to_string();
                let mut frame = Vec::new();
                encode_frame(if retag { Sum::Keyed(&self.key) } else { Sum::Plain }, &s, &keys, &mut frame);
                fs::write(&path, [&bytes[..range.start], &frame, &bytes[range.end..]].concat()).map_err(io)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Tamper and migration tests only: rewrites every segment as version 1 (unkeyed
    /// checksums), as a vault written before frames were authenticated. Returns how many.
    #[cfg(feature = "tamper")]
    pub fn tamper_write_as_version_1(&self) -> Result<usize, VaultError> {
        let _st = self.lock();
        let ids = segment_ids(&self.dir).map_err(|source| VaultError::Io { path: self.dir.clone(), source })?;
        for id in &ids {
            let path = self.dir.join(seg_name(*id));
            let io = |source| VaultError::Io { path: path.clone(), source };
            let bytes = fs::read(&path).map_err(io)?;
            let frames = parse_segment(&bytes, Parse::of(segment_version(&bytes), &self.key, false)).frames;
            let mut out = [MAGIC.as_slice(), &[VERSION_V1]].concat();
            for (s, k, _) in &frames {
                encode_frame(Sum::Plain, s, k, &mut out);
            }
            fs::write(&path, out).map_err(io)?;
        }
        Ok(ids.len())
    }

    /// Durably records erasures about to be committed (`erasures.pending`, docs/FORMAT.md
    /// §5.2): written to a temporary file, fsynced, renamed, directory fsynced. Opening a
    /// ledger completes those whose event is in the log and drops the others.
    pub fn record_pending(&self, items: &[PendingErasure]) -> Result<(), VaultError> {
        // A record left by a writer that failed is kept: its erasures are still to be done.
        let mut all = self.pending()?;
        all.extend(items.iter().filter(|p| !all.contains(p)).cloned().collect::<Vec<_>>());
        let items = &all[..];
        let path = self.dir.join(PENDING_FILE);
        let io = |source| VaultError::Io { path: path.clone(), source };
        let mut body = Vec::with_capacity(8 + items.len() * 48);
        body.extend_from_slice(PENDING_MAGIC);
        body.extend_from_slice(&(items.len() as u32).to_be_bytes());
        for p in items {
            body.extend_from_slice(&p.subject.0);
            body.extend_from_slice(&p.seq.to_be_bytes());
            match &p.slot {
                None => body.push(0),
                Some(s) => {
                    body.push(1);
                    put_str(&mut body, s);
                }
            }
        }
        let sum = *blake3::hash(&body).as_bytes();
        body.extend_from_slice(&sum[..16]);
        write_replacing(&path, &body).map_err(io)?;
        sync_dir(&self.dir).map_err(|source| VaultError::Io { path: self.dir.clone(), source })
    }

    /// The erasures recorded by [`Vault::record_pending`] and not yet cleared.
    pub fn pending(&self) -> Result<Vec<PendingErasure>, VaultError> {
        let path = self.dir.join(PENDING_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(VaultError::Io { path, source }),
        };
        let corrupt = |what: &str| VaultError::Corrupt { path: path.clone(), what: what.into() };
        let Some((body, sum)) = bytes.split_at_checked(bytes.len().saturating_sub(16)) else {
            return Err(corrupt("truncated"));
        };
        if bytes.len() < 24 || &body[..4] != PENDING_MAGIC || blake3::hash(body).as_bytes()[..16] != *sum {
            return Err(corrupt("not an intact pending-erasure record (KVP1); the ledger was not opened"));
        }
        let mut r = Reader::new(&body[4..]);
        let parse = |r: &mut Reader<'_>| -> Result<Vec<PendingErasure>, kvitto_core::DecodeError> {
            let n = r.u32()?;
            let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
            for _ in 0..n {
                let subject = SubjectId(r.array()?);
                let seq = u64::from_be_bytes(r.array()?);
                let slot = match r.u8()? {
                    0 => None,
                    _ => Some(r.str()?.to_string()),
                };
                out.push(PendingErasure { subject, seq, slot });
            }
            r.finish()?;
            Ok(out)
        };
        parse(&mut r).map_err(|e| corrupt(&format!("does not decode: {e}")))
    }

    /// Removes the pending-erasure record once its erasures are done.
    pub fn clear_pending(&self) -> Result<(), VaultError> {
        let path = self.dir.join(PENDING_FILE);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(VaultError::Io { path, source }),
        }
        sync_dir(&self.dir).map_err(|source| VaultError::Io { path: self.dir.clone(), source })
    }

    /// The key a test captured before an erasure, to search the files for it afterwards.
    #[doc(hidden)]
    pub fn keys_for_test(&self, subject: &SubjectId) -> Vec<[u8; 32]> {
        self.get(subject).map(|k| k.slots.iter().map(|(_, key)| *key).collect()).unwrap_or_default()
    }
}

/// One erasure recorded before its event is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingErasure {
    /// Whose keys.
    pub subject: SubjectId,
    /// The `data_erased` event's seq.
    pub seq: u64,
    /// The register (`None`: every key and the external reference).
    pub slot: Option<String>,
}

const PENDING_FILE: &str = "erasures.pending";
const PENDING_MAGIC: &[u8; 4] = b"KVP1";

/// Writes `bytes` to `path.tmp` (mode 0600), fsyncs it and renames it over `path`. The
/// caller fsyncs the directory.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    set_private(&f)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// fsync a directory so that entries created or renamed in it survive power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(unix)]
fn set_private(f: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_f: &File) -> std::io::Result<()> {
    Ok(())
}

fn aad(subject: &SubjectId, event_id: &EventId) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..16].copy_from_slice(&subject.0);
    a[16..].copy_from_slice(event_id.as_bytes());
    a
}

/// Encrypts `salt ‖ plaintext` under `key`, bound to (subject, event_id) as associated data,
/// with a random nonce from the caller (e.g. a [`RandomPool`]); a nonce must never repeat
/// under one key — 24 random bytes make that a non-event.
/// Output: `nonce(24) ‖ ciphertext ‖ tag(16)`.
pub fn seal_with_nonce(
    key: &[u8; 32],
    subject: &SubjectId,
    event_id: &EventId,
    nonce_bytes: &[u8; 24],
    salt: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let mut msg = Vec::with_capacity(32 + plaintext.len());
    msg.extend_from_slice(salt);
    msg.extend_from_slice(plaintext);
    let aad = aad(subject, event_id);
    let ct = cipher
        .encrypt(&XNonce::from(*nonce_bytes), Payload { msg: &msg, aad: &aad })
        .map_err(|_| VaultError::Decrypt(*event_id))?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a sealed payload; returns (salt, plaintext).
pub fn open(
    key: &[u8; 32],
    subject: &SubjectId,
    event_id: &EventId,
    sealed: &[u8],
) -> Result<([u8; 32], Vec<u8>), VaultError> {
    if sealed.len() < 24 + 32 + 16 {
        return Err(VaultError::Decrypt(*event_id));
    }
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let mut nonce_bytes = [0u8; 24];
    nonce_bytes.copy_from_slice(&sealed[..24]);
    let aad = aad(subject, event_id);
    let mut msg = cipher
        .decrypt(&XNonce::from(nonce_bytes), Payload { msg: &sealed[24..], aad: &aad })
        .map_err(|_| VaultError::Decrypt(*event_id))?;
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&msg[..32]);
    let plaintext = msg.split_off(32);
    Ok((salt, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: LedgerSecret = LedgerSecret([0x42; 32]);

    fn open_vault(dir: &Path) -> Result<Vault, VaultError> {
        Vault::open(dir, &SECRET, OlderSegments::Refuse)
    }

    fn keys(r: &str, slots: &[(&str, u8)]) -> SubjectKeys {
        SubjectKeys {
            controller: "kalejdo".into(),
            external_ref: r.into(),
            slots: slots.iter().map(|(s, k)| (s.to_string(), [*k; 32])).collect(),
        }
    }

    fn files_contain(dir: &Path, needle: &[u8]) -> bool {
        fs::read_dir(dir).unwrap().any(|e| {
            let bytes = fs::read(e.unwrap().path()).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    }

    #[test]
    fn keys_survive_reopen_and_newest_frame_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (SubjectId([1; 16]), SubjectId([2; 16]));
        {
            let v = open_vault(dir.path()).unwrap();
            v.put_all(&[(a, keys("cust-a", &[("", 1)])), (b, keys("cust-b", &[]))]).unwrap();
            v.put_all(&[(a, keys("cust-a", &[("", 1), ("arendelista", 2)]))]).unwrap();
        }
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.get(&a), Some(keys("cust-a", &[("", 1), ("arendelista", 2)])));
        assert_eq!(v.get(&b), Some(keys("cust-b", &[])));
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn erasing_a_subject_removes_its_bytes_from_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (SubjectId([1; 16]), SubjectId([2; 16]));
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, keys("cust-erase-me", &[("", 0xaa)])), (b, keys("cust-keep", &[("", 0xbb)]))]).unwrap();
        v.put_all(&[(a, keys("cust-erase-me", &[("", 0xaa), ("kundregister", 0xcc)]))]).unwrap();
        assert!(files_contain(dir.path(), b"cust-erase-me"));
        assert!(v.erase(&a, None).unwrap());
        assert!(!files_contain(dir.path(), b"cust-erase-me"));
        assert!(!files_contain(dir.path(), &[0xaa; 32]));
        assert!(files_contain(dir.path(), b"cust-keep"));
        assert_eq!(v.get(&a), None);
        // Appends continue in the rewritten segment, and the erasure holds after reopen.
        let c = SubjectId([3; 16]);
        v.put_all(&[(c, keys("cust-c", &[]))]).unwrap();
        drop(v);
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.get(&a), None);
        assert_eq!(v.get(&b), Some(keys("cust-keep", &[("", 0xbb)])));
        assert_eq!(v.get(&c), Some(keys("cust-c", &[])));
        assert!(!v.erase(&a, None).unwrap());
    }

    #[test]
    fn erasing_one_register_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let a = SubjectId([1; 16]);
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, keys("cust-a", &[("kundregister", 0xaa), ("bokforing", 0xbb)]))]).unwrap();
        assert!(v.erase(&a, Some("kundregister")).unwrap());
        assert!(!files_contain(dir.path(), &[0xaa; 32]));
        drop(v);
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.get(&a), Some(keys("cust-a", &[("bokforing", 0xbb)])));
    }

    #[test]
    fn an_erasure_cut_short_after_its_reduced_frame_is_finished_by_running_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let a = SubjectId([1; 16]);
        {
            let v = open_vault(dir.path()).unwrap();
            v.put_all(&[(a, keys("cust-a", &[("kundregister", 0xaa), ("bokforing", 0xbb)]))]).unwrap();
            // The first step of an erasure: the reduced key set appended; then a crash.
            v.put_all(&[(a, keys("cust-a", &[("bokforing", 0xbb)]))]).unwrap();
        }
        assert!(files_contain(dir.path(), &[0xaa; 32]), "the old frame is still on disk");
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.slot_key(&a, Some("kundregister")), SlotKey::NoSlot);
        assert!(v.erase(&a, Some("kundregister")).unwrap(), "bytes on disk were destroyed");
        assert!(!files_contain(dir.path(), &[0xaa; 32]));
        assert!(files_contain(dir.path(), &[0xbb; 32]));
        assert!(!v.erase(&a, Some("kundregister")).unwrap(), "nothing left to destroy");
        drop(v);
        assert_eq!(open_vault(dir.path()).unwrap().get(&a), Some(keys("cust-a", &[("bokforing", 0xbb)])));
    }

    #[test]
    fn many_erasures_at_once_zero_their_frames_and_keep_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (SubjectId([1; 16]), SubjectId([2; 16]), SubjectId([3; 16]));
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[
            (a, keys("cust-a", &[("kundregister", 0xa1), ("bokforing", 0xa2)])),
            (b, keys("cust-b-gone", &[("kundregister", 0xb1)])),
            (c, keys("cust-c", &[("kundregister", 0xc1)])),
        ])
        .unwrap();
        let n = v
            .erase_all(&[
                (a, Some("kundregister".into())),
                (b, Some("kundregister".into())),
                (b, None),
                (SubjectId([9; 16]), None),
            ])
            .unwrap();
        assert_eq!(n, 2, "a lost a slot, b everything, the unknown subject nothing");
        for gone in [[0xa1; 32], [0xb1; 32]] {
            assert!(!files_contain(dir.path(), &gone));
        }
        assert!(!files_contain(dir.path(), b"cust-b-gone"));
        assert!(files_contain(dir.path(), &[0xa2; 32]) && files_contain(dir.path(), &[0xc1; 32]));
        drop(v);
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.get(&a), Some(keys("cust-a", &[("bokforing", 0xa2)])));
        assert_eq!(v.get(&b), None);
        assert_eq!(v.get(&c), Some(keys("cust-c", &[("kundregister", 0xc1)])));
    }

    #[test]
    fn erasure_zeroes_frames_in_place_and_a_version_2_segment_is_rewritten_once() {
        let dir = tempfile::tempdir().unwrap();
        let ((a, ka), (b, kb)) = (derived("cust-a-gone", &[("", 0xa1)]), derived("cust-b", &[("", 0xb1)]));
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, ka), (b, kb)]).unwrap();
        drop(v);
        let path = dir.path().join(seg_name(1));
        let mut bytes = fs::read(&path).unwrap();
        assert_eq!(bytes[4], SEGMENT_VERSION, "new segments are version 3");
        // The same frames under a version 2 header, as a vault written before erased frames.
        bytes[4] = VERSION;
        fs::write(&path, &bytes).unwrap();
        let v = open_vault(dir.path()).unwrap();
        assert!(v.erase(&a, None).unwrap());
        let after = fs::read(&path).unwrap();
        assert_eq!(after[4], SEGMENT_VERSION, "rewritten as version 3");
        assert!(after.len() < bytes.len(), "the rewrite leaves the erased frame out");
        assert!(!files_contain(dir.path(), b"cust-a-gone") && !files_contain(dir.path(), &[0xa1; 32]));
        assert_eq!(v.check_files().unwrap(), None);
        // Now in place: the next erasure changes no byte outside b's frame body and tag.
        let (c, kc) = derived("cust-c", &[]);
        v.put_all(&[(c, kc.clone())]).unwrap();
        let before = fs::read(&path).unwrap();
        assert!(v.erase(&b, None).unwrap());
        let now = fs::read(&path).unwrap();
        assert_eq!(now.len(), before.len());
        let changed: Vec<usize> = (0..now.len()).filter(|i| now[*i] != before[*i]).collect();
        let (first, last) = (changed[0], changed[changed.len() - 1]);
        assert!(now[first..=last].iter().all(|b| *b == 0), "only zeros were written");
        assert!(!files_contain(dir.path(), &[0xb1; 32]));
        drop(v);
        let v = open_vault(dir.path()).unwrap();
        assert_eq!((v.get(&a), v.get(&b)), (None, None));
        assert_eq!(v.get(&c), Some(kc));
        assert_eq!(v.check_files().unwrap(), None);
    }

    #[test]
    fn a_frame_zeroed_in_part_is_an_erasure_cut_short_only_while_its_record_exists() {
        let dir = tempfile::tempdir().unwrap();
        let ((a, ka), (b, kb), (c, kc)) =
            (derived("cust-a", &[("", 0xa1)]), derived("cust-b-gone", &[("", 0xb1)]), derived("cust-c", &[("", 0xc1)]));
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, ka), (b, kb), (c, kc.clone())]).unwrap();
        v.record_pending(&[PendingErasure { subject: b, seq: 5, slot: None }]).unwrap();
        drop(v);
        // A crash while b's frame was being zeroed: its first half is zero, the rest is not.
        let path = dir.path().join(seg_name(1));
        let clean = fs::read(&path).unwrap();
        let key = frame_key(&SECRET);
        let parsed = parse_segment(&clean, Parse::of(Some(SEGMENT_VERSION), &key, false));
        let range = parsed.frames.iter().find(|(s, _, _)| *s == b).unwrap().2.clone();
        let mut torn = clean.clone();
        let mid = (range.start + 4 + range.end) / 2;
        torn[range.start + 4..mid].fill(0);
        fs::write(&path, &torn).unwrap();
        // Without the record it is damage: nothing opens, nothing is changed.
        fs::rename(dir.path().join(PENDING_FILE), dir.path().join("held")).unwrap();
        assert!(matches!(open_vault(dir.path()), Err(VaultError::Corrupt { .. })));
        assert_eq!(fs::read(&path).unwrap(), torn);
        // With it, the open finishes the zeroing; the other subjects keep their keys.
        fs::rename(dir.path().join("held"), dir.path().join(PENDING_FILE)).unwrap();
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.get(&b), None);
        assert!(v.get(&a).is_some() && v.get(&c).is_some());
        assert!(!files_contain(dir.path(), &[0xb1; 32]) && !files_contain(dir.path(), b"cust-b-gone"));
        v.clear_pending().unwrap();
        assert_eq!(v.check_files().unwrap(), None);
        drop(v);
        assert_eq!(open_vault(dir.path()).unwrap().get(&c), Some(kc));
    }

    #[test]
    fn pending_erasures_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.pending().unwrap(), vec![]);
        let items = vec![
            PendingErasure { subject: SubjectId([1; 16]), seq: 7, slot: None },
            PendingErasure { subject: SubjectId([2; 16]), seq: 9, slot: Some("kundregister".into()) },
        ];
        v.record_pending(&items).unwrap();
        assert_eq!(v.pending().unwrap(), items);
        let path = dir.path().join(PENDING_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(v.pending(), Err(VaultError::Corrupt { .. })));
        v.clear_pending().unwrap();
        assert_eq!(v.pending().unwrap(), vec![]);
        // A temporary file left by a crash is removed on open.
        fs::write(dir.path().join("seg-00000001.tmp"), b"partial").unwrap();
        drop(v);
        open_vault(dir.path()).unwrap();
        assert!(!dir.path().join("seg-00000001.tmp").exists());
    }

    #[test]
    fn torn_tail_is_cut_but_damage_in_the_middle_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (SubjectId([1; 16]), SubjectId([2; 16]));
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, keys("cust-a", &[]))]).unwrap();
        v.put_all(&[(b, keys("cust-b", &[]))]).unwrap();
        drop(v);
        let path = dir.path().join(seg_name(1));
        let len = fs::metadata(&path).unwrap().len();
        // Torn tail: the last frame half-written.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 10).unwrap();
        drop(f);
        let v = open_vault(dir.path()).unwrap();
        assert!(v.get(&a).is_some());
        assert!(v.get(&b).is_none(), "the torn frame was never acknowledged");
        v.put_all(&[(b, keys("cust-b", &[]))]).unwrap();
        drop(v);
        assert!(open_vault(dir.path()).unwrap().get(&b).is_some());
        // Damage in a segment that is not the newest refuses to open.
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN as usize + 8] ^= 1;
        fs::write(&path, bytes).unwrap();
        fs::write(dir.path().join(seg_name(2)), [MAGIC.as_slice(), &[VERSION]].concat()).unwrap();
        assert!(matches!(open_vault(dir.path()), Err(VaultError::Corrupt { .. })));
    }

    #[test]
    fn damaged_frame_in_the_newest_segment_is_not_taken_for_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (SubjectId([1; 16]), SubjectId([2; 16]));
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, keys("cust-a", &[("kundregister", 0xaa)]))]).unwrap();
        v.put_all(&[(b, keys("cust-b", &[]))]).unwrap();
        drop(v);
        let path = dir.path().join(seg_name(1));
        let clean = fs::read(&path).unwrap();
        // A flipped bit in the first frame's body (a later frame follows), and a length field
        // flipped so high that the frame would run past the end of the file: both refuse,
        // and nothing is cut off.
        for at in [HEADER_LEN as usize + 10, HEADER_LEN as usize] {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            assert!(matches!(open_vault(dir.path()), Err(VaultError::Corrupt { .. })), "byte {at}");
            assert_eq!(fs::read(&path).unwrap(), bytes, "byte {at}: nothing cut off");
        }
        fs::write(&path, &clean).unwrap();
        let v = open_vault(dir.path()).unwrap();
        assert!(v.get(&a).is_some() && v.get(&b).is_some());
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = [7u8; 32];
        let s = SubjectId([2; 16]);
        let id = EventId::new_v7();
        let sealed = seal_with_nonce(&key, &s, &id, &[5; 24], &[9; 32], b"{\"name\":\"x\"}").unwrap();
        let (salt, pt) = open(&key, &s, &id, &sealed).unwrap();
        assert_eq!((salt, pt.as_slice()), ([9; 32], &b"{\"name\":\"x\"}"[..]));
        assert!(open(&[8; 32], &s, &id, &sealed).is_err());
        assert!(open(&key, &SubjectId([3; 16]), &id, &sealed).is_err());
        assert!(open(&key, &s, &EventId::new_v7(), &sealed).is_err());
        let mut bad = sealed.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(open(&key, &s, &id, &bad).is_err());
    }

    /// A subject as the ledger derives it, with its keys.
    fn derived(reference: &str, slots: &[(&str, u8)]) -> (SubjectId, SubjectKeys) {
        let k = keys(reference, slots);
        let id = SECRET.subject_id(&Id::new("kalejdo").unwrap(), &ExternalRef::new(reference).unwrap());
        (id, k)
    }

    /// A version 1 segment (unkeyed checksums) holding `frames`.
    fn v1_segment(frames: &[(SubjectId, SubjectKeys)]) -> Vec<u8> {
        let mut out = [MAGIC.as_slice(), &[VERSION_V1]].concat();
        for (s, k) in frames {
            encode_frame(Sum::Plain, s, k, &mut out);
        }
        out
    }

    #[test]
    fn version_1_segments_are_migrated_once_and_refused_after() {
        let dir = tempfile::tempdir().unwrap();
        let (a, ka) = derived("cust-a", &[("", 1)]);
        let (b, kb) = derived("cust-b", &[("kundregister", 2)]);
        let old = v1_segment(&[(a, ka.clone()), (b, kb.clone())]);
        fs::write(dir.path().join(seg_name(1)), &old).unwrap();
        assert!(
            matches!(open_vault(dir.path()), Err(VaultError::Corrupt { what, .. }) if what.contains("version 1")),
            "a vault already at version 2 refuses a version 1 segment"
        );
        let v = Vault::open(dir.path(), &SECRET, OlderSegments::Migrate).unwrap();
        assert_eq!(v.get(&a), Some(ka.clone()));
        assert_eq!(v.get(&b), Some(kb.clone()));
        let now = fs::read(dir.path().join(seg_name(1))).unwrap();
        assert_eq!(now.len(), old.len(), "same frames, same lengths");
        assert_eq!(now[4], VERSION);
        assert_ne!(now, old, "tags replace the checksums");
        assert_eq!(v.check_files().unwrap(), None);
        v.put_all(&[derived("cust-c", &[])]).unwrap();
        drop(v);
        let v = open_vault(dir.path()).unwrap();
        assert_eq!(v.get(&a), Some(ka));
        assert_eq!(v.len(), 3);
        // Another ledger's secret cannot read this vault: every tag fails.
        let other = Vault::open(dir.path(), &LedgerSecret([7; 32]), OlderSegments::Refuse);
        assert!(matches!(other, Err(VaultError::Corrupt { what, .. }) if what.contains("authentication failed")));
    }

    /// Rewrites the external reference of the first frame of segment 1, its tag computed
    /// with `sum`.
    fn rewrite_first_reference(dir: &Path, to: &str, sum: Sum<'_>) {
        let path = dir.join(seg_name(1));
        let bytes = fs::read(&path).unwrap();
        let key = frame_key(&SECRET);
        let Parsed { frames, problem, .. } = parse_segment(&bytes, Parse::of(segment_version(&bytes), &key, false));
        assert!(problem.is_none());
        let (subject, mut k, range) = frames.into_iter().next().unwrap();
        k.external_ref = to.into();
        let mut frame = Vec::new();
        encode_frame(sum, &subject, &k, &mut frame);
        let out = [&bytes[..range.start], &frame, &bytes[range.end..]].concat();
        fs::write(&path, out).unwrap();
    }

    #[test]
    fn check_files_finds_a_rewritten_reference_with_or_without_the_frame_key() {
        let dir = tempfile::tempdir().unwrap();
        let (a, ka) = derived("cust-a", &[("", 1)]);
        let (b, kb) = derived("cust-b", &[]);
        let v = open_vault(dir.path()).unwrap();
        v.put_all(&[(a, ka), (b, kb)]).unwrap();
        assert_eq!(v.check_files().unwrap(), None, "an untouched vault passes");

        // An outsider recomputes the old unkeyed checksum: the tag no longer matches.
        let pristine = fs::read(dir.path().join(seg_name(1))).unwrap();
        rewrite_first_reference(dir.path(), "cust-b", Sum::Plain);
        let fault = v.check_files().unwrap().expect("a rewritten frame is found");
        assert_eq!((fault.segment.as_str(), fault.offset), ("seg-00000001.keys", HEADER_LEN));
        assert!(matches!(&fault.problem, FrameProblem::Damaged(w) if w.contains("authentication failed")), "{fault:?}");
        assert!(matches!(open_vault(dir.path()), Err(VaultError::Corrupt { .. })), "and the vault no longer opens");

        // Someone holding the frame key re-tags it: the pseudonym no longer matches the reference.
        fs::write(dir.path().join(seg_name(1)), &pristine).unwrap();
        let key = frame_key(&SECRET);
        rewrite_first_reference(dir.path(), "cust-b", Sum::Keyed(&key));
        let fault = v.check_files().unwrap().expect("a re-tagged frame is found");
        assert_eq!(fault.problem, FrameProblem::WrongSubject(a));
        assert!(!fault.problem.to_string().contains("cust-"), "the finding names no reference");

        // Keys changed on disk under the running ledger (validly tagged and derived).
        fs::write(dir.path().join(seg_name(1)), &pristine).unwrap();
        let mut frame = Vec::new();
        encode_frame(Sum::Keyed(&key), &a, &keys("cust-a", &[("", 9)]), &mut frame);
        fs::OpenOptions::new().append(true).open(dir.path().join(seg_name(1))).unwrap().write_all(&frame).unwrap();
        assert_eq!(v.check_files().unwrap().map(|f| f.problem), Some(FrameProblem::DiffersFromLoaded(a)));

        // A segment put back as version 1.
        fs::write(dir.path().join(seg_name(1)), v1_segment(&[derived("cust-a", &[("", 1)]), derived("cust-b", &[])]))
            .unwrap();
        assert!(matches!(v.check_files().unwrap().map(|f| f.problem), Some(FrameProblem::Header(_))));
    }
}
