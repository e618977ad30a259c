//! The single writer: one OS thread that takes queued appends, forms a commit group, seals
//! every event (seq, recorded_at, prev_hash, subject links, hash) and makes the group's new
//! subject keys durable in the vault; then a committer thread writes the group as chunk values
//! in one sled batch, makes it durable, and only then completes each caller's future. The two
//! overlap: group k+1 is sealed and its keys synced while group k is committed (sled commits
//! stay strictly in order, and a group's keys are durable before its events are written).
//!
//! **Architecture invariant:** a receipt is sent only after `Store::commit` returned, i.e.
//! after fdatasync. Nothing of a refused request is staged; a failed commit poisons the
//! writer instead of guessing what reached the disk, and its callers are told exactly that
//! ([`AppendError::OutcomeUnknown`], with the event ids that find out).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kvitto_core::{
    Commitment, Details, EventHash, EventId, EventKind, ExternalRef, Id, SubjectId, SubjectLink, Timestamp,
    decode_event, encode_event, event_hash, payload_commitment,
};
use kvitto_proof::SubjectTip;
use kvitto_storage::{Backend, CommitError, Head, Record, SubjectHeadRec};
use kvitto_vault::{self as vault, RandomPool, SlotKey};
use kvitto_vault::{PendingErasure, SubjectKeys};
use tokio::sync::{mpsc, oneshot};

use crate::indexer::IndexWork;
use crate::{AppendError, StorageError};

/// Most events one commit group takes from the queue (a batch is never split).
pub(crate) const MAX_GROUP_EVENTS: usize = 1024;

/// How long the writer waits for callers that have entered `append` but not yet queued.
/// Without it, concurrent callers split into cohorts that alternate between small groups.
const LINGER: Duration = Duration::from_micros(250);
/// How often a writer whose requests all wait for an erasure looks for others that need not.
const ERASURE_POLL: Duration = Duration::from_micros(100);

/// A validated draft with the caller-side work done (pseudonym, id, actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub event_id: EventId,
    pub id_given: bool,
    pub controller: Id,
    pub actor: Id,
    pub actor_given: bool,
    pub subject: Option<(SubjectId, ExternalRef)>,
    pub occurred_at: Option<Timestamp>,
    pub details: Option<Details>,
    pub kind: EventKind,
}

/// What a caller gets back: proof its event is durable at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Global position.
    pub seq: u64,
    /// Event hash.
    pub hash: EventHash,
    /// The idempotency key (generated when the draft had none).
    pub event_id: EventId,
    /// Ledger time of sealing.
    pub recorded_at: Timestamp,
}

impl Receipt {
    /// The EVENTS.md receipt line.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "hash": self.hash.to_hex(),
            "event_id": self.event_id.to_string(),
            "recorded_at": self.recorded_at.to_rfc3339(),
        })
    }
}

pub(crate) struct WriteRequest {
    pub items: Vec<Prepared>,
    pub reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

impl WriteRequest {
    fn answer(self, shared: &Shared, result: Result<Vec<Receipt>, AppendError>) {
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        let _ = self.reply.send(result);
    }
}

impl Shared {
    /// Why the handle is poisoned, if it is (a poisoned lock poisons too).
    pub fn poison_cause(&self) -> Option<StorageError> {
        match self.poisoned.lock() {
            Ok(p) => p.clone(),
            Err(_) => Some(StorageError::lock("poison")),
        }
    }

    /// Poisons the handle (the first cause is kept).
    pub fn poison(&self, why: StorageError) {
        match self.poisoned.lock() {
            Ok(mut p) => {
                p.get_or_insert(why);
            }
            // A poisoned lock already reads as poisoned.
            Err(e) => {
                e.into_inner().get_or_insert(why);
            }
        }
    }
}

/// State shared between the writer and readers.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Tips of every subject touched since open (authoritative over the index).
    pub heads: RwLock<kvitto_core::SubjectMap<SubjectTip>>,
    /// Set on a storage failure.
    pub poisoned: Mutex<Option<StorageError>>,
    /// Events committed (next seq).
    pub committed: AtomicU64,
    /// Events indexed.
    pub indexed: AtomicU64,
    /// Append requests entered but not yet answered (the writer waits briefly for them).
    pub in_flight: AtomicUsize,
    /// Requests in the group the committer holds (entered, but not joinable any more).
    pub committing: AtomicUsize,
    /// The projections, applied by the writer before it answers (read-your-writes).
    pub projections: RwLock<kvitto_projections::Projections>,
    /// Serialises writing projection states: the indexer's deltas and a rebuild's snapshot
    /// (a delta of the old state written between a rebuild's clear and its snapshot would
    /// override the rebuilt state on the next open).
    pub persist_lock: Mutex<()>,
    /// Fault-injection points for tests.
    pub hooks: TestHooks,
    /// Counters of the commit groups written since open.
    pub stats: GroupCounters,
}

/// Upper bounds (events) of the group-size buckets of [`WriteStats`].
pub const GROUP_BUCKETS: [u64; 6] = [1, 8, 64, 512, 4096, u64::MAX];

/// Counters the writer keeps of its commit groups (lock-free; read by [`crate::Ledger::write_stats`]).
#[derive(Debug, Default)]
pub(crate) struct GroupCounters {
    groups: AtomicU64,
    events: AtomicU64,
    failed: AtomicU64,
    sync_us: AtomicU64,
    duration_us: AtomicU64,
    seal_us: AtomicU64,
    vault_us: AtomicU64,
    vault_groups: AtomicU64,
    write_us: AtomicU64,
    erasure_groups: AtomicU64,
    erase_us: AtomicU64,
    publish_us: AtomicU64,
    buckets: [AtomicU64; GROUP_BUCKETS.len()],
}

/// What one durable group cost, phase by phase (µs).
struct GroupCost {
    events: u64,
    seal_us: u64,
    vault_us: u64,
    paid_vault: bool,
    write_us: u64,
    sync_us: u64,
    duration_us: u64,
    erasing: bool,
}

impl GroupCounters {
    fn durable(&self, c: GroupCost) {
        let GroupCost { events, seal_us, vault_us, paid_vault, write_us, sync_us, duration_us, erasing } = c;
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.sync_us.fetch_add(sync_us, Ordering::Relaxed);
        self.duration_us.fetch_add(duration_us, Ordering::Relaxed);
        self.seal_us.fetch_add(seal_us, Ordering::Relaxed);
        self.vault_us.fetch_add(vault_us, Ordering::Relaxed);
        self.vault_groups.fetch_add(u64::from(paid_vault), Ordering::Relaxed);
        self.write_us.fetch_add(write_us, Ordering::Relaxed);
        self.erasure_groups.fetch_add(u64::from(erasing), Ordering::Relaxed);
        let i = GROUP_BUCKETS.iter().position(|b| events <= *b).unwrap_or(GROUP_BUCKETS.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WriteStats {
        WriteStats {
            groups: self.groups.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            failed_groups: self.failed.load(Ordering::Relaxed),
            sync_seconds: self.sync_us.load(Ordering::Relaxed) as f64 / 1e6,
            group_seconds: self.duration_us.load(Ordering::Relaxed) as f64 / 1e6,
            seal_seconds: self.seal_us.load(Ordering::Relaxed) as f64 / 1e6,
            vault_seconds: self.vault_us.load(Ordering::Relaxed) as f64 / 1e6,
            vault_groups: self.vault_groups.load(Ordering::Relaxed),
            write_seconds: self.write_us.load(Ordering::Relaxed) as f64 / 1e6,
            erasure_groups: self.erasure_groups.load(Ordering::Relaxed),
            erase_seconds: self.erase_us.load(Ordering::Relaxed) as f64 / 1e6,
            publish_seconds: self.publish_us.load(Ordering::Relaxed) as f64 / 1e6,
            group_sizes: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
        }
    }
}

/// What the writer has committed since the ledger was opened: for metrics (no personal data).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WriteStats {
    /// Commit groups made durable.
    pub groups: u64,
    /// Events in them.
    pub events: u64,
    /// Groups whose commit failed (the handle is poisoned after the first).
    pub failed_groups: u64,
    /// Time spent in fdatasync, seconds.
    pub sync_seconds: f64,
    /// Time from a group's first request to its durability, summed, seconds.
    pub group_seconds: f64,
    /// Time sealing (ids, preconditions, subject links, encryption, encoding, hashing), seconds.
    pub seal_seconds: f64,
    /// Time making new keys (and pending erasures) durable in the key vault, seconds.
    pub vault_seconds: f64,
    /// Groups that wrote to the key vault before their commit.
    pub vault_groups: u64,
    /// Time writing the group to the store before its sync, seconds.
    pub write_seconds: f64,
    /// Groups that destroyed keys after their commit.
    pub erasure_groups: u64,
    /// Time destroying them, on the eraser thread beside the committer (meanwhile the writer
    /// seals nothing of their subjects), seconds.
    pub erase_seconds: f64,
    /// Time from durability to the last answer, or to the hand-over to the eraser (projection
    /// fold, subject tips, the indexer's hand-over, waking the callers), seconds.
    pub publish_seconds: f64,
    /// Groups per size bucket: at most `GROUP_BUCKETS[i]` events (and more than the bucket before).
    pub group_sizes: [u64; GROUP_BUCKETS.len()],
}

/// Fault-injection and pause points for deterministic tests (`Ledger::*_for_test`).
#[derive(Debug, Default)]
pub(crate) struct TestHooks {
    /// The indexer panics on its next batch.
    pub fail_indexer: std::sync::atomic::AtomicBool,
    /// The indexer waits here before each batch: one message releases one batch, dropping the
    /// sender releases it for good.
    pub pause_indexer: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// `rebuild` waits here after clearing the persisted states (same protocol).
    pub pause_rebuild: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// The next commit fails, writing nothing, once another group is sealed on top of it.
    pub fail_commit_on_top: std::sync::atomic::AtomicBool,
    /// The eraser waits here before destroying a durable group's keys (same protocol).
    pub pause_erasure: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl TestHooks {
    /// Waits at a pause point if a test installed one.
    pub fn wait(point: &Mutex<Option<std::sync::mpsc::Receiver<()>>>) {
        let Ok(mut p) = point.lock() else { return };
        if let Some(rx) = p.as_ref()
            && rx.recv().is_err()
        {
            *p = None;
        }
    }
}

/// Groups the indexer may fall behind before commits wait for it (backpressure instead of
/// an index queue that grows without bound while, e.g., the disk is slow).
pub(crate) const INDEX_QUEUE: usize = 64;

pub(crate) struct Writer {
    pub store: Arc<dyn Backend>,
    pub shared: Arc<Shared>,
    pub index_tx: std::sync::mpsc::SyncSender<IndexWork>,
    pub head: Head,
    /// Event ids committed above the index watermark (pruned as the indexer advances).
    pub pending_ids: HashMap<EventId, u64>,
    /// Salts, nonces and new keys.
    pub rng: RandomPool,
    /// Subject tips of the last group handed to the committer (it may not be published yet).
    pub inflight_heads: HashMap<SubjectId, SubjectTip>,
    /// Caller-given ids of that group, with their item and receipt.
    pub inflight_ids: HashMap<EventId, (Prepared, Receipt)>,
    /// That group's events the preconditions depend on (holds, deferrals, erasures, request
    /// steps): the projections may not have folded them yet.
    pub inflight_marks: Vec<kvitto_core::Event>,
}

/// Whether an event changes what the writer's preconditions answer (erasure blockers and
/// rights-request steps), or is itself checked by them.
fn is_state_mark(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::LegalHoldPlaced { .. }
            | EventKind::LegalHoldReleased { .. }
            | EventKind::ErasureDeferred { .. }
            | EventKind::DataErased { .. }
            | EventKind::RightsRequestReceived { .. }
            | EventKind::RightsRequestExtended { .. }
            | EventKind::RightsRequestFulfilled { .. }
            | EventKind::RightsRequestRejected { .. }
    )
}

/// What an erasure in the group being sealed destroys: (subject, register or `None`).
fn scope_covers(scope: &[(SubjectId, Option<Id>)], subject: &SubjectId, slot: &str) -> Option<usize> {
    scope.iter().position(|(s, r)| s == subject && kvitto_core::erasure::scope_covers(r.as_ref().map(Id::as_str), slot))
}

/// A sealed group whose keys are durable, on its way to the committer.
struct Sealed {
    group: Vec<WriteRequest>,
    outcomes: Vec<Result<Vec<Planned>, AppendError>>,
    records: Vec<Record>,
    events: Vec<kvitto_core::Event>,
    index_heads: Vec<(SubjectId, SubjectHeadRec)>,
    receipts: Vec<Receipt>,
    staged_heads: HashMap<SubjectId, SubjectTip>,
    first_seq: u64,
    head: Head,
    started: Instant,
    seal_us: u64,
    vault_us: u64,
    new_keys: usize,
    /// Keys the group's `data_erased` events destroy once it is durable.
    erasures: Vec<PendingErasure>,
}

/// Writes sealed groups to sled in order, publishes them and answers their callers; hands a
/// group with erasures to the eraser, which destroys the keys and then answers it, while the
/// next group is committed.
struct Committer {
    store: Arc<dyn Backend>,
    shared: Arc<Shared>,
    index_tx: std::sync::mpsc::SyncSender<IndexWork>,
    /// Tells the writer a group with erasures is done with.
    erased_tx: std::sync::mpsc::SyncSender<()>,
}

/// A durable, published group whose keys are to be destroyed before its callers hear of it.
struct Erasing {
    erasures: Vec<PendingErasure>,
    /// Each request with its reply.
    replies: Vec<(WriteRequest, Result<Vec<Receipt>, AppendError>)>,
}

/// Splits a group into the requests that may be sealed while the erasure of `subjects` is
/// carried out and those that wait for it to end: a request waits when it names one of
/// `subjects` or erases anything itself, and then its subjects join `subjects`, so that each
/// subject's requests keep their order. Both parts keep the group's order.
fn hold_for_erasure(
    group: Vec<WriteRequest>,
    subjects: &mut HashSet<SubjectId>,
) -> (Vec<WriteRequest>, Vec<WriteRequest>) {
    let (mut go, mut held) = (Vec::with_capacity(group.len()), Vec::new());
    for req in group {
        let mut named = req.items.iter().filter_map(|item| item.subject.as_ref().map(|(s, _)| s));
        let waits = req.items.iter().any(|item| matches!(item.kind, EventKind::DataErased { .. }))
            || named.any(|s| subjects.contains(s));
        if waits {
            subjects.extend(req.items.iter().filter_map(|item| item.subject.as_ref().map(|(s, _)| *s)));
            held.push(req);
        } else {
            go.push(req);
        }
    }
    (go, held)
}

enum Planned {
    New(usize),
    Existing(Receipt),
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<WriteRequest>) {
        // A rendezvous channel: handing group k+1 over waits until group k is answered, so at
        // most one group is in the committer while the writer seals the next.
        let (to_committer, from_writer) = std::sync::mpsc::sync_channel::<Sealed>(0);
        // A group with erasures is answered (its keys destroyed) before the next is sealed.
        let (erased_tx, erased_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let committer = Committer {
            store: self.store.clone(),
            shared: self.shared.clone(),
            index_tx: self.index_tx.clone(),
            erased_tx,
        };
        let committer =
            match std::thread::Builder::new().name("kvitto-commit".into()).spawn(move || committer.run(from_writer)) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.shared.poison(StorageError::Internal(format!("could not start the commit thread: {e}")));
                    None
                }
            };
        // Requests held back from the last group (they touch keys an erasure in it destroys,
        // or an erasure the committer is carrying out).
        let mut carried: Vec<WriteRequest> = Vec::new();
        // The subjects of the group whose erasure the committer is carrying out, if one is.
        let mut erasing: Option<HashSet<SubjectId>> = None;
        loop {
            let mut group = if carried.is_empty() {
                match rx.blocking_recv() {
                    Some(first) => vec![first],
                    None => break,
                }
            } else {
                std::mem::take(&mut carried)
            };
            let mut n: usize = group.iter().map(|r| r.items.len()).sum();
            let deadline = Instant::now() + LINGER;
            while n < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.items.len();
                        group.push(r);
                    }
                    Err(mpsc::error::TryRecvError::Empty)
                        if group.len() + self.shared.committing.load(Ordering::Acquire)
                            < self.shared.in_flight.load(Ordering::Acquire)
                            && Instant::now() < deadline =>
                    {
                        std::thread::yield_now();
                    }
                    Err(_) => break,
                }
            }
            // While the committer destroys keys, the writer seals on, but nothing of the
            // erased subjects (a new key for an erased slot must not be made from, or be
            // mistaken for, the old one) and no further erasure (one pending record at a
            // time): such requests, and later ones of their subjects, wait for it to end.
            let mut held = Vec::new();
            if erasing.is_some() && erased_rx.try_recv().is_ok() {
                erasing = None;
            }
            if let Some(subjects) = &mut erasing {
                (group, held) = hold_for_erasure(group, subjects);
                // Nothing to seal yet: wait for the erasure to end or for a request that may go.
                let mut ended = false;
                while group.is_empty() && !ended {
                    match erased_rx.recv_timeout(ERASURE_POLL) {
                        Ok(()) => ended = true,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            let mut more = Vec::new();
                            while let Ok(r) = rx.try_recv() {
                                more.push(r);
                            }
                            let (go, mut wait) = hold_for_erasure(more, subjects);
                            group = go;
                            held.append(&mut wait);
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            self.shared
                                .poison(StorageError::Internal("the commit thread stopped during an erasure".into()));
                            ended = true;
                        }
                    }
                }
                if ended {
                    erasing = None;
                    group = std::mem::take(&mut held);
                }
            }
            let (sealed, rest) = self.seal_group(group);
            carried = rest;
            carried.append(&mut held);
            if let Some(sealed) = sealed {
                let erases: Option<HashSet<SubjectId>> =
                    (!sealed.erasures.is_empty()).then(|| sealed.erasures.iter().map(|e| e.subject).collect());
                self.shared.committing.fetch_add(sealed.group.len(), Ordering::AcqRel);
                match to_committer.send(sealed) {
                    Ok(()) => {
                        // An erasing group is sealed only when no erasure is under way (its
                        // requests are held until then), so this never drops one in progress.
                        if erases.is_some() {
                            erasing = erases;
                        }
                    }
                    Err(std::sync::mpsc::SendError(sealed)) => {
                        self.shared.committing.fetch_sub(sealed.group.len(), Ordering::AcqRel);
                        let why = self
                            .shared
                            .poison_cause()
                            .unwrap_or_else(|| StorageError::Internal("the commit thread stopped".into()));
                        for req in sealed.group {
                            req.answer(&self.shared, Err(AppendError::Poisoned(why.clone())));
                        }
                    }
                }
            }
            self.prune_pending_ids();
        }
        drop(to_committer);
        if let Some(h) = committer {
            let _ = h.join();
        }
        tracing::debug!(events = self.head.next_seq, "writer stopped");
    }

    fn prune_pending_ids(&mut self) {
        let indexed = self.shared.indexed.load(Ordering::Acquire);
        if self.pending_ids.len() > 4096 {
            self.pending_ids.retain(|_, seq| *seq >= indexed);
        }
    }

    fn tip(&self, staged: &HashMap<SubjectId, SubjectTip>, s: &SubjectId) -> Result<Option<SubjectTip>, StorageError> {
        if let Some(t) = staged.get(s).or_else(|| self.inflight_heads.get(s)) {
            return Ok(Some(*t));
        }
        if let Some(t) = self.shared.heads.read().map_err(|_| StorageError::lock("subject heads"))?.get(s) {
            return Ok(Some(*t));
        }
        // Not touched since open. The projections hold a state for the subject of every
        // committed event (the in-flight group's are in `inflight_heads`): a subject they do
        // not know is new, and needs no index lookup — on PostgreSQL a round trip per new
        // customer, most of a group's sealing time.
        let known = match self.shared.projections.read() {
            Ok(p) => p.subjects.contains_key(s),
            // Readers cannot trust them either: the handle takes no more appends.
            Err(_) => {
                let why = StorageError::lock("projections");
                self.shared.poison(why.clone());
                return Err(why);
            }
        };
        if !known {
            return Ok(None);
        }
        // The index was caught up on open, so it is exact.
        Ok(self.store.subject_head(s)?.map(|h| SubjectTip {
            last_seq: h.last_seq,
            count: h.count,
            last_hash: EventHash(h.last_hash),
        }))
    }

    /// Looks up a committed or staged event with this id.
    fn existing_seq(&self, id: &EventId) -> Result<Option<u64>, StorageError> {
        if let Some(seq) = self.pending_ids.get(id) {
            return Ok(Some(*seq));
        }
        Ok(self.store.event_seq(id)?)
    }

    /// Whether a committed event says what `item` says (fields the caller left to defaults
    /// are not compared: a retry without occurred_at still matches).
    /// The receipt when `item` is the committed event `seq` again; else whether that event
    /// is of the same controller (only then may its seq be named to the caller).
    fn same_as_committed(&self, item: &Prepared, seq: u64) -> Result<Result<Receipt, bool>, StorageError> {
        let corrupt = |what: String| StorageError::Corrupt { at: format!("seq {seq}"), what };
        let record = self.store.record(seq)?.ok_or_else(|| {
            corrupt("the index names an event id at this seq, but the log holds no event there".into())
        })?;
        let event = decode_event(&record.canonical).map_err(|e| corrupt(e.to_string()))?;
        let receipt = Receipt {
            seq,
            hash: event_hash(&record.canonical),
            event_id: event.event_id,
            recorded_at: event.recorded_at,
        };
        let same = event.controller == item.controller
            && event.kind == item.kind
            && event.subject.map(|l| l.subject) == item.subject.as_ref().map(|(s, _)| *s)
            && (!item.actor_given || event.actor == item.actor)
            && item.occurred_at.is_none_or(|t| t == event.occurred_at)
            && match (&item.details, &event.payload_commitment, &record.sealed, &event.subject) {
                (None, None, _, _) => true,
                (Some(d), Some(c), Some(sealed), Some(link)) => self.details_match(d, c, sealed, link, &event)?,
                _ => false,
            };
        Ok(if same { Ok(receipt) } else { Err(event.controller == item.controller) })
    }

    fn details_match(
        &self,
        d: &Details,
        c: &Commitment,
        sealed: &[u8],
        link: &SubjectLink,
        event: &kvitto_core::Event,
    ) -> Result<bool, StorageError> {
        // Erased: the content can no longer be compared (a key in the slot now is a new one).
        if crate::read::erasures_of(&self.shared, &link.subject)?
            .covering(event.seq, vault::slot(&event.kind))
            .is_some()
        {
            return Ok(true);
        }
        let keys = self.store.vault().get(&link.subject);
        Ok(match keys.as_ref().and_then(|k| k.key_for(&event.kind)) {
            Some(key) => match vault::open(key, &link.subject, &event.event_id, sealed) {
                Ok((salt, _)) => payload_commitment(&salt, d.as_bytes()) == *c,
                Err(_) => false,
            },
            // Erased: the content can no longer be compared; the id and the hashed fields match.
            None => true,
        })
    }

    /// Why `item` may not be recorded now, if it is a `data_erased` (a hold or a deferral in
    /// force: [`kvitto_projections::SubjectState::erasure_blocker`]) or a rights-request step
    /// (one for a request never received, or already closed:
    /// [`kvitto_projections::request_step_problem`]). Decided on the subject's projected
    /// state with every event not yet folded applied first: the in-flight group's, this
    /// group's so far, and the new items before it in the same request (`earlier`, sealed
    /// from `next_seq` on).
    fn precondition(
        &self,
        subject: &SubjectId,
        item: &Prepared,
        staged: &[kvitto_core::Event],
        earlier: &[&Prepared],
        next_seq: u64,
        recorded_at: Timestamp,
    ) -> Result<Option<String>, StorageError> {
        if !is_state_mark(&item.kind) {
            return Ok(None);
        }
        let mine = |e: &&kvitto_core::Event| e.subject.is_some_and(|l| l.subject == *subject) && is_state_mark(&e.kind);
        let pending: Vec<kvitto_core::Event> = self
            .inflight_marks
            .iter()
            .chain(staged.iter())
            .filter(mine)
            .cloned()
            .chain(
                earlier.iter().enumerate().filter(|(_, p)| p.subject.as_ref().is_some_and(|(s, _)| s == subject)).map(
                    |(i, p)| kvitto_core::Event {
                        seq: next_seq + i as u64,
                        prev_hash: EventHash([0; 32]),
                        recorded_at,
                        occurred_at: p.occurred_at.unwrap_or(recorded_at),
                        event_id: p.event_id,
                        controller: p.controller.clone(),
                        actor: p.actor.clone(),
                        subject: Some(SubjectLink { subject: *subject, subject_seq: 0, subject_prev: None }),
                        kind: p.kind.clone(),
                        payload_commitment: None,
                    },
                ),
            )
            .collect();
        let projected = self
            .shared
            .projections
            .read()
            .map_err(|_| StorageError::lock("projections"))?
            .subjects
            .get(subject)
            .cloned();
        let state = match (projected, pending.first()) {
            (Some(s), _) => Some(s),
            (None, Some(first)) => Some(kvitto_projections::SubjectState::new(first)),
            (None, None) => None,
        };
        let state = state.map(|mut s| {
            for e in pending {
                s.apply_owned(e);
            }
            s
        });
        match &item.kind {
            // Judged when it occurred and when its keys are destroyed (now): a backdated
            // erasure does not slip past a hold or deferral placed since.
            EventKind::DataErased { register, .. } => Ok(state.and_then(|s| {
                let occurred = item.occurred_at.unwrap_or(recorded_at);
                s.erasure_blocker(register.as_ref(), occurred)
                    .or_else(|| s.erasure_blocker(register.as_ref(), recorded_at.max(occurred)))
                    .map(|b| b.to_string())
            })),
            kind => Ok(kvitto_projections::request_step_problem(state.as_ref(), kind)),
        }
    }

    /// Seals a group and makes its new keys durable; `None` when the group was answered here
    /// (refused, or the handle is poisoned). The committer does the rest. Requests that need
    /// a key an earlier request's erasure destroys are returned, for the next group.
    fn seal_group(&mut self, mut group: Vec<WriteRequest>) -> (Option<Sealed>, Vec<WriteRequest>) {
        let _span =
            tracing::info_span!("append_group", first_seq = self.head.next_seq, requests = group.len()).entered();
        if let Some(why) = self.shared.poison_cause() {
            for req in group {
                req.answer(&self.shared, Err(AppendError::Poisoned(why.clone())));
            }
            return (None, Vec::new());
        }
        let started = Instant::now();
        let recorded_at = Timestamp::now().max(Timestamp::from_micros(self.head.last_recorded_at).unwrap_or_default());
        let first_seq = self.head.next_seq;
        let mut next_seq = first_seq;
        let mut prev = EventHash(self.head.head_hash);
        let mut staged_heads: HashMap<SubjectId, SubjectTip> = HashMap::new();
        let mut staged_ids: HashMap<EventId, (u64, Prepared)> = HashMap::new();
        let mut vault_writes: HashMap<SubjectId, SubjectKeys> = HashMap::new();
        let mut records = Vec::new();
        let mut events = Vec::new();
        let mut index_heads = Vec::new();
        let mut outcomes: Vec<Result<Vec<Planned>, AppendError>> = Vec::with_capacity(group.len());
        let mut receipts: Vec<Receipt> = Vec::new();
        // A failure while preparing refuses the group; only a failed commit poisons.
        let mut refused: Option<StorageError> = None;
        // Erasures sealed in this group: (subject, register), and what they destroy.
        let mut scope: Vec<(SubjectId, Option<Id>)> = Vec::new();
        let mut erasures: Vec<PendingErasure> = Vec::new();
        let mut carry_from = None;

        'requests: for (r, req) in group.iter().enumerate() {
            // Details under a key an earlier request of this group erases: next group.
            if req.items.iter().any(|item| {
                item.details.is_some()
                    && item
                        .subject
                        .as_ref()
                        .is_some_and(|(s, _)| scope_covers(&scope, s, vault::slot(&item.kind)).is_some())
            }) {
                carry_from = Some(r);
                break;
            }
            // Phase 1: decide duplicates and erasure preconditions for the whole request
            // before staging anything.
            let mut plan = Vec::with_capacity(req.items.len());
            let mut local: HashMap<EventId, usize> = HashMap::new();
            for (i, item) in req.items.iter().enumerate() {
                if !item.id_given {
                    plan.push(None);
                    continue;
                }
                // The seq of the event holding the id is named only to its own controller.
                let conflict = |seq: u64, controller: &Id| AppendError::IdConflict {
                    index: i,
                    event_id: item.event_id,
                    existing_seq: (*controller == item.controller).then_some(seq),
                };
                if let Some(j) = local.get(&item.event_id) {
                    if req.items[*j] == *item {
                        plan.push(Some(Err(*j)));
                        continue;
                    }
                    outcomes.push(Err(AppendError::DuplicateInBatch { index: i, first: *j, event_id: item.event_id }));
                    continue 'requests;
                }
                if let Some((seq, staged)) = staged_ids.get(&item.event_id) {
                    if staged == item {
                        plan.push(Some(Ok(receipts[(*seq - first_seq) as usize])));
                        continue;
                    }
                    outcomes.push(Err(conflict(*seq, &staged.controller)));
                    continue 'requests;
                }
                // In the group the committer holds: its receipt goes out only after this group
                // is durable, which is after that one (commits are in order; a failure poisons).
                if let Some((staged, receipt)) = self.inflight_ids.get(&item.event_id) {
                    if staged == item {
                        plan.push(Some(Ok(*receipt)));
                        continue;
                    }
                    outcomes.push(Err(conflict(receipt.seq, &staged.controller)));
                    continue 'requests;
                }
                match self.existing_seq(&item.event_id).and_then(|s| match s {
                    None => Ok(None),
                    Some(seq) => self.same_as_committed(item, seq).map(|r| Some((seq, r))),
                }) {
                    Ok(None) => {
                        local.insert(item.event_id, i);
                        plan.push(None);
                    }
                    Ok(Some((_, Ok(receipt)))) => plan.push(Some(Ok(receipt))),
                    Ok(Some((seq, Err(same_controller)))) => {
                        outcomes.push(Err(AppendError::IdConflict {
                            index: i,
                            event_id: item.event_id,
                            existing_seq: same_controller.then_some(seq),
                        }));
                        continue 'requests;
                    }
                    Err(e) => {
                        refused = Some(e);
                        break 'requests;
                    }
                }
            }
            // Phase 1b: preconditions of the events that are new (a retry of a recorded event
            // is answered with its receipt, whatever the state is now).
            let mut own_scope: Vec<(SubjectId, Option<Id>)> = Vec::new();
            let mut own_erasures: Vec<usize> = Vec::new();
            let mut earlier: Vec<&Prepared> = Vec::new();
            for (i, (item, p)) in req.items.iter().zip(&plan).enumerate() {
                if p.is_some() {
                    continue;
                }
                if let Some((subject, _)) = &item.subject {
                    if item.details.is_some()
                        && let Some(k) = scope_covers(&own_scope, subject, vault::slot(&item.kind))
                    {
                        outcomes.push(Err(AppendError::DetailsAfterErasure { index: i, erasure: own_erasures[k] }));
                        continue 'requests;
                    }
                    match self.precondition(subject, item, &events, &earlier, next_seq, recorded_at) {
                        Ok(None) => {}
                        Ok(Some(problem)) => {
                            outcomes.push(Err(match item.kind {
                                EventKind::DataErased { .. } => AppendError::ErasureBlocked { index: i, why: problem },
                                _ => AppendError::InvalidStep { index: i, why: problem },
                            }));
                            continue 'requests;
                        }
                        Err(e) => {
                            refused = Some(e);
                            break 'requests;
                        }
                    }
                    if let EventKind::DataErased { register, .. } = &item.kind {
                        own_scope.push((*subject, register.clone()));
                        own_erasures.push(i);
                    }
                }
                earlier.push(item);
            }
            // Phase 2: seal the new events.
            let mut planned = Vec::with_capacity(req.items.len());
            let mut mine: Vec<usize> = Vec::with_capacity(req.items.len());
            for (item, p) in req.items.iter().zip(plan) {
                match p {
                    Some(Ok(receipt)) => planned.push(Planned::Existing(receipt)),
                    Some(Err(j)) => planned.push(Planned::New(mine[j])),
                    None => match self.seal(item, next_seq, prev, recorded_at, &mut staged_heads, &mut vault_writes) {
                        Ok((record, hash, head, event)) => {
                            records.push(record);
                            events.push(event);
                            if let Some(h) = head {
                                index_heads.push(h);
                            }
                            if let (Some((subject, _)), EventKind::DataErased { register, .. }) =
                                (&item.subject, &item.kind)
                            {
                                scope.push((*subject, register.clone()));
                                erasures.push(PendingErasure {
                                    subject: *subject,
                                    seq: next_seq,
                                    slot: register.as_ref().map(|r| r.to_string()),
                                });
                            }
                            receipts.push(Receipt { seq: next_seq, hash, event_id: item.event_id, recorded_at });
                            if item.id_given {
                                // Only caller-given ids can repeat within a group.
                                staged_ids.insert(item.event_id, (next_seq, item.clone()));
                            }
                            planned.push(Planned::New(receipts.len() - 1));
                            prev = hash;
                            next_seq += 1;
                        }
                        Err(e) => {
                            refused = Some(e);
                            break 'requests;
                        }
                    },
                }
                mine.push(match planned.last() {
                    Some(Planned::New(k)) => *k,
                    _ => usize::MAX,
                });
            }
            outcomes.push(Ok(planned));
        }

        let carried = carry_from.map_or_else(Vec::new, |r| group.split_off(r));
        if let Some(why) = refused {
            tracing::error!(error = %why, "append group refused before writing");
            for req in group {
                req.answer(&self.shared, Err(AppendError::Refused(why.clone())));
            }
            return (None, carried);
        }

        let writes: Vec<(SubjectId, SubjectKeys)> = vault_writes.drain().collect();
        let sealed_at = Instant::now();
        // New keys first, then the record of what this group will erase: both durable before
        // sled sees the group, so a crash leaves the event absent or the erasure completable.
        let vault_result = (if writes.is_empty() { Ok(()) } else { self.store.vault().put_all(&writes) })
            .and_then(|()| if erasures.is_empty() { Ok(()) } else { self.store.vault().record_pending(&erasures) });
        if let Err(e) = vault_result {
            // Nothing reached sled: refuse this group, keep the writer usable.
            let why = StorageError::from(e);
            tracing::error!(error = %why, "key vault write failed; group refused");
            for req in group {
                req.answer(&self.shared, Err(AppendError::Storage(why.clone())));
            }
            return (None, carried);
        }
        let vault_us = sealed_at.elapsed().as_micros() as u64;
        let head = Head { next_seq, head_hash: prev.0, last_recorded_at: recorded_at.as_micros() };
        if !records.is_empty() {
            // The next group chains on this one before it is durable; if its commit fails,
            // the handle is poisoned and the next group is refused by the committer.
            self.head = head;
        }
        self.pending_ids.extend(receipts.iter().map(|r| (r.event_id, r.seq)));
        self.inflight_heads = staged_heads.clone();
        self.inflight_marks = events.iter().filter(|e| is_state_mark(&e.kind)).cloned().collect();
        self.inflight_ids = staged_ids
            .into_iter()
            .map(|(id, (seq, item))| (id, (item, receipts[(seq - first_seq) as usize])))
            .collect();
        (
            Some(Sealed {
                group,
                outcomes,
                records,
                events,
                index_heads,
                receipts,
                staged_heads,
                first_seq,
                head,
                started,
                seal_us: (sealed_at - started).as_micros() as u64,
                vault_us,
                new_keys: writes.len(),
                erasures,
            }),
            carried,
        )
    }

    /// Seals one event at `seq`: subject link, key slot, encrypted details, canonical bytes.
    #[allow(clippy::type_complexity)]
    fn seal(
        &mut self,
        item: &Prepared,
        seq: u64,
        prev: EventHash,
        recorded_at: Timestamp,
        staged_heads: &mut HashMap<SubjectId, SubjectTip>,
        vault_writes: &mut HashMap<SubjectId, SubjectKeys>,
    ) -> Result<(Record, EventHash, Option<(SubjectId, SubjectHeadRec)>, kvitto_core::Event), StorageError> {
        let mut link = None;
        let mut back_link = None;
        let mut commitment = None;
        let mut sealed_details = None;
        if let Some((subject, external_ref)) = &item.subject {
            let tip = self.tip(staged_heads, subject)?;
            back_link = tip.map(|t| t.last_seq);
            link = Some(SubjectLink {
                subject: *subject,
                subject_seq: tip.map_or(0, |t| t.count),
                subject_prev: tip.map(|t| t.last_hash),
            });
            let slot = item.details.as_ref().map(|_| vault::slot(&item.kind).to_string());
            let key = self.ensure_key(*subject, &item.controller, external_ref, slot.as_deref(), vault_writes)?;
            if let (Some(details), Some(key)) = (&item.details, key) {
                let salt = self.rng.take::<32>()?;
                let nonce = self.rng.take::<24>()?;
                commitment = Some(payload_commitment(&salt, details.as_bytes()));
                sealed_details =
                    Some(vault::seal_with_nonce(&key, subject, &item.event_id, &nonce, &salt, details.as_bytes())?);
            }
        }
        let event = kvitto_core::Event {
            seq,
            prev_hash: prev,
            recorded_at,
            occurred_at: item.occurred_at.unwrap_or(recorded_at),
            event_id: item.event_id,
            controller: item.controller.clone(),
            actor: item.actor.clone(),
            subject: link,
            kind: item.kind.clone(),
            payload_commitment: commitment,
        };
        let canonical = encode_event(&event);
        let hash = event_hash(&canonical);
        let head = link.map(|l| {
            let tip = SubjectTip { last_seq: seq, count: l.subject_seq + 1, last_hash: hash };
            staged_heads.insert(l.subject, tip);
            (l.subject, SubjectHeadRec { last_seq: seq, count: tip.count, last_hash: hash.0 })
        });
        Ok((Record { canonical, back_link, sealed: sealed_details }, hash, head, event))
    }

    /// Makes sure the subject has a key file (and the slot's key when `slot` is given);
    /// new files and slots are collected in `vault_writes` and written before the commit.
    fn ensure_key(
        &mut self,
        subject: SubjectId,
        controller: &Id,
        external_ref: &ExternalRef,
        slot: Option<&str>,
        vault_writes: &mut HashMap<SubjectId, SubjectKeys>,
    ) -> Result<Option<[u8; 32]>, StorageError> {
        let mut keys = match vault_writes.remove(&subject) {
            Some(staged) => staged,
            None => match self.store.vault().slot_key(&subject, slot) {
                SlotKey::Key(k) => return Ok(Some(k)),
                SlotKey::NoSlot if slot.is_none() => return Ok(None),
                // Rare: a stored subject gains a slot; copy its key set to extend it.
                SlotKey::NoSlot => self
                    .store
                    .vault()
                    .get(&subject)
                    .ok_or_else(|| StorageError::Internal("a subject's keys vanished from the key vault".into()))?,
                SlotKey::NoSubject => SubjectKeys {
                    controller: controller.as_str().to_string(),
                    external_ref: external_ref.as_str().to_string(),
                    slots: Vec::new(),
                },
            },
        };
        let key = match slot {
            None => None,
            Some(s) => match keys.key(s) {
                Some(k) => Some(*k),
                None => {
                    let k = self.rng.take::<32>()?;
                    keys.slots.push((s.to_string(), k));
                    Some(k)
                }
            },
        };
        vault_writes.insert(subject, keys);
        Ok(key)
    }
}

impl Committer {
    fn run(self, rx: std::sync::mpsc::Receiver<Sealed>) {
        // One erasure at a time: the writer holds back every other until it has ended.
        let (to_eraser, from_committer) = std::sync::mpsc::sync_channel::<Erasing>(1);
        std::thread::scope(|scope| {
            let eraser = std::thread::Builder::new()
                .name("kvitto-erase".into())
                .spawn_scoped(scope, || {
                    for e in from_committer {
                        self.finish_erasure(e);
                    }
                })
                .map_err(|e| tracing::warn!(error = %e, "no eraser thread; erasures are carried out in line"))
                .ok()
                .map(|_| &to_eraser);
            for sealed in rx {
                let erasing = !sealed.erasures.is_empty();
                // A panic here must not leave the writer sealing on: poison, like a failed
                // commit (its callers see their reply dropped; an erasure is finished on reopen).
                let handed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(sealed, eraser)));
                let handed = handed.unwrap_or_else(|panic| {
                    let why = StorageError::Internal(format!(
                        "the commit thread failed: {}",
                        kvitto_storage::panic_message(&*panic)
                    ));
                    tracing::error!(error = %why, "ledger handle poisoned");
                    self.shared.poison(why);
                    false
                });
                if erasing && !handed {
                    let _ = self.erased_tx.send(());
                }
            }
            drop(to_eraser);
        });
    }

    /// Destroys an erasing group's keys, answers its callers, and tells the writer.
    fn finish_erasure(&self, e: Erasing) {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let started = Instant::now();
            let erased = self.erase(&e.erasures);
            self.shared.stats.erase_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.answer(e.replies, erased.err());
        }));
        if let Err(panic) = done {
            let why = StorageError::Internal(format!("the eraser failed: {}", kvitto_storage::panic_message(&*panic)));
            tracing::error!(error = %why, "ledger handle poisoned");
            self.shared.poison(why);
        }
        let _ = self.erased_tx.send(());
    }

    /// Answers a durable group's requests; an erasing request whose keys could not all be
    /// destroyed (`failed`) hears that along with its receipts.
    fn answer(&self, replies: Vec<(WriteRequest, Result<Vec<Receipt>, AppendError>)>, failed: Option<StorageError>) {
        self.shared.committing.fetch_sub(replies.len(), Ordering::AcqRel);
        for (req, reply) in replies {
            let erasing = req.items.iter().any(|i| matches!(i.kind, EventKind::DataErased { .. }));
            let reply = match (reply, &failed) {
                (Ok(receipts), Some(why)) if erasing => {
                    Err(AppendError::ErasureIncomplete { why: why.clone(), receipts })
                }
                (reply, _) => reply,
            };
            req.answer(&self.shared, reply);
        }
    }

    fn answer_all(&self, s: Sealed, why: impl Fn() -> AppendError) {
        self.shared.committing.fetch_sub(s.group.len(), Ordering::AcqRel);
        for req in s.group {
            req.answer(&self.shared, Err(why()));
        }
    }

    /// Writes the group to sled, makes it durable, publishes it and answers its callers — or,
    /// when it erases, hands it to `eraser` to destroy the keys and answer (returns whether it
    /// did).
    fn commit(&self, s: Sealed, eraser: Option<&std::sync::mpsc::SyncSender<Erasing>>) -> bool {
        if let Some(why) = self.shared.poison_cause() {
            // An earlier group failed after this one was sealed on top of it.
            self.answer_all(s, || AppendError::Poisoned(why.clone()));
            return false;
        }
        if !s.records.is_empty() {
            match self.commit_or_injected(&s) {
                Ok(stats) => {
                    self.shared.stats.durable(GroupCost {
                        events: s.records.len() as u64,
                        seal_us: s.seal_us,
                        vault_us: s.vault_us,
                        paid_vault: s.new_keys > 0 || !s.erasures.is_empty(),
                        write_us: stats.write.as_micros() as u64,
                        sync_us: stats.sync.as_micros() as u64,
                        duration_us: s.started.elapsed().as_micros() as u64,
                        erasing: !s.erasures.is_empty(),
                    });
                    tracing::info!(
                        first_seq = s.first_seq,
                        events = s.records.len(),
                        requests = s.group.len(),
                        chunks = stats.chunks,
                        bytes = stats.bytes,
                        new_keys = s.new_keys,
                        seal_us = s.seal_us,
                        vault_us = s.vault_us,
                        write_us = stats.write.as_micros() as u64,
                        sync_us = stats.sync.as_micros() as u64,
                        duration_us = s.started.elapsed().as_micros() as u64,
                        "append group durable"
                    )
                }
                Err(e) => {
                    self.shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                    // Poison either way: the group the writer may have sealed on top chains on
                    // this one, and sled 0.34.7 cannot be trusted to flush after an I/O error.
                    let why = match &e {
                        CommitError::NotWritten(e) | CommitError::Unknown(e) => StorageError::from(e),
                    };
                    tracing::error!(error = %why, "append group failed; ledger handle poisoned");
                    self.shared.poison(why.clone());
                    self.shared.committing.fetch_sub(s.group.len(), Ordering::AcqRel);
                    for (req, outcome) in s.group.into_iter().zip(s.outcomes) {
                        let reply = match outcome {
                            // Refused while sealing: nothing of it was in the group.
                            Err(refusal) => Err(refusal),
                            // Only retries of events recorded earlier: their receipts stand.
                            Ok(planned) if planned.iter().all(|p| matches!(p, Planned::Existing(_))) => Ok(planned
                                .into_iter()
                                .filter_map(|p| match p {
                                    Planned::Existing(r) => Some(r),
                                    Planned::New(_) => None,
                                })
                                .collect()),
                            Ok(_) => Err(match &e {
                                CommitError::NotWritten(_) => AppendError::Storage(why.clone()),
                                CommitError::Unknown(_) => AppendError::OutcomeUnknown {
                                    why: why.clone(),
                                    event_ids: req.items.iter().map(|i| i.event_id).collect(),
                                },
                            }),
                        };
                        req.answer(&self.shared, reply);
                    }
                    return false;
                }
            }
            // Durable: publish state, fold projections, feed the indexer.
            self.shared.committed.store(s.head.next_seq, Ordering::Release);
        }
        let publishing = Instant::now();
        let mut dirty = crate::persist::Dirty::default();
        // A poisoned lock (a reader panicked while holding it) leaves a state readers cannot
        // trust: poison the handle, so reads and appends answer with an error, not stale state.
        match self.shared.projections.write() {
            Ok(mut p) => {
                for e in s.events {
                    dirty.add(p.apply_owned(e));
                }
            }
            Err(_) => self.shared.poison(StorageError::lock("projections")),
        }
        match self.shared.heads.write() {
            Ok(mut heads) => heads.extend(s.staged_heads.iter().map(|(k, v)| (*k, *v))),
            Err(_) => self.shared.poison(StorageError::lock("subject heads")),
        }
        if !s.records.is_empty()
            && self
                .index_tx
                .send(IndexWork {
                    heads: s.index_heads,
                    event_ids: s.receipts.iter().map(|r| (r.event_id, r.seq)).collect(),
                    dirty,
                    leaves: s.receipts.iter().map(|r| r.hash.0).collect(),
                    watermark: s.head.next_seq,
                })
                .is_err()
        {
            // The indexer stopped (it panicked): the group is durable and its receipts go out,
            // but proofs and the index would never catch up — take no more appends.
            let why = StorageError::Internal("the indexer thread stopped; reopen the ledger to catch up".into());
            tracing::error!(error = %why, "ledger handle poisoned");
            self.shared.poison(why);
        }
        let replies: Vec<_> = s
            .group
            .into_iter()
            .zip(s.outcomes)
            .map(|(req, outcome)| {
                let reply = outcome.map(|planned| {
                    planned
                        .into_iter()
                        .map(|p| match p {
                            Planned::New(k) => s.receipts[k],
                            Planned::Existing(r) => r,
                        })
                        .collect::<Vec<_>>()
                });
                (req, reply)
            })
            .collect();
        if s.erasures.is_empty() {
            self.answer(replies, None);
            self.shared.stats.publish_us.fetch_add(publishing.elapsed().as_micros() as u64, Ordering::Relaxed);
            return false;
        }
        self.shared.stats.publish_us.fetch_add(publishing.elapsed().as_micros() as u64, Ordering::Relaxed);
        // The erasures are recorded and folded (readers now see the details as erased, not as
        // a missing key): their keys are destroyed before anyone hears of them, by the eraser
        // while this thread commits the next group (none of whose events names an erased
        // subject: the writer holds those back until the erasure has ended).
        let e = Erasing { erasures: s.erasures, replies };
        match eraser {
            Some(tx) => match tx.send(e) {
                Ok(()) => true,
                Err(std::sync::mpsc::SendError(e)) => {
                    self.finish_erasure(e);
                    true
                }
            },
            None => {
                self.finish_erasure(e);
                true
            }
        }
    }

    /// `Store::commit`, unless a test injected a failure: then, once the writer has sealed
    /// another group on top of this one, a failure that wrote nothing.
    fn commit_or_injected(&self, s: &Sealed) -> Result<kvitto_storage::CommitStats, CommitError> {
        if self.shared.hooks.fail_commit_on_top.swap(false, Ordering::AcqRel) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.shared.committing.load(Ordering::Acquire) <= s.group.len() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            return Err(CommitError::NotWritten(kvitto_storage::StoreError::Io(std::io::Error::other(
                "injected commit failure",
            ))));
        }
        self.store.commit(s.first_seq, &s.records, &s.head)
    }

    /// Destroys the keys of a durable group's erasures and clears their pending record. A
    /// failure poisons the handle: the events are recorded, and the next open finishes the
    /// erasure from the pending record before anything can read the keys.
    fn erase(&self, erasures: &[PendingErasure]) -> Result<(), StorageError> {
        if erasures.is_empty() {
            return Ok(());
        }
        TestHooks::wait(&self.shared.hooks.pause_erasure);
        let vault = self.store.vault();
        let items: Vec<(SubjectId, Option<String>)> = erasures.iter().map(|p| (p.subject, p.slot.clone())).collect();
        let done = vault.erase_all(&items).and_then(|_| vault.clear_pending());
        done.map_err(|e| {
            let why = StorageError::from(e);
            tracing::error!(error = %why, "destroying erased keys failed: erasure incomplete; ledger handle poisoned");
            self.shared.poison(why.clone());
            why
        })
    }
}
