//! The disk quota: what a namespace directory occupies, counted as the
//! blocks its files and directories take (a directory, an empty lock file
//! and a header of 45 bytes all take disk, so opening names costs disk too).

use std::io;
use std::path::Path;
use std::sync::Mutex;

use mini_engine::layout::UnitKind;

use crate::bindings::types::Error;

/// What a directory takes on common file systems (one block).
pub(crate) const DIR_BYTES: u64 = 4096;
/// What a small file (a segment's header, a lock) takes: one block.
const SMALL_FILE_BYTES: u64 = 4096;

/// What creating the unit of `kind` in `dir` takes on disk before anything
/// is written to it: its directories (and the missing ones above it, up to
/// the namespace directory `ns_dir`) and its first segment.
pub(crate) fn new_unit_cost(kind: UnitKind, dir: &Path, ns_dir: &Path) -> u64 {
    let missing_above = dir
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(ns_dir) && !d.is_dir())
        .count() as u64;
    let own = match kind {
        // The directory and the first segment (the lock file is empty).
        UnitKind::Journal => DIR_BYTES + SMALL_FILE_BYTES,
        // The directory, journal/ with its first segment, snapshots/.
        UnitKind::State | UnitKind::Queue => 3 * DIR_BYTES + SMALL_FILE_BYTES,
        UnitKind::Snapshots => DIR_BYTES,
    };
    own + missing_above * DIR_BYTES
}

/// Appends between two walks of a namespace directory: in between, usage is
/// counted up by the appends themselves, so the common append does not pay
/// for a directory walk.
const APPENDS_BETWEEN_WALKS: u64 = 1024;

/// What a namespace directory occupies: measured by walking it from time to
/// time (and always before refusing an append), counted up by every append
/// in between. Shared by every instance of a namespace in one [`MiniHost`],
/// so concurrent appends cannot together pass the quota.
///
/// [`MiniHost`]: crate::MiniHost
#[derive(Debug, Default)]
pub(crate) struct Usage {
    state: Mutex<UsageState>,
}

#[derive(Debug, Default)]
struct UsageState {
    bytes: u64,
    measured: bool,
    appends_since_walk: u64,
}

impl Usage {
    /// Reserves `bytes` for an append to the namespace in `ns_dir`, or
    /// refuses it if that would take the namespace past `quota` bytes.
    pub(crate) fn reserve(&self, ns_dir: &Path, quota: u64, bytes: u64) -> Result<(), Error> {
        if quota == u64::MAX {
            return Ok(());
        }
        // The state is a pair of counters: still usable after a panic.
        // Room for the zeros the journal may grow ahead of this append.
        let needed = bytes.saturating_add(preallocation(quota));
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let over = state.bytes.saturating_add(needed) > quota;
        if !state.measured || over || state.appends_since_walk >= APPENDS_BETWEEN_WALKS {
            state.bytes = dir_usage(ns_dir)
                .map_err(|e| Error::Io(format!("cannot measure the namespace's disk use: {e}")))?;
            state.measured = true;
            state.appends_since_walk = 0;
        }
        let used = state.bytes;
        if used.saturating_add(needed) > quota {
            return Err(Error::Quota(format!(
                "disk quota exceeded: the namespace uses {used} bytes, this write or open needs about {bytes} more, and the quota is {quota} bytes"
            )));
        }
        state.bytes = used + bytes;
        state.appends_since_walk += 1;
        Ok(())
    }
}

/// How far a journal in a namespace with `quota` grows ahead of its records
/// (see [`JournalOptions::preallocate`]): at most 1/256 of the quota, so that
/// preallocated zeros, which count toward the quota, cannot eat it.
///
/// [`JournalOptions::preallocate`]: mini_engine::JournalOptions::preallocate
pub(crate) fn preallocation(quota: u64) -> u64 {
    (quota / 256).min(mini_engine::journal::DEFAULT_PREALLOCATE)
}

/// What a file or directory takes on disk: its allocated blocks, or its
/// length if that is more (a file being written may not have its blocks
/// yet).
fn disk_bytes(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    let blocks = std::os::unix::fs::MetadataExt::blocks(meta).saturating_mul(512);
    #[cfg(not(unix))]
    let blocks = 0;
    if meta.is_dir() {
        blocks.max(DIR_BYTES)
    } else {
        blocks.max(meta.len())
    }
}

/// What `dir` and everything under it take on disk (symbolic links are not
/// followed); 0 if `dir` does not exist.
fn dir_usage(dir: &Path) -> io::Result<u64> {
    let own = match std::fs::symlink_metadata(dir) {
        Ok(meta) => disk_bytes(&meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = own;
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // A segment removed by compaction while we walk.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        total = total.saturating_add(if meta.is_dir() {
            dir_usage(&entry.path())?
        } else {
            disk_bytes(&meta)
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_directories_and_blocks_and_missing_dir_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(dir_usage(&dir.path().join("missing")).expect("usage"), 0);
        let empty = dir_usage(dir.path()).expect("usage");
        assert!(empty >= DIR_BYTES, "{empty}");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/x"), [0u8; 10]).expect("write");
        std::fs::write(dir.path().join("a/b/y"), [0u8; 5]).expect("write");
        let used = dir_usage(dir.path()).expect("usage");
        // Two more directories of a block each, and two files of at least
        // their length (a block each on most file systems).
        assert!(used >= empty + 2 * DIR_BYTES + 15, "{used}");
        assert!(used <= empty + 2 * DIR_BYTES + 2 * 64 * 1024, "{used}");
        // The smallest quota that holds 5 bytes more (and the headroom for
        // preallocation it asks for).
        let quota = (used + 5..)
            .find(|q| used + 5 + preallocation(*q) <= *q)
            .expect("a quota");
        assert!(Usage::default().reserve(dir.path(), quota, 5).is_ok());
        assert!(matches!(
            Usage::default().reserve(dir.path(), quota, 6),
            Err(Error::Quota(_))
        ));
        assert!(
            Usage::default()
                .reserve(dir.path(), u64::MAX, u64::MAX)
                .is_ok()
        );
    }

    #[test]
    fn reservations_count_up_between_walks_and_are_rechecked_before_refusing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir_usage(dir.path()).expect("usage");
        // Small enough that no preallocation headroom is asked for.
        let quota = base + 100;
        assert_eq!(preallocation(quota), quota / 256);
        let headroom = preallocation(quota);
        let usage = Usage::default();
        usage.reserve(dir.path(), quota, 30).expect("fits");
        usage.reserve(dir.path(), quota, 30).expect("fits");
        // 60 reserved: 60 more would pass the quota on the count, so the
        // directory is walked again; nothing was written, so it fits.
        usage
            .reserve(dir.path(), quota, 100 - headroom)
            .expect("fits after a fresh walk");
        // A file written behind the host's back is seen by the walk that
        // runs before an append is refused.
        std::fs::write(dir.path().join("x"), [0u8; 1]).expect("write");
        assert!(matches!(
            usage.reserve(dir.path(), quota, 100 - headroom),
            Err(Error::Quota(_))
        ));
    }

    #[test]
    fn a_new_unit_costs_its_directories() {
        let data = tempfile::tempdir().expect("tempdir");
        let ns = data.path().join("ns");
        let journal = ns.join("journal/j");
        assert_eq!(
            new_unit_cost(UnitKind::Journal, &journal, &ns),
            DIR_BYTES + SMALL_FILE_BYTES + 2 * DIR_BYTES
        );
        std::fs::create_dir_all(ns.join("journal")).expect("mkdir");
        assert_eq!(
            new_unit_cost(UnitKind::Journal, &journal, &ns),
            DIR_BYTES + SMALL_FILE_BYTES
        );
        assert_eq!(
            new_unit_cost(UnitKind::Queue, &ns.join("queue/q"), &ns),
            4 * DIR_BYTES + SMALL_FILE_BYTES
        );
    }
}
