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
//! ledger.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! **Architecture invariant:** every append goes through the one writer thread, so seq
//! assignment, chaining and durability have one owner. The facade itself writes only what is
//! not an event: signed checkpoint notes and rebuilt (derived) projections.
#![deny(unsafe_code)]

mod bundle;
mod erase;
mod error;
mod indexer;
mod persist;
mod proofs;
mod publish;
mod read;
mod retention;
pub mod scenario;
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

pub use erase::{EraseError, EraseOutcome};
pub use error::{AppendError, OpenError, ReadError, VerifyError, used_by};
pub use kvitto_core::{Draft, DraftError, Event, EventHash, EventId, EventKind, ExternalRef, Id, SubjectId, Timestamp};
pub use kvitto_projections::{
    AccessReport, AsOf, ConsentAnswer, ConsentState, Decision, DeferredBy, PlanItem, PlanStatus, ProcessingReport,
    Projections, QueryError, RequestListItem, RetentionCandidate,
};
pub use persist::RebuildReport;
pub use proofs::{ConsistencyProof, InclusionProof};
pub use publish::{PublishReport, tile_path};
pub use read::{DetailsView, LedgerEvent, PortableExport, PortableItem};
pub use retention::{RetentionRun, retention_event_id};
pub use verify::{VerifyFailure, VerifyReport};
pub use writer::Receipt;

use kvitto_core::LedgerSecret;
use kvitto_store::{LedgerInfo, Store};
use tokio::sync::{mpsc, oneshot};
use writer::{Prepared, Shared, WriteRequest, Writer};

/// How to open a ledger.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `actor` recorded for drafts that name none.
    pub default_actor: Id,
    /// Appends that may wait for the writer before `append` applies backpressure.
    pub queue_depth: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            default_actor: Id::new("cli").unwrap_or_else(|_| unreachable!("\"cli\" is a valid id")),
            queue_depth: 4096,
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
    store: Arc<Store>,
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
        // Closing the queue stops the writer after it has answered everything queued; the
        // indexer stops after the writer; sled flushes when the last store handle drops.
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if self.shared.is_poisoned() {
            // After a failed commit (e.g. a full disk) sled 0.34.7 may not have recorded the
            // I/O error, and then its flush — also the one in its Drop — waits forever for a
            // write that will never complete. Leak the handle instead: nothing acknowledged
            // is lost (acknowledged groups were fdatasync'd), the lock goes with the process,
            // and the next open recovers from the log.
            std::mem::forget(std::sync::Arc::clone(&self.store));
            tracing::warn!("ledger closed after a storage failure without flushing; reopen it to recover");
            return;
        }
        if let Err(e) = self.store.flush_all() {
            tracing::warn!(error = %e, "flush on close failed");
        }
    }
}

/// Completes the erasures recorded as pending by a writer that stopped (a crash, or a failed
/// key destruction) between recording them and destroying their keys: those whose
/// `data_erased` is in the log destroy their keys now; those whose event never became
/// durable are dropped, keys intact. Afterwards an erasure is either absent with its keys, or
/// recorded without them.
fn finish_pending_erasures(store: &Store, next_seq: u64) -> Result<(), OpenError> {
    let vault_err =
        |e: kvitto_store::VaultError| OpenError::Damaged { path: store.dir().join("vault"), what: e.to_string() };
    // A pending record removed by a writer whose directory fsync then failed must not come
    // back after a power loss once new keys exist: make its removal durable first.
    kvitto_store::vault::sync_dir(&store.dir().join("vault"))
        .map_err(|source| OpenError::Io { path: store.dir().join("vault"), source })?;
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
        validate_origin(origin).map_err(|what| OpenError::Damaged { path: PathBuf::from("--origin"), what })?;
        Store::create(dir, origin, Timestamp::now().as_micros())
    }

    /// Opens a ledger, catches the derived indexes up from the log, and starts the writer.
    pub async fn open(dir: &Path, options: OpenOptions) -> Result<Ledger, OpenError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&dir, options))
            .await
            .map_err(|e| OpenError::Damaged { path: PathBuf::new(), what: format!("open task failed: {e}") })?
    }

    fn open_blocking(dir: &Path, options: OpenOptions) -> Result<Ledger, OpenError> {
        let (store, secret, info) = Store::open(dir)?;
        let store = Arc::new(store);
        // Catching up reads the log: a page sled recovered badly panics or fails to decode here.
        let store_dir = dir.join("store");
        let damaged = kvitto_store::log::open_read_err(&store_dir);
        let (head, frontier, projections) = kvitto_store::log::catch_sled_panic(&store_dir, || {
            let head = store.head().map_err(&damaged)?;
            finish_pending_erasures(&store, head.next_seq)?;
            let frontier = indexer::catch_up(&store, head.next_seq).map_err(&damaged)?;
            let projections = persist::open(&store, head.next_seq).map_err(&damaged)?;
            Ok((head, frontier, projections))
        })?;
        let shared = Arc::new(Shared { projections: std::sync::RwLock::new(projections), ..Shared::default() });
        shared.committed.store(head.next_seq, std::sync::atomic::Ordering::Release);
        shared.indexed.store(head.next_seq, std::sync::atomic::Ordering::Release);
        let index_lock = Arc::new(Mutex::new(()));
        let (index_tx, index_rx) = std::sync::mpsc::channel();
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

    /// Closes this handle; when it is the last one, waits for the writer to finish, flushes,
    /// and returns once sled's files are closed (so the directory can be moved, remounted or
    /// opened by another process at once). After a storage failure the store is left to the
    /// process's exit instead (see [`AppendError::Storage`]).
    pub async fn close(self) {
        let inner = self.inner;
        let _ = tokio::task::spawn_blocking(move || {
            let Some(inner) = Arc::into_inner(inner) else { return };
            let (dir, shared) = (inner.dir.clone(), inner.shared.clone());
            // Dropping drains the queue, which may still fail and poison.
            drop(inner);
            if !shared.is_poisoned() && !kvitto_store::log::wait_released(&dir, std::time::Duration::from_secs(5)) {
                tracing::warn!("sled still holds the store's files 5 s after close");
            }
        })
        .await;
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

    /// Bytes the sled store occupies.
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
        let in_flight = &self.inner.shared.in_flight;
        in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if tx.send(WriteRequest { items, reply }).await.is_err() {
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(AppendError::Closed);
        }
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
        blocking(move || read::history(&inner.store, &inner.shared, subject, &controller)).await
    }

    /// Events with seq in `range`, in seq order, details decrypted where possible.
    pub async fn log(&self, range: Range<u64>) -> Result<Vec<LedgerEvent>, ReadError> {
        let inner = self.inner.clone();
        let end = range.end.min(self.len());
        blocking(move || read::log(&inner.store, &inner.shared, range.start..end)).await
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
            self.inner.shared.projections.read().map_err(|_| ReadError::Storage("projection lock poisoned".into()))?;
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

    /// A copy of the current projections (for audits and tests).
    pub fn projections(&self) -> Projections {
        self.inner.shared.projections.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Recomputes every projection from seq 0, replaces the persisted ones, and returns
    /// timings. Appends wait while the new state is swapped in.
    pub async fn rebuild(&self) -> Result<RebuildReport, ReadError> {
        let inner = self.inner.clone();
        blocking(move || {
            let next = inner.store.head()?.next_seq;
            let (fresh, report) = persist::rebuild(&inner.store, next)?;
            let mut p =
                inner.shared.projections.write().map_err(|_| ReadError::Storage("projection lock poisoned".into()))?;
            // Groups committed after `next` were (or will be) applied by the writer;
            // replaying them on the fresh state is idempotent.
            let mut fresh = fresh;
            let committed = inner.shared.committed.load(std::sync::atomic::Ordering::Acquire);
            // Events only (no details): reading details takes the projections lock held here.
            read::for_each_event(&inner.store, next, committed, |_, _, e| {
                fresh.apply_owned(e);
                Ok(())
            })?;
            let old = std::mem::replace(&mut *p, fresh);
            drop(p);
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
                let key = self.signing_key().map_err(|e| VerifyError::Storage(e.to_string()))?.verifying_key();
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
            // Hold the indexer still so the index matches its watermark while we compare.
            let _guard = inner.index_lock.lock();
            let snapshot = |p: &Projections| {
                p.subjects
                    .iter()
                    .filter(|(_, st)| !st.erasure.is_empty())
                    .map(|(s, st)| (*s, st.erasures()))
                    .collect::<std::collections::HashMap<_, _>>()
            };
            let erasures = inner
                .shared
                .projections
                .read()
                .map(|p| snapshot(&p))
                .map_err(|_| VerifyError::Storage("projection lock poisoned".into()))?;
            // The projections fold a group right after its commit: wait for them briefly.
            let mut folded = |n: u64| {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let p = inner.shared.projections.read().ok()?;
                    if p.last_seq.map_or(0, |s| s + 1) >= n {
                        return Some(snapshot(&p));
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
                verify::verify_store(&inner.store, &inner.info.origin, &erasures, &mut folded, held, progress)
            }))
            .unwrap_or_else(|panic| {
                // A store sled cannot read takes no appends, and is not flushed on close.
                if let Ok(mut p) = inner.shared.poisoned.lock() {
                    p.get_or_insert_with(|| "sled failed reading the store: its files are damaged".into());
                }
                Ok(VerifyReport {
                    count: 0,
                    head: EventHash([0; 32]),
                    subjects: 0,
                    failure: Some(VerifyFailure {
                        seq: None,
                        reason: format!(
                            "damaged store: sled failed reading it ({}) — corrupted data; restore the store directory \
                             from a backup",
                            kvitto_store::log::panic_message(&*panic)
                        ),
                    }),
                    duration: started.elapsed(),
                })
            })
        })
        .await
        .map_err(|e| VerifyError::Storage(format!("verify task failed: {e}")))?
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| match e.try_into_panic() {
        // sled 0.34.7 panics on some damaged pages instead of returning an error.
        Ok(panic) => ReadError::Corrupt {
            at: "store".into(),
            what: format!("sled failed reading it ({})", kvitto_store::log::panic_message(&*panic)),
        },
        Err(e) => ReadError::Storage(format!("read task failed: {e}")),
    })?
}
