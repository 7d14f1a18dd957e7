//! Why a snapshot operation failed.

use std::io;
use std::path::PathBuf;

use crate::error::JournalError;

use super::SkippedSnapshot;

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The state is not exactly one JSON value.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The state is larger than the configured limit.
    #[error("state of {size} bytes exceeds the limit of {limit} bytes")]
    StateTooLarge {
        /// Size of the rejected state in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Another process (or another handle in this process) holds the lock.
    #[error("snapshot directory is locked: {}", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// There are snapshot files, but none of them is valid.
    #[error("all {} snapshots are damaged (newest: {})", skipped.len(),
        skipped.first().map(|s| s.to_string()).unwrap_or_default())]
    AllDamaged {
        /// Every snapshot file, newest first, with what is wrong with it.
        skipped: Vec<SkippedSnapshot>,
    },
    /// An I/O error on a file or directory of the store.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl SnapshotError {
    pub(super) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> SnapshotError {
        let path = path.into();
        move |source| SnapshotError::Io { path, source }
    }
}

impl From<JournalError> for SnapshotError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::InvalidRecord(why) => SnapshotError::InvalidState(why),
            JournalError::RecordTooLarge { size, limit } => {
                SnapshotError::StateTooLarge { size, limit }
            }
            JournalError::Locked { path } => SnapshotError::Locked { path },
            JournalError::Io { path, source } => SnapshotError::Io { path, source },
            other => SnapshotError::Io {
                path: PathBuf::new(),
                source: io::Error::other(other.to_string()),
            },
        }
    }
}
