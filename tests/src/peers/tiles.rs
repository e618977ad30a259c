//! A C2SP tlog-tiles client that reads a log from a directory laid out as
//! the log's URL prefix, written from the specification only.
//!
//! * `tlog-tiles.md` "Checkpoints": `<dir>/checkpoint` is a checkpoint
//!   (C2SP tlog-checkpoint) signed with an Ed25519 note signature (C2SP
//!   signed-note, type 0x01): [`read_checkpoint`].
//! * "Merkle Tree": tiles at `tile/<L>/<N>[.p/<W>]`, `<N>` in zero-padded
//!   3-digit path elements, all but the last prefixed with `x`
//!   ([`encode_index`], [`tile_path`]); full tiles are exactly 256 hashes
//!   (8,192 bytes); hash `i` of tile `n` at level `l` is
//!   `MTH(D[(n·256 + i)·256^l : (n·256 + i + 1)·256^l])`.
//! * "Partial Tiles": for a tree of size `s` the rightmost tile at level `l`
//!   is partial with `floor(s / 256^l) mod 256` hashes (none if that is 0);
//!   a partial tile the log deleted once its full tile existed is replaced
//!   by the full tile (the client fallback the spec allows).
//! * "Log entries": entry bundles at `tile/entries/<N>[.p/<W>]`, a sequence
//!   of big-endian uint16 length-prefixed entries, each hashing (RFC 6962
//!   §2.1 leaf hash) to the matching level-0 tile hash: [`entries_path`],
//!   [`parse_entry_bundle`], [`leaf_data`], [`check_tiles`].
//! * RFC 6962 §2.1 (MTH), §2.1.1 (PATH), §2.1.2 (PROOF), computed from tile
//!   hashes only: [`root_from_tiles`], [`inclusion_proof`],
//!   [`consistency_proof`]; RFC 9162 §2.1.3.2: [`verify_inclusion`].

use std::collections::HashMap;
use std::path::Path;

use super::{
    Hash, NoteVerifyError, SIG_TYPE_ED25519, Vkey, empty_root, leaf_hash, mth, node_hash, parse_checkpoint_text,
    parse_note, split_point, verify_note_ed25519,
};

/// Hashes per full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;

/// `<N>` of a tile path: zero-padded 3-digit elements, all but the last
/// starting with `x` (1234067 → `x001/x234/067`, 5 → `005`).
pub fn encode_index(n: u64) -> String {
    let mut groups = vec![n % 1000];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    groups.reverse();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| if i == last { format!("{g:03}") } else { format!("x{g:03}") })
        .collect::<Vec<_>>()
        .join("/")
}

fn suffix(width: Option<u8>) -> String {
    width.map_or(String::new(), |w| format!(".p/{w}"))
}

/// `tile/<L>/<N>[.p/<W>]` (relative to the prefix).
pub fn tile_path(level: u8, n: u64, width: Option<u8>) -> String {
    format!("tile/{level}/{}{}", encode_index(n), suffix(width))
}

/// `tile/entries/<N>[.p/<W>]` (relative to the prefix).
pub fn entries_path(n: u64, width: Option<u8>) -> String {
    format!("tile/entries/{}{}", encode_index(n), suffix(width))
}

/// Which resource holds tile `n` at a level for tree size `size`, given the
/// number of hashes at that level (`size >> 8·level`): `None` = full tile,
/// `Some(w)` = partial of width `w`; error if the tree has no such tile.
fn tile_width(hashes_at_level: u64, n: u64) -> Result<Option<u8>, String> {
    let full = hashes_at_level / TILE_WIDTH;
    let w = hashes_at_level % TILE_WIDTH;
    if n < full {
        Ok(None)
    } else if n == full && w > 0 {
        Ok(Some(w as u8))
    } else {
        Err(format!("tile {n} does not exist at this tree size"))
    }
}

/// Hashes at tile level `level` for tree size `size`: `floor(size / 256^level)`.
fn hashes_at(size: u64, level: u8) -> u64 {
    size.checked_shr(8 * u32::from(level)).unwrap_or(0)
}

fn read(dir: &Path, rel: &str) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(dir.join(rel)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{rel}: {e}")),
    }
}

/// Reads a resource for tree size `size`: the partial one if the tree
/// needs it, else the full one. If the partial file is missing, falls back
/// to the full resource (the spec lets logs delete partial tiles once the
/// full one exists). Returns the bytes and the path read.
fn read_sized(
    dir: &Path,
    width: Option<u8>,
    path: impl Fn(Option<u8>) -> String,
) -> Result<(Vec<u8>, String, bool), String> {
    let p = path(width);
    if let Some(b) = read(dir, &p)? {
        return Ok((b, p, width.is_some()));
    }
    if width.is_some() {
        let full = path(None);
        if let Some(b) = read(dir, &full)? {
            return Ok((b, full, false));
        }
        return Err(format!("missing {p} (and no full tile {full})"));
    }
    Err(format!("missing {p}"))
}

/// Reads `<dir>/checkpoint`, verifies it is signed by `log_vkey` (an
/// Ed25519 type-0x01 vkey: a line with its name and key ID must exist and
/// every such line must verify; other lines are ignored) and parses it.
/// Returns (origin, size, root).
pub fn read_checkpoint(dir: &Path, log_vkey: &str) -> Result<(String, u64, [u8; 32]), String> {
    let vkey = Vkey::parse(log_vkey)?;
    if vkey.sig_type != SIG_TYPE_ED25519 {
        return Err(format!("log vkey has type 0x{:02x}, not 0x01 (Ed25519)", vkey.sig_type));
    }
    let raw = read(dir, "checkpoint")?.ok_or("missing checkpoint")?;
    let note = std::str::from_utf8(&raw).map_err(|_| "checkpoint is not UTF-8".to_string())?;
    let n = parse_note(note).map_err(|e| format!("checkpoint: {e}"))?;
    verify_note_ed25519(&n, &[vkey]).map_err(|e| match e {
        NoteVerifyError::NoKnownSignature => "checkpoint has no signature by the log key".to_string(),
        e => format!("checkpoint: {e}"),
    })?;
    let cp = parse_checkpoint_text(n.text)?;
    Ok((cp.origin, cp.size, cp.root))
}

/// Parses an entry bundle: big-endian uint16 length, then that many bytes,
/// repeated to the end (a truncated entry is an error).
pub fn parse_entry_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err("entry bundle ends inside a length prefix".into());
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return Err(format!("entry bundle: entry of {len} bytes is truncated"));
        }
        out.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    Ok(out)
}

/// Entry bundle `n` as of tree size `size`: exactly 256 entries (full) or
/// `size mod 256` (partial).
pub fn entry_bundle(dir: &Path, size: u64, n: u64) -> Result<Vec<Vec<u8>>, String> {
    let width = tile_width(size, n).map_err(|e| format!("entry bundle: {e}"))?;
    let (bytes, path, partial) = read_sized(dir, width, |w| entries_path(n, w))?;
    let mut entries = parse_entry_bundle(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let want = if partial { usize::from(width.unwrap_or(0)) } else { TILE_WIDTH as usize };
    if entries.len() != want {
        return Err(format!("{path}: {} entries, expected {want}", entries.len()));
    }
    entries.truncate(width.map_or(TILE_WIDTH as usize, usize::from));
    Ok(entries)
}

/// The data of entry `index` in the tree of size `size` (from
/// `tile/entries/<index / 256>`, partial `.p/<size mod 256>` if needed).
pub fn leaf_data(dir: &Path, size: u64, index: u64) -> Result<Vec<u8>, String> {
    if index >= size {
        return Err(format!("index {index} is not below tree size {size}"));
    }
    let mut b = entry_bundle(dir, size, index / TILE_WIDTH)?;
    Ok(b.swap_remove((index % TILE_WIDTH) as usize))
}

/// Reads tile hashes for one tree size, caching tiles.
struct TileReader<'a> {
    dir: &'a Path,
    size: u64,
    cache: HashMap<(u8, u64), Vec<Hash>>,
}

impl<'a> TileReader<'a> {
    fn new(dir: &'a Path, size: u64) -> TileReader<'a> {
        TileReader { dir, size, cache: HashMap::new() }
    }

    /// The hashes of tile `n` at `level` as of this tree size.
    fn tile(&mut self, level: u8, n: u64) -> Result<&[Hash], String> {
        if !self.cache.contains_key(&(level, n)) {
            let width = tile_width(hashes_at(self.size, level), n).map_err(|e| format!("level {level}: {e}"))?;
            let (bytes, path, partial) = read_sized(self.dir, width, |w| tile_path(level, n, w))?;
            let want = if partial { usize::from(width.unwrap_or(0)) } else { TILE_WIDTH as usize };
            if bytes.len() != want * 32 {
                return Err(format!("{path}: {} bytes, expected {}", bytes.len(), want * 32));
            }
            let mut hashes: Vec<Hash> = bytes
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect();
            hashes.truncate(width.map_or(TILE_WIDTH as usize, usize::from));
            self.cache.insert((level, n), hashes);
        }
        Ok(self.cache.get(&(level, n)).map_or(&[][..], |v| v.as_slice()))
    }

    /// The hash of the complete subtree of height `h` (2^h leaves) with
    /// index `k` at that height, i.e. MTH(D[k·2^h : (k+1)·2^h]).
    fn node(&mut self, h: u32, k: u64) -> Result<Hash, String> {
        let end = (u128::from(k) + 1) << h;
        if end > u128::from(self.size) {
            return Err(format!("subtree ({h}, {k}) is not complete at size {}", self.size));
        }
        let level = (h / 8) as u8;
        let r = h % 8;
        let first = k << r; // index of its first hash at tile level `level`
        let count = 1usize << r;
        let tile = self.tile(level, first / TILE_WIDTH)?;
        let off = (first % TILE_WIDTH) as usize;
        let hashes = tile.get(off..off + count).ok_or_else(|| format!("tile at level {level} is too short"))?.to_vec();
        Ok(mth(&hashes))
    }

    /// MTH(D[start:end]) for the ranges RFC 6962's recursion produces.
    fn range(&mut self, start: u64, end: u64) -> Result<Hash, String> {
        let n = end - start;
        if n == 0 {
            return Err("empty range".into());
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.node(n.trailing_zeros(), start / n);
        }
        if n == 1 {
            return Err("unaligned leaf".into());
        }
        let k = split_point(n);
        let l = self.range(start, start + k)?;
        let r = self.range(start + k, end)?;
        Ok(node_hash(&l, &r))
    }

    /// RFC 6962 §2.1.1 PATH for leaf `m` within D[start:end].
    fn path(&mut self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), String> {
        let n = end - start;
        if n == 1 {
            return Ok(());
        }
        let k = split_point(n);
        if m < start + k {
            self.path(m, start, start + k, out)?;
            out.push(self.range(start + k, end)?);
        } else {
            self.path(m, start + k, end, out)?;
            out.push(self.range(start, start + k)?);
        }
        Ok(())
    }

    /// RFC 6962 §2.1.2 SUBPROOF(m, D[start:end], b).
    fn subproof(&mut self, m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Hash>) -> Result<(), String> {
        let n = end - start;
        if m == n {
            if !b {
                out.push(self.range(start, end)?);
            }
            return Ok(());
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, start + k, b, out)?;
            out.push(self.range(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            out.push(self.range(start, start + k)?);
        }
        Ok(())
    }
}

/// The RFC 6962 audit path for leaf `index` in the tree of size `size`,
/// computed from hash tiles only (leaf-side first).
pub fn inclusion_proof(dir: &Path, size: u64, index: u64) -> Result<Vec<[u8; 32]>, String> {
    if index >= size {
        return Err(format!("index {index} is not below tree size {size}"));
    }
    let mut out = Vec::new();
    TileReader::new(dir, size).path(index, 0, size, &mut out)?;
    Ok(out)
}

/// The RFC 6962 consistency proof from size `old` to size `size`, from hash
/// tiles of the tree of size `size` (empty if `old` is 0 or equals `size`).
pub fn consistency_proof(dir: &Path, old: u64, size: u64) -> Result<Vec<[u8; 32]>, String> {
    if old > size {
        return Err(format!("old size {old} is larger than {size}"));
    }
    let mut out = Vec::new();
    if old > 0 {
        TileReader::new(dir, size).subproof(old, 0, size, true, &mut out)?;
    }
    Ok(out)
}

/// RFC 9162 §2.1.3.2 inclusion proof verification (`leaf_hash` is the RFC
/// 6962 leaf hash, SHA-256(0x00 ‖ data)).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &[u8; 32],
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> Result<(), String> {
    super::verify_inclusion(index, size, leaf_hash, proof, root)
}

/// The tree root at `size`, recomputed from hash tiles (SHA-256("") for 0).
pub fn root_from_tiles(dir: &Path, size: u64) -> Result<[u8; 32], String> {
    if size == 0 {
        return Ok(empty_root());
    }
    TileReader::new(dir, size).range(0, size)
}

/// Checks every tile and entry bundle the tree of size `size` needs: each
/// entry's leaf hash equals its level-0 tile hash, and each level-`l+1` hash
/// equals the MTH of the full level-`l` tile below it.
pub fn check_tiles(dir: &Path, size: u64) -> Result<(), String> {
    let mut tr = TileReader::new(dir, size);
    for n in 0..size.div_ceil(TILE_WIDTH) {
        let entries = entry_bundle(dir, size, n)?;
        let hashes = tr.tile(0, n)?.to_vec();
        if entries.len() != hashes.len() {
            return Err(format!("bundle {n} and level-0 tile {n} differ in width"));
        }
        for (i, (e, h)) in entries.iter().zip(&hashes).enumerate() {
            if &leaf_hash(e) != h {
                return Err(format!("entry {} does not hash to its level-0 tile hash", n * TILE_WIDTH + i as u64));
            }
        }
    }
    let mut level = 1u8;
    while hashes_at(size, level) > 0 {
        let count = hashes_at(size, level);
        for n in 0..count.div_ceil(TILE_WIDTH) {
            let hashes = tr.tile(level, n)?.to_vec();
            for (i, h) in hashes.iter().enumerate() {
                let below = tr.tile(level - 1, n * TILE_WIDTH + i as u64)?;
                if below.len() != TILE_WIDTH as usize || &mth(below) != h {
                    return Err(format!(
                        "hash {i} of {} is not the MTH of the full tile below",
                        tile_path(level, n, None)
                    ));
                }
            }
        }
        level += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{
        checkpoint_text, ed25519_vkey, ref_consistency_proof, ref_inclusion_path, sign_note_ed25519, verify_consistency,
    };
    use super::*;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "example.com/tiles";

    fn entries(n: u64) -> Vec<Vec<u8>> {
        // Variable lengths (0 to 40 bytes) to exercise the length prefixes.
        (0..n).map(|i| format!("{i}:{}", "e".repeat((i % 38) as usize)).into_bytes()).collect()
    }

    /// Test-only writer: the tiles, entry bundles and checkpoint for the
    /// first `size` entries, per tlog-tiles (full tiles and the partial
    /// tiles of this size). Returns the files written.
    fn write_log(dir: &Path, all: &[Vec<u8>], size: u64, key: &SigningKey) -> Vec<String> {
        let data = &all[..size as usize];
        let mut files = Vec::new();
        let mut put = |rel: String, bytes: Vec<u8>| {
            let p = dir.join(&rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
            files.push(rel);
        };
        for (n, chunk) in data.chunks(256).enumerate() {
            let w = (chunk.len() < 256).then_some(chunk.len() as u8);
            let mut b = Vec::new();
            for e in chunk {
                b.extend_from_slice(&(e.len() as u16).to_be_bytes());
                b.extend_from_slice(e);
            }
            put(entries_path(n as u64, w), b);
        }
        // levels[l][i] = MTH(D[i·256^l : (i+1)·256^l]).
        let mut level: Vec<Hash> = data.iter().map(|e| leaf_hash(e)).collect();
        let mut l = 0u8;
        while !level.is_empty() {
            for (n, chunk) in level.chunks(256).enumerate() {
                let w = (chunk.len() < 256).then_some(chunk.len() as u8);
                put(tile_path(l, n as u64, w), chunk.concat());
            }
            level = level.chunks_exact(256).map(mth).collect();
            l += 1;
        }
        let root = mth(&data.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>());
        let note = sign_note_ed25519(&checkpoint_text(ORIGIN, size, &root), ORIGIN, key);
        std::fs::write(dir.join("checkpoint"), note).unwrap();
        files
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[11; 32])
    }

    fn vkey() -> String {
        ed25519_vkey(ORIGIN, &key().verifying_key())
    }

    fn sample_indices(size: u64) -> Vec<u64> {
        let mut v: Vec<u64> = [0, 1, 2, 127, 128, 254, 255, 256, 257, 511, 512, 65535, 65536, 65537, 69999]
            .into_iter()
            .filter(|&i| i < size)
            .collect();
        v.push(size - 1);
        v.push(size / 2);
        v
    }

    fn check_size(dir: &Path, all: &[Vec<u8>], size: u64) {
        let (origin, s, root) = read_checkpoint(dir, &vkey()).unwrap();
        assert_eq!((origin.as_str(), s), (ORIGIN, size));
        let hashes: Vec<Hash> = all[..size as usize].iter().map(|e| leaf_hash(e)).collect();
        assert_eq!(root, mth(&hashes));
        assert_eq!(root_from_tiles(dir, size).unwrap(), root);
        check_tiles(dir, size).unwrap();
        for i in sample_indices(size) {
            assert_eq!(leaf_data(dir, size, i).unwrap(), all[i as usize], "leaf {i}");
            let p = inclusion_proof(dir, size, i).unwrap();
            if size <= 4096 {
                assert_eq!(p, ref_inclusion_path(i, &hashes), "path {i} at {size}");
            }
            verify_inclusion(i, size, &hashes[i as usize], &p, &root).unwrap();
            assert!(verify_inclusion(i, size, &leaf_hash(b"other"), &p, &root).is_err());
        }
        assert!(leaf_data(dir, size, size).is_err());
        assert!(inclusion_proof(dir, size, size).is_err());
    }

    #[test]
    fn index_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(5), "005");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(tile_path(0, 273, Some(112)), "tile/0/273.p/112");
        assert_eq!(tile_path(1, 1_234_067, None), "tile/1/x001/x234/067");
        assert_eq!(entries_path(3, Some(7)), "tile/entries/003.p/7");
    }

    #[test]
    fn spec_examples_of_which_tiles_exist() {
        let all = entries(70_000);
        let dir = tempfile::tempdir().unwrap();
        let mut files = write_log(dir.path(), &all, 70_000, &key());
        files.retain(|f| !f.starts_with("tile/entries/"));
        // "273 full level 0 tiles, one partial level 0 tile of width 112, one
        // full level 1 tile, one partial level 1 tile of width 17, and one
        // partial level 2 tile of width 1".
        let count = |pre: &str, partial: bool| {
            files.iter().filter(|f| f.starts_with(pre) && f.contains(".p/") == partial).count()
        };
        assert_eq!(count("tile/0/", false), 273);
        assert!(files.contains(&"tile/0/273.p/112".to_string()));
        assert_eq!(count("tile/1/", false), 1);
        assert!(files.contains(&"tile/1/001.p/17".to_string()));
        assert!(files.contains(&"tile/2/000.p/1".to_string()));
        assert_eq!(files.len(), 273 + 1 + 1 + 1 + 1);

        let dir = tempfile::tempdir().unwrap();
        let files = write_log(dir.path(), &all, 256, &key());
        let tiles: Vec<_> = files.iter().filter(|f| !f.starts_with("tile/entries/")).collect();
        assert_eq!(tiles, vec!["tile/0/000", "tile/1/000.p/1"]);
    }

    #[test]
    fn readers_on_growing_log() {
        let all = entries(70_000);
        let dir = tempfile::tempdir().unwrap();
        for size in [1u64, 2, 3, 255, 256, 257, 511, 512, 513, 65_536, 70_000] {
            write_log(dir.path(), &all, size, &key());
            check_size(dir.path(), &all, size);
        }
        // Older sizes stay readable from the same directory (their partial
        // tiles were kept, or the full ones replace them).
        for size in [1u64, 255, 256, 257, 65_536] {
            assert_eq!(
                root_from_tiles(dir.path(), size).unwrap(),
                mth(&all[..size as usize].iter().map(|e| leaf_hash(e)).collect::<Vec<_>>())
            );
            let hashes: Vec<Hash> = all.iter().map(|e| leaf_hash(e)).collect();
            let old_root = mth(&hashes[..size as usize]);
            let p = consistency_proof(dir.path(), size, 70_000).unwrap();
            if size <= 257 {
                assert_eq!(p, ref_consistency_proof(size, &hashes));
            }
            let new_root = root_from_tiles(dir.path(), 70_000).unwrap();
            verify_consistency(size, 70_000, &old_root, &new_root, &p).unwrap();
        }
    }

    #[test]
    fn fresh_logs_of_each_size() {
        let all = entries(1000);
        for size in [1u64, 255, 256, 257, 1000] {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), &all, size, &key());
            check_size(dir.path(), &all, size);
        }
    }

    #[test]
    fn deleted_partial_tile_falls_back_to_full_tile() {
        let all = entries(600);
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &all, 100, &key());
        write_log(dir.path(), &all, 600, &key());
        std::fs::remove_dir_all(dir.path().join("tile/0/000.p")).unwrap();
        std::fs::remove_dir_all(dir.path().join("tile/entries/000.p")).unwrap();
        let hashes: Vec<Hash> = all.iter().map(|e| leaf_hash(e)).collect();
        assert_eq!(root_from_tiles(dir.path(), 100).unwrap(), mth(&hashes[..100]));
        assert_eq!(leaf_data(dir.path(), 100, 99).unwrap(), all[99]);
        // A size the directory never had a checkpoint for: its partial tile is missing.
        assert!(root_from_tiles(dir.path(), 601).is_err());
        assert!(root_from_tiles(dir.path(), 599).is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let all = entries(300);
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &all, 300, &key());
        let (_, _, root) = read_checkpoint(dir.path(), &vkey()).unwrap();

        // Wrong key.
        let other = ed25519_vkey(ORIGIN, &SigningKey::from_bytes(&[12; 32]).verifying_key());
        assert!(read_checkpoint(dir.path(), &other).is_err());
        // Tampered checkpoint text.
        let cp = std::fs::read_to_string(dir.path().join("checkpoint")).unwrap();
        std::fs::write(dir.path().join("checkpoint"), cp.replacen("\n300\n", "\n299\n", 1)).unwrap();
        assert!(read_checkpoint(dir.path(), &vkey()).is_err());
        std::fs::write(dir.path().join("checkpoint"), &cp).unwrap();

        // A flipped hash in the partial level-0 tile changes the recomputed root.
        let p = dir.path().join("tile/0/001.p/44");
        let mut t = std::fs::read(&p).unwrap();
        t[5] ^= 1;
        std::fs::write(&p, &t).unwrap();
        assert_ne!(root_from_tiles(dir.path(), 300).unwrap(), root);
        t[5] ^= 1;
        std::fs::write(&p, &t).unwrap();
        // In the full level-0 tile the root comes from the level-1 tile, so
        // only proofs through that hash and check_tiles see the change.
        let p = dir.path().join("tile/0/000");
        let mut t = std::fs::read(&p).unwrap();
        t[5] ^= 1;
        std::fs::write(&p, &t).unwrap();
        assert_eq!(root_from_tiles(dir.path(), 300).unwrap(), root);
        let proof = inclusion_proof(dir.path(), 300, 1).unwrap();
        assert!(verify_inclusion(1, 300, &leaf_hash(&all[1]), &proof, &root).is_err());
        assert!(check_tiles(dir.path(), 300).is_err());
        t[5] ^= 1;
        // A short tile is rejected.
        std::fs::write(&p, &t[..8160]).unwrap();
        assert!(inclusion_proof(dir.path(), 300, 1).is_err());
        assert!(check_tiles(dir.path(), 300).is_err());
        std::fs::write(&p, &t).unwrap();
        check_tiles(dir.path(), 300).unwrap();

        // A changed entry is caught by check_tiles; a broken bundle by the parser.
        let e = dir.path().join("tile/entries/001.p/44");
        let mut b = std::fs::read(&e).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(&e, &b).unwrap();
        assert!(check_tiles(dir.path(), 300).is_err());
        std::fs::write(&e, &b[..last]).unwrap();
        assert!(leaf_data(dir.path(), 300, 299).is_err());
        assert!(parse_entry_bundle(&[0, 3, 1, 2]).is_err());
        assert!(parse_entry_bundle(&[0]).is_err());
        assert_eq!(parse_entry_bundle(&[0, 0, 0, 1, 9]).unwrap(), vec![vec![], vec![9]]);
    }
}
