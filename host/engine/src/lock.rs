//! The exclusive lock that makes a journal single-writer across processes.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::JournalError;

/// The name of the lock file inside a journal directory.
pub const LOCK_FILE: &str = "LOCK";

/// An exclusive `flock` on `<dir>/LOCK`, held until dropped.
///
/// The lock belongs to the open file description, so it is released by the
/// kernel when the process dies (even by SIGKILL): a crash never leaves a
/// stale lock behind. A second process, or a second handle in the same
/// process, gets [`JournalError::Locked`].
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of directory `dir` without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(JournalError::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(JournalError::Locked { path }),
            Err(TryLockError::Error(source)) => Err(JournalError::Io { path, source }),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
