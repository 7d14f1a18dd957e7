//! The disk quota: what a namespace directory occupies.

use std::io;
use std::path::Path;
use std::sync::Mutex;

use crate::bindings::store::Error;

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
                "disk quota exceeded: the namespace uses {used} bytes, the append needs about {bytes} more, the quota is {quota} bytes"
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

/// Bytes of all files under `dir` (symbolic links are not followed); 0 if
/// `dir` does not exist.
fn dir_usage(dir: &Path) -> io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0u64;
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
            meta.len()
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_nested_files_and_missing_dir_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(dir_usage(&dir.path().join("missing")).expect("usage"), 0);
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/x"), [0u8; 10]).expect("write");
        std::fs::write(dir.path().join("a/b/y"), [0u8; 5]).expect("write");
        assert_eq!(dir_usage(dir.path()).expect("usage"), 15);
        assert!(Usage::default().reserve(dir.path(), 20, 5).is_ok());
        assert!(matches!(
            Usage::default().reserve(dir.path(), 20, 6),
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
        let usage = Usage::default();
        usage.reserve(dir.path(), 100, 40).expect("fits");
        usage.reserve(dir.path(), 100, 40).expect("fits");
        // 80 reserved: 30 more would pass the quota on the count, so the
        // directory is walked again; it is empty (nothing was written), so
        // the append fits after all.
        usage
            .reserve(dir.path(), 100, 30)
            .expect("fits after a fresh walk");
        // 30 counted; a file written behind the host's back is seen by the
        // walk that runs before an append is refused.
        std::fs::write(dir.path().join("x"), [0u8; 90]).expect("write");
        assert!(matches!(
            usage.reserve(dir.path(), 100, 80),
            Err(Error::Quota(_))
        ));
        usage.reserve(dir.path(), 100, 10).expect("90 + 10 fits");
    }
}
