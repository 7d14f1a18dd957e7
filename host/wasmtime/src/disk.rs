//! The disk quota: what a namespace directory occupies, counted as the
//! blocks its files and directories take (a directory, an empty lock file
//! and a header of 45 bytes all take disk, so opening names costs disk too).
//! A journal's mark (`MARK`, and `MARK.tmp` while the next one is written)
//! is rewritten as the journal grows, with no reservation of its own: every
//! write is counted with what it can add to the mark, and every journal
//! with [`MARK_RESERVE`] for the rest.

use std::io;
use std::path::Path;
use std::sync::Mutex;

use mini_engine::layout::UnitKind;

use crate::bindings::types::Error;

/// A block of common file systems.
const BLOCK_BYTES: u64 = 4096;
/// What a directory takes on common file systems (one block).
pub(crate) const DIR_BYTES: u64 = BLOCK_BYTES;
/// What a small file (a segment's header, a lock) takes: one block.
const SMALL_FILE_BYTES: u64 = BLOCK_BYTES;

/// What each journal is counted with for its mark beyond what writes add to
/// it (see [`most_blocks_taken`]): the mark's fixed fields and a part-full
/// last block, in each of its two files.
pub(crate) const MARK_RESERVE: u64 = 2 * 2 * BLOCK_BYTES;

/// What creating the unit of `kind` in `dir` takes on disk before anything
/// is written to it: its directories (and the missing ones above it, up to
/// the namespace directory `ns_dir`), its first segment and its journal's
/// [`MARK_RESERVE`].
pub(crate) fn new_unit_cost(kind: UnitKind, dir: &Path, ns_dir: &Path) -> u64 {
    let missing_above = dir
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(ns_dir) && !d.is_dir())
        .count() as u64;
    let own = match kind {
        // The directory and the first segment (the lock file is empty).
        UnitKind::Journal => DIR_BYTES + SMALL_FILE_BYTES + MARK_RESERVE,
        // The directory, journal/ with its first segment, snapshots/.
        UnitKind::State | UnitKind::Queue | UnitKind::Bucket => {
            3 * DIR_BYTES + SMALL_FILE_BYTES + MARK_RESERVE
        }
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
        let needed = most_blocks_taken(bytes, quota);
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
        state.bytes = used + needed;
        state.appends_since_walk += 1;
        Ok(())
    }
}

/// The most a write of `bytes` in a namespace with `quota` can add to what
/// the namespace takes on disk, so that counting it up between walks never
/// counts less than the file system allocates: the blocks of those bytes and
/// of the zeros a journal may grow ahead of them (a file's last block may
/// have been full), one block the file system may take to index the
/// file's blocks (ext4 adds an extent block once a file, written block by
/// block among other writers, has more than four extents), and what the
/// journal's mark grows by in its two files for the index entries the
/// bytes may add (the rest of the mark is in [`MARK_RESERVE`]).
fn most_blocks_taken(bytes: u64, quota: u64) -> u64 {
    bytes
        .saturating_add(preallocation(quota))
        .checked_next_multiple_of(BLOCK_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(BLOCK_BYTES)
        .saturating_add(mini_engine::segment::mark::mark_growth(bytes).saturating_mul(2))
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
/// followed), and [`MARK_RESERVE`] for each directory that holds segments;
/// 0 if `dir` does not exist.
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
    let mut holds_segments = false;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        holds_segments |= mini_engine::segment::parse_segment_file_name(&name).is_some();
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
    if holds_segments {
        total = total.saturating_add(MARK_RESERVE);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_segments_counts_a_reserve_for_its_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = dir.path().join("j");
        std::fs::create_dir(&journal).expect("mkdir");
        let before = dir_usage(dir.path()).expect("usage");
        std::fs::write(journal.join("00000000000000000001.jsonl"), b"{}\n").expect("write");
        let with_segment = dir_usage(dir.path()).expect("usage");
        assert!(with_segment >= before + MARK_RESERVE + 3, "{with_segment}");
    }

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
        // The smallest quota that holds 5 bytes more, at the most they can
        // take: then every write up to the same blocks fits, and one byte
        // more does not.
        let quota = (used..)
            .find(|q| used + most_blocks_taken(5, *q) <= *q)
            .expect("a quota");
        let fills_the_blocks = BLOCK_BYTES - preallocation(quota);
        assert!(
            Usage::default()
                .reserve(dir.path(), quota, fills_the_blocks)
                .is_ok()
        );
        assert!(matches!(
            Usage::default().reserve(dir.path(), quota, fills_the_blocks + 1),
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
        let quota = base + 2 * most_blocks_taken(30, base + 4 * BLOCK_BYTES);
        assert_eq!(
            most_blocks_taken(30, quota),
            2 * BLOCK_BYTES + 2 * mini_engine::segment::mark::mark_growth(30)
        );
        let usage = Usage::default();
        usage.reserve(dir.path(), quota, 30).expect("fits");
        usage.reserve(dir.path(), quota, 30).expect("fits");
        // The count is at the quota, so the directory is walked again;
        // nothing was written, so it fits.
        usage
            .reserve(dir.path(), quota, 30)
            .expect("fits after a fresh walk");
        usage
            .reserve(dir.path(), quota, 30)
            .expect("fits on the count");
        // A file written behind the host's back is seen by the walk that
        // runs before an append is refused.
        std::fs::write(dir.path().join("x"), [0u8; 2 * BLOCK_BYTES as usize + 1]).expect("write");
        assert!(matches!(
            usage.reserve(dir.path(), quota, 30),
            Err(Error::Quota(_))
        ));
    }

    /// Small appends to several files at once, each made durable, leave
    /// each file in many extents and its last block part full: what the
    /// file system allocates for them is more than their bytes. Counted up
    /// between walks, the reservations must still never let the directory
    /// pass its quota.
    #[test]
    fn interleaved_durable_appends_never_take_the_directory_past_its_quota() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let quota = 256 * 1024;
        let usage = Usage::default();
        let mut files: Vec<std::fs::File> = (0..8)
            .map(|i| std::fs::File::create(dir.path().join(format!("f{i}"))).expect("create"))
            .collect();
        let record = [b'x'; 100];
        let mut appended = 0;
        'appending: loop {
            for file in &mut files {
                if usage.reserve(dir.path(), quota, 100).is_err() {
                    break 'appending;
                }
                file.write_all(&record).expect("write");
                file.sync_data().expect("fdatasync");
                appended += 1;
            }
        }
        assert!(appended > 100, "appends below the quota fit: {appended}");
        let used = dir_usage(dir.path()).expect("usage");
        assert!(used <= quota, "{used} bytes on disk, quota {quota}");
    }

    #[test]
    fn a_new_unit_costs_its_directories() {
        let data = tempfile::tempdir().expect("tempdir");
        let ns = data.path().join("ns");
        let journal = ns.join("journal/j");
        assert_eq!(
            new_unit_cost(UnitKind::Journal, &journal, &ns),
            DIR_BYTES + SMALL_FILE_BYTES + MARK_RESERVE + 2 * DIR_BYTES
        );
        std::fs::create_dir_all(ns.join("journal")).expect("mkdir");
        assert_eq!(
            new_unit_cost(UnitKind::Journal, &journal, &ns),
            DIR_BYTES + SMALL_FILE_BYTES + MARK_RESERVE
        );
        assert_eq!(
            new_unit_cost(UnitKind::Queue, &ns.join("queue/q"), &ns),
            4 * DIR_BYTES + SMALL_FILE_BYTES + MARK_RESERVE
        );
    }
}
