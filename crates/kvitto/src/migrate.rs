//! `kvitto migrate`: a sled ledger's events and checkpoints copied into PostgreSQL, every
//! hash re-derived and checked on the way, and the ledger directory switched over to the
//! database. The key files and the key vault stay where they are (they are the same ledger's).

use std::path::{Path, PathBuf};

use kvitto_core::{decode_event, event_hash};
use kvitto_storage::{Backend, EventLog, Head, Record};
use kvitto_vault::keyfiles;

/// What a migration copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Events copied.
    pub events: u64,
    /// Head hash, the same in both stores.
    pub head: [u8; 32],
    /// Signed checkpoints copied.
    pub checkpoints: usize,
    /// Checkpoints over the tree of version 1 (BLAKE3), which PostgreSQL ledgers do not keep.
    pub legacy_checkpoints_left: usize,
    /// Where the sled store was moved (kept until you delete it).
    pub sled_kept_at: PathBuf,
}

/// Why a migration stopped. Until the last step the sled ledger is untouched and remains the
/// ledger; the database may then hold a partial copy (drop its kvitto tables to retry).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Opening either side failed.
    #[error(transparent)]
    Open(#[from] kvitto_storage::OpenError),
    /// Reading or writing failed.
    #[error("storage: {0}")]
    Storage(#[from] kvitto_storage::StoreError),
    /// A group was refused by the database.
    #[error("writing to PostgreSQL: {0}")]
    Commit(#[from] kvitto_storage::CommitError),
    /// An event's bytes do not re-derive the chain: the sled ledger is damaged (run `verify`).
    #[error("seq {seq}: {what} — the sled ledger is damaged; nothing was switched (run `kvitto verify`)")]
    Chain {
        /// The event.
        seq: u64,
        /// What is wrong.
        what: String,
    },
    /// The copy does not read back as the original.
    #[error("the copy differs from the original: {0}; nothing was switched")]
    Mismatch(String),
    /// The ledger is not on sled.
    #[error("{0}: the ledger's events are already in {1}")]
    NotSled(PathBuf, String),
    /// The final switch of the directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Events per transaction while copying.
const GROUP: usize = 2000;

/// Copies the sled ledger in `dir` into the empty database at `url` and switches `dir` to it.
/// `progress(done, total)` is called as events are copied.
pub fn migrate_to_postgres(
    dir: &Path,
    url: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<MigrateReport, MigrateError> {
    let marker = keyfiles::read_marker(dir).map_err(kvitto_storage::OpenError::from)?;
    if let Some(kind) = marker.store.filter(|k| k != "sled") {
        return Err(MigrateError::NotSled(dir.to_path_buf(), kind));
    }
    let (store, secret, info) = kvitto_store::Store::open(dir)?;
    let release = store.release_waiter();
    let sled: &dyn Backend = &store;
    let source_head = sled.head()?;
    let db = kvitto_postgres::NewDatabase::check(url)?;
    let id = db.insert_ledger(&info.origin, info.created_at)?;
    let role = kvitto_postgres::Role::Writer { wait: std::time::Duration::from_secs(0) };
    let (pg, _) = kvitto_postgres::PgStore::open_ledger(dir, url, id, &secret, role)?;

    let mut head = Head::default();
    let mut group: Vec<Record> = Vec::with_capacity(GROUP);
    let mut group_first = 0;
    for chunk in sled.chunks_from(0) {
        let (first, records) = chunk?;
        for (i, r) in records.into_iter().enumerate() {
            let seq = first + i as u64;
            let chain = |what: String| MigrateError::Chain { seq, what };
            if seq != head.next_seq {
                return Err(chain(format!("expected seq {} next", head.next_seq)));
            }
            let e = decode_event(&r.canonical).map_err(|e| chain(e.to_string()))?;
            if e.seq != seq || e.prev_hash.0 != head.head_hash {
                return Err(chain("the event does not extend the chain".into()));
            }
            head = Head {
                next_seq: seq + 1,
                head_hash: event_hash(&r.canonical).0,
                last_recorded_at: e.recorded_at.as_micros(),
            };
            group.push(r);
            if group.len() == GROUP {
                pg.commit(group_first, &group, &head)?;
                group.clear();
                group_first = head.next_seq;
                progress(head.next_seq, source_head.next_seq);
            }
        }
    }
    if !group.is_empty() {
        pg.commit(group_first, &group, &head)?;
    }
    progress(head.next_seq, source_head.next_seq);
    if head != source_head {
        return Err(MigrateError::Mismatch(format!(
            "the chain re-derived from the records ends at {} events, the store's head says {}",
            head.next_seq, source_head.next_seq
        )));
    }
    let checkpoints = sled.checkpoints()?;
    for (size, note) in &checkpoints {
        pg.put_checkpoint(*size, note)?;
    }
    let legacy = sled.legacy_checkpoints()?.len();
    // Read back what was written before anything is switched: the chain re-derived from the
    // database's own rows.
    if pg.head()? != source_head {
        return Err(MigrateError::Mismatch("the database's head differs from the sled head".into()));
    }
    if pg.checkpoints()? != checkpoints {
        return Err(MigrateError::Mismatch("the database's checkpoints differ".into()));
    }
    let (mut copied, mut prev) = (0u64, [0u8; 32]);
    for chunk in pg.chunks_from(0) {
        for r in chunk?.1 {
            let e = decode_event(&r.canonical).map_err(|e| MigrateError::Mismatch(format!("seq {copied}: {e}")))?;
            if e.seq != copied || e.prev_hash.0 != prev {
                return Err(MigrateError::Mismatch(format!("seq {copied} does not extend the copied chain")));
            }
            prev = event_hash(&r.canonical).0;
            copied += 1;
        }
    }
    if copied != source_head.next_seq || prev != source_head.head_hash {
        return Err(MigrateError::Mismatch(format!("{copied} events read back of {}", source_head.next_seq)));
    }
    drop(pg);
    // Switch while the sled store is still open: its lock keeps every other process out until
    // the marker names the database. Then the sled store is moved aside.
    switch(dir, url, id)?;
    drop(store);
    if !release(std::time::Duration::from_secs(5)) {
        tracing::warn!("sled still holds its files; moving the store aside anyway");
    }
    let kept = dir.join("store.sled-migrated");
    std::fs::rename(dir.join("store"), &kept).map_err(|source| MigrateError::Io { path: kept.clone(), source })?;
    Ok(MigrateReport {
        events: head.next_seq,
        head: head.head_hash,
        checkpoints: checkpoints.len(),
        legacy_checkpoints_left: legacy,
        sled_kept_at: kept,
    })
}

/// The directory's switch: `postgres.store`, then the marker, each written beside and
/// renamed over (a retry after a failed attempt replaces them), then the directory fsynced.
/// A crash before the marker's rename leaves the sled ledger; after it, the PostgreSQL one
/// (a `store/` still beside it is the old sled copy, unused).
fn switch(dir: &Path, url: &str, id: [u8; 16]) -> Result<(), MigrateError> {
    let store_file = format!("url {url}\nledger {}\n", hex::encode(id));
    replace_file(&dir.join(kvitto_postgres::STORE_FILE), store_file.as_bytes())?;
    let marker = format!("kvitto ledger\nformat {}\nstore {}\n", keyfiles::LEDGER_FORMAT, kvitto_postgres::KIND);
    replace_file(&dir.join("LEDGER"), marker.as_bytes())?;
    kvitto_vault::sync_dir(dir).map_err(|source| MigrateError::Io { path: dir.to_path_buf(), source })
}

fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), MigrateError> {
    let io = |source| MigrateError::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension("migrating");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    keyfiles::write_private_file(&tmp, bytes).map_err(kvitto_storage::OpenError::from)?;
    std::fs::rename(&tmp, path).map_err(io)
}
