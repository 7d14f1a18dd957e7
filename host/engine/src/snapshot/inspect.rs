//! Reading a snapshot directory without its lock, for operators' tools
//! (`mini cat`, `mini verify`) while another process may be writing it.

use std::path::{Path, PathBuf};

use super::{SkippedSnapshot, SnapshotDamage, SnapshotError, TEMP_PREFIX, list_in, load};
use crate::fs::{FileSystem, StdFs};
use crate::snapshot::{decode_snapshot, parse_snapshot_file_name};

/// The state size limit when reading without the store's options: the
/// writer's limit is not known here, and a large state is not damage (only
/// the crc and the seq decide).
const NO_LIMIT: usize = usize::MAX / 2;

/// The snapshot files of a directory, as [`list_unlocked`] found them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotListing {
    /// The snapshot files (seq from the name, path), ascending by seq; not
    /// checked.
    pub files: Vec<(u64, PathBuf)>,
    /// Temporary files: a snapshot being written, or one a crash left
    /// (removed when the store is next opened).
    pub temporary: usize,
}

/// Lists the snapshot files of `dir` without taking its lock.
///
/// ```
/// use mini_engine::snapshot::{SnapshotStore, list_unlocked};
/// let dir = tempfile::tempdir()?;
/// let store = SnapshotStore::open(dir.path())?;
/// store.create(3, "{}")?;
/// let listing = list_unlocked(dir.path())?;
/// assert_eq!(listing.files, vec![(3, store.path_of(3))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_unlocked(dir: &Path) -> Result<SnapshotListing, SnapshotError> {
    let fs = StdFs;
    let files = list_in(&fs, dir)?;
    let temporary = fs
        .list_dir(dir)
        .map_err(SnapshotError::io(dir))?
        .iter()
        .filter(|name| name.starts_with(TEMP_PREFIX))
        .count();
    Ok(SnapshotListing { files, temporary })
}

/// Reads and checks one snapshot file without a lock: its line, its crc
/// and, if it has a snapshot file's name, that the seq inside matches the
/// name. Returns the seq and the state (JSON text, exactly as stored).
///
/// ```
/// use mini_engine::snapshot::{SnapshotStore, read_file};
/// let dir = tempfile::tempdir()?;
/// let store = SnapshotStore::open(dir.path())?;
/// store.create(3, r#"{"n":1}"#)?;
/// assert_eq!(read_file(&store.path_of(3)), Ok((3, r#"{"n":1}"#.to_owned())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_file(path: &Path) -> Result<(u64, String), SnapshotDamage> {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_snapshot_file_name);
    match named {
        Some(seq) => load(&StdFs, path, seq, NO_LIMIT).map(|state| (seq, state)),
        // A copy under another name: its content alone decides.
        None => {
            let bytes =
                std::fs::read(path).map_err(|e| SnapshotDamage::Unreadable(e.to_string()))?;
            decode_snapshot(&bytes)
        }
    }
}

/// Every snapshot file of a directory, checked (see [`check_unlocked`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotCheck {
    /// The seqs of the valid snapshots, ascending.
    pub valid: Vec<u64>,
    /// The damaged files, ascending by seq.
    pub damaged: Vec<SkippedSnapshot>,
    /// Temporary files (see [`SnapshotListing::temporary`]).
    pub temporary: usize,
}

impl SnapshotCheck {
    /// The newest valid snapshot's seq: where a restore starts.
    pub fn newest(&self) -> Option<u64> {
        self.valid.last().copied()
    }

    /// The damaged snapshots newer than the newest valid one, newest first:
    /// the ones a restore passes over (all of them when none is valid).
    pub fn skipped(&self) -> Vec<SkippedSnapshot> {
        let newest = self.newest();
        self.damaged
            .iter()
            .rev()
            .filter(|s| newest.is_none_or(|n| s.seq > n))
            .cloned()
            .collect()
    }
}

/// Reads and checks every snapshot file of `dir` without taking its lock
/// (as a restore reads the newest ones, with no size limit).
///
/// ```
/// use mini_engine::snapshot::{SnapshotOptions, SnapshotStore, check_unlocked};
/// let dir = tempfile::tempdir()?;
/// let store = SnapshotStore::open_with(dir.path(), SnapshotOptions { keep: 3, ..Default::default() })?;
/// store.create(1, "1")?;
/// store.create(2, "2")?;
/// std::fs::write(store.path_of(2), "{\"mini\":\"snap")?; // torn
/// let check = check_unlocked(dir.path())?;
/// assert_eq!((check.newest(), check.skipped().len()), (Some(1), 1));
/// assert_eq!(check.valid, [1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_unlocked(dir: &Path) -> Result<SnapshotCheck, SnapshotError> {
    let listing = list_unlocked(dir)?;
    let mut check = SnapshotCheck {
        temporary: listing.temporary,
        ..SnapshotCheck::default()
    };
    for (seq, path) in listing.files {
        match load(&StdFs, &path, seq, NO_LIMIT) {
            Ok(_) => check.valid.push(seq),
            Err(damage) => check.damaged.push(SkippedSnapshot { seq, path, damage }),
        }
    }
    Ok(check)
}
