//! The disk quota: what a namespace directory occupies.

use std::io;
use std::path::Path;

use crate::bindings::store::Error;

/// Refuses an append of `bytes` that would take the namespace directory past
/// `quota` bytes.
pub(crate) fn check_quota(ns_dir: &Path, quota: u64, bytes: u64) -> Result<(), Error> {
    if quota == u64::MAX {
        return Ok(());
    }
    let used = dir_usage(ns_dir)
        .map_err(|e| Error::Io(format!("cannot measure the namespace's disk use: {e}")))?;
    if used.saturating_add(bytes) > quota {
        return Err(Error::Quota(format!(
            "disk quota exceeded: the namespace uses {used} bytes, the append needs about {bytes} more, the quota is {quota} bytes"
        )));
    }
    Ok(())
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
        assert!(check_quota(dir.path(), 20, 5).is_ok());
        assert!(matches!(
            check_quota(dir.path(), 20, 6),
            Err(Error::Quota(_))
        ));
        assert!(check_quota(dir.path(), u64::MAX, u64::MAX).is_ok());
    }
}
