//! Direct record editing, for tamper tests only (feature `tamper`). This is what an attacker
//! with write access to the sled files could do; `verify` must catch every one of them.

use crate::codec::{self, Head, Record};
use crate::log::chunk_key;
use crate::{Store, StoreError};

fn load(store: &Store, seq: u64) -> Result<(u64, Vec<Record>), StoreError> {
    store
        .chunk_containing(seq)?
        .ok_or_else(|| StoreError::Corrupt { at: format!("seq {seq}"), what: "no such record".into() })
}

fn save(store: &Store, first: u64, records: &[Record]) -> Result<(), StoreError> {
    if records.is_empty() {
        store.log_tree().remove(chunk_key(first))?;
    } else {
        // Written as the store writes chunks (compressed), so a tampered chunk looks like any other.
        let value = codec::compress(codec::encode(records)?);
        store.log_tree().insert(chunk_key(first), value)?;
    }
    store.flush_all()
}

/// Edits the stored record of `seq` in place.
pub fn edit_record(store: &Store, seq: u64, edit: impl FnOnce(&mut Record)) -> Result<(), StoreError> {
    let (first, mut records) = load(store, seq)?;
    edit(&mut records[(seq - first) as usize]);
    save(store, first, &records)
}

/// Deletes the record of `seq` (later records of its chunk move up one place).
pub fn delete_record(store: &Store, seq: u64) -> Result<(), StoreError> {
    let (first, mut records) = load(store, seq)?;
    records.remove((seq - first) as usize);
    save(store, first, &records)
}

/// Swaps the stored records of two seqs.
pub fn swap_records(store: &Store, a: u64, b: u64) -> Result<(), StoreError> {
    let ra = store.record(a)?.ok_or_else(|| StoreError::Corrupt { at: format!("seq {a}"), what: "missing".into() })?;
    let rb = store.record(b)?.ok_or_else(|| StoreError::Corrupt { at: format!("seq {b}"), what: "missing".into() })?;
    edit_record(store, a, |r| *r = rb)?;
    edit_record(store, b, |r| *r = ra)
}

/// Drops every record from `from_seq` on, leaving the stored head as it was.
pub fn truncate_from(store: &Store, from_seq: u64) -> Result<(), StoreError> {
    let (first, mut records) = load(store, from_seq)?;
    records.truncate((from_seq - first) as usize);
    save(store, first, &records)?;
    let later: Vec<_> = store.log_tree().range(chunk_key(first + 1)..=chunk_key(u64::MAX)).keys().collect();
    for k in later {
        store.log_tree().remove(k?)?;
    }
    store.flush_all()
}

/// Overwrites the stored chain head.
pub fn set_head(store: &Store, head: &Head) -> Result<(), StoreError> {
    store.log_tree().insert(b"m:head", codec::encode(head)?)?;
    store.flush_all()
}

/// Overwrites a raw value in the index tree.
pub fn put_index_raw(store: &Store, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    store.index_tree().insert(key, value)?;
    store.flush_all()
}

/// Overwrites one stored Merkle node inside its page (the page must hold it).
pub fn set_merkle_node(store: &Store, level: u8, index: u64, hash: &[u8; 32]) -> Result<(), StoreError> {
    let mut key = vec![crate::log::NODE_PAGE, level];
    key.extend_from_slice(&(index / crate::log::NODES_PER_PAGE).to_be_bytes());
    let mut page = store.index_tree().get(&key)?.map(|v| v.to_vec()).unwrap_or_default();
    let offset = (index % crate::log::NODES_PER_PAGE) as usize * 32;
    match page.get_mut(offset..offset + 32) {
        Some(slot) => slot.copy_from_slice(hash),
        None => {
            return Err(StoreError::Corrupt { at: format!("merkle node {level}/{index}"), what: "not stored".into() });
        }
    }
    put_index_raw(store, &key, &page)
}

/// Overwrites the stored format version.
pub fn set_format(store: &Store, format: u32) -> Result<(), StoreError> {
    store.log_tree().insert(b"m:format", &format.to_be_bytes())?;
    store.flush_all()
}

/// Overwrites a stored checkpoint note (tree v2).
pub fn put_checkpoint_raw(store: &Store, size: u64, note: &str) -> Result<(), StoreError> {
    put_checkpoint_under(store, b'K', size, note)
}

/// Stores a checkpoint note as one signed over the BLAKE3 tree of v1 (a ledger made before
/// the SHA-256 tree).
pub fn put_legacy_checkpoint_raw(store: &Store, size: u64, note: &str) -> Result<(), StoreError> {
    put_checkpoint_under(store, b'k', size, note)
}

fn put_checkpoint_under(store: &Store, prefix: u8, size: u64, note: &str) -> Result<(), StoreError> {
    let mut key = vec![prefix];
    key.extend_from_slice(&size.to_be_bytes());
    store.log_tree().insert(key, note.as_bytes())?;
    store.flush_all()
}

/// Removes the chunk whose first seq is `first_seq` (the head stays as it was).
pub fn remove_chunk(store: &Store, first_seq: u64) -> Result<bool, StoreError> {
    let removed = store.log_tree().remove(chunk_key(first_seq))?.is_some();
    store.flush_all()?;
    Ok(removed)
}

/// Rewrites every compressed value of `tree` (the log's chunks, the projection states) in its
/// plain form (version byte 1, as stores wrote them before values were compressed); returns
/// how many were compressed.
pub fn write_plain(store: &Store, tree: PlainTree) -> Result<usize, StoreError> {
    // The keys whose values are encoded records or states (FORMAT.md §4).
    let (tree, prefixes): (sled::Tree, &[u8]) = match tree {
        PlainTree::Log => (store.log_tree().clone(), b"c"),
        PlainTree::Projections => (store.projections_tree()?, b"scS"),
    };
    let mut compressed = 0;
    for kv in tree.iter() {
        let (key, value) = kv?;
        if key.first().is_some_and(|k| prefixes.contains(k))
            && value.first() == Some(&kvitto_storage::codec::LZ4_FORMAT)
        {
            tree.insert(key, kvitto_storage::codec::decompress(&value, || "value".into())?)?;
            compressed += 1;
        }
    }
    store.flush_all()?;
    Ok(compressed)
}

/// The trees [`write_plain`] rewrites.
#[derive(Debug, Clone, Copy)]
pub enum PlainTree {
    /// The log's chunks.
    Log,
    /// The persisted projection states (and a rebuild's snapshot chunks).
    Projections,
}

/// The first seqs of the stored chunks, in order.
pub fn chunk_starts(store: &Store) -> Result<Vec<u64>, StoreError> {
    store.chunks_from(0).map(|c| c.map(|(first, _)| first)).collect()
}

/// Overwrites the acknowledged-head file (as if the last commits' receipts were never sent).
pub fn set_acked(store: &Store, acked: &kvitto_storage::Acked) -> Result<(), StoreError> {
    std::fs::write(store.dir().join("acked"), acked.encode())?;
    Ok(())
}

/// Removes every index entry whose key starts with `prefix` (e.g. the Merkle pages, as in a
/// ledger written before tree v2).
pub fn remove_index_prefix(store: &Store, prefix: &[u8]) -> Result<usize, StoreError> {
    let keys: Vec<_> = store.index_tree().scan_prefix(prefix).keys().collect::<Result<_, _>>()?;
    for k in &keys {
        store.index_tree().remove(k)?;
    }
    store.flush_all()?;
    Ok(keys.len())
}

/// Removes a stored checkpoint (tree v2) of `size`.
pub fn remove_checkpoint(store: &Store, size: u64) -> Result<bool, StoreError> {
    let mut key = vec![b'K'];
    key.extend_from_slice(&size.to_be_bytes());
    let removed = store.log_tree().remove(key)?.is_some();
    store.flush_all()?;
    Ok(removed)
}

/// Overwrites every subject map snapshot entry's count (a damaged derived snapshot).
pub fn corrupt_map_snapshot(store: &Store) -> Result<usize, StoreError> {
    let entries: Vec<_> = store.submap_tree().scan_prefix([b'S']).collect::<Result<_, _>>()?;
    for (k, v) in &entries {
        let mut v = v.to_vec();
        v[7] ^= 0x40;
        store.submap_tree().insert(k, v)?;
    }
    store.flush_all()?;
    Ok(entries.len())
}

/// Raw (key, value) entries of a sled tree.
pub type RawEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// The raw subject map snapshot tree (to restore it later, as a crash before its write would).
pub fn map_tree_raw(store: &Store) -> Result<RawEntries, StoreError> {
    store.submap_tree().iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into)).collect()
}

/// Replaces the subject map snapshot tree with raw entries from [`map_tree_raw`].
pub fn restore_map_tree_raw(store: &Store, items: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
    store.submap_tree().clear()?;
    for (k, v) in items {
        store.submap_tree().insert(k.as_slice(), v.as_slice())?;
    }
    store.flush_all()
}

/// Copies the persisted projection state of subject `from` over that of `to` (as a delta,
/// which overrides a snapshot entry): the next open answers `to`'s questions from `from`'s
/// events. Returns whether `from` had a persisted state.
pub fn copy_projection_state(
    store: &Store,
    from: &kvitto_core::SubjectId,
    to: &kvitto_core::SubjectId,
) -> Result<bool, StoreError> {
    let key = |s: &kvitto_core::SubjectId| {
        let mut k = vec![b's'];
        k.extend_from_slice(&s.0);
        k
    };
    let wanted = key(from);
    let mut found = None;
    for entry in store.projection_entries() {
        let (k, v) = entry?;
        if k == wanted {
            found = Some(v);
        } else if k.first() == Some(&b'S') && found.is_none() {
            let pairs: Vec<codec::BytePair> = codec::decode_stored(&v, || "projection snapshot".into())?;
            found = pairs.into_iter().find(|p| p.0 == wanted).map(|p| p.1);
        }
    }
    let Some(state) = found else { return Ok(false) };
    let mut b = sled::Batch::default();
    b.insert(key(to), state);
    store.projections_tree()?.apply_batch(b)?;
    store.flush_all()?;
    Ok(true)
}

/// Writes one raw entry of the persisted projections (e.g. their layout or fingerprint).
pub fn put_projection_raw(store: &Store, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    store.projections_tree()?.insert(key, value)?;
    store.flush_all()
}

/// Rewrites the external reference in the newest vault frame of `subject` to `to`: tagged
/// under the ledger's frame key (`retag`: an insider with the secret) or with the unkeyed
/// checksum of vault version 1 (an outsider). The running store keeps the keys it loaded.
pub fn rewrite_vault_reference(
    store: &Store,
    subject: &kvitto_core::SubjectId,
    to: &str,
    retag: bool,
) -> Result<bool, kvitto_vault::VaultError> {
    store.vault().tamper_rewrite_reference(subject, to, retag)
}

/// Turns the ledger's vault back into version 1, as written before frames were authenticated:
/// every segment rewritten with unkeyed checksums and the store's record of the migration
/// removed (`with_record: false`) or kept (`true`: a downgrade the next open must refuse).
pub fn write_vault_as_version_1(store: &Store, with_record: bool) -> Result<usize, StoreError> {
    let n = store
        .vault()
        .tamper_write_as_version_1()
        .map_err(|e| StoreError::Corrupt { at: "vault".into(), what: e.to_string() })?;
    if !with_record {
        store.log_tree().remove(b"m:vault")?;
    }
    store.flush_all()?;
    Ok(n)
}
