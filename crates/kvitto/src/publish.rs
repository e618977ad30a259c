//! Static tiles (C2SP `tlog-tiles`): the latest checkpoint, the Merkle tree as tiles of 256
//! hashes, and entry bundles whose entries are the 32-byte event hashes — the leaf data of the
//! tree, and nothing else: no event content, no pseudonym leaves the ledger. A directory
//! written by [`Ledger::publish`] can be served by any static web server.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Ledger, ReadError, blocking};

/// Hashes per full tile (tile height 8).
const WIDTH: u64 = 256;

/// The length prefix of an entry in an entry bundle: u16be 32, the event hash's length.
const ENTRY_LEN: [u8; 2] = 32u16.to_be_bytes();

/// What a publish run wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishReport {
    /// Tree size of the published checkpoint.
    pub size: u64,
    /// Hash tiles written (full and partial).
    pub tiles: u64,
    /// Entry bundles written.
    pub bundles: u64,
    /// Files already present from an earlier run (left as they were).
    pub kept: u64,
}

/// `<N>` of a tile path: 3-digit elements, all but the last prefixed with `x`
/// (1234067 → `x001/x234/067`).
pub fn tile_index_path(n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        parts.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// The path of tile `n` at `level` (`None`: the entry bundles), full or of width `w`.
pub fn tile_path(level: Option<u8>, n: u64, partial: Option<u64>) -> String {
    let l = level.map_or("entries".to_string(), |l| l.to_string());
    let p = partial.map(|w| format!(".p/{w}")).unwrap_or_default();
    format!("tile/{l}/{}{p}", tile_index_path(n))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |e| ReadError::Storage(crate::StorageError::io(path, &e))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename); `false` when an
/// immutable file is already there.
fn put(path: &Path, bytes: &[u8], immutable: bool) -> Result<bool, ReadError> {
    if immutable && path.exists() {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(true)
}

/// The bytes of tile `n` of width `w` at `level` (`None`: the entry bundle): `w` hashes of
/// 32 bytes, or `w` entries of u16be 32 ‖ the event hash.
fn tile_bytes(store: &dyn crate::Backend, level: Option<u8>, n: u64, w: u64) -> Result<Vec<u8>, ReadError> {
    use kvitto_proof::TreeHash;
    match level {
        None => {
            Ok(event_hashes(store, n * WIDTH, w)?.iter().flat_map(|h| [&ENTRY_LEN[..], h]).flatten().copied().collect())
        }
        // The leaves are below the stored Merkle levels: hashed from the events.
        Some(0) => Ok(event_hashes(store, n * WIDTH, w)?.iter().flat_map(|h| kvitto_proof::LogHash::leaf(h)).collect()),
        Some(level) => {
            let mut bytes = Vec::with_capacity(w as usize * 32);
            for i in 0..w {
                let index = n * WIDTH + i;
                let hash = store.merkle_node(8 * level, index)?.ok_or_else(|| ReadError::Corrupt {
                    at: format!("merkle node {}/{index}", 8 * level),
                    what: "not indexed".into(),
                })?;
                bytes.extend_from_slice(&hash);
            }
            Ok(bytes)
        }
    }
}

/// The event hashes of the `w` events from `first`, all of which must be in the log.
fn event_hashes(store: &dyn crate::Backend, first: u64, w: u64) -> Result<Vec<[u8; 32]>, ReadError> {
    let mut hashes = Vec::with_capacity(w as usize);
    crate::read::for_each_event(store, first, first + w, |_, record, _| {
        hashes.push(kvitto_core::event_hash(&record.canonical).0);
        Ok(())
    })?;
    if hashes.len() as u64 != w {
        return Err(ReadError::Corrupt { at: format!("seq {first}"), what: "events missing".into() });
    }
    Ok(hashes)
}

impl Ledger {
    /// One tile (C2SP `tlog-tiles`) of the tree of `size` events (a signed checkpoint's), as
    /// [`Ledger::publish`] writes it: tile `n` at `level` (`None`: the entry bundle) of width
    /// `width` (1–256; 256 is a full tile). `Ok(None)` when that tree does not hold the tile.
    pub async fn tile(&self, size: u64, level: Option<u8>, n: u64, width: u64) -> Result<Option<Vec<u8>>, ReadError> {
        if size > self.len() {
            return Ok(None);
        }
        let span = match level {
            None => size,
            Some(l) if l < 8 => size >> (8 * u32::from(l)),
            Some(_) => 0,
        };
        let fits = n.checked_mul(WIDTH).and_then(|start| start.checked_add(width)).is_some_and(|end| end <= span);
        if width == 0 || width > WIDTH || !fits {
            return Ok(None);
        }
        self.indexed(size).await?;
        let inner = self.inner.clone();
        blocking(move || tile_bytes(&*inner.store, level, n, width).map(Some)).await
    }

    /// Publishes the latest stored checkpoint as static tiles under `dir` (C2SP `tlog-tiles`):
    /// `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`. Incremental: full
    /// tiles and bundles already there are kept (they are immutable); `checkpoint` is written
    /// last, so a reader never sees a checkpoint whose tiles are missing.
    pub async fn publish(&self, dir: &Path) -> Result<PublishReport, ReadError> {
        let (size, note) = self.checkpoint_note(None)?.ok_or_else(|| ReadError::BadQuery {
            field: "checkpoint",
            message: "no checkpoint is stored yet; run `kvitto checkpoint` first".into(),
        })?;
        self.indexed(size).await?;
        let inner = self.inner.clone();
        let dir = dir.to_path_buf();
        blocking(move || {
            let store = &*inner.store;
            let mut report = PublishReport { size, ..Default::default() };
            let count = |written: bool, r: &mut u64, kept: &mut u64| if written { *r += 1 } else { *kept += 1 };
            // Hash tiles: level l holds the roots of subtrees of 256^l leaves (tree level 8l).
            let mut level = 0u8;
            while level < 8 && size >> (8 * u32::from(level)) > 0 {
                let span = size >> (8 * u32::from(level));
                let (full, width) = (span / WIDTH, span % WIDTH);
                for n in 0..full + u64::from(width > 0) {
                    let w = if n < full { WIDTH } else { width };
                    let path = dir.join(tile_path(Some(level), n, (w < WIDTH).then_some(w)));
                    if path.exists() {
                        report.kept += 1;
                        continue;
                    }
                    let bytes = tile_bytes(store, Some(level), n, w)?;
                    count(put(&path, &bytes, true)?, &mut report.tiles, &mut report.kept);
                }
                level += 1;
            }
            // Entry bundles: each entry is u16be 32 ‖ the event hash (the leaf data).
            let (full, width) = (size / WIDTH, size % WIDTH);
            for n in 0..full + u64::from(width > 0) {
                let w = if n < full { WIDTH } else { width };
                let path = dir.join(tile_path(None, n, (w < WIDTH).then_some(w)));
                if path.exists() {
                    report.kept += 1;
                    continue;
                }
                let bytes = tile_bytes(store, None, n, w)?;
                count(put(&path, &bytes, true)?, &mut report.bundles, &mut report.kept);
            }
            put(&dir.join("checkpoint"), note.as_bytes(), false)?;
            tracing::info!(size, tiles = report.tiles, bundles = report.bundles, kept = report.kept, "published");
            Ok(report)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_the_spec() {
        assert_eq!(tile_index_path(1_234_067), "x001/x234/067");
        assert_eq!(tile_index_path(0), "000");
        assert_eq!(tile_index_path(1000), "x001/000");
        assert_eq!(tile_path(Some(0), 5, None), "tile/0/005");
        assert_eq!(tile_path(Some(2), 1_234_067, Some(17)), "tile/2/x001/x234/067.p/17");
        assert_eq!(tile_path(None, 273, Some(112)), "tile/entries/273.p/112");
    }
}
