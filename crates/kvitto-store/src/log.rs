//! The event log in sled: one value per commit group (a chunk), the chain head, and the
//! derived indexes (docs/FORMAT.md §4).
//!
//! Layout:
//! - tree `log`: `c ‖ u64be first_seq` → chunk (`Vec<Record>`); `m:head` → [`Head`];
//!   `m:format` → u32be; `m:origin` → UTF-8; `m:created` → i64be µs.
//! - tree `index` (derived, rebuilt from the log): `h ‖ subject(16)` → [`SubjectHeadRec`];
//!   `e ‖ event_id(16)` → u64be seq; `w` → u64be watermark (events indexed).
//!
//! A commit writes its chunks and the new head in one `apply_batch` (atomic after a crash),
//! then sled `flush`, then `fdatasync` of sled's `db` file through our own descriptor —
//! sled 0.34.7's flush is `sync_file_range`, which does not survive power loss — and before
//! both, every blob file sled wrote (`blobs.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use kvitto_core::{EventId, LedgerSecret, SubjectId};
pub use kvitto_storage::{
    ACKED_LEN, Acked, CommitError, CommitStats, IndexBatch, LedgerInfo, MapEntryRec, OpenError, ProjectionBatch,
    damaged_store, panic_message,
};
use kvitto_vault::keyfiles::{self, LEDGER_FORMAT, VAULT_DIR};
use kvitto_vault::{OlderSegments, Vault, sync_dir};

use crate::StoreError;
use crate::blobs::BlobFiles;
use crate::codec::{self, Head, Record, SubjectHeadRec};

const STORE_DIR: &str = "store";
/// The acknowledged head, kept outside sled (docs/FORMAT.md §4, `acked`).
const ACKED_FILE: &str = "acked";

/// Free space required to open a store: sled writes during recovery (a snapshot, a new log
/// segment), and a recovery interrupted by a full disk leaves an empty snapshot that makes
/// every later open fail — so never start one without room (measured on a full tmpfs).
const MIN_FREE_TO_OPEN: u64 = 8 << 20;

const HEAD_KEY: &[u8] = b"m:head";
const FORMAT_KEY: &[u8] = b"m:format";
const ORIGIN_KEY: &[u8] = b"m:origin";
const CREATED_KEY: &[u8] = b"m:created";
/// `u8` version of the vault's segments (absent: version 1, migrated on the next open).
const VAULT_FORMAT_KEY: &[u8] = b"m:vault";
const WATERMARK_KEY: &[u8] = b"w";
/// The sled tree of the persisted projection states.
const PROJECTIONS_TREE: &str = "projections";
/// A raw (key, value) pair.
type RawEntry = (Vec<u8>, Vec<u8>);
/// Prefix of the projection snapshot chunks ([`Store::write_projection_snapshot`]).
const SNAPSHOT: u8 = b'S';
/// Largest projection snapshot chunk value.
const SNAPSHOT_CHUNK: usize = 64 * 1024;

/// Merkle nodes are stored in pages of this many consecutive nodes of one level: one sled
/// value per page instead of one key per node (sled's per-key cost dominated the indexer).
pub const NODES_PER_PAGE: u64 = 64;

/// Key of the page holding node `index` of `level`: `N ‖ level ‖ u64be (index / 64)`. The
/// value is the page's nodes from its first, 32 bytes each, in index order (a page fills up
/// as the tree grows). The `N` prefix replaced per-node `n` keys; an index holding only the
/// old keys is rebuilt from the log on open (derived data).
/// Prefix of the Merkle node pages (tree v2, SHA-256). Pages of the BLAKE3 tree of v1 had
/// `N`; an index holding only those has no `T` pages, so the open rebuilds it.
pub const NODE_PAGE: u8 = b'T';
/// Prefix of a subject tip in the index tree: `h ‖ subject(16)` (FORMAT.md §4).
pub const SUBJECT_TIP: u8 = b'h';
/// Prefix of an event id in the index tree: `e ‖ event_id(16)` → `u64be` seq.
pub const EVENT_ID: u8 = b'e';

/// Prefix of stored checkpoints of tree v2 (SHA-256 roots).
const CHECKPOINT: u8 = b'K';
/// Prefix of checkpoints of tree v1 (BLAKE3 roots).
const LEGACY_CHECKPOINT: u8 = b'k';

fn page_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = NODE_PAGE;
    k[1] = level;
    k[2..].copy_from_slice(&(index / NODES_PER_PAGE).to_be_bytes());
    k
}

/// An open ledger store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    index: sled::Tree,
    /// Replaced whole by [`Store::clear_projections`] (`None` after a replacement failed).
    projections: std::sync::RwLock<Option<sled::Tree>>,
    /// The subject map (FORMAT.md §7): a snapshot of its entries and the list of commitments.
    submap: sled::Tree,
    db_file: File,
    /// `acked`: the newest acknowledged (next_seq, head hash), rewritten after every commit.
    acked_file: File,
    /// sled's blob files, synced before every acknowledgement.
    blobs: BlobFiles,
    vault: Vault,
    /// Set when a commit failed (or sled failed reading): see the `Drop` impl.
    failed: std::sync::atomic::AtomicBool,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.failed.load(std::sync::atomic::Ordering::Acquire) {
            // After a failed commit (e.g. a full disk) sled 0.34.7 may not have recorded the
            // I/O error, and then its flush — the one its trees run when their last handle
            // drops — waits forever for a write that will never complete. Leak sled's state
            // instead: one `Db` handle kept alive keeps every tree's (none of them flushes).
            // Nothing acknowledged is lost (acknowledged groups were fdatasync'd), sled's lock
            // goes with the process, and the next open recovers from the log. This is the
            // only place kvitto leaks a sled handle.
            std::mem::forget(self.db.clone());
            tracing::warn!("store closed after a storage failure without flushing; reopen it to recover");
        }
    }
}

/// Entries of one derived-data update, written to sled in parts of [`Parts::SIZE`] entries
/// with the watermark in the last part. sled keeps every node version a batch replaces until
/// the batch ends, so one batch of 10,000 new subjects' states and ids held about 10 KB per
/// entry, and was slow besides (measured; docs/PERFORMANCE.md, "Memory of a large append").
/// Derived data may run ahead of its watermark — the catch-up on open rewrites the same
/// entries — so the parts need not be atomic together; the watermark, written last, never
/// names entries that are not there.
struct Parts<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    len: usize,
}

impl<'a> Parts<'a> {
    const SIZE: usize = 256;

    fn new(tree: &'a sled::Tree) -> Self {
        Parts { tree, batch: sled::Batch::default(), len: 0 }
    }

    fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.batch.insert(key.as_ref(), value.as_ref());
        self.len += 1;
        if self.len == Self::SIZE {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.len = 0;
        }
        Ok(())
    }

    fn finish(mut self, watermark_key: &[u8], watermark: &[u8]) -> Result<(), StoreError> {
        self.batch.insert(watermark_key, watermark);
        self.tree.apply_batch(self.batch)?;
        Ok(())
    }
}

pub(crate) fn chunk_key(seq: u64) -> [u8; 9] {
    let mut k = [b'c'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn prefixed<const N: usize>(prefix: u8, id: &[u8; N]) -> Vec<u8> {
    let mut k = Vec::with_capacity(N + 1);
    k.push(prefix);
    k.extend_from_slice(id);
    k
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io { path: path.to_path_buf(), source }
}

fn u64_value(v: &[u8], at: &str) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt { at: at.into(), what: format!("{} bytes, expected 8", v.len()) })
}

/// Runs `f`, turning a panic into the damaged-store error. sled 0.34.7 panics on some damaged
/// logs instead of returning an error — during recovery, and when a page it recovered badly
/// is first read — so every step of opening that touches sled runs under this.
pub fn catch_sled_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, OpenError>) -> Result<T, OpenError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(damaged_store(path, format!("sled failed reading its log ({})", panic_message(&*panic))))
    })
}

/// Maps a read error while opening: damaged data is the damaged-store error.
pub fn open_read_err(path: &Path) -> impl Fn(StoreError) -> OpenError + '_ {
    move |e| match e {
        StoreError::Sled(source @ sled::Error::Corruption { .. }) => {
            damaged_store(path, format!("sled found damaged data ({source})"))
        }
        StoreError::Corrupt { at, what } => damaged_store(path, format!("{at} does not decode ({what})")),
        StoreError::Sled(source) => OpenError::Engine {
            location: path.display().to_string(),
            what: format!("sled: {source} (is another kvitto process using this ledger?)"),
        },
        other => other.into(),
    }
}

/// sled's own page cache. sled's default (1 GiB) let a long append keep every chunk it wrote
/// in memory — 72 MB of a 300,000-event append's peak — while reads of the log are served as
/// well from the operating system's page cache; 64 MiB left append and verify as fast
/// (docs/PERFORMANCE.md, "Memory of a large append").
const SLED_CACHE: u64 = 64 << 20;

fn sled_config(path: &Path) -> sled::Config {
    sled::Config::new().path(path).mode(sled::Mode::HighThroughput).cache_capacity(SLED_CACHE)
}

/// Opens sled. A lock conflict is retried for up to 2 s: sled's own I/O threads may keep the
/// locked file open for a moment after a previous handle in this process was dropped. A lock
/// held longer means another process has the ledger open.
fn open_sled(path: &Path) -> Result<sled::Db, OpenError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let opened = catch_sled_panic(path, || Ok(sled_config(path).open()))?;
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(open_read_err(path)(e.into())),
        }
    }
}

/// Waits (up to `timeout`) until no handle in this process holds the store's sled files:
/// sled's I/O threads may keep its log file open for a moment after the last handle is
/// dropped. Returns whether the files were released.
pub fn wait_released(dir: &Path, timeout: std::time::Duration) -> bool {
    use fs2::FileExt;
    let Ok(file) = File::open(dir.join(STORE_DIR).join("db")) else { return true };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if file.try_lock_exclusive().is_ok() {
            let _ = FileExt::unlock(&file);
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Opens `acked` and refuses a store that holds fewer events than were acknowledged. A ledger
/// made before the file existed gets one recording its current head.
fn check_acked(dir: &Path, log: &sled::Tree) -> Result<(File, Acked, Head), OpenError> {
    let path = dir.join(ACKED_FILE);
    let store_dir = dir.join(STORE_DIR);
    let read_err = open_read_err(&store_dir);
    let head: Head = match log.get(HEAD_KEY).map_err(|e| read_err(e.into()))? {
        Some(v) => codec::decode(&v, || "m:head".into()).map_err(&read_err)?,
        None => return Err(damaged_store(&dir.join(STORE_DIR), "no chain head in the store")),
    };
    if !path.exists() {
        tracing::warn!("no acknowledged-head file; recording the store's head");
        write_private_file(&path, &Acked { next_seq: head.next_seq, head_hash: head.head_hash }.encode())?;
        sync_dir(dir).map_err(io_err(dir))?;
    }
    let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
    let mut b = Vec::new();
    (&file).read_to_end(&mut b).map_err(io_err(&path))?;
    let acked = Acked::decode(&b).ok_or_else(|| OpenError::Damaged {
        path: path.clone(),
        what: "not an intact acknowledged-head record (KVA1, 56 bytes); the store was not opened. If the store \
               directory is known to be intact, delete this file and it is recreated from the store's head"
            .into(),
    })?;
    if head.next_seq < acked.next_seq {
        return Err(damaged_store(
            &dir.join(STORE_DIR),
            format!(
                "the store holds {} events but {} were acknowledged (sled's recovery stops at the first corrupted \
                 byte of its log)",
                head.next_seq, acked.next_seq
            ),
        ));
    }
    Ok((file, acked, head))
}

/// Removes a torn, never-acknowledged group from the end of the log. A commit whose flush
/// failed (a full disk) can leave part of its group in sled after recovery — some of its
/// chunks and the new head, but not all chunks: sled's batch is not atomic across an I/O
/// error. Such a tail lies above the acknowledged head, is one group (every event of a group
/// has the head's `recorded_at`), and was never acknowledged; it is cut back to where the
/// group began. Chunks above the head (a group whose head never landed) go too. Anything else
/// missing is damage, refused.
fn repair_torn_tail(
    db: &sled::Db,
    log: &sled::Tree,
    db_file: &File,
    blobs: &BlobFiles,
    acked: Acked,
    head: Head,
    store_dir: &Path,
) -> Result<(), OpenError> {
    let read_err = open_read_err(store_dir);
    let sled_err = |e: sled::Error| read_err(e.into());
    let mut expected = acked.next_seq;
    let mut hole: Option<u64> = None;
    // Seqs from the acknowledged head on, with each record's recorded_at, contiguous part only.
    let mut contiguous: Vec<(u64, i64)> = Vec::new();
    let mut beyond_hole_other_group = false;
    let mut doomed: Vec<sled::IVec> = Vec::new();
    for kv in log.range(chunk_key(acked.next_seq)..=chunk_key(u64::MAX)) {
        let (k, v) = kv.map_err(sled_err)?;
        let first = decode_chunk_key(&k).map_err(&read_err)?;
        if first >= head.next_seq {
            doomed.push(k);
            continue;
        }
        let records = codec::decode_chunk(&v, || format!("chunk {first}")).map_err(&read_err)?;
        let recorded = |r: &Record| {
            kvitto_core::decode_event(&r.canonical)
                .map(|e| e.recorded_at.as_micros())
                .map_err(|e| damaged_store(store_dir, format!("seq in chunk {first} does not decode ({e})")))
        };
        if hole.is_none() && first == expected {
            for (i, r) in records.iter().enumerate() {
                contiguous.push((first + i as u64, recorded(r)?));
            }
            expected = first + records.len() as u64;
        } else {
            hole.get_or_insert(expected);
            for r in &records {
                beyond_hole_other_group |= recorded(r)? != head.last_recorded_at;
            }
            doomed.push(k);
        }
    }
    if hole.is_none() && expected < head.next_seq {
        hole = Some(expected); // the last chunks are missing
    }
    let Some(hole) = hole else {
        if !doomed.is_empty() {
            tracing::warn!(chunks = doomed.len(), "removing log chunks above the head (a commit that never completed)");
            let mut batch = sled::Batch::default();
            for k in doomed {
                batch.remove(k);
            }
            log.apply_batch(batch).map_err(sled_err)?;
            flush_durably(db, db_file, blobs).map_err(&read_err)?;
        }
        return Ok(());
    };
    if beyond_hole_other_group {
        return Err(damaged_store(
            store_dir,
            format!(
                "events {hole}.. are missing from the log while later ones of another commit are present \
                 (the head says {})",
                head.next_seq
            ),
        ));
    }
    // Back to where the torn group began: its events share the head's recorded_at.
    let start = contiguous.iter().find(|(_, at)| *at == head.last_recorded_at).map_or(hole, |(seq, _)| *seq);
    let new_head = if start == acked.next_seq {
        let last_recorded_at = match start.checked_sub(1) {
            None => 0,
            Some(prev) => last_event_at(log, prev, store_dir)?.1,
        };
        Head { next_seq: start, head_hash: acked.head_hash, last_recorded_at }
    } else {
        let (hash, at) = last_event_at(log, start - 1, store_dir)?;
        Head { next_seq: start, head_hash: hash, last_recorded_at: at }
    };
    tracing::warn!(
        from = start,
        to = head.next_seq,
        "cutting off a torn commit group that was never acknowledged (its commit failed)"
    );
    let mut batch = sled::Batch::default();
    for kv in log.range(chunk_key(start)..=chunk_key(u64::MAX)).keys() {
        batch.remove(kv.map_err(sled_err)?);
    }
    batch.insert(HEAD_KEY, codec::encode(&new_head)?);
    log.apply_batch(batch).map_err(sled_err)?;
    flush_durably(db, db_file, blobs).map_err(&read_err)?;
    Ok(())
}

/// sled `flush`, then fdatasync of the log through kvitto's own descriptor, with every new
/// blob file synced before each (see [`BlobFiles`]): after this returns, everything written
/// so far survives power loss.
fn flush_durably(db: &sled::Db, db_file: &File, blobs: &BlobFiles) -> Result<(), StoreError> {
    blobs.sync_new()?;
    db.flush()?;
    blobs.sync_new()?;
    db_file.sync_data()?;
    Ok(())
}

/// The chunk of `log` holding `seq`, as (first seq, records).
fn chunk_holding(log: &sled::Tree, seq: u64) -> Result<Option<(u64, Vec<Record>)>, StoreError> {
    match log.range(chunk_key(0)..=chunk_key(seq)).next_back() {
        None => Ok(None),
        Some(kv) => {
            let (k, v) = kv?;
            let first = decode_chunk_key(&k)?;
            let records = codec::decode_chunk(&v, || format!("chunk {first}"))?;
            Ok((seq < first + records.len() as u64).then_some((first, records)))
        }
    }
}

/// The hash and recorded_at (µs) of event `seq`, read from its chunk.
fn last_event_at(log: &sled::Tree, seq: u64, store_dir: &Path) -> Result<([u8; 32], i64), OpenError> {
    let read_err = open_read_err(store_dir);
    let missing = || damaged_store(store_dir, format!("seq {seq} is missing from the log"));
    let (first, records) = chunk_holding(log, seq).map_err(&read_err)?.ok_or_else(missing)?;
    let r = records.get((seq - first) as usize).ok_or_else(missing)?;
    let e = kvitto_core::decode_event(&r.canonical)
        .map_err(|e| damaged_store(store_dir, format!("seq {seq} does not decode ({e})")))?;
    Ok((kvitto_core::event_hash(&r.canonical).0, e.recorded_at.as_micros()))
}

impl Store {
    /// Creates a ledger in `dir` (which must not exist or be empty): secret, sled store, marker.
    /// The marker is written last, so a crash midway leaves no half-ledger that opens.
    pub fn create(dir: &Path, origin: &str, now_micros: i64) -> Result<(), OpenError> {
        keyfiles::prepare_new(dir)?;
        let secret = keyfiles::create_keys(dir)?;
        let store_dir = dir.join(STORE_DIR);
        let db = open_sled(&store_dir)?;
        let log = db.open_tree("log").map_err(|e| open_read_err(&store_dir)(e.into()))?;
        let mut batch = sled::Batch::default();
        batch.insert(FORMAT_KEY, &LEDGER_FORMAT.to_be_bytes());
        batch.insert(ORIGIN_KEY, origin.as_bytes());
        batch.insert(CREATED_KEY, &now_micros.to_be_bytes());
        batch.insert(VAULT_FORMAT_KEY, &[kvitto_vault::VERSION]);
        batch.insert(HEAD_KEY, codec::encode(&Head::default())?);
        log.apply_batch(batch).map_err(StoreError::from)?;
        db.flush().map_err(StoreError::from)?;
        drop(log);
        drop(db); // sled fsyncs on drop
        for entry in fs::read_dir(&store_dir).map_err(io_err(&store_dir))? {
            let path = entry.map_err(io_err(&store_dir))?.path();
            if path.is_file() {
                File::open(&path).and_then(|f| f.sync_all()).map_err(io_err(&path))?;
            }
        }
        sync_dir(&store_dir).map_err(io_err(&store_dir))?;
        let vault_dir = dir.join(VAULT_DIR);
        Vault::open(&vault_dir, &secret, OlderSegments::Refuse)
            .map_err(|e| OpenError::Damaged { path: vault_dir, what: e.to_string() })?;
        write_private_file(&dir.join(ACKED_FILE), &Acked { next_seq: 0, head_hash: [0; 32] }.encode())?;
        keyfiles::write_marker(dir, &keyfiles::Marker { store: None })?;
        Ok(())
    }

    /// Opens an existing ledger. Fails clearly on a missing ledger, an unknown format version,
    /// a damaged secret, or a store another process holds.
    pub fn open(dir: &Path) -> Result<(Store, LedgerSecret, LedgerInfo), OpenError> {
        keyfiles::read_marker(dir)?;
        let secret = keyfiles::read_secret(dir)?;
        let store_dir = dir.join(STORE_DIR);
        if !store_dir.join("db").exists() {
            return Err(OpenError::Damaged { path: store_dir, what: "the sled store is missing".into() });
        }
        let available = fs2::available_space(&store_dir).map_err(io_err(&store_dir))?;
        if available < MIN_FREE_TO_OPEN {
            return Err(OpenError::DiskFull { path: dir.to_path_buf(), available, needed: MIN_FREE_TO_OPEN });
        }
        let db = open_sled(&store_dir)?;
        catch_sled_panic(&store_dir, || Self::open_trees(dir, &store_dir, db, secret))
    }

    /// The part of [`Store::open`] after sled recovered: trees, metadata, `acked`, the vault.
    fn open_trees(
        dir: &Path,
        store_dir: &Path,
        db: sled::Db,
        secret: LedgerSecret,
    ) -> Result<(Store, LedgerSecret, LedgerInfo), OpenError> {
        let store_dir = store_dir.to_path_buf();
        let sled_err = |source: sled::Error| open_read_err(&store_dir)(source.into());
        let log = db.open_tree("log").map_err(sled_err)?;
        let index = db.open_tree("index").map_err(sled_err)?;
        let projections = db.open_tree(PROJECTIONS_TREE).map_err(sled_err)?;
        let submap = db.open_tree("submap").map_err(sled_err)?;
        let format = log
            .get(FORMAT_KEY)
            .map_err(sled_err)?
            .ok_or_else(|| damaged_store(&store_dir, "no format version in store"))?;
        let format = <[u8; 4]>::try_from(format.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| damaged_store(&store_dir, "malformed format version"))?;
        if format != LEDGER_FORMAT {
            return Err(OpenError::UnknownFormat { path: dir.to_path_buf(), found: format, supported: LEDGER_FORMAT });
        }
        let origin = log
            .get(ORIGIN_KEY)
            .map_err(sled_err)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        let created_at = log
            .get(CREATED_KEY)
            .map_err(sled_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, i64::from_be_bytes);
        let db_path = store_dir.join("db");
        let db_file = OpenOptions::new().read(true).open(&db_path).map_err(io_err(&db_path))?;
        let (acked_file, acked, head) = check_acked(dir, &log)?;
        let blobs = BlobFiles::new(&store_dir);
        // Blobs an earlier process left unsynced (it crashed, or predates this check).
        blobs.sync_new().map_err(io_err(&store_dir.join("blobs")))?;
        repair_torn_tail(&db, &log, &db_file, &blobs, acked, head, &store_dir)?;
        let vault_dir = dir.join(VAULT_DIR);
        let migrated =
            log.get(VAULT_FORMAT_KEY).map_err(sled_err)?.is_some_and(|v| v.as_ref() == [kvitto_vault::VERSION]);
        let older = if migrated { OlderSegments::Refuse } else { OlderSegments::Migrate };
        let vault = Vault::open(&vault_dir, &secret, older)
            .map_err(|e| OpenError::Damaged { path: vault_dir.clone(), what: e.to_string() })?;
        if !migrated {
            // Every segment is version 2 now: from here on a version 1 segment is refused.
            log.insert(VAULT_FORMAT_KEY, &[kvitto_vault::VERSION]).map_err(sled_err)?;
            flush_durably(&db, &db_file, &blobs).map_err(open_read_err(&store_dir))?;
            tracing::info!("key vault at version 2 (authenticated frames)");
        }
        let store = Store {
            dir: dir.to_path_buf(),
            db,
            log,
            index,
            projections: std::sync::RwLock::new(Some(projections)),
            submap,
            db_file,
            acked_file,
            blobs,
            vault,
            failed: Default::default(),
        };
        Ok((store, secret, LedgerInfo { origin, format, created_at }))
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a signed checkpoint note (tree v2) for `size` durably (sled flush + fdatasync).
    pub fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let mut key = vec![CHECKPOINT];
        key.extend_from_slice(&size.to_be_bytes());
        self.log.insert(key, note.as_bytes())?;
        flush_durably(&self.db, &self.db_file, &self.blobs)
    }

    /// Every stored checkpoint note (tree v2, SHA-256), by size.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.checkpoints_under(CHECKPOINT)
    }

    /// Checkpoints signed over the BLAKE3 tree of v1 (kept, verified under that version).
    pub fn legacy_checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.checkpoints_under(LEGACY_CHECKPOINT)
    }

    fn checkpoints_under(&self, prefix: u8) -> Result<Vec<(u64, String)>, StoreError> {
        self.log
            .scan_prefix([prefix])
            .map(|kv| {
                let (k, v) = kv?;
                let size = u64_value(&k[1..], "checkpoint key")?;
                let note = String::from_utf8(v.to_vec())
                    .map_err(|_| StoreError::Corrupt { at: format!("checkpoint {size}"), what: "not UTF-8".into() })?;
                Ok((size, note))
            })
            .collect()
    }

    /// The key vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The committed chain head.
    pub fn head(&self) -> Result<Head, StoreError> {
        match self.log.get(HEAD_KEY)? {
            Some(v) => codec::decode(&v, || "m:head".into()),
            None => Err(StoreError::Corrupt { at: "m:head".into(), what: "missing".into() }),
        }
    }

    /// The acknowledged head recorded outside sled.
    pub fn acked(&self) -> Result<Acked, StoreError> {
        let mut b = [0u8; ACKED_LEN];
        std::os::unix::fs::FileExt::read_exact_at(&self.acked_file, &mut b, 0)?;
        Acked::decode(&b)
            .ok_or_else(|| StoreError::Corrupt { at: ACKED_FILE.into(), what: "not an intact KVA1 record".into() })
    }

    /// Writes records `first_seq..` and the new head atomically, then makes them durable
    /// (sled flush + fdatasync). On `Ok`, the events survive a kill and a power loss. On
    /// [`CommitError::Unknown`] the group may or may not be in the store after a reopen: sled
    /// had the batch, and a failed flush or fdatasync does not say which bytes reached the
    /// disk. After a reopen the store holds all of the group or none of it: sled keeps a
    /// batch whole across a crash, and a part of one left by an I/O error is cut off on open
    /// (`repair_torn_tail`).
    pub fn commit(&self, first_seq: u64, records: &[Record], head: &Head) -> Result<CommitStats, CommitError> {
        // A group must extend the head. (A head sled cannot read is left to the write below:
        // after an I/O error sled fails that too, and the handle is abandoned as it must be.)
        if let Ok(current) = self.head()
            && current.next_seq != first_seq
        {
            return Err(CommitError::NotWritten(kvitto_storage::StoreError::Fenced(format!(
                "the chain head is at seq {}, not {first_seq}",
                current.next_seq
            ))));
        }
        let chunks = codec::chunk_records(first_seq, records).map_err(|e| CommitError::NotWritten(e.into()))?;
        self.commit_chunks(chunks, head).map_err(|e| {
            self.abandon_on_drop();
            CommitError::Unknown(e.into())
        })
    }

    /// sled failed (a commit, or a read that panicked): never flush it again, not even on
    /// drop (see the `Drop` impl). The handle's owner must take no more writes.
    pub fn abandon_on_drop(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether sled failed under this handle.
    pub fn is_abandoned(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    fn commit_chunks(&self, chunks: Vec<(u64, Vec<u8>)>, head: &Head) -> Result<CommitStats, StoreError> {
        let mut stats = CommitStats::default();
        let mut batch = sled::Batch::default();
        for (seq, value) in chunks {
            stats.chunks += 1;
            stats.bytes += value.len();
            batch.insert(&chunk_key(seq), value);
        }
        batch.insert(HEAD_KEY, codec::encode(head)?);
        let started = std::time::Instant::now();
        self.log.apply_batch(batch)?;
        // Blobs the batch wrote are durable before the log that points at them is written.
        self.blobs.sync_new()?;
        self.db.flush()?;
        stats.write = started.elapsed();
        self.blobs.sync_new()?;
        self.db_file.sync_data()?;
        stats.sync = started.elapsed() - stats.write;
        // A lower bound for the next open (not synced: it only has to trail the log).
        let acked = Acked { next_seq: head.next_seq, head_hash: head.head_hash };
        if let Err(e) = std::os::unix::fs::FileExt::write_all_at(&self.acked_file, &acked.encode(), 0) {
            tracing::warn!(error = %e, "could not record the acknowledged head; the next open checks an older one");
        }
        Ok(stats)
    }

    /// The chunk holding `seq`, as (first seq, records).
    pub fn chunk_containing(&self, seq: u64) -> Result<Option<(u64, Vec<Record>)>, StoreError> {
        chunk_holding(&self.log, seq)
    }

    /// One record by seq.
    pub fn record(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        Ok(self.chunk_containing(seq)?.and_then(|(first, mut rs)| {
            let i = (seq - first) as usize;
            (i < rs.len()).then(|| rs.swap_remove(i))
        }))
    }

    /// Chunks in seq order, starting with the one holding `from` (or the first after it).
    /// Each item is (first seq from the key, records); a chunk that does not decode is an
    /// `Err` item naming its key, so `verify` can report it and stop.
    pub fn chunks_from(&self, from: u64) -> impl Iterator<Item = Result<(u64, Vec<Record>), StoreError>> + '_ {
        let start = match self.log.range(chunk_key(0)..=chunk_key(from)).next_back() {
            Some(Ok((k, _))) => decode_chunk_key(&k).unwrap_or(from),
            _ => from,
        };
        self.log.range(chunk_key(start)..=chunk_key(u64::MAX)).map(|kv| {
            let (k, v) = kv?;
            let first = decode_chunk_key(&k)?;
            let records = codec::decode_chunk(&v, || format!("chunk {first}"))?;
            Ok((first, records))
        })
    }

    /// Events indexed so far (the index watermark).
    pub fn index_watermark(&self) -> Result<u64, StoreError> {
        self.index.get(WATERMARK_KEY)?.map_or(Ok(0), |v| u64_value(&v, "index watermark"))
    }

    /// Applies one coalesced index update with its watermark, atomically. Not flushed:
    /// indexes are derived and caught up from the log on open.
    pub fn apply_index(&self, batch: &IndexBatch) -> Result<(), StoreError> {
        let mut b = Parts::new(&self.index);
        for (subject, head) in &batch.heads {
            b.insert(prefixed(SUBJECT_TIP, &subject.0), codec::encode(head)?)?;
        }
        for (id, seq) in &batch.event_ids {
            b.insert(prefixed(EVENT_ID, id.as_bytes()), seq.to_be_bytes())?;
        }
        // Nodes arrive in index order per level; extend each touched page (read once).
        let mut pages: std::collections::BTreeMap<[u8; 10], Vec<u8>> = std::collections::BTreeMap::new();
        for (level, index, hash) in &batch.nodes {
            let key = page_key(*level, *index);
            let page = match pages.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let existing = self.index.get(key)?.map(|v| v.to_vec()).unwrap_or_default();
                    e.insert(existing)
                }
            };
            let offset = (index % NODES_PER_PAGE) as usize * 32;
            if page.len() < offset {
                return Err(StoreError::Corrupt {
                    at: format!("merkle page {level}/{}", index / NODES_PER_PAGE),
                    what: format!("node {index} would leave a gap after {} nodes", page.len() / 32),
                });
            }
            page.truncate(offset);
            page.extend_from_slice(hash);
        }
        for (key, page) in pages {
            b.insert(key, page)?;
        }
        b.finish(WATERMARK_KEY, &batch.watermark.to_be_bytes())
    }

    /// Drops every derived index entry (before a rebuild from seq 0).
    pub fn clear_index(&self) -> Result<(), StoreError> {
        self.index.clear()?;
        Ok(())
    }

    /// Events reflected in the persisted projections (their watermark).
    pub fn projection_watermark(&self) -> Result<u64, StoreError> {
        self.projections()?.get(WATERMARK_KEY)?.map_or(Ok(0), |v| u64_value(&v, "projection watermark"))
    }

    /// Writes persisted projection states and their watermark in one batch. Not flushed:
    /// projections are derived and caught up from the log on open.
    pub fn apply_projections(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        let tree = self.projections()?;
        let mut b = Parts::new(&tree);
        for (k, v) in &batch.entries {
            b.insert(k.as_slice(), v.as_slice())?;
        }
        b.finish(WATERMARK_KEY, &batch.watermark.to_be_bytes())
    }

    /// The projections tree as it is now (a handle: a later replacement does not move it).
    fn projections(&self) -> Result<sled::Tree, StoreError> {
        self.projections.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone().ok_or_else(|| {
            StoreError::Corrupt {
                at: "projections".into(),
                what: "the tree could not be recreated after it was dropped; reopen the ledger".into(),
            }
        })
    }

    /// The projections tree's pairs under `prefix` (every pair for `[]`), or the one error
    /// that the tree is gone.
    fn projection_pairs(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>>> {
        match self.projections() {
            Ok(t) => Box::new(t.scan_prefix(prefix).map(|kv| kv.map_err(StoreError::from))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Every persisted projection state (watermark excluded), as raw (key, value).
    pub fn projection_entries(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.projection_pairs(&[])
            .filter(|kv| kv.as_ref().map_or(true, |(k, _)| k.as_ref() != WATERMARK_KEY))
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    /// Writes a complete set of projection states after [`Store::clear_projections`] (a
    /// rebuild), packed many to a value: `S ‖ u32be n` → bincode `Vec<BytePair>` of at most
    /// [`SNAPSHOT_CHUNK`] bytes (sled's per-key cost dominated a rebuild's write).
    pub fn write_projection_snapshot(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        let mut chunks = Vec::new();
        let mut current: Vec<codec::BytePair> = Vec::new();
        let mut size = 0;
        let flush = |chunks: &mut Vec<(Vec<u8>, Vec<u8>)>, current: &mut Vec<codec::BytePair>| {
            let mut key = vec![SNAPSHOT];
            key.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
            chunks.push((key, codec::compress(codec::encode(&std::mem::take(current))?)));
            Ok::<(), StoreError>(())
        };
        for (k, v) in &batch.entries {
            let len = k.len() + v.len() + 8;
            if size + len > SNAPSHOT_CHUNK && !current.is_empty() {
                flush(&mut chunks, &mut current)?;
                size = 0;
            }
            size += len;
            current.push(codec::BytePair(k.clone(), v.clone()));
        }
        if !current.is_empty() {
            flush(&mut chunks, &mut current)?;
        }
        self.apply_projections(&ProjectionBatch { entries: chunks, watermark: batch.watermark })
    }

    /// Every persisted projection state as the facade wrote it: the snapshot's pairs first,
    /// then the entries written since (which override them).
    pub fn projection_states(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        let snapshot = self.projection_pairs(&[SNAPSHOT]).flat_map(|kv| {
            let pairs: Vec<Result<RawEntry, StoreError>> = match kv {
                Err(e) => vec![Err(e)],
                Ok((_, v)) => match codec::decode_stored::<Vec<codec::BytePair>>(&v, || "projection snapshot".into()) {
                    Ok(pairs) => pairs.into_iter().map(|codec::BytePair(k, v)| Ok((k, v))).collect(),
                    Err(e) => vec![Err(e)],
                },
            };
            pairs
        });
        let deltas =
            self.projection_entries().filter(|kv| kv.as_ref().map_or(true, |(k, _)| k.first() != Some(&SNAPSHOT)));
        snapshot.chain(deltas)
    }

    /// Drops every persisted projection state (before a rebuild from seq 0): the tree is
    /// dropped and created anew. sled frees a dropped tree page by page, where clearing it
    /// removes its keys one by one — a quarter of a rebuild of 1M events, one key per subject
    /// touched since the last snapshot. Every writer of the tree holds the facade's persist
    /// lock, as the caller does; readers (loading on open) do not run beside it. A crash
    /// midway leaves the old tree or none: derived data, rebuilt or caught up on open.
    pub fn clear_projections(&self) -> Result<(), StoreError> {
        let mut tree = self.projections.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // No handle to the dropped tree may be used again: sled marks it gone for every clone.
        *tree = None;
        self.db.drop_tree(PROJECTIONS_TREE)?;
        *tree = Some(self.db.open_tree(PROJECTIONS_TREE)?);
        Ok(())
    }

    /// The Merkle node of the complete subtree of leaves `[index·2^level, (index+1)·2^level)`,
    /// if indexed.
    pub fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let Some(page) = self.index.get(page_key(level, index))? else { return Ok(None) };
        if page.len() % 32 != 0 || page.len() as u64 > NODES_PER_PAGE * 32 {
            return Err(StoreError::Corrupt {
                at: format!("merkle page {level}/{}", index / NODES_PER_PAGE),
                what: format!("{} bytes, not a whole number of nodes (≤ {NODES_PER_PAGE})", page.len()),
            });
        }
        let offset = (index % NODES_PER_PAGE) as usize * 32;
        Ok(page.get(offset..offset + 32).and_then(|h| <[u8; 32]>::try_from(h).ok()))
    }

    /// The stored Merkle nodes of one level, in index order.
    pub fn merkle_level(&self, level: u8) -> impl Iterator<Item = Result<(u64, [u8; 32]), StoreError>> + '_ {
        self.index.scan_prefix([NODE_PAGE, level]).flat_map(move |kv| {
            let page: Vec<Result<(u64, [u8; 32]), StoreError>> = match kv {
                Err(e) => vec![Err(e.into())],
                Ok((k, v)) => {
                    let corrupt = |what: &str| StoreError::Corrupt {
                        at: format!("merkle page key {}", hex::encode(&k)),
                        what: what.into(),
                    };
                    match k.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes) {
                        None => vec![Err(corrupt("bad key"))],
                        Some(_) if v.len() % 32 != 0 || v.len() as u64 > NODES_PER_PAGE * 32 => {
                            vec![Err(corrupt("value is not a whole number of nodes"))]
                        }
                        Some(p) => v
                            .chunks_exact(32)
                            .enumerate()
                            .map(|(i, h)| {
                                let mut hash = [0u8; 32];
                                hash.copy_from_slice(h);
                                Ok((p * NODES_PER_PAGE + i as u64, hash))
                            })
                            .collect(),
                    }
                }
            };
            page
        })
    }

    /// A subject's tip as of the index watermark.
    pub fn subject_head(&self, subject: &SubjectId) -> Result<Option<SubjectHeadRec>, StoreError> {
        self.index
            .get(prefixed(SUBJECT_TIP, &subject.0))?
            .map(|v| codec::decode(&v, || format!("index head {subject}")))
            .transpose()
    }

    /// The seq of an event id, as of the index watermark.
    pub fn event_seq(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        self.index.get(prefixed(EVENT_ID, id.as_bytes()))?.map(|v| u64_value(&v, "index event id")).transpose()
    }

    /// Every subject tip in the index.
    pub fn indexed_subject_heads(&self) -> impl Iterator<Item = Result<(SubjectId, SubjectHeadRec), StoreError>> + '_ {
        self.index.scan_prefix([SUBJECT_TIP]).map(|kv| {
            let (k, v) = kv?;
            let subject = SubjectId(id16(&k, "index head key")?);
            Ok((subject, codec::decode(&v, || format!("index head {subject}"))?))
        })
    }

    /// Every event id in the index.
    pub fn indexed_event_ids(&self) -> impl Iterator<Item = Result<(EventId, u64), StoreError>> + '_ {
        self.index.scan_prefix([EVENT_ID]).map(|kv| {
            let (k, v) = kv?;
            let id = id16(&k, "index event key")?;
            Ok((EventId(uuid::Uuid::from_bytes(id)), u64_value(&v, "index event id")?))
        })
    }

    /// Bytes the store occupies on disk (sled files).
    pub fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Flushes everything sled holds (indexes included) — used on clean shutdown.
    pub fn flush_all(&self) -> Result<(), StoreError> {
        flush_durably(&self.db, &self.db_file, &self.blobs)
    }

    /// The stored subject map snapshot: the number of events it reflects and its entries
    /// (subject → count, head hash). Derived data: `(0, [])` when none is stored.
    pub fn map_snapshot(&self) -> Result<(u64, Vec<MapEntryRec>), StoreError> {
        let size = self.submap.get(WATERMARK_KEY)?.map_or(Ok(0), |v| u64_value(&v, "map watermark"))?;
        let mut entries = Vec::new();
        for kv in self.submap.scan_prefix([b'S']) {
            let (k, v) = kv?;
            let subject = id16(&k, "map entry key")?;
            if v.len() != 40 {
                return Err(StoreError::Corrupt {
                    at: format!("map entry {}", hex::encode(subject)),
                    what: "not 40 bytes".into(),
                });
            }
            let count = u64_value(&v[..8], "map entry count")?;
            let mut head = [0u8; 32];
            head.copy_from_slice(&v[8..]);
            entries.push((subject, count, head));
        }
        Ok((size, entries))
    }

    /// Writes changed map entries, the number of events the snapshot now reflects and new
    /// commitments `(seq, tree_size, map_root)`, in one batch (not flushed: derived data,
    /// rebuilt from the log when it does not match).
    pub fn apply_map(
        &self,
        entries: &[MapEntryRec],
        size: u64,
        commitments: &[(u64, u64, [u8; 32])],
    ) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (subject, count, head) in entries {
            let mut v = count.to_be_bytes().to_vec();
            v.extend_from_slice(head);
            b.insert(prefixed(b'S', subject), v);
        }
        for (seq, tree_size, root) in commitments {
            let mut v = tree_size.to_be_bytes().to_vec();
            v.extend_from_slice(root);
            b.insert(prefixed(b'C', &seq.to_be_bytes()), v);
        }
        b.insert(WATERMARK_KEY, &size.to_be_bytes());
        self.submap.apply_batch(b)?;
        Ok(())
    }

    /// The subject map commitments recorded by [`Store::apply_map`]: (seq of the
    /// `subject_map_committed` event, its tree size, its map root), by seq. A derived list:
    /// the events themselves are in the log.
    pub fn map_commitments(&self) -> Result<Vec<(u64, u64, [u8; 32])>, StoreError> {
        self.submap
            .scan_prefix([b'C'])
            .map(|kv| {
                let (k, v) = kv?;
                let seq = u64_value(k.get(1..).unwrap_or_default(), "map commitment key")?;
                if v.len() != 40 {
                    return Err(StoreError::Corrupt {
                        at: format!("map commitment {seq}"),
                        what: "not 40 bytes".into(),
                    });
                }
                let mut root = [0u8; 32];
                root.copy_from_slice(&v[8..]);
                Ok((seq, u64_value(&v[..8], "map commitment size")?, root))
            })
            .collect()
    }

    /// Drops the map snapshot and its commitment list (derived; rebuilt from the log).
    pub fn clear_map(&self) -> Result<(), StoreError> {
        self.submap.clear()?;
        Ok(())
    }

    #[cfg(feature = "tamper")]
    pub(crate) fn projections_tree(&self) -> Result<sled::Tree, StoreError> {
        self.projections()
    }

    #[cfg(feature = "tamper")]
    pub(crate) fn log_tree(&self) -> &sled::Tree {
        &self.log
    }

    #[cfg(feature = "tamper")]
    pub(crate) fn submap_tree(&self) -> &sled::Tree {
        &self.submap
    }

    #[cfg(feature = "tamper")]
    pub(crate) fn index_tree(&self) -> &sled::Tree {
        &self.index
    }
}

/// The 16-byte id after a one-byte prefix in an index key.
fn id16(k: &[u8], at: &str) -> Result<[u8; 16], StoreError> {
    k.get(1..)
        .and_then(|id| <[u8; 16]>::try_from(id).ok())
        .ok_or_else(|| StoreError::Corrupt { at: at.into(), what: format!("{} bytes, expected 17", k.len()) })
}

fn decode_chunk_key(k: &[u8]) -> Result<u64, StoreError> {
    match k.split_first() {
        Some((b'c', rest)) if rest.len() == 8 => u64_value(rest, "chunk key"),
        _ => Err(StoreError::Corrupt { at: format!("key {}", hex::encode(k)), what: "not a chunk key".into() }),
    }
}

fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), OpenError> {
    Ok(keyfiles::write_private_file(path, bytes)?)
}
