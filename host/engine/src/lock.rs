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
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of directory `dir` without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        // Every DirLock opens its own description and never duplicates it
        // (no `try_clone`): that is what makes the unlock in `drop` safe.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(JournalError::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { file, path }),
            Err(TryLockError::WouldBlock) => Err(JournalError::Locked { path }),
            Err(TryLockError::Error(source)) => Err(JournalError::Io { path, source }),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    /// Unlocks before the file is closed. Closing alone is not enough: a
    /// child that another thread forked holds a copy of the description
    /// until it execs (close-on-exec only acts at exec), so the description,
    /// and a `flock` on it, would outlive this handle, and a reopen in this
    /// process right after the drop would get `Locked`. `flock(LOCK_UN)`
    /// acts on the description, so the child's copy holds no lock either.
    ///
    /// This never releases a lock someone else relies on: a `flock` is held
    /// by one description, every `DirLock` opens its own (a second one on
    /// the same directory, in this process or another, gets `Locked` rather
    /// than sharing it), and nothing duplicates it except a fork, whose
    /// copies only exist until exec or exit and never lock anything. (A
    /// child that runs on without exec and drops a copied `DirLock` would
    /// unlock its parent's lock: handles are not meant to cross a fork.)
    fn drop(&mut self) {
        // An error leaves nothing to do: the close that follows releases the
        // lock as before, and a drop cannot report it.
        let _ = self.file.unlock();
    }
}
