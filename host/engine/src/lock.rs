//! The exclusive lock that makes a journal single-writer across processes.

use std::fs::TryLockError;
use std::path::{Path, PathBuf};

use crate::JournalError;
use crate::fs::{FileLock, FileSystem};

/// The name of the lock file inside a journal directory.
pub const LOCK_FILE: &str = "LOCK";

/// An exclusive lock on `<dir>/LOCK` (on the real file system a `flock`),
/// held until dropped.
///
/// The lock belongs to the open file description, so it is released by the
/// kernel when the process dies (even by SIGKILL): a crash never leaves a
/// stale lock behind. A second process, or a second handle in the same
/// process, gets [`JournalError::Locked`].
#[derive(Debug)]
pub struct DirLock {
    _lock: FileLock,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of directory `dir` on `fs` without waiting.
    pub fn acquire(fs: &dyn FileSystem, dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        match fs.try_lock(&path) {
            Ok(lock) => Ok(DirLock { _lock: lock, path }),
            Err(TryLockError::WouldBlock) => Err(JournalError::Locked { path }),
            Err(TryLockError::Error(source)) => Err(JournalError::Io { path, source }),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
