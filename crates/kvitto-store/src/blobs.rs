//! sled's blob files, made durable before anything kvitto acknowledges depends on them.
//!
//! sled 0.34.7 writes every log message larger than `segment_size / 4` (128 KiB) — in
//! practice a consolidated leaf page holding a few large chunks — to its own file
//! `store/blobs/<lsn>` and puts only a pointer in the log. It never fsyncs those files or
//! their directory: after power loss the log can point at a blob that is empty or missing,
//! and the page it replaced (chunks acknowledged long before) is gone with it. Chunks of at
//! most 64 KiB do not prevent this: a leaf holds up to 17 of them.
//!
//! [`BlobFiles::sync_new`] fsyncs every blob file not synced yet, then the directory. The
//! store runs it after writing a commit group's batch (before sled writes the log that
//! points at the new blobs) and again after sled's flush (blobs other threads wrote
//! meanwhile), and only then fdatasyncs the log and returns: no receipt is ever given with
//! an unsynced blob behind it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The blob directory of one store and the files in it already made durable.
#[derive(Debug)]
pub(crate) struct BlobFiles {
    dir: PathBuf,
    synced: Mutex<HashSet<OsString>>,
}

impl BlobFiles {
    /// For the store directory `store_dir`; nothing counts as synced yet.
    pub(crate) fn new(store_dir: &Path) -> Self {
        BlobFiles { dir: store_dir.join("blobs"), synced: Mutex::new(HashSet::new()) }
    }

    /// Fsyncs every blob file not synced before, then the blob directory (when any was
    /// new). Returns how many files it synced. Files sled removed meanwhile are forgotten.
    pub(crate) fn sync_new(&self) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut present = HashSet::with_capacity(synced.len());
        let mut new = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_data()?,
                    // sled removes blobs it no longer needs (page rewritten, segment cleaned).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new += 1;
            }
            present.insert(name);
        }
        if new > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        *synced = present;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_each_file_once_and_forgets_removed_ones() {
        let d = tempfile::tempdir().unwrap();
        let blobs = BlobFiles::new(d.path());
        assert_eq!(blobs.sync_new().unwrap(), 0, "no blob directory yet");
        std::fs::create_dir(d.path().join("blobs")).unwrap();
        std::fs::write(d.path().join("blobs/1"), b"a").unwrap();
        std::fs::write(d.path().join("blobs/2"), b"b").unwrap();
        assert_eq!(blobs.sync_new().unwrap(), 2);
        assert_eq!(blobs.sync_new().unwrap(), 0, "nothing new");
        std::fs::remove_file(d.path().join("blobs/1")).unwrap();
        std::fs::write(d.path().join("blobs/3"), b"c").unwrap();
        assert_eq!(blobs.sync_new().unwrap(), 1);
        assert_eq!(blobs.synced.lock().unwrap().len(), 2, "the removed file is forgotten");
    }
}
