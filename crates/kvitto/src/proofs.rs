//! Merkle roots and proofs over the stored tree, signed checkpoints, and subject bundles.

use crate::{Ledger, ReadError, blocking, bundle, tree};

/// One of the ledger's own fixed ids.
fn ledger_id(s: &'static str) -> kvitto_core::Id {
    kvitto_core::Id::new(s).unwrap_or_else(|_| unreachable!("{s} is a valid id"))
}
use kvitto_core::EventHash;

/// Proof that event `leaf_index` is in the tree of the first `tree_size` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's seq (leaf index).
    pub leaf_index: u64,
    /// Tree size.
    pub tree_size: u64,
    /// The event hash (the leaf data; the leaf hash is SHA-256(0x00 ‖ event_hash)).
    pub event_hash: EventHash,
    /// Root of the tree of `tree_size` events.
    pub root: EventHash,
    /// Audit path, leaf to root.
    pub proof: Vec<EventHash>,
}

impl InclusionProof {
    /// Checks the proof (RFC 9162 §2.1.3.2).
    pub fn verify(&self) -> Result<(), kvitto_proof::ProofError> {
        let leaf = <kvitto_proof::LogHash as kvitto_proof::TreeHash>::leaf(&self.event_hash.0);
        let path: Vec<Vec<u8>> = self.proof.iter().map(|h| h.0.to_vec()).collect();
        kvitto_proof::merkle::verify_inclusion::<kvitto_proof::LogHash>(
            self.leaf_index,
            self.tree_size,
            &leaf,
            &path,
            &self.root.0,
        )
    }

    /// JSON form (hex hashes).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tree_hash": "SHA-256 (RFC 6962); leaf = SHA-256(0x00 || event_hash)",
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "event_hash": self.event_hash.to_hex(),
            "root": self.root.to_hex(),
            "proof": self.proof.iter().map(EventHash::to_hex).collect::<Vec<_>>(),
        })
    }
}

/// Proof that the tree of `size1` events is a prefix of the tree of `size2` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Older size.
    pub size1: u64,
    /// Newer size.
    pub size2: u64,
    /// Older root.
    pub root1: EventHash,
    /// Newer root.
    pub root2: EventHash,
    /// RFC 6962 consistency proof.
    pub proof: Vec<EventHash>,
}

impl ConsistencyProof {
    /// Checks the proof (RFC 9162 §2.1.4.2).
    pub fn verify(&self) -> Result<(), kvitto_proof::ProofError> {
        let path: Vec<Vec<u8>> = self.proof.iter().map(|h| h.0.to_vec()).collect();
        kvitto_proof::merkle::verify_consistency::<kvitto_proof::LogHash>(
            self.size1,
            self.size2,
            &path,
            &self.root1.0,
            &self.root2.0,
        )
    }

    /// JSON form (hex hashes).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tree_hash": "SHA-256 (RFC 6962); leaf = SHA-256(0x00 || event_hash)",
            "size1": self.size1,
            "size2": self.size2,
            "root1": self.root1.to_hex(),
            "root2": self.root2.to_hex(),
            "proof": self.proof.iter().map(EventHash::to_hex).collect::<Vec<_>>(),
        })
    }
}

impl Ledger {
    /// Waits (briefly) until the indexer has caught up to `size` events, so that Merkle
    /// nodes for proofs up to that size exist.
    pub(crate) async fn indexed(&self, size: u64) -> Result<(), ReadError> {
        if size > self.len() {
            return Err(ReadError::BadQuery {
                field: "size",
                message: format!("the ledger has only {} events", self.len()),
            });
        }
        for _ in 0..5_000 {
            if self.inner.shared.indexed.load(std::sync::atomic::Ordering::Acquire) >= size {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Err(ReadError::Storage(crate::StorageError::NotReady(
            "the index has not caught up with the log after 5 s; retry".into(),
        )))
    }

    /// The Merkle root (RFC 6962, SHA-256; leaf data = event hashes) of the first
    /// `size` events.
    pub async fn root(&self, size: u64) -> Result<EventHash, ReadError> {
        self.indexed(size).await?;
        let inner = self.inner.clone();
        blocking(move || {
            kvitto_proof::merkle::root::<kvitto_proof::LogHash>(&tree::StoredTree::new(&*inner.store), size)
                .map(EventHash)
                .map_err(|e| ReadError::Storage(crate::StorageError::Proof(e.to_string())))
        })
        .await
    }

    /// An inclusion proof of event `seq` in the tree of the first `size` events.
    pub async fn inclusion_proof(&self, seq: u64, size: u64) -> Result<InclusionProof, ReadError> {
        if seq >= size {
            return Err(ReadError::BadQuery { field: "seq", message: format!("seq {seq} is not below size {size}") });
        }
        self.indexed(size).await?;
        let inner = self.inner.clone();
        blocking(move || {
            let src = tree::StoredTree::new(&*inner.store);
            let err = |e: kvitto_proof::ProofError| ReadError::Storage(crate::StorageError::Proof(e.to_string()));
            let record = inner
                .store
                .record(seq)?
                .ok_or_else(|| ReadError::Corrupt { at: format!("seq {seq}"), what: "missing".into() })?;
            Ok(InclusionProof {
                leaf_index: seq,
                tree_size: size,
                event_hash: kvitto_core::event_hash(&record.canonical),
                root: EventHash(kvitto_proof::merkle::root::<kvitto_proof::LogHash>(&src, size).map_err(err)?),
                proof: kvitto_proof::merkle::inclusion_proof::<kvitto_proof::LogHash>(&src, seq, size)
                    .map_err(err)?
                    .into_iter()
                    .map(EventHash)
                    .collect(),
            })
        })
        .await
    }

    /// The canonical preimage of event `seq` (FORMAT.md §2), exactly as stored and hashed.
    pub async fn canonical(&self, seq: u64) -> Result<Vec<u8>, ReadError> {
        let inner = self.inner.clone();
        blocking(move || {
            Ok(inner
                .store
                .record(seq)?
                .ok_or_else(|| ReadError::BadQuery { field: "seq", message: format!("no event {seq}") })?
                .canonical)
        })
        .await
    }

    /// A consistency proof from the tree of `size1` events to the tree of `size2`.
    pub async fn consistency_proof(&self, size1: u64, size2: u64) -> Result<ConsistencyProof, ReadError> {
        if size1 == 0 || size1 > size2 {
            return Err(ReadError::BadQuery {
                field: "from",
                message: format!("need 1 ≤ from ≤ to, got {size1} → {size2}"),
            });
        }
        self.indexed(size2).await?;
        let inner = self.inner.clone();
        blocking(move || {
            let src = tree::StoredTree::new(&*inner.store);
            let err = |e: kvitto_proof::ProofError| ReadError::Storage(crate::StorageError::Proof(e.to_string()));
            use kvitto_proof::{LogHash, merkle};
            Ok(ConsistencyProof {
                size1,
                size2,
                root1: EventHash(merkle::root::<LogHash>(&src, size1).map_err(err)?),
                root2: EventHash(merkle::root::<LogHash>(&src, size2).map_err(err)?),
                proof: merkle::consistency_proof::<LogHash>(&src, size1, size2)
                    .map_err(err)?
                    .into_iter()
                    .map(EventHash)
                    .collect(),
            })
        })
        .await
    }

    pub(crate) fn signing_key(&self) -> Result<ed25519_dalek::SigningKey, ReadError> {
        let seed = kvitto_vault::keyfiles::signing_seed(&self.inner.dir)
            .map_err(|e| ReadError::Corrupt { at: "checkpoint.key".into(), what: e.to_string() })?
            .ok_or_else(|| ReadError::BadQuery {
                field: "ledger",
                message: "this ledger has no checkpoint key (checkpoint.key); it predates signed checkpoints".into(),
            })?;
        Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The verifier key in C2SP signed-note form: `<origin>+<hex key id>+<base64 key>`.
    pub fn verifier_key(&self) -> Result<String, ReadError> {
        Ok(kvitto_proof::checkpoint::vkey(self.origin(), &self.signing_key()?.verifying_key()))
    }

    /// Signs the current tree head as a C2SP tlog-checkpoint note, stores it, returns it.
    ///
    /// First, when events arrived since the newest subject map commitment, the map is advanced
    /// to the current size and its root appended as a `subject_map_committed` event, so that
    /// the checkpoint covers a commitment of every event before it (FORMAT.md §7).
    pub async fn checkpoint(&self) -> Result<String, ReadError> {
        if self.is_empty() {
            return Err(ReadError::BadQuery {
                field: "ledger",
                message: "the ledger is empty: nothing to checkpoint".into(),
            });
        }
        // Before anything is appended: a ledger that cannot sign commits nothing.
        let signing_key = self.signing_key()?;
        let mut guard = self.inner.submap.lock().await;
        let mut state = self.map_state(&mut guard).await?;
        let len = self.len();
        if state.needs_commitment(len) {
            let inner = self.inner.clone();
            let mut advanced = blocking(move || {
                state.advance(&*inner.store, len)?;
                Ok(state)
            })
            .await?;
            let draft = kvitto_core::Draft {
                controller: ledger_id("kvitto:ledger"),
                subject: None,
                occurred_at: None,
                event_id: None,
                actor: Some(ledger_id("kvitto:map")),
                details: None,
                kind: advanced.commitment_kind(),
            };
            let receipt = self.submit(vec![draft]).await.map_err(|e| ReadError::Append(Box::new(e)))?;
            let seq = receipt.first().map(|r| r.seq).ok_or(ReadError::Append(Box::new(crate::AppendError::Closed)))?;
            let inner = self.inner.clone();
            state = blocking(move || {
                advanced.committed(&*inner.store, seq)?;
                Ok(advanced)
            })
            .await?;
            tracing::info!(tree_size = len, seq, subjects = state.map.len(), "subject map committed");
        }
        *guard = Some(state);
        let size = self.len();
        let root = self.root(size).await?;
        let note = kvitto_proof::checkpoint::sign(
            &kvitto_proof::checkpoint::TreeHead { origin: self.origin(), size, root: root.0 },
            &signing_key,
        )
        .map_err(|e| ReadError::BadQuery { field: "origin", message: e.to_string() })?;
        let inner = self.inner.clone();
        let stored = note.clone();
        blocking(move || Ok(inner.store.put_checkpoint(size, &stored)?)).await?;
        drop(guard);
        tracing::info!(size, "checkpoint signed");
        Ok(note)
    }

    /// The subject map state, loaded on first use (the guard is left empty while it is out).
    pub(crate) async fn map_state(
        &self,
        guard: &mut tokio::sync::MutexGuard<'_, Option<crate::submap::MapState>>,
    ) -> Result<crate::submap::MapState, ReadError> {
        match guard.take() {
            Some(s) => Ok(s),
            None => {
                let inner = self.inner.clone();
                let len = self.len();
                blocking(move || Ok(crate::submap::MapState::load(&*inner.store, len)?)).await
            }
        }
    }

    /// A stored checkpoint note exactly as stored: of `size`, or the latest.
    pub fn checkpoint_note(&self, size: Option<u64>) -> Result<Option<(u64, String)>, ReadError> {
        let all = self.inner.store.checkpoints()?;
        Ok(match size {
            Some(s) => all.into_iter().find(|(n, _)| *n == s),
            None => all.into_iter().next_back(),
        })
    }

    /// Exports one customer's events as a bundle (docs/BUNDLE.md) proven against a stored
    /// checkpoint: `checkpoint_size`, or the latest. Events after that checkpoint are left out
    /// (counted in `info`). The bundle proves, through the newest subject map commitment in
    /// the checkpoint, that it holds every event of the customer up to the commitment's tree
    /// size; a customer without events gets a bundle proving that absence. With `since` (a
    /// checkpoint note the recipient holds) it adds a consistency proof from that checkpoint.
    pub async fn export_bundle(
        &self,
        controller: &str,
        subject_ref: &str,
        checkpoint_size: Option<u64>,
        since: Option<&str>,
    ) -> Result<serde_json::Value, ReadError> {
        let (size, note) = self.checkpoint_note(checkpoint_size)?.ok_or_else(|| ReadError::BadQuery {
            field: "checkpoint",
            message: match checkpoint_size {
                Some(s) => format!("no checkpoint of size {s} is stored"),
                None => "no checkpoint is stored yet; run `kvitto checkpoint` first".into(),
            },
        })?;
        self.indexed(size).await?;
        let (_, subject) = self.subject_of(controller, subject_ref)?;
        let history = match self.history(controller, subject_ref).await {
            Ok(h) => h,
            Err(ReadError::UnknownSubject { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let since_size = match since {
            None => None,
            Some(held) => Some(self.held_checkpoint(held, size).await?),
        };
        let vkey = self.verifier_key()?;
        let mut guard = self.inner.submap.lock().await;
        let mut state = self.map_state(&mut guard).await?;
        let inner = self.inner.clone();
        let controller = controller.to_string();
        let (state, bundle) = blocking(move || {
            let r = (|| {
                let c = state.commitment_within(size).ok_or_else(|| ReadError::BadQuery {
                    field: "checkpoint",
                    message: format!(
                        "the checkpoint of size {size} covers no subject map commitment (signed before they existed); \
                         sign a new one with `kvitto checkpoint`"
                    ),
                })?;
                let map_proof = state.prove(&*inner.store, c, &subject.0)?;
                let parts = bundle::Parts {
                    origin: &inner.info.origin,
                    vkey: &vkey,
                    size,
                    note: &note,
                    controller: &controller,
                    subject,
                    commitment: c,
                    map_proof: &map_proof,
                    since: since_size,
                };
                bundle::export(&*inner.store, &parts, &history)
            })();
            Ok((state, r))
        })
        .await?;
        *guard = Some(state);
        bundle
    }

    /// Checks a checkpoint the recipient holds against this ledger before proving from it.
    async fn held_checkpoint(&self, held: &str, size: u64) -> Result<u64, ReadError> {
        let key = self.signing_key()?.verifying_key();
        let bad = |message: String| ReadError::BadQuery { field: "since", message };
        let old = kvitto_proof::checkpoint::open(held, self.origin(), &key)
            .map_err(|e| bad(format!("the held checkpoint does not verify with this ledger's key: {e}")))?;
        if old.size > size {
            return Err(bad(format!(
                "the held checkpoint (size {}) is newer than the one exported (size {size}); export a newer one",
                old.size
            )));
        }
        if self.root(old.size).await?.0 != old.root {
            return Err(bad(format!(
                "the held checkpoint of size {} has a root this ledger's events do not give: it is from another \
                 history (a fork), or this ledger was rewritten",
                old.size
            )));
        }
        Ok(old.size)
    }
}
