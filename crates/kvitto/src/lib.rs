//! kvitto: a tamper-evident, event-sourced ledger of what a company does with each
//! customer's personal data — the async library API for backend services.
//!
//! Events are validated, sealed into a BLAKE3 hash chain (globally and per data subject) by a
//! single writer with group commit, and acknowledged only once durable on disk.
//!
//! ```
//! use kvitto::{Draft, Ledger, OpenOptions};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("ledger");
//! Ledger::init(&path, "kvitto.example/ledger")?;
//! let ledger = Ledger::open(&path, OpenOptions::default()).await?;
//!
//! let draft = Draft::from_json_str(
//!     r#"{"type":"consent_given","controller":"kalejdo","subject":"cust-1001","purpose":"marketing","channel":"web"}"#,
//! )?;
//! let receipt = ledger.append(draft).await?; // durable when this returns
//! assert_eq!(receipt.seq, 0);
//!
//! let history = ledger.history("kalejdo", "cust-1001").await?;
//! assert_eq!(history.len(), 1);
//! assert!(ledger.verify().await?.is_ok());
//! ledger.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Architecture invariant:** every append goes through the one writer thread, so seq
//! assignment, chaining and durability have one owner. The facade itself writes only what is
//! not an event: signed checkpoint notes and rebuilt (derived) projections.
#![deny(unsafe_code)]

pub mod audit;
mod bundle;
pub mod dpv;
mod erase;
mod error;
mod failure;
pub mod html;
mod indexer;
pub mod input;
mod migrate;
mod persist;
mod proofs;
mod publish;
mod read;
mod retention;
pub mod scenario;
mod stores;
mod submap;
mod tree;
mod verify;
pub mod witness;
pub mod witness_server;
mod writer;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use audit::{AUDIT_FORMAT, AuditReport, Integrity, SummaryRow};
pub use erase::{EraseError, EraseOutcome};
pub use error::{AppendError, OpenError, ReadError, StorageError, VerifyError, used_by};
pub use failure::{
    CheckpointProblem, FailureReason, IndexProblem, NodeProblem, StateOwner, TreeVersion, VerifyFailure,
};
pub use kvitto_core::{Draft, DraftError, Event, EventHash, EventId, EventKind, ExternalRef, Id, SubjectId, Timestamp};
pub use kvitto_projections::{
    AccessPurpose, AccessReport, AsOf, AuditOptions, CHECKS, Check, ConsentAnswer, ConsentState, ControllerIdentity,
    Decision, DeferredBy, Finding, HoldStatus, PlanItem, PlanStatus, ProcessingReport, Projections, QueryError,
    RecordGap, RequestListItem, RestrictionStep, RetentionCandidate, Severity,
};
pub use migrate::{MigrateError, MigrateReport, migrate_to_postgres};
pub use persist::RebuildReport;
pub use proofs::{ConsistencyProof, InclusionProof};
pub use publish::{PublishReport, tile_path};
pub use read::{
    CopyItem, DetailsView, LedgerEvent, PortableExport, PortableItem, Rectified, SubjectAccess, Superseded,
    rectifications,
};
pub use retention::{RetentionRun, retention_event_id};
pub use verify::VerifyReport;
pub use writer::{GROUP_BUCKETS, Receipt, WriteStats};

use kvitto_core::LedgerSecret;
use kvitto_storage::{Backend, LedgerInfo};
use tokio::sync::{mpsc, oneshot};
use writer::{Prepared, Shared, WriteRequest, Writer};

/// How to open a ledger.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `actor` recorded for drafts that name none.
    pub default_actor: Id,
    /// Appends that may wait for the writer before `append` applies backpressure.
    pub queue_depth: usize,
    /// Open without appending (PostgreSQL: no writer lock, nothing written — any number of
    /// such processes beside the one writer). The embedded sled store has one process only
    /// and ignores this.
    pub read_only: bool,
    /// The database URL, overriding the one `init` recorded (the same ledger, reached at
    /// another address — e.g. after a fail-over). Ignored by sled.
    pub store_url: Option<String>,
    /// How long a writer waits for another process's writer to let go of the ledger before
    /// refusing (PostgreSQL; sled refuses at once).
    pub wait_for_writer: std::time::Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            default_actor: Id::new("cli").unwrap_or_else(|_| unreachable!("\"cli\" is a valid id")),
            queue_depth: 4096,
            read_only: false,
            store_url: None,
            wait_for_writer: std::time::Duration::from_secs(10),
        }
    }
}

/// Where `init` puts a new ledger's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded sled store in the ledger directory (the default).
    #[default]
    Sled,
    /// A PostgreSQL database (`postgres://…`), empty or holding no kvitto ledger; the key
    /// files and the key vault stay in the ledger directory.
    Postgres(String),
}

impl StoreSpec {
    /// `sled`, or a `postgres://` / `postgresql://` URL.
    pub fn parse(s: &str) -> Result<StoreSpec, String> {
        if s == "sled" {
            Ok(StoreSpec::Sled)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreSpec::Postgres(s.to_string()))
        } else {
            // Never echoed whole: a mistyped URL may carry a password.
            let scheme = s.split_once("://").map_or("no scheme", |(scheme, _)| scheme);
            Err(format!("neither `sled` nor a postgres:// URL (scheme: {scheme})"))
        }
    }
}

/// A handle to an open ledger. Cheap to clone; `Send + Sync`; all clones share one writer.
/// The ledger closes when the last clone is dropped (or on [`Ledger::close`]).
#[derive(Clone, Debug)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    store: Arc<dyn Backend>,
    secret: LedgerSecret,
    info: LedgerInfo,
    options: OpenOptions,
    shared: Arc<Shared>,
    index_lock: Arc<Mutex<()>>,
    /// The subject map as of its latest commitment (loaded on first use; checkpoints advance it).
    submap: tokio::sync::Mutex<Option<submap::MapState>>,
    tx: Option<mpsc::Sender<WriteRequest>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("dir", &self.dir).field("origin", &self.info.origin).finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "ledger closed with a failure");
        }
    }
}

impl Inner {
    /// Stops the writer and the indexer and flushes; reports a thread that panicked (its
    /// panic would otherwise vanish with it) and a failed flush. Runs once.
    fn shutdown(&mut self) -> Result<(), CloseError> {
        if self.tx.is_none() && self.threads.is_empty() {
            return Ok(());
        }
        // Closing the queue stops the writer after it has answered everything queued; the
        // indexer stops after the writer; sled flushes when the last store handle drops.
        self.tx.take();
        let mut failure = None;
        for t in self.threads.drain(..) {
            let thread = t.thread().name().unwrap_or("kvitto").to_string();
            if let Err(panic) = t.join() {
                let message = kvitto_storage::panic_message(&*panic);
                tracing::error!(thread, error = %message, "a ledger thread panicked");
                failure.get_or_insert(CloseError::ThreadPanicked { thread, message });
            }
        }
        if self.store.is_poisoned() {
            // The engine failed under this handle: it is not flushed again (see the sled
            // backend's `Drop`).
            return failure.map_or(Ok(()), Err);
        }
        if let Err(e) = self.store.flush_all() {
            tracing::warn!(error = %e, "flush on close failed");
            failure.get_or_insert(CloseError::Flush(e.into()));
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Closing found a problem. Every acknowledged event is durable regardless (receipts are sent
/// after fdatasync); derived data (index, projections) is caught up from the log on reopen.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// A ledger thread had panicked.
    #[error("the {thread} thread had failed ({message}); acknowledged events are durable — reopen the ledger")]
    ThreadPanicked {
        /// The thread's name.
        thread: String,
        /// Its panic message.
        message: String,
    },
    /// The final flush failed.
    #[error("flushing on close failed: {0}")]
    Flush(StorageError),
}

/// Completes the erasures recorded as pending by a writer that stopped (a crash, or a failed
/// key destruction) between recording them and destroying their keys: those whose
/// `data_erased` is in the log destroy their keys now; those whose event never became
/// durable are dropped, keys intact. Afterwards an erasure is either absent with its keys, or
/// recorded without them.
fn finish_pending_erasures(dir: &Path, store: &dyn Backend, next_seq: u64) -> Result<(), OpenError> {
    let vault_dir = dir.join(kvitto_vault::keyfiles::VAULT_DIR);
    let vault_err = |e: kvitto_vault::VaultError| OpenError::Damaged { path: vault_dir.clone(), what: e.to_string() };
    // A pending record removed by a writer whose directory fsync then failed must not come
    // back after a power loss once new keys exist: make its removal durable first.
    kvitto_vault::sync_dir(&vault_dir).map_err(|source| OpenError::Io { path: vault_dir.clone(), source })?;
    let pending = store.vault().pending().map_err(vault_err)?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut finished = Vec::new();
    for p in &pending {
        let recorded = if p.seq < next_seq {
            let record = store.record(p.seq)?;
            record.and_then(|r| kvitto_core::decode_event(&r.canonical).ok()).is_some_and(|e| {
                e.subject.is_some_and(|l| l.subject == p.subject)
                    && matches!(&e.kind, EventKind::DataErased { register, .. }
                        if register.as_ref().map(|r| r.as_str()) == p.slot.as_deref())
            })
        } else {
            false
        };
        if recorded {
            finished.push((p.subject, p.slot.clone()));
        }
    }
    store.vault().erase_all(&finished).map_err(vault_err)?;
    let finished = finished.len();
    store.vault().clear_pending().map_err(vault_err)?;
    tracing::warn!(finished, dropped = pending.len() - finished, "pending erasures from an interrupted writer");
    Ok(())
}

/// A reader's projections and subject tips folded on from the log up to `to` (events another
/// process's writer committed since the reader opened).
fn reader_catch_up(store: &dyn Backend, shared: &Shared, to: u64) -> Result<(), kvitto_storage::StoreError> {
    let mut p = shared.projections.write().map_err(|_| kvitto_storage::StoreError::Poisoned)?;
    let mut heads = shared.heads.write().map_err(|_| kvitto_storage::StoreError::Poisoned)?;
    let from = p.last_seq.map_or(0, |s| s + 1);
    if from >= to {
        return Ok(());
    }
    // Keys are written before their events commit: the vault read after the log holds them.
    read::for_each_event(store, from, to, |seq, record, event| {
        if let Some(l) = event.subject {
            let tip = kvitto_proof::chain::SubjectTip {
                last_seq: seq,
                count: l.subject_seq + 1,
                last_hash: kvitto_core::event_hash(&record.canonical),
            };
            heads.insert(l.subject, tip);
        }
        p.apply_owned(event);
        Ok(())
    })?;
    store.vault().reload().map_err(|e| kvitto_storage::StoreError::Engine { what: e.to_string(), io_kind: None })?;
    shared.committed.fetch_max(to, std::sync::atomic::Ordering::AcqRel);
    Ok(())
}

/// Drops an earlier demo's ledger (origin `origin`) from the PostgreSQL database at `url`, as
/// `kvitto demo` replaces its directory; any other ledger is left alone (and `init` then
/// refuses the database). Returns whether one was dropped.
pub fn replace_demo_database(url: &str, origin: &str) -> Result<bool, OpenError> {
    kvitto_postgres::drop_ledger_with_origin(url, origin)
}

/// Checks an origin (the future checkpoint key name): non-empty, printable, no spaces, no `+`.
pub fn validate_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() || origin.len() > 256 {
        return Err("must be 1–256 bytes".into());
    }
    if origin.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
        return Err("must not contain spaces, control characters or '+' (it names the checkpoint key)".into());
    }
    Ok(())
}

impl Ledger {
    /// Creates a new ledger in `dir` (a new or empty directory): a fresh ledger secret, an
    /// empty sled store, and the marker file. Refuses to touch an existing ledger.
    pub fn init(dir: &Path, origin: &str) -> Result<(), OpenError> {
        Self::init_on(dir, origin, &StoreSpec::Sled)
    }

    /// [`Ledger::init`] with the events in the given store.
    pub fn init_on(dir: &Path, origin: &str, store: &StoreSpec) -> Result<(), OpenError> {
        validate_origin(origin).map_err(|why| OpenError::InvalidOrigin { origin: origin.to_string(), why })?;
        let now = Timestamp::now().as_micros();
        match store {
            StoreSpec::Sled => kvitto_store::Store::create(dir, origin, now),
            StoreSpec::Postgres(url) => kvitto_postgres::create(dir, url, origin, now),
        }
    }

    /// Opens a ledger, catches the derived indexes up from the log, and starts the writer.
    pub async fn open(dir: &Path, options: OpenOptions) -> Result<Ledger, OpenError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&dir, options))
            .await
            .map_err(|e| OpenError::Damaged { path: PathBuf::new(), what: format!("open task failed: {e}") })?
    }

    fn open_blocking(dir: &Path, options: OpenOptions) -> Result<Ledger, OpenError> {
        let (store, secret, info) = stores::open(dir, &options)?;
        if store.is_reader() {
            return Self::open_reader(dir, store, secret, info, options);
        }
        // Catching up reads the log: a page the engine recovered badly panics or fails to
        // decode here.
        let location = PathBuf::from(store.location());
        let damaged = kvitto_storage::open_read_err(&location);
        let (head, frontier, projections) = kvitto_storage::catch_engine_panic(&location, || {
            let head = store.head().map_err(&damaged)?;
            finish_pending_erasures(dir, &*store, head.next_seq)?;
            let frontier = indexer::catch_up(&*store, head.next_seq).map_err(&damaged)?;
            let projections = persist::open(&*store, head.next_seq).map_err(&damaged)?;
            Ok((head, frontier, projections))
        })?;
        let shared = Arc::new(Shared { projections: std::sync::RwLock::new(projections), ..Shared::default() });
        shared.committed.store(head.next_seq, std::sync::atomic::Ordering::Release);
        shared.indexed.store(head.next_seq, std::sync::atomic::Ordering::Release);
        let index_lock = Arc::new(Mutex::new(()));
        let (index_tx, index_rx) = std::sync::mpsc::sync_channel(writer::INDEX_QUEUE);
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let spawn_err = |e: std::io::Error| OpenError::Io { path: dir.to_path_buf(), source: e };
        let indexer = {
            let (store, shared, lock) = (store.clone(), shared.clone(), index_lock.clone());
            std::thread::Builder::new()
                .name("kvitto-indexer".into())
                .spawn(move || indexer::run(store, shared, lock, frontier, index_rx))
                .map_err(spawn_err)?
        };
        let writer = Writer {
            store: store.clone(),
            shared: shared.clone(),
            index_tx,
            head,
            pending_ids: Default::default(),
            rng: Default::default(),
            inflight_heads: Default::default(),
            inflight_ids: Default::default(),
            inflight_marks: Default::default(),
        };
        let writer = std::thread::Builder::new()
            .name("kvitto-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(spawn_err)?;
        tracing::info!(events = head.next_seq, "ledger open");
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                store,
                secret,
                info,
                options,
                shared,
                index_lock,
                submap: tokio::sync::Mutex::new(None),
                tx: Some(tx),
                threads: vec![writer, indexer],
            }),
        })
    }

    /// A process that only reads (PostgreSQL, beside the writer): no writer or indexer
    /// thread, nothing written. The subject tips above the writer's index watermark and the
    /// projections are caught up in memory from the log; proofs serve sizes the writer has
    /// indexed.
    fn open_reader(
        dir: &Path,
        store: Arc<dyn Backend>,
        secret: LedgerSecret,
        info: LedgerInfo,
        options: OpenOptions,
    ) -> Result<Ledger, OpenError> {
        let location = PathBuf::from(store.location());
        let damaged = kvitto_storage::open_read_err(&location);
        let head = store.head().map_err(&damaged)?;
        // The writer puts keys in the vault before it commits: read after the head, the vault
        // holds the keys of every event up to it.
        let vault_dir = dir.join(kvitto_vault::keyfiles::VAULT_DIR);
        store.vault().reload().map_err(|e| OpenError::Damaged { path: vault_dir, what: e.to_string() })?;
        let indexed = store.index_watermark().map_err(&damaged)?.min(head.next_seq);
        let mut heads = kvitto_core::SubjectMap::default();
        read::for_each_event(&*store, indexed, head.next_seq, |seq, record, event| {
            if let Some(l) = event.subject {
                let tip = kvitto_proof::chain::SubjectTip {
                    last_seq: seq,
                    count: l.subject_seq + 1,
                    last_hash: kvitto_core::event_hash(&record.canonical),
                };
                heads.insert(l.subject, tip);
            }
            Ok(())
        })
        .map_err(&damaged)?;
        let projections = persist::open(&*store, head.next_seq).map_err(&damaged)?;
        let shared = Arc::new(Shared {
            projections: std::sync::RwLock::new(projections),
            heads: std::sync::RwLock::new(heads),
            ..Shared::default()
        });
        shared.committed.store(head.next_seq, std::sync::atomic::Ordering::Release);
        shared.indexed.store(indexed, std::sync::atomic::Ordering::Release);
        tracing::info!(events = head.next_seq, indexed, "ledger open read-only");
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                store,
                secret,
                info,
                options,
                shared,
                index_lock: Arc::new(Mutex::new(())),
                submap: tokio::sync::Mutex::new(None),
                tx: None,
                threads: Vec::new(),
            }),
        })
    }

    /// Whether this handle only reads (opened with [`OpenOptions::read_only`] on a shared
    /// store): appends are refused with [`AppendError::Closed`].
    pub fn is_read_only(&self) -> bool {
        self.inner.store.is_reader()
    }

    /// The backend holding the events: `sled` or `postgres`.
    pub fn store_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    /// Closes this handle; when it is the last one, waits for the writer to finish, flushes,
    /// and returns once sled's files are closed (so the directory can be moved, remounted or
    /// opened by another process at once). After a storage failure the store is left to the
    /// process's exit instead (see [`AppendError::Storage`]). A ledger thread that panicked,
    /// or a failed final flush, is reported.
    pub async fn close(self) -> Result<(), CloseError> {
        let inner = self.inner;
        tokio::task::spawn_blocking(move || {
            let Some(mut inner) = Arc::into_inner(inner) else { return Ok(()) };
            // Draining the queue may still fail and poison.
            let result = inner.shutdown();
            let abandoned = inner.store.is_poisoned();
            let released = inner.store.release_waiter();
            drop(inner);
            if !abandoned && !released(std::time::Duration::from_secs(5)) {
                tracing::warn!("the storage engine still holds the store's files 5 s after close");
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(CloseError::ThreadPanicked { thread: "close".into(), message: e.to_string() }))
    }

    /// The ledger's origin (named at `init`).
    pub fn origin(&self) -> &str {
        &self.inner.info.origin
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Events durably committed so far.
    pub fn len(&self) -> u64 {
        self.inner.shared.committed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the ledger has no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the store occupies (sled's files; 0 where the engine cannot say).
    pub fn disk_bytes(&self) -> u64 {
        self.inner.store.disk_bytes()
    }

    /// The keyed pseudonym of a customer of `controller` (docs/FORMAT.md §3).
    pub fn subject_id(&self, controller: &Id, external_ref: &ExternalRef) -> SubjectId {
        self.inner.secret.subject_id(controller, external_ref)
    }

    fn prepare(&self, draft: Draft) -> Prepared {
        let subject = draft.subject.map(|r| (self.subject_id(&draft.controller, &r), r));
        Prepared {
            event_id: draft.event_id.unwrap_or_else(EventId::new_v7),
            id_given: draft.event_id.is_some(),
            actor_given: draft.actor.is_some(),
            actor: draft.actor.unwrap_or_else(|| self.inner.options.default_actor.clone()),
            controller: draft.controller,
            subject,
            occurred_at: draft.occurred_at,
            details: draft.details,
            kind: draft.kind,
        }
    }

    /// Appends one event; returns its receipt once it is durable (fdatasync'd).
    /// Re-sending a draft with the same `event_id` and content returns the original receipt.
    pub async fn append(&self, draft: Draft) -> Result<Receipt, AppendError> {
        let mut receipts = self.append_batch(vec![draft]).await?;
        receipts.pop().ok_or(AppendError::Closed)
    }

    /// Appends several events atomically: all become durable in one commit, or none is written.
    pub async fn append_batch(&self, drafts: Vec<Draft>) -> Result<Vec<Receipt>, AppendError> {
        if drafts.is_empty() {
            return Err(AppendError::Empty);
        }
        if let Some(index) = drafts.iter().position(|d| d.event_id.is_some_and(|id| id.as_bytes() == &[0; 16])) {
            return Err(AppendError::InvalidStep {
                index,
                why: "event_id must not be the nil UUID (leave it out to get a fresh one)".into(),
            });
        }
        if let Some(index) = drafts.iter().position(|d| d.kind.scope() == kvitto_core::Scope::Ledger) {
            return Err(AppendError::InvalidStep {
                index,
                why: format!("{} is written by the ledger itself, not by callers", drafts[index].kind.name()),
            });
        }
        self.submit(drafts).await
    }

    /// Sends drafts to the writer (ledger events included: callers go through `append_batch`).
    pub(crate) async fn submit(&self, drafts: Vec<Draft>) -> Result<Vec<Receipt>, AppendError> {
        let items = drafts.into_iter().map(|d| self.prepare(d)).collect();
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(AppendError::Closed)?;
        // Counted until the writer has the request (it answers, and uncounts, from then on).
        // A guard, because a caller may drop this future while it waits for queue space: a
        // count left behind would make every later group wait out the writer's linger.
        struct Entered<'a>(&'a std::sync::atomic::AtomicUsize, bool);
        impl Drop for Entered<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                }
            }
        }
        let in_flight = &self.inner.shared.in_flight;
        in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut entered = Entered(in_flight, false);
        tx.send(WriteRequest { items, reply }).await.map_err(|_| AppendError::Closed)?;
        entered.1 = true;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// One subject's events in subject order (`subject_seq` 0, 1, …), with details decrypted
    /// where their key still exists.
    pub async fn history(&self, controller: &str, external_ref: &str) -> Result<Vec<LedgerEvent>, ReadError> {
        let controller = Id::new(controller).map_err(|message| ReadError::BadQuery { field: "controller", message })?;
        // A lookup, not new input: a reference stored before the input rules still finds its subject.
        let external_ref =
            ExternalRef::stored(external_ref).map_err(|message| ReadError::BadQuery { field: "subject", message })?;
        let subject = self.subject_id(&controller, &external_ref);
        let inner = self.inner.clone();
        blocking(move || read::history(&*inner.store, &inner.shared, subject, &controller)).await
    }

    /// Events with seq in `range`, in seq order, details decrypted where possible.
    pub async fn log(&self, range: Range<u64>) -> Result<Vec<LedgerEvent>, ReadError> {
        let inner = self.inner.clone();
        let end = range.end.min(self.len());
        blocking(move || read::log(&*inner.store, &inner.shared, range.start..end)).await
    }

    fn subject_of(&self, controller: &str, subject_ref: &str) -> Result<(Id, SubjectId), ReadError> {
        let controller = Id::new(controller).map_err(|message| ReadError::BadQuery { field: "controller", message })?;
        // A lookup, not new input: a reference stored before the input rules still finds its subject.
        let r =
            ExternalRef::stored(subject_ref).map_err(|message| ReadError::BadQuery { field: "subject", message })?;
        let s = self.subject_id(&controller, &r);
        Ok((controller, s))
    }

    fn with_projections<T>(&self, f: impl FnOnce(&Projections) -> Result<T, QueryError>) -> Result<T, ReadError> {
        let p =
            self.inner.shared.projections.read().map_err(|_| ReadError::Storage(StorageError::lock("projections")))?;
        Ok(f(&p)?)
    }

    /// May `controller` process this customer's data for `purpose`, as of `as_of`? Answered
    /// from the projections in microseconds; the rules are in docs/DECISIONS.md. Sees every
    /// append whose receipt has been returned.
    pub fn may_process(
        &self,
        controller: &str,
        subject_ref: &str,
        purpose: &str,
        as_of: AsOf,
    ) -> Result<Decision, ReadError> {
        let (c, s) = self.subject_of(controller, subject_ref)?;
        let purpose = Id::new(purpose).map_err(|message| ReadError::BadQuery { field: "purpose", message })?;
        self.with_projections(|p| p.may_process(&c, &s, &purpose, &as_of))
    }

    /// Consent state per purpose (or of one purpose) as of `as_of`, with interval history.
    pub fn consent(
        &self,
        controller: &str,
        subject_ref: &str,
        purpose: Option<&str>,
        as_of: AsOf,
    ) -> Result<Vec<ConsentAnswer>, ReadError> {
        let (c, s) = self.subject_of(controller, subject_ref)?;
        let purpose = purpose
            .map(|p| Id::new(p).map_err(|message| ReadError::BadQuery { field: "purpose", message }))
            .transpose()?;
        self.with_projections(|p| p.consent(&c, &s, purpose.as_ref(), &as_of))
    }

    /// The Art 15(1) access report for one customer.
    pub fn access_report(&self, controller: &str, subject_ref: &str, as_of: AsOf) -> Result<AccessReport, ReadError> {
        let (c, s) = self.subject_of(controller, subject_ref)?;
        self.with_projections(|p| p.access_report(&c, &s, &as_of))
    }

    /// The Art 30(1) record of processing of one controller.
    pub fn processing_report(&self, controller: &str, as_of: AsOf) -> Result<ProcessingReport, ReadError> {
        let c = Id::new(controller).map_err(|message| ReadError::BadQuery { field: "controller", message })?;
        self.with_projections(|p| p.processing_report(&c, &as_of))
    }

    /// The complete answer to an access request (Art 15): the report of
    /// [`Ledger::access_report`] and the Art 15(3) copy of the personal data held — details
    /// decrypted, rectified values current, erased data marked as erased.
    pub async fn subject_access(
        &self,
        controller: &str,
        subject_ref: &str,
        as_of: AsOf,
    ) -> Result<SubjectAccess, ReadError> {
        let report = self.access_report(controller, subject_ref, as_of)?;
        let events = self.history(controller, subject_ref).await?;
        Ok(read::subject_access(subject_ref, report, &events))
    }

    /// The customer's consent records as W3C DPV JSON-LD following the DPV guide for ISO/IEC
    /// TS 27560:2023 ([`dpv`]): one `dpv:ConsentRecord` per purpose with consent events, each
    /// event citing its ledger seq and hash. Unknown controller or subject is an error.
    pub async fn consent_records(
        &self,
        controller: &str,
        subject_ref: &str,
        as_of: AsOf,
    ) -> Result<serde_json::Value, ReadError> {
        let (c, s) = self.subject_of(controller, subject_ref)?;
        // The answers `consent` gives (and an error for an unknown subject), then the events
        // behind them.
        let answers = self.with_projections(|p| p.consent(&c, &s, None, &as_of))?;
        let events = self.history(controller, subject_ref).await?;
        self.with_projections(|p| {
            let state = p.controllers.get(&c).ok_or_else(|| QueryError::UnknownController(c.clone()))?;
            Ok(dpv::consent_records(self.origin(), &c, subject_ref, &s, state, &answers, &events, &as_of))
        })
    }

    /// Art 20 export: the data the customer provided (`source: subject`) on the basis of
    /// consent or contract, with details decrypted (docs/REPORTS.md).
    pub async fn export_portable(
        &self,
        controller: &str,
        subject_ref: &str,
        as_of: AsOf,
    ) -> Result<PortableExport, ReadError> {
        let events = self.history(controller, subject_ref).await?;
        Ok(read::portable(controller, subject_ref, &events, &as_of))
    }

    /// Counters of the commit groups written since open (for metrics: no personal data).
    pub fn write_stats(&self) -> WriteStats {
        self.inner.shared.stats.snapshot()
    }

    /// Whether a storage failure has poisoned this handle (appends are refused until reopened).
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.poison_cause().is_some()
    }

    /// A copy of the current projections (for audits and tests). A poisoned lock (a thread
    /// panicked while folding) is an error, never an empty state.
    pub fn projections(&self) -> Result<Projections, ReadError> {
        let p =
            self.inner.shared.projections.read().map_err(|_| ReadError::Storage(StorageError::lock("projections")))?;
        Ok(p.clone())
    }

    /// Test hook: poisons the projections lock (a thread panics while holding it).
    #[doc(hidden)]
    pub fn poison_projections_for_test(&self) {
        panic_holding(&self.inner.shared.projections);
    }

    /// Test hook: poisons the writer's subject-heads lock.
    #[doc(hidden)]
    pub fn poison_heads_for_test(&self) {
        panic_holding(&self.inner.shared.heads);
    }

    /// Test hook: the indexer thread panics on its next batch.
    #[doc(hidden)]
    pub fn fail_indexer_for_test(&self) {
        self.inner.shared.hooks.fail_indexer.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Test hook: the indexer stops before its next batch until the returned sender sends
    /// (one batch per message) or is dropped (for good).
    #[doc(hidden)]
    pub fn pause_indexer_for_test(&self) -> std::sync::mpsc::Sender<()> {
        Self::install_pause(&self.inner.shared.hooks.pause_indexer)
    }

    /// Test hook: `rebuild` stops after clearing the persisted states until the returned
    /// sender sends or is dropped.
    #[doc(hidden)]
    pub fn pause_rebuild_for_test(&self) -> std::sync::mpsc::Sender<()> {
        Self::install_pause(&self.inner.shared.hooks.pause_rebuild)
    }

    /// Test hook: the commit thread stops before destroying an erasure's keys until the
    /// returned sender sends (one erasing group per message) or is dropped (for good).
    #[doc(hidden)]
    pub fn pause_erasure_for_test(&self) -> std::sync::mpsc::Sender<()> {
        Self::install_pause(&self.inner.shared.hooks.pause_erasure)
    }

    fn install_pause(point: &Mutex<Option<std::sync::mpsc::Receiver<()>>>) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Ok(mut p) = point.lock() {
            *p = Some(rx);
        }
        tx
    }

    /// Test hook: the next commit fails without writing, once a group is sealed on top of it.
    #[doc(hidden)]
    pub fn fail_commit_on_top_for_test(&self) {
        self.inner.shared.hooks.fail_commit_on_top.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Test hook: append requests entered and not yet answered.
    #[doc(hidden)]
    pub fn in_flight_for_test(&self) -> usize {
        self.inner.shared.in_flight.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Recomputes every projection from seq 0, replaces the persisted ones, and returns
    /// timings. Appends wait while the new state is swapped in.
    pub async fn rebuild(&self) -> Result<RebuildReport, ReadError> {
        let inner = self.inner.clone();
        blocking(move || {
            use std::sync::atomic::Ordering;
            let next = inner.store.head()?.next_seq;
            let (mut fresh, events, fold) = persist::fold_all(&*inner.store, next)?;
            // Catch up with what was committed meanwhile, outside the lock while much is new
            // (`may_process` keeps answering from the old state), then briefly under it.
            // Groups the committer folds after the swap are folded again: idempotent per seq.
            let mut done = next;
            loop {
                let committed = inner.shared.committed.load(Ordering::Acquire);
                if committed.saturating_sub(done) <= writer::MAX_GROUP_EVENTS as u64 {
                    break;
                }
                read::for_each_event(&*inner.store, done, committed, |_, _, e| {
                    fresh.apply_owned(e);
                    Ok(())
                })?;
                done = committed;
            }
            // The indexer persists no delta (of the old state) from here until the swap: it
            // would override the snapshot on the next open.
            let persisting =
                inner.shared.persist_lock.lock().map_err(|_| ReadError::Storage(StorageError::lock("persist")))?;
            let persist = persist::write_snapshot(&*inner.store, &fresh, done, || {
                writer::TestHooks::wait(&inner.shared.hooks.pause_rebuild)
            })?;
            let mut p =
                inner.shared.projections.write().map_err(|_| ReadError::Storage(StorageError::lock("projections")))?;
            let committed = inner.shared.committed.load(Ordering::Acquire);
            // Events only (no details): reading details takes the projections lock held here.
            read::for_each_event(&*inner.store, done, committed, |_, _, e| {
                fresh.apply_owned(e);
                Ok(())
            })?;
            let report = RebuildReport { events, subjects: fresh.subjects.len() as u64, fold, persist };
            let old = std::mem::replace(&mut *p, fresh);
            drop(p);
            drop(persisting);
            // Freeing a large state takes long (≈1 s for 100k subjects): neither appends nor
            // the caller need to wait for it.
            if std::thread::Builder::new().name("kvitto-free".into()).spawn(move || drop(old)).is_err() {
                tracing::debug!("could not spawn a thread to free the old projections; freed inline");
            }
            Ok(report)
        })
        .await
    }

    /// Verifies the whole ledger (see [`VerifyReport`]).
    pub async fn verify(&self) -> Result<VerifyReport, VerifyError> {
        self.verify_with_progress(|_, _| {}).await
    }

    /// Like [`Ledger::verify`], calling `progress(done, total)` now and then.
    pub async fn verify_with_progress(
        &self,
        progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<VerifyReport, VerifyError> {
        self.verify_against(None, progress).await
    }

    /// The auditor's full check, plus — with `held`, a checkpoint note of this ledger kept
    /// outside it — that the ledger's tree contains the held one: the first `size` events
    /// must give its root. A truncation (rollback) or a rewrite of history under a checkpoint
    /// anyone kept is then caught even when every stored record, head and `acked` was redone.
    pub async fn verify_against(
        &self,
        held: Option<&str>,
        progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<VerifyReport, VerifyError> {
        let held = match held {
            None => None,
            Some(note) => {
                let key = self
                    .signing_key()
                    .map_err(|e| match e {
                        ReadError::Storage(s) => VerifyError::Storage(s),
                        other => VerifyError::Held(other.to_string()),
                    })?
                    .verifying_key();
                let c = kvitto_proof::checkpoint::open(note, self.origin(), &key).map_err(|e| {
                    VerifyError::Held(format!(
                        "the held checkpoint does not verify with this ledger's key ({e}); a replaced key is itself a \
                         finding"
                    ))
                })?;
                Some((c.size, c.root))
            }
        };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _span = tracing::info_span!("verify").entered();
            let erasures = inner
                .shared
                .projections
                .read()
                .map(|p| verify::recorded_erasures(&p))
                .map_err(|_| VerifyError::Storage(StorageError::lock("projections")))?;
            // The projections fold a group right after its commit: wait for them briefly.
            let shared = &inner.shared;
            let reader = inner.store.is_reader();
            let mut folded = |n: u64| {
                // A reader has no writer folding for it: it catches up from the log itself.
                if reader && let Err(e) = reader_catch_up(&*inner.store, shared, n) {
                    tracing::warn!(error = %e, "a reader could not catch its projections up");
                    return None;
                }
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let p = shared.projections.read().ok()?;
                    if p.last_seq.map_or(0, |s| s + 1) >= n {
                        return Some(p);
                    }
                    drop(p);
                    if std::time::Instant::now() > deadline {
                        return None;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            };
            // sled 0.34.7 panics on some damaged pages when it first reads them: that is a
            // finding about the store, not a crash of verify.
            let started = std::time::Instant::now();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                verify::verify_store(
                    &*inner.store,
                    &inner.dir,
                    &inner.index_lock,
                    &inner.info.origin,
                    &erasures,
                    &mut folded,
                    held,
                    progress,
                )
            }))
            .unwrap_or_else(|panic| {
                // A store the engine cannot read takes no appends, and is not flushed on close.
                inner.store.poison();
                inner.shared.poison(StorageError::Corrupt {
                    at: "store".into(),
                    what: "sled failed reading the store: its files are damaged".into(),
                });
                Ok(VerifyReport {
                    count: 0,
                    head: EventHash([0; 32]),
                    subjects: 0,
                    failure: Some(VerifyFailure::ledger(FailureReason::DamagedStore(kvitto_storage::panic_message(
                        &*panic,
                    )))),
                    duration: started.elapsed(),
                })
            })
        })
        .await
        .map_err(|e| VerifyError::Storage(StorageError::Internal(format!("verify task failed: {e}"))))?
    }
}

/// Poisons `lock`: a thread panics while it holds it (test hooks).
fn panic_holding<T: Send + Sync>(lock: &std::sync::RwLock<T>) {
    let _ = std::thread::scope(|s| {
        s.spawn(|| {
            let _guard = lock.write();
            panic!("injected panic while holding a lock");
        })
        .join()
    });
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| match e.try_into_panic() {
        // sled 0.34.7 panics on some damaged pages instead of returning an error.
        Ok(panic) => ReadError::Corrupt {
            at: "store".into(),
            what: format!("sled failed reading it ({})", kvitto_storage::panic_message(&*panic)),
        },
        Err(e) => ReadError::Storage(StorageError::Internal(format!("read task failed: {e}"))),
    })?
}
