//! Snapshots: atomic, durable copies of a JSON state with its sequence number.
//!
//! A [`SnapshotStore`] keeps one file per snapshot in its directory,
//! `snapshot-<seq, 20 digits>.json`, holding exactly one line:
//!
//! ```text
//! {"mini":"snapshot","version":1,"seq":42,"crc":"1c291ca3","state":{"value":10}}
//! ```
//!
//! `crc` is the CRC-32C of the bytes of `state`. A snapshot is written to a
//! temporary file (`.tmp-…`), `fdatasync`ed, renamed to its final name, and
//! the directory is `fsync`ed: a reader sees either the whole snapshot or
//! none. The newest `keep` valid snapshots are kept (2 by default), so that a
//! damaged newest snapshot falls back to the one before it.
//!
//! ```
//! use mini_engine::snapshot::SnapshotStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store = SnapshotStore::open(dir.path())?;
//! store.create(7, r#"{"value":10}"#)?;
//! let restored = store.restore()?.expect("a snapshot");
//! assert_eq!((restored.seq, restored.state.as_str()), (7, r#"{"value":10}"#));
//! assert!(restored.skipped.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs::{FileSystem, StdFs};
use crate::lock::DirLock;
use crate::record::check_record;

mod error;
mod file;
mod inspect;

pub use error::SnapshotError;
pub use file::{
    SkippedSnapshot, SnapshotDamage, decode_snapshot, encode_snapshot, parse_snapshot_file_name,
    snapshot_file_name,
};
pub use inspect::{SnapshotCheck, SnapshotListing, check_unlocked, list_unlocked, read_file};

/// The default state size limit: 64 MiB.
pub const DEFAULT_MAX_STATE_SIZE: usize = 64 * 1024 * 1024;

/// How many valid snapshots are kept by default.
pub const DEFAULT_KEEP: usize = 2;

/// Names starting with this are temporary files of a snapshot being written;
/// listing ignores them and opening a store removes them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Bytes of a snapshot file besides the state (header fields, crc, newline),
/// with room to spare: a file larger than the state limit plus this is damage.
const FRAME_OVERHEAD: usize = 256;

/// How a [`SnapshotStore`] is opened.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// How many valid snapshots [`SnapshotStore::create`] keeps (at least 1).
    pub keep: usize,
    /// States larger than this many bytes are refused (and files holding a
    /// larger one are damage).
    pub max_state_size: usize,
    /// The file system (the real one, or a fault-injecting one in tests).
    pub fs: Arc<dyn FileSystem>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            keep: DEFAULT_KEEP,
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            fs: Arc::new(StdFs),
        }
    }
}

/// A snapshot file in the store's directory (not checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its sequence number (from the file name).
    pub seq: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The file.
    pub path: PathBuf,
}

/// The newest valid snapshot, as [`SnapshotStore::restore`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The sequence number the state covers.
    pub seq: u64,
    /// The state, as JSON text.
    pub state: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Newer snapshot files that were damaged and passed over, newest first
    /// (callers should warn about them).
    pub skipped: Vec<SkippedSnapshot>,
}

/// What [`SnapshotStore::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The new snapshot file.
    pub info: SnapshotInfo,
    /// Sequence numbers of the valid snapshots kept, newest first (the new
    /// one included).
    pub kept: Vec<u64>,
    /// Sequence numbers of the snapshot files deleted.
    pub deleted: Vec<u64>,
}

/// The snapshot files of `dir`, ascending by seq.
fn list_in(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut out: Vec<(u64, PathBuf)> = fs
        .list_dir(dir)
        .map_err(SnapshotError::io(dir))?
        .into_iter()
        .filter_map(|name| parse_snapshot_file_name(&name).map(|seq| (seq, dir.join(name))))
        .collect();
    out.sort();
    Ok(out)
}

/// Reads and checks the snapshot file `path` named for `seq`.
fn load(
    fs: &dyn FileSystem,
    path: &Path,
    seq: u64,
    max_state_size: usize,
) -> Result<String, SnapshotDamage> {
    let unreadable = |e: io::Error| SnapshotDamage::Unreadable(e.to_string());
    let file = fs.open_read(path).map_err(unreadable)?;
    let size = file.len().map_err(unreadable)?;
    if size > max_state_size.saturating_add(FRAME_OVERHEAD) as u64 {
        return Err(SnapshotDamage::TooLarge { size });
    }
    let mut bytes = vec![0; size as usize];
    let mut read = 0;
    while read < bytes.len() {
        match file
            .read_at(&mut bytes[read..], read as u64)
            .map_err(unreadable)?
        {
            0 => break,
            n => read += n,
        }
    }
    bytes.truncate(read);
    let (content, state) = decode_snapshot(&bytes)?;
    if content != seq {
        return Err(SnapshotDamage::SeqMismatch { name: seq, content });
    }
    if state.len() > max_state_size {
        return Err(SnapshotDamage::TooLarge { size });
    }
    Ok(state)
}

fn restore_in(
    fs: &dyn FileSystem,
    dir: &Path,
    max_state_size: usize,
) -> Result<Option<Restored>, SnapshotError> {
    let files = list_in(fs, dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut skipped = Vec::new();
    for (seq, path) in files.into_iter().rev() {
        match load(fs, &path, seq, max_state_size) {
            Ok(state) => {
                return Ok(Some(Restored {
                    seq,
                    state,
                    path,
                    skipped,
                }));
            }
            Err(damage) => {
                let skipped_one = SkippedSnapshot { seq, path, damage };
                tracing::warn!(snapshot = %skipped_one, "damaged snapshot passed over; an older one is used");
                skipped.push(skipped_one);
            }
        }
    }
    Err(SnapshotError::AllDamaged { skipped })
}

/// Finds the newest valid snapshot in `dir` without taking the store's lock,
/// for inspecting a store another process may be writing (`mini state`).
/// See [`SnapshotStore::restore`] for the result.
///
/// ```
/// use mini_engine::snapshot::{restore_unlocked, SnapshotOptions, SnapshotStore};
/// let dir = tempfile::tempdir()?;
/// let store = SnapshotStore::open(dir.path())?;
/// store.create(1, "true")?;
/// let found = restore_unlocked(dir.path(), &SnapshotOptions::default())?;
/// assert_eq!(found.map(|r| r.seq), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn restore_unlocked(
    dir: &Path,
    options: &SnapshotOptions,
) -> Result<Option<Restored>, SnapshotError> {
    restore_in(options.fs.as_ref(), dir, options.max_state_size)
}

/// The snapshots of one directory, opened for writing (the directory is
/// locked: one writer at a time).
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    options: SnapshotOptions,
    _lock: DirLock,
}

impl SnapshotStore {
    /// Opens (or creates) the store in `dir` with default options; see
    /// [`SnapshotStore::open_with`].
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore, SnapshotError> {
        Self::open_with(dir, SnapshotOptions::default())
    }

    /// Opens (or creates, durably) the store in `dir`, takes its lock and
    /// removes temporary files left by a snapshot that was being written when
    /// its process died.
    ///
    /// ```
    /// use mini_engine::snapshot::{SnapshotOptions, SnapshotStore};
    /// let dir = tempfile::tempdir()?;
    /// let options = SnapshotOptions { keep: 3, ..Default::default() };
    /// let store = SnapshotStore::open_with(dir.path().join("snapshots"), options)?;
    /// assert!(store.list()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(
        dir: impl AsRef<Path>,
        mut options: SnapshotOptions,
    ) -> Result<SnapshotStore, SnapshotError> {
        options.keep = options.keep.max(1);
        let dir = dir.as_ref().to_path_buf();
        let fs = options.fs.clone();
        crate::journal::create_dir_durably(fs.as_ref(), &dir)?;
        let lock = DirLock::acquire(fs.as_ref(), &dir)?;
        let mut removed = false;
        for name in fs.list_dir(&dir).map_err(SnapshotError::io(&dir))? {
            if name.starts_with(TEMP_PREFIX) {
                let path = dir.join(&name);
                fs.remove_file(&path).map_err(SnapshotError::io(&path))?;
                removed = true;
            }
        }
        if removed {
            fs.sync_dir(&dir).map_err(SnapshotError::io(&dir))?;
        }
        Ok(SnapshotStore {
            dir,
            options,
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SnapshotOptions {
        &self.options
    }

    /// The path of the snapshot file for `seq`.
    pub fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(snapshot_file_name(seq))
    }

    /// Writes a snapshot of `state` (exactly one JSON value) at `seq`, durably:
    /// temporary file → `fdatasync` → rename → directory `fsync`. Then keeps
    /// only the newest `keep` valid snapshots: older files are deleted, and
    /// the directory is `fsync`ed again. A snapshot at an existing `seq`
    /// replaces it atomically.
    ///
    /// ```
    /// use mini_engine::snapshot::SnapshotStore;
    /// let dir = tempfile::tempdir()?;
    /// let store = SnapshotStore::open(dir.path())?;
    /// for seq in [10, 20, 30] {
    ///     store.create(seq, &format!("{{\"at\":{seq}}}"))?;
    /// }
    /// let seqs: Vec<u64> = store.list()?.iter().map(|s| s.seq).collect();
    /// assert_eq!(seqs, [20, 30]); // the newest two are kept
    /// assert!(store.create(40, "not json").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self, seq: u64, state_json: &str) -> Result<Created, SnapshotError> {
        let state = check_record(state_json, self.options.max_state_size)?;
        let fs = self.options.fs.as_ref();
        let name = snapshot_file_name(seq);
        let path = self.dir.join(&name);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let line = encode_snapshot(seq, &state);
        if let Err(e) = fs.remove_file(&temp)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(SnapshotError::Io {
                path: temp,
                source: e,
            });
        }
        let written = (|| {
            let file = fs.create_new(&temp)?;
            file.write_all_at(line.as_bytes(), 0)?;
            file.sync_data()
        })();
        if let Err(source) = written {
            let _ = fs.remove_file(&temp);
            return Err(SnapshotError::Io { path: temp, source });
        }
        if let Err(source) = fs.rename(&temp, &path) {
            let _ = fs.remove_file(&temp);
            return Err(SnapshotError::Io { path: temp, source });
        }
        fs.sync_dir(&self.dir)
            .map_err(SnapshotError::io(&self.dir))?;
        let (kept, deleted) = self.prune(seq)?;
        Ok(Created {
            info: SnapshotInfo {
                seq,
                size: line.len() as u64,
                path,
            },
            kept,
            deleted,
        })
    }

    /// Keeps the newest `keep` valid snapshots (`fresh` is known valid) and
    /// the damaged ones newer than the oldest of them; deletes the rest.
    fn prune(&self, fresh: u64) -> Result<(Vec<u64>, Vec<u64>), SnapshotError> {
        let fs = self.options.fs.as_ref();
        let mut kept = Vec::new();
        let mut deleted = Vec::new();
        for (seq, path) in list_in(fs, &self.dir)?.into_iter().rev() {
            if kept.len() >= self.options.keep {
                fs.remove_file(&path).map_err(SnapshotError::io(&path))?;
                deleted.push(seq);
            } else if seq == fresh || load(fs, &path, seq, self.options.max_state_size).is_ok() {
                kept.push(seq);
            }
        }
        if !deleted.is_empty() {
            fs.sync_dir(&self.dir)
                .map_err(SnapshotError::io(&self.dir))?;
        }
        Ok((kept, deleted))
    }

    /// The newest snapshot that is intact (complete, well formed, crc
    /// matching, seq matching its name), falling back to older ones; the
    /// damaged newer ones are listed in [`Restored::skipped`]. `Ok(None)`
    /// when there is no snapshot file at all; [`SnapshotError::AllDamaged`]
    /// when there are some but none is intact.
    ///
    /// ```
    /// use mini_engine::snapshot::SnapshotStore;
    /// let dir = tempfile::tempdir()?;
    /// let store = SnapshotStore::open(dir.path())?;
    /// assert!(store.restore()?.is_none());
    /// store.create(1, "[1]")?;
    /// store.create(2, "[1,2]")?;
    /// std::fs::write(store.path_of(2), "{\"mini\":\"snap")?; // torn
    /// let restored = store.restore()?.unwrap();
    /// assert_eq!((restored.seq, restored.skipped.len()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore(&self) -> Result<Option<Restored>, SnapshotError> {
        restore_in(
            self.options.fs.as_ref(),
            &self.dir,
            self.options.max_state_size,
        )
    }

    /// The snapshot files, ascending by seq (not checked; see
    /// [`SnapshotStore::restore`]).
    ///
    /// ```
    /// use mini_engine::snapshot::SnapshotStore;
    /// let dir = tempfile::tempdir()?;
    /// let store = SnapshotStore::open(dir.path())?;
    /// store.create(5, "{}")?;
    /// let list = store.list()?;
    /// assert_eq!((list[0].seq, list[0].path.clone()), (5, store.path_of(5)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let fs = self.options.fs.as_ref();
        list_in(fs, &self.dir)?
            .into_iter()
            .map(|(seq, path)| {
                let size = fs
                    .open_read(&path)
                    .and_then(|f| f.len())
                    .map_err(SnapshotError::io(&path))?;
                Ok(SnapshotInfo { seq, size, path })
            })
            .collect()
    }

    /// Deletes the snapshot files whose seq is below `seq`, then `fsync`s the
    /// directory. Returns how many were deleted.
    ///
    /// ```
    /// use mini_engine::snapshot::{SnapshotOptions, SnapshotStore};
    /// let dir = tempfile::tempdir()?;
    /// let options = SnapshotOptions { keep: 10, ..Default::default() };
    /// let store = SnapshotStore::open_with(dir.path(), options)?;
    /// for seq in 1..=4 {
    ///     store.create(seq, "0")?;
    /// }
    /// assert_eq!(store.delete_older_than(3)?, 2);
    /// assert_eq!(store.list()?.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_older_than(&self, seq: u64) -> Result<usize, SnapshotError> {
        let fs = self.options.fs.as_ref();
        let mut deleted = 0;
        for (s, path) in list_in(fs, &self.dir)? {
            if s < seq {
                fs.remove_file(&path).map_err(SnapshotError::io(&path))?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            fs.sync_dir(&self.dir)
                .map_err(SnapshotError::io(&self.dir))?;
        }
        Ok(deleted)
    }
}
