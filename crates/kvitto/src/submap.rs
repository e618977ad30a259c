//! The subject map (docs/FORMAT.md §7) kept by the ledger: advanced from the log and committed
//! by `Ledger::checkpoint` — never on the acknowledgement path — and persisted as a snapshot
//! (derived data) so that bundle proofs need no replay.

use std::collections::HashSet;

use kvitto_core::{EventKind, TextHash};
use kvitto_proof::map::{Key, MapEntry, MapProof, SubjectMap};
use kvitto_storage::{Backend, StoreError};

/// One `subject_map_committed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Commitment {
    /// Seq of the event.
    pub seq: u64,
    /// Events the map covers.
    pub tree_size: u64,
    /// Its root.
    pub root: [u8; 32],
}

/// The map folded over the first `size` events.
#[derive(Debug, Default)]
pub(crate) struct MapState {
    pub map: SubjectMap,
    pub size: u64,
    /// Keys changed since the snapshot was last written.
    dirty: HashSet<Key>,
    /// Every commitment in the log, by seq.
    pub commitments: Vec<Commitment>,
}

impl MapState {
    /// Loads the snapshot, and picks up commitments logged after it (a crash between the
    /// commitment's append and the snapshot write), advancing to the newest of them.
    pub fn load(store: &dyn Backend, len: u64) -> Result<Self, StoreError> {
        let (mut size, entries) = store.map_snapshot()?;
        let mut state = MapState::default();
        if size > len {
            tracing::warn!(size, len, "subject map snapshot is ahead of the log; rebuilding it");
            store.clear_map()?;
            size = 0;
        } else {
            for (subject, count, head) in entries {
                state.map.insert(subject, MapEntry { count, head });
            }
            state.commitments = store
                .map_commitments()?
                .into_iter()
                .filter(|c| c.0 < len)
                .map(|(seq, tree_size, root)| Commitment { seq, tree_size, root })
                .collect();
        }
        state.size = size;
        // A snapshot must give the root committed at its size; one that does not (damaged,
        // or the log below it changed) is replaced by a fresh fold, so that the ledger never
        // commits a root its own events do not give.
        if let Some(c) = state.commitments.iter().rev().find(|c| c.tree_size == size).copied()
            && state.map.root() != c.root
        {
            tracing::warn!(
                size,
                seq = c.seq,
                "subject map snapshot does not give its committed root; folding it afresh"
            );
            let commitments = std::mem::take(&mut state.commitments);
            state = MapState::default();
            state.advance(store, size)?;
            store.clear_map()?;
            let all: Vec<_> = commitments.iter().map(|c| (c.seq, c.tree_size, c.root)).collect();
            store.apply_map(&state.dirty_entries(), size, &all)?;
            state.dirty.clear();
            state.commitments = commitments;
        }
        let known: HashSet<u64> = state.commitments.iter().map(|c| c.seq).collect();
        let mut later = Vec::new();
        crate::read::for_each_event(store, size, len, |seq, _, e| {
            if let EventKind::SubjectMapCommitted { tree_size, map_root, .. } = e.kind
                && !known.contains(&seq)
            {
                later.push(Commitment { seq, tree_size, root: map_root.0 });
            }
            Ok(())
        })?;
        if let Some(newest) = later.last().copied() {
            // Commitments logged after the snapshot (a crash before it was written, or a
            // snapshot rebuilt): advance to the newest and record them all, so the snapshot
            // watermark never passes a commitment the list does not hold.
            state.advance(store, newest.tree_size)?;
            let all: Vec<_> = later.iter().map(|c| (c.seq, c.tree_size, c.root)).collect();
            store.apply_map(&state.dirty_entries(), state.size, &all)?;
            state.dirty.clear();
        }
        state.commitments.extend(later);
        state.commitments.sort_by_key(|c| c.seq);
        Ok(state)
    }

    /// Folds events `size..to` into the map.
    pub fn advance(&mut self, store: &dyn Backend, to: u64) -> Result<(), StoreError> {
        let (map, dirty) = (&mut self.map, &mut self.dirty);
        crate::read::for_each_event(store, self.size, to, |_, record, e| {
            if let Some(link) = e.subject {
                let head = kvitto_core::event_hash(&record.canonical).0;
                map.insert(link.subject.0, MapEntry { count: link.subject_seq + 1, head });
                dirty.insert(link.subject.0);
            }
            Ok(())
        })?;
        self.size = self.size.max(to);
        Ok(())
    }

    /// The entries changed since the snapshot was written.
    fn dirty_entries(&self) -> Vec<([u8; 16], u64, [u8; 32])> {
        self.dirty.iter().filter_map(|k| self.map.get(k).map(|e| (*k, e.count, e.head))).collect()
    }

    /// Whether events other than the newest commitment arrived after it (or there is none).
    pub fn needs_commitment(&self, len: u64) -> bool {
        match self.commitments.last() {
            Some(c) => !(c.tree_size == c.seq && len == c.seq + 1),
            None => len > 0,
        }
    }

    /// The commitment event to append for the map as it stands.
    pub fn commitment_kind(&mut self) -> EventKind {
        EventKind::SubjectMapCommitted {
            tree_size: self.size,
            subjects: self.map.len(),
            map_root: TextHash(self.map.root()),
        }
    }

    /// Records an appended commitment and writes the snapshot with it.
    pub fn committed(&mut self, store: &dyn Backend, seq: u64) -> Result<(), StoreError> {
        let c = Commitment { seq, tree_size: self.size, root: self.map.root() };
        store.apply_map(&self.dirty_entries(), self.size, &[(c.seq, c.tree_size, c.root)])?;
        self.dirty.clear();
        self.commitments.push(c);
        Ok(())
    }

    /// The newest commitment inside a tree of `size` events.
    pub fn commitment_within(&self, size: u64) -> Option<Commitment> {
        self.commitments.iter().rev().find(|c| c.seq < size).copied()
    }

    /// A proof for `key` under commitment `c`: from the map when it stands at `c`, else from a
    /// map folded afresh from the log (an older checkpoint's commitment).
    pub fn prove(&mut self, store: &dyn Backend, c: Commitment, key: &Key) -> Result<MapProof, StoreError> {
        if self.size == c.tree_size && self.map.root() == c.root {
            return Ok(self.map.prove(key));
        }
        let mut fresh = MapState::default();
        fresh.advance(store, c.tree_size)?;
        if fresh.map.root() != c.root {
            return Err(StoreError::Corrupt {
                at: format!("seq {}", c.seq),
                what: "the subject map folded from the log does not give the committed root; run `kvitto verify`"
                    .into(),
            });
        }
        Ok(fresh.map.prove(key))
    }
}
